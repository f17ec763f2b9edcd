//! The headers a proxy must rewrite (RFC 9110 §7.6, SPEC §5): hop-by-hop
//! headers go, `X-Forwarded-For`, `X-Forwarded-Proto` and `Via` are added,
//! and the client's `Host` is kept.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Uri, Version};

/// The hop-by-hop headers of SPEC §5, besides those `Connection` names.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// What is wrong with a request's Host, if anything (RFC 9112 §3.2: an
/// HTTP/1.1 request has exactly one, any request at most one).
pub fn host_problem(headers: &HeaderMap, version: Version) -> Option<&'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Some("more than one Host header"),
        (None, None) if version == Version::HTTP_11 => {
            Some("an HTTP/1.1 request without a Host header")
        }
        _ => None,
    }
}

/// Removes the hop-by-hop headers and every header that `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// The `Via` protocol of a request, as RFC 9110 §7.6.3 writes it.
fn via_protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Rewrites a client's request headers for the upstream request:
/// hop-by-hop headers removed, `Host` set from the URI's authority when the
/// client sent an absolute-form (or HTTP/2) request, `X-Forwarded-For`
/// appended with the client's address, `X-Forwarded-Proto` set, `Via`
/// appended.
pub fn to_upstream(headers: &mut HeaderMap, uri: &Uri, version: Version, client: IpAddr) {
    strip_hop_by_hop(headers);

    // RFC 9112 §3.2.2: with an absolute-form target the authority is the
    // host, whatever the Host header says. HTTP/2 carries it as :authority.
    if let Some(authority) = uri.authority() {
        // RFC 9112 §3.2.2: without the userinfo and its "@".
        let host = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, host)| host);
        if let Ok(host) = HeaderValue::from_str(host) {
            headers.insert(header::HOST, host);
        }
    }

    let forwarded_for = {
        let previous: Vec<&[u8]> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        let client = client.to_string();
        let mut value =
            Vec::with_capacity(previous.iter().map(|v| v.len() + 2).sum::<usize>() + client.len());
        for part in previous {
            value.extend_from_slice(part);
            value.extend_from_slice(b", ");
        }
        value.extend_from_slice(client.as_bytes());
        HeaderValue::from_bytes(&value)
    };
    if let Ok(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));

    // Every field line of the client's Via is kept, in order (one list).
    let mut via: Vec<u8> = Vec::new();
    for previous in headers.get_all(header::VIA) {
        via.extend_from_slice(previous.as_bytes());
        via.extend_from_slice(b", ");
    }
    via.extend_from_slice(format!("{} shardproxy", via_protocol(version)).as_bytes());
    if let Ok(value) = HeaderValue::from_bytes(&via) {
        headers.insert(header::VIA, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Secret"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic x"),
            ("proxy-authenticate", "Basic"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-secret", "1"),
            ("x-kept", "2"),
        ]);
        strip_hop_by_hop(&mut map);
        let left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn forwarding_headers_are_added() {
        let mut map = headers(&[
            ("host", "shop.example"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
            ("via", "1.0 edge"),
        ]);
        let uri: Uri = "/cart".parse().unwrap();
        to_upstream(
            &mut map,
            &uri,
            Version::HTTP_11,
            "192.0.2.7".parse().unwrap(),
        );
        assert_eq!(map["host"], "shop.example");
        assert_eq!(map["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 192.0.2.7");
        assert_eq!(map["x-forwarded-proto"], "http");
        assert_eq!(map["via"], "1.0 edge, 1.1 shardproxy");
    }

    #[test]
    fn absolute_form_authority_replaces_host() {
        let mut map = headers(&[("host", "spoofed.example")]);
        let uri: Uri = "http://real.example:8080/x".parse().unwrap();
        to_upstream(&mut map, &uri, Version::HTTP_2, "::1".parse().unwrap());
        assert_eq!(map["host"], "real.example:8080");
        assert_eq!(map["x-forwarded-for"], "::1");
        assert_eq!(map["via"], "2 shardproxy");
    }
}
