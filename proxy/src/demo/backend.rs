//! The demo's backends: HTTP/1.1 servers on loopback ports that answer
//! every request with who they are and what they received, so that a user
//! can see where the proxy sent a request and which headers it added.
//!
//! Each backend has failure switches on its own port, to show failover:
//!
//! - `POST /_demo/fail`: answer `503` to everything but `/_demo/*`, as a
//!   broken instance would; the proxy retries such answers on the replica.
//! - `POST /_demo/recover`: answer normally again.
//! - `POST /_demo/down?seconds=N` (default 30): close the listener and every
//!   connection, as a crashed instance would (connection refused), then
//!   listen on the *same* port again after `N` seconds; the SRV record
//!   still names that port. It is answered once the port is closed.
//!
//! The switches answer only requests sent to the backend directly: one that
//! came through the proxy (it carries `Via`) gets `403`, since the proxy
//! would have sent it to whichever node owns the path `/_demo/fail`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderName, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use shardproxy_ring::Token;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::DemoBackendInfo;

/// The header that names the node that answered.
pub static SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");

/// How long `POST /_demo/down` stays down when it does not say.
const DEFAULT_DOWN: Duration = Duration::from_secs(30);

/// The longest `POST /_demo/down` may ask for.
const MAX_DOWN_SECONDS: u64 = 3600;

/// How long to wait before trying again when the port cannot be bound
/// again after a down period (something else took it meanwhile).
const REBIND_RETRY: Duration = Duration::from_secs(1);

/// How long to pause after an accept error (e.g. out of file descriptors)
/// before accepting again, so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Pending connections the kernel queues for a backend.
const BACKLOG: u32 = 1024;

/// What a backend does with requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// Answers `200`.
    Up,
    /// Answers `503` (except to its switches).
    Failing,
    /// Listens nowhere until `until`.
    Down {
        /// When it listens again.
        until: Instant,
    },
    /// The demo is stopping: close everything for good.
    Stopped,
}

impl Mode {
    /// Whether it is down for a while (not stopped for good).
    pub(super) fn is_down(self) -> bool {
        matches!(self, Mode::Down { .. })
    }

    /// Whether connections must close.
    fn closes_connections(self) -> bool {
        matches!(self, Mode::Down { .. } | Mode::Stopped)
    }
}

/// What the connection tasks and the accept loop share.
#[derive(Debug)]
struct Shared {
    info: DemoBackendInfo,
    mode: watch::Sender<Mode>,
    /// Whether the port is open: `POST /_demo/down` answers once it is
    /// not, so that whoever asked can count on connections being refused.
    listening: watch::Sender<bool>,
}

/// A running demo backend. Dropping it stops it.
#[derive(Debug)]
pub(super) struct Backend {
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

// === impl Backend ===

impl Backend {
    /// Binds `bind` (port 0 picks one) and serves as `host` from a spawned
    /// task.
    ///
    /// # Errors
    ///
    /// The socket cannot be bound.
    pub(super) async fn start(
        bind: SocketAddr,
        host: &str,
        token: Option<Token>,
    ) -> io::Result<Backend> {
        let listener = listen(bind)?;
        let addr = listener.local_addr()?;
        let info = DemoBackendInfo {
            name: format!("{host}:{}", addr.port()),
            host: host.to_owned(),
            addr,
            token,
        };
        let (mode, _) = watch::channel(Mode::Up);
        let (listening, _) = watch::channel(true);
        let shared = Arc::new(Shared {
            info,
            mode,
            listening,
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
        debug!(backend = %shared.info.name, %addr, "demo backend listening");
        Ok(Backend {
            shared,
            task: Some(task),
        })
    }

    /// Its name, address and token.
    pub(super) fn info(&self) -> &DemoBackendInfo {
        &self.shared.info
    }

    /// What it does now, and each change of it; the channel closes when
    /// the backend is stopped.
    pub(super) fn watch_mode(&self) -> watch::Receiver<Mode> {
        self.shared.mode.subscribe()
    }

    /// Stops accepting, closes its connections once their requests are
    /// answered, and waits for the listener to close.
    pub(super) async fn shutdown(mut self) {
        self.shared.mode.send_replace(Mode::Stopped);
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                warn!(backend = %self.shared.info.name, %error, "demo backend task failed");
            }
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        // Tells the accept loop and the connections to end; they do on their
        // own, nothing waits for them.
        self.shared.mode.send_replace(Mode::Stopped);
    }
}

/// Binds a listener with `SO_REUSEADDR`, so that the port can be bound
/// again right after a down period even while old connections linger in
/// TIME_WAIT.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The backend's life: serve while up or failing; while down, listen
/// nowhere, then bind the same port again; end when stopped.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let addr = shared.info.addr;
    let mut mode = shared.mode.subscribe();
    let mut listener = Some(listener);
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Mode::Stopped => return,
            Mode::Up | Mode::Failing => {
                let serving = match listener.take() {
                    Some(listener) => listener,
                    None => match listen(addr) {
                        Ok(listener) => {
                            info!(backend = %shared.info.name, "demo backend is listening again");
                            shared.listening.send_replace(true);
                            listener
                        }
                        Err(error) => {
                            warn!(backend = %shared.info.name, %error, "cannot listen on the same port again; retrying");
                            tokio::select! {
                                () = tokio::time::sleep(REBIND_RETRY) => {}
                                changed = mode.changed() => if changed.is_err() { return },
                            }
                            continue;
                        }
                    },
                };
                if !accept_until_down(&serving, &shared, &mut mode).await {
                    return;
                }
                // Closes the port: connection refused.
                drop(serving);
                shared.listening.send_replace(false);
            }
            Mode::Down { until } => {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {
                        // Back up, unless someone changed the mode meanwhile.
                        shared.mode.send_if_modified(|mode| {
                            let expired = *mode == Mode::Down { until };
                            if expired {
                                *mode = Mode::Up;
                            }
                            expired
                        });
                    }
                    changed = mode.changed() => if changed.is_err() { return },
                }
            }
        }
    }
}

/// Accepts connections until the mode closes them. Returns false when the
/// backend must stop for good.
async fn accept_until_down(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    mode: &mut watch::Receiver<Mode>,
) -> bool {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(connection(stream, Arc::clone(shared)));
                }
                Err(error) => {
                    debug!(backend = %shared.info.name, %error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return false;
                }
                if mode.borrow_and_update().closes_connections() {
                    return true;
                }
            }
        }
    }
}

/// Serves one connection until it ends, or until the backend goes down or
/// stops: then it finishes the request in progress and closes.
async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let mut mode = shared.mode.subscribe();
    let service = {
        let shared = Arc::clone(&shared);
        service_fn(move |request: Request<Incoming>| {
            let response = respond(&shared, &request);
            let mut listening = shared.listening.subscribe();
            let down = shared.mode.borrow().is_down();
            async move {
                if down {
                    // A `POST /_demo/down` is answered once the port is
                    // closed. (An error: the backend is gone, so is the port.)
                    let _ = listening.wait_for(|listening| !listening).await;
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                debug!(backend = %shared.info.name, %error, "connection ended with an error");
            }
            return;
        }
        // An error means the backend is gone: close as well.
        _ = mode.wait_for(|mode| mode.closes_connections()) => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(error) = conn.await {
        debug!(backend = %shared.info.name, %error, "connection ended with an error");
    }
}

/// Answers a request: a switch under `/_demo/`, or the echo.
fn respond(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(action) = request.uri().path().strip_prefix("/_demo/") {
        return switch(shared, request, action);
    }
    let name = &shared.info.name;
    if *shared.mode.borrow() == Mode::Failing {
        return text(
            shared,
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{name} is failing on purpose: POST http://{}/_demo/recover to bring it back\n",
                shared.info.addr
            ),
        );
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let mut body = format!("{name} answered {} {target}\n", request.method());
    for header in [
        header::HOST,
        HeaderName::from_static("x-forwarded-for"),
        HeaderName::from_static("x-forwarded-proto"),
        header::VIA,
    ] {
        let values: Vec<String> = request
            .headers()
            .get_all(&header)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        let shown = if values.is_empty() {
            "(none)".to_owned()
        } else {
            values.join(", ")
        };
        body.push_str(&format!("  {header}: {shown}\n"));
    }
    text(shared, StatusCode::OK, body)
}

/// `POST /_demo/fail`, `/_demo/recover` and `/_demo/down?seconds=N`.
fn switch(shared: &Shared, request: &Request<Incoming>, action: &str) -> Response<Full<Bytes>> {
    let name = &shared.info.name;
    let addr = shared.info.addr;
    if request.headers().contains_key(header::VIA) {
        return text(
            shared,
            StatusCode::FORBIDDEN,
            format!(
                "{name}: /_demo/ switches work on a backend's own port, not through the \
                 proxy (which sends them to whichever node owns the path /_demo/{action}); \
                 for this node: curl -X POST http://{addr}/_demo/{action}\n"
            ),
        );
    }
    let known = matches!(action, "fail" | "recover" | "down");
    if !known {
        return text(
            shared,
            StatusCode::NOT_FOUND,
            format!("{name}: unknown switch /_demo/{action}: use POST /_demo/fail, /_demo/recover or /_demo/down?seconds=N\n"),
        );
    }
    if request.method() != Method::POST {
        let mut response = text(
            shared,
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{name}: use POST /_demo/{action}\n"),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    match action {
        "fail" => {
            shared.mode.send_replace(Mode::Failing);
            info!(backend = %name, "demo backend failing on purpose");
            text(
                shared,
                StatusCode::OK,
                format!("{name} now answers 503 to every request; POST http://{addr}/_demo/recover to bring it back\n"),
            )
        }
        "recover" => {
            shared.mode.send_replace(Mode::Up);
            info!(backend = %name, "demo backend recovered");
            text(
                shared,
                StatusCode::OK,
                format!("{name} answers normally again\n"),
            )
        }
        _ => {
            let seconds = match down_seconds(request.uri().query()) {
                Ok(seconds) => seconds,
                Err(message) => {
                    return text(
                        shared,
                        StatusCode::BAD_REQUEST,
                        format!("{name}: {message}\n"),
                    )
                }
            };
            let until = Instant::now() + seconds;
            shared.mode.send_replace(Mode::Down { until });
            info!(backend = %name, ?seconds, "demo backend down on purpose");
            text(
                shared,
                StatusCode::OK,
                format!(
                    "{name} is down for {}s: connections to {addr} are refused until then\n",
                    seconds.as_secs()
                ),
            )
        }
    }
}

/// The `seconds` parameter of `/_demo/down`: 1 to [`MAX_DOWN_SECONDS`],
/// [`DEFAULT_DOWN`] when absent.
fn down_seconds(query: Option<&str>) -> Result<Duration, String> {
    let given = query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .find_map(|pair| pair.strip_prefix("seconds="));
    let Some(given) = given else {
        return Ok(DEFAULT_DOWN);
    };
    match given.parse::<u64>() {
        Ok(seconds) if (1..=MAX_DOWN_SECONDS).contains(&seconds) => {
            Ok(Duration::from_secs(seconds))
        }
        _ => Err(format!(
            "seconds={given}: expected a whole number of seconds from 1 to {MAX_DOWN_SECONDS}"
        )),
    }
}

/// A plain-text response that names the node.
fn text(shared: &Shared, status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&shared.info.name) {
        headers.insert(SERVED_BY.clone(), value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_seconds_defaults_and_bounds() {
        assert_eq!(down_seconds(None), Ok(DEFAULT_DOWN));
        assert_eq!(down_seconds(Some("x=1")), Ok(DEFAULT_DOWN));
        assert_eq!(
            down_seconds(Some("x=1&seconds=5")),
            Ok(Duration::from_secs(5))
        );
        assert!(down_seconds(Some("seconds=0")).is_err());
        assert!(down_seconds(Some("seconds=3601")).is_err());
        assert!(down_seconds(Some("seconds=1s")).is_err());
    }
}
