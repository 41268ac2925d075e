//! nsq-to-http (NSQ's nsq_to_http): send each message of a channel to an
//! HTTP endpoint, as the body of a POST or substituted for `%s` in a GET
//! URL, and FIN it only once the endpoint answered 2xx.
//!
//! Any other answer, or none (refused, timed out), REQueues the message
//! (after go-nsq's delay: `default_requeue_delay` × attempts) and backs the
//! consumer off, so an endpoint that is down for a while loses nothing: its
//! messages wait on nsqd and flow again once it answers. Up to `-n`
//! requests run at once; with several URLs `--mode` spreads them (see
//! [`super::relay`]).

use super::args::{Connection, Sources};
use super::relay::{self, Dispatch, Mode, Prepared, RetryPolicy, Settings, Sink};
use super::Failure;
use crate::cli::duration_arg;
use crate::client::ConsumerConfig;
use bytes::Bytes;
use clap::{ArgAction, ArgGroup, Parser};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use std::sync::Arc;
use std::time::Duration;

/// nsq-to-http: send the messages of an NSQ channel to HTTP endpoints.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "nsq-to-http",
    version,
    about = "Send the messages of an NSQ topic to HTTP endpoints, FIN after a 2xx (NSQ's nsq_to_http)",
    group(ArgGroup::new("endpoint").required(true).args(["get", "post"])),
    after_help = "A message is FINished once every endpoint it went to answered 2xx; otherwise it is \
                  requeued (delay: default_requeue_delay × attempts, up to max_requeue_delay) and the \
                  consumer backs off (backoff_multiplier × 2^level, up to max_backoff_duration); messages \
                  are never given up on unless max_attempts is set. All five are go-nsq options for \
                  --consumer-opt (defaults 90s, 15m, 1s, 2m, 0).\n\n\
                  Exit status: 0 after SIGINT/SIGTERM (requests under way are finished, nothing is left \
                  in flight); 1 when an nsqd cannot be reached at start; 2 on a usage error."
)]
pub struct ToHttpArgs {
    /// NSQ topic.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,

    /// NSQ channel.
    #[arg(long, default_value = "nsq_to_http", value_name = "CHANNEL")]
    pub channel: String,

    #[command(flatten)]
    pub sources: Sources,

    /// URL to GET for each message, with `%s` replaced by the message
    /// (query-escaped); may be given multiple times.
    #[arg(long, action = ArgAction::Append, value_parser = get_url, value_name = "URL", conflicts_with = "post")]
    pub get: Vec<String>,

    /// URL to POST each message to, as the request body; may be given
    /// multiple times.
    #[arg(long, action = ArgAction::Append, value_parser = post_url, value_name = "URL")]
    pub post: Vec<String>,

    /// Content-Type of POST requests.
    #[arg(long = "content-type", default_value = "application/octet-stream", value_parser = clap::builder::NonEmptyStringValueParser::new(), conflicts_with = "get", value_name = "TYPE")]
    pub content_type: String,

    /// Extra header for every request, as `Name: value` (may be given
    /// multiple times).
    #[arg(long, action = ArgAction::Append, value_parser = parse_header, value_name = "HEADER")]
    pub header: Vec<(String, String)>,

    /// With several URLs: round-robin (each message to the next URL),
    /// hostpool (in turn, skipping URLs that fail for a while),
    /// epsilon-greedy (mostly the fastest URLs) or all (every message to
    /// every URL).
    #[arg(long, default_value = "hostpool", value_parser = ["round-robin", "hostpool", "epsilon-greedy", "all"], value_name = "MODE")]
    pub mode: String,

    /// Requests under way at once.
    #[arg(short = 'n', default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000), value_name = "N")]
    pub concurrency: u64,

    /// Messages in flight from nsqd.
    #[arg(long = "max-in-flight", default_value_t = 200, value_name = "N")]
    pub max_in_flight: u64,

    /// Fraction of the messages to send (0.0 to 1.0); the others are
    /// FINished unsent.
    #[arg(long, default_value_t = 1.0, value_parser = parse_sample, value_name = "FRACTION")]
    pub sample: f64,

    /// Log the request times every this many requests (per URL, and in
    /// total); 0: never.
    #[arg(long = "status-every", default_value_t = 250, value_name = "N")]
    pub status_every: u64,

    /// Timeout for connecting to an endpoint.
    #[arg(long = "http-client-connect-timeout", default_value = "2s", value_parser = duration_arg, value_name = "DURATION")]
    pub http_connect_timeout: Duration,

    /// Timeout for a whole request (a request that takes longer counts as
    /// failed).
    #[arg(long = "http-client-request-timeout", visible_alias = "http-timeout", default_value = "20s", value_parser = duration_arg, value_name = "DURATION")]
    pub http_request_timeout: Duration,

    /// How often to ask nsqlookupd for producers.
    #[arg(long = "lookupd-poll-interval", default_value = "60s", value_parser = duration_arg, value_name = "DURATION")]
    pub lookupd_poll_interval: Duration,

    #[command(flatten)]
    pub connection: Connection,
}

/// A URL the HTTP client can use.
fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" => Ok(()),
        other => Err(format!("{url:?}: scheme {other:?} is not http or https")),
    }
}

fn get_url(s: &str) -> Result<String, String> {
    if s.matches("%s").count() != 1 {
        return Err("a GET URL must contain %s exactly once (where the message goes)".into());
    }
    check_url(&s.replacen("%s", "x", 1))?;
    Ok(s.to_string())
}

fn post_url(s: &str) -> Result<String, String> {
    check_url(s)?;
    Ok(s.to_string())
}

/// `Name: value`, both non-empty and valid in HTTP.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let bad = || format!("{s:?}: a header is `Name: value`");
    let (name, value) = s.split_once(':').ok_or_else(bad)?;
    let (name, value) = (name.trim(), value.trim());
    if name.is_empty() || value.is_empty() {
        return Err(bad());
    }
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    HeaderValue::from_str(value).map_err(|_| format!("{value:?} is not a valid header value"))?;
    Ok((name.to_string(), value.to_string()))
}

fn parse_sample(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err("--sample must be between 0.0 and 1.0".into()),
    }
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` stay, a space
/// becomes `+`, every other byte `%XX`.
pub fn query_escape(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    out
}

/// The URL to GET for a message.
pub fn get_target(template: &str, body: &[u8]) -> String {
    template.replacen("%s", &query_escape(body), 1)
}

/// Requests to the endpoints.
struct Http {
    client: reqwest::Client,
    post: bool,
    urls: Vec<String>,
    headers: HeaderMap,
    content_type: HeaderValue,
    sample: f64,
    timeout: Duration,
}

impl Sink for Http {
    fn names(&self) -> &[String] {
        &self.urls
    }

    fn prepare(&self, _topic: usize, body: &Bytes) -> Prepared {
        if self.sample < 1.0 && fastrand::f64() >= self.sample {
            return Prepared::Skip;
        }
        Prepared::Send(body.clone())
    }

    async fn send(self: Arc<Self>, dest: usize, _topic: usize, body: Bytes) -> Result<(), String> {
        let url = &self.urls[dest];
        let (method, request) = if self.post {
            let request = self
                .client
                .post(url)
                .header(CONTENT_TYPE, self.content_type.clone())
                .body(body);
            ("POST", request)
        } else {
            ("GET", self.client.get(get_target(url, &body)))
        };
        let response = request
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {}", describe(&e, self.timeout)))?;
        let status = response.status();
        // Read the answer through, so that the connection can be reused.
        let _ = response.bytes().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{method} {url}: HTTP {status}"))
        }
    }
}

/// A request error in a few words (the URL is said by the caller; for a
/// GET it holds the message, so it is left out here).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}", crate::cli::format_duration(timeout));
    }
    let mut source = std::error::Error::source(e);
    let mut parts: Vec<String> = Vec::new();
    while let Some(s) = source {
        let text = s.to_string();
        // hyper's "client error (Connect)" says nothing the next part
        // does not say better.
        if !text.starts_with("client error (") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        return e.to_string();
    }
    parts.join(": ")
}

pub async fn run(args: ToHttpArgs) -> Result<(), Failure> {
    let mut signals = crate::signals::Signals::install();
    let usage = |message: String| Failure { message, code: 2 };
    args.sources.check_one_kind().map_err(usage)?;
    if !crate::protocol::names::is_valid_name(args.topic.as_bytes()) {
        return Err(usage(format!(
            "--topic {:?} is not a valid topic name",
            args.topic
        )));
    }
    if !crate::protocol::names::is_valid_name(args.channel.as_bytes()) {
        return Err(usage(format!(
            "--channel {:?} is not a valid channel name",
            args.channel
        )));
    }
    let mode = Mode::parse(&args.mode).ok_or_else(|| usage(format!("--mode {:?}", args.mode)))?;
    let policy = RetryPolicy::from_options(&args.connection).map_err(usage)?;
    let connection = args
        .connection
        .config(&format!("nsq-to-http/{}", env!("CARGO_PKG_VERSION")))
        .map_err(usage)?;
    let mut headers = HeaderMap::new();
    for (name, value) in &args.header {
        // Validated while parsing the flags.
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    let content_type = HeaderValue::from_str(&args.content_type).map_err(|_| {
        usage(format!(
            "--content-type {:?} is not a valid header value",
            args.content_type
        ))
    })?;
    let client = reqwest::Client::builder()
        .user_agent(format!("nsq-to-http/{}", env!("CARGO_PKG_VERSION")))
        .connect_timeout(args.http_connect_timeout)
        .timeout(args.http_request_timeout)
        .build()
        .map_err(|e| Failure::new(format!("cannot set up the HTTP client: {e}")))?;
    let post = !args.post.is_empty();
    let urls = if post {
        args.post.clone()
    } else {
        args.get.clone()
    };
    let max_in_flight = args
        .connection
        .max_in_flight()
        .unwrap_or(args.max_in_flight)
        .max(1);
    let config = ConsumerConfig {
        topic: args.topic.clone(),
        channel: args.channel.clone(),
        max_in_flight,
        connection,
    };
    let consumer = relay::consumer(&args.sources, config, args.lookupd_poll_interval).await?;
    let dispatch = Dispatch::new(mode, &urls, args.status_every);
    let sink = Arc::new(Http {
        client,
        post,
        urls,
        headers,
        content_type,
        sample: args.sample,
        timeout: args.http_request_timeout,
    });
    let settings = Settings {
        tool: "nsq-to-http",
        policy,
        concurrency: args.concurrency as usize,
        drain: args.http_request_timeout + Duration::from_secs(1),
    };
    relay::run(vec![consumer], sink, dispatch, settings, &mut signals).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ToHttpArgs, clap::Error> {
        ToHttpArgs::try_parse_from(
            ["nsq-to-http", "--topic=t", "--nsqd-tcp-address=x:1"]
                .iter()
                .chain(args),
        )
    }

    #[test]
    fn get_urls_take_the_escaped_message() {
        assert_eq!(query_escape(b"a b&c=d/e?f"), "a+b%26c%3Dd%2Fe%3Ff");
        assert_eq!(query_escape(b"AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(query_escape("é\n\0\u{ff}".as_bytes()), "%C3%A9%0A%00%C3%BF");
        assert_eq!(query_escape(b"\xff"), "%FF");
        assert_eq!(
            get_target("http://h/x?m=%s&v=1", b"hi there"),
            "http://h/x?m=hi+there&v=1"
        );
        // Percent signs elsewhere in the URL are left alone.
        assert_eq!(get_target("http://h/%41?q=%s", b"%"), "http://h/%41?q=%25");
    }

    #[test]
    fn url_rules() {
        assert!(get_url("http://h/?m=%s").is_ok());
        assert!(get_url("http://h/")
            .unwrap_err()
            .contains("%s exactly once"));
        assert!(get_url("http://h/%s/%s").is_err());
        assert!(post_url("http://h:8080/in").is_ok());
        assert!(post_url("https://h/in").is_ok());
        assert!(post_url("h:8080/in").is_err(), "no scheme");
        assert!(post_url("ftp://h/").unwrap_err().contains("not http"));
    }

    #[test]
    fn headers_are_name_colon_value() {
        assert_eq!(
            parse_header("X-Token:  abc: def ").unwrap(),
            ("X-Token".to_string(), "abc: def".to_string())
        );
        for bad in ["X-Token", "X-Token:", ": v", ":", "bad name: v", "X: a\nb"] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flag_rules() {
        let a = parse(&["--post=http://h/"]).unwrap();
        assert_eq!(
            (
                a.channel.as_str(),
                a.mode.as_str(),
                a.concurrency,
                a.max_in_flight,
                a.status_every
            ),
            ("nsq_to_http", "hostpool", 100, 200, 250)
        );
        assert_eq!(a.content_type, "application/octet-stream");
        assert_eq!(a.http_request_timeout, Duration::from_secs(20));
        assert_eq!(a.http_connect_timeout, Duration::from_secs(2));
        let a = parse(&["--get=http://h/?%s", "--http-timeout=3s", "-n", "7"]).unwrap();
        assert_eq!(
            (a.http_request_timeout, a.concurrency),
            (Duration::from_secs(3), 7)
        );
        for bad in [
            &[][..],
            &["--get=http://h/?%s", "--post=http://h/"],
            &["--get=http://h/?%s", "--content-type=text/plain"],
            &["--post=http://h/", "--content-type="],
            &["--post=http://h/", "--mode=roundrobin"],
            &["--post=http://h/", "--sample=1.5"],
            &["--post=http://h/", "-n", "0"],
            &["--post=http://h/", "--header=nocolon"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
