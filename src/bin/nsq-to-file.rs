//! nsq-to-file: archive NSQ topics to files (see `nsq::tools::to_file`).

use nsq::tools::{parse_args, run_tool, to_file};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: to_file::ToFileArgs = parse_args();
    run_tool("nsq-to-file", to_file::run(args))
}
