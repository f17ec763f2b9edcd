//! Where a byte stream of HTTP/2 frames is (RFC 9113 §4.1: a 9-byte
//! header, then its payload), followed as it is written or read in pieces
//! of any size: what the IO wrappers that look at frames (`calm`,
//! `interim`) share.

use std::io;

/// The length of an HTTP/2 frame header.
pub(super) const HEADER: usize = 9;

/// The frame type `HEADERS`.
pub(super) const HEADERS: u8 = 0x1;

/// The frame type `PUSH_PROMISE`, which starts a header block too.
pub(super) const PUSH_PROMISE: u8 = 0x5;

/// The frame type `CONTINUATION`, which goes on with a header block.
const CONTINUATION: u8 = 0x9;

/// The flag that ends a header block.
pub(super) const END_HEADERS: u8 = 0x4;

/// What a frame's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Header {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

/// What [`Frames::walk`] found in the bytes it followed.
pub(super) enum Seen<'a> {
    /// A frame's header, complete.
    Header(Header),
    /// A piece of the current frame's payload, `offset` bytes into it,
    /// starting at index `at` of the bytes walked.
    Payload {
        kind: u8,
        offset: u32,
        piece: &'a [u8],
        at: usize,
    },
}

/// The position in a frame stream.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Frames {
    /// The current frame's header, while it comes.
    header: [u8; HEADER],
    /// How much of `header` has come; `HEADER` once in the payload.
    header_len: usize,
    /// The current frame's type.
    kind: u8,
    /// The current frame's payload length.
    length: u32,
    /// How much of the payload has come.
    offset: u32,
    /// Inside a header block that a `CONTINUATION` is still to end.
    in_block: bool,
}

// === impl Frames ===

impl Frames {
    /// Follows `bytes`, the next of the stream, telling `seen` of each
    /// header completed and each piece of payload.
    pub(super) fn walk<'a>(&mut self, bytes: &'a [u8], mut seen: impl FnMut(Seen<'a>)) {
        let mut at = 0;
        while at < bytes.len() {
            if self.header_len < HEADER {
                let take = (HEADER - self.header_len).min(bytes.len() - at);
                self.header[self.header_len..self.header_len + take]
                    .copy_from_slice(&bytes[at..at + take]);
                self.header_len += take;
                at += take;
                if self.header_len == HEADER {
                    let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = self.header;
                    self.kind = kind;
                    self.length = u32::from_be_bytes([0, l0, l1, l2]);
                    self.offset = 0;
                    if matches!(kind, HEADERS | PUSH_PROMISE | CONTINUATION) {
                        self.in_block = flags & END_HEADERS == 0;
                    }
                    let stream = u32::from_be_bytes([s0, s1, s2, s3]) & 0x7fff_ffff;
                    seen(Seen::Header(Header {
                        kind,
                        flags,
                        stream,
                    }));
                    self.next_if_done();
                }
                continue;
            }
            // At most what is left of the payload, a u32.
            let take = ((self.length - self.offset) as usize).min(bytes.len() - at);
            seen(Seen::Payload {
                kind: self.kind,
                offset: self.offset,
                piece: &bytes[at..at + take],
                at,
            });
            self.offset += take as u32;
            at += take;
            self.next_if_done();
        }
    }

    /// Follows the first `count` bytes of `bufs`, the next of the stream.
    pub(super) fn walk_vectored<'a>(
        &mut self,
        bufs: &'a [io::IoSlice<'_>],
        mut count: usize,
        mut seen: impl FnMut(Seen<'a>),
    ) {
        for buf in bufs {
            if count == 0 {
                break;
            }
            let take = buf.len().min(count);
            self.walk(&buf[..take], &mut seen);
            count -= take;
        }
    }

    /// Starts the next frame's header once this frame's payload is in.
    fn next_if_done(&mut self) {
        if self.header_len == HEADER && self.offset == self.length {
            self.header_len = 0;
        }
    }

    /// Whether a frame of another header block may come next: between
    /// frames, and not inside a header block.
    pub(super) fn at_boundary(&self) -> bool {
        self.header_len == 0 && !self.in_block
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A frame of `kind` with `flags` on `stream`, with `payload`.
    pub(in crate::server) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let [_, l0, l1, l2] = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut frame = vec![l0, l1, l2, kind, flags];
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn a_header_block_with_continuations_is_no_boundary_until_it_ends() {
        // DATA, HEADERS without END_HEADERS, two CONTINUATIONs (the
        // second ends it), an empty SETTINGS.
        let mut stream = frame(0x0, 0, 1, &[0xaa; 20]);
        let after_data = stream.len();
        stream.extend(frame(HEADERS, 0, 3, &[0xaa; 10]));
        stream.extend(frame(CONTINUATION, 0, 3, &[0xaa; 5]));
        stream.extend(frame(CONTINUATION, END_HEADERS, 3, &[0xaa; 5]));
        let after_block = stream.len();
        stream.extend(frame(0x4, 0, 0, &[]));
        for piece in 1..=stream.len() {
            let mut frames = Frames::default();
            let mut headers = Vec::new();
            let mut payload = 0;
            let mut boundaries = Vec::new();
            let mut offset = 0;
            for chunk in stream.chunks(piece) {
                frames.walk(chunk, |seen| match seen {
                    Seen::Header(header) => headers.push((header.kind, header.stream)),
                    Seen::Payload { piece, .. } => payload += piece.len(),
                });
                offset += chunk.len();
                if frames.at_boundary() {
                    boundaries.push(offset);
                }
            }
            assert_eq!(
                headers,
                [
                    (0x0, 1),
                    (HEADERS, 3),
                    (CONTINUATION, 3),
                    (CONTINUATION, 3),
                    (0x4, 0)
                ]
            );
            assert_eq!(payload, 40);
            let expected: Vec<usize> = [after_data, after_block, stream.len()]
                .into_iter()
                .filter(|end| end % piece == 0 || *end == stream.len())
                .collect();
            assert_eq!(boundaries, expected, "written {piece} at a time");
        }
    }
}
