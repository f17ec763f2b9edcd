//! The TXT strings at `tokens.<port>.<target>` (SPEC §3). The input is
//! cut into character-strings at each NUL byte (a NUL inside a string is
//! not a hex digit either way).
//!
//! Properties: the tokens are the words of the strings, in order; tokens
//! written as zone-file records (what `ring plan` prints) read back as the
//! same tokens, in strings of at most 255 bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shardproxy_ring::records::parse_tokens;
use shardproxy_ring::zone::{write, RecordData};
use shardproxy_ring::{Token, Zone};

fuzz_target!(|data: &[u8]| {
    let strings: Vec<&[u8]> = data.split(|&byte| byte == 0).collect();
    let Ok(tokens) = parse_tokens(strings.iter().copied()) else {
        return;
    };
    let words: Vec<&[u8]> = strings
        .iter()
        .flat_map(|string| string.split(u8::is_ascii_whitespace))
        .filter(|word| !word.is_empty())
        .collect();
    assert_eq!(words.len(), tokens.len());
    for (word, token) in words.iter().zip(&tokens) {
        assert_eq!(Token::parse_bytes(word).as_ref(), Ok(token));
    }

    let owner = "tokens.8081.frob1.example.com.";
    let zone_text = write::tokens_lines(owner, Some(60), &tokens).join("\n");
    let zone = match Zone::parse(&zone_text) {
        Ok(zone) => zone,
        Err(error) => panic!("written records do not parse: {error}\n{zone_text}"),
    };
    let mut read_back = Vec::new();
    for record in zone.records_at(owner) {
        let RecordData::Txt(strings) = &record.data else {
            panic!("not a TXT record: {record:?}");
        };
        assert!(strings.iter().all(|string| string.len() <= 255));
        read_back.extend(parse_tokens(strings.iter().map(Vec::as_slice)).unwrap_or_default());
    }
    assert_eq!(read_back, tokens);
});
