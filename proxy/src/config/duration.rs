//! Durations: `"250ms"`, `"30s"`, `"1m30s"`, `"24h"` (SPEC §4).
//!
//! Written by hand rather than taken from a crate so that the accepted
//! syntax is exactly the one the spec names, and nothing more.

use std::time::Duration;

use super::quantity::{components, QuantityError};

/// What a duration looks like, for error messages.
pub(super) const EXPECTED: &str =
    "expected a duration: whole numbers with units ms, s, m, h, like \"30s\" or \"1m30s\"";

/// Parses a duration: one or more whole numbers, each with a unit `ms`, `s`,
/// `m` or `h`, added up (`"1m30s"` is 90 seconds).
///
/// # Errors
///
/// [`QuantityError`] for empty text, a number without a unit (`"30"`), an
/// unknown unit, a sign, fraction or space, or a total that overflows.
pub fn parse_duration(text: &str) -> Result<Duration, QuantityError> {
    let mut total = Duration::ZERO;
    for (number, unit) in components(text)? {
        let seconds_per = match unit {
            "ms" => {
                total = total
                    .checked_add(Duration::from_millis(number))
                    .ok_or(QuantityError::Overflow)?;
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            other => {
                return Err(QuantityError::UnknownUnit {
                    unit: other.to_owned(),
                })
            }
        };
        let seconds = number
            .checked_mul(seconds_per)
            .ok_or(QuantityError::Overflow)?;
        total = total
            .checked_add(Duration::from_secs(seconds))
            .ok_or(QuantityError::Overflow)?;
    }
    Ok(total)
}

/// Writes a duration the way the config takes it (`"1m30s"`, `"250ms"`,
/// `"0s"`), so messages and summaries quote values users can paste back.
/// Anything below a millisecond is left out.
pub fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    for (unit, per) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        let count = millis / per;
        if count > 0 {
            text.push_str(&count.to_string());
            text.push_str(unit);
            millis %= per;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_combinations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("1h2m3s4ms"),
            Ok(Duration::from_millis(3_723_004))
        );
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("007s"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse_duration(""), Err(QuantityError::Empty));
        assert_eq!(
            parse_duration("30"),
            Err(QuantityError::MissingUnit {
                number: "30".into()
            })
        );
        assert_eq!(
            parse_duration("1m30"),
            Err(QuantityError::MissingUnit {
                number: "30".into()
            })
        );
        assert_eq!(
            parse_duration("30sec"),
            Err(QuantityError::UnknownUnit { unit: "sec".into() })
        );
        assert_eq!(
            parse_duration("1d"),
            Err(QuantityError::UnknownUnit { unit: "d".into() })
        );
        assert_eq!(
            parse_duration("30 s"),
            Err(QuantityError::UnknownUnit { unit: " s".into() })
        );
        assert_eq!(
            parse_duration("-5s"),
            Err(QuantityError::ExpectedDigit { found: '-' })
        );
        assert_eq!(
            parse_duration(" 5s"),
            Err(QuantityError::ExpectedDigit { found: ' ' })
        );
        assert_eq!(
            parse_duration("s"),
            Err(QuantityError::ExpectedDigit { found: 's' })
        );
        assert_eq!(parse_duration("1.5s"), Err(QuantityError::Fraction));
    }

    #[test]
    fn overflow() {
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err(QuantityError::Overflow)
        );
        assert_eq!(
            parse_duration("18446744073709551615h"),
            Err(QuantityError::Overflow)
        );
        assert_eq!(
            parse_duration("18446744073709551615s1s"),
            Err(QuantityError::Overflow)
        );
        assert_eq!(
            parse_duration("18446744073709551615s"),
            Ok(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn formats_round_trip() {
        for text in ["0s", "250ms", "30s", "1m30s", "24h", "1h2m3s4ms"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(format_duration(Duration::from_micros(999)), "0s");
    }
}
