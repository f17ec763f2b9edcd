//! Read fallbacks and read repair (SPEC §9.4): with `read_fallback_404`, a
//! GET or HEAD whose first answering instance said `404` is tried on the
//! rest of its preference list in order, and the first `2xx` or `3xx`
//! answer is returned, otherwise that first `404`. With `writes = "all"` a
//! replica that was down during a write (or came back empty) misses the
//! object its peers hold; without this it would answer `404` for it as long
//! as it is the key's primary.
//!
//! The instances after the one that answered are tried as the walk orders
//! them, except ejected ones: a `404` is an answer, not a failure, and an
//! instance known to be failing is no place to look for an object the
//! healthy replicas do not hold. The reads stay within the request's
//! deadline, each under the per-try timeout, and outside the retry budget:
//! they retry no failure (the fleet answered), so they cannot feed a retry
//! storm, and they are bounded by the preference list's length. An attempt
//! that fails, or answers anything but `2xx`/`3xx`, moves on to the next
//! instance; the `404` stands if none found the object.
//!
//! With `read_repair`, the object found is written back to each instance
//! that answered `404`, in the background: a `PUT` of the same path and
//! query with the found body and `Content-Type`, and `If-None-Match: *`, so
//! that it never overwrites an object written meanwhile. That needs the body
//! whole: the found answer is read into memory when it is a `200` to a GET
//! with a `Content-Length` of at most the service's `max_body` (the
//! replica-write buffer limit), within the per-try timeout, and the client
//! gets it from memory. Any other found answer is streamed as usual and its
//! repairs are counted as skipped; a found body that breaks or stalls while
//! being read makes that attempt a failed one and the walk goes on. A found
//! answer with a `Content-Encoding` is not repaired with either: its body is
//! the encoding the client asked for, not the object. Repairs share the
//! service's background-write permits with replica writes; past the limit
//! they are skipped. A repair is the proxy's own write, not a client's
//! attempt: it goes to the instance's pooled connections directly, and is
//! counted in `shardproxy_read_repairs_total`, not in the instance's
//! attempts or its health.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use shardproxy_ring::{InstanceName, Token};
use tokio::time::Instant;

use super::attempt;
use super::endpoint::Endpoint;
use super::exchange::Exchange;
use super::request::{for_client, to_client, upstream_request};
use super::Walk;
use crate::body::{self, Body};
use crate::metrics::replication::ReadRepair;
use crate::metrics::ServiceMetrics;
use crate::pool::{Connections, ResponseBody};

/// What a fallback read came to.
pub(super) enum Fallback {
    /// An instance had the object: the client's answer.
    Found(Response<Body>),
    /// None had it: the first `404`, and how many instances of the list
    /// have been asked (for a transition read to skip).
    NotFound(Response<ResponseBody>, usize),
}

/// A found answer, as read repair takes it.
enum Found {
    /// Read whole: the client's answer and the object to write back.
    Read(Response<Body>, Object),
    /// Not to be repaired with (not a `200` to a GET with a small enough
    /// `Content-Length` and no `Content-Encoding`): streamed to the client
    /// as it is.
    Unread(Response<ResponseBody>),
    /// Its body broke or stalled while being read.
    Broken,
}

/// An object to write back to the instances that missed it.
struct Object {
    body: Bytes,
    content_type: Option<HeaderValue>,
}

/// One repair: where it goes and what it sends.
struct Repair {
    service: String,
    position: Option<Token>,
    instance: InstanceName,
    connections: Arc<Connections>,
    request: Request<Body>,
    try_timeout: Duration,
    metrics: ServiceMetrics,
}

// === impl Walk ===

impl Walk<'_> {
    /// Whether a `404` to this request is tried on the rest of its list.
    pub(super) fn falls_back(&self) -> bool {
        self.upstream.config.read_fallback_404
            && matches!(self.parts.method, Method::GET | Method::HEAD)
    }

    /// Tries the instances after the `index`-th, which answered
    /// `not_found`, as the module documentation says.
    pub(super) async fn fall_back(
        &mut self,
        not_found: Response<ResponseBody>,
        (index, answered_by): (usize, &Endpoint),
        exchange: &mut Exchange,
    ) -> Fallback {
        let upstream = self.upstream;
        let config = &upstream.config;
        let metrics = upstream.metrics.replication();
        let mut missing: Vec<&Endpoint> = Vec::new();
        if config.read_repair {
            missing.push(answered_by);
        }
        let mut asked = index + 1;
        for n in index + 1..self.targets.len() {
            let Some(endpoint) = self.targets.get(n) else {
                continue;
            };
            if upstream.health.is_ejected(&endpoint.name) {
                continue;
            }
            // Ejected instances come last: those skipped at the end are
            // left to a transition read, which asks them whatever their
            // health.
            asked = n + 1;
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let Some(attempt_body) = self.body.for_attempt() else {
                break;
            };
            let request = upstream_request(self.parts, endpoint, self.path, attempt_body, false);
            exchange.attempt(&endpoint.name);
            let try_timeout = config.try_timeout.min(remaining);
            let sent = exchange.sending();
            let answer = attempt::once(
                &upstream.health,
                &config.retry_on,
                endpoint,
                request,
                false,
                attempt::Window::from_now(try_timeout),
                None,
            )
            .await;
            exchange.attempted(&endpoint.name, &answer, sent);
            let found = match answer {
                Ok(found) if found.status().is_success() || found.status().is_redirection() => {
                    found
                }
                Ok(other) => {
                    if other.status() == StatusCode::NOT_FOUND && config.read_repair {
                        missing.push(endpoint);
                    }
                    tokio::spawn(attempt::drain(other.into_body(), config.try_timeout));
                    continue;
                }
                Err(_) => continue,
            };
            let answer = if missing.is_empty() {
                to_client(found, upstream, &endpoint.name)
            } else {
                match self.read_whole(found, try_timeout).await {
                    Found::Read(answer, object) => {
                        self.repair(&missing, object, exchange.position);
                        answer
                    }
                    Found::Unread(found) => {
                        for _ in &missing {
                            metrics.read_repair(ReadRepair::Skipped);
                        }
                        to_client(found, upstream, &endpoint.name)
                    }
                    Found::Broken => continue,
                }
            };
            metrics.read_fallback(true);
            exchange.answered_by(&endpoint.name);
            tokio::spawn(attempt::drain(not_found.into_body(), config.try_timeout));
            return Fallback::Found(answer);
        }
        metrics.read_fallback(false);
        exchange.answered_by(&answered_by.name);
        Fallback::NotFound(not_found, asked)
    }

    /// `found` read whole when read repair can send it (see [`Found`]),
    /// within `within`.
    async fn read_whole(&self, found: Response<ResponseBody>, within: Duration) -> Found {
        let length = found
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse::<u64>().ok());
        let small = length.is_some_and(|length| length <= self.upstream.config.max_body);
        // An encoded body (gzip for the client's Accept-Encoding) is not the
        // object: written back as it is, it would be stored encoded.
        let encoded = found.headers().contains_key(header::CONTENT_ENCODING);
        if self.parts.method != Method::GET || found.status() != StatusCode::OK || !small || encoded
        {
            return Found::Unread(found);
        }
        let (mut head, body) = found.into_parts();
        // The instance frames the body by its Content-Length: a shorter
        // body is an error, never a truncated object.
        let Ok(Ok(collected)) = tokio::time::timeout(within, body.collect()).await else {
            return Found::Broken;
        };
        let bytes = collected.to_bytes();
        let content_type = head.headers.get(header::CONTENT_TYPE).cloned();
        for_client(&mut head);
        let answer = Response::from_parts(head, body::full(bytes.clone()));
        let object = Object {
            body: bytes,
            content_type,
        };
        Found::Read(answer, object)
    }

    /// Sends `object` to each instance of `missing` in the background, each
    /// holding one of the service's background-write permits (skipped when
    /// there is none left).
    fn repair(&self, missing: &[&Endpoint], object: Object, position: Option<Token>) {
        let upstream = self.upstream;
        let config = &upstream.config;
        for endpoint in missing {
            let Ok(permit) = Arc::clone(&upstream.writes.permits).try_acquire_owned() else {
                upstream
                    .metrics
                    .replication()
                    .read_repair(ReadRepair::Skipped);
                tracing::warn!(
                    service = %config.name,
                    instance = %endpoint.name,
                    "read repair skipped: the service's background writes are at their limit"
                );
                continue;
            };
            let repair = Repair {
                service: config.name.clone(),
                position,
                instance: endpoint.name.clone(),
                connections: Arc::clone(&endpoint.connections),
                request: self.repair_request(endpoint, &object),
                try_timeout: config.try_timeout,
                metrics: upstream.metrics.clone(),
            };
            tokio::spawn(async move {
                repair.send().await;
                drop(permit);
            });
        }
    }

    /// The `PUT` that writes `object` back to `endpoint`: the request's
    /// path and `Host`, and `If-None-Match: *`.
    fn repair_request(&self, endpoint: &Endpoint, object: &Object) -> Request<Body> {
        let mut request = Request::new(body::full(object.body.clone()));
        *request.method_mut() = Method::PUT;
        *request.uri_mut() = Uri::from(PathAndQuery::clone(self.path));
        let headers = request.headers_mut();
        if let Some(host) = self
            .parts
            .headers
            .get(header::HOST)
            .or(endpoint.host.as_ref())
        {
            headers.insert(header::HOST, host.clone());
        }
        if let Some(content_type) = &object.content_type {
            headers.insert(header::CONTENT_TYPE, content_type.clone());
        }
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        request
    }
}

// === impl Repair ===

impl Repair {
    /// Sends it under the per-try timeout; counts and logs how it ended.
    async fn send(self) {
        let answer = tokio::time::timeout(
            self.try_timeout,
            self.connections.send(self.request, Instant::now()),
        );
        let (outcome, reason) = match answer.await {
            Ok(Ok(response)) => {
                let status = response.status();
                attempt::drain(response.into_body(), self.try_timeout).await;
                match status {
                    status if status.is_success() => (ReadRepair::Ok, None),
                    StatusCode::PRECONDITION_FAILED => (ReadRepair::Exists, None),
                    status => (ReadRepair::Failed, Some(format!("answered {status}"))),
                }
            }
            Ok(Err(error)) => (ReadRepair::Failed, Some(crate::error::error_chain(&error))),
            Err(_) => (
                ReadRepair::Failed,
                Some(format!("no answer within {:?}", self.try_timeout)),
            ),
        };
        self.metrics.replication().read_repair(outcome);
        if let Some(reason) = reason {
            tracing::warn!(
                service = %self.service,
                key_hash = ?self.position,
                instance = %self.instance,
                %reason,
                "read repair failed"
            );
        }
    }
}
