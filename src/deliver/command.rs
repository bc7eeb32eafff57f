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

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Failure;

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

/// Replace `%{name}` in every word.
pub fn substitute(words: &[String], vars: &[(&str, &str)]) -> Vec<String> {
    words
        .iter()
        .map(|w| {
            let mut out = w.clone();
            for (k, v) in vars {
                out = out.replace(&format!("%{{{k}}}"), v);
            }
            out
        })
        .collect()
}

/// Who a command runs as.
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub name: String,
}

/// Classify a command's exit status (sysexits): 0 delivered, 75
/// (EX_TEMPFAIL) and death by a signal are temporary, other codes of
/// sysexits permanent, anything else temporary.
fn classify(argv0: &str, status: std::process::ExitStatus, stderr: &str) -> Result<(), Failure> {
    let detail = if stderr.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", stderr.trim())
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(75), _) => Err(Failure::Temporary(format!(
            "{argv0} exited 75 (try again){detail}"
        ))),
        (Some(c @ 64..=78), _) => Err(Failure::Permanent(format!("{argv0} exited {c}{detail}"))),
        (Some(c), _) => Err(Failure::Temporary(format!("{argv0} exited {c}{detail}"))),
        (None, Some(sig)) => Err(Failure::Temporary(format!(
            "{argv0} killed by signal {sig}{detail}"
        ))),
        (None, None) => Err(Failure::Temporary(format!("{argv0} ended oddly{detail}"))),
    }
}

/// Run `argv` with the message written to its stdin by `feed`, wait at
/// most `timeout`. A command that cannot be started fails temporarily
/// (its binary may appear), unless `missing_is_permanent`.
pub fn run(
    argv: &[String],
    env: &[(&str, &str)],
    run_as: Option<&RunAs>,
    timeout: Duration,
    feed: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> Result<(), Failure> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(Failure::Permanent("empty command".into()));
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .current_dir("/");
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(u) = run_as {
        cmd.uid(u.uid)
            .gid(u.gid)
            .env("HOME", &u.home)
            .env("USER", &u.name)
            .env("LOGNAME", &u.name);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::Temporary(format!("cannot run {prog}: {e}")))?;
    let mut stderr = child.stderr.take();
    let collector = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.take(2048).read_to_end(&mut buf);
            // Drain the rest so the child never blocks on a full pipe.
            let _ = io::copy(s, &mut io::sink());
        }
        String::from_utf8_lossy(&buf).replace(['\n', '\r', '\t'], " ")
    });
    let fed = match child.stdin.take() {
        Some(mut stdin) => {
            let r = feed(&mut stdin);
            drop(stdin);
            r
        }
        None => Ok(()),
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::Temporary(format!(
                    "{prog} timed out after {}s",
                    timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(Failure::Temporary(format!("waiting for {prog}: {e}"))),
        }
    };
    let stderr = collector.join().unwrap_or_default();
    classify(prog, status, &stderr)?;
    // The command succeeded but did not take the whole message: a broken
    // pipe after success is its choice (e.g. a filter that drops mail);
    // any other write error is ours.
    match fed {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(Failure::Temporary(format!("writing to {prog}: {e}")))
        }
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
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.take(64 * 1024).read_to_end(&mut buf);
            let _ = io::copy(s, &mut io::sink());
        }
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{prog} timed out after {}s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {prog}: {e}")),
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{prog} failed ({status})"));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
