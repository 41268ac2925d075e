//! A channel is a consumer group: with several consumers ready, a burst is
//! spread across all of them, not handed to whichever connection woke first.
//!
//! Each scenario runs several rounds (a fresh topic each) because an unfair
//! scheduler is sometimes lucky; the bounds are wide enough for any fair one.

use crate::support::{self, wait_until, Conn, Nsqd};
use bytes::Bytes;
use nsq::protocol::{Frame, MessageId};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const ROUNDS: usize = 6;

/// Per-client stats of a channel, keyed by the client's address as nsqd sees it.
fn clients(nsqd: &Nsqd, topic: &str, channel: &str) -> HashMap<String, Value> {
    let Some(ch) = nsqd.channel_stats(topic, channel) else {
        return HashMap::new();
    };
    ch["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["remote_address"].as_str().unwrap().to_string(), c.clone()))
        .collect()
}

fn addr(c: &Conn) -> String {
    c.stream.local_addr().unwrap().to_string()
}

/// Subscribe one consumer per entry of `rdys` and wait until nsqd has
/// applied every RDY, so that all of them are ready before the burst.
fn consumers(nsqd: &Nsqd, topic: &str, rdys: &[u64]) -> Vec<Conn> {
    let conns: Vec<Conn> = rdys
        .iter()
        .map(|&rdy| support::consumer(nsqd, topic, "workers", rdy))
        .collect();
    wait_until("every RDY applied", || {
        let stats = clients(nsqd, topic, "workers");
        conns
            .iter()
            .zip(rdys)
            .all(|(c, &rdy)| stats.get(&addr(c)).is_some_and(|s| s["ready_count"] == rdy))
    });
    conns
}

fn mpub(nsqd: &Nsqd, topic: &str, n: usize) {
    let mut p = nsqd.connect();
    p.publish_batch(
        topic,
        (0..n).map(|i| Bytes::from(format!("m{i}"))).collect(),
    );
}

/// Wait until `total` messages are in flight, then read from each consumer
/// exactly what nsqd says it holds. Returns the IDs each one received.
fn received(nsqd: &Nsqd, topic: &str, conns: &mut [Conn], total: u64) -> Vec<Vec<MessageId>> {
    wait_until("the burst delivered", || {
        nsqd.channel_stats(topic, "workers")
            .is_some_and(|c| c["in_flight_count"] == total)
    });
    let stats = clients(nsqd, topic, "workers");
    conns
        .iter_mut()
        .map(|c| {
            let n = stats[&addr(c)]["in_flight_count"].as_u64().unwrap();
            let ids: Vec<MessageId> = (0..n).map(|_| c.expect_message().id).collect();
            c.expect_silence(Duration::from_millis(20));
            ids
        })
        .collect()
}

/// Every message went to exactly one consumer.
fn assert_each_once(got: &[Vec<MessageId>], total: usize) {
    let all: Vec<MessageId> = got.iter().flatten().copied().collect();
    let distinct: HashSet<MessageId> = all.iter().copied().collect();
    assert_eq!(all.len(), total, "messages delivered");
    assert_eq!(distinct.len(), total, "a message went to two consumers");
}

fn burst_is_spread(extra: &[&str], consumers_n: usize, burst: usize) {
    let nsqd = Nsqd::start(extra);
    let (lo, hi) = (burst / consumers_n / 2, burst * 3 / consumers_n / 2);
    let mut splits = Vec::new();
    for round in 0..ROUNDS {
        let topic = format!("burst{round}");
        let mut conns = consumers(&nsqd, &topic, &vec![1000; consumers_n]);
        mpub(&nsqd, &topic, burst);
        let got = received(&nsqd, &topic, &mut conns, burst as u64);
        assert_each_once(&got, burst);
        splits.push(got.iter().map(Vec::len).collect::<Vec<_>>());
    }
    eprintln!("{consumers_n} consumers, {burst} messages {extra:?}: {splits:?}");
    for split in &splits {
        assert!(
            split.iter().all(|&n| (lo..=hi).contains(&n)),
            "each of {consumers_n} consumers should get {lo}..={hi} of {burst}; splits: {splits:?}"
        );
    }
}

#[test]
fn two_consumers_share_a_burst() {
    burst_is_spread(&[], 2, 400);
}

#[test]
fn four_consumers_share_a_burst() {
    burst_is_spread(&[], 4, 100);
}

#[test]
fn a_burst_from_disk_is_shared_too() {
    burst_is_spread(&["--mem-queue-size=0"], 2, 400);
    burst_is_spread(&["--mem-queue-size=0"], 4, 100);
}

/// Ready consumers share; one that is not ready gets nothing; RDY caps stay exact.
#[test]
fn not_ready_gets_nothing_and_rdy_is_exact() {
    for extra in [&[][..], &["--mem-queue-size=0"][..]] {
        let nsqd = Nsqd::start(extra);
        for round in 0..3 {
            let topic = format!("mixed{round}");
            let mut conns = consumers(&nsqd, &topic, &[1000, 1000, 0, 7]);
            mpub(&nsqd, &topic, 400);
            // 400 queued, at most 1000 + 1000 + 0 + 7 ready: all go out.
            let got = received(&nsqd, &topic, &mut conns, 400);
            assert_each_once(&got, 400);
            let split: Vec<usize> = got.iter().map(Vec::len).collect();
            eprintln!("RDY 1000/1000/0/7 {extra:?}: {split:?}");
            assert_eq!(split[2], 0, "RDY 0 received messages: {split:?}");
            assert!(split[3] <= 7, "RDY 7 exceeded: {split:?}");
            assert!(
                split[0] >= 100 && split[1] >= 100,
                "ready consumers not sharing: {split:?}"
            );
        }
        // More queued than all RDYs together: every cap is reached exactly.
        let topic = "capped";
        let mut conns = consumers(&nsqd, topic, &[30, 20, 0, 7]);
        mpub(&nsqd, topic, 400);
        let got = received(&nsqd, topic, &mut conns, 57);
        let split: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(split, vec![30, 20, 0, 7]);
        assert_eq!(nsqd.channel_stats(topic, "workers").unwrap()["depth"], 343);
    }
}

/// go-nsq's default worker pool: each consumer has RDY 1 and finishes
/// slowly; the work is shared about equally.
#[test]
fn slow_rdy_one_workers_share_the_work() {
    let nsqd = Nsqd::start(&[]);
    let topic = "slow";
    let conns = consumers(&nsqd, topic, &[1, 1, 1]);
    let total = 60;
    mpub(&nsqd, topic, total);
    let counts: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .into_iter()
            .map(|mut c| {
                s.spawn(move || {
                    let mut n = 0;
                    // Until nothing is left for this worker for a while.
                    while let Some(f) = c.try_frame(Duration::from_millis(500)) {
                        let Frame::Message(m) = f else {
                            panic!("unexpected frame {f:?}")
                        };
                        // Simulated work: this is the workload, not synchronisation.
                        std::thread::sleep(Duration::from_millis(10));
                        c.fin(m.id);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!("RDY 1 workers: {counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), total, "{counts:?}");
    assert!(
        counts.iter().all(|&n| (10..=30).contains(&n)),
        "workers should get about 20 each: {counts:?}"
    );
}

/// Messages published one at a time go round the group.
#[test]
fn single_publishes_go_round_the_group() {
    let nsqd = Nsqd::start(&[]);
    let topic = "singles";
    let mut conns = consumers(&nsqd, topic, &[1000, 1000]);
    let mut p = nsqd.connect();
    for i in 0..100 {
        p.publish(topic, format!("s{i}").as_bytes());
    }
    let got = received(&nsqd, topic, &mut conns, 100);
    assert_each_once(&got, 100);
    let split: Vec<usize> = got.iter().map(Vec::len).collect();
    eprintln!("single PUBs: {split:?}");
    assert!(
        split.iter().all(|&n| (25..=75).contains(&n)),
        "single publishes not spread: {split:?}"
    );
}
