//! The machine as NSQ shows it: its hostname, and wall-clock time as Unix
//! seconds in JSON, RFC 3339 in `/stats` and `2006/01/02 15:04:05.000000`
//! in log lines. One place, on chrono, for the daemons, the logger and the
//! tools.

use chrono::{DateTime, Utc};

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> i64 {
    Utc::now().timestamp()
}

/// `2023-11-14T22:13:20Z`, as Go formats `time.RFC3339` in UTC.
pub fn rfc3339(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The timestamp of a log line, in UTC with microseconds.
pub fn log_timestamp() -> String {
    Utc::now().format("%Y/%m/%d %H:%M:%S%.6f").to_string()
}

/// The OS hostname, as NSQ uses it for defaults (broadcast address, node
/// ID, file names).
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        let ts = log_timestamp();
        assert_eq!(ts.len(), "2024/01/02 15:04:05.000000".len(), "{ts}");
        assert!((unix_seconds() - 1_700_000_000) > 0);
        assert!(!hostname().is_empty());
    }
}
