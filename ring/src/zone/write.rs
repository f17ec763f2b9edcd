//! Records as master-file lines, with absolute names, one record per line
//! so that each line is also valid after `update add` in `nsupdate`.

use crate::token::Token;

/// The most tokens in one TXT character-string: 7 × 33 bytes fit in 255.
pub const TOKENS_PER_STRING: usize = 7;

/// The most character-strings in one TXT record written here, so that a
/// record stays well below the 65,535 bytes of RDATA (256 × 232 bytes).
pub const STRINGS_PER_RECORD: usize = 256;

/// `NAME TTL IN TYPE DATA`, the TTL left out when unknown (the zone's
/// `$TTL` then applies).
fn line(name: &str, ttl: Option<u32>, kind: &str, data: &str) -> String {
    match ttl {
        Some(ttl) => format!("{name} {ttl} IN {kind} {data}"),
        None => format!("{name} IN {kind} {data}"),
    }
}

/// An SRV record.
pub fn srv_line(
    service: &str,
    ttl: Option<u32>,
    priority: u16,
    weight: u16,
    port: u16,
    target: &str,
) -> String {
    line(
        service,
        ttl,
        "SRV",
        &format!("{priority} {weight} {port} {target}"),
    )
}

/// The TXT records that publish `tokens` at `name`: up to
/// [`TOKENS_PER_STRING`] tokens per string, as 32 hex digits, and up to
/// [`STRINGS_PER_RECORD`] strings per record. Every word of every record at
/// the name is a token (SPEC §3), so splitting changes nothing.
pub fn tokens_lines(name: &str, ttl: Option<u32>, tokens: &[Token]) -> Vec<String> {
    let strings: Vec<String> = tokens
        .chunks(TOKENS_PER_STRING)
        .map(|chunk| {
            let words: Vec<String> = chunk.iter().map(ToString::to_string).collect();
            quote(words.join(" ").as_bytes())
        })
        .collect();
    strings
        .chunks(STRINGS_PER_RECORD)
        .map(|record| line(name, ttl, "TXT", &record.join(" ")))
        .collect()
}

/// A character-string in master-file syntax: quoted, with `"` and `\`
/// escaped, and bytes outside printable ASCII as `\DDD`.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &byte in bytes {
        match byte {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(byte));
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("\\{byte:03}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::{RecordData, Zone};

    #[test]
    fn lines_parse_back() {
        let tokens: Vec<Token> = (1..=20u128).map(|i| Token(i << 100)).collect();
        let mut text = srv_line(
            "_s._tcp.example.com.",
            Some(60),
            10,
            50,
            8081,
            "a.example.com.",
        );
        text.push('\n');
        for record in tokens_lines("tokens.8081.a.example.com.", Some(60), &tokens) {
            text.push_str(&record);
            text.push('\n');
        }
        text.push_str(&tokens_lines("t.example.com.", None, &tokens[..1])[0]);
        let zone = Zone::parse(&format!("$TTL 5\n{text}")).unwrap();
        let records = zone.records();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].ttl, Some(60));
        let RecordData::Txt(strings) = &records[1].data else {
            panic!("a TXT record")
        };
        assert_eq!(strings.len(), 3, "20 tokens in strings of 7");
        let words: Vec<Token> =
            crate::records::parse_tokens(strings.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(words, tokens);
        assert_eq!(records[2].ttl, Some(5), "no TTL written: $TTL applies");
    }

    #[test]
    fn many_tokens_take_several_records() {
        let tokens: Vec<Token> = (0..(TOKENS_PER_STRING * STRINGS_PER_RECORD + 1) as u128)
            .map(Token)
            .collect();
        let lines = tokens_lines("t.", Some(1), &tokens);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].ends_with(&format!("\"{}\"", Token(tokens.len() as u128 - 1))));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(br#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote(b"x\ny\xff"), r#""x\010y\255""#);
    }
}
