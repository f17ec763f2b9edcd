//! `health_check = { ... }` and `outlier_detection = { ... }` of a service.

use std::time::Duration;

use toml::Spanned;

use super::check::{field, int_in, ordered, positive_duration, Bound};
use super::duration::format_duration;
use super::error::{KeyPath, Source};
use super::raw::{RawHealthCheck, RawOutlier};
use super::{HealthCheckConfig, OutlierConfig};

/// Active checks: absent means none.
pub(super) fn health_check(
    source: &Source<'_>,
    key: &KeyPath,
    raw: Option<&Spanned<RawHealthCheck>>,
) -> Option<HealthCheckConfig> {
    let raw = raw?.get_ref();
    let path = field(
        source,
        &key.key("path"),
        raw.path.as_ref(),
        "/healthz".to_owned(),
        |path: &String| {
            if path.starts_with('/') && !path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Ok(path.clone())
            } else {
                Err("expected a path starting with '/', without spaces".to_owned())
            }
        },
    );
    let (interval_key, timeout_key) = (key.key("interval"), key.key("timeout"));
    let (timeout, interval) = ordered(
        source,
        Bound::new(
            source,
            &timeout_key,
            raw.timeout.as_ref(),
            Duration::from_secs(1),
            positive_duration,
        ),
        Bound::new(
            source,
            &interval_key,
            raw.interval.as_ref(),
            Duration::from_secs(5),
            positive_duration,
        ),
        |duration| format_duration(*duration),
    );
    Some(HealthCheckConfig {
        path,
        interval,
        timeout,
    })
}

/// Passive ejection, on by default.
pub(super) fn outlier(
    source: &Source<'_>,
    key: &KeyPath,
    raw: Option<&Spanned<RawOutlier>>,
) -> OutlierConfig {
    let defaults = OutlierConfig::default();
    let Some(raw) = raw else {
        return defaults;
    };
    let raw = raw.get_ref();
    let (base_key, max_key) = (key.key("base_ejection_time"), key.key("max_ejection_time"));
    let (base_ejection_time, max_ejection_time) = ordered(
        source,
        Bound::new(
            source,
            &base_key,
            raw.base_ejection_time.as_ref(),
            defaults.base_ejection_time,
            positive_duration,
        ),
        // More than 0 too: base_ejection_time, at most this, must be.
        Bound::new(
            source,
            &max_key,
            raw.max_ejection_time.as_ref(),
            defaults.max_ejection_time,
            positive_duration,
        ),
        |duration| format_duration(*duration),
    );
    OutlierConfig {
        consecutive_failures: field(
            source,
            &key.key("consecutive_failures"),
            raw.consecutive_failures.as_ref(),
            defaults.consecutive_failures,
            int_in(0, 1_000_000),
        ),
        base_ejection_time,
        max_ejection_time,
    }
}
