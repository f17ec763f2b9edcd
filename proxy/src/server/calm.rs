//! The `GOAWAY` that closes an HTTP/2 connection for its resets says why:
//! `ENHANCE_YOUR_CALM` (RFC 9113 §7), as h2 itself says for streams reset
//! before they were accepted. hyper closes a connection gracefully only
//! with `NO_ERROR`, so this wrapper follows the frames the server writes (a
//! 9-byte header, then its payload) and, once the connection's reset budget
//! is spent, writes a `GOAWAY`'s `NO_ERROR` as `ENHANCE_YOUR_CALM`. No other
//! byte is changed; until then the cost is a hop over each frame header.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};

use super::connection::Activity;
use super::frames::{Frames, Seen};

/// The type of a `GOAWAY` frame.
const GOAWAY: u8 = 0x7;

/// Where a `GOAWAY`'s error code lies in its payload, after the last
/// stream id.
const CODE: std::ops::Range<u32> = 4..8;

/// The low byte of `ENHANCE_YOUR_CALM` (0x0000000b); `NO_ERROR` is 0.
const ENHANCE_YOUR_CALM: u8 = 0x0b;

/// An HTTP/2 server connection whose `GOAWAY` says `ENHANCE_YOUR_CALM`
/// once `activity` has spent its reset budget.
pub(super) struct Calm<T> {
    io: T,
    activity: Activity,
    frames: Goaways,
}

impl<T> Calm<T> {
    pub(super) fn new(io: T, activity: Activity) -> Calm<T> {
        Calm {
            io,
            activity,
            frames: Goaways::default(),
        }
    }
}

/// Where the bytes written so far end in the frame stream, and in a
/// `GOAWAY`'s error code.
#[derive(Clone, Copy, Debug, Default)]
struct Goaways {
    frames: Frames,
    /// Whether the current `GOAWAY`'s error code bytes so far were all
    /// zero.
    code_zero: bool,
}

impl Goaways {
    /// Follows `bytes`, written next, calling `no_error_end` with the index
    /// of the last byte of every `NO_ERROR` code of a `GOAWAY` in them.
    fn walk(&mut self, bytes: &[u8], mut no_error_end: impl FnMut(usize)) {
        let code_zero = &mut self.code_zero;
        self.frames.walk(bytes, |seen| match seen {
            Seen::Header(_) => *code_zero = true,
            Seen::Payload {
                kind: GOAWAY,
                offset,
                piece,
                at,
            } => {
                for (index, &byte) in piece.iter().enumerate() {
                    // Within a frame's payload, whose length is a u32.
                    let offset = offset + index as u32;
                    if !CODE.contains(&offset) {
                        continue;
                    }
                    *code_zero &= byte == 0;
                    if offset == CODE.end - 1 && *code_zero {
                        no_error_end(at + index);
                    }
                }
            }
            Seen::Payload { .. } => {}
        });
    }

    /// Follows the first `count` bytes of `bufs`, written next.
    fn walk_vectored(&mut self, bufs: &[io::IoSlice<'_>], count: usize) {
        self.frames.walk_vectored(bufs, count, |_| {});
    }
}

impl<T: Write + Unpin> Calm<T> {
    /// Writes `buf` with every `GOAWAY`'s `NO_ERROR` made `ENHANCE_YOUR_CALM`.
    fn poll_write_calm(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut ends = Vec::new();
        self.frames.clone().walk(buf, |end| ends.push(end));
        let poll = if ends.is_empty() {
            Pin::new(&mut self.io).poll_write(cx, buf)
        } else {
            let mut calm = buf.to_vec();
            for end in ends {
                calm[end] = ENHANCE_YOUR_CALM;
            }
            Pin::new(&mut self.io).poll_write(cx, &calm)
        };
        if let Poll::Ready(Ok(count)) = poll {
            self.frames.walk(&buf[..count], |_| {});
        }
        poll
    }
}

impl<T: Read + Unpin> Read for Calm<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Calm<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.activity.refusing() {
            return this.poll_write_calm(cx, buf);
        }
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(count)) = poll {
            this.frames.walk(&buf[..count], |_| {});
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.activity.refusing() {
            // Closing: one copy of what is left to write is cheap.
            let flat: Vec<u8> = bufs.iter().flat_map(|buf| buf.iter().copied()).collect();
            return this.poll_write_calm(cx, &flat);
        }
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(count)) = poll {
            this.frames.walk_vectored(bufs, count);
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::frames::HEADER;

    /// A frame of `kind` with `payload`.
    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        crate::server::frames::tests::frame(kind, 0, 0, payload)
    }

    /// A `GOAWAY` with last stream 5 and `code`.
    fn goaway(code: u32) -> Vec<u8> {
        let mut payload = 5u32.to_be_bytes().to_vec();
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(b"debug");
        frame(GOAWAY, &payload)
    }

    /// The indexes `walk` reports for `stream` written in pieces of `piece`.
    fn ends(stream: &[u8], piece: usize) -> Vec<usize> {
        let mut frames = Goaways::default();
        let mut found = Vec::new();
        for (number, chunk) in stream.chunks(piece).enumerate() {
            frames.walk(chunk, |end| found.push(number * piece + end));
        }
        found
    }

    #[test]
    fn the_no_error_code_of_every_goaway_is_found_however_the_writes_split() {
        // SETTINGS, an empty SETTINGS ack, DATA with a payload that looks
        // like a GOAWAY, a GOAWAY, a PING, a second GOAWAY.
        let mut stream = frame(0x4, &[0, 3, 0, 0, 0, 100]);
        stream.extend(frame(0x4, &[]));
        stream.extend(frame(0x0, &goaway(0)));
        let first = stream.len();
        stream.extend(goaway(0));
        stream.extend(frame(0x6, &[0; 8]));
        let second = stream.len();
        stream.extend(goaway(0));
        let expected = vec![first + HEADER + 7, second + HEADER + 7];
        for piece in 1..=stream.len() {
            assert_eq!(ends(&stream, piece), expected, "written {piece} at a time");
        }
    }

    #[test]
    fn a_goaway_with_an_error_of_its_own_keeps_it() {
        let stream = goaway(0x1); // PROTOCOL_ERROR
        for piece in 1..=stream.len() {
            assert!(ends(&stream, piece).is_empty());
        }
        let stream = goaway(0x0100_0000);
        assert!(ends(&stream, 3).is_empty());
    }
}
