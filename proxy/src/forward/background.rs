//! The bound on a service's replica writes that go on after their client
//! got its answer (`writes = "all"`, SPEC §5).

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Replica writes of one service that may go on after their client got its
/// answer. Each waits for at most the per-try timeout, so this bounds what
/// a slow or hanging replica can pile up.
pub const BACKGROUND_LIMIT: usize = 1024;

/// A service's background replica writes: one permit each.
#[derive(Debug)]
pub(super) struct Background {
    pub(super) permits: Arc<Semaphore>,
}

impl Default for Background {
    fn default() -> Background {
        Background {
            permits: Arc::new(Semaphore::new(BACKGROUND_LIMIT)),
        }
    }
}
