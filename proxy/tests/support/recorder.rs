//! A backend that records the exact bytes the proxy sends it, for tests of
//! hostile clients: they assert that a bad request reached no backend, or
//! reached it as exactly one well-formed request.
//!
//! It is a real hyper HTTP/1.1 server whose socket is tapped: every byte
//! read is kept, per connection, and [`Recorder::requests`] parses them
//! again independently (httparse), framing bodies by `Content-Length` or
//! chunked encoding. A request whose bytes end before its body does is
//! reported as [`Sent::Truncated`]. Each complete request is answered
//! `200` with body `ok` once its whole body has been read.

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One request as the backend received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// A complete, well-formed request.
    Complete {
        /// Method.
        method: String,
        /// Request target.
        target: String,
        /// Header fields in order, names in lower case.
        headers: Vec<(String, String)>,
        /// The body, decoded.
        body: Vec<u8>,
    },
    /// The bytes ended before the request did (head or body).
    Truncated,
    /// Bytes that do not parse as a request.
    Malformed(String),
}

/// The bytes one connection has received so far.
type Recording = Arc<Mutex<Vec<u8>>>;

/// The recording backend.
pub struct Recorder {
    addr: SocketAddr,
    /// The bytes of each connection, in accept order.
    connections: Arc<Mutex<Vec<Recording>>>,
    task: JoinHandle<()>,
}

impl Recorder {
    /// Starts one on `127.0.0.1:0`.
    pub async fn start() -> Recorder {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<Recording>>> = Arc::default();
        let accepted = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let bytes: Recording = Arc::default();
                lock(&accepted).push(Arc::clone(&bytes));
                tokio::spawn(async move {
                    let service =
                        service_fn(|request: http::Request<hyper::body::Incoming>| async {
                            let _ = request.into_body().collect().await;
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(Tap { stream, bytes }), service)
                        .await;
                });
            }
        });
        Recorder {
            addr,
            connections,
            task,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.connections).len()
    }

    /// Every request received so far, over all connections, in order.
    pub fn requests(&self) -> Vec<Sent> {
        let connections: Vec<Vec<u8>> = lock(&self.connections)
            .iter()
            .map(|bytes| lock(bytes).clone())
            .collect();
        connections
            .iter()
            .flat_map(|bytes| parse_all(bytes))
            .collect()
    }

    /// Forgets what was recorded (connections stay open and recorded).
    pub fn clear(&self) {
        for bytes in lock(&self.connections).iter() {
            lock(bytes).clear();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every request in one connection's bytes.
fn parse_all(mut bytes: &[u8]) -> Vec<Sent> {
    let mut requests = Vec::new();
    while !bytes.is_empty() {
        match parse_one(bytes) {
            Ok((sent, used)) => {
                requests.push(sent);
                bytes = &bytes[used..];
            }
            Err(sent) => {
                requests.push(sent);
                break;
            }
        }
    }
    requests
}

/// The first request of `bytes` and how many bytes it took, or why there
/// is none.
fn parse_one(bytes: &[u8]) -> Result<(Sent, usize), Sent> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut request = httparse::Request::new(&mut fields);
    let head = match request.parse(bytes) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return Err(Sent::Truncated),
        Err(error) => return Err(Sent::Malformed(error.to_string())),
    };
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|field| {
            (
                field.name.to_ascii_lowercase(),
                String::from_utf8_lossy(field.value).into_owned(),
            )
        })
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .filter(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
            .collect::<Vec<_>>()
    };
    let lengths = find("content-length");
    let encodings = find("transfer-encoding");
    if lengths.len() > 1 || (!lengths.is_empty() && !encodings.is_empty()) {
        return Err(Sent::Malformed(format!(
            "ambiguous framing: content-length {lengths:?}, transfer-encoding {encodings:?}"
        )));
    }
    let rest = &bytes[head..];
    let (body, used) = if encodings.iter().any(|value| value.contains("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = lengths.first() {
        let length: usize = length
            .trim()
            .parse()
            .map_err(|_| Sent::Malformed(format!("content-length {length:?}")))?;
        if rest.len() < length {
            return Err(Sent::Truncated);
        }
        (rest[..length].to_vec(), length)
    } else {
        (Vec::new(), 0)
    };
    Ok((
        Sent::Complete {
            method: request.method.unwrap_or_default().to_owned(),
            target: request.path.unwrap_or_default().to_owned(),
            headers,
            body,
        },
        head + used,
    ))
}

/// A chunked body and how many bytes it took.
fn dechunk(mut bytes: &[u8]) -> Result<(Vec<u8>, usize), Sent> {
    let total = bytes.len();
    let mut body = Vec::new();
    loop {
        let (start, size) = match httparse::parse_chunk_size(bytes) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Err(Sent::Truncated),
            Err(_) => return Err(Sent::Malformed("bad chunk size".to_owned())),
        };
        let size = usize::try_from(size).map_err(|_| Sent::Malformed("huge chunk".to_owned()))?;
        bytes = &bytes[start..];
        if size == 0 {
            // No trailers from the proxy: the last chunk ends with CRLF.
            if bytes.len() < 2 {
                return Err(Sent::Truncated);
            }
            if &bytes[..2] != b"\r\n" {
                return Err(Sent::Malformed("trailers".to_owned()));
            }
            return Ok((body, total - bytes.len() + 2));
        }
        if bytes.len() < size + 2 {
            return Err(Sent::Truncated);
        }
        body.extend_from_slice(&bytes[..size]);
        if &bytes[size..size + 2] != b"\r\n" {
            return Err(Sent::Malformed("chunk without CRLF".to_owned()));
        }
        bytes = &bytes[size + 2..];
    }
}

/// A TCP stream that keeps a copy of every byte read from it.
struct Tap {
    stream: TcpStream,
    bytes: Recording,
}

impl AsyncRead for Tap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            lock(&self.bytes).extend_from_slice(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for Tap {
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
