//! Amounts of key space, counted exactly.
//!
//! The ring has 2^128 positions, one more than a `u128` can count to, and
//! the shares that `ring diff` and `ring plan` report are sums of ranges
//! that may add up to the whole ring. Summing them as floats would make two
//! computations of the same share disagree in the last bit; counting
//! positions makes them equal exactly, and only the final report is a float.

use crate::token::Token;

/// A number of positions of the ring, from 0 to 2^128 inclusive.
///
/// Ordered by size. The derived ordering is correct because `whole` is only
/// set with `below` at zero: the value is `whole × 2^128 + below`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeySpace {
    /// Set for exactly 2^128 positions: the whole ring.
    whole: bool,
    /// The count, when below 2^128.
    below: u128,
}

/// 2^128 as a float; exact.
const RING_SIZE_F64: f64 = 340_282_366_920_938_463_463_374_607_431_768_211_456.0;

// === impl KeySpace ===

impl KeySpace {
    /// No position.
    pub const ZERO: KeySpace = KeySpace {
        whole: false,
        below: 0,
    };

    /// Every position: 2^128.
    pub const WHOLE: KeySpace = KeySpace {
        whole: true,
        below: 0,
    };

    /// `positions` positions (fewer than 2^128).
    pub const fn positions(positions: u128) -> KeySpace {
        KeySpace {
            whole: false,
            below: positions,
        }
    }

    /// The size of the range `(after, through]`, wrapping around the top of
    /// the ring when `after > through`. As in [`crate::Range`], a range
    /// whose ends are equal is the whole ring (a ring with a single token).
    pub fn of_range(after: Token, through: Token) -> KeySpace {
        if after == through {
            KeySpace::WHOLE
        } else {
            KeySpace::positions(through.0.wrapping_sub(after.0))
        }
    }

    /// The count when it is below 2^128; `None` for the whole ring.
    pub fn as_u128(self) -> Option<u128> {
        (!self.whole).then_some(self.below)
    }

    /// True when no position is counted.
    pub fn is_zero(self) -> bool {
        self == KeySpace::ZERO
    }

    /// The sum, or `None` above 2^128 (which disjoint ranges never reach).
    pub fn checked_add(self, other: KeySpace) -> Option<KeySpace> {
        match (self.whole, other.whole) {
            (true, _) => other.is_zero().then_some(self),
            (false, true) => self.is_zero().then_some(other),
            (false, false) => Some(match self.below.checked_add(other.below) {
                Some(below) => KeySpace::positions(below),
                // Two values below 2^128 sum to below 2^129; the only carry
                // that stays in range lands exactly on 2^128.
                None if self.below.wrapping_add(other.below) == 0 => KeySpace::WHOLE,
                None => return None,
            }),
        }
    }

    /// The sum, capped at the whole ring.
    pub fn saturating_add(self, other: KeySpace) -> KeySpace {
        self.checked_add(other).unwrap_or(KeySpace::WHOLE)
    }

    /// The two parts of a range of this size split at its midpoint: the
    /// lower half rounded down, and the rest.
    pub fn halves(self) -> (KeySpace, KeySpace) {
        if self.whole {
            let half = KeySpace::positions(1 << 127);
            (half, half)
        } else {
            let lower = self.below / 2;
            (
                KeySpace::positions(lower),
                KeySpace::positions(self.below - lower),
            )
        }
    }

    /// The share of the ring, in `[0, 1]`: what the commands print.
    pub fn fraction(self) -> f64 {
        if self.whole {
            1.0
        } else {
            self.below as f64 / RING_SIZE_F64
        }
    }
}

impl std::iter::Sum for KeySpace {
    /// Sums, capped at the whole ring.
    fn sum<I: Iterator<Item = KeySpace>>(iter: I) -> KeySpace {
        iter.fold(KeySpace::ZERO, KeySpace::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_the_whole_ring() {
        assert_eq!(KeySpace::of_range(Token(5), Token(5)), KeySpace::WHOLE);
        assert_eq!(
            KeySpace::of_range(Token(5), Token(9)),
            KeySpace::positions(4)
        );
        // Wrapping: (MAX - 1, 2] holds MAX, 0, 1, 2.
        assert_eq!(
            KeySpace::of_range(Token(u128::MAX - 1), Token(2)),
            KeySpace::positions(4)
        );
        assert_eq!(KeySpace::WHOLE.fraction(), 1.0);
        assert_eq!(KeySpace::positions(1 << 126).fraction(), 0.25);
        assert_eq!(KeySpace::WHOLE.as_u128(), None);
    }

    #[test]
    fn sums_reach_the_whole_ring_exactly() {
        let half = KeySpace::positions(1 << 127);
        assert_eq!(half.checked_add(half), Some(KeySpace::WHOLE));
        assert_eq!(KeySpace::WHOLE.checked_add(KeySpace::positions(1)), None);
        assert_eq!(
            KeySpace::WHOLE.checked_add(KeySpace::ZERO),
            Some(KeySpace::WHOLE)
        );
        assert_eq!(
            KeySpace::positions(u128::MAX).checked_add(KeySpace::positions(2)),
            None
        );
        let quarters: KeySpace = (0..4).map(|_| KeySpace::positions(1 << 126)).sum();
        assert_eq!(quarters, KeySpace::WHOLE);
        assert!(KeySpace::positions(u128::MAX) < KeySpace::WHOLE);
        assert_eq!(KeySpace::WHOLE.halves(), (half, half));
        assert_eq!(
            KeySpace::positions(7).halves(),
            (KeySpace::positions(3), KeySpace::positions(4))
        );
    }
}
