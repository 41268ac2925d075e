//! nsqadmin end to end, without a browser: the real binary on port 0 in
//! front of real nsqlookupd and nsqd, its JSON API checked for NSQ's routes,
//! status codes and shapes, and against what each nsqd's `/stats` says.

use crate::support::{run_binary, wait_until, HttpResponse, Lookupd, Nsqd, DEADLINE};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_nsqadmin");

/// A running nsqadmin, killed on drop.
pub struct Admin {
    child: Child,
    pub http: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Admin {
    pub fn start(args: &[String]) -> Admin {
        let mut all = vec!["--http-address=127.0.0.1:0".to_string()];
        all.extend_from_slice(args);
        let (child, addrs, log) =
            crate::support::spawn_reporting(BIN, &all, &["HTTP: listening on "]);
        let http = addrs[0].parse().expect("http addr");
        Admin { child, http, log }
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        request(self.http, "GET", path, &[], b"")
    }

    /// GET, expecting 200 and JSON.
    pub fn json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    pub fn send(&self, method: &str, path: &str, body: &str) -> HttpResponse {
        request(self.http, method, path, &[], body.as_bytes())
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM; the exit status and how long it took.
    pub fn stop(&mut self) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        crate::support::signal(self.child.id(), "TERM");
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < DEADLINE,
                "nsqadmin did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with extra headers, read to the end.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// An nsqlookupd and two nsqd registered with it (broadcasting 127.0.0.1).
pub struct Cluster {
    pub lookupd: Lookupd,
    pub nsqd: Vec<Nsqd>,
}

impl Cluster {
    pub fn start() -> Cluster {
        let lookupd = Lookupd::start(&[]);
        let flag = format!("--lookupd-tcp-address={}", lookupd.tcp);
        let nsqd: Vec<Nsqd> = (0..2)
            .map(|_| Nsqd::start(&[&flag, "--broadcast-address=127.0.0.1"]))
            .collect();
        wait_until("both nsqd registered", || {
            lookupd.get("/nodes")["producers"]
                .as_array()
                .is_some_and(|p| p.len() == 2)
        });
        Cluster { lookupd, nsqd }
    }

    /// `127.0.0.1:<http port>` of nsqd `i`: its name in nsqadmin.
    pub fn node(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nsqd[i].http.port())
    }

    pub fn publish(&self, i: usize, topic: &str, n: usize) {
        let body: Vec<u8> = (0..n)
            .flat_map(|k| format!("m{k}\n").into_bytes())
            .collect();
        let r = self.nsqd[i].http("POST", &format!("/mpub?topic={topic}"), &body);
        assert_eq!(r.status, 200, "{}", r.text());
    }

    pub fn create_channel(&self, i: usize, topic: &str, channel: &str) {
        let r = self.nsqd[i].http(
            "POST",
            &format!("/channel/create?topic={topic}&channel={channel}"),
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// Wait until the lookupd lists `topic` with `channel` on `nodes` nsqd.
    pub fn wait_registered(&self, topic: &str, channel: &str, nodes: usize) {
        wait_until(&format!("{topic}/{channel} registered"), || {
            let v = self.lookupd.get(&format!("/lookup?topic={topic}"));
            v["producers"].as_array().is_some_and(|p| p.len() == nodes)
                && (channel.is_empty()
                    || v["channels"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c == channel)))
        });
    }

    pub fn admin_args(&self) -> Vec<String> {
        vec![format!("--lookupd-http-address={}", self.lookupd.http)]
    }
}

fn channel_on(nsqd: &Nsqd, topic: &str, channel: &str) -> Value {
    nsqd.channel_stats(topic, channel)
        .unwrap_or_else(|| panic!("{topic}/{channel} missing on nsqd"))
}

#[test]
fn admin_cli_help_version_and_usage_errors() {
    let (code, out, _) = run_binary(BIN, &["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--lookupd-http-address",
        "--nsqd-http-address",
        "--http-address",
        "--base-path",
        "--admin-user",
        "--acl-http-header",
        "--notification-http-endpoint",
        "--allow-config-from-cidr",
        "--http-client-tls-root-ca-file",
        "--graphite-url",
        "--sample-interval",
    ] {
        assert!(out.contains(flag), "--help lacks {flag}");
    }
    let (code, out, _) = run_binary(BIN, &["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("nsqadmin v1.3.0"), "{out}");

    let (code, _, err) = run_binary(BIN, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--nsqd-http-address or --lookupd-http-address required"),
        "{err}"
    );
    let (code, _, err) = run_binary(
        BIN,
        &[
            "--nsqd-http-address=127.0.0.1:1",
            "--lookupd-http-address=127.0.0.1:2",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("not both"), "{err}");
    let (code, _, _) = run_binary(BIN, &["--nsqd-http-address=127.0.0.1:1", "--bogus"]);
    assert_eq!(code, 2);

    // A listener that cannot be had is a failure (1), said in one line.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (code, _, err) = run_binary(
        BIN,
        &[
            "--nsqd-http-address=127.0.0.1:1",
            &format!("--http-address={addr}"),
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("listen"), "{err}");
}

#[test]
fn admin_api_reads_the_cluster_as_nsq_does() {
    let c = Cluster::start();
    c.publish(0, "orders", 5);
    c.publish(1, "orders", 7);
    c.create_channel(0, "orders", "billing");
    c.create_channel(1, "orders", "billing");
    c.create_channel(0, "orders", "email");
    c.publish(0, "orders", 3);
    c.publish(1, "audit", 1);
    let mut consumer = crate::support::consumer(&c.nsqd[0], "orders", "billing", 1);
    let _in_flight = consumer.expect_message();
    c.wait_registered("orders", "email", 2);
    c.wait_registered("audit", "", 1);
    let admin = Admin::start(&c.admin_args());

    // /ping: plain text, as NSQ.
    let r = admin.get("/ping");
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert_eq!(r.header("x-nsq-content-type"), None);

    // The topic list, with NSQ's envelope.
    let r = admin.get("/api/topics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("x-nsq-content-type"), Some("nsq; version=1.0"));
    assert_eq!(
        r.json(),
        json!({"topics": ["audit", "orders"], "message": ""})
    );

    // One topic: totals over both nsqd, per-node figures, channels summed.
    let t = admin.json("/api/topics/orders");
    let stats: Vec<Value> = c
        .nsqd
        .iter()
        .map(|n| n.topic_stats("orders").unwrap())
        .collect();
    let sum = |k: &str| stats.iter().map(|s| s[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!(t["topic_name"], "orders");
    assert_eq!(t["node"], "*");
    assert_eq!(t["message_count"], sum("message_count"));
    assert_eq!(t["message_count"], 15);
    assert_eq!(t["depth"], sum("depth"));
    assert_eq!(t["message"], "");
    assert_eq!(t["paused"], false);
    let nodes = t["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    let mut names: Vec<&str> = nodes.iter().map(|n| n["node"].as_str().unwrap()).collect();
    names.sort();
    let mut want = vec![c.node(0), c.node(1)];
    want.sort();
    assert_eq!(names, want);
    for n in nodes {
        assert_eq!(
            n["memory_depth"].as_i64().unwrap() + n["backend_depth"].as_i64().unwrap(),
            n["depth"].as_i64().unwrap()
        );
    }
    let channels = t["channels"].as_array().unwrap();
    let billing = channels
        .iter()
        .find(|c| c["channel_name"] == "billing")
        .unwrap();
    let on0 = channel_on(&c.nsqd[0], "orders", "billing");
    let on1 = channel_on(&c.nsqd[1], "orders", "billing");
    assert_eq!(
        billing["depth"].as_i64().unwrap(),
        on0["depth"].as_i64().unwrap() + on1["depth"].as_i64().unwrap()
    );
    assert_eq!(billing["in_flight_count"], 1);
    assert_eq!(billing["nodes"].as_array().unwrap().len(), 2);
    let email = channels
        .iter()
        .find(|c| c["channel_name"] == "email")
        .unwrap();
    // nsqd 1 may also have it: its topic takes the channels lookupd knows
    // when it is created, and that query races the channel's creation.
    let with_email = c
        .nsqd
        .iter()
        .filter(|n| n.channel_stats("orders", "email").is_some())
        .count();
    assert_eq!(email["nodes"].as_array().unwrap().len(), with_email);
    let keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "node",
        "hostname",
        "topic_name",
        "depth",
        "memory_depth",
        "backend_depth",
        "message_count",
        "nodes",
        "channels",
        "paused",
        "e2e_processing_latency",
        "message",
    ] {
        assert!(keys.contains(&k), "topic lacks {k}: {keys:?}");
    }

    // One channel, with its clients and where they are connected.
    let ch = admin.json("/api/topics/orders/billing");
    assert_eq!(ch["topic_name"], "orders");
    assert_eq!(ch["channel_name"], "billing");
    assert_eq!(ch["client_count"], 1);
    let clients = ch["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1);
    let client = &clients[0];
    let nsqd_client = &on0["clients"][0];
    assert_eq!(client["node"], c.node(0).as_str());
    for k in [
        "remote_address",
        "client_id",
        "hostname",
        "user_agent",
        "in_flight_count",
        "ready_count",
        "finish_count",
        "message_count",
        "tls",
        "snappy",
        "deflate",
    ] {
        assert_eq!(client[k], nsqd_client[k], "client {k}");
    }
    assert!(client["connected"].as_i64().unwrap() >= 0);
    // A channel no nsqd has: 200 with only the message, as NSQ.
    assert_eq!(
        admin.json("/api/topics/orders/nothing"),
        json!({"message": ""})
    );
    // A topic no lookupd knows: every lookupd "failed", so 502.
    let r = admin.get("/api/topics/nosuch");
    assert_eq!(r.status, 502);
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with("UPSTREAM_ERROR: failed to query any nsqlookupd: ")
            && msg.contains("TOPIC_NOT_FOUND"),
        "{msg}"
    );

    // Nodes, and one node.
    let n = admin.json("/api/nodes");
    assert_eq!(n["message"], "");
    let list = n["nodes"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    for node in list {
        assert_eq!(node["broadcast_address"], "127.0.0.1");
        assert_eq!(node["version"], "1.3.0");
        assert_eq!(node["out_of_date"], false);
        let via = node["remote_addresses"][0].as_str().unwrap();
        assert!(via.starts_with(&format!("{}/", c.lookupd.http)), "{via}");
    }
    let one = admin.json(&format!("/api/nodes/{}", c.node(0)));
    assert_eq!(one["node"], c.node(0).as_str());
    assert_eq!(one["total_clients"], 1);
    assert_eq!(
        one["total_messages"].as_i64().unwrap(),
        c.nsqd[0].topic_stats("orders").unwrap()["message_count"]
            .as_i64()
            .unwrap()
    );
    assert_eq!(one["topics"][0]["topic_name"], "orders");
    let r = admin.get("/api/nodes/127.0.0.1:1");
    assert_eq!(
        (r.status, r.json()),
        (404, json!({"message": "NODE_NOT_FOUND"}))
    );

    // The counter: messages per topic:channel:node.
    let counter = admin.json("/api/counter");
    let key = format!("orders:billing:{}", c.node(1));
    assert_eq!(
        counter["stats"][&key],
        json!({"node": c.node(1), "topic_name": "orders", "channel_name": "billing",
               "message_count": on1["message_count"]})
    );

    // Routing as NSQ's router does it.
    let r = admin.get("/api/nope");
    assert_eq!((r.status, r.json()), (404, json!({"message": "NOT_FOUND"})));
    let r = admin.send("PUT", "/api/topics", "");
    assert_eq!(
        (r.status, r.json()),
        (405, json!({"message": "METHOD_NOT_ALLOWED"}))
    );
    let r = admin.get("/api/topics/");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/api/topics"));
    // The pages are the web UI.
    for page in [
        "/",
        "/topics/orders",
        "/topics/orders/billing",
        "/nodes",
        "/counter",
        "/lookup",
    ] {
        let r = admin.get(page);
        assert_eq!(r.status, 200, "{page}");
        assert!(r.text().contains("static/app.js"), "{page}");
    }
    let js = admin.get("/static/app.js");
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert_eq!(admin.get("/static/nope.js").status, 404);
    drop(consumer);
}

#[test]
fn admin_actions_change_the_cluster() {
    let c = Cluster::start();
    for i in 0..2 {
        c.publish(i, "orders", 4);
        c.create_channel(i, "orders", "billing");
        c.create_channel(i, "orders", "email");
        c.publish(i, "orders", 2);
        c.publish(i, "audit", 1);
    }
    c.wait_registered("orders", "email", 2);
    c.wait_registered("audit", "", 2);
    let admin = Admin::start(&c.admin_args());
    let ok = json!({"message": ""});

    // Pause and unpause a channel: every nsqd reports it.
    let r = admin.send(
        "POST",
        "/api/topics/orders/billing",
        r#"{"action":"pause"}"#,
    );
    assert_eq!((r.status, r.json()), (200, ok.clone()));
    for n in &c.nsqd {
        assert_eq!(channel_on(n, "orders", "billing")["paused"], true);
        assert_eq!(channel_on(n, "orders", "email")["paused"], false);
    }
    assert_eq!(admin.json("/api/topics/orders/billing")["paused"], true);
    let r = admin.send(
        "POST",
        "/api/topics/orders/billing",
        r#"{"action":"unpause"}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(channel_on(&c.nsqd[1], "orders", "billing")["paused"], false);

    // A topic too.
    let r = admin.send("POST", "/api/topics/orders", r#"{"action":"pause"}"#);
    assert_eq!(r.status, 200);
    for n in &c.nsqd {
        assert_eq!(n.topic_stats("orders").unwrap()["paused"], true);
    }
    admin.send("POST", "/api/topics/orders", r#"{"action":"unpause"}"#);
    assert_eq!(c.nsqd[0].topic_stats("orders").unwrap()["paused"], false);

    // Empty a channel and a topic.
    let billing_before: Vec<Value> = c
        .nsqd
        .iter()
        .map(|n| channel_on(n, "orders", "billing")["depth"].clone())
        .collect();
    assert!(
        channel_on(&c.nsqd[0], "orders", "email")["depth"]
            .as_i64()
            .unwrap()
            > 0
    );
    let r = admin.send("POST", "/api/topics/orders/email", r#"{"action":"empty"}"#);
    assert_eq!(r.status, 200);
    for (i, n) in c.nsqd.iter().enumerate() {
        assert_eq!(channel_on(n, "orders", "email")["depth"], 0);
        assert_eq!(
            channel_on(n, "orders", "billing")["depth"],
            billing_before[i]
        );
    }
    assert_eq!(c.nsqd[0].topic_stats("audit").unwrap()["depth"], 1);
    admin.send("POST", "/api/topics/audit", r#"{"action":"empty"}"#);
    assert_eq!(c.nsqd[1].topic_stats("audit").unwrap()["depth"], 0);

    // Bad bodies: NSQ's status codes and Go's words.
    for (body, want) in [
        ("", "EOF"),
        ("{", "unexpected EOF"),
        (
            "xyz",
            "invalid character 'x' looking for beginning of value",
        ),
        (r#"{"action":"explode"}"#, "INVALID_ACTION"),
        ("{}", "INVALID_ACTION"),
    ] {
        let r = admin.send("POST", "/api/topics/orders/billing", body);
        assert_eq!(
            (r.status, r.json()),
            (400, json!({ "message": want })),
            "{body:?}"
        );
    }

    // Create a topic and a channel: on the lookupd, and the channel on every
    // nsqd that has the topic.
    let r = admin.send(
        "POST",
        "/api/topics",
        r#"{"topic":"orders","channel":"audit_log"}"#,
    );
    assert_eq!((r.status, r.json()), (200, ok.clone()));
    for n in &c.nsqd {
        channel_on(n, "orders", "audit_log");
    }
    let r = admin.send(
        "POST",
        "/api/topics",
        r#"{"topic":"planned","channel":"later"}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        c.lookupd.get("/channels?topic=planned")["channels"],
        json!(["later"])
    );
    for (body, want) in [
        (r#"{"topic":"bad topic"}"#, "INVALID_TOPIC"),
        (r#"{"topic":"t","channel":"bad!"}"#, "INVALID_CHANNEL"),
        (r#"{"channel":"c"}"#, "INVALID_TOPIC"),
    ] {
        let r = admin.send("POST", "/api/topics", body);
        assert_eq!(
            (r.status, r.json()),
            (400, json!({ "message": want })),
            "{body}"
        );
    }
    // Topics only the lookupds know are "inactive".
    let inactive = admin.json("/api/topics?inactive=true");
    assert_eq!(
        inactive,
        json!({"topics": {"planned": ["later"]}, "message": ""})
    );

    // Delete a channel, then a topic, everywhere.
    let r = admin.send("DELETE", "/api/topics/orders/email", "");
    assert_eq!((r.status, r.json()), (200, ok.clone()));
    for n in &c.nsqd {
        assert!(n.channel_stats("orders", "email").is_none());
    }
    let r = admin.send("DELETE", "/api/topics/audit", "");
    assert_eq!(r.status, 200);
    for n in &c.nsqd {
        assert!(n.topic_stats("audit").is_none());
    }
    wait_until("audit gone from the lookupd", || {
        !c.lookupd.get("/topics")["topics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "audit")
    });

    // Tombstone a topic on one node: hidden from lookups, deleted there.
    let node = c.node(1);
    let r = admin.send("DELETE", &format!("/api/nodes/{node}"), "nope");
    assert_eq!(
        (r.status, r.json()),
        (400, json!({"message": "INVALID_BODY"}))
    );
    let r = admin.send(
        "DELETE",
        &format!("/api/nodes/{node}"),
        r#"{"topic":"a b"}"#,
    );
    assert_eq!(
        (r.status, r.json()),
        (400, json!({"message": "INVALID_TOPIC"}))
    );
    let r = admin.send(
        "DELETE",
        &format!("/api/nodes/{node}"),
        r#"{"topic":"orders"}"#,
    );
    assert_eq!((r.status, r.json()), (200, ok));
    assert!(c.nsqd[1].topic_stats("orders").is_none());
    assert!(c.nsqd[0].topic_stats("orders").is_some());
    assert_eq!(c.lookupd.producers("orders").len(), 1);
}

#[test]
fn admin_partial_results_and_nodes_that_do_not_answer() {
    let a = Nsqd::start(&["--broadcast-address=127.0.0.1"]);
    let mut b = Nsqd::start(&["--broadcast-address=127.0.0.1"]);
    a.http("POST", "/pub?topic=left", b"x");
    b.http("POST", "/pub?topic=right", b"y");
    let (_held, dead) = crate::support::refused_addr();
    let admin = Admin::start(&[
        format!("--nsqd-http-address={}", a.http),
        format!("--nsqd-http-address={}", b.http),
        "--sample-interval=200ms".into(),
        "--http-client-connect-timeout=1s".into(),
        "--http-client-request-timeout=2s".into(),
    ]);
    let v = admin.json("/api/topics");
    assert_eq!(v, json!({"topics": ["left", "right"], "message": ""}));
    assert_eq!(
        admin.json("/api/nodes")["nodes"].as_array().unwrap().len(),
        2
    );
    let t = admin.json("/api/topics/right");
    assert_eq!(t["message_count"], 1);
    assert_eq!(t["nodes"].as_array().unwrap().len(), 1);

    // Runtime configuration as NSQ's: the nsqd list cannot change, the
    // lookupd list and the log level can.
    let want = json!([a.http.to_string(), b.http.to_string()]);
    assert_eq!(admin.json("/config/nsqd_http_addresses"), want);
    let r = admin.send("PUT", "/config/log_level", "debug");
    assert_eq!((r.status, r.text().as_str()), (200, "1"));
    assert_eq!(admin.json("/config/log_level"), json!(1));
    assert_eq!(admin.send("PUT", "/config/log_level", "loud").status, 400);
    assert_eq!(admin.send("PUT", "/config/log_level", "").status, 413);
    let r = admin.send("PUT", "/config/nsqd_http_addresses", "[]");
    assert_eq!(
        (r.status, r.json()),
        (400, json!({"message": "INVALID_OPTION"}))
    );
    let r = admin.get("/config/nope");
    assert_eq!(
        (r.status, r.json()),
        (400, json!({"message": "INVALID_OPTION"}))
    );
    let r = admin.get("/config/acl_http_header");
    assert_eq!((r.status, r.text().as_str()), (200, "X-Forwarded-User"));
    assert_eq!(
        admin.json("/config/http_client_request_timeout"),
        json!(2_000_000_000u64)
    );

    // The live summary: both nodes answer, the topics have figures.
    wait_until("a summary of both nodes", || {
        let s = admin.json("/api/summary");
        s["nodes"]
            .as_array()
            .is_some_and(|n| n.len() == 2 && n.iter().all(|n| n["state"] == "ok"))
            && s["topics"].as_array().is_some_and(|t| t.len() == 2)
    });

    // One nsqd goes away: partial results with NSQ's warning...
    b.stop();
    let v = admin.json("/api/topics");
    assert_eq!(v["topics"], json!(["left"]));
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.starts_with("WARNING: ") && msg.contains(&b.http.to_string()),
        "{msg}"
    );
    let counter = admin.json("/api/counter");
    assert!(counter["message"]
        .as_str()
        .unwrap()
        .starts_with("WARNING: "));
    // ...and a clear mark on the node in the live summary.
    wait_until("the stopped nsqd marked down", || {
        let s = admin.json("/api/summary");
        s["nodes"].as_array().is_some_and(|n| {
            n.iter()
                .any(|n| n["state"] == "down" && n["error"].as_str().is_some_and(|e| !e.is_empty()))
                && n.iter().any(|n| n["state"] == "ok")
        })
    });

    // Nothing answers: 502 with every error.
    let only_dead = Admin::start(&[format!("--nsqd-http-address={dead}")]);
    let r = only_dead.get("/api/topics");
    assert_eq!(r.status, 502);
    let msg = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with("UPSTREAM_ERROR: failed to query any nsqd: ")
            && msg.contains(&dead.to_string()),
        "{msg}"
    );
    assert_eq!(only_dead.get("/api/nodes").status, 502);
    assert!(!admin.log_text().contains("panicked"));
}

/// A one-shot HTTP sink: the bodies of the requests it receives.
fn notification_sink() -> (SocketAddr, std::sync::mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let l = line.trim().to_ascii_lowercase();
                    if let Some(v) = l.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if l.is_empty() {
                        break;
                    }
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_ok() {
                    let _ = s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    if let Ok(v) = serde_json::from_slice(&body) {
                        let _ = tx.send(v);
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[test]
fn admin_users_notifications_config_cidr_and_base_path() {
    let c = Cluster::start();
    c.publish(0, "orders", 1);
    c.create_channel(0, "orders", "billing");
    c.wait_registered("orders", "billing", 1);
    let (sink, events) = notification_sink();
    let mut args = c.admin_args();
    args.extend([
        "--admin-user=ops".to_string(),
        format!("--notification-http-endpoint=http://{sink}/events"),
        "--allow-config-from-cidr=10.0.0.0/8".into(),
        "--base-path=/nsqadmin/".into(),
    ]);
    let admin = Admin::start(&args);

    // Everything lives under the base path.
    assert_eq!(admin.get("/api/topics").status, 404);
    assert_eq!(admin.get("/nsqadmin/ping").text(), "OK");
    let page = admin.get("/nsqadmin");
    assert_eq!(page.status, 200);
    assert!(page.text().contains(r#"src="/nsqadmin/static/app.js""#));
    assert!(page.text().contains(r#""is_admin":false"#));
    let path = "/nsqadmin/api/topics/orders/billing";

    // Only admin users may act.
    let r = admin.send("POST", path, r#"{"action":"pause"}"#);
    assert_eq!((r.status, r.json()), (403, json!({"message": "FORBIDDEN"})));
    let r = request(
        admin.http,
        "DELETE",
        path,
        &[("X-Forwarded-User", "eve")],
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(channel_on(&c.nsqd[0], "orders", "billing")["paused"], false);
    let r = request(
        admin.http,
        "POST",
        &format!("{path}?from=test"),
        &[
            ("X-Forwarded-User", "ops"),
            ("Authorization", "Basic b3BzOnNlY3JldA=="), // ops:secret
            ("User-Agent", "admin-test/1"),
        ],
        br#"{"action":"pause"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(channel_on(&c.nsqd[0], "orders", "billing")["paused"], true);
    let page = request(
        admin.http,
        "GET",
        "/nsqadmin/",
        &[("X-Forwarded-User", "ops")],
        b"",
    );
    assert!(page.text().contains(r#""is_admin":true"#));

    // The action is reported to the notification endpoint, as NSQ does.
    let event = events.recv_timeout(DEADLINE).expect("a notification");
    assert_eq!(event["action"], "pause_channel");
    assert_eq!(event["topic"], "orders");
    assert_eq!(event["channel"], "billing");
    assert_eq!(event["user"], "ops");
    assert_eq!(event["user_agent"], "admin-test/1");
    assert_eq!(
        event["url"],
        format!("http://{}{path}?from=test", admin.http).as_str()
    );
    assert!(event["remote_ip"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(event["timestamp"].as_i64().unwrap() > 1_600_000_000);
    assert!(event.get("node").is_none(), "empty node is omitted");
    let keys: Vec<&String> = event.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 9, "{keys:?}");

    // /config only from the allowed network.
    let r = admin.get("/nsqadmin/config/nsqlookupd_http_addresses");
    assert_eq!((r.status, r.json()), (403, json!({"message": "FORBIDDEN"})));

    // SIGTERM: a clean and quick stop, notifier and all.
    let mut admin = admin;
    let (status, took) = admin.stop();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[test]
fn admin_config_file_and_live_events() {
    let c = Cluster::start();
    c.publish(0, "orders", 3);
    c.wait_registered("orders", "", 1);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nsqadmin.cfg");
    std::fs::write(
        &conf,
        format!(
            "nsqlookupd_http_addresses = [\"{}\"]\nsample_interval = \"100ms\"\nlog_level = \"debug\"\n",
            c.lookupd.http
        ),
    )
    .unwrap();
    let admin = Admin::start(&[format!("--config={}", conf.display())]);
    assert_eq!(
        admin.json("/config/nsqlookupd_http_addresses"),
        json!([c.lookupd.http.to_string()])
    );
    assert_eq!(admin.json("/config/log_level"), json!(1));

    // Server-sent events: a summary at once, then one per sample.
    let mut s = TcpStream::connect(admin.http).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut summaries = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let mut head = String::new();
    while summaries.len() < 3 {
        assert!(Instant::now() < deadline, "no events");
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("event stream closed");
        }
        if head.len() < 4096 && summaries.is_empty() {
            head.push_str(&line);
        }
        // Chunked framing lines are skipped; data lines carry the JSON.
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            summaries.push(serde_json::from_str::<Value>(data).expect("summary JSON"));
        }
    }
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let last = summaries.last().unwrap();
    assert!(last["seq"].as_u64().unwrap() > summaries[0]["seq"].as_u64().unwrap());
    assert_eq!(last["interval_ms"], 100);
    let topic = &last["topics"][0];
    assert_eq!(topic["topic"], "orders");
    assert_eq!(topic["message_count"], 3);
    assert!(!topic["depth_history"].as_array().unwrap().is_empty());
    assert_eq!(last["nodes"][0]["state"], "ok");

    // The lookupd list can be changed at run time, as in NSQ.
    let list = format!("[\"{}\"]", c.lookupd.http);
    let r = admin.send("PUT", "/config/nsqlookupd_http_addresses", &list);
    assert_eq!((r.status, r.text()), (200, list));
    assert_eq!(
        admin
            .send("PUT", "/config/nsqlookupd_http_addresses", "{")
            .status,
        400
    );

    // SIGTERM with a live stream open: a clean and quick stop.
    let mut admin = admin;
    let (status, took) = admin.stop();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    drop(reader);
}

#[test]
fn admin_follows_nsqd_to_https_with_the_client_tls_flags() {
    let pki = crate::support::Pki::new();
    let mut args = pki.flags();
    args.extend([
        "--tls-required=true".to_string(),
        "--broadcast-address=127.0.0.1".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let nsqd = Nsqd::start(&args);
    let r = nsqd.http("GET", "/stats?format=json", b"");
    assert_eq!(r.status, 403, "plain HTTP is refused");
    // The topic is made over HTTPS by nsqadmin itself.
    let admin = Admin::start(&[
        format!("--nsqd-http-address={}", nsqd.http),
        format!("--http-client-tls-root-ca-file={}", pki.path("ca.pem")),
    ]);
    let r = admin.send("POST", "/api/topics", r#"{"topic":"secure","channel":"c"}"#);
    assert_eq!((r.status, r.json()), (200, json!({"message": ""})));
    let t = admin.json("/api/topics/secure");
    assert_eq!(t["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(t["channels"][0]["channel_name"], "c");

    // A CA file that cannot be read stops nsqadmin at start; a CA that did
    // not sign nsqd's certificate makes nsqd unreachable (502).
    let (code, _, err) = run_binary(
        BIN,
        &[
            &format!("--nsqd-http-address={}", nsqd.http),
            "--http-address=127.0.0.1:0",
            "--http-client-tls-root-ca-file=/nonexistent/ca.pem",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    let wrong_ca = crate::support::Pki::new();
    let untrusting = Admin::start(&[
        format!("--nsqd-http-address={}", nsqd.http),
        format!("--http-client-tls-root-ca-file={}", wrong_ca.path("ca.pem")),
    ]);
    let r = untrusting.get("/api/topics");
    assert_eq!(r.status, 502, "{}", r.text());
}

/// A tiny HTTP server that answers every request with `body`; the request
/// lines it saw.
fn fake_graphite(body: &'static str) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
            }
            log.lock().unwrap().push(first.trim().to_string());
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, seen)
}

#[test]
fn admin_graphite_flags_and_dev_static_dir() {
    let (graphite, seen) = fake_graphite(r#"[{"target":"x","datapoints":[[120.0,1700000000]]}]"#);
    let dev = tempfile::tempdir().unwrap();
    std::fs::write(dev.path().join("app.js"), "// from the dev dir").unwrap();
    let admin = Admin::start(&[
        "--nsqd-http-address=127.0.0.1:1".into(),
        format!("--graphite-url=http://{graphite}"),
        "--proxy-graphite".into(),
        "--statsd-interval=30s".into(),
        format!("--dev-static-dir={}", dev.path().display()),
    ]);
    // /api/graphite: the rate per second over the statsd interval.
    let r =
        admin.get("/api/graphite?metric=rate&target=sumSeries(nsq.*.topic.orders.message_count)");
    assert_eq!((r.status, r.json()), (200, json!({"rate": "4.00"})));
    let line = seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        line.starts_with("GET /render?")
            && line.contains("from=-60sec")
            && line.contains("until=-30sec"),
        "{line}"
    );
    let r = admin.get("/api/graphite?metric=depth&target=x");
    assert_eq!(
        (r.status, r.json()),
        (400, json!({"message": "INVALID_ARG_METRIC"}))
    );
    let r = admin.get("/api/graphite?metric=rate");
    assert_eq!(
        (r.status, r.json()),
        (400, json!({"message": "INVALID_ARG_TARGET"}))
    );
    // /render is passed through to Graphite.
    let r = admin.get("/render?target=x&format=json");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("datapoints"));
    assert_eq!(
        seen.lock().unwrap().last().unwrap(),
        "GET /render?target=x&format=json HTTP/1.1"
    );
    // The UI's files can come from a directory while working on them.
    assert_eq!(admin.get("/static/app.js").text(), "// from the dev dir");
    assert_eq!(admin.get("/static/app.css").status, 404);
}
