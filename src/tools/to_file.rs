//! nsq-to-file (NSQ's nsq_to_file): archive topics to files, one message
//! per line, rotated by time and size, optionally gzipped.
//!
//! Safety first: a message is FINished only after its bytes are written
//! and fsynced (in batches: every `--max-in-flight` messages, every
//! `--sync-interval`, when no more messages are waiting, on rotation and on
//! exit), so a crash or kill of the tool loses nothing; at worst the last
//! batch is written twice. Files are written in `--work-dir` and moved to
//! `--output-dir` once finished, never overwriting one already there.

use super::args::Connection;
use super::Failure;
use crate::cli::duration_arg;
use crate::client::{Consumer, ConsumerConfig, Delivery, LookupdPolling};
use chrono::{DateTime, Local};
use clap::{ArgAction, Parser};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// nsq-to-file: archive NSQ topics to (rotated, optionally gzipped) files.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "nsq-to-file",
    version,
    about = "Write NSQ topics to files, one message per line, rotated and optionally gzipped (NSQ's nsq_to_file)"
)]
pub struct ToFileArgs {
    /// NSQ topic (may be given multiple times).
    #[arg(long = "topic", action = ArgAction::Append, value_name = "TOPIC")]
    pub topics: Vec<String>,

    /// Only archive topics matching this regular expression (applies to
    /// --topic, and to topics found through nsqlookupd when none is given).
    #[arg(long = "topic-pattern", default_value = "", value_name = "REGEX")]
    pub topic_pattern: String,

    /// How often to look for new topics in nsqlookupd (without --topic).
    #[arg(long = "topic-refresh", default_value = "1m0s", value_parser = duration_arg, value_name = "DURATION")]
    pub topic_refresh: Duration,

    /// NSQ channel.
    #[arg(long, default_value = "nsq_to_file", value_name = "CHANNEL")]
    pub channel: String,

    #[command(flatten)]
    pub sources: super::args::Sources,

    /// Messages in flight, and the most written between two syncs.
    #[arg(long = "max-in-flight", default_value_t = 200, value_name = "N")]
    pub max_in_flight: u64,

    /// Directory for finished files.
    #[arg(long = "output-dir", default_value = "/tmp", value_name = "DIR")]
    pub output_dir: PathBuf,

    /// Directory for files being written (default: the output directory).
    #[arg(long = "work-dir", default_value = "", value_name = "DIR")]
    pub work_dir: String,

    /// strftime format of <DATETIME> (%Y %y %m %d %H %I %M %S %p %B %b %A %a %Z %z %%).
    #[arg(
        long = "datetime-format",
        default_value = "%Y-%m-%d_%H",
        value_name = "FORMAT"
    )]
    pub datetime_format: String,

    /// File name; tokens <TOPIC>, <HOST>, <PID>, <DATETIME>, <REV>.
    #[arg(
        long = "filename-format",
        default_value = "<TOPIC>.<HOST><REV>.<DATETIME>.log",
        value_name = "FORMAT"
    )]
    pub filename_format: String,

    /// Replaces <HOST> (default: the short host name); may contain
    /// <SHORT_HOST> and <HOSTNAME>.
    #[arg(long = "host-identifier", default_value = "", value_name = "TEXT")]
    pub host_identifier: String,

    /// Gzip the files.
    #[arg(long)]
    pub gzip: bool,

    /// Gzip compression level, 1 (fast) to 9 (small).
    #[arg(long = "gzip-level", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9), value_name = "N")]
    pub gzip_level: u32,

    /// Do not create a file for an interval with no messages.
    #[arg(long = "skip-empty-files")]
    pub skip_empty_files: bool,

    /// Start a new file once one exceeds this many bytes (0: never).
    #[arg(long = "rotate-size", default_value_t = 0, value_name = "BYTES")]
    pub rotate_size: u64,

    /// Start a new file this often (0: only when <DATETIME> changes).
    #[arg(long = "rotate-interval", default_value = "0s", value_parser = duration_arg, value_name = "DURATION")]
    pub rotate_interval: Duration,

    /// Longest time between an fsync (and the FINs it allows) and the next.
    #[arg(long = "sync-interval", default_value = "30s", value_parser = duration_arg, value_name = "DURATION")]
    pub sync_interval: Duration,

    /// How often to ask nsqlookupd for producers.
    #[arg(long = "lookupd-poll-interval", default_value = "60s", value_parser = duration_arg, value_name = "DURATION")]
    pub lookupd_poll_interval: Duration,

    /// Timeout for connecting to nsqlookupd's HTTP API.
    #[arg(long = "http-client-connect-timeout", default_value = "2s", value_parser = duration_arg, value_name = "DURATION")]
    pub http_connect_timeout: Duration,

    /// Timeout for a whole request to nsqlookupd's HTTP API.
    #[arg(long = "http-client-request-timeout", default_value = "5s", value_parser = duration_arg, value_name = "DURATION")]
    pub http_request_timeout: Duration,

    /// Log level: debug, info, warn, error or fatal.
    #[arg(long = "log-level", default_value = "info", value_parser = crate::cli::parse_log_level)]
    pub log_level: crate::cli::LogLevel,

    /// Prefix of every log line.
    #[arg(long = "log-prefix", default_value = "[nsq-to-file] ")]
    pub log_prefix: String,

    #[command(flatten)]
    pub connection: Connection,
}

impl ToFileArgs {
    fn work_dir(&self) -> PathBuf {
        if self.work_dir.is_empty() {
            self.output_dir.clone()
        } else {
            PathBuf::from(&self.work_dir)
        }
    }

    /// Whether file names carry a revision (and files are created fresh).
    fn uses_rev(&self) -> bool {
        self.gzip
            || self.rotate_size > 0
            || !self.rotate_interval.is_zero()
            || self.work_dir() != self.output_dir
    }

    fn check(&self) -> Result<(), String> {
        if self.uses_rev() && !self.filename_format.contains("<REV>") {
            return Err(
                "missing <REV> in --filename-format when gzip, rotation, or work dir enabled"
                    .into(),
            );
        }
        if self.topics.is_empty() && self.sources.lookupd_http_addresses.is_empty() {
            return Err("--topic required (or --lookupd-http-address to discover topics)".into());
        }
        self.sources.check_one_kind()
    }
}

/// Expand NSQ's file name tokens (not <REV> and <DATETIME>).
fn base_name(args: &ToFileArgs, topic: &str) -> String {
    let hostname = crate::sys::hostname();
    let short = hostname.split('.').next().unwrap_or("").to_string();
    let host = if args.host_identifier.is_empty() {
        short.clone()
    } else {
        args.host_identifier
            .replace("<SHORT_HOST>", &short)
            .replace("<HOSTNAME>", &hostname)
    };
    let mut name = args
        .filename_format
        .replace("<TOPIC>", topic)
        .replace("<HOST>", &host)
        .replace("<PID>", &std::process::id().to_string());
    if args.gzip && !name.ends_with(".gz") {
        name.push_str(".gz");
    }
    name
}

/// Go-style strftime for <DATETIME>: the directives NSQ's tool supports.
pub fn strftime(format: &str, t: &DateTime<Local>) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let spec = match chars.next() {
            Some(s) => s,
            None => {
                out.push('%');
                break;
            }
        };
        let piece = match spec {
            'Y' => t.format("%Y").to_string(),
            'y' => t.format("%y").to_string(),
            'm' => t.format("%m").to_string(),
            'd' => t.format("%d").to_string(),
            'H' => t.format("%H").to_string(),
            'I' => t.format("%I").to_string(),
            'M' => t.format("%M").to_string(),
            'S' => t.format("%S").to_string(),
            'p' => t.format("%p").to_string(),
            'B' => t.format("%B").to_string(),
            'b' => t.format("%b").to_string(),
            'A' => t.format("%A").to_string(),
            'a' => t.format("%a").to_string(),
            'Z' => t.format("%Z").to_string(),
            'z' => t.format("%z").to_string(),
            '%' => "%".to_string(),
            other => format!("%{other}"),
        };
        out.push_str(&piece);
    }
    out
}

/// Messages written, synced and FINished (for the rate line).
static ARCHIVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The file being written.
struct OpenFile {
    work_path: PathBuf,
    name: String,
    datetime: String,
    rev: u32,
    writer: Writer,
    /// Bytes written (uncompressed).
    bytes: u64,
    opened_at: Instant,
}

enum Writer {
    Plain(File),
    Gzip(flate2::write::GzEncoder<File>, u32),
}

impl Writer {
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Writer::Plain(f) => f.write_all(data),
            Writer::Gzip(g, _) => g.write_all(data),
        }
    }

    /// Make everything written so far durable. A gzip member is closed (so
    /// the file is valid up to here) and a new one begins.
    fn sync(self) -> std::io::Result<Writer> {
        match self {
            Writer::Plain(f) => {
                f.sync_data()?;
                Ok(Writer::Plain(f))
            }
            Writer::Gzip(g, level) => {
                let f = g.finish()?;
                f.sync_data()?;
                Ok(Writer::Gzip(
                    flate2::write::GzEncoder::new(f, flate2::Compression::new(level)),
                    level,
                ))
            }
        }
    }

    fn close(self) -> std::io::Result<()> {
        match self {
            Writer::Plain(f) => f.sync_all(),
            Writer::Gzip(g, _) => g.finish()?.sync_all(),
        }
    }
}

/// One topic's archiver.
struct Archiver<'a> {
    args: &'a ToFileArgs,
    base: String,
    work_dir: PathBuf,
    file: Option<OpenFile>,
    /// Written, not yet synced, not yet FINished.
    pending: Vec<Delivery>,
    last_sync: Instant,
}

impl<'a> Archiver<'a> {
    fn new(args: &'a ToFileArgs, topic: &str) -> Self {
        Archiver {
            args,
            base: base_name(args, topic),
            work_dir: args.work_dir(),
            file: None,
            pending: Vec::new(),
            last_sync: Instant::now(),
        }
    }

    fn name_for(&self, datetime: &str, rev: u32) -> String {
        let rev = if self.args.uses_rev() {
            format!("-{rev:06}")
        } else {
            String::new()
        };
        self.base
            .replace("<DATETIME>", datetime)
            .replace("<REV>", &rev)
    }

    /// Open the file for `datetime`, at the first free revision.
    fn open(&mut self, datetime: &str, mut rev: u32) -> Result<(), Failure> {
        let fresh = self.args.uses_rev();
        loop {
            let name = self.name_for(datetime, rev);
            let work_path = self.work_dir.join(&name);
            let taken = work_path.exists() || self.args.output_dir.join(&name).exists();
            if fresh && taken {
                rev += 1;
                continue;
            }
            let mut opts = OpenOptions::new();
            opts.write(true);
            if fresh {
                opts.create_new(true);
            } else {
                opts.create(true).append(true);
            }
            let file = opts
                .open(&work_path)
                .map_err(|e| Failure::new(format!("cannot open {}: {e}", work_path.display())))?;
            tracing::info!("opening {}", work_path.display());
            let writer = if self.args.gzip {
                let level = self.args.gzip_level;
                Writer::Gzip(
                    flate2::write::GzEncoder::new(file, flate2::Compression::new(level)),
                    level,
                )
            } else {
                Writer::Plain(file)
            };
            self.file = Some(OpenFile {
                work_path,
                name,
                datetime: datetime.to_string(),
                rev,
                writer,
                bytes: 0,
                opened_at: Instant::now(),
            });
            return Ok(());
        }
    }

    /// Write one message (opening or rotating the file as needed).
    fn write(&mut self, delivery: Delivery) -> Result<(), Failure> {
        let datetime = strftime(&self.args.datetime_format, &Local::now());
        let rotate = match &self.file {
            None => Some(0),
            Some(f) if f.datetime != datetime => Some(0),
            Some(f) if self.args.rotate_size > 0 && f.bytes >= self.args.rotate_size => {
                Some(f.rev + 1)
            }
            Some(f)
                if !self.args.rotate_interval.is_zero()
                    && f.opened_at.elapsed() >= self.args.rotate_interval =>
            {
                Some(f.rev + 1)
            }
            Some(_) => None,
        };
        if let Some(rev) = rotate {
            self.close_file()?;
            self.open(&datetime, rev)?;
        }
        let f = self.file.as_mut().expect("opened above");
        let written = f
            .writer
            .write_all(delivery.body())
            .and_then(|_| f.writer.write_all(b"\n"));
        if let Err(e) = written {
            delivery.req(Duration::ZERO);
            return Err(Failure::new(format!(
                "writing {}: {e}",
                f.work_path.display()
            )));
        }
        f.bytes += delivery.body().len() as u64 + 1;
        self.pending.push(delivery);
        Ok(())
    }

    /// fsync, then FIN what was written.
    fn sync(&mut self) -> Result<(), Failure> {
        self.last_sync = Instant::now();
        if let Some(f) = self.file.take() {
            let OpenFile {
                work_path,
                name,
                datetime,
                rev,
                writer,
                bytes,
                opened_at,
            } = f;
            let writer = writer
                .sync()
                .map_err(|e| Failure::new(format!("syncing {}: {e}", work_path.display())))?;
            self.file = Some(OpenFile {
                work_path,
                name,
                datetime,
                rev,
                writer,
                bytes,
                opened_at,
            });
        }
        ARCHIVED.fetch_add(
            self.pending.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        for d in self.pending.drain(..) {
            d.fin();
        }
        Ok(())
    }

    /// Sync and close the current file, and move it to the output dir.
    fn close_file(&mut self) -> Result<(), Failure> {
        self.sync()?;
        let Some(f) = self.file.take() else {
            return Ok(());
        };
        f.writer
            .close()
            .map_err(|e| Failure::new(format!("closing {}: {e}", f.work_path.display())))?;
        if self.args.skip_empty_files && f.bytes == 0 {
            let _ = std::fs::remove_file(&f.work_path);
            return Ok(());
        }
        if self.work_dir != self.args.output_dir {
            move_without_overwrite(
                &f.work_path,
                &self.args.output_dir,
                &f.name,
                |rev| self.name_for(&f.datetime, rev),
                f.rev,
            )?;
        }
        Ok(())
    }
}

/// Hard-link into `dir` then unlink, bumping the revision while the name
/// is taken: never overwrites a finished file.
fn move_without_overwrite(
    from: &Path,
    dir: &Path,
    name: &str,
    name_for: impl Fn(u32) -> String,
    mut rev: u32,
) -> Result<(), Failure> {
    let mut target = dir.join(name);
    loop {
        match std::fs::hard_link(from, &target) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                rev += 1;
                target = dir.join(name_for(rev));
            }
            Err(e) => {
                return Err(Failure::new(format!(
                    "moving {} to {}: {e}",
                    from.display(),
                    target.display()
                )))
            }
        }
    }
    std::fs::remove_file(from)
        .map_err(|e| Failure::new(format!("removing {}: {e}", from.display())))?;
    tracing::info!("moved {} to {}", from.display(), target.display());
    Ok(())
}

pub async fn run(args: ToFileArgs) -> Result<(), Failure> {
    let mut signals = crate::signals::Signals::install();
    crate::logging::init(&args.log_prefix, args.log_level.as_tracing());
    args.check()
        .map_err(|message| Failure { message, code: 2 })?;
    let pattern = if args.topic_pattern.is_empty() {
        None
    } else {
        Some(regex::Regex::new(&args.topic_pattern).map_err(|e| Failure {
            message: format!("--topic-pattern: {e}"),
            code: 2,
        })?)
    };
    for dir in [args.output_dir.clone(), args.work_dir()] {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
    }
    let args = std::sync::Arc::new(args);
    let mut started: HashSet<String> = HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let wanted = |t: &str| pattern.as_ref().is_none_or(|p| p.is_match(t));
    for topic in args.topics.iter().filter(|t| wanted(t)) {
        if started.insert(topic.clone()) {
            tasks.spawn(archive(args.clone(), topic.clone(), stop.clone()));
        }
    }
    let discover = args.topics.is_empty();
    let mut refresh = tokio::time::interval(args.topic_refresh.max(Duration::from_millis(10)));
    let http = reqwest::Client::builder()
        .connect_timeout(args.http_connect_timeout)
        .timeout(args.http_request_timeout)
        .build()?;
    let mut failure = None;
    let mut rate_line = tokio::time::interval(Duration::from_secs(1));
    let live = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (mut last_count, mut last_at) = (0u64, Instant::now());
    loop {
        tokio::select! {
            _ = signals.recv() => break,
            _ = rate_line.tick(), if live => {
                // A live rate line on a terminal: total archived, and per second.
                let count = ARCHIVED.load(std::sync::atomic::Ordering::Relaxed);
                let per_sec = (count - last_count) as f64 / last_at.elapsed().as_secs_f64().max(0.001);
                (last_count, last_at) = (count, Instant::now());
                eprint!("\r{count} messages archived, {per_sec:.0}/s   ");
            }
            _ = refresh.tick(), if discover => {
                for topic in lookupd_topics(&http, &args.sources.lookupd_http_addresses).await {
                    if wanted(&topic) && started.insert(topic.clone()) {
                        tracing::info!("archiving topic {topic}");
                        tasks.spawn(archive(args.clone(), topic, stop.clone()));
                    }
                }
            }
            done = tasks.join_next(), if !tasks.is_empty() => {
                if let Some(Ok(Err(e))) = done {
                    failure = Some(e);
                    break;
                }
                if tasks.is_empty() && !discover {
                    break;
                }
            }
        }
    }
    if live {
        eprintln!();
    }
    stop.cancel();
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            failure.get_or_insert(e);
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Every topic the lookupds know (errors logged, not fatal).
async fn lookupd_topics(http: &reqwest::Client, lookupds: &[String]) -> Vec<String> {
    let mut all = Vec::new();
    for l in lookupds {
        match crate::client::api::topics(http, l).await {
            Ok(topics) => all.extend(topics),
            Err(e) => tracing::error!("{e}"),
        }
    }
    all.sort();
    all.dedup();
    all
}

/// Consume one topic into its files until `stop`.
async fn archive(
    args: std::sync::Arc<ToFileArgs>,
    topic: String,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), Failure> {
    let config = ConsumerConfig {
        topic: topic.clone(),
        channel: args.channel.clone(),
        max_in_flight: args.max_in_flight.max(1),
        connection: args
            .connection
            .config(&format!("nsq-to-file/{}", env!("CARGO_PKG_VERSION")))
            .map_err(|message| Failure { message, code: 2 })?,
    };
    let mut consumer = if args.sources.lookupd_http_addresses.is_empty() {
        let mut consumer = Consumer::connect(&args.sources.nsqd_tcp_addresses, &config).await?;
        consumer.keep_reconnecting();
        consumer
    } else {
        let polling = LookupdPolling {
            interval: args.lookupd_poll_interval,
            ..LookupdPolling::default()
        };
        Consumer::discover(&args.sources.lookupd_http_addresses, &config, polling)?
    };
    let mut a = Archiver::new(&args, &topic);
    let batch = args.max_in_flight.max(1) as usize;
    let result = loop {
        let sync_due = a.last_sync + args.sync_interval;
        let next = tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            _ = tokio::time::sleep_until(sync_due) => {
                if let Err(e) = a.sync() { break Err(e); }
                continue;
            }
            // Starved: nothing came for a moment; make what we have durable.
            _ = tokio::time::sleep(Duration::from_millis(100)), if !a.pending.is_empty() => {
                if let Err(e) = a.sync() { break Err(e); }
                continue;
            }
            next = consumer.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                if let Err(e) = a.write(delivery) {
                    break Err(e);
                }
                if a.pending.len() >= batch {
                    if let Err(e) = a.sync() {
                        break Err(e);
                    }
                }
            }
            Some(Err(e)) => tracing::error!("{e}"),
            None => {
                break Err(Failure::new(format!(
                    "topic {topic}: every connection to nsqd is gone"
                )))
            }
        }
    };
    let closed = a.close_file();
    consumer.shutdown(Duration::from_secs(5)).await;
    // Stopped without ever reaching an nsqd that was there to reach: that
    // is a failure to report, not a quiet success.
    let unreachable = match consumer.last_failure() {
        Some(e) if !consumer.has_connected() => Err(Failure::new(format!(
            "topic {topic}: no nsqd could be reached: {e}"
        ))),
        _ => Ok(()),
    };
    result.and(closed).and(unreachable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn args(extra: &[&str]) -> ToFileArgs {
        ToFileArgs::try_parse_from(
            ["nsq-to-file", "--topic=t", "--nsqd-tcp-address=x:1"]
                .into_iter()
                .chain(extra.iter().copied()),
        )
        .unwrap()
    }

    #[test]
    fn strftime_directives() {
        let t = Local.with_ymd_and_hms(2026, 3, 4, 15, 6, 7).unwrap();
        assert_eq!(strftime("%Y-%m-%d_%H", &t), "2026-03-04_15");
        assert_eq!(strftime("%y%I%M%S%p%%", &t), "26030607PM%");
        assert_eq!(strftime("%b %B %a %A", &t), "Mar March Wed Wednesday");
    }

    #[test]
    fn names_and_rev_rules() {
        let a = args(&["--host-identifier=h"]);
        assert!(!a.uses_rev());
        assert_eq!(Archiver::new(&a, "t").name_for("D", 3), "t.h.D.log");
        let g = args(&["--host-identifier=h", "--gzip"]);
        assert!(g.uses_rev());
        assert_eq!(
            Archiver::new(&g, "t").name_for("D", 3),
            "t.h-000003.D.log.gz"
        );
        let bad = args(&["--gzip", "--filename-format=<TOPIC>.log"]);
        assert!(bad.check().unwrap_err().contains("missing <REV>"));
    }
}
