//! Real HTTP test backends (shard stubs) on `127.0.0.1:0`, for the proxy's
//! integration tests.
//!
//! ```ignore
//! let b1 = Backend::start("b1").await;
//! // ... publish b1.addr() in a ring, send requests through the proxy ...
//! b1.set(Behaviour::Status(503)); // from now on every request gets 503
//! b1.stop().await;                // its port now refuses connections
//! b1.restart().await;             // the same port serves again
//! assert_eq!(b1.requests(), 3);
//! ```
//!
//! Every answer carries `x-backend: NAME` and a JSON body ([`Echo`]) that
//! echoes the request as the backend received it: method, target (path and
//! query), version, every header in order (duplicates kept) and the body.
//! Tests read it to see what the proxy forwarded: `Host`,
//! `X-Forwarded-For`, `Via`, the absence of hop-by-hop headers, the body.
//!
//! A request carrying `x-test-hop-by-hop-response: 1` gets an answer with
//! hop-by-hop headers too (`Connection: x-internal`, `X-Internal`,
//! `Keep-Alive`, `Proxy-Authenticate`), to check that the proxy removes them
//! on the way back.
//!
//! [`Backend::reply_at`] sets, for paths under a prefix, the status,
//! response headers and (instead of the echo) a body of a given length,
//! and answers `304` to a request whose `If-None-Match` is the reply's
//! `etag` (counted by [`Backend::not_modified`]), for the cache's tests.
//! Every answer carries `x-request-number`: the backend's request count
//! when it arrived.
//!
//! [`Backend::hold`] makes requests wait (counted in flight) until
//! [`Backend::release`], so that a test can line up concurrent requests
//! without timing.
//!
//! The backend counts requests (every request head it reads, whatever it
//! then does) and accepted connections (to check upstream keep-alive), and
//! its [`Behaviour`] can be switched while it runs.
//!
//! With [`Behaviour::Store`] it is a small key-value store instead, keyed by
//! the request target: PUT, POST and PATCH store the body and its
//! `Content-Type` (`200`; a PUT with `If-None-Match: *` where an object is
//! stored is `412` and stores nothing), GET and HEAD answer it (`404` when
//! absent), DELETE removes it (`204`, or `404`).
//! Tests read and seed the store with [`Backend::stored`] and
//! [`Backend::put`], across [`Backend::stop`] and [`Backend::restart`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, Notify};
use tokio::task::{JoinHandle, JoinSet};

/// The request header that asks for hop-by-hop headers in the answer.
pub const HOP_BY_HOP_RESPONSE: &str = "x-test-hop-by-hop-response";

/// How a backend answers, switchable at run time with [`Backend::set`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Behaviour {
    /// `200` with the echo.
    #[default]
    Healthy,
    /// This status, with the echo as the body.
    Status(u16),
    /// Reads the request and never answers (the connection stays open).
    Hang,
    /// Reads the request head, then closes the connection without answering.
    Reset,
    /// Waits this long, then answers `200` with the echo.
    Slow(Duration),
    /// A key-value store (see the module documentation).
    Store,
}

/// A fixed answer for the paths under a prefix ([`Backend::reply_at`]).
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status (unless the behaviour sets one).
    pub status: u16,
    /// Response headers, added to `x-backend` and `content-type`.
    pub headers: Vec<(String, String)>,
    /// A body of this many bytes (`x`) instead of the echo.
    pub body_len: Option<usize>,
}

impl Default for Reply {
    fn default() -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            body_len: None,
        }
    }
}

impl Reply {
    /// A `200` with these headers.
    pub fn with(headers: &[(&str, &str)]) -> Reply {
        Reply {
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            ..Reply::default()
        }
    }

    /// This reply with a body of `len` bytes.
    pub fn body_len(self, len: usize) -> Reply {
        Reply {
            body_len: Some(len),
            ..self
        }
    }

    /// The value of header `name` (lower case), if set.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// What a backend saw: the JSON body of its answers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Echo {
    /// The backend's name.
    pub backend: String,
    /// The request method.
    pub method: String,
    /// The request target as received (origin-form: path and query).
    pub uri: String,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub version: String,
    /// Every header as received, in order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, as (lossy) UTF-8.
    pub body: String,
    /// The body's length in bytes.
    pub body_len: usize,
}

impl Echo {
    /// Parses an answer's body.
    ///
    /// # Panics
    ///
    /// When `body` is not an echo.
    pub fn parse(body: &[u8]) -> Echo {
        serde_json::from_slice(body).unwrap_or_else(|error| {
            panic!(
                "not a backend echo ({error}): {}",
                String::from_utf8_lossy(body)
            )
        })
    }

    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of header `name` (lower case).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

/// A running test backend. Dropping it stops it.
pub struct Backend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    serving: Mutex<Option<Serving>>,
}

/// What the accept loop and every connection share.
struct Shared {
    name: String,
    behaviour: Mutex<Behaviour>,
    /// Replies by path prefix; the latest set for a path wins.
    replies: Mutex<Vec<(String, Reply)>>,
    not_modified: AtomicU64,
    /// `true` while requests are let through ([`Backend::hold`]).
    open: tokio::sync::watch::Sender<bool>,
    requests: AtomicU64,
    in_flight: AtomicU64,
    connections: AtomicU64,
    /// What [`Behaviour::Store`] holds, by request target.
    store: Mutex<HashMap<String, Stored>>,
}

/// One object of [`Behaviour::Store`].
#[derive(Clone)]
struct Stored {
    body: Bytes,
    content_type: Option<HeaderValue>,
}

/// Counts a request as in flight for as long as it lives (until answered,
/// or dropped with its connection).
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The accept loop of a serving backend, and the way to stop it.
struct Serving {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

// === impl Backend ===

impl Backend {
    /// Starts a healthy backend called `name` on `127.0.0.1:0`.
    pub async fn start(name: &str) -> Backend {
        let listener = listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            behaviour: Mutex::new(Behaviour::Healthy),
            replies: Mutex::default(),
            not_modified: AtomicU64::new(0),
            open: tokio::sync::watch::Sender::new(true),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            store: Mutex::new(HashMap::new()),
        });
        let serving = Serving::spawn(listener, Arc::clone(&shared));
        Backend {
            addr,
            shared,
            serving: Mutex::new(Some(serving)),
        }
    }

    /// The name given to [`Backend::start`], sent as `x-backend`.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Where it listens (the same across [`Backend::restart`]).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches how every request from now on is answered (requests already
    /// being answered keep their behaviour).
    pub fn set(&self, behaviour: Behaviour) {
        *self
            .shared
            .behaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = behaviour;
    }

    /// From now on, requests whose path starts with `prefix` get `reply`
    /// (the latest reply set for a path wins).
    pub fn reply_at(&self, prefix: &str, reply: Reply) {
        self.shared
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((prefix.to_owned(), reply));
    }

    /// From now on, requests wait (in flight) until [`Backend::release`].
    pub fn hold(&self) {
        self.shared.open.send_replace(false);
    }

    /// Lets the held requests, and those to come, through.
    pub fn release(&self) {
        self.shared.open.send_replace(true);
    }

    /// `304`s answered to a matching `If-None-Match`.
    pub fn not_modified(&self) -> u64 {
        self.shared.not_modified.load(Ordering::SeqCst)
    }

    /// Requests received so far (every request head read, whatever the
    /// behaviour).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests received and not yet answered (a hanging or slow request,
    /// until it is answered or its connection is dropped).
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// What the store holds at `target` (path and query).
    pub fn stored(&self, target: &str) -> Option<Bytes> {
        self.lock_store()
            .get(target)
            .map(|stored| stored.body.clone())
    }

    /// The `Content-Type` the store holds with the object at `target`.
    pub fn stored_type(&self, target: &str) -> Option<HeaderValue> {
        self.lock_store()
            .get(target)
            .and_then(|stored| stored.content_type.clone())
    }

    /// Puts `value` in the store at `target` (path and query), as a PUT
    /// with [`Behaviour::Store`] would.
    pub fn put(&self, target: &str, value: impl Into<Bytes>) {
        let stored = Stored {
            body: value.into(),
            content_type: None,
        };
        self.lock_store().insert(target.to_owned(), stored);
    }

    fn lock_store(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stored>> {
        self.shared
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// True while it accepts connections.
    pub fn is_running(&self) -> bool {
        self.lock_serving().is_some()
    }

    /// Stops it: the listener is closed (its port refuses connections) and
    /// every open connection is dropped, requests in flight unanswered.
    /// Returns once all of them are closed. Stopping a stopped backend does
    /// nothing.
    pub async fn stop(&self) {
        let serving = self.lock_serving().take();
        if let Some(serving) = serving {
            // An error means the loop has already ended.
            let _ = serving.stop.send(());
            serving.task.await.expect("the accept loop does not panic");
        }
    }

    /// Serves again on the same address after [`Backend::stop`], with the
    /// same counters and behaviour.
    ///
    /// # Panics
    ///
    /// When it is running, or the port was taken meanwhile.
    pub async fn restart(&self) {
        assert!(!self.is_running(), "{} is already running", self.name());
        let listener = listen(self.addr);
        let serving = Serving::spawn(listener, Arc::clone(&self.shared));
        *self.lock_serving() = Some(serving);
    }

    /// Stops it and waits until its sockets are closed.
    pub async fn shutdown(self) {
        self.stop().await;
    }

    fn lock_serving(&self) -> std::sync::MutexGuard<'_, Option<Serving>> {
        self.serving.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(serving) = self.lock_serving().take() {
            // Dropping the loop drops the listener and its JoinSet, which
            // aborts every connection.
            serving.task.abort();
        }
    }
}

/// Binds `addr` with `SO_REUSEADDR`, so that a stopped backend can bind its
/// port again while old connections linger in `TIME_WAIT`.
fn listen(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("a TCP socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(addr)
        .unwrap_or_else(|error| panic!("cannot bind a test backend on {addr}: {error}"));
    socket.listen(1024).expect("listen")
}

// === impl Serving ===

impl Serving {
    fn spawn(listener: TcpListener, shared: Arc<Shared>) -> Serving {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, shared, stopped));
        Serving { stop, task }
    }
}

/// Accepts and serves connections until told to stop, then closes the
/// listener and every connection.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                connections.spawn(serve(stream, Arc::clone(&shared)));
            }
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            // Told to stop, or the backend is gone.
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Serves one connection until it ends or a request asks for a reset.
async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let reset = Arc::new(Notify::new());
    let service = {
        let reset = Arc::clone(&reset);
        service_fn(move |request| respond(Arc::clone(&shared), Arc::clone(&reset), request))
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        // Dropping the connection closes the socket without an answer.
        () = reset.notified() => {}
    }
}

/// Answers one request according to the current behaviour.
async fn respond(
    shared: Arc<Shared>,
    reset: Arc<Notify>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let number = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight(Arc::clone(&shared));
    // An error means the sender is gone with the backend: go on.
    let _ = shared.open.subscribe().wait_for(|open| *open).await;
    let behaviour = *shared
        .behaviour
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if behaviour == Behaviour::Reset {
        reset.notify_one();
        return std::future::pending().await;
    }
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if behaviour == Behaviour::Store {
        return Ok(store(&shared, &parts, body));
    }
    let echo = Echo {
        backend: shared.name.clone(),
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        body_len: body.len(),
    };
    let reply = shared
        .replies
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .rev()
        .find(|(prefix, _)| parts.uri.path().starts_with(prefix.as_str()))
        .map(|(_, reply)| reply.clone());
    let status = match behaviour {
        Behaviour::Hang => return std::future::pending().await,
        Behaviour::Slow(delay) => {
            tokio::time::sleep(delay).await;
            None
        }
        Behaviour::Status(code) => Some(StatusCode::from_u16(code).expect("a valid status code")),
        Behaviour::Healthy | Behaviour::Reset | Behaviour::Store => None,
    };
    let reply = reply.unwrap_or_default();
    let revalidated = reply.header("etag").is_some_and(|etag| {
        parts
            .headers
            .get("if-none-match")
            .is_some_and(|condition| condition.as_bytes() == etag.as_bytes())
    });
    let status = match status {
        Some(status) => status,
        None if revalidated => {
            shared.not_modified.fetch_add(1, Ordering::SeqCst);
            StatusCode::NOT_MODIFIED
        }
        None => StatusCode::from_u16(reply.status).expect("a valid status code"),
    };
    let body = if status == StatusCode::NOT_MODIFIED {
        Bytes::new()
    } else if let Some(len) = reply.body_len {
        Bytes::from(vec![b'x'; len])
    } else {
        Bytes::from(serde_json::to_vec(&echo).expect("an echo serializes"))
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in &reply.headers {
        headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    headers.insert("x-request-number", HeaderValue::from(number));
    headers.insert(
        "x-backend",
        HeaderValue::from_str(&shared.name).expect("a backend name is a header value"),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if parts.headers.contains_key(HOP_BY_HOP_RESPONSE) {
        headers.insert("connection", HeaderValue::from_static("x-internal"));
        headers.insert("x-internal", HeaderValue::from_static("secret"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
    }
    Ok(response)
}

/// Answers one request as a key-value store keyed by the request target.
fn store(shared: &Shared, parts: &http::request::Parts, body: Bytes) -> Response<Full<Bytes>> {
    let target = parts.uri.to_string();
    let mut store = shared.store.lock().unwrap_or_else(PoisonError::into_inner);
    let create_only = parts.method == http::Method::PUT
        && parts
            .headers
            .get(http::header::IF_NONE_MATCH)
            .is_some_and(|condition| condition.as_bytes() == b"*");
    let mut content_type = None;
    let (status, answer) = match parts.method {
        _ if create_only && store.contains_key(&target) => {
            (StatusCode::PRECONDITION_FAILED, Bytes::new())
        }
        http::Method::PUT | http::Method::POST | http::Method::PATCH => {
            let stored = Stored {
                body,
                content_type: parts.headers.get(http::header::CONTENT_TYPE).cloned(),
            };
            store.insert(target, stored);
            (StatusCode::OK, Bytes::from_static(b"stored"))
        }
        http::Method::GET | http::Method::HEAD => match store.get(&target) {
            Some(stored) => {
                content_type.clone_from(&stored.content_type);
                (StatusCode::OK, stored.body.clone())
            }
            None => (StatusCode::NOT_FOUND, Bytes::new()),
        },
        http::Method::DELETE => match store.remove(&target) {
            Some(_) => (StatusCode::NO_CONTENT, Bytes::new()),
            None => (StatusCode::NOT_FOUND, Bytes::new()),
        },
        _ => (StatusCode::METHOD_NOT_ALLOWED, Bytes::new()),
    };
    let mut response = Response::new(Full::new(answer));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, content_type);
    }
    response.headers_mut().insert(
        "x-backend",
        HeaderValue::from_str(&shared.name).expect("a backend name is a header value"),
    );
    response
}
