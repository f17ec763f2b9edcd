//! Idle HTTP/1 connections give their buffers back.
//!
//! Why: hyper keeps an HTTP/1 connection's read buffer (reserved at 8 KiB
//! before each read), its header write buffer (8 KiB) and the slot of its
//! request future for as long as the connection is open, and has no
//! setting that frees them between requests: most of the 26 KB an idle
//! keep-alive client cost (`loadtest/results/idle-connections.md`). nginx
//! frees a connection's buffers once it is idle, and so do we, a check
//! period later.
//!
//! How: when the connection's [`Lookout`] finds it idle for a check period
//! with its last exchange settled (answered, and no request body left to
//! read), hyper is asked to close it gracefully. Nothing of an exchange is
//! left, so hyper writes nothing more (its `Connection: close` goes only on
//! a response not yet begun). [`Parkable`] skips the shutdown of the
//! socket that hyper's close ends with, and hyper hands back the socket
//! with the bytes it had read and not used. The task then waits for the
//! next bytes with nothing but the socket, and serves them with a new
//! hyper connection, which reads them again first. A plain socket waits
//! elsewhere, [`Away`] from its task, which then ends (see `lot`).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBuf, ReadBufCursor, Write};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use tokio::io::{AsyncRead, AsyncWrite};

use super::connection::{self, Activity, Doing, Ended, Lookout, Verdict};
use super::protocol::Rewind;
use super::send_timeout::SendTimeout;

/// How much a parked connection reads when its client speaks again: the
/// start of the next request, which the new hyper connection reads first
/// (and the rest from the socket after it).
const WAKE_READ: usize = 64;

/// Where an idle connection `T` waits for its client's next bytes when not
/// in its own task.
pub(super) trait Away<T> {
    /// Whether it takes connections.
    fn is_open(&self) -> bool;

    /// Takes the idle connection `io`, which may stay quiet for
    /// `time_left`, and serves it when its client speaks again.
    fn take(&mut self, io: T, time_left: Duration);
}

/// Connections wait in their own task: for those that cannot be parked
/// otherwise (TLS keeps its session's state).
pub(super) struct Stay;

impl<T> Away<T> for Stay {
    fn is_open(&self) -> bool {
        false
    }

    fn take(&mut self, _io: T, _time_left: Duration) {}
}

/// An HTTP/1 connection's socket and service, between hyper's connections.
///
/// The caller keeps it, and lends it to [`Idle::serve`]: the arguments of an
/// async fn take their room twice in its future (once as arguments, once
/// as the locals they are moved to), and that future is in every
/// connection's task.
pub(super) struct Idle<T, S> {
    /// `None` while hyper has them, and once the connection is over.
    parts: Option<(Parkable<SendTimeout<Rewind<T>>>, S)>,
}

impl<T, S> Idle<T, S> {
    /// The connection `io`, to be served with `service`, its `lookout`'s.
    pub(super) fn new(io: SendTimeout<Rewind<T>>, service: S, lookout: &Lookout) -> Idle<T, S> {
        let io = Parkable {
            io,
            activity: lookout.activity().clone(),
        };
        Idle {
            parts: Some((io, service)),
        }
    }
}

impl<T, S> Idle<T, S>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Serves the connection until it closes, is upgraded, or its
    /// `lookout` closes it; parking it whenever the lookout finds it idle,
    /// `away` if it takes it (and then this returns).
    ///
    /// # Errors
    ///
    /// hyper's, when the connection failed.
    pub(super) async fn serve(
        &mut self,
        builder: &http1::Builder,
        lookout: &mut Lookout,
        away: &mut impl Away<T>,
    ) -> hyper::Result<()> {
        loop {
            // Boxed, with the connection: hyper's state and the future that
            // drives it are freed while the connection is parked, whose task
            // then holds only the socket, the service and the lookout.
            let Some(unread) = Box::pin(self.serve_until_idle(builder, lookout)).await? else {
                return Ok(());
            };
            let Some((io, _)) = self.parts.as_mut() else {
                return Ok(());
            };
            let first = if unread.is_empty() {
                // Empty, it may still hold hyper's read buffer: let go of it
                // before waiting.
                drop(unread);
                if away.is_open() && io.io.get_mut().is_drained() {
                    if let Some((io, _service)) = self.parts.take() {
                        away.take(io.into_socket(), lookout.parked_time_left());
                    }
                    return Ok(());
                }
                match next_bytes(io, lookout).await {
                    Some(first) => first,
                    None => return Ok(()),
                }
            } else {
                unread
            };
            io.io.get_mut().read_again(first);
        }
    }

    /// Serves the connection with a new hyper connection until it closes or
    /// is upgraded (`None`), or the lookout parks it: then the socket and
    /// service are back, and this returns the bytes hyper read and did not
    /// use.
    ///
    /// # Errors
    ///
    /// hyper's, when the connection failed.
    async fn serve_until_idle(
        &mut self,
        builder: &http1::Builder,
        lookout: &mut Lookout,
    ) -> hyper::Result<Option<Bytes>> {
        let Some((io, service)) = self.parts.take() else {
            return Ok(None);
        };
        // With upgrades (SPEC §10): a `101` hands the connection to the
        // handler's relay, and this task ends. Boxed, to be taken apart.
        let mut connection = Box::new(builder.serve_connection(io, service).with_upgrades());
        match connection::serve(Pin::new(&mut *connection), lookout, Doing::ServingParkable).await {
            Ended::Closed(result) => result.map(|()| None),
            Ended::Parked(result) => {
                result?;
                // `None`: it was upgraded.
                Ok(connection.into_parts().map(|parts| {
                    self.parts = Some((parts.io, parts.service));
                    parts.read_buf
                }))
            }
        }
    }
}

/// Waits, parked, for the first bytes the client sends next. `None` when
/// it closed or failed, or when the lookout closes the connection (which
/// is then shut down).
async fn next_bytes<I: Read + Write + Unpin>(io: &mut I, lookout: &mut Lookout) -> Option<Bytes> {
    let read = poll_fn(|cx| {
        // On the stack of each poll, not in the future: what is read is
        // copied out before the poll returns.
        let mut start = [0u8; WAKE_READ];
        let mut buf = ReadBuf::new(&mut start);
        ready!(Pin::new(&mut *io).poll_read(cx, buf.unfilled()))?;
        Poll::Ready(Ok::<_, io::Error>(Bytes::copy_from_slice(buf.filled())))
    });
    let read = tokio::select! {
        read = read => Some(read),
        Verdict::Close | Verdict::Park = lookout.verdict(Doing::Parked) => None,
    };
    match read {
        Some(Ok(first)) if !first.is_empty() => Some(first),
        Some(_) => None,
        None => {
            // Closed as hyper would close it: an error means it is gone.
            let _ = poll_fn(|cx| Pin::new(&mut *io).poll_shutdown(cx)).await;
            None
        }
    }
}

/// A connection's `io`, whose shutdown is skipped while the connection is
/// being parked.
pub(super) struct Parkable<T> {
    io: T,
    activity: Activity,
}

impl<T> Parkable<SendTimeout<Rewind<T>>> {
    /// The socket, for a connection with nothing read and not used (its
    /// [`Rewind`] drained).
    fn into_socket(self) -> T {
        self.io.into_inner().into_stream()
    }
}

impl<T: Read + Unpin> Read for Parkable<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Parkable<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.activity.parking() {
            return Poll::Ready(Ok(()));
        }
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
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use http::Response;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{watch, Notify};

    use crate::server::connection::Checks;
    use crate::server::protocol::{sniff, Sniffed};

    /// A socket that notes the room each read offers: hyper's are its read
    /// buffer's (8 KiB), a parked connection's [`WAKE_READ`].
    struct Noting {
        stream: TcpStream,
        rooms: Arc<Mutex<Vec<usize>>>,
        read: Arc<Notify>,
    }

    impl AsyncRead for Noting {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Ok(mut rooms) = self.rooms.lock() {
                rooms.push(buf.remaining());
            }
            self.read.notify_one();
            Pin::new(&mut self.stream).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Noting {
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
    }

    /// Reads `count` whole answers (each ends with the body `ok`) off
    /// `client`, each `200` with no `Connection: close`.
    async fn answers(client: &mut TcpStream, count: usize) {
        let mut text = String::new();
        let mut chunk = [0u8; 1024];
        while text.matches("\r\n\r\nok").count() < count {
            let read = client.read(&mut chunk).await.unwrap();
            assert_ne!(read, 0, "closed before {count} answers: {text}");
            text.push_str(&String::from_utf8_lossy(&chunk[..read]));
        }
        assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), count, "{text}");
        assert!(
            !text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
    }

    /// Parked when idle for a check period: the connection then reads
    /// with [`WAKE_READ`] bytes of room; what wakes it is answered in
    /// full, on the same connection, with no `Connection: close`; and so
    /// on, parked again each time.
    #[tokio::test]
    async fn an_idle_connection_waits_parked_and_serves_what_comes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let rooms = Arc::new(Mutex::new(Vec::new()));
        let read = Arc::new(Notify::new());
        let noting = Noting {
            stream,
            rooms: Arc::clone(&rooms),
            read: Arc::clone(&read),
        };

        let request = b"GET /k HTTP/1.1\r\nHost: a.example\r\n\r\n";
        client.write_all(request).await.unwrap();
        let Ok(Sniffed::Http1(io)) = sniff(noting, Duration::from_secs(5)).await else {
            panic!("not sniffed as HTTP/1");
        };
        let activity = Activity::default();
        let service = {
            let activity = activity.clone();
            service_fn(move |request: http::Request<Incoming>| {
                activity.request();
                let watch = activity.watch(http_body::Body::is_end_stream(request.body()));
                async move {
                    watch.answered();
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                }
            })
        };
        // Checks every 500 ms; closed when parked for 2 s.
        let checks = Checks::new(Duration::from_secs(60), Duration::from_secs(2));
        let (_stop, stopped) = watch::channel(false);
        let mut lookout = Lookout::new(activity, checks, stopped);
        let builder = http1::Builder::new();
        let io = SendTimeout::new(io, Duration::from_secs(5));
        let mut idle = Idle::new(io, service, &lookout);
        let served =
            tokio::spawn(async move { idle.serve(&builder, &mut lookout, &mut Stay).await });

        let parked = || async {
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    read.notified().await;
                    let last = rooms.lock().unwrap().last().copied();
                    if last == Some(WAKE_READ) {
                        return;
                    }
                }
            })
            .await
            .expect("parked within the wait");
        };
        // The first time, two requests at once: the wake read takes the
        // first 64 of their 74 bytes, hyper the rest.
        let mut sent = 1;
        for next in [2, 1, 1] {
            answers(&mut client, sent).await;
            parked().await;
            client.write_all(&request.repeat(next)).await.unwrap();
            sent = next;
        }
        answers(&mut client, sent).await;
        drop(client);
        assert!(served.await.unwrap().is_ok());
    }
}
