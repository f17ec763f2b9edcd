//! The access log a test's proxy writes: a file of its own in the system's
//! temporary directory, read back as JSON lines.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// An access log file, removed when dropped.
pub struct AccessLogFile {
    /// Where it is.
    pub path: PathBuf,
}

impl AccessLogFile {
    /// A new, not yet existing file for a test's access log.
    pub fn new(name: &str) -> AccessLogFile {
        static MADE: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "shardproxy-access-{name}-{}-{}.log",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        AccessLogFile { path }
    }

    /// The `[log]` table that writes JSON lines to this file.
    pub fn config(&self, level: &str) -> String {
        format!(
            "[log]\nlevel = \"{level}\"\nformat = \"json\"\naccess_log = true\naccess_log_file = \"{}\"",
            self.path.display()
        )
    }

    /// The lines written so far, each parsed.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"))
            })
            .collect()
    }

    /// The lines, once there are `count` of them.
    pub async fn wait_for(&self, count: usize) -> Vec<serde_json::Value> {
        super::wait_until(&format!("{count} access log lines"), || {
            let enough = self.lines().len() >= count;
            async move { enough }
        })
        .await;
        self.lines()
    }
}

/// Every key SPEC §9.2 asks of an access log line.
pub const SPEC_KEYS: [&str; 12] = [
    "time",
    "request_id",
    "client",
    "method",
    "host",
    "path",
    "status",
    "bytes",
    "duration_ms",
    "service",
    "cache",
    "attempts",
];

/// Checks that `line` has every key of [`SPEC_KEYS`].
pub fn assert_every_key(line: &serde_json::Value) {
    for key in SPEC_KEYS {
        assert!(line.get(key).is_some(), "no {key}: {line}");
    }
}

impl Drop for AccessLogFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
