//! The proxy's state, built once from a config: what every request and
//! admin call reads. The routes, each service's [`Upstream`] handle (its
//! ring, swapped whole by discovery, its health, connections, retry budget
//! and metrics) and its cache, and the metrics registry. It is built off
//! the request path and shared behind an `Arc`; nothing in it is locked by
//! a request. Starting, reloading and stopping it is `run`'s.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;

use crate::access_log::{AccessLog, OpenError};
use crate::cache::Cache;
use crate::config::{Config, ServiceConfig};
use crate::discovery::{build_resolver, Discovery, DiscoveryError, Source, Succession};
use crate::forward::{Tunnels, Upstream};
use crate::health::Health;
use crate::metrics::{Metrics, Scraped};
use crate::route::{Matched, Router};

/// One service: its handle for forwarding, and what only the cache and
/// the views need.
pub struct Service {
    /// What forwarding needs of it; shared with the cache's background
    /// refreshes.
    pub upstream: Arc<Upstream>,
    /// Its response cache, when `cache.enabled`; shared with the next
    /// [`App`] of a reload that leaves the cache's settings unchanged.
    pub cache: Option<Arc<Cache>>,
    /// Where its ring came from (for views).
    pub source: Source,
}

/// Everything requests and admin calls share.
pub struct App {
    /// The routes, in order.
    pub router: Router,
    /// The services, indexed by the router.
    pub services: Vec<Service>,
    /// Discovery's tasks and rings.
    pub discovery: Discovery,
    /// The metrics registry.
    pub metrics: Metrics,
    /// The config it was built from.
    pub config: Config,
    /// The DNS resolver of `[dns]`, for lookups outside discovery (the
    /// SRV name of `[cache_peers]`).
    pub resolver: hickory_resolver::TokioResolver,
    /// The access log, when `[log] access_log` is on; kept by a reload
    /// that leaves its settings as they were.
    pub access_log: Option<Arc<AccessLog>>,
    /// The upgraded connections being relayed (SPEC §10), shared by the
    /// states that reloads make so that shutdown closes them all.
    pub tunnels: Tunnels,
    /// Active health-check and recovery-probe tasks, stopped when the app
    /// is dropped.
    checks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for App {
    fn drop(&mut self) {
        for check in &self.checks {
            check.abort();
        }
    }
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Discovery could not start (a static ring that cannot be built, or no
    /// resolver).
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The metrics registry refused a metric.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The access log file could not be opened.
    #[error(transparent)]
    AccessLog(#[from] OpenError),
}

// === impl App ===

impl App {
    /// Builds the state and starts discovery. Must run inside a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// [`BuildError`] when discovery or the metrics cannot start.
    pub fn new(config: Config) -> Result<App, BuildError> {
        App::build(config, None)
    }

    /// [`App::new`] for a reload: it keeps the metrics registry of
    /// `previous` (counters go on), the health of its services of the
    /// same name (ejections go on), and their caches where the cache
    /// settings are unchanged (stored objects stay).
    ///
    /// # Errors
    ///
    /// As [`App::new`].
    pub fn next(config: Config, previous: &App) -> Result<App, BuildError> {
        App::build(config, Some(previous))
    }

    fn build(config: Config, previous: Option<&App>) -> Result<App, BuildError> {
        let metrics = match previous {
            Some(previous) => previous.metrics.clone(),
            None => Metrics::new()?,
        };
        let tunnels = previous.map_or_else(Tunnels::new, |previous| previous.tunnels.clone());
        let access_log = match previous.and_then(|previous| previous.access_log.as_ref()) {
            Some(log) if log.is_for(&config.log) => Some(Arc::clone(log)),
            _ => AccessLog::open(&config.log)?.map(Arc::new),
        };
        let resolver = build_resolver(config.dns_servers())?;
        let sources: Vec<(String, Source)> = config
            .services
            .iter()
            .map(|(name, service)| (name.clone(), Source::of(service)))
            .collect();
        // A reload that changes a service's ring starts a transition as a
        // refresh would: the new ring succeeds the one the old config used.
        let successions = sources
            .iter()
            .map(|(name, source)| {
                let succession = Succession {
                    grace: config
                        .service(name)
                        .map_or(Duration::ZERO, |service| service.transition_grace),
                    predecessor: previous
                        .and_then(|previous| previous.service(name))
                        .and_then(|old| old.upstream.ring.load_state()),
                };
                (name.clone(), source.clone(), succession)
            })
            .collect();
        let discovery = Discovery::start_succeeding(successions, &resolver, config.dns.refresh)?;
        let mut services = Vec::with_capacity(sources.len());
        for ((name, source), ring) in sources.into_iter().zip(discovery.services()) {
            let Some(service_config) = config.service(&name) else {
                continue;
            };
            let service_metrics = metrics.service(&name);
            let old = previous.and_then(|previous| previous.service(&name));
            let health = match old {
                Some(old) => old
                    .upstream
                    .health
                    .carried_over(service_config.outlier.clone(), service_metrics.clone()),
                None => Health::new(service_config.outlier.clone(), service_metrics.clone()),
            };
            services.push(Service {
                cache: match old {
                    // A reload keeps what is stored while the cache's
                    // settings stay the same.
                    Some(old) if old.config().cache == service_config.cache => old.cache.clone(),
                    _ => Cache::new(&service_config.cache, metrics.cache(&name)).map(Arc::new),
                },
                upstream: Arc::new(Upstream::new(
                    service_config.clone(),
                    Arc::clone(ring),
                    Arc::new(health),
                    service_metrics,
                    tunnels.clone(),
                    config.server.workers.map_or(1, std::num::NonZeroUsize::get),
                )),
                source,
            });
        }
        let mut checks: Vec<_> = services
            .iter()
            .filter_map(|service| {
                let upstream = &service.upstream;
                let check = upstream.config.health_check.clone()?;
                Some(tokio::spawn(crate::health::check_forever(
                    Arc::clone(&upstream.ring),
                    Arc::clone(&upstream.health),
                    upstream.pool().clone(),
                    check,
                )))
            })
            .collect();
        // One prober per service, idle until an instance is ejected.
        checks.extend(services.iter().map(|service| {
            let upstream = &service.upstream;
            tokio::spawn(crate::health::probe_forever(
                Arc::clone(&upstream.ring),
                Arc::clone(&upstream.health),
                upstream.pool().clone(),
                upstream.config.health_check.clone(),
            ))
        }));
        let router = Router::new(&config.routes, |name| {
            services
                .iter()
                .position(|service| service.config().name == name)
        });
        Ok(App {
            router,
            services,
            discovery,
            metrics,
            config,
            resolver,
            access_log,
            tunnels,
            checks,
        })
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|service| service.config().name == name)
    }

    /// The service called `name` (as a query gave it), or the error that
    /// says there is none and lists those there are.
    ///
    /// # Errors
    ///
    /// The text of the error, when no service has that name.
    pub fn named(&self, name: &[u8]) -> Result<&Service, String> {
        std::str::from_utf8(name)
            .ok()
            .and_then(|name| self.service(name))
            .ok_or_else(|| {
                let names: Vec<String> = self
                    .services
                    .iter()
                    .map(|service| format!("{:?}", service.config().name))
                    .collect();
                format!(
                    "no service {:?}: the services are {}",
                    String::from_utf8_lossy(name),
                    names.join(", ")
                )
            })
    }

    /// The route a request matches and the service it names (SPEC §4: the
    /// first matching route), or `None`.
    #[inline]
    pub fn route(&self, parts: &Parts) -> Option<(Matched<'_>, &Service)> {
        let matched = self.router.route(parts)?;
        let service = self.services.get(matched.service)?;
        Some((matched, service))
    }

    /// What a `/metrics` scrape reads of each service besides the
    /// registered families.
    pub fn scraped(&self) -> Vec<Scraped<'_>> {
        self.services
            .iter()
            .map(|service| Scraped {
                name: &service.config().name,
                ring: &service.upstream.ring,
                cache_usage: service.cache.as_ref().map(|cache| cache.usage()),
                pool: service.upstream.pool(),
                drained: service
                    .upstream
                    .ring
                    .load_full()
                    .map_or(0, |ring| service.upstream.health.drained(&ring).len()),
            })
            .collect()
    }
}

// === impl Service ===

impl Service {
    /// Its config section.
    pub fn config(&self) -> &ServiceConfig {
        &self.upstream.config
    }
}
