//! The command-line tools end to end: real binaries, real pipes.

use crate::support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};
use support::{run_binary, wait_until, Nsqd};

const PUB: &str = env!("CARGO_BIN_EXE_nsq-pub");
const TAIL: &str = env!("CARGO_BIN_EXE_nsq-tail");

/// Run nsq-pub with `input` on stdin: exit code and stderr.
fn publish(args: &[&str], input: &[u8]) -> (i32, String) {
    let mut child = Process::new(PUB)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = wait_with_deadline(child);
    writer.join().unwrap();
    (out.0, out.2)
}

/// Wait (bounded) for a child; exit code, stdout, stderr. Killed on timeout.
fn wait_with_deadline(mut child: Child) -> (i32, Vec<u8>, String) {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = String::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_string(&mut v);
        }
        v
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tool did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.code().unwrap_or(-1),
        out_reader.join().unwrap(),
        err_reader.join().unwrap(),
    )
}

fn tail(args: &[&str]) -> (i32, Vec<u8>, String) {
    let child = Process::new(TAIL)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_with_deadline(child)
}

#[test]
fn seq_through_pub_and_tail() {
    let nsqd = Nsqd::start(&[]);
    let addr = format!("--nsqd-tcp-address={}", nsqd.tcp);
    // The channel first, so that nsq-tail can use it after the publish.
    assert_eq!(
        nsqd.http("POST", "/topic/create?topic=seq", b"").status,
        200
    );
    assert_eq!(
        nsqd.http("POST", "/channel/create?topic=seq&channel=c", b"")
            .status,
        200
    );
    let input: String = (1..=10_000).map(|i| format!("{i}\n")).collect();
    let (code, err) = publish(&["--topic=seq", &addr], input.as_bytes());
    assert_eq!((code, err.as_str()), (0, ""));
    let (code, out, err) = tail(&[
        "--topic=seq",
        "--channel=c",
        &addr,
        "-n",
        "10000",
        "--timeout=15s",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
    assert_eq!(lines.len(), 10_000);
    let got: HashSet<&str> = lines.into_iter().collect();
    let expected: HashSet<String> = (1..=10_000).map(|i| i.to_string()).collect();
    assert_eq!(got, expected.iter().map(String::as_str).collect());
}

#[test]
fn binary_bodies_with_a_custom_delimiter() {
    let nsqd = Nsqd::start(&[]);
    let addr = format!("--nsqd-tcp-address={}", nsqd.tcp);
    let mut consumer = support::consumer(&nsqd, "bin", "c", 10);
    // NUL-separated, bodies with newlines and high bytes; the last one has
    // no trailing delimiter and is kept whole.
    let bodies: [&[u8]; 3] = [b"line one\nline two", b"\xff\xfe\x01", b"last"];
    let input = [bodies[0], b"\0", bodies[1], b"\0\0", bodies[2]].concat();
    let (code, err) = publish(&["--topic=bin", &addr, "--delimiter=\\0"], &input);
    assert_eq!((code, err.as_str()), (0, ""));
    let got: Vec<Vec<u8>> = (0..3)
        .map(|_| consumer.expect_message().body.to_vec())
        .collect();
    assert_eq!(got, bodies.iter().map(|b| b.to_vec()).collect::<Vec<_>>());
}

#[test]
fn rate_is_honoured() {
    let nsqd = Nsqd::start(&[]);
    let addr = format!("--nsqd-tcp-address={}", nsqd.tcp);
    let input: String = (0..40).map(|i| format!("{i}\n")).collect();
    let started = Instant::now();
    let (code, err) = publish(&["--topic=slow", &addr, "--rate=100"], input.as_bytes());
    let took = started.elapsed();
    assert_eq!((code, err.as_str()), (0, ""));
    // 40 messages at 100/s need at least 0.39 s; generous bounds.
    assert!(took >= Duration::from_millis(350), "took {took:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn pub_fails_clearly_when_nsqd_is_down_or_refuses() {
    // Down: nothing listens on this port.
    let (_held, nobody) = support::refused_addr();
    let down = format!("--nsqd-tcp-address={nobody}");
    let (code, err) = publish(&["--topic=t", &down], b"x\n");
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("nsq-pub: cannot connect to nsqd at 127.0.0.1:"),
        "{err}"
    );

    // Refused: the third message is over --max-msg-size. nsqd closes the
    // connection after the error, so sending the next ones may fail
    // first: the report must still name message 3 and nsqd's reason. The
    // race goes either way, hence the repeats.
    let nsqd = Nsqd::start(&["--max-msg-size=10"]);
    let addr = format!("--nsqd-tcp-address={}", nsqd.tcp);
    for _ in 0..20 {
        let (code, err) = publish(
            &["--topic=t", &addr, "--batch-size=1"],
            b"ok1\nok2\nthis one is too long\nok4\nok5\nok6\n",
        );
        assert_eq!(code, 1, "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("nsq-pub: message 3 not published: "),
            "{err}"
        );
        assert!(err.contains("E_BAD_MESSAGE"), "{err}");
    }
    // Usage errors: status 2.
    assert_eq!(publish(&["--topic=t"], b"x\n").0, 2);
    assert_eq!(
        publish(&["--topic=t", &addr, "--delimiter=ab"], b"x\n").0,
        2
    );
}

#[test]
fn tail_into_head_exits_quietly() {
    let nsqd = Nsqd::start(&[]);
    let addr = format!("--nsqd-tcp-address={}", nsqd.tcp);
    let mut child = Process::new(TAIL)
        .args(["--topic=h", &addr])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("nsq-tail subscribed", || {
        nsqd.topic_stats("h").is_some_and(|t| {
            t["channels"]
                .as_array()
                .is_some_and(|c| c.len() == 1 && c[0]["client_count"] == 1)
        })
    });
    let mut p = nsqd.connect();
    for i in 0..3 {
        p.publish("h", format!("m{i}").as_bytes());
    }
    // `head -3`: read three lines, then close the pipe.
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    for i in 0..3 {
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, format!("m{i}\n"));
    }
    drop(reader);
    // The next write meets the closed pipe.
    for i in 3..10 {
        p.publish("h", format!("m{i}").as_bytes());
    }
    let (code, _, err) = wait_with_deadline(child);
    assert_eq!((code, err.as_str()), (0, ""));
}

#[test]
fn tail_sigint_and_timeout() {
    let nsqd = Nsqd::start(&[]);
    let addr = format!("--nsqd-tcp-address={}", nsqd.tcp);
    let (code, _, err) = tail(&["--topic=none", &addr, "-n", "5", "--timeout=300ms"]);
    assert_eq!(code, 1);
    assert!(err.contains("timed out: 0 of 5 messages"), "{err}");

    let child = Process::new(TAIL)
        .args(["--topic=quiet", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("nsq-tail subscribed", || {
        nsqd.topic_stats("quiet").is_some_and(|t| {
            t["channels"]
                .as_array()
                .is_some_and(|c| c.len() == 1 && c[0]["client_count"] == 1)
        })
    });
    support::signal(child.id(), "INT");
    let (code, _, err) = wait_with_deadline(child);
    assert_eq!((code, err.as_str()), (0, ""));
}

#[test]
fn tail_print_topic_over_several_topics() {
    let nsqd = Nsqd::start(&[]);
    let addr = format!("--nsqd-tcp-address={}", nsqd.tcp);
    for t in ["a", "b"] {
        assert_eq!(
            nsqd.http("POST", &format!("/topic/create?topic={t}"), b"")
                .status,
            200
        );
        assert_eq!(
            nsqd.http("POST", &format!("/channel/create?topic={t}&channel=c"), b"")
                .status,
            200
        );
        let r = nsqd.http(
            "POST",
            &format!("/pub?topic={t}"),
            format!("to-{t}").as_bytes(),
        );
        assert_eq!(r.status, 200);
    }
    let (code, out, err) = tail(&[
        "--topic=a",
        "--topic=b",
        "--channel=c",
        &addr,
        "-n",
        "2",
        "--print-topic",
        "--timeout=10s",
    ]);
    assert_eq!(code, 0, "{err}");
    let got: HashSet<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        got,
        ["a | to-a".to_string(), "b | to-b".to_string()]
            .into_iter()
            .collect()
    );
}

#[test]
fn tools_document_their_flags_and_version() {
    for (bin, flags) in [
        (
            PUB,
            &[
                "--topic",
                "--delimiter",
                "--nsqd-tcp-address",
                "--rate",
                "--batch-size",
                "--quiet",
            ][..],
        ),
        (
            TAIL,
            &[
                "--topic",
                "--channel",
                "--nsqd-tcp-address",
                "--lookupd-http-address",
                "-n",
                "--print-topic",
                "--max-in-flight",
                "--timeout",
            ][..],
        ),
    ] {
        let (code, out, _) = run_binary(bin, &["--help"]);
        assert_eq!(code, 0);
        for f in flags {
            assert!(out.contains(f), "{bin} --help lacks {f}");
        }
        let (code, out, _) = run_binary(bin, &["--version"]);
        assert_eq!(code, 0);
        assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
        // Go-style single-dash flags, as NSQ's tools take them.
        let (code, _, err) = run_binary(bin, &["-topic=x", "-bogus-flag"]);
        assert_eq!(code, 2, "{err}");
    }
}

const STAT: &str = env!("CARGO_BIN_EXE_nsq-stat");
const TO_FILE: &str = env!("CARGO_BIN_EXE_nsq-to-file");

#[test]
fn stat_json_matches_stats() {
    let nsqd = Nsqd::start(&[]);
    assert_eq!(nsqd.http("POST", "/topic/create?topic=s", b"").status, 200);
    assert_eq!(
        nsqd.http("POST", "/channel/create?topic=s&channel=c", b"")
            .status,
        200
    );
    let mut p = nsqd.connect();
    for i in 0..7 {
        p.publish("s", format!("{i}").as_bytes());
    }
    let mut consumer = support::consumer(&nsqd, "s", "c", 2);
    let _in_flight = (consumer.expect_message(), consumer.expect_message());
    let addr = format!("--nsqd-http-address={}", nsqd.http);
    let (code, out, err) = run_binary(
        STAT,
        &[
            "--topic=s",
            "--channel=c",
            &addr,
            "--interval=100ms",
            "--count=2",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    let stats = nsqd.channel_stats("s", "c").unwrap();
    for row in &rows {
        for key in [
            "depth",
            "backend_depth",
            "in_flight_count",
            "deferred_count",
            "requeue_count",
            "timeout_count",
            "message_count",
            "client_count",
        ] {
            assert_eq!(row[key], stats[key], "{key}");
        }
        assert_eq!(
            (row["ingress"].as_i64(), row["egress"].as_i64()),
            (Some(0), Some(0))
        );
    }
    assert_eq!(rows[0]["depth"], 5);
    // The table: header lines, then rows in nsq_stat's widths.
    let (code, out, _) = run_binary(
        STAT,
        &[
            "--topic=s",
            "--channel=c",
            &addr,
            "--interval=100ms",
            "--count=1",
        ],
    );
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], "ingress  egress |   total     mem    disk inflt   def |     req     t-o         msgs clients");
    assert_eq!(lines[2], "      0       0 |       5       5       0     2     0 |       0       0            7       1");
    // A channel nowhere: one clear line, status 1.
    let (code, _, err) = run_binary(
        STAT,
        &[
            "--topic=s",
            "--channel=none",
            &addr,
            "--interval=50ms",
            "--count=1",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("failed to find channel(none) in stats metadata for topic(s)"),
        "{err}"
    );
}

/// Every line of every file in `dir`, gunzipping `.gz` files.
fn archived_lines(dir: &std::path::Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let raw = std::fs::read(&path).unwrap();
        let text = if path.extension().is_some_and(|e| e == "gz") {
            let mut s = String::new();
            flate2::read::MultiGzDecoder::new(&raw[..])
                .read_to_string(&mut s)
                .unwrap();
            s
        } else {
            String::from_utf8(raw).unwrap()
        };
        lines.extend(text.lines().map(str::to_string));
    }
    lines
}

fn to_file_survives_restart(gzip: bool) {
    let nsqd = Nsqd::start(&[]);
    assert_eq!(
        nsqd.http("POST", "/topic/create?topic=arch", b"").status,
        200
    );
    assert_eq!(
        nsqd.http(
            "POST",
            "/channel/create?topic=arch&channel=nsq_to_file",
            b""
        )
        .status,
        200
    );
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--topic=arch".to_string(),
        format!("--nsqd-tcp-address={}", nsqd.tcp),
        format!("--output-dir={}", out.path().display()),
        format!("--work-dir={}", work.path().display()),
        "--rotate-size=2000".to_string(),
        "--sync-interval=100ms".to_string(),
        // Should a message be left in flight by the stopped instance, it
        // comes back in 2 s rather than after nsqd's default minute.
        "--consumer-opt=msg_timeout=2s".to_string(),
    ];
    if gzip {
        args.push("--gzip".into());
    }
    let start = || {
        Process::new(TO_FILE)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let bodies: Vec<String> = (0..600)
        .map(|i| format!("archived message {i:04}"))
        .collect();
    let mut p = nsqd.connect();
    let mut tool = start();
    for b in &bodies[..300] {
        p.publish("arch", b.as_bytes());
    }
    // Stopped mid-stream, once some (not necessarily all) are written.
    wait_until("some messages archived", || {
        nsqd.channel_stats("arch", "nsq_to_file")
            .is_some_and(|c| c["depth"].as_i64().unwrap() < 300)
    });
    support::signal(tool.id(), "TERM");
    let (code, _, err) = wait_with_deadline(tool);
    assert_eq!(code, 0, "{err}");
    for b in &bodies[300..] {
        p.publish("arch", b.as_bytes());
    }
    tool = start();
    wait_until("everything archived and finished", || {
        nsqd.channel_stats("arch", "nsq_to_file").is_some_and(|c| {
            c["depth"] == 0 && c["in_flight_count"] == 0 && c["message_count"] == 600
        })
    });
    support::signal(tool.id(), "TERM");
    let (code, _, err) = wait_with_deadline(tool);
    assert_eq!(code, 0, "{err}");

    // Finished files all moved out of the work dir; rotated by size.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
    let files: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(files.len() >= 3, "rotation by size: {files:?}");
    for f in &files {
        assert!(f.starts_with("arch."), "{f}");
        assert_eq!(f.ends_with(".log.gz"), gzip, "{f}");
    }
    // Nothing lost; a message could in principle be written twice
    // (at-least-once), which this test reports if it happens.
    let lines = archived_lines(out.path());
    let got: std::collections::BTreeSet<String> = lines.iter().cloned().collect();
    let expected: std::collections::BTreeSet<String> = bodies.iter().cloned().collect();
    assert_eq!(got, expected, "every message archived");
    if lines.len() != bodies.len() {
        eprintln!("note: {} duplicate line(s)", lines.len() - bodies.len());
    }
}

#[test]
fn to_file_plain_survives_restart() {
    to_file_survives_restart(false);
}

#[test]
fn to_file_gzip_survives_restart() {
    to_file_survives_restart(true);
}

#[test]
fn tools_find_nsqd_through_lookupd() {
    let lookupd = support::Lookupd::start(&["--broadcast-address=127.0.0.1"]);
    let nsqd = Nsqd::start(&[
        &format!("--lookupd-tcp-address={}", lookupd.tcp),
        "--broadcast-address=127.0.0.1",
    ]);
    let lookup = format!("--lookupd-http-address={}", lookupd.http);
    assert_eq!(
        nsqd.http("POST", "/topic/create?topic=found", b"").status,
        200
    );
    assert_eq!(
        nsqd.http("POST", "/channel/create?topic=found&channel=c", b"")
            .status,
        200
    );
    wait_until("registered", || {
        let r = support::http_request(lookupd.http, "GET", "/lookup?topic=found", b"");
        r.status == 200
            && r.json()["producers"]
                .as_array()
                .is_some_and(|p| p.len() == 1)
    });
    let mut p = nsqd.connect();
    for i in 0..5 {
        p.publish("found", format!("via lookupd {i}").as_bytes());
    }
    let (code, out, err) = run_binary(
        STAT,
        &[
            "--topic=found",
            "--channel=c",
            &lookup,
            "--interval=50ms",
            "--count=1",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let row: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(row["depth"], 5);
    let (code, out, err) = tail(&[
        "--topic=found",
        "--channel=c",
        &lookup,
        "--lookupd-poll-interval=100ms",
        "-n",
        "5",
        "--timeout=10s",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 5);

    // nsq-to-file without --topic: topics come from lookupd, filtered by
    // --topic-pattern.
    assert_eq!(
        nsqd.http("POST", "/topic/create?topic=skipped", b"").status,
        200
    );
    let r = nsqd.http("POST", "/pub?topic=skipped", b"not archived");
    assert_eq!(r.status, 200);
    for i in 0..3 {
        p.publish("found", format!("archived {i}").as_bytes());
    }
    let out = tempfile::tempdir().unwrap();
    let tool = Process::new(TO_FILE)
        .args([
            lookup.as_str(),
            "--topic-pattern=^fou",
            "--topic-refresh=100ms",
            "--lookupd-poll-interval=100ms",
            "--channel=c",
            "--sync-interval=100ms",
            &format!("--output-dir={}", out.path().display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("archived through discovery", || {
        nsqd.channel_stats("found", "c")
            .is_some_and(|c| c["depth"] == 0 && c["in_flight_count"] == 0)
    });
    support::signal(tool.id(), "TERM");
    let (code, _, err) = wait_with_deadline(tool);
    assert_eq!(code, 0, "{err}");
    let mut lines = archived_lines(out.path());
    lines.sort();
    assert_eq!(lines, ["archived 0", "archived 1", "archived 2"]);
    assert!(
        nsqd.channel_stats("skipped", "c").is_none(),
        "not matching the pattern"
    );
}

#[test]
fn unreachable_addresses_fail_fast_with_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcp = format!("--nsqd-tcp-address=127.0.0.1:{port}");
    let http = format!("--nsqd-http-address=127.0.0.1:{port}");
    let out = tempfile::tempdir().unwrap();
    let out_dir = format!("--output-dir={}", out.path().display());
    for (bin, args) in [
        (TAIL, vec!["--topic=t", tcp.as_str()]),
        (
            STAT,
            vec!["--topic=t", "--channel=c", http.as_str(), "--interval=50ms"],
        ),
        (TO_FILE, vec!["--topic=t", tcp.as_str(), out_dir.as_str()]),
    ] {
        let started = Instant::now();
        let child = Process::new(bin)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (code, _, err) = wait_with_deadline(child);
        assert_eq!(code, 1, "{bin}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{bin} took too long"
        );
        let lines: Vec<&str> = err.lines().filter(|l| !l.contains(" INFO: ")).collect();
        assert_eq!(lines.len(), 1, "{bin}: {err}");
        assert!(
            lines[0].contains(&format!("127.0.0.1:{port}")),
            "{bin}: {err}"
        );
    }
}

#[test]
fn tail_reconnects_when_nsqd_restarts() {
    let mut nsqd = Nsqd::start_restartable(&[]);
    let tcp = nsqd.tcp;
    assert_eq!(nsqd.http("POST", "/topic/create?topic=r", b"").status, 200);
    assert_eq!(
        nsqd.http("POST", "/channel/create?topic=r&channel=c", b"")
            .status,
        200
    );
    let mut child = Process::new(TAIL)
        .args([
            "--topic=r",
            "--channel=c",
            &format!("--nsqd-tcp-address={tcp}"),
            "-n",
            "2",
            "--timeout=20s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let stderr = lines_of(child.stderr.take().unwrap());
    nsqd.connect().publish("r", b"before");
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "before\n");
    // Restart nsqd on the same address and data (the channel survives),
    // once nsq-tail has finished "before" (else it is written back at
    // shutdown and comes again: at-least-once) and said it cannot reach it.
    wait_until("before finished", || {
        nsqd.channel_stats("r", "c")
            .is_some_and(|c| c["in_flight_count"] == 0 && c["depth"] == 0)
    });
    assert!(nsqd.stop().success());
    wait_until("nsq-tail reports the lost nsqd", || {
        stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("will keep trying"))
    });
    let nsqd = Nsqd::start_in(nsqd.into_data(), &[&format!("--tcp-address={tcp}")]);
    assert_eq!(nsqd.tcp, tcp);
    nsqd.connect().publish("r", b"after");
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "after\n");
    let (code, _, _) = wait_with_deadline(child);
    let err = stderr.lock().unwrap().join("\n");
    assert_eq!(code, 0, "{err}");
    // However many retries failed: one line for the loss, one for the return.
    let count = |s: &str| err.lines().filter(|l| l.contains(s)).count();
    assert_eq!(count("cannot connect"), 1, "{err}");
    assert_eq!(count("reachable again"), 1, "{err}");
}

/// Collect a child's output lines as they come.
fn lines_of(r: impl Read + Send + 'static) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// Register with `lookupd` an nsqd that is not there (TCP and HTTP port
/// `port`, where nothing listens), for `topic`. Kept while the stream lives.
fn register_ghost(lookupd: &support::Lookupd, topic: &str, port: u16) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(lookupd.tcp).unwrap();
    let body = format!(
        r#"{{"broadcast_address":"127.0.0.1","hostname":"ghost","http_port":{port},"tcp_port":{port},"version":"1.3.0"}}"#
    );
    s.write_all(b"  V1IDENTIFY\n").unwrap();
    s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    s.write_all(format!("REGISTER {topic} c\n").as_bytes())
        .unwrap();
    wait_until("the ghost is registered", || {
        !lookupd.producers(topic).is_empty()
    });
    s
}

/// Found through nsqlookupd but unreachable: nsq-tail and nsq-to-file say
/// so once (not at every poll), and fail with the reason.
#[test]
fn unreachable_producers_are_reported_once() {
    let lookupd = support::Lookupd::start(&[]);
    let (_held, nobody) = support::refused_addr();
    let _ghost = register_ghost(&lookupd, "g", nobody.port());
    let lookupd_arg = format!("--lookupd-http-address={}", lookupd.http);
    let (code, _, err) = tail(&[
        "--topic=g",
        &lookupd_arg,
        "--lookupd-poll-interval=50ms",
        "-n",
        "1",
        "--timeout=1500ms",
    ]);
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "one warning, one failure: {err}");
    assert!(
        lines[0].contains(&format!("cannot connect to nsqd at {nobody}")),
        "{err}"
    );
    assert!(
        lines[1].starts_with("nsq-tail: timed out: 0 of 1 messages")
            && lines[1].contains("no nsqd could be reached")
            && lines[1].contains(&format!("{nobody}")),
        "{err}"
    );

    // A topic nobody has: the timeout says so.
    let (code, _, err) = tail(&["--topic=nobody", &lookupd_arg, "-n", "1", "--timeout=300ms"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("nsqlookupd reports no nsqd with the topic"),
        "{err}"
    );

    // nsq-to-file keeps trying, quietly after the first line; stopped, it
    // fails instead of exiting 0 with nothing archived.
    let out = tempfile::tempdir().unwrap();
    let mut child = Process::new(TO_FILE)
        .args([
            "--topic=g",
            &lookupd_arg,
            "--lookupd-poll-interval=50ms",
            &format!("--output-dir={}", out.path().display()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    wait_until("nsq-to-file reports the ghost", || {
        stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("cannot connect"))
    });
    // Polls go on meanwhile; wait for several before stopping.
    let polls_before = std::time::Instant::now();
    wait_until("a few polls", || {
        polls_before.elapsed() > Duration::from_millis(400)
    });
    support::signal(child.id(), "INT");
    let (code, _, _) = wait_with_deadline(child);
    let err = stderr.lock().unwrap().join("\n");
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("cannot connect")).count(),
        2,
        "{err}"
    );
    assert!(
        err.lines()
            .last()
            .unwrap()
            .contains("topic g: no nsqd could be reached"),
        "{err}"
    );
}

/// `nsq-tail --peek` prints the next messages without consuming them.
#[test]
fn tail_peek_consumes_nothing() {
    let nsqd = Nsqd::start(&[]);
    nsqd.http("POST", "/topic/create?topic=pk", b"");
    nsqd.http("POST", "/channel/create?topic=pk&channel=c", b"");
    let mut p = nsqd.connect();
    for body in ["one", "two", "three"] {
        p.publish("pk", body.as_bytes());
    }
    let http = format!("--nsqd-http-address={}", nsqd.http);
    let (code, out, err) = tail(&["--topic=pk", "--channel=c", "--peek", &http, "-n", "2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8(out).unwrap(), "one\ntwo\n");
    let (code, out, _) = tail(&["--topic=pk", "--channel=c", "--peek", &http]);
    assert_eq!(
        (code, String::from_utf8(out).unwrap().as_str()),
        (0, "one\ntwo\nthree\n")
    );
    assert_eq!(
        nsqd.channel_stats("pk", "c").unwrap()["depth"],
        3,
        "nothing consumed"
    );
    let (code, _, err) = tail(&["--topic=pk", "--peek", &http]);
    assert_eq!(code, 2, "{err}");
}
