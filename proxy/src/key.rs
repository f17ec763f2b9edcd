//! Shard keys: the bytes of a request that are hashed onto the ring
//! (SPEC §4 `key = ...`), taken from the request as the client sent it.
//!
//! Nothing is normalised or percent-decoded except a `query:` value, which
//! is form-decoded (`%XX` and `+`) because that is how applications read
//! it. Keys borrow from the request where they can.

use std::borrow::Cow;

use http::header::COOKIE;
use http::request::Parts;

use crate::config::KeySource;

/// A request that lacks its key: answered `400` with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request has no shard key: {wanted} is missing")]
pub struct MissingKey {
    /// The key source as written in the config (`header:x-user-id`).
    pub wanted: String,
}

/// The shard key of a request.
///
/// # Errors
///
/// [`MissingKey`] when the header, parameter or cookie is absent, or the
/// pattern does not match the path.
pub fn extract<'a>(source: &KeySource, parts: &'a Parts) -> Result<Cow<'a, [u8]>, MissingKey> {
    let missing = || MissingKey {
        wanted: source.to_string(),
    };
    match source {
        KeySource::Path => Ok(Cow::Borrowed(parts.uri.path().as_bytes())),
        KeySource::Uri => Ok(match parts.uri.path_and_query() {
            // An absolute-form target with an empty path (`http://host?q`)
            // goes upstream as `/?q`: the same key as that request's.
            Some(path_and_query) if path_and_query.as_str().starts_with('?') => Cow::Owned(
                [
                    parts.uri.path().as_bytes(),
                    path_and_query.as_str().as_bytes(),
                ]
                .concat(),
            ),
            Some(path_and_query) => Cow::Borrowed(path_and_query.as_str().as_bytes()),
            None => Cow::Borrowed(parts.uri.path().as_bytes()),
        }),
        KeySource::Header(name) => parts
            .headers
            .get(name.as_str())
            .map(|value| Cow::Borrowed(value.as_bytes()))
            .ok_or_else(missing),
        KeySource::Query(name) => parts
            .uri
            .query()
            .and_then(|query| query_param(query, name))
            .ok_or_else(missing),
        KeySource::Cookie(name) => parts
            .headers
            .get_all(COOKIE)
            .iter()
            .find_map(|header| cookie(header.as_bytes(), name.as_bytes()))
            .map(Cow::Borrowed)
            .ok_or_else(missing),
        KeySource::Regex(pattern) => pattern
            .captures(parts.uri.path())
            .and_then(|captures| captures.get(1))
            .map(|group| Cow::Borrowed(group.as_str().as_bytes()))
            .ok_or_else(missing),
    }
}

/// The first value of parameter `name` in a query string, form-decoded
/// (`application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte).
/// Names are compared after decoding too.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, [u8]>> {
    query.split('&').find_map(|pair| {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(raw_name) == name.as_bytes()).then(|| form_decode(raw_value))
    })
}

/// Decodes form-encoded text; malformed `%` escapes are kept as written.
pub fn form_decode(text: &str) -> Cow<'_, [u8]> {
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&byte| byte == b'%' || byte == b'+') {
        return Cow::Borrowed(bytes);
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let escape = bytes
                    .get(index + 1..index + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                if let Some(byte) = escape {
                    decoded.push(byte);
                    index += 3;
                    continue;
                }
                decoded.push(b'%');
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    Cow::Owned(decoded)
}

/// The value of cookie `name` in one `Cookie` header (`a=1; b=2`).
fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&byte| byte == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&byte| byte == b'=')?;
        (pair[..eq].trim_ascii() == name).then(|| {
            let value = pair[eq + 1..].trim_ascii();
            // RFC 6265 allows a value in double quotes; the quotes are not
            // part of it.
            value
                .strip_prefix(b"\"")
                .and_then(|inner| inner.strip_suffix(b"\""))
                .unwrap_or(value)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn key(source: &str, parts: &Parts) -> Result<Vec<u8>, MissingKey> {
        extract(&KeySource::parse(source).unwrap(), parts).map(Cow::into_owned)
    }

    #[test]
    fn path_and_uri_are_taken_as_sent() {
        let request = parts("/a%20b/c?x=1&y=%41", &[]);
        assert_eq!(key("path", &request).unwrap(), b"/a%20b/c");
        assert_eq!(key("uri", &request).unwrap(), b"/a%20b/c?x=1&y=%41");
        let absolute = parts("http://other.example/p?q", &[]);
        assert_eq!(key("path", &absolute).unwrap(), b"/p");
        assert_eq!(key("uri", &absolute).unwrap(), b"/p?q");
    }

    /// Found by fuzzing: `http://host?q` has the path `/`, and goes
    /// upstream as `/?q`, so its key is that of `/?q`.
    #[test]
    fn absolute_uri_without_path_keys_as_its_origin_form() {
        let absolute = parts("http://other.example?user=/", &[]);
        assert_eq!(key("path", &absolute).unwrap(), b"/");
        assert_eq!(key("uri", &absolute).unwrap(), b"/?user=/");
        assert_eq!(
            key("uri", &absolute).unwrap(),
            key("uri", &parts("/?user=/", &[])).unwrap()
        );
        assert_eq!(
            key("uri", &parts("http://other.example", &[])).unwrap(),
            b"/"
        );
    }

    #[test]
    fn header_is_the_first_of_its_name() {
        let request = parts("/", &[("X-User", "alice"), ("x-user", "bob")]);
        assert_eq!(key("header:x-user", &request).unwrap(), b"alice");
        assert_eq!(key("header:X-USER", &request).unwrap(), b"alice");
        let error = key("header:x-other", &request).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the request has no shard key: header:x-other is missing"
        );
    }

    #[test]
    fn query_parameter_is_form_decoded() {
        let request = parts("/?a=1&user=al%69ce+b&user=second&flag", &[]);
        assert_eq!(key("query:user", &request).unwrap(), b"alice b");
        assert_eq!(key("query:flag", &request).unwrap(), b"");
        assert!(key("query:none", &request).is_err());
        assert!(key("query:a", &parts("/", &[])).is_err());
        assert_eq!(form_decode("100%").as_ref(), b"100%");
        assert_eq!(form_decode("%zz%4").as_ref(), b"%zz%4");
    }

    #[test]
    fn cookie_by_name_across_headers() {
        let request = parts(
            "/",
            &[
                ("cookie", "a=1; sessionx=2"),
                ("cookie", "session=\"s3\"; b=4"),
            ],
        );
        assert_eq!(key("cookie:session", &request).unwrap(), b"s3");
        assert_eq!(key("cookie:a", &request).unwrap(), b"1");
        assert!(key("cookie:c", &request).is_err());
    }

    #[test]
    fn regex_takes_the_first_group_of_the_path() {
        let request = parts("/users/42/photos?x=/users/7/", &[]);
        assert_eq!(key("regex:^/users/([0-9]+)/", &request).unwrap(), b"42");
        assert!(key("regex:^/teams/([0-9]+)", &request).is_err());
    }
}
