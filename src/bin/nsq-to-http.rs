//! nsq-to-http: send NSQ messages to HTTP endpoints (see `nsq::tools::to_http`).

use nsq::tools::{parse_args, run_tool, to_http};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: to_http::ToHttpArgs = parse_args();
    run_tool("nsq-to-http", to_http::run(args))
}
