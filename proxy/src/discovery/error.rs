//! Why a refresh failed. Every variant means "keep the last good ring".

use shardproxy_ring::{NameError, RingConfigError, RingError, TokenError};

/// A failed or malformed discovery. The ring in use is kept; the error is
/// logged, counted and shown at `/ring`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The lookup itself failed: timeout, SERVFAIL, refused, no server.
    #[error("DNS {record_type} lookup of {name} failed: {reason}")]
    Lookup {
        /// The name asked for.
        name: String,
        /// `SRV`, `TXT`, `A` or `AAAA`.
        record_type: &'static str,
        /// What the resolver said.
        reason: String,
    },
    /// The service's SRV name has no usable records. Treated as a failure so
    /// that a DNS mistake cannot black-hole a service.
    #[error("SRV {name} has no records ({reason}): a ring needs at least one instance")]
    NoInstances {
        /// The SRV name.
        name: String,
        /// NXDOMAIN, NODATA, or only the target ".".
        reason: &'static str,
    },
    /// An SRV target without any A or AAAA record.
    #[error("SRV target {target} (port {port}) has no A or AAAA record")]
    NoAddress {
        /// The target.
        target: String,
        /// The SRV port.
        port: u16,
    },
    /// An SRV target that cannot name an instance.
    #[error("SRV target {target:?} cannot name an instance: {source}")]
    BadTarget {
        /// The target as published.
        target: String,
        /// Why.
        source: NameError,
    },
    /// A malformed token at `tokens.<port>.<target>`.
    #[error("malformed token at {name}: {source}")]
    BadToken {
        /// The TXT owner name.
        name: String,
        /// Why.
        source: TokenError,
    },
    /// A malformed `config.<service>` record.
    #[error("malformed ring config at {name}: {source}")]
    BadRingConfig {
        /// The TXT owner name.
        name: String,
        /// Why.
        source: RingConfigError,
    },
    /// A name that is not a valid DNS name.
    #[error("{name:?} is not a valid DNS name: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The records describe a ring that cannot be built.
    #[error(transparent)]
    Ring(#[from] RingError),
}
