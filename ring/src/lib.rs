//! The consistent-hash ring of shardproxy, as `SPEC.md` §2 and §3 define it.
//!
//! Pure and synchronous: no I/O, no async, no clocks. The proxy discovers
//! records over DNS and hands their bytes here; everything that decides
//! where a key goes lives in this crate, so it can be tested exhaustively.
//!
//! # Layout
//!
//! - [`token`]: positions, key hashing (XXH3-128) and token text.
//! - [`instance`]: `host:port` instance names.
//! - [`ring`]: building a ring, ownership, preference lists, shares,
//!   the fingerprint.
//! - [`records`]: the DNS record formats: `tokens.` and `config.` TXT words,
//!   derived tokens.
//! - [`srv`]: RFC 2782 ordering of SRV records for `balance = "srv"`.
//! - [`keyspace`]: exact amounts of key space (0 to 2^128 positions).
//! - [`zone`]: zone files (RFC 1035 master format), the ring one
//!   publishes for a service, and the DNS UPDATE between two of them.
//! - [`diff`]: what changes between two rings (`ring diff`).
//! - [`plan`]: tokens for joining instances, and evenly spaced tokens
//!   (`ring plan`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod diff;
pub mod instance;
pub mod keyspace;
pub mod load;
pub mod plan;
pub mod records;
pub mod ring;
pub mod srv;
pub mod token;
pub mod zone;

pub use diff::{diff, ChangedRange, RingDiff};
pub use instance::{InstanceName, NameError};
pub use keyspace::KeySpace;
pub use plan::{balanced_tokens, plan, plan_by_load, Plan, PlanError, PlannedInstance, Split};
pub use records::{RingConfig, RingConfigError};
pub use ring::{
    Fingerprint, Instance, Member, PreferenceList, Range, Redundancy, Replication, Ring, RingError,
    RingWarning,
};
pub use token::{Token, TokenError};
pub use zone::{Zone, ZoneError, ZoneRing, ZoneRingError};
