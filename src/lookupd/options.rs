//! nsqlookupd's flags: NSQ's names, defaults and meanings, defined once here
//! (for `--help`, the man page and `--config`).

use crate::cli::duration_arg;
pub use crate::cli::LogLevel;
use clap::Parser;
use std::ffi::OsString;
use std::time::Duration;

/// nsqlookupd: where nsqd instances register their topics and channels,
/// and where consumers find them.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "nsqlookupd",
    about = "NSQ's discovery daemon: nsqd instances register their topics and channels here, consumers look them up (NSQ v1.3 compatible)",
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Options {
    /// Flags every daemon has: --version, --config, --log-level, --verbose.
    #[command(flatten)]
    pub daemon: crate::cli::DaemonFlags,

    /// Prefix of every log line.
    #[arg(long = "log-prefix", default_value = "[nsqlookupd] ")]
    pub log_prefix: String,

    /// Address to listen on for nsqd connections (host:port, or a unix socket path).
    #[arg(
        long = "tcp-address",
        default_value = "0.0.0.0:4160",
        value_name = "ADDR"
    )]
    pub tcp_address: String,

    /// Address to listen on for HTTP clients (host:port, or a unix socket path).
    #[arg(
        long = "http-address",
        default_value = "0.0.0.0:4161",
        value_name = "ADDR"
    )]
    pub http_address: String,

    /// Address of this lookupd node, returned to nsqd in the IDENTIFY response
    /// (default: the OS hostname).
    #[arg(long = "broadcast-address", value_name = "ADDR")]
    pub broadcast_address: Option<String>,

    /// Drop a producer from lookups when it has not pinged for this long.
    #[arg(long = "inactive-producer-timeout", default_value = "5m0s", value_parser = duration_arg, value_name = "DURATION")]
    pub inactive_producer_timeout: Duration,

    /// How long a producer tombstoned for a topic stays hidden from its lookups.
    #[arg(long = "tombstone-lifetime", default_value = "45s", value_parser = duration_arg, value_name = "DURATION")]
    pub tombstone_lifetime: Duration,
}

/// Flags that take Go durations: an integer in a config file is nanoseconds.
const DURATION_FLAGS: &[&str] = &["inactive-producer-timeout", "tombstone-lifetime"];

impl Options {
    /// Parse the command line (Go-style `-flag` accepted) and merge `--config`.
    /// `Err` carries clap's help/version/usage output too.
    pub fn parse_from_env() -> Result<Options, clap::Error> {
        Self::parse_args(std::env::args_os())
    }

    pub fn parse_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Options, clap::Error> {
        let config = crate::cli::ConfigFile {
            duration_flags: DURATION_FLAGS,
            key_exceptions: &[],
        };
        crate::cli::parse_go_style(args, Some(config))
    }

    /// The address returned to nsqd: the flag, or the OS hostname.
    pub fn effective_broadcast_address(&self) -> String {
        self.broadcast_address
            .clone()
            .unwrap_or_else(crate::sys::hostname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::parse_args(
            std::iter::once("nsqlookupd")
                .chain(args.iter().copied())
                .map(Into::into),
        )
    }

    #[test]
    fn nsq_defaults() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.tcp_address, "0.0.0.0:4160");
        assert_eq!(o.http_address, "0.0.0.0:4161");
        assert_eq!(o.inactive_producer_timeout, Duration::from_secs(300));
        assert_eq!(o.tombstone_lifetime, Duration::from_secs(45));
        assert_eq!(o.log_prefix, "[nsqlookupd] ");
    }

    #[test]
    fn go_style_flags_and_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("lookupd.cfg");
        std::fs::write(
            &conf,
            "tombstone_lifetime = \"10s\"\ninactive_producer_timeout = 2000000000\nhttp_address = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let o = parse(&[
            &format!("-config={}", conf.display()),
            "-http-address=127.0.0.1:2",
        ])
        .unwrap();
        assert_eq!(o.tombstone_lifetime, Duration::from_secs(10));
        assert_eq!(o.inactive_producer_timeout, Duration::from_secs(2));
        assert_eq!(o.http_address, "127.0.0.1:2", "the command line wins");
    }
}
