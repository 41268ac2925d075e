//! nsqlookupd: NSQ's discovery daemon.

use nsq::lookupd::{server, Options};
use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match Options::parse_from_env() {
        Ok(o) => o,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if opts.version {
        println!(
            "nsqlookupd v{} (nsq-rs {})",
            nsq::protocol::NSQ_VERSION,
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    nsq::logging::init(&opts.log_prefix, opts.log_level.as_tracing());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nsqlookupd: failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("nsqlookupd: {e}");
            ExitCode::FAILURE
        }
    }
}
