//! Running external commands: the MDA, `|command` aliases and `pipe`
//! routes. Never through a shell: the command line is split into words
//! here (quotes and backslashes as in sh), and only a command that names
//! a shell itself (`/bin/sh -c '…'`) gets one.
//!
//! SECURITY
//!   Commands come only from the config and the alias file. Substituted
//!   values (`%{rcpt}`, `%{user}`, `%{sender}`, `%{id}`) become whole
//!   arguments or parts of one; they are never parsed as command lines.
//!   When root, a command runs as the given user (uid and gid, no
//!   supplementary groups). The environment is cleared but for PATH, HOME,
//!   USER, LOGNAME, SENDER and RECIPIENT.

use std::io;
use std::time::{Duration, Instant};

use super::Failure;
use crate::util::spawn::{self, Drain, Feed, Spawn, Status, Stdio};

/// Split a command line into words: whitespace separates, '…' and "…"
/// quote, a backslash escapes the next character (outside single quotes).
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated ' in command".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err("unterminated \" in command".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated \" in command".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err("backslash at the end of the command".into()),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if words.is_empty() {
        return Err("empty command".into());
    }
    Ok(words)
}

/// Replace `%{name}` in every word, in one pass: a substituted value is
/// never searched again (a value holding `%{id}` stays as it is); a
/// `%{…}` that names no variable is kept.
pub fn substitute(words: &[String], vars: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len());
    for w in words {
        let mut o = String::with_capacity(w.len());
        let mut rest = w.as_str();
        while let Some(i) = rest.find("%{") {
            o.push_str(&rest[..i]);
            rest = &rest[i..];
            let var = rest.find('}').and_then(|e| {
                let name = &rest[2..e];
                vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (e, *v))
            });
            match var {
                Some((e, v)) => {
                    o.push_str(v);
                    rest = &rest[e + 1..];
                }
                None => {
                    o.push_str("%{");
                    rest = &rest[2..];
                }
            }
        }
        o.push_str(rest);
        out.push(o);
    }
    out
}

/// Who a command runs as.
/// A temporary failure `WHAT PROG: ERROR`.
#[inline(never)]
fn prog_fail(what: &str, prog: &str, e: &dyn std::fmt::Display) -> Failure {
    Failure::Temporary(format!("{what}{prog}: {e}"))
}

pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub name: String,
}

/// Classify a command's exit status (sysexits): 0 delivered, 75
/// (EX_TEMPFAIL) and death by a signal are temporary, other codes of
/// sysexits permanent, anything else temporary.
fn classify(argv0: &str, status: Status, stderr: &str) -> Result<(), Failure> {
    let detail = stderr.trim();
    let sep = if detail.is_empty() { "" } else { ": " };
    let (how, n, extra) = match status {
        Status::Exited(0) => return Ok(()),
        Status::Exited(75) => ("exited", 75, " (try again)"),
        Status::Exited(c) => ("exited", c, ""),
        Status::Signaled(sig) => ("killed by signal", sig, ""),
    };
    let text = format!("{argv0} {how} {n}{extra}{sep}{detail}");
    Err(match status {
        Status::Exited(64..=74 | 76..=78) => Failure::Permanent(text),
        _ => Failure::Temporary(text),
    })
}

/// Run `argv` with the message written to its stdin by `feed`, all
/// within `timeout` (then it is killed). Its stderr is read meanwhile (a
/// command that writes much there before it reads cannot block); the
/// first 2 KiB of it go into the failure. A command that cannot be
/// started fails temporarily (its binary may appear).
pub fn run(
    argv: &[String],
    env: &[(&str, &str)],
    run_as: Option<&RunAs>,
    timeout: Duration,
    feed: &mut dyn FnMut(&mut Feed<'_>) -> io::Result<()>,
) -> Result<(), Failure> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(Failure::Permanent("empty command".into()));
    };
    let mut cmd = Spawn::new(prog);
    cmd.args(args)
        .env("PATH", spawn::DEFAULT_PATH)
        .stdin(Stdio::Piped)
        .stdout(Stdio::Null)
        .stderr(Stdio::Piped)
        .cwd("/");
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(u) = run_as {
        cmd.user(u.uid, u.gid)
            .env("HOME", &u.home)
            .env("USER", &u.name)
            .env("LOGNAME", &u.name);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| prog_fail("cannot run ", prog, &e))?;
    let deadline = Instant::now() + timeout;
    let mut stderr = Drain::new(child.stderr.take(), 2048);
    // Dropping the Feed closes the command's stdin.
    let fed = match child.stdin.take() {
        Some(stdin) => feed(&mut Feed::new(stdin, &mut stderr, deadline)),
        None => Ok(()),
    };
    let status = match stderr.finish(&mut child, deadline) {
        Ok(Some(st)) => st,
        Ok(None) => {
            child.kill();
            return Err(Failure::Temporary(format!(
                "{prog} timed out after {}s",
                timeout.as_secs()
            )));
        }
        Err(e) => return Err(prog_fail("waiting for ", prog, &e)),
    };
    // Its lines on one line: line ends and tabs become spaces.
    for b in stderr.data.iter_mut() {
        if matches!(*b, b'\n' | b'\r' | b'\t') {
            *b = b' ';
        }
    }
    let stderr = String::from_utf8_lossy(&stderr.data);
    classify(prog, status, &stderr)?;
    // The command succeeded but did not take the whole message: a broken
    // pipe after success is its choice (e.g. a filter that drops mail);
    // any other write error is ours.
    match fed {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(prog_fail("writing to ", prog, &e)),
        _ => Ok(()),
    }
}

/// Run `argv` with no input and return its standard output (at most 64
/// KiB), within `timeout`. A non-zero exit, a signal or the timeout are
/// errors.
pub fn capture(argv: &[String], timeout: Duration) -> Result<String, String> {
    let Some((prog, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let mut child = Spawn::new(prog)
        .args(args)
        .stdin(Stdio::Null)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Null)
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    let mut stdout = Drain::new(child.stdout.take(), 64 * 1024);
    let status = match stdout.finish(&mut child, Instant::now() + timeout) {
        Ok(Some(st)) => st,
        Ok(None) => {
            child.kill();
            return Err(format!("{prog} timed out after {}s", timeout.as_secs()));
        }
        Err(e) => return Err(format!("waiting for {prog}: {e}")),
    };
    if !status.success() {
        return Err(format!("{prog} failed ({status})"));
    }
    Ok(String::from_utf8_lossy(&stdout.data).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn splits_like_sh() {
        let s = |l: &str| split(l).unwrap();
        assert_eq!(
            s("/usr/bin/procmail -d %{user}"),
            ["/usr/bin/procmail", "-d", "%{user}"]
        );
        assert_eq!(
            s("a 'b c' \"d \\\" e\" f\\ g"),
            ["a", "b c", "d \" e", "f g"]
        );
        assert_eq!(s("  x  ''  "), ["x", ""]);
        for bad in ["", "   ", "'open", "\"open", "end\\"] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn substitutes_whole_values() {
        let w = substitute(
            &split("deliver --to=%{rcpt} %{user}").unwrap(),
            &[("rcpt", "a b@x"), ("user", "a;rm -rf")],
        );
        assert_eq!(w, ["deliver", "--to=a b@x", "a;rm -rf"]);
        let w = substitute(
            &split("%{rcpt}%{user} %{nope} 100%{ %{id}}").unwrap(),
            &[("rcpt", "%{user}"), ("user", "u"), ("id", "i")],
        );
        assert_eq!(w, ["%{user}u", "%{nope}", "100%{", "i}"]);
    }

    #[test]
    fn exit_codes() {
        let run_sh = |script: &str| {
            run(
                &["/bin/sh".into(), "-c".into(), script.into()],
                &[],
                None,
                Duration::from_secs(10),
                &mut |w| w.write_all(b"hello\n"),
            )
        };
        assert_eq!(run_sh("cat >/dev/null"), Ok(()));
        assert!(matches!(run_sh("exit 75"), Err(Failure::Temporary(_))));
        assert!(
            matches!(run_sh("echo no such user >&2; exit 67"), Err(Failure::Permanent(m)) if m.contains("no such user"))
        );
        assert!(matches!(run_sh("exit 1"), Err(Failure::Temporary(_))));
        assert!(matches!(run_sh("kill -9 $$"), Err(Failure::Temporary(_))));
        assert!(matches!(
            run(
                &["/nonexistent/mda".into()],
                &[],
                None,
                Duration::from_secs(1),
                &mut |_| Ok(())
            ),
            Err(Failure::Temporary(_))
        ));
        let slow = run(
            &["/bin/sleep".into(), "5".into()],
            &[],
            None,
            Duration::from_millis(200),
            &mut |_| Ok(()),
        );
        assert!(matches!(slow, Err(Failure::Temporary(m)) if m.contains("timed out")));
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cannot_run() {
        let r = run(
            &words(&["no-such-mda", "-d", "x"]),
            &[],
            None,
            Duration::from_secs(5),
            &mut |_| Ok(()),
        );
        assert_eq!(
            r,
            Err(Failure::Temporary(
                "cannot run no-such-mda: No such file or directory".into()
            ))
        );
        assert_eq!(
            capture(&words(&["/nonexistent/query"]), Duration::from_secs(5)),
            Err("cannot run /nonexistent/query: No such file or directory".into())
        );
    }

    #[test]
    fn timeout_kills_a_command_that_does_not_read() {
        // It neither reads the message nor ends: the writing stops at the
        // deadline, and the command is killed.
        let start = Instant::now();
        let r = run(
            &words(&["/bin/sleep", "30"]),
            &[],
            None,
            Duration::from_millis(500),
            &mut |w| w.write_all(&vec![b'x'; 1 << 20]),
        );
        assert!(
            matches!(&r, Err(Failure::Temporary(m)) if m.contains("timed out")),
            "{r:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn much_stderr_before_reading() {
        // 200 KB on stderr before it reads its input (more than a pipe
        // holds), then all of a 1 MB message.
        let start = Instant::now();
        let script = "head -c 200000 /dev/zero | tr '\\0' e >&2; \
                      test \"$(wc -c)\" -eq 1048576 || exit 1; echo done >&2; exit 1";
        let r = run(
            &words(&["/bin/sh", "-c", script]),
            &[],
            None,
            Duration::from_secs(20),
            &mut |w| w.write_all(&vec![b'x'; 1 << 20]),
        );
        let Err(Failure::Temporary(m)) = &r else {
            panic!("{r:?}")
        };
        // The first 2 KiB of stderr are kept; "done" is far behind them.
        assert!(m.starts_with("/bin/sh exited 1: eeee"), "{m}");
        assert_eq!(m.len(), "/bin/sh exited 1: ".len() + 2048);
        assert!(start.elapsed() < Duration::from_secs(10));
        let ok = run(
            &words(&[
                "/bin/sh",
                "-c",
                "head -c 100000 /dev/zero >&2; cat >/dev/null",
            ]),
            &[],
            None,
            Duration::from_secs(20),
            &mut |w| w.write_all(&vec![b'x'; 1 << 20]),
        );
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn captures() {
        let sh = |script: &str| words(&["/bin/sh", "-c", script]);
        let t = Duration::from_secs(10);
        assert_eq!(capture(&sh("echo isp wan6"), t), Ok("isp wan6\n".into()));
        // Cut at 64 KiB; the command still ends well.
        let big = capture(&sh("head -c 100000 /dev/zero | tr '\\0' a"), t).unwrap();
        assert_eq!(big.len(), 64 * 1024);
        assert_eq!(
            capture(&sh("echo up; exit 2"), t),
            Err("/bin/sh failed (exit status: 2)".into())
        );
        assert_eq!(
            capture(&sh("kill -9 $$"), t),
            Err("/bin/sh failed (signal: 9)".into())
        );
        let start = Instant::now();
        assert_eq!(
            capture(&words(&["/bin/sleep", "30"]), Duration::from_millis(300)),
            Err("/bin/sleep timed out after 0s".into())
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
