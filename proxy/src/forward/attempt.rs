//! One attempt on one instance, as every way of forwarding makes it: under
//! the per-try timeout, counted in the instance's attempt metrics and
//! recorded in its health, and classified the way SPEC §5 retries on.

use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::endpoint::Endpoint;
use super::{error_chain, Body, UpstreamClient};
use crate::error::AttemptFailure;
use crate::health::Health;
use crate::metrics::AttemptOutcome;

/// Sends `request` to `endpoint` and waits at most `try_timeout` for the
/// response head. An answer whose status is in `retry_on` is a failure
/// ([`AttemptFailure::Status`]); any other answer is returned, whatever its
/// status. A connect error ([`AttemptFailure::Connect`]) means nothing was
/// sent.
pub(super) async fn once(
    client: &UpstreamClient,
    health: &Health,
    retry_on: &[u16],
    endpoint: &Endpoint,
    request: Request<Body>,
    try_timeout: Duration,
) -> Result<Response<Incoming>, AttemptFailure> {
    let (outcome, result) = match tokio::time::timeout(try_timeout, client.request(request)).await {
        Ok(Ok(response)) if retry_on.contains(&response.status().as_u16()) => (
            AttemptOutcome::RetryableStatus,
            Err(AttemptFailure::Status(response.status())),
        ),
        Ok(Ok(response)) => (AttemptOutcome::Response, Ok(response)),
        Ok(Err(error)) if error.is_connect() => (
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
    endpoint.attempts.record(outcome);
    health.record(&endpoint.name, result.is_ok());
    result
}

/// Reads and drops what is left of an answer that nobody will read, for at
/// most `within`, so that its connection goes back to the pool instead of
/// being closed. Spawn it where the caller should not wait.
pub(super) async fn drain(mut body: Incoming, within: Duration) {
    let _ = tokio::time::timeout(within, async {
        while let Some(Ok(_)) = body.frame().await {}
    })
    .await;
}
