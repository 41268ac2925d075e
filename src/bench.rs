//! nsq-bench: load generator and latency meter for nsqd (NSQ's bench_writer
//! and bench_reader), plus a raw-TCP baseline.
//!
//! Every figure is meant to be read against `baseline`, a plain loopback TCP
//! stream on the same machine in the same run: these machines are shared and
//! noisy, so absolute numbers mean little, ratios much more.
//!
//! The load loops are deliberately plain blocking code, one OS thread per
//! connection, with pre-encoded commands and batched FINs, so that the
//! benchmark measures nsqd rather than its own client.

use crate::cli::duration_arg;
use crate::protocol::frame::FrameDecoder;
use crate::protocol::message::now_nanos;
use crate::protocol::{Command, Frame, MAGIC_V2};
use bytes::{BufMut, Bytes, BytesMut};
use clap::{Args, Parser, Subcommand};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;

/// nsq-bench: measure nsqd's throughput and latency against this machine's wire speed.
#[derive(Parser, Debug)]
#[command(name = "nsq-bench", version, about)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: Mode,
    /// Print one JSON object instead of a text line.
    #[arg(long, global = true)]
    pub json: bool,
    /// Also measure the raw-TCP baseline first and print figures as fractions of it.
    #[arg(long = "with-baseline", global = true)]
    pub with_baseline: bool,
    /// The nsqd's process ID (on this machine): report its CPU time per
    /// message (or per connection) and its resident memory.
    #[arg(long = "nsqd-pid", global = true, value_name = "PID")]
    pub nsqd_pid: Option<u32>,
}

#[derive(Subcommand, Debug)]
pub enum Mode {
    /// Publish as fast as possible (PUB, or MPUB with --batch-size > 1).
    Pub(PubArgs),
    /// Consume and FIN as fast as possible.
    Sub(SubArgs),
    /// Publish at a fixed rate while consuming; report end-to-end latency percentiles.
    Latency(LatencyArgs),
    /// Raw loopback TCP stream: this machine's wire speed.
    Baseline(BaselineArgs),
    /// Open many subscribed connections at once; report how long they took
    /// (and, with --nsqd-pid, nsqd's memory per connection).
    Connections(ConnectionsArgs),
    /// Create many topics (each with its channels) over HTTP, then measure
    /// nsqd's CPU and memory while nothing happens (needs --nsqd-pid).
    Idle(IdleArgs),
}

#[derive(Args, Debug)]
pub struct IdleArgs {
    /// nsqd HTTP address.
    #[arg(long = "nsqd-http-address", default_value = "127.0.0.1:4151")]
    pub nsqd_http_address: String,
    /// Topics to create.
    #[arg(long, default_value_t = 10_000)]
    pub topics: usize,
    /// Channels per topic.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Topic names are this prefix and a number.
    #[arg(long = "topic-prefix", default_value = "idle")]
    pub topic_prefix: String,
    /// How long to watch nsqd idle.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub runfor: Duration,
}

#[derive(Args, Debug)]
pub struct ConnectionsArgs {
    /// nsqd TCP address (host:port, or a unix socket path).
    #[arg(long = "nsqd-tcp-address", default_value = "127.0.0.1:4150")]
    pub nsqd_tcp_address: String,
    /// Connections to open, all at once.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Topic each connection subscribes to.
    #[arg(long, default_value = "conn_bench")]
    pub topic: String,
    /// Channel each connection subscribes to.
    #[arg(long, default_value = "ch")]
    pub channel: String,
}

#[derive(Args, Debug, Clone)]
pub struct Target {
    /// nsqd TCP address (host:port, or a unix socket path).
    #[arg(long = "nsqd-tcp-address", default_value = "127.0.0.1:4150")]
    pub nsqd_tcp_address: String,
    /// Topic to use.
    #[arg(long, default_value = "sub_bench")]
    pub topic: String,
    /// How long to run.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub runfor: Duration,
    /// Connect with TLS (any certificate trusted: for measuring only).
    #[arg(long)]
    pub tls: bool,
    /// Compress connections with snappy.
    #[arg(long, conflicts_with = "deflate")]
    pub snappy: bool,
    /// Compress connections with deflate (level 6).
    #[arg(long)]
    pub deflate: bool,
    /// Use the library's client even for plain connections (to compare
    /// TLS and compression with plain on the same path).
    #[arg(long = "via-client")]
    pub via_client: bool,
}

impl Target {
    /// TLS or compression: these runs go through the library's client
    /// (async, pipelined) rather than the raw blocking loops.
    fn encoded(&self) -> bool {
        self.tls || self.snappy || self.deflate || self.via_client
    }

    fn client_config(&self) -> Result<crate::client::Config, BenchError> {
        let mut config = crate::client::Config::default();
        if self.tls {
            let tls = crate::client::tls::client_config(&crate::client::tls::TlsOptions {
                insecure_skip_verify: true,
                ..Default::default()
            })
            .map_err(BenchError::Usage)?;
            config.tls = Some(tls);
        }
        config.compression = if self.snappy {
            Some(crate::client::Compression::Snappy)
        } else if self.deflate {
            Some(crate::client::Compression::Deflate(6))
        } else {
            None
        };
        Ok(config)
    }
}

/// Run `task` on `conns` connections for `runfor` on a runtime of its own;
/// the tasks count into the shared counter until told to stop.
fn run_client_tasks<F, Fut>(
    conns: usize,
    runfor: Duration,
    task: F,
) -> Result<(Duration, u64), BenchError>
where
    F: Fn(Arc<AtomicBool>, Arc<AtomicU64>) -> Fut,
    Fut: std::future::Future<Output = Result<(), BenchError>> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Usage(format!("runtime: {e}")))?;
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let handles: Vec<_> = (0..conns)
            .map(|_| tokio::spawn(task(stop.clone(), count.clone())))
            .collect();
        tokio::time::sleep(runfor).await;
        stop.store(true, Relaxed);
        // Tasks finish what they started (answered publishes count), then
        // the total and the time are taken.
        for h in handles {
            match h.await {
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(BenchError::Usage(format!("task failed: {e}"))),
                Ok(Ok(())) => {}
            }
        }
        Ok((started.elapsed(), count.load(Relaxed)))
    })
}

fn client_error(e: crate::client::ClientError) -> BenchError {
    BenchError::Server {
        addr: String::new(),
        text: e.to_string(),
    }
}

#[derive(Args, Debug)]
pub struct PubArgs {
    #[command(flatten)]
    pub target: Target,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// Messages per MPUB (1 = single PUB commands).
    #[arg(long = "batch-size", default_value_t = 200)]
    pub batch_size: usize,
    /// Concurrent connections (default: one per core).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Commands in flight per connection (1 = wait for each response).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
}

#[derive(Args, Debug)]
pub struct SubArgs {
    #[command(flatten)]
    pub target: Target,
    /// Channel to consume from.
    #[arg(long, default_value = "ch")]
    pub channel: String,
    /// Concurrent connections (default: one per core).
    #[arg(long)]
    pub connections: Option<usize>,
    /// RDY count per connection.
    #[arg(long, default_value_t = 2500)]
    pub rdy: u64,
}

#[derive(Args, Debug)]
pub struct LatencyArgs {
    #[command(flatten)]
    pub target: Target,
    /// Channel to consume from.
    #[arg(long, default_value = "latency")]
    pub channel: String,
    /// Messages per second to publish.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Message body size in bytes (at least 8: the send time travels in it).
    #[arg(long, default_value_t = 200)]
    pub size: usize,
}

#[derive(Args, Debug)]
pub struct BaselineArgs {
    /// How long to run.
    #[arg(long, default_value = "5s", value_parser = duration_arg)]
    pub runfor: Duration,
    /// Bytes per write.
    #[arg(long = "write-size", default_value_t = 256 * 1024)]
    pub write_size: usize,
}

/// A failure, printed as one line by the binary.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot connect to nsqd at {addr}: {source} (is nsqd running there?)")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("nsqd at {addr}: {text}")]
    Server { addr: String, text: String },
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

/// The outcome of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub seconds: f64,
    pub messages: u64,
    pub bytes: u64,
    pub msgs_per_sec: f64,
    pub mb_per_sec: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction_of_baseline: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<Percentiles>,
    /// nsqd's own cost, with `--nsqd-pid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<DaemonCost>,
    /// `idle` mode: nsqd's CPU use while idle, in percent of one core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_cpu_percent: Option<f64>,
}

/// What the run cost nsqd, from `/proc/PID/stat` and `/proc/PID/statm`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DaemonCost {
    /// User plus system CPU time nsqd spent during the run, per message
    /// (per connection in `connections` mode).
    pub cpu_ns_per_item: f64,
    /// Resident memory at the end of the run.
    pub rss_bytes: u64,
    /// Growth of resident memory during the run, per message (connection).
    pub rss_bytes_per_item: f64,
}

/// A process's CPU time and resident memory, read from /proc.
#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu: Duration,
    rss_bytes: u64,
}

impl Usage {
    fn read(pid: u32) -> Result<Usage, BenchError> {
        let fail = |e: String| BenchError::Usage(format!("reading nsqd's usage (pid {pid}): {e}"));
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| fail(e.to_string()))?;
        // Fields after the parenthesised name; utime and stime are the
        // 14th and 15th of the line, in clock ticks (USER_HZ, 100 on Linux).
        let rest = stat
            .rsplit_once(')')
            .map(|p| p.1)
            .ok_or_else(|| fail("bad stat".into()))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| -> Result<u64, BenchError> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .ok_or_else(|| fail("bad stat".into()))
        };
        let ticks = tick(11)? + tick(12)?;
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .map_err(|e| fail(e.to_string()))?;
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| fail("bad statm".into()))?;
        Ok(Usage {
            cpu: Duration::from_millis(ticks * 10),
            rss_bytes: pages * 4096,
        })
    }

    fn cost_since(self, before: Usage, items: u64) -> DaemonCost {
        let items = items.max(1) as f64;
        DaemonCost {
            cpu_ns_per_item: self.cpu.saturating_sub(before.cpu).as_nanos() as f64 / items,
            rss_bytes: self.rss_bytes,
            rss_bytes_per_item: (self.rss_bytes as f64 - before.rss_bytes as f64) / items,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Report {
    fn new(mode: &'static str, elapsed: Duration, messages: u64, bytes: u64) -> Report {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Report {
            mode,
            seconds: secs,
            messages,
            bytes,
            msgs_per_sec: messages as f64 / secs,
            mb_per_sec: bytes as f64 / secs / 1e6,
            fraction_of_baseline: None,
            latency_us: None,
            daemon: None,
            idle_cpu_percent: None,
        }
    }

    pub fn line(&self) -> String {
        if self.mode == "idle" {
            let mut s = format!("idle: {} topics", self.messages);
            if let (Some(d), Some(cpu)) = (&self.daemon, self.idle_cpu_percent) {
                s.push_str(&format!(
                    "; nsqd idle for {:.1}s: CPU {cpu:.2}% of a core, RSS {:.1} MB ({:+.0} B/topic)",
                    self.seconds,
                    d.rss_bytes as f64 / 1e6,
                    d.rss_bytes_per_item
                ));
            }
            return s;
        }
        let mut s = if self.mode == "connections" {
            format!(
                "connections: {} opened and subscribed in {:.2}s = {:.0}/s",
                self.messages, self.seconds, self.msgs_per_sec
            )
        } else {
            format!(
                "{}: {} msgs in {:.2}s = {:.0} msg/s, {:.1} MB/s",
                self.mode, self.messages, self.seconds, self.msgs_per_sec, self.mb_per_sec
            )
        };
        if let Some(f) = self.fraction_of_baseline {
            s.push_str(&format!(" ({:.1}% of baseline)", f * 100.0));
        }
        if let Some(p) = &self.latency_us {
            s.push_str(&format!(
                "; latency us p50={:.0} p90={:.0} p99={:.0} p99.9={:.0} max={:.0}",
                p.p50, p.p90, p.p99, p.p999, p.max
            ));
        }
        if let Some(d) = &self.daemon {
            let per = if self.mode == "connections" {
                "connection"
            } else {
                "msg"
            };
            s.push_str(&format!(
                "; nsqd: {:.0} ns CPU/{per}, RSS {:.1} MB ({:+.0} B/{per})",
                d.cpu_ns_per_item,
                d.rss_bytes as f64 / 1e6,
                d.rss_bytes_per_item
            ));
        }
        s
    }
}

pub fn run(args: &BenchArgs) -> Result<Vec<Report>, BenchError> {
    let mut reports = Vec::new();
    let baseline = if args.with_baseline || matches!(args.mode, Mode::Baseline(_)) {
        let b = match &args.mode {
            Mode::Baseline(b) => baseline(b)?,
            _ => baseline(&BaselineArgs {
                runfor: Duration::from_secs(3),
                write_size: 256 * 1024,
            })?,
        };
        reports.push(b.clone());
        Some(b.bytes as f64 / b.seconds)
    } else {
        None
    };
    let before = args.nsqd_pid.map(Usage::read).transpose()?;
    let mut report = match &args.mode {
        Mode::Baseline(_) => return Ok(reports),
        Mode::Pub(p) => publish(p)?,
        Mode::Sub(s) => subscribe(s)?,
        Mode::Latency(l) => latency(l)?,
        Mode::Idle(i) => {
            let pid = args
                .nsqd_pid
                .ok_or_else(|| BenchError::Usage("idle needs --nsqd-pid".into()))?;
            let before = before.expect("read above with the pid");
            create_topics(i)?;
            let start = Usage::read(pid)?;
            let started = Instant::now();
            std::thread::sleep(i.runfor);
            let end = Usage::read(pid)?;
            let elapsed = started.elapsed();
            let mut report = Report::new("idle", elapsed, i.topics as u64, 0);
            let mut cost = end.cost_since(before, i.topics as u64);
            cost.cpu_ns_per_item =
                start.cpu.saturating_sub(before.cpu).as_nanos() as f64 / i.topics.max(1) as f64;
            report.daemon = Some(cost);
            report.idle_cpu_percent = Some(
                end.cpu.saturating_sub(start.cpu).as_secs_f64() / elapsed.as_secs_f64() * 100.0,
            );
            reports.push(report);
            return Ok(reports);
        }
        Mode::Connections(c) => {
            // Measured while every connection is still open.
            let pid = args.nsqd_pid;
            let (report, during) = connections(c, move || pid.map(Usage::read).transpose())?;
            if let (Some(before), Some(during)) = (before, during) {
                let mut report = report;
                report.daemon = Some(during.cost_since(before, report.messages));
                reports.push(report);
                return Ok(reports);
            }
            report
        }
    };
    if let (Some(pid), Some(before)) = (args.nsqd_pid, before) {
        report.daemon = Some(Usage::read(pid)?.cost_since(before, report.messages));
    }
    if let Some(base) = baseline {
        report.fraction_of_baseline = Some(report.bytes as f64 / report.seconds / base);
    }
    reports.push(report);
    Ok(reports)
}

/// `idle`: create the topics and their channels over one keep-alive HTTP
/// connection, requests pipelined in batches.
fn create_topics(args: &IdleArgs) -> Result<(), BenchError> {
    let addr = &args.nsqd_http_address;
    let io = |source| BenchError::Io {
        addr: addr.clone(),
        source,
    };
    let mut stream = TcpStream::connect(addr).map_err(|source| BenchError::Connect {
        addr: addr.clone(),
        source,
    })?;
    let mut requests = Vec::new();
    for t in 0..args.topics {
        let topic = format!("{}{t}", args.topic_prefix);
        requests.push(format!("/topic/create?topic={topic}"));
        for c in 0..args.channels {
            requests.push(format!("/channel/create?topic={topic}&channel=ch{c}"));
        }
    }
    let mut buf = Vec::new();
    for batch in requests.chunks(256) {
        let mut out = String::new();
        for path in batch {
            out.push_str(&format!(
                "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
            ));
        }
        stream.write_all(out.as_bytes()).map_err(io)?;
        let mut answered = 0;
        while answered < batch.len() {
            // One whole response (head and Content-Length body) at the front?
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    if !head.starts_with("HTTP/1.1 200") {
                        let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]);
                        return Err(BenchError::Server {
                            addr: addr.clone(),
                            text: format!("{} {body}", head.lines().next().unwrap_or("")),
                        });
                    }
                    buf.drain(..end + 4 + len);
                    answered += 1;
                    continue;
                }
            }
            let mut chunk = [0u8; 65536];
            let n = stream.read(&mut chunk).map_err(io)?;
            if n == 0 {
                return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
    Ok(())
}

/// Open `count` subscribed connections at once; `measure` runs while they
/// are all open. The report's "messages" are connections.
fn connections<T>(
    args: &ConnectionsArgs,
    measure: impl FnOnce() -> Result<T, BenchError>,
) -> Result<(Report, T), BenchError> {
    crate::cli::raise_open_files_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Usage(format!("runtime: {e}")))?;
    let sub = Command::Sub {
        topic: args.topic.clone(),
        channel: args.channel.clone(),
    }
    .to_bytes();
    let mut hello = MAGIC_V2.to_vec();
    hello.extend_from_slice(&sub);
    hello.extend_from_slice(&Command::Rdy(1).to_bytes());
    let addr = args.nsqd_tcp_address.clone();
    rt.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..args.count)
            .map(|_| {
                let (addr, hello) = (addr.clone(), hello.clone());
                tokio::spawn(async move { open_subscribed(&addr, &hello).await })
            })
            .collect();
        let mut open = Vec::with_capacity(args.count);
        for t in tasks {
            match t.await {
                Ok(Ok(stream)) => open.push(stream),
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(BenchError::Usage(format!("task failed: {e}"))),
            }
        }
        let elapsed = started.elapsed();
        let measured = measure()?;
        drop(open);
        Ok((
            Report::new("connections", elapsed, args.count as u64, 0),
            measured,
        ))
    })
}

/// Connect, SUB and RDY 1, and wait for the `OK`: a consumer as nsqd holds it.
async fn open_subscribed(addr: &str, hello: &[u8]) -> Result<crate::listen::Stream, BenchError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = |source| BenchError::Io {
        addr: addr.to_string(),
        source,
    };
    let mut s = crate::listen::connect(addr)
        .await
        .map_err(|source| BenchError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    s.write_all(hello).await.map_err(io)?;
    // The OK frame: size 6, type 0, "OK".
    let mut ok = [0u8; 10];
    s.read_exact(&mut ok).await.map_err(io)?;
    if &ok[8..] != b"OK" {
        return Err(BenchError::Server {
            addr: addr.to_string(),
            text: String::from_utf8_lossy(&ok[8..]).into_owned(),
        });
    }
    Ok(s)
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// A blocking connection to nsqd over TCP or a unix socket.
enum RawStream {
    Tcp(TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl RawStream {
    fn connect(addr: &str) -> std::io::Result<RawStream> {
        match crate::listen::endpoint(addr) {
            crate::listen::Endpoint::Unix(path) => Ok(RawStream::Unix(
                std::os::unix::net::UnixStream::connect(path)?,
            )),
            crate::listen::Endpoint::Tcp(_) => {
                let sock = addr.to_socket_addrs()?.next().ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("{addr} resolves to no address"),
                    )
                })?;
                let stream = TcpStream::connect_timeout(&sock, Duration::from_secs(5))?;
                stream.set_nodelay(true).ok();
                Ok(RawStream::Tcp(stream))
            }
        }
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            RawStream::Tcp(s) => s.set_read_timeout(t),
            RawStream::Unix(s) => s.set_read_timeout(t),
        }
    }
}

impl Read for RawStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            RawStream::Tcp(s) => s.read(buf),
            RawStream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for RawStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            RawStream::Tcp(s) => s.write(buf),
            RawStream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            RawStream::Tcp(s) => s.flush(),
            RawStream::Unix(s) => s.flush(),
        }
    }
}

/// A raw connection: connected, magic sent.
struct Raw {
    addr: String,
    stream: RawStream,
    rbuf: BytesMut,
    scratch: Vec<u8>,
    decoder: FrameDecoder,
}

impl Raw {
    fn connect(addr: &str) -> Result<Raw, BenchError> {
        let mut stream = RawStream::connect(addr).map_err(|source| BenchError::Connect {
            addr: addr.into(),
            source,
        })?;
        stream
            .write_all(MAGIC_V2)
            .map_err(|source| BenchError::Connect {
                addr: addr.into(),
                source,
            })?;
        Ok(Raw {
            addr: addr.into(),
            stream,
            rbuf: BytesMut::with_capacity(256 * 1024),
            scratch: vec![0; 256 * 1024],
            decoder: FrameDecoder::default(),
        })
    }

    fn io(&self, source: std::io::Error) -> BenchError {
        BenchError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), BenchError> {
        self.stream.write_all(bytes).map_err(|e| self.io(e))
    }

    /// Next frame; heartbeats are answered and skipped. `None` on timeout.
    fn frame(&mut self) -> Result<Option<Frame>, BenchError> {
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(f)) if f.is_heartbeat() => self.write(b"NOP\n")?,
                Ok(Some(f)) => return Ok(Some(f)),
                Ok(None) => {}
                Err(e) => {
                    return Err(BenchError::Server {
                        addr: self.addr.clone(),
                        text: e.to_string(),
                    })
                }
            }
            match self.stream.read(&mut self.scratch) {
                Ok(0) => {
                    return Err(BenchError::Server {
                        addr: self.addr.clone(),
                        text: "closed the connection".into(),
                    })
                }
                Ok(n) => self.rbuf.put_slice(&self.scratch[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(self.io(e)),
            }
        }
    }

    fn expect_ok(&mut self) -> Result<(), BenchError> {
        loop {
            match self.frame()? {
                Some(Frame::Response(r)) if r.as_ref() == b"OK" => return Ok(()),
                Some(Frame::Error(e)) => {
                    return Err(BenchError::Server {
                        addr: self.addr.clone(),
                        text: String::from_utf8_lossy(&e).into_owned(),
                    })
                }
                Some(_) | None => continue,
            }
        }
    }
}

/// Run `f` on `n` threads until `stop` is set after `runfor`; sum counts.
fn run_threads<F>(n: usize, runfor: Duration, f: F) -> Result<(Duration, u64), BenchError>
where
    F: Fn(usize, Arc<AtomicBool>, Arc<AtomicU64>) -> Result<(), BenchError> + Send + Sync + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let f = Arc::new(f);
    let start = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (stop, count, f) = (stop.clone(), count.clone(), f.clone());
            std::thread::spawn(move || f(i, stop, count))
        })
        .collect();
    std::thread::sleep(runfor);
    stop.store(true, Relaxed);
    let elapsed = start.elapsed();
    for h in handles {
        h.join()
            .map_err(|_| BenchError::Usage("a load thread panicked".into()))??;
    }
    // Counted after the threads finish, so that work acknowledged just after
    // the stop signal is not lost from the total.
    Ok((elapsed, count.load(Relaxed)))
}

pub fn publish(args: &PubArgs) -> Result<Report, BenchError> {
    if args.size == 0 || args.batch_size == 0 || args.pipeline == 0 {
        return Err(BenchError::Usage(
            "--size, --batch-size and --pipeline must be > 0".into(),
        ));
    }
    let conns = args.connections.unwrap_or_else(cores).max(1);
    let body = Bytes::from(vec![b'a'; args.size]);
    let cmd = if args.batch_size == 1 {
        Command::Pub {
            topic: args.target.topic.clone(),
            body,
        }
    } else {
        Command::Mpub {
            topic: args.target.topic.clone(),
            bodies: vec![body; args.batch_size],
        }
    };
    if args.target.encoded() {
        let config = args.target.client_config()?;
        let (addr, batch, pipeline) = (
            args.target.nsqd_tcp_address.clone(),
            args.batch_size as u64,
            args.pipeline,
        );
        let (elapsed, acked) = run_client_tasks(conns, args.target.runfor, move |stop, count| {
            let (addr, config, cmd) = (addr.clone(), config.clone(), cmd.clone());
            async move {
                let p = crate::client::Producer::connect(&addr, &config)
                    .await
                    .map_err(client_error)?;
                let mut acks = std::collections::VecDeque::new();
                loop {
                    let stopping = stop.load(Relaxed);
                    while !stopping && acks.len() < pipeline {
                        acks.push_back(p.send_pipelined(cmd.clone()).await.map_err(client_error)?);
                    }
                    let Some(ack) = acks.pop_front() else { break };
                    match ack.await {
                        Ok(Ok(())) => {
                            count.fetch_add(batch, Relaxed);
                        }
                        Ok(Err(e)) => return Err(client_error(e)),
                        Err(_) => return Err(BenchError::Usage("connection lost".into())),
                    }
                }
                Ok(())
            }
        })?;
        return Ok(Report::new("pub", elapsed, acked, acked * args.size as u64));
    }
    let wire = cmd.to_bytes().freeze();
    let (addr, batch, pipeline) = (
        args.target.nsqd_tcp_address.clone(),
        args.batch_size as u64,
        args.pipeline,
    );
    // Fail fast with one clear line if nsqd is not there.
    Raw::connect(&addr)?;
    let (elapsed, acked) = run_threads(conns, args.target.runfor, move |_, stop, count| {
        let mut c = Raw::connect(&addr)?;
        let mut outstanding = 0;
        let mut out = Vec::with_capacity(wire.len() * pipeline);
        loop {
            out.clear();
            if !stop.load(Relaxed) {
                while outstanding < pipeline {
                    out.extend_from_slice(&wire);
                    outstanding += 1;
                }
            }
            if !out.is_empty() {
                c.write(&out)?;
            }
            if outstanding == 0 {
                return Ok(());
            }
            c.expect_ok()?;
            outstanding -= 1;
            count.fetch_add(batch, Relaxed);
        }
    })?;
    Ok(Report::new("pub", elapsed, acked, acked * args.size as u64))
}

pub fn subscribe(args: &SubArgs) -> Result<Report, BenchError> {
    let conns = args.connections.unwrap_or_else(cores).max(1);
    let addr = args.target.nsqd_tcp_address.clone();
    let (topic, channel, rdy) = (args.target.topic.clone(), args.channel.clone(), args.rdy);
    if args.target.encoded() {
        let config = args.target.client_config()?;
        let (elapsed, got) = run_client_tasks(conns, args.target.runfor, move |stop, count| {
            let consumer_config = crate::client::ConsumerConfig {
                topic: topic.clone(),
                channel: channel.clone(),
                max_in_flight: rdy,
                connection: config.clone(),
            };
            let addr = addr.clone();
            async move {
                let mut c = crate::client::Consumer::connect(&[addr], &consumer_config)
                    .await
                    .map_err(client_error)?;
                while !stop.load(Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(100), c.next()).await {
                        Ok(Some(Ok(d))) => {
                            d.fin();
                            count.fetch_add(1, Relaxed);
                        }
                        Ok(Some(Err(e))) => return Err(client_error(e)),
                        Ok(None) => return Ok(()),
                        Err(_) => {}
                    }
                }
                c.shutdown(Duration::from_secs(2)).await;
                Ok(())
            }
        })?;
        // Message bytes are not counted on this path.
        return Ok(Report::new("sub", elapsed, got, 0));
    }
    let bytes = Arc::new(AtomicU64::new(0));
    let bytes_in = bytes.clone();
    Raw::connect(&addr)?;
    let (elapsed, got) = run_threads(conns, args.target.runfor, move |_, stop, count| {
        let mut c = Raw::connect(&addr)?;
        c.write(
            &Command::Sub {
                topic: topic.clone(),
                channel: channel.clone(),
            }
            .to_bytes(),
        )?;
        c.expect_ok()?;
        c.write(&Command::Rdy(rdy).to_bytes())?;
        c.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .ok();
        let mut fins = BytesMut::with_capacity(64 * 1024);
        while !stop.load(Relaxed) {
            let mut n = 0u64;
            let mut b = 0u64;
            // Drain every frame already read, answering with one write.
            while let Some(frame) = c.frame()? {
                if let Frame::Message(m) = frame {
                    fins.put_slice(b"FIN ");
                    fins.put_slice(&m.id.to_hex());
                    fins.put_u8(b'\n');
                    n += 1;
                    b += m.body.len() as u64;
                }
                if c.rbuf.is_empty() {
                    break;
                }
            }
            if !fins.is_empty() {
                c.write(&fins)?;
                fins.clear();
            }
            count.fetch_add(n, Relaxed);
            bytes_in.fetch_add(b, Relaxed);
        }
        Ok(())
    })?;
    Ok(Report::new("sub", elapsed, got, bytes.load(Relaxed)))
}

pub fn latency(args: &LatencyArgs) -> Result<Report, BenchError> {
    if args.size < 8 || args.rate == 0 {
        return Err(BenchError::Usage(
            "--size must be >= 8 and --rate > 0".into(),
        ));
    }
    let addr = args.target.nsqd_tcp_address.clone();
    let mut consumer = Raw::connect(&addr)?;
    consumer.write(
        &Command::Sub {
            topic: args.target.topic.clone(),
            channel: args.channel.clone(),
        }
        .to_bytes(),
    )?;
    consumer.expect_ok()?;
    consumer.write(&Command::Rdy(2500).to_bytes())?;
    consumer
        .stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .ok();

    let mut producer = Raw::connect(&addr)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_pub = stop.clone();
    let (topic, size, rate, runfor) = (
        args.target.topic.clone(),
        args.size,
        args.rate,
        args.target.runfor,
    );
    let publisher = std::thread::spawn(move || -> Result<u64, BenchError> {
        let start = Instant::now();
        let mut sent = 0u64;
        let mut body = vec![b'l'; size];
        while start.elapsed() < runfor {
            let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            body[..8].copy_from_slice(&now_nanos().to_be_bytes());
            producer.write(
                &Command::Pub {
                    topic: topic.clone(),
                    body: Bytes::copy_from_slice(&body),
                }
                .to_bytes(),
            )?;
            producer.expect_ok()?;
            sent += 1;
        }
        stop_pub.store(true, Relaxed);
        Ok(sent)
    });

    let start = Instant::now();
    let mut samples = Vec::new();
    let mut fins = BytesMut::new();
    let mut drain_deadline = None;
    loop {
        if stop.load(Relaxed) && drain_deadline.is_none() {
            drain_deadline = Some(Instant::now() + Duration::from_secs(2));
        }
        if drain_deadline.is_some_and(|d| Instant::now() > d) {
            break;
        }
        while let Some(frame) = consumer.frame()? {
            if let Frame::Message(m) = frame {
                let sent = i64::from_be_bytes(m.body[..8].try_into().expect("8 bytes"));
                samples.push((now_nanos() - sent) as f64 / 1000.0);
                fins.put_slice(b"FIN ");
                fins.put_slice(&m.id.to_hex());
                fins.put_u8(b'\n');
            }
            if consumer.rbuf.is_empty() {
                break;
            }
        }
        if !fins.is_empty() {
            consumer.write(&fins)?;
            fins.clear();
        }
        let sent = if stop.load(Relaxed) { None } else { Some(()) };
        if sent.is_none()
            && drain_deadline.is_some()
            && samples.len() as u64 >= args.rate * runfor.as_secs()
        {
            break;
        }
    }
    let sent = publisher
        .join()
        .map_err(|_| BenchError::Usage("publisher thread panicked".into()))??;
    let elapsed = start.elapsed();
    if (samples.len() as u64) < sent {
        return Err(BenchError::Usage(format!(
            "only {} of {sent} messages arrived (is another consumer on channel {}?)",
            samples.len(),
            args.channel
        )));
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let mut report = Report::new("latency", elapsed, sent, sent * args.size as u64);
    report.latency_us = Some(Percentiles {
        p50: pct(0.5),
        p90: pct(0.9),
        p99: pct(0.99),
        p999: pct(0.999),
        max: *samples.last().unwrap_or(&0.0),
    });
    Ok(report)
}

pub fn baseline(args: &BaselineArgs) -> Result<Report, BenchError> {
    let io = |source| BenchError::Io {
        addr: "127.0.0.1 (baseline)".into(),
        source,
    };
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let receiver = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let mut s = TcpStream::connect(addr).map_err(io)?;
    let chunk = vec![0x5au8; args.write_size.max(1)];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < args.runfor {
        s.write_all(&chunk).map_err(io)?;
        sent += chunk.len() as u64;
    }
    drop(s);
    let received = receiver
        .join()
        .map_err(|_| BenchError::Usage("baseline receiver panicked".into()))?
        .map_err(io)?;
    let elapsed = start.elapsed();
    let mut r = Report::new("baseline", elapsed, 0, received.min(sent));
    r.fraction_of_baseline = Some(1.0);
    Ok(r)
}
