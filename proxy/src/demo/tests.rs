//! The demo end to end: requests through the proxy land on the primary that
//! the published tokens name, and move to the replica when it fails.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hickory_proto::rr::{Name, RData, RecordType};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use shardproxy_ring::Token;

use super::*;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn options(backends: usize) -> DemoOptions {
    DemoOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
        backends,
        records: Records::Ring,
    }
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// What a request got back.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    served_by: Option<String>,
    body: String,
}

async fn send(client: &HttpClient, method: Method, url: &str) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Empty::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .unwrap_or_else(|_| panic!("{url}: no answer in 10 s"))
        .unwrap_or_else(|error| panic!("{url}: {error}"));
    let status = response.status();
    let served_by = response
        .headers()
        .get("x-served-by")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        served_by,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// The ring as the DNS server publishes it, read over DNS: `(token,
/// "host:port")` sorted by token.
async fn published_ring(dns: SocketAddr) -> Vec<(Token, String)> {
    let resolver = crate::discovery::build_resolver(Some(&[dns])).unwrap();
    let srv_name = Name::from_ascii("_demo._http.demo.shardproxy.").unwrap();
    let srv = resolver.lookup(srv_name, RecordType::SRV).await.unwrap();
    let mut ring = Vec::new();
    for record in srv.answers() {
        let RData::SRV(srv) = &record.data else {
            continue;
        };
        let target = srv.target.to_ascii();
        let tokens_name = Name::from_ascii(format!("tokens.{}.{target}", srv.port)).unwrap();
        let txt = resolver.lookup(tokens_name, RecordType::TXT).await.unwrap();
        let host = target.trim_end_matches('.');
        for record in txt.answers() {
            let RData::TXT(txt) = &record.data else {
                continue;
            };
            for string in txt.txt_data.iter() {
                for word in std::str::from_utf8(string).unwrap().split_whitespace() {
                    ring.push((word.parse().unwrap(), format!("{host}:{}", srv.port)));
                }
            }
        }
    }
    ring.sort();
    ring
}

/// The index in `ring` of the primary of `key`: the smallest token at or
/// after the key's hash, wrapping to the first.
fn owner(ring: &[(Token, String)], key: &str) -> usize {
    let hash = Token::of_key(key.as_bytes());
    ring.iter()
        .position(|(token, _)| *token >= hash)
        .unwrap_or(0)
}

fn backend_addr(demo: &Demo, name: &str) -> SocketAddr {
    demo.backends
        .iter()
        .find(|backend| backend.name == name)
        .unwrap_or_else(|| panic!("no backend {name}"))
        .addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_to_the_published_primary_and_fails_over_to_the_replica() {
    let demo = start(options(3)).await.unwrap();
    let ring = published_ring(demo.dns).await;
    assert_eq!(ring.len(), 3, "{ring:?}");
    let names: BTreeSet<&str> = ring.iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(names.len(), 3, "one token per backend: {ring:?}");
    let client = client();

    let paths = [
        "/users/42",
        "/users/7",
        "/",
        "/orders/2024/17",
        "/a",
        "/b",
        "/c",
        "/images/cat.png",
        "/search",
        "/users/42/friends",
    ];
    let mut answered_by = BTreeSet::new();
    for path in paths {
        let expected = &ring[owner(&ring, path)].1;
        let answer = send(
            &client,
            Method::GET,
            &format!("http://{}{path}", demo.proxy),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {answer:?}");
        assert_eq!(
            answer.served_by.as_deref(),
            Some(expected.as_str()),
            "{path}"
        );
        assert!(
            answer
                .body
                .starts_with(&format!("{expected} answered GET {path}\n")),
            "{path}: {}",
            answer.body
        );
        assert!(
            answer.body.contains("x-forwarded-for: 127.0.0.1\n"),
            "{}",
            answer.body
        );
        answered_by.insert(expected.clone());
    }
    assert!(
        answered_by.len() >= 2,
        "paths spread over the ring: {answered_by:?}"
    );

    // Fail the primary of /users/42: the proxy retries on the replica, the
    // next instance clockwise (every backend is its own host).
    let path = "/users/42";
    let url = format!("http://{}{path}", demo.proxy);
    let primary_index = owner(&ring, path);
    let primary = ring[primary_index].1.clone();
    let replica = ring[(primary_index + 1) % ring.len()].1.clone();
    let node = backend_addr(&demo, &primary);

    let failed = send(&client, Method::POST, &format!("http://{node}/_demo/fail")).await;
    assert_eq!(failed.status, StatusCode::OK, "{failed:?}");
    let direct = send(&client, Method::GET, &format!("http://{node}{path}")).await;
    assert_eq!(direct.status, StatusCode::SERVICE_UNAVAILABLE, "{direct:?}");
    assert_eq!(direct.served_by.as_deref(), Some(primary.as_str()));

    let answer = send(&client, Method::GET, &url).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(
        answer.served_by.as_deref(),
        Some(replica.as_str()),
        "{answer:?}"
    );
    assert!(answer
        .body
        .starts_with(&format!("{replica} answered GET {path}\n")));

    let recovered = send(
        &client,
        Method::POST,
        &format!("http://{node}/_demo/recover"),
    )
    .await;
    assert_eq!(recovered.status, StatusCode::OK, "{recovered:?}");
    let direct = send(&client, Method::GET, &format!("http://{node}{path}")).await;
    assert_eq!(direct.status, StatusCode::OK, "{direct:?}");
    // The primary serves the key again (allowing for a proxy that ejected it
    // for a while after its failures).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = send(&client, Method::GET, &url).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        if answer.served_by.as_deref() == Some(primary.as_str()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{primary} never served {path} again: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_refuses_connections_then_listens_on_the_same_port() {
    let demo = start(options(2)).await.unwrap();
    let ring = published_ring(demo.dns).await;
    let client = client();
    let path = "/users/42";
    let primary_index = owner(&ring, path);
    let primary = ring[primary_index].1.clone();
    let replica = ring[(primary_index + 1) % ring.len()].1.clone();
    let node = backend_addr(&demo, &primary);

    let down = send(
        &client,
        Method::POST,
        &format!("http://{node}/_demo/down?seconds=3"),
    )
    .await;
    assert_eq!(down.status, StatusCode::OK, "{down:?}");
    assert!(down.body.contains("down for 3s"), "{}", down.body);

    // The port is closed by the time that answer comes.
    assert!(
        tokio::net::TcpStream::connect(node).await.is_err(),
        "{node} still accepts after answering that it is down"
    );
    let answer = send(
        &client,
        Method::GET,
        &format!("http://{}{path}", demo.proxy),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.served_by.as_deref(), Some(replica.as_str()));

    // And it comes back on the port its SRV record names.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(node).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{node} never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let direct = send(&client, Method::GET, &format!("http://{node}{path}")).await;
    assert_eq!(direct.status, StatusCode::OK, "{direct:?}");
    assert_eq!(direct.served_by.as_deref(), Some(primary.as_str()));

    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_only_derives_tokens_and_fails_over_with_the_configs_replica() {
    srv_only_fails_over(Records::SrvOnly).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_only_ready_withdraws_a_down_backend_until_it_listens() {
    srv_only_fails_over(Records::SrvOnlyReady).await;
}

/// The primary of a key goes down for 4 s (long enough that the request
/// through the proxy is answered within it on a busy machine); the replica
/// that only the config's `slaves = 1` provides answers; with
/// [`Records::SrvOnlyReady`] the down backend's SRV record is withdrawn
/// and comes back, else it stays.
async fn srv_only_fails_over(records: Records) {
    let demo = start(DemoOptions {
        records,
        ..options(3)
    })
    .await
    .unwrap();
    let kinds: BTreeSet<&str> = demo
        .zone()
        .records()
        .iter()
        .map(|record| match record.data {
            crate::dns_server::RecordData::Srv { .. } => "SRV",
            crate::dns_server::RecordData::A(_) => "A",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, BTreeSet::from(["A", "SRV"]));

    let app = demo.proxy_app();
    let snapshot = app
        .service(SERVICE)
        .and_then(|service| service.upstream.ring.load_full())
        .unwrap();
    assert_eq!(
        snapshot.replication_from,
        crate::discovery::ReplicationFrom::Config
    );
    let Table::Ring(ring) = &snapshot.table else {
        panic!("not a ring: {:?}", snapshot.table);
    };
    assert_eq!(ring.instances().len(), 3);
    assert!(ring
        .instances()
        .iter()
        .all(|instance| instance.tokens().len() == zone::VIRTUAL_NODES));

    let guide = demo.guide();
    assert!(guide.contains("64 derived tokens"), "{guide}");
    assert!(guide.contains("slaves = 1"), "{guide}");
    assert!(!guide.contains("TXT"), "{guide}");

    // The primary of the key goes down; its replica, which only the
    // config's `slaves = 1` provides, answers.
    let path = guide::EXAMPLE_KEY;
    let list = demo.preference_list(path);
    assert_eq!(list.len(), 2, "{list:?}");
    let (primary, replica) = (&demo.backends[list[0]], &demo.backends[list[1]]);
    let client = client();
    let down = send(
        &client,
        Method::POST,
        &format!("http://{}/_demo/down?seconds=4", primary.addr),
    )
    .await;
    assert_eq!(down.status, StatusCode::OK, "{down:?}");
    let answer = send(
        &client,
        Method::GET,
        &format!("http://{}{path}", demo.proxy),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.served_by.as_deref(), Some(replica.name.as_str()));

    // As Kubernetes does with a pod that is not ready, the down backend's
    // SRV record is withdrawn, and published again once it listens; or it
    // stays throughout.
    let srv = zone::srv_record(primary);
    let published = || demo.zone().records().contains(&srv);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while published() && records == Records::SrvOnlyReady {
        assert!(tokio::time::Instant::now() < deadline, "never withdrawn");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut listening = false;
    while !listening {
        listening = tokio::net::TcpStream::connect(primary.addr).await.is_ok();
        assert!(
            records == Records::SrvOnlyReady || published(),
            "withdrawn while down"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "never listened again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while !published() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never published again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let direct = send(&client, Method::GET, &format!("http://{}/x", primary.addr)).await;
    assert_eq!(direct.status, StatusCode::OK, "{direct:?}");
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_are_refused_through_the_proxy() {
    let demo = start(options(2)).await.unwrap();
    let client = client();
    let answer = send(
        &client,
        Method::POST,
        &format!("http://{}/_demo/fail", demo.proxy),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    // Nobody failed: every backend still answers 200.
    for backend in &demo.backends {
        let direct = send(&client, Method::GET, &format!("http://{}/x", backend.addr)).await;
        assert_eq!(direct.status, StatusCode::OK, "{direct:?}");
    }
    let get = send(
        &client,
        Method::GET,
        &format!("http://{}/_demo/fail", demo.backends[0].addr),
    )
    .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED, "{get:?}");
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_names_what_runs_and_the_failover_commands() {
    let demo = start(options(3)).await.unwrap();
    let ring = published_ring(demo.dns).await;
    let guide = demo.guide();
    let primary = &ring[owner(&ring, guide::EXAMPLE_KEY)].1;
    let node = backend_addr(&demo, primary);

    assert!(
        guide.contains(&format!("Proxy       http://{}", demo.proxy)),
        "{guide}"
    );
    assert!(guide.contains(&format!(
        "http://{}/ring/lookup?service=demo&key=/users/42",
        demo.admin
    )));
    assert!(
        guide.contains(&format!("curl -X POST http://{node}/_demo/fail")),
        "{guide}"
    );
    assert!(guide.contains(&format!("curl -X POST http://{node}/_demo/recover")));
    assert!(guide.contains(&format!(
        "dig @127.0.0.1 -p {} SRV _demo._http.demo.shardproxy",
        demo.dns.port()
    )));
    assert!(guide
        .contains("config._demo._http.demo.shardproxy. 5 IN TXT  \"slaves=1 redundancy=host\""));
    for backend in &demo.backends {
        assert!(guide.contains(&backend.name), "{guide}");
        assert!(guide.contains(&format!("tokens.{}.{}.", backend.addr.port(), backend.host)));
    }
    assert!(guide.contains("33.3% of the keys"), "{guide}");
    demo.shutdown().await;
}

#[tokio::test]
async fn refuses_bad_options() {
    let error = start(options(1)).await.unwrap_err();
    assert!(
        matches!(error, DemoError::Backends { backends: 1 }),
        "{error}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let error = start(DemoOptions {
        listen: addr,
        ..options(2)
    })
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("cannot listen on {addr}: address in use — pass --listen to pick another")
    );
    let error = start(DemoOptions {
        admin: addr,
        ..options(2)
    })
    .await
    .unwrap_err();
    assert!(
        error.to_string().ends_with("pass --admin to pick another"),
        "{error}"
    );

    let same = "127.0.0.1:18080".parse().unwrap();
    let error = start(DemoOptions {
        listen: same,
        admin: same,
        ..options(2)
    })
    .await
    .unwrap_err();
    assert!(matches!(error, DemoError::SameAddress { .. }), "{error}");
}

#[tokio::test]
async fn run_reports_what_failed_to_start() {
    let error = run(options(1), std::future::pending()).await.unwrap_err();
    assert!(
        matches!(error, DemoError::Backends { backends: 1 }),
        "{error}"
    );
}

#[tokio::test]
async fn shutdown_frees_the_ports() {
    let demo = start(options(2)).await.unwrap();
    let (proxy, admin) = (demo.proxy, demo.admin);
    let backends: Vec<SocketAddr> = demo.backends.iter().map(|b| b.addr).collect();
    demo.shutdown().await;
    for addr in [proxy, admin].into_iter().chain(backends) {
        std::net::TcpListener::bind(addr).unwrap_or_else(|error| panic!("{addr}: {error}"));
    }
}
