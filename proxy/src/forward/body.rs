//! Request bodies as retries need them: small ones buffered so they can be
//! sent again, large or unsized ones streamed, and lent to one attempt at a
//! time so that a connect error (nothing sent) still leaves the body for the
//! next instance.

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};

use crate::body::{self, Body, BoxError};
use crate::error::ProxyError;
use crate::limits::ClientBody;

/// The request body as the attempts need it: replayable when small enough
/// to buffer, else streamed once.
pub(super) enum RequestBody {
    Empty,
    /// The whole body, and its trailer fields if it had any (gRPC and
    /// other HTTP/2 clients may send them).
    Buffered(Bytes, Option<Box<HeaderMap>>),
    /// Lent to one attempt at a time; taken back when that attempt never
    /// read from it (a connect error), spent once it did.
    Streamed(Option<LentBody>),
}

/// A streamed request body lent to an attempt: it stays in the shared slot
/// and is only marked spent when the upstream connection first polls it,
/// so that after a connect error it can still go to the next instance.
pub(super) struct LentBody {
    slot: Arc<Mutex<ClientBody>>,
    /// [`POLLED`] and [`ENDED`].
    state: Arc<AtomicU8>,
}

/// An upstream connection has read from the body.
const POLLED: u8 = 1;
/// The client has sent the whole body.
const ENDED: u8 = 2;

impl LentBody {
    fn lend(&self) -> LentBody {
        LentBody {
            slot: Arc::clone(&self.slot),
            state: Arc::clone(&self.state),
        }
    }

    fn polled(&self) -> bool {
        self.state.load(Ordering::SeqCst) & POLLED != 0
    }

    /// Whether the client has sent it all: seen by the upstream connection
    /// reading its end, or known from its length (hyper stops reading a
    /// body of known length at its last byte).
    fn ended(&self) -> bool {
        self.state.load(Ordering::SeqCst) & ENDED != 0 || self.is_end_stream()
    }
}

impl http_body::Body for LentBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state.fetch_or(POLLED, Ordering::SeqCst);
        let mut body = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        let frame = Pin::new(&mut *body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            self.state.fetch_or(ENDED, Ordering::SeqCst);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .size_hint()
    }
}

impl RequestBody {
    /// An empty body when there is nothing to wait for (no body, or one
    /// already over); otherwise `body`, for [`RequestBody::prepare`].
    pub(super) fn at_once(body: Option<ClientBody>) -> Result<RequestBody, ClientBody> {
        match body {
            Some(body) if !body.is_end_stream() && body.size_hint().upper() != Some(0) => Err(body),
            _ => Ok(RequestBody::Empty),
        }
    }

    /// Buffers a body whose announced length is at most `limit`; streams
    /// the others. An empty body stays empty. `max_body` is the route's,
    /// for the error when the body passes it.
    pub(super) async fn prepare(
        body: ClientBody,
        limit: u64,
        max_body: Option<u64>,
    ) -> Result<RequestBody, ProxyError> {
        let body = match RequestBody::at_once(Some(body)) {
            Ok(empty) => return Ok(empty),
            Err(body) => body,
        };
        match body.size_hint().upper() {
            Some(length) if length <= limit => {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                let collected = Limited::new(body, limit).collect().await.map_err(|error| {
                    crate::limits::client_fault(&*error, max_body)
                        .unwrap_or_else(|| ProxyError::ClientBody(error.to_string()))
                })?;
                let trailers = collected.trailers().cloned().map(Box::new);
                Ok(RequestBody::Buffered(collected.to_bytes(), trailers))
            }
            _ => Ok(RequestBody::Streamed(Some(LentBody {
                slot: Arc::new(Mutex::new(body)),
                state: Arc::default(),
            }))),
        }
    }

    /// The body for the next attempt, or `None` when a streamed body is
    /// already spent.
    pub(super) fn for_attempt(&mut self) -> Option<Body> {
        match self {
            RequestBody::Empty => Some(body::empty()),
            RequestBody::Buffered(bytes, None) => Some(body::full(bytes.clone())),
            RequestBody::Buffered(bytes, Some(trailers)) => Some(body::full_with_trailers(
                bytes.clone(),
                HeaderMap::clone(trailers),
            )),
            RequestBody::Streamed(body) => {
                if body.as_ref().is_some_and(LentBody::polled) {
                    *body = None;
                }
                body.as_ref().map(|body| body.lend().boxed_unsync())
            }
        }
    }

    /// True when an attempt read part of a streamed body and the client
    /// has not sent the rest: an attempt that timed out then was (likely)
    /// waiting for the client, not the instance.
    pub(super) fn awaiting_client(&self) -> bool {
        matches!(self, RequestBody::Streamed(Some(body)) if body.polled() && !body.ended())
    }

    /// True when no body can reach an instance.
    pub(super) fn is_empty(&self) -> bool {
        matches!(self, RequestBody::Empty)
    }
}
