//! What a queue keeps in memory. Deep memory queues (`--mem-queue-size`
//! far above its default), where nsqd keeps queued messages compactly
//! (copied bodies, 16 bytes of bookkeeping each): every message must come
//! back exactly as published, on every channel, ephemeral ones included,
//! with none read from disk. And `--mem-queue-bytes`, past which a durable
//! queue's large messages wait on disk.

use crate::support::{consumer, Nsqd};
use bytes::Bytes;
use nsq::protocol::Message;
use std::collections::HashSet;

/// Body `i`: its length varies from 1 to 700 bytes (batches thus cross
/// the 64 kB buffers bodies are copied into), its bytes name it.
fn body(i: usize) -> Bytes {
    let len = 1 + (i * 37) % 700;
    let tag = format!("{i}:");
    Bytes::from(tag.bytes().cycle().take(len).collect::<Vec<u8>>())
}

fn publish_all(nsqd: &Nsqd, topic: &str, total: usize) -> Vec<Bytes> {
    let bodies: Vec<Bytes> = (0..total).map(body).collect();
    let mut p = nsqd.connect();
    let mut sent = 0;
    let mut size = 1;
    while sent < total {
        // Batches of 1 to 400 messages, and single PUBs between them.
        let n = size.min(total - sent);
        if n == 1 {
            p.publish(topic, &bodies[sent]);
        } else {
            p.publish_batch(topic, bodies[sent..sent + n].to_vec());
        }
        sent += n;
        size = (size * 7 + 3) % 401;
    }
    bodies
}

fn create(nsqd: &Nsqd, path: &str) {
    let r = nsqd.http("POST", path, b"");
    assert_eq!(r.status, 200, "{path}: {}", r.text());
}

#[test]
fn deep_memory_queues_give_back_every_message_exactly() {
    const TOTAL: usize = 30_000;
    let nsqd = Nsqd::start(&["--mem-queue-size=100000"]);
    create(&nsqd, "/topic/create?topic=deep");
    for ch in ["a", "b", "c%23ephemeral"] {
        create(&nsqd, &format!("/channel/create?topic=deep&channel={ch}"));
    }
    let bodies = publish_all(&nsqd, "deep", TOTAL);
    for ch in ["a", "b", "c#ephemeral"] {
        let stats = nsqd.channel_stats("deep", ch).unwrap();
        assert_eq!(stats["depth"], TOTAL as u64, "{ch}: {stats}");
        assert_eq!(stats["backend_depth"], 0, "{ch}: {stats}");
    }
    let mut ids_per_channel = Vec::new();
    for ch in ["a", "b", "c#ephemeral"] {
        let mut c = consumer(&nsqd, "deep", ch, 500);
        let mut ids = HashSet::new();
        let mut last_timestamp = 0;
        for (i, expected) in bodies.iter().enumerate() {
            let m: Message = c.expect_message();
            assert_eq!(&m.body, expected, "{ch}: message {i}");
            assert_eq!(m.attempts, 1, "{ch}: message {i}");
            assert!(m.timestamp >= last_timestamp, "{ch}: message {i}");
            last_timestamp = m.timestamp;
            assert!(ids.insert(m.id), "{ch}: message {i} repeats an ID");
            c.fin(m.id);
        }
        ids_per_channel.push(ids);
    }
    // Every channel got the same messages (same IDs).
    assert!(ids_per_channel.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn past_mem_queue_bytes_large_messages_wait_on_disk_and_come_back_in_order() {
    const TOTAL: usize = 40;
    const LEN: usize = 10_000;
    let nsqd = Nsqd::start(&["--mem-queue-bytes=65536"]);
    let r = nsqd.http("GET", "/config/mem_queue_bytes", b"");
    assert_eq!((r.status, r.text().trim()), (200, "65536"));
    create(&nsqd, "/topic/create?topic=large");
    for ch in ["a", "e%23ephemeral"] {
        create(&nsqd, &format!("/channel/create?topic=large&channel={ch}"));
    }
    let bodies: Vec<Bytes> = (0..TOTAL)
        .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; LEN]))
        .collect();
    let mut p = nsqd.connect();
    for batch in bodies.chunks(4) {
        p.publish_batch("large", batch.to_vec());
    }
    // Six 10 kB bodies fit in 64 kB; the rest is read back from disk.
    let stats = nsqd.channel_stats("large", "a").unwrap();
    assert_eq!(stats["depth"], TOTAL as u64, "{stats}");
    assert_eq!(stats["backend_depth"], (TOTAL - 6) as u64, "{stats}");
    // Ephemeral queues count messages only, as in NSQ: nothing dropped.
    let stats = nsqd.channel_stats("large", "e#ephemeral").unwrap();
    assert_eq!(stats["depth"], TOTAL as u64, "{stats}");
    assert_eq!(stats["backend_depth"], 0, "{stats}");
    for ch in ["a", "e#ephemeral"] {
        let mut c = consumer(&nsqd, "large", ch, 10);
        for (i, expected) in bodies.iter().enumerate() {
            let m: Message = c.expect_message();
            assert_eq!(&m.body, expected, "{ch}: message {i}");
            c.fin(m.id);
        }
    }
}
