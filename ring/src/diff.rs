//! What changes between two rings (`shardproxy ring diff`, SPEC §8): the
//! ranges whose preference lists change, the instances that lose and gain
//! each, and the shares of the key space whose primary, or whose list,
//! changes. A data-migration job takes this as its input.
//!
//! Both rings are cut at every token of either: within one of the pieces,
//! every position has the same preference list in the old ring and the same
//! one in the new ring, so comparing the lists once per piece compares them
//! for every key. Adjacent changed pieces whose old lists are equal and
//! whose new lists are equal are merged (across the top of the ring too):
//! for a migration they are one range, and a range listed is always a
//! maximal run of positions that move the same way.
//!
//! Instances are compared by `host:port`: an address change alone moves
//! nothing.

use crate::instance::InstanceName;
use crate::keyspace::KeySpace;
use crate::ring::Ring;
use crate::token::Token;

/// The difference between two rings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RingDiff {
    /// The key space whose primary changes.
    pub moved_primary: KeySpace,
    /// The key space whose preference list changes in any way, order
    /// included (so it contains `moved_primary`).
    pub moved_any: KeySpace,
    /// The ranges whose preference list changes, in ring order: by
    /// `through`, so a range that wraps around the top comes first.
    pub ranges: Vec<ChangedRange>,
}

/// A range `(after, through]` whose preference list changes. It wraps
/// around the top of the ring when `after > through`, and is the whole ring
/// when they are equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangedRange {
    /// Exclusive start.
    pub after: Token,
    /// Inclusive end.
    pub through: Token,
    /// The preference list in the old ring, primary first (empty when the
    /// old ring is empty).
    pub old: Vec<InstanceName>,
    /// The preference list in the new ring, primary first.
    pub new: Vec<InstanceName>,
}

// === impl ChangedRange ===

impl ChangedRange {
    /// How much of the key space the range holds.
    pub fn size(&self) -> KeySpace {
        KeySpace::of_range(self.after, self.through)
    }

    /// True when the primary changes (not only the replicas or their order).
    pub fn primary_moves(&self) -> bool {
        self.old.first() != self.new.first()
    }

    /// The instances that hold the range in the old ring but not the new:
    /// they lose it.
    pub fn losing(&self) -> impl Iterator<Item = &InstanceName> + '_ {
        self.old.iter().filter(|name| !self.new.contains(name))
    }

    /// The instances that hold the range in the new ring but not the old:
    /// they gain it, and need its data.
    pub fn gaining(&self) -> impl Iterator<Item = &InstanceName> + '_ {
        self.new.iter().filter(|name| !self.old.contains(name))
    }

    /// True when `position` is in the range.
    pub fn contains(&self, position: Token) -> bool {
        let (after, through, p) = (self.after.0, self.through.0, position.0);
        match after.cmp(&through) {
            std::cmp::Ordering::Less => after < p && p <= through,
            std::cmp::Ordering::Greater => p > after || p <= through,
            std::cmp::Ordering::Equal => true,
        }
    }
}

/// The names of the preference list of `position` on `ring`.
fn list_names(ring: &Ring, position: Token) -> Vec<InstanceName> {
    ring.preference_list(position)
        .iter()
        .map(|instance| instance.name().clone())
        .collect()
}

/// Compares two rings.
pub fn diff(old: &Ring, new: &Ring) -> RingDiff {
    let mut cuts: Vec<Token> = old
        .ranges()
        .chain(new.ranges())
        .map(|range| range.through)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();

    let mut result = RingDiff::default();
    let count = cuts.len();
    for (index, &through) in cuts.iter().enumerate() {
        let after = cuts[(index + count - 1) % count];
        // No token of either ring lies inside (after, through], so its last
        // position stands for all of it.
        let old_list = list_names(old, through);
        let new_list = list_names(new, through);
        if old_list == new_list {
            continue;
        }
        let size = KeySpace::of_range(after, through);
        result.moved_any = result.moved_any.saturating_add(size);
        if old_list.first() != new_list.first() {
            result.moved_primary = result.moved_primary.saturating_add(size);
        }
        match result.ranges.last_mut() {
            Some(last) if last.through == after && last.old == old_list && last.new == new_list => {
                last.through = through;
            }
            _ => result.ranges.push(ChangedRange {
                after,
                through,
                old: old_list,
                new: new_list,
            }),
        }
    }

    // The last range may continue into the first across the top of the ring.
    if result.ranges.len() >= 2 {
        let last = &result.ranges[result.ranges.len() - 1];
        let first = &result.ranges[0];
        if last.through == first.after && last.old == first.old && last.new == first.new {
            let after = last.after;
            result.ranges.pop();
            result.ranges[0].after = after;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use crate::ring::{Member, Replication};

    fn ring(members: &[(&str, &[u128])], slaves: u8) -> Ring {
        let members = members
            .iter()
            .map(|(host, tokens)| Member {
                name: InstanceName::new(host, 80).unwrap(),
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 80)),
                tokens: tokens.iter().copied().map(Token).collect(),
            })
            .collect();
        Ring::build(
            members,
            Replication {
                slaves,
                ..Replication::default()
            },
        )
        .unwrap()
    }

    fn names(list: &[&str]) -> Vec<InstanceName> {
        list.iter()
            .map(|host| InstanceName::new(host, 80).unwrap())
            .collect()
    }

    const Q: u128 = 1 << 126;

    #[test]
    fn identical_rings_change_nothing() {
        let a = ring(&[("a", &[Q, 3 * Q]), ("b", &[2 * Q])], 1);
        assert_eq!(diff(&a, &a), RingDiff::default());
        let empty = ring(&[], 0);
        assert_eq!(diff(&empty, &empty), RingDiff::default());
    }

    #[test]
    fn a_split_moves_the_lower_part() {
        let old = ring(&[("a", &[Q]), ("b", &[3 * Q])], 0);
        let new = ring(&[("a", &[Q]), ("b", &[3 * Q]), ("c", &[2 * Q])], 0);
        let diff = diff(&old, &new);
        assert_eq!(diff.moved_primary, KeySpace::positions(Q));
        assert_eq!(diff.moved_any, KeySpace::positions(Q));
        assert_eq!(
            diff.ranges,
            [ChangedRange {
                after: Token(Q),
                through: Token(2 * Q),
                old: names(&["b"]),
                new: names(&["c"]),
            }]
        );
        let range = &diff.ranges[0];
        assert!(range.primary_moves());
        assert_eq!(range.losing().collect::<Vec<_>>(), [&names(&["b"])[0]]);
        assert_eq!(range.gaining().collect::<Vec<_>>(), [&names(&["c"])[0]]);
    }

    #[test]
    fn replica_changes_count_in_moved_any_only() {
        // a: (3Q, Q], b: (Q, 2Q], c: (2Q, 3Q]. An instance without tokens
        // changes nothing; dropping the replica changes every list but no
        // primary.
        let old = ring(&[("a", &[Q]), ("b", &[2 * Q]), ("c", &[3 * Q])], 1);
        let new = ring(
            &[("a", &[Q]), ("b", &[2 * Q]), ("c", &[3 * Q]), ("d", &[])],
            1,
        );
        assert_eq!(diff(&old, &new), RingDiff::default());
        let new = ring(&[("a", &[Q]), ("b", &[2 * Q]), ("c", &[3 * Q])], 0);
        let changed = diff(&old, &new);
        assert_eq!(changed.moved_primary, KeySpace::ZERO);
        assert_eq!(changed.moved_any, KeySpace::WHOLE);
        // Every piece changes differently: three ranges, the first wrapping.
        assert_eq!(changed.ranges.len(), 3);
        assert_eq!(changed.ranges[0].after, Token(3 * Q));
        assert_eq!(changed.ranges[0].through, Token(Q));
        assert_eq!(changed.ranges[0].old, names(&["a", "b"]));
        assert_eq!(changed.ranges[0].new, names(&["a"]));
    }

    #[test]
    fn adjacent_pieces_that_move_alike_merge_across_the_top() {
        // Old: a owns everything. New: b owns (3Q, Q] and (2Q, 3Q], which
        // meet at the top of the ring; a keeps (Q, 2Q].
        let old = ring(&[("a", &[2 * Q])], 0);
        let new = ring(&[("a", &[2 * Q]), ("b", &[Q, 3 * Q])], 0);
        let diff = diff(&old, &new);
        assert_eq!(diff.moved_primary, KeySpace::positions(3 * Q));
        assert_eq!(
            diff.ranges,
            [ChangedRange {
                after: Token(2 * Q),
                through: Token(Q),
                old: names(&["a"]),
                new: names(&["b"]),
            }]
        );
        assert!(diff.ranges[0].contains(Token(0)));
        assert!(diff.ranges[0].contains(Token(3 * Q)));
        assert!(!diff.ranges[0].contains(Token(2 * Q)));
    }

    #[test]
    fn the_whole_ring_moves() {
        let old = ring(&[("a", &[Q, 2 * Q])], 0);
        let new = ring(&[("b", &[3 * Q])], 0);
        let diff = diff(&old, &new);
        assert_eq!(diff.moved_primary, KeySpace::WHOLE);
        assert_eq!(diff.ranges.len(), 1);
        let range = &diff.ranges[0];
        assert_eq!(range.after, range.through, "(t, t] is the whole ring");
        assert_eq!(range.size(), KeySpace::WHOLE);
        // From or to an empty ring, everything moves.
        let empty = ring(&[], 0);
        let to_empty = super::diff(&old, &empty);
        assert_eq!(to_empty.moved_primary, KeySpace::WHOLE);
        assert_eq!(to_empty.ranges[0].new, Vec::<InstanceName>::new());
    }
}
