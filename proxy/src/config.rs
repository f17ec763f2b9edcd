//! The configuration file (SPEC §4), read and checked once at start-up.
//!
//! Why this shape: a proxy that misreads its config sends traffic to the
//! wrong place, so nothing here is guessed or defaulted behind the user's
//! back. Loading has two stages. `raw` is the document as serde reads it,
//! with unknown keys denied and every value kept with its span. `validate`
//! turns that into the typed [`Config`] below: socket addresses, durations,
//! byte counts, enums, compiled regexes and ready-made ring members, so no
//! other module ever parses config text again. Every failure is a
//! [`ConfigError`] naming the file, line and column, the key as a dotted path,
//! the value and what was expected, all made by one helper
//! (`Source::error`). Validation does not stop at the first: every error of
//! the file is returned at once, as [`ConfigErrors`].
//!
//! A key left out never makes a config invalid: where two keys must agree
//! (`try_timeout` at most `deadline`), the one left out takes its default
//! moved to agree with the one given (`check::ordered`); only two keys
//! given that disagree are an error.
//!
//! # Adding a key
//!
//! 1. A field in the `raw` struct of its table (`Text`, `Int`, `Quantity`,
//!    `Flag`, ...), and a typed field with its doc in the struct here.
//! 2. In the table's validator, `check::field(source, &key.key("name"),
//!    raw.name.as_ref(), DEFAULT, check)`, where `check` is one of the
//!    small checks of `check` (`positive_duration`, `int_in(1, 100)`,
//!    `choice(...)`, ...) or a closure returning `Err(expected)`. It
//!    reports a bad value and returns the default, so validation goes on.
//! 3. A key that must not exceed another: a `check::Bound::new` for each
//!    (as `field`, without applying the default), then `check::ordered`,
//!    which returns both values, a default moved to agree with the key
//!    given. A check between other keys runs only on values that were
//!    given and valid (`check::given` returns `None` for a bad one), so a
//!    placeholder never causes a second error.
//! 4. The default in `Default` (or a `DEFAULT_` const), a line in
//!    `config.example.toml`, and a test in `config/tests.rs`.
//!
//! # Layout
//!
//! - `raw`: the serde structs of the first stage.
//! - `validate`: raw to typed: the entry point, `[server]`, `[dns]` and
//!   `[[routes]]`; `service`: `[services.NAME]` and its cache.
//! - `check`: the per-key checks every validator shares.
//! - `error`: [`ConfigError`] and the one error constructor.
//! - `locate`: the key at a byte span, for errors from the toml crate.
//! - `duration`, `size`, `quantity`: the `"1m30s"` and `"64KiB"` parsers.
//! - `key_source`: [`KeySource`], the `key = ...` setting.
//! - `secret`: [`AdminToken`], kept out of logs and messages.
//! - `tls`: `[server.tls]`, its files read (by [`crate::tls`]).
//! - `peers`: `[cache_peers]`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;

use shardproxy_ring::{Member, Replication};

use crate::tls::instances::InstanceTlsFiles;
use crate::tls::TlsFiles;

mod check;
mod duration;
mod error;
mod health;
mod key_source;
mod locate;
mod peers;
mod quantity;
mod raw;
mod secret;
mod service;
mod size;
mod tls;
mod validate;

#[cfg(test)]
mod tests;

pub use duration::{format_duration, parse_duration};
pub use error::{ConfigError, ConfigErrors, KeyError, Position};
pub use key_source::KeySource;
pub use quantity::QuantityError;
pub use secret::AdminToken;
pub use size::parse_size;

/// A whole, validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `[server]`: where the proxy listens.
    pub server: ServerConfig,
    /// `[dns]`: how rings are looked up.
    pub dns: DnsConfig,
    /// `[log]`: what is logged, and how.
    pub log: LogConfig,
    /// `[services.NAME]`, by name; never empty.
    pub services: BTreeMap<String, ServiceConfig>,
    /// `[[routes]]`, in file order (the first match wins); never empty, and
    /// every route names a service of [`Config::services`].
    pub routes: Vec<RouteConfig>,
    /// `[cache_peers]`: the other proxies a purge reaches; `None` when
    /// the table is absent (a purge stays in this process).
    pub cache_peers: Option<CachePeersConfig>,
}

/// `[cache_peers]` (SPEC §9.6): the proxies whose caches a purge received
/// by this one's admin API must also leave, so that one purge clears an
/// object from a whole fleet, as an operator expects of a cache tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachePeersConfig {
    /// `addrs` or `srv`, exactly one: where the peers' admin APIs are.
    pub peers: CachePeers,
    /// `timeout` (default 5 s, more than 0): the longest one peer's purge
    /// may take, from connecting to its whole answer; past it that peer
    /// is reported failed, so a hung peer cannot hang the purge.
    pub timeout: Duration,
}

/// Where the peers' admin APIs are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CachePeers {
    /// `addrs = ["ip:port", ...]`: these admin addresses (`server.admin`
    /// of each peer), each once, never empty.
    Addrs(Vec<SocketAddr>),
    /// `srv = "NAME"`: the targets of this SRV name, each at its smallest
    /// A (else AAAA) address and the record's port, as a ring's instances
    /// are found (SPEC §3), through `[dns] servers`. Resolved at each
    /// purge, so a proxy that joined since is purged too.
    Srv(String),
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// `listen` (default `127.0.0.1:8080`): the client-facing HTTP address.
    pub listen: SocketAddr,
    /// `admin` (default `127.0.0.1:9090`, or `127.0.0.1:8080` when
    /// `listen` is `127.0.0.1:9090`, and the other way round): `/metrics`,
    /// `/healthz`, `/readyz`, `/ring`. Never the same as `listen` (unless
    /// both use port 0).
    pub admin: SocketAddr,
    /// `max_header_size` (default 32 KiB, at least 1 KiB), in bytes: a
    /// request header section (request line to the blank line) over this
    /// gets `431`; on HTTP/2, the header list (as HPACK counts it).
    pub max_header_size: u64,
    /// `max_headers` (default 100, 1 to 10000): a request with more header
    /// fields gets `431`.
    pub max_headers: usize,
    /// `header_read_timeout` (default 30 s, more than 0): the longest a
    /// client may take to send a request's header section, counted from
    /// the moment the connection waits for it (slowloris); the connection
    /// is then closed (within a quarter more: it is checked four times per
    /// period). On HTTP/1 the wait for the next request of a keep-alive
    /// connection counts too.
    pub header_read_timeout: Duration,
    /// `idle_timeout` (default 60 s, more than 0): a client connection that
    /// starts no request for this long is closed gracefully, requests in
    /// flight finishing (checked as often as `header_read_timeout` is, and
    /// at least once per period: closed within a quarter of
    /// `header_read_timeout` more, or twice this at most). Also the HTTP/2
    /// keep-alive ping interval.
    pub idle_timeout: Duration,
    /// `max_connections` (default 10000, 1 to 1000000): open client
    /// connections. At the limit the listener stops accepting until one
    /// closes; new connections wait in the kernel's backlog.
    pub max_connections: usize,
    /// `workers` (default: one per CPU the process may use, which counts
    /// its CPU affinity and cgroup quota): threads serving requests. One,
    /// given or the only CPU, serves on the main thread (tokio's
    /// current-thread runtime). More: each worker is a thread with its own
    /// current-thread runtime and its own listening socket on `listen`
    /// (`SO_REUSEPORT`: the kernel spreads new connections over them), and
    /// its own keep-alive connections to the instances, as nginx's worker
    /// processes; the main thread runs discovery, health checks and the
    /// admin API. One process per machine with a worker per core is the
    /// recommended layout: the workers share one cache, so a purge of the
    /// process reaches all of it (SPEC §9.6). A reload keeps the count the
    /// process started with.
    pub workers: Option<std::num::NonZeroUsize>,
    /// `drain_timeout` (default 30 s): on SIGTERM or SIGINT, how long
    /// requests in flight get to finish before the process exits anyway.
    pub drain_timeout: Duration,
    /// `send_timeout` (default 60 s): a client that takes nothing of a
    /// response for this long has its connection closed, and the exchange
    /// with the instance dropped (SPEC §9.3): a client that stops reading
    /// holds neither its connection nor an instance's.
    pub send_timeout: Duration,
    /// `error_detail` (default false): the proxy's own error answers name
    /// the instances tried and why each failed. Off, they give the status,
    /// the reason in words and the request id only (SPEC §9.7); the detail
    /// is always in the access log.
    pub error_detail: bool,
    /// `proxy_protocol` (default false): every connection to `listen` must
    /// start with a PROXY protocol header (v1 or v2, SPEC §10), and the
    /// client address it carries stands for the connection's peer in
    /// `X-Forwarded-For` and the access log: behind a TCP load balancer the
    /// peer is the balancer, not the client. A connection without a valid
    /// header is closed unanswered. The admin listener is not affected.
    pub proxy_protocol: bool,
    /// `admin_token`, or the contents of `admin_token_file` read at load
    /// (SPEC §9.7; default none): when set, every admin request but
    /// `GET /healthz` and `GET /readyz` must carry `Authorization: Bearer
    /// <token>`, since the admin API shows the rings and purges the cache.
    pub admin_token: Option<AdminToken>,
    /// `[server.tls]` (SPEC §10; default none): `listen` is an HTTPS
    /// listener with these files. The admin listener stays plain HTTP.
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`: the files, and the rustls settings read from them when
/// the config was loaded, so that a bad file is a config error and never
/// a listener that fails every handshake.
#[derive(Clone)]
pub struct TlsConfig {
    /// `cert`, `key` (required) and `client_ca`: PEM files; relative
    /// names are taken from the working directory, as `--config` is.
    pub files: TlsFiles,
    /// What the listener hands each handshake.
    pub settings: Arc<rustls::ServerConfig>,
}

// === impl TlsConfig ===

impl PartialEq for TlsConfig {
    /// The same files: their contents are read at every load, so two
    /// configs naming the same files are the same setting.
    fn eq(&self, other: &Self) -> bool {
        self.files == other.files
    }
}

impl Eq for TlsConfig {}

impl std::fmt::Debug for TlsConfig {
    /// The files only: the settings hold the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// `load_bound` of a service (SPEC §11): consistent hashing with bounded
/// loads (Mirrokni, Thorup and Zadimoghaddam, 2018) for its reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadBound {
    /// `factor` (more than 1): an instance takes a read while its requests
    /// in flight are under `ceil(factor × (in flight in the service + 1) /
    /// instances)`.
    pub factor: f64,
    /// `scope` (default replicas): where a read may go when its preference
    /// list is full.
    pub scope: LoadScope,
}

/// Where a bounded read may go (`load_bound.scope`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadScope {
    /// `"replicas"`: only the instances of the key's preference list, which
    /// hold its data (stateful shards).
    #[default]
    Replicas,
    /// `"ring"`: on clockwise past the list, to any instance (caches, whose
    /// instances can all answer).
    Ring,
}

/// `upstream_protocol` of a service (SPEC §10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// `"http1"`: HTTP/1.1, a request at a time on each kept-alive
    /// connection (over TLS with `upstream_tls`).
    #[default]
    Http1,
    /// `"h2c"`: HTTP/2 with prior knowledge, without TLS.
    H2c,
    /// `"h2"`: HTTP/2 over TLS, chosen by ALPN; needs `upstream_tls`.
    H2,
}

/// `upstream_tls` of a service: the files, and the rustls settings read
/// from them when the config was loaded.
#[derive(Clone)]
pub struct UpstreamTlsConfig {
    /// `ca` (required), and `cert` with `key` for a client certificate.
    pub files: InstanceTlsFiles,
    /// What each connection to an instance hands its handshake (ALPN
    /// as `upstream_protocol` says).
    pub settings: Arc<rustls::ClientConfig>,
}

// === impl UpstreamTlsConfig ===

impl PartialEq for UpstreamTlsConfig {
    /// The same files, as for [`TlsConfig`].
    fn eq(&self, other: &Self) -> bool {
        self.files == other.files
    }
}

impl std::fmt::Debug for UpstreamTlsConfig {
    /// The files only: the settings hold the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTlsConfig")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `level` (default `info`): a `tracing` filter whose directives are
    /// each a level or `target=level` (`warn`, `shardproxy=debug,info`),
    /// for the process's own log (not the access log); checked, so that
    /// `EnvFilter` never reads a misspelt level as a target. `RUST_LOG`,
    /// when set, wins.
    pub level: String,
    /// `format` (default `text`): `text` for people, `json` (one object
    /// per line) for log pipelines.
    pub format: LogFormat,
    /// `access_log` (default false): one line per request with the fields
    /// of SPEC §9.2, written whatever `level` is.
    pub access_log: bool,
    /// `access_log_file` (default: standard output): where the access log
    /// goes, appended to, and opened again on `SIGUSR1` (log rotation).
    pub access_log_file: Option<std::path::PathBuf>,
}

/// `[log] format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
            access_log: false,
            access_log_file: None,
        }
    }
}

/// `[dns]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// `servers`: which resolvers to ask.
    pub servers: DnsServers,
    /// `refresh` (default 30 s, at least 1 s): the longest a ring goes
    /// without being re-read.
    pub refresh: Duration,
}

/// Which DNS servers to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsServers {
    /// `servers` absent: the system resolver (`/etc/resolv.conf`).
    System,
    /// `servers = [...]`: these, in order; never empty. A server given
    /// without a port has port 53.
    Custom(Vec<SocketAddr>),
}

/// `[services.NAME]`: one sharded (or SRV-balanced) backend service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    /// `NAME`: letters, digits, `-`, `_` and `.`. Used in routes, metrics
    /// labels, `/ring` and `--service`.
    pub name: String,
    /// Where the instances come from: DNS (`srv`) or the file (`instances`).
    pub discovery: Discovery,
    /// `balance` (default ring): how an instance is chosen.
    pub balance: Balance,
    /// `key` (default path): what is hashed onto the ring.
    pub key: KeySource,
    /// `virtual_nodes` (default 64, 1 to 4096): tokens per instance where
    /// tokens are derived. Already applied to static members.
    pub virtual_nodes: NonZeroU32,
    /// `transition_grace` (default 0 s, off): how long the previous ring is
    /// kept to answer GET/HEAD `404`s after a ring change (SPEC §5).
    pub transition_grace: Duration,
    /// `writes` (default primary): where PUT/POST/PATCH/DELETE go.
    pub writes: Writes,
    /// `write_quorum` (only with `writes = "all"`; 1 to 256): the `2xx`
    /// answers needed. `None`: a majority of the key's preference list.
    pub write_quorum: Option<NonZeroU32>,
    /// `max_body` (default 1 MiB), in bytes: the most a `writes = "all"`
    /// body is buffered; larger gets `413`.
    pub max_body: u64,
    /// `read_fallback_404` (default true with `writes = "all"`, else
    /// false): a GET/HEAD answered `404` is tried on the rest of its
    /// preference list, so a replica that missed a write never hides the
    /// object the others hold (SPEC §9.4).
    pub read_fallback_404: bool,
    /// `read_repair` (default false, only with `writes = "all"`): an object
    /// such a fallback found is written back, in the background and
    /// `If-None-Match: *`, to each instance that answered `404`.
    pub read_repair: bool,
    /// `hot_keys_record` (default false): `/keys/hot` shows each hot key's
    /// text besides its hash. Off by default because keys may be personal
    /// data (user ids, session ids, e-mail addresses in paths).
    pub hot_keys_record: bool,
    /// `retry_on` (default `[502, 503, 504]`): statuses that are retried on
    /// the next instance, in file order, each 100 to 599 and given once.
    pub retry_on: Vec<u16>,
    /// `try_timeout` (default 5 s or `deadline` if shorter, more than 0):
    /// the longest one attempt may take, until response headers.
    pub try_timeout: Duration,
    /// `deadline` (default 15 s or `try_timeout` if longer, at least
    /// `try_timeout`): the longest a request may take over all attempts;
    /// past it the answer is `504`.
    pub deadline: Duration,
    /// `body_timeout` (default 60 s, more than 0): the longest an
    /// instance may send no byte of a response body while the client
    /// waits for one; past it the exchange is aborted and counted against
    /// the instance (SPEC §9.3). A client that sends no byte of its
    /// request body for as long, while the proxy waits for one, gets `408`.
    pub body_timeout: Duration,
    /// `retry_budget` (default 0.2, 0 to 1): retries allowed as a share of
    /// requests, so a failing fleet is not hit with a retry storm.
    pub retry_budget: f64,
    /// `retry_min_per_second` (default 10): retries always allowed per
    /// second, whatever the budget.
    pub retry_min_per_second: u32,
    /// `retry_body_limit` (default 64 KiB), in bytes: request bodies up to
    /// this are buffered so they can be replayed on a retry; larger bodies
    /// are streamed and not retried once sent.
    pub retry_body_limit: u64,
    /// `max_concurrency` (default 1024, 1 to 1000000): requests in flight
    /// to this service (until the response head). Over it the answer is an
    /// immediate `503` naming the service and the limit (load shedding,
    /// no queue), counted in `shardproxy_shed_total`.
    pub max_concurrency: usize,
    /// `upstream_max_idle` (default 64, 0 to 100000): idle keep-alive
    /// connections kept open to each instance by each worker (as nginx's
    /// `keepalive`, per worker process); more are closed when they go
    /// idle.
    pub upstream_max_idle: usize,
    /// `upstream_idle_timeout` (default 90 s, more than 0): how long an
    /// idle connection to an instance is kept.
    pub upstream_idle_timeout: Duration,
    /// `load_bound = { factor, scope }` (default absent, off): reads go to
    /// the first instance of their list whose requests in flight are under
    /// the bound (SPEC §11).
    pub load_bound: Option<LoadBound>,
    /// `upstream_protocol` (default http1): what the proxy speaks to the
    /// instances, whatever the clients speak to it.
    pub upstream_protocol: UpstreamProtocol,
    /// `upstream_tls = { ca, cert, key }` (default none): connections to
    /// the instances use TLS, each instance's certificate verified for its
    /// host name against `ca`.
    pub upstream_tls: Option<UpstreamTlsConfig>,
    /// `[services.NAME.cache]`.
    pub cache: CacheConfig,
    /// `health_check = { path, interval, timeout }`: active checks, off
    /// when absent.
    pub health_check: Option<HealthCheckConfig>,
    /// `outlier_detection = { ... }`: passive ejection of failing
    /// instances.
    pub outlier: OutlierConfig,
}

/// Active health checks of a service's instances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// `path` (default `/healthz`): asked with GET; any 2xx is healthy.
    pub path: String,
    /// `interval` (default 5 s or `timeout` if longer): between two checks
    /// of one instance.
    pub interval: Duration,
    /// `timeout` (default 1 s or `interval` if shorter, at most
    /// `interval`): for one check.
    pub timeout: Duration,
}

/// Passive outlier detection: instances that keep failing requests are
/// ejected for a while, so their keys go to replicas at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlierConfig {
    /// `consecutive_failures` (default 5; 0 turns ejection off): connect
    /// errors, timeouts, broken exchanges or retryable statuses in a row.
    pub consecutive_failures: u32,
    /// `base_ejection_time` (default 30 s or `max_ejection_time` if
    /// shorter, more than 0): the first ejection's length; each further
    /// ejection doubles it.
    pub base_ejection_time: Duration,
    /// `max_ejection_time` (default 5 min or `base_ejection_time` if
    /// longer, at least `base_ejection_time`): the cap.
    pub max_ejection_time: Duration,
    /// `probe_interval` (default 2 s, more than 0): how often an ejected
    /// instance is probed, so that one that recovers is restored this
    /// soon rather than when its ejection time is up (SPEC §9.3).
    pub probe_interval: Duration,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: 5,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            probe_interval: Duration::from_secs(2),
        }
    }
}

/// Where a service's instances and tokens come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// `srv = "..."`: SRV records of this name, tokens and settings from
    /// the TXT records of SPEC §3, re-read every `dns.refresh`.
    Dns {
        /// The SRV name, as written (`_frobnicator._http.example.com`).
        srv: String,
        /// `tokens` (default dns): published or derived tokens.
        tokens: TokenSource,
        /// `slaves` and `redundancy`, when either is given (SPEC §9.5):
        /// the ring's settings while DNS publishes no `config.<srv>`
        /// record, which wins when present. So a headless Kubernetes
        /// service (SRV only) can have replicas.
        replication: Option<Replication>,
    },
    /// `instances = [...]`: a fixed ring from the file.
    Static {
        /// The members, in file order, with their tokens: as listed, or
        /// derived from `virtual_nodes` where an instance lists none (or
        /// the service says `tokens = "derived"`). Names are distinct.
        members: Vec<Member>,
        /// `slaves` (default 0, up to 255) and `redundancy` (default none).
        replication: Replication,
    },
}

/// `balance = "ring" | "srv"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Balance {
    /// The consistent-hash ring with its preference lists.
    #[default]
    Ring,
    /// RFC 2782 priority and weight, for services that are not sharded.
    /// Only with `srv`.
    Srv,
}

/// `tokens = "dns" | "derived"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// From `tokens.<port>.<target>` TXT records.
    #[default]
    Dns,
    /// `virtual_nodes` tokens derived from each instance's name, for
    /// instances that publish none (e.g. a Kubernetes headless service).
    Derived,
}

/// `writes = "primary" | "all"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Writes {
    /// Writes go to the primary like any request.
    #[default]
    Primary,
    /// Writes go to every instance of the preference list in parallel.
    /// Only with `balance = "ring"`.
    All,
}

/// `[services.NAME.cache]` (SPEC §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// `enabled` (default false).
    pub enabled: bool,
    /// `max_size` (default 256 MiB or `max_object_size` if larger, at
    /// least 1 B), in bytes: what is stored, headers and bodies, stays
    /// under this.
    pub max_size: u64,
    /// `max_object_size` (default 8 MiB or `max_size` if smaller, at least
    /// 1 B and at most `max_size`), in bytes: larger responses are passed
    /// on, not stored.
    pub max_object_size: u64,
    /// `default_ttl` (default 0 s): freshness of a response that gives none
    /// (no `s-maxage`, `max-age` or `Expires`).
    pub default_ttl: Duration,
    /// `max_ttl` (default 24 h or `default_ttl` if longer, at least
    /// `default_ttl`): the longest any response is kept fresh, whatever it
    /// asks for.
    pub max_ttl: Duration,
    /// `grace` (default 0 s): how long after it went stale an object may
    /// still be served (`x-cache: STALE`) while a fresh copy is fetched or
    /// when the instances fail, as Varnish's grace.
    pub grace: Duration,
    /// `authorized` (default false): whether requests with `Authorization`
    /// may use the cache (then RFC 9111 §3.5 applies).
    pub authorized: bool,
    /// `tag_header` (default `Surrogate-Key`), lower case: the response
    /// header whose space-separated words tag the object, for purges by
    /// tag.
    pub tag_header: HeaderName,
    /// `expose_tags` (default false): whether clients get `tag_header`.
    pub expose_tags: bool,
    /// `targeted` (default `["CDN-Cache-Control"]`), lower case: the
    /// targeted cache-control fields (RFC 9213) this cache obeys, in order
    /// of precedence.
    pub targeted: Vec<HeaderName>,
}

/// One `[[routes]]` table: which requests go to which service. Each can
/// match some request: no earlier route with the same host (or none) has a
/// prefix of its `path_prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    /// `path_prefix` (default `/`, starts with `/`): a plain string prefix
    /// of the request path.
    pub path_prefix: String,
    /// `host`: if given, the request's host must equal it, case-insensitive,
    /// port ignored. Stored in lower case, without a port.
    pub host: Option<String>,
    /// `service`: the name of a service of [`Config::services`].
    pub service: String,
    /// `strip_prefix` (default false): remove `path_prefix` from the path
    /// before forwarding, then put a `/` in front if what is left does not
    /// start with one (`/counters/42` with prefix `/counters/` is `/42`).
    pub strip_prefix: bool,
    /// `max_body` (default none: unlimited), in bytes: a request body over
    /// this gets `413` (at once when its `Content-Length` says so; when a
    /// streamed body passes it, the upstream request is aborted).
    pub max_body: Option<u64>,
}

// === impl Config ===

impl Config {
    /// Reads and validates the config file at `path`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] when the file cannot be read, otherwise as
    /// [`Config::from_toml`], naming `path` as the file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses and validates config text; `file` is only used to name the
    /// file in errors, so tests need no files.
    ///
    /// # Errors
    ///
    /// [`ConfigErrors`], one [`ConfigError::Key`] for each unknown key,
    /// value of the wrong type or out of range, missing key, or pair of
    /// keys that contradict each other; each names the file, line and column (where
    /// the error has one place), the key, the value and what was expected.
    /// Invalid TOML stops reading at once: that error alone is returned.
    pub fn from_toml(text: &str, file: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
        let file = file.as_ref().display().to_string();
        let errors = error::Errors::default();
        let source = error::Source {
            file: &file,
            text,
            errors: &errors,
        };
        match validate::load(&source) {
            Ok(config) => errors.finish(config),
            Err(last) => Err(errors.stop(last)),
        }
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.get(name)
    }

    /// The names of the services, sorted.
    pub fn service_names(&self) -> Vec<&str> {
        self.services.keys().map(String::as_str).collect()
    }

    /// The DNS servers to ask, or `None` for the system resolver.
    pub fn dns_servers(&self) -> Option<&[SocketAddr]> {
        self.dns.servers.as_slice()
    }
}

// === impl DnsServers ===

impl DnsServers {
    /// The servers, or `None` for the system resolver.
    pub fn as_slice(&self) -> Option<&[SocketAddr]> {
        match self {
            DnsServers::System => None,
            DnsServers::Custom(servers) => Some(servers),
        }
    }
}

// === impl ServerConfig ===

impl Default for ServerConfig {
    /// The defaults of SPEC §4 and §5.
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080)),
            admin: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090)),
            max_header_size: 32 << 10,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            workers: None,
            drain_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(60),
            error_detail: false,
            proxy_protocol: false,
            admin_token: None,
            tls: None,
        }
    }
}

// === impl DnsConfig ===

impl Default for DnsConfig {
    /// The system resolver, re-read every 30 s.
    fn default() -> Self {
        DnsConfig {
            servers: DnsServers::System,
            refresh: Duration::from_secs(30),
        }
    }
}

// === impl CacheConfig ===

impl Default for CacheConfig {
    /// Off, with the sizes and times documented on each field.
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            max_size: 256 << 20,
            max_object_size: 8 << 20,
            default_ttl: Duration::ZERO,
            max_ttl: Duration::from_secs(24 * 3600),
            grace: Duration::ZERO,
            authorized: false,
            tag_header: HeaderName::from_static("surrogate-key"),
            expose_tags: false,
            targeted: vec![HeaderName::from_static("cdn-cache-control")],
        }
    }
}
