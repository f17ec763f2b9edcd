//! The response cache (SPEC §6): a shared HTTP cache (RFC 9111) in front
//! of a service, with Varnish's request coalescing and grace.
//!
//! The pipeline sends a cache-enabled service's `GET` and `HEAD` requests
//! to [`look_first`], then, unless the store answered, to [`serve`], with
//! the service's [`Upstream`], which is what fetches a miss: the cache
//! calls forwarding, never the pipeline. (Two steps so that a hit is
//! answered without making `serve`'s future, several times the size of a
//! pass-through's and boxed for it.)
//!
//! 1. Requests the cache cannot answer pass to the instances as they are:
//!    a body, a `Range`, an `Authorization` (unless `authorized = true`).
//! 2. A fresh object is served at once (`x-cache: HIT`): a header map
//!    clone, an `Age`, the body's reference count; no lock, no await.
//! 3. A stale object within grace / `stale-while-revalidate` is served at
//!    once (`STALE`) while one background request refreshes it.
//! 4. Otherwise the first request for the object fetches it (a conditional
//!    request when a stale object has validators) and the others wait for
//!    it ([`coalesce`]), then are answered from the store as hits. When
//!    every instance fails, a stale object within grace /
//!    `stale-if-error` is served instead of the error.
//!
//! An instance's `1xx` (`103 Early Hints`) are never stored: they go past
//! the cache to the client whose request made the fetch (its exchange
//! carries the way, [`crate::interim`]); the waiters, and every hit, get
//! the final response only.
//!
//! # Layout
//!
//! - [`policy`]: RFC 9111's rules, pure functions.
//! - [`object`]: a stored response and how it is served.
//! - [`store`]: the bounded moka store, with `Vary` variants.
//! - [`tags`]: the tags of objects, and the index a purge by tag walks.
//! - [`coalesce`]: the waiting list.
//! - [`body`]: response bodies read for storing, or streamed past the limit.

pub mod body;
pub mod coalesce;
pub mod object;
pub mod policy;
pub mod store;
pub mod tags;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::body::Body;
use crate::config::CacheConfig;
use crate::error::ProxyError;
use crate::forward::{self, Exchange, Upstream};
use crate::headers::ClientAddr;
use crate::metrics::{CacheMetrics, CacheOutcome as Outcome};
use crate::route::Matched;
use coalesce::{Fetch, Flights, Joined};
use object::{Ask, Object, Target, X_CACHE};
use policy::{Directives, Limits, RequestFacts};
use store::{Key, Lookup, Store};
use tags::Tags;

/// A service's cache.
pub struct Cache {
    limits: Limits,
    /// `cache.targeted`: the targeted fields obeyed, in order of precedence.
    targeted: Box<[HeaderName]>,
    /// `cache.tag_header`: where responses give their objects' tags.
    tag_header: HeaderName,
    /// `cache.expose_tags`: whether clients get `tag_header`.
    expose_tags: bool,
    max_object_size: u64,
    store: Store,
    flights: Arc<Flights>,
    metrics: CacheMetrics,
}

/// Which stored objects a purge removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purge<'a> {
    /// Those whose path and query is this.
    Path(&'a str),
    /// Those whose path and query starts with this.
    Prefix(&'a str),
    /// Those tagged with this (`cache.tag_header`).
    Tag(&'a str),
}

// === impl Cache ===

impl Cache {
    /// The cache of a service with `config`, or `None` when it is off.
    pub fn new(config: &CacheConfig, metrics: CacheMetrics) -> Option<Cache> {
        if !config.enabled {
            return None;
        }
        Some(Cache {
            limits: Limits {
                default_ttl: config.default_ttl,
                max_ttl: config.max_ttl,
                grace: config.grace,
                authorized: config.authorized,
            },
            targeted: config.targeted.clone().into(),
            tag_header: config.tag_header.clone(),
            expose_tags: config.expose_tags,
            max_object_size: config.max_object_size,
            store: Store::new(config.max_size, metrics.evictions()),
            flights: Arc::default(),
            metrics,
        })
    }

    /// Bytes stored (headers, bodies and bookkeeping) and objects stored.
    pub fn usage(&self) -> (u64, u64) {
        self.store.usage()
    }

    /// Removes the objects `which` selects, on `host` (lower case, any
    /// port) or on every host; returns how many went. A `soft` purge marks
    /// them stale instead (SPEC §13): they are then served only as their
    /// stale windows allow, while one request revalidates or refetches
    /// each.
    pub fn purge(&self, host: Option<&str>, which: Purge<'_>, soft: bool) -> usize {
        let soft = soft.then(Instant::now);
        let on_host = |target: &Target| host.is_none_or(|host| target.on_host(host));
        match which {
            Purge::Path(path) => self
                .store
                .purge(|target| on_host(target) && *target.path == *path, soft),
            Purge::Prefix(prefix) => self.store.purge(
                |target| on_host(target) && target.path.starts_with(prefix),
                soft,
            ),
            Purge::Tag(tag) => self.store.purge_tag(tag, on_host, soft),
        }
    }

    /// Takes the tags out of an instance's response `headers` (one lookup):
    /// they stay in the headers only with `expose_tags`. `None` when the
    /// response has no `tag_header`.
    fn take_tags(&self, headers: &mut HeaderMap) -> Option<Tags> {
        if self.expose_tags {
            let mut lines = headers.get_all(&self.tag_header).iter().peekable();
            lines.peek()?;
            return Some(tags::tags_of(lines));
        }
        match headers.entry(&self.tag_header) {
            header::Entry::Occupied(lines) => Some(tags::tags_of(lines.remove_entry_mult().1)),
            header::Entry::Vacant(_) => None,
        }
    }

    /// Removes the tags from what a client gets, unless `expose_tags`.
    fn hide_tags(&self, headers: &mut HeaderMap) {
        if !self.expose_tags {
            headers.remove(&self.tag_header);
        }
    }

    /// After an unsafe request to `host` and `path` succeeded (2xx or 3xx),
    /// removes what is stored for that target and for its response's
    /// `Location` and `Content-Location` on the same host (RFC 9111 §4.4).
    pub fn invalidate_after(&self, host: &str, path: &str, response: &HeaderMap) {
        self.store.invalidate(host, path);
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let Some(location) = response.get(name).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            if location.starts_with('/') && !location.starts_with("//") {
                self.store.invalidate(host, location);
            } else if let Ok(uri) = location.parse::<Uri>() {
                let same_host = uri
                    .authority()
                    .is_some_and(|other| other.as_str().eq_ignore_ascii_case(host));
                if let (true, Some(path)) = (same_host, uri.path_and_query()) {
                    self.store.invalidate(host, path.as_str());
                }
            }
        }
    }
}

/// What an unsafe request may invalidate, taken before it is forwarded.
pub struct Unsafe {
    host: String,
    path: String,
}

impl Unsafe {
    /// The target of an unsafe request (any method but `GET`, `HEAD`,
    /// `OPTIONS` and `TRACE`), if it has one.
    pub fn of(parts: &Parts) -> Option<Unsafe> {
        if parts.method.is_safe() {
            return None;
        }
        Some(Unsafe {
            host: forwarded_host(parts)?.to_ascii_lowercase(),
            path: path_of(&parts.uri).to_owned(),
        })
    }

    /// Invalidates in `cache` after `status` with `headers`, when it is a
    /// success or a redirect.
    pub fn done(&self, cache: &Cache, status: StatusCode, headers: &HeaderMap) {
        if status.is_success() || status.is_redirection() {
            cache.invalidate_after(&self.host, &self.path, headers);
        }
    }
}

/// The path and query of `uri` as sent.
fn path_of(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |path| path.as_str())
}

/// How to reach the instances for one request.
#[derive(Clone, Copy)]
struct Route<'a> {
    upstream: &'a Arc<Upstream>,
    cache: &'a Arc<Cache>,
    /// The route the request matched: the prefix to strip, the body limit.
    matched: Matched<'a>,
    client: &'a ClientAddr,
}

/// What a cacheable request asks of the store, worked out once.
struct Asked<'h> {
    /// Its host, lower case.
    host: Cow<'h, str>,
    key: Key,
    ask: Ask,
    directives: Directives,
    facts: RequestFacts,
}

impl Asked<'_> {
    /// The same, owning its host: for a request that misses, whose
    /// [`serve`] changes the request (to make it conditional, then to
    /// forward it) while it still holds what [`look_first`] worked out.
    fn into_owned(self) -> Asked<'static> {
        Asked {
            host: Cow::Owned(self.host.into_owned()),
            key: self.key,
            ask: self.ask,
            directives: self.directives,
            facts: self.facts,
        }
    }
}

/// What looking in the store gave.
enum Looked {
    /// An answer from the store.
    Answered(Response<Body>),
    /// The instances must be asked: with the stale object (if any) to
    /// revalidate or fall back on, the slot its answer goes in, and whether
    /// another request's fetch of it is worth waiting for.
    Fetch {
        stale: Option<Arc<Object>>,
        slot: u128,
        coalesce: bool,
    },
}

/// What a fetch for the store needs to know besides the request.
struct Fill {
    target: Target,
    key: Key,
    /// The stored object the fetch replaces, if any: validated with a
    /// conditional request, and served if the instances fail.
    stale: Option<Arc<Object>>,
    /// The slot the object goes in (the variant's, if known).
    slot: u128,
    ask: Ask,
    facts: RequestFacts,
    /// The permit that makes this the one fetch of the object; dropped
    /// (waking the waiters) once the object is stored or the fetch failed.
    permit: Option<Fetch>,
}

// === impl Fill ===

impl Fill {
    /// The fetch of what `asked` asks for (the request `parts`), into
    /// `slot`, replacing `stale` if there is one.
    fn new(
        asked: Asked<'_>,
        parts: &Parts,
        stale: Option<Arc<Object>>,
        slot: u128,
        permit: Option<Fetch>,
    ) -> Fill {
        Fill {
            target: Target {
                host: (*asked.host).into(),
                path: path_of(&parts.uri).into(),
            },
            key: asked.key,
            stale,
            slot,
            ask: asked.ask,
            facts: asked.facts,
            permit,
        }
    }
}

/// When a fetch's answer came: the request and response times of RFC 9111
/// §4.2.3 (wall clock, for `Date` and `Age` arithmetic), and the monotonic
/// time the object's freshness counts from.
#[derive(Clone, Copy)]
struct Timing {
    sent: (SystemTime, SystemTime),
    now: Instant,
}

/// What [`look_first`] found.
pub enum First<'a> {
    /// The store's answer: a fresh object, or a stale one served while it
    /// is refreshed.
    Answered(Response<Body>),
    /// The answer is [`serve`]'s to find, going on from this.
    Missed(Missed<'a>),
}

/// Where [`serve`] goes on from after [`look_first`]: the request's way to
/// the instances, and what the request asks of the store with the first
/// lookup's `Looked::Fetch` (`None`: the cache cannot answer the request,
/// which passes to the instances). Boxed: a miss goes on to the
/// instances, which costs far more than the allocation, and a hit's answer
/// is not made larger for it.
pub struct Missed<'a> {
    route: Route<'a>,
    first: Option<Box<(Asked<'static>, Looked)>>,
}

/// The first step of answering a `GET` or `HEAD` for a cache-enabled
/// service: answered here when the store has it (counted as [`serve`]
/// counts), else what `serve` goes on from. Not async, so that a hit makes
/// no future.
pub fn look_first<'a>(
    upstream: &'a Arc<Upstream>,
    cache: &'a Arc<Cache>,
    matched: Matched<'a>,
    client: &'a ClientAddr,
    parts: &Parts,
    body: &Incoming,
    exchange: &mut Exchange,
) -> First<'a> {
    let route = Route {
        upstream,
        cache,
        matched,
        client,
    };
    let Some(asked) = cacheable(cache, parts, body) else {
        return First::Missed(Missed { route, first: None });
    };
    match look_up(route, parts, &asked, Instant::now(), exchange) {
        Looked::Answered(response) => {
            upstream.answered_here(parts);
            First::Answered(response)
        }
        fetch => First::Missed(Missed {
            route,
            first: Some(Box::new((asked.into_owned(), fetch))),
        }),
    }
}

/// Answers a `GET` or `HEAD` for a cache-enabled service that
/// [`look_first`] did not answer: by fetching from its instances (or
/// waiting for another request's fetch, then from the store).
pub async fn serve(
    missed: Missed<'_>,
    parts: &mut Parts,
    body: Incoming,
    exchange: &mut Exchange,
) -> Response<Body> {
    let Missed { route, first } = missed;
    let Some(first) = first else {
        return pass(route, parts, Some(body), exchange).await;
    };
    let (asked, first) = *first;
    let Route {
        upstream, cache, ..
    } = route;
    let mut first = Some(first);
    let mut waited = false;
    loop {
        let now = Instant::now();
        let looked = match first.take() {
            Some(fetch) => fetch,
            None => look_up(route, parts, &asked, now, exchange),
        };
        let (stale, slot) = match looked {
            Looked::Answered(response) => {
                upstream.answered_here(parts);
                return response;
            }
            Looked::Fetch {
                stale,
                slot,
                coalesce,
            } => {
                // Another request's fetch of an uncacheable object is not
                // worth waiting for.
                waited |= !coalesce;
                (stale, slot)
            }
        };
        if asked.directives.only_if_cached {
            exchange.cache = Some(Outcome::Miss);
            return with_outcome(ProxyError::NotCached.into_response(), Outcome::Miss);
        }
        if asked.ask.head && stale.is_none() {
            // Nothing to answer a HEAD from: it goes to the instance as it
            // is (its answer has no body to store).
            return pass(route, parts, None, exchange).await;
        }
        let permit = if waited {
            None
        } else {
            let Some(permit) = join_or_wait(route, slot).await else {
                waited = true;
                continue;
            };
            Some(permit)
        };
        if permit.is_some() && stale.is_none() {
            // The fetch that had the permit may have stored the object
            // between this request's lookup and its join.
            if let Some(object) = stored_fresh(cache, parts, &asked, now) {
                upstream.answered_here(parts);
                return answer(cache, exchange, &object, now, Outcome::Hit, &asked.ask);
            }
        }
        let fill = Fill::new(asked, parts, stale, slot, permit);
        return fetch(route, parts, fill, exchange).await;
    }
}

/// The permit to fetch `slot`; or, when another request is fetching it,
/// `None` once that fetch has ended (or outlived the deadline: this
/// request then fetches for itself), to look in the store again.
async fn join_or_wait(route: Route<'_>, slot: u128) -> Option<Fetch> {
    match route.cache.flights.join(slot) {
        Joined::Fetch(permit) => Some(permit),
        Joined::Wait(waiting) => {
            route.cache.metrics.coalesced();
            let deadline = route.upstream.config.deadline;
            let _ = tokio::time::timeout(deadline, coalesce::finished(waiting)).await;
            None
        }
    }
}

/// What the request asks of the store, when the cache may answer it: no
/// body, no `Range`, no `Authorization` (unless `authorized = true`), and a
/// host.
fn cacheable<'h>(cache: &Cache, parts: &'h Parts, body: &Incoming) -> Option<Asked<'h>> {
    let authorization = parts.headers.contains_key(header::AUTHORIZATION);
    let cacheable = http_body::Body::is_end_stream(body)
        && !parts.headers.contains_key(header::RANGE)
        && (!authorization || cache.limits.authorized);
    if !cacheable {
        return None;
    }
    let host = forwarded_host(parts).map(lower_case)?;
    let directives = if parts.headers.contains_key(header::CACHE_CONTROL)
        || parts.headers.contains_key(header::PRAGMA)
    {
        Directives::of(&parts.headers)
    } else {
        Directives::default()
    };
    Some(Asked {
        key: cache.store.key(&host, path_of(&parts.uri)),
        host,
        ask: Ask::of(parts.method == Method::HEAD, &parts.headers),
        facts: RequestFacts {
            authorization,
            no_store: directives.no_store,
        },
        directives,
    })
}

/// Looks the request up: a fresh object is answered, one within
/// `stale-while-revalidate` (or grace) is answered while a background
/// request refreshes it; otherwise the instances must be asked.
fn look_up(
    route: Route<'_>,
    parts: &Parts,
    asked: &Asked<'_>,
    now: Instant,
    exchange: &mut Exchange,
) -> Looked {
    let cache = route.cache;
    let found = cache
        .store
        .lookup(asked.key, &asked.host, path_of(&parts.uri), &parts.headers);
    let (object, slot) = match found {
        Lookup::Found { object, slot } => (object, slot),
        Lookup::Missing { slot, coalesce } => {
            return Looked::Fetch {
                stale: None,
                slot,
                coalesce,
            }
        }
    };
    if object.fresh_for(now, &asked.directives) {
        return Looked::Answered(answer(
            cache,
            exchange,
            &object,
            now,
            Outcome::Hit,
            &asked.ask,
        ));
    }
    if object.stale_while_revalidate(now, &asked.directives) {
        refresh_in_background(route, parts, (asked.key, slot, asked.facts), &object);
        return Looked::Answered(answer(
            cache,
            exchange,
            &object,
            now,
            Outcome::Stale,
            &asked.ask,
        ));
    }
    Looked::Fetch {
        stale: Some(object),
        slot,
        coalesce: true,
    }
}

/// The stored object for the request, if there is one and it is fresh.
fn stored_fresh(
    cache: &Cache,
    parts: &Parts,
    asked: &Asked<'_>,
    now: Instant,
) -> Option<Arc<Object>> {
    match cache
        .store
        .lookup(asked.key, &asked.host, path_of(&parts.uri), &parts.headers)
    {
        Lookup::Found { object, .. } if object.fresh_for(now, &asked.directives) => Some(object),
        _ => None,
    }
}

/// The `Host` the instance gets, port included: what the cache keys on, so
/// that two requests share an object only if the instance saw the same
/// `Host` (SPEC §9.8). The pipeline has made it the target's authority
/// when there is one.
fn forwarded_host(parts: &Parts) -> Option<&str> {
    parts.headers.get(header::HOST)?.to_str().ok()
}

/// `host` in lower case, copied only when it is not already.
fn lower_case(host: &str) -> Cow<'_, str> {
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Serves `object` and counts it.
fn answer(
    cache: &Cache,
    exchange: &mut Exchange,
    object: &Arc<Object>,
    now: Instant,
    outcome: Outcome,
    ask: &Ask,
) -> Response<Body> {
    cache.metrics.count(outcome);
    exchange.cache = Some(outcome);
    object.respond(now, outcome, ask, cache.store.pinned())
}

/// `response` with `x-cache` saying `outcome`.
fn with_outcome(mut response: Response<Body>, outcome: Outcome) -> Response<Body> {
    response
        .headers_mut()
        .insert(X_CACHE.clone(), object::x_cache(outcome));
    response
}

/// Forwards a request the cache does not answer.
async fn pass(
    route: Route<'_>,
    parts: &mut Parts,
    body: Option<Incoming>,
    exchange: &mut Exchange,
) -> Response<Body> {
    route.cache.metrics.count(Outcome::Pass);
    exchange.cache = Some(Outcome::Pass);
    let forwarded = forward::forward(
        route.upstream,
        &route.matched,
        parts,
        body,
        route.client,
        exchange,
    )
    .await;
    let mut response = forwarded.unwrap_or_else(ProxyError::into_response);
    route.cache.hide_tags(response.headers_mut());
    with_outcome(response, Outcome::Pass)
}

/// Starts one background request that refreshes `object` (in `slot` of
/// `key`, for a request with `facts`), unless one is already running.
fn refresh_in_background(
    route: Route<'_>,
    parts: &Parts,
    (key, slot, facts): (Key, u128, RequestFacts),
    object: &Arc<Object>,
) {
    let Some(permit) = route.cache.flights.try_fetch(slot) else {
        return;
    };
    let mut request = Request::new(());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    let (mut parts, ()) = request.into_parts();
    let fill = Fill {
        target: object.target.clone(),
        key,
        stale: Some(Arc::clone(object)),
        slot,
        ask: Ask::default(),
        facts,
        permit: Some(permit),
    };
    let upstream = Arc::clone(route.upstream);
    let cache = Arc::clone(route.cache);
    let strip = route.matched.strip.map(str::to_owned);
    let (service, max_body) = (route.matched.service, route.matched.max_body);
    let client = route.client.clone();
    tokio::spawn(async move {
        let route = Route {
            upstream: &upstream,
            cache: &cache,
            matched: Matched {
                service,
                strip: strip.as_deref(),
                max_body,
            },
            client: &client,
        };
        drop(fetch(route, &mut parts, fill, &mut Exchange::default()).await);
    });
}

/// Fetches the object from the instances (conditionally when a stale one
/// has validators), stores it if it may be stored, and answers with it.
async fn fetch(
    route: Route<'_>,
    parts: &mut Parts,
    fill: Fill,
    exchange: &mut Exchange,
) -> Response<Body> {
    let cache = route.cache;
    let request_headers = parts.headers.clone();
    let conditional = make_conditional(parts, fill.stale.as_deref());
    let request_time = SystemTime::now();
    let result = forward::forward(
        route.upstream,
        &route.matched,
        parts,
        None,
        route.client,
        exchange,
    )
    .await;
    let timing = Timing {
        sent: (request_time, SystemTime::now()),
        now: Instant::now(),
    };
    let now = timing.now;
    // When the instances fail, a stale object within grace /
    // `stale-if-error` is served instead of the error.
    let failed = match &result {
        Ok(response) => response.status().is_server_error(),
        Err(_) => true,
    };
    if let Some(stale) = fill
        .stale
        .as_ref()
        .filter(|stale| failed && stale.stale_if_error(now))
    {
        return answer(cache, exchange, stale, now, Outcome::Stale, &fill.ask);
    }
    let response = match result {
        Ok(response) => response,
        Err(error) => return with_outcome(error.into_response(), Outcome::Miss),
    };
    match (&fill.stale, response.status()) {
        (Some(stale), StatusCode::NOT_MODIFIED) if conditional => {
            let headers = stale.headers_updated_by(response.headers());
            revalidated(
                cache,
                &fill,
                stale,
                headers,
                &request_headers,
                timing,
                exchange,
            )
        }
        _ => store_new(route, fill, response, &request_headers, timing, exchange).await,
    }
}

/// Makes the request to the instances conditional on the stale object's
/// validators, if it has any; the client's own validators are answered
/// here, against what is stored, so the instance is asked for the whole
/// response or to validate the stored one. Returns whether the request is
/// conditional.
fn make_conditional(parts: &mut Parts, stale: Option<&Object>) -> bool {
    parts.headers.remove(header::IF_NONE_MATCH);
    parts.headers.remove(header::IF_MODIFIED_SINCE);
    let mut conditional = false;
    if let Some(stale) = stale {
        let (etag, last_modified) = stale.validators();
        if let Some(etag) = etag {
            parts.headers.insert(header::IF_NONE_MATCH, etag.clone());
            conditional = true;
        }
        if let Some(last_modified) = last_modified {
            parts
                .headers
                .insert(header::IF_MODIFIED_SINCE, last_modified.clone());
            conditional = true;
        }
    }
    parts.method = Method::GET;
    parts.headers.append(
        "surrogate-capability",
        HeaderValue::from_static(policy::SURROGATE_CAPABILITY),
    );
    conditional
}

/// The stale object, validated by a `304` that brought `headers`: stored
/// again with them if they still allow it (else removed), and served.
fn revalidated(
    cache: &Cache,
    fill: &Fill,
    stale: &Object,
    mut headers: HeaderMap,
    request_headers: &HeaderMap,
    Timing { sent, now }: Timing,
    exchange: &mut Exchange,
) -> Response<Body> {
    let tags = cache
        .take_tags(&mut headers)
        .unwrap_or_else(|| stale.tags().clone());
    let keeping = policy::keeping(
        stale.status(),
        &headers,
        fill.facts,
        sent,
        &cache.limits,
        &cache.targeted,
    );
    let object = Arc::new(
        Object::new(
            fill.target.clone(),
            stale.variant.clone(),
            stale.status(),
            headers,
            stale.body().clone(),
            &keeping.unwrap_or_default(),
            now,
        )
        .with_tags(tags),
    );
    let names = policy::vary_names(object.headers());
    let response = object.respond(now, Outcome::Revalidated, &fill.ask, cache.store.pinned());
    if keeping.is_ok() {
        cache
            .store
            .insert(fill.key, &names, request_headers, object);
    } else {
        cache.store.invalidate(&fill.target.host, &fill.target.path);
    }
    cache.metrics.count(Outcome::Revalidated);
    exchange.cache = Some(Outcome::Revalidated);
    response
}

/// A new answer from the instances: read whole and stored when it may be
/// stored and fits `max_object_size`, else passed on as it streams.
async fn store_new(
    route: Route<'_>,
    fill: Fill,
    response: Response<Body>,
    request_headers: &HeaderMap,
    Timing { sent, now }: Timing,
    exchange: &mut Exchange,
) -> Response<Body> {
    let cache = route.cache;
    let status = response.status();
    let Ok(keeping) = policy::keeping(
        status,
        response.headers(),
        fill.facts,
        sent,
        &cache.limits,
        &cache.targeted,
    ) else {
        return unstored(cache, &fill, response, exchange);
    };
    // What slow clients still hold of evicted objects, and what is being
    // read in, count: while they fill `max_size`, answers stream through
    // instead of being read in whole.
    let expected = http_body::Body::size_hint(response.body())
        .upper()
        .unwrap_or(cache.max_object_size);
    let Some(_reserved) = cache.store.reserve(expected) else {
        return passed_on(cache, &fill, response, exchange);
    };
    let (mut parts, body) = response.into_parts();
    let tags = cache.take_tags(&mut parts.headers).unwrap_or_default();
    let read = tokio::time::timeout(
        route.upstream.config.deadline,
        body::read(body, cache.max_object_size),
    )
    .await;
    let bytes = match read {
        Ok(Ok(body::Read::Whole(bytes))) => bytes,
        Ok(Ok(body::Read::TooLarge(body))) => {
            return unstored(cache, &fill, Response::from_parts(parts, body), exchange)
        }
        Ok(Err(error)) => return body_failed(route, error.to_string()),
        Err(_) => return body_failed(route, "no complete body within the deadline".to_owned()),
    };
    let names = policy::vary_names(&parts.headers);
    let variant = object::variant_of(&names, request_headers);
    let object = Arc::new(
        Object::new(
            fill.target,
            variant,
            status,
            parts.headers,
            bytes,
            &keeping,
            now,
        )
        .with_tags(tags),
    );
    let response = answer(cache, exchange, &object, now, Outcome::Miss, &fill.ask);
    cache
        .store
        .insert(fill.key, &names, request_headers, object);
    drop(fill.permit);
    response
}

/// A response that is not stored, as the client gets it: counted as a
/// pass, its slot marked uncacheable (so the next requests do not wait for
/// each other's fetches), `x-cache: MISS`, and no body for a `HEAD` (which
/// was sent upstream as a `GET`).
fn unstored(
    cache: &Cache,
    fill: &Fill,
    response: Response<Body>,
    exchange: &mut Exchange,
) -> Response<Body> {
    cache.store.mark_uncacheable(fill.slot, &fill.target);
    passed_on(cache, fill, response, exchange)
}

/// A response passed on as it streams, not stored: counted as a pass,
/// `x-cache: MISS`, and no body for a `HEAD` (which was sent upstream as
/// a `GET`).
fn passed_on(
    cache: &Cache,
    fill: &Fill,
    response: Response<Body>,
    exchange: &mut Exchange,
) -> Response<Body> {
    cache.metrics.count(Outcome::Pass);
    exchange.cache = Some(Outcome::Pass);
    let mut response = with_outcome(response, Outcome::Miss);
    cache.hide_tags(response.headers_mut());
    if fill.ask.head {
        *response.body_mut() = crate::body::empty();
    }
    response
}

/// The answer when an instance's response body broke off.
fn body_failed(route: Route<'_>, reason: String) -> Response<Body> {
    let error = ProxyError::UpstreamBody {
        service: route.upstream.config.name.clone(),
        reason,
    };
    with_outcome(error.into_response(), Outcome::Miss)
}
