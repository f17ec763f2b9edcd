use super::*;

const SRV: &str = "_frob._http.example.com";

/// a owns (3Q, Q] (half the ring), b (Q, 2Q], c (2Q, 3Q]; c is also on
/// host b, and d has an address but is not in SRV.
const OLD: &str = r#"$ORIGIN example.com.
$TTL 60
_frob._http       IN SRV 10 50 8081 a
_frob._http       IN SRV 10 50 8081 b
_frob._http       IN SRV 10 50 8082 b
tokens.8081.a     IN TXT "40"
tokens.8081.b     IN TXT "80"
tokens.8082.b     IN TXT "c0"
a                 IN A 10.0.0.1
b                 IN A 10.0.0.2
d                 IN A 10.0.0.4
"#;

fn input<'a>(label: &'a str, text: &'a str) -> ZoneInput<'a> {
    ZoneInput { label, text }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn additions_are_target_and_port() {
    let name = parse_addition("Frob3.Example.COM.:8081").unwrap();
    assert_eq!(name.as_str(), "frob3.example.com:8081");
    for (bad, reason) in [
        ("frob3.example.com", "expected TARGET:PORT"),
        ("frob3:0", "port \"0\" is not a number from 1 to 65535"),
        (
            "frob3:65536",
            "port \"65536\" is not a number from 1 to 65535",
        ),
        ("frob3:x", "port \"x\" is not a number from 1 to 65535"),
        (":80", "empty host name"),
        (
            "a b:80",
            "host name \"a b\" holds white space, a control character or ':'",
        ),
    ] {
        let error = parse_addition(bad).unwrap_err().to_string();
        assert_eq!(error, format!("--add {bad:?}: {reason}"));
    }
}

#[test]
fn diff_json_has_exactly_the_shape_of_the_spec() {
    // d joins at 0: it takes (c0, 0] from a, a quarter of the ring.
    let new = format!("{OLD}_frob._http IN SRV 10 50 8081 d\ntokens.8081.d IN TXT \"0\"\n");
    let report = diff_report(SRV, input("old", OLD), input("new", &new), true).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let value = json(&report.output);
    let expected = serde_json::json!({
        "moved_primary": 0.25,
        "moved_any": 0.25,
        "ranges": [{
            "after": "c0000000000000000000000000000000",
            "through": "00000000000000000000000000000000",
            "old": ["a.example.com:8081"],
            "new": ["d.example.com:8081"],
        }],
    });
    assert_eq!(value, expected);
}

#[test]
fn diff_text_shows_shares_and_who_loses_and_gains() {
    let new = OLD.replace(
        "$TTL 60\n",
        "$TTL 60\nconfig._frob._http IN TXT \"slaves=1\"\n",
    );
    let report = diff_report(SRV, input("old.zone", OLD), input("new.zone", &new), false).unwrap();
    let text = report.output;
    assert!(
        text.starts_with("ring diff of _frob._http.example.com.\n"),
        "{text}"
    );
    assert!(
        text.contains("primary changes for           0.0000% of the key space"),
        "{text}"
    );
    assert!(
        text.contains("preference list changes for 100.0000% of the key space"),
        "{text}"
    );
    assert!(text.contains("3 ranges change"), "{text}");
    // (3Q, Q]: a, now followed by b:8081.
    let row = text
        .lines()
        .find(|line| {
            line.contains("  c0000000000000000000000000000000  40000000000000000000000000000000")
        })
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "c0000000000000000000000000000000",
            "40000000000000000000000000000000",
            "50.0000%",
            "a.example.com:8081",
            "a.example.com:8081,b.example.com:8081",
            "-",
            "b.example.com:8081",
        ]
    );
}

#[test]
fn diff_errors_name_the_file_and_line() {
    let broken = "$ORIGIN example.com.\n\nx IN TXT \"open\n";
    let error = diff_report(
        SRV,
        input("old.zone", OLD),
        input("new.zone", broken),
        false,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "new.zone: line 3: quoted string not closed on its line"
    );
    let no_address = format!("{OLD}_frob._http IN SRV 10 50 1 nowhere\n");
    let error = diff_report(
        SRV,
        input("old.zone", &no_address),
        input("new.zone", OLD),
        false,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "old.zone: line 12: SRV target nowhere.example.com. (port 1) has no A or AAAA record in the zone"
    );
}

#[test]
fn warnings_name_the_file() {
    let joining = format!("{OLD}_frob._http IN SRV 10 50 8081 d\n");
    let report = diff_report(
        SRV,
        input("old.zone", OLD),
        input("new.zone", &joining),
        true,
    )
    .unwrap();
    assert_eq!(
        report.warnings,
        ["new.zone: instance d.example.com:8081 publishes no tokens at tokens.8081.d.example.com.: left out of the ring"]
    );
    assert_eq!(json(&report.output)["moved_any"], 0.0);
}

#[test]
fn plan_text_is_a_zone_fragment() {
    let report = plan_report(
        SRV,
        input("old.zone", OLD),
        &[
            "d.example.com:8081".to_owned(),
            "e.example.com.:9000".to_owned(),
        ],
        1,
        false,
    )
    .unwrap();
    let text = &report.output;
    let records: Vec<&str> = text.lines().filter(|line| !line.starts_with(';')).collect();
    assert_eq!(
        records,
        [
            "_frob._http.example.com. 60 IN SRV 10 50 8081 d.example.com.",
            "tokens.8081.d.example.com. 60 IN TXT \"00000000000000000000000000000000\"",
            "_frob._http.example.com. 60 IN SRV 10 50 9000 e.example.com.",
            // Four equal quarters: the first in ring order is d's new one.
            "tokens.9000.e.example.com. 60 IN TXT \"e0000000000000000000000000000000\"",
        ],
        "{text}"
    );
    assert!(
        text.contains("; the primary of 25.0000% of the key space moves"),
        "{text}"
    );
    assert!(
        text.contains("; e.example.com. has no A or AAAA record in the zone: publish one"),
        "{text}"
    );
    assert!(
        text.contains("; d.example.com. has an address in the zone (10.0.0.4)"),
        "{text}"
    );
    // Appended to the zone (with e's address), it is the planned zone.
    let planned = format!("{OLD}{text}e IN AAAA ::5\n");
    let diff = diff_report(SRV, input("old", OLD), input("new", &planned), true).unwrap();
    assert_eq!(json(&diff.output)["moved_primary"], 0.25);
}

#[test]
fn plan_json() {
    let report = plan_report(
        SRV,
        input("old.zone", OLD),
        &["d.example.com:8081".to_owned()],
        2,
        true,
    )
    .unwrap();
    let value = json(&report.output);
    assert_eq!(value["service"], "_frob._http.example.com.");
    assert_eq!(value["tokens_per_instance"], 2);
    assert_eq!(value["moved_primary"], 0.375);
    assert_eq!(value["needs_address"], serde_json::json!([]));
    assert!(value["fingerprint"].is_string());
    let instance = &value["instances"][0];
    assert_eq!(instance["instance"], "d.example.com:8081");
    assert_eq!(instance["target"], "d.example.com.");
    assert_eq!(instance["port"], 8081);
    assert_eq!(instance["addr"], "10.0.0.4:8081");
    assert_eq!(
        instance["tokens"],
        serde_json::json!([
            "00000000000000000000000000000000",
            "20000000000000000000000000000000"
        ])
    );
    assert_eq!(
        instance["splits"][1],
        serde_json::json!({
            "token": "20000000000000000000000000000000",
            "after": "00000000000000000000000000000000",
            "through": "40000000000000000000000000000000",
            "from": "a.example.com:8081",
        })
    );
    assert_eq!(
        value["records"],
        serde_json::json!([
            "_frob._http.example.com. 60 IN SRV 10 50 8081 d.example.com.",
            "tokens.8081.d.example.com. 60 IN TXT \"00000000000000000000000000000000 20000000000000000000000000000000\"",
        ])
    );

    let unknown = plan_report(
        SRV,
        input("old.zone", OLD),
        &["x.example.net:1".to_owned()],
        1,
        true,
    )
    .unwrap();
    let value = json(&unknown.output);
    assert_eq!(value["fingerprint"], serde_json::Value::Null);
    assert_eq!(
        value["needs_address"],
        serde_json::json!(["x.example.net."])
    );
    assert_eq!(value["instances"][0]["addr"], serde_json::Value::Null);
}

#[test]
fn plan_errors() {
    let error = |additions: &[&str]| {
        let additions: Vec<String> = additions.iter().map(|a| (*a).to_owned()).collect();
        plan_report(SRV, input("old.zone", OLD), &additions, 1, false)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error(&["a.example.com:8081"]),
        "cannot plan: a.example.com:8081 is already in the ring"
    );
    assert_eq!(
        error(&["d.example.com:1", "D.example.com.:1"]),
        "cannot plan: d.example.com:1 is added twice"
    );
    let empty = "$ORIGIN example.com.\n_frob._http 1 SRV 1 1 1 a\na 1 A 10.0.0.1\n";
    let error = plan_report(
        SRV,
        input("e.zone", empty),
        &["b.example.com:1".to_owned()],
        1,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("cannot plan: the ring has no tokens"),
        "{error}"
    );
}

#[test]
fn balanced_text_and_json_agree() {
    let mut text = Vec::new();
    write_balanced(&mut text, 3, false).unwrap();
    assert_eq!(
        String::from_utf8(text.clone()).unwrap(),
        "55555555555555555555555555555554\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa9\nffffffffffffffffffffffffffffffff\n"
    );
    let mut list = Vec::new();
    write_balanced(&mut list, 3, true).unwrap();
    let list: Vec<String> = serde_json::from_slice(&list).unwrap();
    let lines: Vec<String> = String::from_utf8(text)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(list, lines);
    let mut one = Vec::new();
    write_balanced(&mut one, 1, true).unwrap();
    assert_eq!(
        String::from_utf8(one).unwrap(),
        "[\n  \"ffffffffffffffffffffffffffffffff\"\n]\n"
    );
}

/// Load recorded on OLD's ring: b's range (40.., 80..] has 1,000 of 1,200
/// requests, 600 of them for one key a tenth of the way into it.
const LOAD: &str = r#"{"service": "frob", "ranges": [
  {"after": "c0000000000000000000000000000000", "through": "40000000000000000000000000000000", "requests": 100},
  {"after": "40000000000000000000000000000000", "through": "80000000000000000000000000000000", "requests": 1000},
  {"after": "80000000000000000000000000000000", "through": "c0000000000000000000000000000000", "requests": 100}
], "keys": [{"hash": "46666666666666666666666666666666", "requests": 600, "rate": 60.0}]}"#;

#[test]
fn plan_by_load_splits_the_busiest_range_where_its_requests_halve() {
    let load = load_file::parse("load.json", LOAD).unwrap();
    let additions = ["d.example.com:8081".to_owned()];
    let report =
        plan_report_by_load(SRV, input("zone", OLD), &additions, 1, true, Some(&load)).unwrap();
    let value = json(&report.output);
    // Not a's half of the ring (the largest range) but b's busy quarter,
    // at the hot key: d takes it and what lies before it, 640 requests.
    let split = &value["instances"][0]["splits"][0];
    assert_eq!(split["token"], "46666666666666666666666666666666");
    assert_eq!(split["from"], "b.example.com:8081");
    let moved = value["moved_primary_requests"].as_f64().unwrap();
    assert!((moved - 640.0 / 1200.0).abs() < 1e-9, "{moved}");
    // Without the load, the midpoint of a's range.
    let by_size = plan_report(SRV, input("zone", OLD), &additions, 1, true).unwrap();
    assert_eq!(
        json(&by_size.output)["instances"][0]["splits"][0]["from"],
        "a.example.com:8081"
    );
    assert!(json(&by_size.output)
        .get("moved_primary_requests")
        .is_none());

    // `ring diff --by-load` of the old zone and the planned one finds the
    // same share of requests moving, and says it in words too.
    let records: Vec<String> = value["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record.as_str().unwrap().to_owned())
        .collect();
    let new = format!("{OLD}{}\n", records.join("\n"));
    let diff = diff_report_by_load(
        SRV,
        input("old", OLD),
        input("new", &new),
        true,
        Some(&load),
    )
    .unwrap();
    let found = json(&diff.output)["moved_primary_requests"]
        .as_f64()
        .unwrap();
    assert!((found - moved).abs() < 1e-9, "{found} vs {moved}");
    let text = diff_report_by_load(
        SRV,
        input("old", OLD),
        input("new", &new),
        false,
        Some(&load),
    )
    .unwrap()
    .output;
    assert!(
        text.contains(
            "primary changes for            53.33% of the recorded requests (640 of 1200)"
        ),
        "{text}"
    );
}

#[test]
fn a_load_file_that_cannot_be_used_is_named() {
    for (text, reason) in [
        (
            "{",
            "load.json: EOF while parsing an object at line 1 column 1",
        ),
        (
            r#"{"ranges": [{"after": "x", "through": "40", "requests": 1}]}"#,
            "load.json: after \"x\": ",
        ),
        (
            r#"{"ranges": [{"after": "40", "through": "80", "requests": 1}]}"#,
            "load.json: the ranges do not cover the ring once",
        ),
    ] {
        let error = load_file::parse("load.json", text).unwrap_err().to_string();
        assert!(error.starts_with(reason), "{error}");
    }
}
