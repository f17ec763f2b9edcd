//! The checks every key goes through, shared by the validators.
//!
//! [`field`] (an optional key, with its default) and [`check`] (a key that
//! is there) run a check that returns what was expected, and turn a
//! failure into a [`ConfigError`] naming the key and quoting its value, by
//! way of the one error constructor, `Source::error`; [`field`] reports it
//! and goes on with the default. [`ordered`] relates two keys. The small
//! checks below (`int_in`, `choice`, `duration`, `size`, ...) return those
//! expectations in the same words everywhere.

use std::fmt::Display;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::Range;
use std::time::Duration;

use http::header::HeaderName;
use toml::{Spanned, Value};

use super::duration::{self, parse_duration};
use super::error::{At, ConfigError, KeyPath, Source};
use super::quantity::QuantityError;
use super::size::{self, format_size, parse_size};

/// Checks a key that is present: `check` says what was expected when the
/// value is not acceptable, and the error points at the value.
pub(super) fn check<R, T>(
    source: &Source<'_>,
    key: &KeyPath,
    raw: &Spanned<R>,
    check: impl FnOnce(&R) -> Result<T, String>,
) -> Result<T, ConfigError> {
    check(raw.get_ref()).map_err(|problem| source.error(key, At::Value(raw.span()), problem))
}

/// Checks an optional key: `default` when it is absent, else as [`check`].
/// A bad value is reported and the default returned in its place, so the
/// keys after it are still checked.
pub(super) fn field<R, T>(
    source: &Source<'_>,
    key: &KeyPath,
    raw: Option<&Spanned<R>>,
    default: T,
    check_value: impl FnOnce(&R) -> Result<T, String>,
) -> T {
    given(source, key, raw, check_value).unwrap_or(default)
}

/// Checks an optional key whose default depends on other keys: `None` when
/// it is absent or bad (then reported).
pub(super) fn given<R, T>(
    source: &Source<'_>,
    key: &KeyPath,
    raw: Option<&Spanned<R>>,
    check_value: impl FnOnce(&R) -> Result<T, String>,
) -> Option<T> {
    raw.and_then(|raw| source.ok(check(source, key, raw, check_value)))
}

/// A key that must be there; the error points at its table.
pub(super) fn required<'r, R>(
    source: &Source<'_>,
    key: &KeyPath,
    raw: Option<&'r Spanned<R>>,
    table: Range<usize>,
    example: &str,
) -> Result<&'r Spanned<R>, ConfigError> {
    raw.ok_or_else(|| {
        source.error(
            key,
            At::Place(table),
            format!("missing: expected {example}"),
        )
    })
}

/// One of two keys that must be in order ([`ordered`]).
pub(super) struct Bound<'k, T> {
    /// The key's path.
    pub(super) key: &'k KeyPath,
    /// The value given and valid ([`given`]), with its span; `None` when
    /// absent or bad, and then `default` applies.
    pub(super) given: Option<(T, Range<usize>)>,
    /// The default when the other key is absent too.
    pub(super) default: T,
}

impl<'k, T> Bound<'k, T> {
    /// Checks the key as [`given`] and keeps its span for [`ordered`].
    pub(super) fn new<R>(
        source: &Source<'_>,
        key: &'k KeyPath,
        raw: Option<&Spanned<R>>,
        default: T,
        check_value: impl FnOnce(&R) -> Result<T, String>,
    ) -> Bound<'k, T> {
        let given = given(source, key, raw, check_value);
        Bound {
            key,
            given: given.zip(span_of(raw)),
            default,
        }
    }
}

/// Two keys where the first may not exceed the second (a timeout and the
/// period it must fit in), as `(low, high)`. A key left out takes its
/// default moved to agree with the key given (`low` no more than `high`,
/// `high` no less than `low`): SPEC §9.1, a default never makes a valid
/// config invalid. Only two keys given that disagree are an error, which
/// blames the first. A key that was bad counts as left out, so its
/// placeholder causes no second error.
pub(super) fn ordered<T: Ord + Copy>(
    source: &Source<'_>,
    low: Bound<'_, T>,
    high: Bound<'_, T>,
    show: impl Fn(&T) -> String,
) -> (T, T) {
    match (low.given, high.given) {
        (None, None) => (low.default, high.default),
        (None, Some((high_value, _))) => (low.default.min(high_value), high_value),
        (Some((low_value, _)), None) => (low_value, high.default.max(low_value)),
        (Some((low_value, span)), Some((high_value, _))) => {
            if low_value > high_value {
                source.report(source.error(
                    low.key,
                    At::Value(span),
                    format!("must not be more than {} ({})", high.key, show(&high_value)),
                ));
            }
            (low_value, high_value)
        }
    }
}

pub(super) fn span_of<T>(raw: Option<&Spanned<T>>) -> Option<Range<usize>> {
    raw.map(Spanned::span)
}

/// An integer from `min` to `max`, converted to the field's type.
pub(super) fn int_in<T: TryFrom<i64>>(min: i64, max: i64) -> impl Fn(&i64) -> Result<T, String> {
    move |&number| {
        if number < min {
            return Err(format!("must be at least {min}"));
        }
        if number > max {
            return Err(format!("must be at most {max}"));
        }
        T::try_from(number).map_err(|_| format!("must be from {min} to {max}"))
    }
}

pub(super) fn nonzero(number: u32) -> Result<NonZeroU32, String> {
    NonZeroU32::new(number).ok_or_else(|| "must be at least 1".to_owned())
}

/// One of a few words, case-sensitive.
pub(super) fn choice<T: Copy>(
    options: &'static [(&'static str, T)],
) -> impl Fn(&String) -> Result<T, String> {
    move |text| {
        options
            .iter()
            .find(|(name, _)| name == text)
            .map(|&(_, value)| value)
            .ok_or_else(|| format!("expected {}", one_of(options.iter().map(|(name, _)| name))))
    }
}

/// `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
pub(super) fn one_of(names: impl Iterator<Item = impl Display>) -> String {
    let names: Vec<String> = names.map(|name| format!("\"{name}\"")).collect();
    match names.split_last() {
        None => "nothing".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// A duration or size: a string for `parse`, never a bare number.
pub(super) fn quantity<T>(
    value: &Value,
    parse: fn(&str) -> Result<T, QuantityError>,
    expected: &str,
) -> Result<T, String> {
    match value {
        Value::String(text) => parse(text).map_err(|error| format!("{error}: {expected}")),
        Value::Integer(_) | Value::Float(_) => {
            Err(format!("a bare number has no unit: {expected}"))
        }
        other => Err(format!("found a {}: {expected}", other.type_str())),
    }
}

pub(super) fn duration(value: &Value) -> Result<Duration, String> {
    quantity(value, parse_duration, duration::EXPECTED)
}

pub(super) fn positive_duration(value: &Value) -> Result<Duration, String> {
    let duration = duration(value)?;
    if duration.is_zero() {
        return Err("must be more than 0s".to_owned());
    }
    Ok(duration)
}

pub(super) fn size(value: &Value) -> Result<u64, String> {
    quantity(value, parse_size, size::EXPECTED)
}

pub(super) fn size_at_least(min: u64) -> impl Fn(&Value) -> Result<u64, String> {
    move |value| {
        let bytes = size(value)?;
        if bytes < min {
            return Err(format!("must be at least {}", format_size(min)));
        }
        Ok(bytes)
    }
}

pub(super) fn flag(value: &bool) -> Result<bool, String> {
    Ok(*value)
}

pub(super) fn header_name(text: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(text.as_bytes()).map_err(|_| {
        "expected an HTTP header name (letters, digits and !#$%&'*+-.^_`|~), like \"CDN-Cache-Control\"".to_owned()
    })
}

pub(super) fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        "expected an IP address and port, like \"127.0.0.1:8080\" or \"[::1]:8080\"".to_owned()
    })
}
