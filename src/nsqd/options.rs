//! nsqd's flags: NSQ's names, defaults and meanings, defined once here.
//!
//! The same definitions drive `--help`, the man page, `--config` (a TOML
//! file whose keys are the flag names with `_` for `-`, as NSQ's) and
//! `/config`.

use crate::cli::duration_arg;
pub use crate::cli::LogLevel;
use clap::{ArgAction, CommandFactory, Parser};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// nsqd: the NSQ queue daemon (TCP protocol V2 and HTTP API).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "nsqd",
    about = "The NSQ queue daemon: receives, queues and delivers messages (NSQ v1.3 compatible)",
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Options {
    /// Flags every daemon has: --version, --config, --log-level, --verbose.
    #[command(flatten)]
    pub daemon: crate::cli::DaemonFlags,

    /// Prefix of every log line.
    #[arg(long = "log-prefix", default_value = "[nsqd] ")]
    pub log_prefix: String,

    /// Unique part for message IDs, in [0,1024) (default: derived from the hostname).
    #[arg(long = "node-id", value_name = "ID")]
    pub node_id: Option<i64>,

    /// Deprecated (no effect); accepted for compatibility.
    #[arg(long = "worker-id", hide = true, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub worker_id: Option<String>,

    /// Address to listen on for TCP clients (host:port, or a unix socket path).
    #[arg(
        long = "tcp-address",
        default_value = "0.0.0.0:4150",
        value_name = "ADDR"
    )]
    pub tcp_address: String,

    /// Address to listen on for HTTP clients (host:port, or a unix socket
    /// path; empty disables).
    #[arg(
        long = "http-address",
        default_value = "0.0.0.0:4151",
        value_name = "ADDR"
    )]
    pub http_address: String,

    /// Address to listen on for HTTPS clients (host:port; used only with
    /// --tls-cert and --tls-key).
    #[arg(
        long = "https-address",
        default_value = "0.0.0.0:4152",
        value_name = "ADDR"
    )]
    pub https_address: String,

    /// Address this node is registered under with nsqlookupd (default: the hostname).
    #[arg(long = "broadcast-address", value_name = "ADDR")]
    pub broadcast_address: Option<String>,

    /// TCP port registered with nsqlookupd (0 = the port actually bound;
    /// none on a unix socket, so set it to register one).
    #[arg(long = "broadcast-tcp-port", default_value_t = 0, value_name = "PORT")]
    pub broadcast_tcp_port: u16,

    /// HTTP port registered with nsqlookupd (0 = the port actually bound;
    /// none on a unix socket, so set it to register one).
    #[arg(long = "broadcast-http-port", default_value_t = 0, value_name = "PORT")]
    pub broadcast_http_port: u16,

    /// nsqlookupd TCP address to register with (host:port, or a unix socket
    /// path; repeatable).
    #[arg(long = "lookupd-tcp-address", action = ArgAction::Append, value_name = "ADDR")]
    pub lookupd_tcp_addresses: Vec<String>,

    /// Authorization server address (host:port or URL; repeatable).
    #[arg(long = "auth-http-address", action = ArgAction::Append, value_name = "ADDR")]
    pub auth_http_addresses: Vec<String>,

    /// HTTP method for auth requests: get or post.
    #[arg(long = "auth-http-request-method", default_value = "get", value_parser = ["get", "post"])]
    pub auth_http_request_method: String,

    /// Timeout for establishing outgoing HTTP connections.
    #[arg(long = "http-client-connect-timeout", default_value = "2s", value_parser = duration_arg)]
    pub http_client_connect_timeout: Duration,

    /// Timeout for outgoing HTTP requests.
    #[arg(long = "http-client-request-timeout", default_value = "5s", value_parser = duration_arg)]
    pub http_client_request_timeout: Duration,

    /// Time a client has to send an HTTP(S) request's head (counted from when
    /// the connection opens or its previous response ends), and then its
    /// body; slower clients are disconnected. Not in NSQ.
    #[arg(long = "http-read-timeout", default_value = "30s", value_parser = duration_arg)]
    pub http_read_timeout: Duration,

    /// Most connections served at once by each of the HTTP and HTTPS
    /// listeners; beyond it new clients wait to be accepted (0 = no limit).
    /// Not in NSQ.
    #[arg(
        long = "max-http-connections",
        default_value_t = 10_000,
        value_name = "N"
    )]
    pub max_http_connections: usize,

    /// Also require the auth server's approval (--auth-http-address) on the
    /// HTTP API: any of tcp, http, https, comma-separated. HTTP(S) requests
    /// then carry `Authorization: Bearer <secret>`. TCP clients need AUTH
    /// whenever --auth-http-address is set, as in NSQ. Not in NSQ.
    #[arg(
        long = "auth-required",
        value_delimiter = ',',
        value_name = "LISTENERS"
    )]
    pub auth_required: Vec<String>,

    /// Region of this node (topology-aware consumption experiment).
    #[arg(long = "topology-region", default_value = "")]
    pub topology_region: String,

    /// Zone of this node (topology-aware consumption experiment).
    #[arg(long = "topology-zone", default_value = "")]
    pub topology_zone: String,

    /// Directory for disk queues and nsqd.dat (default: the current directory).
    #[arg(long = "data-path", default_value = "", value_name = "DIR")]
    pub data_path: String,

    /// Messages kept in memory per topic and per channel. Durable queues
    /// write every message to disk anyway and keep this many of the next
    /// ones to deliver as a cache (a deep one costs about 20 bytes per
    /// message beyond the body); ephemeral ones drop what does not fit.
    #[arg(long = "mem-queue-size", default_value_t = 10000, value_name = "N")]
    pub mem_queue_size: i64,

    /// Body bytes a durable topic's or channel's cache keeps in memory, on
    /// top of --mem-queue-size (not in NSQ): past it, messages are read
    /// back from disk, so large messages cannot fill memory. Ephemeral
    /// queues are bounded by --mem-queue-size alone, as in NSQ.
    #[arg(
        long = "mem-queue-bytes",
        default_value_t = 67_108_864,
        value_name = "BYTES"
    )]
    pub mem_queue_bytes: i64,

    /// Bytes per disk queue file before rolling over. The file being
    /// written has up to 16 MB of disk space reserved past its end (never
    /// more than 1/64 of the free space), given back when it is finished
    /// or nsqd stops.
    #[arg(
        long = "max-bytes-per-file",
        default_value_t = 104_857_600,
        value_name = "BYTES"
    )]
    pub max_bytes_per_file: i64,

    /// Disk queue reads+writes between fsyncs.
    #[arg(long = "sync-every", default_value_t = 2500, value_name = "N")]
    pub sync_every: i64,

    /// Longest time between fsyncs of a disk queue with activity.
    #[arg(long = "sync-timeout", default_value = "2s", value_parser = duration_arg)]
    pub sync_timeout: Duration,

    /// Accepted for compatibility: timeouts here use exact timers, not a worker pool.
    #[arg(long = "queue-scan-worker-pool-max", default_value_t = 4)]
    pub queue_scan_worker_pool_max: i64,

    /// Accepted for compatibility: timeouts here use exact timers, not sampling.
    #[arg(long = "queue-scan-selection-count", default_value_t = 20)]
    pub queue_scan_selection_count: i64,

    /// Default time a delivered message may stay unacknowledged before redelivery.
    #[arg(long = "msg-timeout", default_value = "1m0s", value_parser = duration_arg)]
    pub msg_timeout: Duration,

    /// Largest message timeout a client may ask for (IDENTIFY msg_timeout, TOUCH).
    #[arg(long = "max-msg-timeout", default_value = "15m0s", value_parser = duration_arg)]
    pub max_msg_timeout: Duration,

    /// Largest message body, in bytes.
    #[arg(
        long = "max-msg-size",
        default_value_t = 1_048_576,
        value_name = "BYTES"
    )]
    pub max_msg_size: i64,

    /// Largest command body (MPUB, IDENTIFY, AUTH), in bytes.
    #[arg(
        long = "max-body-size",
        default_value_t = 5_242_880,
        value_name = "BYTES"
    )]
    pub max_body_size: i64,

    /// Longest REQ delay (and DPUB defer, unless --max-defer-timeout is set).
    #[arg(long = "max-req-timeout", default_value = "1h0m0s", value_parser = duration_arg)]
    pub max_req_timeout: Duration,

    /// Longest defer of a DPUB or `/pub?defer=` (beyond NSQ; default: the
    /// --max-req-timeout).
    #[arg(long = "max-defer-timeout", value_parser = duration_arg, value_name = "DURATION")]
    pub max_defer_timeout: Option<Duration>,

    /// Longest heartbeat interval a client may ask for.
    #[arg(long = "max-heartbeat-interval", default_value = "1m0s", value_parser = duration_arg)]
    pub max_heartbeat_interval: Duration,

    /// Largest RDY count a client may set.
    #[arg(long = "max-rdy-count", default_value_t = 2500, value_name = "N")]
    pub max_rdy_count: i64,

    /// Largest output buffer a client may ask for, in bytes.
    #[arg(
        long = "max-output-buffer-size",
        default_value_t = 65536,
        value_name = "BYTES"
    )]
    pub max_output_buffer_size: i64,

    /// Longest output buffer timeout a client may ask for.
    #[arg(long = "max-output-buffer-timeout", default_value = "30s", value_parser = duration_arg)]
    pub max_output_buffer_timeout: Duration,

    /// Shortest output buffer timeout a client may ask for.
    #[arg(long = "min-output-buffer-timeout", default_value = "25ms", value_parser = duration_arg)]
    pub min_output_buffer_timeout: Duration,

    /// Default output buffer timeout.
    #[arg(long = "output-buffer-timeout", default_value = "250ms", value_parser = duration_arg)]
    pub output_buffer_timeout: Duration,

    /// Most consumers per channel (0 = unlimited).
    #[arg(long = "max-channel-consumers", default_value_t = 0, value_name = "N")]
    pub max_channel_consumers: i64,

    /// Deliver a message at most this many times per channel, then move it
    /// to the channel's dead-letter topic (0: no limit, as NSQ). Channels
    /// may set their own with `POST /channel/config`.
    #[arg(long = "max-attempts", default_value_t = 0, value_name = "N")]
    pub max_attempts: u16,

    /// UDP address of a statsd daemon (empty disables).
    #[arg(long = "statsd-address", default_value = "")]
    pub statsd_address: String,

    /// Interval between pushes to statsd.
    #[arg(long = "statsd-interval", default_value = "1m0s", value_parser = duration_arg)]
    pub statsd_interval: Duration,

    /// Include memory gauges in statsd output.
    #[arg(long = "statsd-mem-stats", default_value = "true", num_args = 0..=1, default_missing_value = "true", require_equals = true, action = ArgAction::Set)]
    pub statsd_mem_stats: bool,

    /// Prefix of statsd keys (`%s` becomes the broadcast address and HTTP port).
    #[arg(long = "statsd-prefix", default_value = "nsq.%s")]
    pub statsd_prefix: String,

    /// Largest statsd UDP packet, in bytes.
    #[arg(long = "statsd-udp-packet-size", default_value_t = 508)]
    pub statsd_udp_packet_size: i64,

    /// Leave #ephemeral topics and channels out of statsd output.
    #[arg(long = "statsd-exclude-ephemeral", default_value = "false", num_args = 0..=1, default_missing_value = "true", require_equals = true, action = ArgAction::Set)]
    pub statsd_exclude_ephemeral: bool,

    /// End-to-end latency quantile to report, in (0,1] (repeatable or comma-separated).
    #[arg(long = "e2e-processing-latency-percentile", action = ArgAction::Append, value_delimiter = ',')]
    pub e2e_processing_latency_percentiles: Vec<f64>,

    /// Window over which end-to-end latency quantiles are computed.
    #[arg(long = "e2e-processing-latency-window-time", default_value = "10m0s", value_parser = duration_arg)]
    pub e2e_processing_latency_window_time: Duration,

    /// TLS certificate file.
    #[arg(long = "tls-cert", default_value = "")]
    pub tls_cert: String,

    /// TLS private key file.
    #[arg(long = "tls-key", default_value = "")]
    pub tls_key: String,

    /// Client certificate policy: require or require-verify.
    #[arg(long = "tls-client-auth-policy", default_value = "")]
    pub tls_client_auth_policy: String,

    /// CA file for verifying client certificates.
    #[arg(long = "tls-root-ca-file", default_value = "")]
    pub tls_root_ca_file: String,

    /// Require TLS from clients: true, false or tcp-https.
    #[arg(long = "tls-required", default_value = "false", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub tls_required: String,

    /// Lowest TLS version accepted: tls1.0, tls1.1, tls1.2 or tls1.3.
    #[arg(long = "tls-min-version", default_value = "tls1.0")]
    pub tls_min_version: String,

    /// Allow clients to negotiate deflate compression.
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true", require_equals = true, action = ArgAction::Set)]
    pub deflate: bool,

    /// Highest deflate level a client may ask for, 1-9.
    #[arg(long = "max-deflate-level", default_value_t = 6)]
    pub max_deflate_level: i64,

    /// Allow clients to negotiate snappy compression.
    #[arg(long, default_value = "true", num_args = 0..=1, default_missing_value = "true", require_equals = true, action = ArgAction::Set)]
    pub snappy: bool,

    /// Enable an experiment (only: topology-aware-consumption).
    #[arg(long = "enable-experiment", action = ArgAction::Append)]
    pub enable_experiment: Vec<String>,
}

/// Flags that take Go durations: an integer for one of these in a config
/// file means nanoseconds, as in NSQ's.
const DURATION_FLAGS: &[&str] = &[
    "http-client-connect-timeout",
    "http-client-request-timeout",
    "http-read-timeout",
    "sync-timeout",
    "msg-timeout",
    "max-msg-timeout",
    "max-req-timeout",
    "max-heartbeat-interval",
    "max-output-buffer-timeout",
    "min-output-buffer-timeout",
    "output-buffer-timeout",
    "statsd-interval",
    "e2e-processing-latency-window-time",
];

/// Config-file keys that are not simply the flag name with `_` for `-`.
const CONFIG_KEY_EXCEPTIONS: &[(&str, &str)] = &[
    ("id", "node-id"),
    ("nsqlookupd_tcp_addresses", "lookupd-tcp-address"),
    ("auth_http_addresses", "auth-http-address"),
    (
        "e2e_processing_latency_percentiles",
        "e2e-processing-latency-percentile",
    ),
    ("enable_experiment", "enable-experiment"),
];

/// A usage or configuration error, printed as one line (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OptionsError(pub String);

impl Options {
    /// Parse the command line (Go-style `-flag` accepted), merge `--config`,
    /// and validate. `Err` carries clap's own help/version/usage output too.
    pub fn parse_from_env() -> Result<Options, clap::Error> {
        Self::parse_args(std::env::args_os())
    }

    pub fn parse_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Options, clap::Error> {
        let config = crate::cli::ConfigFile {
            duration_flags: DURATION_FLAGS,
            key_exceptions: CONFIG_KEY_EXCEPTIONS,
        };
        let opts: Options = crate::cli::parse_go_style(args, Some(config))?;
        opts.validate()
            .map_err(|e| Options::command().error(clap::error::ErrorKind::ValueValidation, e.0))?;
        Ok(opts)
    }

    fn validate(&self) -> Result<(), OptionsError> {
        if let Some(id) = self.node_id {
            if !(0..1024).contains(&id) {
                return Err(OptionsError("--node-id must be [0,1024)".into()));
            }
        }
        if !(1..=9).contains(&self.max_deflate_level) {
            return Err(OptionsError("--max-deflate-level must be [1,9]".into()));
        }
        if self.mem_queue_size < 0 {
            return Err(OptionsError("--mem-queue-size must be >= 0".into()));
        }
        if self.mem_queue_bytes < 0 {
            return Err(OptionsError("--mem-queue-bytes must be >= 0".into()));
        }
        if self.max_msg_size <= 0 || self.max_body_size <= 0 {
            return Err(OptionsError(
                "--max-msg-size and --max-body-size must be > 0".into(),
            ));
        }
        if self.max_rdy_count < 0 {
            return Err(OptionsError("--max-rdy-count must be >= 0".into()));
        }
        for q in &self.e2e_processing_latency_percentiles {
            if !(*q > 0.0 && *q <= 1.0) {
                return Err(OptionsError(format!(
                    "invalid E2E processing latency percentile: {q} (must be in (0,1])"
                )));
            }
        }
        match self.tls_required.as_str() {
            "true" | "false" | "tcp-https" => {}
            other => {
                return Err(OptionsError(format!(
                    "--tls-required must be true, false or tcp-https, not {other:?}"
                )))
            }
        }
        for l in &self.auth_required {
            if !matches!(l.as_str(), "tcp" | "http" | "https") {
                return Err(OptionsError(format!(
                    "--auth-required takes tcp, http and https, not {l:?}"
                )));
            }
        }
        if !self.auth_required.is_empty() && self.auth_http_addresses.is_empty() {
            return Err(OptionsError(
                "--auth-required needs --auth-http-address".into(),
            ));
        }
        if self.http_read_timeout.is_zero() {
            return Err(OptionsError("--http-read-timeout must be > 0".into()));
        }
        for exp in &self.enable_experiment {
            if exp != "topology-aware-consumption" {
                return Err(OptionsError(format!("unknown experiment {exp:?}")));
            }
        }
        Ok(())
    }

    /// The node ID for message IDs: the flag, or NSQ's default derived from
    /// the hostname (CRC-32 of its MD5 digest, mod 1024).
    pub fn effective_node_id(&self) -> u16 {
        if let Some(id) = self.node_id {
            return id as u16;
        }
        use md5::Digest;
        let digest = md5::Md5::digest(crate::sys::hostname().as_bytes());
        (crc32fast::hash(&digest) % 1024) as u16
    }

    /// The address registered with nsqlookupd and shown in `/info`.
    pub fn effective_broadcast_address(&self) -> String {
        self.broadcast_address
            .clone()
            .unwrap_or_else(crate::sys::hostname)
    }

    /// Where disk queues and nsqd.dat live.
    pub fn data_dir(&self) -> PathBuf {
        if self.data_path.is_empty() {
            std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
        } else {
            PathBuf::from(&self.data_path)
        }
    }

    /// The longest defer a DPUB or `/pub?defer=` may ask for.
    pub fn max_defer(&self) -> Duration {
        self.max_defer_timeout.unwrap_or(self.max_req_timeout)
    }

    /// Whether requests on the `listener` ("http" or "https") need the
    /// auth server's approval (`--auth-required`).
    pub fn auth_required_on(&self, listener: &str) -> bool {
        self.auth_required.iter().any(|l| l == listener)
    }

    /// Whether any HTTP listener is guarded by the auth server.
    pub fn http_auth_required(&self) -> bool {
        self.auth_required_on("http") || self.auth_required_on("https")
    }

    /// The limits of the HTTP and HTTPS listeners.
    pub fn http_limits(&self) -> crate::http_server::Limits {
        crate::http_server::Limits {
            read_timeout: self.http_read_timeout,
            max_connections: self.max_http_connections,
        }
    }

    /// Whether TCP clients must upgrade to TLS before anything but IDENTIFY.
    pub fn tls_required_on_tcp(&self) -> bool {
        self.tls_required != "false" || !self.tls_client_auth_policy.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::parse_args(
            std::iter::once("nsqd")
                .chain(args.iter().copied())
                .map(Into::into),
        )
    }

    #[test]
    fn defaults_match_nsq() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.tcp_address, "0.0.0.0:4150");
        assert_eq!(o.http_address, "0.0.0.0:4151");
        assert_eq!(o.mem_queue_size, 10000);
        assert_eq!(o.msg_timeout, Duration::from_secs(60));
        assert_eq!(o.max_msg_timeout, Duration::from_secs(900));
        assert_eq!(o.max_msg_size, 1_048_576);
        assert_eq!(o.max_body_size, 5_242_880);
        assert_eq!(o.max_rdy_count, 2500);
        assert_eq!(o.max_req_timeout, Duration::from_secs(3600));
        assert_eq!(o.output_buffer_timeout, Duration::from_millis(250));
        assert!(o.snappy && o.deflate);
    }

    #[test]
    fn go_style_flags_and_bools() {
        let o = parse(&["-mem-queue-size=5", "--snappy=false", "-msg-timeout", "2s"]).unwrap();
        assert_eq!(o.mem_queue_size, 5);
        assert!(!o.snappy);
        assert_eq!(o.msg_timeout, Duration::from_secs(2));
    }

    #[test]
    fn config_file_then_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nsqd.toml");
        std::fs::write(
            &path,
            "mem_queue_size = 7\nmem_queue_bytes = 4096\nmax_rdy_count = 10\nmsg_timeout = \"3s\"\nid = 5\nnsqlookupd_tcp_addresses = [\"a:1\", \"b:2\"]\n",
        )
        .unwrap();
        let cfg = format!("--config={}", path.display());
        let o = parse(&[&cfg, "--max-rdy-count=20"]).unwrap();
        assert_eq!(o.mem_queue_size, 7);
        assert_eq!(o.mem_queue_bytes, 4096);
        assert_eq!(o.max_rdy_count, 20);
        assert_eq!(o.msg_timeout, Duration::from_secs(3));
        assert_eq!(o.node_id, Some(5));
        assert_eq!(o.lookupd_tcp_addresses, vec!["a:1", "b:2"]);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        assert!(parse(&["--node-id=1024"]).is_err());
        assert!(parse(&["--msg-timeout=10"]).is_err());
        assert!(parse(&["--log-level=loud"]).is_err());
        assert!(parse(&["--no-such-flag"]).is_err());
        let err = parse(&["--mem-queue-bytes=-1"]).unwrap_err().to_string();
        assert!(err.contains("--mem-queue-bytes must be >= 0"), "{err}");
    }
}
