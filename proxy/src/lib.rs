//! shardproxy: a sharding HTTP reverse proxy whose consistent-hash ring is
//! published in DNS (see `SPEC.md`).
//!
//! # Layout
//!
//! - [`config`]: the TOML configuration, parsed and validated into types.
//! - [`discovery`]: DNS (or static config) to rings, refreshed and swapped
//!   whole.
//! - [`dns_server`]: an in-process authoritative DNS server for the demo and
//!   the tests.
//! - [`app`]: the running proxy's shared state; start and stop.
//! - [`server`]: the listeners and their accept loops.
//! - [`route`]: which service a request belongs to.
//! - [`key`]: the shard key of a request.
//! - [`forward`]: forwarding with retries on the preference list.
//! - [`limits`]: per-service concurrency (load shedding) and request body
//!   limits.
//! - [`cache`]: the response cache (RFC 9111, with coalescing and grace).
//! - [`headers`]: hop-by-hop and forwarding headers.
//! - [`health`]: passive and active health checking; ejections.
//! - [`error`]: what the proxy answers when it cannot forward.
//! - [`logging`]: text or JSON logs.
//! - [`metrics`]: Prometheus metrics.
//! - [`admin`]: the admin API.
//! - [`demo`]: `shardproxy demo`.
//! - [`view`]: the JSON and text views of rings for the admin API and CLI.
//! - [`ring_tools`]: `ring diff` and `ring plan`, on zone files.
//! - [`cli`]: the command line.

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod body;
pub mod cache;
pub mod cli;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod dns_server;
pub mod error;
pub mod forward;
pub mod headers;
pub mod health;
pub mod key;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod pool;
pub mod ring_tools;
pub mod route;
pub mod run;
pub mod server;
pub mod view;
