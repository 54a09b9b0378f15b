//! The load generator's HTTP/1.1 client: one keep-alive connection, one request at a time.
//!
//! The load generator shares the machine's cores with the server it measures, so every
//! microsecond it spends is one the server does not get. A general client (hyper's) runs each
//! connection as a task of its own behind a channel; here the caller's task owns the socket.
//! A request is bytes laid out before the clock starts ([`request_bytes`]) and goes out in one
//! write. The response head is parsed in place with `httparse`, and the body, framed by its
//! `Content-Length`, is lent to the caller from the connection's buffer until the next
//! exchange. Only what `farthing serve` sends is understood: a response framed any other way
//! (chunked, or ended by closing the connection) is refused as malformed, never guessed at.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Response headers parsed at most (`farthing serve` sends about ten).
const RESPONSE_HEADERS_MAX: usize = 64;
/// Longest response head accepted, in bytes.
const RESPONSE_HEAD_BYTES_MAX: usize = 64 << 10;
/// Free room made in the buffer before each read, in bytes.
const READ_ROOM_BYTES: usize = 16 << 10;

/// Why an exchange failed. Each leaves the connection unusable: reopen it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    // The I/O errors are in the messages, so they are not also the `source()`s, which a
    // report of the whole chain would print a second time.
    #[error("connecting to {addr}: {error}")]
    Connect {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("HTTP connection: {0}")]
    Io(std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("response body of {length} bytes, more than the {limit} allowed")]
    TooLarge { length: usize, limit: usize },
    #[error("no complete response within {} ms", .0.as_millis())]
    Timeout(Duration),
}

impl From<std::io::Error> for ClientError {
    fn from(error: std::io::Error) -> ClientError {
        ClientError::Io(error)
    }
}

/// A response: its status and body (borrowed from the connection until its next exchange).
#[derive(Debug)]
pub struct Response<'a> {
    pub status: StatusCode,
    pub body: &'a [u8],
}

/// One keep-alive connection.
pub struct Connection {
    stream: TcpStream,
    /// The last response's bytes (its body is lent out), then the next response's as they
    /// arrive.
    buffer: Vec<u8>,
    /// The server announced `Connection: close` or an exchange failed half-way: nothing more
    /// may be sent.
    broken: bool,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Result<Connection, ClientError> {
        let connect_error = |error| ClientError::Connect { addr, error };
        let stream = TcpStream::connect(addr).await.map_err(connect_error)?;
        // One small request at a time: Nagle's algorithm would hold each back until the
        // previous segment is acknowledged.
        stream.set_nodelay(true).map_err(connect_error)?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(READ_ROOM_BYTES),
            broken: false,
        })
    }

    /// Sends `request` (from [`request_bytes`]) and reads its whole response, within
    /// `timeout`, refusing a body longer than `body_limit`.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        body_limit: usize,
        timeout: Duration,
    ) -> Result<Response<'_>, ClientError> {
        if self.broken {
            return Err(ClientError::Closed);
        }
        // Until the response is complete the connection is in an unknown state.
        self.broken = true;
        let (status, body) = tokio::time::timeout(timeout, self.round_trip(request, body_limit))
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        Ok(Response {
            status,
            body: &self.buffer[body],
        })
    }

    /// The status and where the body lies in the buffer.
    async fn round_trip(
        &mut self,
        request: &[u8],
        body_limit: usize,
    ) -> Result<(StatusCode, std::ops::Range<usize>), ClientError> {
        self.buffer.clear();
        self.stream.write_all(request).await?;
        let head = loop {
            if let Some(head) = parse_head(&self.buffer, body_limit)? {
                break head;
            }
            if self.buffer.len() > RESPONSE_HEAD_BYTES_MAX {
                return Err(ClientError::Malformed(format!(
                    "no end of the head within {RESPONSE_HEAD_BYTES_MAX} bytes"
                )));
            }
            self.fill(READ_ROOM_BYTES).await?;
        };
        let end = head.length + head.body_length;
        while self.buffer.len() < end {
            self.fill(end - self.buffer.len()).await?;
        }
        if self.buffer.len() > end {
            // One request in flight: the server has nothing else to send.
            return Err(ClientError::Malformed(format!(
                "{} bytes after the response's end",
                self.buffer.len() - end
            )));
        }
        self.broken = head.closes;
        Ok((head.status, head.length..end))
    }

    /// Reads what has arrived, making room for at least `room` more bytes first.
    async fn fill(&mut self, room: usize) -> Result<(), ClientError> {
        self.buffer.reserve(room.max(READ_ROOM_BYTES));
        match self.stream.read_buf(&mut self.buffer).await? {
            0 => Err(ClientError::Closed),
            _ => Ok(()),
        }
    }
}

/// What a response's head says about the response.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: StatusCode,
    /// Bytes of the head itself, up to and including the blank line.
    length: usize,
    body_length: usize,
    /// `Connection: close`: the server hangs up after this response.
    closes: bool,
}

/// The response head at the start of `bytes`, once all of it has arrived (`None` before).
fn parse_head(bytes: &[u8], body_limit: usize) -> Result<Option<Head>, ClientError> {
    let malformed = |what: String| ClientError::Malformed(what);
    let mut headers = [httparse::EMPTY_HEADER; RESPONSE_HEADERS_MAX];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(malformed(error.to_string())),
    };
    if response.version != Some(1) {
        return Err(malformed("not an HTTP/1.1 response".into()));
    }
    let code = response.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| malformed(format!("status code {code}")))?;
    let mut body_length = None;
    let mut closes = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| malformed("Content-Length is not a byte count".into()))?;
            if body_length.is_some_and(|seen| seen != value) {
                return Err(malformed("two different Content-Length headers".into()));
            }
            body_length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(malformed(
                "Transfer-Encoding is not understood (farthing serve frames bodies by Content-Length)"
                    .into(),
            ));
        } else if header.name.eq_ignore_ascii_case("connection") {
            closes |= header
                .value
                .split(|b| *b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    let body_length = match body_length {
        Some(body_length) => body_length,
        None if status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED =>
        {
            0
        }
        None => return Err(malformed(format!("{status} without Content-Length"))),
    };
    if body_length > body_limit {
        return Err(ClientError::TooLarge {
            length: body_length,
            limit: body_limit,
        });
    }
    Ok(Some(Head {
        status,
        length,
        body_length,
        closes,
    }))
}

/// A request's bytes, head and body, laid out once so that sending it is one write. `headers`
/// must be valid header values (no line breaks): callers take them from checked
/// `http::HeaderValue`s or constants.
pub fn request_bytes(method: &Method, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Bytes {
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("content-length: ");
    head.push_str(&body.len().to_string());
    head.push_str("\r\n\r\n");
    let mut bytes = Vec::with_capacity(head.len() + body.len());
    bytes.extend_from_slice(head.as_bytes());
    bytes.extend_from_slice(body);
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    const LIMIT: usize = 1 << 20;

    fn head(bytes: &str) -> Result<Option<Head>, ClientError> {
        parse_head(bytes.as_bytes(), LIMIT)
    }

    #[test]
    fn a_head_is_read_once_complete_and_framed_by_content_length() {
        let full = "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
        let head_length = full.find("\r\n\r\n").unwrap() + 4;
        for cut in 0..head_length {
            assert!(head(&full[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let parsed = head(full).unwrap().unwrap();
        assert_eq!(
            parsed,
            Head {
                status: StatusCode::CREATED,
                length: head_length,
                body_length: 7,
                closes: false,
            }
        );
        let closing =
            head("HTTP/1.1 200 OK\r\nconnection: keep-alive, Close\r\ncontent-length: 0\r\n\r\n");
        assert!(closing.unwrap().unwrap().closes);
    }

    #[test]
    fn framing_other_than_content_length_is_refused() {
        let refused = |text: &str, why: &str| match head(text) {
            Err(ClientError::Malformed(message)) => assert!(message.contains(why), "{message}"),
            other => panic!("{text:?} gave {other:?}"),
        };
        refused(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            "Transfer-Encoding",
        );
        refused("HTTP/1.1 200 OK\r\n\r\n", "without Content-Length");
        refused(
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "byte count",
        );
        refused(
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "two different",
        );
        refused("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", "HTTP/1.1");
        refused("HTTX/1.1 200 OK\r\n\r\n", "");
        // Without a body by definition.
        let empty = head("HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!(empty.body_length, 0);
        match parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n", 10) {
            Err(ClientError::TooLarge {
                length: 11,
                limit: 10,
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_are_laid_out_with_their_length() {
        let bytes = request_bytes(
            &Method::POST,
            "/v1/charges",
            &[
                ("host", "127.0.0.1:1"),
                ("content-type", "application/json"),
            ],
            b"{}",
        );
        assert_eq!(
            &bytes[..],
            b"POST /v1/charges HTTP/1.1\r\nhost: 127.0.0.1:1\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        );
    }

    /// A server on loopback that reads one request per answer and sends each answer in
    /// pieces of `piece` bytes.
    async fn serve(answers: Vec<&'static [u8]>, piece: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            for answer in answers {
                let mut read = 0;
                while !request[..read].ends_with(b"\r\n\r\n{}") {
                    let n = socket.read(&mut request[read..]).await.unwrap();
                    assert!(n > 0);
                    read += n;
                }
                for chunk in answer.chunks(piece) {
                    socket.write_all(chunk).await.unwrap();
                    socket.flush().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        addr
    }

    /// One exchange with a generous timeout; the answer copied out.
    async fn send(
        connection: &mut Connection,
        request: &[u8],
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let response = connection
            .exchange(request, LIMIT, Duration::from_secs(10))
            .await?;
        Ok((response.status, response.body.to_vec()))
    }

    #[tokio::test]
    async fn responses_arriving_in_pieces_are_read_whole_and_the_connection_is_reused() {
        let addr = serve(
            vec![
                b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nfirst",
                b"HTTP/1.1 409 Conflict\r\ncontent-length: 6\r\nconnection: close\r\n\r\nsecond",
            ],
            3,
        )
        .await;
        let request = request_bytes(&Method::POST, "/", &[("host", "x")], b"{}");
        let mut connection = Connection::open(addr).await.unwrap();
        let first = send(&mut connection, &request).await.unwrap();
        assert_eq!(first, (StatusCode::CREATED, b"first".to_vec()));
        let second = send(&mut connection, &request).await.unwrap();
        assert_eq!(second, (StatusCode::CONFLICT, b"second".to_vec()));
        // The server said it closes: nothing more is sent on this connection.
        let third = send(&mut connection, &request).await;
        assert!(matches!(third, Err(ClientError::Closed)), "{third:?}");
    }

    #[tokio::test]
    async fn a_response_cut_short_or_overlong_breaks_the_connection() {
        let request = request_bytes(&Method::POST, "/", &[("host", "x")], b"{}");
        let short = serve(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc"], 64).await;
        let mut connection = Connection::open(short).await.unwrap();
        let cut = send(&mut connection, &request).await;
        assert!(matches!(cut, Err(ClientError::Closed)), "{cut:?}");
        let overlong = serve(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nabc"], 64).await;
        let mut connection = Connection::open(overlong).await.unwrap();
        let long = send(&mut connection, &request).await;
        assert!(matches!(long, Err(ClientError::Malformed(_))), "{long:?}");
        // Whatever failed, the connection is not used again.
        let again = send(&mut connection, &request).await;
        assert!(matches!(again, Err(ClientError::Closed)), "{again:?}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let request = request_bytes(&Method::POST, "/", &[("host", "x")], b"{}");
        let mut connection = Connection::open(addr).await.unwrap();
        assert!(matches!(
            connection
                .exchange(&request, LIMIT, Duration::from_millis(50))
                .await,
            Err(ClientError::Timeout(_))
        ));
    }
}
