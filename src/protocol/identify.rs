//! The IDENTIFY JSON: what clients send, and what nsqd answers when they ask
//! for feature negotiation.

use serde::{Deserialize, Serialize};

/// Fields a client may send. Every field is optional; unknown keys (go-nsq
/// and pynsq still send `short_id`/`long_id`) are ignored, and keys match
/// case-insensitively, as Go's JSON decoder does.
#[derive(Debug, Default, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct IdentifyRequest {
    pub client_id: Option<String>,
    pub hostname: Option<String>,
    pub user_agent: Option<String>,
    pub feature_negotiation: Option<bool>,
    pub heartbeat_interval: Option<i64>,
    pub output_buffer_size: Option<i64>,
    pub output_buffer_timeout: Option<i64>,
    pub tls_v1: Option<bool>,
    pub snappy: Option<bool>,
    pub deflate: Option<bool>,
    pub deflate_level: Option<i64>,
    pub sample_rate: Option<i32>,
    pub msg_timeout: Option<i64>,
    pub topology_region: Option<String>,
    pub topology_zone: Option<String>,
}

impl IdentifyRequest {
    /// Parse an IDENTIFY body. `None` means nsqd's
    /// `E_BAD_BODY IDENTIFY failed to decode JSON body`.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let serde_json::Value::Object(map) = value else {
            // Go decodes `null` into a struct as a no-op.
            return value.is_null().then(IdentifyRequest::default);
        };
        // Fold keys to lower case; on duplicates Go keeps the last match.
        let folded: serde_json::Map<String, serde_json::Value> = map
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        serde_json::from_value(serde_json::Value::Object(folded)).ok()
    }
}

/// The response to IDENTIFY with `feature_negotiation: true`. Field order is
/// nsqd's; go-nsq needs `max_rdy_count` in particular.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IdentifyResponse {
    pub max_rdy_count: i64,
    pub version: String,
    pub max_msg_timeout: i64,
    pub msg_timeout: i64,
    pub tls_v1: bool,
    pub deflate: bool,
    pub deflate_level: i64,
    pub max_deflate_level: i64,
    pub snappy: bool,
    pub sample_rate: i32,
    pub auth_required: bool,
    pub output_buffer_size: i64,
    pub output_buffer_timeout: i64,
    pub topology_region: String,
    pub topology_zone: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_and_unknown_keys() {
        let r = IdentifyRequest::parse(
            br#"{"Client_ID":"c","short_id":"x","long_id":"y","heartbeat_interval":-1,"feature_negotiation":true}"#,
        )
        .unwrap();
        assert_eq!(r.client_id.as_deref(), Some("c"));
        assert_eq!(r.heartbeat_interval, Some(-1));
        assert_eq!(r.feature_negotiation, Some(true));
    }

    #[test]
    fn type_mismatch_fails() {
        assert!(IdentifyRequest::parse(br#"{"heartbeat_interval":"1000"}"#).is_none());
        assert!(IdentifyRequest::parse(br#"{"heartbeat_interval":1.5}"#).is_none());
        assert!(IdentifyRequest::parse(b"{not json").is_none());
        assert!(IdentifyRequest::parse(b"[1]").is_none());
        assert!(IdentifyRequest::parse(b"null").is_some());
    }
}
