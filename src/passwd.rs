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
//!   a matching name or UID wins. A file is read whole, up to `MAX_FILE`
//!   (as the hosts file is, src/dns/hosts.rs).
//!
//! SECURITY
//!   The files are read, never written; their contents become IDs, a home
//!   directory and names for the environment of a delivery command, never
//!   a command line.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

pub const PASSWD_FILE: &str = "/etc/passwd";
pub const GROUP_FILE: &str = "/etc/group";
/// Bigger files are read only this far.
const MAX_FILE: u64 = 4 << 20;

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
    Ok(read(path)?
        .lines()
        .find_map(|line| parse_account(line, key)))
}

fn groups_in(path: &Path, name: &str, gid: u32) -> io::Result<Vec<u32>> {
    let mut groups = vec![gid];
    for g in read(path)?.lines().filter_map(|line| member_of(line, name)) {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    Ok(groups)
}

/// Split `line` at `:` into exactly `out.len()` fields.
fn fields<'a>(line: &'a str, out: &mut [&'a str]) -> bool {
    let mut it = line.split(':');
    for f in out.iter_mut() {
        match it.next() {
            Some(s) => *f = s,
            None => return false,
        }
    }
    it.next().is_none()
}

/// `name:password:uid:gid:gecos:home:shell`: the account when it is the
/// one `key` asks for.
fn parse_account(line: &str, key: Key<'_>) -> Option<Account> {
    let mut f = [""; 7];
    if !fields(line, &mut f) || f[0].is_empty() {
        return None;
    }
    let uid = f[2].parse().ok()?;
    let gid = f[3].parse().ok()?;
    let hit = match key {
        Key::Name(n) => f[0] == n,
        Key::Uid(u) => uid == u,
    };
    hit.then(|| Account {
        name: f[0].to_string(),
        uid,
        gid,
        gecos: f[4].to_string(),
        home: f[5].to_string(),
    })
}

/// `group:password:gid:member,member…`: the GID when `name` is a member.
fn member_of(line: &str, name: &str) -> Option<u32> {
    let mut f = [""; 4];
    if !fields(line, &mut f) || !f[3].split(',').any(|m| m == name) {
        return None;
    }
    f[2].parse().ok()
}

/// The text of `path`, at most `MAX_FILE` bytes of it; a missing file is
/// empty.
fn read(path: &Path) -> io::Result<String> {
    let mut buf = Vec::new();
    match File::open(path) {
        Ok(f) => f.take(MAX_FILE).read_to_end(&mut buf)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    Ok(String::from_utf8_lossy(&buf).into_owned())
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
        let p = file(
            "passwd",
            "root:x:0:0:root:/root:/bin/ash\n\
             broken line\n\
             bad:x:uid:0::/:/bin/false\n\
             short:x:7:7::/\n\
             ann:x:1000:100:Ann Example,Room 1,,:/home/ann:/bin/sh\n\
             ann:x:1001:100:second ann:/tmp:/bin/sh\n\
             nohome:x:1002:100::/:/bin/false",
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
            Key::Name("short"),
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
