//! The headers a proxy must rewrite (RFC 9110 §7.6, SPEC §5): hop-by-hop
//! headers go, `X-Forwarded-For`, `X-Forwarded-Proto` and `Via` are added,
//! and the client's `Host` is kept.

use std::net::SocketAddr;

use http::header::{self, Entry, GetAll, HeaderMap, HeaderName, HeaderValue};
use http::Version;

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

/// The tokens of every `Connection` field line, in order: split at commas,
/// optional whitespace trimmed, as bytes (a token that is not ASCII names
/// no header, and takes none of the others with it).
pub fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    tokens_of(headers.get_all(header::CONNECTION))
}

/// The tokens of the field lines `connection`, as [`connection_tokens`].
fn tokens_of(connection: GetAll<'_, HeaderValue>) -> impl Iterator<Item = &[u8]> {
    connection
        .into_iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .map(|token| token.trim_ascii())
        .filter(|token| !token.is_empty())
}

/// Which hop-by-hop headers a message has: one pass over its names, so
/// that what follows looks up only what is there (usually nothing, or only
/// `Connection`).
#[derive(Clone, Copy, Debug)]
pub struct HopByHop {
    present: [bool; HOP_BY_HOP_COUNT],
}

// === impl HopByHop ===

impl HopByHop {
    /// The hop-by-hop headers of `headers`.
    pub fn scan(headers: &HeaderMap) -> HopByHop {
        let mut present = [false; HOP_BY_HOP_COUNT];
        for name in headers.keys() {
            if let Some(index) = hop_by_hop_index(name.as_str()) {
                present[index] = true;
            }
        }
        HopByHop { present }
    }

    /// Whether there is a `Connection` header.
    pub fn has_connection(&self) -> bool {
        self.present[0]
    }

    /// Whether there is an `Upgrade` header.
    pub fn has_upgrade(&self) -> bool {
        self.present[8]
    }

    /// Whether there is a `TE` header.
    pub fn has_te(&self) -> bool {
        self.present[5]
    }

    /// Whether there is a `Transfer-Encoding` header.
    pub fn has_transfer_encoding(&self) -> bool {
        self.present[7]
    }

    /// Removes the hop-by-hop headers and every header that `Connection`
    /// names, from the `headers` this scanned.
    ///
    /// They go in the order that removing every candidate in turn would
    /// take: the named ones in `Connection`'s order, then [`HOP_BY_HOP`]'s,
    /// because a removal moves the last header into the gap and so decides
    /// the order of those that stay. However many tokens `Connection` has,
    /// the cost grows with `tokens × log tokens + headers × log tokens`,
    /// never with their product.
    pub fn strip(self, headers: &mut HeaderMap) {
        let present = self.present;
        if !present.contains(&true) {
            // No `Connection` either, so nothing is named.
            return;
        }
        // The names that `Connection` lists and that are present, each with the
        // place of its first token (empty, and so not allocated, when it names
        // only hop-by-hop headers and `close`, as it usually does).
        let mut named: Vec<(usize, HeaderName)> = Vec::new();
        let mut others: Vec<(&[u8], usize)> = Vec::new();
        let connection = headers.get_all(header::CONNECTION);
        let tokens = if names_nothing_present(&connection, present[1]) {
            None
        } else {
            Some(tokens_of(connection))
        };
        for (place, token) in tokens.into_iter().flatten().enumerate() {
            match HOP_BY_HOP
                .iter()
                .position(|hop| hop.as_str().as_bytes().eq_ignore_ascii_case(token))
            {
                // Already known to be there or not.
                Some(index) => {
                    if present[index] {
                        named.push((place, HOP_BY_HOP[index].clone()));
                    }
                }
                // A connection option, not a header name (RFC 9112 §9.6).
                None if token.eq_ignore_ascii_case(b"close") => {}
                None => others.push((token, place)),
            }
        }
        if !others.is_empty() {
            // Sorted by lower-case text, each token's first place kept: each
            // header name present is then looked up once.
            others.sort_by(|a, b| lower_cmp(a.0, b.0).then(a.1.cmp(&b.1)));
            others.dedup_by(|later, first| lower_cmp(later.0, first.0).is_eq());
            for name in headers.keys() {
                let bytes = name.as_str().as_bytes();
                if let Ok(found) = others.binary_search_by(|(token, _)| lower_cmp(token, bytes)) {
                    named.push((others[found].1, name.clone()));
                }
            }
        }
        named.sort_by_key(|(place, _)| *place);
        for (_, name) in &named {
            headers.remove(name);
        }
        for (name, present) in HOP_BY_HOP.iter().zip(present) {
            if present {
                headers.remove(name);
            }
        }
    }
}

/// Whether `connection` is one field line that names no header present:
/// `close`, or `keep-alive` without a `Keep-Alive` header, as almost every
/// message's is. (A shortcut: its tokens would name nothing to remove
/// either.)
fn names_nothing_present(connection: &GetAll<'_, HeaderValue>, has_keep_alive: bool) -> bool {
    let mut values = connection.iter();
    match (values.next(), values.next()) {
        (Some(value), None) => {
            let value = value.as_bytes().trim_ascii();
            value.eq_ignore_ascii_case(b"close")
                || (value.eq_ignore_ascii_case(b"keep-alive") && !has_keep_alive)
        }
        _ => false,
    }
}

/// `a` and `b` compared as their lower-case text.
fn lower_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.iter()
        .map(u8::to_ascii_lowercase)
        .cmp(b.iter().map(u8::to_ascii_lowercase))
}

/// Frames an instance's response as RFC 9112 §6.3 says, before it is
/// passed on: with `Transfer-Encoding` (`chunked`, as [`HopByHop`] found),
/// a `Content-Length` is not the body's length (the client would take the
/// message as ended early), so it goes and the message is sent chunked (or
/// closed at its end); a `Content-Length` that repeats one number (`5, 5`)
/// is that number once.
pub fn reframe(headers: &mut HeaderMap, chunked: bool) {
    if chunked {
        headers.remove(header::CONTENT_LENGTH);
        return;
    }
    let Some(length) = headers.get(header::CONTENT_LENGTH) else {
        return;
    };
    if !length.as_bytes().contains(&b',') {
        return;
    }
    let mut lengths = length
        .as_bytes()
        .split(|&byte| byte == b',')
        .map(<[u8]>::trim_ascii);
    let first = lengths.next().unwrap_or_default();
    // Another number: the client could not tell the length either; let the
    // message be framed by the body as it streams.
    let one = if lengths.all(|other| other == first) {
        HeaderValue::from_bytes(first).ok()
    } else {
        None
    };
    match one {
        Some(length) => {
            headers.insert(header::CONTENT_LENGTH, length);
        }
        None => {
            headers.remove(header::CONTENT_LENGTH);
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

/// A client connection as its requests are forwarded: its address, with
/// the text it adds to `X-Forwarded-For`, and whether it came over TLS
/// (`X-Forwarded-Proto: https`). Made once per connection, so that each of
/// its requests takes a shared copy of the text instead of writing and
/// allocating it again, and is not marked one by one.
#[derive(Clone, Debug)]
pub struct ClientAddr {
    addr: SocketAddr,
    forwarded_for: HeaderValue,
    over_tls: bool,
}

impl ClientAddr {
    /// The client at `addr`, connected over TLS or not.
    pub fn new(addr: SocketAddr, over_tls: bool) -> ClientAddr {
        // An address's text is always a valid header value.
        let forwarded_for = HeaderValue::from_str(&addr.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
        ClientAddr {
            addr,
            forwarded_for,
            over_tls,
        }
    }

    /// The client's address (and port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the client connected over TLS.
    pub fn over_tls(&self) -> bool {
        self.over_tls
    }
}

/// Marks a request whose client sent `te: trailers` (among its `TE`
/// values), kept in its extensions once `TE` itself, hop-by-hop, is gone:
/// HTTP/2 instances get `te: trailers` again (RFC 9113 §8.2.2 allows that
/// one value; gRPC servers require it).
#[derive(Clone, Copy, Debug)]
pub struct TeTrailers;

/// Whether `headers` accept trailers: `trailers` is one of the `TE` values.
pub fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .any(|coding| {
            // A coding may carry parameters (`;q=...`); `trailers` has none.
            coding.trim_ascii().eq_ignore_ascii_case(b"trailers")
        })
}

/// [`to_upstream`] for a request as the forwarding code holds it.
pub fn request_to_upstream(parts: &mut http::request::Parts, client: &ClientAddr) {
    to_upstream(&mut parts.headers, parts.version, client);
}

/// Adds the forwarding headers to a client's request headers, already
/// normalized (`inbound`: hop-by-hop headers gone, `Host` the one the
/// instance must see): `X-Forwarded-For` appended with the client's
/// address, `X-Forwarded-Proto` set (`https` when the client came over TLS,
/// else `http`), `Via` appended.
pub fn to_upstream(headers: &mut HeaderMap, version: Version, client: &ClientAddr) {
    // One lookup each for `X-Forwarded-For` and `Via`: the entry is read
    // for the values to keep, then written.
    match headers.entry(&X_FORWARDED_FOR) {
        Entry::Vacant(entry) => {
            entry.insert(client.forwarded_for.clone());
        }
        Entry::Occupied(mut entry) => {
            let value = appended(entry.iter(), client.forwarded_for.as_bytes());
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                entry.insert(value);
            }
        }
    }
    let proto = if client.over_tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));

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

    /// Removes the hop-by-hop headers and every header that `Connection`
    /// names, as the request and response paths do.
    fn strip_hop_by_hop(headers: &mut HeaderMap) {
        HopByHop::scan(headers).strip(headers);
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
            .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
            .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
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
    fn a_client_forwards_as_its_address_without_the_port() {
        for (addr, text) in [
            ("10.1.20.255:443", "10.1.20.255"),
            ("[::ffff:192.0.2.7]:80", "::ffff:192.0.2.7"),
            ("[2001:db8::8a2e:370:7334]:1", "2001:db8::8a2e:370:7334"),
        ] {
            let client = ClientAddr::new(addr.parse().unwrap(), false);
            assert_eq!(client.forwarded_for, text);
            assert_eq!(client.addr(), addr.parse::<SocketAddr>().unwrap());
        }
    }

    #[test]
    fn forwarding_headers_of_a_first_hop() {
        let mut map = headers(&[("host", "shop.example")]);
        to_upstream(
            &mut map,
            Version::HTTP_10,
            &ClientAddr::new("10.1.20.255:5000".parse().unwrap(), false),
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
        to_upstream(
            &mut map,
            Version::HTTP_11,
            &ClientAddr::new("192.0.2.7:5000".parse().unwrap(), false),
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
        let client = ClientAddr::new("[::1]:5000".parse().unwrap(), true);
        to_upstream(&mut map, Version::HTTP_11, &client);
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
                ("x-forwarded-proto", "https"),
            ]
        );
    }

    #[test]
    fn a_token_that_is_not_ascii_takes_none_of_the_others_with_it() {
        let mut map = HeaderMap::new();
        map.append(
            header::CONNECTION,
            HeaderValue::from_bytes(b"x-secret, \xffbad, keep-alive").unwrap(),
        );
        map.append("x-secret", HeaderValue::from_static("1"));
        map.append("keep-alive", HeaderValue::from_static("timeout=5"));
        map.append("x-kept", HeaderValue::from_static("2"));
        strip_hop_by_hop(&mut map);
        let left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn many_tokens_name_what_is_there_and_nothing_else() {
        let tokens: Vec<String> = (0..5000).map(|n| format!("x-{n}")).collect();
        let mut map = HeaderMap::new();
        map.append(
            header::CONNECTION,
            HeaderValue::from_str(&tokens.join(", ")).unwrap(),
        );
        for n in [7, 4999, 12_000] {
            map.append(
                HeaderName::from_bytes(format!("X-{n}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        strip_hop_by_hop(&mut map);
        let left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-12000"]);
    }
}
