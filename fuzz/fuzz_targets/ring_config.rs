//! The TXT strings at `config.<service>` (SPEC §3). The input is cut into
//! character-strings at each NUL byte.
//!
//! Properties: settings read back from their canonical text
//! (`slaves=N redundancy=R`) are the same, with no unknown key; the order
//! of the strings changes neither the settings nor the keys ignored.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shardproxy_ring::records::parse_ring_config;

fuzz_target!(|data: &[u8]| {
    let strings: Vec<&[u8]> = data.split(|&byte| byte == 0).collect();
    let Ok(config) = parse_ring_config(strings.iter().copied()) else {
        return;
    };
    let canonical = config.replication.to_string();
    let again = parse_ring_config([canonical.as_bytes()]);
    assert_eq!(
        again.as_ref().map(|again| again.replication),
        Ok(config.replication),
        "{canonical}"
    );
    assert_eq!(again.map(|again| again.unknown_keys), Ok(Vec::new()));

    let reversed = parse_ring_config(strings.iter().rev().copied());
    let Ok(reversed) = reversed else {
        panic!("reversed strings rejected: {reversed:?}");
    };
    assert_eq!(reversed.replication, config.replication);
    let mut keys = reversed.unknown_keys;
    keys.sort();
    let mut expected = config.unknown_keys;
    expected.sort();
    assert_eq!(keys, expected);
});
