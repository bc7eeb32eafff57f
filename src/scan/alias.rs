//! Alias expansion: `alias` sections of the config and the `alias_file`
//! (`/etc/aliases` format).
//!
//! A target is a local user (`alice`, or `\alice` to stop expansion), a
//! remote address, or `|command`. Commands come only from these two
//! trusted sources, never from an envelope address. Expansion follows
//! local targets recursively up to [`MAX_DEPTH`]; a name met again on its
//! own path is a loop and fails that recipient. `postmaster` always
//! resolves: to its alias, else to `root`'s alias, else to the user root.

use std::fmt;
use std::path::Path;

use crate::addr::Address;
use crate::config::Config;
use crate::queue::Target;

pub const MAX_DEPTH: usize = 10;
const MAX_ALIAS_FILE: u64 = 4 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AliasTarget {
    /// A local name, expanded further unless `stop` (written `\name`).
    Local {
        name: String,
        stop: bool,
    },
    Remote(Address),
    Pipe(String),
}

#[derive(Debug, Default)]
pub struct Aliases {
    entries: Vec<(String, Vec<AliasTarget>)>,
    caseless: bool,
}

/// An error in the alias file, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasFileError {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for AliasFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

/// Parse one target as written in an alias (config `list to` or the file).
pub fn parse_target(s: &str, host: &str) -> Result<AliasTarget, String> {
    let s = s.trim();
    let s = match s.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner,
        None => s,
    };
    if let Some(cmd) = s.strip_prefix('|') {
        let cmd = cmd.trim();
        if cmd.is_empty() {
            return Err("empty command after '|'".into());
        }
        if cmd.chars().any(|c| c.is_control()) {
            return Err("control character in command".into());
        }
        return Ok(AliasTarget::Pipe(cmd.to_string()));
    }
    if s.starts_with(":include:") {
        return Err(":include: lists are not supported; list the addresses instead".into());
    }
    if s.starts_with('/') {
        return Err("delivery to a file is not supported; use '|command' or a user".into());
    }
    let (stop, name) = match s.strip_prefix('\\') {
        Some(n) => (true, n),
        None => (false, s),
    };
    // An address, or a bare name that must be a valid local part.
    let remote = name.contains('@');
    let a = Address::parse(name, if remote { None } else { Some(host) })
        .map_err(|e| format!("'{name}': {e}"))?;
    if remote {
        return Ok(AliasTarget::Remote(a));
    }
    Ok(AliasTarget::Local {
        name: name.to_string(),
        stop,
    })
}

/// Aliases read from a file (name, targets) and the errors of its lines.
pub type AliasFile = (Vec<(String, Vec<AliasTarget>)>, Vec<AliasFileError>);

/// Split the right-hand side of an alias line on commas outside quotes.
fn split_targets(rhs: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    // Past the end: the last target.
    for (i, c) in rhs.char_indices().chain([(rhs.len(), ',')]) {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted || i == rhs.len() => {
                let t = rhs.get(start..i).unwrap_or("").trim();
                if !t.is_empty() {
                    out.push(t);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    out
}

/// Parse an `/etc/aliases`-format text: `name: target, target`, lines
/// starting with whitespace continue the previous one, `#` starts a
/// comment line. Good entries are returned with the list of errors.
pub fn parse_alias_text(text: &str, host: &str) -> AliasFile {
    let mut out: AliasFile = (Vec::new(), Vec::new());
    // The logical line being gathered: its number and text.
    let mut cur: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, t)) = &mut cur {
                t.push(' ');
                t.push_str(line.trim());
                continue;
            }
        }
        if let Some((n, t)) = cur.replace((i + 1, line.to_string())) {
            alias_line(n, &t, host, &mut out);
        }
    }
    if let Some((n, t)) = cur {
        alias_line(n, &t, host, &mut out);
    }
    out
}

/// One logical line `name: target, …` (number `line`) into `entries`, or
/// its errors into `errors`.
fn alias_line(line: usize, text: &str, host: &str, (entries, errors): &mut AliasFile) {
    let msg = match text.split_once(':') {
        None => "expected 'name: target, …'".to_string(),
        Some((name, rhs)) => {
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                format!("bad alias name '{name}'")
            } else {
                let mut targets = Vec::new();
                for t in split_targets(rhs) {
                    match parse_target(t, host) {
                        Ok(t) => targets.push(t),
                        Err(msg) => errors.push(AliasFileError { line, msg }),
                    }
                }
                if !targets.is_empty() {
                    entries.push((name.to_string(), targets));
                    return;
                }
                format!("alias '{name}' has no valid target")
            }
        }
    };
    errors.push(AliasFileError { line, msg });
}

/// Read and parse an alias file; the file is trusted but bounded.
pub fn read_alias_file(path: &Path, host: &str) -> Result<AliasFile, String> {
    // None: too large. One message for either I/O error.
    let read = std::fs::metadata(path).and_then(|m| {
        if m.len() > MAX_ALIAS_FILE {
            Ok(None)
        } else {
            std::fs::read(path).map(Some)
        }
    });
    let bytes = match read {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(format!(
                "{}: larger than {MAX_ALIAS_FILE} bytes",
                path.display()
            ))
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    Ok(parse_alias_text(&String::from_utf8_lossy(&bytes), host))
}

/// What one recipient expands to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Delivered to a local user's mailbox.
    LocalUser(Address),
    Remote(Address),
    Pipe(String),
}

impl Resolved {
    pub fn target(&self) -> Target {
        match self {
            Resolved::LocalUser(a) | Resolved::Remote(a) => Target::Addr(a.clone()),
            Resolved::Pipe(c) => Target::Pipe(c.clone()),
        }
    }
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resolved::LocalUser(a) => write!(f, "{a} (local user {})", a.local()),
            Resolved::Remote(a) => write!(f, "{a} (remote)"),
            Resolved::Pipe(c) => write!(f, "|{c} (command)"),
        }
    }
}

/// Why a recipient cannot be resolved: it stays in the queue, failed, for
/// a bounce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    UnknownUser(String),
    Loop(Vec<String>),
    TooDeep,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::UnknownUser(u) => write!(f, "550 5.1.1 <{u}>: no such user here"),
            ResolveError::Loop(path) => write!(f, "554 5.4.6 alias loop: {}", path.join(" -> ")),
            ResolveError::TooDeep => write!(f, "554 5.4.6 aliases nested deeper than {MAX_DEPTH}"),
        }
    }
}

/// How to tell local users (a passwd lookup in production; tests may
/// substitute a list).
pub trait UserDb {
    fn exists(&self, name: &str) -> bool;
}

pub struct Passwd;

impl UserDb for Passwd {
    fn exists(&self, name: &str) -> bool {
        matches!(crate::passwd::by_name(name), Ok(Some(_)))
    }
}

impl Aliases {
    /// The config's `alias` sections, then the alias file (config first:
    /// the same name in both, the config wins). Errors of the file are
    /// returned for the caller to log; an unreadable file is an error.
    /// `file` is the alias file to read, normally the config's.
    pub fn load(
        cfg: &Config,
        file: Option<&Path>,
    ) -> Result<(Aliases, Vec<AliasFileError>), String> {
        let host = cfg.main.host_name.as_str();
        let mut entries = Vec::new();
        for a in &cfg.aliases {
            let mut targets = Vec::new();
            for t in &a.to {
                targets
                    .push(parse_target(t, host).map_err(|e| format!("alias '{}': {e}", a.name))?);
            }
            entries.push((a.name.clone(), targets));
        }
        let mut file_errors = Vec::new();
        if let Some(path) = file {
            let (more, errs) = read_alias_file(path, host)?;
            entries.extend(more);
            file_errors = errs;
        }
        Ok((
            Aliases {
                entries,
                caseless: cfg.main.alias_local_caseless,
            },
            file_errors,
        ))
    }

    #[cfg(test)]
    pub fn from_entries(entries: Vec<(String, Vec<AliasTarget>)>, caseless: bool) -> Aliases {
        Aliases { entries, caseless }
    }

    fn lookup(&self, name: &str) -> Option<&[AliasTarget]> {
        let caseless = self.caseless || name.eq_ignore_ascii_case("postmaster");
        self.entries
            .iter()
            .find(|(n, _)| {
                if caseless {
                    n.eq_ignore_ascii_case(name)
                } else {
                    n == name
                }
            })
            .map(|(_, t)| t.as_slice())
    }

    /// Expand one local name. `is_local` says whether an address is in a
    /// local domain; `host` qualifies local users.
    pub fn resolve_local(
        &self,
        name: &str,
        host: &str,
        is_local: &dyn Fn(&Address) -> bool,
        users: &dyn UserDb,
    ) -> Result<Vec<Resolved>, ResolveError> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        self.expand(name, host, is_local, users, &mut path, &mut out)?;
        let mut uniq: Vec<Resolved> = Vec::with_capacity(out.len());
        for r in out {
            if !uniq.contains(&r) {
                uniq.push(r);
            }
        }
        Ok(uniq)
    }

    fn expand(
        &self,
        name: &str,
        host: &str,
        is_local: &dyn Fn(&Address) -> bool,
        users: &dyn UserDb,
        path: &mut Vec<String>,
        out: &mut Vec<Resolved>,
    ) -> Result<(), ResolveError> {
        if path.len() >= MAX_DEPTH {
            return Err(ResolveError::TooDeep);
        }
        let key = if self.caseless {
            name.to_ascii_lowercase()
        } else {
            name.to_string()
        };
        if path.contains(&key) {
            let mut p = path.clone();
            p.push(key);
            return Err(ResolveError::Loop(p));
        }
        let targets = match self.lookup(name) {
            Some(t) => t,
            None if name.eq_ignore_ascii_case("postmaster") => {
                return self.expand_user_or_root(host, is_local, users, path, out);
            }
            None => return local_user(name, host, users, out),
        };
        path.push(key);
        for t in targets {
            match t {
                AliasTarget::Pipe(c) => out.push(Resolved::Pipe(c.clone())),
                AliasTarget::Remote(a) if is_local(a) => {
                    self.expand(a.local(), host, is_local, users, path, out)?
                }
                AliasTarget::Remote(a) => out.push(Resolved::Remote(a.clone())),
                AliasTarget::Local { name: n, stop } if *stop || n == name => {
                    local_user(n, host, users, out)?
                }
                AliasTarget::Local { name: n, .. } => {
                    self.expand(n, host, is_local, users, path, out)?
                }
            }
        }
        path.pop();
        Ok(())
    }

    /// postmaster without an alias: root's alias, else the user root.
    fn expand_user_or_root(
        &self,
        host: &str,
        is_local: &dyn Fn(&Address) -> bool,
        users: &dyn UserDb,
        path: &mut Vec<String>,
        out: &mut Vec<Resolved>,
    ) -> Result<(), ResolveError> {
        if self.lookup("root").is_some() {
            return self.expand("root", host, is_local, users, path, out);
        }
        let addr =
            Address::new("root", host).map_err(|_| ResolveError::UnknownUser("root".into()))?;
        out.push(Resolved::LocalUser(addr));
        Ok(())
    }
}

/// A local user `name` (`name@host`), who must exist.
fn local_user(
    name: &str,
    host: &str,
    users: &dyn UserDb,
    out: &mut Vec<Resolved>,
) -> Result<(), ResolveError> {
    let addr = Address::new(name, host).map_err(|_| ResolveError::UnknownUser(name.to_string()))?;
    if !users.exists(name) {
        return Err(ResolveError::UnknownUser(addr.to_string()));
    }
    out.push(Resolved::LocalUser(addr));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Users(&'static [&'static str]);
    impl UserDb for Users {
        fn exists(&self, name: &str) -> bool {
            self.0.contains(&name)
        }
    }

    const HOST: &str = "h.test";

    fn aliases(text: &str, caseless: bool) -> Aliases {
        let (e, errs) = parse_alias_text(text, HOST);
        assert!(errs.is_empty(), "{errs:?}");
        Aliases::from_entries(e, caseless)
    }

    fn local(a: &Address) -> bool {
        a.domain() == HOST || a.domain() == "localhost"
    }

    fn resolve(al: &Aliases, name: &str) -> Result<Vec<String>, ResolveError> {
        al.resolve_local(name, HOST, &local, &Users(&["root", "alice", "bob"]))
            .map(|v| v.iter().map(|r| r.to_string()).collect())
    }

    #[test]
    fn expands_lists_users_remote_and_pipes() {
        let al = aliases(
            "# comment\nstaff: alice, bob@h.test,\n  carol@example.org\nroot: \\root, alice\n\
             list: \"|/usr/bin/procmail -m list, x\", staff\nself: alice\nalice: alice, a@x.org\n",
            false,
        );
        assert_eq!(
            resolve(&al, "staff").unwrap(),
            [
                "alice@h.test (local user alice)",
                "a@x.org (remote)",
                "bob@h.test (local user bob)",
                "carol@example.org (remote)"
            ]
        );
        assert_eq!(
            resolve(&al, "root").unwrap(),
            [
                "root@h.test (local user root)",
                "alice@h.test (local user alice)",
                "a@x.org (remote)"
            ]
        );
        assert_eq!(
            resolve(&al, "list").unwrap()[0],
            "|/usr/bin/procmail -m list, x (command)"
        );
        assert_eq!(
            resolve(&al, "bob").unwrap(),
            ["bob@h.test (local user bob)"]
        );
    }

    #[test]
    fn loops_depth_and_unknown_users() {
        let al = aliases("a: b\nb: c\nc: a\n", false);
        assert_eq!(
            resolve(&al, "a"),
            Err(ResolveError::Loop(vec![
                "a".into(),
                "b".into(),
                "c".into(),
                "a".into()
            ]))
        );
        let chain: String = (0..15).map(|i| format!("n{i}: n{}\n", i + 1)).collect();
        assert_eq!(
            resolve(&aliases(&chain, false), "n0"),
            Err(ResolveError::TooDeep)
        );
        assert_eq!(
            resolve(&al, "nobody"),
            Err(ResolveError::UnknownUser("nobody@h.test".into()))
        );
        let al = aliases("x: \\ghost\n", false);
        assert!(matches!(
            resolve(&al, "x"),
            Err(ResolveError::UnknownUser(_))
        ));
    }

    #[test]
    fn postmaster_always_resolves() {
        let al = aliases("", false);
        assert_eq!(
            resolve(&al, "PostMaster").unwrap(),
            ["root@h.test (local user root)"]
        );
        let al = aliases("root: admin@example.org\n", false);
        assert_eq!(
            resolve(&al, "postmaster").unwrap(),
            ["admin@example.org (remote)"]
        );
        let al = aliases("Postmaster: bob\n", false);
        assert_eq!(
            resolve(&al, "postmaster").unwrap(),
            ["bob@h.test (local user bob)"]
        );
    }

    #[test]
    fn caseless_option() {
        let al = aliases("Staff: alice\n", false);
        assert!(resolve(&al, "staff").is_err());
        let al = aliases("Staff: alice\n", true);
        assert_eq!(
            resolve(&al, "STAFF").unwrap(),
            ["alice@h.test (local user alice)"]
        );
    }

    #[test]
    fn alias_file_errors_are_reported_with_lines() {
        let (entries, errs) = parse_alias_text(
            "good: alice\nno colon here\nbad name: x\nfile: /var/log/x\ninc: :include:/etc/x\nempty:\npipe: |\n",
            HOST,
        );
        assert_eq!(entries.len(), 1);
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 4, 5, 5, 6, 7, 7]);
    }
}
