//! Snappy and deflate connections: our tools and an independent client
//! (tokio-nsq) against nsqd, alone and over TLS, and clients that send
//! garbage once compressed.

use crate::support;

use bytes::{Bytes, BytesMut};
use nsq::protocol::{Command, Frame, FrameDecoder, MAGIC_V2};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command as Process, Stdio};
use std::time::Duration;
use support::{run_binary, Nsqd, Pki};
use tokio_util::codec::Decoder;

const PUB: &str = env!("CARGO_BIN_EXE_nsq-pub");
const TAIL: &str = env!("CARGO_BIN_EXE_nsq-tail");

fn pipe_into(args: &[&str], input: &[u8]) -> (i32, String) {
    let mut child = Process::new(PUB)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Publish `bodies` with `flags`, tail them back with the same flags.
fn round_trip(nsqd: &Nsqd, topic: &str, flags: &[&str], bodies: &[String]) {
    let addr = format!("--nsqd-tcp-address={}", nsqd.tcp);
    let topic_flag = format!("--topic={topic}");
    let input: String = bodies.iter().map(|b| format!("{b}\n")).collect();
    let mut args = vec![topic_flag.as_str(), addr.as_str()];
    args.extend_from_slice(flags);
    let (code, err) = pipe_into(&args, input.as_bytes());
    assert_eq!(code, 0, "{flags:?}: {err}");
    let n = bodies.len().to_string();
    let mut args = vec![
        topic_flag.as_str(),
        addr.as_str(),
        "--channel=c",
        "-n",
        n.as_str(),
        "--timeout=20s",
    ];
    args.extend_from_slice(flags);
    let (code, out, err) = run_binary(TAIL, &args);
    assert_eq!(code, 0, "{flags:?}: {err}");
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    let mut expected: Vec<&str> = bodies.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(got, expected, "{flags:?}");
}

fn bodies() -> Vec<String> {
    // Many small messages and a few large, compressible and not.
    let mut v: Vec<String> = (0..2000).map(|i| format!("small message {i}")).collect();
    v.push("x".repeat(200_000));
    let noise: String = (0..100_000u32)
        .map(|i| char::from(b'!' + ((i.wrapping_mul(2654435761) >> 13) % 90) as u8))
        .collect();
    v.push(noise);
    v
}

#[test]
fn snappy_and_deflate_round_trip() {
    let nsqd = Nsqd::start(&[]);
    round_trip(&nsqd, "snappy", &["--snappy"], &bodies());
    round_trip(
        &nsqd,
        "deflate",
        &["--deflate", "--deflate-level=9"],
        &bodies(),
    );
    // Client info in /stats says which.
}

#[test]
fn compression_over_tls() {
    let pki = Pki::new();
    let nsqd = Nsqd::start(&[
        &format!("--tls-cert={}", pki.path("server.pem")),
        &format!("--tls-key={}", pki.path("server.key")),
        "--https-address=127.0.0.1:0",
        "--tls-required=true",
    ]);
    let ca = format!("--tls-root-ca-file={}", pki.path("ca.pem"));
    let few: Vec<String> = bodies().into_iter().skip(1990).collect();
    round_trip(&nsqd, "ts", &[&ca, "--snappy"], &few);
    round_trip(&nsqd, "td", &[&ca, "--deflate"], &few);
}

#[test]
fn both_compressions_are_refused_and_options_honoured() {
    let nsqd = Nsqd::start(&["--snappy=false"]);
    let mut c = nsqd.connect();
    let answer = c.identify(serde_json::json!({"feature_negotiation": true, "snappy": true}));
    let Frame::Response(json) = answer else {
        panic!("{answer:?}")
    };
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["snappy"], false, "--snappy=false: not offered");
    // Plain text goes on.
    c.publish("t", b"still plain");

    let nsqd = Nsqd::start(&["--max-deflate-level=3"]);
    let mut c = nsqd.connect();
    let answer = c.identify(
        serde_json::json!({"feature_negotiation": true, "snappy": true, "deflate": true}),
    );
    assert_eq!(
        answer,
        Frame::Error(Bytes::from_static(
            b"E_IDENTIFY_FAILED cannot enable both deflate and snappy compression"
        ))
    );
    c.expect_closed();
    // The level is capped by --max-deflate-level.
    let mut s = TcpStream::connect(nsqd.tcp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(MAGIC_V2).unwrap();
    s.write_all(
        &Command::Identify(Bytes::from(
            r#"{"feature_negotiation":true,"deflate":true,"deflate_level":9}"#,
        ))
        .to_bytes(),
    )
    .unwrap();
    let json = read_frame(&mut s, &mut BytesMut::new());
    let Frame::Response(json) = json else {
        panic!()
    };
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        (v["deflate"].as_bool(), v["deflate_level"].as_i64()),
        (Some(true), Some(3))
    );
}

fn read_frame(s: &mut TcpStream, buf: &mut BytesMut) -> Frame {
    let mut decoder = FrameDecoder::default();
    loop {
        if let Some(f) = decoder.decode(buf).unwrap() {
            return f;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn garbage_after_compression_closes_the_connection_only() {
    let nsqd = Nsqd::start(&[]);
    for (feature, junk) in [
        (
            "snappy",
            &b"\xff\x06\x00\x00sNaPpY\x00\x09\x00\x00\xde\xad\xbe\xefjunk!"[..],
        ),
        ("snappy", &b"this is not snappy at all\n"[..]),
        ("deflate", &b"\xff\xff\xff\xff not deflate"[..]),
    ] {
        let mut s = TcpStream::connect(nsqd.tcp).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(MAGIC_V2).unwrap();
        let body = format!(r#"{{"feature_negotiation":true,"{feature}":true}}"#);
        s.write_all(&Command::Identify(Bytes::from(body)).to_bytes())
            .unwrap();
        let mut buf = BytesMut::new();
        assert!(matches!(read_frame(&mut s, &mut buf), Frame::Response(_)));
        // The OK comes compressed; skip reading it and send garbage.
        s.write_all(junk).unwrap();
        let mut rest = Vec::new();
        match s.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{feature}: the connection must be closed, not left waiting"
            ),
        }
    }
    let r = nsqd.http("GET", "/ping", b"");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    assert!(!nsqd.log_text().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_with_snappy_and_deflate() {
    use tokio_nsq::{
        NSQChannel, NSQConfigShared, NSQConfigSharedCompression, NSQConsumerConfig,
        NSQConsumerConfigSources, NSQDeflateLevel, NSQEvent, NSQProducerConfig, NSQTopic,
    };
    let nsqd = Nsqd::start(&[]);
    let addr = nsqd.tcp.to_string();
    for (name, compression) in [
        ("s", NSQConfigSharedCompression::Snappy),
        (
            "d",
            NSQConfigSharedCompression::Deflate(NSQDeflateLevel::new(6).unwrap()),
        ),
    ] {
        let shared = || NSQConfigShared::new().set_compression(compression.clone());
        let topic = NSQTopic::new(format!("interop_{name}")).unwrap();
        let mut producer = NSQProducerConfig::new(addr.clone())
            .set_shared(shared())
            .build();
        let healthy = tokio::time::timeout(Duration::from_secs(10), producer.consume())
            .await
            .unwrap();
        assert!(matches!(healthy, Some(NSQEvent::Healthy())), "{healthy:?}");
        for i in 0..50 {
            producer
                .publish(&topic, format!("{name}-{i}").into_bytes())
                .await
                .unwrap();
        }
        producer.publish(&topic, vec![b'z'; 100_000]).await.unwrap();
        let mut acks = 0;
        while acks < 51 {
            match tokio::time::timeout(Duration::from_secs(10), producer.consume())
                .await
                .unwrap()
            {
                Some(NSQEvent::Ok()) => acks += 1,
                Some(NSQEvent::Healthy()) => {}
                other => panic!("unexpected producer event {other:?}"),
            }
        }
        let mut consumer = NSQConsumerConfig::new(topic.clone(), NSQChannel::new("c").unwrap())
            .set_max_in_flight(100)
            .set_shared(shared())
            .set_sources(NSQConsumerConfigSources::Daemons(vec![addr.clone()]))
            .build();
        let mut seen = 0;
        while seen < 51 {
            let msg = tokio::time::timeout(Duration::from_secs(10), consumer.consume_filtered())
                .await
                .expect("message in time")
                .expect("consumer open");
            seen += 1;
            msg.finish().await;
        }
    }
    drop(nsqd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_over_tls_with_compression() {
    use tokio_nsq::{
        NSQChannel, NSQConfigShared, NSQConfigSharedCompression, NSQConfigSharedTLS,
        NSQConsumerConfig, NSQConsumerConfigSources, NSQDeflateLevel, NSQEvent, NSQProducerConfig,
        NSQTopic,
    };
    let pki = Pki::new();
    let nsqd = Nsqd::start(&[
        &format!("--tls-cert={}", pki.path("server.pem")),
        &format!("--tls-key={}", pki.path("server.key")),
        "--https-address=127.0.0.1:0",
        "--tls-required=true",
    ]);
    let addr = nsqd.tcp.to_string();
    for (name, compression) in [
        ("ts", NSQConfigSharedCompression::Snappy),
        (
            "td",
            NSQConfigSharedCompression::Deflate(NSQDeflateLevel::new(3).unwrap()),
        ),
    ] {
        // tokio-nsq's default TLS verifier accepts any certificate.
        let shared = || {
            NSQConfigShared::new()
                .set_tls(NSQConfigSharedTLS::new("localhost"))
                .set_compression(compression.clone())
        };
        let topic = NSQTopic::new(format!("tls_{name}")).unwrap();
        let mut producer = NSQProducerConfig::new(addr.clone())
            .set_shared(shared())
            .build();
        let healthy = tokio::time::timeout(Duration::from_secs(10), producer.consume())
            .await
            .unwrap();
        assert!(
            matches!(healthy, Some(NSQEvent::Healthy())),
            "{name}: {healthy:?}"
        );
        for i in 0..20 {
            producer
                .publish(&topic, format!("{name}-{i}").into_bytes())
                .await
                .unwrap();
        }
        let mut acks = 0;
        while acks < 20 {
            match tokio::time::timeout(Duration::from_secs(10), producer.consume())
                .await
                .unwrap()
            {
                Some(NSQEvent::Ok()) => acks += 1,
                Some(NSQEvent::Healthy()) => {}
                other => panic!("{name}: unexpected producer event {other:?}"),
            }
        }
        let mut consumer = NSQConsumerConfig::new(topic.clone(), NSQChannel::new("c").unwrap())
            .set_max_in_flight(50)
            .set_shared(shared())
            .set_sources(NSQConsumerConfigSources::Daemons(vec![addr.clone()]))
            .build();
        for _ in 0..20 {
            let msg = tokio::time::timeout(Duration::from_secs(10), consumer.consume_filtered())
                .await
                .expect("message in time")
                .expect("consumer open");
            msg.finish().await;
        }
    }
    drop(nsqd);
}
