//! The command-line tools (our versions of NSQ's to_nsq, nsq_tail, nsq_stat,
//! nsq_to_file, nsq_to_http and nsq_to_nsq): their flags and logic live here, in the library, so
//! that the man pages, shell completions and tests see the same
//! definitions; `src/bin/` only calls [`run_tool`].
//!
//! The flags every tool shares (addresses, topic, channel, connection
//! options) are defined once, in [`args`].

pub mod args;
pub mod publish;
pub mod relay;
pub mod stat;
pub mod tail;
pub mod to_file;
pub mod to_http;
pub mod to_nsq;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

/// A tool's failure: one line for stderr, and the exit status.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 1,
        }
    }
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::new(e.to_string())
    }
}

/// Parse a tool's flags from the process arguments, accepting Go's
/// single-dash spelling as NSQ's tools do. Help and version go to stdout
/// (status 0), usage errors to stderr (status 2), as clap does.
pub fn parse_args<T: CommandFactory + FromArgMatches>() -> T {
    parse_from(std::env::args_os())
}

pub fn parse_from<T: CommandFactory + FromArgMatches>(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> T {
    crate::cli::parse_go_style(args, None).unwrap_or_else(|e| e.exit())
}

/// Run a tool's async main on a runtime and map its outcome to an exit
/// status, printing a failure as `tool: message`.
pub fn run_tool<F>(name: &str, main: F) -> ExitCode
where
    F: std::future::Future<Output = Result<(), Failure>>,
{
    crate::cli::raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(main);
    // Tasks still running (connections being torn down) must not hold
    // the exit up.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("{name}: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
