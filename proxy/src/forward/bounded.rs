//! Consistent hashing with bounded loads (SPEC §11; Mirrokni, Thorup and
//! Zadimoghaddam, "Consistent Hashing with Bounded Loads", SODA 2018): a
//! read goes to the first instance of its list whose requests in flight
//! are under `ceil(factor × (in flight in the service + 1) / instances)`,
//! so a hot key spreads over the replicas that hold it instead of
//! saturating its primary.
//!
//! Why only within the preference list by default (`scope = "replicas"`):
//! HAProxy's `hash-balance-factor` and Envoy spill to the next server on
//! the ring whether or not it has the data, which suits caches and breaks
//! stateful shards; the replicas of a key hold it. `scope = "ring"` goes on
//! clockwise past the list, for caches. Writes never move: they go where
//! `writes` sends them.
//!
//! The counts are the ones the metrics keep anyway: attempts in flight per
//! instance (`shardproxy_upstream_in_flight`, until the response head) and
//! the service's requests in flight (`max_concurrency`'s count), read with
//! relaxed loads: no lock, and nothing at all when `load_bound` is off.

use std::sync::Arc;

use crate::config::{LoadBound, LoadScope};
use crate::discovery::{Snapshot, Table};

use super::endpoint::{Endpoint, Endpoints, Targets};
use super::upstream::Upstream;

/// The instances a read tries under `bound`: `targets` as they are when
/// their first instance is under the bound, else the first one under it
/// (or the least loaded) first and the others after in their order. (Not
/// inlined: services without `load_bound` should not carry its code.)
#[inline(never)]
pub(super) fn bounded<'a>(
    targets: Targets<'a>,
    bound: LoadBound,
    upstream: &Upstream,
    snapshot: &'a Arc<Snapshot>,
    endpoints: &'a Endpoints,
    point: Option<usize>,
) -> Targets<'a> {
    let instances = endpoints.len();
    if instances == 0 || targets.len() == 0 {
        return targets;
    }
    // This request is among those in flight already: the others, plus one.
    let in_flight = upstream.in_flight.current().max(1);
    let cap = (bound.factor * in_flight as f64 / instances as f64).ceil() as i64;
    let health = &upstream.health;
    let usable = |endpoint: &&Endpoint| !health.avoids_for_reads(&endpoint.name, snapshot);
    let load = |endpoint: &&Endpoint| endpoint.attempts.in_flight();
    let listed = (0..targets.len()).filter_map(|n| targets.get(n));
    let mut candidates = listed.clone().filter(usable);
    let Some(first) = candidates.next() else {
        return targets;
    };
    if load(&first) < cap {
        return targets;
    }
    let under = |endpoint: &&Endpoint| load(endpoint) < cap;
    let chosen = candidates
        .find(under)
        .or_else(|| match bound.scope {
            LoadScope::Replicas => None,
            LoadScope::Ring => past_the_list(snapshot, endpoints, point, &targets)
                .filter(usable)
                .find(under),
        })
        // All at the bound: the least loaded of the list, the first of
        // equals.
        .unwrap_or_else(|| {
            listed
                .clone()
                .filter(usable)
                .min_by_key(load)
                .unwrap_or(first)
        });
    if std::ptr::eq(chosen, first) {
        return targets;
    }
    upstream.metrics.load_bound_spill();
    let mut reordered = Vec::with_capacity(targets.len() + 1);
    reordered.push(chosen);
    reordered.extend(listed.filter(|endpoint| !std::ptr::eq(*endpoint, chosen)));
    Targets::Listed(reordered)
}

/// The instances after `targets` clockwise from the key's ring `point`
/// (as `forward` found it), each once: the rest of the ring, for `scope =
/// "ring"`.
fn past_the_list<'a>(
    snapshot: &'a Arc<Snapshot>,
    endpoints: &'a Endpoints,
    point: Option<usize>,
    targets: &Targets<'a>,
) -> impl Iterator<Item = &'a Endpoint> + 'a {
    let mut seen: Vec<u32> = Vec::new();
    let in_list: Vec<*const Endpoint> = (0..targets.len())
        .filter_map(|n| targets.get(n))
        .map(std::ptr::from_ref)
        .collect();
    let walk = match &snapshot.table {
        Table::Ring(ring) => {
            let start = point.unwrap_or(0);
            let ranges = ring.ranges();
            let count = ranges.len();
            Some(ring.ranges().chain(ring.ranges()).skip(start).take(count))
        }
        Table::Srv(_) => None,
    };
    walk.into_iter()
        .flatten()
        .filter_map(move |range| {
            if seen.contains(&range.owner) {
                return None;
            }
            seen.push(range.owner);
            endpoints.get(range.owner as usize)
        })
        .filter(move |endpoint| !in_list.contains(&std::ptr::from_ref(*endpoint)))
}
