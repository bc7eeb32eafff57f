//! Helpers of the reliability tests (crash loop, durability order, full
//! disk, load): a daemon in its own process group that can be killed as a
//! whole, a reaper for the orphans such kills leave, a plain SMTP client
//! that knows exactly how far a message got, and messages whose bodies can
//! be checked at the sink.
//!
//! Use it from a test file with
//!   mod common;
//!   #[path = "common/reliability.rs"] mod reliability;
#![allow(dead_code)]

use std::collections::HashSet;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use super::common::{Mta, BIN};

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A small deterministic random generator (xorshift64*), seeded from the
/// clock unless `MASQMAIL_TEST_SEED` is set; the seed is printed so that
/// a run can be repeated as far as timing allows.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn from_env(tag: &str) -> Rng {
        let seed = std::env::var("MASQMAIL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{tag}: seed {seed} (MASQMAIL_TEST_SEED={seed} to repeat)");
        Rng::new(seed)
    }
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next())
    }
}

/// The body of test message `token`: deterministic, so the sink's copy
/// can be checked byte for byte. Sizes from a few hundred bytes to
/// `max_kb` KB; some lines start with a dot (dot stuffing) and some are
/// long.
pub fn body_for(token: &str, max_kb: usize) -> String {
    let mut h: u64 = 1469598103934665603;
    for b in token.bytes() {
        h = (h ^ b as u64).wrapping_mul(1099511628211);
    }
    let mut rng = Rng::new(h);
    let target = 200 + rng.below((max_kb * 1024) as u64) as usize;
    let mut out = String::with_capacity(target + 100);
    let mut n = 0;
    while out.len() < target {
        n += 1;
        let span = if rng.chance(10) { 900 } else { 70 };
        let len = 10 + rng.below(span) as usize;
        if rng.chance(15) {
            out.push('.');
        }
        out.push_str(&format!("{token} {n} "));
        for i in 0..len {
            out.push((b'a' + ((h as usize + i + n) % 26) as u8) as char);
        }
        out.push('\n');
    }
    out
}

/// A body of exactly `len` bytes (lines of up to 64), made from `token`.
pub fn body_exact(token: &str, len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut n = 0;
    while out.len() < len {
        n += 1;
        let line = format!("{token} {n} {}", "x".repeat(40));
        let room = len - out.len();
        if room <= line.len() + 1 {
            out.push_str(&"y".repeat(room - 1));
            out.push('\n');
        } else {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// The header section and body as a `sendmail` caller gives them.
pub fn message_for(token: &str, rcpt: &str, max_kb: usize) -> String {
    message_with(token, rcpt, &body_for(token, max_kb))
}

pub fn message_with(token: &str, rcpt: &str, body: &str) -> String {
    format!("From: crash tester <tester@client.example>\nTo: {rcpt}\nSubject: {token}\n\n{body}")
}

/// The token (Subject:) of a message as the sink got it, and whether its
/// body is exactly `expected(token)`.
pub fn check_delivered(data: &str, expected: &dyn Fn(&str) -> String) -> Option<(String, bool)> {
    let text = data.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n")?;
    let token = head
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))?
        .trim()
        .to_string();
    let ok = body == expected(&token);
    Some((token, ok))
}

/// A process in a process group of its own, so that it can be killed with
/// everything it forked.
pub struct Group {
    pub child: Child,
    pub pgid: i32,
}

impl Group {
    pub fn spawn(cmd: &mut Command) -> Group {
        let child = cmd.process_group(0).spawn().expect("spawn");
        let pgid = child.id() as i32;
        Group { child, pgid }
    }

    /// SIGKILL to the whole group, then reap the leader. Orphaned members
    /// are reaped by [`Reaper`].
    pub fn kill_all(&mut self) {
        let _ = kill(Pid::from_raw(-self.pgid), Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGKILL to the leader only (its workers live on, orphaned).
    pub fn kill_leader(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.pgid), sig);
    }

    /// SIGTERM and wait (at most `secs`, then SIGKILL the group).
    pub fn terminate(&mut self, secs: u64) -> bool {
        self.signal(Signal::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill_all();
        false
    }
}

impl Drop for Group {
    /// A test that fails leaves no daemon behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill_all();
        }
    }
}

/// Fields of /proc/PID/stat: (state, ppid, pgrp).
pub fn proc_stat(pid: i32) -> Option<(char, i32, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Makes this test process the reaper of the orphans its killed process
/// groups leave (PID 1 of a container may not reap them), and reaps them:
/// only processes of the groups it was told about and never a group
/// leader, which its `Child` owner waits for itself.
pub struct Reaper {
    groups: HashSet<i32>,
}

impl Reaper {
    pub fn new() -> Reaper {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        Reaper {
            groups: HashSet::new(),
        }
    }

    pub fn watch(&mut self, pgid: i32) {
        self.groups.insert(pgid);
    }

    /// Processes of the watched groups still around (pid, state).
    pub fn members(&self) -> Vec<(i32, char)> {
        all_pids()
            .into_iter()
            .filter_map(|p| match proc_stat(p) {
                Some((st, _, pg)) if self.groups.contains(&pg) && p != pg => Some((p, st)),
                _ => None,
            })
            .collect()
    }

    /// Reap the orphans that are zombies now; returns how many.
    pub fn reap(&self) -> usize {
        let me = std::process::id() as i32;
        let mut n = 0;
        for p in all_pids() {
            if let Some(('Z', pp, pg)) = proc_stat(p) {
                if pp == me && pg != p && self.groups.contains(&pg) {
                    let _ = waitpid(Pid::from_raw(p), Some(WaitPidFlag::WNOHANG));
                    n += 1;
                }
            }
        }
        n
    }

    /// SIGKILL every watched group and reap until none is left.
    pub fn kill_all(&self) {
        for &g in &self.groups {
            let _ = kill(Pid::from_raw(-g), Signal::SIGKILL);
        }
        let t0 = Instant::now();
        while !self.members().is_empty() && t0.elapsed() < Duration::from_secs(10) {
            self.reap();
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Start `masqmail daemon -v` for `mta` in a process group of its own,
/// its log appended to `log`.
pub fn spawn_daemon(conf: &Path, log: &Path) -> Group {
    let err = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open daemon log");
    Group::spawn(
        Command::new(BIN)
            .args(["daemon", "-v", "-C"])
            .arg(conf)
            .env_remove("TZ")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err),
    )
}

/// One request on the daemon's control socket; None while no daemon
/// answers.
pub fn control(spool: &Path, req: &str) -> Option<String> {
    let mut s = UnixStream::connect(spool.join("control")).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(format!("{req}\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Wait until the daemon answers on its control socket.
pub fn wait_daemon(spool: &Path, d: &mut Group, log: &Path) {
    let t0 = Instant::now();
    while control(spool, "status").is_none() {
        if let Ok(Some(st)) = d.child.try_wait() {
            panic!("daemon exited ({st}):\n{}", tail(log, 40));
        }
        if t0.elapsed() > Duration::from_secs(20) {
            panic!("daemon never answered:\n{}", tail(log, 40));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let t = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Names in a spool subdirectory.
pub fn names(dir: &Path) -> Vec<String> {
    crate::common::dir_names(dir)
}

/// Files left in pool/, incoming/, outgoing/ and corrupt/.
pub fn spool_leftovers(spool: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for sub in ["pool", "incoming", "outgoing", "corrupt"] {
        v.extend(
            names(&spool.join(sub))
                .into_iter()
                .map(|n| format!("{sub}/{n}")),
        );
    }
    v
}

/// A short description of the leftovers, for failure messages.
pub fn leftovers_text(spool: &Path) -> String {
    let v = spool_leftovers(spool);
    let first: Vec<&String> = v.iter().take(6).collect();
    format!("{} file(s) left, e.g. {first:?}", v.len())
}

/// The log lines (of `logs`) that name a message left in the spool.
pub fn lines_about_leftovers(spool: &Path, logs: &[&Path]) -> String {
    let ids: HashSet<String> = spool_leftovers(spool)
        .iter()
        .filter_map(|f| {
            // pool/ID, incoming/ID, corrupt/incoming-ID, outgoing/ID.new
            let name = f.rsplit('/').next()?;
            let name = name
                .trim_start_matches("incoming-")
                .trim_start_matches("outgoing-")
                .trim_end_matches(".new");
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect();
    let mut out = String::new();
    for log in logs {
        let text = fs::read_to_string(log).unwrap_or_default();
        for l in text
            .lines()
            .filter(|l| ids.iter().any(|id| l.contains(id.as_str())))
        {
            out.push_str(&format!("{}: {l}\n", log.display()));
        }
    }
    out
}

/// Wait until pool/, incoming/ and outgoing/ are empty (true) or `secs`
/// pass (false).
pub fn wait_spool_empty(spool: &Path, secs: u64) -> bool {
    let t0 = Instant::now();
    loop {
        if spool_leftovers(spool).is_empty() {
            return true;
        }
        if t0.elapsed() > Duration::from_secs(secs) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How far one message got, as its client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// The end of the data was never handed over (no `.` written, stdin
    /// not closed): the server cannot have committed it.
    NotSent,
    /// The end of the data was handed over, the answer never seen (the
    /// server died, or the client left without reading it): the server
    /// may have made it durable. Delivery is allowed, not required.
    InDoubt,
    /// 250 after the data, or exit 0 of sendmail: must be delivered.
    Acked,
    /// A 4xx/5xx reply, or a non-zero exit: must never be delivered.
    Refused(String),
}

/// A plain SMTP client over one connection, reading replies line by line.
pub struct SmtpConn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

/// What an SMTP exchange gave.
pub enum Step {
    Reply(u16, String),
    /// The connection broke (reset, closed, timed out).
    Broken,
}

impl SmtpConn {
    /// Connect and read the greeting. Err: no connection at all.
    pub fn connect(port: u16, timeout: Duration) -> io::Result<(SmtpConn, Step)> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let _ = s.set_nodelay(true);
        let mut c = SmtpConn {
            r: BufReader::new(s.try_clone()?),
            w: s,
        };
        let g = c.reply();
        Ok((c, g))
    }

    /// Read one (possibly multi-line) reply.
    pub fn reply(&mut self) -> Step {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            match self.r.read_line(&mut line) {
                Ok(0) | Err(_) => return Step::Broken,
                Ok(_) => {}
            }
            if line.len() < 4 || !line.ends_with('\n') {
                return Step::Broken;
            }
            text.push_str(&line);
            let Ok(code) = line[..3].parse::<u16>() else {
                return Step::Broken;
            };
            if line.as_bytes()[3] != b'-' {
                return Step::Reply(code, text.trim_end().to_string());
            }
        }
    }

    pub fn send(&mut self, data: &[u8]) -> bool {
        self.w.write_all(data).is_ok()
    }

    pub fn cmd(&mut self, line: &str) -> Step {
        if !self.send(format!("{line}\r\n").as_bytes()) {
            return Step::Broken;
        }
        self.reply()
    }

    /// Close without QUIT.
    pub fn drop_now(self) {
        let _ = self.w.shutdown(Shutdown::Both);
    }

    pub fn quit(mut self) {
        let _ = self.cmd("QUIT");
    }
}

/// Dot-stuff and CRLF a message text for DATA (without the final dot).
pub fn smtp_data(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 20);
    for line in text.lines() {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Send one message on an open, greeted connection (EHLO done): MAIL,
/// RCPT, DATA, the text, then the final dot as a write of its own, so
/// that the client knows whether the end of data was handed over.
/// `leave_early`: close right after the dot, without reading the reply.
/// Returns the fate and whether the connection can be used again.
pub fn smtp_send(
    c: &mut SmtpConn,
    from: &str,
    rcpt: &str,
    text: &str,
    leave_early: bool,
) -> (Fate, bool) {
    for (cmd, want) in [
        (format!("MAIL FROM:<{from}>"), 250),
        (format!("RCPT TO:<{rcpt}>"), 250),
        ("DATA".to_string(), 354),
    ] {
        match c.cmd(&cmd) {
            Step::Reply(code, _) if code == want => {}
            Step::Reply(_, t) => {
                let usable = matches!(c.cmd("RSET"), Step::Reply(250, _));
                return (Fate::Refused(format!("{cmd}: {t}")), usable);
            }
            Step::Broken => return (Fate::NotSent, false),
        }
    }
    if !c.send(&smtp_data(text)) {
        return (Fate::NotSent, false);
    }
    if !c.send(b".\r\n") {
        // A refused write queued nothing: the dot never left.
        return (Fate::NotSent, false);
    }
    if leave_early {
        return (Fate::InDoubt, false);
    }
    match c.reply() {
        Step::Reply(250, _) => (Fate::Acked, true),
        Step::Reply(_, t) => (Fate::Refused(t), true),
        Step::Broken => (Fate::InDoubt, false),
    }
}

/// Config lines of a daemon that listens on `port` and trusts loopback.
pub fn listen_lines(port: u16) -> String {
    format!(
        "\tlist listen_addresses '127.0.0.1:{port}'\n\
         \tlist local_nets '127.0.0.0/8'\n\
         \toption max_connections_per_ip '20'\n"
    )
}

/// A route section to the sink on `port` (plain SMTP: the sink has no
/// TLS), permanent (always online) or not.
pub fn sink_route(name: &str, port: u16, permanent: bool) -> String {
    format!(
        "config route '{name}'\n\
         \toption permanent '{}'\n\
         \toption mail_host '127.0.0.1:{port}'\n\
         \toption tls 'none'\n",
        if permanent { 1 } else { 0 }
    )
}

/// Write another config file for the same installation (e.g. for a queue
/// runner with other routes).
pub fn write_config(m: &Mta, name: &str, extra: &str, sections: &str) -> PathBuf {
    let text = format!(
        "config masqmail 'main'\n\
         \toption run_as_user '1'\n\
         \toption host_name '{}'\n\
         \toption spool_dir '{}'\n\
         \toption log_level '6'\n\
         {extra}\n{sections}\n",
        super::common::HOST,
        m.spool.display()
    );
    let p = m.dir.path().join(name);
    fs::write(&p, text).expect("write config");
    p
}
