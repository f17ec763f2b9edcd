//! The running proxy: its state, built once from a config, and the handle
//! that starts and stops its listeners.
//!
//! [`App`] is what every request and admin call reads: the routes, each
//! service's ring (swapped whole by discovery), its upstream client and
//! retry budget, and the metrics. It is built off the request path and
//! shared behind an `Arc`; nothing in it is locked by a request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::cache::Cache;
use crate::config::{Config, ServiceConfig};
use crate::discovery::{
    build_resolver, Discovery, DiscoveryError, ServiceRing, Source, Succession,
};
use crate::forward::Upstream;
use crate::health::Health;
use crate::limits::ConcurrencyLimit;
use crate::metrics::{Metrics, ServiceMetrics};
use crate::route::Router;
use crate::server::{self, ServerError};

/// One service as the request path sees it.
pub struct Service {
    /// Its config section.
    pub config: ServiceConfig,
    /// Where its ring came from (for views).
    pub source: Source,
    /// Its current ring.
    pub ring: Arc<ServiceRing>,
    /// The pooled client and retry budget for its instances.
    pub upstream: Upstream,
    /// Its metrics, labelled children resolved once.
    pub metrics: ServiceMetrics,
    /// Its instances' health.
    pub health: Arc<Health>,
    /// Its requests in flight, at most `max_concurrency`.
    pub in_flight: ConcurrencyLimit,
    /// Its response cache, when `cache.enabled`; shared with the next
    /// [`App`] of a reload that leaves the cache's settings unchanged.
    pub cache: Option<Arc<Cache>>,
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
    /// Active health-check tasks, stopped when the app is dropped.
    checks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for App {
    fn drop(&mut self) {
        for check in &self.checks {
            check.abort();
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// Discovery could not start (a static ring that cannot be built, or no
    /// resolver).
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The metrics registry refused a metric.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

// === impl App ===

impl App {
    /// Builds the state and starts discovery. Must run inside a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// [`StartError`] when the config asks for what this version does not
    /// do, or discovery or the metrics cannot start.
    pub fn new(config: Config) -> Result<App, StartError> {
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
    pub fn next(config: Config, previous: &App) -> Result<App, StartError> {
        App::build(config, Some(previous))
    }

    fn build(config: Config, previous: Option<&App>) -> Result<App, StartError> {
        let metrics = match previous {
            Some(previous) => previous.metrics.clone(),
            None => Metrics::new()?,
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
                        .and_then(|old| old.ring.load_state()),
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
            let health = match previous.and_then(|previous| previous.service(&name)) {
                Some(old) => old
                    .health
                    .carried_over(service_config.outlier.clone(), service_metrics.clone()),
                None => Health::new(service_config.outlier.clone(), service_metrics.clone()),
            };
            services.push(Service {
                cache: match previous.and_then(|previous| previous.service(&name)) {
                    // A reload keeps what is stored while the cache's
                    // settings stay the same.
                    Some(old) if old.config.cache == service_config.cache => old.cache.clone(),
                    _ => Cache::new(&service_config.cache, metrics.cache(&name)).map(Arc::new),
                },
                upstream: Upstream::new(service_config),
                health: Arc::new(health),
                in_flight: ConcurrencyLimit::new(service_config.max_concurrency),
                metrics: service_metrics,
                config: service_config.clone(),
                source,
                ring: Arc::clone(ring),
            });
        }
        let checks = services
            .iter()
            .filter_map(|service| {
                let check = service.config.health_check.clone()?;
                Some(tokio::spawn(crate::health::check_forever(
                    Arc::clone(&service.ring),
                    Arc::clone(&service.health),
                    service.upstream.pool().clone(),
                    check,
                )))
            })
            .collect();
        let router = Router::new(&config.routes, |name| {
            services
                .iter()
                .position(|service| service.config.name == name)
        });
        Ok(App {
            router,
            services,
            discovery,
            metrics,
            config,
            checks,
        })
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|service| service.config.name == name)
    }
}

/// A proxy that is serving: its bound addresses, and the way to reload and
/// stop it.
pub struct Running {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Where the admin API answers.
    pub admin: SocketAddr,
    current: Arc<ArcSwap<App>>,
    servers: server::Handle,
}

/// Why a reload was refused; the running config stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new config cannot start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The new config's rings did not all resolve in time.
    #[error("the new config's rings were not ready within {0:?}: {1}")]
    NotReady(Duration, String),
}

/// How long a reload waits for the new config's rings before giving up.
pub const RELOAD_READY_TIMEOUT: Duration = Duration::from_secs(10);

impl Running {
    /// The state requests are served with now.
    pub fn app(&self) -> Arc<App> {
        self.current.load_full()
    }

    /// Replaces the config of the running proxy without dropping a request:
    /// the new state is built and its rings resolved first, then swapped in
    /// whole; requests in flight finish on the old one. The listen and admin
    /// addresses stay as bound (a change to them needs a restart, and is
    /// logged).
    ///
    /// # Errors
    ///
    /// [`ReloadError`] when the new config cannot start or its rings do not
    /// resolve in time; nothing changes then.
    pub async fn reload(&self, config: Config) -> Result<(), ReloadError> {
        if config.server.listen != self.app().config.server.listen
            || config.server.admin != self.app().config.server.admin
        {
            tracing::warn!("server.listen and server.admin changes take effect on restart only");
        }
        let next = App::next(config, &self.app())?;
        let ready = tokio::time::timeout(RELOAD_READY_TIMEOUT, async {
            while !next.discovery.ready() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if ready.is_err() {
            let missing: Vec<String> = next
                .services
                .iter()
                .filter(|service| service.ring.load().is_none())
                .map(|service| match service.ring.status().last_error {
                    Some((_, error)) => format!("{}: {error}", service.config.name),
                    None => format!("{}: no answer yet", service.config.name),
                })
                .collect();
            return Err(ReloadError::NotReady(
                RELOAD_READY_TIMEOUT,
                missing.join("; "),
            ));
        }
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// Stops accepting connections, lets requests in flight finish, and
    /// returns when both listeners are closed.
    pub async fn shutdown(self) {
        self.servers.shutdown().await;
    }
}

/// Binds the listeners of `config.server`, starts discovery, and serves
/// until [`Running::shutdown`]. Port 0 picks a free port; see
/// [`Running::listen`].
///
/// # Errors
///
/// [`StartError`] when a listener cannot be bound or discovery cannot start.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let listener = server::bind(config.server.listen)?;
    let admin_listener = server::bind(config.server.admin)?;
    let listen = server::local_addr(&listener)?;
    let admin = server::local_addr(&admin_listener)?;
    let current = Arc::new(ArcSwap::from_pointee(App::new(config)?));
    let servers = server::spawn(Arc::clone(&current), listener, admin_listener);
    Ok(Running {
        listen,
        admin,
        current,
        servers,
    })
}
