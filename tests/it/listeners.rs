//! Listeners queue a storm of connections instead of dropping them: their
//! accept backlog is the system's maximum, as NSQ's are, not 128.

use crate::support::{self, Lookupd, Nsqd};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// With the daemon stopped (SIGSTOP), nothing is accepted: every
/// connection that completes its handshake is waiting in the backlog.
/// A backlog of 128 lets about 129 through and drops the rest.
fn backlog_holds(pid: u32, addrs: &[SocketAddr], n: usize) {
    support::signal(pid, "STOP");
    let mut held = Vec::new();
    let outcome = (|| {
        for &addr in addrs {
            for i in 0..n {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                    Ok(s) => held.push(s),
                    Err(e) => return Err(format!("{addr}: connection {i} of {n} failed: {e}")),
                }
            }
        }
        Ok(())
    })();
    support::signal(pid, "CONT");
    drop(held);
    if let Err(e) = outcome {
        panic!("backlog too small: {e}");
    }
}

#[test]
fn nsqd_listeners_queue_a_connection_storm() {
    let nsqd = Nsqd::start(&[]);
    backlog_holds(nsqd.pid(), &[nsqd.tcp, nsqd.http], 300);
    // Still serving afterwards.
    nsqd.connect().publish("after", b"storm");
}

#[test]
fn nsqlookupd_listeners_queue_a_connection_storm() {
    let lookupd = Lookupd::start(&[]);
    backlog_holds(lookupd.daemon.child.id(), &[lookupd.tcp, lookupd.http], 300);
    let r = support::http_request(lookupd.http, "GET", "/ping", b"");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
}
