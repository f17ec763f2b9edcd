//! Request bodies as retries need them: small ones buffered so they can be
//! sent again, large or unsized ones streamed, and lent to one attempt at a
//! time so that a connect error (nothing sent) still leaves the body for the
//! next instance.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;

use super::{Body, BoxError};
use crate::error::ProxyError;

/// The request body as the attempts need it: replayable when small enough
/// to buffer, else streamed once.
pub(super) enum RequestBody {
    Empty,
    Buffered(Bytes),
    /// Lent to one attempt at a time; taken back when that attempt never
    /// read from it (a connect error), spent once it did.
    Streamed(Option<LentBody>),
}

/// A streamed request body lent to an attempt: it stays in the shared slot
/// and is only marked spent when the upstream connection first polls it,
/// so that after a connect error it can still go to the next instance.
pub(super) struct LentBody {
    slot: Arc<Mutex<Incoming>>,
    polled: Arc<AtomicBool>,
}

impl LentBody {
    fn lend(&self) -> LentBody {
        LentBody {
            slot: Arc::clone(&self.slot),
            polled: Arc::clone(&self.polled),
        }
    }

    fn polled(&self) -> bool {
        self.polled.load(Ordering::SeqCst)
    }
}

impl http_body::Body for LentBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.polled.store(true, Ordering::SeqCst);
        let mut body = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *body).poll_frame(cx).map_err(BoxError::from)
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
    /// Buffers a body whose announced length is at most `limit`; streams
    /// the others. No body is an empty one.
    pub(super) async fn prepare(
        body: Option<Incoming>,
        limit: u64,
    ) -> Result<RequestBody, ProxyError> {
        let Some(body) = body else {
            return Ok(RequestBody::Empty);
        };
        let hint = body.size_hint();
        if body.is_end_stream() || hint.upper() == Some(0) {
            return Ok(RequestBody::Empty);
        }
        match hint.upper() {
            Some(length) if length <= limit => {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                let collected = Limited::new(body, limit)
                    .collect()
                    .await
                    .map_err(|error| ProxyError::ClientBody(error.to_string()))?;
                Ok(RequestBody::Buffered(collected.to_bytes()))
            }
            _ => Ok(RequestBody::Streamed(Some(LentBody {
                slot: Arc::new(Mutex::new(body)),
                polled: Arc::default(),
            }))),
        }
    }

    /// The body for the next attempt, or `None` when a streamed body is
    /// already spent.
    pub(super) fn for_attempt(&mut self) -> Option<Body> {
        match self {
            RequestBody::Empty => Some(Empty::new().map_err(|never| match never {}).boxed_unsync()),
            RequestBody::Buffered(bytes) => Some(
                Full::new(bytes.clone())
                    .map_err(|never: Infallible| match never {})
                    .boxed_unsync(),
            ),
            RequestBody::Streamed(body) => {
                if body.as_ref().is_some_and(LentBody::polled) {
                    *body = None;
                }
                body.as_ref().map(|body| body.lend().boxed_unsync())
            }
        }
    }

    /// True when no body can reach an instance.
    pub(super) fn is_empty(&self) -> bool {
        matches!(self, RequestBody::Empty)
    }
}
