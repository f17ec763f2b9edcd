//! The headers a proxy must rewrite (RFC 9110 §7.6, SPEC §5): hop-by-hop
//! headers go, `X-Forwarded-For`, `X-Forwarded-Proto` and `Via` are added,
//! and the client's `Host` is kept.

use std::io::Write as _;
use std::net::IpAddr;

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};
use http::{Uri, Version};

/// How many [`HOP_BY_HOP`] names there are.
const HOP_BY_HOP_COUNT: usize = 9;

/// The hop-by-hop headers of SPEC §5, besides those `Connection` names.
static HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
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
///
/// Only the headers present are removed (each removal hashes its name):
/// one pass over the names finds them, usually none or only `Connection`.
/// They go in the order that removing every candidate in turn would take:
/// the named ones, then [`HOP_BY_HOP`]'s, because a removal moves the last
/// header into the gap and so decides the order of those that stay.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = [false; HOP_BY_HOP_COUNT];
    for name in headers.keys() {
        if let Some(index) = hop_by_hop_index(name.as_str()) {
            present[index] = true;
        }
    }
    if !present.contains(&true) {
        // No `Connection` either, so nothing is named.
        return;
    }
    // The names that `Connection` lists and that are present, in its order
    // (empty, and so not allocated, when it names no header sent, as
    // `keep-alive` or `close` usually do not).
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for token in value.split(',').map(str::trim) {
            let found = match HOP_BY_HOP
                .iter()
                .position(|hop| hop.as_str().eq_ignore_ascii_case(token))
            {
                // Already known to be there or not.
                Some(index) => present[index].then(|| HOP_BY_HOP[index].clone()),
                None => headers
                    .keys()
                    .find(|name| name.as_str().eq_ignore_ascii_case(token))
                    .cloned(),
            };
            named.extend(found);
        }
    }
    for name in &named {
        headers.remove(name);
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(name);
        }
    }
}

/// The index of `name` (lower case, as header names are) in
/// [`HOP_BY_HOP`], if it is one: a `match` on the text, which is cheaper
/// than comparing each header with the nine.
fn hop_by_hop_index(name: &str) -> Option<usize> {
    match name {
        "connection" => Some(0),
        "keep-alive" => Some(1),
        "proxy-connection" => Some(2),
        "proxy-authenticate" => Some(3),
        "proxy-authorization" => Some(4),
        "te" => Some(5),
        "trailer" => Some(6),
        "transfer-encoding" => Some(7),
        "upgrade" => Some(8),
        _ => None,
    }
}

/// This proxy's `Via` entry for a request of `version`, as RFC 9110
/// §7.6.3 writes it.
fn via_entry(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9 shardproxy",
        Version::HTTP_10 => "1.0 shardproxy",
        Version::HTTP_2 => "2 shardproxy",
        Version::HTTP_3 => "3 shardproxy",
        _ => "1.1 shardproxy",
    }
}

/// The longest text of an IP address (`ffff:...:255.255.255.255`).
const MAX_IP_TEXT: usize = 45;

/// Writes `ip` as `Display` does into `buf` and returns the text; IPv4 (the
/// usual client) without `fmt`, which costs more than the rest of the
/// header rewrite.
fn ip_text(ip: IpAddr, buf: &mut [u8; MAX_IP_TEXT]) -> &[u8] {
    match ip {
        IpAddr::V4(ip) => {
            // At most 15 bytes ("255.255.255.255"): every index is in `buf`.
            let mut len = 0;
            for (index, octet) in ip.octets().into_iter().enumerate() {
                if index > 0 {
                    buf[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    buf[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    buf[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                buf[len] = b'0' + octet % 10;
                len += 1;
            }
            &buf[..len]
        }
        IpAddr::V6(ip) => {
            let mut rest: &mut [u8] = buf;
            // 45 bytes hold any IPv6 text, so the write cannot run short.
            let _ = write!(rest, "{ip}");
            let len = MAX_IP_TEXT - rest.len();
            &buf[..len]
        }
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

    // One lookup each for `X-Forwarded-For` and `Via`: the entry is read
    // for the values to keep, then written.
    let mut ip = [0; MAX_IP_TEXT];
    let ip = ip_text(client, &mut ip);
    match headers.entry(&X_FORWARDED_FOR) {
        Entry::Vacant(entry) => {
            if let Ok(value) = HeaderValue::from_bytes(ip) {
                entry.insert(value);
            }
        }
        Entry::Occupied(mut entry) => {
            let value = appended(entry.iter(), ip);
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                entry.insert(value);
            }
        }
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));

    // Every field line of the client's Via is kept, in order (one list).
    let ours = via_entry(version);
    match headers.entry(header::VIA) {
        Entry::Vacant(entry) => {
            entry.insert(HeaderValue::from_static(ours));
        }
        Entry::Occupied(mut entry) => {
            let value = appended(entry.iter(), ours.as_bytes());
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                entry.insert(value);
            }
        }
    }
}

/// The field lines `previous` as one list, then `last`: `a, b, last`.
fn appended<'a>(previous: impl Iterator<Item = &'a HeaderValue>, last: &[u8]) -> Vec<u8> {
    let mut value = Vec::new();
    for part in previous {
        value.extend_from_slice(part.as_bytes());
        value.extend_from_slice(b", ");
    }
    value.extend_from_slice(last);
    value
}

/// A header map of `pairs`, in order, for tests.
///
/// # Panics
///
/// On a name or value that is not valid.
#[cfg(test)]
pub(crate) fn map_of(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

#[cfg(test)]
mod tests {
    use super::map_of as headers;
    use super::*;

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
    fn hop_by_hop_index_is_the_index_in_the_list() {
        for (index, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name.as_str()), Some(index), "{name}");
        }
        for name in [
            "host",
            "x-connection",
            "connection-x",
            "Connection",
            "via",
            "",
        ] {
            assert_eq!(hop_by_hop_index(name), None, "{name}");
        }
    }

    /// The removal as first written: every candidate removed in turn.
    fn strip_every_candidate(headers: &mut HeaderMap) {
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

    #[test]
    fn removing_only_what_is_present_leaves_the_same_headers_in_the_same_order() {
        let names = [
            "connection",
            "keep-alive",
            "te",
            "upgrade",
            "transfer-encoding",
            "proxy-connection",
            "proxy-authorization",
            "trailer",
            "x-a",
            "x-b",
            "host",
            "via",
            "accept",
        ];
        let tokens = [
            "close",
            "keep-alive",
            " X-A ",
            "x-b",
            "Host",
            "x-none",
            "",
            "bad token",
            "TE",
            "connection",
            "Keep-Alive",
            "upgrade ",
            "proxy-authenticate",
            "trailer",
        ];
        // A small deterministic generator: many maps, duplicates included.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % bound as u64).unwrap()
        };
        for round in 0..2000 {
            let mut map = HeaderMap::new();
            for _ in 0..next(9) {
                let name = names[next(names.len())];
                let value = if name == "connection" {
                    (0..1 + next(3))
                        .map(|_| tokens[next(tokens.len())])
                        .collect::<Vec<_>>()
                        .join(",")
                } else {
                    format!("v{}", next(100))
                };
                map.append(
                    HeaderName::from_static(name),
                    HeaderValue::from_str(&value).unwrap(),
                );
            }
            let mut expected = map.clone();
            strip_every_candidate(&mut expected);
            let before = format!("{map:?}");
            strip_hop_by_hop(&mut map);
            let left: Vec<_> = map.iter().collect();
            let wanted: Vec<_> = expected.iter().collect();
            assert_eq!(left, wanted, "round {round}: {before}");
        }
    }

    #[test]
    fn client_addresses_are_written_as_display_writes_them() {
        let addresses = [
            "0.0.0.0",
            "127.0.0.1",
            "9.10.99.100",
            "192.0.2.7",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:192.0.2.7",
            "2001:db8::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ];
        for address in addresses {
            let ip: IpAddr = address.parse().unwrap();
            let mut buf = [0; MAX_IP_TEXT];
            assert_eq!(ip_text(ip, &mut buf), ip.to_string().as_bytes());
        }
        for octet in 0..=255u8 {
            let ip = IpAddr::from([octet, 255 - octet, octet / 3, 7]);
            let mut buf = [0; MAX_IP_TEXT];
            assert_eq!(ip_text(ip, &mut buf), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn forwarding_headers_of_a_first_hop() {
        let mut map = headers(&[("host", "shop.example"), ("connection", "keep-alive")]);
        let uri: Uri = "/cart".parse().unwrap();
        to_upstream(
            &mut map,
            &uri,
            Version::HTTP_10,
            "10.1.20.255".parse().unwrap(),
        );
        let all: Vec<(&str, &str)> = map
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
            .collect();
        assert_eq!(
            all,
            [
                ("host", "shop.example"),
                ("x-forwarded-for", "10.1.20.255"),
                ("x-forwarded-proto", "http"),
                ("via", "1.0 shardproxy"),
            ]
        );
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
    fn forwarding_headers_already_sent_keep_their_place() {
        let mut map = headers(&[
            ("via", "1.0 edge"),
            ("x-forwarded-for", "10.0.0.1"),
            ("host", "shop.example"),
            ("via", "1.1 cdn"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        let uri: Uri = "/cart".parse().unwrap();
        to_upstream(&mut map, &uri, Version::HTTP_11, "::1".parse().unwrap());
        let all: Vec<(&str, &str)> = map
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
            .collect();
        assert_eq!(
            all,
            [
                ("via", "1.0 edge, 1.1 cdn, 1.1 shardproxy"),
                ("x-forwarded-for", "10.0.0.1, 10.0.0.2, ::1"),
                ("host", "shop.example"),
                ("x-forwarded-proto", "http"),
            ]
        );
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
