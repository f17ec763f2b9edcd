//! Command-line options (`--name value` pairs; few enough not to need a crate).

use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

pub const USAGE: &str = "usage: fixedrate --addr IP:PORT --rate REQ_PER_S --duration SECONDS \
[--conns 64] [--keys 100000] [--prefix /k/] [--seed 20240601] [--drain 5]";

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
        };
        while let Some(name) = args.next() {
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
                _ => return Err(ArgsError::Unknown(name)),
            }
        }
        opts.addr = addr.ok_or(ArgsError::Required("--addr"))?;
        opts.rate = rate.ok_or(ArgsError::Required("--rate"))?;
        opts.duration = duration.ok_or(ArgsError::Required("--duration"))?;
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
}
