//! nsqd registering with nsqlookupd, and consumers finding producers through
//! it: the real binaries on loopback, our client and an independent one
//! (tokio-nsq).

use crate::support;

use bytes::Bytes;
use nsq::client::{Consumer, ConsumerConfig, LookupdPolling};
use std::collections::HashSet;

use std::process::{Command as Process, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{free_port, http_request, wait_until, Daemon, Lookupd, Nsqd, DEADLINE};

/// An nsqd registered with `lookupd`, reachable at 127.0.0.1.
fn nsqd_with(lookupd: &Lookupd, extra: &[&str]) -> Nsqd {
    let flag = format!("--lookupd-tcp-address={}", lookupd.tcp);
    let mut args = vec![flag.as_str(), "--broadcast-address=127.0.0.1"];
    args.extend_from_slice(extra);
    Nsqd::start(&args)
}

/// Our client consuming through `lookupd_http` in a thread of its own; the
/// bodies it receives (and FINs) come out of the returned channel.
fn discovering_consumer(
    lookupd_http: String,
    topic: &str,
    channel: &str,
) -> (
    mpsc::Receiver<Bytes>,
    std::thread::JoinHandle<()>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let config = ConsumerConfig {
        topic: topic.into(),
        channel: channel.into(),
        max_in_flight: 100,
        connection: Default::default(),
    };
    let polling = LookupdPolling {
        interval: Duration::from_millis(100),
        jitter: 0.3,
        timeout: Duration::from_secs(1),
    };
    let stop2 = stop.clone();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut consumer = Consumer::discover(&[lookupd_http], &config, polling).unwrap();
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                let next = tokio::time::timeout(Duration::from_millis(50), consumer.next()).await;
                match next {
                    Ok(Some(Ok(d))) => {
                        if tx.send(d.body().clone()).is_err() {
                            break;
                        }
                        d.fin();
                    }
                    Ok(Some(Err(_))) | Err(_) => {}
                    Ok(None) => break,
                }
            }
            consumer.stop();
        });
    });
    (rx, handle, stop)
}

fn receive(rx: &mpsc::Receiver<Bytes>, n: usize) -> HashSet<Bytes> {
    let deadline = Instant::now() + DEADLINE;
    let mut got = HashSet::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(b) => {
                got.insert(b);
            }
            Err(_) => panic!("received {} of {n} messages", got.len()),
        }
    }
    got
}

fn publish(nsqd: &Nsqd, topic: &str, bodies: &[String]) {
    let mut c = nsqd.connect();
    for b in bodies {
        c.publish(topic, b.as_bytes());
    }
}

#[test]
fn consumer_first_then_lookupd_then_nsqd_then_topic() {
    // The seed's walk-through: the consumer starts before anything exists
    // and polls a lookupd that is not up yet.
    let http_port = free_port();
    let lookupd_http = format!("127.0.0.1:{http_port}");
    let (rx, handle, stop) = discovering_consumer(lookupd_http.clone(), "walk", "ch");

    let lookupd = Lookupd::start_on("127.0.0.1:0", &lookupd_http, &[]);
    let nsqd = nsqd_with(&lookupd, &[]);
    let r = nsqd.http("POST", "/topic/create?topic=walk", b"");
    assert_eq!(r.status, 200);
    wait_until("lookupd knows the topic", || {
        lookupd
            .producers("walk")
            .contains(&format!("127.0.0.1:{}", nsqd.tcp.port()))
    });
    // Published at once, whether or not the consumer has found the nsqd
    // yet: the topic keeps them until the consumer's SUB creates its channel.
    let bodies: Vec<String> = (0..100).map(|i| format!("walk-{i}")).collect();
    publish(&nsqd, "walk", &bodies);
    let got = receive(&rx, bodies.len());
    let expected: HashSet<Bytes> = bodies.iter().map(|b| Bytes::from(b.clone())).collect();
    assert_eq!(got, expected);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    handle.join().unwrap();
}

#[test]
fn one_consumer_receives_from_two_nsqd() {
    let lookupd = Lookupd::start(&[]);
    let a = nsqd_with(&lookupd, &[]);
    let b = nsqd_with(&lookupd, &[]);
    for n in [&a, &b] {
        assert_eq!(n.http("POST", "/topic/create?topic=both", b"").status, 200);
        assert_eq!(
            n.http("POST", "/channel/create?topic=both&channel=ch", b"")
                .status,
            200
        );
    }
    wait_until("both producers registered", || {
        lookupd.producers("both").len() == 2
    });
    let from_a: Vec<String> = (0..50).map(|i| format!("a-{i}")).collect();
    let from_b: Vec<String> = (0..50).map(|i| format!("b-{i}")).collect();
    publish(&a, "both", &from_a);
    publish(&b, "both", &from_b);
    let (rx, handle, stop) = discovering_consumer(lookupd.http.to_string(), "both", "ch");
    let got = receive(&rx, 100);
    assert!(got.contains(&Bytes::from("a-49")) && got.contains(&Bytes::from("b-49")));
    // b vanishes from the lookupd (tombstoned for the topic): the consumer
    // closes its connection to b and keeps the one to a.
    let node = format!("127.0.0.1:{}", b.http.port());
    let path = format!("/topic/tombstone?topic=both&node={node}");
    assert_eq!(http_request(lookupd.http, "POST", &path, b"").status, 200);
    wait_until("consumer left b", || {
        b.channel_stats("both", "ch")
            .is_some_and(|c| c["client_count"] == 0)
    });
    assert_eq!(a.channel_stats("both", "ch").unwrap()["client_count"], 1);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    handle.join().unwrap();
}

#[test]
fn killed_nsqd_leaves_lookup() {
    // Its connection closes with it: the lookupd drops it at once.
    let lookupd = Lookupd::start(&[]);
    let nsqd = nsqd_with(&lookupd, &[]);
    assert_eq!(
        nsqd.http("POST", "/topic/create?topic=gone", b"").status,
        200
    );
    let me = format!("127.0.0.1:{}", nsqd.tcp.port());
    wait_until("registered", || lookupd.producers("gone").contains(&me));
    support::signal(nsqd.pid(), "KILL");
    wait_until("gone from /lookup", || lookupd.producers("gone").is_empty());
    wait_until("gone from /nodes", || {
        lookupd.get("/nodes")["producers"]
            .as_array()
            .is_some_and(|p| p.is_empty())
    });
    // The topic itself stays known, with no producer.
    assert!(lookupd.get("/topics")["topics"]
        .as_array()
        .unwrap()
        .contains(&"gone".into()));
}

#[test]
fn silent_nsqd_leaves_lookup_after_the_inactive_timeout() {
    // A frozen nsqd keeps its connection open but stops pinging, as one
    // behind a network partition would.
    let lookupd = Lookupd::start(&["--inactive-producer-timeout=500ms"]);
    let nsqd = nsqd_with(&lookupd, &[]);
    assert_eq!(
        nsqd.http("POST", "/topic/create?topic=quiet", b"").status,
        200
    );
    let me = format!("127.0.0.1:{}", nsqd.tcp.port());
    wait_until("registered", || lookupd.producers("quiet").contains(&me));
    support::signal(nsqd.pid(), "STOP");
    wait_until("inactive: gone from /lookup", || {
        lookupd.producers("quiet").is_empty()
    });
    support::signal(nsqd.pid(), "CONT");
}

#[test]
fn tombstone_hides_until_the_topic_is_registered_again() {
    let lookupd = Lookupd::start(&["--tombstone-lifetime=60s"]);
    let nsqd = nsqd_with(&lookupd, &[]);
    assert_eq!(
        nsqd.http("POST", "/topic/create?topic=tomb", b"").status,
        200
    );
    let me = format!("127.0.0.1:{}", nsqd.tcp.port());
    wait_until("registered", || lookupd.producers("tomb").contains(&me));
    let node = format!("127.0.0.1:{}", nsqd.http.port());
    let r = http_request(
        lookupd.http,
        "POST",
        &format!("/topic/tombstone?topic=tomb&node={node}"),
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(lookupd.producers("tomb").is_empty(), "tombstoned: hidden");
    let nodes = lookupd.get("/nodes");
    assert_eq!(
        nodes["producers"][0]["tombstones"],
        serde_json::json!([true])
    );
    // What nsqadmin does next: delete the topic on that nsqd. When it is
    // created again, its new registration is not tombstoned.
    assert_eq!(
        nsqd.http("POST", "/topic/delete?topic=tomb", b"").status,
        200
    );
    assert_eq!(
        nsqd.http("POST", "/topic/create?topic=tomb", b"").status,
        200
    );
    wait_until("visible again", || lookupd.producers("tomb").contains(&me));
}

#[test]
fn nsqd_registers_again_with_a_restarted_lookupd() {
    // Ports no other test's bind(0) can take while lookupd is down.
    let tcp = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let mut lookupd = Lookupd::start_on(&tcp, &http, &[]);
    let nsqd = nsqd_with(&lookupd, &[]);
    assert_eq!(nsqd.http("POST", "/topic/create?topic=t1", b"").status, 200);
    assert_eq!(
        nsqd.http("POST", "/channel/create?topic=t1&channel=c1", b"")
            .status,
        200
    );
    let me = format!("127.0.0.1:{}", nsqd.tcp.port());
    wait_until("registered", || lookupd.producers("t1").contains(&me));
    lookupd.kill();
    let lookupd = Lookupd::start_on(&tcp, &http, &[]);
    wait_until("registered with the new lookupd", || {
        lookupd.producers("t1").contains(&me)
    });
    assert_eq!(
        lookupd.get("/channels?topic=t1")["channels"],
        serde_json::json!(["c1"])
    );
}

#[test]
fn lookupd_started_after_nsqd_learns_about_it() {
    let tcp_port = free_port();
    let tcp = format!("127.0.0.1:{tcp_port}");
    let nsqd = Nsqd::start(&[
        &format!("--lookupd-tcp-address={tcp}"),
        "--broadcast-address=127.0.0.1",
    ]);
    assert_eq!(
        nsqd.http("POST", "/topic/create?topic=early", b"").status,
        200
    );
    let lookupd = Lookupd::start_on(&tcp, "127.0.0.1:0", &[]);
    let me = format!("127.0.0.1:{}", nsqd.tcp.port());
    wait_until("registered", || lookupd.producers("early").contains(&me));
}

#[test]
fn deletes_propagate_to_lookupd() {
    let lookupd = Lookupd::start(&[]);
    let nsqd = nsqd_with(&lookupd, &[]);
    assert_eq!(
        nsqd.http("POST", "/topic/create?topic=del", b"").status,
        200
    );
    for c in ["keep", "drop"] {
        let path = format!("/channel/create?topic=del&channel={c}");
        assert_eq!(nsqd.http("POST", &path, b"").status, 200);
    }
    let me = format!("127.0.0.1:{}", nsqd.tcp.port());
    wait_until("registered", || lookupd.producers("del").contains(&me));
    // Channel delete: UNREGISTER topic channel. The producer is gone from
    // that channel's registration (visible in /debug); the registration
    // itself stays, as in NSQ, since the channel is not ephemeral.
    assert_eq!(
        nsqd.http("POST", "/channel/delete?topic=del&channel=drop", b"")
            .status,
        200
    );
    wait_until("producer left the channel registration", || {
        lookupd.get("/debug")["channel:del:drop"]
            .as_array()
            .is_some_and(|p| p.is_empty())
    });
    // Topic delete: UNREGISTER topic; the nsqd is no longer a producer.
    assert_eq!(
        nsqd.http("POST", "/topic/delete?topic=del", b"").status,
        200
    );
    wait_until("no producer of the deleted topic", || {
        lookupd.producers("del").is_empty()
    });
}

#[test]
fn new_topic_gets_the_channels_lookupd_knows() {
    // Channel pre-creation: a topic new to this nsqd gets the (durable)
    // channels its consumers use elsewhere, so messages wait for them.
    // The nsqd queries the lookupd at the address the lookupd announces.
    let lookupd = Lookupd::start(&["--broadcast-address=127.0.0.1"]);
    for path in [
        "/channel/create?topic=pre&channel=archive",
        "/channel/create?topic=pre&channel=tail%23ephemeral",
    ] {
        assert_eq!(http_request(lookupd.http, "POST", path, b"").status, 200);
    }
    let nsqd = nsqd_with(&lookupd, &[]);
    wait_until("nsqd identified with lookupd", || {
        lookupd.get("/nodes")["producers"]
            .as_array()
            .is_some_and(|p| p.len() == 1)
    });
    nsqd.connect().publish("pre", b"kept for archive");
    wait_until("archive pre-created and holding the message", || {
        nsqd.channel_stats("pre", "archive")
            .is_some_and(|c| c["depth"] == 1)
    });
    assert!(
        nsqd.channel_stats("pre", "tail#ephemeral").is_none(),
        "ephemeral ones are not pre-created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_nsq_discovers_through_our_lookupd() {
    use tokio_nsq::{
        NSQChannel, NSQConsumerConfig, NSQConsumerConfigSources, NSQConsumerLookupConfig, NSQTopic,
    };
    let lookupd = Lookupd::start(&[]);
    let nsqd = nsqd_with(&lookupd, &[]);
    let bodies: Vec<String> = (0..20).map(|i| format!("interop-{i}")).collect();
    publish(&nsqd, "found", &bodies);
    let me = format!("127.0.0.1:{}", nsqd.tcp.port());
    let lk = &lookupd;
    tokio::task::block_in_place(|| {
        wait_until("registered", || lk.producers("found").contains(&me))
    });
    let lookup = NSQConsumerLookupConfig::new()
        .set_poll_interval(Duration::from_millis(200))
        .set_addresses([format!("http://{}", lookupd.http)].into_iter().collect());
    let mut consumer = NSQConsumerConfig::new(
        NSQTopic::new("found").unwrap(),
        NSQChannel::new("ch").unwrap(),
    )
    .set_max_in_flight(50)
    .set_sources(NSQConsumerConfigSources::Lookup(lookup))
    .build();
    let mut seen = HashSet::new();
    while seen.len() < bodies.len() {
        let msg = tokio::time::timeout(DEADLINE, consumer.consume_filtered())
            .await
            .expect("message in time")
            .expect("consumer open");
        seen.insert(String::from_utf8(msg.body.clone()).unwrap());
        msg.finish().await;
    }
    assert_eq!(seen, bodies.into_iter().collect());
}

// ---------------------------------------------------------------------------
// Several hosts: network namespaces joined by a bridge, private addresses.

/// Network namespaces for one test run (names unique per process), a
/// bridge joining them, and veth links; everything is deleted on drop.
struct Hosts {
    prefix: String,
    names: Vec<String>,
}

impl Hosts {
    const SUBNET: &'static str = "10.77.0";

    /// One namespace per host name, host `i` at `10.77.0.<i+1>`. `None` when
    /// this machine cannot create namespaces (not root, no iproute2).
    fn create(hosts: &[&str]) -> Option<Hosts> {
        let prefix = format!("nq{}", std::process::id() % 100_000);
        let mut made = Hosts {
            prefix: prefix.clone(),
            names: Vec::new(),
        };
        let hub = format!("{prefix}hub");
        if !ip(&["netns", "add", &hub]) {
            return None;
        }
        made.names.push(hub.clone());
        let ok = ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])
            && ip(&["-n", &hub, "link", "set", "br0", "up"]);
        if !ok {
            return None;
        }
        for (i, host) in hosts.iter().enumerate() {
            let ns = made.ns(host);
            let (inside, outside) = (format!("{prefix}{i}a"), format!("{prefix}{i}b"));
            let addr = format!("{}.{}/24", Self::SUBNET, i + 1);
            let ok = ip(&["netns", "add", &ns])
                && {
                    made.names.push(ns.clone());
                    true
                }
                && ip(&[
                    "link", "add", &inside, "type", "veth", "peer", "name", &outside,
                ])
                && ip(&["link", "set", &inside, "netns", &ns])
                && ip(&["link", "set", &outside, "netns", &hub])
                && ip(&["-n", &hub, "link", "set", &outside, "master", "br0"])
                && ip(&["-n", &hub, "link", "set", &outside, "up"])
                && ip(&["-n", &ns, "addr", "add", &addr, "dev", &inside])
                && ip(&["-n", &ns, "link", "set", &inside, "up"])
                && ip(&["-n", &ns, "link", "set", "lo", "up"]);
            if !ok {
                return None;
            }
        }
        Some(made)
    }

    fn ns(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    fn addr(index: usize) -> String {
        format!("{}.{}", Self::SUBNET, index + 1)
    }

    /// `program args` run inside `host`'s namespace.
    fn command(&self, host: &str, program: &str, args: &[String]) -> (String, Vec<String>) {
        let mut all = vec![
            "netns".to_string(),
            "exec".into(),
            self.ns(host),
            program.into(),
        ];
        all.extend_from_slice(args);
        ("ip".to_string(), all)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in self.names.iter().rev() {
            ip(&["netns", "del", ns]);
        }
    }
}

fn ip(args: &[&str]) -> bool {
    Process::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Run in a child process inside a namespace (see `netns_child`): publish
/// or consume, driven by environment variables.
fn child(hosts: &Hosts, host: &str, role: &str, vars: &[(&str, String)]) -> std::process::Output {
    let exe = std::env::current_exe().unwrap().display().to_string();
    let (program, args) = hosts.command(
        host,
        &exe,
        &[
            "--exact".into(),
            "discovery::netns_child".into(),
            "--nocapture".into(),
        ],
    );
    let mut cmd = Process::new(program);
    cmd.args(args).env("NSQ_NETNS_ROLE", role);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Not a test on its own: the body of the child processes above. Without
/// `NSQ_NETNS_ROLE` it does nothing.
#[test]
fn netns_child() {
    let Ok(role) = std::env::var("NSQ_NETNS_ROLE") else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match role.as_str() {
        "publish" => rt.block_on(async {
            let p = nsq::client::Producer::connect(&var("NSQD"), &Default::default())
                .await
                .unwrap();
            for i in 0..var("COUNT").parse::<usize>().unwrap() {
                let body = format!("{}-{i}", var("PREFIX"));
                p.publish(&var("TOPIC"), body).await.unwrap();
            }
        }),
        "consume" => rt.block_on(async {
            let config = ConsumerConfig {
                topic: var("TOPIC"),
                channel: "ch".into(),
                max_in_flight: 50,
                connection: Default::default(),
            };
            let polling = LookupdPolling {
                interval: Duration::from_millis(200),
                jitter: 0.3,
                timeout: Duration::from_secs(1),
            };
            let mut consumer = Consumer::discover(&[var("LOOKUPD")], &config, polling).unwrap();
            let want = var("COUNT").parse::<usize>().unwrap();
            let mut seen = HashSet::new();
            while seen.len() < want {
                match tokio::time::timeout(DEADLINE, consumer.next()).await {
                    Ok(Some(Ok(d))) => {
                        seen.insert(String::from_utf8_lossy(d.body()).into_owned());
                        d.fin();
                    }
                    Ok(Some(Err(_))) => {}
                    _ => break,
                }
            }
            for body in &seen {
                println!("GOT {body}");
            }
        }),
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn lookupd_and_two_nsqd_on_separate_hosts() {
    let Some(hosts) = Hosts::create(&["lk", "a", "b", "c"]) else {
        eprintln!(
            "SKIPPED lookupd_and_two_nsqd_on_separate_hosts: cannot create network \
             namespaces here (needs root and iproute2's `ip netns`)"
        );
        return;
    };
    let lk = Hosts::addr(0);
    let (program, args) = hosts.command(
        "lk",
        env!("CARGO_BIN_EXE_nsqlookupd"),
        &[
            format!("--tcp-address={lk}:4160"),
            format!("--http-address={lk}:4161"),
            format!("--broadcast-address={lk}"),
        ],
    );
    let _lookupd = Daemon::spawn(&program, &args);
    let mut nsqds = Vec::new();
    let mut dirs = Vec::new();
    for (i, host) in [(1, "a"), (2, "b")] {
        let me = Hosts::addr(i);
        let dir = tempfile::tempdir().unwrap();
        let (program, args) = hosts.command(
            host,
            env!("CARGO_BIN_EXE_nsqd"),
            &[
                format!("--tcp-address={me}:4150"),
                format!("--http-address={me}:4151"),
                format!("--broadcast-address={me}"),
                format!("--lookupd-tcp-address={lk}:4160"),
                format!("--data-path={}", dir.path().display()),
            ],
        );
        nsqds.push(Daemon::spawn(&program, &args));
        dirs.push(dir);
    }
    for (i, host, prefix) in [(1, "a", "from-a"), (2, "b", "from-b")] {
        let out = child(
            &hosts,
            host,
            "publish",
            &[
                ("NSQD", format!("{}:4150", Hosts::addr(i))),
                ("TOPIC", "spread".into()),
                ("PREFIX", prefix.into()),
                ("COUNT", "20".into()),
            ],
        );
        assert!(
            out.status.success(),
            "publisher on {host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The consumer, on a third host, knows only the lookupd.
    let out = child(
        &hosts,
        "c",
        "consume",
        &[
            ("LOOKUPD", format!("{lk}:4161")),
            ("TOPIC", "spread".into()),
            ("COUNT", "40".into()),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: HashSet<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("GOT "))
        .collect();
    assert!(
        out.status.success(),
        "consumer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(got.len(), 40, "received {got:?}");
    assert!(got.contains("from-a-19") && got.contains("from-b-19"));
}
