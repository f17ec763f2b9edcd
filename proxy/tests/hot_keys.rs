//! Where requests fall, end to end (SPEC §11): `/keys/hot` and
//! `/ring/load` of an in-process proxy in front of four real backends,
//! after a few thousand requests over real sockets, behind the admin
//! token. The sketch's accuracy on a Zipf stream is `load::tests`'; here
//! the point is the whole way: the keys the proxy extracts, the hashes and
//! preference lists it reports agreeing with `/ring/lookup`, every request
//! counted in its range, the metric agreeing with the JSON, and the counts
//! starting afresh with a new ring.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::Value;
use shardproxy::discovery::{ReplicationFrom, Resolved, Table};
use shardproxy::run::Running;
use shardproxy_ring::{InstanceName, Member, Redundancy, Replication, Ring, Token};
use support::backend::{Backend, Reply};
use support::client::{request, Client};
use support::{instance_line, start_proxy, static_config, sum_samples};

const TOKEN: &str = "t0ken-of-the-admin";
const ROUTE: &str = "[[routes]]\npath_prefix = \"/\"\nservice = \"frob\"";
/// Requests sent: 80% `/hot`, 10% `/warm`, 10% each a key of its own.
/// About one in 8 is sampled, so the window holds some 600 to 1,500
/// samples (the debug build's pace decides): `/hot`'s share of them is
/// within 2% (one standard deviation) of the truth, well inside the 10%
/// asked; `/warm`'s within 12%, so it is checked for its rank and to 40%.
const REQUESTS: usize = 12_000;

/// Four backends, a quarter of the ring each, `slaves = 1`, the admin API
/// behind a token; `service` lines added to the service.
async fn fleet(service: &str) -> (Vec<Backend>, Running) {
    let mut backends = Vec::new();
    let mut lines = Vec::new();
    for (index, token) in ["3f", "7f", "bf", "ff"].into_iter().enumerate() {
        let backend = Backend::start(&format!("frob{}", index + 1)).await;
        lines.push(instance_line(&backend, &[token]));
        backends.push(backend);
    }
    let config = static_config(&lines, &format!("slaves = 1\n{service}"), ROUTE).replacen(
        "admin = \"127.0.0.1:0\"",
        &format!("admin = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\""),
        1,
    );
    let proxy = start_proxy(&config, "hot_keys.toml").await;
    (backends, proxy)
}

/// `GET path` on the admin API with the token: status and JSON.
async fn admin(proxy: &Running, path: &str) -> (u16, Value) {
    let bearer = format!("Bearer {TOKEN}");
    let answer = Client::http1()
        .send(request(
            Method::GET,
            proxy.admin,
            path,
            &[("authorization", &bearer)],
            "",
        ))
        .await;
    let json = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    (answer.status.as_u16(), json)
}

/// The `/metrics` text.
async fn metrics(proxy: &Running) -> String {
    let bearer = format!("Bearer {TOKEN}");
    Client::http1()
        .send(request(
            Method::GET,
            proxy.admin,
            "/metrics",
            &[("authorization", &bearer)],
            "",
        ))
        .await
        .text()
}

/// Sends the skewed stream (shuffled with a fixed seed) over 16
/// connections; returns each request's key and when it was sent.
async fn send_skewed(proxy: &Running) -> Vec<(Instant, String)> {
    let mut paths: Vec<String> = (0..REQUESTS)
        .map(|n| match n % 10 {
            0..=7 => "/hot".to_owned(),
            8 => "/warm".to_owned(),
            _ => format!("/cold/{n}"),
        })
        .collect();
    paths.shuffle(&mut StdRng::seed_from_u64(11));
    let paths = Arc::new(paths);
    let to = proxy.listen;
    let mut tasks = Vec::new();
    for lane in 0..16 {
        let paths = Arc::clone(&paths);
        tasks.push(tokio::spawn(async move {
            let client = Client::http1();
            let mut sent = Vec::new();
            for path in paths.iter().skip(lane).step_by(16) {
                sent.push((Instant::now(), path.clone()));
                let answer = client.get(to, path).await;
                assert_eq!(answer.status, 200, "{path}");
            }
            sent
        }));
    }
    let mut sent = Vec::new();
    for task in tasks {
        sent.extend(task.await.unwrap());
    }
    sent
}

/// How many requests went to each key.
fn per_key(sent: &[(Instant, String)]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for (_, path) in sent {
        *counts.entry(path.clone()).or_insert(0) += 1;
    }
    counts
}

/// `key`'s hash and preference list (`host:port`) as `/ring/lookup` says.
async fn lookup(proxy: &Running, key: &str) -> (String, Vec<String>) {
    let (status, view) = admin(proxy, &format!("/ring/lookup?service=frob&key={key}")).await;
    assert_eq!(status, 200, "{view}");
    let instances = view["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(support::host_port)
        .collect();
    (view["hash"].as_str().unwrap().to_owned(), instances)
}

/// Whether `got` is within `tolerance` (a fraction) of `wanted`.
fn within(got: f64, wanted: f64, tolerance: f64) -> bool {
    (got - wanted).abs() <= tolerance * wanted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_keys_are_found_with_their_rates_and_preference_lists() {
    let (backends, proxy) = fleet("").await;
    // Behind the token like the rest of the admin API.
    for path in ["/keys/hot?service=frob", "/ring/load?service=frob"] {
        let unauthorized = Client::http1().get(proxy.admin, path).await;
        assert_eq!(unauthorized.status, 401, "{path}");
    }

    let sent = send_skewed(&proxy).await;
    let asked = Instant::now();
    let (status, hot) = admin(&proxy, "/keys/hot?service=frob").await;
    assert_eq!(status, 200, "{hot}");
    assert_eq!(hot["service"], "frob");
    let window_s = hot["window_s"].as_f64().unwrap();
    assert!(window_s > 0.0, "{hot}");
    // The requests of the window reported (the whole stream when it took
    // less than one window; the run's last 10 to 20 s otherwise).
    let start = asked
        .checked_sub(Duration::from_secs_f64(window_s))
        .unwrap();
    let in_window: Vec<(Instant, String)> =
        sent.into_iter().filter(|(at, _)| *at >= start).collect();
    let counts = per_key(&in_window);
    let keys = hot["keys"].as_array().unwrap();
    for (rank, (name, tolerance)) in [("/hot", 0.1), ("/warm", 0.4)].into_iter().enumerate() {
        let entry = &keys[rank];
        let (hash, instances) = lookup(&proxy, name).await;
        assert_eq!(entry["hash"], hash.as_str(), "{name} at {rank}: {hot}");
        assert_eq!(entry["hash"].as_str().unwrap().len(), 32);
        let listed: Vec<&str> = entry["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap())
            .collect();
        assert_eq!(listed, instances, "{name}");
        assert_eq!(listed.len(), 2, "primary and one replica");
        // Keys are personal data unless the service says otherwise.
        assert!(entry.get("key").is_none(), "{entry}");
        let count = counts[name] as f64;
        let share = entry["share"].as_f64().unwrap();
        let rate = entry["rate"].as_f64().unwrap();
        assert!(
            within(share, count / in_window.len() as f64, tolerance),
            "{name}: share {share} for {count} of {}",
            in_window.len()
        );
        // The rate is the key's requests over the window reported.
        assert!(
            within(rate * window_s, count, tolerance),
            "{name}: rate {rate} over {window_s} s for {count} requests"
        );
    }
    // Every key counted is listed at most once, hottest first.
    let rates: Vec<f64> = keys.iter().map(|k| k["rate"].as_f64().unwrap()).collect();
    assert!(rates.windows(2).all(|pair| pair[0] >= pair[1]), "{rates:?}");

    let (status, error) = admin(&proxy, "/keys/hot?service=nope").await;
    assert_eq!(status, 404, "{error}");
    let (status, error) = admin(&proxy, "/keys/hot").await;
    assert_eq!(status, 400, "{error}");

    proxy.shutdown().await;
    for backend in backends {
        backend.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_keys_record_shows_the_keys() {
    let (backends, proxy) = fleet("hot_keys_record = true").await;
    let client = Client::http1();
    for _ in 0..400 {
        assert_eq!(client.get(proxy.listen, "/hot?x=1").await.status, 200);
    }
    let (status, hot) = admin(&proxy, "/keys/hot?service=frob").await;
    assert_eq!(status, 200, "{hot}");
    let first = &hot["keys"][0];
    // `key = "path"` by default: the query is not part of it.
    assert_eq!(first["key"], "/hot", "{hot}");
    assert_eq!(
        first["hash"],
        Token::of_key(b"/hot").to_string().as_str(),
        "{hot}"
    );
    proxy.shutdown().await;
    for backend in backends {
        backend.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_counted_in_its_range_and_for_its_primary() {
    let (backends, proxy) = fleet("").await;
    let sent = per_key(&send_skewed(&proxy).await);
    let (status, load) = admin(&proxy, "/ring/load?service=frob").await;
    assert_eq!(status, 200, "{load}");
    assert_eq!(load["service"], "frob");
    assert_eq!(load["requests"], REQUESTS as u64, "not sampled: {load}");
    assert!(load["since"].as_f64().unwrap() > 1.7e9, "{load}");
    let ranges = load["ranges"].as_array().unwrap();
    // The ring's ranges in ring order, as `ring diff` writes them.
    let through: Vec<&str> = ranges
        .iter()
        .map(|r| r["through"].as_str().unwrap())
        .collect();
    assert_eq!(
        through,
        ["3f", "7f", "bf", "ff"]
            .map(|t| format!("{t:0<32}"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert_eq!(ranges[0]["after"], format!("{:0<32}", "ff").as_str());
    assert_eq!(ranges[1]["after"], ranges[0]["through"]);

    // Each key's requests are in the range its hash falls in.
    let mut expected: HashMap<String, u64> = HashMap::new();
    for (key, count) in &sent {
        let position = Token::of_key(key.as_bytes());
        let range = ranges
            .iter()
            .find(|r| {
                let after = u128::from_str_radix(r["after"].as_str().unwrap(), 16).unwrap();
                let through = u128::from_str_radix(r["through"].as_str().unwrap(), 16).unwrap();
                if after < through {
                    after < position.0 && position.0 <= through
                } else {
                    position.0 > after || position.0 <= through
                }
            })
            .unwrap();
        *expected
            .entry(range["through"].as_str().unwrap().to_owned())
            .or_default() += *count as u64;
    }
    for range in ranges {
        let through = range["through"].as_str().unwrap();
        assert_eq!(
            range["requests"].as_u64().unwrap(),
            expected.get(through).copied().unwrap_or(0),
            "{range}"
        );
    }
    // Per instance: the JSON's totals, and the metric.
    let text = metrics(&proxy).await;
    let instances = load["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 4);
    for instance in instances {
        let name = instance["instance"].as_str().unwrap();
        let owned: u64 = ranges
            .iter()
            .filter(|r| r["owner"] == name)
            .map(|r| r["requests"].as_u64().unwrap())
            .sum();
        assert_eq!(instance["requests"].as_u64().unwrap(), owned, "{name}");
        let metric = sum_samples(
            &text,
            "shardproxy_instance_key_requests_total",
            &[("service", "frob"), ("upstream", name)],
        );
        assert_eq!(metric, owned as f64, "{name}");
    }
    let (hot_hash, _) = lookup(&proxy, "/hot").await;
    assert_eq!(hot_hash, Token::of_key(b"/hot").to_string());

    // A new ring has new ranges: its counts start from zero, while the
    // metric goes on.
    let app = proxy.app();
    let upstream = &app.services[0].upstream;
    let members = backends
        .iter()
        .zip(["1f", "5f", "9f", "df"])
        .map(|(backend, token)| Member {
            name: InstanceName::new(&format!("{}.example.com", backend.name()), backend.port())
                .unwrap(),
            addr: backend.addr(),
            tokens: vec![token.parse().unwrap()],
        })
        .collect();
    let replication = Replication {
        slaves: 1,
        redundancy: Redundancy::None,
    };
    let ring = Ring::build(members, replication).unwrap();
    let fingerprint = ring.fingerprint().to_string();
    assert!(upstream.ring.accept(Resolved {
        table: Table::Ring(ring),
        warnings: Vec::new(),
        min_ttl: None,
        replication_from: ReplicationFrom::Config,
    }));
    let (_, load) = admin(&proxy, "/ring/load?service=frob").await;
    assert_eq!(load["fingerprint"], fingerprint.as_str());
    assert_eq!(load["requests"], 0, "{load}");
    assert!(load["since"].is_null(), "{load}");
    let client = Client::http1();
    for _ in 0..10 {
        assert_eq!(client.get(proxy.listen, "/hot").await.status, 200);
    }
    let (_, load) = admin(&proxy, "/ring/load?service=frob").await;
    assert_eq!(load["requests"], 10, "{load}");
    let total = sum_samples(
        &metrics(&proxy).await,
        "shardproxy_instance_key_requests_total",
        &[("service", "frob")],
    );
    assert_eq!(total, (REQUESTS + 10) as f64);

    let (status, error) = admin(&proxy, "/ring/load?service=nope").await;
    assert_eq!(status, 404, "{error}");
    proxy.shutdown().await;
    for backend in backends {
        backend.shutdown().await;
    }
}

/// Cache hits never reach `forward`: they are counted where the cache
/// answers, once each, like the miss that filled the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_are_counted_once() {
    let (backends, proxy) = fleet("\n[services.frob.cache]\nenabled = true").await;
    for backend in &backends {
        backend.reply_at("/", Reply::with(&[("cache-control", "max-age=600")]));
    }
    let client = Client::http1();
    for _ in 0..40 {
        let answer = client.get(proxy.listen, "/cached").await;
        assert_eq!(answer.status, 200);
    }
    let reached: u64 = backends.iter().map(Backend::requests).sum();
    assert_eq!(reached, 1, "one miss, then hits");
    let (_, load) = admin(&proxy, "/ring/load?service=frob").await;
    assert_eq!(load["requests"], 40, "{load}");
    let (_, hot) = admin(&proxy, "/keys/hot?service=frob").await;
    assert_eq!(
        hot["keys"][0]["hash"],
        Token::of_key(b"/cached").to_string().as_str(),
        "{hot}"
    );
    proxy.shutdown().await;
    for backend in backends {
        backend.shutdown().await;
    }
}
