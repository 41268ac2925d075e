//! nsqlookupd's TCP protocol V1, both sides of it: what nsqd sends
//! (`src/nsqd/lookup.rs`) and what nsqlookupd parses (`src/lookupd/tcp.rs`).
//!
//! After the magic `  V1`, newline-terminated commands: `IDENTIFY` followed
//! by `[u32 size][JSON]`, `REGISTER <topic> [<channel>]`, `UNREGISTER ...`,
//! `PING`. Each is answered by `[u32 size][data]`: `OK`, the lookupd's own
//! JSON for IDENTIFY, or an error text after which the connection closes.

use super::names::is_valid_name;
use super::ProtocolError;
use serde::Serialize;

pub const MAGIC_V1: &[u8; 4] = b"  V1";

/// Who an nsqd is, as it says in IDENTIFY. Sent by nsqd (keys in Go's
/// sorted order; topology only on NSQ's master branch, so only when set)
/// and decoded by nsqlookupd as Go decodes it: keys matched
/// case-insensitively, unknown keys ignored, `null` leaves the zero value,
/// a value of the wrong type is an error.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct PeerIdentity {
    pub broadcast_address: String,
    pub hostname: String,
    pub http_port: i64,
    pub tcp_port: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub topology_region: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub topology_zone: String,
    pub version: String,
}

impl PeerIdentity {
    pub fn parse(body: &[u8]) -> Option<PeerIdentity> {
        let serde_json::Value::Object(map) = serde_json::from_slice(body).ok()? else {
            return None;
        };
        let mut f = PeerIdentity::default();
        for (key, value) in &map {
            if value.is_null() {
                continue;
            }
            let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
            match key.to_ascii_lowercase().as_str() {
                "broadcast_address" => f.broadcast_address = text(value)?,
                "hostname" => f.hostname = text(value)?,
                "version" => f.version = text(value)?,
                "topology_zone" => f.topology_zone = text(value)?,
                "topology_region" => f.topology_region = text(value)?,
                "tcp_port" => f.tcp_port = value.as_i64()?,
                "http_port" => f.http_port = value.as_i64()?,
                _ => {}
            }
        }
        Some(f)
    }

    /// The magic and the IDENTIFY command with this identity as its body:
    /// what nsqd sends first on a new connection.
    pub fn hello(&self) -> Vec<u8> {
        let body = serde_json::to_vec(self).expect("plain struct serializes");
        let mut out = MAGIC_V1.to_vec();
        out.extend_from_slice(b"IDENTIFY\n");
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }
}

/// `REGISTER <topic> [<channel>]` (or UNREGISTER) as nsqd sends it.
pub fn registration(register: bool, topic: &str, channel: Option<&str>) -> String {
    let verb = if register { "REGISTER" } else { "UNREGISTER" };
    match channel {
        Some(c) => format!("{verb} {topic} {c}\n"),
        None => format!("{verb} {topic}\n"),
    }
}

/// A response as nsqlookupd frames it: `[u32 size][data]`.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + data.len());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// The parameters of REGISTER/UNREGISTER: `<topic> [<channel>]`, checked
/// with nsqlookupd's texts (names quoted with single quotes, unlike
/// nsqd's). Every V1 error is fatal.
pub fn topic_channel<'a>(
    command: &str,
    params: &[&'a str],
) -> Result<(&'a str, Option<&'a str>), ProtocolError> {
    let Some(&topic) = params.first() else {
        return Err(ProtocolError::invalid(format!(
            "{command} insufficient number of params"
        )));
    };
    let channel = params.get(1).copied().filter(|c| !c.is_empty());
    if !is_valid_name(topic.as_bytes()) {
        return Err(ProtocolError::fatal(
            "E_BAD_TOPIC",
            format!("{command} topic name '{topic}' is not valid"),
        ));
    }
    if let Some(c) = channel {
        if !is_valid_name(c.as_bytes()) {
            return Err(ProtocolError::fatal(
                "E_BAD_CHANNEL",
                format!("{command} channel name '{c}' is not valid"),
            ));
        }
    }
    Ok((topic, channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trip_and_go_decoding() {
        let me = PeerIdentity {
            broadcast_address: "h".into(),
            hostname: "host".into(),
            http_port: 4151,
            tcp_port: 4150,
            version: "1.3.0".into(),
            ..Default::default()
        };
        let hello = me.hello();
        assert!(hello.starts_with(b"  V1IDENTIFY\n"));
        let body = &hello[17..];
        assert_eq!(
            std::str::from_utf8(body).unwrap(),
            r#"{"broadcast_address":"h","hostname":"host","http_port":4151,"tcp_port":4150,"version":"1.3.0"}"#
        );
        assert_eq!(
            u32::from_be_bytes(hello[13..17].try_into().unwrap()) as usize,
            body.len()
        );
        assert_eq!(PeerIdentity::parse(body).unwrap(), me);
        // Truncated: not JSON.
        assert!(PeerIdentity::parse(&body[..body.len() - 1]).is_none());

        let f = PeerIdentity::parse(
            br#"{"Broadcast_Address":"h","tcp_port":4150,"http_port":4151,"version":"1.3.0","extra":[1],"hostname":null}"#,
        )
        .unwrap();
        assert_eq!(f.broadcast_address, "h");
        assert_eq!((f.tcp_port, f.http_port), (4150, 4151));
        assert_eq!(f.hostname, "");
        assert!(PeerIdentity::parse(br#"{"tcp_port":"4150"}"#).is_none());
        assert!(PeerIdentity::parse(br#"{"tcp_port":41.5}"#).is_none());
        assert!(PeerIdentity::parse(b"[1]").is_none());
        assert!(PeerIdentity::parse(b"{").is_none());
    }

    #[test]
    fn commands_and_frames() {
        assert_eq!(registration(true, "t", Some("c")), "REGISTER t c\n");
        assert_eq!(registration(false, "t", None), "UNREGISTER t\n");
        assert_eq!(frame(b"OK"), b"\x00\x00\x00\x02OK");
    }

    #[test]
    fn topic_channel_errors_quote_with_single_quotes() {
        assert_eq!(
            topic_channel("REGISTER", &[]).unwrap_err().to_string(),
            "E_INVALID REGISTER insufficient number of params"
        );
        assert_eq!(
            topic_channel("REGISTER", &["bad topic!"])
                .unwrap_err()
                .to_string(),
            "E_BAD_TOPIC REGISTER topic name 'bad topic!' is not valid"
        );
        assert_eq!(
            topic_channel("UNREGISTER", &["t", "c!"])
                .unwrap_err()
                .to_string(),
            "E_BAD_CHANNEL UNREGISTER channel name 'c!' is not valid"
        );
        assert_eq!(topic_channel("REGISTER", &["t"]).unwrap(), ("t", None));
        assert_eq!(
            topic_channel("REGISTER", &["t", "c"]).unwrap(),
            ("t", Some("c"))
        );
    }
}
