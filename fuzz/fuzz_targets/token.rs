//! Token text (SPEC §2) as it arrives in a TXT word: any bytes.
//!
//! Properties: a token parses exactly when the word is 1 to 32 hex digits;
//! its canonical text (32 lowercase digits) starts with the word's digits
//! in lower case and parses back to the same token.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shardproxy_ring::Token;

fuzz_target!(|word: &[u8]| {
    let is_token_text = (1..=32).contains(&word.len()) && word.iter().all(u8::is_ascii_hexdigit);
    match Token::parse_bytes(word) {
        Ok(token) => {
            assert!(is_token_text, "{word:?} parsed as {token}");
            let canonical = token.to_string();
            assert_eq!(canonical.len(), 32);
            assert!(canonical.as_bytes().starts_with(&word.to_ascii_lowercase()));
            assert_eq!(canonical.parse::<Token>(), Ok(token));
        }
        Err(error) => {
            assert!(!is_token_text, "{word:?} rejected: {error}");
            assert!(!error.to_string().is_empty());
        }
    }
});
