//! Discovery against a real DNS server (hickory-server, in process, on an
//! ephemeral loopback port): the ring follows the records of SPEC §3, and a
//! failed or malformed refresh keeps the last good ring.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod reference;
mod support;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reference::RefInstance;
use shardproxy::discovery::{
    build_resolver, resolve, Balance, DiscoveryError, DnsSource, ReplicationFrom, ServiceRing,
    Table, TokenMode,
};
use shardproxy::dns_server::{DnsServer, Mode, Zone, ZoneRecord};
use shardproxy_ring::{Redundancy, Replication, Ring, Token};

const SRV: &str = "_frob._http.example.com.";

/// The example ring: three instances on two hosts, one with two ports.
fn ring_records() -> Vec<ZoneRecord> {
    vec![
        ZoneRecord::srv(SRV, 10, 50, 8081, "frob1.example.com."),
        ZoneRecord::srv(SRV, 10, 50, 8082, "frob1.example.com."),
        ZoneRecord::srv(SRV, 10, 50, 8081, "Frob2.Example.com."),
        // The same instance twice is one instance.
        ZoneRecord::srv(SRV, 20, 10, 8081, "frob2.example.com."),
        ZoneRecord::txt(
            "tokens.8081.frob1.example.com.",
            &["00112233445566778899aabbccddeeff"],
        ),
        ZoneRecord::txt("tokens.8082.frob1.example.com.", &["40 c0", "e"]),
        ZoneRecord::txt("tokens.8081.frob2.example.com.", &["8"]),
        ZoneRecord::txt(
            "config._frob._http.example.com.",
            &["slaves=1 redundancy=host"],
        ),
        // Two addresses: the numerically smallest wins, whatever the order.
        ZoneRecord::a("frob1.example.com.", Ipv4Addr::new(127, 0, 0, 9)),
        ZoneRecord::a("frob1.example.com.", Ipv4Addr::new(127, 0, 0, 10)),
        ZoneRecord::aaaa("frob2.example.com.", Ipv6Addr::LOCALHOST),
    ]
}

fn reference_ring() -> Vec<RefInstance> {
    vec![
        RefInstance::new(
            "frob1.example.com",
            8081,
            "127.0.0.9:8081",
            &["00112233445566778899aabbccddeeff"],
        ),
        RefInstance::new(
            "frob1.example.com",
            8082,
            "127.0.0.9:8082",
            &["40", "c0", "e"],
        ),
        RefInstance::new("frob2.example.com", 8081, "[::1]:8081", &["8"]),
    ]
}

fn source() -> DnsSource {
    DnsSource {
        srv: SRV.trim_end_matches('.').to_owned(),
        balance: Balance::Ring,
        tokens: TokenMode::Dns,
        replication: None,
    }
}

async fn server(records: Vec<ZoneRecord>) -> DnsServer {
    let zone = Zone::new("example.com.").with_ttl(1).with_records(records);
    DnsServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), zone)
        .await
        .expect("the DNS server starts")
}

fn ring_of(table: &Table) -> &Ring {
    match table {
        Table::Ring(ring) => ring,
        Table::Srv(_) => panic!("expected a ring"),
    }
}

fn keys() -> Vec<String> {
    (0..500).map(|i| format!("/users/{i}")).collect()
}

#[tokio::test]
async fn ring_follows_the_published_records() {
    let dns = server(ring_records()).await;
    let resolver = build_resolver(Some(&[dns.addr()])).unwrap();
    let resolved = resolve(&resolver, &source()).await.unwrap();
    let ring = ring_of(&resolved.table);

    assert_eq!(ring.instances().len(), 3);
    assert_eq!(ring.replication().slaves, 1);
    assert_eq!(ring.replication().redundancy, Redundancy::Host);
    let addrs: Vec<String> = ring
        .instances()
        .iter()
        .map(|i| i.addr().to_string())
        .collect();
    assert_eq!(addrs, ["127.0.0.9:8081", "127.0.0.9:8082", "[::1]:8081"]);
    assert_eq!(resolved.min_ttl, Some(Duration::from_secs(1)));

    let reference = reference_ring();
    for key in keys() {
        let expected = reference::preference_list(&reference, 1, true, key.as_bytes());
        let got: Vec<String> = ring
            .preference_list(Token::of_key(key.as_bytes()))
            .iter()
            .map(|instance| instance.name().to_string())
            .collect();
        assert_eq!(got, expected, "key {key}");
    }
    dns.shutdown().await;
}

#[tokio::test]
async fn instance_without_tokens_is_left_out_with_a_warning() {
    let mut records = ring_records();
    records.retain(|record| record.name != "tokens.8081.frob2.example.com.");
    // A TXT record with no words counts as none.
    records.push(ZoneRecord::txt("tokens.8081.frob2.example.com.", &["  "]));
    let dns = server(records).await;
    let resolver = build_resolver(Some(&[dns.addr()])).unwrap();
    let resolved = resolve(&resolver, &source()).await.unwrap();
    let ring = ring_of(&resolved.table);
    assert_eq!(ring.instances().len(), 2);
    assert!(
        resolved
            .warnings
            .iter()
            .any(|w| w.contains("frob2.example.com:8081") && w.contains("left out")),
        "{:?}",
        resolved.warnings
    );
    // One host left: replicas cannot be on another host.
    assert_eq!(ring.list_len(), 1);
    dns.shutdown().await;
}

/// Every way a refresh can fail, each checked to keep the last good ring.
#[tokio::test]
async fn failed_or_malformed_refreshes_keep_the_last_good_ring() {
    let dns = server(ring_records()).await;
    let resolver = build_resolver(Some(&[dns.addr()])).unwrap();
    let service = ServiceRing::new("frob");
    let refresh = Duration::from_secs(30);
    service.refresh_once(&resolver, &source(), refresh).await;
    let good = service.load_full().expect("a first ring");
    let good_fingerprint = ring_of(&good.table).fingerprint();

    type Edit = Box<dyn Fn(&mut Vec<ZoneRecord>)>;
    let replace = |name: &'static str, record: ZoneRecord| -> Edit {
        Box::new(move |records: &mut Vec<ZoneRecord>| {
            records.retain(|r| r.name != name);
            records.push(record.clone());
        })
    };
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "bad token",
            replace(
                "tokens.8081.frob2.example.com.",
                ZoneRecord::txt("tokens.8081.frob2.example.com.", &["0x80"]),
            ),
            "malformed token at tokens.8081.frob2.example.com.",
        ),
        (
            "token too long",
            replace(
                "tokens.8081.frob2.example.com.",
                ZoneRecord::txt("tokens.8081.frob2.example.com.", &[&"1".repeat(33)]),
            ),
            "33 characters",
        ),
        (
            "bad config value",
            replace(
                "config._frob._http.example.com.",
                ZoneRecord::txt("config._frob._http.example.com.", &["slaves=many"]),
            ),
            "malformed ring config",
        ),
        (
            "config key twice",
            replace(
                "config._frob._http.example.com.",
                ZoneRecord::txt("config._frob._http.example.com.", &["slaves=1", "slaves=2"]),
            ),
            "given twice",
        ),
        (
            "target without address",
            Box::new(|records: &mut Vec<ZoneRecord>| {
                records.retain(|r| r.name != "frob2.example.com.");
            }),
            "frob2.example.com (port 8081) has no A or AAAA record",
        ),
        (
            "SRV name gone",
            // NODATA rather than NXDOMAIN: config._frob... lies below it.
            Box::new(|records: &mut Vec<ZoneRecord>| records.retain(|r| r.name != SRV)),
            "SRV _frob._http.example.com. has no records (NODATA)",
        ),
        (
            "SRV only the root target",
            Box::new(|records: &mut Vec<ZoneRecord>| {
                records.retain(|r| r.name != SRV);
                records.push(ZoneRecord::srv(SRV, 0, 0, 0, "."));
            }),
            "only the target",
        ),
    ];
    for (what, edit, message) in cases {
        let mut records = ring_records();
        edit(&mut records);
        dns.set_records(records).unwrap();
        let failures = service.refreshes_failed();
        service.refresh_once(&resolver, &source(), refresh).await;
        assert_eq!(
            service.refreshes_failed(),
            failures + 1,
            "{what}: refresh should fail"
        );
        let error = service.status().last_error.expect("an error is kept").1;
        assert!(error.to_string().contains(message), "{what}: {error}");
        let current = service.load_full().expect("the ring stays");
        assert_eq!(
            ring_of(&current.table).fingerprint(),
            good_fingerprint,
            "{what}"
        );
    }

    // SERVFAIL on the tokens name of one instance: a failure, not a departure.
    dns.set_records(ring_records()).unwrap();
    dns.zone()
        .set_mode_for("tokens.8081.frob2.example.com.", Mode::ServFail)
        .unwrap();
    service.refresh_once(&resolver, &source(), refresh).await;
    let error = service.status().last_error.expect("an error").1;
    assert!(matches!(error, DiscoveryError::Lookup { .. }), "{error}");
    assert_eq!(
        ring_of(&service.load_full().unwrap().table)
            .instances()
            .len(),
        3
    );

    // The whole server answering SERVFAIL.
    dns.zone().reset_modes();
    dns.set_mode(Mode::ServFail);
    let failures = service.refreshes_failed();
    service.refresh_once(&resolver, &source(), refresh).await;
    assert_eq!(service.refreshes_failed(), failures + 1);
    assert_eq!(
        ring_of(&service.load_full().unwrap().table).fingerprint(),
        good_fingerprint
    );

    // Back to normal: a changed ring is taken.
    dns.set_mode(Mode::Normal);
    let mut records = ring_records();
    records.push(ZoneRecord::txt("tokens.8081.frob2.example.com.", &["9"]));
    dns.set_records(records).unwrap();
    service.refresh_once(&resolver, &source(), refresh).await;
    let changed = service.load_full().unwrap();
    assert_ne!(ring_of(&changed.table).fingerprint(), good_fingerprint);
    dns.shutdown().await;
}

#[tokio::test]
async fn a_dead_server_times_out_and_the_ring_stays() {
    let dns = server(ring_records()).await;
    let resolver = build_resolver(Some(&[dns.addr()])).unwrap();
    let service = ServiceRing::new("frob");
    service
        .refresh_once(&resolver, &source(), Duration::from_secs(30))
        .await;
    let fingerprint = ring_of(&service.load_full().unwrap().table).fingerprint();
    dns.set_mode(Mode::Drop);
    // Nothing answers any more, so this refresh can only end by the
    // resolver's timeouts (2 s, tried again): with the clock paused they
    // fire as soon as the runtime has nothing else to do, instead of after
    // seconds. No answer is there for a jump of the clock to overtake.
    tokio::time::pause();
    let next = service
        .refresh_once(&resolver, &source(), Duration::from_secs(30))
        .await;
    tokio::time::resume();
    assert_eq!(next, shardproxy::discovery::RETRY_AFTER_FAILURE);
    let error = service.status().last_error.expect("an error").1;
    assert!(matches!(error, DiscoveryError::Lookup { .. }), "{error}");
    assert_eq!(
        ring_of(&service.load_full().unwrap().table).fingerprint(),
        fingerprint
    );
    dns.shutdown().await;
}

/// The background refresh picks up a change on its own, within the TTL.
#[tokio::test]
async fn refresh_loop_follows_changes() {
    let dns = server(ring_records()).await;
    let resolver = build_resolver(Some(&[dns.addr()])).unwrap();
    let service = Arc::new(ServiceRing::new("frob"));
    let task = tokio::spawn(Arc::clone(&service).refresh_forever(
        resolver,
        source(),
        Duration::from_secs(30),
    ));
    let wait_for = |instances: usize| {
        let service = Arc::clone(&service);
        async move {
            tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    if let Some(snapshot) = service.load_full() {
                        if ring_of(&snapshot.table).instances().len() == instances {
                            return;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await
            .expect("the ring follows the records");
        }
    };
    wait_for(3).await;
    dns.zone()
        .update(|records| {
            records.push(ZoneRecord::srv(SRV, 10, 50, 8081, "frob3.example.com."));
            records.push(ZoneRecord::a(
                "frob3.example.com.",
                Ipv4Addr::new(127, 0, 0, 3),
            ));
            records.push(ZoneRecord::txt("tokens.8081.frob3.example.com.", &["a"]));
        })
        .unwrap();
    // TTLs are 1 s, so the next refresh is at most a second away; nothing
    // but the refresh loop runs, so the clock skips to it.
    support::skip(Duration::from_secs(1)).await;
    wait_for(4).await;
    task.abort();
    dns.shutdown().await;
}

#[tokio::test]
async fn derived_tokens_need_no_txt_records() {
    let records = vec![
        ZoneRecord::srv(SRV, 0, 0, 80, "web-0.web.example.com."),
        ZoneRecord::srv(SRV, 0, 0, 80, "web-1.web.example.com."),
        ZoneRecord::a("web-0.web.example.com.", Ipv4Addr::new(10, 0, 0, 1)),
        ZoneRecord::a("web-1.web.example.com.", Ipv4Addr::new(10, 0, 0, 2)),
    ];
    let dns = server(records).await;
    let resolver = build_resolver(Some(&[dns.addr()])).unwrap();
    let source = DnsSource {
        tokens: TokenMode::Derived { virtual_nodes: 16 },
        ..source()
    };
    let resolved = resolve(&resolver, &source).await.unwrap();
    let ring = ring_of(&resolved.table);
    assert_eq!(ring.point_count(), 32);
    let reference: Vec<RefInstance> = ["web-0.web.example.com", "web-1.web.example.com"]
        .iter()
        .zip(["10.0.0.1:80", "10.0.0.2:80"])
        .map(|(host, addr)| {
            let mut instance = RefInstance::new(host, 80, addr, &[]);
            instance.tokens = (0..16)
                .map(|i| xxhash_rust::xxh3::xxh3_128(format!("{host}:80#{i}").as_bytes()))
                .collect();
            instance
        })
        .collect();
    for key in keys() {
        let expected = reference::preference_list(&reference, 0, false, key.as_bytes());
        let got = ring
            .primary(Token::of_key(key.as_bytes()))
            .unwrap()
            .name()
            .to_string();
        assert_eq!(vec![got], expected);
    }
    dns.shutdown().await;
}

/// SPEC §9.5: a headless Kubernetes service publishes SRV and A records
/// only; the config's `slaves` and `redundancy` give its ring replicas,
/// and a `config.` record, once published, wins.
#[tokio::test]
async fn the_configs_replication_applies_until_dns_publishes_a_config_record() {
    let srv_and_a_only = vec![
        ZoneRecord::srv(SRV, 0, 0, 80, "web-0.web.example.com."),
        ZoneRecord::srv(SRV, 0, 0, 80, "web-1.web.example.com."),
        ZoneRecord::srv(SRV, 0, 0, 80, "web-2.web.example.com."),
        ZoneRecord::a("web-0.web.example.com.", Ipv4Addr::new(10, 0, 0, 1)),
        ZoneRecord::a("web-1.web.example.com.", Ipv4Addr::new(10, 0, 0, 2)),
        ZoneRecord::a("web-2.web.example.com.", Ipv4Addr::new(10, 0, 0, 3)),
    ];
    let given = Replication {
        slaves: 1,
        redundancy: Redundancy::None,
    };
    let source = DnsSource {
        tokens: TokenMode::Derived { virtual_nodes: 16 },
        replication: Some(given),
        ..source()
    };
    let dns = server(srv_and_a_only.clone()).await;
    let resolver = build_resolver(Some(&[dns.addr()])).unwrap();
    let resolved = resolve(&resolver, &source).await.unwrap();
    assert_eq!(resolved.replication_from, ReplicationFrom::Config);
    let ring = ring_of(&resolved.table);
    assert_eq!(ring.replication(), given);
    assert_eq!(ring.list_len(), 2, "a primary and one replica");
    // Without the config's settings: no replicas.
    let unset = DnsSource {
        replication: None,
        ..source.clone()
    };
    let resolved = resolve(&resolver, &unset).await.unwrap();
    assert_eq!(resolved.replication_from, ReplicationFrom::Default);
    assert_eq!(ring_of(&resolved.table).list_len(), 1);
    dns.shutdown().await;
    // A record in DNS wins over the config.
    let mut with_record = srv_and_a_only;
    with_record.push(ZoneRecord::txt(
        "config._frob._http.example.com.",
        &["slaves=2"],
    ));
    let dns = server(with_record).await;
    let resolver = build_resolver(Some(&[dns.addr()])).unwrap();
    let resolved = resolve(&resolver, &source).await.unwrap();
    assert_eq!(resolved.replication_from, ReplicationFrom::Dns);
    assert_eq!(ring_of(&resolved.table).replication().slaves, 2);
    dns.shutdown().await;
}

#[tokio::test]
async fn srv_balance_reads_priorities_and_weights() {
    let dns = server(ring_records()).await;
    let resolver = build_resolver(Some(&[dns.addr()])).unwrap();
    let source = DnsSource {
        balance: Balance::Srv,
        ..source()
    };
    let resolved = resolve(&resolver, &source).await.unwrap();
    let Table::Srv(instances) = resolved.table else {
        panic!("expected an SRV table");
    };
    let summary: Vec<(String, u16, u16)> = instances
        .iter()
        .map(|i| (i.name.to_string(), i.weight.priority, i.weight.weight))
        .collect();
    assert_eq!(
        summary,
        [
            ("frob1.example.com:8081".to_owned(), 10, 50),
            ("frob1.example.com:8082".to_owned(), 10, 50),
            ("frob2.example.com:8081".to_owned(), 10, 50),
        ]
    );
    dns.shutdown().await;
}
