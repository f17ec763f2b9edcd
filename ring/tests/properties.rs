//! Property tests of the ring against a naive model of SPEC §2.
//!
//! The model keeps every published `(token, host:port)` pair as plain
//! strings and integers and answers each question by a linear scan, sharing
//! nothing with the ring's sorted arrays and precomputed lists. Hosts and
//! ports come from small sets (with "a:10" vs "a:9" and "a.b" vs "a" to
//! exercise byte order) and tokens often collide, so ties, merged members,
//! short lists and wrap-around all come up in most runs.

// Every item here is test code: this lets clippy's `allow-unwrap-in-tests`
// cover the helpers too, not just the `#[test]` functions.
#![cfg(test)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proptest::prelude::*;
use proptest::sample::Index;
use shardproxy_ring::records::derived_tokens;
use shardproxy_ring::{InstanceName, Member, Redundancy, Replication, Ring, RingWarning, Token};

const HOSTS: [&str; 4] = ["a", "a.b", "b", "c"];
const PORTS: [u16; 4] = [9, 10, 80, 8080];

/// One published member: indexes into `HOSTS` and `PORTS`, and its tokens.
type MemberSpec = (usize, usize, Vec<u128>);

/// Tokens that are often equal (16 coarse positions and the two ends of the
/// key space) and sometimes anywhere.
fn token() -> impl Strategy<Value = u128> {
    prop_oneof![
        4 => any::<u128>(),
        4 => (0u128..16).prop_map(|k| k << 124),
        1 => Just(0u128),
        1 => Just(u128::MAX),
    ]
}

fn members() -> impl Strategy<Value = Vec<MemberSpec>> {
    prop::collection::vec(
        (
            0..HOSTS.len(),
            0..PORTS.len(),
            prop::collection::vec(token(), 0..4),
        ),
        0..8,
    )
}

fn replication() -> impl Strategy<Value = Replication> {
    (
        0u8..5,
        prop_oneof![Just(Redundancy::None), Just(Redundancy::Host)],
    )
        .prop_map(|(slaves, redundancy)| Replication { slaves, redundancy })
}

/// The address depends only on the name, so merged duplicates agree and
/// member order cannot change the fingerprint.
fn to_members(specs: &[MemberSpec]) -> Vec<Member> {
    specs
        .iter()
        .map(|(host, port, tokens)| {
            let host_octet = u8::try_from(*host).expect("four hosts");
            Member {
                name: InstanceName::new(HOSTS[*host], PORTS[*port]).expect("valid host"),
                addr: SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(10, 0, 0, host_octet)),
                    PORTS[*port],
                ),
                tokens: tokens.iter().copied().map(Token).collect(),
            }
        })
        .collect()
}

// === the naive model ===

/// Every published `(token, host, "host:port")`, duplicates and all.
struct Model {
    pairs: Vec<(u128, &'static str, String)>,
}

impl Model {
    fn new(specs: &[MemberSpec]) -> Model {
        let mut pairs = Vec::new();
        for (host, port, tokens) in specs {
            for &token in tokens {
                let name = format!("{}:{}", HOSTS[*host], PORTS[*port]);
                pairs.push((token, HOSTS[*host], name));
            }
        }
        Model { pairs }
    }

    /// The instance at `token`: of all that publish it, the name smallest
    /// in byte order.
    fn owner_of_token(&self, token: u128) -> Option<&(u128, &'static str, String)> {
        self.pairs
            .iter()
            .filter(|pair| pair.0 == token)
            .min_by(|x, y| x.2.as_bytes().cmp(y.2.as_bytes()))
    }

    /// The smallest token `>= position`, or else the smallest token.
    fn token_of(&self, position: u128) -> Option<u128> {
        let at_or_after = self
            .pairs
            .iter()
            .map(|pair| pair.0)
            .filter(|&token| token >= position)
            .min();
        at_or_after.or_else(|| self.pairs.iter().map(|pair| pair.0).min())
    }

    fn primary(&self, position: u128) -> Option<String> {
        let token = self.token_of(position)?;
        self.owner_of_token(token).map(|pair| pair.2.clone())
    }

    /// Walks the distinct tokens clockwise from the primary's token.
    fn preference_list(&self, position: u128, replication: Replication) -> Vec<String> {
        let Some(start) = self.token_of(position) else {
            return Vec::new();
        };
        let tokens: BTreeSet<u128> = self.pairs.iter().map(|pair| pair.0).collect();
        let walk = tokens.range(start..).chain(tokens.range(..start));
        let wanted = usize::from(replication.slaves) + 1;
        let mut list: Vec<String> = Vec::new();
        let mut hosts: Vec<&str> = Vec::new();
        for &token in walk {
            let Some((_, host, name)) = self.owner_of_token(token) else {
                continue;
            };
            if list.contains(name) {
                continue;
            }
            if replication.redundancy == Redundancy::Host && hosts.contains(host) {
                continue;
            }
            list.push(name.clone());
            hosts.push(host);
            if list.len() == wanted {
                break;
            }
        }
        list
    }

    /// How many instances (or hosts) hold at least one position after ties.
    fn distinct_winners(&self, redundancy: Redundancy) -> usize {
        let tokens: BTreeSet<u128> = self.pairs.iter().map(|pair| pair.0).collect();
        let winners = tokens
            .iter()
            .filter_map(|&token| self.owner_of_token(token))
            .map(|(_, host, name)| match redundancy {
                Redundancy::None => name.as_str(),
                Redundancy::Host => host,
            });
        winners.collect::<BTreeSet<&str>>().len()
    }
}

/// Positions worth asking about: every token, its neighbours, both ends of
/// the key space, and some anywhere.
fn probes(specs: &[MemberSpec], random: &[u128]) -> Vec<u128> {
    let mut probes = vec![0, 1, u128::MAX - 1, u128::MAX];
    for (_, _, tokens) in specs {
        for &token in tokens {
            probes.extend([token.wrapping_sub(1), token, token.wrapping_add(1)]);
        }
    }
    probes.extend_from_slice(random);
    probes
}

fn names(ring: &Ring, position: u128) -> Vec<String> {
    ring.preference_list(Token(position))
        .iter()
        .map(|instance| instance.name().to_string())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// (a) The primary is the naive owner, by every route to it.
    #[test]
    fn primary_matches_a_linear_scan(
        specs in members(),
        replication in replication(),
        random in prop::collection::vec(any::<u128>(), 8),
    ) {
        let ring = Ring::build(to_members(&specs), replication).unwrap();
        let model = Model::new(&specs);
        for position in probes(&specs, &random) {
            let expected = model.primary(position);
            let by_ring = ring.primary(Token(position)).map(|i| i.name().to_string());
            let by_list = ring
                .preference_list(Token(position))
                .primary()
                .map(|i| i.name().to_string());
            prop_assert_eq!(&by_ring, &expected, "primary of {:032x}", position);
            prop_assert_eq!(&by_list, &expected, "list primary of {:032x}", position);
            if let Some(point) = ring.point_of(Token(position)) {
                let range = ring.ranges().nth(point).unwrap();
                prop_assert_eq!(Some(range.through.0), model.token_of(position));
                let owner = ring.instance(range.owner).map(|i| i.name().to_string());
                prop_assert_eq!(&owner, &expected);
            } else {
                prop_assert!(expected.is_none());
            }
        }
    }

    /// (b) Preference lists equal the naive walk and hold their invariants.
    #[test]
    fn preference_lists_match_a_naive_walk(
        specs in members(),
        replication in replication(),
        random in prop::collection::vec(any::<u128>(), 8),
    ) {
        let ring = Ring::build(to_members(&specs), replication).unwrap();
        let model = Model::new(&specs);
        let wanted = usize::from(replication.slaves) + 1;
        let available = model.distinct_winners(replication.redundancy);
        let expected_len = wanted.min(available);
        prop_assert_eq!(ring.list_len(), expected_len);

        for position in probes(&specs, &random) {
            let list = ring.preference_list(Token(position));
            let listed = names(&ring, position);
            prop_assert_eq!(list.len(), listed.len(), "every index names an instance");
            prop_assert_eq!(&listed, &model.preference_list(position, replication),
                "list of {:032x}", position);
            prop_assert_eq!(listed.len(), expected_len);
            prop_assert_eq!(listed.first().cloned(), model.primary(position));
            let distinct: BTreeSet<&String> = listed.iter().collect();
            prop_assert_eq!(distinct.len(), listed.len(), "an instance twice in {:?}", listed);
            if replication.redundancy == Redundancy::Host {
                let hosts: BTreeSet<&str> = list.iter().map(|i| i.name().host()).collect();
                prop_assert_eq!(hosts.len(), listed.len(), "a host twice in {:?}", listed);
            }
        }

        let short: Vec<&RingWarning> = ring
            .warnings()
            .iter()
            .filter(|w| matches!(w, RingWarning::ShortPreferenceLists { .. }))
            .collect();
        if ring.is_empty() || expected_len == wanted {
            prop_assert!(short.is_empty(), "{:?}", short);
        } else {
            prop_assert_eq!(short, [&RingWarning::ShortPreferenceLists {
                wanted,
                got: expected_len,
                replication,
            }]);
        }
    }

    /// Shares, ranges, ties and the fingerprint are properties of the set of
    /// members, not of the order they were discovered in.
    #[test]
    fn member_order_does_not_matter(
        specs in members(),
        replication in replication(),
        random in prop::collection::vec(any::<u128>(), 8),
    ) {
        let ring = Ring::build(to_members(&specs), replication).unwrap();
        let mut reversed = specs.clone();
        reversed.reverse();
        let other = Ring::build(to_members(&reversed), replication).unwrap();
        prop_assert_eq!(ring.fingerprint(), other.fingerprint());
        prop_assert_eq!(ring.canonical_text(), other.canonical_text());
        prop_assert_eq!(ring.instances(), other.instances());
        for position in probes(&specs, &random) {
            prop_assert_eq!(names(&ring, position), names(&other, position));
        }
        let model = Model::new(&specs);
        let ties = ring
            .warnings()
            .iter()
            .filter(|w| matches!(w, RingWarning::TokenTie { .. }))
            .count();
        // One warning per published pair that lost: pairs after merging
        // duplicates of one instance, minus the distinct tokens.
        let distinct_pairs: BTreeSet<(u128, &String)> =
            model.pairs.iter().map(|(token, _, name)| (*token, name)).collect();
        let distinct_tokens: BTreeSet<u128> = distinct_pairs.iter().map(|p| p.0).collect();
        prop_assert_eq!(ties, distinct_pairs.len() - distinct_tokens.len());
        prop_assert_eq!(ring.point_count(), distinct_tokens.len());
        if !ring.is_empty() {
            let total: f64 = ring.instances().iter().map(|i| i.share()).sum();
            prop_assert!((total - 1.0).abs() < 1e-9, "shares sum to {}", total);
            let points: u32 = ring.instances().iter().map(|i| i.points()).sum();
            prop_assert_eq!(points as usize, ring.point_count());
        }
    }
}

// === adding an instance ===

fn derived_member(host: &str, port: u16, virtual_nodes: u32) -> Member {
    let name = InstanceName::new(host, port).expect("valid host");
    Member {
        tokens: derived_tokens(&name, virtual_nodes),
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        name,
    }
}

fn derived_ring(n: u16, virtual_nodes: u32) -> Vec<Member> {
    (0..n)
        .map(|i| derived_member(&format!("node{i}.example"), 8000 + i, virtual_nodes))
        .collect()
}

/// What moves when `added` joins `old`: checks that every range whose
/// primary changes now belongs to `added`, and returns the moved share of the
/// key space and the added instance's share.
fn moved_share(old: &Ring, new: &Ring, added: &str) -> Result<(f64, f64), TestCaseError> {
    let mut moved = 0.0;
    for range in new.ranges() {
        // New tokens only split old ranges, so an old range holds it whole.
        let before = old.primary(range.through).map(|i| i.name().as_str());
        let after = new.instance(range.owner).map(|i| i.name().as_str());
        if before != after {
            prop_assert_eq!(after, Some(added), "range through {} moved", range.through);
            moved += range.share(new.point_count());
        }
    }
    let share = new
        .instances()
        .iter()
        .find(|i| i.name().as_str() == added)
        .map_or(0.0, |i| i.share());
    Ok((moved, share))
}

#[derive(Clone, Debug)]
enum Added {
    /// Random tokens, plus copies of some of the old ring's tokens (ties).
    Tokens(Vec<u128>, Vec<Index>),
    /// 64 derived tokens.
    Derived,
}

fn added() -> impl Strategy<Value = Added> {
    prop_oneof![
        (
            prop::collection::vec(any::<u128>(), 1..8),
            prop::collection::vec(any::<Index>(), 0..3)
        )
            .prop_map(|(tokens, ties)| Added::Tokens(tokens, ties)),
        Just(Added::Derived),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// (c) Keys move only onto the added instance, and exactly its share
    /// moves. "added" sorts before "node…" and wins ties; "zz" loses them.
    #[test]
    fn adding_an_instance_moves_keys_only_onto_it(
        n in 1u16..16,
        added in added(),
        host in prop_oneof![Just("added.example"), Just("zz.example")],
        keys in prop::collection::vec(any::<u128>(), 256),
    ) {
        let members = derived_ring(n, 64);
        let old = Ring::build(members.clone(), Replication::default()).unwrap();
        let joining = match &added {
            Added::Derived => derived_member(host, 9000, 64),
            Added::Tokens(tokens, ties) => {
                let mut tokens: Vec<Token> = tokens.iter().copied().map(Token).collect();
                let old_tokens: Vec<Token> = old.ranges().map(|r| r.through).collect();
                tokens.extend(ties.iter().map(|index| *index.get(&old_tokens)));
                Member {
                    name: InstanceName::new(host, 9000).unwrap(),
                    addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9000),
                    tokens,
                }
            }
        };
        let added_name = joining.name.to_string();
        let mut grown = members;
        grown.push(joining);
        let new = Ring::build(grown, Replication::default()).unwrap();

        for key in keys {
            let before = old.primary(Token(key)).map(|i| i.name().as_str());
            let after = new.primary(Token(key)).map(|i| i.name().as_str());
            prop_assert!(before == after || after == Some(added_name.as_str()),
                "key {:032x} moved from {:?} to {:?}", key, before, after);
        }
        let (moved, share) = moved_share(&old, &new, &added_name)?;
        prop_assert!((moved - share).abs() < 1e-12, "moved {} but share {}", moved, share);
        if let Added::Derived = added {
            // A wide band: 64 virtual nodes put the share within ±12.5% of
            // 1/(n+1) at one standard deviation; this allows 6 and more.
            let fair = 1.0 / f64::from(n + 1);
            prop_assert!(share > 0.25 * fair && share < 2.5 * fair,
                "share {} with {} instances, fair {}", share, n + 1, fair);
        }
    }
}

/// (c) With derived tokens the moved share is close to `1/(n+1)`. The rings
/// are fixed (names "node{i}.example", "added.example"), so this is
/// deterministic; the bounds are about 3.5 standard deviations of the share
/// of `v` virtual nodes (relative deviation `1/sqrt(v)`).
#[test]
fn the_moved_share_is_about_one_over_n_plus_one() {
    for (virtual_nodes, tolerance) in [(64, 0.45), (256, 0.22)] {
        for n in [1u16, 2, 3, 5, 9, 16, 31, 50] {
            let members = derived_ring(n, virtual_nodes);
            let old = Ring::build(members.clone(), Replication::default()).unwrap();
            let mut grown = members;
            grown.push(derived_member("added.example", 9000, virtual_nodes));
            let new = Ring::build(grown, Replication::default()).unwrap();
            let (moved, share) = moved_share(&old, &new, "added.example:9000").unwrap();
            assert!(
                (moved - share).abs() < 1e-12,
                "moved {moved} but share {share}"
            );
            let fair = 1.0 / f64::from(n + 1);
            assert!(
                (moved / fair - 1.0).abs() < tolerance,
                "{n} + 1 instances × {virtual_nodes}: moved {moved}, fair {fair}"
            );
        }
    }
}

// === token text ===

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// (d) 32 hex digits round trip, in either case.
    #[test]
    fn token_text_round_trips(value in any::<u128>()) {
        let text = format!("{value:032x}");
        prop_assert_eq!(Token(value).to_string(), text.clone());
        prop_assert_eq!(text.parse::<Token>(), Ok(Token(value)));
        prop_assert_eq!(text.to_ascii_uppercase().parse::<Token>(), Ok(Token(value)));
        prop_assert_eq!(Token::parse_bytes(text.as_bytes()), Ok(Token(value)));
    }

    /// (d) A prefix of the text names the position with the remaining digits
    /// zero, as does the prefix padded with zeros to 32 digits.
    #[test]
    fn token_text_prefixes_are_right_padded(value in any::<u128>(), len in 1usize..=32) {
        let text = format!("{value:032x}");
        let prefix = &text[..len];
        let dropped_bits = 4 * (32 - len as u32);
        let expected = if dropped_bits == 0 {
            value
        } else {
            (value >> dropped_bits) << dropped_bits
        };
        prop_assert_eq!(prefix.parse::<Token>(), Ok(Token(expected)));
        let padded = format!("{prefix:0<32}");
        prop_assert_eq!(padded.parse::<Token>(), Ok(Token(expected)));
        let with_more_zeros = format!("{prefix}0");
        if with_more_zeros.len() <= 32 {
            prop_assert_eq!(with_more_zeros.parse::<Token>(), Ok(Token(expected)));
        }
    }
}
