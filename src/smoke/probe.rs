//! The two probes Cloud Run can use on a starting instance: a TCP connect (its default startup
//! probe) and an HTTP GET (what a request, or an HTTP startup probe, needs).
//!
//! Plain blocking sockets with timeouts; the answer read is bounded to the status line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The most bytes read looking for the status line.
const STATUS_LINE_LIMIT: u64 = 1024;

/// Whether a TCP connection to `addr` is accepted within `timeout`.
pub fn tcp_accepts(addr: SocketAddr, timeout: Duration) -> bool {
    TcpStream::connect_timeout(&addr, timeout).is_ok()
}

/// The HTTP status of `GET path`, or `None` when nothing answered within `timeout` (refused,
/// reset, closed, or not HTTP).
pub fn http_status(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ctxbuild-smoke\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(stream.take(STATUS_LINE_LIMIT))
        .read_line(&mut line)
        .ok()?;
    parse_status_line(&line)
}

/// `HTTP/1.1 200 OK` → 200.
fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code: u16 = parts.next()?.parse().ok()?;
    (100..=599).contains(&code).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status_line("HTTP/1.0 404 Not Found"), Some(404));
        assert_eq!(parse_status_line("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line("HTTP/1.1 999 x"), None);
        assert_eq!(parse_status_line(""), None);
    }

    #[test]
    fn probes_against_a_local_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
        });
        assert_eq!(
            http_status(addr, "/health", Duration::from_secs(5)),
            Some(503)
        );
        server.join().unwrap();
        // Nothing listens on a port just released.
        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(!tcp_accepts(free, Duration::from_millis(500)));
        assert_eq!(http_status(free, "/", Duration::from_millis(500)), None);
    }
}
