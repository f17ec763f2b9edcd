//! A raw TCP client for tests that must send exact bytes (malformed,
//! ambiguous or hostile requests) and read exactly what comes back.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WAIT;

/// One response read off a raw connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Its status.
    pub status: u16,
    /// Its header fields, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Its body (framed by `Content-Length`, else by the end of the
    /// connection).
    pub body: String,
}

impl Reply {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A raw connection to `addr`.
pub struct Raw {
    stream: TcpStream,
    /// Bytes read and not yet consumed by a reply.
    pending: Vec<u8>,
    /// The peer closed (or reset) the connection.
    eof: bool,
}

impl Raw {
    /// Connects.
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
            pending: Vec::new(),
            eof: false,
        }
    }

    /// Connects from `source` (a port of its choosing): a client the test
    /// can tell apart from any other on the loopback, `127.0.0.3` say.
    pub async fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> Raw {
        let socket = match source {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        Raw {
            stream: socket.connect(addr).await.unwrap(),
            pending: Vec::new(),
            eof: false,
        }
    }

    /// The address this end of the connection has.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    /// The socket, for reading it directly.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Writes `bytes`. A write error (the proxy closed first) is not one
    /// for the test: what was answered is read next.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next response, or `None` when the connection ends first.
    pub async fn reply(&mut self) -> Option<Reply> {
        loop {
            if let Some(reply) = self.parse()? {
                return Some(reply);
            }
            if self.eof {
                return None;
            }
            self.fill().await;
        }
    }

    /// True once the proxy has closed the connection (with nothing more
    /// sent); fails the test when it is still open after the wait.
    pub async fn closed(&mut self) -> bool {
        while !self.eof {
            self.fill().await;
        }
        self.pending.is_empty()
    }

    /// The next `count` bytes after the responses read so far (on a
    /// connection switched to another protocol), or fewer if the
    /// connection ends first.
    pub async fn bytes(&mut self, count: usize) -> Vec<u8> {
        while self.pending.len() < count && !self.eof {
            self.fill().await;
        }
        let end = count.min(self.pending.len());
        self.pending.drain(..end).collect()
    }

    /// Reads more, marking the end of the connection.
    async fn fill(&mut self) {
        let mut buffer = [0u8; 16 << 10];
        let read = tokio::time::timeout(WAIT, self.stream.read(&mut buffer))
            .await
            .expect("the proxy answers or closes within the wait");
        match read {
            Ok(0) | Err(_) => self.eof = true,
            Ok(count) => self.pending.extend_from_slice(&buffer[..count]),
        }
    }

    /// A whole response from `pending`, `Some(None)` when more is needed,
    /// `None` when the bytes are not a response.
    fn parse(&mut self) -> Option<Option<Reply>> {
        if self.pending.is_empty() {
            return Some(None);
        }
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut fields);
        let head = match response.parse(&self.pending) {
            Ok(httparse::Status::Complete(head)) => head,
            Ok(httparse::Status::Partial) => return Some(None),
            Err(_) => return None,
        };
        let headers: Vec<(String, String)> = response
            .headers
            .iter()
            .map(|field| {
                (
                    field.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(field.value).into_owned(),
                )
            })
            .collect();
        let status = response.code?;
        // A `1xx` has no body (after a `101`, what follows is the new
        // protocol's).
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse::<usize>().ok())
            .or((100..200).contains(&status).then_some(0));
        let end = match length {
            Some(length) if self.pending.len() >= head + length => head + length,
            Some(_) => return Some(None),
            None if self.eof => self.pending.len(),
            None => return Some(None),
        };
        let body = String::from_utf8_lossy(&self.pending[head..end]).into_owned();
        self.pending.drain(..end);
        Some(Some(Reply {
            status,
            headers,
            body,
        }))
    }
}

/// Reads one request head off `stream`, a backend's side of a connection,
/// byte by byte (nothing after it is taken); `None` when the connection
/// ends first.
pub async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

/// Sends `bytes` on a new connection and reads the first response.
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> (Raw, Option<Reply>) {
    let mut raw = Raw::connect(addr).await;
    raw.send(bytes).await;
    let reply = raw.reply().await;
    (raw, reply)
}
