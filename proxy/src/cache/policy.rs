//! The rules of RFC 9111 (a shared cache) as pure functions of headers and
//! times: what a `Cache-Control` field says, whether a response may be
//! stored, how long it is fresh, how old it is, how long it may be served
//! stale, and whether a client's conditional request is satisfied.
//!
//! Nothing here does I/O or reads a clock: times come in as arguments, so
//! every rule is unit-tested with fixed headers and fixed times.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use sfv::{BareItem, Dictionary, ListEntry, Parser};

/// The largest delta-seconds value kept; larger ones mean "this long"
/// (RFC 9111 §1.2.2 lets a cache cap them at 2^31).
const DELTA_SECONDS_CAP: u64 = 1 << 31;

/// The directives of one message's `Cache-Control` fields (RFC 9111 §5.2)
/// that this cache acts on. Unknown directives are ignored, as §5.2.3
/// requires.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// `no-store`: neither this request nor this response is stored.
    pub no_store: bool,
    /// `no-cache` (with or without field names): a stored response is not
    /// used without validating it first.
    pub no_cache: bool,
    /// `private` (with or without field names): not for a shared cache.
    pub private: bool,
    /// `public`: storable even for a request with `Authorization`.
    pub public: bool,
    /// `must-revalidate`, `proxy-revalidate`, or `s-maxage` (which implies
    /// `proxy-revalidate`, §5.2.2.10): never served stale.
    pub must_revalidate: bool,
    /// `only-if-cached` (request): answer from the cache or with 504.
    pub only_if_cached: bool,
    /// `must-understand`: stored only with a status code this cache
    /// understands, and then `no-store` is ignored (§5.2.2.3).
    pub must_understand: bool,
    /// `max-age`, in seconds; an invalid value counts as 0 (stale, §4.2.1).
    pub max_age: Option<u64>,
    /// `s-maxage`, in seconds; an invalid value counts as 0.
    pub s_maxage: Option<u64>,
    /// `min-fresh` (request), in seconds.
    pub min_fresh: Option<u64>,
    /// `stale-while-revalidate` (RFC 5861), in seconds.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` (RFC 5861), in seconds.
    pub stale_if_error: Option<u64>,
}

// === impl Directives ===

impl Directives {
    /// The directives of every `Cache-Control` field of `headers`; for a
    /// request without `Cache-Control`, `Pragma: no-cache` counts as
    /// `no-cache` (RFC 9111 §5.4).
    pub fn of(headers: &HeaderMap) -> Directives {
        let mut directives = Directives::default();
        let mut any = false;
        for value in headers.get_all(header::CACHE_CONTROL) {
            any = true;
            if let Ok(text) = value.to_str() {
                directives.add(text);
            }
        }
        if !any {
            directives.no_cache = headers
                .get_all(header::PRAGMA)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .any(|value| list(value).any(|item| item.eq_ignore_ascii_case("no-cache")));
        }
        directives
    }

    /// Adds the directives of one field value.
    fn add(&mut self, text: &str) {
        for item in list(text) {
            let (name, argument) = match item.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(unquote(argument.trim()))),
                None => (item, None),
            };
            let seconds = || Some(argument.and_then(delta_seconds).unwrap_or(0));
            match name.to_ascii_lowercase().as_str() {
                "no-store" => self.no_store = true,
                "no-cache" => self.no_cache = true,
                "private" => self.private = true,
                "public" => self.public = true,
                "must-revalidate" | "proxy-revalidate" => self.must_revalidate = true,
                "only-if-cached" => self.only_if_cached = true,
                "must-understand" => self.must_understand = true,
                "max-age" => self.max_age = self.max_age.or_else(seconds),
                "s-maxage" => {
                    self.s_maxage = self.s_maxage.or_else(seconds);
                    self.must_revalidate = true;
                }
                "min-fresh" => self.min_fresh = argument.and_then(delta_seconds),
                "stale-while-revalidate" => {
                    self.stale_while_revalidate = argument.and_then(delta_seconds);
                }
                "stale-if-error" => self.stale_if_error = argument.and_then(delta_seconds),
                _ => {}
            }
        }
    }
}

/// The items of a comma-separated list, trimmed, empty ones skipped;
/// commas inside a quoted string do not split.
fn list(text: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    text.split(move |c| {
        if c == '"' {
            quoted = !quoted;
        }
        c == ',' && !quoted
    })
    .map(str::trim)
    .filter(|item| !item.is_empty())
}

/// `text` without the quotes of a quoted string.
fn unquote(text: &str) -> &str {
    text.strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(text)
}

/// A delta-seconds value (digits only), capped at [`DELTA_SECONDS_CAP`].
fn delta_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        text.parse::<u64>()
            .map_or(DELTA_SECONDS_CAP, |n| n.min(DELTA_SECONDS_CAP)),
    )
}

/// An HTTP date header, if present and valid.
fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    let text = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(text).ok()
}

/// The per-service settings the rules take into account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Freshness of a response that gives none.
    pub default_ttl: Duration,
    /// The longest freshness allowed.
    pub max_ttl: Duration,
    /// How long past freshness an object may be served stale.
    pub grace: Duration,
    /// Whether requests with `Authorization` use the cache.
    pub authorized: bool,
}

/// Status codes whose responses may be stored without explicit freshness
/// ("heuristically cacheable", RFC 9110 §15.1), here with `default_ttl`.
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Status codes whose caching requirements this cache knows: those RFC
/// 9110 §15 defines. A response with `must-understand` and any other
/// status is not stored (RFC 9111 §3, §5.2.2.3).
fn understood(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        100 | 101 | 200..=206 | 300..=305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// How long a response is fresh (RFC 9111 §4.2.1, for a shared cache):
/// `s-maxage`, else `max-age`, else `Expires` minus `Date` (an invalid
/// `Expires` means already stale), else `default_ttl` for a status that is
/// heuristically cacheable. `None` when the response gives no freshness and
/// `default_ttl` is 0 or does not apply; never more than `max_ttl`.
///
/// `expires` holds the response's headers when its `Expires` counts, and is
/// `None` when a targeted field replaced `Cache-Control` and `Expires`
/// (RFC 9213 §2.2).
pub fn freshness_lifetime(
    status: StatusCode,
    directives: &Directives,
    expires: Option<&HeaderMap>,
    response_time: SystemTime,
    limits: &Limits,
) -> Option<Duration> {
    let explicit = if let Some(seconds) = directives.s_maxage.or(directives.max_age) {
        Some(Duration::from_secs(seconds))
    } else if let Some(headers) = expires.filter(|headers| headers.contains_key(header::EXPIRES)) {
        let expires = date(headers, header::EXPIRES);
        let now = date(headers, header::DATE).unwrap_or(response_time);
        Some(expires.map_or(Duration::ZERO, |expires| {
            expires.duration_since(now).unwrap_or(Duration::ZERO)
        }))
    } else {
        None
    };
    let lifetime = match explicit {
        Some(lifetime) => lifetime,
        None if !limits.default_ttl.is_zero() && heuristically_cacheable(status) => {
            limits.default_ttl
        }
        None => return None,
    };
    Some(lifetime.min(limits.max_ttl))
}

/// The response's age when it arrived (RFC 9111 §4.2.3: the larger of its
/// apparent age from `Date` and its `Age` plus the time the request took),
/// in whole seconds.
pub fn initial_age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> u64 {
    let age_value = age(headers).unwrap_or(0);
    let apparent_age = date(headers, header::DATE)
        .and_then(|date| response_time.duration_since(date).ok())
        .map_or(0, |age| age.as_secs());
    let response_delay = response_time
        .duration_since(request_time)
        .map_or(0, |delay| delay.as_secs());
    apparent_age.max(age_value.saturating_add(response_delay))
}

/// The `Age` of a response (RFC 9111 §5.1): a list-based value (on one
/// line or several) counts by its first member; an invalid one is ignored.
fn age(headers: &HeaderMap) -> Option<u64> {
    let first_line = headers.get(header::AGE)?.to_str().ok()?;
    let first_member = first_line.split(',').next()?.trim();
    delta_seconds(first_member)
}

/// The name by which this cache announces itself to the instances in
/// `Surrogate-Capability` (W3C Edge Architecture 1.0), and so the target
/// (`max-age=60;shardproxy`) by which `Surrogate-Control` addresses it.
pub const SURROGATE_NAME: &str = "shardproxy";

/// The `Surrogate-Capability` value sent with the requests whose answers
/// may be stored: this cache is a surrogate, and understands
/// `Surrogate-Control`.
pub const SURROGATE_CAPABILITY: &str = "shardproxy=\"Surrogate/1.0\"";

/// The directives of `Surrogate-Control` (W3C Edge Architecture 1.0: the
/// header by which an origin speaks to the reverse proxies in front of it)
/// addressed to this cache: those without a target and those targeted at
/// [`SURROGATE_NAME`]. Of them this cache acts on `no-store` and
/// `max-age`; when there is either, they replace `Cache-Control` and
/// `Expires` for it (as in Varnish and Fastly, and as RFC 9213 has a
/// targeted field replace them), so an origin can keep a response in the
/// cache longer or shorter than in browsers. `None` when there is neither.
pub fn surrogate_directives(headers: &HeaderMap) -> Option<Directives> {
    let mut addressed = Directives::default();
    for value in headers.get_all("surrogate-control") {
        let Ok(text) = value.to_str() else { continue };
        for item in list(text) {
            let (directive, target) = match item.split_once(';') {
                Some((directive, target)) => (directive, Some(target.trim())),
                None => (item, None),
            };
            if target.is_none_or(|target| target.eq_ignore_ascii_case(SURROGATE_NAME)) {
                addressed.add(directive);
            }
        }
    }
    (addressed.no_store || addressed.max_age.is_some()).then_some(Directives {
        no_store: addressed.no_store,
        max_age: addressed.max_age,
        ..Directives::default()
    })
}

/// The directives of the first field of `targeted` (in order of
/// precedence) that the response carries with a valid, non-empty value
/// (RFC 9213 §2.2): they replace `Cache-Control` and `Expires` for this
/// cache. `None` when there is none, and then `Cache-Control` applies.
///
/// A targeted field is a Structured Field dictionary (RFC 9213 §2.1, RFC
/// 8941): its lines are joined as one value, and a value that does not
/// parse, or that gives a directive this cache acts on a value of the wrong
/// type (`max-age="60"`, a negative `max-age`), makes the whole field
/// ignored, as if absent. `private` and `no-cache` with field names (a
/// string) count as the whole directive: a shared cache cannot keep a
/// response while leaving some of its fields out, so it keeps none of it.
pub fn targeted_directives(headers: &HeaderMap, targeted: &[HeaderName]) -> Option<Directives> {
    targeted
        .iter()
        .find_map(|name| targeted_field(headers, name))
}

/// The directives of one targeted field, if it is present and valid.
fn targeted_field(headers: &HeaderMap, name: &HeaderName) -> Option<Directives> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next()?;
    // One line, as usual, is parsed where it is; several are one value.
    let joined;
    let text = match lines.next() {
        None => first.as_bytes(),
        Some(second) => {
            let mut all = first.as_bytes().to_vec();
            for line in std::iter::once(second).chain(lines) {
                all.extend_from_slice(b", ");
                all.extend_from_slice(line.as_bytes());
            }
            joined = all;
            &joined[..]
        }
    };
    if text.trim_ascii().is_empty() {
        return None;
    }
    let dictionary: Dictionary = Parser::new(text).parse().ok()?;
    let mut directives = Directives::default();
    for (key, entry) in &dictionary {
        // An inner list is no value of any directive acted on here.
        let value = match entry {
            ListEntry::Item(item) => Some(&item.bare_item),
            ListEntry::InnerList(_) => None,
        };
        let seconds = || match value {
            Some(BareItem::Integer(value)) => u64::try_from(i64::from(*value))
                .ok()
                .map(|seconds| seconds.min(DELTA_SECONDS_CAP)),
            _ => None,
        };
        let flag = || match value {
            Some(BareItem::Boolean(set)) => Some(*set),
            _ => None,
        };
        let flag_or_names = || match value {
            Some(BareItem::String(_)) => Some(true),
            _ => flag(),
        };
        match key.as_str() {
            "max-age" => directives.max_age = Some(seconds()?),
            "s-maxage" => {
                directives.s_maxage = Some(seconds()?);
                directives.must_revalidate = true;
            }
            "stale-while-revalidate" => directives.stale_while_revalidate = Some(seconds()?),
            "stale-if-error" => directives.stale_if_error = Some(seconds()?),
            "no-store" => directives.no_store |= flag()?,
            "must-revalidate" | "proxy-revalidate" => directives.must_revalidate |= flag()?,
            "must-understand" => directives.must_understand |= flag()?,
            "public" => directives.public |= flag()?,
            "private" => directives.private |= flag_or_names()?,
            "no-cache" => directives.no_cache |= flag_or_names()?,
            _ => {}
        }
    }
    Some(directives)
}

/// Whether the response to a request with `Authorization` may be stored
/// by a shared cache (RFC 9111 §3.5).
fn authorized_storable(directives: &Directives) -> bool {
    directives.public || directives.s_maxage.is_some() || directives.must_revalidate
}

/// Why a response is not stored, for the logs and the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotStored {
    /// A status that is never stored (1xx, 206, 304), not heuristically
    /// cacheable without explicit freshness, or not understood with
    /// `must-understand`.
    Status,
    /// `no-store` in the request or the response.
    NoStore,
    /// `private`.
    Private,
    /// `Set-Cookie`.
    SetCookie,
    /// `Vary: *`.
    VaryAny,
    /// A request with `Authorization` and a response without `public`,
    /// `s-maxage` or `must-revalidate`.
    Authorization,
    /// No freshness information, and `default_ttl` is 0.
    NoFreshness,
    /// Never usable: stale at once, without a validator or a stale window.
    Useless,
}

/// How a storable response is to be kept. The default keeps it for no
/// time: an object to serve once and not store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keeping {
    /// Freshness lifetime.
    pub lifetime: Duration,
    /// Age on arrival, in seconds.
    pub initial_age: u64,
    /// How long past freshness it may be served stale while a refresh runs
    /// in the background (grace or `stale-while-revalidate`).
    pub stale_while_revalidate: Duration,
    /// How long past freshness it may be served stale when the instances
    /// fail (grace or `stale-if-error`).
    pub stale_if_error: Duration,
    /// `no-cache`: validate before every use.
    pub always_revalidate: bool,
    /// Whether it has a validator (`ETag` or `Last-Modified`).
    pub validator: bool,
    /// How long, counted from its age 0, the store keeps it: its lifetime
    /// and stale windows, and `max_ttl` more when it has a validator (a
    /// stale object is still worth a conditional request).
    pub keep: Duration,
}

/// What the request brings to the decision to store its response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// It carries `Authorization`.
    pub authorization: bool,
    /// Its `Cache-Control` says `no-store`.
    pub no_store: bool,
}

/// Whether and how a response may be stored (RFC 9111 §3, for a shared
/// cache, with the service's `limits`).
///
/// # Errors
///
/// [`NotStored`] says why it may not.
pub fn keeping(
    status: StatusCode,
    headers: &HeaderMap,
    request: RequestFacts,
    times: (SystemTime, SystemTime),
    limits: &Limits,
    targeted: &[HeaderName],
) -> Result<Keeping, NotStored> {
    let (request_time, response_time) = times;
    if status.is_informational() || status == StatusCode::PARTIAL_CONTENT {
        return Err(NotStored::Status);
    }
    if status == StatusCode::NOT_MODIFIED {
        return Err(NotStored::Status);
    }
    // A targeted field first (RFC 9213), then `Surrogate-Control`, then
    // `Cache-Control` with `Expires`.
    let (directives, expires) = match targeted_directives(headers, targeted) {
        Some(directives) => (directives, None),
        None => (
            surrogate_directives(headers).unwrap_or_else(|| Directives::of(headers)),
            Some(headers),
        ),
    };
    if directives.must_understand && !understood(status) {
        return Err(NotStored::Status);
    }
    if (directives.no_store && !directives.must_understand) || request.no_store {
        return Err(NotStored::NoStore);
    }
    if directives.private {
        return Err(NotStored::Private);
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    if vary_any(headers) {
        return Err(NotStored::VaryAny);
    }
    if request.authorization && !authorized_storable(&directives) {
        return Err(NotStored::Authorization);
    }
    let validator =
        headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED);
    let lifetime = match freshness_lifetime(status, &directives, expires, response_time, limits) {
        Some(lifetime) => lifetime,
        // `no-cache` asks for the response to be stored and validated
        // before each use (§5.2.2.4): with a validator, that saves the
        // body's transfer, even with no freshness at all.
        None if directives.no_cache && validator && heuristically_cacheable(status) => {
            Duration::ZERO
        }
        None => return Err(NotStored::NoFreshness),
    };
    let may_serve_stale = !directives.must_revalidate && !directives.no_cache;
    let window = |directive: Option<u64>| {
        if may_serve_stale {
            limits
                .grace
                .max(Duration::from_secs(directive.unwrap_or(0)))
        } else {
            Duration::ZERO
        }
    };
    let stale_while_revalidate = window(directives.stale_while_revalidate);
    let stale_if_error = window(directives.stale_if_error);
    let revalidation = if validator {
        limits.max_ttl
    } else {
        Duration::ZERO
    };
    let keeping = Keeping {
        lifetime,
        initial_age: initial_age(headers, request_time, response_time),
        stale_while_revalidate,
        stale_if_error,
        always_revalidate: directives.no_cache,
        validator,
        keep: lifetime + stale_while_revalidate.max(stale_if_error) + revalidation,
    };
    let fresh_at_all =
        !keeping.always_revalidate && Duration::from_secs(keeping.initial_age) < lifetime;
    let stale_usable =
        !keeping.stale_while_revalidate.is_zero() || !keeping.stale_if_error.is_zero();
    if fresh_at_all || keeping.validator || stale_usable {
        Ok(keeping)
    } else {
        Err(NotStored::Useless)
    }
}

/// Whether `Vary` names `*`: the response varies on more than headers.
fn vary_any(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| list(value).any(|item| item == "*"))
}

/// The header names `Vary` lists, lower case, without duplicates. An
/// unparsable name is kept as it is (it never matches a request header,
/// so the response varies on its absence).
pub fn vary_names(headers: &HeaderMap) -> Vec<header::HeaderName> {
    let mut names: Vec<header::HeaderName> = Vec::new();
    for value in headers.get_all(header::VARY) {
        let Ok(text) = value.to_str() else { continue };
        for item in list(text) {
            if let Ok(name) = header::HeaderName::from_bytes(item.as_bytes()) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    names
}

/// Whether a client's conditional GET or HEAD is satisfied by a stored
/// response with `etag` and `last_modified` (RFC 9110 §13.1.2, §13.1.3):
/// `If-None-Match` matching (weakly) one of its tags, or, without
/// `If-None-Match`, `If-Modified-Since` no earlier than `last_modified`.
pub fn not_modified(
    if_none_match: Option<&HeaderValue>,
    if_modified_since: Option<&HeaderValue>,
    etag: Option<&HeaderValue>,
    last_modified: Option<&HeaderValue>,
) -> bool {
    if let Some(condition) = if_none_match {
        let Some(etag) = etag.and_then(|etag| etag.to_str().ok()) else {
            return condition.as_bytes() == b"*";
        };
        let Ok(condition) = condition.to_str() else {
            return false;
        };
        let stored = opaque_tag(etag);
        return condition.trim() == "*" || list(condition).any(|tag| opaque_tag(tag) == stored);
    }
    let since = if_modified_since
        .and_then(|value| value.to_str().ok())
        .and_then(|text| httpdate::parse_http_date(text).ok());
    let modified = last_modified
        .and_then(|value| value.to_str().ok())
        .and_then(|text| httpdate::parse_http_date(text).ok());
    matches!((since, modified), (Some(since), Some(modified)) if modified <= since)
}

/// An entity tag without its weakness mark, for the weak comparison.
fn opaque_tag(tag: &str) -> &str {
    let tag = tag.trim();
    tag.strip_prefix("W/").unwrap_or(tag)
}

#[cfg(test)]
mod tests;
