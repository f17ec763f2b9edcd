//! Transition reads (SPEC §5): while a service's `transition_grace` lasts
//! after its ring changed, a GET or HEAD whose primary moved and whose new
//! ring answered `404` is tried on the replaced ring's preference list, in
//! order, skipping the instances already asked: the data may not have been
//! copied to its new owners yet. The first `2xx` or `3xx` answer is
//! returned, otherwise the original `404`.
//!
//! The replaced ring's instances are tried whatever their health (an
//! instance ejected for failing may still be the only one holding a key),
//! within the request's deadline, and outside the retry budget: the reads
//! are bounded by the replaced list's length and happen only during a
//! transition.

use std::sync::Arc;
use tokio::time::Instant;

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Response};
use shardproxy_ring::{InstanceName, Ring, Token};

use super::attempt;
use super::body::RequestBody;
use super::endpoint::Targets;
use super::exchange::Exchange;
use super::request::{to_client, upstream_request};
use super::upstream::Upstream;
use crate::body::Body;
use crate::discovery::{RingState, Snapshot, Table};
use crate::pool::ResponseBody;

/// The replaced ring a request may be tried on.
pub(super) struct OldRing<'a> {
    upstream: &'a Upstream,
    snapshot: &'a Arc<Snapshot>,
    ring: &'a Ring,
    /// The request's key position.
    position: Token,
    /// The request's deadline.
    deadline: Instant,
}

impl<'a> OldRing<'a> {
    /// The replaced ring of `state` when a `404` for this request should be
    /// tried on it: the service has a grace that has not run out, the
    /// method is GET or HEAD, both rings are rings (not SRV sets), and the
    /// key's primary differs between them (compared by `host:port`).
    pub(super) fn for_request(
        upstream: &'a Upstream,
        state: &'a RingState,
        method: &Method,
        position: Token,
        deadline: Instant,
    ) -> Option<OldRing<'a>> {
        let grace = upstream.config.transition_grace;
        if grace.is_zero() || !matches!(*method, Method::GET | Method::HEAD) {
            return None;
        }
        let snapshot = state.previous_within(grace)?;
        let (Table::Ring(old), Table::Ring(new)) = (&snapshot.table, &state.current.table) else {
            return None;
        };
        let old_primary = old.primary(position)?.name();
        if new
            .primary(position)
            .is_some_and(|primary| primary.name() == old_primary)
        {
            return None;
        }
        Some(OldRing {
            upstream,
            snapshot,
            ring: old,
            position,
            deadline,
        })
    }

    /// Tries the replaced ring's preference list for the key, skipping the
    /// first `asked` instances of `targets` (those the new ring's attempts
    /// went to), and returns the first `2xx` or `3xx` answer, or else
    /// `not_found` (which `answered_by` gave).
    pub(super) async fn read(
        self,
        parts: &mut Parts,
        path: &PathAndQuery,
        body: &mut RequestBody,
        (targets, asked): (&Targets<'_>, usize),
        (not_found, answered_by): (Response<ResponseBody>, &InstanceName),
        exchange: &mut Exchange,
    ) -> Response<Body> {
        let upstream = self.upstream;
        let config = &upstream.config;
        let endpoints = upstream
            .endpoints
            .get_replaced(self.snapshot, &upstream.metrics);
        let already_asked = |name: &InstanceName| {
            (0..asked)
                .filter_map(|n| targets.get(n))
                .any(|endpoint| endpoint.name == *name)
        };
        for &index in self.ring.preference_list(self.position).indexes() {
            let Some(endpoint) = endpoints.get(index as usize) else {
                continue;
            };
            if already_asked(&endpoint.name) {
                continue;
            }
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let Some(attempt_body) = body.for_attempt() else {
                break;
            };
            let request = upstream_request(parts, endpoint, path, attempt_body, false);
            exchange.attempts += 1;
            let sent = exchange.sending();
            let answer = attempt::once(
                &upstream.health,
                &config.retry_on,
                endpoint,
                request,
                false,
                attempt::Window::from_now(config.try_timeout.min(remaining)),
                None,
            )
            .await;
            exchange.attempted(&endpoint.name, &answer, sent);
            match answer {
                Ok(response)
                    if response.status().is_success() || response.status().is_redirection() =>
                {
                    exchange.answered_by(&endpoint.name);
                    upstream.metrics.replication().transition_read(true);
                    tokio::spawn(attempt::drain(not_found.into_body(), config.try_timeout));
                    return to_client(response, upstream, &endpoint.name);
                }
                Ok(other) => {
                    tokio::spawn(attempt::drain(other.into_body(), config.try_timeout));
                }
                Err(_) => {}
            }
        }
        upstream.metrics.replication().transition_read(false);
        to_client(not_found, upstream, answered_by)
    }
}
