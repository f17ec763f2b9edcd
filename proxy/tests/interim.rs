//! Interim (`1xx`) responses of an instance reach the client before the
//! final response (SPEC §13), on real sockets: an in-process proxy in
//! front of a raw TCP backend that writes a `1xx`, then holds its final
//! response until the test lets it go, so that the client is seen to have
//! the `1xx` before the final response even exists.
//!
//! Also: HTTP/2 clients get them as `HEADERS` frames (read with the `h2`
//! client's `poll_informational`, and by curl, whose nghttp2 is a strict
//! HPACK decoder, also over HTTPS with ALPN `h2`); hop-by-hop fields are
//! removed from them; a cached service's hit replays none (as the
//! cache-tests suite's `interim-not-cached` and `interim-no-header-reuse`);
//! an instance's `100 Continue` is never a second one for a client that
//! sent `Expect: 100-continue`, and reaches one that did not; an HTTP/1.0
//! client gets none.

#![cfg(test)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::StatusCode;
use shardproxy::run::Running;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use support::pki::Pki;
use support::raw::{read_head, Raw, Reply};
use support::WAIT;

/// The `103` the backend sends.
const EARLY_HINTS: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n";

/// A raw backend: to each request it reads it writes `interim`, waits for
/// a permit of `release` when `held`, reads the request's body, then
/// answers `200` with `ok` (cacheable for a minute).
struct Backend {
    addr: SocketAddr,
    release: Arc<Semaphore>,
    requests: Arc<AtomicU64>,
}

impl Backend {
    async fn start(interim: &'static [u8], held: bool) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = Arc::new(Semaphore::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let (permits, counted) = (Arc::clone(&release), Arc::clone(&requests));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (release, requests) = (Arc::clone(&permits), Arc::clone(&counted));
                tokio::spawn(serve(stream, interim, held.then_some(release), requests));
            }
        });
        Backend {
            addr,
            release,
            requests,
        }
    }

    /// Lets one held request have its final response.
    fn release(&self) {
        self.release.add_permits(1);
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// One backend connection's requests.
async fn serve(
    mut stream: TcpStream,
    interim: &'static [u8],
    release: Option<Arc<Semaphore>>,
    requests: Arc<AtomicU64>,
) {
    while let Some(head) = read_head(&mut stream).await {
        requests.fetch_add(1, Ordering::SeqCst);
        stream.write_all(interim).await.unwrap();
        if let Some(release) = &release {
            release.acquire().await.unwrap().forget();
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |value| value.trim().parse::<usize>().unwrap());
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.unwrap();
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: max-age=60\r\n\r\nok";
        if stream.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// A proxy whose service `frob` has `backend` as its one instance, with
/// `service` as more lines of the service's table.
async fn proxy(backend: &Backend, service: &str) -> Running {
    let instance = format!(
        "    {{ host = \"raw.example.com\", addr = \"{}\", tokens = [\"40\"] }},",
        backend.addr
    );
    let config = support::static_config(
        &[instance],
        &format!("slaves = 0\n{service}"),
        "[[routes]]\nservice = \"frob\"",
    );
    support::start_proxy(&config, "interim.toml").await
}

/// A `GET` of `path` as an HTTP/1.1 client sends it.
fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: frob.example.com\r\n\r\n").into_bytes()
}

/// `GET path` on `client`: the `103` comes while `backend` holds the final
/// response, which it then gets to send; that response.
async fn get_hinted(client: &mut Raw, backend: &Backend, path: &str) -> Reply {
    client.send(&get(path)).await;
    let hints = client.reply().await.expect("the 103");
    assert_eq!(hints.status, 103);
    assert_eq!(hints.header("link"), Some("</s.css>; rel=preload"));
    backend.release();
    let answer = client.reply().await.expect("the final response");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "ok");
    // 103's fields are not the final response's.
    assert_eq!(answer.header("link"), None);
    answer
}

#[tokio::test]
async fn an_http11_client_gets_the_103_before_the_final_response_exists() {
    let backend = Backend::start(EARLY_HINTS, true).await;
    let proxy = proxy(&backend, "").await;
    let mut client = Raw::connect(proxy.listen).await;
    get_hinted(&mut client, &backend, "/a").await;
    // The connection goes on: the next request gets its own.
    get_hinted(&mut client, &backend, "/b").await;
}

#[tokio::test]
async fn an_h2_client_gets_the_103_before_the_final_response_exists() {
    let backend = Backend::start(EARLY_HINTS, true).await;
    let proxy = proxy(&backend, "").await;
    let stream = TcpStream::connect(proxy.listen).await.unwrap();
    let (mut client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    // Two requests, so that the second's stream (3) must be told from the
    // first's.
    for path in ["/a", "/b"] {
        let request = http::Request::get(format!("http://frob.example.com{path}"))
            .body(())
            .unwrap();
        client = client.ready().await.unwrap();
        let (mut response, _) = client.send_request(request, true).unwrap();
        let hints = tokio::time::timeout(
            WAIT,
            std::future::poll_fn(|cx| response.poll_informational(cx)),
        )
        .await
        .expect("the 103 within the wait")
        .expect("an informational response")
        .unwrap();
        assert_eq!(hints.status(), StatusCode::EARLY_HINTS);
        assert_eq!(hints.headers()["link"], "</s.css>; rel=preload");
        backend.release();
        let answer = tokio::time::timeout(WAIT, response).await.unwrap().unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert!(answer.headers().get("link").is_none());
        let mut body = answer.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            text.extend_from_slice(&chunk);
        }
        assert_eq!(text, b"ok");
    }
}

#[tokio::test]
async fn a_cache_hit_replays_no_1xx_nor_its_headers() {
    let backend = Backend::start(EARLY_HINTS, true).await;
    let proxy = proxy(&backend, "\n[services.frob.cache]\nenabled = true").await;
    let mut client = Raw::connect(proxy.listen).await;
    let miss = get_hinted(&mut client, &backend, "/cached").await;
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    client.send(&get("/cached")).await;
    let hit = client.reply().await.unwrap();
    assert_eq!(hit.status, 200, "the hit's first response is the final one");
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.header("link"), None);
    assert_eq!(hit.body, "ok");
    assert_eq!(backend.requests(), 1);
}

#[tokio::test]
async fn an_instances_100_is_not_a_second_one() {
    let backend = Backend::start(b"HTTP/1.1 100 Continue\r\n\r\n", false).await;
    let proxy = proxy(&backend, "").await;
    let mut client = Raw::connect(proxy.listen).await;
    client
        .send(
            b"POST /upload HTTP/1.1\r\nHost: frob.example.com\r\nContent-Length: 5\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .await;
    assert_eq!(client.reply().await.unwrap().status, 100);
    client.send(b"hello").await;
    let answer = client.reply().await.unwrap();
    assert_eq!(answer.status, 200, "the next response is the final one");
    assert_eq!(answer.body, "ok");
    assert_eq!(backend.requests(), 1);
}

/// SPEC §13 forwards an instance's `100 Continue` like any `1xx` when the
/// client did not ask for one.
#[tokio::test]
async fn an_instances_100_reaches_a_client_that_did_not_ask() {
    let backend = Backend::start(b"HTTP/1.1 100 Continue\r\n\r\n", false).await;
    let proxy = proxy(&backend, "").await;
    let mut client = Raw::connect(proxy.listen).await;
    client
        .send(b"POST /upload HTTP/1.1\r\nHost: frob.example.com\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    assert_eq!(client.reply().await.unwrap().status, 100);
    let answer = client.reply().await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "ok");
}

#[tokio::test]
async fn an_http10_client_gets_no_1xx() {
    let backend = Backend::start(EARLY_HINTS, false).await;
    let proxy = proxy(&backend, "").await;
    let mut client = Raw::connect(proxy.listen).await;
    client
        .send(b"GET /old HTTP/1.0\r\nHost: frob.example.com\r\n\r\n")
        .await;
    let answer = client.reply().await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "ok");
    assert_eq!(answer.header("link"), None);
    assert_eq!(backend.requests(), 1);
}

#[tokio::test]
async fn a_1xx_right_before_the_final_response_comes_first_without_hop_by_hop_fields() {
    let backend = Backend::start(
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nConnection: x-hint\r\n\
          X-Hint: 1\r\nKeep-Alive: timeout=5\r\n\r\n",
        false,
    )
    .await;
    let proxy = proxy(&backend, "").await;
    let mut client = Raw::connect(proxy.listen).await;
    client.send(&get("/now")).await;
    let hints = client.reply().await.unwrap();
    assert_eq!(hints.status, 103);
    assert_eq!(hints.header("link"), Some("</s.css>; rel=preload"));
    for hop_by_hop in ["connection", "x-hint", "keep-alive"] {
        assert_eq!(hints.header(hop_by_hop), None, "{hop_by_hop}");
    }
    let answer = client.reply().await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "ok");
}

/// `curl -v` (its HTTP/2 is nghttp2's, a strict HPACK decoder) fetching
/// `url` with `args`: the status lines and `Link` fields it shows, in
/// order, in lower case.
///
/// One request per connection: curl 7.88's second request on a reused
/// HTTP/2 prior-knowledge connection fails ("Error in the HTTP2 framing
/// layer") with or without a `1xx`, and without this proxy's `1xx` IO
/// wrapper too; two requests on one connection are the `h2` client's test.
async fn curl_shown(url: String, args: &[&str]) -> Vec<String> {
    let mut command = std::process::Command::new("curl");
    command
        .args(["-sS", "-v", "--max-time", "10", "-o", "/dev/null"])
        .args(args)
        .arg(url);
    let output = tokio::task::spawn_blocking(move || command.output().expect("curl runs"))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("< "))
        .map(|line| line.trim_end().to_ascii_lowercase())
        .filter(|line| line.starts_with("http/") || line.starts_with("link:"))
        .collect()
}

/// What curl shows of a `103` then a `200` over `version`.
fn hinted(version: &str) -> Vec<String> {
    // HTTP/2 has no reason phrases.
    let (hints, ok) = match version {
        "http/2" => ("103", "200"),
        _ => ("103 early hints", "200 ok"),
    };
    vec![
        format!("{version} {hints}"),
        "link: </s.css>; rel=preload".to_owned(),
        format!("{version} {ok}"),
    ]
}

#[tokio::test]
async fn curl_sees_the_103_first_over_http11_and_h2c() {
    let backend = Backend::start(EARLY_HINTS, false).await;
    let proxy = proxy(&backend, "").await;
    let url = || format!("http://{}/c", proxy.listen);
    assert_eq!(curl_shown(url(), &["--http1.1"]).await, hinted("http/1.1"));
    assert_eq!(
        curl_shown(url(), &["--http2-prior-knowledge"]).await,
        hinted("http/2")
    );
}

#[tokio::test]
async fn curl_sees_the_103_first_over_https_with_either_alpn() {
    let pki = Pki::new("interim");
    let server = pki.server("interim-tls", 1);
    let backend = Backend::start(EARLY_HINTS, false).await;
    let instance = format!(
        "    {{ host = \"raw.example.com\", addr = \"{}\", tokens = [\"40\"] }},",
        backend.addr
    );
    let config = support::static_config(
        &[instance],
        "slaves = 0",
        &format!(
            "[[routes]]\nservice = \"frob\"\n\n[server.tls]\ncert = {:?}\nkey = {:?}\n",
            server.cert.display().to_string(),
            server.key.display().to_string()
        ),
    );
    let proxy = support::start_proxy(&config, "interim-tls.toml").await;
    let port = proxy.listen.port();
    let ca = pki.ca().display().to_string();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = || format!("https://localhost:{port}/c");
    for (alpn, version) in [("--http1.1", "http/1.1"), ("--http2", "http/2")] {
        let args = ["--cacert", &ca, "--resolve", &resolve, alpn];
        assert_eq!(curl_shown(url(), &args).await, hinted(version), "{alpn}");
    }
}
