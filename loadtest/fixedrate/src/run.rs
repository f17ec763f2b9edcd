//! The event loop: send on schedule, read responses, record latencies from
//! the time each request was due.

use crate::args::Options;
use crate::response::{self, ResponseError};
use crate::tls::{self, Negotiated, TlsError};
use rustix::buffer::spare_capacity;
use rustix::event::{epoll, Timespec};
use rustls::ClientConnection;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};
use thiserror::Error;

/// What a run saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Latency of every answered request, µs from when it was due.
    pub latencies_us: Vec<u32>,
    /// From the first due time to the last response.
    pub elapsed: Duration,
    /// Answered with a status other than 200.
    pub err_status: u64,
    /// Lost to a connection error (reset, closed with a request in flight, short write).
    pub err_io: u64,
    /// Still unanswered when the drain time ran out.
    pub err_timeout: u64,
    /// Sent more than 1 ms after they were due (no idle connection, or the client itself late).
    pub late_sends: u64,
    pub max_send_lag: Duration,
    /// Connections opened again after the server closed one.
    pub reconnects: u64,
    /// `--tls`: what the first connection's handshake settled on.
    pub tls: Option<Negotiated>,
    /// `--tls`: the first TLS error on an established connection (counted
    /// as a connection error, like a reset).
    pub tls_error: Option<String>,
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
    #[error("epoll: {0}")]
    Epoll(#[from] rustix::io::Errno),
    #[error("socket setup: {0}")]
    Socket(#[from] io::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("TLS handshake with {addr} (server name {server_name}) failed: {problem}")]
    Handshake {
        addr: std::net::SocketAddr,
        server_name: String,
        problem: String,
    },
    #[error("unusable response from {addr}: {source}")]
    Response {
        addr: std::net::SocketAddr,
        source: ResponseError,
    },
}

struct Conn {
    stream: TcpStream,
    /// `--tls`: the session, its handshake complete.
    tls: Option<ClientConnection>,
    buf: Vec<u8>,
    /// When the request in flight was due, if one is.
    due: Option<Instant>,
}

/// Runs the schedule of `opts` against `opts.addr`.
pub fn run(opts: &Options) -> Result<Outcome, RunError> {
    // epoll_pwait2 timeouts are rounded up by the timer slack (50 µs by default)
    rustix::thread::set_current_timer_slack(NonZeroU64::new(1))?;
    let client = opts.tls.as_ref().map(tls::Client::new).transpose()?;
    let client = client.as_ref();
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    // every connection is open (and its TLS handshake done) before the
    // schedule starts
    let mut conns = Vec::with_capacity(opts.conns);
    for i in 0..opts.conns {
        let (stream, tls) = connect(opts, client, &ep, i)?;
        conns.push(Conn {
            stream,
            tls,
            buf: Vec::with_capacity(4096),
            due: None,
        });
    }
    let mut idle: VecDeque<usize> = (0..opts.conns).collect();
    let total = opts.total();
    let period_ns = 1e9 / opts.rate;
    let start = Instant::now() + Duration::from_millis(20);
    let due_at = |i: u64| start + Duration::from_nanos((i as f64 * period_ns) as u64);
    let deadline = due_at(total) + opts.drain;
    let mut keys = SplitMix64(opts.seed);
    let mut request = Vec::with_capacity(128);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut events = Vec::with_capacity(opts.conns);
    let mut out = Outcome {
        latencies_us: Vec::with_capacity(total as usize),
        tls: conns
            .first()
            .and_then(|c| c.tls.as_ref())
            .map(Negotiated::of),
        ..Outcome::default()
    };
    let (mut next, mut in_flight, mut last_response) = (0u64, 0usize, start);

    loop {
        let now = Instant::now();
        while next < total && due_at(next) <= now {
            let Some(ci) = idle.pop_front() else { break };
            let due = due_at(next);
            next += 1;
            let lag = now - due;
            out.max_send_lag = out.max_send_lag.max(lag);
            out.late_sends += u64::from(lag > Duration::from_millis(1));
            request.clear();
            write!(
                request,
                "GET {}{} HTTP/1.1\r\nHost: {}\r\n\r\n",
                opts.prefix,
                keys.next() % opts.keys,
                opts.addr
            )?;
            let conn = &mut conns[ci];
            let sent = match &mut conn.tls {
                None => matches!(conn.stream.write(&request), Ok(n) if n == request.len()),
                Some(tls) => send_tls(tls, &mut conn.stream, &request),
            };
            if sent {
                conn.due = Some(due);
                in_flight += 1;
            } else {
                out.err_io += 1;
                reconnect(opts, client, &ep, conn, ci, &mut out)?;
                idle.push_back(ci);
            }
        }
        if next == total && in_flight == 0 {
            break;
        }
        if now >= deadline {
            out.err_timeout += in_flight as u64;
            break;
        }
        let wake = if next < total && !idle.is_empty() {
            due_at(next)
        } else {
            deadline.min(now + Duration::from_millis(100))
        };
        let timeout = wake.saturating_duration_since(now);
        let timeout = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        match epoll::wait(&ep, spare_capacity(&mut events), Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let t = Instant::now();
        for ev in events.drain(..) {
            let ci = ev.data.u64() as usize;
            let conn = &mut conns[ci];
            let (eof, answered) =
                read_responses(conn, &mut scratch, t, &mut out).map_err(|source| {
                    RunError::Response {
                        addr: opts.addr,
                        source,
                    }
                })?;
            if answered {
                in_flight -= 1;
                last_response = t;
                idle.push_back(ci);
            }
            if eof {
                // closed by the server: with a request in flight, that one is
                // lost; an idle connection is already in `idle`
                if conn.due.take().is_some() {
                    out.err_io += 1;
                    in_flight -= 1;
                    idle.push_back(ci);
                }
                reconnect(opts, client, &ep, conn, ci, &mut out)?;
            }
        }
    }
    out.elapsed = last_response.saturating_duration_since(start);
    Ok(out)
}

/// Reads what the socket has; returns (the server closed it, the request in
/// flight was answered).
fn read_responses(
    conn: &mut Conn,
    scratch: &mut [u8],
    t: Instant,
    out: &mut Outcome,
) -> Result<(bool, bool), ResponseError> {
    let mut eof = match &mut conn.tls {
        None => read_plain(&mut conn.stream, &mut conn.buf, scratch),
        Some(tls) => read_tls(
            tls,
            &mut conn.stream,
            &mut conn.buf,
            scratch,
            &mut out.tls_error,
        ),
    };
    let mut answered = false;
    while let Some(framed) = response::frame(&conn.buf)? {
        conn.buf.drain(..framed.len);
        // a response nobody asked for (none in flight) is ignored, not counted
        if let Some(due) = conn.due.take() {
            answered = true;
            let us = t.saturating_duration_since(due).as_micros();
            out.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
            out.err_status += u64::from(framed.status != 200);
        }
        if framed.close {
            eof = true;
            break;
        }
    }
    Ok((eof, answered))
}

/// Appends what the socket has to `buf`; returns whether the server closed
/// the connection (or it failed).
fn read_plain(stream: &mut TcpStream, buf: &mut Vec<u8>, scratch: &mut [u8]) -> bool {
    loop {
        match stream.read(scratch) {
            Ok(0) => return true,
            Ok(n) => buf.extend_from_slice(&scratch[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

/// [`read_plain`] through TLS: decrypts what the socket has and appends the
/// plaintext to `buf`. A TLS error (a bad record, an alert from the server)
/// ends the connection like a reset; the first one is kept in `tls_error`.
fn read_tls(
    tls: &mut ClientConnection,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    scratch: &mut [u8],
    tls_error: &mut Option<String>,
) -> bool {
    loop {
        match tls.read_tls(stream) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
        if let Err(e) = tls.process_new_packets() {
            tls_error.get_or_insert_with(|| e.to_string());
            // rustls queued an alert for the server: best effort
            let _ = tls.write_tls(stream);
            return true;
        }
        loop {
            match tls.reader().read(scratch) {
                // the server's close_notify
                Ok(0) => return true,
                Ok(n) => buf.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return true,
            }
        }
    }
}

/// Encrypts `request` and writes it, with anything else rustls has queued;
/// false when the socket does not take it all at once (counted as a short
/// write, as in plain HTTP).
fn send_tls(tls: &mut ClientConnection, stream: &mut TcpStream, request: &[u8]) -> bool {
    if tls.writer().write_all(request).is_err() {
        return false;
    }
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Opens connection `index` (with `client`, completes the TLS handshake
/// first, blocking) and adds it to the epoll set.
fn connect(
    opts: &Options,
    client: Option<&tls::Client>,
    ep: &impl rustix::fd::AsFd,
    index: usize,
) -> Result<(TcpStream, Option<ClientConnection>), RunError> {
    let mut stream = TcpStream::connect(opts.addr).map_err(|source| RunError::Connect {
        addr: opts.addr,
        source,
    })?;
    stream.set_nodelay(true)?;
    let tls = match client {
        None => None,
        Some(client) => Some(
            client
                .handshake(&mut stream)
                .map_err(|e| RunError::Handshake {
                    addr: opts.addr,
                    server_name: client.server_name().to_str().into_owned(),
                    problem: tls::handshake_problem(&e),
                })?,
        ),
    };
    stream.set_nonblocking(true)?;
    epoll::add(
        ep,
        &stream,
        epoll::EventData::new_u64(index as u64),
        epoll::EventFlags::IN,
    )?;
    Ok((stream, tls))
}

fn reconnect(
    opts: &Options,
    client: Option<&tls::Client>,
    ep: &impl rustix::fd::AsFd,
    conn: &mut Conn,
    index: usize,
    out: &mut Outcome,
) -> Result<(), RunError> {
    epoll::delete(ep, &conn.stream)?;
    (conn.stream, conn.tls) = connect(opts, client, ep, index)?;
    conn.buf.clear();
    conn.due = None;
    out.reconnects += 1;
    Ok(())
}

/// The keys' random sequence (splitmix64): seeded, so every contender sees
/// the same keys.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
