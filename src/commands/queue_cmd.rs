//! `mailq` / `masqmail queue [--json]`, `-Mrm` / `queue rm`, `-q` / `runq`.

use std::fmt::Write as _;
use std::io;

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

/// Read every message in the spool, sorted by ID; unreadable files are
/// moved aside (when we may) and reported, never fatal.
fn collect(spool: &Spool) -> Result<(Vec<Listed>, Vec<Problem>), Fail> {
    let mut out: Vec<Listed> = Vec::new();
    let mut problems = Vec::new();
    // incoming/ first: a message scanned meanwhile moves to outgoing/, which
    // is listed after it (listed the other way round, a message scanned
    // between the two listings was in neither). Listed twice, it is kept
    // once, scanned.
    for (dir, scanned) in [(Dir::Incoming, false), (Dir::Outgoing, true)] {
        let entries = spool
            .list(dir)
            .map_err(|e| Fail::new(Exit::Unavailable, format!("cannot read the queue: {e}")))?;
        for entry in entries {
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
                Ok(Ok(hf)) => {
                    // Each directory's list is sorted: the place in `out`,
                    // an outgoing/ copy taking an incoming/ one's.
                    let at = out.partition_point(|l| l.id < id);
                    let l = Listed { id, scanned, hf };
                    match out.get_mut(at) {
                        Some(o) if o.id == id => *o = l,
                        _ => out.insert(at, l),
                    }
                }
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
    Ok((out, problems))
}

fn report_corrupt(spool: &Spool, dir: Dir, name: &str, why: &str, problems: &mut Vec<Problem>) {
    let dir_name = match dir {
        Dir::Incoming => "incoming",
        Dir::Outgoing => "outgoing",
    };
    let mut why = ["corrupt (", why, ")"].concat();
    let n = why.len();
    let moved = spool.set_aside(Some(dir), name);
    match &moved {
        Ok(_) => why.push_str("; moved to corrupt/"),
        Err(e) => {
            let _ = write!(why, "; cannot move it aside: {e}");
        }
    }
    error!("{name}: {dir_name}/{name} is {why}");
    if moved.is_err() {
        // The listing says only what it is.
        why.truncate(n);
    }
    problems.push(Problem {
        name: name.to_string(),
        why,
    });
}

fn body_len(l: &Listed) -> u64 {
    // Header fields, the empty line, the body.
    let mut n = 1 + l.hf.env.body_size;
    for h in &l.hf.headers {
        n += h.len() as u64;
    }
    n
}

fn print_text(s: &mut String, listed: &[Listed], problems: &[Problem], corrupt: &[String]) {
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
        for r in &env.rcpts {
            let label = match r.state {
                RcptState::Failed => "  failed: ",
                RcptState::Pending if !r.error.is_empty() => "  last error: ",
                RcptState::Pending => "",
                _ => continue,
            };
            s.push_str("        ");
            s.push_str(&r.target.text());
            if let Some(o) = &r.orig {
                let _ = write!(s, " ({o})");
            }
            if !label.is_empty() {
                s.push_str(label);
                s.push_str(&r.error);
            }
            s.push('\n');
        }
    }
    for p in problems {
        s.push_str(&p.name);
        s.push_str("  ");
        s.push_str(&p.why);
        s.push('\n');
    }
    if !corrupt.is_empty() {
        num(s, corrupt.len() as u64);
        s.push_str(" file(s) set aside in corrupt/ need attention (see the log)\n");
    }
}

fn num(s: &mut String, n: u64) {
    let _ = write!(s, "{n}");
}

/// `s` as a JSON string.
fn json_str(o: &mut String, s: &str) {
    o.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                o.push('\\');
                o.push(c);
            }
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                o.push_str("\\u00");
                o.push(char::from(crate::util::hex_digit(c as u8 >> 4)));
                o.push(char::from(crate::util::hex_digit(c as u8)));
            }
            c => o.push(c),
        }
    }
    o.push('"');
}

fn json_opt(o: &mut String, v: Option<&str>) {
    match v {
        Some(v) => json_str(o, v),
        None => o.push_str("null"),
    }
}

fn json_bool(o: &mut String, b: bool) {
    o.push_str(if b { "true" } else { "false" });
}

/// End a JSON array (or object) whose members each end in ','.
fn json_close(o: &mut String, c: char) {
    if o.as_bytes().last() == Some(&b',') {
        o.pop();
    }
    o.push(c);
}

/// Where the routes' states come from: the daemon's `routes` reply, or
/// (no daemon) what can be told at once, with whether that is known.
enum Routes {
    Daemon(String),
    Here(Vec<online::RouteState>, bool),
}

/// A line of the daemon's `routes` reply: name, state, and why online.
fn route_line(l: &str) -> Option<(&str, &str, Option<Why>)> {
    let mut w = [""; 4];
    let mut n = 0;
    for word in l.split_ascii_whitespace() {
        *w.get_mut(n)? = word;
        n += 1;
    }
    let [name, state, source, detail] = w;
    if n < 4 {
        return None;
    }
    let detail = (detail != "-").then_some(detail);
    Some((name, state, Why::from_parts(source, detail)))
}

/// The routes' states: the daemon's (`routes` on the control socket);
/// without a daemon, what can be told at once (netlink, file) — mserver
/// and command routes are then `unknown` (no query runs for a listing).
fn ask_routes(cfg: &Config) -> Routes {
    let path = control::socket_path(&cfg.main.spool_dir);
    if let Ok(reply) = control::request(&path, "routes") {
        if cfg.routes.is_empty() || reply.lines().any(|l| route_line(l).is_some()) {
            return Routes::Daemon(reply);
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
    Routes::Here(online::route_states(cfg, &now), known)
}

/// Count, per route of the config, the pending remote recipients it
/// would carry (a recipient several routes accept counts for each); the
/// last number counts those no enabled route accepts.
fn count_waiting(cfg: &Config, listed: &[Listed]) -> Vec<usize> {
    let n = cfg.routes.len();
    let mut counts = vec![0; n + 1];
    let Ok(scanner) = Scanner::new(cfg) else {
        return counts;
    };
    for l in listed {
        if !l.scanned {
            continue;
        }
        let env = &l.hf.env;
        let from_hdrs = crate::route::from_addresses(&l.hf.headers);
        for r in &env.rcpts {
            let (RcptState::Pending, Target::Addr(a)) = (r.state, &r.target) else {
                continue;
            };
            if scanner.is_local(a) {
                continue;
            }
            let mut any = false;
            for (k, rt) in cfg.routes.iter().enumerate() {
                if rt.enabled && crate::route::accepts(rt, &env.sender, &from_hdrs, a) {
                    any = true;
                    counts[k] += 1;
                }
            }
            if !any {
                counts[n] += 1;
            }
        }
    }
    counts
}

/// The place in the config of the route named `name`.
fn route_index(cfg: &Config, name: &str) -> Option<usize> {
    cfg.routes.iter().position(|r| r.name == name)
}

/// The count of the route named `name` (0 for a name not configured).
fn waiting(cfg: &Config, counts: &[usize], name: &str) -> u64 {
    route_index(cfg, name).map_or(0, |k| counts[k] as u64)
}

fn route_json(o: &mut String, name: &str, state: &str, why: Option<&Why>, waiting: u64) {
    o.push_str("{\"name\":");
    json_str(o, name);
    o.push_str(",\"state\":\"");
    o.push_str(state);
    o.push_str("\",\"online\":");
    json_bool(o, state == "online");
    o.push_str(",\"source\":");
    json_opt(o, why.map(Why::source));
    o.push_str(",\"detail\":");
    json_opt(o, why.and_then(Why::detail));
    o.push_str(",\"why\":");
    json_opt(o, why.map(|w| w.to_string()).as_deref());
    o.push_str(",\"waiting\":");
    num(o, waiting);
    o.push_str("},");
}

fn print_json(
    s: &mut String,
    listed: &[Listed],
    problems: &[Problem],
    corrupt: &[String],
    cfg: &Config,
    routes: &Routes,
) {
    s.push_str("{\"messages\":[");
    for l in listed {
        let env = &l.hf.env;
        s.push_str("{\"id\":");
        json_str(s, l.id.as_str());
        s.push_str(",\"size\":");
        num(s, body_len(l));
        s.push_str(",\"time\":");
        num(s, env.received);
        s.push_str(",\"sender\":");
        json_str(s, &env.sender.to_string());
        s.push_str(",\"scanned\":");
        json_bool(s, l.scanned);
        s.push_str(",\"recipients\":[");
        for r in &env.rcpts {
            s.push_str("{\"address\":");
            json_str(s, &r.target.text());
            s.push_str(",\"original\":");
            json_opt(s, r.orig.as_ref().map(|o| o.to_string()).as_deref());
            s.push_str(",\"state\":\"");
            s.push_str(match r.state {
                RcptState::Pending => "pending",
                RcptState::Delivered => "delivered",
                RcptState::Failed => "failed",
                RcptState::Bounced => "bounced",
            });
            s.push_str("\",\"tries\":");
            num(s, u64::from(r.tries));
            s.push_str(",\"next_try\":");
            num(s, r.next_try);
            s.push_str(",\"error\":");
            json_str(s, &r.error);
            s.push_str("},");
        }
        json_close(s, ']');
        s.push_str("},");
    }
    json_close(s, ']');
    s.push_str(",\"problems\":[");
    for p in problems {
        s.push_str("{\"file\":");
        json_str(s, &p.name);
        s.push_str(",\"error\":");
        json_str(s, &p.why);
        s.push_str("},");
    }
    json_close(s, ']');
    s.push_str(",\"corrupt\":[");
    for c in corrupt {
        json_str(s, c);
        s.push(',');
    }
    json_close(s, ']');
    let counts = count_waiting(cfg, listed);
    s.push_str(",\"routes\":[");
    match routes {
        Routes::Daemon(reply) => {
            for (name, state, why) in reply.lines().filter_map(route_line) {
                route_json(s, name, state, why.as_ref(), waiting(cfg, &counts, name));
            }
        }
        Routes::Here(states, known) => {
            for r in states {
                let state = if r.why.is_none() && r.enabled && !known {
                    "unknown"
                } else {
                    r.state()
                };
                route_json(
                    s,
                    &r.name,
                    state,
                    r.why.as_ref(),
                    waiting(cfg, &counts, &r.name),
                );
            }
        }
    }
    json_close(s, ']');
    s.push_str(",\"unroutable\":");
    num(s, counts[cfg.routes.len()] as u64);
    s.push_str(",\"daemon\":");
    json_bool(s, matches!(routes, Routes::Daemon(_)));
    s.push_str("}\n");
}

pub fn list(cfg: &Config, json: bool) -> CmdResult {
    let root = &cfg.main.spool_dir;
    // Asked before privileges are dropped: the control socket is root's.
    let routes = json.then(|| ask_routes(cfg));
    let (listed, problems, corrupt) = if root.is_dir() {
        super::drop_privileges(cfg)?;
        let spool = Spool::existing(root);
        let (l, p) = collect(&spool)?;
        (l, p, spool.list_corrupt())
    } else {
        (Vec::new(), Vec::new(), Vec::new())
    };
    let mut text = String::new();
    match &routes {
        Some(r) => print_json(&mut text, &listed, &problems, &corrupt, cfg, r),
        None => print_text(&mut text, &listed, &problems, &corrupt),
    }
    super::print_out(&text, "writing the listing")
}

/// Remove messages by ID. A message being delivered right now (its lock
/// held) is left alone: exit 75, try again.
pub fn remove(cfg: &Config, ids: &[&str]) -> CmdResult {
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
    let reply = crate::daemon::control::request(&path, "status").map_err(|e| {
        Fail::new(
            Exit::Unavailable,
            format!("no daemon answers on {}: {e}", path.display()),
        )
    })?;
    let counts = super::drop_privileges(cfg)
        .ok()
        .and_then(|()| collect(&Spool::existing(&cfg.main.spool_dir)).ok())
        .map(|(listed, _)| count_waiting(cfg, &listed));
    let mut out = String::new();
    for line in reply.lines() {
        out.push_str(line);
        if let Some(counts) = &counts {
            let name = line
                .strip_prefix("route ")
                .and_then(|r| r.split_once(':'))
                .map(|(n, _)| n);
            if let Some(k) = name.and_then(|n| route_index(cfg, n)) {
                out.push_str("; ");
                num(&mut out, counts[k] as u64);
                out.push_str(" recipient(s) waiting");
            }
            let u = counts[cfg.routes.len()];
            if line.is_empty() && u > 0 {
                out.push_str("no route: ");
                num(&mut out, u as u64);
                out.push_str(" recipient(s) waiting\n");
            }
        }
        out.push('\n');
    }
    super::print_out(&out, "stdout")
}
