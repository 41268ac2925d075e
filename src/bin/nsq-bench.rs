//! nsq-bench: load generator and latency meter for nsqd (NSQ's bench_writer
//! and bench_reader), plus the raw-TCP baseline every figure is compared to.
//!
//! The modes and their flags live in `nsq::bench` (so that the man page and
//! the tests see the same definitions); this file only parses the command
//! line, accepting Go-style `-flag` spellings as NSQ's tools do, prints each
//! result as one line (or one JSON object with `--json`), and maps a failure
//! to one line on stderr and exit status 1.

use clap::{CommandFactory, FromArgMatches};
use nsq::bench::{run, BenchArgs};
use nsq::cli::normalize_go_flags;
use std::collections::HashSet;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut command = BenchArgs::command();
    let long_flags = long_flag_names(&command);
    let argv = normalize_go_flags(std::env::args_os(), |name| long_flags.contains(name));
    let args = match command
        .try_get_matches_from_mut(argv)
        .and_then(|m| BenchArgs::from_arg_matches(&m))
    {
        Ok(args) => args,
        // Help and version go to stdout with status 0, usage errors to
        // stderr with status 2, as clap does by default.
        Err(e) => e.exit(),
    };
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

/// Every long flag of the command and its subcommands.
fn long_flag_names(command: &clap::Command) -> HashSet<String> {
    let mut names: HashSet<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    names.extend(["help".to_string(), "version".to_string()]);
    for sub in command.get_subcommands() {
        names.extend(long_flag_names(sub));
    }
    names
}
