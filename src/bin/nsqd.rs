//! nsqd: the NSQ queue daemon.

use nsq::nsqd::{server, Options};
use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match nsq::cli::options_or_exit(Options::parse_from_env()) {
        Ok(o) => o,
        Err(code) => return code,
    };
    if opts.daemon.version {
        println!(
            "nsqd v{} (nsq-rs {})",
            nsq::protocol::NSQ_VERSION,
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let (prefix, level) = (opts.log_prefix.clone(), opts.daemon.log_level);
    nsq::cli::run_daemon("nsqd", &prefix, level, server::run(opts))
}
