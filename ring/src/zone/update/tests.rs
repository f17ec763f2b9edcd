use super::*;
use crate::zone::write::record_line;
use crate::zone::Srv;

const SERVICE: &str = "_frob._http.example.com";

/// The ring of two instances on one host, with settings and addresses.
const OLD: &str = "$ORIGIN example.com.\n\
    $TTL 60\n\
    _frob._http        IN SRV 10 50 8081 frob1\n\
    _frob._http        IN SRV 10 50 8082 frob1\n\
    tokens.8081.frob1  IN TXT \"40\"\n\
    tokens.8082.frob1  IN TXT \"c0\"\n\
    config._frob._http IN TXT \"slaves=1\"\n\
    frob1              IN A   10.0.0.1\n";

fn zone(text: &str) -> Zone {
    Zone::parse(text).unwrap_or_else(|error| panic!("{error}\n{text}"))
}

fn update(old: &str, new: &str) -> RingUpdate {
    RingUpdate::between(&zone(old), &zone(new), SERVICE).unwrap()
}

fn srv(port: u16, target: &str) -> RecordData {
    RecordData::Srv(Srv {
        priority: 10,
        weight: 50,
        port,
        target: target.to_owned(),
    })
}

fn txt(words: &str) -> RecordData {
    RecordData::Txt(vec![words.as_bytes().to_vec()])
}

fn deleted(update: &RingUpdate) -> Vec<String> {
    update
        .deletes
        .iter()
        .map(|record| record_line(&record.name, record.ttl, &record.data))
        .collect()
}

fn added(update: &RingUpdate) -> Vec<String> {
    update
        .adds
        .iter()
        .map(|record| record_line(&record.name, Some(record.ttl), &record.data))
        .collect()
}

#[test]
fn every_ring_rrset_of_old_is_a_prerequisite() {
    // Nothing changes: still every ring RRset of OLD is required as it is.
    let update = update(OLD, OLD);
    assert!(update.changes_nothing());
    assert_eq!(
        update.unchanged,
        [
            RrSet {
                name: "_frob._http.example.com.".to_owned(),
                rr_type: RingRrType::Srv,
                records: vec![
                    srv(8081, "frob1.example.com."),
                    srv(8082, "frob1.example.com.")
                ],
            },
            RrSet {
                name: "config._frob._http.example.com.".to_owned(),
                rr_type: RingRrType::Txt,
                records: vec![txt("slaves=1")],
            },
            RrSet {
                name: "tokens.8081.frob1.example.com.".to_owned(),
                rr_type: RingRrType::Txt,
                records: vec![txt("40")],
            },
            RrSet {
                name: "tokens.8082.frob1.example.com.".to_owned(),
                rr_type: RingRrType::Txt,
                records: vec![txt("c0")],
            },
        ]
    );
    assert!(update.absent.is_empty());
}

#[test]
fn an_added_instance_adds_its_records_and_requires_their_absence() {
    let new = format!(
        "{OLD}_frob._http IN SRV 10 50 8081 frob2\n\
         tokens.8081.frob2 IN TXT \"80\"\n\
         frob2 IN A 10.0.0.2\n"
    );
    let update = update(OLD, &new);
    assert!(update.deletes.is_empty(), "{:?}", update.deletes);
    assert_eq!(
        added(&update),
        [
            "_frob._http.example.com. 60 IN SRV 10 50 8081 frob2.example.com.",
            "tokens.8081.frob2.example.com. 60 IN TXT \"80\"",
        ]
    );
    // The new instance's tokens name must not exist yet: another operator
    // may have added it meanwhile.
    assert_eq!(
        update.absent,
        [("tokens.8081.frob2.example.com.".to_owned(), RingRrType::Txt)]
    );
    assert_eq!(update.unchanged.len(), 4, "OLD's RRsets, changed or not");
}

#[test]
fn only_changed_records_are_deleted_and_addresses_are_untouched() {
    // frob1:8082 leaves, frob1:8081's tokens change, its address changes,
    // an AAAA record appears: only ring records are in the update.
    let new = "$ORIGIN example.com.\n\
        $TTL 60\n\
        _frob._http        IN SRV 10 50 8081 frob1\n\
        tokens.8081.frob1  IN TXT \"40\" \"c0\"\n\
        config._frob._http IN TXT \"slaves=1\"\n\
        frob1              IN A   10.0.0.9\n\
        frob1              IN AAAA ::1\n";
    let update = update(OLD, new);
    assert_eq!(
        deleted(&update),
        [
            "_frob._http.example.com. 60 IN SRV 10 50 8082 frob1.example.com.",
            "tokens.8081.frob1.example.com. 60 IN TXT \"40\"",
            "tokens.8082.frob1.example.com. 60 IN TXT \"c0\"",
        ]
    );
    assert_eq!(
        added(&update),
        ["tokens.8081.frob1.example.com. 60 IN TXT \"40\" \"c0\""]
    );
    let touched = update
        .deletes
        .iter()
        .map(|record| &record.data)
        .chain(update.adds.iter().map(|record| &record.data));
    for data in touched {
        assert!(
            matches!(data, RecordData::Srv(_) | RecordData::Txt(_)),
            "{data:?}"
        );
    }
    assert!(update.absent.is_empty());
}

#[test]
fn the_config_txt_is_a_ring_rrset() {
    // Changed, added and removed.
    let changed = OLD.replace("slaves=1", "slaves=1 redundancy=host");
    let update1 = update(OLD, &changed);
    assert_eq!(
        deleted(&update1),
        ["config._frob._http.example.com. 60 IN TXT \"slaves=1\""]
    );
    assert_eq!(
        added(&update1),
        ["config._frob._http.example.com. 60 IN TXT \"slaves=1 redundancy=host\""]
    );

    let without: String = OLD
        .lines()
        .filter(|line| !line.starts_with("config."))
        .map(|line| format!("{line}\n"))
        .collect();
    let removed = update(OLD, &without);
    assert_eq!(
        deleted(&removed),
        ["config._frob._http.example.com. 60 IN TXT \"slaves=1\""]
    );
    assert!(removed.adds.is_empty());

    let added_back = update(&without, OLD);
    assert_eq!(
        added_back.absent,
        [(
            "config._frob._http.example.com.".to_owned(),
            RingRrType::Txt
        )]
    );
    assert!(added_back
        .unchanged
        .iter()
        .all(|rrset| !rrset.name.starts_with("config.")));
}

#[test]
fn a_ttl_change_replaces_the_rrset() {
    let new = OLD.replace("tokens.8081.frob1  IN TXT", "tokens.8081.frob1 300 IN TXT");
    let update = update(OLD, &new);
    assert_eq!(
        deleted(&update),
        ["tokens.8081.frob1.example.com. 60 IN TXT \"40\""]
    );
    assert_eq!(
        added(&update),
        ["tokens.8081.frob1.example.com. 300 IN TXT \"40\""]
    );
}

#[test]
fn a_fresh_ring_is_created_and_a_removed_one_deleted() {
    let addresses = "$ORIGIN example.com.\nfrob1 60 IN A 10.0.0.1\n";
    let created = update(addresses, OLD);
    assert!(created.unchanged.is_empty());
    assert!(created.deletes.is_empty());
    assert_eq!(created.adds.len(), 5);
    let absent: Vec<&str> = created
        .absent
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        absent,
        [
            "_frob._http.example.com.",
            "config._frob._http.example.com.",
            "tokens.8081.frob1.example.com.",
            "tokens.8082.frob1.example.com.",
        ]
    );

    let removed = update(OLD, addresses);
    assert_eq!(removed.deletes.len(), 5);
    assert!(removed.adds.is_empty());
    assert_eq!(removed.unchanged.len(), 4);
}

#[test]
fn repeated_records_count_once_and_other_services_are_ignored() {
    let old = format!(
        "{OLD}tokens.8081.frob1 IN TXT \"40\"\n\
         _other._http IN SRV 1 1 1 frob1\n\
         tokens.1.frob1 IN TXT \"1\"\n"
    );
    let update = update(&old, OLD);
    assert!(update.changes_nothing(), "{update:?}");
    let tokens = update
        .unchanged
        .iter()
        .find(|rrset| rrset.name == "tokens.8081.frob1.example.com.")
        .unwrap();
    assert_eq!(tokens.records, [txt("40")]);
    assert!(
        update
            .unchanged
            .iter()
            .all(|rrset| !rrset.name.contains("_other")
                && rrset.name != "tokens.1.frob1.example.com.")
    );
}

#[test]
fn an_instance_without_tokens_in_both_is_left_alone() {
    let old = format!("{OLD}_frob._http IN SRV 10 50 9 frob1\n");
    let update = update(&old, &old);
    assert!(update.changes_nothing());
    assert!(update.absent.is_empty());
    assert!(update
        .unchanged
        .iter()
        .all(|rrset| rrset.name != "tokens.9.frob1.example.com."));
}

#[test]
fn a_record_to_add_needs_a_ttl() {
    let new = "_frob._http.example.com. IN SRV 10 50 8081 frob1.example.com.\n";
    let error = RingUpdate::between(&zone(""), &zone(new), SERVICE).unwrap_err();
    assert_eq!(
        error,
        UpdateError::NoTtl {
            line: 1,
            name: "_frob._http.example.com.".to_owned()
        }
    );
    assert!(error
        .to_string()
        .starts_with("line 1: _frob._http.example.com. has no TTL"));
    // A record only deleted needs none.
    let update = RingUpdate::between(&zone(new), &zone(""), SERVICE).unwrap();
    assert_eq!(
        deleted(&update),
        ["_frob._http.example.com. IN SRV 10 50 8081 frob1.example.com."]
    );
}

#[test]
fn the_service_name_is_read_in_any_case_with_or_without_the_dot() {
    let a = RingUpdate::between(&zone(OLD), &zone(""), "_FROB._http.Example.com.").unwrap();
    let b = RingUpdate::between(&zone(OLD), &zone(""), SERVICE).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.service, "_frob._http.example.com.");
}
