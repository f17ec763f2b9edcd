//! A connection whose writes fail once the client has taken nothing for
//! `server.send_timeout` (SPEC §9.3). A client that stops reading fills the
//! socket's send buffer; hyper then waits on the write, holding the
//! connection and the exchange with the instance behind it for ever. Here
//! that wait ends in an error, so hyper closes the connection and drops
//! the exchange: the client's fault, never counted against the instance.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::stall::StallTimer;
use hyper::rt::{Read, ReadBufCursor, Write};

/// `io`, whose writes wait at most `limit` for the client to take bytes.
pub(super) struct SendTimeout<T> {
    io: T,
    /// Running while a write finds the socket full.
    stall: StallTimer,
}

impl<T> SendTimeout<T> {
    pub(super) fn new(io: T, limit: Duration) -> SendTimeout<T> {
        SendTimeout {
            io,
            stall: StallTimer::new(limit),
        }
    }

    /// The connection inside.
    pub(super) fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// The connection inside, for good.
    pub(super) fn into_inner(self) -> T {
        self.io
    }

    /// What a write that made progress (`Ready`) or waited (`Pending`)
    /// means, with the stall timer started, stopped or run out.
    fn waited<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if self.stall.ran_out(cx, &poll) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing of the response within send_timeout",
            )));
        }
        poll
    }
}

impl<T: Read + Unpin> Read for SendTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for SendTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.waited(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.waited(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.waited(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A connected pair on loopback: the server's side, and the client's.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, client) = tokio::join!(listener.accept(), client);
        (accepted.unwrap().0, client.unwrap())
    }

    /// Writes `chunk` until the write fails; returns the error.
    async fn write_until_error(io: &mut SendTimeout<TokioIo<TcpStream>>) -> io::Error {
        let chunk = vec![0u8; 64 << 10];
        loop {
            let written =
                std::future::poll_fn(|cx| Pin::new(&mut *io).poll_write(cx, &chunk)).await;
            if let Err(error) = written {
                return error;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_nothing_fails_the_write_after_the_limit() {
        let (server, _client) = pair().await;
        let mut io = SendTimeout::new(TokioIo::new(server), Duration::from_secs(60));
        let started = tokio::time::Instant::now();
        let error = write_until_error(&mut io).await;
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_secs(60));
    }

    #[tokio::test]
    async fn a_client_that_reads_keeps_the_connection() {
        let (server, mut client) = pair().await;
        let mut io = SendTimeout::new(TokioIo::new(server), Duration::from_secs(5));
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buf = vec![0u8; 64 << 10];
            while total < 8 << 20 {
                total += client.read(&mut buf).await.unwrap();
            }
            client.shutdown().await.unwrap();
            total
        });
        let chunk = vec![0u8; 64 << 10];
        let mut sent = 0;
        while sent < 8 << 20 {
            sent += std::future::poll_fn(|cx| Pin::new(&mut io).poll_write(cx, &chunk))
                .await
                .expect("a reading client is never timed out");
        }
        assert!(reader.await.unwrap() >= 8 << 20);
    }
}
