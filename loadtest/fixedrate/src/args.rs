//! Command-line options (`--name value` pairs; few enough not to need a crate).

use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

pub const USAGE: &str = "usage: fixedrate --addr IP:PORT --rate REQ_PER_S --duration SECONDS \
[--conns 64] [--keys 100000] [--prefix /k/] [--seed 20240601] [--drain 5] \
[--tls --ca PEM_FILE [--server-name localhost]]";

/// The server name checked against the certificate when `--server-name` is
/// not given (`--addr` is always an IP address, so it cannot supply one).
pub const DEFAULT_SERVER_NAME: &str = "localhost";

/// What to send, where and how fast.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub addr: SocketAddr,
    /// Requests per second, spread evenly.
    pub rate: f64,
    /// How long requests are scheduled for.
    pub duration: Duration,
    /// Keep-alive connections in the pool.
    pub conns: usize,
    /// Keys are `0..keys`.
    pub keys: u64,
    pub prefix: String,
    pub seed: u64,
    /// How long to wait for the last responses after the schedule ends.
    pub drain: Duration,
    /// `--tls`: HTTPS instead of plain HTTP.
    pub tls: Option<Tls>,
}

/// How to speak TLS (`--tls`, `--ca`, `--server-name`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    /// PEM file of the certificate(s) to trust: the server's chain must end at one.
    pub ca: PathBuf,
    /// Sent as SNI (when a DNS name) and checked against the certificate;
    /// a valid [`ServerName`] (checked when parsed).
    pub server_name: String,
}

impl Tls {
    /// The server name as rustls wants it.
    pub fn server_name(&self) -> Result<ServerName<'static>, ArgsError> {
        ServerName::try_from(self.server_name.clone()).map_err(|_| ArgsError::Invalid {
            name: "--server-name".to_owned(),
            value: self.server_name.clone(),
            expected: "a DNS name or an IP address",
        })
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum ArgsError {
    #[error("unknown option {0:?}")]
    Unknown(String),
    #[error("option {0} needs a value")]
    MissingValue(String),
    #[error("option {name}: {value:?} is not {expected}")]
    Invalid {
        name: String,
        value: String,
        expected: &'static str,
    },
    #[error("option {0} is required")]
    Required(&'static str),
    #[error("option {0} only goes with --tls")]
    NeedsTls(&'static str),
}

impl Options {
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, ArgsError> {
        let (mut addr, mut rate, mut duration) = (None, None, None);
        let mut opts = Options {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            rate: 0.0,
            duration: Duration::ZERO,
            conns: 64,
            keys: 100_000,
            prefix: "/k/".to_owned(),
            seed: 20_240_601,
            drain: Duration::from_secs(5),
            tls: None,
        };
        let (mut tls, mut ca, mut server_name) = (false, None, None);
        while let Some(name) = args.next() {
            // the one option without a value
            if name == "--tls" {
                tls = true;
                continue;
            }
            let value = args
                .next()
                .ok_or_else(|| ArgsError::MissingValue(name.clone()))?;
            let invalid = |expected| ArgsError::Invalid {
                name: name.clone(),
                value: value.clone(),
                expected,
            };
            match name.as_str() {
                "--addr" => addr = Some(value.parse().map_err(|_| invalid("an IP:PORT address"))?),
                "--rate" => {
                    rate = Some(positive(&value).ok_or_else(|| invalid("a positive number"))?)
                }
                "--duration" => {
                    duration =
                        Some(seconds(&value).ok_or_else(|| invalid("seconds, like 10 or 10s"))?)
                }
                "--drain" => {
                    opts.drain = seconds(&value).ok_or_else(|| invalid("seconds, like 5 or 5s"))?
                }
                "--conns" => {
                    opts.conns = whole(&value).ok_or_else(|| invalid("a whole number above 0"))?
                }
                "--keys" => {
                    opts.keys = whole(&value).ok_or_else(|| invalid("a whole number above 0"))?
                }
                "--seed" => opts.seed = value.parse().map_err(|_| invalid("a whole number"))?,
                "--prefix" if value.starts_with('/') => opts.prefix = value,
                "--prefix" => return Err(invalid("a path starting with /")),
                "--ca" if !value.is_empty() => ca = Some(PathBuf::from(value)),
                "--ca" => return Err(invalid("a PEM file")),
                "--server-name" => {
                    ServerName::try_from(value.as_str())
                        .map_err(|_| invalid("a DNS name or an IP address"))?;
                    server_name = Some(value);
                }
                _ => return Err(ArgsError::Unknown(name)),
            }
        }
        opts.addr = addr.ok_or(ArgsError::Required("--addr"))?;
        opts.rate = rate.ok_or(ArgsError::Required("--rate"))?;
        opts.duration = duration.ok_or(ArgsError::Required("--duration"))?;
        if tls {
            opts.tls = Some(Tls {
                // no --insecure: the certificate is always verified
                ca: ca.ok_or(ArgsError::Required("--ca (with --tls)"))?,
                server_name: server_name.unwrap_or_else(|| DEFAULT_SERVER_NAME.to_owned()),
            });
        } else if ca.is_some() {
            return Err(ArgsError::NeedsTls("--ca"));
        } else if server_name.is_some() {
            return Err(ArgsError::NeedsTls("--server-name"));
        }
        Ok(opts)
    }

    /// Requests in the whole schedule.
    pub fn total(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).round() as u64
    }
}

fn positive(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0)
}

fn seconds(s: &str) -> Option<Duration> {
    positive(s.strip_suffix('s').unwrap_or(s)).map(Duration::from_secs_f64)
}

fn whole<T: std::str::FromStr + PartialOrd + Default>(s: &str) -> Option<T> {
    s.parse::<T>().ok().filter(|v| *v > T::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> Result<Options, ArgsError> {
        Options::parse(args.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn parses_required_and_defaults() {
        let o = parse("--addr 127.0.0.1:8080 --rate 2500.5 --duration 10s --conns 8").unwrap();
        assert_eq!(o.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            (o.rate, o.duration, o.conns, o.keys),
            (2500.5, Duration::from_secs(10), 8, 100_000)
        );
        assert_eq!(o.total(), 25_005);
    }

    #[test]
    fn names_the_bad_option() {
        assert_eq!(
            parse("--addr 127.0.0.1:1 --rate 1"),
            Err(ArgsError::Required("--duration"))
        );
        assert!(
            matches!(parse("--rate -5"), Err(ArgsError::Invalid { name, .. }) if name == "--rate")
        );
        assert!(
            matches!(parse("--conns 0"), Err(ArgsError::Invalid { name, .. }) if name == "--conns")
        );
        assert_eq!(
            parse("--rate"),
            Err(ArgsError::MissingValue("--rate".into()))
        );
        assert_eq!(
            parse("--bogus 1"),
            Err(ArgsError::Unknown("--bogus".into()))
        );
    }

    #[test]
    fn parses_tls_options() {
        let base = "--addr 127.0.0.1:8443 --rate 1 --duration 1";
        assert_eq!(parse(base).unwrap().tls, None);
        let o = parse(&format!("{base} --tls --ca /tmp/cert.pem")).unwrap();
        let tls = o.tls.unwrap();
        assert_eq!(
            (tls.ca.to_str(), tls.server_name.as_str()),
            (Some("/tmp/cert.pem"), "localhost")
        );
        assert_eq!(tls.server_name().unwrap().to_str(), "localhost");
        // --tls takes no value: the options after it still parse, in any order
        let o = parse(&format!("--tls --server-name 127.0.0.1 --ca c.pem {base}")).unwrap();
        let tls = o.tls.unwrap();
        assert_eq!(
            (tls.ca.to_str(), tls.server_name.as_str()),
            (Some("c.pem"), "127.0.0.1")
        );
        assert!(matches!(
            tls.server_name(),
            Ok(rustls::pki_types::ServerName::IpAddress(_))
        ));
    }

    #[test]
    fn refuses_incomplete_tls_options() {
        let base = "--addr 127.0.0.1:8443 --rate 1 --duration 1";
        assert_eq!(
            parse(&format!("{base} --tls")),
            Err(ArgsError::Required("--ca (with --tls)"))
        );
        assert_eq!(
            parse(&format!("{base} --ca c.pem")),
            Err(ArgsError::NeedsTls("--ca"))
        );
        assert_eq!(
            parse(&format!("{base} --server-name localhost")),
            Err(ArgsError::NeedsTls("--server-name"))
        );
        assert!(matches!(
            parse(&format!("{base} --tls --ca c.pem --server-name bad!name")),
            Err(ArgsError::Invalid { name, .. }) if name == "--server-name"
        ));
        assert_eq!(
            parse(&format!("{base} --tls --ca")),
            Err(ArgsError::MissingValue("--ca".into()))
        );
    }
}
