//! nsq-to-nsq (NSQ's nsq_to_nsq): republish the messages of a channel to
//! a topic on other nsqd, and FIN each only once a destination answered
//! its PUB with `OK`.
//!
//! A destination that is down or restarting makes its PUBs fail: those
//! messages are REQueued (go-nsq's delay, `default_requeue_delay` ×
//! attempts) and the consumer backs off; the connection is made again on
//! the next publish (after a failed attempt, not before 250 ms, doubling
//! up to 15 s), so nothing is lost. A PUB
//! whose `OK` was lost with the connection is sent again: a message can
//! arrive twice, never not at all.
//!
//! For JSON messages, `--require-json-field` (and `--require-json-value`)
//! pass only matching messages, and `--whitelist-json-field` keeps only the
//! listed fields (see [`JsonFilter`]).

use super::args::{Connection, Sources};
use super::relay::{self, Dispatch, Mode, Prepared, RetryPolicy, Settings, Sink};
use super::Failure;
use crate::cli::duration_arg;
use crate::client::{Config, ConsumerConfig, Producer};
use bytes::Bytes;
use clap::{ArgAction, Parser};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// nsq-to-nsq: republish NSQ topics to other nsqd.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "nsq-to-nsq",
    version,
    about = "Republish the messages of NSQ topics to other nsqd, FIN after the destination's OK (NSQ's nsq_to_nsq)",
    // --producer-opt is this tool's own flag (for the destinations).
    mut_arg("options", |a| a.visible_alias(None).help(
        "go-nsq option for the source connections, as key=value or key,value (may be given \
         multiple times): heartbeat_interval, msg_timeout, output_buffer_size, \
         output_buffer_timeout, dial_timeout, user_agent, max_in_flight, and the requeue and \
         backoff options below")),
    after_help = "A message is FINished once a destination answered its PUB with OK; otherwise it is \
                  requeued (delay: default_requeue_delay × attempts, up to max_requeue_delay) and the \
                  consumer backs off (backoff_multiplier × 2^level, up to max_backoff_duration); messages \
                  are never given up on unless max_attempts is set. All five are go-nsq options for \
                  --consumer-opt (defaults 90s, 15m, 1s, 2m, 0). The --tls, --snappy and --deflate flags \
                  apply to the source and the destination connections.\n\n\
                  Exit status: 0 after SIGINT/SIGTERM (publishes under way are answered, nothing is left \
                  in flight); 1 when an nsqd (source or destination) cannot be reached at start; 2 on a \
                  usage error."
)]
pub struct ToNsqArgs {
    /// NSQ topic to read (may be given multiple times).
    #[arg(long = "topic", action = ArgAction::Append, required = true, value_name = "TOPIC")]
    pub topics: Vec<String>,

    /// NSQ channel.
    #[arg(long, default_value = "nsq_to_nsq", value_name = "CHANNEL")]
    pub channel: String,

    #[command(flatten)]
    pub sources: Sources,

    /// Destination nsqd TCP address (host:port, or a unix socket path; may
    /// be given multiple times).
    #[arg(long = "destination-nsqd-tcp-address", action = ArgAction::Append, required = true, value_name = "ADDR")]
    pub destinations: Vec<String>,

    /// Publish everything to this topic (default: the topic it came from).
    #[arg(long = "destination-topic", value_name = "TOPIC")]
    pub destination_topic: Option<String>,

    /// With several destinations: round-robin (each message to the next),
    /// hostpool (in turn, skipping destinations that fail for a while) or
    /// epsilon-greedy (mostly the fastest).
    #[arg(long, default_value = "hostpool", value_parser = ["round-robin", "hostpool", "epsilon-greedy"], value_name = "MODE")]
    pub mode: String,

    /// Messages in flight from nsqd (and so publishes under way).
    #[arg(long = "max-in-flight", default_value_t = 200, value_name = "N")]
    pub max_in_flight: u64,

    /// Log publish times every this many publishes (per destination, and
    /// in total); 0: never.
    #[arg(long = "status-every", default_value_t = 250, value_name = "N")]
    pub status_every: u64,

    /// For JSON messages: only pass those that have this field (others are
    /// FINished unsent).
    #[arg(long = "require-json-field", value_name = "FIELD")]
    pub require_json_field: Option<String>,

    /// For JSON messages: only pass those whose required field has this
    /// value (a string, or a number).
    #[arg(
        long = "require-json-value",
        requires = "require_json_field",
        value_name = "VALUE"
    )]
    pub require_json_value: Option<String>,

    /// For JSON messages: keep only this field (may be given multiple
    /// times).
    #[arg(long = "whitelist-json-field", action = ArgAction::Append, value_name = "FIELD")]
    pub whitelist_json_fields: Vec<String>,

    /// go-nsq option for the destination connections, as key=value or
    /// key,value (may be given multiple times).
    #[arg(long = "producer-opt", action = ArgAction::Append, value_name = "KEY=VALUE")]
    pub producer_options: Vec<String>,

    /// How often to ask nsqlookupd for producers.
    #[arg(long = "lookupd-poll-interval", default_value = "60s", value_parser = duration_arg, value_name = "DURATION")]
    pub lookupd_poll_interval: Duration,

    #[command(flatten)]
    pub connection: Connection,
}

/// `--require-json-field`, `--require-json-value`, `--whitelist-json-field`.
#[derive(Debug, Clone, Default)]
pub struct JsonFilter {
    pub require_field: Option<String>,
    pub require_value: Option<String>,
    pub whitelist: Vec<String>,
}

impl JsonFilter {
    fn active(&self) -> bool {
        self.require_field.is_some() || !self.whitelist.is_empty()
    }

    /// What to publish for `body`: itself, its whitelisted fields, nothing
    /// (it does not match), or nothing and a line (it is not JSON).
    pub fn apply(&self, body: &Bytes) -> Prepared {
        if !self.active() {
            return Prepared::Send(body.clone());
        }
        let object = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => object,
            _ => {
                let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                return Prepared::Drop(format!(
                    "dropping a message that is not a JSON object: {shown:?}"
                ));
            }
        };
        if !self.passes(&object) {
            return Prepared::Skip;
        }
        if self.whitelist.is_empty() {
            return Prepared::Send(body.clone());
        }
        // Keys sorted, as Go writes a map.
        let kept: std::collections::BTreeMap<&String, Value> = self
            .whitelist
            .iter()
            .filter_map(|k| {
                object
                    .get(k)
                    .map(|v| (k, whole_numbers_as_integers(v.clone())))
            })
            .collect();
        match serde_json::to_vec(&kept) {
            Ok(json) => Prepared::Send(Bytes::from(json)),
            Err(e) => Prepared::Drop(format!("cannot write the filtered message: {e}")),
        }
    }

    /// NSQ's rule: the field must be there; with a value, a string field
    /// must equal it, a number field must equal it read as a number.
    fn passes(&self, object: &Map<String, Value>) -> bool {
        let Some(field) = &self.require_field else {
            return true;
        };
        let Some(found) = object.get(field) else {
            return false;
        };
        let Some(wanted) = &self.require_value else {
            return true;
        };
        match found {
            Value::String(s) => s == wanted,
            Value::Number(n) => match (wanted.trim().parse::<f64>(), n.as_f64()) {
                (Ok(w), Some(f)) => w == f,
                _ => false,
            },
            _ => false,
        }
    }
}

/// A whole number written as a float (`3.0`) is published as `3`, as NSQ
/// does.
fn whole_numbers_as_integers(v: Value) -> Value {
    if let Value::Number(n) = &v {
        if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                return Value::from(f as i64);
            }
        }
    }
    v
}

/// One destination nsqd: a producer made when first needed and made again
/// after a failure, not more often than the reconnection backoff allows.
struct Destination {
    addr: String,
    state: tokio::sync::Mutex<DestinationState>,
}

struct DestinationState {
    producer: Option<(u64, Producer)>,
    generation: u64,
    /// After a failed connect: no new attempt before this.
    retry_at: Option<Instant>,
    wait: Duration,
    last_error: String,
}

/// A PUB not answered in this long counts as failed (a destination that
/// vanished without closing the connection), and the connection is
/// replaced.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(15);

impl Destination {
    fn new(addr: String, producer: Producer) -> Destination {
        Destination {
            addr,
            state: tokio::sync::Mutex::new(DestinationState {
                producer: Some((0, producer)),
                generation: 0,
                retry_at: None,
                wait: RECONNECT_FIRST,
                last_error: String::new(),
            }),
        }
    }

    /// The producer, connecting if there is none (or failing fast while a
    /// reconnection is not due).
    async fn producer(&self, config: &Config) -> Result<(u64, Producer), String> {
        let mut st = self.state.lock().await;
        match &st.producer {
            Some(p) if !p.1.is_closed() => return Ok(p.clone()),
            // Closed by nsqd (a restart): connect again at once.
            Some(_) => st.producer = None,
            None => {}
        }
        if st.retry_at.is_some_and(|at| Instant::now() < at) {
            return Err(st.last_error.clone());
        }
        match Producer::connect(&self.addr, config).await {
            Ok(p) => {
                st.generation += 1;
                let entry = (st.generation, p);
                st.producer = Some(entry.clone());
                st.retry_at = None;
                st.wait = RECONNECT_FIRST;
                Ok(entry)
            }
            Err(e) => {
                st.last_error = e.to_string();
                st.retry_at = Some(Instant::now() + st.wait);
                st.wait = (st.wait * 2).min(RECONNECT_MAX);
                Err(st.last_error.clone())
            }
        }
    }

    /// A publish on this producer failed: nsqd closes the connection after
    /// any publish error, so the next publish needs a new one.
    async fn discard(&self, generation: u64) {
        let mut st = self.state.lock().await;
        if st.producer.as_ref().is_some_and(|p| p.0 == generation) {
            st.producer = None;
        }
    }
}

/// Publishes to the destinations.
struct Republish {
    names: Vec<String>,
    destinations: Vec<Destination>,
    config: Config,
    /// Per source topic, the topic to publish to.
    topics: Vec<String>,
    filter: JsonFilter,
}

impl Sink for Republish {
    fn names(&self) -> &[String] {
        &self.names
    }

    fn prepare(&self, _topic: usize, body: &Bytes) -> Prepared {
        self.filter.apply(body)
    }

    async fn send(self: Arc<Self>, dest: usize, topic: usize, body: Bytes) -> Result<(), String> {
        let d = &self.destinations[dest];
        let (generation, producer) = d.producer(&self.config).await?;
        let publish = producer.publish(&self.topics[topic], body);
        let outcome = match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
            Ok(outcome) => outcome.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "nsqd at {} did not answer a PUB within {}",
                d.addr,
                crate::cli::format_duration(PUBLISH_TIMEOUT)
            )),
        };
        if outcome.is_err() {
            d.discard(generation).await;
        }
        outcome
    }
}

pub async fn run(args: ToNsqArgs) -> Result<(), Failure> {
    let mut signals = crate::signals::Signals::install();
    let usage = |message: String| Failure { message, code: 2 };
    args.sources.check_one_kind().map_err(usage)?;
    let valid = |n: &str| crate::protocol::names::is_valid_name(n.as_bytes());
    for t in args.topics.iter().chain(&args.destination_topic) {
        if !valid(t) {
            return Err(usage(format!("{t:?} is not a valid topic name")));
        }
    }
    if !valid(&args.channel) {
        return Err(usage(format!(
            "--channel {:?} is not a valid channel name",
            args.channel
        )));
    }
    let mode = Mode::parse(&args.mode).ok_or_else(|| usage(format!("--mode {:?}", args.mode)))?;
    let policy = RetryPolicy::from_options(&args.connection).map_err(usage)?;
    let user_agent = format!("nsq-to-nsq/{}", env!("CARGO_PKG_VERSION"));
    let source_config = args.connection.config(&user_agent).map_err(usage)?;
    let destination_config = Connection {
        options: args.producer_options.clone(),
        ..args.connection.clone()
    }
    .config(&user_agent)
    .map_err(usage)?;

    // Every destination must be reachable at start (a typo should not
    // look like an outage); later losses are retried.
    let mut destinations = Vec::new();
    for addr in &args.destinations {
        let producer = Producer::connect(addr, &destination_config).await?;
        destinations.push(Destination::new(addr.clone(), producer));
    }
    let max_in_flight = args
        .connection
        .max_in_flight()
        .unwrap_or(args.max_in_flight)
        .max(1);
    let mut consumers = Vec::new();
    for topic in &args.topics {
        let config = ConsumerConfig {
            topic: topic.clone(),
            channel: args.channel.clone(),
            max_in_flight,
            connection: source_config.clone(),
        };
        consumers.push(relay::consumer(&args.sources, config, args.lookupd_poll_interval).await?);
    }
    let sink = Arc::new(Republish {
        names: args.destinations.clone(),
        destinations,
        config: destination_config,
        topics: args
            .topics
            .iter()
            .map(|t| args.destination_topic.clone().unwrap_or_else(|| t.clone()))
            .collect(),
        filter: JsonFilter {
            require_field: args.require_json_field.clone(),
            require_value: args.require_json_value.clone(),
            whitelist: args.whitelist_json_fields.clone(),
        },
    });
    let dispatch = Dispatch::new(mode, &args.destinations, args.status_every);
    let settings = Settings {
        tool: "nsq-to-nsq",
        policy,
        concurrency: usize::MAX,
        drain: Duration::from_secs(10),
    };
    relay::run(consumers, sink, dispatch, settings, &mut signals).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(field: Option<&str>, value: Option<&str>, whitelist: &[&str]) -> JsonFilter {
        JsonFilter {
            require_field: field.map(str::to_string),
            require_value: value.map(str::to_string),
            whitelist: whitelist.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn sent(p: Prepared) -> String {
        match p {
            Prepared::Send(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    fn apply(f: &JsonFilter, body: &str) -> Prepared {
        f.apply(&Bytes::from(body.to_string()))
    }

    #[test]
    fn no_filter_passes_anything_untouched() {
        let f = JsonFilter::default();
        assert_eq!(sent(apply(&f, "not json")), "not json");
    }

    #[test]
    fn required_field_and_value() {
        let f = filter(Some("level"), None, &[]);
        let raw = r#"{"level":"error", "n": 1}"#;
        assert_eq!(sent(apply(&f, raw)), raw, "passes unchanged");
        assert_eq!(apply(&f, r#"{"other":1}"#), Prepared::Skip);
        assert!(matches!(apply(&f, "[1,2]"), Prepared::Drop(_)));
        assert!(matches!(apply(&f, "plain text"), Prepared::Drop(_)));

        let f = filter(Some("level"), Some("error"), &[]);
        assert!(matches!(
            apply(&f, r#"{"level":"error"}"#),
            Prepared::Send(_)
        ));
        assert_eq!(apply(&f, r#"{"level":"info"}"#), Prepared::Skip);
        assert_eq!(apply(&f, r#"{"x":"error"}"#), Prepared::Skip);
        assert_eq!(apply(&f, r#"{"level":["error"]}"#), Prepared::Skip);

        let f = filter(Some("code"), Some("500"), &[]);
        assert!(matches!(apply(&f, r#"{"code":500}"#), Prepared::Send(_)));
        assert!(matches!(apply(&f, r#"{"code":500.0}"#), Prepared::Send(_)));
        assert!(matches!(apply(&f, r#"{"code":"500"}"#), Prepared::Send(_)));
        assert_eq!(apply(&f, r#"{"code":404}"#), Prepared::Skip);
        let f = filter(Some("code"), Some("abc"), &[]);
        assert_eq!(apply(&f, r#"{"code":5}"#), Prepared::Skip);
    }

    #[test]
    fn whitelist_keeps_only_the_listed_fields() {
        let f = filter(None, None, &["b", "a", "missing"]);
        assert_eq!(
            sent(apply(
                &f,
                r#"{"a":1,"b":{"c":[true,null]},"d":"gone","e":2.5}"#
            )),
            r#"{"a":1,"b":{"c":[true,null]}}"#
        );
        let f = filter(None, None, &["n", "f"]);
        assert_eq!(
            sent(apply(&f, r#"{"n":3.0,"f":2.5}"#)),
            r#"{"f":2.5,"n":3}"#
        );
        assert_eq!(sent(apply(&f, r#"{"x":1}"#)), "{}");
        assert!(matches!(apply(&f, "oops"), Prepared::Drop(_)));
        // With a requirement too: filtered only when it passes.
        let f = filter(Some("keep"), None, &["id"]);
        assert_eq!(
            sent(apply(&f, r#"{"keep":1,"id":"x","y":2}"#)),
            r#"{"id":"x"}"#
        );
        assert_eq!(apply(&f, r#"{"id":"x"}"#), Prepared::Skip);
    }

    #[test]
    fn flag_rules() {
        let parse = |extra: &[&str]| {
            ToNsqArgs::try_parse_from(
                ["nsq-to-nsq", "--topic=t", "--nsqd-tcp-address=a:1"]
                    .iter()
                    .chain(extra),
            )
        };
        let a = parse(&[
            "--destination-nsqd-tcp-address=b:2",
            "--producer-opt=msg_timeout,5s",
        ])
        .unwrap();
        assert_eq!(
            (a.channel.as_str(), a.mode.as_str(), a.max_in_flight),
            ("nsq_to_nsq", "hostpool", 200)
        );
        assert_eq!(a.producer_options, ["msg_timeout,5s"]);
        assert!(a.connection.options.is_empty());
        assert!(parse(&[]).is_err(), "a destination is required");
        assert!(parse(&["--destination-nsqd-tcp-address=b:2", "--mode=all"]).is_err());
        assert!(parse(&[
            "--destination-nsqd-tcp-address=b:2",
            "--require-json-value=x"
        ])
        .is_err());
    }
}
