//! The config file (SPEC §4) as `Config::from_toml` reads it: any text.
//!
//! Properties: every error names the file and, where it has a place, a
//! line of the text; a valid config's key sources and durations read back from
//! the text they display as (what `config check` and the `400` body print).

#![no_main]

use libfuzzer_sys::fuzz_target;
use shardproxy::config::{format_duration, parse_duration, Config, KeySource};

const FILE: &str = "fuzz.toml";

fuzz_target!(|text: &str| {
    let config = match Config::from_toml(text, FILE) {
        Ok(config) => config,
        Err(errors) => {
            for error in errors.iter() {
                let message = error.to_string();
                assert!(message.starts_with(FILE), "{message}");
                if let Some(position) = error.position() {
                    let lines = text.split('\n').count();
                    assert!(
                        (1..=lines).contains(&position.line) && position.column >= 1,
                        "{message} (the text has {lines} lines)"
                    );
                }
            }
            return;
        }
    };
    for (name, service) in &config.services {
        assert_eq!(&service.name, name);
        let shown = service.key.to_string();
        assert_eq!(
            KeySource::parse(&shown).as_ref(),
            Ok(&service.key),
            "{shown}"
        );
        for duration in [
            service.try_timeout,
            service.deadline,
            service.transition_grace,
        ] {
            let shown = format_duration(duration);
            assert_eq!(parse_duration(&shown), Ok(duration), "{shown}");
        }
    }
    for route in &config.routes {
        assert!(config.service(&route.service).is_some());
    }
});
