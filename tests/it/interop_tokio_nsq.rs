//! Interoperability with an independent client: the `tokio-nsq` crate
//! publishes to and consumes from our nsqd.

use crate::support;

use std::collections::HashSet;
use std::time::Duration;
use support::Nsqd;
use tokio_nsq::{
    NSQChannel, NSQConsumerConfig, NSQConsumerConfigSources, NSQEvent, NSQProducerConfig, NSQTopic,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_publishes_and_consumes() {
    let nsqd = Nsqd::start(&[]);
    let addr = nsqd.tcp.to_string();
    let topic = NSQTopic::new("interop").unwrap();
    let channel = NSQChannel::new("rust").unwrap();

    let mut consumer = NSQConsumerConfig::new(topic.clone(), channel)
        .set_max_in_flight(50)
        .set_sources(NSQConsumerConfigSources::Daemons(vec![addr.clone()]))
        .build();

    let mut producer = NSQProducerConfig::new(addr).build();
    let healthy = tokio::time::timeout(Duration::from_secs(10), producer.consume())
        .await
        .expect("producer handshake in time");
    assert!(matches!(healthy, Some(NSQEvent::Healthy())), "{healthy:?}");

    const N: usize = 200;
    for i in 0..N / 2 {
        producer
            .publish(&topic, format!("single-{i}").into_bytes())
            .await
            .unwrap();
    }
    let batch: Vec<Vec<u8>> = (0..N / 2)
        .map(|i| format!("multi-{i}").into_bytes())
        .collect();
    producer.publish_multiple(&topic, batch).await.unwrap();
    let mut acks = 0;
    while acks < N / 2 + 1 {
        let event = tokio::time::timeout(Duration::from_secs(10), producer.consume())
            .await
            .expect("publish acknowledged in time");
        match event {
            Some(NSQEvent::Ok()) => acks += 1,
            Some(NSQEvent::Healthy()) => {}
            other => panic!("unexpected producer event {other:?}"),
        }
    }

    let mut seen = HashSet::new();
    while seen.len() < N {
        let msg = tokio::time::timeout(Duration::from_secs(10), consumer.consume_filtered())
            .await
            .expect("message in time")
            .expect("consumer open");
        assert_eq!(msg.attempt, 1);
        assert!(seen.insert(String::from_utf8(msg.body.clone()).unwrap()));
        msg.finish().await;
    }
    assert!(seen.contains("single-0") && seen.contains("multi-99"));
    support::wait_until("all finished", || {
        nsqd.channel_stats("interop", "rust")
            .is_some_and(|c| c["in_flight_count"] == 0 && c["message_count"] == N)
    });
}
