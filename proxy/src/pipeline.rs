//! One client request, outermost step first: the whole way of a request
//! through the proxy, on one screen.
//!
//! listener -> [`handle`]: host check -> route -> shed -> cache (GET and
//! HEAD of a cached service) or forward -> count and log -> response.
//!
//! Every step below this one takes the per-service [`Upstream`] handle it
//! needs, never the whole [`App`]; every error becomes a response here, by
//! [`ProxyError::into_response`], the one place a status is chosen.

use std::net::SocketAddr;
use std::sync::Arc;

use http::request::Parts;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use shardproxy_ring::InstanceName;
use tokio::time::Instant;

use crate::app::App;
use crate::body::Body;
use crate::cache::{self, Cache};
use crate::error::ProxyError;
use crate::forward::{self, Exchange, Upstream};
use crate::inbound;
use crate::metrics::CacheOutcome;
use crate::route::{self, Matched};

/// Serves one client request with the state `app`. Never fails: every
/// error becomes a response that says what went wrong.
pub async fn handle(
    app: Arc<App>,
    request: Request<Incoming>,
    client: SocketAddr,
) -> Response<Body> {
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    // The request as the instance will see it, before anything reads it:
    // one valid Host, nothing that `Connection` names (SPEC §9.8).
    if let Err(error) = inbound::normalize(&mut parts) {
        return error.into_response();
    }
    // RFC 9110 §7.6.2: a TRACE or OPTIONS that may go no further.
    if let Some(response) = inbound::answered_here(&parts) {
        return response;
    }
    // SPEC §4: the first matching route names the service; none is 404.
    let Some((matched, service)) = app.route(&parts) else {
        return ProxyError::NoRoute {
            host: route::request_host(&parts).map(str::to_owned),
            path: parts.uri.path().to_owned(),
        }
        .into_response();
    };
    let upstream = &service.upstream;
    // Shed, don't queue: a fast 503 keeps memory bounded by the limit.
    let Some(_in_flight) = upstream.in_flight.try_acquire() else {
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
    // GET and HEAD of a cached service go through the cache; the rest
    // straight to the instances.
    let mut exchange = Exchange::new(app.config.log.access_log);
    let response = match &service.cache {
        // Boxed, as the other rare branch: every request's future is as
        // large as its largest branch, the cache's is several times the
        // size of a pass-through, and hyper moves it twice per request.
        Some(cache) if parts.method == Method::GET || parts.method == Method::HEAD => {
            let serve = cache::serve(upstream, cache, matched, parts, body, client, &mut exchange);
            Box::pin(serve).await
        }
        Some(cache) => {
            let forward = invalidating(
                upstream,
                cache,
                &matched,
                parts,
                body,
                client,
                &mut exchange,
            );
            Box::pin(forward).await
        }
        None => forward::forward(upstream, &matched, parts, Some(body), client, &mut exchange)
            .await
            .unwrap_or_else(|error| failed(upstream, error)),
    };
    // Counted and logged once, whoever answered.
    record(upstream, &response, &exchange, started);
    response
}

/// Forwards an unsafe request to a cached service and, when it succeeds,
/// removes what the cache holds for its target (RFC 9111 §4.4).
async fn invalidating(
    upstream: &Upstream,
    cache: &Cache,
    matched: &Matched<'_>,
    parts: Parts,
    body: Incoming,
    client: SocketAddr,
    exchange: &mut Exchange,
) -> Response<Body> {
    let target = cache::Unsafe::of(&parts);
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

/// Counts the answer in the service's metrics and writes the access log
/// line, when it is on.
fn record(upstream: &Upstream, response: &Response<Body>, exchange: &Exchange, started: Instant) {
    let elapsed = started.elapsed();
    upstream
        .metrics
        .request(response.status().as_u16(), elapsed);
    if exchange.logged {
        tracing::info!(
            target: "access",
            service = %upstream.config.name,
            key_hash = %exchange.position.map(|p| p.to_string()).unwrap_or_default(),
            instance = %exchange.instance.as_ref().map_or("", InstanceName::as_str),
            attempts = exchange.attempts,
            status = response.status().as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            cache = exchange.cache.map_or("none", CacheOutcome::as_str),
        );
    }
}
