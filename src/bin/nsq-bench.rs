//! nsq-bench: load generator and latency meter for nsqd (NSQ's bench_writer
//! and bench_reader), plus the raw-TCP baseline every figure is compared to.
//!
//! The modes and their flags live in `nsq::bench` (so that the man page and
//! the tests see the same definitions); this file only parses the command
//! line, accepting Go-style `-flag` spellings as NSQ's tools do, prints each
//! result as one line (or one JSON object with `--json`), and maps a failure
//! to one line on stderr and exit status 1.

use nsq::bench::{run, BenchArgs};
use nsq::cli::parse_go_style;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Help and version go to stdout with status 0, usage errors to stderr
    // with status 2, as clap does by default.
    let args: BenchArgs = parse_go_style(std::env::args_os(), None).unwrap_or_else(|e| e.exit());
    match run(&args) {
        Ok(reports) => {
            for r in reports {
                if args.json {
                    println!("{}", serde_json::to_string(&r).expect("plain data"));
                } else {
                    println!("{}", r.line());
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nsq-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
