//! What operators see of a ring: the JSON of `/ring`, `/ring/lookup` and the
//! `ring` commands' `--json`, and the text of `check` and `ring show`.
//!
//! One set of serializable views serves the admin API and the command line,
//! so the two can never disagree on a field name.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use shardproxy_ring::{Instance, InstanceName, PreferenceList, Ring, Token};

use crate::discovery::{RefreshStatus, ReplicationFrom, SrvInstance, Table};

/// One instance of a preference list (SPEC §7 `/ring/lookup`).
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct InstanceRef {
    /// The SRV target (or static host), lower case, no trailing dot.
    pub host: String,
    /// The port.
    pub port: u16,
    /// `ip:port` as connected to.
    pub addr: String,
}

impl InstanceRef {
    fn of(name: &InstanceName, addr: std::net::SocketAddr) -> InstanceRef {
        InstanceRef {
            host: name.host().to_owned(),
            port: name.port(),
            addr: addr.to_string(),
        }
    }
}

/// A key's preference list (SPEC §7 `/ring/lookup`, SPEC §8 `ring lookup --json`).
#[derive(Debug, Serialize)]
pub struct LookupView<'a> {
    /// The service's name in the config.
    pub service: &'a str,
    /// The key as given.
    pub key: &'a str,
    /// Its position: XXH3-128 as 32 hex digits.
    pub hash: String,
    /// Primary first.
    pub instances: Vec<InstanceRef>,
}

impl<'a> LookupView<'a> {
    /// The view of `key`'s preference list on `ring`.
    pub fn new(service: &'a str, key: &'a str, ring: &Ring) -> LookupView<'a> {
        let position = Token::of_key(key.as_bytes());
        LookupView {
            service,
            key,
            hash: position.to_string(),
            instances: ring
                .preference_list(position)
                .iter()
                .map(|instance| InstanceRef::of(instance.name(), instance.addr()))
                .collect(),
        }
    }

    /// One line of text: the key, its hash and its instances, primary first.
    pub fn to_text(&self) -> String {
        let instances: Vec<String> = self
            .instances
            .iter()
            .map(|instance| format!("{}:{} ({})", instance.host, instance.port, instance.addr))
            .collect();
        format!("{}\t{}\t{}", self.key, self.hash, instances.join(", "))
    }
}

/// One instance of a ring, with its tokens and share.
#[derive(Debug, Serialize)]
pub struct InstanceView {
    /// The host.
    pub host: String,
    /// The port.
    pub port: u16,
    /// `ip:port`.
    pub addr: String,
    /// Its tokens as 32 hex digits, ascending (empty for SRV services).
    pub tokens: Vec<String>,
    /// The share of the key space it owns as primary, in `[0, 1]`.
    pub share: f64,
    /// SRV priority (SRV services only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    /// SRV weight (SRV services only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    /// Health checking's view (the admin API only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::HealthView>,
    /// Whether it is drained: reads go to its replicas first (the admin
    /// API only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drained: Option<bool>,
}

impl InstanceView {
    fn of_ring(instance: &Instance) -> InstanceView {
        InstanceView {
            host: instance.name().host().to_owned(),
            port: instance.name().port(),
            addr: instance.addr().to_string(),
            tokens: instance.tokens().iter().map(ToString::to_string).collect(),
            share: instance.share(),
            priority: None,
            weight: None,
            health: None,
            drained: None,
        }
    }

    fn of_srv(instance: &SrvInstance) -> InstanceView {
        InstanceView {
            host: instance.name.host().to_owned(),
            port: instance.name.port(),
            addr: instance.addr.to_string(),
            tokens: Vec::new(),
            share: 0.0,
            priority: Some(instance.weight.priority),
            weight: Some(instance.weight.weight),
            health: None,
            drained: None,
        }
    }
}

/// A range `(after, through]` and its preference list.
#[derive(Debug, Serialize)]
pub struct RangeView {
    /// The previous token (exclusive).
    pub after: String,
    /// The owner's token (inclusive).
    pub through: String,
    /// Its share of the key space.
    pub share: f64,
    /// `host:port` of each instance of the preference list, primary first.
    pub instances: Vec<String>,
}

/// The ring settings.
#[derive(Debug, Serialize)]
pub struct SettingsView {
    /// `ring` or `srv`.
    pub balance: &'static str,
    /// Replicas after the primary.
    pub slaves: u8,
    /// `none` or `host`.
    pub redundancy: String,
    /// Where `slaves` and `redundancy` came from (SPEC §9.5): `dns` (the
    /// `config.<srv>` record), `config` (the config file) or `default`.
    pub replication_source: &'static str,
    /// The length of every preference list.
    pub list_len: usize,
}

/// A service's ring as `/ring` and `ring show --json` show it.
#[derive(Debug, Serialize)]
pub struct ServiceView {
    /// The service's name in the config.
    pub service: String,
    /// The SRV name, or `static`.
    pub source: String,
    /// Settings.
    pub settings: SettingsView,
    /// The ring's fingerprint (SPEC §2), if it is a ring.
    pub fingerprint: Option<String>,
    /// Instances sorted by `host:port`.
    pub instances: Vec<InstanceView>,
    /// Every range in ring order (only where asked for: a large ring has
    /// hundreds of thousands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Vec<RangeView>>,
    /// When the ring in use was discovered (seconds since the Unix epoch).
    pub discovered_at: Option<f64>,
    /// When a refresh last succeeded.
    pub last_refresh: Option<f64>,
    /// The latest refresh error, if the latest failure came after the
    /// latest success.
    pub last_error: Option<String>,
    /// When that error happened.
    pub last_error_at: Option<f64>,
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

fn preference_names(list: PreferenceList<'_>) -> Vec<String> {
    list.iter()
        .map(|instance| instance.name().to_string())
        .collect()
}

impl ServiceView {
    /// The view of one service. `table` is the ring in use (none yet:
    /// empty) with where its replication settings came from,
    /// `with_ranges` adds every range.
    pub fn new(
        service: &str,
        source: &str,
        table: Option<(&Table, SystemTime, ReplicationFrom)>,
        status: &RefreshStatus,
        with_ranges: bool,
    ) -> ServiceView {
        let replication_source = table.map_or(ReplicationFrom::Default, |(_, _, from)| from);
        let (settings, fingerprint, instances, ranges) = match table.map(|(table, ..)| table) {
            Some(Table::Ring(ring)) => {
                let replication = ring.replication();
                let ranges = with_ranges.then(|| {
                    ring.ranges()
                        .map(|range| RangeView {
                            after: range.after.to_string(),
                            through: range.through.to_string(),
                            share: range.share(ring.point_count()),
                            instances: preference_names(ring.preference_list_at(range.point)),
                        })
                        .collect()
                });
                (
                    SettingsView {
                        balance: "ring",
                        slaves: replication.slaves,
                        redundancy: replication.redundancy.to_string(),
                        replication_source: replication_source.as_str(),
                        list_len: ring.list_len(),
                    },
                    Some(ring.fingerprint().to_string()),
                    ring.instances().iter().map(InstanceView::of_ring).collect(),
                    ranges,
                )
            }
            Some(Table::Srv(instances)) => (
                SettingsView {
                    balance: "srv",
                    slaves: 0,
                    redundancy: "none".to_owned(),
                    replication_source: ReplicationFrom::Default.as_str(),
                    list_len: instances.len(),
                },
                None,
                instances.iter().map(InstanceView::of_srv).collect(),
                None,
            ),
            None => (
                SettingsView {
                    balance: "ring",
                    slaves: 0,
                    redundancy: "none".to_owned(),
                    replication_source: ReplicationFrom::Default.as_str(),
                    list_len: 0,
                },
                None,
                Vec::new(),
                None,
            ),
        };
        let error_is_current = match (&status.last_error, status.last_success) {
            (Some((failed, _)), Some(succeeded)) => *failed > succeeded,
            (Some(_), None) => true,
            _ => false,
        };
        let (last_error, last_error_at) = match &status.last_error {
            Some((at, error)) if error_is_current => {
                (Some(error.to_string()), Some(unix_seconds(*at)))
            }
            _ => (None, None),
        };
        ServiceView {
            service: service.to_owned(),
            source: source.to_owned(),
            settings,
            fingerprint,
            instances,
            ranges,
            discovered_at: table.map(|(_, at, _)| unix_seconds(at)),
            last_refresh: status.last_success.map(unix_seconds),
            last_error,
            last_error_at,
        }
    }

    /// Human-readable text: a header, the instances with their shares, and
    /// the ranges when present.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(text, "service {} ({})", self.service, self.source);
        let _ = writeln!(
            text,
            "  balance={} slaves={} redundancy={} (from {}) preference lists of {}",
            self.settings.balance,
            self.settings.slaves,
            self.settings.redundancy,
            self.settings.replication_source,
            self.settings.list_len
        );
        if let Some(fingerprint) = &self.fingerprint {
            let _ = writeln!(text, "  fingerprint {fingerprint}");
        }
        let tokens: usize = self.instances.iter().map(|i| i.tokens.len()).sum();
        let _ = writeln!(
            text,
            "  {} instances, {} tokens",
            self.instances.len(),
            tokens
        );
        for instance in &self.instances {
            let _ = write!(
                text,
                "  {}:{}\t{}\t",
                instance.host, instance.port, instance.addr
            );
            match (instance.priority, instance.weight) {
                (Some(priority), Some(weight)) => {
                    let _ = writeln!(text, "priority {priority} weight {weight}");
                }
                _ => {
                    let _ = writeln!(
                        text,
                        "{:>8.4}% of keys\t{} tokens",
                        instance.share * 100.0,
                        instance.tokens.len()
                    );
                }
            }
        }
        if let Some(error) = &self.last_error {
            let _ = writeln!(text, "  last refresh failed: {error}");
        }
        if let Some(ranges) = &self.ranges {
            let _ = writeln!(text, "  ranges (after, through]  share  preference list:");
            for range in ranges {
                let _ = writeln!(
                    text,
                    "  ({}, {}]\t{:>8.4}%\t{}",
                    range.after,
                    range.through,
                    range.share * 100.0,
                    range.instances.join(", ")
                );
            }
        }
        text
    }
}
