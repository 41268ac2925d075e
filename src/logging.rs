//! Log lines in NSQ's shape: `[nsqd] 2024/01/02 15:04:05.000000 INFO: text`,
//! on stderr, so operators' log parsing carries over.

use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

struct NsqFormat {
    prefix: String,
}

impl<S, N> FormatEvent<S, N> for NsqFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG | Level::TRACE => "DEBUG",
        };
        write!(
            writer,
            "{}{} {level}: ",
            self.prefix,
            crate::sys::log_timestamp()
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// A tool's log line: `nsq-tail: text`, as its failure line reads.
struct ToolFormat {
    name: &'static str,
}

impl<S, N> FormatEvent<S, N> for ToolFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "{}: ", self.name)?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Install a tool's logger: warnings and errors (a peer that cannot be
/// reached, and when it is back) on stderr, one line each.
pub fn init_tool(name: &'static str) {
    let _ = tracing_subscriber::fmt()
        .with_max_level(Level::WARN)
        .with_writer(std::io::stderr)
        .event_format(ToolFormat { name })
        .try_init();
}

/// The installed logger's level setter (see [`set_level`]).
static SET_LEVEL: std::sync::OnceLock<Box<dyn Fn(Level) + Send + Sync>> =
    std::sync::OnceLock::new();

/// Install the logger; `prefix` is e.g. `"[nsqd] "`. Its level can be
/// changed later with [`set_level`] (nsqd's `PUT /config/log_level`).
pub fn init(prefix: &str, level: Level) {
    let set = init_reloadable(prefix, level);
    let _ = SET_LEVEL.set(Box::new(set));
}

/// Change the level of the logger [`init`] installed, at once (no-op
/// without one, as in tests that embed the engine).
pub fn set_level(level: Level) {
    if let Some(set) = SET_LEVEL.get() {
        set(level);
    }
}

/// Install the logger with a level that can be changed later (nsqadmin's
/// `PUT /config/log_level`); the returned function changes it.
pub fn init_reloadable(prefix: &str, level: Level) -> impl Fn(Level) + Send + Sync + 'static {
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::prelude::*;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(LevelFilter::from_level(level));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(NsqFormat {
            prefix: prefix.to_string(),
        });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init();
    move |level| {
        let _ = handle.modify(|f| *f = LevelFilter::from_level(level));
    }
}
