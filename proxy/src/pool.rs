//! The keep-alive connections of a service to its instances: HTTP/1.1
//! connections made with hyper's connection API, kept idle per instance
//! address, most recently used first.
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
use http::{Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::Body;

/// How a service makes and keeps its connections.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// The longest wait for a TCP connection (the service's `try_timeout`).
    pub connect_timeout: Duration,
    /// Idle connections kept per instance (`upstream_max_idle`).
    pub max_idle: usize,
    /// How long a connection may stay idle (`upstream_idle_timeout`).
    pub idle_timeout: Duration,
}

/// A service's connections, by instance address. Cloning shares them.
#[derive(Clone, Debug)]
pub struct Pool {
    shared: Arc<Addresses>,
}

#[derive(Debug)]
struct Addresses {
    settings: Settings,
    /// Held by the endpoints of the rings in use, so an address's
    /// connections live as long as some ring names it.
    by_addr: Mutex<HashMap<SocketAddr, Weak<Connections>>>,
}

/// The connections to one instance address.
#[derive(Debug)]
pub struct Connections {
    addr: SocketAddr,
    settings: Settings,
    /// Idle connections, the most recently used last.
    idle: Mutex<Vec<Idle>>,
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
        Pool {
            shared: Arc::new(Addresses {
                settings,
                by_addr: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The connections to `addr`, shared with every holder of them.
    pub fn connections(&self, addr: SocketAddr) -> Arc<Connections> {
        let mut by_addr = lock(&self.shared.by_addr);
        if let Some(connections) = by_addr.get(&addr).and_then(Weak::upgrade) {
            return connections;
        }
        // A new address: a ring changed. Forget the addresses no ring holds.
        by_addr.retain(|_, connections| connections.strong_count() > 0);
        let connections = Arc::new(Connections {
            addr,
            settings: self.shared.settings,
            idle: Mutex::new(Vec::new()),
            reaping: AtomicBool::new(false),
            open: Arc::new(AtomicUsize::new(0)),
        });
        by_addr.insert(addr, Arc::downgrade(&connections));
        connections
    }

    /// The connections to `addr` now, if any ring in use names it.
    pub fn usage(&self, addr: SocketAddr) -> Option<Usage> {
        let connections = lock(&self.shared.by_addr).get(&addr)?.upgrade()?;
        Some(connections.usage())
    }
}

// === impl Connections ===

impl Connections {
    /// Sends `request` (origin-form, with a `Host` header) on an idle
    /// connection, or on a new one when none is idle, and waits for the
    /// response head.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<Body>,
    ) -> Result<Response<ResponseBody>, SendError> {
        loop {
            let (mut sender, reused) = match self.checkout() {
                Some(sender) => (sender, true),
                // Boxed: connecting is rare, and its future is large; every
                // request's future is as large as its largest part, and
                // hyper moves it once per request.
                None => (Box::pin(self.connect()).await?, false),
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
                    _ => {
                        let error = error.into_error();
                        return Err(if reused && closed_before_answer(&error) {
                            SendError::Stale(error)
                        } else {
                            SendError::Http(error)
                        });
                    }
                },
            }
        }
    }

    /// The most recently used idle connection that is ready and not
    /// expired; those that are not are closed.
    fn checkout(&self) -> Option<SendRequest<Body>> {
        let mut idle = lock(&self.idle);
        let now = Instant::now();
        while let Some(connection) = idle.pop() {
            if connection.sender.is_ready() && !connection.expired(now, self.settings.idle_timeout)
            {
                return Some(connection.sender);
            }
        }
        None
    }

    /// Sends `request`, which asks for an upgrade (SPEC §10), on a new
    /// connection of its own, and waits for the response head. The
    /// connection never goes to the idle list: after a `101` it carries
    /// another protocol (take it with `hyper::upgrade::on` on the
    /// response); after any other answer it is closed with the body.
    pub async fn send_upgrade(
        &self,
        request: Request<Body>,
    ) -> Result<Response<ResponseBody>, SendError> {
        let io = self.dial().await?;
        let (mut sender, connection) = http1::handshake(io).await.map_err(SendError::Http)?;
        self.drive(connection.with_upgrades());
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

    /// A new connection, its driving task spawned.
    async fn connect(&self) -> Result<SendRequest<Body>, SendError> {
        let io = self.dial().await?;
        let (sender, connection) = http1::handshake(io).await.map_err(SendError::Http)?;
        self.drive(connection);
        Ok(sender)
    }

    /// A new TCP connection to the instance, within the connect timeout.
    async fn dial(&self) -> Result<TokioIo<TcpStream>, SendError> {
        let addr = self.addr;
        let after = self.settings.connect_timeout;
        let stream = match tokio::time::timeout(after, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(SendError::Connect { addr, source }),
            Err(_) => return Err(SendError::ConnectTimeout { addr, after }),
        };
        stream
            .set_nodelay(true)
            .map_err(|source| SendError::Connect { addr, source })?;
        Ok(TokioIo::new(stream))
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
        let idle = lock(&self.idle)
            .iter()
            .filter(|connection| !connection.sender.is_closed())
            .count();
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
        let mut idle = lock(&self.idle);
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
        let mut idle = lock(&connections.idle);
        let now = Instant::now();
        let timeout = connections.settings.idle_timeout;
        idle.retain(|connection| {
            !connection.sender.is_closed() && !connection.expired(now, timeout)
        });
        if idle.is_empty() {
            // Under the lock, so a connection kept after this starts
            // another reaper.
            connections.reaping.store(false, Ordering::Release);
            return;
        }
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
