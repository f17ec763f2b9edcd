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
