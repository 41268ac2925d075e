//! What operators watch: end-to-end latency percentiles in /stats, statsd
//! packets, the Prometheus endpoint, and IDENTIFY's sample_rate.

use crate::support;

use serde_json::json;
use std::collections::HashMap;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use support::{consumer, wait_until, Nsqd};

/// Publish `n` messages to t, consume and FIN them on channel c.
fn flow(nsqd: &Nsqd, n: usize) {
    let mut c = consumer(nsqd, "t", "c", 100);
    let mut p = nsqd.connect();
    for i in 0..n {
        p.publish("t", format!("m{i}").as_bytes());
    }
    for _ in 0..n {
        let m = c.expect_message();
        c.fin(m.id);
    }
    wait_until("all finished", || {
        nsqd.channel_stats("t", "c")
            .is_some_and(|s| s["in_flight_count"] == 0)
    });
    // Gone before returning: otherwise a message published next could
    // reach this consumer, in flight until nsqd sees it closed.
    drop(c);
    wait_until("the consumer gone", || {
        nsqd.channel_stats("t", "c")
            .is_some_and(|s| s["client_count"] == 0)
    });
}

#[test]
fn e2e_percentiles_in_stats() {
    let nsqd = Nsqd::start(&[
        "--e2e-processing-latency-percentile=0.5,0.99",
        "--e2e-processing-latency-percentile=1.0",
    ]);
    flow(&nsqd, 50);
    let ch = nsqd.channel_stats("t", "c").unwrap();
    let e2e = &ch["e2e_processing_latency"];
    assert_eq!(e2e["count"], 50);
    let quantiles: Vec<f64> = e2e["percentiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["quantile"].as_f64().unwrap())
        .collect();
    assert_eq!(quantiles, [1.0, 0.99, 0.5], "descending, as NSQ");
    let values: Vec<f64> = e2e["percentiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert!(
        values[0] >= values[1] && values[1] >= values[2] && values[2] > 0.0,
        "{values:?}"
    );
    let topic = nsqd.topic_stats("t").unwrap();
    assert_eq!(topic["e2e_processing_latency"]["count"], 50);
    // Without the flag: an object with no percentiles, never null.
    let plain = Nsqd::start(&[]);
    flow(&plain, 1);
    assert_eq!(
        plain.channel_stats("t", "c").unwrap()["e2e_processing_latency"],
        json!({"count": 0, "percentiles": null})
    );
    // The text format lists them as durations.
    let text = nsqd.http("GET", "/stats", b"").text();
    let line = text.lines().find(|l| l.contains("[c ")).unwrap();
    let after = line.split("e2e%: ").nth(1).unwrap();
    assert_eq!(after.split(", ").count(), 3, "{line}");
}

#[test]
fn statsd_packets_have_nsq_names() {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let nsqd = Nsqd::start(&[
        &format!("--statsd-address={}", sink.local_addr().unwrap()),
        "--statsd-interval=100ms",
        "--broadcast-address=127.0.0.1",
        "--e2e-processing-latency-percentile=0.99",
    ]);
    flow(&nsqd, 7);
    let prefix = format!("nsq.127_0_0_1_{}.", nsqd.http.port());
    // Counters are deltas: sum them over pushes until they reach the totals.
    let mut counters: HashMap<String, u64> = HashMap::new();
    let mut gauges: HashMap<String, String> = HashMap::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(30);
    while counters
        .get("topic.t.channel.c.message_count")
        .copied()
        .unwrap_or(0)
        < 7
        || !gauges.contains_key("mem.heap_in_use_bytes")
        // A push spans several packets: wait for the channel's gauges too.
        || !gauges.contains_key("topic.t.channel.c.e2e_processing_latency_99")
        || !gauges.contains_key("topic.t.channel.c.clients")
    {
        assert!(
            Instant::now() < deadline,
            "statsd never sent them all: {counters:?} {gauges:?}"
        );
        let n = sink.recv(&mut buf).expect("a statsd packet");
        assert!(n <= 508, "packet of {n} bytes");
        for line in std::str::from_utf8(&buf[..n]).unwrap().lines() {
            let rest = line
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{line}: prefix {prefix}"));
            let (key, value) = rest.split_once(':').unwrap();
            match value.rsplit_once('|').unwrap() {
                (v, "c") => {
                    *counters.entry(key.to_string()).or_default() += v.parse::<u64>().unwrap()
                }
                (v, "g") => {
                    gauges.insert(key.to_string(), v.to_string());
                }
                other => panic!("unexpected type {other:?}"),
            }
        }
    }
    assert_eq!(counters["topic.t.message_count"], 7);
    assert_eq!(gauges["topic.t.channel.c.depth"], "0");
    assert!(
        gauges.contains_key("topic.t.channel.c.e2e_processing_latency_99"),
        "{gauges:?}"
    );
    assert!(gauges.contains_key("topic.t.channel.c.clients"));
}

#[test]
fn prometheus_metrics_match_stats() {
    let nsqd = Nsqd::start(&["--e2e-processing-latency-percentile=0.99"]);
    flow(&nsqd, 5);
    let mut p = nsqd.connect();
    p.publish("t", b"left queued");
    let r = nsqd.http("GET", "/metrics", b"");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str, channel: Option<&str>| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && s.labels.get("topic") == Some("t")
                    && s.labels.get("channel") == channel
            })
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        match s.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{other:?}"),
        }
    };
    let stats = nsqd.channel_stats("t", "c").unwrap();
    assert_eq!(
        value("nsq_channel_depth", Some("c")),
        stats["depth"].as_f64().unwrap()
    );
    assert_eq!(
        value("nsq_channel_messages_total", Some("c")),
        stats["message_count"].as_f64().unwrap()
    );
    assert_eq!(
        value("nsq_channel_in_flight", Some("c")),
        stats["in_flight_count"].as_f64().unwrap()
    );
    assert_eq!(
        value("nsq_channel_clients", Some("c")),
        stats["client_count"].as_f64().unwrap()
    );
    let topic = nsqd.topic_stats("t").unwrap();
    assert_eq!(
        value("nsq_topic_messages_total", None),
        topic["message_count"].as_f64().unwrap()
    );
    assert_eq!(
        value("nsq_topic_depth", None),
        topic["depth"].as_f64().unwrap()
    );
    let e2e = stats["e2e_processing_latency"]["percentiles"][0]["value"]
        .as_f64()
        .unwrap();
    assert!(
        (value("nsq_channel_e2e_processing_latency_seconds", Some("c")) - e2e / 1e9).abs() < 1e-9
    );
}

#[test]
fn sample_rate_delivers_about_that_share() {
    let nsqd = Nsqd::start(&[]);
    let mut c = nsqd.connect();
    c.identify(json!({"sample_rate": 30}));
    c.subscribe("s", "c");
    c.rdy(2500);
    let mut p = nsqd.connect();
    let bodies: Vec<bytes::Bytes> = (0..4000)
        .map(|i| bytes::Bytes::from(format!("{i}")))
        .collect();
    for chunk in bodies.chunks(500) {
        p.send(&nsq::protocol::Command::Mpub {
            topic: "s".into(),
            bodies: chunk.to_vec(),
        });
        p.expect_ok();
    }
    wait_until("the channel drained", || {
        nsqd.channel_stats("s", "c")
            .is_some_and(|s| s["depth"] == 0)
    });
    let mut got = 0;
    while let Some(f) = c.try_frame(Duration::from_millis(300)) {
        if let nsq::protocol::Frame::Message(m) = f {
            c.fin(m.id);
            got += 1;
        }
    }
    // 30 % of 4000 is 1200; generous bounds.
    assert!(
        (800..=1600).contains(&got),
        "{got} of 4000 delivered at sample_rate 30"
    );
}
