//! `server.admin_token` (SPEC §9.7): with a token set, every admin request
//! but `GET /healthz` and `GET /readyz` (and their `HEAD`s, which show no
//! more) needs `Authorization: Bearer <token>`, else `401` with
//! `WWW-Authenticate: Bearer`. Probes stay open because a kubelet or load
//! balancer asks them without credentials; everything else shows the
//! rings or changes the cache.
//!
//! `GET /ui`, the ring page, also takes the token as `?token=` (SPEC
//! §14): a browser opening it cannot send the header. The page then
//! sends the header itself on its own requests. Only the page does: a
//! token in a URL can end up in a history or a log, and the page has no
//! data in it.
//!
//! The token is compared in constant time for its length, so the time of
//! an answer says nothing of how much of a guess was right, and it is
//! never logged.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use http_body_util::Full;

use super::reply::text;
use crate::config::AdminToken;
use crate::key::query_param;

/// Why a request was refused: each is answered `401`
/// ([`Unauthorized::response`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unauthorized {
    /// No `Authorization: Bearer` credentials.
    Missing,
    /// A bearer token that is not the admin token.
    Wrong,
}

/// `Ok` when the request may go on: no token is set, it is a probe, or
/// it carries the token (in the header, or for the ring page in the
/// query).
pub(super) fn authorize(
    token: Option<&AdminToken>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Unauthorized> {
    let Some(token) = token else {
        return Ok(());
    };
    let reads = method == Method::GET || method == Method::HEAD;
    let path = uri.path();
    if reads && matches!(path, "/healthz" | "/readyz") {
        return Ok(());
    }
    let in_query = (reads && path == "/ui")
        .then(|| query_param(uri.query().unwrap_or_default(), "token"))
        .flatten();
    match bearer(headers).or(in_query.as_deref()) {
        None => Err(Unauthorized::Missing),
        Some(presented) if same_secret(token.reveal(), presented) => Ok(()),
        Some(_) => Err(Unauthorized::Wrong),
    }
}

// === impl Unauthorized ===

impl Unauthorized {
    /// The `401`, with the challenge RFC 6750 §3 describes.
    pub(super) fn response(self) -> Response<Full<Bytes>> {
        let (challenge, problem) = match self {
            Unauthorized::Missing => (
                "Bearer realm=\"shardproxy-admin\"",
                "this admin request needs Authorization: Bearer <server.admin_token>",
            ),
            Unauthorized::Wrong => (
                "Bearer realm=\"shardproxy-admin\", error=\"invalid_token\"",
                "the bearer token is not the admin token",
            ),
        };
        let mut response = text(
            StatusCode::UNAUTHORIZED,
            format!("unauthorized: {problem}\n"),
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        response
    }
}

/// The credentials of the first `Authorization` header whose scheme is
/// `Bearer` (case-insensitive, RFC 9110 §11.1), if there is one.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let space = value.iter().position(|&byte| byte == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    Some(rest.trim_ascii())
}

/// Whether `presented` is `expected`, taking the same time whatever
/// `presented` holds: every byte of `expected` is compared, and the
/// differences are gathered without a branch on them. Only the length of
/// `expected` (the token's, which is not the secret) sets the time.
fn same_secret(expected: &[u8], presented: &[u8]) -> bool {
    let mut difference = u8::from(expected.len() != presented.len());
    for (index, &byte) in expected.iter().enumerate() {
        // Past the end of a shorter guess, any byte that differs will do.
        let other = presented.get(index).copied().unwrap_or(!byte);
        difference |= byte ^ other;
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn token(text: &str) -> AdminToken {
        let config = Config::from_toml(
            &format!(
                "[server]\nadmin_token = {text:?}\n\n[services.web]\nsrv = \"_w._http.example.com\"\n\n[[routes]]\nservice = \"web\"\n"
            ),
            "test.toml",
        )
        .unwrap();
        config.server.admin_token.unwrap()
    }

    fn with(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    /// The status `authorize` leads to, and its challenge.
    fn outcome(
        token: Option<&AdminToken>,
        method: Method,
        path: &str,
        authorization: Option<&str>,
    ) -> (StatusCode, Option<String>) {
        let uri: Uri = path.parse().unwrap();
        match authorize(token, &method, &uri, &with(authorization)) {
            Ok(()) => (StatusCode::OK, None),
            Err(refused) => (
                refused.response().status(),
                refused
                    .response()
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .map(|value| value.to_str().unwrap().to_owned()),
            ),
        }
    }

    #[test]
    fn same_secret_compares_whole_tokens() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"abc", b""));
        assert!(!same_secret(b"\xff", b""), "a missing byte never matches");
    }

    #[test]
    fn without_a_token_everything_is_open() {
        for path in ["/ring", "/metrics", "/cache/purge", "/nothing"] {
            assert_eq!(outcome(None, Method::GET, path, None).0, StatusCode::OK);
        }
    }

    #[test]
    fn with_a_token_only_the_probes_are_open() {
        let token = token("s3cret");
        let token = Some(&token);
        for path in ["/healthz", "/readyz"] {
            assert_eq!(outcome(token, Method::GET, path, None).0, StatusCode::OK);
            assert_eq!(outcome(token, Method::HEAD, path, None).0, StatusCode::OK);
            assert_eq!(
                outcome(token, Method::POST, path, None).0,
                StatusCode::UNAUTHORIZED,
                "only GET and HEAD of {path} are open"
            );
        }
        for (method, path) in [
            (Method::GET, "/ring"),
            (Method::GET, "/ring/lookup"),
            (Method::GET, "/metrics"),
            (Method::POST, "/cache/purge"),
            (Method::GET, "/nothing"),
        ] {
            let (status, challenge) = outcome(token, method.clone(), path, None);
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(
                challenge.as_deref(),
                Some("Bearer realm=\"shardproxy-admin\"")
            );
            let wrong = outcome(token, method.clone(), path, Some("Bearer s3crex"));
            assert_eq!(wrong.0, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert!(wrong
                .1
                .is_some_and(|challenge| challenge.contains("invalid_token")));
            for right in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret "] {
                assert_eq!(
                    outcome(token, method.clone(), path, Some(right)).0,
                    StatusCode::OK,
                    "{method} {path} with {right:?}"
                );
            }
            for other in ["Basic s3cret", "s3cret", "Bearer", "Bearers3cret"] {
                assert_eq!(
                    outcome(token, method.clone(), path, Some(other)).0,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} with {other:?}"
                );
            }
        }
    }

    #[test]
    fn only_the_ring_page_takes_the_token_in_its_query() {
        let token = token("s3cret");
        let token = Some(&token);
        for method in [Method::GET, Method::HEAD] {
            assert_eq!(
                outcome(token, method.clone(), "/ui?token=s3cret", None).0,
                StatusCode::OK
            );
            assert_eq!(
                outcome(token, method.clone(), "/ui?token=s3cr%65t", None).0,
                StatusCode::OK,
                "form-decoded"
            );
            assert_eq!(
                outcome(token, method.clone(), "/ui", Some("Bearer s3cret")).0,
                StatusCode::OK
            );
            let (status, challenge) = outcome(token, method.clone(), "/ui?token=s3crex", None);
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert!(challenge.is_some_and(|challenge| challenge.contains("invalid_token")));
            assert_eq!(
                outcome(token, method.clone(), "/ui", None).0,
                StatusCode::UNAUTHORIZED
            );
        }
        for (method, target) in [
            (Method::GET, "/ring?token=s3cret"),
            (Method::GET, "/ring/lookup?service=a&key=b&token=s3cret"),
            (Method::POST, "/ui?token=s3cret"),
            (Method::POST, "/cache/purge?service=a&path=/&token=s3cret"),
        ] {
            assert_eq!(
                outcome(token, method.clone(), target, None).0,
                StatusCode::UNAUTHORIZED,
                "{method} {target}"
            );
        }
    }
}
