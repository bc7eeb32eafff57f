//! The control socket: `spool_dir/control`, a Unix stream socket.
//!
//! DESCRIPTION
//!   One request line per connection, one reply, then close:
//!     `flush [ROUTE]`  → `ok` (queue-out runs for ROUTE, or every online
//!                        route, ignoring backoff)
//!     `status`         → lines `key: value`, then an empty line
//!     `routes`         → one line per route, `NAME STATE SOURCE DETAIL`
//!                        (STATE online/offline/disabled; SOURCE permanent,
//!                        file, netlink, mserver, command or `-`; DETAIL
//!                        the device or name, or `-`), then an empty line
//!   Anything else gets `error: …`. `masqmail flush` and the OpenWrt ifup
//!   hook are its clients.
//!
//! SECURITY
//!   The socket lives in the 0700 spool directory and is mode 0600: only
//!   root and the mail user reach it. Requests are bounded (512 bytes) and
//!   the supervisor never blocks on a client: connections are non-blocking
//!   and polled with everything else.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const MAX_REQUEST: usize = 512;

pub fn socket_path(spool_dir: &Path) -> PathBuf {
    spool_dir.join("control")
}

#[derive(Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Flush(Option<&'a str>),
    Status,
    Routes,
}

/// None: an unknown request (the reply is `error: unknown request '…'`).
pub fn parse_request(line: &str) -> Option<Request<'_>> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("flush"), None, _) => Some(Request::Flush(None)),
        (Some("flush"), Some(r), None)
            if r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            Some(Request::Flush(Some(r)))
        }
        (Some("status"), None, _) => Some(Request::Status),
        (Some("routes"), None, _) => Some(Request::Routes),
        _ => None,
    }
}

/// Bind the control socket. A socket left by a dead daemon is replaced; a
/// live daemon answering on it is an error.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a daemon is already running ({} answers)", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// A connection being read by the supervisor.
pub struct Conn {
    pub stream: UnixStream,
    buf: Vec<u8>,
}

/// What reading a connection gave.
pub enum ReadResult {
    /// Not a whole line yet.
    More,
    Line(String),
    /// Closed, too long, or an error: drop the connection.
    Drop,
}

impl Conn {
    /// `stream`: already non-blocking.
    pub fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn read(&mut self) -> ReadResult {
        let end = match read_line(self.stream.as_fd(), &mut self.buf, MAX_REQUEST) {
            Got::More => return ReadResult::More,
            Got::Line(i) => i,
            // EOF: a request without a line end still counts.
            Got::Eof if !self.buf.is_empty() => self.buf.len(),
            Got::Eof | Got::Fail => return ReadResult::Drop,
        };
        let line = self.buf.get(..end).unwrap_or_default();
        ReadResult::Line(String::from_utf8_lossy(line).into_owned())
    }

    /// Send the (small) reply; a client that does not read loses it.
    pub fn reply(mut self, text: &str) {
        let _ = self.stream.set_nonblocking(false);
        let _ = self.stream.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = self.stream.write_all(text.as_bytes());
    }
}

/// What [`read_line`] found.
pub enum Got {
    /// Nothing more to read for now.
    More,
    /// A line end, at this index of the buffer.
    Line(usize),
    /// The end of the stream.
    Eof,
    /// An error, or more than the limit without a line end.
    Fail,
}

/// Read what the non-blocking `fd` holds into `buf`, until a line end,
/// the end, or more than `max` bytes (the supervisor's connections and
/// pipes: it never waits for them).
pub fn read_line(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, max: usize) -> Got {
    let mut chunk = [0u8; 256];
    loop {
        let got = match nix::unistd::read(fd, &mut chunk) {
            Ok(n) => &chunk[..n],
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => return Got::More,
            Err(_) => return Got::Fail,
        };
        if got.is_empty() {
            return Got::Eof;
        }
        buf.extend_from_slice(got);
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            return Got::Line(i);
        }
        if buf.len() > max {
            return Got::Fail;
        }
    }
}

/// Client side: send one request, return the reply. Errors mean no daemon
/// answered (the caller falls back to doing the work itself).
pub fn request(path: &Path, line: &str) -> io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut req = Vec::with_capacity(line.len() + 1);
    req.extend_from_slice(line.as_bytes());
    req.push(b'\n');
    s.write_all(&req)?;
    // At most 64 KiB of reply.
    let mut reply = Vec::new();
    let mut chunk = [0u8; 1024];
    while reply.len() < 64 * 1024 {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    reply.truncate(64 * 1024);
    // Not UTF-8: not a daemon's reply.
    String::from_utf8(reply).map_err(|_| io::ErrorKind::InvalidData.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(parse_request("flush"), Some(Request::Flush(None)));
        assert_eq!(
            parse_request("flush isp_1\r"),
            Some(Request::Flush(Some("isp_1")))
        );
        assert_eq!(parse_request(" status "), Some(Request::Status));
        assert_eq!(parse_request("routes"), Some(Request::Routes));
        for bad in ["", "flush a b", "flush ../x", "reboot", "status now"] {
            assert!(parse_request(bad).is_none(), "{bad}");
        }
    }
}
