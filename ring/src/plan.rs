//! Choosing tokens for instances that join a ring (`shardproxy ring plan`,
//! SPEC §8).
//!
//! For each added instance in the order given, `N` times: the largest range
//! of the ring so far (the old ring plus the tokens handed out before) is
//! split at its midpoint and the new token goes to the instance. The new
//! instance then owns the lower half `(after, midpoint]` and the range's
//! owner keeps the upper half. Splitting the largest range keeps the ring
//! as even as it can be made without moving any token already published,
//! and only keys that the new instances take change primary.
//!
//! - **Midpoint.** A range `(after, through]` of `size` positions is split
//!   at `after + floor(size / 2)` (wrapping): the new instance gets the
//!   lower half rounded down.
//! - **Ties.** Of equal largest ranges, one that the instance receiving the
//!   token does not own already is split (a token inside its own range
//!   would change nothing), and of those the first in ring order: the one
//!   with the smallest `through`, which is the order `ring show` lists them
//!   in (a range that wraps around the top comes first).
//! - **The moved share.** Old tokens keep their owners, so a key changes
//!   primary exactly when its new primary is an added instance: the plan
//!   promises the added instances' share of the planned ring, which
//!   `ring diff` of the two rings must find too.
//!
//! `--by-load` ([`plan_by_load`]) weighs ranges by recorded requests
//! instead of size and splits at the request median instead of the
//! midpoint; both go through one splitting loop, ties broken alike.
//!
//! `--balanced N` is [`balanced_tokens`].

use std::cmp::Ordering;
use std::net::SocketAddr;

use crate::instance::InstanceName;
use crate::keyspace::KeySpace;
use crate::load::RecordedLoad;
use crate::records::tokens_name;
use crate::ring::{Member, Ring, RingError};
use crate::token::Token;
use crate::zone::service::SrvTemplate;
use crate::zone::write::{srv_line, tokens_lines};

/// The planned ring and how it came about.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The old ring with the added instances and their new tokens.
    pub ring: Ring,
    /// Each added instance, in the order given, with its tokens.
    pub added: Vec<PlannedInstance>,
    /// The key space whose primary moves: the added instances' share of the
    /// planned ring.
    pub moved_primary: KeySpace,
}

/// An instance that joins the ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedInstance {
    /// `host:port`.
    pub name: InstanceName,
    /// Where it will be reached (as the planned ring's fingerprint needs it).
    pub addr: SocketAddr,
    /// Its tokens, in the order they were handed out, with the range each
    /// split.
    pub splits: Vec<Split>,
}

/// One new token: the range it split and whose range that was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// The new token: the range's midpoint (by load: its request median).
    pub token: Token,
    /// The range split, `(after, through]`; `after == through` for the whole
    /// ring of a ring with one token.
    pub after: Token,
    /// Its end.
    pub through: Token,
    /// Who owned it (as primary) until then, and keeps `(token, through]`.
    pub from: InstanceName,
}

/// Why no plan can be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The ring has no token: there is no range to split.
    #[error("the ring has no tokens, so there is no range to split: for a fresh ring use `ring plan --balanced N`")]
    EmptyRing,
    /// No instance to add.
    #[error("no instance to add")]
    NothingToAdd,
    /// An added instance already holds tokens.
    #[error("{0} is already in the ring")]
    AlreadyInRing(InstanceName),
    /// An instance given twice.
    #[error("{0} is added twice")]
    AddedTwice(InstanceName),
    /// Every range is a single position.
    #[error("no range of the ring has room for another token")]
    NoRoom,
    /// The planned ring cannot be built.
    #[error(transparent)]
    Ring(#[from] RingError),
}

/// Plans adding `additions` (name and address, in order) to `ring`, with
/// `tokens_each` tokens each.
///
/// # Errors
///
/// [`PlanError`]: an empty ring, an instance already in it or given twice,
/// nothing to add, or a planned ring too large to build.
pub fn plan(
    ring: &Ring,
    additions: &[(InstanceName, SocketAddr)],
    tokens_each: u32,
) -> Result<Plan, PlanError> {
    let size = |after, through| KeySpace::of_range(after, through);
    let midpoint = |after: Token, through| {
        let (lower, _) = KeySpace::of_range(after, through).halves();
        let step = lower.as_u128().filter(|&step| step > 0)?;
        Some(Token(after.0.wrapping_add(step)))
    };
    let added = split_ranges(ring, additions, tokens_each, size, Ord::cmp, midpoint)?;
    finish(ring, added)
}

/// Plans as [`plan`] does, but by the requests `load` recorded on `ring`
/// rather than by key space: each token splits the busiest range at its
/// request median ([`RecordedLoad::median`]), so that the new instance
/// takes half of that range's requests, not half of its keys. Under a
/// skewed load this balances requests with fewer tokens, and so fewer
/// moved keys, than splitting the largest range at its midpoint.
///
/// # Errors
///
/// As [`plan`]; [`PlanError::NoRoom`] when the busiest range has no
/// position inside it to split at.
pub fn plan_by_load(
    ring: &Ring,
    additions: &[(InstanceName, SocketAddr)],
    tokens_each: u32,
    load: &RecordedLoad,
) -> Result<Plan, PlanError> {
    let requests = |after, through| load.between(after, through);
    let median = |after, through| load.median(after, through);
    let added = split_ranges(
        ring,
        additions,
        tokens_each,
        requests,
        f64::total_cmp,
        median,
    )?;
    finish(ring, added)
}

/// A range of the ring being planned, and its weight (its size, or its
/// requests).
struct Weighed<W> {
    weight: W,
    after: Token,
    through: Token,
    owner: InstanceName,
}

/// Hands out `tokens_each` tokens to each of `additions` in order: each
/// splits the heaviest range of the ring so far (by `weight`, compared
/// with `compare`) at `split_at`, the new instance taking the lower part
/// `(after, token]`. Of equally heavy ranges, one the receiver does not own
/// already is split (a token inside its own range would change nothing),
/// then the first in ring order (the smallest `through`).
fn split_ranges<W>(
    ring: &Ring,
    additions: &[(InstanceName, SocketAddr)],
    tokens_each: u32,
    weight: impl Fn(Token, Token) -> W,
    compare: impl Fn(&W, &W) -> Ordering,
    split_at: impl Fn(Token, Token) -> Option<Token>,
) -> Result<Vec<PlannedInstance>, PlanError> {
    check_additions(ring, additions, tokens_each)?;
    let mut ranges: Vec<Weighed<W>> = ring
        .ranges()
        .filter_map(|range| {
            Some(Weighed {
                weight: weight(range.after, range.through),
                after: range.after,
                through: range.through,
                owner: ring.instance(range.owner)?.name().clone(),
            })
        })
        .collect();
    let mut added = Vec::with_capacity(additions.len());
    for (name, addr) in additions {
        let mut splits = Vec::new();
        for _ in 0..tokens_each {
            let heaviest = ranges
                .iter()
                .enumerate()
                .max_by(|(_, a), (_, b)| {
                    compare(&a.weight, &b.weight)
                        .then_with(|| (&b.owner == name).cmp(&(&a.owner == name)))
                        .then_with(|| b.through.cmp(&a.through))
                })
                .map(|(index, _)| index)
                .ok_or(PlanError::NoRoom)?;
            let range = ranges.swap_remove(heaviest);
            let token = split_at(range.after, range.through).ok_or(PlanError::NoRoom)?;
            splits.push(Split {
                token,
                after: range.after,
                through: range.through,
                from: range.owner.clone(),
            });
            ranges.push(Weighed {
                weight: weight(range.after, token),
                after: range.after,
                through: token,
                owner: name.clone(),
            });
            ranges.push(Weighed {
                weight: weight(token, range.through),
                after: token,
                through: range.through,
                owner: range.owner,
            });
        }
        added.push(PlannedInstance {
            name: name.clone(),
            addr: *addr,
            splits,
        });
    }
    Ok(added)
}

/// Refuses what no plan can be made of: an empty ring, nothing to add, an
/// instance already in the ring or given twice.
fn check_additions(
    ring: &Ring,
    additions: &[(InstanceName, SocketAddr)],
    tokens_each: u32,
) -> Result<(), PlanError> {
    if ring.is_empty() {
        return Err(PlanError::EmptyRing);
    }
    if additions.is_empty() || tokens_each == 0 {
        return Err(PlanError::NothingToAdd);
    }
    for (index, (name, _)) in additions.iter().enumerate() {
        if ring
            .instances()
            .iter()
            .any(|instance| instance.name() == name)
        {
            return Err(PlanError::AlreadyInRing(name.clone()));
        }
        if additions[..index].iter().any(|(known, _)| known == name) {
            return Err(PlanError::AddedTwice(name.clone()));
        }
    }
    Ok(())
}

/// The plan of `ring` with `added`: the planned ring, and the key space
/// whose primary moves (the added instances' share of it).
fn finish(ring: &Ring, added: Vec<PlannedInstance>) -> Result<Plan, PlanError> {
    let mut members: Vec<Member> = ring
        .instances()
        .iter()
        .map(|instance| Member {
            name: instance.name().clone(),
            addr: instance.addr(),
            tokens: instance.tokens().to_vec(),
        })
        .collect();
    members.extend(added.iter().map(|instance| Member {
        name: instance.name.clone(),
        addr: instance.addr,
        tokens: instance.tokens(),
    }));
    let planned = Ring::build(members, ring.replication())?;
    let moved_primary = planned
        .ranges()
        .filter(|range| {
            planned
                .instance(range.owner)
                .is_some_and(|owner| added.iter().any(|instance| &instance.name == owner.name()))
        })
        .map(|range| KeySpace::of_range(range.after, range.through))
        .sum();
    Ok(Plan {
        ring: planned,
        added,
        moved_primary,
    })
}

// === impl PlannedInstance ===

impl PlannedInstance {
    /// Its tokens, in the order handed out.
    pub fn tokens(&self) -> Vec<Token> {
        self.splits.iter().map(|split| split.token).collect()
    }

    /// The SRV target: the host with the final dot.
    pub fn target(&self) -> String {
        format!("{}.", self.name.host())
    }

    /// The records to publish for it, as master-file lines with absolute
    /// names: its SRV record at `service` (absolute), with the TTL, priority
    /// and weight of `template`, then the TXT record(s) of its tokens, with
    /// the same TTL. Its address records are the operator's.
    pub fn records(&self, service: &str, template: SrvTemplate) -> Vec<String> {
        let target = self.target();
        let port = self.name.port();
        let mut lines = vec![srv_line(
            service,
            template.ttl,
            template.priority,
            template.weight,
            port,
            &target,
        )];
        let mut tokens = self.tokens();
        tokens.sort_unstable();
        lines.extend(tokens_lines(
            &tokens_name(port, &target),
            template.ttl,
            &tokens,
        ));
        lines
    }
}

/// The `i`-th of `n` evenly spaced tokens (`i` from 1 to `n`):
/// `floor(i × 2^128 / n) − 1`, the rule of `ring plan --balanced N`. The
/// `n`-th is the top of the ring, `2^128 − 1`.
///
/// # Panics
///
/// When `n` is 0 or `i` is not in `1..=n`.
pub fn balanced_token(i: u64, n: u64) -> Token {
    assert!(n > 0 && (1..=n).contains(&i), "token {i} of {n}");
    let (i, n) = (u128::from(i), u128::from(n));
    // 2^128 = quotient × n + remainder, found without 2^128 itself:
    // 2^128 − 1 = u128::MAX = q × n + r, so 2^128 = q × n + (r + 1), and
    // r + 1 may be n itself. For n = 1 the quotient is 2^128, which wraps
    // to 0; the arithmetic below is modulo 2^128 and stays exact.
    let (quotient, remainder) = if u128::MAX % n + 1 == n {
        ((u128::MAX / n).wrapping_add(1), 0)
    } else {
        (u128::MAX / n, u128::MAX % n + 1)
    };
    // i × 2^128 = i × quotient × n + i × remainder, so
    // floor(i × 2^128 / n) = i × quotient + floor(i × remainder / n), where
    // i × remainder < n² < 2^128 since n < 2^64. The result minus one lies
    // in 0..2^128, so computing modulo 2^128 (which wraps only for i = n,
    // where the floor is 2^128 itself) gives it exactly.
    Token(
        i.wrapping_mul(quotient)
            .wrapping_add(i * remainder / n)
            .wrapping_sub(1),
    )
}

/// `n` evenly spaced tokens, ascending: [`balanced_token`] for `i` from 1 to
/// `n`. Lazy, so a large `n` streams.
pub fn balanced_tokens(n: u64) -> impl Iterator<Item = Token> {
    (1..=n).map(move |i| balanced_token(i, n))
}

#[cfg(test)]
mod tests;
