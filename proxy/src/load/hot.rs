//! A service's hot keys: a sample of its requests' keys, counted in
//! [`Sketch`]es per time window.
//!
//! **Sampling.** About one request in [`SAMPLE_EVERY`] is counted, chosen
//! by a countdown of the worker thread whose every gap is drawn at random
//! (uniform in `1..2 × SAMPLE_EVERY`, mean `SAMPLE_EVERY`), not by the key:
//! sampling by hash bits would see some keys always and others never, and
//! a fixed gap can fall in step with a regular schedule (a thread serving
//! 16 connections in turn would count the same few connections' requests
//! only). Counts and totals are of the sample; rates are scaled back by
//! `SAMPLE_EVERY`, shares need no scaling. A request that is not sampled
//! costs a thread-local decrement.
//!
//! **Windows.** Time is cut into windows of [`WINDOW`] from the moment the
//! service was set up (at start or reload). Each shard keeps the sketch of
//! the current window and of the last complete one; an answer adds the
//! two, so it covers between one and two windows once the service has run
//! for one (less just after start), and says how long (`window_s`). A
//! window in which nothing was sampled leaves an empty previous window.
//!
//! **Shards.** [`SHARDS`] sketches per window, each behind its own lock;
//! a thread takes its own shard (numbered on its first sample) and, if
//! that is busy, the next free one, so a sampled request never waits on a
//! lock: with every shard busy (more threads sampling at once than
//! shards) the sample is dropped, from the totals too. The answer merges
//! the shards.
//!
//! Memory is bounded whatever the key space: `SHARDS × 2 × CAPACITY`
//! counters, each with at most [`MAX_KEY_TEXT`](super::sketch::MAX_KEY_TEXT)
//! bytes of key text.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use shardproxy_ring::Token;
use tokio::time::Instant;

use super::sketch::Sketch;

/// One request in this many is counted.
pub const SAMPLE_EVERY: u32 = 8;

/// The length of a window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Counters per sketch.
pub const CAPACITY: usize = 256;

/// Sketches per window.
pub const SHARDS: usize = 8;

/// The most keys an answer lists.
pub const TOP: usize = 20;

thread_local! {
    /// Requests this thread lets pass before it samples one.
    static UNTIL: Cell<u32> = const { Cell::new(0) };
    /// This thread's xorshift state, for the gaps between samples.
    static GAPS: Cell<u64> = const { Cell::new(0x9e37_79b9_7f4a_7c15) };
    /// This thread's shard, numbered on its first sample.
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Numbers threads for [`SHARD`]: the next thread to sample takes the next
/// shard.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

/// The hot keys of one service.
#[derive(Debug)]
pub struct HotKeys {
    /// Whether key texts are kept (`hot_keys_record`).
    record: bool,
    /// When the first window began.
    epoch: Instant,
    shards: Box<[Mutex<Windows>]>,
}

/// One shard's current and previous window.
#[derive(Debug)]
struct Windows {
    /// The number of the current window, counted from the epoch.
    number: u64,
    current: Sketch,
    /// The window before `number`, empty when nothing was sampled in it.
    previous: Sketch,
}

/// One item's counts added over the shards and windows.
#[derive(Debug, Default)]
struct Merged {
    count: u64,
    /// Its text, from whichever counter kept it.
    key: Option<Box<[u8]>>,
}

/// One hot key, merged over the shards and the two windows.
#[derive(Clone, Debug, PartialEq)]
pub struct HotKey {
    /// Its position on the ring.
    pub position: Token,
    /// Its text, with `hot_keys_record`.
    pub key: Option<Box<[u8]>>,
    /// Requests per second over the window (scaled from the sample).
    pub rate: f64,
    /// Its share of the service's requests in the window.
    pub share: f64,
}

/// The hot keys of the recent window.
#[derive(Clone, Debug, PartialEq)]
pub struct Top {
    /// How long the counts cover, in seconds.
    pub window_s: f64,
    /// Hottest first, at most [`TOP`].
    pub keys: Vec<HotKey>,
}

// === impl HotKeys ===

impl HotKeys {
    /// No key counted yet; the first window starts `now`. With `record`,
    /// the sketches keep each counted key's text.
    pub fn new(record: bool, now: Instant) -> HotKeys {
        HotKeys {
            record,
            epoch: now,
            shards: (0..SHARDS).map(|_| Mutex::new(Windows::new())).collect(),
        }
    }

    /// Whether key texts are kept.
    pub fn records_keys(&self) -> bool {
        self.record
    }

    /// Counts a request for the key `key` at `position`, if it is one of
    /// the sample. The rest cost a thread-local decrement.
    #[inline]
    pub fn request(&self, position: Token, key: &[u8]) {
        let sampled = UNTIL.with(|until| match until.get() {
            0 => {
                until.set(next_gap());
                true
            }
            left => {
                until.set(left - 1);
                false
            }
        });
        if sampled {
            self.sampled(position, key, Instant::now());
        }
    }

    /// Counts a sampled request at `now`, in this thread's shard or the
    /// next free one; dropped when all are busy.
    #[cold]
    #[inline(never)]
    pub fn sampled(&self, position: Token, key: &[u8], now: Instant) {
        let number = self.window_number(now);
        let key = self.record.then_some(key);
        let first = SHARD.with(|shard| match shard.get() {
            Some(index) => index,
            None => {
                let index = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
                shard.set(Some(index));
                index
            }
        });
        for offset in 0..self.shards.len() {
            let index = (first + offset) % self.shards.len();
            let Some(shard) = self.shards.get(index) else {
                continue;
            };
            if let Ok(mut windows) = shard.try_lock() {
                windows.roll(number);
                windows.current.add(position.0, key);
                return;
            }
        }
    }

    /// The hot keys at `now`: the last complete window and the current
    /// one, merged over the shards, hottest first.
    pub fn top(&self, now: Instant) -> Top {
        let number = self.window_number(now);
        let since_epoch = now.saturating_duration_since(self.epoch);
        let current_s = since_epoch.as_secs_f64() - (number as f64) * WINDOW.as_secs_f64();
        let window_s = if number == 0 {
            current_s
        } else {
            WINDOW.as_secs_f64() + current_s
        };
        let mut merged: HashMap<u128, Merged> = HashMap::new();
        let mut total = 0;
        for shard in &self.shards {
            let mut windows = shard.lock().unwrap_or_else(PoisonError::into_inner);
            windows.roll(number);
            for sketch in [&windows.previous, &windows.current] {
                total += sketch.total();
                for counter in sketch.counters() {
                    let entry = merged.entry(counter.hash).or_default();
                    entry.count += counter.count;
                    if entry.key.is_none() {
                        entry.key.clone_from(&counter.key);
                    }
                }
            }
        }
        let mut keys: Vec<(u128, Merged)> = merged.into_iter().collect();
        // Ties by position, so that the order is the same at every call.
        keys.sort_unstable_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));
        keys.truncate(TOP);
        let scale = f64::from(SAMPLE_EVERY);
        Top {
            window_s,
            keys: keys
                .into_iter()
                .map(|(hash, Merged { count, key })| HotKey {
                    position: Token(hash),
                    key,
                    rate: if window_s > 0.0 {
                        count as f64 * scale / window_s
                    } else {
                        0.0
                    },
                    share: if total > 0 {
                        count as f64 / total as f64
                    } else {
                        0.0
                    },
                })
                .collect(),
        }
    }

    /// The counters held over every shard and window.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let windows = shard.lock().unwrap_or_else(PoisonError::into_inner);
                windows.current.counters().len() + windows.previous.counters().len()
            })
            .sum()
    }

    /// The number of the window `now` falls in.
    fn window_number(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch);
        (since.as_nanos() / WINDOW.as_nanos()) as u64
    }
}

/// The requests to let pass before the next sample: uniform in `0..2 ×
/// SAMPLE_EVERY - 1`, so that one request in `SAMPLE_EVERY` is sampled on
/// average.
#[cold]
fn next_gap() -> u32 {
    GAPS.with(|state| {
        // xorshift64 (Marsaglia): enough to break any rhythm in the
        // requests, and never zero from a non-zero state.
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x % u64::from(2 * SAMPLE_EVERY - 1)) as u32
    })
}

// === impl Windows ===

impl Windows {
    fn new() -> Windows {
        Windows {
            number: 0,
            current: Sketch::new(CAPACITY),
            previous: Sketch::new(CAPACITY),
        }
    }

    /// Moves on to window `number`: the current window becomes the
    /// previous one if it is the one just before, else both are empty.
    fn roll(&mut self, number: u64) {
        if number <= self.number {
            return;
        }
        let fresh = Sketch::new(CAPACITY);
        if number == self.number + 1 {
            self.previous = std::mem::replace(&mut self.current, fresh);
        } else {
            self.previous = Sketch::new(CAPACITY);
            self.current = fresh;
        }
        self.number = number;
    }
}
