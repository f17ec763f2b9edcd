//! Requests a client gives up on before their answer: an HTTP/2 stream
//! opened and reset while the proxy is still forwarding it (the "rapid
//! reset" class of CVE-2023-44487, in the variant where the stream was
//! accepted first). hyper limits streams reset before they are accepted;
//! this limits those reset after, which otherwise each cost an instance a
//! request and the proxy a connection to it. Past the budget the
//! connection is closed gracefully (`GOAWAY` with `ENHANCE_YOUR_CALM`, see
//! `calm`), and its requests still arriving are refused without being
//! forwarded.
//!
//! A client that cancels now and then (a browser leaving a page) stays far
//! below the budget; counting is per connection, in windows, so a long
//! connection is not closed for cancels spread over hours.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Requests a connection may give up on before their answer within one
/// window.
pub(super) const BUDGET: u32 = 100;

/// The length of a counting window.
const WINDOW: Duration = Duration::from_secs(10);

/// One connection's count of requests given up on.
#[derive(Debug)]
pub(super) struct Resets {
    /// When the connection's counting began, the origin of `window`.
    origin: Instant,
    /// The window being counted, as its number since `origin`.
    window: AtomicU64,
    /// Requests given up on in that window.
    count: AtomicU32,
    /// Set once, when the budget is spent.
    spent: AtomicBool,
    /// Wakes the connection's task to close it.
    close: Notify,
}

impl Default for Resets {
    fn default() -> Resets {
        Resets {
            origin: Instant::now(),
            window: AtomicU64::new(0),
            count: AtomicU32::new(0),
            spent: AtomicBool::new(false),
            close: Notify::new(),
        }
    }
}

impl Resets {
    /// Whether the budget is spent: nothing more is forwarded.
    #[inline]
    pub(super) fn is_spent(&self) -> bool {
        self.spent.load(Ordering::Relaxed)
    }

    /// Returns once the budget is spent.
    pub(super) async fn spent(&self) {
        let notified = self.close.notified();
        if !self.is_spent() {
            notified.await;
        }
    }

    /// Counts a request given up on.
    pub(super) fn given_up(&self) {
        let window = self.origin.elapsed().as_secs() / WINDOW.as_secs();
        if self.window.swap(window, Ordering::Relaxed) != window {
            self.count.store(0, Ordering::Relaxed);
        }
        if self.count.fetch_add(1, Ordering::Relaxed) + 1 > BUDGET
            && !self.spent.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                budget = BUDGET,
                "client reset too many requests before their answer: closing its connection"
            );
            self.close.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_budget_is_spent_past_its_count_within_a_window() {
        let resets = Resets::default();
        for _ in 0..BUDGET {
            resets.given_up();
        }
        assert!(!resets.is_spent(), "the budget itself may be used");
        tokio::time::advance(WINDOW).await;
        for _ in 0..BUDGET {
            resets.given_up();
        }
        assert!(!resets.is_spent(), "a new window counts anew");
        resets.given_up();
        assert!(resets.is_spent());
        tokio::time::timeout(Duration::from_secs(1), resets.spent())
            .await
            .expect("the connection is told to close");
    }
}
