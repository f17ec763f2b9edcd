//! `shardproxy_upstream_connections`: each instance's keep-alive
//! connections, idle and active, read from the service's [`Pool`] when
//! `/metrics` is scraped (as the ring metrics are), so that making and
//! reusing connections records nothing.
//!
//! The pool knows addresses and the metrics name instances, so the
//! instances are those of the ring in use, each looked up by its address.

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};

use crate::discovery::ServiceRing;
use crate::pool::{Pool, Usage};

/// `shardproxy_upstream_connections`.
pub const CONNECTIONS: &str = "shardproxy_upstream_connections";

/// The connection family of `services`' rings in use and their pools, as
/// they are now; left out when no instance has a connection record yet.
///
/// # Errors
///
/// A [`prometheus::Error`] if a name or label here is invalid (a bug).
pub(super) fn families<'a>(
    services: impl IntoIterator<Item = (&'a ServiceRing, &'a Pool)>,
) -> Result<Vec<MetricFamily>, prometheus::Error> {
    let connections = IntGaugeVec::new(
        Opts::new(
            CONNECTIONS,
            "Keep-alive connections to an instance: idle (kept for the next request) or active (carrying one).",
        ),
        &["service", "upstream", "state"],
    )?;
    for (ring, pool) in services {
        let service = ring.name();
        let state = ring.load();
        let Some(table) = state.as_ref().map(|state| &state.current.table) else {
            continue;
        };
        for (upstream, addr) in table.instances() {
            let Usage { idle, active } = pool.usage(upstream.host(), addr).unwrap_or_default();
            for (state, count) in [("idle", idle), ("active", active)] {
                connections
                    .get_metric_with_label_values(&[service, upstream.as_str(), state])?
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
    }
    Ok(connections
        .collect()
        .into_iter()
        .filter(|family| !family.get_metric().is_empty())
        .collect())
}
