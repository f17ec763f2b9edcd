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
        probe_interval: field(
            source,
            &key.key("probe_interval"),
            raw.probe_interval.as_ref(),
            defaults.probe_interval,
            positive_duration,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::Config;

    fn with_outlier(outlier: &str) -> Result<Config, crate::config::ConfigErrors> {
        Config::from_toml(
            &format!(
                "[services.web]\nsrv = \"_w._http.example.com\"\n{outlier}\n\n[[routes]]\nservice = \"web\"\n"
            ),
            "config.toml",
        )
    }

    #[test]
    fn probe_interval_defaults_to_two_seconds_and_must_be_positive() {
        let probe = |outlier: &str| {
            with_outlier(outlier)
                .unwrap_or_else(|error| panic!("{error}"))
                .service("web")
                .map(|service| service.outlier.probe_interval)
        };
        assert_eq!(probe(""), Some(Duration::from_secs(2)));
        assert_eq!(
            probe("outlier_detection = { consecutive_failures = 3 }"),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            probe("outlier_detection = { probe_interval = \"500ms\" }"),
            Some(Duration::from_millis(500))
        );
        for (value, problem) in [("\"0s\"", "must be more than 0s"), ("2", "no unit")] {
            let error = with_outlier(&format!(
                "outlier_detection = {{ probe_interval = {value} }}"
            ))
            .err()
            .unwrap_or_else(|| panic!("probe_interval = {value} is accepted"));
            let text = error.to_string();
            assert!(
                text.starts_with("config.toml:3:")
                    && text.contains("services.web.outlier_detection.probe_interval")
                    && text.contains(problem),
                "{text}"
            );
        }
    }
}
