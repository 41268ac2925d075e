//! Errors that nsqd reports to a client in an error frame.

use std::fmt;

/// An error frame's content: `<CODE> <description>`, and whether the
/// connection is closed after it is sent.
///
/// Only `E_FIN_FAILED`, `E_REQ_FAILED` and `E_TOUCH_FAILED` leave the
/// connection open; clients rely on that (they routinely FIN messages that
/// already timed out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: &'static str,
    pub description: String,
    pub fatal: bool,
}

impl ProtocolError {
    /// A fatal error: frame, flush, close.
    pub fn fatal(code: &'static str, description: impl Into<String>) -> Self {
        ProtocolError {
            code,
            description: description.into(),
            fatal: true,
        }
    }

    /// A non-fatal error: the connection stays open.
    pub fn non_fatal(code: &'static str, description: impl Into<String>) -> Self {
        ProtocolError {
            code,
            description: description.into(),
            fatal: false,
        }
    }

    /// `E_INVALID <description>`, fatal: the most common error.
    pub fn invalid(description: impl Into<String>) -> Self {
        Self::fatal("E_INVALID", description)
    }

    /// The bytes of the error frame's data.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // E_BAD_PROTOCOL is the one error NSQ sends without a description.
        if self.description.is_empty() {
            f.write_str(self.code)
        } else {
            write!(f, "{} {}", self.code, self.description)
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Render bytes the way Go's `%q` does, so error texts match nsqd's exactly.
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    let mut rest = bytes;
    while !rest.is_empty() {
        let (ch, len) = match std::str::from_utf8(rest) {
            Ok(s) => {
                let c = s.chars().next().expect("non-empty");
                (Some(c), c.len_utf8())
            }
            Err(e) if e.valid_up_to() > 0 => {
                let s = std::str::from_utf8(&rest[..e.valid_up_to()]).expect("valid prefix");
                let c = s.chars().next().expect("non-empty");
                (Some(c), c.len_utf8())
            }
            Err(_) => (None, 1),
        };
        match ch {
            Some('"') => out.push_str("\\\""),
            Some('\\') => out.push_str("\\\\"),
            Some('\n') => out.push_str("\\n"),
            Some('\r') => out.push_str("\\r"),
            Some('\t') => out.push_str("\\t"),
            Some('\x07') => out.push_str("\\a"),
            Some('\x08') => out.push_str("\\b"),
            Some('\x0c') => out.push_str("\\f"),
            Some('\x0b') => out.push_str("\\v"),
            Some(c) if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            Some(c) if (0x80..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            Some(c) => out.push(c),
            None => out.push_str(&format!("\\x{:02x}", rest[0])),
        }
        rest = &rest[len..];
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_nsq() {
        assert_eq!(
            ProtocolError::invalid("invalid command FOO").to_string(),
            "E_INVALID invalid command FOO"
        );
        assert_eq!(
            ProtocolError::fatal("E_BAD_PROTOCOL", "").to_string(),
            "E_BAD_PROTOCOL"
        );
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote(b"bad name!"), "\"bad name!\"");
        assert_eq!(go_quote(b"a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote(b"\x01\xff"), "\"\\x01\\xff\"");
        assert_eq!(go_quote("é".as_bytes()), "\"é\"");
    }
}
