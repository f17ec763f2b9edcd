//! `[server] admin_token` and `admin_token_file` (SPEC §9.7): the secret
//! the admin API asks for, kept out of logs and error messages.
//!
//! The token is never quoted: an error about it points at its line and
//! column (or names its file) and says what is wrong, and [`AdminToken`]'s
//! `Debug` prints `<redacted>`, so a config logged with `{:?}` shows that
//! a token is set and nothing of it.

use std::fmt;
use std::path::Path;

use toml::Spanned;

use super::check::span_of;
use super::error::{At, ConfigError, KeyPath, Source};

/// The bearer token every admin request but `GET /healthz` and
/// `GET /readyz` must carry. Visible ASCII, at least one character.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

// === impl AdminToken ===

impl AdminToken {
    /// The token's bytes, for the admin API's constant-time comparison.
    /// Named so that a use that would log it stands out.
    pub fn reveal(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What is wrong with a token's text, if anything: it travels in an
/// `Authorization` header, so it must be a header value without spaces.
fn token_problem(token: &str) -> Option<&'static str> {
    if token.is_empty() {
        return Some("is empty: expected a token of visible ASCII characters");
    }
    if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Some("expected visible ASCII characters only, no spaces (the value is not shown)");
    }
    None
}

/// `admin_token` or `admin_token_file` (read now, its trailing newlines
/// trimmed), never both; `None` when neither is given. A relative file
/// name is taken from the working directory, as `--config` is.
pub(super) fn admin_token(
    source: &Source<'_>,
    server: &KeyPath,
    token: Option<&Spanned<String>>,
    file: Option<&Spanned<String>>,
) -> Result<Option<AdminToken>, ConfigError> {
    let (token_key, file_key) = (server.key("admin_token"), server.key("admin_token_file"));
    match (token, file) {
        (None, None) => Ok(None),
        (Some(_), Some(file)) => Err(source.error(
            &file_key,
            At::Place(file.span()),
            format!("conflicts with {token_key}: give one or the other"),
        )),
        (Some(token), None) => match token_problem(token.get_ref()) {
            None => Ok(Some(AdminToken(token.get_ref().clone()))),
            Some(problem) => Err(source.error(&token_key, At::Place(token.span()), problem)),
        },
        (None, Some(file)) => {
            let name = file.get_ref();
            let at = || span_of(Some(file)).map_or(At::Nowhere, At::Value);
            let text = std::fs::read_to_string(Path::new(name)).map_err(|error| {
                source.error(&file_key, at(), format!("cannot read {name:?}: {error}"))
            })?;
            let token = text.trim_end_matches(['\n', '\r']);
            match token_problem(token) {
                None => Ok(Some(AdminToken(token.to_owned()))),
                Some(problem) => {
                    Err(source.error(&file_key, at(), format!("the token in {name:?} {problem}")))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigErrors};

    fn server(lines: &str) -> Result<Config, ConfigErrors> {
        Config::from_toml(
            &format!(
                "[server]\n{lines}\n\n[services.web]\nsrv = \"_w._http.example.com\"\n\n[[routes]]\nservice = \"web\"\n"
            ),
            "config.toml",
        )
    }

    fn token_of(lines: &str) -> Option<Vec<u8>> {
        server(lines)
            .unwrap_or_else(|error| panic!("{error}"))
            .server
            .admin_token
            .map(|token| token.reveal().to_vec())
    }

    fn error_of(lines: &str) -> String {
        server(lines)
            .err()
            .unwrap_or_else(|| panic!("accepted: {lines}"))
            .to_string()
    }

    /// A file of its own in the system's temporary directory, removed when
    /// dropped.
    struct TokenFile(std::path::PathBuf);

    impl TokenFile {
        fn with(name: &str, contents: &str) -> TokenFile {
            let path =
                std::env::temp_dir().join(format!("shardproxy-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            TokenFile(path)
        }

        fn line(&self) -> String {
            format!("admin_token_file = {:?}", self.0.display().to_string())
        }
    }

    impl Drop for TokenFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn no_token_by_default() {
        assert_eq!(token_of(""), None);
    }

    #[test]
    fn a_token_in_the_file_or_from_a_token_file() {
        assert_eq!(
            token_of("admin_token = \"s3cret\""),
            Some(b"s3cret".to_vec())
        );
        let file = TokenFile::with("token", "fr0m-file\r\n");
        assert_eq!(
            token_of(&file.line()),
            Some(b"fr0m-file".to_vec()),
            "the trailing newline is trimmed"
        );
    }

    #[test]
    fn both_keys_are_an_error_naming_both() {
        let file = TokenFile::with("both", "x\n");
        let error = error_of(&format!("admin_token = \"s3cret\"\n{}", file.line()));
        assert!(
            error.starts_with("config.toml:3:")
                && error.contains("server.admin_token_file")
                && error.contains("conflicts with server.admin_token"),
            "{error}"
        );
        assert!(
            !error.contains("s3cret"),
            "the token is not quoted: {error}"
        );
    }

    #[test]
    fn empty_or_unreadable_token_files_are_errors_naming_the_file() {
        let file = TokenFile::with("empty", "\n");
        let error = error_of(&file.line());
        let name = file.0.display().to_string();
        assert!(
            error.contains("server.admin_token_file")
                && error.contains(&name)
                && error.contains("is empty"),
            "{error}"
        );
        let error = error_of("admin_token_file = \"/nonexistent/shardproxy-token\"");
        assert!(
            error.contains("server.admin_token_file")
                && error.contains("cannot read \"/nonexistent/shardproxy-token\""),
            "{error}"
        );
    }

    #[test]
    fn bad_tokens_are_errors_that_do_not_show_them() {
        let error = error_of("admin_token = \"\"");
        assert!(
            error.starts_with("config.toml:2:") && error.contains("server.admin_token: is empty"),
            "{error}"
        );
        let error = error_of("admin_token = \"two words\"");
        assert!(error.contains("server.admin_token"), "{error}");
        assert!(
            !error.contains("two words"),
            "the token is not quoted: {error}"
        );
        let file = TokenFile::with("spaces", "two words\n");
        let error = error_of(&file.line());
        assert!(
            !error.contains("two words"),
            "the token is not quoted: {error}"
        );
    }

    #[test]
    fn debug_of_the_config_does_not_show_the_token() {
        let config = server("admin_token = \"s3cret-value\"").unwrap();
        let shown = format!("{config:?}");
        assert!(shown.contains("admin_token: Some(<redacted>)"), "{shown}");
        assert!(!shown.contains("s3cret-value"), "{shown}");
    }
}
