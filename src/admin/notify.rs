//! `--notification-http-endpoint`: every admin action is POSTed there as a
//! JSON event, in NSQ's shape, from a background task so that a slow or
//! absent endpoint never holds up the action itself.

use super::cluster::Cluster;
use serde::Serialize;
use tokio::sync::mpsc;

/// One admin action, as NSQ's nsqadmin sends it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AdminAction {
    pub action: String,
    pub topic: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub channel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
    pub timestamp: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    pub remote_ip: String,
    pub user_agent: String,
    /// The URL of the request that caused the action.
    pub url: String,
    /// The host name of the nsqadmin that acted.
    pub via: String,
}

/// The user of HTTP basic auth, if the request has it.
pub fn basic_auth_user(authorization: Option<&str>) -> String {
    let Some(value) = authorization else {
        return String::new();
    };
    let Some(("Basic", encoded)) = value.split_once(' ') else {
        return String::new();
    };
    let Some(bytes) = base64_decode(encoded) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    match text.split_once(':') {
        Some((user, _)) => user.to_string(),
        None => String::new(),
    }
}

/// Standard base64 (with padding), as Go's `base64.StdEncoding`.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

/// Where actions go: a queue drained by [`run`].
#[derive(Clone)]
pub struct Notifier {
    tx: Option<mpsc::Sender<AdminAction>>,
}

impl Notifier {
    pub fn disabled() -> Notifier {
        Notifier { tx: None }
    }

    /// Queue an action (dropped with a warning if 1000 are already waiting).
    pub fn send(&self, action: AdminAction) {
        if let Some(tx) = &self.tx {
            if tx.try_send(action).is_err() {
                tracing::warn!("notification queue full: dropping an admin action event");
            }
        }
    }
}

/// Start the notification task for `endpoint` (none when empty).
pub fn start(
    endpoint: &str,
    cluster: Cluster,
    tracker: &tokio_util::task::TaskTracker,
    stop: tokio_util::sync::CancellationToken,
) -> Notifier {
    if endpoint.is_empty() {
        return Notifier::disabled();
    }
    let (tx, rx) = mpsc::channel(1000);
    tracker.spawn(run(endpoint.to_string(), cluster, rx, stop));
    Notifier { tx: Some(tx) }
}

/// Send queued actions until shutdown (those still queued then are sent
/// first, each within the request timeout).
async fn run(
    endpoint: String,
    cluster: Cluster,
    mut rx: mpsc::Receiver<AdminAction>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let action = tokio::select! {
            biased;
            a = rx.recv() => a,
            _ = stop.cancelled() => rx.try_recv().ok(),
        };
        let Some(action) = action else { return };
        let body = serde_json::to_vec(&action).expect("plain data serializes");
        tracing::info!("POSTing notification to {endpoint}");
        if let Err(e) = cluster.post_json(&endpoint, body).await {
            tracing::error!("failed to POST notification - {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth() {
        // "matt:secret"
        assert_eq!(basic_auth_user(Some("Basic bWF0dDpzZWNyZXQ=")), "matt");
        assert_eq!(basic_auth_user(Some("Basic bWF0dA==")), "", "no colon");
        assert_eq!(basic_auth_user(Some("Bearer x")), "");
        assert_eq!(basic_auth_user(Some("Basic !!!!")), "");
        assert_eq!(basic_auth_user(None), "");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
    }

    #[test]
    fn event_shape() {
        let a = AdminAction {
            action: "pause_channel".into(),
            topic: "t".into(),
            channel: "c".into(),
            node: String::new(),
            timestamp: 1,
            user: String::new(),
            remote_ip: "127.0.0.1:5".into(),
            user_agent: "ua".into(),
            url: "http://h/api/topics/t/c".into(),
            via: "host".into(),
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"action":"pause_channel","topic":"t","channel":"c","timestamp":1,"remote_ip":"127.0.0.1:5","user_agent":"ua","url":"http://h/api/topics/t/c","via":"host"}"#
        );
    }
}
