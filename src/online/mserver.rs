//! online::mserver — ask a masqdialer server which connection is up.
//!
//! DESCRIPTION
//!   The masqdialer exchange as masqmail 1.0's mservdetect speaks it
//!   (reverse engineered there, kept here):
//!
//! ```text
//!     S: READY
//!     C: STAT
//!     S: DOWN              no connection: offline
//!     S: UP NAME:N         N >= 0: connection NAME is up; N < 0: it is
//!                          being dialled, still offline
//!     C: QUIT
//! ```
//!
//!   Lines end with LF (CR LF accepted); leading white space is skipped.
//!   NAME is the name of a route. Older masqmail (0.1) counted N = 0 as
//!   "pending"; 1.0 counts it as up, and so do we.
//!
//!   Every step is bounded: the connection must be made within 5 s,
//!   every read and write within 5 s, the whole exchange within 10 s; a
//!   line is at most 256 bytes. A server that is missing, refuses, stalls
//!   or answers nonsense means "no connection is up" — never a hang. The
//!   daemon asks from a short-lived child (src/daemon/online.rs), so even
//!   a slow name lookup of `mserver_host` cannot block the supervisor.
//!   The name is looked up the way `resolve_list 'byname'` does it (an
//!   address literal, /etc/hosts, then DNS with `resolv_conf`, src/dns),
//!   not with the C library's getaddrinfo: musl's resolver would cost the
//!   router binary about 20 KB for this one lookup.
//!
//! SECURITY
//!   The server's answer is only compared with route names; it is never
//!   logged longer than a line, never used as a path or a command.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::HostPort;

/// How long each step may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connect: Duration,
    pub io: Duration,
    pub total: Duration,
}

pub const LIMITS: Limits = Limits {
    connect: Duration::from_secs(5),
    io: Duration::from_secs(5),
    total: Duration::from_secs(10),
};
const MAX_LINE: usize = 256;

/// What the server said after STAT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stat {
    Down,
    /// Being dialled (`UP NAME:-1`).
    Pending(String),
    Up(String),
}

/// Parse the reply to STAT.
pub fn parse_stat(line: &str) -> Result<Stat, String> {
    let line = line.trim();
    if line.starts_with("DOWN") {
        return Ok(Stat::Down);
    }
    let up = line
        .strip_prefix("UP ")
        .and_then(|rest| rest.rsplit_once(':'))
        .and_then(|(name, n)| Some((name, n.trim().parse::<i64>().ok()?)));
    let Some((name, n)) = up else {
        return Err(format!("unexpected reply to STAT: '{}'", printable(line)));
    };
    let name = name.trim().to_string();
    if name.is_empty() {
        return Err("the server named no connection".into());
    }
    Ok(if n >= 0 {
        Stat::Up(name)
    } else {
        Stat::Pending(name)
    })
}

/// At most 80 characters, control characters replaced: for log lines.
pub fn printable(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(80) {
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

/// Ask the server at `hp`, its name looked up with the name servers of
/// `resolv_conf`. Err: it could not be asked (down, silent, nonsense) —
/// the caller counts that as offline.
pub fn query(hp: &HostPort, resolv_conf: &Path) -> Result<Stat, String> {
    let addrs = look_up(hp, resolv_conf)?;
    query_within(&addrs, LIMITS)
}

/// The addresses of `hp`: a literal, the hosts file, then DNS.
fn look_up(hp: &HostPort, resolv_conf: &Path) -> Result<Vec<SocketAddr>, String> {
    let resolver = if crate::dns::literal(&hp.host).is_some() {
        None
    } else {
        crate::dns::Resolver::from_resolv_conf(resolv_conf).ok()
    };
    let ips = crate::dns::byname(&hp.host, true, resolver.as_ref()).map_err(|e| e.to_string())?;
    let mut v = Vec::with_capacity(ips.len());
    for ip in ips {
        v.push(SocketAddr::new(ip, hp.port));
    }
    Ok(v)
}

/// Ask the server at the first of `addrs` that answers, within `lim`.
pub fn query_within(addrs: &[SocketAddr], lim: Limits) -> Result<Stat, String> {
    let start = Instant::now();
    let mut last = String::from("no address");
    for &a in addrs {
        if start.elapsed() >= lim.total {
            break;
        }
        match crate::util::net::connect(a, true, Instant::now() + lim.connect) {
            Ok(s) => return exchange(TcpStream::from(s), start, lim),
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(last)
}

fn exchange(mut s: TcpStream, start: Instant, lim: Limits) -> Result<Stat, String> {
    s.set_write_timeout(Some(lim.io))
        .map_err(|e| e.to_string())?;
    let mut pending = Vec::new();
    let hello = read_line(&mut s, &mut pending, start, lim)?;
    if !hello.starts_with("READY") {
        return Err(format!(
            "the server did not say READY: '{}'",
            printable(&hello)
        ));
    }
    s.write_all(b"STAT\n")
        .map_err(|e| format!("sending STAT: {e}"))?;
    let reply = read_line(&mut s, &mut pending, start, lim)?;
    // Polite, not needed: the answer is in.
    let _ = s.write_all(b"QUIT\n");
    parse_stat(&reply)
}

fn ms(d: Duration) -> u64 {
    crate::util::time::millis(d)
}

/// One line (leading white space skipped), within the deadlines.
fn read_line(
    s: &mut TcpStream,
    pending: &mut Vec<u8>,
    start: Instant,
    lim: Limits,
) -> Result<String, String> {
    loop {
        let lead = pending
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(pending.len());
        pending.drain(..lead);
        if let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&pending[..i])
                .trim_end()
                .to_string();
            pending.drain(..=i);
            return Ok(line);
        }
        if pending.len() > MAX_LINE {
            return Err("the server sent a line longer than 256 bytes".into());
        }
        let left = lim.total.saturating_sub(start.elapsed());
        // The limit that ran out.
        let mut waited = lim.total;
        if !left.is_zero() {
            s.set_read_timeout(Some(left.min(lim.io)))
                .map_err(|e| e.to_string())?;
            let mut chunk = [0u8; 128];
            match s.read(&mut chunk) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => {
                    pending.extend_from_slice(&chunk[..n]);
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    waited = lim.io
                }
                Err(e) => return Err(format!("reading: {e}")),
            }
        }
        return Err(format!("no answer within {} ms", ms(waited)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// No resolv.conf: only literals and the hosts file resolve.
    const NO_RESOLV: &str = "/nonexistent/resolv.conf";

    fn addrs(hp: &HostPort) -> Vec<SocketAddr> {
        look_up(hp, Path::new(NO_RESOLV)).unwrap()
    }

    #[test]
    fn names_are_looked_up_without_getaddrinfo() {
        let hp = |host: &str| HostPort {
            host: host.into(),
            port: 222,
        };
        assert_eq!(
            addrs(&hp("127.0.0.1")),
            ["127.0.0.1:222".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            addrs(&hp("[::1]")),
            ["[::1]:222".parse::<SocketAddr>().unwrap()]
        );
        // Not in the hosts file and no name server: an error naming the
        // host, and no connection tried.
        let err = query(&hp("mserver.invalid"), Path::new(NO_RESOLV)).unwrap_err();
        assert!(err.contains("mserver.invalid"), "{err}");
    }

    #[test]
    fn stat_replies() {
        assert_eq!(parse_stat("DOWN"), Ok(Stat::Down));
        assert_eq!(parse_stat("UP isp:1"), Ok(Stat::Up("isp".into())));
        assert_eq!(parse_stat("  UP isp:0\r"), Ok(Stat::Up("isp".into())));
        assert_eq!(parse_stat("UP isp:-1"), Ok(Stat::Pending("isp".into())));
        assert_eq!(parse_stat("UP a:b:3"), Ok(Stat::Up("a:b".into())));
        for bad in ["", "UP", "UP isp", "UP isp:x", "UP :1", "HELLO", "UPisp:1"] {
            assert!(parse_stat(bad).is_err(), "{bad:?}");
        }
    }

    /// A one-connection server thread that plays `script`: None = send
    /// nothing more and hold the connection open.
    fn server(script: Vec<Option<&'static str>>) -> HostPort {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut buf = [0u8; 64];
            for step in script {
                match step {
                    Some(line) if line.starts_with("<") => {
                        let _ = s.read(&mut buf);
                    }
                    Some(line) => {
                        let _ = s.write_all(line.as_bytes());
                    }
                    None => {
                        std::thread::sleep(Duration::from_secs(3));
                        return;
                    }
                }
            }
            let _ = s.read(&mut buf);
        });
        HostPort {
            host: "127.0.0.1".into(),
            port,
        }
    }

    #[test]
    fn exchanges() {
        let up = server(vec![Some("READY\n"), Some("<"), Some("UP isp:1\n")]);
        assert_eq!(query(&up, Path::new(NO_RESOLV)), Ok(Stat::Up("isp".into())));
        let down = server(vec![Some("\r\n  READY\r\n"), Some("<"), Some("DOWN\r\n")]);
        assert_eq!(query(&down, Path::new(NO_RESOLV)), Ok(Stat::Down));
        let rude = server(vec![Some("BUSY\n")]);
        assert!(query(&rude, Path::new(NO_RESOLV)).is_err());
        let long = server(vec![Some(&*"x".repeat(300).leak())]);
        assert!(query(&long, Path::new(NO_RESOLV))
            .unwrap_err()
            .contains("longer"));
        let closed = server(vec![Some("READY\n")]);
        assert!(query(&closed, Path::new(NO_RESOLV)).is_err());
        // Nobody listens: refused at once.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let t = Instant::now();
        assert!(query(
            &HostPort {
                host: "127.0.0.1".into(),
                port
            },
            Path::new(NO_RESOLV)
        )
        .is_err());
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn silent_server_is_bounded() {
        let lim = Limits {
            connect: Duration::from_millis(300),
            io: Duration::from_millis(300),
            total: Duration::from_millis(500),
        };
        let silent = server(vec![None]);
        let t = Instant::now();
        let r = query_within(&addrs(&silent), lim);
        assert!(r.unwrap_err().contains("no answer within 300 ms"));
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(2),
            "{took:?}"
        );
        // A server that trickles: the total limit holds.
        let slow = server(vec![Some("READY\n"), Some("<"), None]);
        let t = Instant::now();
        assert!(query_within(&addrs(&slow), lim).is_err());
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
