//! A full spool: the spool is a small tmpfs (needs root; CI is root),
//! filled page by page or inode by inode while mail comes in over SMTP and
//! through `sendmail`, and while a queue run records its results. Every
//! answer is either an acknowledgement of a complete message or a clean
//! temporary error (452/451, exit 75); nothing half-written is left ready;
//! a queue run that cannot rewrite its header file leaves the message as
//! it was, whole and deliverable; and once space returns, mail flows.
//! (tests/bad_input.rs has the plain "sendmail on a full disk" case.)

mod common;
#[path = "common/reliability.rs"]
mod reliability;
// (sink.rs imports more than these tests use.)
#[allow(unused_imports)]
#[path = "common/sink.rs"]
mod sink;

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use reliability::*;

const PAGE: usize = 4096;

/// Mount a tmpfs with `opts` as the spool of `m`; false (after saying
/// why) when this machine cannot.
fn tmpfs_spool(spool: &Path, opts: &str) -> bool {
    if !is_root() {
        eprintln!("SKIP: mounting a small tmpfs as the spool needs root (CI is root)");
        return false;
    }
    fs::create_dir_all(spool).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("{opts},mode=0700"), "tmpfs"])
        .arg(spool)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP: cannot mount a tmpfs here");
    }
    ok
}

/// Fill the file system of `dir` completely with `dir/filler`, then give
/// back `free` bytes.
fn fill_leaving(dir: &Path, free: usize) {
    let p = dir.join("filler");
    let mut f = File::create(&p).unwrap();
    let chunk = vec![0u8; PAGE];
    let mut len = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => len += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", p.display()),
        }
    }
    f.set_len(len.saturating_sub(free as u64)).unwrap();
}

fn unfill(dir: &Path) {
    let _ = fs::remove_file(dir.join("filler"));
    for n in names(dir) {
        if n.starts_with("inode-") {
            let _ = fs::remove_file(dir.join(n));
        }
    }
}

/// Use up every free inode of the file system of `dir`, then give `free`
/// of them back.
fn fill_inodes_leaving(dir: &Path, free: usize) {
    let mut made = Vec::new();
    for i in 0.. {
        let p = dir.join(format!("inode-{i}"));
        match File::create(&p) {
            Ok(_) => made.push(p),
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("{}: {e}", p.display()),
        }
    }
    for p in made.iter().rev().take(free) {
        fs::remove_file(p).unwrap();
    }
}

/// Header files are all ready, no `ID.new` is left, nothing was set
/// aside: nothing half-written counts as mail.
fn assert_nothing_half_ready(m: &Mta) {
    for sub in ["incoming", "outgoing"] {
        for f in names(&m.spool.join(sub)) {
            assert!(!f.ends_with(".new"), "{sub}/{f} left behind");
            // (Gone meanwhile: the daemon scanned it.)
            if let Ok(meta) = fs::metadata(m.spool.join(sub).join(&f)) {
                assert!(
                    meta.permissions().mode() & 0o100 != 0,
                    "{sub}/{f} is not ready"
                );
            }
        }
    }
    assert!(
        names(&m.spool.join("corrupt")).is_empty(),
        "set aside: {:?}",
        names(&m.spool.join("corrupt"))
    );
    // Every body has a header file and the other way round.
    let mut headers: Vec<String> = names(&m.spool.join("incoming"));
    headers.extend(names(&m.spool.join("outgoing")));
    headers.sort();
    headers.dedup();
    assert_eq!(
        names(&m.spool.join("pool")),
        headers,
        "bodies and header files differ"
    );
}

/// The body size of the sweep: three pages, so that with 0–2 free pages
/// the body cannot be written, with 3 the header file cannot, with 4 the
/// message is accepted but cannot be scanned yet, and from 5 on all fits.
const BODY: usize = 3 * PAGE - 1000;
/// A body that fails while it streams in, long before its end.
const BIG: usize = 200_000;

/// The expected body of a sweep message (its size is in its token).
fn body_of(token: &str) -> String {
    let len = token
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(BODY);
    body_exact(token, len)
}

/// One case of a sweep: a label, how to fill the disk, the body size.
type Case = (String, Box<dyn Fn(&Path)>, usize);

fn cases() -> Vec<Case> {
    let mut v: Vec<Case> = Vec::new();
    for free in 0..8 {
        v.push((
            format!("{free}p"),
            Box::new(move |d: &Path| fill_leaving(d, free * PAGE)),
            BODY,
        ));
    }
    v.push((
        "25p".into(),
        Box::new(|d: &Path| fill_leaving(d, 25 * PAGE)),
        BIG,
    ));
    // Inodes instead of bytes: none for pool/ID, none for incoming/ID,
    // none for outgoing/ID (accepted; scanning waits), enough.
    for free in 0..4 {
        v.push((
            format!("{free}i"),
            Box::new(move |d: &Path| fill_inodes_leaving(d, free)),
            1000,
        ));
    }
    v
}

/// Run the sweep with `send` (true: acknowledged, false: refused with a
/// temporary error; anything else panics inside). Returns the tokens
/// acknowledged.
fn sweep(m: &Mta, daemon: i32, what: &str, send: &dyn Fn(&str, &str) -> bool) -> Vec<String> {
    let (mut acked, mut seen) = (Vec::new(), Vec::new());
    let mut refused = 0;
    for (label, fill, size) in cases() {
        let pool_before = names(&m.spool.join("pool"));
        fill(&m.spool);
        let token = format!("{what}-{label}-{size}");
        let text = message_with(&token, "full@remote.example", &body_of(&token));
        let ok = send(&token, &text);
        // The daemon's workers (the SMTP session, a scan) are done: what
        // is in the spool now is what they left.
        wait_idle(daemon);
        seen.push(format!("{label}:{}", if ok { "ok" } else { "tempfail" }));
        if ok {
            acked.push(token);
        } else {
            refused += 1;
            assert_eq!(
                names(&m.spool.join("pool")),
                pool_before,
                "{token}: a body stayed"
            );
        }
        assert_nothing_half_ready(m);
        unfill(&m.spool);
    }
    eprintln!(
        "{what} on a filling disk: {} acknowledged, {refused} refused for the time being \
         (free pages p / inodes i: {})",
        acked.len(),
        seen.join(" ")
    );
    // Fewer free pages never do better than more.
    let pages: Vec<bool> = seen.iter().take(8).map(|s| s.ends_with("ok")).collect();
    assert!(
        pages.windows(2).all(|w| w[0] <= w[1]),
        "not monotonic: {seen:?}"
    );
    assert!(
        !pages[0] && pages[7],
        "the sweep missed the boundary: {seen:?}"
    );
    assert!(
        !seen[8].ends_with("ok"),
        "a message bigger than the free space was accepted"
    );
    assert!(!seen[9].ends_with("ok"), "accepted without a free inode");
    acked
}

/// Wait until the process has no child left.
fn wait_idle(pid: i32) {
    let t0 = std::time::Instant::now();
    while !children_of(pid).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "workers of {pid} never finished"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One message over SMTP on a connection of its own: 250 (true) or a
/// 452/451 (false).
fn smtp_one(port: u16, token: &str, text: &str) -> bool {
    let rcpt = "full@remote.example";
    let (mut c, g) = SmtpConn::connect(port, Duration::from_secs(10)).expect("connect");
    assert!(matches!(g, Step::Reply(220, _)));
    assert!(matches!(c.cmd("EHLO client.example"), Step::Reply(250, _)));
    let (fate, _) = smtp_send(&mut c, "tester@client.example", rcpt, text, false);
    c.drop_now();
    match fate {
        Fate::Acked => true,
        Fate::Refused(t) => {
            assert!(
                t.contains("452 4.3.1") || t.contains("451 4.3.0"),
                "{token}: refused, but not as a temporary storage error: {t}"
            );
            false
        }
        other => panic!("{token}: the connection broke ({other:?})"),
    }
}

/// Space returns and the route comes up: everything acknowledged goes
/// out, nothing else does.
fn recover_and_flush(m: &Mta, online: &Path, sink: &sink::Sink, acked: &[String]) {
    unfill(&m.spool);
    fs::write(online, "sink\n").unwrap();
    let t0 = std::time::Instant::now();
    while !wait_spool_empty(&m.spool, 2) {
        let _ = control(&m.spool, "flush");
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "not delivered after the disk was freed: {}",
            leftovers_text(&m.spool)
        );
    }
    let mut got: Vec<String> = sink
        .messages()
        .iter()
        .map(|g| {
            let (token, ok) = check_delivered(&g.data, &body_of).expect("a test message");
            assert!(ok, "{token} arrived changed");
            token
        })
        .collect();
    got.sort();
    let mut want = acked.to_vec();
    want.sort();
    assert_eq!(got, want, "delivered and acknowledged differ");
}

/// A daemon on a tmpfs spool (mount options `opts`) whose route to the
/// sink is offline until the file `online` says `sink`.
fn daemon_setup(tag: &str, opts: &str, sink_port: u16) -> Option<(Mta, u16, Group, PathBuf)> {
    let port = free_port();
    let m = Mta::new(tag);
    let online = m.dir.path().join("online");
    let extra = format!(
        "{}\toption online_detect 'file'\n\toption online_file '{}'\n",
        listen_lines(port),
        online.display()
    );
    write_config(
        &m,
        "masqmail.conf",
        &extra,
        &sink_route("sink", sink_port, false),
    );
    if !tmpfs_spool(m.spool.as_path(), opts) {
        return None;
    }
    let log = m.dir.path().join("daemon.log");
    let mut d = spawn_daemon(&m.conf, &log);
    wait_daemon(&m.spool, &mut d, &log);
    Some((m, port, d, online))
}

const OPTS: &str = "size=1m,nr_inodes=400";

/// SMTP while the disk fills.
#[test]
fn smtp_on_a_filling_disk() {
    let sink = sink::Sink::start(sink::Behaviour::default());
    let Some((m, port, mut d, online)) = daemon_setup("full-smtp", OPTS, sink.port) else {
        return;
    };
    let mut acked = sweep(&m, d.pgid, "smtp", &|token, text| {
        smtp_one(port, token, text)
    });
    // Space is back: everything acknowledged goes out, and new mail too.
    let token = format!("smtp-after-{BODY}");
    let text = message_with(&token, "full@remote.example", &body_of(&token));
    assert!(smtp_one(port, &token, &text));
    acked.push(token);
    recover_and_flush(&m, &online, &sink, &acked);
    d.terminate(20);
}

/// sendmail while the disk fills: exit 0 or 75, nothing else.
#[test]
fn sendmail_on_a_filling_disk() {
    let sink = sink::Sink::start(sink::Behaviour::default());
    let Some((m, _port, mut d, online)) = daemon_setup("full-sm", OPTS, sink.port) else {
        return;
    };
    let send = |token: &str, text: &str| {
        let out = m.sendmail(&["-i", "full@remote.example"], text);
        match code(&out) {
            0 => true,
            75 => false,
            c => panic!("{token}: exit {c}: {}", stderr(&out)),
        }
    };
    let mut acked = sweep(&m, d.pgid, "sendmail", &send);
    let token = format!("sendmail-after-{BODY}");
    assert!(send(
        &token,
        &message_with(&token, "full@remote.example", &body_of(&token))
    ));
    acked.push(token);
    recover_and_flush(&m, &online, &sink, &acked);
    d.terminate(20);
}

fn rcpts_at_sink(sink: &sink::Sink) -> Vec<String> {
    sink.messages()
        .iter()
        .map(|g| format!("{}>{}", g.from, g.rcpts.join(",")))
        .collect()
}

/// A queue run whose results cannot be written: the header rewrite
/// (`outgoing/ID.new`) and the bounce both need space. The run stops with
/// a temporary error and the message stays exactly as it was, ready and
/// whole; what it delivered meanwhile is delivered again later (D1 in
/// doc/INTERNALS.md: a duplicate, never a loss). With space back, the
/// recorded states, the bounce and the rest follow.
#[test]
fn queue_run_on_a_full_disk_leaves_the_message_whole() {
    let mut b = sink::Behaviour::default();
    b.rcpt_replies
        .insert("later@remote.example".into(), "451 4.2.0 try later".into());
    b.rcpt_replies
        .insert("bad@remote.example".into(), "550 5.1.1 no such user".into());
    let sink = sink::Sink::start(b);
    let m = Mta::with_config("full-run", "", &sink_route("sink", sink.port, true));
    if !tmpfs_spool(&m.spool, OPTS) {
        return;
    }
    let runq = |want: i32| {
        let out = m.run("runq", &[], b"");
        expect_code(&out, want);
        out
    };
    for (token, rcpts) in [
        ("run-a", vec!["now@remote.example", "later@remote.example"]),
        ("run-b", vec!["bad@remote.example"]),
    ] {
        let mut args = vec!["-i", "-f", "sender@remote.example"];
        args.extend(rcpts);
        let out = m.sendmail(
            &args,
            &message_with(token, "x@remote.example", &body_exact(token, BODY)),
        );
        expect_code(&out, 0);
    }
    let ids = m.queued_ids();
    assert_eq!(ids.len(), 2);
    let snapshot = |id: &str| {
        (
            fs::read(m.spool.join("outgoing").join(id)).unwrap(),
            m.body(id),
        )
    };
    let before: Vec<_> = ids.iter().map(|id| snapshot(id)).collect();

    // A: now@ is taken by the sink, later@ deferred; the header rewrite
    // that records both fails.
    fill_leaving(&m.spool, 0);
    let out = runq(75);
    assert!(stderr(&out).contains("No space left"), "{}", stderr(&out));
    assert_eq!(
        snapshot(&ids[0]),
        before[0],
        "message A changed on a full disk"
    );
    assert_nothing_half_ready(&m);
    assert_eq!(
        rcpts_at_sink(&sink),
        ["sender@remote.example>now@remote.example"]
    );
    assert_eq!(m.queued_ids(), ids, "mailq on a full disk");

    // Space for the header rewrite of A, not for B's bounce: A is
    // recorded (now@ delivered again: the duplicate), B's bounce cannot be
    // queued, so B stays as it was.
    unfill(&m.spool);
    fill_leaving(&m.spool, PAGE);
    runq(75);
    assert_eq!(
        snapshot(&ids[1]),
        before[1],
        "message B changed on a full disk"
    );
    assert_nothing_half_ready(&m);
    let a = m.outgoing(&ids[0]);
    assert!(a.contains("RT:D\t<now@remote.example>"), "{a}");
    assert!(a.contains("RT:P\t<later@remote.example>\t\t1\t"), "{a}");
    assert_eq!(m.files("pool").len(), 2, "{:?}", m.files("pool"));

    // Space is back: B bounces, later@ is still refused and waits.
    unfill(&m.spool);
    runq(0);
    assert_nothing_half_ready(&m);
    let q = m.queued_ids();
    assert!(q.contains(&ids[0]) && !q.contains(&ids[1]), "{q:?}");
    // later@ is accepted now: the queue empties.
    sink.behaviour.lock().unwrap().rcpt_replies.clear();
    runq(0);
    assert!(
        spool_leftovers(&m.spool).is_empty(),
        "{}",
        leftovers_text(&m.spool)
    );
    let mut got = rcpts_at_sink(&sink);
    got.sort();
    assert_eq!(
        got,
        [
            ">sender@remote.example",
            "sender@remote.example>later@remote.example",
            "sender@remote.example>now@remote.example",
            "sender@remote.example>now@remote.example",
        ],
        "expected: one bounce, later@ once, now@ twice (once before the failed record)"
    );
}
