//! The ring metrics, built from each service's [`ServiceRing`] when
//! `/metrics` is scraped.
//!
//! Discovery already counts its refreshes and ring changes, and holds the
//! ring in use; copying those into registered metrics would need state to
//! turn totals back into increments and to forget the fingerprint of a
//! replaced ring. Instead each scrape builds fresh families from what
//! discovery holds at that moment: the counters are exactly discovery's
//! totals, and `shardproxy_ring_info` carries only the current fingerprint.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts};

use crate::discovery::{ServiceRing, Table};

/// `shardproxy_ring_instances`.
pub const INSTANCES: &str = "shardproxy_ring_instances";
/// `shardproxy_ring_tokens`.
pub const TOKENS: &str = "shardproxy_ring_tokens";
/// `shardproxy_ring_refreshes_total`.
pub const REFRESHES: &str = "shardproxy_ring_refreshes_total";
/// `shardproxy_ring_changes_total`.
pub const CHANGES: &str = "shardproxy_ring_changes_total";
/// `shardproxy_ring_info`.
pub const INFO: &str = "shardproxy_ring_info";
/// `shardproxy_ring_last_refresh_timestamp_seconds`.
pub const LAST_REFRESH: &str = "shardproxy_ring_last_refresh_timestamp_seconds";
/// `shardproxy_ring_transition_remaining_seconds`.
pub const TRANSITION_REMAINING: &str = "shardproxy_ring_transition_remaining_seconds";
/// `shardproxy_ring_drained_instances`.
pub const DRAINED: &str = "shardproxy_ring_drained_instances";

/// `shardproxy_ring_drained_instances{service}`: how many instances of the
/// ring in use each service has drained, from `(service, count)`.
///
/// # Errors
///
/// A [`prometheus::Error`] if a name or label here is invalid (a bug).
pub(super) fn drained_family<'a>(
    counts: impl IntoIterator<Item = (&'a str, usize)>,
) -> Result<Vec<MetricFamily>, prometheus::Error> {
    let drained = IntGaugeVec::new(
        Opts::new(
            DRAINED,
            "Instances of the ring in use drained by the admin API: reads go to their replicas first.",
        ),
        &["service"],
    )?;
    for (service, count) in counts {
        drained
            .get_metric_with_label_values(&[service])?
            .set(gauge_value(count));
    }
    Ok(drained.collect())
}

/// The ring families of `rings`, as they are now. Families without a
/// sample (no ring has a fingerprint yet, say) are left out: the text format
/// has no way to write them.
///
/// # Errors
///
/// A [`prometheus::Error`] if a name or label here is invalid (a bug).
pub(super) fn families<'a>(
    rings: impl IntoIterator<Item = &'a ServiceRing>,
) -> Result<Vec<MetricFamily>, prometheus::Error> {
    let instances = IntGaugeVec::new(
        Opts::new(
            INSTANCES,
            "Instances in the ring in use (SRV instances for balance = \"srv\").",
        ),
        &["service"],
    )?;
    let tokens = IntGaugeVec::new(
        Opts::new(
            TOKENS,
            "Distinct tokens on the ring in use (0 for balance = \"srv\").",
        ),
        &["service"],
    )?;
    let refreshes = IntCounterVec::new(
        Opts::new(
            REFRESHES,
            "Ring resolutions: ok (changed or not) or error (the last good ring stayed).",
        ),
        &["service", "result"],
    )?;
    let changes = IntCounterVec::new(
        Opts::new(
            CHANGES,
            "Times a new ring replaced the one in use (the first ring counts).",
        ),
        &["service"],
    )?;
    let info = IntGaugeVec::new(
        Opts::new(INFO, "Always 1: the fingerprint of the ring in use."),
        &["service", "fingerprint"],
    )?;
    let last_refresh = GaugeVec::new(
        Opts::new(
            LAST_REFRESH,
            "When a ring resolution last succeeded, in seconds since the Unix epoch.",
        ),
        &["service"],
    )?;

    let transition = GaugeVec::new(
        Opts::new(
            TRANSITION_REMAINING,
            "Seconds the replaced ring is still tried for 404s (transition_grace); 0 when none is.",
        ),
        &["service"],
    )?;

    for ring in rings {
        let service = ring.name();
        transition.get_metric_with_label_values(&[service])?.set(
            ring.transition_remaining()
                .map_or(0.0, |remaining| remaining.as_secs_f64()),
        );
        refreshes
            .get_metric_with_label_values(&[service, "ok"])?
            .inc_by(ring.refreshes_ok());
        refreshes
            .get_metric_with_label_values(&[service, "error"])?
            .inc_by(ring.refreshes_failed());
        changes
            .get_metric_with_label_values(&[service])?
            .inc_by(ring.ring_changes());
        if let Some(at) = ring.status().last_success {
            last_refresh
                .get_metric_with_label_values(&[service])?
                .set(unix_seconds(at));
        }
        let state = ring.load();
        let (instance_count, token_count) = match state.as_ref().map(|s| &s.current.table) {
            Some(Table::Ring(ring)) => {
                let fingerprint = ring.fingerprint().to_string();
                info.get_metric_with_label_values(&[service, fingerprint.as_str()])?
                    .set(1);
                (ring.instances().len(), ring.point_count())
            }
            Some(Table::Srv(srv)) => (srv.len(), 0),
            None => (0, 0),
        };
        instances
            .get_metric_with_label_values(&[service])?
            .set(gauge_value(instance_count));
        tokens
            .get_metric_with_label_values(&[service])?
            .set(gauge_value(token_count));
    }

    let collectors: [&dyn Collector; 7] = [
        &instances,
        &tokens,
        &refreshes,
        &changes,
        &info,
        &last_refresh,
        &transition,
    ];
    Ok(collectors
        .iter()
        .flat_map(|collector| collector.collect())
        .filter(|family| !family.get_metric().is_empty())
        .collect())
}

/// A count as an integer gauge's value.
fn gauge_value(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// `time` in seconds since the Unix epoch (0 before it).
fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}
