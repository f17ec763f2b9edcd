//! A response body from an instance, cut off when the instance sends
//! nothing for the service's `body_timeout` while the client waits for more
//! (SPEC §9.3). The timer runs only while the client's side is asking for
//! the next frame: a client that reads slowly stops the asking, so it never
//! makes a healthy instance look stalled.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use shardproxy_ring::InstanceName;

use crate::body::BoxError;
use crate::health::{Health, Outcome};
use crate::pool::ResponseBody;
use crate::stall::StallTimer;

/// An instance sent nothing of a response body for `body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the instance sent nothing of the response body for {0:?} (body_timeout)")]
pub struct BodyStalled(pub Duration);

/// `body`, cut off after `limit` without a frame while one is awaited.
pub(super) struct Watched {
    body: ResponseBody,
    stall: StallTimer,
    /// Who a stall is counted against, once.
    instance: Option<(Arc<Health>, InstanceName)>,
}

impl Watched {
    pub(super) fn new(
        body: ResponseBody,
        limit: Duration,
        health: Arc<Health>,
        instance: InstanceName,
    ) -> Watched {
        Watched {
            body,
            stall: StallTimer::new(limit),
            instance: Some((health, instance)),
        }
    }
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if !this.stall.ran_out(cx, &frame) {
            return frame.map(|frame| frame.map(|frame| frame.map_err(BoxError::from)));
        }
        let limit = this.stall.limit();
        if let Some((health, instance)) = this.instance.take() {
            tracing::warn!(%instance, ?limit, "response body stalled: exchange aborted");
            health.record(&instance, Outcome::AnswerFailure);
        }
        Poll::Ready(Some(Err(BodyStalled(limit).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
