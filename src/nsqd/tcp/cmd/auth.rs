//! AUTH, and the permission check before SUB and publishes when
//! `--auth-http-address` is set.

use super::super::connection::Connection;
use crate::nsqd::auth::{self, Asker, Authorization, Permission};
use crate::protocol::ProtocolError;
use bytes::Bytes;

impl Connection {
    /// AUTH: ask the auth server what this secret may do.
    pub(super) async fn authenticate(&mut self, secret: Bytes) -> Result<(), ProtocolError> {
        if self.nsqd.opts.auth_http_addresses.is_empty() {
            return Err(ProtocolError::fatal("E_AUTH_DISABLED", "AUTH disabled"));
        }
        if self.auth.is_some() {
            return Err(ProtocolError::fatal("E_INVALID", "AUTH already set"));
        }
        let auth = self.query_auth(&secret).await?;
        if auth.grant_count() == 0 {
            return Err(ProtocolError::fatal(
                "E_UNAUTHORIZED",
                "AUTH no authorizations found",
            ));
        }
        let answer = serde_json::json!({
            "identity": auth.identity,
            "identity_url": auth.identity_url,
            "permission_count": auth.grant_count(),
        });
        {
            let mut info = self.client.info.lock();
            info.authed = true;
            info.auth_identity = auth.identity.clone();
            info.auth_identity_url = auth.identity_url.clone();
        }
        self.auth = Some(auth);
        self.respond(answer.to_string().as_bytes());
        Ok(())
    }

    /// Ask the auth server; only shared handles are held across the wait
    /// (the connection itself is not `Sync`).
    fn query_auth(
        &self,
        secret: &Bytes,
    ) -> impl std::future::Future<Output = Result<Authorization, ProtocolError>> + Send + 'static
    {
        let (nsqd, client, secret) = (self.nsqd.clone(), self.client.clone(), secret.clone());
        async move {
            let (tls, common_name) = {
                let info = client.info.lock();
                (info.tls, info.tls_common_name.clone())
            };
            let asker = Asker {
                // Empty on a unix socket, as NSQ sends it.
                remote_ip: client
                    .remote_addr
                    .ip()
                    .map(|ip| ip.to_string())
                    .unwrap_or_default(),
                tls,
                common_name: &common_name,
            };
            auth::query(&nsqd, &secret, &asker).await.map_err(|e| {
                tracing::warn!("[{}] auth failed: {e}", client.remote_addr);
                ProtocolError::fatal("E_AUTH_FAILED", "AUTH failed")
            })
        }
    }

    /// With `--auth-http-address`: may this connection do `cmd` on
    /// (topic, channel)? An expired authorization is renewed first.
    pub(super) async fn authorize(
        &mut self,
        cmd: &str,
        topic: &str,
        channel: &str,
        permission: Permission,
    ) -> Result<(), ProtocolError> {
        if self.nsqd.opts.auth_http_addresses.is_empty() {
            return Ok(());
        }
        let Some(current) = &self.auth else {
            return Err(ProtocolError::fatal(
                "E_AUTH_FIRST",
                format!("AUTH required before {cmd}"),
            ));
        };
        if current.is_expired() {
            let secret = current.secret.clone();
            self.auth = Some(self.query_auth(&secret).await?);
        }
        let auth = self.auth.as_ref().expect("set above");
        if !auth.allows(permission, topic, channel) {
            return Err(ProtocolError::fatal(
                "E_UNAUTHORIZED",
                format!("AUTH failed for {cmd} on {topic:?} {channel:?}"),
            ));
        }
        Ok(())
    }
}
