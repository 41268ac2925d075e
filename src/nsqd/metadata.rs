//! `nsqd.dat`: the topics and channels (and their paused state) that must
//! exist again after a restart, in NSQ's JSON so either daemon can read it.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// `null` when there is no durable topic, as NSQ writes it.
    pub topics: Option<Vec<TopicMeta>>,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    #[serde(default)]
    pub paused: bool,
    /// `null` when the topic has no durable channel.
    #[serde(default)]
    pub channels: Option<Vec<ChannelMeta>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelMeta {
    pub name: String,
    #[serde(default)]
    pub paused: bool,
    /// Dead-letter settings (ours; NSQ ignores unknown keys), written only
    /// when the channel has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
}

pub fn path(data_path: &Path) -> PathBuf {
    data_path.join("nsqd.dat")
}

/// Read `nsqd.dat`; `Ok(None)` when there is none (a fresh data path).
pub fn load(data_path: &Path) -> Result<Option<Metadata>, String> {
    let file = path(data_path);
    let text = match std::fs::read(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("failed to read metadata {}: {e}", file.display())),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| format!("failed to parse metadata in {}: {e}", file.display()))
}

/// Write `nsqd.dat` atomically (temp file, fsync, rename).
pub fn save(data_path: &Path, meta: &Metadata) -> std::io::Result<()> {
    let json = serde_json::to_vec(meta).expect("plain structs serialize");
    crate::diskqueue::write_atomically(&path(data_path), &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsq_shape_with_nulls() {
        let meta = Metadata {
            topics: Some(vec![
                TopicMeta {
                    name: "orders".into(),
                    paused: false,
                    channels: Some(vec![ChannelMeta {
                        name: "billing".into(),
                        paused: true,
                        max_attempts: None,
                        dead_letter_topic: None,
                    }]),
                },
                TopicMeta {
                    name: "empty_topic".into(),
                    paused: false,
                    channels: None,
                },
            ]),
            version: "1.3.0".into(),
        };
        let json = serde_json::to_string(&meta).unwrap();
        assert_eq!(
            json,
            r#"{"topics":[{"name":"orders","paused":false,"channels":[{"name":"billing","paused":true}]},{"name":"empty_topic","paused":false,"channels":null}],"version":"1.3.0"}"#
        );
        assert_eq!(serde_json::from_str::<Metadata>(&json).unwrap(), meta);
        let none = r#"{"topics":null,"version":"1.2.1"}"#;
        assert_eq!(serde_json::from_str::<Metadata>(none).unwrap().topics, None);
    }
}
