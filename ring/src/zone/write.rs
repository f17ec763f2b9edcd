//! Records as master-file lines, with absolute names, one record per line
//! so that each line is also valid after `update add` in `nsupdate`.

use super::RecordData;
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

/// Any record the zone reader keeps, as one line: `ring publish` prints
/// the records it deletes and adds this way.
pub fn record_line(name: &str, ttl: Option<u32>, data: &RecordData) -> String {
    match data {
        RecordData::A(addr) => line(name, ttl, "A", &addr.to_string()),
        RecordData::Aaaa(addr) => line(name, ttl, "AAAA", &addr.to_string()),
        RecordData::Srv(srv) => {
            srv_line(name, ttl, srv.priority, srv.weight, srv.port, &srv.target)
        }
        RecordData::Txt(strings) => {
            let strings: Vec<String> = strings.iter().map(|string| quote(string)).collect();
            line(name, ttl, "TXT", &strings.join(" "))
        }
    }
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
    fn any_record_parses_back() {
        let text = "a.example. 5 IN A 10.0.0.1\n\
                    a.example. 5 IN AAAA ::1\n\
                    s.example. 5 IN SRV 1 2 3 a.example.\n\
                    t.example. 5 IN TXT \"x y\" \"q\\\"\"\n";
        let zone = Zone::parse(text).unwrap();
        let lines: Vec<String> = zone
            .records()
            .iter()
            .map(|record| record_line(&record.name, record.ttl, &record.data))
            .collect();
        assert_eq!(lines.join("\n") + "\n", text);
        assert_eq!(
            record_line("t.", None, &RecordData::Txt(vec![b"1".to_vec()])),
            "t. IN TXT \"1\""
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(br#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote(b"x\ny\xff"), r#""x\010y\255""#);
    }
}
