//! `server.send_timeout` for HTTP/2 streams (SPEC §9.3). An HTTP/2 client
//! that reads nothing stalls the proxy by flow control long before its
//! socket fills: the stream's window (64 KiB by default) is used up, and
//! hyper waits for a `WINDOW_UPDATE` that never comes, holding the stream
//! and the exchange with the instance behind it. The socket-level timeout
//! (`send_timeout`) never sees it.
//!
//! So each stream's task runs under [`StallWatch`], which tells the two
//! waits apart by what the response body last did in the task's poll: it
//! gave hyper a frame and was not asked again (hyper waits for the client:
//! the timer runs), or it was asked and is waiting for the instance (the
//! timer stops; the instance is `body_timeout`'s business). When the timer
//! runs out the task ends, which resets the stream and drops the exchange:
//! the client's fault, never counted against the instance. The client's
//! other streams go on.
//!
//! The body tells its task through a thread-local cell, set while the task
//! polls it: a stream's body is only ever polled from its own task, on the
//! thread polling that task.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// What the response body did in the poll of its stream's task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Polled {
    /// It was not polled.
    Not,
    /// It was asked for a frame and has none yet: waiting on the instance.
    Waiting,
    /// It gave a frame last: hyper waits on the client to take it.
    Gave,
}

thread_local! {
    static POLLED: Cell<Polled> = const { Cell::new(Polled::Not) };
}

/// The executor of HTTP/2 streams: each runs on its own task under a
/// [`StallWatch`] of `limit`.
#[derive(Clone, Copy, Debug)]
pub(super) struct StreamExecutor {
    pub(super) limit: Duration,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        tokio::spawn(StallWatch {
            stream,
            limit: self.limit,
            stalled: None,
            running: false,
        });
    }
}

pin_project_lite::pin_project! {
    /// A stream's task, ended when its client takes nothing for `limit`.
    struct StallWatch<F> {
        #[pin]
        stream: F,
        limit: Duration,
        // The timer, made the first time the client keeps the stream
        // waiting (boxed: most streams never wait on their client).
        stalled: Option<Pin<Box<Sleep>>>,
        // Whether `stalled` is running.
        running: bool,
    }
}

impl<F: Future<Output = ()>> Future for StallWatch<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        POLLED.with(|polled| polled.set(Polled::Not));
        if this.stream.poll(cx).is_ready() {
            return Poll::Ready(());
        }
        match POLLED.with(Cell::get) {
            Polled::Not => {}
            Polled::Waiting => *this.running = false,
            Polled::Gave => {
                if !*this.running {
                    let deadline = Instant::now() + *this.limit;
                    match this.stalled {
                        Some(stalled) => stalled.as_mut().reset(deadline),
                        None => *this.stalled = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                    *this.running = true;
                }
            }
        }
        if let (true, Some(stalled)) = (*this.running, this.stalled.as_mut()) {
            ready!(stalled.as_mut().poll(cx));
            tracing::debug!("HTTP/2 client took nothing within send_timeout: stream reset");
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

pin_project_lite::pin_project! {
    /// A response body sent on an HTTP/2 stream, telling the stream's
    /// [`StallWatch`] what it did.
    pub(super) struct Sent<B> {
        #[pin]
        body: B,
    }
}

impl<B> Sent<B> {
    pub(super) fn new(body: B) -> Sent<B> {
        Sent { body }
    }
}

impl<B: Body> Body for Sent<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let poll = self.project().body.poll_frame(cx);
        let did = if poll.is_pending() {
            Polled::Waiting
        } else {
            Polled::Gave
        };
        POLLED.with(|polled| polled.set(did));
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
