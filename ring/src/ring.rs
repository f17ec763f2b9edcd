//! The ring itself: ownership, preference lists, shares and the fingerprint
//! (SPEC §2).
//!
//! A [`Ring`] is built once, off the request path, and then only read. Every
//! preference list is computed at build time, so a lookup is one binary
//! search over a sorted array of tokens followed by a slice index: no
//! allocation, no walk, no lock.

use std::fmt;
use std::net::SocketAddr;

use crate::instance::InstanceName;
use crate::token::Token;

/// Most preference-list entries a ring may hold (points × list length), so a
/// hostile or mistaken record set cannot make the proxy allocate without
/// bound: 64 Mi entries is 256 MiB. A ring of 1,000 instances × 256 tokens
/// with two replicas needs 768 Ki entries.
pub const MAX_LIST_ENTRIES: usize = 64 << 20;

/// How replicas are chosen for a key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Replication {
    /// Replicas after the primary (`slaves=N`).
    pub slaves: u8,
    /// Whether replicas must be on other hosts.
    pub redundancy: Redundancy,
}

/// `redundancy=none|host`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Redundancy {
    /// Replicas only have to be other instances.
    #[default]
    None,
    /// Replicas have to be on other hosts (SRV targets), so that losing one
    /// machine loses at most one copy.
    Host,
}

impl fmt::Display for Redundancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Redundancy::None => "none",
            Redundancy::Host => "host",
        })
    }
}

impl fmt::Display for Replication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slaves={} redundancy={}", self.slaves, self.redundancy)
    }
}

/// An instance as discovered, before it joins a ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// `host:port`.
    pub name: InstanceName,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Its tokens, in any order, possibly repeated.
    pub tokens: Vec<Token>,
}

/// An instance of a built ring.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    name: InstanceName,
    addr: SocketAddr,
    tokens: Box<[Token]>,
    points: u32,
    share: f64,
}

/// Something about a ring that an operator should hear of, but that does not
/// stop it from being used. The ring crate does no I/O: the caller logs these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingWarning {
    /// Two instances published the same token; the one whose `host:port`
    /// sorts first keeps it.
    TokenTie {
        /// The contested position.
        token: Token,
        /// The instance that keeps it.
        winner: InstanceName,
        /// The instance whose token is dropped.
        loser: InstanceName,
    },
    /// Too few instances (or hosts) for the replication asked for.
    ShortPreferenceLists {
        /// `slaves + 1`.
        wanted: usize,
        /// What the ring can give.
        got: usize,
        /// The replication settings.
        replication: Replication,
    },
}

impl fmt::Display for RingWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingWarning::TokenTie {
                token,
                winner,
                loser,
            } => write!(
                f,
                "instances {winner} and {loser} both publish token {token}: {winner} keeps it, {loser}'s is dropped"
            ),
            RingWarning::ShortPreferenceLists {
                wanted,
                got,
                replication,
            } => {
                let unit = match replication.redundancy {
                    Redundancy::None => "instances",
                    Redundancy::Host => "hosts",
                };
                write!(
                    f,
                    "{replication} asks for preference lists of {wanted} but the ring has only {got} {unit}: lists hold {got}"
                )
            }
        }
    }
}

/// Why a ring could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The preference lists would exceed [`MAX_LIST_ENTRIES`].
    #[error("ring too large: {points} tokens × preference lists of {list_len} exceed {max} entries", max = MAX_LIST_ENTRIES)]
    TooLarge {
        /// Distinct tokens in the ring.
        points: usize,
        /// Length of each preference list.
        list_len: usize,
    },
}

/// A fingerprint of a ring: XXH3-64 of its canonical text (SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One range of the ring, `(after, through]`, and the instance that owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// The previous token (exclusive). Equal to `through` when the ring has
    /// one token and the range is the whole ring.
    pub after: Token,
    /// The owner's token (inclusive).
    pub through: Token,
    /// Index of the owner in [`Ring::instances`].
    pub owner: u32,
    /// Index of this range's point, for [`Ring::preference_list_at`].
    pub point: usize,
}

impl Range {
    /// The share of the key space in this range, in `(0, 1]`.
    pub fn share(&self, ring_points: usize) -> f64 {
        if ring_points == 1 {
            return 1.0;
        }
        u128_share(self.through.0.wrapping_sub(self.after.0))
    }
}

/// `n / 2^128` as a float.
fn u128_share(n: u128) -> f64 {
    // 2^128 as f64 is exact.
    n as f64 / 340_282_366_920_938_463_463_374_607_431_768_211_456.0
}

/// A consistent-hash ring, immutable once built.
#[derive(Clone, Debug)]
pub struct Ring {
    /// Every instance with at least one token, sorted by name.
    instances: Box<[Instance]>,
    /// The distinct tokens, ascending. Kept apart from `owners` so that the
    /// binary search touches only this array.
    points: Box<[u128]>,
    /// `owners[i]` is the index of the instance that owns `points[i]`.
    owners: Box<[u32]>,
    /// `list_len` instance indexes per point: its preference list.
    lists: Box<[u32]>,
    list_len: usize,
    replication: Replication,
    fingerprint: Fingerprint,
    warnings: Box<[RingWarning]>,
}

/// The preference list of a key: its primary first, then its replicas.
#[derive(Clone, Copy, Debug)]
pub struct PreferenceList<'a> {
    ring: &'a Ring,
    indexes: &'a [u32],
}

// === impl Instance ===

impl Instance {
    /// `host:port`.
    pub fn name(&self) -> &InstanceName {
        &self.name
    }

    /// Where to connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every token it published, ascending, each once (including any it lost
    /// in a tie).
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// How many ring positions it holds after ties are broken.
    pub fn points(&self) -> u32 {
        self.points
    }

    /// The share of the key space it owns as primary, in `[0, 1]`.
    pub fn share(&self) -> f64 {
        self.share
    }
}

// === impl Ring ===

impl Ring {
    /// Builds a ring from its members.
    ///
    /// Members that share a name are merged (their tokens united, the first
    /// address kept). Members without tokens are left out. Ties between
    /// instances and preference lists shorter than asked for are reported in
    /// [`Ring::warnings`].
    ///
    /// # Errors
    ///
    /// [`RingError::TooLarge`] when the preference lists would not fit in
    /// [`MAX_LIST_ENTRIES`].
    pub fn build(members: Vec<Member>, replication: Replication) -> Result<Ring, RingError> {
        let instances = merge_members(members);
        let mut warnings = Vec::new();

        // All (token, instance) pairs; sorting by instance index second makes
        // the first of equal tokens the one whose name sorts first.
        let mut pairs: Vec<(u128, u32)> = Vec::new();
        for (index, instance) in instances.iter().enumerate() {
            let index = index_u32(index);
            pairs.extend(instance.tokens.iter().map(|token| (token.0, index)));
        }
        pairs.sort_unstable();
        let mut points = Vec::with_capacity(pairs.len());
        let mut owners: Vec<u32> = Vec::with_capacity(pairs.len());
        for (token, owner) in pairs {
            if points.last() == Some(&token) {
                let winner = owners.last().copied().unwrap_or(owner);
                warnings.push(RingWarning::TokenTie {
                    token: Token(token),
                    winner: instances[winner as usize].name.clone(),
                    loser: instances[owner as usize].name.clone(),
                });
                continue;
            }
            points.push(token);
            owners.push(owner);
        }

        let mut instances = instances;
        account_shares(&mut instances, &points, &owners);

        let conflict_keys = conflict_keys(&instances, replication.redundancy);
        let wanted = usize::from(replication.slaves) + 1;
        let available = count_distinct_among_points(&owners, &conflict_keys);
        let list_len = wanted.min(available);
        if !points.is_empty() && list_len < wanted {
            warnings.push(RingWarning::ShortPreferenceLists {
                wanted,
                got: list_len,
                replication,
            });
        }
        if points.len().saturating_mul(list_len) > MAX_LIST_ENTRIES {
            return Err(RingError::TooLarge {
                points: points.len(),
                list_len,
            });
        }
        let lists = build_lists(&owners, &conflict_keys, list_len);
        let fingerprint = fingerprint(&instances, replication);

        Ok(Ring {
            instances: instances.into_boxed_slice(),
            points: points.into_boxed_slice(),
            owners: owners.into_boxed_slice(),
            lists: lists.into_boxed_slice(),
            list_len,
            replication,
            fingerprint,
            warnings: warnings.into_boxed_slice(),
        })
    }

    /// Every instance with at least one token, sorted by `host:port`.
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// The instance at `index` (as found in a preference list or a range).
    pub fn instance(&self, index: u32) -> Option<&Instance> {
        self.instances.get(index as usize)
    }

    /// The replication settings the ring was built with.
    pub fn replication(&self) -> Replication {
        self.replication
    }

    /// The fingerprint of the ring.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// What was wrong but tolerated while building.
    pub fn warnings(&self) -> &[RingWarning] {
        &self.warnings
    }

    /// True when no instance holds a token: every lookup finds nothing.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The number of distinct tokens on the ring.
    pub fn point_count(&self) -> usize {
        self.points.len()
    }

    /// The length of every preference list: `slaves + 1`, or fewer when the
    /// ring has too few instances or hosts.
    pub fn list_len(&self) -> usize {
        self.list_len
    }

    /// The index of the point that owns `position`: the smallest token
    /// `>= position`, wrapping to the smallest token. `None` on an empty ring.
    #[inline]
    pub fn point_of(&self, position: Token) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let index = self.points.partition_point(|&token| token < position.0);
        Some(if index == self.points.len() { 0 } else { index })
    }

    /// The primary owner of `position`.
    #[inline]
    pub fn primary(&self, position: Token) -> Option<&Instance> {
        let point = self.point_of(position)?;
        self.instances.get(*self.owners.get(point)? as usize)
    }

    /// The preference list of `position`: primary first. Empty on an empty
    /// ring.
    #[inline]
    pub fn preference_list(&self, position: Token) -> PreferenceList<'_> {
        match self.point_of(position) {
            Some(point) => self.preference_list_at(point),
            None => PreferenceList {
                ring: self,
                indexes: &[],
            },
        }
    }

    /// The preference list of the range ending at point `point`; empty when
    /// there is no such point.
    #[inline]
    pub fn preference_list_at(&self, point: usize) -> PreferenceList<'_> {
        let start = point.saturating_mul(self.list_len);
        let indexes = self
            .lists
            .get(start..start.saturating_add(self.list_len))
            .unwrap_or(&[]);
        PreferenceList {
            ring: self,
            indexes,
        }
    }

    /// Every range of the ring in ring order, starting with the one that
    /// ends at the smallest token (and so wraps around from the largest).
    pub fn ranges(&self) -> impl ExactSizeIterator<Item = Range> + '_ {
        let count = self.points.len();
        (0..count).map(move |point| Range {
            after: Token(self.points[(point + count - 1) % count]),
            through: Token(self.points[point]),
            owner: self.owners[point],
            point,
        })
    }

    /// The canonical text the fingerprint is computed over (SPEC §2).
    pub fn canonical_text(&self) -> String {
        canonical_text(&self.instances, self.replication)
    }
}

// === impl PreferenceList ===

impl<'a> PreferenceList<'a> {
    /// How many instances the list holds.
    pub fn len(&self) -> usize {
        self.indexes.len()
    }

    /// True on an empty ring.
    pub fn is_empty(&self) -> bool {
        self.indexes.is_empty()
    }

    /// The instance indexes, primary first (indexes into
    /// [`Ring::instances`]).
    pub fn indexes(&self) -> &'a [u32] {
        self.indexes
    }

    /// The primary.
    pub fn primary(&self) -> Option<&'a Instance> {
        self.get(0)
    }

    /// The `n`-th instance, primary being 0.
    pub fn get(&self, n: usize) -> Option<&'a Instance> {
        let ring: &'a Ring = self.ring;
        self.indexes
            .get(n)
            .and_then(|&index| ring.instances.get(index as usize))
    }

    /// The instances, primary first.
    pub fn iter(&self) -> impl Iterator<Item = &'a Instance> + 'a {
        let ring: &'a Ring = self.ring;
        self.indexes
            .iter()
            .filter_map(move |&index| ring.instances.get(index as usize))
    }
}

// === building blocks ===

/// Instance indexes are `u32` to keep the per-point arrays small; a ring
/// never has 2^32 instances because each needs a DNS record or config entry,
/// and [`MAX_LIST_ENTRIES`] bounds the points anyway.
fn index_u32(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// Sorts by name, merges members of one name, dedups tokens and drops
/// members without tokens.
fn merge_members(mut members: Vec<Member>) -> Vec<Instance> {
    // Stable, so that of merged members the first given keeps its address.
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let mut instances: Vec<Instance> = Vec::with_capacity(members.len());
    let mut tokens: Vec<Token> = Vec::new();
    let mut members = members.into_iter().peekable();
    while let Some(first) = members.next() {
        tokens.clear();
        tokens.extend_from_slice(&first.tokens);
        while let Some(same) = members.next_if(|next| next.name == first.name) {
            tokens.extend_from_slice(&same.tokens);
        }
        tokens.sort_unstable();
        tokens.dedup();
        if tokens.is_empty() {
            continue;
        }
        instances.push(Instance {
            name: first.name,
            addr: first.addr,
            tokens: tokens.as_slice().into(),
            points: 0,
            share: 0.0,
        });
    }
    instances
}

/// Fills in each instance's point count and share of the key space.
fn account_shares(instances: &mut [Instance], points: &[u128], owners: &[u32]) {
    let count = points.len();
    for (point, &owner) in owners.iter().enumerate() {
        let Some(instance) = instances.get_mut(owner as usize) else {
            continue;
        };
        instance.points += 1;
        instance.share += if count == 1 {
            1.0
        } else {
            let previous = points[(point + count - 1) % count];
            u128_share(points[point].wrapping_sub(previous))
        };
    }
}

/// For each instance, the key that two list entries must not share: its own
/// index, or with `redundancy=host` the index of its host.
fn conflict_keys(instances: &[Instance], redundancy: Redundancy) -> Vec<u32> {
    match redundancy {
        Redundancy::None => (0..instances.len()).map(index_u32).collect(),
        Redundancy::Host => {
            let mut hosts: Vec<&str> = Vec::new();
            instances
                .iter()
                .map(|instance| {
                    let host = instance.name.host();
                    let position = hosts.iter().position(|&known| known == host);
                    index_u32(position.unwrap_or_else(|| {
                        hosts.push(host);
                        hosts.len() - 1
                    }))
                })
                .collect()
        }
    }
}

/// How many distinct conflict keys the owners of the ring's points have.
fn count_distinct_among_points(owners: &[u32], conflict_keys: &[u32]) -> usize {
    let mut keys: Vec<u32> = owners
        .iter()
        .map(|&owner| conflict_keys[owner as usize])
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.len()
}

/// Every point's preference list, `list_len` entries each.
///
/// The list of point `i` is its owner followed by the list of point `i + 1`
/// without the entries that conflict with that owner: walking clockwise from
/// `i` is taking `i`'s owner and then walking from `i + 1`, and the first
/// instance of each conflict key met on that walk does not change when one
/// key is excluded. So one full walk for point 0 and one step for each other
/// point (going backwards) build them all in O(points × list_len).
fn build_lists(owners: &[u32], conflict_keys: &[u32], list_len: usize) -> Vec<u32> {
    let count = owners.len();
    if count == 0 || list_len == 0 {
        return Vec::new();
    }
    let mut lists = vec![0u32; count * list_len];
    let key_of = |instance: u32| conflict_keys[instance as usize];

    // Point 0: a plain walk until the list is full.
    let mut filled = 0;
    for &owner in owners {
        let list = &lists[..filled];
        if list.iter().all(|&taken| key_of(taken) != key_of(owner)) {
            lists[filled] = owner;
            filled += 1;
            if filled == list_len {
                break;
            }
        }
    }

    for point in (1..count).rev() {
        let next = (point + 1) % count;
        let owner = owners[point];
        let (before, after) = lists.split_at_mut(point * list_len);
        let (list, rest) = after.split_at_mut(list_len);
        let next_list: &[u32] = if next == 0 {
            &before[..list_len]
        } else {
            &rest[..list_len]
        };
        list[0] = owner;
        let mut filled = 1;
        for &candidate in next_list {
            if filled == list_len {
                break;
            }
            if key_of(candidate) != key_of(owner) {
                list[filled] = candidate;
                filled += 1;
            }
        }
    }
    lists
}

fn canonical_text(instances: &[Instance], replication: Replication) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    for instance in instances {
        // Writing to a String cannot fail.
        let _ = write!(text, "{} {}", instance.name, instance.addr);
        for token in instance.tokens.iter() {
            let _ = write!(text, " {token}");
        }
        text.push('\n');
    }
    let _ = writeln!(text, "{replication}");
    text
}

fn fingerprint(instances: &[Instance], replication: Replication) -> Fingerprint {
    Fingerprint(xxhash_rust::xxh3::xxh3_64(
        canonical_text(instances, replication).as_bytes(),
    ))
}

#[cfg(test)]
mod tests;
