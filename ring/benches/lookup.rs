//! Benchmarks of the request path's ring work: finding a key's primary and
//! its preference list, with and without hashing the key, on rings of 10,
//! 100 and 1,000 instances with 1 and 256 derived tokens each; and of
//! building the largest of those rings, which happens off the request path on
//! every change.
//!
//! Lookups cycle through 4,096 pre-generated keys so that the binary search
//! does not run down one cache-hot path.
//!
//! `cargo bench -p shardproxy-ring --bench lookup -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode};
use shardproxy_ring::records::derived_tokens;
use shardproxy_ring::{InstanceName, Member, Redundancy, Replication, Ring, Token};

/// How many keys lookups cycle through; a power of two for a cheap wrap.
const KEYS: usize = 4096;

const SIZES: [(u16, u32); 6] = [
    (10, 1),
    (10, 256),
    (100, 1),
    (100, 256),
    (1000, 1),
    (1000, 256),
];

const REPLICATION: Replication = Replication {
    slaves: 2,
    redundancy: Redundancy::None,
};

/// `instances` members with `virtual_nodes` derived tokens each.
fn members(instances: u16, virtual_nodes: u32) -> Vec<Member> {
    (0..instances)
        .map(|i| {
            let Ok(name) = InstanceName::new(&format!("shard{i}.svc.cluster.local"), 7000) else {
                unreachable!("the host names above are valid");
            };
            Member {
                tokens: derived_tokens(&name, virtual_nodes),
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | u32::from(i))), 7000),
                name,
            }
        })
        .collect()
}

fn ring(members: Vec<Member>) -> Ring {
    match Ring::build(members, REPLICATION) {
        Ok(ring) => ring,
        // 1,000 × 256 points × 3 entries is far below MAX_LIST_ENTRIES.
        Err(error) => unreachable!("benchmark rings fit: {error}"),
    }
}

fn keys() -> Vec<String> {
    (0..KEYS)
        .map(|i| format!("/users/{}/profile", i * 7919))
        .collect()
}

fn lookups(c: &mut Criterion) {
    let keys = keys();
    let positions: Vec<Token> = keys
        .iter()
        .map(|key| Token::of_key(key.as_bytes()))
        .collect();

    let mut group = c.benchmark_group("hash");
    group.bench_function("of_key", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            Token::of_key(black_box(keys[i].as_bytes()))
        });
    });
    group.finish();

    let mut group = c.benchmark_group("lookup");
    for (instances, virtual_nodes) in SIZES {
        let ring = ring(members(instances, virtual_nodes));
        let size = format!("{instances}x{virtual_nodes}");

        group.bench_with_input(BenchmarkId::new("point_of", &size), &ring, |b, ring| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % KEYS;
                ring.point_of(black_box(positions[i]))
            });
        });
        group.bench_with_input(BenchmarkId::new("primary", &size), &ring, |b, ring| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % KEYS;
                ring.primary(black_box(positions[i])).map(|x| x.addr())
            });
        });
        group.bench_with_input(BenchmarkId::new("hash_primary", &size), &ring, |b, ring| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % KEYS;
                let position = Token::of_key(black_box(keys[i].as_bytes()));
                ring.primary(position).map(|x| x.addr())
            });
        });
        group.bench_with_input(
            BenchmarkId::new("preference_list_3", &size),
            &ring,
            |b, ring| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % KEYS;
                    // What forwarding does: every address of the list, in order.
                    ring.preference_list(black_box(positions[i]))
                        .iter()
                        .fold(0u32, |acc, instance| {
                            acc.wrapping_add(u32::from(instance.addr().port()))
                        })
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("hash_preference_list_3", &size),
            &ring,
            |b, ring| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % KEYS;
                    let position = Token::of_key(black_box(keys[i].as_bytes()));
                    ring.preference_list(position)
                        .iter()
                        .fold(0u32, |acc, instance| {
                            acc.wrapping_add(u32::from(instance.addr().port()))
                        })
                });
            },
        );
    }
    group.finish();
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    // Each build takes tens of milliseconds: few, flat samples.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    let members = members(1000, 256);
    group.bench_function("1000x256_slaves2", |b| {
        b.iter_batched(|| members.clone(), ring, BatchSize::LargeInput);
    });
    group.finish();
}

criterion_group!(benches, lookups, build);
criterion_main!(benches);
