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
//! Hashes are seeded per store with a random seed, and every entry keeps
//! its target (and variant values), checked on each lookup: a collision is
//! a miss, never another URL's response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderName};
use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;
use prometheus::IntCounter;
use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64_with_seed, Xxh3};

use super::object::{variant_matches, Object, Target};

/// What the store holds under a key.
#[derive(Clone, Debug)]
pub enum Entry {
    /// A response.
    Object(Arc<Object>),
    /// The target's responses vary: look for the variant.
    Vary(Arc<VaryRule>),
}

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
    },
}

/// Room for a [`VaryRule`] in the store.
const RULE_WEIGHT: u32 = 256;

/// A service's store.
pub struct Store {
    cache: Cache<u128, Entry>,
    seed: u64,
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
        }
    }

    fn weight(&self) -> u32 {
        match self {
            Entry::Object(object) => object.weight(),
            Entry::Vary(_) => RULE_WEIGHT,
        }
    }

    fn target(&self) -> &Target {
        match self {
            Entry::Object(object) => &object.target,
            Entry::Vary(rule) => &rule.target,
        }
    }
}

// === impl Store ===

impl Store {
    /// A store of at most `max_size` bytes; `evictions` counts the objects
    /// evicted for room.
    pub fn new(max_size: u64, evictions: IntCounter) -> Store {
        let cache = Cache::builder()
            .max_capacity(max_size)
            .weigher(|_, entry: &Entry| entry.weight())
            .expire_after(KeepFor)
            .eviction_listener(move |_, entry, cause| {
                if cause == RemovalCause::Size && matches!(entry, Entry::Object(_)) {
                    evictions.inc();
                }
            })
            .build();
        Store {
            cache,
            seed: rand::random(),
        }
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
        let missing = Lookup::Missing { slot: key.primary };
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
                    _ => Lookup::Missing { slot },
                }
            }
            _ => missing,
        }
    }

    /// Stores `object` for `key`; `names` are its `Vary` names and
    /// `request` the headers of the request it answers. The store is then
    /// brought back under its bound at once, so `max_size` holds as soon
    /// as the insert returns.
    pub fn insert(&self, key: Key, names: &[HeaderName], request: &HeaderMap, object: Object) {
        if names.is_empty() {
            self.cache
                .insert(key.primary, Entry::Object(Arc::new(object)));
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
            self.cache.insert(slot, Entry::Object(Arc::new(object)));
        }
        self.cache.run_pending_tasks();
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

    /// Removes every entry whose target `matches`, and returns how many
    /// objects (responses, each variant counted) went.
    pub fn purge(&self, matches: impl Fn(&Target) -> bool) -> usize {
        let keys: Vec<Arc<u128>> = self
            .cache
            .iter()
            .filter(|(_, entry)| matches(entry.target()))
            .map(|(key, _)| key)
            .collect();
        keys.iter()
            .filter_map(|key| self.cache.remove(&**key))
            .filter(|entry| matches!(entry, Entry::Object(_)))
            .count()
    }

    /// What is stored: bytes (by weight) and objects, after pending
    /// evictions and expiries are applied.
    pub fn usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        let objects = self
            .cache
            .iter()
            .filter(|(_, entry)| matches!(entry, Entry::Object(_)))
            .count();
        (self.cache.weighted_size(), objects as u64)
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
