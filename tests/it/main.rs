//! The end-to-end and property tests, as one test binary.
//!
//! One binary links the crate once instead of once per file, which is most
//! of a fresh build's time. Each module is one area; `support` starts the
//! real binaries on port 0 and talks to them over real sockets.

mod support;

mod admin;
mod admin_browser;
mod auth;
mod bench_cli;
mod client;
mod compression;
mod dead_letters;
mod discovery;
mod fair_delivery;
mod http_auth;
mod http_limits;
mod idle_timers;
mod interop_tokio_nsq;
mod listeners;
mod lookupd_protocol;
mod man_pages;
mod memory_queues;
mod nsqd_bad_input;
mod nsqd_cli;
mod nsqd_durability;
mod nsqd_http;
mod nsqd_tcp;
mod operators;
mod protocol_props;
mod relay_tools;
mod released_shapes;
mod runtime_config;
mod stalled_clients;
mod tls;
mod tools;
mod unix_sockets;
