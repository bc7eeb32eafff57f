//! The supervisor's online detection: keep [`Online`] up to date on
//! events, and start a forced queue run for each route that comes up.
//!
//! DESCRIPTION
//!   What wakes the check, per `online_detect`:
//!     `netlink`  the kernel's link/address/route messages on the
//!                NETLINK_ROUTE socket (src/online/netlink.rs); the table
//!                is evaluated after each batch, once no dump is running;
//!     `file`     inotify on the directory of `online_file` (written,
//!                created, renamed over, deleted);
//!     `mserver`, `command`
//!                the start of the daemon, `flush`, SIGUSR1 — and netlink
//!                events: the same socket and table are kept, and a change
//!                of what matters (a link up or down, a global address, a
//!                usable default route) asks again; renewals (router
//!                advertisements, address lifetimes) do not. Never a
//!                timer. (A masqdialer on another host changes nothing
//!                here: its connect script should call `masqmail flush`.)
//!   Every method also re-checks on `flush` and SIGUSR1 (netlink: the
//!   whole state is read again first, trusting nothing kept).
//!
//!   The query of `mserver` and `command` runs in a short-lived child
//!   (the mail user) that writes one line to a pipe the supervisor polls:
//!   a name lookup, a silent server or a hanging command can never stop
//!   the supervisor from accepting SMTP. At most one query runs; events
//!   meanwhile ask for one more after it. The child bounds its own work
//!   (10 s); the supervisor kills it after 25 s regardless, and counts
//!   that as "offline".
//!
//!   A route going from offline to online gets a queue run for that route
//!   at once, ignoring retry backoff; a route going offline only stops
//!   being used by the next run.
//!
//! DIAGNOSTICS
//!   `route NAME came online (default route via DEV)` and `route NAME went
//!   offline` at info; query failures at warning.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{ChildKind, RunRequest, Supervisor};
use crate::config::OnlineDetect;
use crate::online::{self, netlink, Online};
use crate::util::os_error;

/// The supervisor's limit for one query child.
const QUERY_LIMIT: Duration = Duration::from_secs(25);
/// How long the start of the daemon waits for the first netlink dump.
const FIRST_DUMP: Duration = Duration::from_secs(2);

/// A query child at work.
pub(super) struct Query {
    pid: Pid,
    pipe: std::fs::File,
    buf: Vec<u8>,
    deadline: Instant,
}

impl Query {
    pub(super) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pipe.as_fd()
    }
}

/// Open what the method needs: the netlink socket (a table for
/// `netlink`, only events for `mserver` and `command`).
pub(super) fn open_netlink(method: OnlineDetect) -> Option<netlink::Monitor> {
    if method == OnlineDetect::File {
        return None;
    }
    match netlink::Monitor::open(true) {
        Ok(mut m) => {
            if !m.settle(FIRST_DUMP) {
                warn!("netlink: the first dump did not finish in time; going on with events");
            }
            // The baseline for network_changed().
            let _ = m.network_changed();
            Some(m)
        }
        Err(e) => {
            if method == OnlineDetect::Netlink {
                error!("netlink: {e}; routes come online only on 'masqmail flush ROUTE'");
            } else {
                warn!("netlink: {e}; the online state is asked again only on flush and SIGUSR1");
            }
            None
        }
    }
}

impl Supervisor {
    /// The online state as known without waiting (start of the daemon):
    /// file and netlink at once; mserver and command start their query.
    pub(super) fn initial_online(&mut self) -> Online {
        match self.cfg.main.online_detect {
            OnlineDetect::File => self.file_online(),
            OnlineDetect::Netlink => self.netlink_online().unwrap_or_default(),
            OnlineDetect::Mserver | OnlineDetect::Command => {
                self.start_query();
                Online::default()
            }
        }
    }

    fn file_online(&self) -> Online {
        online::from_file(&self.cfg)
    }

    /// The routes the netlink table makes online, when it is whole.
    fn netlink_online(&self) -> Option<Online> {
        let m = self.netlink.as_ref()?;
        if !m.settled() {
            return None;
        }
        debug!("netlink: {}", m.table().describe());
        Some(Online::from_devices(&self.cfg, &m.table().online_devices()))
    }

    /// Check again now (a flush, SIGUSR1, the online file changed).
    pub(super) fn check_online(&mut self) {
        match self.cfg.main.online_detect {
            OnlineDetect::File => {
                let now = self.file_online();
                self.set_online(now);
            }
            OnlineDetect::Netlink => match self.netlink.as_mut() {
                // Evaluated when the new dump is in (on_netlink).
                Some(m) => m.refresh(),
                None => self.set_online(Online::default()),
            },
            OnlineDetect::Mserver | OnlineDetect::Command => self.start_query(),
        }
    }

    /// Take a new online state; routes that came up get a forced run.
    pub(super) fn set_online(&mut self, now: Online) {
        let old = std::mem::replace(&mut self.online, now);
        for (r, why) in old.iter() {
            if self.online.get(r).is_none() {
                info!("route {r} went offline (was: {why})");
            }
        }
        let mut i = 0;
        while let Some((r, why)) = self.online.at(i) {
            i += 1;
            if old.get(r).is_none() {
                info!("route {r} came online ({why})");
                let route = Some(r.clone());
                self.request_run(RunRequest {
                    force: true,
                    route,
                    ids: None,
                });
            }
        }
    }

    /// The netlink socket is readable.
    pub(super) fn on_netlink(&mut self) {
        let Some(m) = self.netlink.as_mut() else {
            return;
        };
        if !m.read().changed {
            return;
        }
        match self.cfg.main.online_detect {
            OnlineDetect::Netlink => {
                if let Some(now) = self.netlink_online() {
                    self.set_online(now);
                }
            }
            OnlineDetect::Mserver | OnlineDetect::Command => {
                if m.network_changed() {
                    self.start_query();
                }
            }
            OnlineDetect::File => {}
        }
    }

    /// Start a query child (mserver, command), or ask for one more after
    /// the running one.
    pub(super) fn start_query(&mut self) {
        if self.stopping {
            return;
        }
        if self.query.is_some() {
            self.query_again = true;
            return;
        }
        // Both ends non-blocking, like the run report's: the child writes
        // one short line into the empty pipe (and the supervisor reads at
        // most 4 KiB of it anyway).
        let (rd, wr) = match nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK) {
            Ok(p) => p,
            Err(e) => {
                super::log_os("pipe", e);
                return;
            }
        };
        let pipe = std::fs::File::from(rd);
        let mut wr = Some(wr);
        let pid = self.spawn(ChildKind::Query, &mut |cfg| {
            let answer = match crate::privs::become_mail_user(cfg) {
                Ok(()) => online::ask(cfg),
                Err(f) => Err(f.msg),
            };
            if let Some(w) = wr.take() {
                let _ = std::fs::File::from(w).write_all(online::encode_answer(&answer).as_bytes());
            }
            0
        });
        if let Some(pid) = pid {
            debug!("online query: worker {pid}");
            self.query = Some(Query {
                pid,
                pipe,
                buf: Vec::new(),
                deadline: Instant::now() + QUERY_LIMIT,
            });
        }
    }

    /// The query child wrote (or closed its end).
    pub(super) fn on_query_pipe(&mut self) {
        let Some(q) = self.query.as_mut() else {
            return;
        };
        let got = super::control::read_line(q.pipe.as_fd(), &mut q.buf, 4096);
        if !matches!(got, super::control::Got::More) {
            let answer = online::decode_answer(&String::from_utf8_lossy(&q.buf));
            self.finish_query(answer);
        }
    }

    fn finish_query(&mut self, answer: online::Answer) {
        self.query = None;
        let now = online::from_answer(&self.cfg, &answer);
        self.set_online(now);
        if std::mem::take(&mut self.query_again) {
            self.start_query();
        }
    }

    pub(super) fn query_deadline(&self) -> Option<Instant> {
        self.query.as_ref().map(|q| q.deadline)
    }

    /// The poll timed out: a query child past its limit is killed.
    pub(super) fn on_query_timeout(&mut self) {
        let Some(q) = &self.query else {
            return;
        };
        if !crate::util::time::left(q.deadline).is_zero() {
            return;
        }
        warn!(
            "online query: worker {} gave no answer within {} s; killed",
            q.pid,
            QUERY_LIMIT.as_secs()
        );
        match kill(q.pid, Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => warn!("kill {}: {}", q.pid, os_error(e)),
        }
        self.finish_query(Err("no answer".into()));
    }

    /// Stopping (or the method changed): a query in flight is of no use.
    pub(super) fn stop_query(&mut self) {
        if let Some(q) = self.query.take() {
            let _ = kill(q.pid, Signal::SIGKILL);
        }
        self.query_again = false;
    }

    /// After a reload: set detection up again when its settings changed.
    pub(super) fn online_reconfigure(&mut self, old: &crate::config::Main) {
        let m = &self.cfg.main;
        if m.online_detect == old.online_detect
            && m.online_file == old.online_file
            && m.online_query == old.online_query
            && m.mserver_host == old.mserver_host
        {
            // Route definitions (devices, permanent) may have changed.
            self.check_online();
            return;
        }
        info!("online detection is now '{}'", m.online_detect.name());
        if let Some(wd) = self.wd_online.take() {
            let _ = self.inotify.rm_watch(wd);
        }
        self.wd_online = super::online_watch(&self.cfg, &self.inotify);
        self.netlink = open_netlink(self.cfg.main.online_detect);
        self.stop_query();
        self.check_online();
    }

    /// One line per route, then an empty line: for `status`
    /// (`route NAME: online (WHY)`, `route NAME: STATE`), or for `routes`
    /// on the control socket (`NAME STATE SOURCE DETAIL`, `-` for none).
    pub(super) fn route_lines(&self, s: &mut String, status: bool) {
        use std::fmt::Write as _;
        for r in online::route_states(&self.cfg, &self.online) {
            let _ = match (&r.why, status) {
                (Some(why), true) => writeln!(s, "route {}: online ({why})", r.name),
                (None, true) => writeln!(s, "route {}: {}", r.name, r.state()),
                (why, false) => {
                    let (source, detail) = match why {
                        Some(w) => (w.source(), w.detail().unwrap_or("-")),
                        None => ("-", "-"),
                    };
                    writeln!(s, "{} {} {source} {detail}", r.name, r.state())
                }
            };
        }
        s.push('\n');
    }
}
