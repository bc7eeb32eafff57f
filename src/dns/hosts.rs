//! dns::hosts — look a host name up in /etc/hosts(5).
//!
//! DESCRIPTION
//!   The `byname` resolve method asks this file first and DNS (A/AAAA)
//!   second, instead of the C library's getaddrinfo: the same answers for
//!   the names that matter on a router (`localhost`, LAN hosts written by
//!   the admin or by dnsmasq's addn-hosts), without pulling musl's resolver
//!   (about 36 KB on mipsel) into the binary.
//!
//!   Each line is an IP address followed by a canonical name and aliases,
//!   separated by blanks; `#` starts a comment. A name matches ignoring
//!   case and a trailing dot. Every line that names the host contributes
//!   its address, in file order (glibc's `multi on`, which is what
//!   OpenWrt's and Debian's host.conf ask for); the caller puts the
//!   preferred family first. IPv6 addresses with a `%scope` are skipped
//!   (a mail host is never link-local).
//!
//! SECURITY
//!   The file is trusted configuration written by root. Lines that do not
//!   parse are skipped; at most `MAX_HOSTS_FILE` bytes are read.
//!
//! DIAGNOSTICS
//!   None: a missing or unreadable file is the same as an empty one (DNS
//!   is asked next).

use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

/// The file `byname` reads.
pub const HOSTS_FILE: &str = "/etc/hosts";
/// Bigger files are read only this far (an ad-blocking hosts file can be
/// megabytes; mail hosts are near the top in practice).
pub const MAX_HOSTS_FILE: u64 = 4 << 20;

/// The addresses of `host` in the hosts file text, in file order, without
/// duplicates.
pub fn lookup(text: &str, host: &str) -> Vec<IpAddr> {
    let want = host.strip_suffix('.').unwrap_or(host);
    let mut out = Vec::new();
    if want.is_empty() {
        return out;
    }
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_ascii_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        let named = words.any(|n| n.strip_suffix('.').unwrap_or(n).eq_ignore_ascii_case(want));
        if named && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// The addresses of `host` in the file at `path` (missing or unreadable:
/// none).
pub fn lookup_file(path: &Path, host: &str) -> Vec<IpAddr> {
    let mut buf = Vec::new();
    match std::fs::File::open(path) {
        Ok(f) => {
            if f.take(MAX_HOSTS_FILE).read_to_end(&mut buf).is_err() {
                return Vec::new();
            }
        }
        Err(_) => return Vec::new(),
    }
    lookup(&String::from_utf8_lossy(&buf), host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(v: &[&str]) -> Vec<IpAddr> {
        v.iter().map(|s| s.parse().expect("test ip")).collect()
    }

    const DEBIAN: &str = "\
127.0.0.1\tlocalhost
127.0.1.1\trouter.lan\trouter
192.168.1.20 nas.lan nas   # the NAS
# 192.168.1.30 printer.lan
192.168.1.31 Printer.LAN.
fe80::1%eth0 linklocal.lan
not-an-ip printer.lan
2001:db8::20 nas.lan

# The following lines are desirable for IPv6 capable hosts
::1     localhost ip6-localhost ip6-loopback
ff02::1 ip6-allnodes
";

    #[test]
    fn finds_every_address_in_file_order() {
        assert_eq!(lookup(DEBIAN, "localhost"), ips(&["127.0.0.1", "::1"]));
        assert_eq!(lookup(DEBIAN, "nas"), ips(&["192.168.1.20"]));
        assert_eq!(
            lookup(DEBIAN, "NAS.lan."),
            ips(&["192.168.1.20", "2001:db8::20"])
        );
        assert_eq!(lookup(DEBIAN, "router"), ips(&["127.0.1.1"]));
    }

    #[test]
    fn comments_bad_lines_and_misses() {
        // commented out line skipped, the later one found
        assert_eq!(lookup(DEBIAN, "printer.lan"), ips(&["192.168.1.31"]));
        assert!(lookup(DEBIAN, "linklocal.lan").is_empty());
        assert!(lookup(DEBIAN, "the").is_empty());
        assert!(lookup(DEBIAN, "NAS").len() == 1);
        assert!(lookup(DEBIAN, "").is_empty());
        assert!(lookup(DEBIAN, ".").is_empty());
        assert!(lookup(DEBIAN, "example.org").is_empty());
        assert!(lookup("", "localhost").is_empty());
        // a name is never an address
        assert!(lookup(DEBIAN, "127.0.0.1").is_empty());
    }

    #[test]
    fn file_missing_or_present() {
        assert!(lookup_file(Path::new("/nonexistent/hosts"), "localhost").is_empty());
        let dir = std::env::temp_dir().join(format!("masqmail-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("hosts");
        std::fs::write(&p, DEBIAN).expect("write");
        assert_eq!(lookup_file(&p, "nas"), ips(&["192.168.1.20"]));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
