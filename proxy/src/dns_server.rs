//! An in-process authoritative DNS server, for the integration tests and
//! `shardproxy demo`: it publishes a ring's records (SPEC §3) on a loopback
//! port, over UDP and TCP, and lets the caller change them while clients
//! query it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), shardproxy::dns_server::DnsServerError> {
//! use std::net::Ipv4Addr;
//! use shardproxy::dns_server::{DnsServer, Mode, Zone, ZoneRecord};
//!
//! let zone = Zone::new("example.com.").with_ttl(1).with_records([
//!     ZoneRecord::srv("_frob._http.example.com.", 10, 50, 8081, "frob1.example.com."),
//!     ZoneRecord::txt("tokens.8081.frob1.example.com.", &["40", "c0"]),
//!     ZoneRecord::a("frob1.example.com.", Ipv4Addr::LOCALHOST),
//! ]);
//! let server = DnsServer::start("127.0.0.1:0".parse().unwrap(), zone).await?;
//! println!("DNS on {}", server.addr());
//! server.zone().add_record(ZoneRecord::a("frob2.example.com.", Ipv4Addr::LOCALHOST))?;
//! server.set_mode(Mode::ServFail); // every query now fails
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The server is authoritative for one zone: it answers names in it with
//! the AA bit, NXDOMAIN for names that do not exist, NODATA (NOERROR, no
//! answer) for names that exist without records of the type asked (empty
//! non-terminals exist too), both with the zone's SOA for negative caching,
//! and REFUSED for names outside it. It does not recurse.
//!
//! # Layout
//!
//! - `zone`: [`Zone`] and [`ZoneRecord`], the plain-data description, and
//!   their compiled form.
//! - `handle`: [`ZoneHandle`], the shared, changeable state.
//! - `handler`: the hickory-server request handler.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

mod handle;
mod handler;
mod zone;

pub use handle::ZoneHandle;
pub use zone::{RecordData, Zone, ZoneRecord, DEFAULT_TTL};

/// How many times [`DnsServer::start`] looks for a port free for both UDP
/// and TCP when asked for port 0.
const BIND_ATTEMPTS: u32 = 10;

/// How long a TCP connection may stay idle before the server closes it.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many responses may wait to be written on one TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;

/// How the server answers queries: normally, or failing on purpose so that a
/// test can check what a client does when DNS fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Answer from the zone.
    #[default]
    Normal,
    /// Answer every query with SERVFAIL.
    ServFail,
    /// Never answer, like a dead server: the client times out.
    Drop,
}

/// Why the server could not start, or a record was refused.
#[derive(Debug, thiserror::Error)]
pub enum DnsServerError {
    /// A socket could not be bound.
    #[error("cannot bind the DNS server's {protocol} socket on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// `"UDP"` or `"TCP"`.
        protocol: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Port 0 was asked for, and every port the system gave for UDP was
    /// taken for TCP.
    #[error("no port on {ip} was free for both UDP and TCP after {attempts} attempts")]
    NoCommonPort {
        /// The address asked for.
        ip: IpAddr,
        /// How many ports were tried.
        attempts: u32,
    },
    /// A name does not end with `.`.
    #[error("DNS name {name:?} must be absolute (end with '.')")]
    NotAbsolute {
        /// The name as given.
        name: String,
    },
    /// A name is not a valid DNS name.
    #[error("invalid DNS name {name:?}: {source}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// The cause.
        #[source]
        source: hickory_proto::ProtoError,
    },
    /// A record's owner name is not in the zone.
    #[error("record name {name} is outside the zone {origin}")]
    OutOfZone {
        /// The owner name.
        name: String,
        /// The zone's origin.
        origin: String,
    },
    /// A TXT record cannot be encoded.
    #[error("invalid TXT record at {name}: {reason}")]
    InvalidTxt {
        /// The owner name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
}

// === impl DnsServer ===

/// A running authoritative DNS server, serving UDP and TCP on one address.
///
/// Dropping it stops it (at once, abandoning queries in flight);
/// [`shutdown`](Self::shutdown) stops it and waits until its sockets are
/// closed.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    zone: ZoneHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP and TCP on `bind` and serves `zone` from a spawned task.
    ///
    /// With port 0, the port is chosen for UDP first and TCP is bound to the
    /// same port, trying again with another port if TCP's is taken.
    ///
    /// Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// If `zone` holds an invalid record, or the sockets cannot be bound.
    pub async fn start(bind: SocketAddr, zone: Zone) -> Result<Self, DnsServerError> {
        let zone = ZoneHandle::new(zone)?;
        let (udp, tcp) = bind_both(bind).await?;
        let addr = udp.local_addr().map_err(|source| DnsServerError::Bind {
            addr: bind,
            protocol: "UDP",
            source,
        })?;

        let mut server = Server::new(handler::Handler { zone: zone.clone() });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);

        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tokio::select! {
                result = server.block_until_done() => {
                    if let Err(error) = result {
                        warn!(%addr, %error, "DNS server failed");
                    }
                    return;
                }
                // Sent by `shutdown`, or the sender was dropped.
                _ = stopped => {}
            }
            if let Err(error) = server.shutdown_gracefully().await {
                warn!(%addr, %error, "DNS server shut down with an error");
            }
            debug!(%addr, "DNS server stopped");
        });
        debug!(%addr, "DNS server listening on UDP and TCP");

        Ok(Self {
            addr,
            zone,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address the server listens on (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The handle to change the zone and the failure mode while the server
    /// runs; clone it to hand it to another task.
    pub fn zone(&self) -> &ZoneHandle {
        &self.zone
    }

    /// Replaces all the records of the zone; see [`ZoneHandle::set_records`].
    ///
    /// # Errors
    ///
    /// If a record is invalid; the zone is then left unchanged.
    pub fn set_records(
        &self,
        records: impl IntoIterator<Item = ZoneRecord>,
    ) -> Result<(), DnsServerError> {
        self.zone.set_records(records)
    }

    /// Sets how every query is answered; see [`ZoneHandle::set_mode`].
    pub fn set_mode(&self, mode: Mode) {
        self.zone.set_mode(mode);
    }

    /// Stops the server and waits until its sockets are closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            // An error means the task has already ended.
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                warn!(addr = %self.addr, %error, "DNS server task failed");
            }
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // Aborting the task drops the server, which aborts its socket tasks.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds a UDP socket and a TCP listener on the same address.
async fn bind_both(bind: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsServerError> {
    let udp_error = |source| DnsServerError::Bind {
        addr: bind,
        protocol: "UDP",
        source,
    };
    let tcp_error = |addr, source| DnsServerError::Bind {
        addr,
        protocol: "TCP",
        source,
    };

    if bind.port() != 0 {
        let udp = UdpSocket::bind(bind).await.map_err(udp_error)?;
        let tcp = TcpListener::bind(bind)
            .await
            .map_err(|source| tcp_error(bind, source))?;
        return Ok((udp, tcp));
    }
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind(bind).await.map_err(udp_error)?;
        let addr = udp.local_addr().map_err(udp_error)?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => {
                debug!(%addr, "TCP port taken, trying another");
            }
            Err(source) => return Err(tcp_error(addr, source)),
        }
    }
    Err(DnsServerError::NoCommonPort {
        ip: bind.ip(),
        attempts: BIND_ATTEMPTS,
    })
}

#[cfg(test)]
mod tests;
