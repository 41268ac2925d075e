//! nsq-bench end to end: each mode runs against a real nsqd and reports
//! sane figures; an unreachable nsqd is one clear line and exit status 1.

use crate::support;

use support::Nsqd;

fn bench(args: &[&str]) -> (i32, String, String) {
    support::run_binary(env!("CARGO_BIN_EXE_nsq-bench"), args)
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn pub_sub_latency_and_baseline_report_figures() {
    let nsqd = Nsqd::start(&[]);
    let addr = nsqd.tcp.to_string();
    let (code, out, err) = bench(&[
        "pub",
        "--nsqd-tcp-address",
        &addr,
        "--runfor",
        "300ms",
        "--connections",
        "1",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let published = json_lines(&out)[0]["messages"].as_u64().unwrap();
    assert!(published > 0);
    assert_eq!(
        nsqd.topic_stats("sub_bench").unwrap()["message_count"],
        published
    );

    let (code, out, err) = bench(&[
        "sub",
        "--nsqd-tcp-address",
        &addr,
        "--runfor",
        "1s",
        "--connections",
        "1",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    // However fast this build is, it consumed some and no more than exist.
    let consumed = json_lines(&out)[0]["messages"].as_u64().unwrap();
    assert!(
        consumed > 0 && consumed <= published,
        "{consumed} of {published}"
    );

    let (code, out, err) = bench(&[
        "latency",
        "--nsqd-tcp-address",
        &addr,
        "--runfor",
        "500ms",
        "--rate",
        "200",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("latency us p50="), "{out}");

    let (code, out, err) = bench(&["baseline", "--runfor", "200ms", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(json_lines(&out)[0]["mb_per_sec"].as_f64().unwrap() > 0.0);
}

#[test]
fn unreachable_nsqd_is_one_clear_line() {
    let (_held, free) = support::refused_addr();
    let (code, out, err) = bench(&[
        "pub",
        "--nsqd-tcp-address",
        &free.to_string(),
        "--runfor",
        "1s",
    ]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("nsq-bench: cannot connect to nsqd at"),
        "{err}"
    );
}

#[test]
fn encoded_connections_publish_and_consume() {
    let nsqd = Nsqd::start(&[]);
    let addr = nsqd.tcp.to_string();
    for flag in ["--snappy", "--deflate", "--via-client"] {
        let topic = format!(
            "--topic=bench_{}",
            flag.trim_start_matches('-').replace('-', "_")
        );
        let (code, out, err) = bench(&[
            "pub",
            "--nsqd-tcp-address",
            &addr,
            &topic,
            "--runfor",
            "300ms",
            "--connections",
            "1",
            "--json",
            flag,
        ]);
        assert_eq!(code, 0, "{flag}: {err}");
        let published = json_lines(&out)[0]["messages"].as_u64().unwrap();
        assert!(published > 0, "{flag}");
        let (code, out, err) = bench(&[
            "sub",
            "--nsqd-tcp-address",
            &addr,
            &topic,
            "--runfor",
            "500ms",
            "--connections",
            "1",
            "--json",
            flag,
        ]);
        assert_eq!(code, 0, "{flag}: {err}");
        let consumed = json_lines(&out)[0]["messages"].as_u64().unwrap();
        assert!(
            consumed > 0 && consumed <= published,
            "{flag}: {consumed} of {published}"
        );
    }
}

/// `connections` opens and subscribes them all at once; with `--nsqd-pid`
/// every report carries nsqd's CPU and memory cost.
#[test]
fn connections_mode_and_daemon_cost() {
    let nsqd = Nsqd::start(&[]);
    let addr = nsqd.tcp.to_string();
    let pid = nsqd.pid().to_string();
    let (code, out, err) = bench(&[
        "connections",
        "--nsqd-tcp-address",
        &addr,
        "--count",
        "200",
        "--nsqd-pid",
        &pid,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r = &json_lines(&out)[0];
    assert_eq!(r["mode"], "connections");
    assert_eq!(r["messages"], 200);
    assert!(r["daemon"]["rss_bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(r["daemon"]["cpu_ns_per_item"].as_f64().is_some(), "{r}");
    // They were real subscribers on nsqd's channel.
    assert!(nsqd.channel_stats("conn_bench", "ch").is_some());

    let (code, out, err) = bench(&[
        "pub",
        "--nsqd-tcp-address",
        &addr,
        "--runfor",
        "200ms",
        "--nsqd-pid",
        &pid,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ns CPU/msg"), "{out}");

    let (code, _, err) = bench(&[
        "connections",
        "--nsqd-tcp-address",
        &addr,
        "--count",
        "1",
        "--nsqd-pid",
        "0",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("pid 0"), "{err}");
}

/// `idle` creates the topics with their channels, then reports nsqd's CPU
/// while idle; it needs the pid.
#[test]
fn idle_mode_creates_topics_and_reports_idle_cpu() {
    let nsqd = Nsqd::start(&[]);
    let http = nsqd.http.to_string();
    let pid = nsqd.pid().to_string();
    let (code, out, err) = bench(&[
        "idle",
        "--nsqd-http-address",
        &http,
        "--topics",
        "20",
        "--channels",
        "2",
        "--runfor",
        "200ms",
        "--nsqd-pid",
        &pid,
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r = &json_lines(&out)[0];
    assert_eq!(r["mode"], "idle");
    assert!(r["idle_cpu_percent"].as_f64().is_some(), "{r}");
    assert!(r["daemon"]["rss_bytes"].as_u64().unwrap() > 0, "{r}");
    let stats = nsqd.stats();
    let topics = stats["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 20);
    assert!(topics
        .iter()
        .all(|t| t["channels"].as_array().unwrap().len() == 2));

    let (code, _, err) = bench(&["idle", "--nsqd-http-address", &http]);
    assert_eq!(code, 1);
    assert!(err.contains("idle needs --nsqd-pid"), "{err}");
}
