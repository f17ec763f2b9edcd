//! Config errors, and the one helper every key's error goes through.
//!
//! Every error names the file, the line and column where possible, the key
//! as a dotted path (`services.frob.virtual_nodes`), the value as written,
//! and what was expected, so an operator can fix a config from the message
//! alone: `config.toml:7:17: services.frob.virtual_nodes = 0: must be at least 1`.
//!
//! A config is checked whole: validators report each error to [`Errors`]
//! and carry on, so one run lists every error ([`ConfigErrors`]) instead of
//! making the operator fix them one restart at a time.

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read the configuration: {source}")]
    Read {
        /// The file, as given.
        file: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A key is unknown, malformed, missing, or disagrees with another key.
    /// Boxed so that `Result<_, ConfigError>` stays small.
    #[error("{0}")]
    Key(Box<KeyError>),
}

// === impl ConfigError ===

impl ConfigError {
    /// The dotted path of the key at fault, when the error is about a key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Key(error) => Some(&error.key),
        }
    }

    /// Where in the file the error is, when it has one place.
    pub fn position(&self) -> Option<Position> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Key(error) => error.position,
        }
    }
}

/// Every error found in a config, in the order of the file (errors with no
/// place, such as a missing table, last); never empty. Displayed one per
/// line.
#[derive(Debug)]
pub struct ConfigErrors {
    /// The first error: held apart so that there always is one.
    first: ConfigError,
    rest: Vec<ConfigError>,
}

// === impl ConfigErrors ===

impl ConfigErrors {
    /// The first error found.
    pub fn first(&self) -> &ConfigError {
        &self.first
    }

    /// Every error, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        std::iter::once(&self.first).chain(&self.rest)
    }

    /// How many errors there are: at least 1.
    pub fn len(&self) -> usize {
        1 + self.rest.len()
    }

    /// Never true: there is always a first error (for clippy's
    /// `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Where an error sorts: in the order of the file, errors with no place
/// last.
fn file_order(error: &ConfigError) -> (bool, Option<Position>) {
    let position = error.position();
    (position.is_none(), position)
}

impl ConfigErrors {
    /// `first` and `more`, found in this order, in the order of the file
    /// (errors at one place, or with none, stay in the order found).
    fn new(mut first: ConfigError, mut more: Vec<ConfigError>) -> ConfigErrors {
        more.sort_by_key(file_order);
        if let Some(earliest) = more.first_mut() {
            if file_order(earliest) < file_order(&first) {
                std::mem::swap(&mut first, earliest);
                more.sort_by_key(file_order);
            }
        }
        ConfigErrors { first, rest: more }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(first: ConfigError) -> Self {
        ConfigErrors {
            first,
            rest: Vec::new(),
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.first)?;
        for error in &self.rest {
            write!(f, "\n{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.first)
    }
}

/// The errors found so far while validating. Validators report here and go
/// on with a placeholder (a key's default), so later keys are still
/// checked; checks between keys use only keys that were valid, so a
/// placeholder never causes a second, bogus error.
#[derive(Debug, Default)]
pub(super) struct Errors(RefCell<Vec<ConfigError>>);

// === impl Errors ===

impl Errors {
    pub(super) fn report(&self, error: ConfigError) {
        self.0.borrow_mut().push(error);
    }

    /// How many errors were reported so far: comparing two counts tells
    /// whether a table had an error in between.
    pub(super) fn count(&self) -> usize {
        self.0.borrow().len()
    }

    /// Forgets the errors reported after the first `kept` for which
    /// `consequence` holds: those that follow from an earlier error.
    pub(super) fn forget_after(&self, kept: usize, consequence: impl Fn(&ConfigError) -> bool) {
        let mut errors = self.0.borrow_mut();
        let mut index = 0;
        errors.retain(|error| {
            index += 1;
            index <= kept || !consequence(error)
        });
    }

    /// Every error so far and `last`, which stopped validation.
    pub(super) fn stop(self, last: ConfigError) -> ConfigErrors {
        let mut errors = self.0.into_inner().into_iter();
        match errors.next() {
            None => ConfigErrors::from(last),
            Some(first) => ConfigErrors::new(first, errors.chain([last]).collect()),
        }
    }

    /// `value` if nothing was reported, else every error.
    pub(super) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        let mut errors = self.0.into_inner().into_iter();
        match errors.next() {
            None => Ok(value),
            Some(first) => Err(ConfigErrors::new(first, errors.collect())),
        }
    }
}

/// An error about one key: the details [`ConfigError::Key`] displays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    /// The file, as given to the loader.
    pub file: String,
    /// Line and column of the value (or key, or table) at fault; `None` for
    /// errors with no single place, such as a missing `[[routes]]` table.
    pub position: Option<Position>,
    /// The key as a dotted path with array indices from 0:
    /// `services.frob.instances[1].addr`. Keys that are not bare TOML keys
    /// are quoted: `services."my.svc".srv`.
    pub key: String,
    /// The value as written in the file, when there is one.
    pub value: Option<String>,
    /// What is wrong, and what was expected.
    pub problem: String,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(position) = self.position {
            write!(f, ":{position}")?;
        }
        write!(f, ": {}", self.key)?;
        if let Some(value) = &self.value {
            write!(f, " = {value}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// A place in the config text, both 1-based; the column counts characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, in characters (not bytes).
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The dotted path of a key, built while walking the document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct KeyPath(String);

// === impl KeyPath ===

impl KeyPath {
    /// The document itself.
    pub(super) fn root() -> KeyPath {
        KeyPath::default()
    }

    /// The path of the key `name` of this table, quoted when it is not a
    /// bare TOML key.
    pub(super) fn key(&self, name: &str) -> KeyPath {
        let mut path = self.0.clone();
        if !path.is_empty() {
            path.push('.');
        }
        let bare = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if bare {
            path.push_str(name);
        } else {
            path.push_str(&format!("{name:?}"));
        }
        KeyPath(path)
    }

    /// The path of element `index` (from 0) of this array.
    pub(super) fn index(&self, index: usize) -> KeyPath {
        KeyPath(format!("{}[{index}]", self.0))
    }

    /// Appends a path as the user wrote it (used for syntax errors, where
    /// the text is all there is).
    pub(super) fn raw(&self, written: &str) -> KeyPath {
        if self.0.is_empty() {
            KeyPath(written.to_owned())
        } else {
            KeyPath(format!("{}.{written}", self.0))
        }
    }

    pub(super) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of keys and indices in the path, to prefer the deepest of
    /// two places that cover the same text.
    pub(super) fn depth(&self) -> usize {
        self.0.matches(['.', '[']).count() + usize::from(!self.0.is_empty())
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(top level)")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// What an error points at in the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum At {
    /// A value: its position is given and its text quoted.
    Value(Range<usize>),
    /// A key or table header: its position is given, nothing is quoted.
    Place(Range<usize>),
    /// Nothing in the text (a table that is missing altogether).
    Nowhere,
}

/// The text being loaded and its file name: everything an error needs;
/// and where errors go.
#[derive(Clone, Copy, Debug)]
pub(super) struct Source<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
    pub(super) errors: &'a Errors,
}

/// Longest value quoted in a message, in characters.
const MAX_QUOTED: usize = 60;

// === impl Source ===

impl Source<'_> {
    /// The one constructor of key errors: every check in the loader reports
    /// through here, so every message has the same shape.
    pub(super) fn error(&self, key: &KeyPath, at: At, problem: impl fmt::Display) -> ConfigError {
        let (position, value) = match at {
            At::Value(span) => (Some(self.position(span.start)), Some(self.quote(span))),
            At::Place(span) => (Some(self.position(span.start)), None),
            At::Nowhere => (None, None),
        };
        ConfigError::Key(Box::new(KeyError {
            file: self.file.to_owned(),
            position,
            key: key.to_string(),
            value,
            problem: problem.to_string(),
        }))
    }

    /// Records an error and lets validation go on.
    pub(super) fn report(&self, error: ConfigError) {
        self.errors.report(error);
    }

    /// The value, or `None` once its error is recorded.
    pub(super) fn ok<T>(&self, result: Result<T, ConfigError>) -> Option<T> {
        result.map_err(|error| self.report(error)).ok()
    }

    /// The 1-based line and character column of a byte offset. Offsets
    /// past the end (errors at end of file) land just after the last
    /// character; offsets inside a character land on it.
    pub(super) fn position(&self, offset: usize) -> Position {
        let before = &self.text[..self.boundary(offset)];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }

    /// `offset` moved back onto a character boundary within the text, so
    /// that it can slice the text whatever a parser reported.
    pub(super) fn boundary(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// The text of a value as written, on one line and not too long.
    fn quote(&self, span: Range<usize>) -> String {
        let text = self.text.get(span).unwrap_or_default().trim();
        let first_line = text.lines().next().unwrap_or_default().trim_end();
        let cut = first_line.len() < text.len();
        let mut quoted: String = first_line.chars().take(MAX_QUOTED).collect();
        if cut || quoted.len() < first_line.len() {
            quoted.push_str(" …");
        }
        quoted
    }
}
