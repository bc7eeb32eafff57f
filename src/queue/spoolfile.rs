//! The header file format of `incoming/ID` and `outgoing/ID`.
//!
//! Tagged lines, masqmail style (DESIGN §4, doc/INTERNALS.md):
//!
//! ```text
//! MQ:1                      format version, always the first line
//! MF:<alice@example.org>    envelope sender (MF:<> is the null sender)
//! FN:Alice Liddell          full name for a missing From: (optional)
//! PR:local                  protocol: local, smtp, esmtp, esmtps, esmtpsa
//! ID:uid 1000 (alice)       ident: local user, or the SMTP peer
//! HE:printer.lan            HELO/EHLO name (SMTP only, optional)
//! TL:TLSv1.3 with cipher …  TLS of the SMTP session (optional)
//! TR:1764103659             time received, seconds since the epoch
//! DS:1234                   size of pool/ID in bytes
//! WA:1                      a delay warning was sent (optional)
//! RT:P<TAB><a@x.org><TAB><orig@x.org><TAB>0<TAB>0<TAB>last error
//! HD:Subject: hello         a header field; continuation lines follow as is
//!  world
//! EN:ID HASH                end marker: a file without it is truncated
//! ```
//!
//! The end line names the message and carries a hash of everything before
//! it ([`seal`]): the ready bit is set before the one fsync of a header
//! file, so after a power cut a ready file may hold less than was written
//! (zeros, a short file, even blocks of some older file). Only a file
//! whose end line names this message and whose hash matches is whole
//! ([`check_seal`]). Files of earlier versions end with a bare `EN:`;
//! they were fsynced before they got the ready bit and count as whole.
//!
//! A recipient line holds: state, target (`<address>` or `|command`), the
//! address it was expanded from (or empty), delivery attempts, the time of
//! the next attempt and the last error. Values never contain line ends or
//! tabs: [`clean`] replaces them.

use std::fmt;

use crate::addr::{Address, Sender};
use crate::message::Header;

pub const FORMAT_VERSION: &str = "1";

/// Where a recipient stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RcptState {
    /// Not yet delivered.
    Pending,
    /// Delivered.
    Delivered,
    /// Failed permanently; a bounce still has to be sent.
    Failed,
    /// Failed permanently and the bounce is queued (or needs none).
    Bounced,
}

impl RcptState {
    fn tag(self) -> char {
        match self {
            RcptState::Pending => 'P',
            RcptState::Delivered => 'D',
            RcptState::Failed => 'F',
            RcptState::Bounced => 'B',
        }
    }
    fn from_tag(s: &str) -> Option<RcptState> {
        Some(match s {
            "P" => RcptState::Pending,
            "D" => RcptState::Delivered,
            "F" => RcptState::Failed,
            "B" => RcptState::Bounced,
            _ => return None,
        })
    }
}

/// Where a recipient's copy goes: a mail address, or a command from an
/// alias (never from an envelope: the two cannot be confused on disk,
/// addresses are stored in angle brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Addr(Address),
    Pipe(String),
}

impl Target {
    /// The address bare, or `|command`: as the log and the listing show it.
    pub fn text(&self) -> String {
        match self {
            Target::Addr(a) => a.to_string(),
            Target::Pipe(c) => format!("|{c}"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "<{a}>"),
            Target::Pipe(c) => write!(f, "|{c}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rcpt {
    pub state: RcptState,
    pub target: Target,
    /// The address this one was expanded from by an alias.
    pub orig: Option<Address>,
    pub tries: u32,
    pub next_try: u64,
    pub error: String,
}

impl Rcpt {
    pub fn new(addr: Address) -> Rcpt {
        Rcpt {
            state: RcptState::Pending,
            target: Target::Addr(addr),
            orig: None,
            tries: 0,
            next_try: 0,
            error: String::new(),
        }
    }
}

/// The envelope: everything about a message that is not its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub sender: Sender,
    pub full_name: Option<String>,
    pub protocol: String,
    pub ident: String,
    pub helo: Option<String>,
    pub received: u64,
    pub body_size: u64,
    pub rcpts: Vec<Rcpt>,
    /// A delay warning has been sent.
    pub warned: bool,
    /// TLS version and cipher of the SMTP session it came in by.
    pub tls: Option<String>,
}

/// A whole header file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderFile {
    pub env: Envelope,
    pub headers: Vec<Header>,
}

/// Replace what would break the line format (line ends, tabs, NUL).
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_clean(&mut out, s);
    out
}

/// Append `TAG:` + `val` cleaned + `\n`.
fn put(out: &mut String, tag: &str, val: &str) {
    out.push_str(tag);
    push_clean(out, val);
    out.push('\n');
}

fn push_clean(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| if c.is_control() { ' ' } else { c }));
}

fn push_disp(out: &mut String, d: &dyn fmt::Display) {
    use std::fmt::Write as _;
    let _ = write!(out, "{d}");
}

impl HeaderFile {
    pub fn encode(&self) -> Vec<u8> {
        let e = &self.env;
        let mut out = String::with_capacity(256);
        out.push_str("MQ:");
        out.push_str(FORMAT_VERSION);
        out.push_str("\nMF:<");
        push_disp(&mut out, &e.sender);
        out.push_str(">\n");
        let texts: [(&str, Option<&str>); 5] = [
            ("FN:", e.full_name.as_deref()),
            ("PR:", Some(&e.protocol)),
            ("ID:", Some(&e.ident)),
            ("HE:", e.helo.as_deref()),
            ("TL:", e.tls.as_deref()),
        ];
        for &(tag, v) in &texts {
            if let Some(v) = v {
                put(&mut out, tag, v);
            }
        }
        out.push_str("TR:");
        push_disp(&mut out, &e.received);
        out.push_str("\nDS:");
        push_disp(&mut out, &e.body_size);
        out.push('\n');
        if e.warned {
            out.push_str("WA:1\n");
        }
        for r in &e.rcpts {
            out.push_str("RT:");
            out.push(r.state.tag());
            out.push('\t');
            match &r.target {
                Target::Addr(a) => {
                    out.push('<');
                    push_disp(&mut out, a);
                    out.push('>');
                }
                Target::Pipe(c) => {
                    out.push('|');
                    push_clean(&mut out, c);
                }
            }
            out.push('\t');
            if let Some(a) = &r.orig {
                out.push('<');
                push_disp(&mut out, a);
                out.push('>');
            }
            out.push('\t');
            push_disp(&mut out, &r.tries);
            out.push('\t');
            push_disp(&mut out, &r.next_try);
            out.push('\t');
            put(&mut out, "", &r.error);
        }
        let mut bytes = out.into_bytes();
        for h in &self.headers {
            bytes.extend_from_slice(b"HD:");
            bytes.extend_from_slice(h.raw());
        }
        bytes.extend_from_slice(b"EN:\n");
        bytes
    }

    pub fn decode(data: &[u8]) -> Result<HeaderFile, String> {
        // Every error but one names its line; the message is built once.
        decode(data).map_err(|(line, what)| {
            if line == 0 {
                what.to_string()
            } else {
                format!("line {line}: {what}")
            }
        })
    }
}

/// What the lines of a header file said, as they are read.
#[derive(Default)]
struct Parts {
    sender: Option<Sender>,
    /// FN, PR, ID, HE, TL.
    texts: [Option<String>; 5],
    received: Option<u64>,
    body_size: Option<u64>,
    warned: bool,
    rcpts: Vec<Rcpt>,
    headers: Vec<Header>,
}

/// Decode a header file; an error is its line number (0: none) and what.
fn decode(data: &[u8]) -> Result<HeaderFile, (usize, &'static str)> {
    // The lines fill `p`; on an error it is dropped here, once.
    let mut p = Parts::default();
    read_lines(data, &mut p)?;
    let [full_name, protocol, ident, helo, tls] = p.texts;
    Ok(HeaderFile {
        env: Envelope {
            sender: p.sender.ok_or((0, "missing sender (MF:)"))?,
            full_name,
            protocol: protocol.ok_or((0, "missing protocol (PR:)"))?,
            ident: ident.unwrap_or_default(),
            helo,
            received: p.received.ok_or((0, "missing time (TR:)"))?,
            body_size: p.body_size.ok_or((0, "missing size (DS:)"))?,
            rcpts: p.rcpts,
            warned: p.warned,
            tls,
        },
        headers: p.headers,
    })
}

fn read_lines(data: &[u8], p: &mut Parts) -> Result<(), (usize, &'static str)> {
    let mut lines = data.split(|&b| b == b'\n');
    let mut ended = false;
    if lines.next() != Some(b"MQ:1") {
        return Err((0, "not a masqmail header file (no MQ:1 first line)"));
    }
    let mut lineno = 1;
    while let Some(line) = lines.next() {
        lineno += 1;
        let err = |what| Err((lineno, what));
        if ended {
            if line.is_empty() && lines.clone().next().is_none() {
                break;
            }
            return err("data after the end marker");
        }
        if let Some(b' ' | b'\t') = line.first() {
            match p.headers.last_mut() {
                Some(h) => h.push_continuation(line),
                None => return err("continuation without a header"),
            }
            continue;
        }
        if line.len() < 3 || line[2] != b':' {
            return err("no tag");
        }
        let (tag, val) = (&line[..2], &line[3..]);
        if tag == b"HD" {
            match Header::from_line(val) {
                Some(h) => p.headers.push(h),
                None => return err("malformed header field"),
            }
            continue;
        }
        let Ok(val) = std::str::from_utf8(val) else {
            return err("envelope line is not UTF-8");
        };
        // Text values are read the way encode writes them (no control
        // characters), so a file read and written again says the same.
        if let Some(k) = [b"FN", b"PR", b"ID", b"HE", b"TL"]
            .iter()
            .position(|t| *t == tag)
        {
            p.texts[k] = Some(clean(val));
            continue;
        }
        match tag {
            b"MF" => {
                let inner = val.strip_prefix('<').and_then(|v| v.strip_suffix('>'));
                p.sender = Some(match inner {
                    Some("") => Sender::Null,
                    Some(a) => match Address::parse(a, None) {
                        Ok(a) => Sender::Addr(a),
                        Err(_) => return err("bad sender"),
                    },
                    None => return err("bad sender"),
                });
            }
            b"TR" => match val.parse::<u64>() {
                Ok(v) => p.received = Some(v),
                Err(_) => return err("bad time"),
            },
            b"DS" => match val.parse::<u64>() {
                Ok(v) => p.body_size = Some(v),
                Err(_) => return err("bad size"),
            },
            b"WA" => p.warned = val == "1",
            b"RT" => match decode_rcpt(val) {
                Some(r) => p.rcpts.push(r),
                None => return err("bad recipient"),
            },
            b"EN" => ended = true,
            _ => return err("unknown tag"),
        }
    }
    if !ended {
        return Err((0, "truncated: no end marker"));
    }
    Ok(())
}

/// FNV-1a, 64 bits: a hash against torn and stale writes (not against
/// an attacker, who could write the spool anyway).
fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Turn the bare end line of an encoded header file (`EN:`) into the
/// sealed one: `EN:ID HASH`, HASH the FNV-1a hash of all bytes before the
/// end line, in 16 hex digits.
pub fn seal(data: &mut Vec<u8>, id: &str) {
    debug_assert!(data.ends_with(b"EN:\n"));
    data.truncate(data.len().saturating_sub(4));
    let hash = fnv1a64(data);
    data.extend_from_slice(format!("EN:{id} {hash:016x}\n").as_bytes());
}

/// Whether a header file is whole (see [`seal`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Seal {
    /// Its end line names this message and the hash matches.
    Whole,
    /// A bare `EN:` (written by an earlier version, fsynced before it was
    /// made ready).
    Legacy,
    /// Not what was written for this message: cut short, zeros, another
    /// file's blocks, or changed.
    Broken(String),
}

/// Check the end line of header file `data` of message `id`.
pub fn check_seal(data: &[u8], id: &str) -> Seal {
    let Some(body) = data.strip_suffix(b"\n") else {
        return Seal::Broken("no end marker (cut short)".into());
    };
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let Some(val) = body[start..].strip_prefix(b"EN:") else {
        return Seal::Broken("no end marker (cut short)".into());
    };
    if val.is_empty() {
        return Seal::Legacy;
    }
    let Some((who, hash)) = std::str::from_utf8(val)
        .ok()
        .and_then(|v| v.split_once(' '))
    else {
        return Seal::Broken("malformed end marker".into());
    };
    if who != id {
        return Seal::Broken(format!("end marker of another message ({})", clean(who)));
    }
    match u64::from_str_radix(hash, 16) {
        Ok(h) if hash.len() == 16 && h == fnv1a64(&data[..start]) => Seal::Whole,
        _ => Seal::Broken("hash mismatch (not all of it reached the disk)".into()),
    }
}

fn decode_rcpt(val: &str) -> Option<Rcpt> {
    let mut f = val.splitn(6, '\t');
    let state = RcptState::from_tag(f.next()?)?;
    let target = f.next()?;
    let target = if let Some(cmd) = target.strip_prefix('|') {
        Target::Pipe(clean(cmd))
    } else {
        let inner = target.strip_prefix('<')?.strip_suffix('>')?;
        Target::Addr(Address::parse(inner, None).ok()?)
    };
    let orig = match f.next()? {
        "" => None,
        o => Some(Address::parse(o.strip_prefix('<')?.strip_suffix('>')?, None).ok()?),
    };
    let tries = f.next()?.parse().ok()?;
    let next_try = f.next()?.parse().ok()?;
    let error = clean(f.next()?);
    Some(Rcpt {
        state,
        target,
        orig,
        tries,
        next_try,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HeaderFile {
        let mut subject = Header::from_line(b"Subject: hello").unwrap();
        subject.push_continuation(b"\tworld");
        HeaderFile {
            env: Envelope {
                sender: Sender::Addr(Address::parse("alice@h.test", None).unwrap()),
                full_name: Some("Alice\tLiddell\n".into()),
                protocol: "local".into(),
                ident: "uid 1000 (alice)".into(),
                helo: None,
                received: 1_764_103_659,
                body_size: 42,
                warned: true,
                tls: Some("TLSv1.3 with cipher TLS_AES_128_GCM_SHA256".into()),
                rcpts: vec![
                    Rcpt::new(Address::parse("a@x.org", None).unwrap()),
                    Rcpt {
                        state: RcptState::Failed,
                        target: Target::Pipe("/usr/bin/procmail -d bob".into()),
                        orig: Some(Address::parse("bob@h.test", None).unwrap()),
                        tries: 3,
                        next_try: 99,
                        error: "550 5.1.1\tno\nsuch user".into(),
                    },
                ],
            },
            headers: vec![subject, Header::new("To", "a@x.org")],
        }
    }

    #[test]
    fn round_trip() {
        let hf = sample();
        let bytes = hf.encode();
        let back = HeaderFile::decode(&bytes).unwrap();
        assert_eq!(back.env.full_name.as_deref(), Some("Alice Liddell "));
        assert_eq!(back.env.rcpts[1].error, "550 5.1.1 no such user");
        assert_eq!(back.headers, hf.headers);
        assert_eq!(back.env.rcpts[1].target, hf.env.rcpts[1].target);
        assert_eq!(HeaderFile::decode(&back.encode()).unwrap(), back);
    }

    /// The bytes of the format (doc/INTERNALS.md) are a contract.
    #[test]
    fn encoded_bytes() {
        assert_eq!(
            String::from_utf8(sample().encode()).unwrap(),
            "MQ:1\nMF:<alice@h.test>\nFN:Alice Liddell \nPR:local\nID:uid 1000 (alice)\n\
             TL:TLSv1.3 with cipher TLS_AES_128_GCM_SHA256\nTR:1764103659\nDS:42\nWA:1\n\
             RT:P\t<a@x.org>\t\t0\t0\t\n\
             RT:F\t|/usr/bin/procmail -d bob\t<bob@h.test>\t3\t99\t550 5.1.1 no such user\n\
             HD:Subject: hello\n\tworld\nHD:To: a@x.org\nEN:\n"
        );
    }

    #[test]
    fn null_sender() {
        let mut hf = sample();
        hf.env.sender = Sender::Null;
        let back = HeaderFile::decode(&hf.encode()).unwrap();
        assert_eq!(back.env.sender, Sender::Null);
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample().encode();
        // Cutting anywhere before the end marker's line end must fail.
        for cut in 0..bytes.len() - 1 {
            assert!(HeaderFile::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        let good = sample().encode();
        let mut x: u64 = 88172645463325252;
        for _ in 0..5000 {
            let mut b = good.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % b.len();
                b[i] = (x >> 32) as u8;
            }
            let _ = HeaderFile::decode(&b);
        }
        for bad in [
            &b""[..],
            b"MQ:2\nEN:\n",
            b"MQ:1\nXX:1\nEN:\n",
            b"MQ:1\nRT:Q\t<a@b>\t\t0\t0\t\nEN:\n",
            b"MQ:1\n x\nEN:\n",
        ] {
            assert!(HeaderFile::decode(bad).is_err());
        }
    }

    #[test]
    fn seal_round_trip_and_damage() {
        let id = "1xWN7m166R-00vI";
        let mut b = sample().encode();
        assert_eq!(check_seal(&b, id), Seal::Legacy);
        seal(&mut b, id);
        assert_eq!(check_seal(&b, id), Seal::Whole);
        // A sealed file still decodes (older versions read it too).
        assert_eq!(HeaderFile::decode(&b).unwrap().env, {
            let mut e = sample().env;
            e.full_name = Some("Alice Liddell ".into());
            e.rcpts[1].error = "550 5.1.1 no such user".into();
            e
        });
        assert!(matches!(check_seal(&b, "1xWN7m166R-00vJ"), Seal::Broken(_)));
        for cut in 0..b.len() {
            assert!(
                matches!(check_seal(&b[..cut], id), Seal::Broken(_)),
                "cut {cut}"
            );
        }
        // Zeros where a block did not reach the disk, anywhere.
        for at in [0, 10, b.len() / 2, b.len() - 30] {
            let mut z = b.clone();
            for x in z.iter_mut().skip(at).take(8) {
                *x = 0;
            }
            assert!(
                matches!(check_seal(&z, id), Seal::Broken(_)),
                "zeros at {at}"
            );
        }
        let zeros = vec![0u8; b.len()];
        assert!(matches!(check_seal(&zeros, id), Seal::Broken(_)));
        assert!(matches!(check_seal(b"", id), Seal::Broken(_)));
    }

    /// Found by fuzzing (fuzz/fuzz_targets/spoolfile.rs): control
    /// characters in a text value were read as they were and written as
    /// spaces, so a file read and written again changed.
    #[test]
    fn control_characters_read_as_written() {
        let input = b"MQ:1\nMF:<>\nPR:e\0\0r\nID:a\x01b\nTR:5\nDS:3\n\
                      RT:P\t|cmd\x07\t\t0\t0\terr\x1b\nEN:\n";
        let hf = HeaderFile::decode(input).unwrap();
        assert_eq!(hf.env.protocol, "e  r");
        assert_eq!(hf.env.ident, "a b");
        assert_eq!(hf.env.rcpts[0].target, Target::Pipe("cmd ".into()));
        assert_eq!(hf.env.rcpts[0].error, "err ");
        assert_eq!(HeaderFile::decode(&hf.encode()), Ok(hf));
    }
}
