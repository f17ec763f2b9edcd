//! Idle plain HTTP/1 connections, parked with no task of their own.
//!
//! Why: parked in its own task (see `park`), an idle connection still
//! costs the task, its socket's registration with the runtime, and the
//! state its lookout and service keep: 3.0 KB, where nginx's costs 0.6 KB
//! (`loadtest/results/idle-connections.md`). In the lot it costs a
//! [`Parked`] of 16 bytes, and the kernel's side of its socket.
//!
//! How: each accept loop of a plain listener has one lot, an epoll
//! instance (mio's [`Poll`]) that the runtime watches as one file
//! descriptor. The lookout parks an idle connection with nothing of an
//! exchange left; its task then hands the socket to the lot, registered
//! for reading, and ends. When the client speaks again, or closes, the lot
//! takes the socket out and hands it back to be served as a new HTTP/1
//! connection in a new task. A socket quiet for as long as a parked
//! connection may be quiet is closed at the lot's first check after that
//! (the lot checks as often as a connection does), and all of them when
//! the proxy stops.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::{Instant, MissedTickBehavior};

use super::interim::Interim;
use super::park::Away;

/// How many readiness events one look at the lot takes.
const EVENTS: usize = 256;

/// The parked sockets of one accept loop, shared by its connections' tasks
/// (which park them) and its [`Watcher`] (which wakes and closes them).
pub(super) struct Lot {
    registry: Registry,
    /// The period of its checks.
    every: Duration,
    parked: Mutex<Parking>,
}

/// The lot's sockets, each registered under the token of its key.
struct Parking {
    sockets: Slab<Parked>,
    /// The parked connections' places among the listener's open
    /// connections: one permit each, merged.
    permits: Option<OwnedSemaphorePermit>,
    /// When the next check comes (or later, if the watcher is late).
    next_check: Instant,
    /// Set when the watcher has stopped (the proxy stops, or the lot
    /// failed): a socket parked after that is closed at once.
    closed: bool,
}

/// One parked connection, as small as it can be: there may be tens of
/// thousands.
struct Parked {
    socket: std::net::TcpStream,
    /// How many more checks it may stay quiet for: it is closed at the
    /// check that makes this 0.
    checks_left: u32,
    /// Its client, when that is not the socket's peer (a PROXY protocol
    /// header named it): boxed, the common case pays only for the pointer.
    proxied: Option<Box<SocketAddr>>,
}

/// A parked connection whose client spoke again (or closed): to be served.
pub(super) struct Woken {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) permit: Option<OwnedSemaphorePermit>,
}

impl Lot {
    /// A new lot checked `every` so often, and the watcher its accept loop
    /// runs.
    ///
    /// # Errors
    ///
    /// The system's, when it has no epoll instance to give, or the runtime
    /// cannot watch it.
    pub(super) fn open(every: Duration) -> io::Result<(Arc<Lot>, Watcher)> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let every = every.max(Duration::from_millis(1));
        let lot = Arc::new(Lot {
            registry,
            every,
            parked: Mutex::new(Parking {
                sockets: Slab::new(),
                permits: None,
                next_check: Instant::now() + every,
                closed: false,
            }),
        });
        // SAFETY: the descriptor is the `Poll`'s own epoll instance, open
        // as long as the `Poll` is, and the `AsyncFd` owns the `Poll`.
        #[allow(unsafe_code)]
        let poll = unsafe { AsyncFd::register(poll) }?;
        let watcher = Watcher {
            poll,
            events: Events::with_capacity(EVENTS),
            lot: Arc::clone(&lot),
        };
        Ok((lot, watcher))
    }

    /// Locked. Nothing that can panic runs while it is held, so a poisoned
    /// lock is used as it is.
    fn parked(&self) -> MutexGuard<'_, Parking> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Parks `stream`, the connection of `peer` holding `permit`, for at
    /// least `time_left` (it is closed at the first check after that). A
    /// socket that cannot be parked is closed, as an idle connection is:
    /// its client opens another.
    fn park(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
        time_left: Duration,
    ) {
        let proxied = (stream.peer_addr().ok() != Some(peer)).then(|| Box::new(peer));
        let socket = match stream.into_std() {
            Ok(socket) => socket,
            Err(error) => {
                tracing::debug!(%peer, %error, "idle connection closed: not parked");
                return;
            }
        };
        let mut parked = self.parked();
        let parking = &mut *parked;
        let same_semaphore = parking
            .permits
            .as_ref()
            .is_none_or(|permits| Arc::ptr_eq(permits.semaphore(), permit.semaphore()));
        // A lot serves one listener, whose connections share one
        // semaphore: another's permit could not be merged.
        if parking.closed || !same_semaphore {
            return;
        }
        // Registered under the lock, so that the watcher, which looks
        // sockets up under it, finds this one when it is ready.
        let entry = parking.sockets.vacant_entry();
        let registered = self.registry.register(
            &mut SourceFd(&socket.as_raw_fd()),
            Token(entry.key()),
            Interest::READABLE,
        );
        if let Err(error) = registered {
            tracing::warn!(%peer, %error, "idle connection closed: not parked");
            return;
        }
        let checks_left = self.checks_for(time_left, parking.next_check);
        entry.insert(Parked {
            socket,
            checks_left,
            proxied,
        });
        match &mut parking.permits {
            Some(permits) => permits.merge(permit),
            None => parking.permits = Some(permit),
        }
    }

    /// How many checks, the first at `next_check` and the others a period
    /// apart (or later), until the first at least `time_left` from now.
    fn checks_for(&self, time_left: Duration, next_check: Instant) -> u32 {
        let Some(until) = Instant::now().checked_add(time_left) else {
            return u32::MAX;
        };
        let after_next = until.saturating_duration_since(next_check);
        let periods = after_next.as_nanos().div_ceil(self.every.as_nanos());
        u32::try_from(periods).unwrap_or(u32::MAX).saturating_add(1)
    }

    /// Takes out the socket registered as `token`, if still parked, with
    /// its permit.
    fn take(&self, token: Token) -> Option<(Parked, Option<OwnedSemaphorePermit>)> {
        let taken = {
            let mut parked = self.parked();
            let parking = &mut *parked;
            let socket = parking.sockets.try_remove(token.0)?;
            let permit = parking
                .permits
                .as_mut()
                .and_then(|permits| permits.split(1));
            (socket, permit)
        };
        // Closed or served from now on, it must not wake the lot again.
        let _ = self
            .registry
            .deregister(&mut SourceFd(&taken.0.socket.as_raw_fd()));
        Some(taken)
    }

    /// A check: closes the sockets whose time is up, and gives back their
    /// permits.
    fn check(&self) {
        let mut parked = self.parked();
        let parking = &mut *parked;
        parking.next_check = Instant::now() + self.every;
        let mut closed = 0;
        parking.sockets.retain(|_, parked| {
            parked.checks_left -= 1;
            let open = parked.checks_left > 0;
            closed += usize::from(!open);
            open
        });
        if closed > 0 {
            drop(
                parking
                    .permits
                    .as_mut()
                    .and_then(|permits| permits.split(closed)),
            );
        }
        if parking.sockets.is_empty() {
            // Gives back the room of the last burst of parked connections.
            parking.sockets = Slab::new();
        }
    }

    /// Whether it still takes sockets.
    fn is_open(&self) -> bool {
        !self.parked().closed
    }

    /// Closes every socket, and any parked from now on.
    fn close_all(&self) {
        let mut parked = self.parked();
        parked.closed = true;
        parked.sockets = Slab::new();
        parked.permits = None;
    }
}

/// What watches a [`Lot`], in a task of its own: it wakes and closes the
/// lot's sockets, and closes them all when it ends (or is dropped).
pub(super) struct Watcher {
    poll: AsyncFd<Poll>,
    events: Events,
    lot: Arc<Lot>,
}

impl Watcher {
    /// Watches the lot until `stopped` (or until the lot fails): hands
    /// each socket whose client spoke again to `wake`, and closes those
    /// whose time is up at each check. Then closes them all.
    pub(super) async fn run(
        mut self,
        mut stopped: watch::Receiver<bool>,
        mut wake: impl FnMut(Woken),
    ) {
        let every = self.lot.every;
        let mut checks = tokio::time::interval_at(Instant::now() + every, every);
        // Never two checks closer than a period: a late one must not
        // count for two.
        checks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ready = self.poll.readable_mut() => {
                    let mut ready = match ready {
                        Ok(ready) => ready,
                        Err(error) => {
                            tracing::warn!(%error, "parked connections closed: their lot failed");
                            break;
                        }
                    };
                    match ready.get_inner_mut().poll(&mut self.events, Some(Duration::ZERO)) {
                        Ok(()) => {}
                        // Still ready: look again.
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                        Err(error) => {
                            tracing::warn!(%error, "parked connections closed: their lot failed");
                            break;
                        }
                    }
                    // Once it has none left to give, until the next.
                    if self.events.is_empty() {
                        ready.clear_ready();
                    }
                    for event in &self.events {
                        if let Some(woken) = self.lot.take(event.token()).and_then(woken) {
                            wake(woken);
                        }
                    }
                }
                _ = checks.tick() => self.lot.check(),
                _ = stopped.wait_for(|stop| *stop) => break,
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.lot.close_all();
    }
}

/// The connection of a socket taken out of the lot, ready to be served;
/// `None` (and closed) when the runtime cannot take it, or when its client
/// is gone and the socket has no peer to name it (a client named by a
/// PROXY protocol header is found gone by the read that serves it).
fn woken((parked, permit): (Parked, Option<OwnedSemaphorePermit>)) -> Option<Woken> {
    let Parked {
        socket, proxied, ..
    } = parked;
    let peer = match proxied {
        Some(peer) => *peer,
        None => match socket.peer_addr() {
            Ok(peer) => peer,
            Err(error) => {
                tracing::debug!(%error, "parked connection closed by its client");
                return None;
            }
        },
    };
    match TcpStream::from_std(socket) {
        Ok(stream) => Some(Woken {
            stream,
            peer,
            permit,
        }),
        Err(error) => {
            tracing::warn!(%peer, %error, "parked connection closed: not served");
            None
        }
    }
}

/// The way of a plain connection's task to its accept loop's lot (if it
/// has one).
pub(super) struct ToLot<'a> {
    lot: Option<&'a Lot>,
    peer: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
}

impl<'a> ToLot<'a> {
    /// For the connection of `peer` holding `permit`.
    pub(super) fn new(
        lot: Option<&'a Lot>,
        peer: SocketAddr,
        permit: Option<OwnedSemaphorePermit>,
    ) -> ToLot<'a> {
        ToLot { lot, peer, permit }
    }
}

impl Away<Interim<TcpStream>> for ToLot<'_> {
    fn is_open(&self) -> bool {
        self.lot.is_some_and(Lot::is_open) && self.permit.is_some()
    }

    fn take(&mut self, io: Interim<TcpStream>, time_left: Duration) {
        if let (Some(lot), Some(permit)) = (self.lot, self.permit.take()) {
            lot.park(io.into_inner(), self.peer, permit, time_left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::{mpsc, Semaphore};

    /// A connected pair: the client's end, and the proxy's.
    async fn connected() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        (client, accepted)
    }

    /// A lot checked every `every`, its woken connections sent on the
    /// channel; and the sender that stops it.
    fn watched(
        every: Duration,
    ) -> (
        Arc<Lot>,
        mpsc::UnboundedReceiver<Woken>,
        watch::Sender<bool>,
    ) {
        let (lot, watcher) = Lot::open(every).unwrap();
        let (stop, stopped) = watch::channel(false);
        let (woke, woken) = mpsc::unbounded_channel();
        tokio::spawn(watcher.run(stopped, move |woken| {
            let _ = woke.send(woken);
        }));
        (lot, woken, stop)
    }

    /// Reads until the client's end is closed: `true` if it was.
    async fn closed(client: &mut TcpStream) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest)).await,
            Ok(Ok(0))
        )
    }

    /// A parked socket holds its permit, and comes back, permit and all,
    /// with what its client sent once it speaks again; its client the
    /// socket's peer, or the one a PROXY protocol header named.
    #[tokio::test]
    async fn a_parked_connection_comes_back_when_its_client_speaks() {
        let (lot, mut woken, _stop) = watched(Duration::from_secs(60));
        let permits = Arc::new(Semaphore::new(2));
        let proxied: SocketAddr = "203.0.113.7:4000".parse().unwrap();
        for proxied in [None, Some(proxied)] {
            let (mut client, accepted) = connected().await;
            let peer = proxied.unwrap_or(client.local_addr().unwrap());
            let permit = Arc::clone(&permits).try_acquire_owned().unwrap();
            let mut away = ToLot::new(Some(&lot), peer, Some(permit));
            assert!(Away::<Interim<TcpStream>>::is_open(&away));

            let outbox = crate::interim::Outbox::new(crate::interim::Protocol::Http1);
            away.take(Interim::new(accepted, outbox), Duration::from_secs(60));
            assert_eq!(permits.available_permits(), 1, "the lot holds the permit");
            assert!(woken.try_recv().is_err(), "woken before the client spoke");

            client.write_all(b"GET /").await.unwrap();
            let Woken {
                mut stream,
                peer: woken_peer,
                permit,
            } = tokio::time::timeout(Duration::from_secs(10), woken.recv())
                .await
                .expect("woken within the wait")
                .unwrap();
            assert_eq!(woken_peer, peer);
            let mut start = [0u8; 5];
            stream.read_exact(&mut start).await.unwrap();
            assert_eq!(&start, b"GET /");
            assert_eq!(
                permits.available_permits(),
                1,
                "the permit came back with it"
            );
            drop(permit);
            assert_eq!(permits.available_permits(), 2);
        }
    }

    /// What the module's doc says a parked connection costs.
    #[test]
    fn a_parked_connection_takes_16_bytes() {
        assert!(std::mem::size_of::<Parked>() <= 16);
    }

    /// A parked socket is closed, its permit given back, once its time is
    /// up, at the next check.
    #[tokio::test]
    async fn a_parked_connection_is_closed_when_its_time_is_up() {
        let (lot, mut woken, _stop) = watched(Duration::from_millis(50));
        let (mut client, accepted) = connected().await;
        let permits = Arc::new(Semaphore::new(1));
        let permit = Arc::clone(&permits).try_acquire_owned().unwrap();
        let outbox = crate::interim::Outbox::new(crate::interim::Protocol::Http1);
        let peer = client.local_addr().unwrap();
        ToLot::new(Some(&lot), peer, Some(permit))
            .take(Interim::new(accepted, outbox), Duration::from_millis(100));

        assert!(closed(&mut client).await, "not closed");
        assert!(woken.try_recv().is_err(), "woken, not closed");
        assert_eq!(permits.available_permits(), 1);
    }

    /// When the proxy stops, the lot closes its sockets, and any parked
    /// after that.
    #[tokio::test]
    async fn stopping_closes_the_parked_connections() {
        let (lot, _woken, stop) = watched(Duration::from_secs(60));
        let permits = Arc::new(Semaphore::new(2));
        let mut clients = Vec::new();
        for _ in 0..2 {
            let (client, accepted) = connected().await;
            let permit = Arc::clone(&permits).try_acquire_owned().unwrap();
            let outbox = crate::interim::Outbox::new(crate::interim::Protocol::Http1);
            let peer = client.local_addr().unwrap();
            clients.push((client, accepted, outbox, peer, permit));
        }
        let (mut first, accepted, outbox, peer, permit) = clients.remove(0);
        ToLot::new(Some(&lot), peer, Some(permit))
            .take(Interim::new(accepted, outbox), Duration::from_secs(60));
        stop.send(true).unwrap();
        assert!(closed(&mut first).await, "the parked one left open");

        let (mut second, accepted, outbox, peer, permit) = clients.remove(0);
        ToLot::new(Some(&lot), peer, Some(permit))
            .take(Interim::new(accepted, outbox), Duration::from_secs(60));
        assert!(
            closed(&mut second).await,
            "one parked after the stop left open"
        );
        assert_eq!(permits.available_permits(), 2);
    }
}
