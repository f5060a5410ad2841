//! `strata-broker probe --ready`: one `GET /readyz` to a broker's admin listener, for
//! container health checks on an image without curl. Blocking, with a connect and I/O
//! timeout and a bound on what it reads; HTTP/1.1 with `Connection: close`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long the probe waits to connect, and for each read or write.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The most of the answer the probe reads (the readiness body is well under 1 KiB).
const ANSWER_BYTES_MAX: u64 = 16 * 1024;

/// Why the probe could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot resolve {address}: {source}")]
    Resolve {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{address} resolves to no address")]
    NoAddress { address: String },
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to {address} failed: {source}")]
    Io {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{address} did not answer HTTP: {first_line:?}")]
    NotHttp {
        address: SocketAddr,
        first_line: String,
    },
}

/// An HTTP answer: its status code and body (possibly cut at the read bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// `GET path` on `address` (`host:port`). An unspecified host (`0.0.0.0`, `[::]`: the
/// broker's own listen address in a container) is asked on loopback.
pub fn get(address: &str, path: &str) -> Result<Answer, ProbeError> {
    get_within(address, path, ANSWER_BYTES_MAX)
}

/// [`get`], reading at most `answer_bytes_max` bytes of the answer (for `/metrics`).
pub fn get_within(address: &str, path: &str, answer_bytes_max: u64) -> Result<Answer, ProbeError> {
    let target = resolve(address)?;
    let mut stream = TcpStream::connect_timeout(&target, PROBE_TIMEOUT).map_err(|source| {
        ProbeError::Connect {
            address: target,
            source,
        }
    })?;
    let io = |source| ProbeError::Io {
        address: target,
        source,
    };
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT)).map_err(io)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nAccept: */*\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut answer = Vec::new();
    stream
        .take(answer_bytes_max)
        .read_to_end(&mut answer)
        .map_err(io)?;
    parse_answer(&answer).ok_or_else(|| ProbeError::NotHttp {
        address: target,
        first_line: String::from_utf8_lossy(answer.split(|b| *b == b'\n').next().unwrap_or(&[]))
            .trim_end()
            .chars()
            .take(120)
            .collect(),
    })
}

fn resolve(address: &str) -> Result<SocketAddr, ProbeError> {
    let mut target = address
        .to_socket_addrs()
        .map_err(|source| ProbeError::Resolve {
            address: address.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| ProbeError::NoAddress {
            address: address.to_owned(),
        })?;
    if target.ip().is_unspecified() {
        let loopback: std::net::IpAddr = if target.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        target.set_ip(loopback);
    }
    Ok(target)
}

/// The status code and body of an HTTP/1.x answer, or `None` if it is not one. The body
/// is whatever follows the headers (the admin listener answers with a length, not chunks,
/// for these small bodies; a chunked body would keep its chunk sizes, which only the
/// message shows).
pub fn parse_answer(answer: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some(Answer {
        status,
        body: body.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn an_http_answer_gives_its_status_and_body() {
        let answer = parse_answer(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{\"status\":\"booting\"}",
        )
        .unwrap();
        assert_eq!(answer.status, 503);
        assert_eq!(answer.body, r#"{"status":"booting"}"#);
    }

    #[test]
    fn anything_else_is_not_an_answer() {
        for bytes in [
            &b""[..],
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 abc\r\n\r\n",
            b"\x00\x01",
        ] {
            assert_eq!(parse_answer(bytes), None, "{bytes:?}");
        }
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        assert!(matches!(
            get(&address, "/readyz"),
            Err(ProbeError::Connect { .. })
        ));
    }

    #[test]
    fn the_probe_reads_a_real_answer_from_a_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0_u8; 1024];
            let read = stream.read(&mut request).unwrap();
            assert!(request[..read].starts_with(b"GET /readyz HTTP/1.1\r\n"));
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 18\r\n\r\n{\"status\":\"ready\"}")
                .unwrap();
        });
        let answer = get(&format!("0.0.0.0:{}", address.port()), "/readyz").unwrap();
        server.join().unwrap();
        assert_eq!(
            answer,
            Answer {
                status: 200,
                body: r#"{"status":"ready"}"#.to_owned()
            }
        );
    }
}
