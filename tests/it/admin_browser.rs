//! nsqadmin in a real browser: headless Chromium driven through WebDriver
//! (chromedriver, from Debian's `chromium-driver`; `.ci/run` installs it).
//! The pages are read and clicked as an operator would, and what they show
//! is checked against each nsqd's `/stats`.
//!
//! With `NSQADMIN_SCREENSHOTS=docs` the main pages are saved as PNG files
//! there (for the README).

use crate::admin::{Admin, Cluster};
use crate::support::{http_request, Conn, Nsqd, DEADLINE};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The browser as found on this machine (Debian's packages).
fn chromium_binary() -> String {
    for path in ["/usr/lib/chromium/chromium", "/usr/bin/chromium"] {
        if std::path::Path::new(path).exists() {
            return path.to_string();
        }
    }
    "chromium".to_string()
}

/// chromedriver and a headless Chromium session, both ended on drop (the
/// driver runs in a process group of its own, so the browser it started
/// goes with it even when a test fails).
struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = crate::support::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not be started ({e}): install Debian's chromium and \
                     chromium-driver (`apt-get install -y chromium chromium-driver`; .ci/run does)"
                )
            });
        let mut browser_driver = DriverGuard(Some(driver));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_binary(),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1360,1000",
                    "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt
            .block_on(async {
                let mut builder =
                    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
                builder.capabilities(caps.as_object().unwrap().clone());
                tokio::time::timeout(
                    Duration::from_secs(60),
                    builder.connect(&format!("http://{addr}")),
                )
                .await
            })
            .expect("a browser session within 60s")
            .expect("a browser session");
        Browser {
            rt,
            client: Some(client),
            driver: browser_driver.0.take().unwrap(),
            _profile: profile,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn goto(&self, url: &str) {
        self.rt.block_on(self.client().goto(url)).expect("goto");
    }

    /// The text of the first element matching `css`, if there is one.
    fn text(&self, css: &str) -> Option<String> {
        self.rt.block_on(async {
            let e = self.client().find(Locator::Css(css)).await.ok()?;
            e.text().await.ok()
        })
    }

    /// Wait until the element's text satisfies `ok`; its text then.
    fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let text = self.text(css);
            if let Some(t) = &text {
                if ok(t) {
                    return t.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({css}); last text: {text:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_for(&self, css: &str, what: &str) {
        self.wait_text(css, what, |_| true);
    }

    fn wait_gone(&self, css: &str, what: &str) {
        let deadline = Instant::now() + DEADLINE;
        while self.exists(css) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} to go"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn exists(&self, css: &str) -> bool {
        self.rt
            .block_on(self.client().find_all(Locator::Css(css)))
            .map(|v| !v.is_empty())
            .unwrap_or(false)
    }

    /// Click the element (retried while the page redraws under it).
    fn click(&self, css: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let clicked = self.rt.block_on(async {
                let e = self.client().find(Locator::Css(css)).await?;
                e.click().await
            });
            match clicked {
                Ok(()) => return,
                Err(e) => assert!(Instant::now() < deadline, "could not click {css}: {e}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn js(&self, script: &str) -> Value {
        self.rt
            .block_on(self.client().execute(script, vec![]))
            .expect("script")
    }

    /// Save the viewport as `<dir>/<name>.png` when screenshots are asked for.
    fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("NSQADMIN_SCREENSHOTS") else {
            return;
        };
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let png = self
            .rt
            .block_on(self.client().screenshot())
            .expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// Kills chromedriver's process group if the session never came up.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            kill_group(child);
        }
    }
}

fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        kill_group(&mut self.driver);
    }
}

/// `1234567` as the pages write it: `1,234,567`.
fn commas(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn stat(n: &Nsqd, topic: &str, key: &str) -> i64 {
    n.topic_stats(topic)
        .map(|t| t[key].as_i64().unwrap())
        .unwrap_or(0)
}

fn channel_stat(n: &Nsqd, topic: &str, channel: &str, key: &str) -> i64 {
    n.channel_stats(topic, channel)
        .map(|c| c[key].as_i64().unwrap())
        .unwrap_or(0)
}

/// A consumer that identifies itself, as a real one would.
fn worker(nsqd: &Nsqd, name: &str, agent: &str, topic: &str, channel: &str, rdy: u64) -> Conn {
    let mut c = nsqd.connect();
    c.identify(
        json!({"client_id": name, "hostname": name, "user_agent": agent,
                      "feature_negotiation": true}),
    );
    c.subscribe(topic, channel);
    c.rdy(rdy);
    c
}

/// Traffic for the charts, for a bounded time: publishes at a changing
/// rate, and a worker finishing what it gets.
fn traffic(c: &Cluster, seconds: u64, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<()>> {
    let addrs: Vec<SocketAddr> = c.nsqd.iter().map(|n| n.http).collect();
    let mut handles = Vec::new();
    let until = Instant::now() + Duration::from_secs(seconds);
    let s = stop.clone();
    handles.push(std::thread::spawn(move || {
        let mut i = 0u64;
        while Instant::now() < until && !s.load(Ordering::Relaxed) {
            let wave = 4 + (i / 6 % 4) * 3;
            let body: Vec<u8> = (0..wave)
                .flat_map(|k| format!("order {i}-{k}\n").into_bytes())
                .collect();
            let _ = http_request(addrs[i as usize % 2], "POST", "/mpub?topic=orders", &body);
            let _ = http_request(
                addrs[1],
                "POST",
                "/mpub?topic=clicks",
                b"click a\nclick b\nclick c\n",
            );
            i += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
    }));
    handles
}

#[test]
fn admin_in_a_real_browser() {
    let c = Cluster::start();
    // orders: on both nsqd, channels billing (both) and email (first only).
    for i in 0..2 {
        c.publish(i, "orders", 20 + i * 5);
        c.create_channel(i, "orders", "billing");
    }
    c.create_channel(0, "orders", "email");
    for i in 0..2 {
        c.publish(i, "orders", 30 + i * 7);
    }
    // clicks: a channel nobody reads (it will grow); doomed: to be deleted.
    c.publish(1, "clicks", 12);
    c.create_channel(1, "clicks", "analytics");
    c.publish(0, "doomed", 3);
    let mut w1 = worker(
        &c.nsqd[0],
        "billing-1",
        "billing/2.3 go-nsq/1.1.0",
        "orders",
        "billing",
        4,
    );
    let mut w2 = worker(
        &c.nsqd[1],
        "billing-2",
        "billing/2.3 go-nsq/1.1.0",
        "orders",
        "billing",
        3,
    );
    for _ in 0..4 {
        w1.expect_message();
    }
    for _ in 0..3 {
        w2.expect_message();
    }
    let mut fin_worker = worker(
        &c.nsqd[0],
        "mailer-1",
        "mailer/0.9 pynsq/0.9.1",
        "orders",
        "email",
        1,
    );
    let m = fin_worker.expect_message();
    fin_worker.fin(m.id);
    c.wait_registered("orders", "email", 2);
    c.wait_registered("clicks", "analytics", 1);
    c.wait_registered("doomed", "", 1);
    let mut args = c.admin_args();
    args.push("--sample-interval=500ms".into());
    args.push("--http-client-request-timeout=1s".into());
    let admin = Admin::start(&args);
    let base = format!("http://{}", admin.http);
    let browser = Browser::start();

    // The topics page: every topic, with the numbers each nsqd reports.
    browser.goto(&format!("{base}/"));
    browser.wait_for("#live.on", "the first live summary");
    let total = |topic: &str, key: &str| c.nsqd.iter().map(|n| stat(n, topic, key)).sum::<i64>();
    for topic in ["orders", "clicks", "doomed"] {
        let want = commas(total(topic, "message_count"));
        browser.wait_text(
            &format!(r#"tr[data-topic="{topic}"] td[data-field="messages"]"#),
            &format!("{topic}'s message count {want}"),
            |t| t == want,
        );
        // Queued: the topic's depth and its channels', over both nsqd.
        let channels: i64 = c
            .nsqd
            .iter()
            .filter_map(|n| n.topic_stats(topic))
            .flat_map(|t| t["channels"].as_array().cloned().unwrap_or_default())
            .map(|ch| ch["depth"].as_i64().unwrap())
            .sum();
        let want = commas(total(topic, "depth") + channels);
        browser.wait_text(
            &format!(r#"tr[data-topic="{topic}"] td[data-field="queued"]"#),
            &format!("{topic}'s queued messages {want}"),
            |t| t == want,
        );
    }

    // One topic: per node and per channel.
    browser.click(r#"tr[data-topic="orders"] td.name a"#);
    browser.wait_for("#channels-table", "the topic page");
    for (i, n) in c.nsqd.iter().enumerate() {
        let want = commas(stat(n, "orders", "message_count"));
        browser.wait_text(
            &format!(
                r#"#topic-nodes tr[data-node="{}"] td:nth-child(4)"#,
                c.node(i)
            ),
            "a node's message count",
            |t| t == want,
        );
    }
    let billing_depth = |c: &Cluster| {
        c.nsqd
            .iter()
            .map(|n| channel_stat(n, "orders", "billing", "depth"))
            .sum::<i64>()
    };
    let want = commas(billing_depth(&c));
    browser.wait_text(
        r#"#channels-table tr[data-channel="billing"] td[data-field="depth"]"#,
        "billing's depth",
        |t| t == want,
    );

    // One channel: its clients, as nsqd sees them.
    browser.click(r#"#channels-table tr[data-channel="billing"] a"#);
    browser.wait_for(".clients-table", "the channel page");
    for (i, n) in c.nsqd.iter().enumerate() {
        let stats = n.channel_stats("orders", "billing").unwrap();
        for client in stats["clients"].as_array().unwrap() {
            // By node too: two clients of two nsqd may share a local port.
            let row = format!(
                r#".clients-table tr[data-client="{}"][data-node="{}"]"#,
                client["remote_address"].as_str().unwrap(),
                c.node(i)
            );
            for (field, key) in [
                ("in_flight", "in_flight_count"),
                ("ready", "ready_count"),
                ("finished", "finish_count"),
            ] {
                let want = commas(client[key].as_i64().unwrap());
                browser.wait_text(&format!("{row} td[data-field=\"{field}\"]"), key, |t| {
                    t == want
                });
            }
            // Read with a retry: a live update may replace the row meanwhile.
            browser.wait_text(&row, "the client's user agent", |t| {
                t.contains("billing/2.3 go-nsq/1.1.0")
            });
        }
    }

    // Pause the channel by clicking, with a confirmation.
    browser.click(r#"button[data-action="pause"]"#);
    browser.wait_for("dialog[open] #confirm-ok", "the confirmation");
    let question = browser.text("#confirm-title").unwrap();
    assert!(question.contains("orders / billing"), "{question}");
    browser.click("#confirm-ok");
    crate::support::wait_until("billing paused on every nsqd", || {
        c.nsqd.iter().all(|n| {
            n.channel_stats("orders", "billing")
                .is_some_and(|s| s["paused"] == true)
        })
    });
    assert!(c.nsqd.iter().all(|n| n
        .channel_stats("orders", "email")
        .is_none_or(|s| s["paused"] == false)));
    browser.wait_for("h1 .badge.paused", "the paused mark");

    // A live update: new messages show up without a reload.
    browser.js("window.__sameDocument = 42;");
    c.publish(1, "orders", 9);
    let want = commas(billing_depth(&c));
    browser.wait_text(".card [data-field=\"depth\"]", "the new depth", |t| {
        t.split_whitespace().next() == Some(want.as_str())
    });
    assert_eq!(
        browser.js("return window.__sameDocument;"),
        json!(42),
        "the page was reloaded"
    );

    // Unpause again.
    browser.click(r#"button[data-action="unpause"]"#);
    browser.wait_for("dialog[open] #confirm-ok", "the confirmation");
    browser.click("#confirm-ok");
    crate::support::wait_until("billing unpaused", || {
        c.nsqd.iter().all(|n| {
            n.channel_stats("orders", "billing")
                .is_some_and(|s| s["paused"] == false)
        })
    });

    // Delete a topic from its page.
    browser.goto(&format!("{base}/topics/doomed"));
    browser.click(r#"button[data-action="delete"]"#);
    browser.wait_for("dialog[open] #confirm-ok", "the confirmation");
    browser.click("#confirm-ok");
    crate::support::wait_until("doomed deleted", || {
        c.nsqd[0].topic_stats("doomed").is_none()
    });
    browser.wait_for("#topics-table", "back on the topics page");
    browser.wait_gone(r#"tr[data-topic="doomed"]"#, "the deleted topic");

    // Traffic, so the charts have something to show; then the pages as an
    // operator sees them.
    let seconds = if std::env::var_os("NSQADMIN_SCREENSHOTS").is_some() {
        14
    } else {
        3
    };
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut handles = traffic(&c, seconds + 30, stop.clone());
    // The billing workers keep up while traffic flows (email and
    // analytics are left to grow).
    for mut w in [w1, w2] {
        let drain_stop = stop.clone();
        handles.push(std::thread::spawn(move || {
            w.rdy(50);
            while !drain_stop.load(Ordering::Relaxed) {
                if let Some(nsq::protocol::Frame::Message(m)) =
                    w.try_frame(Duration::from_millis(100))
                {
                    w.fin(m.id);
                }
            }
        }));
    }
    browser.goto(&format!("{base}/"));
    browser.wait_for(
        r#"tr[data-topic="clicks"] td.wrap .badge.bad"#,
        "the growing channel's mark",
    );
    assert!(browser
        .text(r#"tr[data-topic="clicks"] td.wrap"#)
        .unwrap()
        .contains("analytics"));
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(100));
    }
    browser.screenshot("nsqadmin-topics");
    browser.goto(&format!("{base}/topics/orders"));
    browser.wait_for("#channels-table", "the topic page");
    browser.wait_for("#live.on", "live");
    browser.screenshot("nsqadmin-topic");
    browser.goto(&format!("{base}/topics/orders/billing"));
    browser.wait_for(".clients-table", "the channel page");
    browser.wait_for("#live.on", "live");
    browser.screenshot("nsqadmin-channel");
    browser.goto(&format!("{base}/nodes"));
    browser.wait_for("#nodes-table .badge.ok", "the nodes page");
    browser.screenshot("nsqadmin-nodes");
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }

    // An nsqd that stops answering (still registered) is marked at once.
    let frozen = c.node(1);
    crate::support::signal(c.nsqd[1].pid(), "STOP");
    browser.wait_for(
        &format!(r#"#banner [data-node-alert="{frozen}"]"#),
        "the banner about the frozen nsqd",
    );
    browser.wait_for(
        &format!(r#"#nodes-table tr.row-bad[data-node="{frozen}"]"#),
        "the frozen nsqd's row marked",
    );
    let row = browser
        .text(&format!(r#"#nodes-table tr[data-node="{frozen}"]"#))
        .unwrap();
    assert!(row.contains("not answering"), "{row}");
    browser.screenshot("nsqadmin-node-down");
    crate::support::signal(c.nsqd[1].pid(), "CONT");
    drop(browser);
}
