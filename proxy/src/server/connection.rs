//! Client connections: how many may be open at once, and when an open one
//! is closed (idle, or the proxy shutting down).
//!
//! Why a semaphore: at `max_connections` the accept loop waits for a permit
//! instead of accepting, so the kernel's backlog holds new clients (and
//! refuses them when it is full) rather than the proxy taking file
//! descriptors and memory it cannot serve. The permits also tell shutdown
//! when the last connection has closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::Response;
use hyper::body::Incoming;
use hyper::rt::bounds::Http2ServerConnExec;
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::resets::Resets;
use super::woken::WhenWoken;
use super::Refused;

/// The open connections of one listener, at most `max`. Clones share
/// them: the sockets of a listener's workers count as one.
#[derive(Clone)]
pub(super) struct Connections {
    permits: Arc<Semaphore>,
    max: u32,
}

impl Connections {
    /// Room for `max` connections (capped at what a `u32` counts).
    pub(super) fn new(max: usize) -> Connections {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        Connections {
            permits: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// A place for one more connection, waiting while all are taken.
    /// `None` only if the semaphore were closed, which it never is.
    pub(super) async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.permits).acquire_owned().await.ok()
    }

    /// Returns when every connection has closed.
    pub(super) async fn all_closed(&self) {
        let _ = self.permits.acquire_many(self.max).await;
    }
}

/// What a connection's requests did, for [`serve`]: whether one started
/// since it last looked (idle connections close), whether the last one is
/// over (idle HTTP/1 connections are parked, see `park`), and how many the
/// client gave up on before their answer (rapid resets).
#[derive(Clone, Debug, Default)]
pub(super) struct Activity(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    started: AtomicBool,
    /// The last request was answered and had no body: nothing of its
    /// exchange is left to read.
    settled: AtomicBool,
    /// The connection is being parked: hyper's closing shutdown of the
    /// socket is to be skipped.
    parking: AtomicBool,
    resets: Resets,
}

impl Activity {
    /// A request has started.
    #[inline]
    pub(super) fn request(&self) {
        self.0.started.store(true, Ordering::Relaxed);
        self.0.settled.store(false, Ordering::Relaxed);
    }

    /// Whether a request started since the last call.
    fn take(&self) -> bool {
        self.0.started.swap(false, Ordering::Relaxed)
    }

    /// Whether the last request is over, as far as reading goes: answered,
    /// with no body.
    fn settled(&self) -> bool {
        self.0.settled.load(Ordering::Relaxed)
    }

    /// Whether the connection is being parked.
    pub(super) fn parking(&self) -> bool {
        self.0.parking.load(Ordering::Relaxed)
    }

    fn set_parking(&self, parking: bool) {
        self.0.parking.store(parking, Ordering::Relaxed);
    }

    /// The budget of requests given up before their answer.
    fn resets(&self) -> &Resets {
        &self.0.resets
    }

    /// Whether the client gave up on too many requests: nothing more of
    /// this connection is forwarded.
    #[inline]
    pub(super) fn refusing(&self) -> bool {
        self.0.resets.is_spent()
    }

    /// A request of this connection, counted as given up on if it is
    /// dropped before [`Watch::answered`]; `bodyless`: it has no body to
    /// read, so its answer settles the connection.
    #[inline]
    pub(super) fn watch(&self, bodyless: bool) -> Watch {
        Watch {
            activity: Some(self.clone()),
            bodyless,
        }
    }
}

/// One request of a connection, while it has no answer.
#[must_use = "a request dropped unanswered counts as given up on"]
pub(super) struct Watch {
    activity: Option<Activity>,
    bodyless: bool,
}

impl Watch {
    /// The request was answered: it does not count.
    #[inline]
    pub(super) fn answered(mut self) {
        if let Some(activity) = self.activity.take() {
            if self.bodyless {
                activity.0.settled.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(activity) = &self.activity {
            activity.resets().given_up();
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer to one request of a connection: the handler's `response`,
    /// its body made by `body`, with the request's [`Watch`]; or
    /// [`Refused`] at once when the connection forwards nothing more
    /// (`refused`).
    ///
    /// A future of its own, not an `async` block: a block that awaits the
    /// handler's future keeps it twice (as captured and as awaited), and
    /// moves it from one to the other on its first poll; hyper moves the
    /// whole block into its slot for each request. That was 7.6 KB and
    /// 3.8 KB copied per request (the sizes of the binary's `memcpy`s)
    /// where this future has one 3.8 KB move (about 750 instructions per
    /// request, `loadtest/results/instructions.md`).
    pub(super) struct Answer<Fut, B, W> {
        #[pin]
        response: Fut,
        watch: Option<Watch>,
        refused: bool,
        body: fn(B) -> W,
    }
}

impl<Fut, B, W> Answer<Fut, B, W> {
    /// The answer `response` will give, watched by `watch`; `refused`:
    /// none, the request is not forwarded.
    #[inline]
    pub(super) fn new(response: Fut, watch: Watch, refused: bool, body: fn(B) -> W) -> Self {
        Answer {
            response,
            watch: Some(watch),
            refused,
            body,
        }
    }
}

impl<Fut, B, W> Future for Answer<Fut, B, W>
where
    Fut: Future<Output = Response<B>>,
{
    type Output = Result<Response<W>, Refused>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if *this.refused {
            // Dropped unanswered: counted as given up on.
            drop(this.watch.take());
            return Poll::Ready(Err(Refused));
        }
        let response = ready!(this.response.poll(cx));
        if let Some(watch) = this.watch.take() {
            watch.answered();
        }
        Poll::Ready(Ok(response.map(*this.body)))
    }
}

/// How often a connection looks at itself, and what for.
#[derive(Clone, Copy, Debug)]
pub(super) struct Checks {
    /// `server.idle_timeout`: closed after this long without a request
    /// starting.
    idle: Duration,
    /// `server.header_read_timeout`, which hyper also applies to a
    /// keep-alive connection waiting for its next request: a parked one
    /// (see `park`) is closed after this long without a request starting.
    header_read: Duration,
    /// The period of the checks: at most a quarter of
    /// `server.header_read_timeout`, whose deadlines hyper looks at when
    /// a check wakes the connection (see `deadline`), and at most `idle`.
    every: Duration,
}

impl Checks {
    /// The period of the checks.
    pub(super) fn every(&self) -> Duration {
        self.every
    }

    /// Checks for `idle_timeout` and `header_read_timeout`.
    pub(super) fn new(idle_timeout: Duration, header_read_timeout: Duration) -> Checks {
        Checks {
            idle: idle_timeout,
            header_read: header_read_timeout,
            every: idle_timeout
                .min(header_read_timeout / 4)
                .max(Duration::from_millis(1)),
        }
    }
}

/// What looks after a connection while it is open: it is closed when the
/// proxy stops (`stopped`), when `checks.idle` passes without a request
/// starting (seen at a check, so an idle connection closes after `idle`
/// to `idle` plus a check period; parked, `checks.header_read` if
/// shorter), or when the client has given up on too many requests before
/// their answer; and, if it may, parked at the first check that finds no
/// request started since the one before and the last one settled.
pub(super) struct Lookout {
    activity: Activity,
    stopped: watch::Receiver<bool>,
    ticks: tokio::time::Interval,
    /// `checks.idle`.
    idle: Duration,
    /// How long a parked connection may be quiet.
    parked_idle: Duration,
    /// The check period.
    every: Duration,
    /// How long no request has started, as of the last check.
    quiet: Duration,
}

/// What a connection is doing, for the [`Lookout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Doing {
    /// Serving, not to be parked (HTTP/2).
    Serving,
    /// Serving, to be parked when idle (HTTP/1).
    ServingParkable,
    /// Parked.
    Parked,
}

/// What the [`Lookout`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Close the connection.
    Close,
    /// Park it: it is idle, with nothing of an exchange left.
    Park,
}

impl Lookout {
    /// Looks after the connection of `activity` with `checks`, until
    /// `stopped`. The first check is a period from now.
    pub(super) fn new(
        activity: Activity,
        checks: Checks,
        stopped: watch::Receiver<bool>,
    ) -> Lookout {
        let Checks {
            idle,
            header_read,
            every,
        } = checks;
        Lookout {
            activity,
            stopped,
            ticks: tokio::time::interval_at(tokio::time::Instant::now() + every, every),
            idle,
            parked_idle: idle.min(header_read),
            every,
            quiet: Duration::ZERO,
        }
    }

    /// The connection's activity.
    pub(super) fn activity(&self) -> &Activity {
        &self.activity
    }

    /// How much longer the connection may stay quiet once parked, as of
    /// the last check.
    pub(super) fn parked_time_left(&self) -> Duration {
        self.parked_idle.saturating_sub(self.quiet)
    }

    /// Waits for the next verdict on a connection `doing` that:
    /// [`Verdict::Park`] only if it is parkable.
    pub(super) async fn verdict(&mut self, doing: Doing) -> Verdict {
        let idle = if doing == Doing::Parked {
            self.parked_idle
        } else {
            self.idle
        };
        loop {
            tokio::select! {
                _ = self.stopped.wait_for(|stop| *stop) => return Verdict::Close,
                () = self.activity.resets().spent() => return Verdict::Close,
                _ = self.ticks.tick() => {
                    if self.activity.take() {
                        self.quiet = Duration::ZERO;
                    } else {
                        self.quiet += self.every;
                        if self.quiet >= idle {
                            return Verdict::Close;
                        }
                        if doing == Doing::ServingParkable && self.activity.settled() {
                            return Verdict::Park;
                        }
                    }
                }
            }
        }
    }
}

/// How [`serve`] ended.
pub(super) enum Ended<E> {
    /// The connection closed (or was upgraded), with its result.
    Closed(Result<(), E>),
    /// The connection finished as asked to park: the socket is still open
    /// (unless the result is an error).
    Parked(Result<(), E>),
}

impl<E> Ended<E> {
    /// The connection's result, parked or not.
    pub(super) fn into_result(self) -> Result<(), E> {
        match self {
            Ended::Closed(result) | Ended::Parked(result) => result,
        }
    }
}

/// Serves `connection`, `doing` that, until it ends, or until `lookout`
/// decides, then closes it gracefully (requests in flight finish,
/// keep-alive ends, HTTP/2 gets `GOAWAY`): to close it, or to park it.
/// Each check wakes the connection, so that hyper looks at its header read
/// deadline.
pub(super) async fn serve<C, E>(
    mut connection: Pin<&mut C>,
    lookout: &mut Lookout,
    doing: Doing,
) -> Ended<E>
where
    C: Future<Output = Result<(), E>> + GracefulShutdown,
{
    // Polled only when the shutdown signal or a check woke it, not on
    // every wake of the connection (see `woken`).
    let verdict = WhenWoken::new(lookout.verdict(doing));
    let verdict = tokio::select! {
        result = connection.as_mut() => return Ended::Closed(result),
        verdict = verdict => verdict,
    };
    if verdict == Verdict::Park {
        lookout.activity.set_parking(true);
    }
    connection.as_mut().graceful_shutdown_pinned();
    let result = connection.await;
    lookout.activity.set_parking(false);
    match verdict {
        Verdict::Close => Ended::Closed(result),
        Verdict::Park => Ended::Parked(result),
    }
}

/// A connection that can be asked to finish what it is doing and close.
pub(super) trait GracefulShutdown {
    /// Starts a graceful close.
    fn graceful_shutdown_pinned(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulShutdown for http1::UpgradeableConnection<I, S>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown_pinned(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, E, B> GracefulShutdown for http2::Connection<I, S, E>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown_pinned(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only an answered request that had no body settles the connection;
    /// the next request unsettles it.
    #[test]
    fn only_an_answered_request_without_a_body_settles_the_connection() {
        let activity = Activity::default();
        assert!(!activity.settled());
        activity.request();
        activity.watch(false).answered();
        assert!(!activity.settled(), "a request with a body");
        activity.request();
        let watch = activity.watch(true);
        assert!(!activity.settled(), "not answered yet");
        watch.answered();
        assert!(activity.settled());
        activity.request();
        assert!(!activity.settled(), "a new request");
        drop(activity.watch(true));
        assert!(!activity.settled(), "given up on");
    }

    #[test]
    fn checks_come_four_times_per_header_read_timeout_and_once_per_idle_period() {
        let secs = Duration::from_secs;
        let defaults = Checks::new(secs(60), secs(30));
        assert_eq!(
            (defaults.idle, defaults.header_read, defaults.every),
            (secs(60), secs(30), Duration::from_millis(7500))
        );
        assert_eq!(Checks::new(secs(2), secs(30)).every, secs(2));
        assert_eq!(
            Checks::new(secs(60), Duration::from_nanos(3)).every,
            Duration::from_millis(1)
        );
    }
}
