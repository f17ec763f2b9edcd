//! End to end: `shardproxy ring publish` (SPEC §12) against the primary
//! servers operators run, BIND and Knot DNS, each on a loopback port with
//! a zone that takes only updates signed with its TSIG key. The same
//! steps run against both: a `ring plan` published and read back by
//! `shardproxy check` (the planned fingerprint), the same publish again
//! refused with exit 3 because the zone is no longer OLD, a wrong key and
//! no key refused with exit 1, each leaving the zone as it was, and the
//! way back to OLD.

// Test code: helpers may unwrap too (clippy's allow-unwrap-in-tests).
#![cfg(test)]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use shardproxy_ring::zone::{Zone, ZoneRing};
use support::bind::BindServer;
use support::knot::KnotServer;
use support::primary::{zone_text, UpdateKey};

const SRV: &str = "_frob._http.example.com";

/// The ring as published first: two instances, a half each, one replica.
/// frob3's address is there already (SPEC: address records are the
/// operator's; `ring publish` leaves them alone).
const OLD_RING: &str = r#"
_frob._http         IN SRV 10 50 8081 frob1
_frob._http         IN SRV 10 50 8081 frob2
tokens.8081.frob1   IN TXT "7fffffffffffffffffffffffffffffff"
tokens.8081.frob2   IN TXT "ffffffffffffffffffffffffffffffff"
config._frob._http  IN TXT "slaves=1"
frob1               IN A   127.0.0.1
frob2               IN A   127.0.0.2
frob3               IN A   127.0.0.3
"#;

/// A primary server under test: where it listens, its zone, a directory
/// of its own for the test's files, and its update key.
struct Primary<'a> {
    /// For messages: "BIND" or "Knot".
    name: &'static str,
    addr: SocketAddr,
    origin: &'a str,
    dir: &'a Path,
    key_file: &'a Path,
}

fn shardproxy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shardproxy"))
        .args(args)
        .output()
        .expect("the shardproxy binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The fingerprint of the ring a zone file publishes, as the ring crate
/// reads it.
fn fingerprint(zone: &str) -> String {
    let zone = Zone::parse(zone).unwrap();
    ZoneRing::read(&zone, SRV)
        .unwrap()
        .ring
        .fingerprint()
        .to_string()
}

/// `shardproxy check` with a config reading the ring from `primary`:
/// succeeds and prints `fingerprint`.
fn assert_published(primary: &Primary<'_>, config: &Path, fingerprint: &str, when: &str) {
    let check = shardproxy(&["check", "--config", config.to_str().unwrap()]);
    let stdout = text(&check.stdout);
    assert!(
        check.status.success(),
        "{}, {when}: check failed: {stdout}{}",
        primary.name,
        text(&check.stderr)
    );
    assert!(
        stdout.contains(&format!("fingerprint {fingerprint}")),
        "{}, {when}: check does not show fingerprint {fingerprint}:\n{stdout}",
        primary.name
    );
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// Runs `ring publish` of OLD to NEW on `primary`, signed with `key`.
fn publish(primary: &Primary<'_>, key: Option<&Path>, old: &Path, new: &Path) -> Output {
    let server = primary.addr.to_string();
    let mut args = vec!["ring", "publish", "--srv", SRV, "--server", &server];
    if let Some(key) = key {
        args.extend(["--tsig-key", key.to_str().unwrap()]);
    }
    args.extend([old.to_str().unwrap(), new.to_str().unwrap()]);
    shardproxy(&args)
}

/// Fails unless `output` exited with `code` and its stderr has `wanted`.
fn assert_exit(primary: &Primary<'_>, output: &Output, code: i32, wanted: &str, what: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}, {what}: stdout:\n{}\nstderr:\n{stderr}",
        primary.name,
        text(&output.stdout)
    );
    assert!(
        stderr.contains(wanted),
        "{}, {what}: stderr lacks {wanted:?}:\n{stderr}",
        primary.name
    );
}

/// The steps of the module doc against one server.
fn publish_scenario(primary: &Primary<'_>) {
    let dir = primary.dir;
    let old_text = zone_text(primary.origin, OLD_RING);
    let old = write(dir, "old.zone", &old_text);

    // NEW: OLD with frob3 added by `ring plan`, and other ring settings.
    let plan = shardproxy(&[
        "ring",
        "plan",
        "--srv",
        SRV,
        "--zone",
        old.to_str().unwrap(),
        "--add",
        "frob3.example.com:8081",
        "--tokens",
        "2",
    ]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let new_text =
        old_text.replace("\"slaves=1\"", "\"slaves=1 redundancy=host\"") + &text(&plan.stdout);
    let new = write(dir, "new.zone", &new_text);
    let (old_fingerprint, new_fingerprint) = (fingerprint(&old_text), fingerprint(&new_text));
    assert_ne!(old_fingerprint, new_fingerprint);
    let planned = fingerprint(&(old_text.clone() + &text(&plan.stdout)));
    assert!(
        text(&plan.stdout).contains(&format!("fingerprint {planned}")),
        "the plan promises the fingerprint the ring crate computes"
    );

    let config = write(
        dir,
        "shardproxy.toml",
        &format!(
            "[dns]\nservers = [\"{}\"]\n\n[services.frob]\nsrv = \"{SRV}\"\n\n\
             [[routes]]\npath_prefix = \"/\"\nservice = \"frob\"\n",
            primary.addr
        ),
    );
    assert_published(primary, &config, &old_fingerprint, "at the start");

    // 1. Published: exit 0, the records deleted and added printed.
    let published = publish(primary, Some(primary.key_file), &old, &new);
    assert_exit(primary, &published, 0, "", "the publish");
    let stdout = text(&published.stdout);
    let tokens = "\"3fffffffffffffffffffffffffffffff bfffffffffffffffffffffffffffffff\"";
    let expected = [
        "; deleted 1 record:".to_owned(),
        "config._frob._http.example.com. 1 IN TXT \"slaves=1\"".to_owned(),
        "; added 3 records:".to_owned(),
        "_frob._http.example.com. 1 IN SRV 10 50 8081 frob3.example.com.".to_owned(),
        "config._frob._http.example.com. 1 IN TXT \"slaves=1 redundancy=host\"".to_owned(),
        format!("tokens.8081.frob3.example.com. 1 IN TXT {tokens}"),
    ];
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines
            .windows(expected.len())
            .any(|window| window == expected),
        "{}: the publish printed:\n{stdout}",
        primary.name
    );
    assert!(
        stdout.contains(&format!("fingerprint {new_fingerprint}")),
        "{stdout}"
    );
    assert_published(primary, &config, &new_fingerprint, "after the publish");

    // 2. The same again: the zone is no longer OLD; exit 3, nothing changed.
    let again = publish(primary, Some(primary.key_file), &old, &new);
    assert_exit(
        primary,
        &again,
        3,
        "is no longer the one in OLD; nothing changed",
        "the second publish",
    );
    assert!(again.stdout.is_empty(), "{}", text(&again.stdout));
    assert_published(
        primary,
        &config,
        &new_fingerprint,
        "after the second publish",
    );

    // 3. Back to OLD with a key of the same name and another secret: the
    // server refuses the signature; exit 1, nothing changed.
    let wrong_key = dir.join("wrong.key");
    UpdateKey::generate("ddns").write_bind_file(&wrong_key);
    let wrong = publish(primary, Some(&wrong_key), &new, &old);
    assert_exit(primary, &wrong, 1, "BADSIG", "a wrong key");
    assert_exit(
        primary,
        &wrong,
        1,
        "refused the update's TSIG signature with key ddns",
        "a wrong key",
    );
    assert_published(primary, &config, &new_fingerprint, "after a wrong key");

    // 4. No key: refused (REFUSED from BIND, NOTAUTH from Knot); exit 1.
    let unsigned = publish(primary, None, &new, &old);
    assert_exit(
        primary,
        &unsigned,
        1,
        "unsigned updates to example.com. (give --tsig-key)",
        "no key",
    );
    assert_published(primary, &config, &new_fingerprint, "after no key");

    // 5. Back to OLD with the right key: the refusals were the key's.
    let back = publish(primary, Some(primary.key_file), &new, &old);
    assert_exit(primary, &back, 0, "", "the way back");
    let stdout = text(&back.stdout);
    assert!(
        stdout.contains(
            "; deleted 3 records:\n\
             _frob._http.example.com. 1 IN SRV 10 50 8081 frob3.example.com.\n"
        ),
        "{stdout}"
    );
    assert_published(primary, &config, &old_fingerprint, "after the way back");

    // 6. A service in a zone the server does not serve: nothing is sent.
    let elsewhere = zone_text("example.net.", &OLD_RING.replace("frob", "other"));
    let elsewhere = write(dir, "elsewhere.zone", &elsewhere);
    let server = primary.addr.to_string();
    let not_ours = shardproxy(&[
        "ring",
        "publish",
        "--srv",
        "_other._http.example.net",
        "--server",
        &server,
        "--tsig-key",
        primary.key_file.to_str().unwrap(),
        elsewhere.to_str().unwrap(),
        elsewhere.to_str().unwrap(),
    ]);
    assert_exit(
        primary,
        &not_ours,
        1,
        &format!("{server} is not authoritative for _other._http.example.net."),
        "another zone",
    );
}

#[test]
fn publish_to_bind_applies_once_and_refuses_a_stale_old_or_a_wrong_key() {
    let bind = BindServer::start_with_update_key("example.com", OLD_RING);
    let dir = bind.dir().join("operator");
    std::fs::create_dir(&dir).unwrap();
    publish_scenario(&Primary {
        name: "BIND",
        addr: bind.addr(),
        origin: bind.origin(),
        dir: &dir,
        key_file: bind.update_key_file().unwrap(),
    });
}

#[test]
fn publish_to_knot_applies_once_and_refuses_a_stale_old_or_a_wrong_key() {
    let knot = KnotServer::start("example.com", OLD_RING);
    let dir = knot.dir().join("operator");
    std::fs::create_dir(&dir).unwrap();
    publish_scenario(&Primary {
        name: "Knot",
        addr: knot.addr(),
        origin: knot.origin(),
        dir: &dir,
        key_file: knot.update_key_file(),
    });
}

/// Errors before or without a server: exit 1, saying what went wrong.
#[test]
fn without_a_server_or_with_a_bad_key_file_publish_exits_1() {
    let dir = support::primary::fresh_dir("publish");
    let old = write(&dir, "old.zone", &zone_text("example.com.", OLD_RING));
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let primary = Primary {
        name: "no server",
        addr: closed.parse().unwrap(),
        origin: "example.com.",
        dir: &dir,
        key_file: &dir.join("none.key"),
    };
    let refused = publish(&primary, None, &old, &old);
    assert_exit(
        &primary,
        &refused,
        1,
        &format!("ring publish: {closed}: cannot connect: "),
        "no server",
    );

    let bad_key = write(&dir, "bad.key", "key \"k\" {\n algorithm hmac-md5;\n};\n");
    let output = publish(&primary, Some(&bad_key), &old, &old);
    assert_exit(
        &primary,
        &output,
        1,
        &format!(
            "ring publish: --tsig-key {}: line 2: algorithm \"hmac-md5\" is not supported",
            bad_key.display()
        ),
        "a bad key file",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
