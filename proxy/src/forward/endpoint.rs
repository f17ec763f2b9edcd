//! What a request needs of each instance of the ring in use, worked out once
//! per ring instead of once per request: its name, the URI authority of its
//! address, its connections and its attempt counters; the ring's per-range
//! request counts; and the order in which a request tries the instances of
//! its preference list.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use shardproxy_ring::srv::{rfc2782_order, SrvWeight};
use shardproxy_ring::{InstanceName, Token};

use crate::discovery::{Snapshot, Table};
use crate::health::{self, Health};
use crate::load::RangeLoad;
use crate::metrics::{InstanceAttempts, ServiceMetrics};
use crate::pool::{Connections, Pool};

/// One instance of the ring in use.
#[derive(Debug)]
pub(super) struct Endpoint {
    /// `host:port`.
    pub(super) name: InstanceName,
    /// Its address as a `Host` value, for requests that came without one
    /// (HTTP/1.0); made once per ring. (`None` would mean the address's text
    /// is not a header value, which no socket address's is.)
    pub(super) host: Option<HeaderValue>,
    /// The keep-alive connections to its address.
    pub(super) connections: Arc<Connections>,
    /// Its `shardproxy_upstream_attempts_total` children.
    pub(super) attempts: InstanceAttempts,
}

/// The endpoints of one snapshot, indexed as its table's instances are.
#[derive(Debug)]
pub(super) struct Endpoints {
    /// The snapshot they were built from, held so that the pointer compared
    /// in [`EndpointCache::get`] cannot be reused by another.
    snapshot: Arc<Snapshot>,
    instances: Box<[Endpoint]>,
    /// The requests per range of this ring (none for SRV balancing): made
    /// with the ring's endpoints so that a new ring counts from zero.
    pub(super) load: Arc<RangeLoad>,
}

/// A service's endpoints for its current ring, rebuilt by the first request
/// that sees a new ring; and those of the ring it replaced, for transition
/// reads.
#[derive(Debug)]
pub(super) struct EndpointCache {
    /// Where the endpoints get their connections.
    pool: Pool,
    current: ArcSwapOption<Endpoints>,
    replaced: ArcSwapOption<Endpoints>,
}

/// The instances a request tries, in order.
pub(super) enum Targets<'a> {
    /// A ring's preference list as it stands (nothing is ejected): borrowed
    /// from the ring, nothing copied.
    Ring {
        endpoints: &'a Endpoints,
        indexes: &'a [u32],
    },
    /// Healthy instances first, or an SRV order drawn for this request.
    Listed(Vec<&'a Endpoint>),
}

// === impl Endpoints ===

impl Endpoints {
    fn new(snapshot: &Arc<Snapshot>, metrics: &ServiceMetrics, pool: &Pool) -> Endpoints {
        let endpoint = |name: &InstanceName, addr: SocketAddr| Endpoint {
            name: name.clone(),
            host: HeaderValue::try_from(addr.to_string()).ok(),
            connections: pool.connections(name.host(), addr),
            attempts: metrics.instance_attempts(name.as_str()),
        };
        let instances = snapshot
            .table
            .instances()
            .map(|(name, addr)| endpoint(name, addr))
            .collect();
        let points = match &snapshot.table {
            Table::Ring(ring) => ring.point_count(),
            Table::Srv(_) => 0,
        };
        Endpoints {
            snapshot: Arc::clone(snapshot),
            instances,
            load: Arc::new(RangeLoad::new(points, SystemTime::now())),
        }
    }

    pub(super) fn get(&self, index: usize) -> Option<&Endpoint> {
        self.instances.get(index)
    }

    /// How many instances the ring has.
    pub(super) fn len(&self) -> usize {
        self.instances.len()
    }

    /// The ring point of a key at `position` (`None` for SRV balancing or
    /// an empty ring), its request counted in the point's range and for
    /// its primary.
    #[inline]
    pub(super) fn count(&self, position: Token) -> Option<usize> {
        let Table::Ring(ring) = &self.snapshot.table else {
            return None;
        };
        let point = ring.point_of(position)?;
        self.load.count(point);
        let primary = ring.preference_list_at(point).indexes().first().copied();
        if let Some(endpoint) = primary.and_then(|index| self.get(index as usize)) {
            endpoint.attempts.key_request();
        }
        Some(point)
    }
}

// === impl EndpointCache ===

impl EndpointCache {
    /// No endpoints yet; those built will connect through `pool`.
    pub(super) fn new(pool: Pool) -> EndpointCache {
        EndpointCache {
            pool,
            current: ArcSwapOption::empty(),
            replaced: ArcSwapOption::empty(),
        }
    }

    /// The endpoints of `snapshot`: those of the last ring seen, or built
    /// now when the ring changed. Of requests that see a new ring at once,
    /// the first to install its endpoints wins and the others use those:
    /// each counts its request in them (`load`), so endpoints that nobody
    /// keeps would lose counts.
    pub(super) fn get(&self, snapshot: &Arc<Snapshot>, metrics: &ServiceMetrics) -> Arc<Endpoints> {
        self.get_in(&self.current, snapshot, metrics)
    }

    /// Where the endpoints get their connections.
    pub(super) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The per-range counts of `snapshot`, if a request has seen it.
    pub(super) fn load_of(&self, snapshot: &Arc<Snapshot>) -> Option<Arc<RangeLoad>> {
        let current = self.current.load();
        let endpoints = current.as_ref()?;
        Arc::ptr_eq(&endpoints.snapshot, snapshot).then(|| Arc::clone(&endpoints.load))
    }

    /// [`EndpointCache::get`] for the replaced ring of a transition, kept
    /// apart so that the two rings do not evict each other.
    pub(super) fn get_replaced(
        &self,
        snapshot: &Arc<Snapshot>,
        metrics: &ServiceMetrics,
    ) -> Arc<Endpoints> {
        self.get_in(&self.replaced, snapshot, metrics)
    }

    fn get_in(
        &self,
        slot: &ArcSwapOption<Endpoints>,
        snapshot: &Arc<Snapshot>,
        metrics: &ServiceMetrics,
    ) -> Arc<Endpoints> {
        let seen = slot.load();
        if let Some(current) = &*seen {
            if Arc::ptr_eq(&current.snapshot, snapshot) {
                return Arc::clone(current);
            }
        }
        let built = Arc::new(Endpoints::new(snapshot, metrics, &self.pool));
        let before = slot.compare_and_swap(&seen, Some(Arc::clone(&built)));
        match (&*before, &*seen) {
            // Installed over what this request saw.
            (Some(before), Some(seen)) if Arc::ptr_eq(before, seen) => built,
            (None, None) => built,
            // Another request installed the same ring's endpoints first.
            (Some(other), _) if Arc::ptr_eq(&other.snapshot, snapshot) => Arc::clone(other),
            // Another ring's are there (this request's ring was just
            // replaced): this request serves with its own, not kept.
            _ => built,
        }
    }
}

// === impl Targets ===

impl<'a> Targets<'a> {
    /// The instances to try for a key whose ring point on `snapshot` is
    /// `point` (`None` on an empty ring; ignored for SRV services): its
    /// preference list, or (for SRV services) an RFC 2782 order; healthy
    /// ones first, and for a `read` (GET or HEAD) drained ones last.
    pub(super) fn at(
        snapshot: &'a Arc<Snapshot>,
        endpoints: &'a Endpoints,
        point: Option<usize>,
        health: &Health,
        read: bool,
    ) -> Targets<'a> {
        let listed = match &snapshot.table {
            Table::Ring(ring) => {
                let indexes =
                    point.map_or(&[][..], |point| ring.preference_list_at(point).indexes());
                if !health.any_avoided(read) {
                    return Targets::Ring { endpoints, indexes };
                }
                indexes
                    .iter()
                    .filter_map(|&index| endpoints.get(index as usize))
                    .collect()
            }
            Table::Srv(instances) => {
                let weights: Vec<SrvWeight> = instances.iter().map(|i| i.weight).collect();
                rfc2782_order(&weights, |bound| rand::random_range(0..=bound))
                    .into_iter()
                    .filter_map(|index| endpoints.get(index))
                    .collect()
            }
        };
        let read_on = read.then_some(snapshot);
        Targets::Listed(health::healthy_first(health, listed, read_on, |endpoint| {
            &endpoint.name
        }))
    }

    /// How many instances there are to try.
    pub(super) fn len(&self) -> usize {
        match self {
            Targets::Ring { indexes, .. } => indexes.len(),
            Targets::Listed(listed) => listed.len(),
        }
    }

    /// The `n`-th instance to try.
    pub(super) fn get(&self, n: usize) -> Option<&'a Endpoint> {
        match self {
            Targets::Ring { endpoints, indexes } => indexes
                .get(n)
                .and_then(|&index| endpoints.get(index as usize)),
            Targets::Listed(listed) => listed.get(n).copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::discovery::ReplicationFrom;
    use crate::pool::Settings;

    /// Requests that meet a new ring on several threads at once all get the
    /// one set of endpoints that is kept, so that none counts its request
    /// in a set that is thrown away.
    #[test]
    fn requests_that_see_a_new_ring_at_once_share_the_endpoints_kept() {
        let pool = Pool::new(Settings {
            connect_timeout: Duration::from_secs(1),
            max_idle: 1,
            idle_timeout: Duration::from_secs(60),
            protocol: crate::config::UpstreamProtocol::Http1,
            tls: None,
            workers: 1,
        });
        let cache = EndpointCache::new(pool);
        let metrics = crate::metrics::Metrics::new().unwrap().service("frob");
        for _ in 0..50 {
            let snapshot = Arc::new(Snapshot {
                table: Table::Srv(Vec::new()),
                replication_from: ReplicationFrom::Default,
                discovered_at: SystemTime::UNIX_EPOCH,
            });
            let start = std::sync::Barrier::new(4);
            let got: Vec<Arc<Endpoints>> = std::thread::scope(|scope| {
                let threads: Vec<_> = (0..4)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            cache.get(&snapshot, &metrics)
                        })
                    })
                    .collect();
                threads.into_iter().map(|t| t.join().unwrap()).collect()
            });
            let kept = cache.current.load_full().unwrap();
            for endpoints in &got {
                assert!(Arc::ptr_eq(endpoints, &kept), "a set of endpoints not kept");
            }
        }
    }
}
