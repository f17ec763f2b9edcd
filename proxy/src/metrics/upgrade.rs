//! Upgraded connections (SPEC §10): how many a service has open now, and
//! how many it has had. Labelled by `service` only, the config's names, so
//! the series stay bounded however many clients upgrade.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// `shardproxy_upgrades_total`.
pub const UPGRADES: &str = "shardproxy_upgrades_total";
/// `shardproxy_upgraded_connections`.
pub const UPGRADED: &str = "shardproxy_upgraded_connections";

/// The metric families, registered once per registry.
#[derive(Clone, Debug)]
pub(super) struct Families {
    upgrades: IntCounterVec,
    upgraded: IntGaugeVec,
}

/// One service's children of [`Families`], resolved once.
#[derive(Debug)]
pub(super) struct UpgradeMetrics {
    upgrades: IntCounter,
    upgraded: IntGauge,
}

/// One upgraded connection, counted open until it is dropped (when its
/// relay ends, however it ends).
#[derive(Debug)]
#[must_use = "the connection counts as closed as soon as this is dropped"]
pub struct Upgraded(IntGauge);

// === impl Families ===

impl Families {
    /// Builds the families and registers them in `registry`.
    pub(super) fn register(registry: &Registry) -> Result<Families, prometheus::Error> {
        let upgrades = IntCounterVec::new(
            Opts::new(
                UPGRADES,
                "Connections switched to another protocol (101 from the instance) and relayed.",
            ),
            &["service"],
        )?;
        let upgraded = IntGaugeVec::new(
            Opts::new(UPGRADED, "Upgraded connections being relayed now."),
            &["service"],
        )?;
        registry.register(Box::new(upgrades.clone()))?;
        registry.register(Box::new(upgraded.clone()))?;
        Ok(Families { upgrades, upgraded })
    }

    /// The children of `service`.
    pub(super) fn service(&self, service: &str) -> UpgradeMetrics {
        // One label value for a family of one label name: cannot panic.
        UpgradeMetrics {
            upgrades: self.upgrades.with_label_values(&[service]),
            upgraded: self.upgraded.with_label_values(&[service]),
        }
    }
}

// === impl UpgradeMetrics ===

impl UpgradeMetrics {
    /// Counts an upgrade, and its connection open until the guard drops.
    pub(super) fn started(&self) -> Upgraded {
        self.upgrades.inc();
        self.upgraded.inc();
        Upgraded(self.upgraded.clone())
    }
}

// === impl Upgraded ===

impl Drop for Upgraded {
    fn drop(&mut self) {
        self.0.dec();
    }
}
