//! Framing of HTTP/1.1 responses on a keep-alive connection: enough to know
//! where one response ends, its status, and whether the server closes.
//!
//! The contenders answer the benchmark's GETs with small bodies framed by
//! `Content-Length`; anything else (chunked bodies, bodies up to EOF) is
//! reported as an error rather than guessed at.

use thiserror::Error;

/// A complete response at the start of the connection's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed {
    /// The status code.
    pub status: u16,
    /// Bytes of the buffer the response takes (head and body).
    pub len: usize,
    /// The server said `Connection: close`.
    pub close: bool,
}

/// Why a response cannot be framed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ResponseError {
    #[error("malformed status line {0:?}")]
    StatusLine(String),
    #[error("malformed Content-Length {0:?}")]
    ContentLength(String),
    #[error(
        "response without Content-Length (chunked or close-delimited bodies are not supported)"
    )]
    NoContentLength,
    #[error("response head longer than {MAX_HEAD} bytes")]
    HeadTooLong,
}

/// The longest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;

/// Frames the response at the start of `buf`: `Ok(None)` while more bytes are
/// needed.
pub fn frame(buf: &[u8]) -> Result<Option<Framed>, ResponseError> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(ResponseError::HeadTooLong)
        } else {
            Ok(None)
        };
    };
    let head = &buf[..head_end];
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let status = parse_status(status_line).ok_or_else(|| {
        ResponseError::StatusLine(String::from_utf8_lossy(status_line).into_owned())
    })?;
    let mut content_length = None;
    let mut close = false;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let text = String::from_utf8_lossy(value);
            let n = text
                .parse::<usize>()
                .map_err(|_| ResponseError::ContentLength(text.clone().into_owned()))?;
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    // 1xx, 204 and 304 have no body
    let body = match (status, content_length) {
        (100..=199 | 204 | 304, _) => 0,
        (_, Some(n)) => n,
        (_, None) => return Err(ResponseError::NoContentLength),
    };
    let len = head_end + 4 + body;
    Ok((buf.len() >= len).then_some(Framed { status, len, close }))
}

fn parse_status(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_a_complete_response_and_leaves_the_next_one() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nbackend-1\nHTTP/1.1 200 OK\r\n";
        let f = frame(two).unwrap().unwrap();
        assert_eq!(
            f,
            Framed {
                status: 200,
                len: 49,
                close: false
            }
        );
        assert_eq!(&two[f.len..], b"HTTP/1.1 200 OK\r\n");
    }

    #[test]
    fn waits_for_the_rest_of_head_and_body() {
        assert_eq!(frame(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        assert_eq!(
            frame(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nback").unwrap(),
            None
        );
    }

    #[test]
    fn reads_status_and_connection_close() {
        let f = frame(b"HTTP/1.1 503 Service Unavailable\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((f.status, f.close), (503, true));
        assert_eq!(
            frame(b"HTTP/1.1 304 Not Modified\r\n\r\n")
                .unwrap()
                .unwrap()
                .len,
            29
        );
    }

    #[test]
    fn refuses_what_it_cannot_frame() {
        assert_eq!(
            frame(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(ResponseError::NoContentLength)
        );
        assert!(matches!(
            frame(b"HTTP/1.1 2x0 OK\r\n\r\n"),
            Err(ResponseError::StatusLine(_))
        ));
        assert!(matches!(
            frame(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(ResponseError::ContentLength(_))
        ));
        assert_eq!(
            frame(&vec![b'a'; MAX_HEAD + 1]),
            Err(ResponseError::HeadTooLong)
        );
    }
}
