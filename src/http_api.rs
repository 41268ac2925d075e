//! The HTTP API envelope NSQ's daemons share (nsqd and nsqlookupd answer
//! alike): JSON errors `{"message":"..."}` with NSQ's status codes, the
//! `X-NSQ-Content-Type` header go-nsq relies on, query-string parameters
//! parsed as Go does, and routing by one explicit table so that an unknown
//! path is a 404 and a wrong method a 405, both with NSQ's JSON bodies.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::HashMap;

/// Check a request against a route table (path, allowed method; a path
/// may appear once per method, and a `:name` segment matches any non-empty
/// segment, as httprouter's parameters do). `Some` is the response to send
/// instead: 404, 405, or NSQ's redirect of a known path with a trailing
/// slash.
pub fn route_rejection(routes: &[(&str, Method)], req: &Request) -> Option<Response> {
    let path = req.uri().path();
    let method = req.method();
    let allowed: Vec<&Method> = routes
        .iter()
        .filter(|(p, _)| path_matches(p, path))
        .map(|(_, m)| m)
        .collect();
    if allowed.is_empty() {
        if let Some(trimmed) = path.strip_suffix('/') {
            if routes.iter().any(|(p, _)| path_matches(p, trimmed)) {
                let status = if method == Method::GET {
                    StatusCode::MOVED_PERMANENTLY
                } else {
                    StatusCode::TEMPORARY_REDIRECT
                };
                let query = raw_query(req);
                let location = if query.is_empty() {
                    trimmed.to_string()
                } else {
                    format!("{trimmed}?{query}")
                };
                return Some((status, [(header::LOCATION, location)]).into_response());
            }
        }
        return Some(error(StatusCode::NOT_FOUND, "NOT_FOUND"));
    }
    (!allowed.contains(&method))
        .then(|| error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"))
}

/// Whether `path` matches a route `pattern` (`:name` segments match any
/// non-empty segment).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains(':') {
        return pattern == path;
    }
    let (mut want, mut got) = (pattern.split('/'), path.split('/'));
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with(':') && !g.is_empty() => {}
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

/// The value of the `:name` segment of `pattern` in `path` (which matches it).
pub fn path_param<'a>(pattern: &str, path: &'a str, name: &str) -> Option<&'a str> {
    pattern
        .split('/')
        .zip(path.split('/'))
        .find(|(w, _)| w.strip_prefix(':') == Some(name))
        .map(|(_, g)| g)
}

/// `/ping`: plain text, without the NSQ header (as NSQ answers it).
pub fn ping(health: Option<String>) -> Response {
    let (status, body) = match health {
        None => (StatusCode::OK, "OK".to_string()),
        Some(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("NOK - {e}")),
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// An HTTP error: status and NSQ's message text.
#[derive(Debug, Clone)]
pub struct ApiError(pub StatusCode, pub &'static str);

pub type ApiResult = Result<Response, ApiError>;

const NSQ_HEADER: &str = "x-nsq-content-type";
const NSQ_HEADER_VALUE: &str = "nsq; version=1.0";

pub fn with_nsq_header(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(NSQ_HEADER, HeaderValue::from_static(NSQ_HEADER_VALUE));
    resp
}

pub fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "message": message }).to_string();
    with_nsq_header(
        (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

pub fn ok_json<T: Serialize>(value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("plain data serializes");
    with_nsq_header(
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

pub fn ok_text(text: impl Into<Body>) -> Response {
    with_nsq_header(
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text.into(),
        )
            .into_response(),
    )
}

/// A `/config/:opt` value: NSQ writes strings as they are (no JSON
/// quotes, no JSON content type) and everything else as compact JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    Text(String),
    Json(serde_json::Value),
    /// JSON text already rendered (for numbers Go formats differently
    /// from serde_json, such as `1` for the float 1.0).
    RawJson(String),
}

impl ConfigValue {
    pub fn into_response(self) -> Response {
        match self {
            // Go sniffs no content type for an empty body.
            ConfigValue::Text(s) if s.is_empty() => ok_empty(),
            ConfigValue::Text(s) => ok_text(s),
            ConfigValue::Json(v) => ok_json(&v),
            ConfigValue::RawJson(s) => with_nsq_header(
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                    s,
                )
                    .into_response(),
            ),
        }
    }
}

pub fn ok_empty() -> Response {
    with_nsq_header(StatusCode::OK.into_response())
}

/// A request's raw query string, wherever it came: in the target, or, for
/// a target too long for the `http` crate, in the header the server moved
/// it to (see [`crate::http_server::long_target`]).
pub fn raw_query(req: &Request) -> std::borrow::Cow<'_, str> {
    if let Some(q) = req.uri().query() {
        return q.into();
    }
    req.headers()
        .get(crate::http_server::long_target::QUERY_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .unwrap_or_default()
}

/// Query parameters, first value wins, parsed as Go's `url.ParseQuery`
/// does (a malformed escape or a `;` is an error).
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(raw: &str) -> Result<Query, ApiError> {
        let bad = ApiError(StatusCode::BAD_REQUEST, "INVALID_REQUEST");
        let mut map = HashMap::new();
        for pair in raw.split('&') {
            if pair.is_empty() {
                continue;
            }
            if pair.contains(';') {
                return Err(bad);
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = unescape(k).ok_or(ApiError(StatusCode::BAD_REQUEST, "INVALID_REQUEST"))?;
            let v = unescape(v).ok_or(ApiError(StatusCode::BAD_REQUEST, "INVALID_REQUEST"))?;
            map.entry(k).or_insert(v);
        }
        Ok(Query(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// `topic` and `channel`, checked with the error texts nsqd's and
    /// nsqlookupd's channel requests share (`MISSING_ARG_*`,
    /// `INVALID_ARG_*`; `/pub` has its own).
    pub fn topic_and_channel(&self) -> Result<(&str, &str), ApiError> {
        let bad = |text| ApiError(StatusCode::BAD_REQUEST, text);
        let topic = self.get("topic").ok_or(bad("MISSING_ARG_TOPIC"))?;
        if !crate::protocol::names::is_valid_name(topic.as_bytes()) {
            return Err(bad("INVALID_ARG_TOPIC"));
        }
        let channel = self.get("channel").ok_or(bad("MISSING_ARG_CHANNEL"))?;
        if !crate::protocol::names::is_valid_name(channel.as_bytes()) {
            return Err(bad("INVALID_ARG_CHANNEL"));
        }
        Ok((topic, channel))
    }
}

fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                // Two hex digits, nothing else: `from_str_radix` alone would
                // take a sign (`%+f`), which Go refuses.
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                out.push(v);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_typed_as_go_writes_them() {
        let content_type = |v: ConfigValue| {
            v.into_response()
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|h| h.to_str().unwrap().to_string())
        };
        assert_eq!(
            content_type(ConfigValue::Text("x".into())).as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(content_type(ConfigValue::Text(String::new())), None);
        assert_eq!(
            content_type(ConfigValue::RawJson("[1]".into())).as_deref(),
            Some("application/json; charset=utf-8")
        );
    }

    #[test]
    fn route_patterns() {
        assert!(path_matches("/config/:opt", "/config/log_level"));
        assert!(!path_matches("/config/:opt", "/config/"));
        assert!(!path_matches("/config/:opt", "/config/a/b"));
        assert!(!path_matches("/config/:opt", "/configs/a"));
        assert!(path_matches("/ping", "/ping"));
        assert_eq!(
            path_param("/config/:opt", "/config/log_level", "opt"),
            Some("log_level")
        );
    }

    /// Found by fuzzing (`http_query`): `%+2` was read as the byte 0x02.
    #[test]
    fn a_signed_escape_is_refused_as_go_does() {
        assert!(Query::parse("topic=a%+20b").is_err());
        assert!(Query::parse("topic=%+f").is_err());
        assert!(Query::parse("topic=%-1").is_err());
        assert_eq!(
            Query::parse("topic=a%2fb").unwrap().get("topic"),
            Some("a/b")
        );
    }
}
