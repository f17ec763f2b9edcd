//! Listeners: the client-facing one and the admin one, each an accept loop
//! that serves HTTP/1.1 and HTTP/2 (h2c with prior knowledge) on the same
//! port, with keep-alive, and shuts down gracefully.
//!
//! The client listener sets `SO_REUSEPORT`, so several shardproxy processes
//! can share one port and the kernel spreads connections over them: the
//! share-nothing way to use every core (see `deploy/`).
//!
//! The connection limits of `[server]` apply here: header size and count
//! (`431`), the header read timeout, the idle timeout, `max_connections`,
//! and HTTP/2's stream and reset limits.
//!
//! With `server.proxy_protocol`, each client connection first sends a
//! PROXY protocol header (SPEC §10), and the client address it carries is
//! the one handed to the handler: the handlers never see the balancer's.
//!
//! With `[server.tls]`, the client listener is HTTPS (SPEC §10): after the
//! PROXY protocol header, if any, the TLS handshake, within
//! `server.header_read_timeout`, with the settings current when the
//! connection came ([`TlsSettings`]: swapped on reload, so new connections
//! get new certificates while open ones keep theirs); then HTTP/1.1 or
//! HTTP/2 as on a plain connection (ALPN `h2` clients send the HTTP/2
//! preface). A failed handshake is logged at debug and the connection
//! closed. The admin listener is always plain HTTP.
//!
//! # Layout
//!
//! - `proxy_protocol`: the PROXY protocol header in front of the HTTP.
//! - `protocol`: HTTP/1.1 or HTTP/2, from a connection's first bytes.
//! - `connection`: the connection limit, and closing idle connections and
//!   all of them on shutdown.
//! - `park`: idle HTTP/1 connections giving their buffers back.
//! - `lot`: idle plain connections waiting with no task of their own.
//! - `deadline`: hyper's header read timeout, looked at by each
//!   connection's checks instead of a timer per request.
//! - `send_timeout`: closing the connection of a client that stops reading.
//! - `h2_send_timeout`: resetting the HTTP/2 stream whose client stops
//!   taking it (by flow control, its socket never full).
//! - `resets`: closing the connection of a client that resets requests
//!   faster than a client that means them.
//! - `calm`: saying so in the `GOAWAY` (`ENHANCE_YOUR_CALM`).
//! - `frames`: where a stream of HTTP/2 frames is, for the wrappers that
//!   look at them.
//! - `interim`: the instances' `1xx` written into the connection (SPEC
//!   §13; see [`crate::interim`]).
//! - `tls_reads`: a TLS connection's reads that find nothing, kept as cheap
//!   as a plain socket's.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::ServerConfig;
use crate::headers::ClientAddr;
use crate::interim::{Outbox, Protocol, ToClient};

mod calm;
mod connection;
mod deadline;
mod frames;
mod h2_send_timeout;
mod interim;
mod lot;
mod park;
mod protocol;
mod proxy_protocol;
mod resets;
mod send_timeout;
mod tls_reads;
mod woken;
mod workers;

use calm::Calm;
use connection::{Activity, Answer, Checks, Connections, Doing, Lookout};
use deadline::Deadlines;
use h2_send_timeout::{Sent, StreamExecutor};
use interim::Interim;
use lot::{Lot, ToLot, Woken};
use protocol::{Rewind, Sniffed};
use send_timeout::SendTimeout;
use tls_reads::TlsReads;
pub use workers::{bind_client, ClientListener};

/// The TLS settings of the client listener, swapped whole on reload: each
/// handshake takes the settings current when it starts.
pub type TlsSettings = Arc<ArcSwap<rustls::ServerConfig>>;

/// What answers a listener's requests: called with each request, the
/// client's address, and the way for its instance's `1xx` to the client.
pub trait Respond<Fut>:
    Fn(Request<Incoming>, ClientAddr, ToClient) -> Fut + Clone + Send + Sync + 'static
{
}

impl<F, Fut> Respond<Fut> for F where
    F: Fn(Request<Incoming>, ClientAddr, ToClient) -> Fut + Clone + Send + Sync + 'static
{
}

/// The body of a listener's responses, which hyper may send from any of
/// its threads.
pub trait ResponseBody:
    http_body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>> + Send + 'static
{
}

impl<B> ResponseBody for B where
    B: http_body::Body<Data: Send, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static
{
}

/// Pending connections the kernel queues for each listener.
const BACKLOG: u32 = 4096;

/// hyper's HTTP/1 header count without `max_headers` (kept on the stack).
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// HTTP/2 streams a client may have open at once on one connection.
const MAX_CONCURRENT_STREAMS: u32 = 256;

/// HTTP/2 streams a client may open and reset before the proxy has
/// accepted them (CVE-2023-44487, "rapid reset"); past this the connection
/// is closed with `GOAWAY` (`ENHANCE_YOUR_CALM`).
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// HTTP/2 streams the proxy may reset because of a client's protocol
/// errors before it closes the connection.
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 256;

/// An HTTP/2 keep-alive ping not answered within this closes the
/// connection: the client is gone.
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// A request not forwarded because its connection gave up on too many
/// before their answer.
#[derive(Debug, thiserror::Error)]
#[error("not forwarded: the client reset too many requests on this connection")]
struct Refused;

/// A listener could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct ServerError {
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// Binds `addr` with `SO_REUSEADDR` and `SO_REUSEPORT`. Must run inside a
/// tokio runtime.
///
/// # Errors
///
/// [`ServerError`] when the socket cannot be made or bound.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    let error = |source| ServerError { addr, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(error)?;
    socket.set_reuseaddr(true).map_err(error)?;
    socket.set_reuseport(true).map_err(error)?;
    socket.set_nodelay(true).map_err(error)?;
    socket.bind(addr).map_err(error)?;
    socket.listen(BACKLOG).map_err(error)
}

/// The address a listener is bound to (its port when bound to port 0).
///
/// # Errors
///
/// [`ServerError`] when the OS cannot say.
pub fn local_addr(listener: &TcpListener) -> Result<SocketAddr, ServerError> {
    listener.local_addr().map_err(|source| ServerError {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

/// The running accept loops.
pub struct Handle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// One per worker thread: each thread runs until its sender is dropped
    /// with this handle, after the loops and what their connections
    /// started (upgraded tunnels) have ended.
    workers: Vec<oneshot::Sender<()>>,
}

impl Handle {
    /// Stops accepting, lets open connections finish (up to a drain
    /// timeout), and waits for the loops to end. Worker threads stay until
    /// the handle is dropped.
    pub async fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

/// The HTTP/1.1 and HTTP/2 connection builders, with the limits of the
/// config.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<StreamExecutor>,
}

impl Builders {
    fn new(server: &ServerConfig) -> Builders {
        let max_header_size = usize::try_from(server.max_header_size).unwrap_or(usize::MAX);
        let mut http1 = http1::Builder::new();
        http1
            .timer(Deadlines)
            .header_read_timeout(server.header_read_timeout)
            // Over it: 431, then the connection is closed.
            .max_header_size(max_header_size)
            .keep_alive(true);
        // hyper keeps up to 100 header slots on the stack; any other count
        // costs a heap allocation per request, so it is only set when asked.
        if server.max_headers != HYPER_DEFAULT_MAX_HEADERS {
            http1.max_headers(server.max_headers);
        }
        let mut http2 = http2::Builder::new(StreamExecutor {
            limit: server.send_timeout,
        });
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(max_header_size).unwrap_or(u32::MAX))
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
            .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS)
            .keep_alive_interval(server.idle_timeout)
            .keep_alive_timeout(HTTP2_PING_TIMEOUT);
        Builders { http1, http2 }
    }
}

/// Starts the client and admin accept loops: each listener with the
/// handler that answers its requests (given the request, the client's
/// address, and the way for its instance's `1xx` to the client). The
/// server knows sockets, protocols, limits and drain; what a request
/// means is the handlers'. The connection settings (timeouts,
/// limits) are those of `server`; with `tls`, the client listener is
/// HTTPS.
pub fn spawn<P, PFut, PBody, A, AFut, ABody>(
    server: &ServerConfig,
    tls: Option<TlsSettings>,
    (listener, proxy): (ClientListener, P),
    (admin_listener, admin): (TcpListener, A),
) -> Result<Handle, ServerError>
where
    P: Respond<PFut>,
    PFut: Future<Output = Response<PBody>> + Send + 'static,
    PBody: ResponseBody,
    A: Respond<AFut>,
    AFut: Future<Output = Response<ABody>> + Send + 'static,
    ABody: ResponseBody,
{
    let (stop, stopped) = watch::channel(false);
    let listening = Listening {
        builders: Arc::new(Builders::new(server)),
        proxy_protocol: server.proxy_protocol.then_some(server.header_read_timeout),
        tls: tls.map(|settings| {
            Arc::new(Tls {
                settings,
                within: server.header_read_timeout,
            })
        }),
        first_bytes: server.header_read_timeout.min(server.idle_timeout),
        checks: Checks::new(server.idle_timeout, server.header_read_timeout),
        drain: server.drain_timeout,
        send: server.send_timeout,
        stopped,
        lot: None,
    };
    // The admin API is reached directly, never through the balancer.
    let admin = tokio::spawn(accept_loop(
        admin_listener,
        Connections::new(server.max_connections),
        Listening {
            proxy_protocol: None,
            tls: None,
            ..listening.clone()
        },
        admin,
    ));
    let mut handle = Handle {
        stop,
        tasks: vec![admin],
        workers: Vec::new(),
    };
    // `max_connections` counts the connections of every worker.
    let connections = Connections::new(server.max_connections);
    match listener {
        ClientListener::One(listener) => handle.tasks.push(tokio::spawn(accept_loop(
            listener,
            connections,
            listening,
            proxy,
        ))),
        ClientListener::PerWorker(sockets) => {
            for (index, socket) in sockets.into_iter().enumerate() {
                let (connections, listening, proxy) =
                    (connections.clone(), listening.clone(), proxy.clone());
                let (task, release) = workers::start(index, socket, move |listener| {
                    accept_loop(listener, connections, listening, proxy)
                })?;
                handle.tasks.push(task);
                handle.workers.push(release);
            }
        }
    }
    Ok(handle)
}

/// What every connection of a listener shares.
#[derive(Clone)]
struct Listening {
    /// Shared: each connection's task keeps them as long as it is open.
    builders: Arc<Builders>,
    /// With `server.proxy_protocol`, how long a new connection may take to
    /// send its PROXY protocol header (`server.header_read_timeout`);
    /// `None`: no header, the peer is the client.
    proxy_protocol: Option<Duration>,
    /// With `[server.tls]`, the handshake every connection goes through.
    tls: Option<Arc<Tls>>,
    /// How long a new connection may take to send its first bytes: it is
    /// idle, and its header is late.
    first_bytes: Duration,
    /// When each connection looks at itself (`server.idle_timeout`,
    /// `server.header_read_timeout`).
    checks: Checks,
    /// `server.drain_timeout`.
    drain: Duration,
    /// `server.send_timeout`.
    send: Duration,
    /// Turns true when the proxy stops.
    stopped: watch::Receiver<bool>,
    /// Where the accept loop's idle plain connections wait; `None` for a
    /// TLS listener, until the accept loop has opened it, and when it
    /// could not.
    lot: Option<Arc<Lot>>,
}

/// The TLS handshake of a listener's connections.
struct Tls {
    settings: TlsSettings,
    /// How long a handshake may take (`server.header_read_timeout`): the
    /// TLS records come before the header and are as easy to trickle.
    within: Duration,
}

/// Serves the requests of one connection, a TCP or TLS (`over_tls`)
/// stream, with `respond`, as HTTP/1.1 or HTTP/2 by its first bytes, until
/// it closes, idles out or the proxy stops (`stopped`); an idle HTTP/1
/// connection parked `away` if it takes it. Expands to a block that
/// awaits, inside the caller's async block, and `return`s from it when the
/// proxy stops before the connection's first bytes.
///
/// A macro, not an async fn, because an async fn's future keeps its
/// arguments beside its locals: called from the plain connection's task it
/// made that task about 300 bytes larger (measured with `size_of_val`:
/// 4320 bytes before TLS, 4616 with an async fn, 4352 with this macro),
/// for every connection.
macro_rules! serve {
    (
        $stream:expr, $over_tls:expr, $peer:ident, $respond:ident, $activity:ident,
        $listening:ident, $away:expr
    ) => {{
        let client = ClientAddr::new($peer, $over_tls);
        let sniffed = tokio::select! {
            sniffed = protocol::sniff($stream, $listening.first_bytes) => sniffed,
            _ = $listening.stopped.wait_for(|stop| *stop) => return,
        };
        let served = match sniffed {
            Ok(Sniffed::Http1(io)) => {
                serve_http1!(io, client, $respond, $activity, $listening, $away)
            }
            Ok(Sniffed::Http2(io)) => {
                let outbox = Outbox::new(Protocol::Http2);
                // Innermost: `Calm` follows hyper's frames only.
                let io = io.map(|io| Interim::new(io, Arc::clone(&outbox)));
                let io = SendTimeout::new(Calm::new(io, $activity.clone()), $listening.send);
                let service = connection_service($respond, client, outbox, &$activity, Sent::new);
                let mut lookout = Lookout::new($activity, $listening.checks, $listening.stopped);
                // Boxed: hyper's HTTP/2 connection state (over a kilobyte)
                // would otherwise be in every connection's task, HTTP/1
                // ones included, parked or not.
                let http2 = &$listening.builders.http2;
                Box::pin(async move {
                    let connection = pin!(http2.serve_connection(io, service));
                    connection::serve(connection, &mut lookout, Doing::Serving)
                        .await
                        .into_result()
                })
                .await
            }
            Err(error) => {
                tracing::debug!(peer = %$peer, %error, "connection closed before a request");
                Ok(())
            }
        };
        log_ended($peer, served);
    }};
}

/// Serves the HTTP/1 requests of connection `io` (a [`Rewind`]) from
/// `client`, as [`serve!`] does, parking it `away` when idle if it takes
/// it. Expands to a block that awaits, and gives the connection's result.
macro_rules! serve_http1 {
    (
        $io:expr, $client:ident, $respond:ident, $activity:ident, $listening:ident,
        $away:expr
    ) => {{
        let mut away = $away;
        let outbox = Outbox::new(Protocol::Http1);
        let io = $io.map(|io| Interim::new(io, Arc::clone(&outbox)));
        let io = SendTimeout::new(io, $listening.send);
        let service = connection_service($respond, $client, outbox, &$activity, |body| body);
        let mut lookout = Lookout::new($activity, $listening.checks, $listening.stopped);
        let mut idle = park::Idle::new(io, service, &lookout);
        idle.serve(&$listening.builders.http1, &mut lookout, &mut away)
            .await
    }};
}

/// Logs how the connection of `peer` ended, if with an error.
fn log_ended(peer: SocketAddr, served: hyper::Result<()>) {
    if let Err(error) = served {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// The service of one connection: `respond` to each request, its
/// response body made by `body`, with the connection's `activity` kept and
/// its `outbox` for the `1xx` of each request.
fn connection_service<F, Fut, B, W>(
    respond: F,
    client: ClientAddr,
    outbox: Arc<Outbox>,
    activity: &Activity,
    body: fn(B) -> W,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<W>,
    Error = Refused,
    Future = Answer<Fut, B, W>,
> + Clone
where
    F: Respond<Fut>,
    Fut: Future<Output = Response<B>> + Send + 'static,
    W: http_body::Body,
{
    let activity = activity.clone();
    service_fn(move |request: Request<Incoming>| {
        activity.request();
        let bodyless = http_body::Body::is_end_stream(request.body());
        // A client that gave up on too many requests gets nothing more
        // forwarded: the stream is reset, the connection closing. (The
        // handler's future is made either way, and only polled if not
        // refused.)
        let refused = activity.refusing();
        let interim = outbox.for_request(request.version());
        Answer::new(
            respond(request, client.clone(), interim),
            activity.watch(bodyless),
            refused,
            body,
        )
    })
}

/// The client a connection from `peer` carries, by its PROXY protocol
/// `header`; `None` (logged with the reason) when the header is not valid,
/// and the connection is to be closed without an answer: an HTTP error
/// would be read by the balancer, or by a client that should not reach
/// this port.
fn client_of(
    header: Result<proxy_protocol::Source, proxy_protocol::HeaderError>,
    peer: SocketAddr,
) -> Option<SocketAddr> {
    match header {
        Ok(proxy_protocol::Source::Client(client)) => Some(client),
        Ok(proxy_protocol::Source::Unknown) => Some(peer),
        Err(error) if error.is_malformed() => {
            tracing::warn!(%peer, %error, "connection closed: no valid PROXY protocol header");
            None
        }
        Err(error) => {
            tracing::debug!(%peer, %error, "connection closed before a PROXY protocol header");
            None
        }
    }
}

/// Accepts connections until told to stop, at most `connections` open at
/// once, serving each on its own task with `respond`; then lets them finish
/// (up to the drain timeout).
async fn accept_loop<F, Fut, B>(
    listener: TcpListener,
    connections: Connections,
    mut listening: Listening,
    respond: F,
) where
    F: Respond<Fut>,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: ResponseBody,
{
    if listening.tls.is_none() {
        listening.lot = open_lot(&listening, &respond);
    }
    let mut stopped = listening.stopped.clone();
    loop {
        let permit = tokio::select! {
            permit = connections.admit() => permit,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        let (mut stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, or a connection reset before
                // accept: log, pause briefly, go on.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::default();
        let respond = respond.clone();
        let mut listening = listening.clone();
        let mut peer = peer;
        // What the task takes is kept in its future as long as the
        // connection is open: it uses `listening`'s fields where they are,
        // not bound again, which would keep them twice.
        tokio::spawn(async move {
            // A connection that has not said anything yet has nothing in
            // flight: it is closed at once on shutdown.
            if let Some(within) = listening.proxy_protocol {
                // Boxed: its 536-byte buffer would otherwise make every
                // connection's task larger, the header read or not.
                let read = Box::pin(proxy_protocol::read(&mut stream, within));
                let header = tokio::select! {
                    header = read => header,
                    _ = listening.stopped.wait_for(|stop| *stop) => return,
                };
                match client_of(header, peer) {
                    Some(client) => peer = client,
                    None => return,
                }
            }
            // The permit goes with the socket if it is parked in the lot;
            // otherwise it is given back when this task ends.
            if listening.tls.is_none() {
                let away = ToLot::new(listening.lot.as_deref(), peer, permit);
                serve!(stream, false, peer, respond, activity, listening, away);
            } else {
                // Boxed, for the same reason: a TLS connection's state
                // (over a kilobyte) would be in every plain one's task.
                Box::pin(serve_tls(stream, peer, respond, activity, listening)).await;
                drop(permit);
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(listening.drain, connections.all_closed())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout");
    }
}

/// The lot of the accept loop `listening` and serving with `respond`, its
/// watcher started; `None` (logged) when the system cannot give one, and
/// idle connections then wait in their own task.
fn open_lot<F, Fut, B>(listening: &Listening, respond: &F) -> Option<Arc<Lot>>
where
    F: Respond<Fut>,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: ResponseBody,
{
    let (lot, watcher) = match Lot::open(listening.checks.every()) {
        Ok(opened) => opened,
        Err(error) => {
            tracing::warn!(%error, "idle connections wait in their own task: no lot");
            return None;
        }
    };
    let listening = Listening {
        lot: Some(Arc::clone(&lot)),
        ..listening.clone()
    };
    let stopped = listening.stopped.clone();
    let respond = respond.clone();
    tokio::spawn(watcher.run(stopped, move |woken| {
        serve_woken(woken, respond.clone(), listening.clone());
    }));
    Some(lot)
}

/// Serves, on a task of its own, a connection the lot woke: as HTTP/1 from
/// its next bytes, parked again when idle.
fn serve_woken<F, Fut, B>(woken: Woken, respond: F, listening: Listening)
where
    F: Respond<Fut>,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: ResponseBody,
{
    tokio::spawn(async move {
        let Woken {
            stream,
            peer,
            permit,
        } = woken;
        let activity = Activity::default();
        let client = ClientAddr::new(peer, false);
        let away = ToLot::new(listening.lot.as_deref(), peer, permit);
        let served = serve_http1!(
            Rewind::new(stream),
            client,
            respond,
            activity,
            listening,
            away
        );
        log_ended(peer, served);
    });
}

/// The TLS handshake on `stream` from `peer`, within its time, then
/// [`serve!`]; a failed or late handshake is logged at debug (a port scan or
/// a plain-HTTP client is not news) and the connection closed.
async fn serve_tls<F, Fut, B>(
    stream: TcpStream,
    peer: SocketAddr,
    respond: F,
    activity: Activity,
    mut listening: Listening,
) where
    F: Respond<Fut>,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: ResponseBody,
{
    // Called only for a listener with TLS; without, nothing to serve.
    let Some(tls) = listening.tls.take() else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.settings.load_full());
    let handshake = tokio::time::timeout(tls.within, acceptor.accept(stream));
    let handshake = tokio::select! {
        handshake = handshake => handshake,
        _ = listening.stopped.wait_for(|stop| *stop) => return,
    };
    match handshake {
        Ok(Ok(stream)) => {
            serve!(
                TlsReads::new(stream),
                true,
                peer,
                respond,
                activity,
                listening,
                park::Stay
            );
        }
        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, within = ?tls.within, "TLS handshake timed out"),
    }
}
