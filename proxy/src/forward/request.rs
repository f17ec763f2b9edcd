//! The request each attempt sends and the response each returns: what is
//! rewritten on the way to an instance (path, version, `Host`) and on the
//! way back (hop-by-hop headers), and which methods may be sent twice.

use http::header::{self, Entry};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri, Version};
use http_body_util::BodyExt;

use std::sync::Arc;

use shardproxy_ring::InstanceName;

use super::endpoint::Endpoint;
use super::upstream::Upstream;
use super::watched::Watched;
use crate::body::Body;
use crate::error::ProxyError;
use crate::headers::{self, HopByHop, TeTrailers};
use crate::pool::ResponseBody;

/// Methods that may be repeated (SPEC §5).
pub(super) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// The path and query to send upstream: the request's, minus the route's
/// prefix when it strips one (keeping a leading `/`).
pub(super) fn upstream_path(uri: &Uri, strip: Option<&str>) -> Result<PathAndQuery, ProxyError> {
    // Nothing to strip from a path that starts with `/`: the request's own
    // path and query, shared rather than copied and parsed again.
    if let (None, Some(path_and_query)) = (strip, uri.path_and_query()) {
        if path_and_query.as_str().starts_with('/') {
            return Ok(path_and_query.clone());
        }
    }
    let path = uri.path();
    let path = match strip.and_then(|prefix| path.strip_prefix(prefix)) {
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        Some(rest) => format!("/{rest}"),
        None => path.to_owned(),
    };
    let text = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    PathAndQuery::try_from(text).map_err(|error| ProxyError::ClientBody(error.to_string()))
}

/// The request for one attempt: same method and headers, HTTP/1.1 in
/// origin-form to the instance, with the instance's address as `Host` if
/// the client sent none (HTTP/1.0; set on this attempt's headers only, so a
/// retry names its own instance), and marked [`TeTrailers`] if the client
/// accepts trailers. The headers are copied, except for the `last`
/// attempt, which takes them.
pub(super) fn upstream_request(
    parts: &mut Parts,
    endpoint: &Endpoint,
    path: &PathAndQuery,
    body: Body,
    last: bool,
) -> Request<Body> {
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = Uri::from(path.clone());
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = if last {
        std::mem::take(&mut parts.headers)
    } else {
        // The original goes and the copy stays for a retry: hyper parses the
        // response into the map it was sent, and a copy (no spare room)
        // would have to grow for it.
        let copy = parts.headers.clone();
        std::mem::replace(&mut parts.headers, copy)
    };
    if parts.extensions.get::<TeTrailers>().is_some() {
        request.extensions_mut().insert(TeTrailers);
    }
    if let (Entry::Vacant(entry), Some(host)) =
        (request.headers_mut().entry(header::HOST), &endpoint.host)
    {
        entry.insert(host.clone());
    }
    request
}

/// The response of `instance` (of `upstream`'s service) for the client:
/// framed as RFC 9112 §6.3 says, hop-by-hop headers removed, the body
/// streamed under the service's `body_timeout`.
pub(super) fn to_client(
    response: Response<ResponseBody>,
    upstream: &Upstream,
    instance: &InstanceName,
) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    for_client(&mut parts);
    let body = Watched::new(
        body,
        upstream.config.body_timeout,
        Arc::clone(&upstream.health),
        instance.clone(),
    );
    Response::from_parts(parts, body.boxed_unsync())
}

/// The head of an instance's response as the client gets it, whether its
/// body is streamed ([`to_client`]) or was read whole: framed as RFC 9112
/// §6.3 says, hop-by-hop headers removed.
pub(super) fn for_client(parts: &mut http::response::Parts) {
    let hop_by_hop = HopByHop::scan(&parts.headers);
    headers::reframe(&mut parts.headers, hop_by_hop.has_transfer_encoding());
    hop_by_hop.strip(&mut parts.headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_prefix_keeps_a_leading_slash() {
        let uri: Uri = "/counters/42?x=1".parse().unwrap();
        assert_eq!(upstream_path(&uri, Some("/counters/")).unwrap(), "/42?x=1");
        assert_eq!(upstream_path(&uri, Some("/counters")).unwrap(), "/42?x=1");
        assert_eq!(upstream_path(&uri, None).unwrap(), "/counters/42?x=1");
        let absolute: Uri = "http://h.example/a/b".parse().unwrap();
        assert_eq!(upstream_path(&absolute, Some("/a")).unwrap(), "/b");
    }

    #[test]
    fn the_shared_path_is_the_one_built_from_its_parts() {
        let built = |uri: &Uri| -> PathAndQuery {
            let text = match uri.query() {
                Some(query) => format!("{}?{query}", uri.path()),
                None => uri.path().to_owned(),
            };
            PathAndQuery::try_from(text).unwrap()
        };
        for target in [
            "/",
            "/k/42",
            "/a%20b/c?x=1&y=%41",
            "/a?",
            "/a??b",
            "/a#frag",
            "/a?q#frag",
            "//double",
            "http://h.example",
            "http://h.example/p?q",
            "http://h.example?q",
            "*",
        ] {
            let uri: Uri = target.parse().unwrap();
            let path = upstream_path(&uri, None).unwrap();
            assert_eq!(path, built(&uri), "{target}");
            assert_eq!(path.as_str(), built(&uri).as_str(), "{target}");
        }
    }

    #[test]
    fn idempotent_methods() {
        for method in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
        ] {
            assert!(is_idempotent(&method));
        }
        for method in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert!(!is_idempotent(&method));
        }
    }
}
