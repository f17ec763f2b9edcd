//! The per-service handle: everything forwarding needs of one service, in
//! one value that `forward`, its transition reads and replica writes, the
//! cache and the pipeline take, so that none of them reads the whole app.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use shardproxy_ring::Token;
use tower::retry::budget::Budget as _;

use crate::config::ServiceConfig;
use crate::discovery::{RingState, ServiceRing, Snapshot};
use crate::error::ProxyError;
use crate::health::Health;
use crate::key;
use crate::limits::ConcurrencyLimit;
use crate::load::{HotKeys, RangeLoad};
use crate::metrics::ServiceMetrics;
use crate::pool::{Pool, Settings};

use super::background::Background;
use super::budget::RetryBudget;
use super::endpoint::EndpointCache;
use super::tunnels::Tunnels;

/// One service as the request path sees it: its config, its ring (swapped
/// whole by discovery), its instances' health, its metrics and its limit of
/// requests in flight; and its way to the instances: the keep-alive
/// connections, the retry budget that keeps a failing fleet from a retry
/// storm, the bound on its background replica writes, and the upgraded
/// connections it relays.
pub struct Upstream {
    /// Its config section.
    pub config: ServiceConfig,
    /// Its current ring.
    pub ring: Arc<ServiceRing>,
    /// Its instances' health, carried over a reload.
    pub health: Arc<Health>,
    /// Its metrics, labelled children resolved once.
    pub metrics: ServiceMetrics,
    /// Its requests in flight, at most `max_concurrency`.
    pub in_flight: ConcurrencyLimit,
    /// Its hot keys (`/keys/hot`), kept for the life of this handle: a
    /// ring change keeps them (keys are counted by hash, not by range), a
    /// reload starts afresh.
    pub hot: HotKeys,
    pub(super) budget: RetryBudget,
    pub(super) endpoints: EndpointCache,
    pub(super) writes: Background,
    /// The upgraded connections of every service, closed on shutdown.
    pub(super) tunnels: Tunnels,
}

// === impl Upstream ===

impl Upstream {
    /// The handle of the service `config`, whose ring is `ring`, served by
    /// `workers` threads (`server.workers`).
    pub fn new(
        config: ServiceConfig,
        ring: Arc<ServiceRing>,
        health: Arc<Health>,
        metrics: ServiceMetrics,
        tunnels: Tunnels,
        workers: usize,
    ) -> Upstream {
        let pool = Pool::new(Settings {
            connect_timeout: config.try_timeout,
            max_idle: config.upstream_max_idle,
            idle_timeout: config.upstream_idle_timeout,
            protocol: config.upstream_protocol,
            tls: config
                .upstream_tls
                .as_ref()
                .map(|tls| Arc::clone(&tls.settings)),
            workers,
        });
        // tower's budget arithmetic: deposits made over the last 10 s allow
        // `retry_budget` retries each, plus `retry_min_per_second`.
        let budget = RetryBudget::new(
            Duration::from_secs(10),
            config.retry_min_per_second,
            config.retry_budget as f32,
        );
        Upstream {
            in_flight: ConcurrencyLimit::new(config.max_concurrency),
            hot: HotKeys::new(config.hot_keys_record, tokio::time::Instant::now()),
            endpoints: EndpointCache::new(pool),
            budget,
            writes: Background::default(),
            tunnels,
            config,
            ring,
            health,
            metrics,
        }
    }

    /// The connections to the instances, for active health checks.
    pub fn pool(&self) -> &Pool {
        self.endpoints.pool()
    }

    /// The ring in use and its requests per range so far (`None` before
    /// any request saw it); `None` before the first ring.
    pub fn range_load(&self) -> Option<(Arc<Snapshot>, Option<Arc<RangeLoad>>)> {
        let snapshot = self.ring.load_full()?;
        let load = self.endpoints.load_of(&snapshot);
        Some((snapshot, load))
    }

    /// Counts a request the proxy answered without forwarding it (a cache
    /// hit) where it would have gone: its range, its primary and its key.
    /// A request without a key, or before the first ring, is not counted.
    pub fn answered_here(&self, parts: &Parts) {
        let Ok(key) = key::extract(&self.config.key, parts) else {
            return;
        };
        let Some(state) = self.ring.load_state() else {
            return;
        };
        let position = Token::of_key(&key);
        let endpoints = self.endpoints.get(&state.current, &self.metrics);
        endpoints.count(position);
        self.hot.request(position, &key);
    }

    /// Whether the retry budget allows one more attempt; counted either way.
    pub(super) fn retry_allowed(&self) -> bool {
        if self.budget.withdraw() {
            self.metrics.retry();
            true
        } else {
            self.metrics.retry_refused();
            false
        }
    }

    /// The ring in use (and the one it replaced), held for a request's
    /// life: a ring swapped in meanwhile never changes the instances it
    /// walks.
    ///
    /// # Errors
    ///
    /// [`ProxyError::NoRing`] before discovery has succeeded once.
    pub(super) fn ring_state(&self) -> Result<Arc<RingState>, ProxyError> {
        self.ring.load_state().ok_or_else(|| ProxyError::NoRing {
            service: self.config.name.clone(),
            detail: self.ring.status().last_error.map_or_else(
                || "discovery has not finished".to_owned(),
                |(_, error)| error.to_string(),
            ),
        })
    }
}
