//! `server.proxy_protocol` (SPEC §10): behind a TCP load balancer, the
//! client is the one the PROXY protocol header names, in `X-Forwarded-For`
//! and the access log; a connection without a valid header is closed
//! unanswered. Raw clients send exact headers; then a real HAProxy sends
//! them, v2 and v1, as in production.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::Value;
use support::access_log::AccessLogFile;
use support::backend::{Backend, Echo};
use support::haproxy::{HaProxy, Send};
use support::raw::Raw;
use support::{instance_line, start_proxy, static_config};

/// The one route.
const ROUTE: &str = "[[routes]]\npath_prefix = \"/\"\nservice = \"frob\"";

/// The request every client sends after its header.
const REQUEST: &[u8] = b"GET /who HTTP/1.1\r\nHost: frob.example.com\r\n\r\n";

/// A client on the loopback that is neither the test's other sockets nor
/// HAProxy (which connects from 127.0.0.1).
const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// A proxy with `proxy_protocol = true` (and `server` lines) in front of
/// `backend`, logging each request to `log`.
async fn proxy_behind_balancer(
    backend: &Backend,
    log: &AccessLogFile,
    server: &str,
) -> shardproxy::run::Running {
    let config = static_config(
        &[instance_line(backend, &["ff"])],
        "",
        &format!("{ROUTE}\n\n{}", log.config("error")),
    )
    .replacen(
        "[server]\n",
        &format!("[server]\nproxy_protocol = true\n{server}"),
        1,
    );
    start_proxy(&config, "proxy_protocol.toml").await
}

/// A v2 header, PROXY over TCP, from `source` to 198.51.100.7:443 or
/// [2001:db8::7]:443, with one NOOP TLV (to be skipped).
fn v2_header(source: SocketAddr) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n\x21".to_vec();
    let mut block = Vec::new();
    match source.ip() {
        IpAddr::V4(ip) => {
            header.push(0x11);
            block.extend_from_slice(&ip.octets());
            block.extend_from_slice(&[198, 51, 100, 7]);
        }
        IpAddr::V6(ip) => {
            header.push(0x21);
            block.extend_from_slice(&ip.octets());
            let destination = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
            block.extend_from_slice(&destination.octets());
        }
    }
    block.extend_from_slice(&source.port().to_be_bytes());
    block.extend_from_slice(&443u16.to_be_bytes());
    block.extend_from_slice(&[0x04, 0x00, 0x02, 0, 0]);
    // At most 16 + 16 + 4 + 5 bytes.
    header.extend_from_slice(&(block.len() as u16).to_be_bytes());
    header.extend_from_slice(&block);
    header
}

/// Sends `header` then [`REQUEST`] on a new connection to `proxy`, and
/// returns what the backend saw and the client address this connection
/// has (for headers that name none).
async fn through(proxy: SocketAddr, header: &[u8]) -> (Echo, SocketAddr) {
    let mut raw = Raw::connect(proxy).await;
    let own = raw.local_addr();
    raw.send(&[header, REQUEST].concat()).await;
    let Some(reply) = raw.reply().await else {
        panic!("no answer");
    };
    assert_eq!(reply.status, 200, "{reply:?}");
    (Echo::parse(reply.body.as_bytes()), own)
}

/// The access log's `client` of the line of request `index` (in order).
async fn logged_client(log: &AccessLogFile, index: usize) -> Value {
    log.wait_for(index + 1).await[index]["client"].clone()
}

#[tokio::test]
async fn the_header_names_the_client_to_the_instance_and_the_log() {
    let backend = Backend::start("frob1").await;
    let log = AccessLogFile::new("proxy-protocol");
    let proxy = proxy_behind_balancer(&backend, &log, "").await;
    let v4: SocketAddr = "192.0.2.1:56324".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::1]:1234".parse().unwrap();
    let cases: [(Vec<u8>, Option<SocketAddr>); 6] = [
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n".to_vec(),
            Some(v4),
        ),
        (
            b"PROXY TCP6 2001:db8::1 2001:db8::7 1234 443\r\n".to_vec(),
            Some(v6),
        ),
        (v2_header(v4), Some(v4)),
        (v2_header(v6), Some(v6)),
        // No address: the connection's own peer, as HAProxy does.
        (b"PROXY UNKNOWN\r\n".to_vec(), None),
        // v2 LOCAL (a balancer's health check), no addresses.
        (b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec(), None),
    ];
    for (index, (header, named)) in cases.iter().enumerate() {
        let (echo, own) = through(proxy.listen, header).await;
        let client = named.unwrap_or(own);
        assert_eq!(
            echo.header_all("x-forwarded-for"),
            [client.ip().to_string()],
            "{}",
            String::from_utf8_lossy(header)
        );
        assert_eq!(logged_client(&log, index).await, client.to_string());
    }
    // The header is per connection: the next request of a keep-alive
    // connection is the same client's.
    let mut raw = Raw::connect(proxy.listen).await;
    raw.send(&[&v2_header(v4)[..], REQUEST, REQUEST].concat())
        .await;
    for index in cases.len()..cases.len() + 2 {
        let reply = raw.reply().await.expect("an answer");
        let echo = Echo::parse(reply.body.as_bytes());
        assert_eq!(echo.header("x-forwarded-for"), Some("192.0.2.1"));
        assert_eq!(logged_client(&log, index).await, v4.to_string());
    }
}

#[tokio::test]
async fn a_connection_without_a_valid_header_is_closed_unanswered() {
    let backend = Backend::start("frob1").await;
    let log = AccessLogFile::new("proxy-protocol-refused");
    // A short header timeout, for the header that never ends.
    let proxy = proxy_behind_balancer(&backend, &log, "header_read_timeout = \"300ms\"\n").await;
    let mut truncated_v2 = v2_header("192.0.2.1:1".parse().unwrap());
    truncated_v2.truncate(20);
    for start in [
        // Plain HTTP, as a client reaching the listener directly sends it.
        REQUEST.to_vec(),
        // HTTP/2 with prior knowledge.
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        // Malformed v1: an address missing.
        [&b"PROXY TCP4 192.0.2.1 56324 443\r\n"[..], REQUEST].concat(),
        // Garbage that starts like a header.
        [&b"PROXY HELLO\r\n"[..], REQUEST].concat(),
        // Too long a v1 line.
        [
            b"PROXY UNKNOWN ".to_vec(),
            vec![b'x'; 200],
            b"\r\n".to_vec(),
        ]
        .concat(),
        // v2 with version 1.
        [
            &b"\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x0c"[..],
            &[0; 12],
            REQUEST,
        ]
        .concat(),
        // A v2 header that stops halfway: closed after header_read_timeout.
        truncated_v2,
    ] {
        let mut raw = Raw::connect(proxy.listen).await;
        raw.send(&start).await;
        assert!(
            raw.closed().await,
            "answered: {}",
            String::from_utf8_lossy(&start)
        );
    }
    assert_eq!(backend.requests(), 0);
    assert!(log.lines().is_empty(), "{:?}", log.lines());
    // The admin listener takes no header.
    let health = support::client::Client::http1()
        .get(proxy.admin, "/healthz")
        .await;
    assert_eq!(health.status, 200);
}

/// A request from [`CLIENT_IP`] through HAProxy (`mode`, sending `send`)
/// to a proxy that wants the header: the backend and the access log name
/// the client as HAProxy saw it, address and port.
async fn through_haproxy(mode: &str, send: Send) {
    let backend = Backend::start("frob1").await;
    let log = AccessLogFile::new("proxy-protocol-haproxy");
    let proxy = proxy_behind_balancer(&backend, &log, "").await;
    let haproxy = HaProxy::start(mode, proxy.listen, send);
    let mut raw = Raw::connect_from(CLIENT_IP, haproxy.addr).await;
    let client = raw.local_addr();
    raw.send(REQUEST).await;
    let Some(reply) = raw.reply().await else {
        panic!("no answer through HAProxy");
    };
    assert_eq!(reply.status, 200, "{reply:?}");
    let echo = Echo::parse(reply.body.as_bytes());
    assert_eq!(echo.header_all("x-forwarded-for"), ["127.0.0.3"]);
    assert_eq!(logged_client(&log, 0).await, client.to_string());
}

#[tokio::test]
async fn haproxy_send_proxy_v2_in_tcp_mode() {
    through_haproxy("tcp", Send::V2).await;
}

#[tokio::test]
async fn haproxy_send_proxy_v1_in_http_mode() {
    through_haproxy("http", Send::V1).await;
}
