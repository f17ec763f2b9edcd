//! The admin API's answers: plain text, JSON, and `HEAD`'s bodiless copy,
//! each with its content type.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::Body as _;
use http_body_util::Full;
use serde::Serialize;

/// The content type of `/metrics`: the Prometheus text format, version
/// 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// A JSON error body.
#[derive(Serialize)]
struct ErrorView<'a> {
    error: &'a str,
}

/// A response with `body` of `content_type`.
pub(super) fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A plain-text response.
pub(super) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    reply(status, TEXT, body)
}

/// `value` as JSON, with a final newline for terminals.
pub(super) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            reply(status, JSON, body)
        }
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the answer as JSON: {error}\n"),
        ),
    }
}

/// `{"error": message}`.
pub(super) fn json_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &ErrorView { error: message })
}

/// The response to a `HEAD`: `response`'s headers with the length of its
/// body, and no body.
pub(super) fn without_body(response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let (mut parts, body) = response.into_parts();
    if let Some(length) = body.size_hint().exact() {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    Response::from_parts(parts, Full::new(Bytes::new()))
}
