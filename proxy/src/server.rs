//! Listeners: the client-facing one and the admin one, each an accept loop
//! that serves HTTP/1.1 and HTTP/2 (h2c with prior knowledge) on the same
//! port, with keep-alive, and shuts down gracefully.
//!
//! The client listener sets `SO_REUSEPORT`, so several shardproxy processes
//! can share one port and the kernel spreads connections over them: the
//! share-nothing way to use every core (see `deploy/`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use arc_swap::ArcSwap;

use crate::app::App;
use crate::{admin, forward};

/// Pending connections the kernel queues for each listener.
const BACKLOG: u32 = 4096;

/// A client gets this long to send a request's header section (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// hyper's smallest read buffer; `max_header_size` below it is raised to it.
const MIN_HYPER_BUFFER: usize = 8192;

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
}

impl Handle {
    /// Stops accepting, lets open connections finish (up to a drain
    /// timeout), and waits for both loops to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The HTTP/1.1 + HTTP/2 connection builder, with the limits of the config.
fn connection_builder(app: &App) -> auto::Builder<TokioExecutor> {
    let max_header_size = usize::try_from(app.config.server.max_header_size).unwrap_or(usize::MAX);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(max_header_size.max(MIN_HYPER_BUFFER))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header_size).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    builder
}

/// Starts the client and admin accept loops.
/// Each request reads the current [`App`] once, so a reload swaps it for
/// the requests that follow while those in flight finish on the old one.
pub fn spawn(app: Arc<ArcSwap<App>>, listener: TcpListener, admin_listener: TcpListener) -> Handle {
    let (stop, stopped) = watch::channel(false);
    let builder = connection_builder(&app.load());
    let drain = app.load().config.server.drain_timeout;
    let proxy_app = Arc::clone(&app);
    let proxy = tokio::spawn(accept_loop(
        listener,
        builder.clone(),
        stopped.clone(),
        drain,
        move |request: Request<Incoming>, peer| {
            forward::handle(proxy_app.load_full(), request, peer)
        },
    ));
    let admin = tokio::spawn(accept_loop(
        admin_listener,
        builder,
        stopped,
        drain,
        move |request: Request<Incoming>, _peer| {
            let app = app.load_full();
            async move { admin::handle(&app, request).await }
        },
    ));
    Handle {
        stop,
        tasks: vec![proxy, admin],
    }
}

/// Accepts connections until told to stop, serving each on its own task
/// with `respond`; then drains them.
async fn accept_loop<F, Fut, B>(
    listener: TcpListener,
    builder: auto::Builder<TokioExecutor>,
    mut stopped: watch::Receiver<bool>,
    drain: Duration,
    respond: F,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, or a connection reset
                        // before accept: log, pause briefly, go on.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let respond = respond.clone();
                let service = service_fn(move |request| {
                    let response = respond(request, peer);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(error) = watcher.watch(connection).await {
                        tracing::debug!(%peer, error = %error, "connection ended with an error");
                    }
                });
            }
            _ = stopped.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout");
    }
}
