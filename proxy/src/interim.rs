//! Interim (`1xx`) responses of an instance, on their way to the client
//! (SPEC §13): `103 Early Hints`, `102 Processing` and the like reach the
//! client before the final response, on HTTP/1.1 and HTTP/2 client
//! connections.
//!
//! Why bytes in an outbox: hyper's server has no API to send a `1xx`, on
//! either protocol. So each client connection has an [`Outbox`]; the
//! forward layer hands hyper's client a callback
//! ([`hyper::ext::on_informational`], called on the instance connection's
//! task before the final response is returned) that encodes the `1xx` as
//! the client's protocol writes it and wakes the client connection's task;
//! the server's IO wrapper (`server::interim`) writes those bytes before
//! hyper's next ones, where the protocol allows: between HTTP/1.1
//! messages, between HTTP/2 frames.
//!
//! What is never forwarded:
//! - `100 Continue` to a client that sent `Expect: 100-continue` with a
//!   body: hyper's server sends its own when the handler reads the body,
//!   and the instance's would make two. A client that did not ask, or
//!   asked with an empty body (which hyper's server does not answer), gets
//!   the instance's, as any other `1xx`.
//! - `101 Switching Protocols`: the upgrade path (SPEC §10) relays it as
//!   the final response.
//! - anything to an HTTP/1.0 client (RFC 9110 §15.2): its requests get
//!   [`ToClient::none`].
//! - a `1xx` of an HTTP/2 instance (`upstream_protocol = "h2c"` or `"h2"`):
//!   hyper's HTTP/2 client does not report them.
//! - a `1xx` whose HTTP/2 header block would not fit one frame of the
//!   default size (16384 bytes): dropped, logged at debug.
//! - a `1xx` of a replica write (`writes = "all"`: the replicas' answers
//!   race, one is returned), of a read sent further after a `404`
//!   (`read_fallback_404`, the replaced ring of a transition), or of an
//!   upgrade request: only the attempts of a request's walk down its
//!   preference list report them.
//!
//! The cache never stores a `1xx`: they go past it, to the client whose
//! request made the fetch, and a hit replays none.
//!
//! Hop-by-hop headers (SPEC §5) are removed from a forwarded `1xx` as from
//! any response.
//!
//! The cost per request: the handle ([`ToClient`], an `Arc` clone and a
//! number) passed beside the client's address, no allocation of its own;
//! hyper's `on_informational` allocates (the callback's `Arc` and the
//! request's extension map), the one way hyper's client reports a `1xx`,
//! so it is registered only where a `1xx` can go (an HTTP/1.1 or HTTP/2
//! client, an HTTP/1.1 instance).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use atomic_waker::AtomicWaker;
use http::{HeaderMap, Request, StatusCode};

use crate::headers::HopByHop;

/// The largest HTTP/2 frame payload every peer takes (RFC 9113 §4.2: the
/// initial `SETTINGS_MAX_FRAME_SIZE`).
const MAX_H2_FRAME: usize = 16_384;

/// The HTTP/2 frame type `HEADERS`.
const H2_HEADERS: u8 = 0x1;

/// The HTTP/2 `HEADERS` flag `END_HEADERS`: the block is whole in this
/// frame.
const H2_END_HEADERS: u8 = 0x4;

/// At most this many HTTP/2 streams are kept waiting for their request
/// (well above the 256 a client may have open): a client that opens
/// streams the server never accepts cannot grow the queue.
const MAX_OPENED: usize = 1024;

/// Which protocol a connection's `1xx` are encoded for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1: a status line and header lines.
    Http1,
    /// HTTP/2: a `HEADERS` frame on the request's stream.
    Http2,
}

/// The `1xx` waiting to be written on one client connection, shared by its
/// IO wrapper and the requests it serves.
#[derive(Debug)]
pub struct Outbox {
    protocol: Protocol,
    /// Whether `state.bytes` holds anything: the one load the IO wrapper
    /// makes per write when nothing waits.
    pending: AtomicBool,
    /// The connection's task, woken when a `1xx` comes.
    waker: AtomicWaker,
    /// HTTP/1.1: the request whose `1xx` may still go out (0: none). Set
    /// when a request starts; cleared, under `state`'s lock, when its final
    /// response starts to be written, so that a `1xx` that comes later
    /// (from an attempt the request gave up on) is never written into it.
    open: AtomicU32,
    /// HTTP/1.1: the number of the last request started (only the
    /// connection's task counts them).
    requests: AtomicU32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Encoded `1xx`, in order.
    bytes: Vec<u8>,
    /// HTTP/2: the stream of each frame in `bytes`, with its length, so
    /// that the writer can drop those of a stream already answered.
    frames: Vec<(u32, usize)>,
    /// HTTP/2: the streams opened by the client, not yet taken by a
    /// request (hyper calls the handler in the order streams open).
    opened: VecDeque<u32>,
}

/// `1xx` taken from an [`Outbox`] by its writer.
#[derive(Debug, Default)]
pub struct Taken {
    /// The encoded responses.
    pub bytes: Vec<u8>,
    /// HTTP/2: each frame's stream and length.
    pub frames: Vec<(u32, usize)>,
}

// === impl Outbox ===

impl Outbox {
    /// An empty outbox for a connection speaking `protocol`.
    pub fn new(protocol: Protocol) -> Arc<Outbox> {
        Arc::new(Outbox {
            protocol,
            pending: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            open: AtomicU32::new(0),
            requests: AtomicU32::new(0),
            state: Mutex::new(State::default()),
        })
    }

    /// The protocol its `1xx` are encoded for.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned lock's data is whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The way to this connection's client for a request of `version`;
    /// none for HTTP/1.0 (RFC 9110 §15.2), and none for an HTTP/2 stream
    /// the IO wrapper did not see open (it cannot be told apart).
    pub fn for_request(self: &Arc<Self>, version: http::Version) -> ToClient {
        let id = match self.protocol {
            Protocol::Http1 if version == http::Version::HTTP_11 => {
                // Never 0, which is "none".
                let id = self.requests.load(Ordering::Relaxed).wrapping_add(1).max(1);
                self.requests.store(id, Ordering::Relaxed);
                self.open.store(id, Ordering::Relaxed);
                id
            }
            Protocol::Http1 => return ToClient::none(),
            Protocol::Http2 => match self.state().opened.pop_front() {
                Some(stream) => stream,
                None => return ToClient::none(),
            },
        };
        ToClient {
            outbox: Some(Arc::clone(self)),
            id,
        }
    }

    /// HTTP/2: the client opened `stream` (in the order it did).
    pub fn opened(&self, stream: u32) {
        let mut state = self.state();
        if state.opened.len() == MAX_OPENED {
            state.opened.pop_front();
        }
        state.opened.push_back(stream);
    }

    /// Whether anything waits: one relaxed load.
    #[inline]
    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }

    /// The connection's task is the one to wake.
    #[inline]
    pub fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Moves what waits into `into` (emptied by the caller); with
    /// `final_response` (HTTP/1.1: the open request's final response starts
    /// now), nothing more is taken for that request.
    pub fn take(&self, into: &mut Taken, final_response: bool) {
        let mut state = self.state();
        if final_response {
            self.open.store(0, Ordering::Relaxed);
        }
        std::mem::swap(&mut into.bytes, &mut state.bytes);
        std::mem::swap(&mut into.frames, &mut state.frames);
        self.pending.store(false, Ordering::Relaxed);
    }

    /// HTTP/1.1: whether a request may still get a `1xx`, so that its final
    /// response must close it ([`Outbox::take`]).
    #[inline]
    pub fn has_open_request(&self) -> bool {
        self.open.load(Ordering::Relaxed) != 0
    }

    /// Encodes `status` with `headers` for request or stream `id`, and
    /// wakes the connection's task; on HTTP/1.1, only while `id` is the
    /// request still open.
    pub(crate) fn push(&self, id: u32, status: StatusCode, headers: &HeaderMap) {
        let mut state = self.state();
        let start = state.bytes.len();
        match self.protocol {
            Protocol::Http1 => {
                if self.open.load(Ordering::Relaxed) != id {
                    return;
                }
                encode_http1(status, headers, &mut state.bytes);
            }
            Protocol::Http2 => {
                if !encode_h2(id, status, headers, &mut state.bytes) {
                    state.bytes.truncate(start);
                    tracing::debug!(%status, "1xx not forwarded: its header block is over one HTTP/2 frame");
                    return;
                }
                let length = state.bytes.len() - start;
                state.frames.push((id, length));
            }
        }
        self.pending.store(true, Ordering::Relaxed);
        drop(state);
        self.waker.wake();
    }
}

/// One request's way to its client for `1xx`: cheap to clone (an `Arc`
/// and a number), and empty where none may go.
#[derive(Clone, Debug, Default)]
pub struct ToClient {
    outbox: Option<Arc<Outbox>>,
    /// HTTP/1.1: the request's number; HTTP/2: its stream.
    id: u32,
}

// === impl ToClient ===

impl ToClient {
    /// No `1xx` goes to this request's client.
    pub fn none() -> ToClient {
        ToClient::default()
    }

    /// Has the `1xx` answers to `request` (sent to an instance) forwarded to
    /// the client, except `101`, and `100` when the client asked for one
    /// with `Expect: 100-continue` and sent a body (see the module's docs;
    /// hyper's server ignores the expectation of an empty body, so the
    /// instance's `100` is then the only one). Nothing is registered (and
    /// nothing allocated) when the client can take none.
    pub fn forward_from<B: http_body::Body>(&self, request: &mut Request<B>) {
        let Some(outbox) = &self.outbox else {
            return;
        };
        let outbox = Arc::clone(outbox);
        let id = self.id;
        let answered_here = !request.body().is_end_stream()
            && request
                .headers()
                .get(http::header::EXPECT)
                .is_some_and(|expect| expect.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        hyper::ext::on_informational(request, move |response| {
            let status = response.status();
            let answered_here = answered_here && status == StatusCode::CONTINUE;
            if answered_here || status == StatusCode::SWITCHING_PROTOCOLS {
                return;
            }
            let mut headers = response.headers().clone();
            HopByHop::scan(&headers).strip(&mut headers);
            outbox.push(id, status, &headers);
        });
    }
}

/// Appends `status` with `headers` as an HTTP/1.1 message head.
fn encode_http1(status: StatusCode, headers: &HeaderMap, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `status` with `headers` as one HTTP/2 `HEADERS` frame on
/// `stream` (`END_HEADERS`, never `END_STREAM`); false, with part of it
/// appended, when the block is over [`MAX_H2_FRAME`].
///
/// Every field is a literal "without indexing" (RFC 7541 §6.2.2), its
/// strings not Huffman-coded: such a field never touches the HPACK
/// dynamic table, so the encoder state the client shares with h2 (whose
/// frames these go between) stays as h2 left it.
pub(crate) fn encode_h2(
    stream: u32,
    status: StatusCode,
    headers: &HeaderMap,
    out: &mut Vec<u8>,
) -> bool {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, H2_HEADERS, H2_END_HEADERS]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    // `:status` by its name's index in the static table (8).
    hpack_int(8, 4, 0x00, out);
    hpack_string(status.as_str().as_bytes(), out);
    for (name, value) in headers {
        out.push(0x00);
        hpack_string(name.as_str().as_bytes(), out);
        hpack_string(value.as_bytes(), out);
    }
    let length = out.len() - start - 9;
    if length > MAX_H2_FRAME {
        return false;
    }
    // At most 16384: fits the 24-bit length.
    let [_, l0, l1, l2] = (length as u32).to_be_bytes();
    out[start..start + 3].copy_from_slice(&[l0, l1, l2]);
    true
}

/// An HPACK integer (RFC 7541 §5.1) with an `prefix`-bit prefix, the
/// byte's other bits `flags`.
fn hpack_int(mut value: usize, prefix: u32, flags: u8, out: &mut Vec<u8>) {
    let max = (1usize << prefix) - 1;
    if value < max {
        // Below 2^prefix: fits the byte.
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// An HPACK string literal (RFC 7541 §5.2), not Huffman-coded.
fn hpack_string(bytes: &[u8], out: &mut Vec<u8>) {
    hpack_int(bytes.len(), 7, 0x00, out);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::map_of;

    #[test]
    fn an_http1_head_has_the_status_line_and_the_fields() {
        let mut out = Vec::new();
        let headers = map_of(&[("link", "</s.css>; rel=preload")]);
        encode_http1(StatusCode::EARLY_HINTS, &headers, &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\n"
        );
    }

    #[test]
    fn an_h2_frame_is_headers_with_literals_without_indexing() {
        let mut out = Vec::new();
        let headers = map_of(&[("link", "</s.css>")]);
        assert!(encode_h2(5, StatusCode::EARLY_HINTS, &headers, &mut out));
        let block: &[u8] = &[
            0x08, 3, b'1', b'0', b'3', // :status, literal without indexing
            0x00, 4, b'l', b'i', b'n', b'k', 8, b'<', b'/', b's', b'.', b'c', b's', b's', b'>',
        ];
        let mut frame = vec![0, 0, block.len() as u8, 0x1, 0x4, 0, 0, 0, 5];
        frame.extend_from_slice(block);
        assert_eq!(out, frame);
    }

    #[test]
    fn hpack_integers_past_the_prefix_continue_in_sevens() {
        // RFC 7541 §C.1.2: 1337 with a 5-bit prefix.
        let mut out = Vec::new();
        hpack_int(1337, 5, 0, &mut out);
        assert_eq!(out, [31, 154, 10]);
        let mut out = Vec::new();
        hpack_int(127, 7, 0, &mut out);
        assert_eq!(out, [127, 0]);
    }

    #[test]
    fn a_block_over_one_frame_is_refused() {
        let big = "x".repeat(MAX_H2_FRAME);
        let headers = map_of(&[("link", big.as_str())]);
        assert!(!encode_h2(
            1,
            StatusCode::EARLY_HINTS,
            &headers,
            &mut Vec::new()
        ));
    }

    #[test]
    fn http1_requests_get_only_their_own_1xx_and_http10_none() {
        let outbox = Outbox::new(Protocol::Http1);
        assert!(outbox.for_request(http::Version::HTTP_10).outbox.is_none());
        let first = outbox.for_request(http::Version::HTTP_11);
        let headers = HeaderMap::new();
        first
            .outbox
            .as_ref()
            .unwrap()
            .push(first.id, StatusCode::EARLY_HINTS, &headers);
        assert!(outbox.is_pending());
        let mut taken = Taken::default();
        outbox.take(&mut taken, true);
        assert_eq!(taken.bytes, b"HTTP/1.1 103 Early Hints\r\n\r\n");
        // Its final response started: a late one is not taken.
        outbox.push(first.id, StatusCode::EARLY_HINTS, &headers);
        assert!(!outbox.is_pending());
        let second = outbox.for_request(http::Version::HTTP_11);
        outbox.push(first.id, StatusCode::EARLY_HINTS, &headers);
        assert!(!outbox.is_pending());
        outbox.push(second.id, StatusCode::PROCESSING, &headers);
        assert!(outbox.is_pending());
    }

    #[test]
    fn http2_requests_take_the_streams_in_the_order_they_opened() {
        let outbox = Outbox::new(Protocol::Http2);
        outbox.opened(1);
        outbox.opened(3);
        assert_eq!(outbox.for_request(http::Version::HTTP_2).id, 1);
        assert_eq!(outbox.for_request(http::Version::HTTP_2).id, 3);
        assert!(outbox.for_request(http::Version::HTTP_2).outbox.is_none());
    }
}
