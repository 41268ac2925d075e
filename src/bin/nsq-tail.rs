//! nsq-tail: print NSQ topics on stdout (see `nsq::tools::tail`).

use nsq::tools::{parse_args, run_tool, tail};
use std::process::ExitCode;

fn main() -> ExitCode {
    // A closed stdout must end the tool quietly, not kill it with SIGPIPE's
    // default action (Rust already ignores SIGPIPE; writes then fail with
    // EPIPE, handled as a normal end).
    let args: tail::TailArgs = parse_args();
    run_tool("nsq-tail", tail::run(args))
}
