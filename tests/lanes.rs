//! Queue runs in lanes (src/deliver/lanes.rs): local delivery and each
//! route in a process of its own, at most `max_parallel_routes` at a
//! time. Real `runq` processes, SMTP servers on loopback: a smarthost
//! that takes the connection and never says a word must not hold up the
//! other routes; one that holds a message for two routes gets each half
//! from its own lane; a lane killed with SIGKILL loses nothing.

mod common;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/sink.rs"]
mod sink;

use std::collections::HashMap;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use daemon::{children_of, free_port, Daemon};
use sink::{Behaviour, Got, Sink};

fn mta(tag: &str, extra: &str, sections: &str) -> Mta {
    Mta::with_dir_config(tag, extra, sections)
}

/// A permanent route to `port` for the recipients in `domain`.
fn route(name: &str, port: u16, domain: &str) -> String {
    format!(
        "config route '{name}'\n\toption permanent '1'\n\toption mail_host '127.0.0.1:{port}'\n\
         \toption tls 'none'\n\tlist allowed_recipients '*@{domain}'\n\n"
    )
}

fn send(m: &Mta, to: &[&str], subject: &str) {
    let mut args = vec!["-f", "bob@remote.example"];
    args.extend_from_slice(to);
    let msg = format!("Subject: {subject}\n\n{subject}\n");
    expect_code(&m.sendmail(&args, &msg), 0);
}

fn spawn_runq(m: &Mta) -> Child {
    Command::new(m.bin.join("runq"))
        .args(["-C", m.conf.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runq")
}

fn runq(m: &Mta) {
    let out = m.run("runq", &[], b"");
    expect_code(&out, 0);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

fn mbox(m: &Mta) -> String {
    fs::read_to_string(m.dir.path().join("mail").join(user())).unwrap_or_default()
}

fn subject(g: &Got) -> String {
    let t = g.data.replace("\r\n", "\n");
    let head = t.split("\n\n").next().unwrap_or("").to_string();
    head.lines()
        .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
        .unwrap_or_default()
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(c) = fs::read(format!("/proc/{p}/cmdline")) {
            if String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .contains(needle)
            {
                out.push(p);
            }
        }
    }
    out
}

/// A smarthost that accepts connections and never answers, until it is
/// released: then it closes them (and every later one) at once.
struct Silent {
    port: u16,
    accepted: Arc<AtomicUsize>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    released: Arc<AtomicBool>,
}

impl Silent {
    fn start() -> Silent {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        l.set_nonblocking(true).expect("nonblocking");
        let accepted = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(Mutex::new(Vec::new()));
        let released = Arc::new(AtomicBool::new(false));
        let (a, h, r) = (accepted.clone(), held.clone(), released.clone());
        std::thread::spawn(move || loop {
            match l.accept() {
                Ok((s, _)) => {
                    a.fetch_add(1, Ordering::SeqCst);
                    if !r.load(Ordering::SeqCst) {
                        h.lock().unwrap().push(s);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        });
        Silent {
            port,
            accepted,
            held,
            released,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Close what is held; close later connections at once.
    fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        for s in self.held.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn holding(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

/// Routes `slow` (the silent smarthost, for *@slow.example) and `fast`
/// (the sink, for *@fast.example); one message for each, the slow one
/// first, and one for a local mailbox.
fn slow_and_fast(tag: &str, parallel: u32) -> (Mta, Silent, Sink) {
    slow_and_fast_with(tag, &format!("\toption max_parallel_routes '{parallel}'\n"))
}

fn slow_and_fast_with(tag: &str, extra: &str) -> (Mta, Silent, Sink) {
    let silent = Silent::start();
    let sink = Sink::start(Behaviour::default());
    let m = mta(
        tag,
        extra,
        &[
            route("slow", silent.port, "slow.example"),
            route("fast", sink.port, "fast.example"),
        ]
        .concat(),
    );
    send(&m, &["x@slow.example"], "to the slow route");
    send(&m, &["y@fast.example"], "to the fast route");
    send(&m, &[&format!("{}@{HOST}", user())], "to a local mailbox");
    (m, silent, sink)
}

#[test]
fn a_silent_smarthost_does_not_hold_up_the_other_routes() {
    let (m, silent, sink) = slow_and_fast("lanes-parallel", 2);
    let mut run = spawn_runq(&m);
    assert!(
        wait_until(Duration::from_secs(30), || silent.accepted() >= 1),
        "the slow route was never tried"
    );
    // While the slow route's connection hangs, the fast route and the
    // local mailbox get their mail.
    let got = sink.wait_for(1, 30);
    assert_eq!(subject(&got[0]), "to the fast route");
    assert!(
        wait_until(Duration::from_secs(30), || mbox(&m)
            .contains("Subject: to a local mailbox")),
        "local delivery waited for the slow route"
    );
    assert_eq!(silent.holding(), 1, "the slow connection is still open");
    assert!(
        matches!(run.try_wait(), Ok(None)),
        "runq ended while a route hangs"
    );
    // The lanes that are done are reaped at once: one child left, the
    // slow lane, and no zombie.
    let pid = run.id();
    assert!(
        wait_until(Duration::from_secs(10), || children_of(pid as i32).len()
            == 1),
        "children of runq: {:?}",
        children_of(pid as i32)
    );
    assert!(children_of(pid as i32).iter().all(|(_, s)| *s != 'Z'));
    // Let the slow one fail: deferred, runq ends.
    silent.release();
    let out = run.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(children_of(pid as i32).is_empty());
    assert!(processes_with(m.conf.to_str().unwrap()).is_empty());
    let q = m.mailq();
    assert!(q.contains("x@slow.example"), "{q}");
    assert_eq!(m.queued_ids().len(), 1, "{q}");
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn one_route_at_a_time_when_max_parallel_routes_is_1() {
    let (m, silent, sink) = slow_and_fast("lanes-serial", 1);
    let run = spawn_runq(&m);
    assert!(
        wait_until(Duration::from_secs(30), || silent.accepted() >= 1),
        "the slow route was never tried"
    );
    // The slow message is the oldest: everything else waits behind it,
    // in the one process of the run.
    std::thread::sleep(Duration::from_millis(800));
    assert!(sink.messages().is_empty(), "the fast route went first");
    assert!(mbox(&m).is_empty(), "the local mailbox went first");
    assert!(
        children_of(run.id() as i32).is_empty(),
        "{:?}",
        children_of(run.id() as i32)
    );
    silent.release();
    let out = run.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sink.messages().len(), 1);
    assert!(mbox(&m).contains("Subject: to a local mailbox"));
    assert_eq!(m.queued_ids().len(), 1);
}

#[test]
fn a_message_for_two_routes_gets_both_halves_and_is_removed_once() {
    // The lane for `a` is slow, so the lanes meet on the shared messages
    // in both orders; each must start from what the other recorded.
    let a = Sink::start(Behaviour {
        data_delay: Some(Duration::from_millis(150)),
        ..Behaviour::default()
    });
    let b = Sink::start(Behaviour::default());
    let m = mta(
        "lanes-shared",
        "",
        &[
            route("a", a.port, "a.example"),
            route("b", b.port, "b.example"),
        ]
        .concat(),
    );
    for i in 0..6 {
        send(&m, &["x@a.example", "y@b.example"], &format!("both {i}"));
        send(&m, &["y@b.example"], &format!("b only {i}"));
    }
    runq(&m);
    let count = |s: &Sink| {
        let mut c: HashMap<String, usize> = HashMap::new();
        for g in s.messages() {
            *c.entry(subject(&g)).or_default() += 1;
        }
        c
    };
    let (ca, cb) = (count(&a), count(&b));
    for i in 0..6 {
        assert_eq!(ca.get(&format!("both {i}")), Some(&1), "a: {ca:?}");
        assert_eq!(cb.get(&format!("both {i}")), Some(&1), "b: {cb:?}");
        assert_eq!(cb.get(&format!("b only {i}")), Some(&1), "b: {cb:?}");
    }
    assert_eq!(a.messages().len(), 6);
    assert_eq!(b.messages().len(), 12);
    assert!(a.messages().iter().all(|g| g.rcpts == ["x@a.example"]));
    assert!(b.messages().iter().all(|g| g.rcpts == ["y@b.example"]));
    assert_eq!(m.mailq(), "Mail queue is empty\n");
    assert!(m.files("pool").is_empty(), "{:?}", m.files("pool"));
    assert!(m.files("outgoing").is_empty(), "{:?}", m.files("outgoing"));
    // Nothing was left half recorded: a second run sends nothing.
    runq(&m);
    assert_eq!(a.messages().len(), 6);
    assert_eq!(b.messages().len(), 12);
}

#[test]
fn a_lane_killed_mid_delivery_loses_nothing() {
    const N: usize = 30;
    let slow = Behaviour {
        data_delay: Some(Duration::from_millis(30)),
        ..Behaviour::default()
    };
    let a = Sink::start(slow.clone());
    let b = Sink::start(slow);
    let m = mta(
        "lanes-kill",
        "",
        &[
            route("a", a.port, "a.example"),
            route("b", b.port, "b.example"),
        ]
        .concat(),
    );
    for i in 0..N {
        let to: &[&str] = match i % 3 {
            0 => &["x@a.example"],
            1 => &["y@b.example"],
            _ => &["x@a.example", "y@b.example"],
        };
        send(&m, to, &format!("k{i}"));
    }
    let run = spawn_runq(&m);
    let pid = run.id();
    assert!(
        wait_until(Duration::from_secs(30), || a.messages().len() >= 3
            && b.messages().len() >= 3),
        "the lanes did not start"
    );
    let lanes = children_of(pid as i32);
    assert_eq!(lanes.len(), 2, "{lanes:?}");
    // Kill one lane; the other goes on, the runner reaps both.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(lanes[0].0),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
    let out = run.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("incomplete"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(children_of(pid as i32).is_empty());
    assert!(processes_with(m.conf.to_str().unwrap()).is_empty());
    let before = a.messages().len() + b.messages().len();
    runq(&m);
    let mut count: HashMap<(u16, String), usize> = HashMap::new();
    for (port, s) in [(a.port, &a), (b.port, &b)] {
        for g in s.messages() {
            *count.entry((port, subject(&g))).or_default() += 1;
        }
    }
    for i in 0..N {
        let k = format!("k{i}");
        if i % 3 != 1 {
            assert!(count.contains_key(&(a.port, k.clone())), "{k} lost on a");
        }
        if i % 3 != 0 {
            assert!(count.contains_key(&(b.port, k.clone())), "{k} lost on b");
        }
    }
    let dups: usize = count.values().map(|c| c - 1).sum();
    eprintln!("lane killed after {before} deliveries: {dups} duplicate(s)");
    assert!(dups <= 1, "{dups} duplicates: at most the one in flight");
    assert_eq!(m.mailq(), "Mail queue is empty\n");
    assert!(m.files("pool").is_empty(), "{:?}", m.files("pool"));
    m.assert_clean_spool();
}

#[test]
fn the_daemon_runs_routes_in_parallel_and_knows_the_next_retry() {
    let port = free_port();
    let (m, silent, sink) = slow_and_fast_with(
        "lanes-daemon",
        &format!("\tlist listen_addresses '127.0.0.1:{port}'\n"),
    );
    let d = Daemon::start(&m);
    // The run at start: the fast route and the mailbox while the slow
    // smarthost holds its connection.
    assert!(
        wait_until(Duration::from_secs(30), || silent.accepted() >= 1),
        "the slow route was never tried:\n{}",
        d.log()
    );
    let got = sink.wait_for(1, 30);
    assert_eq!(subject(&got[0]), "to the fast route");
    assert!(
        wait_until(Duration::from_secs(30), || mbox(&m)
            .contains("Subject: to a local mailbox")),
        "local delivery waited for the slow route:\n{}",
        d.log()
    );
    assert_eq!(silent.holding(), 1, "the slow connection is still open");
    silent.release();
    // The run ends; its report (merged from the lanes and the finish
    // pass) gives the daemon the slow recipient's retry time.
    d.wait_no_children();
    let status = || {
        let out = m.run_raw("masqmail", &["-C", m.conf.to_str().unwrap(), "status"], b"");
        stdout(&out)
    };
    assert!(
        wait_until(Duration::from_secs(10), || status()
            .contains("next retry: in ")),
        "{}\n{}",
        status(),
        d.log()
    );
    let q = m.mailq();
    assert!(q.contains("x@slow.example"), "{q}");
    assert_eq!(m.queued_ids().len(), 1, "{q}");
    let log = d.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(d.stop().success());
}
