//! Upgrades (SPEC §10): an HTTP/1.1 request with `Upgrade` (a WebSocket
//! handshake, or any protocol but `h2c`) forwarded with its `Upgrade` and
//! `Connection: upgrade` to its key's first healthy instance, on a
//! connection of its own; after the instance's `101`, the bytes of both
//! connections relayed until either side closes.
//!
//! - Retried on the next instance only when the connection could not be
//!   made: anything else may have reached the instance, which may have
//!   acted on the handshake.
//! - Any answer but `101` goes back to the client as it is (`retry_on`
//!   does not apply: the instance refused the upgrade, and says why).
//! - The relay keeps the request's place among the service's requests in
//!   flight (`max_concurrency`) until it ends: an upgraded connection is a
//!   request that lasts, and this bounds them per service.
//! - The relay runs on a task of its own, counted in [`super::Tunnels`], which
//!   shutdown closes at the end of `drain_timeout`.
//! - The client's connection leaves the listener at the switch (hyper hands
//!   it over), and with it `max_connections` and `idle_timeout`;
//!   `send_timeout` stays, in the connection itself.
//! - The access log line is written when the `101` is sent (status `101`,
//!   no body bytes), not when the relay ends: a WebSocket may last days,
//!   and its line should not wait for it.
//! - HTTP/2 upgrades (extended CONNECT, RFC 8441) are out of scope: an
//!   HTTP/2 request never carries `Upgrade`.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tower::retry::budget::Budget as _;

use super::attempt::{self, ClientSide, Failed};
use super::body::RequestBody;
use super::endpoint::Targets;
use super::request::{for_client, to_client, upstream_path, upstream_request};
use super::tunnels::Open;
use super::{locate, Exchange, Located, Upstream};
use crate::body::{self, Body, BoxError};
use crate::error::{AttemptError, AttemptFailure, ProxyError};
use crate::headers::{self, ClientAddr};
use crate::inbound::Upgrade;
use crate::limits::{self, InFlight, Kept};
use crate::metrics::Upgraded;
use crate::route::Matched;

/// What an upgraded connection holds while it is relayed.
struct Relay {
    open: Open,
    /// Its place among the service's requests in flight.
    _place: Kept,
    /// Its count in the metrics.
    _counted: Upgraded,
}

/// Forwards `parts`, an upgrade request that [`crate::inbound::normalize`]
/// found (a request without one is forwarded as any other), holding
/// `place` among its service's requests in flight. After a `101` the relay
/// is spawned and keeps the place.
///
/// # Errors
///
/// As [`super::forward`]: the client's (no key, a bad body), the proxy's
/// (no ring yet), or the instances' (no connection could be made, or the
/// exchange failed: every attempt is named).
pub async fn forward(
    upstream: &Upstream,
    route: &Matched<'_>,
    parts: &mut Parts,
    body: Incoming,
    client: &ClientAddr,
    exchange: &mut Exchange,
    place: InFlight<'_>,
) -> Result<Response<Body>, ProxyError> {
    let Some(asked) = Upgrade::take(parts) else {
        return super::forward(upstream, route, parts, Some(body), client, exchange).await;
    };
    let config = &upstream.config;
    let Located {
        state,
        endpoints,
        point,
        ..
    } = locate(upstream, parts, exchange)?;
    let read = parts.method == Method::GET || parts.method == Method::HEAD;
    let targets = Targets::at(&state.current, &endpoints, point, &upstream.health, read);
    let path = upstream_path(&parts.uri, route.strip)?;
    headers::request_to_upstream(parts, client);
    parts.headers.insert(header::UPGRADE, asked.protocols);
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    let body = limits::limit_body(body, route.max_body, config.body_timeout)?;
    let mut body = limits::body_within(
        config.deadline,
        RequestBody::prepare(body, config.retry_body_limit, route.max_body),
    )
    .await?;
    upstream.budget.deposit();
    let deadline = Instant::now() + config.deadline;
    let mut failed = Vec::new();
    for index in 0..targets.len() {
        let Some(endpoint) = targets.get(index) else {
            continue;
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() || (index > 0 && !upstream.retry_allowed()) {
            break;
        }
        // Only a connect failure is retried, and it sent nothing: the body
        // is still there.
        let Some(attempt_body) = body.for_attempt() else {
            break;
        };
        exchange.attempt(&endpoint.name);
        let last = index + 1 == targets.len();
        let request = upstream_request(parts, endpoint, &path, attempt_body, last);
        let sent = exchange.sending();
        let client_side = ClientSide {
            body: &body,
            max_body: route.max_body,
        };
        let outcome = attempt::once(
            &upstream.health,
            &[],
            endpoint,
            request,
            true,
            attempt::Window::from_now(config.try_timeout.min(remaining)),
            Some(client_side),
        )
        .await;
        exchange.attempted(&endpoint.name, &outcome, sent);
        let failure = match outcome {
            Ok(response) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                return Ok(switch(upstream, response, asked.client, place));
            }
            Ok(response) => return Ok(to_client(response, upstream, &endpoint.name)),
            Err(Failed::Client(fault)) => return Err(fault),
            Err(Failed::Instance(failure) | Failed::StaleConnection(failure)) => failure,
        };
        let connected = !matches!(failure, AttemptFailure::Connect(_));
        failed.push(AttemptError {
            instance: endpoint.name.to_string(),
            reason: failure,
        });
        if connected {
            break;
        }
    }
    Err(ProxyError::AttemptsFailed {
        service: config.name.clone(),
        attempts: failed,
        deadline_passed: deadline <= Instant::now(),
        note: None,
    })
}

/// The client's `101` for the instance's `response`, with the relay
/// between the two connections spawned: it starts once hyper has sent the
/// `101` and handed over the client's connection.
fn switch(
    upstream: &Upstream,
    mut response: hyper::Response<crate::pool::ResponseBody>,
    client: OnUpgrade,
    place: InFlight<'_>,
) -> Response<Body> {
    let instance = hyper::upgrade::on(&mut response);
    let (mut parts, _) = response.into_parts();
    let protocol = parts.headers.get(header::UPGRADE).cloned();
    for_client(&mut parts);
    if let Some(protocol) = protocol {
        parts.headers.insert(header::UPGRADE, protocol);
    }
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    let relay = Relay {
        open: upstream.tunnels.open(),
        _place: place.keep(),
        _counted: upstream.metrics.upgraded(),
    };
    tokio::spawn(relay.run(client, instance));
    Response::from_parts(parts, body::empty())
}

// === impl Relay ===

impl Relay {
    /// Copies bytes both ways between the `client`'s and the `instance`'s
    /// upgraded connections until both directions have ended (each side's
    /// end of stream is passed on to the other) or the proxy closes them.
    async fn run(mut self, client: OnUpgrade, instance: OnUpgrade) {
        let relayed = async {
            let (client, instance) = tokio::try_join!(client, instance)?;
            let mut client = TokioIo::new(client);
            let mut instance = TokioIo::new(instance);
            let copied = tokio::io::copy_bidirectional(&mut client, &mut instance).await?;
            Ok::<_, BoxError>(copied)
        };
        tokio::select! {
            relayed = relayed => match relayed {
                Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
                Err(error) => tracing::debug!(%error, "upgraded connection failed"),
            },
            () = self.open.closing() => {
                tracing::debug!("upgraded connection closed at the end of the drain");
            }
        }
    }
}
