//! nsqlookupd's registration database: which nsqd instances ("producers")
//! hold which topics and channels.
//!
//! The database is a map from a [`Registration`] (category, key, subkey) to the
//! producers registered under it, keyed by peer id. Three categories exist:
//!
//! | category  | key   | subkey  | created by                                     |
//! |-----------|-------|---------|------------------------------------------------|
//! | `client`  | `""`  | `""`    | IDENTIFY: every identified nsqd               |
//! | `topic`   | topic | `""`    | REGISTER, `/topic/create`, `/channel/create`   |
//! | `channel` | topic | channel | `REGISTER topic channel`, `/channel/create`    |
//!
//! It is a plain data structure: no locking, no I/O, no clock. The server wraps
//! it in a lock, and every method that judges liveness takes `now` so that the
//! caller decides what "now" is (and tests need no sleeps).
//!
//! Iteration order is deterministic (registrations sorted by category, key,
//! subkey; producers by peer id). NSQ iterates Go maps, whose order is random,
//! so any order is faithful; a fixed one makes responses and tests stable.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

/// The key or subkey that matches anything in [`RegistrationDb::find_registrations`]
/// and [`RegistrationDb::find_producers`].
///
/// Valid topic and channel names cannot contain `*`, so it never collides with
/// a real name registered over TCP. The HTTP API does not validate the `topic`
/// of `/lookup`, `/channels` or `/topic/tombstone`, so NSQ (and we) honour a
/// literal `*` there as a wildcard.
pub const WILDCARD: &str = "*";

/// The kind of a registration. NSQ uses free-form strings; only these three
/// are ever created, so an enum rules out typos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// One entry per identified nsqd; key and subkey are empty.
    Client,
    /// A topic; key is the topic name, subkey is empty.
    Topic,
    /// A channel; key is the topic name, subkey the channel name.
    Channel,
}

impl Category {
    /// NSQ's spelling, as used in `/debug` keys and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Client => "client",
            Category::Topic => "topic",
            Category::Channel => "channel",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One key of the database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Registration {
    pub category: Category,
    pub key: String,
    pub subkey: String,
}

impl Registration {
    pub fn new(category: Category, key: impl Into<String>, subkey: impl Into<String>) -> Self {
        Registration {
            category,
            key: key.into(),
            subkey: subkey.into(),
        }
    }

    /// The single `client` registration every identified nsqd joins.
    pub fn client() -> Self {
        Registration::new(Category::Client, "", "")
    }

    pub fn topic(topic: impl Into<String>) -> Self {
        Registration::new(Category::Topic, topic, "")
    }

    pub fn channel(topic: impl Into<String>, channel: impl Into<String>) -> Self {
        Registration::new(Category::Channel, topic, channel)
    }

    /// Whether this registration matches a query; `*` as key or subkey matches
    /// anything, the category must always be equal.
    pub fn is_match(&self, category: Category, key: &str, subkey: &str) -> bool {
        self.category == category
            && (key == WILDCARD || self.key == key)
            && (subkey == WILDCARD || self.subkey == subkey)
    }
}

/// `category:key:subkey`, the form NSQ uses for `/debug` keys (e.g. `client::`,
/// `topic:orders:`, `channel:orders:billing`).
impl fmt::Display for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.category, self.key, self.subkey)
    }
}

/// Helpers over a list of registrations, as the HTTP handlers use them.
pub trait RegistrationsExt {
    /// The registrations matching a query (same rules as [`Registration::is_match`]).
    fn filter_matching(&self, category: Category, key: &str, subkey: &str) -> Vec<Registration>;
    /// The keys (topic names), in order, duplicates kept.
    fn keys(&self) -> Vec<String>;
    /// The subkeys (channel names), in order, duplicates kept.
    fn subkeys(&self) -> Vec<String>;
}

impl RegistrationsExt for [Registration] {
    fn filter_matching(&self, category: Category, key: &str, subkey: &str) -> Vec<Registration> {
        self.iter()
            .filter(|r| r.is_match(category, key, subkey))
            .cloned()
            .collect()
    }

    fn keys(&self) -> Vec<String> {
        self.iter().map(|r| r.key.clone()).collect()
    }

    fn subkeys(&self) -> Vec<String> {
        self.iter().map(|r| r.subkey.clone()).collect()
    }
}

/// When a peer was last heard from (IDENTIFY or PING).
///
/// It lives inside the shared [`PeerInfo`] rather than in a per-peer map of the
/// database, mirroring NSQ, where every registration of a connection points at
/// the same peer record: a PING then refreshes the peer in all its
/// registrations at once, and the connection task can do it through its own
/// `Arc<PeerInfo>` without taking the database's write lock. A mutex (rather
/// than an atomic) because `Instant` has no atomic form; it is never contended
/// for long.
#[derive(Debug)]
pub struct LastUpdate(Mutex<Instant>);

impl LastUpdate {
    pub fn new(at: Instant) -> Self {
        LastUpdate(Mutex::new(at))
    }

    pub fn get(&self) -> Instant {
        *self.0.lock()
    }

    pub fn set(&self, at: Instant) {
        *self.0.lock() = at;
    }
}

/// What nsqlookupd knows about one connected nsqd, from its IDENTIFY.
///
/// Shared as `Arc<PeerInfo>` by all registrations of one connection; the `Arc`
/// identity (not the id) is what `/nodes` uses to find a node's entry in each
/// topic, as NSQ compares pointers there.
#[derive(Debug)]
pub struct PeerInfo {
    /// Identity key in the database: the remote socket address of the
    /// connection. A reconnecting nsqd gets a new id, hence fresh producer
    /// entries (and no tombstones).
    pub id: String,
    /// The remote socket address again, as reported in the HTTP API.
    pub remote_address: String,
    pub hostname: String,
    /// Where consumers should connect (with `tcp_port`).
    pub broadcast_address: String,
    /// Ports are kept as the JSON integers nsqd sent (NSQ stores a Go `int`
    /// and echoes it unchanged), not narrowed to `u16`.
    pub tcp_port: i64,
    pub http_port: i64,
    pub version: String,
    pub topology_zone: String,
    pub topology_region: String,
    pub last_update: LastUpdate,
}

impl PeerInfo {
    /// Whether the peer has been silent for longer than `inactive_timeout`.
    ///
    /// Exactly at the timeout it still counts as active. A `now` earlier than
    /// the last update (a caller that read the clock before waiting for a lock)
    /// counts as active, as in NSQ where the elapsed time is then negative.
    pub fn is_inactive(&self, now: Instant, inactive_timeout: Duration) -> bool {
        now.checked_duration_since(self.last_update.get())
            .is_some_and(|silent| silent > inactive_timeout)
    }

    /// `broadcast_address:http_port`, the form `/topic/tombstone?node=` names
    /// a node in. IPv6 addresses are not bracketed, as in NSQ.
    pub fn http_node(&self) -> String {
        format!("{}:{}", self.broadcast_address, self.http_port)
    }
}

/// A peer's entry in one registration.
///
/// The tombstone belongs to the entry, not to the peer: tombstoning a node for
/// topic T hides it from `/lookup?topic=T` only. Removing the entry (UNREGISTER,
/// disconnect, topic deletion) forgets the tombstone.
#[derive(Debug, Clone)]
pub struct Producer {
    pub peer: Arc<PeerInfo>,
    /// When `/topic/tombstone` last marked this entry; `None` if never.
    pub tombstoned_at: Option<Instant>,
}

impl Producer {
    pub fn new(peer: Arc<PeerInfo>) -> Self {
        Producer {
            peer,
            tombstoned_at: None,
        }
    }

    /// Whether a tombstone set less than `lifetime` ago is in force.
    ///
    /// Tombstones are never cleared, they just stop counting after `lifetime`;
    /// a `now` earlier than the tombstone counts as within the lifetime (NSQ
    /// compares a negative elapsed time). A zero lifetime therefore ignores
    /// tombstones, which is how `/nodes` lists tombstoned nodes.
    pub fn is_tombstoned(&self, now: Instant, lifetime: Duration) -> bool {
        self.tombstoned_at.is_some_and(|at| {
            now.checked_duration_since(at)
                .is_none_or(|age| age < lifetime)
        })
    }

    /// Whether `/lookup` should report this producer: heard from recently and
    /// not tombstoned.
    pub fn is_active(
        &self,
        now: Instant,
        inactive_timeout: Duration,
        tombstone_lifetime: Duration,
    ) -> bool {
        !self.peer.is_inactive(now, inactive_timeout)
            && !self.is_tombstoned(now, tombstone_lifetime)
    }
}

/// `broadcast_address [tcp_port, http_port]`, NSQ's log form of a producer.
impl fmt::Display for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}, {}]",
            self.peer.broadcast_address, self.peer.tcp_port, self.peer.http_port
        )
    }
}

/// Keeps the producers that are active (see [`Producer::is_active`]).
pub fn filter_active<'a>(
    producers: impl IntoIterator<Item = &'a Producer>,
    now: Instant,
    inactive_timeout: Duration,
    tombstone_lifetime: Duration,
) -> Vec<&'a Producer> {
    producers
        .into_iter()
        .filter(|p| p.is_active(now, inactive_timeout, tombstone_lifetime))
        .collect()
}

/// Producers of one registration, by peer id.
type ProducerMap = BTreeMap<String, Producer>;

/// The registration database. See the module docs.
#[derive(Debug, Default)]
pub struct RegistrationDb {
    registrations: BTreeMap<Registration, ProducerMap>,
}

impl RegistrationDb {
    pub fn new() -> Self {
        RegistrationDb::default()
    }

    /// Creates the registration with no producers if it does not exist yet
    /// (`/topic/create`, `/channel/create`); existing producers are kept.
    pub fn add_registration(&mut self, registration: Registration) {
        self.registrations.entry(registration).or_default();
    }

    /// Adds `peer` as a producer of `registration`, creating the registration
    /// if needed. Returns `false`, changing nothing, if a producer with the
    /// same id is already there: a repeated REGISTER keeps the old entry and
    /// so its tombstone.
    pub fn add_producer(&mut self, registration: Registration, peer: &Arc<PeerInfo>) -> bool {
        let producers = self.registrations.entry(registration).or_default();
        if producers.contains_key(&peer.id) {
            return false;
        }
        producers.insert(peer.id.clone(), Producer::new(Arc::clone(peer)));
        true
    }

    /// Removes the producer with `peer_id` from `registration`.
    ///
    /// Returns whether it was there and how many producers remain (0 when the
    /// registration does not exist). The registration itself stays even when
    /// empty: topics and channels outlive their producers, and only the caller
    /// knows when one should go (ephemeral names on UNREGISTER).
    pub fn remove_producer(&mut self, registration: &Registration, peer_id: &str) -> (bool, usize) {
        match self.registrations.get_mut(registration) {
            Some(producers) => {
                let removed = producers.remove(peer_id).is_some();
                (removed, producers.len())
            }
            None => (false, 0),
        }
    }

    /// Removes a peer from every registration it is in, as when its connection
    /// closes. Returns the registrations it was removed from (for logging).
    /// Registrations left empty are kept, ephemeral ones included.
    pub fn remove_peer(&mut self, peer_id: &str) -> Vec<Registration> {
        let mut removed = Vec::new();
        for (registration, producers) in &mut self.registrations {
            if producers.remove(peer_id).is_some() {
                removed.push(registration.clone());
            }
        }
        removed
    }

    /// Removes a registration together with its producers (and their
    /// tombstones). Returns whether it existed.
    pub fn remove_registration(&mut self, registration: &Registration) -> bool {
        self.registrations.remove(registration).is_some()
    }

    /// The registrations matching a query: exact unless key or subkey is `*`.
    ///
    /// A wildcard stands only for itself: `(Topic, "*", "")` matches topics
    /// (whose subkey is empty) and `(Channel, "t", "*")` the channels of `t`.
    pub fn find_registrations(
        &self,
        category: Category,
        key: &str,
        subkey: &str,
    ) -> Vec<Registration> {
        if !is_wildcard_query(key, subkey) {
            let exact = Registration::new(category, key, subkey);
            return if self.registrations.contains_key(&exact) {
                vec![exact]
            } else {
                Vec::new()
            };
        }
        self.registrations
            .keys()
            .filter(|r| r.is_match(category, key, subkey))
            .cloned()
            .collect()
    }

    /// The producers of the registrations matching a query.
    ///
    /// With a wildcard, a peer registered under several matching registrations
    /// appears once, as its entry in the first of them (in registration order);
    /// that entry's tombstone is the one later filtering sees.
    pub fn find_producers(&self, category: Category, key: &str, subkey: &str) -> Vec<&Producer> {
        if !is_wildcard_query(key, subkey) {
            let exact = Registration::new(category, key, subkey);
            return self
                .registrations
                .get(&exact)
                .map(|producers| producers.values().collect())
                .unwrap_or_default();
        }
        let mut seen = HashSet::new();
        self.registrations
            .iter()
            .filter(|(r, _)| r.is_match(category, key, subkey))
            .flat_map(|(_, producers)| producers.values())
            .filter(|p| seen.insert(p.peer.id.as_str()))
            .collect()
    }

    /// Every registration the peer is a producer of.
    pub fn lookup_registrations(&self, peer_id: &str) -> Vec<Registration> {
        self.registrations
            .iter()
            .filter(|(_, producers)| producers.contains_key(peer_id))
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Tombstones, in the topic registration(s) matching `topic`, the entry of
    /// the peer with id `peer_id`. Returns how many entries were marked.
    pub fn tombstone(&mut self, peer_id: &str, topic: &str, now: Instant) -> usize {
        self.tombstone_where(topic, now, |peer| peer.id == peer_id)
    }

    /// `/topic/tombstone?topic=T&node=N`: tombstones, for topic `T`, every
    /// producer whose `broadcast_address:http_port` is exactly `node`.
    /// Re-tombstoning restarts the lifetime. Returns how many entries were
    /// marked (NSQ answers 200 even when none).
    pub fn tombstone_node(&mut self, node: &str, topic: &str, now: Instant) -> usize {
        self.tombstone_where(topic, now, |peer| peer.http_node() == node)
    }

    /// Marks the entries [`find_producers`](Self::find_producers) would return
    /// for `(Topic, topic, "")` whose peer satisfies `select`, so that a
    /// wildcard topic marks exactly the entries a wildcard lookup reports.
    fn tombstone_where(
        &mut self,
        topic: &str,
        now: Instant,
        select: impl Fn(&PeerInfo) -> bool,
    ) -> usize {
        let targets: Vec<(Registration, String)> = if is_wildcard_query(topic, "") {
            let mut seen = HashSet::new();
            self.registrations
                .iter()
                .filter(|(r, _)| r.is_match(Category::Topic, topic, ""))
                .flat_map(|(r, producers)| producers.values().map(move |p| (r, p)))
                .filter(|(_, p)| seen.insert(p.peer.id.as_str()))
                .filter(|(_, p)| select(&p.peer))
                .map(|(r, p)| (r.clone(), p.peer.id.clone()))
                .collect()
        } else {
            let exact = Registration::topic(topic);
            self.registrations
                .get(&exact)
                .into_iter()
                .flat_map(|producers| producers.values())
                .filter(|p| select(&p.peer))
                .map(|p| (exact.clone(), p.peer.id.clone()))
                .collect()
        };
        for (registration, peer_id) in &targets {
            if let Some(producer) = self
                .registrations
                .get_mut(registration)
                .and_then(|producers| producers.get_mut(peer_id))
            {
                producer.tombstoned_at = Some(now);
            }
        }
        targets.len()
    }

    /// Every registration with its producers, for `/debug`.
    pub fn iter(&self) -> impl Iterator<Item = (&Registration, impl Iterator<Item = &Producer>)> {
        self.registrations
            .iter()
            .map(|(r, producers)| (r, producers.values()))
    }

    /// `/topics`: every topic name, with or without producers.
    pub fn topics(&self) -> Vec<String> {
        self.find_registrations(Category::Topic, WILDCARD, "")
            .keys()
    }

    /// `/channels?topic=T`: the channel names registered under `topic`
    /// (`*` lists every channel of every topic).
    pub fn channels(&self, topic: &str) -> Vec<String> {
        self.find_registrations(Category::Channel, topic, WILDCARD)
            .subkeys()
    }

    /// `/lookup?topic=T`, or `None` (404 `TOPIC_NOT_FOUND`) when no topic
    /// registration matches. Producers that are inactive or tombstoned for the
    /// topic are left out; channels are listed whether or not anyone produces
    /// them.
    pub fn lookup(
        &self,
        topic: &str,
        now: Instant,
        inactive_timeout: Duration,
        tombstone_lifetime: Duration,
    ) -> Option<Lookup<'_>> {
        if self
            .find_registrations(Category::Topic, topic, "")
            .is_empty()
        {
            return None;
        }
        let producers = self.find_producers(Category::Topic, topic, "");
        Some(Lookup {
            channels: self.channels(topic),
            producers: filter_active(producers, now, inactive_timeout, tombstone_lifetime)
                .into_iter()
                .map(|p| ProducerJson::from(&*p.peer))
                .collect(),
        })
    }

    /// `/nodes`: every identified peer that is not inactive, tombstoned or
    /// not, with the topics it produces and, for each, whether it is
    /// tombstoned there.
    pub fn nodes(
        &self,
        now: Instant,
        inactive_timeout: Duration,
        tombstone_lifetime: Duration,
    ) -> Vec<Node<'_>> {
        // A zero lifetime: tombstones do not hide nodes here, they are reported.
        let clients = self.find_producers(Category::Client, "", "");
        filter_active(clients, now, inactive_timeout, Duration::ZERO)
            .into_iter()
            .map(|client| {
                let topics = self
                    .lookup_registrations(&client.peer.id)
                    .filter_matching(Category::Topic, WILDCARD, "")
                    .keys();
                let tombstones = topics
                    .iter()
                    .map(|topic| {
                        self.registrations
                            .get(&Registration::topic(topic.as_str()))
                            .into_iter()
                            .flat_map(|producers| producers.values())
                            .find(|p| Arc::ptr_eq(&p.peer, &client.peer))
                            .is_some_and(|p| p.is_tombstoned(now, tombstone_lifetime))
                    })
                    .collect();
                Node::new(&client.peer, tombstones, topics)
            })
            .collect()
    }
}

fn is_wildcard_query(key: &str, subkey: &str) -> bool {
    key == WILDCARD || subkey == WILDCARD
}

/// A producer as `/lookup` reports it. Field order is NSQ's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProducerJson<'a> {
    pub remote_address: &'a str,
    pub hostname: &'a str,
    pub broadcast_address: &'a str,
    pub tcp_port: i64,
    pub http_port: i64,
    pub version: &'a str,
    /// Only on NSQ's master branch: sent when the nsqd sent them.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub topology_zone: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub topology_region: &'a str,
}

impl<'a> From<&'a PeerInfo> for ProducerJson<'a> {
    fn from(peer: &'a PeerInfo) -> Self {
        ProducerJson {
            remote_address: &peer.remote_address,
            hostname: &peer.hostname,
            broadcast_address: &peer.broadcast_address,
            tcp_port: peer.tcp_port,
            http_port: peer.http_port,
            version: &peer.version,
            topology_zone: &peer.topology_zone,
            topology_region: &peer.topology_region,
        }
    }
}

/// The body of `/lookup`: `{"channels":[...],"producers":[...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lookup<'a> {
    pub channels: Vec<String>,
    pub producers: Vec<ProducerJson<'a>>,
}

/// A node as `/nodes` reports it (inside `{"producers":[...]}`): the producer
/// fields, then `tombstones` and `topics`, which always have equal length
/// because NSQ's tools index one by the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node<'a> {
    pub remote_address: &'a str,
    pub hostname: &'a str,
    pub broadcast_address: &'a str,
    pub tcp_port: i64,
    pub http_port: i64,
    pub version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub topology_zone: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub topology_region: &'a str,
    pub tombstones: Vec<bool>,
    pub topics: Vec<String>,
}

impl<'a> Node<'a> {
    fn new(peer: &'a PeerInfo, tombstones: Vec<bool>, topics: Vec<String>) -> Self {
        Node {
            remote_address: &peer.remote_address,
            hostname: &peer.hostname,
            broadcast_address: &peer.broadcast_address,
            tcp_port: peer.tcp_port,
            http_port: peer.http_port,
            version: &peer.version,
            topology_zone: &peer.topology_zone,
            topology_region: &peer.topology_region,
            tombstones,
            topics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC30: Duration = Duration::from_secs(30);

    fn peer(id: &str, http_port: i64, last_update: Instant) -> Arc<PeerInfo> {
        Arc::new(PeerInfo {
            id: id.to_string(),
            remote_address: id.to_string(),
            hostname: "host".to_string(),
            broadcast_address: "b_addr".to_string(),
            tcp_port: http_port - 1,
            http_port,
            version: "1.3.0".to_string(),
            topology_zone: String::new(),
            topology_region: String::new(),
            last_update: LastUpdate::new(last_update),
        })
    }

    fn ids(producers: &[&Producer]) -> Vec<String> {
        let mut ids: Vec<String> = producers.iter().map(|p| p.peer.id.clone()).collect();
        ids.sort();
        ids
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    /// Peers p1..p3, p1 in topics `a` and `t`, p2 in topic `a` and channel
    /// `a/b`, p3 only identified; topic `empty` has no producers.
    fn sample(now: Instant) -> (RegistrationDb, [Arc<PeerInfo>; 3]) {
        let peers = [peer("1", 2, now), peer("2", 3, now), peer("3", 4, now)];
        let mut db = RegistrationDb::new();
        for p in &peers {
            assert!(db.add_producer(Registration::client(), p));
        }
        assert!(db.add_producer(Registration::topic("a"), &peers[0]));
        assert!(db.add_producer(Registration::topic("a"), &peers[1]));
        assert!(db.add_producer(Registration::channel("a", "b"), &peers[1]));
        assert!(db.add_producer(Registration::topic("t"), &peers[0]));
        db.add_registration(Registration::topic("empty"));
        (db, peers)
    }

    #[test]
    fn add_producer_is_idempotent_per_peer_id() {
        let now = Instant::now();
        let mut db = RegistrationDb::new();
        let p1 = peer("1", 2, now);
        assert!(db.add_producer(Registration::topic("a"), &p1));
        assert!(!db.add_producer(Registration::topic("a"), &p1));
        // A different record with the same id is still a duplicate, and the
        // first entry (with its peer record) is kept.
        let again = peer("1", 99, now);
        assert!(!db.add_producer(Registration::topic("a"), &again));
        let found = db.find_producers(Category::Topic, "a", "");
        assert_eq!(found.len(), 1);
        assert!(Arc::ptr_eq(&found[0].peer, &p1));
    }

    #[test]
    fn repeated_register_keeps_tombstone() {
        let now = Instant::now();
        let mut db = RegistrationDb::new();
        let p1 = peer("1", 2, now);
        db.add_producer(Registration::topic("a"), &p1);
        assert_eq!(db.tombstone("1", "a", now), 1);
        assert!(!db.add_producer(Registration::topic("a"), &p1));
        assert!(db.find_producers(Category::Topic, "a", "")[0].is_tombstoned(now, SEC30));
    }

    #[test]
    fn add_registration_keeps_existing_producers() {
        let now = Instant::now();
        let (mut db, _) = sample(now);
        db.add_registration(Registration::topic("a"));
        assert_eq!(db.find_producers(Category::Topic, "a", "").len(), 2);
        db.add_registration(Registration::channel("x", "y"));
        assert_eq!(
            db.find_registrations(Category::Channel, "x", "y"),
            vec![Registration::channel("x", "y")]
        );
        assert!(db.find_producers(Category::Channel, "x", "y").is_empty());
    }

    #[test]
    fn find_registrations_exact_and_wildcard() {
        let now = Instant::now();
        let (db, _) = sample(now);
        assert_eq!(
            db.find_registrations(Category::Topic, "a", ""),
            vec![Registration::topic("a")]
        );
        assert!(db.find_registrations(Category::Topic, "b", "").is_empty());
        // Exact queries do not match a channel's topic by prefix.
        assert!(db.find_registrations(Category::Channel, "a", "").is_empty());
        assert_eq!(
            db.find_registrations(Category::Topic, "*", "").keys(),
            vec!["a", "empty", "t"]
        );
        assert_eq!(
            db.find_registrations(Category::Channel, "a", "*").subkeys(),
            vec!["b"]
        );
        assert_eq!(
            db.find_registrations(Category::Channel, "*", "b"),
            vec![Registration::channel("a", "b")]
        );
        // A wildcard key with an empty subkey only matches empty subkeys.
        assert!(db.find_registrations(Category::Channel, "*", "").is_empty());
        assert_eq!(db.find_registrations(Category::Topic, "*", "*").len(), 3);
        assert_eq!(
            db.find_registrations(Category::Client, "*", "*"),
            vec![Registration::client()]
        );
    }

    #[test]
    fn find_producers_exact_and_wildcard_dedups_by_peer() {
        let now = Instant::now();
        let (db, _) = sample(now);
        assert_eq!(
            ids(&db.find_producers(Category::Topic, "a", "")),
            vec!["1", "2"]
        );
        assert_eq!(ids(&db.find_producers(Category::Topic, "t", "")), vec!["1"]);
        assert!(db.find_producers(Category::Topic, "nope", "").is_empty());
        assert!(db.find_producers(Category::Topic, "empty", "").is_empty());
        // p1 is in both `a` and `t` but reported once.
        assert_eq!(
            ids(&db.find_producers(Category::Topic, "*", "")),
            vec!["1", "2"]
        );
        assert_eq!(
            ids(&db.find_producers(Category::Channel, "*", "b")),
            vec!["2"]
        );
        assert_eq!(
            ids(&db.find_producers(Category::Client, "", "")),
            vec!["1", "2", "3"]
        );
    }

    #[test]
    fn keys_subkeys_and_filter() {
        let regs = [
            Registration::topic("a"),
            Registration::channel("a", "c1"),
            Registration::channel("b", "c2"),
            Registration::client(),
        ];
        assert_eq!(regs.keys(), vec!["a", "a", "b", ""]);
        assert_eq!(regs.subkeys(), vec!["", "c1", "c2", ""]);
        assert_eq!(
            regs.filter_matching(Category::Channel, "*", "*").subkeys(),
            vec!["c1", "c2"]
        );
        assert_eq!(
            regs.filter_matching(Category::Topic, "*", ""),
            vec![Registration::topic("a")]
        );
        assert!(regs.filter_matching(Category::Topic, "b", "").is_empty());
    }

    #[test]
    fn lookup_registrations_by_peer() {
        let now = Instant::now();
        let (db, _) = sample(now);
        assert_eq!(
            db.lookup_registrations("2"),
            vec![
                Registration::client(),
                Registration::topic("a"),
                Registration::channel("a", "b"),
            ]
        );
        assert_eq!(db.lookup_registrations("3"), vec![Registration::client()]);
        assert!(db.lookup_registrations("nobody").is_empty());
    }

    #[test]
    fn remove_producer_reports_removed_and_remaining() {
        let now = Instant::now();
        let (mut db, _) = sample(now);
        let a = Registration::topic("a");
        assert_eq!(db.remove_producer(&a, "1"), (true, 1));
        assert_eq!(db.remove_producer(&a, "1"), (false, 1));
        assert_eq!(db.remove_producer(&a, "2"), (true, 0));
        // The empty registration stays.
        assert_eq!(db.find_registrations(Category::Topic, "a", ""), vec![a]);
        assert_eq!(
            db.remove_producer(&Registration::topic("missing"), "1"),
            (false, 0)
        );
        assert!(db
            .find_registrations(Category::Topic, "missing", "")
            .is_empty());
    }

    #[test]
    fn remove_peer_leaves_every_registration_but_keeps_keys() {
        let now = Instant::now();
        let (mut db, _) = sample(now);
        db.add_producer(Registration::topic("x#ephemeral"), &peer("2", 3, now));
        let removed = db.remove_peer("2");
        assert_eq!(
            removed,
            vec![
                Registration::client(),
                Registration::topic("a"),
                Registration::topic("x#ephemeral"),
                Registration::channel("a", "b"),
            ]
        );
        assert!(db.lookup_registrations("2").is_empty());
        assert_eq!(ids(&db.find_producers(Category::Topic, "a", "")), vec!["1"]);
        // Keys survive, ephemeral ones too.
        assert_eq!(sorted(db.topics()), vec!["a", "empty", "t", "x#ephemeral"]);
        assert_eq!(db.channels("a"), vec!["b"]);
        assert!(db.remove_peer("2").is_empty());
    }

    #[test]
    fn remove_registration_drops_key_and_producers() {
        let now = Instant::now();
        let (mut db, _) = sample(now);
        assert!(db.remove_registration(&Registration::topic("a")));
        assert!(!db.remove_registration(&Registration::topic("a")));
        assert!(db.find_registrations(Category::Topic, "a", "").is_empty());
        assert!(db.find_producers(Category::Topic, "a", "").is_empty());
        // Other registrations of the same peers are untouched.
        assert_eq!(db.channels("a"), vec!["b"]);
        assert_eq!(ids(&db.find_producers(Category::Topic, "t", "")), vec!["1"]);
        assert_eq!(
            db.lookup_registrations("1"),
            vec![Registration::client(), Registration::topic("t")]
        );
    }

    #[test]
    fn inactivity_filter_uses_shared_last_update() {
        let start = Instant::now();
        let (db, peers) = sample(start);
        let later = start + Duration::from_secs(31);
        let producers = db.find_producers(Category::Topic, "a", "");
        assert!(filter_active(producers.clone(), later, SEC30, SEC30).is_empty());
        // Exactly at the timeout a peer is still active.
        let at_timeout = start + SEC30;
        assert_eq!(
            filter_active(producers.clone(), at_timeout, SEC30, SEC30).len(),
            2
        );
        // One PING refreshes the peer in every registration.
        peers[1].last_update.set(later - Duration::from_secs(5));
        assert_eq!(
            ids(&filter_active(producers, later, SEC30, SEC30)),
            vec!["2"]
        );
        let channel = db.find_producers(Category::Channel, "a", "b");
        assert_eq!(filter_active(channel, later, SEC30, SEC30).len(), 1);
        let clients = db.find_producers(Category::Client, "", "");
        assert_eq!(ids(&filter_active(clients, later, SEC30, SEC30)), vec!["2"]);
        // A `now` from before the last update counts as active.
        assert!(!peers[1].is_inactive(start, SEC30));
    }

    #[test]
    fn tombstone_hides_only_that_topic_until_lifetime_expires() {
        // Long enough that no peer goes inactive during this test.
        const LONG: Duration = Duration::from_secs(300);
        let start = Instant::now();
        let (mut db, _) = sample(start);
        let at = start + Duration::from_secs(1);
        assert_eq!(db.tombstone("1", "a", at), 1);
        let a = db.find_producers(Category::Topic, "a", "");
        assert_eq!(ids(&filter_active(a.clone(), at, LONG, SEC30)), vec!["2"]);
        // Still tombstoned just before the lifetime ends, not at its end.
        let almost = at + SEC30 - Duration::from_millis(1);
        assert_eq!(
            ids(&filter_active(a.clone(), almost, LONG, SEC30)),
            vec!["2"]
        );
        assert_eq!(filter_active(a.clone(), at + SEC30, LONG, SEC30).len(), 2);
        // A shorter lifetime has already expired.
        let soon = at + Duration::from_millis(10);
        assert_eq!(
            filter_active(a, soon, LONG, Duration::from_millis(5)).len(),
            2
        );
        // The same peer in another topic is not affected.
        let t = db.find_producers(Category::Topic, "t", "");
        assert_eq!(filter_active(t, at, LONG, SEC30).len(), 1);
        // Unknown peer or topic: nothing marked.
        assert_eq!(db.tombstone("3", "a", at), 0);
        assert_eq!(db.tombstone("1", "nope", at), 0);
    }

    #[test]
    fn tombstone_is_forgotten_when_the_entry_is_removed() {
        let now = Instant::now();
        let (mut db, peers) = sample(now);
        db.tombstone("1", "a", now);
        db.remove_producer(&Registration::topic("a"), "1");
        assert!(db.add_producer(Registration::topic("a"), &peers[0]));
        let a = db.find_producers(Category::Topic, "a", "");
        assert_eq!(filter_active(a, now, SEC30, SEC30).len(), 2);
    }

    #[test]
    fn retombstoning_restarts_the_lifetime() {
        let start = Instant::now();
        let (mut db, _) = sample(start);
        db.tombstone("1", "a", start);
        let later = start + Duration::from_secs(20);
        db.tombstone("1", "a", later);
        let check = start + Duration::from_secs(40);
        let a = db.find_producers(Category::Topic, "a", "");
        assert_eq!(
            ids(&filter_active(a, check, Duration::from_secs(300), SEC30)),
            vec!["2"]
        );
    }

    #[test]
    fn zero_lifetime_ignores_tombstones_but_earlier_now_does_not() {
        let now = Instant::now();
        let mut p = Producer::new(peer("1", 2, now));
        assert!(!p.is_tombstoned(now, SEC30));
        p.tombstoned_at = Some(now);
        assert!(p.is_tombstoned(now, SEC30));
        assert!(!p.is_tombstoned(now, Duration::ZERO));
        let later = now + Duration::from_secs(1);
        p.tombstoned_at = Some(later);
        assert!(p.is_tombstoned(now, Duration::ZERO));
    }

    #[test]
    fn tombstone_node_matches_broadcast_address_and_http_port() {
        let now = Instant::now();
        let (mut db, _) = sample(now);
        // p2 has http_port 3.
        assert_eq!(db.tombstone_node("b_addr:3", "a", now), 1);
        assert_eq!(db.tombstone_node("b_addr:4150", "a", now), 0);
        assert_eq!(db.tombstone_node("other:3", "a", now), 0);
        let a = db.find_producers(Category::Topic, "a", "");
        assert_eq!(ids(&filter_active(a, now, SEC30, SEC30)), vec!["1"]);
        // Only topic registrations are tombstoned, never the channel entry.
        let b = db.find_producers(Category::Channel, "a", "b");
        assert_eq!(filter_active(b, now, SEC30, SEC30).len(), 1);
    }

    #[test]
    fn wildcard_tombstone_marks_the_entries_a_wildcard_find_returns() {
        let now = Instant::now();
        let (mut db, _) = sample(now);
        // p1 is in `a` and `t`; only its first entry (`a`) is marked.
        assert_eq!(db.tombstone("1", "*", now), 1);
        let a = db.find_producers(Category::Topic, "a", "");
        assert_eq!(ids(&filter_active(a, now, SEC30, SEC30)), vec!["2"]);
        let t = db.find_producers(Category::Topic, "t", "");
        assert_eq!(filter_active(t, now, SEC30, SEC30).len(), 1);
        let all = db.find_producers(Category::Topic, "*", "");
        assert_eq!(ids(&filter_active(all, now, SEC30, SEC30)), vec!["2"]);
    }

    #[test]
    fn topics_and_channels() {
        let now = Instant::now();
        let (mut db, _) = sample(now);
        db.add_registration(Registration::channel("t", "c"));
        assert_eq!(db.topics(), vec!["a", "empty", "t"]);
        assert_eq!(db.channels("a"), vec!["b"]);
        assert!(db.channels("empty").is_empty());
        assert!(db.channels("unknown").is_empty());
        assert_eq!(db.channels("*"), vec!["b", "c"]);
    }

    #[test]
    fn lookup_reports_channels_and_live_producers() {
        let start = Instant::now();
        let (mut db, peers) = sample(start);
        assert!(db.lookup("nope", start, SEC30, SEC30).is_none());

        let empty = db.lookup("empty", start, SEC30, SEC30);
        let json = serde_json::to_string(&empty).unwrap();
        assert_eq!(json, r#"{"channels":[],"producers":[]}"#);

        db.tombstone("1", "a", start);
        let found = db.lookup("a", start, SEC30, SEC30).unwrap();
        assert_eq!(found.channels, vec!["b"]);
        assert_eq!(found.producers, vec![ProducerJson::from(&*peers[1])]);

        // Once everyone is inactive the topic is still found, with no producers.
        let late = start + Duration::from_secs(60);
        let found = db.lookup("a", late, SEC30, SEC30).unwrap();
        assert_eq!(found.channels, vec!["b"]);
        assert!(found.producers.is_empty());
    }

    #[test]
    fn producer_json_has_nsq_field_order() {
        let now = Instant::now();
        let p = PeerInfo {
            id: "10.0.0.5:52311".to_string(),
            remote_address: "10.0.0.5:52311".to_string(),
            hostname: "host1".to_string(),
            broadcast_address: "host1".to_string(),
            tcp_port: 4150,
            http_port: 4151,
            version: "1.3.0".to_string(),
            topology_zone: String::new(),
            topology_region: String::new(),
            last_update: LastUpdate::new(now),
        };
        let json = serde_json::to_string(&ProducerJson::from(&p)).unwrap();
        assert_eq!(
            json,
            r#"{"remote_address":"10.0.0.5:52311","hostname":"host1","broadcast_address":"host1","tcp_port":4150,"http_port":4151,"version":"1.3.0"}"#
        );
        assert_eq!(p.http_node(), "host1:4151");
        let node = Node::new(
            &p,
            vec![false, true],
            vec!["orders".into(), "clicks".into()],
        );
        assert_eq!(
            serde_json::to_string(&node).unwrap(),
            r#"{"remote_address":"10.0.0.5:52311","hostname":"host1","broadcast_address":"host1","tcp_port":4150,"http_port":4151,"version":"1.3.0","tombstones":[false,true],"topics":["orders","clicks"]}"#
        );
    }

    #[test]
    fn nodes_lists_active_clients_with_per_topic_tombstones() {
        let start = Instant::now();
        let (mut db, peers) = sample(start);
        db.tombstone("1", "t", start);
        let nodes = db.nodes(start, SEC30, SEC30);
        assert_eq!(nodes.len(), 3);
        // Tombstoned nodes are listed, flagged per topic.
        assert_eq!(nodes[0].remote_address, "1");
        assert_eq!(nodes[0].topics, vec!["a", "t"]);
        assert_eq!(nodes[0].tombstones, vec![false, true]);
        assert_eq!(nodes[1].topics, vec!["a"]);
        assert_eq!(nodes[1].tombstones, vec![false]);
        // A node with no topics gets empty arrays, not nulls.
        let json = serde_json::to_string(&nodes[2]).unwrap();
        assert!(json.ends_with(r#""tombstones":[],"topics":[]}"#), "{json}");
        // The tombstone flag expires with the lifetime.
        let expired = db.nodes(start + SEC30, Duration::from_secs(300), SEC30);
        assert_eq!(expired[0].tombstones, vec![false, false]);
        // Inactive nodes are left out.
        peers[1].last_update.set(start + Duration::from_secs(40));
        let nodes = db.nodes(start + Duration::from_secs(60), SEC30, SEC30);
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].remote_address, "2");
    }

    #[test]
    fn nodes_matches_topic_entries_by_peer_record_not_id() {
        let now = Instant::now();
        let mut db = RegistrationDb::new();
        let old = peer("1", 2, now);
        let new = peer("1", 2, now);
        db.add_producer(Registration::topic("a"), &old);
        db.tombstone("1", "a", now);
        // Same id, new record: the client entry points at `new`, the topic
        // entry at `old`, so no tombstone is attributed to the node.
        db.add_producer(Registration::client(), &new);
        let nodes = db.nodes(now, SEC30, SEC30);
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].topics, vec!["a"]);
        assert_eq!(nodes[0].tombstones, vec![false]);
    }

    #[test]
    fn iter_and_display_give_debug_keys() {
        let now = Instant::now();
        let (db, _) = sample(now);
        let keys: Vec<String> = db.iter().map(|(r, _)| r.to_string()).collect();
        assert_eq!(
            keys,
            vec![
                "client::",
                "topic:a:",
                "topic:empty:",
                "topic:t:",
                "channel:a:b"
            ]
        );
        let counts: Vec<usize> = db.iter().map(|(_, ps)| ps.count()).collect();
        assert_eq!(counts, vec![3, 2, 0, 1, 1]);
        let p = db.find_producers(Category::Topic, "t", "")[0];
        assert_eq!(p.to_string(), "b_addr [1, 2]");
    }
}
