//! nsq-stat: live counters of an NSQ channel (see `nsq::tools::stat`).

use nsq::tools::{parse_args, run_tool, stat};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: stat::StatArgs = parse_args();
    run_tool("nsq-stat", stat::run(args))
}
