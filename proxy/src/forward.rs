//! Forwarding (SPEC §5): a routed request's way to an instance.
//!
//! key -> preference list from the current ring -> attempts on each
//! instance of the list in order, under a per-try timeout, an overall
//! deadline and a retry budget -> the instance's response, or an error that
//! names every attempt.
//!
//! The ring is read once per request from its `ArcSwap` (no lock, no wait)
//! and held for the request's life, so a ring swapped in meanwhile never
//! changes the instances a request walks.
//!
//! # Layout
//!
//! - [`upstream`]: the per-service handle every layer above takes.
//! - [`exchange`]: what a request did, for the access log.
//! - `request`: the request each attempt sends, the response it returns.
//! - `attempt`: one attempt on one instance.
//! - `background`: the bound on replica writes left running.
//! - `body`: request bodies, buffered for retries or streamed once.
//! - `budget`: the retry budget.
//! - `endpoint`: each instance of the ring in use as requests need it,
//!   built once per ring, and the order a request tries them in.
//! - `fallback`: a read's `404` tried on the rest of its preference list,
//!   and the read repairs it sends.
//! - `transition`: reads tried on the replaced ring during a transition.
//! - `tunnels`: the upgraded connections being relayed, closed on
//!   shutdown.
//! - [`upgrade`]: requests that switch protocols (WebSocket), relayed.
//! - `watched`: response bodies cut off when the instance stalls.
//! - `write`: writes to every replica of a key (`writes = "all"`).

use std::sync::Arc;

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use shardproxy_ring::{InstanceName, Token};
use tokio::time::Instant;

use crate::body::Body;
use crate::config::UpstreamProtocol;
use crate::discovery::RingState;
use crate::error::{AttemptError, AttemptFailure, ProxyError};
use crate::headers::{self, ClientAddr};
use crate::key;
use crate::limits;
use crate::pool::ResponseBody;
use crate::route::Matched;

mod attempt;
mod background;
mod body;
mod bounded;
mod budget;
mod endpoint;
pub mod exchange;
mod fallback;
mod request;
mod transition;
mod tunnels;
pub mod upgrade;
pub mod upstream;
mod watched;
mod write;

pub use exchange::Exchange;
pub use tunnels::Tunnels;
pub use upstream::Upstream;

use attempt::{ClientSide, Failed, Window};
use body::RequestBody;
use endpoint::{Endpoint, Endpoints, Targets};
use fallback::Fallback;
use request::{is_idempotent, to_client, upstream_path, upstream_request};
use transition::OldRing;
use write::Replicas;

/// Forwards one routed request, retrying on the next instance of its
/// preference list where SPEC §5 allows. `body` is `None` for a request
/// without one (the cache's own requests).
///
/// # Errors
///
/// The [`ProxyError`] to answer with: the client's (no key, a bad or late
/// body), the proxy's (no ring yet) or the instances' (every attempt
/// failed, or a replicated write missed its quorum).
pub async fn forward(
    upstream: &Upstream,
    route: &Matched<'_>,
    parts: &mut Parts,
    body: Option<Incoming>,
    client: &ClientAddr,
    exchange: &mut Exchange,
) -> Result<Response<Body>, ProxyError> {
    let config = &upstream.config;
    let Located {
        position,
        state,
        endpoints,
        point,
    } = locate(upstream, parts, exchange)?;
    let snapshot = &state.current;
    let read = parts.method == Method::GET || parts.method == Method::HEAD;
    let mut targets = Targets::at(snapshot, &endpoints, point, &upstream.health, read);
    if let (Some(bound), true) = (config.load_bound, read) {
        targets = bounded::bounded(targets, bound, upstream, snapshot, &endpoints, point);
    }
    let path = upstream_path(&parts.uri, route.strip)?;
    headers::request_to_upstream(parts, client);
    if let Some(replicas) =
        Replicas::for_request(upstream, snapshot, &endpoints, &parts.method, position)
    {
        // Boxed, as the other rare branches below: a request's future is
        // as large as its largest branch, and hyper moves it twice per
        // request.
        return Box::pin(replicas.write(parts, &path, body, route.max_body, exchange)).await;
    }
    let body = body
        .map(|body| limits::limit_body(body, route.max_body, config.body_timeout))
        .transpose()?;
    // The clock is read once for the deadline, the retry budget and the
    // first attempt; again only after waiting for a body.
    let (mut body, now) = match RequestBody::at_once(body) {
        Ok(body) => (body, Instant::now()),
        Err(body) => {
            let prepare = RequestBody::prepare(body, config.retry_body_limit, route.max_body);
            (
                limits::body_within(config.deadline, prepare).await?,
                Instant::now(),
            )
        }
    };
    upstream.budget.deposit_at(now);
    let deadline = now + config.deadline;
    Walk {
        upstream,
        old_ring: OldRing::for_request(upstream, &state, &parts.method, position, deadline),
        replay_safe: is_idempotent(&parts.method) || body.is_empty(),
        targets: &targets,
        parts,
        path: &path,
        body: &mut body,
        max_body: route.max_body,
        deadline,
        first_attempt_at: Some(now),
        stale_retried: false,
    }
    .try_in_order(exchange)
    .await
}

/// Where a request's key falls: its position, the ring state it is read
/// on (held for the request's life), that ring's endpoints, and the ring
/// point of the position (`None` for SRV balancing or an empty ring).
struct Located {
    position: Token,
    state: Arc<RingState>,
    endpoints: Arc<Endpoints>,
    point: Option<usize>,
}

/// Finds where `parts`' key falls on the ring in use, and counts the
/// request there (`crate::load`: its range, its primary and, if sampled,
/// its key), once per request, where the ring point is found anyway.
///
/// Not async, so that the key (borrowed from `parts`) never becomes part
/// of `forward`'s future: hyper moves that future twice per request, and
/// a few bytes more can take its copy past glibc's `rep movsb` threshold.
///
/// # Errors
///
/// The client's when the request has no key; the proxy's when there is no
/// ring yet.
fn locate(
    upstream: &Upstream,
    parts: &Parts,
    exchange: &mut Exchange,
) -> Result<Located, ProxyError> {
    let key = key::extract(&upstream.config.key, parts)?;
    let position = Token::of_key(&key);
    exchange.position = Some(position);
    let state = upstream.ring_state()?;
    let endpoints = upstream.endpoints.get(&state.current, &upstream.metrics);
    let point = endpoints.count(position);
    upstream.hot.request(position, &key);
    Ok(Located {
        position,
        state,
        endpoints,
        point,
    })
}

/// One request's walk down its preference list. (It borrows the request
/// from `forward` rather than owning it: a future keeps a slot for each
/// value it moves on, and hyper moves the whole request future twice per
/// request.)
struct Walk<'a> {
    upstream: &'a Upstream,
    targets: &'a Targets<'a>,
    /// The replaced ring to try after a `404`, during a transition.
    old_ring: Option<OldRing<'a>>,
    parts: &'a mut Parts,
    path: &'a PathAndQuery,
    body: &'a mut RequestBody,
    /// The route's `max_body`.
    max_body: Option<u64>,
    deadline: Instant,
    /// The clock reading the deadline was set at: the first attempt's
    /// start, taken by it.
    first_attempt_at: Option<Instant>,
    /// Whether the request may reach an instance twice: idempotent, or
    /// without a body.
    replay_safe: bool,
    /// At most one attempt per request is made again on the same instance,
    /// after a kept-alive connection the instance had closed.
    stale_retried: bool,
}

/// One attempt to make.
struct NextAttempt {
    request: Request<Body>,
    window: Window,
    /// Whether its timeout is the rest of the deadline.
    cut_by_deadline: bool,
}

/// Why the walk ended before the end of the preference list.
enum Stop {
    /// The request's deadline passed.
    Deadline,
    /// The retry budget had nothing left.
    Budget,
    /// The body was streamed to an instance and cannot be sent again.
    BodySpent,
    /// The request is not idempotent and its body may have reached this
    /// instance.
    NotReplaySafe(InstanceName),
}

// === impl Walk ===

impl Walk<'_> {
    /// Tries the instances in order until one answers (a status not in
    /// `retry_on`), the list ends, or SPEC §5 forbids another try.
    ///
    /// The attempt is awaited here, not in a function of its own: each
    /// level of `async fn` keeps its own copy of what it hands down, and
    /// hyper moves the whole request future twice per request.
    async fn try_in_order(mut self, exchange: &mut Exchange) -> Result<Response<Body>, ProxyError> {
        let targets = self.targets;
        let mut failed = Vec::new();
        for index in 0..targets.len() {
            let Some(endpoint) = targets.get(index) else {
                continue;
            };
            if index > 0 && !self.upstream.retry_allowed() {
                return Err(self.give_up(failed, Some(Stop::Budget)));
            }
            let last = index + 1 == targets.len();
            // One attempt on this instance, and one more on a new
            // connection if a kept-alive connection the instance had
            // closed took it.
            let (outcome, cut_by_deadline) = loop {
                let NextAttempt {
                    request,
                    window,
                    cut_by_deadline,
                } = match self.next_attempt(endpoint, last, exchange) {
                    Ok(next) => next,
                    Err(stop) => return Err(self.give_up(failed, Some(stop))),
                };
                let client_side = ClientSide {
                    body: self.body,
                    max_body: self.max_body,
                };
                let sent = exchange.sending();
                let outcome = attempt::once(
                    &self.upstream.health,
                    &self.upstream.config.retry_on,
                    endpoint,
                    request,
                    false,
                    window,
                    Some(client_side),
                )
                .await;
                exchange.attempted(&endpoint.name, &outcome, sent);
                if !self.again_after(&outcome) {
                    break (outcome, cut_by_deadline);
                }
            };
            let failure = match outcome {
                Ok(response) => {
                    return Ok(self.answer(response, (index, endpoint), exchange).await)
                }
                Err(Failed::Client(fault)) => return Err(fault),
                Err(Failed::Instance(failure) | Failed::StaleConnection(failure)) => failure,
            };
            // Nothing was sent on a failed connect: the next instance may
            // always be tried.
            let sent = !matches!(failure, AttemptFailure::Connect(_));
            let deadline_passed = cut_by_deadline && matches!(failure, AttemptFailure::Timeout(_));
            failed.push(AttemptError {
                instance: endpoint.name.to_string(),
                reason: failure,
            });
            if deadline_passed {
                return Err(self.give_up(failed, Some(Stop::Deadline)));
            }
            if sent && !self.replay_safe && !last {
                let stop = Stop::NotReplaySafe(endpoint.name.clone());
                return Err(self.give_up(failed, Some(stop)));
            }
        }
        Err(self.give_up(failed, None))
    }

    /// The next attempt's request to `endpoint` (the `last` of the list,
    /// or not), under what is left of the deadline; or why there is none.
    fn next_attempt(
        &mut self,
        endpoint: &Endpoint,
        last: bool,
        exchange: &mut Exchange,
    ) -> Result<NextAttempt, Stop> {
        let now = self.first_attempt_at.take().unwrap_or_else(Instant::now);
        let remaining = self.deadline.saturating_duration_since(now);
        if remaining.is_zero() {
            return Err(Stop::Deadline);
        }
        let body = self.body.for_attempt().ok_or(Stop::BodySpent)?;
        exchange.attempt(&endpoint.name);
        let try_timeout = self.upstream.config.try_timeout.min(remaining);
        // Copied while a transition read or a second try on this instance
        // may still need them.
        let take_headers =
            last && self.old_ring.is_none() && (self.stale_retried || !self.replay_safe);
        let mut request = upstream_request(self.parts, endpoint, self.path, body, take_headers);
        // SPEC §13: the instance's `1xx` go on to the client. (Not on the
        // rarer ways below: replica writes, whose answers race, and the
        // reads a `404` sends further; nor from HTTP/2 instances, whose
        // `1xx` hyper's client does not report: registering costs
        // allocations.)
        if self.upstream.config.upstream_protocol == UpstreamProtocol::Http1 {
            exchange.interim.forward_from(&mut request);
        }
        Ok(NextAttempt {
            request,
            window: Window {
                started: now,
                timeout: try_timeout,
            },
            cut_by_deadline: try_timeout == remaining,
        })
    }

    /// Whether `outcome` sends the request once more to the same instance:
    /// a kept-alive connection the instance had closed took it, and the
    /// request may be sent twice (at most once per request).
    fn again_after(&mut self, outcome: &Result<Response<ResponseBody>, Failed>) -> bool {
        let again = matches!(outcome, Err(Failed::StaleConnection(_)))
            && self.replay_safe
            && !self.stale_retried;
        self.stale_retried |= again;
        again
    }

    /// The answer of `endpoint`, the `index`-th instance tried, for the
    /// client; a GET or HEAD's `404` is tried further first (see
    /// [`Walk::not_found`]).
    async fn answer(
        &mut self,
        response: Response<ResponseBody>,
        (index, endpoint): (usize, &Endpoint),
        exchange: &mut Exchange,
    ) -> Response<Body> {
        if response.status() == StatusCode::NOT_FOUND
            && (self.old_ring.is_some() || self.falls_back())
        {
            return Box::pin(self.not_found(response, (index, endpoint), exchange)).await;
        }
        to_client(response, self.upstream, &endpoint.name)
    }

    /// The answer after `endpoint`, the `index`-th instance tried, said
    /// `not_found`: first the rest of the preference list
    /// (`read_fallback_404`), then, during a transition, the replaced
    /// ring's list, skipping every instance already asked. One walk down
    /// the new list and then the old one, so that no instance is asked
    /// twice and the new owners, which a transition is copying to, are
    /// asked first.
    async fn not_found(
        &mut self,
        not_found: Response<ResponseBody>,
        (index, endpoint): (usize, &Endpoint),
        exchange: &mut Exchange,
    ) -> Response<Body> {
        let (not_found, asked) = if self.falls_back() {
            match self.fall_back(not_found, (index, endpoint), exchange).await {
                Fallback::Found(found) => return found,
                Fallback::NotFound(not_found, asked) => (not_found, asked),
            }
        } else {
            (not_found, index + 1)
        };
        match self.old_ring.take() {
            Some(old_ring) => {
                old_ring
                    .read(
                        self.parts,
                        self.path,
                        self.body,
                        (self.targets, asked),
                        (not_found, &endpoint.name),
                        exchange,
                    )
                    .await
            }
            None => to_client(not_found, self.upstream, &endpoint.name),
        }
    }

    /// The error that ends the walk after the attempts `failed`.
    fn give_up(&self, failed: Vec<AttemptError>, stop: Option<Stop>) -> ProxyError {
        let note = match &stop {
            None | Some(Stop::Deadline) => None,
            Some(Stop::Budget) => {
                Some("retry budget exhausted: no further instance tried".to_owned())
            }
            Some(Stop::BodySpent) => Some(
                "the request body was streamed to the previous instance and cannot be sent again"
                    .to_owned(),
            ),
            Some(Stop::NotReplaySafe(name)) => Some(format!(
                "not retried: {} is not idempotent and its body may have reached {name}",
                self.parts.method
            )),
        };
        ProxyError::AttemptsFailed {
            service: self.upstream.config.name.clone(),
            attempts: failed,
            deadline_passed: matches!(stop, Some(Stop::Deadline)),
            note,
        }
    }
}
