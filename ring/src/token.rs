//! Positions on the ring and the text form of tokens (SPEC §2).
//!
//! A key's position and an instance's token are the same kind of value: an
//! unsigned 128-bit integer. Token text is 1 to 32 hex digits; short text is
//! the *leading* digits of the position, so `"4"`, `"40"` and `"400"` all
//! name a quarter of the ring. That makes hand-written tokens in zone files
//! short and readable.

use std::fmt;
use std::str::FromStr;

use xxhash_rust::xxh3::xxh3_128;

/// A point on the ring: the hash of a key, or an instance's token.
///
/// Displayed as 32 lowercase hex digits, most significant first, which is
/// also the form tokens take in the fingerprint and in zone files we print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub u128);

/// Why a word is not a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The word was empty.
    #[error("empty token: a token is 1 to 32 hex digits")]
    Empty,
    /// More than 32 characters.
    #[error("token {text:?} has {len} characters: a token is 1 to 32 hex digits")]
    TooLong {
        /// The word as given (lossily decoded when not UTF-8).
        text: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A character outside `0-9a-fA-F`.
    #[error("token {text:?} has {found:?} at offset {offset}: a token is 1 to 32 hex digits (0-9, a-f, A-F)")]
    BadDigit {
        /// The word as given (lossily decoded when not UTF-8).
        text: String,
        /// The first offending character (or U+FFFD for a non-UTF-8 byte).
        found: char,
        /// Its byte offset in the word.
        offset: usize,
    },
}

// === impl Token ===

impl Token {
    /// The position of a key: XXH3-128 (seed 0) of its bytes.
    #[inline]
    pub fn of_key(key: &[u8]) -> Token {
        Token(xxh3_128(key))
    }

    /// Parses token text given as bytes, as it arrives in a TXT record.
    ///
    /// # Errors
    ///
    /// [`TokenError`] when the word is empty, longer than 32 characters or
    /// holds anything but hex digits.
    pub fn parse_bytes(word: &[u8]) -> Result<Token, TokenError> {
        let lossy = || String::from_utf8_lossy(word).into_owned();
        if word.is_empty() {
            return Err(TokenError::Empty);
        }
        if word.len() > 32 {
            return Err(TokenError::TooLong {
                text: lossy(),
                len: word.len(),
            });
        }
        let mut value: u128 = 0;
        for (offset, &byte) in word.iter().enumerate() {
            let digit = match byte {
                b'0'..=b'9' => byte - b'0',
                b'a'..=b'f' => byte - b'a' + 10,
                b'A'..=b'F' => byte - b'A' + 10,
                _ => {
                    let found = std::str::from_utf8(&word[offset..])
                        .ok()
                        .and_then(|rest| rest.chars().next())
                        .unwrap_or(char::REPLACEMENT_CHARACTER);
                    return Err(TokenError::BadDigit {
                        text: lossy(),
                        found,
                        offset,
                    });
                }
            };
            value = (value << 4) | u128::from(digit);
        }
        // Right-pad: the digits given are the leading digits of the position.
        let missing_bits = 4 * (32 - word.len() as u32);
        Ok(Token(value.checked_shl(missing_bits).unwrap_or(0)))
    }
}

impl FromStr for Token {
    type Err = TokenError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Token::parse_bytes(text.as_bytes())
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_vector() {
        assert_eq!(
            Token::of_key(b"hello").to_string(),
            "b5e9c1ad071b3e7fc779cfaa5e523818"
        );
    }

    #[test]
    fn short_tokens_are_right_padded() {
        let quarter = Token(0x4000_0000_0000_0000_0000_0000_0000_0000);
        assert_eq!("4".parse::<Token>(), Ok(quarter));
        assert_eq!("40".parse::<Token>(), Ok(quarter));
        assert_eq!("400".parse::<Token>(), Ok(quarter));
        assert_eq!(
            "c1".parse::<Token>(),
            Ok(Token(0xc100_0000_0000_0000_0000_0000_0000_0000))
        );
        assert_eq!("0".parse::<Token>(), Ok(Token(0)));
    }

    #[test]
    fn full_tokens_round_trip() {
        let text = "00112233445566778899aabbccddeeff";
        let token: Token = text.parse().unwrap();
        assert_eq!(token.0, 0x0011_2233_4455_6677_8899_aabb_ccdd_eeff);
        assert_eq!(token.to_string(), text);
        assert_eq!(
            "00112233445566778899AABBCCDDEEFF".parse::<Token>(),
            Ok(token)
        );
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for bad in ["", "0x40", "-1", "+1", "4_0", "g", " 40", "40 ", "é"] {
            assert!(bad.parse::<Token>().is_err(), "{bad:?} was accepted");
        }
        let too_long = "0".repeat(33);
        assert_eq!(
            too_long.parse::<Token>(),
            Err(TokenError::TooLong {
                text: too_long.clone(),
                len: 33
            })
        );
        assert!(Token::parse_bytes(b"4\xff").is_err());
    }

    #[test]
    fn bad_digit_error_names_the_character() {
        let err = "12x4".parse::<Token>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "token \"12x4\" has 'x' at offset 2: a token is 1 to 32 hex digits (0-9, a-f, A-F)"
        );
    }
}
