//! The body type every layer of the proxy passes along: requests to
//! instances and responses to clients, whether streamed from a socket or
//! built in memory (a cached object, an error text).
//!
//! One boxed type keeps the request path's signatures concrete (no body
//! generics on every function) at the cost of one allocation per body,
//! which hyper's own `Incoming` would cost anyway once wrapped for retries.

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Errors of bodies in either direction.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of requests to instances and responses to clients.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body of `bytes`, whole.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// `bytes`, then the trailer fields `trailers`.
pub fn full_with_trailers(bytes: Bytes, trailers: HeaderMap) -> Body {
    Full::new(bytes)
        .with_trailers(std::future::ready(Some(Ok(trailers))))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body with nothing in it.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}
