//! Prometheus metrics, served as text at the admin API's `/metrics`
//! (SPEC §7).
//!
//! One [`Metrics`] is built per process, with its own
//! registry (never the process-global default, so two proxies in one test
//! process do not share counters). Each service gets a [`ServiceMetrics`]
//! once, with its labelled children resolved up front, and the request path
//! only bumps atomics.
//!
//! The ring metrics are not kept up to date by discovery: they are read from
//! each service's [`ServiceRing`] when `/metrics` is scraped (see
//! [`Metrics::render`]), so they always agree with `/ring` and need no locks.
//!
//! Every name starts with `shardproxy_` (SPEC §7). Labels are bounded: the
//! `service` names of the config, the instance names (`host:port`) of the
//! rings, HTTP status codes, and the fixed values of [`AttemptOutcome`].
//! An instance's label is `upstream`, not `instance`: Prometheus adds
//! `instance` (the scraped proxy's address) to every series it scrapes, and
//! a series' own `instance` would be renamed `exported_instance` or, with
//! `honor_labels`, hide which proxy it came from.
//!
//! # Metrics
//!
//! Requests, counted once per client request when the answer is sent:
//!
//! | name | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `shardproxy_requests_total` | counter | `service`, `status` | requests answered, by the status the client got |
//! | `shardproxy_request_duration_seconds` | histogram | `service` | time from receiving a request to its response head, over all attempts (buckets 50 µs to 10 s) |
//! | `shardproxy_upstream_attempts_total` | counter | `service`, `upstream`, `outcome` | attempts on instances; `outcome` is `response`, `retryable_status`, `connect_error`, `timeout` or `failed` ([`AttemptOutcome`]) |
//! | `shardproxy_upstream_attempt_duration_seconds` | histogram | `service`, `upstream` | time from sending an attempt to the instance's response head or the attempt's failure (the request duration's buckets) |
//! | `shardproxy_upstream_in_flight` | gauge | `service`, `upstream` | attempts sent to the instance and waiting for its response head |
//! | `shardproxy_instance_key_requests_total` | counter | `service`, `upstream` | requests whose key's primary on the ring in use is the instance, whether or not it answered (cache hits included; `crate::load`); per instance, never per key or range |
//! | `shardproxy_upstream_connections` | gauge | `service`, `upstream`, `state` | keep-alive connections to the instance, `state` `idle` or `active` (carrying a request or its response body), read from the pool at each scrape, for the instances of the ring in use |
//! | `shardproxy_retries_total` | counter | `service` | attempts after the first that the retry budget allowed |
//! | `shardproxy_retries_refused_total` | counter | `service` | retries not made because the retry budget was exhausted |
//! | `shardproxy_shed_total` | counter | `service` | requests answered `503` at once because the service had `max_concurrency` requests in flight |
//! | `shardproxy_load_bound_spills_total` | counter | `service` | reads that `load_bound` sent past the first instance it would have tried, because that one was at its bound |
//! | `shardproxy_ejections_total` | counter | `service`, `upstream`, `reason` | instances ejected by health checking; `reason` is `failures` (passive: consecutive failed requests) or `check` (an active check failed) |
//! | `shardproxy_restores_total` | counter | `service`, `upstream` | ejected instances taken back: the ejection ran out, or an active check passed |
//!
//! Ring transitions and replica writes ([`replication`]):
//!
//! | name | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `shardproxy_transition_reads_total` | counter | `service`, `result` | GET/HEAD whose primary moved, answered `404` on the new ring and tried on the replaced one within `transition_grace`; `result` is `found` (a `2xx`/`3xx` from the old ring was returned) or `not_found` (the `404` was) |
//! | `shardproxy_replica_writes_total` | counter | `service`, `result` | writes to one replica (`writes = "all"`); `result` is `ok` (`2xx`), `failed` (another answer, or none) or `abandoned` (stopped: the background limit was reached) |
//! | `shardproxy_write_quorum_total` | counter | `service`, `result` | writes with `writes = "all"`, `result` `reached` (the client got a `2xx`) or `failed` (`502`) |
//! | `shardproxy_background_writes` | gauge | `service` | replica writes still in flight after their client got its answer |
//! | `shardproxy_read_fallbacks_total` | counter | `service`, `result` | GET/HEAD answered `404` and tried on the rest of the preference list (`read_fallback_404`); `result` is `found` (a `2xx`/`3xx` was returned) or `not_found` |
//! | `shardproxy_read_repairs_total` | counter | `service`, `result` | objects a fallback found, written back to one instance that answered `404` (`read_repair`); `result` is `ok` (`2xx`), `exists` (`412`: it holds an object now, not overwritten), `failed` (another answer, or none) or `skipped` (not sent: not a `200` to a GET with a `Content-Length` up to `max_body` and no `Content-Encoding`, or the background limit reached) |
//!
//! Rings, read from discovery at each scrape:
//!
//! | name | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `shardproxy_ring_instances` | gauge | `service` | instances in the ring in use (for `balance = "srv"`, the SRV instances); 0 before the first ring |
//! | `shardproxy_ring_tokens` | gauge | `service` | distinct tokens on the ring in use; 0 for `balance = "srv"` and before the first ring |
//! | `shardproxy_ring_refreshes_total` | counter | `service`, `result` | ring resolutions, `result` `ok` (whether or not the ring changed) or `error` (the last good ring stayed in use) |
//! | `shardproxy_ring_changes_total` | counter | `service` | times a new ring replaced the one in use (the first ring counts) |
//! | `shardproxy_ring_info` | gauge | `service`, `fingerprint` | always 1, labelled with the fingerprint (SPEC §2) of the ring in use, so a fleet can be checked to agree; absent for `balance = "srv"` and before the first ring |
//! | `shardproxy_ring_last_refresh_timestamp_seconds` | gauge | `service` | when a resolution last succeeded, in seconds since the Unix epoch; absent before the first success |
//! | `shardproxy_ring_transition_remaining_seconds` | gauge | `service` | how much longer the replaced ring is tried for `404`s (`transition_grace`, SPEC §5); 0 when no transition is under way |
//!
//! The cache (SPEC §6), for services with `cache.enabled = true`:
//!
//! | name | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `shardproxy_cache_hits_total` | counter | `service` | requests answered from the cache, fresh (`x-cache: HIT`), those that waited for another's fetch included |
//! | `shardproxy_cache_misses_total` | counter | `service` | requests the cache fetched from an instance, revalidations included (`x-cache: MISS`) |
//! | `shardproxy_cache_stale_total` | counter | `service` | requests answered with a stale object (`x-cache: STALE`): grace, `stale-while-revalidate`, or the instances failed |
//! | `shardproxy_cache_passes_total` | counter | `service` | `GET`/`HEAD` requests not answered from the cache and whose answer was not stored (`Authorization`, `Range`, a body, an uncacheable or too large response) |
//! | `shardproxy_cache_coalesced_total` | counter | `service` | requests that waited for another request's fetch of the same object |
//! | `shardproxy_cache_evictions_total` | counter | `service` | objects evicted to stay under `max_size` |
//! | `shardproxy_cache_stored_bytes` | gauge | `service` | bytes stored (headers, bodies and bookkeeping), and those of evicted objects slow clients are still sent, read at each scrape |
//! | `shardproxy_cache_objects` | gauge | `service` | responses stored (each `Vary` variant counts), read at each scrape |
//!
//! Upgraded connections (SPEC §10: WebSocket and other `Upgrade`s):
//!
//! | name | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `shardproxy_upgrades_total` | counter | `service` | connections an instance switched (`101`) and the proxy relayed |
//! | `shardproxy_upgraded_connections` | gauge | `service` | upgraded connections being relayed now |
//!
//! The config and its reloads (SIGHUP):
//!
//! | name | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `shardproxy_config_reloads_total` | counter | `result` | reloads, `ok` (the new config is in use) or `error` (refused: it did not load, or its state or rings could not be built; the running config stays) |
//! | `shardproxy_config_last_reload_success_timestamp_seconds` | gauge | | when the config in use was loaded, at start or by a reload, in seconds since the Unix epoch |
//! | `shardproxy_config_info` | gauge | `hash` | always 1, labelled with a hash of the config in use ([`reload::config_hash`]), so a fleet can be checked to run one config |
//!
//! The process, from `/proc` (Linux only), as the Prometheus process
//! collector defines them with the `shardproxy_` prefix:
//! `shardproxy_process_cpu_seconds_total` (in steps of 10 ms, see
//! `process`), `shardproxy_process_open_fds`,
//! `shardproxy_process_max_fds`, `shardproxy_process_virtual_memory_bytes`,
//! `shardproxy_process_resident_memory_bytes`,
//! `shardproxy_process_start_time_seconds` and `shardproxy_process_threads`.
//!
//! # Layout
//!
//! - [`upstream`]: what attempts record of each instance.
//! - `connections`: each instance's pooled connections, read at each scrape.
//! - [`ring`]: the ring metrics, built at each scrape.
//! - [`replication`]: transition reads, replica writes, read fallbacks
//!   and repairs.
//! - `cache`: the cache counters, and the store sizes read at each scrape.
//! - [`reload`]: the config in use and its reloads.
//! - [`upgrade`]: upgraded connections.
//! - `process`: the process collector, its CPU seconds made fractional.

mod cache;
mod connections;
mod process;
pub mod reload;
pub mod replication;
mod ring;
pub mod upgrade;
pub mod upstream;

pub use cache::{CacheMetrics, CacheOutcome};
pub use upgrade::Upgraded;
pub use upstream::{InFlight, InstanceAttempts};

use std::sync::Arc;
use std::time::Duration;

use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::config::Config;
use crate::discovery::ServiceRing;
use crate::pool::Pool;
use reload::ReloadMetrics;
use replication::ReplicationMetrics;

/// `shardproxy_requests_total`.
pub const REQUESTS: &str = "shardproxy_requests_total";
/// `shardproxy_request_duration_seconds`.
pub const REQUEST_DURATION: &str = "shardproxy_request_duration_seconds";
/// `shardproxy_upstream_attempts_total`.
pub const ATTEMPTS: &str = "shardproxy_upstream_attempts_total";
/// `shardproxy_retries_total`.
pub const RETRIES: &str = "shardproxy_retries_total";
/// `shardproxy_load_bound_spills_total`.
pub const LOAD_BOUND_SPILLS: &str = "shardproxy_load_bound_spills_total";
/// `shardproxy_retries_refused_total`.
pub const RETRIES_REFUSED: &str = "shardproxy_retries_refused_total";
/// `shardproxy_shed_total`.
pub const SHED: &str = "shardproxy_shed_total";
/// `shardproxy_ejections_total`.
pub const EJECTIONS: &str = "shardproxy_ejections_total";
/// `shardproxy_restores_total`.
pub const RESTORES: &str = "shardproxy_restores_total";

/// Upper bounds of the request and attempt duration buckets, in seconds:
/// from a cache hit or a fast shard on the same host (50 µs; a median
/// pass-through request takes about 0.2 ms, which a first bucket of 0.5 ms
/// could not tell from 0) to the longest a client is likely to wait (ten
/// seconds; the default deadline is 15 s, which lands in `+Inf`).
pub const DURATION_BUCKETS: [f64; 17] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Status codes whose `shardproxy_requests_total` children are resolved
/// when a service's metrics are built, sorted: counting them touches one
/// atomic and no lock. Others take the label map's read lock.
const COMMON_STATUSES: [u16; 14] = [
    200, 201, 204, 301, 302, 304, 400, 404, 413, 431, 500, 502, 503, 504,
];

/// How one attempt on one instance ended, for
/// `shardproxy_upstream_attempts_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The instance answered with a status that is not retried.
    Response,
    /// The instance answered with a status of the service's `retry_on`.
    RetryableStatus,
    /// The connection could not be made.
    ConnectError,
    /// No response head within the per-try timeout or the deadline.
    Timeout,
    /// The exchange broke after the request may have been sent.
    Failed,
}

impl AttemptOutcome {
    /// Every outcome, in declaration order.
    pub const ALL: [AttemptOutcome; 5] = [
        AttemptOutcome::Response,
        AttemptOutcome::RetryableStatus,
        AttemptOutcome::ConnectError,
        AttemptOutcome::Timeout,
        AttemptOutcome::Failed,
    ];

    /// The `outcome` label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptOutcome::Response => "response",
            AttemptOutcome::RetryableStatus => "retryable_status",
            AttemptOutcome::ConnectError => "connect_error",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::Failed => "failed",
        }
    }
}

/// The proxy's metrics: a registry of its own and the metric families that
/// the request path records into. Built once per process and shared by
/// the states that reloads make, so counters go on
/// across a SIGHUP. Cloning shares the registry.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    attempts: IntCounterVec,
    retries: IntCounterVec,
    retries_refused: IntCounterVec,
    shed: IntCounterVec,
    spills: IntCounterVec,
    ejections: IntCounterVec,
    restores: IntCounterVec,
    replication: replication::Families,
    cache: cache::CacheFamilies,
    upstream: upstream::Families,
    upgrade: upgrade::Families,
    reload: ReloadMetrics,
}

/// What a scrape reads of one service, besides the families the request
/// path counts into: its ring, and its cache's size.
#[derive(Clone, Copy)]
pub struct Scraped<'a> {
    /// The service's name.
    pub name: &'a str,
    /// Its ring, as discovery keeps it.
    pub ring: &'a ServiceRing,
    /// Bytes and objects stored, when it has a cache.
    pub cache_usage: Option<(u64, u64)>,
    /// Its connections to its instances.
    pub pool: &'a Pool,
    /// How many instances of its ring in use are drained.
    pub drained: usize,
}

/// One service's metrics, with its labelled children resolved once by
/// [`Metrics::service`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ServiceMetrics {
    inner: Arc<ServiceChildren>,
}

#[derive(Debug)]
struct ServiceChildren {
    /// The `service` label value.
    service: Box<str>,
    /// `requests{service, status}` for each of [`COMMON_STATUSES`], in its
    /// order.
    common_statuses: Box<[IntCounter]>,
    /// The family, for the statuses not resolved up front.
    requests: IntCounterVec,
    duration: Histogram,
    /// The family: instance labels are only known once rings are.
    attempts: IntCounterVec,
    retries: IntCounter,
    retries_refused: IntCounter,
    shed: IntCounter,
    spills: IntCounter,
    ejections: IntCounterVec,
    restores: IntCounterVec,
    replication: ReplicationMetrics,
    /// The per-instance families, for [`ServiceMetrics::instance_attempts`].
    upstream: upstream::Families,
    upgrade: upgrade::UpgradeMetrics,
}

// === impl Metrics ===

impl Metrics {
    /// Builds the metric families and registers them, with the process
    /// collector, in a new registry.
    ///
    /// # Errors
    ///
    /// A [`prometheus::Error`] if the registry refuses a metric (which
    /// would be a bug in the names or labels here).
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(REQUESTS, "Requests answered, by the status the client got."),
            &["service", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                REQUEST_DURATION,
                "Time from receiving a request to sending its response head, over all attempts, in seconds.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["service"],
        )?;
        let attempts = IntCounterVec::new(
            Opts::new(ATTEMPTS, "Attempts on instances, by how they ended."),
            &["service", "upstream", "outcome"],
        )?;
        let retries = IntCounterVec::new(
            Opts::new(
                RETRIES,
                "Attempts after the first of a request, allowed by the retry budget.",
            ),
            &["service"],
        )?;
        let retries_refused = IntCounterVec::new(
            Opts::new(
                RETRIES_REFUSED,
                "Retries not made because the retry budget was exhausted.",
            ),
            &["service"],
        )?;
        let shed = IntCounterVec::new(
            Opts::new(
                SHED,
                "Requests answered 503 at once because the service had max_concurrency requests in flight.",
            ),
            &["service"],
        )?;
        let spills = IntCounterVec::new(
            Opts::new(
                LOAD_BOUND_SPILLS,
                "Reads that load_bound sent past the first instance they would have tried, because it was at its bound.",
            ),
            &["service"],
        )?;
        let ejections = IntCounterVec::new(
            Opts::new(EJECTIONS, "Instances ejected by health checking."),
            &["service", "upstream", "reason"],
        )?;
        let restores = IntCounterVec::new(
            Opts::new(RESTORES, "Ejected instances taken back."),
            &["service", "upstream"],
        )?;
        registry.register(Box::new(ejections.clone()))?;
        registry.register(Box::new(restores.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(retries_refused.clone()))?;
        registry.register(Box::new(shed.clone()))?;
        registry.register(Box::new(spills.clone()))?;
        registry.register(Box::new(process::ProcessMetrics::new()))?;
        let replication = replication::Families::register(&registry)?;
        let cache = cache::CacheFamilies::register(&registry)?;
        let upstream = upstream::Families::register(&registry)?;
        let reload = ReloadMetrics::register(&registry)?;
        let upgrade = upgrade::Families::register(&registry)?;
        Ok(Metrics {
            upstream,
            upgrade,
            reload,
            cache,
            registry,
            requests,
            duration,
            attempts,
            retries,
            retries_refused,
            shed,
            spills,
            ejections,
            restores,
            replication,
        })
    }

    /// The metrics of `service`, with its children resolved now so that
    /// recording needs no lookup. Call once per service.
    pub fn service(&self, service: &str) -> ServiceMetrics {
        // `with_label_values` panics only when the number of values differs
        // from the family's label names; each call here matches the family
        // built in `Metrics::new`.
        let common_statuses = COMMON_STATUSES
            .iter()
            .map(|&status| {
                with_status_label(status, |label| {
                    self.requests.with_label_values(&[service, label])
                })
            })
            .collect();
        ServiceMetrics {
            inner: Arc::new(ServiceChildren {
                service: service.into(),
                common_statuses,
                requests: self.requests.clone(),
                duration: self.duration.with_label_values(&[service]),
                attempts: self.attempts.clone(),
                retries: self.retries.with_label_values(&[service]),
                retries_refused: self.retries_refused.with_label_values(&[service]),
                shed: self.shed.with_label_values(&[service]),
                spills: self.spills.with_label_values(&[service]),
                ejections: self.ejections.clone(),
                restores: self.restores.clone(),
                replication: self.replication.service(service),
                upstream: self.upstream.clone(),
                upgrade: self.upgrade.service(service),
            }),
        }
    }

    /// The cache counters of `service`. Call once per service.
    pub fn cache(&self, service: &str) -> CacheMetrics {
        self.cache.service(service)
    }

    /// `config` is in use from now (at start, or after a reload): for
    /// `shardproxy_config_info` and the last reload's timestamp.
    pub fn config_in_use(&self, config: &Config) {
        self.reload.in_use(config);
    }

    /// Counts a reload: its config is in use (`ok`), or it was refused.
    pub fn reloaded(&self, ok: bool) {
        self.reload.reloaded(ok);
    }

    /// Everything in the Prometheus text format (version 0.0.4): the
    /// registered families, and the ring, connection and cache size
    /// metrics read now from what each service shows a scrape.
    pub fn render<'a>(&self, services: &[Scraped<'a>]) -> String {
        let usage = services.iter().filter_map(|service| {
            let (bytes, objects) = service.cache_usage?;
            Some((service.name, bytes, objects))
        });
        let mut families = match cache::families(usage) {
            Ok(families) => families,
            Err(error) => {
                tracing::error!(%error, "cannot build the cache metrics");
                Vec::new()
            }
        };
        match ring::drained_family(
            services
                .iter()
                .map(|service| (service.name, service.drained)),
        ) {
            Ok(more) => families.extend(more),
            Err(error) => tracing::error!(%error, "cannot build the drain metrics"),
        }
        let pools = services.iter().map(|service| (service.ring, service.pool));
        match connections::families(pools) {
            Ok(more) => families.extend(more),
            Err(error) => tracing::error!(%error, "cannot build the connection metrics"),
        }
        self.render_rings(services.iter().map(|service| service.ring), families)
    }

    /// [`Metrics::render`] for these rings, with `more` families.
    fn render_rings<'a>(
        &self,
        rings: impl IntoIterator<Item = &'a ServiceRing>,
        more: Vec<MetricFamily>,
    ) -> String {
        let mut families = self.registry.gather();
        families.extend(more);
        match ring::families(rings) {
            Ok(ring_families) => families.extend(ring_families),
            Err(error) => tracing::error!(%error, "cannot build the ring metrics"),
        }
        families.sort_by(|a, b| a.name().cmp(b.name()));
        encode(&families)
    }
}

/// The text format of `families`. A family the encoder refuses is left out
/// (and logged) rather than losing the whole scrape.
fn encode(families: &[MetricFamily]) -> String {
    let encoder = TextEncoder::new();
    let mut text = String::new();
    for family in families {
        if let Err(error) = encoder.encode_utf8(std::slice::from_ref(family), &mut text) {
            tracing::error!(family = family.name(), %error, "cannot encode a metric family");
        }
    }
    text
}

/// Calls `f` with the `status` label value of `status`: its three digits,
/// borrowed from `http`'s table rather than formatted.
fn with_status_label<R>(status: u16, f: impl FnOnce(&str) -> R) -> R {
    match http::StatusCode::from_u16(status) {
        Ok(code) => f(code.as_str()),
        Err(_) => f("invalid"),
    }
}

// === impl ServiceMetrics ===

impl ServiceMetrics {
    /// Counts a request answered with `status` after `elapsed`.
    #[inline]
    pub fn request(&self, status: u16, elapsed: Duration) {
        let inner = &*self.inner;
        match COMMON_STATUSES.binary_search(&status) {
            Ok(index) => {
                if let Some(counter) = inner.common_statuses.get(index) {
                    counter.inc();
                }
            }
            Err(_) => with_status_label(status, |label| {
                let labels = [&*inner.service, label];
                if let Ok(counter) = inner.requests.get_metric_with_label_values(&labels) {
                    counter.inc();
                }
            }),
        }
        inner.duration.observe(elapsed.as_secs_f64());
    }

    /// Counts an attempt on `instance` (`host:port`) that ended with
    /// `outcome`.
    #[inline]
    pub fn attempt(&self, instance: &str, outcome: AttemptOutcome) {
        let inner = &*self.inner;
        let labels = [&*inner.service, instance, outcome.as_str()];
        if let Ok(counter) = inner.attempts.get_metric_with_label_values(&labels) {
            counter.inc();
        }
    }

    /// The attempt metrics of `instance` (`host:port`), for the request
    /// path: the same attempt series as [`ServiceMetrics::attempt`], its
    /// duration and in-flight series, without a label lookup per attempt.
    /// Build it once per instance of a ring.
    pub fn instance_attempts(&self, instance: &str) -> InstanceAttempts {
        InstanceAttempts::new(self.clone(), &self.inner.upstream, instance)
    }

    /// The `service` label value.
    fn name(&self) -> &str {
        &self.inner.service
    }

    /// The `shardproxy_upstream_attempts_total` child of `instance` and
    /// `outcome`, for [`InstanceAttempts`] to keep.
    fn attempt_counter(&self, instance: &str, outcome: AttemptOutcome) -> Option<IntCounter> {
        let inner = &*self.inner;
        let labels = [&*inner.service, instance, outcome.as_str()];
        inner.attempts.get_metric_with_label_values(&labels).ok()
    }

    /// Counts an upgraded connection of this service, open until the
    /// guard is dropped.
    pub fn upgraded(&self) -> Upgraded {
        self.inner.upgrade.started()
    }

    /// Transition reads and replica writes.
    pub fn replication(&self) -> &ReplicationMetrics {
        &self.inner.replication
    }

    /// Counts a retry that the budget allowed.
    #[inline]
    pub fn retry(&self) {
        self.inner.retries.inc();
    }

    /// Counts a retry refused because the retry budget was exhausted.
    #[inline]
    pub fn retry_refused(&self) {
        self.inner.retries_refused.inc();
    }

    /// Counts a read that `load_bound` sent past its first instance.
    #[inline]
    pub fn load_bound_spill(&self) {
        self.inner.spills.inc();
    }

    /// Counts a request shed at the service's concurrency limit.
    #[inline]
    pub fn shed(&self) {
        self.inner.shed.inc();
    }

    /// Counts an ejection of `instance`; `reason` is `failures` or `check`.
    pub fn ejected(&self, instance: &str, reason: &str) {
        let labels = [&*self.inner.service, instance, reason];
        if let Ok(counter) = self.inner.ejections.get_metric_with_label_values(&labels) {
            counter.inc();
        }
    }

    /// Counts a restore of `instance`.
    pub fn restored(&self, instance: &str) {
        let labels = [&*self.inner.service, instance];
        if let Ok(counter) = self.inner.restores.get_metric_with_label_values(&labels) {
            counter.inc();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
