//! What nsq-to-http and nsq-to-nsq share: take messages from a channel,
//! hand each to a destination, and FIN it only once the destination has
//! taken it (a 2xx answer, nsqd's `OK`); otherwise REQ it, and back off.
//!
//! The parts, each testable on its own:
//!
//! * [`RetryPolicy`]: go-nsq's requeue delay (`default_requeue_delay` ×
//!   attempts, up to `max_requeue_delay`), backoff (`backoff_multiplier` ×
//!   2^level, up to `max_backoff_duration`) and `max_attempts`, read from
//!   `--consumer-opt`.
//! * [`Backoff`]: go-nsq's backoff state machine. A failure raises the
//!   level and pauses the consumer (RDY 0) for the level's duration; then
//!   one message per connection tests the water; successes lower the level
//!   until the full in-flight budget comes back.
//! * [`Picker`]: which destination gets a message (`--mode`): round-robin,
//!   go-hostpool's hostpool (skip a failed host, retried after 30 s, then
//!   doubling up to 15 min) and epsilon-greedy (mostly the faster hosts),
//!   or all of them.
//! * [`Health`]: a destination's failure is printed once when it starts
//!   failing, and once when it answers again.
//! * [`Timings`]: NSQ's `--status-every` lines (99th, 95th percentile and
//!   average time per request).
//!
//! [`run`] drives one consumer per topic with these, sending through a
//! [`Sink`] (HTTP requests, or publishes to nsqd).

use super::args::Connection;
use super::Failure;
use crate::client::{Consumer, Delivery};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How failed messages are requeued, and how hard the consumer backs off.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Give up on (FIN, with a line on stderr) a message delivered more
    /// often than this; 0: never.
    pub max_attempts: u16,
    /// REQ delay: this times the message's attempts so far...
    pub default_requeue_delay: Duration,
    /// ...but no more than this.
    pub max_requeue_delay: Duration,
    /// Backoff at level L lasts this × 2^L...
    pub backoff_multiplier: Duration,
    /// ...and the level rises only while that stays within this (0: no
    /// backoff at all).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// go-nsq's defaults, except `max_attempts`: go-nsq gives up after 5,
    /// dropping the message; ours keep it until it is delivered.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 0,
            default_requeue_delay: Duration::from_secs(90),
            max_requeue_delay: Duration::from_secs(15 * 60),
            backoff_multiplier: Duration::from_secs(1),
            max_backoff: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The defaults, changed by go-nsq options (`--consumer-opt`).
    pub fn from_options(connection: &Connection) -> Result<RetryPolicy, String> {
        let mut policy = RetryPolicy::default();
        let duration = |key: &str| -> Result<Option<Duration>, String> {
            connection
                .option(key)
                .map(|v| {
                    crate::cli::parse_duration(v).map_err(|e| format!("--consumer-opt {key}: {e}"))
                })
                .transpose()
        };
        if let Some(v) = connection.option("max_attempts") {
            policy.max_attempts = v.parse().map_err(|_| {
                format!("--consumer-opt max_attempts: {v:?} is not a number 0-65535")
            })?;
        }
        if let Some(d) = duration("default_requeue_delay")? {
            policy.default_requeue_delay = d;
        }
        if let Some(d) = duration("max_requeue_delay")? {
            policy.max_requeue_delay = d;
        }
        if let Some(d) = duration("backoff_multiplier")? {
            policy.backoff_multiplier = d;
        }
        if let Some(d) = duration("max_backoff_duration")? {
            policy.max_backoff = d;
        }
        Ok(policy)
    }

    /// How long a message that failed on its `attempts`-th delivery waits
    /// before nsqd delivers it again.
    pub fn requeue_delay(&self, attempts: u16) -> Duration {
        self.default_requeue_delay
            .saturating_mul(u32::from(attempts.max(1)))
            .min(self.max_requeue_delay)
    }

    /// Whether a message on its `attempts`-th delivery is given up on.
    pub fn gives_up(&self, attempts: u16) -> bool {
        self.max_attempts > 0 && attempts > self.max_attempts
    }

    fn backoff_at(&self, level: u32) -> Duration {
        self.backoff_multiplier
            .saturating_mul(2u32.saturating_pow(level.min(31)))
    }
}

/// How much a consumer may take in: everything, nothing, or one message
/// per connection to see whether the destination works again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Full,
    Paused,
    Testing,
}

impl Flow {
    /// The consumer's in-flight limit for this flow.
    fn limit(self) -> Option<u64> {
        match self {
            Flow::Full => None,
            Flow::Paused => Some(0),
            Flow::Testing => Some(1),
        }
    }
}

/// go-nsq's backoff: outcomes raise or lower a level; while the level is
/// above 0 the consumer pauses for the level's duration after each outcome
/// and then tests with one message. Outcomes during a pause do not count
/// (they belong to messages taken before it).
#[derive(Debug, Default)]
pub struct Backoff {
    level: u32,
    until: Option<Instant>,
}

impl Backoff {
    /// Count one outcome; the new flow, if it changes.
    pub fn record(&mut self, ok: bool, policy: &RetryPolicy, now: Instant) -> Option<Flow> {
        if self.until.is_some() {
            return None;
        }
        let changed = if ok {
            let was = self.level;
            self.level = self.level.saturating_sub(1);
            was > 0
        } else if policy.backoff_at(self.level + 1) <= policy.max_backoff {
            self.level += 1;
            true
        } else {
            false
        };
        if self.level == 0 {
            return changed.then_some(Flow::Full);
        }
        self.until = Some(now + policy.backoff_at(self.level).min(policy.max_backoff));
        Some(Flow::Paused)
    }

    /// When the current pause ends.
    pub fn deadline(&self) -> Option<Instant> {
        self.until
    }

    /// The pause is over: test with one message.
    pub fn expire(&mut self) -> Flow {
        self.until = None;
        Flow::Testing
    }

    pub fn level(&self) -> u32 {
        self.level
    }
}

/// How `--mode` spreads messages over the destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each message to the next destination in turn.
    RoundRobin,
    /// In turn, skipping destinations that failed (retried after 30 s,
    /// then after twice as long each time, up to 15 min).
    HostPool,
    /// Mostly the destinations that answer fastest, each still tried
    /// now and then; failed ones skipped as in hostpool.
    EpsilonGreedy,
    /// Every message to every destination (nsq-to-http only).
    All,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "round-robin" => Mode::RoundRobin,
            "hostpool" => Mode::HostPool,
            "epsilon-greedy" => Mode::EpsilonGreedy,
            "all" => Mode::All,
            _ => return None,
        })
    }
}

const RETRY_FIRST: Duration = Duration::from_secs(30);
const RETRY_MAX: Duration = Duration::from_secs(900);
/// epsilon-greedy: explore 30% of the time at first, 10% less after each
/// exploration, never under 1%.
const EPSILON_START: f64 = 0.3;
const EPSILON_DECAY: f64 = 0.9;
const EPSILON_MIN: f64 = 0.01;

#[derive(Debug, Clone)]
struct Host {
    dead: bool,
    retry_delay: Duration,
    next_retry: Instant,
    /// Moving average of successful requests' time, in milliseconds.
    avg_ms: Option<f64>,
}

/// Chooses destinations, by index, as go-hostpool does.
#[derive(Debug)]
pub struct Picker {
    mode: Mode,
    hosts: Vec<Host>,
    next: usize,
    epsilon: f64,
}

impl Picker {
    pub fn new(mode: Mode, count: usize, now: Instant) -> Picker {
        Picker {
            mode,
            hosts: vec![
                Host {
                    dead: false,
                    retry_delay: RETRY_FIRST,
                    next_retry: now,
                    avg_ms: None,
                };
                count.max(1)
            ],
            next: 0,
            epsilon: EPSILON_START,
        }
    }

    /// The destinations for the next message (one, except in mode all).
    pub fn pick(&mut self, now: Instant) -> Vec<usize> {
        match self.mode {
            Mode::All => (0..self.hosts.len()).collect(),
            Mode::RoundRobin => {
                let i = self.next % self.hosts.len();
                self.next = i + 1;
                vec![i]
            }
            Mode::HostPool => vec![self.next_alive(now)],
            Mode::EpsilonGreedy => vec![self.greedy(now, fastrand::f64(), fastrand::f64())],
        }
    }

    /// The next host in turn that is alive or due for a retry; when none
    /// is, every host counts as alive again.
    fn next_alive(&mut self, now: Instant) -> usize {
        let n = self.hosts.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            let h = &mut self.hosts[i];
            if !h.dead {
                self.next = i + 1;
                return i;
            }
            if h.next_retry <= now {
                h.retry_delay = (h.retry_delay * 2).min(RETRY_MAX);
                h.next_retry = now + h.retry_delay;
                self.next = i + 1;
                return i;
            }
        }
        for h in &mut self.hosts {
            h.dead = false;
        }
        self.next = 1;
        0
    }

    /// epsilon-greedy with the random draws given: explore (in turn) with
    /// probability epsilon, else a weighted choice by speed (1/average
    /// time) among usable hosts with a measured time.
    fn greedy(&mut self, now: Instant, explore: f64, choose: f64) -> usize {
        if explore < self.epsilon {
            self.epsilon = (self.epsilon * EPSILON_DECAY).max(EPSILON_MIN);
            return self.next_alive(now);
        }
        let weights: Vec<(usize, f64)> = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.dead || h.next_retry <= now)
            .filter_map(|(i, h)| h.avg_ms.map(|ms| (i, 1.0 / ms.max(0.001))))
            .collect();
        let total: f64 = weights.iter().map(|w| w.1).sum();
        let mut ceiling = 0.0;
        for (i, w) in &weights {
            ceiling += w / total;
            if choose <= ceiling {
                let h = &mut self.hosts[*i];
                if h.dead {
                    h.retry_delay = (h.retry_delay * 2).min(RETRY_MAX);
                    h.next_retry = now + h.retry_delay;
                }
                return *i;
            }
        }
        self.next_alive(now)
    }

    /// Record how a request to host `i` went.
    pub fn mark(&mut self, i: usize, ok: bool, took: Duration, now: Instant) {
        let Some(h) = self.hosts.get_mut(i) else {
            return;
        };
        if ok {
            h.dead = false;
            let ms = took.as_secs_f64() * 1000.0;
            h.avg_ms = Some(h.avg_ms.map_or(ms, |avg| avg * 0.8 + ms * 0.2));
        } else if !h.dead {
            h.dead = true;
            h.retry_delay = RETRY_FIRST;
            h.next_retry = now + RETRY_FIRST;
        }
    }
}

/// Whether each destination works, to say so once when that changes.
///
/// Sends run concurrently and finish in any order: a send that started
/// before the last change was noticed says nothing about the destination
/// since (a publish answered just before nsqd died must not announce its
/// recovery), so only sends started after it can change it again.
#[derive(Debug)]
pub struct Health {
    /// Failing or not, and when that was last noticed.
    state: Vec<(bool, Option<Instant>)>,
}

impl Health {
    pub fn new(count: usize) -> Health {
        Health {
            state: vec![(false, None); count],
        }
    }

    /// The line to print, if this outcome of a send begun at `started`
    /// changes what we know of `name` (noticed at `now`).
    pub fn record(
        &mut self,
        i: usize,
        name: &str,
        outcome: &Result<(), String>,
        started: Instant,
        now: Instant,
    ) -> Option<String> {
        let (failing, changed) = self.state.get_mut(i)?;
        if changed.is_some_and(|at| started < at) {
            return None;
        }
        let line = match outcome {
            Err(e) if !*failing => format!("{e} (messages are requeued until {name} takes them)"),
            Ok(()) if *failing => format!("{name} takes messages again"),
            _ => return None,
        };
        *failing = !*failing;
        *changed = Some(now);
        Some(line)
    }
}

/// NSQ's timer_metrics: every `every` samples, one line with the 99th and
/// 95th percentile and the average.
#[derive(Debug)]
pub struct Timings {
    every: usize,
    prefix: String,
    samples: Vec<Duration>,
}

impl Timings {
    pub fn new(every: u64, prefix: impl Into<String>) -> Timings {
        Timings {
            every: every as usize,
            prefix: prefix.into(),
            samples: Vec::new(),
        }
    }

    /// Add a sample; the status line when `every` have gathered.
    pub fn record(&mut self, took: Duration) -> Option<String> {
        if self.every == 0 {
            return None;
        }
        self.samples.push(took);
        if self.samples.len() < self.every {
            return None;
        }
        let mut s = std::mem::take(&mut self.samples);
        s.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let avg = s.iter().map(|d| ms(*d)).sum::<f64>() / s.len() as f64;
        Some(format!(
            "{} finished {} - 99th: {:.2}ms - 95th: {:.2}ms - avg: {:.2}ms",
            self.prefix,
            s.len(),
            ms(percentile(&s, 99.0)),
            ms(percentile(&s, 95.0)),
            avg
        ))
    }
}

/// timer_metrics' percentile: index ceil(p/100 × n + 0.5), capped at n-1.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((p / 100.0) * sorted.len() as f64 + 0.5).ceil() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// What to do with a message before it goes anywhere.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    /// Send this body.
    Send(Bytes),
    /// Not for the destinations (sampled out, filtered out): FIN it.
    Skip,
    /// Cannot be sent, ever (e.g. not JSON where JSON is needed): FIN it,
    /// and print this line.
    Drop(String),
}

/// Where messages go.
pub trait Sink: Send + Sync + 'static {
    /// Destinations' names (URLs, nsqd addresses), for messages and stats.
    fn names(&self) -> &[String];

    /// Decide what to send for a message of the `topic`-th topic.
    fn prepare(&self, topic: usize, body: &Bytes) -> Prepared;

    /// Send `body` to destination `dest`; `Err` is one line saying why not.
    fn send(
        self: Arc<Self>,
        dest: usize,
        topic: usize,
        body: Bytes,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static;
}

/// State shared by every topic's relay loop.
pub struct Dispatch {
    picker: Picker,
    health: Health,
    per_dest: Vec<Timings>,
    aggregate: Timings,
}

impl Dispatch {
    pub fn new(mode: Mode, names: &[String], status_every: u64) -> Dispatch {
        // With one destination its own line would repeat the aggregate.
        let per_dest = names
            .iter()
            .map(|n| {
                Timings::new(
                    if names.len() > 1 { status_every } else { 0 },
                    format!("[{n}]:"),
                )
            })
            .collect();
        Dispatch {
            picker: Picker::new(mode, names.len(), Instant::now()),
            health: Health::new(names.len()),
            per_dest,
            aggregate: Timings::new(status_every, "[aggregate]:"),
        }
    }
}

/// How a relay loop runs.
pub struct Settings {
    /// The tool's name, before every line on stderr.
    pub tool: &'static str,
    pub policy: RetryPolicy,
    /// Most messages being sent at once (nsq_to_http's `-n`).
    pub concurrency: usize,
    /// After SIGINT/SIGTERM, how long sends under way may take to finish.
    pub drain: Duration,
}

/// One send's results: per destination tried, the outcome and its time.
/// Per destination tried: its outcome, when the send began, how long it took.
type Results = Vec<(usize, Result<(), String>, Instant, Duration)>;

/// Relay every consumer (one per topic) through `sink` until SIGINT or
/// SIGTERM, then stop cleanly: no new messages, sends under way finished
/// (FIN or REQ), everything else given back, so nothing stays in flight.
pub async fn run<S: Sink>(
    consumers: Vec<Consumer>,
    sink: Arc<S>,
    dispatch: Dispatch,
    settings: Settings,
    signals: &mut crate::signals::Signals,
) -> Result<(), Failure> {
    let dispatch = Arc::new(Mutex::new(dispatch));
    let settings = Arc::new(settings);
    let stop = CancellationToken::new();
    // A second signal cuts the wait for sends under way short.
    let hurry = CancellationToken::new();
    let mut loops = JoinSet::new();
    for (topic, consumer) in consumers.into_iter().enumerate() {
        let relay = Relay {
            consumer,
            backoff: Backoff::default(),
            known: BTreeSet::new(),
            lost: BTreeSet::new(),
            work: Work {
                topic,
                sink: sink.clone(),
                dispatch: dispatch.clone(),
                settings: settings.clone(),
                jobs: JoinSet::new(),
                held: HashMap::new(),
            },
        };
        loops.spawn(relay.run(stop.clone(), hurry.clone()));
    }
    let mut failure = None;
    tokio::select! {
        _ = signals.recv() => {}
        Some(done) = loops.join_next() => {
            failure = match done {
                Ok(r) => r.err(),
                Err(e) => Some(Failure::new(format!("internal error: {e}"))),
            };
        }
    }
    stop.cancel();
    let mut hurried = false;
    loop {
        tokio::select! {
            done = loops.join_next() => match done {
                Some(Ok(Err(e))) => {
                    failure.get_or_insert(e);
                }
                Some(_) => {}
                None => break,
            },
            _ = signals.recv(), if !hurried => {
                hurried = true;
                hurry.cancel();
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// One topic's loop: its consumer, its backoff, and the sends under way.
struct Relay<S: Sink> {
    consumer: Consumer,
    backoff: Backoff,
    /// nsqd connections seen, and those lost (to say when they come back).
    known: BTreeSet<String>,
    lost: BTreeSet<String>,
    work: Work<S>,
}

/// The sends under way, and what settling them needs.
struct Work<S: Sink> {
    topic: usize,
    sink: Arc<S>,
    dispatch: Arc<Mutex<Dispatch>>,
    settings: Arc<Settings>,
    jobs: JoinSet<Results>,
    /// The message of each send under way, by its task.
    held: HashMap<tokio::task::Id, Delivery>,
}

impl<S: Sink> Relay<S> {
    async fn run(
        mut self,
        stop: CancellationToken,
        hurry: CancellationToken,
    ) -> Result<(), Failure> {
        let result = self.relay(&stop).await;
        self.finish(&hurry).await;
        result
    }

    async fn relay(&mut self, stop: &CancellationToken) -> Result<(), Failure> {
        let tool = self.work.settings.tool;
        let mut watch = tokio::time::interval(Duration::from_millis(500));
        self.check_connections();
        loop {
            let pause_ends = self.backoff.deadline();
            let room = self.work.jobs.len() < self.work.settings.concurrency;
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                Some(done) = self.work.jobs.join_next_with_id(), if !self.work.jobs.is_empty() => {
                    if let Some(ok) = self.work.settle(done) {
                        let policy = &self.work.settings.policy;
                        if let Some(flow) = self.backoff.record(ok, policy, Instant::now()) {
                            self.consumer.throttle(flow.limit());
                        }
                    }
                }
                _ = sleep_until(pause_ends), if pause_ends.is_some() => {
                    let flow = self.backoff.expire();
                    self.consumer.throttle(flow.limit());
                }
                item = self.consumer.next(), if room => match item {
                    Some(Ok(delivery)) => self.work.dispatch(delivery),
                    Some(Err(e)) => {
                        eprintln!("{tool}: {e}");
                        self.check_connections();
                    }
                    None => return Err(Failure::new("every connection to nsqd is gone")),
                },
                _ = watch.tick() => self.check_connections(),
            }
        }
    }

    /// Say once when a lost nsqd connection is back.
    fn check_connections(&mut self) {
        let now: BTreeSet<String> = self.consumer.connections().into_iter().collect();
        for addr in self.known.difference(&now) {
            self.lost.insert(addr.clone());
        }
        for addr in now.intersection(&self.lost) {
            eprintln!("{}: reconnected to nsqd at {addr}", self.work.settings.tool);
        }
        self.lost.retain(|a| !now.contains(a));
        self.known.extend(now);
    }

    /// Stop taking messages (CLS) and give back at once every message not
    /// yet being sent, while the sends under way finish (bounded by
    /// `drain`, or cut short by `hurry`); the connections close once nsqd
    /// has an answer for every message.
    async fn finish(&mut self, hurry: &CancellationToken) {
        self.consumer.stop();
        let limit = self.work.settings.drain + Duration::from_secs(5);
        let (consumer, work) = (&mut self.consumer, &mut self.work);
        tokio::join!(consumer.shutdown(limit), work.drain(hurry));
    }
}

impl<S: Sink> Work<S> {
    /// Start sending one message (or FIN it at once if it is not to be sent).
    fn dispatch(&mut self, delivery: Delivery) {
        let tool = self.settings.tool;
        let attempts = delivery.attempts();
        if self.settings.policy.gives_up(attempts) {
            eprintln!(
                "{tool}: giving up on message {} after {attempts} attempts (max_attempts {})",
                delivery.id(),
                self.settings.policy.max_attempts
            );
            delivery.fin();
            return;
        }
        let body = match self.sink.prepare(self.topic, delivery.body()) {
            Prepared::Send(body) => body,
            Prepared::Skip => return delivery.fin(),
            Prepared::Drop(why) => {
                eprintln!("{tool}: {why}");
                return delivery.fin();
            }
        };
        let targets = self.dispatch.lock().picker.pick(Instant::now());
        let (sink, topic) = (self.sink.clone(), self.topic);
        let handle = self.jobs.spawn(async move {
            let mut results = Vec::with_capacity(targets.len());
            for dest in targets {
                let started = Instant::now();
                let outcome = sink.clone().send(dest, topic, body.clone()).await;
                let failed = outcome.is_err();
                results.push((dest, outcome, started, started.elapsed()));
                if failed {
                    break;
                }
            }
            results
        });
        self.held.insert(handle.id(), delivery);
    }

    /// A send is over: FIN or REQ its message, and learn from the outcome.
    /// Whether it succeeded (`None`: not a send of ours).
    fn settle(
        &mut self,
        done: Result<(tokio::task::Id, Results), tokio::task::JoinError>,
    ) -> Option<bool> {
        let (id, results) = match done {
            Ok(done) => done,
            Err(e) => (e.id(), Vec::new()),
        };
        let delivery = self.held.remove(&id)?;
        let ok = !results.is_empty() && results.iter().all(|r| r.1.is_ok());
        let now = Instant::now();
        let names = self.sink.names();
        let mut lines = Vec::new();
        {
            let mut d = self.dispatch.lock();
            for (dest, outcome, started, took) in &results {
                d.picker.mark(*dest, outcome.is_ok(), *took, now);
                let name = names.get(*dest).map_or("?", String::as_str);
                lines.extend(d.health.record(*dest, name, outcome, *started, now));
                if outcome.is_ok() {
                    if let Some(t) = d.per_dest.get_mut(*dest) {
                        lines.extend(t.record(*took));
                    }
                }
            }
            if ok {
                let total = results.iter().map(|r| r.3).sum();
                lines.extend(d.aggregate.record(total));
            }
        }
        for line in lines {
            eprintln!("{}: {line}", self.settings.tool);
        }
        if ok {
            delivery.fin();
        } else {
            let delay = self.settings.policy.requeue_delay(delivery.attempts());
            delivery.req(delay);
        }
        Some(ok)
    }

    /// Settle the sends under way as they finish; when time is up, give
    /// their messages back.
    async fn drain(&mut self, hurry: &CancellationToken) {
        let deadline = Instant::now() + self.settings.drain;
        while !self.jobs.is_empty() {
            tokio::select! {
                done = self.jobs.join_next_with_id() => match done {
                    Some(done) => {
                        self.settle(done);
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = hurry.cancelled() => break,
            }
        }
        self.jobs.abort_all();
        for (_, delivery) in self.held.drain() {
            delivery.req(Duration::ZERO);
        }
    }
}

impl<S: Sink> Drop for Work<S> {
    /// Dropped early (the runtime ending): hand back what is still held.
    fn drop(&mut self) {
        for (_, delivery) in self.held.drain() {
            delivery.req(Duration::ZERO);
        }
    }
}

/// The consumer of one topic: directly from nsqd (reconnecting to any that
/// is lost), or through nsqlookupd. Fails if a given nsqd cannot be reached.
pub async fn consumer(
    sources: &super::args::Sources,
    config: crate::client::ConsumerConfig,
    lookupd_poll_interval: Duration,
) -> Result<Consumer, Failure> {
    if sources.lookupd_http_addresses.is_empty() {
        let mut consumer = Consumer::connect(&sources.nsqd_tcp_addresses, &config).await?;
        consumer.keep_reconnecting();
        Ok(consumer)
    } else {
        let polling = crate::client::LookupdPolling {
            interval: lookupd_poll_interval,
            ..crate::client::LookupdPolling::default()
        };
        Ok(Consumer::discover(
            &sources.lookupd_http_addresses,
            &config,
            polling,
        )?)
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn requeue_delay_grows_with_attempts_up_to_the_cap() {
        let p = policy();
        assert_eq!(p.requeue_delay(0), Duration::from_secs(90));
        assert_eq!(p.requeue_delay(1), Duration::from_secs(90));
        assert_eq!(p.requeue_delay(3), Duration::from_secs(270));
        assert_eq!(p.requeue_delay(100), Duration::from_secs(900));
        assert!(!p.gives_up(u16::MAX), "never gives up by default");
        let p = RetryPolicy {
            max_attempts: 5,
            ..policy()
        };
        assert!(!p.gives_up(5));
        assert!(p.gives_up(6));
    }

    #[test]
    fn options_change_the_policy() {
        let c = Connection {
            dial_timeout: Duration::from_secs(5),
            options: vec![
                "max_attempts,7".into(),
                "default_requeue_delay=100ms".into(),
                "max_backoff_duration,0".into(),
            ],
            tls: false,
            tls_root_ca_file: None,
            tls_cert: None,
            tls_key: None,
            tls_insecure_skip_verify: false,
            snappy: false,
            deflate: false,
            deflate_level: 6,
        };
        let p = RetryPolicy::from_options(&c).unwrap();
        assert_eq!(p.max_attempts, 7);
        assert_eq!(p.default_requeue_delay, Duration::from_millis(100));
        assert_eq!(p.max_backoff, Duration::ZERO);
        assert_eq!(p.max_requeue_delay, Duration::from_secs(900));
        let bad = Connection {
            options: vec!["max_attempts=lots".into()],
            ..c
        };
        assert!(RetryPolicy::from_options(&bad)
            .unwrap_err()
            .contains("max_attempts"));
    }

    #[test]
    fn backoff_pauses_tests_and_recovers_as_go_nsq() {
        let p = policy();
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert_eq!(b.record(true, &p, t0), None, "success at level 0: nothing");
        assert_eq!(b.record(false, &p, t0), Some(Flow::Paused));
        assert_eq!(
            (b.level(), b.deadline()),
            (1, Some(t0 + Duration::from_secs(2)))
        );
        // Outcomes during the pause do not count.
        assert_eq!(b.record(false, &p, t0), None);
        assert_eq!(b.level(), 1);
        assert_eq!(b.expire(), Flow::Testing);
        // The test message fails: level 2, 4 s.
        assert_eq!(b.record(false, &p, t0), Some(Flow::Paused));
        assert_eq!(b.deadline(), Some(t0 + Duration::from_secs(4)));
        b.expire();
        // It works: level 1, pause again; then level 0, full flow.
        assert_eq!(b.record(true, &p, t0), Some(Flow::Paused));
        assert_eq!(b.level(), 1);
        b.expire();
        assert_eq!(b.record(true, &p, t0), Some(Flow::Full));
        assert_eq!((b.level(), b.deadline()), (0, None));
    }

    #[test]
    fn backoff_level_stops_below_the_maximum() {
        let p = policy(); // 1 s × 2^L within 2 min: level 6 (64 s) at most
        let t0 = Instant::now();
        let mut b = Backoff::default();
        for _ in 0..20 {
            b.record(false, &p, t0);
            b.expire();
        }
        assert_eq!(b.level(), 6);
        b.record(false, &p, t0);
        assert_eq!(b.deadline(), Some(t0 + Duration::from_secs(64)));
        // No backoff at all when the maximum is 0.
        let none = RetryPolicy {
            max_backoff: Duration::ZERO,
            ..policy()
        };
        let mut b = Backoff::default();
        assert_eq!(b.record(false, &none, t0), None);
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn round_robin_cycles_whatever_happens() {
        let t0 = Instant::now();
        let mut p = Picker::new(Mode::RoundRobin, 3, t0);
        p.mark(1, false, Duration::ZERO, t0);
        let got: Vec<usize> = (0..6).flat_map(|_| p.pick(t0)).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2]);
        let mut all = Picker::new(Mode::All, 3, t0);
        assert_eq!(all.pick(t0), [0, 1, 2]);
    }

    #[test]
    fn hostpool_skips_failed_hosts_and_retries_them_later() {
        let t0 = Instant::now();
        let mut p = Picker::new(Mode::HostPool, 3, t0);
        assert_eq!(p.pick(t0), [0]);
        p.mark(1, false, Duration::ZERO, t0);
        let got: Vec<usize> = (0..4).flat_map(|_| p.pick(t0)).collect();
        assert_eq!(got, [2, 0, 2, 0], "host 1 is skipped");
        // 30 s later host 1 gets one try; failing again it waits 60 s more.
        let t1 = t0 + Duration::from_secs(31);
        assert_eq!(p.pick(t1), [1]);
        assert_eq!(p.pick(t1), [2]);
        assert_eq!(p.pick(t1), [0]);
        assert_eq!(p.pick(t1), [2], "not due again yet");
        // It answers: back in the rotation.
        p.mark(1, true, Duration::from_millis(5), t1);
        let got: Vec<usize> = (0..3).flat_map(|_| p.pick(t1)).collect();
        assert_eq!(got, [0, 1, 2]);
        // Everything failed: all count as alive again.
        for i in 0..3 {
            p.mark(i, false, Duration::ZERO, t1);
        }
        assert_eq!(p.pick(t1), [0]);
        assert_eq!(p.pick(t1), [1]);
    }

    #[test]
    fn epsilon_greedy_prefers_fast_hosts() {
        let t0 = Instant::now();
        let mut p = Picker::new(Mode::EpsilonGreedy, 2, t0);
        p.mark(0, true, Duration::from_millis(90), t0);
        p.mark(1, true, Duration::from_millis(10), t0);
        // Not exploring: host 1 has 90% of the weight.
        assert_eq!(p.greedy(t0, 0.99, 0.05), 0);
        assert_eq!(p.greedy(t0, 0.99, 0.5), 1);
        assert_eq!(p.greedy(t0, 0.99, 0.95), 1);
        // Exploring goes in turn, and explores less each time.
        let before = p.epsilon;
        p.greedy(t0, 0.0, 0.5);
        assert!(p.epsilon < before);
        // A failed host is not chosen for its speed.
        p.mark(1, false, Duration::ZERO, t0);
        assert_eq!(p.greedy(t0, 0.99, 0.95), 0);
    }

    #[test]
    fn health_speaks_once_per_change() {
        let mut h = Health::new(2);
        let fail: Result<(), String> = Err("POST http://x/: HTTP 500".into());
        let t = |ms| Instant::now() + Duration::from_millis(ms);
        let (t0, t1, t2, t3) = (t(0), t(1), t(2), t(3));
        assert!(h.record(0, "http://x/", &Ok(()), t0, t0).is_none());
        let line = h.record(0, "http://x/", &fail, t0, t1).unwrap();
        assert!(line.starts_with("POST http://x/: HTTP 500"), "{line}");
        assert!(h.record(0, "http://x/", &fail, t1, t1).is_none());
        assert!(h.record(1, "y", &Ok(()), t0, t1).is_none());
        assert_eq!(
            h.record(0, "http://x/", &Ok(()), t1, t2).unwrap(),
            "http://x/ takes messages again"
        );
        assert!(h.record(0, "http://x/", &Ok(()), t2, t2).is_none());
        assert!(h.record(0, "http://x/", &fail, t2, t3).is_some());
    }

    /// Concurrent sends finish in any order: one begun before the failure
    /// was noticed and answered after it, or one that failed but began
    /// before the recovery, says nothing new.
    #[test]
    fn health_ignores_sends_begun_before_the_last_change() {
        let mut h = Health::new(1);
        let fail: Result<(), String> = Err("the connection to nsqd at a is closed".into());
        let t = |ms| Instant::now() + Duration::from_millis(ms);
        let (t0, t1, t2, t3, t4) = (t(0), t(1), t(2), t(3), t(4));
        assert!(h.record(0, "a", &fail, t1, t2).is_some());
        // Begun at t0, answered before the kill, settled after the failure.
        assert!(h.record(0, "a", &Ok(()), t0, t2).is_none());
        assert_eq!(
            h.record(0, "a", &Ok(()), t3, t3).unwrap(),
            "a takes messages again"
        );
        // Begun during the outage, failed, settled after the recovery.
        assert!(h.record(0, "a", &fail, t2, t4).is_none());
    }

    #[test]
    fn timings_print_every_n_as_timer_metrics() {
        let mut t = Timings::new(5, "[aggregate]:");
        for ms in [1, 2, 3, 4] {
            assert!(t.record(Duration::from_millis(ms)).is_none());
        }
        assert_eq!(
            t.record(Duration::from_millis(10)).unwrap(),
            "[aggregate]: finished 5 - 99th: 10.00ms - 95th: 10.00ms - avg: 4.00ms"
        );
        assert!(t.record(Duration::from_millis(1)).is_none(), "starts over");
        let mut off = Timings::new(0, "x");
        assert!(off.record(Duration::from_millis(1)).is_none());
    }
}
