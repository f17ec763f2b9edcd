//! hyper's timer for the HTTP/1 header read timeout: deadlines that are
//! looked at, not registered.
//!
//! Why: hyper asks its timer for a new sleep each time it starts reading a
//! request head (on a keep-alive connection, right after each response),
//! and drops it once the head is in. With tokio's timer that is an
//! allocation, an entry put into the timer wheel on the first poll and
//! taken out on drop, under the driver's lock: about 700 instructions per
//! request, for a timeout that almost never fires. Here a sleep is a
//! deadline that is `Ready` when polled past it, and nothing wakes it: the
//! connection's own periodic check ([`super::connection::Checks`]) wakes
//! the connection's task at least every quarter of `header_read_timeout`,
//! and hyper then polls the deadline. So a client that stalls its header
//! section is cut off between the timeout and 1.25 times it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A [`hyper::rt::Timer`] whose sleeps are [`Deadline`]s, on tokio's clock
/// (so paused time in tests moves them as it moves tokio's timers).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Deadlines;

impl hyper::rt::Timer for Deadlines {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Deadline(tokio::time::Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Deadline(tokio::time::Instant::from_std(deadline)))
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// Ready once polled at or past its instant; never wakes anything itself.
#[derive(Debug)]
struct Deadline(tokio::time::Instant);

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if tokio::time::Instant::now() >= self.0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl hyper::rt::Sleep for Deadline {}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use hyper::rt::Timer as _;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_is_ready_once_its_instant_has_come() {
        let mut sleep = Deadlines.sleep(Duration::from_secs(30));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(sleep.as_mut().poll(&mut cx).is_ready());
        let later = Deadlines.now() + Duration::from_secs(1);
        let mut sleep = Deadlines.sleep_until(later);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
    }
}
