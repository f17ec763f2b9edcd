//! Where a request's shard key comes from (`key = ...`, SPEC §4).

use std::fmt;

/// The part of a request that is hashed onto the ring.
///
/// Names are stored as the lookups need them: header names in lower case
/// (header names are case-insensitive), query and cookie names as written
/// (they are case-sensitive). The regex is compiled once, here, so the
/// request path never parses config text.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// `path`: the URI path without the query.
    Path,
    /// `uri`: the path and `?query` as sent.
    Uri,
    /// `header:NAME`: the first such header; the name in lower case.
    Header(String),
    /// `query:NAME`: the first such query parameter, form-decoded.
    Query(String),
    /// `cookie:NAME`: the cookie of that name.
    Cookie(String),
    /// `regex:PATTERN`: the first capture group of the pattern, matched on
    /// the path. The pattern has at least one capture group.
    Regex(regex::Regex),
}

/// What a key source looks like, for error messages.
pub(super) const EXPECTED: &str =
    "expected path, uri, header:NAME, query:NAME, cookie:NAME or regex:PATTERN";

// === impl KeySource ===

impl KeySource {
    /// Parses the text of a `key` setting.
    ///
    /// # Errors
    ///
    /// A message saying what is wrong: an unknown source, an empty or
    /// invalid name, a pattern that does not compile or has no capture group.
    pub fn parse(text: &str) -> Result<KeySource, String> {
        match text {
            "path" => return Ok(KeySource::Path),
            "uri" => return Ok(KeySource::Uri),
            _ => {}
        }
        let Some((kind, argument)) = text.split_once(':') else {
            return Err(EXPECTED.to_owned());
        };
        match kind {
            "header" => {
                if !is_token(argument) {
                    return Err(format!(
                        "{argument:?} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"
                    ));
                }
                Ok(KeySource::Header(argument.to_ascii_lowercase()))
            }
            "query" => {
                if argument.is_empty() {
                    return Err("expected a query parameter name after query:".to_owned());
                }
                Ok(KeySource::Query(argument.to_owned()))
            }
            "cookie" => {
                if !is_token(argument) {
                    return Err(format!(
                        "{argument:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)"
                    ));
                }
                Ok(KeySource::Cookie(argument.to_owned()))
            }
            "regex" => {
                let regex = regex::Regex::new(argument)
                    .map_err(|error| format!("the pattern does not compile: {error}"))?;
                // Group 0 is the whole match; the key is group 1.
                if regex.captures_len() < 2 {
                    return Err(
                        "the pattern has no capture group: the key is the first group, like regex:^/users/([^/]+)"
                            .to_owned(),
                    );
                }
                Ok(KeySource::Regex(regex))
            }
            _ => Err(EXPECTED.to_owned()),
        }
    }
}

/// An RFC 9110 token: what header and cookie names are made of.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// Compares regexes by their pattern, which is what the config gave.
impl PartialEq for KeySource {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (KeySource::Path, KeySource::Path) | (KeySource::Uri, KeySource::Uri) => true,
            (KeySource::Header(a), KeySource::Header(b))
            | (KeySource::Query(a), KeySource::Query(b))
            | (KeySource::Cookie(a), KeySource::Cookie(b)) => a == b,
            (KeySource::Regex(a), KeySource::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// The config text (`header:x-user`), for summaries and the `400` body
/// that says which key is missing.
impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Path => f.write_str("path"),
            KeySource::Uri => f.write_str("uri"),
            KeySource::Header(name) => write!(f, "header:{name}"),
            KeySource::Query(name) => write!(f, "query:{name}"),
            KeySource::Cookie(name) => write!(f, "cookie:{name}"),
            KeySource::Regex(regex) => write!(f, "regex:{}", regex.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(KeySource::parse("path"), Ok(KeySource::Path));
        assert_eq!(KeySource::parse("uri"), Ok(KeySource::Uri));
        assert_eq!(
            KeySource::parse("header:X-User-Id"),
            Ok(KeySource::Header("x-user-id".into()))
        );
        assert_eq!(
            KeySource::parse("query:User Id"),
            Ok(KeySource::Query("User Id".into()))
        );
        assert_eq!(
            KeySource::parse("cookie:session"),
            Ok(KeySource::Cookie("session".into()))
        );
        let regex = KeySource::parse("regex:^/users/([^/]+)").unwrap();
        let KeySource::Regex(compiled) = &regex else {
            panic!("not a regex: {regex:?}");
        };
        let captures = compiled.captures("/users/42/posts").unwrap();
        assert_eq!(&captures[1], "42");
        assert_eq!(regex.to_string(), "regex:^/users/([^/]+)");
        // A colon in the pattern belongs to the pattern.
        assert!(KeySource::parse("regex:^/a:(.+)").is_ok());
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "Path",
            "paths",
            "host",
            "header",
            "header:",
            "header:a b",
            "cookie:",
            "cookie:a;b",
            "query:",
            "body:x",
        ] {
            assert!(KeySource::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            KeySource::parse("regex:^/users/[^/]+"),
            Err("the pattern has no capture group: the key is the first group, like regex:^/users/([^/]+)".into())
        );
        assert!(KeySource::parse("regex:(")
            .unwrap_err()
            .starts_with("the pattern does not compile: "));
        // A non-capturing group is not a capture group.
        assert!(KeySource::parse("regex:(?:a)").is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "path",
            "uri",
            "header:x-user",
            "query:id",
            "cookie:sid",
            "regex:/(.*)",
        ] {
            assert_eq!(KeySource::parse(text).unwrap().to_string(), text);
        }
    }
}
