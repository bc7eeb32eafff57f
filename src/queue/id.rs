//! Message IDs: unique across processes and sortable by time.
//!
//! An ID is `SSSSSSUUUU-PPPP`: six base-62 digits of the seconds since the
//! epoch, four of the microseconds, and four of the process ID. The digits
//! `0-9A-Za-z` are in ASCII order, so IDs sort by arrival time as strings.
//! Two processes never share a PID at the same microsecond; within one
//! process the queue-in code creates `pool/ID` with `O_EXCL` and moves on to
//! the next microsecond if it exists.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const ID_LEN: usize = 15;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgId([u8; ID_LEN]);

fn put_base62(out: &mut [u8], mut v: u64) {
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v % 62) as usize];
        v /= 62;
    }
}

fn get_base62(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'A'..=b'Z' => d - b'A' + 10,
            _ => d.wrapping_sub(b'a').wrapping_add(36),
        };
        acc * 62 + u64::from(v)
    })
}

impl MsgId {
    /// An ID for `secs.micros` in process `pid`.
    pub fn from_parts(secs: u64, micros: u32, pid: u32) -> MsgId {
        let mut b = [b'0'; ID_LEN];
        put_base62(&mut b[0..6], secs);
        put_base62(&mut b[6..10], u64::from(micros % 1_000_000));
        b[10] = b'-';
        put_base62(&mut b[11..15], u64::from(pid));
        MsgId(b)
    }

    /// A fresh ID for this process, now.
    pub fn generate() -> MsgId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        MsgId::from_parts(now.as_secs(), now.subsec_micros(), std::process::id())
    }

    /// The process that made the ID (its receiver).
    pub fn pid(&self) -> u32 {
        get_base62(&self.0[11..15]) as u32
    }

    /// The next ID of the same process: one microsecond later.
    pub fn successor(&self) -> MsgId {
        let secs = get_base62(&self.0[0..6]);
        let micros = get_base62(&self.0[6..10]) + 1;
        let pid = get_base62(&self.0[11..15]);
        let (secs, micros) = if micros >= 1_000_000 {
            (secs + 1, 0)
        } else {
            (secs, micros)
        };
        MsgId::from_parts(secs, micros as u32, pid as u32)
    }

    /// Parse an ID as found in a file name or on the command line; anything
    /// else (and so any path trick) is refused.
    pub fn parse(s: &str) -> Option<MsgId> {
        let id: [u8; ID_LEN] = s.as_bytes().try_into().ok()?;
        for (i, &c) in id.iter().enumerate() {
            let ok = if i == 10 {
                c == b'-'
            } else {
                c.is_ascii_alphanumeric()
            };
            if !ok {
                return None;
            }
        }
        Some(MsgId(id))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII alphanumerics and '-' ever get in.
        std::str::from_utf8(&self.0).unwrap_or("invalid-id")
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_and_round_trips() {
        let a = MsgId::from_parts(1_700_000_000, 999_999, 4_194_303);
        let b = MsgId::from_parts(1_700_000_001, 0, 1);
        assert!(a.as_str() < b.as_str());
        assert_eq!(
            a.successor(),
            MsgId::from_parts(1_700_000_001, 0, 4_194_303)
        );
        assert_eq!(MsgId::parse(a.as_str()), Some(a));
        assert_eq!(a.as_str().len(), ID_LEN);
    }

    #[test]
    fn refuses_foreign_names() {
        for s in [
            "",
            "../etc/passwd",
            "abcdefghij-klm",
            "abcdefghij_klmn",
            "abcdefghij-klmn.new",
            "abcdefghijklmnop",
        ] {
            assert_eq!(MsgId::parse(s), None, "{s}");
        }
        assert!(MsgId::parse("0ABCDEFghi-0001").is_some());
    }
}
