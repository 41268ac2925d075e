//! nsqd's HTTP API, answering as NSQ v1.3 does: parameters from the query
//! string for every method, JSON errors `{"message":"..."}` with NSQ's status
//! codes, and the `X-NSQ-Content-Type` header go-nsq relies on.
//!
//! Routing is one explicit table (method, path) → handler, so that an unknown
//! path is a 404 and a known path with the wrong method a 405, both with
//! NSQ's JSON bodies.
//!
//! With `--auth-required` naming the listener, every request but `/ping`
//! carries a secret (`Authorization: Bearer <secret>`) that the auth server
//! approves: 401 `AUTH_REQUIRED` without one, 401 `AUTH_FAILED` when the
//! auth server refuses it (or cannot be asked), 403 `UNAUTHORIZED` when it
//! does not allow what is asked (`publish` for `/pub` and `/mpub`, `admin`
//! for creating, deleting, emptying, pausing and `/channel/config`, which
//! also needs `publish` on a dead-letter topic it names, `subscribe` or
//! `admin` to see a channel in `/stats` and `/metrics` and to peek at it).

use super::auth::{Asker, Authorization, HttpAuth, HttpAuthError, Permission};
use super::stats::{self, StatsFilter};
use super::Nsqd;
use crate::http_api::{
    error, ok_empty, ok_json, ok_text, route_rejection, ApiError, ApiResult, Query,
};
use crate::protocol::names::is_valid_name;
use crate::protocol::NSQ_VERSION;
use axum::body::to_bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// What one listener's handlers share.
#[derive(Clone)]
struct Api {
    nsqd: Arc<Nsqd>,
    /// The auth server's answers, when this listener requires them.
    guard: Option<Arc<HttpAuth>>,
    /// The HTTPS listener (the auth server is told `tls=true`).
    https: bool,
}

/// nsqd's API for one listener: `guard` when `--auth-required` names it.
pub fn router(nsqd: Arc<Nsqd>, guard: Option<Arc<HttpAuth>>, https: bool) -> Router {
    Router::new()
        .fallback(dispatch)
        .with_state(Api { nsqd, guard, https })
}

/// The routes: path, allowed method.
const ROUTES: &[(&str, Method)] = &[
    ("/ping", Method::GET),
    ("/info", Method::GET),
    ("/pub", Method::POST),
    ("/mpub", Method::POST),
    ("/stats", Method::GET),
    ("/metrics", Method::GET),
    ("/topic/create", Method::POST),
    ("/topic/delete", Method::POST),
    ("/topic/empty", Method::POST),
    ("/topic/pause", Method::POST),
    ("/topic/unpause", Method::POST),
    ("/channel/create", Method::POST),
    ("/channel/delete", Method::POST),
    ("/channel/empty", Method::POST),
    ("/channel/pause", Method::POST),
    ("/channel/unpause", Method::POST),
    ("/channel/config", Method::POST),
    ("/channel/peek", Method::GET),
    (CONFIG, Method::GET),
    (CONFIG, Method::PUT),
];

/// `/config/:opt`, as NSQ routes it.
const CONFIG: &str = "/config/:opt";

async fn dispatch(State(api): State<Api>, req: Request) -> Response {
    let nsqd = &api.nsqd;
    let path = req.uri().path().to_string();
    if let Some(resp) = route_rejection(ROUTES, &req) {
        return resp;
    }
    if path == "/ping" {
        return crate::http_api::ping(nsqd.health());
    }
    let auth = match &api.guard {
        None => None,
        Some(guard) => match authenticate(&api, guard, &req).await {
            Ok(auth) => Some(auth),
            Err(resp) => return resp,
        },
    };
    let auth = auth.as_deref();
    let query = crate::http_api::raw_query(&req).into_owned();
    let result = match path.as_str() {
        "/info" => info(nsqd),
        "/pub" => publish(nsqd, auth, &query, req).await,
        "/mpub" => multi_publish(nsqd, auth, &query, req).await,
        "/stats" => stats_handler(nsqd, auth, &query),
        "/metrics" => Ok(metrics(nsqd, auth)),
        "/topic/create" => topic_create(nsqd, auth, &query),
        "/topic/delete" => topic_action(nsqd, auth, &query, TopicAction::Delete),
        "/topic/empty" => topic_action(nsqd, auth, &query, TopicAction::Empty),
        "/topic/pause" => topic_action(nsqd, auth, &query, TopicAction::Pause),
        "/topic/unpause" => topic_action(nsqd, auth, &query, TopicAction::Unpause),
        "/channel/create" => channel_action(nsqd, auth, &query, ChannelAction::Create),
        "/channel/delete" => channel_action(nsqd, auth, &query, ChannelAction::Delete),
        "/channel/empty" => channel_action(nsqd, auth, &query, ChannelAction::Empty),
        "/channel/pause" => channel_action(nsqd, auth, &query, ChannelAction::Pause),
        "/channel/unpause" => channel_action(nsqd, auth, &query, ChannelAction::Unpause),
        "/channel/config" => channel_config(nsqd, auth, &query),
        "/channel/peek" => channel_peek(nsqd, auth, &query),
        p => match crate::http_api::path_param(CONFIG, p, "opt") {
            Some(opt) => config(nsqd, auth, opt, req).await,
            None => Err(ApiError(StatusCode::NOT_FOUND, "NOT_FOUND")),
        },
    };
    match result {
        Ok(resp) => resp,
        Err(ApiError(status, text)) => error(status, text),
    }
}

/// Ask the auth server (or its cached answer) about the request's secret.
/// (The request body is not `Sync`: nothing borrowed from the request is
/// held across the wait.)
fn authenticate(
    api: &Api,
    guard: &Arc<HttpAuth>,
    req: &Request,
) -> impl std::future::Future<Output = Result<Arc<Authorization>, Response>> + Send + 'static {
    let remote_ip = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let common_name = req
        .extensions()
        .get::<crate::http_server::TlsPeer>()
        .map(|p| p.common_name.clone())
        .unwrap_or_else(|| "".into());
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let (nsqd, guard, tls) = (api.nsqd.clone(), guard.clone(), api.https);
    async move {
        let asker = Asker {
            remote_ip,
            tls,
            common_name: &common_name,
        };
        guard
            .authorize(&nsqd, header.as_deref(), &asker)
            .await
            .map_err(auth_error)
    }
}

fn auth_error(e: HttpAuthError) -> Response {
    match e {
        HttpAuthError::Missing => {
            let mut resp = error(StatusCode::UNAUTHORIZED, "AUTH_REQUIRED");
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"nsqd\""),
            );
            resp
        }
        HttpAuthError::Failed => error(StatusCode::UNAUTHORIZED, "AUTH_FAILED"),
        HttpAuthError::NoGrants => error(StatusCode::FORBIDDEN, "UNAUTHORIZED"),
    }
}

/// 403 `UNAUTHORIZED` unless the request's authorization (if one is
/// required) allows `permission` on (topic, channel).
fn permit(
    auth: Option<&Authorization>,
    permission: Permission,
    topic: &str,
    channel: &str,
) -> Result<(), ApiError> {
    match auth {
        Some(a) if !a.allows(permission, topic, channel) => {
            Err(ApiError(StatusCode::FORBIDDEN, "UNAUTHORIZED"))
        }
        _ => Ok(()),
    }
}

/// Leave out of `/stats` what `auth` may not see: channels it can neither
/// subscribe to nor administer, topics it can neither publish to nor
/// administer and has no visible channel in, and their producers.
fn restrict(stats: &mut stats::Stats, auth: Option<&Authorization>) {
    if let Some(a) = auth {
        let either =
            |p: Permission, q: Permission, t: &str, c: &str| a.allows(p, t, c) || a.allows(q, t, c);
        stats.retain(
            |t| either(Permission::Publish, Permission::Admin, t, ""),
            |t, c| either(Permission::Subscribe, Permission::Admin, t, c),
        );
    }
}

#[derive(Serialize)]
struct Info {
    version: &'static str,
    broadcast_address: String,
    hostname: String,
    http_port: i64,
    tcp_port: i64,
    start_time: i64,
    max_heartbeat_interval: u128,
    max_output_buffer_size: usize,
    max_output_buffer_timeout: u128,
    max_deflate_level: u32,
    /// Only on NSQ's master branch: sent when set.
    #[serde(skip_serializing_if = "String::is_empty")]
    topology_zone: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    topology_region: String,
}

fn info(nsqd: &Nsqd) -> ApiResult {
    let opts = &nsqd.opts;
    let addrs = nsqd.addrs.get();
    Ok(ok_json(&Info {
        version: NSQ_VERSION,
        broadcast_address: opts.effective_broadcast_address(),
        hostname: crate::sys::hostname(),
        // -1 for a unix socket, as NSQ; 0 with no HTTP listener.
        http_port: addrs
            .and_then(|a| a.http.as_ref())
            .map_or(0, |a| a.info_port()),
        tcp_port: addrs.map_or(0, |a| a.tcp.info_port()),
        start_time: nsqd.start_time,
        max_heartbeat_interval: opts.max_heartbeat_interval.as_nanos(),
        max_output_buffer_size: nsqd.settings.max_output_buffer_size,
        max_output_buffer_timeout: opts.max_output_buffer_timeout.as_nanos(),
        max_deflate_level: nsqd.settings.max_deflate_level,
        topology_zone: opts.topology_zone.clone(),
        topology_region: opts.topology_region.clone(),
    }))
}

/// `true`/`1` → true, `false`/`0` → false, absent → `default`, anything
/// else → true (NSQ's rule for include_clients and similar flags).
fn bool_param(q: &Query, key: &str, default: bool) -> bool {
    match q.get(key) {
        None => default,
        Some("false") | Some("0") => false,
        Some(_) => true,
    }
}

fn content_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Read the body, refusing (with `too_big`) anything over `limit` bytes.
async fn read_body(req: Request, limit: usize, too_big: &'static str) -> Result<Bytes, ApiError> {
    match to_bytes(req.into_body(), limit + 1).await {
        Ok(b) if b.len() > limit => Err(ApiError(StatusCode::PAYLOAD_TOO_LARGE, too_big)),
        Ok(b) => Ok(b),
        Err(e) => {
            // axum reports an over-limit body as an error too.
            if format!("{e:?}").contains("LengthLimit") {
                Err(ApiError(StatusCode::PAYLOAD_TOO_LARGE, too_big))
            } else {
                Err(ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_ERROR",
                ))
            }
        }
    }
}

/// The `topic` parameter, checked with the topic endpoints' error names.
fn topic_param(q: &Query) -> Result<&str, ApiError> {
    let topic = q
        .get("topic")
        .ok_or(ApiError(StatusCode::BAD_REQUEST, "MISSING_ARG_TOPIC"))?;
    if !is_valid_name(topic.as_bytes()) {
        return Err(ApiError(StatusCode::BAD_REQUEST, "INVALID_TOPIC"));
    }
    Ok(topic)
}

/// Publish and, with `--sync-every=1`, wait for the fsync before answering.
/// Failures are 503 `EXITING`, as NSQ answers any failed put.
async fn put_and_wait(
    nsqd: &Nsqd,
    topic: &super::topic::Topic,
    bodies: impl IntoIterator<Item = Bytes>,
    defer: Duration,
) -> Result<(), ApiError> {
    let exiting = ApiError(StatusCode::SERVICE_UNAVAILABLE, "EXITING");
    let ticket = nsqd
        .publish(topic, bodies, defer)
        .map_err(|_| exiting.clone())?;
    nsqd.wait_durable(&ticket).await.map_err(|_| exiting)
}

async fn publish(
    nsqd: &Nsqd,
    auth: Option<&Authorization>,
    raw_query: &str,
    req: Request,
) -> ApiResult {
    let max = nsqd.settings.max_msg_size;
    if content_length(&req).is_some_and(|n| n > max as u64) {
        return Err(ApiError(StatusCode::PAYLOAD_TOO_LARGE, "MSG_TOO_BIG"));
    }
    let body = read_body(req, max, "MSG_TOO_BIG").await?;
    if body.is_empty() {
        return Err(ApiError(StatusCode::BAD_REQUEST, "MSG_EMPTY"));
    }
    let q = Query::parse(raw_query)?;
    let name = topic_param(&q)?;
    permit(auth, Permission::Publish, name, "")?;
    let topic = nsqd.get_or_create_topic(name);
    let mut defer = Duration::ZERO;
    if let Some(d) = q.get("defer") {
        let ms: i64 = d
            .parse()
            .map_err(|_| ApiError(StatusCode::BAD_REQUEST, "INVALID_DEFER"))?;
        if ms < 0 || ms as u128 > nsqd.opts.max_defer().as_millis() {
            return Err(ApiError(StatusCode::BAD_REQUEST, "INVALID_DEFER"));
        }
        defer = Duration::from_millis(ms as u64);
    }
    put_and_wait(nsqd, &topic, std::iter::once(body), defer).await?;
    Ok(ok_text("OK"))
}

async fn multi_publish(
    nsqd: &Nsqd,
    auth: Option<&Authorization>,
    raw_query: &str,
    req: Request,
) -> ApiResult {
    let (max_body, max_msg) = (nsqd.settings.max_body_size, nsqd.settings.max_msg_size);
    if content_length(&req).is_some_and(|n| n > max_body as u64) {
        return Err(ApiError(StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_BIG"));
    }
    let q = Query::parse(raw_query)?;
    let name = topic_param(&q)?;
    permit(auth, Permission::Publish, name, "")?;
    let topic = nsqd.get_or_create_topic(name);
    let binary = !matches!(q.get("binary"), None | Some("false") | Some("0"));
    let body = read_body(req, max_body, "BODY_TOO_BIG").await?;
    let bodies = if binary {
        split_binary(&body, max_msg, max_body)?
    } else {
        let mut out = Vec::new();
        for line in body.split(|&b| b == b'\n') {
            if line.len() > max_msg {
                return Err(ApiError(StatusCode::PAYLOAD_TOO_LARGE, "MSG_TOO_BIG"));
            }
            if !line.is_empty() {
                out.push(body.slice_ref(line));
            }
        }
        out
    };
    if !bodies.is_empty() {
        put_and_wait(nsqd, &topic, bodies, Duration::ZERO).await?;
    }
    Ok(ok_text("OK"))
}

/// `[i32 count]([i32 size][bytes])*`, validated as TCP MPUB's inner part;
/// errors are 413 with the TCP code minus `E_`.
pub(crate) fn split_binary(
    body: &Bytes,
    max_msg: usize,
    max_body: usize,
) -> Result<Vec<Bytes>, ApiError> {
    let bad_body = ApiError(StatusCode::PAYLOAD_TOO_LARGE, "BAD_BODY");
    let read_i32 = |at: usize| -> Option<i32> {
        body.get(at..at + 4)
            .map(|b| i32::from_be_bytes(b.try_into().expect("4 bytes")))
    };
    let count = read_i32(0).ok_or(bad_body)?;
    if count <= 0 || count as i64 > (max_body as i64 - 4) / 5 {
        return Err(ApiError(StatusCode::PAYLOAD_TOO_LARGE, "BAD_BODY"));
    }
    let bad_message = || ApiError(StatusCode::PAYLOAD_TOO_LARGE, "BAD_MESSAGE");
    let mut pos = 4;
    let mut out = Vec::with_capacity(count.min(4096) as usize);
    for _ in 0..count {
        let size = read_i32(pos).ok_or_else(bad_message)?;
        if size <= 0 || size as usize > max_msg {
            return Err(bad_message());
        }
        let start = pos + 4;
        let end = start + size as usize;
        if end > body.len() {
            return Err(bad_message());
        }
        out.push(body.slice(start..end));
        pos = end;
    }
    Ok(out)
}

/// `GET /config/:opt` answers an option's value; `PUT` changes
/// `nsqlookupd_tcp_addresses` or `log_level` and answers the new value.
/// The body is checked before the name, as NSQ does: empty or over
/// `--max-msg-size` is 413 `INVALID_VALUE`.
async fn config(nsqd: &Nsqd, auth: Option<&Authorization>, opt: &str, req: Request) -> ApiResult {
    // Behind --auth-required: nsqd's settings are everyone's business, so
    // an admin grant for every topic and channel (`.*`) is needed.
    permit(auth, Permission::Admin, "", "")?;
    if req.method() == Method::PUT {
        let body = read_body(req, nsqd.settings.max_msg_size, "INVALID_VALUE").await?;
        if body.is_empty() {
            return Err(ApiError(StatusCode::PAYLOAD_TOO_LARGE, "INVALID_VALUE"));
        }
        super::config::set(nsqd, opt, &body)?;
    }
    super::config::value(nsqd, opt)
        .map(|v| v.into_response())
        .ok_or(ApiError(StatusCode::BAD_REQUEST, "INVALID_OPTION"))
}

/// Prometheus text format (version 0.0.4).
fn metrics(nsqd: &Nsqd, auth: Option<&Authorization>) -> Response {
    let mut stats = stats::collect(nsqd, &StatsFilter::default());
    restrict(&mut stats, auth);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        super::metrics::render(&stats),
    )
        .into_response()
}

fn stats_handler(nsqd: &Nsqd, auth: Option<&Authorization>, raw_query: &str) -> ApiResult {
    let q = Query::parse(raw_query)?;
    let filter = StatsFilter {
        topic: q.get("topic").map(str::to_string),
        channel: q.get("channel").map(str::to_string),
        include_clients: bool_param(&q, "include_clients", true),
        include_mem: bool_param(&q, "include_mem", true),
    };
    let mut stats = stats::collect(nsqd, &filter);
    restrict(&mut stats, auth);
    if q.get("format") == Some("json") {
        Ok(ok_json(&stats))
    } else {
        Ok(ok_text(stats::render_text(nsqd, &stats)))
    }
}

fn topic_create(nsqd: &Nsqd, auth: Option<&Authorization>, raw_query: &str) -> ApiResult {
    let q = Query::parse(raw_query)?;
    let name = topic_param(&q)?;
    permit(auth, Permission::Admin, name, "")?;
    nsqd.get_or_create_topic(name);
    Ok(ok_empty())
}

enum TopicAction {
    Delete,
    Empty,
    Pause,
    Unpause,
}

fn topic_action(
    nsqd: &Nsqd,
    auth: Option<&Authorization>,
    raw_query: &str,
    action: TopicAction,
) -> ApiResult {
    let q = Query::parse(raw_query)?;
    let name = q
        .get("topic")
        .ok_or(ApiError(StatusCode::BAD_REQUEST, "MISSING_ARG_TOPIC"))?;
    permit(auth, Permission::Admin, name, "")?;
    let not_found = ApiError(StatusCode::NOT_FOUND, "TOPIC_NOT_FOUND");
    match action {
        TopicAction::Delete => {
            if !nsqd.delete_topic(name) {
                return Err(not_found);
            }
        }
        TopicAction::Empty => {
            if !is_valid_name(name.as_bytes()) {
                return Err(ApiError(StatusCode::BAD_REQUEST, "INVALID_TOPIC"));
            }
            nsqd.get_topic(name).ok_or(not_found)?.empty();
        }
        TopicAction::Pause => {
            nsqd.get_topic(name).ok_or(not_found)?.pause();
            nsqd.persist_metadata();
        }
        TopicAction::Unpause => {
            nsqd.get_topic(name).ok_or(not_found)?.unpause();
            nsqd.persist_metadata();
        }
    }
    Ok(ok_empty())
}

enum ChannelAction {
    Create,
    Delete,
    Empty,
    Pause,
    Unpause,
}

fn channel_action(
    nsqd: &Nsqd,
    auth: Option<&Authorization>,
    raw_query: &str,
    action: ChannelAction,
) -> ApiResult {
    let q = Query::parse(raw_query)?;
    let (topic_name, channel_name) = q.topic_and_channel()?;
    permit(auth, Permission::Admin, topic_name, channel_name)?;
    let topic = nsqd
        .get_topic(topic_name)
        .ok_or(ApiError(StatusCode::NOT_FOUND, "TOPIC_NOT_FOUND"))?;
    if let ChannelAction::Create = action {
        nsqd.get_or_create_channel(&topic, channel_name);
        return Ok(ok_empty());
    }
    let not_found = ApiError(StatusCode::NOT_FOUND, "CHANNEL_NOT_FOUND");
    match action {
        ChannelAction::Delete => {
            if !nsqd.delete_channel(&topic, channel_name) {
                return Err(not_found);
            }
        }
        ChannelAction::Empty => topic.get_channel(channel_name).ok_or(not_found)?.empty(),
        ChannelAction::Pause => {
            topic.get_channel(channel_name).ok_or(not_found)?.pause();
            nsqd.persist_metadata();
        }
        ChannelAction::Unpause => {
            topic.get_channel(channel_name).ok_or(not_found)?.unpause();
            nsqd.persist_metadata();
        }
        ChannelAction::Create => unreachable!("handled above"),
    }
    Ok(ok_empty())
}

/// Most messages `/channel/peek` returns.
const MAX_PEEK: usize = 1000;

/// `/channel/peek` (beyond NSQ): the next `n` (default 10, at most 1,000)
/// messages the channel would deliver, changing nothing. Each has `id`,
/// `timestamp` (ns), `attempts` (deliveries so far) and its body as `body`
/// (text) when it is UTF-8, else as `body_base64`.
fn channel_peek(nsqd: &Nsqd, auth: Option<&Authorization>, raw_query: &str) -> ApiResult {
    use base64::Engine;
    let q = Query::parse(raw_query)?;
    let bad = |text| ApiError(StatusCode::BAD_REQUEST, text);
    let topic_name = q.get("topic").ok_or(bad("MISSING_ARG_TOPIC"))?;
    let channel_name = q.get("channel").ok_or(bad("MISSING_ARG_CHANNEL"))?;
    let n = match q.get("n") {
        None => 10,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PEEK).contains(n))
            .ok_or(bad("INVALID_N"))?,
    };
    // Reading a channel's messages: as for seeing it in `/stats`.
    permit(auth, Permission::Subscribe, topic_name, channel_name)
        .or_else(|_| permit(auth, Permission::Admin, topic_name, channel_name))?;
    let channel = nsqd
        .get_topic(topic_name)
        .ok_or(ApiError(StatusCode::NOT_FOUND, "TOPIC_NOT_FOUND"))?
        .get_channel(channel_name)
        .ok_or(ApiError(StatusCode::NOT_FOUND, "CHANNEL_NOT_FOUND"))?;
    let messages: Vec<serde_json::Value> = channel
        .peek(n)
        .iter()
        .map(|m| {
            let mut v = serde_json::json!({
                "id": String::from_utf8_lossy(&m.id.to_hex()),
                "timestamp": m.timestamp,
                "attempts": m.attempts,
            });
            match std::str::from_utf8(&m.body) {
                Ok(text) => v["body"] = text.into(),
                Err(_) => {
                    v["body_base64"] = base64::engine::general_purpose::STANDARD
                        .encode(&m.body)
                        .into()
                }
            }
            v
        })
        .collect();
    Ok(ok_json(&serde_json::json!({ "messages": messages })))
}

/// `/channel/config` (beyond NSQ): a channel's dead-letter settings,
/// `max_attempts` (0: no limit; `default`: the daemon's) and
/// `dead_letter_topic` (`default`: `<topic>.dead-letter`), each optional.
fn channel_config(nsqd: &Nsqd, auth: Option<&Authorization>, raw_query: &str) -> ApiResult {
    let q = Query::parse(raw_query)?;
    let (topic_name, channel_name) = q.topic_and_channel()?;
    let bad = |text| ApiError(StatusCode::BAD_REQUEST, text);
    // `None`: unchanged; `Some(None)`: back to the default.
    let max_attempts = match q.get("max_attempts") {
        None => None,
        Some("default") => Some(None),
        Some(v) => Some(Some(
            v.parse::<u16>().map_err(|_| bad("INVALID_MAX_ATTEMPTS"))?,
        )),
    };
    let topic = match q.get("dead_letter_topic") {
        None => None,
        Some("default") => Some(None),
        Some(t) if is_valid_name(t.as_bytes()) && !crate::protocol::names::is_ephemeral(t) => {
            Some(Some(t.to_string()))
        }
        Some(_) => return Err(bad("INVALID_DEAD_LETTER_TOPIC")),
    };
    permit(auth, Permission::Admin, topic_name, channel_name)?;
    // Dead letters are published to the topic named: that needs `publish`.
    if let Some(Some(t)) = &topic {
        permit(auth, Permission::Publish, t, "")?;
    }
    let channel = nsqd
        .get_topic(topic_name)
        .ok_or(ApiError(StatusCode::NOT_FOUND, "TOPIC_NOT_FOUND"))?
        .get_channel(channel_name)
        .ok_or(ApiError(StatusCode::NOT_FOUND, "CHANNEL_NOT_FOUND"))?;
    let current = channel.dead_letter_config();
    let max_attempts = max_attempts.unwrap_or(current.own_max_attempts);
    let topic = topic.unwrap_or(current.own_topic);
    // (A topic not there yet is marked when the first dead letter arrives.)
    if let Some(dead) = topic.as_deref().and_then(|t| nsqd.get_topic(t)) {
        dead.mark_dead_letter();
    }
    channel.set_dead_letters(max_attempts, topic);
    nsqd.persist_metadata();
    Ok(ok_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing_like_go() {
        let q = Query::parse("topic=a%20b&topic=second&x=1+2&flag").unwrap();
        assert_eq!(q.get("topic"), Some("a b"));
        assert_eq!(q.get("x"), Some("1 2"));
        assert_eq!(q.get("flag"), Some(""));
        assert!(Query::parse("topic=%zz").is_err());
        assert!(Query::parse("a=1;b=2").is_err());
    }

    #[tokio::test]
    async fn info_ports_as_nsq_shows_them() {
        use super::super::engine::BoundAddrs;
        use crate::listen::LocalAddr;
        let ports = |http: Option<LocalAddr>, tcp: LocalAddr| {
            let nsqd = Nsqd::new(
                super::super::Options::parse_args(["nsqd"].map(std::ffi::OsString::from)).unwrap(),
            );
            let _ = nsqd.addrs.set(BoundAddrs {
                tcp,
                http,
                https: None,
            });
            let body = info(&nsqd).unwrap().into_body();
            let bytes = futures_util::FutureExt::now_or_never(to_bytes(body, 1 << 20))
                .unwrap()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            (
                v["tcp_port"].as_i64().unwrap(),
                v["http_port"].as_i64().unwrap(),
            )
        };
        let tcp = |p| LocalAddr::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], p)));
        let unix = || LocalAddr::Unix("/run/nsqd.sock".into());
        assert_eq!(ports(Some(tcp(4151)), tcp(4150)), (4150, 4151));
        assert_eq!(ports(Some(unix()), unix()), (-1, -1), "unix sockets");
        assert_eq!(ports(None, tcp(4150)), (4150, 0), "no HTTP listener");
    }

    #[test]
    fn binary_mpub_layout() {
        let mut body = vec![0, 0, 0, 2];
        body.extend_from_slice(&[0, 0, 0, 1, b'a', 0, 0, 0, 2, b'b', b'c']);
        let parts = split_binary(&Bytes::from(body), 10, 100).unwrap();
        assert_eq!(
            parts,
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"bc")]
        );
        assert_eq!(
            split_binary(&Bytes::from_static(&[0, 0, 0, 0]), 10, 100)
                .unwrap_err()
                .1,
            "BAD_BODY"
        );
        assert_eq!(
            split_binary(
                &Bytes::from_static(&[0, 0, 0, 1, 0, 0, 0, 5, b'a']),
                10,
                100
            )
            .unwrap_err()
            .1,
            "BAD_MESSAGE"
        );
    }
}
