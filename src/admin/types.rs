//! The JSON nsqadmin reads from nsqd and nsqlookupd, and the JSON its API
//! answers with.
//!
//! Reading is tolerant, as go-nsq's decoding is: a missing key or a `null`
//! takes the default, an unknown key is ignored, so nsqd and nsqlookupd of
//! other versions (with or without the topology fields) read alike. Writing
//! keeps NSQ's nsqadmin field names and order, so scripts written against it
//! keep working.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// `null` (or a missing key, with `#[serde(default)]`) reads as the default.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

// ---------------------------------------------------------------- upstream

/// nsqd's `GET /info`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NsqdInfo {
    #[serde(deserialize_with = "nullable")]
    pub version: String,
    #[serde(deserialize_with = "nullable")]
    pub broadcast_address: String,
    #[serde(deserialize_with = "nullable")]
    pub hostname: String,
    pub http_port: i64,
    pub tcp_port: i64,
}

/// nsqd's `GET /stats?format=json` (the parts nsqadmin uses).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NsqdStats {
    #[serde(deserialize_with = "nullable")]
    pub topics: Vec<NsqdTopic>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NsqdTopic {
    #[serde(deserialize_with = "nullable")]
    pub topic_name: String,
    #[serde(deserialize_with = "nullable")]
    pub channels: Vec<NsqdChannel>,
    pub depth: i64,
    pub backend_depth: i64,
    pub message_count: i64,
    pub paused: bool,
    #[serde(deserialize_with = "nullable")]
    pub e2e_processing_latency: E2eIn,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NsqdChannel {
    #[serde(deserialize_with = "nullable")]
    pub channel_name: String,
    pub depth: i64,
    pub backend_depth: i64,
    pub in_flight_count: i64,
    pub deferred_count: i64,
    pub message_count: i64,
    pub requeue_count: i64,
    pub timeout_count: i64,
    pub client_count: i64,
    #[serde(deserialize_with = "nullable")]
    pub clients: Vec<ClientStats>,
    pub paused: bool,
    #[serde(deserialize_with = "nullable")]
    pub e2e_processing_latency: E2eIn,
}

/// An e2e processing latency object as nsqd writes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct E2eIn {
    pub count: i64,
    #[serde(deserialize_with = "nullable")]
    pub percentiles: Vec<PercentileIn>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PercentileIn {
    pub quantile: f64,
    pub value: f64,
}

/// A producer as nsqlookupd lists it (`/nodes` and `/lookup`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LookupdProducer {
    #[serde(deserialize_with = "nullable")]
    pub remote_address: String,
    #[serde(deserialize_with = "nullable")]
    pub hostname: String,
    #[serde(deserialize_with = "nullable")]
    pub broadcast_address: String,
    pub tcp_port: i64,
    pub http_port: i64,
    #[serde(deserialize_with = "nullable")]
    pub version: String,
    #[serde(deserialize_with = "nullable")]
    pub topics: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub tombstones: Vec<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LookupdProducers {
    #[serde(deserialize_with = "nullable")]
    pub producers: Vec<LookupdProducer>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LookupdTopics {
    #[serde(deserialize_with = "nullable")]
    pub topics: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LookupdChannels {
    #[serde(deserialize_with = "nullable")]
    pub channels: Vec<String>,
}

// ---------------------------------------------------------------- answers

/// One nsqd as nsqadmin knows it (`/api/nodes`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Producer {
    /// `lookupd/remote_address` for each nsqlookupd that lists this nsqd.
    pub remote_addresses: Vec<String>,
    pub remote_address: String,
    pub hostname: String,
    pub broadcast_address: String,
    pub tcp_port: i64,
    pub http_port: i64,
    pub version: String,
    pub topics: Vec<ProducerTopic>,
    /// Older than the newest nsqd in the cluster.
    pub out_of_date: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProducerTopic {
    pub topic: String,
    pub tombstoned: bool,
}

impl Producer {
    /// `broadcast_address:http_port`: how nsqadmin names and reaches a node.
    pub fn http_address(&self) -> String {
        join_host_port(&self.broadcast_address, self.http_port)
    }

    pub fn tcp_address(&self) -> String {
        join_host_port(&self.broadcast_address, self.tcp_port)
    }

    pub fn from_lookupd(p: LookupdProducer) -> Producer {
        let topics = p
            .topics
            .iter()
            .enumerate()
            .map(|(i, t)| ProducerTopic {
                topic: t.clone(),
                tombstoned: p.tombstones.get(i).copied().unwrap_or(false),
            })
            .collect();
        Producer {
            remote_addresses: Vec::new(),
            remote_address: p.remote_address,
            hostname: p.hostname,
            broadcast_address: p.broadcast_address,
            tcp_port: p.tcp_port,
            http_port: p.http_port,
            version: p.version,
            topics,
            out_of_date: false,
        }
    }
}

/// Go's `net.JoinHostPort`: IPv6 hosts in brackets.
pub fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A topic on one nsqd, or summed over nodes (`node` is then `*`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TopicStats {
    pub node: String,
    pub hostname: String,
    pub topic_name: String,
    pub depth: i64,
    pub memory_depth: i64,
    pub backend_depth: i64,
    pub message_count: i64,
    /// The per-node figures behind a sum.
    pub nodes: Vec<TopicStats>,
    pub channels: Vec<ChannelStats>,
    pub paused: bool,
    pub e2e_processing_latency: E2eAggregate,
}

/// A channel on one nsqd, or summed over nodes (`node` is then `*`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ChannelStats {
    pub node: String,
    pub hostname: String,
    pub topic_name: String,
    pub channel_name: String,
    pub depth: i64,
    pub memory_depth: i64,
    pub backend_depth: i64,
    pub in_flight_count: i64,
    pub deferred_count: i64,
    pub requeue_count: i64,
    pub timeout_count: i64,
    pub message_count: i64,
    pub client_count: i64,
    pub nodes: Vec<ChannelStats>,
    pub clients: Vec<ClientStats>,
    pub paused: bool,
    pub e2e_processing_latency: E2eAggregate,
}

/// A consumer connection, as nsqd reports it, with the node it is on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ClientStats {
    #[serde(deserialize_with = "nullable")]
    pub node: String,
    #[serde(deserialize_with = "nullable")]
    pub remote_address: String,
    #[serde(deserialize_with = "nullable")]
    pub version: String,
    #[serde(deserialize_with = "nullable")]
    pub client_id: String,
    #[serde(deserialize_with = "nullable")]
    pub hostname: String,
    #[serde(deserialize_with = "nullable")]
    pub user_agent: String,
    pub connect_ts: i64,
    /// Nanoseconds since `connect_ts` (worked out by nsqadmin).
    pub connected: i64,
    pub in_flight_count: i64,
    pub ready_count: i64,
    pub finish_count: i64,
    pub requeue_count: i64,
    pub message_count: i64,
    pub sample_rate: i64,
    pub deflate: bool,
    pub snappy: bool,
    pub authed: bool,
    #[serde(deserialize_with = "nullable")]
    pub auth_identity: String,
    #[serde(deserialize_with = "nullable")]
    pub auth_identity_url: String,
    pub tls: bool,
    #[serde(deserialize_with = "nullable")]
    pub tls_cipher_suite: String,
    #[serde(deserialize_with = "nullable")]
    pub tls_version: String,
    #[serde(deserialize_with = "nullable")]
    pub tls_negotiated_protocol: String,
    pub tls_negotiated_protocol_is_mutual: bool,
}

/// E2e processing latency, per node or merged over nodes, in NSQ's
/// nsqadmin shape: each percentile carries `quantile`, `average`, `min`,
/// `max` and `count` (and `value` for a single node's figure).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct E2eAggregate {
    pub count: i64,
    /// `null` when there are none, as nsqd writes it.
    pub percentiles: Option<Vec<BTreeMap<&'static str, f64>>>,
    pub topic: String,
    pub channel: String,
    pub host: String,
}

impl E2eAggregate {
    /// One node's figures as nsqd reported them.
    pub fn from_node(e: &E2eIn) -> E2eAggregate {
        let percentiles = (!e.percentiles.is_empty()).then(|| {
            e.percentiles
                .iter()
                .map(|p| {
                    BTreeMap::from([
                        ("quantile", p.quantile),
                        ("value", p.value),
                        ("min", p.value),
                        ("max", p.value),
                        ("average", p.value),
                        ("count", e.count as f64),
                    ])
                })
                .collect()
        });
        E2eAggregate {
            count: e.count,
            percentiles,
            ..E2eAggregate::default()
        }
    }

    /// Merge another node's figures: counts add, `average` is the
    /// count-weighted mean, `min`/`max` the extremes.
    pub fn add(&mut self, other: &E2eAggregate) {
        self.host = "*".into();
        self.count += other.count;
        let Some(theirs) = &other.percentiles else {
            return;
        };
        let ours = self.percentiles.get_or_insert_with(Vec::new);
        for value in theirs {
            let q = value.get("quantile").copied().unwrap_or(0.0);
            let (vmin, vmax, vavg, vcount) = (
                value.get("min").copied().unwrap_or(0.0),
                value.get("max").copied().unwrap_or(0.0),
                value.get("average").copied().unwrap_or(0.0),
                value.get("count").copied().unwrap_or(0.0),
            );
            let i = match ours.iter().position(|p| p.get("quantile") == Some(&q)) {
                Some(i) => i,
                None => {
                    ours.push(BTreeMap::from([
                        ("quantile", q),
                        ("min", vmin),
                        ("max", vmax),
                        ("average", 0.0),
                        ("count", 0.0),
                    ]));
                    ours.len() - 1
                }
            };
            let p = &mut ours[i];
            let max = p["max"].max(vmax);
            let min = p["min"].min(vmin);
            p.insert("max", max);
            p.insert("min", min);
            let count = p["count"] + vcount;
            p.insert("count", count);
            if count == 0.0 {
                p.insert("average", 0.0);
                continue;
            }
            let avg = p["average"] + (vavg - p["average"]) * vcount / count;
            p.insert("average", avg);
        }
        ours.sort_by(|a, b| {
            let (qa, qb) = (a["quantile"], b["quantile"]);
            qb.partial_cmp(&qa).unwrap_or(std::cmp::Ordering::Equal)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerant_reading() {
        let s: NsqdStats = serde_json::from_str(
            r#"{"topics":[{"topic_name":"t","channels":null,"extra":1,
                "e2e_processing_latency":null}],"producers":null}"#,
        )
        .unwrap();
        assert_eq!(s.topics[0].topic_name, "t");
        assert!(s.topics[0].channels.is_empty());
        let s: NsqdStats = serde_json::from_str(r#"{"topics":null}"#).unwrap();
        assert!(s.topics.is_empty());
        let p: LookupdProducer = serde_json::from_str(
            r#"{"broadcast_address":"h","http_port":1,"topics":["a","b"],"tombstones":[true]}"#,
        )
        .unwrap();
        let p = Producer::from_lookupd(p);
        assert_eq!(p.http_address(), "h:1");
        assert!(p.topics[0].tombstoned);
        assert!(
            !p.topics[1].tombstoned,
            "a short tombstones list is no crash"
        );
        assert_eq!(join_host_port("::1", 4151), "[::1]:4151");
    }

    #[test]
    fn e2e_merge() {
        let node = |count, value| {
            E2eAggregate::from_node(&E2eIn {
                count,
                percentiles: vec![PercentileIn {
                    quantile: 0.99,
                    value,
                }],
            })
        };
        let mut total = E2eAggregate::default();
        total.add(&node(1, 100.0));
        total.add(&node(3, 200.0));
        let p = &total.percentiles.as_ref().unwrap()[0];
        assert_eq!(total.count, 4);
        assert_eq!(total.host, "*");
        assert_eq!(p["count"], 4.0);
        assert_eq!(p["average"], 175.0);
        assert_eq!(p["min"], 100.0);
        assert_eq!(p["max"], 200.0);
        let mut none = E2eAggregate::default();
        none.add(&E2eAggregate::from_node(&E2eIn::default()));
        assert_eq!(none.percentiles, None);
        assert_eq!(
            serde_json::to_value(&none).unwrap(),
            serde_json::json!({"count":0,"percentiles":null,"topic":"","channel":"","host":"*"})
        );
    }
}
