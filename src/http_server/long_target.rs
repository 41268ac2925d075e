//! Requests whose target is longer than the `http` crate can hold.
//!
//! hyper parses the request target into an `http::Uri`, which holds at most
//! 65534 bytes, and answers 414 to anything longer; NSQ (Go) accepts request
//! lines up to its 1 MB header limit. So before hyper sees a request, a
//! target over [`REWRITE_OVER`] bytes is rewritten: its query moves into a
//! [`QUERY_HEADER`] header, where [`crate::http_api::raw_query`] finds it.
//!
//! [`Rewriter`] is pure: bytes in, bytes out, no I/O. To find where each
//! request starts on a keep-alive connection it follows the framing of
//! HTTP/1.1 requests (`Content-Length`, chunked bodies). Anything it does
//! not understand switches it to passing bytes through untouched, leaving
//! the verdict to hyper.

/// The header that carries a moved query.
pub const QUERY_HEADER: &str = "x-nsq-rs-query";

/// Targets longer than this are rewritten (below the `http` crate's limit).
pub const REWRITE_OVER: usize = 60 * 1024;

/// The longest line followed: a request line or a header within Go's 1 MB
/// limit for a request's head.
const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a request line (blank lines before one are allowed).
    RequestLine,
    /// Collecting header lines.
    Headers,
    /// Passing `n` more body bytes.
    Body(u64),
    /// Collecting a chunk-size line.
    ChunkSize,
    /// Passing `n` more chunk bytes.
    ChunkData(u64),
    /// Collecting the CRLF that ends a chunk's data.
    ChunkEnd,
    /// Collecting trailer lines after the last chunk.
    Trailers,
    /// Not understood: everything passes untouched from here on.
    Passthrough,
}

/// Follows a client's byte stream, rewriting over-long request targets.
#[derive(Debug)]
pub struct Rewriter {
    state: State,
    /// The line being collected (in the line-oriented states).
    line: Vec<u8>,
    content_length: Option<u64>,
    chunked: bool,
}

impl Default for Rewriter {
    fn default() -> Self {
        Rewriter {
            state: State::RequestLine,
            line: Vec::new(),
            content_length: None,
            chunked: false,
        }
    }
}

impl Rewriter {
    /// Feed bytes read from the client; what hyper should read is appended
    /// to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            match self.state {
                State::Passthrough => {
                    out.extend_from_slice(input);
                    return;
                }
                State::Body(n) | State::ChunkData(n) => {
                    let take = (n.min(input.len() as u64)) as usize;
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    let left = n - take as u64;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::RequestLine,
                        (State::Body(_), _) => State::Body(left),
                        (_, 0) => State::ChunkEnd,
                        (_, _) => State::ChunkData(left),
                    };
                }
                _ => {
                    let Some(end) = input.iter().position(|&b| b == b'\n') else {
                        self.line.extend_from_slice(input);
                        if self.line.len() > MAX_LINE {
                            self.pass_through(out);
                        }
                        return;
                    };
                    self.line.extend_from_slice(&input[..=end]);
                    input = &input[end + 1..];
                    if self.line.len() > MAX_LINE {
                        self.pass_through(out);
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    self.on_line(line, out);
                }
            }
        }
    }

    /// Give up following: flush what is held and pass everything on.
    fn pass_through(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.line);
        self.state = State::Passthrough;
    }

    fn on_line(&mut self, line: Vec<u8>, out: &mut Vec<u8>) {
        let text = trim_eol(&line);
        match self.state {
            State::RequestLine => {
                if text.is_empty() {
                    out.extend_from_slice(&line);
                    return;
                }
                self.content_length = None;
                self.chunked = false;
                self.state = State::Headers;
                rewrite_request_line(&line, out);
            }
            State::Headers => {
                out.extend_from_slice(&line);
                if text.is_empty() {
                    self.state = match (self.chunked, self.content_length) {
                        (true, _) => State::ChunkSize,
                        (false, Some(n)) if n > 0 => State::Body(n),
                        _ => State::RequestLine,
                    };
                    return;
                }
                let Some(colon) = text.iter().position(|&b| b == b':') else {
                    return;
                };
                let (name, value) = (&text[..colon], trim(&text[colon + 1..]));
                if name.eq_ignore_ascii_case(b"content-length") {
                    match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                        Some(n) => self.content_length = Some(n),
                        None => self.state = State::Passthrough,
                    }
                } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                    let last = value.rsplit(|&b| b == b',').next().map(trim);
                    if last.is_some_and(|v| v.eq_ignore_ascii_case(b"chunked")) {
                        self.chunked = true;
                    } else {
                        self.state = State::Passthrough;
                    }
                }
            }
            State::ChunkEnd => {
                out.extend_from_slice(&line);
                self.state = if text.is_empty() {
                    State::ChunkSize
                } else {
                    State::Passthrough
                };
            }
            State::ChunkSize => {
                out.extend_from_slice(&line);
                let hex = text.split(|&b| b == b';').next().map(trim).unwrap_or(b"");
                match std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                {
                    Some(0) => self.state = State::Trailers,
                    Some(n) => self.state = State::ChunkData(n),
                    None => self.state = State::Passthrough,
                }
            }
            State::Trailers => {
                out.extend_from_slice(&line);
                if text.is_empty() {
                    self.state = State::RequestLine;
                }
            }
            State::Body(_) | State::ChunkData(_) | State::Passthrough => {
                out.extend_from_slice(&line);
            }
        }
    }
}

/// Copy a request line to `out`, moving an over-long target's query into a
/// [`QUERY_HEADER`] header that follows it.
fn rewrite_request_line(line: &[u8], out: &mut Vec<u8>) {
    let text = trim_eol(line);
    let mut parts = text.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        out.extend_from_slice(line);
        return;
    };
    let query_at = target.iter().position(|&b| b == b'?');
    match query_at {
        Some(q) if target.len() > REWRITE_OVER && q < REWRITE_OVER => {
            out.extend_from_slice(method);
            out.push(b' ');
            out.extend_from_slice(&target[..q]);
            out.push(b' ');
            out.extend_from_slice(version);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(QUERY_HEADER.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&target[q + 1..]);
            out.extend_from_slice(b"\r\n");
        }
        _ => out.extend_from_slice(line),
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(input: &[u8]) -> Vec<u8> {
        let mut r = Rewriter::default();
        let mut out = Vec::new();
        r.feed(input, &mut out);
        out
    }

    /// Fed whole and fed byte by byte, the output is the same.
    fn both_ways(input: &[u8]) -> Vec<u8> {
        let whole = rewrite(input);
        let mut r = Rewriter::default();
        let mut out = Vec::new();
        for b in input {
            r.feed(std::slice::from_ref(b), &mut out);
        }
        assert_eq!(out, whole, "byte by byte differs");
        whole
    }

    /// Equal, or where they part (the texts are too long to print).
    fn assert_same(out: &str, expected: &str) {
        let at = out.bytes().zip(expected.bytes()).position(|(a, b)| a != b);
        assert!(
            out == expected,
            "differ at byte {at:?} (lengths {} and {}): {:?}",
            out.len(),
            expected.len(),
            at.map(|i| &out[i.saturating_sub(40)..(i + 40).min(out.len())])
        );
    }

    fn long_query(len: usize) -> String {
        format!("topic=t&pad={}", "a".repeat(len))
    }

    #[test]
    fn short_requests_pass_untouched() {
        let req = b"POST /pub?topic=t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /ping HTTP/1.1\r\n\r\n";
        assert_eq!(both_ways(req), req.to_vec());
    }

    #[test]
    fn a_long_query_moves_into_a_header() {
        let q = long_query(70_000);
        let req = format!("GET /stats?{q} HTTP/1.1\r\nHost: x\r\n\r\n");
        let out = String::from_utf8(both_ways(req.as_bytes())).unwrap();
        let expected = format!("GET /stats HTTP/1.1\r\n{QUERY_HEADER}: {q}\r\nHost: x\r\n\r\n");
        assert_same(&out, &expected);
    }

    #[test]
    fn requests_after_bodies_are_found() {
        let q = long_query(70_000);
        // A Content-Length body, then a chunked one (whose data holds
        // something that looks like a request), then the long one.
        let input = format!(
            "POST /pub?topic=t HTTP/1.1\r\nContent-Length: 4\r\n\r\nGET \
             POST /mpub?topic=t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
             f\r\nGET /x?a HTTP/1\r\n0\r\nX-Trailer: 1\r\n\r\n\
             GET /stats?{q} HTTP/1.1\r\n\r\n"
        );
        let out = String::from_utf8(both_ways(input.as_bytes())).unwrap();
        let expected = input.replace(
            &format!("GET /stats?{q} HTTP/1.1\r\n"),
            &format!("GET /stats HTTP/1.1\r\n{QUERY_HEADER}: {q}\r\n"),
        );
        assert_same(&out, &expected);
    }

    #[test]
    fn what_is_not_understood_passes_through() {
        let q = long_query(70_000);
        for head in [
            "POST /pub HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
            "POST /pub HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST /pub HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            // The long request after a head we cannot follow is not touched.
            let input = format!("{head}GET /stats?{q} HTTP/1.1\r\n\r\n");
            assert!(both_ways(input.as_bytes()) == input.as_bytes(), "{head}");
        }
        // A line longer than any head may be is passed on for hyper to refuse.
        let huge = format!("GET /{} HTTP/1.1\r\n\r\n", "b".repeat(MAX_LINE + 10));
        assert_eq!(both_ways(huge.as_bytes()).len(), huge.len());
        assert_eq!(both_ways(b"garbage\r\n\r\n"), b"garbage\r\n\r\n");
    }

    #[test]
    fn a_long_path_is_left_alone() {
        let target = format!("/{}?a=b", "p".repeat(70_000));
        let req = format!("GET {target} HTTP/1.1\r\n\r\n");
        assert!(both_ways(req.as_bytes()) == req.as_bytes());
    }
}
