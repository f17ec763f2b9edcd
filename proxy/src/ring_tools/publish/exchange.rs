//! One TCP connection to the primary server, carrying DNS messages with
//! their two-byte length (RFC 1035 §4.2.2).
//!
//! Why TCP, and not UDP with a fallback on truncation: an UPDATE must not
//! be sent twice. Over UDP a lost answer means sending again, and the
//! second copy then fails its prerequisites because the first applied,
//! which would report "the ring is no longer OLD" for an update that did
//! apply. Over TCP a message arrives once or the connection fails, and an
//! update of a ring of thousands of tokens is never too large for the
//! transport (up to 65,535 bytes). Every primary server speaks DNS over
//! TCP (RFC 7766).
//!
//! Why not hickory-net's client: it verifies the answer's TSIG before
//! handing it back, so the unsigned answer a server gives a request whose
//! signature it refuses (NOTAUTH with BADSIG or BADKEY, RFC 8945 §5.2)
//! comes back as an opaque verification error, and the operator would not
//! learn that the key's secret is wrong. Here the caller gets the bytes,
//! reads the answer with hickory and verifies its TSIG with hickory's
//! verifier itself.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The connection could not be made.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// Nothing within the time allowed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed while sending or reading.
    #[error("the connection failed: {0}")]
    Io(std::io::Error),
    /// A message over TCP's limit.
    #[error("the message is {0} bytes: a DNS message over TCP holds at most 65,535")]
    TooLarge(usize),
    /// An answer that is not to our message.
    #[error("the answer has id {got}, not the request's {sent}")]
    WrongId {
        /// The request's id.
        sent: u16,
        /// The answer's.
        got: u16,
    },
}

/// A TCP connection to a DNS server.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    timeout: Duration,
}

// === impl Connection ===

impl Connection {
    /// Connects to `server`; this and each later exchange may take
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::Connect`] or [`ExchangeError::Timeout`].
    pub async fn open(server: SocketAddr, timeout: Duration) -> Result<Connection, ExchangeError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(server))
            .await
            .map_err(|_| ExchangeError::Timeout(timeout))?
            .map_err(ExchangeError::Connect)?;
        Ok(Connection { stream, timeout })
    }

    /// Sends `request` (a message whose id is `id`) and returns the bytes
    /// of the answer.
    ///
    /// # Errors
    ///
    /// A message too large, a failed connection, no answer in time, or an
    /// answer with another id.
    pub async fn exchange(&mut self, id: u16, request: &[u8]) -> Result<Vec<u8>, ExchangeError> {
        let length =
            u16::try_from(request.len()).map_err(|_| ExchangeError::TooLarge(request.len()))?;
        let timeout = self.timeout;
        let answer = tokio::time::timeout(timeout, async {
            let mut framed = Vec::with_capacity(request.len() + 2);
            framed.extend_from_slice(&length.to_be_bytes());
            framed.extend_from_slice(request);
            self.stream.write_all(&framed).await?;
            let mut length = [0u8; 2];
            self.stream.read_exact(&mut length).await?;
            let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
            self.stream.read_exact(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        })
        .await
        .map_err(|_| ExchangeError::Timeout(timeout))?
        .map_err(ExchangeError::Io)?;
        let got = answer
            .get(..2)
            .map_or(0, |bytes| u16::from_be_bytes([bytes[0], bytes[1]]));
        if got != id {
            return Err(ExchangeError::WrongId { sent: id, got });
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_message_and_its_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut length = [0u8; 2];
            stream.read_exact(&mut length).await.unwrap();
            let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut message).await.unwrap();
            stream.write_all(&length).await.unwrap();
            stream.write_all(&message).await.unwrap();
            // Then one answer with another id.
            stream.read_exact(&mut length).await.unwrap();
            stream.read_exact(&mut message).await.unwrap();
            stream.write_all(&[0, 2, 0, 9]).await.unwrap();
        });
        let mut connection = Connection::open(server, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            connection.exchange(0x0102, &[1, 2, 3]).await.unwrap(),
            [1, 2, 3]
        );
        assert!(matches!(
            connection.exchange(0x0102, &[1, 2, 3]).await,
            Err(ExchangeError::WrongId {
                sent: 0x0102,
                got: 9
            })
        ));
        echo.await.unwrap();
    }

    /// A server that takes the connection and never answers: the timeout
    /// ends the wait (on paused time: it fires once nothing else can
    /// happen).
    #[tokio::test(start_paused = true)]
    async fn no_answer_is_a_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let mut connection = Connection::open(server, Duration::from_secs(5))
            .await
            .unwrap();
        let error = connection.exchange(1, &[0; 12]).await.unwrap_err();
        assert!(matches!(error, ExchangeError::Timeout(_)), "{error}");
        assert_eq!(error.to_string(), "no answer within 5s");
        drop(listener);
    }

    #[tokio::test]
    async fn too_large_and_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let mut connection = Connection::open(server, Duration::from_secs(5))
            .await
            .unwrap();
        let error = connection.exchange(1, &vec![0; 70_000]).await.unwrap_err();
        assert!(matches!(error, ExchangeError::TooLarge(70_000)), "{error}");
        drop(connection);
        drop(listener);
        let error = Connection::open(server, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(error, ExchangeError::Connect(_)), "{error}");
    }
}
