//! nsqadmin's own memory of the cluster (not in NSQ): every
//! `--sample-interval` it reads each nsqd's counters, keeps the last
//! `--history` of them, and sums them up for the live pages: message rates
//! and depths over time (the small charts, with no Graphite), nodes that
//! stopped answering, and channels whose depth keeps growing.
//!
//! [`Sampler`] fetches; everything else here is pure and unit-tested.

use super::cluster::{Cluster, Sources};
use super::types::{Producer, TopicStats};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// A channel whose depth rose at every one of this many samples in a row
/// (and never fell) is marked as growing.
pub const GROWTH_SAMPLES: usize = 6;

/// One node's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodePoint {
    pub depth: i64,
    pub message_count: i64,
    pub paused: bool,
    pub in_flight: i64,
    pub client_count: i64,
}

/// The cluster at one moment: per topic (and `topic` + `channel`), per node.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub at_ms: i64,
    pub topics: BTreeMap<String, BTreeMap<String, NodePoint>>,
    pub channels: BTreeMap<(String, String), BTreeMap<String, NodePoint>>,
}

impl Sample {
    /// A sample from the per-node stats of the nodes that answered.
    pub fn from_stats(at_ms: i64, per_node: &[TopicStats]) -> Sample {
        let mut s = Sample {
            at_ms,
            ..Sample::default()
        };
        for t in per_node {
            s.topics.entry(t.topic_name.clone()).or_default().insert(
                t.node.clone(),
                NodePoint {
                    depth: t.depth,
                    message_count: t.message_count,
                    paused: t.paused,
                    in_flight: 0,
                    client_count: 0,
                },
            );
            for c in &t.channels {
                s.channels
                    .entry((t.topic_name.clone(), c.channel_name.clone()))
                    .or_default()
                    .insert(
                        t.node.clone(),
                        NodePoint {
                            depth: c.depth,
                            message_count: c.message_count,
                            paused: c.paused,
                            in_flight: c.in_flight_count,
                            client_count: c.client_count,
                        },
                    );
            }
        }
        s
    }
}

/// Messages per second between two readings of the same per-node counters:
/// only nodes present in both count, and a counter that went down (nsqd
/// restarted) counts from zero.
pub fn rate(
    before: Option<&BTreeMap<String, NodePoint>>,
    after: Option<&BTreeMap<String, NodePoint>>,
    seconds: f64,
) -> Option<f64> {
    let (before, after) = (before?, after?);
    if seconds <= 0.0 {
        return None;
    }
    let mut delta = 0i64;
    let mut any = false;
    for (node, now) in after {
        if let Some(then) = before.get(node) {
            any = true;
            delta += if now.message_count >= then.message_count {
                now.message_count - then.message_count
            } else {
                now.message_count
            };
        }
    }
    any.then(|| delta as f64 / seconds)
}

/// Whether a depth series keeps growing: the last [`GROWTH_SAMPLES`] are
/// all known, none is lower than the one before, and the last is higher
/// than the first.
pub fn is_growing(depths: &[Option<i64>]) -> bool {
    if depths.len() < GROWTH_SAMPLES {
        return false;
    }
    let tail = &depths[depths.len() - GROWTH_SAMPLES..];
    let Some(values) = tail.iter().copied().collect::<Option<Vec<i64>>>() else {
        return false;
    };
    values.windows(2).all(|w| w[1] >= w[0]) && values[values.len() - 1] > values[0]
}

/// A node's health, as the live pages show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeHealth {
    pub node: String,
    pub hostname: String,
    pub version: String,
    /// `ok`; `down` (listed, but its counters could not be read); `gone`
    /// (seen earlier, no longer listed by any nsqlookupd).
    pub state: &'static str,
    pub error: String,
    /// When its counters were last read (Unix milliseconds, 0: never).
    pub last_seen_ms: i64,
}

/// Per-node figures of a topic or channel now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeFigures {
    pub node: String,
    pub depth: i64,
    pub message_count: i64,
    pub rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChannelSummary {
    pub channel: String,
    pub depth: i64,
    pub in_flight: i64,
    pub message_count: i64,
    pub client_count: i64,
    pub paused: bool,
    /// Messages per second (None until two samples are known).
    pub rate: Option<f64>,
    pub growing: bool,
    pub depth_history: Vec<Option<i64>>,
    pub rate_history: Vec<Option<f64>>,
    pub nodes: Vec<NodeFigures>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopicSummary {
    pub topic: String,
    pub depth: i64,
    /// Messages waiting in the topic and all its channels.
    pub queued: i64,
    pub queued_history: Vec<Option<i64>>,
    pub message_count: i64,
    pub paused: bool,
    pub rate: Option<f64>,
    pub depth_history: Vec<Option<i64>>,
    pub rate_history: Vec<Option<f64>>,
    pub nodes: Vec<NodeFigures>,
    pub channels: Vec<ChannelSummary>,
}

/// What the live pages get after every sample (`/api/summary`, and the
/// `summary` events of `/api/events`).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Summary {
    pub seq: u64,
    pub time_ms: i64,
    pub interval_ms: u64,
    /// Warnings of this sample (an nsqlookupd that did not answer...).
    pub message: String,
    pub nodes: Vec<NodeHealth>,
    pub topics: Vec<TopicSummary>,
}

/// The last samples and what is known of every node.
#[derive(Debug, Default)]
pub struct History {
    pub capacity: usize,
    pub samples: VecDeque<Sample>,
    pub nodes: BTreeMap<String, NodeHealth>,
    pub seq: u64,
}

fn node_figures(
    before: Option<&BTreeMap<String, NodePoint>>,
    now: &BTreeMap<String, NodePoint>,
    seconds: f64,
) -> Vec<NodeFigures> {
    now.iter()
        .map(|(node, p)| {
            let single = |m: Option<&BTreeMap<String, NodePoint>>| {
                m.and_then(|m| m.get(node))
                    .map(|p| BTreeMap::from([(node.clone(), p.clone())]))
            };
            NodeFigures {
                node: node.clone(),
                depth: p.depth,
                message_count: p.message_count,
                rate: rate(single(before).as_ref(), single(Some(now)).as_ref(), seconds),
            }
        })
        .collect()
}

impl History {
    pub fn new(capacity: usize) -> History {
        History {
            capacity: capacity.max(2),
            ..History::default()
        }
    }

    /// Record a sample and the health of the nodes behind it; nodes not
    /// heard of for longer than the history are forgotten.
    pub fn record(&mut self, sample: Sample, health: Vec<NodeHealth>) {
        let now = sample.at_ms;
        let listed: Vec<String> = health.iter().map(|h| h.node.clone()).collect();
        for mut h in health {
            if h.state != "ok" {
                if let Some(known) = self.nodes.get(&h.node) {
                    h.last_seen_ms = known.last_seen_ms;
                    if h.hostname.is_empty() {
                        h.hostname = known.hostname.clone();
                        h.version = known.version.clone();
                    }
                }
            }
            self.nodes.insert(h.node.clone(), h);
        }
        for (node, h) in self.nodes.iter_mut() {
            if !listed.contains(node) && h.state == "ok" {
                h.state = "gone";
                h.error = "no longer registered with any nsqlookupd".into();
            }
        }
        let span = self.span_ms();
        self.nodes
            .retain(|n, h| listed.contains(n) || now - h.last_seen_ms <= span);
        self.samples.push_back(sample);
        while self.samples.len() > self.capacity {
            self.samples.pop_front();
        }
        self.seq += 1;
    }

    /// How long the kept samples span (at least a minute).
    fn span_ms(&self) -> i64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) => (b.at_ms - a.at_ms).max(60_000),
            _ => 60_000,
        }
    }

    /// Sum everything up for the pages.
    pub fn summary(&self, interval: Duration, message: String) -> Summary {
        let samples: Vec<&Sample> = self.samples.iter().collect();
        let Some(last) = samples.last() else {
            return Summary {
                seq: self.seq,
                interval_ms: interval.as_millis() as u64,
                message,
                nodes: self.nodes.values().cloned().collect(),
                ..Summary::default()
            };
        };
        let prev = samples.len().checked_sub(2).map(|i| samples[i]);
        let last_secs = prev.map(|p| seconds_between(p, last)).unwrap_or(0.0);

        let mut topics = Vec::new();
        for (name, now) in &last.topics {
            let topic_key = Key::Topic(name);
            let before = prev.and_then(|p| p.topics.get(name));
            let channels = last
                .channels
                .range((name.clone(), String::new())..)
                .take_while(|((t, _), _)| t == name)
                .map(|((t, c), now)| {
                    let key = (t.clone(), c.clone());
                    let ckey = Key::Channel(&key);
                    let depth_history = depth_series(&samples, &ckey);
                    let before = prev.and_then(|p| p.channels.get(&key));
                    ChannelSummary {
                        channel: c.clone(),
                        depth: now.values().map(|p| p.depth).sum(),
                        in_flight: now.values().map(|p| p.in_flight).sum(),
                        message_count: now.values().map(|p| p.message_count).sum(),
                        client_count: now.values().map(|p| p.client_count).sum(),
                        paused: now.values().any(|p| p.paused),
                        rate: rate(before, Some(now), last_secs),
                        growing: is_growing(&depth_history),
                        depth_history,
                        rate_history: rate_series(&samples, &ckey),
                        nodes: node_figures(before, now, last_secs),
                    }
                })
                .collect();
            topics.push(TopicSummary {
                topic: name.clone(),
                depth: now.values().map(|p| p.depth).sum(),
                queued: queued_in(last, name).unwrap_or(0),
                queued_history: queued_series(&samples, name),
                message_count: now.values().map(|p| p.message_count).sum(),
                paused: now.values().any(|p| p.paused),
                rate: rate(before, Some(now), last_secs),
                depth_history: depth_series(&samples, &topic_key),
                rate_history: rate_series(&samples, &topic_key),
                nodes: node_figures(before, now, last_secs),
                channels,
            });
        }
        Summary {
            seq: self.seq,
            time_ms: last.at_ms,
            interval_ms: interval.as_millis() as u64,
            message,
            nodes: self.nodes.values().cloned().collect(),
            topics,
        }
    }
}

/// Which series of a sample: a topic's or a channel's.
enum Key<'a> {
    Topic(&'a str),
    Channel(&'a (String, String)),
}

fn points<'s>(s: &'s Sample, key: &Key) -> Option<&'s BTreeMap<String, NodePoint>> {
    match key {
        Key::Topic(t) => s.topics.get(*t),
        Key::Channel(k) => s.channels.get(*k),
    }
}

fn seconds_between(a: &Sample, b: &Sample) -> f64 {
    (b.at_ms - a.at_ms) as f64 / 1000.0
}

/// The summed depth at every sample (None where no node had it).
fn depth_series(samples: &[&Sample], key: &Key) -> Vec<Option<i64>> {
    samples
        .iter()
        .map(|s| points(s, key).map(|m| m.values().map(|p| p.depth).sum()))
        .collect()
}

/// A topic's own depth plus its channels' at every sample.
fn queued_series(samples: &[&Sample], topic: &str) -> Vec<Option<i64>> {
    samples.iter().map(|s| queued_in(s, topic)).collect()
}

fn queued_in(s: &Sample, topic: &str) -> Option<i64> {
    let own: i64 = s.topics.get(topic)?.values().map(|p| p.depth).sum();
    let channels: i64 = s
        .channels
        .range((topic.to_string(), String::new())..)
        .take_while(|((t, _), _)| t == topic)
        .flat_map(|(_, nodes)| nodes.values())
        .map(|p| p.depth)
        .sum();
    Some(own + channels)
}

/// The rate between every two consecutive samples.
fn rate_series(samples: &[&Sample], key: &Key) -> Vec<Option<f64>> {
    samples
        .windows(2)
        .map(|w| {
            rate(
                points(w[0], key),
                points(w[1], key),
                seconds_between(w[0], w[1]),
            )
        })
        .collect()
}

/// Reads the cluster every interval and publishes a [`Summary`].
pub struct Sampler {
    pub cluster: Cluster,
    pub interval: Duration,
    pub history: History,
    /// nsqd address given on the command line → the name it answered with.
    pub names: BTreeMap<String, String>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Sampler {
    /// Take one sample of the cluster and sum it up.
    pub async fn tick(&mut self, src: &Sources) -> Summary {
        let mut warnings = Vec::new();
        let mut health = Vec::new();
        let producers: Vec<Producer> = if !src.lookupd.is_empty() {
            match self.cluster.producers(src).await {
                Ok(p) => {
                    if !p.errors.is_empty() {
                        warnings.push(p.errors.join("\n"));
                    }
                    p.value
                }
                Err(e) => {
                    warnings.push(e);
                    // Nothing listed: keep what was known (marked gone below
                    // only if a lookupd answered, so show them as unknown).
                    Vec::new()
                }
            }
        } else {
            let mut list = Vec::new();
            for (addr, outcome) in self.cluster.nsqd_producer_outcomes(&src.nsqd, None).await {
                match outcome {
                    Ok(Some(p)) => {
                        self.names.insert(addr, p.http_address());
                        list.push(p);
                    }
                    Ok(None) => {}
                    Err(e) => health.push(NodeHealth {
                        node: self.names.get(&addr).cloned().unwrap_or(addr),
                        hostname: String::new(),
                        version: String::new(),
                        state: "down",
                        error: e,
                        last_seen_ms: 0,
                    }),
                }
            }
            list
        };
        let at = now_ms();
        let mut per_node = Vec::new();
        for (p, outcome) in self.cluster.node_stats(&producers, "", "", false).await {
            let (state, error, seen) = match outcome {
                Ok(topics) => {
                    per_node.extend(topics);
                    ("ok", String::new(), at)
                }
                Err(e) => ("down", e, 0),
            };
            health.push(NodeHealth {
                node: p.http_address(),
                hostname: p.hostname.clone(),
                version: p.version.clone(),
                state,
                error,
                last_seen_ms: seen,
            });
        }
        if !src.lookupd.is_empty() && producers.is_empty() && !warnings.is_empty() {
            // No lookupd answered: what was known is not "gone", only unseen.
            for h in self.history.nodes.values() {
                let mut h = h.clone();
                if h.state == "ok" {
                    h.state = "down";
                    h.error = "no nsqlookupd answered".into();
                }
                health.push(h);
            }
        }
        self.history
            .record(Sample::from_stats(at, &per_node), health);
        self.history
            .summary(self.interval, super::aggregate::warning(&warnings))
    }
}

/// Run the sampler until `stop`, publishing each summary on `tx`.
pub async fn run(
    mut sampler: Sampler,
    sources: Arc<dyn Fn() -> Sources + Send + Sync>,
    tx: tokio::sync::watch::Sender<Arc<Summary>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(sampler.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let src = sources();
        let summary = tokio::select! {
            _ = stop.cancelled() => return,
            s = sampler.tick(&src) => s,
        };
        tx.send_replace(Arc::new(summary));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(depth: i64, message_count: i64) -> NodePoint {
        NodePoint {
            depth,
            message_count,
            ..NodePoint::default()
        }
    }

    fn nodes(list: &[(&str, i64, i64)]) -> BTreeMap<String, NodePoint> {
        list.iter()
            .map(|(n, d, m)| (n.to_string(), point(*d, *m)))
            .collect()
    }

    #[test]
    fn rates() {
        let a = nodes(&[("n1", 0, 100), ("n2", 0, 50)]);
        let b = nodes(&[("n1", 0, 150), ("n2", 0, 70), ("n3", 0, 1000)]);
        assert_eq!(
            rate(Some(&a), Some(&b), 2.0),
            Some(35.0),
            "n3 is new: not counted"
        );
        let restarted = nodes(&[("n1", 0, 10)]);
        assert_eq!(rate(Some(&a), Some(&restarted), 1.0), Some(10.0));
        assert_eq!(rate(None, Some(&b), 1.0), None);
        assert_eq!(rate(Some(&a), Some(&nodes(&[("x", 0, 1)])), 1.0), None);
        assert_eq!(rate(Some(&a), Some(&b), 0.0), None);
    }

    #[test]
    fn growth() {
        let s = |v: &[i64]| v.iter().map(|d| Some(*d)).collect::<Vec<_>>();
        assert!(is_growing(&s(&[0, 1, 2, 3, 4, 5])));
        assert!(
            is_growing(&s(&[9, 0, 5, 5, 6, 7, 7, 8])),
            "only the last six count"
        );
        assert!(!is_growing(&s(&[1, 2, 3, 4, 5])), "too short");
        assert!(!is_growing(&s(&[5, 5, 5, 5, 5, 5])), "flat");
        assert!(!is_growing(&s(&[1, 2, 3, 2, 4, 5])), "fell once");
        assert!(!is_growing(&[
            None,
            Some(1),
            Some(2),
            Some(3),
            Some(4),
            Some(5)
        ]));
    }

    fn sample(at_ms: i64, depth: i64, count: i64, nodes_: &[&str]) -> Sample {
        let mut s = Sample {
            at_ms,
            ..Sample::default()
        };
        for n in nodes_ {
            s.topics
                .entry("t".into())
                .or_default()
                .insert(n.to_string(), point(depth, count));
            s.channels
                .entry(("t".into(), "c".into()))
                .or_default()
                .insert(n.to_string(), point(depth, count));
        }
        s
    }

    fn ok(node: &str, at: i64) -> NodeHealth {
        NodeHealth {
            node: node.into(),
            hostname: "h".into(),
            version: "1.3.0".into(),
            state: "ok",
            error: String::new(),
            last_seen_ms: at,
        }
    }

    #[test]
    fn summaries() {
        let mut h = History::new(3);
        let empty = h.summary(Duration::from_secs(5), String::new());
        assert!(empty.topics.is_empty());
        for i in 0..8 {
            let at = i * 5000;
            h.record(
                sample(at, i * 10, i * 100, &["a", "b"]),
                vec![ok("a", at), ok("b", at)],
            );
        }
        assert_eq!(h.samples.len(), 3, "capacity");
        let s = h.summary(Duration::from_secs(5), "WARNING: x".into());
        assert_eq!(s.seq, 8);
        assert_eq!(s.message, "WARNING: x");
        let t = &s.topics[0];
        assert_eq!(t.depth, 140);
        assert_eq!(t.message_count, 1400);
        assert_eq!(t.rate, Some(40.0), "2 nodes × 100 msgs / 5 s");
        assert_eq!(t.depth_history, vec![Some(100), Some(120), Some(140)]);
        assert_eq!(t.queued, 280, "the topic's and its channel's");
        assert_eq!(t.queued_history, vec![Some(200), Some(240), Some(280)]);
        assert_eq!(t.rate_history, vec![Some(40.0), Some(40.0)]);
        assert_eq!(t.nodes[0].rate, Some(20.0));
        let c = &t.channels[0];
        assert_eq!(c.channel, "c");
        assert!(!c.growing, "three samples kept: too few to tell");

        let mut h = History::new(10);
        for i in 0..7 {
            h.record(sample(i * 5000, i, 0, &["a"]), vec![ok("a", i * 5000)]);
        }
        let s = h.summary(Duration::from_secs(5), String::new());
        assert!(s.topics[0].channels[0].growing);
    }

    #[test]
    fn node_health() {
        let mut h = History::new(10);
        h.record(sample(0, 0, 0, &["a", "b"]), vec![ok("a", 0), ok("b", 0)]);
        let mut down = ok("b", 0);
        down.state = "down";
        down.error = "connection refused".into();
        down.last_seen_ms = 0;
        down.hostname.clear();
        h.record(sample(5000, 0, 0, &["a"]), vec![ok("a", 5000), down]);
        let b = &h.nodes["b"];
        assert_eq!(
            (b.state, b.hostname.as_str()),
            ("down", "h"),
            "hostname remembered"
        );
        h.record(sample(10000, 0, 0, &["a"]), vec![ok("a", 10000)]);
        assert_eq!(h.nodes["b"].state, "down", "still down until listed again");
        h.record(sample(15000, 0, 0, &[]), vec![]);
        assert_eq!(h.nodes["a"].state, "gone");
        h.record(sample(200_000, 0, 0, &[]), vec![]);
        assert!(h.nodes.is_empty(), "forgotten after the history span");
    }
}
