//! Property tests of the zone-file reader: it never panics, whatever the
//! text, and what the writer writes reads back as written.

// Every item here is test code.
#![cfg(test)]

use proptest::prelude::*;
use shardproxy_ring::zone::write::{quote, srv_line, tokens_lines};
use shardproxy_ring::zone::{RecordData, Srv, Zone};
use shardproxy_ring::Token;

/// Text made mostly of the characters that matter to the syntax.
fn zone_like_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("$ORIGIN ".to_owned()),
        Just("$TTL ".to_owned()),
        Just("@".to_owned()),
        Just(" IN ".to_owned()),
        Just(" SRV ".to_owned()),
        Just(" TXT ".to_owned()),
        Just(" A ".to_owned()),
        Just(" AAAA ".to_owned()),
        Just("example.com.".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("\t".to_owned()),
        Just(";".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("\"".to_owned()),
        Just("\\".to_owned()),
        Just(".".to_owned()),
        Just("1h".to_owned()),
        (0u32..10_000).prop_map(|n| n.to_string()),
        prop::collection::vec(
            prop::sample::select(vec!['a', 'z', 'é', '\\', '"', '(', ')', ';', '.', ' ']),
            1..6
        )
        .prop_map(|chars| chars.into_iter().collect()),
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any text gives records or an error with a line inside the text.
    #[test]
    fn never_panics(text in zone_like_text()) {
        match Zone::parse(&text) {
            Ok(zone) => {
                for record in zone.records() {
                    prop_assert!(record.name.ends_with('.'), "{:?}", record);
                    prop_assert!(record.line >= 1);
                }
            }
            Err(error) => {
                let lines = text.split('\n').count();
                prop_assert!((1..=lines).contains(&error.line), "{} in {} lines", error, lines);
            }
        }
    }

    /// TXT strings of any bytes, quoted by the writer, read back the same.
    #[test]
    fn quoted_strings_round_trip(
        strings in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..255), 1..5),
    ) {
        let data: Vec<String> = strings.iter().map(|s| quote(s)).collect();
        let text = format!("t.example. 1 IN TXT {}\n", data.join(" "));
        let zone = Zone::parse(&text).unwrap();
        prop_assert_eq!(&zone.records()[0].data, &RecordData::Txt(strings));
    }

    /// SRV and token records as `ring plan` writes them read back the same.
    #[test]
    fn plan_records_round_trip(
        priority in any::<u16>(),
        weight in any::<u16>(),
        port in any::<u16>(),
        ttl in prop::option::of(any::<u32>()),
        tokens in prop::collection::vec(any::<u128>(), 1..40),
    ) {
        let tokens: Vec<Token> = tokens.into_iter().map(Token).collect();
        let mut text = String::from("$TTL 7\n");
        text.push_str(&srv_line("_s._tcp.example.", ttl, priority, weight, port, "a.example."));
        text.push('\n');
        for line in tokens_lines("tokens.1.a.example.", ttl, &tokens) {
            text.push_str(&line);
            text.push('\n');
        }
        let zone = Zone::parse(&text).unwrap();
        let records = zone.records();
        prop_assert_eq!(
            &records[0].data,
            &RecordData::Srv(Srv { priority, weight, port, target: "a.example.".to_owned() })
        );
        prop_assert_eq!(records[0].ttl, Some(ttl.unwrap_or(7)));
        let mut read = Vec::new();
        for record in &records[1..] {
            let RecordData::Txt(strings) = &record.data else {
                return Err(TestCaseError::fail("not TXT"));
            };
            prop_assert!(strings.iter().all(|s| s.len() <= 255));
            read.extend(
                shardproxy_ring::records::parse_tokens(strings.iter().map(Vec::as_slice)).unwrap(),
            );
        }
        prop_assert_eq!(read, tokens);
    }
}
