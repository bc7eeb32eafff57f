//! Listening sockets: TCP for SMTP (plain and implicit TLS), and the Unix
//! control socket.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrStorage,
};

/// One SMTP listener.
pub struct Listener {
    pub addr: SocketAddr,
    /// Implicit TLS (port 465 style).
    pub tls: bool,
    pub sock: TcpListener,
}

/// Bind a TCP listener: SO_REUSEADDR, IPV6_V6ONLY for IPv6 (so `[::]:25`
/// and `0.0.0.0:25` can both be listed), non-blocking, close-on-exec.
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd: OwnedFd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if addr.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    let sa = SockaddrStorage::from(addr);
    bind(fd.as_raw_fd(), &sa)?;
    listen(&fd, Backlog::new(64).unwrap_or(Backlog::MAXCONN))?;
    // SAFETY: the descriptor is a fresh, owned, listening TCP socket.
    Ok(unsafe { TcpListener::from_raw_fd(fd.into_raw_fd()) })
}

/// Bind every configured address; the first failure is returned with the
/// address in the message.
pub fn bind_all(plain: &[SocketAddr], tls: &[SocketAddr]) -> Result<Vec<Listener>, String> {
    let mut out = Vec::new();
    for (addrs, is_tls) in [(plain, false), (tls, true)] {
        for &addr in addrs {
            let sock = bind_tcp(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            out.push(Listener {
                addr,
                tls: is_tls,
                sock,
            });
        }
    }
    Ok(out)
}
