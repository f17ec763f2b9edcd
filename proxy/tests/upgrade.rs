//! Upgrades (SPEC §10) on raw sockets: a `101` relays bytes both ways, any
//! other answer comes back as it is, `Upgrade: h2c` is stripped, upgraded
//! connections are counted in the metrics and in `max_concurrency`, and
//! shutdown closes them at the end of `drain_timeout`. (Real WebSocket
//! clients and servers: `websocket.rs`.)

#![cfg(test)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shardproxy::run::Running;
use support::access_log::AccessLogFile;
use support::client::Client;
use support::raw::{exchange, read_head, Raw};
use support::{start_proxy, sum_samples, wait_until, WAIT};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The switch an upgrading backend answers with.
const SWITCHED: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\n";

/// An upgrade request for the protocol `echo`.
const UPGRADE: &[u8] =
    b"GET /chat HTTP/1.1\r\nHost: shop.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";

/// A backend that reads one request head per connection (kept, for the
/// test to read), answers it with `answer` and then echoes every byte it
/// gets until its peer closes.
struct RawBackend {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    _task: JoinHandle<()>,
}

impl RawBackend {
    async fn start(answer: &'static [u8]) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let Some(head) = read_head(&mut stream).await else {
                        return;
                    };
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head).to_ascii_lowercase());
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        RawBackend {
            addr,
            heads,
            _task: task,
        }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// A proxy whose one instance is `backend`, with `server` lines in
/// `[server]` and `service` lines in the service's section.
async fn proxy_to(backend: &RawBackend, server: &str, service: &str) -> Running {
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{server}\n\n\
         [services.frob]\ninstances = [{{ host = \"raw.example.com\", addr = \"{}\", tokens = [\"ff\"] }}]\n\
         {service}\n\n[[routes]]\npath_prefix = \"/\"\nservice = \"frob\"\n",
        backend.addr
    );
    start_proxy(&config, "upgrade.toml").await
}

/// A connection through the proxy switched to `echo`, after its `101`.
async fn switched(proxy: &Running) -> Raw {
    let (raw, reply) = exchange(proxy.listen, UPGRADE).await;
    let reply = reply.expect("an answer");
    assert_eq!(reply.status, 101, "{reply:?}");
    assert_eq!(reply.header("upgrade"), Some("echo"));
    assert_eq!(reply.header("connection"), Some("upgrade"));
    raw
}

/// The samples of `name` for the service, on the proxy's `/metrics`.
async fn metric(proxy: &Running, name: &str) -> f64 {
    let page = Client::http1().get(proxy.admin, "/metrics").await.text();
    sum_samples(&page, name, &[("service", "frob")])
}

#[tokio::test]
async fn an_upgrade_is_relayed_both_ways_and_counted() {
    let backend = RawBackend::start(SWITCHED).await;
    let proxy = proxy_to(&backend, "", "").await;
    let mut raw = switched(&proxy).await;
    let head = &backend.heads()[0];
    assert!(head.contains("\r\nupgrade: echo\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(
        head.contains("\r\nx-forwarded-for: 127.0.0.1\r\n"),
        "{head}"
    );
    for message in [&b"ping"[..], &[7u8; 100_000][..]] {
        raw.send(message).await;
        assert_eq!(raw.bytes(message.len()).await, message);
    }
    assert_eq!(metric(&proxy, "shardproxy_upgrades_total").await, 1.0);
    assert_eq!(metric(&proxy, "shardproxy_upgraded_connections").await, 1.0);
    drop(raw);
    wait_until("the upgraded connection is counted closed", || async {
        metric(&proxy, "shardproxy_upgraded_connections").await == 0.0
    })
    .await;
    assert_eq!(metric(&proxy, "shardproxy_upgrades_total").await, 1.0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_answer_other_than_101_is_returned_as_it_is() {
    // 503 is in the default `retry_on`, which an upgrade ignores.
    let backend = RawBackend::start(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nX-Why: busy\r\n\r\nbusy",
    )
    .await;
    let proxy = proxy_to(&backend, "", "").await;
    let (_, reply) = exchange(proxy.listen, UPGRADE).await;
    let reply = reply.expect("an answer");
    assert_eq!((reply.status, reply.body.as_str()), (503, "busy"));
    assert_eq!(reply.header("x-why"), Some("busy"));
    assert_eq!(backend.heads().len(), 1, "not retried");
    assert_eq!(metric(&proxy, "shardproxy_upgrades_total").await, 0.0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_unsolicited_101_is_a_failed_attempt() {
    let backend = RawBackend::start(SWITCHED).await;
    let proxy = proxy_to(&backend, "", "retry_on = []").await;
    let plain = b"GET /chat HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n";
    let (_, reply) = exchange(proxy.listen, plain).await;
    let reply = reply.expect("an answer");
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(metric(&proxy, "shardproxy_upgrades_total").await, 0.0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn upgrade_h2c_is_stripped() {
    let backend =
        RawBackend::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .await;
    let proxy = proxy_to(&backend, "", "").await;
    let h2c = b"GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
    let (_, reply) = exchange(proxy.listen, h2c).await;
    assert_eq!(reply.expect("an answer").status, 200);
    let head = &backend.heads()[0];
    assert!(!head.contains("upgrade"), "{head}");
    assert!(!head.contains("http2-settings"), "{head}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_upgraded_connection_keeps_its_place_in_max_concurrency() {
    let backend = RawBackend::start(SWITCHED).await;
    let proxy = proxy_to(&backend, "", "max_concurrency = 1").await;
    let raw = switched(&proxy).await;
    let client = Client::http1();
    assert_eq!(client.get(proxy.listen, "/other").await.status, 503);
    drop(raw);
    wait_until("the upgraded connection gives its place back", || async {
        metric(&proxy, "shardproxy_upgraded_connections").await == 0.0
    })
    .await;
    assert_ne!(client.get(proxy.listen, "/other").await.status, 503);
    proxy.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_an_idle_upgraded_connection_at_the_end_of_the_drain() {
    let backend = RawBackend::start(SWITCHED).await;
    let proxy = proxy_to(&backend, "drain_timeout = \"300ms\"", "").await;
    let mut raw = switched(&proxy).await;
    raw.send(b"still here").await;
    assert_eq!(raw.bytes(10).await, b"still here");
    let started = std::time::Instant::now();
    tokio::time::timeout(WAIT, proxy.shutdown())
        .await
        .expect("shutdown ends once the drain is over");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(raw.closed().await, "the upgraded connection is closed");
}

#[tokio::test]
async fn an_upgrade_passes_the_cache_and_is_logged_at_the_switch() {
    let backend = RawBackend::start(SWITCHED).await;
    let log = AccessLogFile::new("upgrade");
    let service = format!(
        "\n[services.frob.cache]\nenabled = true\ndefault_ttl = \"60s\"\n\n{}",
        log.config("warn")
    );
    let proxy = proxy_to(&backend, "", &service).await;
    let mut first = switched(&proxy).await;
    let lines = log.wait_for(1).await;
    assert_eq!(lines[0]["status"], 101, "{}", lines[0]);
    assert_eq!(lines[0]["cache"], "PASS", "{}", lines[0]);
    assert_eq!(lines[0]["path"], "/chat", "{}", lines[0]);
    let mut second = switched(&proxy).await;
    assert_eq!(backend.heads().len(), 2, "neither answered from the cache");
    for raw in [&mut first, &mut second] {
        raw.send(b"still relayed").await;
        assert_eq!(raw.bytes(13).await, b"still relayed");
    }
    // Closed by the client: shutdown need not wait out the drain.
    drop((first, second));
    proxy.shutdown().await;
}
