//! nsqlookupd alone, byte for byte: protocol V1 as nsqd speaks it (and as a
//! confused or hostile client might), and the HTTP API's errors.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::{http_request, run_binary, Lookupd, DEADLINE};

/// A raw V1 client.
struct V1(TcpStream);

impl V1 {
    fn connect(l: &Lookupd, magic: &[u8]) -> V1 {
        let s = TcpStream::connect(l.tcp).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut c = V1(s);
        c.send(magic);
        c
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).unwrap();
    }

    /// One response: `[int32 size][data]`.
    fn response(&mut self) -> String {
        let mut size = [0u8; 4];
        self.0.read_exact(&mut size).expect("a response");
        let mut data = vec![0u8; i32::from_be_bytes(size) as usize];
        self.0.read_exact(&mut data).unwrap();
        String::from_utf8(data).unwrap()
    }

    fn identify(&mut self, json: &str) -> String {
        let mut cmd = b"IDENTIFY\n".to_vec();
        cmd.extend_from_slice(&(json.len() as u32).to_be_bytes());
        cmd.extend_from_slice(json.as_bytes());
        self.send(&cmd);
        self.response()
    }

    fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        let n = self
            .0
            .read_to_end(&mut rest)
            .expect("closed, not timed out");
        assert_eq!(n, 0, "unexpected bytes before close: {rest:?}");
    }
}

const NSQD: &str = r#"{"broadcast_address":"n1","hostname":"h1","tcp_port":4150,"http_port":4151,"version":"1.3.0"}"#;

#[test]
fn identify_register_and_http_views() {
    let l = Lookupd::start(&[]);
    let mut c = V1::connect(&l, b"  V1");
    c.send(b"PING\n");
    assert_eq!(c.response(), "OK");
    let info: serde_json::Value = serde_json::from_str(&c.identify(NSQD)).unwrap();
    let keys: Vec<&str> = info
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "broadcast_address",
            "hostname",
            "http_port",
            "tcp_port",
            "version"
        ]
    );
    assert_eq!(info["tcp_port"], l.tcp.port());
    assert_eq!(info["http_port"], l.http.port());
    assert_eq!(info["version"], "1.3.0");
    c.send(b"REGISTER t1 c1\r\nREGISTER t2\n");
    assert_eq!((c.response(), c.response()), ("OK".into(), "OK".into()));

    let me = c.0.local_addr().unwrap().to_string();
    let r = http_request(l.http, "GET", "/lookup?topic=t1", b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-nsq-content-type"), Some("nsq; version=1.0"));
    assert_eq!(
        r.text(),
        format!(
            r#"{{"channels":["c1"],"producers":[{{"remote_address":"{me}","hostname":"h1","broadcast_address":"n1","tcp_port":4150,"http_port":4151,"version":"1.3.0"}}]}}"#
        )
    );
    assert_eq!(
        http_request(l.http, "GET", "/topics", b"").text(),
        r#"{"topics":["t1","t2"]}"#
    );
    assert_eq!(
        http_request(l.http, "GET", "/channels?topic=t1", b"").text(),
        r#"{"channels":["c1"]}"#
    );
    let nodes = http_request(l.http, "GET", "/nodes", b"").json();
    assert_eq!(
        nodes["producers"][0]["topics"],
        serde_json::json!(["t1", "t2"])
    );
    assert_eq!(
        nodes["producers"][0]["tombstones"],
        serde_json::json!([false, false])
    );
    assert_eq!(
        http_request(l.http, "GET", "/info", b"").text(),
        r#"{"version":"1.3.0"}"#
    );
    assert_eq!(http_request(l.http, "GET", "/ping", b"").text(), "OK");

    // UNREGISTER of an ephemeral channel removes its registration when
    // its last producer leaves; a durable one keeps it.
    c.send(b"REGISTER t1 tmp#ephemeral\nUNREGISTER t1 tmp#ephemeral\nUNREGISTER t1 c1\n");
    for _ in 0..3 {
        assert_eq!(c.response(), "OK");
    }
    assert_eq!(
        http_request(l.http, "GET", "/channels?topic=t1", b"").text(),
        r#"{"channels":["c1"]}"#
    );

    // Disconnect: the producer goes, the registrations stay.
    drop(c);
    support::wait_until("producer gone", || {
        http_request(l.http, "GET", "/lookup?topic=t1", b"").json()["producers"]
            == serde_json::json!([])
    });
    assert_eq!(
        http_request(l.http, "GET", "/topics", b"").text(),
        r#"{"topics":["t1","t2"]}"#
    );
}

#[test]
fn every_v1_error_is_fatal_and_exact() {
    let l = Lookupd::start(&[]);
    // (magic, commands, the one response before the connection closes)
    type Case<'a> = (&'a [u8], Vec<&'a [u8]>, &'a str);
    let cases: Vec<Case> = vec![
        (b"  V2", vec![], "E_BAD_PROTOCOL"),
        (b"  V1", vec![b"FOO\n"], "E_INVALID invalid command FOO"),
        (b"  V1", vec![b"\n"], "E_INVALID invalid command "),
        (
            b"  V1",
            vec![b"REGISTER t\n"],
            "E_INVALID client must IDENTIFY",
        ),
        (
            b"  V1",
            vec![b"UNREGISTER t\n"],
            "E_INVALID client must IDENTIFY",
        ),
        (
            b"  V1",
            vec![b"IDENTIFY\n\x00\x00\x00\x03{x}"],
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
        (
            b"  V1",
            vec![b"IDENTIFY\n\x00\x00\x00\x02{}"],
            "E_BAD_BODY IDENTIFY missing fields",
        ),
        (
            b"  V1",
            vec![b"IDENTIFY\n\xff\xff\xff\xff"],
            "E_BAD_BODY IDENTIFY failed to read body",
        ),
    ];
    for (magic, commands, expected) in cases {
        let mut c = V1::connect(&l, magic);
        for cmd in commands {
            c.send(cmd);
        }
        assert_eq!(c.response(), expected);
        c.expect_closed();
    }
    let identified = |then: &[u8], expected: &str| {
        let mut c = V1::connect(&l, b"  V1");
        assert!(c.identify(NSQD).starts_with('{'));
        c.send(then);
        assert_eq!(c.response(), expected);
        c.expect_closed();
    };
    identified(
        b"REGISTER\n",
        "E_INVALID REGISTER insufficient number of params",
    );
    identified(
        b"REGISTER bad!topic\n",
        "E_BAD_TOPIC REGISTER topic name 'bad!topic' is not valid",
    );
    identified(
        b"UNREGISTER t bad!chan\n",
        "E_BAD_CHANNEL UNREGISTER channel name 'bad!chan' is not valid",
    );
    let mut again = b"IDENTIFY\n".to_vec();
    again.extend_from_slice(&(NSQD.len() as u32).to_be_bytes());
    again.extend_from_slice(NSQD.as_bytes());
    identified(&again, "E_INVALID cannot IDENTIFY again");

    // A truncated IDENTIFY body, then the client goes away: no answer owed,
    // no harm done.
    let mut c = V1::connect(&l, b"  V1");
    c.send(b"IDENTIFY\n\x00\x00\x01\x00{\"bro");
    c.0.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(c.response(), "E_BAD_BODY IDENTIFY failed to read body");

    // Garbage of every sort, then the daemon still works.
    let mut seed = 0x9e3779b97f4a7c15u64;
    for _ in 0..100 {
        let mut junk = vec![0u8; 64];
        for b in junk.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        let mut s = TcpStream::connect(l.tcp).unwrap();
        let _ = s.write_all(b"  V1");
        let _ = s.write_all(&junk);
    }
    assert_eq!(http_request(l.http, "GET", "/ping", b"").text(), "OK");
    let mut c = V1::connect(&l, b"  V1");
    assert!(c.identify(NSQD).starts_with('{'));
    c.send(b"REGISTER still ok\n");
    assert_eq!(c.response(), "OK");
}

#[test]
fn http_errors_as_nsq() {
    let l = Lookupd::start(&[]);
    let cases = [
        ("GET", "/lookup", 400, "MISSING_ARG_TOPIC"),
        ("GET", "/lookup?topic=nope", 404, "TOPIC_NOT_FOUND"),
        ("GET", "/lookup?topic=%zz", 400, "INVALID_REQUEST"),
        ("GET", "/channels", 400, "MISSING_ARG_TOPIC"),
        ("POST", "/topic/create", 400, "MISSING_ARG_TOPIC"),
        ("POST", "/topic/create?topic=bad!", 400, "INVALID_ARG_TOPIC"),
        (
            "POST",
            "/channel/create?topic=t",
            400,
            "MISSING_ARG_CHANNEL",
        ),
        (
            "POST",
            "/channel/create?topic=t&channel=bad!",
            400,
            "INVALID_ARG_CHANNEL",
        ),
        (
            "POST",
            "/channel/delete?topic=t&channel=none",
            404,
            "CHANNEL_NOT_FOUND",
        ),
        ("POST", "/topic/tombstone?topic=t", 400, "MISSING_ARG_NODE"),
        ("GET", "/topic/create?topic=t", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/no/such/path", 404, "NOT_FOUND"),
    ];
    for (method, path, status, message) in cases {
        let r = http_request(l.http, method, path, b"");
        assert_eq!(
            (r.status, r.text()),
            (status, format!(r#"{{"message":"{message}"}}"#)),
            "{method} {path}"
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
    }
    // Deleting an unknown topic is fine; create then delete leaves nothing.
    assert_eq!(
        http_request(l.http, "POST", "/topic/delete?topic=never", b"").status,
        200
    );
    assert_eq!(
        http_request(l.http, "POST", "/channel/create?topic=t&channel=c", b"").status,
        200
    );
    assert_eq!(
        http_request(l.http, "GET", "/lookup?topic=t", b"").text(),
        r#"{"channels":["c"],"producers":[]}"#
    );
    assert_eq!(
        http_request(l.http, "POST", "/topic/delete?topic=t", b"").status,
        200
    );
    assert_eq!(
        http_request(l.http, "GET", "/topics", b"").text(),
        r#"{"topics":[]}"#
    );
    assert_eq!(
        http_request(l.http, "GET", "/channels?topic=t", b"").text(),
        r#"{"channels":[]}"#
    );
}

#[test]
fn command_line() {
    let bin = env!("CARGO_BIN_EXE_nsqlookupd");
    let (code, out, _) = run_binary(bin, &["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("nsqlookupd v1.3.0"), "{out}");
    let (code, _, err) = run_binary(bin, &["--no-such-flag"]);
    assert_eq!(code, 2, "{err}");
    // A busy port: one clear line, non-zero, promptly.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = format!("-tcp-address={}", busy.local_addr().unwrap());
    let (code, _, err) = run_binary(bin, &[&taken, "-http-address=127.0.0.1:0"]);
    assert_eq!(code, 1);
    assert!(err.contains("failed to listen on"), "{err}");
    // SIGTERM: exit 0.
    let mut l = Lookupd::start(&[]);
    support::signal(l.daemon.child.id(), "TERM");
    let deadline = std::time::Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = l.daemon.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success());
}
