//! Response bodies on their way into the store: read whole up to the
//! object size limit, or, past it, streamed on to the client with what was
//! already read in front.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::{Body, BoxError};

/// A body read for storing.
pub enum Read {
    /// The whole body, at most the limit.
    Whole(Bytes),
    /// Longer than the limit: the body as it goes on, to stream.
    TooLarge(Body),
}

/// Reads `body` whole if it is at most `limit` bytes.
///
/// # Errors
///
/// The body's error, if reading it failed.
pub async fn read(mut body: Body, limit: u64) -> Result<Read, BoxError> {
    if body.size_hint().lower() > limit {
        return Ok(Read::TooLarge(body));
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        // Trailers are not stored: a cached response has none.
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if read.len() + data.len() > limit {
            read.extend_from_slice(&data);
            return Ok(Read::TooLarge(
                Prefixed {
                    prefix: Some(read.freeze()),
                    rest: body,
                }
                .boxed_unsync(),
            ));
        }
        read.extend_from_slice(&data);
    }
    Ok(Read::Whole(read.freeze()))
}

/// What was read of a body, then the rest of it.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: Body,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self
            .prefix
            .as_ref()
            .map_or(0, |prefix| u64::try_from(prefix.len()).unwrap_or(u64::MAX));
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(prefix));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(prefix));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use http_body_util::Full;

    use super::*;

    /// A body of `chunks` with no announced length, as a chunked response.
    struct Chunks(VecDeque<Bytes>);

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
        }
    }

    fn chunks(parts: &[&'static str]) -> Body {
        Chunks(
            parts
                .iter()
                .map(|part| Bytes::from_static(part.as_bytes()))
                .collect(),
        )
        .boxed_unsync()
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        match read(chunks(&["hel", "lo"]), 5).await.unwrap() {
            Read::Whole(bytes) => assert_eq!(bytes, "hello"),
            Read::TooLarge(_) => panic!("5 bytes fit in 5"),
        }
    }

    #[tokio::test]
    async fn a_longer_body_is_streamed_whole_with_what_was_read() {
        for body in [
            chunks(&["hel", "lo", " world"]),
            Full::new(Bytes::from_static(b"hello world"))
                .map_err(|never| match never {})
                .boxed_unsync(),
        ] {
            match read(body, 5).await.unwrap() {
                Read::Whole(_) => panic!("11 bytes do not fit in 5"),
                Read::TooLarge(rest) => {
                    assert_eq!(rest.collect().await.unwrap().to_bytes(), "hello world");
                }
            }
        }
    }
}
