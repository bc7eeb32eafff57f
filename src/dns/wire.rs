//! dns::wire — DNS messages: encode one query, decode a reply strictly.
//!
//! DESCRIPTION
//!   `encode_query` builds a standard query (RFC 1035 §4.1): a 12-byte
//!   header with the caller's random ID and RD set, one question, no
//!   EDNS0 (a reply that does not fit 512 bytes comes back with TC set and
//!   is asked again over TCP, RFC 1035 §4.2.2, RFC 7766).
//!
//!   `decode_reply` checks that a message answers that query — QR set,
//!   opcode QUERY, the same ID, exactly one question with the same name
//!   (ASCII case-insensitive), type and class — before it reads anything
//!   else; `Error::NotOurs` says "ignore this datagram and keep waiting"
//!   (RFC 5452 §9.1). It then reads the answer and authority sections;
//!   the additional section is never used. `Reply::answer_for` follows a
//!   CNAME chain inside the answer section (at most `MAX_CNAME` links,
//!   RFC 1034 §3.6.2) and returns the records of the asked type at its
//!   end: MX (RFC 1035 §3.3.9), A (§3.4.1), AAAA (RFC 3596 §2.2).
//!
//!   Names are kept in uncompressed wire form, ASCII letters lower-cased,
//!   so comparing two names is comparing bytes.
//!
//! SECURITY
//!   Every byte comes from the network and is untrusted. All reads go
//!   through bounds-checked accessors; nothing here can panic or loop.
//!   Compression pointers (RFC 1035 §4.1.4) must point backwards and at
//!   most `MAX_JUMPS` are followed; a name may not exceed 255 bytes nor a
//!   label 63; the reserved label types 01 and 10 are refused. RDATA must
//!   have exactly the length its type needs. All integers are read and
//!   written big-endian explicitly (routers are often big-endian MIPS).
//!
//! DIAGNOSTICS
//!   `Error` names what was wrong with a message (short, bad pointer, name
//!   too long, bad RDATA length, …); the resolver reports it as a
//!   temporary "malformed reply" failure.

use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_MX: u16 = 15;
pub const TYPE_AAAA: u16 = 28;
pub const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;

/// Largest name in wire form, root label included (RFC 1035 §2.3.4).
pub const MAX_NAME: usize = 255;
/// Largest label (RFC 1035 §2.3.4).
pub const MAX_LABEL: usize = 63;
/// Compression pointers followed for one name. A legal name has at most
/// 127 labels, so a well-formed message never needs more.
pub const MAX_JUMPS: usize = 127;
/// CNAME links followed inside one answer section.
pub const MAX_CNAME: usize = 8;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 12;

const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const OPCODE_MASK: u16 = 0x7800;

/// What was wrong with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not a reply to our query (ID, QR, opcode or question differ):
    /// ignore it and keep waiting for the real one.
    NotOurs,
    /// The message ends before a field it announces.
    Short,
    /// A compression pointer points forwards, to itself, or too many
    /// pointers were chained.
    BadPointer,
    /// A label of the reserved types 01/10 (RFC 6891 §5 retired 01).
    BadLabel,
    /// A name longer than 255 bytes in wire form.
    NameTooLong,
    /// RDATA length does not fit its type.
    BadRdata,
    /// The CNAME chain in the answer is longer than `MAX_CNAME`.
    CnameChain,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::NotOurs => "reply does not match the query",
            Error::Short => "message too short",
            Error::BadPointer => "bad compression pointer",
            Error::BadLabel => "bad label type",
            Error::NameTooLong => "name too long",
            Error::BadRdata => "bad record data length",
            Error::CnameChain => "CNAME chain too long",
        })
    }
}

/// Why a string is not a name we can ask about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    EmptyLabel,
    LabelTooLong,
    TooLong,
    BadChar,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Empty => "empty name",
            NameError::EmptyLabel => "empty label",
            NameError::LabelTooLong => "label longer than 63 characters",
            NameError::TooLong => "name longer than 255 bytes",
            NameError::BadChar => "character not allowed in a host name",
        })
    }
}

/// A domain name in uncompressed wire form (length-prefixed labels, the
/// root label last), ASCII letters lower-cased.
#[derive(Clone, PartialEq, Eq)]
pub struct Name(Vec<u8>);

/// Append `label` to `out`, lower-cased.
fn lower_into(out: &mut Vec<u8>, label: &[u8]) {
    let at = out.len();
    out.extend_from_slice(label);
    if let Some(new) = out.get_mut(at..) {
        new.make_ascii_lowercase();
    }
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl Name {
    /// The root name `.`.
    pub fn root() -> Name {
        Name(vec![0])
    }

    /// Parse a host name to ask about: letters, digits, `-` and `_` in
    /// dot-separated labels, one trailing dot allowed. Names are absolute
    /// (no `search` list: mail domains are FQDNs).
    pub fn from_host(s: &str) -> Result<Name, NameError> {
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        let mut out = Vec::with_capacity(s.len() + 2);
        for label in s.split('.') {
            let l = label.as_bytes();
            if l.is_empty() {
                return Err(NameError::EmptyLabel);
            }
            if l.len() > MAX_LABEL {
                return Err(NameError::LabelTooLong);
            }
            if !l.iter().all(|&b| is_host_byte(b)) {
                return Err(NameError::BadChar);
            }
            out.push(l.len() as u8);
            lower_into(&mut out, l);
        }
        out.push(0);
        if out.len() > MAX_NAME {
            return Err(NameError::TooLong);
        }
        Ok(Name(out))
    }

    /// The wire form.
    pub fn wire(&self) -> &[u8] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    /// The labels, root excluded.
    fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest: &[u8] = &self.0;
        std::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let label = tail.get(..len as usize)?;
            if label.is_empty() {
                return None;
            }
            rest = tail.get(len as usize..)?;
            Some(label)
        })
    }

    /// The name as a host name (`mx1.example.org`, no trailing dot), or
    /// None when it is the root or holds a byte a host name cannot have.
    pub fn to_host(&self) -> Option<String> {
        if self.is_root() {
            return None;
        }
        let mut s = String::with_capacity(self.0.len());
        for label in self.labels() {
            if !label.iter().all(|&b| is_host_byte(b)) {
                return None;
            }
            if !s.is_empty() {
                s.push('.');
            }
            for &b in label {
                s.push(b as char);
            }
        }
        Some(s)
    }
}

/// Presentation form (RFC 1035 §5.1): `\DDD` for bytes outside the host
/// name set, `.` for the root. Used in logs and errors only.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str(".");
        }
        for (i, label) in self.labels().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            for &b in label {
                if is_host_byte(b) {
                    f.write_char(b as char)?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// The data of one resource record, for the types we use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Mx {
        preference: u16,
        exchange: Name,
    },
    Cname(Name),
    /// Any other type (RRSIG, DNAME, …): skipped.
    Other,
}

/// One resource record of class IN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    pub rtype: u16,
    pub data: RData,
}

/// A decoded reply that answers our query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// TC: the reply was truncated; its sections were not read.
    pub truncated: bool,
    pub rcode: u8,
    /// Answer-section records of class IN.
    pub answers: Vec<Record>,
}

/// Encode a query for `qname`/`qtype` class IN with `id` and RD set.
pub fn encode_query(id: u16, qname: &Name, qtype: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEADER_LEN + qname.wire().len() + 4);
    let ([i0, i1], [f0, f1]) = (id.to_be_bytes(), FLAG_RD.to_be_bytes());
    // ID, flags, QDCOUNT 1, ANCOUNT, NSCOUNT, ARCOUNT 0.
    m.extend_from_slice(&[i0, i1, f0, f1, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(qname.wire());
    let ([t0, t1], [c0, c1]) = (qtype.to_be_bytes(), CLASS_IN.to_be_bytes());
    m.extend_from_slice(&[t0, t1, c0, c1]);
    m
}

/// A bounds-checked cursor over a message.
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::Short)?;
        let b = self.msg.get(self.pos..end).ok_or(Error::Short)?;
        self.pos = end;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.bytes(2)?.try_into().map_err(|_| Error::Short)?;
        Ok(u16::from_be_bytes(b))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.bytes(4)?.try_into().map_err(|_| Error::Short)?;
        Ok(u32::from_be_bytes(b))
    }

    fn name(&mut self) -> Result<Name, Error> {
        let (name, next) = read_name(self.msg, self.pos)?;
        self.pos = next;
        Ok(name)
    }
}

/// Read a possibly compressed name starting at `start`; returns it and
/// the offset just after it in the record that holds it.
pub fn read_name(msg: &[u8], start: usize) -> Result<(Name, usize), Error> {
    let mut out = Vec::with_capacity(32);
    let mut pos = start;
    let mut after = None; // offset after the first pointer
    let mut jumps = 0;
    loop {
        let len = *msg.get(pos).ok_or(Error::Short)?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                out.push(0);
                if out.len() > MAX_NAME {
                    return Err(Error::NameTooLong);
                }
                let next = after.unwrap_or(pos + 1);
                return Ok((Name(out), next));
            }
            0x00 => {
                let len = len as usize;
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(Error::Short)?;
                // + 1 for the root label still to come
                if out.len() + 1 + len + 1 > MAX_NAME {
                    return Err(Error::NameTooLong);
                }
                out.push(len as u8);
                lower_into(&mut out, label);
                pos += 1 + len;
            }
            0xC0 => {
                let lo = *msg.get(pos + 1).ok_or(Error::Short)?;
                let target = (usize::from(len & 0x3F) << 8) | usize::from(lo);
                jumps += 1;
                if target >= pos || jumps > MAX_JUMPS {
                    return Err(Error::BadPointer);
                }
                if after.is_none() {
                    after = Some(pos + 2);
                }
                pos = target;
            }
            _ => return Err(Error::BadLabel),
        }
    }
}

/// Read one resource record.
fn read_record(r: &mut Reader<'_>) -> Result<(Record, u16), Error> {
    let name = r.name()?;
    let rtype = r.u16()?;
    let class = r.u16()?;
    let _ttl = r.u32()?;
    let rdlen = r.u16()? as usize;
    let rd_start = r.pos;
    let rdata = r.bytes(rdlen)?;
    let rd_end = r.pos;
    let msg = r.msg;
    // A name in RDATA must end exactly where RDATA ends; its pointers may
    // point anywhere earlier in the message.
    let name_in_rdata = |at: usize| -> Result<Name, Error> {
        let (n, next) = read_name(msg, at)?;
        if next != rd_end {
            return Err(Error::BadRdata);
        }
        Ok(n)
    };
    let data = match (class, rtype) {
        (CLASS_IN, TYPE_A) => {
            let b: [u8; 4] = rdata.try_into().map_err(|_| Error::BadRdata)?;
            RData::A(Ipv4Addr::from(b))
        }
        (CLASS_IN, TYPE_AAAA) => {
            let b: [u8; 16] = rdata.try_into().map_err(|_| Error::BadRdata)?;
            RData::Aaaa(Ipv6Addr::from(b))
        }
        (CLASS_IN, TYPE_MX) => {
            let p = rdata.get(..2).ok_or(Error::BadRdata)?;
            let preference = u16::from_be_bytes(p.try_into().map_err(|_| Error::BadRdata)?);
            let exchange = name_in_rdata(rd_start + 2)?;
            RData::Mx {
                preference,
                exchange,
            }
        }
        (CLASS_IN, TYPE_CNAME) => RData::Cname(name_in_rdata(rd_start)?),
        _ => RData::Other,
    };
    Ok((Record { name, rtype, data }, class))
}

/// Decode `msg` as the reply to the query `id`/`qname`/`qtype`.
pub fn decode_reply(msg: &[u8], id: u16, qname: &Name, qtype: u16) -> Result<Reply, Error> {
    // Until the question has been compared, anything wrong means the
    // message is not (provably) a reply to us.
    if msg.len() < HEADER_LEN {
        return Err(Error::NotOurs);
    }
    let mut r = Reader { msg, pos: 0 };
    let rid = r.u16()?;
    let flags = r.u16()?;
    let qdcount = r.u16()?;
    if rid != id || flags & FLAG_QR == 0 || flags & OPCODE_MASK != 0 || qdcount != 1 {
        return Err(Error::NotOurs);
    }
    let ancount = r.u16()?;
    let nscount = r.u16()?;
    let _arcount = r.u16()?;
    // The question must echo ours (RFC 5452 §9.1).
    let q = r.name().map_err(|_| Error::NotOurs)?;
    let t = r.u16().map_err(|_| Error::NotOurs)?;
    let c = r.u16().map_err(|_| Error::NotOurs)?;
    if q != *qname || t != qtype || c != CLASS_IN {
        return Err(Error::NotOurs);
    }
    let rcode = (flags & 0x000F) as u8;
    if flags & FLAG_TC != 0 {
        return Ok(Reply {
            truncated: true,
            rcode,
            answers: Vec::new(),
        });
    }
    let mut answers = Vec::new();
    for _ in 0..ancount {
        let (rec, class) = read_record(&mut r)?;
        if class == CLASS_IN {
            answers.push(rec);
        }
    }
    // The authority section is only checked for well-formedness.
    for _ in 0..nscount {
        read_record(&mut r)?;
    }
    Ok(Reply {
        truncated: false,
        rcode,
        answers,
    })
}

impl Reply {
    /// Follow the CNAME chain from `qname` within the answer section and
    /// return the name at its end with the data of its `qtype` records.
    /// A CNAME query itself is not chased.
    pub fn answer_for<'a>(
        &'a self,
        qname: &'a Name,
        qtype: u16,
    ) -> Result<(&'a Name, Vec<&'a RData>), Error> {
        let mut name = qname;
        let mut links = 0;
        loop {
            let alias = self.answers.iter().find_map(|rec| match &rec.data {
                RData::Cname(target) if rec.name == *name && qtype != TYPE_CNAME => Some(target),
                _ => None,
            });
            match alias {
                Some(target) => {
                    links += 1;
                    if links > MAX_CNAME {
                        return Err(Error::CnameChain);
                    }
                    name = target;
                }
                None => break,
            }
        }
        let mut data = Vec::new();
        for rec in &self.answers {
            if rec.rtype == qtype && rec.name == *name {
                data.push(&rec.data);
            }
        }
        Ok((name, data))
    }
}

/// The RCODE's name, for messages.
pub fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        RCODE_NOERROR => "NOERROR",
        RCODE_FORMERR => "FORMERR",
        RCODE_SERVFAIL => "SERVFAIL",
        RCODE_NXDOMAIN => "NXDOMAIN",
        RCODE_NOTIMP => "NOTIMP",
        RCODE_REFUSED => "REFUSED",
        _ => "error",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A hand-built message: header, then whatever the test appends.
    pub(crate) struct Msg(pub Vec<u8>);

    impl Msg {
        pub fn header(id: u16, flags: u16, counts: [u16; 4]) -> Msg {
            let mut m = Msg(Vec::new());
            m.u16(id).u16(flags);
            for c in counts {
                m.u16(c);
            }
            m
        }
        pub fn u16(&mut self, v: u16) -> &mut Msg {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn u32(&mut self, v: u32) -> &mut Msg {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        pub fn raw(&mut self, b: &[u8]) -> &mut Msg {
            self.0.extend_from_slice(b);
            self
        }
        /// Labels of `s`, uncompressed, ending with the root label.
        pub fn name(&mut self, s: &str) -> &mut Msg {
            self.labels(s).raw(&[0])
        }
        /// Labels of `s` without the root label (a pointer follows).
        pub fn labels(&mut self, s: &str) -> &mut Msg {
            for l in s.split('.').filter(|l| !l.is_empty()) {
                self.0.push(l.len() as u8);
                self.0.extend_from_slice(l.as_bytes());
            }
            self
        }
        pub fn ptr(&mut self, off: u16) -> &mut Msg {
            self.u16(0xC000 | off)
        }
        pub fn question(&mut self, name: &str, qtype: u16) -> &mut Msg {
            self.name(name).u16(qtype).u16(CLASS_IN)
        }
        /// Record header after the owner name: type, class IN, TTL, RDLENGTH.
        pub fn rr(&mut self, rtype: u16, rdlen: u16) -> &mut Msg {
            self.u16(rtype).u16(CLASS_IN).u32(3600).u16(rdlen)
        }
    }

    const QR_RD_RA: u16 = 0x8180;

    fn n(s: &str) -> Name {
        Name::from_host(s).expect("test name")
    }

    /// Reply to `example.org MX`: mx1 pref 10 and mx2 pref 20, both
    /// compressed against the question name at offset 12.
    fn mx_reply(id: u16) -> Vec<u8> {
        let mut m = Msg::header(id, QR_RD_RA, [1, 2, 0, 0]);
        m.question("example.org", TYPE_MX);
        // owner: pointer to the question name; exchange "mx1" + pointer
        m.ptr(12)
            .rr(TYPE_MX, 2 + 4 + 2)
            .u16(10)
            .labels("mx1")
            .ptr(12);
        m.ptr(12)
            .rr(TYPE_MX, 2 + 4 + 2)
            .u16(20)
            .labels("mx2")
            .ptr(12);
        m.0
    }

    #[test]
    fn query_bytes() {
        let q = encode_query(0x1234, &n("Example.ORG."), TYPE_MX);
        let mut want = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(b"\x07example\x03org\x00\x00\x0f\x00\x01");
        assert_eq!(q, want);
    }

    #[test]
    fn host_names() {
        assert_eq!(
            n("Mx1.Example.ORG.").to_host().as_deref(),
            Some("mx1.example.org")
        );
        assert_eq!(n("_srv.a-b.c").to_host().as_deref(), Some("_srv.a-b.c"));
        let bad = [
            ("", NameError::Empty),
            (".", NameError::Empty),
            ("a..b", NameError::EmptyLabel),
            (".a", NameError::EmptyLabel),
            ("exa mple.org", NameError::BadChar),
            ("ex@mple.org", NameError::BadChar),
            ("bücher.de", NameError::BadChar),
            ("a\\.b", NameError::BadChar),
        ];
        for (s, e) in bad {
            assert_eq!(Name::from_host(s), Err(e), "{s:?}");
        }
        let long_label = "a".repeat(64);
        assert_eq!(Name::from_host(&long_label), Err(NameError::LabelTooLong));
        assert!(Name::from_host(&"a".repeat(63)).is_ok());
        // 127 one-letter labels: 254 bytes + root = 255, the limit
        let max = vec!["a"; 127].join(".");
        assert_eq!(n(&max).wire().len(), 255);
        let over = vec!["a"; 128].join(".");
        assert_eq!(Name::from_host(&over), Err(NameError::TooLong));
        assert!(Name::root().is_root());
        assert_eq!(Name::root().to_host(), None);
        assert_eq!(Name::root().to_string(), ".");
    }

    #[test]
    fn mx_with_compression() {
        let r = decode_reply(&mx_reply(7), 7, &n("EXAMPLE.org"), TYPE_MX).expect("reply");
        assert!(!r.truncated);
        assert_eq!(r.rcode, RCODE_NOERROR);
        let q = n("example.org");
        let (name, data) = r.answer_for(&q, TYPE_MX).expect("answer");
        assert_eq!(*name, n("example.org"));
        assert_eq!(
            data,
            vec![
                &RData::Mx {
                    preference: 10,
                    exchange: n("mx1.example.org")
                },
                &RData::Mx {
                    preference: 20,
                    exchange: n("mx2.example.org")
                },
            ]
        );
    }

    #[test]
    fn a_and_aaaa() {
        let mut m = Msg::header(1, QR_RD_RA, [1, 2, 0, 0]);
        m.question("h.example", TYPE_A);
        m.ptr(12).rr(TYPE_A, 4).raw(&[192, 0, 2, 1]);
        m.ptr(12).rr(TYPE_A, 4).raw(&[192, 0, 2, 2]);
        let r = decode_reply(&m.0, 1, &n("h.example"), TYPE_A).expect("A");
        let q = n("h.example");
        let (_, d) = r.answer_for(&q, TYPE_A).expect("answer");
        assert_eq!(
            d,
            vec![
                &RData::A(Ipv4Addr::new(192, 0, 2, 1)),
                &RData::A(Ipv4Addr::new(192, 0, 2, 2))
            ]
        );

        let v6: Ipv6Addr = "2001:db8::25".parse().expect("v6");
        let mut m = Msg::header(2, QR_RD_RA, [1, 1, 0, 0]);
        m.question("h.example", TYPE_AAAA);
        m.ptr(12).rr(TYPE_AAAA, 16).raw(&v6.octets());
        let r = decode_reply(&m.0, 2, &n("h.example"), TYPE_AAAA).expect("AAAA");
        let q = n("h.example");
        let (_, d) = r.answer_for(&q, TYPE_AAAA).expect("answer");
        assert_eq!(d, vec![&RData::Aaaa(v6)]);
    }

    #[test]
    fn not_ours() {
        let q = n("example.org");
        let good = mx_reply(7);
        assert_eq!(
            decode_reply(&good, 8, &q, TYPE_MX),
            Err(Error::NotOurs),
            "wrong ID"
        );
        assert_eq!(
            decode_reply(&good, 7, &q, TYPE_A),
            Err(Error::NotOurs),
            "wrong type"
        );
        assert_eq!(
            decode_reply(&good, 7, &n("example.com"), TYPE_MX),
            Err(Error::NotOurs),
            "wrong name"
        );
        let mut m = good.clone();
        m[2] &= 0x7F; // QR clear: a query, not a reply
        assert_eq!(decode_reply(&m, 7, &q, TYPE_MX), Err(Error::NotOurs));
        let mut m = good.clone();
        m[2] |= 0x08; // opcode 1
        assert_eq!(decode_reply(&m, 7, &q, TYPE_MX), Err(Error::NotOurs));
        let mut m = good.clone();
        m[5] = 0; // QDCOUNT 0
        assert_eq!(decode_reply(&m, 7, &q, TYPE_MX), Err(Error::NotOurs));
        let mut m = good.clone();
        let class_at = 12 + 13 + 2;
        m[class_at + 1] = 3; // class CH
        assert_eq!(decode_reply(&m, 7, &q, TYPE_MX), Err(Error::NotOurs));
        // a reply with no question at all (some servers' FORMERR)
        let m = Msg::header(7, QR_RD_RA | 1, [0, 0, 0, 0]).0;
        assert_eq!(decode_reply(&m, 7, &q, TYPE_MX), Err(Error::NotOurs));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let q = n("example.org");
        let good = mx_reply(7);
        for len in 0..good.len() {
            let r = decode_reply(&good[..len], 7, &q, TYPE_MX);
            assert!(r.is_err(), "prefix {len} decoded");
            // up to the end of the question the message is not ours
            if len < 12 + 13 + 4 {
                assert_eq!(r, Err(Error::NotOurs), "prefix {len}");
            } else {
                assert_eq!(r, Err(Error::Short), "prefix {len}");
            }
        }
        assert!(decode_reply(&good, 7, &q, TYPE_MX).is_ok());
    }

    #[test]
    fn tc_bit_skips_sections() {
        let mut m = Msg::header(9, QR_RD_RA | FLAG_TC, [1, 5, 0, 0]);
        m.question("example.org", TYPE_MX); // records missing: cut off
        let r = decode_reply(&m.0, 9, &n("example.org"), TYPE_MX).expect("tc");
        assert!(r.truncated);
        assert!(r.answers.is_empty());
    }

    #[test]
    fn rcodes() {
        for rc in [RCODE_NXDOMAIN, RCODE_SERVFAIL, RCODE_REFUSED] {
            let mut m = Msg::header(3, QR_RD_RA | u16::from(rc), [1, 0, 0, 0]);
            m.question("nx.example", TYPE_MX);
            let r = decode_reply(&m.0, 3, &n("nx.example"), TYPE_MX).expect("reply");
            assert_eq!(r.rcode, rc);
        }
        assert_eq!(rcode_name(RCODE_SERVFAIL), "SERVFAIL");
        assert_eq!(rcode_name(11), "error");
    }

    #[test]
    fn pointer_loops_and_bad_pointers() {
        let q = n("example.org");
        // pointer to itself: owner name at offset 29
        let mut m = Msg::header(1, QR_RD_RA, [1, 1, 0, 0]);
        m.question("example.org", TYPE_MX);
        let at = m.0.len() as u16;
        m.ptr(at).rr(TYPE_MX, 3).u16(1).raw(&[0]);
        assert_eq!(decode_reply(&m.0, 1, &q, TYPE_MX), Err(Error::BadPointer));

        // forward pointer
        let mut m = Msg::header(1, QR_RD_RA, [1, 1, 0, 0]);
        m.question("example.org", TYPE_MX);
        let at = m.0.len() as u16;
        m.ptr(at + 2).raw(&[0]).rr(TYPE_MX, 3).u16(1).raw(&[0]);
        assert_eq!(decode_reply(&m.0, 1, &q, TYPE_MX), Err(Error::BadPointer));

        // a label followed by a pointer back to it: a loop that grows
        let mut m = Msg::header(1, QR_RD_RA, [1, 1, 0, 0]);
        m.question("example.org", TYPE_MX);
        let at = m.0.len() as u16;
        m.labels("a").ptr(at).rr(TYPE_MX, 3).u16(1).raw(&[0]);
        let r = decode_reply(&m.0, 1, &q, TYPE_MX);
        assert!(
            matches!(r, Err(Error::NameTooLong | Error::BadPointer)),
            "{r:?}"
        );

        // a chain of pointers to pointers, each backwards: more than
        // MAX_JUMPS hops. The chain sits in an unknown record's RDATA; the
        // second record's owner points at its last pointer (one more hop).
        let mut m = Msg::header(1, QR_RD_RA, [1, 2, 0, 0]);
        m.question("example.org", TYPE_MX);
        let hops = MAX_JUMPS as u16;
        m.ptr(12).rr(99, 1 + 2 * hops);
        let mut prev = m.0.len() as u16;
        m.raw(&[0]); // the root name
        for _ in 0..hops {
            let here = m.0.len() as u16;
            m.ptr(prev);
            prev = here;
        }
        m.ptr(prev).rr(TYPE_MX, 3).u16(1).raw(&[0]);
        assert_eq!(decode_reply(&m.0, 1, &q, TYPE_MX), Err(Error::BadPointer));
        // one hop fewer is fine
        let mut m = Msg::header(1, QR_RD_RA, [1, 2, 0, 0]);
        m.question("example.org", TYPE_MX);
        m.ptr(12).rr(99, 1 + 2 * (hops - 1));
        let mut prev = m.0.len() as u16;
        m.raw(&[0]);
        for _ in 0..hops - 1 {
            let here = m.0.len() as u16;
            m.ptr(prev);
            prev = here;
        }
        m.ptr(prev).rr(TYPE_MX, 3).u16(1).raw(&[0]);
        assert!(decode_reply(&m.0, 1, &q, TYPE_MX).is_ok());

        // reserved label types 01 and 10
        for bits in [0x40u8, 0x80] {
            let mut m = Msg::header(1, QR_RD_RA, [1, 1, 0, 0]);
            m.question("example.org", TYPE_MX);
            m.raw(&[bits | 1, b'x', 0]).rr(TYPE_MX, 3).u16(1).raw(&[0]);
            assert_eq!(decode_reply(&m.0, 1, &q, TYPE_MX), Err(Error::BadLabel));
        }
    }

    #[test]
    fn name_length_limits_in_messages() {
        let q = n("example.org");
        // owner of 4 labels of 63 = 256 bytes with the root: too long
        let mut m = Msg::header(1, QR_RD_RA, [1, 1, 0, 0]);
        m.question("example.org", TYPE_MX);
        let l = "b".repeat(63);
        m.name(&[&l[..], &l, &l, &l].join("."));
        m.rr(TYPE_MX, 3).u16(1).raw(&[0]);
        assert_eq!(decode_reply(&m.0, 1, &q, TYPE_MX), Err(Error::NameTooLong));
        // 3 × 63 + 61: 255 exactly, fine
        let mut m = Msg::header(1, QR_RD_RA, [1, 1, 0, 0]);
        m.question("example.org", TYPE_MX);
        let l61 = "c".repeat(61);
        m.name(&[&l[..], &l, &l, &l61].join("."));
        m.rr(TYPE_MX, 3).u16(1).raw(&[0]);
        assert!(decode_reply(&m.0, 1, &q, TYPE_MX).is_ok());
        // a label claiming 63 bytes where 2 remain
        let mut m = Msg::header(1, QR_RD_RA, [1, 1, 0, 0]);
        m.question("example.org", TYPE_MX);
        m.raw(&[63, b'a', b'b']);
        assert_eq!(decode_reply(&m.0, 1, &q, TYPE_MX), Err(Error::Short));
    }

    #[test]
    fn bad_rdata() {
        let q = n("h.example");
        let cases: Vec<(u16, Vec<u8>)> = vec![
            (TYPE_A, vec![1, 2, 3]),
            (TYPE_A, vec![1, 2, 3, 4, 5]),
            (TYPE_AAAA, vec![0; 15]),
            (TYPE_MX, vec![0]),
            // exchange name ends before RDATA does
            (TYPE_MX, vec![0, 1, 0, 0xFF]),
            (TYPE_CNAME, vec![1, b'x', 0, 0]),
        ];
        for (t, rdata) in cases {
            let mut m = Msg::header(1, QR_RD_RA, [1, 1, 0, 0]);
            m.question("h.example", t);
            m.ptr(12).rr(t, rdata.len() as u16).raw(&rdata);
            assert_eq!(
                decode_reply(&m.0, 1, &q, t),
                Err(Error::BadRdata),
                "{t} {rdata:?}"
            );
        }
        // exchange name runs past RDATA into the next bytes
        let mut m = Msg::header(1, QR_RD_RA, [1, 1, 0, 0]);
        m.question("h.example", TYPE_MX);
        m.ptr(12).rr(TYPE_MX, 4).u16(1).raw(&[1, b'x', 0]);
        assert_eq!(decode_reply(&m.0, 1, &q, TYPE_MX), Err(Error::BadRdata));
        // RDLENGTH past the end of the message
        let mut m = Msg::header(1, QR_RD_RA, [1, 1, 0, 0]);
        m.question("h.example", TYPE_A);
        m.ptr(12).rr(TYPE_A, 4).raw(&[1, 2]);
        assert_eq!(decode_reply(&m.0, 1, &q, TYPE_A), Err(Error::Short));
        // unknown types and other classes are skipped, not rejected
        let mut m = Msg::header(1, QR_RD_RA, [1, 2, 0, 0]);
        m.question("h.example", TYPE_A);
        m.ptr(12).rr(46, 3).raw(&[1, 2, 3]); // RRSIG, nonsense
        m.ptr(12)
            .u16(TYPE_A)
            .u16(3)
            .u32(0)
            .u16(5)
            .raw(&[1, 2, 3, 4, 5]); // class CH
        let r = decode_reply(&m.0, 1, &q, TYPE_A).expect("skipped");
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].data, RData::Other);
    }

    #[test]
    fn authority_section_is_checked() {
        let q = n("nodata.example");
        let mut m = Msg::header(1, QR_RD_RA, [1, 0, 1, 0]);
        m.question("nodata.example", TYPE_MX);
        // SOA-like record with a broken pointer in its owner
        m.ptr(0x3FFF).rr(6, 0);
        assert_eq!(decode_reply(&m.0, 1, &q, TYPE_MX), Err(Error::BadPointer));
        let mut m = Msg::header(1, QR_RD_RA, [1, 0, 1, 0]);
        m.question("nodata.example", TYPE_MX);
        m.ptr(12).rr(6, 2).raw(&[0, 0]);
        let r = decode_reply(&m.0, 1, &q, TYPE_MX).expect("nodata");
        assert!(r.answers.is_empty());
    }

    /// `owner CNAME target` with both names uncompressed.
    fn cname(m: &mut Msg, owner: &str, target: &str) {
        let t = n(target);
        m.name(owner)
            .rr(TYPE_CNAME, t.wire().len() as u16)
            .raw(t.wire());
    }

    #[test]
    fn cname_then_mx() {
        let q = n("www.example.org");
        let mut m = Msg::header(1, QR_RD_RA, [1, 3, 0, 0]);
        m.question("www.example.org", TYPE_MX);
        cname(&mut m, "www.example.org", "alias.example.net");
        cname(&mut m, "ALIAS.example.net", "mail.example.com");
        let mx = n("mx.example.com");
        m.name("mail.example.com")
            .rr(TYPE_MX, 2 + mx.wire().len() as u16)
            .u16(5)
            .raw(mx.wire());
        let r = decode_reply(&m.0, 1, &q, TYPE_MX).expect("reply");
        let (name, d) = r.answer_for(&q, TYPE_MX).expect("chain");
        assert_eq!(*name, n("mail.example.com"));
        assert_eq!(
            d,
            vec![&RData::Mx {
                preference: 5,
                exchange: mx
            }]
        );
        // a record for the alias's owner is not an answer for the target
        let (_, d) = r.answer_for(&q, TYPE_A).expect("chain");
        assert!(d.is_empty());
    }

    #[test]
    fn cname_loops_and_long_chains() {
        let q = n("a.example");
        let mut m = Msg::header(1, QR_RD_RA, [1, 2, 0, 0]);
        m.question("a.example", TYPE_A);
        cname(&mut m, "a.example", "b.example");
        cname(&mut m, "b.example", "a.example");
        let r = decode_reply(&m.0, 1, &q, TYPE_A).expect("reply");
        assert_eq!(r.answer_for(&q, TYPE_A), Err(Error::CnameChain));

        let chain = |links: usize| {
            let mut m = Msg::header(1, QR_RD_RA, [1, links as u16 + 1, 0, 0]);
            m.question("c0.example", TYPE_A);
            for i in 0..links {
                cname(
                    &mut m,
                    &format!("c{i}.example"),
                    &format!("c{}.example", i + 1),
                );
            }
            m.name(&format!("c{links}.example"))
                .rr(TYPE_A, 4)
                .raw(&[192, 0, 2, 9]);
            decode_reply(&m.0, 1, &n("c0.example"), TYPE_A).expect("reply")
        };
        let r = chain(MAX_CNAME);
        let q = n("c0.example");
        let (name, d) = r.answer_for(&q, TYPE_A).expect("8 links");
        assert_eq!(*name, n(&format!("c{MAX_CNAME}.example")));
        assert_eq!(d.len(), 1);
        let r = chain(MAX_CNAME + 1);
        assert_eq!(
            r.answer_for(&n("c0.example"), TYPE_A),
            Err(Error::CnameChain)
        );
    }

    #[test]
    fn null_mx_decodes_to_root() {
        let q = n("nomail.example");
        let mut m = Msg::header(1, QR_RD_RA, [1, 1, 0, 0]);
        m.question("nomail.example", TYPE_MX);
        m.ptr(12).rr(TYPE_MX, 3).u16(0).raw(&[0]);
        let r = decode_reply(&m.0, 1, &q, TYPE_MX).expect("reply");
        let (_, d) = r.answer_for(&q, TYPE_MX).expect("answer");
        assert_eq!(
            d,
            vec![&RData::Mx {
                preference: 0,
                exchange: Name::root()
            }]
        );
    }

    #[test]
    fn display_escapes() {
        let mut m = Msg::header(1, QR_RD_RA, [1, 1, 0, 0]);
        m.question("x.example", TYPE_MX);
        m.ptr(12)
            .rr(TYPE_MX, 2 + 9)
            .u16(1)
            .raw(&[3, b'a', b'.', 0xFF, 3, b'B', b' ', b'c', 0]);
        let r = decode_reply(&m.0, 1, &n("x.example"), TYPE_MX).expect("reply");
        let RData::Mx { exchange, .. } = &r.answers[0].data else {
            panic!("not MX")
        };
        assert_eq!(exchange.to_string(), "a\\046\\255.b\\032c");
        assert_eq!(exchange.to_host(), None);
    }

    /// xorshift64: deterministic noise for the no-panic loop.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn garbage_never_panics() {
        let q = n("example.org");
        let good = mx_reply(7);
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut decoded = 0;
        for round in 0..200_000u32 {
            let msg: Vec<u8> = match round % 3 {
                // pure noise
                0 => {
                    let len = (rng.next() % 600) as usize;
                    (0..len).map(|_| rng.next() as u8).collect()
                }
                // our header and question, then noise
                1 => {
                    let mut m = good[..12 + 17].to_vec();
                    m[6] = rng.next() as u8;
                    m[7] = rng.next() as u8;
                    let len = (rng.next() % 300) as usize;
                    m.extend((0..len).map(|_| rng.next() as u8));
                    m
                }
                // a valid reply with a few bytes flipped, maybe cut short
                _ => {
                    let mut m = good.clone();
                    for _ in 0..1 + rng.next() % 4 {
                        let i = (rng.next() as usize) % m.len();
                        m[i] = rng.next() as u8;
                    }
                    let keep = (rng.next() as usize) % (m.len() + 1);
                    m.truncate(keep.max(m.len() - 4));
                    m
                }
            };
            if let Ok(r) = decode_reply(&msg, 7, &q, TYPE_MX) {
                decoded += 1;
                for t in [TYPE_MX, TYPE_A, TYPE_AAAA, TYPE_CNAME] {
                    if let Ok((name, _)) = r.answer_for(&q, t) {
                        let _ = (name.to_host(), name.to_string());
                    }
                }
            }
            for start in [0, 12, msg.len() / 2] {
                let _ = read_name(&msg, start);
            }
        }
        assert!(decoded > 0, "the mutation rounds should decode sometimes");
    }
}
