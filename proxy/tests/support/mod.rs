//! Shared support for the integration tests: `mod support;` in a test file.
//!
//! - [`bind`]: a real BIND `named` with a dynamic zone, for end-to-end tests.
//!
//! The in-process DNS server is `shardproxy::dns_server`.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]
// Test-support code: a failure is a panic with a clear message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod bind;

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;

/// A resolver that asks only the server at `addr` (UDP, falling back to
/// TCP for truncated answers), with no cache, a 1 s timeout and no retry:
/// every lookup reaches the server, and a dead server fails fast.
pub fn resolver(addr: SocketAddr) -> TokioResolver {
    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
    for connection in &mut server.connections {
        connection.port = addr.port();
    }
    let config = ResolverConfig::from_name_servers(vec![server]);
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    let options = builder.options_mut();
    options.cache_size = 0;
    options.timeout = Duration::from_secs(1);
    options.attempts = 1;
    builder
        .build()
        .expect("a resolver with one name server builds")
}
