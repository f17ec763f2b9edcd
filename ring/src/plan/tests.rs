use std::net::{Ipv4Addr, SocketAddr};

use super::*;
use crate::ring::Replication;

fn name(host: &str) -> InstanceName {
    InstanceName::new(host, 80).unwrap()
}

fn addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 80))
}

fn ring(members: &[(&str, &[u128])]) -> Ring {
    let members = members
        .iter()
        .map(|(host, tokens)| Member {
            name: name(host),
            addr: addr(),
            tokens: tokens.iter().copied().map(Token).collect(),
        })
        .collect();
    Ring::build(members, Replication::default()).unwrap()
}

fn adding(hosts: &[&str]) -> Vec<(InstanceName, SocketAddr)> {
    hosts.iter().map(|host| (name(host), addr())).collect()
}

const Q: u128 = 1 << 126;

// === balanced tokens ===

fn hex(n: u64) -> Vec<String> {
    balanced_tokens(n).map(|token| token.to_string()).collect()
}

#[test]
fn balanced_small_counts() {
    assert_eq!(hex(1), ["f".repeat(32)]);
    assert_eq!(hex(2), [format!("7{}", "f".repeat(31)), "f".repeat(32)]);
    assert_eq!(
        hex(4),
        [
            format!("3{}", "f".repeat(31)),
            format!("7{}", "f".repeat(31)),
            format!("b{}", "f".repeat(31)),
            "f".repeat(32),
        ]
    );
    // 2^128 / 3 = 0x5555...5555.55..., so floor − 1 ends in 4.
    assert_eq!(
        hex(3),
        [
            format!("{}4", "5".repeat(31)),
            format!("{}9", "a".repeat(31)),
            "f".repeat(32),
        ]
    );
    assert_eq!(balanced_tokens(0).count(), 0);
}

/// `a × b` as (high, low) 128-bit halves, for `b` below 2^64.
fn mul_256(a: u128, b: u64) -> (u128, u128) {
    let b = u128::from(b);
    let low = (a & u128::from(u64::MAX)) * b;
    let high = (a >> 64) * b;
    let (sum, carry) = low.overflowing_add(high << 64);
    ((high >> 64) + u128::from(carry), sum)
}

fn add_256((high, low): (u128, u128), b: u64) -> (u128, u128) {
    let (low, carry) = low.overflowing_add(u128::from(b));
    (high + u128::from(carry), low)
}

/// `token` is `floor(i × 2^128 / n) − 1`: with `f = token + 1`,
/// `f × n <= i × 2^128 < (f + 1) × n`, checked in 256 bits.
fn assert_balanced(token: Token, i: u64, n: u64) {
    if i == n {
        assert_eq!(token.0, u128::MAX, "n = {n}: the last token tops the ring");
        return;
    }
    let floor = token.0 + 1;
    let target = (u128::from(i), 0u128);
    let low = mul_256(floor, n);
    assert!(low <= target, "n = {n}, i = {i}: {token} too high");
    assert!(
        add_256(low, n) > target,
        "n = {n}, i = {i}: {token} too low"
    );
}

#[test]
fn balanced_tokens_are_exact_for_awkward_counts() {
    for n in [3u64, 5, 6, 7, 10, 63, 64, 100, 255, 1000, 4099] {
        let tokens: Vec<Token> = balanced_tokens(n).collect();
        assert_eq!(tokens.len() as u64, n);
        assert!(tokens.windows(2).all(|pair| pair[0] < pair[1]));
        for (i, token) in (1..=n).zip(tokens) {
            assert_balanced(token, i, n);
        }
    }
    // Huge counts, where i × remainder nears 2^128: the largest 64-bit
    // prime, 2^64 − 1, 2^63 and 2^32 + 1.
    for n in [
        18_446_744_073_709_551_557u64,
        u64::MAX,
        1 << 63,
        (1 << 32) + 1,
    ] {
        for i in [1, 2, 3, n / 2, n / 3 + 1, n - 2, n - 1, n] {
            assert_balanced(balanced_token(i, n), i, n);
        }
    }
    // A power of two divides the ring exactly: i × 2^(128 − k) − 1.
    assert_eq!(balanced_token(1, 1 << 63).0, (1 << 65) - 1);
    assert_eq!(balanced_token(3, 1 << 40).0, 3 * (1 << 88) - 1);
}

#[test]
#[should_panic(expected = "token 0 of 3")]
fn balanced_token_zero_is_not_a_token() {
    balanced_token(0, 3);
}

// === planning ===

#[test]
fn one_token_splits_the_largest_range_at_its_midpoint() {
    // a owns (3Q, Q] (half the ring), b owns (Q, 2Q], c owns (2Q, 3Q].
    let old = ring(&[("a", &[Q]), ("b", &[2 * Q]), ("c", &[3 * Q])]);
    let plan = plan(&old, &adding(&["d"]), 1).unwrap();
    assert_eq!(
        plan.added[0].splits,
        [Split {
            token: Token(0),
            after: Token(3 * Q),
            through: Token(Q),
            from: name("a"),
        }]
    );
    // d takes (3Q, 0], a quarter of the ring, all of it from a.
    assert_eq!(plan.moved_primary, KeySpace::positions(Q));
    assert_eq!(plan.ring.instances().len(), 4);
    let moved = crate::diff::diff(&old, &plan.ring);
    assert_eq!(moved.moved_primary, plan.moved_primary);
}

#[test]
fn a_single_token_ring_is_split_in_half() {
    let old = ring(&[("a", &[5])]);
    let plan = plan(&old, &adding(&["b"]), 1).unwrap();
    assert_eq!(plan.added[0].tokens(), [Token(5 + (1 << 127))]);
    assert_eq!(plan.added[0].splits[0].after, Token(5));
    assert_eq!(plan.added[0].splits[0].through, Token(5));
    assert_eq!(plan.moved_primary, KeySpace::positions(1 << 127));
}

#[test]
fn ties_go_to_the_first_range_in_ring_order() {
    // Four equal quarters: the first in ring order is the one that wraps,
    // (top, 2^126 − 1], split at 2^125 − 1.
    let tokens: Vec<u128> = balanced_tokens(4).map(|t| t.0).collect();
    let old = ring(&[("a", &tokens[..2]), ("b", &tokens[2..])]);
    let plan = plan(&old, &adding(&["c"]), 3).unwrap();
    let eighth = 1u128 << 125;
    assert_eq!(
        plan.added[0].tokens(),
        [
            Token(eighth - 1),
            Token(3 * eighth - 1),
            Token(5 * eighth - 1)
        ]
    );
    assert_eq!(plan.moved_primary, KeySpace::positions(3 * eighth));
}

#[test]
fn balanced_rings_double_into_balanced_rings() {
    for n in [1u64, 2, 4, 8] {
        let tokens: Vec<u128> = balanced_tokens(n).map(|t| t.0).collect();
        let hosts: Vec<String> = (0..n).map(|i| format!("old{i}")).collect();
        let members: Vec<(&str, &[u128])> = hosts
            .iter()
            .zip(&tokens)
            .map(|(host, token)| (host.as_str(), std::slice::from_ref(token)))
            .collect();
        let old = ring(&members);
        let new_hosts: Vec<String> = (0..n).map(|i| format!("new{i}")).collect();
        let new_refs: Vec<&str> = new_hosts.iter().map(String::as_str).collect();
        let plan = plan(&old, &adding(&new_refs), 1).unwrap();
        let planned: Vec<Token> = plan.ring.ranges().map(|range| range.through).collect();
        assert_eq!(
            planned,
            balanced_tokens(2 * n).collect::<Vec<_>>(),
            "n = {n}"
        );
        assert_eq!(plan.moved_primary, KeySpace::WHOLE.halves().0);
    }
}

#[test]
fn later_tokens_may_split_earlier_new_ranges() {
    // a owns the whole ring. b's first token halves it: b (0, 2^127],
    // a (2^127, 0]. Of those equal halves a's comes first in ring order
    // (through 0), so b's second token splits it at 3 × 2^126.
    let old = ring(&[("a", &[0])]);
    let plan = plan(&old, &adding(&["b", "c"]), 2).unwrap();
    let b = &plan.added[0];
    assert_eq!(b.tokens(), [Token(1 << 127), Token(3 << 126)]);
    assert_eq!(b.splits[1].from, name("a"));
    // Now b's (0, 2^127] is the largest: c's first token splits a range
    // that b only just took. Then four equal quarters: a's (3Q, 0] first.
    let c = &plan.added[1];
    assert_eq!(c.tokens(), [Token(1 << 126), Token(7 << 125)]);
    assert_eq!(c.splits[0].from, name("b"));
    assert_eq!(c.splits[1].from, name("a"));
    // Only a loses keys: b and c are new. a keeps (7 × 2^125, 0].
    assert_eq!(plan.moved_primary, KeySpace::positions(7 << 125));
    let diff = crate::diff::diff(&old, &plan.ring);
    assert_eq!(diff.moved_primary, plan.moved_primary);
}

#[test]
fn errors() {
    let empty = ring(&[]);
    assert_eq!(
        plan(&empty, &adding(&["b"]), 1).unwrap_err(),
        PlanError::EmptyRing
    );
    let old = ring(&[("a", &[1]), ("b", &[])]);
    assert_eq!(
        plan(&old, &adding(&["a"]), 1).unwrap_err(),
        PlanError::AlreadyInRing(name("a"))
    );
    // b has no tokens: it is not in the ring and may join.
    assert!(plan(&old, &adding(&["b"]), 1).is_ok());
    assert_eq!(
        plan(&old, &adding(&["c", "d", "c"]), 1).unwrap_err(),
        PlanError::AddedTwice(name("c"))
    );
    assert_eq!(
        plan(&old, &adding(&[]), 1).unwrap_err(),
        PlanError::NothingToAdd
    );
    assert_eq!(
        plan(&old, &adding(&["c"]), 0).unwrap_err(),
        PlanError::NothingToAdd
    );
}

#[test]
fn records_use_the_template() {
    let old = ring(&[("a", &[0])]);
    let plan = plan(
        &old,
        &[(InstanceName::new("New.Example.COM.", 8081).unwrap(), addr())],
        2,
    )
    .unwrap();
    let template = SrvTemplate {
        ttl: Some(300),
        priority: 10,
        weight: 50,
    };
    assert_eq!(
        plan.added[0].records("_s._tcp.example.com.", template),
        [
            "_s._tcp.example.com. 300 IN SRV 10 50 8081 new.example.com.".to_owned(),
            format!(
                "tokens.8081.new.example.com. 300 IN TXT \"{} {}\"",
                Token(1 << 127),
                Token(3 << 126)
            ),
        ]
    );
}

#[test]
fn ties_skip_the_receivers_own_ranges() {
    // b's first token halves a's whole ring: b (c0, 40], a (40, c0]. Both
    // halves are equal and b's comes first in ring order, but a token in
    // its own range would change nothing: its second splits a's half.
    let old = ring(&[("a", &[3 * Q])]);
    let plan = plan(&old, &adding(&["b"]), 2).unwrap();
    assert_eq!(plan.added[0].tokens(), [Token(Q), Token(2 * Q)]);
    assert_eq!(plan.added[0].splits[1].from, name("a"));
    assert_eq!(plan.moved_primary, KeySpace::positions(3 * Q));
    // Only when every largest range is its own does it split one.
    let old = ring(&[("a", &[0])]);
    let again = super::plan(&old, &adding(&["b"]), 3).unwrap();
    // b (0, 2Q], a (2Q, 0] -> a's split at 3Q; then b's (0, 2Q] is the
    // largest alone.
    assert_eq!(
        again.added[0].tokens(),
        [Token(2 * Q), Token(3 * Q), Token(Q)]
    );
}

// === by load ===

/// The requests each instance of `planned` would be primary for, under
/// `load` (recorded on the ring before).
fn loads(planned: &Ring, load: &RecordedLoad) -> Vec<f64> {
    let mut per_instance = vec![0.0; planned.instances().len()];
    for range in planned.ranges() {
        per_instance[range.owner as usize] += load.between(range.after, range.through);
    }
    per_instance
}

/// The busiest instance's requests.
fn busiest_load(plan: &Plan, load: &RecordedLoad) -> f64 {
    loads(&plan.ring, load).into_iter().fold(0.0, f64::max)
}

/// The requests whose primary moves: those of the added instances.
fn moved_requests(plan: &Plan, load: &RecordedLoad) -> f64 {
    plan.ring
        .ranges()
        .filter(|range| {
            let owner = plan.ring.instance(range.owner).unwrap().name();
            plan.added.iter().any(|added| &added.name == owner)
        })
        .map(|range| load.between(range.after, range.through))
        .sum()
}

/// A skewed recording on four even ranges: b's range has 1,000 of 1,300
/// requests, 600 of them for one key a tenth of the way into it.
fn skewed() -> (Ring, RecordedLoad) {
    let ring = ring(&[
        ("a", &[Q - 1]),
        ("b", &[2 * Q - 1]),
        ("c", &[3 * Q - 1]),
        ("d", &[u128::MAX]),
    ]);
    let ranges = ring
        .ranges()
        .map(|range| crate::load::RangeLoad {
            after: range.after,
            through: range.through,
            requests: if range.through == Token(2 * Q - 1) {
                1000.0
            } else {
                100.0
            },
        })
        .collect();
    let hot = crate::load::KeyLoad {
        position: Token(Q - 1 + Q / 10),
        requests: 600.0,
    };
    (ring, RecordedLoad::new(ranges, vec![hot]).unwrap())
}

#[test]
fn by_load_splits_the_busiest_range_at_its_request_median() {
    let (ring, load) = skewed();
    let plan = plan_by_load(&ring, &adding(&["e"]), 1, &load).unwrap();
    let split = &plan.added[0].splits[0];
    assert_eq!(split.from, name("b"), "the busiest range, not the first");
    // Half of b's 1,000 requests is reached at the hot key: e takes the
    // key and what lies before it (640), b keeps 360.
    assert_eq!(split.token, Token(Q - 1 + Q / 10));
    assert!((moved_requests(&plan, &load) - 640.0).abs() < 1e-6);
    assert!((busiest_load(&plan, &load) - 640.0).abs() < 1e-6);
}

#[test]
fn by_load_reaches_a_balance_with_less_moved_traffic_than_midpoints() {
    let (ring, load) = skewed();
    let by_load = plan_by_load(&ring, &adding(&["e"]), 1, &load).unwrap();
    let target = busiest_load(&by_load, &load);
    let moved = moved_requests(&by_load, &load);
    // The midpoint plan, with as many tokens as it takes to bring the
    // busiest instance down as far (if it ever does within 32).
    let midpoint = (1..=32)
        .map(|tokens| plan(&ring, &adding(&["e"]), tokens).unwrap())
        .find(|plan| busiest_load(plan, &load) <= target + 1e-6);
    assert!(
        busiest_load(&plan(&ring, &adding(&["e"]), 1).unwrap(), &load) > target,
        "one midpoint token leaves b's range whole"
    );
    if let Some(midpoint) = midpoint {
        assert!(
            moved_requests(&midpoint, &load) > moved,
            "{} tokens by midpoint move {} requests, by load {moved}",
            midpoint.added[0].splits.len(),
            moved_requests(&midpoint, &load)
        );
    }
}
