//! How nsqadmin turns what each nsqd and nsqlookupd said into one picture of
//! the cluster, as NSQ's nsqadmin does: pure functions over the decoded
//! answers, so every rule is unit-tested on fixtures.
//!
//! The error rule: a question put to several daemons fails only when every
//! one of them failed; when some failed, the answer is what the others said
//! plus their errors (a *partial* result, shown as a warning).

use super::types::*;
use std::collections::BTreeMap;

/// A result some of whose sources may have failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Partial<T> {
    pub value: T,
    /// One line per failed source.
    pub errors: Vec<String>,
}

/// `Err` when nothing answered: NSQ's `failed to query any <what>: ...`.
pub type Gathered<T> = Result<Partial<T>, String>;

impl<T> Partial<T> {
    pub fn ok(value: T) -> Partial<T> {
        Partial {
            value,
            errors: Vec::new(),
        }
    }
}

/// The sources that answered (with their answers), and the errors of the
/// others.
pub type Answers<A, T> = (Vec<(A, T)>, Vec<String>);

/// Apply the error rule to per-source outcomes: `Err` only when sources
/// were asked and every one failed.
pub fn gather<A, T>(
    what: &str,
    outcomes: Vec<(A, Result<T, String>)>,
) -> Result<Answers<A, T>, String> {
    let asked = outcomes.len();
    let mut good = Vec::new();
    let mut errors = Vec::new();
    for (source, outcome) in outcomes {
        match outcome {
            Ok(v) => good.push((source, v)),
            Err(e) => errors.push(e),
        }
    }
    if asked > 0 && errors.len() == asked {
        return Err(format!("failed to query any {what}: {}", errors.join("\n")));
    }
    Ok((good, errors))
}

/// The sorted union of names several daemons listed.
pub fn union_sorted(lists: impl IntoIterator<Item = Vec<String>>) -> Vec<String> {
    let mut all: Vec<String> = lists.into_iter().flatten().collect();
    all.sort();
    all.dedup();
    all
}

/// Every nsqd the nsqlookupds know, once each (keyed by broadcast TCP
/// address), with the lookupds that list it in `remote_addresses`, marked
/// out of date when older than the newest; sorted by hostname.
pub fn merge_lookupd_nodes(per_lookupd: Vec<(String, Vec<LookupdProducer>)>) -> Vec<Producer> {
    let mut producers: Vec<Producer> = Vec::new();
    for (lookupd, list) in per_lookupd {
        for p in list {
            let p = Producer::from_lookupd(p);
            let via = format!(
                "{lookupd}/{}",
                if p.remote_address.is_empty() {
                    "N/A"
                } else {
                    &p.remote_address
                }
            );
            match producers
                .iter_mut()
                .find(|q| q.tcp_address() == p.tcp_address())
            {
                Some(known) => known.remote_addresses.push(via),
                None => {
                    let mut p = p;
                    p.topics.sort();
                    p.remote_addresses.push(via);
                    producers.push(p);
                }
            }
        }
    }
    let newest = producers
        .iter()
        .map(|p| Version::parse(&p.version))
        .max()
        .unwrap_or_default();
    for p in &mut producers {
        p.out_of_date = Version::parse(&p.version) < newest;
    }
    producers.sort_by(|a, b| {
        (a.hostname.as_str(), a.http_address()).cmp(&(b.hostname.as_str(), b.http_address()))
    });
    producers
}

/// The producers of one topic from several lookupds' `/lookup`, once each
/// (keyed by broadcast HTTP address), in the order first seen.
pub fn merge_topic_producers(per_lookupd: Vec<Vec<LookupdProducer>>) -> Vec<Producer> {
    let mut out: Vec<Producer> = Vec::new();
    for p in per_lookupd.into_iter().flatten() {
        let p = Producer::from_lookupd(p);
        if !out.iter().any(|q| q.http_address() == p.http_address()) {
            out.push(p);
        }
    }
    out
}

/// An nsqd named by `--nsqd-http-address`, as a producer: its `/info`
/// (falling back on the address it was reached at, as NSQ does for old
/// nsqd) and the topics its `/stats` listed.
pub fn nsqd_producer(addr: &str, info: NsqdInfo, topics: &[String]) -> Producer {
    let mut info = info;
    if info.broadcast_address.is_empty() {
        if let Some((host, port)) = addr.rsplit_once(':') {
            info.broadcast_address = host.trim_matches(['[', ']']).to_string();
            info.http_port = port.parse().unwrap_or(0);
        }
    }
    if info.hostname.is_empty() {
        info.hostname = addr
            .rsplit_once(':')
            .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
            .unwrap_or_default();
    }
    Producer {
        remote_addresses: Vec::new(),
        remote_address: String::new(),
        hostname: info.hostname,
        broadcast_address: info.broadcast_address,
        tcp_port: info.tcp_port,
        http_port: info.http_port,
        version: info.version,
        topics: topics
            .iter()
            .map(|t| ProducerTopic {
                topic: t.clone(),
                tombstoned: false,
            })
            .collect(),
        out_of_date: false,
    }
}

/// One nsqd's `/stats` as nsqadmin's per-node topic figures: node and
/// hostname filled in, memory depth worked out, clients' connected time
/// computed against `now` (Unix seconds). Only `topic` when given.
pub fn node_topics(p: &Producer, stats: NsqdStats, topic: &str, now: i64) -> Vec<TopicStats> {
    let node = p.http_address();
    let mut out = Vec::new();
    for t in stats.topics {
        if !topic.is_empty() && t.topic_name != topic {
            continue;
        }
        let channels = t
            .channels
            .into_iter()
            .map(|c| ChannelStats {
                node: node.clone(),
                hostname: p.hostname.clone(),
                topic_name: t.topic_name.clone(),
                channel_name: c.channel_name,
                depth: c.depth,
                memory_depth: c.depth - c.backend_depth,
                backend_depth: c.backend_depth,
                in_flight_count: c.in_flight_count,
                deferred_count: c.deferred_count,
                requeue_count: c.requeue_count,
                timeout_count: c.timeout_count,
                message_count: c.message_count,
                client_count: c.client_count,
                nodes: Vec::new(),
                clients: c
                    .clients
                    .into_iter()
                    .map(|mut cl| {
                        cl.node = node.clone();
                        cl.connected = (now - cl.connect_ts).max(0) * 1_000_000_000;
                        cl
                    })
                    .collect(),
                paused: c.paused,
                e2e_processing_latency: E2eAggregate::from_node(&c.e2e_processing_latency),
            })
            .collect();
        out.push(TopicStats {
            node: node.clone(),
            hostname: p.hostname.clone(),
            topic_name: t.topic_name,
            depth: t.depth,
            memory_depth: t.depth - t.backend_depth,
            backend_depth: t.backend_depth,
            message_count: t.message_count,
            nodes: Vec::new(),
            channels,
            paused: t.paused,
            e2e_processing_latency: E2eAggregate::from_node(&t.e2e_processing_latency),
        });
    }
    out
}

fn by_host<T>(key: impl Fn(&T) -> (String, String)) -> impl FnMut(&T, &T) -> std::cmp::Ordering {
    move |a, b| key(a).cmp(&key(b))
}

/// Every node's topics (sorted by hostname) and every channel summed over
/// nodes, keyed by channel name when one topic was asked for, else by
/// `topic:channel` (as NSQ keys them).
pub fn cluster_stats(
    per_node: Vec<Vec<TopicStats>>,
    one_topic: bool,
) -> (Vec<TopicStats>, BTreeMap<String, ChannelStats>) {
    let mut topics: Vec<TopicStats> = per_node.into_iter().flatten().collect();
    topics.sort_by(by_host(|t: &TopicStats| {
        (t.hostname.clone(), t.node.clone())
    }));
    let mut channels: BTreeMap<String, ChannelStats> = BTreeMap::new();
    for t in &topics {
        for c in &t.channels {
            let key = if one_topic {
                c.channel_name.clone()
            } else {
                format!("{}:{}", t.topic_name, c.channel_name)
            };
            channels
                .entry(key)
                .or_insert_with(|| ChannelStats {
                    topic_name: t.topic_name.clone(),
                    channel_name: c.channel_name.clone(),
                    ..ChannelStats::default()
                })
                .add(c);
        }
    }
    (topics, channels)
}

impl ChannelStats {
    /// Add one node's figures into a sum.
    pub fn add(&mut self, a: &ChannelStats) {
        self.node = "*".into();
        self.depth += a.depth;
        self.memory_depth += a.memory_depth;
        self.backend_depth += a.backend_depth;
        self.in_flight_count += a.in_flight_count;
        self.deferred_count += a.deferred_count;
        self.requeue_count += a.requeue_count;
        self.timeout_count += a.timeout_count;
        self.message_count += a.message_count;
        self.client_count += a.client_count;
        self.paused |= a.paused;
        if self.e2e_processing_latency.host.is_empty() {
            self.e2e_processing_latency.topic = self.topic_name.clone();
            self.e2e_processing_latency.channel = self.channel_name.clone();
        }
        self.e2e_processing_latency.add(&a.e2e_processing_latency);
        self.clients.extend(a.clients.iter().cloned());
        self.clients.sort_by(by_host(|c: &ClientStats| {
            (c.hostname.clone(), c.remote_address.clone())
        }));
        self.nodes.push(a.clone());
        self.nodes.sort_by(by_host(|c: &ChannelStats| {
            (c.hostname.clone(), c.node.clone())
        }));
    }
}

/// One topic summed over the nodes that have it: totals, the per-node
/// figures in `nodes`, and each channel summed over nodes (its per-node
/// figures in its own `nodes`).
pub fn topic_total(topic: &str, per_node: &[TopicStats]) -> TopicStats {
    let mut total = TopicStats {
        topic_name: topic.to_string(),
        ..TopicStats::default()
    };
    for a in per_node {
        total.node = "*".into();
        total.depth += a.depth;
        total.memory_depth += a.memory_depth;
        total.backend_depth += a.backend_depth;
        total.message_count += a.message_count;
        total.paused |= a.paused;
        for c in &a.channels {
            match total
                .channels
                .iter_mut()
                .find(|t| t.channel_name == c.channel_name)
            {
                Some(sum) => sum.add(c),
                None => {
                    let mut sum = ChannelStats {
                        topic_name: topic.to_string(),
                        channel_name: c.channel_name.clone(),
                        ..ChannelStats::default()
                    };
                    sum.add(c);
                    total.channels.push(sum);
                }
            }
        }
        if total.e2e_processing_latency.host.is_empty() {
            total.e2e_processing_latency.topic = topic.to_string();
        }
        total.e2e_processing_latency.add(&a.e2e_processing_latency);
        total.nodes.push(a.clone());
    }
    total.nodes.sort_by(by_host(|t: &TopicStats| {
        (t.hostname.clone(), t.node.clone())
    }));
    total
        .channels
        .sort_by(|a, b| a.channel_name.cmp(&b.channel_name));
    total
}

/// `/api/counter`'s entries: messages per `topic:channel:node`.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct CounterStats {
    pub node: String,
    pub topic_name: String,
    pub channel_name: String,
    pub message_count: i64,
}

pub fn counter(channels: &BTreeMap<String, ChannelStats>) -> BTreeMap<String, CounterStats> {
    let mut out: BTreeMap<String, CounterStats> = BTreeMap::new();
    for c in channels.values() {
        for n in &c.nodes {
            let key = format!("{}:{}:{}", c.topic_name, c.channel_name, n.node);
            out.entry(key)
                .or_insert_with(|| CounterStats {
                    node: n.node.clone(),
                    topic_name: c.topic_name.clone(),
                    channel_name: c.channel_name.clone(),
                    message_count: 0,
                })
                .message_count += n.message_count;
        }
    }
    out
}

/// `/api/nodes/:node`'s totals: messages over topics, clients over channels.
pub fn node_totals(topics: &[TopicStats]) -> (i64, i64) {
    let messages = topics.iter().map(|t| t.message_count).sum();
    let clients = topics
        .iter()
        .flat_map(|t| &t.channels)
        .map(|c| c.clients.len() as i64)
        .sum();
    (messages, clients)
}

/// NSQ's warning text for partial results: `WARNING: a; b`, or empty.
pub fn warning(messages: &[String]) -> String {
    if messages.is_empty() {
        String::new()
    } else {
        format!("WARNING: {}", messages.join("; "))
    }
}

/// A semantic version, enough to tell which nsqd are out of date
/// (unparseable versions count as 0.0.0, as in NSQ).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    core: (u64, u64, u64),
    /// A release sorts after its pre-releases.
    release: bool,
    pre: String,
}

impl Version {
    pub fn parse(s: &str) -> Version {
        let s = s.trim().trim_start_matches('v');
        let (main, pre) = match s.split_once('-') {
            Some((m, p)) => (m, p.to_string()),
            None => (s, String::new()),
        };
        let main = main.split('+').next().unwrap_or(main);
        let nums: Vec<Option<u64>> = main.split('.').map(|n| n.parse().ok()).collect();
        match nums.as_slice() {
            [Some(a), Some(b), Some(c)] => Version {
                core: (*a, *b, *c),
                release: pre.is_empty(),
                pre,
            },
            _ => Version::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/nsq-v1.3.0");

    /// NSQ's v1.3.0 capture when the shared fixtures are there, else the
    /// same shape written here.
    fn fixture(name: &str, fallback: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap_or_else(|_| fallback.into())
    }

    fn stats_fixture() -> NsqdStats {
        let text = fixture(
            "nsqd-stats.json",
            r#"{"topics":[{"topic_name":"audit","channels":[],"depth":1,"backend_depth":0,"message_count":1,"paused":false,"e2e_processing_latency":{"count":0,"percentiles":null}},{"topic_name":"orders","channels":[{"channel_name":"billing","depth":2,"backend_depth":0,"in_flight_count":1,"deferred_count":0,"message_count":3,"requeue_count":0,"timeout_count":0,"client_count":1,"clients":[{"client_id":"capture","hostname":"capture-host","version":"V2","remote_address":"127.0.0.1:57822","state":3,"ready_count":1,"in_flight_count":1,"message_count":1,"finish_count":0,"requeue_count":0,"connect_ts":1795999091,"sample_rate":0,"deflate":false,"snappy":false,"user_agent":"capture/1.0","tls":false,"tls_cipher_suite":"","tls_version":"","tls_negotiated_protocol":"","tls_negotiated_protocol_is_mutual":false}],"paused":false,"e2e_processing_latency":{"count":0,"percentiles":null}},{"channel_name":"email","depth":3,"backend_depth":0,"in_flight_count":0,"deferred_count":0,"message_count":3,"requeue_count":0,"timeout_count":0,"client_count":0,"clients":[],"paused":false,"e2e_processing_latency":{"count":0,"percentiles":null}}],"depth":0,"backend_depth":0,"message_count":3,"paused":false,"e2e_processing_latency":{"count":0,"percentiles":null}}],"producers":null}"#,
        );
        serde_json::from_str(&text).unwrap()
    }

    fn node(host: &str, port: i64) -> Producer {
        Producer {
            hostname: host.into(),
            broadcast_address: "127.0.0.1".into(),
            http_port: port,
            tcp_port: port - 1,
            version: "1.3.0".into(),
            ..Producer::default()
        }
    }

    #[test]
    fn error_rule() {
        let all_bad: Vec<(&str, Result<i32, String>)> =
            vec![("a", Err("e1".into())), ("b", Err("e2".into()))];
        assert_eq!(
            gather("nsqd", all_bad).unwrap_err(),
            "failed to query any nsqd: e1\ne2"
        );
        let some_bad = vec![("a", Ok(1)), ("b", Err("e2".to_string()))];
        let (good, errors) = gather("nsqd", some_bad).unwrap();
        assert_eq!(good, vec![("a", 1)]);
        assert_eq!(errors, vec!["e2"]);
        let none: Vec<(&str, Result<i32, String>)> = Vec::new();
        assert!(
            gather("nsqd", none).unwrap().0.is_empty(),
            "nothing asked is no failure"
        );
        assert_eq!(warning(&[]), "");
        assert_eq!(warning(&["a\nb".into(), "c".into()]), "WARNING: a\nb; c");
    }

    #[test]
    fn lookupd_nodes_are_merged_and_marked() {
        let nodes: LookupdProducers = serde_json::from_str(&fixture(
            "lookupd-nodes.json",
            r#"{"producers":[{"remote_address":"127.0.0.1:45624","hostname":"vm","broadcast_address":"127.0.0.1","tcp_port":50207,"http_port":39499,"version":"1.3.0","tombstones":[false,false],"topics":["audit","orders"]}]}"#,
        ))
        .unwrap();
        let mut old = nodes.producers[0].clone();
        old.broadcast_address = "10.0.0.9".into();
        old.hostname = "alpha".into();
        old.version = "1.2.1".into();
        old.topics = vec!["zeta".into(), "audit".into()];
        old.tombstones = vec![true, false];
        let merged = merge_lookupd_nodes(vec![
            ("l1:4161".into(), nodes.producers.clone()),
            ("l2:4161".into(), vec![nodes.producers[0].clone(), old]),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].hostname, "alpha", "sorted by hostname");
        assert!(merged[0].out_of_date);
        assert_eq!(
            merged[0].topics,
            vec![
                ProducerTopic {
                    topic: "audit".into(),
                    tombstoned: false
                },
                ProducerTopic {
                    topic: "zeta".into(),
                    tombstoned: true
                }
            ]
        );
        let vm = &merged[1];
        assert!(!vm.out_of_date);
        assert_eq!(
            vm.remote_addresses,
            vec!["l1:4161/127.0.0.1:45624", "l2:4161/127.0.0.1:45624"]
        );
        let json = serde_json::to_string(vm).unwrap();
        assert!(
            json.starts_with(r#"{"remote_addresses":["l1:4161/127.0.0.1:45624","l2:4161/127.0.0.1:45624"],"remote_address":"127.0.0.1:45624","hostname":"vm","broadcast_address":"127.0.0.1","tcp_port":50207,"http_port":39499,"version":"1.3.0","topics":[{"topic":"audit","tombstoned":false}"#),
            "{json}"
        );
        assert!(json.ends_with(r#""out_of_date":false}"#));
    }

    #[test]
    fn topic_producers_once_each() {
        let lookup: LookupdProducers = serde_json::from_str(&fixture(
            "lookupd-lookup.json",
            r#"{"channels":["billing","email"],"producers":[{"remote_address":"127.0.0.1:45624","hostname":"vm","broadcast_address":"127.0.0.1","tcp_port":50207,"http_port":39499,"version":"1.3.0"}]}"#,
        ))
        .unwrap();
        let merged = merge_topic_producers(vec![lookup.producers.clone(), lookup.producers]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].http_address(), "127.0.0.1:39499");
        assert_eq!(
            union_sorted(vec![
                vec!["b".into(), "a".into()],
                vec!["a".into(), "c".into()]
            ]),
            vec!["a", "b", "c"]
        );
    }

    #[test]
    fn nsqd_producer_falls_back_on_its_address() {
        let p = nsqd_producer("10.1.2.3:4151", NsqdInfo::default(), &["t".into()]);
        assert_eq!(p.http_address(), "10.1.2.3:4151");
        assert_eq!(p.hostname, "10.1.2.3");
        assert_eq!(p.topics[0].topic, "t");
        let info: NsqdInfo = serde_json::from_str(&fixture(
            "nsqd-info.json",
            r#"{"version":"1.3.0","broadcast_address":"127.0.0.1","hostname":"vm","http_port":39499,"tcp_port":50207}"#,
        ))
        .unwrap();
        let p = nsqd_producer("localhost:39499", info, &[]);
        assert_eq!(p.http_address(), "127.0.0.1:39499");
        assert_eq!(p.hostname, "vm");
    }

    #[test]
    fn one_node_figures() {
        let p = node("vm", 4151);
        let topics = node_topics(&p, stats_fixture(), "", 1795999101);
        assert_eq!(topics.len(), 2);
        let orders = &topics[1];
        assert_eq!(orders.node, "127.0.0.1:4151");
        assert_eq!(orders.hostname, "vm");
        let billing = &orders.channels[0];
        assert_eq!(billing.memory_depth, 2);
        assert_eq!(billing.topic_name, "orders");
        let client = &billing.clients[0];
        assert_eq!(client.node, "127.0.0.1:4151");
        assert_eq!(client.connected, 10_000_000_000);
        assert_eq!(client.user_agent, "capture/1.0");
        let only = node_topics(&p, stats_fixture(), "orders", 0);
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn sums_over_nodes() {
        let a = node_topics(&node("host-b", 2), stats_fixture(), "orders", 0);
        let mut b = node_topics(&node("host-a", 1), stats_fixture(), "orders", 0);
        b[0].paused = true;
        b[0].channels[1].depth = 10;
        b[0].channels.push(ChannelStats {
            channel_name: "archive".into(),
            depth: 5,
            ..ChannelStats::default()
        });
        let (topics, channels) = cluster_stats(vec![a, b], true);
        assert_eq!(topics[0].hostname, "host-a", "nodes sorted by hostname");
        assert_eq!(channels["email"].depth, 13);
        assert_eq!(channels["email"].node, "*");
        assert_eq!(channels["billing"].clients.len(), 2);
        assert_eq!(channels["billing"].nodes.len(), 2);
        assert_eq!(channels["billing"].nodes[0].hostname, "host-a");

        let total = topic_total("orders", &topics);
        assert_eq!(total.node, "*");
        assert_eq!(total.message_count, 6);
        assert!(total.paused, "paused on any node");
        assert_eq!(total.nodes.len(), 2);
        let names: Vec<&str> = total
            .channels
            .iter()
            .map(|c| c.channel_name.as_str())
            .collect();
        assert_eq!(names, vec!["archive", "billing", "email"]);
        assert_eq!(total.channels[2].depth, 13);
        assert_eq!(total.channels[2].nodes.len(), 2);
        assert_eq!(total.channels[0].nodes.len(), 1);
        assert_eq!(total.e2e_processing_latency.host, "*");
        assert_eq!(total.e2e_processing_latency.topic, "orders");

        let empty = topic_total("none", &[]);
        assert_eq!(empty.node, "");
        assert!(empty.nodes.is_empty());

        let (_, by_key) = cluster_stats(
            vec![node_topics(&node("h", 1), stats_fixture(), "", 0)],
            false,
        );
        assert!(by_key.contains_key("orders:billing"));
        let count = counter(&by_key);
        assert_eq!(
            count["orders:email:127.0.0.1:1"],
            CounterStats {
                node: "127.0.0.1:1".into(),
                topic_name: "orders".into(),
                channel_name: "email".into(),
                message_count: 3
            }
        );
        assert_eq!(node_totals(&topics), (6, 2));
    }

    #[test]
    fn json_shapes_keep_nsq_keys_in_order() {
        let topics = node_topics(&node("vm", 4151), stats_fixture(), "orders", 0);
        let total = topic_total("orders", &topics);
        let v = serde_json::to_value(&total).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        // serde_json's map is sorted here; check the set of keys, and the
        // order on the serialized text.
        assert_eq!(keys.len(), 11);
        let text = serde_json::to_string(&total).unwrap();
        assert!(text.starts_with(
            r#"{"node":"*","hostname":"","topic_name":"orders","depth":0,"memory_depth":0,"backend_depth":0,"message_count":3,"nodes":["#
        ));
        let channel = serde_json::to_string(&total.channels[0]).unwrap();
        assert!(channel.starts_with(r#"{"node":"*","hostname":"","topic_name":"orders","channel_name":"billing","depth":2,"memory_depth":2,"backend_depth":0,"in_flight_count":1,"deferred_count":0,"requeue_count":0,"timeout_count":0,"message_count":3,"client_count":1,"nodes":["#), "{channel}");
        let client = serde_json::to_string(&total.channels[0].clients[0]).unwrap();
        assert!(client.starts_with(r#"{"node":"127.0.0.1:4151","remote_address":"127.0.0.1:57822","version":"V2","client_id":"capture","hostname":"capture-host","user_agent":"capture/1.0","connect_ts":1795999091,"connected":0,"in_flight_count":1,"ready_count":1,"finish_count":0"#), "{client}");
    }

    #[test]
    fn versions() {
        assert!(Version::parse("1.3.0") > Version::parse("1.2.1"));
        assert!(Version::parse("1.3.0") > Version::parse("1.3.0-alpha"));
        assert!(Version::parse("1.10.0") > Version::parse("1.9.9"));
        assert_eq!(Version::parse("junk"), Version::default());
        assert!(Version::parse("0.0.1") > Version::parse("junk"));
    }
}
