//! `shardproxy demo` (SPEC §8): the whole system on one machine, in one
//! process.
//!
//! [`start`] brings up, in this order:
//!
//! 1. `N` demo backends: tiny HTTP/1.1 servers on loopback ports that say
//!    which node answered, and that can be made to fail on request
//!    (`POST /_demo/fail`, `/_demo/recover`, `/_demo/down`).
//! 2. An authoritative DNS server ([`crate::dns_server`]) for
//!    `demo.shardproxy.` that publishes the backends as a ring in the
//!    records of SPEC §3: one SRV record per backend (each on its own host
//!    name, so `redundancy=host` holds), evenly spaced tokens, and
//!    `slaves=1 redundancy=host`. With [`Records::SrvOnly`] (or
//!    [`Records::SrvOnlyReady`]) it publishes the SRV and A records only,
//!    as Kubernetes' cluster DNS does for a headless service, and the proxy
//!    derives the tokens and takes the replication from its config (SPEC
//!    §9.5).
//! 3. The proxy itself ([`crate::run::start`]), configured to discover that
//!    ring from that DNS server, and waited for until it has the whole ring.
//!
//! [`run`] does the same, prints [`Demo::guide`] (what runs where, and
//! commands to try), and stops everything when its shutdown future resolves.
//!
//! # Layout
//!
//! - `backend`: the demo backends and their failure switches.
//! - `endpoints`: with [`Records::SrvOnlyReady`], withdraws a down
//!   backend's SRV record until it listens again, as Kubernetes does with
//!   a pod that is not ready.
//! - `zone`: the ring's tokens and DNS records, and their zone-file text.
//! - `guide`: the instructions [`run`] prints.

use std::fmt;
use std::future::Future;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use shardproxy_ring::Token;
use tokio::time::Instant;

use crate::app::App;
use crate::config::{Config, ConfigErrors};
use crate::discovery::Table;
use crate::dns_server::{DnsServer, DnsServerError, Zone};
use crate::run::{self, Running, StartError};

mod backend;
mod endpoints;
mod guide;
mod zone;

use backend::Backend;

/// The service name the demo's proxy config uses, as in `/ring/lookup?service=demo`.
pub const SERVICE: &str = "demo";

/// The fewest backends a demo may have: failover needs a replica.
pub const MIN_BACKENDS: usize = 2;

/// The most backends a demo may have: enough to show a ring, few enough to
/// read in the guide.
pub const MAX_BACKENDS: usize = 64;

/// How long [`start`] waits for the proxy to discover the whole ring.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often [`start`] checks whether the proxy has discovered the ring.
const READY_POLL: Duration = Duration::from_millis(20);

/// The loopback address everything but the proxy and admin listeners binds.
const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// What to start: where the proxy and its admin API listen, and how many
/// backends to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoOptions {
    /// Where the proxy listens for clients (`--listen`); port 0 picks a free
    /// port. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Where the admin API listens (`--admin`); port 0 picks a free port.
    /// Default `127.0.0.1:9090`.
    pub admin: SocketAddr,
    /// How many backends to start ([`MIN_BACKENDS`] to [`MAX_BACKENDS`]).
    /// Default 4.
    pub backends: usize,
    /// Which records the DNS server publishes (`--srv-only`). Default
    /// [`Records::Ring`].
    pub records: Records,
}

/// Which of the SPEC §3 records the demo's DNS server publishes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Records {
    /// The whole ring: SRV, `tokens.` TXT, `config.` TXT and A records.
    #[default]
    Ring,
    /// SRV and A records only, as a Kubernetes headless service has: the
    /// proxy derives each instance's tokens from its name and takes
    /// `slaves` and `redundancy` from its config. A down backend stays
    /// listed, as with `publishNotReadyAddresses: true` (what
    /// `deploy/kubernetes` uses).
    SrvOnly,
    /// [`Records::SrvOnly`], and a down backend's SRV record is withdrawn
    /// until it listens again, as with `publishNotReadyAddresses: false`:
    /// the ring changes twice per restart.
    SrvOnlyReady,
}

impl Records {
    /// Whether DNS publishes the SRV and A records only.
    fn srv_only(self) -> bool {
        self != Records::Ring
    }
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions {
            listen: SocketAddr::from((LOOPBACK, 8080)),
            admin: SocketAddr::from((LOOPBACK, 9090)),
            backends: 4,
            records: Records::Ring,
        }
    }
}

/// Why the demo could not start. Each variant says what failed and, where
/// the user can fix it, how.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// `--backends` is out of range.
    #[error("--backends {backends}: a demo runs {MIN_BACKENDS} to {MAX_BACKENDS} backends (failover needs at least two)")]
    Backends {
        /// The number asked for.
        backends: usize,
    },
    /// `--listen` and `--admin` name the same address.
    #[error("--listen and --admin are both {addr}: pass two different addresses")]
    SameAddress {
        /// The address given for both.
        addr: SocketAddr,
    },
    /// The proxy or the admin API cannot listen where asked.
    #[error("cannot listen on {addr}: {} — pass {flag} to pick another", describe_io(.source))]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The command-line flag that sets it: `--listen` or `--admin`.
        flag: &'static str,
        /// Why the bind failed.
        source: io::Error,
    },
    /// A demo backend could not bind a loopback port.
    #[error("cannot start demo backend {host} on {LOOPBACK}: {source}")]
    Backend {
        /// The backend's host name, e.g. `node1.demo.shardproxy`.
        host: String,
        /// Why.
        source: io::Error,
    },
    /// The embedded DNS server could not start, or refused the demo zone.
    #[error("cannot start the demo DNS server: {0}")]
    Dns(#[from] DnsServerError),
    /// The proxy config the demo builds was refused (a bug, or an address
    /// the config cannot hold).
    #[error("the demo's proxy configuration is invalid: {0}")]
    Config(#[from] ConfigErrors),
    /// The proxy could not start for another reason than its listeners.
    #[error("cannot start the proxy: {0}")]
    Proxy(StartError),
    /// The proxy did not discover the whole ring in time.
    #[error("the proxy did not discover the demo ring ({found} of {expected} backends) within {waited:?}{}", last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    NotReady {
        /// Backends on the proxy's ring when it gave up.
        found: usize,
        /// Backends published.
        expected: usize,
        /// How long it waited.
        waited: Duration,
        /// The last discovery error, if any.
        last_error: Option<String>,
    },
}

/// An I/O error in a few words, for the messages a user acts on.
fn describe_io(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::AddrInUse => "address in use".to_owned(),
        io::ErrorKind::AddrNotAvailable => "no such local address".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => error.to_string(),
    }
}

/// One demo backend as the ring and the guide name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoBackendInfo {
    /// The instance name, `nodeK.demo.shardproxy:PORT`: what the ring, the
    /// admin API and the backend's `x-served-by` header call it.
    pub name: String,
    /// The SRV target without its trailing dot, `nodeK.demo.shardproxy`.
    pub host: String,
    /// Where it listens (`127.0.0.1:PORT`); its failure switches are here
    /// too.
    pub addr: SocketAddr,
    /// Its one published token on the ring; `None` with SRV-only records,
    /// where the proxy derives its tokens.
    pub token: Option<Token>,
}

/// A running demo: DNS server, backends and proxy.
///
/// Dropping it stops the DNS server and the backends at once; the proxy's
/// listeners stop only through [`Demo::shutdown`], which also waits for
/// everything to close.
pub struct Demo {
    /// The DNS server's address (UDP and TCP).
    pub dns: SocketAddr,
    /// Where the proxy listens.
    pub proxy: SocketAddr,
    /// Where the admin API listens.
    pub admin: SocketAddr,
    /// The backends, in ring order (node1 holds the lowest token).
    pub backends: Vec<DemoBackendInfo>,
    dns_server: DnsServer,
    servers: Vec<Backend>,
    /// With [`Records::SrvOnlyReady`], the tasks that withdraw a down
    /// backend's SRV record; empty otherwise.
    endpoints: tokio::task::JoinSet<()>,
    running: Running,
    config: String,
}

impl fmt::Debug for Demo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Demo")
            .field("dns", &self.dns)
            .field("proxy", &self.proxy)
            .field("admin", &self.admin)
            .field("backends", &self.backends)
            .finish_non_exhaustive()
    }
}

// === impl Demo ===

impl Demo {
    /// What [`run`] prints: what was started where, the published records,
    /// and commands to try, failover included.
    pub fn guide(&self) -> String {
        guide::render(self)
    }

    /// The proxy config the demo runs with, as TOML.
    pub fn config_toml(&self) -> &str {
        &self.config
    }

    /// The records the DNS server publishes now.
    pub fn zone(&self) -> Zone {
        self.dns_server.zone().zone()
    }

    /// The running proxy: its state, rings and metrics.
    pub fn proxy_app(&self) -> std::sync::Arc<App> {
        self.running.app()
    }

    /// Stops the proxy (letting requests in flight finish), then the
    /// backends, then the DNS server, and returns when all are closed.
    pub async fn shutdown(self) {
        let Demo {
            dns_server,
            servers,
            mut endpoints,
            running,
            ..
        } = self;
        running.shutdown().await;
        endpoints.shutdown().await;
        for server in servers {
            server.shutdown().await;
        }
        dns_server.shutdown().await;
    }

    /// The preference list of `key` on the proxy's current ring, primary
    /// first, as indexes into [`Demo::backends`].
    fn preference_list(&self, key: &str) -> Vec<usize> {
        let app = self.running.app();
        let Some(service) = app.service(SERVICE) else {
            return Vec::new();
        };
        let Some(snapshot) = service.upstream.ring.load_full() else {
            return Vec::new();
        };
        let Table::Ring(ring) = &snapshot.table else {
            return Vec::new();
        };
        ring.preference_list(Token::of_key(key.as_bytes()))
            .iter()
            .filter_map(|instance| {
                self.backends
                    .iter()
                    .position(|backend| backend.name == instance.name().as_str())
            })
            .collect()
    }

    /// Each backend's share of the key space on the proxy's current ring, in
    /// the order of [`Demo::backends`].
    fn shares(&self) -> Vec<Option<f64>> {
        let snapshot = self
            .running
            .app()
            .service(SERVICE)
            .and_then(|service| service.upstream.ring.load_full());
        let ring = match snapshot.as_deref().map(|snapshot| &snapshot.table) {
            Some(Table::Ring(ring)) => Some(ring),
            _ => None,
        };
        self.backends
            .iter()
            .map(|backend| {
                ring?
                    .instances()
                    .iter()
                    .find(|instance| instance.name().as_str() == backend.name)
                    .map(shardproxy_ring::Instance::share)
            })
            .collect()
    }
}

/// Starts the DNS server, the backends and the proxy, and waits until the
/// proxy has discovered the whole ring. Prints nothing.
///
/// # Errors
///
/// [`DemoError`] naming what could not start; whatever had started is
/// stopped again.
pub async fn start(options: DemoOptions) -> Result<Demo, DemoError> {
    check_options(&options)?;

    let mut servers = Vec::with_capacity(options.backends);
    let tokens: Vec<Option<Token>> = if options.records.srv_only() {
        vec![None; options.backends]
    } else {
        zone::balanced_tokens(options.backends)
            .into_iter()
            .map(Some)
            .collect()
    };
    for (index, token) in tokens.into_iter().enumerate() {
        let host = zone::host(index + 1);
        // On an early return, the backends started so far stop when dropped.
        let server = Backend::start(SocketAddr::from((LOOPBACK, 0)), &host, token)
            .await
            .map_err(|source| DemoError::Backend { host, source })?;
        servers.push(server);
    }
    let backends: Vec<DemoBackendInfo> = servers.iter().map(|s| s.info().clone()).collect();

    let zone = Zone::new(zone::ORIGIN)
        .with_ttl(zone::TTL)
        .with_records(zone::records(&backends, options.records));
    let dns_server = DnsServer::start(SocketAddr::from((LOOPBACK, 0)), zone).await?;
    let dns = dns_server.addr();
    let endpoints = match options.records {
        Records::SrvOnlyReady => endpoints::follow(&servers, dns_server.zone()),
        Records::Ring | Records::SrvOnly => tokio::task::JoinSet::new(),
    };

    let config = proxy_config(&options, dns);
    let parsed = Config::from_toml(&config, "demo")?;
    let running = run::start(parsed)
        .await
        .map_err(|error| start_error(&options, error))?;
    if let Err(error) = wait_until_ready(&running, backends.len()).await {
        running.shutdown().await;
        return Err(error);
    }
    Ok(Demo {
        dns,
        proxy: running.listen,
        admin: running.admin,
        backends,
        dns_server,
        servers,
        endpoints,
        running,
        config,
    })
}

/// Starts the demo, prints [`Demo::guide`] to standard output, waits for
/// `shutdown` (the CLI passes Ctrl-C), then stops everything. If `shutdown`
/// resolves while the demo is still starting, it returns at once, leaving
/// what had started to stop when the runtime does.
///
/// # Errors
///
/// [`DemoError`] when the demo cannot start.
pub async fn run(
    options: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DemoError> {
    let mut shutdown = std::pin::pin!(shutdown);
    // Listening for the shutdown signal from the start means a Ctrl-C while
    // the proxy waits for its ring is not lost.
    let demo = tokio::select! {
        started = start(options) => started?,
        () = &mut shutdown => {
            say("stopped before the demo was up.");
            return Ok(());
        }
    };
    say(&demo.guide());
    shutdown.await;
    say("\nstopping the demo...");
    demo.shutdown().await;
    say("stopped.");
    Ok(())
}

/// Prints to standard output. A closed or broken stdout is no reason to
/// stop serving, so write errors are ignored.
fn say(text: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Refuses options that cannot work, before anything starts: a backend
/// count out of range, one address for both listeners, or a listen address
/// that is taken.
fn check_options(options: &DemoOptions) -> Result<(), DemoError> {
    if !(MIN_BACKENDS..=MAX_BACKENDS).contains(&options.backends) {
        return Err(DemoError::Backends {
            backends: options.backends,
        });
    }
    if options.listen == options.admin && options.listen.port() != 0 {
        return Err(DemoError::SameAddress {
            addr: options.listen,
        });
    }
    // The proxy binds with SO_REUSEPORT, so a second demo (or proxy) on the
    // same port would share it silently instead of failing; a plain bind
    // first makes a taken port an error that names the flag to change.
    for (addr, flag) in [(options.listen, "--listen"), (options.admin, "--admin")] {
        if addr.port() != 0 {
            std::net::TcpListener::bind(addr).map_err(|source| DemoError::Listen {
                addr,
                flag,
                source,
            })?;
        }
    }
    Ok(())
}

/// Names the flag to change when the proxy cannot bind one of its
/// listeners.
fn start_error(options: &DemoOptions, error: StartError) -> DemoError {
    match error {
        StartError::Server(server) => DemoError::Listen {
            addr: server.addr,
            flag: if server.addr == options.admin {
                "--admin"
            } else {
                "--listen"
            },
            source: server.source,
        },
        other => DemoError::Proxy(other),
    }
}

/// The proxy's config: one DNS-discovered service, `demo`, keyed on the
/// path, behind a catch-all route. With SRV-only records the service
/// derives its tokens and sets the replication DNS does not publish.
fn proxy_config(options: &DemoOptions, dns: SocketAddr) -> String {
    let service_name = zone::SERVICE_NAME.trim_end_matches('.');
    let srv_only = match options.records {
        Records::Ring => String::new(),
        Records::SrvOnly | Records::SrvOnlyReady => format!(
            r#"tokens = "derived"
virtual_nodes = {virtual_nodes}
slaves = 1
redundancy = "host"
"#,
            virtual_nodes = zone::VIRTUAL_NODES
        ),
    };
    format!(
        r#"[server]
listen = "{listen}"
admin = "{admin}"

[dns]
servers = ["{dns}"]
refresh = "{refresh}s"

[services.{SERVICE}]
srv = "{service_name}"
key = "path"
{srv_only}
[[routes]]
path_prefix = "/"
service = "{SERVICE}"
"#,
        listen = options.listen,
        admin = options.admin,
        refresh = zone::TTL,
    )
}

/// Waits until the proxy's ring holds every backend.
async fn wait_until_ready(running: &Running, expected: usize) -> Result<(), DemoError> {
    let started = Instant::now();
    loop {
        let found = ring_size(running);
        if running.app().discovery.ready() && found == expected {
            return Ok(());
        }
        if started.elapsed() >= READY_TIMEOUT {
            let last_error = running
                .app()
                .discovery
                .service(SERVICE)
                .and_then(|service| service.status().last_error)
                .map(|(_, error)| error.to_string());
            return Err(DemoError::NotReady {
                found,
                expected,
                waited: READY_TIMEOUT,
                last_error,
            });
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// How many instances the proxy's ring of the demo service holds.
fn ring_size(running: &Running) -> usize {
    let app = running.app();
    let Some(service) = app.discovery.service(SERVICE) else {
        return 0;
    };
    match service.load().as_deref().map(|state| &state.current.table) {
        Some(Table::Ring(ring)) => ring.instances().len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
