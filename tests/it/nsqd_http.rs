//! nsqd's HTTP API end to end: methods, status codes, bodies, headers.

use crate::support;

use serde_json::json;
use support::{consumer, Nsqd};

const NSQ_HEADER: &str = "nsq; version=1.0";

fn assert_error(r: &support::HttpResponse, status: u16, message: &str) {
    assert_eq!(r.status, status, "body {}", r.text());
    assert_eq!(r.text(), format!("{{\"message\":\"{message}\"}}"));
    assert_eq!(r.header("x-nsq-content-type"), Some(NSQ_HEADER));
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
}

#[test]
fn ping_and_info() {
    let nsqd = Nsqd::start(&["--broadcast-address=node1.example"]);
    let r = nsqd.http("GET", "/ping", b"");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    assert_eq!(r.header("x-nsq-content-type"), None);

    let r = nsqd.http("GET", "/info", b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-nsq-content-type"), Some(NSQ_HEADER));
    let v = r.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let mut expected = vec![
        "version",
        "broadcast_address",
        "hostname",
        "http_port",
        "tcp_port",
        "start_time",
        "max_heartbeat_interval",
        "max_output_buffer_size",
        "max_output_buffer_timeout",
        "max_deflate_level",
    ];
    expected.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, expected);
    assert_eq!(v["version"], "1.3.0");
    assert_eq!(v["broadcast_address"], "node1.example");
    assert_eq!(v["tcp_port"], nsqd.tcp.port());
    assert_eq!(v["http_port"], nsqd.http.port());
    assert_eq!(v["max_heartbeat_interval"], 60_000_000_000u64);
    assert_eq!(v["max_output_buffer_timeout"], 30_000_000_000u64);
    assert!(r
        .text()
        .starts_with("{\"version\":\"1.3.0\",\"broadcast_address\""));
}

#[test]
fn pub_and_its_errors() {
    let nsqd = Nsqd::start(&["--max-msg-size=10", "--max-req-timeout=5s"]);
    let r = nsqd.http("POST", "/pub?topic=t", b"hello");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    assert_eq!(r.header("x-nsq-content-type"), Some(NSQ_HEADER));
    assert_eq!(
        nsqd.http("POST", "/pub?topic=t&defer=1000", b"later")
            .status,
        200
    );
    assert_eq!(nsqd.topic_stats("t").unwrap()["message_count"], 2);

    assert_error(&nsqd.http("POST", "/pub?topic=t", b""), 400, "MSG_EMPTY");
    assert_error(&nsqd.http("POST", "/pub", b"x"), 400, "MISSING_ARG_TOPIC");
    assert_error(
        &nsqd.http("POST", "/pub?topic=bad!", b"x"),
        400,
        "INVALID_TOPIC",
    );
    assert_error(
        &nsqd.http("POST", "/pub?topic=t", b"01234567890"),
        413,
        "MSG_TOO_BIG",
    );
    assert_error(
        &nsqd.http("POST", "/pub?topic=t&defer=x", b"x"),
        400,
        "INVALID_DEFER",
    );
    assert_error(
        &nsqd.http("POST", "/pub?topic=t&defer=-1", b"x"),
        400,
        "INVALID_DEFER",
    );
    assert_error(
        &nsqd.http("POST", "/pub?topic=t&defer=5001", b"x"),
        400,
        "INVALID_DEFER",
    );
    assert_error(
        &nsqd.http("POST", "/pub?topic=%zz", b"x"),
        400,
        "INVALID_REQUEST",
    );
    assert_error(
        &nsqd.http("GET", "/pub?topic=t", b""),
        405,
        "METHOD_NOT_ALLOWED",
    );
    assert_error(&nsqd.http("GET", "/nope", b""), 404, "NOT_FOUND");
}

#[test]
fn deferred_http_publish_is_deferred() {
    let nsqd = Nsqd::start(&[]);
    let mut c = consumer(&nsqd, "d", "c", 1);
    assert_eq!(
        nsqd.http("POST", "/pub?topic=d&defer=400", b"x").status,
        200
    );
    assert_eq!(nsqd.channel_stats("d", "c").unwrap()["deferred_count"], 1);
    assert_eq!(c.expect_message().body.as_ref(), b"x");
}

#[test]
fn mpub_text_and_binary() {
    let nsqd = Nsqd::start(&["--max-msg-size=10", "--max-body-size=100"]);
    let mut c = consumer(&nsqd, "m", "c", 100);
    let r = nsqd.http("POST", "/mpub?topic=m", b"a\n\nb\r\nc");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    let got: Vec<Vec<u8>> = (0..3).map(|_| c.expect_message().body.to_vec()).collect();
    assert_eq!(got, vec![b"a".to_vec(), b"b\r".to_vec(), b"c".to_vec()]);

    let mut bin = vec![0, 0, 0, 2];
    bin.extend_from_slice(&[0, 0, 0, 2, b'x', b'\n', 0, 0, 0, 1, b'y']);
    assert_eq!(
        nsqd.http("POST", "/mpub?topic=m&binary=true", &bin).status,
        200
    );
    assert_eq!(c.expect_message().body.as_ref(), b"x\n");
    assert_eq!(c.expect_message().body.as_ref(), b"y");

    assert_error(
        &nsqd.http("POST", "/mpub?topic=m", b"abcdefghijkl\n"),
        413,
        "MSG_TOO_BIG",
    );
    assert_error(
        &nsqd.http("POST", "/mpub?topic=m", &[b'a'; 101]),
        413,
        "BODY_TOO_BIG",
    );
    assert_error(
        &nsqd.http("POST", "/mpub?topic=m&binary=1", &[0, 0, 0, 0]),
        413,
        "BAD_BODY",
    );
    assert_error(
        &nsqd.http(
            "POST",
            "/mpub?topic=m&binary=1",
            &[0, 0, 0, 1, 0, 0, 0, 9, b'a'],
        ),
        413,
        "BAD_MESSAGE",
    );
    assert_error(&nsqd.http("POST", "/mpub", b"a"), 400, "MISSING_ARG_TOPIC");
    assert_eq!(nsqd.http("POST", "/mpub?topic=m", b"").status, 200);
}

#[test]
fn stats_json_shape_and_filters() {
    let nsqd = Nsqd::start(&[]);
    let _c = consumer(&nsqd, "a", "ch1", 1);
    let mut producer = nsqd.connect();
    producer.publish("b", b"x");
    let r = nsqd.http("GET", "/stats?format=json", b"");
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(r
        .text()
        .starts_with("{\"version\":\"1.3.0\",\"health\":\"OK\",\"start_time\":"));
    let v = r.json();
    let topics = v["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 2);
    assert_eq!(topics[0]["topic_name"], "a", "sorted by name");
    let t = &topics[0];
    for key in [
        "topic_name",
        "channels",
        "depth",
        "backend_depth",
        "message_count",
        "message_bytes",
        "paused",
    ] {
        assert!(t.get(key).is_some(), "topic lacks {key}");
    }
    assert_eq!(
        t["e2e_processing_latency"],
        json!({"count": 0, "percentiles": null})
    );
    let ch = &t["channels"][0];
    for key in [
        "channel_name",
        "depth",
        "backend_depth",
        "in_flight_count",
        "deferred_count",
        "message_count",
        "requeue_count",
        "timeout_count",
        "client_count",
        "clients",
        "paused",
        "e2e_processing_latency",
    ] {
        assert!(ch.get(key).is_some(), "channel lacks {key}");
    }
    let client = &ch["clients"][0];
    for key in [
        "client_id",
        "hostname",
        "version",
        "remote_address",
        "state",
        "ready_count",
        "in_flight_count",
        "message_count",
        "finish_count",
        "requeue_count",
        "connect_ts",
        "sample_rate",
        "deflate",
        "snappy",
        "user_agent",
        "tls",
        "tls_cipher_suite",
        "tls_version",
    ] {
        assert!(client.get(key).is_some(), "client lacks {key}");
    }
    assert!(client.get("authed").is_none());
    assert!(v["memory"].is_object());
    let producers = v["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 1);
    assert_eq!(
        producers[0]["pub_counts"],
        json!([{"topic": "b", "count": 1}])
    );

    let v = nsqd
        .http(
            "GET",
            "/stats?format=json&topic=a&include_clients=false&include_mem=false",
            b"",
        )
        .json();
    assert_eq!(v["topics"].as_array().unwrap().len(), 1);
    assert_eq!(v["topics"][0]["channels"][0]["clients"], json!(null));
    assert_eq!(v["topics"][0]["channels"][0]["client_count"], 1);
    assert!(v.get("memory").is_none());
    assert_eq!(v["producers"], json!(null));

    let v = nsqd
        .http("GET", "/stats?format=json&topic=a&channel=none", b"")
        .json();
    assert_eq!(v["topics"], json!([]));
    let v = nsqd
        .http("GET", "/stats?format=json&topic=missing", b"")
        .json();
    assert_eq!(v["topics"], json!(null));

    let text = nsqd.http("GET", "/stats", b"").text();
    assert!(text.starts_with("nsqd v1.3.0"), "{text}");
    assert!(text.contains("Health: OK"));
    assert!(text.contains("[a              ] depth: 0"), "{text}");
}

#[test]
fn topic_endpoints() {
    let nsqd = Nsqd::start(&[]);
    let r = nsqd.http("POST", "/topic/create?topic=t", b"");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("x-nsq-content-type"), Some(NSQ_HEADER));
    assert!(nsqd.topic_stats("t").is_some());
    assert_error(
        &nsqd.http("POST", "/topic/create", b""),
        400,
        "MISSING_ARG_TOPIC",
    );
    assert_error(
        &nsqd.http("POST", "/topic/create?topic=a%20b", b""),
        400,
        "INVALID_TOPIC",
    );

    nsqd.connect().publish("t", b"x");
    assert_eq!(nsqd.http("POST", "/topic/empty?topic=t", b"").status, 200);
    assert_eq!(nsqd.topic_stats("t").unwrap()["depth"], 0);
    assert_error(
        &nsqd.http("POST", "/topic/empty?topic=nope", b""),
        404,
        "TOPIC_NOT_FOUND",
    );
    assert_error(
        &nsqd.http("POST", "/topic/empty?topic=bad!", b""),
        400,
        "INVALID_TOPIC",
    );

    assert_eq!(nsqd.http("POST", "/topic/pause?topic=t", b"").status, 200);
    assert_eq!(nsqd.topic_stats("t").unwrap()["paused"], true);
    assert_eq!(nsqd.http("POST", "/topic/unpause?topic=t", b"").status, 200);
    assert_eq!(nsqd.topic_stats("t").unwrap()["paused"], false);
    assert_error(
        &nsqd.http("POST", "/topic/pause?topic=nope", b""),
        404,
        "TOPIC_NOT_FOUND",
    );
    assert_error(
        &nsqd.http("POST", "/topic/pause", b""),
        400,
        "MISSING_ARG_TOPIC",
    );

    assert_eq!(nsqd.http("POST", "/topic/delete?topic=t", b"").status, 200);
    assert!(nsqd.topic_stats("t").is_none());
    assert_error(
        &nsqd.http("POST", "/topic/delete?topic=t", b""),
        404,
        "TOPIC_NOT_FOUND",
    );
    assert_error(
        &nsqd.http("GET", "/topic/delete?topic=t", b""),
        405,
        "METHOD_NOT_ALLOWED",
    );
}

#[test]
fn channel_endpoints() {
    let nsqd = Nsqd::start(&[]);
    assert_error(
        &nsqd.http("POST", "/channel/create?topic=t&channel=c", b""),
        404,
        "TOPIC_NOT_FOUND",
    );
    assert_eq!(nsqd.http("POST", "/topic/create?topic=t", b"").status, 200);
    let r = nsqd.http("POST", "/channel/create?topic=t&channel=c", b"");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert!(nsqd.channel_stats("t", "c").is_some());

    assert_error(
        &nsqd.http("POST", "/channel/create?channel=c", b""),
        400,
        "MISSING_ARG_TOPIC",
    );
    assert_error(
        &nsqd.http("POST", "/channel/create?topic=bad!&channel=c", b""),
        400,
        "INVALID_ARG_TOPIC",
    );
    assert_error(
        &nsqd.http("POST", "/channel/create?topic=t", b""),
        400,
        "MISSING_ARG_CHANNEL",
    );
    assert_error(
        &nsqd.http("POST", "/channel/create?topic=t&channel=bad!", b""),
        400,
        "INVALID_ARG_CHANNEL",
    );

    // Messages published now reach the channel, which holds them.
    nsqd.connect().publish("t", b"x");
    assert_eq!(nsqd.channel_stats("t", "c").unwrap()["depth"], 1);
    assert_eq!(
        nsqd.http("POST", "/channel/empty?topic=t&channel=c", b"")
            .status,
        200
    );
    assert_eq!(nsqd.channel_stats("t", "c").unwrap()["depth"], 0);

    for action in ["pause", "unpause", "empty", "delete"] {
        assert_error(
            &nsqd.http(
                "POST",
                &format!("/channel/{action}?topic=t&channel=nope"),
                b"",
            ),
            404,
            "CHANNEL_NOT_FOUND",
        );
    }
    assert_eq!(
        nsqd.http("POST", "/channel/pause?topic=t&channel=c", b"")
            .status,
        200
    );
    assert_eq!(nsqd.channel_stats("t", "c").unwrap()["paused"], true);
    assert_eq!(
        nsqd.http("POST", "/channel/unpause?topic=t&channel=c", b"")
            .status,
        200
    );
    assert_eq!(nsqd.channel_stats("t", "c").unwrap()["paused"], false);
    assert_eq!(
        nsqd.http("POST", "/channel/delete?topic=t&channel=c", b"")
            .status,
        200
    );
    assert!(nsqd.channel_stats("t", "c").is_none());
}

#[test]
fn channel_empty_forgets_in_flight() {
    let nsqd = Nsqd::start(&[]);
    let mut c = consumer(&nsqd, "t", "c", 1);
    nsqd.connect().publish("t", b"x");
    let m = c.expect_message();
    assert_eq!(
        nsqd.http("POST", "/channel/empty?topic=t&channel=c", b"")
            .status,
        200
    );
    c.fin(m.id);
    c.expect_error(&format!(
        "E_FIN_FAILED FIN {} failed ID not in flight",
        String::from_utf8_lossy(&m.id.to_hex())
    ));
    // The in-flight slot was released: new messages flow.
    nsqd.connect().publish("t", b"y");
    assert_eq!(c.expect_message().body.as_ref(), b"y");
}

/// `/channel/peek` (beyond NSQ): the next messages, changing nothing.
#[test]
fn peek_shows_the_next_messages_and_changes_nothing() {
    // A cache of one message: the rest of the peek reads the disk.
    let nsqd = Nsqd::start(&["--mem-queue-size=1"]);
    nsqd.http("POST", "/topic/create?topic=t", b"");
    nsqd.http("POST", "/channel/create?topic=t&channel=c", b"");
    let mut p = nsqd.connect();
    for body in [&b"first"[..], b"\xff\x00bin", b"third"] {
        p.publish("t", body);
    }
    let peek = |n: &str| {
        let r = nsqd.http("GET", &format!("/channel/peek?topic=t&channel=c{n}"), b"");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["messages"].as_array().unwrap().clone()
    };
    let all = peek("");
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["body"], "first");
    assert_eq!(all[0]["attempts"], 0);
    assert_eq!(all[1]["body_base64"], "/wBiaW4=");
    assert!(all[1].get("body").is_none());
    assert_eq!(all[2]["body"], "third");
    assert_eq!(peek("&n=1").len(), 1);
    // Nothing moved: the channel delivers them in that order, first attempt.
    let ch = nsqd.channel_stats("t", "c").unwrap();
    assert_eq!(
        (ch["depth"].clone(), ch["in_flight_count"].clone()),
        (3.into(), 0.into())
    );
    let mut c = support::consumer(&nsqd, "t", "c", 1);
    let m = c.expect_message();
    assert_eq!((m.body.as_ref(), m.attempts), (&b"first"[..], 1));
    assert_eq!(
        all[0]["id"],
        String::from_utf8(m.id.to_hex().to_vec()).unwrap()
    );
    // A requeued message is next: the peek says so (RDY 0 first, so that
    // it is not delivered again at once).
    c.rdy(0);
    c.send(&nsq::protocol::Command::Req {
        id: m.id.to_hex(),
        timeout_ms: 0,
    });
    support::wait_until("requeued", || {
        nsqd.channel_stats("t", "c").unwrap()["requeue_count"] == 1
    });
    let next = peek("&n=2");
    assert_eq!(
        (next[0]["body"].clone(), next[0]["attempts"].clone()),
        ("first".into(), 1.into())
    );
    for (query, status, text) in [
        ("topic=t&channel=c&n=0", 400, r#"{"message":"INVALID_N"}"#),
        (
            "topic=t&channel=c&n=1001",
            400,
            r#"{"message":"INVALID_N"}"#,
        ),
        ("topic=t", 400, r#"{"message":"MISSING_ARG_CHANNEL"}"#),
        (
            "topic=t&channel=nope",
            404,
            r#"{"message":"CHANNEL_NOT_FOUND"}"#,
        ),
        (
            "topic=nope&channel=c",
            404,
            r#"{"message":"TOPIC_NOT_FOUND"}"#,
        ),
    ] {
        let r = nsqd.http("GET", &format!("/channel/peek?{query}"), b"");
        assert_eq!((r.status, r.text().as_str()), (status, text), "{query}");
    }
}
