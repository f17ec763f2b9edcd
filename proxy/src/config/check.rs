//! The checks every key goes through, shared by the validators.
//!
//! [`field`] (an optional key, with its default) and [`check`] (a key that
//! is there) run a check that returns what was expected, and turn a
//! failure into a [`ConfigError`] naming the key and quoting its value, by
//! way of the one error constructor, `Source::error`. The small checks
//! below (`int_in`, `choice`, `duration`, `size`, ...) return those
//! expectations in the same words everywhere.

use std::fmt::Display;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::ops::Range;
use std::time::Duration;

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
pub(super) fn field<R, T>(
    source: &Source<'_>,
    key: &KeyPath,
    raw: Option<&Spanned<R>>,
    default: T,
    check_value: impl FnOnce(&R) -> Result<T, String>,
) -> Result<T, ConfigError> {
    match raw {
        None => Ok(default),
        Some(raw) => check(source, key, raw, check_value),
    }
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

/// Two keys where the first may not exceed the second. The error blames
/// the first if the user gave it, else the second.
pub(super) fn not_above<T: PartialOrd>(
    source: &Source<'_>,
    (low_key, low_raw, low): (&KeyPath, Option<Range<usize>>, T),
    (high_key, high_raw, high): (&KeyPath, Option<Range<usize>>, T),
    show: impl Fn(&T) -> String,
) -> Result<(), ConfigError> {
    if low <= high {
        return Ok(());
    }
    Err(match (low_raw, high_raw) {
        (None, Some(span)) => source.error(
            high_key,
            At::Value(span),
            format!("must not be less than {low_key} ({})", show(&low)),
        ),
        (low_raw, _) => source.error(
            low_key,
            span_or_nowhere(low_raw),
            format!("must not be more than {high_key} ({})", show(&high)),
        ),
    })
}

pub(super) fn span_or_nowhere(span: Option<Range<usize>>) -> At {
    span.map_or(At::Nowhere, At::Value)
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

pub(super) fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        "expected an IP address and port, like \"127.0.0.1:8080\" or \"[::1]:8080\"".to_owned()
    })
}
