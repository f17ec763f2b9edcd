//! The retry budget: tower's [`TpsBudget`](tower::retry::budget::TpsBudget)
//! arithmetic, without its lock on the way of every request.
//!
//! Every request deposits and every retry withdraws. tower's budget locks a
//! mutex on each call to see whether its current one-second slot is over;
//! here that check is one atomic load, and the lock is only taken when a
//! slot is over (at most once a window, whatever the request rate). What is
//! counted, and when a withdrawal is allowed, is the same: the tests below
//! run both side by side on random sequences.

use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tower::retry::budget::Budget;

/// Slots the time-to-live is divided into, as in tower.
const SLOTS: u32 = 10;

/// Deposits made over the last `ttl` allow withdrawals, plus a reserve of
/// `min_per_sec` each second: tower's `TpsBudget` with a lock-free path
/// for calls within a slot.
#[derive(Debug)]
pub struct RetryBudget {
    /// The current slot and when it started; taken only to close a slot.
    generation: Mutex<Generation>,
    /// When the current slot ends, in nanoseconds since `origin`. Before
    /// then there is nothing to expire and no lock is taken.
    slot_ends: AtomicU64,
    /// The clock's zero for `slot_ends`.
    origin: Instant,
    reserve: isize,
    slots: Box<[AtomicIsize]>,
    window: Duration,
    /// Deposits minus withdrawals in the current slot.
    writer: AtomicIsize,
    deposit_amount: isize,
    withdraw_amount: isize,
}

#[derive(Debug)]
struct Generation {
    index: usize,
    time: Instant,
}

// === impl RetryBudget ===

impl RetryBudget {
    /// A budget over the last `ttl` (1 to 60 s) where each deposit allows
    /// `retry_percent` (0 to 1000) withdrawals, plus `min_per_sec` (below
    /// `i32::MAX`) withdrawals a second. Values out of those ranges, which
    /// tower's `TpsBudget::new` rejects with a panic, are clamped (the
    /// config allows none of them).
    pub fn new(ttl: Duration, min_per_sec: u32, retry_percent: f32) -> RetryBudget {
        RetryBudget::starting_at(ttl, min_per_sec, retry_percent, Instant::now())
    }

    /// [`RetryBudget::new`] with its first slot starting at `origin`.
    fn starting_at(
        ttl: Duration,
        min_per_sec: u32,
        retry_percent: f32,
        origin: Instant,
    ) -> RetryBudget {
        let ttl = ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let retry_percent = if retry_percent.is_nan() {
            0.0
        } else {
            retry_percent.clamp(0.0, 1000.0)
        };
        let min_per_sec = min_per_sec.min(i32::MAX as u32 - 1);
        // tower's arithmetic, including its float-to-integer truncation.
        let (deposit_amount, withdraw_amount) = if retry_percent == 0.0 {
            (0, 1)
        } else if retry_percent <= 1.0 {
            (1, (1.0 / retry_percent) as isize)
        } else {
            (1000, (1000.0 / retry_percent) as isize)
        };
        let reserve = (min_per_sec as isize)
            .saturating_mul(ttl.as_secs() as isize)
            .saturating_mul(withdraw_amount);
        let window = ttl / SLOTS;
        RetryBudget {
            generation: Mutex::new(Generation {
                index: 0,
                time: origin,
            }),
            slot_ends: AtomicU64::new(nanos(window)),
            origin,
            reserve,
            slots: (0..SLOTS).map(|_| AtomicIsize::new(0)).collect(),
            window,
            writer: AtomicIsize::new(0),
            deposit_amount,
            withdraw_amount,
        }
    }

    /// Closes the current slot if its window is over, zeroing the slots of
    /// any windows that passed without a call.
    fn expire(&self, now: Instant) {
        if nanos(now.saturating_duration_since(self.origin))
            < self.slot_ends.load(Ordering::Acquire)
        {
            return;
        }
        let mut generation = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Another caller may have closed it meanwhile.
        let mut diff = now.saturating_duration_since(generation.time);
        if diff < self.window {
            return;
        }
        let committed = self.writer.swap(0, Ordering::SeqCst);
        if let Some(slot) = self.slots.get(generation.index) {
            slot.store(committed, Ordering::SeqCst);
        }
        let mut index = (generation.index + 1) % self.slots.len();
        while diff > self.window {
            if let Some(slot) = self.slots.get(index) {
                slot.store(0, Ordering::SeqCst);
            }
            diff -= self.window;
            index = (index + 1) % self.slots.len();
        }
        generation.index = index;
        generation.time = now;
        let ends = now.saturating_duration_since(self.origin) + self.window;
        self.slot_ends.store(nanos(ends), Ordering::Release);
    }

    /// What may be withdrawn now.
    fn sum(&self) -> isize {
        let windowed = self
            .slots
            .iter()
            .map(|slot| slot.load(Ordering::SeqCst))
            .fold(0, isize::saturating_add);
        self.writer
            .load(Ordering::SeqCst)
            .saturating_add(windowed)
            .saturating_add(self.reserve)
    }

    /// A deposit at `now`.
    pub(super) fn deposit_at(&self, now: Instant) {
        self.expire(now);
        self.writer.fetch_add(self.deposit_amount, Ordering::SeqCst);
    }

    /// A withdrawal at `now`, if the budget allows it.
    fn withdraw_at(&self, now: Instant) -> bool {
        self.expire(now);
        if self.sum() >= self.withdraw_amount {
            self.writer
                .fetch_add(-self.withdraw_amount, Ordering::SeqCst);
            true
        } else {
            false
        }
    }
}

impl Budget for RetryBudget {
    fn deposit(&self) {
        self.deposit_at(Instant::now());
    }

    fn withdraw(&self) -> bool {
        self.withdraw_at(Instant::now())
    }
}

/// A duration in whole nanoseconds (584 years fit).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::retry::budget::TpsBudget;

    /// tower's `TpsBudget` (tower 0.5.3, `retry/budget/tps_budget.rs`) as
    /// written, with the clock passed in: the lock on every call, the
    /// expiry check under it. What this module's budget must equal.
    struct Reference {
        generation: Mutex<Generation>,
        reserve: isize,
        slots: Box<[AtomicIsize]>,
        window: Duration,
        writer: AtomicIsize,
        deposit_amount: isize,
        withdraw_amount: isize,
    }

    impl Reference {
        fn new(ttl: Duration, min_per_sec: u32, retry_percent: f32, origin: Instant) -> Self {
            let (deposit_amount, withdraw_amount) = if retry_percent == 0.0 {
                (0, 1)
            } else if retry_percent <= 1.0 {
                (1, (1.0 / retry_percent) as isize)
            } else {
                (1000, (1000.0 / retry_percent) as isize)
            };
            let reserve = (min_per_sec as isize)
                .saturating_mul(ttl.as_secs() as isize)
                .saturating_mul(withdraw_amount);
            Reference {
                generation: Mutex::new(Generation {
                    index: 0,
                    time: origin,
                }),
                reserve,
                slots: (0..10).map(|_| AtomicIsize::new(0)).collect(),
                window: ttl / 10,
                writer: AtomicIsize::new(0),
                deposit_amount,
                withdraw_amount,
            }
        }

        fn expire(&self, now: Instant) {
            let mut gen = self.generation.lock().unwrap();
            let diff = now.saturating_duration_since(gen.time);
            if diff < self.window {
                return;
            }
            let to_commit = self.writer.swap(0, Ordering::SeqCst);
            self.slots[gen.index].store(to_commit, Ordering::SeqCst);
            let mut diff = diff;
            let mut idx = (gen.index + 1) % self.slots.len();
            while diff > self.window {
                self.slots[idx].store(0, Ordering::SeqCst);
                diff -= self.window;
                idx = (idx + 1) % self.slots.len();
            }
            gen.index = idx;
            gen.time = now;
        }

        fn sum(&self) -> isize {
            let current = self.writer.load(Ordering::SeqCst);
            let windowed_sum: isize = self
                .slots
                .iter()
                .map(|slot| slot.load(Ordering::SeqCst))
                .fold(0, isize::saturating_add);
            current
                .saturating_add(windowed_sum)
                .saturating_add(self.reserve)
        }

        fn deposit(&self, now: Instant) {
            self.expire(now);
            self.writer.fetch_add(self.deposit_amount, Ordering::SeqCst);
        }

        fn withdraw(&self, now: Instant) -> bool {
            self.expire(now);
            if self.sum() >= self.withdraw_amount {
                self.writer
                    .fetch_add(-self.withdraw_amount, Ordering::SeqCst);
                true
            } else {
                false
            }
        }
    }

    /// A budget whose clock starts at `origin`, read as `origin + elapsed`.
    fn at(origin: Instant, elapsed_ms: u64) -> Instant {
        origin + Duration::from_millis(elapsed_ms)
    }

    // tower's own tests of `TpsBudget`, on this budget.

    #[test]
    fn empty() {
        let budget = RetryBudget::new(Duration::from_secs(1), 0, 1.0);
        assert!(!budget.withdraw());
    }

    #[test]
    fn leaky() {
        let t0 = Instant::now();
        let budget = RetryBudget::starting_at(Duration::from_secs(1), 0, 1.0, t0);
        budget.deposit_at(t0);
        assert!(!budget.withdraw_at(at(t0, 3000)));
    }

    #[test]
    fn slots() {
        let t0 = Instant::now();
        let budget = RetryBudget::starting_at(Duration::from_secs(1), 0, 0.5, t0);
        budget.deposit_at(t0);
        budget.deposit_at(t0);
        // 900 ms later the deposits are still valid.
        assert!(budget.withdraw_at(at(t0, 901)));
        // A blank slate.
        budget.deposit_at(at(t0, 2902));
        budget.deposit_at(at(t0, 3203));
        budget.deposit_at(at(t0, 4004));
        // The first deposit has expired; the second and third allow one.
        assert!(budget.withdraw_at(at(t0, 4004)));
    }

    #[test]
    fn reserve() {
        let budget = RetryBudget::new(Duration::from_secs(1), 5, 1.0);
        for _ in 0..5 {
            assert!(budget.withdraw());
        }
        assert!(!budget.withdraw());
    }

    /// Within one slot (no time passes that matters), the amounts are
    /// tower's own: the same deposits allow the same withdrawals as tower's
    /// `TpsBudget`, for several settings.
    #[test]
    fn amounts_are_towers() {
        let settings = [
            (Duration::from_secs(10), 10, 0.2),
            (Duration::from_secs(10), 0, 0.2),
            (Duration::from_secs(10), 0, 0.3),
            (Duration::from_secs(1), 3, 1.0),
            (Duration::from_secs(10), 1, 0.0),
            (Duration::from_secs(60), 0, 0.07),
        ];
        for (ttl, min_per_sec, percent) in settings {
            let ours = RetryBudget::new(ttl, min_per_sec, percent);
            let towers = TpsBudget::new(ttl, min_per_sec, percent);
            for round in 0..300 {
                ours.deposit();
                towers.deposit();
                for _ in 0..(round % 3) {
                    assert_eq!(
                        ours.withdraw(),
                        towers.withdraw(),
                        "{ttl:?} {min_per_sec} {percent}: round {round}"
                    );
                }
            }
        }
    }

    /// Fed the same random deposits, withdrawals and clock steps (from well
    /// within a slot to several windows), this budget and tower's
    /// algorithm answer every withdrawal alike.
    #[test]
    fn answers_as_towers_algorithm_does() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let settings = [
            (Duration::from_secs(10), 10, 0.2),
            (Duration::from_secs(10), 0, 0.2),
            (Duration::from_secs(1), 0, 0.5),
            (Duration::from_secs(3), 2, 1.0),
            (Duration::from_secs(10), 1, 0.0),
            (Duration::from_secs(60), 0, 0.07),
        ];
        for (ttl, min_per_sec, percent) in settings {
            let t0 = Instant::now();
            let ours = RetryBudget::starting_at(ttl, min_per_sec, percent, t0);
            let reference = Reference::new(ttl, min_per_sec, percent, t0);
            let (mut now, mut allowed, mut refused) = (t0, 0, 0);
            for step in 0..50_000 {
                match next(100) {
                    0..=59 => {
                        ours.deposit_at(now);
                        reference.deposit(now);
                    }
                    60..=89 => {
                        let answer = ours.withdraw_at(now);
                        assert_eq!(
                            answer,
                            reference.withdraw(now),
                            "{ttl:?} {min_per_sec} {percent}: step {step}"
                        );
                        if answer {
                            allowed += 1;
                        } else {
                            refused += 1;
                        }
                    }
                    90..=98 => now += Duration::from_micros(next(250_000)),
                    _ => now += Duration::from_micros(next(ttl.as_micros() as u64 * 2)),
                }
            }
            assert!(
                allowed > 0 && refused > 0,
                "{ttl:?} {min_per_sec} {percent}: {allowed} allowed, {refused} refused"
            );
        }
    }
}
