//! The ring's DNS record formats (SPEC §3), parsed from the bytes of TXT
//! strings. Lookups happen elsewhere; this module only reads what came back.

use std::collections::BTreeSet;

use crate::instance::InstanceName;
use crate::ring::{Redundancy, Replication};
use crate::token::{Token, TokenError};

/// The owner name of an instance's tokens: `tokens.<port>.<target>`.
///
/// `target` is used as given, so a fully qualified target (with its trailing
/// dot) gives a fully qualified name.
pub fn tokens_name(port: u16, target: &str) -> String {
    format!("tokens.{port}.{target}")
}

/// The owner name of a service's ring settings: `config.<service>`.
pub fn config_name(service: &str) -> String {
    format!("config.{service}")
}

/// Splits TXT strings into words on ASCII white space. A word never spans two
/// strings: each string is split on its own.
fn words<'a, I>(strings: I) -> impl Iterator<Item = &'a [u8]>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    strings.into_iter().flat_map(|string| {
        string
            .split(|byte| byte.is_ascii_whitespace())
            .filter(|word| !word.is_empty())
    })
}

/// Parses the tokens of one instance: every word of every TXT string at
/// `tokens.<port>.<target>` is a token. An empty result means the instance
/// published no tokens (it is left out of the ring).
///
/// # Errors
///
/// The first malformed word's [`TokenError`]: one bad token makes the whole
/// record set malformed, so the last good ring stays in use.
pub fn parse_tokens<'a, I>(strings: I) -> Result<Vec<Token>, TokenError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    words(strings).map(Token::parse_bytes).collect()
}

/// The settings published at `config.<service>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RingConfig {
    /// `slaves` and `redundancy`, defaults where absent.
    pub replication: Replication,
    /// Keys this version does not know, in the order met; ignored, but the
    /// caller should warn about them.
    pub unknown_keys: Vec<String>,
}

/// Why a `config.<service>` record set is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingConfigError {
    /// A word that is not `key=value`.
    #[error("config word {0:?} is not key=value")]
    NotKeyValue(String),
    /// The same key twice.
    #[error("config key {0:?} is given twice")]
    Duplicate(String),
    /// A known key with a value it cannot take.
    #[error("config {key}={value:?}: {expected}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value as given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// Parses the words of all TXT strings at `config.<service>`. No strings
/// (no record) gives the defaults: `slaves=0 redundancy=none`.
///
/// # Errors
///
/// [`RingConfigError`] on a word without `=` (or with an empty key), a key
/// given twice, or a bad value.
pub fn parse_ring_config<'a, I>(strings: I) -> Result<RingConfig, RingConfigError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut config = RingConfig::default();
    let mut seen: BTreeSet<&[u8]> = BTreeSet::new();
    for word in words(strings) {
        let lossy = || String::from_utf8_lossy(word).into_owned();
        let Some(eq) = word.iter().position(|&byte| byte == b'=') else {
            return Err(RingConfigError::NotKeyValue(lossy()));
        };
        let (key, value) = (&word[..eq], &word[eq + 1..]);
        if key.is_empty() {
            return Err(RingConfigError::NotKeyValue(lossy()));
        }
        if !seen.insert(key) {
            return Err(RingConfigError::Duplicate(
                String::from_utf8_lossy(key).into_owned(),
            ));
        }
        let bad = |key: &'static str, expected: &'static str| RingConfigError::BadValue {
            key,
            value: String::from_utf8_lossy(value).into_owned(),
            expected,
        };
        match key {
            b"slaves" => {
                const EXPECTED: &str = "expected a number of ASCII digits from 0 to 255";
                if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                    return Err(bad("slaves", EXPECTED));
                }
                // Leading zeros are digits too: strip them before the bound.
                let significant = value
                    .iter()
                    .position(|&digit| digit != b'0')
                    .map_or(&value[value.len()..], |start| &value[start..]);
                if significant.len() > 3 {
                    return Err(bad("slaves", EXPECTED));
                }
                let number = significant
                    .iter()
                    .fold(0u32, |acc, &digit| acc * 10 + u32::from(digit - b'0'));
                config.replication.slaves =
                    u8::try_from(number).map_err(|_| bad("slaves", EXPECTED))?;
            }
            b"redundancy" => {
                config.replication.redundancy = match value {
                    b"none" => Redundancy::None,
                    b"host" => Redundancy::Host,
                    _ => return Err(bad("redundancy", "expected none or host")),
                };
            }
            _ => config
                .unknown_keys
                .push(String::from_utf8_lossy(key).into_owned()),
        }
    }
    Ok(config)
}

/// Tokens for an instance that publishes none (`tokens = "derived"`):
/// XXH3-128 of `"{host}:{port}#{i}"` for `i` in `0..virtual_nodes`.
pub fn derived_tokens(name: &InstanceName, virtual_nodes: u32) -> Vec<Token> {
    let mut text = String::with_capacity(name.as_str().len() + 11);
    (0..virtual_nodes)
        .map(|i| {
            text.clear();
            text.push_str(name.as_str());
            text.push('#');
            text.push_str(&i.to_string());
            Token::of_key(text.as_bytes())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&'static str]) -> Vec<&'static [u8]> {
        items.iter().map(|s| s.as_bytes()).collect()
    }

    #[test]
    fn tokens_come_from_every_word_of_every_string() {
        let tokens = parse_tokens(strings(&["40 c0", "\t80\n", ""])).unwrap();
        let expected: Vec<Token> = ["40", "c0", "80"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        assert_eq!(tokens, expected);
        assert_eq!(parse_tokens(strings(&["  "])).unwrap(), vec![]);
    }

    #[test]
    fn one_bad_token_spoils_the_set() {
        assert!(parse_tokens(strings(&["40", "c0 0xff"])).is_err());
    }

    #[test]
    fn config_words() {
        let config =
            parse_ring_config(strings(&["slaves=2", "redundancy=host color=blue"])).unwrap();
        assert_eq!(config.replication.slaves, 2);
        assert_eq!(config.replication.redundancy, Redundancy::Host);
        assert_eq!(config.unknown_keys, vec!["color".to_owned()]);
        assert_eq!(
            parse_ring_config(strings(&[])).unwrap(),
            RingConfig::default()
        );
        assert_eq!(
            parse_ring_config(strings(&["slaves=255"]))
                .unwrap()
                .replication
                .slaves,
            255
        );
        assert_eq!(
            parse_ring_config(strings(&["slaves=0003"]))
                .unwrap()
                .replication
                .slaves,
            3
        );
    }

    #[test]
    fn malformed_config_words() {
        for bad in [
            &["slaves"][..],
            &["slaves=1 slaves=1"],
            &["slaves=1", "slaves=2"],
            &["slaves=256"],
            &["slaves=-1"],
            &["slaves=+1"],
            &["slaves="],
            &["slaves=1x"],
            &["slaves=１"],
            &["redundancy=HOST"],
            &["redundancy=rack"],
            &["=1"],
        ] {
            assert!(
                parse_ring_config(strings(bad)).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn derived_tokens_hash_host_port_and_index() {
        let name = InstanceName::new("Frob1.example.com.", 8081).unwrap();
        let tokens = derived_tokens(&name, 3);
        assert_eq!(tokens.len(), 3);
        assert_eq!(tokens[0], Token::of_key(b"frob1.example.com:8081#0"));
        assert_eq!(tokens[2], Token::of_key(b"frob1.example.com:8081#2"));
    }

    #[test]
    fn record_names() {
        assert_eq!(
            tokens_name(8081, "frob1.example.com."),
            "tokens.8081.frob1.example.com."
        );
        assert_eq!(
            config_name("_frobnicator._http.example.com"),
            "config._frobnicator._http.example.com"
        );
    }
}
