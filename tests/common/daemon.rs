//! The daemon under test: `masqmail daemon -v -C conf` on a free
//! 127.0.0.1 port, its log (stderr) in a file, stopped with SIGTERM; and a
//! plain SMTP client that reads replies line by line.
//!
//! Use it from a test file with
//!   mod common;
//!   #[path = "common/daemon.rs"] mod daemon;
#![allow(dead_code)]

use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::common::{Mta, BIN};

/// How long a test waits for anything before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// An installation whose daemon will listen on a free port of 127.0.0.1:
/// `Mta::with_config` plus the `listen_addresses` line.
pub fn smtp_mta(tag: &str, extra: &str, sections: &str) -> (Mta, u16) {
    let port = free_port();
    let extra = format!("\tlist listen_addresses '127.0.0.1:{port}'\n{extra}");
    (Mta::with_config(tag, &extra, sections), port)
}

/// A running `masqmail daemon`.
pub struct Daemon {
    child: Option<Child>,
    pub pid: i32,
    pub log: PathBuf,
}

impl Daemon {
    /// Start the daemon of `mta` and wait until it says it is serving.
    pub fn start(mta: &Mta) -> Daemon {
        let d = Daemon::spawn(mta);
        d.wait_log("daemon started");
        d
    }

    /// Start it without waiting.
    pub fn spawn(mta: &Mta) -> Daemon {
        let n = fs::read_dir(mta.dir.path())
            .map(|d| d.count())
            .unwrap_or_default();
        let log = mta.dir.path().join(format!("daemon-{n}.log"));
        let err = fs::File::create(&log).expect("create daemon log");
        let child = Command::new(BIN)
            .args(["daemon", "-v", "-C", mta.conf.to_str().unwrap()])
            .env_remove("TZ")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn masqmail daemon");
        let pid = child.id() as i32;
        Daemon {
            child: Some(child),
            pid,
            log,
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log holds `text`; fail with the log otherwise.
    #[track_caller]
    pub fn wait_log(&self, text: &str) {
        let t0 = Instant::now();
        while !self.log().contains(text) {
            if t0.elapsed() > WAIT {
                panic!("daemon log never said {text:?}:\n{}", self.log());
            }
            if let Some(st) = self.exited() {
                panic!("daemon exited ({st}) before {text:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status if the daemon is gone.
    pub fn exited(&self) -> Option<ExitStatus> {
        // try_wait needs &mut; waitid with WNOWAIT keeps the status.
        let st = nix::sys::wait::waitid(
            nix::sys::wait::Id::Pid(nix::unistd::Pid::from_raw(self.pid)),
            nix::sys::wait::WaitPidFlag::WEXITED
                | nix::sys::wait::WaitPidFlag::WNOHANG
                | nix::sys::wait::WaitPidFlag::WNOWAIT,
        );
        match st {
            Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(_) => None,
            Ok(_) => {
                use std::os::unix::process::ExitStatusExt;
                Some(ExitStatus::from_raw(0))
            }
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), sig).expect("kill daemon");
    }

    /// The daemon's child processes: (pid, state letter of /proc/PID/stat).
    pub fn children(&self) -> Vec<(i32, char)> {
        children_of(self.pid)
    }

    /// Wait until the daemon has no child process left (workers done and
    /// reaped).
    #[track_caller]
    pub fn wait_no_children(&self) {
        let t0 = Instant::now();
        while !self.children().is_empty() {
            if t0.elapsed() > WAIT {
                panic!("children left: {:?}\n{}", self.children(), self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then wait for the exit (at most WAIT). Returns the status.
    #[track_caller]
    pub fn stop(mut self) -> ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let mut child = self.child.take().expect("daemon running");
        let t0 = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return st,
                Ok(None) if t0.elapsed() > WAIT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("daemon did not stop on SIGTERM:\n{}", self.log());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("wait for the daemon: {e}"),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub use super::common::children_of;

/// A field of /proc/PID/status (`voluntary_ctxt_switches`, `VmRSS`, …).
pub fn proc_status(pid: i32, field: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The worker serving the connection whose client end is `client`: the
/// child of `daemon` holding the server end of that TCP connection.
pub fn worker_for(daemon: i32, client: &TcpStream) -> Option<i32> {
    let local = client.local_addr().ok()?;
    let peer = client.peer_addr().ok()?;
    // The server end: local = our peer, remote = our local.
    let inode = tcp_inode(peer, local)?;
    let want = format!("socket:[{inode}]");
    children_of(daemon).into_iter().map(|(p, _)| p).find(|p| {
        fs::read_dir(format!("/proc/{p}/fd"))
            .map(|rd| {
                rd.flatten()
                    .any(|e| fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == want))
            })
            .unwrap_or(false)
    })
}

/// The inode of the IPv4 TCP socket with these ends, from /proc/net/tcp.
fn tcp_inode(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    fn hex(a: SocketAddr) -> Option<String> {
        match a.ip() {
            IpAddr::V4(ip) => Some(format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(ip.octets()),
                a.port()
            )),
            IpAddr::V6(_) => None,
        }
    }
    let (l, r) = (hex(local)?, hex(remote)?);
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&l.as_str()) && f.get(2) == Some(&r.as_str()))
            .then(|| f.get(9)?.parse().ok())
            .flatten()
    })
}

/// A non-loopback IPv4 address of this machine, if it has one: a client
/// bound to it reaches 127.0.0.1 over the loopback device but is not a
/// loopback client.
pub fn non_loopback_ipv4() -> Option<Ipv4Addr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for ifa in addrs {
        let Some(sin) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) else {
            continue;
        };
        let ip = sin.ip();
        if !ip.is_loopback() && !ip.is_unspecified() && !ip.is_link_local() {
            return Some(ip);
        }
    }
    None
}

/// Connect to 127.0.0.1:`port` from `from` (any address of this machine).
pub fn connect_from(from: IpAddr, port: u16) -> io::Result<TcpStream> {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
    let IpAddr::V4(from) = from else {
        return Err(io::Error::other("IPv4 only"));
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(std::net::SocketAddrV4::new(from, 0)),
    )?;
    let to = SockaddrIn::from(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    connect(fd.as_raw_fd(), &to)?;
    // SAFETY: a fresh, owned, connected TCP socket.
    Ok(unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) })
}

/// A reply: the code and every line's text (after the code and the
/// separator).
#[derive(Clone, Debug)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// Something a client can talk over: a TcpStream, or TLS on one.
pub trait Wire: Read + Write {}
impl<T: Read + Write> Wire for T {}

/// A byte-exact SMTP client: sends what it is told, reads replies.
pub struct Client<S: Wire> {
    pub s: S,
    buf: Vec<u8>,
}

impl Client<TcpStream> {
    pub fn connect(port: u16) -> Client<TcpStream> {
        Client::on(TcpStream::connect(("127.0.0.1", port)).expect("connect to the daemon"))
    }

    pub fn connect_from(from: IpAddr, port: u16) -> Client<TcpStream> {
        Client::on(connect_from(from, port).expect("connect to the daemon"))
    }

    pub fn on(s: TcpStream) -> Client<TcpStream> {
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
        Client::new(s)
    }
}

impl<S: Wire> Client<S> {
    pub fn new(s: S) -> Client<S> {
        Client { s, buf: Vec::new() }
    }

    /// Bytes read but not yet consumed as replies.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Take the stream back, with whatever was read ahead.
    pub fn into_parts(self) -> (S, Vec<u8>) {
        (self.s, self.buf)
    }

    pub fn send(&mut self, data: &[u8]) {
        self.s.write_all(data).expect("write to the daemon");
        self.s.flush().expect("flush");
    }

    /// One line without CRLF; None at EOF.
    pub fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read from the daemon: {e}"),
            }
        }
    }

    /// One (multi-line) reply; panics at EOF.
    #[track_caller]
    pub fn reply(&mut self) -> Reply {
        self.try_reply().expect("the daemon closed the connection")
    }

    pub fn try_reply(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            let l = self.line()?;
            let code: u16 = l.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            let last = l.as_bytes().get(3) != Some(&b'-');
            lines.push(l.get(4..).unwrap_or("").to_string());
            if last {
                return Some(Reply { code, lines });
            }
        }
    }

    /// Send a command line (CRLF added) and read its reply.
    #[track_caller]
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Send a command and check the reply code.
    #[track_caller]
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "{line:?} → {r:?}");
        r
    }

    /// Read the greeting and EHLO.
    #[track_caller]
    pub fn ehlo(&mut self, name: &str) -> Reply {
        let g = self.reply();
        assert_eq!(g.code, 220, "greeting {g:?}");
        self.expect(&format!("EHLO {name}"), 250)
    }

    /// A whole transaction; returns the reply to the final dot.
    #[track_caller]
    pub fn mail(&mut self, from: &str, rcpts: &[&str], body: &str) -> Reply {
        self.expect(&format!("MAIL FROM:<{from}>"), 250);
        for r in rcpts {
            self.expect(&format!("RCPT TO:<{r}>"), 250);
        }
        self.expect("DATA", 354);
        self.send(body.as_bytes());
        self.cmd(".")
    }

    /// The connection was closed by the server (EOF on read).
    pub fn closed(&mut self) -> bool {
        self.line().is_none()
    }
}

/// The queue ID at the end of a `250 … queued as ID` reply.
pub fn queued_id(r: &Reply) -> String {
    assert_eq!(r.code, 250, "{r:?}");
    r.text()
        .rsplit(' ')
        .next()
        .map(str::to_string)
        .expect("an ID in the reply")
}

/// Is `cmd` on the PATH? Prints SKIP with the reason when it is not.
pub fn have(cmd: &str, why: &str) -> bool {
    let found = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(d.join(cmd))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    if !found {
        eprintln!("SKIP {why}: `{cmd}` is not installed");
    }
    found
}
