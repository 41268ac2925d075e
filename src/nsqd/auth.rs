//! Authorization through an external HTTP service (`--auth-http-address`),
//! as NSQ does it: a client sends AUTH with a secret, nsqd asks the auth
//! server what that secret may do, caches the answer for its TTL, and
//! checks SUB, PUB, MPUB and DPUB against it.

use super::Nsqd;
use regex::Regex;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// What a secret may do, until `expires`.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub secret: bytes::Bytes,
    pub identity: String,
    pub identity_url: String,
    pub expires: Instant,
    grants: Vec<Grant>,
}

#[derive(Debug, Clone)]
struct Grant {
    topic: Regex,
    channels: Vec<Regex>,
    subscribe: bool,
    publish: bool,
}

/// The permission a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Subscribe,
    Publish,
}

impl Authorization {
    pub fn grant_count(&self) -> usize {
        self.grants.len()
    }

    pub fn is_expired(&self) -> bool {
        Instant::now() > self.expires
    }

    /// Whether any grant allows `permission` on (topic, channel); regexes
    /// match anywhere in the name (unanchored), as Go's `MatchString`.
    pub fn allows(&self, permission: Permission, topic: &str, channel: &str) -> bool {
        self.grants.iter().any(|g| {
            let has = match permission {
                Permission::Subscribe => g.subscribe,
                Permission::Publish => g.publish,
            };
            has && g.topic.is_match(topic) && g.channels.iter().any(|c| c.is_match(channel))
        })
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    ttl: i64,
    #[serde(default)]
    identity: String,
    #[serde(default)]
    identity_url: String,
    #[serde(default)]
    authorizations: Vec<AnswerGrant>,
}

#[derive(Deserialize)]
struct AnswerGrant {
    #[serde(default)]
    topic: String,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    permissions: Vec<String>,
}

/// Who is asking: what the auth server is told besides the secret.
pub struct Asker<'a> {
    pub remote_ip: String,
    pub tls: bool,
    pub common_name: &'a str,
}

/// Ask the auth servers (from a random one, the next on failure) what
/// `secret` may do. `Err` carries the reasons, for the log.
pub async fn query(
    nsqd: &Nsqd,
    secret: &bytes::Bytes,
    asker: &Asker<'_>,
) -> Result<Authorization, String> {
    let servers = &nsqd.opts.auth_http_addresses;
    if servers.is_empty() {
        return Err("no --auth-http-address".into());
    }
    let client = reqwest::Client::builder()
        .connect_timeout(nsqd.opts.http_client_connect_timeout)
        .timeout(nsqd.opts.http_client_request_timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let secret_text = String::from_utf8_lossy(secret).into_owned();
    let tls = if asker.tls { "true" } else { "false" };
    let start = fastrand::usize(..servers.len());
    let mut errors = Vec::new();
    for i in 0..servers.len() {
        let server = &servers[(start + i) % servers.len()];
        let url = if server.contains("://") {
            server.clone()
        } else {
            format!("http://{server}/auth")
        };
        let request = if nsqd.opts.auth_http_request_method == "post" {
            client.post(&url).json(&serde_json::json!({
                "common_name": [asker.common_name],
                "remote_ip": [asker.remote_ip],
                "secret": [secret_text],
                "tls": [tls],
            }))
        } else {
            client.get(&url).query(&[
                ("common_name", asker.common_name),
                ("remote_ip", asker.remote_ip.as_str()),
                ("secret", secret_text.as_str()),
                ("tls", tls),
            ])
        };
        let answer = async {
            let response = request
                .header("Accept", "application/vnd.nsq; version=1.0")
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("HTTP {}", response.status()));
            }
            let answer: Answer = response.json().await.map_err(|e| e.to_string())?;
            parse(secret.clone(), answer)
        }
        .await;
        match answer {
            Ok(auth) => return Ok(auth),
            Err(e) => errors.push(format!("{url}: {e}")),
        }
    }
    Err(errors.join("; "))
}

fn parse(secret: bytes::Bytes, answer: Answer) -> Result<Authorization, String> {
    if answer.ttl <= 0 {
        return Err("invalid TTL".into());
    }
    let mut grants = Vec::new();
    for g in answer.authorizations {
        let (mut subscribe, mut publish) = (false, false);
        for p in &g.permissions {
            match p.as_str() {
                "subscribe" => subscribe = true,
                "publish" => publish = true,
                other => return Err(format!("unknown permission {other:?}")),
            }
        }
        let topic = Regex::new(&g.topic).map_err(|e| format!("topic pattern: {e}"))?;
        let channels = g
            .channels
            .iter()
            .map(|c| Regex::new(c).map_err(|e| format!("channel pattern: {e}")))
            .collect::<Result<_, _>>()?;
        grants.push(Grant {
            topic,
            channels,
            subscribe,
            publish,
        });
    }
    Ok(Authorization {
        secret,
        identity: answer.identity,
        identity_url: answer.identity_url,
        expires: Instant::now() + Duration::from_secs(answer.ttl as u64),
        grants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(json: serde_json::Value) -> Result<Authorization, String> {
        parse(bytes::Bytes::new(), serde_json::from_value(json).unwrap())
    }

    #[test]
    fn grants_match_unanchored_and_need_a_channel_pattern() {
        let a = auth(serde_json::json!({"ttl": 60, "authorizations": [
            {"topic": "^orders$", "channels": [".*"], "permissions": ["subscribe", "publish"]},
            {"topic": "logs", "channels": ["^archive$"], "permissions": ["subscribe"]},
            {"topic": ".*", "channels": [], "permissions": ["publish"]}
        ]}))
        .unwrap();
        assert!(a.allows(Permission::Publish, "orders", ""));
        assert!(a.allows(Permission::Subscribe, "orders", "any"));
        assert!(!a.allows(Permission::Publish, "orders2", ""));
        assert!(a.allows(Permission::Subscribe, "app-logs-1", "archive"));
        assert!(!a.allows(Permission::Subscribe, "app-logs-1", "archive2"));
        assert!(
            !a.allows(Permission::Publish, "logs", ""),
            "no channel pattern: nothing"
        );
        assert_eq!(a.grant_count(), 3);
    }

    #[test]
    fn invalid_answers_fail() {
        assert!(auth(serde_json::json!({"ttl": 0})).is_err());
        assert!(auth(serde_json::json!({"ttl": 5, "authorizations": [{"topic": "(", "channels": [], "permissions": []}]})).is_err());
        assert!(auth(serde_json::json!({"ttl": 5, "authorizations": [{"topic": "t", "channels": [], "permissions": ["admin"]}]})).is_err());
    }
}
