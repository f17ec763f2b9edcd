//! Logs: `tracing` to stderr, as text for people or JSON for pipelines, at
//! the level of `[log] level` unless `RUST_LOG` says otherwise.

use std::io::IsTerminal as _;

use tracing_subscriber::filter::Directive;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// rustls warns, through `log`, about what a client's handshake carries:
/// an IP address as its SNI name (curl or wrk to `https://10.0.0.1/`), on
/// every such connection. That is the client's business, not the
/// operator's, and would flood the log of a listener behind addresses; a
/// filter that names `rustls` keeps its own level.
const QUIET_RUSTLS: &str = "rustls=error";

/// Installs the process's log subscriber. `RUST_LOG`, when set, overrides
/// `level`. A second call does nothing (the first subscriber stays).
pub fn init(level: &str, format: LogFormat) {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref(), level);
    // Colours only for a terminal: not in the journal or a pod's log.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // An error means a subscriber is already installed: keep it.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The filter of `env` (`RUST_LOG`) when it parses, else of `level`, else
/// `info`; rustls at `error` unless it names rustls.
fn filter(env: Option<&str>, level: &str) -> EnvFilter {
    let (text, filter) = match env.map(|text| (text, EnvFilter::try_new(text))) {
        Some((text, Ok(filter))) => (text, filter),
        _ => match EnvFilter::try_new(level) {
            Ok(filter) => (level, filter),
            Err(_) => ("info", EnvFilter::new("info")),
        },
    };
    match QUIET_RUSTLS.parse::<Directive>() {
        Ok(quiet) if !text.contains("rustls") => filter.add_directive(quiet),
        _ => filter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_is_quiet_unless_the_filter_names_it() {
        assert!(filter(None, "info").to_string().contains("rustls=error"));
        assert!(filter(Some("debug"), "info")
            .to_string()
            .contains("rustls=error"));
        let named = filter(None, "info,rustls=debug").to_string();
        assert!(
            named.contains("rustls=debug") && !named.contains("rustls=error"),
            "{named}"
        );
        // A bad RUST_LOG falls back to the level, and that to info.
        assert!(filter(Some("=bad=="), "warn").to_string().contains("warn"));
        assert!(filter(None, "nonsense==").to_string().contains("info"));
    }
}
