//! value — the parsers and printers of option values, one per kind.
//!
//! Every parser takes the text of one UCI value and returns the typed value
//! or a [`Bad`]: a message and a hint that shows the expected form. Every
//! printer writes the form its parser reads back, so `config show` output
//! loads to the same configuration. Nothing here panics on any input.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::schema::Ty;
use super::{AddressMap, HostPort, IpNet};

/// Why a value was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Why {
    pub msg: String,
    pub hint: Option<String>,
}

/// A refusal, boxed: the parsers' results stay small.
pub type Bad = Box<Why>;

/// A refusal with a fixed message and hint.
#[inline(never)]
pub fn why(msg: &str, hint: &str) -> Bad {
    Box::new(Why {
        msg: msg.to_string(),
        hint: Some(hint.to_string()),
    })
}

/// Quote a value for an error message: short, on one line.
pub fn quote(s: &str) -> String {
    const MAX: usize = 60;
    let mut out = String::from("'");
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            // As `char::escape_default` writes them: `\t`, `\r`, `\n`, else
            // `\u{HEX}` (a control character is at most U+009F).
            match c {
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\n' => out.push_str("\\n"),
                _ => {
                    // At most U+009F: one byte.
                    let n = u32::from(c) as u8;
                    out.push_str("\\u{");
                    if n >= 16 {
                        out.push(char::from(crate::util::hex_digit(n >> 4)));
                    }
                    out.push(char::from(crate::util::hex_digit(n)));
                    out.push('}');
                }
            }
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// `'VALUE'WHAT`, with a hint: the one builder of "this value is wrong"
/// messages (`what` starts with its separator, " is not …" or ": …").
#[inline(never)]
fn bad(s: &str, what: &str, hint: &str) -> Bad {
    bad_hint(s, what, hint.to_string())
}

/// [`bad`] with a hint made for the value.
#[inline(never)]
fn bad_hint(s: &str, what: &str, hint: String) -> Bad {
    let mut msg = quote(s);
    msg.push_str(what);
    Box::new(Why {
        msg,
        hint: Some(hint),
    })
}

/// `str::trim`, once for all the parsers.
#[inline(never)]
pub fn trim(s: &str) -> &str {
    s.trim()
}

fn no_controls(s: &str, allow_tab: bool) -> Result<(), Bad> {
    if s.chars()
        .any(|c| c.is_control() && !(allow_tab && c == '\t'))
    {
        return Err(bad(
            s,
            " contains a control character or line break",
            "write the value on one line",
        ));
    }
    Ok(())
}

pub fn parse_bool(s: &str) -> Result<bool, Bad> {
    const WORDS: [&str; 8] = ["0", "no", "off", "false", "1", "yes", "on", "true"];
    let t = trim(s);
    match WORDS.iter().position(|w| w.eq_ignore_ascii_case(t)) {
        Some(i) => Ok(i >= 4),
        None => Err(bad(
            s,
            " is not a boolean",
            "use '1' or '0' (also yes/no, on/off, true/false)",
        )),
    }
}

pub fn format_bool(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

const SIZE_HINT: &str =
    "a number of bytes with an optional K, M or G suffix (powers of 1024), e.g. 10M";

/// `123`, `64K`, `10M`, `1G` (binary multiples; a trailing `B` is allowed).
pub fn parse_size(s: &str) -> Result<u64, Bad> {
    let t = trim(s);
    let t = t
        .strip_suffix('B')
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(t);
    match scaled(t, &[(b'k', 1 << 10), (b'm', 1 << 20), (b'g', 1 << 30)]) {
        Some(Some(n)) => Ok(n),
        Some(None) => Err(bad(s, " is too large", SIZE_HINT)),
        None => Err(bad(s, " is not a size", SIZE_HINT)),
    }
}

/// Digits with an optional unit letter (either case) from `units`: the
/// number times the unit's multiple. None for another form, Some(None)
/// when the product overflows.
#[inline(never)]
fn scaled(t: &str, units: &[(u8, u64)]) -> Option<Option<u64>> {
    let unit = t
        .as_bytes()
        .last()
        .and_then(|c| units.iter().find(|u| u.0 == c.to_ascii_lowercase()));
    let (digits, mult) = match unit {
        Some(&(_, m)) => (t.get(..t.len() - 1)?, m),
        None => (t, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(n.checked_mul(mult))
}

pub fn format_size(n: u64) -> String {
    with_unit(n, &[(1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")], "")
}

/// `n` in the largest of `units` that divides it, else with `plain`.
fn with_unit(n: u64, units: &[(u64, &str)], plain: &str) -> String {
    let (v, unit) = units
        .iter()
        .find(|&&(m, _)| n != 0 && n % m == 0)
        .map_or((n, plain), |&(m, u)| (n / m, u));
    let mut out = v.to_string();
    out.push_str(unit);
    out
}

/// A count: decimal digits only.
pub fn parse_count(s: &str, min: u64, max: u64) -> Result<u64, Bad> {
    let t = trim(s);
    let what = if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        " is not a number"
    } else {
        match t.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => return Ok(n),
            _ => " is out of range",
        }
    };
    Err(bad_hint(
        s,
        what,
        format!("a whole number from {min} to {max}"),
    ))
}

const DURATION_HINT: &str = "a number of seconds, or with a unit: 30s, 5m, 2h, 5d, 1w";

/// `300` (seconds), `30s`, `5m`, `2h`, `5d`, `1w`.
pub fn parse_duration(s: &str) -> Result<Duration, Bad> {
    const UNITS: [(u8, u64); 5] = [
        (b's', 1),
        (b'm', 60),
        (b'h', 3600),
        (b'd', 86400),
        (b'w', 7 * 86400),
    ];
    match scaled(trim(s), &UNITS) {
        // Ten years is far beyond any sensible mail timeout.
        Some(Some(secs)) if secs <= 10 * 365 * 86400 => Ok(Duration::from_secs(secs)),
        Some(_) => Err(bad(s, " is too long", "at most ten years")),
        None => Err(bad(s, " is not a duration", DURATION_HINT)),
    }
}

pub fn format_duration(d: Duration) -> String {
    let units = [(7 * 86400, "w"), (86400, "d"), (3600, "h"), (60, "m")];
    with_unit(d.as_secs(), &units, "s")
}

/// One of a fixed set of words, case-insensitive; returns its index.
pub fn parse_enum(s: &str, names: &'static [&'static str]) -> Result<usize, Bad> {
    let t = trim(s);
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(t)) {
        return Ok(i);
    }
    let mut hint = String::new();
    if let Some(h) = did_you_mean(&t.to_ascii_lowercase(), &mut names.iter().copied()) {
        hint = h;
        hint.push(' ');
    }
    hint.push_str("one of: ");
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            hint.push_str(", ");
        }
        hint.push_str(n);
    }
    Err(bad_hint(s, " is not a valid choice", hint))
}

const SOCKET_HINT: &str = "IP:PORT, e.g. 127.0.0.1:25, 192.168.1.1:587 or [::1]:25";

/// `ip:port`, `[v6]:port`. Port 0 is refused.
pub fn parse_socket(s: &str) -> Result<SocketAddr, Bad> {
    let t = trim(s);
    match t.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok(a),
        Ok(_) => Err(bad(s, ": port 0", SOCKET_HINT)),
        Err(_) => {
            let hint = match t.parse::<IpAddr>() {
                Ok(_) => {
                    let v6 = t.contains(':');
                    let mut h = String::from("add the port, e.g. ");
                    h.push_str(if v6 { "[" } else { "" });
                    h.push_str(t);
                    h.push_str(if v6 { "]:25" } else { ":25" });
                    h
                }
                Err(_) => SOCKET_HINT.into(),
            };
            Err(bad_hint(s, " is not an IP address with a port", hint))
        }
    }
}

const CIDR_HINT: &str = "ADDRESS/PREFIX, e.g. 192.168.1.0/24 or fd00::/8";

/// `192.168.1.0/24`, `::1/128`, or a bare address (one host). Host bits are
/// cleared: `192.168.1.7/24` is `192.168.1.0/24`.
pub fn parse_cidr(s: &str) -> Result<IpNet, Bad> {
    let t = trim(s);
    let bad = |m: &str| bad(s, m, CIDR_HINT);
    let (addr, prefix) = match t.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (t, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad(" is not an IP network"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(" has a bad prefix length"));
            }
            match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(bad(" has a prefix length out of range")),
            }
        }
    };
    Ok(IpNet::new(addr, prefix))
}

const HOST_HINT: &str =
    "HOST or HOST:PORT, e.g. smtp.example.net:587, 192.0.2.1 or [2001:db8::1]:25";

/// True for a DNS name we accept: labels of letters, digits, `-` and `_`.
pub fn valid_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address. The
/// port is `None` when not given.
pub fn parse_host_port(s: &str) -> Result<(String, Option<u16>), Bad> {
    let t = trim(s);
    let bad = |m: &str| bad(s, m, HOST_HINT);
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| bad(" has no closing ']'"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad(" has no IPv6 address inside [ ]"));
        }
        match after {
            "" => (h, None),
            a => match a.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err(bad(" has text after ']'")),
            },
        }
    } else if t.bytes().filter(|&b| b == b':').count() > 1 {
        // A bare IPv6 address has no port.
        if t.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad(" is not a host name or address"));
        }
        (t, None)
    } else {
        match t.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (t, None),
        }
    };
    if host.parse::<IpAddr>().is_err() && !valid_domain(host) {
        return Err(bad(" is not a host name or address"));
    }
    let port = match port {
        None => None,
        Some(p) => match (p.bytes().all(|b| b.is_ascii_digit()), p.parse::<u16>()) {
            (true, Ok(n)) if n != 0 => Some(n),
            _ => return Err(bad(" has a bad port")),
        },
    };
    Ok((host.to_string(), port))
}

pub fn format_host_port(hp: &HostPort) -> String {
    let (l, r) = if hp.host.contains(':') {
        ("[", "]")
    } else {
        ("", "")
    };
    format!("{l}{}{r}:{}", hp.host, hp.port)
}

/// A SHA-256 fingerprint: 64 hex digits, optionally in `AB:CD:…` pairs.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], Bad> {
    let mut out = [0u8; 32];
    // Hex digits seen; past 64 on a bad digit or too many.
    let mut n = 0usize;
    for b in trim(s).bytes() {
        if b == b':' {
            continue;
        }
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => {
                n = usize::MAX;
                break;
            }
        };
        match out.get_mut(n / 2) {
            Some(o) => *o = *o << 4 | d,
            None => {
                n = usize::MAX;
                break;
            }
        }
        n += 1;
    }
    if n != 64 {
        return Err(bad(
            s,
            " is not a SHA-256 fingerprint",
            "64 hex digits, with or without ':'; get it with \
             openssl x509 -noout -fingerprint -sha256 -in CERT",
        ));
    }
    Ok(out)
}

pub fn format_fingerprint(fp: &[u8; 32]) -> String {
    let mut out = String::with_capacity(64);
    for &b in fp {
        out.push(char::from(crate::util::hex_digit(b >> 4)));
        out.push(char::from(crate::util::hex_digit(b)));
    }
    out
}

/// `local: replacement`, as in masqmail's `map_*_addresses`.
pub fn parse_address_map(s: &str) -> Result<AddressMap, Bad> {
    no_controls(s, false)?;
    let bad = |m: &str| {
        bad(
            s,
            m,
            "LOCAL: REPLACEMENT, e.g. 'john: John Smith <john@example.org>'",
        )
    };
    let (local, to) = s.split_once(':').ok_or_else(|| bad(" has no ':'"))?;
    let (local, to) = (trim(local), trim(to));
    if local.is_empty() || local.contains(char::is_whitespace) {
        return Err(bad(" has no local part before ':'"));
    }
    if to.is_empty() {
        return Err(bad(" has no replacement after ':'"));
    }
    Ok(AddressMap {
        local: local.to_string(),
        to: to.to_string(),
    })
}

pub fn format_address_map(m: &AddressMap) -> String {
    format!("{}: {}", m.local, m.to)
}

/// A level 0..9, or a syslog severity name (error 3, warning 4, notice 5,
/// info 6, debug 7).
pub fn parse_log_level(s: &str) -> Result<u8, Bad> {
    const NAMES: [(&str, u8); 7] = [
        ("error", 3),
        ("err", 3),
        ("warning", 4),
        ("warn", 4),
        ("notice", 5),
        ("info", 6),
        ("debug", 7),
    ];
    let t = trim(s);
    if let Some((_, n)) = NAMES.iter().find(|(w, _)| w.eq_ignore_ascii_case(t)) {
        return Ok(*n);
    }
    match t.parse::<u8>() {
        Ok(n) if n <= 9 => Ok(n),
        _ => Err(bad(
            s,
            " is not a log level",
            "0 to 9, or error (3), warning (4), notice (5), info (6), debug (7)",
        )),
    }
}

/// The kinds kept as text: `Text` as written, the others trimmed; no
/// control characters (a tab allowed in `Text` and `Command`; a `Domain`
/// has its own rule); not empty; then the kind's own rule:
/// - `Word` (user names, patterns, alias names): no white space;
/// - `Address`: a word `USER@DOMAIN`;
/// - `Device`: a word that is a Linux interface name;
/// - `Path`: absolute;
/// - `Domain`: a valid host name.
///
/// One function for them all, so that the checks they share are made in
/// one place.
pub fn parse_str(ty: Ty, s: &str) -> Result<String, Bad> {
    let t = if matches!(ty, Ty::Text) { s } else { trim(s) };
    if !matches!(ty, Ty::Domain) {
        no_controls(t, matches!(ty, Ty::Text | Ty::Command))?;
        // An empty path is "not an absolute path", below.
        if t.is_empty() && !matches!(ty, Ty::Path) {
            return Err(if matches!(ty, Ty::Command) {
                why("empty command", "give a command, or delete the line")
            } else {
                why("empty value", "give a value, or delete the line")
            });
        }
    }
    let fail = match ty {
        Ty::Word | Ty::Address | Ty::Device if t.contains(char::is_whitespace) => Some((
            " contains white space",
            "one value per line: use a 'list' line for each",
        )),
        Ty::Address => match t.rsplit_once('@') {
            Some((l, d)) if !l.is_empty() && valid_domain(d) => None,
            _ => Some((" is not an address", "USER@DOMAIN, e.g. root@example.org")),
        },
        Ty::Device
            if t.len() > 15 || t.contains('/') || t.contains(':') || t == "." || t == ".." =>
        {
            Some((
                " is not an interface name",
                "a Linux device name of at most 15 characters, e.g. pppoe-wan",
            ))
        }
        Ty::Path if !t.starts_with('/') => Some((
            " is not an absolute path",
            "paths start with '/', e.g. /var/spool/masqmail",
        )),
        Ty::Domain if !valid_domain(t) => Some((
            " is not a valid host name",
            "letters, digits, '-' and '_' in dot-separated labels, e.g. mail.example.org",
        )),
        _ => None,
    };
    match fail {
        Some((what, hint)) => Err(bad(s, what, hint)),
        None => Ok(t.to_string()),
    }
}

/// Levenshtein distance, on bytes (names are ASCII).
pub fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    // One row of the table, updated in place: `diag` and `left` hold the
    // cells the update needs that it has already overwritten.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diag = i;
        let mut left = i + 1;
        for (cell, &cb) in row.iter_mut().skip(1).zip(b) {
            let up = *cell;
            left = (diag + usize::from(ca != cb)).min(up + 1).min(left + 1);
            diag = up;
            *cell = left;
        }
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
    }
    row.last().copied().unwrap_or(0)
}

/// The candidate nearest to `name`, if near enough to be a likely typo.
/// `did you mean 'NAME'?` with the nearest candidate, if one is near.
#[inline(never)]
pub fn did_you_mean(name: &str, candidates: &mut dyn Iterator<Item = &str>) -> Option<String> {
    nearest(name, candidates).map(|n| format!("did you mean '{n}'?"))
}

pub fn nearest<'a>(name: &str, candidates: &mut dyn Iterator<Item = &'a str>) -> Option<&'a str> {
    if name.is_empty() || name.len() > 64 {
        return None;
    }
    let limit = if name.len() <= 3 {
        1
    } else {
        (name.len() / 3).max(2)
    };
    // The first of the nearest within the limit.
    let (mut best, mut best_d) = (None, limit + 1);
    for c in candidates {
        let d = distance(name, c);
        if d < best_d {
            (best, best_d) = (Some(c), d);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_controls_as_escape_default() {
        for c in (0..0x100u32)
            .filter_map(char::from_u32)
            .filter(|c| c.is_control())
        {
            let want = format!("'a{}b'", c.escape_default());
            assert_eq!(quote(&format!("a{c}b")), want, "{c:?}");
        }
    }

    #[test]
    fn bools() {
        for s in ["1", "yes", "on", "true", "TRUE", " Yes "] {
            assert_eq!(parse_bool(s), Ok(true), "{s}");
        }
        for s in ["0", "no", "off", "false", "Off"] {
            assert_eq!(parse_bool(s), Ok(false), "{s}");
        }
        for s in ["", "2", "enabled", "y"] {
            assert!(parse_bool(s).is_err(), "{s}");
        }
    }

    #[test]
    fn sizes() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("1000", 1000),
            ("64K", 65536),
            ("64k", 65536),
            ("10M", 10 << 20),
            ("10MB", 10 << 20),
            ("1G", 1 << 30),
            (" 2g ", 2 << 30),
        ];
        for (s, n) in ok {
            assert_eq!(parse_size(s), Ok(*n), "{s}");
            assert_eq!(parse_size(&format_size(*n)), Ok(*n), "{s}");
        }
        for s in [
            "",
            "M",
            "-1",
            "1.5M",
            "10T",
            "1 M",
            "99999999999999999999",
            "17179869184G",
        ] {
            assert!(parse_size(s).is_err(), "{s}");
        }
        assert_eq!(format_size(10 << 20), "10M");
        assert_eq!(format_size(1500), "1500");
    }

    #[test]
    fn durations() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("300", 300),
            ("30s", 30),
            ("5m", 300),
            ("2h", 7200),
            ("5d", 432000),
            ("1w", 604800),
        ];
        for (s, n) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs(*n)), "{s}");
            let d = Duration::from_secs(*n);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{s}");
        }
        for s in [
            "",
            "s",
            "5x",
            "1.5h",
            "-5m",
            "5 m",
            "99999999999w",
            "100000d",
        ] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        assert_eq!(format_duration(Duration::from_secs(432000)), "5d");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("20", 1, 100), Ok(20));
        for s in ["0", "101", "", "x", "-1", "1e3"] {
            assert!(parse_count(s, 1, 100).is_err(), "{s}");
        }
    }

    #[test]
    fn enums() {
        const N: &[&str] = &["none", "starttls", "tls"];
        assert_eq!(parse_enum("STARTTLS", N).map(|i| N[i]), Ok("starttls"));
        let e = parse_enum("startls", N).unwrap_err();
        assert!(e
            .hint
            .unwrap_or_default()
            .contains("did you mean 'starttls'"));
        let e = parse_enum("xyzzy", N).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("one of: none, starttls, tls"));
    }

    #[test]
    fn sockets() {
        assert_eq!(
            parse_socket("127.0.0.1:25").map(|a| a.to_string()),
            Ok("127.0.0.1:25".into())
        );
        assert_eq!(
            parse_socket("[::1]:2525").map(|a| a.to_string()),
            Ok("[::1]:2525".into())
        );
        for s in [
            "",
            "127.0.0.1",
            "localhost:25",
            "127.0.0.1:0",
            "1.2.3.4:65536",
            "::1:25",
        ] {
            assert!(parse_socket(s).is_err(), "{s}");
        }
        let e = parse_socket("192.168.1.1").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("add the port, e.g. 192.168.1.1:25"));
    }

    #[test]
    fn cidrs() {
        let ok: &[(&str, &str)] = &[
            ("192.168.1.0/24", "192.168.1.0/24"),
            ("192.168.1.77/24", "192.168.1.0/24"),
            ("10.0.0.1", "10.0.0.1/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::1/128", "::1/128"),
            ("fd00::/8", "fd00::/8"),
            ("2001:db8::1", "2001:db8::1/128"),
        ];
        for (s, want) in ok {
            assert_eq!(
                parse_cidr(s).map(|n| n.to_string()).as_deref(),
                Ok(*want),
                "{s}"
            );
        }
        for s in [
            "",
            "/24",
            "192.168.1.0/33",
            "::/129",
            "192.168.1.0/",
            "192.168.1.0/+4",
            "x/8",
            "1.2.3/8",
        ] {
            assert!(parse_cidr(s).is_err(), "{s}");
        }
    }

    #[test]
    fn host_ports() {
        let ok: &[(&str, &str, Option<u16>)] = &[
            ("smtp.example.net", "smtp.example.net", None),
            ("smtp.example.net:587", "smtp.example.net", Some(587)),
            ("localhost:224", "localhost", Some(224)),
            ("192.0.2.1:25", "192.0.2.1", Some(25)),
            ("[2001:db8::1]:25", "2001:db8::1", Some(25)),
            ("[2001:db8::1]", "2001:db8::1", None),
            ("2001:db8::1", "2001:db8::1", None),
        ];
        for (s, h, p) in ok {
            assert_eq!(parse_host_port(s), Ok((h.to_string(), *p)), "{s}");
        }
        for s in [
            "",
            ":25",
            "host:",
            "host:0",
            "host:x",
            "host:70000",
            "[::1",
            "[::1]x",
            "[host]:25",
            "a b:25",
            "ho/st",
            "a..b",
            "1:2:3",
        ] {
            assert!(parse_host_port(s).is_err(), "{s}");
        }
        let hp = HostPort {
            host: "2001:db8::1".into(),
            port: 25,
        };
        assert_eq!(format_host_port(&hp), "[2001:db8::1]:25");
    }

    #[test]
    fn fingerprints() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let fp = parse_fingerprint(hex).expect("plain hex");
        assert_eq!(fp[1], 0x11);
        assert_eq!(fp[31], 0xff);
        let colons: Vec<String> = hex
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        assert_eq!(parse_fingerprint(&colons.join(":")), Ok(fp));
        assert_eq!(parse_fingerprint(&format_fingerprint(&fp)), Ok(fp));
        for s in [
            "",
            "00",
            &hex[1..],
            &format!("{hex}0"),
            &hex.replace('0', "g"),
        ] {
            assert!(parse_fingerprint(s).is_err(), "{s}");
        }
    }

    #[test]
    fn address_maps() {
        let m = parse_address_map("john: John Smith <john@example.org>").expect("map");
        assert_eq!(m.local, "john");
        assert_eq!(m.to, "John Smith <john@example.org>");
        assert_eq!(parse_address_map(&format_address_map(&m)), Ok(m));
        for s in ["john", ": x", "john:", "jo hn: x", "a:\nb"] {
            assert!(parse_address_map(s).is_err(), "{s}");
        }
    }

    #[test]
    fn log_levels() {
        for (s, n) in [
            ("0", 0),
            ("9", 9),
            ("error", 3),
            ("Warning", 4),
            ("notice", 5),
            ("info", 6),
            ("debug", 7),
        ] {
            assert_eq!(parse_log_level(s), Ok(n), "{s}");
        }
        for s in ["10", "-1", "", "verbose"] {
            assert!(parse_log_level(s).is_err(), "{s}");
        }
    }

    #[test]
    fn words_paths_and_friends() {
        assert!(parse_str(Ty::Word, "a b").is_err());
        assert!(parse_str(Ty::Word, "").is_err());
        assert!(parse_str(Ty::Word, "a\u{7}").is_err());
        assert_eq!(
            parse_str(Ty::Address, "root@example.org"),
            Ok("root@example.org".into())
        );
        assert!(parse_str(Ty::Address, "root").is_err());
        assert!(parse_str(Ty::Address, "@example.org").is_err());
        assert_eq!(parse_str(Ty::Device, "pppoe-wan"), Ok("pppoe-wan".into()));
        assert!(parse_str(Ty::Device, "averyveryverylongname").is_err());
        assert_eq!(parse_str(Ty::Text, " pass word "), Ok(" pass word ".into()));
        assert!(parse_str(Ty::Text, "a\nb").is_err());
        assert!(parse_str(Ty::Path, "var/spool").is_err());
        assert!(parse_str(Ty::Path, "").is_err());
        assert_eq!(parse_str(Ty::Path, "/var/spool"), Ok("/var/spool".into()));
        assert!(parse_str(Ty::Command, "  ").is_err());
        assert!(parse_str(Ty::Domain, "example.org").is_ok());
        for s in ["", ".", "a..b", ".a", "a.", "a b", "a/b"] {
            assert!(parse_str(Ty::Domain, s).is_err(), "{s}");
        }
    }

    #[test]
    fn levenshtein() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("max_szie", "max_size"), 2);
        let names = ["max_size", "mail_host", "host_name"];
        assert_eq!(
            nearest("max_szie", &mut names.iter().copied()),
            Some("max_size")
        );
        assert_eq!(
            nearest("hostname", &mut names.iter().copied()),
            Some("host_name")
        );
        assert_eq!(
            nearest("mailhost", &mut names.iter().copied()),
            Some("mail_host")
        );
        assert_eq!(nearest("completely_else", &mut names.iter().copied()), None);
        assert_eq!(nearest("", &mut names.iter().copied()), None);
    }
}
