//! Flag groups shared by the tools, with NSQ's names, defined once.

use crate::cli::duration_arg;
use crate::client::Config;
use clap::{ArgAction, Args};
use std::time::Duration;

/// nsqd addresses, for a tool that talks to nsqd directly only.
#[derive(Args, Debug, Clone, Default)]
pub struct NsqdTcp {
    /// nsqd TCP address (host:port, or a unix socket path; may be given
    /// multiple times).
    #[arg(long = "nsqd-tcp-address", action = ArgAction::Append, value_name = "ADDR")]
    pub nsqd_tcp_addresses: Vec<String>,
}

/// Where to find nsqd: directly, or through nsqlookupd.
#[derive(Args, Debug, Clone, Default)]
pub struct Sources {
    /// nsqd TCP address (host:port, or a unix socket path; may be given
    /// multiple times).
    #[arg(long = "nsqd-tcp-address", action = ArgAction::Append, value_name = "ADDR")]
    pub nsqd_tcp_addresses: Vec<String>,

    /// nsqlookupd HTTP address (host:port; may be given multiple times).
    #[arg(long = "lookupd-http-address", action = ArgAction::Append, value_name = "ADDR")]
    pub lookupd_http_addresses: Vec<String>,
}

impl Sources {
    /// Exactly one kind of address, as nsq_tail and nsq_to_file require.
    pub fn check_one_kind(&self) -> Result<(), String> {
        match (
            self.nsqd_tcp_addresses.is_empty(),
            self.lookupd_http_addresses.is_empty(),
        ) {
            (true, true) => Err("--nsqd-tcp-address or --lookupd-http-address required".into()),
            (false, false) => {
                Err("use --nsqd-tcp-address or --lookupd-http-address not both".into())
            }
            _ => Ok(()),
        }
    }
}

/// How the tools connect to nsqd (TLS and compression options join here).
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// Give up connecting to an nsqd (TCP connect and IDENTIFY) after this long.
    #[arg(long = "dial-timeout", default_value = "5s", value_parser = duration_arg, value_name = "DURATION")]
    pub dial_timeout: Duration,

    /// go-nsq option as key=value, as NSQ's tools take it (may be given
    /// multiple times): heartbeat_interval, msg_timeout, output_buffer_size,
    /// output_buffer_timeout, dial_timeout, user_agent; others are ignored
    /// with a warning.
    #[arg(long = "consumer-opt", visible_alias = "producer-opt", action = ArgAction::Append, value_name = "KEY=VALUE")]
    pub options: Vec<String>,

    /// Upgrade connections to nsqd to TLS (fails if nsqd does not offer it).
    #[arg(long)]
    pub tls: bool,

    /// PEM CA bundle to trust for nsqd's certificate (default: the system's roots).
    #[arg(long = "tls-root-ca-file", value_name = "FILE")]
    pub tls_root_ca_file: Option<String>,

    /// PEM client certificate to present (with --tls-key).
    #[arg(long = "tls-cert", value_name = "FILE")]
    pub tls_cert: Option<String>,

    /// PEM key of the client certificate.
    #[arg(long = "tls-key", value_name = "FILE")]
    pub tls_key: Option<String>,

    /// Accept any certificate from nsqd (encrypts without authenticating; testing only).
    #[arg(long = "tls-insecure-skip-verify")]
    pub tls_insecure_skip_verify: bool,

    /// Compress connections with snappy (if nsqd allows it).
    #[arg(long, conflicts_with = "deflate")]
    pub snappy: bool,

    /// Compress connections with deflate (if nsqd allows it).
    #[arg(long)]
    pub deflate: bool,

    /// Deflate level, 1 (fast) to 9 (small); nsqd may lower it.
    #[arg(long = "deflate-level", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9), value_name = "N")]
    pub deflate_level: u32,
}

impl Connection {
    /// The client configuration for these options.
    pub fn config(&self, user_agent: &str) -> Result<Config, String> {
        let mut config = Config {
            connect_timeout: self.dial_timeout,
            user_agent: user_agent.to_string(),
            ..Config::default()
        };
        for option in &self.options {
            if let Err(e) = apply_option(&mut config, option) {
                eprintln!("warning: ignoring --consumer-opt {option:?}: {e}");
            }
        }
        config.compression = if self.snappy {
            Some(crate::client::Compression::Snappy)
        } else if self.deflate {
            Some(crate::client::Compression::Deflate(self.deflate_level))
        } else {
            None
        };
        // Any TLS flag implies --tls.
        let wants_tls = self.tls
            || self.tls_root_ca_file.is_some()
            || self.tls_cert.is_some()
            || self.tls_insecure_skip_verify;
        if wants_tls {
            config.tls = Some(crate::client::tls::client_config(
                &crate::client::tls::TlsOptions {
                    root_ca_file: self.tls_root_ca_file.clone(),
                    cert_file: self.tls_cert.clone(),
                    key_file: self.tls_key.clone(),
                    insecure_skip_verify: self.tls_insecure_skip_verify,
                },
            )?);
        }
        Ok(config)
    }

    /// A go-nsq `max_in_flight` given as an option, if any.
    pub fn max_in_flight(&self) -> Option<u64> {
        self.option("max_in_flight").and_then(|v| v.parse().ok())
    }

    /// The value of the last go-nsq option named `key`, if any (for the
    /// options a tool reads itself, such as `max_attempts`).
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .filter_map(|o| split_option(o))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .next_back()
    }
}

/// `key,value` as NSQ's tools take it, or `key=value`.
fn split_option(option: &str) -> Option<(&str, &str)> {
    let at = option.find(['=', ','])?;
    Some((option[..at].trim(), option[at + 1..].trim()))
}

/// Apply one `key=value` go-nsq option to a client configuration.
fn apply_option(config: &mut Config, option: &str) -> Result<(), String> {
    let (key, value) = split_option(option).ok_or("expected key=value")?;
    let duration = || crate::cli::parse_duration(value);
    match key {
        "heartbeat_interval" => config.heartbeat_interval = Some(duration()?),
        "msg_timeout" => config.msg_timeout = Some(duration()?),
        "output_buffer_timeout" => config.output_buffer_timeout = Some(duration()?),
        "dial_timeout" => config.connect_timeout = duration()?,
        "output_buffer_size" => {
            config.output_buffer_size = Some(value.parse().map_err(|e| format!("{e}"))?)
        }
        "user_agent" => config.user_agent = value.to_string(),
        "max_in_flight" => {} // read by the tool itself
        // Read by the tools that requeue (nsq-to-http, nsq-to-nsq).
        "max_attempts"
        | "default_requeue_delay"
        | "max_requeue_delay"
        | "backoff_multiplier"
        | "max_backoff_duration" => {}
        other => return Err(format!("unsupported option {other:?}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_nsq_options_apply() {
        let c = Connection {
            dial_timeout: Duration::from_secs(5),
            tls: false,
            tls_root_ca_file: None,
            tls_cert: None,
            tls_key: None,
            tls_insecure_skip_verify: false,
            snappy: false,
            deflate: false,
            deflate_level: 6,
            options: vec![
                "msg_timeout=30s".into(),
                "max_in_flight=7".into(),
                "user_agent,me".into(),
                "bogus=1".into(),
            ],
        };
        let config = c.config("tool").unwrap();
        assert_eq!(config.msg_timeout, Some(Duration::from_secs(30)));
        assert_eq!(config.user_agent, "me");
        assert_eq!(c.max_in_flight(), Some(7));
        assert_eq!(c.option("user_agent"), Some("me"));
        assert!(apply_option(&mut Config::default(), "bogus=1").is_err());
        assert!(apply_option(&mut Config::default(), "novalue").is_err());
    }
}
