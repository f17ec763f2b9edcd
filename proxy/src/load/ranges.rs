//! Requests per range of one ring: one counter per ring point (a point's
//! range is `(previous token, token]`), allocated with the ring's
//! endpoints, so that counting a request is one relaxed increment at the
//! index the ring lookup found anyway.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// The request counts of one ring's ranges, since `since`.
#[derive(Debug)]
pub struct RangeLoad {
    /// Indexed by ring point.
    counts: Box<[AtomicU64]>,
    /// When counting began: when the first request saw this ring.
    since: SystemTime,
}

// === impl RangeLoad ===

impl RangeLoad {
    /// Zero counts for a ring of `points` points (none for a table without
    /// a ring), counting from `since`.
    pub fn new(points: usize, since: SystemTime) -> RangeLoad {
        RangeLoad {
            counts: (0..points).map(|_| AtomicU64::new(0)).collect(),
            since,
        }
    }

    /// Counts one request whose key falls in the range of `point`.
    #[inline]
    pub fn count(&self, point: usize) {
        if let Some(count) = self.counts.get(point) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The requests counted in the range of `point` so far.
    pub fn requests(&self, point: usize) -> u64 {
        self.counts
            .get(point)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    /// When counting began.
    pub fn since(&self) -> SystemTime {
        self.since
    }
}
