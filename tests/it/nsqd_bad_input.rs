//! Hostile input: garbage, truncated frames, huge sizes, long lines and bad
//! JSON must never take nsqd down or disturb well-behaved clients.

use crate::support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;
use support::{consumer, Conn, Nsqd};

/// A small deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn send_and_close(nsqd: &Nsqd, bytes: &[u8]) {
    let mut s = TcpStream::connect(nsqd.tcp).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut sink);
}

#[test]
fn garbage_never_hurts_the_daemon() {
    let mut nsqd = Nsqd::start(&["--max-msg-size=1000", "--max-body-size=5000"]);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);

    // Random bytes, with and without a valid magic.
    for i in 0..150 {
        let len = (rng.next() % 600) as usize;
        let mut bytes = if i % 2 == 0 {
            b"  V2".to_vec()
        } else {
            Vec::new()
        };
        bytes.extend(rng.bytes(len));
        send_and_close(&nsqd, &bytes);
    }
    // Random command lines built from real command names.
    let names = [
        "PUB", "MPUB", "DPUB", "SUB", "RDY", "FIN", "REQ", "TOUCH", "IDENTIFY", "AUTH", "CLS",
        "NOP",
    ];
    for _ in 0..150 {
        let mut bytes = b"  V2".to_vec();
        for _ in 0..(rng.next() % 4 + 1) {
            bytes.extend_from_slice(names[(rng.next() % names.len() as u64) as usize].as_bytes());
            if rng.next().is_multiple_of(2) {
                bytes.extend_from_slice(b" t");
            }
            if rng.next().is_multiple_of(2) {
                bytes.extend_from_slice(b" 12");
            }
            bytes.push(b'\n');
            let extra = (rng.next() % 40) as usize;
            bytes.extend(rng.bytes(extra));
        }
        send_and_close(&nsqd, &bytes);
    }
    // Truncated bodies, huge sizes, negative sizes.
    for bytes in [
        &b"  V2PUB t\n\x00\x00\x00\x10abc"[..],
        b"  V2PUB t\n\x7f\xff\xff\xff",
        b"  V2PUB t\n\xff\xff\xff\xff",
        b"  V2MPUB t\n\x7f\xff\xff\xff",
        b"  V2MPUB t\n\x00\x00\x00\x20\x7f\xff\xff\xff",
        b"  V2MPUB t\n\x00\x00\x00\x20\x00\x00\x00\x02\x00\x00\x00\x01a",
        b"  V2IDENTIFY\n\x7f\xff\xff\xff",
        b"  V2IDENTIFY\n\x00\x00\x00\x04[1,",
        b"  V2IDENTIFY\n\x00\x00\x00\x04null",
        b"  V2IDENTIFY\n\x00\x00\x00\x10{\"msg_timeout\":1",
        b"  V2AUTH x\n",
        b"  V2DPUB t 99999999999999999999999\n",
        b"  V2RDY 99999999999999999999999\n",
        b"  V",
    ] {
        send_and_close(&nsqd, bytes);
    }
    // A line longer than 16 KiB without a newline: closed with no error frame.
    let mut c = nsqd.connect();
    c.send_raw(&vec![b'A'; 20_000]);
    assert_eq!(c.expect_closed(), vec![]);
    // A huge length prefix is refused without waiting for the body.
    let mut c = nsqd.connect();
    c.send_raw(b"PUB t\n\x7f\xff\xff\xff");
    c.expect_error("E_BAD_MESSAGE PUB message too big 2147483647 > 1000");
    // A connection that sends nothing at all does not block others.
    let _idle = TcpStream::connect(nsqd.tcp).unwrap();

    // Everything still works for a well-behaved client.
    let mut sub = consumer(&nsqd, "after", "c", 10);
    let mut p = Conn::connect(nsqd.tcp);
    p.publish("after", b"still fine");
    assert_eq!(sub.expect_message().body.as_ref(), b"still fine");
    assert_eq!(nsqd.http("GET", "/ping", b"").text(), "OK");
    assert!(nsqd.is_running());
    assert!(!nsqd.log_text().contains("panicked"), "{}", nsqd.log_text());
    // Shutdown does not wait on connections that never sent their magic.
    let stopping = std::time::Instant::now();
    assert!(nsqd.stop().success());
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopping.elapsed()
    );
}

/// A fatal error with the client's next commands still unread: nsqd ends
/// the connection with a FIN after the error frame, not a reset (which
/// makes the client's kernel drop answers it has not read yet).
#[test]
fn a_fatal_error_ends_the_connection_without_a_reset() {
    let nsqd = Nsqd::start(&[]);
    let mut s = TcpStream::connect(nsqd.tcp).unwrap();
    let mut wire = b"  V2PUB bad!topic\n\x00\x00\x00\x01x".to_vec();
    wire.extend(b"NOP\n".repeat(50_000));
    s.write_all(&wire).unwrap();
    s.set_read_timeout(Some(support::DEADLINE)).unwrap();
    let mut got = Vec::new();
    let end = std::io::Read::read_to_end(&mut s, &mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("E_BAD_TOPIC PUB topic name \"bad!topic\" is not valid"),
        "{text}"
    );
    assert!(end.is_ok(), "{end:?} after {text}");
}
