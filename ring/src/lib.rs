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

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod instance;
pub mod records;
pub mod ring;
pub mod srv;
pub mod token;

pub use instance::{InstanceName, NameError};
pub use records::{RingConfig, RingConfigError};
pub use ring::{
    Fingerprint, Instance, Member, PreferenceList, Range, Redundancy, Replication, Ring, RingError,
    RingWarning,
};
pub use token::{Token, TokenError};
