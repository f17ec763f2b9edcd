//! Shared support for the integration tests: `mod support;` in a test file.
//!
//! - [`bind`]: a real BIND `named` with a dynamic zone, for end-to-end tests.
//! - [`recorder`]: a backend that records the exact bytes it receives.
//! - [`raw`]: a raw TCP client that sends exact bytes.
//!
//! The in-process DNS server is `shardproxy::dns_server`.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]
// Test-support code: a failure is a panic with a clear message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod backend;
pub mod bind;
pub mod raw;
pub mod recorder;

use std::future::Future;
use std::time::Duration;

/// Polls `condition` every 10 ms until it holds; fails the test after
/// `within`. Tests wait on readiness this way, never on fixed sleeps.
pub async fn wait_until_within<F, Fut>(within: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let waited = tokio::time::timeout(within, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

/// The sum of the samples of metric `name` in a text-format scrape whose
/// labels include every one of `labels`. Label values here are host names,
/// numbers and words: no escapes to undo.
pub fn sum_samples(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (sample_name, sample_labels) = match series.split_once('{') {
            Some((sample_name, rest)) => (sample_name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if sample_name != name {
            continue;
        }
        let has = |(label, wanted): &(&str, &str)| {
            sample_labels
                .split(',')
                .any(|pair| pair == format!("{label}=\"{wanted}\""))
        };
        if labels.iter().all(has) {
            sum += value
                .parse::<f64>()
                .unwrap_or_else(|error| panic!("{line}: {error}"));
        }
    }
    sum
}
