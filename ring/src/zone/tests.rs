use super::*;

fn parse(text: &str) -> Zone {
    match Zone::parse(text) {
        Ok(zone) => zone,
        Err(error) => panic!("{error}\n{text}"),
    }
}

fn error(text: &str) -> ZoneError {
    match Zone::parse(text) {
        Ok(zone) => panic!("parsed: {zone:?}\n{text}"),
        Err(error) => error,
    }
}

fn names(zone: &Zone) -> Vec<&str> {
    zone.records()
        .iter()
        .map(|record| record.name.as_str())
        .collect()
}

fn txt(record: &ZoneRecord) -> Vec<&[u8]> {
    match &record.data {
        RecordData::Txt(strings) => strings.iter().map(Vec::as_slice).collect(),
        other => panic!("not TXT: {other:?}"),
    }
}

#[test]
fn origin_relative_absolute_and_at() {
    let zone = parse(
        "$ORIGIN example.com.\n\
         @ 1 IN A 10.0.0.1\n\
         www 1 IN A 10.0.0.2\n\
         Other.Example.NET. 1 IN A 10.0.0.3\n\
         $ORIGIN sub\n\
         x 1 IN A 10.0.0.4\n\
         @ 1 IN A 10.0.0.5\n\
         $ORIGIN .\n\
         y 1 IN A 10.0.0.6\n",
    );
    assert_eq!(
        names(&zone),
        [
            "example.com.",
            "www.example.com.",
            "other.example.net.",
            "x.sub.example.com.",
            "sub.example.com.",
            "y.",
        ]
    );
    assert_eq!(zone.records()[0].line, 2);
    assert_eq!(zone.records()[5].line, 9);
}

#[test]
fn omitted_owner_is_the_previous_one() {
    let zone = parse(
        "$ORIGIN example.com.\n\
         frob1 1 IN A 10.0.0.1\n\
         \x20     1 IN A 10.0.0.2\n\
         \t        IN AAAA ::1\n\
         $TTL 5\n\
         \x20     A 10.0.0.3\n",
    );
    assert_eq!(names(&zone), ["frob1.example.com."; 4]);
    assert_eq!(
        zone.address_of("FROB1.example.com"),
        Some("10.0.0.1".parse().unwrap())
    );
    assert_eq!(
        error(" 1 IN A 10.0.0.1").kind,
        ZoneErrorKind::NoPreviousOwner
    );
}

#[test]
fn ttl_and_class_in_either_order_or_absent() {
    let zone = parse(
        "$ORIGIN example.com.\n\
         a 60 IN A 10.0.0.1\n\
         b IN 70 A 10.0.0.2\n\
         c 80 A 10.0.0.3\n\
         d IN A 10.0.0.4\n\
         e A 10.0.0.5\n\
         f 1h30m in a 10.0.0.6\n\
         g 1W2d3H4m5S A 10.0.0.7\n\
         h 2h5 A 10.0.0.8\n",
    );
    let ttls: Vec<Option<u32>> = zone.records().iter().map(|r| r.ttl).collect();
    // Without $TTL, an omitted TTL is the last one stated (RFC 1035).
    assert_eq!(
        ttls,
        [
            Some(60),
            Some(70),
            Some(80),
            Some(80),
            Some(80),
            Some(5400),
            Some(604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5),
            Some(7205),
        ]
    );
    assert_eq!(
        error("$ORIGIN x.\na 1 2 A 10.0.0.1").kind,
        ZoneErrorKind::Repeated("TTL")
    );
    assert_eq!(
        error("$ORIGIN x.\na IN IN A 10.0.0.1").kind,
        ZoneErrorKind::Repeated("class")
    );
    assert_eq!(
        error("$ORIGIN x.\na CH TXT \"x\"").kind,
        ZoneErrorKind::UnsupportedClass("CH".to_owned())
    );
    assert_eq!(
        error("$ORIGIN x.\na 1x A 10.0.0.1").kind,
        ZoneErrorKind::BadTtl("1x".to_owned())
    );
    assert_eq!(
        error("$ORIGIN x.\na 4294967296 A 10.0.0.1").kind,
        ZoneErrorKind::BadTtl("4294967296".to_owned())
    );
    assert_eq!(error("$ORIGIN x.\na 1\n").kind, ZoneErrorKind::MissingType);
}

#[test]
fn default_ttls() {
    let zone = parse(
        "$ORIGIN example.com.\n\
         a A 10.0.0.1\n\
         $TTL 30\n\
         b A 10.0.0.2\n\
         c 9 A 10.0.0.3\n\
         d A 10.0.0.4\n",
    );
    let ttls: Vec<Option<u32>> = zone.records().iter().map(|r| r.ttl).collect();
    // $TTL, once given, beats the last TTL stated.
    assert_eq!(ttls, [None, Some(30), Some(9), Some(30)]);

    // No $TTL and no TTL: BIND uses the SOA's minimum.
    let zone = parse(
        "$ORIGIN example.com.\n\
         @ IN SOA ns hostmaster ( 1 3600 600 86400\n\
                                  42 )\n\
         a A 10.0.0.1\n",
    );
    assert_eq!(zone.records()[0].ttl, Some(42));
}

#[test]
fn srv_txt_a_aaaa_and_skipped_types() {
    let zone = parse(
        r#"$ORIGIN example.com.
$TTL 60
@                   IN SOA ns1 hostmaster 1 2 3 4 5
                    IN NS  ns1
                    IN MX  10 mail
mail                IN CNAME www
_frob._http         IN SRV 10 50 8081 frob1
_frob._http         IN SRV 0 0 8082 frob2.example.net.
tokens.8081.frob1   IN TXT "00112233445566778899aabbccddeeff" "40 c0"
unquoted            IN TXT abc def
frob1               IN A   10.0.0.1
frob1               IN AAAA 2001:db8::1
other               IN HINFO "cpu" "os"
other               IN TYPE65280 \# 0
"#,
    );
    let records = zone.records();
    assert_eq!(records.len(), 6, "{records:#?}");
    assert_eq!(
        records[0].data,
        RecordData::Srv(Srv {
            priority: 10,
            weight: 50,
            port: 8081,
            target: "frob1.example.com.".to_owned(),
        })
    );
    assert_eq!(records[0].line, 7);
    let RecordData::Srv(second) = &records[1].data else {
        panic!("SRV")
    };
    assert_eq!(second.target, "frob2.example.net.");
    assert_eq!(
        txt(&records[2]),
        [&b"00112233445566778899aabbccddeeff"[..], b"40 c0"]
    );
    assert_eq!(txt(&records[3]), [&b"abc"[..], b"def"]);
    assert_eq!(records[4].data, RecordData::A("10.0.0.1".parse().unwrap()));
    assert_eq!(
        records[5].data,
        RecordData::Aaaa("2001:db8::1".parse().unwrap())
    );
}

#[test]
fn quoted_strings_and_escapes() {
    let zone = parse(
        r#"$ORIGIN example.com.
t 1 TXT "a \"quoted\" word" "back\\slash" "\065\066C" "\;x" "" "semi;colon (paren)"
u 1 TXT plain\ word \"
"#,
    );
    assert_eq!(
        txt(&zone.records()[0]),
        [
            &b"a \"quoted\" word"[..],
            b"back\\slash",
            b"ABC",
            b";x",
            b"",
            b"semi;colon (paren)",
        ]
    );
    assert_eq!(txt(&zone.records()[1]), [&b"plain word"[..], b"\""]);
    let long = format!("$ORIGIN x.\nt TXT \"{}\"", "a".repeat(256));
    assert_eq!(error(&long).kind, ZoneErrorKind::StringTooLong(256));
    assert_eq!(error(&long).line, 2);
    assert!(Zone::parse(&format!("$ORIGIN x.\nt 1 TXT \"{}\"", "a".repeat(255))).is_ok());
}

#[test]
fn parentheses_span_lines_and_comments_end_them() {
    let zone = parse(
        "$ORIGIN example.com. ; the zone\n\
         ; a comment line\n\
         \n\
         _s._tcp 1 IN SRV ( 10 ; priority\n\
         \x20                 50 ; weight\n\
         \x20                 8081 frob1 )\n\
         t 1 TXT (\"one\"\n\
         \x20   \"two\") ; done\n\
         after 1 A 10.0.0.9\n",
    );
    assert_eq!(zone.records().len(), 3);
    assert_eq!(zone.records()[0].line, 4);
    assert_eq!(
        zone.records()[0].data,
        RecordData::Srv(Srv {
            priority: 10,
            weight: 50,
            port: 8081,
            target: "frob1.example.com.".to_owned(),
        })
    );
    assert_eq!(txt(&zone.records()[1]), [&b"one"[..], b"two"]);
    assert_eq!(zone.records()[2].line, 9);
}

#[test]
fn crlf_line_endings() {
    let zone = parse("$ORIGIN example.com.\r\na 1 IN TXT \"x\"\r\n 1 TXT y\r\n");
    assert_eq!(txt(&zone.records()[0]), [&b"x"[..]]);
    assert_eq!(txt(&zone.records()[1]), [&b"y"[..]]);
    assert_eq!(zone.records()[1].name, "a.example.com.");
}

#[test]
fn errors_name_their_line() {
    let cases: &[(&str, usize, ZoneErrorKind)] = &[
        (
            "$ORIGIN x.\n\na TXT \"open\n",
            3,
            ZoneErrorKind::UnterminatedString,
        ),
        (
            "$ORIGIN x.\na 1 SOA ( ns host\n1 2 3 4 5\n",
            2,
            ZoneErrorKind::UnclosedParenthesis,
        ),
        (
            "$ORIGIN x.\na 1 TXT ( \"a\"\n( \"b\" ) )\n",
            3,
            ZoneErrorKind::NestedParenthesis,
        ),
        (
            "$ORIGIN x.\na 1 TXT \"a\" )\n",
            2,
            ZoneErrorKind::UnmatchedParenthesis,
        ),
        (
            "$ORIGIN x.\na 1 TXT \"\\25\"\n",
            2,
            ZoneErrorKind::BadEscape("\\25: a decimal escape has three digits (\\DDD)".to_owned()),
        ),
        (
            "$ORIGIN x.\n\n\na 1 TXT \"\\256\"\n",
            4,
            ZoneErrorKind::BadEscape("\\256: a decimal escape is at most 255".to_owned()),
        ),
        (
            "a 1 A 10.0.0.1\n",
            1,
            ZoneErrorKind::NoOrigin("a".to_owned()),
        ),
        (
            "@ 1 A 10.0.0.1\n",
            1,
            ZoneErrorKind::NoOrigin("@".to_owned()),
        ),
        (
            "$ORIGIN x.\na..b 1 A 10.0.0.1\n",
            2,
            ZoneErrorKind::EmptyLabel("a..b".to_owned()),
        ),
        (
            "$ORIGIN x.\n$INCLUDE other.zone\n",
            2,
            ZoneErrorKind::UnsupportedDirective("$INCLUDE".to_owned()),
        ),
        (
            "$ORIGIN x.\n$GENERATE 1-3 a$ A 10.0.0.$\n",
            2,
            ZoneErrorKind::UnsupportedDirective("$GENERATE".to_owned()),
        ),
        (
            "$ORIGIN\n",
            1,
            ZoneErrorKind::DirectiveArguments {
                directive: "$ORIGIN",
                expected: "one domain name",
            },
        ),
        (
            "$TTL 1 2\n",
            1,
            ZoneErrorKind::DirectiveArguments {
                directive: "$TTL",
                expected: "one TTL",
            },
        ),
        (
            "$ORIGIN x.\n_s 1 IN SVR 10 50 8081 a\n",
            2,
            ZoneErrorKind::UnknownType("SVR".to_owned()),
        ),
        (
            "$ORIGIN x.\n_s 1 IN TYPE33 \\# 0\n",
            2,
            ZoneErrorKind::GenericType("TYPE33".to_owned(), "SRV"),
        ),
        (
            "$ORIGIN x.\n_s 1 IN SRV 10 50 a\n",
            2,
            ZoneErrorKind::BadData {
                record_type: "SRV",
                data: "10 50 a".to_owned(),
                expected: "priority weight port target, the first three from 0 to 65535",
            },
        ),
        (
            "$ORIGIN x.\n_s 1 IN SRV (10 50\n65536 a)\n",
            2,
            ZoneErrorKind::BadData {
                record_type: "SRV",
                data: "10 50 65536 a".to_owned(),
                expected: "priority weight port target, the first three from 0 to 65535",
            },
        ),
        (
            "$ORIGIN x.\na 1 A 10.0.0.256\n",
            2,
            ZoneErrorKind::BadData {
                record_type: "A",
                data: "10.0.0.256".to_owned(),
                expected: "one IPv4 address",
            },
        ),
        (
            "$ORIGIN x.\na 1 AAAA 10.0.0.1\n",
            2,
            ZoneErrorKind::BadData {
                record_type: "AAAA",
                data: "10.0.0.1".to_owned(),
                expected: "one IPv6 address",
            },
        ),
        (
            "$ORIGIN x.\na 1 TXT\n",
            2,
            ZoneErrorKind::BadData {
                record_type: "TXT",
                data: String::new(),
                expected: "at least one character-string",
            },
        ),
        (
            "$ORIGIN x.\n\"a\" 1 A 10.0.0.1\n",
            2,
            ZoneErrorKind::Quoted("a".to_owned()),
        ),
    ];
    for (text, line, kind) in cases {
        let got = error(text);
        assert_eq!((got.line, &got.kind), (*line, kind), "{text:?}");
    }
    assert_eq!(
        error("$ORIGIN x.\n\na TXT \"open\n").to_string(),
        "line 3: quoted string not closed on its line"
    );
}

#[test]
fn escaped_final_dot_is_relative() {
    let zone = parse("$ORIGIN example.com.\na\\. 1 A 10.0.0.1\nb\\\\. 1 A 10.0.0.2\n");
    assert_eq!(names(&zone), ["a\\..example.com.", "b\\\\."]);
}

#[test]
fn empty_and_comment_only_text() {
    assert_eq!(parse("").records(), &[]);
    assert_eq!(parse("; nothing\n\n   \n\t; more\n").records(), &[]);
}

// === the ring of a service ===

const RING_ZONE: &str = r#"$ORIGIN example.com.
$TTL 30
_frob._http         IN SRV 10 50 8081 frob1
_frob._http         IN SRV 10 50 8082 frob1
_frob._http     300 IN SRV 20 60 8081 FROB1.example.com. ; the same instance twice
_frob._http         IN SRV 10 50 8081 frob2
_frob._http         IN SRV 10 50 8083 frob3
_frob._http         IN SRV 0 0 0 .
tokens.8081.frob1   IN TXT "00112233445566778899aabbccddeeff"
tokens.8082.frob1   IN TXT "40 c0" "e"
tokens.8082.frob1   IN TXT "f0"
tokens.8081.frob2   IN TXT "8"
config._frob._http  IN TXT "slaves=1 redundancy=host" "colour=blue"
frob1               IN A   127.0.0.9
frob1               IN A   127.0.0.1
frob2               IN AAAA ::2
frob3               IN A   127.0.0.3
"#;

#[test]
fn a_service_ring_follows_discovery_rules() {
    let zone = parse(RING_ZONE);
    let ring = ZoneRing::read(&zone, "_FROB._http.example.com").unwrap();
    assert_eq!(ring.service, "_frob._http.example.com.");
    assert_eq!(
        ring.srv_template,
        service::SrvTemplate {
            ttl: Some(30),
            priority: 10,
            weight: 50
        }
    );
    let names: Vec<&str> = ring.instances.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "frob1.example.com:8081",
            "frob1.example.com:8082",
            "frob2.example.com:8081",
            "frob3.example.com:8083",
        ]
    );
    assert_eq!(ring.instances[0].addr, "127.0.0.1:8081".parse().unwrap());
    assert_eq!(ring.instances[2].addr, "[::2]:8081".parse().unwrap());
    assert_eq!(ring.instances[1].tokens.len(), 4, "every word of every TXT");
    assert!(ring.instances[3].tokens.is_empty());
    assert_eq!(ring.ring.instances().len(), 3, "frob3 has no tokens");
    assert_eq!(ring.ring.replication().slaves, 1);
    let warnings: Vec<String> = ring.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "instance frob3.example.com:8083 publishes no tokens at tokens.8083.frob3.example.com.: left out of the ring",
            "config._frob._http.example.com.: unknown key \"colour\" ignored",
        ]
    );
}

#[test]
fn a_service_ring_fails_as_discovery_fails() {
    let zone = |extra: &str| parse(&format!("{RING_ZONE}{extra}"));
    let service = "_frob._http.example.com.";
    assert_eq!(
        ZoneRing::read(&zone(""), "_other._http.example.com")
            .unwrap_err()
            .to_string(),
        "no SRV record for _other._http.example.com. in the zone: a ring needs at least one instance"
    );
    let only_root = parse("$ORIGIN x.\n_s 1 SRV 0 0 0 .\n");
    assert!(matches!(
        ZoneRing::read(&only_root, "_s.x"),
        Err(ZoneRingError::NoInstances { .. })
    ));
    // RING_ZONE has 17 lines; the extra record is on line 18.
    assert_eq!(
        ZoneRing::read(&zone("_frob._http IN SRV 1 1 9 nowhere\n"), service).unwrap_err(),
        ZoneRingError::NoAddress {
            line: 18,
            target: "nowhere.example.com.".to_owned(),
            port: 9,
        }
    );
    let bad_token = ZoneRing::read(&zone("tokens.8083.frob3 IN TXT \"40 0x50\"\n"), service)
        .unwrap_err()
        .to_string();
    assert!(
        bad_token.starts_with("line 18: malformed token at tokens.8083.frob3.example.com.: "),
        "{bad_token}"
    );
    let bad_config =
        ZoneRing::read(&zone("config._frob._http IN TXT \"slaves=x\"\n"), service).unwrap_err();
    assert!(
        matches!(bad_config, ZoneRingError::BadRingConfig { line: 13, .. }),
        "{bad_config:?}"
    );
}
