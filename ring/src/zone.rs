//! Zone files (RFC 1035 §5, "master files", as BIND loads them), read far
//! enough to find the ring records of SPEC §3: `ring diff` and `ring plan`
//! take the zone an operator is about to publish, not a live DNS server.
//!
//! Pure: the text comes in as `&str` and records come out. What is read:
//!
//! - `$ORIGIN` (absolute, or relative to the current origin) and `$TTL`;
//!   `$INCLUDE` and BIND's `$GENERATE` are refused (a `&str` cannot follow
//!   them), as is any other directive.
//! - Owner names: absolute (`frob1.example.com.`), relative to the origin
//!   (`frob1`), `@` for the origin, or omitted (a line that starts with a
//!   blank) for the previous record's owner. A relative name before any
//!   `$ORIGIN` is an error: without the zone's name it means nothing.
//! - An optional TTL (seconds, or BIND's units `1w2d3h4m5s`) and an optional
//!   class (`IN`, the only one accepted), in either order. A record without
//!   a TTL takes `$TTL`, else the last TTL given, else the SOA's minimum
//!   (as BIND does); [`ZoneRecord::ttl`] is `None` when none of those exist.
//! - `SRV`, `TXT`, `A` and `AAAA` records; every other known type (SOA, NS,
//!   MX, CNAME...) is skipped. An unknown type is an error, so that a typo
//!   (`SVR`) does not silently drop an instance.
//! - `"quoted strings"` with `\"`, `\\`, `\DDD` and `\X` escapes, parentheses
//!   joining lines, and `;` comments.
//!
//! Names are kept in presentation form, lower-cased (ASCII) and absolute
//! (with the trailing dot); escapes in names are left as written.
//!
//! # Layout
//!
//! - [`lexer`]: text to entries and words.
//! - [`service`]: the ring a zone publishes for one service.
//! - [`write`]: records back to master-file lines.
//! - [`update`]: the DNS UPDATE that turns one zone's ring records into
//!   another's (`ring publish`).

mod lexer;
pub mod service;
pub mod update;
pub mod write;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use lexer::{Entry, Word};

pub use service::{ZoneInstance, ZoneRing, ZoneRingError, ZoneRingWarning};
pub use update::{Addition, RingRrType, RingUpdate, RrSet, UpdateError};

/// A parsed zone file: the records of the types the ring uses, in file
/// order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Zone {
    records: Vec<ZoneRecord>,
    /// For each owner name, the indexes of its records, so that reading a
    /// ring of thousands of instances is not quadratic.
    by_name: HashMap<String, Vec<usize>>,
}

/// One record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneRecord {
    /// The line it starts on, from 1, for error messages.
    pub line: usize,
    /// The owner: absolute, lower case, with the trailing dot.
    pub name: String,
    /// Its TTL in seconds; `None` when the file gives no TTL at all.
    pub ttl: Option<u32>,
    /// The data.
    pub data: RecordData,
}

/// The data of a record of a type the ring uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A service instance.
    Srv(Srv),
    /// Character-strings, each at most 255 bytes, escapes decoded.
    Txt(Vec<Vec<u8>>),
}

/// The data of an SRV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srv {
    /// Lower values are tried first (unused by `balance = "ring"`).
    pub priority: u16,
    /// Relative weight within a priority (unused by `balance = "ring"`).
    pub weight: u16,
    /// The instance's port.
    pub port: u16,
    /// The target: absolute, lower case, with the trailing dot; `"."` means
    /// "no service here".
    pub target: String,
}

/// Why a zone file cannot be read, and on which line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ZoneError {
    /// The physical line, from 1.
    pub line: usize,
    /// What is wrong there.
    pub kind: ZoneErrorKind,
}

/// What is wrong on a line of a zone file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZoneErrorKind {
    /// A `"` without its closing `"` on the same line.
    #[error("quoted string not closed on its line")]
    UnterminatedString,
    /// A malformed `\` escape.
    #[error("bad escape {0}")]
    BadEscape(String),
    /// `(` inside parentheses.
    #[error("'(' inside parentheses")]
    NestedParenthesis,
    /// `)` without a `(`.
    #[error("')' without '('")]
    UnmatchedParenthesis,
    /// `(` never closed; the line is that of the `(`.
    #[error("'(' never closed")]
    UnclosedParenthesis,
    /// A directive this reader does not follow, or does not know.
    #[error("directive {0} is not supported: only $ORIGIN and $TTL are")]
    UnsupportedDirective(String),
    /// A directive without its argument, or with too many.
    #[error("{directive} takes {expected}")]
    DirectiveArguments {
        /// `$ORIGIN` or `$TTL`.
        directive: &'static str,
        /// What it takes.
        expected: &'static str,
    },
    /// A record with its owner omitted before any record named one.
    #[error("the owner name is omitted (the line starts with a blank) but no record before it names one")]
    NoPreviousOwner,
    /// A relative name (or `@`) before any `$ORIGIN`.
    #[error(
        "relative name {0:?} but no $ORIGIN: add $ORIGIN or write the name with its final dot"
    )]
    NoOrigin(String),
    /// A name with an empty label.
    #[error("name {0:?} has an empty label")]
    EmptyLabel(String),
    /// A quoted string where a name, TTL, class or type belongs.
    #[error("quoted string {0:?} where a name, TTL, class or type belongs")]
    Quoted(String),
    /// A TTL that is not a number of seconds (or `1w2d3h4m5s`), or above
    /// 2^32 − 1.
    #[error("TTL {0:?} is not a number of seconds (or of w, d, h, m, s units) below 2^32")]
    BadTtl(String),
    /// Two TTLs or two classes in one record.
    #[error("two {0}s in one record")]
    Repeated(&'static str),
    /// A class other than `IN`.
    #[error("class {0}: only IN records are read")]
    UnsupportedClass(String),
    /// A record without a type.
    #[error("record without a type")]
    MissingType,
    /// A type that is neither known nor `TYPEnnn`.
    #[error("unknown record type {0:?}")]
    UnknownType(String),
    /// RFC 3597 generic syntax for a type the ring reads.
    #[error("{0} in RFC 3597 generic syntax is not supported: write it as {1}")]
    GenericType(String, &'static str),
    /// Record data that does not parse.
    #[error("{record_type} data {data:?}: expected {expected}")]
    BadData {
        /// `SRV`, `TXT`, `A` or `AAAA`.
        record_type: &'static str,
        /// The data as written.
        data: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A TXT character-string over 255 bytes.
    #[error("TXT string of {0} bytes: at most 255")]
    StringTooLong(usize),
}

impl ZoneError {
    fn new(line: usize, kind: ZoneErrorKind) -> ZoneError {
        ZoneError { line, kind }
    }
}

// === impl Zone ===

impl Zone {
    /// Parses a zone file. `$ORIGIN` starts unset: a file with relative
    /// names must set it, as the zone statement of `named.conf` does for
    /// BIND.
    ///
    /// # Errors
    ///
    /// The first [`ZoneError`], with its line.
    pub fn parse(text: &str) -> Result<Zone, ZoneError> {
        let mut parser = Parser::default();
        for entry in lexer::entries(text)? {
            parser.entry(entry)?;
        }
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, record) in parser.records.iter().enumerate() {
            by_name.entry(record.name.clone()).or_default().push(index);
        }
        Ok(Zone {
            records: parser.records,
            by_name,
        })
    }

    /// Every record read, in file order.
    pub fn records(&self) -> &[ZoneRecord] {
        &self.records
    }

    /// The records at `name` (any case, with or without the final dot), in
    /// file order.
    pub fn records_at<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a ZoneRecord> + 'a {
        self.by_name
            .get(&absolute(name))
            .into_iter()
            .flatten()
            .filter_map(|&index| self.records.get(index))
    }

    /// The address SPEC §3 gives an SRV target: its numerically smallest A
    /// record, or if it has none its smallest AAAA record.
    pub fn address_of(&self, target: &str) -> Option<IpAddr> {
        let mut v4: Option<Ipv4Addr> = None;
        let mut v6: Option<Ipv6Addr> = None;
        for record in self.records_at(target) {
            match record.data {
                RecordData::A(addr) => v4 = Some(v4.map_or(addr, |known| known.min(addr))),
                RecordData::Aaaa(addr) => v6 = Some(v6.map_or(addr, |known| known.min(addr))),
                _ => {}
            }
        }
        v4.map(IpAddr::V4).or(v6.map(IpAddr::V6))
    }
}

/// `name` lower-cased with its final dot.
pub(crate) fn absolute(name: &str) -> String {
    let mut name = name.to_ascii_lowercase();
    if !name.ends_with('.') {
        name.push('.');
    }
    name
}

/// The state of a parse: the directives in force and the records so far.
#[derive(Default)]
struct Parser {
    origin: Option<String>,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    previous_owner: Option<String>,
    records: Vec<ZoneRecord>,
}

/// The record types the ring reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    A,
    Aaaa,
    Srv,
    Txt,
    Soa,
    /// A known type the ring does not use.
    Other,
}

impl Parser {
    fn entry(&mut self, entry: Entry) -> Result<(), ZoneError> {
        let mut words = entry.words.into_iter().peekable();
        let owner = if entry.owner_omitted {
            match &self.previous_owner {
                Some(owner) => owner.clone(),
                None => return Err(ZoneError::new(entry.line, ZoneErrorKind::NoPreviousOwner)),
            }
        } else {
            // The lexer never yields an entry without words.
            let Some(first) = words.next() else {
                return Ok(());
            };
            if !first.quoted && first.raw.starts_with('$') {
                return self.directive(first, words.collect());
            }
            self.name(&first)?
        };

        let mut ttl: Option<u32> = None;
        let mut class_seen = false;
        let kind_word = loop {
            let Some(word) = words.next() else {
                return Err(ZoneError::new(entry.line, ZoneErrorKind::MissingType));
            };
            if word.quoted {
                return Err(ZoneError::new(word.line, ZoneErrorKind::Quoted(word.raw)));
            }
            if word.raw.starts_with(|c: char| c.is_ascii_digit()) {
                if ttl.is_some() {
                    return Err(ZoneError::new(word.line, ZoneErrorKind::Repeated("TTL")));
                }
                ttl = Some(parse_ttl(&word)?);
            } else if is_class(&word.raw) {
                if class_seen {
                    return Err(ZoneError::new(word.line, ZoneErrorKind::Repeated("class")));
                }
                class_seen = true;
                let class = word.raw.to_ascii_uppercase();
                if class != "IN" && class != "CLASS1" {
                    return Err(ZoneError::new(
                        word.line,
                        ZoneErrorKind::UnsupportedClass(word.raw),
                    ));
                }
            } else {
                break word;
            }
        };
        let kind = record_kind(&kind_word)?;
        let data: Vec<Word> = words.collect();
        self.previous_owner = Some(owner.clone());

        // RFC 1035: an omitted TTL is the last one stated; RFC 2308's $TTL
        // takes precedence; BIND falls back on the SOA's minimum.
        if ttl.is_some() {
            self.last_ttl = ttl;
        }
        let ttl = ttl.or(self.default_ttl).or(self.last_ttl).or_else(|| {
            let minimum = (kind == Kind::Soa)
                .then(|| data.get(6))
                .flatten()
                .and_then(|word| parse_ttl(word).ok());
            self.last_ttl = minimum;
            minimum
        });

        let data = match kind {
            Kind::Soa | Kind::Other => return Ok(()),
            Kind::A => RecordData::A(single(&data, "A", entry.line)?),
            Kind::Aaaa => RecordData::Aaaa(single(&data, "AAAA", entry.line)?),
            Kind::Srv => RecordData::Srv(self.srv(&data, entry.line)?),
            Kind::Txt => RecordData::Txt(txt(data, entry.line)?),
        };
        self.records.push(ZoneRecord {
            line: entry.line,
            name: owner,
            ttl,
            data,
        });
        Ok(())
    }

    fn directive(&mut self, directive: Word, arguments: Vec<Word>) -> Result<(), ZoneError> {
        let line = directive.line;
        match directive.raw.to_ascii_uppercase().as_str() {
            "$ORIGIN" => {
                let [origin] = <[Word; 1]>::try_from(arguments).map_err(|_| {
                    ZoneError::new(
                        line,
                        ZoneErrorKind::DirectiveArguments {
                            directive: "$ORIGIN",
                            expected: "one domain name",
                        },
                    )
                })?;
                self.origin = Some(self.name(&origin)?);
            }
            "$TTL" => {
                let [ttl] = <[Word; 1]>::try_from(arguments).map_err(|_| {
                    ZoneError::new(
                        line,
                        ZoneErrorKind::DirectiveArguments {
                            directive: "$TTL",
                            expected: "one TTL",
                        },
                    )
                })?;
                self.default_ttl = Some(parse_ttl(&ttl)?);
            }
            _ => {
                return Err(ZoneError::new(
                    line,
                    ZoneErrorKind::UnsupportedDirective(directive.raw),
                ))
            }
        }
        Ok(())
    }

    /// A domain name made absolute against the origin, lower-cased.
    fn name(&self, word: &Word) -> Result<String, ZoneError> {
        if word.quoted {
            return Err(ZoneError::new(
                word.line,
                ZoneErrorKind::Quoted(word.raw.clone()),
            ));
        }
        let raw = word.raw.as_str();
        let origin = || {
            self.origin
                .clone()
                .ok_or_else(|| ZoneError::new(word.line, ZoneErrorKind::NoOrigin(raw.to_owned())))
        };
        if raw == "@" {
            return origin();
        }
        if raw == "." {
            return Ok(".".to_owned());
        }
        // A final dot that is not escaped makes the name absolute.
        let trailing_backslashes = raw
            .strip_suffix('.')
            .map(|rest| rest.chars().rev().take_while(|&c| c == '\\').count());
        let is_absolute = trailing_backslashes.is_some_and(|count| count % 2 == 0);
        let body = if is_absolute {
            &raw[..raw.len() - 1]
        } else {
            raw
        };
        if body.is_empty() || has_empty_label(body) {
            return Err(ZoneError::new(
                word.line,
                ZoneErrorKind::EmptyLabel(raw.to_owned()),
            ));
        }
        let name = if is_absolute {
            format!("{body}.")
        } else {
            match origin()?.as_str() {
                "." => format!("{body}."),
                origin => format!("{body}.{origin}"),
            }
        };
        Ok(name.to_ascii_lowercase())
    }

    fn srv(&self, data: &[Word], line: usize) -> Result<Srv, ZoneError> {
        let bad = || {
            ZoneError::new(
                line,
                ZoneErrorKind::BadData {
                    record_type: "SRV",
                    data: joined(data),
                    expected: "priority weight port target, the first three from 0 to 65535",
                },
            )
        };
        let [priority, weight, port, target] = data else {
            return Err(bad());
        };
        let number = |word: &Word| {
            if word.quoted || !word.raw.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            word.raw.parse::<u16>().map_err(|_| bad())
        };
        Ok(Srv {
            priority: number(priority)?,
            weight: number(weight)?,
            port: number(port)?,
            target: self.name(target)?,
        })
    }
}

/// Whether `word` is a class mnemonic (any case) or `CLASSnnn`.
fn is_class(word: &str) -> bool {
    let upper = word.to_ascii_uppercase();
    matches!(upper.as_str(), "IN" | "CH" | "CS" | "HS" | "NONE" | "ANY")
        || upper
            .strip_prefix("CLASS")
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Every type IANA lists, for recognising (and skipping) the ones the ring
/// does not use.
const OTHER_TYPES: &[&str] = &[
    "NS",
    "MD",
    "MF",
    "CNAME",
    "MB",
    "MG",
    "MR",
    "NULL",
    "WKS",
    "PTR",
    "HINFO",
    "MINFO",
    "MX",
    "RP",
    "AFSDB",
    "X25",
    "ISDN",
    "RT",
    "NSAP",
    "NSAP-PTR",
    "SIG",
    "KEY",
    "PX",
    "GPOS",
    "LOC",
    "NXT",
    "EID",
    "NIMLOC",
    "ATMA",
    "NAPTR",
    "KX",
    "CERT",
    "A6",
    "DNAME",
    "SINK",
    "OPT",
    "APL",
    "DS",
    "SSHFP",
    "IPSECKEY",
    "RRSIG",
    "NSEC",
    "DNSKEY",
    "DHCID",
    "NSEC3",
    "NSEC3PARAM",
    "TLSA",
    "SMIMEA",
    "HIP",
    "NINFO",
    "RKEY",
    "TALINK",
    "CDS",
    "CDNSKEY",
    "OPENPGPKEY",
    "CSYNC",
    "ZONEMD",
    "SVCB",
    "HTTPS",
    "DSYNC",
    "SPF",
    "UINFO",
    "UID",
    "GID",
    "UNSPEC",
    "NID",
    "L32",
    "L64",
    "LP",
    "EUI48",
    "EUI64",
    "NXNAME",
    "TKEY",
    "TSIG",
    "URI",
    "CAA",
    "AVC",
    "DOA",
    "AMTRELAY",
    "RESINFO",
    "WALLET",
    "CLA",
    "IPN",
    "TA",
    "DLV",
];

fn record_kind(word: &Word) -> Result<Kind, ZoneError> {
    let upper = word.raw.to_ascii_uppercase();
    let kind = match upper.as_str() {
        "A" => Kind::A,
        "AAAA" => Kind::Aaaa,
        "SRV" => Kind::Srv,
        "TXT" => Kind::Txt,
        "SOA" => Kind::Soa,
        other if OTHER_TYPES.contains(&other) => Kind::Other,
        other => {
            let Some(number) = other
                .strip_prefix("TYPE")
                .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            else {
                return Err(ZoneError::new(
                    word.line,
                    ZoneErrorKind::UnknownType(word.raw.clone()),
                ));
            };
            let mnemonic = match number.trim_start_matches('0') {
                "1" => "A",
                "28" => "AAAA",
                "33" => "SRV",
                "16" => "TXT",
                _ => return Ok(Kind::Other),
            };
            return Err(ZoneError::new(
                word.line,
                ZoneErrorKind::GenericType(word.raw.clone(), mnemonic),
            ));
        }
    };
    Ok(kind)
}

/// A TTL: decimal seconds, or BIND's `1w2d3h4m5s` (case-insensitive; a
/// final number without a unit is seconds).
fn parse_ttl(word: &Word) -> Result<u32, ZoneError> {
    let bad = || ZoneError::new(word.line, ZoneErrorKind::BadTtl(word.raw.clone()));
    if word.quoted || word.raw.is_empty() {
        return Err(bad());
    }
    let mut total: u32 = 0;
    let mut number: Option<u32> = None;
    for c in word.raw.chars() {
        if let Some(digit) = c.to_digit(10) {
            let value = number.unwrap_or(0);
            number = Some(
                value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(digit))
                    .ok_or_else(bad)?,
            );
            continue;
        }
        let unit: u32 = match c.to_ascii_lowercase() {
            'w' => 604_800,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let value = number.take().ok_or_else(bad)?;
        total = value
            .checked_mul(unit)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(bad)?;
    }
    if let Some(seconds) = number {
        total = total.checked_add(seconds).ok_or_else(bad)?;
    }
    Ok(total)
}

fn has_empty_label(body: &str) -> bool {
    // An unescaped dot at the start, or two in a row.
    let mut previous_was_dot = true;
    let mut escaped = false;
    for c in body.chars() {
        if escaped {
            escaped = false;
            previous_was_dot = false;
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                previous_was_dot = false;
            }
            '.' if previous_was_dot => return true,
            '.' => previous_was_dot = true,
            _ => previous_was_dot = false,
        }
    }
    false
}

/// The one word of A or AAAA data, as an address.
fn single<T: std::str::FromStr>(
    data: &[Word],
    record_type: &'static str,
    line: usize,
) -> Result<T, ZoneError> {
    let expected = if record_type == "A" {
        "one IPv4 address"
    } else {
        "one IPv6 address"
    };
    match data {
        [word] if !word.quoted => word.raw.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        ZoneError::new(
            line,
            ZoneErrorKind::BadData {
                record_type,
                data: joined(data),
                expected,
            },
        )
    })
}

/// TXT data: one or more character-strings, quoted or not.
fn txt(data: Vec<Word>, line: usize) -> Result<Vec<Vec<u8>>, ZoneError> {
    if data.is_empty() {
        return Err(ZoneError::new(
            line,
            ZoneErrorKind::BadData {
                record_type: "TXT",
                data: String::new(),
                expected: "at least one character-string",
            },
        ));
    }
    data.into_iter()
        .map(|word| {
            if word.bytes.len() > 255 {
                Err(ZoneError::new(
                    word.line,
                    ZoneErrorKind::StringTooLong(word.bytes.len()),
                ))
            } else {
                Ok(word.bytes)
            }
        })
        .collect()
}

fn joined(data: &[Word]) -> String {
    data.iter()
        .map(|word| {
            if word.quoted {
                format!("\"{}\"", word.raw)
            } else {
                word.raw.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;
