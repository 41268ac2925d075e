//! nsqadmin: web UI and JSON API over an NSQ cluster.

use nsq::admin::{server, Options};
use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match nsq::cli::options_or_exit(Options::parse_from_env()) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if opts.daemon.version {
        println!(
            "nsqadmin v{} (nsq-rs {})",
            nsq::protocol::NSQ_VERSION,
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let (prefix, level) = (opts.log_prefix.clone(), opts.daemon.log_level);
    let set_level = nsq::logging::init_reloadable(&prefix, level.as_tracing());
    let set_level = Box::new(move |l: nsq::cli::LogLevel| set_level(l.as_tracing()));
    nsq::cli::run_daemon("nsqadmin", &prefix, level, server::run(opts, set_level))
}
