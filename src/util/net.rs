//! net — opening a connection with a deadline: one socket opener for DNS
//! (UDP and TCP), the SMTP client and the mserver query.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A socket connected to `server`, TCP (`stream`) or UDP (bound by the
/// kernel to a random port). A TCP connect gives up at `until` with
/// TimedOut: Linux ends a blocking connect after SO_SNDTIMEO with
/// EINPROGRESS.
pub fn connect(server: SocketAddr, stream: bool, until: Instant) -> io::Result<OwnedFd> {
    use nix::sys::socket::{self as so, AddressFamily, SockFlag, SockType, SockaddrStorage};
    let family = if server.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let ty = if stream {
        SockType::Stream
    } else {
        SockType::Datagram
    };
    let fd = so::socket(family, ty, SockFlag::SOCK_CLOEXEC, None)?;
    let sa = SockaddrStorage::from(server);
    loop {
        let left = remaining(until)?;
        let tv = nix::sys::time::TimeVal::new(left.as_secs() as _, left.subsec_micros() as _);
        so::setsockopt(&fd, so::sockopt::SendTimeout, &tv)?;
        match so::connect(fd.as_raw_fd(), &sa) {
            Ok(()) => return Ok(fd),
            // A connect called again after a signal waits for the same
            // handshake (or finds it done).
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EINPROGRESS) => return Err(io::ErrorKind::TimedOut.into()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Time left until `until`, or a TimedOut error (a zero timeout would
/// mean "block forever" to the socket calls).
pub fn remaining(until: Instant) -> io::Result<Duration> {
    let left = crate::util::time::left(until);
    if left.is_zero() {
        Err(io::ErrorKind::TimedOut.into())
    } else {
        Ok(left)
    }
}
