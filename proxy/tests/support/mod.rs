//! Shared support for the integration tests: `mod support;` in a test file.
//!
//! - [`bind`]: a real BIND `named` with a dynamic zone, for end-to-end tests.
//!
//! The in-process DNS server is `shardproxy::dns_server`.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]
// Test-support code: a failure is a panic with a clear message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod backend;
pub mod bind;
