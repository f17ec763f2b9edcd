//! Which serving thread the code runs on, and state kept once per thread.
//!
//! With `server.workers = N` (N > 1) the proxy serves on N threads, each
//! with its own current-thread runtime and its own listening socket: no
//! work stealing, and no wake-up crosses threads on the request path. What
//! a request touches is then either shared and read without waiting (the
//! rings, the cache, health, the metrics) or kept per thread here, as
//! nginx keeps a pool of upstream connections per worker process: a kept
//! connection's task runs on the runtime that made it, so a request that
//! took it from another thread's list would wake that thread twice per
//! exchange.

use std::cell::Cell;

thread_local! {
    /// This thread's worker number; `None` on any other thread (the main
    /// one, which runs discovery, health checks and the admin API).
    static INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks this thread as worker `index` (counted from 0), for the life of
/// the thread.
pub fn enter(index: usize) {
    INDEX.with(|cell| cell.set(Some(index)));
}

/// A `T` for each worker thread and one for every other thread, each on its
/// own cache line, so threads that update their own do not slow each
/// other down.
#[derive(Debug)]
pub struct PerWorker<T> {
    slots: Box<[Padded<T>]>,
}

/// One slot, alone on its cache line (two on most x86 parts fetch lines in
/// pairs; 64 bytes is what crossbeam and tokio pad to on x86-64 and arm64
/// alike).
#[derive(Debug)]
#[repr(align(64))]
struct Padded<T>(T);

impl<T> PerWorker<T> {
    /// Slots for `workers` serving threads (0 or 1: everything runs on one
    /// runtime, and there is one slot), each made by `make`.
    pub fn new(workers: usize, mut make: impl FnMut() -> T) -> PerWorker<T> {
        let count = if workers > 1 { workers + 1 } else { 1 };
        PerWorker {
            slots: (0..count).map(|_| Padded(make())).collect(),
        }
    }

    /// The slot of the calling thread: its worker's, or the one shared by
    /// the threads that are no worker. A worker number past the slots (a
    /// reload cannot change the worker count, so only a caller's mistake)
    /// wraps around rather than panics.
    pub fn current(&self) -> &T {
        let index = INDEX.with(Cell::get).map_or(0, |worker| worker + 1);
        &self.slots[index % self.slots.len()].0
    }

    /// Every slot, for a total or a sweep.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|slot| &slot.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_thread_has_its_own_slot_and_others_share_one() {
        let slots = PerWorker::new(2, || std::sync::Mutex::new(Vec::new()));
        std::thread::scope(|scope| {
            for worker in 0..2 {
                let slots = &slots;
                scope.spawn(move || {
                    enter(worker);
                    if let Ok(mut slot) = slots.current().lock() {
                        slot.push(worker);
                    }
                });
            }
        });
        if let Ok(mut slot) = slots.current().lock() {
            slot.push(99);
        }
        let seen: Vec<Vec<usize>> = slots
            .iter()
            .map(|slot| slot.lock().map(|slot| slot.clone()).unwrap_or_default())
            .collect();
        assert_eq!(seen, vec![vec![99], vec![0], vec![1]]);
    }

    #[test]
    fn one_worker_is_one_slot_for_every_thread() {
        let mut made = 0;
        let slots = PerWorker::new(1, || {
            made += 1;
            made
        });
        let main = slots.current();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                enter(0);
                assert!(
                    std::ptr::eq(slots.current(), main),
                    "worker 0 has a slot of its own"
                );
            });
        });
        assert_eq!(slots.iter().count(), 1);
        assert_eq!(made, 1);
    }
}
