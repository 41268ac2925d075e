//! nsq-pub (NSQ's to_nsq): publish stdin, split on a delimiter, to a topic
//! on every given nsqd.
//!
//! Exits 0 only once every message has been acknowledged by every nsqd.
//! On the first failure it stops, and names the message (by its number in
//! the input, from 1) and the nsqd's answer, in one line on stderr. Messages
//! are batched into MPUBs of up to `--batch-size` from what stdin has
//! already delivered (a slow producer upstream is never waited for), and
//! batches are pipelined, so bulk input goes fast and streaming input goes
//! out at once.

use super::args::{Connection, NsqdTcp};
use super::Failure;
use crate::client::{Producer, PublishAck};
use crate::protocol::Command;
use bytes::Bytes;
use clap::Parser;
use std::collections::VecDeque;
use std::io::{BufRead, IsTerminal};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// nsq-pub: publish stdin to an NSQ topic, one message per delimiter.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "nsq-pub",
    version,
    about = "Publish stdin to an NSQ topic, one message per delimiter (NSQ's to_nsq)",
    after_help = "Exit status: 0 when every message was acknowledged by every nsqd, 1 on any failure \
                  (one line names the first message refused, with the nsqd's answer, or not confirmed, when a connection \
                  ended before the answer), 2 on a usage error, 130 when interrupted."
)]
pub struct PubArgs {
    /// NSQ topic to publish to.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,

    /// Byte that ends each message (not part of the message); one byte, or
    /// an escape: \n, \t, \r, \0, \xNN.
    #[arg(long, default_value = "\\n", value_parser = parse_delimiter, value_name = "BYTE")]
    pub delimiter: u8,

    #[command(flatten)]
    pub nsqd: NsqdTcp,

    /// Throttle to this many messages per second (0: no limit).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub rate: u64,

    /// Most messages per MPUB (1: one PUB per message, as to_nsq).
    #[arg(long = "batch-size", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub batch_size: u64,

    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    #[command(flatten)]
    pub connection: Connection,
}

/// One byte: itself, or a backslash escape (shells make a literal newline
/// awkward to pass).
pub fn parse_delimiter(s: &str) -> Result<u8, String> {
    let b = s.as_bytes();
    let value = match b {
        [one] => Some(*one),
        [b'\\', b'n'] => Some(b'\n'),
        [b'\\', b't'] => Some(b'\t'),
        [b'\\', b'r'] => Some(b'\r'),
        [b'\\', b'0'] => Some(0),
        [b'\\', b'\\'] => Some(b'\\'),
        [b'\\', b'x', h, l] => std::str::from_utf8(&[*h, *l])
            .ok()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok()),
        _ => None,
    };
    value.ok_or_else(|| "--delimiter must be a single byte (or \\n, \\t, \\r, \\0, \\xNN)".into())
}

/// A batch on its way: the input numbers of its first and last message.
struct Sent {
    first: u64,
    last: u64,
    acks: Vec<(String, PublishAck)>,
}

/// Batches in flight per nsqd before waiting for the oldest's answer.
const WINDOW: usize = 64;

pub async fn run(args: PubArgs) -> Result<(), Failure> {
    let mut signals = crate::signals::Signals::install();
    if args.nsqd.nsqd_tcp_addresses.is_empty() {
        return Err(Failure {
            message: "--nsqd-tcp-address required".into(),
            code: 2,
        });
    }
    if !crate::protocol::names::is_valid_name(args.topic.as_bytes()) {
        return Err(Failure {
            message: format!("--topic {:?} is not a valid topic name", args.topic),
            code: 2,
        });
    }
    let config = args
        .connection
        .config(&format!("nsq-pub/{}", env!("CARGO_PKG_VERSION")))
        .map_err(|message| Failure { message, code: 2 })?;
    let mut producers = Vec::new();
    for addr in &args.nsqd.nsqd_tcp_addresses {
        producers.push(Producer::connect(addr, &config).await?);
    }

    let (tx, mut rx) = mpsc::channel::<Bytes>(4096);
    let delimiter = args.delimiter;
    let total_bytes = stdin_size();
    std::thread::spawn(move || read_messages(delimiter, tx));

    let progress = progress_bar(args.quiet, total_bytes);
    let started = Instant::now();
    let mut sent: VecDeque<Sent> = VecDeque::new();
    let mut published = 0u64; // messages handed to the producers
    let mut acknowledged = 0u64;
    let mut batch: Vec<Bytes> = Vec::new();
    let mut input_done = false;
    let mut interrupted = false;

    loop {
        // Gather a batch from what stdin has delivered so far.
        batch.clear();
        if !input_done {
            let first = tokio::select! {
                m = rx.recv() => m,
                _ = signals.recv() => { interrupted = true; None }
            };
            match first {
                Some(m) => batch.push(m),
                None => input_done = true,
            }
            while (batch.len() as u64) < args.batch_size {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
        }
        if batch.is_empty() {
            break;
        }
        if args.rate > 0 {
            let due = started
                + Duration::from_secs_f64(
                    (published + batch.len() as u64 - 1) as f64 / args.rate as f64,
                );
            tokio::time::sleep_until(due).await;
        }
        let bytes: u64 = batch.iter().map(|b| b.len() as u64 + 1).sum();
        let first = published + 1;
        published += batch.len() as u64;
        let mut acks = Vec::with_capacity(producers.len());
        for p in &producers {
            let cmd = if batch.len() == 1 {
                Command::Pub {
                    topic: args.topic.clone(),
                    body: batch[0].clone(),
                }
            } else {
                Command::Mpub {
                    topic: args.topic.clone(),
                    bodies: batch.clone(),
                }
            };
            let ack = match p.send_pipelined(cmd).await {
                Ok(ack) => ack,
                Err(e) => {
                    // The connection is gone. If nsqd refused an earlier
                    // message (a fatal error closes the connection), that
                    // answer is the failure to report, not this send.
                    while let Some(s) = sent.pop_front() {
                        settle(s).await?;
                    }
                    // Never sent: certainly not published.
                    return Err(failure_at(first, published, true, &e.to_string()));
                }
            };
            acks.push((p.addr().to_string(), ack));
        }
        sent.push_back(Sent {
            first,
            last: published,
            acks,
        });
        if let Some(pb) = &progress {
            pb.inc(bytes);
        }
        while sent.len() >= WINDOW {
            acknowledged = settle(sent.pop_front().expect("non-empty")).await?;
        }
        if interrupted {
            break;
        }
    }
    while let Some(s) = sent.pop_front() {
        acknowledged = settle(s).await?;
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    if interrupted {
        return Err(Failure {
            message: format!("interrupted: {acknowledged} message(s) acknowledged"),
            code: 130,
        });
    }
    Ok(())
}

/// Wait for a batch's acknowledgements; returns the number of the last
/// message acknowledged.
async fn settle(s: Sent) -> Result<u64, Failure> {
    for (addr, ack) in s.acks {
        match ack.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let refused = matches!(e, crate::client::ClientError::Server { .. });
                return Err(failure_at(s.first, s.last, refused, &e.to_string()));
            }
            Err(_) => {
                return Err(failure_at(
                    s.first,
                    s.last,
                    false,
                    &format!("the connection to nsqd at {addr} closed before it answered"),
                ))
            }
        }
    }
    Ok(s.last)
}

/// The report of the first batch that failed. `certain`: the batch is
/// certainly not published (nsqd refused it, or it was never sent);
/// otherwise the connection ended before the answer, which may have been
/// `OK`.
fn failure_at(first: u64, last: u64, certain: bool, error: &str) -> Failure {
    let which = if first == last {
        format!("message {first}")
    } else {
        format!("messages {first}-{last}")
    };
    if certain {
        Failure::new(format!("{which} not published: {error}"))
    } else {
        Failure::new(format!(
            "{which} not confirmed (nsqd may or may not have them): {error}"
        ))
    }
}

/// Read stdin on a thread of its own (blocking reads), one message per
/// delimiter; the delimiter is removed, empty messages are skipped (nsqd
/// refuses them), and a last message without a delimiter is kept whole.
fn read_messages(delimiter: u8, tx: mpsc::Sender<Bytes>) {
    let stdin = std::io::stdin();
    let mut input = std::io::BufReader::with_capacity(256 * 1024, stdin.lock());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match input.read_until(delimiter, &mut buf) {
            Ok(0) => return,
            Ok(_) => {
                if buf.last() == Some(&delimiter) {
                    buf.pop();
                }
                if buf.is_empty() {
                    continue;
                }
                if tx.blocking_send(Bytes::copy_from_slice(&buf)).is_err() {
                    return;
                }
            }
            Err(e) => {
                eprintln!("nsq-pub: reading stdin: {e}");
                return;
            }
        }
    }
}

/// The size of stdin when it is a regular file (for the progress bar).
fn stdin_size() -> Option<u64> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    meta.is_file().then_some(meta.len())
}

/// A bar (bytes, messages/s) when the input size is known and stderr is a
/// terminal; nothing when piped or `--quiet`.
fn progress_bar(quiet: bool, total: Option<u64>) -> Option<indicatif::ProgressBar> {
    let total = total?;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(pb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters() {
        assert_eq!(parse_delimiter(","), Ok(b','));
        assert_eq!(parse_delimiter("\n"), Ok(b'\n'));
        assert_eq!(parse_delimiter("\\n"), Ok(b'\n'));
        assert_eq!(parse_delimiter("\\0"), Ok(0));
        assert_eq!(parse_delimiter("\\x1e"), Ok(0x1e));
        assert!(parse_delimiter("ab").is_err());
        assert!(parse_delimiter("").is_err());
        assert!(parse_delimiter("\\xZZ").is_err());
    }

    #[test]
    fn failures_name_the_messages() {
        assert_eq!(
            failure_at(3, 3, true, "E_BAD_TOPIC").message,
            "message 3 not published: E_BAD_TOPIC"
        );
        assert_eq!(
            failure_at(1, 100, true, "x").message,
            "messages 1-100 not published: x"
        );
        assert_eq!(
            failure_at(1, 100, false, "reset").message,
            "messages 1-100 not confirmed (nsqd may or may not have them): reset"
        );
    }
}
