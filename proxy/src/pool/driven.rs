//! A kept-alive HTTP/1.1 connection to an instance, driven by the task that
//! uses it rather than by a task of its own.
//!
//! Why: hyper's connection API hands back the connection as a future that
//! is usually spawned. Each exchange then runs on two tasks, the request's,
//! which hands the request over and waits for the response, and the
//! connection's, which writes and reads. Every step crosses between them: a
//! wake-up, a turn of the scheduler, a channel. A proxy's request has
//! nothing else to do while its exchange is on the way, so its task polls
//! the connection itself, while it waits for the response head and while
//! hyper's server reads the response body. Idle in the pool, a connection
//! is polled by nobody: an end its instance sent meanwhile is seen when the
//! connection is next taken, or by the reaper.
//!
//! What hyper completes for the connection (the response, the body's
//! frames) is polled with a waker that does nothing: only polling the
//! connection can complete it, which the same task does next. The
//! connection itself is polled with a [`Relay`], which passes wake-ups on
//! to the task except when the task is sure to poll the connection anyway
//! or nobody needs it: so the task is not woken by its own connection for
//! nothing (hyper's body channel, for one, wakes the connection each time a
//! frame is taken from it).

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body as _, Frame};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper::client::conn::TrySendError;
use hyper::rt::{Read, Write};

use super::OpenConnection;
use crate::body::Body;

/// The future of a connection, whatever its transport.
type Drive = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// An HTTP/1.1 connection and the handle that sends requests on it, boxed:
/// it is moved with every response, and kept in idle lists.
pub(super) struct Driven(Box<State>);

struct State {
    sender: SendRequest<Body>,
    /// The connection's future, until it has ended.
    connection: Option<Drive>,
    /// What the connection is polled with: `relay` as a waker.
    waker: Waker,
    relay: Arc<Relay>,
    addr: SocketAddr,
    _open: OpenConnection,
}

/// The waker the connection is polled with. It passes wake-ups on to the
/// task that last polled the connection, unless muted: then it notes that
/// one came. Muted while the connection is idle (nobody waits on it) and
/// while the task takes a frame of the response body (hyper's channel then
/// wakes the connection: there is room for the next, which the task will
/// ask for by polling the body again).
#[derive(Default)]
struct Relay {
    task: AtomicWaker,
    /// [`MUTED`], [`MISSED`].
    state: AtomicU8,
}

/// Wake-ups are not passed on.
const MUTED: u8 = 1;
/// A wake-up came while muted.
const MISSED: u8 = 2;

impl Driven {
    /// A new connection to `addr`, counted open by `open` while it lives.
    pub(super) fn new<I>(
        sender: SendRequest<Body>,
        connection: Connection<I, Body>,
        addr: SocketAddr,
        open: OpenConnection,
    ) -> Driven
    where
        I: Read + Write + Unpin + Send + 'static,
    {
        let relay = Arc::new(Relay::default());
        Driven(Box::new(State {
            sender,
            connection: Some(Box::pin(connection)),
            waker: Waker::from(Arc::clone(&relay)),
            relay,
            addr,
            _open: open,
        }))
    }

    /// Whether hyper's connection was ready for a request when last polled.
    /// (A connection its instance closed while it was idle may still say
    /// so: it ends when the request is sent, which then goes on another.)
    pub(super) fn is_ready(&self) -> bool {
        self.0.sender.is_ready()
    }

    /// Whether the connection is still open, polled (muted) to see an end
    /// of file or a reset its instance sent while it was idle.
    pub(super) fn is_open(&mut self) -> bool {
        self.0.relay.mute();
        !self.0.poll_connection() && !self.0.sender.is_closed()
    }

    /// Whether the connection can take the next request once its response
    /// was read to the end. hyper's connection has usually seen the end
    /// already; if not, it is polled once (muted) to see it.
    pub(super) fn is_reusable(&mut self) -> bool {
        self.is_ready() || (self.is_open() && self.is_ready())
    }

    /// Mutes the connection's wake-ups while it is idle.
    pub(super) fn idle(&self) {
        self.0.relay.mute();
    }

    /// Whether hyper says the connection is closed.
    pub(super) fn is_closed(&self) -> bool {
        self.0.connection.is_none() || self.0.sender.is_closed()
    }

    /// Sends `request` and drives the connection until the response head
    /// has come, or the exchange failed (with the request back when it was
    /// not sent).
    pub(super) async fn exchange(
        &mut self,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, TrySendError<Request<Body>>> {
        let state = &mut *self.0;
        let mut answer = pin!(state.sender.try_send_request(request));
        poll_fn(|cx| {
            // Only the connection answers. When it has ended, it has
            // answered: with the error, or with the request it did not send.
            state.poll_ended(cx);
            answer.as_mut().poll(&mut quiet())
        })
        .await
    }

    /// The next frame of `body`, this connection's response body, driving
    /// the connection when none has been read yet.
    ///
    /// A frame is taken muted. After a frame, the connection stays muted:
    /// whoever reads the body polls it again, which polls the connection if
    /// it has to (and when that reader waits for its client to take what it
    /// has, the instance waits too). When there is no frame yet, the
    /// connection is unmuted, as the task then waits for it.
    pub(super) fn poll_body(
        &mut self,
        mut body: Pin<&mut Incoming>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<hyper::Result<Frame<Bytes>>>> {
        let state = &mut *self.0;
        state.relay.mute();
        if let Poll::Ready(frame) = body.as_mut().poll_frame(&mut quiet()) {
            return Poll::Ready(frame);
        }
        state.poll_ended(cx);
        state.relay.mute();
        let frame = body.poll_frame(&mut quiet());
        if frame.is_pending() && state.relay.unmute() {
            cx.waker().wake_by_ref();
        }
        frame
    }
}

impl State {
    /// Whether the connection has ended, polling it for the task of `cx`.
    fn poll_ended(&mut self, cx: &mut Context<'_>) -> bool {
        self.relay.task.register(cx.waker());
        // A wake-up missed meanwhile is seen to by this poll.
        self.relay.unmute();
        self.poll_connection()
    }

    /// Whether the connection has ended (hyper then has nothing more to do
    /// on it), polling it with the relay.
    fn poll_connection(&mut self) -> bool {
        let Some(connection) = &mut self.connection else {
            return true;
        };
        match connection
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker))
        {
            Poll::Pending => false,
            Poll::Ready(result) => {
                if let Err(error) = result {
                    tracing::debug!(addr = %self.addr, %error, "upstream connection ended");
                }
                self.connection = None;
                true
            }
        }
    }
}

impl std::fmt::Debug for Driven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driven")
            .field("addr", &self.0.addr)
            .field("ended", &self.0.connection.is_none())
            .finish_non_exhaustive()
    }
}

// === impl Relay ===

impl Relay {
    fn mute(&self) {
        self.state.store(MUTED, Ordering::Release);
    }

    /// Unmutes: whether a wake-up came while muted.
    fn unmute(&self) -> bool {
        self.state.swap(0, Ordering::AcqRel) & MISSED != 0
    }
}

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let muted = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                (state & MUTED != 0).then_some(state | MISSED)
            })
            .is_ok();
        if !muted {
            self.task.wake();
        }
    }
}

/// A context whose waker does nothing.
fn quiet() -> Context<'static> {
    Context::from_waker(Waker::noop())
}
