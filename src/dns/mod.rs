//! dns — a small blocking stub resolver for MX delivery: MX, A and AAAA.
//!
//! DESCRIPTION
//!   `Resolver::mx(domain)` returns the mail hosts of a domain, lowest
//!   preference first (RFC 5321 §5.1). Hosts of equal preference come in
//!   a random order drawn per lookup (RFC 5321 §5.1 asks for load
//!   spreading); the caller tries them in the order given. An exchange
//!   that is not a host name is dropped; one listed twice keeps its lowest
//!   preference; at most `MAX_MX` hosts, the best, are returned. A domain
//!   that exists but has no MX records gets the implicit MX: itself,
//!   preference 0 (RFC 5321 §5.1). An MX set made only of "." exchanges
//!   is a null MX (RFC 7505 §3) and an error; a "." beside real hosts is
//!   ignored. A domain literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`,
//!   RFC 5321 §4.1.3) is its own mail host: nothing is asked.
//!
//!   `Resolver::addrs(host, prefer_ipv4)` returns a host's addresses:
//!   A then AAAA when `prefer_ipv4` (many router uplinks have broken
//!   IPv6), else AAAA then A (RFC 6724's default order). CNAMEs in the
//!   answer are followed (RFC 1034 §3.6.2). IP literals, bracketed or
//!   bare, are returned as they are. When the first query says NXDOMAIN
//!   the second is not sent; when one family fails the other's addresses
//!   are still returned.
//!
//!   `byname(host, prefer_ipv4, resolver)` is masqmail's `byname` resolve
//!   method: the name in /etc/hosts (hosts.rs) first, then `addrs`. It
//!   does not call the C library's getaddrinfo (musl's resolver would add
//!   about 36 KB on mipsel, and the answers would be the same).
//!
//!   Names are absolute: no `search` list, no `ndots` (mail domains are
//!   FQDNs). There is no cache; every lookup asks (on OpenWrt the local
//!   dnsmasq caches).
//!
//!   Transport (RFC 1035 §4.2, RFC 7766): each try sends one UDP query,
//!   with a fresh random 16-bit ID, from a fresh socket connected to the
//!   server, so the kernel picks a random source port and drops
//!   datagrams from other addresses. Replies whose ID or question differ
//!   are ignored and the wait goes on. A reply with TC set (or longer
//!   than 512 bytes: no EDNS0 is sent) is asked again over TCP to the
//!   same server within the same try's time. SERVFAIL, REFUSED, NOTIMP,
//!   FORMERR, a timeout or a socket error move on to the next server;
//!   NOERROR and NXDOMAIN are final. Tries go round the servers
//!   `attempts` times, each waiting at most `timeout` (resolv.conf: 5 s,
//!   2 attempts by default); one query never takes longer than
//!   `MAX_LOOKUP` whatever the settings, so `mx` is bounded by one and
//!   `addrs` by two of them.
//!
//! SECURITY
//!   Servers come from resolv.conf (trusted configuration). Replies are
//!   untrusted and decoded by `wire`, which never panics. A name is only
//!   asked about if it is a host name (letters, digits, `-`, `_`), so
//!   nothing from an envelope can put other bytes into a query. IDs come
//!   from getrandom(2). No DNSSEC validation: the AD bit is not used
//!   (there is no DANE). Loopback or LAN resolvers are assumed.
//!
//! DIAGNOSTICS
//!   `DnsError` names the domain and the `Kind` of failure, and says
//!   whether it is temporary (defer and retry: timeouts, SERVFAIL and the
//!   like, socket errors, malformed replies or MX sets with no usable
//!   host) or permanent
//!   (bounce: NXDOMAIN, a null MX, a host without addresses, a malformed
//!   name). Each failed try is logged at debug level with its server.

pub mod hosts;
pub mod resolv;
#[cfg(test)]
mod tests;
pub mod wire;

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::net::{connect, remaining};

use wire::{Name, RData};

/// Upper bound on the time one query (all servers, all attempts) takes.
pub const MAX_LOOKUP: Duration = Duration::from_secs(60);
/// Mail hosts returned at most; the best by preference are kept.
pub const MAX_MX: usize = 32;
/// Largest UDP reply read (RFC 1035 §4.2.1, no EDNS0); a longer datagram
/// is treated like TC set.
const UDP_MAX: usize = 512;

/// One mail host of a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// A host name without trailing dot, or a domain literal.
    pub exchange: String,
}

/// Why a lookup failed, and whether to retry later.
#[derive(Debug)]
pub struct DnsError {
    /// The domain or host asked about, lower-cased, no trailing dot.
    pub name: String,
    pub kind: Kind,
}

/// What went wrong.
#[derive(Debug)]
pub enum Kind {
    /// NXDOMAIN (RFC 1035 §4.1.1). Permanent.
    NoSuchDomain,
    /// The domain publishes a null MX (RFC 7505). Permanent.
    NullMx,
    /// The name exists but has no A/AAAA records. Permanent.
    NoAddress,
    /// Not a host name or literal we can ask about. Permanent.
    BadName(wire::NameError),
    /// No server answered in time. Temporary.
    Timeout,
    /// Every server that answered failed (SERVFAIL, REFUSED, …). Temporary.
    Server(u8),
    /// A reply we could not use (malformed, CNAME loop, MX records that
    /// name no host). Temporary.
    Malformed(wire::Error),
    /// A socket error (network unreachable, connection refused, …).
    /// Temporary.
    Io(io::Error),
}

impl DnsError {
    fn new(name: &str, kind: Kind) -> DnsError {
        DnsError {
            name: display(name),
            kind,
        }
    }

    /// True when the caller should defer and try again later; false when
    /// the message should bounce.
    pub fn is_temporary(&self) -> bool {
        !matches!(
            self.kind,
            Kind::NoSuchDomain | Kind::NullMx | Kind::NoAddress | Kind::BadName(_)
        )
    }
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.kind)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::NoSuchDomain => f.write_str("domain does not exist"),
            Kind::NullMx => f.write_str("domain accepts no mail (null MX)"),
            Kind::NoAddress => f.write_str("host has no address"),
            Kind::BadName(e) => {
                f.write_str("malformed domain name: ")?;
                fmt::Display::fmt(e, f)
            }
            Kind::Timeout => f.write_str("DNS lookup timed out"),
            Kind::Server(rc) => {
                f.write_str("DNS server failure (")?;
                f.write_str(wire::rcode_name(*rc))?;
                f.write_str(")")
            }
            Kind::Malformed(e) => {
                f.write_str("malformed DNS reply: ")?;
                fmt::Display::fmt(e, f)
            }
            Kind::Io(e) => {
                f.write_str("DNS lookup failed: ")?;
                fmt::Display::fmt(e, f)
            }
        }
    }
}

/// A blocking stub resolver.
#[derive(Clone, Debug)]
pub struct Resolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    attempts: u32,
}

/// The answer to one query: the rcode-level outcome.
enum Answer {
    Records(wire::Reply),
    NxDomain,
}

impl Resolver {
    /// Servers and options from a resolv.conf file; a missing file means
    /// the defaults (127.0.0.1, 5 s, 2 attempts), as in glibc.
    pub fn from_resolv_conf(path: &Path) -> io::Result<Resolver> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let c = resolv::parse(&String::from_utf8_lossy(&text));
        Ok(Resolver::new(c.servers, c.timeout, c.attempts))
    }

    /// Explicit servers (any port), time per try and rounds.
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration, attempts: u32) -> Resolver {
        Resolver {
            servers,
            timeout: timeout.max(Duration::from_millis(1)),
            attempts: attempts.max(1),
        }
    }

    /// The mail hosts of `domain`, in the order to try them.
    pub fn mx(&self, domain: &str) -> Result<Vec<Mx>, DnsError> {
        self.mx_hosts(domain)
            .map_err(|kind| DnsError::new(domain, kind))
    }

    fn mx_hosts(&self, domain: &str) -> Result<Vec<Mx>, Kind> {
        if domain.starts_with('[') {
            literal(domain).ok_or(Kind::BadName(wire::NameError::BadChar))?;
            return Ok(vec![Mx {
                preference: 0,
                exchange: domain.to_string(),
            }]);
        }
        let qname = Name::from_host(domain).map_err(Kind::BadName)?;
        let reply = match self.query(domain, &qname, wire::TYPE_MX)? {
            Answer::NxDomain => return Err(Kind::NoSuchDomain),
            Answer::Records(r) => r,
        };
        let (_, data) = reply
            .answer_for(&qname, wire::TYPE_MX)
            .map_err(Kind::Malformed)?;
        if data.is_empty() {
            // RFC 5321 §5.1: the implicit MX
            return Ok(vec![Mx {
                preference: 0,
                exchange: display(domain),
            }]);
        }
        // Tie-breakers: xorshift32 from a random seed (never 0).
        let mut b = [0u8; 4];
        random_fill(&mut b);
        let mut x = u32::from_ne_bytes(b) | 1;
        order_mx(&data, || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        })
    }

    /// The addresses of `host`, preferred family first.
    pub fn addrs(&self, host: &str, prefer_ipv4: bool) -> Result<Vec<IpAddr>, DnsError> {
        self.host_addrs(host, prefer_ipv4)
            .map_err(|kind| DnsError::new(host, kind))
    }

    fn host_addrs(&self, host: &str, prefer_ipv4: bool) -> Result<Vec<IpAddr>, Kind> {
        if let Some(ip) = literal(host) {
            return Ok(vec![ip]);
        }
        if host.starts_with('[') {
            return Err(Kind::BadName(wire::NameError::BadChar));
        }
        let qname = Name::from_host(host).map_err(Kind::BadName)?;
        let order = if prefer_ipv4 {
            [wire::TYPE_A, wire::TYPE_AAAA]
        } else {
            [wire::TYPE_AAAA, wire::TYPE_A]
        };
        let mut out = Vec::new();
        let mut temp = None;
        for qtype in order {
            let reply = match self.query(host, &qname, qtype) {
                Ok(Answer::Records(reply)) => reply,
                // the name does not exist: no need to ask for the other type
                Ok(Answer::NxDomain) if out.is_empty() => return Err(Kind::NoSuchDomain),
                Ok(Answer::NxDomain) => continue,
                Err(e) => {
                    temp = Some(e);
                    continue;
                }
            };
            match reply.answer_for(&qname, qtype) {
                Ok((_, data)) => {
                    for d in data {
                        let ip = match d {
                            RData::A(a) => IpAddr::V4(*a),
                            RData::Aaaa(a) => IpAddr::V6(*a),
                            _ => continue,
                        };
                        if !out.contains(&ip) {
                            out.push(ip);
                        }
                    }
                }
                Err(e) => temp = Some(Kind::Malformed(e)),
            }
        }
        if !out.is_empty() {
            // A failure of one family does not hide the other's addresses.
            return Ok(out);
        }
        Err(temp.unwrap_or(Kind::NoAddress))
    }

    /// Ask every server in turn, `attempts` rounds, until one gives a
    /// final answer (NOERROR or NXDOMAIN). `host` is `qname` as given,
    /// for the log.
    fn query(&self, host: &str, qname: &Name, qtype: u16) -> Result<Answer, Kind> {
        let deadline = Instant::now() + MAX_LOOKUP;
        let mut last = Kind::Timeout;
        for _round in 0..self.attempts {
            for &server in &self.servers {
                let now = Instant::now();
                if now >= deadline {
                    return Err(last);
                }
                let try_end = deadline.min(now + self.timeout);
                let e = match try_server(server, qname, qtype, try_end) {
                    Ok(reply) => match reply.rcode {
                        wire::RCODE_NOERROR => return Ok(Answer::Records(reply)),
                        wire::RCODE_NXDOMAIN => return Ok(Answer::NxDomain),
                        rc => Kind::Server(rc),
                    },
                    Err(e) => e,
                };
                log::debug!("dns {host} type {qtype} server {server}: {e}");
                // A timeout does not hide a more telling earlier error.
                if !matches!(e, Kind::Timeout) || matches!(last, Kind::Timeout) {
                    last = e;
                }
            }
        }
        Err(last)
    }
}

/// One try: UDP, then TCP to the same server if the reply was truncated.
fn try_server(
    server: SocketAddr,
    qname: &Name,
    qtype: u16,
    until: Instant,
) -> Result<wire::Reply, Kind> {
    let io_err = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Kind::Timeout,
        _ => Kind::Io(e),
    };
    let id = random_u16();
    let query = wire::encode_query(id, qname, qtype);
    match udp_exchange(server, &query, until, |msg| {
        wire::decode_reply(msg, id, qname, qtype)
    }) {
        Ok(Some(reply)) if !reply.truncated => return Ok(reply),
        Ok(_) => {} // truncated or longer than 512: ask over TCP
        Err(Exchange::Io(e)) => return Err(io_err(e)),
        Err(Exchange::Bad(e)) => return Err(Kind::Malformed(e)),
    }
    let msg = tcp_exchange(server, &query, until).map_err(io_err)?;
    match wire::decode_reply(&msg, id, qname, qtype) {
        // Over TCP nothing else shares the connection: a mismatch or a
        // second truncation is a broken server.
        Ok(reply) if reply.truncated => Err(Kind::Malformed(wire::Error::Short)),
        Ok(reply) => Ok(reply),
        Err(e) => Err(Kind::Malformed(e)),
    }
}

/// The mail hosts from the MX records `data`, in the order to try them;
/// `key` gives a random tie-breaker for each usable record in turn.
fn order_mx(data: &[&RData], mut key: impl FnMut() -> u32) -> Result<Vec<Mx>, Kind> {
    // RFC 7505 §3: "." as exchange means no mail. A "." among real
    // hosts is dropped; only "." records make the domain refuse mail.
    // The list is kept sorted as it is built: by preference, ties by a
    // random key; an exchange listed twice keeps its lowest
    // preference; only the best MAX_MX are kept, so a hostile reply
    // cannot make this quadratic in its size.
    // (preference << 32 | tie-breaker, host)
    let mut hosts: Vec<(u64, String)> = Vec::with_capacity(data.len().min(MAX_MX + 1));
    let mut null = false;
    for &d in data {
        let RData::Mx {
            preference,
            exchange,
        } = d
        else {
            continue;
        };
        if exchange.is_root() {
            null = true;
            continue;
        }
        // not a host name: ignored
        let Some(host) = exchange.to_host() else {
            continue;
        };
        let k = u64::from(*preference) << 32 | u64::from(key());
        if let Some(i) = hosts.iter().position(|h| h.1 == host) {
            match hosts.get(i) {
                Some(h) if h.0 >> 32 > u64::from(*preference) => drop(hosts.remove(i)),
                _ => continue,
            }
        }
        let at = hosts.iter().position(|h| h.0 > k).unwrap_or(hosts.len());
        if at < MAX_MX {
            hosts.insert(at, (k, host));
            hosts.truncate(MAX_MX);
        }
    }
    if hosts.is_empty() {
        return Err(if null {
            Kind::NullMx
        } else {
            Kind::Malformed(wire::Error::BadRdata)
        });
    }
    let mut out = Vec::with_capacity(hosts.len());
    for (k, exchange) in hosts {
        out.push(Mx {
            preference: (k >> 32) as u16,
            exchange,
        });
    }
    Ok(out)
}

/// Why an exchange failed.
enum Exchange {
    Io(io::Error),
    /// A reply that matched our query but could not be decoded.
    Bad(wire::Error),
}

/// Send `query` over UDP and wait until `until` for a datagram that
/// `decode` accepts; `NotOurs` datagrams are ignored. `Ok(None)` means
/// the reply was longer than 512 bytes.
fn udp_exchange(
    server: SocketAddr,
    query: &[u8],
    until: Instant,
    decode: impl Fn(&[u8]) -> Result<wire::Reply, wire::Error>,
) -> Result<Option<wire::Reply>, Exchange> {
    let sock = UdpSocket::from(connect(server, false, until).map_err(Exchange::Io)?);
    sock.send(query).map_err(Exchange::Io)?;
    let mut buf = [0u8; UDP_MAX + 1];
    loop {
        let left = remaining(until).map_err(Exchange::Io)?;
        sock.set_read_timeout(Some(left)).map_err(Exchange::Io)?;
        let n = sock.recv(&mut buf).map_err(Exchange::Io)?;
        let res = decode(buf.get(..n).unwrap_or_default());
        if res == Err(wire::Error::NotOurs) {
            continue;
        }
        if n > UDP_MAX {
            // cut by our buffer: too long for UDP, ask over TCP
            return Ok(None);
        }
        return res.map(Some).map_err(Exchange::Bad);
    }
}

/// Send `query` over TCP (2-byte length prefix, RFC 1035 §4.2.2) and
/// read one reply, all before `until`.
fn tcp_exchange(server: SocketAddr, query: &[u8], until: Instant) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::from(connect(server, true, until)?);
    s.set_write_timeout(Some(remaining(until)?))?;
    let len = u16::try_from(query.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut out = Vec::with_capacity(query.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(query);
    s.write_all(&out)?;
    let mut len = [0u8; 2];
    read_full(&mut s, &mut len, until)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    read_full(&mut s, &mut msg, until)?;
    Ok(msg)
}

/// Fill `buf`, giving up at `until` however slowly the peer sends.
fn read_full(s: &mut TcpStream, buf: &mut [u8], until: Instant) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        s.set_read_timeout(Some(remaining(until)?))?;
        let rest = buf.get_mut(got..).unwrap_or_default();
        match s.read(rest) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The addresses of `host` for the `byname` resolve method: the hosts
/// file (`hosts::HOSTS_FILE`) first, then DNS A/AAAA through `resolver`
/// (none: the hosts file only). Preferred family first, file order kept
/// within a family.
pub fn byname(
    host: &str,
    prefer_ipv4: bool,
    resolver: Option<&Resolver>,
) -> Result<Vec<IpAddr>, DnsError> {
    byname_in(Path::new(hosts::HOSTS_FILE), host, prefer_ipv4, resolver)
}

/// `byname` with the hosts file at `hosts_path`.
pub fn byname_in(
    hosts_path: &Path,
    host: &str,
    prefer_ipv4: bool,
    resolver: Option<&Resolver>,
) -> Result<Vec<IpAddr>, DnsError> {
    let err = |kind| DnsError::new(host, kind);
    if let Some(ip) = literal(host) {
        return Ok(vec![ip]);
    }
    Name::from_host(host).map_err(|e| err(Kind::BadName(e)))?;
    let all = hosts::lookup_file(hosts_path, host);
    if all.is_empty() {
        return match resolver {
            Some(r) => r.addrs(host, prefer_ipv4),
            // resolv.conf could not be read: a local problem, retry later
            None => Err(err(Kind::Io(io::Error::other("no DNS resolver")))),
        };
    }
    let mut ips: Vec<IpAddr> = Vec::with_capacity(all.len());
    for first in [true, false] {
        for ip in &all {
            if (ip.is_ipv4() == prefer_ipv4) == first {
                ips.push(*ip);
            }
        }
    }
    Ok(ips)
}

/// `[192.0.2.1]`, `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3), also
/// `[2001:db8::1]` and a bare IP address.
pub fn literal(s: &str) -> Option<IpAddr> {
    match s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(inner) => {
            let v6 = inner
                .get(..5)
                .filter(|tag| tag.eq_ignore_ascii_case("IPv6:"))
                .and_then(|_| inner.get(5..));
            match v6 {
                Some(a) => a.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
                None => inner.parse().ok(),
            }
        }
        None => s.parse().ok(),
    }
}

/// A domain as given, without its trailing dot, for messages and the
/// implicit MX.
fn display(s: &str) -> String {
    s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase()
}

/// Fill `buf` from the kernel's CSPRNG: getrandom(2), else /dev/urandom.
/// GRND_NONBLOCK: early after boot a router may not have initialised the
/// pool yet, and a mail run must not hang on it; /dev/urandom never
/// blocks. If both fail (no /dev, pre-3.17 kernel) the clock and pid are
/// mixed: the ID is then guessable, which weakens spoofing protection but
/// does not stop mail.
fn random_fill(buf: &mut [u8]) {
    // SAFETY: buf is a valid, writable region of buf.len() bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    if usize::try_from(n).ok() == Some(buf.len()) {
        return;
    }
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok()
    {
        return;
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() ^ u64::from(d.subsec_nanos()) << 32)
        .unwrap_or(0);
    let mut x = (t ^ u64::from(std::process::id())) | 1;
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

fn random_u16() -> u16 {
    let mut b = [0u8; 2];
    random_fill(&mut b);
    u16::from_be_bytes(b)
}
