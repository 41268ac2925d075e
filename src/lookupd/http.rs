//! nsqlookupd's HTTP API: where consumers and tools ask which nsqd produce a
//! topic, with NSQ's JSON shapes, status codes and error names.

use super::registration_db::{Category, Registration, WILDCARD};
use super::server::Lookupd;
use crate::http_api::{error, ok_empty, ok_json, route_rejection, ApiError, ApiResult, Query};
use crate::protocol::names::is_valid_name;
use crate::protocol::NSQ_VERSION;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

pub fn router(lookupd: Arc<Lookupd>) -> Router {
    Router::new().fallback(dispatch).with_state(lookupd)
}

const ROUTES: &[(&str, Method)] = &[
    ("/ping", Method::GET),
    ("/info", Method::GET),
    ("/debug", Method::GET),
    ("/lookup", Method::GET),
    ("/topics", Method::GET),
    ("/channels", Method::GET),
    ("/nodes", Method::GET),
    ("/topic/create", Method::POST),
    ("/topic/delete", Method::POST),
    ("/channel/create", Method::POST),
    ("/channel/delete", Method::POST),
    ("/topic/tombstone", Method::POST),
];

async fn dispatch(State(lookupd): State<Arc<Lookupd>>, req: Request) -> Response {
    if let Some(resp) = route_rejection(ROUTES, &req) {
        return resp;
    }
    let query = crate::http_api::raw_query(&req);
    let query = query.as_ref();
    let l = &lookupd;
    let result = match req.uri().path() {
        "/ping" => return crate::http_api::ping(None),
        "/info" => Ok(ok_json(&json!({ "version": NSQ_VERSION }))),
        "/debug" => Ok(debug(l)),
        "/lookup" => lookup(l, query),
        "/topics" => Ok(ok_json(&json!({ "topics": l.db.read().topics() }))),
        "/channels" => channels(l, query),
        "/nodes" => Ok(nodes(l)),
        "/topic/create" => topic_create(l, query),
        "/topic/delete" => topic_delete(l, query),
        "/channel/create" => channel_create(l, query),
        "/channel/delete" => channel_delete(l, query),
        "/topic/tombstone" => tombstone(l, query),
        _ => Err(ApiError(StatusCode::NOT_FOUND, "NOT_FOUND")),
    };
    match result {
        Ok(resp) => resp,
        Err(ApiError(status, text)) => error(status, text),
    }
}

fn bad(text: &'static str) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, text)
}

/// The `topic` parameter, unvalidated (lookups accept any name, as NSQ).
fn topic_arg(q: &Query) -> Result<&str, ApiError> {
    q.get("topic").ok_or(bad("MISSING_ARG_TOPIC"))
}

fn lookup(l: &Lookupd, query: &str) -> ApiResult {
    let q = Query::parse(query)?;
    let topic = topic_arg(&q)?;
    let db = l.db.read();
    let found = db.lookup(
        topic,
        Instant::now(),
        l.opts.inactive_producer_timeout,
        l.opts.tombstone_lifetime,
    );
    match found {
        Some(result) => Ok(ok_json(&result)),
        None => Err(ApiError(StatusCode::NOT_FOUND, "TOPIC_NOT_FOUND")),
    }
}

fn channels(l: &Lookupd, query: &str) -> ApiResult {
    let q = Query::parse(query)?;
    let topic = topic_arg(&q)?;
    Ok(ok_json(&json!({ "channels": l.db.read().channels(topic) })))
}

fn nodes(l: &Lookupd) -> Response {
    let db = l.db.read();
    let nodes = db.nodes(
        Instant::now(),
        l.opts.inactive_producer_timeout,
        l.opts.tombstone_lifetime,
    );
    // A struct, not `json!`: the nodes' keys must keep NSQ's order.
    #[derive(serde::Serialize)]
    struct Nodes<'a> {
        producers: Vec<super::registration_db::Node<'a>>,
    }
    ok_json(&Nodes { producers: nodes })
}

fn topic_create(l: &Lookupd, query: &str) -> ApiResult {
    let q = Query::parse(query)?;
    let topic = topic_arg(&q)?;
    if !is_valid_name(topic.as_bytes()) {
        return Err(bad("INVALID_ARG_TOPIC"));
    }
    tracing::info!("DB: adding topic({topic})");
    l.db.write().add_registration(Registration::topic(topic));
    Ok(ok_empty())
}

fn topic_delete(l: &Lookupd, query: &str) -> ApiResult {
    let q = Query::parse(query)?;
    let topic = topic_arg(&q)?;
    let mut db = l.db.write();
    for r in db.find_registrations(Category::Channel, topic, WILDCARD) {
        tracing::info!("DB: removing channel({}) from topic({topic})", r.subkey);
        db.remove_registration(&r);
    }
    for r in db.find_registrations(Category::Topic, topic, "") {
        tracing::info!("DB: removing topic({topic})");
        db.remove_registration(&r);
    }
    Ok(ok_empty())
}

fn channel_create(l: &Lookupd, query: &str) -> ApiResult {
    let q = Query::parse(query)?;
    let (topic, channel) = q.topic_and_channel()?;
    tracing::info!("DB: adding channel({channel}) in topic({topic})");
    let mut db = l.db.write();
    db.add_registration(Registration::channel(topic, channel));
    db.add_registration(Registration::topic(topic));
    Ok(ok_empty())
}

fn channel_delete(l: &Lookupd, query: &str) -> ApiResult {
    let q = Query::parse(query)?;
    let (topic, channel) = q.topic_and_channel()?;
    let mut db = l.db.write();
    let found = db.find_registrations(Category::Channel, topic, channel);
    if found.is_empty() {
        return Err(ApiError(StatusCode::NOT_FOUND, "CHANNEL_NOT_FOUND"));
    }
    tracing::info!("DB: removing channel({channel}) from topic({topic})");
    for r in found {
        db.remove_registration(&r);
    }
    Ok(ok_empty())
}

fn tombstone(l: &Lookupd, query: &str) -> ApiResult {
    let q = Query::parse(query)?;
    let topic = topic_arg(&q)?;
    let node = q.get("node").ok_or(bad("MISSING_ARG_NODE"))?;
    tracing::info!("DB: setting tombstone for producer@{node} of topic({topic})");
    l.db.write().tombstone_node(node, topic, Instant::now());
    Ok(ok_empty())
}

/// `/debug`: every registration with its producers, for diagnosis.
fn debug(l: &Lookupd) -> Response {
    let db = l.db.read();
    let now = Instant::now();
    let since_start = |at: Instant| {
        // Instants have no epoch: report nanoseconds since the Unix epoch
        // by offsetting from the current wall-clock time.
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        wall - now.saturating_duration_since(at).as_nanos() as i128
    };
    let mut out = serde_json::Map::new();
    for (registration, producers) in db.iter() {
        let list: Vec<serde_json::Value> = producers
            .map(|p| {
                let mut entry = json!({
                    "id": p.peer.id,
                    "hostname": p.peer.hostname,
                    "broadcast_address": p.peer.broadcast_address,
                    "tcp_port": p.peer.tcp_port,
                    "http_port": p.peer.http_port,
                    "version": p.peer.version,
                    "last_update": since_start(p.peer.last_update.get()),
                    "tombstoned": p.tombstoned_at.is_some(),
                    "tombstoned_at": p.tombstoned_at.map(since_start).unwrap_or(0),
                });
                // Only NSQ's master branch knows topology: shown when set.
                for (key, value) in [
                    ("topology_zone", &p.peer.topology_zone),
                    ("topology_region", &p.peer.topology_region),
                ] {
                    if !value.is_empty() {
                        entry[key] = json!(value);
                    }
                }
                entry
            })
            .collect();
        out.insert(registration.to_string(), serde_json::Value::Array(list));
    }
    ok_json(&serde_json::Value::Object(out))
}
