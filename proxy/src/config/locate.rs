//! Finding the key at a place in the text, for errors that the toml crate
//! reports with a byte span but without a usable key path.
//!
//! `toml::de::Error` keeps the keys it passed through in a private field, so
//! the path is recovered from the span instead: the parsed document knows
//! the span of every key and value, and the smallest one that covers the
//! error's span is the key at fault. [`prune`] removes that key, so that
//! the document can be read again for the next error.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{At, ConfigError, KeyPath, Source};

/// The best place found so far: its length, its path, and whether it is a
/// value (quoted in the message) rather than a key or a table header.
struct Best {
    len: usize,
    path: KeyPath,
    is_value: bool,
}

/// The path of the smallest key or value whose span covers `span` (a span
/// may end where the place ends: syntax errors are often empty spans just
/// after a value). Ties go to the deeper path, since an array of tables and
/// its first element share the span of the first `[[header]]`.
fn find(root: &DeTable<'_>, span: &Range<usize>) -> Option<(KeyPath, bool)> {
    let mut best = None;
    walk_table(root, &KeyPath::root(), span, &mut best);
    best.map(|best| (best.path, best.is_value))
}

fn consider(
    place: Range<usize>,
    path: &KeyPath,
    is_value: bool,
    span: &Range<usize>,
    best: &mut Option<Best>,
) {
    if !(place.start <= span.start && span.end <= place.end) {
        return;
    }
    let len = place.end - place.start;
    let better = best
        .as_ref()
        .is_none_or(|best| len < best.len || (len == best.len && path.depth() > best.path.depth()));
    if better {
        *best = Some(Best {
            len,
            path: path.clone(),
            is_value,
        });
    }
}

fn walk_table(table: &DeTable<'_>, path: &KeyPath, span: &Range<usize>, best: &mut Option<Best>) {
    for (key, value) in table.iter() {
        let child = path.key(key.get_ref());
        consider(key.span(), &child, false, span, best);
        walk_value(value, &child, span, best);
    }
}

fn walk_value(
    value: &Spanned<DeValue<'_>>,
    path: &KeyPath,
    span: &Range<usize>,
    best: &mut Option<Best>,
) {
    match value.get_ref() {
        // A table's span is its `[header]` (or its inline text): a place,
        // not a value worth quoting.
        DeValue::Table(table) => {
            consider(value.span(), path, false, span, best);
            walk_table(table, path, span, best);
        }
        DeValue::Array(array) => {
            consider(value.span(), path, true, span, best);
            for (index, item) in array.iter().enumerate() {
                walk_value(item, &path.index(index), span, best);
            }
        }
        _ => consider(value.span(), path, true, span, best),
    }
}

/// Turns a serde error (unknown field, wrong type, out of range) into a
/// [`ConfigError`] naming its key, found from its span in `root`.
pub(super) fn serde_error(
    source: &Source<'_>,
    root: &DeTable<'_>,
    error: &toml::de::Error,
) -> ConfigError {
    let message = error.message();
    let Some(span) = error.span().filter(|span| !span.is_empty()) else {
        // Only the document itself has an empty span.
        return source.error(&KeyPath::root(), At::Nowhere, message);
    };
    match find(root, &span) {
        Some((path, true)) => source.error(&path, At::Value(span), message),
        Some((path, false)) => source.error(&path, At::Place(span), message),
        None => source.error(&KeyPath::root(), At::Place(span), message),
    }
}

/// Turns a TOML syntax error into a [`ConfigError`]. The key is looked for
/// in what the parser could recover of the document, then in the text of
/// the line (its `[header]`, or its `key =` under the last header).
pub(super) fn syntax_error(source: &Source<'_>, error: &toml::de::Error) -> ConfigError {
    let end = source.text.len();
    let span = error.span().unwrap_or(end..end);
    let (recovered, _) = DeTable::parse_recoverable(source.text);
    let path = find(recovered.get_ref(), &span)
        .map(|(path, _)| path)
        .filter(|path| !path.is_root())
        .unwrap_or_else(|| written_key(source, span.start));
    let problem = format!("invalid TOML: {}", error.message());
    source.error(&path, At::Place(span), problem)
}

/// The key at `offset` as written: the header of a `[table]` line, or the
/// `key` of a `key = value` line under the last header before it.
fn written_key(source: &Source<'_>, offset: usize) -> KeyPath {
    let offset = source.boundary(offset);
    let text = source.text;
    let line_start = text[..offset].rfind('\n').map_or(0, |newline| newline + 1);
    let line_end = text[offset..]
        .find('\n')
        .map_or(text.len(), |newline| offset + newline);
    let line = text[line_start..line_end].trim();
    if let Some(header) = header_name(line) {
        return KeyPath::root().raw(header);
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .find_map(|line| header_name(line.trim()))
        .map_or_else(KeyPath::root, |header| KeyPath::root().raw(header));
    match line.split_once('=') {
        Some((key, _)) if !line.starts_with('#') && !key.trim().is_empty() => table.raw(key.trim()),
        _ => table,
    }
}

/// The name in a `[table]` or `[[array]]` header line, as written.
fn header_name(line: &str) -> Option<&str> {
    let inside = line.strip_prefix('[')?;
    let inside = inside.strip_prefix('[').unwrap_or(inside);
    let name = inside.split(']').next().unwrap_or_default().trim();
    (!name.is_empty()).then_some(name)
}

/// One step of a path into the document, to find an entry again.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// Removes from `root` the key at fault in a serde error at `span`: the
/// deepest table entry whose key or value covers it, so that reading the
/// document again finds the next error. Entries of tables only, never an
/// array's elements, so that later elements keep their indices (an error
/// in an element removes the whole array). Returns the removed key's path,
/// or `None` when no entry covers `span`.
pub(super) fn prune(root: &mut DeTable<'_>, span: &Range<usize>) -> Option<KeyPath> {
    let mut best = None;
    find_entry(root, &mut Vec::new(), &KeyPath::root(), span, &mut best);
    let (steps, path) = best?;
    remove(root, &steps).then_some(path)
}

fn covers(place: &Range<usize>, span: &Range<usize>) -> bool {
    place.start <= span.start && span.end <= place.end
}

fn find_entry(
    table: &DeTable<'_>,
    steps: &mut Vec<Step>,
    path: &KeyPath,
    span: &Range<usize>,
    best: &mut Option<(Vec<Step>, KeyPath)>,
) {
    for (key, value) in table.iter() {
        steps.push(Step::Key(key.get_ref().to_string()));
        let child = path.key(key.get_ref());
        let deeper = best
            .as_ref()
            .is_none_or(|(best, _)| steps.len() > best.len());
        if deeper && (covers(&key.span(), span) || covers(&value.span(), span)) {
            *best = Some((steps.clone(), child.clone()));
        }
        find_in_value(value, steps, &child, span, best);
        steps.pop();
    }
}

fn find_in_value(
    value: &Spanned<DeValue<'_>>,
    steps: &mut Vec<Step>,
    path: &KeyPath,
    span: &Range<usize>,
    best: &mut Option<(Vec<Step>, KeyPath)>,
) {
    match value.get_ref() {
        DeValue::Table(table) => find_entry(table, steps, path, span, best),
        DeValue::Array(array) => {
            for (index, item) in array.iter().enumerate() {
                steps.push(Step::Index(index));
                find_in_value(item, steps, &path.index(index), span, best);
                steps.pop();
            }
        }
        _ => {}
    }
}

/// Removes the table entry at the end of `steps`; whether there was one.
fn remove(table: &mut DeTable<'_>, steps: &[Step]) -> bool {
    match steps {
        [Step::Key(key)] => table.remove(key.as_str()).is_some(),
        [Step::Key(key), rest @ ..] => table
            .get_mut(key.as_str())
            .is_some_and(|value| remove_in(value.get_mut(), rest)),
        _ => false,
    }
}

fn remove_in(value: &mut DeValue<'_>, steps: &[Step]) -> bool {
    match (value, steps) {
        (DeValue::Table(table), steps) => remove(table, steps),
        (DeValue::Array(array), [Step::Index(index), rest @ ..]) => array
            .get_mut(*index)
            .is_some_and(|item| remove_in(item.get_mut(), rest)),
        _ => false,
    }
}
