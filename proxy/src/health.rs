//! Instance health: passive outlier detection, and optional active
//! checks, both ejecting instances that fail so their keys go straight to
//! their replicas.
//!
//! - Passive: every attempt's outcome is recorded; `consecutive_failures`
//!   failures in a row (connect errors, timeouts, broken exchanges,
//!   retryable statuses) eject the instance for `base_ejection_time`,
//!   doubled for each ejection since it was last healthy for a while, up to
//!   `max_ejection_time` (as Envoy's outlier detection does). When the time
//!   is up it is restored and takes requests again.
//! - Recovery (SPEC §9.3): while an instance is ejected, [`probe_forever`]
//!   probes it every `probe_interval`, and the first probe that succeeds
//!   restores it, so that a restarted instance gets its keys back in
//!   seconds rather than after its ejection time. With `health_check` the
//!   probe is the check's request, which vouches for answers; without, a
//!   TCP connect, which proves only that connections are accepted again:
//!   it restores an instance ejected for connect failures, never one
//!   ejected for its answers (those wait out their ejection time). A
//!   restore by probe keeps the backoff, as Envoy keeps its ejection
//!   multiplier when an active check un-ejects a host: an instance that
//!   fails again soon after is ejected for twice as long, and the backoff
//!   is forgotten only once it has been healthy for `max_ejection_time`.
//! - Active (`health_check = { path, interval, timeout }`): a task asks
//!   every instance of the current ring; a failed check ejects until a
//!   check passes.
//! - Drained (SPEC §11, by the admin API): an instance an operator is
//!   about to take down goes last in every preference list for reads, as
//!   if ejected, while writes still reach it. A drain belongs to the ring
//!   it was made on: a ring change ends it (the ring that drops or
//!   re-tokens the instance is what the drain prepared for), and so does a
//!   restart.
//!
//! Health is kept per instance name, so it survives ring changes. Reading
//! it on the request path is one atomic load while no instance is ejected,
//! else a lock-free map load and a few atomics.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};

use arc_swap::{ArcSwap, ArcSwapOption};
use serde::Serialize;
use shardproxy_ring::InstanceName;

use crate::config::{HealthCheckConfig, OutlierConfig};
use crate::discovery::{ServiceRing, Snapshot};
use crate::error::error_chain;
use crate::metrics::ServiceMetrics;
use crate::pool::Pool;

/// The health of one instance.
#[derive(Debug, Default)]
struct InstanceHealth {
    consecutive_failures: AtomicU32,
    /// Milliseconds since [`Health::epoch`] until which the instance is
    /// ejected by passive detection; 0 when it is not.
    ejected_until: AtomicU64,
    /// Ejections since it was last healthy for `max_ejection_time`.
    ejections: AtomicU32,
    /// When the last ejection started (milliseconds since the epoch).
    last_ejection: AtomicU64,
    /// True while the latest active check failed.
    check_failed: AtomicBool,
    /// The kind of the latest failed attempt ([`Cause`] as a byte): what a
    /// passive ejection is put down to, which decides whether a TCP connect
    /// may end it.
    last_failure: AtomicU8,
}

/// What an attempt on an instance came to, as health counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer the client may be given, whatever its status.
    Success,
    /// No connection could be made (refused, unreachable, or not made in
    /// time): nothing was sent.
    ConnectFailure,
    /// A connection was made but the exchange failed: a retryable status,
    /// no answer in time, a broken exchange, a stalled body.
    AnswerFailure,
}

/// Why a passive ejection happened: the kind of the failure that completed
/// the run, and of any failure since. The latest failure decides, not the
/// whole run, because an instance that dies fails the requests it holds
/// (resets, timeouts) before its port refuses new ones: what it does now
/// is what a probe must show to be fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    Connect = 1,
    Answers = 2,
}

impl Cause {
    fn of(byte: u8) -> Option<Cause> {
        match byte {
            1 => Some(Cause::Connect),
            2 => Some(Cause::Answers),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Cause::Connect => "connect",
            Cause::Answers => "answers",
        }
    }
}

/// What `/ring` shows of an instance's health.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HealthView {
    /// Whether requests skip it now.
    pub ejected: bool,
    /// Why: `failures` (passive) or `check` (active).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// For `failures`: what kind of failure, `connect` (a TCP connect
    /// probe may restore it) or `answers` (only a `health_check` probe or
    /// the end of the ejection time does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'static str>,
    /// Milliseconds until a passive ejection ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ejected_for_ms: Option<u64>,
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// Ejections counted for the backoff.
    pub ejections: u32,
}

/// The health of a service's instances.
pub struct Health {
    config: OutlierConfig,
    metrics: ServiceMetrics,
    /// Shared with the `Health` of a reloaded config, so that ejections and
    /// their backoff outlive a SIGHUP.
    state: Arc<HealthState>,
}

/// The instances' state, kept across reloads.
struct HealthState {
    epoch: Instant,
    instances: ArcSwap<HashMap<InstanceName, Arc<InstanceHealth>>>,
    /// At least the number of instances now ejected (passively or by a
    /// check): raised before an ejection is marked and lowered after one is
    /// cleared, so 0 means that none is, and lookups can be skipped.
    ejected: AtomicUsize,
    /// Woken on every ejection, so that [`probe_forever`] sleeps while
    /// nothing is ejected.
    ejection: Notify,
    /// The instances drained on one ring; `None` when none is.
    drained: ArcSwapOption<Drained>,
}

/// Instances drained on one ring.
#[derive(Debug)]
struct Drained {
    /// The ring they were drained on; on any other, nothing is drained.
    ring: Arc<Snapshot>,
    names: Vec<InstanceName>,
}

impl Drained {
    /// The drained names, when `ring` is the ring they were drained on.
    fn on<'a>(drained: Option<&'a Drained>, ring: &Arc<Snapshot>) -> &'a [InstanceName] {
        match drained {
            Some(drained) if Arc::ptr_eq(&drained.ring, ring) => &drained.names,
            _ => &[],
        }
    }
}

impl Health {
    /// No instance known yet, none ejected.
    pub fn new(config: OutlierConfig, metrics: ServiceMetrics) -> Health {
        Health {
            config,
            metrics,
            state: Arc::new(HealthState {
                epoch: Instant::now(),
                instances: ArcSwap::from_pointee(HashMap::new()),
                ejected: AtomicUsize::new(0),
                ejection: Notify::new(),
                drained: ArcSwapOption::empty(),
            }),
        }
    }

    /// The same instances' health under the config that replaces the one
    /// `self` was built for (a reload): ejections and their backoff go on.
    pub fn carried_over(&self, config: OutlierConfig, metrics: ServiceMetrics) -> Health {
        Health {
            config,
            metrics,
            state: Arc::clone(&self.state),
        }
    }

    /// False when no instance is ejected, so that every
    /// [`Health::is_ejected`] is false: the request path's fast path.
    #[inline]
    pub fn any_ejected(&self) -> bool {
        self.state.ejected.load(Ordering::Relaxed) != 0
    }

    /// Whether the instances a request tries may need reordering: one is
    /// ejected, or (for a read) one may be drained. False is the request
    /// path's fast path: one or two atomic loads.
    #[inline]
    pub fn any_avoided(&self, read: bool) -> bool {
        self.any_ejected() || (read && self.state.drained.load().is_some())
    }

    /// Drains `name` on `ring` (the ring in use): reads go to its
    /// replicas first until [`Health::undrain`] or a ring change. Returns
    /// false when it was drained already.
    pub fn drain(&self, ring: &Arc<Snapshot>, name: &InstanceName) -> bool {
        let mut added = false;
        self.state.drained.rcu(|current| {
            let mut names = Drained::on(current.as_deref(), ring).to_vec();
            added = !names.contains(name);
            if added {
                names.push(name.clone());
            }
            Some(Arc::new(Drained {
                ring: Arc::clone(ring),
                names,
            }))
        });
        if added {
            tracing::info!(instance = %name, "instance drained: reads go to its replicas first");
        }
        added
    }

    /// Ends the drain of `name` on `ring`. Returns false when it was not
    /// drained.
    pub fn undrain(&self, ring: &Arc<Snapshot>, name: &InstanceName) -> bool {
        let mut removed = false;
        self.state.drained.rcu(|current| {
            let mut names = Drained::on(current.as_deref(), ring).to_vec();
            let before = names.len();
            names.retain(|drained| drained != name);
            removed = names.len() != before;
            (!names.is_empty()).then(|| {
                Arc::new(Drained {
                    ring: Arc::clone(ring),
                    names,
                })
            })
        });
        if removed {
            tracing::info!(instance = %name, "instance undrained");
        }
        removed
    }

    /// The instances drained on `ring`.
    pub fn drained(&self, ring: &Arc<Snapshot>) -> Vec<InstanceName> {
        Drained::on(self.state.drained.load().as_deref(), ring).to_vec()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.state.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The state of `name`, created on first use (off the hot path: once per
    /// instance).
    fn entry(&self, name: &InstanceName) -> Arc<InstanceHealth> {
        if let Some(found) = self.state.instances.load().get(name) {
            return Arc::clone(found);
        }
        let mut created = None;
        self.state.instances.rcu(|current| {
            let mut next = HashMap::clone(current);
            let entry = next
                .entry(name.clone())
                .or_insert_with(|| Arc::new(InstanceHealth::default()));
            created = Some(Arc::clone(entry));
            next
        });
        created.unwrap_or_default()
    }

    /// True when a read on `ring` (the ring in use) goes to `name` only
    /// after the others: it is ejected, or drained on that ring.
    pub fn avoids_for_reads(&self, name: &InstanceName, ring: &Arc<Snapshot>) -> bool {
        if !self.any_avoided(true) {
            return false;
        }
        let drained = self.state.drained.load();
        self.is_ejected(name) || Drained::on(drained.as_deref(), ring).contains(name)
    }

    /// True when requests should skip `name` now. An ejection whose time is
    /// up ends here, and is logged and counted as a restore.
    pub fn is_ejected(&self, name: &InstanceName) -> bool {
        if !self.any_ejected() {
            return false;
        }
        let instances = self.state.instances.load();
        let Some(health) = instances.get(name) else {
            return false;
        };
        if health.check_failed.load(Ordering::Relaxed) {
            return true;
        }
        let until = health.ejected_until.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        if self.now_ms() < until {
            return true;
        }
        self.end_ejection(name, health, until, "ejection over: instance restored");
        false
    }

    /// Ends the passive ejection of `name` that lasts `until`, unless
    /// another thread ended it (or a new one began) first; the one that
    /// ends it logs `message` and counts the restore.
    fn end_ejection(
        &self,
        name: &InstanceName,
        health: &InstanceHealth,
        until: u64,
        message: &'static str,
    ) {
        if health
            .ejected_until
            .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.state.ejected.fetch_sub(1, Ordering::Relaxed);
            health.consecutive_failures.store(0, Ordering::Relaxed);
            tracing::info!(instance = %name, "{message}");
            self.metrics.restored(name.as_str());
        }
    }

    /// Whether a probe of `name` now could restore it: it is ejected, and
    /// the probe vouches for what ejected it. `by_request` says the probe
    /// is the `health_check` request (which vouches for anything); a TCP
    /// connect vouches only for connect failures.
    fn probe_may_restore(&self, name: &InstanceName, by_request: bool) -> bool {
        if !self.is_ejected(name) {
            return false;
        }
        if by_request {
            return true;
        }
        let instances = self.state.instances.load();
        instances.get(name).is_some_and(|health| {
            !health.check_failed.load(Ordering::Relaxed)
                && Cause::of(health.last_failure.load(Ordering::Relaxed)) == Some(Cause::Connect)
        })
    }

    /// A probe of `name` succeeded: ends what ejection of it the probe
    /// vouches for ([`Health::probe_may_restore`]).
    fn probe_passed(&self, name: &InstanceName, by_request: bool) {
        let instances = self.state.instances.load();
        let Some(health) = instances.get(name) else {
            return;
        };
        if by_request && health.check_failed.load(Ordering::Relaxed) {
            self.record_check(name, true, "");
        }
        let until = health.ejected_until.load(Ordering::Relaxed);
        let vouched = by_request
            || Cause::of(health.last_failure.load(Ordering::Relaxed)) == Some(Cause::Connect);
        if until != 0 && vouched {
            self.end_ejection(name, health, until, "probe passed: instance restored");
        }
    }

    /// Records the outcome of an attempt on `name`.
    pub fn record(&self, name: &InstanceName, outcome: Outcome) {
        if self.config.consecutive_failures == 0 {
            return;
        }
        let cause = match outcome {
            Outcome::Success => None,
            Outcome::ConnectFailure => Some(Cause::Connect),
            Outcome::AnswerFailure => Some(Cause::Answers),
        };
        let Some(cause) = cause else {
            // An instance that never failed has no state to reset: the
            // common case costs one map lookup and no write.
            let instances = self.state.instances.load();
            let Some(health) = instances.get(name) else {
                return;
            };
            if health.consecutive_failures.load(Ordering::Relaxed) != 0 {
                health.consecutive_failures.store(0, Ordering::Relaxed);
            }
            // Healthy long enough since the last ejection: forget the
            // backoff.
            let last = health.last_ejection.load(Ordering::Relaxed);
            let calm = u64::try_from(self.config.max_ejection_time.as_millis()).unwrap_or(u64::MAX);
            if last != 0 && self.now_ms().saturating_sub(last) > calm {
                health.ejections.store(0, Ordering::Relaxed);
            }
            return;
        };
        let health = self.entry(name);
        health.last_failure.store(cause as u8, Ordering::Relaxed);
        let failures = health.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < self.config.consecutive_failures
            || health.ejected_until.load(Ordering::Relaxed) != 0
        {
            return;
        }
        let ejections = health.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let length = self.ejection_length(ejections);
        let now = self.now_ms();
        let until = now
            .saturating_add(u64::try_from(length.as_millis()).unwrap_or(u64::MAX))
            .max(1);
        self.state.ejected.fetch_add(1, Ordering::Relaxed);
        if health
            .ejected_until
            .compare_exchange(0, until, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            // Another thread ejected it first, and counted it.
            self.state.ejected.fetch_sub(1, Ordering::Relaxed);
        } else {
            health.last_ejection.store(now.max(1), Ordering::Relaxed);
            tracing::warn!(
                instance = %name,
                failures,
                cause = cause.as_str(),
                ejection = ejections,
                seconds = length.as_secs_f64(),
                "instance ejected after consecutive failures"
            );
            self.metrics.ejected(name.as_str(), "failures");
            self.state.ejection.notify_one();
        }
    }

    /// `base × 2^(n−1)`, capped.
    fn ejection_length(&self, ejections: u32) -> Duration {
        let factor = 1u32 << ejections.saturating_sub(1).min(20);
        self.config
            .base_ejection_time
            .saturating_mul(factor)
            .min(self.config.max_ejection_time)
    }

    /// Records an active check of `name`.
    pub fn record_check(&self, name: &InstanceName, healthy: bool, detail: &str) {
        let health = self.entry(name);
        if !healthy {
            self.state.ejected.fetch_add(1, Ordering::Relaxed);
        }
        let was_failed = health.check_failed.swap(!healthy, Ordering::Relaxed);
        // Counted once per failed state: undo the raise above when it was
        // already failed, lower the count when it is cleared.
        if was_failed {
            self.state.ejected.fetch_sub(1, Ordering::Relaxed);
        }
        match (was_failed, healthy) {
            (false, false) => {
                tracing::warn!(instance = %name, detail, "health check failed: instance ejected");
                self.metrics.ejected(name.as_str(), "check");
                self.state.ejection.notify_one();
            }
            (true, true) => {
                tracing::info!(instance = %name, "health check passed: instance restored");
                self.metrics.restored(name.as_str());
            }
            _ => {}
        }
    }

    /// What `/ring` shows of `name`.
    pub fn view(&self, name: &InstanceName) -> HealthView {
        let ejected = self.is_ejected(name);
        let instances = self.state.instances.load();
        let Some(health) = instances.get(name) else {
            return HealthView {
                ejected: false,
                reason: None,
                cause: None,
                ejected_for_ms: None,
                consecutive_failures: 0,
                ejections: 0,
            };
        };
        let until = health.ejected_until.load(Ordering::Relaxed);
        let by_check = health.check_failed.load(Ordering::Relaxed);
        HealthView {
            ejected,
            reason: match (by_check, until != 0) {
                (true, _) => Some("check"),
                (false, true) => Some("failures"),
                _ => None,
            },
            cause: (until != 0)
                .then(|| Cause::of(health.last_failure.load(Ordering::Relaxed)))
                .flatten()
                .map(Cause::as_str),
            ejected_for_ms: (until != 0).then(|| until.saturating_sub(self.now_ms())),
            consecutive_failures: health.consecutive_failures.load(Ordering::Relaxed),
            ejections: health.ejections.load(Ordering::Relaxed),
        }
    }
}

/// Checks every instance of the service's current ring each `interval`,
/// forever: `GET path` with the instance's host as `Host`; a `2xx` within
/// `timeout` is healthy. Spawn it; abort the task to stop.
pub async fn check_forever(
    ring: Arc<ServiceRing>,
    health: Arc<Health>,
    pool: Pool,
    config: HealthCheckConfig,
) {
    loop {
        let mut checks = tokio::task::JoinSet::new();
        for (name, addr) in instances(&ring) {
            let pool = pool.clone();
            let path = config.path.clone();
            let timeout = config.timeout;
            checks.spawn(async move {
                let outcome = check_one(&pool, &name, addr, &path, timeout).await;
                (name, outcome)
            });
        }
        while let Some(joined) = checks.join_next().await {
            if let Ok((name, outcome)) = joined {
                match outcome {
                    Ok(()) => health.record_check(&name, true, ""),
                    Err(detail) => health.record_check(&name, false, &detail),
                }
            }
        }
        tokio::time::sleep(config.interval).await;
    }
}

/// The instances of the service's current ring, with their addresses.
fn instances(ring: &ServiceRing) -> Vec<(InstanceName, SocketAddr)> {
    ring.load_full().map_or_else(Vec::new, |snapshot| {
        snapshot
            .table
            .instances()
            .map(|(name, addr)| (name.clone(), addr))
            .collect()
    })
}

/// The longest a TCP connect probe waits: a restarted instance accepts at
/// once, and SPEC §9.3 gives it `probe_interval` plus one second.
const CONNECT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Probes the ejected instances of the service's current ring every
/// `outlier_detection.probe_interval` while any is ejected, and restores
/// each on its first probe that succeeds (see the module doc for what a
/// probe vouches for). The first round comes `probe_interval` after the
/// ejection that woke it. While nothing is ejected it waits for the next
/// ejection, at no cost to requests. `check` is the service's
/// `health_check`: its request is the probe; without, a TCP connect.
/// Spawn it; abort the task to stop.
pub async fn probe_forever(
    ring: Arc<ServiceRing>,
    health: Arc<Health>,
    pool: Pool,
    check: Option<HealthCheckConfig>,
) {
    let every = health.config.probe_interval;
    let by_request = check.is_some();
    loop {
        if !health.any_ejected() {
            // `notify_one` keeps a wake-up for a waiter to come, so an
            // ejection between the look and the wait is not missed.
            health.state.ejection.notified().await;
            continue;
        }
        let mut rounds = tokio::time::interval_at(Instant::now() + every, every);
        rounds.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Each round also ends the ejections whose time is up (in
        // `probe_may_restore`), so the loop stops once none is left.
        while health.any_ejected() {
            rounds.tick().await;
            let mut probes = tokio::task::JoinSet::new();
            for (name, addr) in instances(&ring) {
                if !health.probe_may_restore(&name, by_request) {
                    continue;
                }
                let pool = pool.clone();
                let check = check.clone();
                probes.spawn(async move {
                    let outcome = probe_one(&pool, &name, addr, check.as_ref()).await;
                    (name, outcome)
                });
            }
            while let Some(joined) = probes.join_next().await {
                match joined {
                    Ok((name, Ok(()))) => health.probe_passed(&name, by_request),
                    Ok((name, Err(detail))) => {
                        tracing::debug!(instance = %name, detail, "probe failed: instance stays ejected");
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

/// One probe: the check's request with `check`, else a TCP connect.
async fn probe_one(
    pool: &Pool,
    name: &InstanceName,
    addr: SocketAddr,
    check: Option<&HealthCheckConfig>,
) -> Result<(), String> {
    if let Some(check) = check {
        return check_one(pool, name, addr, &check.path, check.timeout).await;
    }
    match tokio::time::timeout(CONNECT_PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_connection)) => Ok(()),
        Ok(Err(error)) => Err(format!("connect: {error}")),
        Err(_) => Err(format!("no connection within {CONNECT_PROBE_TIMEOUT:?}")),
    }
}

/// One check: `Ok` for a 2xx in time, else what went wrong.
async fn check_one(
    pool: &Pool,
    name: &InstanceName,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(), String> {
    use http_body_util::BodyExt as _;
    let request = http::Request::get(path)
        .header(http::header::HOST, name.host())
        .header(http::header::USER_AGENT, "shardproxy-health-check")
        .body(
            http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .map_err(|error| error.to_string())?;
    let connections = pool.connections(name.host(), addr);
    match tokio::time::timeout(timeout, connections.send(request, Instant::now())).await {
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("answered {}", response.status())),
        Ok(Err(error)) => Err(error_chain(&error)),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Puts the instances that are neither ejected nor (for a read, given the
/// ring in use as `read_on`) drained first, keeping the order within each
/// group: requests go to the first healthy instance of a preference list,
/// and when all are ejected, to all of them in order anyway (SPEC §5).
pub fn healthy_first<T>(
    health: &Health,
    targets: Vec<T>,
    read_on: Option<&Arc<Snapshot>>,
    name: impl Fn(&T) -> &InstanceName,
) -> Vec<T> {
    if !health.any_avoided(read_on.is_some()) {
        return targets;
    }
    let drained = health.state.drained.load();
    let drained = read_on.map_or(&[][..], |ring| Drained::on(drained.as_deref(), ring));
    let (mut healthy, avoided): (Vec<T>, Vec<T>) = targets.into_iter().partition(|target| {
        let name = name(target);
        !health.is_ejected(name) && !drained.contains(name)
    });
    healthy.extend(avoided);
    healthy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(consecutive: u32) -> Health {
        let metrics = crate::metrics::Metrics::new().unwrap();
        Health::new(
            OutlierConfig {
                consecutive_failures: consecutive,
                base_ejection_time: Duration::from_millis(200),
                max_ejection_time: Duration::from_millis(500),
                probe_interval: Duration::from_secs(2),
            },
            metrics.service("s"),
        )
    }

    fn name(host: &str) -> InstanceName {
        InstanceName::new(host, 80).unwrap()
    }

    #[test]
    fn consecutive_failures_eject_and_success_resets() {
        let health = health(3);
        let a = name("a");
        health.record(&a, Outcome::AnswerFailure);
        health.record(&a, Outcome::AnswerFailure);
        health.record(&a, Outcome::Success);
        health.record(&a, Outcome::AnswerFailure);
        health.record(&a, Outcome::AnswerFailure);
        assert!(
            !health.is_ejected(&a),
            "a success in between resets the count"
        );
        health.record(&a, Outcome::AnswerFailure);
        assert!(health.is_ejected(&a));
        let view = health.view(&a);
        assert_eq!(view.reason, Some("failures"));
        assert!(view.ejected_for_ms.is_some_and(|ms| ms <= 200));
    }

    #[test]
    fn ejection_ends_and_backoff_grows_to_the_cap() {
        let health = health(1);
        assert_eq!(health.ejection_length(1), Duration::from_millis(200));
        assert_eq!(health.ejection_length(2), Duration::from_millis(400));
        assert_eq!(health.ejection_length(3), Duration::from_millis(500));
        assert_eq!(health.ejection_length(40), Duration::from_millis(500));
        let a = name("a");
        health.record(&a, Outcome::AnswerFailure);
        assert!(health.is_ejected(&a));
        std::thread::sleep(Duration::from_millis(250));
        assert!(!health.is_ejected(&a), "restored after 200 ms");
        health.record(&a, Outcome::AnswerFailure);
        assert!(health.is_ejected(&a));
        assert_eq!(health.view(&a).ejections, 2);
    }

    #[test]
    fn a_connect_probe_restores_only_an_instance_ejected_for_connect_failures() {
        let health = health(2);
        let (a, b) = (name("a"), name("b"));
        health.record(&a, Outcome::ConnectFailure);
        health.record(&a, Outcome::ConnectFailure);
        health.record(&b, Outcome::ConnectFailure);
        health.record(&b, Outcome::AnswerFailure);
        assert!(health.is_ejected(&a) && health.is_ejected(&b));
        assert_eq!(health.view(&a).cause, Some("connect"));
        assert_eq!(
            health.view(&b).cause,
            Some("answers"),
            "the latest failure decides"
        );
        assert!(health.probe_may_restore(&a, false));
        assert!(!health.probe_may_restore(&b, false));
        assert!(
            health.probe_may_restore(&b, true),
            "a check's request vouches for answers"
        );

        health.probe_passed(&b, false);
        assert!(health.is_ejected(&b), "a connect does not restore b");
        health.probe_passed(&a, false);
        assert!(!health.is_ejected(&a), "a connect restores a");
        assert_eq!(health.view(&a).ejections, 1, "the backoff is kept");
        assert!(!health.probe_may_restore(&a, false), "a is not ejected");
        health.probe_passed(&b, true);
        assert!(!health.is_ejected(&b), "a check's request restores b");
        assert!(!health.any_ejected());
    }

    #[test]
    fn a_probe_request_restores_an_instance_ejected_by_its_check() {
        let health = health(2);
        let a = name("a");
        health.record_check(&a, false, "503");
        assert!(health.probe_may_restore(&a, true));
        health.probe_passed(&a, true);
        assert!(!health.is_ejected(&a));
        assert!(!health.any_ejected());
    }

    #[test]
    fn zero_turns_passive_detection_off() {
        let health = health(0);
        let a = name("a");
        for _ in 0..100 {
            health.record(&a, Outcome::AnswerFailure);
        }
        assert!(!health.is_ejected(&a));
    }

    #[test]
    fn checks_eject_and_restore() {
        let health = health(5);
        let a = name("a");
        health.record_check(&a, false, "503");
        assert!(health.is_ejected(&a));
        assert_eq!(health.view(&a).reason, Some("check"));
        health.record_check(&a, true, "");
        assert!(!health.is_ejected(&a));
    }

    #[test]
    fn the_ejected_count_follows_ejections_and_restores() {
        let health = health(1);
        let (a, b) = (name("a"), name("b"));
        let count = |health: &Health| health.state.ejected.load(Ordering::Relaxed);
        assert!(!health.any_ejected());
        health.record(&a, Outcome::AnswerFailure);
        health.record(&a, Outcome::AnswerFailure);
        assert_eq!(count(&health), 1, "an ejected instance counts once");
        health.record_check(&b, false, "503");
        health.record_check(&b, false, "503");
        assert_eq!(count(&health), 2);
        health.record_check(&b, true, "");
        health.record_check(&b, true, "");
        assert_eq!(count(&health), 1);
        assert!(health.any_ejected() && health.is_ejected(&a));
        std::thread::sleep(Duration::from_millis(250));
        assert!(!health.is_ejected(&a), "restored after 200 ms");
        assert_eq!(count(&health), 0);
        assert!(!health.any_ejected());
        health.record(&a, Outcome::AnswerFailure);
        assert!(health.is_ejected(&a), "ejected again once restored");
        assert_eq!(count(&health), 1);
    }

    #[test]
    fn healthy_instances_come_first_and_all_ejected_keeps_order() {
        let health = health(1);
        let (a, b, c) = (name("a"), name("b"), name("c"));
        health.record(&a, Outcome::AnswerFailure);
        let targets = vec![a.clone(), b.clone(), c.clone()];
        assert_eq!(
            healthy_first(&health, targets, None, |n| n),
            [b.clone(), c.clone(), a.clone()]
        );
        health.record(&b, Outcome::AnswerFailure);
        health.record(&c, Outcome::AnswerFailure);
        let targets = vec![a.clone(), b.clone(), c.clone()];
        assert_eq!(healthy_first(&health, targets, None, |n| n), [a, b, c]);
    }

    fn ring() -> Arc<Snapshot> {
        Arc::new(Snapshot {
            table: crate::discovery::Table::Srv(Vec::new()),
            replication_from: crate::discovery::ReplicationFrom::Default,
            discovered_at: std::time::SystemTime::UNIX_EPOCH,
        })
    }

    #[test]
    fn a_drain_sends_reads_elsewhere_on_its_ring_only() {
        let health = health(1);
        let (a, b, c) = (name("a"), name("b"), name("c"));
        let (ring, next) = (ring(), ring());
        assert!(health.drain(&ring, &a));
        assert!(!health.drain(&ring, &a), "drained already");
        let targets = || vec![a.clone(), b.clone(), c.clone()];
        assert_eq!(
            healthy_first(&health, targets(), Some(&ring), |n| n),
            [b.clone(), c.clone(), a.clone()]
        );
        // Not for writes, nor on another ring.
        assert_eq!(healthy_first(&health, targets(), None, |n| n), targets());
        assert_eq!(
            healthy_first(&health, targets(), Some(&next), |n| n),
            targets()
        );
        assert!(health.drained(&next).is_empty());
        assert_eq!(health.drained(&ring), std::slice::from_ref(&a));
        // A drain on the next ring forgets those of the one before.
        assert!(health.drain(&next, &b));
        assert!(health.drained(&ring).is_empty());
        assert!(health.undrain(&next, &b));
        assert!(!health.undrain(&next, &b), "not drained");
        assert!(!health.any_avoided(true), "nothing left to skip");
    }
}
