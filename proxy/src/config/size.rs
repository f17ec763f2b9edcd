//! Sizes: `"64KiB"`, `"256MiB"`, `"1GB"` (SPEC §4), as a number of bytes.

use super::quantity::{components, QuantityError};

/// What a size looks like, for error messages.
pub(super) const EXPECTED: &str =
    "expected a size: a whole number with a unit B, KiB, MiB, GiB, KB, MB or GB, like \"64KiB\"";

/// Parses a size: one whole number and one unit, binary (`KiB`, `MiB`,
/// `GiB`) or decimal (`KB`, `MB`, `GB`), or `B` for bytes.
///
/// # Errors
///
/// [`QuantityError`] for empty text, a number without a unit (`"1024"`), an
/// unknown unit (units are case-sensitive: `kb` is not a unit), more than
/// one number, a sign, fraction or space, or a size over `u64::MAX` bytes.
pub fn parse_size(text: &str) -> Result<u64, QuantityError> {
    let parts = components(text)?;
    let [(number, unit)] = parts.as_slice() else {
        return Err(QuantityError::Combined);
    };
    let multiplier: u64 = match *unit {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(QuantityError::UnknownUnit {
                unit: other.to_owned(),
            })
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or(QuantityError::Overflow)
}

/// Writes a byte count the way the config takes it, in the largest binary
/// unit that divides it exactly (`"64KiB"`, `"1000B"`), for messages and
/// summaries.
pub fn format_size(bytes: u64) -> String {
    for (unit, per) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= per && bytes % per == 0 {
            return format!("{}{unit}", bytes / per);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("0B"), Ok(0));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("3KB"), Ok(3_000));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("3GB"), Ok(3_000_000_000));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse_size(""), Err(QuantityError::Empty));
        assert_eq!(
            parse_size("1024"),
            Err(QuantityError::MissingUnit {
                number: "1024".into()
            })
        );
        assert_eq!(
            parse_size("64kib"),
            Err(QuantityError::UnknownUnit { unit: "kib".into() })
        );
        assert_eq!(
            parse_size("1TiB"),
            Err(QuantityError::UnknownUnit { unit: "TiB".into() })
        );
        assert_eq!(
            parse_size("64 KiB"),
            Err(QuantityError::UnknownUnit {
                unit: " KiB".into()
            })
        );
        assert_eq!(parse_size("1MiB512KiB"), Err(QuantityError::Combined));
        assert_eq!(parse_size("1.5MiB"), Err(QuantityError::Fraction));
        assert_eq!(
            parse_size("-1B"),
            Err(QuantityError::ExpectedDigit { found: '-' })
        );
        assert_eq!(
            parse_size("MiB"),
            Err(QuantityError::ExpectedDigit { found: 'M' })
        );
    }

    #[test]
    fn overflow() {
        assert_eq!(parse_size("18446744073709551615B"), Ok(u64::MAX));
        assert_eq!(
            parse_size("18446744073709551616B"),
            Err(QuantityError::Overflow)
        );
        assert_eq!(parse_size("17179869184GiB"), Err(QuantityError::Overflow));
    }

    #[test]
    fn formats_round_trip() {
        for text in ["0B", "1000B", "64KiB", "1536KiB", "256MiB", "3GiB"] {
            assert_eq!(format_size(parse_size(text).unwrap()), text);
        }
        assert_eq!(format_size(parse_size("1MB").unwrap()), "1000000B");
    }
}
