//! Replica writes (SPEC §5): with `writes = "all"`, a PUT, POST, PATCH or
//! DELETE goes to every instance of its key's preference list in parallel.
//! Its body is buffered first (up to `max_body`; larger gets `413`). The
//! client gets the answer of the first instance to answer `2xx` once
//! `write_quorum` instances (by default a majority of the list) have; or
//! `502` naming each failure as soon as the quorum can no longer be
//! reached; or `502` at once when the quorum is larger than the list.
//!
//! Each replica gets one attempt, under the per-try timeout, recorded in its
//! attempt metrics and health like any other. Ejected instances are written
//! to as well: a write to every replica is the point, an instance that is
//! back up would otherwise miss it silently, and one that is still down
//! fails fast (a connect error) and is named in a `502`.
//!
//! Every replica write runs in a task of its own, so it finishes even when
//! the client has its answer (or has gone). Those still in flight then
//! become background writes, at most [`BACKGROUND_LIMIT`] per service; past
//! that they are stopped, counted as `abandoned` and logged. Every failure
//! is counted and logged with the key's hash and the instance.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use shardproxy_ring::{InstanceName, Ring, Token};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::attempt;
use super::background::BACKGROUND_LIMIT;
use super::endpoint::Endpoints;
use super::exchange::Exchange;
use super::request::{to_client, upstream_request};
use super::upstream::Upstream;
use crate::body::Body;
use crate::config::Writes;
use crate::discovery::{Snapshot, Table};
use crate::error::{AttemptError, AttemptFailure, ProxyError, QuorumError};
use crate::health::Health;
use crate::limits;
use crate::metrics::replication::ReplicaWrite;
use crate::metrics::ServiceMetrics;
use crate::pool::ResponseBody;

/// A write to go to every replica of its key.
pub(super) struct Replicas<'a> {
    upstream: &'a Upstream,
    ring: &'a Ring,
    endpoints: &'a Arc<Endpoints>,
    position: Token,
}

/// What every replica write of one request shares.
struct Shared {
    health: Arc<Health>,
    retry_on: Vec<u16>,
    endpoints: Arc<Endpoints>,
    metrics: ServiceMetrics,
    service: String,
    position: Token,
    try_timeout: Duration,
}

/// One replica's outcome, sent to the request.
struct Reply {
    /// The replica.
    instance: InstanceName,
    /// A `2xx` answer, or why there was none.
    result: Result<Response<ResponseBody>, AttemptFailure>,
}

/// The replica writes of one request still running; what is left of them
/// when the request is done (answered, or dropped with its client) goes to
/// the background.
struct InFlight<'a> {
    service: &'a str,
    position: Token,
    metrics: &'a ServiceMetrics,
    /// The service's background permits.
    permits: &'a Arc<Semaphore>,
    /// Each replica write, in the order started.
    tasks: Vec<(InstanceName, JoinHandle<()>)>,
}

impl<'a> Replicas<'a> {
    /// The replicas of a request that goes to all of them: a PUT, POST,
    /// PATCH or DELETE of a `writes = "all"` service whose table is a ring.
    pub(super) fn for_request(
        upstream: &'a Upstream,
        snapshot: &'a Snapshot,
        endpoints: &'a Arc<Endpoints>,
        method: &Method,
        position: Token,
    ) -> Option<Replicas<'a>> {
        let write = matches!(
            *method,
            Method::PUT | Method::POST | Method::PATCH | Method::DELETE
        );
        if upstream.config.writes != Writes::All || !write {
            return None;
        }
        let Table::Ring(ring) = &snapshot.table else {
            return None;
        };
        Some(Replicas {
            upstream,
            ring,
            endpoints,
            position,
        })
    }

    /// Buffers the body and writes it to every replica; answers as the
    /// module documentation says.
    pub(super) async fn write(
        self,
        parts: &mut Parts,
        path: &PathAndQuery,
        body: Option<Incoming>,
        route_max_body: Option<u64>,
        exchange: &mut Exchange,
    ) -> Result<Response<Body>, ProxyError> {
        let upstream = self.upstream;
        let config = &upstream.config;
        let metrics = upstream.metrics.replication();
        let limit = route_max_body.map_or(config.max_body, |route| route.min(config.max_body));
        let body =
            limits::body_within(config.deadline, buffer(body, limit, config.body_timeout)).await?;
        let list = self.ring.preference_list(self.position).indexes();
        let needed = config
            .write_quorum
            .map_or(list.len() / 2 + 1, |quorum| quorum.get() as usize);
        let mut outcome = QuorumError {
            service: config.name.clone(),
            needed,
            replicas: list.len(),
            succeeded: 0,
            failures: Vec::new(),
            in_flight: 0,
        };
        if needed > list.len() {
            metrics.write_quorum(false);
            return Err(outcome.into());
        }
        let shared = Arc::new(Shared {
            health: Arc::clone(&upstream.health),
            retry_on: config.retry_on.clone(),
            endpoints: Arc::clone(self.endpoints),
            metrics: upstream.metrics.clone(),
            service: config.name.clone(),
            position: self.position,
            try_timeout: config.try_timeout,
        });
        let mut in_flight = InFlight {
            service: &config.name,
            position: self.position,
            metrics: &upstream.metrics,
            permits: &upstream.writes.permits,
            tasks: Vec::with_capacity(list.len()),
        };
        let (replies, mut received) = mpsc::channel(list.len());
        for (place, &index) in list.iter().enumerate() {
            let Some(endpoint) = self.endpoints.get(index as usize) else {
                continue;
            };
            let last = place + 1 == list.len();
            let full = Full::new(body.clone()).map_err(|never| match never {});
            let request = upstream_request(parts, endpoint, path, full.boxed_unsync(), last);
            let task = tokio::spawn(write_one(
                Arc::clone(&shared),
                index as usize,
                request,
                replies.clone(),
            ));
            in_flight.tasks.push((endpoint.name.clone(), task));
        }
        drop(replies);
        exchange.attempts += u32::try_from(in_flight.tasks.len()).unwrap_or(u32::MAX);

        match quorum(&mut received, &in_flight, &mut outcome, config.try_timeout).await {
            Some((instance, response)) => {
                metrics.write_quorum(true);
                exchange.answered_by(&instance);
                Ok(to_client(response, upstream, &instance))
            }
            None => {
                metrics.write_quorum(false);
                Err(outcome.into())
            }
        }
    }
}

/// Takes the replies of `in_flight` as they come until `outcome.needed` of
/// them are `2xx`, and returns the first of those with its replica; or,
/// once the quorum is out of reach, `None`, with `outcome` saying why.
/// Answers that will not be returned are drained in tasks of their own.
async fn quorum(
    received: &mut mpsc::Receiver<Reply>,
    in_flight: &InFlight<'_>,
    outcome: &mut QuorumError,
    try_timeout: Duration,
) -> Option<(InstanceName, Response<ResponseBody>)> {
    let mut first = None;
    let mut pending = in_flight.tasks.len();
    while let Some(reply) = received.recv().await {
        pending = pending.saturating_sub(1);
        match reply.result {
            Ok(response) if first.is_none() => {
                outcome.succeeded += 1;
                first = Some((reply.instance, response));
            }
            Ok(response) => {
                outcome.succeeded += 1;
                tokio::spawn(attempt::drain(response.into_body(), try_timeout));
            }
            Err(reason) => outcome.failures.push(AttemptError {
                instance: reply.instance.to_string(),
                reason,
            }),
        }
        if outcome.succeeded >= outcome.needed {
            return first;
        }
        if outcome.succeeded + pending < outcome.needed {
            break;
        }
    }
    if let Some((_, response)) = first {
        tokio::spawn(attempt::drain(response.into_body(), try_timeout));
    }
    outcome.in_flight = pending;
    None
}

/// The body, whole, if it is at most `limit` bytes and its client never
/// pauses for `body_timeout` (no body: empty).
async fn buffer(
    body: Option<Incoming>,
    limit: u64,
    body_timeout: Duration,
) -> Result<Bytes, ProxyError> {
    let Some(body) = body else {
        return Ok(Bytes::new());
    };
    let body = limits::limit_body(body, Some(limit), body_timeout)?;
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(limits::client_fault(&*error, Some(limit))
            .unwrap_or_else(|| ProxyError::ClientBody(error.to_string()))),
    }
}

/// One replica write: sends the request, counts and logs a failure, and
/// reports to the request if it is still waiting. An answer nobody reads is
/// drained, so its connection goes back to the pool.
async fn write_one(
    shared: Arc<Shared>,
    index: usize,
    request: http::Request<Body>,
    replies: mpsc::Sender<Reply>,
) {
    let Some(endpoint) = shared.endpoints.get(index) else {
        return;
    };
    let answer = attempt::once(
        &shared.health,
        &shared.retry_on,
        endpoint,
        request,
        false,
        attempt::Window::from_now(shared.try_timeout),
        None,
    )
    .await;
    let metrics = shared.metrics.replication();
    let (result, unread) = match answer {
        Ok(response) if response.status().is_success() => (Ok(response), None),
        Ok(response) => {
            let (head, body) = response.into_parts();
            (Err(AttemptFailure::Status(head.status)), Some(body))
        }
        Err(attempt::Failed::Instance(failure) | attempt::Failed::StaleConnection(failure)) => {
            (Err(failure), None)
        }
        // The body was buffered whole before any write began.
        Err(attempt::Failed::Client(fault)) => {
            (Err(AttemptFailure::Broken(fault.to_string())), None)
        }
    };
    match &result {
        Ok(_) => metrics.replica_write(ReplicaWrite::Ok),
        Err(reason) => {
            metrics.replica_write(ReplicaWrite::Failed);
            tracing::warn!(
                service = %shared.service,
                key_hash = %shared.position,
                instance = %endpoint.name,
                %reason,
                "replica write failed"
            );
        }
    }
    if let Err(mpsc::error::SendError(reply)) = replies
        .send(Reply {
            instance: endpoint.name.clone(),
            result,
        })
        .await
    {
        if let Ok(response) = reply.result {
            attempt::drain(response.into_body(), shared.try_timeout).await;
        }
    }
    if let Some(body) = unread {
        attempt::drain(body, shared.try_timeout).await;
    }
}

// === impl InFlight ===

impl Drop for InFlight<'_> {
    /// Moves the writes still running to the background, each holding one
    /// of the service's permits until it ends; stops those that get none.
    fn drop(&mut self) {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let metrics = self.metrics.replication();
        for (name, task) in self.tasks.drain(..) {
            if task.is_finished() {
                continue;
            }
            let permit = Arc::clone(self.permits).try_acquire_owned().ok();
            match (permit, &runtime) {
                (Some(permit), Some(runtime)) => {
                    metrics.background_started();
                    let metrics = self.metrics.clone();
                    runtime.spawn(async move {
                        let _ = task.await;
                        metrics.replication().background_ended();
                        drop(permit);
                    });
                }
                _ => {
                    task.abort();
                    metrics.replica_write(ReplicaWrite::Abandoned);
                    tracing::warn!(
                        service = %self.service,
                        key_hash = %self.position,
                        instance = %name,
                        limit = BACKGROUND_LIMIT,
                        "replica write abandoned: the service's background writes are at their limit"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::metrics::tests::{parse_exposition, value};
    use crate::metrics::Metrics;

    /// Sets its flag when dropped: when the task holding it is stopped.
    struct Stopped(Arc<AtomicBool>);

    impl Drop for Stopped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// A task that runs until stopped, and the flag that says it was.
    fn endless() -> (JoinHandle<()>, Arc<AtomicBool>) {
        let stopped = Arc::new(AtomicBool::new(false));
        let guard = Stopped(Arc::clone(&stopped));
        let task = tokio::spawn(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        (task, stopped)
    }

    fn name(host: &str) -> InstanceName {
        InstanceName::new(host, 80).unwrap()
    }

    #[tokio::test]
    async fn writes_past_the_background_limit_are_stopped_and_counted() {
        let metrics = Metrics::new().unwrap();
        let frob = metrics.service("frob");
        let permits = Arc::new(Semaphore::new(1));
        let (first, first_stopped) = endless();
        let (second, second_stopped) = endless();
        let done = tokio::spawn(async {});
        while !done.is_finished() {
            tokio::task::yield_now().await;
        }
        drop(InFlight {
            service: "frob",
            position: Token::of_key(b"k"),
            metrics: &frob,
            permits: &permits,
            tasks: vec![
                (name("done.example"), done),
                (name("a.example"), first),
                (name("b.example"), second),
            ],
        });
        // The first running write holds the one permit, in the background;
        // the second found none and was stopped.
        assert_eq!(permits.available_permits(), 0);
        let stopped = async {
            while !second_stopped.load(Ordering::SeqCst) {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), stopped)
            .await
            .expect("the write without a permit is stopped");
        assert!(!first_stopped.load(Ordering::SeqCst));
        let samples = parse_exposition(&metrics.render(&[])).unwrap();
        let labels = [("service", "frob")];
        assert_eq!(
            value(&samples, "shardproxy_background_writes", &labels),
            Some(1.0)
        );
        let abandoned = [("service", "frob"), ("result", "abandoned")];
        assert_eq!(
            value(&samples, "shardproxy_replica_writes_total", &abandoned),
            Some(1.0)
        );
    }
}
