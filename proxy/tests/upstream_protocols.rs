//! TLS and HTTP/2 to the instances (SPEC §10): `upstream_tls` verifies each
//! instance's certificate for its host name and may present a client
//! certificate; `upstream_protocol = "h2c" | "h2"` carries requests of any
//! client version on HTTP/2, trailers both ways. Against `shardproxy run`,
//! with instances that are real hyper servers (HTTP/1.1 and HTTP/2, over
//! rustls when asked) and certificates made by `openssl` for each test.

// The helpers are test code too: a failure is a panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use support::nginx::Nginx;
use support::pki::{Issued, Pki};
use support::process::Proxy;
use support::sum_samples;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// An instance: a hyper server speaking HTTP/1.1 and HTTP/2 (prior
/// knowledge, or as ALPN chose), over TLS when given settings. It answers
/// every request with JSON of what it saw, and the trailer
/// `x-served-by: NAME`.
struct Instance {
    addr: SocketAddr,
    /// Connections accepted (TLS handshakes begun).
    connections: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Instance {
    async fn start(name: &'static str, tls: Option<Arc<rustls::ServerConfig>>) -> Instance {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let accepted = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(TokioIo::new(tcp), name, false, false).await,
                        Some(settings) => {
                            let Ok(tls) =
                                tokio_rustls::TlsAcceptor::from(settings).accept(tcp).await
                            else {
                                return;
                            };
                            let client_cert = tls.get_ref().1.peer_certificates().is_some();
                            serve(TokioIo::new(tls), name, true, client_cert).await;
                        }
                    }
                });
            }
        });
        Instance {
            addr,
            connections,
            task,
        }
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<I>(io: I, name: &'static str, tls: bool, client_cert: bool)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request| echo(request, name, tls, client_cert));
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

/// What the instance saw, as JSON, with the trailer `x-served-by`.
async fn echo(
    request: Request<Incoming>,
    name: &'static str,
    tls: bool,
    client_cert: bool,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let (parts, body) = request.into_parts();
    let collected = body.collect().await.ok();
    let trailers = collected
        .as_ref()
        .and_then(|collected| collected.trailers())
        .map(header_json);
    let body = collected
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let seen = json!({
        "name": name,
        "version": format!("{:?}", parts.version),
        "uri": parts.uri.to_string(),
        "host": parts.headers.get("host").map(|value| value.to_str().unwrap()),
        "te": parts.headers.get("te").map(|value| value.to_str().unwrap()),
        "tls": tls,
        "client_cert": client_cert,
        "trailers": trailers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut served_by = HeaderMap::new();
    served_by.insert("x-served-by", HeaderValue::from_static(name));
    let body = Full::new(Bytes::from(seen.to_string()))
        .with_trailers(async move { Some(Ok(served_by)) })
        .boxed();
    Ok(Response::new(body))
}

fn header_json(headers: &HeaderMap) -> Value {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                Value::from(value.to_str().unwrap()),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Server settings for an instance: `issued`, ALPN `alpn`, and client
/// certificates required (signed by `client_ca`) when given.
fn instance_tls(
    issued: &Issued,
    alpn: &[&[u8]],
    client_ca: Option<&Path>,
) -> Arc<rustls::ServerConfig> {
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<_> = CertificateDer::pem_file_iter(&issued.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&issued.key).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Arc::new(config)
}

/// A proxy of one service `frob` over `instances` (host name, address,
/// token), `service` added to its table, one route `/`; its error answers
/// say what failed (`error_detail`).
async fn proxy(test: &str, instances: &[(&str, SocketAddr, &str)], service: &str) -> Proxy {
    let lines: Vec<String> = instances
        .iter()
        .map(|(host, addr, token)| {
            format!("    {{ host = \"{host}\", addr = \"{addr}\", tokens = [\"{token}\"] }},")
        })
        .collect();
    let config = support::static_config(
        &lines,
        service,
        "[[routes]]\npath_prefix = \"/\"\nservice = \"frob\"",
    );
    // One worker: each worker keeps its own connections to the instances,
    // and the tests count them per process.
    Proxy::start(test, move |listen, admin| {
        config.replacen(
            "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n",
            &format!(
                "listen = \"{listen}\"\nadmin = \"{admin}\"\nerror_detail = true\nworkers = 1\n"
            ),
            1,
        )
    })
    .await
}

/// A path whose key the instance `name` (the first label of its host)
/// owns.
async fn key_of(proxy: &Proxy, name: &str) -> String {
    for n in 0..1000 {
        let path = format!("/k/{n}");
        if proxy.primary("frob", &path).await == name {
            return path;
        }
    }
    panic!("no key of {name} in 1000");
}

/// `GET path` through the proxy over HTTP/1.1: its status and, for a
/// `200`, what the instance saw, else the proxy's answer as a string.
async fn get(proxy: &Proxy, path: &str) -> (u16, Value) {
    let answer = proxy.get(path).await;
    let seen = if answer.status == 200 {
        serde_json::from_str(&answer.text())
            .unwrap_or_else(|error| panic!("{error}: {}", answer.text()))
    } else {
        Value::from(answer.text())
    };
    (answer.status.as_u16(), seen)
}

fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// HTTP/1.1 and HTTP/2 clients alike reach an h2c instance over HTTP/2,
/// the client's `Host` as `:authority`; an HTTP/2 client's request
/// trailers and `te: trailers` reach the instance, and the instance's
/// response trailers reach the client; all requests share one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_carries_requests_of_any_client_version_with_trailers_both_ways() {
    let instance = Instance::start("a", None).await;
    let proxy = proxy(
        "h2c",
        &[("a.example.com", instance.addr, "ff")],
        "upstream_protocol = \"h2c\"",
    )
    .await;

    let (status, seen) = get(&proxy, "/over/http1?x=1").await;
    assert_eq!(status, 200);
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(
        seen["uri"],
        format!("http://{}/over/http1?x=1", proxy.listen)
    );
    assert_eq!(seen["host"], Value::Null, "Host is folded into :authority");
    assert_eq!(seen["te"], Value::Null, "no te: trailers was asked for");

    // An HTTP/2 client, prior knowledge, with request trailers.
    let tcp = tokio::net::TcpStream::connect(proxy.listen).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc123"));
    let body = Full::new(Bytes::from_static(b"payload"))
        .with_trailers(async move { Some(Ok(trailers)) })
        .boxed();
    let request = Request::post("http://frob.example/over/h2")
        .header("te", "trailers")
        .body(body)
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let collected = response.into_body().collect().await.unwrap();
    assert_eq!(
        collected
            .trailers()
            .and_then(|trailers| trailers.get("x-served-by")),
        Some(&HeaderValue::from_static("a")),
        "the instance's trailers reach the client"
    );
    let seen: Value = serde_json::from_slice(&collected.to_bytes()).unwrap();
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["uri"], "http://frob.example/over/h2");
    assert_eq!(
        seen["te"], "trailers",
        "te: trailers is passed on to HTTP/2"
    );
    assert_eq!(seen["body"], "payload");
    assert_eq!(seen["trailers"]["x-checksum"], "abc123");

    for n in 0..5 {
        assert_eq!(get(&proxy, &format!("/more/{n}")).await.0, 200);
    }
    assert_eq!(instance.connections(), 1, "one multiplexed connection");
}

/// Over TLS, each instance's certificate must be valid for its host name:
/// an instance whose certificate names another host fails its handshake,
/// which counts as a connect failure, and its keys are answered by the
/// replica. Kept-alive connections are pooled as for plain TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_instances_verifies_each_for_its_host_name_and_fails_over_on_a_bad_one() {
    let pki = Pki::new("upstream-names");
    let good = pki.server_for("good", 1, "a.example.com");
    let misnamed = pki.server_for("misnamed", 2, "other.example.com");
    let a = Instance::start("a", Some(instance_tls(&good, &[b"http/1.1"], None))).await;
    let b = Instance::start("b", Some(instance_tls(&misnamed, &[b"http/1.1"], None))).await;
    let proxy = proxy(
        "upstream-names",
        &[
            ("a.example.com", a.addr, "80"),
            ("b.example.com", b.addr, "ff"),
        ],
        &format!(
            "slaves = 1\nupstream_tls = {{ ca = {} }}",
            toml_path(&pki.ca())
        ),
    )
    .await;

    let of_a = key_of(&proxy, "a").await;
    for _ in 0..3 {
        let (status, seen) = get(&proxy, &of_a).await;
        assert_eq!(status, 200);
        assert_eq!(seen["name"], "a");
        assert_eq!(seen["tls"], true);
        assert_eq!(seen["version"], "HTTP/1.1");
    }
    assert_eq!(a.connections(), 1, "one kept-alive TLS connection");

    let of_b = key_of(&proxy, "b").await;
    let (status, seen) = get(&proxy, &of_b).await;
    assert_eq!(status, 200);
    assert_eq!(
        seen["name"], "a",
        "b's certificate is not valid for b.example.com"
    );
    assert!(b.connections() >= 1, "b was tried");
    let metrics = proxy.admin_text("/metrics").await;
    let failed = sum_samples(
        &metrics,
        "shardproxy_upstream_attempts_total",
        &[
            ("upstream", &format!("b.example.com:{}", b.addr.port())),
            ("outcome", "connect_error"),
        ],
    );
    assert!(
        failed >= 1.0,
        "a failed handshake is a connect error:\n{metrics}"
    );
}

/// An instance that requires a client certificate gets the proxy's
/// (`upstream_tls.cert` and `key`); without one, its requests fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_presents_the_proxys_client_certificate() {
    let pki = Pki::new("upstream-mtls");
    let server = pki.server_for("server", 1, "a.example.com");
    let client = pki.client("proxy-client", 2);
    let a = Instance::start(
        "a",
        Some(instance_tls(&server, &[b"http/1.1"], Some(&pki.ca()))),
    )
    .await;
    let with_cert = proxy(
        "upstream-mtls",
        &[("a.example.com", a.addr, "ff")],
        &format!(
            "upstream_tls = {{ ca = {}, cert = {}, key = {} }}",
            toml_path(&pki.ca()),
            toml_path(&client.cert),
            toml_path(&client.key)
        ),
    )
    .await;
    let (status, seen) = get(&with_cert, "/k").await;
    assert_eq!(status, 200);
    assert_eq!(seen["client_cert"], true);

    let without = proxy(
        "upstream-mtls-none",
        &[("a.example.com", a.addr, "ff")],
        &format!("upstream_tls = {{ ca = {} }}", toml_path(&pki.ca())),
    )
    .await;
    let (status, said) = get(&without, "/k").await;
    assert_eq!(status, 502, "{said}");
}

/// `upstream_protocol = "h2"`: HTTP/2 over TLS, chosen by ALPN; an
/// instance that does not choose h2 fails the connect, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_is_chosen_by_alpn() {
    let pki = Pki::new("upstream-h2");
    let server = pki.server_for("server", 1, "a.example.com");
    let h2 = Instance::start("a", Some(instance_tls(&server, &[b"h2"], None))).await;
    let service = format!(
        "upstream_protocol = \"h2\"\nupstream_tls = {{ ca = {} }}",
        toml_path(&pki.ca())
    );
    let proxy_h2 = proxy("upstream-h2", &[("a.example.com", h2.addr, "ff")], &service).await;
    let (status, seen) = get(&proxy_h2, "/k").await;
    assert_eq!(status, 200);
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["tls"], true);
    assert_eq!(seen["uri"], format!("https://{}/k", proxy_h2.listen));

    // No ALPN at all, as servers that know only HTTP/1.1 may do: the
    // handshake completes, and the proxy sees that h2 was not chosen.
    let http1_only = Instance::start("a", Some(instance_tls(&server, &[], None))).await;
    let proxy_http1 = proxy(
        "upstream-h2-refused",
        &[("a.example.com", http1_only.addr, "ff")],
        &service,
    )
    .await;
    let (status, said) = get(&proxy_http1, "/k").await;
    assert_eq!(status, 502);
    let said = said.as_str().unwrap();
    assert!(
        said.contains("TLS handshake with") && said.contains("did not choose h2 in ALPN"),
        "{said}"
    );
}

/// A real TLS instance: nginx with `ssl_verify_client on`. Over HTTP/1.1
/// and over h2 (ALPN), the proxy verifies nginx's certificate for the
/// instance's host name and presents its client certificate, which nginx
/// verifies; requests share kept-alive connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_nginx_instance_over_mutual_tls() {
    let pki = Pki::new("upstream-nginx");
    let server = pki.server_for("nginx", 1, "nginx.example.com");
    let client = pki.client("shardproxy-client", 2);
    let nginx = Nginx::start_tls(&server, &pki.ca());
    let tls = format!(
        "upstream_tls = {{ ca = {}, cert = {}, key = {} }}",
        toml_path(&pki.ca()),
        toml_path(&client.cert),
        toml_path(&client.key)
    );
    for (protocol, seen_as) in [("http1", "HTTP/1.1"), ("h2", "HTTP/2.0")] {
        let proxy = proxy(
            &format!("upstream-nginx-{protocol}"),
            &[("nginx.example.com", nginx.addr, "ff")],
            &format!("upstream_protocol = \"{protocol}\"\n{tls}"),
        )
        .await;
        for n in 0..3 {
            let answer = proxy.get(&format!("/k/{n}")).await;
            assert_eq!(answer.status, 200, "{}", answer.text());
            let said = answer.text();
            assert!(
                said.starts_with(&format!("nginx {seen_as} TLSv1.3 verify=SUCCESS"))
                    && said.contains("CN=shardproxy-client")
                    && said.contains(&format!("host={}", proxy.listen.ip())),
                "{said}"
            );
        }
    }

    // Without a client certificate nginx answers 400 itself, and the proxy
    // passes that answer on.
    let without = proxy(
        "upstream-nginx-none",
        &[("nginx.example.com", nginx.addr, "ff")],
        &format!("upstream_tls = {{ ca = {} }}", toml_path(&pki.ca())),
    )
    .await;
    let answer = without.get("/k").await;
    assert_eq!(answer.status, 400);
    assert!(
        answer
            .text()
            .contains("No required SSL certificate was sent"),
        "{}",
        answer.text()
    );
}
