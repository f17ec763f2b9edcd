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

/// The length of an HTTP/2 frame header (RFC 9113 §4.1).
const HEADER: usize = 9;

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
    frames: Frames,
}

impl<T> Calm<T> {
    pub(super) fn new(io: T, activity: Activity) -> Calm<T> {
        Calm {
            io,
            activity,
            frames: Frames::default(),
        }
    }
}

/// Where the bytes written so far end in the frame stream.
#[derive(Clone, Copy, Debug, Default)]
struct Frames {
    /// The current frame's header, while it is being written.
    header: [u8; HEADER],
    /// How much of `header` is written; `HEADER` once in the payload.
    header_written: usize,
    /// The current frame's payload length.
    length: u32,
    /// How much of the payload is written.
    payload_written: u32,
    /// Whether the current frame is a `GOAWAY`.
    goaway: bool,
    /// Whether the `GOAWAY`'s error code bytes so far were all zero.
    code_zero: bool,
}

impl Frames {
    /// Follows `bytes`, written next, calling `no_error_end` with the index
    /// of the last byte of every `NO_ERROR` code of a `GOAWAY` in them.
    fn walk(&mut self, bytes: &[u8], mut no_error_end: impl FnMut(usize)) {
        let mut at = 0;
        while at < bytes.len() {
            if self.header_written < HEADER {
                self.header[self.header_written] = bytes[at];
                self.header_written += 1;
                at += 1;
                if self.header_written == HEADER {
                    let [l0, l1, l2, kind, ..] = self.header;
                    self.length = u32::from_be_bytes([0, l0, l1, l2]);
                    self.payload_written = 0;
                    self.goaway = kind == GOAWAY;
                    self.code_zero = true;
                    self.next_if_done();
                }
                continue;
            }
            let left = (self.length - self.payload_written) as usize;
            let take = left.min(bytes.len() - at);
            if self.goaway {
                for (index, &byte) in bytes[at..at + take].iter().enumerate() {
                    let offset = self.payload_written + index as u32;
                    if !CODE.contains(&offset) {
                        continue;
                    }
                    self.code_zero &= byte == 0;
                    if offset == CODE.end - 1 && self.code_zero {
                        no_error_end(at + index);
                    }
                }
            }
            // `take` is at most `left`, a u32.
            self.payload_written += take as u32;
            at += take;
            self.next_if_done();
        }
    }

    /// Starts the next frame's header once this frame's payload is written.
    fn next_if_done(&mut self) {
        if self.header_written == HEADER && self.payload_written == self.length {
            self.header_written = 0;
        }
    }

    /// Follows the first `count` bytes of `bufs`, written next.
    fn walk_vectored(&mut self, bufs: &[io::IoSlice<'_>], mut count: usize) {
        for buf in bufs {
            if count == 0 {
                break;
            }
            let take = buf.len().min(count);
            self.walk(&buf[..take], |_| {});
            count -= take;
        }
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

    /// A frame of `kind` with `payload`.
    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut frame = vec![length[1], length[2], length[3], kind, 0, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        frame
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
        let mut frames = Frames::default();
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
