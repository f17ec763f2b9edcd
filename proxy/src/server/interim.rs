//! Writing the `1xx` of a connection's [`Outbox`] (see [`crate::interim`])
//! into what hyper writes, where the protocol has room for a message of
//! its own.
//!
//! HTTP/1.1: between messages. hyper calls `poll_flush` on its IO on every
//! turn of its connection loop, and only once all it buffered is written,
//! so a flush marks the end of hyper's bytes so far; a `1xx` goes out at
//! that point, or just before hyper's next bytes. The first bytes hyper
//! writes after a flush that are not its own `100 Continue` are the final
//! response's head: from then on the request takes no `1xx`.
//!
//! HTTP/2: between frames, never inside a header block (a `HEADERS`
//! without `END_HEADERS` and its `CONTINUATION`s), and never before the
//! header block of h2's that owes the client an HPACK table size update
//! (after a client lowered `SETTINGS_HEADER_TABLE_SIZE`). The frames the
//! client sends are followed too: a `HEADERS` on a stream higher than any
//! before opens a request, and the requests, which hyper starts in the
//! order h2 accepts their streams (the order they opened), take the
//! streams in that order ([`Outbox::opened`]). A stream takes `1xx` until
//! the server's `HEADERS` (the final response: hyper sends no other) or a
//! `RST_STREAM` either way.
//!
//! One case mismatches: a client that opens streams h2 refuses without
//! accepting them (past its own `SETTINGS_MAX_CONCURRENT_STREAMS`, or with
//! malformed headers) shifts the streams of its later requests, whose
//! `1xx` may then go on another of its streams still waiting for its final
//! response, or nowhere. Only that client's own connection is affected.
//!
//! The cost when nothing waits: a relaxed atomic load per write and flush,
//! and on HTTP/2 a hop over each frame header both ways. Per HTTP/1.1
//! request, one uncontended lock when its final response starts.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::frames::{Frames, Header, Seen, HEADERS, PUSH_PROMISE};
use crate::interim::{Outbox, Protocol, Taken};

/// The HTTP/2 frame type that ends a stream at once.
const RST_STREAM: u8 = 0x3;

/// The HTTP/2 frame type `SETTINGS`, and its flag `ACK`.
const SETTINGS: u8 = 0x4;
const ACK: u8 = 0x1;

/// The identifier of `SETTINGS_HEADER_TABLE_SIZE`.
const HEADER_TABLE_SIZE: u16 = 0x1;

/// The HPACK table size h2 encodes with at most (the protocol's initial
/// size): a client's setting below it makes h2 send a size update.
const HPACK_TABLE: u32 = 4096;

/// At most this many HTTP/2 streams are followed as waiting for their
/// final response (well above the 256 a client may have open).
const MAX_AWAITING: usize = 1024;

/// A client connection `io` whose writes carry the `1xx` of `outbox`.
pub(super) struct Interim<S> {
    io: S,
    outbox: Arc<Outbox>,
    /// `1xx` bytes taken from the outbox, written before anything else.
    out: Vec<u8>,
    /// How much of `out` is written.
    sent: usize,
    /// HTTP/1.1: hyper flushed since it last wrote (or wrote nothing yet),
    /// so its bytes so far end a message.
    flushed: bool,
    /// HTTP/2: the frames both ways (boxed: only HTTP/2 connections pay
    /// for it).
    h2: Option<Box<H2>>,
}

/// What an HTTP/2 connection's frames say.
#[derive(Default)]
struct H2 {
    /// The frames hyper writes.
    written: Frames,
    /// The frames the client sends.
    read: Frames,
    /// The highest stream the client opened.
    last_opened: u32,
    /// The streams opened and not yet answered (nor reset).
    awaiting: Vec<u32>,
    /// The client's `SETTINGS` that lower the HPACK table size.
    table: TableSize,
    /// What was last taken from the outbox, before its frames of streams
    /// already answered are dropped.
    taken: Taken,
}

/// Whether a header block of h2's is owed first: once h2 acknowledges a
/// client's `SETTINGS` that lowers `SETTINGS_HEADER_TABLE_SIZE`, its next
/// header block starts with the table size update the client's decoder
/// then requires (RFC 7541 §4.2), so no `1xx` goes before it.
#[derive(Default)]
struct TableSize {
    /// The client's `SETTINGS` frames read (not their `ACK`s).
    read: u32,
    /// The number of the last that lowered the table size.
    lowered: u32,
    /// The `SETTINGS` acknowledged by h2, in order.
    acked: u32,
    /// h2's next header block must come first.
    owed: bool,
    /// The identifier of the setting being read (its first byte, then
    /// both), and its value so far.
    id: u16,
    value: u32,
}

// === impl TableSize ===

impl TableSize {
    /// Follows a piece of a client's `SETTINGS` payload, `offset` into it.
    fn read_payload(&mut self, offset: u32, piece: &[u8]) {
        for (index, &byte) in piece.iter().enumerate() {
            // Within a frame's payload, whose length is a u32.
            match (offset + index as u32) % 6 {
                0 => self.id = u16::from(byte),
                1 => self.id = self.id << 8 | u16::from(byte),
                2 => self.value = u32::from(byte),
                position => {
                    self.value = self.value << 8 | u32::from(byte);
                    if position == 5 && self.id == HEADER_TABLE_SIZE && self.value < HPACK_TABLE {
                        self.lowered = self.read;
                    }
                }
            }
        }
    }

    /// h2 wrote a frame of `kind` with `flags`.
    fn wrote(&mut self, kind: u8, flags: u8) {
        match kind {
            SETTINGS if flags & ACK != 0 => {
                self.acked += 1;
                // The ones acknowledged so far may include one that lowered
                // it.
                self.owed |= self.acked <= self.lowered;
            }
            HEADERS | PUSH_PROMISE => self.owed = false,
            _ => {}
        }
    }
}

// === impl H2 ===

impl H2 {
    /// Follows `bytes` the client sent.
    fn read(&mut self, bytes: &[u8], outbox: &Outbox) {
        let H2 {
            read,
            last_opened,
            awaiting,
            table,
            ..
        } = self;
        read.walk(bytes, |seen| match seen {
            Seen::Header(Header {
                kind: HEADERS,
                stream,
                ..
            }) if stream > *last_opened => {
                *last_opened = stream;
                outbox.opened(stream);
                if awaiting.len() == MAX_AWAITING {
                    awaiting.remove(0);
                }
                awaiting.push(stream);
            }
            Seen::Header(Header {
                kind: RST_STREAM,
                stream,
                ..
            }) => awaiting.retain(|&open| open != stream),
            Seen::Header(Header {
                kind: SETTINGS,
                flags,
                ..
            }) if flags & ACK == 0 => table.read += 1,
            Seen::Payload {
                kind: SETTINGS,
                offset,
                piece,
                ..
            } => table.read_payload(offset, piece),
            _ => {}
        });
    }

    /// Follows `bytes` hyper wrote.
    fn wrote(&mut self, bytes: &[u8]) {
        let H2 {
            written,
            awaiting,
            table,
            ..
        } = self;
        written.walk(bytes, |seen| {
            if let Seen::Header(Header {
                kind,
                flags,
                stream,
            }) = seen
            {
                if kind == HEADERS || kind == RST_STREAM {
                    awaiting.retain(|&open| open != stream);
                }
                table.wrote(kind, flags);
            }
        });
    }

    /// Whether a `1xx` may be written now: between frames, outside a
    /// header block, and no table size update owed first.
    fn may_write(&self) -> bool {
        self.written.at_boundary() && !self.table.owed
    }

    /// Takes what waits in `outbox` into `out`: the frames of streams still
    /// waiting for their final response.
    fn take(&mut self, outbox: &Outbox, out: &mut Vec<u8>) {
        outbox.take(&mut self.taken, false);
        let mut at = 0;
        for &(stream, length) in &self.taken.frames {
            if self.awaiting.contains(&stream) {
                out.extend_from_slice(&self.taken.bytes[at..at + length]);
            }
            at += length;
        }
        self.taken.frames.clear();
        self.taken.bytes.clear();
    }
}

/// What hyper writes for `Expect: 100-continue`, exactly.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Whether `next`, bytes hyper writes after a flush, start its final
/// response: anything but its `100 Continue` alone (the final head may
/// follow it in the same buffer).
fn starts_final(next: &[u8]) -> bool {
    match next.strip_prefix(CONTINUE) {
        Some(rest) => !rest.is_empty(),
        None => !next.is_empty(),
    }
}

// === impl Interim ===

impl<S> Interim<S> {
    /// `io`, carrying the `1xx` of `outbox` (whose protocol is the
    /// connection's; for HTTP/2, `io` is past the client's preface).
    pub(super) fn new(io: S, outbox: Arc<Outbox>) -> Interim<S> {
        let h2 = (outbox.protocol() == Protocol::Http2).then(Box::default);
        Interim {
            io,
            outbox,
            out: Vec::new(),
            sent: 0,
            flushed: true,
            h2,
        }
    }

    /// The connection, between exchanges: with every `1xx` of the last
    /// one written before its final response, nothing is left to write.
    pub(super) fn into_inner(self) -> S {
        self.io
    }

    /// Notes that hyper wrote `bytes`.
    fn wrote(&mut self, bytes: &[u8]) {
        match &mut self.h2 {
            None => self.flushed &= bytes.is_empty(),
            Some(h2) => h2.wrote(bytes),
        }
    }

    /// Takes what may go out now into `out`; `next`: what hyper is about to
    /// write, if anything.
    fn take(&mut self, next: Option<&[u8]>) {
        match &mut self.h2 {
            None => {
                if !self.flushed {
                    return;
                }
                let final_response =
                    next.is_some_and(starts_final) && self.outbox.has_open_request();
                if final_response || self.outbox.is_pending() {
                    let mut taken = Taken {
                        bytes: std::mem::take(&mut self.out),
                        frames: Vec::new(),
                    };
                    self.outbox.take(&mut taken, final_response);
                    self.out = taken.bytes;
                }
            }
            Some(h2) => {
                if self.outbox.is_pending() && h2.may_write() {
                    h2.take(&self.outbox, &mut self.out);
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> Interim<S> {
    /// Writes what of `out` is left, then what may go out before `next`;
    /// ready once all of it is written.
    fn poll_interim(&mut self, cx: &mut Context<'_>, next: Option<&[u8]>) -> Poll<io::Result<()>> {
        loop {
            if self.sent < self.out.len() {
                let count = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.sent..]))?;
                if count == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.sent += count;
                continue;
            }
            if !self.out.is_empty() {
                self.out.clear();
                self.sent = 0;
            }
            self.take(next);
            if self.out.is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Interim<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(h2) = &mut this.h2 else {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        };
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        h2.read(&buf.filled()[before..], &this.outbox);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Interim<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_interim(cx, Some(buf)))?;
        let count = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        this.wrote(&buf[..count]);
        Poll::Ready(Ok(count))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let next = bufs.iter().find(|buf| !buf.is_empty()).map(|buf| &buf[..]);
        ready!(this.poll_interim(cx, next))?;
        let mut count = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        let written = count;
        for buf in bufs {
            if count == 0 {
                break;
            }
            let take = buf.len().min(count);
            this.wrote(&buf[..take]);
            count -= take;
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // Every turn of hyper's connection loop flushes: the task to wake
        // when a `1xx` comes, registered only while one may (an idle
        // connection pays one load), and before `pending` is looked at, so
        // that a `1xx` pushed in between is seen here or wakes the task.
        let may_come = match &this.h2 {
            None => this.outbox.has_open_request(),
            Some(h2) => !h2.awaiting.is_empty(),
        };
        if may_come {
            this.outbox.register(cx.waker());
        }
        this.flushed = true;
        ready!(this.poll_interim(cx, None))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, StatusCode};

    use super::*;
    use crate::interim::encode_h2;
    use crate::server::frames::END_HEADERS;

    /// A frame of `kind` with `flags` on `stream`, `length` bytes of
    /// payload.
    fn frame(kind: u8, flags: u8, stream: u32, length: usize) -> Vec<u8> {
        crate::server::frames::tests::frame(kind, flags, stream, &vec![0xaa; length])
    }

    #[test]
    fn the_final_head_is_told_from_hypers_100_continue() {
        assert!(!starts_final(CONTINUE));
        assert!(starts_final(b"HTTP/1.1 200 OK\r\n"));
        let mut both = CONTINUE.to_vec();
        both.extend_from_slice(b"HTTP/1.1 413 Payload Too Large\r\n");
        assert!(starts_final(&both));
    }

    #[test]
    fn only_streams_still_waiting_for_their_answer_get_a_1xx() {
        let outbox = Outbox::new(Protocol::Http2);
        let mut h2 = H2::default();
        // The client opens 1 and 3, sends trailers on 1 (not an opening),
        // and resets 5 after opening it.
        let mut read = frame(HEADERS, END_HEADERS, 1, 3);
        read.extend(frame(HEADERS, END_HEADERS, 3, 3));
        read.extend(frame(HEADERS, END_HEADERS, 1, 3));
        read.extend(frame(HEADERS, END_HEADERS, 5, 3));
        read.extend(frame(RST_STREAM, 0, 5, 4));
        h2.read(&read, &outbox);
        assert_eq!(h2.awaiting, [1, 3]);
        // Stream 1 is answered.
        h2.wrote(&frame(HEADERS, END_HEADERS, 1, 3));
        assert_eq!(h2.awaiting, [3]);
        for stream in [1, 3, 5] {
            outbox.push(stream, StatusCode::EARLY_HINTS, &HeaderMap::new());
        }
        let mut expected = Vec::new();
        assert!(encode_h2(
            3,
            StatusCode::EARLY_HINTS,
            &HeaderMap::new(),
            &mut expected
        ));
        let mut out = Vec::new();
        h2.take(&outbox, &mut out);
        assert_eq!(out, expected);
    }

    /// A client's `SETTINGS` with `HEADER_TABLE_SIZE` = `size`.
    fn table_size(size: u32) -> Vec<u8> {
        let mut payload = HEADER_TABLE_SIZE.to_be_bytes().to_vec();
        payload.extend_from_slice(&size.to_be_bytes());
        // Another setting first: the offsets of the second are followed.
        let mut settings = vec![0, 0x3, 0, 0, 0, 100];
        settings.extend(payload);
        crate::server::frames::tests::frame(SETTINGS, 0, 0, &settings)
    }

    #[test]
    fn a_lowered_table_size_holds_1xx_until_h2s_next_header_block() {
        let outbox = Outbox::new(Protocol::Http2);
        let mut h2 = H2::default();
        let ack = frame(SETTINGS, ACK, 0, 0);
        // Raised (as browsers do): h2 owes no size update.
        for piece in table_size(65_536).chunks(5) {
            h2.read(piece, &outbox);
        }
        h2.wrote(&ack);
        assert!(h2.may_write());
        // Lowered: from h2's `ACK` to its next header block, none.
        for piece in table_size(0).chunks(5) {
            h2.read(piece, &outbox);
        }
        assert!(h2.may_write(), "not acknowledged yet");
        h2.wrote(&ack);
        assert!(!h2.may_write());
        h2.wrote(&frame(0x0, 0, 1, 10));
        assert!(!h2.may_write());
        h2.wrote(&frame(HEADERS, END_HEADERS, 1, 3));
        assert!(h2.may_write());
    }
}
