//! A client's TLS stream, whose reads that find nothing stay cheap.
//!
//! hyper reads a connection more often than data comes: it reads while a
//! request is in flight, to notice a client that closes, and again after
//! each response, for the next request. Of the four reads a keep-alive
//! request takes, three find nothing (counted with callgrind). On a plain
//! socket such a read costs a readiness check. Through tokio-rustls it
//! goes down rustls' record reader to the socket, whose `Pending` comes
//! back up as a `WouldBlock` error: some 400 instructions each.
//!
//! So a read first asks what tokio-rustls would find. When rustls holds no
//! plaintext and wants more, and the socket is not readable, tokio-rustls
//! would answer `Pending` after registering the task for the socket's
//! readiness; [`TcpStream::poll_read_ready`] registers it the same way, and
//! the read answers `Pending` at once. Otherwise the read goes through
//! tokio-rustls' buffered reader (`poll_fill_buf`), one record's plaintext
//! at a time. Not through its `poll_read`, which after the data tries the
//! socket once more, for nothing in a request-response exchange, and keeps
//! an error met there for the next call (a call this wrapper could then
//! answer `Pending` instead).
//!
//! Writes go to tokio-rustls unchanged.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A TLS connection from a client, read as the module says.
pub(super) struct TlsReads {
    tls: TlsStream<TcpStream>,
}

impl TlsReads {
    pub(super) fn new(tls: TlsStream<TcpStream>) -> TlsReads {
        TlsReads { tls }
    }

    /// Whether a read through tokio-rustls would only find that nothing
    /// has come: rustls holds no plaintext and wants more (it has not seen
    /// the client's `close_notify`), and the socket has nothing either.
    /// Registers the task for the socket's readiness when so.
    fn nothing_to_read(&self, cx: &mut Context<'_>) -> bool {
        let (tcp, session) = self.tls.get_ref();
        session.wants_read() && tcp.poll_read_ready(cx).is_pending()
    }
}

impl AsyncRead for TlsReads {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.nothing_to_read(cx) {
            return Poll::Pending;
        }
        let mut tls = Pin::new(&mut self.tls);
        let plaintext = ready!(tls.as_mut().poll_fill_buf(cx))?;
        let taken = plaintext.len().min(buf.remaining());
        buf.put_slice(&plaintext[..taken]);
        tls.consume(taken);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TlsReads {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}
