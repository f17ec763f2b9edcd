//! Instance names: `host:port`, the identity of a ring member (SPEC §2).

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// Why a host name cannot name an instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The host was empty (or only the root `.`).
    #[error("empty host name")]
    EmptyHost,
    /// The host holds white space, a control character or a `:`, which would
    /// make `host:port` ambiguous in the fingerprint and in zone files.
    #[error("host name {0:?} holds white space, a control character or ':'")]
    BadHost(String),
}

/// The name of an instance: its host (the SRV target, lower case, without a
/// trailing dot) and its port.
///
/// Ordering and equality are those of the text `host:port` in byte order,
/// because SPEC §2 breaks token ties and sorts the fingerprint that way.
/// Cloning is cheap: the text is shared.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct InstanceName {
    /// `host:port`; `host_len` marks where the host ends.
    text: Arc<str>,
    host_len: usize,
    port: u16,
}

// === impl InstanceName ===

impl InstanceName {
    /// Builds the name of the instance at `host` (any case, with or without
    /// the trailing dot of a fully qualified name) and `port`.
    ///
    /// # Errors
    ///
    /// [`NameError`] when the host is empty or could not be written in a
    /// zone file or a `host:port` pair.
    pub fn new(host: &str, port: u16) -> Result<InstanceName, NameError> {
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() {
            return Err(NameError::EmptyHost);
        }
        if host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':')
        {
            return Err(NameError::BadHost(host.to_owned()));
        }
        let host = host.to_ascii_lowercase();
        let host_len = host.len();
        Ok(InstanceName {
            text: format!("{host}:{port}").into(),
            host_len,
            port,
        })
    }

    /// The host: the SRV target in lower case without the trailing dot.
    pub fn host(&self) -> &str {
        &self.text[..self.host_len]
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Ord for InstanceName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.text.as_bytes().cmp(other.text.as_bytes())
    }
}

impl PartialOrd for InstanceName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_lower_case_without_trailing_dot() {
        let name = InstanceName::new("Frob1.Example.COM.", 8081).unwrap();
        assert_eq!(name.as_str(), "frob1.example.com:8081");
        assert_eq!(name.host(), "frob1.example.com");
        assert_eq!(name.port(), 8081);
    }

    #[test]
    fn order_is_byte_order_of_host_port() {
        // Numerically 9 < 10, but in byte order "a:10" < "a:9".
        let a10 = InstanceName::new("a", 10).unwrap();
        let a9 = InstanceName::new("a", 9).unwrap();
        assert!(a10 < a9);
        // ':' (0x3a) sorts after '.' (0x2e).
        let short = InstanceName::new("a", 1).unwrap();
        let long = InstanceName::new("a.b", 1).unwrap();
        assert!(long < short);
    }

    #[test]
    fn bad_hosts_are_rejected() {
        assert_eq!(InstanceName::new(".", 1), Err(NameError::EmptyHost));
        assert_eq!(InstanceName::new("", 1), Err(NameError::EmptyHost));
        assert!(InstanceName::new("a b", 1).is_err());
        assert!(InstanceName::new("::1", 1).is_err());
    }
}
