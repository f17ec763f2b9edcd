//! The first stage: the TOML document as serde reads it, before any value
//! is checked.
//!
//! Every struct denies unknown fields, so a misspelt key is an error rather
//! than a setting silently left at its default. Every value that is checked
//! later is `Spanned`, so its error can point at its line and column, and
//! every key is optional here so that a missing one is reported by the
//! validator in the same words as any other bad key.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::{Spanned, Value};

/// A string-valued key.
pub(super) type Text = Option<Spanned<String>>;
/// An integer-valued key, range-checked later.
pub(super) type Int = Option<Spanned<i64>>;
/// A duration or size: any TOML value, so that a bare number gets the
/// loader's own message ("has no unit") instead of serde's.
pub(super) type Quantity = Option<Spanned<Value>>;
/// A boolean key.
pub(super) type Flag = Option<Spanned<bool>>;

/// The whole document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: Option<Spanned<RawServer>>,
    pub(super) dns: Option<Spanned<RawDns>>,
    pub(super) log: Option<Spanned<RawLog>>,
    pub(super) services: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawService>>>>,
    pub(super) routes: Option<Spanned<Vec<Spanned<RawRoute>>>>,
    pub(super) cache_peers: Option<Spanned<RawCachePeers>>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Text,
    pub(super) admin: Text,
    pub(super) max_header_size: Quantity,
    pub(super) max_headers: Int,
    pub(super) header_read_timeout: Quantity,
    pub(super) idle_timeout: Quantity,
    pub(super) max_connections: Int,
    pub(super) workers: Int,
    pub(super) drain_timeout: Quantity,
    pub(super) send_timeout: Quantity,
    pub(super) error_detail: Flag,
    pub(super) proxy_protocol: Flag,
    pub(super) admin_token: Text,
    pub(super) admin_token_file: Text,
    pub(super) tls: Option<Spanned<RawTls>>,
}

/// `[server.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: Text,
    pub(super) key: Text,
    pub(super) client_ca: Text,
    pub(super) certificates: Option<Spanned<Vec<Spanned<RawCertificate>>>>,
}

/// One element of `[server.tls] certificates = [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCertificate {
    pub(super) cert: Text,
    pub(super) key: Text,
}

/// `load_bound = { ... }` of a service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLoadBound {
    pub(super) factor: Option<Spanned<f64>>,
    pub(super) scope: Text,
}

/// `upstream_tls = { ... }` of a service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstreamTls {
    pub(super) ca: Text,
    pub(super) cert: Text,
    pub(super) key: Text,
}

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) level: Text,
    pub(super) format: Text,
    pub(super) access_log: Flag,
    pub(super) access_log_file: Text,
}

/// `[cache_peers]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCachePeers {
    pub(super) addrs: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) srv: Text,
    pub(super) timeout: Quantity,
}

/// `[dns]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    pub(super) servers: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) refresh: Quantity,
}

/// `[services.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) srv: Text,
    pub(super) instances: Option<Spanned<Vec<Spanned<RawInstance>>>>,
    pub(super) balance: Text,
    pub(super) key: Text,
    pub(super) tokens: Text,
    pub(super) virtual_nodes: Int,
    pub(super) slaves: Int,
    pub(super) redundancy: Text,
    pub(super) transition_grace: Quantity,
    pub(super) writes: Text,
    pub(super) write_quorum: Int,
    pub(super) max_body: Quantity,
    pub(super) read_fallback_404: Flag,
    pub(super) read_repair: Flag,
    pub(super) hot_keys_record: Flag,
    pub(super) retry_on: Option<Spanned<Vec<Spanned<i64>>>>,
    pub(super) try_timeout: Quantity,
    pub(super) deadline: Quantity,
    pub(super) body_timeout: Quantity,
    pub(super) retry_budget: Option<Spanned<f64>>,
    pub(super) retry_min_per_second: Int,
    pub(super) retry_body_limit: Quantity,
    pub(super) max_concurrency: Int,
    pub(super) upstream_max_idle: Int,
    pub(super) upstream_idle_timeout: Quantity,
    pub(super) upstream_protocol: Text,
    pub(super) load_bound: Option<Spanned<RawLoadBound>>,
    pub(super) upstream_tls: Option<Spanned<RawUpstreamTls>>,
    pub(super) cache: Option<Spanned<RawCache>>,
    pub(super) health_check: Option<Spanned<RawHealthCheck>>,
    pub(super) outlier_detection: Option<Spanned<RawOutlier>>,
}

/// One element of `instances = [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInstance {
    pub(super) host: Text,
    pub(super) addr: Text,
    pub(super) tokens: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[services.NAME.cache]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub(super) enabled: Flag,
    pub(super) max_size: Quantity,
    pub(super) max_object_size: Quantity,
    pub(super) default_ttl: Quantity,
    pub(super) max_ttl: Quantity,
    pub(super) grace: Quantity,
    pub(super) authorized: Flag,
    pub(super) tag_header: Text,
    pub(super) expose_tags: Flag,
    pub(super) targeted: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `health_check = { ... }` of a service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealthCheck {
    pub(super) path: Text,
    pub(super) interval: Quantity,
    pub(super) timeout: Quantity,
}

/// `outlier_detection = { ... }` of a service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutlier {
    pub(super) consecutive_failures: Int,
    pub(super) base_ejection_time: Quantity,
    pub(super) max_ejection_time: Quantity,
    pub(super) probe_interval: Quantity,
}

/// One `[[routes]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) path_prefix: Text,
    pub(super) host: Text,
    pub(super) service: Text,
    pub(super) strip_prefix: Flag,
    pub(super) max_body: Quantity,
}
