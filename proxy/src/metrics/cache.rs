//! The cache metrics (SPEC §6): counters the request path bumps, and the
//! store's size, read from each service's store when `/metrics` is scraped
//! (as the ring metrics are), so they need no bookkeeping on the path.

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

/// What the cache did for a request, for its counters, `x-cache` and the
/// access log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Served from the store, fresh (or after waiting for another
    /// request's fetch).
    Hit,
    /// Fetched from an instance (and stored if storable).
    Miss,
    /// Served stale: within grace / `stale-while-revalidate`, or because
    /// the instances failed.
    Stale,
    /// A stored object validated by an instance's `304`.
    Revalidated,
    /// Not for the cache: passed to the instances as it is.
    Pass,
}

impl CacheOutcome {
    /// The access log's `cache` field (SPEC §9.2): `HIT`, `MISS`, `STALE`
    /// or `PASS`. A revalidation waited for an instance: a `MISS`, as
    /// `x-cache` says too.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "HIT",
            CacheOutcome::Miss | CacheOutcome::Revalidated => "MISS",
            CacheOutcome::Stale => "STALE",
            CacheOutcome::Pass => "PASS",
        }
    }
}

/// `shardproxy_cache_hits_total`.
pub const HITS: &str = "shardproxy_cache_hits_total";
/// `shardproxy_cache_misses_total`.
pub const MISSES: &str = "shardproxy_cache_misses_total";
/// `shardproxy_cache_stale_total`.
pub const STALE: &str = "shardproxy_cache_stale_total";
/// `shardproxy_cache_passes_total`.
pub const PASSES: &str = "shardproxy_cache_passes_total";
/// `shardproxy_cache_coalesced_total`.
pub const COALESCED: &str = "shardproxy_cache_coalesced_total";
/// `shardproxy_cache_evictions_total`.
pub const EVICTIONS: &str = "shardproxy_cache_evictions_total";
/// `shardproxy_cache_stored_bytes`.
pub const STORED_BYTES: &str = "shardproxy_cache_stored_bytes";
/// `shardproxy_cache_objects`.
pub const OBJECTS: &str = "shardproxy_cache_objects";

/// The counter families, registered once per registry.
#[derive(Clone, Debug)]
pub struct CacheFamilies {
    hits: IntCounterVec,
    misses: IntCounterVec,
    stale: IntCounterVec,
    passes: IntCounterVec,
    coalesced: IntCounterVec,
    evictions: IntCounterVec,
}

/// One service's cache counters, resolved once.
#[derive(Clone, Debug)]
pub struct CacheMetrics {
    hits: IntCounter,
    misses: IntCounter,
    stale: IntCounter,
    passes: IntCounter,
    coalesced: IntCounter,
    evictions: IntCounter,
}

// === impl CacheFamilies ===

impl CacheFamilies {
    /// Builds the families and registers them in `registry`.
    ///
    /// # Errors
    ///
    /// A [`prometheus::Error`] if the registry refuses one (a bug).
    pub fn register(registry: &Registry) -> Result<CacheFamilies, prometheus::Error> {
        let family = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            let family = IntCounterVec::new(Opts::new(name, help), &["service"])?;
            registry.register(Box::new(family.clone()))?;
            Ok(family)
        };
        Ok(CacheFamilies {
            hits: family(HITS, "Requests answered from the cache, fresh.")?,
            misses: family(
                MISSES,
                "Requests the cache fetched from an instance (revalidations included).",
            )?,
            stale: family(
                STALE,
                "Requests answered from the cache with a stale object.",
            )?,
            passes: family(
                PASSES,
                "Requests of cache-enabled services whose answer was not stored (not cacheable).",
            )?,
            coalesced: family(
                COALESCED,
                "Requests that waited for another request's fetch of the same object.",
            )?,
            evictions: family(EVICTIONS, "Objects evicted from the cache to make room.")?,
        })
    }

    /// The counters of `service`.
    pub fn service(&self, service: &str) -> CacheMetrics {
        // `with_label_values` panics only on a wrong number of values: each
        // family here has the one label `service`.
        let child = |family: &IntCounterVec| family.with_label_values(&[service]);
        CacheMetrics {
            hits: child(&self.hits),
            misses: child(&self.misses),
            stale: child(&self.stale),
            passes: child(&self.passes),
            coalesced: child(&self.coalesced),
            evictions: child(&self.evictions),
        }
    }
}

// === impl CacheMetrics ===

impl CacheMetrics {
    /// Counts a request the cache answered with `outcome`.
    #[inline]
    pub fn count(&self, outcome: CacheOutcome) {
        match outcome {
            CacheOutcome::Hit => self.hits.inc(),
            CacheOutcome::Miss | CacheOutcome::Revalidated => self.misses.inc(),
            CacheOutcome::Stale => self.stale.inc(),
            CacheOutcome::Pass => self.passes.inc(),
        }
    }

    /// Counts a request that waited for another's fetch.
    #[inline]
    pub fn coalesced(&self) {
        self.coalesced.inc();
    }

    /// The eviction counter, for the store's eviction listener.
    pub fn evictions(&self) -> IntCounter {
        self.evictions.clone()
    }
}

/// The size families, from each service's `(name, bytes, objects)`.
///
/// # Errors
///
/// A [`prometheus::Error`] if a name or label here is invalid (a bug).
pub(super) fn families<'a>(
    usage: impl IntoIterator<Item = (&'a str, u64, u64)>,
) -> Result<Vec<MetricFamily>, prometheus::Error> {
    let bytes = IntGaugeVec::new(
        Opts::new(
            STORED_BYTES,
            "Bytes stored in the cache (headers, bodies and bookkeeping); at most max_size.",
        ),
        &["service"],
    )?;
    let objects = IntGaugeVec::new(
        Opts::new(
            OBJECTS,
            "Responses stored in the cache (each Vary variant counts).",
        ),
        &["service"],
    )?;
    for (service, stored, count) in usage {
        bytes
            .get_metric_with_label_values(&[service])?
            .set(i64::try_from(stored).unwrap_or(i64::MAX));
        objects
            .get_metric_with_label_values(&[service])?
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    let collectors: [&dyn Collector; 2] = [&bytes, &objects];
    Ok(collectors
        .iter()
        .flat_map(|collector| collector.collect())
        .filter(|family| !family.get_metric().is_empty())
        .collect())
}
