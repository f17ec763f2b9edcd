//! The access log (SPEC §9.2): one line per request, in text or JSON, to
//! a file or standard output, whatever `[log] level` says. It is its own
//! writer, not a `tracing` event: an operator who turns the process's log
//! down to `error` still gets every request, and a log shipper reads a
//! stream of requests only.
//!
//! A line is written when the response body has been sent (or the client
//! went away), so it carries the bytes sent and the whole duration, as
//! nginx's `$body_bytes_sent` and `$request_time` do. The file is opened
//! for appending, one `write` per line, and opened again on `SIGUSR1`, so
//! logrotate can move it away.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderValue, Version};
use http_body::{Frame, SizeHint};
use serde::Serialize;

use crate::body::{Body, BoxError};
use crate::config::{LogConfig, LogFormat};
use crate::forward::exchange::{Exchange, Tried};
use crate::headers::ClientAddr;

/// Where access log lines go.
pub struct AccessLog {
    format: LogFormat,
    /// The file, or `None` for standard output.
    path: Option<PathBuf>,
    out: Mutex<Output>,
}

enum Output {
    Stdout,
    File(File),
}

/// The access log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the access log {}: {source}", path.display())]
pub struct OpenError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: io::Error,
}

impl AccessLog {
    /// The access log of `config`, or `None` when `access_log` is off.
    ///
    /// # Errors
    ///
    /// [`OpenError`] when the file cannot be opened for appending.
    pub fn open(config: &LogConfig) -> Result<Option<AccessLog>, OpenError> {
        if !config.access_log {
            return Ok(None);
        }
        let out = match &config.access_log_file {
            Some(path) => Output::File(append_to(path)?),
            None => Output::Stdout,
        };
        Ok(Some(AccessLog {
            format: config.format,
            path: config.access_log_file.clone(),
            out: Mutex::new(out),
        }))
    }

    /// Whether this log writes what `config` asks for, so that a reload
    /// can keep it.
    pub fn is_for(&self, config: &LogConfig) -> bool {
        config.access_log && config.format == self.format && config.access_log_file == self.path
    }

    /// Opens the file again (after logrotate moved it); standard output
    /// stays as it is.
    ///
    /// # Errors
    ///
    /// [`OpenError`] when the file cannot be opened; the old one is kept.
    pub fn reopen(&self) -> Result<(), OpenError> {
        if let Some(path) = &self.path {
            let file = append_to(path)?;
            *self.out.lock().unwrap_or_else(PoisonError::into_inner) = Output::File(file);
        }
        Ok(())
    }

    /// Writes one line (which ends in a newline).
    fn write(&self, line: &[u8]) {
        let written = match &mut *self.out.lock().unwrap_or_else(PoisonError::into_inner) {
            Output::Stdout => io::stdout().lock().write_all(line),
            Output::File(file) => file.write_all(line),
        };
        if let Err(error) = written {
            tracing::warn!(%error, "access log line not written");
        }
    }
}

fn append_to(path: &Path) -> Result<File, OpenError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| OpenError {
            path: path.to_owned(),
            source,
        })
}

/// What a request's line says of its request, taken when it arrives.
pub struct Asked {
    time: SystemTime,
    client: SocketAddr,
    method: String,
    host: Option<String>,
    path: String,
    protocol: &'static str,
    tls: bool,
}

impl Asked {
    /// The request of `parts`, from `client`, as it arrived.
    pub fn of(parts: &Parts, client: &ClientAddr) -> Asked {
        let host = parts
            .headers
            .get(header::HOST)
            .map(|host| String::from_utf8_lossy(host.as_bytes()).into_owned())
            .or_else(|| parts.uri.authority().map(|authority| authority.to_string()));
        Asked {
            time: SystemTime::now(),
            client: client.addr(),
            method: parts.method.as_str().to_owned(),
            host,
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string),
            protocol: protocol(parts.version),
            tls: client.over_tls(),
        }
    }
}

/// A request's line, waiting for its body to be sent.
pub struct Pending {
    log: Arc<AccessLog>,
    asked: Asked,
    request_id: HeaderValue,
    status: u16,
    service: Option<String>,
    cache: Option<&'static str>,
    tried: Vec<Tried>,
    error: Option<String>,
    started: tokio::time::Instant,
}

impl Pending {
    /// The line of the request `asked`, answered `status` after
    /// `exchange`, with the proxy's own `error` if it answered one.
    pub fn new(
        log: Arc<AccessLog>,
        asked: Asked,
        request_id: HeaderValue,
        status: u16,
        exchange: Exchange,
        error: Option<String>,
        started: tokio::time::Instant,
    ) -> Pending {
        Pending {
            log,
            asked,
            request_id,
            status,
            service: exchange.service,
            cache: exchange.cache.map(|cache| cache.as_str()),
            tried: exchange.tried,
            error,
            started,
        }
    }

    /// Writes the line, with `bytes` of body sent.
    fn write(self, bytes: u64) {
        let line = Line {
            time: rfc3339(self.asked.time),
            request_id: &String::from_utf8_lossy(self.request_id.as_bytes()),
            client: self.asked.client.to_string(),
            method: &self.asked.method,
            host: self.asked.host.as_deref(),
            path: &self.asked.path,
            status: self.status,
            bytes,
            duration_ms: millis(self.started.elapsed()),
            service: self.service.as_deref(),
            cache: self.cache,
            protocol: self.asked.protocol,
            tls: self.asked.tls,
            attempts: self
                .tried
                .iter()
                .map(|tried| Attempt {
                    upstream: tried.upstream.as_str(),
                    outcome: tried.outcome.word(),
                    ms: millis(tried.took),
                })
                .collect(),
            error: self.error.as_deref(),
        };
        let mut text = match self.log.format {
            LogFormat::Json => serde_json::to_vec(&line).unwrap_or_default(),
            LogFormat::Text => line.text().into_bytes(),
        };
        text.push(b'\n');
        self.log.write(&text);
    }
}

/// A line's fields, in SPEC §9.2's names.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    request_id: &'a str,
    client: String,
    method: &'a str,
    host: Option<&'a str>,
    path: &'a str,
    status: u16,
    bytes: u64,
    duration_ms: f64,
    service: Option<&'a str>,
    cache: Option<&'static str>,
    /// The client's HTTP version, as nginx's `$server_protocol` writes it.
    protocol: &'static str,
    /// Whether the client came over TLS.
    tls: bool,
    attempts: Vec<Attempt<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// One attempt of a line.
#[derive(Serialize)]
struct Attempt<'a> {
    upstream: &'a str,
    outcome: std::borrow::Cow<'static, str>,
    ms: f64,
}

impl Line<'_> {
    /// The text form: `key=value` pairs on one line (logfmt), the values
    /// that may hold spaces or quotes quoted as JSON strings are.
    fn text(&self) -> String {
        use std::fmt::Write as _;
        let quoted = |text: &str| serde_json::to_string(text).unwrap_or_default();
        let or_dash = |text: Option<&str>| text.map_or_else(|| "-".to_owned(), quoted);
        let mut line = format!(
            "time={} request_id={} client={} method={} host={} path={} status={} bytes={} duration_ms={:.3} service={} cache={} protocol={} tls={}",
            self.time,
            quoted(self.request_id),
            self.client,
            quoted(self.method),
            or_dash(self.host),
            quoted(self.path),
            self.status,
            self.bytes,
            self.duration_ms,
            self.service.unwrap_or("-"),
            self.cache.unwrap_or("-"),
            self.protocol,
            self.tls,
        );
        let attempts: Vec<String> = self
            .attempts
            .iter()
            .map(|attempt| format!("{}/{}/{:.3}", attempt.upstream, attempt.outcome, attempt.ms))
            .collect();
        let _ = write!(line, " attempts={}", attempts.join(","));
        if let Some(error) = self.error {
            let _ = write!(line, " error={}", quoted(error));
        }
        line
    }
}

/// An HTTP version as request lines write it.
fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// A duration in milliseconds, to the microsecond.
fn millis(duration: Duration) -> f64 {
    (duration.as_micros() as f64) / 1000.0
}

/// `time` as RFC 3339 in UTC, to the millisecond:
/// `2026-12-06T11:42:07.123Z`.
fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// The date `days` after 1970-01-01, in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, for days since the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A response body whose request's line is written once it is sent: at
/// its end, when it fails, or when the client goes away before.
pub struct Logged {
    body: Body,
    pending: Option<Pending>,
    bytes: u64,
}

impl Logged {
    /// `body`, with the line `pending`.
    pub fn new(body: Body, pending: Pending) -> Logged {
        Logged {
            body,
            pending: Some(pending),
            bytes: 0,
        }
    }

    fn finish(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.write(self.bytes);
        }
    }
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                if this.body.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(None | Some(Err(_))) => this.finish(),
            Poll::Pending => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2026-12-06T11:42:07.123Z
        let time = UNIX_EPOCH + Duration::from_millis(1_796_557_327_123);
        assert_eq!(rfc3339(time), "2026-12-06T11:42:07.123Z");
        // A leap day.
        let time = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(time), "2000-02-29T00:00:00.000Z");
    }
}
