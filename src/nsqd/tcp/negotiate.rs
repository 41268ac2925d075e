//! IDENTIFY's negotiation as a pure function: what the client asked for,
//! checked against nsqd's options, decides the connection's settings and
//! the answer. No sockets, so every rule is unit-tested here; the command
//! (`cmd/identify.rs`) applies the outcome and performs the upgrades.

use super::super::Options;
use crate::protocol::identify::{IdentifyRequest, IdentifyResponse};
use crate::protocol::{ProtocolError, NSQ_VERSION};
use std::time::Duration;

/// A connection's heartbeat interval before IDENTIFY changes it: half of
/// nsqd's fixed 60 s client timeout.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);
/// A connection's output buffer before IDENTIFY changes it.
pub const DEFAULT_OUTPUT_BUFFER_SIZE: usize = 16 * 1024;
/// Deflate's level when the client leaves it to nsqd.
const DEFAULT_DEFLATE_LEVEL: i64 = 6;

/// Compression a connection switches to after IDENTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Snappy,
    Deflate(u32),
}

/// The outcome of a valid IDENTIFY.
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiated {
    /// `None`: the client disabled heartbeats.
    pub heartbeat: Option<Duration>,
    pub output_buffer_size: usize,
    pub msg_timeout: Duration,
    pub sample_rate: i32,
    /// The JSON answer, when the client asked for feature negotiation
    /// (otherwise nsqd answers `OK`).
    pub response: Option<IdentifyResponse>,
    /// Upgrade to TLS after answering.
    pub tls: bool,
    /// Then compress.
    pub compression: Option<Compression>,
}

/// Check `req` against `opts`; `tls_available` says whether nsqd has a
/// certificate. Errors are NSQ's, fatal.
pub fn negotiate(
    req: &IdentifyRequest,
    opts: &Options,
    tls_available: bool,
) -> Result<Negotiated, ProtocolError> {
    let bad = |text: String| ProtocolError::fatal("E_BAD_BODY", text);

    let max_hb = opts.max_heartbeat_interval.as_millis() as i64;
    let heartbeat = match req.heartbeat_interval.unwrap_or(0) {
        -1 => None,
        0 => Some(DEFAULT_HEARTBEAT),
        v if (1000..=max_hb).contains(&v) => Some(Duration::from_millis(v as u64)),
        v => return Err(bad(format!("IDENTIFY heartbeat interval ({v}) is invalid"))),
    };

    let (min_obt, max_obt) = (
        opts.min_output_buffer_timeout.as_millis() as i64,
        opts.max_output_buffer_timeout.as_millis() as i64,
    );
    let mut output_buffer_timeout = opts.output_buffer_timeout.as_millis() as i64;
    match req.output_buffer_timeout.unwrap_or(0) {
        -1 => output_buffer_timeout = 0,
        0 => {}
        v if (min_obt..=max_obt).contains(&v) => output_buffer_timeout = v,
        v => {
            return Err(bad(format!(
                "IDENTIFY output buffer timeout ({v}) is invalid"
            )))
        }
    }
    let output_buffer_size = match req.output_buffer_size.unwrap_or(0) {
        -1 => {
            output_buffer_timeout = 0;
            1
        }
        0 => DEFAULT_OUTPUT_BUFFER_SIZE,
        v if (64..=opts.max_output_buffer_size).contains(&v) => v as usize,
        v => return Err(bad(format!("IDENTIFY output buffer size ({v}) is invalid"))),
    };
    let sample_rate = req.sample_rate.unwrap_or(0);
    if !(0..=99).contains(&sample_rate) {
        return Err(bad(format!(
            "IDENTIFY sample rate ({sample_rate}) is invalid"
        )));
    }
    let max_mt = opts.max_msg_timeout.as_millis() as i64;
    let msg_timeout = match req.msg_timeout.unwrap_or(0) {
        0 => opts.msg_timeout,
        v if (1000..=max_mt).contains(&v) => Duration::from_millis(v as u64),
        v => return Err(bad(format!("IDENTIFY msg timeout ({v}) is invalid"))),
    };
    let mut negotiated = Negotiated {
        heartbeat,
        output_buffer_size,
        msg_timeout,
        sample_rate,
        response: None,
        tls: false,
        compression: None,
    };
    if !req.feature_negotiation.unwrap_or(false) {
        return Ok(negotiated);
    }

    // Each feature when the client asks and nsqd allows it.
    let tls = req.tls_v1.unwrap_or(false) && tls_available;
    let deflate = req.deflate.unwrap_or(false) && opts.deflate;
    let snappy = req.snappy.unwrap_or(false) && opts.snappy;
    if deflate && snappy {
        return Err(ProtocolError::fatal(
            "E_IDENTIFY_FAILED",
            "cannot enable both deflate and snappy compression",
        ));
    }
    let mut deflate_level = DEFAULT_DEFLATE_LEVEL;
    if deflate {
        deflate_level = req
            .deflate_level
            .filter(|l| *l > 0)
            .unwrap_or(DEFAULT_DEFLATE_LEVEL);
    }
    deflate_level = deflate_level.min(opts.max_deflate_level);
    negotiated.tls = tls;
    negotiated.compression = match (snappy, deflate) {
        (true, _) => Some(Compression::Snappy),
        (_, true) => Some(Compression::Deflate(deflate_level.clamp(1, 9) as u32)),
        _ => None,
    };
    negotiated.response = Some(IdentifyResponse {
        max_rdy_count: opts.max_rdy_count,
        version: NSQ_VERSION.to_string(),
        max_msg_timeout: max_mt,
        msg_timeout: msg_timeout.as_millis() as i64,
        tls_v1: tls,
        deflate,
        deflate_level,
        max_deflate_level: opts.max_deflate_level,
        snappy,
        sample_rate,
        auth_required: !opts.auth_http_addresses.is_empty(),
        output_buffer_size: output_buffer_size as i64,
        output_buffer_timeout,
        topology_region: opts.topology_region.clone(),
        topology_zone: opts.topology_zone.clone(),
    });
    Ok(negotiated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        Options::parse_args(
            std::iter::once("nsqd")
                .chain(args.iter().copied())
                .map(Into::into),
        )
        .unwrap()
    }

    fn request(json: &str) -> IdentifyRequest {
        IdentifyRequest::parse(json.as_bytes()).unwrap()
    }

    fn refused(json: &str, o: &Options) -> String {
        negotiate(&request(json), o, true).unwrap_err().to_string()
    }

    #[test]
    fn without_negotiation_only_settings_change() {
        let o = opts(&[]);
        let n = negotiate(&request("{}"), &o, true).unwrap();
        assert_eq!(n.heartbeat, Some(DEFAULT_HEARTBEAT));
        assert_eq!(n.output_buffer_size, DEFAULT_OUTPUT_BUFFER_SIZE);
        assert_eq!(n.msg_timeout, Duration::from_secs(60));
        assert_eq!((n.response, n.tls, n.compression), (None, false, None));
        let n = negotiate(
            &request(r#"{"heartbeat_interval":-1,"output_buffer_size":-1,"msg_timeout":5000,"sample_rate":10}"#),
            &o,
            true,
        )
        .unwrap();
        assert_eq!(n.heartbeat, None);
        assert_eq!(n.output_buffer_size, 1);
        assert_eq!(n.msg_timeout, Duration::from_secs(5));
        assert_eq!(n.sample_rate, 10);
    }

    #[test]
    fn out_of_range_values_are_nsqs_errors() {
        let o = opts(&[]);
        for (json, text) in [
            (
                r#"{"heartbeat_interval":999}"#,
                "E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid",
            ),
            (
                r#"{"heartbeat_interval":60001}"#,
                "E_BAD_BODY IDENTIFY heartbeat interval (60001) is invalid",
            ),
            (
                r#"{"output_buffer_timeout":1}"#,
                "E_BAD_BODY IDENTIFY output buffer timeout (1) is invalid",
            ),
            (
                r#"{"output_buffer_size":63}"#,
                "E_BAD_BODY IDENTIFY output buffer size (63) is invalid",
            ),
            (
                r#"{"sample_rate":100}"#,
                "E_BAD_BODY IDENTIFY sample rate (100) is invalid",
            ),
            (
                r#"{"msg_timeout":999}"#,
                "E_BAD_BODY IDENTIFY msg timeout (999) is invalid",
            ),
            (
                r#"{"feature_negotiation":true,"snappy":true,"deflate":true}"#,
                "E_IDENTIFY_FAILED cannot enable both deflate and snappy compression",
            ),
        ] {
            assert_eq!(refused(json, &o), text, "{json}");
        }
    }

    #[test]
    fn features_when_asked_and_allowed() {
        let o = opts(&["--max-deflate-level=4"]);
        let n = negotiate(
            &request(r#"{"feature_negotiation":true,"tls_v1":true,"deflate":true,"deflate_level":9,"output_buffer_timeout":-1}"#),
            &o,
            true,
        )
        .unwrap();
        assert!(n.tls);
        assert_eq!(
            n.compression,
            Some(Compression::Deflate(4)),
            "capped by the flag"
        );
        let r = n.response.unwrap();
        assert_eq!((r.deflate_level, r.max_deflate_level), (4, 4));
        assert_eq!(r.output_buffer_timeout, 0);
        assert_eq!(r.max_rdy_count, 2500);
        // No certificate: TLS is not offered, and that is not an error.
        let n = negotiate(
            &request(r#"{"feature_negotiation":true,"tls_v1":true}"#),
            &o,
            false,
        )
        .unwrap();
        assert!(!n.tls && !n.response.unwrap().tls_v1);
        // Compression refused by nsqd's flags.
        let off = opts(&["--snappy=false"]);
        let n = negotiate(
            &request(r#"{"feature_negotiation":true,"snappy":true}"#),
            &off,
            true,
        )
        .unwrap();
        assert_eq!(n.compression, None);
        // AUTH required shows.
        let auth = opts(&["--auth-http-address=127.0.0.1:1"]);
        let n = negotiate(&request(r#"{"feature_negotiation":true}"#), &auth, true).unwrap();
        assert!(n.response.unwrap().auth_required);
    }
}
