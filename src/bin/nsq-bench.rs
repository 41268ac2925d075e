//! nsq-bench: load generator and latency meter for nsqd.

use clap::Parser;
use nsq::bench::{run, BenchArgs};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = BenchArgs::parse();
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
