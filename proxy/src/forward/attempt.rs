//! One attempt on one instance, as every way of forwarding makes it: under
//! the per-try timeout, counted in the instance's attempt metrics and
//! recorded in its health, and classified the way SPEC §5 retries on.

use std::time::Duration;

use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::body::RequestBody;
use super::endpoint::Endpoint;
use crate::body::Body;
use crate::error::{error_chain, AttemptFailure, ProxyError};
use crate::health::{Health, Outcome};
use crate::limits;
use crate::metrics::AttemptOutcome;
use crate::pool::{ResponseBody, SendError};

/// Why an attempt gave no answer to return.
pub(super) enum Failed {
    /// The instance failed: counted in its health, and the next instance
    /// may be tried.
    Instance(AttemptFailure),
    /// A kept-alive connection the instance had closed took the request
    /// and ended without an answer ([`SendError::Stale`]): counted as a
    /// failed attempt but not in the instance's health. A request that may
    /// be sent again can go to the same instance on a new connection, as
    /// nginx retries a failed cached connection.
    StaleConnection(AttemptFailure),
    /// The client did (its streamed body broke, grew past the route's
    /// `max_body`, or stalled while the instance waited for it): the request
    /// ends with this answer, and the instance is not held responsible.
    Client(ProxyError),
}

/// The client's side of a request whose body is streamed to the instance,
/// so that a failure of that body is put down to the client.
#[derive(Clone, Copy)]
pub(super) struct ClientSide<'a> {
    /// The body being sent.
    pub body: &'a RequestBody,
    /// The route's `max_body`.
    pub max_body: Option<u64>,
}

/// When an attempt starts and how long it may wait for the response head.
/// The start is the caller's clock reading, so that a request reads the
/// clock once for its deadline, its retry budget and its first attempt.
#[derive(Clone, Copy)]
pub(super) struct Window {
    pub started: Instant,
    pub timeout: Duration,
}

impl Window {
    /// A window of `timeout` from now.
    pub(super) fn from_now(timeout: Duration) -> Window {
        Window {
            started: Instant::now(),
            timeout,
        }
    }
}

/// Sends `request` to `endpoint` and waits at most `window.timeout` for the
/// response head. An answer whose status is in `retry_on` is a failure
/// ([`AttemptFailure::Status`]); any other answer is returned, whatever its
/// status. A connect error ([`AttemptFailure::Connect`]) means nothing was
/// sent. With `client_side`, a failure of the client's body is
/// [`Failed::Client`] and touches neither metrics nor health. A request
/// that asks for an `upgrade` goes on a connection of its own (never
/// pooled), and may be answered `101`.
pub(super) async fn once(
    health: &Health,
    retry_on: &[u16],
    endpoint: &Endpoint,
    request: Request<Body>,
    upgrade: bool,
    window: Window,
    client_side: Option<ClientSide<'_>>,
) -> Result<Response<ResponseBody>, Failed> {
    let in_flight = endpoint.attempts.start();
    let Window {
        started,
        timeout: try_timeout,
    } = window;
    let until = started + try_timeout;
    let answer = if upgrade {
        // Boxed: rare, and every request's future is as large as its
        // largest branch (an `async` block choosing between the two would
        // also keep a second copy of the request).
        let send = Box::pin(endpoint.connections.send_upgrade(request));
        tokio::time::timeout_at(until, send).await
    } else {
        tokio::time::timeout_at(until, endpoint.connections.send(request, started)).await
    };
    let elapsed = started.elapsed();
    drop(in_flight);
    if let Some(side) = client_side {
        match &answer {
            Ok(Err(SendError::Http(error))) => {
                if let Some(fault) = limits::client_fault(error, side.max_body) {
                    return Err(Failed::Client(fault));
                }
            }
            Err(_) if side.body.awaiting_client() => {
                return Err(Failed::Client(ProxyError::ClientTimeout(try_timeout)));
            }
            _ => {}
        }
    }
    let stale = matches!(answer, Ok(Err(SendError::Stale(_))));
    let (outcome, result) = match answer.map(|sent| sent.map(|response| framed(response, upgrade)))
    {
        Ok(Ok(Err(problem))) => (AttemptOutcome::Failed, Err(AttemptFailure::Broken(problem))),
        Ok(Ok(Ok(response))) if retry_on.contains(&response.status().as_u16()) => (
            AttemptOutcome::RetryableStatus,
            Err(AttemptFailure::Status(response.status())),
        ),
        Ok(Ok(Ok(response))) => (AttemptOutcome::Response, Ok(response)),
        Ok(Err(
            error @ (SendError::Connect { .. }
            | SendError::ConnectTimeout { .. }
            | SendError::Handshake { .. }),
        )) => (
            AttemptOutcome::ConnectError,
            Err(AttemptFailure::Connect(error_chain(&error))),
        ),
        Ok(Err(error)) => (
            AttemptOutcome::Failed,
            Err(AttemptFailure::Broken(error_chain(&error))),
        ),
        Err(_) => (
            AttemptOutcome::Timeout,
            Err(AttemptFailure::Timeout(try_timeout)),
        ),
    };
    endpoint.attempts.finish(outcome, elapsed);
    if stale {
        return result.map_err(Failed::StaleConnection);
    }
    let seen = match &result {
        Ok(_) => Outcome::Success,
        Err(AttemptFailure::Connect(_)) => Outcome::ConnectFailure,
        Err(_) => Outcome::AnswerFailure,
    };
    health.record(&endpoint.name, seen);
    result.map_err(Failed::Instance)
}

/// The instance's answer, if the proxy can pass it on as it is framed
/// (RFC 9112 §6.3); otherwise what is wrong with it, a failed attempt.
/// An unknown transfer coding would reach the client undecoded once the
/// hop-by-hop `Transfer-Encoding` is removed; a `101` to a request that
/// asked for no `upgrade` would switch the client's connection to a
/// protocol it never chose (SPEC §10).
fn framed(
    response: Response<ResponseBody>,
    upgrade: bool,
) -> Result<Response<ResponseBody>, String> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS && !upgrade {
        return Err(
            "answered 101 Switching Protocols to a request that asked for no upgrade".to_owned(),
        );
    }
    for coding in response
        .headers()
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .map(<[u8]>::trim_ascii)
    {
        if !coding.eq_ignore_ascii_case(b"chunked") {
            return Err(format!(
                "a transfer coding the proxy does not decode: {:?}",
                String::from_utf8_lossy(coding)
            ));
        }
    }
    Ok(response)
}

/// Reads and drops what is left of an answer that nobody will read, for at
/// most `within`, so that its connection goes back to the pool instead of
/// being closed. Spawn it where the caller should not wait.
pub(super) async fn drain(mut body: ResponseBody, within: Duration) {
    let _ = tokio::time::timeout(within, async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
}
