//! nsq-tail (NSQ's nsq_tail): print the messages of one or more topics,
//! one per line, from a channel (by default a fresh ephemeral one, so
//! tailing takes nothing away from anyone).
//!
//! Each message body goes to stdout followed by a newline, flushed as soon
//! as no further message is waiting. A message is FINished once written. A
//! closed stdout (`| head -3`) or SIGINT/SIGTERM ends it quietly with status
//! 0; `--timeout` makes a CI job fail when `-n` messages did not come.

use super::args::{Connection, Sources};
use super::Failure;
use crate::cli::duration_arg;
use crate::client::{Consumer, ConsumerConfig, Delivery, LookupdPolling};
use clap::{ArgAction, Parser};
use std::io::Write;
use std::time::Duration;
use tokio::sync::mpsc;

/// nsq-tail: print the messages of NSQ topics on stdout, one per line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "nsq-tail",
    version,
    about = "Print the messages of NSQ topics on stdout, one per line (NSQ's nsq_tail)",
    after_help = "Exit status: 0 after -n messages, on SIGINT/SIGTERM or when stdout closes; \
                  1 when an nsqd cannot be reached or is lost, or --timeout passes first; 2 on a usage error."
)]
pub struct TailArgs {
    /// NSQ topic (may be given multiple times).
    #[arg(long = "topic", action = ArgAction::Append, value_name = "TOPIC", required = true)]
    pub topics: Vec<String>,

    /// NSQ channel (default: a new ephemeral one, tailNNNNNN#ephemeral).
    #[arg(long, value_name = "CHANNEL")]
    pub channel: Option<String>,

    #[command(flatten)]
    pub sources: Sources,

    /// Exit after this many messages (0: run until interrupted).
    #[arg(short = 'n', default_value_t = 0, value_name = "N")]
    pub total: u64,

    /// Print the topic name before each message (`topic | body`).
    #[arg(long = "print-topic")]
    pub print_topic: bool,

    /// Messages in flight at once.
    #[arg(long = "max-in-flight", default_value_t = 200, value_name = "N")]
    pub max_in_flight: u64,

    /// With -n: fail (status 1) if the messages have not all arrived after
    /// this long (e.g. 30s).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub timeout: Option<Duration>,

    /// Show the next messages of --channel without consuming them (nsqd's
    /// /channel/peek, beyond NSQ): nothing is delivered, finished or
    /// counted. -n says how many (default 10). Needs --nsqd-http-address,
    /// or --lookupd-http-address to find the nsqd.
    #[arg(long, requires = "channel")]
    pub peek: bool,

    /// nsqd HTTP address for --peek (host:port, or a unix socket path; may
    /// be given multiple times).
    #[arg(long = "nsqd-http-address", action = ArgAction::Append, value_name = "ADDR")]
    pub nsqd_http_addresses: Vec<String>,

    /// How often to ask nsqlookupd for producers.
    #[arg(long = "lookupd-poll-interval", default_value = "60s", value_parser = duration_arg, value_name = "DURATION")]
    pub lookupd_poll_interval: Duration,

    #[command(flatten)]
    pub connection: Connection,
}

/// A message with the topic it came from.
type Received = (usize, Result<Delivery, crate::client::ClientError>);

pub async fn run(args: TailArgs) -> Result<(), Failure> {
    let mut signals = crate::signals::Signals::install();
    crate::logging::init_tool("nsq-tail");
    if args.peek {
        return peek(&args).await;
    }
    let usage = |message: String| Failure { message, code: 2 };
    args.sources.check_one_kind().map_err(usage)?;
    for t in &args.topics {
        if !crate::protocol::names::is_valid_name(t.as_bytes()) {
            return Err(usage(format!("--topic {t:?} is not a valid topic name")));
        }
    }
    let channel = args
        .channel
        .clone()
        .unwrap_or_else(|| format!("tail{:06}#ephemeral", fastrand::u32(..999_999)));
    if !crate::protocol::names::is_valid_name(channel.as_bytes()) {
        return Err(usage(format!(
            "--channel {channel:?} is not a valid channel name"
        )));
    }
    let mut max_in_flight = args
        .connection
        .max_in_flight()
        .unwrap_or(args.max_in_flight)
        .max(1);
    if args.total > 0 {
        max_in_flight = max_in_flight.min(args.total);
    }
    let connection = args
        .connection
        .config(&format!("nsq-tail/{}", env!("CARGO_PKG_VERSION")))
        .map_err(|message| Failure { message, code: 2 })?;

    // One consumer per topic, each in a task, all feeding one queue.
    let (tx, mut rx) = mpsc::channel::<Received>(1024);
    let done = tokio_util::sync::CancellationToken::new();
    let mut consumers = tokio::task::JoinSet::new();
    for (index, topic) in args.topics.iter().enumerate() {
        let config = ConsumerConfig {
            topic: topic.clone(),
            channel: channel.clone(),
            max_in_flight,
            connection: connection.clone(),
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
        let tx = tx.clone();
        let done = done.clone();
        consumers.spawn(async move {
            loop {
                let item = tokio::select! {
                    _ = done.cancelled() => break,
                    item = consumer.next() => item,
                };
                let Some(item) = item else { break };
                if let Err(mpsc::error::SendError((_, item))) = tx.send((index, item)).await {
                    // The printer has finished: give this one back too.
                    if let Ok(d) = item {
                        d.req(Duration::ZERO);
                    }
                    break;
                }
            }
            // CLS, give back what still arrives, and let the connection
            // send the FINs already queued before it closes.
            consumer.shutdown(Duration::from_secs(5)).await;
            (consumer.has_connected(), consumer.last_failure().cloned())
        });
    }
    drop(tx);
    let result = print(&args, &mut rx, &mut signals).await;
    // Messages received but not printed go back to nsqd.
    rx.close();
    while let Ok((_, Ok(d))) = rx.try_recv() {
        d.req(Duration::ZERO);
    }
    done.cancel();
    let mut connected = false;
    let mut last_failure = None;
    let _ = tokio::time::timeout(Duration::from_secs(6), async {
        while let Some(ended) = consumers.join_next().await {
            if let Ok((ok, failure)) = ended {
                connected |= ok;
                last_failure = failure.or(last_failure.take());
            }
        }
    })
    .await;
    // Nothing ever connected: say why, so that "0 messages" is explained.
    result.map_err(|mut f| {
        if !connected && f.message.starts_with("timed out") {
            match last_failure {
                Some(e) => f.message = format!("{}; no nsqd could be reached: {e}", f.message),
                None if !args.sources.lookupd_http_addresses.is_empty() => {
                    f.message = format!("{}; nsqlookupd reports no nsqd with the topic", f.message)
                }
                None => {}
            }
        }
        f
    })
}

/// --peek: print the next messages of the channel on each nsqd, changing
/// nothing there.
async fn peek(args: &TailArgs) -> Result<(), Failure> {
    let usage = |message: &str| Failure {
        message: message.to_string(),
        code: 2,
    };
    let channel = args
        .channel
        .as_deref()
        .ok_or_else(|| usage("--peek needs --channel"))?;
    let n = if args.total == 0 {
        10
    } else {
        args.total.min(1000)
    };
    let http = crate::client::http::NodeHttp::new(None, Duration::from_secs(10))?;
    let mut out = std::io::stdout().lock();
    for topic in &args.topics {
        let mut nodes = args.nsqd_http_addresses.clone();
        for lookupd in &args.sources.lookupd_http_addresses {
            let found = crate::client::api::lookup(http.tcp(), lookupd, topic).await?;
            nodes.extend(found.producers.iter().filter_map(|p| p.http_addr()));
        }
        if nodes.is_empty() {
            return Err(usage(
                "--peek needs --nsqd-http-address or --lookupd-http-address",
            ));
        }
        nodes.dedup();
        for node in nodes {
            let reply = http
                .get(&node, "/channel/peek")?
                .query(&[
                    ("topic", topic.as_str()),
                    ("channel", channel),
                    ("n", &n.to_string()),
                ])
                .send()
                .await
                .map_err(|e| Failure::new(format!("cannot peek at nsqd {node}: {e}")))?;
            let status = reply.status();
            let body = reply.bytes().await?;
            if !status.is_success() {
                return Err(Failure::new(format!(
                    "nsqd {node}: {status} {}",
                    String::from_utf8_lossy(&body).trim()
                )));
            }
            let found: PeekAnswer = crate::client::api::decode(&body)
                .map_err(|e| Failure::new(format!("unexpected answer from {node}: {e}")))?;
            for m in found.messages {
                let body = match (m.body, m.body_base64) {
                    (Some(text), _) => text.into_bytes(),
                    (None, Some(b64)) => {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .unwrap_or_default()
                    }
                    (None, None) => Vec::new(),
                };
                let written = (|| {
                    if args.print_topic {
                        out.write_all(topic.as_bytes())?;
                        out.write_all(b" | ")?;
                    }
                    out.write_all(&body)?;
                    out.write_all(b"\n")
                })();
                if written.is_err() {
                    return Ok(()); // stdout closed
                }
            }
        }
    }
    let _ = out.flush();
    Ok(())
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct PeekAnswer {
    messages: Vec<PeekMessage>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct PeekMessage {
    body: Option<String>,
    body_base64: Option<String>,
}

/// Print messages until `-n`, a signal, a closed stdout or the timeout.
async fn print(
    args: &TailArgs,
    rx: &mut mpsc::Receiver<Received>,
    signals: &mut crate::signals::Signals,
) -> Result<(), Failure> {
    let deadline = args
        .timeout
        .map(|t| tokio::time::Instant::now() + t)
        .filter(|_| args.total > 0);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut shown = 0u64;
    loop {
        let next = tokio::select! {
            item = rx.recv() => item,
            _ = signals.recv() => return finish(&mut out),
            _ = sleep_until_opt(deadline) => {
                let _ = out.flush();
                return Err(Failure::new(format!(
                    "timed out: {shown} of {} messages after {}",
                    args.total,
                    crate::cli::format_duration(args.timeout.unwrap_or_default())
                )));
            }
        };
        let Some((index, item)) = next else {
            let _ = out.flush();
            return Err(Failure::new("every connection to nsqd is gone"));
        };
        let delivery = match item {
            Ok(d) => d,
            Err(e) => {
                // One connection ended; the others (if any) go on.
                eprintln!("nsq-tail: {e}");
                continue;
            }
        };
        if args.total > 0 && shown >= args.total {
            // More than asked for arrived in flight: give it back untouched.
            delivery.req(Duration::ZERO);
            continue;
        }
        let written = (|| {
            if args.print_topic {
                out.write_all(args.topics[index].as_bytes())?;
                out.write_all(b" | ")?;
            }
            out.write_all(delivery.body())?;
            out.write_all(b"\n")?;
            if rx.is_empty() {
                out.flush()?;
            }
            Ok::<_, std::io::Error>(())
        })();
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                delivery.req(Duration::ZERO);
                return Ok(()); // stdout closed: the reader has seen enough
            }
            return Err(Failure::new(format!("writing to stdout: {e}")));
        }
        delivery.fin();
        shown += 1;
        if args.total > 0 && shown >= args.total {
            return finish(&mut out);
        }
    }
}

fn finish(out: &mut impl Write) -> Result<(), Failure> {
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::new(format!("writing to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
