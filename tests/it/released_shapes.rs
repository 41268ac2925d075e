//! Our daemons answer in the shapes a released NSQ v1.3.0 does: the same
//! keys in the same order, the same nulls and empty lists, the same text
//! layout. `tests/fixtures/nsq-v1.3.0/` holds what a real v1.3.0 nsqd and
//! nsqlookupd sent in a known state (its README says which); these tests
//! build that state on our daemons and compare everything but the values
//! that differ by nature (ports, host names, times, memory figures).

use crate::support::{http_request, wait_until, Lookupd, Nsqd};
use nsq::protocol::Frame;
use std::io::{Read, Write};
use std::net::TcpStream;

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/nsq-v1.3.0/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A JSON text reduced to its shape: keys, order, nesting, nulls and the
/// kind of every other value (`s`, `n`, `b`), so values that vary by nature
/// drop out and everything a decoder depends on stays.
fn shape(json: &str) -> String {
    let mut out = String::new();
    let mut chars = json.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut s = String::from('"');
                while let Some(c) = chars.next() {
                    s.push(c);
                    match c {
                        '\\' => s.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                out.push_str(if chars.peek() == Some(&':') { &s } else { "s" });
            }
            '-' | '0'..='9' => {
                while chars
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || ".eE+-".contains(*c))
                {
                    chars.next();
                }
                out.push('n');
            }
            't' | 'f' => {
                while chars.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                    chars.next();
                }
                out.push('b');
            }
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

fn same_shape(what: &str, ours: &str, theirs: &str) {
    assert_eq!(
        shape(ours),
        shape(theirs),
        "{what} differs from v1.3.0's\n ours:   {ours}\n theirs: {theirs}"
    );
}

/// The fixtures' state: topic `orders` with channels `billing` and `email`
/// and 3 messages, topic `audit` with 1 message and no channel, and one
/// client on `orders/billing` holding one message in flight.
struct Cluster {
    lookupd: Lookupd,
    nsqd: Nsqd,
    identify_response: String,
    _client: crate::support::Conn,
}

fn cluster(nsqd_args: &[&str]) -> Cluster {
    let lookupd = Lookupd::start(&[]);
    let lookupd_arg = format!("--lookupd-tcp-address={}", lookupd.tcp);
    let mut args = vec!["--broadcast-address=127.0.0.1", lookupd_arg.as_str()];
    args.extend_from_slice(nsqd_args);
    let nsqd = Nsqd::start(&args);
    for path in [
        "/topic/create?topic=orders",
        "/channel/create?topic=orders&channel=billing",
        "/channel/create?topic=orders&channel=email",
    ] {
        assert_eq!(nsqd.http("POST", path, b"").status, 200);
    }
    assert_eq!(
        nsqd.http("POST", "/mpub?topic=orders", b"a\nbb\nccc")
            .status,
        200
    );
    assert_eq!(nsqd.http("POST", "/pub?topic=audit", b"x").status, 200);
    let mut client = nsqd.connect();
    let Frame::Response(body) = client.identify(serde_json::json!({
        "client_id": "capture",
        "hostname": "capture-host",
        "user_agent": "capture/1.0",
        "feature_negotiation": true,
    })) else {
        panic!("IDENTIFY was not answered with a response frame")
    };
    client.subscribe("orders", "billing");
    client.rdy(1);
    client.expect_message();
    wait_until("lookupd knows both topics and channels", || {
        lookupd.get("/channels?topic=orders")["channels"]
            .as_array()
            .is_some_and(|c| c.len() == 2)
            && lookupd.get("/topics")["topics"]
                .as_array()
                .is_some_and(|t| t.len() == 2)
    });
    Cluster {
        lookupd,
        nsqd,
        identify_response: String::from_utf8(body.to_vec()).unwrap(),
        _client: client,
    }
}

fn get_text(addr: std::net::SocketAddr, path: &str) -> String {
    let r = http_request(addr, "GET", path, b"");
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.text()
}

#[test]
fn nsqd_answers_in_released_shapes() {
    let c = cluster(&[]);
    same_shape(
        "IDENTIFY response",
        &c.identify_response,
        &fixture("nsqd-identify-response.json"),
    );
    same_shape(
        "/info",
        &get_text(c.nsqd.http, "/info"),
        &fixture("nsqd-info.json"),
    );
    same_shape(
        "/stats?format=json",
        &get_text(c.nsqd.http, "/stats?format=json"),
        &fixture("nsqd-stats.json"),
    );
}

#[test]
fn nsqlookupd_answers_in_released_shapes() {
    let c = cluster(&[]);
    for (path, name) in [
        ("/nodes", "lookupd-nodes.json"),
        ("/lookup?topic=orders", "lookupd-lookup.json"),
        ("/topics", "lookupd-topics.json"),
        ("/channels?topic=orders", "lookupd-channels.json"),
        ("/info", "lookupd-info.json"),
    ] {
        same_shape(path, &get_text(c.lookupd.http, path), &fixture(name));
    }
    // The V1 answer to an nsqd's IDENTIFY.
    let mut s = TcpStream::connect(c.lookupd.tcp).unwrap();
    let body = br#"{"broadcast_address":"127.0.0.1","hostname":"h","http_port":1,"tcp_port":2,"version":"1.3.0"}"#;
    s.write_all(b"  V1IDENTIFY\n").unwrap();
    s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let mut answer = vec![0u8; u32::from_be_bytes(size) as usize];
    s.read_exact(&mut answer).unwrap();
    same_shape(
        "lookupd IDENTIFY response",
        std::str::from_utf8(&answer).unwrap(),
        &fixture("lookupd-identify-response.json"),
    );
}

/// Set topology flags (NSQ master's experiment): the keys appear.
#[test]
fn topology_keys_only_when_set() {
    let c = cluster(&["--topology-region=eu", "--topology-zone=eu-1"]);
    assert!(c
        .identify_response
        .ends_with(r#""topology_region":"eu","topology_zone":"eu-1"}"#));
    let info: serde_json::Value = serde_json::from_str(&get_text(c.nsqd.http, "/info")).unwrap();
    assert_eq!(info["topology_zone"], "eu-1");
    let nodes: serde_json::Value =
        serde_json::from_str(&get_text(c.lookupd.http, "/nodes")).unwrap();
    assert_eq!(nodes["producers"][0]["topology_region"], "eu");
}

/// `/stats` as text: line for line as v1.3.0 prints it, once the values
/// that differ by nature are masked.
#[test]
fn stats_text_in_released_layout() {
    let c = cluster(&[]);
    let ours = get_text(c.nsqd.http, "/stats");
    let mask = |text: &str| -> Vec<String> {
        text.lines()
            .map(|line| {
                let t = line.trim_start();
                if line.starts_with("nsqd v")
                    || t.starts_with("start_time")
                    || t.starts_with("uptime")
                {
                    return t.split(' ').next().unwrap().to_string();
                }
                if line.starts_with("   ") && !t.starts_with('[') {
                    // A Memory line: name and tab kept, figure masked.
                    return line.split('\t').next().unwrap().to_string() + "\t#";
                }
                if t.starts_with("[V2 ") {
                    // Remote port and connected time vary.
                    let host_end = t.find(':').unwrap();
                    let agent = t
                        .find(' ')
                        .map(|_| t[host_end..].find(' ').unwrap() + host_end);
                    let rest = &t[agent.unwrap()..];
                    let rest = rest.split("connected:").next().unwrap();
                    return format!(
                        "{}{}:#{rest}connected:#",
                        &line[..line.len() - t.len()],
                        &t[..host_end]
                    );
                }
                line.to_string()
            })
            .collect()
    };
    assert_eq!(
        mask(&ours),
        mask(&fixture("nsqd-stats.txt")),
        "ours:\n{ours}"
    );
}

/// A stand-in for a released v1.3.0 nsqd, as far as a publisher sees it:
/// answers IDENTIFY with the captured bytes and every publish with `OK`,
/// and reports the bodies it was given.
fn fake_released_nsqd() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let identify = fixture("nsqd-identify-response.json");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut r = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut w = stream;
        let frame = |w: &mut TcpStream, kind: u32, data: &[u8]| {
            let mut out = ((data.len() + 4) as u32).to_be_bytes().to_vec();
            out.extend_from_slice(&kind.to_be_bytes());
            out.extend_from_slice(data);
            let _ = w.write_all(&out);
        };
        let mut magic = [0u8; 4];
        if r.read_exact(&mut magic).is_err() {
            return;
        }
        loop {
            let mut line = String::new();
            if std::io::BufRead::read_line(&mut r, &mut line).unwrap_or(0) == 0 {
                return;
            }
            let verb = line.split_whitespace().next().unwrap_or("").to_string();
            let body = if matches!(verb.as_str(), "IDENTIFY" | "PUB" | "MPUB" | "DPUB" | "AUTH") {
                let mut size = [0u8; 4];
                r.read_exact(&mut size).unwrap();
                let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
                r.read_exact(&mut body).unwrap();
                body
            } else {
                Vec::new()
            };
            match verb.as_str() {
                "IDENTIFY" => frame(&mut w, 0, identify.trim_end().as_bytes()),
                "PUB" => {
                    let _ = tx.send(body);
                    frame(&mut w, 0, b"OK");
                }
                "MPUB" => {
                    let n = u32::from_be_bytes(body[..4].try_into().unwrap());
                    let mut at = 4;
                    for _ in 0..n {
                        let len = u32::from_be_bytes(body[at..at + 4].try_into().unwrap()) as usize;
                        let _ = tx.send(body[at + 4..at + 4 + len].to_vec());
                        at += 4 + len;
                    }
                    frame(&mut w, 0, b"OK");
                }
                "CLS" => frame(&mut w, 0, b"CLOSE_WAIT"),
                "NOP" => {}
                _ => frame(&mut w, 1, b"E_INVALID"),
            }
        }
    });
    (addr, rx)
}

/// Our tools talk to an nsqd that answers IDENTIFY as v1.3.0 does (13
/// keys, no topology): they once refused it for a missing key.
#[test]
fn nsq_pub_works_against_a_released_nsqd() {
    let (addr, bodies) = fake_released_nsqd();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nsq-pub"))
        .args(["--topic=t", &format!("--nsqd-tcp-address={addr}")])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nsq-pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<Vec<u8>> = bodies.try_iter().collect();
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
}
