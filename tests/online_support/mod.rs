//! Helpers of the online detection tests: the daemon as a process (in a
//! network namespace or not), its children from /proc, network namespaces
//! joined by a veth pair, an SMTP sink inside one of them.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Mta;

/// Poll `f` every 20 ms until it holds; false after `limit`.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if f() {
            return true;
        }
        if t0.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free TCP port on 127.0.0.1 (of the namespace the test runs in).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `masqmail daemon -v`, stopped (TERM, then KILL) when dropped.
pub struct Daemon {
    pub child: Child,
    pub pid: i32,
    pub log: PathBuf,
    control: PathBuf,
}

impl Daemon {
    /// Start the daemon of `m`, inside network namespace `ns` if given,
    /// and wait until its control socket answers.
    pub fn start(m: &Mta, ns: Option<&str>) -> Daemon {
        let log = m.dir.path().join("daemon.log");
        let err = fs::File::create(&log).expect("log file");
        let bin = m.bin.join("masqmail");
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = cmd
            .args(["-C", m.conf.to_str().unwrap(), "daemon", "-v"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start the daemon");
        let d = Daemon {
            pid: child.id() as i32,
            child,
            log,
            control: m.spool.join("control"),
        };
        let up = wait_until(Duration::from_secs(10), || {
            d.request("status").is_some_and(|r| r.starts_with("pid:"))
        });
        assert!(up, "the daemon did not come up:\n{}", d.log());
        d
    }

    /// One control request, its reply (None: no answer).
    pub fn request(&self, line: &str) -> Option<String> {
        let mut s = std::os::unix::net::UnixStream::connect(&self.control).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(format!("{line}\n").as_bytes()).ok()?;
        let mut r = String::new();
        s.read_to_string(&mut r).ok()?;
        Some(r)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The state line of `route` in `routes` (e.g. `online netlink veth0`).
    pub fn route(&self, route: &str) -> String {
        let r = self.request("routes").unwrap_or_default();
        r.lines()
            .find_map(|l| l.strip_prefix(&format!("{route} ")).map(str::to_string))
            .unwrap_or_default()
    }

    pub fn wait_route(&self, route: &str, prefix: &str) {
        let ok = wait_until(Duration::from_secs(10), || {
            self.route(route).starts_with(prefix)
        });
        assert!(
            ok,
            "route {route} never became '{prefix}' (is '{}'); log:\n{}",
            self.route(route),
            self.log()
        );
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), sig).expect("kill");
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait until the daemon has no children left (all reaped); returns
    /// the ones still there after `limit`.
    pub fn settle(&self, limit: Duration) -> Vec<(i32, char)> {
        let mut last = Vec::new();
        wait_until(limit, || {
            last = children_of(self.pid);
            last.is_empty()
        });
        last
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if !self.alive() {
            return;
        }
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let done = wait_until(Duration::from_secs(10), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        if !done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub use crate::common::children_of;

/// Processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(c) = fs::read(format!("/proc/{p}/cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                out.push(p);
            }
        }
    }
    out
}

/// Run a command, panic with its output when it fails.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Why the namespace tests cannot run here, if they cannot (asked once
/// per test process).
pub fn netns_unavailable() -> Option<String> {
    static ANSWER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ANSWER
        .get_or_init(|| {
            if !nix::unistd::geteuid().is_root() {
                return Some("not root (network namespaces need CAP_SYS_ADMIN)".into());
            }
            let probe = format!("mm-probe-{}", std::process::id());
            match Command::new("ip").args(["netns", "add", &probe]).output() {
                Ok(o) if o.status.success() => {
                    let _ = Command::new("ip").args(["netns", "del", &probe]).output();
                    None
                }
                Ok(o) => Some(format!(
                    "ip netns add fails: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Some(format!("no ip command: {e}")),
            }
        })
        .clone()
}

/// Two network namespaces joined by a veth pair:
///   `d` (the daemon's): `dev` = 10.201.N.2/24, no default route yet;
///   `s` (the sink's):   `peer` = 10.201.N.1/24, and `sink_ip`
///                       10.202.N.1/32 on its loopback — reachable from
///                       `d` only through a default route via the peer.
pub struct Net {
    pub d: String,
    pub s: String,
    pub dev: String,
    pub peer: String,
    pub addr: String,
    pub gw: String,
    pub sink_ip: String,
}

impl Net {
    pub fn new(n: u8) -> Net {
        let pid = std::process::id() % 100_000;
        let net = Net {
            d: format!("mm-{pid}-{n}-d"),
            s: format!("mm-{pid}-{n}-s"),
            dev: format!("mv{n}x{pid}"),
            peer: format!("mv{n}p{pid}"),
            addr: format!("10.201.{n}.2/24"),
            gw: format!("10.201.{n}.1"),
            sink_ip: format!("10.202.{n}.1"),
        };
        for ns in [&net.d, &net.s] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            sh(&["ip", "netns", "add", ns]);
        }
        sh(&[
            "ip", "link", "add", &net.dev, "netns", &net.d, "type", "veth", "peer", "name",
            &net.peer, "netns", &net.s,
        ]);
        net.ip_s(&["link", "set", "lo", "up"]);
        net.ip_s(&["link", "set", &net.peer, "up"]);
        net.ip_s(&["addr", "add", &format!("{}/24", net.gw), "dev", &net.peer]);
        net.ip_s(&["addr", "add", &format!("{}/32", net.sink_ip), "dev", "lo"]);
        net.ip_d(&["link", "set", "lo", "up"]);
        net.ip_d(&["link", "set", &net.dev, "up"]);
        net.ip_d(&["addr", "add", &net.addr, "dev", &net.dev]);
        net
    }

    /// `ip ARGS` in the daemon's namespace.
    pub fn ip_d(&self, args: &[&str]) {
        let mut a = vec!["ip", "-n", &self.d];
        a.extend_from_slice(args);
        sh(&a);
    }

    /// `ip ARGS` in the sink's namespace.
    pub fn ip_s(&self, args: &[&str]) {
        let mut a = vec!["ip", "-n", &self.s];
        a.extend_from_slice(args);
        sh(&a);
    }

    pub fn route_up(&self) {
        self.ip_d(&["route", "add", "default", "via", &self.gw]);
    }

    pub fn route_down(&self) {
        self.ip_d(&["route", "del", "default"]);
    }

    /// A listener on `sink_ip:port` inside the sink's namespace (a thread
    /// joins the namespace, binds, and ends; the socket stays there).
    pub fn sink_listener(&self, port: u16) -> TcpListener {
        let path = format!("/run/netns/{}", self.s);
        let addr = format!("{}:{port}", self.sink_ip);
        std::thread::spawn(move || {
            let f = fs::File::open(&path).expect("open netns");
            // SAFETY: setns on this thread only; the fd is valid.
            let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            TcpListener::bind(&addr).expect("bind the sink")
        })
        .join()
        .expect("sink thread")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.d, &self.s] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A test message with a numbered subject.
pub fn message(to: &str, n: usize) -> String {
    format!("To: {to}\nSubject: online test {n}\n\nmessage {n}\n")
}

/// Queue a message with `sendmail -t` and return nothing; panics when
/// sendmail fails.
pub fn queue(m: &Mta, to: &str, n: usize) {
    let out = m.sendmail(&["-t", "-i"], &message(to, n));
    assert!(
        out.status.success(),
        "sendmail: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Wait until every message in the queue is scanned (in outgoing/).
pub fn wait_scanned(m: &Mta) {
    let ok = wait_until(Duration::from_secs(10), || {
        m.files("incoming").is_empty() && !m.files("outgoing").is_empty()
    });
    assert!(ok, "messages were not scanned: {:?}", m.files("incoming"));
}

/// The subjects the sink got, in order.
pub fn subjects(got: &[crate::sink::Got]) -> Vec<String> {
    got.iter()
        .filter_map(|g| {
            g.data
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(|s| s.trim().to_string()))
        })
        .collect()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Wait until the sink holds `n` messages; on failure, show the daemon's
/// log.
#[track_caller]
pub fn wait_sink(sink: &crate::sink::Sink, n: usize, d: &Daemon) -> Vec<crate::sink::Got> {
    let ok = wait_until(Duration::from_secs(20), || sink.messages().len() >= n);
    assert!(
        ok,
        "sink got {} message(s), wanted {n}; daemon log:\n{}",
        sink.messages().len(),
        d.log()
    );
    sink.messages()
}

/// Nothing reaches the sink for a while, and no delivery was even tried
/// (no recipient has an error: the route was never used).
#[track_caller]
pub fn stays_queued(m: &Mta, sink: &crate::sink::Sink, delivered: usize) {
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(sink.messages().len(), delivered, "delivered while offline");
    let q = m.mailq();
    assert!(!q.contains("last error"), "tried while offline:\n{q}");
}
