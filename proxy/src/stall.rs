//! The timer behind every "nothing for this long" limit: a response body
//! from an instance (`body_timeout`), a request body from a client (the
//! same key), and a client that takes nothing (`send_timeout`). Each runs
//! only while its side is waited on, and starts again when it gives
//! something.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;

/// How long something may make no progress while it is waited on.
pub struct StallTimer {
    limit: Duration,
    /// Running since the last poll that found nothing; gone once one makes
    /// progress. (Boxed: only a wait costs the allocation.)
    running: Option<Pin<Box<Sleep>>>,
}

impl StallTimer {
    /// A timer of `limit`, not running.
    pub fn new(limit: Duration) -> StallTimer {
        StallTimer {
            limit,
            running: None,
        }
    }

    /// The limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Follows a poll of the watched side: progress (`Ready`) stops the
    /// timer; a wait (`Pending`) starts it if it is not running. Returns
    /// whether the wait has now lasted `limit` (the timer then wakes `cx`
    /// when it runs out).
    pub fn ran_out<T>(&mut self, cx: &mut Context<'_>, poll: &Poll<T>) -> bool {
        if poll.is_ready() {
            self.running = None;
            return false;
        }
        let limit = self.limit;
        let running = self
            .running
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        running.as_mut().poll(cx).is_ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn runs_only_while_waited_on_and_starts_again_after_progress() {
        let mut timer = StallTimer::new(Duration::from_secs(1));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(!timer.ran_out(&mut cx, &Poll::<()>::Pending));
        tokio::time::advance(Duration::from_millis(900)).await;
        assert!(
            !timer.ran_out(&mut cx, &Poll::Ready(())),
            "progress stops it"
        );
        assert!(!timer.ran_out(&mut cx, &Poll::<()>::Pending));
        tokio::time::advance(Duration::from_millis(900)).await;
        assert!(
            !timer.ran_out(&mut cx, &Poll::<()>::Pending),
            "started again"
        );
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(timer.ran_out(&mut cx, &Poll::<()>::Pending));
    }
}
