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
//! - [`view`]: the JSON and text views of rings for the admin API and CLI.
//! - [`cli`]: the command line.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod discovery;
pub mod dns_server;
pub mod view;
