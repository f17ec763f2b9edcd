//! The TSIG key of `ring publish --tsig-key FILE`: a BIND key file, the
//! `key` statement that `tsig-keygen` prints and `nsupdate -k` reads, so
//! that an operator signs with the very file the server's config includes:
//!
//! ```text
//! key "ddns" {
//!     algorithm hmac-sha256;
//!     secret "base64...";
//! };
//! ```
//!
//! Read: one `key` statement (its name quoted or not), with `algorithm`
//! and `secret` in either order, and named.conf's comments (`#`, `//`,
//! `/* */`). The algorithms are those hickory signs with: `hmac-sha256`
//! (what `tsig-keygen` makes), `hmac-sha384` and `hmac-sha512`; any other
//! (`hmac-md5`, `hmac-sha1`, ...) is an error that says so, rather than an
//! update the server refuses for a reason the operator cannot see.

use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, TSigner};

/// How far a server's clock may be from ours, in seconds: BIND's and
/// nsupdate's default (RFC 8945 §10 recommends 300).
const FUDGE: u16 = 300;

/// The algorithms accepted, as a key file names them.
const ALGORITHMS: [(&str, TsigAlgorithm); 3] = [
    ("hmac-sha256", TsigAlgorithm::HmacSha256),
    ("hmac-sha384", TsigAlgorithm::HmacSha384),
    ("hmac-sha512", TsigAlgorithm::HmacSha512),
];

/// A TSIG key read from a key file.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// The key's name, which the server knows it by.
    pub name: Name,
    /// Its HMAC algorithm.
    pub algorithm: TsigAlgorithm,
    /// The shared secret (decoded).
    pub secret: Vec<u8>,
}

/// Not the secret: a key in a log or panic message must not leak it.
impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Why a key file cannot be used, and on which line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct KeyFileError {
    /// The physical line, from 1 (the last line for what is missing at the
    /// end).
    pub line: usize,
    /// What is wrong there.
    pub reason: String,
}

// === impl TsigKey ===

impl TsigKey {
    /// Reads the one `key` statement of a BIND key file.
    ///
    /// # Errors
    ///
    /// [`KeyFileError`] on anything but one well-formed `key` statement
    /// with a supported algorithm and a base64 secret.
    pub fn parse(text: &str) -> Result<TsigKey, KeyFileError> {
        let tokens = tokens(text)?;
        let last_line = text.lines().count().max(1);
        let mut tokens = tokens.into_iter().peekable();
        let mut next = |what: &str| {
            tokens.next().ok_or_else(|| KeyFileError {
                line: last_line,
                reason: format!("the file ends where {what} belongs"),
            })
        };
        let expect = |token: Token, wanted: &str, what: &str| {
            if !token.quoted && token.text == wanted {
                Ok(())
            } else {
                Err(token.error(format!("expected {what}, found {:?}", token.text)))
            }
        };

        expect(next("`key`")?, "key", "`key \"NAME\" { ... };`")?;
        let name_token = next("the key's name")?;
        let name = Name::from_ascii(&name_token.text).map_err(|error| {
            name_token.error(format!("key name {:?}: {error}", name_token.text))
        })?;
        expect(next("`{`")?, "{", "`{` after the key's name")?;
        let mut algorithm: Option<TsigAlgorithm> = None;
        let mut secret: Option<Vec<u8>> = None;
        loop {
            let statement = next("`algorithm`, `secret` or `}`")?;
            if !statement.quoted && statement.text == "}" {
                break;
            }
            let value = next("a value")?;
            expect(next("`;`")?, ";", "`;` after a value")?;
            match (statement.quoted, statement.text.as_str()) {
                (false, "algorithm") if algorithm.is_none() => {
                    algorithm = Some(parse_algorithm(&value)?);
                }
                (false, "secret") if secret.is_none() => {
                    secret = Some(
                        data_encoding::BASE64
                            .decode(value.text.as_bytes())
                            .map_err(|error| {
                                value.error(format!("the secret is not base64: {error}"))
                            })?,
                    );
                }
                (false, "algorithm" | "secret") => {
                    return Err(statement.error(format!("{} given twice", statement.text)))
                }
                _ => {
                    return Err(statement.error(format!(
                        "unknown statement {:?} in a key: expected algorithm or secret",
                        statement.text
                    )))
                }
            }
        }
        let end = next("`;` after `}`")?;
        expect(end, ";", "`;` after `}`")?;
        if let Some(extra) = tokens.next() {
            return Err(extra.error(
                "more after the key statement: give a file with one key (as tsig-keygen writes)"
                    .to_owned(),
            ));
        }
        let missing = |what: &str| KeyFileError {
            line: name_token.line,
            reason: format!("key {:?} has no {what}", name_token.text),
        };
        let algorithm = algorithm.ok_or_else(|| missing("algorithm"))?;
        let secret = secret.ok_or_else(|| missing("secret"))?;
        if secret.is_empty() {
            return Err(missing("secret (it is empty)"));
        }
        Ok(TsigKey {
            name,
            algorithm,
            secret,
        })
    }

    /// The signer of requests with this key.
    ///
    /// # Errors
    ///
    /// None with an algorithm [`TsigKey::parse`] accepts; hickory's error
    /// otherwise.
    pub fn signer(&self) -> Result<TSigner, hickory_proto::dnssec::DnsSecError> {
        TSigner::new(
            self.secret.clone(),
            self.algorithm.clone(),
            self.name.clone(),
            FUDGE,
        )
    }
}

fn parse_algorithm(value: &Token) -> Result<TsigAlgorithm, KeyFileError> {
    let wanted = value.text.to_ascii_lowercase();
    ALGORITHMS
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|(_, algorithm)| algorithm.clone())
        .ok_or_else(|| {
            let names: Vec<&str> = ALGORITHMS.iter().map(|(name, _)| *name).collect();
            value.error(format!(
                "algorithm {:?} is not supported: use {}",
                value.text,
                names.join(", ")
            ))
        })
}

/// A word, a quoted string or one of `{`, `}`, `;`.
#[derive(Debug)]
struct Token {
    text: String,
    quoted: bool,
    line: usize,
}

impl Token {
    fn error(&self, reason: String) -> KeyFileError {
        KeyFileError {
            line: self.line,
            reason,
        }
    }
}

/// The file's tokens, comments left out.
fn tokens(text: &str) -> Result<Vec<Token>, KeyFileError> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => skip_line(&mut chars, &mut line),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars, &mut line),
            '/' if chars.peek() == Some(&'*') => {
                let start = line;
                chars.next();
                let mut previous = ' ';
                loop {
                    let Some(c) = chars.next() else {
                        return Err(KeyFileError {
                            line: start,
                            reason: "`/*` comment never closed".to_owned(),
                        });
                    };
                    if c == '\n' {
                        line += 1;
                    }
                    if previous == '*' && c == '/' {
                        break;
                    }
                    previous = c;
                }
            }
            '{' | '}' | ';' => tokens.push(Token {
                text: c.to_string(),
                quoted: false,
                line,
            }),
            '"' => {
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped) if escaped != '\n' => text.push(escaped),
                            _ => {
                                return Err(KeyFileError {
                                    line,
                                    reason: "quoted string not closed on its line".to_owned(),
                                })
                            }
                        },
                        Some('\n') | None => {
                            return Err(KeyFileError {
                                line,
                                reason: "quoted string not closed on its line".to_owned(),
                            })
                        }
                        Some(c) => text.push(c),
                    }
                }
                tokens.push(Token {
                    text,
                    quoted: true,
                    line,
                });
            }
            c => {
                let mut text = c.to_string();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '{' | '}' | ';' | '"' | '#') {
                        break;
                    }
                    text.push(c);
                    chars.next();
                }
                tokens.push(Token {
                    text,
                    quoted: false,
                    line,
                });
            }
        }
    }
    Ok(tokens)
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, line: &mut usize) {
    for c in chars.by_ref() {
        if c == '\n' {
            *line += 1;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "c2VjcmV0IG9mIHRoZSB0ZXN0cyBvZiByaW5nIHB1Ymxpc2g=";

    fn error(text: &str) -> KeyFileError {
        match TsigKey::parse(text) {
            Ok(key) => panic!("parsed {key:?} from\n{text}"),
            Err(error) => error,
        }
    }

    #[test]
    fn tsig_keygen_output() {
        let text =
            format!("key \"ddns\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n");
        let key = TsigKey::parse(&text).unwrap();
        assert_eq!(key.name, Name::from_ascii("ddns").unwrap());
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(key.secret, b"secret of the tests of ring publish");
        let signer = key.signer().unwrap();
        assert_eq!(signer.signer_name().to_ascii(), "ddns.");
        assert!(
            !format!("{key:?}").contains(SECRET),
            "Debug hides the secret"
        );
    }

    #[test]
    fn comments_bare_names_order_and_other_algorithms() {
        let text = format!(
            "# made by hand\n// for the tests\n/* a\n block */ key update.key. {{ secret \"{SECRET}\"; \
             algorithm \"HMAC-SHA512\"; }};"
        );
        let key = TsigKey::parse(&text).unwrap();
        assert_eq!(key.name.to_ascii(), "update.key.");
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha512);
    }

    #[test]
    fn errors_name_the_line_and_what_is_wrong() {
        let cases = [
            (
                format!("key \"k\" {{\n algorithm hmac-md5;\n secret \"{SECRET}\";\n}};"),
                2,
                "algorithm \"hmac-md5\" is not supported: use hmac-sha256, hmac-sha384, hmac-sha512",
            ),
            (
                "key \"k\" {\n algorithm hmac-sha256;\n secret \"not base64!\";\n};".to_owned(),
                3,
                "the secret is not base64",
            ),
            (
                "key \"k\" {\n algorithm hmac-sha256;\n};".to_owned(),
                1,
                "key \"k\" has no secret",
            ),
            (
                format!("key \"k\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }}"),
                1,
                "the file ends where `;` after `}` belongs",
            ),
            (
                format!("key \"k\" {{ algorithm hmac-sha256;\n secret \"{SECRET}\"; }};\nkey \"j\" {{ }};"),
                3,
                "more after the key statement",
            ),
            (
                "options { };".to_owned(),
                1,
                "expected `key \"NAME\" { ... };`, found \"options\"",
            ),
            (
                "key \"k\" {\n algorithm hmac-sha256;\n secret \"abc\n".to_owned(),
                3,
                "quoted string not closed",
            ),
            (
                "key \"k\" {\n keyfile \"x\";\n};".to_owned(),
                2,
                "unknown statement \"keyfile\"",
            ),
            ("".to_owned(), 1, "the file ends where `key` belongs"),
        ];
        for (text, line, reason) in cases {
            let error = error(&text);
            assert_eq!(error.line, line, "{error} in\n{text}");
            assert!(error.reason.contains(reason), "{error} in\n{text}");
        }
    }
}
