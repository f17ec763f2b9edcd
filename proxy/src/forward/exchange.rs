//! What one request did on its way, for the access log: filled in by the
//! layers it passes (key, attempts, cache) and read once when it is
//! answered.

use shardproxy_ring::{InstanceName, Token};

use crate::metrics::CacheOutcome;

/// What one request did, for the access log.
#[derive(Debug, Default)]
pub struct Exchange {
    /// Whether the access log wants this: without it, no instance name is
    /// kept (no reference count touched per attempt).
    pub logged: bool,
    /// The key's position, once extracted.
    pub position: Option<Token>,
    /// The instance whose answer was returned (or the last one tried).
    pub instance: Option<InstanceName>,
    /// Attempts made.
    pub attempts: u32,
    /// What the cache did, for a cache-enabled service.
    pub cache: Option<CacheOutcome>,
}

impl Exchange {
    /// A record of a request that the access log wants (`logged`) or not.
    pub fn new(logged: bool) -> Exchange {
        Exchange {
            logged,
            ..Exchange::default()
        }
    }

    /// Notes an attempt on `instance`.
    pub(super) fn attempt(&mut self, instance: &InstanceName) {
        self.attempts += 1;
        self.answered_by(instance);
    }

    /// Notes that `instance`'s answer is the one returned.
    pub(super) fn answered_by(&mut self, instance: &InstanceName) {
        if self.logged {
            self.instance = Some(instance.clone());
        }
    }
}
