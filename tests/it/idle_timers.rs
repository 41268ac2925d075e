//! In-flight and deferred timers: run when due, however they were set,
//! and nothing at all while nothing is due, however many channels exist.

use crate::support;

use nsq::protocol::{Command, Frame};
use serde_json::json;
use std::time::Duration;
use support::{consumer, wait_until, Conn, Nsqd};

/// Voluntary context switches of all of nsqd's threads: each time one of
/// them woke up from waiting.
fn wakeups(nsqd: &Nsqd) -> u64 {
    let tasks = format!("/proc/{}/task", nsqd.pid());
    std::fs::read_dir(tasks)
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

/// 200 topics with a channel each, a message in flight and one deferred
/// far ahead: nsqd sleeps. (It used to visit every channel every 50 ms,
/// about 40 wakeups in this window.)
#[test]
fn an_idle_nsqd_does_not_wake_up() {
    let nsqd = Nsqd::start(&["--sync-timeout=1h"]);
    for t in 0..200 {
        let r = nsqd.http("POST", &format!("/topic/create?topic=idle{t}"), b"");
        assert_eq!(r.status, 200);
        let r = nsqd.http(
            "POST",
            &format!("/channel/create?topic=idle{t}&channel=c"),
            b"",
        );
        assert_eq!(r.status, 200);
    }
    let mut c = consumer(&nsqd, "idle0", "c", 1);
    nsqd.http("POST", "/pub?topic=idle0", b"held");
    c.expect_message();
    nsqd.http("POST", "/pub?topic=idle1&defer=3600000", b"later");
    wait_until("one in flight, one deferred", || {
        let held = nsqd.channel_stats("idle0", "c").unwrap()["in_flight_count"] == 1;
        held && nsqd.channel_stats("idle1", "c").unwrap()["deferred_count"] == 1
    });
    // Let the last request's connection wind down, then watch.
    let mut before = wakeups(&nsqd);
    wait_until("quiet", || {
        std::thread::sleep(Duration::from_millis(200));
        let now = wakeups(&nsqd);
        let quiet = now - before < 10;
        before = now;
        quiet
    });
    std::thread::sleep(Duration::from_secs(2));
    let woke = wakeups(&nsqd) - before;
    assert!(woke < 20, "{woke} wakeups in 2 s of idleness");
}

fn identify_timeout(c: &mut Conn, ms: u64) {
    assert!(matches!(
        c.identify(json!({"msg_timeout": ms})),
        Frame::Response(_)
    ));
}

/// A consumer whose message timeout is shorter than the deadlines the
/// channel already has gets its messages back on time.
#[test]
fn an_earlier_deadline_than_any_is_kept() {
    let nsqd = Nsqd::start(&[]);
    let mut slow = nsqd.connect();
    slow.subscribe("t", "c");
    slow.rdy(1);
    nsqd.http("POST", "/pub?topic=t", b"one");
    slow.expect_message(); // due in 60 s
    let mut quick = nsqd.connect();
    identify_timeout(&mut quick, 1000);
    quick.subscribe("t", "c");
    quick.rdy(1);
    nsqd.http("POST", "/pub?topic=t", b"two");
    let m = quick.expect_message();
    assert_eq!(&m.body[..], b"two");
    // Due in 1 s, not at the 60 s of the first.
    let m = quick.expect_message();
    assert_eq!((&m.body[..], m.attempts), (&b"two"[..], 2));
    assert_eq!(nsqd.channel_stats("t", "c").unwrap()["timeout_count"], 1);
}

/// Messages handed to a waiting consumer (it asked when the channel was
/// empty) time out too.
#[test]
fn handed_messages_time_out() {
    let nsqd = Nsqd::start(&[]);
    let mut c = nsqd.connect();
    identify_timeout(&mut c, 1000);
    c.subscribe("t", "c");
    c.rdy(1);
    wait_until("the consumer waiting", || {
        nsqd.channel_stats("t", "c").unwrap()["client_count"] == 1
    });
    nsqd.http("POST", "/pub?topic=t", b"handed");
    let m = c.expect_message();
    assert_eq!(m.attempts, 1);
    let m = c.expect_message();
    assert_eq!(m.attempts, 2, "redelivered after its timeout");
}

#[test]
fn req_with_a_delay_comes_back() {
    let nsqd = Nsqd::start(&[]);
    let mut c = consumer(&nsqd, "t", "c", 1);
    nsqd.http("POST", "/pub?topic=t", b"again");
    let m = c.expect_message();
    c.send(&Command::Req {
        id: m.id.to_hex(),
        timeout_ms: 300,
    });
    let again = c.expect_message();
    assert_eq!((again.id, again.attempts), (m.id, 2));
}

/// A deferred publish the topic holds (no channel yet, or paused) is
/// deferred when it reaches the channel, and delivered when due.
#[test]
fn deferred_messages_the_topic_held_come_when_due() {
    let nsqd = Nsqd::start(&[]);
    // No channel: the topic keeps it.
    let r = nsqd.http("POST", "/pub?topic=early&defer=300", b"no channel yet");
    assert_eq!(r.status, 200);
    let mut c = consumer(&nsqd, "early", "c", 1);
    let m = c.expect_message();
    assert_eq!(&m.body[..], b"no channel yet");

    // Paused: the topic keeps it until unpaused.
    nsqd.http("POST", "/topic/create?topic=paused", b"");
    nsqd.http("POST", "/channel/create?topic=paused&channel=c", b"");
    nsqd.http("POST", "/topic/pause?topic=paused", b"");
    let mut p = nsqd.connect();
    p.send(&Command::Dpub {
        topic: "paused".into(),
        defer_ms: 300,
        body: bytes::Bytes::from_static(b"was paused"),
    });
    p.expect_ok();
    let mut c = consumer(&nsqd, "paused", "c", 1);
    c.expect_silence(Duration::from_millis(400));
    nsqd.http("POST", "/topic/unpause?topic=paused", b"");
    let m = c.expect_message();
    assert_eq!(&m.body[..], b"was paused");
    assert_eq!(
        nsqd.channel_stats("paused", "c").unwrap()["deferred_count"],
        0
    );
}
