//! Local time for Date: and Received: headers and queue listings.
//!
//! The zone comes from `TZ`, else OpenWrt's `/etc/TZ` (a POSIX TZ string),
//! else `/etc/localtime` (a compiled zone file, TZif), else UTC. `TZ` is a
//! POSIX TZ string (`CET-1CEST,M3.5.0,M10.5.0/3`) or, starting with `:` or
//! holding a `/`, a zone file: a path, or a name under
//! /usr/share/zoneinfo. The zone is read once, at start-up ([`init`]), as
//! the C library would; this code replaces the C library's time zone code
//! (7 KB of MIPS code in musl, and the `setenv` that /etc/TZ needed).

use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The zone's offset from UTC over time.
#[derive(Debug, Default, PartialEq)]
struct Zone {
    /// TZif transitions, ascending: from this UTC time on, this offset
    /// (seconds east of UTC).
    trans: Vec<(i64, i32)>,
    /// The offset before the first transition.
    first: i32,
    /// The POSIX rule: for every time when there are no transitions, and
    /// after the last one.
    rule: Option<Rule>,
}

/// A POSIX TZ rule: standard offset, and summer time between two dates.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rule {
    std: i32,
    /// Summer time: its offset, and when it starts (in standard local time)
    /// and ends (in summer local time): a date and seconds into that day.
    dst: Option<(i32, Date, i32, Date, i32)>,
}

/// A rule's day of the year.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Date {
    /// `Jn`: 1 to 365, February 29 never counted.
    Julian(i32),
    /// `n`: 0 to 365.
    Day(i32),
    /// `Mm.w.d`: month, week 1-5 (5 = the last), weekday (0 = Sunday).
    Month(i32, i32, i32),
}

/// The zone, read once and kept for the life of the process.
static ZONE: AtomicPtr<Zone> = AtomicPtr::new(std::ptr::null_mut());

/// Read the zone now (at start-up, before privileges are dropped or
/// the root changes); later calls of [`local`] use it.
pub fn init() {
    zone();
}

fn zone() -> &'static Zone {
    let mut z = ZONE.load(Ordering::Acquire);
    if z.is_null() {
        // Two threads may both read it; each leaks one small Zone at most.
        z = Box::into_raw(Box::new(load()));
        ZONE.store(z, Ordering::Release);
    }
    // SAFETY: a leaked Box, never freed.
    unsafe { &*z }
}

fn load() -> Zone {
    let etc;
    let spec = match std::env::var_os("TZ") {
        Some(tz) => tz.into_string().unwrap_or_default(),
        None => {
            etc = std::fs::read_to_string("/etc/TZ").unwrap_or_default();
            if etc.trim().is_empty() {
                ":/etc/localtime".into()
            } else {
                etc.trim().into()
            }
        }
    };
    from_spec(&spec).unwrap_or_default()
}

/// A `TZ` value: a POSIX rule, or a zone file's path or name.
fn from_spec(tz: &str) -> Option<Zone> {
    let name = tz.strip_prefix(':').unwrap_or(tz);
    // A '/' after a ',' is a rule's time of day.
    let rule = name.split(',').next().unwrap_or_default();
    if name.len() == tz.len() && !rule.contains('/') {
        return Some(Zone {
            rule: Some(posix(tz.as_bytes())?),
            ..Zone::default()
        });
    }
    if name.contains("..") {
        return None;
    }
    let path = if name.starts_with('/') {
        name.into()
    } else {
        format!("/usr/share/zoneinfo/{name}")
    };
    // Zone files are a few KiB.
    let b = std::fs::read(path).ok()?;
    (b.len() <= 256 * 1024).then_some(())?;
    tzif(&b)
}

/// A compiled zone file (RFC 8536): version 1 data, or the 64-bit data
/// and the POSIX rule at the end of versions 2 and later.
fn tzif(b: &[u8]) -> Option<Zone> {
    let be32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt of the
    // header at `at`, and the length of the data block after it with
    // `w`-byte times.
    let block = |at: usize, w: usize| -> Option<([usize; 6], usize)> {
        (b.get(at..at + 4)? == b"TZif").then_some(())?;
        let mut c = [0; 6];
        for (i, n) in c.iter_mut().enumerate() {
            *n = be32(at + 20 + 4 * i)? as usize;
            // Real zones have a few hundred transitions at most.
            (*n <= 1 << 16).then_some(())?;
        }
        let len = c[3] * (w + 1) + c[4] * 6 + c[5] + c[2] * (w + 4) + c[1] + c[0];
        Some((c, len))
    };
    let (mut c, mut len) = block(0, 4)?;
    let (mut at, mut w) = (44, 4);
    if *b.get(4)? >= b'2' {
        at += len + 44;
        w = 8;
        (c, len) = block(at - 44, 8)?;
    }
    // The whole data block must be there.
    let foot = b.get(at + len..)?;
    let types = at + c[3] * (w + 1);
    let offset = |t: usize| -> Option<i32> {
        (t < c[4]).then_some(())?;
        Some(be32(types + 6 * t)? as i32)
    };
    let mut z = Zone {
        first: offset(0)?,
        ..Zone::default()
    };
    for i in 0..c[3] {
        let p = at + i * w;
        let mut t = i64::from(be32(p)? as i32);
        if w == 8 {
            t = t << 32 | i64::from(be32(p + 4)?);
        }
        z.trans
            .push((t, offset(usize::from(b[at + c[3] * w + i]))?));
    }
    // The footer: "\n" rule "\n" (empty when there is none).
    if let [b'\n', rule @ .., b'\n'] = foot {
        z.rule = posix(rule);
    }
    Some(z)
}

/// A POSIX TZ string: `std offset [dst [offset] [,start[/time],end[/time]]]`.
/// Offsets are hours west of UTC (`CET-1` is one hour east); no offset
/// at all ("UTC") is UTC. Summer time without dates follows the US rule,
/// as the C libraries do.
fn posix(s: &[u8]) -> Option<Rule> {
    let mut p = Cursor { s, i: 0 };
    p.name()?;
    let std = if b"+-0123456789".contains(&p.peek()) {
        -p.hms()?
    } else {
        0
    };
    if p.i == s.len() {
        return Some(Rule { std, dst: None });
    }
    p.name()?;
    let dst = if p.i < s.len() && p.peek() != b',' {
        -p.hms()?
    } else {
        std + 3600
    };
    let dates = if p.i == s.len() {
        (Date::Month(3, 2, 0), 7200, Date::Month(11, 1, 0), 7200)
    } else {
        let (a, at) = p.change()?;
        let (b, bt) = p.change()?;
        (a, at, b, bt)
    };
    (p.i == s.len()).then_some(Rule {
        std,
        dst: Some((dst, dates.0, dates.1, dates.2, dates.3)),
    })
}

/// Reads a POSIX TZ string.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    /// The next byte, 0 at the end.
    fn peek(&self) -> u8 {
        self.s.get(self.i).copied().unwrap_or(0)
    }

    fn eat(&mut self, c: u8) -> bool {
        let ok = self.peek() == c;
        self.i += usize::from(ok);
        ok
    }

    /// A zone's name: letters, or anything between `<` and `>`.
    fn name(&mut self) -> Option<()> {
        let start = self.i;
        if self.eat(b'<') {
            while !self.eat(b'>') {
                (self.i < self.s.len()).then_some(())?;
                self.i += 1;
            }
        }
        while self.peek().is_ascii_alphabetic() {
            self.i += 1;
        }
        (self.i > start).then_some(())
    }

    /// A number up to 9999.
    fn num(&mut self) -> Option<i32> {
        let start = self.i;
        let mut n = 0;
        while self.peek().is_ascii_digit() && n < 10_000 {
            n = n * 10 + i32::from(self.peek() - b'0');
            self.i += 1;
        }
        (self.i > start && n < 10_000).then_some(n)
    }

    /// `[+-]hh[:mm[:ss]]` in seconds.
    fn hms(&mut self) -> Option<i32> {
        let minus = self.eat(b'-');
        if !minus {
            self.eat(b'+');
        }
        let mut t = self.num()? * 3600;
        if self.eat(b':') {
            t += self.num()? * 60;
            if self.eat(b':') {
                t += self.num()?;
            }
        }
        Some(if minus { -t } else { t })
    }

    /// `,date[/time]`: `Jn`, `n` or `Mm.w.d`.
    fn change(&mut self) -> Option<(Date, i32)> {
        self.eat(b',').then_some(())?;
        let d = if self.eat(b'J') {
            Date::Julian(self.num()?.clamp(1, 365))
        } else if self.eat(b'M') {
            let m = self.num()?;
            self.eat(b'.').then_some(())?;
            let w = self.num()?;
            self.eat(b'.').then_some(())?;
            let d = self.num()?;
            ((1..=12).contains(&m) && (1..=5).contains(&w) && d <= 6).then_some(())?;
            Date::Month(m, w, d)
        } else {
            Date::Day(self.num()?.min(365))
        };
        let t = if self.eat(b'/') { self.hms()? } else { 7200 };
        Some((d, t))
    }
}

/// Days since 1970-01-01 of a date (proleptic Gregorian, years 1 to
/// 9999; H. Hinnant's days-from-civil).
fn days_from_civil(y: i32, m: i32, d: i32) -> i32 {
    let y = y - i32::from(m <= 2);
    let era = y / 400;
    let yoe = y % 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// The first second of a rule's date in year `y`, local midnight taken
/// as UTC (the caller adds the time of day and the offset).
fn date_secs(y: i32, d: Date) -> i64 {
    let jan1 = days_from_civil(y, 1, 1);
    let leap = days_from_civil(y, 3, 1) - jan1 == 60;
    let day = match d {
        Date::Julian(n) => jan1 + n - 1 + i32::from(leap && n >= 60),
        Date::Day(n) => jan1 + n,
        Date::Month(m, w, wd) => {
            let first = days_from_civil(y, m, 1);
            let next = days_from_civil(y + m / 12, m % 12 + 1, 1);
            // 1970-01-01 was a Thursday (4).
            let mut day = first + (wd - (first + 4) % 7 + 7) % 7 + 7 * (w - 1);
            while day >= next {
                day -= 7;
            }
            day
        }
    };
    i64::from(day) * 86400
}

impl Rule {
    fn offset(&self, t: i64) -> i32 {
        let Some((dst, a, at, b, bt)) = self.dst else {
            return self.std;
        };
        let y = utc((t + i64::from(self.std)).max(0) as u64).year;
        let start = date_secs(y, a) + i64::from(at - self.std);
        let end = date_secs(y, b) + i64::from(bt - dst);
        let summer = if start < end {
            start <= t && t < end
        } else {
            !(end <= t && t < start)
        };
        if summer {
            dst
        } else {
            self.std
        }
    }
}

impl Zone {
    /// Seconds east of UTC at UTC time `t`.
    fn offset(&self, t: i64) -> i32 {
        let n = self.trans.partition_point(|&(at, _)| at <= t);
        match (n, &self.rule) {
            (_, Some(r)) if n == self.trans.len() => r.offset(t),
            (0, _) => self.first,
            _ => self.trans[n - 1].1,
        }
    }
}

/// Whole milliseconds of `d`, saturating: `as_millis` without its
/// 128-bit arithmetic.
pub fn millis(d: std::time::Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()))
}

/// Time left until `deadline` (zero once it has passed); one copy of the
/// clock arithmetic for every wait with a deadline.
#[inline(never)]
pub fn left(deadline: std::time::Instant) -> std::time::Duration {
    deadline.saturating_duration_since(std::time::Instant::now())
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Broken-down local time.
pub struct Tm {
    pub year: i32,
    pub month: u32, // 1..=12
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    pub weekday: u32, // 0 = Sunday
    /// Seconds east of UTC.
    pub offset: i64,
}

/// Local time at `secs` (since the epoch, UTC).
pub fn local(secs: u64) -> Tm {
    // Up to the end of year 9999, where dates end.
    let t = secs.min(253_402_300_799) as i64;
    let off = zone().offset(t);
    let mut tm = utc((t + i64::from(off)).max(0) as u64);
    tm.offset = i64::from(off);
    tm
}

/// UTC without the C library (civil-from-days, H. Hinnant's algorithm).
pub fn utc(secs: u64) -> Tm {
    // 64-bit only as far as the era: the rest fits 32 bits (cheaper on
    // a 32-bit CPU), with the same results.
    let days = secs / 86400;
    let rem = (secs % 86400) as u32;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = (z % 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (u64::from(yoe) + era * 400 + u64::from(month <= 2)) as i32;
    Tm {
        year,
        month,
        day,
        hour: rem / 3600,
        min: rem / 60 % 60,
        sec: rem % 60,
        weekday: ((days + 4) % 7) as u32,
        offset: 0,
    }
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// RFC 5322 §3.3 date-time: `Wed, 25 Nov 2026 20:47:39 +0100`.
pub fn rfc5322(tm: &Tm) -> String {
    let sign = if tm.offset < 0 { '-' } else { '+' };
    let off = tm.offset.unsigned_abs();
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} {}{:02}{:02}",
        DAYS[(tm.weekday % 7) as usize],
        tm.day,
        MONTHS[((tm.month + 11) % 12) as usize],
        tm.year,
        tm.hour,
        tm.min,
        tm.sec,
        sign,
        off / 3600,
        off / 60 % 60
    )
}

/// `2026-11-25 20:47:39` for listings.
pub fn short(tm: &Tm) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.year, tm.month, tm.day, tm.hour, tm.min, tm.sec
    )
}

/// RFC 3164 timestamp: `Nov 25 20:47:39`.
pub fn syslog_stamp(tm: &Tm) -> String {
    format!(
        "{} {:2} {:02}:{:02}:{:02}",
        MONTHS[((tm.month + 11) % 12) as usize],
        tm.day,
        tm.hour,
        tm.min,
        tm.sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(rfc5322(&utc(0)), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322(&utc(1_764_103_659)),
            "Tue, 25 Nov 2025 20:47:39 +0000"
        );
        assert_eq!(
            rfc5322(&utc(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
        assert_eq!(short(&utc(1_764_103_659)), "2025-11-25 20:47:39");
        assert_eq!(
            syslog_stamp(&utc(1_764_103_659 - 20 * 86400)),
            "Nov  5 20:47:39"
        );
    }

    /// Seconds since the epoch of a UTC date and time.
    fn at(y: i32, mo: i32, d: i32, h: i64, mi: i64) -> i64 {
        i64::from(days_from_civil(y, mo, d)) * 86400 + h * 3600 + mi * 60
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), 10_957);
        assert_eq!(days_from_civil(2024, 3, 1), 19_783);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        // J60 is March 1 in every year; day 59 is Feb 29 in a leap year.
        assert_eq!(date_secs(2024, Date::Julian(60)), at(2024, 3, 1, 0, 0));
        assert_eq!(date_secs(2025, Date::Julian(60)), at(2025, 3, 1, 0, 0));
        assert_eq!(date_secs(2024, Date::Day(59)), at(2024, 2, 29, 0, 0));
        // The last Sunday of March 2026 is the 29th, the first of
        // November the 1st, the second of March the 8th.
        assert_eq!(date_secs(2026, Date::Month(3, 5, 0)), at(2026, 3, 29, 0, 0));
        assert_eq!(
            date_secs(2026, Date::Month(11, 1, 0)),
            at(2026, 11, 1, 0, 0)
        );
        assert_eq!(date_secs(2026, Date::Month(3, 2, 0)), at(2026, 3, 8, 0, 0));
        assert_eq!(
            date_secs(2026, Date::Month(12, 5, 4)),
            at(2026, 12, 31, 0, 0)
        );
    }

    #[test]
    fn posix_rules() {
        let cet = posix(b"CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let want = (
            7200,
            Date::Month(3, 5, 0),
            7200,
            Date::Month(10, 5, 0),
            10800,
        );
        assert_eq!(
            cet,
            Rule {
                std: 3600,
                dst: Some(want)
            }
        );
        // Central Europe changes at 01:00 UTC both ways.
        for (t, off) in [
            (at(2026, 1, 15, 12, 0), 3600),
            (at(2026, 3, 29, 0, 59), 3600),
            (at(2026, 3, 29, 1, 0), 7200),
            (at(2026, 10, 25, 0, 59), 7200),
            (at(2026, 10, 25, 1, 0), 3600),
        ] {
            assert_eq!(cet.offset(t), off, "{t}");
        }
        // Summer time without dates: the US rule (second Sunday in March
        // to the first in November, at 02:00 local).
        let ny = posix(b"EST5EDT").unwrap();
        assert_eq!(ny.offset(at(2026, 3, 8, 6, 59)), -5 * 3600);
        assert_eq!(ny.offset(at(2026, 3, 8, 7, 0)), -4 * 3600);
        assert_eq!(ny.offset(at(2026, 11, 1, 5, 59)), -4 * 3600);
        assert_eq!(ny.offset(at(2026, 11, 1, 6, 0)), -5 * 3600);
        // Southern hemisphere: summer spans the new year.
        let syd = posix(b"AEST-10AEDT,M10.1.0,M4.1.0/3").unwrap();
        assert_eq!(syd.offset(at(2026, 1, 10, 0, 0)), 11 * 3600);
        assert_eq!(syd.offset(at(2026, 7, 10, 0, 0)), 10 * 3600);
        for (tz, off) in [
            ("UTC", 0),
            ("UTC0", 0),
            ("<+0530>-5:30", 19800),
            ("<-03>3", -10800),
            ("XYZ+1:02:03", -3723),
        ] {
            assert_eq!(
                posix(tz.as_bytes()),
                Some(Rule {
                    std: off,
                    dst: None
                }),
                "{tz}"
            );
        }
        let julian = posix(b"A0B,J60/0,J300/-1").unwrap();
        assert_eq!(
            julian.dst,
            Some((3600, Date::Julian(60), 0, Date::Julian(300), -3600))
        );
        for bad in [
            "",
            "5",
            "CET-1CEST,M13.1.0,M10.5.0",
            "CET-1CEST,M3.5.0",
            "CET-1CEST,M3.6.0,M10.5.0",
            "CET-1CEST,M3.5.7,M10.5.0",
            "CET-1CEST,M3.5.0,M10.5.0/x",
            "CET-99999",
            "<+03",
            "CET-1 junk",
        ] {
            assert_eq!(posix(bad.as_bytes()), None, "{bad:?}");
        }
    }

    /// A version 2 zone file: an empty version 1 block (as `zic -b slim`
    /// writes), 64-bit transitions, the types and the footer.
    fn tzif2(trans: &[(i64, u8)], types: &[i32], footer: &str) -> Vec<u8> {
        let head = |n: usize, t: usize| {
            let mut h = b"TZif2".to_vec();
            h.extend([0; 15]);
            for c in [0, 0, 0, n, t, 1] {
                h.extend((c as u32).to_be_bytes());
            }
            h
        };
        let mut b = head(0, 0);
        b.push(0); // a v1 block with no types still has its one char
        b.extend(head(trans.len(), types.len()));
        for (t, _) in trans {
            b.extend(t.to_be_bytes());
        }
        b.extend(trans.iter().map(|(_, i)| *i));
        for (i, off) in types.iter().enumerate() {
            b.extend(off.to_be_bytes());
            b.extend([u8::from(i > 0), 0]);
        }
        b.push(0);
        b.extend(format!("\n{footer}\n").bytes());
        b
    }

    #[test]
    fn zone_files() {
        // A version 1 block with counts of zero but one type is not valid:
        // the v1 block above has typecnt 0, so it carries no types.
        let f = tzif2(&[(1000, 1), (2000, 0)], &[3600, 7200], "<+05>-5");
        let z = tzif(&f).unwrap();
        assert_eq!(z.first, 3600);
        assert_eq!(z.trans, vec![(1000, 7200), (2000, 3600)]);
        assert_eq!(z.offset(500), 3600);
        assert_eq!(z.offset(1000), 7200);
        assert_eq!(z.offset(1999), 7200);
        assert_eq!(z.offset(2000), 18000, "the footer rules after the last");
        let plain = tzif(&tzif2(&[(1000, 1)], &[-3600, 0], "")).unwrap();
        assert_eq!((plain.offset(0), plain.offset(5000)), (-3600, 0));
        // Version 1 only: 32-bit times.
        let mut v1 = b"TZif\0".to_vec();
        v1.extend([0; 15]);
        for c in [0u32, 0, 0, 1, 2, 4] {
            v1.extend(c.to_be_bytes());
        }
        v1.extend((-100i32).to_be_bytes());
        v1.push(1);
        v1.extend(0i32.to_be_bytes());
        v1.extend([0, 0]);
        v1.extend(3600i32.to_be_bytes());
        v1.extend([1, 0]);
        v1.extend(b"X\0Y\0");
        let z = tzif(&v1).unwrap();
        assert_eq!((z.offset(-101), z.offset(-100), z.rule), (0, 3600, None));
        // Cut short anywhere, or with a type index out of range: no zone,
        // no panic.
        let data_end = f.len() - "\n<+05>-5\n".len();
        for n in 0..data_end {
            assert_eq!(tzif(&f[..n]), None, "{n}");
        }
        // A footer cut short is a zone without its rule, or none.
        for n in data_end..f.len() {
            assert_ne!(tzif(&f[..n]).and_then(|z| z.rule), posix(b"<+05>-5"), "{n}");
        }
        assert_eq!(tzif(&tzif2(&[(1000, 2)], &[0, 3600], "")), None);
        assert_eq!(
            tzif(b"not a zone file at all, but long enough to look at"),
            None
        );
    }

    #[test]
    fn specs() {
        let z = from_spec("<+0530>-5:30").unwrap();
        assert_eq!(z.offset(0), 19800);
        assert_eq!(from_spec(":no/such/zone"), None);
        assert_eq!(from_spec("../../etc/passwd"), None);
        assert_eq!(from_spec("/nonexistent/zone"), None);
        assert_eq!(Zone::default().offset(0), 0);
    }

    #[test]
    fn local_time_after_2038() {
        // 2100-01-01 00:00:00 UTC: a 32-bit time_t would wrap.
        let tm = local(4_102_444_800);
        assert!(
            tm.year == 2100 || (tm.year == 2099 && tm.month == 12),
            "{}",
            tm.year
        );
    }

    #[test]
    fn negative_offset_format() {
        let mut tm = utc(0);
        tm.offset = -(3 * 3600 + 30 * 60);
        assert!(rfc5322(&tm).ends_with("-0330"));
    }
}
