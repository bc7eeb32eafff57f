//! A small authoritative DNS server for the tests: UDP on 127.0.0.1 with
//! an ephemeral port, answering MX, A and AAAA from a zone given by the
//! test. Names outside the zone get NXDOMAIN; a name in the zone without
//! records of the asked type gets an empty NOERROR answer (RFC 2308's
//! NODATA). Written here, independently of `src/dns`, so the resolver is
//! checked against another reading of RFC 1035.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One record of the test zone.
#[derive(Clone, Debug)]
pub enum Rr {
    Mx(u16, String),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
}

pub struct DnsServer {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

const TYPE_A: u16 = 1;
const TYPE_MX: u16 = 15;
const TYPE_AAAA: u16 = 28;

impl DnsServer {
    /// Serve `zone`: (owner name, record) pairs, names without a
    /// trailing dot.
    pub fn start(zone: Vec<(String, Rr)>) -> DnsServer {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind dns");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let (st, q) = (stop.clone(), queries.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !st.load(Ordering::SeqCst) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                q.fetch_add(1, Ordering::SeqCst);
                if let Some(reply) = answer(&zone, &buf[..n]) {
                    let _ = sock.send_to(&reply, peer);
                }
            }
        });
        DnsServer {
            addr,
            queries,
            stop,
        }
    }

    /// A resolv.conf that names only this server (masqmail's `ADDR:PORT`
    /// form), with short timeouts.
    pub fn resolv_conf(&self) -> String {
        format!("nameserver {}\noptions timeout:2 attempts:1\n", self.addr)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The question of a query: (lower-case name, type, end of the question).
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*q.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    for l in name.split('.').filter(|l| !l.is_empty()) {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
}

fn answer(zone: &[(String, Rr)], q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 {
        return None;
    }
    let (name, qtype, end) = question(q)?;
    let exists = zone.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name));
    let records: Vec<&Rr> = zone
        .iter()
        .filter(|(n, r)| {
            n.eq_ignore_ascii_case(&name)
                && matches!(
                    (r, qtype),
                    (Rr::Mx(..), TYPE_MX) | (Rr::A(_), TYPE_A) | (Rr::Aaaa(_), TYPE_AAAA)
                )
        })
        .map(|(_, r)| r)
        .collect();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&q[..2]); // ID
                                    // QR, AA, RD copied; RA; rcode NXDOMAIN (3) or NOERROR
    out.push(0x84 | (q[2] & 0x01));
    out.push(0x80 | if exists { 0 } else { 3 });
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&q[12..end]);
    for r in records {
        put_name(&mut out, &name);
        let (ty, rdata) = match r {
            Rr::A(ip) => (TYPE_A, ip.octets().to_vec()),
            Rr::Aaaa(ip) => (TYPE_AAAA, ip.octets().to_vec()),
            Rr::Mx(pref, host) => {
                let mut d = pref.to_be_bytes().to_vec();
                put_name(&mut d, host);
                (TYPE_MX, d)
            }
        };
        out.extend_from_slice(&ty.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // IN
        out.extend_from_slice(&60u32.to_be_bytes()); // TTL
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out)
}
