//! Online detection by `file`, `command` and `mserver`, with the daemon
//! on loopback: mail reaches the sink only while the route is online, and
//! goes out as soon as the daemon learns so — through inotify for the
//! file, on SIGUSR1 and `flush` for the queries (never on a timer). A
//! masqdialer server that never answers must not stop the daemon from
//! serving SMTP. No root needed.

mod common;
mod online_support;
#[path = "common/sink.rs"]
#[allow(unused_imports)]
mod sink;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use online_support::*;
use sink::{Behaviour, Sink};

/// An installation with route `isp` to the sink; `listen`: an SMTP port.
fn mta(tag: &str, sink: &Sink, main: &str, listen: Option<u16>) -> Mta {
    let listen = match listen {
        Some(p) => format!("\toption listen_addresses '127.0.0.1:{p}'\n"),
        None => "\toption listen_addresses ''\n".into(),
    };
    Mta::with_config(
        tag,
        &format!("{listen}{main}"),
        &format!(
            "config route 'isp'\n\toption mail_host '127.0.0.1:{}'\n\toption tls 'none'\n\
             config route 'other'\n\toption mail_host '127.0.0.1:{}'\n\toption tls 'none'\n\
             \tlist allowed_recipients '*@other.example'\n",
            sink.port, sink.port
        ),
    )
}

#[test]
fn file_changes_are_seen_at_once() {
    let sink = Sink::start(Behaviour::default());
    let dir = TempDir::new("online-file-dir");
    let online = dir.path().join("run").join("online");
    let m = mta(
        "online-file",
        &sink,
        &format!(
            "\toption online_detect 'file'\n\toption online_file '{}'\n",
            online.display()
        ),
        None,
    );
    let d = Daemon::start(&m, None);
    queue(&m, "a@example.org", 1);
    wait_scanned(&m);
    stays_queued(&m, &sink, 0);
    // Replaced by rename, as scripts should.
    let tmp = online.with_extension("tmp");
    std::fs::write(&tmp, "isp\n").unwrap();
    std::fs::rename(&tmp, &online).unwrap();
    wait_sink(&sink, 1, &d);
    d.wait_route("isp", "online file -");
    // Deleted: offline.
    std::fs::remove_file(&online).unwrap();
    d.wait_route("isp", "offline");
    queue(&m, "a@example.org", 2);
    stays_queued(&m, &sink, 1);
    // Written in place (echo isp > online).
    std::fs::write(&online, "# up since 10:00\nisp\n").unwrap();
    assert_eq!(subjects(&wait_sink(&sink, 2, &d))[1], "online test 2");
    let status = d.request("status").unwrap();
    assert!(
        status.contains("route isp: online (listed in online_file)"),
        "{status}"
    );
    assert!(status.contains("route other: offline"), "{status}");
    d.stop();
}

#[test]
fn command_is_run_on_signal_and_flush_only() {
    let sink = Sink::start(Behaviour::default());
    let dir = TempDir::new("online-cmd-dir");
    let state = dir.path().join("state");
    let count = dir.path().join("count");
    std::fs::write(&state, "").unwrap();
    let m = mta(
        "online-cmd",
        &sink,
        &format!(
            "\toption online_detect 'command'\n\
             \toption online_query \"/bin/sh -c 'echo x >> {}; cat {}'\"\n",
            count.display(),
            state.display()
        ),
        None,
    );
    let runs = || std::fs::read_to_string(&count).map_or(0, |s| s.lines().count());
    let d = Daemon::start(&m, None);
    assert!(
        wait_until(Duration::from_secs(5), || runs() == 1),
        "asked at start"
    );
    queue(&m, "a@example.org", 1);
    wait_scanned(&m);
    stays_queued(&m, &sink, 0);
    // The answer changes; nobody asks: nothing happens (no timer).
    std::fs::write(&state, "isp\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(sink.messages().len(), 0);
    let before = runs();
    d.signal(Signal::SIGUSR1);
    wait_sink(&sink, 1, &d);
    assert!(runs() > before);
    d.wait_route("isp", "online command isp");
    // The command names no route any more; `flush` asks again.
    std::fs::write(&state, "").unwrap();
    let out = m.run("masqmail", &["flush"], b"");
    expect_code(&out, 0);
    d.wait_route("isp", "offline");
    queue(&m, "a@example.org", 2);
    stays_queued(&m, &sink, 1);
    // Two routes at once; `flush` asks again.
    std::fs::write(&state, "isp other\n").unwrap();
    expect_code(&m.run("masqmail", &["flush"], b""), 0);
    assert_eq!(subjects(&wait_sink(&sink, 2, &d))[1], "online test 2");
    d.wait_route("other", "online command other");
    let n = runs();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(runs(), n, "asked without an event");
    d.stop();
}

#[test]
fn command_failing_means_offline() {
    let sink = Sink::start(Behaviour::default());
    let m = mta(
        "online-cmd-fail",
        &sink,
        "\toption online_detect 'command'\n\
         \toption online_query \"/bin/sh -c 'echo isp; exit 1'\"\n",
        None,
    );
    let d = Daemon::start(&m, None);
    queue(&m, "a@example.org", 1);
    wait_scanned(&m);
    d.signal(Signal::SIGUSR1);
    stays_queued(&m, &sink, 0);
    assert_eq!(d.route("isp"), "offline - -");
    assert!(
        wait_until(Duration::from_secs(5), || d.log().contains("online_query")),
        "{}",
        d.log()
    );
    d.stop();
}

/// A fake masqdialer server: READY, then the current answer to STAT
/// (`None`: say nothing at all, hold the connection).
struct Mserver {
    port: u16,
    answer: Arc<Mutex<Option<String>>>,
    asked: Arc<Mutex<usize>>,
}

impl Mserver {
    fn start(answer: Option<&str>) -> Mserver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let answer = Arc::new(Mutex::new(answer.map(str::to_string)));
        let asked = Arc::new(Mutex::new(0));
        let (a, n) = (answer.clone(), asked.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let (a, n) = (a.clone(), n.clone());
                std::thread::spawn(move || serve_mserver(s, a, n));
            }
        });
        Mserver {
            port,
            answer,
            asked,
        }
    }

    fn set(&self, answer: Option<&str>) {
        *self.answer.lock().unwrap() = answer.map(str::to_string);
    }

    fn asked(&self) -> usize {
        *self.asked.lock().unwrap()
    }
}

fn serve_mserver(mut s: TcpStream, a: Arc<Mutex<Option<String>>>, n: Arc<Mutex<usize>>) {
    *n.lock().unwrap() += 1;
    let Some(reply) = a.lock().unwrap().clone() else {
        // Accept, then never say a word.
        let mut buf = [0u8; 64];
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let _ = s.read(&mut buf);
        return;
    };
    let _ = s.write_all(b"READY\n");
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    let _ = r.read_line(&mut line);
    if line.trim() == "STAT" {
        let _ = s.write_all(format!("{reply}\n").as_bytes());
    }
    line.clear();
    let _ = r.read_line(&mut line); // QUIT
}

#[test]
fn mserver_answers_decide() {
    let sink = Sink::start(Behaviour::default());
    let ms = Mserver::start(Some("DOWN"));
    let m = mta(
        "online-mserver",
        &sink,
        &format!(
            "\toption online_detect 'mserver'\n\toption mserver_host '127.0.0.1:{}'\n",
            ms.port
        ),
        None,
    );
    let d = Daemon::start(&m, None);
    assert!(
        wait_until(Duration::from_secs(5), || ms.asked() >= 1),
        "asked at start"
    );
    queue(&m, "a@example.org", 1);
    wait_scanned(&m);
    stays_queued(&m, &sink, 0);
    // Being dialled: still offline.
    ms.set(Some("UP isp:-1"));
    d.signal(Signal::SIGUSR1);
    assert!(wait_until(Duration::from_secs(5), || ms.asked() >= 2));
    stays_queued(&m, &sink, 0);
    // Up: out at once.
    ms.set(Some("UP isp:1"));
    expect_code(&m.run("masqmail", &["flush"], b""), 0);
    wait_sink(&sink, 1, &d);
    d.wait_route("isp", "online mserver isp");
    let status = d.request("status").unwrap();
    assert!(
        status.contains("route isp: online (mserver says isp)"),
        "{status}"
    );
    // A connection name that is no route: nothing online.
    ms.set(Some("UP somewhere:3"));
    d.signal(Signal::SIGUSR1);
    d.wait_route("isp", "offline");
    d.stop();
}

#[test]
fn silent_mserver_does_not_stop_smtp() {
    let sink = Sink::start(Behaviour::default());
    let ms = Mserver::start(None);
    let port = free_port();
    let m = mta(
        "online-mserver-silent",
        &sink,
        &format!(
            "\toption online_detect 'mserver'\n\toption mserver_host '127.0.0.1:{}'\n",
            ms.port
        ),
        Some(port),
    );
    let d = Daemon::start(&m, None);
    assert!(wait_until(Duration::from_secs(5), || ms.asked() >= 1));
    // The query hangs (up to 10 s); meanwhile SMTP and the control
    // socket answer at once, and more SIGUSR1s do not pile up children.
    for _ in 0..5 {
        d.signal(Signal::SIGUSR1);
    }
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("220"), "{line}");
        s.write_all(b"EHLO client.test\r\n").unwrap();
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line.starts_with("250 ") {
                break;
            }
        }
        s.write_all(b"QUIT\r\n").unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("221"), "{line}");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    }
    let t0 = Instant::now();
    let status = d.request("status").unwrap();
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert!(
        status.contains("online detection: mserver (asking)"),
        "{status}"
    );
    assert_eq!(d.route("isp"), "offline - -");
    // One query child at a time (plus SMTP children on their way out).
    assert!(ms.asked() <= 2, "{} queries at once", ms.asked());
    // Stopping does not wait for the hanging query.
    let t0 = Instant::now();
    d.stop();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

/// SIGHUP with another `online_detect`: the new method takes over.
#[test]
fn reload_switches_the_method() {
    let sink = Sink::start(Behaviour::default());
    let dir = TempDir::new("online-reload-dir");
    let online = dir.path().join("online");
    std::fs::write(&online, "isp\n").unwrap();
    let file_main = format!(
        "\toption online_detect 'file'\n\toption online_file '{}'\n",
        online.display()
    );
    let m = mta("online-reload", &sink, &file_main, None);
    let d = Daemon::start(&m, None);
    d.wait_route("isp", "online file -");
    let conf = std::fs::read_to_string(&m.conf).unwrap();
    let conf = conf.replace(
        &file_main,
        "\toption online_detect 'command'\n\toption online_query '/bin/echo other'\n",
    );
    std::fs::write(&m.conf, conf).unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_route("isp", "offline");
    d.wait_route("other", "online command other");
    assert!(
        d.log().contains("online detection is now 'command'"),
        "{}",
        d.log()
    );
    d.stop();
}

/// Send message `n` to `to` over SMTP (one connection); panics unless it
/// is accepted.
fn smtp_queue(port: u16, to: &str, n: usize) {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let reply = |r: &mut BufReader<TcpStream>| -> String {
        let mut all = String::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            all.push_str(&l);
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                return all;
            }
        }
    };
    assert!(reply(&mut r).starts_with("220"));
    let data = message(to, n).replace('\n', "\r\n");
    for (cmd, want) in [
        ("EHLO client.example".to_string(), "250"),
        ("MAIL FROM:<sender@client.example>".into(), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".into(), "354"),
        (format!("{data}."), "250"),
        ("QUIT".into(), "221"),
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let got = reply(&mut r);
        assert!(got.starts_with(want), "{cmd}: {got}");
    }
}

/// Mail accepted over SMTP for routes that are all offline gets no queue
/// run of its own (its scanner told the supervisor which routes accept
/// it: daemon/hint.rs); a route that accepts it coming up delivers it.
/// Mail that a route online now accepts gets its run at once.
#[test]
fn smtp_mail_for_offline_routes_waits_without_a_run() {
    let sink = Sink::start(Behaviour::default());
    let dir = TempDir::new("online-hint-dir");
    let online = dir.path().join("online");
    let port = free_port();
    let m = mta(
        "online-hint",
        &sink,
        &format!(
            "\toption online_detect 'file'\n\toption online_file '{}'\n\toption log_level '7'\n",
            online.display()
        ),
        Some(port),
    );
    let d = Daemon::start(&m, None);
    let skipped = |d: &Daemon| {
        d.log()
            .matches("no route for it is online; no queue run")
            .count()
    };
    // Only `isp` accepts example.org; it is offline.
    smtp_queue(port, "a@example.org", 1);
    assert!(
        wait_until(Duration::from_secs(10), || skipped(&d) == 1),
        "no hint used:\n{}",
        d.log()
    );
    stays_queued(&m, &sink, 0);
    // `other` up: it takes other.example (a run at once), not example.org.
    std::fs::write(&online, "other\n").unwrap();
    d.wait_route("other", "online");
    smtp_queue(port, "b@other.example", 2);
    assert_eq!(subjects(&wait_sink(&sink, 1, &d)), ["online test 2"]);
    stays_queued(&m, &sink, 1);
    assert_eq!(skipped(&d), 1, "{}", d.log());
    // `isp` up: the message that waited goes.
    std::fs::write(&online, "other\nisp\n").unwrap();
    assert_eq!(subjects(&wait_sink(&sink, 2, &d))[1], "online test 1");
    d.stop();
}
