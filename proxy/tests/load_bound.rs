//! Bounded loads (SPEC §11): a hot key spreads over the replicas that hold
//! it instead of saturating its primary. Four instances that each serve at
//! most 8 requests at once and take 20 ms each, `slaves = 2`, and a client
//! keeping 64 requests in flight, 80% of them for one key: with
//! `load_bound` every read of the hot key is still answered by an instance
//! of its preference list, no instance holds more than the bound (+1 for
//! the race between two workers) while only reads are sent, writes stay on
//! the primary, and the run takes a fraction of the time it takes without.

// The helpers are test code too: a failure is a panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use shardproxy::run::Running;
use support::client::{request, Client};
use support::{preference_ports, start_proxy, sum_samples};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Requests in flight from the client, and requests in all.
const CONCURRENCY: usize = 64;
const REQUESTS: usize = 960;
/// The hot key: four requests in five.
const HOT: &str = "/hot";

/// An instance that serves at most 8 requests at once, 20 ms each, and
/// counts the writes it gets.
struct Instance {
    addr: SocketAddr,
    writes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Instance {
    async fn start(name: &'static str) -> Instance {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slots = Arc::new(Semaphore::new(8));
        let writes = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&writes);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (slots, writes) = (Arc::clone(&slots), Arc::clone(&counted));
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (slots, writes) = (Arc::clone(&slots), Arc::clone(&writes));
                        async move {
                            if request.method() == Method::PUT {
                                writes.fetch_add(1, Ordering::SeqCst);
                            }
                            let _slot = slots.acquire().await.unwrap();
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(name))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Instance { addr, writes, task }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Four instances and a proxy over them, `slaves = 2` unless `service`
/// (more lines of the service's table: `load_bound`) says otherwise.
async fn fleet(service: &str) -> ([Instance; 4], Running) {
    let instances = [
        Instance::start("i1").await,
        Instance::start("i2").await,
        Instance::start("i3").await,
        Instance::start("i4").await,
    ];
    let lines: Vec<String> = instances
        .iter()
        .zip(["i1", "i2", "i3", "i4"])
        .zip(["40", "80", "c0", "ff"])
        .map(|((instance, name), token)| {
            format!(
                "    {{ host = \"{name}.example.com\", addr = \"{}\", tokens = [\"{token}\"] }},",
                instance.addr
            )
        })
        .collect();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
         [services.frob]\nkey = \"path\"\n{service}\ninstances = [\n{}\n]\n\n\
         [[routes]]\npath_prefix = \"/\"\nservice = \"frob\"\n",
        lines.join("\n")
    );
    let proxy = start_proxy(&config, "load_bound.toml").await;
    (instances, proxy)
}

/// What a run saw: how long it took, and who answered each hot read.
struct Run {
    took: Duration,
    hot_answered_by: Vec<String>,
}

/// Keys whose primary is the one instance outside the hot key's list: the
/// cold reads then never compete with the hot key for its instances, so
/// the list's room (3 × the bound) is more than the hot key's share of the
/// requests in flight and the bound holds (with the cold keys on its
/// instances, the list can be full, and the least loaded one takes a read
/// past the bound, as SPEC §11 says).
async fn cold_keys(proxy: &Running) -> Arc<Vec<String>> {
    let hot_list = preference_ports(proxy, "frob", HOT).await;
    let mut cold = Vec::new();
    for n in 0.. {
        let path = format!("/cold/{n}");
        if !hot_list.contains(&preference_ports(proxy, "frob", &path).await[0]) {
            cold.push(path);
            if cold.len() == 32 {
                return Arc::new(cold);
            }
        }
    }
    unreachable!("the loop returns")
}

/// [`REQUESTS`] through `proxy`, [`CONCURRENCY`] at a time, four in five
/// for the hot key (with `writes`, one in ten of all a `PUT` of it), the
/// others for the `cold` keys in turn.
async fn run(proxy: &Running, writes: bool) -> Run {
    let cold = cold_keys(proxy).await;
    let client = Client::http1();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, next, listen) = (client.clone(), Arc::clone(&next), proxy.listen);
            let cold = Arc::clone(&cold);
            tokio::spawn(async move {
                let mut hot_answered_by = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= REQUESTS as u64 {
                        return hot_answered_by;
                    }
                    let (method, path) = match n % 10 {
                        0 | 5 => (Method::GET, cold[n as usize % cold.len()].clone()),
                        7 if writes => (Method::PUT, HOT.to_owned()),
                        _ => (Method::GET, HOT.to_owned()),
                    };
                    let answer = client
                        .send(request(method.clone(), listen, &path, &[], ""))
                        .await;
                    assert_eq!(answer.status, 200, "{method} {path}");
                    if method == Method::GET && path == HOT {
                        hot_answered_by.push(answer.text());
                    }
                }
            })
        })
        .collect();
    let mut hot_answered_by = Vec::new();
    for worker in workers {
        hot_answered_by.extend(worker.await.unwrap());
    }
    Run {
        took: started.elapsed(),
        hot_answered_by,
    }
}

/// The names (`i1`...) of the instances on `ports`.
fn names_of(instances: &[Instance], ports: &[u16]) -> Vec<String> {
    ports
        .iter()
        .map(|port| {
            let index = instances
                .iter()
                .position(|instance| instance.addr.port() == *port)
                .unwrap();
            format!("i{}", index + 1)
        })
        .collect()
}

/// The highest in-flight count of any instance seen in the proxy's metrics
/// until `done`.
async fn sample_in_flight(proxy: &Running, done: &AtomicBool) -> f64 {
    let client = Client::http1();
    let mut highest: f64 = 0.0;
    while !done.load(Ordering::SeqCst) {
        let text = client.get(proxy.admin, "/metrics").await.text();
        for line in text
            .lines()
            .filter(|line| line.starts_with("shardproxy_upstream_in_flight{"))
        {
            let value: f64 = line.rsplit_once(' ').unwrap().1.parse().unwrap();
            highest = highest.max(value);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    highest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_spreads_over_its_replicas_within_the_bound() {
    // Without the bound: every hot read waits for the primary's 8 slots.
    let (instances, proxy) = fleet("slaves = 2").await;
    let names = names_of(&instances, &preference_ports(&proxy, "frob", HOT).await);
    let unbounded = run(&proxy, false).await;
    assert!(
        unbounded
            .hot_answered_by
            .iter()
            .all(|name| *name == names[0]),
        "without load_bound the primary answers every hot read"
    );
    proxy.shutdown().await;
    drop(instances);

    let (instances, proxy) =
        fleet("slaves = 2\nload_bound = { factor = 1.25, scope = \"replicas\" }").await;
    assert_eq!(preference_ports(&proxy, "frob", HOT).await.len(), 3);
    let done = AtomicBool::new(false);
    let (bounded, highest) = tokio::join!(
        async {
            let bounded = run(&proxy, false).await;
            done.store(true, Ordering::SeqCst);
            bounded
        },
        sample_in_flight(&proxy, &done)
    );
    let list = preference_ports(&proxy, "frob", HOT).await;
    let in_list = names_of(&instances, &list);
    // Every hot read on an instance of the key's list, and more than one
    // of them answering.
    assert!(
        bounded
            .hot_answered_by
            .iter()
            .all(|name| in_list.contains(name)),
        "a hot read left the preference list {in_list:?}"
    );
    let mut answering = bounded.hot_answered_by.clone();
    answering.sort();
    answering.dedup();
    assert!(answering.len() >= 2, "the hot key spread: {answering:?}");
    // The bound with every request in flight: ceil(1.25 × 64 / 4) = 20;
    // and the samples saw the load (else the bound would hold vacuously).
    assert!(highest <= 21.0, "an instance held {highest} requests");
    assert!(
        highest >= 8.0,
        "the samples saw at most {highest} in flight"
    );
    // Writes where they went before, the primary only, while reads spill
    // (writes are not bounded: the sample above had none).
    let mixed = run(&proxy, true).await;
    assert!(mixed
        .hot_answered_by
        .iter()
        .all(|name| in_list.contains(name)));
    let primary = list[0];
    for instance in &instances {
        let writes = instance.writes.load(Ordering::SeqCst);
        if instance.addr.port() == primary {
            assert!(writes > 0);
        } else {
            assert_eq!(writes, 0, "a write left the primary");
        }
    }
    let metrics = Client::http1().get(proxy.admin, "/metrics").await.text();
    let spills = sum_samples(
        &metrics,
        "shardproxy_load_bound_spills_total",
        &[("service", "frob")],
    );
    assert!(spills > 0.0, "spills are counted");
    // Three instances share the hot key: the run is faster by up to three
    // times (2.8 measured on 2 cores); asserted at two, for a loaded
    // machine.
    assert!(
        bounded.took * 2 < unbounded.took,
        "with load_bound {:?}, without {:?}",
        bounded.took,
        unbounded.took
    );
    eprintln!(
        "hot-key run: {:?} without load_bound, {:?} with (factor 1.25, 3 replicas)",
        unbounded.took, bounded.took
    );
    proxy.shutdown().await;
}

/// `scope = "ring"` (caches): a key whose list is one instance (`slaves =
/// 0`) spills past it, clockwise, to the others; `"replicas"` keeps every
/// read of it on its one instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_ring_spills_past_the_list_and_replicas_does_not() {
    for (scope, spreads) in [("ring", true), ("replicas", false)] {
        let (instances, proxy) = fleet(&format!(
            "slaves = 0\nload_bound = {{ factor = 1.25, scope = \"{scope}\" }}"
        ))
        .await;
        let owner = names_of(&instances, &preference_ports(&proxy, "frob", HOT).await);
        let hot = run(&proxy, false).await;
        let mut answering = hot.hot_answered_by.clone();
        answering.sort();
        answering.dedup();
        if spreads {
            assert!(answering.len() >= 2, "{scope}: {answering:?}");
        } else {
            assert_eq!(answering, owner, "{scope}");
        }
        proxy.shutdown().await;
    }
}
