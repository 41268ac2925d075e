//! nsqd and nsqlookupd listening on unix sockets (`--tcp-address` and
//! `--http-address` given a path), and the tools reaching nsqd there.

use crate::support::{
    self, http_request_unix, run_binary_with_input, signal, spawn_daemon_anywhere, wait_until,
    DEADLINE,
};
use nsq::protocol::{Command, Frame, FrameDecoder, MAGIC_V2};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;

const NSQD: &str = env!("CARGO_BIN_EXE_nsqd");
const NSQLOOKUPD: &str = env!("CARGO_BIN_EXE_nsqlookupd");

/// A daemon whose addresses may be paths; killed on drop.
struct Daemon {
    child: Child,
    tcp: String,
    http: String,
    log: Arc<Mutex<Vec<String>>>,
    _data: Option<tempfile::TempDir>,
}

impl Daemon {
    fn nsqd(args: &[String]) -> Daemon {
        let data = tempfile::tempdir().unwrap();
        let mut all = vec![format!("--data-path={}", data.path().display())];
        all.extend(args.iter().cloned());
        let (child, tcp, http, log) = spawn_daemon_anywhere(NSQD, &all);
        Daemon {
            child,
            tcp,
            http,
            log,
            _data: Some(data),
        }
    }

    fn lookupd(args: &[String]) -> Daemon {
        let (child, tcp, http, log) = spawn_daemon_anywhere(NSQLOOKUPD, args);
        Daemon {
            child,
            tcp,
            http,
            log,
            _data: None,
        }
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM, then the exit status (bounded wait).
    fn stop(&mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn path_arg(flag: &str, path: &Path) -> String {
    format!("--{flag}={}", path.display())
}

fn get(socket: &Path, target: &str) -> (u16, String) {
    let r = http_request_unix(socket, "GET", target, b"");
    (r.status, r.text())
}

/// A protocol V2 connection over a unix socket, magic sent.
pub(crate) struct V2 {
    stream: UnixStream,
    buf: bytes::BytesMut,
}

impl V2 {
    pub(crate) fn connect(socket: &Path) -> V2 {
        let mut stream = UnixStream::connect(socket).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.write_all(MAGIC_V2).unwrap();
        V2 {
            stream,
            buf: bytes::BytesMut::new(),
        }
    }

    /// Send a command; the next frame that is not a heartbeat.
    pub(crate) fn send(&mut self, cmd: Command) -> Frame {
        self.stream.write_all(&cmd.to_bytes()).unwrap();
        loop {
            if let Some(f) = FrameDecoder::default().decode(&mut self.buf).unwrap() {
                if !f.is_heartbeat() {
                    return f;
                }
                continue;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).expect("a frame in time");
            assert!(n > 0, "closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[test]
fn nsqd_serves_tcp_and_http_on_unix_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let (tcp, http) = (dir.path().join("tcp.sock"), dir.path().join("http.sock"));
    let mut nsqd = Daemon::nsqd(&[
        path_arg("tcp-address", &tcp),
        path_arg("http-address", &http),
    ]);
    assert_eq!(
        (nsqd.tcp.as_str(), nsqd.http.as_str()),
        (tcp.to_str().unwrap(), http.to_str().unwrap()),
        "listening on the paths"
    );

    // The HTTP API over the socket; no ports to show, as NSQ's /info.
    assert_eq!(get(&http, "/ping"), (200, "OK".into()));
    let (status, info) = get(&http, "/info");
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        (info["tcp_port"].clone(), info["http_port"].clone()),
        (serde_json::json!(-1), serde_json::json!(-1))
    );
    // ... and none to register with nsqlookupd (as NSQ leaves them).
    assert_eq!(get(&http, "/config/broadcast_tcp_port"), (200, "0".into()));
    assert_eq!(get(&http, "/config/broadcast_http_port"), (200, "0".into()));

    // Protocol V2 over the socket: a client without an address shows as
    // `@` (as Go shows it), with no host for its ID before IDENTIFY.
    let mut consumer = V2::connect(&tcp);
    let ok = Frame::Response(bytes::Bytes::from_static(b"OK"));
    let sub = Command::Sub {
        topic: "t".into(),
        channel: "c".into(),
    };
    assert_eq!(consumer.send(sub), ok);
    let (_, stats) = get(&http, "/stats?format=json&topic=t&channel=c");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let client = &stats["topics"][0]["channels"][0]["clients"][0];
    assert_eq!(client["remote_address"], "@", "{stats}");
    assert_eq!(client["client_id"], "", "{stats}");
    let mut producer = V2::connect(&tcp);
    let publish = Command::Pub {
        topic: "t".into(),
        body: bytes::Bytes::from_static(b"over the socket"),
    };
    assert_eq!(producer.send(publish), ok);
    match consumer.send(Command::Rdy(1)) {
        Frame::Message(m) => assert_eq!(&m.body[..], b"over the socket"),
        other => panic!("expected the message, got {other:?}"),
    }
    drop((consumer, producer));

    // A clean exit removes both socket files.
    assert!(nsqd.stop().success());
    assert!(!tcp.exists() && !http.exists());
}

#[test]
fn tools_reach_nsqd_on_unix_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let (tcp, http) = (dir.path().join("tcp.sock"), dir.path().join("http.sock"));
    let nsqd = Daemon::nsqd(&[
        path_arg("tcp-address", &tcp),
        path_arg("http-address", &http),
    ]);
    let ok = |r: support::HttpResponse| assert_eq!(r.status, 200, "{}", r.text());
    ok(http_request_unix(
        &http,
        "POST",
        "/topic/create?topic=lines",
        b"",
    ));
    ok(http_request_unix(
        &http,
        "POST",
        "/channel/create?topic=lines&channel=c",
        b"",
    ));

    // nsq-pub → nsq-tail through the TCP socket.
    let addr = format!("--nsqd-tcp-address={}", tcp.display());
    let input: String = (1..=100).map(|i| format!("{i}\n")).collect();
    let (code, _, err) = run_binary_with_input(
        env!("CARGO_BIN_EXE_nsq-pub"),
        &["--topic=lines", &addr],
        Some(input.as_bytes()),
        DEADLINE,
    )
    .expect("nsq-pub exits");
    assert_eq!((code, err.as_str()), (0, ""));
    // The channel holds them: nsq-stat and nsq-tail --peek read them over
    // the HTTP socket.
    let http_addr = format!("--nsqd-http-address={}", http.display());
    let (code, out, err) = support::run_binary_within(
        env!("CARGO_BIN_EXE_nsq-stat"),
        &[
            "--topic=lines",
            "--channel=c",
            &http_addr,
            "--json",
            "--count=1",
            "--interval=100ms",
        ],
        DEADLINE,
    )
    .expect("nsq-stat exits");
    assert_eq!(code, 0, "{err}");
    let row: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(row["depth"], 100, "{out}");
    let (code, out, err) = support::run_binary_within(
        env!("CARGO_BIN_EXE_nsq-tail"),
        &[
            "--topic=lines",
            "--channel=c",
            "--peek",
            &http_addr,
            "-n",
            "3",
        ],
        DEADLINE,
    )
    .expect("nsq-tail --peek exits");
    assert_eq!((code, out.as_str()), (0, "1\n2\n3\n"), "{err}");
    let (code, out, err) = support::run_binary_within(
        env!("CARGO_BIN_EXE_nsq-tail"),
        &["--topic=lines", "--channel=c", &addr, "-n", "100"],
        DEADLINE,
    )
    .expect("nsq-tail exits");
    assert_eq!(code, 0, "{err}");
    let mut got: Vec<u32> = out.lines().map(|l| l.parse().unwrap()).collect();
    got.sort();
    assert_eq!(got, (1..=100).collect::<Vec<u32>>());

    // nsq-bench publishes over the socket.
    let (code, _, err) = support::run_binary_within(
        env!("CARGO_BIN_EXE_nsq-bench"),
        &["pub", &addr, "--topic=bench", "--runfor=200ms", "--size=10"],
        DEADLINE,
    )
    .expect("nsq-bench exits");
    assert_eq!(code, 0, "{err}");
    let count = |topic: &str| {
        let (_, stats) = get(&http, &format!("/stats?format=json&topic={topic}"));
        let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
        stats["topics"][0]["message_count"].as_u64().unwrap_or(0)
    };
    assert!(count("bench") > 0);

    // nsq-to-nsq relays from the socket to the same nsqd's socket.
    let mut relay = std::process::Command::new(env!("CARGO_BIN_EXE_nsq-to-nsq"))
        .args([
            "--topic=bench",
            "--channel=relay",
            &addr,
            &format!("--destination-nsqd-tcp-address={}", tcp.display()),
            "--destination-topic=copy",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let relayed = std::panic::catch_unwind(|| wait_until("relayed", || count("copy") > 0));
    let _ = relay.kill();
    let _ = relay.wait();
    drop(nsqd);
    if let Err(e) = relayed {
        std::panic::resume_unwind(e);
    }
}

/// TLS over a unix socket: the tools check nsqd's certificate for
/// `localhost` (there is no host name in a path).
#[test]
fn tls_over_a_unix_socket() {
    let pki = support::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let tcp = dir.path().join("tcp.sock");
    let mut args = pki.flags();
    args.extend([
        path_arg("tcp-address", &tcp),
        "--http-address=127.0.0.1:0".into(),
        "--tls-required=tcp-https".into(),
    ]);
    let _nsqd = Daemon::nsqd(&args);
    let addr = format!("--nsqd-tcp-address={}", tcp.display());
    let ca = format!("--tls-root-ca-file={}", pki.path("ca.pem"));
    let (code, _, err) = run_binary_with_input(
        env!("CARGO_BIN_EXE_nsq-pub"),
        &["--topic=s", &addr, "--tls", &ca],
        Some(b"secret\n"),
        DEADLINE,
    )
    .expect("nsq-pub exits");
    assert_eq!((code, err.as_str()), (0, ""));
    let (code, out, err) = support::run_binary_within(
        env!("CARGO_BIN_EXE_nsq-tail"),
        &["--topic=s", "--channel=c", &addr, "--tls", &ca, "-n", "1"],
        DEADLINE,
    )
    .expect("nsq-tail exits");
    assert_eq!((code, out.as_str()), (0, "secret\n"), "{err}");
}

#[test]
fn stale_socket_files_are_replaced_live_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let tcp = dir.path().join("tcp.sock");
    // A socket file nothing listens on (a crashed process's).
    drop(UnixListener::bind(&tcp).unwrap());
    assert!(tcp.exists());
    let mut first = Daemon::nsqd(&[
        path_arg("tcp-address", &tcp),
        "--http-address=127.0.0.1:0".into(),
    ]);
    V2::connect(&tcp); // it answers there

    // A second nsqd on the same path refuses to take it over.
    let data = tempfile::tempdir().unwrap();
    let (code, _, err) = support::run_binary_within(
        NSQD,
        &[
            &path_arg("tcp-address", &tcp),
            "--http-address=127.0.0.1:0",
            &path_arg("data-path", data.path()),
        ],
        DEADLINE,
    )
    .expect("exits");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("failed to listen on {} (TCP)", tcp.display()))
            && err.contains("another process is listening"),
        "{err}"
    );
    V2::connect(&tcp); // the first still does

    // Killed (no clean exit), it leaves its file; the next start replaces it.
    first.kill();
    assert!(tcp.exists());
    let mut second = Daemon::nsqd(&[
        path_arg("tcp-address", &tcp),
        "--http-address=127.0.0.1:0".into(),
    ]);
    V2::connect(&tcp);
    assert!(second.stop().success());
    assert!(!tcp.exists());

    // A file that is not a socket is never removed.
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"keep me").unwrap();
    let (code, _, err) = support::run_binary_within(
        NSQD,
        &[
            &path_arg("tcp-address", &plain),
            "--http-address=127.0.0.1:0",
            &path_arg("data-path", data.path()),
        ],
        DEADLINE,
    )
    .expect("exits");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a unix socket"), "{err}");
    assert_eq!(std::fs::read(&plain).unwrap(), b"keep me");
}

/// `/lookup?topic=` over nsqlookupd's HTTP socket: the producers' TCP ports.
fn lookup_ports(http: &Path, topic: &str) -> Vec<serde_json::Value> {
    let (status, body) = get(http, &format!("/lookup?topic={topic}"));
    if status != 200 {
        return vec![];
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["producers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["tcp_port"].clone())
        .collect()
}

#[test]
fn nsqlookupd_on_unix_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let (tcp, http): (PathBuf, PathBuf) = (dir.path().join("l.sock"), dir.path().join("lh.sock"));
    let mut lookupd = Daemon::lookupd(&[
        path_arg("tcp-address", &tcp),
        path_arg("http-address", &http),
    ]);
    assert_eq!(lookupd.tcp, tcp.to_str().unwrap());
    assert_eq!(get(&http, "/ping"), (200, "OK".into()));

    // An nsqd on TCP registers through the socket; the lookupd says it has
    // no HTTP port (-1), so it is not asked for channels.
    let nsqd = support::Nsqd::start(&[
        &path_arg("lookupd-tcp-address", &tcp),
        "--broadcast-address=127.0.0.1",
    ]);
    assert_eq!(nsqd.http("POST", "/topic/create?topic=t", b"").status, 200);
    wait_until("registered", || {
        lookup_ports(&http, "t") == vec![serde_json::json!(nsqd.tcp.port())]
    });
    nsqd.wait_for_log("http_port=-1");
    let (_, nodes) = get(&http, "/nodes");
    let nodes: serde_json::Value = serde_json::from_str(&nodes).unwrap();
    assert_eq!(nodes["producers"][0]["remote_address"], "@");

    // An nsqd on unix sockets has no ports to register, and nsqlookupd
    // refuses an IDENTIFY without them (as NSQ's); with broadcast ports it
    // registers.
    let nsqd_dir = tempfile::tempdir().unwrap();
    let unix_nsqd = |extra: &[&str]| {
        let mut args = vec![
            path_arg(
                "tcp-address",
                &nsqd_dir.path().join(format!("t{}.sock", extra.len())),
            ),
            path_arg(
                "http-address",
                &nsqd_dir.path().join(format!("h{}.sock", extra.len())),
            ),
            path_arg("lookupd-tcp-address", &tcp),
            "--broadcast-address=127.0.0.1".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Daemon::nsqd(&args)
    };
    let portless = unix_nsqd(&[]);
    wait_until("refused", || {
        portless
            .log_text()
            .contains("E_BAD_BODY IDENTIFY missing fields")
    });
    let ported = unix_nsqd(&["--broadcast-tcp-port=4150", "--broadcast-http-port=4151"]);
    let r = http_request_unix(
        Path::new(&ported.http),
        "POST",
        "/topic/create?topic=u",
        b"",
    );
    assert_eq!(r.status, 200);
    wait_until("registered with broadcast ports", || {
        lookup_ports(&http, "u") == vec![serde_json::json!(4150)]
    });
    drop((portless, ported, nsqd));

    assert!(lookupd.stop().success());
    assert!(!tcp.exists() && !http.exists());
}
