//! Authorization through an external HTTP service (`--auth-http-address`),
//! as NSQ does it: a client sends AUTH with a secret, nsqd asks the auth
//! server what that secret may do, caches the answer for its TTL, and
//! checks SUB, PUB, MPUB and DPUB against it.
//!
//! Beyond NSQ, `--auth-required=http,https` puts the HTTP API behind the
//! same server: each request carries its secret (`Authorization: Bearer
//! <secret>`), answers are cached per secret and client for their TTL
//! ([`HttpAuth`]), and an `admin` permission covers creating, deleting,
//! emptying and pausing topics and channels.

use super::Nsqd;
use regex::Regex;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
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
    admin: bool,
}

/// The permission a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Subscribe,
    Publish,
    /// Create, delete, empty, pause, unpause and configure (HTTP only;
    /// accepted from the auth server only with `--auth-required=http` or
    /// `https`).
    Admin,
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
                Permission::Admin => g.admin,
            };
            has && g.topic.is_match(topic) && g.channels.iter().any(|c| c.is_match(channel))
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct Answer {
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
            parse(secret.clone(), answer, nsqd.opts.http_auth_required())
        }
        .await;
        match answer {
            Ok(auth) => return Ok(auth),
            Err(e) => errors.push(format!("{url}: {e}")),
        }
    }
    Err(errors.join("; "))
}

/// The longest TTL honoured, in seconds (100 years).
const MAX_TTL_SECS: u64 = 100 * 365 * 24 * 3600;

/// Validate an auth server's answer. `admin` is a permission only when
/// the HTTP API is guarded; otherwise it is unknown, as in NSQ.
pub(crate) fn parse(
    secret: bytes::Bytes,
    answer: Answer,
    admin_known: bool,
) -> Result<Authorization, String> {
    if answer.ttl <= 0 {
        return Err("invalid TTL".into());
    }
    let mut grants = Vec::new();
    for g in answer.authorizations {
        let (mut subscribe, mut publish, mut admin) = (false, false, false);
        for p in &g.permissions {
            match p.as_str() {
                "subscribe" => subscribe = true,
                "publish" => publish = true,
                "admin" if admin_known => admin = true,
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
            admin,
        });
    }
    Ok(Authorization {
        secret,
        identity: answer.identity,
        identity_url: answer.identity_url,
        // A TTL near i64::MAX seconds would overflow `Instant`: a century
        // is forever enough.
        expires: Instant::now() + Duration::from_secs((answer.ttl as u64).min(MAX_TTL_SECS)),
        grants,
    })
}

/// Why an HTTP request was refused (`--auth-required=http`/`https`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpAuthError {
    /// No `Authorization: Bearer <secret>` header (401 `AUTH_REQUIRED`).
    Missing,
    /// The auth server refused the secret or could not be asked (401
    /// `AUTH_FAILED`; the reason is logged).
    Failed,
    /// Known, but with no authorizations at all (403 `UNAUTHORIZED`).
    NoGrants,
}

/// The HTTP API's view of the auth server: what each (secret, client)
/// may do, cached for the TTL the auth server gave, shared by the HTTP
/// and HTTPS listeners.
#[derive(Default)]
pub struct HttpAuth {
    cache: parking_lot::Mutex<HashMap<CacheKey, Arc<Authorization>>>,
}

/// Everything the auth server is told: its answer may depend on any of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    secret: bytes::Bytes,
    remote_ip: String,
    tls: bool,
    common_name: String,
}

/// Entries kept before the expired ones are dropped (and, if that is not
/// enough, all of them): a flood of made-up secrets cannot grow it further.
const MAX_CACHED: usize = 4096;

impl HttpAuth {
    /// What the secret in `authorization` (an `Authorization` header's
    /// value) may do, for a client at `remote_ip`.
    pub async fn authorize(
        &self,
        nsqd: &Nsqd,
        authorization: Option<&[u8]>,
        asker: &Asker<'_>,
    ) -> Result<Arc<Authorization>, HttpAuthError> {
        let secret = authorization
            .and_then(bearer_secret)
            .ok_or(HttpAuthError::Missing)?;
        let key = CacheKey {
            secret: bytes::Bytes::copy_from_slice(secret),
            remote_ip: asker.remote_ip.clone(),
            tls: asker.tls,
            common_name: asker.common_name.to_string(),
        };
        let cached = self.cache.lock().get(&key).cloned();
        let auth = match cached {
            Some(auth) if !auth.is_expired() => auth,
            _ => {
                let auth = query(nsqd, &key.secret, asker).await.map_err(|e| {
                    tracing::warn!("[{}] HTTP auth failed: {e}", asker.remote_ip);
                    HttpAuthError::Failed
                })?;
                let auth = Arc::new(auth);
                let mut cache = self.cache.lock();
                if cache.len() >= MAX_CACHED {
                    cache.retain(|_, a| !a.is_expired());
                    if cache.len() >= MAX_CACHED {
                        cache.clear();
                    }
                }
                cache.insert(key, auth.clone());
                auth
            }
        };
        if auth.grant_count() == 0 {
            return Err(HttpAuthError::NoGrants);
        }
        Ok(auth)
    }
}

/// The secret of `Bearer <secret>` (the scheme in any case).
fn bearer_secret(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let secret = rest.trim_ascii();
    (!secret.is_empty()).then_some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(json: serde_json::Value) -> Result<Authorization, String> {
        parse(
            bytes::Bytes::new(),
            serde_json::from_value(json).unwrap(),
            false,
        )
    }

    #[test]
    fn admin_is_a_permission_only_when_http_is_guarded() {
        let answer = serde_json::json!({"ttl": 60, "authorizations": [
            {"topic": "^orders$", "channels": [".*"], "permissions": ["admin"]}
        ]});
        assert!(auth(answer.clone()).is_err(), "unknown, as in NSQ");
        let a = parse(
            bytes::Bytes::new(),
            serde_json::from_value(answer).unwrap(),
            true,
        )
        .unwrap();
        assert!(a.allows(Permission::Admin, "orders", ""));
        assert!(a.allows(Permission::Admin, "orders", "billing"));
        assert!(!a.allows(Permission::Publish, "orders", ""));
        assert!(!a.allows(Permission::Admin, "orders2", ""));
    }

    #[test]
    fn bearer_secrets() {
        assert_eq!(bearer_secret(b"Bearer s3cr3t"), Some(&b"s3cr3t"[..]));
        assert_eq!(bearer_secret(b"bearer  s3cr3t "), Some(&b"s3cr3t"[..]));
        assert_eq!(bearer_secret(b"Basic dXNlcjpw"), None);
        assert_eq!(bearer_secret(b"Bearer "), None);
        assert_eq!(bearer_secret(b"Bear"), None);
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

    /// Found by fuzzing (`auth_json`): `{"ttl":9223372036854775807}`
    /// panicked with "overflow when adding duration to instant".
    #[test]
    fn a_huge_ttl_is_capped_not_a_panic() {
        let a = auth(serde_json::json!({"ttl": i64::MAX})).unwrap();
        assert!(!a.is_expired());
        assert!(a.expires > Instant::now() + Duration::from_secs(MAX_TTL_SECS - 60));
    }

    #[test]
    fn invalid_answers_fail() {
        assert!(auth(serde_json::json!({"ttl": 0})).is_err());
        assert!(auth(serde_json::json!({"ttl": 5, "authorizations": [{"topic": "(", "channels": [], "permissions": []}]})).is_err());
        assert!(auth(serde_json::json!({"ttl": 5, "authorizations": [{"topic": "t", "channels": [], "permissions": ["admin"]}]})).is_err());
    }
}
