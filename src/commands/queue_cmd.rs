//! `mailq` / `masqmail queue [--json]`, `-Mrm` / `queue rm`, `-q` / `runq`.

use std::fmt::Write as _;
use std::io::{self, Write};

use log::{error, info};

use crate::config::{Config, OnlineDetect};
use crate::daemon::control;
use crate::deliver::{self, RunOpts};
use crate::error::{CmdResult, Exit, Fail};
use crate::online::{self, Why};
use crate::queue::recover;
use crate::queue::{Dir, Entry, HeaderFile, MsgId, RcptState, Spool, Target};
use crate::scan::Scanner;
use crate::util::time;

/// One message as the listing shows it.
struct Listed {
    id: MsgId,
    scanned: bool,
    hf: HeaderFile,
}

/// A line about a file that could not be listed.
struct Problem {
    name: String,
    why: String,
}

fn list_fail(e: &io::Error) -> Fail {
    Fail::new(Exit::Unavailable, format!("cannot read the queue: {e}"))
}

/// Read every message in the spool; unreadable files are moved aside
/// (when we may) and reported, never fatal.
fn collect(spool: &Spool) -> Result<(Vec<Listed>, Vec<Problem>), Fail> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    // incoming/ first: a message scanned meanwhile moves to outgoing/, which
    // is listed after it (listed the other way round, a message scanned
    // between the two listings was in neither). Listed twice, it is kept
    // once, scanned.
    for (dir, scanned) in [(Dir::Incoming, false), (Dir::Outgoing, true)] {
        for entry in spool.list(dir).map_err(|e| list_fail(&e))? {
            let id = match entry {
                Entry::Ready(id) => id,
                Entry::NotReady(_) | Entry::Temp(_) => continue,
                Entry::Foreign(name) => {
                    report_corrupt(spool, dir, &name, "not a message file", &mut problems);
                    continue;
                }
            };
            if !scanned && spool.has_ready(Dir::Outgoing, &id) {
                continue; // scanned already, listed from outgoing/
            }
            match spool.load(dir, &id) {
                Ok(Ok(hf)) => out.push(Listed { id, scanned, hf }),
                Ok(Err(why)) => report_corrupt(spool, dir, id.as_str(), &why, &mut problems),
                // Gone meanwhile (delivered, removed): not a problem.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => problems.push(Problem {
                    name: id.as_str().to_owned(),
                    why: format!("cannot read: {e}"),
                }),
            }
        }
    }
    // Keys are unique: an ID is listed at most once per directory.
    out.sort_unstable_by_key(|l| (l.id, !l.scanned));
    out.dedup_by_key(|l| l.id);
    Ok((out, problems))
}

fn report_corrupt(spool: &Spool, dir: Dir, name: &str, why: &str, problems: &mut Vec<Problem>) {
    let dir_name = match dir {
        Dir::Incoming => "incoming",
        Dir::Outgoing => "outgoing",
    };
    let mut why = format!("corrupt ({why})");
    match spool.set_aside(Some(dir), name) {
        Ok(_) => {
            why.push_str("; moved to corrupt/");
            error!("{name}: {dir_name}/{name} is {why}");
        }
        Err(e) => error!("{name}: {dir_name}/{name} is {why}; cannot move it aside: {e}"),
    }
    problems.push(Problem {
        name: name.to_string(),
        why,
    });
}

fn pending(state: RcptState) -> bool {
    matches!(state, RcptState::Pending | RcptState::Failed)
}

fn body_len(l: &Listed) -> u64 {
    // Header fields, the empty line, the body.
    l.hf.headers.iter().map(|h| h.len() as u64).sum::<u64>() + 1 + l.hf.env.body_size
}

fn print_text(listed: &[Listed], problems: &[Problem], corrupt: &[String]) -> String {
    let mut s = String::new();
    if listed.is_empty() && problems.is_empty() {
        s.push_str("Mail queue is empty\n");
    }
    for l in listed {
        let env = &l.hf.env;
        let _ = write!(
            s,
            "{}  {:>8} {} <{}>",
            l.id,
            body_len(l),
            time::short(&time::local(env.received)),
            env.sender
        );
        if !l.scanned {
            s.push_str(" (not yet scanned)");
        }
        s.push('\n');
        for r in env.rcpts.iter().filter(|r| pending(r.state)) {
            let _ = write!(s, "        {}", r.target.text());
            if let Some(o) = &r.orig {
                let _ = write!(s, " ({o})");
            }
            match r.state {
                RcptState::Failed => {
                    let _ = write!(s, "  failed: {}", r.error);
                }
                _ if !r.error.is_empty() => {
                    let _ = write!(s, "  last error: {}", r.error);
                }
                _ => {}
            }
            s.push('\n');
        }
    }
    for p in problems {
        let _ = writeln!(s, "{}  {}", p.name, p.why);
    }
    if !corrupt.is_empty() {
        let _ = writeln!(
            s,
            "{} file(s) set aside in corrupt/ need attention (see the log)",
            corrupt.len()
        );
    }
    s
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A route as `queue --json` and `status` show it.
struct RouteRow {
    name: String,
    /// `online`, `offline`, `disabled`, or `unknown` (no daemon to ask).
    state: String,
    why: Option<Why>,
    waiting: usize,
}

/// The routes' states: the daemon's (`routes` on the control socket);
/// without a daemon, what can be told at once (netlink, file) — mserver
/// and command routes are then `unknown` (no query runs for a listing).
fn route_rows(cfg: &Config) -> (Vec<RouteRow>, bool) {
    let path = control::socket_path(&cfg.main.spool_dir);
    if let Ok(reply) = control::request(&path, "routes") {
        let rows: Vec<RouteRow> = reply
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                let (Some(name), Some(state), Some(source), Some(detail), None) =
                    (w.next(), w.next(), w.next(), w.next(), w.next())
                else {
                    return None;
                };
                let detail = (detail != "-").then_some(detail);
                Some(RouteRow {
                    name: name.to_string(),
                    state: state.to_string(),
                    why: Why::from_parts(source, detail),
                    waiting: 0,
                })
            })
            .collect();
        if !rows.is_empty() || cfg.routes.is_empty() {
            return (rows, true);
        }
    }
    let known = matches!(
        cfg.main.online_detect,
        OnlineDetect::Netlink | OnlineDetect::File
    );
    let now = if known {
        online::current(cfg)
    } else {
        online::Online::default()
    };
    let rows = online::route_states(cfg, &now)
        .into_iter()
        .map(|r| {
            let state = if r.why.is_none() && r.enabled && !known {
                "unknown"
            } else {
                r.state()
            };
            RouteRow {
                state: state.to_string(),
                name: r.name,
                why: r.why,
                waiting: 0,
            }
        })
        .collect();
    (rows, false)
}

/// Count, per route, the pending remote recipients it would carry (a
/// recipient several routes accept counts for each); returns how many no
/// enabled route accepts.
fn count_waiting(cfg: &Config, listed: &[Listed], rows: &mut [RouteRow]) -> usize {
    let Ok(scanner) = Scanner::new(cfg) else {
        return 0;
    };
    let mut unroutable = 0;
    for l in listed.iter().filter(|l| l.scanned) {
        let env = &l.hf.env;
        let from_hdrs = crate::route::from_addresses(&l.hf.headers);
        for r in env.rcpts.iter().filter(|r| r.state == RcptState::Pending) {
            let Target::Addr(a) = &r.target else {
                continue;
            };
            if scanner.is_local(a) {
                continue;
            }
            let mut any = false;
            for rt in cfg.routes.iter().filter(|rt| rt.enabled) {
                if crate::route::accepts(rt, &env.sender, &from_hdrs, a) {
                    any = true;
                    if let Some(row) = rows.iter_mut().find(|row| row.name == rt.name) {
                        row.waiting += 1;
                    }
                }
            }
            if !any {
                unroutable += 1;
            }
        }
    }
    unroutable
}

fn routes_json(rows: &[RouteRow], unroutable: usize, daemon: bool) -> String {
    let mut s = String::from(",\"routes\":[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let opt = |v: Option<&str>| v.map_or_else(|| "null".to_string(), json_str);
        let _ = write!(
            s,
            "{{\"name\":{},\"state\":\"{}\",\"online\":{},\"source\":{},\"detail\":{},\"why\":{},\"waiting\":{}}}",
            json_str(&r.name),
            r.state,
            r.state == "online",
            opt(r.why.as_ref().map(|w| w.source())),
            opt(r.why.as_ref().and_then(|w| w.detail())),
            opt(r.why.as_ref().map(|w| w.to_string()).as_deref()),
            r.waiting
        );
    }
    let _ = write!(s, "],\"unroutable\":{unroutable},\"daemon\":{daemon}");
    s
}

fn print_json(listed: &[Listed], problems: &[Problem], corrupt: &[String], routes: &str) -> String {
    let mut s = String::from("{\"messages\":[");
    for (i, l) in listed.iter().enumerate() {
        let env = &l.hf.env;
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"id\":{},\"size\":{},\"time\":{},\"sender\":{},\"scanned\":{},\"recipients\":[",
            json_str(l.id.as_str()),
            body_len(l),
            env.received,
            json_str(&env.sender.to_string()),
            l.scanned
        );
        for (j, r) in env.rcpts.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            let state = match r.state {
                RcptState::Pending => "pending",
                RcptState::Delivered => "delivered",
                RcptState::Failed => "failed",
                RcptState::Bounced => "bounced",
            };
            let orig = r.orig.as_ref().map(|o| json_str(&o.to_string()));
            let _ = write!(
                s,
                "{{\"address\":{},\"original\":{},\"state\":\"{state}\",\"tries\":{},\"next_try\":{},\"error\":{}}}",
                json_str(&r.target.text()),
                orig.as_deref().unwrap_or("null"),
                r.tries,
                r.next_try,
                json_str(&r.error)
            );
        }
        s.push_str("]}");
    }
    s.push_str("],\"problems\":[");
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"file\":{},\"error\":{}}}",
            json_str(&p.name),
            json_str(&p.why)
        );
    }
    s.push_str("],\"corrupt\":[");
    for (i, c) in corrupt.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&json_str(c));
    }
    s.push(']');
    s.push_str(routes);
    s.push_str("}\n");
    s
}

pub fn list(cfg: &Config, json: bool) -> CmdResult {
    let root = &cfg.main.spool_dir;
    // Asked before privileges are dropped: the control socket is root's.
    let mut routes = json.then(|| route_rows(cfg));
    let (listed, problems, corrupt) = if root.is_dir() {
        super::drop_privileges(cfg)?;
        let spool = Spool::existing(root);
        let (l, p) = collect(&spool)?;
        (l, p, spool.list_corrupt())
    } else {
        (Vec::new(), Vec::new(), Vec::new())
    };
    let text = if let Some((rows, daemon)) = routes.as_mut() {
        let unroutable = count_waiting(cfg, &listed, rows);
        let r = routes_json(rows, unroutable, *daemon);
        print_json(&listed, &problems, &corrupt, &r)
    } else {
        print_text(&listed, &problems, &corrupt)
    };
    io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Fail::new(Exit::IoErr, format!("writing the listing: {e}")))
}

/// Remove messages by ID. A message being delivered right now (its lock
/// held) is left alone: exit 75, try again.
pub fn remove(cfg: &Config, ids: &[String]) -> CmdResult {
    if ids.is_empty() {
        return Err(Fail::usage("no message IDs given"));
    }
    let spool = super::open_spool(cfg)?;
    let mut worst = Ok(());
    for arg in ids {
        if let Err(f) = remove_one(&spool, arg) {
            worst = Err(f);
        }
    }
    worst
}

fn remove_one(spool: &Spool, arg: &str) -> CmdResult {
    let Some(id) = MsgId::parse(arg) else {
        return Err(Fail::usage(format!("'{arg}' is not a message ID")));
    };
    let _lock = match spool.lock_message(&id, false) {
        Ok(Some(l)) => Some(l),
        Ok(None) if spool.pool_path(&id).exists() => {
            return Err(Fail::new(
                Exit::TempFail,
                format!("{id}: being delivered right now; try again"),
            ));
        }
        Ok(None) => None,
        Err(e) => return Err(Fail::spool_io(&format!("{id}: cannot lock"), &e)),
    };
    match spool.remove(&id) {
        Ok(true) => {
            info!(
                "{id}: removed from the queue by uid {}",
                nix::unistd::getuid()
            );
            println!("{id}: removed");
            Ok(())
        }
        Ok(false) => Err(Fail::new(
            Exit::Unavailable,
            format!("{id}: not in the queue"),
        )),
        Err(e) => Err(Fail::spool_io(&format!("{id}: cannot remove"), &e)),
    }
}

/// `-q` / `runq` / `-qo [ROUTE]`: recover the spool, scan what waits in
/// `incoming/`, and deliver, ignoring retry backoff (a person asked).
/// `route`: None for `-q`; Some(None) for `-qo` (the online routes);
/// Some(Some(name)) for one route, which then counts as online.
pub fn run_queue(cfg: &Config, route: Option<&str>) -> CmdResult {
    let spool = super::spool_as_mail_user(cfg, true)?;
    recover::recover(&spool)
        .map_err(|e| Fail::spool_io("recovery", &e))?
        .log();
    let scanner = Scanner::new(cfg).map_err(|e| Fail::new(Exit::TempFail, e))?;
    scanner
        .scan_all(&spool)
        .map_err(|e| Fail::spool_io("scanning", &e))?;
    if let Some(name) = route {
        if cfg.route(name).is_none() {
            return Err(Fail::usage(format!("no route named '{name}'")));
        }
    }
    let opts = RunOpts {
        only_route: route.map(str::to_string),
        force: true,
        online: crate::online::current(cfg).names(),
        only_ids: None,
    };
    let r = deliver::run(cfg, &spool, &opts, &mut crate::transport::smtp::Smtp::new())
        .map_err(|e| Fail::spool_io("queue run", &e))?;
    info!(
        "queue run: {} delivered, {} deferred, {} bounced, {} waiting for a route",
        r.delivered, r.deferred, r.bounced, r.waiting
    );
    if r.failed_lanes > 0 {
        return Err(Fail::new(
            Exit::TempFail,
            format!(
                "queue run incomplete: {} delivery process(es) failed; \
                 the next run delivers what they left",
                r.failed_lanes
            ),
        ));
    }
    Ok(())
}

/// `masqmail flush [ROUTE]`: ask the daemon; without one, run the queue.
pub fn flush(cfg: &Config, route: Option<&str>) -> CmdResult {
    let path = crate::daemon::control::socket_path(&cfg.main.spool_dir);
    let mut line = String::from("flush");
    if let Some(r) = route {
        line.push(' ');
        line.push_str(r);
    }
    match crate::daemon::control::request(&path, &line) {
        Ok(reply) if reply.starts_with("ok") => Ok(()),
        Ok(reply) => Err(Fail::new(
            Exit::Unavailable,
            format!("daemon: {}", reply.trim()),
        )),
        Err(_) => run_queue(cfg, route),
    }
}

/// `masqmail status`: the daemon's own report, each route with the
/// number of recipients waiting for it (when the spool can be read).
pub fn status(cfg: &Config) -> CmdResult {
    let path = crate::daemon::control::socket_path(&cfg.main.spool_dir);
    match crate::daemon::control::request(&path, "status") {
        Ok(reply) => {
            let mut rows: Vec<RouteRow> = cfg
                .routes
                .iter()
                .map(|r| RouteRow {
                    name: r.name.clone(),
                    state: String::new(),
                    why: None,
                    waiting: 0,
                })
                .collect();
            let counted = super::drop_privileges(cfg)
                .ok()
                .and_then(|()| collect(&Spool::existing(&cfg.main.spool_dir)).ok())
                .map(|(listed, _)| count_waiting(cfg, &listed, &mut rows));
            let mut out = String::new();
            for line in reply.lines() {
                out.push_str(line);
                let name = line
                    .strip_prefix("route ")
                    .and_then(|r| r.split_once(':'))
                    .map(|(n, _)| n);
                if let (Some(n), Some(_)) = (name, counted) {
                    if let Some(row) = rows.iter().find(|r| r.name == n) {
                        let _ = write!(out, "; {} recipient(s) waiting", row.waiting);
                    }
                }
                if line.is_empty() {
                    if let Some(u @ 1..) = counted {
                        let _ = writeln!(out, "no route: {u} recipient(s) waiting");
                    }
                }
                out.push('\n');
            }
            print!("{out}");
            Ok(())
        }
        Err(e) => Err(Fail::new(
            Exit::Unavailable,
            format!("no daemon answers on {}: {e}", path.display()),
        )),
    }
}
