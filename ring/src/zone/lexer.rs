//! Splits master-file text into entries (RFC 1035 §5.1): one per logical
//! line, with parentheses joining physical lines, `;` comments dropped and
//! quoted strings and escapes decoded.

use super::{ZoneError, ZoneErrorKind};

/// One logical line: a directive or a record, as words.
#[derive(Debug)]
pub(super) struct Entry {
    /// The physical line it starts on, from 1.
    pub line: usize,
    /// The line starts with a blank: the owner is omitted (the previous
    /// owner's).
    pub owner_omitted: bool,
    /// The words, in order; never empty.
    pub words: Vec<Word>,
}

/// One word of an entry.
#[derive(Debug)]
pub(super) struct Word {
    /// The physical line it is on.
    pub line: usize,
    /// The text as written, escapes included, quotes excluded: names are
    /// kept in this presentation form.
    pub raw: String,
    /// The text with escapes decoded (`\"`, `\\`, `\DDD`, `\X`): the bytes of
    /// a TXT character-string.
    pub bytes: Vec<u8>,
    /// It was a `"quoted string"`.
    pub quoted: bool,
}

/// The entries of `text`, in order.
///
/// # Errors
///
/// A quoted string that does not end on its line, a bad escape, a `(` inside
/// parentheses, a `)` without `(`, or a `(` never closed.
pub(super) fn entries(text: &str) -> Result<Vec<Entry>, ZoneError> {
    let mut entries = Vec::new();
    // The entry being read, and the line of the `(` that keeps it open.
    let mut current: Option<Entry> = None;
    let mut open_paren: Option<usize> = None;

    for (index, line_text) in text.split('\n').enumerate() {
        let line = index + 1;
        let line_text = line_text.strip_suffix('\r').unwrap_or(line_text);
        if open_paren.is_none() {
            if let Some(done) = current.take().filter(|entry| !entry.words.is_empty()) {
                entries.push(done);
            }
            current = Some(Entry {
                line,
                owner_omitted: line_text.starts_with([' ', '\t']),
                words: Vec::new(),
            });
        }
        let Some(entry) = current.as_mut() else {
            continue;
        };
        let mut chars = line_text.char_indices().peekable();
        while let Some(&(_, c)) = chars.peek() {
            match c {
                ' ' | '\t' => {
                    chars.next();
                }
                ';' => break,
                '(' => {
                    chars.next();
                    if open_paren.is_some() {
                        return Err(ZoneError::new(line, ZoneErrorKind::NestedParenthesis));
                    }
                    open_paren = Some(line);
                }
                ')' => {
                    chars.next();
                    if open_paren.take().is_none() {
                        return Err(ZoneError::new(line, ZoneErrorKind::UnmatchedParenthesis));
                    }
                }
                '"' => {
                    chars.next();
                    entry.words.push(quoted(&mut chars, line)?);
                }
                _ => entry.words.push(unquoted(&mut chars, line)?),
            }
        }
        // An entry's first line decides whether the owner is omitted; a
        // line that held only a comment (or nothing) starts no entry.
        if entry.words.is_empty() && open_paren.is_none() {
            current = None;
        }
    }
    if let Some(line) = open_paren {
        return Err(ZoneError::new(line, ZoneErrorKind::UnclosedParenthesis));
    }
    if let Some(done) = current.filter(|entry| !entry.words.is_empty()) {
        entries.push(done);
    }
    Ok(entries)
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// A word up to a blank, `;`, `(`, `)` or `"`.
fn unquoted(chars: &mut Chars<'_>, line: usize) -> Result<Word, ZoneError> {
    let mut raw = String::new();
    let mut bytes = Vec::new();
    while let Some(&(_, c)) = chars.peek() {
        if matches!(c, ' ' | '\t' | ';' | '(' | ')' | '"') {
            break;
        }
        chars.next();
        raw.push(c);
        if c == '\\' {
            escape(chars, line, &mut raw, &mut bytes)?;
        } else {
            push_char(&mut bytes, c);
        }
    }
    Ok(Word {
        line,
        raw,
        bytes,
        quoted: false,
    })
}

/// A quoted string, after its opening `"`, through its closing one, which
/// must be on the same line.
fn quoted(chars: &mut Chars<'_>, line: usize) -> Result<Word, ZoneError> {
    let mut raw = String::new();
    let mut bytes = Vec::new();
    loop {
        let Some((_, c)) = chars.next() else {
            return Err(ZoneError::new(line, ZoneErrorKind::UnterminatedString));
        };
        match c {
            '"' => break,
            '\\' => {
                raw.push(c);
                escape(chars, line, &mut raw, &mut bytes)?;
            }
            _ => {
                raw.push(c);
                push_char(&mut bytes, c);
            }
        }
    }
    Ok(Word {
        line,
        raw,
        bytes,
        quoted: true,
    })
}

/// After a `\`: `\DDD` (a byte, in decimal, at most 255) or `\X` (X itself).
fn escape(
    chars: &mut Chars<'_>,
    line: usize,
    raw: &mut String,
    bytes: &mut Vec<u8>,
) -> Result<(), ZoneError> {
    let Some((_, first)) = chars.next() else {
        return Err(ZoneError::new(
            line,
            ZoneErrorKind::BadEscape("\\ at the end of the line".to_owned()),
        ));
    };
    raw.push(first);
    if !first.is_ascii_digit() {
        push_char(bytes, first);
        return Ok(());
    }
    let mut digits = String::from(first);
    for _ in 0..2 {
        match chars.peek() {
            Some(&(_, digit)) if digit.is_ascii_digit() => {
                chars.next();
                digits.push(digit);
                raw.push(digit);
            }
            _ => {
                return Err(ZoneError::new(
                    line,
                    ZoneErrorKind::BadEscape(format!(
                        "\\{digits}: a decimal escape has three digits (\\DDD)"
                    )),
                ))
            }
        }
    }
    let value: u32 = digits.parse().unwrap_or(u32::MAX);
    let byte = u8::try_from(value).map_err(|_| {
        ZoneError::new(
            line,
            ZoneErrorKind::BadEscape(format!("\\{digits}: a decimal escape is at most 255")),
        )
    })?;
    bytes.push(byte);
    Ok(())
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}
