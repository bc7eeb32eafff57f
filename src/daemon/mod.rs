//! daemon — the supervisor: one process, one `poll()`, no timer.
//!
//! DESCRIPTION
//!   `masqmail daemon` (foreground, for procd and systemd) and `masqmail -bd`
//!   (detached, with a pid file). The supervisor is single-threaded and
//!   blocks in one `poll()` on: the SMTP listeners, a signalfd (TERM/INT:
//!   stop accepting, pass TERM on to the SMTP workers (each finishes the
//!   message it is committing, answers 421 and closes), let scan and
//!   queue runs finish, exit; HUP: re-read the config and keep the old
//!   one when the new one has errors; CHLD: reap), an inotify watch on
//!   `incoming/` (a `sendmail` dropped a message: scan it), the control
//!   socket (`flush`, `status`, `routes`) and what online detection needs
//!   (online.rs: a NETLINK_ROUTE socket, the online file's directory, a
//!   query child's pipe). The poll timeout is infinite unless a retry of
//!   a deferred message on an online route is due (or a query child runs
//!   late): with nothing to do the daemon does not wake up at all.
//!
//!   It forks a worker per SMTP connection (up to `max_connections`, and
//!   `max_connections_per_ip` per client address; beyond that the client
//!   gets `421` and is closed) and a worker per scan run. A message that
//!   arrives in `outgoing/` gets a queue run of its own unless its
//!   scanner's hint (hint.rs) says that only routes that are offline now
//!   accept its recipients.
//!
//! SECURITY
//!   The supervisor keeps root (to bind port 25 again on reload) and never
//!   reads client data or spool files itself. Every worker becomes the mail
//!   user right after fork, before it reads a byte (src/privs.rs).
//!
//! DIAGNOSTICS
//!   Start-up errors (a port that cannot be bound, a bad config) are one
//!   line on stderr and a non-zero exit. Later events go to syslog.

pub mod control;
pub mod hint;
pub mod listen;
mod online;

use std::io::Write;
use std::net::{IpAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};

use log::{debug, error, info, warn};
use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::config::{self, Config};
use crate::error::{CmdResult, Exit, Fail};
use crate::queue::{recover, Spool};
use crate::scan::Scanner;
use crate::util::os_error;
use crate::util::vecmap::VecMap;
use listen::Listener;

/// What a child process does.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ChildKind {
    Smtp(IpAddr),
    Scan,
    Run,
    /// An online query (mserver, command).
    Query,
}

/// A queue run asked for and not yet started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct RunRequest {
    /// Ignore retry backoff (flush, a route coming up).
    force: bool,
    /// Only this route (`flush ROUTE`); None: everything due.
    route: Option<String>,
    /// Only these messages, which just arrived in outgoing/; None: the
    /// whole queue.
    ids: Option<Vec<crate::queue::MsgId>>,
}

impl RunRequest {
    fn merge(&mut self, other: RunRequest) {
        self.force |= other.force;
        if self.route != other.route {
            self.route = None;
        }
        match (&mut self.ids, other.ids) {
            (Some(mine), Some(theirs)) => {
                for id in theirs {
                    if !mine.contains(&id) {
                        mine.push(id);
                    }
                }
            }
            (ids, _) => *ids = None,
        }
    }
}

struct Supervisor {
    cfg: Config,
    config_path: PathBuf,
    listeners: Vec<Listener>,
    control: Option<UnixListener>,
    control_path: PathBuf,
    conns: Vec<control::Conn>,
    signals: SignalFd,
    inotify: Inotify,
    children: VecMap<Pid, ChildKind>,
    scan_again: bool,
    stopping: bool,
    /// Watches: incoming/, outgoing/, and the directory of online_file.
    wd_incoming: WatchDescriptor,
    wd_outgoing: WatchDescriptor,
    wd_online: Option<WatchDescriptor>,
    /// The queried routes online now, and why (online.rs).
    online: crate::online::Online,
    /// NETLINK_ROUTE: the table (netlink), or only events (mserver, command).
    netlink: Option<crate::online::netlink::Monitor>,
    /// The online query child at work, and whether events asked for
    /// another one meanwhile.
    query: Option<online::Query>,
    query_again: bool,
    run_pending: Option<RunRequest>,
    /// The running queue run reports its next retry time on this pipe.
    run_report: Option<std::fs::File>,
    /// The next retry of a deferred recipient on an online route.
    next_retry: Option<u64>,
    /// The running queue run looks at new messages only: its report adds
    /// to `next_retry` instead of replacing it.
    run_targeted: bool,
    /// Scanners' hints (hint.rs): the supervisor's end, the workers' end.
    hint_rx: Option<UnixDatagram>,
    hint_tx: Option<UnixDatagram>,
    /// Hints read, not yet matched with their message's arrival.
    /// The rest of each datagram (hint::decode): `*` or route names.
    hints: VecMap<crate::queue::MsgId, String>,
}

/// Log a failed system call: `WHAT: strerror`.
#[inline(never)]
fn log_os(what: &str, e: Errno) {
    error!("{what}: {}", os_error(e));
}

/// A failed system call as a command's failure.
#[inline(never)]
fn os_fail(code: Exit, what: &str, e: Errno) -> Fail {
    Fail::new(code, format!("{what}: {}", os_error(e)))
}

/// Hints kept at most (a scanner that sent one and then failed to write
/// the message leaves it behind; a forgotten hint only costs a run).
const MAX_HINTS: usize = 4096;

fn handled_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
        Signal::SIGUSR1,
    ] {
        s.add(sig);
    }
    s
}

/// Start the daemon. `detach`: `-bd` (background, pid file).
pub fn run(cfg: Config, config_path: PathBuf, detach: bool) -> CmdResult {
    crate::privs::prepare_spool(&cfg)?;
    // First the control socket: it finds a daemon already running on this
    // spool, before recovery would run beside that daemon's workers.
    let control_path = control::socket_path(&cfg.main.spool_dir);
    let control = control::bind(&control_path)
        .map_err(|e| Fail::new(Exit::Unavailable, format!("control socket: {e}")))?;
    // Looked up once; every worker inherits it.
    crate::privs::remember_mail_user(&cfg)?;
    // The spool's directories are made, and the spool recovered, by a
    // child that is the mail user; the supervisor waits for it.
    let code = run_child_sync(|| init_spool(&cfg))?;
    if code != 0 {
        return Err(Fail::new(
            Exit::TempFail,
            "spool recovery failed (see the log)",
        ));
    }
    let listeners = listen::bind_all(&cfg.main.listen_addresses, &cfg.main.smtps_addresses)
        .map_err(|e| Fail::new(Exit::Unavailable, e))?;

    let mask = handled_signals();
    mask.thread_block()
        .map_err(|e| os_fail(Exit::Software, "sigprocmask", e))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| os_fail(Exit::Software, "signalfd", e))?;
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|e| os_fail(Exit::Software, "inotify", e))?;
    let watch = |dir: &Path, flags: AddWatchFlags| {
        inotify.add_watch(dir, flags).map_err(|e| {
            Fail::new(
                Exit::Software,
                format!("inotify on {}: {}", dir.display(), os_error(e)),
            )
        })
    };
    // A sendmail's message in incoming/ becomes ready (chmod): scan it.
    let wd_incoming = watch(
        &cfg.main.spool_dir.join("incoming"),
        AddWatchFlags::IN_ATTRIB | AddWatchFlags::IN_MOVED_TO,
    )?;
    // A scanned message in outgoing/ becomes ready: deliver it. A queue
    // run's own rewrites arrive by rename and are not watched.
    let wd_outgoing = watch(
        &cfg.main.spool_dir.join("outgoing"),
        AddWatchFlags::IN_ATTRIB,
    )?;
    let wd_online = online_watch(&cfg, &inotify);
    let netlink = online::open_netlink(cfg.main.online_detect);
    let (hint_rx, hint_tx) = hint_sockets();

    if detach {
        daemonize(&cfg.main.pid_file)?;
    }
    let mut addrs = String::new();
    for l in &listeners {
        use std::fmt::Write as _;
        let sep = if addrs.is_empty() { "" } else { " " };
        let _ = write!(addrs, "{sep}{}", l.addr);
    }
    if addrs.is_empty() {
        addrs.push_str("nothing");
    }
    info!(
        concat!(
            "daemon started (masqmail ",
            env!("CARGO_PKG_VERSION"),
            "), pid {}, listening on {}"
        ),
        std::process::id(),
        addrs
    );
    let mut sup = Supervisor {
        cfg,
        config_path,
        listeners,
        control: Some(control),
        control_path,
        conns: Vec::new(),
        signals,
        inotify,
        children: VecMap::new(),
        scan_again: false,
        stopping: false,
        wd_incoming,
        wd_outgoing,
        wd_online,
        online: crate::online::Online::default(),
        netlink,
        query: None,
        query_again: false,
        run_pending: None,
        run_report: None,
        next_retry: None,
        run_targeted: false,
        hint_rx,
        hint_tx,
        hints: VecMap::new(),
    };
    sup.online = sup.initial_online();
    for (r, why) in sup.online.iter() {
        info!("route {r} is online ({why})");
    }
    sup.request_run(RunRequest::default());
    sup.run_loop();
    if detach {
        let _ = std::fs::remove_file(&sup.cfg.main.pid_file);
    }
    info!("daemon stopped");
    Ok(())
}

/// The scanners' hint sockets: the supervisor's end, the workers' end.
fn hint_sockets() -> (Option<UnixDatagram>, Option<UnixDatagram>) {
    use std::os::fd::FromRawFd;
    let mut fds = [-1; 2];
    let flags = libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socketpair(2) into an array of two descriptors.
    if unsafe { libc::socketpair(libc::AF_UNIX, flags, 0, fds.as_mut_ptr()) } != 0 {
        warn!(
            "hint socket: {}; a queue run for every new message",
            os_error(Errno::last())
        );
        return (None, None);
    }
    // SAFETY: two new descriptors, ours.
    unsafe {
        (
            Some(UnixDatagram::from_raw_fd(fds[0])),
            Some(UnixDatagram::from_raw_fd(fds[1])),
        )
    }
}

/// The start-up child: make the spool's directories, recover, scan.
fn init_spool(cfg: &Config) -> i32 {
    if let Err(f) = crate::privs::become_mail_user(cfg) {
        error!("{f}");
        return 1;
    }
    let spool = match Spool::open(&cfg.main.spool_dir) {
        Ok(s) => s,
        Err(e) => {
            error!("spool {}: {e}", cfg.main.spool_dir.display());
            return 1;
        }
    };
    match recover::recover(&spool) {
        Ok(r) => r.log(),
        Err(e) => {
            error!("recovery: {e}");
            return 1;
        }
    }
    // A scan that cannot run (an unreadable alias file) is no reason not to
    // start: messages wait in incoming/ and SMTP answers 451 for names it
    // cannot check; the next scan run takes them.
    let _ = scan_worker(cfg);
    0
}

/// A scan run, in a child that is already the mail user.
fn scan_worker(cfg: &Config) -> i32 {
    let spool = Spool::existing(&cfg.main.spool_dir);
    let scanner = match Scanner::new(cfg) {
        Ok(s) => s,
        Err(e) => {
            error!("scanning postponed: {e}");
            return 1;
        }
    };
    match scanner.scan_all(&spool) {
        Ok(n) => {
            debug!("scan run: {n} message(s) scanned");
            0
        }
        Err(e) => {
            error!("scan run: {e}");
            1
        }
    }
}

/// A queue run in a child: the mail user (root kept for local delivery),
/// then queue-out. Returns the next retry time it found.
fn run_worker(cfg: &Config, opts: &crate::deliver::RunOpts) -> Result<Option<u64>, ()> {
    if let Err(f) = crate::privs::become_mail_user_keep_root(cfg) {
        error!("{f}");
        return Err(());
    }
    let spool = Spool::existing(&cfg.main.spool_dir);
    match crate::deliver::run(cfg, &spool, opts, &mut crate::transport::smtp::Smtp::new()) {
        Ok(r) => {
            if r.delivered + r.deferred + r.bounced > 0 {
                info!(
                    "queue run: {} delivered, {} deferred, {} bounced, {} waiting for a route",
                    r.delivered, r.deferred, r.bounced, r.waiting
                );
            }
            Ok(r.next_due)
        }
        Err(e) => {
            error!("queue run: {e}");
            Err(())
        }
    }
}

/// Fork `f` and wait for it (start-up only, before the loop).
fn run_child_sync(f: impl FnOnce() -> i32) -> Result<i32, Fail> {
    // SAFETY: the process is single-threaded here.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => std::process::exit(f()),
        Ok(ForkResult::Parent { child }) => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    return Err(Fail::new(
                        Exit::Software,
                        format!("start-up child killed by {sig}"),
                    ))
                }
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(os_fail(Exit::Software, "waitpid", e)),
            }
        },
        Err(e) => Err(os_fail(Exit::TempFail, "fork", e)),
    }
}

/// `-bd`: leave the terminal, keep running in the background. The parent
/// writes the pid file before it exits, so the file is there when `-bd`
/// returns and a failure to write it is `-bd`'s exit code, not a silent
/// error in a process without a terminal.
fn daemonize(pid_file: &Path) -> CmdResult {
    if let Some(dir) = pid_file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // SAFETY: single-threaded; the parent only writes a file and exits.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => match std::fs::write(pid_file, format!("{child}\n")) {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
                return Err(Fail::new(
                    Exit::CantCreate,
                    format!("pid file {}: {e}", pid_file.display()),
                ));
            }
        },
        Ok(ForkResult::Child) => {}
        Err(e) => return Err(os_fail(Exit::TempFail, "fork", e)),
    }
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    // SAFETY: open(2) of a constant path; dup2 onto the standard
    // descriptors, which stay open.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    Ok(())
}

/// Watch the directory of `online_file` (the file itself may be created,
/// replaced by rename or deleted).
fn online_watch(cfg: &Config, inotify: &Inotify) -> Option<WatchDescriptor> {
    if cfg.main.online_detect != crate::config::OnlineDetect::File {
        return None;
    }
    let dir = cfg.main.online_file.parent()?;
    if let Err(e) = std::fs::create_dir_all(dir) {
        warn!("online_file directory {}: {e}", dir.display());
    }
    let flags = AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE;
    match inotify.add_watch(dir, flags) {
        Ok(wd) => Some(wd),
        Err(e) => {
            error!(
                "cannot watch {}: {}; online state only on flush",
                dir.display(),
                os_error(e)
            );
            None
        }
    }
}

impl Supervisor {
    fn run_loop(&mut self) {
        loop {
            if self.stopping && self.children.is_empty() {
                return;
            }
            // Going idle (no worker, nothing pending, no deadline): give
            // back the program text mapped meanwhile (memory::drop_text),
            // so the idle daemon holds only what waiting takes.
            if self.children.is_empty()
                && self.conns.is_empty()
                && self.run_pending.is_none()
                && self.run_report.is_none()
                && self.next_retry.is_none()
            {
                crate::util::memory::drop_text();
            }
            // The poll set, by index: signals, inotify, the control
            // listener, the run report, netlink, the query pipe (-1, which
            // poll skips, for those not there), then the SMTP listeners,
            // then the control connections.
            let raw = |fd: Option<BorrowedFd<'_>>| fd.map_or(-1, |fd| fd.as_raw_fd());
            let mut fds: Vec<libc::pollfd> =
                Vec::with_capacity(6 + self.listeners.len() + self.conns.len());
            for fd in [
                self.signals.as_fd().as_raw_fd(),
                self.inotify.as_fd().as_raw_fd(),
                raw(self.control.as_ref().map(AsFd::as_fd)),
                raw(self.run_report.as_ref().map(AsFd::as_fd)),
                raw(self.netlink.as_ref().map(|m| m.fd())),
                raw(self.query.as_ref().map(|q| q.fd())),
            ] {
                fds.push(libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if !self.stopping {
                for l in &self.listeners {
                    fds.push(libc::pollfd {
                        fd: l.sock.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    });
                }
            }
            let conn_at = fds.len();
            for c in &self.conns {
                fds.push(libc::pollfd {
                    fd: c.stream.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // SAFETY: poll(2) on our array, of the length given.
            match unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, self.poll_timeout()) } {
                0 => {
                    self.on_query_timeout();
                    if self
                        .next_retry
                        .is_some_and(|due| due <= crate::util::time::now())
                    {
                        // The retry deadline: a plain (not forced) run.
                        self.next_retry = None;
                        self.request_run(RunRequest::default());
                    }
                    continue;
                }
                n if n > 0 => {}
                _ => match Errno::last() {
                    Errno::EINTR => continue,
                    e => {
                        log_os("poll", e);
                        return;
                    }
                },
            }
            let at = |i: usize| fds.get(i).is_some_and(|p| p.revents != 0);
            if at(0) {
                self.on_signals();
            }
            if at(1) {
                self.on_inotify();
            }
            if at(2) {
                self.on_control_accept();
            }
            for i in 6..conn_at {
                if at(i) {
                    self.on_accept(i - 6);
                }
            }
            self.on_control_conns(fds.get(conn_at..).unwrap_or(&[]));
            if at(3) {
                self.on_run_report();
            }
            if at(4) {
                self.on_netlink();
            }
            if at(5) {
                self.on_query_pipe();
            }
        }
    }

    /// Infinite unless a retry is due on an online route (or a query
    /// child must be stopped).
    fn poll_timeout(&self) -> i32 {
        let mut ms = self.next_retry.map(|due| {
            due.saturating_sub(crate::util::time::now())
                .saturating_mul(1000)
        });
        if let Some(d) = self.query_deadline() {
            let left = crate::util::time::left(d);
            let q = crate::util::time::millis(left).saturating_add(1);
            ms = Some(ms.map_or(q, |m| m.min(q)));
        }
        match ms {
            None => -1,
            Some(ms) => ms.min(i32::MAX as u64) as i32,
        }
    }

    /// The queue run says when its next retry is due. The pipe does not
    /// block: a report not written yet (a run started since the poll)
    /// stays for later, and the supervisor never waits for a queue run.
    fn on_run_report(&mut self) {
        let Some(f) = self.run_report.take() else {
            return;
        };
        let mut buf = Vec::new();
        if let control::Got::More = control::read_line(f.as_fd(), &mut buf, 64) {
            if buf.is_empty() {
                self.run_report = Some(f);
                return;
            }
        }
        let next = std::str::from_utf8(&buf)
            .ok()
            .and_then(|s| s.trim().strip_prefix("next "))
            .and_then(|n| n.parse().ok());
        self.next_retry = if self.run_targeted {
            match (self.next_retry, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        } else {
            next
        };
        if let Some(due) = self.next_retry {
            debug!(
                "next retry in {}s",
                due.saturating_sub(crate::util::time::now())
            );
        }
    }

    fn request_run(&mut self, req: RunRequest) {
        if self.stopping {
            return;
        }
        match &mut self.run_pending {
            Some(p) => p.merge(req),
            None => self.run_pending = Some(req),
        }
        if !self.children.values().any(|k| *k == ChildKind::Run) {
            self.start_run();
        }
    }

    fn start_run(&mut self) {
        let Some(req) = self.run_pending.take() else {
            return;
        };
        // The report of the run that ended, before its pipe is replaced.
        self.on_run_report();
        // Close-on-exec like every other descriptor: the MDAs, pipe
        // commands and wrappers the run starts get neither end.
        let flags = nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC;
        let (rd, wr) = match nix::unistd::pipe2(flags) {
            Ok(p) => p,
            Err(e) => {
                log_os("pipe", e);
                return;
            }
        };
        let targeted = req.ids.is_some();
        let opts = crate::deliver::RunOpts {
            only_route: req.route,
            force: req.force,
            online: self.online.names(),
            only_ids: req.ids,
        };
        let mut wr = Some(wr);
        let pid = self.spawn(ChildKind::Run, &mut |cfg| {
            let code = run_worker(cfg, &opts);
            if let (Some(w), Ok(next)) = (wr.take(), code) {
                let line = match next {
                    Some(n) => format!("next {n}\n"),
                    None => "none\n".to_string(),
                };
                let _ = std::fs::File::from(w).write_all(line.as_bytes());
            }
            0
        });
        if pid.is_some() {
            self.run_report = Some(std::fs::File::from(rd));
            self.run_targeted = targeted;
            if !self.run_targeted {
                self.next_retry = None;
            }
        }
    }

    fn on_signals(&mut self) {
        loop {
            // struct signalfd_siginfo: 128 bytes, ssi_signo first.
            let mut si = [0u8; 128];
            match nix::unistd::read(self.signals.as_fd(), &mut si) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(e) => return log_os("signalfd", e),
            }
            match i32::from_ne_bytes([si[0], si[1], si[2], si[3]]) {
                libc::SIGTERM | libc::SIGINT => self.stop(),
                libc::SIGHUP => self.reload(),
                libc::SIGCHLD => self.reap(),
                libc::SIGUSR1 => self.flush(None),
                _ => {}
            }
        }
    }

    fn stop(&mut self) {
        if self.stopping {
            return;
        }
        info!(
            "stopping: no new connections; waiting for {} worker(s)",
            self.children.len()
        );
        self.stopping = true;
        self.listeners.clear();
        self.control = None;
        self.stop_query();
        let _ = std::fs::remove_file(&self.control_path);
        // SMTP workers wait for their clients (up to the 5-minute timeout,
        // and a client that trickles bytes forever): tell them to finish
        // what they commit, answer 421 and close. Scan and queue runs
        // end by themselves.
        for (pid, kind) in self.children.iter() {
            if matches!(kind, ChildKind::Smtp(_)) {
                let _ = nix::sys::signal::kill(*pid, Signal::SIGTERM);
            }
        }
    }

    fn reload(&mut self) {
        let new = match config::load(&self.config_path) {
            Ok(c) => c,
            Err(errs) => {
                for e in &errs.errors {
                    error!("reload: {e}");
                }
                error!(
                    "reload: {} error(s) in {}; keeping the running configuration",
                    errs.errors.len(),
                    self.config_path.display()
                );
                return;
            }
        };
        if new.main.spool_dir != self.cfg.main.spool_dir {
            warn!(
                "reload: spool_dir changes need a restart; keeping {}",
                self.cfg.main.spool_dir.display()
            );
        }
        if let Err(f) = crate::privs::remember_mail_user(&new) {
            error!("reload: {f}; keeping the running configuration");
            return;
        }
        // Keep the sockets whose address stays; bind the new ones.
        let mut keep: Vec<Listener> = Vec::new();
        let mut old: Vec<Listener> = std::mem::take(&mut self.listeners);
        for (addrs, tls) in [
            (&new.main.listen_addresses, false),
            (&new.main.smtps_addresses, true),
        ] {
            for &addr in addrs {
                if let Some(i) = old.iter().position(|l| l.addr == addr && l.tls == tls) {
                    keep.push(old.swap_remove(i));
                    continue;
                }
                match listen::bind_tcp(addr) {
                    Ok(sock) => keep.push(Listener { addr, tls, sock }),
                    Err(e) => error!("reload: cannot listen on {addr}: {e}"),
                }
            }
        }
        self.listeners = keep;
        let spool = self.cfg.main.spool_dir.clone();
        let old = std::mem::replace(&mut self.cfg, new);
        self.cfg.main.spool_dir = spool;
        crate::log::set_level(self.cfg.main.log_level);
        // Hints name routes of the old configuration.
        self.hints.clear();
        info!("configuration reloaded from {}", self.config_path.display());
        self.online_reconfigure(&old.main);
    }

    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => self.child_done(pid, Some(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    warn!("worker {pid} killed by {sig}");
                    self.child_done(pid, None);
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log_os("waitpid", e);
                    return;
                }
            }
        }
    }

    fn child_done(&mut self, pid: Pid, code: Option<i32>) {
        match self.children.remove(&pid) {
            Some(ChildKind::Scan) if self.scan_again && !self.stopping => {
                self.scan_again = false;
                self.start_scan();
            }
            Some(ChildKind::Smtp(ip)) => {
                match code {
                    Some(c) => debug!("connection from {ip} done (exit {c})"),
                    None => debug!("connection from {ip} done (killed)"),
                }
                // The worker scans what it accepted; exit 0 says it did.
                // Otherwise (killed, or scanning failed) a scan run picks
                // up what it left in incoming/.
                if code != Some(0) {
                    self.request_scan();
                }
            }
            Some(ChildKind::Run) if self.run_pending.is_some() && !self.stopping => {
                self.start_run()
            }
            _ => {}
        }
    }

    fn on_inotify(&mut self) {
        use std::os::unix::ffi::OsStrExt;
        // struct inotify_event: wd, mask, cookie, len, then len bytes of
        // name, NUL-padded. One read, as many events as it gave.
        let mut buf = [0u8; 4096];
        let mut b = match nix::unistd::read(self.inotify.as_fd(), &mut buf) {
            Ok(n) => &buf[..n],
            Err(Errno::EAGAIN) => return,
            Err(e) => return log_os("inotify", e),
        };
        let (mut scan, mut online) = (false, false);
        let mut arrived: Vec<crate::queue::MsgId> = Vec::new();
        let online_name = self
            .cfg
            .main
            .online_file
            .file_name()
            .map(OsStrExt::as_bytes);
        let word = |b: &[u8], at: usize| {
            b.get(at..at + 4)
                .map_or(0, |w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
        };
        while b.len() >= 16 {
            let wd = word(b, 0) as i32;
            let end = b.len().min(16 + word(b, 12) as usize);
            let name = b.get(16..end).filter(|n| !n.is_empty());
            let name = name.and_then(|n| n.split(|&c| c == 0).next());
            b = b.get(end..).unwrap_or_default();
            let id = name
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(crate::queue::MsgId::parse);
            if wd == self.wd_incoming.as_raw() {
                // A message of a running SMTP worker is scanned by that
                // worker (its exit code says if it could not); a scan run
                // for it would only do the same work again.
                scan |= !id.is_some_and(|id| self.is_smtp_worker(id.pid()));
            } else if wd == self.wd_outgoing.as_raw() {
                if let Some(id) = id {
                    if !arrived.contains(&id) {
                        arrived.push(id);
                    }
                }
            } else if self.wd_online.map(|w| w.as_raw()) == Some(wd) && name == online_name {
                online = true;
            }
        }
        if scan {
            self.request_scan();
        }
        if online {
            self.check_online();
        }
        if arrived.is_empty() {
            return;
        }
        // The hints of these messages were sent before their events.
        self.read_hints();
        let mut ids = Vec::new();
        for id in &arrived {
            if self.wants_run(id) {
                ids.push(*id);
            }
        }
        if !ids.is_empty() {
            // New messages: a run for them only, not the whole queue.
            self.request_run(RunRequest {
                ids: Some(ids),
                ..RunRequest::default()
            });
        }
    }

    /// Take the scanners' hints waiting on the socket.
    fn read_hints(&mut self) {
        let Some(rx) = &self.hint_rx else {
            return;
        };
        let mut buf = [0u8; hint::MAX + 1];
        loop {
            match rx.recv(&mut buf) {
                Ok(n) => {
                    if let Some((id, rest)) = buf.get(..n).and_then(hint::decode) {
                        if self.hints.len() >= MAX_HINTS {
                            self.hints.clear();
                        }
                        self.hints.insert(id, rest.to_string());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Does a message that just arrived in outgoing/ need a queue run now?
    /// Not when its scanner said that only routes that are offline accept
    /// its recipients: the run would find nothing to do, and the run that
    /// starts when one of them comes up takes it.
    fn wants_run(&mut self, id: &crate::queue::MsgId) -> bool {
        match self.hints.remove(id) {
            Some(routes) if routes != "*" => {
                let usable = routes.split(' ').any(|r| {
                    self.cfg.route(r).is_some_and(|rt| {
                        rt.enabled && (rt.permanent || self.online.get(r).is_some())
                    })
                });
                if !usable {
                    debug!("{id}: no route for it is online; no queue run");
                }
                usable
            }
            _ => true,
        }
    }

    fn is_smtp_worker(&self, pid: u32) -> bool {
        i32::try_from(pid).is_ok_and(|p| {
            matches!(
                self.children.get(&Pid::from_raw(p)),
                Some(ChildKind::Smtp(_))
            )
        })
    }

    fn request_scan(&mut self) {
        if self.stopping {
            return;
        }
        if self.children.values().any(|k| *k == ChildKind::Scan) {
            self.scan_again = true;
        } else {
            self.start_scan();
        }
    }

    fn start_scan(&mut self) {
        self.spawn(ChildKind::Scan, &mut |cfg| {
            if let Err(f) = crate::privs::become_mail_user(cfg) {
                error!("{f}");
                return 1;
            }
            scan_worker(cfg)
        });
    }

    /// `flush [ROUTE]`, SIGUSR1: re-check the online state, then queue-out
    /// ignoring backoff, for ROUTE or for everything online.
    fn flush(&mut self, route: Option<&str>) {
        info!(
            "flush requested{}{}",
            if route.is_some() { " for route " } else { "" },
            route.unwrap_or("")
        );
        self.check_online();
        self.request_scan();
        self.request_run(RunRequest {
            force: true,
            route: route.map(str::to_string),
            ids: None,
        });
    }

    /// Fork a worker. In the child: drop everything of the supervisor,
    /// unblock signals, run `f` on the configuration (the child's copy of
    /// the supervisor's), exit with its code.
    fn spawn(&mut self, kind: ChildKind, f: &mut dyn FnMut(&Config) -> i32) -> Option<Pid> {
        // SAFETY: the supervisor is single-threaded.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                self.listeners.clear();
                self.control = None;
                self.conns.clear();
                self.hint_rx = None;
                if matches!(kind, ChildKind::Smtp(_) | ChildKind::Scan) {
                    if let Some(tx) = &self.hint_tx {
                        use std::os::fd::AsRawFd;
                        hint::set_sink(tx.as_raw_fd());
                    }
                }
                let _ = handled_signals().thread_unblock();
                let code = f(&self.cfg);
                let _ = std::io::stdout().flush();
                std::process::exit(code);
            }
            Ok(ForkResult::Parent { child }) => {
                self.children.insert(child, kind);
                Some(child)
            }
            Err(e) => {
                log_os("fork", e);
                None
            }
        }
    }

    fn on_accept(&mut self, i: usize) {
        let Some(l) = self.listeners.get(i) else {
            return;
        };
        let tls = l.tls;
        let (stream, peer) = match l.sock.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => {
                warn!("accept: {e}");
                return;
            }
        };
        let ip = peer.ip();
        let (mut total, mut from_ip) = (0, 0);
        for k in self.children.values() {
            if let ChildKind::Smtp(a) = k {
                total += 1;
                from_ip += usize::from(*a == ip);
            }
        }
        let m = &self.cfg.main;
        if total >= m.max_connections as usize || from_ip >= m.max_connections_per_ip as usize {
            info!("refused connection from {peer}: {total} open, {from_ip} from this address");
            refuse(stream, &self.cfg.main.host_name);
            return;
        }
        let mut stream = Some(stream);
        let pid = self.spawn(ChildKind::Smtp(ip), &mut |cfg| {
            stream
                .take()
                .map_or(1, |s| crate::receive::smtp::serve(cfg, s, peer, tls))
        });
        if let Some(pid) = pid {
            debug!("connection from {peer}: worker {pid}");
        }
    }

    fn on_control_accept(&mut self) {
        let Some(c) = &self.control else {
            return;
        };
        use std::os::fd::{AsRawFd, FromRawFd};
        loop {
            // SAFETY: accept4(2) on our listening socket, no address asked
            // for; the descriptor it returns is a new one, ours.
            let fd = unsafe {
                libc::accept4(
                    c.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                match Errno::last() {
                    Errno::EAGAIN => {}
                    e => log_os("control accept", e),
                }
                return;
            }
            // SAFETY: see above.
            let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
            self.conns.push(control::Conn::new(stream));
        }
    }

    fn on_control_conns(&mut self, polled: &[libc::pollfd]) {
        // Walk from the end so removals keep the indices of the rest.
        for i in (0..polled.len().min(self.conns.len())).rev() {
            if polled[i].revents == 0 {
                continue;
            }
            let result = self.conns[i].read();
            match result {
                control::ReadResult::More => {}
                control::ReadResult::Drop => {
                    self.conns.swap_remove(i);
                }
                control::ReadResult::Line(line) => {
                    let conn = self.conns.swap_remove(i);
                    let reply = match control::parse_request(&line) {
                        Some(control::Request::Flush(route)) => {
                            self.flush(route);
                            "ok\n".to_string()
                        }
                        Some(control::Request::Status) => self.status(),
                        Some(control::Request::Routes) => {
                            let mut s = String::new();
                            self.route_lines(&mut s, false);
                            s
                        }
                        None => format!("error: unknown request '{}'\n", line.trim()),
                    };
                    conn.reply(&reply);
                }
            }
        }
    }

    fn status(&self) -> String {
        use std::fmt::Write as _;
        let yes = |k: ChildKind| {
            if self.children.values().any(|c| *c == k) {
                "yes"
            } else {
                "no"
            }
        };
        let mut s = format!(
            concat!(
                "pid: {}\nversion: ",
                env!("CARGO_PKG_VERSION"),
                "\nlistening: "
            ),
            std::process::id(),
        );
        for (i, l) in self.listeners.iter().enumerate() {
            let sep = if i > 0 { ", " } else { "" };
            let tls = if l.tls { " (tls)" } else { "" };
            let _ = write!(s, "{sep}{}{tls}", l.addr);
        }
        let _ = write!(
            s,
            "\nconnections: {}\nscanning: {}\ndelivering: {}\nnext retry: ",
            self.smtp_workers(),
            yes(ChildKind::Scan),
            yes(ChildKind::Run),
        );
        match self.next_retry {
            Some(t) => {
                let _ = write!(s, "in {}s", t.saturating_sub(crate::util::time::now()));
            }
            None => s.push_str("none"),
        }
        let _ = write!(
            s,
            "\nspool: {}\nonline detection: {}{}\n",
            self.cfg.main.spool_dir.display(),
            self.cfg.main.online_detect.name(),
            if self.query.is_some() {
                " (asking)"
            } else {
                ""
            }
        );
        self.route_lines(&mut s, true);
        s
    }

    /// SMTP workers running.
    fn smtp_workers(&self) -> usize {
        self.children
            .values()
            .filter(|k| matches!(k, ChildKind::Smtp(_)))
            .count()
    }
}

/// Too many connections: say so and close, without blocking.
fn refuse(mut stream: TcpStream, host: &str) {
    let _ = stream.set_nonblocking(true);
    let mut m = Vec::with_capacity(64 + host.len());
    m.extend_from_slice(b"421 4.7.0 ");
    m.extend_from_slice(host.as_bytes());
    m.extend_from_slice(b" too many connections, try again later\r\n");
    let _ = stream.write_all(&m);
}
