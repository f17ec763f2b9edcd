//! shardproxy: a sharding HTTP reverse proxy whose consistent-hash ring is
//! published in DNS (see `SPEC.md`).
//!
//! # A request's way
//!
//! [`server`] (accept, HTTP/1.1 or HTTP/2) -> [`pipeline::handle`]: the
//! request normalized ([`inbound`]) -> route ([`route`]) -> shed
//! ([`limits`]) -> [`cache::look_first`], then [`cache::serve`] unless the
//! store answered, for a cached service's GET and HEAD, else ->
//! [`forward::forward`]: key ([`key`]) -> preference list of the current
//! ring ([`discovery`]) -> attempts on each instance in order, retried on
//! the replicas ([`health`], [`pool`]) -> response, or an [`error`] that
//! names who failed -> counted ([`metrics`]) and logged, back in the
//! pipeline.
//!
//! # Layout
//!
//! Bottom to top: each module imports only modules above it in this list
//! (a child may use its own parent), so the crate has no import cycle;
//! `scripts/check-module-cycles` checks both, this list included.
//!
//! The ground:
//! - [`body`]: the body type every layer passes along.
//! - [`worker`]: which serving thread runs the code, and what is kept per
//!   thread (the upstream connections).
//! - [`stall`]: the timer of every "nothing for this long" limit.
//! - [`headers`]: hop-by-hop and forwarding headers.
//! - [`interim`]: the instances' `1xx` on their way to the client, between
//!   what hyper writes.
//! - [`request_id`]: the id that ties a request's log lines together.
//! - [`tls`]: the client-facing TLS settings, read from PEM files.
//! - [`dns_server`]: an in-process authoritative DNS server for the demo and
//!   the tests.
//! - [`config`]: the TOML configuration, parsed and validated into types.
//! - [`pool`]: the keep-alive connections to the instances.
//! - [`ring_tools`]: `ring diff` and `ring plan`, on zone files, and
//!   `ring publish`, their DNS UPDATE to the zone's primary server.
//! - [`route`]: which service a request belongs to.
//! - [`key`]: the shard key of a request.
//! - [`logging`]: text or JSON logs.
//! - [`server`]: the listeners, their accept loops and drain; handed the
//!   proxy's and the admin API's handlers, it knows neither.
//! - [`discovery`]: DNS (or static config) to rings, refreshed and swapped
//!   whole.
//!
//! Shared types of the request path:
//! - [`error`]: what the proxy answers when it cannot forward, and who
//!   failed; the one place a status is chosen.
//! - [`metrics`]: Prometheus metrics and their label enums.
//! - [`limits`]: per-service concurrency (load shedding) and request body
//!   limits (size, and `body_timeout` for a client that pauses).
//! - [`health`]: passive and active health checking; ejections, and the
//!   probes that restore an ejected instance once it is back.
//! - [`load`]: where requests fall: the hot keys (sampled, bounded
//!   sketches) and the requests per ring range, and their JSON.
//!
//! The request path (what handles a service's requests takes its
//! [`forward::Upstream`] handle, never the whole state):
//! - [`inbound`]: the request as the instance will see it, before anything
//!   reads it; what the proxy refuses.
//! - [`forward`]: forwarding with retries on the preference list, ring
//!   transitions and replica writes.
//! - [`view`]: the JSON and text views of rings for the admin API and CLI.
//! - [`cache`]: the response cache (RFC 9111, with coalescing and grace);
//!   it fetches a miss through [`forward`], never through the pipeline.
//! - [`access_log`]: one line per request, written once it is sent.
//!
//! The running proxy:
//! - [`app`]: its state, built once per config: routes, services, metrics.
//! - [`pipeline`]: one request, outermost step first.
//! - [`admin`]: the admin API (behind `admin_token` when set), its ring
//!   page (`/ui`), and a purge's way to the other proxies of
//!   `[cache_peers]`.
//! - [`run`]: start, reload and stop: the one module that knows both the
//!   state and the sockets.
//! - [`demo`]: `shardproxy demo`.
//! - [`cli`]: the command line.

// Denied, and allowed in one place, where its safety is stated: the
// lot's epoll instance handed to tokio to watch (`server::lot`).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod access_log;
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
pub mod inbound;
pub mod interim;
pub mod key;
pub mod limits;
pub mod load;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod pool;
pub mod request_id;
pub mod ring_tools;
pub mod route;
pub mod run;
pub mod server;
pub mod stall;
pub mod tls;
pub mod view;
pub mod worker;
