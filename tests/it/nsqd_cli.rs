//! nsqd's command line: version, usage errors, bind failures, config files.

use crate::support;

use support::Nsqd;

fn nsqd(args: &[&str]) -> (i32, String, String) {
    support::run_binary(env!("CARGO_BIN_EXE_nsqd"), args)
}

#[test]
fn version_and_help() {
    let (code, out, _) = nsqd(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("nsqd v1.3.0"), "{out}");
    let (code, out, _) = nsqd(&["--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--tcp-address",
        "--mem-queue-size",
        "--max-rdy-count",
        "--msg-timeout",
        "--config",
    ] {
        assert!(out.contains(flag), "help lacks {flag}");
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["--no-such-flag"][..],
        &["--msg-timeout=10"],
        &["--node-id=5000"],
        &["--log-level=loud"],
        &["--max-deflate-level=0"],
    ] {
        let (code, _, err) = nsqd(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("error:"), "{args:?}: {err}");
    }
}

#[test]
fn busy_port_fails_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("--tcp-address={}", taken.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = nsqd(&[
        &addr,
        "--http-address=127.0.0.1:0",
        &format!("--data-path={}", dir.path().display()),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("failed to listen on"), "{err}");
}

#[test]
fn config_file_applies_and_flags_override() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nsqd.toml");
    std::fs::write(&path, "max_rdy_count = 7\nmax_msg_size = 3\n").unwrap();
    let cfg = format!("--config={}", path.display());
    let nsqd = Nsqd::start(&[&cfg, "-max-msg-size=5"]);
    let mut c = nsqd.connect();
    let nsq::protocol::Frame::Response(data) =
        c.identify(serde_json::json!({"feature_negotiation": true}))
    else {
        panic!()
    };
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(v["max_rdy_count"], 7);
    c.send_raw(b"PUB t\n\x00\x00\x00\x06");
    c.expect_error("E_BAD_MESSAGE PUB message too big 6 > 5");
}
