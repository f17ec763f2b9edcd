//! The process metrics (`shardproxy_process_*`), as the Prometheus process
//! collector defines them, with CPU time in fractions of a second.
//!
//! The prometheus crate's collector divides the clock ticks of
//! `/proc/self/stat` by the ticks per second in integers, so its
//! `process_cpu_seconds_total` moves in whole seconds: a proxy that spends
//! 0.2 ms per request shows a rate of 0 for a minute, then a step. This
//! collector keeps the crate's families (their names, help and the other
//! six metrics) and sets the CPU counter to the same ticks divided in
//! floating point: 10 ms resolution.
//!
//! `getrusage` would give microseconds, but calling it needs `unsafe`,
//! which the crate forbids; `/proc/self/schedstat` has nanoseconds, but
//! only of the main thread, not of the whole process.

use prometheus::core::{Collector, Desc};
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::{Counter, MetricFamily};

/// The CPU counter's name, with the prefix the collector is given.
const CPU_SECONDS: &str = "shardproxy_process_cpu_seconds_total";

/// Clock ticks per second in `/proc`'s times. The kernel reports those in
/// `USER_HZ`, which is 100 on every architecture Linux runs on today,
/// whatever its internal `HZ` (`sysconf(_SC_CLK_TCK)` answers it, but
/// calling it takes `unsafe`).
const TICKS_PER_SECOND: f64 = 100.0;

/// The process collector of the prometheus crate, its CPU counter made
/// fractional.
pub(super) struct ProcessMetrics {
    inner: ProcessCollector,
}

// === impl ProcessMetrics ===

impl ProcessMetrics {
    /// The collector for this process, its names prefixed `shardproxy_`.
    pub(super) fn new() -> ProcessMetrics {
        ProcessMetrics {
            inner: ProcessCollector::new(process_id(), "shardproxy"),
        }
    }
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.inner.collect();
        let Some(seconds) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(cpu_seconds)
        else {
            // The crate's whole seconds stay: better than no CPU time.
            return families;
        };
        for family in families.iter_mut().filter(|f| f.name() == CPU_SECONDS) {
            for metric in family.mut_metric() {
                let mut counter = Counter::default();
                counter.set_value(seconds);
                metric.set_counter(counter);
            }
        }
        families
    }
}

/// User plus system CPU seconds of all the threads of the process whose
/// `/proc/<pid>/stat` is `stat`; `None` if it cannot be read as one.
pub(super) fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces and
    // parentheses itself: the fields that follow start after the last ')'.
    // From there, field 3 (state) is the first; utime and stime are fields
    // 14 and 15.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // Exact in an f64 up to 2^53 ticks: some 2.8 million years.
    Some(utime.saturating_add(stime) as f64 / TICKS_PER_SECOND)
}

/// This process's id, as the process collector wants it.
fn process_id() -> prometheus::process_collector::pid_t {
    // Linux pids fit in an `i32` (`pid_max` is at most 2^22).
    prometheus::process_collector::pid_t::try_from(std::process::id()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_are_the_ticks_of_utime_and_stime_in_fractions() {
        // A real line's shape, with a command name that holds ") (".
        let stat = "4242 (shard) (proxy) S 1 4242 4242 0 -1 4194560 1020 0 0 0 \
                    123 45 0 0 20 0 9 0 777 123456789 2048 18446744073709551615";
        assert_eq!(cpu_seconds(stat), Some(1.68));
        assert_eq!(cpu_seconds("4242 (shard) S 1 2"), None);
        assert_eq!(cpu_seconds("no parenthesis"), None);
    }

    #[test]
    fn this_process_has_its_cpu_time_read() {
        // Whatever it is, the test process's own stat parses.
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_seconds(&stat).is_some(), "{stat}");
        let families = ProcessMetrics::new().collect();
        let cpu = families
            .iter()
            .find(|family| family.name() == CPU_SECONDS)
            .expect("the CPU family is collected");
        assert_eq!(cpu.get_metric().len(), 1);
    }
}
