//! Where a service's requests fall (SPEC §11): its hot keys, and its
//! requests per ring range and per primary instance; and their JSON for the
//! admin API.
//!
//! Both are recorded where a request's key position is known: in
//! `forward::forward` for every request sent to the instances (the
//! cache's misses, revalidations and passes included, and upgrades), and
//! in `cache::look_first` and `cache::serve` for requests the cache
//! answers itself (fresh and stale hits). So each client request is
//! counted once, and a cache's background revalidation once more.
//!
//! # `GET /keys/hot?service=S`
//!
//! ```json
//! {"service": "frob", "window_s": 14.2,
//!  "keys": [{"hash": "<32 hex>", "rate": 812.5, "share": 0.134,
//!            "instances": ["frob1.example.com:8081", "frob2.example.com:8081"]}, ...]}
//! ```
//!
//! The most requested keys of the recent window, hottest first (at most
//! [`hot::TOP`]). `hash` is the key's position (XXH3-128, as
//! `/ring/lookup` writes it); `instances` its preference list on the ring
//! in use, primary first (empty for `balance = "srv"`). `window_s` is how
//! long the counts cover: the last complete window of 10 s plus the
//! current one so far. `rate` is the key's requests per second over it,
//! `share` its fraction of the service's requests in it. Counts come from
//! a sample of about one request in 8 (random gaps), in Space-Saving
//! sketches of fixed size ([`hot`], [`sketch`]): memory is bounded
//! whatever the key space; Space-Saving keeps every key above 1/256 of
//! what a sketch counted, so a key above about 0.4% of the requests is
//! found up to sampling noise. With `hot_keys_record = true`, each entry also has `"key"`, the
//! key's text (cut at 512 bytes; bytes that are not UTF-8 replaced).
//!
//! # `GET /ring/load?service=S`
//!
//! ```json
//! {"service": "frob", "fingerprint": "829eca56d9650912", "since": 1765043000.5,
//!  "requests": 120000,
//!  "ranges": [{"after": "<32 hex>", "through": "<32 hex>",
//!              "owner": "frob1.example.com:8081", "requests": 30000}, ...],
//!  "instances": [{"instance": "frob1.example.com:8081", "requests": 61000}, ...],
//!  "keys": [{"hash": "<32 hex>", "requests": 16000}, ...]}
//! ```
//!
//! The requests counted in each range `(after, through]` of the ring in
//! use (wrapping when `after > through`; `after == through` on a ring of
//! one token is the whole ring), in ring order as `ring diff --json` lists
//! ranges; `owner` is the range's primary. `instances` totals the ranges
//! per owner, by `host:port`, and `requests` all of them. `fingerprint`
//! names the ring the counts belong to, `since` (Unix seconds, `null`
//! before any request saw the ring) when counting began. Counts start
//! from zero with every new ring, whose ranges are new, and with every
//! reload; a file saved from this endpoint is what `ring plan --by-load`
//! reads. `keys` are the hot keys of `/keys/hot`, each with an estimate of
//! its requests among those counted here (its share of the recent window
//! times `requests`): `ring plan --by-load` places them at their positions
//! when it looks for a range's request median. Every request is counted (no sampling): one relaxed atomic
//! increment per request, at the index of the ring lookup.
//!
//! The metric `shardproxy_instance_key_requests_total{service, upstream}`
//! counts the same requests per primary, whether or not the primary
//! answered; unlike the JSON, it goes on across ring changes and reloads.
//!
//! # Layout
//!
//! - [`sketch`]: Space-Saving, the fixed-size summary of a stream.
//! - [`hot`]: a service's sampled sketches in time windows.
//! - [`ranges`]: one ring's per-range counters.

pub mod hot;
pub mod ranges;
pub mod sketch;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use serde::Serialize;
use shardproxy_ring::Ring;

pub use hot::{HotKeys, Top};
pub use ranges::RangeLoad;

/// `/keys/hot`.
#[derive(Debug, Serialize)]
pub struct HotView<'a> {
    /// The service's name in the config.
    pub service: &'a str,
    /// How long the counts cover, in seconds.
    pub window_s: f64,
    /// Hottest first.
    pub keys: Vec<HotKeyView>,
}

/// One key of [`HotView`].
#[derive(Debug, Serialize)]
pub struct HotKeyView {
    /// Its position, 32 hex digits.
    pub hash: String,
    /// Its text, only with `hot_keys_record`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Requests per second.
    pub rate: f64,
    /// Fraction of the service's requests.
    pub share: f64,
    /// Its preference list on the ring in use, `host:port`, primary first.
    pub instances: Vec<String>,
}

/// `/ring/load`.
#[derive(Debug, Serialize)]
pub struct LoadView<'a> {
    /// The service's name in the config.
    pub service: &'a str,
    /// The fingerprint of the ring counted.
    pub fingerprint: String,
    /// When counting began, Unix seconds; `None` before any request.
    pub since: Option<f64>,
    /// Requests over every range.
    pub requests: u64,
    /// In ring order.
    pub ranges: Vec<RangeView>,
    /// Per primary, by name.
    pub instances: Vec<InstanceLoad>,
    /// The hot keys, with their estimated requests, hottest first.
    pub keys: Vec<KeyLoadView>,
}

/// One hot key of [`LoadView`].
#[derive(Debug, Serialize)]
pub struct KeyLoadView {
    /// Its ring position, 32 hex digits.
    pub hash: String,
    /// Its share of the recent window times the requests counted.
    pub requests: f64,
}

/// One range of [`LoadView`].
#[derive(Debug, Serialize)]
pub struct RangeView {
    /// The previous token (exclusive), 32 hex digits.
    pub after: String,
    /// The owner's token (inclusive), 32 hex digits.
    pub through: String,
    /// The primary, `host:port`.
    pub owner: String,
    /// Requests whose key fell in it.
    pub requests: u64,
}

/// One instance of [`LoadView`].
#[derive(Debug, Serialize)]
pub struct InstanceLoad {
    /// `host:port`.
    pub instance: String,
    /// Requests whose key's primary it is.
    pub requests: u64,
}

// === impl HotView ===

impl<'a> HotView<'a> {
    /// The view of `top`, with each key's preference list on `ring` (none
    /// without a ring).
    pub fn new(service: &'a str, top: Top, ring: Option<&Ring>) -> HotView<'a> {
        let keys = top
            .keys
            .into_iter()
            .map(|hot| HotKeyView {
                hash: hot.position.to_string(),
                key: hot
                    .key
                    .map(|key| String::from_utf8_lossy(&key).into_owned()),
                rate: hot.rate,
                share: hot.share,
                instances: ring.map_or_else(Vec::new, |ring| {
                    ring.preference_list(hot.position)
                        .iter()
                        .map(|instance| instance.name().to_string())
                        .collect()
                }),
            })
            .collect();
        HotView {
            service,
            window_s: top.window_s,
            keys,
        }
    }
}

// === impl LoadView ===

impl<'a> LoadView<'a> {
    /// The view of `load`, the counts of `ring` (zero when no request has
    /// seen the ring yet).
    pub fn new(service: &'a str, ring: &Ring, load: Option<&RangeLoad>, hot: &Top) -> LoadView<'a> {
        let requests = |point: usize| load.map_or(0, |load| load.requests(point));
        let name = |index: u32| {
            ring.instance(index)
                .map_or_else(String::new, |instance| instance.name().to_string())
        };
        let ranges: Vec<RangeView> = ring
            .ranges()
            .map(|range| RangeView {
                after: range.after.to_string(),
                through: range.through.to_string(),
                owner: name(range.owner),
                requests: requests(range.point),
            })
            .collect();
        let mut per_instance: BTreeMap<String, u64> = ring
            .instances()
            .iter()
            .map(|instance| (instance.name().to_string(), 0))
            .collect();
        for range in &ranges {
            *per_instance.entry(range.owner.clone()).or_default() += range.requests;
        }
        let total: u64 = ranges.iter().map(|range| range.requests).sum();
        LoadView {
            service,
            fingerprint: ring.fingerprint().to_string(),
            since: load.and_then(|load| {
                load.since()
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .map(|since| since.as_secs_f64())
            }),
            requests: total,
            keys: hot
                .keys
                .iter()
                .map(|key| KeyLoadView {
                    hash: key.position.to_string(),
                    requests: key.share * total as f64,
                })
                .collect(),
            ranges,
            instances: per_instance
                .into_iter()
                .map(|(instance, requests)| InstanceLoad { instance, requests })
                .collect(),
        }
    }
}
