//! Discovery: turns DNS records (or a static list) into rings, keeps them
//! fresh, and swaps each new ring in whole (SPEC §3).
//!
//! Readers on the request path call [`ServiceRing::load`] and never wait: the
//! current [`RingState`] (the [`Snapshot`] in use, and the one it replaced
//! while a service's `transition_grace` lasts) sits in an `ArcSwapOption`,
//! and a refresh builds the next one off to the side and stores it only when
//! the ring differs. A refresh that fails, or finds a malformed record,
//! changes nothing but the error shown at `/ring`: the last good ring keeps
//! serving.
//!
//! # Layout
//!
//! - [`resolve`]: one resolution of a service's records.
//! - [`error`]: why a resolution failed.

pub mod error;
pub mod resolve;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use arc_swap::{ArcSwapOption, Guard};
use hickory_resolver::TokioResolver;
use shardproxy_ring::srv::SrvWeight;
use shardproxy_ring::{InstanceName, Member, Replication, Ring};

use crate::config::{self, ServiceConfig, TokenSource};

pub use crate::config::Balance;
pub use error::DiscoveryError;
pub use resolve::{build_resolver, resolve, Resolved};

/// Refreshes never come closer together than this, whatever the TTLs say
/// (SPEC §3).
pub const MIN_REFRESH: Duration = Duration::from_secs(1);

/// After a failed refresh, try again after at most this long (or sooner if
/// `dns.refresh` is shorter), so a DNS outage is noticed ending quickly.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Where instances' tokens come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenMode {
    /// TXT records at `tokens.<port>.<target>`.
    Dns,
    /// Hashes of `host:port#i` (SPEC §2), for instances that publish none.
    Derived {
        /// Tokens per instance.
        virtual_nodes: u32,
    },
}

/// A service whose ring is published in DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSource {
    /// The SRV name, e.g. `_frobnicator._http.example.com`.
    pub srv: String,
    /// How instances are chosen.
    pub balance: Balance,
    /// Where tokens come from.
    pub tokens: TokenMode,
    /// The config's `slaves` and `redundancy`, if given: the ring's
    /// settings while DNS publishes no `config.<srv>` record.
    pub replication: Option<Replication>,
}

/// Where a ring's replication settings came from, for `/ring` and
/// `check`: an operator must be able to tell which one is in effect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplicationFrom {
    /// The `config.<srv>` TXT record.
    Dns,
    /// The config file's `slaves` and `redundancy`.
    Config,
    /// Neither: no replicas.
    #[default]
    Default,
}

impl ReplicationFrom {
    /// The name views use.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicationFrom::Dns => "dns",
            ReplicationFrom::Config => "config",
            ReplicationFrom::Default => "default",
        }
    }
}

/// An instance of a `balance = "srv"` service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvInstance {
    /// `host:port`.
    pub name: InstanceName,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Its SRV priority and weight.
    pub weight: SrvWeight,
}

/// What requests of a service are routed with.
#[derive(Clone, Debug)]
pub enum Table {
    /// A consistent-hash ring.
    Ring(Ring),
    /// SRV records in RFC 2782 terms, sorted by name.
    Srv(Vec<SrvInstance>),
}

impl Table {
    /// True when the table sends requests nowhere.
    pub fn is_empty(&self) -> bool {
        match self {
            Table::Ring(ring) => ring.is_empty(),
            Table::Srv(instances) => instances.is_empty(),
        }
    }

    /// Each instance's name and address, in the table's order: the indexes
    /// its preference lists and SRV orders use.
    pub fn instances(&self) -> impl Iterator<Item = (&InstanceName, SocketAddr)> + '_ {
        let (ring, srv) = match self {
            Table::Ring(ring) => (Some(ring.instances()), None),
            Table::Srv(instances) => (None, Some(instances)),
        };
        let ring = ring.into_iter().flatten();
        let srv = srv.into_iter().flatten();
        ring.map(|instance| (instance.name(), instance.addr()))
            .chain(srv.map(|instance| (&instance.name, instance.addr)))
    }

    /// True when both describe the same instances and settings. Rings
    /// compare by fingerprint, which covers names, addresses, tokens and
    /// replication.
    fn same_as(&self, other: &Table) -> bool {
        match (self, other) {
            (Table::Ring(a), Table::Ring(b)) => a.fingerprint() == b.fingerprint(),
            (Table::Srv(a), Table::Srv(b)) => a == b,
            _ => false,
        }
    }
}

/// One ring in use: everything that must agree, swapped as one.
#[derive(Debug)]
pub struct Snapshot {
    /// The ring or SRV set.
    pub table: Table,
    /// Where its replication settings came from.
    pub replication_from: ReplicationFrom,
    /// When it was discovered.
    pub discovered_at: SystemTime,
}

/// What a service's requests read, swapped whole so that the ring in use
/// and the one it replaced always agree.
#[derive(Debug)]
pub struct RingState {
    /// The ring in use.
    pub current: Arc<Snapshot>,
    /// The ring `current` replaced, kept only when the service has a
    /// `transition_grace` (SPEC §5): the old owners of keys that moved may
    /// still hold them.
    pub previous: Option<Replaced>,
}

/// A ring that a newer one replaced.
#[derive(Debug, Clone)]
pub struct Replaced {
    /// The old ring.
    pub snapshot: Arc<Snapshot>,
    /// When it stopped being the ring in use.
    pub at: Instant,
}

/// How a service's ring changes hands: how long a replaced ring is kept, and
/// the state of the ring this one succeeds (the same service's ring before a
/// reload), so that a reload that changes the ring starts a transition too.
#[derive(Debug, Clone, Default)]
pub struct Succession {
    /// `transition_grace`: zero keeps no replaced ring.
    pub grace: Duration,
    /// The state of the service's ring in the config being replaced.
    pub predecessor: Option<Arc<RingState>>,
}

// === impl RingState ===

impl RingState {
    /// The replaced ring, if it was replaced less than `grace` ago.
    pub fn previous_within(&self, grace: Duration) -> Option<&Arc<Snapshot>> {
        self.previous
            .as_ref()
            .filter(|replaced| replaced.at.elapsed() < grace)
            .map(|replaced| &replaced.snapshot)
    }
}

/// The outcome of the latest refresh attempt, for `/ring` and `check`.
#[derive(Clone, Debug, Default)]
pub struct RefreshStatus {
    /// When a refresh last succeeded (whether or not the ring changed).
    pub last_success: Option<SystemTime>,
    /// When a refresh last failed, and why.
    pub last_error: Option<(SystemTime, DiscoveryError)>,
}

/// A service's current ring and the state of its discovery.
#[derive(Debug)]
pub struct ServiceRing {
    name: String,
    state: ArcSwapOption<RingState>,
    /// How long a replaced ring is kept.
    grace: Duration,
    /// The state before a reload, until the first ring is accepted.
    predecessor: Mutex<Option<Arc<RingState>>>,
    status: Mutex<RefreshStatus>,
    refreshes_ok: AtomicU64,
    refreshes_failed: AtomicU64,
    ring_changes: AtomicU64,
}

// === impl ServiceRing ===

impl ServiceRing {
    /// A service with no ring yet.
    pub fn new(name: impl Into<String>) -> ServiceRing {
        ServiceRing::succeeding(name, Succession::default())
    }

    /// A service with no ring yet, that keeps a replaced ring for
    /// `succession.grace` and whose first ring succeeds
    /// `succession.predecessor`.
    pub fn succeeding(name: impl Into<String>, succession: Succession) -> ServiceRing {
        ServiceRing {
            name: name.into(),
            state: ArcSwapOption::empty(),
            grace: succession.grace,
            predecessor: Mutex::new(succession.predecessor),
            status: Mutex::new(RefreshStatus::default()),
            refreshes_ok: AtomicU64::new(0),
            refreshes_failed: AtomicU64::new(0),
            ring_changes: AtomicU64::new(0),
        }
    }

    /// A service whose ring is fixed (static `instances`).
    pub fn fixed(name: impl Into<String>, table: Table) -> ServiceRing {
        ServiceRing::fixed_succeeding(name, table, Succession::default())
    }

    /// [`ServiceRing::fixed`], succeeding `succession.predecessor` (a
    /// reload of a static ring).
    pub fn fixed_succeeding(
        name: impl Into<String>,
        table: Table,
        succession: Succession,
    ) -> ServiceRing {
        let service = ServiceRing::succeeding(name, succession);
        service.accept(Resolved {
            table,
            warnings: Vec::new(),
            min_ttl: None,
            replication_from: ReplicationFrom::Config,
        });
        service
    }

    /// The service's name in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current state, for a brief read. Hold it across an `.await`
    /// only through [`ServiceRing::load_state`].
    #[inline]
    pub fn load(&self) -> Guard<Option<Arc<RingState>>> {
        self.state.load()
    }

    /// The current state, owned: what a request reads once and holds.
    #[inline]
    pub fn load_state(&self) -> Option<Arc<RingState>> {
        self.state.load_full()
    }

    /// The ring in use, owned.
    pub fn load_full(&self) -> Option<Arc<Snapshot>> {
        self.state
            .load()
            .as_ref()
            .map(|state| Arc::clone(&state.current))
    }

    /// How much longer the replaced ring is consulted, while a transition
    /// lasts (SPEC §5 `transition_grace`).
    pub fn transition_remaining(&self) -> Option<Duration> {
        let state = self.state.load();
        let replaced = state.as_ref()?.previous.as_ref()?;
        self.grace
            .checked_sub(replaced.at.elapsed())
            .filter(|remaining| !remaining.is_zero())
    }

    /// The latest refresh outcome.
    pub fn status(&self) -> RefreshStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Successful refreshes so far.
    pub fn refreshes_ok(&self) -> u64 {
        self.refreshes_ok.load(Ordering::Relaxed)
    }

    /// Failed refreshes so far.
    pub fn refreshes_failed(&self) -> u64 {
        self.refreshes_failed.load(Ordering::Relaxed)
    }

    /// How many times a new ring replaced the one in use (the first ring
    /// counts).
    pub fn ring_changes(&self) -> u64 {
        self.ring_changes.load(Ordering::Relaxed)
    }

    /// Takes a successful resolution: stores its table if it differs from
    /// the one in use, and logs its warnings when it does. Returns whether
    /// the ring changed.
    pub fn accept(&self, resolved: Resolved) -> bool {
        let now = SystemTime::now();
        self.refreshes_ok.fetch_add(1, Ordering::Relaxed);
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last_success = Some(now);
        let state = self.state.load_full();
        if let Some(state) = &state {
            if state.current.table.same_as(&resolved.table)
                && state.current.replication_from == resolved.replication_from
            {
                self.forget_expired(state);
                return false;
            }
        }
        for warning in &resolved.warnings {
            tracing::warn!(service = %self.name, "{warning}");
        }
        if let Table::Ring(ring) = &resolved.table {
            tracing::info!(
                service = %self.name,
                instances = ring.instances().len(),
                tokens = ring.point_count(),
                replication = %ring.replication(),
                fingerprint = %ring.fingerprint(),
                "new ring in use"
            );
        }
        let current = Arc::new(Snapshot {
            table: resolved.table,
            replication_from: resolved.replication_from,
            discovered_at: now,
        });
        let previous = self.replaced_by(state, &current);
        self.state
            .store(Some(Arc::new(RingState { current, previous })));
        self.ring_changes.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// What `current` replaces: the ring in use, or on the first ring after
    /// a reload, the predecessor's ring (or, when the reload kept the ring,
    /// the ring the predecessor was still in transition from). Nothing when
    /// the service keeps no replaced ring.
    fn replaced_by(&self, state: Option<Arc<RingState>>, current: &Snapshot) -> Option<Replaced> {
        let predecessor = self
            .predecessor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if self.grace.is_zero() {
            return None;
        }
        match state.or(predecessor) {
            Some(old) if old.current.table.same_as(&current.table) => old.previous.clone(),
            Some(old) => Some(Replaced {
                snapshot: Arc::clone(&old.current),
                at: Instant::now(),
            }),
            None => None,
        }
    }

    /// Drops a replaced ring once its grace is over, so that it is not held
    /// until the next change.
    fn forget_expired(&self, state: &Arc<RingState>) {
        if state.previous.is_some() && state.previous_within(self.grace).is_none() {
            let current = Arc::clone(&state.current);
            let cleared = Arc::new(RingState {
                current,
                previous: None,
            });
            // Only if no change came in meanwhile.
            self.state.compare_and_swap(state, Some(cleared));
        }
    }

    /// Records a failed resolution; the ring in use stays.
    pub fn reject(&self, error: DiscoveryError) {
        tracing::error!(service = %self.name, error = %error, "ring refresh failed; keeping the last good ring");
        self.refreshes_failed.fetch_add(1, Ordering::Relaxed);
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last_error = Some((SystemTime::now(), error));
    }

    /// Resolves once and applies the result; returns the delay until the
    /// next refresh: the smallest record TTL, at most `refresh`, at least
    /// [`MIN_REFRESH`]; after a failure at most [`RETRY_AFTER_FAILURE`].
    pub async fn refresh_once(
        &self,
        resolver: &TokioResolver,
        source: &DnsSource,
        refresh: Duration,
    ) -> Duration {
        let next = match resolve(resolver, source).await {
            Ok(resolved) => {
                let next = resolved.min_ttl.map_or(refresh, |ttl| ttl.min(refresh));
                self.accept(resolved);
                next
            }
            Err(error) => {
                self.reject(error);
                refresh.min(RETRY_AFTER_FAILURE)
            }
        };
        next.max(MIN_REFRESH)
    }

    /// Refreshes forever on the schedule of [`ServiceRing::refresh_once`].
    /// Spawn it; drop (abort) the task to stop.
    pub async fn refresh_forever(
        self: Arc<Self>,
        resolver: TokioResolver,
        source: DnsSource,
        refresh: Duration,
    ) {
        loop {
            let next = self.refresh_once(&resolver, &source, refresh).await;
            tokio::time::sleep(next).await;
        }
    }
}

/// Where a service's ring comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Published in DNS, refreshed.
    Dns(DnsSource),
    /// Listed in the config: fixed for the life of the config.
    Static(Vec<Member>, Replication),
}

impl Source {
    /// Where the config says `service`'s ring comes from.
    pub fn of(service: &ServiceConfig) -> Source {
        match &service.discovery {
            config::Discovery::Dns {
                srv,
                tokens,
                replication,
            } => Source::Dns(DnsSource {
                srv: srv.clone(),
                replication: *replication,
                balance: service.balance,
                tokens: match tokens {
                    TokenSource::Dns => TokenMode::Dns,
                    TokenSource::Derived => TokenMode::Derived {
                        virtual_nodes: service.virtual_nodes.get(),
                    },
                },
            }),
            config::Discovery::Static {
                members,
                replication,
            } => Source::Static(members.clone(), *replication),
        }
    }

    /// The SRV name, or `static`, for views and logs.
    pub fn describe(&self) -> &str {
        match self {
            Source::Dns(dns) => &dns.srv,
            Source::Static(..) => "static",
        }
    }
}

/// Resolves `source` once: DNS lookups for a DNS source, a ring build for a
/// static one.
///
/// # Errors
///
/// Any [`DiscoveryError`]; for a static source only an oversized ring.
pub async fn resolve_source(
    resolver: &TokioResolver,
    source: &Source,
) -> Result<Resolved, DiscoveryError> {
    match source {
        Source::Dns(dns) => resolve(resolver, dns).await,
        Source::Static(members, replication) => {
            let ring = Ring::build(members.clone(), *replication)?;
            Ok(Resolved {
                warnings: ring.warnings().iter().map(ToString::to_string).collect(),
                table: Table::Ring(ring),
                min_ttl: None,
                replication_from: ReplicationFrom::Config,
            })
        }
    }
}

/// The rings of every service, kept fresh by background tasks that stop
/// when this is dropped.
#[derive(Debug)]
pub struct Discovery {
    services: Vec<Arc<ServiceRing>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Discovery {
    /// Starts discovery for `services`: static rings are built now, DNS
    /// rings are resolved by one task each, at once and then on schedule.
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// A static ring that cannot be built.
    pub fn start(
        services: Vec<(String, Source)>,
        resolver: &TokioResolver,
        refresh: Duration,
    ) -> Result<Discovery, DiscoveryError> {
        let services = services
            .into_iter()
            .map(|(name, source)| (name, source, Succession::default()))
            .collect();
        Discovery::start_succeeding(services, resolver, refresh)
    }

    /// [`Discovery::start`], each ring keeping the ring it replaces and
    /// succeeding a predecessor as its [`Succession`] says.
    ///
    /// # Errors
    ///
    /// A static ring that cannot be built.
    pub fn start_succeeding(
        services: Vec<(String, Source, Succession)>,
        resolver: &TokioResolver,
        refresh: Duration,
    ) -> Result<Discovery, DiscoveryError> {
        let mut rings = Vec::with_capacity(services.len());
        let mut tasks = Vec::new();
        for (name, source, succession) in services {
            match source {
                Source::Static(members, replication) => {
                    let ring = Ring::build(members, replication)?;
                    for warning in ring.warnings() {
                        tracing::warn!(service = %name, "{warning}");
                    }
                    rings.push(Arc::new(ServiceRing::fixed_succeeding(
                        name,
                        Table::Ring(ring),
                        succession,
                    )));
                }
                Source::Dns(dns) => {
                    let service = Arc::new(ServiceRing::succeeding(name, succession));
                    tasks.push(tokio::spawn(Arc::clone(&service).refresh_forever(
                        resolver.clone(),
                        dns,
                        refresh,
                    )));
                    rings.push(service);
                }
            }
        }
        Ok(Discovery {
            services: rings,
            tasks,
        })
    }

    /// Every service, in the order given to [`Discovery::start`].
    pub fn services(&self) -> &[Arc<ServiceRing>] {
        &self.services
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Arc<ServiceRing>> {
        self.services.iter().find(|service| service.name() == name)
    }

    /// True once every service has a ring with at least one instance.
    pub fn ready(&self) -> bool {
        self.services.iter().all(|service| {
            service
                .load()
                .as_ref()
                .is_some_and(|state| !state.current.table.is_empty())
        })
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use shardproxy_ring::Token;

    use super::*;

    fn ring(tokens: &[(&str, &[&str])]) -> Table {
        let members = tokens
            .iter()
            .enumerate()
            .map(|(index, (host, tokens))| Member {
                name: InstanceName::new(host, 80).unwrap(),
                addr: SocketAddr::from(([127, 0, 0, 1], 8000 + index as u16)),
                tokens: tokens.iter().map(|t| t.parse::<Token>().unwrap()).collect(),
            })
            .collect();
        Table::Ring(Ring::build(members, Replication::default()).unwrap())
    }

    fn resolved(table: Table) -> Resolved {
        Resolved {
            table,
            warnings: Vec::new(),
            min_ttl: None,
            replication_from: ReplicationFrom::Default,
        }
    }

    fn one() -> Table {
        ring(&[("a.example", &["40"])])
    }

    fn two() -> Table {
        ring(&[("a.example", &["40"]), ("b.example", &["80"])])
    }

    fn three() -> Table {
        ring(&[
            ("a.example", &["40"]),
            ("b.example", &["80"]),
            ("c.example", &["c0"]),
        ])
    }

    fn grace(seconds: u64) -> Succession {
        Succession {
            grace: Duration::from_secs(seconds),
            predecessor: None,
        }
    }

    fn instances(snapshot: &Snapshot) -> usize {
        match &snapshot.table {
            Table::Ring(ring) => ring.instances().len(),
            Table::Srv(instances) => instances.len(),
        }
    }

    #[test]
    fn without_a_grace_no_replaced_ring_is_kept() {
        let service = ServiceRing::fixed("frob", one());
        assert!(service.accept(resolved(two())));
        let state = service.load_state().unwrap();
        assert_eq!(instances(&state.current), 2);
        assert!(state.previous.is_none());
        assert_eq!(service.transition_remaining(), None);
    }

    #[test]
    fn a_transition_counts_down_from_the_change() {
        let service = ServiceRing::fixed_succeeding("frob", one(), grace(60));
        assert_eq!(service.transition_remaining(), None, "no change yet");
        assert!(service.accept(resolved(two())));
        let remaining = service.transition_remaining().unwrap();
        assert!(remaining <= Duration::from_secs(60));
        assert!(remaining > Duration::from_secs(30));
    }

    #[test]
    fn a_change_keeps_only_the_ring_it_replaced_and_restarts_the_grace() {
        let service = ServiceRing::fixed_succeeding("frob", one(), grace(60));
        assert!(service.load_state().unwrap().previous.is_none());

        assert!(service.accept(resolved(two())));
        let first = service.load_state().unwrap();
        let replaced = first.previous.as_ref().unwrap();
        assert_eq!(instances(&replaced.snapshot), 1);
        assert!(first.previous_within(Duration::from_secs(60)).is_some());
        assert!(first.previous_within(Duration::ZERO).is_none());

        // The same ring again changes nothing, the grace included.
        assert!(!service.accept(resolved(two())));
        assert!(Arc::ptr_eq(&service.load_state().unwrap(), &first));

        assert!(service.accept(resolved(three())));
        let second = service.load_state().unwrap();
        let replaced_again = second.previous.as_ref().unwrap();
        assert_eq!(instances(&replaced_again.snapshot), 2);
        assert!(Arc::ptr_eq(&replaced_again.snapshot, &first.current));
        assert!(replaced_again.at >= replaced.at);
    }

    #[test]
    fn an_expired_ring_is_dropped_at_the_next_refresh() {
        let service = ServiceRing::fixed_succeeding(
            "frob",
            one(),
            Succession {
                grace: Duration::from_nanos(1),
                predecessor: None,
            },
        );
        assert!(service.accept(resolved(two())));
        let state = service.load_state().unwrap();
        assert!(state.previous.is_some());
        assert!(state.previous_within(Duration::from_nanos(1)).is_none());
        assert!(!service.accept(resolved(two())));
        let state = service.load_state().unwrap();
        assert!(state.previous.is_none());
        assert_eq!(instances(&state.current), 2);
    }

    #[test]
    fn a_reload_that_changes_the_ring_starts_a_transition() {
        let before = ServiceRing::fixed("frob", one());
        let after = ServiceRing::fixed_succeeding(
            "frob",
            two(),
            Succession {
                grace: Duration::from_secs(60),
                predecessor: before.load_state(),
            },
        );
        let state = after.load_state().unwrap();
        let replaced = state.previous_within(Duration::from_secs(60)).unwrap();
        assert!(Arc::ptr_eq(replaced, &before.load_full().unwrap()));
    }

    #[test]
    fn a_reload_that_keeps_the_ring_keeps_its_transition() {
        let before = ServiceRing::fixed_succeeding("frob", one(), grace(60));
        assert!(before.accept(resolved(two())));
        let transition = before.load_state().unwrap().previous.clone().unwrap();
        let after = ServiceRing::succeeding(
            "frob",
            Succession {
                grace: Duration::from_secs(60),
                predecessor: before.load_state(),
            },
        );
        assert!(after.accept(resolved(two())));
        let kept = after.load_state().unwrap().previous.clone().unwrap();
        assert!(Arc::ptr_eq(&kept.snapshot, &transition.snapshot));
        assert_eq!(kept.at, transition.at);
    }

    #[test]
    fn a_reload_to_a_service_without_a_grace_keeps_nothing() {
        let before = ServiceRing::fixed("frob", one());
        let after = ServiceRing::fixed_succeeding(
            "frob",
            two(),
            Succession {
                grace: Duration::ZERO,
                predecessor: before.load_state(),
            },
        );
        assert!(after.load_state().unwrap().previous.is_none());
    }
}
