//! A stored response: its headers prebuilt for serving, its body as
//! `Bytes`, and what its freshness allows when, so that serving it costs a
//! header map clone, an `Age` value and a reference count.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::policy::{self, Keeping};
use super::tags::{self, Tags};
use crate::body::{self, empty, Body};
use crate::metrics::CacheOutcome;

/// `x-cache`: how the cache answered.
pub static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The `x-cache` value of `outcome`: `HIT`, `MISS` or `STALE` (a
/// revalidation or a pass waited for an instance, so it is a `MISS`).
pub fn x_cache(outcome: CacheOutcome) -> HeaderValue {
    HeaderValue::from_static(match outcome {
        CacheOutcome::Hit => "HIT",
        CacheOutcome::Stale => "STALE",
        CacheOutcome::Miss | CacheOutcome::Revalidated | CacheOutcome::Pass => "MISS",
    })
}

/// Where an object was asked for: the `Host` the instance got (lower case,
/// with its port if it had one) and the path and query as sent. Kept in each object so that a
/// hash collision is never served, and so that purges can match it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Host, lower case, port included.
    pub host: Box<str>,
    /// Path and query, as the client sent them.
    pub path: Box<str>,
}

impl Target {
    /// Whether this is `host` and `path` (`host` already lower case).
    pub fn is(&self, host: &str, path: &str) -> bool {
        *self.host == *host && *self.path == *path
    }

    /// The bytes it holds.
    pub fn weight(&self) -> usize {
        self.host.len() + self.path.len()
    }

    /// Whether this is on `host` (lower case, without a port), whatever
    /// its port.
    pub fn on_host(&self, host: &str) -> bool {
        self.host
            .strip_prefix(host)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
    }
}

/// The request's values of the headers a response varies on, in `Vary`'s
/// order: each name with every value the request had (none if absent).
pub type Variant = Box<[(HeaderName, Box<[HeaderValue]>)]>;

/// The request's values of `names`, as a [`Variant`].
pub fn variant_of(names: &[HeaderName], request: &HeaderMap) -> Variant {
    names
        .iter()
        .map(|name| {
            (
                name.clone(),
                request.get_all(name).iter().cloned().collect(),
            )
        })
        .collect()
}

/// Whether `request` has exactly the values of `variant`.
pub fn variant_matches(variant: &Variant, request: &HeaderMap) -> bool {
    variant
        .iter()
        .all(|(name, values)| request.get_all(name).iter().eq(values.iter()))
}

/// A stored response.
#[derive(Debug)]
pub struct Object {
    /// What it answers.
    pub target: Target,
    /// The request header values it was stored for (empty without `Vary`).
    pub variant: Variant,
    status: StatusCode,
    /// As served, `Content-Length` included, `Age` left out.
    headers: HeaderMap,
    body: Bytes,
    stored_at: Instant,
    /// Age on arrival.
    initial_age: Duration,
    lifetime: Duration,
    stale_while_revalidate: Duration,
    stale_if_error: Duration,
    always_revalidate: bool,
    /// How long the store keeps it after storing.
    keep: Duration,
    weight: u32,
    /// The responses still sending its body, and whether it has left the
    /// store: what it costs once evicted.
    senders: Senders,
    /// Its tags, for purges by tag (`cache.tag_header`).
    tags: Tags,
    /// Which object this is, for the tag index: a slot filled again holds
    /// an object with another serial.
    serial: u64,
    /// When it was soft-purged, as milliseconds after `stored_at` plus
    /// one; 0 while it was not. From then on it is stale.
    soft_purged: AtomicU64,
}

/// Serials of objects, in the order they were made.
static SERIALS: AtomicU64 = AtomicU64::new(0);

/// Set in [`Senders`] once the object has left the store.
const LEFT_STORE: u64 = 1 << 63;

/// The responses still sending an object's body (the low bits) and
/// whether it has left the store ([`LEFT_STORE`]), in one atomic so that a
/// response ending and the store evicting agree on who counts it. An
/// object that left the store while responses still send it is "pinned":
/// its bytes are still held, by slow clients, and count in the store's
/// usage until the last of them is sent (SPEC §9.8).
#[derive(Debug, Default)]
struct Senders(AtomicU64);

/// A response's hold on an object's body: the body's bytes, shared with
/// the object, whose last clone (sent, or dropped with its client) lets go.
struct Sending {
    object: Arc<Object>,
    pinned: Arc<AtomicI64>,
}

/// Whether `name` describes the stored body's bytes, so that a `304`
/// does not change it.
fn describes_stored_body(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH
        || name == header::CONTENT_ENCODING
        || name == header::CONTENT_RANGE
        || name.as_str() == "content-md5"
}

/// Room for a header's entry in the map besides its name and value.
const HEADER_OVERHEAD: usize = 32;

/// Room for an object besides its headers, body and target.
const OBJECT_OVERHEAD: usize = 256;

impl Object {
    /// A response to store. `headers` are the instance's, hop-by-hop
    /// headers already removed.
    pub fn new(
        target: Target,
        variant: Variant,
        status: StatusCode,
        mut headers: HeaderMap,
        body: Bytes,
        keeping: &Keeping,
        now: Instant,
    ) -> Object {
        headers.remove(header::AGE);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        let initial_age = Duration::from_secs(keeping.initial_age);
        let weight = OBJECT_OVERHEAD
            + body.len()
            + target.host.len()
            + target.path.len()
            + headers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + HEADER_OVERHEAD)
                .sum::<usize>()
            + variant
                .iter()
                .map(|(name, values)| {
                    name.as_str().len()
                        + values
                            .iter()
                            .map(|value| value.len() + HEADER_OVERHEAD)
                            .sum::<usize>()
                })
                .sum::<usize>();
        Object {
            target,
            variant,
            status,
            headers,
            body,
            stored_at: now,
            initial_age,
            lifetime: keeping.lifetime,
            stale_while_revalidate: keeping.stale_while_revalidate,
            stale_if_error: keeping.stale_if_error,
            always_revalidate: keeping.always_revalidate,
            keep: keeping.keep.saturating_sub(initial_age),
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
            senders: Senders::default(),
            tags: Tags::default(),
            serial: SERIALS.fetch_add(1, Ordering::Relaxed),
            soft_purged: AtomicU64::new(0),
        }
    }

    /// This object with `tags`, which weigh what they cost it and the
    /// index.
    pub fn with_tags(mut self, tags: Tags) -> Object {
        let added = u32::try_from(tags::weight_of(&tags)).unwrap_or(u32::MAX);
        self.weight = self.weight.saturating_add(added);
        self.tags = tags;
        self
    }

    /// Its tags.
    pub fn tags(&self) -> &Tags {
        &self.tags
    }

    /// Which object this is.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Makes it stale from `now` on, if it was not already soft-purged:
    /// it is then served only as its stale windows allow (grace,
    /// `stale-while-revalidate`, `stale-if-error`) while one request
    /// revalidates or refetches it.
    pub fn soft_purge(&self, now: Instant) {
        let since = now.saturating_duration_since(self.stored_at).as_millis();
        let mark = u64::try_from(since).unwrap_or(u64::MAX - 1) + 1;
        let _ = self
            .soft_purged
            .compare_exchange(0, mark, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Its freshness lifetime, cut short at the age it had when it was
    /// soft-purged.
    fn lifetime(&self) -> Duration {
        match self.soft_purged.load(Ordering::Relaxed) {
            0 => self.lifetime,
            mark => self
                .lifetime
                .min(self.initial_age + Duration::from_millis(mark - 1)),
        }
    }

    /// Its weight in the store, in bytes: headers, body, target and
    /// bookkeeping.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// How long the store keeps it after storing.
    pub fn keep(&self) -> Duration {
        self.keep
    }

    /// Its status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Its headers as served.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Its body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Its current age (RFC 9111 §4.2.3).
    pub fn age(&self, now: Instant) -> Duration {
        self.initial_age + now.saturating_duration_since(self.stored_at)
    }

    /// Whether it may be served without validation to a request whose
    /// `Cache-Control` is `request`.
    pub fn fresh_for(&self, now: Instant, request: &policy::Directives) -> bool {
        if self.always_revalidate || request.no_cache {
            return false;
        }
        let age = self.age(now);
        let fresh = age < self.lifetime();
        // Compared with the exact age: `max-age=0` asks for a response no
        // older than now, so it always validates.
        let young_enough = request
            .max_age
            .is_none_or(|max_age| age <= Duration::from_secs(max_age));
        let fresh_enough = request
            .min_fresh
            .is_none_or(|min_fresh| age + Duration::from_secs(min_fresh) < self.lifetime());
        fresh && young_enough && fresh_enough
    }

    /// Whether it may be served stale now while it is refreshed in the
    /// background. Never a `no-cache` object (it is validated before each
    /// use), and not when the request's `no-cache`, `max-age` or
    /// `min-fresh` asks for a response fresher than that (RFC 9111 §5.2.1).
    pub fn stale_while_revalidate(&self, now: Instant, request: &policy::Directives) -> bool {
        !self.always_revalidate
            && !request.no_cache
            && request.max_age.is_none()
            && request.min_fresh.is_none()
            && self.age(now) < self.lifetime() + self.stale_while_revalidate
    }

    /// Whether it may be served stale now because the instances failed.
    pub fn stale_if_error(&self, now: Instant) -> bool {
        !self.always_revalidate && self.age(now) < self.lifetime() + self.stale_if_error
    }

    /// Its validators, for a conditional request to an instance.
    pub fn validators(&self) -> (Option<&HeaderValue>, Option<&HeaderValue>) {
        (
            self.headers.get(header::ETAG),
            self.headers.get(header::LAST_MODIFIED),
        )
    }

    /// Its headers updated with those of a `304` that validated it (RFC
    /// 9111 §3.2): each header the `304` carries replaces the stored one,
    /// except those that describe the stored body's bytes, which the stored
    /// response depends on (§3.2 exempts them): `Content-Length`,
    /// `Content-Encoding`, `Content-Range` and `Content-MD5`. A `304` that
    /// says otherwise would have the cache serve the body mislabelled.
    /// The stored `ETag` is kept too: it names the stored bytes, and a
    /// `304` with another tag cannot make them that other representation
    /// (§4.3.4 selects the stored response by its validator). A `304` may
    /// add an `ETag` to a response stored without one.
    pub fn headers_updated_by(&self, not_modified: &HeaderMap) -> HeaderMap {
        let mut headers = self.headers.clone();
        let keeps_etag = self.headers.contains_key(header::ETAG);
        let mut previous: Option<&HeaderName> = None;
        for (name, value) in not_modified {
            if describes_stored_body(name) || (keeps_etag && name == header::ETAG) {
                continue;
            }
            if previous != Some(name) {
                headers.remove(name);
                previous = Some(name);
            }
            headers.append(name.clone(), value.clone());
        }
        headers
    }

    /// The response for a client: `304` when its conditional is satisfied
    /// by a 2xx object, else the object (without a body for `HEAD`), with
    /// `Age` and `x-cache`. Its body holds the object until it is sent, and
    /// counts in `pinned` if the object leaves the store meanwhile.
    pub fn respond(
        self: &Arc<Self>,
        now: Instant,
        outcome: CacheOutcome,
        ask: &Ask,
        pinned: &Arc<AtomicI64>,
    ) -> Response<Body> {
        let mut headers = self.headers.clone();
        headers.insert(header::AGE, HeaderValue::from(self.age(now).as_secs()));
        headers.insert(X_CACHE.clone(), x_cache(outcome));
        let not_modified = self.status.is_success()
            && (ask.if_none_match.is_some() || ask.if_modified_since.is_some())
            && policy::not_modified(
                ask.if_none_match.as_ref(),
                ask.if_modified_since.as_ref(),
                headers.get(header::ETAG),
                // RFC 9111 §4.3.2: without Last-Modified, the Date.
                headers
                    .get(header::LAST_MODIFIED)
                    .or_else(|| headers.get(header::DATE)),
            );
        let (status, body) = if not_modified {
            headers.remove(header::CONTENT_LENGTH);
            (StatusCode::NOT_MODIFIED, empty())
        } else if ask.head {
            (self.status, empty())
        } else {
            (self.status, body::full(Sending::body(self, pinned)))
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

/// What the client asked beyond the target: a `HEAD` (no body), and its
/// validators for a conditional request, evaluated against what the
/// cache answers with.
#[derive(Clone, Debug, Default)]
pub struct Ask {
    /// A `HEAD` request.
    pub head: bool,
    /// Its `If-None-Match`.
    pub if_none_match: Option<HeaderValue>,
    /// Its `If-Modified-Since`.
    pub if_modified_since: Option<HeaderValue>,
}

impl Ask {
    /// What `method` and `headers` ask.
    pub fn of(head: bool, headers: &HeaderMap) -> Ask {
        Ask {
            head,
            if_none_match: headers.get(header::IF_NONE_MATCH).cloned(),
            if_modified_since: headers.get(header::IF_MODIFIED_SINCE).cloned(),
        }
    }
}

// === holds on a body ===

impl Object {
    /// Marks the object as gone from the store; if responses still send
    /// it, its weight is added to `pinned` until the last of them ends.
    pub fn left_store(&self, pinned: &AtomicI64) {
        let before = self.senders.0.fetch_or(LEFT_STORE, Ordering::AcqRel);
        if before & LEFT_STORE == 0 && before != 0 {
            pinned.fetch_add(i64::from(self.weight), Ordering::AcqRel);
        }
    }
}

impl Sending {
    /// A hold on `object`'s body, counted as one more sender.
    fn body(object: &Arc<Object>, pinned: &Arc<AtomicI64>) -> Bytes {
        // A response that starts after the object left the store pins it
        // again.
        if object.senders.0.fetch_add(1, Ordering::AcqRel) == LEFT_STORE {
            pinned.fetch_add(i64::from(object.weight), Ordering::AcqRel);
        }
        Bytes::from_owner(Sending {
            object: Arc::clone(object),
            pinned: Arc::clone(pinned),
        })
    }
}

impl AsRef<[u8]> for Sending {
    fn as_ref(&self) -> &[u8] {
        &self.object.body
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        let before = self.object.senders.0.fetch_sub(1, Ordering::AcqRel);
        if before == LEFT_STORE | 1 {
            self.pinned
                .fetch_sub(i64::from(self.object.weight), Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests;
