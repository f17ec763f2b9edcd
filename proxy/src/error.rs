//! What the proxy answers when it cannot forward: one error type that says
//! who failed (the client, the instances, or the proxy), mapped to a status
//! and a body that says what went wrong, in one place. No other module of
//! the request path picks a status of its own.
//!
//! The client is told the status, the reason in words and the request id
//! (SPEC §9.7), never an instance's name or address: those tell an outsider
//! the inside of the fleet. The whole story (every attempt, on which
//! instance, why) goes to the access log, and to the client too with
//! `server.error_detail = true`.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{self, Body};
use crate::key::MissingKey;

mod quorum;

pub use quorum::QuorumError;

/// One failed attempt on one instance.
#[derive(Debug, Clone)]
pub struct AttemptError {
    /// `host:port`.
    pub instance: String,
    /// Why it failed.
    pub reason: AttemptFailure,
}

/// Why one attempt failed.
#[derive(Debug, Clone)]
pub enum AttemptFailure {
    /// The connection could not be made.
    Connect(String),
    /// No response head within the per-try timeout (or the deadline).
    Timeout(Duration),
    /// The instance answered with a retryable status.
    Status(StatusCode),
    /// The exchange broke after the request may have been sent.
    Broken(String),
}

impl std::fmt::Display for AttemptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptFailure::Connect(reason) => write!(f, "connect failed: {reason}"),
            AttemptFailure::Timeout(after) => {
                write!(
                    f,
                    "no response within {}",
                    crate::config::format_duration(*after)
                )
            }
            AttemptFailure::Status(status) => write!(f, "answered {status}"),
            AttemptFailure::Broken(reason) => write!(f, "request failed: {reason}"),
        }
    }
}

/// Why a request got no answer from an instance.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client's fault: no route.
    #[error("no route for host {host:?} and path {path:?}")]
    NoRoute {
        /// The request's host, if any.
        host: Option<String>,
        /// The request's path.
        path: String,
    },
    /// The client's fault: no Host, more than one (RFC 9112 §3.2), or one
    /// that is not a valid host (SPEC §9.8).
    #[error("bad request: {0}")]
    BadHost(&'static str),
    /// The client's fault: a method the proxy does not forward (`CONNECT`:
    /// it is no tunnel).
    #[error("method {0} is not allowed: this proxy is not a tunnel")]
    NotAllowed(http::Method),
    /// The client's fault: the key is missing.
    #[error(transparent)]
    MissingKey(#[from] MissingKey),
    /// The client's fault: the body could not be read.
    #[error("cannot read the request body: {0}")]
    ClientBody(String),
    /// The client's fault: a body too large to buffer where buffering is
    /// needed.
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The client's fault: a body the proxy buffers did not arrive in time.
    #[error("the request body did not arrive within {}", crate::config::format_duration(*.0))]
    ClientTimeout(Duration),
    /// Ours: the service has as many requests in flight as it may have
    /// (`max_concurrency`). Shed, not queued: a fast `503` lets the client
    /// go elsewhere at once.
    #[error("service {service} is at its limit of {max} requests in flight (max_concurrency): request shed, try again later")]
    Shed {
        /// The service.
        service: String,
        /// Its `max_concurrency`.
        max: usize,
    },
    /// The client's: it asked for `only-if-cached` and the cache has no
    /// answer (RFC 9111 §5.2.1.7: `504`).
    #[error("not in the cache, and the request says only-if-cached")]
    NotCached,
    /// Ours: the service has no ring yet (discovery has not succeeded once).
    #[error("service {service} has no ring yet: {detail}")]
    NoRing {
        /// The service.
        service: String,
        /// The latest discovery error, if any.
        detail: String,
    },
    /// The instances': every attempt failed.
    #[error("{}", describe_attempts(service, *deadline_passed, attempts, note.as_deref()))]
    AttemptsFailed {
        /// The service.
        service: String,
        /// Each attempt, in order.
        attempts: Vec<AttemptError>,
        /// True when the overall deadline ended the attempts.
        deadline_passed: bool,
        /// Why no further instance was tried, if the list was not exhausted.
        note: Option<String>,
    },
    /// The instances': a response the cache was storing broke off, or did
    /// not end within the deadline.
    #[error("service {service}: the response body could not be read: {reason}")]
    UpstreamBody {
        /// The service.
        service: String,
        /// Why.
        reason: String,
    },
    /// The instances': a write to every replica did not reach its quorum.
    #[error(transparent)]
    WriteQuorum(#[from] QuorumError),
}

/// The methods the proxy forwards, as `Allow` lists them.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH";

/// Who an error is down to: what a retry elsewhere could change, and whose
/// logs to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The request itself: sent again as it is, it fails again.
    Client,
    /// The service's instances: they failed or did not answer.
    Instances,
    /// The proxy: its limits, or a ring it does not have yet.
    Proxy,
}

impl Side {
    /// The name logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Instances => "instances",
            Side::Proxy => "proxy",
        }
    }
}

fn describe_attempts(
    service: &str,
    deadline_passed: bool,
    attempts: &[AttemptError],
    note: Option<&str>,
) -> String {
    let mut text = if deadline_passed {
        format!(
            "service {service}: deadline passed after {} attempt(s)",
            attempts.len()
        )
    } else {
        format!("service {service}: every attempt failed")
    };
    for attempt in attempts {
        let _ = write!(text, "\n  {}: {}", attempt.instance, attempt.reason);
    }
    if let Some(note) = note {
        let _ = write!(text, "\n  {note}");
    }
    text
}

impl ProxyError {
    /// The status this error is answered with: the one place a status is
    /// chosen for a request the proxy could not forward.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ProxyError::MissingKey(_) | ProxyError::ClientBody(_) | ProxyError::BadHost(_) => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::NotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Shed { .. } | ProxyError::NoRing { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::NotCached => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::UpstreamBody { .. } | ProxyError::WriteQuorum(_) => StatusCode::BAD_GATEWAY,
            ProxyError::AttemptsFailed {
                deadline_passed, ..
            } => {
                if *deadline_passed {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                }
            }
        }
    }

    /// Who the error is down to.
    pub fn side(&self) -> Side {
        match self {
            ProxyError::NoRoute { .. }
            | ProxyError::BadHost(_)
            | ProxyError::NotAllowed(_)
            | ProxyError::MissingKey(_)
            | ProxyError::ClientBody(_)
            | ProxyError::BodyTooLarge { .. }
            | ProxyError::ClientTimeout(_)
            | ProxyError::NotCached => Side::Client,
            ProxyError::Shed { .. } | ProxyError::NoRing { .. } => Side::Proxy,
            ProxyError::AttemptsFailed { .. }
            | ProxyError::UpstreamBody { .. }
            | ProxyError::WriteQuorum(_) => Side::Instances,
        }
    }

    /// What the client is told of this error: for its own faults, all of
    /// it (it is about its own request); for the instances' and the
    /// proxy's, the reason in words without names or addresses.
    pub fn public_reason(&self) -> Cow<'static, str> {
        match self {
            ProxyError::NoRing { service, .. } => {
                format!("service {service} has no ring yet").into()
            }
            ProxyError::AttemptsFailed {
                deadline_passed: true,
                ..
            } => "no instance answered within the deadline".into(),
            ProxyError::AttemptsFailed { .. } => "no instance could answer the request".into(),
            ProxyError::UpstreamBody { .. } => "the instance's response broke off".into(),
            ProxyError::WriteQuorum(_) => "the write did not reach its quorum of replicas".into(),
            client_or_limit => client_or_limit.to_string().into(),
        }
    }

    /// The response: the status (and for a `405`, the `Allow` header it
    /// must carry, RFC 9110 §15.5.6), with the error in an [`ErrorReply`]
    /// until [`write_error_body`] writes its body.
    pub fn into_response(self) -> Response<Body> {
        let mut response = Response::new(body::empty());
        *response.status_mut() = self.status();
        if let ProxyError::NotAllowed(_) = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response.extensions_mut().insert(ErrorReply {
            public: self.public_reason(),
            detail: self.to_string(),
        });
        response
    }
}

/// A proxy error in a response on its way out: carried by the response
/// until the pipeline, which knows the request id, writes its body.
#[derive(Clone, Debug)]
pub struct ErrorReply {
    /// What the client is told ([`ProxyError::public_reason`]).
    pub public: Cow<'static, str>,
    /// All the error says, instances included.
    pub detail: String,
}

/// Writes the body of `response` if it is a proxy error's: its status, the
/// reason in words and `request_id`, and the whole error when `detail`.
/// Returns the whole error, for the access log.
pub fn write_error_body(
    response: &mut Response<Body>,
    request_id: &HeaderValue,
    detail: bool,
) -> Option<String> {
    let reply = response.extensions_mut().remove::<ErrorReply>()?;
    let status = response.status();
    let mut text = format!(
        "{} {}: {}\nrequest id: {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        reply.public,
        String::from_utf8_lossy(request_id.as_bytes()),
    );
    if detail && reply.detail != reply.public {
        let _ = writeln!(text, "{}", reply.detail);
    }
    *response.body_mut() = body::full(text);
    Some(reply.detail)
}

/// An error with its causes, `outer: inner: innermost`, so that "client
/// error (Connect)" also says "connection refused".
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shed_answer_names_service_and_limit() {
        let shed = || ProxyError::Shed {
            service: "frob".to_owned(),
            max: 7,
        };
        assert_eq!(shed().status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed().side(), Side::Proxy);
        assert_eq!(
            shed().into_response().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            shed().to_string(),
            "service frob is at its limit of 7 requests in flight (max_concurrency): request shed, try again later"
        );
    }

    /// The text of `error`'s answer, with `detail` or not.
    fn answered(error: ProxyError, detail: bool) -> (String, Option<String>) {
        let mut response = error.into_response();
        let id = HeaderValue::from_static("id-1");
        let logged = write_error_body(&mut response, &id, detail);
        let text = futures_text(response.into_body());
        (text, logged)
    }

    /// A whole in-memory body as text.
    fn futures_text(body: Body) -> String {
        use http_body_util::BodyExt as _;
        let collected = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(body.collect())
            .unwrap();
        String::from_utf8(collected.to_bytes().to_vec()).unwrap()
    }

    #[test]
    fn instances_are_named_to_the_client_only_with_error_detail() {
        let failed = || ProxyError::AttemptsFailed {
            service: "frob".to_owned(),
            attempts: vec![AttemptError {
                instance: "frob1.example.com:8081".to_owned(),
                reason: AttemptFailure::Connect("connection refused (10.0.0.7:8081)".to_owned()),
            }],
            deadline_passed: false,
            note: None,
        };
        let (text, logged) = answered(failed(), false);
        assert_eq!(
            text,
            "502 Bad Gateway: no instance could answer the request\nrequest id: id-1\n"
        );
        let logged = logged.expect("the whole error is kept for the log");
        assert!(logged.contains("frob1.example.com:8081"), "{logged}");
        let (text, _) = answered(failed(), true);
        assert!(text.starts_with(
            "502 Bad Gateway: no instance could answer the request\nrequest id: id-1\n"
        ));
        assert!(
            text.contains("frob1.example.com:8081") && text.contains("10.0.0.7"),
            "{text}"
        );
    }

    #[test]
    fn a_client_is_told_all_of_its_own_fault() {
        let (text, _) = answered(ProxyError::BodyTooLarge { limit: 10 }, false);
        assert_eq!(
            text,
            "413 Payload Too Large: request body larger than 10 bytes\nrequest id: id-1\n"
        );
    }
}
