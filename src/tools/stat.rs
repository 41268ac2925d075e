//! nsq-stat (NSQ's nsq_stat): poll a channel's counters on every nsqd that
//! has its topic, summed, and print one row per interval with the rates
//! since the previous poll; `--json` prints one object per interval
//! instead, for scripts.

use super::Failure;
use crate::cli::duration_arg;
use clap::{ArgAction, Parser};
use colored::Colorize;
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// nsq-stat: live counters of an NSQ channel, summed over its nsqd.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "nsq-stat",
    version,
    about = "Print an NSQ channel's counters every interval, summed over every nsqd with its topic (NSQ's nsq_stat)"
)]
pub struct StatArgs {
    /// NSQ topic.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,

    /// NSQ channel.
    #[arg(long, value_name = "CHANNEL")]
    pub channel: String,

    /// nsqd HTTP address (host:port, no scheme, or a unix socket path; may
    /// be given multiple times).
    #[arg(long = "nsqd-http-address", action = ArgAction::Append, value_name = "ADDR")]
    pub nsqd_http_addresses: Vec<String>,

    /// nsqlookupd HTTP address (host:port, no scheme; may be given multiple times).
    #[arg(long = "lookupd-http-address", action = ArgAction::Append, value_name = "ADDR")]
    pub lookupd_http_addresses: Vec<String>,

    /// Time between polls.
    #[arg(long, default_value = "2s", value_parser = duration_arg, value_name = "DURATION")]
    pub interval: Duration,

    /// Print this many rows, then exit (default: until interrupted).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub count: Option<u64>,

    /// One JSON object per interval instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Timeout for connecting to an HTTP API.
    #[arg(long = "http-client-connect-timeout", default_value = "2s", value_parser = duration_arg, value_name = "DURATION")]
    pub connect_timeout: Duration,

    /// Timeout for a whole HTTP request.
    #[arg(long = "http-client-request-timeout", default_value = "5s", value_parser = duration_arg, value_name = "DURATION")]
    pub request_timeout: Duration,
}

/// A channel's counters, summed over nodes (the fields of nsqd's `/stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    #[serde(default)]
    pub depth: i64,
    #[serde(default)]
    pub backend_depth: i64,
    #[serde(default)]
    pub in_flight_count: i64,
    #[serde(default)]
    pub deferred_count: i64,
    #[serde(default)]
    pub requeue_count: i64,
    #[serde(default)]
    pub timeout_count: i64,
    #[serde(default)]
    pub message_count: i64,
    #[serde(default)]
    pub client_count: i64,
    /// Moved to the dead-letter topic (ours; absent from NSQ's nsqd).
    #[serde(default)]
    pub dead_letter_count: i64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.depth += o.depth;
        self.backend_depth += o.backend_depth;
        self.in_flight_count += o.in_flight_count;
        self.deferred_count += o.deferred_count;
        self.requeue_count += o.requeue_count;
        self.timeout_count += o.timeout_count;
        self.message_count += o.message_count;
        self.client_count += o.client_count;
        self.dead_letter_count += o.dead_letter_count;
    }
}

/// One interval's figures, as `--json` prints them.
#[derive(Debug, Serialize)]
pub struct Row<'a> {
    pub topic: &'a str,
    pub channel: &'a str,
    /// Messages per second into the channel since the previous poll.
    pub ingress: i64,
    /// Messages per second out of its queue since the previous poll.
    pub egress: i64,
    pub depth: i64,
    pub memory_depth: i64,
    pub backend_depth: i64,
    pub in_flight_count: i64,
    pub deferred_count: i64,
    pub requeue_count: i64,
    pub timeout_count: i64,
    pub message_count: i64,
    pub client_count: i64,
    pub dead_letter_count: i64,
}

impl<'a> Row<'a> {
    fn new(args: &'a StatArgs, prev: &Counts, now: &Counts, seconds: f64) -> Self {
        let received = now.message_count - prev.message_count;
        Row {
            topic: &args.topic,
            channel: &args.channel,
            ingress: (received as f64 / seconds) as i64,
            egress: ((received - (now.depth - prev.depth)) as f64 / seconds) as i64,
            depth: now.depth,
            memory_depth: now.depth - now.backend_depth,
            backend_depth: now.backend_depth,
            in_flight_count: now.in_flight_count,
            deferred_count: now.deferred_count,
            requeue_count: now.requeue_count,
            timeout_count: now.timeout_count,
            message_count: now.message_count,
            client_count: now.client_count,
            dead_letter_count: now.dead_letter_count,
        }
    }

    /// nsq_stat's row: `%7d %7d | %7d %7d %7d %5d %5d | %7d %7d %12d %7d`,
    /// then the dead letters if there are any (beyond nsq_stat).
    pub fn table_line(&self) -> String {
        let dead = if self.dead_letter_count > 0 {
            format!(" | dead-lettered {}", self.dead_letter_count)
        } else {
            String::new()
        };
        format!("{}{dead}", self.nsq_line())
    }

    fn nsq_line(&self) -> String {
        format!(
            "{:>7} {:>7} | {:>7} {:>7} {:>7} {:>5} {:>5} | {:>7} {:>7} {:>12} {:>7}",
            self.ingress,
            self.egress,
            self.depth,
            self.memory_depth,
            self.backend_depth,
            self.in_flight_count,
            self.deferred_count,
            self.requeue_count,
            self.timeout_count,
            self.message_count,
            self.client_count
        )
    }
}

/// nsq_stat's two header lines.
pub fn header() -> [String; 2] {
    [
        format!(
            "{}+{}+{}",
            "------rate------",
            "----------------depth----------------",
            "--------------metadata---------------"
        ),
        format!(
            "{:>7} {:>7} | {:>7} {:>7} {:>7} {:>5} {:>5} | {:>7} {:>7} {:>12} {:>7}",
            "ingress",
            "egress",
            "total",
            "mem",
            "disk",
            "inflt",
            "def",
            "req",
            "t-o",
            "msgs",
            "clients"
        ),
    ]
}

pub async fn run(args: StatArgs) -> Result<(), Failure> {
    let mut signals = crate::signals::Signals::install();
    let usage = |message: &str| Failure {
        message: message.into(),
        code: 2,
    };
    match (
        args.nsqd_http_addresses.is_empty(),
        args.lookupd_http_addresses.is_empty(),
    ) {
        (true, true) => {
            return Err(usage(
                "--nsqd-http-address or --lookupd-http-address required",
            ))
        }
        (false, false) => {
            return Err(usage(
                "use --nsqd-http-address or --lookupd-http-address not both",
            ))
        }
        _ => {}
    }
    let all = args
        .nsqd_http_addresses
        .iter()
        .chain(&args.lookupd_http_addresses);
    if all.clone().any(|a| a.is_empty()) {
        return Err(usage("an empty address was given"));
    }
    if all.clone().any(|a| a.starts_with("http")) {
        return Err(usage(
            "addresses should not contain a scheme (use host:port)",
        ));
    }
    if args.interval.is_zero() {
        return Err(usage("--interval should be positive"));
    }
    let http =
        crate::client::http::NodeHttp::new(Some(args.connect_timeout), args.request_timeout)?;
    let color = !args.json && std::io::stdout().is_terminal();
    colored::control::set_override(color);
    let stdout = std::io::stdout();
    let mut previous: Option<Counts> = None;
    let mut rows = 0u64;
    let mut ticker = tokio::time::interval(args.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = signals.recv() => return Ok(()),
        }
        let now = poll(&http, &args).await?;
        let mut out = stdout.lock();
        if !args.json && rows.is_multiple_of(25) && (previous.is_none() || rows > 0) {
            let [top, names] = header();
            let _ = writeln!(out, "{}", top.dimmed());
            let _ = writeln!(out, "{}", names.bold().cyan());
        }
        let Some(prev) = previous.replace(now) else {
            continue; // the first poll is the baseline
        };
        let row = Row::new(&args, &prev, &now, args.interval.as_secs_f64());
        let written = if args.json {
            writeln!(
                out,
                "{}",
                serde_json::to_string(&row).expect("plain struct")
            )
        } else {
            let line = row.table_line();
            let line = if row.depth > 0 && row.egress == 0 && row.client_count > 0 {
                line.yellow().to_string() // a backlog not moving
            } else {
                line
            };
            writeln!(out, "{line}")
        };
        let _ = out.flush();
        if written.is_err() {
            return Ok(()); // stdout closed
        }
        rows += 1;
        if args.count.is_some_and(|n| rows >= n) {
            return Ok(());
        }
    }
}

/// Sum the channel over every node with the topic.
async fn poll(http: &crate::client::http::NodeHttp, args: &StatArgs) -> Result<Counts, Failure> {
    let nodes = if args.lookupd_http_addresses.is_empty() {
        args.nsqd_http_addresses.clone()
    } else {
        producers(http.tcp(), args).await?
    };
    let mut sum = Counts::default();
    let mut found = false;
    for node in nodes {
        let reply = http
            .get(&node, "/stats")?
            .query(&[
                ("format", "json"),
                ("topic", args.topic.as_str()),
                ("channel", args.channel.as_str()),
                ("include_clients", "false"),
            ])
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| Failure::new(format!("failed to get nsqd stats from {node}: {e}")))?;
        let body = reply
            .bytes()
            .await
            .map_err(|e| Failure::new(format!("failed to get nsqd stats from {node}: {e}")))?;
        let stats: Stats = crate::client::api::decode(&body)
            .map_err(|e| Failure::new(format!("unexpected stats from {node}: {e}")))?;
        for topic in stats.topics.unwrap_or_default() {
            if topic.topic_name != args.topic {
                continue;
            }
            for channel in topic.channels.unwrap_or_default() {
                if channel.channel_name == args.channel {
                    found = true;
                    sum.add(&channel.counts);
                }
            }
        }
    }
    if !found {
        return Err(Failure::new(format!(
            "failed to find channel({}) in stats metadata for topic({})",
            args.channel, args.topic
        )));
    }
    Ok(sum)
}

/// `host:http_port` of every producer of the topic, from every lookupd.
async fn producers(http: &reqwest::Client, args: &StatArgs) -> Result<Vec<String>, Failure> {
    let mut nodes = Vec::new();
    for lookupd in &args.lookupd_http_addresses {
        let found = crate::client::api::lookup(http, lookupd, &args.topic)
            .await
            .map_err(|e| Failure::new(format!("failed to get topic producers: {e}")))?;
        for node in found.producers.iter().filter_map(|p| p.http_addr()) {
            if !nodes.contains(&node) {
                nodes.push(node);
            }
        }
    }
    Ok(nodes)
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Stats {
    topics: Option<Vec<TopicStats>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct TopicStats {
    topic_name: String,
    channels: Option<Vec<ChannelStats>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ChannelStats {
    channel_name: String,
    #[serde(flatten)]
    counts: Counts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_header_in_nsq_stat_layout() {
        let [top, names] = header();
        assert_eq!(top, "------rate------+----------------depth----------------+--------------metadata---------------");
        assert_eq!(names, "ingress  egress |   total     mem    disk inflt   def |     req     t-o         msgs clients");
        let args = StatArgs::try_parse_from(["nsq-stat", "--topic=t", "--channel=c"]).unwrap();
        let prev = Counts {
            message_count: 100,
            depth: 10,
            ..Counts::default()
        };
        let now = Counts {
            message_count: 300,
            depth: 50,
            backend_depth: 20,
            client_count: 2,
            ..Counts::default()
        };
        let row = Row::new(&args, &prev, &now, 2.0);
        assert_eq!((row.ingress, row.egress, row.memory_depth), (100, 80, 30));
        assert_eq!(
            row.table_line(),
            "    100      80 |      50      30      20     0     0 |       0       0          300       2"
        );
    }
}
