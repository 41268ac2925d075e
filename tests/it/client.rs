//! Our own client module against the real nsqd: publish (plain, pipelined,
//! MPUB, DPUB), consume with FIN/REQ, and errors surfaced with nsqd's text.

use crate::support;

use bytes::Bytes;
use nsq::client::{ClientError, Config, Consumer, ConsumerConfig, Producer};
use nsq::protocol::Command;
use std::collections::HashSet;
use std::time::Duration;
use support::Nsqd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume() {
    let nsqd = Nsqd::start(&[]);
    let addr = nsqd.tcp.to_string();
    let producer = Producer::connect(&addr, &Config::default()).await.unwrap();
    let config = ConsumerConfig {
        topic: "c".into(),
        channel: "x".into(),
        max_in_flight: 100,
        connection: Config::default(),
    };
    let mut consumer = Consumer::connect(std::slice::from_ref(&addr), &config)
        .await
        .unwrap();

    producer.publish("c", "one").await.unwrap();
    producer
        .multi_publish("c", vec![Bytes::from("two"), Bytes::from("three")])
        .await
        .unwrap();
    producer
        .deferred_publish("c", Duration::from_millis(100), "four")
        .await
        .unwrap();
    // Pipelined: many outstanding on one connection, acknowledged in order.
    let mut acks = Vec::new();
    for i in 0..100 {
        acks.push(
            producer
                .send_pipelined(Command::Pub {
                    topic: "c".into(),
                    body: Bytes::from(format!("p{i}")),
                })
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap().unwrap();
    }

    let mut seen = HashSet::new();
    let mut requeued = false;
    while seen.len() < 104 {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("message in time")
            .expect("consumer open")
            .unwrap();
        let body = String::from_utf8(d.message.body.to_vec()).unwrap();
        if body == "one" && !requeued {
            requeued = true;
            d.req(Duration::ZERO);
            continue;
        }
        if body == "one" {
            assert_eq!(d.message.attempts, 2);
        }
        seen.insert(body);
        d.fin();
    }
    assert!(seen.contains("four") && seen.contains("p99"));
}

#[tokio::test]
async fn errors_carry_nsqd_text() {
    let nsqd = Nsqd::start(&["--max-msg-size=4"]);
    let producer = Producer::connect(&nsqd.tcp.to_string(), &Config::default())
        .await
        .unwrap();
    let err = producer.publish("t", "too long").await.unwrap_err();
    match err {
        ClientError::Server { text, .. } => {
            assert_eq!(text, "E_BAD_MESSAGE PUB message too big 8 > 4")
        }
        other => panic!("{other:?}"),
    }
    // The connection is gone after a fatal error.
    assert!(producer.publish("t", "ok").await.is_err());

    // Nothing listening: a clear connect error, quickly.
    let (_held, free) = support::refused_addr();
    let err = Producer::connect(&free.to_string(), &Config::default())
        .await
        .err()
        .expect("no nsqd there");
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}
