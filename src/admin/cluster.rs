//! Talking to the cluster: the questions nsqadmin asks nsqd and nsqlookupd
//! over HTTP (in parallel, each with NSQ's connect and request timeouts) and
//! the actions it takes there. What the answers mean is decided in
//! [`super::aggregate`]; this module only fetches and posts.

use super::aggregate::{self, Gathered, Partial};
use super::types::*;
use futures_util::future::join_all;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the cluster is: the lookupds, or else the nsqd listed directly.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub lookupd: Vec<String>,
    pub nsqd: Vec<String>,
}

/// Timeouts and TLS for every request to nsqd and nsqlookupd.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub tls: crate::client::tls::TlsOptions,
    /// Whether any TLS flag was given (else a missing trust store is fine).
    pub tls_asked: bool,
}

/// The HTTP client nsqadmin uses for the cluster.
#[derive(Clone)]
pub struct Cluster {
    http: reqwest::Client,
}

/// URL-encode a query value as Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An error of reqwest as one line: the request, then the root causes.
fn describe(method: &str, url: &str, e: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    if e.is_timeout() && !causes.iter().any(|c| c.contains("timed out")) {
        causes.push("timed out".into());
    }
    if causes.is_empty() {
        causes.push(e.to_string());
    }
    causes.dedup();
    format!("{method} {url:?}: {}", causes.join(": "))
}

impl Cluster {
    pub fn new(opts: &ClientOptions) -> Result<Cluster, String> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            .user_agent(concat!("nsqadmin/nsq-rs-", env!("CARGO_PKG_VERSION")))
            .no_proxy();
        match crate::client::tls::client_config(&opts.tls) {
            Ok(config) => {
                builder = builder.use_preconfigured_tls((*config).clone());
            }
            Err(e) if opts.tls_asked => return Err(e),
            // No TLS flags and no system roots: plain HTTP still works.
            Err(_) => {}
        }
        let http = builder
            .build()
            .map_err(|e| format!("failed to build the HTTP client: {e}"))?;
        Ok(Cluster { http })
    }

    /// A request answered 200, its body; any other status is an error (and
    /// a 403 that names an HTTPS port is retried there, as NSQ's client does).
    async fn request(&self, method: reqwest::Method, url: &str) -> Result<Vec<u8>, String> {
        let mut url = url.to_string();
        for _ in 0..2 {
            tracing::debug!("CI: querying {url}");
            let verb = if method == reqwest::Method::GET {
                "Get"
            } else {
                "Post"
            };
            let resp = self
                .http
                .request(method.clone(), &url)
                .header("Accept", "application/vnd.nsq; version=1.0")
                .send()
                .await
                .map_err(|e| describe(verb, &url, &e))?;
            let status = resp.status();
            let body = resp
                .bytes()
                .await
                .map_err(|e| describe(verb, &url, &e))?
                .to_vec();
            if status == reqwest::StatusCode::OK {
                return Ok(body);
            }
            if status == reqwest::StatusCode::FORBIDDEN && url.starts_with("http://") {
                if let Some(https) = https_retry(&url, &body) {
                    url = https;
                    continue;
                }
            }
            return Err(format!(
                "got response {status} {:?}",
                String::from_utf8_lossy(&body)
            ));
        }
        Err(format!("{url}: too many redirects to HTTPS"))
    }

    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let body = self.request(reqwest::Method::GET, url).await?;
        serde_json::from_slice(&body).map_err(|e| format!("{url}: invalid JSON: {e}"))
    }

    async fn post(&self, url: &str) -> Result<(), String> {
        self.request(reqwest::Method::POST, url).await.map(|_| ())
    }

    /// GET `path` from every address at once: per-address outcomes.
    async fn get_all<T: DeserializeOwned>(
        &self,
        addrs: &[String],
        path: &str,
    ) -> Vec<(String, Result<T, String>)> {
        let calls = addrs.iter().map(|a| async move {
            let url = format!("http://{a}{path}");
            (a.clone(), self.get_json::<T>(&url).await)
        });
        join_all(calls).await
    }

    /// POST `path?query` to every address in turn; the errors.
    async fn post_all(&self, addrs: &[String], path: &str, query: &str) -> Vec<String> {
        let mut errors = Vec::new();
        for a in addrs {
            let url = format!("http://{a}/{path}?{query}");
            tracing::info!("CI: posting {url}");
            if let Err(e) = self.post(&url).await {
                errors.push(e);
            }
        }
        errors
    }

    // ------------------------------------------------------------ questions

    /// Every topic: the union of the lookupds' `/topics`, or of the nsqd's
    /// `/stats`.
    pub async fn topics(&self, src: &Sources) -> Gathered<Vec<String>> {
        if !src.lookupd.is_empty() {
            let out = self.get_all::<LookupdTopics>(&src.lookupd, "/topics").await;
            let (good, errors) = aggregate::gather("nsqlookupd", out)?;
            Ok(Partial {
                value: aggregate::union_sorted(good.into_iter().map(|(_, t)| t.topics)),
                errors,
            })
        } else {
            let out = self
                .get_all::<NsqdStats>(&src.nsqd, "/stats?format=json&include_clients=false")
                .await;
            let (good, errors) = aggregate::gather("nsqd", out)?;
            Ok(Partial {
                value: aggregate::union_sorted(
                    good.into_iter()
                        .map(|(_, s)| s.topics.into_iter().map(|t| t.topic_name).collect()),
                ),
                errors,
            })
        }
    }

    /// The channels the lookupds know for a topic.
    pub async fn lookupd_topic_channels(
        &self,
        topic: &str,
        lookupd: &[String],
    ) -> Gathered<Vec<String>> {
        let path = format!("/channels?topic={}", query_escape(topic));
        let out = self.get_all::<LookupdChannels>(lookupd, &path).await;
        let (good, errors) = aggregate::gather("nsqlookupd", out)?;
        Ok(Partial {
            value: aggregate::union_sorted(good.into_iter().map(|(_, c)| c.channels)),
            errors,
        })
    }

    /// The producers of a topic according to the lookupds.
    pub async fn lookupd_topic_producers(
        &self,
        topic: &str,
        lookupd: &[String],
    ) -> Gathered<Vec<Producer>> {
        let path = format!("/lookup?topic={}", query_escape(topic));
        let out = self.get_all::<LookupdProducers>(lookupd, &path).await;
        let (good, errors) = aggregate::gather("nsqlookupd", out)?;
        Ok(Partial {
            value: aggregate::merge_topic_producers(
                good.into_iter().map(|(_, p)| p.producers).collect(),
            ),
            errors,
        })
    }

    /// Every nsqd in the cluster.
    pub async fn producers(&self, src: &Sources) -> Gathered<Vec<Producer>> {
        if !src.lookupd.is_empty() {
            let out = self
                .get_all::<LookupdProducers>(&src.lookupd, "/nodes")
                .await;
            let (good, errors) = aggregate::gather("nsqlookupd", out)?;
            Ok(Partial {
                value: aggregate::merge_lookupd_nodes(
                    good.into_iter().map(|(a, p)| (a, p.producers)).collect(),
                ),
                errors,
            })
        } else {
            self.nsqd_producers(&src.nsqd, None).await
        }
    }

    /// The listed nsqd as producers (`/info` and `/stats`); with `topic`,
    /// only those that have it.
    async fn nsqd_producers(
        &self,
        addrs: &[String],
        topic: Option<&str>,
    ) -> Gathered<Vec<Producer>> {
        let out = self.nsqd_producer_outcomes(addrs, topic).await;
        let (good, errors) = aggregate::gather("nsqd", out)?;
        Ok(Partial {
            value: good.into_iter().filter_map(|(_, p)| p).collect(),
            errors,
        })
    }

    /// Each listed nsqd's `/stats` and `/info`, per address (`None`: it
    /// does not have `topic`).
    pub async fn nsqd_producer_outcomes(
        &self,
        addrs: &[String],
        topic: Option<&str>,
    ) -> Vec<(String, Result<Option<Producer>, String>)> {
        let calls = addrs.iter().map(|a| async move {
            let stats_url = match topic {
                Some(t) => format!(
                    "http://{a}/stats?format=json&topic={}&include_clients=false",
                    query_escape(t)
                ),
                None => format!("http://{a}/stats?format=json&include_clients=false"),
            };
            let info_url = format!("http://{a}/info");
            let outcome = async {
                let stats: NsqdStats = self.get_json(&stats_url).await?;
                let names: Vec<String> = stats.topics.into_iter().map(|t| t.topic_name).collect();
                if let Some(t) = topic {
                    if !names.iter().any(|n| n == t) {
                        return Ok(None);
                    }
                }
                let info: NsqdInfo = self.get_json(&info_url).await?;
                Ok(Some(aggregate::nsqd_producer(a, info, &names)))
            }
            .await;
            (a.clone(), outcome)
        });
        join_all(calls).await
    }

    /// The nsqd that have a topic.
    pub async fn topic_producers(&self, topic: &str, src: &Sources) -> Gathered<Vec<Producer>> {
        if !src.lookupd.is_empty() {
            self.lookupd_topic_producers(topic, &src.lookupd).await
        } else {
            self.nsqd_producers(&src.nsqd, Some(topic)).await
        }
    }

    /// Each producer's `/stats` (all topics, or one topic and maybe one
    /// channel), per node; errors stay per node.
    pub async fn node_stats(
        &self,
        producers: &[Producer],
        topic: &str,
        channel: &str,
        include_clients: bool,
    ) -> Vec<(Producer, Result<Vec<TopicStats>, String>)> {
        let mut query = String::from("format=json");
        if !topic.is_empty() {
            query += &format!("&topic={}", query_escape(topic));
            if !channel.is_empty() {
                query += &format!("&channel={}", query_escape(channel));
            }
        }
        if !include_clients {
            query += "&include_clients=false";
        }
        let calls = producers.iter().map(|p| {
            let url = format!("http://{}/stats?{query}", p.http_address());
            async move {
                let outcome = self.get_json::<NsqdStats>(&url).await.map(|stats| {
                    aggregate::node_topics(p, stats, topic, chrono::Utc::now().timestamp())
                });
                (p.clone(), outcome)
            }
        });
        join_all(calls).await
    }

    /// NSQ's GetNSQDStats: per-node topics and channels summed over nodes.
    pub async fn nsqd_stats(
        &self,
        producers: &[Producer],
        topic: &str,
        channel: &str,
        include_clients: bool,
    ) -> Gathered<(Vec<TopicStats>, BTreeMap<String, ChannelStats>)> {
        let out = self
            .node_stats(producers, topic, channel, include_clients)
            .await;
        let (good, errors) = aggregate::gather("nsqd", out)?;
        let per_node = good.into_iter().map(|(_, t)| t).collect();
        Ok(Partial {
            value: aggregate::cluster_stats(per_node, !topic.is_empty()),
            errors,
        })
    }

    // -------------------------------------------------------------- actions

    /// Tombstone `node` for `topic` on every lookupd, then delete the topic
    /// on that nsqd.
    pub async fn tombstone_node_for_topic(
        &self,
        topic: &str,
        node: &str,
        lookupd: &[String],
    ) -> Result<Vec<String>, String> {
        let q = format!("topic={}&node={}", query_escape(topic), query_escape(node));
        let mut errors = self.post_all(lookupd, "topic/tombstone", &q).await;
        let producers = self.nsqd_producers(&[node.to_string()], None).await?;
        errors.extend(producers.errors);
        let addrs: Vec<String> = producers.value.iter().map(Producer::http_address).collect();
        let q = format!("topic={}", query_escape(topic));
        errors.extend(self.post_all(&addrs, "topic/delete", &q).await);
        Ok(errors)
    }

    /// Create a topic (and maybe a channel) on every lookupd, and the
    /// channel on every nsqd that has the topic. Without lookupds, on every
    /// listed nsqd.
    pub async fn create_topic_channel(
        &self,
        topic: &str,
        channel: &str,
        src: &Sources,
    ) -> Result<Vec<String>, String> {
        let tq = format!("topic={}", query_escape(topic));
        let cq = format!("{tq}&channel={}", query_escape(channel));
        if src.lookupd.is_empty() {
            let mut errors = self.post_all(&src.nsqd, "topic/create", &tq).await;
            if !channel.is_empty() {
                errors.extend(self.post_all(&src.nsqd, "channel/create", &cq).await);
            }
            return Ok(errors);
        }
        let mut errors = self.post_all(&src.lookupd, "topic/create", &tq).await;
        if !channel.is_empty() {
            errors.extend(self.post_all(&src.lookupd, "channel/create", &cq).await);
            let producers = self.lookupd_topic_producers(topic, &src.lookupd).await?;
            errors.extend(producers.errors);
            let addrs: Vec<String> = producers.value.iter().map(Producer::http_address).collect();
            errors.extend(self.post_all(&addrs, "channel/create", &cq).await);
        }
        Ok(errors)
    }

    /// Delete a topic from every lookupd and every nsqd that has it.
    pub async fn delete_topic(&self, topic: &str, src: &Sources) -> Result<Vec<String>, String> {
        let producers = self.topic_producers(topic, src).await?;
        let mut errors = producers.errors;
        let q = format!("topic={}", query_escape(topic));
        errors.extend(self.post_all(&src.lookupd, "topic/delete", &q).await);
        let addrs: Vec<String> = producers.value.iter().map(Producer::http_address).collect();
        errors.extend(self.post_all(&addrs, "topic/delete", &q).await);
        Ok(errors)
    }

    /// Delete a channel from every lookupd and every nsqd that has its topic.
    pub async fn delete_channel(
        &self,
        topic: &str,
        channel: &str,
        src: &Sources,
    ) -> Result<Vec<String>, String> {
        let producers = self.topic_producers(topic, src).await?;
        let mut errors = producers.errors;
        let q = format!(
            "topic={}&channel={}",
            query_escape(topic),
            query_escape(channel)
        );
        errors.extend(self.post_all(&src.lookupd, "channel/delete", &q).await);
        let addrs: Vec<String> = producers.value.iter().map(Producer::http_address).collect();
        errors.extend(self.post_all(&addrs, "channel/delete", &q).await);
        Ok(errors)
    }

    /// Pause, unpause or empty a topic or channel on every nsqd that has
    /// the topic (`path` is nsqd's, e.g. `channel/pause`).
    pub async fn act(
        &self,
        path: &str,
        topic: &str,
        channel: &str,
        src: &Sources,
    ) -> Result<Vec<String>, String> {
        let producers = self.topic_producers(topic, src).await?;
        let mut errors = producers.errors;
        let mut q = format!("topic={}", query_escape(topic));
        if !channel.is_empty() {
            q += &format!("&channel={}", query_escape(channel));
        }
        let addrs: Vec<String> = producers.value.iter().map(Producer::http_address).collect();
        errors.extend(self.post_all(&addrs, path, &q).await);
        Ok(errors)
    }

    /// GET an absolute URL (Graphite), body and content type.
    pub async fn get_raw(&self, url: &str) -> Result<(u16, String, Vec<u8>), String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| describe("Get", url, &e))?;
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.bytes().await.map_err(|e| describe("Get", url, &e))?;
        Ok((status, ctype, body.to_vec()))
    }

    /// POST a JSON body to an absolute URL (notifications).
    pub async fn post_json(&self, url: &str, body: Vec<u8>) -> Result<(), String> {
        self.http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| describe("Post", url, &e))
    }
}

/// The HTTPS URL to retry on when nsqd answered 403 with its `https_port`.
fn https_retry(url: &str, body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Forbidden {
        https_port: u16,
    }
    let port = serde_json::from_slice::<Forbidden>(body).ok()?.https_port;
    if port == 0 {
        return None;
    }
    let mut u = reqwest::Url::parse(url).ok()?;
    u.set_scheme("https").ok()?;
    u.set_port(Some(port)).ok()?;
    Some(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_https_retry() {
        assert_eq!(query_escape("a b/c#ephemeral"), "a+b%2Fc%23ephemeral");
        assert_eq!(query_escape("orders_1.x-y"), "orders_1.x-y");
        assert_eq!(
            https_retry(
                "http://127.0.0.1:4151/stats?format=json",
                br#"{"message": "TLS_REQUIRED", "https_port": 4152}"#
            )
            .as_deref(),
            Some("https://127.0.0.1:4152/stats?format=json")
        );
        assert_eq!(
            https_retry("http://h:1/x", br#"{"message":"FORBIDDEN"}"#),
            None
        );
    }
}
