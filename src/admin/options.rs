//! nsqadmin's flags: NSQ's names, defaults and meanings, defined once here
//! (for `--help`, the man page, `--config` and `/config/:opt`), plus the two
//! of our own that drive live pages and charts.

use crate::cli::duration_arg;
pub use crate::cli::LogLevel;
use clap::{ArgAction, CommandFactory, Parser};
use std::ffi::OsString;
use std::net::IpAddr;
use std::time::Duration;

/// nsqadmin: a web UI and JSON API over an NSQ cluster.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "nsqadmin",
    about = "Web UI and JSON API to watch and administer an NSQ cluster: topics, channels, nodes, clients (NSQ v1.3 compatible)",
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Options {
    /// Flags every daemon has: --version, --config, --log-level, --verbose.
    #[command(flatten)]
    pub daemon: crate::cli::DaemonFlags,

    /// Prefix of every log line.
    #[arg(long = "log-prefix", default_value = "[nsqadmin] ")]
    pub log_prefix: String,

    /// Address to listen on for HTTP clients (host:port).
    #[arg(
        long = "http-address",
        default_value = "0.0.0.0:4171",
        value_name = "ADDR"
    )]
    pub http_address: String,

    /// URL path under which every page and API route is served (behind a
    /// reverse proxy, for example `/nsqadmin`).
    #[arg(long = "base-path", default_value = "/", value_name = "PATH")]
    pub base_path: String,

    /// Serve the web UI's files from this directory instead of the copies
    /// built into the binary (for working on the UI).
    #[arg(long = "dev-static-dir", default_value = "", value_name = "DIR")]
    pub dev_static_dir: String,

    /// nsqlookupd HTTP address (host:port; may be given multiple times).
    /// Give these or --nsqd-http-address, not both.
    #[arg(long = "lookupd-http-address", action = ArgAction::Append, value_name = "ADDR")]
    pub lookupd_http_addresses: Vec<String>,

    /// nsqd HTTP address (host:port; may be given multiple times), to watch
    /// nsqd instances without nsqlookupd.
    #[arg(long = "nsqd-http-address", action = ArgAction::Append, value_name = "ADDR")]
    pub nsqd_http_addresses: Vec<String>,

    /// Graphite HTTP address (accepted; the pages chart nsqadmin's own history instead).
    #[arg(long = "graphite-url", default_value = "", value_name = "URL")]
    pub graphite_url: String,

    /// Proxy /render requests to --graphite-url.
    #[arg(long = "proxy-graphite", default_value = "false", num_args = 0..=1, default_missing_value = "true", require_equals = true, action = ArgAction::Set)]
    pub proxy_graphite: bool,

    /// Prefix of nsqd's statsd keys (%s for the host), as nsqd is configured.
    #[arg(
        long = "statsd-prefix",
        default_value = "nsq.%s",
        value_name = "PREFIX"
    )]
    pub statsd_prefix: String,

    /// Counter key format of the statsd implementation (empty for none).
    #[arg(
        long = "statsd-counter-format",
        default_value = "stats.counters.%s.count",
        value_name = "FORMAT"
    )]
    pub statsd_counter_format: String,

    /// Gauge key format of the statsd implementation (empty for none).
    #[arg(
        long = "statsd-gauge-format",
        default_value = "stats.gauges.%s",
        value_name = "FORMAT"
    )]
    pub statsd_gauge_format: String,

    /// How often nsqd pushes to statsd (as nsqd is configured).
    #[arg(long = "statsd-interval", default_value = "1m0s", value_parser = duration_arg, value_name = "DURATION")]
    pub statsd_interval: Duration,

    /// URL to which every admin action (pause, empty, delete, tombstone,
    /// create) is POSTed as a JSON event.
    #[arg(
        long = "notification-http-endpoint",
        default_value = "",
        value_name = "URL"
    )]
    pub notification_http_endpoint: String,

    /// Give up connecting to an nsqd or nsqlookupd after this long.
    #[arg(long = "http-client-connect-timeout", default_value = "2s", value_parser = duration_arg, value_name = "DURATION")]
    pub http_client_connect_timeout: Duration,

    /// Give up on a request to an nsqd or nsqlookupd after this long.
    #[arg(long = "http-client-request-timeout", default_value = "5s", value_parser = duration_arg, value_name = "DURATION")]
    pub http_client_request_timeout: Duration,

    /// Accept any certificate from nsqd and nsqlookupd over HTTPS (testing only).
    #[arg(long = "http-client-tls-insecure-skip-verify", default_value = "false", num_args = 0..=1, default_missing_value = "true", require_equals = true, action = ArgAction::Set)]
    pub http_client_tls_insecure_skip_verify: bool,

    /// PEM CA bundle to trust for HTTPS to nsqd and nsqlookupd.
    #[arg(
        long = "http-client-tls-root-ca-file",
        default_value = "",
        value_name = "FILE"
    )]
    pub http_client_tls_root_ca_file: String,

    /// PEM client certificate to present over HTTPS (with --http-client-tls-key).
    #[arg(long = "http-client-tls-cert", default_value = "", value_name = "FILE")]
    pub http_client_tls_cert: String,

    /// PEM key of the client certificate.
    #[arg(long = "http-client-tls-key", default_value = "", value_name = "FILE")]
    pub http_client_tls_key: String,

    /// Only clients in this CIDR may use /config (empty: anyone).
    #[arg(
        long = "allow-config-from-cidr",
        default_value = "127.0.0.1/8",
        value_name = "CIDR"
    )]
    pub allow_config_from_cidr: String,

    /// HTTP header that names the authenticated user (set by a proxy in front).
    #[arg(
        long = "acl-http-header",
        default_value = "X-Forwarded-User",
        value_name = "HEADER"
    )]
    pub acl_http_header: String,

    /// A user allowed to perform actions (may be given multiple times); when
    /// any is given, only these users (per --acl-http-header) may pause,
    /// empty, delete, tombstone or create.
    #[arg(long = "admin-user", action = ArgAction::Append, value_name = "USER")]
    pub admin_users: Vec<String>,

    /// How often nsqadmin reads every nsqd's counters for the live pages and
    /// charts (not in NSQ; 0 turns live updates and charts off).
    #[arg(long = "sample-interval", default_value = "5s", value_parser = duration_arg, value_name = "DURATION")]
    pub sample_interval: Duration,

    /// How much history the charts show (not in NSQ).
    #[arg(long = "history", default_value = "15m0s", value_parser = duration_arg, value_name = "DURATION")]
    pub history: Duration,
}

/// Flags that take Go durations: an integer in a config file is nanoseconds.
const DURATION_FLAGS: &[&str] = &[
    "statsd-interval",
    "http-client-connect-timeout",
    "http-client-request-timeout",
    "sample-interval",
    "history",
];

/// NSQ's config-file keys that are not the flag name with `_` for `-`.
const CONFIG_KEY_EXCEPTIONS: &[(&str, &str)] = &[
    ("nsqlookupd_http_addresses", "lookupd-http-address"),
    ("nsqd_http_addresses", "nsqd-http-address"),
    ("admin_users", "admin-user"),
];

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
        let mut opts: Options = crate::cli::parse_go_style(args, Some(config))?;
        if opts.daemon.version {
            return Ok(opts);
        }
        opts.validate()
            .map_err(|e| Options::command().error(clap::error::ErrorKind::ValueValidation, e))?;
        opts.base_path = normalize_base_path(&opts.base_path);
        Ok(opts)
    }

    fn validate(&self) -> Result<(), String> {
        match (
            self.nsqd_http_addresses.is_empty(),
            self.lookupd_http_addresses.is_empty(),
        ) {
            (true, true) => {
                return Err("--nsqd-http-address or --lookupd-http-address required".into())
            }
            (false, false) => {
                return Err("use --nsqd-http-address or --lookupd-http-address not both".into())
            }
            _ => {}
        }
        if !self.http_client_tls_cert.is_empty() && self.http_client_tls_key.is_empty() {
            return Err(
                "--http-client-tls-key must be specified with --http-client-tls-cert".into(),
            );
        }
        if !self.http_client_tls_key.is_empty() && self.http_client_tls_cert.is_empty() {
            return Err(
                "--http-client-tls-cert must be specified with --http-client-tls-key".into(),
            );
        }
        for (flag, addrs) in [
            ("--lookupd-http-address", &self.lookupd_http_addresses),
            ("--nsqd-http-address", &self.nsqd_http_addresses),
        ] {
            for a in addrs {
                if !looks_like_host_port(a) {
                    return Err(format!(
                        "failed to resolve {flag} ({a}): expected host:port"
                    ));
                }
            }
        }
        if self.proxy_graphite && reqwest::Url::parse(&self.graphite_url).is_err() {
            return Err(format!(
                "failed to parse --graphite-url ({})",
                self.graphite_url
            ));
        }
        if !self.allow_config_from_cidr.is_empty() {
            Cidr::parse(&self.allow_config_from_cidr).map_err(|e| {
                format!(
                    "failed to parse --allow-config-from-cidr ({}) - {e}",
                    self.allow_config_from_cidr
                )
            })?;
        }
        if !self.notification_http_endpoint.is_empty()
            && reqwest::Url::parse(&self.notification_http_endpoint).is_err()
        {
            return Err(format!(
                "failed to parse --notification-http-endpoint ({})",
                self.notification_http_endpoint
            ));
        }
        Ok(())
    }

    /// Whether the cluster is found through nsqlookupd (else: listed nsqd).
    pub fn uses_lookupd(&self) -> bool {
        !self.lookupd_http_addresses.is_empty()
    }

    /// How many samples the history keeps.
    pub fn history_samples(&self) -> usize {
        if self.sample_interval.is_zero() {
            return 0;
        }
        let n = self.history.as_secs_f64() / self.sample_interval.as_secs_f64();
        (n.ceil() as usize).clamp(2, 5000)
    }

    /// `/config/:opt`: the option whose config name is `name`, as NSQ's
    /// nsqadmin answers it (strings as raw text, everything else JSON,
    /// durations in nanoseconds, the log level as its number).
    pub fn config_value(&self, name: &str) -> Option<ConfigValue> {
        use serde_json::json;
        let text = |s: &str| Some(ConfigValue::Text(s.to_string()));
        let nanos = |d: Duration| Some(ConfigValue::Json(json!(d.as_nanos() as u64)));
        match name {
            "log_level" => Some(ConfigValue::Json(json!(self.daemon.log_level as u8))),
            "log_prefix" => text(&self.log_prefix),
            "http_address" => text(&self.http_address),
            "base_path" => text(&self.base_path),
            "dev_static_dir" => text(&self.dev_static_dir),
            "graphite_url" => text(&self.graphite_url),
            "proxy_graphite" => Some(ConfigValue::Json(json!(self.proxy_graphite))),
            "statsd_prefix" => text(&self.statsd_prefix),
            "statsd_counter_format" => text(&self.statsd_counter_format),
            "statsd_gauge_format" => text(&self.statsd_gauge_format),
            "statsd_interval" => nanos(self.statsd_interval),
            "nsqlookupd_http_addresses" => {
                Some(ConfigValue::Json(json!(self.lookupd_http_addresses)))
            }
            "nsqd_http_addresses" => Some(ConfigValue::Json(json!(self.nsqd_http_addresses))),
            "http_client_connect_timeout" => nanos(self.http_client_connect_timeout),
            "http_client_request_timeout" => nanos(self.http_client_request_timeout),
            "http_client_tls_insecure_skip_verify" => Some(ConfigValue::Json(json!(
                self.http_client_tls_insecure_skip_verify
            ))),
            "http_client_tls_root_ca_file" => text(&self.http_client_tls_root_ca_file),
            "http_client_tls_cert" => text(&self.http_client_tls_cert),
            "http_client_tls_key" => text(&self.http_client_tls_key),
            "allow_config_from_cidr" => text(&self.allow_config_from_cidr),
            "notification_http_endpoint" => text(&self.notification_http_endpoint),
            "acl_http_header" => text(&self.acl_http_header),
            "admin_users" => Some(ConfigValue::Json(json!(self.admin_users))),
            _ => None,
        }
    }
}

pub use crate::http_api::ConfigValue;

/// NSQ's base-path rule: a leading slash, then cleaned (`/a/b/` → `/a/b`).
pub fn normalize_base_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

fn looks_like_host_port(a: &str) -> bool {
    match a.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

/// An IP network (`127.0.0.1/8`, `10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("invalid CIDR address: {s}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen on a dual-stack socket is still IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::parse_args(
            std::iter::once("nsqadmin")
                .chain(args.iter().copied())
                .map(Into::into),
        )
    }

    #[test]
    fn nsq_defaults() {
        let o = parse(&["--lookupd-http-address=127.0.0.1:4161"]).unwrap();
        assert_eq!(o.http_address, "0.0.0.0:4171");
        assert_eq!(o.base_path, "/");
        assert_eq!(o.statsd_prefix, "nsq.%s");
        assert_eq!(o.statsd_counter_format, "stats.counters.%s.count");
        assert_eq!(o.statsd_gauge_format, "stats.gauges.%s");
        assert_eq!(o.statsd_interval, Duration::from_secs(60));
        assert_eq!(o.http_client_connect_timeout, Duration::from_secs(2));
        assert_eq!(o.http_client_request_timeout, Duration::from_secs(5));
        assert_eq!(o.allow_config_from_cidr, "127.0.0.1/8");
        assert_eq!(o.acl_http_header, "X-Forwarded-User");
        assert_eq!(o.log_prefix, "[nsqadmin] ");
        assert!(o.admin_users.is_empty());
        assert!(o.uses_lookupd());
        assert_eq!(o.history_samples(), 180);
    }

    #[test]
    fn one_kind_of_address() {
        let e = parse(&[]).unwrap_err().to_string();
        assert!(e.contains("--nsqd-http-address or --lookupd-http-address required"));
        let e = parse(&["--lookupd-http-address=a:1", "--nsqd-http-address=b:2"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not both"), "{e}");
        let e = parse(&["--nsqd-http-address=nope"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--nsqd-http-address"), "{e}");
        let e = parse(&["--nsqd-http-address=a:1", "--http-client-tls-cert=x"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--http-client-tls-key"), "{e}");
        let e = parse(&[
            "--nsqd-http-address=a:1",
            "--allow-config-from-cidr=1.2.3.4",
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("--allow-config-from-cidr"), "{e}");
        assert!(parse(&["--version"]).unwrap().daemon.version);
    }

    #[test]
    fn go_style_flags_config_file_and_base_path() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("nsqadmin.cfg");
        std::fs::write(
            &conf,
            "nsqlookupd_http_addresses = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n\
             admin_users = [\"ops\"]\nhttp_client_request_timeout = 3000000000\n\
             base_path = \"admin/\"\nlog_level = \"debug\"\n",
        )
        .unwrap();
        let o = parse(&[
            &format!("-config={}", conf.display()),
            "-admin-user=root",
            "-proxy-graphite=false",
        ])
        .unwrap();
        assert_eq!(o.lookupd_http_addresses, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(o.admin_users, ["ops", "root"]);
        assert_eq!(o.http_client_request_timeout, Duration::from_secs(3));
        assert_eq!(o.base_path, "/admin");
        assert_eq!(o.daemon.log_level, LogLevel::Debug);
    }

    #[test]
    fn config_values_as_nsq_writes_them() {
        let o = parse(&["--nsqd-http-address=127.0.0.1:4151"]).unwrap();
        assert_eq!(
            o.config_value("nsqd_http_addresses"),
            Some(ConfigValue::Json(serde_json::json!(["127.0.0.1:4151"])))
        );
        assert_eq!(
            o.config_value("nsqlookupd_http_addresses"),
            Some(ConfigValue::Json(serde_json::json!([])))
        );
        assert_eq!(
            o.config_value("http_client_connect_timeout"),
            Some(ConfigValue::Json(serde_json::json!(2_000_000_000u64)))
        );
        assert_eq!(
            o.config_value("log_level"),
            Some(ConfigValue::Json(serde_json::json!(2)))
        );
        assert_eq!(
            o.config_value("acl_http_header"),
            Some(ConfigValue::Text("X-Forwarded-User".into()))
        );
        assert_eq!(o.config_value("logger"), None);
        assert_eq!(o.config_value("sample_interval"), None);
    }

    #[test]
    fn base_paths_and_cidrs() {
        assert_eq!(normalize_base_path(""), "/");
        assert_eq!(normalize_base_path("/"), "/");
        assert_eq!(normalize_base_path("x"), "/x");
        assert_eq!(normalize_base_path("/a//b/./"), "/a/b");
        let c = Cidr::parse("127.0.0.1/8").unwrap();
        assert!(c.contains("127.9.9.9".parse().unwrap()));
        assert!(c.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!c.contains("10.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::1/128")
            .unwrap()
            .contains("::1".parse().unwrap()));
        assert!(Cidr::parse("1.2.3.4/33").is_err());
        assert!(Cidr::parse("nope/8").is_err());
    }
}
