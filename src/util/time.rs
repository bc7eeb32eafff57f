//! Local time for Date: and Received: headers and queue listings.
//!
//! The zone comes from `TZ`, else OpenWrt's `/etc/TZ` (a POSIX TZ string,
//! which a statically linked upstream musl does not read by itself), else
//! UTC. [`init`] copies `/etc/TZ` into the environment once, at start-up,
//! before any thread exists; the C library does the rest.

use std::time::{SystemTime, UNIX_EPOCH};

extern "C" {
    fn tzset();
}

/// Call once at start-up, while the process is single-threaded.
pub fn init() {
    if std::env::var_os("TZ").is_none() {
        if let Ok(tz) = std::fs::read_to_string("/etc/TZ") {
            let tz = tz.trim();
            if !tz.is_empty() && tz.len() < 256 && !tz.contains('\0') {
                std::env::set_var("TZ", tz);
            }
        }
    }
    // SAFETY: tzset only reads the environment; no other thread runs yet.
    unsafe { tzset() };
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

// On 32-bit musl (MIPS and ARM routers) the libc crate still binds the
// old `localtime_r` with a 32-bit time_t, which ends in 2038. musl 1.2
// exports the 64-bit one as `__localtime64_r` (its headers redirect to it);
// the struct tm is the same.
#[cfg(all(target_env = "musl", target_pointer_width = "32"))]
extern "C" {
    fn __localtime64_r(t: *const i64, tm: *mut libc::tm) -> *mut libc::tm;
}

/// localtime_r with a 64-bit time everywhere.
fn localtime(secs: u64, tm: &mut libc::tm) -> bool {
    let t = secs.min(i64::MAX as u64) as i64;
    #[cfg(all(target_env = "musl", target_pointer_width = "32"))]
    // SAFETY: both pointers are valid for the duration of the call.
    let r = unsafe { __localtime64_r(&t, tm) };
    #[cfg(not(all(target_env = "musl", target_pointer_width = "32")))]
    // SAFETY: both pointers are valid for the duration of the call; time_t
    // is 64 bits on these targets.
    #[allow(deprecated)]
    let r = unsafe { libc::localtime_r(&(t as libc::time_t), tm) };
    !r.is_null()
}

pub fn local(secs: u64) -> Tm {
    // SAFETY: an all-zero tm is a valid value; localtime_r only writes it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = localtime(secs, &mut tm);
    if !ok {
        return utc(secs);
    }
    Tm {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        min: tm.tm_min as u32,
        sec: tm.tm_sec as u32,
        weekday: tm.tm_wday as u32,
        offset: tm.tm_gmtoff as i64,
    }
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
