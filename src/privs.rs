//! privs — who the program runs as.
//!
//! SECURITY
//!   Run by root without `run_as_user`, everything that touches the spool
//!   or the network runs as `mail_user`: commands switch before they open
//!   the spool, the daemon's workers switch right after fork, before they
//!   read a byte from a client. Root keeps only what needs it: binding
//!   port 25, and (with delivery) running a `pipe` as a given user.
//!   `run_as_user '1'` (test mode) keeps the caller's identity throughout.

use std::sync::Mutex;

use nix::unistd::{self, Gid, Uid};

use crate::config::Config;
use crate::error::{Exit, Fail};
use crate::passwd::{self, Account};
use crate::util::os_error;

/// The mail user to become, or None when no switch is due (not root, or
/// test mode).
pub fn mail_user(cfg: &Config) -> Result<Option<Account>, Fail> {
    if !unistd::geteuid().is_root() || cfg.main.run_as_user {
        return Ok(None);
    }
    let name = &cfg.main.mail_user;
    passwd::by_name(name)
        .ok()
        .flatten()
        .map(Some)
        .ok_or_else(|| Fail::new(Exit::Config, format!("mail_user '{name}' does not exist")))
}

/// The IDs a switch to the mail user sets.
#[derive(Clone, Debug)]
struct Identity {
    name: String,
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
}

/// The mail user as looked up by [`remember_mail_user`]: the daemon looks
/// it up once, its workers inherit it. Looking it up in every worker costs
/// more than the rest of an SMTP session: /etc/passwd and /etc/group are
/// read on each call.
static REMEMBERED: Mutex<Option<Identity>> = Mutex::new(None);

fn look_up(cfg: &Config) -> Result<Option<Identity>, Fail> {
    let Some(user) = mail_user(cfg)? else {
        return Ok(None);
    };
    let name = &cfg.main.mail_user;
    let groups = passwd::groups_of(name, user.gid).map_err(|e| {
        Fail::new(
            Exit::Software,
            format!("cannot list the groups of {name}: {e}"),
        )
    })?;
    Ok(Some(Identity {
        name: name.clone(),
        uid: Uid::from_raw(user.uid),
        gid: Gid::from_raw(user.gid),
        groups: groups.into_iter().map(Gid::from_raw).collect(),
    }))
}

/// The mail user's IDs: remembered ones when the name matches, else a
/// fresh lookup.
fn identity(cfg: &Config) -> Result<Option<Identity>, Fail> {
    if !unistd::geteuid().is_root() || cfg.main.run_as_user {
        return Ok(None);
    }
    if let Ok(r) = REMEMBERED.lock() {
        if let Some(id) = r.as_ref().filter(|id| id.name == cfg.main.mail_user) {
            return Ok(Some(id.clone()));
        }
    }
    look_up(cfg)
}

/// Look the mail user up now and keep the result for this process and
/// the children it forks (the daemon, at start and on reload).
pub fn remember_mail_user(cfg: &Config) -> Result<(), Fail> {
    let id = look_up(cfg)?;
    if let Ok(mut r) = REMEMBERED.lock() {
        *r = id;
    }
    Ok(())
}

/// Make sure the spool directory exists and, when running as root, that
/// it belongs to the mail user.
pub fn prepare_spool(cfg: &Config) -> Result<(), Fail> {
    let spool = &cfg.main.spool_dir;
    if !spool.is_dir() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(spool)
            .map_err(|e| Fail::spool_io(&format!("cannot create {}", spool.display()), &e))?;
    }
    if let Some(user) = mail_user(cfg)? {
        unistd::chown(
            spool,
            Some(Uid::from_raw(user.uid)),
            Some(Gid::from_raw(user.gid)),
        )
        .map_err(|e| Fail::spool_io(&format!("cannot chown {}", spool.display()), &e.into()))?;
    }
    Ok(())
}

/// Become the mail user (no-op when not root or in test mode).
pub fn become_mail_user(cfg: &Config) -> Result<(), Fail> {
    switch_to_mail_user(cfg, false)
}

/// For queue runs: act as the mail user, but keep root as the saved user
/// ID so that [`with_root`] can take it back for local deliveries (a
/// mailbox given to its user, an MDA run as the user). No-op when not root
/// or in test mode.
pub fn become_mail_user_keep_root(cfg: &Config) -> Result<(), Fail> {
    switch_to_mail_user(cfg, true)
}

/// Set all three user and group IDs to the mail user's; the saved ones
/// to root's when `keep_root`. (As root, setresuid(u, u, u) is setuid(u).)
fn switch_to_mail_user(cfg: &Config, keep_root: bool) -> Result<(), Fail> {
    let Some(id) = identity(cfg)? else {
        return Ok(());
    };
    let (saved_uid, saved_gid) = if keep_root {
        (Uid::from_raw(0), Gid::from_raw(0))
    } else {
        (id.uid, id.gid)
    };
    unistd::setgroups(&id.groups)
        .and_then(|()| unistd::setresgid(id.gid, id.gid, saved_gid))
        .and_then(|()| unistd::setresuid(id.uid, id.uid, saved_uid))
        .map_err(|e| {
            Fail::new(
                Exit::Software,
                format!("cannot become user {}: {}", id.name, os_error(e)),
            )
        })
}

/// Run `f` with root's effective IDs when the process kept root as its
/// saved ID (see [`become_mail_user_keep_root`]); otherwise run it as is.
pub fn with_root<T>(f: impl FnOnce() -> T) -> T {
    let (euid, egid) = (unistd::geteuid(), unistd::getegid());
    let saved_root = unistd::getresuid().is_ok_and(|r| r.saved.is_root());
    if euid.is_root() || !saved_root {
        return f();
    }
    let up = unistd::seteuid(unistd::Uid::from_raw(0))
        .and_then(|()| unistd::setegid(unistd::Gid::from_raw(0)));
    let r = f();
    if up.is_ok() {
        let _ = unistd::setegid(egid);
        let _ = unistd::seteuid(euid);
    }
    r
}
