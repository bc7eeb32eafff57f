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
pub mod local;
pub mod output;

use std::collections::BTreeMap;
use std::io;

use log::{error, info, warn};

use crate::addr::{Address, Sender};
use crate::config::{Config, Route};
use crate::queue::{Dir, Entry, HeaderFile, MsgId, Rcpt, RcptState, Spool, Target};
use crate::route;
use crate::scan::Scanner;
use crate::util::time;

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
#[derive(Debug, Default)]
pub struct Report {
    pub delivered: usize,
    pub deferred: usize,
    pub bounced: usize,
    pub waiting: usize,
    pub messages_done: usize,
    /// The earliest retry time of a deferred recipient that can go now
    /// (local, or with a usable route): the daemon's next deadline.
    pub next_due: Option<u64>,
    /// Bounces and delay warnings queued by this run, not yet tried.
    notices: Vec<MsgId>,
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

/// Run the queue once.
pub fn run(
    cfg: &Config,
    spool: &Spool,
    opts: &RunOpts,
    send: &mut dyn Transport,
) -> io::Result<Report> {
    let scanner = Scanner::new(cfg).map_err(io::Error::other)?;
    let mut report = Report::default();
    let mut busy = Vec::new();
    let entries = match &opts.only_ids {
        Some(ids) => ids.iter().map(|id| Entry::Ready(*id)).collect(),
        None => spool.list(Dir::Outgoing)?,
    };
    for entry in entries {
        let Entry::Ready(id) = entry else {
            continue;
        };
        if opts.only_ids.is_some() && !spool.has_ready(Dir::Outgoing, &id) {
            continue;
        }
        match spool.lock_message(&id, false)? {
            Some(lock) => {
                // Another run may have finished it since the listing.
                if spool.has_ready(Dir::Outgoing, &id) {
                    process(cfg, spool, &scanner, &id, opts, send, &mut report)?;
                }
                drop(lock);
            }
            None if spool.pool_path(&id).exists() => busy.push(id),
            None => {}
        }
    }
    // Second pass: messages another run held; wait for them.
    for id in busy {
        if let Some(lock) = spool.lock_message(&id, true)? {
            if spool.has_ready(Dir::Outgoing, &id) {
                process(cfg, spool, &scanner, &id, opts, send, &mut report)?;
            }
            drop(lock);
        }
    }
    // The notices this run queued go out in this run too (a person who
    // runs `runq` expects the bounce to leave with it). A notice about a
    // notice is possible once (the double bounce to postmaster); the
    // rounds are bounded all the same.
    for _round in 0..3 {
        let ids = std::mem::take(&mut report.notices);
        if ids.is_empty() {
            break;
        }
        for id in ids {
            if let Some(lock) = spool.lock_message(&id, false)? {
                if spool.has_ready(Dir::Outgoing, &id) {
                    process(cfg, spool, &scanner, &id, opts, send, &mut report)?;
                }
                drop(lock);
            }
        }
    }
    send.finish();
    Ok(report)
}

fn log_result(id: &MsgId, rcpt: &Target, route: &str, relay: &str, status: &str, text: &str) {
    let t = match rcpt {
        Target::Addr(a) => a.to_string(),
        Target::Pipe(c) => format!("|{c}"),
    };
    info!("{id} => {t} route={route} relay={relay} status={status} ({text})");
}

/// Record one attempt's result on a recipient.
fn record(r: &mut Rcpt, result: Result<(), Failure>, now: u64) {
    match result {
        Ok(()) => {
            r.state = RcptState::Delivered;
            r.error.clear();
        }
        Err(Failure::Temporary(t)) => {
            r.tries = r.tries.saturating_add(1);
            r.next_try = now + backoff(r.tries);
            r.error = t;
        }
        Err(Failure::Permanent(t)) => {
            r.tries = r.tries.saturating_add(1);
            r.state = RcptState::Failed;
            r.error = t;
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

    // Local targets, unless this run is for one route only.
    if opts.only_route.is_none() {
        for i in 0..hf.env.rcpts.len() {
            let r = &hf.env.rcpts[i];
            if r.state != RcptState::Pending || (!opts.force && r.next_try > now) {
                continue;
            }
            let result = match &r.target {
                Target::Pipe(cmd) => {
                    let msg = local::LocalMsg {
                        id,
                        sender: &hf.env.sender,
                        received: hf.env.received,
                        headers: &hf.headers,
                        pool: &pool,
                    };
                    let rcpt = r.orig.as_ref().map(|o| o.to_string()).unwrap_or_default();
                    local::run_command(cmd, &rcpt, &cfg.main.mail_user, &msg, None, output::PLAIN)
                }
                Target::Addr(a) if is_local(a) => {
                    let msg = local::LocalMsg {
                        id,
                        sender: &hf.env.sender,
                        received: hf.env.received,
                        headers: &hf.headers,
                        pool: &pool,
                    };
                    // Mailboxes are given to their users and MDAs run as
                    // them: root again for this, when the run kept it.
                    crate::privs::with_root(|| {
                        local::deliver_user(cfg, a.local(), &a.to_string(), &msg)
                    })
                }
                Target::Addr(_) => continue,
            };
            let (status, text) = match &result {
                Ok(()) => ("sent", "delivered".to_string()),
                Err(Failure::Temporary(t)) => ("deferred", t.clone()),
                Err(Failure::Permanent(t)) => ("bounced", t.clone()),
            };
            log_result(id, &hf.env.rcpts[i].target, "local", "local", status, &text);
            // D1: delivered, recorded in memory only until D3.
            record(&mut hf.env.rcpts[i], result, now);
            changed = true;
        }
    }

    // Remote targets: assign each due recipient its candidate routes.
    let mut candidates: BTreeMap<usize, Vec<&Route>> = BTreeMap::new();
    for (i, r) in hf.env.rcpts.iter().enumerate() {
        let Target::Addr(a) = &r.target else {
            continue;
        };
        if r.state != RcptState::Pending || is_local(a) || (!opts.force && r.next_try > now) {
            continue;
        }
        let routes: Vec<&Route> = cfg
            .routes
            .iter()
            .filter(|rt| opts.usable(rt) && route::accepts(rt, &hf.env.sender, &from_hdrs, a))
            .collect();
        if routes.is_empty() {
            report.waiting += 1;
        } else {
            candidates.insert(i, routes);
        }
    }
    // Try routes in order; temporary failures fall through to the next.
    let mut attempt = 0;
    while !candidates.is_empty() {
        attempt += 1;
        // Group by (route, destination domain) for this round.
        let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        for (&i, routes) in &candidates {
            let Some(rt) = routes.first() else {
                continue;
            };
            let Target::Addr(a) = &hf.env.rcpts[i].target else {
                continue;
            };
            let dest = if rt.mail_host.is_some() || rt.pipe.is_some() || rt.wrapper.is_some() {
                String::new()
            } else {
                a.domain().to_string()
            };
            groups.entry((rt.name.clone(), dest)).or_default().push(i);
        }
        let mut next: BTreeMap<usize, Vec<&Route>> = BTreeMap::new();
        for ((route_name, _dest), idx) in groups {
            let Some(rt) = cfg.route(&route_name) else {
                continue;
            };
            let rcpts: Vec<Address> = idx
                .iter()
                .filter_map(|&i| match &hf.env.rcpts[i].target {
                    Target::Addr(a) => Some(a.clone()),
                    Target::Pipe(_) => None,
                })
                .collect();
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
            for (k, &i) in idx.iter().enumerate() {
                let result = results.get(k).cloned().unwrap_or_else(|| {
                    Err(Failure::Temporary("no result from the transport".into()))
                });
                let fallback = matches!(result, Err(Failure::Temporary(_))) && !rt.last_route;
                let (status, text) = match &result {
                    Ok(reply) => ("sent", reply.clone()),
                    Err(Failure::Temporary(t)) => ("deferred", t.clone()),
                    Err(Failure::Permanent(t)) => ("bounced", t.clone()),
                };
                log_result(id, &hf.env.rcpts[i].target, &rt.name, &relay, status, &text);
                let rest: Vec<&Route> = candidates
                    .get(&i)
                    .map(|v| v[1..].to_vec())
                    .unwrap_or_default();
                if fallback && !rest.is_empty() {
                    // Keep the error, try the next route in this run.
                    hf.env.rcpts[i].error = text;
                    next.insert(i, rest);
                    continue;
                }
                // D1: delivered, recorded in memory only until D3.
                record(&mut hf.env.rcpts[i], result.map(|_| ()), now);
                changed = true;
            }
        }
        candidates = next;
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
    if age > cfg.main.max_defer_time.as_secs() && opts.only_route.is_none() {
        for r in hf
            .env
            .rcpts
            .iter_mut()
            .filter(|r| r.state == RcptState::Pending)
        {
            r.state = RcptState::Failed;
            r.error = if r.tries > 0 {
                format!(
                    "message expired after {} days in the queue; last error: {}",
                    age / 86400,
                    r.error
                )
            } else {
                format!(
                    "message expired after {} days in the queue: no route was online for it",
                    age / 86400
                )
            };
            changed = true;
        }
    }
    changed |= notices(cfg, spool, scanner, id, &mut hf, age, &mut report.notices)?;

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
        match r.state {
            RcptState::Delivered => report.delivered += 1,
            RcptState::Bounced | RcptState::Failed => report.bounced += 1,
            RcptState::Pending if r.tries > 0 => report.deferred += 1,
            RcptState::Pending => {}
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
    let failed: Vec<Rcpt> = hf
        .env
        .rcpts
        .iter()
        .filter(|r| r.state == RcptState::Failed)
        .cloned()
        .collect();
    if !failed.is_empty() {
        let refs: Vec<&Rcpt> = failed.iter().collect();
        // D2: queued first, then recorded.
        if let Some(nid) = bounce::queue_notice(cfg, spool, id, hf, &refs, bounce::Kind::Failure)? {
            match scanner.scan(spool, &nid) {
                Ok(_) => queued.push(nid),
                Err(e) => warn!("{nid}: left for scanning: {e}"),
            }
        }
        for r in hf
            .env
            .rcpts
            .iter_mut()
            .filter(|r| r.state == RcptState::Failed)
        {
            r.state = RcptState::Bounced;
        }
        changed = true;
    }
    if let Some(after) = cfg.main.delay_warning {
        let deferred: Vec<&Rcpt> = hf
            .env
            .rcpts
            .iter()
            .filter(|r| r.state == RcptState::Pending && r.tries > 0)
            .collect();
        if !hf.env.warned && age > after.as_secs() && !deferred.is_empty() {
            if let Some(nid) =
                bounce::queue_notice(cfg, spool, id, hf, &deferred, bounce::Kind::Delay)?
            {
                match scanner.scan(spool, &nid) {
                    Ok(_) => queued.push(nid),
                    Err(e) => warn!("{nid}: left for scanning: {e}"),
                }
            }
            hf.env.warned = true;
            changed = true;
        }
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
    let results = rcpts
        .iter()
        .map(|a| {
            let r = local::run_command(cmd, &a.to_string(), a.local(), &msg, None, fmt);
            match r {
                Ok(()) => Ok("piped".to_string()),
                Err(Failure::Temporary(t))
                    if rt.connect_error_fail && t.starts_with("cannot run") =>
                {
                    Err(Failure::Permanent(t))
                }
                Err(e) => Err(e),
            }
        })
        .collect();
    (format!("pipe[{cmd}]"), results)
}
