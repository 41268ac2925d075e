//! NSQ in Rust: a wire-compatible implementation of NSQ v1.3's daemons and tools.
//!
//! * [`protocol`]: the TCP wire format, no I/O, shared by server and client;
//! * [`nsqd`]: the queue engine (topics, channels, queues) and its TCP/HTTP servers;
//! * [`lookupd`]: nsqlookupd's registration database (who produces which topic and channel);
//! * [`admin`]: nsqadmin, the web UI and JSON API over a cluster;
//! * [`client`]: producer and consumer used by the tools, the benchmark and tests;
//! * [`cli`]: flag helpers shared by the binaries (Go-style flags, durations).

pub mod admin;
pub mod bench;
pub mod cli;
pub mod client;
pub mod compress;
pub(crate) mod diskqueue;
#[doc(hidden)]
pub mod fuzzing;
pub mod http_api;
pub mod http_server;
pub mod listen;
pub mod logging;
pub mod lookupd;
pub mod nsqd;
pub mod pem;
pub mod protocol;
pub mod signals;
pub mod sys;
pub mod tools;
pub(crate) mod x509;
