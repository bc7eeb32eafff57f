//! Durability order, seen from the kernel: strace records the system
//! calls of one acceptance, and the acknowledgement (`sendmail`'s exit 0,
//! the SMTP `250 … queued as ID`) must come after every step that makes
//! the message durable (doc/INTERNALS.md, S1 → S3):
//!
//!   create pool/ID (O_EXCL), write the body, fsync it;
//!   create incoming/ID (O_EXCL), write all of it (its sealed end line
//!   included), fchmod 0700 (ready), then fsync (the mode is metadata:
//!   fsync, not fdatasync);
//!   fsync the directories incoming/ and pool/;
//!   then, and only then, the acknowledgement.
//!
//! Needs strace (CI installs it); without it the tests say why and pass.

mod common;
#[path = "common/reliability.rs"]
mod reliability;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reliability::*;

const TRACE: &str = "openat,write,fsync,fdatasync,rename,chmod,fchmod,unlink,sendto,writev";

fn have_strace() -> bool {
    let ok = Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP: strace is missing or cannot trace here (apt-get install strace)");
    }
    ok
}

/// `strace -f -yy -s 256 -e trace=… -o trace` before `args`.
fn strace(trace: &Path) -> Command {
    let mut c = Command::new("strace");
    c.args(["-f", "-yy", "-s", "256", "-e"])
        .arg(format!("trace={TRACE}"))
        .arg("-o")
        .arg(trace)
        .arg("--");
    c
}

/// One traced call: (pid, name, arguments and result as printed).
#[derive(Debug)]
struct Call {
    pid: i32,
    name: String,
    rest: String,
}

fn parse(trace: &str) -> Vec<Call> {
    let mut out = Vec::new();
    for line in trace.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse() else {
            continue;
        };
        let rest = rest.trim_start();
        // "<... fsync resumed>" continues a call already listed.
        if rest.starts_with("<...") {
            continue;
        }
        let name = if rest.starts_with("+++ exited with") {
            "EXIT".to_string()
        } else {
            rest.split('(').next().unwrap_or("").to_string()
        };
        out.push(Call {
            pid,
            name,
            rest: rest.to_string(),
        });
    }
    out
}

/// The first argument of a call: with `-yy` a descriptor is printed as
/// `3</path>` or `7<TCP:[127.0.0.1:25->127.0.0.1:5000]>`.
fn first_arg(c: &Call) -> &str {
    let a = c.rest.split_once('(').map(|x| x.1).unwrap_or("");
    let end = match a.find('<') {
        Some(i) if a[..i].bytes().all(|b| b.is_ascii_digit()) => a.find('>').map(|j| j + 1),
        _ => a.find([',', ')']),
    };
    &a[..end.unwrap_or(a.len())]
}

/// The steps of one acceptance of message `id` by process `pid`, in the
/// order they must happen, each after the one before. `ack` says which
/// call is the acknowledgement. Panics with the trace of `pid` when a
/// step is missing or out of order.
fn check_order(calls: &[Call], pid: i32, id: &str, what: &str, ack: &dyn Fn(&Call) -> bool) {
    let mine: Vec<&Call> = calls.iter().filter(|c| c.pid == pid).collect();
    let dump = || {
        mine.iter()
            .filter(|c| c.rest.contains("/spool") || c.rest.contains("socket") || c.name == "EXIT")
            .map(|c| c.rest.chars().take(160).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let pool_file = format!("/pool/{id}>");
    let inc_file = format!("/incoming/{id}>");
    let is =
        |c: &Call, name: &str, fd_ends: &str| c.name == name && first_arg(c).ends_with(fd_ends);
    let sync = |c: &Call, fd_ends: &str| is(c, "fsync", fd_ends) || is(c, "fdatasync", fd_ends);
    let creates = |c: &Call, path: &str| {
        c.name == "openat"
            && c.rest.contains(&format!("{path}\""))
            && c.rest.contains("O_CREAT")
            && c.rest.contains("O_EXCL")
    };
    let first_after = |from: usize, step: &str, p: &dyn Fn(&Call) -> bool| -> usize {
        match mine.iter().skip(from).position(|c| p(c)) {
            Some(i) => from + i,
            None => panic!(
                "{what}: no {step} after call #{from}; the trace of {pid}:\n{}",
                dump()
            ),
        }
    };
    let last = |p: &dyn Fn(&Call) -> bool| mine.iter().rposition(|c| p(c));

    let created = first_after(0, "O_EXCL create of pool/ID", &|c| {
        creates(c, &format!("/pool/{id}"))
    });
    let body_end = last(&|c| is(c, "write", &pool_file))
        .unwrap_or(created)
        .max(created);
    let body_sync = first_after(body_end, "fsync of pool/ID after its last write", &|c| {
        sync(c, &pool_file)
    });
    let hdr = first_after(body_sync, "O_EXCL create of incoming/ID", &|c| {
        creates(c, &format!("/incoming/{id}"))
    });
    let hdr_end = last(&|c| is(c, "write", &inc_file)).unwrap_or(hdr);
    assert!(
        hdr_end > hdr,
        "{what}: incoming/ID never written:\n{}",
        dump()
    );
    // The ready bit only after the last write of the header file, and the
    // fsync after the ready bit: then the acknowledgement finds both the
    // whole file and its bit on disk.
    let ready = first_after(
        hdr_end,
        "fchmod 0700 of incoming/ID after its last write",
        &|c| is(c, "fchmod", &inc_file) && c.rest.contains("0700"),
    );
    let ready_sync = first_after(
        ready,
        "fsync (not fdatasync) of incoming/ID after the fchmod",
        &|c| is(c, "fsync", &inc_file),
    );
    let inc_dir = first_after(ready_sync, "fsync of the directory incoming/", &|c| {
        is(c, "fsync", "/incoming>")
    });
    let pool_dir = first_after(ready_sync, "fsync of the directory pool/", &|c| {
        is(c, "fsync", "/pool>")
    });
    let durable = inc_dir.max(pool_dir);
    let acked = match mine.iter().position(|c| ack(c)) {
        Some(i) => i,
        None => panic!(
            "{what}: no acknowledgement in the trace of {pid}:\n{}",
            dump()
        ),
    };
    assert!(
        acked > durable,
        "{what}: acknowledged (call #{acked}) before the message was durable (call #{durable}):\n{}",
        dump()
    );
    eprintln!(
        "{what}: create #{created}, body fsync #{body_sync}, header create #{hdr}, last write #{hdr_end}, \
         fchmod #{ready}, fsync #{ready_sync}, dir fsyncs #{inc_dir} #{pool_dir}, acknowledged #{acked}"
    );
}

#[test]
fn sendmail_exits_0_only_after_the_fsyncs() {
    if !have_strace() {
        return;
    }
    let m = Mta::new("dura-sm");
    let trace = m.dir.path().join("trace");
    let body = "line of the body\n".repeat(3000);
    let mut child = strace(&trace)
        .arg(m.bin.join("sendmail"))
        .args(["-C", m.conf.to_str().unwrap(), "-i", "a@remote.example"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strace");
    {
        use std::io::Write;
        let mut si = child.stdin.take().unwrap();
        si.write_all(format!("Subject: durable\n\n{body}").as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    expect_code(&out, 0);
    let ids = m.queued_ids();
    assert_eq!(ids.len(), 1);
    let text = fs::read_to_string(&trace).unwrap();
    let calls = parse(&text);
    let pid = calls.first().expect("an empty trace").pid;
    check_order(&calls, pid, &ids[0], "sendmail", &|c: &Call| {
        c.name == "EXIT" && c.rest.contains("exited with 0")
    });
}

#[test]
fn smtp_250_only_after_the_fsyncs() {
    if !have_strace() {
        return;
    }
    let port = free_port();
    let m = Mta::with_config("dura-smtp", &listen_lines(port), "");
    let trace = m.dir.path().join("trace");
    let log = m.dir.path().join("daemon.log");
    let err = fs::File::create(&log).unwrap();
    let mut child = strace(&trace)
        .arg(BIN)
        .args(["daemon", "-v", "-C", m.conf.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn strace");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = control(&m.spool, "status") {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the daemon under strace never answered:\n{}",
            tail(&log, 20)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let daemon_pid: i32 = status
        .lines()
        .find_map(|l| l.strip_prefix("pid: "))
        .and_then(|p| p.trim().parse().ok())
        .expect("pid in status");
    let (mut c, greeting) = SmtpConn::connect(port, Duration::from_secs(10)).expect("connect");
    assert!(matches!(greeting, Step::Reply(220, _)));
    assert!(matches!(c.cmd("EHLO client.example"), Step::Reply(250, _)));
    let text = format!("Subject: durable\n\n{}", "line of the body\n".repeat(3000));
    let (fate, _) = smtp_send(&mut c, "a@client.example", "b@remote.example", &text, false);
    assert_eq!(fate, Fate::Acked);
    c.quit();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = child.wait();
    let text = fs::read_to_string(&trace).unwrap();
    let calls = parse(&text);
    // The worker that created the pool file, and the ID it gave out.
    let create = calls
        .iter()
        .find(|c| c.name == "openat" && c.rest.contains("/pool/") && c.rest.contains("O_EXCL"))
        .expect("no pool file created in the trace");
    let id = create
        .rest
        .split("/pool/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("ID in the create")
        .to_string();
    let reply = format!("queued as {id}");
    check_order(&calls, create.pid, &id, "SMTP DATA", &|c: &Call| {
        matches!(c.name.as_str(), "write" | "sendto" | "writev")
            && first_arg(c).contains("TCP:")
            && c.rest.contains("250 ")
            && c.rest.contains(&reply)
    });
}
