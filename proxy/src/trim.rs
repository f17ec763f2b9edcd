//! Giving freed heap memory back to the OS after bursts (glibc only).
//!
//! glibc's `free` returns memory to the kernel only from the top of a heap
//! (and whole `mmap`ed chunks). After a burst of client connections closes,
//! their buffers are free but scattered through the heap, so the process
//! keeps them resident: 10,000 idle keep-alive connections left the proxy at
//! 267 MB after they closed (it started at 10 MB), and a second burst took
//! it to 337 MB (loadtest/results/idle-connections.md). `malloc_trim(0)`
//! hands the free pages in the middle of each heap back with
//! `MADV_DONTNEED` and took that process to 14.5 MB.
//!
//! [`upkeep`] is the work that does this when it is worth it, which the
//! serving commands run on their main runtime. Every [`PERIOD`] it reads
//! the process's resident set (`/proc/self/statm`, no allocator lock); when
//! that is at least [`MIN_FREE`], it reads glibc's statistics (`mallinfo2`)
//! and calls `malloc_trim(0)` when all of
//!
//! - the heap holds at least [`MIN_FREE`] of free memory (`fordblks`: free
//!   chunks of every arena, resident or not);
//! - the memory in use (`uordblks`) did not grow by more than [`GROWING`]
//!   over the last period: while a burst is still taking memory it reuses
//!   the free chunks, and a trim would give back pages about to be faulted
//!   in again;
//! - since the last trim (or since start) the resident set grew by at least
//!   [`MIN_FREE`], or the free memory did.
//!
//! The last condition is needed because a trim does not take its pages out
//! of the free lists: `fordblks` stays as large after a trim as before, and
//! a trim repeated every period would only walk the same chunks again. Free
//! memory that is resident again must have come from new growth: either the
//! process faulted pages back in (the resident set grew: new connections
//! reused the trimmed chunks, then freed them) or more was freed since (the
//! free memory grew: the rest of a burst closed after a trim in its middle).
//!
//! Cost: `mallinfo2` and `malloc_trim` lock each arena in turn and walk its
//! free lists, so a request that allocates on that arena waits for them.
//! Under steady load the conditions do not hold (the heap's free memory is
//! a few MiB at most and the resident set is flat), so what runs is at most
//! one `mallinfo2` a period and no trim: under loadtest/instructions.sh the
//! upkeep's own work was about 24,000 instructions in 10 s (2-3 per
//! request). After a burst of 10,000 connections closed, a trim took
//! 15-72 ms (mostly `madvise` calls, under the lock), once or twice; the
//! pages it gives back are faulted in again if a later burst needs them
//! (8,192 page faults per 32 MiB, a few milliseconds), which is why small
//! amounts are left alone.
//!
//! It runs on the proxy's main runtime, not on a thread of its own: with
//! `workers = 1` the proxy is otherwise single-threaded, and once a second
//! thread exists glibc leaves its single-thread fast paths (each blocking
//! syscall becomes a cancellation point, malloc takes its arena lock on a
//! cache miss). As a thread, it cost 43,550 instructions per request
//! against 43,325 without (+0.5%; medians of 3 and of 6 runs of
//! loadtest/ir-per-request.sh, each set within 0.25%), nearly all of it in
//! those paths. A trim then pauses that runtime as long as it takes, which
//! only happens once a burst has ended.
//!
//! Only built for Linux with glibc (`target_env = "gnu"`); elsewhere
//! [`upkeep`] is `None`. `mallinfo2` is from glibc 2.33; the binary
//! already needs 2.34.

/// How often the upkeep looks. Short enough that memory comes back within
/// seconds of a burst's end (idle_clients.py's `--settle` must be longer to
/// see it), long enough that the checks cost nothing measurable: one read
/// of a small /proc file and one `mallinfo2` (microseconds while the free
/// lists are short).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

/// Free heap memory below this is left to glibc (and the same growth is
/// asked for since the last trim). 32 MiB is about 1,300 idle connections'
/// worth (26 KB each): small next to a burst that matters (10,000
/// connections left 257 MB), large next to the free memory of steady
/// traffic (a few MiB of buffers freed and reused between requests), and
/// about three times the proxy's whole resident set at start, so a trim
/// happens only when it takes the process back by a lot.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MIN_FREE: usize = 32 << 20;

/// Growth of the memory in use over one period above which a burst is taken
/// to be still coming in, and the trim waits: 4 MiB in 2 s is about 150 new
/// idle connections a second, more than steady traffic's memory moves
/// between two looks (its buffers are freed and reused within a request).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const GROWING: usize = 4 << 20;

/// The trimming work and how often to do it (glibc); elsewhere, none.
pub fn upkeep() -> Option<shardproxy::cli::Upkeep> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut look = glibc::Look::new();
        Some(shardproxy::cli::Upkeep {
            every: PERIOD,
            work: Box::new(move || look.now()),
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use super::{GROWING, MIN_FREE};
    use std::time::Instant;

    /// One look at the process's memory, in bytes.
    #[derive(Clone, Copy)]
    pub(super) struct Memory {
        /// The resident set (/proc/self/statm).
        rss: usize,
        /// Free in glibc's heaps, over all arenas (`fordblks`).
        free: usize,
        /// In use in glibc's heaps (`uordblks`).
        used: usize,
    }

    /// What is carried from one look to the next: the memory in use at the
    /// last look (none before the first), and the resident set and the free
    /// memory right after the last trim (zero before the first, so that only
    /// [`MIN_FREE`] of free memory is asked for then).
    #[derive(Default)]
    pub(super) struct Trimmer {
        used_before: Option<usize>,
        rss_after: usize,
        free_after: usize,
    }

    impl Trimmer {
        /// Whether to trim now (see the module's doc).
        pub(super) fn due(&mut self, now: Memory) -> bool {
            let growing = self
                .used_before
                .is_some_and(|before| now.used > before.saturating_add(GROWING));
            self.used_before = Some(now.used);
            now.free >= MIN_FREE
                && !growing
                && (now.rss >= self.rss_after.saturating_add(MIN_FREE)
                    || now.free >= self.free_after.saturating_add(MIN_FREE))
        }

        /// Records the memory right after a trim.
        pub(super) fn trimmed(&mut self, now: Memory) {
            self.used_before = Some(now.used);
            self.rss_after = now.rss;
            self.free_after = now.free;
        }
    }

    /// What the upkeep carries from one look to the next.
    pub(super) struct Look {
        page: usize,
        trimmer: Trimmer,
    }

    impl Look {
        pub(super) fn new() -> Look {
            Look {
                page: page_size(),
                trimmer: Trimmer::default(),
            }
        }

        /// Looks at the memory, and trims when it is due.
        pub(super) fn now(&mut self) {
            let page = self.page;
            let rss = || resident_pages().map(|pages| pages.saturating_mul(page));
            let Some(rss_before) = rss() else { return };
            if rss_before < MIN_FREE {
                // Less resident than the least worth trimming: no need to
                // ask the allocator (and lock its arenas).
                return;
            }
            let started = Instant::now();
            let before = heap(rss_before);
            if !self.trimmer.due(before) {
                return;
            }
            // SAFETY: `malloc_trim` takes no pointers and has no
            // preconditions; it locks each arena while it works, so other
            // threads may allocate and free meanwhile.
            #[allow(unsafe_code)]
            let released = unsafe { libc::malloc_trim(0) } == 1;
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let after = heap(rss().unwrap_or(rss_before));
            self.trimmer.trimmed(after);
            tracing::debug!(
                rss_before = before.rss,
                rss_after = after.rss,
                heap_free = before.free,
                heap_used = before.used,
                released,
                micros,
                "returned free heap memory to the OS (malloc_trim)"
            );
        }
    }

    /// The heap's statistics, with the resident set `rss` read before.
    fn heap(rss: usize) -> Memory {
        // SAFETY: `mallinfo2` takes no arguments and returns a struct of
        // integers by value; it locks each arena while it reads it.
        #[allow(unsafe_code)]
        let info = unsafe { libc::mallinfo2() };
        Memory {
            rss,
            free: info.fordblks,
            used: info.uordblks,
        }
    }

    /// The resident set in pages: the second field of /proc/self/statm.
    fn resident_pages() -> Option<usize> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        statm.split_ascii_whitespace().nth(1)?.parse().ok()
    }

    fn page_size() -> usize {
        // SAFETY: `sysconf` with a valid name has no preconditions.
        #[allow(unsafe_code)]
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size)
            .ok()
            .filter(|&size| size > 0)
            .unwrap_or(4096)
    }

    #[cfg(test)]
    mod tests {
        use super::{Memory, Trimmer, GROWING, MIN_FREE};

        const MIB: usize = 1 << 20;

        fn memory(rss: usize, free: usize, used: usize) -> Memory {
            Memory { rss, free, used }
        }

        #[test]
        fn small_free_memory_is_left_alone() {
            let mut trimmer = Trimmer::default();
            assert!(!trimmer.due(memory(500 * MIB, MIN_FREE - 1, 0)));
            assert!(trimmer.due(memory(500 * MIB, MIN_FREE, 0)));
        }

        #[test]
        fn a_trim_is_not_repeated_without_growth() {
            let mut trimmer = Trimmer::default();
            assert!(trimmer.due(memory(267 * MIB, 250 * MIB, 5 * MIB)));
            // The trimmed chunks stay in the free lists.
            trimmer.trimmed(memory(15 * MIB, 250 * MIB, 5 * MIB));
            assert!(!trimmer.due(memory(15 * MIB, 250 * MIB, 5 * MIB)));
            assert!(!trimmer.due(memory(40 * MIB, 270 * MIB, 5 * MIB)));
        }

        #[test]
        fn not_while_a_burst_takes_memory() {
            let mut trimmer = Trimmer::default();
            trimmer.trimmed(memory(15 * MIB, 250 * MIB, 5 * MIB));
            // New connections reuse the trimmed chunks: resident again.
            let growth = GROWING + 1;
            assert!(!trimmer.due(memory(60 * MIB, 205 * MIB, 5 * MIB + growth)));
            assert!(!trimmer.due(memory(100 * MIB, 165 * MIB, 5 * MIB + 2 * growth)));
            // They are idle: their memory is in use, the rest still free.
            assert!(trimmer.due(memory(100 * MIB, 165 * MIB, 5 * MIB + 2 * growth)));
        }

        #[test]
        fn growth_since_the_trim_makes_it_due_again() {
            let mut trimmer = Trimmer::default();
            trimmer.trimmed(memory(15 * MIB, 250 * MIB, 5 * MIB));
            // A new burst faulted the pages in again and freed them.
            assert!(trimmer.due(memory(15 * MIB + MIN_FREE, 250 * MIB, 5 * MIB)));
            trimmer.trimmed(memory(15 * MIB, 250 * MIB, 5 * MIB));
            // The rest of a burst closed after a trim in its middle.
            assert!(trimmer.due(memory(15 * MIB, 250 * MIB + MIN_FREE, 5 * MIB)));
        }
    }
}
