//! deliver — queue-out: read `outgoing/`, decide per recipient, deliver,
//! record the results, bounce what failed.
//!
//! DESCRIPTION
//!   A queue run walks `outgoing/` oldest first. For each message it takes
//!   the delivery lock (the lock of `pool/ID`; a message locked by another
//!   run is taken in a second pass, waiting for it) and handles every
//!   recipient that is pending and due (`next_try` reached; a run asked for
//!   by a person or the system ignores that):
//!
//!   - `|command` targets and addresses in local domains are delivered here
//!     (local.rs: mbox, maildir, MDA);
//!   - other addresses go through the first route, in config order, that
//!     is usable (permanent, online, or the route of `-qo`) and accepts
//!     them (route.rs); recipients of one route and destination host share
//!     one SMTP session. On a temporary failure the next accepting route is
//!     tried, unless the route has `last_route`. With no usable route the
//!     recipient just waits, with no error and no backoff.
//!
//!   Results are written by replacing the header file (`outgoing/ID.new`
//!   renamed over `outgoing/ID`): delivered recipients become `D`,
//!   deferred ones get their attempt count, next try (exponential
//!   backoff: 5 min doubling up to 4 h) and last error, failed ones `F`.
//!   Recipients failed for good — permanently, or deferred longer than
//!   `max_defer_time` — get one bounce (bounce.rs), queued before they are
//!   marked `B`. A message whose recipients are all `D` or `B` is removed:
//!   header file first, then body.
//!
//!   Crash points (doc/INTERNALS.md, "Delivery states"): D1 delivered,
//!   not yet recorded → the next run delivers again (a duplicate, never a
//!   loss); D2 bounce queued, not yet recorded → a second bounce; D3a new
//!   header file written, not renamed → recovery removes it; D3 header
//!   file replaced; D4 header file removed, body not → recovery removes
//!   the body.
//!
//!   Routes run in parallel (lanes.rs): with `max_parallel_routes` above
//!   1 and due work for more than one lane (local delivery, each route),
//!   each lane delivers its recipients in a process of its own, and the
//!   runner then does the expiry, the notices and the last records for
//!   every message (`Part::Finish`).
//!
//!   The remote transport (`Transport`, transport::smtp) may keep SMTP
//!   sessions open from one message to the next; `run` ends them when it
//!   is done. Notices queued by the run (bounces, delay warnings) are
//!   delivered by the same run.
//!
//! DIAGNOSTICS
//!   One log line per recipient and attempt:
//!   `ID => rcpt route=NAME relay=host[ip]:port status=sent|deferred|bounced (reply)`.

pub mod bounce;
pub mod command;
pub mod lanes;
pub mod local;
pub mod output;

use std::io;

use log::{error, info, warn};

use crate::addr::{Address, Sender};
use crate::config::{Config, Route};
use crate::queue::{Dir, HeaderFile, MsgId, Rcpt, RcptState, Spool, Target};
use crate::route;
use crate::scan::Scanner;
use crate::util::time;

pub use lanes::Lane;

/// Why a delivery attempt did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Try again later.
    Temporary(String),
    /// Give up: bounce.
    Permanent(String),
}

impl Failure {
    pub fn text(&self) -> &str {
        match self {
            Failure::Temporary(t) | Failure::Permanent(t) => t,
        }
    }
}

/// What a queue run may do.
#[derive(Clone, Debug, Default)]
pub struct RunOpts {
    /// `-qo ROUTE`, `flush ROUTE`: only remote mail for this route, and the
    /// route counts as online.
    pub only_route: Option<String>,
    /// Asked for by a person or the system: ignore retry backoff.
    pub force: bool,
    /// The routes known to be online now (permanent ones always are).
    pub online: Vec<String>,
    /// Only these messages (the daemon's run for messages that just
    /// arrived: it must not read the whole queue for each); None: every
    /// message in the queue.
    pub only_ids: Option<Vec<MsgId>>,
}

impl RunOpts {
    fn usable(&self, r: &Route) -> bool {
        if !r.enabled {
            return false;
        }
        if let Some(only) = &self.only_route {
            return *only == r.name;
        }
        r.permanent || self.online.contains(&r.name)
    }
}

/// What a run did, for the caller's summary.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Recipients delivered by this run.
    pub delivered: usize,
    /// Recipients deferred by this run (a temporary failure on every
    /// route tried).
    pub deferred: usize,
    /// Recipients failed by this run: permanently, or expired.
    pub bounced: usize,
    /// Recipients due that no usable route accepts.
    pub waiting: usize,
    pub messages_done: usize,
    /// The earliest retry time of a deferred recipient that can go now
    /// (local, or with a usable route): the daemon's next deadline.
    pub next_due: Option<u64>,
    /// Lane processes (lanes.rs) that were killed or failed: what they
    /// did not record waits for the next run.
    pub failed_lanes: usize,
    /// Bounces and delay warnings queued by this run, not yet tried.
    notices: Vec<MsgId>,
}

impl Report {
    /// Add another part's report (a lane's) to this one.
    fn merge(&mut self, o: Report) {
        self.delivered += o.delivered;
        self.deferred += o.deferred;
        self.bounced += o.bounced;
        self.waiting += o.waiting;
        self.messages_done += o.messages_done;
        self.failed_lanes += o.failed_lanes;
        if let Some(n) = o.next_due {
            self.next_due = Some(self.next_due.map_or(n, |d| d.min(n)));
        }
        self.notices.extend(o.notices);
    }
}

/// The remote transport: deliver one message to some recipients through
/// one route and destination. Returns a result per recipient (in order)
/// and the relay description for the log.
pub trait Transport {
    fn send(
        &mut self,
        cfg: &Config,
        route: &Route,
        out: &Outgoing<'_>,
        rcpts: &[Address],
    ) -> (String, Vec<Result<String, Failure>>);

    /// The run is over: end what is still open (kept SMTP sessions).
    fn finish(&mut self) {}
}

/// A function is a transport that keeps nothing open.
impl<F> Transport for F
where
    F: FnMut(&Config, &Route, &Outgoing<'_>, &[Address]) -> (String, Vec<Result<String, Failure>>),
{
    fn send(
        &mut self,
        cfg: &Config,
        route: &Route,
        out: &Outgoing<'_>,
        rcpts: &[Address],
    ) -> (String, Vec<Result<String, Failure>>) {
        self(cfg, route, out, rcpts)
    }
}

/// A message as a transport sees it (after the route's rewriting).
pub struct Outgoing<'a> {
    pub id: &'a MsgId,
    pub sender: Sender,
    pub headers: Vec<crate::message::Header>,
    pub pool: std::path::PathBuf,
    pub body_size: u64,
    pub received: u64,
}

/// Backoff after `tries` failed attempts.
pub fn backoff(tries: u32) -> u64 {
    let base: u64 = 300;
    let cap: u64 = 4 * 3600;
    base.saturating_mul(1u64 << tries.saturating_sub(1).min(16))
        .min(cap)
}

/// Which recipients of a message one call of `process` handles.
#[derive(Clone, Copy, Debug)]
enum Part<'a> {
    /// Everything: deliver every due recipient, then expire, queue the
    /// notices, record (one process does the whole run).
    All,
    /// Deliver only the due recipients of this lane and record their
    /// results (a lane process, lanes.rs).
    Lane(&'a Lane),
    /// Deliver nothing: expire, queue the notices, record, remove (the
    /// runner after its lanes ended).
    Finish,
}

impl Part<'_> {
    /// Does this part deliver for the local lane (None) or route `name`?
    fn takes(&self, route: Option<&str>) -> bool {
        match self {
            Part::All => true,
            Part::Lane(Lane::Local) => route.is_none(),
            Part::Lane(Lane::Route(n)) => Some(n.as_str()) == route,
            Part::Finish => false,
        }
    }

    /// Expiry, notices and the count of waiting recipients belong to the
    /// part that sees the whole message.
    fn finishes(&self) -> bool {
        !matches!(self, Part::Lane(_))
    }
}

/// Run the queue once.
///
/// With `max_parallel_routes` above 1 and due work for more than one
/// lane (the local one, one per route), each lane runs in its own process
/// (lanes.rs) and this process then finishes every message (expiry,
/// notices, removal); otherwise everything runs here, message after
/// message.
pub fn run(
    cfg: &Config,
    spool: &Spool,
    opts: &RunOpts,
    send: &mut dyn Transport,
) -> io::Result<Report> {
    let scanner = Scanner::new(cfg).map_err(io::Error::other)?;
    let mut report = Report::default();
    let listed;
    let ids: &[MsgId] = match &opts.only_ids {
        Some(ids) => ids,
        None => {
            listed = spool.ready(Dir::Outgoing)?;
            &listed
        }
    };
    pass(cfg, spool, &scanner, opts, ids, true, send, &mut report)?;
    // The notices this run queued go out in this run too (a person who
    // runs `runq` expects the bounce to leave with it). A notice about a
    // notice is possible once (the double bounce to postmaster); the
    // rounds are bounded all the same. A notice another run holds is
    // left to that run.
    for _round in 0..3 {
        let ids = std::mem::take(&mut report.notices);
        if ids.is_empty() {
            break;
        }
        pass(cfg, spool, &scanner, opts, &ids, false, send, &mut report)?;
    }
    send.finish();
    Ok(report)
}

/// One pass over `ids`: in lanes when that is allowed and worth it, else
/// here.
#[allow(clippy::too_many_arguments)]
fn pass(
    cfg: &Config,
    spool: &Spool,
    scanner: &Scanner<'_>,
    opts: &RunOpts,
    ids: &[MsgId],
    wait_busy: bool,
    send: &mut dyn Transport,
    report: &mut Report,
) -> io::Result<()> {
    let max = cfg.main.max_parallel_routes as usize;
    let mut part = Part::All;
    if max > 1 {
        let plan = lanes::plan(cfg, spool, scanner, opts, ids);
        if plan.len() > 1 {
            // A lane process must not inherit a session this one keeps.
            send.finish();
            lanes::run(max, plan, report, |lane, ids, r| {
                let res = walk(
                    cfg,
                    spool,
                    scanner,
                    opts,
                    ids,
                    Part::Lane(lane),
                    true,
                    send,
                    r,
                );
                send.finish();
                res
            })?;
            // What the lanes left: one walk below, for a single copy of it.
            part = Part::Finish;
        }
    }
    walk(
        cfg, spool, scanner, opts, ids, part, wait_busy, send, report,
    )
}

/// Take each message of `ids` in turn under its delivery lock and do
/// `part` of its work. A message another process holds is taken after
/// the others, waiting for its lock (`wait_busy`), or left alone.
#[allow(clippy::too_many_arguments)]
fn walk(
    cfg: &Config,
    spool: &Spool,
    scanner: &Scanner<'_>,
    opts: &RunOpts,
    ids: &[MsgId],
    part: Part<'_>,
    wait_busy: bool,
    send: &mut dyn Transport,
    report: &mut Report,
) -> io::Result<()> {
    // Take `id` under its lock (`wait`: waiting for it) and do its part;
    // false: another process holds it.
    let mut take = |id: &MsgId, wait: bool| -> io::Result<bool> {
        let Some(lock) = spool.lock_message(id, wait)? else {
            return Ok(false);
        };
        // Re-checked under the lock: another run (or lane) may have
        // finished it since. `process` reads the header file only now,
        // so it sees every result recorded before.
        if spool.has_ready(Dir::Outgoing, id) {
            process(cfg, spool, scanner, id, opts, part, send, report)?;
        }
        drop(lock);
        Ok(true)
    };
    let mut busy = Vec::new();
    for id in ids {
        // Not (or no longer) waiting for delivery: done by another run,
        // or still being received (queue-in holds the same lock).
        if !spool.has_ready(Dir::Outgoing, id) {
            continue;
        }
        if !take(id, false)? && wait_busy && spool.pool_path(id).exists() {
            busy.push(*id);
        }
    }
    // Second pass: messages another process held; wait for them.
    for id in busy {
        take(&id, true)?;
    }
    Ok(())
}

/// The routes, in config order, that are usable in this run and accept
/// `rcpt`: the first is where it goes, the others are its fallbacks.
fn routes_for<'c>(
    cfg: &'c Config,
    opts: &RunOpts,
    sender: &Sender,
    from_hdrs: &[Address],
    rcpt: &Address,
) -> Vec<&'c Route> {
    let mut out = Vec::new();
    for rt in &cfg.routes {
        if opts.usable(rt) && route::accepts(rt, sender, from_hdrs, rcpt) {
            out.push(rt);
        }
    }
    out
}

/// The destination of a remote recipient on route `rt`, for grouping:
/// its domain, or none when the route names where mail goes.
fn dest_of<'a>(rt: &Route, t: &'a Target) -> &'a str {
    match t {
        Target::Addr(a) if rt.mail_host.is_none() && rt.pipe.is_none() && rt.wrapper.is_none() => {
            a.domain()
        }
        _ => "",
    }
}

/// Log one attempt's result: `ID => rcpt route=… relay=… status=… (text)`.
fn log_result(
    id: &MsgId,
    rcpt: &Target,
    route: &str,
    relay: &str,
    result: &Result<String, Failure>,
) {
    let t = rcpt.text();
    let (status, text) = match result {
        Ok(reply) => ("sent", reply.as_str()),
        Err(Failure::Temporary(t)) => ("deferred", t.as_str()),
        Err(Failure::Permanent(t)) => ("bounced", t.as_str()),
    };
    info!("{id} => {t} route={route} relay={relay} status={status} ({text})");
}

/// Record one attempt's result on a recipient, and count it.
fn record(r: &mut Rcpt, result: Result<String, Failure>, now: u64, report: &mut Report) {
    match result {
        Ok(_) => {
            r.state = RcptState::Delivered;
            r.error.clear();
            report.delivered += 1;
        }
        Err(Failure::Temporary(t)) => {
            r.tries = r.tries.saturating_add(1);
            r.next_try = now + backoff(r.tries);
            r.error = t;
            report.deferred += 1;
        }
        Err(Failure::Permanent(t)) => {
            r.tries = r.tries.saturating_add(1);
            r.state = RcptState::Failed;
            r.error = t;
            report.bounced += 1;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn process(
    cfg: &Config,
    spool: &Spool,
    scanner: &Scanner<'_>,
    id: &MsgId,
    opts: &RunOpts,
    part: Part<'_>,
    send: &mut dyn Transport,
    report: &mut Report,
) -> io::Result<()> {
    let mut hf = match spool.load(Dir::Outgoing, id)? {
        Ok(hf) => hf,
        Err(why) => {
            error!("{id}: outgoing file unreadable ({why}); moved to corrupt/");
            spool.set_aside(Some(Dir::Outgoing), id.as_str())?;
            return Ok(());
        }
    };
    let now = time::now();
    let pool = spool.pool_path(id);
    let from_hdrs = route::from_addresses(&hf.headers);
    let is_local = |a: &Address| scanner.is_local(a);
    let mut changed = false;

    let due = |r: &Rcpt| r.state == RcptState::Pending && (opts.force || r.next_try <= now);

    // Local targets, unless this run is for one route only.
    if opts.only_route.is_none() && part.takes(None) {
        for i in 0..hf.env.rcpts.len() {
            let r = &hf.env.rcpts[i];
            if !due(r) {
                continue;
            }
            let msg = local::LocalMsg {
                id,
                sender: &hf.env.sender,
                received: hf.env.received,
                headers: &hf.headers,
                pool: &pool,
            };
            let result = match &r.target {
                Target::Pipe(cmd) => {
                    let rcpt = r.orig.as_ref().map(|o| o.to_string()).unwrap_or_default();
                    local::run_command(cmd, &rcpt, &cfg.main.mail_user, &msg, None, output::PLAIN)
                }
                Target::Addr(a) if is_local(a) => {
                    // Mailboxes are given to their users and MDAs run as
                    // them: root again for this, when the run kept it.
                    crate::privs::with_root(|| {
                        local::deliver_user(cfg, a.local(), &a.to_string(), &msg)
                    })
                }
                Target::Addr(_) => continue,
            };
            let result = result.map(|()| "delivered".to_string());
            log_result(id, &hf.env.rcpts[i].target, "local", "local", &result);
            // D1: delivered, recorded in memory only until D3.
            record(&mut hf.env.rcpts[i], result, now, report);
            changed = true;
        }
    }

    // Remote targets: assign each due recipient of this part its
    // candidate routes (ascending by recipient); its lane is the first
    // one. A recipient whose list is empty is done for this run.
    let mut candidates: Vec<(usize, Vec<&Route>)> = Vec::new();
    for (i, r) in hf.env.rcpts.iter().enumerate() {
        let Target::Addr(a) = &r.target else {
            continue;
        };
        if !due(r) || is_local(a) {
            continue;
        }
        let routes = routes_for(cfg, opts, &hf.env.sender, &from_hdrs, a);
        match routes.first() {
            None if part.finishes() => report.waiting += 1,
            None => {}
            Some(first) if part.takes(Some(&first.name)) => {
                candidates.push((i, routes));
            }
            Some(_) => {}
        }
    }
    // Try routes in order; temporary failures fall through to the next.
    let mut attempt = 0;
    while candidates.iter().any(|c| !c.1.is_empty()) {
        attempt += 1;
        // Group by (route, destination domain) for this round, in that
        // order; members are positions in `candidates`.
        // A group: its route, the recipient whose domain is its
        // destination (an index: the recipients are updated below), its
        // members.
        let mut groups: Vec<(&Route, usize, Vec<usize>)> = Vec::new();
        let rc = &hf.env.rcpts;
        for (pos, (i, routes)) in candidates.iter().enumerate() {
            let Some(&rt) = routes.first() else {
                continue;
            };
            let key = (rt.name.as_str(), dest_of(rt, &rc[*i].target));
            // The first group not before `key`: it, or where a new one goes.
            let mut g = 0;
            let mut same = false;
            while let Some(grp) = groups.get(g) {
                let k = (grp.0.name.as_str(), dest_of(grp.0, &rc[grp.1].target));
                if k >= key {
                    same = k == key;
                    break;
                }
                g += 1;
            }
            if same {
                groups[g].2.push(pos);
            } else {
                groups.insert(g, (rt, *i, vec![pos]));
            }
        }
        for (rt, _, members) in groups {
            let mut rcpts: Vec<Address> = Vec::with_capacity(members.len());
            for &pos in &members {
                if let Target::Addr(a) = &hf.env.rcpts[candidates[pos].0].target {
                    rcpts.push(a.clone());
                }
            }
            let out = Outgoing {
                id,
                sender: route::rewrite_sender(rt, &hf.env.sender, &is_local),
                headers: route::rewrite_headers(rt, &hf.headers, &hf.env.sender, &is_local),
                pool: pool.clone(),
                body_size: hf.env.body_size,
                received: hf.env.received,
            };
            let (relay, results) = match &rt.pipe {
                Some(cmd) => pipe_route(rt, cmd, &out, &rcpts),
                None => send.send(cfg, rt, &out, &rcpts),
            };
            let mut results = results.into_iter();
            for pos in members {
                let (i, routes) = &mut candidates[pos];
                let r = &mut hf.env.rcpts[*i];
                let result = results.next().unwrap_or_else(|| {
                    Err(Failure::Temporary("no result from the transport".into()))
                });
                log_result(id, &r.target, &rt.name, &relay, &result);
                match result {
                    Err(Failure::Temporary(t)) if !rt.last_route && routes.len() > 1 => {
                        // Keep the error, try the next route in this run.
                        r.error = t;
                        routes.remove(0);
                    }
                    result => {
                        // D1: delivered, recorded in memory only until D3.
                        record(r, result, now, report);
                        routes.clear();
                        changed = true;
                    }
                }
            }
        }
        if attempt > cfg.routes.len() + 1 {
            break;
        }
    }

    // Give up on recipients older than max_defer_time: deferred ones, and
    // ones that never had a route online (a route that stays down for
    // days, or a config that no route accepts, must not keep mail
    // forever without the sender knowing). A run asked for one route
    // only judges that route's mail.
    let age = now.saturating_sub(hf.env.received);
    if part.finishes() && age > cfg.main.max_defer_time.as_secs() && opts.only_route.is_none() {
        for r in hf
            .env
            .rcpts
            .iter_mut()
            .filter(|r| r.state == RcptState::Pending)
        {
            r.state = RcptState::Failed;
            let (why, last) = if r.tries > 0 {
                ("; last error: ", r.error.as_str())
            } else {
                (": no route was online for it", "")
            };
            r.error = format!(
                "message expired after {} days in the queue{why}{last}",
                age / 86400
            );
            report.bounced += 1;
            changed = true;
        }
    }
    // A lane leaves its failed recipients `F`: the runner bounces them
    // once the lanes are done (one notice for the message, not one per
    // lane).
    if part.finishes() {
        changed |= notices(cfg, spool, scanner, id, &mut hf, age, &mut report.notices)?;
    }

    if hf
        .env
        .rcpts
        .iter()
        .all(|r| matches!(r.state, RcptState::Delivered | RcptState::Bounced))
    {
        // D4: the header file goes first; a lost body is recovery's.
        spool.remove(id)?;
        report.messages_done += 1;
        info!("{id}: removed (done)");
    } else if changed {
        // D3a, D3: the new header file, renamed over the old one.
        spool.replace_header(Dir::Outgoing, id, &hf)?;
    }
    for r in &hf.env.rcpts {
        if r.state == RcptState::Pending && r.tries > 0 {
            let can_go = match &r.target {
                Target::Pipe(_) => true,
                Target::Addr(a) if is_local(a) => true,
                Target::Addr(a) => cfg
                    .routes
                    .iter()
                    .any(|rt| opts.usable(rt) && route::accepts(rt, &hf.env.sender, &from_hdrs, a)),
            };
            if can_go {
                report.next_due = Some(report.next_due.map_or(r.next_try, |d| d.min(r.next_try)));
            }
        }
    }
    Ok(())
}

/// Queue a bounce for failed recipients (marking them `B`) and, when due,
/// a delay warning. Returns whether the header file changed.
fn notices(
    cfg: &Config,
    spool: &Spool,
    scanner: &Scanner<'_>,
    id: &MsgId,
    hf: &mut HeaderFile,
    age: u64,
    queued: &mut Vec<MsgId>,
) -> io::Result<bool> {
    let mut changed = false;
    // The bounce first (D2: queued first, then recorded), then, when due,
    // the delay warning.
    for &kind in &[bounce::Kind::Failure, bounce::Kind::Delay] {
        let failure = kind == bounce::Kind::Failure;
        let due = failure
            || cfg
                .main
                .delay_warning
                .is_some_and(|after| !hf.env.warned && age > after.as_secs());
        let mut rcpts: Vec<&Rcpt> = Vec::new();
        for r in &hf.env.rcpts {
            let take = if failure {
                r.state == RcptState::Failed
            } else {
                r.state == RcptState::Pending && r.tries > 0
            };
            if take {
                rcpts.push(r);
            }
        }
        if !due || rcpts.is_empty() {
            continue;
        }
        if let Some(nid) = bounce::queue_notice(cfg, spool, id, hf, &rcpts, kind)? {
            match scanner.scan(spool, &nid) {
                Ok(_) => queued.push(nid),
                Err(e) => warn!("{nid}: left for scanning: {e}"),
            }
        }
        if failure {
            for r in hf.env.rcpts.iter_mut() {
                if r.state == RcptState::Failed {
                    r.state = RcptState::Bounced;
                }
            }
        } else {
            hf.env.warned = true;
        }
        changed = true;
    }
    Ok(changed)
}

/// A `pipe` route: the command runs once per recipient.
fn pipe_route(
    rt: &Route,
    cmd: &str,
    out: &Outgoing<'_>,
    rcpts: &[Address],
) -> (String, Vec<Result<String, Failure>>) {
    let fmt = output::Format {
        from_line: rt.pipe_fromline,
        from_quote: rt.pipe_fromhack,
        trailing_blank: false,
    };
    let msg = local::LocalMsg {
        id: out.id,
        sender: &out.sender,
        received: out.received,
        headers: &out.headers,
        pool: &out.pool,
    };
    let mut results = Vec::with_capacity(rcpts.len());
    for a in rcpts {
        let r = local::run_command(cmd, &a.to_string(), a.local(), &msg, None, fmt);
        results.push(match r {
            Ok(()) => Ok("piped".to_string()),
            Err(Failure::Temporary(t)) if rt.connect_error_fail && t.starts_with("cannot run") => {
                Err(Failure::Permanent(t))
            }
            Err(e) => Err(e),
        });
    }
    (format!("pipe[{cmd}]"), results)
}
