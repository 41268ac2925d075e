//! `/stats`: the counters, in NSQ's JSON shape (field names and order as
//! nsqd's, which nsq_stat and nsqadmin parse) and in its text layout.

use super::channel::Channel;
use super::client_state::ClientHandle;
use super::topic::Topic;
use super::Nsqd;
use crate::protocol::NSQ_VERSION;
use serde::Serialize;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

#[derive(Serialize, Debug)]
pub struct Stats {
    pub version: &'static str,
    pub health: String,
    pub start_time: i64,
    pub topics: Option<Vec<TopicStats>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemStats>,
    pub producers: Option<Vec<ClientStats>>,
}

#[derive(Serialize, Debug)]
pub struct TopicStats {
    pub topic_name: String,
    pub channels: Vec<ChannelStats>,
    pub depth: u64,
    pub backend_depth: u64,
    pub message_count: u64,
    pub message_bytes: u64,
    pub paused: bool,
    pub e2e_processing_latency: E2eLatency,
}

#[derive(Serialize, Debug)]
pub struct ChannelStats {
    pub channel_name: String,
    pub depth: u64,
    pub backend_depth: u64,
    pub in_flight_count: u64,
    pub deferred_count: u64,
    pub message_count: u64,
    pub requeue_count: u64,
    pub timeout_count: u64,
    pub client_count: usize,
    pub clients: Option<Vec<ClientStats>>,
    pub paused: bool,
    pub e2e_processing_latency: E2eLatency,
    /// Dead letters (beyond NSQ): shown only when the channel has a
    /// maximum of attempts, so NSQ's shape is unchanged otherwise.
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub dead_letters: Option<DeadLetterStats>,
}

#[derive(Serialize, Debug)]
pub struct DeadLetterStats {
    pub max_attempts: u16,
    pub dead_letter_topic: String,
    pub dead_letter_count: u64,
}

/// Always an object: NSQ's tools crash on `null` here.
#[derive(Serialize, Debug, Default)]
pub struct E2eLatency {
    pub count: u64,
    pub percentiles: Option<Vec<Percentile>>,
}

#[derive(Serialize, Debug)]
pub struct Percentile {
    pub quantile: f64,
    pub value: f64,
}

#[derive(Serialize, Debug)]
pub struct PubCount {
    pub topic: String,
    pub count: u64,
}

#[derive(Serialize, Debug)]
pub struct ClientStats {
    pub client_id: String,
    pub hostname: String,
    pub version: &'static str,
    pub remote_address: String,
    pub state: i32,
    pub ready_count: i64,
    pub in_flight_count: i64,
    pub message_count: u64,
    pub finish_count: u64,
    pub requeue_count: u64,
    pub connect_ts: i64,
    pub sample_rate: i32,
    pub deflate: bool,
    pub snappy: bool,
    pub user_agent: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub authed: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_identity: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_identity_url: String,
    /// Only on NSQ's master branch: sent when set.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub topology_zone: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub topology_region: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pub_counts: Vec<PubCount>,
    pub tls: bool,
    pub tls_cipher_suite: String,
    pub tls_version: String,
    pub tls_negotiated_protocol: String,
    pub tls_negotiated_protocol_is_mutual: bool,
}

/// Memory figures in the shape of Go's; we report the process's resident
/// size as the in-use heap and zero for the garbage-collector-only ones.
#[derive(Serialize, Debug, Default)]
pub struct MemStats {
    pub heap_objects: u64,
    pub heap_idle_bytes: u64,
    pub heap_in_use_bytes: u64,
    pub heap_released_bytes: u64,
    pub gc_pause_usec_100: u64,
    pub gc_pause_usec_99: u64,
    pub gc_pause_usec_95: u64,
    pub next_gc_bytes: u64,
    pub gc_total_runs: u64,
}

impl MemStats {
    /// Name and figure of each field, in the order nsqd prints them.
    fn fields(&self) -> [(&'static str, u64); 9] {
        [
            ("heap_objects", self.heap_objects),
            ("heap_idle_bytes", self.heap_idle_bytes),
            ("heap_in_use_bytes", self.heap_in_use_bytes),
            ("heap_released_bytes", self.heap_released_bytes),
            ("gc_pause_usec_100", self.gc_pause_usec_100),
            ("gc_pause_usec_99", self.gc_pause_usec_99),
            ("gc_pause_usec_95", self.gc_pause_usec_95),
            ("next_gc_bytes", self.next_gc_bytes),
            ("gc_total_runs", self.gc_total_runs),
        ]
    }
}

impl Stats {
    /// Keep only the channels `channel_ok` (topic, channel) accepts, the
    /// topics `topic_ok` accepts or that kept a channel, and the producers
    /// of the topics kept.
    pub fn retain(
        &mut self,
        topic_ok: impl Fn(&str) -> bool,
        channel_ok: impl Fn(&str, &str) -> bool,
    ) {
        let mut kept = std::collections::HashSet::new();
        if let Some(topics) = &mut self.topics {
            topics.retain_mut(|t| {
                t.channels
                    .retain(|c| channel_ok(&t.topic_name, &c.channel_name));
                let keep = !t.channels.is_empty() || topic_ok(&t.topic_name);
                if keep {
                    kept.insert(t.topic_name.clone());
                }
                keep
            });
        }
        if let Some(producers) = &mut self.producers {
            producers.retain(|p| {
                !p.pub_counts.is_empty() && p.pub_counts.iter().all(|c| kept.contains(&c.topic))
            });
            if producers.is_empty() {
                self.producers = None;
            }
        }
    }
}

/// What `/stats` was asked for.
#[derive(Debug, Default, Clone)]
pub struct StatsFilter {
    pub topic: Option<String>,
    pub channel: Option<String>,
    pub include_clients: bool,
    pub include_mem: bool,
}

impl MemStats {
    pub fn read() -> MemStats {
        // /proc/self/statm: pages of total and resident memory.
        let resident = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|pages| pages * 4096)
            .unwrap_or(0);
        MemStats {
            heap_in_use_bytes: resident,
            ..Default::default()
        }
    }
}

pub fn client_stats(c: &ClientHandle, topic_filter: Option<&str>) -> ClientStats {
    let info = c.info.lock().clone();
    let pub_counts = {
        let counts = c.pub_counts.lock();
        // nsqd reports at most one entry: the filtered topic's, or any.
        let entry = match topic_filter {
            Some(t) => counts.get_key_value(t),
            None => counts.iter().next(),
        };
        entry
            .map(|(t, n)| {
                vec![PubCount {
                    topic: t.clone(),
                    count: *n,
                }]
            })
            .unwrap_or_default()
    };
    ClientStats {
        client_id: info.client_id,
        hostname: info.hostname,
        version: "V2",
        remote_address: c.remote_addr.to_string(),
        state: c.state_code(),
        ready_count: c.ready_count.load(Relaxed),
        in_flight_count: c.in_flight.load(Relaxed),
        message_count: c.message_count.load(Relaxed),
        finish_count: c.finish_count.load(Relaxed),
        requeue_count: c.requeue_count.load(Relaxed),
        connect_ts: c.connect_ts,
        sample_rate: c.sample_rate.load(Relaxed),
        deflate: info.deflate,
        snappy: info.snappy,
        user_agent: info.user_agent,
        authed: info.authed,
        auth_identity: info.auth_identity,
        auth_identity_url: info.auth_identity_url,
        topology_zone: info.topology_zone,
        topology_region: info.topology_region,
        pub_counts,
        tls: info.tls,
        tls_cipher_suite: info.tls_cipher_suite,
        tls_version: info.tls_version,
        tls_negotiated_protocol: String::new(),
        tls_negotiated_protocol_is_mutual: false,
    }
}

/// The text format's `e2e%:` values: durations joined by `, `.
fn e2e_text(e: &E2eLatency) -> String {
    e.percentiles
        .iter()
        .flatten()
        .map(|p| crate::cli::format_duration(std::time::Duration::from_nanos(p.value as u64)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which e2e latency percentiles to report, and over what window.
pub struct E2eConfig {
    /// Descending, as NSQ reports them.
    pub quantiles: Vec<f64>,
    pub window: std::time::Duration,
}

impl E2eConfig {
    pub fn from_options(opts: &super::Options) -> Self {
        let mut quantiles = opts.e2e_processing_latency_percentiles.clone();
        quantiles.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
        quantiles.dedup();
        E2eConfig {
            quantiles,
            window: opts.e2e_processing_latency_window_time,
        }
    }

    /// The stats object for these samples.
    pub fn summarize(&self, samples: Vec<u64>) -> E2eLatency {
        if self.quantiles.is_empty() {
            return E2eLatency::default();
        }
        let count = samples.len() as u64;
        E2eLatency {
            count,
            percentiles: super::latency::percentiles(samples, &self.quantiles).map(|ps| {
                ps.into_iter()
                    .map(|(quantile, value)| Percentile { quantile, value })
                    .collect()
            }),
        }
    }
}

fn channel_stats(ch: &Channel, include_clients: bool, e2e: &E2eConfig) -> ChannelStats {
    let counts = ch.counts();
    let clients = include_clients.then(|| {
        counts
            .clients
            .iter()
            .map(|c| client_stats(c, None))
            .collect()
    });
    ChannelStats {
        channel_name: ch.name.clone(),
        depth: counts.depth,
        backend_depth: counts.backend_depth,
        in_flight_count: counts.in_flight,
        deferred_count: counts.deferred,
        message_count: ch.message_count.load(Relaxed),
        requeue_count: ch.requeue_count.load(Relaxed),
        timeout_count: ch.timeout_count.load(Relaxed),
        client_count: counts.clients.len(),
        clients,
        paused: ch.is_paused(),
        e2e_processing_latency: e2e.summarize(ch.latencies.recent(e2e.window)),
        dead_letters: {
            let config = ch.dead_letter_config();
            (config.max_attempts > 0).then(|| DeadLetterStats {
                max_attempts: config.max_attempts,
                dead_letter_topic: config.topic,
                dead_letter_count: ch.dead_letter_count.load(Relaxed),
            })
        },
    }
}

fn topic_stats(t: &Topic, filter: &StatsFilter, e2e: &E2eConfig) -> Option<TopicStats> {
    let counts = t.counts();
    let channels: Vec<ChannelStats> = counts
        .channels
        .iter()
        .filter(|c| filter.channel.as_deref().is_none_or(|name| c.name == name))
        .map(|c| channel_stats(c, filter.include_clients, e2e))
        .collect();
    if filter.channel.is_some() && channels.is_empty() {
        return None;
    }
    Some(TopicStats {
        topic_name: t.name.clone(),
        channels,
        depth: counts.depth,
        backend_depth: counts.backend_depth,
        message_count: t.message_count.load(Relaxed),
        message_bytes: t.message_bytes.load(Relaxed),
        paused: t.is_paused(),
        // Over every channel of the topic, as NSQ aggregates them.
        e2e_processing_latency: e2e.summarize(
            counts
                .channels
                .iter()
                .flat_map(|c| c.latencies.recent(e2e.window))
                .collect(),
        ),
    })
}

/// Gather `/stats` for `filter`.
pub fn collect(nsqd: &Nsqd, filter: &StatsFilter) -> Stats {
    let e2e = E2eConfig::from_options(&nsqd.opts);
    let topics: Option<Vec<TopicStats>> = match &filter.topic {
        Some(name) => nsqd
            .get_topic(name)
            .map(|t| topic_stats(&t, filter, &e2e).into_iter().collect()),
        None => Some(
            nsqd.topics()
                .iter()
                .filter_map(|t| topic_stats(t, filter, &e2e))
                .collect(),
        ),
    };
    let producers = if filter.include_clients {
        let list: Vec<ClientStats> = nsqd
            .clients()
            .iter()
            .filter(|c| {
                let counts = c.pub_counts.lock();
                match &filter.topic {
                    Some(t) => counts.contains_key(t),
                    None => !counts.is_empty(),
                }
            })
            .map(|c| client_stats(c, filter.topic.as_deref()))
            .collect();
        (!list.is_empty()).then_some(list)
    } else {
        None
    };
    Stats {
        version: NSQ_VERSION,
        health: health_text(nsqd),
        start_time: nsqd.start_time,
        topics,
        memory: filter.include_mem.then(MemStats::read),
        producers,
    }
}

pub fn health_text(nsqd: &Nsqd) -> String {
    match nsqd.health() {
        None => "OK".to_string(),
        Some(e) => format!("NOK - {e}"),
    }
}

/// The human-readable form of `/stats` (no `format=json`).
pub fn render_text(nsqd: &Nsqd, stats: &Stats) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "nsqd v{NSQ_VERSION} (nsq-rs {})",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(out, "start_time {}", crate::sys::rfc3339(stats.start_time));
    let _ = writeln!(
        out,
        "uptime {}",
        crate::cli::format_duration(nsqd.started.elapsed())
    );
    let _ = writeln!(out, "\nHealth: {}", stats.health);
    if let Some(mem) = &stats.memory {
        let _ = writeln!(out, "\nMemory:");
        for (k, v) in mem.fields() {
            let _ = writeln!(out, "   {k:<25}\t{v}");
        }
    }
    match stats.topics.as_deref() {
        None | Some([]) => {
            let _ = writeln!(out, "\nTopics: None");
        }
        Some(topics) => {
            // nsqd starts every topic with a newline after a bare
            // "Topics:", so topics after the first follow a blank line.
            let _ = write!(out, "\nTopics:");
            for t in topics {
                let prefix = if t.paused { "*P " } else { "   " };
                let _ = writeln!(
                    out,
                    "\n{prefix}[{:<15}] depth: {:<5} be-depth: {:<5} msgs: {:<8} e2e%: {}",
                    t.topic_name,
                    t.depth,
                    t.backend_depth,
                    t.message_count,
                    e2e_text(&t.e2e_processing_latency)
                );
                for c in &t.channels {
                    let prefix = if c.paused { "   *P " } else { "      " };
                    let _ = writeln!(
                        out,
                        "{prefix}[{:<25}] depth: {:<5} be-depth: {:<5} inflt: {:<4} def: {:<4} re-q: {:<5} timeout: {:<5} msgs: {:<8} e2e%: {}",
                        c.channel_name, c.depth, c.backend_depth, c.in_flight_count,
                        c.deferred_count, c.requeue_count, c.timeout_count, c.message_count,
                        e2e_text(&c.e2e_processing_latency)
                    );
                    for cl in c.clients.iter().flatten() {
                        let _ = writeln!(out, "        {}", client_line(cl));
                    }
                }
            }
        }
    }
    match &stats.producers {
        None => {
            let _ = writeln!(out, "\nProducers: None");
        }
        Some(list) => {
            let _ = writeln!(out, "\nProducers:");
            for p in list {
                let topics: Vec<String> = p
                    .pub_counts
                    .iter()
                    .map(|c| format!("{}={}", c.topic, c.count))
                    .collect();
                let _ = writeln!(
                    out,
                    "   [{:<21}] msgs: {:<8} topics: {} connected: {}",
                    client_name(p),
                    p.message_count,
                    topics.join(","),
                    connected_for(p.connect_ts)
                );
            }
        }
    }
    out
}

fn client_name(c: &ClientStats) -> String {
    let port = crate::listen::split_host_port(&c.remote_address)
        .map(|(_, port)| port)
        .unwrap_or("");
    format!("{} {}:{} {}", c.version, c.hostname, port, c.user_agent)
}

fn client_line(c: &ClientStats) -> String {
    format!(
        "[{:<21}] state: {} inflt: {:<4} rdy: {:<4} fin: {:<8} re-q: {:<8} msgs: {:<8} connected: {}",
        client_name(c),
        c.state,
        c.in_flight_count,
        c.ready_count,
        c.finish_count,
        c.requeue_count,
        c.message_count,
        connected_for(c.connect_ts)
    )
}

fn connected_for(connect_ts: i64) -> String {
    let secs = (crate::sys::unix_seconds() - connect_ts).max(0) as u64;
    crate::cli::format_duration(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {}
}
