//! Flag groups shared by the tools, with NSQ's names, defined once.

use crate::cli::duration_arg;
use crate::client::Config;
use clap::{ArgAction, Args};
use std::time::Duration;

/// nsqd addresses, for a tool that talks to nsqd directly only.
#[derive(Args, Debug, Clone, Default)]
pub struct NsqdTcp {
    /// nsqd TCP address (host:port; may be given multiple times).
    #[arg(long = "nsqd-tcp-address", action = ArgAction::Append, value_name = "ADDR")]
    pub nsqd_tcp_addresses: Vec<String>,
}

/// Where to find nsqd: directly, or through nsqlookupd.
#[derive(Args, Debug, Clone, Default)]
pub struct Sources {
    /// nsqd TCP address (host:port; may be given multiple times).
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
}

impl Connection {
    /// The client configuration for these options.
    pub fn config(&self, user_agent: &str) -> Config {
        Config {
            connect_timeout: self.dial_timeout,
            user_agent: user_agent.to_string(),
            ..Config::default()
        }
    }
}
