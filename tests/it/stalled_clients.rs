//! No client can stall the others: TLS handshakes that never start, HTTP
//! requests that trickle in, more HTTP connections than allowed, and a
//! consumer that stops reading its socket.

use crate::support;

use bytes::{Bytes, BytesMut};
use nsq::protocol::{Command, Frame, FrameDecoder, MAGIC_V2};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{https_request, wait_until, Nsqd, Pki, DEADLINE};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;

/// 50 clients open the HTTPS port and send nothing; a normal client's
/// request is answered at once, not after their 5 s handshake timeouts.
#[test]
fn stalled_tls_handshakes_do_not_delay_https() {
    let pki = Pki::new();
    let flags = pki.flags();
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let nsqd = Nsqd::start(&args);
    let https = nsqd.https();
    let stalled: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(https).unwrap())
        .collect();
    let started = Instant::now();
    let r = https_request(https, pki.client_config(false), "GET", "/ping", &[], b"");
    let took = started.elapsed();
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    assert!(
        took < Duration::from_secs(2),
        "/ping took {took:?} behind 50 stalled handshakes"
    );
    drop(stalled);
}

/// Write `head` then one byte of `trickle` every 50 ms until the server
/// closes the connection. Returns what the server sent, and whether it
/// closed before the trickle was over.
fn trickle(addr: std::net::SocketAddr, head: &[u8], trickle: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    for &b in trickle {
        assert!(
            Instant::now() < deadline,
            "still connected after {DEADLINE:?}"
        );
        if s.write_all(&[b]).is_err() {
            return (String::from_utf8_lossy(&got).into_owned(), true);
        }
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

#[test]
fn http_heads_that_trickle_in_are_cut_off() {
    let nsqd = Nsqd::start(&["--http-read-timeout=500ms"]);
    // Headers that never end: 1000 bytes at 20 per second would take 50 s.
    let endless = "X-Slow: y\r\n".repeat(100);
    let (got, closed) = trickle(
        nsqd.http,
        b"GET /ping HTTP/1.1\r\nHost: x\r\n",
        endless.as_bytes(),
    );
    assert!(closed, "a trickling head was not cut off");
    assert!(!got.contains("200 OK"), "{got}");
    // A connection that sends nothing at all is closed too.
    let mut idle = TcpStream::connect(nsqd.http).unwrap();
    idle.set_read_timeout(Some(DEADLINE)).unwrap();
    assert_eq!(idle.read(&mut [0u8; 16]).unwrap_or(0), 0);
    // Prompt clients are served as ever.
    let r = nsqd.http("GET", "/ping", b"");
    assert_eq!(r.status, 200);
}

#[test]
fn http_bodies_that_trickle_in_are_cut_off() {
    let nsqd = Nsqd::start(&["--http-read-timeout=500ms"]);
    let body = vec![b'b'; 1000];
    let (got, closed) = trickle(
        nsqd.http,
        b"POST /pub?topic=slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
        &body,
    );
    assert!(closed, "a trickling body was not cut off");
    // The handler saw a failed body read: NSQ's answer to one.
    assert!(got.starts_with("HTTP/1.1 500"), "{got}");
    assert!(got.ends_with(r#"{"message":"INTERNAL_ERROR"}"#), "{got}");
    assert_eq!(
        nsqd.topic_stats("slow").map(|t| t["message_count"].clone()),
        None,
        "nothing published"
    );
    // A body sent promptly goes through.
    let r = nsqd.http("POST", "/pub?topic=fast", &body);
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
}

/// Send a keep-alive `GET /ping` and read its answer: the connection is
/// then open and idle.
fn ping_keep_alive(s: &mut TcpStream) {
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"OK") {
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed");
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn http_connections_are_bounded() {
    let nsqd = Nsqd::start(&["--max-http-connections=2"]);
    let mut first = TcpStream::connect(nsqd.http).unwrap();
    ping_keep_alive(&mut first);
    let mut second = TcpStream::connect(nsqd.http).unwrap();
    ping_keep_alive(&mut second);
    // A third waits to be accepted while both are open...
    let mut third = TcpStream::connect(nsqd.http).unwrap();
    third
        .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(
        third.read(&mut buf).is_err(),
        "served beyond --max-http-connections"
    );
    wait_until("the limit logged", || {
        nsqd.log_text().contains("2 connections open")
    });
    // ...and is served once one of them closes.
    drop(first);
    third.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut got = Vec::new();
    third.read_to_end(&mut got).unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("HTTP/1.1 200") && got.ends_with("OK"),
        "{got}"
    );
    // The one still open works as before.
    ping_keep_alive(&mut second);
}

/// Frames from an async stream.
async fn read_frame<S: AsyncRead + Unpin>(s: &mut S, buf: &mut BytesMut) -> Frame {
    let mut decoder = FrameDecoder::default();
    loop {
        if let Some(f) = decoder.decode(buf).unwrap() {
            if !f.is_heartbeat() {
                return f;
            }
            continue;
        }
        let n = tokio::time::timeout(DEADLINE, s.read_buf(buf))
            .await
            .expect("a frame in time")
            .unwrap();
        assert!(n > 0, "closed");
    }
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, cmd: &Command) {
    s.write_all(&cmd.to_bytes()).await.unwrap();
    s.flush().await.unwrap();
}

/// A consumer (heartbeats and message timeout 1 s, RDY 100) that never
/// reads again after subscribing, but keeps sending NOPs so that it is
/// not taken for dead. Runs until the server closes the connection.
async fn consumer_that_stops_reading(nsqd_tcp: std::net::SocketAddr, topic: &str, deflate: bool) {
    let mut tcp = tokio::net::TcpStream::connect(nsqd_tcp).await.unwrap();
    tcp.write_all(MAGIC_V2).await.unwrap();
    let identify = serde_json::json!({
        "feature_negotiation": true,
        "heartbeat_interval": 1000,
        "msg_timeout": 1000,
        "deflate": deflate,
        "deflate_level": 1,
    });
    send(
        &mut tcp,
        &Command::Identify(Bytes::from(identify.to_string())),
    )
    .await;
    let mut buf = BytesMut::new();
    assert!(matches!(
        read_frame(&mut tcp, &mut buf).await,
        Frame::Response(_)
    ));
    let mut stream: Box<dyn Stream> = if deflate {
        let mut s = Box::new(nsq::compress::deflate(tcp, 1));
        assert_eq!(
            read_frame(&mut s, &mut buf).await,
            Frame::Response(Bytes::from_static(b"OK"))
        );
        s
    } else {
        Box::new(tcp)
    };
    send(
        &mut stream,
        &Command::Sub {
            topic: topic.into(),
            channel: "ch".into(),
        },
    )
    .await;
    assert_eq!(
        read_frame(&mut stream, &mut buf).await,
        Frame::Response(Bytes::from_static(b"OK"))
    );
    send(&mut stream, &Command::Rdy(100)).await;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let nop = Command::Nop.to_bytes();
        let sent = async {
            stream.write_all(&nop).await?;
            stream.flush().await
        };
        // A full socket is fine (we do not read, nsqd may not either):
        // only a closed one ends this.
        if let Ok(Err(_)) = tokio::time::timeout(Duration::from_millis(200), sent).await {
            return;
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The largest receive plus send buffer a TCP socket may grow to here
/// (`tcp_rmem` and `tcp_wmem` maxima; Linux defaults if unreadable).
fn socket_buffers_max() -> u64 {
    let max = |file: &str, default: u64| {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.split_whitespace().nth(2)?.parse().ok())
            .unwrap_or(default)
    };
    max("/proc/sys/net/ipv4/tcp_rmem", 6 << 20) + max("/proc/sys/net/ipv4/tcp_wmem", 4 << 20)
}

/// Bodies that do not compress, so that they fill the socket buffers.
fn noise(i: usize, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(i as u64);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn stalled_consumer_is_disconnected_and_its_messages_requeued(deflate: bool) {
    let nsqd = Nsqd::start(&["--mem-queue-size=0"]);
    let topic = if deflate { "stall_deflate" } else { "stall" };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tcp = nsqd.tcp;
    let staller = rt.spawn(consumer_that_stops_reading(tcp, topic, deflate));
    wait_until("the consumer subscribed", || {
        nsqd.channel_stats(topic, "ch")
            .is_some_and(|c| c["client_count"] == 1)
    });
    let rss_before = nsqd.rss_bytes();
    // 48 MB of messages on disk for a consumer that takes none of them in.
    let count = 48;
    let mut publisher = nsqd.connect();
    for i in 0..count {
        publisher.publish(topic, &noise(i, 1 << 20));
    }
    // It is cut off after one heartbeat interval without write progress;
    // meanwhile nsqd held only what fitted in its buffers.
    let mut max_in_flight = 0;
    let mut max_rss = 0;
    wait_until("the stalled consumer disconnected", || {
        let c = nsqd.channel_stats(topic, "ch").unwrap();
        max_in_flight = max_in_flight.max(c["in_flight_count"].as_u64().unwrap());
        max_rss = max_rss.max(nsqd.rss_bytes());
        c["client_count"] == 0
    });
    nsqd.wait_for_log("client not reading, closing");
    // In flight can be at most what fits between nsqd and the client:
    // nsqd's 4 MB of pending output, the two socket buffers (as large as
    // the kernel lets them grow) and the message being sent.
    let bound = (4 << 20) + socket_buffers_max() + (1 << 20);
    assert!(
        max_in_flight <= bound >> 20 && max_in_flight < count as u64 / 2,
        "{max_in_flight} of {count} 1 MB messages in flight to a client that reads nothing (bound {} MB)",
        bound >> 20
    );
    let growth = max_rss.saturating_sub(rss_before);
    assert!(
        growth < 32 << 20,
        "nsqd grew by {} MB while a consumer stalled on 48 MB",
        growth >> 20
    );
    rt.block_on(async {
        tokio::time::timeout(DEADLINE, staller)
            .await
            .expect("the staller sees its connection closed")
            .unwrap()
    });
    // What it was sent times out (1 s) and goes to the next consumer.
    let mut reader = support::consumer(&nsqd, topic, "ch", 100);
    let mut seen = std::collections::HashSet::new();
    let mut redelivered = 0;
    while seen.len() < count {
        let m = reader.expect_message();
        assert_eq!(m.body.len(), 1 << 20);
        if m.attempts > 1 {
            redelivered += 1;
        }
        seen.insert(m.id);
        reader.fin(m.id);
    }
    assert!(
        redelivered > 0,
        "none of the stalled consumer's messages came back"
    );
    let c = nsqd.channel_stats(topic, "ch").unwrap();
    assert_eq!(c["timeout_count"], redelivered);
}

#[test]
fn a_consumer_that_stops_reading_is_disconnected() {
    stalled_consumer_is_disconnected_and_its_messages_requeued(false);
}

/// With compression, the bytes wait in the compressor's flush: that wait
/// is bounded as well.
#[test]
fn a_deflate_consumer_that_stops_reading_is_disconnected() {
    stalled_consumer_is_disconnected_and_its_messages_requeued(true);
}
