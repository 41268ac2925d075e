//! nsqd: the queue engine and its servers.
//!
//! * [`engine::Nsqd`] owns the topics; [`topic::Topic`] fans messages out to
//!   its [`channel::Channel`]s; both store messages in a [`backend::Queue`]
//!   (memory up to `--mem-queue-size`, then a [`backend::Backend`]) made by
//!   [`queues::QueueFactory`]; what a queue holds in memory is a compact
//!   [`cache::MessageCache`], sharing one copy of each publish's bodies
//!   among a topic's channels.
//! * [`operations`]: what clients do (publish, wait for durability,
//!   subscribe, leave), shared by both protocols; [`settings`]: the flags,
//!   typed once.
//! * [`tcp`] speaks protocol V2 to clients, [`http`] serves the HTTP API,
//!   [`stats`] renders the counters, [`server`] ties them together.
//!
//! Lock order, to keep it deadlock-free: the engine's topic map, then a
//! topic's state, then a channel's state, then a client's outbox. No lock
//! is held across an `.await`, and disk syncs (fsync) run outside all of
//! them (see `diskqueue::SyncJob`).

pub(crate) mod auth;
pub(crate) mod backend;
pub(crate) mod cache;
pub(crate) mod channel;
pub(crate) mod client_state;
pub(crate) mod config;
pub(crate) mod engine;
pub(crate) mod http;
pub(crate) mod https;
pub(crate) mod latency;
pub(crate) mod locked;
pub(crate) mod lookup;
pub(crate) mod metadata;
pub(crate) mod metrics;
pub(crate) mod operations;
pub mod options;
pub(crate) mod queues;
pub mod server;
pub(crate) mod settings;
pub(crate) mod stats;
pub(crate) mod statsd;
pub(crate) mod tcp;
pub(crate) mod timers;
pub(crate) mod tls;
pub(crate) mod topic;

pub use engine::Nsqd;
pub use options::Options;
