//! online::netlink — which interfaces carry a usable default route, from
//! the kernel's own NETLINK_ROUTE messages.
//!
//! DESCRIPTION
//!   A NETLINK_ROUTE socket subscribed to the link, IPv4/IPv6 address and
//!   IPv4/IPv6 route groups. The state is first read whole (a dump of
//!   links, then addresses, then routes), then kept up to date by the
//!   kernel's change messages. The state table holds:
//!     links      index → name, flags (IFF_UP, IFF_RUNNING);
//!     addresses  per link: family, address, scope, flags;
//!     routes     default routes only (destination length 0), one entry
//!                per next hop: family, table, metric, output interface,
//!                gateway, type, flags.
//!   An interface is "online" when it has a usable default route: type
//!   unicast, not in the `local` table, not marked dead or linkdown, its
//!   link administratively up and running (carrier, or operstate
//!   unknown as on PPP), and — for IPv4 — an IPv4 address of global scope
//!   on that link, for IPv6 a global, non-tentative IPv6 address on any
//!   running link (with prefix delegation the WAN itself often has none).
//!
//!   What the deltas cannot be trusted for is read again:
//!   - the kernel drops messages when the socket buffer overruns
//!     (`ENOBUFS`): the whole state is dumped again;
//!   - the kernel removes IPv4 routes *without* a message when a link
//!     goes down or loses its last address: after any link flag change
//!     or address removal the routes are dumped again.
//!
//!   While a dump runs the state is not evaluated (a half-read table
//!   would make routes flap offline and online).
//!
//!   Messages are parsed by hand (a netlink crate costs ~0.5 MB on MIPS):
//!   native byte order throughout (the kernel speaks host order, so
//!   big-endian MIPS reads the same code), every length checked against
//!   the buffer before use; a malformed batch is dropped and the state
//!   dumped again.
//!
//! SECURITY
//!   Only messages from the kernel (sender port 0) are read; anything
//!   else on the socket is ignored. No privilege is needed to subscribe.
//!   Bounded: one 32 KiB receive buffer, a table that holds what the
//!   kernel reports (a router has a handful of links and routes).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

use crate::util::os_error;

// Message types (linux/netlink.h, linux/rtnetlink.h).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_REPLACE: u16 = 0x100;

/// Multicast group bits: RTMGRP_LINK, _IPV4_IFADDR, _IPV4_ROUTE,
/// _IPV6_IFADDR, _IPV6_ROUTE.
const GROUPS: u32 = 0x1 | 0x10 | 0x40 | 0x100 | 0x400;

const HDR_LEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const RTMSG_LEN: usize = 12;
const RTNEXTHOP_LEN: usize = 8;

pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

pub const IFF_UP: u32 = 0x1;
pub const IFF_LOOPBACK: u32 = 0x8;
pub const IFF_RUNNING: u32 = 0x40;

const IFLA_IFNAME: u16 = 3;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
pub const IFA_F_DADFAILED: u32 = 0x08;
pub const IFA_F_TENTATIVE: u32 = 0x40;

const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
/// Attribute type without the NESTED and BYTEORDER bits.
const NLA_TYPE_MASK: u16 = 0x3fff;

pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_TABLE_LOCAL: u32 = 255;
pub const RTN_UNICAST: u8 = 1;
pub const RTNH_F_DEAD: u32 = 0x1;
pub const RTNH_F_LINKDOWN: u32 = 0x10;

/// The receive buffer: the kernel's dump chunks are at most 32 KiB.
const BUF_LEN: usize = 32 * 1024;
/// Receives per call, so a storm of messages cannot starve the other
/// descriptors of the daemon's poll (the rest is read on the next round).
const MAX_RECV_PER_CALL: usize = 64;

/// The batch could not be parsed: lengths that do not add up (the text
/// says which, for the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// An address in 16 bytes (IPv4 in the first four), zero-padded.
pub type AddrBytes = [u8; 16];

fn addr_bytes(b: &[u8]) -> AddrBytes {
    let mut a = [0u8; 16];
    let n = b.len().min(16);
    a[..n].copy_from_slice(&b[..n]);
    a
}

/// One next hop of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    pub oif: u32,
    pub gateway: AddrBytes,
    pub flags: u32,
}

/// A route message, reduced to what the table needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMsg {
    pub new: bool,
    pub replace: bool,
    pub family: u8,
    pub dst_len: u8,
    pub tos: u8,
    pub table: u32,
    pub rtype: u8,
    pub flags: u32,
    pub metric: u32,
    pub hops: Vec<Hop>,
}

/// One parsed netlink message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    Link {
        new: bool,
        index: u32,
        flags: u32,
        name: Option<String>,
    },
    Addr {
        new: bool,
        family: u8,
        prefix: u8,
        scope: u8,
        flags: u32,
        index: u32,
        addr: AddrBytes,
    },
    Route(RouteMsg),
    /// The end of a dump.
    Done {
        seq: u32,
    },
    /// An error (or acknowledgement, errno 0) for a request.
    Error {
        seq: u32,
        errno: i32,
    },
    /// The kernel lost messages.
    Overrun,
    /// Anything else (other families, message types, non-default routes
    /// are still reported as routes).
    Other,
}

/// `u32_at`, for offsets the caller has checked.
fn u32_or0(b: &[u8], off: usize) -> u32 {
    u32_at(b, off).unwrap_or(0)
}

/// The attributes of one header, by type: the payload of the last of each
/// type below 16 (every type read here is).
type Attrs<'a> = [Option<&'a [u8]>; 16];

/// Walk the attributes of `b`, checking every length.
#[inline(never)]
fn attrs(mut b: &[u8]) -> Result<Attrs<'_>, Malformed> {
    let mut a: Attrs<'_> = [None; 16];
    while !b.is_empty() {
        let len = u16_at(b, 0).unwrap_or(0) as usize;
        if len < 4 || len > b.len() {
            return Err(Malformed(
                "malformed message (attribute length out of bounds)",
            ));
        }
        let ty = (u16_at(b, 2).unwrap_or(0) & NLA_TYPE_MASK) as usize;
        if let Some(slot) = a.get_mut(ty) {
            *slot = b.get(4..len);
        }
        b = &b[align4(len).min(b.len())..];
    }
    Ok(a)
}

/// A u32 attribute (None: absent or short).
fn attr_u32(a: &Attrs<'_>, ty: u16) -> Option<u32> {
    u32_at(a[ty as usize]?, 0)
}

/// An address attribute (zeros: absent).
fn attr_addr(a: &Attrs<'_>, ty: u16) -> AddrBytes {
    a[ty as usize].map_or([0; 16], addr_bytes)
}

/// Parse every message of one datagram.
pub fn parse(mut buf: &[u8]) -> Result<Vec<Msg>, Malformed> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let len = u32_or0(buf, 0) as usize;
        if len < HDR_LEN || len > buf.len() {
            return Err(Malformed(
                "malformed message (message length out of bounds)",
            ));
        }
        let (ty, flags) = (u16_at(buf, 4).unwrap_or(0), u16_at(buf, 6).unwrap_or(0));
        out.push(parse_one(ty, flags, u32_or0(buf, 8), &buf[HDR_LEN..len])?);
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(out)
}

fn parse_one(ty: u16, flags: u16, seq: u32, p: &[u8]) -> Result<Msg, Malformed> {
    // The family header of each kind (ifinfomsg, ifaddrmsg, rtmsg).
    let hdr = match ty {
        NLMSG_DONE => return Ok(Msg::Done { seq }),
        NLMSG_OVERRUN => return Ok(Msg::Overrun),
        NLMSG_ERROR => {
            let e = u32_at(p, 0).ok_or(Malformed("malformed message (error message cut short)"))?
                as i32;
            return Ok(Msg::Error {
                seq,
                errno: e.saturating_neg(),
            });
        }
        RTM_NEWLINK | RTM_DELLINK => IFINFOMSG_LEN,
        RTM_NEWADDR | RTM_DELADDR => IFADDRMSG_LEN,
        RTM_NEWROUTE | RTM_DELROUTE => RTMSG_LEN,
        _ => return Ok(Msg::Other),
    };
    if p.len() < hdr {
        return Err(Malformed("malformed message (family header cut short)"));
    }
    // NEW is even, DEL odd.
    let new = ty & 1 == 0;
    let family = p[0];
    if ty <= RTM_DELLINK {
        // Bridge port messages (AF_BRIDGE) share the group; a DELLINK of
        // family AF_BRIDGE only means "left the bridge".
        if family != AF_UNSPEC {
            return Ok(Msg::Other);
        }
        let a = attrs(&p[hdr..])?;
        let name = a[IFLA_IFNAME as usize].map(|v| {
            let v = v.split(|&b| b == 0).next().unwrap_or(&[]);
            String::from_utf8_lossy(v).into_owned()
        });
        return Ok(Msg::Link {
            new,
            index: u32_or0(p, 4),
            flags: u32_or0(p, 8),
            name,
        });
    }
    let a = attrs(&p[hdr..])?;
    let mut hops = Vec::new();
    let flags32 = u32_or0(p, 8);
    if ty >= RTM_NEWROUTE {
        if let Some(oif) = attr_u32(&a, RTA_OIF) {
            hops.push(Hop {
                oif,
                gateway: attr_addr(&a, RTA_GATEWAY),
                flags: flags32,
            });
        }
        if let Some(v) = a[RTA_MULTIPATH as usize] {
            parse_nexthops(v, &mut hops)?;
        }
    }
    if family != AF_INET && family != AF_INET6 {
        return Ok(Msg::Other);
    }
    if ty <= RTM_DELADDR {
        let addr = match a[IFA_LOCAL as usize] {
            Some(_) => attr_addr(&a, IFA_LOCAL),
            None => attr_addr(&a, IFA_ADDRESS),
        };
        return Ok(Msg::Addr {
            new,
            family,
            prefix: p[1],
            scope: p[3],
            flags: attr_u32(&a, IFA_FLAGS).unwrap_or(p[2] as u32),
            index: u32_or0(p, 4),
            addr,
        });
    }
    Ok(Msg::Route(RouteMsg {
        new,
        replace: flags & NLM_F_REPLACE != 0,
        family,
        dst_len: p[1],
        tos: p[3],
        table: attr_u32(&a, RTA_TABLE).unwrap_or(p[4] as u32),
        rtype: p[7],
        flags: flags32,
        metric: attr_u32(&a, RTA_PRIORITY).unwrap_or(0),
        hops,
    }))
}

/// struct rtnexthop { u16 len; u8 flags; u8 hops; i32 ifindex; } + attributes.
fn parse_nexthops(mut b: &[u8], hops: &mut Vec<Hop>) -> Result<(), Malformed> {
    while !b.is_empty() {
        let len = u16_at(b, 0).unwrap_or(0) as usize;
        if len < RTNEXTHOP_LEN || len > b.len() {
            return Err(Malformed(
                "malformed message (rtnexthop length out of bounds)",
            ));
        }
        let a = attrs(&b[RTNEXTHOP_LEN..len])?;
        hops.push(Hop {
            oif: u32_or0(b, 4),
            gateway: attr_addr(&a, RTA_GATEWAY),
            flags: b[2] as u32,
        });
        b = &b[align4(len).min(b.len())..];
    }
    Ok(())
}

/// A dump request: the header and a zeroed family header of `body` bytes
/// (AF_UNSPEC: every family).
fn dump_request(ty: u16, body: usize, seq: u32) -> Vec<u8> {
    let len = HDR_LEN + body;
    let mut m = vec![0u8; len];
    m[..4].copy_from_slice(&(len as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&ty.to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m
}

#[derive(Clone, Debug)]
struct LinkInfo {
    name: String,
    flags: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AddrKey {
    index: u32,
    family: u8,
    addr: AddrBytes,
    prefix: u8,
}

#[derive(Clone, Copy, Debug)]
struct AddrInfo {
    scope: u8,
    flags: u32,
}

/// A default route's identity: one per next hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RouteKey {
    family: u8,
    table: u32,
    tos: u8,
    metric: u32,
    oif: u32,
    gateway: AddrBytes,
}

#[derive(Clone, Copy, Debug)]
struct RouteInfo {
    rtype: u8,
    flags: u32,
}

/// See [`Table::signature`]: the online devices, and one record per link
/// (index, up and running flags) and per global address (its key),
/// sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signature {
    devices: Vec<String>,
    items: Vec<[u8; 24]>,
}

/// What applying a message asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    /// The table changed.
    pub changed: bool,
    /// The kernel may have removed routes silently: read them again.
    pub redump_routes: bool,
}

/// The state as the kernel reported it. Plain vectors: a router has a
/// handful of each, and a map type per key costs code on MIPS.
#[derive(Clone, Debug, Default)]
pub struct Table {
    links: Vec<(u32, LinkInfo)>,
    addrs: Vec<(AddrKey, AddrInfo)>,
    routes: Vec<(RouteKey, RouteInfo)>,
}

/// Remove the entries `gone` picks; the order is not kept (no one needs
/// it), so no element is moved more than once.
fn remove_if<T>(v: &mut Vec<T>, gone: impl Fn(&T) -> bool) {
    let mut i = 0;
    while i < v.len() {
        if gone(&v[i]) {
            v.swap_remove(i);
        } else {
            i += 1;
        }
    }
}

/// Add or update (`new`), or remove the entry of `key`.
fn upsert<K: PartialEq, V>(v: &mut Vec<(K, V)>, key: K, info: V, new: bool) {
    let at = v.iter().position(|(k, _)| *k == key);
    match (at, new) {
        (Some(i), true) => v[i].1 = info,
        (None, true) => v.push((key, info)),
        (Some(i), false) => drop(v.swap_remove(i)),
        (None, false) => {}
    }
}

/// Insert `x` into the sorted `v` unless it is there (no sort code).
fn insert_sorted<T: Ord>(v: &mut Vec<T>, x: T) {
    if let Err(i) = v.binary_search(&x) {
        v.insert(i, x);
    }
}

impl Table {
    /// Apply one message.
    pub fn apply(&mut self, m: &Msg) -> Effect {
        let mut e = Effect {
            changed: true,
            redump_routes: false,
        };
        match m {
            Msg::Link {
                new: true,
                index,
                flags,
                name,
            } => match self.links.iter_mut().find(|(i, _)| i == index) {
                Some((_, l)) => {
                    // Down (or up again): the kernel flushed IPv4 routes
                    // on the way down without telling.
                    e.redump_routes = (l.flags ^ flags) & (IFF_UP | IFF_RUNNING) != 0;
                    l.flags = *flags;
                    if let Some(n) = name {
                        l.name.clone_from(n);
                    }
                }
                None => self.links.push((
                    *index,
                    LinkInfo {
                        name: name.clone().unwrap_or_default(),
                        flags: *flags,
                    },
                )),
            },
            Msg::Link {
                new: false, index, ..
            } => {
                remove_if(&mut self.links, |(i, _)| i == index);
                remove_if(&mut self.addrs, |(k, _)| k.index == *index);
                remove_if(&mut self.routes, |(k, _)| k.oif == *index);
            }
            Msg::Addr {
                new,
                family,
                prefix,
                scope,
                flags,
                index,
                addr,
            } => {
                let key = AddrKey {
                    index: *index,
                    family: *family,
                    addr: *addr,
                    prefix: *prefix,
                };
                let info = AddrInfo {
                    scope: *scope,
                    flags: *flags,
                };
                upsert(&mut self.addrs, key, info, *new);
                // The last address gone: its routes went with it.
                e.redump_routes = !*new;
            }
            Msg::Route(r) if r.dst_len == 0 => {
                if r.new && r.replace {
                    remove_if(&mut self.routes, |(k, _)| {
                        (k.family, k.table, k.tos, k.metric) == (r.family, r.table, r.tos, r.metric)
                    });
                }
                for h in &r.hops {
                    let key = RouteKey {
                        family: r.family,
                        table: r.table,
                        tos: r.tos,
                        metric: r.metric,
                        oif: h.oif,
                        gateway: h.gateway,
                    };
                    let info = RouteInfo {
                        rtype: r.rtype,
                        flags: r.flags | h.flags,
                    };
                    upsert(&mut self.routes, key, info, r.new);
                }
            }
            _ => e.changed = false,
        }
        e
    }

    fn clear_routes(&mut self) {
        self.routes.clear();
    }

    fn link(&self, index: u32) -> Option<&LinkInfo> {
        self.links.iter().find(|(i, _)| *i == index).map(|(_, l)| l)
    }

    fn link_ok(&self, index: u32) -> Option<&LinkInfo> {
        self.link(index).filter(|l| {
            l.flags & (IFF_UP | IFF_RUNNING) == (IFF_UP | IFF_RUNNING)
                && l.flags & IFF_LOOPBACK == 0
        })
    }

    fn has_address(&self, family: u8, oif: u32) -> bool {
        self.addrs.iter().any(|(k, a)| {
            k.family == family
                && match family {
                    AF_INET => k.index == oif && a.scope < RT_SCOPE_LINK,
                    _ => {
                        a.scope == RT_SCOPE_UNIVERSE
                            && a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0
                            && self.link_ok(k.index).is_some()
                    }
                }
        })
    }

    /// The interfaces that carry a usable default route now (sorted).
    pub fn online_devices(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (k, r) in &self.routes {
            if r.rtype != RTN_UNICAST
                || k.table == RT_TABLE_LOCAL
                || r.flags & (RTNH_F_DEAD | RTNH_F_LINKDOWN) != 0
            {
                continue;
            }
            let Some(link) = self.link_ok(k.oif) else {
                continue;
            };
            if self.has_address(k.family, k.oif) {
                insert_sorted(&mut out, link.name.clone());
            }
        }
        out
    }

    /// What matters about the network for the query methods (mserver,
    /// command): the usable default routes, which links are up and
    /// running, and the global addresses. Address lifetime refreshes and
    /// router advertisements renewing a route leave it unchanged.
    pub fn signature(&self) -> Signature {
        let mut items = Vec::new();
        for (i, l) in &self.links {
            let mut r = [0u8; 24];
            r[1..5].copy_from_slice(&i.to_ne_bytes());
            r[5..9].copy_from_slice(&(l.flags & (IFF_UP | IFF_RUNNING)).to_ne_bytes());
            insert_sorted(&mut items, r);
        }
        for (k, a) in &self.addrs {
            if a.scope == RT_SCOPE_UNIVERSE {
                let mut r = [1u8; 24];
                r[1..5].copy_from_slice(&k.index.to_ne_bytes());
                r[5] = k.family;
                r[6..22].copy_from_slice(&k.addr);
                r[22] = k.prefix;
                insert_sorted(&mut items, r);
            }
        }
        Signature {
            devices: self.online_devices(),
            items,
        }
    }

    /// One line per link for the debug log.
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        for (i, l) in &self.links {
            let routes = self.routes.iter().filter(|(k, _)| k.oif == *i).count();
            let addrs = self.addrs.iter().filter(|(k, _)| k.index == *i).count();
            let _ = write!(
                s,
                "{}:{}{}{} a{addrs} r{routes} ",
                l.name,
                i,
                if l.flags & IFF_UP != 0 { "U" } else { "" },
                if l.flags & IFF_RUNNING != 0 { "R" } else { "" },
            );
        }
        s
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Links,
    Addrs,
    Routes,
}

#[derive(Clone, Copy, Debug)]
struct Dump {
    stage: Stage,
    seq: u32,
}

/// What a read of the socket gave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Something changed (or was lost): evaluate again when settled.
    pub changed: bool,
}

/// A NETLINK_ROUTE socket and the state it keeps.
pub struct Monitor {
    sock: OwnedFd,
    buf: Vec<u8>,
    table: Table,
    dump: Option<Dump>,
    want_full: bool,
    want_routes: bool,
    seq: u32,
    /// Overruns seen (ENOBUFS, truncation, malformed batches).
    overruns: u64,
    /// The signature last reported by [`Monitor::network_changed`].
    last: Option<Signature>,
}

impl Monitor {
    /// Subscribe to the groups (`events`: false for a one-shot dump) and
    /// start the first dump. The socket is non-blocking.
    pub fn open(events: bool) -> io::Result<Monitor> {
        let sock = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        let groups = if events { GROUPS } else { 0 };
        socket::bind(sock.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
        if events {
            // Room for bursts; root may raise it past rmem_max. Overruns
            // are survived anyway (a new dump).
            let want = 256 * 1024;
            if socket::setsockopt(&sock, socket::sockopt::RcvBufForce, &want).is_err() {
                let _ = socket::setsockopt(&sock, socket::sockopt::RcvBuf, &want);
            }
        }
        let mut m = Monitor {
            sock,
            buf: vec![0; BUF_LEN],
            table: Table::default(),
            dump: None,
            want_full: true,
            want_routes: false,
            seq: 0,
            overruns: 0,
            last: None,
        };
        m.start_dump()?;
        Ok(m)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    /// No dump running or owed: the table is whole.
    pub fn settled(&self) -> bool {
        self.dump.is_none() && !self.want_full && !self.want_routes
    }

    /// Start the next dump owed, if none runs.
    fn start_dump(&mut self) -> io::Result<()> {
        if self.dump.is_some() {
            return Ok(());
        }
        let stage = if self.want_full {
            self.want_full = false;
            self.want_routes = false;
            self.table = Table::default();
            Stage::Links
        } else if self.want_routes {
            self.want_routes = false;
            self.table.clear_routes();
            Stage::Routes
        } else {
            return Ok(());
        };
        self.request(stage)
    }

    fn request(&mut self, stage: Stage) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let (ty, body) = match stage {
            Stage::Links => (RTM_GETLINK, IFINFOMSG_LEN),
            Stage::Addrs => (RTM_GETADDR, IFADDRMSG_LEN),
            Stage::Routes => (RTM_GETROUTE, RTMSG_LEN),
        };
        let req = dump_request(ty, body, self.seq);
        match socket::sendto(
            self.sock.as_raw_fd(),
            &req,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        ) {
            Ok(_) => {
                self.dump = Some(Dump {
                    stage,
                    seq: self.seq,
                });
                Ok(())
            }
            Err(e) => {
                // Owed again; the next event tries once more.
                if stage == Stage::Routes {
                    self.want_routes = true;
                } else {
                    self.want_full = true;
                }
                Err(e.into())
            }
        }
    }

    /// The end of a dump stage (its DONE, or an error for it).
    fn stage_done(&mut self) {
        let Some(d) = self.dump.take() else {
            return;
        };
        let next = match d.stage {
            Stage::Links => Some(Stage::Addrs),
            Stage::Addrs => Some(Stage::Routes),
            Stage::Routes => None,
        };
        let r = match next {
            Some(s) => self.request(s),
            None => self.start_dump(),
        };
        if let Err(e) = r {
            warn!("netlink: cannot ask the kernel for its state: {e}");
        }
    }

    /// Read the whole state again (a flush: trust nothing kept).
    pub fn refresh(&mut self) {
        self.want_full = true;
        if let Err(e) = self.start_dump() {
            warn!("netlink: cannot ask the kernel for its state: {e}");
        }
    }

    /// Overruns survived so far.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// Set the socket's receive buffer (tests provoke overruns with a
    /// small one).
    pub fn set_recv_buffer(&self, bytes: usize) -> io::Result<()> {
        socket::setsockopt(&self.sock, socket::sockopt::RcvBuf, &bytes).map_err(io::Error::from)
    }

    /// For the query methods: has what matters changed since the last
    /// call (see [`Table::signature`])? Only once the table is whole.
    pub fn network_changed(&mut self) -> bool {
        if !self.settled() {
            return false;
        }
        let now = self.table.signature();
        if self.last.as_ref() == Some(&now) {
            return false;
        }
        let first = self.last.is_none();
        self.last = Some(now);
        !first
    }

    /// The kernel dropped messages: nothing known can be trusted.
    fn overrun(&mut self, why: &str) {
        self.overruns += 1;
        info!("netlink: {why}; reading the whole state again");
        self.refresh();
    }

    /// Read what the socket holds (non-blocking) and apply it.
    pub fn read(&mut self) -> Outcome {
        let mut out = Outcome::default();
        for _ in 0..MAX_RECV_PER_CALL {
            // recvfrom with MSG_TRUNC: netlink then returns the whole
            // length of a datagram that did not fit the buffer.
            // SAFETY: sockaddr_nl is plain data, all zeros is valid.
            let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            let sa_len = std::mem::size_of::<libc::sockaddr_nl>();
            let mut len = sa_len as libc::socklen_t;
            // SAFETY: the buffer and the address are ours, valid for the
            // lengths given.
            let r = unsafe {
                libc::recvfrom(
                    self.sock.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_TRUNC,
                    (&mut sa as *mut libc::sockaddr_nl).cast(),
                    &mut len,
                )
            };
            let Ok(n) = usize::try_from(r) else {
                match Errno::last() {
                    Errno::EAGAIN => break,
                    Errno::EINTR => continue,
                    Errno::ENOBUFS => {
                        out.changed = true;
                        self.overrun("the kernel dropped messages (socket buffer overrun)");
                        continue;
                    }
                    e => {
                        warn!("netlink: receive: {}", os_error(e));
                        break;
                    }
                }
            };
            if (len as usize) < sa_len || sa.nl_pid != 0 {
                continue; // not from the kernel
            }
            if n > self.buf.len() {
                out.changed = true;
                self.overrun("a message did not fit the buffer");
                continue;
            }
            let msgs = match parse(&self.buf[..n]) {
                Ok(m) => m,
                Err(Malformed(why)) => {
                    out.changed = true;
                    self.overrun(why);
                    continue;
                }
            };
            for m in &msgs {
                self.handle(m, &mut out);
            }
        }
        out
    }

    fn handle(&mut self, m: &Msg, out: &mut Outcome) {
        match m {
            Msg::Done { seq } if self.dump.is_some_and(|d| d.seq == *seq) => self.stage_done(),
            Msg::Error { seq, errno } if self.dump.is_some_and(|d| d.seq == *seq) => {
                if *errno != 0 {
                    warn!(
                        "netlink: the kernel refused a dump: {}",
                        os_error(Errno::from_raw(*errno))
                    );
                }
                self.stage_done();
            }
            Msg::Overrun => {
                out.changed = true;
                self.overrun("the kernel reported an overrun");
            }
            Msg::Link { .. } | Msg::Addr { .. } | Msg::Route(_) => {
                let e = self.table.apply(m);
                out.changed |= e.changed;
                if e.redump_routes {
                    self.want_routes = true;
                    if let Err(e) = self.start_dump() {
                        warn!("netlink: cannot ask the kernel for its routes: {e}");
                    }
                }
            }
            _ => {}
        }
    }

    /// Wait (at most `limit`) until the table is whole: for the start of
    /// the daemon and for one-shot checks.
    pub fn settle(&mut self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while !self.settled() {
            let left = crate::util::time::left(end);
            if left.is_zero() {
                return false;
            }
            let ms = crate::util::time::millis(left).min(i32::MAX as u64) as i32;
            let mut fd = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll(2) on one pollfd of ours.
            match unsafe { libc::poll(&mut fd, 1, ms) } {
                0 => return false,
                1.. => {}
                _ => match Errno::last() {
                    Errno::EINTR => {}
                    e => {
                        warn!("netlink: poll: {}", os_error(e));
                        return false;
                    }
                },
            }
            self.read();
        }
        true
    }
}

/// One-shot: the interfaces with a usable default route now (a dump, no
/// subscription), for `masqmail flush` without a daemon and `queue`.
pub fn snapshot() -> io::Result<Vec<String>> {
    let mut m = Monitor::open(false)?;
    if !m.settle(Duration::from_secs(3)) {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the kernel did not finish its dump",
        ));
    }
    debug!("netlink: {}", m.table().describe());
    Ok(m.table().online_devices())
}

#[cfg(test)]
mod tests;
