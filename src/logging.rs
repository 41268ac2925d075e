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

/// Install the logger; `prefix` is e.g. `"[nsqd] "`.
pub fn init(prefix: &str, level: Level) {
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .event_format(NsqFormat {
            prefix: prefix.to_string(),
        })
        .try_init();
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
