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
    text[..16].copy_from_slice(&hex(random));
    text[16..].copy_from_slice(&hex(count));
    // The text in one allocation that its copies share (the request's,
    // the response's, the access log's), where a copied slice would take
    // a second one at the first copy. Hex digits are always a valid header
    // value.
    HeaderValue::from_maybe_shared(Bytes::from_owner(text)).unwrap_or(HeaderValue::from_static("0"))
}

/// `value` as 16 lower-case hex digits, the high one first. Eight digits
/// at a time, each nibble spread into a byte of its own (a few shifts and
/// masks instead of a loop per digit: every request without an id makes
/// one).
fn hex(value: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&hex_of_half((value >> 32) as u32));
    out[8..].copy_from_slice(&hex_of_half(value as u32));
    out
}

/// `half` as 8 hex digits, as [`hex`] writes them.
fn hex_of_half(half: u32) -> [u8; 8] {
    // Nibble i (from the low end) into byte i.
    let mut spread = u64::from(half);
    spread = (spread | (spread << 16)) & 0x0000_ffff_0000_ffff;
    spread = (spread | (spread << 8)) & 0x00ff_00ff_00ff_00ff;
    spread = (spread | (spread << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // 1 in the bytes whose nibble is 10 or more, which go to `a`-`f`:
    // '0' + n below ten, 'a' + n - 10 = '0' + n + 39 above.
    let letters = ((spread + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (spread + 0x3030_3030_3030_3030 + letters * 39).to_be_bytes()
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
        assert_eq!(&hex(0x0123_4567_89ab_cdef), b"0123456789abcdef");
        assert_eq!(&hex(0xfedc_ba98_7654_3210), b"fedcba9876543210");
        assert_eq!(&hex(0xf0), b"00000000000000f0");
        assert_eq!(&hex(u64::MAX), b"ffffffffffffffff");
        assert_eq!(&hex(0), b"0000000000000000");
    }

    #[test]
    fn hex_agrees_with_format() {
        let mut value = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..10_000 {
            assert_eq!(hex(value).to_vec(), format!("{value:016x}").into_bytes());
            value = value
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
        }
    }
}
