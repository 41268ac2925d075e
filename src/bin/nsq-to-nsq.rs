//! nsq-to-nsq: republish NSQ topics to other nsqd (see `nsq::tools::to_nsq`).

use nsq::tools::{parse_args, run_tool, to_nsq};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: to_nsq::ToNsqArgs = parse_args();
    run_tool("nsq-to-nsq", to_nsq::run(args))
}
