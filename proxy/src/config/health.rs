//! `health_check = { ... }` and `outlier_detection = { ... }` of a service.

use toml::Spanned;

use super::check::{duration, field, int_in, not_above, positive_duration, span_of};
use super::duration::format_duration;
use super::error::{ConfigError, KeyPath, Source};
use super::raw::{RawHealthCheck, RawOutlier};
use super::{HealthCheckConfig, OutlierConfig};

/// Active checks: absent means none.
pub(super) fn health_check(
    source: &Source<'_>,
    key: &KeyPath,
    raw: Option<&Spanned<RawHealthCheck>>,
) -> Result<Option<HealthCheckConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let raw = raw.get_ref();
    let path_key = key.key("path");
    let path = field(
        source,
        &path_key,
        raw.path.as_ref(),
        "/healthz".to_owned(),
        |path: &String| {
            if path.starts_with('/') && !path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Ok(path.clone())
            } else {
                Err("expected a path starting with '/', without spaces".to_owned())
            }
        },
    )?;
    let (interval_key, timeout_key) = (key.key("interval"), key.key("timeout"));
    let interval = field(
        source,
        &interval_key,
        raw.interval.as_ref(),
        std::time::Duration::from_secs(5),
        positive_duration,
    )?;
    let timeout = field(
        source,
        &timeout_key,
        raw.timeout.as_ref(),
        std::time::Duration::from_secs(1),
        positive_duration,
    )?;
    not_above(
        source,
        (&timeout_key, span_of(raw.timeout.as_ref()), timeout),
        (&interval_key, span_of(raw.interval.as_ref()), interval),
        |duration| format_duration(*duration),
    )?;
    Ok(Some(HealthCheckConfig {
        path,
        interval,
        timeout,
    }))
}

/// Passive ejection, on by default.
pub(super) fn outlier(
    source: &Source<'_>,
    key: &KeyPath,
    raw: Option<&Spanned<RawOutlier>>,
) -> Result<OutlierConfig, ConfigError> {
    let defaults = OutlierConfig::default();
    let Some(raw) = raw else {
        return Ok(defaults);
    };
    let raw = raw.get_ref();
    let (base_key, max_key) = (key.key("base_ejection_time"), key.key("max_ejection_time"));
    let config = OutlierConfig {
        consecutive_failures: field(
            source,
            &key.key("consecutive_failures"),
            raw.consecutive_failures.as_ref(),
            defaults.consecutive_failures,
            int_in(0, 1_000_000),
        )?,
        base_ejection_time: field(
            source,
            &base_key,
            raw.base_ejection_time.as_ref(),
            defaults.base_ejection_time,
            positive_duration,
        )?,
        max_ejection_time: field(
            source,
            &max_key,
            raw.max_ejection_time.as_ref(),
            defaults.max_ejection_time,
            duration,
        )?,
    };
    not_above(
        source,
        (
            &base_key,
            span_of(raw.base_ejection_time.as_ref()),
            config.base_ejection_time,
        ),
        (
            &max_key,
            span_of(raw.max_ejection_time.as_ref()),
            config.max_ejection_time,
        ),
        |duration| format_duration(*duration),
    )?;
    Ok(config)
}
