//! Request ids (SPEC §9.2): the one value that ties a client's complaint,
//! the proxy's access log and the instance's logs to one request. A
//! client's own `x-request-id` is kept when it is a sane token, so ids set
//! further out (a CDN, a load balancer, the client itself) carry through;
//! otherwise the proxy makes one. Either way it is sent to the instance and
//! returned to the client, on errors too.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};

/// The header that carries the id both ways.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client id kept.
const MAX_LEN: usize = 128;

/// The id of the request with `headers`: the client's first
/// `x-request-id` when it is 1 to 128 visible ASCII characters, else a new
/// one.
pub fn of(headers: &HeaderMap) -> HeaderValue {
    match headers.get(&X_REQUEST_ID) {
        Some(given) if is_valid(given.as_bytes()) => given.clone(),
        _ => new(),
    }
}

/// Whether `id` is 1 to 128 visible ASCII characters (no space, no
/// control: it goes into log lines as it is).
fn is_valid(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|byte| (0x21..=0x7e).contains(byte))
}

/// A new id: 64 random bits, then a counter of this process's ids, as 32
/// hex digits. The counter makes it unique in the process whatever the
/// random bits; the random bits make it unlikely to meet another
/// process's.
fn new() -> HeaderValue {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let count = MADE.fetch_add(1, Ordering::Relaxed);
    let random: u64 = rand::random();
    let mut text = [0u8; 32];
    hex(random, &mut text[..16]);
    hex(count, &mut text[16..]);
    // The text in one allocation that its copies share (the request's,
    // the response's, the access log's), where a copied slice would take
    // a second one at the first copy. Hex digits are always a valid header
    // value.
    HeaderValue::from_maybe_shared(Bytes::from_owner(text)).unwrap_or(HeaderValue::from_static("0"))
}

/// Writes `value` as lower-case hex digits into `out` (16 bytes).
fn hex(value: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (place, digit) in out.iter_mut().rev().enumerate() {
        *digit = DIGITS[((value >> (4 * place)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(id: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_bytes(id).unwrap());
        headers
    }

    #[test]
    fn a_sane_client_id_is_kept() {
        assert_eq!(of(&with(b"abc-123")), "abc-123");
        let longest = vec![b'x'; MAX_LEN];
        assert_eq!(of(&with(&longest)).as_bytes(), &longest[..]);
    }

    #[test]
    fn an_insane_or_missing_client_id_is_replaced() {
        for id in [
            &b""[..],
            b"has space",
            b"tab\there",
            &[b'x'; MAX_LEN + 1],
            b"caf\xc3\xa9",
        ] {
            let made = of(&with(id));
            assert_ne!(made.as_bytes(), id);
            assert_eq!(made.len(), 32, "{made:?}");
        }
        assert_eq!(of(&HeaderMap::new()).len(), 32);
    }

    #[test]
    fn new_ids_differ_and_are_hex() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| new()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids {
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
        }
    }

    #[test]
    fn hex_writes_the_high_digit_first() {
        let mut out = [0u8; 16];
        hex(0x0123_4567_89ab_cdef, &mut out);
        assert_eq!(&out, b"0123456789abcdef");
        hex(0xf0, &mut out);
        assert_eq!(&out, b"00000000000000f0");
    }
}
