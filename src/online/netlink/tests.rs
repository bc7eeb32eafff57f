//! Netlink parsing and the state table, on messages encoded here the way
//! the kernel encodes them: host byte order (`to_ne_bytes`), so these run
//! unchanged on big-endian MIPS.

use super::*;

fn pad(v: &mut Vec<u8>) {
    while v.len() % 4 != 0 {
        v.push(0);
    }
}

fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(payload);
    pad(&mut v);
    v
}

fn nlmsg(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((HDR_LEN + body.len()) as u32).to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&seq.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    v.extend_from_slice(body);
    pad(&mut v);
    v
}

fn link_msg(ty: u16, family: u8, index: u32, flags: u32, name: Option<&str>) -> Vec<u8> {
    let mut b = vec![family, 0];
    b.extend_from_slice(&1u16.to_ne_bytes()); // ARPHRD_ETHER
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&0xffff_ffffu32.to_ne_bytes());
    if let Some(n) = name {
        let mut s = n.as_bytes().to_vec();
        s.push(0);
        b.extend(attr(IFLA_IFNAME, &s));
    }
    b.extend(attr(16, &[6])); // IFLA_OPERSTATE, ignored
    nlmsg(ty, 0, 0, &b)
}

fn addr_msg(
    ty: u16,
    family: u8,
    index: u32,
    scope: u8,
    addr: &[u8],
    flags: Option<u32>,
) -> Vec<u8> {
    let prefix = if family == AF_INET { 24 } else { 64 };
    let mut b = vec![family, prefix, 0, scope];
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend(attr(IFA_ADDRESS, addr));
    if family == AF_INET {
        b.extend(attr(IFA_LOCAL, addr));
    }
    if let Some(f) = flags {
        b.extend(attr(IFA_FLAGS, &f.to_ne_bytes()));
    }
    nlmsg(ty, 0, 0, &b)
}

struct R {
    family: u8,
    dst_len: u8,
    table: u8,
    rtype: u8,
    flags: u32,
    attrs: Vec<u8>,
    nl_flags: u16,
}

fn v4_default(oif: u32) -> R {
    let mut attrs = attr(RTA_TABLE, &254u32.to_ne_bytes());
    attrs.extend(attr(RTA_GATEWAY, &[10, 0, 0, 1]));
    attrs.extend(attr(RTA_OIF, &oif.to_ne_bytes()));
    R {
        family: AF_INET,
        dst_len: 0,
        table: 254,
        rtype: RTN_UNICAST,
        flags: 0,
        attrs,
        nl_flags: 0,
    }
}

fn route_msg(ty: u16, r: &R) -> Vec<u8> {
    let mut b = vec![r.family, r.dst_len, 0, 0, r.table, 3, 0, r.rtype];
    b.extend_from_slice(&r.flags.to_ne_bytes());
    b.extend_from_slice(&r.attrs);
    nlmsg(ty, r.nl_flags, 0, &b)
}

fn apply_all(t: &mut Table, bytes: &[u8]) -> Effect {
    let mut e = Effect::default();
    for m in parse(bytes).expect("parses") {
        let x = t.apply(&m);
        e.changed |= x.changed;
        e.redump_routes |= x.redump_routes;
    }
    e
}

fn devices(t: &Table) -> Vec<String> {
    t.online_devices()
}

const UP: u32 = IFF_UP | IFF_RUNNING;

#[test]
fn encoded_messages_parse() {
    let m = parse(&link_msg(RTM_NEWLINK, 0, 7, UP, Some("pppoe-wan"))).unwrap();
    assert_eq!(
        m,
        [Msg::Link {
            new: true,
            index: 7,
            flags: UP,
            name: Some("pppoe-wan".into())
        }]
    );
    let m = parse(&addr_msg(RTM_DELADDR, AF_INET, 3, 0, &[192, 0, 2, 9], None)).unwrap();
    let mut want = [0u8; 16];
    want[..4].copy_from_slice(&[192, 0, 2, 9]);
    assert_eq!(
        m,
        [Msg::Addr {
            new: false,
            family: AF_INET,
            prefix: 24,
            scope: 0,
            flags: 0,
            index: 3,
            addr: want
        }]
    );
    let m = parse(&route_msg(RTM_NEWROUTE, &v4_default(3))).unwrap();
    let Msg::Route(r) = &m[0] else {
        panic!("{m:?}")
    };
    assert_eq!(
        (r.family, r.dst_len, r.table, r.rtype),
        (AF_INET, 0, 254, 1)
    );
    assert_eq!(r.hops.len(), 1);
    assert_eq!(r.hops[0].oif, 3);
    assert_eq!(&r.hops[0].gateway[..4], &[10, 0, 0, 1]);
    // Several messages in one datagram, the kernel's NLMSG_DONE and an
    // error reply.
    let mut batch = link_msg(RTM_NEWLINK, 0, 1, UP | IFF_LOOPBACK, Some("lo"));
    batch.extend(nlmsg(NLMSG_DONE, 2, 42, &0u32.to_ne_bytes()));
    let mut err = (-16i32).to_ne_bytes().to_vec();
    err.extend_from_slice(&[0; 16]);
    batch.extend(nlmsg(NLMSG_ERROR, 0, 43, &err));
    let m = parse(&batch).unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m[1], Msg::Done { seq: 42 });
    assert_eq!(m[2], Msg::Error { seq: 43, errno: 16 });
}

/// A real RTM_NEWLINK for "eth0" (index 2, UP|BROADCAST|RUNNING|MULTICAST)
/// and an RTM_NEWROUTE for `default via 10.0.0.1 dev eth0`, written out
/// byte by byte as a little-endian and as a big-endian kernel sends them.
#[test]
fn hand_made_bytes() {
    #[rustfmt::skip]
    let link_le: &[u8] = &[
        0x34, 0, 0, 0,  16, 0,  0, 0,  0, 0, 0, 0,  0, 0, 0, 0, // nlmsghdr, len 52
        0, 0,  1, 0,  2, 0, 0, 0,  0x43, 0x10, 0, 0,  0, 0, 0, 0, // ifinfomsg
        9, 0,  3, 0,  b'e', b't', b'h', b'0', 0, 0, 0, 0, // IFLA_IFNAME "eth0\0" + pad
        5, 0,  16, 0,  6, 0, 0, 0, // IFLA_OPERSTATE up
    ];
    #[rustfmt::skip]
    let link_be: &[u8] = &[
        0, 0, 0, 0x34,  0, 16,  0, 0,  0, 0, 0, 0,  0, 0, 0, 0,
        0, 0,  0, 1,  0, 0, 0, 2,  0, 0, 0x10, 0x43,  0, 0, 0, 0,
        0, 9,  0, 3,  b'e', b't', b'h', b'0', 0, 0, 0, 0,
        0, 5,  0, 16,  6, 0, 0, 0,
    ];
    #[rustfmt::skip]
    let route_le: &[u8] = &[
        0x34, 0, 0, 0,  24, 0,  0, 0,  0, 0, 0, 0,  0, 0, 0, 0, // len 52
        2, 0, 0, 0,  254, 3, 0, 1,  0, 0, 0, 0, // rtmsg: inet, dst_len 0, main, boot, universe, unicast
        8, 0,  15, 0,  254, 0, 0, 0, // RTA_TABLE
        8, 0,  5, 0,  10, 0, 0, 1, // RTA_GATEWAY
        8, 0,  4, 0,  2, 0, 0, 0, // RTA_OIF
    ];
    #[rustfmt::skip]
    let route_be: &[u8] = &[
        0, 0, 0, 0x34,  0, 24,  0, 0,  0, 0, 0, 0,  0, 0, 0, 0,
        2, 0, 0, 0,  254, 3, 0, 1,  0, 0, 0, 0,
        0, 8,  0, 15,  0, 0, 0, 254,
        0, 8,  0, 5,  10, 0, 0, 1,
        0, 8,  0, 4,  0, 0, 0, 2,
    ];
    let (link, route) = if cfg!(target_endian = "big") {
        (link_be, route_be)
    } else {
        (link_le, route_le)
    };
    assert_eq!(
        parse(link).unwrap(),
        [Msg::Link {
            new: true,
            index: 2,
            flags: 0x1043,
            name: Some("eth0".into())
        }]
    );
    let mut t = Table::default();
    apply_all(&mut t, link);
    apply_all(&mut t, route);
    apply_all(
        &mut t,
        &addr_msg(RTM_NEWADDR, AF_INET, 2, 0, &[10, 0, 0, 2], None),
    );
    assert_eq!(devices(&t), ["eth0"]);
    // The other byte order is garbage here, and must be refused or
    // harmless, never a panic.
    let other = if cfg!(target_endian = "big") {
        link_le
    } else {
        link_be
    };
    assert!(parse(other).is_err());
}

#[test]
fn default_route_needs_link_up_and_address() {
    let mut t = Table::default();
    apply_all(
        &mut t,
        &link_msg(RTM_NEWLINK, 0, 1, UP | IFF_LOOPBACK, Some("lo")),
    );
    apply_all(&mut t, &link_msg(RTM_NEWLINK, 0, 3, IFF_UP, Some("wan")));
    apply_all(&mut t, &route_msg(RTM_NEWROUTE, &v4_default(3)));
    assert!(devices(&t).is_empty(), "no carrier, no address");
    apply_all(&mut t, &link_msg(RTM_NEWLINK, 0, 3, UP, None));
    assert!(devices(&t).is_empty(), "no address");
    apply_all(
        &mut t,
        &addr_msg(RTM_NEWADDR, AF_INET, 3, 0, &[10, 0, 0, 2], None),
    );
    assert_eq!(
        devices(&t),
        ["wan"],
        "the name is kept from the first message"
    );
    // Carrier lost: offline, and the kernel may have dropped routes.
    let e = apply_all(&mut t, &link_msg(RTM_NEWLINK, 0, 3, IFF_UP, Some("wan")));
    assert!(e.redump_routes);
    assert!(devices(&t).is_empty());
    apply_all(&mut t, &link_msg(RTM_NEWLINK, 0, 3, UP, Some("wan")));
    assert_eq!(devices(&t), ["wan"]);
    // The address goes: routes must be read again.
    let e = apply_all(
        &mut t,
        &addr_msg(RTM_DELADDR, AF_INET, 3, 0, &[10, 0, 0, 2], None),
    );
    assert!(e.redump_routes);
    assert!(devices(&t).is_empty());
    apply_all(
        &mut t,
        &addr_msg(RTM_NEWADDR, AF_INET, 3, 0, &[10, 0, 0, 2], None),
    );
    apply_all(&mut t, &route_msg(RTM_DELROUTE, &v4_default(3)));
    assert!(devices(&t).is_empty());
    // A route via loopback does not count.
    apply_all(
        &mut t,
        &addr_msg(RTM_NEWADDR, AF_INET, 1, 0, &[127, 0, 0, 1], None),
    );
    apply_all(&mut t, &route_msg(RTM_NEWROUTE, &v4_default(1)));
    assert!(devices(&t).is_empty());
    // The link is deleted: everything of it goes.
    apply_all(&mut t, &route_msg(RTM_NEWROUTE, &v4_default(3)));
    assert_eq!(devices(&t), ["wan"]);
    apply_all(&mut t, &link_msg(RTM_DELLINK, 0, 3, 0, Some("wan")));
    assert!(devices(&t).is_empty());
    assert!(
        !t.routes.iter().any(|(k, _)| k.oif == 3) && !t.addrs.iter().any(|(k, _)| k.index == 3)
    );
}

#[test]
fn unusable_routes() {
    let mut t = Table::default();
    apply_all(&mut t, &link_msg(RTM_NEWLINK, 0, 3, UP, Some("wan")));
    apply_all(
        &mut t,
        &addr_msg(RTM_NEWADDR, AF_INET, 3, 0, &[10, 0, 0, 2], None),
    );
    let mut r = v4_default(3);
    r.rtype = 7; // RTN_UNREACHABLE
    apply_all(&mut t, &route_msg(RTM_NEWROUTE, &r));
    assert!(devices(&t).is_empty(), "unreachable default");
    let mut r = v4_default(3);
    r.flags = RTNH_F_LINKDOWN;
    r.attrs = attr(RTA_OIF, &3u32.to_ne_bytes());
    r.attrs.extend(attr(RTA_PRIORITY, &5u32.to_ne_bytes()));
    apply_all(&mut t, &route_msg(RTM_NEWROUTE, &r));
    assert!(devices(&t).is_empty(), "linkdown");
    let mut r = v4_default(3);
    r.table = 255;
    r.attrs = attr(RTA_OIF, &3u32.to_ne_bytes());
    r.attrs.extend(attr(RTA_PRIORITY, &6u32.to_ne_bytes()));
    apply_all(&mut t, &route_msg(RTM_NEWROUTE, &r));
    assert!(devices(&t).is_empty(), "local table");
    let mut r = v4_default(3);
    r.dst_len = 8;
    apply_all(&mut t, &route_msg(RTM_NEWROUTE, &r));
    assert!(devices(&t).is_empty(), "not a default route");
    // `ip route replace` of the unreachable one (same table, metric 0).
    let mut r = v4_default(3);
    r.nl_flags = NLM_F_REPLACE;
    apply_all(&mut t, &route_msg(RTM_NEWROUTE, &r));
    assert_eq!(devices(&t), ["wan"]);
    assert_eq!(
        t.routes.iter().filter(|(k, _)| k.metric == 0).count(),
        1,
        "replaced, not added"
    );
}

#[test]
fn ipv6_and_multipath() {
    let mut t = Table::default();
    apply_all(&mut t, &link_msg(RTM_NEWLINK, 0, 4, UP, Some("wan6")));
    apply_all(&mut t, &link_msg(RTM_NEWLINK, 0, 5, UP, Some("br-lan")));
    let gw6 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut attrs = attr(RTA_GATEWAY, &gw6);
    attrs.extend(attr(RTA_OIF, &4u32.to_ne_bytes()));
    attrs.extend(attr(RTA_PRIORITY, &1024u32.to_ne_bytes()));
    let r = R {
        family: AF_INET6,
        dst_len: 0,
        table: 254,
        rtype: RTN_UNICAST,
        flags: 0,
        attrs,
        nl_flags: 0,
    };
    apply_all(&mut t, &route_msg(RTM_NEWROUTE, &r));
    assert!(devices(&t).is_empty(), "no global IPv6 address anywhere");
    let global = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    apply_all(
        &mut t,
        &addr_msg(RTM_NEWADDR, AF_INET6, 5, 0, &global, Some(IFA_F_TENTATIVE)),
    );
    assert!(devices(&t).is_empty(), "tentative");
    apply_all(
        &mut t,
        &addr_msg(RTM_NEWADDR, AF_INET6, 5, 0, &global, Some(0)),
    );
    assert_eq!(
        devices(&t),
        ["wan6"],
        "a delegated prefix on the LAN is enough"
    );
    apply_all(&mut t, &route_msg(RTM_DELROUTE, &r));
    assert!(devices(&t).is_empty());

    // IPv4 multipath over two links, one of them without carrier.
    apply_all(&mut t, &link_msg(RTM_NEWLINK, 0, 6, UP, Some("wwan0")));
    apply_all(&mut t, &link_msg(RTM_NEWLINK, 0, 7, IFF_UP, Some("wan")));
    for (i, a) in [(6u32, 2u8), (7, 3)] {
        apply_all(
            &mut t,
            &addr_msg(RTM_NEWADDR, AF_INET, i, 0, &[10, 0, a, 2], None),
        );
    }
    let mut hops = Vec::new();
    for (oif, gw) in [(6u32, [10u8, 0, 2, 1]), (7, [10, 0, 3, 1])] {
        let mut h = vec![0u8; 8];
        let g = attr(RTA_GATEWAY, &gw);
        h[0..2].copy_from_slice(&((8 + g.len()) as u16).to_ne_bytes());
        h[4..8].copy_from_slice(&oif.to_ne_bytes());
        h.extend(g);
        hops.extend(h);
    }
    let r = R {
        family: AF_INET,
        dst_len: 0,
        table: 254,
        rtype: RTN_UNICAST,
        flags: 0,
        attrs: attr(RTA_MULTIPATH, &hops),
        nl_flags: 0,
    };
    apply_all(&mut t, &route_msg(RTM_NEWROUTE, &r));
    assert_eq!(devices(&t), ["wwan0"]);
    apply_all(&mut t, &link_msg(RTM_NEWLINK, 0, 7, UP, None));
    assert_eq!(devices(&t), ["wan", "wwan0"]);
    apply_all(&mut t, &route_msg(RTM_DELROUTE, &r));
    assert!(devices(&t).is_empty());
}

#[test]
fn bridge_port_messages_are_not_link_removals() {
    let mut t = Table::default();
    apply_all(&mut t, &link_msg(RTM_NEWLINK, 0, 3, UP, Some("wan")));
    apply_all(
        &mut t,
        &addr_msg(RTM_NEWADDR, AF_INET, 3, 0, &[10, 0, 0, 2], None),
    );
    apply_all(&mut t, &route_msg(RTM_NEWROUTE, &v4_default(3)));
    apply_all(&mut t, &link_msg(RTM_DELLINK, 7, 3, 0, Some("wan"))); // AF_BRIDGE
    assert_eq!(devices(&t), ["wan"]);
}

#[test]
fn malformed_lengths_are_refused() {
    let good = link_msg(RTM_NEWLINK, 0, 3, UP, Some("wan"));
    // Header length beyond the buffer, below the header size, cut short.
    let mut long = good.clone();
    long[..4].copy_from_slice(&(good.len() as u32 + 4).to_ne_bytes());
    assert!(parse(&long).is_err());
    let mut short = good.clone();
    short[..4].copy_from_slice(&8u32.to_ne_bytes());
    assert!(parse(&short).is_err());
    assert!(parse(&good[..10]).is_err());
    assert!(parse(&good[..20]).is_err(), "ifinfomsg cut short");
    // An attribute longer than its message.
    let mut bad_attr = good.clone();
    let at = HDR_LEN + IFINFOMSG_LEN;
    bad_attr[at..at + 2].copy_from_slice(&200u16.to_ne_bytes());
    assert!(parse(&bad_attr).is_err());
    let mut tiny_attr = good.clone();
    tiny_attr[at..at + 2].copy_from_slice(&2u16.to_ne_bytes());
    assert!(parse(&tiny_attr).is_err());
    // A route whose nexthop claims more than it has.
    let mut r = v4_default(3);
    r.attrs = attr(RTA_MULTIPATH, &[40, 0, 0, 0, 3, 0, 0, 0]);
    assert!(parse(&route_msg(RTM_NEWROUTE, &r)).is_err());
    assert_eq!(parse(&[]).unwrap(), []);
}

/// xorshift: reproducible noise without a crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn garbage_never_panics() {
    let mut seeds: Vec<Vec<u8>> = vec![
        link_msg(RTM_NEWLINK, 0, 3, UP, Some("wan")),
        addr_msg(RTM_NEWADDR, AF_INET6, 3, 0, &[0x20; 16], Some(0)),
        route_msg(RTM_NEWROUTE, &v4_default(3)),
        nlmsg(NLMSG_ERROR, 0, 1, &[0xff; 20]),
    ];
    let mut mp = v4_default(3);
    mp.attrs = attr(
        RTA_MULTIPATH,
        &[16, 0, 0, 0, 3, 0, 0, 0, 8, 0, 5, 0, 10, 0, 0, 1],
    );
    seeds.push(route_msg(RTM_NEWROUTE, &mp));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut t = Table::default();
    let mut parsed = 0;
    for round in 0..20_000 {
        let mut b = if round % 4 == 0 {
            (0..rng.below(96)).map(|_| rng.next() as u8).collect()
        } else {
            let mut b = seeds[rng.below(seeds.len())].clone();
            if round % 3 == 0 {
                let more = seeds[rng.below(seeds.len())].clone();
                b.extend(more);
            }
            b
        };
        for _ in 0..rng.below(4) {
            if b.is_empty() {
                break;
            }
            let i = rng.below(b.len());
            match rng.below(3) {
                0 => b[i] ^= 1 << rng.below(8),
                1 => b[i] = rng.next() as u8,
                _ => b.truncate(i),
            }
        }
        if let Ok(msgs) = parse(&b) {
            parsed += 1;
            for m in &msgs {
                t.apply(m);
            }
            let _ = t.online_devices();
        }
    }
    assert!(
        parsed > 1000,
        "the mutations should not all be refused: {parsed}"
    );
}

#[test]
fn dump_requests() {
    let r = dump_request(RTM_GETROUTE, RTMSG_LEN, 9);
    assert_eq!(r.len(), 28);
    assert_eq!(u32_at(&r, 0), Some(28));
    assert_eq!(u16_at(&r, 4), Some(RTM_GETROUTE));
    assert_eq!(u16_at(&r, 6), Some(NLM_F_REQUEST | NLM_F_DUMP));
    assert_eq!(u32_at(&r, 8), Some(9));
    assert!(r[HDR_LEN..].iter().all(|&b| b == 0), "AF_UNSPEC, all zero");
}

/// The real kernel: a dump of this machine's (or this namespace's)
/// state parses and gives a table with at least the loopback link.
#[test]
fn kernel_dump() {
    let mut m = match Monitor::open(false) {
        Ok(m) => m,
        Err(e) => {
            println!("SKIP kernel_dump: no netlink socket here: {e}");
            return;
        }
    };
    assert!(m.settle(Duration::from_secs(3)), "the dump finishes");
    assert!(!m.table().links.is_empty(), "{}", m.table().describe());
    let t = m.table();
    assert!(t.links.iter().any(|(_, l)| l.flags & IFF_LOOPBACK != 0));
}
