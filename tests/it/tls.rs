//! nsqd with TLS: the IDENTIFY upgrade byte by byte, `--tls-required` on
//! TCP and HTTP, client certificate policies, HTTPS, and clients that lie.
//! Certificates are made at test time (rcgen).

use crate::support;

use bytes::{Bytes, BytesMut};
use nsq::protocol::{Command, Frame, FrameDecoder, MAGIC_V2};
use rcgen::{CertificateParams, KeyPair};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use support::{http_request, run_binary, Nsqd, Pki};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, ServerName};
use tokio_util::codec::Decoder;

fn start(pki: &Pki, extra: &[&str]) -> Nsqd {
    let mut args: Vec<String> = pki.flags();
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Nsqd::start(&refs)
}

/// Read one frame from an async stream.
pub(crate) async fn frame<S: AsyncRead + Unpin>(s: &mut S, buf: &mut BytesMut) -> Frame {
    let mut decoder = FrameDecoder::default();
    loop {
        if let Some(f) = decoder.decode(buf).unwrap() {
            if f.is_heartbeat() {
                continue;
            }
            return f;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read_buf(buf))
            .await
            .expect("a frame in time")
            .unwrap();
        assert!(n > 0, "connection closed while waiting for a frame");
    }
}

pub(crate) async fn send<S: AsyncWrite + Unpin>(s: &mut S, cmd: &Command) {
    s.write_all(&cmd.to_bytes()).await.unwrap();
}

fn identify(json: serde_json::Value) -> Command {
    Command::Identify(Bytes::from(json.to_string()))
}

/// Magic, IDENTIFY asking for TLS, the JSON answer (checked), the
/// handshake and the `OK` inside TLS.
pub(crate) async fn tls_client(
    nsqd: &Nsqd,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut tcp = TcpStream::connect(nsqd.tcp).await.unwrap();
    tcp.write_all(MAGIC_V2).await.unwrap();
    send(
        &mut tcp,
        &identify(serde_json::json!({"tls_v1": true, "feature_negotiation": true})),
    )
    .await;
    let mut buf = BytesMut::new();
    let Frame::Response(json) = frame(&mut tcp, &mut buf).await else {
        panic!("IDENTIFY answered with an error");
    };
    let answer: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(answer["tls_v1"], true, "{answer}");
    assert!(
        buf.is_empty(),
        "nothing may follow the JSON before the handshake"
    );
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    let mut buf = BytesMut::new();
    // With TLS 1.3 a refused client certificate shows up at the first read.
    let mut decoder = FrameDecoder::default();
    loop {
        if let Some(f) = decoder.decode(&mut buf).unwrap() {
            assert_eq!(f, Frame::Response(Bytes::from_static(b"OK")));
            return Ok(tls);
        }
        let n = tls.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed",
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_upgrades_to_tls_then_everything_works() {
    let pki = Pki::new();
    let nsqd = start(&pki, &[]);
    let mut tls = tls_client(&nsqd, pki.client_config(false)).await.unwrap();
    let mut buf = BytesMut::new();
    send(
        &mut tls,
        &Command::Pub {
            topic: "t".into(),
            body: Bytes::from_static(b"secret"),
        },
    )
    .await;
    assert_eq!(
        frame(&mut tls, &mut buf).await,
        Frame::Response(Bytes::from_static(b"OK"))
    );
    send(
        &mut tls,
        &Command::Sub {
            topic: "t".into(),
            channel: "c".into(),
        },
    )
    .await;
    assert_eq!(
        frame(&mut tls, &mut buf).await,
        Frame::Response(Bytes::from_static(b"OK"))
    );
    send(&mut tls, &Command::Rdy(1)).await;
    let Frame::Message(m) = frame(&mut tls, &mut buf).await else {
        panic!("a message")
    };
    assert_eq!(&m.body[..], b"secret");
    // /stats tells the client is on TLS, and which version.
    let stats = tokio::task::spawn_blocking(move || {
        let s = nsqd.channel_stats("t", "c").unwrap();
        drop(nsqd);
        s
    })
    .await
    .unwrap();
    let client = &stats["clients"][0];
    assert_eq!(client["tls"], true);
    assert!(
        client["tls_version"].as_str().unwrap().starts_with("TLS1."),
        "{client}"
    );
    assert!(!client["tls_cipher_suite"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_tls_is_not_offered() {
    let nsqd = Nsqd::start(&[]);
    let mut tcp = TcpStream::connect(nsqd.tcp).await.unwrap();
    tcp.write_all(MAGIC_V2).await.unwrap();
    send(
        &mut tcp,
        &identify(serde_json::json!({"tls_v1": true, "feature_negotiation": true})),
    )
    .await;
    let mut buf = BytesMut::new();
    let Frame::Response(json) = frame(&mut tcp, &mut buf).await else {
        panic!()
    };
    let answer: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(answer["tls_v1"], false);
    send(
        &mut tcp,
        &Command::Pub {
            topic: "t".into(),
            body: Bytes::from_static(b"plain"),
        },
    )
    .await;
    assert_eq!(
        frame(&mut tcp, &mut buf).await,
        Frame::Response(Bytes::from_static(b"OK"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_on_tcp_and_http() {
    let pki = Pki::new();
    let nsqd = start(&pki, &["--tls-required=true"]);
    // Anything but IDENTIFY before the upgrade: fatal, NSQ's text.
    for first in [
        Command::Pub {
            topic: "t".into(),
            body: Bytes::from_static(b"x"),
        },
        Command::Nop,
    ] {
        let mut tcp = TcpStream::connect(nsqd.tcp).await.unwrap();
        tcp.write_all(MAGIC_V2).await.unwrap();
        send(&mut tcp, &first).await;
        let mut buf = BytesMut::new();
        let name = String::from_utf8_lossy(first.name().as_bytes()).into_owned();
        assert_eq!(
            frame(&mut tcp, &mut buf).await,
            Frame::Error(Bytes::from(format!(
                "E_INVALID cannot {name} in current state (TLS required)"
            )))
        );
    }
    // IDENTIFY without TLS, then PUB: still refused.
    let mut tcp = TcpStream::connect(nsqd.tcp).await.unwrap();
    tcp.write_all(MAGIC_V2).await.unwrap();
    send(
        &mut tcp,
        &identify(serde_json::json!({"feature_negotiation": true})),
    )
    .await;
    let mut buf = BytesMut::new();
    assert!(matches!(
        frame(&mut tcp, &mut buf).await,
        Frame::Response(_)
    ));
    send(
        &mut tcp,
        &Command::Pub {
            topic: "t".into(),
            body: Bytes::from_static(b"x"),
        },
    )
    .await;
    assert_eq!(
        frame(&mut tcp, &mut buf).await,
        Frame::Error(Bytes::from_static(
            b"E_INVALID cannot PUB in current state (TLS required)"
        ))
    );
    // After the upgrade: fine.
    let mut tls = tls_client(&nsqd, pki.client_config(false)).await.unwrap();
    send(
        &mut tls,
        &Command::Pub {
            topic: "t".into(),
            body: Bytes::from_static(b"x"),
        },
    )
    .await;
    let mut buf = BytesMut::new();
    assert_eq!(
        frame(&mut tls, &mut buf).await,
        Frame::Response(Bytes::from_static(b"OK"))
    );

    // Plain HTTP: 403 and where HTTPS is; HTTPS answers.
    let https_port = nsqd.https();
    let http = nsqd.http;
    let r = tokio::task::spawn_blocking(move || http_request(http, "GET", "/ping", b""))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text(),
        format!(
            r#"{{"message": "TLS_REQUIRED", "https_port": {}}}"#,
            https_port.port()
        )
    );
    let body = https_get(https_port, "/ping", pki.client_config(false)).await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("OK"), "{body}");
}

/// GET over HTTPS by hand: the whole response as text.
async fn https_get(
    addr: std::net::SocketAddr,
    path: &str,
    config: Arc<rustls::ClientConfig>,
) -> String {
    https_request(addr, "GET", path, b"", config).await
}

/// A request over HTTPS by hand: the whole response as text.
async fn https_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    config: Arc<rustls::ClientConfig>,
) -> String {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The HTTPS listener has the same API, `/config` included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_config_over_https() {
    let pki = Pki::new();
    let nsqd = start(&pki, &[]);
    let https = nsqd.https();
    let put = https_request(
        https,
        "PUT",
        "/config/log_level",
        b"error",
        pki.client_config(false),
    )
    .await;
    assert!(put.starts_with("HTTP/1.1 200"), "{put}");
    assert!(put.ends_with("\r\n\r\n4"), "{put}");
    let get = https_get(https, "/config/log_level", pki.client_config(false)).await;
    assert!(get.ends_with("\r\n\r\n4"), "{get}");
    let http = nsqd.http;
    let r = tokio::task::spawn_blocking(move || {
        crate::support::http_request(http, "GET", "/config/log_level", b"")
    })
    .await
    .unwrap();
    assert_eq!(r.text(), "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_policies() {
    let pki = Pki::new();
    let verify = format!("--tls-root-ca-file={}", pki.path("ca.pem"));
    let nsqd = start(&pki, &["--tls-client-auth-policy=require-verify", &verify]);
    assert!(
        tls_client(&nsqd, pki.client_config(false)).await.is_err(),
        "no client cert: refused"
    );
    assert!(
        tls_client(&nsqd, pki.client_config(true)).await.is_ok(),
        "a cert from the CA: accepted"
    );

    // `require`: any certificate, checked only for possession of its key.
    let nsqd = start(&pki, &["--tls-client-auth-policy=require"]);
    assert!(tls_client(&nsqd, pki.client_config(false)).await.is_err());
    let stranger_key = KeyPair::generate().unwrap();
    let stranger = CertificateParams::new(vec!["stranger".to_string()])
        .unwrap()
        .self_signed(&stranger_key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        vec![stranger.der().clone()],
        PrivateKeyDer::Pkcs8(stranger_key.serialize_der().into()),
    )
    .unwrap();
    assert!(
        tls_client(&nsqd, Arc::new(config)).await.is_ok(),
        "self-signed but present: accepted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_asks_for_tls_then_speaks_plain_is_dropped() {
    let pki = Pki::new();
    let nsqd = start(&pki, &[]);
    let mut tcp = TcpStream::connect(nsqd.tcp).await.unwrap();
    tcp.write_all(MAGIC_V2).await.unwrap();
    send(
        &mut tcp,
        &identify(serde_json::json!({"tls_v1": true, "feature_negotiation": true})),
    )
    .await;
    let mut buf = BytesMut::new();
    assert!(matches!(
        frame(&mut tcp, &mut buf).await,
        Frame::Response(_)
    ));
    // Not a ClientHello.
    send(
        &mut tcp,
        &Command::Pub {
            topic: "t".into(),
            body: Bytes::from_static(b"plain"),
        },
    )
    .await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection must be closed");
    // The daemon is fine.
    let http = nsqd.http;
    let r = tokio::task::spawn_blocking(move || http_request(http, "GET", "/ping", b""))
        .await
        .unwrap();
    assert_eq!((r.status, r.text()), (200, "OK".to_string()));
    assert!(tls_client(&nsqd, pki.client_config(false)).await.is_ok());
}

#[test]
fn tls_configuration_errors_stop_startup_with_one_line() {
    let nsqd = env!("CARGO_BIN_EXE_nsqd");
    let data = tempfile::tempdir().unwrap();
    let path = format!("--data-path={}", data.path().display());
    let base = [
        "--tcp-address=127.0.0.1:0",
        "--http-address=127.0.0.1:0",
        path.as_str(),
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        run_binary(nsqd, &args)
    };
    let (code, _, err) = run(&["--tls-required=true"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot require TLS client connections without TLS key and cert"),
        "{err}"
    );
    let missing = PathBuf::from("/nonexistent/cert.pem");
    let (code, _, err) = run(&[
        &format!("--tls-cert={}", missing.display()),
        "--tls-key=/nonexistent/key.pem",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}

#[test]
fn tools_work_against_a_tls_only_nsqd() {
    let pki = Pki::new();
    let nsqd = start(&pki, &["--tls-required=true"]);
    let addr = format!("--nsqd-tcp-address={}", nsqd.tcp);
    let ca = format!("--tls-root-ca-file={}", pki.path("ca.pem"));
    // Without TLS: refused, one clear line.
    let (code, _, err) = pipe_into(env!("CARGO_BIN_EXE_nsq-pub"), &["--topic=s", &addr], b"x\n");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("TLS required"), "{err}");
    // With TLS (the CA given): published, and tailed back.
    let (code, _, err) = pipe_into(
        env!("CARGO_BIN_EXE_nsq-pub"),
        &["--topic=s", &addr, &ca],
        b"one\ntwo\nthree\n",
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_binary(
        env!("CARGO_BIN_EXE_nsq-tail"),
        &[
            "--topic=s",
            "--channel=c",
            &addr,
            &ca,
            "-n",
            "3",
            "--timeout=10s",
        ],
    );
    // The channel is created by the tail's SUB after the publish: the topic
    // kept the messages for it.
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "one\ntwo\nthree\n");
    // A CA that did not sign nsqd's certificate: the handshake fails.
    let other = Pki::new();
    let wrong = format!("--tls-root-ca-file={}", other.path("ca.pem"));
    let (code, _, err) = pipe_into(
        env!("CARGO_BIN_EXE_nsq-pub"),
        &["--topic=s", &addr, &wrong],
        b"x\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("TLS handshake failed"), "{err}");
    // Or trust anything, for tests.
    let (code, _, err) = pipe_into(
        env!("CARGO_BIN_EXE_nsq-pub"),
        &["--topic=s", &addr, "--tls-insecure-skip-verify"],
        b"four\n",
    );
    assert_eq!(code, 0, "{err}");
}

/// Run a binary with `input` on stdin: exit code, stdout, stderr.
fn pipe_into(bin: &str, args: &[&str], input: &[u8]) -> (i32, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
