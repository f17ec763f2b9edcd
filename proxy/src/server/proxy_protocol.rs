//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`, v1 text and
//! v2 binary) that a TCP load balancer sends first on each connection, to
//! say which client it carries (SPEC §10, `server.proxy_protocol`).
//!
//! Why our own parser rather than a crate: the header must be read without
//! reading a byte of the HTTP that follows (the rest of the connection
//! goes to hyper untouched), so the reader needs to know, at every prefix,
//! how many more bytes it may safely ask for. [`parse`] says exactly that
//! ([`Parsed::More`]); `ppp` and `proxy-header` parse a buffer that already
//! holds the whole header (and `ppp` would bring a second `thiserror`).
//!
//! The parser is pure (bytes in, a [`Source`] or a [`HeaderError`] out);
//! [`read`] is its only I/O, bounded in bytes ([`MAX_HEADER`]) and time.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

#[cfg(test)]
mod tests;

/// What a v1 header starts with.
const V1_PREFIX: &[u8] = b"PROXY ";

/// The longest v1 header, CRLF included (the spec's worst case: `TCP6`
/// with two full-length IPv6 addresses and ports).
const V1_MAX: usize = 107;

/// The shortest v1 header: `PROXY UNKNOWN\r\n`. No header of either
/// version is shorter, so this many bytes can always be asked for first.
const V1_MIN: usize = 15;

/// The shortest v1 `TCP4` header: `PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n`.
const V1_MIN_TCP4: usize = 32;

/// The shortest v1 `TCP6` header: `PROXY TCP6 :: :: 0 0\r\n`.
const V1_MIN_TCP6: usize = 22;

/// What a v2 header starts with.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part of a v2 header: signature, version and command, family
/// and transport, and the length of what follows.
const V2_FIXED: usize = 16;

/// The longest v2 header accepted: the fixed part and 520 bytes of
/// addresses and TLVs, as HAProxy and most receivers bound it (a UNIX
/// address block is 216 bytes; the rest leaves room for TLVs).
pub(super) const MAX_HEADER: usize = 536;

/// Whom the header says the connection is from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    /// A relayed TCP connection from this client.
    Client(SocketAddr),
    /// No client address: v1 `UNKNOWN`, v2 `LOCAL` (the balancer's own
    /// health check), or a v2 family without an IP address (`UNSPEC`,
    /// `UNIX`). As HAProxy does, the connection's own peer stands.
    Unknown,
}

/// How far [`parse`] got with the bytes so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    /// A whole header: exactly the bytes given.
    Done(Source),
    /// The header goes on: at least this many more bytes (at least one),
    /// all of them still the header's, so reading up to this many never
    /// takes a byte of what follows it.
    More(usize),
}

/// Why a connection's PROXY protocol header was not accepted.
#[derive(Debug, thiserror::Error)]
pub(super) enum HeaderError {
    /// Its first bytes are neither a v1 nor a v2 header: typically a
    /// client speaking HTTP straight to a listener that wants the header.
    #[error("no PROXY protocol header: the connection starts with neither `PROXY ` nor the v2 signature")]
    Missing,
    /// A v1 header without its CRLF within the 107 bytes it may have.
    #[error("PROXY protocol v1 header longer than {V1_MAX} bytes")]
    V1TooLong,
    /// A v1 header whose line is not `PROXY TCP4|TCP6 src dst sport dport`
    /// or `PROXY UNKNOWN ...`.
    #[error("malformed PROXY protocol v1 header: {0}")]
    V1(&'static str),
    /// A v2 header whose address block and TLVs are longer than accepted.
    #[error("PROXY protocol v2 header of {0} bytes, more than the {MAX_HEADER} accepted")]
    V2TooLong(usize),
    /// A v2 header with a version, command, family, transport or length
    /// the spec does not allow.
    #[error("malformed PROXY protocol v2 header: {0}")]
    V2(&'static str),
    /// The connection closed before the header was complete.
    #[error("connection closed after {0} bytes, before a whole PROXY protocol header")]
    Closed(usize),
    /// The header did not arrive within `server.header_read_timeout`.
    #[error("no whole PROXY protocol header within {0:?}")]
    TimedOut(Duration),
    /// The connection failed.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] io::Error),
}

impl HeaderError {
    /// Whether the peer sent bytes that are not a header, as opposed to
    /// sending nothing (enough): a misconfigured balancer or a client that
    /// reached the listener directly, worth an operator's attention, where
    /// a connection that closes or stalls is routine (a TCP health check).
    pub(super) fn is_malformed(&self) -> bool {
        matches!(
            self,
            HeaderError::Missing
                | HeaderError::V1TooLong
                | HeaderError::V1(_)
                | HeaderError::V2TooLong(_)
                | HeaderError::V2(_)
        )
    }
}

/// Reads one PROXY protocol header from `stream`, within `within`, and
/// nothing past it: what follows is left for the HTTP parser.
///
/// # Errors
///
/// [`HeaderError`] when the header is malformed, missing, too long, late,
/// or the connection ends first.
pub(super) async fn read(stream: &mut TcpStream, within: Duration) -> Result<Source, HeaderError> {
    let mut buffer = [0u8; MAX_HEADER];
    let mut filled = 0;
    let reading = async {
        loop {
            let wanted = match parse(&buffer[..filled])? {
                Parsed::Done(source) => return Ok(source),
                Parsed::More(wanted) => wanted,
            };
            // `parse` bounds every header by MAX_HEADER; `get_mut` keeps a
            // mistake there from panicking on a client's bytes.
            let Some(room) = buffer.get_mut(filled..filled + wanted) else {
                return Err(HeaderError::V2TooLong(filled + wanted));
            };
            let count = stream.read(room).await?;
            if count == 0 {
                return Err(HeaderError::Closed(filled));
            }
            filled += count;
        }
    };
    tokio::time::timeout(within, reading)
        .await
        .unwrap_or(Err(HeaderError::TimedOut(within)))
}

/// Parses the start of a connection, `bytes`, as a PROXY protocol header:
/// a whole one, or how many more bytes it needs at least.
///
/// # Errors
///
/// [`HeaderError`] as soon as `bytes` cannot be the start of a valid
/// header.
pub(super) fn parse(bytes: &[u8]) -> Result<Parsed, HeaderError> {
    let prefix_of = |signature: &[u8]| {
        let common = bytes.len().min(signature.len());
        bytes[..common] == signature[..common]
    };
    let (v1, v2) = (prefix_of(V1_PREFIX), prefix_of(V2_SIGNATURE));
    if !v1 && !v2 {
        return Err(HeaderError::Missing);
    }
    if bytes.len() < V1_MIN {
        return Ok(Parsed::More(V1_MIN - bytes.len()));
    }
    // Past the first byte, at most one of them still matches.
    if v2 {
        parse_v2(bytes)
    } else {
        parse_v1(bytes)
    }
}

// === v1 ===

/// [`parse`] of a v1 header (or a prefix of one).
fn parse_v1(bytes: &[u8]) -> Result<Parsed, HeaderError> {
    if let Some(end) = bytes.iter().position(|&byte| byte == b'\n') {
        if end >= V1_MAX {
            return Err(HeaderError::V1TooLong);
        }
        let line = match bytes[..end].strip_suffix(b"\r") {
            Some(line) if end + 1 == bytes.len() => line,
            // A bare LF, or bytes past the CRLF (which reads bounded by
            // `More` never take).
            _ => return Err(HeaderError::V1("the line does not end with CRLF")),
        };
        return v1_line(line).map(Parsed::Done);
    }
    if bytes.len() >= V1_MAX {
        return Err(HeaderError::V1TooLong);
    }
    // The header ends with CRLF, not yet seen: two more bytes at least,
    // one if the last is its CR.
    let to_crlf = if bytes.ends_with(b"\r") { 1 } else { 2 };
    let shortest = if bytes.starts_with(b"PROXY TCP4 ") {
        V1_MIN_TCP4
    } else if bytes.starts_with(b"PROXY TCP6 ") {
        V1_MIN_TCP6
    } else {
        V1_MIN
    };
    let wanted = to_crlf.max(shortest.saturating_sub(bytes.len()));
    Ok(Parsed::More(wanted.min(V1_MAX - bytes.len())))
}

/// The source of a whole v1 line, `PROXY ...` without its CRLF.
fn v1_line(line: &[u8]) -> Result<Source, HeaderError> {
    let line = std::str::from_utf8(line).map_err(|_| HeaderError::V1("not ASCII"))?;
    let rest = line
        .strip_prefix("PROXY ")
        .ok_or(HeaderError::V1("no `PROXY ` prefix"))?;
    let mut fields = rest.split(' ');
    let family = fields.next().unwrap_or_default();
    if family == "UNKNOWN" {
        // The spec: whatever follows UNKNOWN up to the CRLF is ignored.
        return Ok(Source::Unknown);
    }
    let ip = |text: Option<&str>| -> Result<IpAddr, HeaderError> {
        let text = text.ok_or(HeaderError::V1("missing address"))?;
        match family {
            "TCP4" => text.parse::<Ipv4Addr>().map(IpAddr::V4),
            _ => text.parse::<Ipv6Addr>().map(IpAddr::V6),
        }
        .map_err(|_| HeaderError::V1("address not of the protocol's family"))
    };
    if family != "TCP4" && family != "TCP6" {
        return Err(HeaderError::V1("protocol not TCP4, TCP6 or UNKNOWN"));
    }
    let source = ip(fields.next())?;
    ip(fields.next())?;
    let source_port = v1_port(fields.next())?;
    v1_port(fields.next())?;
    if fields.next().is_some() {
        return Err(HeaderError::V1("more than four fields after the protocol"));
    }
    Ok(Source::Client(SocketAddr::new(source, source_port)))
}

/// A v1 port: 1 to 5 decimal digits, at most 65535 (no sign, no space).
fn v1_port(text: Option<&str>) -> Result<u16, HeaderError> {
    let text = text.ok_or(HeaderError::V1("missing port"))?;
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(HeaderError::V1("port not a decimal number"));
    }
    text.parse().map_err(|_| HeaderError::V1("port over 65535"))
}

// === v2 ===

/// [`parse`] of a v2 header (or a prefix of one).
fn parse_v2(bytes: &[u8]) -> Result<Parsed, HeaderError> {
    let Some(fixed) = bytes.get(..V2_FIXED) else {
        return Ok(Parsed::More(V2_FIXED - bytes.len()));
    };
    let (version_command, family_transport) = (fixed[12], fixed[13]);
    if version_command >> 4 != 2 {
        return Err(HeaderError::V2("version not 2"));
    }
    let length = V2_FIXED + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if length > MAX_HEADER {
        return Err(HeaderError::V2TooLong(length));
    }
    if bytes.len() < length {
        return Ok(Parsed::More(length - bytes.len()));
    }
    if bytes.len() > length {
        return Err(HeaderError::V2("bytes past the header's length"));
    }
    let block = &bytes[V2_FIXED..];
    match version_command & 0x0f {
        // LOCAL: the balancer speaking for itself; the addresses, if any,
        // are to be ignored.
        0x0 => return Ok(Parsed::Done(Source::Unknown)),
        0x1 => {}
        _ => return Err(HeaderError::V2("command neither LOCAL nor PROXY")),
    }
    let stream = family_transport & 0x0f == 0x1;
    let source = match family_transport >> 4 {
        // UNSPEC and UNIX carry no IP address: the peer stands.
        0x0 | 0x3 => Source::Unknown,
        0x1 if stream => {
            v2_client::<4>(block).ok_or(HeaderError::V2("address block too short for INET"))?
        }
        0x2 if stream => {
            v2_client::<16>(block).ok_or(HeaderError::V2("address block too short for INET6"))?
        }
        0x1 | 0x2 => return Err(HeaderError::V2("transport not STREAM")),
        _ => return Err(HeaderError::V2("address family unknown")),
    };
    // What follows the addresses (TLVs) says nothing the proxy uses.
    Ok(Parsed::Done(source))
}

/// The source of a v2 INET (`N` = 4) or INET6 (`N` = 16) address block:
/// source address, destination address, source port, destination port.
/// `None` when the block is too short.
fn v2_client<const N: usize>(block: &[u8]) -> Option<Source>
where
    IpAddr: From<[u8; N]>,
{
    if block.len() < 2 * N + 4 {
        return None;
    }
    let ip: [u8; N] = block.get(..N)?.try_into().ok()?;
    let port: [u8; 2] = block.get(2 * N..2 * N + 2)?.try_into().ok()?;
    Some(Source::Client(SocketAddr::new(
        IpAddr::from(ip),
        u16::from_be_bytes(port),
    )))
}
