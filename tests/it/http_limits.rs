//! HTTP requests as large as NSQ (Go's net/http) accepts them: heads up to
//! 1 MB, any number of headers within that, request targets far beyond the
//! 64 KB an `http::Uri` holds, also mid-way through a keep-alive connection.

use crate::support::{http_request, Lookupd, Nsqd};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Send `raw` on one connection and read `n` responses: (status, body).
fn exchange(addr: SocketAddr, raw: &[u8], n: usize) -> Vec<(u16, String)> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while out.len() < n {
        // One full response in `buf`? (Content-Length framed.)
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                out.push((status, body));
                buf.drain(..end + 4 + len);
                continue;
            }
        }
        let mut chunk = [0u8; 65536];
        let got = s.read(&mut chunk).expect("response");
        assert!(got > 0, "closed after {} responses: {out:?}", out.len());
        buf.extend_from_slice(&chunk[..got]);
    }
    out
}

fn pad(n: usize) -> String {
    "p".repeat(n)
}

#[test]
fn many_headers_are_accepted() {
    let nsqd = Nsqd::start(&[]);
    let headers: String = (0..500).map(|i| format!("X-Extra-{i}: {i}\r\n")).collect();
    let req = format!("GET /ping HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
    assert_eq!(
        exchange(nsqd.http, req.as_bytes(), 1),
        vec![(200, "OK".into())]
    );
}

#[test]
fn long_request_targets_are_accepted() {
    let nsqd = Nsqd::start(&[]);
    // 70 KB of query: published, on a connection that goes on afterwards.
    let long = format!("/pub?topic=long&pad={}", pad(70_000));
    let req = format!(
        "POST /pub?topic=long HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst\
         POST {long} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n\
         GET /stats?format=json&topic=long&pad={} HTTP/1.1\r\nHost: x\r\n\r\n",
        pad(200_000)
    );
    let answers = exchange(nsqd.http, req.as_bytes(), 3);
    assert_eq!(answers[0], (200, "OK".into()));
    assert_eq!(answers[1], (200, "OK".into()));
    assert_eq!(answers[2].0, 200);
    let stats: serde_json::Value = serde_json::from_str(&answers[2].1).unwrap();
    assert_eq!(stats["topics"][0]["topic_name"], "long");
    assert_eq!(stats["topics"][0]["message_count"], 2);
    // nsqlookupd too.
    let lookupd = Lookupd::start(&[]);
    let r = http_request(
        lookupd.http,
        "GET",
        &format!("/lookup?topic=t&pad={}", pad(100_000)),
        b"",
    );
    assert_eq!(
        (r.status, r.text()),
        (404, r#"{"message":"TOPIC_NOT_FOUND"}"#.into())
    );
}

#[test]
fn a_head_over_a_megabyte_is_refused() {
    let nsqd = Nsqd::start(&[]);
    let req = format!(
        "GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        pad(1_100_000)
    );
    let answers = exchange(nsqd.http, req.as_bytes(), 1);
    assert_eq!(answers[0].0, 431);
    // The server is fine afterwards.
    assert_eq!(http_request(nsqd.http, "GET", "/ping", b"").status, 200);
}
