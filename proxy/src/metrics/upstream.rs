//! What the request path records of each instance (`upstream`): how its
//! attempts ended, how long they took, how many are waiting for its
//! answer now, and how many requests' keys it is the primary of.
//!
//! An [`InstanceAttempts`] is built once per instance of a ring (by the
//! forwarder's endpoints), with its histogram and gauge children resolved
//! then: an attempt costs atomic operations on them, no label lookup, lock
//! or allocation.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::{AttemptOutcome, ServiceMetrics, DURATION_BUCKETS};

/// `shardproxy_upstream_attempt_duration_seconds`.
pub const ATTEMPT_DURATION: &str = "shardproxy_upstream_attempt_duration_seconds";
/// `shardproxy_upstream_in_flight`.
pub const IN_FLIGHT: &str = "shardproxy_upstream_in_flight";
/// `shardproxy_instance_key_requests_total`.
pub const KEY_REQUESTS: &str = "shardproxy_instance_key_requests_total";

/// The per-instance families, registered once per registry.
#[derive(Clone, Debug)]
pub(super) struct Families {
    pub(super) duration: HistogramVec,
    pub(super) in_flight: IntGaugeVec,
    pub(super) key_requests: IntCounterVec,
}

/// One instance's attempt metrics, for the request path. Built by
/// [`ServiceMetrics::instance_attempts`], once per instance of a ring; two
/// built for one instance (a new ring) count into the same series.
#[derive(Debug)]
pub struct InstanceAttempts {
    service: ServiceMetrics,
    /// The `upstream` label value: the instance's `host:port`.
    instance: Box<str>,
    /// `shardproxy_upstream_attempts_total`, indexed by [`AttemptOutcome`]
    /// in declaration order. Each is resolved on its first use, so that an
    /// outcome that never happened has no series.
    outcomes: [OnceLock<IntCounter>; AttemptOutcome::ALL.len()],
    /// `shardproxy_upstream_attempt_duration_seconds`.
    duration: Histogram,
    /// `shardproxy_upstream_in_flight`.
    in_flight: IntGauge,
    /// `shardproxy_instance_key_requests_total`.
    key_requests: IntCounter,
}

/// An attempt under way: counted in `shardproxy_upstream_in_flight` until
/// dropped, so an attempt whose request is abandoned (the client went away)
/// leaves the gauge as well.
#[derive(Debug)]
#[must_use = "the attempt is in flight only while this is held"]
pub struct InFlight<'a> {
    gauge: &'a IntGauge,
}

// === impl Families ===

impl Families {
    /// Builds the families and registers them in `registry`.
    ///
    /// # Errors
    ///
    /// A [`prometheus::Error`] if the registry refuses one (a bug).
    pub(super) fn register(registry: &Registry) -> Result<Families, prometheus::Error> {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                ATTEMPT_DURATION,
                "Time from sending an attempt to an instance to its response head (or its failure), in seconds.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["service", "upstream"],
        )?;
        let in_flight = IntGaugeVec::new(
            Opts::new(
                IN_FLIGHT,
                "Attempts sent to an instance and waiting for its response head.",
            ),
            &["service", "upstream"],
        )?;
        let key_requests = IntCounterVec::new(
            Opts::new(
                KEY_REQUESTS,
                "Requests whose key's primary is the instance, whether or not it answered them.",
            ),
            &["service", "upstream"],
        )?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(key_requests.clone()))?;
        Ok(Families {
            duration,
            in_flight,
            key_requests,
        })
    }
}

// === impl InstanceAttempts ===

impl InstanceAttempts {
    /// Its attempts in flight now (in this process), for `load_bound`.
    #[inline]
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }

    /// The metrics of `instance` (`host:port`) of `service`, their
    /// histogram and gauge resolved now.
    pub(super) fn new(
        service: ServiceMetrics,
        families: &Families,
        instance: &str,
    ) -> InstanceAttempts {
        // `with_label_values` panics only on a wrong number of values: the
        // three families have the labels `service` and `upstream`.
        let labels = [service.name(), instance];
        let duration = families.duration.with_label_values(&labels);
        let in_flight = families.in_flight.with_label_values(&labels);
        let key_requests = families.key_requests.with_label_values(&labels);
        InstanceAttempts {
            service,
            instance: instance.into(),
            outcomes: Default::default(),
            duration,
            in_flight,
            key_requests,
        }
    }

    /// Counts a request whose key's primary is this instance (SPEC §11
    /// per-range load, summed per instance).
    #[inline]
    pub fn key_request(&self) {
        self.key_requests.inc();
    }

    /// Counts an attempt in flight until the guard is dropped.
    #[inline]
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight {
            gauge: &self.in_flight,
        }
    }

    /// Counts an attempt on this instance that ended with `outcome`
    /// after `elapsed`.
    #[inline]
    pub fn finish(&self, outcome: AttemptOutcome, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
        self.record(outcome);
    }

    /// Counts an attempt on this instance that ended with `outcome`.
    #[inline]
    pub fn record(&self, outcome: AttemptOutcome) {
        let Some(slot) = self.outcomes.get(outcome as usize) else {
            return;
        };
        let counter = match slot.get() {
            Some(counter) => counter,
            None => match self.service.attempt_counter(&self.instance, outcome) {
                Some(counter) => slot.get_or_init(|| counter),
                None => return,
            },
        };
        counter.inc();
    }
}

// === impl InFlight ===

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
