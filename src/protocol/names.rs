//! Topic and channel name rules, shared by nsqd, nsqlookupd and clients.
//!
//! A name is 1–64 bytes matching `^[.a-zA-Z0-9_-]+(#ephemeral)?$`.

/// The suffix that makes a topic or channel ephemeral (memory only, removed
/// when its last consumer or channel goes).
pub const EPHEMERAL_SUFFIX: &str = "#ephemeral";

/// Maximum length of a topic or channel name, suffix included.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` is a valid topic or channel name.
pub fn is_valid_name(name: &[u8]) -> bool {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return false;
    }
    let base = name
        .strip_suffix(EPHEMERAL_SUFFIX.as_bytes())
        .unwrap_or(name);
    !base.is_empty()
        && base
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether a (valid) name carries the `#ephemeral` suffix.
pub fn is_ephemeral(name: &str) -> bool {
    name.ends_with(EPHEMERAL_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_nsq_names() {
        for ok in [
            "a",
            "orders",
            "a.b_c-d",
            "tail123456#ephemeral",
            "x#ephemeral",
            &"a".repeat(64),
            &format!("{}#ephemeral", "a".repeat(54)),
        ] {
            assert!(is_valid_name(ok.as_bytes()), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "#ephemeral",
            "a b",
            "a#b",
            "a#ephemeral#ephemeral",
            "a:b",
            "ü",
            "a\n",
            &"a".repeat(65),
            &format!("{}#ephemeral", "a".repeat(55)),
        ] {
            assert!(!is_valid_name(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn ephemeral_suffix() {
        assert!(is_ephemeral("t#ephemeral"));
        assert!(!is_ephemeral("t"));
    }
}
