//! passwd — the user and group databases, read from /etc/passwd(5) and
//! /etc/group(5) directly.
//!
//! DESCRIPTION
//!   masqmail looks up the mail user, local recipients and the invoking
//!   user. A static musl binary can only read these files anyway (musl
//!   has no NSS modules; its only other source, nscd, does not exist on
//!   OpenWrt), so reading them here gives the same answers for about 7 KB
//!   less code in the router binary than musl's getpwnam/getgrouplist.
//!
//!   A line that does not have the fields of its file, or whose IDs are
//!   not numbers, is skipped, as the C library does. The first line with
//!   a matching name or UID wins. Lines are read one at a time; a line
//!   longer than `MAX_LINE` is skipped.
//!
//! SECURITY
//!   The files are read, never written; their contents become IDs, a home
//!   directory and names for the environment of a delivery command, never
//!   a command line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

pub const PASSWD_FILE: &str = "/etc/passwd";
pub const GROUP_FILE: &str = "/etc/group";
/// Longer lines are skipped (a group with thousands of members).
const MAX_LINE: usize = 64 * 1024;

/// One account of the passwd file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// The GECOS field: the full name, then comma-separated extras.
    pub gecos: String,
    pub home: String,
}

impl Account {
    /// The full name: the GECOS field up to its first comma, if any.
    pub fn full_name(&self) -> Option<&str> {
        let full = self.gecos.split(',').next().unwrap_or("").trim();
        (!full.is_empty()).then_some(full)
    }
}

/// Which account to find.
#[derive(Clone, Copy)]
enum Key<'a> {
    Name(&'a str),
    Uid(u32),
}

/// The account named `name`.
pub fn by_name(name: &str) -> io::Result<Option<Account>> {
    find_in(Path::new(PASSWD_FILE), Key::Name(name))
}

/// The (first) account with UID `uid`.
pub fn by_uid(uid: u32) -> io::Result<Option<Account>> {
    find_in(Path::new(PASSWD_FILE), Key::Uid(uid))
}

/// The groups of `name`: `gid` (its primary group) first, then every
/// group of the group file that lists `name` as a member.
pub fn groups_of(name: &str, gid: u32) -> io::Result<Vec<u32>> {
    groups_in(Path::new(GROUP_FILE), name, gid)
}

fn find_in(path: &Path, key: Key<'_>) -> io::Result<Option<Account>> {
    let mut found = None;
    each_line(path, &mut |line| {
        found = parse_account(line).filter(|a| match key {
            Key::Name(n) => a.name == n,
            Key::Uid(u) => a.uid == u,
        });
        found.is_none()
    })?;
    Ok(found)
}

fn groups_in(path: &Path, name: &str, gid: u32) -> io::Result<Vec<u32>> {
    let mut groups = vec![gid];
    each_line(path, &mut |line| {
        if let Some(g) = member_of(line, name) {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        true
    })?;
    Ok(groups)
}

/// `name:password:uid:gid:gecos:home:shell`.
fn parse_account(line: &str) -> Option<Account> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 7 || f[0].is_empty() {
        return None;
    }
    Some(Account {
        name: f[0].to_string(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        gecos: f[4].to_string(),
        home: f[5].to_string(),
    })
}

/// `group:password:gid:member,member…`: the GID when `name` is a member.
fn member_of(line: &str, name: &str) -> Option<u32> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 4 || !f[3].split(',').any(|m| m == name) {
        return None;
    }
    f[2].parse().ok()
}

/// Call `each` with every line of `path` (without its newline) that is
/// UTF-8 and at most `MAX_LINE` long, until it returns false. A missing
/// file has no lines.
fn each_line(path: &Path, each: &mut dyn FnMut(&str) -> bool) -> io::Result<()> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut r = BufReader::new(file);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if buf.last() != Some(&b'\n') && n > MAX_LINE {
            // Too long: skip to the end of this line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let m = (&mut r)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut rest)?;
                if m == 0 || rest.last() == Some(&b'\n') {
                    break;
                }
            }
            continue;
        }
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if let Ok(line) = std::str::from_utf8(line) {
            if !each(line) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("masqmail-passwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn accounts() {
        let long = "x".repeat(MAX_LINE + 10);
        let p = file(
            "passwd",
            &format!(
                "root:x:0:0:root:/root:/bin/ash\n\
                 broken line\n\
                 bad:x:uid:0::/:/bin/false\n\
                 {long}:x:7:7::/:/bin/false\n\
                 ann:x:1000:100:Ann Example,Room 1,,:/home/ann:/bin/sh\n\
                 ann:x:1001:100:second ann:/tmp:/bin/sh\n\
                 nohome:x:1002:100::/:/bin/false"
            ),
        );
        let ann = find_in(&p, Key::Name("ann")).unwrap().unwrap();
        assert_eq!(
            (ann.uid, ann.gid, ann.home.as_str(), ann.full_name()),
            (1000, 100, "/home/ann", Some("Ann Example"))
        );
        assert_eq!(find_in(&p, Key::Uid(0)).unwrap().unwrap().name, "root");
        // The last line has no newline; an empty GECOS has no full name.
        let n = find_in(&p, Key::Uid(1002)).unwrap().unwrap();
        assert_eq!((n.name.as_str(), n.full_name()), ("nohome", None));
        for missing in [
            Key::Name("bad"),
            Key::Name("broken line"),
            Key::Uid(7),
            Key::Name(""),
        ] {
            assert_eq!(find_in(&p, missing).unwrap(), None);
        }
        assert_eq!(
            find_in(Path::new("/nonexistent/passwd"), Key::Uid(0)).unwrap(),
            None
        );
    }

    #[test]
    fn groups() {
        let p = file(
            "group",
            "root:x:0:\nmail:x:8:masqmail,ann\nann-only:x:9:ann\n\
             wheel:x:10:root,annie\nbad:x:gid:ann\nmail2:x:8:ann\n",
        );
        assert_eq!(groups_in(&p, "ann", 100).unwrap(), [100, 8, 9]);
        assert_eq!(groups_in(&p, "masqmail", 8).unwrap(), [8]);
        assert_eq!(groups_in(&p, "nobody", 65534).unwrap(), [65534]);
    }
}
