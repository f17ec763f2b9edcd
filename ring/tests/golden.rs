//! Golden tests: where specific keys land on two small fixed rings.
//!
//! Every proxy of a fleet, of every version, must send a key to the same
//! instance, so the hash, the token order, the tie-breaking and the replica
//! walk must never change by accident. The tables below are literal; each is
//! also recomputed here independently of the ring (XXH3 called directly, a
//! linear scan over the literal tokens) so that a table edited to match a
//! regression fails too.

// Every item here is test code: this lets clippy's `allow-unwrap-in-tests`
// cover the helpers too, not just the `#[test]` functions.
#![cfg(test)]

use std::net::SocketAddr;

use shardproxy_ring::records::derived_tokens;
use shardproxy_ring::{InstanceName, Member, Redundancy, Replication, Ring, Token};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

/// A ring as published in DNS: (target, port, address, tokens).
const ZONE: &[(&str, u16, &str, &[&str])] = &[
    (
        "frob1.example.com",
        8081,
        "10.0.0.1:8081",
        &["00112233445566778899aabbccddeeff", "80"],
    ),
    ("frob2.example.com", 8081, "10.0.0.2:8081", &["40", "c0"]),
    (
        "frob3.example.com",
        8082,
        "10.0.0.3:8082",
        &["20", "a0", "e0"],
    ),
    ("frob1.example.com", 8082, "10.0.0.1:8082", &["60"]),
];

const ZONE_REPLICATION: Replication = Replication {
    slaves: 2,
    redundancy: Redundancy::Host,
};

/// A Kubernetes-style ring: derived tokens, 16 virtual nodes each.
const DERIVED_HOSTS: [&str; 4] = [
    "shard0.svc.cluster.local",
    "shard1.svc.cluster.local",
    "shard2.svc.cluster.local",
    "shard3.svc.cluster.local",
];
const DERIVED_PORT: u16 = 7000;
const VIRTUAL_NODES: u32 = 16;

const F1_8081: &str = "frob1.example.com:8081";
const F1_8082: &str = "frob1.example.com:8082";
const F2: &str = "frob2.example.com:8081";
const F3: &str = "frob3.example.com:8082";
const S0: &str = "shard0.svc.cluster.local:7000";
const S1: &str = "shard1.svc.cluster.local:7000";
const S2: &str = "shard2.svc.cluster.local:7000";
const S3: &str = "shard3.svc.cluster.local:7000";

/// key, its position, its preference list on the zone ring
/// (`slaves=2 redundancy=host`), its preference list on the derived ring
/// (`slaves=1`).
type Golden = (
    &'static str,
    &'static str,
    [&'static str; 3],
    [&'static str; 2],
);

const GOLDEN: &[Golden] = &[
    (
        "hello",
        "b5e9c1ad071b3e7fc779cfaa5e523818",
        [F2, F3, F1_8081],
        [S3, S0],
    ),
    (
        "",
        "99aa06d3014798d86001c324468d497f",
        [F3, F2, F1_8081],
        [S2, S1],
    ),
    (
        "/",
        "d6f5222ffc6d3eaf474292953285562e",
        [F3, F1_8081, F2],
        [S3, S2],
    ),
    (
        "/index.html",
        "1df1259b2dc3ad5b89089fa2c3ad785b",
        [F3, F2, F1_8082],
        [S3, S2],
    ),
    (
        "user:1",
        "b3ce4d642bd86c75568dc3fbb5023b0c",
        [F2, F3, F1_8081],
        [S0, S3],
    ),
    (
        "user:2",
        "aff6584f3bf0d8d7714c3ff9c80e7657",
        [F2, F3, F1_8081],
        [S0, S3],
    ),
    (
        "user:3",
        "60792369a054eef3a7c6071eadfd385b",
        [F1_8081, F3, F2],
        [S0, S2],
    ),
    (
        "user:4",
        "9256580bb8c9b2f2dbee5524d5188e88",
        [F3, F2, F1_8081],
        [S3, S2],
    ),
    (
        "user:5",
        "d66609cb8d77f069abdca3903d8a164a",
        [F3, F1_8081, F2],
        [S3, S2],
    ),
    (
        "user:6",
        "b260fceba6cd40ef08037d6e77e38dbc",
        [F2, F3, F1_8081],
        [S0, S3],
    ),
    (
        "user:7",
        "5477c54f3ae1048a8305347d50ee1caa",
        [F1_8082, F3, F2],
        [S0, S1],
    ),
    (
        "user:8",
        "68fc8980849b177002ead78e6bb889ef",
        [F1_8081, F3, F2],
        [S2, S3],
    ),
    (
        "frobnicator",
        "485c95232ec3cd079505f38e7e7a5bc3",
        [F1_8082, F3, F2],
        [S0, S1],
    ),
    (
        "日本語",
        "cf540541fa85fd53750ff417a7ae0479",
        [F3, F1_8081, F2],
        [S3, S2],
    ),
    (
        "a/b?c=d",
        "8cc4feaf946e88fa623d222556e3969f",
        [F3, F2, F1_8081],
        [S3, S1],
    ),
];

const ZONE_CANONICAL_TEXT: &str = "\
frob1.example.com:8081 10.0.0.1:8081 00112233445566778899aabbccddeeff 80000000000000000000000000000000
frob1.example.com:8082 10.0.0.1:8082 60000000000000000000000000000000
frob2.example.com:8081 10.0.0.2:8081 40000000000000000000000000000000 c0000000000000000000000000000000
frob3.example.com:8082 10.0.0.3:8082 20000000000000000000000000000000 a0000000000000000000000000000000 e0000000000000000000000000000000
slaves=2 redundancy=host
";
const ZONE_FINGERPRINT: &str = "851ef683403c6352";
const DERIVED_FINGERPRINT: &str = "e6774ba1bc7ebcd3";

fn zone_ring() -> Ring {
    let members = ZONE
        .iter()
        .map(|&(host, port, addr, tokens)| Member {
            name: InstanceName::new(host, port).unwrap(),
            addr: addr.parse().unwrap(),
            tokens: tokens.iter().map(|text| text.parse().unwrap()).collect(),
        })
        .collect();
    Ring::build(members, ZONE_REPLICATION).unwrap()
}

fn derived_ring() -> Ring {
    let members = DERIVED_HOSTS
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = InstanceName::new(host, DERIVED_PORT).unwrap();
            Member {
                tokens: derived_tokens(&name, VIRTUAL_NODES),
                addr: SocketAddr::from(([10, 1, 0, i as u8], DERIVED_PORT)),
                name,
            }
        })
        .collect();
    Ring::build(
        members,
        Replication {
            slaves: 1,
            redundancy: Redundancy::None,
        },
    )
    .unwrap()
}

fn names(ring: &Ring, position: Token) -> Vec<&str> {
    ring.preference_list(position)
        .iter()
        .map(|instance| instance.name().as_str())
        .collect()
}

// === the independent model ===

/// Token text as SPEC §2 defines it, decoded by hand: hex digits padded on
/// the right with zeros to 32.
fn spec_token(text: &str) -> u128 {
    u128::from_str_radix(&format!("{text:0<32}"), 16).unwrap()
}

/// (token, host, "host:port") sorted by token then name: the ring by hand.
fn model(pairs: &mut Vec<(u128, String, String)>) {
    pairs.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.as_bytes().cmp(b.2.as_bytes())));
    // The first of equal tokens wins (smallest name); drop the others.
    pairs.dedup_by_key(|pair| pair.0);
}

fn zone_model() -> Vec<(u128, String, String)> {
    let mut pairs = Vec::new();
    for &(host, port, _, tokens) in ZONE {
        for token in tokens {
            pairs.push((spec_token(token), host.to_owned(), format!("{host}:{port}")));
        }
    }
    model(&mut pairs);
    pairs
}

fn derived_model() -> Vec<(u128, String, String)> {
    let mut pairs = Vec::new();
    for host in DERIVED_HOSTS {
        for i in 0..VIRTUAL_NODES {
            let name = format!("{host}:{DERIVED_PORT}");
            let token = xxh3_128(format!("{name}#{i}").as_bytes());
            pairs.push((token, host.to_owned(), name));
        }
    }
    model(&mut pairs);
    pairs
}

/// Walks clockwise from the first token `>= position`.
fn model_list(
    pairs: &[(u128, String, String)],
    position: u128,
    len: usize,
    by_host: bool,
) -> Vec<String> {
    let start = pairs
        .iter()
        .position(|pair| pair.0 >= position)
        .unwrap_or(0);
    let mut list: Vec<&(u128, String, String)> = Vec::new();
    for step in 0..pairs.len() {
        let pair = &pairs[(start + step) % pairs.len()];
        let taken = list
            .iter()
            .any(|other| other.2 == pair.2 || (by_host && other.1 == pair.1));
        if !taken {
            list.push(pair);
        }
        if list.len() == len {
            break;
        }
    }
    list.into_iter().map(|pair| pair.2.clone()).collect()
}

// === tests ===

#[test]
fn key_hashes_are_pinned() {
    for &(key, hash, _, _) in GOLDEN {
        assert_eq!(Token::of_key(key.as_bytes()).to_string(), hash, "{key:?}");
        assert_eq!(
            format!("{:032x}", xxh3_128(key.as_bytes())),
            hash,
            "{key:?}"
        );
    }
    // SPEC §2's own example.
    assert_eq!(
        Token::of_key(b"hello"),
        Token(0xb5e9_c1ad_071b_3e7f_c779_cfaa_5e52_3818)
    );
}

#[test]
fn derived_tokens_are_pinned() {
    let name = InstanceName::new("Shard0.svc.cluster.local.", 7000).unwrap();
    let tokens: Vec<String> = derived_tokens(&name, 3)
        .iter()
        .map(Token::to_string)
        .collect();
    assert_eq!(
        tokens,
        [
            "128c60cfff84df8ad0c96a9edc149115",
            "444e1e74b55e8ce765d406ad14b4a1f1",
            "c3c480d006603031b708c29994280b3f",
        ]
    );
    assert_eq!(
        format!("{:032x}", xxh3_128(b"shard0.svc.cluster.local:7000#2")),
        tokens[2]
    );
}

#[test]
fn keys_land_where_they_always_have_on_the_zone_ring() {
    let ring = zone_ring();
    let model = zone_model();
    for &(key, hash, expected, _) in GOLDEN {
        let position = Token::of_key(key.as_bytes());
        assert_eq!(names(&ring, position), expected, "{key:?} ({hash})");
        assert_eq!(
            ring.primary(position).map(|i| i.name().as_str()),
            Some(expected[0]),
            "{key:?}"
        );
        let by_hand = model_list(&model, xxh3_128(key.as_bytes()), 3, true);
        assert_eq!(
            by_hand, expected,
            "the table disagrees with SPEC for {key:?}"
        );
    }
}

#[test]
fn keys_land_where_they_always_have_on_the_derived_ring() {
    let ring = derived_ring();
    let model = derived_model();
    assert_eq!(ring.point_count(), 4 * VIRTUAL_NODES as usize);
    for &(key, hash, _, expected) in GOLDEN {
        let position = Token::of_key(key.as_bytes());
        assert_eq!(names(&ring, position), expected, "{key:?} ({hash})");
        let by_hand = model_list(&model, xxh3_128(key.as_bytes()), 2, false);
        assert_eq!(
            by_hand, expected,
            "the table disagrees with SPEC for {key:?}"
        );
    }
}

#[test]
fn every_range_of_the_zone_ring_is_pinned() {
    let ring = zone_ring();
    let ranges: Vec<(String, String, &str)> = ring
        .ranges()
        .map(|range| {
            let owner = ring.instance(range.owner).unwrap().name().as_str();
            (range.after.to_string(), range.through.to_string(), owner)
        })
        .collect();
    let expected = [
        ("e0", "00112233445566778899aabbccddeeff", F1_8081),
        ("00112233445566778899aabbccddeeff", "2", F3),
        ("2", "4", F2),
        ("4", "6", F1_8082),
        ("6", "8", F1_8081),
        ("8", "a", F3),
        ("a", "c", F2),
        ("c", "e", F3),
    ];
    let expected: Vec<(String, String, &str)> = expected
        .iter()
        .map(|&(after, through, owner)| {
            (
                format!("{:032x}", spec_token(after)),
                format!("{:032x}", spec_token(through)),
                owner,
            )
        })
        .collect();
    assert_eq!(ranges, expected);
}

#[test]
fn fingerprints_are_pinned() {
    let zone = zone_ring();
    assert_eq!(zone.canonical_text(), ZONE_CANONICAL_TEXT);
    assert_eq!(zone.fingerprint().to_string(), ZONE_FINGERPRINT);
    assert_eq!(
        format!("{:016x}", xxh3_64(ZONE_CANONICAL_TEXT.as_bytes())),
        ZONE_FINGERPRINT
    );
    assert_eq!(
        derived_ring().fingerprint().to_string(),
        DERIVED_FINGERPRINT
    );
}
