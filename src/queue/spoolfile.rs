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
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl HeaderFile {
    pub fn encode(&self) -> Vec<u8> {
        let e = &self.env;
        let mut out = String::with_capacity(256);
        out.push_str("MQ:");
        out.push_str(FORMAT_VERSION);
        out.push('\n');
        out.push_str(&format!("MF:<{}>\n", e.sender));
        if let Some(n) = &e.full_name {
            out.push_str(&format!("FN:{}\n", clean(n)));
        }
        out.push_str(&format!("PR:{}\n", clean(&e.protocol)));
        out.push_str(&format!("ID:{}\n", clean(&e.ident)));
        if let Some(h) = &e.helo {
            out.push_str(&format!("HE:{}\n", clean(h)));
        }
        if let Some(t) = &e.tls {
            out.push_str(&format!("TL:{}\n", clean(t)));
        }
        out.push_str(&format!("TR:{}\nDS:{}\n", e.received, e.body_size));
        if e.warned {
            out.push_str("WA:1\n");
        }
        for r in &e.rcpts {
            let orig = r
                .orig
                .as_ref()
                .map(|a| format!("<{a}>"))
                .unwrap_or_default();
            let target = match &r.target {
                Target::Addr(a) => format!("<{a}>"),
                Target::Pipe(c) => format!("|{}", clean(c)),
            };
            out.push_str(&format!(
                "RT:{}\t{}\t{}\t{}\t{}\t{}\n",
                r.state.tag(),
                target,
                orig,
                r.tries,
                r.next_try,
                clean(&r.error)
            ));
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
        let mut lines = data.split(|&b| b == b'\n').enumerate().peekable();
        let mut sender = None;
        let mut full_name = None;
        let mut protocol = None;
        let mut ident = None;
        let mut helo = None;
        let mut received = None;
        let mut body_size = None;
        let mut warned = false;
        let mut tls = None;
        let mut rcpts = Vec::new();
        let mut headers: Vec<Header> = Vec::new();
        let mut ended = false;
        match lines.next() {
            Some((_, l)) if l == format!("MQ:{FORMAT_VERSION}").as_bytes() => {}
            _ => return Err("not a masqmail header file (no MQ:1 first line)".into()),
        }
        while let Some((n, line)) = lines.next() {
            let lineno = n + 1;
            if ended {
                if line.is_empty() && lines.peek().is_none() {
                    break;
                }
                return Err(format!("line {lineno}: data after the end marker"));
            }
            if let Some(b' ' | b'\t') = line.first() {
                match headers.last_mut() {
                    Some(h) => h.push_continuation(line),
                    None => return Err(format!("line {lineno}: continuation without a header")),
                }
                continue;
            }
            if line.len() < 3 || line[2] != b':' {
                return Err(format!("line {lineno}: no tag"));
            }
            let (tag, val) = (&line[..2], &line[3..]);
            if tag == b"HD" {
                let h = Header::from_line(val)
                    .ok_or_else(|| format!("line {lineno}: malformed header field"))?;
                headers.push(h);
                continue;
            }
            let val = std::str::from_utf8(val)
                .map_err(|_| format!("line {lineno}: envelope line is not UTF-8"))?;
            let bad = |what: &str| format!("line {lineno}: bad {what}");
            match tag {
                b"MF" => {
                    let inner = val
                        .strip_prefix('<')
                        .and_then(|v| v.strip_suffix('>'))
                        .ok_or_else(|| bad("sender"))?;
                    sender = Some(if inner.is_empty() {
                        Sender::Null
                    } else {
                        Sender::Addr(Address::parse(inner, None).map_err(|_| bad("sender"))?)
                    });
                }
                // Text values are read the way encode writes them (no
                // control characters), so a file read and written again
                // says the same.
                b"FN" => full_name = Some(clean(val)),
                b"PR" => protocol = Some(clean(val)),
                b"ID" => ident = Some(clean(val)),
                b"HE" => helo = Some(clean(val)),
                b"TL" => tls = Some(clean(val)),
                b"TR" => received = Some(val.parse::<u64>().map_err(|_| bad("time"))?),
                b"DS" => body_size = Some(val.parse::<u64>().map_err(|_| bad("size"))?),
                b"WA" => warned = val == "1",
                b"RT" => rcpts.push(decode_rcpt(val).ok_or_else(|| bad("recipient"))?),
                b"EN" => ended = true,
                _ => return Err(format!("line {lineno}: unknown tag")),
            }
        }
        if !ended {
            return Err("truncated: no end marker".into());
        }
        let missing = |what: &str| format!("missing {what}");
        Ok(HeaderFile {
            env: Envelope {
                sender: sender.ok_or_else(|| missing("sender (MF:)"))?,
                full_name,
                protocol: protocol.ok_or_else(|| missing("protocol (PR:)"))?,
                ident: ident.unwrap_or_default(),
                helo,
                received: received.ok_or_else(|| missing("time (TR:)"))?,
                body_size: body_size.ok_or_else(|| missing("size (DS:)"))?,
                rcpts,
                warned,
                tls,
            },
            headers,
        })
    }
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
