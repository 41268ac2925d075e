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
///
/// Released v1.3.0 sends the first 13 keys; the topology keys exist only on
/// NSQ's master branch, so they are sent only when set. Reading, a missing
/// key takes nsqd's default and an unknown one is ignored, as go-nsq does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
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
    #[serde(skip_serializing_if = "String::is_empty")]
    pub topology_region: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub topology_zone: String,
}

impl Default for IdentifyResponse {
    /// nsqd's defaults: what a client assumes of a server that leaves a
    /// key out, or answers IDENTIFY with a plain `OK`.
    fn default() -> Self {
        IdentifyResponse {
            max_rdy_count: 2500,
            version: super::NSQ_VERSION.to_string(),
            max_msg_timeout: 900_000,
            msg_timeout: 60_000,
            tls_v1: false,
            deflate: false,
            deflate_level: 6,
            max_deflate_level: 6,
            snappy: false,
            sample_rate: 0,
            auth_required: false,
            output_buffer_size: 16384,
            output_buffer_timeout: 250,
            topology_region: String::new(),
            topology_zone: String::new(),
        }
    }
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
    fn response_as_released_v1_3_0_sends_it() {
        let fixture = include_str!("../../tests/fixtures/nsq-v1.3.0/nsqd-identify-response.json");
        let r: IdentifyResponse = serde_json::from_str(fixture).unwrap();
        // Written back, byte for byte: 13 keys in nsqd's order, no topology.
        let ours = IdentifyResponse {
            max_rdy_count: r.max_rdy_count,
            ..IdentifyResponse::default()
        };
        assert_eq!(serde_json::to_string(&ours).unwrap(), fixture.trim_end());
        // With topology set (NSQ master), the keys follow.
        let with = IdentifyResponse {
            topology_zone: "z".into(),
            ..IdentifyResponse::default()
        };
        assert!(serde_json::to_string(&with)
            .unwrap()
            .ends_with(r#""output_buffer_timeout":250,"topology_zone":"z"}"#));
        // Missing keys take defaults; unknown keys are ignored.
        let r: IdentifyResponse =
            serde_json::from_str(r#"{"max_rdy_count":7,"future":{"x":[1]}}"#).unwrap();
        assert_eq!(r.max_rdy_count, 7);
        assert_eq!(r.msg_timeout, 60_000);
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
