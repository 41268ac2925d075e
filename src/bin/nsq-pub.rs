//! nsq-pub: publish stdin to an NSQ topic (see `nsq::tools::publish`).

use nsq::tools::{parse_args, publish, run_tool};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: publish::PubArgs = parse_args();
    run_tool("nsq-pub", publish::run(args))
}
