//! HTTP requests to nsqd's API at `host:port` (or a URL), or at a unix
//! socket path as nsqd's `--http-address` may be: the one [`reqwest`]
//! client for TCP, and one per socket path (reqwest binds a client to a
//! socket), made when first needed.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct NodeHttp {
    tcp: reqwest::Client,
    connect_timeout: Option<Duration>,
    timeout: Duration,
    unix: Mutex<HashMap<PathBuf, reqwest::Client>>,
}

impl NodeHttp {
    /// Clients with these timeouts (connect: TCP only).
    pub fn new(connect_timeout: Option<Duration>, timeout: Duration) -> reqwest::Result<NodeHttp> {
        let mut builder = reqwest::Client::builder().timeout(timeout);
        if let Some(t) = connect_timeout {
            builder = builder.connect_timeout(t);
        }
        Ok(NodeHttp {
            tcp: builder.build()?,
            connect_timeout,
            timeout,
            unix: Mutex::new(HashMap::new()),
        })
    }

    /// The TCP client (for nsqlookupd, which the tools reach over TCP).
    pub fn tcp(&self) -> &reqwest::Client {
        &self.tcp
    }

    /// A GET of `path` (with its leading `/`) at `addr`.
    pub fn get(&self, addr: &str, path: &str) -> reqwest::Result<reqwest::RequestBuilder> {
        let url = addr.starts_with("http://") || addr.starts_with("https://");
        match crate::listen::endpoint(addr) {
            crate::listen::Endpoint::Unix(socket) if !url => {
                let client = self.unix_client(socket)?;
                Ok(client.get(format!("http://localhost{path}")))
            }
            _ => Ok(self
                .tcp
                .get(format!("{}{path}", super::api::base_url(addr)))),
        }
    }

    fn unix_client(&self, socket: &Path) -> reqwest::Result<reqwest::Client> {
        let mut clients = self.unix.lock();
        if let Some(c) = clients.get(socket) {
            return Ok(c.clone());
        }
        let mut builder = reqwest::Client::builder()
            .timeout(self.timeout)
            .unix_socket(socket);
        if let Some(t) = self.connect_timeout {
            builder = builder.connect_timeout(t);
        }
        let client = builder.build()?;
        clients.insert(socket.to_path_buf(), client.clone());
        Ok(client)
    }
}
