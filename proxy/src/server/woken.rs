//! A future polled only when its own waker fired.
//!
//! Why: a connection's task also watches for shutdown and for idleness.
//! Under `tokio::select!` those watchers were polled again every time the
//! connection woke the task (a few times per request), which cost ~1,000
//! instructions per request (`Interval::poll_tick` and the `watch`
//! receiver) for timers that fire once a minute. Wrapped here, they are
//! polled when their timer or channel woke them, and otherwise skipped.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;

/// `inner`, polled on the first poll and then only after it woke itself.
pub(super) struct WhenWoken<F> {
    inner: Pin<Box<F>>,
    flag: Arc<Flag>,
    waker: Waker,
}

/// Set when `inner`'s waker fires; holds the task to wake.
struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future> WhenWoken<F> {
    pub(super) fn new(inner: F) -> WhenWoken<F> {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        WhenWoken {
            inner: Box::pin(inner),
            waker: Waker::from(Arc::clone(&flag)),
            flag,
        }
    }
}

impl<F: Future> Future for WhenWoken<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Register before reading the flag: a wake in between sets the flag
        // and wakes this task again, so none is lost.
        self.flag.task.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let this = &mut *self;
        let mut own = Context::from_waker(&this.waker);
        this.inner.as_mut().poll(&mut own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The wrapped future still completes when its own timer fires, while
    /// the task is woken by something else too.
    #[tokio::test]
    async fn completes_when_its_own_waker_fires() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut slept = std::pin::pin!(WhenWoken::new(tokio::time::sleep(Duration::from_millis(
            20
        ))));
        for _ in 0..3 {
            tx.send(()).ok();
        }
        let mut other_wakes = 0;
        loop {
            tokio::select! {
                biased;
                Some(()) = rx.recv() => other_wakes += 1,
                () = &mut slept => break,
            }
        }
        assert_eq!(other_wakes, 3);
    }

    /// Not polled while nothing woke it: a future that counts its polls
    /// sees only the first one.
    #[test]
    fn skipped_until_woken() {
        let polls = std::cell::Cell::new(0);
        let counting = std::future::poll_fn(|_| {
            polls.set(polls.get() + 1);
            Poll::<()>::Pending
        });
        let mut wrapped = std::pin::pin!(WhenWoken::new(counting));
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..5 {
            assert!(wrapped.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(polls.get(), 1);
    }
}
