//! scan — the one stage every message passes: `incoming/ID` → `outgoing/ID`.
//!
//! DESCRIPTION
//!   Fixes the header section (headers.rs), expands aliases (alias.rs) and
//!   marks local recipients that are neither alias nor user as failed, to
//!   be bounced by queue-out. Writes the processed header file to
//!   `outgoing/ID`, then removes `incoming/ID`. Never touches the network.
//!
//!   Crash points (doc/INTERNALS.md):
//!     S3 incoming/ID ready           → crash: scanned again
//!     S4 + outgoing/ID written        → crash: recovery removes it, rescan
//!          (not ready, or not whole)
//!     S5 outgoing/ID fsynced          → crash: recovery removes incoming/ID
//!     S6 incoming/ID removed          → scanned
//!
//!   A scanner forked by the daemon tells the supervisor, before the
//!   ready bit of `outgoing/ID`, whether the message needs a queue run now
//!   or only when one of the routes that accept it is online
//!   (daemon/hint.rs).
//!
//! SECURITY
//!   Holds the lock of `incoming/ID` while it works, so two scanners never
//!   write the same message. Command targets come only from aliases: a
//!   `|command` recipient found in an incoming file is failed, never run.

pub mod alias;
pub mod headers;

use std::fs::{self, File};
use std::io;
use std::path::Path;

use log::{error, info, warn};

use crate::addr::Address;
use crate::config::Config;
use crate::daemon::hint::Wants;
use crate::message::Header;
use crate::queue::{self, Dir, Envelope, HeaderFile, MsgId, Rcpt, RcptState, Spool, Target};
use alias::{Aliases, Passwd, ResolveError, Resolved, UserDb};

pub struct Scanner<'a> {
    cfg: &'a Config,
    aliases: Aliases,
    users: Box<dyn UserDb>,
}

/// What became of one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Scanned,
    /// Another scanner holds it, or it was done already.
    Skipped,
    /// The file could not be read and was moved to `corrupt/`.
    SetAside(String),
}

/// A local recipient resolved, or why not.
pub type Resolution = Result<Vec<Resolved>, ResolveError>;

impl<'a> Scanner<'a> {
    /// Load the aliases. An unreadable alias file is an error: scanning
    /// then waits (the messages stay in `incoming/`) rather than expand
    /// wrongly. Bad lines of the file are logged and skipped.
    pub fn new(cfg: &'a Config) -> Result<Scanner<'a>, String> {
        Self::with_alias_file(cfg, cfg.main.alias_file.as_deref())
    }

    /// [`Scanner::new`] with this alias file instead of the config's
    /// (`None`: the config's `alias` sections only).
    pub fn with_alias_file(cfg: &'a Config, file: Option<&Path>) -> Result<Scanner<'a>, String> {
        let (aliases, file_errors) = Aliases::load(cfg, file)?;
        if let Some(path) = file {
            for e in file_errors {
                warn!("{}: {e}", path.display());
            }
        }
        Ok(Scanner {
            cfg,
            aliases,
            users: Box::new(Passwd),
        })
    }

    /// Is this address delivered here (DESIGN §6: `local_hosts`,
    /// `local_addresses`, `not_local_addresses`)?
    pub fn is_local(&self, a: &Address) -> bool {
        let m = &self.cfg.main;
        let s = a.to_string();
        if m.not_local_addresses
            .iter()
            .any(|x| x.eq_ignore_ascii_case(&s))
        {
            return false;
        }
        if m.local_addresses.iter().any(|x| x.eq_ignore_ascii_case(&s)) {
            return true;
        }
        m.is_local_domain(a.domain())
    }

    /// Where one recipient goes.
    pub fn resolve(&self, a: &Address) -> Resolution {
        if !self.is_local(a) {
            return Ok(vec![Resolved::Remote(a.clone())]);
        }
        let is_local = |x: &Address| self.is_local(x);
        self.aliases.resolve_local(
            a.local(),
            &self.cfg.main.host_name,
            &is_local,
            self.users.as_ref(),
        )
    }

    fn expand(&self, id: &MsgId, rcpts: Vec<Rcpt>) -> Vec<Rcpt> {
        let mut out: Vec<Rcpt> = Vec::with_capacity(rcpts.len());
        for mut r in rcpts {
            // Why a recipient fails here (it is kept, failed).
            let mut why = None;
            match (&r.state, &r.target) {
                (RcptState::Pending, Target::Addr(a)) => {
                    let addr = a.clone();
                    match self.resolve(&addr) {
                        Ok(list) => {
                            for res in list {
                                let target = res.target();
                                let same = matches!(&target, Target::Addr(t) if *t == addr);
                                if !same {
                                    info!("{id}: <{addr}> expanded to {target}");
                                }
                                push_new(
                                    &mut out,
                                    Rcpt {
                                        state: r.state,
                                        target,
                                        orig: (!same).then(|| addr.clone()),
                                        tries: r.tries,
                                        next_try: r.next_try,
                                        error: r.error.clone(),
                                    },
                                );
                            }
                            continue;
                        }
                        Err(e) => {
                            warn!("{id}: <{addr}>: {e}");
                            why = Some(e.to_string());
                        }
                    }
                }
                (RcptState::Pending, Target::Pipe(c)) => {
                    error!("{id}: command recipient |{c} in an incoming file refused");
                    why = Some("550 5.7.1 command recipients come only from aliases".into());
                }
                _ => {}
            }
            if let Some(why) = why {
                r.state = RcptState::Failed;
                r.error = why;
            }
            push_new(&mut out, r);
        }
        out
    }

    /// Scan one message (S3 → S6).
    pub fn scan(&self, spool: &Spool, id: &MsgId) -> io::Result<Outcome> {
        let in_path = spool.header_path(Dir::Incoming, id);
        let file = match File::open(&in_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Skipped),
            Err(e) => return Err(e),
        };
        let Some(_lock) = queue::try_lock(file) else {
            return Ok(Outcome::Skipped);
        };
        if !spool.has_ready(Dir::Incoming, id) {
            return Ok(Outcome::Skipped);
        }
        if spool.has_ready(Dir::Outgoing, id)
            && matches!(spool.read_header(Dir::Outgoing, id), Ok(Ok(_)))
        {
            // S5 left by a crashed scanner: only incoming/ID remains to go.
            // (A ready outgoing/ID that is not whole is S4: made ready, the
            // system went down before its fsync. It is replaced below.)
            remove_incoming(spool, id)?;
            return Ok(Outcome::Skipped);
        }
        let hf = match spool.load(Dir::Incoming, id)? {
            Ok(hf) => hf,
            Err(why) => {
                error!("{id}: incoming file unreadable ({why}); moved to corrupt/");
                spool.set_aside(Some(Dir::Incoming), id.as_str())?;
                return Ok(Outcome::SetAside(why));
            }
        };
        let HeaderFile { mut env, headers } = hf;
        env.rcpts = self.expand(id, env.rcpts);
        let headers = headers::fix(headers, &env, id, &self.cfg.main.host_name);
        if crate::daemon::hint::active() {
            // Before the ready bit: the supervisor reads it with the event.
            crate::daemon::hint::send(id, &self.wants(&env, &headers));
        }
        // S4: a stale outgoing/ID of a dead scanner (not ready, or not
        // whole) goes first.
        remove_if_there(&spool.header_path(Dir::Outgoing, id))?;
        let hf = HeaderFile { env, headers };
        spool.write_header(Dir::Outgoing, id, &hf)?;
        // S5 reached: the message is safe in outgoing/.
        remove_incoming(spool, id)?;
        let e = &hf.env;
        info!(
            "{id}: from=<{}> size={} nrcpt={} queued",
            e.sender,
            e.body_size,
            e.rcpts.len()
        );
        Ok(Outcome::Scanned)
    }

    /// What a scanned message needs (daemon::hint): a queue run now (a
    /// local or `|command` recipient, a bounce owed, a permanent route
    /// that takes a recipient), or one when a route that accepts one of
    /// its pending recipients is online.
    pub fn wants(&self, env: &Envelope, headers: &[Header]) -> Wants {
        let from_hdrs = crate::route::from_addresses(headers);
        let mut routes: Vec<String> = Vec::new();
        for r in &env.rcpts {
            match (&r.state, &r.target) {
                (RcptState::Delivered | RcptState::Bounced, _) => {}
                (RcptState::Pending, Target::Addr(a)) if !self.is_local(a) => {
                    for rt in self.cfg.routes.iter().filter(|rt| {
                        rt.enabled && crate::route::accepts(rt, &env.sender, &from_hdrs, a)
                    }) {
                        if rt.permanent {
                            return Wants::Now;
                        }
                        if !routes.contains(&rt.name) {
                            routes.push(rt.name.clone());
                        }
                    }
                }
                _ => return Wants::Now,
            }
        }
        Wants::Routes(routes)
    }

    /// Scan every ready message in `incoming/` (oldest first).
    pub fn scan_all(&self, spool: &Spool) -> io::Result<usize> {
        let mut n = 0;
        for id in spool.ready(Dir::Incoming)? {
            if self.scan(spool, &id)? == Outcome::Scanned {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Add `r` unless a recipient with its target is there already.
fn push_new(out: &mut Vec<Rcpt>, r: Rcpt) {
    if !out.iter().any(|o| o.target == r.target) {
        out.push(r);
    }
}

/// S5 → S6. The directory is not fsynced after the unlink: if the
/// removal is lost in a crash, the spool is back in S5, which recovery
/// settles the same way. One fsync less per message.
fn remove_incoming(spool: &Spool, id: &MsgId) -> io::Result<()> {
    remove_if_there(&spool.header_path(Dir::Incoming, id))
}

/// Remove a file; one that is not there is no error.
fn remove_if_there(path: &std::path::Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
