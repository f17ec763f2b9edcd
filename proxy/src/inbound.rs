//! The request as the instance will see it, computed once, before anything
//! reads it (SPEC §9.8): what the proxy refuses, and what it normalizes.
//!
//! The route, the key, the cache key and `Vary` matching all read the
//! request after this step, so none of them can see a header the instance
//! will not (one named in `Connection`), or a host the instance will not
//! (the `Host` header when an absolute-form target or HTTP/2's `:authority`
//! names another, or a port or userinfo the cache key would drop). A
//! request whose host is not a valid RFC 3986 host with an optional
//! numeric port is refused rather than passed on for the instance to
//! interpret.

use std::net::Ipv6Addr;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};

use hyper::upgrade::OnUpgrade;

use crate::body::{self, Body};
use crate::error::{ProxyError, ALLOWED_METHODS};
use crate::headers::{self, HopByHop};

/// Checks and normalizes a client's request head in place: exactly one
/// valid `Host` (the target's authority when it has one), no hop-by-hop
/// header or header named in `Connection`, and `Max-Forwards` counted down
/// on `TRACE` and `OPTIONS`.
///
/// # Errors
///
/// [`ProxyError::BadHost`] for a missing, doubled or invalid host, userinfo
/// in it, or a `Connection` header that names `Host`;
/// [`ProxyError::NotAllowed`] for `CONNECT` (the proxy is no tunnel).
pub fn normalize(parts: &mut Parts) -> Result<(), ProxyError> {
    if parts.method == Method::CONNECT {
        return Err(ProxyError::NotAllowed(Method::CONNECT));
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next(), parts.uri.authority()) {
        (_, Some(_), _) => return Err(ProxyError::BadHost("more than one Host header")),
        (None, None, _) if parts.version == Version::HTTP_11 => {
            return Err(ProxyError::BadHost(
                "an HTTP/1.1 request without a Host header",
            ))
        }
        (Some(host), None, None) => check_host(host.as_bytes())?,
        _ => {}
    }
    let hop_by_hop = HopByHop::scan(&parts.headers);
    if hop_by_hop.has_connection()
        && headers::connection_tokens(&parts.headers)
            .any(|token| token.eq_ignore_ascii_case(b"host"))
    {
        return Err(ProxyError::BadHost("the Connection header names Host"));
    }
    // Read before `Upgrade` and `Connection` go with the other hop-by-hop
    // headers: forwarding puts them back for the instance (SPEC §10).
    if hop_by_hop.has_upgrade() {
        if let Some(upgrade) = Upgrade::asked(parts) {
            parts.extensions.insert(upgrade);
        }
    }
    if hop_by_hop.has_te() && headers::accepts_trailers(&parts.headers) {
        parts.extensions.insert(headers::TeTrailers);
    }
    hop_by_hop.strip(&mut parts.headers);
    // RFC 9112 §3.2.2: with an absolute-form target the authority is the
    // host, whatever the Host header says. HTTP/2 carries it as :authority.
    if let Some(authority) = parts.uri.authority() {
        check_host(authority.as_str().as_bytes())?;
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| ProxyError::BadHost("the target's authority is not a valid host"))?;
        parts.headers.insert(header::HOST, host);
    }
    if parts.method == Method::TRACE || parts.method == Method::OPTIONS {
        count_down_max_forwards(parts);
    }
    Ok(())
}

/// An upgrade the client asked for (SPEC §10), kept in the request's
/// extensions by [`normalize`] once the `Upgrade` header itself is gone:
/// an HTTP/1.1 request with `Upgrade` and `Connection: upgrade`, on a
/// connection that can switch, to any protocol but `h2c`.
///
/// `h2c` is never forwarded (an upgraded h2c connection would carry
/// requests past routing, limits, cache and logs): a request that offers
/// it among others is not an upgrade either, and goes on as a plain
/// request with `Upgrade` stripped. (`Clone` because request extensions
/// must be; it is taken out, never copied.)
#[derive(Clone, Debug)]
pub struct Upgrade {
    /// The `Upgrade` value, to send to the instance as it came.
    pub protocols: HeaderValue,
    /// The client's connection once the `101` has been sent.
    pub client: OnUpgrade,
}

// === impl Upgrade ===

impl Upgrade {
    /// The upgrade `parts` asks for, taking the connection's
    /// [`OnUpgrade`] out of its extensions; `None` for anything else.
    fn asked(parts: &mut Parts) -> Option<Upgrade> {
        if parts.version != Version::HTTP_11
            || !headers::connection_tokens(&parts.headers)
                .any(|token| token.eq_ignore_ascii_case(b"upgrade"))
        {
            return None;
        }
        let mut values = parts.headers.get_all(header::UPGRADE).iter();
        let (Some(protocols), None) = (values.next(), values.next()) else {
            return None;
        };
        let h2c = protocols
            .as_bytes()
            .split(|&byte| byte == b',')
            .map(|protocol| {
                protocol
                    .split(|&byte| byte == b'/')
                    .next()
                    .unwrap_or_default()
            })
            .any(|name| name.trim_ascii().eq_ignore_ascii_case(b"h2c"));
        if h2c {
            return None;
        }
        let protocols = protocols.clone();
        let client = parts.extensions.remove::<OnUpgrade>()?;
        Some(Upgrade { protocols, client })
    }

    /// Takes the upgrade that [`normalize`] found in `parts`, if any.
    pub fn take(parts: &mut Parts) -> Option<Upgrade> {
        parts.extensions.remove::<Upgrade>()
    }

    /// Whether [`normalize`] found an upgrade in `parts`.
    pub fn is_asked(parts: &Parts) -> bool {
        parts.extensions.get::<Upgrade>().is_some()
    }
}

/// The answer the proxy gives itself to a `TRACE` or `OPTIONS` whose
/// `Max-Forwards` is `0` (RFC 9110 §7.6.2): it is the last recipient.
/// `TRACE` gets its request head back as `message/http`; `OPTIONS` the
/// methods the proxy forwards. Call after [`normalize`], which counts the
/// value down otherwise.
pub fn answered_here(parts: &Parts) -> Option<Response<Body>> {
    if parts.method != Method::TRACE && parts.method != Method::OPTIONS {
        return None;
    }
    if parts.headers.get(header::MAX_FORWARDS)?.as_bytes() != b"0" {
        return None;
    }
    let mut response = if parts.method == Method::TRACE {
        let mut head = format!("TRACE {} {:?}\r\n", parts.uri, parts.version).into_bytes();
        for (name, value) in &parts.headers {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let mut response = Response::new(body::full(head));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("message/http"),
        );
        response
    } else {
        let mut response = Response::new(body::empty());
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        response
    };
    *response.status_mut() = StatusCode::OK;
    Some(response)
}

/// `Max-Forwards` one less, when it is a number above 0 (RFC 9110 §7.6.2);
/// left as it is otherwise.
fn count_down_max_forwards(parts: &mut Parts) {
    let Some(value) = parts.headers.get_mut(header::MAX_FORWARDS) else {
        return;
    };
    let Some(count) = value
        .to_str()
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
    else {
        return;
    };
    if count > 0 {
        *value = HeaderValue::from(count - 1);
    }
}

/// Whether `authority` is a valid host with an optional port (RFC 3986
/// §3.2.2, §3.2.3): a registered name, an IPv4 address or a bracketed IPv6
/// address, then optionally `:` and 1 to 5 digits; no userinfo. An empty
/// host is valid (RFC 9112 §3.2: the target has no authority).
fn check_host(authority: &[u8]) -> Result<(), ProxyError> {
    match host_error(authority) {
        None => Ok(()),
        // Userinfo is what a client most likely meant, wherever the `@`
        // made the authority invalid.
        Some(_) if authority.contains(&b'@') => Err(ProxyError::BadHost("userinfo in the host")),
        Some(reason) => Err(ProxyError::BadHost(reason)),
    }
}

/// What makes `authority` not a host with an optional port, if anything.
/// A registered name (or an IPv4 address) is checked in one pass up to
/// its port: every request's host comes here.
fn host_error(authority: &[u8]) -> Option<&'static str> {
    let port = match authority.strip_prefix(b"[") {
        Some(literal) => {
            let Some(end) = literal.iter().position(|&byte| byte == b']') else {
                return Some("an IPv6 address without its closing ]");
            };
            let address = std::str::from_utf8(&literal[..end]).ok();
            if address
                .and_then(|text| text.parse::<Ipv6Addr>().ok())
                .is_none()
            {
                return Some("not a valid IPv6 address");
            }
            &literal[end + 1..]
        }
        None => {
            let mut end = authority.len();
            let mut escaped = false;
            for (at, &byte) in authority.iter().enumerate() {
                if byte == b':' {
                    end = at;
                    break;
                }
                if !REG_NAME[usize::from(byte)] {
                    return Some("the host has a character a host name cannot have");
                }
                escaped |= byte == b'%';
            }
            if escaped && !percent_encoded(&authority[..end]) {
                return Some("a malformed %-escape in the host");
            }
            &authority[end..]
        }
    };
    match port {
        [] => None,
        [b':', digits @ ..]
            if (1..=5).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) =>
        {
            None
        }
        _ => Some("the host's port is not a number"),
    }
}

/// The bytes of a registered name: unreserved, sub-delims, and `%` of a
/// pct-encoded octet (RFC 3986 §3.2.2). A table: every request's host is
/// checked byte by byte.
static REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
            );
        byte += 1;
    }
    table
};

/// Whether every `%` in `text` starts `%HH`.
fn percent_encoded(text: &[u8]) -> bool {
    let mut rest = text;
    while let Some(at) = rest.iter().position(|&byte| byte == b'%') {
        match rest.get(at + 1..at + 3) {
            Some([high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                rest = &rest[at + 3..];
            }
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;

    fn parts(method: Method, target: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::builder().method(method).uri(target);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn refused(parts: &mut Parts) -> String {
        match normalize(parts) {
            Err(error) => {
                assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{error}");
                error.to_string()
            }
            Ok(()) => panic!("{:?} passed", parts.headers),
        }
    }

    #[test]
    fn valid_hosts_pass() {
        for host in [
            "shop.example",
            "shop.example:8080",
            "SHOP.Example:1",
            "192.0.2.7:80",
            "[::1]",
            "[2001:db8::7]:443",
            "xn--bcher-kva.example",
            "a%20b",
            "",
        ] {
            let mut request = parts(Method::GET, "/", &[("host", host)]);
            assert!(normalize(&mut request).is_ok(), "{host}");
        }
    }

    #[test]
    fn invalid_hosts_are_refused_saying_why() {
        let character = "the host has a character a host name cannot have";
        let port = "the host's port is not a number";
        let userinfo = "userinfo in the host";
        let escape = "a malformed %-escape in the host";
        for (host, why) in [
            ("a b", character),
            ("x/evil", character),
            ("host:junk", port),
            ("host:", port),
            ("host:123456", port),
            ("host:80:80", port),
            ("user@host", userinfo),
            ("evil.test@victim.test", userinfo),
            ("host:80@evil", userinfo),
            ("[::1]@evil", userinfo),
            ("[::1", "an IPv6 address without its closing ]"),
            ("[not-v6]", "not a valid IPv6 address"),
            ("[::1]junk", port),
            ("a%zz", escape),
            ("a%2", escape),
            ("a%2:80", escape),
        ] {
            let mut request = parts(Method::GET, "/", &[]);
            request
                .headers
                .insert(header::HOST, HeaderValue::from_str(host).unwrap());
            assert_eq!(
                refused(&mut request),
                format!("bad request: {why}"),
                "{host}"
            );
        }
    }

    #[test]
    fn the_target_authority_is_the_host() {
        let mut request = parts(
            Method::GET,
            "http://real.example:8080/x",
            &[("host", "spoofed.example")],
        );
        normalize(&mut request).unwrap();
        assert_eq!(request.headers["host"], "real.example:8080");
        let mut request = parts(
            Method::GET,
            "http://evil.test@victim.test/x",
            &[("host", "victim.test")],
        );
        assert_eq!(refused(&mut request), "bad request: userinfo in the host");
    }

    #[test]
    fn connection_named_headers_go_before_anything_reads_them() {
        let mut request = parts(
            Method::GET,
            "/",
            &[
                ("host", "shop.example"),
                ("connection", "keep-alive, Accept-Language"),
                ("accept-language", "fr"),
                ("keep-alive", "timeout=5"),
                ("accept", "*/*"),
            ],
        );
        normalize(&mut request).unwrap();
        let left: Vec<&str> = request.headers.keys().map(|name| name.as_str()).collect();
        assert_eq!(left, ["host", "accept"]);
        let mut request = parts(
            Method::GET,
            "/",
            &[("host", "shop.example"), ("connection", "close, HOST")],
        );
        assert_eq!(
            refused(&mut request),
            "bad request: the Connection header names Host"
        );
    }

    #[test]
    fn connect_is_not_allowed() {
        let mut request = parts(Method::CONNECT, "victim.test:443", &[]);
        let error = normalize(&mut request).unwrap_err();
        assert_eq!(error.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn max_forwards_counts_down_and_zero_is_answered_here() {
        let mut request = parts(
            Method::TRACE,
            "/",
            &[("host", "shop.example"), ("max-forwards", "3")],
        );
        normalize(&mut request).unwrap();
        assert_eq!(request.headers["max-forwards"], "2");
        assert!(answered_here(&request).is_none());
        let mut request = parts(
            Method::TRACE,
            "/t",
            &[("host", "shop.example"), ("max-forwards", "0")],
        );
        normalize(&mut request).unwrap();
        let answer = answered_here(&request).expect("answered by the proxy");
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()["content-type"], "message/http");
        let mut request = parts(
            Method::OPTIONS,
            "*",
            &[("host", "shop.example"), ("max-forwards", "0")],
        );
        normalize(&mut request).unwrap();
        let answer = answered_here(&request).expect("answered by the proxy");
        assert!(answer.headers().contains_key("allow"));
        let mut request = parts(
            Method::GET,
            "/",
            &[("host", "shop.example"), ("max-forwards", "0")],
        );
        normalize(&mut request).unwrap();
        assert_eq!(request.headers["max-forwards"], "0");
        assert!(answered_here(&request).is_none());
    }
}
