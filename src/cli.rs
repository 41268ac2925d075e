//! Helpers shared by every binary's flag parsing.
//!
//! NSQ's tools use Go's `flag` package: `-name value` works as well as
//! `--name value`, and durations are written `250ms`, `1m30s`, `2h`. Scripts
//! written for NSQ must keep working, so both spellings are accepted here.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Rewrite Go-style single-dash long flags (`-tcp-address=x`) into clap's
/// `--tcp-address=x`. Only names that `is_long_flag` recognises are rewritten,
/// so short flags such as `-n 10` and negative values pass through.
pub fn normalize_go_flags<I, F>(args: I, is_long_flag: F) -> Vec<std::ffi::OsString>
where
    I: IntoIterator<Item = std::ffi::OsString>,
    F: Fn(&str) -> bool,
{
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, arg) in args.into_iter().enumerate() {
        if i == 0 || passthrough {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        if let Some(s) = arg.to_str() {
            if let Some(rest) = s.strip_prefix('-') {
                if !rest.starts_with('-') {
                    let name = rest.split('=').next().unwrap_or(rest);
                    if name.len() > 1 && is_long_flag(name) {
                        out.push(format!("-{s}").into());
                        continue;
                    }
                }
            }
        }
        out.push(arg);
    }
    out
}

/// The flags every daemon (nsqd, nsqlookupd, nsqadmin) has, defined once.
/// (`--log-prefix` is each daemon's own: its default names the daemon.)
#[derive(clap::Args, Debug, Clone)]
pub struct DaemonFlags {
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,

    /// Load options from this TOML file (keys are flag names with `_` for `-`);
    /// flags given on the command line win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log level: debug, info, warn, error or fatal.
    #[arg(long = "log-level", default_value = "info", value_parser = parse_log_level)]
    pub log_level: LogLevel,

    /// Deprecated (no effect); accepted for compatibility.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub verbose: Option<String>,
}

/// How a binary's configuration file maps onto its flags (see
/// [`apply_config_file`]); `None` for a binary without `--config`.
pub struct ConfigFile<'a> {
    /// Flags whose config-file integers are Go nanoseconds.
    pub duration_flags: &'a [&'a str],
    /// NSQ's config keys that are not the flag name with `_` for `-`.
    pub key_exceptions: &'a [(&'a str, &'a str)],
}

/// Every long flag of `cmd` and its subcommands, plus help and version.
fn long_flags(cmd: &clap::Command) -> std::collections::HashSet<String> {
    let mut names: std::collections::HashSet<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    names.extend(["help".to_string(), "version".to_string()]);
    for sub in cmd.get_subcommands() {
        names.extend(long_flags(sub));
    }
    names
}

/// Parse a binary's flags the way NSQ's Go programs take them: Go's
/// single-dash long flags, then (with `config`) `--config FILE` merged in
/// front of the command line. The one parser every binary uses; `Err`
/// carries clap's own help, version and usage output.
pub fn parse_go_style<T: clap::CommandFactory + clap::FromArgMatches>(
    args: impl IntoIterator<Item = OsString>,
    config: Option<ConfigFile<'_>>,
) -> Result<T, clap::Error> {
    let mut cmd = T::command();
    let longs = long_flags(&cmd);
    let mut argv = normalize_go_flags(args, |n| longs.contains(n));
    if let Some(config) = config {
        apply_config_file(
            &mut argv,
            &cmd,
            config.duration_flags,
            config.key_exceptions,
        )
        .map_err(|e| T::command().error(clap::error::ErrorKind::ValueValidation, e))?;
    }
    let matches = cmd.try_get_matches_from_mut(argv)?;
    T::from_arg_matches(&matches)
}

/// Parse a Go duration string (`300ms`, `1.5s`, `1h2m3s`, `0`).
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let err = || format!("invalid duration {input:?} (use units like 250ms, 60s, 1m30s, 1h)");
    let s = input.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') {
        return Err(format!("negative duration {input:?} is not allowed"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() {
        return Err(err());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err()),
        };
        total += value * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    if total > u64::MAX as f64 {
        return Err(err());
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Render a duration as Go does (`1m0s`, `250ms`, `1h0m0s`), for help texts
/// and `/config`-style output.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1000) {
            format!("{}µs", nanos / 1000)
        } else {
            format!("{nanos}ns")
        };
    }
    let total_secs = d.as_secs();
    let (h, m, s) = (total_secs / 3600, (total_secs / 60) % 60, total_secs % 60);
    let frac = d.subsec_nanos();
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{:09}", frac);
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else {
        secs
    }
}

/// clap value parser for durations.
pub fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(format_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn go_flags() {
        let known = |n: &str| n == "tcp-address" || n == "topic";
        let args = [
            "x",
            "-tcp-address=1",
            "-n",
            "5",
            "--topic",
            "t",
            "-topic",
            "u",
            "-5",
        ];
        let out: Vec<String> = normalize_go_flags(args.iter().map(Into::into), known)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(
            out,
            [
                "x",
                "--tcp-address=1",
                "-n",
                "5",
                "--topic",
                "t",
                "--topic",
                "u",
                "-5"
            ]
        );
    }
}

/// Merge `--config FILE` (TOML, keys are flag names with `_` for `-`, as in
/// NSQ) into `args`: its values go in front of the command line, so that
/// flags given explicitly win (with clap's `args_override_self`). Integers
/// for `duration_flags` are nanoseconds, as Go's config loader reads them;
/// `key_exceptions` maps NSQ's config keys that differ from the flag name.
pub fn apply_config_file(
    args: &mut Vec<OsString>,
    cmd: &clap::Command,
    duration_flags: &[&str],
    key_exceptions: &[(&str, &str)],
) -> Result<(), String> {
    if let Some(path) = find_config_arg(args) {
        let extra = config_file_args(&path, cmd, duration_flags, key_exceptions)?;
        let rest = args.split_off(1);
        args.extend(extra);
        args.extend(rest);
    }
    Ok(())
}

fn find_config_arg(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let s = arg.to_str()?;
        if s == "--" {
            return None;
        }
        if let Some(v) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
        if s == "--config" {
            return iter.next().map(PathBuf::from);
        }
    }
    None
}

/// Turn a TOML config file into `--flag=value` arguments.
fn config_file_args(
    path: &PathBuf,
    cmd: &clap::Command,
    duration_flags: &[&str],
    key_exceptions: &[(&str, &str)],
) -> Result<Vec<OsString>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("failed to read config file {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("failed to parse config file {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let flag = key_exceptions
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, f)| f.to_string())
            .unwrap_or_else(|| key.replace('_', "-"));
        if flag == "config"
            || !cmd
                .get_arguments()
                .any(|a| a.get_long() == Some(flag.as_str()))
        {
            eprintln!(
                "{}: ignoring unknown option {key:?} in config file {}",
                cmd.get_name(),
                path.display()
            );
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items,
            other => vec![other],
        };
        for v in values {
            let text = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) if duration_flags.contains(&flag.as_str()) => {
                    format!("{i}ns")
                }
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(format!(
                        "config file {}: unsupported value for {key}: {other}",
                        path.display()
                    ))
                }
            };
            out.push(OsString::from(format!("--{flag}={text}")));
        }
    }
    Ok(out)
}

/// `--log-level`, as NSQ's daemons spell it (also its integer in `/config`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Fatal = 5,
}

impl LogLevel {
    pub fn as_tracing(self) -> tracing::Level {
        match self {
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Error | LogLevel::Fatal => tracing::Level::ERROR,
        }
    }
}

pub fn parse_log_level(s: &str) -> Result<LogLevel, String> {
    match s.to_ascii_lowercase().as_str() {
        "debug" => Ok(LogLevel::Debug),
        "info" => Ok(LogLevel::Info),
        "warn" => Ok(LogLevel::Warn),
        "error" => Ok(LogLevel::Error),
        "fatal" => Ok(LogLevel::Fatal),
        _ => Err(format!(
            "invalid log level {s:?}: use debug, info, warn, error or fatal"
        )),
    }
}

/// The common `main` of the daemons: logging set up, a multi-threaded
/// runtime, `serve` run to completion; a failure is logged and printed as
/// `name: error` with exit status 1.
/// Raise the soft limit on open files to the hard limit, as every Go
/// program (NSQ's daemons and tools included) does at start: a default soft
/// limit of 1024 would refuse connections long before the machine must.
pub fn raise_open_files_limit() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open files limit: {e}");
    }
}

pub fn run_daemon<F, E>(
    name: &str,
    log_prefix: &str,
    level: LogLevel,
    serve: F,
) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    crate::logging::init(log_prefix, level.as_tracing());
    raise_open_files_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: failed to start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A parse result turned into the options or the exit: help and version
/// text on stdout (status 0), usage errors on stderr (status 2).
pub fn options_or_exit<T>(parsed: Result<T, clap::Error>) -> Result<T, std::process::ExitCode> {
    parsed.map_err(|e| {
        let code = if e.use_stderr() { 2 } else { 0 };
        let _ = e.print();
        std::process::ExitCode::from(code)
    })
}
