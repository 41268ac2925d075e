//! Test harness: start the real binaries on port 0 with a temp data dir and
//! talk to them over real sockets. Every child is killed when its handle is
//! dropped, so a failing test leaves nothing running.

#![allow(dead_code)]

pub mod auth_server;
pub mod formats;

use bytes::BytesMut;
use nsq::protocol::{Command, Frame, FrameDecoder, MAGIC_V2};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command as Process, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;

pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running nsqd.
pub struct Nsqd {
    child: Child,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    pub data: tempfile::TempDir,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Nsqd {
    pub fn start(args: &[&str]) -> Nsqd {
        let data = tempfile::tempdir().expect("temp dir");
        Self::start_in(data, args)
    }

    /// An nsqd that a test will restart on the same TCP port: the port is
    /// from [`free_port`], so that no other test's `bind(0)` can take it
    /// while this one is down.
    pub fn start_restartable(args: &[&str]) -> Nsqd {
        let tcp = format!("--tcp-address=127.0.0.1:{}", free_port());
        let mut all = vec![tcp.as_str()];
        all.extend_from_slice(args);
        Self::start(&all)
    }

    pub fn start_in(data: tempfile::TempDir, args: &[&str]) -> Nsqd {
        let mut all = vec![
            "--tcp-address=127.0.0.1:0".to_string(),
            "--http-address=127.0.0.1:0".to_string(),
            format!("--data-path={}", data.path().display()),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let (child, tcp, http, log) = spawn_daemon(env!("CARGO_BIN_EXE_nsqd"), &all);
        Nsqd {
            child,
            tcp,
            http,
            data,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "nsqd did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Wait for a log line containing `needle`. The log is read from nsqd's
    /// stderr by another thread, so a line nsqd wrote before an effect the
    /// test observed may not have been collected yet.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.log_text().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?} in the log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn connect(&self) -> Conn {
        Conn::connect(self.tcp)
    }

    /// The HTTPS listener's address, from the log (with `--https-address`).
    pub fn https(&self) -> SocketAddr {
        let find = || {
            let log = self.log_text();
            log.split("HTTPS: listening on ")
                .nth(1)
                .and_then(|rest| rest.lines().next())
                .map(|a| a.trim().parse().expect("HTTPS address"))
        };
        wait_until("the HTTPS address in the log", || find().is_some());
        find().unwrap()
    }

    /// nsqd's resident memory, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    pub fn http(&self, method: &str, path: &str, body: &[u8]) -> HttpResponse {
        http_request(self.http, method, path, body)
    }

    pub fn stats(&self) -> serde_json::Value {
        let r = self.http("GET", "/stats?format=json", b"");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// The channel's stats object, if the channel exists.
    pub fn channel_stats(&self, topic: &str, channel: &str) -> Option<serde_json::Value> {
        let stats = self.stats();
        stats["topics"]
            .as_array()?
            .iter()
            .find(|t| t["topic_name"] == topic)?["channels"]
            .as_array()?
            .iter()
            .find(|c| c["channel_name"] == channel)
            .cloned()
    }

    pub fn topic_stats(&self, topic: &str) -> Option<serde_json::Value> {
        let stats = self.stats();
        stats["topics"]
            .as_array()?
            .iter()
            .find(|t| t["topic_name"] == topic)
            .cloned()
    }
}

impl Drop for Nsqd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Process::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status();
}

/// Run a binary to completion: exit code, stdout, stderr.
pub fn run_binary(path: &str, args: &[&str]) -> (i32, String, String) {
    let out = Process::new(path).args(args).output().expect("run binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port nobody listens on now, for a daemon that must start later at an
/// address known in advance. It is taken below the kernel's ephemeral
/// range, where no `bind(0)` or outgoing connection of the other tests (or
/// of another test run on the machine) can land in the meantime; a port
/// from `bind(0)`, released, was sometimes taken before the daemon bound it.
pub fn free_port() -> u16 {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_from > 10_000 {
        for _ in 0..1000 {
            let port = fastrand::u16(10_000..ephemeral_from);
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// An address where nothing listens, and nothing can start listening
/// while the returned socket is kept: it is bound there but never listens,
/// so a connection is refused at once. (A port from [`free_port`], left
/// free, was once taken meanwhile by another test's chromedriver.)
pub fn refused_addr() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind 127.0.0.1:0");
    let addr = socket.local_addr().expect("its address");
    (socket, addr)
}

/// Poll `cond` until it holds or the deadline passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A raw protocol V2 connection with blocking reads and a deadline.
pub struct Conn {
    pub stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Conn {
        let mut c = Conn::connect_raw(addr);
        c.send_raw(MAGIC_V2);
        c
    }

    /// Connected, no magic sent.
    pub fn connect_raw(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::default(),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send(&mut self, cmd: &Command) {
        let bytes = cmd.to_bytes();
        self.send_raw(&bytes);
    }

    /// The next frame (heartbeats included), or `None` on EOF.
    pub fn read_frame_within(&mut self, limit: Duration) -> Option<Frame> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(f) = self.decoder.decode(&mut self.buf).expect("valid frame") {
                return Some(f);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no frame within {limit:?}");
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!("no frame within {limit:?}")
                }
                Err(_) => return None,
            }
        }
    }

    /// The next non-heartbeat frame if one arrives within `limit`.
    pub fn try_frame(&mut self, limit: Duration) -> Option<Frame> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(f) = self.decoder.decode(&mut self.buf).expect("valid frame") {
                if f.is_heartbeat() {
                    continue;
                }
                return Some(f);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("connection closed"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }

    /// The next frame that is not a heartbeat.
    pub fn frame(&mut self) -> Frame {
        loop {
            match self.read_frame_within(DEADLINE) {
                Some(f) if f.is_heartbeat() => continue,
                Some(f) => return f,
                None => panic!("connection closed while waiting for a frame"),
            }
        }
    }

    pub fn expect_response(&mut self, data: &[u8]) {
        match self.frame() {
            Frame::Response(d) => assert_eq!(
                d.as_ref(),
                data,
                "response {:?}",
                String::from_utf8_lossy(&d)
            ),
            other => panic!(
                "expected response {:?}, got {other:?}",
                String::from_utf8_lossy(data)
            ),
        }
    }

    pub fn expect_ok(&mut self) {
        self.expect_response(b"OK");
    }

    pub fn expect_error(&mut self, text: &str) {
        match self.frame() {
            Frame::Error(d) => assert_eq!(String::from_utf8_lossy(&d), text),
            other => panic!("expected error {text:?}, got {other:?}"),
        }
    }

    pub fn expect_message(&mut self) -> nsq::protocol::Message {
        match self.frame() {
            Frame::Message(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The server closes the connection (EOF) within the deadline; frames
    /// before the close are returned.
    pub fn expect_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = self.read_frame_within(DEADLINE) {
            frames.push(f);
        }
        frames
    }

    /// Assert that no frame other than heartbeats arrives within `window`.
    pub fn expect_silence(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        loop {
            if let Some(f) = self.decoder.decode(&mut self.buf).expect("valid frame") {
                assert!(f.is_heartbeat(), "unexpected frame {f:?}");
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("connection closed"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return,
            }
        }
    }

    pub fn identify(&mut self, json: serde_json::Value) -> Frame {
        self.send(&Command::Identify(json.to_string().into()));
        self.frame()
    }

    pub fn publish(&mut self, topic: &str, body: &[u8]) {
        self.send(&Command::Pub {
            topic: topic.into(),
            body: bytes::Bytes::copy_from_slice(body),
        });
        self.expect_ok();
    }

    /// MPUB `bodies` to `topic` and expect `OK`.
    pub fn publish_batch(&mut self, topic: &str, bodies: Vec<bytes::Bytes>) {
        self.send(&Command::Mpub {
            topic: topic.into(),
            bodies,
        });
        self.expect_ok();
    }

    pub fn subscribe(&mut self, topic: &str, channel: &str) {
        self.send(&Command::Sub {
            topic: topic.into(),
            channel: channel.into(),
        });
        self.expect_ok();
    }

    pub fn rdy(&mut self, n: u64) {
        self.send(&Command::Rdy(n));
    }

    pub fn fin(&mut self, id: nsq::protocol::MessageId) {
        self.send(&Command::Fin(id.to_hex()));
    }
}

/// A consumer connection: connected, subscribed, RDY set.
pub fn consumer(nsqd: &Nsqd, topic: &str, channel: &str, rdy: u64) -> Conn {
    let mut c = nsqd.connect();
    c.subscribe(topic, channel);
    c.rdy(rdy);
    c
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A minimal HTTP/1.1 client (one request per connection), so tests see
/// exactly what the server sends.
pub fn http_request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> HttpResponse {
    http_request_with(addr, method, path, &[], body)
}

/// [`http_request`] with extra header lines.
pub fn http_request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).expect("connect http");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    exchange_http(&mut s, &addr.to_string(), method, path, headers, body)
}

/// The same request over HTTPS (blocking rustls), trusting `config`'s roots.
pub fn https_request(
    addr: SocketAddr,
    config: Arc<tokio_rustls::rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    use tokio_rustls::rustls;
    let tcp = TcpStream::connect(addr).expect("connect https");
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).expect("TLS client");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    exchange_http(&mut tls, "localhost", method, path, headers, body)
}

/// [`http_request`] over a unix socket.
pub fn http_request_unix(
    socket: &std::path::Path,
    method: &str,
    path: &str,
    body: &[u8],
) -> HttpResponse {
    let mut s = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    exchange_http(&mut s, "localhost", method, path, &[], body)
}

fn exchange_http(
    s: &mut impl ReadWrite,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    // A TLS peer that closes without close_notify is an error here: keep
    // what arrived.
    if let Err(e) = s.read_to_end(&mut raw) {
        assert!(!raw.is_empty(), "read http response: {e}");
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

impl Nsqd {
    /// Hand back the data directory so another nsqd can start on the same
    /// files. Call `stop()` (or SIGKILL it) first; whatever is still running
    /// is killed here, and the process is always reaped, so its lock on the
    /// directory is gone when this returns.
    pub fn into_data(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Drop still runs on `self`; give it a throwaway directory to own.
        std::mem::replace(&mut self.data, tempfile::tempdir().expect("temp dir"))
    }
}

/// Run a binary that should exit on its own: exit code, stdout, stderr, or
/// `None` if it was still running after `limit` (it is then killed).
pub fn run_binary_within(
    path: &str,
    args: &[&str],
    limit: Duration,
) -> Option<(i32, String, String)> {
    run_binary_with_input(path, args, None, limit)
}

/// [`run_binary_within`], with `input` (if any) written to its stdin,
/// which is then closed.
pub fn run_binary_with_input(
    path: &str,
    args: &[&str],
    input: Option<&[u8]>,
    limit: Duration,
) -> Option<(i32, String, String)> {
    let mut child = Process::new(path)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn binary");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    // Drain both pipes in the background so the child never blocks on them.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    status.map(|s| (s.code().unwrap_or(-1), stdout, stderr))
}

/// A daemon started with a command line, its listening addresses read from
/// its log, killed on drop.
/// Start a daemon and wait until it has logged the addresses it listens on
/// ("TCP: listening on", "HTTP: listening on"). Its stderr is drained for
/// as long as it runs (so it never blocks on a full pipe) into the log.
pub fn spawn_daemon(
    program: &str,
    args: &[String],
) -> (Child, SocketAddr, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let (child, tcp, http, log) = spawn_daemon_anywhere(program, args);
    let parse = |a: String| -> SocketAddr {
        a.parse()
            .unwrap_or_else(|e| panic!("{program} address {a:?}: {e}"))
    };
    (child, parse(tcp), parse(http), log)
}

/// [`spawn_daemon`] for a daemon that may listen on unix sockets: the
/// addresses as logged (`host:port` or a path).
pub fn spawn_daemon_anywhere(
    program: &str,
    args: &[String],
) -> (Child, String, String, Arc<Mutex<Vec<String>>>) {
    let (child, mut addrs, log) = spawn_reporting(
        program,
        args,
        &["TCP: listening on ", "HTTP: listening on "],
    );
    let http = addrs.pop().expect("two addresses");
    let tcp = addrs.pop().expect("two addresses");
    (child, tcp, http, log)
}

/// Start `program args...` with its stderr collected in the returned log,
/// and wait for a line with each of `markers`: what follows each (the
/// address it reports), in the order of `markers`. The child is killed if
/// they do not all come within 20 s.
pub fn spawn_reporting(
    program: &str,
    args: &[String],
    markers: &'static [&'static str],
) -> (Child, Vec<String>, Arc<Mutex<Vec<String>>>) {
    let mut child = Process::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("piped stderr");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            for (i, marker) in markers.iter().enumerate() {
                if let Some(rest) = line.split(marker).nth(1) {
                    let _ = tx.send((i, rest.trim().to_string()));
                }
            }
            sink.lock().unwrap().push(line);
        }
    });
    let mut found: Vec<Option<String>> = vec![None; markers.len()];
    let deadline = Instant::now() + Duration::from_secs(20);
    while found.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, a)) => found[i] = Some(a),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{program} {args:?} did not report its addresses; stderr:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        }
    }
    (child, found.into_iter().flatten().collect(), log)
}

pub struct Daemon {
    pub child: Child,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
}

impl Daemon {
    /// `program args...`; waits for "TCP: listening on" and "HTTP: listening on".
    pub fn spawn(program: &str, args: &[String]) -> Daemon {
        let (child, tcp, http, _log) = spawn_daemon(program, args);
        Daemon { child, tcp, http }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running nsqlookupd.
pub struct Lookupd {
    pub daemon: Daemon,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
}

impl Lookupd {
    /// Start on the given addresses (`127.0.0.1:0` for any port).
    pub fn start_on(tcp: &str, http: &str, args: &[&str]) -> Lookupd {
        let mut all = vec![
            format!("--tcp-address={tcp}"),
            format!("--http-address={http}"),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let daemon = Daemon::spawn(env!("CARGO_BIN_EXE_nsqlookupd"), &all);
        Lookupd {
            tcp: daemon.tcp,
            http: daemon.http,
            daemon,
        }
    }

    pub fn start(args: &[&str]) -> Lookupd {
        Self::start_on("127.0.0.1:0", "127.0.0.1:0", args)
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        let r = http_request(self.http, "GET", path, b"");
        if r.status == 404 {
            return serde_json::Value::Null;
        }
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    /// `broadcast_address:tcp_port` of every producer `/lookup` reports.
    pub fn producers(&self, topic: &str) -> std::collections::HashSet<String> {
        let v = self.get(&format!("/lookup?topic={topic}"));
        v["producers"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        format!(
                            "{}:{}",
                            p["broadcast_address"].as_str().unwrap(),
                            p["tcp_port"]
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn kill(&mut self) {
        self.daemon.kill();
    }
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client
/// certificate, as PEM files in a temp dir.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    pub client_cert: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    pub client_key: Vec<u8>,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap()
                .signed_by(&server_key, &ca, &ca_key)
                .unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let mut client_params = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test-client");
        let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        Pki {
            ca: ca.der().clone(),
            client_cert: client.der().clone(),
            client_key: client_key.serialize_der(),
            dir,
        }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// nsqd flags for this certificate.
    pub fn flags(&self) -> Vec<String> {
        vec![
            format!("--tls-cert={}", self.path("server.pem")),
            format!("--tls-key={}", self.path("server.key")),
            "--https-address=127.0.0.1:0".to_string(),
        ]
    }

    pub fn client_config(&self, with_cert: bool) -> Arc<tokio_rustls::rustls::ClientConfig> {
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let builder = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = if with_cert {
            builder
                .with_client_auth_cert(
                    vec![self.client_cert.clone()],
                    tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(
                        self.client_key.clone().into(),
                    ),
                )
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(config)
    }
}
