//! Thread per core: with `server.workers = N` (N > 1), the client listener
//! is N sockets bound to one address with `SO_REUSEPORT`, each accepted
//! from by its own thread running its own current-thread runtime. The
//! kernel spreads new connections over the sockets; a connection, its
//! requests and the upstream connections they make then stay on one
//! thread: no work-stealing queue, and no wake-up crosses threads on the
//! request path (what tokio's multi-thread scheduler pays for with an
//! eventfd write and a futex per cross-thread wake). nginx's workers with
//! `reuseport` share a port the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{bind, local_addr, ServerError};
use crate::worker;

/// The client listener: one socket on the caller's runtime, or one per
/// worker thread.
pub enum ClientListener {
    /// `workers` 1 (or unset): served on the runtime that starts the proxy.
    One(TcpListener),
    /// A socket per worker, all on one address, each to be registered with
    /// its worker's runtime.
    PerWorker(Vec<std::net::TcpListener>),
}

/// Binds the client listener at `addr` for `workers` threads, and says
/// where it is bound (port 0: the port the first socket got, which the
/// others then share).
///
/// # Errors
///
/// [`ServerError`] when a socket cannot be bound.
pub fn bind_client(
    addr: SocketAddr,
    workers: Option<NonZeroUsize>,
) -> Result<(ClientListener, SocketAddr), ServerError> {
    let first = bind(addr)?;
    let bound = local_addr(&first)?;
    let workers = workers.map_or(1, NonZeroUsize::get);
    if workers == 1 {
        return Ok((ClientListener::One(first), bound));
    }
    let to_std = |listener: TcpListener| {
        listener.into_std().map_err(|source| ServerError {
            addr: bound,
            source,
        })
    };
    let mut sockets = Vec::with_capacity(workers);
    sockets.push(to_std(first)?);
    for _ in 1..workers {
        sockets.push(to_std(bind(bound)?)?);
    }
    Ok((ClientListener::PerWorker(sockets), bound))
}

/// Starts worker `index`: a thread with its own current-thread runtime
/// running `accept_loop` on `socket`. Returns the loop's task, awaitable
/// from any runtime, and the release that ends the thread when dropped
/// (after the loop, so that what its connections started, upgraded
/// tunnels included, can finish first).
pub(super) fn start<L, Loop>(
    index: usize,
    socket: std::net::TcpListener,
    accept_loop: L,
) -> Result<(JoinHandle<()>, oneshot::Sender<()>), ServerError>
where
    L: FnOnce(TcpListener) -> Loop,
    Loop: Future<Output = ()> + Send + 'static,
{
    let addr = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let error = |source| ServerError { addr, source };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(error)?;
    let listener = {
        // Registered with the worker's I/O driver, which its thread runs.
        let _entered = runtime.enter();
        TcpListener::from_std(socket).map_err(error)?
    };
    let task = runtime.spawn(accept_loop(listener));
    let (release, released) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(format!("shardproxy-w{index}"))
        .spawn(move || {
            worker::enter(index);
            runtime.block_on(async {
                let _ = released.await;
            });
        })
        .map_err(error)?;
    Ok((task, release))
}
