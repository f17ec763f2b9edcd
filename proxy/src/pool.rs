//! The keep-alive connections of a service to its instances, made with
//! hyper's connection API: HTTP/1.1 connections kept idle per instance,
//! most recently used first; or, with `upstream_protocol = "h2c"` or
//! `"h2"`, one HTTP/2 connection per instance that all requests share. Over
//! TLS with `upstream_tls`, each instance's certificate verified for its
//! host name; a failed handshake is a failed connect, as nothing was sent.
//!
//! Why not hyper-util's pooled `Client`: a proxy knows the address of every
//! attempt before it sends it. So each instance's [`Connections`] is found
//! once per ring (its [`Endpoint`](crate::forward) holds it)
//! rather than by hashing a pool key per request, and a connection goes back
//! to its idle list when the response body that used it ends, rather than
//! from a task spawned per response. Against hyper-util's client, that cut
//! the proxy's user CPU per pass-through request by about a quarter (an A/B
//! in `loadtest/results/request-path-profile.md`).
//!
//! A request that a kept connection took and then lost to the instance
//! closing it is [`SendError::Stale`]: `forward` sends it once more.
//!
//! The rules are those of nginx's `keepalive` and hyper-util's pool: at most
//! `upstream_max_idle` idle connections per instance (the least recently
//! used goes first), each closed after `upstream_idle_timeout` unused, and a
//! request that a pooled connection could not take because the instance had
//! closed it meanwhile (nothing was sent) goes on another connection.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{header, HeaderValue, Request, Response, Uri};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::client::conn::http2;
use hyper::rt::{Read, Write};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::body::Body;
use crate::config::UpstreamProtocol;
use crate::headers::TeTrailers;
use crate::worker::PerWorker;

/// How a service makes and keeps its connections.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The longest wait for a connection, TLS handshake included (the
    /// service's `try_timeout`).
    pub connect_timeout: Duration,
    /// Idle HTTP/1.1 connections kept per instance (`upstream_max_idle`).
    pub max_idle: usize,
    /// How long an HTTP/1.1 connection may stay idle
    /// (`upstream_idle_timeout`).
    pub idle_timeout: Duration,
    /// What the connections speak (`upstream_protocol`).
    pub protocol: UpstreamProtocol,
    /// TLS settings when the connections use TLS (`upstream_tls`), their
    /// ALPN as `protocol` says.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The serving threads (`server.workers`; 0 or 1: one runtime). Each
    /// keeps its own idle connections and HTTP/2 connection per instance,
    /// as nginx's workers each keep their own `keepalive` connections.
    pub workers: usize,
}

/// The TLS connectors of a pool: one offering what the service speaks, and
/// one offering HTTP/1.1 alone, for upgrades (an upgrade is an HTTP/1.1
/// exchange, whatever the service speaks otherwise).
#[derive(Clone)]
struct Connectors {
    main: TlsConnector,
    upgrades: TlsConnector,
}

/// Where a TLS connection goes: the connectors, and the name the
/// instance's certificate must be valid for (or why its host is no such
/// name).
#[derive(Clone)]
struct TlsTarget {
    connectors: Connectors,
    name: Result<ServerName<'static>, String>,
}

/// A service's connections, by instance address. Cloning shares them.
#[derive(Clone, Debug)]
pub struct Pool {
    shared: Arc<Addresses>,
}

#[derive(Debug)]
struct Addresses {
    settings: Settings,
    connectors: Option<Connectors>,
    /// Held by the endpoints of the rings in use, so an instance's
    /// connections live as long as some ring names it. Keyed by address,
    /// and over TLS by host name too: two names of one address are
    /// verified each for its own.
    by_addr: Mutex<HashMap<InstanceKey, Weak<Connections>>>,
}

/// An instance's address, and over TLS its host name.
type InstanceKey = (SocketAddr, Option<Box<str>>);

/// The connections to one instance.
#[derive(Debug)]
pub struct Connections {
    addr: SocketAddr,
    settings: Settings,
    tls: Option<TlsTarget>,
    /// Idle HTTP/1.1 connections of each worker, the most recently used
    /// last: up to `max_idle` each.
    idle: PerWorker<Mutex<Vec<Idle>>>,
    /// The HTTP/2 connection that each worker's requests share, once made.
    shared: PerWorker<Mutex<Option<http2::SendRequest<Body>>>>,
    /// Whether a task is closing the idle connections that expire.
    reaping: AtomicBool,
    /// Connections open: made and whose driving task has not ended yet.
    /// Counted once per connection, not per request, for [`Usage`].
    open: Arc<AtomicUsize>,
}

/// How many connections to one instance address are open, for the
/// metrics (read when `/metrics` is scraped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Kept for the next request, their instance not known to have closed
    /// them.
    pub idle: usize,
    /// Open and not idle: carrying a request or its response body, or
    /// about to be taken back.
    pub active: usize,
}

/// Holds one count of [`Connections::open`] for the life of a
/// connection's driving task, also when the runtime drops the task.
struct OpenConnection(Arc<AtomicUsize>);

#[derive(Debug)]
struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

/// Why a request got no response. (The causes are the errors' sources, as
/// [`error_chain`](crate::error::error_chain) writes them out.)
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection: nothing was sent.
    #[error("connect to {addr}")]
    Connect {
        /// The instance's address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The TLS handshake failed, or did not agree on the protocol: nothing
    /// was sent. A connect failure, for retries and health.
    #[error("TLS handshake with {addr}")]
    Handshake {
        /// The instance's address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// No connection within the connect timeout: nothing was sent.
    #[error("connect to {addr}: no connection within {after:?}")]
    ConnectTimeout {
        /// The instance's address.
        addr: SocketAddr,
        /// The connect timeout.
        after: Duration,
    },
    /// A kept-alive connection ended without an answer: the instance had
    /// closed it, as servers do with connections idle past their own
    /// keep-alive timeout, while the request was on its way. The request
    /// may have been sent; the instance is not at fault.
    #[error("kept-alive connection closed by the instance")]
    Stale(#[source] hyper::Error),
    /// The exchange failed on the connection.
    #[error("exchange failed")]
    Http(#[source] hyper::Error),
}

/// An instance's response body. When it has been read to its end, its
/// connection goes back to the idle list; dropped before, the connection is
/// closed (HTTP/1.1 cannot skip the rest of a response).
#[derive(Debug)]
pub struct ResponseBody {
    body: Incoming,
    /// The connection, until it is released or known to be unusable.
    connection: Option<(SendRequest<Body>, Arc<Connections>)>,
    ended: bool,
}

// === impl Pool ===

impl Pool {
    /// An empty pool that makes and keeps connections as `settings` say.
    pub fn new(settings: Settings) -> Pool {
        let connectors = settings.tls.as_ref().map(|tls| {
            let mut http1_only = rustls::ClientConfig::clone(tls);
            http1_only.alpn_protocols = vec![b"http/1.1".to_vec()];
            Connectors {
                main: TlsConnector::from(Arc::clone(tls)),
                upgrades: TlsConnector::from(Arc::new(http1_only)),
            }
        });
        Pool {
            shared: Arc::new(Addresses {
                settings,
                connectors,
                by_addr: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The connections to the instance `host` at `addr`, shared with every
    /// holder of them. (`host`, without the port, is the name its
    /// certificate must be valid for over TLS; it is not used otherwise.)
    pub fn connections(&self, host: &str, addr: SocketAddr) -> Arc<Connections> {
        let key = (addr, self.shared.connectors.as_ref().map(|_| host.into()));
        let mut by_addr = lock(&self.shared.by_addr);
        if let Some(connections) = by_addr.get(&key).and_then(Weak::upgrade) {
            return connections;
        }
        // A new instance: a ring changed. Forget those no ring holds.
        by_addr.retain(|_, connections| connections.strong_count() > 0);
        let tls = self.shared.connectors.as_ref().map(|connectors| TlsTarget {
            connectors: connectors.clone(),
            name: ServerName::try_from(host.to_owned())
                .map_err(|_| format!("{host:?} is not a name a certificate can be valid for")),
        });
        let connections = Arc::new(Connections {
            addr,
            settings: self.shared.settings.clone(),
            tls,
            idle: PerWorker::new(self.shared.settings.workers, || Mutex::new(Vec::new())),
            shared: PerWorker::new(self.shared.settings.workers, || Mutex::new(None)),
            reaping: AtomicBool::new(false),
            open: Arc::new(AtomicUsize::new(0)),
        });
        by_addr.insert(key, Arc::downgrade(&connections));
        connections
    }

    /// The connections to the instance `host` at `addr` now, if any ring
    /// in use names it.
    pub fn usage(&self, host: &str, addr: SocketAddr) -> Option<Usage> {
        let key = (addr, self.shared.connectors.as_ref().map(|_| host.into()));
        let connections = lock(&self.shared.by_addr).get(&key)?.upgrade()?;
        Some(connections.usage())
    }
}

// === impl Connections ===

impl Connections {
    /// Sends `request` (origin-form, with a `Host` header) and waits for
    /// the response head: over HTTP/1.1 on an idle connection (not expired
    /// at `now`, the caller's clock reading), or on a new one when none is
    /// idle; over HTTP/2 on the shared connection.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<Body>,
        now: Instant,
    ) -> Result<Response<ResponseBody>, SendError> {
        if self.settings.protocol != UpstreamProtocol::Http1 {
            // Boxed, and awaited here rather than through a function that
            // chooses: HTTP/1.1 is the common case, and each level of
            // `async fn` would keep its own copy of the request, which hyper
            // moves with the whole request future.
            return Box::pin(self.send_h2(request)).await;
        }
        loop {
            let (mut sender, reused) = match self.checkout(now) {
                Some(sender) => (sender, true),
                // Boxed: connecting is rare, and its future is large; every
                // request's future is as large as its largest part, and
                // hyper moves it once per request.
                None => (Box::pin(self.connect_http1()).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = ResponseBody {
                        body,
                        connection: Some((sender, Arc::clone(self))),
                        ended: false,
                    };
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut error) => match error.take_message() {
                    // The instance closed the pooled connection before it
                    // took the request: nothing was sent, so another
                    // connection may take it. Each turn empties the idle
                    // list by one, so this ends.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(send_error(error.into_error(), reused)),
                },
            }
        }
    }

    /// [`Connections::send`] over HTTP/2: the request in the form HTTP/2
    /// wants (scheme and authority in the target, `Host` folded into it),
    /// on the shared connection, made first when there is none or the one
    /// there has ended.
    async fn send_h2(
        &self,
        mut request: Request<Body>,
    ) -> Result<Response<ResponseBody>, SendError> {
        self.for_h2(&mut request);
        loop {
            let (mut sender, reused) = match self.shared_h2() {
                Some(sender) => (sender, true),
                None => (self.connect_h2().await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = ResponseBody {
                        body,
                        connection: None,
                        ended: false,
                    };
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut error) => match error.take_message() {
                    // The shared connection ended before it took the
                    // request: nothing was sent. The next turn makes a new
                    // one (this one is closed now, so it is not shared).
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(send_error(error.into_error(), reused)),
                },
            }
        }
    }

    /// Rewrites an origin-form request for HTTP/2 (RFC 9113 §8.3.1): the
    /// scheme and the authority go in the target, the latter from `Host`,
    /// which goes; a client's `te: trailers` is sent on (§8.2.2).
    fn for_h2(&self, request: &mut Request<Body>) {
        let host = request.headers_mut().remove(header::HOST);
        let authority = host
            .and_then(|host| Authority::try_from(host.as_bytes()).ok())
            .or_else(|| Authority::try_from(self.addr.to_string()).ok());
        let mut target = std::mem::take(request.uri_mut()).into_parts();
        target.scheme = Some(if self.tls.is_some() {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        });
        target.authority = authority;
        if target.path_and_query.is_none() {
            target.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        // Cannot fail: scheme, authority and path are all set.
        *request.uri_mut() = Uri::from_parts(target).unwrap_or_default();
        if request.extensions().get::<TeTrailers>().is_some() {
            request
                .headers_mut()
                .insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }

    /// The shared HTTP/2 connection, unless it has ended.
    fn shared_h2(&self) -> Option<http2::SendRequest<Body>> {
        lock(self.shared.current())
            .as_ref()
            .filter(|sender| !sender.is_closed())
            .cloned()
    }

    /// A new HTTP/2 connection, its driving task spawned, shared from now
    /// on. (Requests that find none at once each make one; the last made
    /// is kept, the others end with their requests.)
    async fn connect_h2(&self) -> Result<http2::SendRequest<Body>, SendError> {
        let sender = match self.tls_connector(false) {
            None => self.handshake_h2(self.dial().await?).await?,
            Some((connector, name)) => {
                let tls = self.tls(connector, name).await?;
                if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                    return Err(SendError::Handshake {
                        addr: self.addr,
                        source: io::Error::other(
                            "the instance did not choose h2 in ALPN (upstream_protocol = \"h2\")",
                        ),
                    });
                }
                self.handshake_h2(TokioIo::new(tls)).await?
            }
        };
        *lock(self.shared.current()) = Some(sender.clone());
        Ok(sender)
    }

    async fn handshake_h2<I>(&self, io: I) -> Result<http2::SendRequest<Body>, SendError>
    where
        I: Read + Write + Unpin + Send + 'static,
    {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(SendError::Http)?;
        self.drive(connection);
        Ok(sender)
    }

    /// The most recently used idle connection that is ready and not
    /// expired at `now`; those that are not are closed.
    fn checkout(&self, now: Instant) -> Option<SendRequest<Body>> {
        let mut idle = lock(self.idle.current());
        while let Some(connection) = idle.pop() {
            if connection.sender.is_ready() && !connection.expired(now, self.settings.idle_timeout)
            {
                return Some(connection.sender);
            }
        }
        None
    }

    /// Sends `request`, which asks for an upgrade (SPEC §10), on a new
    /// HTTP/1.1 connection of its own (whatever the service speaks
    /// otherwise), and waits for the response head. The connection never
    /// goes to the idle list: after a `101` it carries another protocol
    /// (take it with `hyper::upgrade::on` on the response); after any other
    /// answer it is closed with the body.
    pub async fn send_upgrade(
        &self,
        request: Request<Body>,
    ) -> Result<Response<ResponseBody>, SendError> {
        let mut sender = match self.tls_connector(true) {
            None => self.handshake_http1(self.dial().await?, true).await?,
            Some((connector, name)) => {
                let tls = self.tls(connector, name).await?;
                self.handshake_http1(TokioIo::new(tls), true).await?
            }
        };
        let response = sender
            .send_request(request)
            .await
            .map_err(SendError::Http)?;
        let (parts, body) = response.into_parts();
        let body = ResponseBody {
            body,
            connection: None,
            ended: false,
        };
        Ok(Response::from_parts(parts, body))
    }

    /// A new HTTP/1.1 connection, its driving task spawned.
    async fn connect_http1(&self) -> Result<SendRequest<Body>, SendError> {
        match self.tls_connector(false) {
            None => self.handshake_http1(self.dial().await?, false).await,
            Some((connector, name)) => {
                let tls = self.tls(connector, name).await?;
                self.handshake_http1(TokioIo::new(tls), false).await
            }
        }
    }

    async fn handshake_http1<I>(
        &self,
        io: I,
        upgrades: bool,
    ) -> Result<SendRequest<Body>, SendError>
    where
        I: Read + Write + Unpin + Send + 'static,
    {
        let (sender, connection) = http1::handshake(io).await.map_err(SendError::Http)?;
        if upgrades {
            self.drive(connection.with_upgrades());
        } else {
            self.drive(connection);
        }
        Ok(sender)
    }

    /// The TLS connector to use and the name to verify, when the
    /// connections use TLS: the one for `upgrades`, or the main one.
    fn tls_connector(
        &self,
        upgrades: bool,
    ) -> Option<(&TlsConnector, &Result<ServerName<'static>, String>)> {
        self.tls.as_ref().map(|tls| {
            let connector = if upgrades {
                &tls.connectors.upgrades
            } else {
                &tls.connectors.main
            };
            (connector, &tls.name)
        })
    }

    /// A new TLS connection to the instance: TCP and handshake together
    /// within the connect timeout.
    async fn tls(
        &self,
        connector: &TlsConnector,
        name: &Result<ServerName<'static>, String>,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, SendError> {
        let addr = self.addr;
        let handshake_error = |source| SendError::Handshake { addr, source };
        let name = name.clone().map_err(|problem| {
            handshake_error(io::Error::new(io::ErrorKind::InvalidInput, problem))
        })?;
        let after = self.settings.connect_timeout;
        let connect = async {
            let stream = self.tcp().await?;
            connector
                .connect(name, stream)
                .await
                .map_err(handshake_error)
        };
        tokio::time::timeout(after, connect)
            .await
            .map_err(|_| SendError::ConnectTimeout { addr, after })?
    }

    /// A new TCP connection to the instance, within the connect timeout,
    /// ready for hyper.
    async fn dial(&self) -> Result<TokioIo<TcpStream>, SendError> {
        let addr = self.addr;
        let after = self.settings.connect_timeout;
        match tokio::time::timeout(after, self.tcp()).await {
            Ok(stream) => stream.map(TokioIo::new),
            Err(_) => Err(SendError::ConnectTimeout { addr, after }),
        }
    }

    /// A new TCP connection to the instance, without delay on small writes.
    async fn tcp(&self) -> Result<TcpStream, SendError> {
        let addr = self.addr;
        let connect_error = |source| SendError::Connect { addr, source };
        let stream = TcpStream::connect(addr).await.map_err(connect_error)?;
        stream.set_nodelay(true).map_err(connect_error)?;
        Ok(stream)
    }

    /// Spawns the task that drives `connection`, counted open while it
    /// runs.
    fn drive<C>(&self, connection: C)
    where
        C: std::future::Future<Output = Result<(), hyper::Error>> + Send + 'static,
    {
        let addr = self.addr;
        let open = OpenConnection::new(&self.open);
        tokio::spawn(async move {
            let _open = open;
            if let Err(error) = connection.await {
                tracing::debug!(%addr, %error, "upstream connection ended");
            }
        });
    }

    /// How many connections are idle and how many are in use. An idle
    /// connection the instance closed, which the reaper has not removed
    /// yet, counts as neither.
    fn usage(&self) -> Usage {
        let idle = self
            .idle
            .iter()
            .map(|idle| {
                lock(idle)
                    .iter()
                    .filter(|connection| !connection.sender.is_closed())
                    .count()
            })
            .sum();
        let open = self.open.load(Ordering::Relaxed);
        Usage {
            idle,
            active: open.saturating_sub(idle),
        }
    }

    /// Takes back a connection whose response was read to its end: idle at
    /// once if it is ready, else once its task has seen the end (a closed
    /// connection is dropped).
    fn release(self: Arc<Self>, mut sender: SendRequest<Body>) {
        if sender.is_ready() {
            self.keep(sender);
        } else if !sender.is_closed() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if sender.ready().await.is_ok() {
                        self.keep(sender);
                    }
                });
            }
        }
    }

    /// Puts a ready connection on the idle list, closing the least recently
    /// used one past `max_idle`.
    fn keep(self: Arc<Self>, sender: SendRequest<Body>) {
        if self.settings.max_idle == 0 {
            return;
        }
        let mut idle = lock(self.idle.current());
        if idle.len() >= self.settings.max_idle {
            idle.remove(0);
        }
        idle.push(Idle {
            sender,
            since: Instant::now(),
        });
        drop(idle);
        if !self.reaping.swap(true, Ordering::AcqRel) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let every = (self.settings.idle_timeout / 2).max(Duration::from_millis(10));
                runtime.spawn(reap(Arc::downgrade(&self), every));
            } else {
                self.reaping.store(false, Ordering::Release);
            }
        }
    }
}

/// Closes the idle connections of `connections` that expired or that their
/// instance closed, `every` (half `idle_timeout`), until none is idle (or
/// nothing holds them any more).
async fn reap(connections: Weak<Connections>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(connections) = connections.upgrade() else {
            return;
        };
        // Every worker's list, locked in one order (no one else holds two).
        let mut lists: Vec<MutexGuard<'_, Vec<Idle>>> = connections.idle.iter().map(lock).collect();
        let now = Instant::now();
        let timeout = connections.settings.idle_timeout;
        for idle in &mut lists {
            idle.retain(|connection| {
                !connection.sender.is_closed() && !connection.expired(now, timeout)
            });
        }
        if lists.iter().all(|idle| idle.is_empty()) {
            // Under the locks, so a connection kept after this starts
            // another reaper.
            connections.reaping.store(false, Ordering::Release);
            return;
        }
    }
}

/// Why an exchange failed: [`SendError::Stale`] when it went on a kept
/// connection that ended before an answer began.
fn send_error(error: hyper::Error, reused: bool) -> SendError {
    if reused && closed_before_answer(&error) {
        SendError::Stale(error)
    } else {
        SendError::Http(error)
    }
}

/// Whether `error` says the connection ended before an answer began: the
/// instance closed it (EOF) or reset it.
fn closed_before_answer(error: &hyper::Error) -> bool {
    if error.is_incomplete_message() {
        return true;
    }
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionAborted
            );
        }
        cause = error.source();
    }
    false
}

/// The lock's data, also after a panic elsewhere: a list of connections
/// cannot be left half-changed by one.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connectors").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TlsTarget {
    /// The name: the connectors hold the client's private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

// === impl OpenConnection ===

impl OpenConnection {
    fn new(open: &Arc<AtomicUsize>) -> OpenConnection {
        open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(open))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

// === impl Idle ===

impl Idle {
    /// Whether it has been idle for `timeout` or more at `now`.
    fn expired(&self, now: Instant, timeout: Duration) -> bool {
        now.saturating_duration_since(self.since) >= timeout
    }
}

// === impl ResponseBody ===

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) => this.ended = true,
            Poll::Ready(Some(Err(_))) => this.connection = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some((sender, connections)) = self.connection.take() {
            if self.ended || self.body.is_end_stream() {
                connections.release(sender);
            }
        }
    }
}
