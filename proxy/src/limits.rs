//! Per-request limits: how many requests a service may have in flight
//! (load shedding), how large a route's request bodies may be, how long a
//! client may take to send a body the proxy must buffer, and how long it
//! may pause in the middle of any body (`body_timeout`).
//!
//! Why shedding and not a queue: a request that waits behind a slow
//! service's backlog holds its client, its connection and its memory, and
//! is likely to time out anyway; a fast `503` lets the client (or its load
//! balancer) go elsewhere at once, and keeps the proxy's memory bounded by
//! the limits rather than by the attackers. The counter is one atomic add
//! and one atomic sub per request, no lock and no allocation.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::body::BoxError;

use crate::error::{error_chain, ProxyError};
use crate::stall::StallTimer;

/// The requests in flight to one service, at most `max`.
#[derive(Debug)]
pub struct ConcurrencyLimit {
    /// Shared so that an upgraded connection can keep its place after the
    /// request that opened it has returned ([`InFlight::keep`]).
    in_flight: Arc<AtomicUsize>,
    max: usize,
}

/// A place among a service's requests in flight, given back when dropped.
#[derive(Debug)]
#[must_use = "the place is given back as soon as it is dropped"]
pub struct InFlight<'a> {
    limit: &'a ConcurrencyLimit,
}

/// A place among a service's requests in flight held past the request that
/// took it: by an upgraded connection, for as long as it is relayed (a
/// WebSocket is a request that lasts). Given back when dropped.
#[derive(Debug)]
#[must_use = "the place is given back as soon as it is dropped"]
pub struct Kept(Arc<AtomicUsize>);

// === impl ConcurrencyLimit ===

impl ConcurrencyLimit {
    /// Its requests in flight now, for `load_bound`.
    #[inline]
    pub fn current(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A limit of `max` requests in flight, none yet.
    pub fn new(max: usize) -> ConcurrencyLimit {
        ConcurrencyLimit {
            in_flight: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A place for one more request, or `None` when all `max` are taken.
    #[inline]
    pub fn try_acquire(&self) -> Option<InFlight<'_>> {
        // Relaxed: the counter orders nothing else; it only has to count.
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        if before >= self.max {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(InFlight { limit: self })
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl InFlight<'_> {
    /// The same place, held by the value returned rather than by the
    /// borrow of the service: for an upgraded connection's relay, which
    /// outlives the request.
    pub fn keep(self) -> Kept {
        let kept = Kept(Arc::clone(&self.limit.in_flight));
        // The count moves to `kept`: not given back here.
        std::mem::forget(self);
        kept
    }
}

impl Drop for InFlight<'_> {
    #[inline]
    fn drop(&mut self) {
        self.limit.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

// === bodies ===

/// The client's request body as the proxy reads it: under the route's
/// `max_body`, and cut off when the client pauses for `body_timeout`.
pub type ClientBody = Limited<Paced<Incoming>>;

/// The request body under the route's `max_body` (refused at once when its
/// announced length, `Content-Length`, is larger; otherwise counted as it
/// is read, failing with [`LengthLimitError`] past the limit), and under
/// the service's `body_timeout` (see [`Paced`]).
///
/// # Errors
///
/// [`ProxyError::BodyTooLarge`] when the announced length is over `max`.
pub fn limit_body(
    body: Incoming,
    max: Option<u64>,
    body_timeout: Duration,
) -> Result<ClientBody, ProxyError> {
    if let Some(max) = max.filter(|max| body.size_hint().lower() > *max) {
        return Err(ProxyError::BodyTooLarge { limit: max });
    }
    let max = max.map_or(usize::MAX, |max| usize::try_from(max).unwrap_or(usize::MAX));
    Ok(Limited::new(Paced::new(body, body_timeout), max))
}

/// A client sent nothing of its request body for `body_timeout` while the
/// proxy waited for more.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing of its request body for {0:?} (body_timeout)")]
pub struct RequestBodyStalled(pub Duration);

/// A request body that fails with [`RequestBodyStalled`] when its client
/// sends nothing for `limit` while it is asked for more (SPEC §9.3). The
/// timer runs only while the proxy's side asks: an instance that reads the
/// body slowly never makes its client look stalled.
pub struct Paced<B> {
    body: B,
    stall: StallTimer,
}

impl<B> Paced<B> {
    fn new(body: B, limit: Duration) -> Paced<B> {
        Paced {
            body,
            stall: StallTimer::new(limit),
        }
    }
}

impl<B> http_body::Body for Paced<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if this.stall.ran_out(cx, &frame) {
            return Poll::Ready(Some(Err(RequestBodyStalled(this.stall.limit()).into())));
        }
        frame.map(|frame| frame.map(|frame| frame.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The client's fault behind a failed upstream exchange, if it was one:
/// its body passed the route's `max_body` (`413`), stalled for
/// `body_timeout` (`408`), or could not be read (`400`: a malformed chunk,
/// a connection closed mid-body). Such a failure
/// says nothing of the instance: it is neither retried nor held against
/// the instance's health.
pub fn client_fault(
    error: &(dyn std::error::Error + 'static),
    max_body: Option<u64>,
) -> Option<ProxyError> {
    let mut cause = Some(error);
    let mut body_failed = false;
    while let Some(error) = cause {
        if let Some(stalled) = error.downcast_ref::<RequestBodyStalled>() {
            return Some(ProxyError::ClientTimeout(stalled.0));
        }
        if error.is::<LengthLimitError>() {
            return Some(ProxyError::BodyTooLarge {
                limit: max_body.unwrap_or(u64::MAX),
            });
        }
        // hyper's client calls an error of the body it was given to send a
        // user error; the body it was given is the client's.
        body_failed |= error
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user);
        cause = error.source();
    }
    body_failed.then(|| ProxyError::ClientBody(error_chain(error)))
}

/// `receive` (reading the request body the proxy buffers), cut off after
/// `limit`, so a client that sends its body slowly holds nothing forever.
///
/// # Errors
///
/// [`ProxyError::ClientTimeout`] after `limit`, else what `receive` gives.
pub async fn body_within<T>(
    limit: Duration,
    receive: impl Future<Output = Result<T, ProxyError>>,
) -> Result<T, ProxyError> {
    tokio::time::timeout(limit, receive)
        .await
        .unwrap_or(Err(ProxyError::ClientTimeout(limit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_given_back() {
        let limit = ConcurrencyLimit::new(2);
        let first = limit.try_acquire();
        let second = limit.try_acquire();
        assert!(first.is_some() && second.is_some());
        assert!(limit.try_acquire().is_none());
        assert_eq!(limit.in_flight(), 2);
        drop(first);
        assert_eq!(limit.in_flight(), 1);
        let third = limit.try_acquire();
        assert!(third.is_some());
        drop((second, third));
        assert_eq!(limit.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_cut_off_body_is_found_among_the_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] Box<dyn std::error::Error + Send + Sync>);
        let body = http_body_util::Full::new(bytes::Bytes::from_static(b"four"));
        let Err(cut) = http_body_util::BodyExt::collect(Limited::new(body, 3)).await else {
            panic!("a 4-byte body passed a 3-byte limit");
        };
        assert!(matches!(
            client_fault(&Outer(cut), Some(3)),
            Some(ProxyError::BodyTooLarge { limit: 3 })
        ));
        assert!(client_fault(&std::io::Error::other("other"), Some(3)).is_none());
    }
}
