//! The lexer that durations and sizes share: whole numbers, each followed by
//! a unit (`"1m30s"`, `"64KiB"`), with no sign, fraction or white space.
//!
//! A number without a unit is an error on purpose: `refresh = "30"` could
//! mean seconds or milliseconds, and a config must not be guessed at.

/// Why a duration or size text is malformed. The message says what is wrong
/// with the text; the caller adds what form was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text was empty.
    #[error("empty")]
    Empty,
    /// A number at the end of the text had no unit after it.
    #[error("{number} has no unit")]
    MissingUnit {
        /// The number as written.
        number: String,
    },
    /// A character where a number had to start (a sign, a space, a letter).
    #[error("expected a digit, found {found:?}")]
    ExpectedDigit {
        /// The offending character.
        found: char,
    },
    /// A decimal point: only whole numbers are taken.
    #[error("fractions are not supported, use a smaller unit")]
    Fraction,
    /// A unit this kind of quantity does not know.
    #[error("unknown unit {unit:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
    },
    /// More than one number/unit pair where only one is allowed (sizes).
    #[error("only one number and unit is allowed")]
    Combined,
    /// The value does not fit.
    #[error("too large")]
    Overflow,
}

/// Splits `text` into `(number, unit)` pairs: a run of ASCII digits, then
/// everything up to the next digit. Units are checked by the caller.
pub(super) fn components(text: &str) -> Result<Vec<(u64, &str)>, QuantityError> {
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(first) = rest.chars().next() {
        if !first.is_ascii_digit() {
            return Err(QuantityError::ExpectedDigit { found: first });
        }
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        if unit.is_empty() {
            return Err(QuantityError::MissingUnit {
                number: digits.to_owned(),
            });
        }
        if unit.starts_with('.') || unit.starts_with(',') {
            return Err(QuantityError::Fraction);
        }
        // Only ASCII digits remain, so the one way to fail is overflow.
        let number = digits.parse().map_err(|_| QuantityError::Overflow)?;
        parts.push((number, unit));
        rest = next;
    }
    Ok(parts)
}
