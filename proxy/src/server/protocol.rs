//! HTTP/1.1 or HTTP/2 (h2c with prior knowledge) on one port: the first
//! bytes of a connection say which, and are then handed back to the
//! protocol's parser.
//!
//! Why not hyper-util's `auto` builder, which does the same: it does not
//! expose hyper's HTTP/1 `max_header_size`, the one limit that answers
//! `431` for a header section over exactly `server.max_header_size` bytes
//! (its read-buffer bound is only approximate, and also slows large
//! bodies).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection speaks, with its stream.
pub(super) enum Sniffed<S> {
    /// It started with the HTTP/2 preface.
    Http2(Rewind<S>),
    /// Anything else: HTTP/1 (whose parser answers what is not HTTP).
    Http1(Rewind<S>),
}

/// Reads until the first bytes match the HTTP/2 preface or cannot, within
/// `within`. The stream is a TCP connection, or a TLS one over it (where
/// ALPN `h2` is followed by the same preface).
///
/// # Errors
///
/// The connection failed, or closed or stalled before saying anything.
pub(super) async fn sniff<S>(mut stream: S, within: Duration) -> io::Result<Sniffed<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut start = [0u8; HTTP2_PREFACE.len()];
    let mut filled = 0;
    let read = tokio::time::timeout(within, async {
        while filled < start.len() && start[..filled] == HTTP2_PREFACE[..filled] {
            let count = stream.read(&mut start[filled..]).await?;
            if count == 0 {
                break;
            }
            filled += count;
        }
        Ok::<_, io::Error>(())
    })
    .await;
    match read {
        Err(_) => return Err(io::ErrorKind::TimedOut.into()),
        Ok(Err(error)) => return Err(error),
        Ok(Ok(())) if filled == 0 => return Err(io::ErrorKind::UnexpectedEof.into()),
        Ok(Ok(())) => {}
    }
    let http2 = start[..filled] == HTTP2_PREFACE[..];
    let rewind = Rewind {
        unread: Bytes::copy_from_slice(&start[..filled]),
        stream: TokioIo::new(stream),
    };
    Ok(if http2 {
        Sniffed::Http2(rewind)
    } else {
        Sniffed::Http1(rewind)
    })
}

/// A connection whose bytes already read, and not used, are read again
/// first.
pub(super) struct Rewind<S> {
    /// What is still to be read again.
    unread: Bytes,
    stream: TokioIo<S>,
}

impl<S> Rewind<S> {
    /// `stream`, with nothing read yet.
    pub(super) fn new(stream: S) -> Rewind<S> {
        Rewind {
            unread: Bytes::new(),
            stream: TokioIo::new(stream),
        }
    }

    /// Whether every byte read before has been read again.
    pub(super) fn is_drained(&self) -> bool {
        self.unread.is_empty()
    }

    /// The stream, for a connection that [`is_drained`](Self::is_drained):
    /// what was still to be read again would be lost.
    pub(super) fn into_stream(self) -> S {
        self.stream.into_inner()
    }

    /// The same connection, its stream wrapped by `wrap` (which sees only
    /// the bytes after those already read).
    pub(super) fn map<T>(self, wrap: impl FnOnce(S) -> T) -> Rewind<T> {
        Rewind {
            unread: self.unread,
            stream: TokioIo::new(wrap(self.stream.into_inner())),
        }
    }

    /// Has `bytes`, read from the connection before those still to be
    /// read again, read again first.
    pub(super) fn read_again(&mut self, bytes: Bytes) {
        self.unread = if self.unread.is_empty() {
            bytes
        } else {
            let mut all = BytesMut::with_capacity(bytes.len() + self.unread.len());
            all.extend_from_slice(&bytes);
            all.extend_from_slice(&self.unread);
            all.freeze()
        };
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Read for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.unread.is_empty() {
            let count = self.unread.len().min(buf.remaining());
            buf.put_slice(&self.unread[..count]);
            if count == self.unread.len() {
                // Frees what held them.
                self.unread = Bytes::new();
            } else {
                self.unread.advance(count);
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Write for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Reads all `io` has until `count` bytes.
    async fn read_all<S: AsyncRead + AsyncWrite + Unpin>(
        io: &mut Rewind<S>,
        count: usize,
    ) -> Vec<u8> {
        let mut all = Vec::new();
        while all.len() < count {
            let mut room = [0u8; 3];
            let mut buf = hyper::rt::ReadBuf::new(&mut room);
            std::future::poll_fn(|cx| Pin::new(&mut *io).poll_read(cx, buf.unfilled()))
                .await
                .unwrap();
            assert!(!buf.filled().is_empty(), "ended after {all:?}");
            all.extend_from_slice(buf.filled());
        }
        all
    }

    /// Bytes given back are read before those the sniff kept, which are
    /// read before the stream's, in reads of any size.
    #[tokio::test]
    async fn bytes_read_again_come_first_in_their_order() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let Ok(Sniffed::Http1(mut io)) = sniff(server, Duration::from_secs(5)).await else {
            panic!("not sniffed as HTTP/1");
        };
        client.write_all(b"rest").await.unwrap();
        io.read_again(Bytes::from_static(b"given back;"));
        let read = read_all(&mut io, 31).await;
        assert_eq!(read, b"given back;GET / HTTP/1.1\r\nrest");
        io.read_again(Bytes::from_static(b"again"));
        assert_eq!(read_all(&mut io, 5).await, b"again");
    }
}
