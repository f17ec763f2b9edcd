//! Shard keys (SPEC §4 `key = ...`) taken from any request.
//!
//! The input is lines: a `key` setting, a request URI, a name for the
//! `header:`, `query:` and `cookie:` sources, then `name: value` header
//! lines (values in any bytes). Lines that are not valid for `http` are
//! skipped, as hyper would refuse such a request.
//!
//! Properties: a key source reads back from the text it displays as; every
//! key is the part of the request its source names (the path, the header's
//! value, a cookie's value, a part of the path for a regex); a missing key's
//! message names the source; form-decoding undoes percent-encoding.

#![no_main]

use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use http::Uri;
use libfuzzer_sys::fuzz_target;
use shardproxy::config::KeySource;
use shardproxy::key::{extract, form_decode, query_param};

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&byte| byte == b'\n');
    let setting = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let uri = lines.next().unwrap_or_default();
    let name = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let parts = request(uri, lines);

    let mut sources = vec![KeySource::Path, KeySource::Uri];
    for kind in ["header", "query", "cookie"] {
        sources.extend(KeySource::parse(&format!("{kind}:{name}")));
    }
    if let Ok(source) = KeySource::parse(&setting) {
        let shown = source.to_string();
        assert_eq!(KeySource::parse(&shown).as_ref(), Ok(&source), "{shown}");
        sources.push(source);
    }
    for source in &sources {
        check_key(source, &parts);
    }

    let encoded = percent_encode(name.as_bytes());
    assert_eq!(form_decode(&encoded).as_ref(), name.as_bytes());
    let value = percent_encode(uri);
    let query = format!("{encoded}={value}&{encoded}=second");
    assert_eq!(query_param(&query, &name).as_deref(), Some(uri));
});

/// A request with `uri` (or `/` when it is not a valid URI) and the header
/// lines that are valid.
fn request<'a>(uri: &[u8], header_lines: impl Iterator<Item = &'a [u8]>) -> Parts {
    let mut parts = http::Request::new(()).into_parts().0;
    parts.uri = Uri::try_from(uri).unwrap_or_else(|_| Uri::from_static("/"));
    for line in header_lines {
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            parts.headers.append(name, value);
        }
    }
    parts
}

/// The key `source` takes from `parts` is what the source names.
fn check_key(source: &KeySource, parts: &Parts) {
    let path = parts.uri.path().as_bytes();
    let key = match extract(source, parts) {
        Ok(key) => key,
        Err(missing) => {
            assert!(
                !matches!(source, KeySource::Path | KeySource::Uri),
                "{source} is always there"
            );
            assert!(missing.to_string().contains(&source.to_string()));
            return;
        }
    };
    match source {
        KeySource::Path => assert_eq!(key.as_ref(), path),
        KeySource::Uri => assert!(key.starts_with(path)),
        KeySource::Header(name) => {
            assert_eq!(
                parts.headers.get(name).map(HeaderValue::as_bytes),
                Some(key.as_ref())
            );
        }
        KeySource::Query(name) => {
            let query = parts.uri.query().unwrap_or_default();
            assert!(
                query.split('&').any(|pair| form_decode(
                    pair.split_once('=').map_or(pair, |(name, _)| name)
                ) == name.as_bytes()),
                "no parameter {name:?} in {query:?}"
            );
        }
        KeySource::Cookie(_) => assert!(parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .any(|header| contains(header.as_bytes(), &key))),
        KeySource::Regex(_) => assert!(contains(path, &key)),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// Every byte as `%XX`.
fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("%{byte:02X}")).collect()
}
