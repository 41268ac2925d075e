//! `--auth-required=http,https`: the HTTP API behind the auth server
//! (beyond NSQ, whose HTTP API is open to anyone who reaches it).

use crate::support;

use serde_json::json;
use std::collections::HashMap;
use support::auth_server::AuthServer;
use support::{http_request_with, https_request, run_binary, wait_until, HttpResponse, Nsqd, Pki};

/// Who may do what: a publisher and a reader of `orders`, an
/// administrator of everything, one of `orders` only, someone with no
/// grants, and a publisher whose answer lasts one second.
fn auth_server() -> AuthServer {
    let grant = |topic: &str, channels: &[&str], permissions: &[&str]| json!({"topic": topic, "channels": channels, "permissions": permissions});
    let answers: HashMap<String, (u16, serde_json::Value)> = [
        (
            "publisher",
            json!({"ttl": 3600, "identity": "pub", "authorizations": [grant("^orders$", &[".*"], &["publish"])]}),
        ),
        (
            "reader",
            json!({"ttl": 3600, "authorizations": [grant("^orders$", &["^billing$"], &["subscribe"])]}),
        ),
        (
            "admin",
            json!({"ttl": 3600, "authorizations": [grant(".*", &[".*"], &["admin", "publish", "subscribe"])]}),
        ),
        (
            "orders-admin",
            json!({"ttl": 3600, "authorizations": [grant("^orders$", &[".*"], &["admin"])]}),
        ),
        ("nobody", json!({"ttl": 3600, "authorizations": []})),
        (
            "brief",
            json!({"ttl": 1, "authorizations": [grant("^orders$", &[".*"], &["publish"])]}),
        ),
    ]
    .into_iter()
    .map(|(s, a)| (s.to_string(), (200, a)))
    .collect();
    AuthServer::start(answers)
}

fn request(
    nsqd: &Nsqd,
    secret: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
) -> HttpResponse {
    let bearer = secret.map(|s| format!("Bearer {s}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    http_request_with(nsqd.http, method, path, &headers, body)
}

fn assert_error(r: &HttpResponse, status: u16, message: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.text(), format!("{{\"message\":\"{message}\"}}"));
    assert_eq!(r.header("x-nsq-content-type"), Some("nsq; version=1.0"));
}

fn topic_names(stats: &serde_json::Value) -> Vec<String> {
    stats["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic_name"].as_str().unwrap().to_string())
        .collect()
}

fn channel_names(stats: &serde_json::Value, topic: &str) -> Vec<String> {
    stats["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic_name"] == topic)
        .map(|t| {
            t["channels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["channel_name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_request_but_ping_needs_an_approved_secret() {
    let auth = auth_server();
    let nsqd = Nsqd::start(&[
        &format!("--auth-http-address={}", auth.addr),
        "--auth-required=http",
    ]);
    let r = request(&nsqd, None, "GET", "/ping", b"");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));

    let r = request(&nsqd, None, "POST", "/pub?topic=orders", b"m");
    assert_error(&r, 401, "AUTH_REQUIRED");
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"nsqd\""));
    let basic = [("Authorization", "Basic YTpi")];
    let r = http_request_with(nsqd.http, "GET", "/info", &basic, b"");
    assert_error(&r, 401, "AUTH_REQUIRED");
    assert_error(
        &request(&nsqd, Some("stranger"), "GET", "/info", b""),
        401,
        "AUTH_FAILED",
    );
    assert_error(
        &request(&nsqd, Some("nobody"), "GET", "/info", b""),
        403,
        "UNAUTHORIZED",
    );
    // Unknown paths and wrong methods are answered as ever.
    assert_error(&request(&nsqd, None, "GET", "/nope", b""), 404, "NOT_FOUND");
    assert_error(
        &request(&nsqd, None, "GET", "/pub", b""),
        405,
        "METHOD_NOT_ALLOWED",
    );

    // publish: /pub and /mpub on its topic, nothing else.
    let r = request(
        &nsqd,
        Some("publisher"),
        "POST",
        "/pub?topic=orders",
        b"one",
    );
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    let r = request(
        &nsqd,
        Some("publisher"),
        "POST",
        "/mpub?topic=orders",
        b"two\nthree",
    );
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    for path in ["/pub?topic=payroll", "/mpub?topic=payroll"] {
        assert_error(
            &request(&nsqd, Some("publisher"), "POST", path, b"x"),
            403,
            "UNAUTHORIZED",
        );
    }
    for path in [
        "/topic/create?topic=orders",
        "/topic/pause?topic=orders",
        "/topic/empty?topic=orders",
        "/topic/delete?topic=orders",
        "/channel/create?topic=orders&channel=billing",
    ] {
        assert_error(
            &request(&nsqd, Some("publisher"), "POST", path, b""),
            403,
            "UNAUTHORIZED",
        );
    }
    // Argument errors come before the permission check, as NSQ's order.
    assert_error(
        &request(&nsqd, Some("publisher"), "POST", "/pub", b"x"),
        400,
        "MISSING_ARG_TOPIC",
    );

    // admin: create, pause, empty, delete.
    for path in [
        "/topic/create?topic=payroll",
        "/channel/create?topic=orders&channel=billing",
        "/channel/create?topic=orders&channel=audit",
        "/channel/pause?topic=orders&channel=audit",
        "/channel/unpause?topic=orders&channel=audit",
        "/channel/empty?topic=orders&channel=audit",
        "/topic/pause?topic=payroll",
        "/topic/unpause?topic=payroll",
    ] {
        let r = request(&nsqd, Some("admin"), "POST", path, b"");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    assert_error(
        &request(
            &nsqd,
            Some("admin"),
            "POST",
            "/topic/delete?topic=absent",
            b"",
        ),
        404,
        "TOPIC_NOT_FOUND",
    );
    let r = request(
        &nsqd,
        Some("publisher"),
        "POST",
        "/pub?topic=orders",
        b"four",
    );
    assert_eq!(r.status, 200);

    // subscribe: /stats and /metrics show only what may be read.
    let all = request(&nsqd, Some("admin"), "GET", "/stats?format=json", b"").json();
    assert_eq!(topic_names(&all), vec!["orders", "payroll"]);
    assert_eq!(channel_names(&all, "orders"), vec!["audit", "billing"]);
    let mine = request(&nsqd, Some("reader"), "GET", "/stats?format=json", b"").json();
    assert_eq!(topic_names(&mine), vec!["orders"]);
    assert_eq!(channel_names(&mine, "orders"), vec!["billing"]);
    assert_eq!(mine["topics"][0]["channels"][0]["depth"], 4);
    assert!(mine["producers"].is_null(), "{mine}");
    let text = request(&nsqd, Some("reader"), "GET", "/stats", b"").text();
    assert!(
        text.contains("billing") && !text.contains("audit"),
        "{text}"
    );
    let metrics = request(&nsqd, Some("reader"), "GET", "/metrics", b"").text();
    assert!(
        metrics.contains("billing") && !metrics.contains("audit") && !metrics.contains("payroll")
    );
    let r = request(&nsqd, Some("reader"), "GET", "/info", b"");
    assert_eq!(r.status, 200);
    assert_error(
        &request(
            &nsqd,
            Some("reader"),
            "POST",
            "/channel/empty?topic=orders&channel=billing",
            b"",
        ),
        403,
        "UNAUTHORIZED",
    );
    // The publisher sees the topic it publishes to, not its channels.
    let theirs = request(&nsqd, Some("publisher"), "GET", "/stats?format=json", b"").json();
    assert_eq!(topic_names(&theirs), vec!["orders"]);
    assert!(channel_names(&theirs, "orders").is_empty());

    // One question per secret and client while its answer lasts.
    assert_eq!(auth.count("publisher"), 1);
    assert_eq!(auth.count("admin"), 1);
    // And again once it expired.
    let r = request(&nsqd, Some("brief"), "POST", "/pub?topic=orders", b"b");
    assert_eq!(r.status, 200);
    wait_until("the expired answer asked again", || {
        let r = request(&nsqd, Some("brief"), "POST", "/pub?topic=orders", b"b");
        assert_eq!(r.status, 200);
        auth.count("brief") >= 2
    });
    let requests = auth.requests.lock().unwrap().join("\n");
    assert!(
        requests.contains("GET /auth?common_name=&remote_ip=127.0.0.1&secret=publisher&tls=false"),
        "{requests}"
    );

    // TCP is unchanged: AUTH first, and an answer with `admin` is fine.
    let mut c = nsqd.connect();
    c.identify(json!({"feature_negotiation": true}));
    c.send(&nsq::protocol::Command::Auth(bytes::Bytes::from_static(
        b"admin",
    )));
    assert!(matches!(c.frame(), nsq::protocol::Frame::Response(_)));
    c.publish("orders", b"by tcp");
}

/// `/channel/peek` reads messages (`subscribe` or `admin`); `/channel/config`
/// is `admin`, and naming a dead-letter topic also needs `publish` there.
#[test]
fn peek_and_channel_config_need_their_grants() {
    let auth = auth_server();
    let nsqd = Nsqd::start(&[
        &format!("--auth-http-address={}", auth.addr),
        "--auth-required=http",
    ]);
    for path in [
        "/topic/create?topic=orders",
        "/channel/create?topic=orders&channel=billing",
        "/channel/create?topic=orders&channel=audit",
        "/pub?topic=orders",
    ] {
        let r = request(&nsqd, Some("admin"), "POST", path, b"peeked");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let peek = |secret, channel| {
        let path = format!("/channel/peek?topic=orders&channel={channel}");
        request(&nsqd, Some(secret), "GET", &path, b"")
    };
    let r = peek("reader", "billing");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["messages"][0]["body"], "peeked");
    assert_error(&peek("reader", "audit"), 403, "UNAUTHORIZED");
    assert_error(&peek("publisher", "billing"), 403, "UNAUTHORIZED");
    assert_eq!(peek("orders-admin", "audit").status, 200);

    let config = |secret, query: &str| {
        let path = format!("/channel/config?topic=orders&channel=billing&{query}");
        request(&nsqd, Some(secret), "POST", &path, b"")
    };
    assert_error(&config("reader", "max_attempts=3"), 403, "UNAUTHORIZED");
    // Argument errors first.
    assert_error(
        &config("reader", "max_attempts=x"),
        400,
        "INVALID_MAX_ATTEMPTS",
    );
    assert_eq!(config("orders-admin", "max_attempts=3").status, 200);
    assert_eq!(
        config("orders-admin", "dead_letter_topic=default").status,
        200
    );
    assert_error(
        &config("orders-admin", "dead_letter_topic=graveyard"),
        403,
        "UNAUTHORIZED",
    );
    assert_eq!(config("admin", "dead_letter_topic=graveyard").status, 200);
    let stats = request(&nsqd, Some("admin"), "GET", "/stats?format=json", b"").json();
    let billing = &stats["topics"][0]["channels"][1];
    assert_eq!(billing["channel_name"], "billing");
    assert_eq!(billing["dead_letter_topic"], "graveyard", "{billing}");
}

/// `--auth-required=https`: plain HTTP stays open (as NSQ's), HTTPS needs
/// a secret, and the auth server hears `tls=true` and the client
/// certificate's common name.
#[test]
fn https_only_with_the_certificate_name() {
    let auth = auth_server();
    let pki = Pki::new();
    let mut args = pki.flags();
    args.push(format!("--auth-http-address={}", auth.addr));
    args.push("--auth-required=https".into());
    args.push("--tls-client-auth-policy=require-verify".into());
    args.push(format!("--tls-root-ca-file={}", pki.path("ca.pem")));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let nsqd = Nsqd::start(&refs);
    let r = request(&nsqd, None, "POST", "/pub?topic=orders", b"plain");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));

    let https = nsqd.https();
    let config = pki.client_config(true);
    let r = https_request(
        https,
        config.clone(),
        "POST",
        "/pub?topic=orders",
        &[],
        b"m",
    );
    assert_error(&r, 401, "AUTH_REQUIRED");
    let bearer = [("Authorization", "Bearer publisher")];
    let r = https_request(https, config, "POST", "/pub?topic=orders", &bearer, b"m");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    let requests = auth.requests.lock().unwrap().join("\n");
    assert!(
        requests.contains(
            "GET /auth?common_name=test-client&remote_ip=127.0.0.1&secret=publisher&tls=true"
        ),
        "{requests}"
    );
}

/// Without `--auth-required`, HTTP is open even with an auth server, as
/// in NSQ.
#[test]
fn off_by_default() {
    let auth = auth_server();
    let nsqd = Nsqd::start(&[&format!("--auth-http-address={}", auth.addr)]);
    let r = request(&nsqd, None, "POST", "/pub?topic=anything", b"m");
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    let r = request(&nsqd, None, "POST", "/topic/delete?topic=anything", b"");
    assert_eq!(r.status, 200);
    assert_eq!(auth.requests.lock().unwrap().len(), 0);
}

#[test]
fn bad_auth_required_values_are_usage_errors() {
    let nsqd = env!("CARGO_BIN_EXE_nsqd");
    let (code, _, err) = run_binary(nsqd, &["--auth-required=http"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--auth-required needs --auth-http-address"),
        "{err}"
    );
    let (code, _, err) = run_binary(
        nsqd,
        &[
            "--auth-http-address=127.0.0.1:1",
            "--auth-required=http,ftp",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not \"ftp\""), "{err}");
}

/// `/config/:opt` changes the whole daemon: it needs an admin grant for
/// every topic and channel (`.*`); an admin of one topic is refused.
#[test]
fn runtime_config_needs_an_admin_of_everything() {
    let auth = auth_server();
    let nsqd = Nsqd::start(&[
        &format!("--auth-http-address={}", auth.addr),
        "--auth-required=http",
    ]);
    assert_error(
        &request(&nsqd, None, "GET", "/config/log_level", b""),
        401,
        "AUTH_REQUIRED",
    );
    for secret in ["orders-admin", "publisher", "nobody"] {
        let r = request(&nsqd, Some(secret), "PUT", "/config/log_level", b"debug");
        assert_error(&r, 403, "UNAUTHORIZED");
        let r = request(&nsqd, Some(secret), "GET", "/config/log_level", b"");
        assert_error(&r, 403, "UNAUTHORIZED");
    }
    let r = request(&nsqd, Some("admin"), "PUT", "/config/log_level", b"debug");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = request(&nsqd, Some("admin"), "GET", "/config/log_level", b"");
    assert_eq!((r.status, r.text()), (200, "1".to_string()));
}
