//! The binary's heap: jemalloc, and the upkeep that gives freed memory back.
//!
//! Why jemalloc rather than glibc's malloc: an idle keep-alive connection
//! keeps a few small allocations (its task, its activity, its socket's
//! registration) while its large buffers are freed (`server::park`). glibc
//! puts them side by side in one heap, so each connection's few live bytes
//! kept about two pages of freed buffers resident: 11.5 KB per idle
//! connection, of which about 4 KB live. jemalloc keeps each size class in
//! pages of its own, so the freed buffers leave whole pages free, which it
//! gives back. Measured with `loadtest/idle_clients.py` (10,000 parked
//! connections, `loadtest/results/idle-connections.md`): 5.8 KB per idle
//! connection, and back to 18.7 MB resident after they closed; it also runs
//! fewer instructions per request (-0.9% pass-through, -3.3% cache hits,
//! medians of 3 runs of `loadtest/ir-per-request.sh`). mimalloc, tried the
//! same way, kept 48 to 100 MB resident after the clients closed.
//!
//! How freed memory goes back: jemalloc purges the pages a size class no
//! longer uses once they have been unused for [`MALLOC_CONF`]'s
//! `dirty_decay_ms`, with `MADV_DONTNEED` at once (`muzzy_decay_ms:0`: not
//! `MADV_FREE`, whose pages stay in the resident set until the kernel wants
//! them). It does so only when the allocator is called, or from a thread of
//! its own (`background_thread`), which would make a `workers = 1` proxy
//! multi-threaded and cost each blocking syscall glibc's cancellation-point
//! handling (+236 instructions per request, measured). So [`upkeep`] asks
//! every [`PERIOD`], on the proxy's main runtime: after a burst of
//! connections has closed and the proxy is quiet, nothing else would.
//!
//! Linux only, as the rest of the deployment (`deploy/`); elsewhere the
//! system's allocator and no upkeep.

/// jemalloc's options, read before `main`: freed pages are given back after
/// a second unused (the default, 10 s, kept a burst's memory resident that
/// much longer), and with `MADV_DONTNEED`. A compile-time setting
/// (jemalloc's `malloc_conf` symbol, with the crate's `_rjem_` prefix); the
/// `_RJEM_MALLOC_CONF` environment variable can still change it at start.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: &[u8; 37] = b"dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[cfg(target_os = "linux")]
#[global_allocator]
static HEAP: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How often the upkeep has jemalloc purge what has decayed: as often as
/// the decay time, so that memory comes back within two seconds of a
/// burst's end. Each call walks the arenas' decay state: microseconds.
#[cfg(target_os = "linux")]
const PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// The purging work and how often to do it (Linux); elsewhere, none.
pub fn upkeep() -> Option<shardproxy::cli::Upkeep> {
    #[cfg(target_os = "linux")]
    {
        Some(shardproxy::cli::Upkeep {
            every: PERIOD,
            work: Box::new(|| {
                if let Err(errno) = purge_decayed() {
                    tracing::debug!(errno, "jemalloc did not purge (arena.4096.decay)");
                }
            }),
        })
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Has every arena purge the pages unused for longer than the decay time
/// (`arena.<MALLCTL_ARENAS_ALL>.decay`, 4096 in jemalloc 5). `Err` holds
/// jemalloc's error number.
#[cfg(target_os = "linux")]
fn purge_decayed() -> Result<(), std::ffi::c_int> {
    const ALL_ARENAS_DECAY: &[u8] = b"arena.4096.decay\0";
    // SAFETY: the name is NUL-terminated, and this command neither reads
    // nor writes a value, so jemalloc requires both value pointers, the
    // length pointer and the length to be null and zero, as they are.
    #[allow(unsafe_code)]
    let failed = unsafe {
        tikv_jemalloc_sys::mallctl(
            ALL_ARENAS_DECAY.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    match failed {
        0 => Ok(()),
        errno => Err(errno),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// jemalloc's value of the option `name` (NUL-terminated), one of
    /// type `ssize_t`.
    fn signed_option(name: &[u8]) -> Option<isize> {
        let mut value: isize = 0;
        let mut size = std::mem::size_of::<isize>();
        // SAFETY: the name is NUL-terminated; `value` and `size` are valid
        // for writes, and `size` is the size of `value`, which jemalloc
        // checks against the option's type before it writes.
        #[allow(unsafe_code)]
        let failed = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr().cast(),
                std::ptr::addr_of_mut!(value).cast(),
                &mut size,
                std::ptr::null_mut(),
                0,
            )
        };
        (failed == 0).then_some(value)
    }

    #[test]
    fn jemalloc_reads_the_options() {
        // The symbol's name is right, or these would be jemalloc's
        // defaults (10,000 and 0).
        assert_eq!(signed_option(b"opt.dirty_decay_ms\0"), Some(1000));
        assert_eq!(signed_option(b"opt.muzzy_decay_ms\0"), Some(0));
    }

    #[test]
    fn jemalloc_knows_the_purge_command() {
        assert_eq!(super::purge_decayed(), Ok(()));
    }
}
