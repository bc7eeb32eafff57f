//! Load: 50 clients at once against a daemon that takes at most 10
//! connections. Every message is either accepted (and then delivered to
//! the sink, once) or refused with a 4xx (the 421 of a full house); the
//! daemon's memory stays bounded, it never runs more SMTP workers than
//! allowed, leaves no zombie, and is idle and empty at the end.
//!
//! `MASQMAIL_LOAD_MESSAGES` (default 500) sets the count; bench/load.sh
//! runs Postfix's smtp-source with 5000 messages against a release build.

mod common;
#[path = "common/reliability.rs"]
mod reliability;
// (sink.rs imports more than this test uses.)
#[allow(unused_imports)]
#[path = "common/sink.rs"]
mod sink;

use std::collections::HashMap;
use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use reliability::*;

const CLIENTS: usize = 50;
const MAX_CONNECTIONS: usize = 10;

fn messages() -> usize {
    std::env::var("MASQMAIL_LOAD_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500)
}

/// A `Pss:` or `Rss:`-style field of a /proc file, in KiB.
fn kib(path: &str, field: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One message on a connection of its own, like smtp-source: Ok when
/// accepted, else the reply that refused it.
fn try_once(port: u16, rcpt: &str, text: &str) -> Result<(), String> {
    match SmtpConn::connect(port, Duration::from_secs(30)) {
        Err(e) => Err(format!("connect: {e}")),
        Ok((_, Step::Reply(421, t))) => Err(format!("421 greeting: {t}")),
        Ok((_, Step::Reply(code, t))) if code != 220 => Err(format!("greeting: {t}")),
        Ok((_, Step::Broken)) => Err("greeting: connection broken".into()),
        Ok((mut c, _)) => match c.cmd("EHLO client.example") {
            Step::Reply(250, _) => {
                let (fate, ok) = smtp_send(&mut c, "load@client.example", rcpt, text, false);
                if ok {
                    c.quit();
                }
                match fate {
                    Fate::Acked => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
            Step::Reply(_, t) => Err(format!("EHLO: {t}")),
            Step::Broken => Err("EHLO: connection broken".into()),
        },
    }
}

#[derive(Default, Debug)]
struct Samples {
    n: usize,
    max_rss: u64,
    max_pss: u64,
    max_total_pss: u64,
    max_workers: usize,
    max_zombies: usize,
    /// The longest a worker stayed a zombie (unreaped), in ms.
    max_zombie_ms: u128,
    /// The longest the daemon took to answer `status` on its control
    /// socket, in ms: the supervisor never waits for a worker.
    max_status_ms: u128,
}

#[test]
fn fifty_clients_against_ten_connections() {
    let total = messages();
    let sink = sink::Sink::start(sink::Behaviour::default());
    let port = free_port();
    let extra = format!(
        "\tlist listen_addresses '127.0.0.1:{port}'\n\
         \tlist local_nets '127.0.0.0/8'\n\
         \toption max_connections '{MAX_CONNECTIONS}'\n\
         \toption max_connections_per_ip '{MAX_CONNECTIONS}'\n"
    );
    let m = Mta::with_config("load", &extra, &sink_route("sink", sink.port, true));
    let log = m.dir.path().join("daemon.log");
    let mut d = spawn_daemon(&m.conf, &log);
    wait_daemon(&m.spool, &mut d, &log);
    let pid = d.pgid;
    let spool = m.spool.clone();

    // The sampler: the supervisor's RSS and PSS, all processes' PSS, the
    // workers and zombies among its children.
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Samples::default()));
    let sampler = {
        let (stop, samples, spool) = (stop.clone(), samples.clone(), spool.clone());
        std::thread::spawn(move || {
            let mut since: HashMap<i32, Instant> = HashMap::new();
            while !stop.load(Ordering::SeqCst) {
                let asked = Instant::now();
                let answered = control(&spool, "status").is_some();
                let status_ms = asked.elapsed().as_millis();
                let kids = children_of(pid);
                let zombies: Vec<i32> = kids.iter().filter(|k| k.1 == 'Z').map(|k| k.0).collect();
                let rollup = |p: i32| kib(&format!("/proc/{p}/smaps_rollup"), "Pss:").unwrap_or(0);
                let mut s = samples.lock().unwrap();
                s.n += 1;
                if answered {
                    s.max_status_ms = s.max_status_ms.max(status_ms);
                }
                s.max_rss = s
                    .max_rss
                    .max(kib(&format!("/proc/{pid}/status"), "VmRSS:").unwrap_or(0));
                s.max_pss = s.max_pss.max(rollup(pid));
                let all: u64 = rollup(pid) + kids.iter().map(|k| rollup(k.0)).sum::<u64>();
                s.max_total_pss = s.max_total_pss.max(all);
                s.max_workers = s.max_workers.max(kids.len() - zombies.len());
                s.max_zombies = s.max_zombies.max(zombies.len());
                since.retain(|p, _| zombies.contains(p));
                for z in &zombies {
                    let t = *since.entry(*z).or_insert_with(Instant::now);
                    s.max_zombie_ms = s.max_zombie_ms.max(t.elapsed().as_millis());
                }
                drop(s);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    // The clients: one message per connection, like smtp-source.
    let next = Arc::new(AtomicUsize::new(0));
    let refusals = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<HashMap<String, Result<(), String>>>> = Arc::default();
    let t0 = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, results, refusals) = (next.clone(), results.clone(), refusals.clone());
            std::thread::spawn(move || loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= total {
                    return;
                }
                let token = format!("load-{n}");
                let rcpt = format!("r{n}@remote.example");
                let text = message_for(&token, &rcpt, 2);
                // A refused message is tried again, like a client MTA
                // would, up to 100 times.
                let mut r = Err("not tried".to_string());
                for attempt in 0..100u64 {
                    r = try_once(port, &rcpt, &text);
                    match &r {
                        Err(e) if e.starts_with("421 ") => {
                            refusals.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(
                                5 + (n as u64 + attempt) % 20,
                            ));
                        }
                        _ => break,
                    }
                }
                results.lock().unwrap().insert(token, r);
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client panicked");
    }
    let took = t0.elapsed();
    let results = results.lock().unwrap().clone();
    let accepted: Vec<&String> = results
        .iter()
        .filter(|r| r.1.is_ok())
        .map(|r| r.0)
        .collect();
    let refused: Vec<&String> = results.iter().filter_map(|r| r.1.as_ref().err()).collect();
    // Only the 421 of a full house is expected; anything else is a bug.
    let odd: Vec<&&String> = refused.iter().filter(|e| !e.starts_with("421 ")).collect();
    assert!(
        odd.is_empty(),
        "refused other than with 421: {:?}",
        &odd[..odd.len().min(5)]
    );
    assert_eq!(accepted.len() + refused.len(), total);
    assert!(!accepted.is_empty(), "nothing accepted");

    // Everything accepted arrives, once.
    let t1 = Instant::now();
    while sink.messages().len() < accepted.len() || !spool_leftovers(&m.spool).is_empty() {
        assert!(
            t1.elapsed() < Duration::from_secs(120),
            "{} of {} delivered; {}",
            sink.messages().len(),
            accepted.len(),
            leftovers_text(&m.spool)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let delivered = took + t1.elapsed();
    let mut count: HashMap<String, usize> = HashMap::new();
    for g in sink.messages() {
        let (token, ok) = check_delivered(&g.data, &|t| body_for(t, 2)).expect("a test message");
        assert!(ok, "{token} arrived changed");
        *count.entry(token).or_default() += 1;
    }
    for t in &accepted {
        assert_eq!(
            count.get(*t),
            Some(&1),
            "{t}: accepted, delivered {:?} times",
            count.get(*t)
        );
    }
    assert_eq!(count.len(), accepted.len(), "delivered but refused");

    // Quiet again: no worker, no zombie, the daemon alive.
    let t2 = Instant::now();
    while !children_of(pid).is_empty() && t2.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    let s = samples.lock().unwrap();
    let idle_pss = kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:").unwrap_or(0);
    eprintln!(
        "load: {total} messages from {CLIENTS} clients, max_connections {MAX_CONNECTIONS}: \
         {} accepted, {} refused for good ({} connections refused with 421 on the way), \
         all accepted delivered once; accepted in {:.1}s, \
         delivered by {:.1}s; supervisor max RSS {} KiB, max PSS {} KiB, idle PSS {idle_pss} KiB; \
         all processes max PSS {} KiB; max {} workers at once; zombies max {} per sample, \
         none unreaped longer than {} ms; status answered within {} ms ({} samples)",
        accepted.len(),
        refused.len(),
        refusals.load(Ordering::Relaxed),
        took.as_secs_f64(),
        delivered.as_secs_f64(),
        s.max_rss,
        s.max_pss,
        s.max_total_pss,
        s.max_workers,
        s.max_zombies,
        s.max_zombie_ms,
        s.max_status_ms,
        s.n
    );
    assert!(
        children_of(pid).is_empty(),
        "children left: {:?}",
        children_of(pid)
    );
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "the daemon died:\n{}",
        tail(&log, 20)
    );
    // SMTP workers, plus one scan and one queue run at most.
    assert!(
        s.max_workers <= MAX_CONNECTIONS + 2,
        "{} workers at once, max_connections {MAX_CONNECTIONS}",
        s.max_workers
    );
    // The supervisor does not grow with the load (a debug build: generous).
    assert!(s.max_pss < 16 * 1024, "supervisor PSS {} KiB", s.max_pss);
    assert!(
        s.max_zombie_ms < 2000,
        "a zombie unreaped for {} ms",
        s.max_zombie_ms
    );
    // A supervisor that waited for a queue run (it once read the next
    // run's report pipe, blocking) answers late; 1 s is ten times what a
    // busy machine took.
    assert!(s.max_status_ms < 1000, "status took {} ms", s.max_status_ms);
    assert!(
        d.terminate(20),
        "no clean stop after the load:\n{}",
        tail(&log, 20)
    );
}
