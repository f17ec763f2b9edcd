//! `[server.tls]` (SPEC §10): the client listener speaks HTTPS, with ALPN
//! `h2` and `http/1.1`, optionally requiring client certificates; its
//! files are read again on SIGHUP. Real clients only: curl, `openssl
//! s_client`, and a rustls client (for a connection kept open across a
//! reload), against `shardproxy run` in front of a real backend; the
//! certificates are made by `openssl` for each test.

// The helpers are test code too: a failure is a panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use support::access_log::AccessLogFile;
use support::backend::{Backend, Echo};
use support::pki::{Issued, Pki};
use support::process::Proxy;
use support::{instance_line, static_config, wait_until, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A config of one service on `backend`, the listener on `listen` with
/// `tls` as its `[server.tls]` lines.
fn config(listen: SocketAddr, admin: SocketAddr, backend: &Backend, tls: &str) -> String {
    static_config(
        &[instance_line(backend, &["ff"])],
        "",
        "[[routes]]\npath_prefix = \"/\"\nservice = \"frob\"",
    )
    .replacen(
        "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n",
        &format!("listen = \"{listen}\"\nadmin = \"{admin}\"\n\n[server.tls]\n{tls}\n"),
        1,
    )
}

/// The `[server.tls]` lines for `server`'s files (and `client_ca`).
fn tls_lines(server: &Issued, client_ca: Option<&Path>) -> String {
    let mut lines = format!(
        "cert = {:?}\nkey = {:?}\n",
        server.cert.display().to_string(),
        server.key.display().to_string()
    );
    if let Some(ca) = client_ca {
        lines.push_str(&format!("client_ca = {:?}\n", ca.display().to_string()));
    }
    lines
}

/// Runs a command off the runtime's threads (the backend answers on them).
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("the command runs"))
        .await
        .expect("the command's thread")
}

/// `curl` to `https://localhost:{port}{path}` trusting `ca`, with `args`;
/// the body is followed by a line with the HTTP version used.
async fn curl(port: u16, ca: &Path, path: &str, args: &[&str]) -> Output {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_version}"])
        .args(args)
        .arg(format!("https://localhost:{port}{path}"));
    run(command).await
}

/// The backend's echo and the HTTP version of a successful [`curl`].
fn answered(output: &Output) -> (Echo, String) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "curl failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (body, version) = stdout.rsplit_once('\n').expect("the version line");
    (Echo::parse(body.as_bytes()), version.to_owned())
}

/// What `openssl s_client` says of a handshake with the proxy (ALPN `h2`
/// offered, `ca` trusted), its input closed at once.
async fn s_client(port: u16, ca: &Path) -> String {
    s_client_named(port, ca, "localhost").await
}

/// [`s_client`] asking for the host `name` in SNI.
async fn s_client_named(port: u16, ca: &Path, name: &str) -> String {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", name, "-alpn", "h2", "-CAfile"])
        .arg(ca)
        .stdin(std::process::Stdio::null());
    let output = run(command).await;
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An HTTP/1.1 connection over TLS with rustls, trusting `ca`: its request
/// sender, and the DER of the certificate the proxy presented.
async fn rustls_connection(
    port: u16,
    ca: &Path,
) -> (
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    Vec<u8>,
) {
    rustls_connection_after(port, ca, b"").await
}

/// [`rustls_connection`], with `first` sent on the TCP connection before
/// the TLS (a PROXY protocol header).
async fn rustls_connection_after(
    port: u16,
    ca: &Path,
    first: &[u8],
) -> (
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    Vec<u8>,
) {
    let tls = tls_stream(port, ca, first).await;
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    (sender, presented)
}

/// A TLS connection with rustls to the proxy's `port`, trusting `ca`,
/// ALPN `http/1.1`, after `first` on the TCP connection.
async fn tls_stream(
    port: u16,
    ca: &Path,
    first: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(first).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .unwrap()
}

/// `GET path` on a [`rustls_connection`]: what the backend saw.
async fn get_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    path: &str,
) -> Echo {
    let request = http::Request::get(path)
        .header("host", "localhost")
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    Echo::parse(&response.into_body().collect().await.unwrap().to_bytes())
}

/// Whether DER `der` names `name` (a CN's text is in the DER as is).
fn names(der: &[u8], name: &str) -> bool {
    der.windows(name.len())
        .any(|window| window == name.as_bytes())
}

/// HTTPS with HTTP/1.1 and HTTP/2 by ALPN; the backend is told
/// `X-Forwarded-Proto: https`; a plain-HTTP request to the port fails
/// without an answer and the proxy serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_alpn_h2_and_http1_tells_the_backend_https() {
    let pki = Pki::new("alpn");
    let server = pki.server("tls-alpn", 1);
    let backend = Backend::start("b1").await;
    let proxy = Proxy::start("alpn", |listen, admin| {
        config(listen, admin, &backend, &tls_lines(&server, None))
    })
    .await;
    let port = proxy.listen.port();
    let ca = pki.ca();

    let (echo, version) = answered(&curl(port, &ca, "/one", &["--http1.1"]).await);
    assert_eq!(version, "1.1");
    assert_eq!(echo.uri, "/one");
    assert_eq!(echo.header("x-forwarded-proto"), Some("https"));
    let (echo, version) = answered(&curl(port, &ca, "/two", &["--http2"]).await);
    assert_eq!(version, "2", "ALPN h2");
    assert_eq!(echo.header("x-forwarded-proto"), Some("https"));

    let said = s_client(port, &ca).await;
    assert!(said.contains("ALPN protocol: h2"), "{said}");
    assert!(said.contains("Verify return code: 0 (ok)"), "{said}");

    let mut plain = Command::new("curl");
    plain.args([
        "-sS",
        "--max-time",
        "10",
        &format!("http://127.0.0.1:{port}/plain"),
    ]);
    let plain = run(plain).await;
    assert!(
        !plain.status.success(),
        "plain HTTP to the TLS port got: {}",
        String::from_utf8_lossy(&plain.stdout)
    );
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("\"backend\""));
    let (echo, _) = answered(&curl(port, &ca, "/after", &[]).await);
    assert_eq!(echo.uri, "/after", "the proxy serves on");
    assert_eq!(backend.requests(), 3, "the plain request reached nothing");
}

/// Over TLS, a request whose body spans many records, and a second one
/// pipelined behind it in the same write, are read whole and answered in
/// order; the connection then closes, as the second asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_many_records_and_a_pipelined_request_are_read_whole() {
    let pki = Pki::new("records");
    let server = pki.server("tls-records", 1);
    let backend = Backend::start("b1").await;
    let proxy = Proxy::start("records", |listen, admin| {
        config(listen, admin, &backend, &tls_lines(&server, None))
    })
    .await;
    let mut tls = tls_stream(proxy.listen.port(), &pki.ca(), b"").await;

    // 100,000 bytes: seven records of at most 16 KiB.
    let body = vec![b'x'; 100_000];
    let mut sent = format!(
        "POST /big HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    sent.extend_from_slice(&body);
    sent.extend_from_slice(b"GET /second HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    tls.write_all(&sent).await.unwrap();
    let mut answered = Vec::new();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut answered))
        .await
        .expect("both answered and the connection closed")
        .unwrap();

    let answered = String::from_utf8_lossy(&answered);
    assert_eq!(
        answered.matches("HTTP/1.1 200 OK\r\n").count(),
        2,
        "{answered}"
    );
    let big = answered.find("\"uri\":\"/big\"").expect("the POST's echo");
    let second = answered
        .find("\"uri\":\"/second\"")
        .expect("the GET's echo");
    assert!(big < second, "answered in order: {answered}");
    assert!(answered.contains("\"body_len\":100000"), "{answered}");
    assert_eq!(backend.requests(), 2);
}

/// An idle HTTPS connection is parked as a plain one is (its buffers given
/// back once a check finds it idle), then reads what comes next through
/// TLS: two requests in one write, of which the parked connection's first
/// read takes 64 bytes of plaintext and leaves the rest in rustls' buffer.
/// The proxy runs as its own process, so the idle time passes in real
/// time: 1.3 s, after the park (checks every 500 ms with
/// `header_read_timeout = "2s"`: parked 0.5 to 1 s after the answer) and
/// before the close of a quiet connection (2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_https_connection_parked_reads_its_next_requests_through_tls() {
    let pki = Pki::new("parked");
    let server = pki.server("tls-parked", 1);
    let backend = Backend::start("b1").await;
    let proxy = Proxy::start("parked", |listen, admin| {
        config(listen, admin, &backend, &tls_lines(&server, None)).replacen(
            "[server.tls]",
            "header_read_timeout = \"2s\"\n\n[server.tls]",
            1,
        )
    })
    .await;
    let mut tls = tls_stream(proxy.listen.port(), &pki.ca(), b"").await;
    tls.write_all(b"GET /one HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answered = Vec::new();
    while !String::from_utf8_lossy(&answered).contains("\"uri\":\"/one\"") {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(WAIT, tls.read(&mut chunk))
            .await
            .expect("the first answer within the wait")
            .unwrap();
        assert_ne!(read, 0, "closed before the first answer");
        answered.extend_from_slice(&chunk[..read]);
    }

    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    tls.write_all(
        b"GET /two HTTP/1.1\r\nhost: localhost\r\n\r\n\
          GET /three HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut answered))
        .await
        .expect("both answered and the connection closed")
        .unwrap();
    let answered = String::from_utf8_lossy(&answered);
    assert_eq!(
        answered.matches("HTTP/1.1 200 OK\r\n").count(),
        3,
        "{answered}"
    );
    let two = answered.find("\"uri\":\"/two\"").expect("the second echo");
    let three = answered.find("\"uri\":\"/three\"").expect("the third echo");
    assert!(two < three, "answered in order: {answered}");
    assert_eq!(
        answered.matches("\"method\":\"GET\"").count(),
        3,
        "each request read whole: {answered}"
    );
    assert_eq!(backend.requests(), 3);
}

/// With `client_ca`, a client without a certificate fails the handshake,
/// one with a certificate the CA signed is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ca_requires_a_client_certificate() {
    let pki = Pki::new("mtls");
    let server = pki.server("tls-mtls", 1);
    let client = pki.client("tls-client", 2);
    let other = Pki::new("mtls-other");
    let stranger = other.client("tls-stranger", 3);
    let backend = Backend::start("b1").await;
    let ca = pki.ca();
    let proxy = Proxy::start("mtls", |listen, admin| {
        config(listen, admin, &backend, &tls_lines(&server, Some(&ca)))
    })
    .await;
    let port = proxy.listen.port();

    let without = curl(port, &ca, "/no-cert", &[]).await;
    assert!(
        !without.status.success(),
        "served without a client certificate: {}",
        String::from_utf8_lossy(&without.stdout)
    );
    let key_args = |issued: &Issued| {
        [
            "--cert".to_owned(),
            issued.cert.display().to_string(),
            "--key".to_owned(),
            issued.key.display().to_string(),
        ]
    };
    let stranger_args = key_args(&stranger);
    let args: Vec<&str> = stranger_args.iter().map(String::as_str).collect();
    let foreign = curl(port, &ca, "/stranger", &args).await;
    assert!(
        !foreign.status.success(),
        "served with a certificate of another CA"
    );
    let client_args = key_args(&client);
    let args: Vec<&str> = client_args.iter().map(String::as_str).collect();
    let (echo, _) = answered(&curl(port, &ca, "/with-cert", &args).await);
    assert_eq!(echo.uri, "/with-cert");
    assert_eq!(backend.requests(), 1);
}

/// SIGHUP reads the files again: a new connection gets the new
/// certificate while one opened before keeps working; a reload with a
/// file that is no certificate is refused and logged, naming the file,
/// and the certificate in use stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_certificate_for_new_connections_and_keeps_it_on_a_bad_file() {
    let pki = Pki::new("reload");
    let first = pki.server("tls-first", 1);
    let second = pki.server("tls-second", 2);
    let (cert, key) = (pki.dir().join("live.pem"), pki.dir().join("live.key"));
    std::fs::copy(&first.cert, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    let live = Issued {
        cert: cert.clone(),
        key: key.clone(),
    };
    let backend = Backend::start("b1").await;
    let proxy = Proxy::start("reload", |listen, admin| {
        config(listen, admin, &backend, &tls_lines(&live, None))
    })
    .await;
    let port = proxy.listen.port();
    let ca = pki.ca();

    let (mut kept, presented) = rustls_connection(port, &ca).await;
    assert!(names(&presented, "tls-first"));
    get_on(&mut kept, "/before").await;
    assert!(s_client(port, &ca).await.contains("CN = tls-first"));

    std::fs::copy(&second.cert, &cert).unwrap();
    std::fs::copy(&second.key, &key).unwrap();
    proxy.signal("HUP");
    wait_until("the reload is done", || async {
        proxy.log().contains("reload done")
    })
    .await;
    assert!(proxy.log().contains("TLS files read again"));
    let said = s_client(port, &ca).await;
    assert!(said.contains("CN = tls-second"), "{said}");
    let (_, fresh) = rustls_connection(port, &ca).await;
    assert!(names(&fresh, "tls-second"));
    let echo = get_on(&mut kept, "/after").await;
    assert_eq!(echo.uri, "/after", "the connection opened before is served");
    assert_eq!(echo.header("x-forwarded-proto"), Some("https"));

    std::fs::write(&cert, "not a certificate\n").unwrap();
    proxy.signal("HUP");
    wait_until("the reload is refused", || async {
        proxy.log().contains("reload refused")
    })
    .await;
    let log = proxy.log();
    let refused = log
        .lines()
        .find(|line| line.contains("reload refused"))
        .unwrap();
    assert!(
        refused.contains("server.tls.cert")
            && refused.contains(&cert.display().to_string())
            && refused.contains("no certificate found"),
        "{refused}"
    );
    let said = s_client(port, &ca).await;
    assert!(
        said.contains("CN = tls-second"),
        "the old one stays: {said}"
    );
    let (echo, _) = answered(&curl(port, &ca, "/still", &[]).await);
    assert_eq!(echo.uri, "/still");
}

/// With `proxy_protocol`, the PROXY protocol header comes first, then the
/// TLS: the client it names is the one in `X-Forwarded-For`. A client that
/// sends its header and then no handshake is closed after
/// `header_read_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_header_then_tls_and_a_late_handshake_is_closed() {
    let pki = Pki::new("pp");
    let server = pki.server("tls-pp", 1);
    let backend = Backend::start("b1").await;
    let proxy = Proxy::start("pp", |listen, admin| {
        config(listen, admin, &backend, &tls_lines(&server, None)).replacen(
            "[server]\n",
            "[server]\nproxy_protocol = true\nheader_read_timeout = \"1s\"\n",
            1,
        )
    })
    .await;
    let port = proxy.listen.port();
    let header = b"PROXY TCP4 192.0.2.9 127.0.0.1 5555 443\r\n";

    let (mut sender, _) = rustls_connection_after(port, &pki.ca(), header).await;
    let echo = get_on(&mut sender, "/behind").await;
    assert_eq!(echo.header("x-forwarded-for"), Some("192.0.2.9"));
    assert_eq!(echo.header("x-forwarded-proto"), Some("https"));

    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    silent.write_all(header).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0; 64];
    let read = tokio::time::timeout(WAIT, silent.read(&mut buf))
        .await
        .expect("the connection is closed, not left open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "closed after {:?}, before header_read_timeout",
        started.elapsed()
    );
}

/// A key that is not the certificate's is a config error naming the key
/// file, at start-up as on reload.
#[test]
fn a_key_that_does_not_match_is_a_config_error() {
    let pki = Pki::new("mismatch");
    let (one, two) = (pki.server("tls-one", 1), pki.server("tls-two", 2));
    let crossed = Issued {
        cert: one.cert.clone(),
        key: two.key.clone(),
    };
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[server.tls]\n{}\n\
         [services.frob]\ninstances = [{{ host = \"b\", addr = \"127.0.0.1:1\" }}]\n\n\
         [[routes]]\nservice = \"frob\"\n",
        tls_lines(&crossed, None)
    );
    let error = shardproxy::config::Config::from_toml(&text, "tls.toml")
        .expect_err("a crossed key is refused")
        .to_string();
    assert!(
        error.starts_with("tls.toml:7:7: server.tls.key: ")
            && error.contains(&two.key.display().to_string())
            && error.contains("certificate and key do not match"),
        "{error}"
    );
}

/// Several certificates on one listener (`certificates`): the first valid
/// for the name the client sends in SNI (wildcards included), else the
/// table's own `cert`; curl verifies each for its name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_chooses_the_certificate_valid_for_the_name_asked() {
    let pki = Pki::new("sni");
    let default = pki.server("tls-default", 1);
    let api = pki.server_for("tls-api", 2, "api.example.test");
    let wildcard = pki.server_for("tls-wildcard", 3, "*.shard.example.test");
    let backend = Backend::start("b1").await;
    let lines = format!(
        "{}certificates = [\n  {{ cert = {:?}, key = {:?} }},\n  {{ cert = {:?}, key = {:?} }},\n]\n",
        tls_lines(&default, None),
        api.cert.display().to_string(),
        api.key.display().to_string(),
        wildcard.cert.display().to_string(),
        wildcard.key.display().to_string(),
    );
    let log = AccessLogFile::new("sni");
    let proxy = Proxy::start("sni", |listen, admin| {
        config(listen, admin, &backend, &lines) + "\n" + &log.config("info")
    })
    .await;
    let port = proxy.listen.port();
    let ca = pki.ca();

    for (name, subject) in [
        ("api.example.test", "tls-api"),
        ("a.shard.example.test", "tls-wildcard"),
        ("other.example.test", "tls-default"),
        ("localhost", "tls-default"),
    ] {
        let said = s_client_named(port, &ca, name).await;
        assert!(
            said.lines()
                .any(|line| line.starts_with("subject=") && line.contains(subject)),
            "{name}: {said}"
        );
    }
    for name in ["api.example.test", "b.shard.example.test"] {
        let mut command = Command::new("curl");
        command
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&ca)
            .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
            .arg(format!("https://{name}:{port}/sni"));
        let output = run(command).await;
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(Echo::parse(&output.stdout).uri, "/sni");
    }
    // The access log says how each client came.
    let lines = log.wait_for(2).await;
    for line in &lines {
        assert_eq!(line["tls"], true, "{line}");
        assert_eq!(
            line["protocol"], "HTTP/2.0",
            "curl chose h2 by ALPN: {line}"
        );
    }
}
