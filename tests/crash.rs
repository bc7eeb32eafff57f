//! The crash loop: clients send mail over SMTP and through `sendmail`
//! while the daemon (one test) or the queue runner `runq` (the other) is
//! killed with SIGKILL at random moments, again and again. Afterwards a
//! daemon that is left alone flushes the queue to the sink, and:
//!
//! - every acknowledged message (a 250 after its data, or exit 0 of
//!   `sendmail`) arrived at the sink at least once, with its body intact;
//! - no message arrived whose end of data was never handed over (no final
//!   dot written, `sendmail`'s stdin not closed) or that was refused (a
//!   4xx/5xx reply, a non-zero exit). A message whose end of data was
//!   handed over but whose answer the client never saw (the server died
//!   first, or the client left without reading it) is *in doubt*: the
//!   server may have made it durable (a ready file) before it died, so it
//!   may arrive, and may not — exactly what RFC 5321 §6.1 allows;
//! - nothing is left in the spool (nor in corrupt/);
//! - the duplicates (a delivery done but not recorded before the kill) are
//!   counted, printed and bounded by the number of kills.
//!
//! The count of kills is `MASQMAIL_CRASH_KILLS` (default 200 per test);
//! bench/crash.sh runs the long version.

mod common;
#[path = "common/reliability.rs"]
mod reliability;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// (sink.rs imports more than this test uses.)
#[allow(unused_imports)]
#[path = "common/sink.rs"]
mod sink;

use common::*;
use reliability::*;

/// Largest body of a test message, in KB.
const MAX_KB: usize = 40;

fn kills() -> usize {
    std::env::var("MASQMAIL_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

/// The longest a process lives before its kill, in ms.
fn max_life_ms() -> u64 {
    std::env::var("MASQMAIL_CRASH_LIFE_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150)
}

/// What the clients saw, per message token.
#[derive(Default)]
struct Ledger(Mutex<HashMap<String, Fate>>);

impl Ledger {
    fn set(&self, token: &str, f: Fate) {
        self.0.lock().unwrap().insert(token.to_string(), f);
    }
}

/// What the client threads share.
struct Shared {
    stop: AtomicBool,
    ledger: Ledger,
    /// `sendmail` processes running now.
    inflight: Mutex<HashSet<i32>>,
    port: u16,
    sendmail: PathBuf,
    conf: PathBuf,
    spool: PathBuf,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// A new message: its token, recorded as not sent yet. Waits first
    /// while more than MAX_BACKLOG messages are queued, so that the final
    /// flush stays short.
    fn next(&self, kind: &str, t: usize, seq: &mut usize) -> String {
        while !self.stopped()
            && names(&self.spool.join("outgoing")).len() + names(&self.spool.join("incoming")).len()
                > MAX_BACKLOG
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        *seq += 1;
        let token = format!("{kind}{t}-{seq}");
        self.ledger.set(&token, Fate::NotSent);
        token
    }
}

const MAX_BACKLOG: usize = 150;

/// The client threads.
struct Clients {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl Clients {
    fn start(m: &Mta, port: u16, rng: &mut Rng, n_smtp: usize, n_sendmail: usize) -> Clients {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            ledger: Ledger::default(),
            inflight: Mutex::new(HashSet::new()),
            port,
            sendmail: m.bin.join("sendmail"),
            conf: m.conf.clone(),
            spool: m.spool.clone(),
        });
        let mut handles = Vec::new();
        for t in 0..n_smtp {
            let (sh, mut rng) = (shared.clone(), rng.fork());
            handles.push(std::thread::spawn(move || smtp_client(t, &sh, &mut rng)));
        }
        for t in 0..n_sendmail {
            let sh = shared.clone();
            handles.push(std::thread::spawn(move || sendmail_client(t, &sh)));
        }
        Clients { shared, handles }
    }

    /// SIGKILL every `sendmail` running now. They are only reaped under
    /// the same lock, so no pid here can belong to another process.
    fn kill_sendmails(&self) -> usize {
        let set = self.shared.inflight.lock().unwrap();
        for &p in set.iter() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        set.len()
    }

    fn stop(self) -> Arc<Shared> {
        self.shared.stop.store(true, Ordering::SeqCst);
        for h in self.handles {
            h.join().expect("client thread panicked");
        }
        self.shared
    }
}

/// Sessions of one to four messages each, one after the other.
fn smtp_client(t: usize, sh: &Shared, rng: &mut Rng) {
    let mut seq = 0;
    while !sh.stopped() {
        let Ok((mut c, greeting)) = SmtpConn::connect(sh.port, Duration::from_secs(3)) else {
            // The daemon is down: try again soon.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        if !matches!(greeting, Step::Reply(220, _))
            || !matches!(c.cmd("EHLO client.example"), Step::Reply(250, _))
        {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let mut usable = true;
        for _ in 0..1 + rng.below(4) {
            if sh.stopped() {
                break;
            }
            let token = sh.next("smtp", t, &mut seq);
            let rcpt = format!("s{t}@remote.example");
            let text = message_for(&token, &rcpt, MAX_KB);
            // Now and then the client dies right after its dot.
            let leave = rng.chance(30);
            let (fate, ok) = smtp_send(&mut c, "tester@client.example", &rcpt, &text, leave);
            sh.ledger.set(&token, fate);
            if !ok {
                usable = false;
                break;
            }
        }
        if usable {
            c.quit();
        } else {
            c.drop_now();
        }
    }
}

/// One `sendmail -i` after the other.
fn sendmail_client(t: usize, sh: &Shared) {
    let mut seq = 0;
    while !sh.stopped() {
        let token = sh.next("sm", t, &mut seq);
        let rcpt = format!("m{t}@remote.example");
        let text = message_for(&token, &rcpt, MAX_KB);
        let mut child = {
            let mut set = sh.inflight.lock().unwrap();
            let child = Command::new(&sh.sendmail)
                .arg("-C")
                .arg(&sh.conf)
                .args(["-i", &rcpt])
                .env_remove("TZ")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn sendmail");
            set.insert(child.id() as i32);
            child
        };
        let mut stdin = child.stdin.take().expect("stdin");
        // Closing stdin (the drop) hands the end of the message over.
        let handed_over = stdin.write_all(text.as_bytes()).is_ok();
        drop(stdin);
        // Reaped only under the lock kill_sendmails takes.
        let status = loop {
            {
                let mut set = sh.inflight.lock().unwrap();
                if let Ok(Some(st)) = child.try_wait() {
                    set.remove(&(child.id() as i32));
                    break st;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let fate = match (status.code(), handed_over) {
            (Some(0), _) => Fate::Acked,
            (Some(c), _) => Fate::Refused(format!("exit {c}: {}", err.trim())),
            (None, true) => Fate::InDoubt,
            (None, false) => Fate::NotSent,
        };
        sh.ledger.set(&token, fate);
    }
}

/// What the sink got against what the clients saw.
struct Tally {
    acked: usize,
    in_doubt: usize,
    in_doubt_delivered: usize,
    refused: usize,
    not_sent: usize,
    delivered: usize,
    duplicates: usize,
}

fn check(ledger: &Ledger, got: &[sink::Got], kills: usize, tag: &str) -> Tally {
    let fates = ledger.0.lock().unwrap();
    let mut count: HashMap<String, usize> = HashMap::new();
    let mut garbled = Vec::new();
    for g in got {
        match check_delivered(&g.data, &|t| body_for(t, MAX_KB)) {
            Some((token, true)) => *count.entry(token).or_default() += 1,
            Some((token, false)) => garbled.push(token),
            None => garbled.push(format!("(no token) {:.200}", g.data)),
        }
    }
    let mut t = Tally {
        acked: 0,
        in_doubt: 0,
        in_doubt_delivered: 0,
        refused: 0,
        not_sent: 0,
        delivered: got.len(),
        duplicates: count.values().map(|n| n - 1).sum(),
    };
    let (mut lost, mut wrong) = (Vec::new(), Vec::new());
    for (token, fate) in fates.iter() {
        let n = count.get(token).copied().unwrap_or(0);
        match fate {
            Fate::Acked => {
                t.acked += 1;
                if n == 0 {
                    lost.push(token.clone());
                }
            }
            Fate::InDoubt => {
                t.in_doubt += 1;
                t.in_doubt_delivered += (n > 0) as usize;
            }
            Fate::Refused(why) => {
                t.refused += 1;
                if n > 0 {
                    wrong.push(format!("{token} (refused: {why})"));
                }
            }
            Fate::NotSent => {
                t.not_sent += 1;
                if n > 0 {
                    wrong.push(format!("{token} (end of data never sent)"));
                }
            }
        }
    }
    let unknown: Vec<&String> = count.keys().filter(|k| !fates.contains_key(*k)).collect();
    eprintln!(
        "{tag}: {kills} kills; {} messages tried: {} acknowledged, {} in doubt ({} of them delivered), \
         {} refused, {} never handed over; sink got {} deliveries, {} duplicate(s); lost: {}",
        fates.len(),
        t.acked,
        t.in_doubt,
        t.in_doubt_delivered,
        t.refused,
        t.not_sent,
        t.delivered,
        t.duplicates,
        lost.len()
    );
    let mut refusals: HashMap<String, usize> = HashMap::new();
    for f in fates.values() {
        if let Fate::Refused(w) = f {
            let w: String = w.chars().filter(|c| !c.is_ascii_digit()).take(60).collect();
            *refusals.entry(w).or_default() += 1;
        }
    }
    if !refusals.is_empty() {
        eprintln!("{tag}: refusals: {refusals:?}");
    }
    assert!(
        lost.is_empty(),
        "acknowledged but never delivered: {lost:?}"
    );
    assert!(
        wrong.is_empty(),
        "delivered but never acknowledged as handed over: {wrong:?}"
    );
    assert!(
        garbled.is_empty(),
        "delivered with a changed body: {garbled:?}"
    );
    assert!(unknown.is_empty(), "delivered but never sent: {unknown:?}");
    assert!(t.acked > 0, "no message was acknowledged at all");
    assert!(
        t.duplicates <= kills,
        "{} duplicates for {kills} kills: more than one per kill",
        t.duplicates
    );
    t
}

/// Flush through the daemon until the spool is empty.
fn drain(spool: &Path, secs: u64) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        let _ = control(spool, "flush");
        if wait_spool_empty(spool, 5) {
            return true;
        }
    }
    false
}

fn setup(tag: &str, sink_port: u16, daemon_routes: bool) -> (Mta, u16, PathBuf) {
    let port = free_port();
    let sections = if daemon_routes {
        sink_route("sink", sink_port, true)
    } else {
        String::new()
    };
    let m = Mta::with_config(tag, &listen_lines(port), &sections);
    let log = m.dir.path().join("daemon.log");
    (m, port, log)
}

#[test]
fn daemon_killed_at_random_moments_loses_nothing() {
    let kills = kills();
    let mut rng = Rng::from_env("crash-daemon");
    let sink = sink::Sink::start(sink::Behaviour::default());
    let (m, port, log) = setup("crashd", sink.port, true);
    let mut reaper = Reaper::new();
    let clients = Clients::start(&m, port, &mut rng, 3, 2);
    let t0 = Instant::now();
    let (mut leader_only, mut sendmails_killed) = (0, 0);
    for _ in 0..kills {
        let mut d = spawn_daemon(&m.conf, &log);
        reaper.watch(d.pgid);
        std::thread::sleep(Duration::from_millis(rng.below(max_life_ms() + 1)));
        // Mostly the whole daemon with its workers; sometimes only the
        // supervisor, leaving its workers to finish as orphans next to
        // the next daemon.
        if rng.chance(5) {
            d.kill_leader();
            leader_only += 1;
        } else {
            d.kill_all();
        }
        if rng.chance(2) {
            sendmails_killed += clients.kill_sendmails();
        }
        reaper.reap();
    }
    let shared = clients.stop();
    reaper.kill_all();
    eprintln!(
        "crash-daemon: {kills} kills ({leader_only} of the supervisor only) and {sendmails_killed} sendmail kills in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    // A daemon that lives: recovery, then everything out.
    let mut d = spawn_daemon(&m.conf, &log);
    wait_daemon(&m.spool, &mut d, &log);
    let drained = drain(&m.spool, 90);
    d.terminate(20);
    reaper.kill_all();
    assert!(
        drained,
        "spool not empty after the flush: {}\n{}",
        leftovers_text(&m.spool),
        tail(&log, 40)
    );
    let got = sink.messages();
    check(&shared.ledger, &got, kills, "crash-daemon");
    assert_eq!(spool_leftovers(&m.spool), Vec::<String>::new());
}

#[test]
fn queue_runner_killed_at_random_moments_loses_nothing() {
    let kills = kills();
    let mut rng = Rng::from_env("crash-runq");
    let sink = sink::Sink::start(sink::Behaviour::default());
    // The daemon receives and scans but has no route; runq has the sink.
    let (m, port, log) = setup("crashq", sink.port, false);
    let runq_conf = write_config(&m, "runq.conf", "", &sink_route("sink", sink.port, true));
    // Every runq's log, for a failure message.
    let runq_log = m.dir.path().join("runq.log");
    let runq_err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&runq_log)
        .expect("runq.log");
    let mut reaper = Reaper::new();
    let mut d = spawn_daemon(&m.conf, &log);
    reaper.watch(d.pgid);
    wait_daemon(&m.spool, &mut d, &log);
    let clients = Clients::start(&m, port, &mut rng, 2, 2);
    let t0 = Instant::now();
    let runq = |r: &mut Reaper| {
        let g = Group::spawn(
            Command::new(m.bin.join("runq"))
                .arg("-C")
                .arg(&runq_conf)
                .env_remove("TZ")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(runq_err.try_clone().expect("runq.log")),
        );
        r.watch(g.pgid);
        g
    };
    let mut sendmails_killed = 0;
    for _ in 0..kills {
        let mut g = runq(&mut reaper);
        std::thread::sleep(Duration::from_millis(rng.below(max_life_ms() + 1)));
        g.kill_all();
        if rng.chance(4) {
            sendmails_killed += clients.kill_sendmails();
        }
        reaper.reap();
    }
    let shared = clients.stop();
    eprintln!(
        "crash-runq: {kills} runq kills and {sendmails_killed} sendmail kills in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    // The daemon scans what is left in incoming/; runq delivers it all.
    let t1 = Instant::now();
    while !spool_leftovers(&m.spool).is_empty() && t1.elapsed() < Duration::from_secs(90) {
        let mut g = runq(&mut reaper);
        let _ = g.child.wait();
        reaper.reap();
    }
    d.terminate(20);
    reaper.kill_all();
    assert!(
        spool_leftovers(&m.spool).is_empty(),
        "spool not empty after the last queue runs: {}\n{}\n{}",
        leftovers_text(&m.spool),
        tail(&log, 40),
        lines_about_leftovers(&m.spool, &[&log, &runq_log])
    );
    let got = sink.messages();
    check(&shared.ledger, &got, kills, "crash-runq");
}
