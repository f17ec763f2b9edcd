//! The metrics of ring transitions and replica writes (SPEC §5): reads that
//! a replaced ring answered, writes to each replica, write quorums, and the
//! replica writes still finishing after their client got its answer; and
//! the reads a `404` sent down the rest of a preference list, with the
//! repairs they sent back (SPEC §9.4).
//!
//! Every child is resolved when a service's metrics are built, so recording
//! is one atomic operation.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// `shardproxy_transition_reads_total`.
pub const TRANSITION_READS: &str = "shardproxy_transition_reads_total";
/// `shardproxy_replica_writes_total`.
pub const REPLICA_WRITES: &str = "shardproxy_replica_writes_total";
/// `shardproxy_write_quorum_total`.
pub const WRITE_QUORUM: &str = "shardproxy_write_quorum_total";
/// `shardproxy_background_writes`.
pub const BACKGROUND_WRITES: &str = "shardproxy_background_writes";
/// `shardproxy_read_fallbacks_total`.
pub const READ_FALLBACKS: &str = "shardproxy_read_fallbacks_total";
/// `shardproxy_read_repairs_total`.
pub const READ_REPAIRS: &str = "shardproxy_read_repairs_total";

/// The metric families, registered once per registry.
#[derive(Clone, Debug)]
pub(super) struct Families {
    transition_reads: IntCounterVec,
    replica_writes: IntCounterVec,
    write_quorum: IntCounterVec,
    background_writes: IntGaugeVec,
    read_fallbacks: IntCounterVec,
    read_repairs: IntCounterVec,
}

/// One service's children of [`Families`].
#[derive(Clone, Debug)]
pub struct ReplicationMetrics {
    /// `transition_reads{result="found"}`.
    found: IntCounter,
    /// `transition_reads{result="not_found"}`.
    not_found: IntCounter,
    /// `replica_writes{result="ok"}`.
    write_ok: IntCounter,
    /// `replica_writes{result="failed"}`.
    write_failed: IntCounter,
    /// `replica_writes{result="abandoned"}`.
    write_abandoned: IntCounter,
    /// `write_quorum{result="reached"}`.
    quorum_reached: IntCounter,
    /// `write_quorum{result="failed"}`.
    quorum_failed: IntCounter,
    background: IntGauge,
    /// `read_fallbacks{result="found"}`.
    fallback_found: IntCounter,
    /// `read_fallbacks{result="not_found"}`.
    fallback_not_found: IntCounter,
    /// `read_repairs{result}`, in [`ReadRepair`] order.
    repairs: [IntCounter; 4],
}

/// How the repair of one instance ended, for
/// `shardproxy_read_repairs_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadRepair {
    /// The instance stored the object (`2xx`).
    Ok,
    /// The instance answered `412`: it holds an object now, which the
    /// repair must not overwrite.
    Exists,
    /// Another answer, or none.
    Failed,
    /// Not sent: the object was not a `200` to a GET with a
    /// `Content-Length` of at most `max_body` and no `Content-Encoding`, or
    /// the service's background writes were at their limit.
    Skipped,
}

impl ReadRepair {
    const ALL: [ReadRepair; 4] = [
        ReadRepair::Ok,
        ReadRepair::Exists,
        ReadRepair::Failed,
        ReadRepair::Skipped,
    ];

    fn label(self) -> &'static str {
        match self {
            ReadRepair::Ok => "ok",
            ReadRepair::Exists => "exists",
            ReadRepair::Failed => "failed",
            ReadRepair::Skipped => "skipped",
        }
    }
}

/// How a replica write ended, for `shardproxy_replica_writes_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaWrite {
    /// The replica answered `2xx`.
    Ok,
    /// Another answer, or none.
    Failed,
    /// Still in flight after the answer when the service's background
    /// writes were at their limit: stopped, its outcome unknown.
    Abandoned,
}

// === impl Families ===

impl Families {
    /// Builds the families and registers them in `registry`.
    pub(super) fn register(registry: &Registry) -> Result<Families, prometheus::Error> {
        let families = Families {
            transition_reads: IntCounterVec::new(
                Opts::new(
                    TRANSITION_READS,
                    "GET/HEAD answered 404 on a new ring and tried on the replaced one, by whether it answered 2xx/3xx.",
                ),
                &["service", "result"],
            )?,
            replica_writes: IntCounterVec::new(
                Opts::new(
                    REPLICA_WRITES,
                    "Writes to one replica with writes = \"all\", by how they ended.",
                ),
                &["service", "result"],
            )?,
            write_quorum: IntCounterVec::new(
                Opts::new(
                    WRITE_QUORUM,
                    "Writes with writes = \"all\", by whether write_quorum replicas answered 2xx.",
                ),
                &["service", "result"],
            )?,
            background_writes: IntGaugeVec::new(
                Opts::new(
                    BACKGROUND_WRITES,
                    "Replica writes still in flight after their client got its answer.",
                ),
                &["service"],
            )?,
            read_fallbacks: IntCounterVec::new(
                Opts::new(
                    READ_FALLBACKS,
                    "GET/HEAD answered 404 and tried on the rest of the preference list (read_fallback_404), by whether it answered 2xx/3xx.",
                ),
                &["service", "result"],
            )?,
            read_repairs: IntCounterVec::new(
                Opts::new(
                    READ_REPAIRS,
                    "Objects a read fallback found, written back to one instance that answered 404 (read_repair), by how it ended.",
                ),
                &["service", "result"],
            )?,
        };
        registry.register(Box::new(families.transition_reads.clone()))?;
        registry.register(Box::new(families.replica_writes.clone()))?;
        registry.register(Box::new(families.write_quorum.clone()))?;
        registry.register(Box::new(families.background_writes.clone()))?;
        registry.register(Box::new(families.read_fallbacks.clone()))?;
        registry.register(Box::new(families.read_repairs.clone()))?;
        Ok(families)
    }

    /// The children of `service`.
    pub(super) fn service(&self, service: &str) -> ReplicationMetrics {
        // `with_label_values` panics only when the number of values differs
        // from the family's label names; each call matches `register`.
        let read = |result| self.transition_reads.with_label_values(&[service, result]);
        let write = |result| self.replica_writes.with_label_values(&[service, result]);
        let quorum = |result| self.write_quorum.with_label_values(&[service, result]);
        let fallback = |result| self.read_fallbacks.with_label_values(&[service, result]);
        let repair = |result: ReadRepair| {
            self.read_repairs
                .with_label_values(&[service, result.label()])
        };
        ReplicationMetrics {
            found: read("found"),
            not_found: read("not_found"),
            write_ok: write("ok"),
            write_failed: write("failed"),
            write_abandoned: write("abandoned"),
            quorum_reached: quorum("reached"),
            quorum_failed: quorum("failed"),
            background: self.background_writes.with_label_values(&[service]),
            fallback_found: fallback("found"),
            fallback_not_found: fallback("not_found"),
            repairs: ReadRepair::ALL.map(repair),
        }
    }
}

// === impl ReplicationMetrics ===

impl ReplicationMetrics {
    /// Counts a transition read: `found` when the replaced ring answered
    /// `2xx` or `3xx`.
    pub fn transition_read(&self, found: bool) {
        if found {
            self.found.inc();
        } else {
            self.not_found.inc();
        }
    }

    /// Counts a write to one replica.
    pub fn replica_write(&self, outcome: ReplicaWrite) {
        match outcome {
            ReplicaWrite::Ok => self.write_ok.inc(),
            ReplicaWrite::Failed => self.write_failed.inc(),
            ReplicaWrite::Abandoned => self.write_abandoned.inc(),
        }
    }

    /// Counts a write whose quorum was `reached` or not.
    pub fn write_quorum(&self, reached: bool) {
        if reached {
            self.quorum_reached.inc();
        } else {
            self.quorum_failed.inc();
        }
    }

    /// A replica write went on in the background.
    pub fn background_started(&self) {
        self.background.inc();
    }

    /// A background replica write ended.
    pub fn background_ended(&self) {
        self.background.dec();
    }

    /// Counts a read fallback: `found` when an instance after the one that
    /// answered `404` answered `2xx` or `3xx`.
    pub fn read_fallback(&self, found: bool) {
        if found {
            self.fallback_found.inc();
        } else {
            self.fallback_not_found.inc();
        }
    }

    /// Counts the repair of one instance.
    pub fn read_repair(&self, outcome: ReadRepair) {
        self.repairs[outcome as usize].inc();
    }
}
