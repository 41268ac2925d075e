//! Disk persistence end to end: restarts on the same data directory, crashes
//! (SIGKILL), damaged files, data directories written by hand in NSQ's
//! format, and a full disk. The files are checked against NSQ's formats
//! (go-diskqueue's segments and metadata, `nsqd.dat`), parsed strictly by
//! `support::formats`; every test drives the real binary over real sockets
//! and then looks at the files it left.

use crate::support;

use bytes::{Bytes, BytesMut};
use nsq::protocol::message::now_nanos;
use nsq::protocol::{Command, Frame, FrameDecoder, Message, MAGIC_V2};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::formats::*;
use support::{consumer, run_binary_within, wait_until, Conn, Nsqd, DEADLINE};
use tokio_util::codec::Decoder;

// ---------------------------------------------------------------------------
// nsqd helpers

/// An HTTP call that must answer 200.
fn http_ok(nsqd: &Nsqd, method: &str, path: &str) {
    let r = nsqd.http(method, path, b"");
    assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
}

/// Topic and channel via HTTP. `/channel/create` never creates the topic
/// (404 TOPIC_NOT_FOUND, reference 4.4), so the topic comes first.
fn create_channel(nsqd: &Nsqd, topic: &str, channel: &str) {
    http_ok(nsqd, "POST", &format!("/topic/create?topic={topic}"));
    http_ok(
        nsqd,
        "POST",
        &format!("/channel/create?topic={topic}&channel={channel}"),
    );
}

/// SIGTERM and insist on a clean exit: everything below relies on the
/// shutdown flush having happened.
fn stop_cleanly(nsqd: &mut Nsqd) {
    let status = nsqd.stop();
    assert!(
        status.success(),
        "nsqd exited with {status:?}; log:\n{}",
        nsqd.log_text()
    );
}

/// A new nsqd on the data directory of a stopped (or killed) one.
fn restart(nsqd: Nsqd, args: &[&str]) -> Nsqd {
    Nsqd::start_in(nsqd.into_data(), args)
}

fn channel_depth(nsqd: &Nsqd, topic: &str, channel: &str) -> Option<i64> {
    nsqd.channel_stats(topic, channel)?["depth"].as_i64()
}

fn topic_depth(nsqd: &Nsqd, topic: &str) -> Option<i64> {
    nsqd.topic_stats(topic)?["depth"].as_i64()
}

/// Nothing left anywhere on the way to this channel: topic and channel queues
/// empty, nothing in flight, nothing deferred.
fn drained(nsqd: &Nsqd, topic: &str, channel: &str) -> bool {
    let Some(ch) = nsqd.channel_stats(topic, channel) else {
        return false;
    };
    ch["depth"] == 0
        && ch["in_flight_count"] == 0
        && ch["deferred_count"] == 0
        && topic_depth(nsqd, topic) == Some(0)
}

/// Publish `count` distinct bodies of exactly `size` bytes in one MPUB.
fn publish_numbered(nsqd: &Nsqd, topic: &str, count: usize, size: usize) -> Vec<Bytes> {
    let bodies: Vec<Bytes> = (0..count)
        .map(|i| {
            let mut b = format!("msg-{i:05}-").into_bytes();
            assert!(b.len() <= size);
            b.resize(size, b'.');
            Bytes::from(b)
        })
        .collect();
    let mut p = nsqd.connect();
    p.publish_batch(topic, bodies.clone());
    bodies
}

/// Receive on `c`, FIN every message, until `done(received so far)` holds at
/// a moment when nothing arrived for 50 ms, or the deadline passes. Callers
/// assert on what they got, so a timeout fails with a precise message there.
fn consume_for(c: &mut Conn, mut done: impl FnMut(&[Message]) -> bool) -> Vec<Message> {
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        match c.try_frame(Duration::from_millis(50)) {
            Some(Frame::Message(m)) => {
                c.fin(m.id);
                got.push(m);
            }
            Some(other) => panic!("unexpected frame while consuming: {other:?}"),
            None => {
                if done(&got) {
                    break;
                }
            }
        }
    }
    got
}

fn bodies_of(msgs: &[Message]) -> HashSet<Bytes> {
    msgs.iter().map(|m| m.body.clone()).collect()
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn restart_keeps_everything() {
    const TOTAL: usize = 5000;
    // A small memory queue: most messages go through the disk queues.
    let args = ["--mem-queue-size=10"];
    let mut nsqd = Nsqd::start(&args);
    create_channel(&nsqd, "t", "ch");
    let bodies: Vec<Bytes> = (0..TOTAL)
        .map(|i| Bytes::from(format!("body-{i:05}")))
        .collect();
    let mut p = nsqd.connect();
    for batch in bodies.chunks(100) {
        p.publish_batch("t", batch.to_vec());
    }

    // 100 messages in flight and never finished; 5 of them requeued for a
    // minute (deferred), which frees 5 slots that 5 more messages then fill.
    let mut c = consumer(&nsqd, "t", "ch", 100);
    let mut before: HashMap<Bytes, Message> = HashMap::new();
    for _ in 0..100 {
        let m = c.expect_message();
        before.insert(m.body.clone(), m);
    }
    let deferred: Vec<Message> = before.values().take(5).cloned().collect();
    for m in &deferred {
        c.send(&Command::Req {
            id: m.id.to_hex(),
            timeout_ms: 60_000,
        });
    }
    for _ in 0..5 {
        let m = c.expect_message();
        before.insert(m.body.clone(), m);
    }
    assert_eq!(before.len(), 105, "a message was delivered twice");
    wait_until("100 in flight and 5 deferred", || {
        let ch = nsqd.channel_stats("t", "ch").unwrap();
        ch["in_flight_count"] == 100 && ch["deferred_count"] == 5
    });
    stop_cleanly(&mut nsqd);
    drop((c, p));

    let nsqd = restart(nsqd, &args);
    // In-flight messages were written back to the channel's queue at
    // shutdown (reference 2.11); the deferred ones keep their due time, a
    // minute away (NSQ would deliver them at once: a documented difference).
    wait_until("every message queued or deferred again", || {
        nsqd.channel_stats("t", "ch")
            .is_some_and(|ch| ch["depth"] == (TOTAL - 5) as i64 && ch["deferred_count"] == 5)
            && topic_depth(&nsqd, "t") == Some(0)
    });
    let mut c = consumer(&nsqd, "t", "ch", 100);
    let got = consume_for(&mut c, |_| drained_but_deferred(&nsqd, "t", "ch", 5));
    let received = bodies_of(&got);
    // A clean shutdown writes each message back exactly once.
    assert_eq!(
        got.len(),
        received.len(),
        "duplicates after a clean restart"
    );
    let deferred_bodies: HashSet<Bytes> = deferred.iter().map(|m| m.body.clone()).collect();
    let expected: HashSet<Bytes> = bodies
        .iter()
        .filter(|b| !deferred_bodies.contains(*b))
        .cloned()
        .collect();
    assert_eq!(
        received,
        expected,
        "received {} distinct of {}",
        received.len(),
        TOTAL - 5
    );
    // Messages keep ID, timestamp and attempts across the restart, with
    // attempts = 1 (stored) + 1 for this delivery.
    for m in &got {
        match before.get(&m.body) {
            Some(old) => {
                assert_eq!((m.id, m.timestamp), (old.id, old.timestamp), "{m:?}");
                assert_eq!(m.attempts, 2, "delivered once before the restart: {m:?}");
            }
            None => assert_eq!(m.attempts, 1, "never delivered before: {m:?}"),
        }
    }
}

/// Everything delivered and finished except `deferred` messages waiting.
fn drained_but_deferred(nsqd: &Nsqd, topic: &str, channel: &str, deferred: i64) -> bool {
    let Some(ch) = nsqd.channel_stats(topic, channel) else {
        return false;
    };
    ch["depth"] == 0
        && ch["in_flight_count"] == 0
        && ch["deferred_count"] == deferred
        && topic_depth(nsqd, topic) == Some(0)
}

#[test]
fn topology_survives_restart() {
    let mut nsqd = Nsqd::start(&[]);
    let dir = nsqd.data.path().to_path_buf();
    // Written at startup; no topics is `null`, not `[]` (reference 3.2).
    wait_for_nsqd_dat(&dir, &[]);
    assert_eq!(
        fs::read_to_string(dir.join("nsqd.dat")).unwrap(),
        r#"{"topics":null,"version":"1.3.0"}"#
    );

    create_channel(&nsqd, "orders", "billing");
    create_channel(&nsqd, "orders", "audit");
    create_channel(&nsqd, "orders", "tail%23ephemeral");
    http_ok(&nsqd, "POST", "/topic/create?topic=empty_topic");
    create_channel(&nsqd, "frozen", "c");
    create_channel(&nsqd, "gone%23ephemeral", "x");
    http_ok(&nsqd, "POST", "/channel/pause?topic=orders&channel=billing");
    http_ok(&nsqd, "POST", "/topic/pause?topic=frozen");

    // Ephemeral topics and channels are never written (reference 2.4).
    let mut expected = vec![
        topic_meta(
            "orders",
            false,
            Some(&[("audit", false), ("billing", true)]),
        ),
        topic_meta("empty_topic", false, None),
        topic_meta("frozen", true, Some(&[("c", false)])),
    ];
    expected.sort();
    wait_for_nsqd_dat(&dir, &expected);

    stop_cleanly(&mut nsqd);
    assert_eq!(
        read_nsqd_dat(&dir),
        expected,
        "nsqd.dat written at shutdown"
    );
    let tmp: Vec<String> = file_names(&dir)
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(tmp.is_empty(), "temporary files left behind: {tmp:?}");

    let nsqd = restart(nsqd, &[]);
    assert_eq!(stats_topology(&nsqd), expected, "topology after restart");
    // Rewritten at startup, same content.
    assert_eq!(read_nsqd_dat(&dir), expected);
    // The pause flags are in force, not just reported: a paused topic keeps
    // what is published, and nothing reaches its channel.
    nsqd.connect().publish("frozen", b"held");
    assert_eq!(topic_depth(&nsqd, "frozen"), Some(1));
    assert_eq!(channel_depth(&nsqd, "frozen", "c"), Some(0));
}

/// One producer: sends `window` PUBs back to back, then reads their
/// responses (they come in command order), until the connection fails.
/// Returns every body sent (possibly stored) and the bodies acknowledged OK.
fn pipelined_producer(
    addr: SocketAddr,
    id: usize,
    window: usize,
    acked_total: &AtomicUsize,
) -> (Vec<Bytes>, Vec<Bytes>) {
    // A safety cap, far above what the test needs, so a producer stops even
    // if nsqd is never killed.
    const CAP: usize = 200_000;
    let (mut sent, mut acked) = (Vec::new(), Vec::new());
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (sent, acked);
    };
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    if s.write_all(MAGIC_V2).is_err() {
        return (sent, acked);
    }
    let mut decoder = FrameDecoder::default();
    let mut buf = BytesMut::new();
    // The next non-heartbeat frame, or None on EOF / error.
    let mut next_frame = |s: &mut TcpStream| loop {
        match decoder.decode(&mut buf) {
            Ok(Some(f)) if f.is_heartbeat() => continue,
            Ok(Some(f)) => return Some(f),
            Ok(None) => {}
            Err(_) => return None,
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    'run: while sent.len() < CAP {
        let bodies: Vec<Bytes> = (0..window)
            .map(|k| Bytes::from(format!("p{id}-{:07}", sent.len() + k)))
            .collect();
        let mut wire = Vec::new();
        for b in &bodies {
            let cmd = Command::Pub {
                topic: "t".into(),
                body: b.clone(),
            };
            wire.extend_from_slice(&cmd.to_bytes());
        }
        sent.extend(bodies.iter().cloned());
        if s.write_all(&wire).is_err() {
            break;
        }
        for b in &bodies {
            match next_frame(&mut s) {
                Some(Frame::Response(r)) if r.as_ref() == b"OK" => {
                    acked.push(b.clone());
                    acked_total.fetch_add(1, Ordering::SeqCst);
                }
                _ => break 'run,
            }
        }
    }
    (sent, acked)
}

#[test]
fn kill9_loses_no_acknowledged_message() {
    // Go's single-dash spelling, as NSQ's own scripts pass it.
    let args = ["-mem-queue-size=0", "-sync-every=1"];
    let nsqd = Nsqd::start(&args);
    create_channel(&nsqd, "t", "ch");
    let acked_total = Arc::new(AtomicUsize::new(0));
    let producers: Vec<_> = (0..4)
        .map(|id| {
            let (addr, total) = (nsqd.tcp, acked_total.clone());
            std::thread::spawn(move || pipelined_producer(addr, id, 16, &total))
        })
        .collect();
    wait_until("2000 acknowledged publishes", || {
        acked_total.load(Ordering::SeqCst) >= 2000
    });
    support::signal(nsqd.pid(), "KILL");
    let (mut sent, mut acked) = (HashSet::new(), HashSet::new());
    for p in producers {
        let (s, a) = p.join().expect("producer thread");
        assert!(
            s.len() < 200_000,
            "a producer ran to its cap: never killed?"
        );
        sent.extend(s);
        acked.extend(a);
    }

    let nsqd = restart(nsqd, &args);
    let mut c = consumer(&nsqd, "t", "ch", 200);
    let got = consume_for(&mut c, |got| acked.is_subset(&bodies_of(got)));
    let received = bodies_of(&got);
    let lost: Vec<&Bytes> = acked.difference(&received).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    // Extras are fine (at-least-once), but only ones that were really sent.
    let invented: Vec<&Bytes> = received.difference(&sent).collect();
    assert!(invented.is_empty(), "never published: {invented:?}");
}

#[test]
fn consumed_segments_are_removed_from_disk() {
    // 130-byte records, 15 per 2000-byte file: 60 messages fill 4 files.
    let args = ["--mem-queue-size=0", "--max-bytes-per-file=2000"];
    let nsqd = Nsqd::start(&args);
    create_channel(&nsqd, "t", "ch");
    let bodies = publish_numbered(&nsqd, "t", 60, 100);
    let dir = nsqd.data.path().to_path_buf();
    wait_until("the channel's queue spans several files", || {
        segments(&dir, "t:ch").len() >= 4
    });
    let mut c = consumer(&nsqd, "t", "ch", 100);
    let got = consume_for(&mut c, |got| {
        got.len() >= bodies.len() && drained(&nsqd, "t", "ch")
    });
    assert_eq!(bodies_of(&got), bodies.into_iter().collect());
    // Read and finished: the files go (renamed, then removed once the
    // channel's lock is let go), leaving at most the one being written.
    wait_until("consumed segments removed", || {
        let names = file_names(&dir);
        segments(&dir, "t:ch").len() <= 1 && !names.iter().any(|n| n.ends_with(".deleting"))
    });
}

#[test]
fn corrupt_segment_is_moved_aside() {
    // 100-byte bodies make 130-byte records: 15 per 2000-byte file, so the
    // 60 messages fill 4 files.
    let args = ["--mem-queue-size=0", "--max-bytes-per-file=2000"];
    let mut nsqd = Nsqd::start(&args);
    create_channel(&nsqd, "t", "ch");
    let bodies = publish_numbered(&nsqd, "t", 60, 100);
    wait_until("all messages in the channel's queue", || {
        channel_depth(&nsqd, "t", "ch") == Some(60) && topic_depth(&nsqd, "t") == Some(0)
    });
    stop_cleanly(&mut nsqd);

    let dir = nsqd.data.path().to_path_buf();
    let files = segments(&dir, "t:ch");
    assert!(files.len() >= 4, "expected several data files: {files:?}");
    let records: Vec<Vec<Record>> = files
        .iter()
        .map(|f| parse_records(&fs::read(f).unwrap()))
        .collect();
    // File 0: the third record's length becomes 0xFFFFFFFF (-1), out of
    // range, so no later record boundary can be trusted.
    let mut damaged0 = fs::read(&files[0]).unwrap();
    let at: usize = records[0][..2].iter().map(Record::size).sum();
    damaged0[at..at + 4].copy_from_slice(&[0xff; 4]);
    fs::write(&files[0], &damaged0).unwrap();
    // File 1 (not the last file): cut in the middle of its third record.
    let mut damaged1 = fs::read(&files[1]).unwrap();
    let at: usize = records[1][..2].iter().map(Record::size).sum::<usize>() + 10;
    damaged1.truncate(at);
    fs::write(&files[1], &damaged1).unwrap();

    let nsqd = restart(nsqd, &args);
    let intact: HashSet<Bytes> = records[2..]
        .iter()
        .flatten()
        .map(|r| Bytes::from(r.body.clone()))
        .collect();
    let mut c = consumer(&nsqd, "t", "ch", 100);
    let got = consume_for(&mut c, |got| {
        intact.is_subset(&bodies_of(got)) && drained(&nsqd, "t", "ch")
    });
    let received = bodies_of(&got);
    let missing: Vec<&Bytes> = intact.difference(&received).collect();
    assert!(missing.is_empty(), "lost from intact files: {missing:?}");
    assert_eq!(got.len(), received.len(), "duplicates");
    let published: HashSet<Bytes> = bodies.into_iter().collect();
    assert!(received.is_subset(&published), "garbage delivered");

    // Both damaged files are set aside untouched, not deleted.
    for (file, content) in [(&files[0], &damaged0), (&files[1], &damaged1)] {
        let bad = PathBuf::from(format!("{}.bad", file.display()));
        assert_eq!(
            fs::read(&bad).ok().as_ref(),
            Some(content),
            "{} should hold the damaged file; dir: {:?}",
            bad.display(),
            file_names(&dir)
        );
        assert!(!file.exists(), "{} still in place", file.display());
        let name = file.file_name().unwrap().to_str().unwrap();
        // The log is collected by another thread: wait for the line.
        support::wait_until(
            &format!("an error or warning about {name} in the log"),
            || {
                nsqd.log_text().lines().any(|l| {
                    l.contains(name) && (l.contains(" ERROR: ") || l.contains(" WARNING: "))
                })
            },
        );
    }
    // Depth does not stay stuck at the lost records' count.
    assert!(
        drained(&nsqd, "t", "ch"),
        "{:?}",
        nsqd.channel_stats("t", "ch")
    );
    let r = nsqd.http("GET", "/ping", b"");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
}

#[test]
fn corrupt_meta_file() {
    let args = ["--mem-queue-size=0", "--max-bytes-per-file=2000"];
    let mut nsqd = Nsqd::start(&args);
    create_channel(&nsqd, "t", "ch");
    let bodies = publish_numbered(&nsqd, "t", 60, 100);
    wait_until("all messages in the channel's queue", || {
        channel_depth(&nsqd, "t", "ch") == Some(60)
    });
    // Finish the first 20, so the read position is no longer at the start
    // (and the first data file is probably gone).
    let mut c = consumer(&nsqd, "t", "ch", 20);
    let first: Vec<Message> = (0..20).map(|_| c.expect_message()).collect();
    c.rdy(0); // otherwise each FIN frees a slot for another delivery
    for m in &first {
        c.fin(m.id);
    }
    wait_until("first 20 finished", || {
        nsqd.channel_stats("t", "ch").unwrap()["in_flight_count"] == 0
    });
    drop(c);
    stop_cleanly(&mut nsqd);

    let dir = nsqd.data.path().to_path_buf();
    let meta = meta_path(&dir, "t:ch");
    assert!(meta.exists(), "no meta file: {:?}", file_names(&dir));
    let garbage = b"\x00\xffthis is not a diskqueue meta file\n-7,x\n";
    fs::write(&meta, garbage).unwrap();

    let nsqd = restart(nsqd, &args);
    let remaining: HashSet<Bytes> = bodies
        .iter()
        .filter(|b| !first.iter().any(|m| m.body == **b))
        .cloned()
        .collect();
    assert_eq!(remaining.len(), 40);
    let mut c = consumer(&nsqd, "t", "ch", 100);
    let got = consume_for(&mut c, |got| {
        remaining.is_subset(&bodies_of(got)) && drained(&nsqd, "t", "ch")
    });
    let received = bodies_of(&got);
    let missing: Vec<&Bytes> = remaining.difference(&received).collect();
    assert!(missing.is_empty(), "unfinished messages lost: {missing:?}");
    // Redelivery of already finished ones is allowed (the read position was
    // lost with the meta file), invention is not.
    let published: HashSet<Bytes> = bodies.into_iter().collect();
    assert!(received.is_subset(&published), "garbage delivered");
    assert!(
        drained(&nsqd, "t", "ch"),
        "{:?}",
        nsqd.channel_stats("t", "ch")
    );

    // The unreadable meta file is kept for inspection.
    let kept: Vec<String> = file_names(&dir)
        .into_iter()
        .filter(|n| n.starts_with("t:ch.diskqueue.meta.dat") && n.ends_with(".bad"))
        .collect();
    assert_eq!(kept.len(), 1, "files: {:?}", file_names(&dir));
    assert_eq!(fs::read(dir.join(&kept[0])).unwrap(), garbage);
}

#[test]
fn reads_nsq_format_data_dir() {
    // A data directory as NSQ v1.3 leaves it, written by hand.
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_path_buf();
    fs::write(
        dir.join("nsqd.dat"),
        r#"{"topics":[{"name":"legacy","paused":false,"channels":[{"name":"c1","paused":false}]},{"name":"legacy_topic","paused":false,"channels":null}],"version":"1.3.0"}"#,
    )
    .unwrap();

    // Channel legacy/c1: file 0 holds one record already read (before the
    // read position) and two unread ones; file 1 holds one more.
    let consumed = Record::new("0b9f2a1c3d4e5f60", 1_700_000_000_000_000_000, 1, b"read");
    let c1 = [
        Record::new("0b9f2a1c3d4e5f61", 1_700_000_000_100_000_001, 0, b"first"),
        Record::new(
            "0b9f2a1c3d4e5f62",
            1_700_000_000_200_000_002,
            3,
            b"second\nwith\0binary\xff",
        ),
        Record::new(
            "0b9f2a1c3d4e5f63",
            1_700_000_000_300_000_003,
            0,
            b"third, in the next file",
        ),
    ];
    let file0 = [consumed.encode(), c1[0].encode(), c1[1].encode()].concat();
    let file1 = c1[2].encode();
    fs::write(segment(&dir, "legacy:c1", 0), &file0).unwrap();
    fs::write(segment(&dir, "legacy:c1", 1), &file1).unwrap();
    fs::write(
        meta_path(&dir, "legacy:c1"),
        format!("3\n0,{}\n1,{}\n", consumed.size(), file1.len()),
    )
    .unwrap();

    // Topic legacy_topic, no channel yet: two records in its own queue.
    let topic_records = [
        Record::new("0c0000000000a001", 1_710_000_000_000_000_000, 0, b"t-one"),
        Record::new("0c0000000000a002", 1_710_000_000_000_000_500, 2, b"t-two"),
    ];
    let tfile = [topic_records[0].encode(), topic_records[1].encode()].concat();
    fs::write(segment(&dir, "legacy_topic", 0), &tfile).unwrap();
    fs::write(
        meta_path(&dir, "legacy_topic"),
        format!("2\n0,0\n0,{}\n", tfile.len()),
    )
    .unwrap();

    let nsqd = Nsqd::start_in(data, &[]);
    wait_until("legacy/c1 depth 3 and legacy_topic depth 2", || {
        channel_depth(&nsqd, "legacy", "c1") == Some(3)
            && topic_depth(&nsqd, "legacy_topic") == Some(2)
    });

    // What a consumer must see: the stored ID, timestamp and body, attempts
    // one more than stored (nsqd counts this delivery).
    let expect = |records: &[Record]| -> Vec<(String, i64, u16, Vec<u8>)> {
        let mut v: Vec<_> = records
            .iter()
            .map(|r| {
                let id = String::from_utf8(r.id.to_vec()).unwrap();
                (id, r.timestamp, r.attempts + 1, r.body.clone())
            })
            .collect();
        v.sort();
        v
    };
    let seen = |msgs: &[Message]| -> Vec<(String, i64, u16, Vec<u8>)> {
        let mut v: Vec<_> = msgs
            .iter()
            .map(|m| {
                let id = String::from_utf8(m.id.to_hex().to_vec()).unwrap();
                (id, m.timestamp, m.attempts, m.body.to_vec())
            })
            .collect();
        v.sort();
        v
    };

    let mut c = consumer(&nsqd, "legacy", "c1", 10);
    let got = consume_for(&mut c, |got| {
        got.len() >= 3 && drained(&nsqd, "legacy", "c1")
    });
    // Exactly these three: the record before the read position is not
    // delivered again.
    assert_eq!(seen(&got), expect(&c1));
    // A data file is deleted once the reader is past its end (reference 3.1).
    wait_until("file 0 of legacy:c1 deleted", || {
        !segment(&dir, "legacy:c1", 0).exists()
    });

    let mut c = consumer(&nsqd, "legacy_topic", "x", 10);
    let got = consume_for(&mut c, |got| {
        got.len() >= 2 && drained(&nsqd, "legacy_topic", "x")
    });
    assert_eq!(seen(&got), expect(&topic_records));
}

/// Bytes of disk a file takes (`du`), beyond its length.
fn allocated_past_end(path: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).unwrap();
    (m.blocks() * 512) as i64 - m.len() as i64
}

/// While a queue writes, its segment has space reserved past its end (on
/// file systems with `fallocate`); a clean shutdown gives it back, leaving
/// files that take no more space than NSQ's.
#[test]
fn space_reserved_for_writes_is_given_back_at_shutdown() {
    let mut nsqd = Nsqd::start(&[]);
    let mut p = nsqd.connect();
    p.publish_batch(
        "t",
        (0..100).map(|_| Bytes::from(vec![b'x'; 1000])).collect(),
    );
    let seg = segment(nsqd.data.path(), "t", 0);
    assert_eq!(fs::metadata(&seg).unwrap().len(), 100 * (4 + 26 + 1000));
    let reserved = allocated_past_end(&seg);
    if reserved < 64 << 10 {
        eprintln!("no space reserved ({reserved} bytes): no fallocate here?");
    }
    stop_cleanly(&mut nsqd);
    let left = allocated_past_end(&seg);
    assert!(left < 8 << 10, "{left} bytes still allocated past the end");
    assert_eq!(fs::metadata(&seg).unwrap().len(), 100 * (4 + 26 + 1000));
}

#[test]
fn writes_nsq_format() {
    const MAX_BYTES: usize = 1000;
    let args = ["--mem-queue-size=0", "--max-bytes-per-file=1000"];
    let mut nsqd = Nsqd::start(&args);
    create_channel(&nsqd, "t", "ch");
    // Distinct bodies of varied sizes (4..=200 bytes), 10 by PUB and 20 by
    // MPUB; 5 more to a topic without channels, which keeps them itself.
    let body = |i: usize, len: usize| {
        let mut b = format!("m{i:02}-").into_bytes();
        b.resize(len, b'a' + (i % 26) as u8);
        Bytes::from(b)
    };
    let bodies: Vec<Bytes> = (0..30).map(|i| body(i, 4 + i * 37 % 197)).collect();
    let solo: Vec<Bytes> = (30..35).map(|i| body(i, 50)).collect();
    let t0 = now_nanos();
    let mut p = nsqd.connect();
    for b in &bodies[..10] {
        p.publish("t", b);
    }
    p.publish_batch("t", bodies[10..].to_vec());
    for b in &solo {
        p.publish("solo", b);
    }
    let t1 = now_nanos();
    wait_until("everything in the channel's queue", || {
        channel_depth(&nsqd, "t", "ch") == Some(30) && topic_depth(&nsqd, "t") == Some(0)
    });
    assert_eq!(topic_depth(&nsqd, "solo"), Some(5));
    stop_cleanly(&mut nsqd);
    let dir = nsqd.data.path().to_path_buf();

    let sorted = |mut v: Vec<Vec<u8>>| {
        v.sort();
        v
    };
    let check_records = |records: &[Record], expected: &[Bytes]| {
        assert_eq!(
            sorted(records.iter().map(|r| r.body.clone()).collect()),
            sorted(expected.iter().map(|b| b.to_vec()).collect())
        );
        let mut ids = HashSet::new();
        for r in records {
            assert_eq!(r.attempts, 0, "never delivered: {r:?}");
            assert!(
                r.id.iter()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)),
                "ID not lower-case hex: {r:?}"
            );
            assert!(ids.insert(r.id), "duplicate ID: {r:?}");
            assert!(
                (t0 - 1_000_000_000..=t1).contains(&r.timestamp),
                "timestamp not the publish time: {r:?}"
            );
        }
    };

    // The channel's queue: nothing read yet, every message stored once.
    let (meta, records) = read_queue(&dir, "t:ch");
    assert_eq!(meta.read, (0, 0));
    check_records(&records, &bodies);
    // Rollover (reference 3.1): a file ends when the next record would
    // take it past --max-bytes-per-file.
    let (wfn, _) = meta.write;
    assert!(wfn >= 1, "30 records of up to 230 bytes span several files");
    for n in 0..wfn {
        let size = fs::metadata(segment(&dir, "t:ch", n)).unwrap().len() as usize;
        let next = parse_records(&fs::read(segment(&dir, "t:ch", n + 1)).unwrap());
        assert!(size <= MAX_BYTES, "file {n} is {size} bytes");
        assert!(
            size + next[0].size() > MAX_BYTES,
            "file {n} ({size} bytes) had room for the next record ({} bytes)",
            next[0].size()
        );
    }

    // The topic's queue: everything moved on to the channel. NSQ leaves the
    // files of an empty queue; having none at all means the same to it.
    if meta_path(&dir, "t").exists() {
        let (meta, records) = read_queue(&dir, "t");
        assert_eq!((meta.depth, meta.read), (0, meta.write), "{meta:?}");
        assert!(records.is_empty());
    }
    // The channel-less topic holds its messages in its own queue.
    let (meta, records) = read_queue(&dir, "solo");
    assert_eq!(meta.read, (0, 0));
    check_records(&records, &solo);

    // Files are private to nsqd (mode 0600, reference section 3).
    use std::os::unix::fs::PermissionsExt;
    for name in file_names(&dir) {
        if name.ends_with(".dat") {
            let mode = fs::metadata(dir.join(&name)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name} has mode {:o}", mode & 0o777);
        }
    }
}

#[test]
fn second_nsqd_on_same_data_path_refuses() {
    let mut first = Nsqd::start(&[]);
    let path = first.data.path().display().to_string();
    let started = Instant::now();
    let out = run_binary_within(
        env!("CARGO_BIN_EXE_nsqd"),
        &[
            "--tcp-address=127.0.0.1:0",
            "--http-address=127.0.0.1:0",
            &format!("-data-path={path}"),
        ],
        DEADLINE,
    );
    let (code, _stdout, stderr) = out.expect("the second nsqd kept running");
    assert_ne!(
        code, 0,
        "second nsqd exited successfully; stderr:\n{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?} to refuse",
        started.elapsed()
    );
    assert!(
        stderr.contains(&path) && stderr.to_lowercase().contains("in use"),
        "stderr should name the data path and say it is in use:\n{stderr}"
    );
    // The first one is unaffected.
    assert!(first.is_running());
    let r = first.http("GET", "/ping", b"");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    first.connect().publish("t", b"still mine");
}

#[test]
fn full_disk_fails_publish_and_recovers() {
    // The topic's first data file is /dev/full: every write fails ENOSPC.
    // The meta file says what NSQ records for an empty queue writing at the
    // start of file 0, so nsqd writes there rather than treating the
    // unexplained file as data of a queue that lost its metadata.
    assert!(Path::new("/dev/full").exists(), "needs /dev/full");
    let data = tempfile::tempdir().unwrap();
    let link = segment(data.path(), "t", 0);
    std::os::unix::fs::symlink("/dev/full", &link).unwrap();
    fs::write(meta_path(data.path(), "t"), "0\n0,0\n0,0\n").unwrap();
    let nsqd = Nsqd::start_in(data, &["--mem-queue-size=0"]);

    // TCP: E_PUB_FAILED is fatal (reference 1.5, 2.5).
    let mut c = nsqd.connect();
    c.send(&Command::Pub {
        topic: "t".into(),
        body: Bytes::from_static(b"lost"),
    });
    let Frame::Error(e) = c.frame() else {
        panic!("PUB to a full disk did not fail");
    };
    let e = String::from_utf8_lossy(&e).into_owned();
    assert!(e.starts_with("E_PUB_FAILED PUB failed "), "{e}");
    assert!(
        e.to_lowercase().contains("no space left on device"),
        "error should say why: {e}"
    );
    assert_eq!(c.expect_closed(), vec![], "the connection is closed");
    // HTTP: every put failure is 503 EXITING (reference 2.5, 4.4 /pub).
    let r = nsqd.http("POST", "/pub?topic=t", b"lost too");
    assert_eq!(
        (r.status, r.text()),
        (503, r#"{"message":"EXITING"}"#.to_string())
    );
    let r = nsqd.http("GET", "/ping", b"");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().starts_with("NOK - "), "{}", r.text());
    // The operator is told once, not once per refused publish.
    nsqd.wait_for_log("ERROR: storage failing (/ping answers NOK until a write succeeds): write ");
    let failing = nsqd.log_text().matches("storage failing").count();
    assert_eq!(failing, 1, "{}", nsqd.log_text());

    // Disk writable again: publishing works and health comes back.
    fs::remove_file(&link).unwrap();
    wait_until("a PUB succeeds once the disk is writable", || {
        let mut c = nsqd.connect();
        c.send(&Command::Pub {
            topic: "t".into(),
            body: Bytes::from_static(b"after"),
        });
        match c.frame() {
            Frame::Response(r) => r.as_ref() == b"OK",
            Frame::Error(e) if e.starts_with(b"E_PUB_FAILED") => false,
            other => panic!("unexpected {other:?}"),
        }
    });
    let r = nsqd.http("GET", "/ping", b"");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    nsqd.wait_for_log("INFO: storage works again (a write succeeded)");

    // Only the message that was accepted is delivered.
    let mut c = consumer(&nsqd, "t", "ch", 10);
    let m = c.expect_message();
    assert_eq!(m.body.as_ref(), b"after");
    c.fin(m.id);
    let got = consume_for(&mut c, |_| drained(&nsqd, "t", "ch"));
    assert!(got.is_empty(), "failed publishes were stored: {got:?}");
    assert!(drained(&nsqd, "t", "ch"));
    assert_eq!(nsqd.channel_stats("t", "ch").unwrap()["message_count"], 1);
}

#[test]
fn backlog_moves_to_a_new_channel_in_order_without_blocking_publishers() {
    // A topic with no channel keeps a backlog on disk. When a channel
    // appears, the backlog moves over in batches while publishing goes on;
    // a message published after the channel was created must come after the
    // whole backlog (one disk queue per channel: FIFO).
    let nsqd = Nsqd::start(&["--mem-queue-size=0"]);
    let mut backlog = Vec::new();
    for _ in 0..4 {
        backlog.extend(publish_numbered(&nsqd, "t", 5000, 40));
    }
    assert_eq!(topic_depth(&nsqd, "t"), Some(20_000));
    http_ok(&nsqd, "POST", "/channel/create?topic=t&channel=ch");
    let mut p = nsqd.connect();
    p.publish("t", b"after the backlog");

    let mut c = consumer(&nsqd, "t", "ch", 500);
    let got = consume_for(&mut c, |got| got.len() >= 20_001);
    let bodies: Vec<Bytes> = got.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies.len(), 20_001, "every message once");
    assert_eq!(
        &bodies[..20_000],
        backlog.as_slice(),
        "backlog in arrival order"
    );
    assert_eq!(bodies[20_000], Bytes::from_static(b"after the backlog"));
    wait_until("topic and channel drained", || drained(&nsqd, "t", "ch"));
}

#[test]
fn messages_in_flight_survive_kill9() {
    // NSQ loses a message read from disk but not yet finished when the
    // process dies. Here its record stays on disk until FIN: the metadata's
    // read position never passes the oldest unfinished message.
    let args = ["--mem-queue-size=0", "--sync-timeout=50ms"];
    let nsqd = Nsqd::start(&args);
    create_channel(&nsqd, "t", "ch");
    let bodies = publish_numbered(&nsqd, "t", 200, 40);
    let mut c = consumer(&nsqd, "t", "ch", 50);
    let first: Vec<Message> = (0..50).map(|_| c.expect_message()).collect();
    for m in &first[..10] {
        c.fin(m.id);
    }
    // Wait for a metadata write that saw the FINs: its read position has
    // moved (to the oldest unfinished message; past all 50 delivered ones
    // without the protection).
    let meta = meta_path(nsqd.data.path(), "t:ch");
    wait_until("metadata written after the FINs", || {
        fs::read_to_string(&meta).is_ok_and(|text| parse_meta(&text).read != (0, 0))
    });
    support::signal(nsqd.pid(), "KILL");

    let nsqd = restart(nsqd, &args);
    let mut c = consumer(&nsqd, "t", "ch", 100);
    let unfinished: HashSet<Bytes> = bodies[10..].iter().cloned().collect();
    let got = consume_for(&mut c, |got| unfinished.is_subset(&bodies_of(got)));
    let received = bodies_of(&got);
    let missing: Vec<&Bytes> = unfinished.difference(&received).collect();
    assert!(
        missing.is_empty(),
        "{} unfinished messages lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
}

/// Pipelined producers, nsqd killed with SIGKILL `rounds` times and
/// restarted on the same data path; then every acknowledged message must
/// be delivered. Returns (acknowledged, delivered, duplicates).
fn kill9_rounds(args: &[&str], rounds: usize, per_round: usize) -> (usize, usize, usize) {
    let mut nsqd = Nsqd::start(args);
    create_channel(&nsqd, "t", "ch");
    let (mut sent, mut acked) = (HashSet::new(), HashSet::new());
    for round in 0..rounds {
        let acked_total = Arc::new(AtomicUsize::new(0));
        let producers: Vec<_> = (0..4)
            .map(|id| {
                let (addr, total) = (nsqd.tcp, acked_total.clone());
                std::thread::spawn(move || pipelined_producer(addr, round * 10 + id, 64, &total))
            })
            .collect();
        wait_until("acknowledged publishes", || {
            acked_total.load(Ordering::SeqCst) >= per_round
        });
        support::signal(nsqd.pid(), "KILL");
        for p in producers {
            let (s, a) = p.join().expect("producer thread");
            sent.extend(s);
            acked.extend(a);
        }
        nsqd = restart(nsqd, args);
    }
    let mut c = consumer(&nsqd, "t", "ch", 500);
    let got = consume_for(&mut c, |got| acked.is_subset(&bodies_of(got)));
    let received = bodies_of(&got);
    let lost: Vec<&Bytes> = acked.difference(&received).collect();
    assert!(
        lost.is_empty(),
        "{args:?}: {} of {} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    let invented: Vec<&Bytes> = received.difference(&sent).collect();
    assert!(invented.is_empty(), "never published: {invented:?}");
    (acked.len(), received.len(), got.len() - received.len())
}

/// The promise that sets us apart: at nsqd's default flags (a memory
/// queue of 10,000, fsync every 2,500 writes), `kill -9` under load loses
/// nothing that was acknowledged, however many times.
#[test]
fn kill9_at_default_flags_loses_nothing_acknowledged() {
    let (acked, delivered, dups) = kill9_rounds(&[], 3, 3000);
    eprintln!("default flags, 3 x kill -9: {acked} acknowledged, {delivered} delivered, {dups} duplicates");
    let (acked, delivered, dups) = kill9_rounds(&["--sync-every=1"], 2, 2000);
    eprintln!("--sync-every=1, 2 x kill -9: {acked} acknowledged, {delivered} delivered, {dups} duplicates");
}

/// Messages in flight, requeued and deferred (DPUB, and REQ with a delay)
/// when nsqd is killed are all delivered after the restart, the deferred
/// ones not before their time.
#[test]
fn in_flight_requeued_and_deferred_survive_kill9() {
    let nsqd = Nsqd::start(&[]);
    create_channel(&nsqd, "t", "ch");
    let mut p = nsqd.connect();
    for i in 0..10 {
        p.publish("t", format!("m{i}").as_bytes());
    }
    // A deferred publish due in 2 s, and one in an hour.
    let published = Instant::now();
    for (body, defer_ms) in [("soon", 2000u64), ("later", 3_600_000)] {
        p.send(&Command::Dpub {
            topic: "t".into(),
            defer_ms,
            body: Bytes::from_static(body.as_bytes()),
        });
        p.expect_ok();
    }
    let mut c = consumer(&nsqd, "t", "ch", 10);
    let msgs: Vec<Message> = (0..10).map(|_| c.expect_message()).collect();
    // m0..m3 stay in flight; m4..m6 are requeued now; m7..m9 in an hour.
    for m in &msgs[4..7] {
        c.send(&Command::Req {
            id: m.id.to_hex(),
            timeout_ms: 0,
        });
    }
    for m in &msgs[7..] {
        c.send(&Command::Req {
            id: m.id.to_hex(),
            timeout_ms: 3_600_000,
        });
    }
    wait_until("requeues applied", || {
        nsqd.channel_stats("t", "ch")
            .is_some_and(|ch| ch["deferred_count"] == 5 && ch["requeue_count"] == 6)
    });
    support::signal(nsqd.pid(), "KILL");
    drop((c, p));

    let nsqd = restart(nsqd, &[]);
    let mut c = consumer(&nsqd, "t", "ch", 100);
    // In flight (m0..m3) and requeued (m4..m6) come back at once.
    let now: HashSet<Bytes> = (0..7).map(|_| c.expect_message().body).collect();
    let expected: HashSet<Bytes> = msgs[..7].iter().map(|m| m.body.clone()).collect();
    assert_eq!(now, expected);
    // "soon" comes when it is due, not before.
    let soon = c.expect_message();
    assert_eq!(soon.body.as_ref(), b"soon");
    assert!(
        published.elapsed() >= Duration::from_millis(1900),
        "a deferred message came early after a crash: {:?}",
        published.elapsed()
    );
    // The hour-long ones are still waiting.
    c.expect_silence(Duration::from_millis(200));
    assert_eq!(nsqd.channel_stats("t", "ch").unwrap()["deferred_count"], 4);
}

/// A clean restart keeps deferred messages' due times too.
#[test]
fn deferred_due_time_survives_a_clean_restart() {
    let mut nsqd = Nsqd::start(&[]);
    create_channel(&nsqd, "t", "ch");
    let published = Instant::now();
    let mut p = nsqd.connect();
    p.send(&Command::Dpub {
        topic: "t".into(),
        defer_ms: 1500,
        body: Bytes::from_static(b"deferred"),
    });
    p.expect_ok();
    drop(p);
    stop_cleanly(&mut nsqd);
    let nsqd = restart(nsqd, &[]);
    assert_eq!(nsqd.channel_stats("t", "ch").unwrap()["deferred_count"], 1);
    let mut c = consumer(&nsqd, "t", "ch", 1);
    let m = c.expect_message();
    assert_eq!(m.body.as_ref(), b"deferred");
    assert!(
        published.elapsed() >= Duration::from_millis(1400),
        "delivered early after a restart: {:?}",
        published.elapsed()
    );
}

/// Idle durable topics and channels hold no file open (a queue opens its
/// files when it has something to read or write, and its sync record only
/// while syncing): 10,000 topics must fit a default descriptor limit, and
/// must come back after a restart.
#[test]
fn idle_queues_hold_no_file_descriptors() {
    let nsqd = Nsqd::start(&[]);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", nsqd.pid()))
            .unwrap()
            .count()
    };
    let before = fds();
    for i in 0..200 {
        for path in [
            format!("/topic/create?topic=idle{i}"),
            format!("/channel/create?topic=idle{i}&channel=c"),
        ] {
            assert_eq!(nsqd.http("POST", &path, b"").status, 200, "{path}");
        }
    }
    // Let the background syncer visit them all once.
    wait_until("every queue's sync record to exist", || {
        (0..200).all(|i| {
            nsqd.data
                .path()
                .join(format!("idle{i}:c.nsqrs-synced.dat"))
                .exists()
        })
    });
    let after = fds();
    assert!(
        after < before + 20,
        "{before} descriptors before, {after} with 400 idle queues"
    );
}
