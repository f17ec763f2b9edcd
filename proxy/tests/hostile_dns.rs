//! Hostile or failing DNS (README "Limits and hardening"), the cases
//! `discovery.rs` does not already cover (SERVFAIL, timeouts and malformed
//! records are there): absurd TTLs, thousands of records, and answers that
//! are not DNS at all.
//! A refresh that fails keeps the last good ring, and the next refresh
//! always comes within [1 s, `dns.refresh`].

#![cfg(test)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use shardproxy::discovery::{
    build_resolver, Balance, DiscoveryError, DnsSource, ServiceRing, Table, TokenMode, MIN_REFRESH,
};
use shardproxy::dns_server::{DnsServer, Zone, ZoneRecord};
use tokio::net::UdpSocket;

const SRV: &str = "_frob._http.example.com.";
const REFRESH: Duration = Duration::from_secs(30);

fn source() -> DnsSource {
    DnsSource {
        srv: SRV.trim_end_matches('.').to_owned(),
        balance: Balance::Ring,
        tokens: TokenMode::Dns,
        replication: None,
    }
}

/// `count` instances `i{n}.example.com:8081`, each with one token.
fn ring_records(count: usize) -> Vec<ZoneRecord> {
    let mut records = Vec::new();
    for index in 0..count {
        let host = format!("i{index}.example.com.");
        records.push(ZoneRecord::srv(SRV, 10, 10, 8081, &host));
        records.push(ZoneRecord::a(&host, Ipv4Addr::LOCALHOST));
        records.push(ZoneRecord::txt(
            format!("tokens.8081.{host}"),
            &[&format!("{:x}", index + 1)],
        ));
    }
    records
}

async fn server(ttl: u32, records: Vec<ZoneRecord>) -> DnsServer {
    let zone = Zone::new("example.com.")
        .with_ttl(ttl)
        .with_records(records);
    DnsServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), zone)
        .await
        .expect("the DNS server starts")
}

fn instances(service: &ServiceRing) -> usize {
    match &service.load_full().expect("a ring").table {
        Table::Ring(ring) => ring.instances().len(),
        Table::Srv(_) => panic!("expected a ring"),
    }
}

/// The fingerprint of the ring in use.
fn fingerprint(service: &ServiceRing) -> String {
    match &service.load_full().expect("a ring").table {
        Table::Ring(ring) => ring.fingerprint().to_string(),
        Table::Srv(_) => panic!("expected a ring"),
    }
}

#[tokio::test]
async fn absurd_ttls_keep_the_refresh_between_a_second_and_dns_refresh() {
    for (ttl, expected) in [
        (0, MIN_REFRESH),
        (1, MIN_REFRESH),
        (60, REFRESH),
        (i32::MAX as u32, REFRESH),
        (u32::MAX, REFRESH),
    ] {
        let dns = server(ttl, ring_records(3)).await;
        let resolver = build_resolver(Some(&[dns.addr()])).unwrap();
        let service = ServiceRing::new("frob");
        let next = service.refresh_once(&resolver, &source(), REFRESH).await;
        assert_eq!(instances(&service), 3, "TTL {ttl}");
        assert_eq!(next, expected, "TTL {ttl}");
        dns.shutdown().await;
    }
}

#[tokio::test]
async fn a_thousand_records_make_a_ring_and_more_than_a_message_holds_keep_the_last() {
    // Too large for UDP: the answer comes truncated and the resolver asks
    // again over TCP.
    let dns = server(30, ring_records(1000)).await;
    let resolver = build_resolver(Some(&[dns.addr()])).unwrap();
    let service = ServiceRing::new("frob");
    let next = service.refresh_once(&resolver, &source(), REFRESH).await;
    assert_eq!(
        service
            .status()
            .last_error
            .map(|(_, error)| error.to_string()),
        None
    );
    assert_eq!(instances(&service), 1000);
    assert_eq!(next, REFRESH);
    let first = fingerprint(&service);

    // 3000 SRV records (with their addresses as additional records) do not
    // fit the 64 KiB a DNS message holds, even over TCP: a failed refresh.
    dns.set_records(ring_records(3000)).unwrap();
    let next = service.refresh_once(&resolver, &source(), REFRESH).await;
    let (_, error) = service.status().last_error.expect("an error");
    assert!(error.to_string().contains("truncated"), "{error}");
    assert_eq!(fingerprint(&service), first, "the last good ring stays");
    assert!((MIN_REFRESH..=REFRESH).contains(&next), "{next:?}");
    dns.shutdown().await;
}

/// What a lying server answers to a query.
type Lie = fn(&[u8]) -> Vec<u8>;

/// A UDP "DNS server" that answers every query with `answer(query)`.
async fn liar(answer: Lie) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buffer = [0u8; 4096];
        while let Ok((length, peer)) = socket.recv_from(&mut buffer).await {
            let _ = socket.send_to(&answer(&buffer[..length]), peer).await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn answers_that_are_not_dns_fail_the_refresh_and_keep_the_ring() {
    let good = server(30, ring_records(3)).await;
    let service = Arc::new(ServiceRing::new("frob"));
    let resolver = build_resolver(Some(&[good.addr()])).unwrap();
    service.refresh_once(&resolver, &source(), REFRESH).await;
    let first = fingerprint(&service);

    let liars: [(&str, Lie); 4] = [
        ("random bytes", |_| {
            (0..512u32).map(|i| (i * 7919 % 251) as u8).collect()
        }),
        ("the query's ID, then nothing", |query| {
            query.iter().take(2).copied().collect()
        }),
        ("the query sent back with its ID changed", |query| {
            let mut answer = query.to_vec();
            if let Some(first) = answer.first_mut() {
                *first = first.wrapping_add(1);
            }
            answer
        }),
        (
            "a header claiming 65535 answers that are not there",
            |query| {
                let mut answer: Vec<u8> = query.iter().take(12).copied().collect();
                answer.resize(12, 0);
                answer[2] = 0x81; // a response, recursion desired
                answer[3] = 0x80;
                answer[6] = 0xff; // ANCOUNT 65535
                answer[7] = 0xff;
                answer
            },
        ),
    ];
    let mut checks = Vec::new();
    for (what, answer) in liars {
        let service = Arc::clone(&service);
        let first = first.clone();
        checks.push(tokio::spawn(async move {
            let (addr, task) = liar(answer).await;
            let resolver = build_resolver(Some(&[addr])).unwrap();
            let failures = service.refreshes_failed();
            let next = service.refresh_once(&resolver, &source(), REFRESH).await;
            task.abort();
            assert!(service.refreshes_failed() > failures, "{what}: a failure");
            let (_, error) = service.status().last_error.expect("an error");
            assert!(
                matches!(error, DiscoveryError::Lookup { .. }),
                "{what}: {error}"
            );
            assert_eq!(fingerprint(&service), first, "{what}: the ring stays");
            assert!((MIN_REFRESH..=REFRESH).contains(&next), "{what}: {next:?}");
        }));
    }
    for check in checks {
        check.await.unwrap();
    }
    assert_eq!(instances(&service), 3);
    good.shutdown().await;
}
