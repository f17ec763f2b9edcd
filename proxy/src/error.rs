//! What the proxy answers when it cannot forward: one error type that says
//! who failed (the client, the instances, or the proxy), mapped to a status
//! and a body that says exactly what went wrong, in one place.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::forward::Body;
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
    /// The client's fault: no Host, or more than one (RFC 9112 §3.2).
    #[error("bad request: {0}")]
    BadHost(&'static str),
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
    Upstream {
        /// The service.
        service: String,
        /// Each attempt, in order.
        attempts: Vec<AttemptError>,
        /// True when the overall deadline ended the attempts.
        deadline_passed: bool,
        /// Why no further instance was tried, if the list was not exhausted.
        note: Option<String>,
    },
    /// The instances': a write to every replica did not reach its quorum.
    #[error(transparent)]
    WriteQuorum(#[from] QuorumError),
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
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ProxyError::MissingKey(_) | ProxyError::ClientBody(_) | ProxyError::BadHost(_) => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::NoRing { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::WriteQuorum(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Upstream {
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

    /// The response: the status and the error's text.
    pub fn into_response(self) -> Response<Body> {
        text_response(self.status(), format!("{self}\n"))
    }
}

/// A plain-text response.
pub fn text_response(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
