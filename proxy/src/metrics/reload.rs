//! The config in use and how reloads went: a counter of reloads by result,
//! when the config in use was loaded, and a hash of it, so that a fleet can
//! be checked to run one config as `shardproxy_ring_info` checks one ring.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};
use xxhash_rust::xxh3::xxh3_64;

use crate::config::Config;

/// `shardproxy_config_reloads_total`.
pub const RELOADS: &str = "shardproxy_config_reloads_total";
/// `shardproxy_config_last_reload_success_timestamp_seconds`.
pub const LAST_SUCCESS: &str = "shardproxy_config_last_reload_success_timestamp_seconds";
/// `shardproxy_config_info`.
pub const INFO: &str = "shardproxy_config_info";

/// The reload families, registered once per registry.
#[derive(Clone, Debug)]
pub(super) struct ReloadMetrics {
    ok: IntCounter,
    error: IntCounter,
    last_success: Gauge,
    info: IntGaugeVec,
}

// === impl ReloadMetrics ===

impl ReloadMetrics {
    /// Builds the families and registers them in `registry`.
    ///
    /// # Errors
    ///
    /// A [`prometheus::Error`] if the registry refuses one (a bug).
    pub(super) fn register(registry: &Registry) -> Result<ReloadMetrics, prometheus::Error> {
        let reloads = IntCounterVec::new(
            Opts::new(
                RELOADS,
                "Config reloads (SIGHUP): ok (the new config is in use) or error (refused; the running one stays).",
            ),
            &["result"],
        )?;
        let last_success = Gauge::new(
            LAST_SUCCESS,
            "When the config in use was loaded (at start, then by each successful reload), in seconds since the Unix epoch.",
        )?;
        let info = IntGaugeVec::new(
            Opts::new(
                INFO,
                "Always 1: a hash of the config in use, the same for the same config.",
            ),
            &["hash"],
        )?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        registry.register(Box::new(info.clone()))?;
        // `with_label_values` panics only on a wrong number of values: the
        // family has the one label `result`.
        Ok(ReloadMetrics {
            ok: reloads.with_label_values(&["ok"]),
            error: reloads.with_label_values(&["error"]),
            last_success,
            info,
        })
    }

    /// `config` is in use from now: at start, or after a reload.
    pub(super) fn in_use(&self, config: &Config) {
        self.info.reset();
        let hash = config_hash(config);
        if let Ok(gauge) = self.info.get_metric_with_label_values(&[hash.as_str()]) {
            gauge.set(1);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        self.last_success.set(now);
    }

    /// Counts a reload that put its config in use (`ok`) or was refused.
    pub(super) fn reloaded(&self, ok: bool) {
        if ok {
            self.ok.inc();
        } else {
            self.error.inc();
        }
    }
}

/// 16 hex digits of the xxh3 hash of `config` as parsed, so that two files
/// that differ only in comments, layout or key order hash alike. It is the
/// hash of the typed config's `Debug` text, which lists every setting,
/// defaults included, in a fixed order (maps are `BTreeMap`s); two builds
/// of the proxy whose config types differ may hash one file differently,
/// which a fleet mid-upgrade shows anyway by its versions.
///
/// `server.listen` and `server.admin` are left out: processes on one host
/// are given files that differ only there (`deploy/README.md`), and they
/// run the same config for every purpose a fleet compares.
pub fn config_hash(config: &Config) -> String {
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut compared = config.clone();
    compared.server.listen = unspecified;
    compared.server.admin = unspecified;
    format!("{:016x}", xxh3_64(format!("{compared:?}").as_bytes()))
}
