//! The store: a moka cache bounded by weight (headers and bodies), keyed
//! by a 128-bit hash of the target, with `Vary` variants.
//!
//! A target whose responses vary has a [`VaryRule`] under its own key: the
//! header names, and a random nonce. Each variant lives under a key hashed
//! from the target's key, the nonce and the request's values of those
//! headers. Removing the rule (a purge, an unsafe request) orphans every
//! variant at once: a later rule has a new nonce, so they are never found
//! again and age out or are evicted.
//!
//! A slot whose latest response could not be stored holds an
//! [`Entry::Uncacheable`] marker for [`UNCACHEABLE_FOR`] (Varnish's
//! "hit-for-miss"): requests for it then go to the instances at once,
//! side by side, instead of queueing behind each other's fetches.
//!
//! Hashes are seeded per store with a random seed, and every entry keeps
//! its target (and variant values), checked on each lookup: a collision is
//! a miss, never another URL's response.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderName};
use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;
use prometheus::IntCounter;
use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64_with_seed, Xxh3};

use super::object::{variant_matches, Object, Target};
use super::tags::TagIndex;

/// What the store holds under a key.
#[derive(Clone, Debug)]
pub enum Entry {
    /// A response.
    Object(Arc<Object>),
    /// The target's responses vary: look for the variant.
    Vary(Arc<VaryRule>),
    /// The slot's latest response was not stored: do not coalesce.
    Uncacheable(Arc<Target>),
}

/// How long a slot whose response could not be stored is fetched without
/// coalescing: Varnish's builtin VCL gives its hit-for-miss objects 120 s.
pub const UNCACHEABLE_FOR: Duration = Duration::from_secs(120);

/// The `Vary` of a target's latest response.
#[derive(Debug)]
pub struct VaryRule {
    target: Target,
    names: Box<[HeaderName]>,
    nonce: u64,
    keep: Duration,
}

/// A request's place in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The target's key.
    primary: u128,
}

/// What a lookup found.
pub enum Lookup {
    /// A stored object for this request, in slot `slot`.
    Found {
        /// The object.
        object: Arc<Object>,
        /// Its key.
        slot: u128,
    },
    /// Nothing; `slot` is the key its object would have (the variant's,
    /// when the target is known to vary), for coalescing.
    Missing {
        /// Where the object would be.
        slot: u128,
        /// False when the slot's latest response could not be stored:
        /// concurrent requests should not wait for each other.
        coalesce: bool,
    },
}

/// Room for a [`VaryRule`] or an uncacheable marker in the store, besides
/// the target and names it holds (weighed at their length): the entry, its
/// `Arc` and moka's bookkeeping.
const MARKER_WEIGHT: u32 = 256;

/// A service's store.
pub struct Store {
    cache: Cache<u128, Entry>,
    seed: u64,
    /// Objects stored: counted in as they are inserted and out as moka
    /// reports their removal (replaced, invalidated, expired or evicted),
    /// so that `/metrics` reads a number instead of walking the store.
    objects: Arc<AtomicI64>,
    /// Bytes of objects that left the store while responses still send
    /// them: held by slow clients, and counted against `max_size`.
    pinned: Arc<AtomicI64>,
    /// Bytes of answers being read in to be stored.
    reading: AtomicI64,
    max_size: u64,
    /// The tagged objects, by tag.
    tags: Arc<TagIndex>,
}

/// Room taken for an answer being read in, given back when dropped.
#[must_use = "the room is given back as soon as it is dropped"]
pub struct Reserved<'a> {
    reading: &'a AtomicI64,
    bytes: i64,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.reading.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Each entry's time to live: what its freshness and stale windows allow.
struct KeepFor;

impl Expiry<u128, Entry> for KeepFor {
    fn expire_after_create(&self, _: &u128, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.keep())
    }

    fn expire_after_update(
        &self,
        _: &u128,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.keep())
    }
}

// === impl Entry ===

impl Entry {
    fn keep(&self) -> Duration {
        match self {
            Entry::Object(object) => object.keep(),
            Entry::Vary(rule) => rule.keep,
            Entry::Uncacheable(_) => UNCACHEABLE_FOR,
        }
    }

    /// What the entry costs the store: a marker is weighed with the URL
    /// it holds, so that markers of long URLs cannot outgrow `max_size`.
    fn weight(&self) -> u32 {
        let held = match self {
            Entry::Object(object) => return object.weight(),
            Entry::Vary(rule) => {
                rule.target.weight()
                    + rule
                        .names
                        .iter()
                        .map(|name| name.as_str().len())
                        .sum::<usize>()
            }
            Entry::Uncacheable(target) => target.weight(),
        };
        MARKER_WEIGHT.saturating_add(u32::try_from(held).unwrap_or(u32::MAX))
    }

    fn target(&self) -> &Target {
        match self {
            Entry::Object(object) => &object.target,
            Entry::Vary(rule) => &rule.target,
            Entry::Uncacheable(target) => target,
        }
    }
}

// === impl Store ===

impl Store {
    /// A store of at most `max_size` bytes; `evictions` counts the objects
    /// evicted for room.
    pub fn new(max_size: u64, evictions: IntCounter) -> Store {
        let objects = Arc::new(AtomicI64::new(0));
        let removed = Arc::clone(&objects);
        let pinned = Arc::new(AtomicI64::new(0));
        let held = Arc::clone(&pinned);
        let tags = Arc::new(TagIndex::default());
        let listed = Arc::clone(&tags);
        let cache = Cache::builder()
            .max_capacity(max_size)
            .weigher(|_, entry: &Entry| entry.weight())
            .expire_after(KeepFor)
            .eviction_listener(move |slot: Arc<u128>, entry, cause| {
                if let Entry::Object(object) = entry {
                    if !object.tags().is_empty() {
                        listed.remove(object.tags(), *slot, object.serial());
                    }
                    object.left_store(&held);
                    removed.fetch_sub(1, Ordering::Relaxed);
                    if cause == RemovalCause::Size {
                        evictions.inc();
                    }
                }
            })
            .build();
        Store {
            cache,
            seed: rand::random(),
            objects,
            pinned,
            reading: AtomicI64::new(0),
            max_size,
            tags,
        }
    }

    /// Stores an object under `slot`, counted, and listed under its tags.
    fn insert_object(&self, slot: u128, object: Arc<Object>) {
        self.objects.fetch_add(1, Ordering::Relaxed);
        if !object.tags().is_empty() {
            self.tags.add(object.tags(), slot, object.serial());
        }
        self.cache.insert(slot, Entry::Object(object));
    }

    /// Where the bytes of objects sent after they left the store are
    /// counted, for [`Object::respond`].
    pub fn pinned(&self) -> &Arc<AtomicI64> {
        &self.pinned
    }

    /// Room to read in an answer of `bytes` to be stored, if it fits:
    ///
    /// - while slow clients still hold evicted objects ("pinned"), only if
    ///   it fits beside them and what is stored, without evicting: so
    ///   evicted objects being sent stop the cache from growing past
    ///   `max_size` by making room for more (their clients are cut off
    ///   after `send_timeout`, and the store then takes new answers again);
    /// - and the answers being read in, with the pinned bytes, fit in
    ///   `max_size` too, bounding many large misses at once.
    ///
    /// What one insert evicts while it is being sent can still be held
    /// beside a full store: the bound is `max_size` plus that.
    pub fn reserve(&self, bytes: u64) -> Option<Reserved<'_>> {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let max = i64::try_from(self.max_size).unwrap_or(i64::MAX);
        let reading = self
            .reading
            .fetch_add(bytes, Ordering::AcqRel)
            .saturating_add(bytes);
        let reserved = Reserved {
            reading: &self.reading,
            bytes,
        };
        let pinned = self.pinned.load(Ordering::Acquire).max(0);
        if pinned > 0 {
            let stored = i64::try_from(self.cache.weighted_size()).unwrap_or(i64::MAX);
            if stored.saturating_add(pinned).saturating_add(bytes) > max {
                return None;
            }
        }
        (pinned.saturating_add(reading) <= max).then_some(reserved)
    }

    /// The key of `host` (lower case) and `path`.
    pub fn key(&self, host: &str, path: &str) -> Key {
        let host_hash = xxh3_64_with_seed(host.as_bytes(), self.seed);
        Key {
            primary: xxh3_128_with_seed(path.as_bytes(), host_hash),
        }
    }

    /// The object stored for a request to `target` with `headers`.
    pub fn lookup(&self, key: Key, host: &str, path: &str, headers: &HeaderMap) -> Lookup {
        let missing = |slot: u128, entry: Option<Entry>| Lookup::Missing {
            slot,
            coalesce: !matches!(entry, Some(Entry::Uncacheable(target)) if target.is(host, path)),
        };
        match self.cache.get(&key.primary) {
            Some(Entry::Object(object))
                if object.target.is(host, path) && object.variant.is_empty() =>
            {
                Lookup::Found {
                    object,
                    slot: key.primary,
                }
            }
            Some(Entry::Vary(rule)) if rule.target.is(host, path) => {
                let slot = variant_key(key, rule.nonce, &rule.names, headers);
                match self.cache.get(&slot) {
                    Some(Entry::Object(object))
                        if object.target.is(host, path)
                            && variant_matches(&object.variant, headers) =>
                    {
                        Lookup::Found { object, slot }
                    }
                    other => missing(slot, other),
                }
            }
            other => missing(key.primary, other),
        }
    }

    /// Stores `object` for `key`; `names` are its `Vary` names and
    /// `request` the headers of the request it answers. The store is then
    /// brought back under its bound at once, so `max_size` holds as soon
    /// as the insert returns.
    pub fn insert(
        &self,
        key: Key,
        names: &[HeaderName],
        request: &HeaderMap,
        object: impl Into<Arc<Object>>,
    ) {
        let object = object.into();
        if names.is_empty() {
            self.insert_object(key.primary, object);
        } else {
            let rule = match self.cache.get(&key.primary) {
                Some(Entry::Vary(rule))
                    if rule.target == object.target && *rule.names == *names =>
                {
                    if rule.keep < object.keep() {
                        Arc::new(VaryRule {
                            keep: object.keep(),
                            target: rule.target.clone(),
                            names: rule.names.clone(),
                            nonce: rule.nonce,
                        })
                    } else {
                        rule
                    }
                }
                _ => Arc::new(VaryRule {
                    target: object.target.clone(),
                    names: names.into(),
                    nonce: rand::random(),
                    keep: object.keep(),
                }),
            };
            let slot = variant_key(key, rule.nonce, &rule.names, request);
            self.cache.insert(key.primary, Entry::Vary(rule));
            self.insert_object(slot, object);
        }
        self.cache.run_pending_tasks();
    }

    /// Marks `slot` (of `target`) as holding a response that could not be
    /// stored, unless an object is stored there.
    pub fn mark_uncacheable(&self, slot: u128, target: &Target) {
        if !matches!(self.cache.get(&slot), Some(Entry::Object(_))) {
            self.cache
                .insert(slot, Entry::Uncacheable(Arc::new(target.clone())));
        }
    }

    /// Removes whatever is stored for `host` and `path` (every variant).
    pub fn invalidate(&self, host: &str, path: &str) {
        let key = self.key(host, path);
        if let Some(entry) = self.cache.get(&key.primary) {
            if entry.target().is(host, path) {
                self.cache.invalidate(&key.primary);
            }
        }
    }

    /// Removes every entry whose target `matches` (walking the store), and
    /// returns how many objects (responses, each variant counted) went. A
    /// `soft` purge instead marks the objects stale from `now` on, and
    /// leaves the rest.
    pub fn purge(
        &self,
        matches: impl Fn(&Target) -> bool,
        soft: Option<tokio::time::Instant>,
    ) -> usize {
        let matched = self
            .cache
            .iter()
            .filter(|(_, entry)| matches(entry.target()));
        if let Some(now) = soft {
            let mut purged = 0;
            for (_, entry) in matched {
                if let Entry::Object(object) = entry {
                    object.soft_purge(now);
                    purged += 1;
                }
            }
            return purged;
        }
        let keys: Vec<Arc<u128>> = matched.map(|(key, _)| key).collect();
        keys.iter()
            .filter_map(|key| self.cache.remove(&**key))
            .filter(|entry| matches!(entry, Entry::Object(_)))
            .count()
    }

    /// Removes (or, `soft`, marks stale from `now` on) the objects tagged
    /// `tag` whose target `matches`, visiting those objects only; returns
    /// how many.
    pub fn purge_tag(
        &self,
        tag: &str,
        matches: impl Fn(&Target) -> bool,
        soft: Option<tokio::time::Instant>,
    ) -> usize {
        let mut purged = 0;
        for (slot, serial) in self.tags.tagged(tag) {
            let Some(Entry::Object(object)) = self.cache.get(&slot) else {
                continue;
            };
            if object.serial() != serial || !matches(&object.target) {
                continue;
            }
            match soft {
                Some(now) => object.soft_purge(now),
                None => self.cache.invalidate(&slot),
            }
            purged += 1;
        }
        purged
    }

    /// What is stored: bytes (by weight, with the evicted objects slow
    /// clients still hold) and objects, after pending evictions and
    /// expiries are applied.
    pub fn usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        let objects = self.objects.load(Ordering::Relaxed);
        let pinned = u64::try_from(self.pinned.load(Ordering::Acquire)).unwrap_or(0);
        (
            self.cache.weighted_size().saturating_add(pinned),
            u64::try_from(objects).unwrap_or(0),
        )
    }
}

/// The key of a variant: the target's key, the rule's nonce, and the
/// request's values of `names`.
fn variant_key(key: Key, nonce: u64, names: &[HeaderName], headers: &HeaderMap) -> u128 {
    let mut hasher = Xxh3::with_seed(nonce);
    hasher.update(&key.primary.to_le_bytes());
    for name in names {
        hasher.update(name.as_str().as_bytes());
        for value in headers.get_all(name) {
            hasher.update(b"\0");
            hasher.update(value.as_bytes());
        }
        hasher.update(b"\n");
    }
    hasher.digest128()
}

#[cfg(test)]
mod tests {
    use http::header::HeaderValue;
    use http::StatusCode;

    use super::*;
    use crate::cache::object::variant_of;
    use crate::cache::policy::Keeping;
    use crate::cache::tags::Tags;

    fn store() -> Store {
        Store::new(1 << 20, IntCounter::new("evictions", "evictions").unwrap())
    }

    fn object(path: &str, names: &[HeaderName], request: &HeaderMap) -> Object {
        let keeping = Keeping {
            lifetime: Duration::from_secs(60),
            keep: Duration::from_secs(60),
            ..Keeping::default()
        };
        Object::new(
            Target {
                host: "h".into(),
                path: path.into(),
            },
            variant_of(names, request),
            StatusCode::OK,
            HeaderMap::new(),
            bytes::Bytes::from_static(b"body"),
            &keeping,
            tokio::time::Instant::now(),
        )
    }

    fn accept(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static(value));
        headers
    }

    fn found(store: &Store, path: &str, headers: &HeaderMap) -> bool {
        let key = store.key("h", path);
        matches!(store.lookup(key, "h", path, headers), Lookup::Found { .. })
    }

    #[test]
    fn variants_are_found_by_their_request_values_and_go_with_their_rule() {
        let store = store();
        let names = [HeaderName::from_static("accept")];
        for value in ["a", "b"] {
            let request = accept(value);
            store.insert(
                store.key("h", "/v"),
                &names,
                &request,
                object("/v", &names, &request),
            );
        }
        assert!(found(&store, "/v", &accept("a")));
        assert!(found(&store, "/v", &accept("b")));
        assert!(!found(&store, "/v", &accept("c")));
        assert!(!found(&store, "/v", &HeaderMap::new()));
        store.invalidate("h", "/v");
        assert!(!found(&store, "/v", &accept("a")));
        // A new rule does not find the old variants: they were orphaned.
        let request = accept("b");
        store.insert(
            store.key("h", "/v"),
            &names,
            &request,
            object("/v", &names, &request),
        );
        assert!(!found(&store, "/v", &accept("a")));
        assert!(found(&store, "/v", &accept("b")));
    }

    #[test]
    fn an_entry_under_another_targets_key_is_never_served() {
        let store = store();
        let request = HeaderMap::new();
        // Stored for /a under the key of /b, as a hash collision would.
        store.insert(
            store.key("h", "/b"),
            &[],
            &request,
            object("/a", &[], &request),
        );
        assert!(!found(&store, "/b", &request));
    }

    #[test]
    fn purge_counts_objects_not_rules() {
        let store = store();
        let names = [HeaderName::from_static("accept")];
        for value in ["a", "b"] {
            let request = accept(value);
            store.insert(
                store.key("h", "/p/v"),
                &names,
                &request,
                object("/p/v", &names, &request),
            );
        }
        let request = HeaderMap::new();
        store.insert(
            store.key("h", "/p/x"),
            &[],
            &request,
            object("/p/x", &[], &request),
        );
        store.insert(
            store.key("h", "/q"),
            &[],
            &request,
            object("/q", &[], &request),
        );
        assert_eq!(store.usage().1, 4);
        assert_eq!(
            store.purge(|target| target.path.starts_with("/p/"), None),
            3
        );
        assert_eq!(store.usage().1, 1);
        assert!(found(&store, "/q", &request));
    }

    /// The objects in the store, found by walking it.
    fn walked(store: &Store) -> u64 {
        store.cache.run_pending_tasks();
        let objects = store
            .cache
            .iter()
            .filter(|(_, entry)| matches!(entry, Entry::Object(_)))
            .count();
        u64::try_from(objects).unwrap()
    }

    /// A purge by tag visits the objects listed under the tag, not the
    /// store: 10,000 tagged among 1,000,000 are removed (and only they)
    /// after looking at 10,000 index entries.
    #[test]
    fn a_tag_purge_of_10_000_among_1_000_000_visits_the_10_000() {
        let store = Store::new(1 << 40, IntCounter::new("e", "e").unwrap());
        let tagged: Tags = vec!["product-42".into()].into();
        for n in 0..1_000_000u32 {
            let path = format!("/o/{n}");
            let mut object = object(&path, &[], &HeaderMap::new());
            if n % 100 == 7 {
                object = object.with_tags(tagged.clone());
            }
            store.insert_object(store.key("h", &path).primary, Arc::new(object));
        }
        store.cache.run_pending_tasks();
        assert_eq!(store.tags.tagged("product-42").len(), 10_000, "visited");
        assert_eq!(store.purge_tag("product-42", |_| true, None), 10_000);
        store.cache.run_pending_tasks();
        assert_eq!(store.usage().1, 990_000);
        assert_eq!(store.tags.listed(), 0, "the purged objects left the index");
        let key = store.key("h", "/o/7");
        assert!(matches!(
            store.lookup(key, "h", "/o/7", &HeaderMap::new()),
            Lookup::Missing { .. }
        ));
        assert!(found(&store, "/o/8", &HeaderMap::new()));
    }

    #[test]
    fn the_object_count_follows_every_way_in_and_out() {
        // Small enough that the inserts below evict.
        let evictions = IntCounter::new("e", "e").unwrap();
        let store = Store::new(64 << 10, evictions.clone());
        let plain = HeaderMap::new();
        let names = [HeaderName::from_static("accept")];
        for round in 0..3 {
            for n in 0..200 {
                let path = format!("/o/{n}");
                // Replaced each round; every third turned into variants
                // (the plain object replaced by a rule).
                if n % 3 == 0 && round > 0 {
                    let request = accept(if round == 1 { "a" } else { "b" });
                    let object = object(&path, &names, &request);
                    store.insert(store.key("h", &path), &names, &request, object);
                } else {
                    let object = object(&path, &[], &plain);
                    store.insert(store.key("h", &path), &[], &plain, object);
                }
                assert_eq!(store.usage().1, walked(&store), "round {round}, /o/{n}");
            }
        }
        store.invalidate("h", "/o/1");
        store.mark_uncacheable(
            store.key("h", "/o/2").primary,
            &Target {
                host: "h".into(),
                path: "/o/2".into(),
            },
        );
        store.purge(|target| target.path.ends_with('5'), None);
        assert_eq!(store.usage().1, walked(&store));
        assert!(walked(&store) > 0);
        assert!(evictions.get() > 0, "nothing was evicted");
    }

    /// An object of `size` bytes of body at `path`.
    fn sized(path: &str, size: usize) -> Arc<Object> {
        let keeping = Keeping {
            lifetime: Duration::from_secs(60),
            keep: Duration::from_secs(60),
            ..Keeping::default()
        };
        Arc::new(Object::new(
            Target {
                host: "h".into(),
                path: path.into(),
            },
            variant_of(&[], &HeaderMap::new()),
            StatusCode::OK,
            HeaderMap::new(),
            bytes::Bytes::from(vec![b'x'; size]),
            &keeping,
            tokio::time::Instant::now(),
        ))
    }

    #[tokio::test]
    async fn objects_evicted_while_being_sent_count_until_they_are_sent() {
        let store = Store::new(
            100 << 10,
            IntCounter::new("evictions", "evictions").unwrap(),
        );
        let first = sized("/first", 60 << 10);
        store.insert(
            store.key("h", "/first"),
            &[],
            &HeaderMap::new(),
            Arc::clone(&first),
        );
        let ask = super::super::object::Ask::default();
        let now = tokio::time::Instant::now();
        // A slow client: the body is handed out and not yet sent.
        let sending = first.respond(now, crate::metrics::CacheOutcome::Hit, &ask, store.pinned());
        let also = first.respond(now, crate::metrics::CacheOutcome::Hit, &ask, store.pinned());
        // The first leaves the store (replaced, purged or evicted alike)
        // and another comes in...
        store.invalidate("h", "/first");
        store.insert(
            store.key("h", "/second"),
            &[],
            &HeaderMap::new(),
            sized("/second", 60 << 10),
        );
        let (bytes, objects) = store.usage();
        assert_eq!(objects, 1, "the first object left the store");
        // ...but its bytes are still held, once, however many send them.
        assert!(bytes >= 120 << 10, "{bytes} bytes counted");
        assert!(
            store.reserve(50 << 10).is_none(),
            "nothing that would not fit beside it is read in"
        );
        assert!(
            store.reserve(1 << 10).is_none(),
            "not even a small answer: the full store would evict for it"
        );
        drop(sending);
        assert!(store.usage().0 >= 120 << 10, "one client still holds it");
        drop(also);
        let (bytes, _) = store.usage();
        assert!(bytes < 100 << 10, "sent: {bytes} bytes counted");
        let reserved = store.reserve(50 << 10);
        assert!(reserved.is_some());
        assert!(
            store.reserve(60 << 10).is_none(),
            "what is being read in counts"
        );
        drop(reserved);
        assert!(store.reserve(60 << 10).is_some());
    }
}
