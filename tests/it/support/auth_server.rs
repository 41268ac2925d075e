//! A small auth server (nsqd's `--auth-http-address`) run by the tests:
//! it answers each secret from a table and records every request.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

pub struct AuthServer {
    pub addr: SocketAddr,
    /// Each request: its head, a blank line, its body.
    pub requests: Arc<Mutex<Vec<String>>>,
}

/// The secret of an auth request: `secret=` in the query (GET), or the
/// JSON body's `secret` (POST).
fn secret_of(head: &str, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(s) = v["secret"][0].as_str() {
            return s.to_string();
        }
    }
    let target = head.split_whitespace().nth(1).unwrap_or("");
    target
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("secret="))
        .unwrap_or("")
        .to_string()
}

impl AuthServer {
    /// Answers: secret → (status, JSON body). Any other secret gets 403.
    pub fn start(answers: HashMap<String, (u16, serde_json::Value)>) -> AuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let secret = secret_of(&head, &body);
                log.lock()
                    .unwrap()
                    .push(format!("{head}\n{}", String::from_utf8_lossy(&body)));
                let (status, answer) = answers
                    .get(&secret)
                    .cloned()
                    .unwrap_or((403, serde_json::json!({"message": "no"})));
                let body = answer.to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        AuthServer { addr, requests }
    }

    /// How many requests asked about `secret`.
    pub fn count(&self, secret: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| {
                let (head, body) = r.split_once("\n\n").unwrap_or((r, ""));
                secret_of(head, body.as_bytes()) == secret
            })
            .count()
    }
}
