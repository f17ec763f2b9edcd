//! Hand-computed small rings: every expected value below was worked out on
//! paper from SPEC §2, not by running the code.

use super::*;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A token from its (possibly short, right-padded) text.
fn t(text: &str) -> Token {
    text.parse().expect("tokens written in tests are valid")
}

/// A member named `host:port` at 127.0.0.1:`port` with the given tokens.
fn member(host: &str, port: u16, tokens: &[&str]) -> Member {
    member_at(
        host,
        port,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        tokens.iter().map(|text| t(text)).collect(),
    )
}

fn member_at(host: &str, port: u16, ip: IpAddr, tokens: Vec<Token>) -> Member {
    Member {
        name: InstanceName::new(host, port).expect("host names in tests are valid"),
        addr: SocketAddr::new(ip, port),
        tokens,
    }
}

fn replication(slaves: u8, redundancy: Redundancy) -> Replication {
    Replication { slaves, redundancy }
}

fn build(members: Vec<Member>, replication: Replication) -> Ring {
    Ring::build(members, replication).expect("small test rings fit")
}

/// The name of the primary of `position`.
fn owner(ring: &Ring, position: Token) -> String {
    ring.primary(position)
        .map(|instance| instance.name().to_string())
        .unwrap_or_default()
}

/// The names of the preference list of `position`.
fn list(ring: &Ring, position: Token) -> Vec<String> {
    ring.preference_list(position)
        .iter()
        .map(|instance| instance.name().to_string())
        .collect()
}

fn short_warnings(ring: &Ring) -> Vec<&RingWarning> {
    ring.warnings()
        .iter()
        .filter(|warning| matches!(warning, RingWarning::ShortPreferenceLists { .. }))
        .collect()
}

const QUARTER: u128 = 0x4000_0000_0000_0000_0000_0000_0000_0000;
const HALF: u128 = 0x8000_0000_0000_0000_0000_0000_0000_0000;
const THREE_QUARTERS: u128 = 0xc000_0000_0000_0000_0000_0000_0000_0000;

/// `a:1` at 40…, `b:1` at 80…, `c:1` at c0….
fn three_quarters_ring() -> Ring {
    build(
        vec![
            member("c", 1, &["c0"]),
            member("a", 1, &["40"]),
            member("b", 1, &["80"]),
        ],
        Replication::default(),
    )
}

// === ownership ===

#[test]
fn an_instance_owns_the_range_ending_at_its_token() {
    let ring = three_quarters_ring();
    // (c0…, 40…] belongs to a, wrapping through 0.
    assert_eq!(owner(&ring, Token(0)), "a:1");
    assert_eq!(owner(&ring, Token(1)), "a:1");
    assert_eq!(owner(&ring, Token(QUARTER - 1)), "a:1");
    // Exactly on a token: that token's instance (the token is the range's
    // last key).
    assert_eq!(owner(&ring, Token(QUARTER)), "a:1");
    // One past a token: the next instance.
    assert_eq!(owner(&ring, Token(QUARTER + 1)), "b:1");
    assert_eq!(owner(&ring, Token(HALF - 1)), "b:1");
    assert_eq!(owner(&ring, Token(HALF)), "b:1");
    assert_eq!(owner(&ring, Token(HALF + 1)), "c:1");
    assert_eq!(owner(&ring, Token(THREE_QUARTERS)), "c:1");
}

#[test]
fn above_the_largest_token_wraps_to_the_smallest() {
    let ring = three_quarters_ring();
    assert_eq!(owner(&ring, Token(THREE_QUARTERS + 1)), "a:1");
    assert_eq!(owner(&ring, Token(u128::MAX)), "a:1");
    // point_of names the smallest token's point.
    assert_eq!(ring.point_of(Token(u128::MAX)), Some(0));
    assert_eq!(ring.point_of(Token(THREE_QUARTERS)), Some(2));
    assert_eq!(ring.point_of(Token(0)), Some(0));
}

#[test]
fn tokens_at_the_ends_of_the_key_space() {
    // Tokens 0 and u128::MAX: 0 owns only key 0, MAX owns everything else.
    let ring = build(
        vec![
            member_at("lo", 1, IpAddr::V4(Ipv4Addr::LOCALHOST), vec![Token(0)]),
            member_at(
                "hi",
                1,
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                vec![Token(u128::MAX)],
            ),
        ],
        Replication::default(),
    );
    assert_eq!(owner(&ring, Token(0)), "lo:1");
    assert_eq!(owner(&ring, Token(1)), "hi:1");
    assert_eq!(owner(&ring, Token(u128::MAX)), "hi:1");
    let shares: Vec<(&str, f64)> = ring
        .instances()
        .iter()
        .map(|instance| (instance.name().as_str(), instance.share()))
        .collect();
    // hi owns (0, MAX]: all but one key, 1.0 as a float; lo's range (MAX, 0]
    // is the single key 0: 2^-128 of the ring.
    assert_eq!(shares[0], ("hi:1", 1.0));
    assert_eq!(shares[1], ("lo:1", 1.0 / 2f64.powi(128)));
}

#[test]
fn one_token_owns_the_whole_ring() {
    let ring = build(vec![member("solo", 80, &["80"])], Replication::default());
    for position in [0, 1, HALF - 1, HALF, HALF + 1, u128::MAX] {
        assert_eq!(owner(&ring, Token(position)), "solo:80");
    }
    assert_eq!(ring.point_count(), 1);
    assert_eq!(ring.instances()[0].share(), 1.0);
    assert_eq!(ring.instances()[0].points(), 1);
    let ranges: Vec<Range> = ring.ranges().collect();
    assert_eq!(
        ranges,
        vec![Range {
            after: Token(HALF),
            through: Token(HALF),
            owner: 0,
            point: 0,
        }]
    );
    assert_eq!(ranges[0].share(1), 1.0);
    assert!(ring.warnings().is_empty());
}

#[test]
fn an_empty_ring_finds_nothing() {
    let ring = build(
        vec![member("silent", 1, &[])],
        replication(2, Redundancy::Host),
    );
    assert!(ring.is_empty());
    assert!(
        ring.instances().is_empty(),
        "members without tokens are left out"
    );
    assert_eq!(ring.point_of(Token(HALF)), None);
    assert!(ring.primary(Token(HALF)).is_none());
    assert!(ring.preference_list(Token(HALF)).is_empty());
    assert_eq!(ring.ranges().len(), 0);
    // No points: nothing to warn about.
    assert!(ring.warnings().is_empty());
    assert_eq!(ring.canonical_text(), "slaves=2 redundancy=host\n");
}

#[test]
fn a_position_listed_twice_by_one_instance_counts_once() {
    let ring = build(
        vec![
            member("a", 1, &["40", "40", "c0", "4"]),
            member("b", 1, &["80"]),
        ],
        Replication::default(),
    );
    assert!(ring.warnings().is_empty(), "{:?}", ring.warnings());
    assert_eq!(ring.point_count(), 3);
    let a = &ring.instances()[0];
    assert_eq!(a.name().as_str(), "a:1");
    assert_eq!(a.tokens(), &[Token(QUARTER), Token(THREE_QUARTERS)]);
    assert_eq!(a.points(), 2);
    // a owns (c0, 40] and (80, c0]: three quarters.
    assert_eq!(a.share(), 0.75);
    assert_eq!(ring.instances()[1].share(), 0.25);
}

#[test]
fn members_of_one_name_are_merged() {
    let ring = build(
        vec![
            member_at(
                "A.",
                1,
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                vec![t("40")],
            ),
            member_at(
                "a",
                1,
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                vec![t("40"), t("c0")],
            ),
        ],
        Replication::default(),
    );
    assert_eq!(ring.instances().len(), 1);
    let a = &ring.instances()[0];
    assert_eq!(
        a.addr(),
        "10.0.0.1:1".parse().unwrap(),
        "the first address is kept"
    );
    assert_eq!(a.tokens(), &[Token(QUARTER), Token(THREE_QUARTERS)]);
    assert!(ring.warnings().is_empty(), "{:?}", ring.warnings());
}

// === ties ===

/// `a:9` and `a:10` both publish 80…; "a:10" < "a:9" in byte order, so `a:10`
/// keeps it. `b:1` sits between them at c0…; `a:9` also has e0….
fn tie_ring(replication: Replication) -> Ring {
    build(
        vec![
            member("a", 9, &["80", "e0"]),
            member("b", 1, &["c0"]),
            member("a", 10, &["80"]),
        ],
        replication,
    )
}

#[test]
fn a_tie_goes_to_the_name_that_sorts_first_in_byte_order() {
    let ring = tie_ring(Replication::default());
    let names: Vec<&str> = ring.instances().iter().map(|i| i.name().as_str()).collect();
    assert_eq!(names, ["a:10", "a:9", "b:1"]);
    assert_eq!(
        ring.warnings(),
        &[RingWarning::TokenTie {
            token: Token(HALF),
            winner: InstanceName::new("a", 10).unwrap(),
            loser: InstanceName::new("a", 9).unwrap(),
        }]
    );
    assert_eq!(owner(&ring, Token(HALF)), "a:10");
    assert_eq!(owner(&ring, Token(HALF - 1)), "a:10");
    assert_eq!(owner(&ring, Token(0)), "a:10", "wraps from e0… to 80…");
    assert_eq!(owner(&ring, Token(HALF + 1)), "b:1");
    assert_eq!(owner(&ring, Token(0xd000 << 112)), "a:9");
    assert_eq!(ring.point_count(), 3);
    // The loser keeps the token in its published set (and the fingerprint).
    assert_eq!(ring.instances()[1].tokens(), &[Token(HALF), t("e0")]);
    assert_eq!(ring.instances()[1].points(), 1);
    // a:10: (e0, 80] = 5/8; b: (80, c0] = 1/4; a:9: (c0, e0] = 1/8.
    assert_eq!(ring.instances()[0].share(), 0.625);
    assert_eq!(ring.instances()[1].share(), 0.125);
    assert_eq!(ring.instances()[2].share(), 0.25);
    assert!(ring.warnings()[0].to_string().contains("a:10 keeps it"));
}

#[test]
fn a_lost_tie_takes_no_part_in_walks() {
    let ring = tie_ring(replication(1, Redundancy::None));
    // From 80…: a:10, then (were a:9's 80… still there it would be next)
    // b:1 at c0….
    assert_eq!(list(&ring, Token(HALF)), ["a:10", "b:1"]);
    assert_eq!(list(&ring, Token(HALF + 1)), ["b:1", "a:9"]);
    assert_eq!(list(&ring, Token(u128::MAX)), ["a:10", "b:1"]);
    let ring = tie_ring(replication(2, Redundancy::None));
    assert_eq!(list(&ring, Token(HALF)), ["a:10", "b:1", "a:9"]);
    assert_eq!(list(&ring, Token(0xd000 << 112)), ["a:9", "a:10", "b:1"]);
}

#[test]
fn an_instance_that_lost_all_its_tokens_is_not_in_lists() {
    let ring = build(
        vec![member("a", 9, &["80"]), member("a", 10, &["80"])],
        replication(1, Redundancy::None),
    );
    assert_eq!(ring.instances().len(), 2, "both are instances of the ring");
    assert_eq!(ring.instances()[1].points(), 0);
    assert_eq!(ring.instances()[1].share(), 0.0);
    assert_eq!(list(&ring, Token(0)), ["a:10"]);
    assert_eq!(ring.list_len(), 1);
    assert_eq!(
        short_warnings(&ring),
        [&RingWarning::ShortPreferenceLists {
            wanted: 2,
            got: 1,
            replication: replication(1, Redundancy::None),
        }]
    );
    assert_eq!(ring.warnings().len(), 2, "a tie and the short lists");
}

#[test]
fn a_three_way_tie_names_the_winner_each_time() {
    let ring = build(
        vec![
            member("c", 1, &["40"]),
            member("b", 1, &["40"]),
            member("a", 1, &["40"]),
        ],
        Replication::default(),
    );
    let a = InstanceName::new("a", 1).unwrap();
    assert_eq!(
        ring.warnings(),
        &[
            RingWarning::TokenTie {
                token: Token(QUARTER),
                winner: a.clone(),
                loser: InstanceName::new("b", 1).unwrap(),
            },
            RingWarning::TokenTie {
                token: Token(QUARTER),
                winner: a,
                loser: InstanceName::new("c", 1).unwrap(),
            },
        ]
    );
    assert_eq!(owner(&ring, Token(0)), "a:1");
}

// === preference lists ===

/// Five instances on three hosts, ring order h1:1, h1:2, h2:1, h3:1, h2:2.
fn hosts_ring(replication: Replication) -> Ring {
    build(
        vec![
            member("h2", 2, &["50"]),
            member("h1", 1, &["10"]),
            member("h3", 1, &["40"]),
            member("h1", 2, &["20"]),
            member("h2", 1, &["30"]),
        ],
        replication,
    )
}

#[test]
fn replicas_are_the_next_instances_clockwise() {
    let one = hosts_ring(replication(1, Redundancy::None));
    let two = hosts_ring(replication(2, Redundancy::None));
    assert!(one.warnings().is_empty() && two.warnings().is_empty());
    assert_eq!(one.list_len(), 2);
    assert_eq!(two.list_len(), 3);
    assert_eq!(list(&one, t("1")), ["h1:1", "h1:2"]);
    assert_eq!(list(&two, t("1")), ["h1:1", "h1:2", "h2:1"]);
    assert_eq!(list(&two, t("25")), ["h2:1", "h3:1", "h2:2"]);
    // Wrapping past the largest token.
    assert_eq!(list(&two, t("45")), ["h2:2", "h1:1", "h1:2"]);
    assert_eq!(list(&two, t("5")), ["h2:2", "h1:1", "h1:2"]);
    assert_eq!(list(&two, t("60")), ["h1:1", "h1:2", "h2:1"]);
    assert_eq!(list(&one, t("ff")), ["h1:1", "h1:2"]);
    let from_point: Vec<&str> = two
        .preference_list_at(3)
        .iter()
        .map(|i| i.name().as_str())
        .collect();
    assert_eq!(from_point, ["h3:1", "h2:2", "h1:1"]);
    assert!(two.preference_list_at(5).is_empty());
}

#[test]
fn redundancy_host_skips_hosts_already_listed() {
    let one = hosts_ring(replication(1, Redundancy::Host));
    let two = hosts_ring(replication(2, Redundancy::Host));
    assert!(one.warnings().is_empty() && two.warnings().is_empty());
    assert_eq!(list(&one, t("1")), ["h1:1", "h2:1"]);
    assert_eq!(list(&two, t("1")), ["h1:1", "h2:1", "h3:1"]);
    assert_eq!(list(&two, t("15")), ["h1:2", "h2:1", "h3:1"]);
    assert_eq!(list(&two, t("25")), ["h2:1", "h3:1", "h1:1"]);
    assert_eq!(list(&two, t("35")), ["h3:1", "h2:2", "h1:1"]);
    assert_eq!(list(&two, t("45")), ["h2:2", "h1:1", "h3:1"]);
    assert_eq!(list(&one, t("45")), ["h2:2", "h1:1"]);
}

#[test]
fn preference_list_accessors_agree() {
    let ring = hosts_ring(replication(2, Redundancy::Host));
    let list = ring.preference_list(t("25"));
    assert_eq!(list.len(), 3);
    assert!(!list.is_empty());
    assert_eq!(list.primary().map(|i| i.name().as_str()), Some("h2:1"));
    assert_eq!(list.get(1).map(|i| i.name().as_str()), Some("h3:1"));
    assert_eq!(list.get(2).map(|i| i.name().as_str()), Some("h1:1"));
    assert!(list.get(3).is_none());
    // Indexes point into instances(), sorted h1:1, h1:2, h2:1, h2:2, h3:1.
    assert_eq!(list.indexes(), &[2, 4, 0]);
    assert_eq!(
        ring.primary(t("25")).map(|i| i.name().as_str()),
        Some("h2:1")
    );
}

#[test]
fn too_few_instances_give_short_lists_and_one_warning() {
    let ring = hosts_ring(replication(5, Redundancy::None));
    assert_eq!(ring.list_len(), 5);
    assert_eq!(
        list(&ring, t("25")),
        ["h2:1", "h3:1", "h2:2", "h1:1", "h1:2"]
    );
    assert_eq!(
        short_warnings(&ring),
        [&RingWarning::ShortPreferenceLists {
            wanted: 6,
            got: 5,
            replication: replication(5, Redundancy::None),
        }]
    );
    assert_eq!(ring.warnings().len(), 1, "once per ring");
}

#[test]
fn too_few_hosts_give_short_lists_and_one_warning() {
    let ring = hosts_ring(replication(3, Redundancy::Host));
    assert_eq!(ring.list_len(), 3);
    assert_eq!(list(&ring, t("1")), ["h1:1", "h2:1", "h3:1"]);
    assert_eq!(list(&ring, t("45")), ["h2:2", "h1:1", "h3:1"]);
    let warning = RingWarning::ShortPreferenceLists {
        wanted: 4,
        got: 3,
        replication: replication(3, Redundancy::Host),
    };
    assert_eq!(ring.warnings(), std::slice::from_ref(&warning));
    assert_eq!(
        warning.to_string(),
        "slaves=3 redundancy=host asks for preference lists of 4 but the ring has only 3 hosts: lists hold 3"
    );
    // Every instance on one host: redundancy=host gives the primary alone.
    let ring = build(
        vec![member("h", 1, &["40"]), member("h", 2, &["c0"])],
        replication(1, Redundancy::Host),
    );
    assert_eq!(list(&ring, t("50")), ["h:2"]);
    assert_eq!(ring.warnings().len(), 1);
}

#[test]
fn a_full_length_list_is_not_a_warning() {
    let ring = hosts_ring(replication(4, Redundancy::None));
    assert_eq!(ring.list_len(), 5);
    assert!(ring.warnings().is_empty(), "{:?}", ring.warnings());
    let ring = hosts_ring(replication(2, Redundancy::Host));
    assert!(ring.warnings().is_empty(), "{:?}", ring.warnings());
}

// === shares and ranges ===

#[test]
fn ranges_list_every_range_in_ring_order() {
    let ring = three_quarters_ring();
    let ranges: Vec<Range> = ring.ranges().collect();
    assert_eq!(
        ranges,
        vec![
            Range {
                after: Token(THREE_QUARTERS),
                through: Token(QUARTER),
                owner: 0,
                point: 0,
            },
            Range {
                after: Token(QUARTER),
                through: Token(HALF),
                owner: 1,
                point: 1,
            },
            Range {
                after: Token(HALF),
                through: Token(THREE_QUARTERS),
                owner: 2,
                point: 2,
            },
        ]
    );
    let shares: Vec<f64> = ranges.iter().map(|range| range.share(3)).collect();
    assert_eq!(shares, [0.5, 0.25, 0.25]);
    let owners: Vec<f64> = ring.instances().iter().map(Instance::share).collect();
    assert_eq!(owners, [0.5, 0.25, 0.25]);
    assert_eq!(owners.iter().sum::<f64>(), 1.0);
    for range in &ranges {
        assert_eq!(
            ring.point_of(range.through),
            Some(range.point),
            "a range's last key is its point"
        );
        assert_eq!(
            ring.preference_list_at(range.point).indexes(),
            &[range.owner]
        );
    }
}

#[test]
fn shares_sum_to_one() {
    let members: Vec<Member> = (0..20u16)
        .map(|port| {
            let name = InstanceName::new("node.example", 7000 + port).unwrap();
            let tokens = crate::records::derived_tokens(&name, 32);
            Member {
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), name.port()),
                name,
                tokens,
            }
        })
        .collect();
    let ring = build(members, replication(2, Redundancy::None));
    let total: f64 = ring.instances().iter().map(Instance::share).sum();
    assert!((total - 1.0).abs() < 1e-9, "{total}");
    let by_range: f64 = ring
        .ranges()
        .map(|range| range.share(ring.point_count()))
        .sum();
    assert!((by_range - 1.0).abs() < 1e-9, "{by_range}");
    assert_eq!(ring.point_count(), 20 * 32);
    for instance in ring.instances() {
        assert_eq!(instance.points(), 32);
        assert!(instance.share() > 0.0);
    }
}

// === fingerprint ===

#[test]
fn canonical_text_and_fingerprint() {
    let v6: Ipv6Addr = "2001:db8:0:0:1:0:0:1".parse().unwrap();
    let ring = build(
        vec![
            member_at(
                "b.example",
                80,
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                vec![t("c0"), t("40")],
            ),
            member_at(
                "A.Example.",
                8081,
                IpAddr::V6(v6),
                vec![
                    t("8"),
                    t("00112233445566778899aabbccddeeff"),
                    t("80"),
                    t("00112233445566778899AABBCCDDEEFF"),
                ],
            ),
            // Loses its only token to b.example:80, still in the text.
            member_at(
                "c.example",
                80,
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
                vec![t("c")],
            ),
            // Byte order: "a.example:10" < "a.example:8081" < "a.example:9".
            member_at(
                "a.example",
                9,
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)),
                vec![t("ffffffffffffffffffffffffffffffff")],
            ),
            member_at(
                "a.example",
                10,
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10)),
                vec![Token(1)],
            ),
            // No tokens: left out of the ring and of the text.
            member_at(
                "d.example",
                80,
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 4)),
                vec![],
            ),
        ],
        replication(2, Redundancy::Host),
    );
    let expected = "\
a.example:10 10.0.0.10:10 00000000000000000000000000000001
a.example:8081 [2001:db8::1:0:0:1]:8081 00112233445566778899aabbccddeeff 80000000000000000000000000000000
a.example:9 10.0.0.9:9 ffffffffffffffffffffffffffffffff
b.example:80 10.0.0.2:80 40000000000000000000000000000000 c0000000000000000000000000000000
c.example:80 10.0.0.3:80 c0000000000000000000000000000000
slaves=2 redundancy=host
";
    assert_eq!(ring.canonical_text(), expected);
    let hash = xxhash_rust::xxh3::xxh3_64(expected.as_bytes());
    assert_eq!(ring.fingerprint(), Fingerprint(hash));
    assert_eq!(ring.fingerprint().to_string(), format!("{hash:016x}"));
    assert_eq!(ring.fingerprint().to_string().len(), 16);
}

#[test]
fn canonical_text_of_default_replication_and_no_compressible_ipv6() {
    // RFC 5952: "::" never stands for a single zero group.
    let v6: Ipv6Addr = "2001:DB8:0:1:1:1:1:1".parse().unwrap();
    let ring = build(
        vec![member_at("x", 443, IpAddr::V6(v6), vec![t("4")])],
        Replication::default(),
    );
    assert_eq!(
        ring.canonical_text(),
        "x:443 [2001:db8:0:1:1:1:1:1]:443 40000000000000000000000000000000\nslaves=0 redundancy=none\n"
    );
}

#[test]
fn fingerprint_display_keeps_leading_zeros() {
    assert_eq!(Fingerprint(0xab).to_string(), "00000000000000ab");
    assert_eq!(Fingerprint(u64::MAX).to_string(), "ffffffffffffffff");
}

#[test]
fn fingerprint_ignores_member_order_and_changes_with_settings() {
    let members = vec![
        member("a", 1, &["40"]),
        member("b", 1, &["80", "c0"]),
        member("c", 2, &["10"]),
    ];
    let mut reversed = members.clone();
    reversed.reverse();
    let forward = build(members.clone(), replication(1, Redundancy::None));
    let backward = build(reversed, replication(1, Redundancy::None));
    assert_eq!(forward.fingerprint(), backward.fingerprint());
    assert_eq!(forward.canonical_text(), backward.canonical_text());
    let host = build(members.clone(), replication(1, Redundancy::Host));
    assert_ne!(forward.fingerprint(), host.fingerprint());
    let two = build(members, replication(2, Redundancy::None));
    assert_ne!(forward.fingerprint(), two.fingerprint());
}

// === limits ===

#[test]
fn a_ring_too_large_for_its_lists_is_refused() {
    // 256 instances and slaves=255: lists of 256. 2^26 / 256 / 256 + 1 = 1025
    // tokens each make 262,400 points, just over 2^26 / 256 = 262,144.
    let points_per_instance = (MAX_LIST_ENTRIES / 256) / 256 + 1;
    let members: Vec<Member> = (0..256u32)
        .map(|i| {
            let tokens = (0..points_per_instance as u128)
                .map(|j| Token((j << 64) | u128::from(i)))
                .collect();
            member_at(
                "n",
                u16::try_from(i).unwrap() + 1,
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                tokens,
            )
        })
        .collect();
    let points = 256 * points_per_instance;
    assert_eq!(
        Ring::build(members, replication(255, Redundancy::None)).err(),
        Some(RingError::TooLarge {
            points,
            list_len: 256,
        })
    );
}
