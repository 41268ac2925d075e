//! `/config/:opt`: nsqd's options read (GET) and, for two of them, changed
//! (PUT) at run time, as NSQ's answers them.
//!
//! `:opt` is an option's config-file name. GET answers the value nsqd runs
//! with (defaults resolved, as NSQ's options are after start: the node ID,
//! the broadcast address and ports, the expanded statsd prefix): strings as
//! plain text, everything else as JSON, durations in nanoseconds, the log
//! level as its number (1 debug … 5 fatal), `--tls-required` as NSQ's
//! number (0 false, 1 tcp-https, 2 true) and `--tls-min-version` as the TLS
//! version number (769 for tls1.0). PUT takes `nsqlookupd_tcp_addresses`
//! (a JSON array of addresses) and `log_level` (plain text, e.g. `debug`).

use super::Nsqd;
use crate::http_api::{ApiError, ConfigValue};
use axum::http::StatusCode;
use serde_json::json;
use std::time::Duration;

/// The value of option `name`, or `None` for a name nsqd has no flag for.
pub fn value(nsqd: &Nsqd, name: &str) -> Option<ConfigValue> {
    let o = &nsqd.opts;
    let text = |s: &str| Some(ConfigValue::Text(s.to_string()));
    let num = |v: i64| Some(ConfigValue::Json(json!(v)));
    let flag = |b: bool| Some(ConfigValue::Json(json!(b)));
    let nanos = |d: Duration| Some(ConfigValue::Json(json!(d.as_nanos() as u64)));
    let list = |v: &[String]| Some(ConfigValue::Json(json!(v)));
    // An unset list flag is Go's nil slice: `null`.
    let list_or_null = |v: &[String]| match v.is_empty() {
        true => Some(ConfigValue::Json(serde_json::Value::Null)),
        false => list(v),
    };
    match name {
        "id" => num(i64::from(nsqd.settings.node_id)),
        "log_level" => num(nsqd.log_level() as i64),
        "log_prefix" => text(&o.log_prefix),
        "tcp_address" => text(&o.tcp_address),
        "http_address" => text(&o.http_address),
        "https_address" => text(&o.https_address),
        "broadcast_address" => text(&o.effective_broadcast_address()),
        "broadcast_tcp_port" => num(i64::from(nsqd.broadcast_tcp_port())),
        "broadcast_http_port" => num(i64::from(nsqd.broadcast_http_port())),
        "nsqlookupd_tcp_addresses" => {
            Some(ConfigValue::Json(json!(nsqd.lookupd_addresses_setting())))
        }
        "auth_http_addresses" => list(&o.auth_http_addresses),
        "auth_http_request_method" => text(&o.auth_http_request_method),
        "http_client_connect_timeout" => nanos(o.http_client_connect_timeout),
        "http_client_request_timeout" => nanos(o.http_client_request_timeout),
        "topology_region" => text(&o.topology_region),
        "topology_zone" => text(&o.topology_zone),
        "data_path" => text(&o.data_path),
        "mem_queue_size" => num(o.mem_queue_size),
        "mem_queue_bytes" => num(o.mem_queue_bytes),
        "max_bytes_per_file" => num(o.max_bytes_per_file),
        "sync_every" => num(o.sync_every),
        "sync_timeout" => nanos(o.sync_timeout),
        "queue_scan_selection_count" => num(o.queue_scan_selection_count),
        "queue_scan_worker_pool_max" => num(o.queue_scan_worker_pool_max),
        "msg_timeout" => nanos(o.msg_timeout),
        "max_msg_timeout" => nanos(o.max_msg_timeout),
        "max_msg_size" => num(o.max_msg_size),
        "max_body_size" => num(o.max_body_size),
        "max_req_timeout" => nanos(o.max_req_timeout),
        "max_defer_timeout" => nanos(o.max_defer()),
        "max_heartbeat_interval" => nanos(o.max_heartbeat_interval),
        "max_rdy_count" => num(o.max_rdy_count),
        "max_output_buffer_size" => num(o.max_output_buffer_size),
        "max_output_buffer_timeout" => nanos(o.max_output_buffer_timeout),
        "min_output_buffer_timeout" => nanos(o.min_output_buffer_timeout),
        "output_buffer_timeout" => nanos(o.output_buffer_timeout),
        "max_channel_consumers" => num(o.max_channel_consumers),
        "max_attempts" => num(i64::from(o.max_attempts)),
        "statsd_address" => text(&o.statsd_address),
        "statsd_prefix" => text(&super::statsd::prefix(
            &o.statsd_prefix,
            &o.effective_broadcast_address(),
            nsqd.broadcast_http_port(),
        )),
        "statsd_interval" => nanos(o.statsd_interval),
        "statsd_mem_stats" => flag(o.statsd_mem_stats),
        "statsd_udp_packet_size" => num(o.statsd_udp_packet_size),
        "statsd_exclude_ephemeral" => flag(o.statsd_exclude_ephemeral),
        "e2e_processing_latency_window_time" => nanos(o.e2e_processing_latency_window_time),
        "e2e_processing_latency_percentiles" => Some(ConfigValue::RawJson(percentiles(
            &o.e2e_processing_latency_percentiles,
        ))),
        "tls_cert" => text(&o.tls_cert),
        "tls_key" => text(&o.tls_key),
        "tls_client_auth_policy" => text(&o.tls_client_auth_policy),
        "tls_root_ca_file" => text(&o.tls_root_ca_file),
        "tls_required" => num(tls_required(&o.tls_required, &o.tls_client_auth_policy)),
        "tls_min_version" => num(tls_min_version(&o.tls_min_version)),
        "deflate" => flag(o.deflate),
        "max_deflate_level" => num(o.max_deflate_level),
        "snappy" => flag(o.snappy),
        "enable_experiment" => list_or_null(&o.enable_experiment),
        _ => None,
    }
}

/// Apply `PUT /config/:opt` with this (size-checked, non-empty) body.
pub fn set(nsqd: &Nsqd, name: &str, body: &[u8]) -> Result<(), ApiError> {
    let invalid = ApiError(StatusCode::BAD_REQUEST, "INVALID_VALUE");
    match name {
        "nsqlookupd_tcp_addresses" => {
            let addresses = parse_string_list(body).ok_or(invalid)?;
            nsqd.set_lookupd_addresses(addresses);
        }
        "log_level" => {
            let level = std::str::from_utf8(body)
                .ok()
                .and_then(|s| crate::cli::parse_log_level(s).ok())
                .ok_or(invalid)?;
            nsqd.set_log_level(level);
        }
        _ => return Err(ApiError(StatusCode::BAD_REQUEST, "INVALID_OPTION")),
    }
    Ok(())
}

/// A JSON array of strings, decoded as Go's `json.Unmarshal` decodes one
/// into a `[]string`: `null` leaves the list nil (`None`), a `null` element
/// is an empty string, anything else that is not a string is an error, and
/// nothing but whitespace may follow the value.
fn parse_string_list(body: &[u8]) -> Option<Option<Vec<String>>> {
    match serde_json::from_slice::<serde_json::Value>(body).ok()? {
        serde_json::Value::Null => Some(None),
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Null => Some(String::new()),
                _ => None,
            })
            .collect::<Option<Vec<String>>>()
            .map(Some),
        _ => None,
    }
}

/// NSQ's number for `--tls-required`; a client auth policy implies 2.
fn tls_required(flag: &str, client_auth_policy: &str) -> i64 {
    match flag {
        "tcp-https" => 1,
        "true" => 2,
        _ if !client_auth_policy.is_empty() => 2,
        _ => 0,
    }
}

/// Go's `tls.VersionTLS1x` number for `--tls-min-version`.
fn tls_min_version(flag: &str) -> i64 {
    match flag.to_ascii_lowercase().as_str() {
        "tls1.1" => 0x0302,
        "tls1.2" => 0x0303,
        "tls1.3" => 0x0304,
        _ => 0x0301,
    }
}

/// The percentiles as NSQ shows them: sorted from highest, as Go writes
/// floats (`1`, `0.99`, `1e-7`); `null` when none are set.
fn percentiles(values: &[f64]) -> String {
    if values.is_empty() {
        return "null".into();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let items: Vec<String> = sorted.into_iter().map(go_float).collect();
    format!("[{}]", items.join(","))
}

/// A float as Go's `encoding/json` writes it: the shortest text that reads
/// back the same, in exponent form below 1e-6 or from 1e21.
fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        format!("{f:e}")
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nsqd(args: &[&str]) -> std::sync::Arc<Nsqd> {
        let opts = super::super::Options::parse_args(
            std::iter::once("nsqd")
                .chain(args.iter().copied())
                .map(Into::into),
        )
        .unwrap();
        Nsqd::new(opts)
    }

    fn json(v: Option<ConfigValue>) -> String {
        match v {
            Some(ConfigValue::Json(v)) => v.to_string(),
            Some(ConfigValue::RawJson(s)) => s,
            other => panic!("not JSON: {other:?}"),
        }
    }

    #[test]
    fn values_as_nsq_shows_them() {
        let n = nsqd(&[
            "--node-id=7",
            "--log-level=warn",
            "--statsd-prefix=app.%s",
            "--broadcast-address=h.example",
            "--broadcast-http-port=99",
            "--e2e-processing-latency-percentile=0.5,1.0",
            "--e2e-processing-latency-percentile=0.99",
        ]);
        assert_eq!(json(value(&n, "id")), "7");
        assert_eq!(json(value(&n, "log_level")), "3");
        assert_eq!(json(value(&n, "msg_timeout")), "60000000000");
        assert_eq!(json(value(&n, "nsqlookupd_tcp_addresses")), "[]");
        assert_eq!(json(value(&n, "auth_http_addresses")), "[]");
        assert_eq!(json(value(&n, "enable_experiment")), "null");
        assert_eq!(json(value(&n, "snappy")), "true");
        assert_eq!(json(value(&n, "tls_required")), "0");
        assert_eq!(json(value(&n, "tls_min_version")), "769");
        assert_eq!(
            json(value(&n, "e2e_processing_latency_percentiles")),
            "[1,0.99,0.5]"
        );
        assert_eq!(
            value(&n, "statsd_prefix"),
            Some(ConfigValue::Text("app.h_example_99.".into()))
        );
        assert_eq!(
            value(&n, "log_prefix"),
            Some(ConfigValue::Text("[nsqd] ".into()))
        );
        assert_eq!(value(&n, "lookupd_tcp_address"), None);
        assert_eq!(value(&n, "logger"), None);
        let plain = nsqd(&[]);
        assert_eq!(
            json(value(&plain, "e2e_processing_latency_percentiles")),
            "null"
        );
    }

    #[test]
    fn tls_numbers() {
        assert_eq!(tls_required("false", ""), 0);
        assert_eq!(tls_required("tcp-https", ""), 1);
        assert_eq!(tls_required("true", ""), 2);
        assert_eq!(tls_required("false", "require"), 2);
        assert_eq!(tls_min_version("tls1.2"), 771);
        assert_eq!(tls_min_version("TLS1.3"), 772);
    }

    #[test]
    fn go_floats() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(0.999), "0.999");
        assert_eq!(go_float(1e-7), "1e-7");
        assert_eq!(go_float(2.5e-10), "2.5e-10");
        assert_eq!(go_float(0.000001), "0.000001");
    }

    #[test]
    fn string_lists_as_go_decodes_them() {
        let p = |s: &str| parse_string_list(s.as_bytes());
        assert_eq!(
            p(r#" ["a:1", "b:2"] "#),
            Some(Some(vec!["a:1".into(), "b:2".into()]))
        );
        assert_eq!(p("[]"), Some(Some(vec![])));
        assert_eq!(p("null"), Some(None));
        assert_eq!(
            p(r#"["a",null]"#),
            Some(Some(vec!["a".into(), String::new()]))
        );
        assert_eq!(p(r#"[1]"#), None);
        assert_eq!(p(r#""a:1""#), None);
        assert_eq!(p(r#"{"a":1}"#), None);
        assert_eq!(p(r#"["a"] x"#), None);
        assert_eq!(p("a:1"), None);
    }

    #[test]
    fn put_changes_the_two_options_only() {
        let n = nsqd(&["--lookupd-tcp-address=a:1"]);
        set(&n, "nsqlookupd_tcp_addresses", br#"["b:2","c:3"]"#).unwrap();
        assert_eq!(n.lookupd_addresses(), vec!["b:2", "c:3"]);
        set(&n, "nsqlookupd_tcp_addresses", b"null").unwrap();
        assert_eq!(json(value(&n, "nsqlookupd_tcp_addresses")), "null");
        assert!(n.lookupd_addresses().is_empty());
        set(&n, "log_level", b"DEBUG").unwrap();
        assert_eq!(json(value(&n, "log_level")), "1");
        let err = |r: Result<(), ApiError>| {
            let e = r.unwrap_err();
            (e.0.as_u16(), e.1)
        };
        assert_eq!(
            err(set(&n, "log_level", b"\"debug\"")),
            (400, "INVALID_VALUE")
        );
        assert_eq!(
            err(set(&n, "log_level", b"debug\n")),
            (400, "INVALID_VALUE")
        );
        assert_eq!(
            err(set(&n, "nsqlookupd_tcp_addresses", b"[1]")),
            (400, "INVALID_VALUE")
        );
        assert_eq!(
            err(set(&n, "mem_queue_size", b"5")),
            (400, "INVALID_OPTION")
        );
        assert_eq!(
            json(value(&n, "log_level")),
            "1",
            "failed PUTs change nothing"
        );
    }
}
