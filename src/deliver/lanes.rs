//! lanes — a queue run's deliveries split by route, the routes in
//! parallel.
//!
//! DESCRIPTION
//!   A lane is the local delivery (mailboxes, maildirs, the MDA,
//!   `|command` targets) or one route. A due recipient belongs to the lane
//!   of the route it goes to first: the first route, in config order, that
//!   is usable in this run and accepts it (a temporary failure falls back
//!   to the next route inside the same lane). `plan` reads the header
//!   files, without locks, and lists for each lane with due work the
//!   messages it has a recipient in, oldest first.
//!
//!   `run` forks one process per lane, at most `max_parallel_routes` at a
//!   time (the binary is single-threaded: processes, not threads). A lane
//!   process takes its messages in turn under the delivery lock (the lock
//!   of `pool/ID`), reads the header file again under it, delivers only
//!   its own recipients and records their results by writing a new header
//!   file and renaming it over the old one; it removes the message when
//!   every recipient is done. Lanes that share a message take it one after
//!   the other, and each starts from what the one before recorded, so no
//!   lane's results are lost. A message another lane holds is taken after
//!   the lane's other messages, waiting for the lock.
//!
//!   A lane process reports its counts on a pipe; the runner waits for
//!   every lane (no zombies), merges the reports, and counts a lane that
//!   was killed or failed in `Report::failed_lanes`. What such a lane did
//!   not record is done again by the next run (doc/INTERNALS.md, D1).
//!   A lane whose runner is killed finishes its messages by itself.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use log::{debug, error};
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::{routes_for, Report, RunOpts};
use crate::addr::Address;
use crate::config::Config;
use crate::queue::{Dir, MsgId, RcptState, Spool, Target};
use crate::route;
use crate::scan::Scanner;
use crate::util::os_error;
use crate::util::time;
use crate::util::vecmap::VecMap;

/// Where a recipient's delivery runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Mailboxes, maildirs, the MDA, `|command` targets.
    Local,
    /// The route of this name (and its fallbacks).
    Route(String),
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lane::Local => f.write_str("local delivery"),
            Lane::Route(n) => write!(f, "route {n}"),
        }
    }
}

/// The lanes with due work among `ids`, local first, then the routes in
/// config order; each with its messages in the order of `ids`. A header
/// file that cannot be read is left to the runner's own pass.
pub(super) fn plan(
    cfg: &Config,
    spool: &Spool,
    scanner: &Scanner<'_>,
    opts: &RunOpts,
    ids: &[MsgId],
) -> Vec<(Lane, Vec<MsgId>)> {
    let now = time::now();
    // Index 0: local; i + 1: route i of the config.
    let mut by_lane: Vec<Vec<MsgId>> = Vec::new();
    by_lane.resize_with(cfg.routes.len() + 1, Vec::new);
    for id in ids {
        let Ok(Ok(hf)) = spool.load(Dir::Outgoing, id) else {
            continue;
        };
        let from_hdrs = route::from_addresses(&hf.headers);
        for r in &hf.env.rcpts {
            if r.state != RcptState::Pending || (!opts.force && r.next_try > now) {
                continue;
            }
            let lane = match &r.target {
                Target::Pipe(_) => local_lane(opts),
                Target::Addr(a) if scanner.is_local(a) => local_lane(opts),
                Target::Addr(a) => route_lane(cfg, opts, &hf.env.sender, &from_hdrs, a),
            };
            if let Some(k) = lane {
                if by_lane[k].last() != Some(id) {
                    by_lane[k].push(*id);
                }
            }
        }
    }
    let mut plan = Vec::new();
    for (k, ids) in by_lane.into_iter().enumerate() {
        if ids.is_empty() {
            continue;
        }
        let lane = match k.checked_sub(1).and_then(|i| cfg.routes.get(i)) {
            Some(rt) => Lane::Route(rt.name.clone()),
            None => Lane::Local,
        };
        plan.push((lane, ids));
    }
    plan
}

/// A run for one route (`-qo ROUTE`) does no local delivery.
fn local_lane(opts: &RunOpts) -> Option<usize> {
    opts.only_route.is_none().then_some(0)
}

fn route_lane(
    cfg: &Config,
    opts: &RunOpts,
    sender: &crate::addr::Sender,
    from_hdrs: &[Address],
    rcpt: &Address,
) -> Option<usize> {
    let first = *routes_for(cfg, opts, sender, from_hdrs, rcpt).first()?;
    cfg.routes
        .iter()
        .position(|rt| std::ptr::eq(rt, first))
        .map(|i| i + 1)
}

/// Run `work` for every lane of `plan`, each in a child process, at most
/// `max` at a time; wait for all of them and merge their reports into
/// `report`. `work` gets the lane, its messages and the lane's report.
/// When a process cannot be forked, the lane runs here.
pub(super) fn run(
    max: usize,
    plan: Vec<(Lane, Vec<MsgId>)>,
    report: &mut Report,
    mut work: impl FnMut(&Lane, &[MsgId], &mut Report) -> io::Result<()>,
) -> io::Result<()> {
    let mut waiting = plan.into_iter();
    let mut running: VecMap<Pid, (Lane, std::fs::File)> = VecMap::new();
    loop {
        while running.len() < max.max(1) {
            let Some((lane, ids)) = waiting.next() else {
                break;
            };
            match start(&lane, &ids, &mut work) {
                Ok((pid, rd)) => {
                    debug!(
                        "queue run: {lane} in process {pid}, {} message(s)",
                        ids.len()
                    );
                    running.insert(pid, (lane, rd));
                }
                Err(e) => {
                    error!("queue run: cannot start a process for {lane} ({e}); delivering here");
                    work(&lane, &ids, report)?;
                }
            }
        }
        if running.is_empty() {
            return Ok(());
        }
        let (pid, failed) = match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, 0)) => (pid, None),
            Ok(WaitStatus::Exited(pid, code)) => (pid, Some(format!("ended with status {code}"))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, Some(format!("was killed by {sig}"))),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                // ECHILD: nothing left to wait for, whatever the table says.
                error!("queue run: waitpid: {}", os_error(e));
                report.failed_lanes += running.len();
                return Ok(());
            }
        };
        let Some((lane, mut rd)) = running.remove(&pid) else {
            continue;
        };
        // The report is one short line (`encode`): one buffer, read to
        // its end or until full (a longer text is no report).
        let mut buf = [0u8; 256];
        let mut n = 0;
        while n < buf.len() {
            match rd.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let r = std::str::from_utf8(&buf[..n]).ok().and_then(decode);
        if failed.is_some() || r.is_none() {
            let why = failed.as_deref().unwrap_or("sent no report");
            error!(
                "queue run: the process for {lane} ({pid}) {why}; \
                 what it did not record is delivered by the next run"
            );
            report.failed_lanes += 1;
        }
        if let Some(r) = r {
            report.merge(r);
        }
    }
}

/// Fork the process for one lane; returns its pid and the read end of
/// the pipe its report comes on.
fn start(
    lane: &Lane,
    ids: &[MsgId],
    work: &mut impl FnMut(&Lane, &[MsgId], &mut Report) -> io::Result<()>,
) -> io::Result<(Pid, std::fs::File)> {
    let (rd, wr): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    // SAFETY: the binary is single-threaded; the child only runs `work`
    // and exits.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(rd);
            let mut r = Report::default();
            let code = match work(lane, ids, &mut r) {
                Ok(()) => 0,
                Err(e) => {
                    error!("queue run, {lane}: {e}");
                    1
                }
            };
            // The report is short: one write into an empty pipe.
            let _ = std::fs::File::from(wr).write_all(encode(&r).as_bytes());
            std::process::exit(code);
        }
        Ok(ForkResult::Parent { child }) => {
            drop(wr);
            Ok((child, std::fs::File::from(rd)))
        }
        Err(e) => Err(io::Error::from(e)),
    }
}

/// A lane's report as one line. A lane queues no notices (the runner
/// does), so the counts are all there is.
fn encode(r: &Report) -> String {
    format!(
        "{} {} {} {} {} {} {}\n",
        r.delivered,
        r.deferred,
        r.bounced,
        r.waiting,
        r.messages_done,
        r.next_due.unwrap_or(0),
        r.failed_lanes
    )
}

fn decode(text: &str) -> Option<Report> {
    let line = text.strip_suffix('\n')?;
    let mut words = line.split(' ');
    let mut n = [0u64; 7];
    for v in &mut n {
        *v = words.next()?.parse().ok()?;
    }
    if words.next().is_some() {
        return None;
    }
    let [delivered, deferred, bounced, waiting, done, next, failed] = n;
    let us = |v: u64| usize::try_from(v).ok();
    Some(Report {
        delivered: us(delivered)?,
        deferred: us(deferred)?,
        bounced: us(bounced)?,
        waiting: us(waiting)?,
        messages_done: us(done)?,
        next_due: (next != 0).then_some(next),
        failed_lanes: us(failed)?,
        notices: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line_round_trips() {
        let r = Report {
            delivered: 3,
            deferred: 1,
            bounced: 2,
            waiting: 4,
            messages_done: 2,
            next_due: Some(1_764_103_659),
            failed_lanes: 0,
            notices: Vec::new(),
        };
        assert_eq!(decode(&encode(&r)), Some(r));
        let empty = Report::default();
        assert_eq!(decode(&encode(&empty)), Some(Report::default()));
        // A lane killed while writing leaves a cut line: no report.
        assert_eq!(decode("3 1 2"), None);
        assert_eq!(decode(""), None);
        assert_eq!(decode("3 1 2 4 2 0 0"), None);
    }

    #[test]
    fn lanes_are_named_for_the_log() {
        assert_eq!(Lane::Local.to_string(), "local delivery");
        assert_eq!(Lane::Route("lan".into()).to_string(), "route lan");
    }
}
