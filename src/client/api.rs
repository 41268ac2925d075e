//! What the client reads from nsqlookupd's and nsqd's HTTP APIs.
//!
//! Read as go-nsq reads them, so that any nsqd or nsqlookupd go-nsq works
//! with works here too: a missing key takes its default and an unknown key
//! is ignored (released v1.3.0 has no `topology_*` keys, NSQ's master has
//! them), and an answer wrapped in the pre-1.0 envelope
//! (`{"status_code":200,"status_txt":"OK","data":{...}}`) is unwrapped.

use super::ClientError;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// One nsqd as nsqlookupd describes it (`/lookup`, `/nodes`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Producer {
    pub remote_address: String,
    pub hostname: String,
    pub broadcast_address: String,
    /// The broadcast address under its pre-0.2.28 name.
    pub address: String,
    pub tcp_port: u16,
    pub http_port: u16,
    pub version: String,
}

impl Producer {
    /// The address to dial for protocol V2, if the answer names one.
    pub fn tcp_addr(&self) -> Option<String> {
        self.join(self.tcp_port)
    }

    /// The address of its HTTP API, if the answer names one.
    pub fn http_addr(&self) -> Option<String> {
        self.join(self.http_port)
    }

    fn join(&self, port: u16) -> Option<String> {
        let host = [&self.broadcast_address, &self.address, &self.hostname]
            .into_iter()
            .find(|h| !h.is_empty())?;
        if port == 0 {
            return None;
        }
        Some(host_port(host, port))
    }
}

/// `host:port`, with an IPv6 literal in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// nsqlookupd's `/lookup` answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Lookup {
    pub channels: Vec<String>,
    pub producers: Vec<Producer>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Topics {
    topics: Vec<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Channels {
    channels: Vec<String>,
}

/// Decode an API answer, unwrapping the pre-1.0 envelope when present.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(body)?;
    if let serde_json::Value::Object(map) = &mut value {
        if map.contains_key("status_code") && map.contains_key("data") {
            value = map.remove("data").unwrap_or_default();
        }
    }
    if value.is_null() {
        value = serde_json::Value::Object(Default::default());
    }
    serde_json::from_value(value)
}

/// `http://addr` unless `addr` already names a scheme, without a trailing `/`.
pub fn base_url(addr: &str) -> String {
    let addr = addr.trim_end_matches('/');
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// GET `path` from nsqlookupd at `lookupd` and decode it. `Ok(None)` for a
/// 404 (nsqlookupd's answer for a topic it does not know).
async fn get<T: DeserializeOwned>(
    http: &reqwest::Client,
    lookupd: &str,
    path: &str,
    query: &[(&str, &str)],
) -> Result<Option<T>, ClientError> {
    let fail = |reason: String| ClientError::Lookupd {
        addr: lookupd.to_string(),
        reason,
    };
    let response = http
        .get(format!("{}{path}", base_url(lookupd)))
        .query(query)
        .header("Accept", "application/vnd.nsq; version=1.0")
        .send()
        .await
        .map_err(|e| fail(error_text(&e)))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body = response.bytes().await.map_err(|e| fail(error_text(&e)))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(fail(format!("HTTP {status}: {}", text.trim())));
    }
    decode(&body)
        .map(Some)
        .map_err(|e| fail(format!("unexpected answer to {path}: {e}")))
}

/// An HTTP error with its causes ("connection refused" is in a source).
fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// Who has `topic`, according to one nsqlookupd.
pub async fn lookup(
    http: &reqwest::Client,
    lookupd: &str,
    topic: &str,
) -> Result<Lookup, ClientError> {
    Ok(get(http, lookupd, "/lookup", &[("topic", topic)])
        .await?
        .unwrap_or_default())
}

/// Every topic one nsqlookupd knows.
pub async fn topics(http: &reqwest::Client, lookupd: &str) -> Result<Vec<String>, ClientError> {
    let found: Option<Topics> = get(http, lookupd, "/topics", &[]).await?;
    Ok(found.unwrap_or_default().topics)
}

/// The channels one nsqlookupd knows for `topic`.
pub async fn channels(
    http: &reqwest::Client,
    lookupd: &str,
    topic: &str,
) -> Result<Vec<String>, ClientError> {
    let found: Option<Channels> = get(http, lookupd, "/channels", &[("topic", topic)]).await?;
    Ok(found.unwrap_or_default().channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/nsq-v1.3.0/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn released_lookup_answer() {
        let l: Lookup = decode(&fixture("lookupd-lookup.json")).unwrap();
        assert_eq!(l.channels.len(), 2);
        assert_eq!(l.producers.len(), 1);
        let p = &l.producers[0];
        assert_eq!(p.tcp_addr().unwrap(), format!("127.0.0.1:{}", p.tcp_port));
        assert!(p.http_addr().is_some());
    }

    #[test]
    fn released_topics_and_channels() {
        let t: Topics = decode(&fixture("lookupd-topics.json")).unwrap();
        assert!(t.topics.contains(&"orders".to_string()));
        let c: Channels = decode(&fixture("lookupd-channels.json")).unwrap();
        assert!(c.channels.contains(&"billing".to_string()));
    }

    #[test]
    fn newer_and_older_shapes() {
        // NSQ master adds keys; unknown ones are ignored.
        let newer = br#"{"channels":[],"producers":[{"broadcast_address":"h","hostname":"h","tcp_port":4150,"http_port":4151,"version":"1.3.0","topology_zone":"z","topology_region":"r","remote_address":"1.2.3.4:5"}],"extra":{"x":1}}"#;
        let l: Lookup = decode(newer).unwrap();
        assert_eq!(l.producers[0].tcp_addr().as_deref(), Some("h:4150"));
        // Pre-1.0: wrapped, and `address` instead of `broadcast_address`.
        let older = br#"{"status_code":200,"status_txt":"OK","data":{"producers":[{"address":"old","tcp_port":4150,"http_port":4151}]}}"#;
        let l: Lookup = decode(older).unwrap();
        assert_eq!(l.producers[0].tcp_addr().as_deref(), Some("old:4150"));
        assert!(l.channels.is_empty(), "missing key: default");
        // Missing everything: empty, not an error.
        let l: Lookup = decode(b"{}").unwrap();
        assert!(l.producers.is_empty());
        let l: Lookup = decode(b"null").unwrap();
        assert!(l.producers.is_empty());
        // A producer without a port or host cannot be dialled.
        let p = Producer {
            broadcast_address: "h".into(),
            ..Default::default()
        };
        assert_eq!(p.tcp_addr(), None);
        assert_eq!(Producer::default().http_addr(), None);
        // IPv6 in brackets.
        assert_eq!(host_port("::1", 4150), "[::1]:4150");
        assert!(decode::<Lookup>(b"{").is_err());
    }
}
