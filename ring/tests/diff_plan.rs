//! Property tests of `ring diff` and `ring plan` (SPEC §8).
//!
//! - The shares `diff` reports are checked against exact range arithmetic
//!   done by a naive model (linear scans over the published pairs, sharing
//!   nothing with the ring), and every listed range against preference
//!   lists sampled at its edges and at random positions.
//! - `plan` is checked against a naive re-enactment of its rule (split the
//!   largest range, ties to the first in ring order, at the midpoint), and
//!   the share it promises against what `diff` computes between the old
//!   zone and the old zone with the planned records appended, parsed back.

// Every item here is test code: this lets clippy's `allow-unwrap-in-tests`
// cover the helpers too.
#![cfg(test)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proptest::prelude::*;
use shardproxy_ring::zone::{Zone, ZoneRing};
use shardproxy_ring::{
    diff, plan, InstanceName, KeySpace, Member, Redundancy, Replication, Ring, RingDiff, Token,
};

const HOSTS: [&str; 4] = ["a", "a.b", "b", "c"];
const PORTS: [u16; 3] = [9, 10, 80];

/// One published member: indexes into `HOSTS` and `PORTS`, and its tokens.
type MemberSpec = (usize, usize, Vec<u128>);

/// Tokens that often collide (16 coarse positions and both ends) and
/// sometimes fall anywhere.
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
        0..7,
    )
}

fn replication() -> impl Strategy<Value = Replication> {
    (
        0u8..4,
        prop_oneof![Just(Redundancy::None), Just(Redundancy::Host)],
    )
        .prop_map(|(slaves, redundancy)| Replication { slaves, redundancy })
}

fn address(host: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, u8::try_from(host).unwrap()))
}

fn build(specs: &[MemberSpec], replication: Replication) -> Ring {
    let members = specs
        .iter()
        .map(|(host, port, tokens)| Member {
            name: InstanceName::new(HOSTS[*host], PORTS[*port]).unwrap(),
            addr: SocketAddr::new(address(*host), PORTS[*port]),
            tokens: tokens.iter().copied().map(Token).collect(),
        })
        .collect();
    Ring::build(members, replication).unwrap()
}

// === the naive model ===

/// Every published `(token, host, "host:port")`, duplicates and all.
struct Model {
    pairs: Vec<(u128, &'static str, String)>,
    replication: Replication,
}

impl Model {
    fn new(specs: &[MemberSpec], replication: Replication) -> Model {
        let mut pairs = Vec::new();
        for (host, port, tokens) in specs {
            for &token in tokens {
                pairs.push((
                    token,
                    HOSTS[*host],
                    format!("{}:{}", HOSTS[*host], PORTS[*port]),
                ));
            }
        }
        Model { pairs, replication }
    }

    fn tokens(&self) -> BTreeSet<u128> {
        self.pairs.iter().map(|pair| pair.0).collect()
    }

    fn owner_of_token(&self, token: u128) -> Option<&(u128, &'static str, String)> {
        self.pairs
            .iter()
            .filter(|pair| pair.0 == token)
            .min_by(|x, y| x.2.as_bytes().cmp(y.2.as_bytes()))
    }

    fn token_of(&self, position: u128) -> Option<u128> {
        let tokens = self.tokens();
        let at_or_after = tokens.range(position..).next().copied();
        at_or_after.or_else(|| tokens.iter().next().copied())
    }

    fn preference_list(&self, position: u128) -> Vec<String> {
        let Some(start) = self.token_of(position) else {
            return Vec::new();
        };
        let tokens = self.tokens();
        let wanted = usize::from(self.replication.slaves) + 1;
        let mut list: Vec<String> = Vec::new();
        let mut hosts: Vec<&str> = Vec::new();
        for &token in tokens.range(start..).chain(tokens.range(..start)) {
            let Some((_, host, name)) = self.owner_of_token(token) else {
                continue;
            };
            if list.contains(name)
                || (self.replication.redundancy == Redundancy::Host && hosts.contains(host))
            {
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
}

/// A count of positions up to 2^129, as (carry, low).
type Wide = (u128, u128);

fn wide(space: KeySpace) -> Wide {
    space.as_u128().map_or((1, 0), |low| (0, low))
}

fn add_wide((high, low): Wide, amount: Wide) -> Wide {
    let (low, carry) = low.overflowing_add(amount.1);
    (high + amount.0 + u128::from(carry), low)
}

/// The exact shares of the key space whose primary, and whose list,
/// differ: the model cuts the ring at every token of either side and asks
/// each piece's last position.
fn exact_moves(old: &Model, new: &Model) -> (Wide, Wide) {
    let cuts: Vec<u128> = old.tokens().union(&new.tokens()).copied().collect();
    let mut primary = (0, 0);
    let mut any = (0, 0);
    for (index, &through) in cuts.iter().enumerate() {
        let after = cuts[(index + cuts.len() - 1) % cuts.len()];
        let size = if cuts.len() == 1 {
            (1, 0)
        } else {
            (0, through.wrapping_sub(after))
        };
        let (before, now) = (old.preference_list(through), new.preference_list(through));
        if before.first() != now.first() {
            primary = add_wide(primary, size);
        }
        if before != now {
            any = add_wide(any, size);
        }
    }
    (primary, any)
}

fn names(ring: &Ring, position: u128) -> Vec<String> {
    ring.preference_list(Token(position))
        .iter()
        .map(|instance| instance.name().to_string())
        .collect()
}

fn strings(list: &[InstanceName]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

/// Checks `diff` of two rings against the model and against lists sampled
/// at `probes`.
fn check_diff(
    diff: &RingDiff,
    old: (&Ring, &Model),
    new: (&Ring, &Model),
    probes: &[u128],
) -> Result<(), TestCaseError> {
    let (primary, any) = exact_moves(old.1, new.1);
    prop_assert_eq!(wide(diff.moved_primary), primary);
    prop_assert_eq!(wide(diff.moved_any), any);

    // The listed ranges add up to the shares, are in ring order, and are
    // maximal: no two neighbours move alike.
    let listed_any: KeySpace = diff.ranges.iter().map(|range| range.size()).sum();
    let listed_primary: KeySpace = diff
        .ranges
        .iter()
        .filter(|range| range.primary_moves())
        .map(|range| range.size())
        .sum();
    prop_assert_eq!(listed_any, diff.moved_any);
    prop_assert_eq!(listed_primary, diff.moved_primary);
    prop_assert!(diff
        .ranges
        .windows(2)
        .all(|pair| pair[0].through < pair[1].through));
    for (index, range) in diff.ranges.iter().enumerate() {
        prop_assert_ne!(&range.old, &range.new);
        let next = &diff.ranges[(index + 1) % diff.ranges.len()];
        if diff.ranges.len() > 1 && next.after == range.through {
            prop_assert!(
                next.old != range.old || next.new != range.new,
                "unmerged {:?}",
                range
            );
        }
    }

    // Each probe is in a listed range exactly when its list changes, and
    // that range names its lists.
    for &position in probes {
        let before = names(old.0, position);
        let after = names(new.0, position);
        prop_assert_eq!(&before, &old.1.preference_list(position));
        prop_assert_eq!(&after, &new.1.preference_list(position));
        let holding: Vec<_> = diff
            .ranges
            .iter()
            .filter(|range| range.contains(Token(position)))
            .collect();
        if before == after {
            prop_assert!(holding.is_empty(), "{:032x} unchanged but listed", position);
        } else {
            prop_assert_eq!(holding.len(), 1, "{:032x} changed: {:?}", position, holding);
            prop_assert_eq!(strings(&holding[0].old), before);
            prop_assert_eq!(strings(&holding[0].new), after);
        }
    }
    Ok(())
}

/// Every token, its neighbours, both ends, and random positions.
fn probes(specs: &[&[MemberSpec]], random: &[u128]) -> Vec<u128> {
    let mut probes = vec![0, 1, u128::MAX - 1, u128::MAX];
    for specs in specs {
        for (_, _, tokens) in specs.iter() {
            for &token in tokens {
                probes.extend([token.wrapping_sub(1), token, token.wrapping_add(1)]);
            }
        }
    }
    probes.extend_from_slice(random);
    probes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// `moved_primary` and `moved_any` are exact, and the ranges listed are
    /// exactly where lists change.
    #[test]
    fn diff_matches_exact_range_arithmetic(
        old_specs in members(),
        new_specs in members(),
        old_replication in replication(),
        new_replication in replication(),
        random in prop::collection::vec(any::<u128>(), 16),
    ) {
        let old = build(&old_specs, old_replication);
        let new = build(&new_specs, new_replication);
        let old_model = Model::new(&old_specs, old_replication);
        let new_model = Model::new(&new_specs, new_replication);
        let probes = probes(&[&old_specs[..], &new_specs[..]], &random);

        let forward = diff(&old, &new);
        check_diff(&forward, (&old, &old_model), (&new, &new_model), &probes)?;
        let backward = diff(&new, &old);
        prop_assert_eq!(backward.moved_primary, forward.moved_primary);
        prop_assert_eq!(backward.moved_any, forward.moved_any);
        prop_assert_eq!(diff(&old, &old), RingDiff::default());
    }

    /// A ring with one instance changed a little: most ranges stay, so the
    /// merging and the wrap-around are exercised on realistic shapes.
    #[test]
    fn diff_of_a_small_change(
        specs in members(),
        replication in replication(),
        moved in (0usize..7, 0usize..4, token()),
        random in prop::collection::vec(any::<u128>(), 16),
    ) {
        let mut changed = specs.clone();
        if let Some(member) = changed.get_mut(moved.0 % specs.len().max(1)) {
            match member.2.get_mut(moved.1) {
                Some(token) => *token = moved.2,
                None => member.2.push(moved.2),
            }
        }
        let old = build(&specs, replication);
        let new = build(&changed, replication);
        let probes = probes(&[&specs[..], &changed[..]], &random);
        check_diff(
            &diff(&old, &new),
            (&old, &Model::new(&specs, replication)),
            (&new, &Model::new(&changed, replication)),
            &probes,
        )?;
    }
}

// === plan ===

/// The zone publishing `specs` for `_s._tcp.example.com.`, with an A record
/// for every host (so added instances on any host have an address).
fn zone_text(specs: &[MemberSpec], replication: Replication, ttl: u32) -> String {
    let mut text = format!("$ORIGIN example.com.\n$TTL {ttl}\n");
    let _ = writeln!(
        text,
        "config._s._tcp IN TXT \"slaves={} redundancy={}\"",
        replication.slaves, replication.redundancy
    );
    for (index, host) in HOSTS.iter().enumerate() {
        let _ = writeln!(text, "{host} IN A {}", address(index));
    }
    for (host, port, tokens) in specs {
        let (host, port) = (HOSTS[*host], PORTS[*port]);
        let _ = writeln!(text, "_s._tcp IN SRV 10 50 {port} {host}");
        if !tokens.is_empty() {
            // Short hex is the leading digits: write all 32.
            let words: Vec<String> = tokens.iter().map(|t| format!("{t:032x}")).collect();
            let _ = writeln!(text, "tokens.{port}.{host} IN TXT \"{}\"", words.join(" "));
        }
    }
    text
}

/// Plans by the letter of SPEC §8 with nothing but a list of positions and
/// their owners: for each token, list every range with its size and owner,
/// take the largest (of equal ones, one the receiver does not own, then the
/// first in ring order), cut at the midpoint.
fn naive_plan(points: &[(u128, String)], receivers: &[String], each: u32) -> Vec<u128> {
    let mut points: Vec<(u128, String)> = points.to_vec();
    let mut handed_out = Vec::new();
    for receiver in receivers {
        for _ in 0..each {
            points.sort();
            // (size, owned by the receiver, after); scanned in ring order.
            let mut best: Option<(Wide, bool, u128)> = None;
            for (index, (through, owner)) in points.iter().enumerate() {
                let after = points[(index + points.len() - 1) % points.len()].0;
                let size = if points.len() == 1 {
                    (1, 0)
                } else {
                    (0, through.wrapping_sub(after))
                };
                let own = owner == receiver;
                let better = match best {
                    None => true,
                    Some((largest, largest_own, _)) => {
                        size > largest || (size == largest && largest_own && !own)
                    }
                };
                if better {
                    best = Some((size, own, after));
                }
            }
            let (size, _, after) = best.unwrap();
            let half = if size.0 == 1 {
                1u128 << 127
            } else {
                size.1 / 2
            };
            let token = after.wrapping_add(half);
            handed_out.push(token);
            points.push((token, receiver.clone()));
        }
    }
    handed_out
}

fn additions() -> impl Strategy<Value = Vec<(usize, u16)>> {
    prop::collection::vec((0..HOSTS.len(), 1000u16..1003), 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The plan follows the rule, and the share it promises is what `diff`
    /// finds between the old zone and the old zone plus the printed records.
    #[test]
    fn plan_promises_what_diff_finds(
        specs in members(),
        replication in replication(),
        joining in additions(),
        tokens_each in 1u32..5,
        ttl in 1u32..100_000,
        random in prop::collection::vec(any::<u128>(), 16),
    ) {
        let old_text = zone_text(&specs, replication, ttl);
        let old_zone = Zone::parse(&old_text).unwrap();
        let old = match ZoneRing::read(&old_zone, "_s._tcp.example.com") {
            Ok(old) => old,
            // No SRV record at all: nothing to plan from.
            Err(_) => {
                prop_assert!(specs.is_empty());
                return Ok(());
            }
        };
        prop_assume!(!old.ring.is_empty());
        let mut added: Vec<(InstanceName, SocketAddr)> = Vec::new();
        for (host, port) in joining {
            let name = InstanceName::new(&format!("{}.example.com", HOSTS[host]), port).unwrap();
            if added.iter().all(|(known, _)| known != &name) {
                added.push((name, SocketAddr::new(address(host), port)));
            }
        }
        let plan = plan(&old.ring, &added, tokens_each).unwrap();

        // The rule, re-enacted.
        let points: Vec<(u128, String)> = old
            .ring
            .ranges()
            .map(|range| {
                let owner = old.ring.instance(range.owner).unwrap().name().to_string();
                (range.through.0, owner)
            })
            .collect();
        let receivers: Vec<String> = added.iter().map(|(name, _)| name.to_string()).collect();
        let naive = naive_plan(&points, &receivers, tokens_each);
        let planned: Vec<u128> = plan
            .added
            .iter()
            .flat_map(|instance| instance.tokens())
            .map(|token| token.0)
            .collect();
        prop_assert_eq!(planned, naive);

        // The promise, checked by diff on the rings...
        let moved = diff(&old.ring, &plan.ring);
        prop_assert_eq!(moved.moved_primary, plan.moved_primary);
        // ...and on the zone with the printed records appended.
        let mut new_text = old_text.clone();
        for instance in &plan.added {
            for line in instance.records(&old.service, old.srv_template) {
                new_text.push_str(&line);
                new_text.push('\n');
            }
        }
        let new = ZoneRing::read(&Zone::parse(&new_text).unwrap(), "_s._tcp.example.com.").unwrap();
        prop_assert_eq!(new.ring.fingerprint(), plan.ring.fingerprint());
        let from_zones = diff(&old.ring, &new.ring);
        prop_assert_eq!(from_zones.moved_primary, plan.moved_primary);
        prop_assert_eq!(&from_zones, &moved);

        // Keys move only onto the added instances.
        for position in random {
            let before = old.ring.primary(Token(position)).map(|i| i.name().clone());
            let after = plan.ring.primary(Token(position)).map(|i| i.name().clone());
            let onto_added = after
                .as_ref()
                .is_some_and(|name| added.iter().any(|(joined, _)| joined == name));
            prop_assert!(before == after || onto_added);
        }
    }
}
