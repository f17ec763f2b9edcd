//! One client request, outermost step first: the whole way of a request
//! through the proxy, on one screen.
//!
//! listener -> [`handle`]: request id -> host check -> route -> shed ->
//! upgrade (relayed after its `101`), cache (GET and HEAD of a cached
//! service) or forward -> count -> error body, id and access log line ->
//! response.
//!
//! Every step below this one takes the per-service [`Upstream`] handle it
//! needs, never the whole [`App`]; every error becomes a response here, by
//! [`ProxyError::into_response`], the one place a status is chosen.

use std::future::Future;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderValue, Method, Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::access_log::{AccessLog, Asked, Logged, Pending};
use crate::app::App;
use crate::body::Body;
use crate::cache::{self, Cache};
use crate::error::{self, ProxyError};
use crate::forward::{self, Exchange, Upstream};
use crate::headers::ClientAddr;
use crate::inbound;
use crate::interim::ToClient;
use crate::metrics::CacheOutcome;
use crate::request_id::{self, X_REQUEST_ID};
use crate::route::{self, Matched};

/// Serves one client request with the state `app`. Never fails: every
/// error becomes a response that says what went wrong. Every answer
/// carries the request's id; the access log, when on, gets its line once
/// the answer is sent. The `1xx` of the instance that answers go to the
/// client by `interim`.
///
/// The request is taken apart before the future is made, and the future
/// lends its parts to the steps below rather than moving them: a future
/// keeps a slot for each argument it moves from, and hyper moves the
/// request's future several times per request.
pub fn handle(
    app: Arc<App>,
    request: Request<Incoming>,
    client: ClientAddr,
    interim: ToClient,
) -> impl Future<Output = Response<Body>> + Send {
    let (mut parts, body) = request.into_parts();
    async move {
        let started = Instant::now();
        let id = request_id::of(&parts.headers);
        let asked = app
            .access_log
            .as_ref()
            .map(|log| (Arc::clone(log), Asked::of(&parts, &client)));
        let mut exchange = Exchange::new(asked.is_some(), interim);
        let response = serve(&app, &mut parts, body, &client, &id, &mut exchange, started).await;
        finish(&app, response, id, asked, exchange, started)
    }
}

/// Gives `response` its id, the error body of the proxy's own errors, and
/// the access log line when the log is on.
fn finish(
    app: &App,
    mut response: Response<Body>,
    id: HeaderValue,
    asked: Option<(Arc<AccessLog>, Asked)>,
    exchange: Exchange,
    started: Instant,
) -> Response<Body> {
    // The proxy's own errors get their body here, where the id is known.
    let error = error::write_error_body(&mut response, &id, app.config.server.error_detail);
    let Some((log, asked)) = asked else {
        response.headers_mut().insert(X_REQUEST_ID, id);
        return response;
    };
    response.headers_mut().insert(X_REQUEST_ID, id.clone());
    let status = response.status().as_u16();
    let line = Pending::new(log, asked, id, status, exchange, error, started);
    response.map(|body| Logged::new(body, line).boxed_unsync())
}

/// The steps of [`handle`] for one request, with the id `id`: normalize,
/// route, shed, then the cache or the instances.
async fn serve(
    app: &App,
    parts: &mut Parts,
    body: Incoming,
    client: &ClientAddr,
    id: &HeaderValue,
    exchange: &mut Exchange,
    started: Instant,
) -> Response<Body> {
    // The request as the instance will see it, before anything reads it:
    // one valid Host, nothing that `Connection` names (SPEC §9.8).
    if let Err(error) = inbound::normalize(parts) {
        return error.into_response();
    }
    // RFC 9110 §7.6.2: a TRACE or OPTIONS that may go no further.
    if let Some(response) = inbound::answered_here(parts) {
        return response;
    }
    // SPEC §9.2: the instance sees the id the client will.
    parts.headers.insert(X_REQUEST_ID, id.clone());
    // SPEC §4: the first matching route names the service; none is 404.
    let Some((matched, service)) = app.route(parts) else {
        return ProxyError::NoRoute {
            host: route::request_host(parts).map(str::to_owned),
            path: parts.uri.path().to_owned(),
        }
        .into_response();
    };
    let upstream = &service.upstream;
    if exchange.logged {
        exchange.service = Some(upstream.config.name.clone());
    }
    // Shed, don't queue: a fast 503 keeps memory bounded by the limit.
    let Some(in_flight) = upstream.in_flight.try_acquire() else {
        upstream.metrics.shed();
        let response = ProxyError::Shed {
            service: upstream.config.name.clone(),
            max: upstream.in_flight.max(),
        }
        .into_response();
        upstream
            .metrics
            .request(response.status().as_u16(), started.elapsed());
        return response;
    };
    // An upgrade (SPEC §10) goes straight to the instances, past the
    // cache, and keeps its place among the requests in flight while it is
    // relayed. GET and HEAD of a cached service go through the cache; the
    // rest straight to the instances.
    let response = match &service.cache {
        // Boxed, as the other rare branches.
        _ if inbound::Upgrade::is_asked(parts) => {
            if service.cache.is_some() && exchange.logged {
                exchange.cache = Some(CacheOutcome::Pass);
            }
            Box::pin(forward::upgrade::forward(
                upstream, &matched, parts, body, client, exchange, in_flight,
            ))
            .await
            .unwrap_or_else(|error| failed(upstream, error))
        }
        // A hit is answered at once. The rest is boxed, as the other rare
        // branch: every request's future is as large as its largest
        // branch, the cache's is several times the size of a
        // pass-through, and hyper moves it twice per request.
        Some(cache) if parts.method == Method::GET || parts.method == Method::HEAD => {
            match cache::look_first(upstream, cache, matched, client, parts, &body, exchange) {
                cache::First::Answered(response) => response,
                cache::First::Missed(missed) => {
                    Box::pin(cache::serve(missed, parts, body, exchange)).await
                }
            }
        }
        Some(cache) => {
            let forward = invalidating(upstream, cache, &matched, parts, body, client, exchange);
            Box::pin(forward).await
        }
        None => forward::forward(upstream, &matched, parts, Some(body), client, exchange)
            .await
            .unwrap_or_else(|error| failed(upstream, error)),
    };
    // Counted once, whoever answered.
    upstream
        .metrics
        .request(response.status().as_u16(), started.elapsed());
    response
}

/// Forwards an unsafe request to a cached service and, when it succeeds,
/// removes what the cache holds for its target (RFC 9111 §4.4).
async fn invalidating(
    upstream: &Upstream,
    cache: &Cache,
    matched: &Matched<'_>,
    parts: &mut Parts,
    body: Incoming,
    client: &ClientAddr,
    exchange: &mut Exchange,
) -> Response<Body> {
    let target = cache::Unsafe::of(parts);
    let response = forward::forward(upstream, matched, parts, Some(body), client, exchange)
        .await
        .unwrap_or_else(|error| failed(upstream, error));
    if let Some(target) = target {
        target.done(cache, response.status(), response.headers());
    }
    response
}

/// The answer to a request that could not be forwarded.
fn failed(upstream: &Upstream, error: ProxyError) -> Response<Body> {
    tracing::debug!(
        service = %upstream.config.name,
        side = error.side().as_str(),
        %error,
        "request failed"
    );
    error.into_response()
}
