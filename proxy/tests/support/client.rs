//! The tests' HTTP client: hyper-util's pooled client, as a real client
//! talks to the proxy (keep-alive connections, HTTP/1.1 or HTTP/2 with
//! prior knowledge), and whole answers read within [`WAIT`].
//!
//! ```ignore
//! let client = Client::http1();
//! let answer = client.get(proxy.listen, "/users/7").await;
//! assert_eq!(answer.backend(), Some("b1"));
//! let put = request(Method::PUT, proxy.listen, "/k/1", &[("x-user", "al")], "value");
//! assert_eq!(client.send(put).await.status, StatusCode::OK);
//! ```
//!
//! One copy here instead of one per test file, so that a change of how the
//! tests talk HTTP (a timeout, a protocol option) is made once.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::backend::Echo;
use super::WAIT;

/// A request body as the client sends it.
pub type Body = Full<Bytes>;

/// A whole answer: its head and its body, read to the end.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The value of header `name`, when it is there and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Which test backend answered (its `x-backend`), if one did.
    pub fn backend(&self) -> Option<&str> {
        self.header("x-backend")
    }

    /// The body as (lossy) UTF-8, for messages and text pages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as a test backend's echo of the request it received.
    pub fn echo(&self) -> Echo {
        Echo::parse(&self.body)
    }
}

/// `method http://{to}{path}` with `headers` (a `host` among them replaces
/// the one the client would derive from `to`) and `body`.
pub fn request(
    method: Method,
    to: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{to}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(Full::new(body.into()))
        .expect("a valid request")
}

/// `GET http://{to}{path}`, no body.
pub fn get(to: SocketAddr, path: &str) -> Request<Body> {
    request(Method::GET, to, path, &[], Bytes::new())
}

/// A pooled HTTP client; clones share its connections.
#[derive(Clone, Debug)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<HttpConnector, Body>,
}

impl Client {
    /// HTTP/1.1, connections kept alive between requests.
    pub fn http1() -> Client {
        Client {
            inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// HTTP/2 with prior knowledge (h2c), as the proxy serves it on its
    /// plain-text port.
    pub fn http2() -> Client {
        Client {
            inner: hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        }
    }

    /// Sends `request` and reads the whole answer, or says why not
    /// (including no answer within [`WAIT`]).
    pub async fn try_send(&self, request: Request<Body>) -> Result<Answer, String> {
        let what = format!("{} {}", request.method(), request.uri());
        let answer = tokio::time::timeout(WAIT, async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|error| format!("{what}: {error}"))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|error| format!("{what}: the body: {error}"))?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        })
        .await;
        answer.unwrap_or_else(|_| Err(format!("{what}: no answer within {WAIT:?}")))
    }

    /// Sends `request` and reads the whole answer; fails the test if there
    /// is none.
    pub async fn send(&self, request: Request<Body>) -> Answer {
        self.try_send(request)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// `GET http://{to}{path}`, whole, or why not.
    pub async fn try_get(&self, to: SocketAddr, path: &str) -> Result<Answer, String> {
        self.try_send(get(to, path)).await
    }

    /// `GET http://{to}{path}`, whole; fails the test if there is none.
    pub async fn get(&self, to: SocketAddr, path: &str) -> Answer {
        self.send(get(to, path)).await
    }
}
