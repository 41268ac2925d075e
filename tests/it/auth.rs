//! AUTH against a small auth server run by the test: allowed, denied, no
//! grants, expired TTL (renewed), server down, and the POST method.

use crate::support;

use bytes::Bytes;
use nsq::protocol::{Command, Frame};
use serde_json::json;
use support::auth_server::AuthServer;
use support::{wait_until, Nsqd};

/// The auth server of these tests: alice may publish and subscribe on
/// `orders` for an hour, short for a second, nobody has no grants, and
/// anyone else is refused.
fn auth_server() -> AuthServer {
    let grants =
        json!([{"topic": "^orders$", "channels": [".*"], "permissions": ["subscribe", "publish"]}]);
    let answers = [
        (
            "alice",
            json!({"ttl": 3600, "identity": "alice", "identity_url": "https://id/alice", "authorizations": grants}),
        ),
        (
            "short",
            json!({"ttl": 1, "identity": "short", "authorizations": grants}),
        ),
        ("nobody", json!({"ttl": 60, "authorizations": []})),
    ];
    AuthServer::start(
        answers
            .into_iter()
            .map(|(s, a)| (s.to_string(), (200, a)))
            .collect(),
    )
}

fn nsqd_with(auth: &AuthServer, extra: &[&str]) -> Nsqd {
    let flag = format!("--auth-http-address={}", auth.addr);
    let mut args = vec![flag.as_str()];
    args.extend_from_slice(extra);
    Nsqd::start(&args)
}

fn authed(nsqd: &Nsqd, secret: &str) -> (support::Conn, Frame) {
    let mut c = nsqd.connect();
    let Frame::Response(json) = c.identify(json!({"feature_negotiation": true})) else {
        panic!()
    };
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["auth_required"], true);
    c.send(&Command::Auth(Bytes::from(secret.to_string())));
    let answer = c.frame();
    (c, answer)
}

fn pub_cmd(topic: &str) -> Command {
    Command::Pub {
        topic: topic.into(),
        body: Bytes::from_static(b"m"),
    }
}

#[test]
fn allowed_denied_and_first() {
    let auth = auth_server();
    let nsqd = nsqd_with(&auth, &[]);
    // Nothing before AUTH.
    let mut c = nsqd.connect();
    c.identify(json!({"feature_negotiation": true}));
    c.send(&pub_cmd("orders"));
    c.expect_error("E_AUTH_FIRST AUTH required before PUB");
    c.expect_closed();

    let (mut c, answer) = authed(&nsqd, "alice");
    assert_eq!(
        answer,
        Frame::Response(Bytes::from(
            json!({"identity": "alice", "identity_url": "https://id/alice", "permission_count": 1})
                .to_string()
        ))
    );
    c.publish("orders", b"allowed");
    c.send(&Command::Auth(Bytes::from_static(b"alice")));
    c.expect_error("E_INVALID AUTH already set");

    let (mut c, _) = authed(&nsqd, "alice");
    c.send(&pub_cmd("payroll"));
    c.expect_error(r#"E_UNAUTHORIZED AUTH failed for PUB on "payroll" """#);

    let (mut c, _) = authed(&nsqd, "alice");
    c.subscribe("orders", "billing");
    // /stats shows who the consumer is.
    let client = &nsqd.channel_stats("orders", "billing").unwrap()["clients"][0];
    assert_eq!(
        (
            &client["authed"],
            &client["auth_identity"],
            &client["auth_identity_url"]
        ),
        (&json!(true), &json!("alice"), &json!("https://id/alice"))
    );
    // The auth server heard the secret, the client's IP and "tls=false".
    let requests = auth.requests.lock().unwrap().join("\n");
    assert!(
        requests.contains("GET /auth?common_name=&remote_ip=127.0.0.1&secret=alice&tls=false"),
        "{requests}"
    );
}

#[test]
fn no_grants_bad_secret_and_server_down() {
    let auth = auth_server();
    let nsqd = nsqd_with(&auth, &[]);
    let (_, answer) = authed(&nsqd, "nobody");
    assert_eq!(
        answer,
        Frame::Error(Bytes::from_static(
            b"E_UNAUTHORIZED AUTH no authorizations found"
        ))
    );
    let (_, answer) = authed(&nsqd, "mallory");
    assert_eq!(
        answer,
        Frame::Error(Bytes::from_static(b"E_AUTH_FAILED AUTH failed"))
    );

    let (_held, nobody) = support::refused_addr();
    let nsqd = Nsqd::start(&[&format!("--auth-http-address={nobody}")]);
    let (_, answer) = authed(&nsqd, "alice");
    assert_eq!(
        answer,
        Frame::Error(Bytes::from_static(b"E_AUTH_FAILED AUTH failed"))
    );
    assert_eq!(nsqd.http("GET", "/ping", b"").text(), "OK");
}

#[test]
fn expired_authorization_is_renewed() {
    let auth = auth_server();
    let nsqd = nsqd_with(&auth, &[]);
    let (mut c, _) = authed(&nsqd, "short");
    c.publish("orders", b"first");
    assert_eq!(auth.count("short"), 1);
    // After the 1 s TTL, the next command asks the auth server again.
    wait_until("a renewed authorization", || {
        c.publish("orders", b"again");
        auth.count("short") >= 2
    });
}

#[test]
fn post_method_sends_arrays() {
    let auth = auth_server();
    let nsqd = nsqd_with(&auth, &["--auth-http-request-method=post"]);
    let (_, answer) = authed(&nsqd, "alice");
    assert!(matches!(answer, Frame::Response(_)), "{answer:?}");
    let requests = auth.requests.lock().unwrap().join("\n");
    assert!(requests.starts_with("POST /auth"), "{requests}");
    let body = requests.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        v,
        json!({"common_name": [""], "remote_ip": ["127.0.0.1"], "secret": ["alice"], "tls": ["false"]})
    );
}

#[test]
fn auth_disabled_without_a_server() {
    let nsqd = Nsqd::start(&[]);
    let mut c = nsqd.connect();
    c.send(&Command::Auth(Bytes::from_static(b"x")));
    c.expect_error("E_AUTH_DISABLED AUTH disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_authenticates() {
    use tokio_nsq::{NSQConfigShared, NSQEvent, NSQProducerConfig, NSQTopic};
    let auth = auth_server();
    let nsqd = nsqd_with(&auth, &[]);
    let shared = NSQConfigShared::new().set_credentials(b"alice".to_vec());
    let mut producer = NSQProducerConfig::new(nsqd.tcp.to_string())
        .set_shared(shared)
        .build();
    let healthy = tokio::time::timeout(std::time::Duration::from_secs(10), producer.consume())
        .await
        .unwrap();
    assert!(matches!(healthy, Some(NSQEvent::Healthy())), "{healthy:?}");
    producer
        .publish(&NSQTopic::new("orders").unwrap(), b"by alice".to_vec())
        .await
        .unwrap();
    let ack = tokio::time::timeout(std::time::Duration::from_secs(10), producer.consume())
        .await
        .unwrap();
    assert!(matches!(ack, Some(NSQEvent::Ok())), "{ack:?}");
    assert_eq!(auth.count("alice"), 1);
    drop(nsqd);
}

/// Over TLS with a client certificate, the auth server is told its
/// subject's common name (`test-client`, see `Pki`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_sends_the_client_certificate_common_name() {
    let auth = auth_server();
    let pki = support::Pki::new();
    let mut args = pki.flags();
    args.push(format!("--auth-http-address={}", auth.addr));
    args.push("--tls-client-auth-policy=require-verify".into());
    args.push(format!("--tls-root-ca-file={}", pki.path("ca.pem")));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let nsqd = Nsqd::start(&refs);
    let mut tls = crate::tls::tls_client(&nsqd, pki.client_config(true))
        .await
        .unwrap();
    crate::tls::send(&mut tls, &Command::Auth(Bytes::from_static(b"alice"))).await;
    let mut buf = bytes::BytesMut::new();
    let answer = crate::tls::frame(&mut tls, &mut buf).await;
    assert!(matches!(answer, Frame::Response(_)), "{answer:?}");
    let requests = auth.requests.lock().unwrap().join("\n");
    assert!(
        requests.contains(
            "GET /auth?common_name=test-client&remote_ip=127.0.0.1&secret=alice&tls=true"
        ),
        "{requests}"
    );
    drop(nsqd);
}

/// On a unix socket a client has no IP: nsqd sends an empty `remote_ip`,
/// as NSQ's does.
#[test]
fn auth_over_a_unix_socket_sends_no_remote_ip() {
    let auth = auth_server();
    let data = tempfile::tempdir().unwrap();
    let socket = data.path().join("nsqd.sock");
    let (mut child, _, _, _) = support::spawn_daemon_anywhere(
        env!("CARGO_BIN_EXE_nsqd"),
        &[
            format!("--tcp-address={}", socket.display()),
            "--http-address=127.0.0.1:0".into(),
            format!("--data-path={}", data.path().display()),
            format!("--auth-http-address={}", auth.addr),
        ],
    );
    let outcome = std::panic::catch_unwind(|| {
        let mut c = crate::unix_sockets::V2::connect(&socket);
        c.send(Command::Identify(Bytes::from_static(b"{}")));
        let answer = c.send(Command::Auth(Bytes::from_static(b"alice")));
        assert!(matches!(answer, Frame::Response(_)), "{answer:?}");
        let requests = auth.requests.lock().unwrap().join("\n");
        assert!(
            requests.contains("GET /auth?common_name=&remote_ip=&secret=alice&tls=false"),
            "{requests}"
        );
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
}
