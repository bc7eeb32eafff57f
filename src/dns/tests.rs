//! Resolver tests against DNS servers written here, on 127.0.0.1 with
//! ephemeral ports. Nothing is ever sent to the machine's own resolver.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::wire::{self, tests::Msg, Name};
use super::{Kind, Mx, Resolver};

/// One record of the test zone.
#[derive(Clone, Copy)]
enum Rr {
    Mx(u16, &'static str),
    A([u8; 4]),
    Aaaa(&'static str),
    Cname(&'static str),
}

const ZONE: &[(&str, Rr)] = &[
    ("example.org", Rr::Mx(20, "mx2.example.org")),
    ("example.org", Rr::Mx(10, "mx1.example.org")),
    ("example.org", Rr::Mx(10, "mx1b.example.org")),
    ("mx1.example.org", Rr::A([192, 0, 2, 1])),
    ("mx1.example.org", Rr::Aaaa("2001:db8::1")),
    ("mx1b.example.org", Rr::A([192, 0, 2, 2])),
    ("v6only.example.org", Rr::Aaaa("2001:db8::6")),
    ("no-mx.example.org", Rr::A([192, 0, 2, 3])),
    ("nomail.example.org", Rr::Mx(0, ".")),
    ("nomail.example.org", Rr::A([192, 0, 2, 4])),
    ("alias.example.org", Rr::Cname("example.net")),
    ("example.net", Rr::Mx(5, "mx.example.net")),
    // an alias of a host
    ("empty.example.org", Rr::Cname("no-mx.example.org")),
    ("hostless.example.org", Rr::Mx(0, "bad\\032host")),
];

/// How a test server behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Answers from ZONE over UDP and TCP.
    Normal,
    /// UDP replies carry only the question and TC; TCP answers fully.
    TruncateUdp,
    /// Receives and never answers.
    Silent,
    /// Answers with the wrong ID only.
    WrongId,
    /// First a reply with the wrong ID, then from the wrong question,
    /// then the real one.
    SpoofFirst,
    /// SERVFAIL to everything.
    ServFail,
}

struct Server {
    addr: SocketAddr,
    udp_queries: Arc<AtomicUsize>,
    tcp_queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    fn start(mode: Mode) -> Server {
        // UDP and TCP on the same ephemeral port, as a real server.
        let (udp, tcp) = (0..50)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
                let port = udp.local_addr().ok()?.port();
                let tcp = TcpListener::bind(("127.0.0.1", port)).ok()?;
                Some((udp, tcp))
            })
            .expect("a free port for UDP and TCP");
        let addr = udp.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let udp_queries = Arc::new(AtomicUsize::new(0));
        let tcp_queries = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        {
            let (stop, count) = (stop.clone(), udp_queries.clone());
            udp.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            threads.push(thread::spawn(move || {
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, peer)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    count.fetch_add(1, Ordering::Relaxed);
                    for reply in udp_replies(mode, &buf[..n]) {
                        let _ = udp.send_to(&reply, peer);
                    }
                }
            }));
        }
        {
            let (stop, count) = (stop.clone(), tcp_queries.clone());
            threads.push(thread::spawn(move || {
                for conn in tcp.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(mut s) = conn else { continue };
                    count.fetch_add(1, Ordering::Relaxed);
                    let mut len = [0u8; 2];
                    if s.read_exact(&mut len).is_err() {
                        continue;
                    }
                    let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                    if s.read_exact(&mut q).is_err() || mode == Mode::Silent {
                        continue;
                    }
                    if let Some(r) = answer(&q, false, 0) {
                        let mut out = (r.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&r);
                        let _ = s.write_all(&out);
                    }
                }
            }));
        }
        Server {
            addr,
            udp_queries,
            tcp_queries,
            stop,
            threads,
        }
    }

    fn udp(&self) -> usize {
        self.udp_queries.load(Ordering::Relaxed)
    }

    fn tcp(&self) -> usize {
        self.tcp_queries.load(Ordering::Relaxed)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // wake the accept loop
        let _ = TcpStream::connect(self.addr);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The datagrams a server in `mode` sends back for query `q`.
fn udp_replies(mode: Mode, q: &[u8]) -> Vec<Vec<u8>> {
    let one = |tc, flip| answer(q, tc, flip).into_iter().collect::<Vec<_>>();
    match mode {
        Mode::Normal | Mode::ServFail => one(false, 0),
        Mode::TruncateUdp => one(true, 0),
        Mode::Silent => vec![],
        Mode::WrongId => one(false, 1),
        Mode::SpoofFirst => {
            let mut v = one(false, 1);
            // the right ID but another question
            if let Some(mut wrong) = answer(q, false, 0) {
                if let Some(b) = wrong.get_mut(13) {
                    *b ^= 0x20 | 0x01; // first letter of the name changes
                }
                v.push(wrong);
            }
            v.extend(one(false, 0));
            v
        }
    }
    .into_iter()
    .map(|mut r| {
        if mode == Mode::ServFail {
            r[3] = (r[3] & 0xF0) | wire::RCODE_SERVFAIL;
        }
        r
    })
    .collect()
}

fn parse_name(s: &str) -> Name {
    Name::from_host(s).expect("zone name")
}

/// Answer query `q` from ZONE; `tc` sends just the question with TC set,
/// `flip` is XORed into the ID.
fn answer(q: &[u8], tc: bool, flip: u16) -> Option<Vec<u8>> {
    let id = u16::from_be_bytes([*q.first()?, *q.get(1)?]);
    let (qname, end) = wire::read_name(q, 12).ok()?;
    let qtype = u16::from_be_bytes([*q.get(end)?, *q.get(end + 1)?]);
    let exists = ZONE.iter().any(|(o, _)| parse_name(o) == qname);
    let rcode = if exists { 0 } else { wire::RCODE_NXDOMAIN };
    let mut records = Vec::new();
    // follow CNAMEs like a recursive server does
    let mut name = qname.clone();
    for _ in 0..8 {
        let mut next = None;
        for (owner, rr) in ZONE {
            if parse_name(owner) != name {
                continue;
            }
            match *rr {
                Rr::Cname(t) => {
                    records.push((
                        name.clone(),
                        wire::TYPE_CNAME,
                        parse_name(t).wire().to_vec(),
                    ));
                    next = Some(parse_name(t));
                }
                Rr::Mx(p, ex) if qtype == wire::TYPE_MX => {
                    let mut d = p.to_be_bytes().to_vec();
                    if ex == "." {
                        d.push(0);
                    } else if let Some(raw) = ex.strip_prefix("bad\\032") {
                        d.extend_from_slice(&[4, b'b', b'a', b'd', b' ']);
                        d.extend_from_slice(parse_name(raw).wire());
                    } else {
                        d.extend_from_slice(parse_name(ex).wire());
                    }
                    records.push((name.clone(), wire::TYPE_MX, d));
                }
                Rr::A(a) if qtype == wire::TYPE_A => {
                    records.push((name.clone(), wire::TYPE_A, a.to_vec()))
                }
                Rr::Aaaa(a) if qtype == wire::TYPE_AAAA => {
                    let a: Ipv6Addr = a.parse().ok()?;
                    records.push((name.clone(), wire::TYPE_AAAA, a.octets().to_vec()))
                }
                _ => {}
            }
        }
        match next {
            Some(n) => name = n,
            None => break,
        }
    }
    let flags = 0x8180 | if tc { 0x0200 } else { 0 } | u16::from(rcode);
    let an = if tc { 0 } else { records.len() as u16 };
    let mut m = Msg::header(id ^ flip, flags, [1, an, 0, 0]);
    // echo the question as it was sent (case kept)
    m.raw(q.get(12..end + 4)?);
    if !tc {
        for (owner, t, data) in records {
            if owner == qname {
                m.ptr(12); // compressed against the question
            } else {
                m.raw(owner.wire());
            }
            m.rr(t, data.len() as u16).raw(&data);
        }
    }
    Some(m.0)
}

fn resolver(servers: &[&Server]) -> Resolver {
    Resolver::new(
        servers.iter().map(|s| s.addr).collect(),
        Duration::from_millis(300),
        2,
    )
}

fn mx_hosts(v: &[Mx]) -> Vec<(u16, &str)> {
    v.iter()
        .map(|m| (m.preference, m.exchange.as_str()))
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test ip")
}

#[test]
fn mx_sorted_with_random_ties() {
    let s = Server::start(Mode::Normal);
    let r = resolver(&[&s]);
    let mut orders = std::collections::HashSet::new();
    for _ in 0..40 {
        let mx = r.mx("Example.ORG.").expect("mx");
        let h = mx_hosts(&mx);
        assert_eq!(h.len(), 3);
        assert_eq!(h[2], (20, "mx2.example.org"));
        assert!(h[..2].contains(&(10, "mx1.example.org")));
        assert!(h[..2].contains(&(10, "mx1b.example.org")));
        orders.insert(h[0].1.to_string());
    }
    assert_eq!(orders.len(), 2, "equal preferences come in both orders");
    assert_eq!(s.tcp(), 0);
}

#[test]
fn implicit_mx_null_mx_nxdomain() {
    let s = Server::start(Mode::Normal);
    let r = resolver(&[&s]);
    assert_eq!(
        mx_hosts(&r.mx("no-mx.example.org").expect("implicit")),
        vec![(0, "no-mx.example.org")]
    );
    let e = r.mx("nomail.example.org").expect_err("null MX");
    assert!(matches!(e.kind, Kind::NullMx) && !e.is_temporary(), "{e:?}");
    assert_eq!(
        e.to_string(),
        "nomail.example.org: domain accepts no mail (null MX)"
    );
    let e = r.mx("nonexistent.example.org").expect_err("nxdomain");
    assert!(
        matches!(e.kind, Kind::NoSuchDomain) && !e.is_temporary(),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "nonexistent.example.org: domain does not exist"
    );
    // an MX whose exchange is not a host name: nothing usable, temporary
    let e = r.mx("hostless.example.org").expect_err("bad exchange");
    assert!(
        matches!(e.kind, Kind::Malformed(_)) && e.is_temporary(),
        "{e:?}"
    );
}

#[test]
fn cname_to_mx() {
    let s = Server::start(Mode::Normal);
    let r = resolver(&[&s]);
    assert_eq!(
        mx_hosts(&r.mx("alias.example.org").expect("mx")),
        vec![(5, "mx.example.net")]
    );
}

#[test]
fn addresses_in_family_order() {
    let s = Server::start(Mode::Normal);
    let r = resolver(&[&s]);
    assert_eq!(
        r.addrs("mx1.example.org", true).expect("v4 first"),
        vec![ip("192.0.2.1"), ip("2001:db8::1")]
    );
    assert_eq!(
        r.addrs("mx1.example.org", false).expect("v6 first"),
        vec![ip("2001:db8::1"), ip("192.0.2.1")]
    );
    assert_eq!(
        r.addrs("v6only.example.org", true).expect("v6"),
        vec![ip("2001:db8::6")]
    );
    // through a CNAME
    assert_eq!(
        r.addrs("empty.example.org", true).expect("cname"),
        vec![ip("192.0.2.3")]
    );
    // exists, but no address
    let e = r.addrs("example.org", true).expect_err("no address");
    assert!(
        matches!(e.kind, Kind::NoAddress) && !e.is_temporary(),
        "{e:?}"
    );
    // NXDOMAIN on the first query: the second is not sent
    let before = s.udp();
    let e = r
        .addrs("nonexistent.example.org", true)
        .expect_err("nxdomain");
    assert!(
        matches!(e.kind, Kind::NoSuchDomain) && !e.is_temporary(),
        "{e:?}"
    );
    assert_eq!(s.udp() - before, 1);
}

#[test]
fn truncated_reply_falls_back_to_tcp() {
    let s = Server::start(Mode::TruncateUdp);
    let r = resolver(&[&s]);
    let mx = r.mx("example.org").expect("mx over TCP");
    assert_eq!(mx.len(), 3);
    assert_eq!((s.udp(), s.tcp()), (1, 1));
}

#[test]
fn silent_server_times_out_in_bounded_time() {
    let s = Server::start(Mode::Silent);
    let r = Resolver::new(vec![s.addr], Duration::from_millis(150), 3);
    let t = Instant::now();
    let e = r.mx("example.org").expect_err("timeout");
    let took = t.elapsed();
    assert!(matches!(e.kind, Kind::Timeout) && e.is_temporary(), "{e:?}");
    assert_eq!(e.to_string(), "example.org: DNS lookup timed out");
    assert!(took >= Duration::from_millis(440), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(s.udp(), 3, "one query per attempt");
}

#[test]
fn wrong_id_is_ignored() {
    let s = Server::start(Mode::WrongId);
    let r = Resolver::new(vec![s.addr], Duration::from_millis(150), 1);
    let e = r.mx("example.org").expect_err("spoof only");
    assert!(matches!(e.kind, Kind::Timeout), "{e:?}");

    // forged replies arrive first; the real one is still taken
    let s = Server::start(Mode::SpoofFirst);
    let r = Resolver::new(vec![s.addr], Duration::from_secs(2), 1);
    assert_eq!(r.mx("example.org").expect("real reply").len(), 3);
    assert_eq!(s.udp(), 1);
}

#[test]
fn next_server_after_failure() {
    let bad = Server::start(Mode::ServFail);
    let silent = Server::start(Mode::Silent);
    let good = Server::start(Mode::Normal);
    let r = resolver(&[&bad, &silent, &good]);
    assert_eq!(r.mx("example.org").expect("third server").len(), 3);
    assert_eq!((bad.udp(), silent.udp(), good.udp()), (1, 1, 1));

    // only failing servers: SERVFAIL is reported over a later timeout
    let r = resolver(&[&bad, &silent]);
    let e = r.mx("example.org").expect_err("servfail");
    assert!(
        matches!(e.kind, Kind::Server(2)) && e.is_temporary(),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "example.org: DNS server failure (SERVFAIL)");
}

#[test]
fn refused_port_is_temporary_and_fast() {
    // a port nobody listens on: the kernel answers "connection refused"
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("port");
    let r = Resolver::new(vec![port], Duration::from_secs(5), 1);
    let t = Instant::now();
    let e = r.mx("example.org").expect_err("refused");
    assert!(e.is_temporary(), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    // no servers at all is a timeout, not a hang
    let r = Resolver::new(vec![], Duration::from_secs(5), 2);
    assert!(matches!(
        r.mx("example.org").map_err(|e| e.kind),
        Err(Kind::Timeout)
    ));
}

#[test]
fn literals_and_bad_names_ask_nothing() {
    // no servers: any query would fail with a timeout
    let r = Resolver::new(vec![], Duration::from_millis(1), 1);
    assert_eq!(
        mx_hosts(&r.mx("[192.0.2.1]").expect("literal")),
        vec![(0, "[192.0.2.1]")]
    );
    assert_eq!(
        r.addrs("[192.0.2.1]", false).expect("v4"),
        vec![ip("192.0.2.1")]
    );
    assert_eq!(
        r.addrs("[IPv6:2001:db8::1]", true).expect("v6"),
        vec![ip("2001:db8::1")]
    );
    assert_eq!(
        r.addrs("[ipv6:2001:db8::1]", true).expect("tag case"),
        vec![ip("2001:db8::1")]
    );
    assert_eq!(
        r.addrs("192.0.2.7", true).expect("bare"),
        vec![ip("192.0.2.7")]
    );
    assert_eq!(r.addrs("::1", true).expect("bare v6"), vec![ip("::1")]);
    for bad in ["[foo]", "[192.0.2.1", "[IPv6:192.0.2.1]"] {
        let e = r.mx(bad).expect_err(bad);
        assert!(
            matches!(e.kind, Kind::BadName(_)) && !e.is_temporary(),
            "{bad}: {e:?}"
        );
        assert!(
            matches!(
                r.addrs(bad, true).map_err(|e| e.kind),
                Err(Kind::BadName(_))
            ),
            "{bad}"
        );
    }
    for bad in ["", "exa mple.org", "a..b", "bücher.example"] {
        let e = r.mx(bad).expect_err(bad);
        assert!(
            matches!(e.kind, Kind::BadName(_)) && !e.is_temporary(),
            "{bad}: {e:?}"
        );
    }
    assert_eq!(
        super::byname("127.0.0.1", true, None).expect("literal"),
        vec![ip("127.0.0.1")]
    );
    assert_eq!(
        super::byname("[IPv6:::1]", true, Some(&r)).expect("literal"),
        vec![ip("::1")]
    );
    let e = super::byname("a b", true, Some(&r)).expect_err("bad name");
    assert!(matches!(e.kind, Kind::BadName(_)), "{e:?}");
}

#[test]
fn from_resolv_conf_file() {
    let dir = std::env::temp_dir().join(format!("masqmail-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("resolv.conf");
    std::fs::write(
        &path,
        "nameserver 192.0.2.53\noptions timeout:2 attempts:3\n",
    )
    .expect("write");
    let r = Resolver::from_resolv_conf(&path).expect("read");
    assert_eq!(
        r.servers,
        vec!["192.0.2.53:53".parse::<SocketAddr>().expect("sa")]
    );
    assert_eq!((r.timeout, r.attempts), (Duration::from_secs(2), 3));
    // missing file: glibc's defaults
    let r = Resolver::from_resolv_conf(&dir.join("missing")).expect("defaults");
    assert_eq!(
        r.servers,
        vec!["127.0.0.1:53".parse::<SocketAddr>().expect("sa")]
    );
    // a directory cannot be read: an error
    assert!(Resolver::from_resolv_conf(&dir).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

fn mx_rdata(preference: u16, exchange: &str) -> wire::RData {
    wire::RData::Mx {
        preference,
        exchange: if exchange == "." {
            Name::root()
        } else {
            Name::from_host(exchange).expect("exchange")
        },
    }
}

#[test]
fn mx_ordering_rules() {
    let order = |recs: &[wire::RData], keys: &[u32]| {
        let refs: Vec<&wire::RData> = recs.iter().collect();
        let mut keys = keys.iter().copied();
        super::order_mx(&refs, || keys.next().unwrap_or(0))
    };
    // ties broken by the key; a duplicate keeps its lowest preference
    let recs = [
        mx_rdata(10, "a.example"),
        mx_rdata(10, "b.example"),
        mx_rdata(5, "c.example"),
        mx_rdata(30, "b.example"),
        mx_rdata(1, "a.example"),
    ];
    let got = order(&recs, &[7, 3, 9, 1, 2]).expect("hosts");
    assert_eq!(
        mx_hosts(&got),
        vec![(1, "a.example"), (5, "c.example"), (10, "b.example")]
    );
    let recs = [mx_rdata(10, "a.example"), mx_rdata(10, "b.example")];
    assert_eq!(order(&recs, &[1, 2]).expect("a")[0].exchange, "a.example");
    assert_eq!(order(&recs, &[2, 1]).expect("b")[0].exchange, "b.example");
    // a "." among real hosts is dropped
    let recs = [mx_rdata(0, "."), mx_rdata(10, "mx.example")];
    assert_eq!(
        mx_hosts(&order(&recs, &[0, 0]).expect("real")),
        vec![(10, "mx.example")]
    );
    // only "." (whatever the preference): no mail
    let recs = [mx_rdata(0, "."), mx_rdata(5, ".")];
    assert!(matches!(order(&recs, &[0, 0]), Err(Kind::NullMx)));
    // at most MAX_MX, the best ones
    let names: Vec<String> = (0..100).map(|i| format!("mx{i}.example")).collect();
    let recs: Vec<wire::RData> = names
        .iter()
        .enumerate()
        .map(|(i, n)| mx_rdata(1000 - i as u16, n))
        .collect();
    let keys = vec![0; recs.len()];
    let got = order(&recs, &keys).expect("many");
    assert_eq!(got.len(), super::MAX_MX);
    assert_eq!(got[0].exchange, "mx99.example");
    assert_eq!(got[0].preference, 901);
    assert!(got.windows(2).all(|w| w[0].preference <= w[1].preference));
}

#[test]
fn byname_hosts_file_first_then_dns() {
    let dir = std::env::temp_dir().join(format!("masqmail-byname-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let hosts = dir.join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n::1 localhost\n192.0.2.99 mx1.example.org smarthost\n",
    )
    .expect("write hosts");
    let s = Server::start(Mode::Normal);
    let r = resolver(&[&s]);
    let by = |h: &str, v4: bool, r: Option<&Resolver>| super::byname_in(&hosts, h, v4, r);
    // the file wins over DNS, and nothing is asked
    assert_eq!(
        by("MX1.example.org", true, Some(&r)).expect("file"),
        vec![ip("192.0.2.99")]
    );
    assert_eq!(
        by("smarthost", true, None).expect("alias"),
        vec![ip("192.0.2.99")]
    );
    assert_eq!(
        by("localhost", true, None).expect("v4 first"),
        vec![ip("127.0.0.1"), ip("::1")]
    );
    assert_eq!(
        by("localhost", false, None).expect("v6 first"),
        vec![ip("::1"), ip("127.0.0.1")]
    );
    assert_eq!(s.udp(), 0);
    // not in the file: DNS
    assert_eq!(
        by("mx1b.example.org", true, Some(&r)).expect("dns"),
        vec![ip("192.0.2.2")]
    );
    let e = by("nx.example.org", true, Some(&r)).expect_err("nxdomain");
    assert!(!e.is_temporary(), "{e:?}");
    // not in the file and no resolver: try again later
    let e = by("mx1b.example.org", true, None).expect_err("no resolver");
    assert!(e.is_temporary(), "{e:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
