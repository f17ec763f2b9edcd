//! Forwarding (SPEC §5): a request's way from route to response.
//!
//! listener -> [`handle`]: route -> key -> preference list from the current
//! ring -> attempts on each instance of the list in order, under a per-try
//! timeout, an overall deadline and a retry budget -> response.
//!
//! The ring is read once per request from its `ArcSwap` (no lock, no wait)
//! and held for the request's life, so a ring swapped in meanwhile never
//! changes the instances a request walks.
//!
//! # Layout
//!
//! - [`attempt`]: one attempt on one instance.
//! - [`body`]: request bodies, buffered for retries or streamed once.
//! - [`budget`]: the retry budget.
//! - [`endpoint`]: each instance of the ring in use as requests need it,
//!   built once per ring, and the order a request tries them in.
//! - [`pool`]: the keep-alive connections to the instances.
//! - [`transition`]: reads tried on the replaced ring during a transition.
//! - [`write`]: writes to every replica of a key (`writes = "all"`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::header::{self, Entry};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use shardproxy_ring::{InstanceName, Token};
use tower::retry::budget::Budget;

use crate::app::{App, Service};
use crate::cache::{self, object::Outcome};
use crate::config::ServiceConfig;
use crate::error::{AttemptError, AttemptFailure, ProxyError};
use crate::headers;
use crate::key;
use crate::limits::{self, Shed};
use crate::route::Matched;

mod attempt;
mod body;
mod budget;
mod endpoint;
pub mod pool;
mod transition;
mod write;

use attempt::{ClientSide, Failed};
use body::RequestBody;
use budget::RetryBudget;
use endpoint::{Endpoint, EndpointCache, Targets};
use pool::{Pool, ResponseBody, Settings};
use transition::OldRing;
use write::{Background, Replicas};

/// Errors of bodies in either direction.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of requests to instances and responses to clients.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A service's way to its instances: its keep-alive connections, the
/// retry budget that keeps a failing fleet from a retry storm, what
/// requests need of the instances of its current ring, and the bound on its
/// background replica writes.
pub struct Upstream {
    budget: RetryBudget,
    endpoints: EndpointCache,
    writes: Background,
}

impl Upstream {
    /// The connections and budget for `service`.
    pub fn new(service: &ServiceConfig) -> Upstream {
        let pool = Pool::new(Settings {
            connect_timeout: service.try_timeout,
            max_idle: service.upstream_max_idle,
            idle_timeout: service.upstream_idle_timeout,
        });
        // tower's budget arithmetic: deposits made over the last 10 s allow
        // `retry_budget` retries each, plus `retry_min_per_second`.
        let budget = RetryBudget::new(
            Duration::from_secs(10),
            service.retry_min_per_second,
            service.retry_budget as f32,
        );
        Upstream {
            endpoints: EndpointCache::new(pool),
            budget,
            writes: Background::default(),
        }
    }

    /// The connections, for health checks.
    pub fn pool(&self) -> &Pool {
        self.endpoints.pool()
    }
}

/// Serves one client request. Never fails: every error becomes a response
/// that says what went wrong.
pub async fn handle(
    app: Arc<App>,
    request: Request<Incoming>,
    client: SocketAddr,
) -> Response<Body> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    if let Some(problem) = headers::host_problem(&parts.headers, parts.version) {
        return ProxyError::BadHost(problem).into_response();
    }
    let Some(matched) = app.router.route(&parts) else {
        return ProxyError::NoRoute {
            host: crate::route::request_host(&parts).map(str::to_owned),
            path: parts.uri.path().to_owned(),
        }
        .into_response();
    };
    let Some(service) = app.services.get(matched.service) else {
        return ProxyError::NoRoute {
            host: None,
            path: parts.uri.path().to_owned(),
        }
        .into_response();
    };
    let mut exchange = Exchange {
        logged: app.config.log.access_log,
        ..Exchange::default()
    };
    let Some(_in_flight) = service.in_flight.try_acquire() else {
        service.metrics.shed();
        let response = Shed {
            service: &service.config.name,
            max: service.in_flight.max(),
        }
        .into_response();
        service
            .metrics
            .request(response.status().as_u16(), started.elapsed());
        return response;
    };
    let response = match &service.cache {
        Some(_) if parts.method == Method::GET || parts.method == Method::HEAD => {
            // Boxed: the cache's future is several times the size of a
            // pass-through, and every request's future is as large as its
            // largest branch. hyper moves it twice per request, so inline it
            // cost every request ~11,000 instructions of memcpy.
            Box::pin(cache::serve(
                &app,
                matched,
                parts,
                body,
                client,
                &mut exchange,
            ))
            .await
        }
        Some(cache) => {
            let target = cache::Unsafe::of(&parts);
            let response =
                forward_or_error(service, &matched, parts, body, client, &mut exchange).await;
            if let Some(target) = target {
                target.done(cache, response.status(), response.headers());
            }
            response
        }
        None => forward_or_error(service, &matched, parts, body, client, &mut exchange).await,
    };
    let elapsed = started.elapsed();
    service.metrics.request(response.status().as_u16(), elapsed);
    if app.config.log.access_log {
        tracing::info!(
            target: "access",
            service = %service.config.name,
            key_hash = %exchange.position.map(|p| p.to_string()).unwrap_or_default(),
            instance = %exchange.instance.as_ref().map_or("", InstanceName::as_str),
            attempts = exchange.attempts,
            status = response.status().as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            cache = exchange.cache.map_or("none", Outcome::as_str),
        );
    }
    response
}

/// [`forward`], its error as the response.
async fn forward_or_error(
    service: &Service,
    route: &Matched<'_>,
    parts: Parts,
    body: Incoming,
    client: SocketAddr,
    exchange: &mut Exchange,
) -> Response<Body> {
    match forward(service, route, parts, Some(body), client, exchange).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(service = %service.config.name, %error, "request failed");
            error.into_response()
        }
    }
}

/// What one request did, for the access log.
#[derive(Debug, Default)]
pub(crate) struct Exchange {
    /// Whether the access log wants this: without it, no instance name is
    /// kept (no reference count touched per attempt).
    logged: bool,
    /// The key's position, once extracted.
    position: Option<Token>,
    /// The instance whose answer was returned (or the last one tried).
    instance: Option<InstanceName>,
    /// Attempts made.
    attempts: u32,
    /// What the cache did, for a cache-enabled service.
    pub(crate) cache: Option<Outcome>,
}

/// Methods that may be repeated (SPEC §5).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// The path and query to send upstream: the request's, minus the route's
/// prefix when it strips one (keeping a leading `/`).
fn upstream_path(uri: &Uri, strip: Option<&str>) -> Result<PathAndQuery, ProxyError> {
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

/// Forwards one routed request, retrying on the next instance of its
/// preference list where SPEC §5 allows. `body` is `None` for a request
/// without one (the cache's own requests).
pub(crate) async fn forward(
    service: &Service,
    route: &Matched<'_>,
    mut parts: Parts,
    body: Option<Incoming>,
    client: SocketAddr,
    exchange: &mut Exchange,
) -> Result<Response<Body>, ProxyError> {
    let config = &service.config;
    let position = Token::of_key(&key::extract(&config.key, &parts)?);
    exchange.position = Some(position);
    let state = service
        .ring
        .load_state()
        .ok_or_else(|| ProxyError::NoRing {
            service: config.name.clone(),
            detail: service.ring.status().last_error.map_or_else(
                || "discovery has not finished".to_owned(),
                |(_, e)| e.to_string(),
            ),
        })?;
    let snapshot = &state.current;
    let endpoints = service.upstream.endpoints.get(snapshot, &service.metrics);
    let targets = Targets::new(&snapshot.table, &endpoints, position, &service.health);
    let path = upstream_path(&parts.uri, route.strip)?;
    headers::to_upstream(&mut parts.headers, &parts.uri, parts.version, client.ip());
    if let Some(replicas) =
        Replicas::for_request(service, snapshot, &endpoints, &parts.method, position)
    {
        // Boxed, as the other rare branches below: a request's future is
        // as large as its largest branch, and hyper moves it twice per
        // request (see `handle`).
        return Box::pin(replicas.write(&mut parts, &path, body, route.max_body, exchange)).await;
    }
    let body = body
        .map(|body| limits::limit_body(body, route.max_body))
        .transpose()?;
    let mut body = limits::body_within(
        config.deadline,
        RequestBody::prepare(body, config.retry_body_limit, route.max_body),
    )
    .await?;
    let replay_safe = is_idempotent(&parts.method) || body.is_empty();

    let upstream = &service.upstream;
    upstream.budget.deposit();
    let deadline = Instant::now() + config.deadline;
    let old_ring = OldRing::for_request(service, &state, &parts.method, position, deadline);
    let mut attempts: Vec<AttemptError> = Vec::new();
    let mut deadline_passed = false;
    let mut note = None;

    // At most one attempt per request is made again on the same instance,
    // after a kept-alive connection the instance had closed.
    let mut stale_retried = false;

    'targets: for index in 0..targets.len() {
        let Some(endpoint) = targets.get(index) else {
            continue;
        };
        let name = &endpoint.name;
        let last = index + 1 == targets.len();
        if index > 0 {
            if !upstream.budget.withdraw() {
                service.metrics.retry_refused();
                note = Some("retry budget exhausted: no further instance tried".to_owned());
                break;
            }
            service.metrics.retry();
        }
        // One attempt on this instance, and one more on a new connection
        // if a kept-alive connection the instance had closed took it.
        let (outcome, cut_by_deadline) = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                deadline_passed = true;
                break 'targets;
            }
            let Some(attempt_body) = body.for_attempt() else {
                note = Some(
                    "the request body was streamed to the previous instance and cannot be sent again"
                        .to_owned(),
                );
                break 'targets;
            };
            exchange.attempts += 1;
            if exchange.logged {
                exchange.instance = Some(name.clone());
            }
            let try_timeout = config.try_timeout.min(remaining);
            // Copied while a transition read or a second try on this
            // instance may still need them.
            let take_headers = last && old_ring.is_none() && (stale_retried || !replay_safe);
            let request = upstream_request(&mut parts, endpoint, &path, attempt_body, take_headers);
            let outcome = attempt::once(
                &service.health,
                &config.retry_on,
                endpoint,
                request,
                try_timeout,
                Some(ClientSide {
                    body: &body,
                    max_body: route.max_body,
                }),
            )
            .await;
            match outcome {
                Err(Failed::StaleConnection(_)) if replay_safe && !stale_retried => {
                    stale_retried = true;
                }
                outcome => break (outcome, try_timeout == remaining),
            }
        };
        let failure = match outcome {
            Ok(response) => match old_ring.filter(|_| response.status() == StatusCode::NOT_FOUND) {
                Some(old_ring) => {
                    let asked = (&targets, index + 1);
                    let read =
                        old_ring.read(&mut parts, &path, &mut body, asked, response, exchange);
                    return Ok(Box::pin(read).await);
                }
                None => return Ok(to_client(response)),
            },
            Err(Failed::Client(fault)) => return Err(fault),
            Err(Failed::Instance(failure @ AttemptFailure::Connect(_))) => {
                attempts.push(AttemptError {
                    instance: name.to_string(),
                    reason: failure,
                });
                // Nothing was sent: always safe to try the next instance.
                continue;
            }
            Err(Failed::Instance(failure) | Failed::StaleConnection(failure)) => {
                if matches!(failure, AttemptFailure::Timeout(_)) && cut_by_deadline {
                    deadline_passed = true;
                }
                failure
            }
        };
        attempts.push(AttemptError {
            instance: name.to_string(),
            reason: failure,
        });
        if deadline_passed {
            break;
        }
        if !replay_safe && !last {
            note = Some(format!(
                "not retried: {} is not idempotent and its body may have reached {name}",
                parts.method
            ));
            break;
        }
    }
    Err(ProxyError::Upstream {
        service: config.name.clone(),
        attempts,
        deadline_passed,
        note,
    })
}

/// The request for one attempt: same method and headers, HTTP/1.1 in
/// origin-form to the instance, with the instance's address as `Host` if
/// the client sent none (HTTP/1.0; set on this attempt's headers only, so a
/// retry names its own instance). The headers are copied, except for the
/// `last` attempt, which takes them.
fn upstream_request(
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
    if let (Entry::Vacant(entry), Some(host)) =
        (request.headers_mut().entry(header::HOST), &endpoint.host)
    {
        entry.insert(host.clone());
    }
    request
}

/// The instance's response for the client: hop-by-hop headers removed, the
/// body streamed.
fn to_client(response: Response<ResponseBody>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync())
}

/// An error with its causes, `outer: inner: innermost`, so that "client
/// error (Connect)" also says "connection refused".
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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
