//! nsqadmin's HTTP server: NSQ's `/api` (routes, methods, status codes and
//! JSON shapes as NSQ's nsqadmin answers them), `/config/:opt`, `/ping`, the
//! web UI's pages and files, and our own `/api/summary` and `/api/events`
//! (server-sent events) for the live pages.
//!
//! Routing is by one table of path patterns, under `--base-path`; an unknown
//! path is a 404 and a known path with another method a 405, both with NSQ's
//! JSON bodies.

use super::aggregate::{self, warning};
use super::assets;
use super::cluster::{Cluster, Sources};
use super::history::Summary;
use super::notify::{basic_auth_user, AdminAction, Notifier};
use super::options::{Cidr, LogLevel, Options};
use super::types::*;
use crate::http_api::{error, ok_json, Query};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Router;
use parking_lot::RwLock;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the handlers share.
pub struct Admin {
    /// Swapped whole by `PUT /config/:opt`.
    pub opts: RwLock<Arc<Options>>,
    pub cluster: Cluster,
    pub notifier: Notifier,
    pub summary: tokio::sync::watch::Receiver<Arc<Summary>>,
    /// Applies a new `--log-level` to the logger.
    pub set_log_level: Box<dyn Fn(LogLevel) + Send + Sync>,
    pub shutdown: CancellationToken,
    pub hostname: String,
}

impl Admin {
    pub fn opts(&self) -> Arc<Options> {
        self.opts.read().clone()
    }

    pub fn sources(&self) -> Sources {
        let o = self.opts();
        Sources {
            lookupd: o.lookupd_http_addresses.clone(),
            nsqd: o.nsqd_http_addresses.clone(),
        }
    }
}

pub fn router(admin: Arc<Admin>) -> Router {
    Router::new().fallback(dispatch).with_state(admin)
}

/// The routes, below the base path.
#[derive(Debug, Clone, PartialEq)]
enum Route {
    Page,
    Ping,
    Asset(String),
    Render,
    Topics,
    Topic(String),
    Channel(String, String),
    Nodes,
    Node(String),
    Counter,
    Graphite,
    Summary,
    Events,
    Config(String),
}

/// Match a (decoded) path below the base path: the route and its methods.
fn match_route(path: &str, proxy_graphite: bool) -> Option<(Route, &'static [Method])> {
    const GET: &[Method] = &[Method::GET];
    const GET_POST: &[Method] = &[Method::GET, Method::POST];
    const GET_POST_DELETE: &[Method] = &[Method::GET, Method::POST, Method::DELETE];
    const GET_DELETE: &[Method] = &[Method::GET, Method::DELETE];
    const GET_PUT: &[Method] = &[Method::GET, Method::PUT];
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segs.iter().skip(1).any(|s| s.is_empty()) {
        return None;
    }
    let s = |x: &str| x.to_string();
    Some(match segs.as_slice() {
        [""] => (Route::Page, GET),
        ["topics" | "nodes" | "counter" | "lookup"]
        | ["topics" | "nodes", _]
        | ["topics", _, _] => (Route::Page, GET),
        ["ping"] => (Route::Ping, GET),
        ["static" | "fonts", a] => (Route::Asset(s(a)), GET),
        ["render"] if proxy_graphite => (Route::Render, GET),
        ["api", "topics"] => (Route::Topics, GET_POST),
        ["api", "topics", t] => (Route::Topic(s(t)), GET_POST_DELETE),
        ["api", "topics", t, c] => (Route::Channel(s(t), s(c)), GET_POST_DELETE),
        ["api", "nodes"] => (Route::Nodes, GET),
        ["api", "nodes", n] => (Route::Node(s(n)), GET_DELETE),
        ["api", "counter"] => (Route::Counter, GET),
        ["api", "graphite"] => (Route::Graphite, GET),
        ["api", "summary"] => (Route::Summary, GET),
        ["api", "events"] => (Route::Events, GET),
        ["config", o] => (Route::Config(s(o)), GET_PUT),
        _ => return None,
    })
}

/// Percent-decoding of a URL path (as Go's `URL.Path`: `+` stays).
fn decode_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The part of `path` below `base`, if it is below it.
fn below_base<'a>(base: &str, path: &'a str) -> Option<&'a str> {
    if base == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(base)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

fn fail(status: StatusCode, message: &str) -> Response {
    error(status, message)
}

fn upstream(e: String) -> Response {
    tracing::error!("{e}");
    fail(StatusCode::BAD_GATEWAY, &format!("UPSTREAM_ERROR: {e}"))
}

/// A JSON answer with NSQ's `message` beside the object's own fields.
#[derive(Serialize)]
struct WithMessage<'a, T: Serialize> {
    #[serde(flatten)]
    inner: &'a T,
    message: String,
}

fn with_message<T: Serialize>(inner: &T, messages: &[String]) -> Response {
    ok_json(&WithMessage {
        inner,
        message: warning(messages),
    })
}

/// Keep a partial result's errors as one warning line; a total failure is
/// a 502.
macro_rules! gathered {
    ($e:expr, $messages:ident) => {
        match $e {
            Ok(p) => {
                if !p.errors.is_empty() {
                    let text = p.errors.join("\n");
                    tracing::warn!("{text}");
                    $messages.push(text);
                }
                p.value
            }
            Err(e) => return upstream(e),
        }
    };
}

/// An action's errors: none, some (a warning), or a total failure (502).
macro_rules! acted {
    ($e:expr, $messages:ident) => {
        match $e {
            Ok(errors) => {
                if !errors.is_empty() {
                    let text = errors.join("\n");
                    tracing::warn!("{text}");
                    $messages.push(text);
                }
            }
            Err(e) => return upstream(e),
        }
    };
}

/// What the handlers get of a request.
struct Ctx {
    admin: Arc<Admin>,
    method: Method,
    headers: HeaderMap,
    remote: SocketAddr,
    path: String,
    query: String,
}

async fn dispatch(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let resp = route_request(admin, remote, req).await;
    let status = resp.status().as_u16();
    let line = format!(
        "{status} {method} {} ({remote}) {:?}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        started.elapsed()
    );
    if method == Method::GET && status < 400 {
        tracing::debug!("{line}");
    } else {
        tracing::info!("{line}");
    }
    resp
}

async fn route_request(admin: Arc<Admin>, remote: SocketAddr, req: Request) -> Response {
    let opts = admin.opts();
    let raw_path = req.uri().path().to_string();
    let path = decode_path(&raw_path);
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    let matched = below_base(&opts.base_path, &path).and_then(|rest| {
        match_route(rest, opts.proxy_graphite).or_else(|| {
            // NSQ's router redirects a known path given with a trailing slash.
            let trimmed = rest.strip_suffix('/').filter(|t| !t.is_empty())?;
            match_route(trimmed, opts.proxy_graphite).map(|_| (Route::Page, &[][..]))
        })
    });
    let Some((route, methods)) = matched else {
        return fail(StatusCode::NOT_FOUND, "NOT_FOUND");
    };
    if methods.is_empty() {
        let status = if method == Method::GET {
            StatusCode::MOVED_PERMANENTLY
        } else {
            StatusCode::TEMPORARY_REDIRECT
        };
        let mut location = raw_path.trim_end_matches('/').to_string();
        if !query.is_empty() {
            location = format!("{location}?{query}");
        }
        return (status, [(header::LOCATION, location)]).into_response();
    }
    if !methods.contains(&method) {
        return fail(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    }
    let (parts, body) = req.into_parts();
    let ctx = Ctx {
        admin,
        method,
        headers: parts.headers,
        remote,
        path: raw_path,
        query,
    };
    let get = ctx.method == Method::GET;
    match route {
        Route::Page => page(&ctx),
        Route::Ping => crate::http_api::ping(None),
        Route::Asset(name) => asset(&ctx, &name),
        Route::Render => render(&ctx).await,
        Route::Topics if get => topics(&ctx).await,
        Route::Topics => create_topic_channel(&ctx, body).await,
        Route::Topic(t) if get => topic(&ctx, &t).await,
        Route::Topic(t) if ctx.method == Method::POST => action(&ctx, body, t, String::new()).await,
        Route::Topic(t) => delete_topic(&ctx, &t).await,
        Route::Channel(t, c) if get => channel(&ctx, &t, &c).await,
        Route::Channel(t, c) if ctx.method == Method::POST => action(&ctx, body, t, c).await,
        Route::Channel(t, c) => delete_channel(&ctx, &t, &c).await,
        Route::Nodes => nodes(&ctx).await,
        Route::Node(n) if get => node(&ctx, &n).await,
        Route::Node(n) => tombstone(&ctx, body, n).await,
        Route::Counter => counter(&ctx).await,
        Route::Graphite => graphite(&ctx).await,
        Route::Summary => summary(&ctx),
        Route::Events => events(&ctx),
        Route::Config(opt) => config(&ctx, body, &opt).await,
    }
}

// ------------------------------------------------------------------ pages

fn page(ctx: &Ctx) -> Response {
    let opts = ctx.admin.opts();
    let html = assets::index_html(&opts, is_admin(ctx));
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

fn asset(ctx: &Ctx, name: &str) -> Response {
    let opts = ctx.admin.opts();
    let found = if opts.dev_static_dir.is_empty() {
        assets::get(name).map(|(bytes, ctype)| (bytes.to_vec(), ctype))
    } else {
        (!name.contains(".."))
            .then(|| std::fs::read(std::path::Path::new(&opts.dev_static_dir).join(name)).ok())
            .flatten()
            .map(|bytes| (bytes, assets::content_type(name)))
    };
    match found {
        Some((bytes, ctype)) => (
            [
                (header::CONTENT_TYPE, ctype),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "NOT_FOUND").into_response(),
    }
}

/// `/render` with `--proxy-graphite`: the same request, sent to Graphite.
async fn render(ctx: &Ctx) -> Response {
    let opts = ctx.admin.opts();
    let Ok(mut url) = reqwest::Url::parse(&opts.graphite_url) else {
        return fail(StatusCode::BAD_GATEWAY, "INVALID_GRAPHITE_URL");
    };
    url.set_path(&ctx.path);
    url.set_query((!ctx.query.is_empty()).then_some(ctx.query.as_str()));
    match ctx.admin.cluster.get_raw(url.as_str()).await {
        Ok((status, ctype, body)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut resp = (status, body).into_response();
            if let Ok(v) = ctype.parse() {
                resp.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            resp
        }
        Err(e) => {
            tracing::error!("graphite proxy: {e}");
            (StatusCode::BAD_GATEWAY, e).into_response()
        }
    }
}

/// `/api/summary`: the latest summary of the samples.
fn summary(ctx: &Ctx) -> Response {
    let latest = ctx.admin.summary.borrow().clone();
    ok_json(&*latest)
}

/// `/api/events`: a `summary` event after every sample (the first at once).
fn events(ctx: &Ctx) -> Response {
    let rx = ctx.admin.summary.clone();
    let stop = ctx.admin.shutdown.clone();
    let stream =
        futures_util::stream::unfold((rx, stop, true), |(mut rx, stop, first)| async move {
            if !first {
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return None },
                    _ = stop.cancelled() => return None,
                }
            }
            let summary = rx.borrow_and_update().clone();
            let data = serde_json::to_string(&*summary).expect("plain data serializes");
            let event = Event::default().event("summary").data(data);
            Some((Ok::<_, std::convert::Infallible>(event), (rx, stop, false)))
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

// ------------------------------------------------------------- questions

async fn topics(ctx: &Ctx) -> Response {
    let q = match Query::parse(&ctx.query) {
        Ok(q) => q,
        Err(e) => return fail(e.0, e.1),
    };
    let src = ctx.admin.sources();
    let cluster = &ctx.admin.cluster;
    let mut messages = Vec::new();
    let topics = gathered!(cluster.topics(&src).await, messages);
    if q.get("inactive") == Some("true") {
        let mut inactive = std::collections::BTreeMap::new();
        if !src.lookupd.is_empty() {
            let checks = topics.iter().map(|t| {
                let lookupd = &src.lookupd;
                async move {
                    let producers = cluster
                        .lookupd_topic_producers(t, lookupd)
                        .await
                        .map(|p| p.value)
                        .unwrap_or_default();
                    if !producers.is_empty() {
                        return None;
                    }
                    let channels = cluster
                        .lookupd_topic_channels(t, lookupd)
                        .await
                        .map(|p| p.value)
                        .unwrap_or_default();
                    Some((t.clone(), channels))
                }
            });
            inactive.extend(
                futures_util::future::join_all(checks)
                    .await
                    .into_iter()
                    .flatten(),
            );
        }
        #[derive(Serialize)]
        struct Inactive {
            topics: std::collections::BTreeMap<String, Vec<String>>,
            message: String,
        }
        return ok_json(&Inactive {
            topics: inactive,
            message: warning(&messages),
        });
    }
    #[derive(Serialize)]
    struct Topics {
        topics: Vec<String>,
        message: String,
    }
    ok_json(&Topics {
        topics,
        message: warning(&messages),
    })
}

async fn topic(ctx: &Ctx, topic: &str) -> Response {
    let src = ctx.admin.sources();
    let cluster = &ctx.admin.cluster;
    let mut messages = Vec::new();
    let producers = gathered!(cluster.topic_producers(topic, &src).await, messages);
    let (per_node, _) = gathered!(
        cluster.nsqd_stats(&producers, topic, "", false).await,
        messages
    );
    with_message(&aggregate::topic_total(topic, &per_node), &messages)
}

async fn channel(ctx: &Ctx, topic: &str, channel: &str) -> Response {
    let src = ctx.admin.sources();
    let cluster = &ctx.admin.cluster;
    let mut messages = Vec::new();
    let producers = gathered!(cluster.topic_producers(topic, &src).await, messages);
    let (_, mut channels) = gathered!(
        cluster.nsqd_stats(&producers, topic, channel, true).await,
        messages
    );
    match channels.remove(channel) {
        Some(c) => with_message(&c, &messages),
        None => ok_json(&serde_json::json!({ "message": warning(&messages) })),
    }
}

async fn nodes(ctx: &Ctx) -> Response {
    let src = ctx.admin.sources();
    let mut messages = Vec::new();
    let nodes = gathered!(ctx.admin.cluster.producers(&src).await, messages);
    #[derive(Serialize)]
    struct Nodes {
        nodes: Vec<Producer>,
        message: String,
    }
    ok_json(&Nodes {
        nodes,
        message: warning(&messages),
    })
}

async fn node(ctx: &Ctx, node: &str) -> Response {
    let src = ctx.admin.sources();
    let cluster = &ctx.admin.cluster;
    let mut messages = Vec::new();
    let producers = gathered!(cluster.producers(&src).await, messages);
    let Some(producer) = producers.into_iter().find(|p| p.http_address() == node) else {
        return fail(StatusCode::NOT_FOUND, "NODE_NOT_FOUND");
    };
    let topics = match cluster.nsqd_stats(&[producer], "", "", true).await {
        Ok(p) if p.errors.is_empty() => p.value.0,
        Ok(p) => return upstream(p.errors.join("\n")),
        Err(e) => return upstream(e),
    };
    let (total_messages, total_clients) = aggregate::node_totals(&topics);
    #[derive(Serialize)]
    struct Node {
        node: String,
        topics: Vec<TopicStats>,
        total_messages: i64,
        total_clients: i64,
        message: String,
    }
    ok_json(&Node {
        node: node.to_string(),
        topics,
        total_messages,
        total_clients,
        message: warning(&messages),
    })
}

async fn counter(ctx: &Ctx) -> Response {
    let src = ctx.admin.sources();
    let cluster = &ctx.admin.cluster;
    let mut messages = Vec::new();
    let producers = gathered!(cluster.producers(&src).await, messages);
    let (_, channels) = gathered!(
        cluster.nsqd_stats(&producers, "", "", false).await,
        messages
    );
    #[derive(Serialize)]
    struct Counter {
        stats: std::collections::BTreeMap<String, aggregate::CounterStats>,
        message: String,
    }
    ok_json(&Counter {
        stats: aggregate::counter(&channels),
        message: warning(&messages),
    })
}

async fn graphite(ctx: &Ctx) -> Response {
    let Ok(q) = Query::parse(&ctx.query) else {
        return fail(StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    };
    if q.get("metric") != Some("rate") {
        return fail(StatusCode::BAD_REQUEST, "INVALID_ARG_METRIC");
    }
    let Some(target) = q.get("target") else {
        return fail(StatusCode::BAD_REQUEST, "INVALID_ARG_TARGET");
    };
    let opts = ctx.admin.opts();
    let secs = opts.statsd_interval.as_secs().max(1);
    let url = format!(
        "{}/render?format=json&from=-{}sec&target={}&until=-{}sec",
        opts.graphite_url,
        secs * 2,
        super::cluster::query_escape(target),
        secs
    );
    tracing::info!("GRAPHITE: {url}");
    #[derive(serde::Deserialize)]
    struct Series {
        datapoints: Vec<Vec<Option<f64>>>,
    }
    let rate = match ctx.admin.cluster.get_raw(&url).await {
        Ok((200, _, body)) => serde_json::from_slice::<Vec<Series>>(&body)
            .ok()
            .and_then(|s| s.first()?.datapoints.first()?.first().copied().flatten()),
        Ok(_) => None,
        Err(e) => {
            tracing::error!("graphite request failed - {e}");
            None
        }
    };
    let Some(rate) = rate else {
        return fail(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR");
    };
    let text = if rate < 0.0 {
        "N/A".to_string()
    } else {
        format!("{:.2}", rate / secs as f64)
    };
    ok_json(&serde_json::json!({ "rate": text }))
}

// --------------------------------------------------------------- actions

/// Whether the request may act: anyone when no `--admin-user` is given,
/// else only a user named by the `--acl-http-header` header.
fn is_admin(ctx: &Ctx) -> bool {
    let opts = ctx.admin.opts();
    if opts.admin_users.is_empty() {
        return true;
    }
    let user = ctx
        .headers
        .get(opts.acl_http_header.as_str())
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    opts.admin_users.iter().any(|u| u == user)
}

fn forbidden() -> Response {
    fail(StatusCode::FORBIDDEN, "FORBIDDEN")
}

/// Queue a notification of an action, as NSQ describes it.
fn notify(ctx: &Ctx, action: &str, topic: &str, channel: &str, node: &str) {
    let header = |name: header::HeaderName| {
        ctx.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let scheme = if ctx
        .headers
        .get("x-scheme")
        .is_some_and(|v| v.as_bytes() == b"https")
    {
        "https"
    } else {
        "http"
    };
    let mut url = format!("{scheme}://{}{}", header(header::HOST), ctx.path);
    if !ctx.query.is_empty() {
        url = format!("{url}?{}", ctx.query);
    }
    ctx.admin.notifier.send(AdminAction {
        action: action.into(),
        topic: topic.into(),
        channel: channel.into(),
        node: node.into(),
        timestamp: chrono::Utc::now().timestamp(),
        user: basic_auth_user(
            ctx.headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        ),
        remote_ip: ctx.remote.to_string(),
        user_agent: header(header::USER_AGENT),
        url,
        via: ctx.admin.hostname.clone(),
    });
}

/// Read a JSON request body as Go's `json.Decoder` would for a struct of
/// string fields: the first JSON value; keys matched case-insensitively;
/// errors in Go's words.
async fn read_fields(body: Body, fields: &[&str]) -> Result<Vec<String>, String> {
    let bytes = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .map_err(|_| "http: request body too large".to_string())?;
    let value = go_json_value(&bytes)?;
    let mut out = vec![String::new(); fields.len()];
    match value {
        serde_json::Value::Null => {}
        serde_json::Value::Object(map) => {
            for (i, field) in fields.iter().enumerate() {
                // Go prefers an exact match, else any case-insensitive one.
                let found = map.get(*field).or_else(|| {
                    map.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(field))
                        .map(|(_, v)| v)
                });
                match found {
                    None | Some(serde_json::Value::Null) => {}
                    Some(serde_json::Value::String(s)) => out[i] = s.clone(),
                    Some(other) => {
                        return Err(format!(
                        "json: cannot unmarshal {} into Go struct field .{field} of type string",
                        go_kind(other)
                    ))
                    }
                }
            }
        }
        other => {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type struct",
                go_kind(&other)
            ))
        }
    }
    Ok(out)
}

fn go_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// The first JSON value of a body, or Go's error text for it.
fn go_json_value(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err("EOF".into());
    };
    let mut values = serde_json::Deserializer::from_slice(&bytes[start..]).into_iter();
    match values.next() {
        Some(Ok(v)) => Ok(v),
        None => Err("EOF".into()),
        Some(Err(e)) if e.is_eof() => Err("unexpected EOF".into()),
        Some(Err(e)) => {
            // Point at the offending byte, as Go does.
            let line_start: usize = bytes[start..]
                .split(|b| *b == b'\n')
                .take(e.line().saturating_sub(1))
                .map(|l| l.len() + 1)
                .sum();
            let at = start + line_start + e.column().saturating_sub(1);
            match bytes.get(at) {
                Some(&c) if at == start => Err(format!(
                    "invalid character {:?} looking for beginning of value",
                    c as char
                )),
                Some(&c) => Err(format!("invalid character {:?} {}", c as char, {
                    if e.classify() == serde_json::error::Category::Syntax {
                        "in JSON value"
                    } else {
                        "in JSON"
                    }
                })),
                None => Err("unexpected EOF".into()),
            }
        }
    }
}

async fn create_topic_channel(ctx: &Ctx, body: Body) -> Response {
    if !is_admin(ctx) {
        return forbidden();
    }
    let (topic, channel) = match read_fields(body, &["topic", "channel"]).await {
        Ok(f) => (f[0].clone(), f[1].clone()),
        Err(e) => return fail(StatusCode::BAD_REQUEST, &e),
    };
    if !crate::protocol::names::is_valid_name(topic.as_bytes()) {
        return fail(StatusCode::BAD_REQUEST, "INVALID_TOPIC");
    }
    if !channel.is_empty() && !crate::protocol::names::is_valid_name(channel.as_bytes()) {
        return fail(StatusCode::BAD_REQUEST, "INVALID_CHANNEL");
    }
    let mut messages = Vec::new();
    acted!(
        ctx.admin
            .cluster
            .create_topic_channel(&topic, &channel, &ctx.admin.sources())
            .await,
        messages
    );
    notify(ctx, "create_topic", &topic, "", "");
    if !channel.is_empty() {
        notify(ctx, "create_channel", &topic, &channel, "");
    }
    ok_json(&serde_json::json!({ "message": warning(&messages) }))
}

async fn action(ctx: &Ctx, body: Body, topic: String, channel: String) -> Response {
    if !is_admin(ctx) {
        return forbidden();
    }
    let action = match read_fields(body, &["action"]).await {
        Ok(f) => f[0].clone(),
        Err(e) => return fail(StatusCode::BAD_REQUEST, &e),
    };
    let what = if channel.is_empty() {
        "topic"
    } else {
        "channel"
    };
    if !matches!(action.as_str(), "pause" | "unpause" | "empty") {
        return fail(StatusCode::BAD_REQUEST, "INVALID_ACTION");
    }
    let outcome = ctx
        .admin
        .cluster
        .act(
            &format!("{what}/{action}"),
            &topic,
            &channel,
            &ctx.admin.sources(),
        )
        .await;
    notify(ctx, &format!("{action}_{what}"), &topic, &channel, "");
    let mut messages = Vec::new();
    acted!(outcome, messages);
    ok_json(&serde_json::json!({ "message": warning(&messages) }))
}

async fn delete_topic(ctx: &Ctx, topic: &str) -> Response {
    if !is_admin(ctx) {
        return forbidden();
    }
    let mut messages = Vec::new();
    acted!(
        ctx.admin
            .cluster
            .delete_topic(topic, &ctx.admin.sources())
            .await,
        messages
    );
    notify(ctx, "delete_topic", topic, "", "");
    ok_json(&serde_json::json!({ "message": warning(&messages) }))
}

async fn delete_channel(ctx: &Ctx, topic: &str, channel: &str) -> Response {
    if !is_admin(ctx) {
        return forbidden();
    }
    let mut messages = Vec::new();
    acted!(
        ctx.admin
            .cluster
            .delete_channel(topic, channel, &ctx.admin.sources())
            .await,
        messages
    );
    notify(ctx, "delete_channel", topic, channel, "");
    ok_json(&serde_json::json!({ "message": warning(&messages) }))
}

async fn tombstone(ctx: &Ctx, body: Body, node: String) -> Response {
    if !is_admin(ctx) {
        return forbidden();
    }
    let topic = match read_fields(body, &["topic"]).await {
        Ok(f) => f[0].clone(),
        Err(_) => return fail(StatusCode::BAD_REQUEST, "INVALID_BODY"),
    };
    if !crate::protocol::names::is_valid_name(topic.as_bytes()) {
        return fail(StatusCode::BAD_REQUEST, "INVALID_TOPIC");
    }
    let lookupd = ctx.admin.opts().lookupd_http_addresses.clone();
    let mut messages = Vec::new();
    acted!(
        ctx.admin
            .cluster
            .tombstone_node_for_topic(&topic, &node, &lookupd)
            .await,
        messages
    );
    notify(ctx, "tombstone_topic_producer", &topic, "", &node);
    ok_json(&serde_json::json!({ "message": warning(&messages) }))
}

// ---------------------------------------------------------------- /config

async fn config(ctx: &Ctx, body: Body, opt: &str) -> Response {
    let opts = ctx.admin.opts();
    if !opts.allow_config_from_cidr.is_empty() {
        let allowed = Cidr::parse(&opts.allow_config_from_cidr)
            .map(|c| c.contains(ctx.remote.ip()))
            .unwrap_or(false);
        if !allowed {
            return forbidden();
        }
    }
    if ctx.method == Method::PUT {
        const READ_MAX: usize = 1024 * 1024 + 1;
        let body = match axum::body::to_bytes(body, READ_MAX).await {
            Ok(b) => b,
            Err(_) => return fail(StatusCode::PAYLOAD_TOO_LARGE, "INVALID_VALUE"),
        };
        if body.is_empty() || body.len() >= READ_MAX {
            return fail(StatusCode::PAYLOAD_TOO_LARGE, "INVALID_VALUE");
        }
        let mut new = (*opts).clone();
        match opt {
            "nsqlookupd_http_addresses" => match serde_json::from_slice::<Vec<String>>(&body) {
                Ok(addrs) => new.lookupd_http_addresses = addrs,
                Err(_) => return fail(StatusCode::BAD_REQUEST, "INVALID_VALUE"),
            },
            "log_level" => {
                match crate::cli::parse_log_level(String::from_utf8_lossy(&body).trim()) {
                    Ok(level) => {
                        new.daemon.log_level = level;
                        (ctx.admin.set_log_level)(level);
                    }
                    Err(_) => return fail(StatusCode::BAD_REQUEST, "INVALID_VALUE"),
                }
            }
            _ => return fail(StatusCode::BAD_REQUEST, "INVALID_OPTION"),
        }
        *ctx.admin.opts.write() = Arc::new(new);
    }
    match ctx.admin.opts().config_value(opt) {
        Some(value) => value.into_response(),
        None => fail(StatusCode::BAD_REQUEST, "INVALID_OPTION"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let m = |p: &str| match_route(p, false).map(|(r, _)| r);
        assert_eq!(m("/"), Some(Route::Page));
        assert_eq!(m("/topics/t/c"), Some(Route::Page));
        assert_eq!(m("/lookup"), Some(Route::Page));
        assert_eq!(m("/api/topics/t"), Some(Route::Topic("t".into())));
        assert_eq!(
            m("/api/topics/t/c"),
            Some(Route::Channel("t".into(), "c".into()))
        );
        assert_eq!(m("/api/topics/t/c/x"), None);
        assert_eq!(m("/api/topics//c"), None);
        assert_eq!(m("/render"), None);
        assert_eq!(
            match_route("/render", true).map(|r| r.0),
            Some(Route::Render)
        );
        assert_eq!(
            m("/config/log_level"),
            Some(Route::Config("log_level".into()))
        );
        assert_eq!(m("/nope"), None);
        assert_eq!(below_base("/", "/x"), Some("/x"));
        assert_eq!(below_base("/admin", "/admin"), Some("/"));
        assert_eq!(below_base("/admin", "/admin/api/nodes"), Some("/api/nodes"));
        assert_eq!(below_base("/admin", "/adminx"), None);
        assert_eq!(decode_path("/api/topics/a%23b"), "/api/topics/a#b");
        assert_eq!(decode_path("/a%2"), "/a%2");
        assert_eq!(decode_path("/a+b%zz"), "/a+b%zz");
    }

    #[test]
    fn go_json_errors() {
        assert_eq!(go_json_value(b"").unwrap_err(), "EOF");
        assert_eq!(go_json_value(b"  \n").unwrap_err(), "EOF");
        assert_eq!(
            go_json_value(b"{\"action\":").unwrap_err(),
            "unexpected EOF"
        );
        assert_eq!(
            go_json_value(b"xyz").unwrap_err(),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(
            go_json_value(b"{\"a\":1}trailing").unwrap(),
            serde_json::json!({"a":1})
        );
    }

    #[tokio::test]
    async fn fields_as_go_decodes_them() {
        let f = |s: &'static str| read_fields(Body::from(s), &["action"]);
        assert_eq!(f(r#"{"action":"pause"}"#).await.unwrap(), ["pause"]);
        assert_eq!(f(r#"{"Action":"empty"}"#).await.unwrap(), ["empty"]);
        assert_eq!(f("null").await.unwrap(), [""]);
        assert_eq!(
            f(r#"{"action":1}"#).await.unwrap_err(),
            "json: cannot unmarshal number into Go struct field .action of type string"
        );
        assert_eq!(
            f("[1]").await.unwrap_err(),
            "json: cannot unmarshal array into Go value of type struct"
        );
    }
}
