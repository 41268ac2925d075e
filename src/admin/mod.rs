//! nsqadmin: a web UI and NSQ's JSON API over an NSQ cluster.
//!
//! * [`options`]: the flags, parsed once into typed values;
//! * [`types`]: what nsqd and nsqlookupd answer, read tolerantly, and what
//!   the API answers, in NSQ's shapes;
//! * [`aggregate`]: per-node answers summed up (pure functions);
//! * [`cluster`]: the HTTP questions and actions sent to the cluster;
//! * [`history`]: nsqadmin's own samples of the cluster, for live pages,
//!   charts and warnings;
//! * [`notify`]: admin actions POSTed to `--notification-http-endpoint`;
//! * [`http`]: the routes; [`assets`]: the web UI, built into the binary;
//! * [`server`]: start, serve, stop.

pub mod aggregate;
pub mod assets;
pub mod cluster;
pub mod history;
pub mod http;
pub mod notify;
pub mod options;
pub mod server;
pub mod types;

pub use options::Options;
