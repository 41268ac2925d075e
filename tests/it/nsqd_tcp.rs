//! Protocol V2 end to end: the compiled nsqd on port 0, raw sockets, exact bytes.

use crate::support;

use bytes::Bytes;
use nsq::protocol::{Command, Frame, MessageId};
use serde_json::json;
use std::time::{Duration, Instant};
use support::{consumer, wait_until, Conn, Nsqd};

fn body(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn bad_magic_gets_e_bad_protocol_and_close() {
    let nsqd = Nsqd::start(&[]);
    let mut c = Conn::connect_raw(nsqd.tcp);
    c.send_raw(b"  V1");
    let frames = c.expect_closed();
    assert_eq!(
        frames,
        vec![Frame::Error(Bytes::from_static(b"E_BAD_PROTOCOL"))]
    );
}

#[test]
fn identify_plain_and_negotiated() {
    let nsqd = Nsqd::start(&[]);
    let mut c = nsqd.connect();
    assert_eq!(
        c.identify(json!({"client_id": "x", "short_id": "s", "long_id": "l"})),
        Frame::Response(Bytes::from_static(b"OK"))
    );

    let mut c = nsqd.connect();
    let Frame::Response(data) = c.identify(json!({"feature_negotiation": true, "tls_v1": true}))
    else {
        panic!("expected a response");
    };
    assert_eq!(
        String::from_utf8_lossy(&data),
        r#"{"max_rdy_count":2500,"version":"1.3.0","max_msg_timeout":900000,"msg_timeout":60000,"tls_v1":false,"deflate":false,"deflate_level":6,"max_deflate_level":6,"snappy":false,"sample_rate":0,"auth_required":false,"output_buffer_size":16384,"output_buffer_timeout":250}"#
    );
    // TLS asked for without a certificate configured: not offered, and the
    // connection keeps working in plain text.
    c.publish("t", b"after identify");
}

#[test]
fn identify_reflects_client_settings() {
    let nsqd = Nsqd::start(&["--max-rdy-count=100"]);
    let mut c = nsqd.connect();
    let Frame::Response(data) = c.identify(json!({
        "feature_negotiation": true, "msg_timeout": 5000, "output_buffer_size": -1,
        "sample_rate": 10, "heartbeat_interval": 2000
    })) else {
        panic!()
    };
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(v["max_rdy_count"], 100);
    assert_eq!(v["msg_timeout"], 5000);
    assert_eq!(v["output_buffer_size"], 1);
    assert_eq!(v["output_buffer_timeout"], 0);
    assert_eq!(v["sample_rate"], 10);
}

#[test]
fn identify_validation_errors_are_fatal() {
    let nsqd = Nsqd::start(&[]);
    let cases = [
        (
            json!({"heartbeat_interval": 999}),
            "E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid",
        ),
        (
            json!({"heartbeat_interval": 60001}),
            "E_BAD_BODY IDENTIFY heartbeat interval (60001) is invalid",
        ),
        (
            json!({"output_buffer_timeout": 1}),
            "E_BAD_BODY IDENTIFY output buffer timeout (1) is invalid",
        ),
        (
            json!({"output_buffer_size": 10}),
            "E_BAD_BODY IDENTIFY output buffer size (10) is invalid",
        ),
        (
            json!({"sample_rate": 100}),
            "E_BAD_BODY IDENTIFY sample rate (100) is invalid",
        ),
        (
            json!({"msg_timeout": 999}),
            "E_BAD_BODY IDENTIFY msg timeout (999) is invalid",
        ),
        (
            json!({"heartbeat_interval": "1000"}),
            "E_BAD_BODY IDENTIFY failed to decode JSON body",
        ),
    ];
    for (body, err) in cases {
        let mut c = nsqd.connect();
        c.send(&Command::Identify(body.to_string().into()));
        let frames = c.expect_closed();
        assert_eq!(
            frames,
            vec![Frame::Error(Bytes::from(err.to_string()))],
            "{body}"
        );
    }
    let mut c = nsqd.connect();
    c.send_raw(b"IDENTIFY\n\x00\x00\x00\x05{bad}");
    assert_eq!(
        c.expect_closed(),
        vec![Frame::Error(Bytes::from_static(
            b"E_BAD_BODY IDENTIFY failed to decode JSON body"
        ))]
    );
}

#[test]
fn publish_commands_and_their_errors() {
    let nsqd = Nsqd::start(&[
        "--max-msg-size=100",
        "--max-body-size=300",
        "--max-req-timeout=10s",
    ]);
    let mut c = nsqd.connect();
    c.publish("t", b"one");
    c.publish_batch("t", vec![body("two"), body("three")]);
    c.send(&Command::Dpub {
        topic: "t".into(),
        defer_ms: 1000,
        body: body("four"),
    });
    c.expect_ok();
    let topic = nsqd.topic_stats("t").unwrap();
    assert_eq!(topic["message_count"], 4);
    assert_eq!(topic["message_bytes"], 15);

    let fatal = |bytes: &[u8], err: &str| {
        let mut c = nsqd.connect();
        c.send_raw(bytes);
        assert_eq!(
            c.expect_closed(),
            vec![Frame::Error(Bytes::from(err.to_string()))],
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    };
    fatal(b"PUB\n", "E_INVALID PUB insufficient number of parameters");
    fatal(
        b"PUB bad!topic\n",
        "E_BAD_TOPIC PUB topic name \"bad!topic\" is not valid",
    );
    fatal(
        b"PUB t\n\x00\x00\x00\x00",
        "E_BAD_MESSAGE PUB invalid message body size 0",
    );
    fatal(
        b"PUB t\n\x00\x00\x00\x65",
        "E_BAD_MESSAGE PUB message too big 101 > 100",
    );
    fatal(
        b"MPUB bad!\n",
        "E_BAD_TOPIC E_BAD_TOPIC MPUB topic name \"bad!\" is not valid",
    );
    fatal(
        b"MPUB t\n\x00\x00\x01\x2d",
        "E_BAD_BODY MPUB body too big 301 > 300",
    );
    fatal(
        b"MPUB t\n\x00\x00\x00\x10\x00\x00\x00\x00",
        "E_BAD_BODY MPUB invalid message count 0",
    );
    fatal(
        b"MPUB t\n\x00\x00\x00\x10\x00\x00\x00\x01\x00\x00\x00\x65",
        "E_BAD_MESSAGE MPUB message too big 101 > 100",
    );
    fatal(
        b"DPUB t\n",
        "E_INVALID DPUB insufficient number of parameters",
    );
    fatal(b"DPUB t -1\n", "E_INVALID DPUB could not parse timeout -1");
    fatal(
        b"DPUB t 10001\n",
        "E_INVALID DPUB timeout 10001 out of range 0-10000",
    );
    fatal(b"FOO\n", "E_INVALID invalid command FOO");
    fatal(b"\n", "E_INVALID invalid command ");
}

#[test]
fn wrong_state_commands_are_fatal() {
    let nsqd = Nsqd::start(&[]);
    for (cmd, err) in [
        (&b"RDY 1\n"[..], "E_INVALID cannot RDY in current state"),
        (
            b"FIN 0123456789abcdef\n",
            "E_INVALID cannot FIN in current state",
        ),
        (
            b"REQ 0123456789abcdef 0\n",
            "E_INVALID cannot REQ in current state",
        ),
        (
            b"TOUCH 0123456789abcdef\n",
            "E_INVALID cannot TOUCH in current state",
        ),
        (b"CLS\n", "E_INVALID cannot CLS in current state"),
    ] {
        let mut c = nsqd.connect();
        c.send_raw(cmd);
        assert_eq!(c.expect_closed(), vec![Frame::Error(Bytes::from(err))]);
    }
    let mut c = consumer(&nsqd, "t", "c", 0);
    c.send_raw(b"SUB t c\n");
    assert_eq!(
        c.expect_closed(),
        vec![Frame::Error(Bytes::from_static(
            b"E_INVALID cannot SUB in current state"
        ))]
    );
    let mut c = consumer(&nsqd, "t", "c", 0);
    c.send_raw(b"IDENTIFY\n");
    assert_eq!(
        c.expect_closed(),
        vec![Frame::Error(Bytes::from_static(
            b"E_INVALID cannot IDENTIFY in current state"
        ))]
    );
    let mut c = nsqd.connect();
    c.send_raw(b"SUB t bad!\n");
    assert_eq!(
        c.expect_closed(),
        vec![Frame::Error(Bytes::from_static(
            b"E_BAD_CHANNEL SUB channel name \"bad!\" is not valid"
        ))]
    );
    let mut c = nsqd.connect();
    c.send_raw(b"AUTH\n\x00\x00\x00\x03abc");
    assert_eq!(
        c.expect_closed(),
        vec![Frame::Error(Bytes::from_static(
            b"E_AUTH_DISABLED AUTH disabled"
        ))]
    );
}

#[test]
fn subscribe_and_receive_exact_message_frame() {
    let nsqd = Nsqd::start(&[]);
    let mut sub = consumer(&nsqd, "orders", "billing", 1);
    let before = nsq::protocol::message::now_nanos();
    nsqd.connect().publish("orders", b"hello world");
    let m = sub.expect_message();
    assert_eq!(m.body.as_ref(), b"hello world");
    assert_eq!(m.attempts, 1);
    assert!(
        m.timestamp >= before - 1_000_000_000 && m.timestamp <= nsq::protocol::message::now_nanos()
    );
    let hex = m.id.to_hex();
    assert!(hex
        .iter()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    sub.fin(m.id);
    wait_until("in-flight drains", || {
        nsqd.channel_stats("orders", "billing").unwrap()["in_flight_count"] == 0
    });
    let ch = nsqd.channel_stats("orders", "billing").unwrap();
    assert_eq!(ch["message_count"], 1);
    let client = &ch["clients"][0];
    assert_eq!(client["finish_count"], 1);
    assert_eq!(client["state"], 3);
    assert_eq!(client["ready_count"], 1);
    assert_eq!(client["version"], "V2");
}

/// FINs sent in one write are done together, but each failing one is
/// answered in its place: before the response to what follows it.
#[test]
fn pipelined_fins_answer_in_order() {
    let nsqd = Nsqd::start(&[]);
    let mut a = consumer(&nsqd, "t", "c", 3);
    let mut p = nsqd.connect();
    for body in [b"1", b"2", b"3"] {
        p.publish("t", body);
    }
    let ids: Vec<String> = (0..3)
        .map(|_| String::from_utf8(a.expect_message().id.to_hex().to_vec()).unwrap())
        .collect();
    let burst = format!(
        "FIN {}\nFIN 0000000000000000\nFIN {}\nTOUCH 0000000000000001\nFIN {}\nFIN {}\n",
        ids[0], ids[1], ids[2], ids[2]
    );
    a.send_raw(burst.as_bytes());
    a.expect_error("E_FIN_FAILED FIN 0000000000000000 failed ID not in flight");
    a.expect_error("E_TOUCH_FAILED TOUCH 0000000000000001 failed ID not in flight");
    a.expect_error(&format!(
        "E_FIN_FAILED FIN {} failed ID not in flight",
        ids[2]
    ));
    wait_until("every message finished", || {
        let ch = nsqd.channel_stats("t", "c").unwrap();
        ch["in_flight_count"] == 0 && ch["clients"][0]["finish_count"] == 3
    });
}

#[test]
fn fin_errors_are_not_fatal() {
    let nsqd = Nsqd::start(&[]);
    let mut a = consumer(&nsqd, "t", "c", 1);
    let mut b = consumer(&nsqd, "t", "c", 0);
    nsqd.connect().publish("t", b"x");
    let m = a.expect_message();

    a.send_raw(b"FIN 0000000000000000\n");
    a.expect_error("E_FIN_FAILED FIN 0000000000000000 failed ID not in flight");
    let id = String::from_utf8(m.id.to_hex().to_vec()).unwrap();
    b.fin(m.id);
    b.expect_error(&format!(
        "E_FIN_FAILED FIN {id} failed client does not own message"
    ));
    b.send_raw(format!("REQ {id} 0\n").as_bytes());
    b.expect_error(&format!(
        "E_REQ_FAILED REQ {id} failed client does not own message"
    ));
    b.send_raw(format!("TOUCH {id}\n").as_bytes());
    b.expect_error(&format!(
        "E_TOUCH_FAILED TOUCH {id} failed client does not own message"
    ));
    a.send_raw(b"FIN short\n");
    assert_eq!(
        a.expect_closed(),
        vec![Frame::Error(Bytes::from_static(
            b"E_INVALID invalid message ID"
        ))]
    );
    // b is still usable after its non-fatal errors.
    b.send(&Command::Nop);
    b.publish("t", b"still alive");
}

#[test]
fn fin_produces_no_frame() {
    let nsqd = Nsqd::start(&[]);
    let mut c = consumer(&nsqd, "t", "c", 10);
    let mut p = nsqd.connect();
    p.publish("t", b"1");
    let m = c.expect_message();
    c.fin(m.id);
    c.send(&Command::Touch(m.id.to_hex()));
    p.publish("t", b"2");
    // FIN sends nothing back: the next two frames are the TOUCH error (the
    // message is no longer in flight) and message "2", in either order since
    // the publish comes from another connection. No response frame appears.
    let touch_err = format!(
        "E_TOUCH_FAILED TOUCH {} failed ID not in flight",
        String::from_utf8_lossy(&m.id.to_hex())
    );
    let mut frames = [c.frame(), c.frame()];
    frames.sort_by_key(|f| matches!(f, Frame::Message(_)));
    assert_eq!(frames[0], Frame::Error(Bytes::from(touch_err)));
    match &frames[1] {
        Frame::Message(m2) => assert_eq!(m2.body.as_ref(), b"2"),
        other => panic!("expected message 2, got {other:?}"),
    }
}

#[test]
fn req_redelivers_with_attempts() {
    let nsqd = Nsqd::start(&["--max-req-timeout=2s"]);
    let mut c = consumer(&nsqd, "t", "c", 1);
    nsqd.connect().publish("t", b"again");
    let m = c.expect_message();
    c.send(&Command::Req {
        id: m.id.to_hex(),
        timeout_ms: 0,
    });
    let m2 = c.expect_message();
    assert_eq!(m2.id, m.id);
    assert_eq!(m2.attempts, 2);
    assert_eq!(m2.timestamp, m.timestamp);

    let sent = Instant::now();
    c.send(&Command::Req {
        id: m2.id.to_hex(),
        timeout_ms: 300,
    });
    wait_until("deferred", || {
        nsqd.channel_stats("t", "c").unwrap()["deferred_count"] == 1
    });
    let m3 = c.expect_message();
    assert!(
        sent.elapsed() >= Duration::from_millis(290),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(m3.attempts, 3);
    // A delay over --max-req-timeout is clamped, not an error.
    c.send(&Command::Req {
        id: m3.id.to_hex(),
        timeout_ms: 3_600_000,
    });
    wait_until("deferred again", || {
        let ch = nsqd.channel_stats("t", "c").unwrap();
        ch["deferred_count"] == 1 && ch["requeue_count"] == 3
    });
    let m4 = c.expect_message();
    assert_eq!(m4.attempts, 4);
}

#[test]
fn message_timeout_redelivers_and_counts() {
    let nsqd = Nsqd::start(&[]);
    let mut c = nsqd.connect();
    c.identify(json!({"msg_timeout": 1000}));
    c.subscribe("t", "c");
    c.rdy(1);
    nsqd.connect().publish("t", b"slow");
    let m = c.expect_message();
    let got = Instant::now();
    let again = c.expect_message();
    assert_eq!(again.id, m.id);
    assert_eq!(again.attempts, 2);
    assert!(got.elapsed() >= Duration::from_millis(900));
    let ch = nsqd.channel_stats("t", "c").unwrap();
    assert_eq!(ch["timeout_count"], 1);
    // The late FIN of the first delivery refers to the redelivered message:
    // same ID, now in flight again, so it succeeds.
    c.fin(again.id);
    wait_until("fin", || {
        nsqd.channel_stats("t", "c").unwrap()["in_flight_count"] == 0
    });
}

#[test]
fn touch_extends_the_deadline() {
    let nsqd = Nsqd::start(&[]);
    let mut c = nsqd.connect();
    c.identify(json!({"msg_timeout": 2000}));
    c.subscribe("t", "c");
    c.rdy(1);
    nsqd.connect().publish("t", b"m");
    let m = c.expect_message();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        c.send(&Command::Touch(m.id.to_hex()));
    }
    // 3 s after delivery with a 2 s timeout, still not redelivered.
    assert_eq!(nsqd.channel_stats("t", "c").unwrap()["timeout_count"], 0);
    c.fin(m.id);
}

#[test]
fn rdy_bounds_in_flight_and_limit_is_fatal() {
    let nsqd = Nsqd::start(&[]);
    let mut c = consumer(&nsqd, "t", "c", 2);
    let mut p = nsqd.connect();
    for i in 0..5 {
        p.publish("t", format!("{i}").as_bytes());
    }
    let a = c.expect_message();
    let b = c.expect_message();
    assert_eq!((&a.body[..], &b.body[..]), (&b"0"[..], &b"1"[..]));
    c.expect_silence(Duration::from_millis(300));
    c.fin(a.id);
    assert_eq!(&c.expect_message().body[..], b"2");
    c.expect_silence(Duration::from_millis(200));
    c.rdy(0);
    c.send_raw(b"RDY 2501\n");
    let frames = c.expect_closed();
    assert_eq!(
        frames.last(),
        Some(&Frame::Error(Bytes::from_static(
            b"E_INVALID RDY count 2501 out of range 0-2500"
        )))
    );
}

#[test]
fn cls_closes_politely() {
    let nsqd = Nsqd::start(&[]);
    let mut c = consumer(&nsqd, "t", "c", 5);
    let mut p = nsqd.connect();
    p.publish("t", b"1");
    let m = c.expect_message();
    c.send(&Command::Cls);
    c.expect_response(b"CLOSE_WAIT");
    p.publish("t", b"2");
    c.send_raw(b"RDY 5\n");
    c.expect_silence(Duration::from_millis(300));
    c.fin(m.id);
    wait_until("fin after CLS", || {
        let ch = nsqd.channel_stats("t", "c").unwrap();
        ch["in_flight_count"] == 0 && ch["clients"][0]["state"] == 4
    });
    // Still open: a NOP and a publish work.
    c.send(&Command::Nop);
    c.publish("other", b"x");
}

#[test]
fn heartbeats_and_liveness() {
    let nsqd = Nsqd::start(&[]);
    let mut c = nsqd.connect();
    c.identify(json!({"heartbeat_interval": 1000}));
    let start = Instant::now();
    let f = c.read_frame_within(Duration::from_secs(3)).unwrap();
    assert!(f.is_heartbeat(), "{f:?}");
    assert!(start.elapsed() >= Duration::from_millis(800));
    c.send(&Command::Nop);
    // Answering keeps the connection alive past two intervals.
    for _ in 0..3 {
        let f = c.read_frame_within(Duration::from_secs(3)).unwrap();
        assert!(f.is_heartbeat());
        c.send(&Command::Nop);
    }
    c.publish("t", b"alive");
    // A silent client is dropped after about two intervals.
    let silent_start = Instant::now();
    let frames = c.expect_closed();
    assert!(frames.iter().all(|f| f.is_heartbeat()));
    let waited = silent_start.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(4),
        "{waited:?}"
    );

    let mut c = nsqd.connect();
    c.identify(json!({"heartbeat_interval": -1}));
    c.send_raw(b"SUB t c\n");
    assert_eq!(
        c.expect_closed(),
        vec![Frame::Error(Bytes::from_static(
            b"E_INVALID cannot SUB with heartbeats disabled"
        ))]
    );
}

#[test]
fn every_channel_gets_every_message() {
    let nsqd = Nsqd::start(&[]);
    let mut a = consumer(&nsqd, "fan", "a", 100);
    let mut b = consumer(&nsqd, "fan", "b", 100);
    let mut p = nsqd.connect();
    p.publish_batch("fan", (0..50).map(|i| Bytes::from(i.to_string())).collect());
    for c in [&mut a, &mut b] {
        let mut got: Vec<String> = (0..50)
            .map(|_| String::from_utf8(c.expect_message().body.to_vec()).unwrap())
            .collect();
        got.sort_by_key(|s| s.parse::<u32>().unwrap());
        assert_eq!(got, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
    }
}

#[test]
fn consumers_of_one_channel_share_its_messages() {
    let nsqd = Nsqd::start(&[]);
    let mut a = consumer(&nsqd, "lb", "c", 1);
    let mut b = consumer(&nsqd, "lb", "c", 1);
    let mut p = nsqd.connect();
    for i in 0..40 {
        p.publish("lb", format!("{i}").as_bytes());
    }
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut from_a, mut from_b) = (0, 0);
    while seen.len() < 40 {
        assert!(
            Instant::now() < deadline,
            "only {} of 40 delivered",
            seen.len()
        );
        for (c, count) in [(&mut a, &mut from_a), (&mut b, &mut from_b)] {
            if let Some(Frame::Message(m)) = c.try_frame(Duration::from_millis(50)) {
                assert!(seen.insert(m.body.clone()), "delivered twice: {:?}", m.body);
                *count += 1;
                c.fin(m.id);
            }
        }
    }
    assert!(from_a > 0 && from_b > 0, "a={from_a} b={from_b}");
}

#[test]
fn topic_without_channel_holds_messages() {
    let nsqd = Nsqd::start(&[]);
    let mut p = nsqd.connect();
    for i in 0..10 {
        p.publish("held", format!("{i}").as_bytes());
    }
    assert_eq!(nsqd.topic_stats("held").unwrap()["depth"], 10);
    let mut c = consumer(&nsqd, "held", "late", 20);
    for _ in 0..10 {
        c.expect_message();
    }
    assert_eq!(nsqd.topic_stats("held").unwrap()["depth"], 0);
}

#[test]
fn deferred_publish_waits() {
    let nsqd = Nsqd::start(&[]);
    let mut c = consumer(&nsqd, "d", "c", 1);
    let mut p = nsqd.connect();
    let sent = Instant::now();
    p.send(&Command::Dpub {
        topic: "d".into(),
        defer_ms: 500,
        body: body("later"),
    });
    p.expect_ok();
    assert_eq!(nsqd.channel_stats("d", "c").unwrap()["deferred_count"], 1);
    let m = c.expect_message();
    assert!(
        sent.elapsed() >= Duration::from_millis(480),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(m.body.as_ref(), b"later");
}

#[test]
fn ephemeral_channel_and_topic_vanish_with_last_consumer() {
    let nsqd = Nsqd::start(&[]);
    let c = consumer(&nsqd, "keep", "tail#ephemeral", 1);
    assert!(nsqd.channel_stats("keep", "tail#ephemeral").is_some());
    drop(c);
    wait_until("ephemeral channel removed", || {
        nsqd.channel_stats("keep", "tail#ephemeral").is_none()
    });
    assert!(nsqd.topic_stats("keep").is_some(), "a normal topic stays");

    let c = consumer(&nsqd, "t#ephemeral", "c", 1);
    drop(c);
    wait_until("durable channel stays", || {
        nsqd.channel_stats("t#ephemeral", "c").is_some()
    });
    let r = nsqd.http("POST", "/channel/delete?topic=t%23ephemeral&channel=c", b"");
    assert_eq!(r.status, 200);

    let c = consumer(&nsqd, "gone#ephemeral", "x#ephemeral", 1);
    drop(c);
    wait_until("ephemeral topic removed", || {
        nsqd.topic_stats("gone#ephemeral").is_none()
    });
}

#[test]
fn paused_channel_and_topic_hold_messages() {
    let nsqd = Nsqd::start(&[]);
    let mut c = consumer(&nsqd, "p", "c", 10);
    assert_eq!(
        nsqd.http("POST", "/channel/pause?topic=p&channel=c", b"")
            .status,
        200
    );
    let mut p = nsqd.connect();
    p.publish("p", b"1");
    c.expect_silence(Duration::from_millis(300));
    assert_eq!(nsqd.channel_stats("p", "c").unwrap()["paused"], true);
    assert_eq!(
        nsqd.http("POST", "/channel/unpause?topic=p&channel=c", b"")
            .status,
        200
    );
    assert_eq!(c.expect_message().body.as_ref(), b"1");

    assert_eq!(nsqd.http("POST", "/topic/pause?topic=p", b"").status, 200);
    p.publish("p", b"2");
    c.expect_silence(Duration::from_millis(300));
    let t = nsqd.topic_stats("p").unwrap();
    assert_eq!(
        (t["paused"].clone(), t["depth"].clone()),
        (json!(true), json!(1))
    );
    assert_eq!(nsqd.http("POST", "/topic/unpause?topic=p", b"").status, 200);
    assert_eq!(c.expect_message().body.as_ref(), b"2");
}

#[test]
fn single_message_arrives_promptly_with_large_rdy() {
    let nsqd = Nsqd::start(&[]);
    let mut c = nsqd.connect();
    c.identify(json!({"output_buffer_timeout": 1000, "output_buffer_size": 65536}));
    c.subscribe("t", "c");
    c.rdy(2500);
    nsqd.connect().publish("t", b"now");
    let start = Instant::now();
    c.read_frame_within(Duration::from_millis(900))
        .expect("message");
    assert!(start.elapsed() < Duration::from_millis(900));
}

#[test]
fn channel_delete_disconnects_consumers() {
    let nsqd = Nsqd::start(&[]);
    let mut c = consumer(&nsqd, "t", "c", 1);
    assert_eq!(
        nsqd.http("POST", "/channel/delete?topic=t&channel=c", b"")
            .status,
        200
    );
    c.expect_closed();
    let mut c = consumer(&nsqd, "t2", "c", 1);
    assert_eq!(nsqd.http("POST", "/topic/delete?topic=t2", b"").status, 200);
    c.expect_closed();
    assert!(nsqd.topic_stats("t2").is_none());
}

#[test]
fn shutdown_on_sigterm_is_clean() {
    let mut nsqd = Nsqd::start(&[]);
    let mut c = consumer(&nsqd, "t", "c", 1);
    let status = nsqd.stop();
    assert!(status.success(), "{status:?}");
    c.expect_closed();
    assert!(!nsqd.log_text().contains("panicked"));
}

#[test]
fn unused_message_id_helper() {
    // MessageId hex parsing is what FIN uses; a non-hex ID is "not in flight".
    assert_eq!(MessageId::from_hex(b"zzzzzzzzzzzzzzzz"), None);
}

/// Pipelined PUBs are stored together but answered one by one, in order,
/// before whatever follows them (here a fatal error), with and without
/// durable acks.
#[test]
fn pipelined_pubs_are_answered_each_and_in_order() {
    for args in [&[][..], &["--sync-every=1"][..]] {
        let nsqd = Nsqd::start(args);
        let mut c = nsqd.connect();
        let mut wire = Vec::new();
        for i in 0..10 {
            wire.extend_from_slice(
                &Command::Pub {
                    topic: if i < 6 { "a" } else { "b" }.into(),
                    body: body(&format!("m{i}")),
                }
                .to_bytes(),
            );
        }
        wire.extend_from_slice(b"PUB bad!topic\n\x00\x00\x00\x01x");
        c.send_raw(&wire);
        for _ in 0..10 {
            c.expect_ok();
        }
        c.expect_error("E_BAD_TOPIC PUB topic name \"bad!topic\" is not valid");
        assert_eq!(
            nsqd.topic_stats("a").unwrap()["message_count"],
            6,
            "{args:?}"
        );
        assert_eq!(
            nsqd.topic_stats("b").unwrap()["message_count"],
            4,
            "{args:?}"
        );
    }
}

/// A run of PUBs to one topic takes a short path through the decoder; any
/// PUB it does not recognise whole (another spelling, another topic, a bad
/// body) goes the general way, with NSQ's answer, and nothing is reordered.
#[test]
fn pub_runs_keep_order_and_errors_whatever_their_spelling() {
    let nsqd = Nsqd::start(&["--max-msg-size=8"]);
    let mut sub = consumer(&nsqd, "a", "ch", 100);
    let mut c = nsqd.connect();
    let mut wire = Vec::new();
    for (line, body) in [
        (&b"PUB a\n"[..], "m0"),
        (b"PUB a\n", "m1"),
        (b"PUB a\r\n", "m2"),
        (b"PUB a\n", "m3"),
        (b"PUB a extra\n", "m4"),
        (b"PUB b\n", "b0"),
        (b"PUB a\n", "m5"),
        (b"PUB a\n", "m6"),
        (b"PUB a\n", "too long!"),
        (b"PUB a\n", "never"),
    ] {
        wire.extend_from_slice(line);
        wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
        wire.extend_from_slice(body.as_bytes());
    }
    c.send_raw(&wire);
    for _ in 0..8 {
        c.expect_ok();
    }
    c.expect_error("E_BAD_MESSAGE PUB message too big 9 > 8");
    c.expect_closed();
    let got: Vec<_> = (0..7)
        .map(|_| String::from_utf8(sub.expect_message().body.to_vec()).unwrap())
        .collect();
    assert_eq!(got, ["m0", "m1", "m2", "m3", "m4", "m5", "m6"]);
    assert_eq!(nsqd.topic_stats("a").unwrap()["message_count"], 7);
    assert_eq!(nsqd.topic_stats("b").unwrap()["message_count"], 1);
}

/// `--max-defer-timeout` (beyond NSQ) bounds DPUB and `/pub?defer=` apart
/// from REQ, with NSQ's error texts; unset, it is `--max-req-timeout`.
#[test]
fn max_defer_timeout_is_its_own_limit() {
    let nsqd = Nsqd::start(&["--max-defer-timeout=10s", "--max-req-timeout=1h"]);
    let mut c = nsqd.connect();
    c.send(&Command::Dpub {
        topic: "t".into(),
        defer_ms: 10_000,
        body: body("ok"),
    });
    c.expect_ok();
    c.send(&Command::Dpub {
        topic: "t".into(),
        defer_ms: 10_001,
        body: body("no"),
    });
    c.expect_error("E_INVALID DPUB timeout 10001 out of range 0-10000");
    assert_eq!(
        nsqd.http("POST", "/pub?topic=t&defer=10000", b"x").status,
        200
    );
    let r = nsqd.http("POST", "/pub?topic=t&defer=10001", b"x");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, r#"{"message":"INVALID_DEFER"}"#)
    );
    // REQ still goes up to --max-req-timeout (longer than 10 s: no clamp log).
    let nsqd = Nsqd::start(&[]);
    let mut c = nsqd.connect();
    c.send(&Command::Dpub {
        topic: "t".into(),
        defer_ms: 3_600_000,
        body: body("an hour"),
    });
    c.expect_ok();
}

/// Large messages go out a few at a time (nsqd encodes about 256 kB into a
/// connection's buffer at once), whether a consumer takes a backlog or is
/// handed a batch while it waits, and every one arrives whole, in order.
#[test]
fn large_messages_arrive_whole_and_in_order_a_few_at_a_time() {
    let nsqd = Nsqd::start(&[]);
    let bodies: Vec<Bytes> = (0..12u8)
        .map(|i| Bytes::from(vec![b'a' + i; 300_000]))
        .collect();
    let mut p = nsqd.connect();
    let mpub = |p: &mut Conn| {
        p.publish_batch("big", bodies.clone());
    };
    let receive_all = |c: &mut Conn| {
        for want in &bodies {
            let m = c.expect_message();
            assert_eq!((m.body.len(), m.body[0]), (want.len(), want[0]));
            assert!(m.body == want, "body {} changed", want[0] as char);
            c.fin(m.id);
        }
    };
    // A backlog, then a consumer whose RDY covers all of it.
    let mut c = nsqd.connect();
    c.subscribe("big", "ch");
    mpub(&mut p);
    c.rdy(12);
    receive_all(&mut c);
    // The consumer waits first, then all twelve are handed to it at once.
    wait_until("the consumer waits", || {
        let ch = nsqd.channel_stats("big", "ch").unwrap();
        ch["in_flight_count"] == 0 && ch["depth"] == 0
    });
    mpub(&mut p);
    receive_all(&mut c);
    wait_until("all finished", || {
        nsqd.channel_stats("big", "ch").unwrap()["clients"][0]["finish_count"] == 24
    });
}
