//! The answer of the plain HTTP listener when `--tls-required=true` sends
//! clients to HTTPS (served by [`crate::http_server`]).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// What the plain HTTP listener answers to everything with
/// `--tls-required=true`: 403, and where HTTPS is (NSQ's exact body, with
/// its spaces).
pub fn tls_required(https_port: u16) -> Response {
    let body = format!(r#"{{"message": "TLS_REQUIRED", "https_port": {https_port}}}"#);
    let mut resp = (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response();
    resp.headers_mut().insert(
        "x-nsq-content-type",
        header::HeaderValue::from_static("nsq; version=1.0"),
    );
    resp
}
