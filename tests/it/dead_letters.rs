//! Dead letters (beyond NSQ): a channel's maximum of attempts, after which
//! a message moves, with its ID, timestamp, attempts and body, to a
//! dead-letter topic and is finished in its channel.

use crate::support::{self, consumer, wait_until, Nsqd};
use nsq::protocol::{Command, Message};
use std::time::Duration;

fn req(c: &mut support::Conn, m: &Message) {
    c.send(&Command::Req {
        id: m.id.to_hex(),
        timeout_ms: 0,
    });
}

#[test]
fn requeues_and_timeouts_count_then_the_message_moves() {
    let nsqd = Nsqd::start(&["--max-attempts=2"]);
    let mut p = nsqd.connect();
    nsqd.http("POST", "/topic/create?topic=jobs", b"");
    nsqd.http("POST", "/channel/create?topic=jobs&channel=w", b"");
    p.publish("jobs", b"poison");
    let mut c = consumer(&nsqd, "jobs", "w", 1);
    let first = c.expect_message();
    assert_eq!(first.attempts, 1);
    req(&mut c, &first);
    let second = c.expect_message();
    assert_eq!((second.id, second.attempts), (first.id, 2));
    req(&mut c, &second);
    // No third delivery: it moves to jobs.dead-letter, identity kept.
    c.expect_silence(Duration::from_millis(200));
    let mut dead = consumer(&nsqd, "jobs.dead-letter", "inspect", 1);
    let m = dead.expect_message();
    assert_eq!(
        (m.id, m.timestamp, m.body.as_ref()),
        (first.id, first.timestamp, &b"poison"[..])
    );
    assert_eq!(m.attempts, 3, "2 attempts there, + this delivery");
    dead.fin(m.id);
    wait_until("finished in its channel", || {
        nsqd.channel_stats("jobs", "w").is_some_and(|ch| {
            ch["depth"] == 0
                && ch["in_flight_count"] == 0
                && ch["dead_letter_count"] == 1
                && ch["max_attempts"] == 2
                && ch["dead_letter_topic"] == "jobs.dead-letter"
        })
    });
    let metrics = nsqd.http("GET", "/metrics", b"").text();
    assert!(
        metrics.contains(r#"nsq_channel_dead_letter_total{topic="jobs",channel="w"} 1"#),
        "{metrics}"
    );

    // A timeout is an attempt too (the first consumer gone, so that the
    // message goes to this one).
    drop(c);
    wait_until("the first consumer left", || {
        nsqd.channel_stats("jobs", "w")
            .is_some_and(|ch| ch["client_count"] == 0)
    });
    p.publish("jobs", b"slow");
    let mut c = nsqd.connect();
    c.identify(serde_json::json!({"msg_timeout": 1000}));
    c.subscribe("jobs", "w");
    c.rdy(1);
    let a = c.expect_message();
    let b = c.expect_message(); // redelivered after its 1 s timeout
    assert_eq!((b.id, b.attempts), (a.id, 2));
    let m = dead.expect_message();
    assert_eq!((m.id, m.body.as_ref()), (a.id, &b"slow"[..]));
}

#[test]
fn without_a_limit_nothing_changes() {
    let nsqd = Nsqd::start(&[]);
    nsqd.connect().publish("t", b"x");
    let mut c = consumer(&nsqd, "t", "c", 1);
    for attempt in 1..=5 {
        let m = c.expect_message();
        assert_eq!(m.attempts, attempt);
        req(&mut c, &m);
    }
    // NSQ's /stats shape: no dead-letter keys.
    let ch = nsqd.channel_stats("t", "c").unwrap();
    assert!(ch.get("max_attempts").is_none() && ch.get("dead_letter_count").is_none());
}

#[test]
fn per_channel_settings_over_http_persist_in_nsqd_dat() {
    let mut nsqd = Nsqd::start(&[]);
    nsqd.http("POST", "/topic/create?topic=t", b"");
    nsqd.http("POST", "/channel/create?topic=t&channel=c", b"");
    for (path, status, text) in [
        (
            "/channel/config?topic=t&channel=c&max_attempts=x",
            400,
            r#"{"message":"INVALID_MAX_ATTEMPTS"}"#,
        ),
        (
            "/channel/config?topic=t&channel=c&dead_letter_topic=bad!",
            400,
            r#"{"message":"INVALID_DEAD_LETTER_TOPIC"}"#,
        ),
        (
            "/channel/config?topic=t&channel=nope&max_attempts=1",
            404,
            r#"{"message":"CHANNEL_NOT_FOUND"}"#,
        ),
        (
            "/channel/config?channel=c",
            400,
            r#"{"message":"MISSING_ARG_TOPIC"}"#,
        ),
        (
            "/channel/config?topic=t&channel=c&max_attempts=1&dead_letter_topic=graveyard",
            200,
            "",
        ),
    ] {
        let r = nsqd.http("POST", path, b"");
        assert_eq!((r.status, r.text().as_str()), (status, text), "{path}");
    }
    // nsqd.dat is written in the background, soon after the change.
    let dat_path = nsqd.data.path().join("nsqd.dat");
    wait_until("nsqd.dat to hold the channel's settings", || {
        std::fs::read_to_string(&dat_path).is_ok_and(|dat| {
            dat.contains(
                r#"{"name":"c","paused":false,"max_attempts":1,"dead_letter_topic":"graveyard"}"#,
            )
        })
    });
    assert!(nsqd.stop().success());
    let nsqd = Nsqd::start_in(nsqd.into_data(), &[]);
    let ch = nsqd.channel_stats("t", "c").unwrap();
    assert_eq!(
        (ch["max_attempts"].clone(), ch["dead_letter_topic"].clone()),
        (1.into(), "graveyard".into())
    );
    nsqd.connect().publish("t", b"once");
    let mut c = consumer(&nsqd, "t", "c", 1);
    let m = c.expect_message();
    req(&mut c, &m);
    let mut g = consumer(&nsqd, "graveyard", "g", 1);
    assert_eq!(g.expect_message().id, m.id);
}
