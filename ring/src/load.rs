//! Load recorded on a ring: requests per range and per hot key, as a proxy
//! counts them (SPEC §11), and where it falls between any two positions.
//!
//! The model: each hot key's requests sit at its position; the rest of a
//! range's requests (its count less its hot keys') are spread evenly over
//! the range, as a hash spreads keys that are each requested little. That
//! is all a proxy can know without keeping every key, and it is what `ring
//! plan --by-load` splits on and `ring diff --by-load` weighs moves by.

use crate::keyspace::KeySpace;
use crate::token::Token;

/// Requests recorded in one range `(after, through]` of a ring.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RangeLoad {
    /// The range's start (exclusive).
    pub after: Token,
    /// Its end (inclusive): the owner's token.
    pub through: Token,
    /// Requests whose key fell in it.
    pub requests: f64,
}

/// Requests recorded for one key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeyLoad {
    /// The key's position on the ring.
    pub position: Token,
    /// Its requests.
    pub requests: f64,
}

/// The load of a ring as recorded: every range once, and the hot keys.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedLoad {
    /// Ordered by `through`; together they cover the ring once.
    ranges: Vec<Recorded>,
    /// Ordered by position.
    keys: Vec<KeyLoad>,
}

/// A range, with the density of its requests that no hot key explains.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Recorded {
    range: RangeLoad,
    /// Requests per position, spread evenly.
    density: f64,
}

/// Why recorded load cannot be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// No range at all.
    #[error("no range recorded")]
    Empty,
    /// A count that is negative, infinite or not a number.
    #[error("range ending at {0}: requests must be a finite number at least 0")]
    BadCount(Token),
    /// A key's count likewise.
    #[error("key at {0}: requests must be a finite number at least 0")]
    BadKeyCount(Token),
    /// The ranges leave a gap or overlap: `after` of one is not `through`
    /// of the one before.
    #[error("the ranges do not cover the ring once: the range ending at {through} starts after {after}, not after {expected}")]
    NotContiguous {
        /// The range's end.
        through: Token,
        /// Its start.
        after: Token,
        /// The end of the range before it.
        expected: Token,
    },
}

// === impl RecordedLoad ===

impl RecordedLoad {
    /// The load of `ranges` (in any order; each range of the ring once) and
    /// `keys` (the hot keys, each counted in its range too).
    ///
    /// # Errors
    ///
    /// [`LoadError`]: no range, a bad count, or ranges that do not tile
    /// the ring.
    pub fn new(
        mut ranges: Vec<RangeLoad>,
        mut keys: Vec<KeyLoad>,
    ) -> Result<RecordedLoad, LoadError> {
        if ranges.is_empty() {
            return Err(LoadError::Empty);
        }
        ranges.sort_by_key(|range| range.through);
        for (index, range) in ranges.iter().enumerate() {
            if !(range.requests.is_finite() && range.requests >= 0.0) {
                return Err(LoadError::BadCount(range.through));
            }
            let before = ranges[(index + ranges.len() - 1) % ranges.len()].through;
            if range.after != before {
                return Err(LoadError::NotContiguous {
                    through: range.through,
                    after: range.after,
                    expected: before,
                });
            }
        }
        if let Some(bad) = keys
            .iter()
            .find(|key| !(key.requests.is_finite() && key.requests >= 0.0))
        {
            return Err(LoadError::BadKeyCount(bad.position));
        }
        keys.sort_by_key(|key| key.position);
        let ranges = ranges
            .into_iter()
            .map(|range| {
                let hot: f64 = keys
                    .iter()
                    .filter(|key| contains(range.after, range.through, key.position))
                    .map(|key| key.requests)
                    .sum();
                let size = positions(range.after, range.through);
                Recorded {
                    range,
                    density: (range.requests - hot).max(0.0) / size,
                }
            })
            .collect();
        Ok(RecordedLoad { ranges, keys })
    }

    /// Every request recorded.
    pub fn total(&self) -> f64 {
        self.ranges
            .iter()
            .map(|recorded| recorded.range.requests)
            .sum()
    }

    /// The requests that fell in `(after, through]` (the whole ring when
    /// the two are equal).
    pub fn between(&self, after: Token, through: Token) -> f64 {
        let spread: f64 = self
            .ranges
            .iter()
            .map(|recorded| {
                recorded.density
                    * overlap(after, through, recorded.range.after, recorded.range.through)
            })
            .sum();
        let hot: f64 = self
            .keys
            .iter()
            .filter(|key| contains(after, through, key.position))
            .map(|key| key.requests)
            .sum();
        spread + hot
    }

    /// The position that splits `(after, through]` into two parts with as
    /// even a load as can be: the smallest `t` inside the range with at
    /// least half its load in `(after, t]`. `None` when the range has no
    /// position inside it (fewer than two positions).
    pub fn median(&self, after: Token, through: Token) -> Option<Token> {
        let size = KeySpace::of_range(after, through);
        let last = size.as_u128().unwrap_or(u128::MAX).checked_sub(1)?;
        if last == 0 {
            return None;
        }
        let half = self.between(after, through) / 2.0;
        // The load of (after, after + x] grows with x: the smallest offset
        // in 1..=last reaching half, by bisection (128 steps at most).
        let (mut low, mut high) = (1_u128, last);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.between(after, Token(after.0.wrapping_add(middle))) >= half {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        Some(Token(after.0.wrapping_add(low)))
    }
}

/// Whether `(after, through]` holds `position` (every position when the
/// ends are equal).
fn contains(after: Token, through: Token, position: Token) -> bool {
    match after.cmp(&through) {
        std::cmp::Ordering::Less => after < position && position <= through,
        std::cmp::Ordering::Greater => position > after || position <= through,
        std::cmp::Ordering::Equal => true,
    }
}

/// The positions of `(after, through]` as inclusive pieces that do not
/// wrap: one, or two when it wraps around the top (or is the whole ring).
fn pieces(after: Token, through: Token) -> impl Iterator<Item = (u128, u128)> {
    let (after, through) = (after.0, through.0);
    let (first, second) = if after < through {
        (Some((after + 1, through)), None)
    } else {
        let top = (after < u128::MAX).then(|| (after + 1, u128::MAX));
        (top, Some((0, through)))
    };
    first.into_iter().chain(second)
}

/// The number of positions of `(after, through]`, as a float.
fn positions(after: Token, through: Token) -> f64 {
    pieces(after, through)
        .map(|(low, high)| (high - low) as f64 + 1.0)
        .sum()
}

/// The number of positions `(a_after, a_through]` and `(b_after,
/// b_through]` share, as a float.
fn overlap(a_after: Token, a_through: Token, b_after: Token, b_through: Token) -> f64 {
    let mut shared = 0.0;
    for (a_low, a_high) in pieces(a_after, a_through) {
        for (b_low, b_high) in pieces(b_after, b_through) {
            let (low, high) = (a_low.max(b_low), a_high.min(b_high));
            if low <= high {
                shared += (high - low) as f64 + 1.0;
            }
        }
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUARTER: u128 = 1 << 126;

    /// Four equal ranges with `requests` each, and `keys`.
    fn quarters(requests: [f64; 4], keys: Vec<KeyLoad>) -> RecordedLoad {
        let ends = [QUARTER - 1, 2 * QUARTER - 1, 3 * QUARTER - 1, u128::MAX];
        let ranges = (0..4)
            .map(|index| RangeLoad {
                after: Token(ends[(index + 3) % 4]),
                through: Token(ends[index]),
                requests: requests[index],
            })
            .collect();
        RecordedLoad::new(ranges, keys).unwrap()
    }

    #[test]
    fn even_load_is_split_at_the_midpoint_and_counted_by_share() {
        let load = quarters([100.0; 4], Vec::new());
        assert_eq!(load.total(), 400.0);
        let (after, through) = (Token(QUARTER - 1), Token(2 * QUARTER - 1));
        assert!((load.between(after, through) - 100.0).abs() < 1e-6);
        let median = load.median(after, through).unwrap();
        // Counts are floats: the split is exact to about one part in 2^50
        // of the range, far below any key's share.
        assert!(
            median.0.abs_diff(QUARTER - 1 + QUARTER / 2) < QUARTER >> 40,
            "{median:?}"
        );
        // The whole ring, and a range that wraps.
        assert!((load.between(Token(5), Token(5)) - 400.0).abs() < 1e-6);
        let wrapping = load.between(Token(3 * QUARTER - 1), Token(QUARTER - 1));
        assert!((wrapping - 200.0).abs() < 1e-6, "{wrapping}");
    }

    #[test]
    fn a_hot_key_pulls_the_median_to_itself() {
        // 900 of the second range's 1,000 requests are for one key, a
        // tenth of the way into it.
        let hot = Token(QUARTER - 1 + QUARTER / 10);
        let load = quarters(
            [100.0, 1000.0, 100.0, 100.0],
            vec![KeyLoad {
                position: hot,
                requests: 900.0,
            }],
        );
        let (after, through) = (Token(QUARTER - 1), Token(2 * QUARTER - 1));
        assert_eq!(load.median(after, through), Some(hot));
        assert!((load.between(after, hot) - 910.0).abs() < 1e-6);
        assert!((load.between(hot, through) - 90.0).abs() < 1e-6);
    }

    #[test]
    fn ranges_must_tile_the_ring_with_sane_counts() {
        let range = |after, through, requests| RangeLoad {
            after: Token(after),
            through: Token(through),
            requests,
        };
        assert_eq!(
            RecordedLoad::new(Vec::new(), Vec::new()),
            Err(LoadError::Empty)
        );
        assert_eq!(
            RecordedLoad::new(vec![range(10, 20, 1.0), range(30, 10, 1.0)], Vec::new()),
            Err(LoadError::NotContiguous {
                through: Token(10),
                after: Token(30),
                expected: Token(20),
            })
        );
        assert!(
            RecordedLoad::new(vec![range(10, 20, 1.0), range(20, 10, -1.0)], Vec::new()).is_err()
        );
        assert!(
            RecordedLoad::new(vec![range(10, 20, 1.0), range(20, 10, 1.0)], Vec::new()).is_ok()
        );
    }
}
