//! Entry points for coverage-guided fuzzing (`fuzz/`, `scripts/fuzz.sh`).
//!
//! One plain function per fuzz target: each takes arbitrary bytes, feeds
//! them to a decoder of outside input the way the servers and clients do,
//! and panics only when an invariant breaks (a decoder never panics; what
//! decodes re-encodes to something that decodes the same; bytes fed one at
//! a time decode as fed whole; two parsers of the same format agree).
//!
//! Living inside the crate, these reach `pub(crate)` items, so the fuzz
//! crate needs nothing else from the library. Not part of the API.

use crate::compress::Joined;
use crate::diskqueue::{Config as QueueConfig, DiskQueue, Meta};
use crate::http_server::long_target::{Rewriter, QUERY_HEADER};
use crate::listen::{LocalAddr, PeerAddr};
use crate::protocol::frame::{encode_message_frame, Frame, FrameDecoder};
use crate::protocol::identify::{IdentifyRequest, IdentifyResponse};
use crate::protocol::{Command, CommandDecoder, ConnState, DecodeError, Gate, Limits};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio_util::codec::Decoder;

/// A fuzz target: its name (and corpus directory) and entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target: one binary each in `fuzz/fuzz_targets/`, same name.
pub const TARGETS: &[Target] = &[
    ("v2_commands", v2_commands),
    ("identify_json", identify_json),
    ("auth_json", auth_json),
    ("lookupd_v1", lookupd_v1),
    ("snappy_stream", snappy_stream),
    ("deflate_stream", deflate_stream),
    ("diskqueue_segment", diskqueue_segment),
    ("diskqueue_recovery", diskqueue_recovery),
    ("diskqueue_meta", diskqueue_meta),
    ("nsqd_dat", nsqd_dat),
    ("http_query", http_query),
    ("http_long_target", http_long_target),
    ("http_mpub", http_mpub),
    ("client_json", client_json),
    ("client_frames", client_frames),
    ("x509_common_name", x509_common_name),
];

// ------------------------------------------------------------- helpers

/// Run a future on this thread's current-thread runtime (with timers).
fn block_on<F: Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
    }
    RT.with(|rt| rt.block_on(f))
}

/// A reader handing out at most `step` bytes per read: a slow peer.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.data.len().min(self.step).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

/// A scratch directory (on tmpfs when there is one), removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> ScratchDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("nsq-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ------------------------------------------------------- TCP V2 commands

/// What a stream of client bytes decodes to: commands, then the error that
/// closes the connection, if any.
type Decoded = Vec<Result<Command, String>>;

/// Feed `stream` to a [`CommandDecoder`] in chunks of `step` bytes, as the
/// nsqd connection loop does (decode until more bytes are needed, then read
/// again; at the end, decode with `eof`). SUB and CLS move the connection's
/// state as nsqd does. With `runs`, a PUB that follows a PUB within one
/// read is first offered to [`CommandDecoder::repeat_pub`], as the
/// connection does while it batches PUBs to one topic.
fn decode_v2(stream: &[u8], gate: Gate, limits: Limits, step: usize, runs: bool) -> Decoded {
    let mut d = CommandDecoder::new(limits);
    d.gate = gate;
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut chunks = stream.chunks(step.max(1));
    // The topic of the batch of PUBs open, if any.
    let mut batch: Option<String> = None;
    loop {
        let chunk = chunks.next();
        let eof = chunk.is_none();
        if let Some(c) = chunk {
            buf.put_slice(c);
        }
        loop {
            if let Some(topic) = batch.as_ref().filter(|_| runs) {
                if let Some(body) = d.repeat_pub(&mut buf, topic) {
                    let topic = topic.clone();
                    out.push(Ok(Command::Pub { topic, body }));
                    continue;
                }
            }
            let decoded = d.decode_command(&mut buf, eof);
            batch = match &decoded {
                Ok(Some(Command::Pub { topic, .. })) => Some(topic.clone()),
                _ => None,
            };
            match decoded {
                Ok(Some(cmd)) => {
                    match cmd {
                        Command::Sub { .. } => d.gate.state = ConnState::Subscribed,
                        Command::Cls => d.gate.state = ConnState::Closing,
                        Command::Identify(ref body) => {
                            // nsqd parses the body next; it must not panic.
                            let _ = IdentifyRequest::parse(body);
                        }
                        _ => {}
                    }
                    out.push(Ok(cmd));
                }
                Ok(None) => break,
                Err(e) => {
                    // Every decode error closes the connection.
                    let fatal = match &e {
                        DecodeError::Protocol(p) => p.fatal,
                        _ => true,
                    };
                    assert!(fatal, "non-fatal decode error would loop: {e}");
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
        if eof {
            return out;
        }
    }
}

/// TCP V2 client commands (nsqd's decoder). The first byte picks the
/// connection's state and limits; the rest is the byte stream after the
/// magic. Whole, byte by byte and in odd chunks must decode alike, and each
/// decoded command must re-encode to bytes that decode to it again.
pub fn v2_commands(data: &[u8]) {
    let Some((&cfg, stream)) = data.split_first() else {
        return;
    };
    let gate = Gate {
        state: match cfg & 3 {
            1 => ConnState::Subscribed,
            2 => ConnState::Closing,
            _ => ConnState::Init,
        },
        tls_pending: cfg & 4 != 0,
        heartbeats_disabled: cfg & 8 != 0,
    };
    let limits = if cfg & 16 != 0 {
        Limits {
            max_msg_size: 64,
            max_body_size: 256,
            max_rdy_count: 10,
            max_defer_ms: 1000,
        }
    } else {
        Limits::default()
    };
    let whole = decode_v2(stream, gate, limits, stream.len(), false);
    let bytewise = decode_v2(stream, gate, limits, 1, false);
    assert_eq!(whole, bytewise, "byte by byte decodes differently");
    let step = 2 + (cfg >> 5) as usize * 3;
    let chunked = decode_v2(stream, gate, limits, step, false);
    assert_eq!(whole, chunked, "chunks of {step} decode differently");
    // The connection's short path for runs of PUBs changes nothing.
    let runs = decode_v2(stream, gate, limits, stream.len(), true);
    assert_eq!(whole, runs, "the PUB-run path decodes differently");
    let runs_chunked = decode_v2(stream, gate, limits, step, true);
    assert_eq!(whole, runs_chunked, "the PUB-run path in chunks of {step}");

    // Re-encode what decoded (client side) and decode it again, replaying
    // the state changes in order.
    let mut gate = gate;
    for cmd in whole.iter().filter_map(|r| r.as_ref().ok()) {
        let ids_are_ours = match cmd {
            Command::Fin(id) | Command::Touch(id) | Command::Req { id, .. } => {
                crate::protocol::MessageId::from_hex(id).is_some()
            }
            _ => true,
        };
        if ids_are_ours {
            let again = decode_v2(&cmd.to_bytes(), gate, limits, usize::MAX, false);
            assert_eq!(again, vec![Ok(cmd.clone())], "re-encoded {cmd:?}");
        }
        match cmd {
            Command::Sub { .. } => gate.state = ConnState::Subscribed,
            Command::Cls => gate.state = ConnState::Closing,
            _ => {}
        }
    }
}

// ------------------------------------------------------------ IDENTIFY

/// nsqd's default options, parsed once.
fn nsqd_options() -> &'static crate::nsqd::Options {
    static OPTS: std::sync::OnceLock<crate::nsqd::Options> = std::sync::OnceLock::new();
    OPTS.get_or_init(|| {
        crate::nsqd::Options::parse_args(["nsqd"].into_iter().map(Into::into)).expect("options")
    })
}

/// IDENTIFY JSON both ways: the body a client sends (nsqd's parse, then
/// its negotiation against nsqd's options) and the answer nsqd sends (the
/// client's parse). What parses must serialize and parse back to the same
/// value.
pub fn identify_json(data: &[u8]) {
    use crate::nsqd::tcp::negotiate::negotiate;
    if let Some(req) = IdentifyRequest::parse(data) {
        let json = serde_json::to_vec(&req).expect("serializes");
        assert_eq!(
            IdentifyRequest::parse(&json).as_ref(),
            Some(&req),
            "request round trip"
        );
        for tls_available in [false, true] {
            if let Ok(n) = negotiate(&req, nsqd_options(), tls_available) {
                assert!(n.output_buffer_size > 0, "empty output buffer");
                assert!(tls_available || !n.tls, "TLS without a certificate");
                assert_eq!(
                    n.response.is_some(),
                    req.feature_negotiation == Some(true),
                    "answer without negotiation, or none with it"
                );
            }
        }
    }
    if let Ok(resp) = crate::client::conn::parse_identify_response(data) {
        assert!(resp.max_rdy_count > 0);
        let json = serde_json::to_vec(&resp).expect("serializes");
        let back: IdentifyResponse = serde_json::from_slice(&json).expect("own JSON parses");
        assert_eq!(back, resp, "response round trip");
    }
}

// ------------------------------------------------------- auth server JSON

/// The auth server's answer, read as nsqd reads it (then its regexes
/// used), with and without the HTTP API guarded (`admin` known or not).
pub fn auth_json(data: &[u8]) {
    use crate::nsqd::auth::{parse, Answer, Permission};
    for admin_known in [false, true] {
        let Ok(answer) = serde_json::from_slice::<Answer>(data) else {
            return;
        };
        if let Ok(auth) = parse(Bytes::from_static(b"secret"), answer, admin_known) {
            for p in [
                Permission::Publish,
                Permission::Subscribe,
                Permission::Admin,
            ] {
                let _ = auth.allows(p, "topic", "channel");
                let _ = auth.allows(p, "", "");
            }
            assert!(
                admin_known || !auth.allows(Permission::Admin, "topic", ""),
                "admin granted while it is not a permission"
            );
            let _ = auth.is_expired();
        }
    }
}

// ------------------------------------------------ nsqlookupd protocol V1

fn lookupd() -> std::sync::Arc<crate::lookupd::server::Lookupd> {
    use crate::lookupd::{Options, RegistrationDb};
    static OPTS: std::sync::OnceLock<Options> = std::sync::OnceLock::new();
    let opts = OPTS
        .get_or_init(|| {
            Options::parse_args(
                ["nsqlookupd", "--broadcast-address=lookupd.fuzz"]
                    .into_iter()
                    .map(Into::into),
            )
            .expect("options")
        })
        .clone();
    std::sync::Arc::new(crate::lookupd::server::Lookupd {
        opts,
        db: parking_lot::RwLock::new(RegistrationDb::new()),
        tcp_addr: LocalAddr::Tcp("127.0.0.1:4160".parse().expect("addr")),
        http_addr: LocalAddr::Tcp("127.0.0.1:4161".parse().expect("addr")),
        shutdown: tokio_util::sync::CancellationToken::new(),
    })
}

/// One nsqlookupd connection fed `input` `step` bytes at a time; what it
/// answered.
fn run_lookupd_v1(input: &[u8], step: usize) -> Vec<u8> {
    let lookupd = lookupd();
    let addr = PeerAddr::Tcp("127.0.0.1:50000".parse().expect("addr"));
    let mut stream = Joined {
        reader: Trickle { data: input, step },
        writer: Vec::new(),
    };
    block_on(crate::lookupd::tcp::handle(
        lookupd.clone(),
        &mut stream,
        addr,
    ));
    // The connection is gone: its nsqd produces nothing any more.
    let db = lookupd.db.read();
    assert!(
        db.lookup_registrations(&addr.key()).is_empty(),
        "registrations left behind by a closed connection"
    );
    stream.writer
}

/// nsqlookupd's TCP protocol V1, served over an in-memory stream. Unless
/// the first byte is odd, the magic `  V1` is put before the rest. Fed
/// whole and byte by byte, the answers must be the same, and be a sequence
/// of size-prefixed responses.
pub fn lookupd_v1(data: &[u8]) {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let input = if cfg & 1 == 1 {
        rest.to_vec()
    } else {
        [&b"  V1"[..], rest].concat()
    };
    let whole = run_lookupd_v1(&input, usize::MAX);
    let bytewise = run_lookupd_v1(&input, 1);
    assert_eq!(whole, bytewise, "byte by byte answers differently");
    let mut at = &whole[..];
    while !at.is_empty() {
        assert!(at.len() >= 4, "truncated response size");
        let size = u32::from_be_bytes(at[..4].try_into().expect("4 bytes")) as usize;
        assert!(at.len() >= 4 + size, "truncated response");
        at = &at[4 + size..];
    }
}

// ------------------------------------------------ compressed stream readers

/// Read everything (at most `limit` bytes) from `r`; the error, if any.
async fn drain<R: AsyncRead + Unpin>(mut r: R, limit: usize) -> (Vec<u8>, Option<String>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => return (out, None),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > limit {
                    return (out, Some("limit".into()));
                }
            }
            Err(e) => return (out, Some(e.to_string())),
        }
    }
}

/// Compare two reads of the same stream: same verdict; same bytes when
/// both ended well; otherwise one is a prefix of the other (an error may
/// surface before or after the chunks that preceded it in the same read).
fn same_stream(a: &(Vec<u8>, Option<String>), b: &(Vec<u8>, Option<String>), what: &str) {
    assert_eq!(
        a.1.is_some(),
        b.1.is_some(),
        "{what}: verdicts differ: {a:?} / {b:?}"
    );
    if a.1.is_none() {
        assert!(a.0 == b.0, "{what}: decoded bytes differ");
    } else {
        let n = a.0.len().min(b.0.len());
        assert!(a.0[..n] == b.0[..n], "{what}: decoded bytes diverge");
    }
}

/// The snappy framing reader (IDENTIFY `snappy: true`), fed whole and byte
/// by byte; and the writer's output read back.
pub fn snappy_stream(data: &[u8]) {
    use crate::compress::snappy::{Reader, Writer};
    const LIMIT: usize = 1 << 20;
    let whole = block_on(drain(Reader::new(data), LIMIT));
    let bytewise = block_on(drain(Reader::new(Trickle { data, step: 1 }), LIMIT));
    same_stream(&whole, &bytewise, "snappy");

    let sink = SharedSink::default();
    let mut w = Writer::new(sink.clone());
    block_on(async {
        w.write_all(data).await.expect("write");
        w.flush().await.expect("flush");
    });
    let framed = sink.0.lock().clone();
    let back = block_on(drain(Reader::new(&framed[..]), usize::MAX));
    assert_eq!(back.1, None, "own snappy stream refused");
    assert!(back.0 == data, "snappy round trip differs");
}

/// A writer whose bytes stay readable after it is handed over.
#[derive(Clone, Default)]
struct SharedSink(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

impl tokio::io::AsyncWrite for SharedSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.lock().extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The raw DEFLATE reader (IDENTIFY `deflate: true`), fed whole and byte by
/// byte; and the writer's output read back.
pub fn deflate_stream(data: &[u8]) {
    const LIMIT: usize = 1 << 20;
    let read = |step: usize| {
        let stream = Joined {
            reader: Trickle { data, step },
            writer: tokio::io::sink(),
        };
        block_on(drain(crate::compress::deflate(stream, 6), LIMIT))
    };
    let whole = read(usize::MAX);
    let bytewise = read(1);
    same_stream(&whole, &bytewise, "deflate");

    let sink = SharedSink::default();
    let level = 1 + data.first().map_or(0, |b| b % 9) as u32;
    let mut w = crate::compress::deflate(
        Joined {
            reader: tokio::io::empty(),
            writer: sink.clone(),
        },
        level,
    );
    block_on(async {
        w.write_all(data).await.expect("write");
        w.flush().await.expect("flush");
    });
    // A peer's stream is never finished, only flushed: read what was sent
    // (at its end, the reader rightly reports an unexpected EOF).
    let compressed = sink.0.lock().clone();
    let mut back = vec![0u8; data.len()];
    let mut r = crate::compress::deflate(
        Joined {
            reader: &compressed[..],
            writer: tokio::io::sink(),
        },
        6,
    );
    block_on(r.read_exact(&mut back)).expect("own deflate stream refused");
    assert!(back == data, "deflate round trip differs");
}

// ------------------------------------------------------------ disk queue

fn queue_config(cfg: u8) -> QueueConfig {
    QueueConfig {
        max_bytes_per_file: [64, 200, 1 << 20, 1][cfg as usize & 3],
        min_record_size: 1 + (cfg >> 2 & 3) as u32,
        max_record_size: [16, 100, 1000, 1 << 20][(cfg >> 4) as usize & 3],
        sync_every: 1 + (cfg >> 6) as u64,
    }
}

/// Pop every record, failing if that never ends.
fn drain_queue(q: &mut DiskQueue, cfg: &QueueConfig, bound: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some(r) = q.pop() {
        assert!(
            r.len() >= cfg.min_record_size as usize && r.len() <= cfg.max_record_size as usize,
            "record of {} bytes outside the configured sizes",
            r.len()
        );
        out.push(r);
        assert!(out.len() <= bound, "more records than bytes allow");
    }
    assert_eq!(q.depth(), 0, "depth after draining");
    out
}

/// After whatever recovery did: the queue still stores and returns a
/// record, both ways a channel takes one (moved past unread because its
/// cache holds it, and read back from disk), and survives a reopen.
fn queue_still_works(dir: &Path, cfg: &QueueConfig, mut q: DiskQueue) {
    let rec = vec![b'r'; cfg.min_record_size as usize];
    skip_cached_record(&mut q, cfg);
    q.put_with([&rec[..]], |r, buf| buf.extend_from_slice(r), |r| r.len())
        .expect("put after recovery");
    assert_eq!(q.pop().as_deref(), Some(&rec[..]), "record written back");
    if let Some(job) = q.sync_job(true) {
        job.run().expect("sync");
    }
    drop(q);
    let mut q = DiskQueue::open(dir, "q", cfg.clone()).expect("reopen");
    assert_eq!(q.depth(), 0, "depth after reopen");
    assert!(q.pop().is_none(), "records after reopen");
}

/// With everything read, a channel caches what it writes and moves past
/// it on disk unread (`skip_tracked`): write a record, peek at it, skip it.
fn skip_cached_record(q: &mut DiskQueue, cfg: &QueueConfig) {
    let rec = vec![b'c'; cfg.min_record_size as usize];
    q.put_with([&rec[..]], |r, buf| buf.extend_from_slice(r), |r| r.len())
        .expect("put");
    assert_eq!(q.peek(0, 2), [&rec[..]], "peek at the record written");
    let held = q.skip_tracked(rec.len()).expect("skip the cached record");
    q.release(held);
    assert_eq!(q.depth(), 0, "depth after skipping");
}

/// Files in `dir` set aside as damaged (`*.bad`, `*.bad.N`).
fn set_aside(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter(|e| {
            let name = e.as_ref().expect("entry").file_name();
            name.to_string_lossy().contains(".bad")
        })
        .count()
}

/// One segment file of records (`[i32 BE size][bytes]`*) and no metadata,
/// as a queue finds it after losing its metadata: every valid record up to
/// the first damage comes back, in order, and damage sets the file aside.
pub fn diskqueue_segment(data: &[u8]) {
    let Some((&c, segment)) = data.split_first() else {
        return;
    };
    let cfg = queue_config(c);
    let dir = ScratchDir::new();
    std::fs::write(dir.0.join("q.diskqueue.000000.dat"), segment).expect("write");

    // The records a reader of the format must find.
    let mut expected = Vec::new();
    let mut at = segment;
    while at.len() >= 4 {
        let size = i32::from_be_bytes(at[..4].try_into().expect("4 bytes"));
        if size < cfg.min_record_size as i32
            || size as i64 > cfg.max_record_size as i64
            || at.len() - 4 < size as usize
        {
            break;
        }
        expected.push(&at[4..4 + size as usize]);
        at = &at[4 + size as usize..];
    }
    let damaged = !at.is_empty();

    let mut q = DiskQueue::open(&dir.0, "q", cfg.clone()).expect("open");
    assert_eq!(q.depth(), expected.len() as u64, "recovered depth");
    let got = drain_queue(&mut q, &cfg, segment.len() / 5 + 1);
    assert!(
        got.iter().map(|b| &b[..]).eq(expected.iter().copied()),
        "records differ"
    );
    assert_eq!(
        set_aside(&dir.0) > 0,
        damaged,
        "damage not set aside, or set aside wrongly"
    );
    queue_still_works(&dir.0, &cfg, q);
}

/// A queue directory as a crash may leave it: metadata text and up to four
/// segment files, separated in the input by `|||`. The first part is the
/// configuration byte and the metadata (none when empty); each later part
/// is a segment number byte and the segment's bytes. Opening never fails,
/// a peek shows what reading then delivers first, reading ends, and the
/// queue works afterwards.
pub fn diskqueue_recovery(data: &[u8]) {
    let mut parts = split_on(data, b"|||").into_iter();
    let Some(first) = parts.next() else {
        return;
    };
    let Some((&c, meta)) = first.split_first() else {
        return;
    };
    let cfg = queue_config(c);
    let dir = ScratchDir::new();
    if !meta.is_empty() {
        std::fs::write(dir.0.join("q.diskqueue.meta.dat"), meta).expect("write");
    }
    let mut total = 0;
    for part in parts.take(4) {
        let Some((&num, bytes)) = part.split_first() else {
            continue;
        };
        total += bytes.len();
        let name = format!("q.diskqueue.{:06}.dat", num % 16);
        std::fs::write(dir.0.join(name), bytes).expect("write");
    }
    let mut q = DiskQueue::open(&dir.0, "q", cfg.clone()).expect("open");
    // `/channel/peek` shows what reading delivers first (it stops early at
    // damage, where reading sets the segment aside and goes on).
    let peeked = q.peek(0, 8);
    let read = drain_queue(&mut q, &cfg, total / 5 + 1);
    assert!(
        read.starts_with(&peeked),
        "peek shows what is not read first"
    );
    queue_still_works(&dir.0, &cfg, q);
}

fn split_on<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}

/// The metadata text alone: what parses writes back as text that parses
/// to the same positions.
pub fn diskqueue_meta(data: &[u8]) {
    if let Some(m) = Meta::parse(data) {
        assert!((m.read_file_num, m.read_pos) <= (m.write_file_num, m.write_pos));
        assert_eq!(
            Meta::parse(m.to_text().as_bytes()),
            Some(m),
            "meta round trip"
        );
    }
}

// --------------------------------------------------------------- nsqd.dat

/// `nsqd.dat` read from a data directory as nsqd does at start; what loads
/// saves and loads back the same.
pub fn nsqd_dat(data: &[u8]) {
    use crate::nsqd::metadata;
    let dir = ScratchDir::new();
    std::fs::write(metadata::path(&dir.0), data).expect("write");
    let Ok(Some(meta)) = metadata::load(&dir.0) else {
        return;
    };
    for t in meta.topics.iter().flatten() {
        let _ = crate::protocol::names::is_valid_name(t.name.as_bytes());
    }
    let again = ScratchDir::new();
    metadata::save(&again.0, &meta).expect("save");
    let back = metadata::load(&again.0).expect("load").expect("present");
    assert_eq!(back, meta, "nsqd.dat round trip");
}

// ------------------------------------------------------------------ HTTP

/// Go's `url.ParseQuery` (first value kept), the reference for [`Query`].
fn go_parse_query(raw: &str) -> Option<HashMap<String, String>> {
    fn unescape(s: &[u8]) -> Option<String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'%' => {
                    let (h, l) = (*s.get(i + 1)?, *s.get(i + 2)?);
                    if !h.is_ascii_hexdigit() || !l.is_ascii_hexdigit() {
                        return None;
                    }
                    let v = |c: u8| (c as char).to_digit(16).expect("hex") as u8;
                    out.push(v(h) << 4 | v(l));
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }
    let mut map = HashMap::new();
    let mut failed = false;
    for pair in raw.split('&') {
        if pair.contains(';') {
            failed = true;
            continue;
        }
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (unescape(k.as_bytes()), unescape(v.as_bytes())) {
            (Some(k), Some(v)) => {
                map.entry(k).or_insert(v);
            }
            _ => failed = true,
        }
    }
    (!failed).then_some(map)
}

/// Query strings (nsqd's and nsqlookupd's HTTP parameters), compared with
/// Go's `url.ParseQuery`.
pub fn http_query(data: &[u8]) {
    use crate::http_api::Query;
    let raw = String::from_utf8_lossy(data);
    let ours = Query::parse(&raw);
    let reference = go_parse_query(&raw);
    match (&ours, &reference) {
        (Ok(q), Some(map)) => {
            for (k, v) in map {
                assert_eq!(q.get(k), Some(v.as_str()), "value of {k:?}");
            }
        }
        (Err(_), None) => {}
        (Ok(_), None) => panic!("accepted what Go refuses: {raw:?}"),
        (Err(_), Some(_)) => panic!("refused what Go accepts: {raw:?}"),
    }
}

/// The rewriter of over-long request targets, in front of every HTTP
/// server. In the input, `~` stands for 16 KiB of `a` (so that targets past
/// the rewrite threshold are within reach); the first byte picks a chunk
/// size. Whole, byte by byte and chunked must come out the same, and
/// untouched unless a rewrite happened.
pub fn http_long_target(data: &[u8]) {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let mut input = Vec::with_capacity(rest.len());
    for &b in rest {
        if b == b'~' {
            input.resize(input.len() + 16 * 1024, b'a');
        } else {
            input.push(b);
        }
    }
    let run = |step: usize| {
        let mut r = Rewriter::default();
        let mut out = Vec::new();
        for chunk in input.chunks(step.max(1)) {
            r.feed(chunk, &mut out);
        }
        out
    };
    let whole = run(input.len());
    assert!(run(1) == whole, "byte by byte rewrites differently");
    let step = 1 + cfg as usize * 7;
    assert!(run(step) == whole, "chunks of {step} rewrite differently");
    let header = format!("\r\n{QUERY_HEADER}: ");
    if !whole.windows(header.len()).any(|w| w == header.as_bytes()) {
        // Untouched, but for an unfinished line held back at the end.
        assert!(input.starts_with(&whole), "changed without a moved query");
        assert!(
            !input[whole.len()..].contains(&b'\n'),
            "held back more than a partial line"
        );
    }
}

/// nsqd's `POST /mpub?binary=true` body, compared with the same bytes as a
/// TCP MPUB body: both must accept the same messages and refuse alike.
pub fn http_mpub(data: &[u8]) {
    let Some((&cfg, body)) = data.split_first() else {
        return;
    };
    let (max_msg, max_body) = if cfg & 1 == 1 {
        (64usize, 1024usize)
    } else {
        (1_048_576, 5_242_880)
    };
    if body.is_empty() || body.len() > max_body {
        return; // refused before the body is read (MSG_EMPTY, BODY_TOO_BIG)
    }
    let http = crate::nsqd::http::split_binary(&Bytes::copy_from_slice(body), max_msg, max_body);
    if let Ok(parts) = &http {
        for p in parts {
            assert!(!p.is_empty() && p.len() <= max_msg);
        }
    }
    let mut tcp = b"MPUB t\n".to_vec();
    tcp.extend_from_slice(&(body.len() as u32).to_be_bytes());
    tcp.extend_from_slice(body);
    let limits = Limits {
        max_msg_size: max_msg as i64,
        max_body_size: max_body as i64,
        ..Limits::default()
    };
    let mut d = CommandDecoder::new(limits);
    let mut buf = BytesMut::from(&tcp[..]);
    let tcp = d.decode_command(&mut buf, true);
    match (http, tcp) {
        (Ok(parts), Ok(Some(Command::Mpub { bodies, .. }))) => assert_eq!(parts, bodies),
        (Err(e), Err(DecodeError::Protocol(p))) => {
            assert_eq!(format!("E_{}", e.1), p.code, "error codes differ")
        }
        (h, t) => panic!("HTTP {h:?} but TCP {t:?}"),
    }
}

// ------------------------------------------------------- client readers

/// The JSON the client, the tools and nsqadmin read from nsqlookupd and
/// nsqd: decoded as they decode it, then used as they use it.
pub fn client_json(data: &[u8]) {
    use crate::client::api;
    if let Ok(l) = api::decode::<api::Lookup>(data) {
        for p in &l.producers {
            let _ = (p.tcp_addr(), p.http_addr());
        }
    }
    let _ = serde_json::from_slice::<crate::nsqd::lookup::LookupdInfo>(data);
    let _ = serde_json::from_slice::<crate::admin::types::NsqdStats>(data);
    let _ = serde_json::from_slice::<crate::admin::types::NsqdInfo>(data);
}

/// Frames from nsqd, as the client reads them: whole and byte by byte
/// alike; each message frame re-encodes to the same message.
pub fn client_frames(data: &[u8]) {
    let run = |step: usize| {
        let mut d = FrameDecoder { max_frame: 1 << 20 };
        let mut buf = BytesMut::new();
        let mut out: Vec<Result<Frame, String>> = Vec::new();
        for chunk in data.chunks(step.max(1)) {
            buf.put_slice(chunk);
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(f)) => out.push(Ok(f)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e.to_string()));
                        return out;
                    }
                }
            }
        }
        out
    };
    let whole = run(data.len());
    assert_eq!(run(1), whole, "byte by byte decodes differently");
    for f in whole.iter().flatten() {
        if let Frame::Message(m) = f {
            let mut buf = BytesMut::new();
            encode_message_frame(&mut buf, m);
            let mut d = FrameDecoder::default();
            assert_eq!(d.decode(&mut buf).ok().flatten().as_ref(), Some(f));
        }
    }
}

// ------------------------------------------------- client certificates

/// The subject common name nsqd reads from a TLS client's certificate
/// (passed to the auth server). What follows the certificate's outer
/// element is not part of it: once a name is found, trailing bytes must
/// not change it.
pub fn x509_common_name(data: &[u8]) {
    let name = crate::x509::common_name(data);
    if name.is_some() {
        let longer = [data, b"\x30\x03\x02\x01\x00"].concat();
        assert_eq!(crate::x509::common_name(&longer), name, "trailing bytes");
    }
}

#[cfg(test)]
mod tests {
    /// The hand-made certificate seeds reach the subject (so fuzzing starts
    /// from inputs that get all the way through the walker).
    #[test]
    fn certificate_seeds_have_the_names_they_were_made_with() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/x509_common_name");
        let cn = |f: &str| crate::x509::common_name(&std::fs::read(dir.join(f)).expect("seed"));
        assert_eq!(cn("utf8").as_deref(), Some("client.example"));
        assert_eq!(cn("printable_no_version").as_deref(), Some("client"));
        assert_eq!(cn("bmp_and_t61").as_deref(), Some("caf\u{e9}"));
        assert_eq!(cn("long_form_no_cn"), None);
    }

    /// Every entry point over its committed corpus (the hand-made seeds and
    /// the inputs that once crashed it), without any fuzzing tool.
    #[test]
    fn corpus_replays() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for (name, run) in super::TARGETS {
            let dir = root.join(name);
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.expect("entry").path())
                .collect();
            files.sort();
            assert!(!files.is_empty(), "no seeds for {name}");
            for f in files {
                let data = std::fs::read(&f).expect("read");
                let ok = std::panic::catch_unwind(|| run(&data));
                assert!(ok.is_ok(), "{name}: {} fails", f.display());
            }
        }
    }
}
