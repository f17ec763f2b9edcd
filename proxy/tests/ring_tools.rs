//! `shardproxy ring plan` and `shardproxy ring diff` (SPEC §8) as an
//! operator uses them: the plan printed for a zone, published into a real
//! BIND `named` with `nsupdate`, gives the ring it promised (as discovery,
//! `ring show` and `ring lookup` read it back, and as an independent
//! implementation of SPEC §2 computes it), and the share of the key space
//! it said would move is what `ring diff` finds between the old zone and
//! the old zone with the plan appended, and what the keys looked up before
//! and after show.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod reference;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reference::RefInstance;
use serde_json::Value;
use support::bind::BindServer;

const SRV: &str = "_frob._http.example.com";

/// The zone as BIND loads it: SOA in parentheses, comments, relative and
/// omitted owners. frob3 has an address but is not in the ring yet.
const OLD_ZONE: &str = r#"$ORIGIN example.com.
$TTL 1
@                   IN SOA localhost. hostmaster.example.com. (
                        1          ; serial
                        3600 600 86400
                        1 )        ; negative-answer TTL
                    IN NS  localhost.
_frob._http         IN SRV 10 50 8081 frob1
                    IN SRV 10 50 8082 frob1
                    IN SRV 10 50 8081 frob2.example.com.
tokens.8081.frob1   IN TXT "00112233445566778899aabbccddeeff"
tokens.8082.frob1   IN TXT "40 c0" "e"
tokens.8081.frob2   IN TXT "8"
config._frob._http  IN TXT "slaves=1 redundancy=host"
frob1               IN A   127.0.0.1
frob2               IN A   127.0.0.20
frob2               IN A   127.0.0.2
frob3               IN A   127.0.0.3
"#;

/// The ring of the test zone, as the reference implementation sees it.
fn old_reference() -> Vec<RefInstance> {
    reference::example_ring()
}

fn shardproxy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shardproxy"))
        .args(args)
        .output()
        .expect("the shardproxy binary runs")
}

/// Runs `shardproxy` and returns its stdout, failing the test on a
/// non-zero exit.
fn run(args: &[&str]) -> String {
    let output = shardproxy(args);
    assert!(
        output.status.success(),
        "shardproxy {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A config file for the ring in `bind`.
fn write_config(bind: &BindServer) -> String {
    let text = format!(
        "[dns]\nservers = [\"{}\"]\n\n[services.frob]\nsrv = \"{SRV}\"\n\n\
         [[routes]]\npath_prefix = \"/\"\nservice = \"frob\"\n",
        bind.addr()
    );
    write(bind.dir(), "shardproxy.toml", &text)
}

fn keys() -> Vec<String> {
    (0..1000).map(|i| format!("/playlist/{i}")).collect()
}

/// `ring lookup --json` for every key: (hash, `host:port` list) each.
fn lookups(config: &str, keys: &[String]) -> Vec<(u128, Vec<String>)> {
    let mut args = vec![
        "ring",
        "lookup",
        "--json",
        "--config",
        config,
        "--service",
        "frob",
    ];
    args.extend(keys.iter().map(String::as_str));
    run(&args)
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap();
            let hash = u128::from_str_radix(value["hash"].as_str().unwrap(), 16).unwrap();
            let list = value["instances"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| format!("{}:{}", i["host"].as_str().unwrap(), i["port"]))
                .collect();
            (hash, list)
        })
        .collect()
}

fn token(value: &Value) -> u128 {
    u128::from_str_radix(value.as_str().unwrap(), 16).unwrap()
}

/// Whether `hash` lies in the range `(after, through]` of a diff.
fn contains(range: &Value, hash: u128) -> bool {
    let (after, through) = (token(&range["after"]), token(&range["through"]));
    match after.cmp(&through) {
        std::cmp::Ordering::Less => after < hash && hash <= through,
        std::cmp::Ordering::Greater => hash > after || hash <= through,
        std::cmp::Ordering::Equal => true,
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_published_plan_gives_the_promised_ring_and_moves_what_diff_says() {
    let bind = BindServer::start("example.com", OLD_ZONE);
    let dir = bind.dir().to_owned();
    let config = write_config(&bind);
    let old_zone = write(&dir, "old.zone", OLD_ZONE);
    let keys = keys();
    let before = lookups(&config, &keys);

    // 1. The plan: two instances, three tokens each.
    let plan_args = [
        "ring",
        "plan",
        "--srv",
        SRV,
        "--zone",
        &old_zone,
        "--add",
        "frob3.example.com:8081",
        "--add",
        "frob1.example.com.:8083",
        "--tokens",
        "3",
    ];
    let text = run(&plan_args);
    let mut json_args = plan_args.to_vec();
    json_args.push("--json");
    let plan: Value = serde_json::from_str(&run(&json_args)).unwrap();
    let records = strings(&plan["records"]);
    let printed: Vec<&str> = text.lines().filter(|line| !line.starts_with(';')).collect();
    assert_eq!(
        printed, records,
        "the text prints the records of the JSON:\n{text}"
    );
    assert_eq!(records.len(), 4);
    assert!(
        records[0].starts_with("_frob._http.example.com. 1 IN SRV 10 50 8081 frob3.example.com.")
    );
    assert!(records[1].starts_with("tokens.8081.frob3.example.com. 1 IN TXT \""));
    assert_eq!(plan["needs_address"], serde_json::json!([]));
    let promised_fingerprint = plan["fingerprint"].as_str().unwrap().to_owned();
    let moved_primary = plan["moved_primary"].as_f64().unwrap();
    assert!(
        moved_primary > 0.0 && moved_primary < 1.0,
        "{moved_primary}"
    );
    let percent = format!(
        "; the primary of {:.4}% of the key space moves",
        moved_primary * 100.0
    );
    assert!(text.contains(&percent), "{text}");

    // 2. Published into BIND the way an operator would: nsupdate.
    let updates: Vec<String> = records.iter().map(|r| format!("update add {r}")).collect();
    bind.nsupdate(&updates.join("\n"));

    // 3. Discovery reads back the ring the plan promised...
    let show: Value = serde_json::from_str(&run(&[
        "ring",
        "show",
        "--json",
        "--config",
        &config,
        "--service",
        "frob",
    ]))
    .unwrap();
    assert_eq!(show["fingerprint"], promised_fingerprint.as_str());
    assert_eq!(show["instances"].as_array().unwrap().len(), 5);
    // ...which is the ring of the old zone with the printed text appended.
    let planned_zone = write(&dir, "planned.zone", &format!("{OLD_ZONE}{text}"));
    let zone =
        shardproxy_ring::Zone::parse(&std::fs::read_to_string(&planned_zone).unwrap()).unwrap();
    let from_zone = shardproxy_ring::ZoneRing::read(&zone, SRV).unwrap();
    assert_eq!(
        from_zone.ring.fingerprint().to_string(),
        promised_fingerprint
    );

    // 4. Every key lands where an independent implementation of SPEC §2
    //    puts it on the planned ring.
    let after = lookups(&config, &keys);
    let mut reference = old_reference();
    for instance in plan["instances"].as_array().unwrap() {
        let tokens = strings(&instance["tokens"]);
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        reference.push(RefInstance::new(
            instance["target"].as_str().unwrap(),
            u16::try_from(instance["port"].as_u64().unwrap()).unwrap(),
            instance["addr"].as_str().unwrap(),
            &tokens,
        ));
    }
    for (key, (_, list)) in keys.iter().zip(&after) {
        let expected = reference::preference_list(&reference, 1, true, key.as_bytes());
        assert_eq!(list, &expected, "key {key}");
    }

    // 5. `ring diff` of the old and planned zones finds the share the plan
    //    promised, exactly, and names every key whose list changed.
    let diff: Value = serde_json::from_str(&run(&[
        "ring",
        "diff",
        "--json",
        "--srv",
        SRV,
        &old_zone,
        &planned_zone,
    ]))
    .unwrap();
    assert_eq!(diff["moved_primary"].as_f64(), Some(moved_primary));
    assert_eq!(diff["moved_any"], plan["moved_any"]);
    let ranges = diff["ranges"].as_array().unwrap();
    let mut moved_keys = 0;
    for (key, ((hash, old_list), (_, new_list))) in keys.iter().zip(before.iter().zip(&after)) {
        let holding: Vec<&Value> = ranges.iter().filter(|r| contains(r, *hash)).collect();
        if old_list == new_list {
            assert!(holding.is_empty(), "key {key} kept its list but is listed");
            continue;
        }
        assert_eq!(holding.len(), 1, "key {key} changed: {holding:?}");
        assert_eq!(&strings(&holding[0]["old"]), old_list, "key {key}");
        assert_eq!(&strings(&holding[0]["new"]), new_list, "key {key}");
        if old_list[0] != new_list[0] {
            moved_keys += 1;
        }
    }
    // The keys are a sample of the key space: about that share moved.
    let sampled = f64::from(moved_keys) / keys.len() as f64;
    assert!(
        (sampled - moved_primary).abs() < 0.08,
        "{sampled} of the keys moved, {moved_primary} promised"
    );

    // The text form says the same.
    let diff_text = run(&["ring", "diff", "--srv", SRV, &old_zone, &planned_zone]);
    let line = diff_text
        .lines()
        .find(|line| line.starts_with("  primary changes for "))
        .unwrap_or_else(|| panic!("{diff_text}"));
    let share = format!(" {:.4}% of the key space", moved_primary * 100.0);
    assert!(line.ends_with(&share), "{diff_text}");
}

fn deploy_zone() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dns/example.com.zone")
}

#[test]
fn the_shipped_zone_plans_and_diffs() {
    let zone = deploy_zone();
    let zone = zone.to_str().unwrap();
    let service = "_frobnicator._http.example.com.";
    let same: Value = serde_json::from_str(&run(&[
        "ring", "diff", "--json", "--srv", service, zone, zone,
    ]))
    .unwrap();
    assert_eq!(
        same,
        serde_json::json!({"moved_primary": 0.0, "moved_any": 0.0, "ranges": []})
    );
    // Four balanced quarters: the first new token splits the first in ring
    // order, the quarter that wraps, at the eighth below it.
    let plan: Value = serde_json::from_str(&run(&[
        "ring",
        "plan",
        "--json",
        "--srv",
        service,
        "--zone",
        zone,
        "--add",
        "frob3.example.com:8081",
    ]))
    .unwrap();
    assert_eq!(
        plan["instances"][0]["tokens"],
        serde_json::json!(["1fffffffffffffffffffffffffffffff"])
    );
    assert_eq!(plan["moved_primary"], 0.125);
    assert_eq!(
        plan["needs_address"],
        serde_json::json!(["frob3.example.com."])
    );
    assert_eq!(plan["fingerprint"], Value::Null);
}

#[test]
fn balanced_tokens_on_the_command_line() {
    let text = run(&["ring", "plan", "--balanced", "7"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7);
    let list: Vec<String> =
        serde_json::from_str(&run(&["ring", "plan", "--balanced", "7", "--json"])).unwrap();
    assert_eq!(list, lines);
    // floor(i × 2^128 / 7) − 1: with 2^128 = 7q + r (r = 4), the floor is
    // i·q + floor(i·r / 7), which is 2^128 itself (0 modulo 2^128) for i = 7.
    let (q, r) = (u128::MAX / 7, u128::MAX % 7 + 1);
    assert_eq!(r, 4);
    for (i, line) in (1..=7u128).zip(&lines) {
        let expected = i.wrapping_mul(q).wrapping_add(i * r / 7).wrapping_sub(1);
        assert_eq!(*line, format!("{expected:032x}"));
    }
    assert_eq!(lines[6], "f".repeat(32));
}

#[test]
fn usage_and_input_errors() {
    for args in [
        &["ring", "plan", "--balanced", "0"][..],
        &["ring", "plan", "--balanced", "3", "--srv", "x"],
        &["ring", "plan", "--srv", "x", "--zone", "y"],
        &[
            "ring", "plan", "--srv", "x", "--zone", "y", "--add", "a:1", "--tokens", "0",
        ],
        &["ring", "diff", "--srv", "x", "old.zone"],
    ] {
        assert_eq!(shardproxy(args).status.code(), Some(2), "{args:?}");
    }
    let dir = std::env::temp_dir().join(format!("shardproxy-ring-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = write(&dir, "good.zone", OLD_ZONE);
    let bad = write(&dir, "bad.zone", &format!("{OLD_ZONE}oops IN SRV 1 2\n"));
    let missing = dir.join("missing.zone");
    let missing = missing.to_str().unwrap();

    let output = shardproxy(&["ring", "diff", "--srv", SRV, &good, &bad]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("bad.zone: line 19: SRV data \"1 2\": expected priority weight port target"),
        "{stderr}"
    );
    let output = shardproxy(&[
        "ring", "plan", "--srv", SRV, "--zone", missing, "--add", "a:1",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.zone"));
    let output = shardproxy(&[
        "ring",
        "plan",
        "--srv",
        SRV,
        "--zone",
        &good,
        "--add",
        "frob2.example.com:8081",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "cannot plan: frob2.example.com:8081 is already in the ring\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
