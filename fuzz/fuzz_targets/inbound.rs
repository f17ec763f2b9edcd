//! The request as the instance will see it (SPEC §9.8), from any request
//! head.
//!
//! The input is lines: `METHOD TARGET`, then `name: value` header lines
//! (values in any bytes). Lines that are not valid for `http` are skipped,
//! as hyper would refuse such a request.
//!
//! Properties, for every head the proxy takes: it has one `Host`, the
//! target's authority when it has one, a valid host with no userinfo; the
//! `Host` the cache keys on is the one the instance gets (the forwarding
//! headers leave it alone); no header named in `Connection`, and no
//! hop-by-hop header, reaches the instance.

#![no_main]

use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Version};
use libfuzzer_sys::fuzz_target;
use shardproxy::{headers, inbound};

/// The hop-by-hop headers of SPEC §5.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&byte| byte == b'\n');
    let first = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let (method, target) = first.split_once(' ').unwrap_or(("GET", "/"));
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let mut request = Request::builder().method(method).version(Version::HTTP_11);
    request = request.uri(target);
    for line in lines {
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        request = request.header(name, value);
    }
    let Ok(request) = request.body(()) else {
        return;
    };
    let (mut parts, ()) = request.into_parts();
    let named: Vec<Vec<u8>> = headers::connection_tokens(&parts.headers)
        .map(<[u8]>::to_ascii_lowercase)
        .collect();
    let authority = parts.uri.authority().map(|authority| authority.to_string());
    if inbound::normalize(&mut parts).is_err() {
        return;
    }
    let hosts: Vec<&HeaderValue> = parts.headers.get_all(header::HOST).iter().collect();
    assert_eq!(hosts.len(), 1, "one Host: {:?}", parts.headers);
    let host = hosts[0].clone();
    if let Some(authority) = authority {
        assert_eq!(host.as_bytes(), authority.as_bytes(), "the authority is the Host");
    }
    assert!(!host.as_bytes().contains(&b'@'), "no userinfo: {host:?}");
    for name in parts.headers.keys() {
        let name = name.as_str();
        assert!(!HOP_BY_HOP.contains(&name), "{name} is hop-by-hop");
        assert!(
            !named.iter().any(|token| token == name.as_bytes()),
            "{name} was named in Connection"
        );
    }
    let addr = std::net::SocketAddr::from(([192, 0, 2, 7], 5000));
    let client = headers::ClientAddr::new(addr, false);
    headers::request_to_upstream(&mut parts, &client);
    assert_eq!(
        parts.headers.get(header::HOST),
        Some(&host),
        "the instance gets the Host the cache keys on"
    );
});
