//! `GET`/`PUT /config/:opt` on nsqd, as NSQ answers them: the values, the
//! errors, and what a change does at once (the nsqlookupds nsqd registers
//! with, the log level).

use crate::support::{wait_until, HttpResponse, Lookupd, Nsqd};

fn nsq_json(r: &HttpResponse) {
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("x-nsq-content-type"), Some("nsq; version=1.0"));
}

fn error(r: &HttpResponse, status: u16, message: &str) {
    assert_eq!(
        (r.status, r.text()),
        (status, format!(r#"{{"message":"{message}"}}"#))
    );
    nsq_json(r);
}

#[test]
fn values_as_nsq_answers_them() {
    let nsqd = Nsqd::start(&[
        "--lookupd-tcp-address=127.0.0.1:1",
        "--broadcast-address=node.example",
        "--msg-timeout=2s",
    ]);
    let get = |opt: &str| nsqd.http("GET", &format!("/config/{opt}"), b"");

    let r = get("nsqlookupd_tcp_addresses");
    assert_eq!((r.status, r.text()), (200, r#"["127.0.0.1:1"]"#.into()));
    nsq_json(&r);
    assert_eq!(get("log_level").text(), "2");
    assert_eq!(get("msg_timeout").text(), "2000000000");
    assert_eq!(get("snappy").text(), "true");
    assert_eq!(get("auth_http_addresses").text(), "[]");
    assert_eq!(
        get("broadcast_http_port").text(),
        nsqd.http.port().to_string(),
        "the port bound, as NSQ fills it in"
    );
    // Strings are plain text, not JSON.
    let r = get("broadcast_address");
    assert_eq!((r.status, r.text()), (200, "node.example".into()));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("x-nsq-content-type"), Some("nsq; version=1.0"));

    // An empty string is an empty body, with no content type (Go sniffs
    // none).
    let r = get("tls_cert");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-type"), None);

    // Only config-file names of flags.
    error(&get("lookupd_tcp_address"), 400, "INVALID_OPTION");
    error(&get("client_timeout"), 400, "INVALID_OPTION");
    // Routing: one segment, GET or PUT.
    error(
        &nsqd.http("POST", "/config/log_level", b"debug"),
        405,
        "METHOD_NOT_ALLOWED",
    );
    error(&nsqd.http("GET", "/config/", b""), 404, "NOT_FOUND");
    error(&nsqd.http("GET", "/config/a/b", b""), 404, "NOT_FOUND");
    let r = nsqd.http("GET", "/config/log_level/", b"");
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("/config/log_level"))
    );
}

#[test]
fn put_errors_as_nsq_answers_them() {
    let nsqd = Nsqd::start(&["--max-msg-size=16"]);
    let put = |opt: &str, body: &[u8]| nsqd.http("PUT", &format!("/config/{opt}"), body);

    // The body is checked first: empty or over --max-msg-size.
    error(&put("log_level", b""), 413, "INVALID_VALUE");
    error(&put("no_such_option", b""), 413, "INVALID_VALUE");
    let at_limit = br#"["127.0.0.1:12"]"#;
    assert_eq!(at_limit.len(), 16);
    let over = br#"["127.0.0.1:123"]"#;
    error(&put("nsqlookupd_tcp_addresses", over), 413, "INVALID_VALUE");
    let r = put("nsqlookupd_tcp_addresses", at_limit);
    assert_eq!((r.status, r.body.as_slice()), (200, &at_limit[..]));

    // Then the name: only two options can be changed.
    error(&put("no_such_option", b"1"), 400, "INVALID_OPTION");
    error(&put("mem_queue_size", b"5"), 400, "INVALID_OPTION");

    // Then the value.
    for bad in [&b"loud"[..], b"\"debug\"", b"debug\n", b"\xff"] {
        error(&put("log_level", bad), 400, "INVALID_VALUE");
    }
    for bad in [&b"[1]"[..], b"\"a:1\"", b"{}", b"[\"a:1\"] x", b"a:1"] {
        error(&put("nsqlookupd_tcp_addresses", bad), 400, "INVALID_VALUE");
    }
    // A failed PUT changes nothing.
    assert_eq!(
        nsqd.http("GET", "/config/nsqlookupd_tcp_addresses", b"")
            .text(),
        r#"["127.0.0.1:12"]"#
    );

    // NSQ takes any string as an address (and keeps trying to reach it),
    // and `null` as no list at all.
    let r = put("nsqlookupd_tcp_addresses", br#"["no port"]"#);
    assert_eq!((r.status, r.text()), (200, r#"["no port"]"#.into()));
    nsq_json(&r);
    let r = put("nsqlookupd_tcp_addresses", b"null");
    assert_eq!((r.status, r.text()), (200, "null".into()));
    assert_eq!(nsqd.http("GET", "/ping", b"").text(), "OK");

    let r = put("log_level", b"WARN");
    assert_eq!((r.status, r.text()), (200, "3".into()));
    nsq_json(&r);
    assert_eq!(nsqd.http("GET", "/config/log_level", b"").text(), "3");
}

/// Whether `lookupd` lists an nsqd at all (`/nodes`).
fn has_producers(lookupd: &Lookupd) -> bool {
    !lookupd.get("/nodes")["producers"]
        .as_array()
        .unwrap()
        .is_empty()
}

fn channels(lookupd: &Lookupd, topic: &str) -> serde_json::Value {
    lookupd.get(&format!("/channels?topic={topic}"))["channels"].clone()
}

#[test]
fn new_lookupds_learn_everything_and_removed_ones_are_left() {
    let a = Lookupd::start(&[]);
    let b = Lookupd::start(&[]);
    let nsqd = Nsqd::start(&[
        &format!("--lookupd-tcp-address={}", a.tcp),
        "--broadcast-address=127.0.0.1",
    ]);
    let ok = |r: HttpResponse| assert_eq!(r.status, 200, "{}", r.text());
    ok(nsqd.http("POST", "/topic/create?topic=t", b""));
    ok(nsqd.http("POST", "/channel/create?topic=t&channel=c", b""));
    ok(nsqd.http("POST", "/topic/create?topic=lonely", b""));
    let me = format!("127.0.0.1:{}", nsqd.tcp.port());
    wait_until("a knows t/c", || {
        a.producers("t").contains(&me) && channels(&a, "t") == serde_json::json!(["c"])
    });
    assert!(!has_producers(&b));

    let list = format!(r#"["{}"]"#, b.tcp);
    let r = nsqd.http("PUT", "/config/nsqlookupd_tcp_addresses", list.as_bytes());
    assert_eq!((r.status, r.text()), (200, list.clone()));

    // b learns every topic and channel; a sees the connection close.
    wait_until("b knows t/c and lonely", || {
        b.producers("t").contains(&me)
            && channels(&b, "t") == serde_json::json!(["c"])
            && b.producers("lonely").contains(&me)
    });
    wait_until("a no longer lists nsqd", || !has_producers(&a));
    // Changes go to b only from now on.
    ok(nsqd.http("POST", "/topic/create?topic=later", b""));
    wait_until("b knows later", || b.producers("later").contains(&me));
    assert!(a.producers("later").is_empty());
    assert!(!has_producers(&a), "a is not reconnected to");

    // Both, then none.
    let both = format!(r#"["{}","{}"]"#, b.tcp, a.tcp);
    let r = nsqd.http("PUT", "/config/nsqlookupd_tcp_addresses", both.as_bytes());
    assert_eq!((r.status, r.text()), (200, both));
    wait_until("a knows later", || a.producers("later").contains(&me));
    let r = nsqd.http("PUT", "/config/nsqlookupd_tcp_addresses", b"[]");
    assert_eq!((r.status, r.text()), (200, "[]".into()));
    wait_until("neither lists nsqd", || {
        !has_producers(&a) && !has_producers(&b)
    });
}

#[test]
fn log_level_changes_at_once() {
    let nsqd = Nsqd::start(&[]);
    let created = |topic: &str| format!("TOPIC({topic}): created");
    let create = |topic: &str| {
        let r = nsqd.http("POST", &format!("/topic/create?topic={topic}"), b"");
        assert_eq!(r.status, 200);
    };
    create("first");
    wait_until("info logged", || {
        nsqd.log_text().contains(&created("first"))
    });
    assert!(!nsqd.log_text().contains("DEBUG:"));

    let r = nsqd.http("PUT", "/config/log_level", b"error");
    assert_eq!((r.status, r.text()), (200, "4".into()));
    create("quiet");

    let r = nsqd.http("PUT", "/config/log_level", b"debug");
    assert_eq!((r.status, r.text()), (200, "1".into()));
    create("loud");
    // A TCP connection is logged at debug level.
    let _conn = nsqd.connect();
    wait_until("debug logged", || {
        let log = nsqd.log_text();
        log.contains(&created("loud")) && log.contains("DEBUG: TCP: new client(")
    });
    // Lines come out in order: at level error, the topic went unmentioned.
    assert!(!nsqd.log_text().contains(&created("quiet")));
}
