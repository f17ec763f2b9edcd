//! An independent implementation of SPEC §2, written from the text of the
//! spec with none of the ring crate's code: linear scans, no precomputation.
//! Tests compare what shardproxy computes against it.

// Each test binary uses part of it.
#![allow(dead_code)]

use xxhash_rust::xxh3::xxh3_128;

/// One instance as published: `host`, `port`, `addr` and token text.
#[derive(Clone, Debug)]
pub struct RefInstance {
    pub host: String,
    pub port: u16,
    pub addr: String,
    pub tokens: Vec<u128>,
}

impl RefInstance {
    pub fn new(host: &str, port: u16, addr: &str, tokens: &[&str]) -> RefInstance {
        RefInstance {
            host: host.trim_end_matches('.').to_lowercase(),
            port,
            addr: addr.to_owned(),
            tokens: tokens.iter().map(|text| parse_token(text)).collect(),
        }
    }

    pub fn id(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Token text: 1 to 32 hex digits, the leading digits of the position.
pub fn parse_token(text: &str) -> u128 {
    assert!((1..=32).contains(&text.len()), "bad token {text}");
    let padded = format!("{text:0<32}");
    u128::from_str_radix(&padded, 16).expect("hex token")
}

/// The ring's points after tie-breaking: (token, instance index), ascending.
fn points(instances: &[RefInstance]) -> Vec<(u128, usize)> {
    let mut points: Vec<(u128, usize)> = Vec::new();
    for (index, instance) in instances.iter().enumerate() {
        for &token in &instance.tokens {
            match points.iter_mut().find(|(t, _)| *t == token) {
                None => points.push((token, index)),
                Some(existing) => {
                    // Byte order of host:port decides a tie.
                    if instances[index].id().as_bytes() < instances[existing.1].id().as_bytes() {
                        existing.1 = index;
                    }
                }
            }
        }
    }
    points.sort();
    points
}

/// The preference list of `key`: `host:port` of each instance, primary first.
pub fn preference_list(
    instances: &[RefInstance],
    slaves: usize,
    by_host: bool,
    key: &[u8],
) -> Vec<String> {
    let points = points(instances);
    if points.is_empty() {
        return Vec::new();
    }
    let hash = xxh3_128(key);
    let start = points
        .iter()
        .position(|(token, _)| *token >= hash)
        .unwrap_or(0);
    let mut list: Vec<usize> = Vec::new();
    for step in 0..points.len() {
        if list.len() == slaves + 1 {
            break;
        }
        let candidate = points[(start + step) % points.len()].1;
        let clash = list.iter().any(|&taken| {
            taken == candidate || (by_host && instances[taken].host == instances[candidate].host)
        });
        if !clash {
            list.push(candidate);
        }
    }
    list.iter().map(|&index| instances[index].id()).collect()
}

/// The example ring the BIND tests publish: two instances on
/// `frob1.example.com` (127.0.0.1), one on `frob2.example.com` (127.0.0.2).
pub fn example_ring() -> Vec<RefInstance> {
    vec![
        RefInstance::new(
            "frob1.example.com",
            8081,
            "127.0.0.1:8081",
            &["00112233445566778899aabbccddeeff"],
        ),
        RefInstance::new(
            "frob1.example.com",
            8082,
            "127.0.0.1:8082",
            &["40", "c0", "e"],
        ),
        RefInstance::new("frob2.example.com", 8081, "127.0.0.2:8081", &["8"]),
    ]
}
