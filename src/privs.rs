//! privs — who the program runs as.
//!
//! SECURITY
//!   Run by root without `run_as_user`, everything that touches the spool
//!   or the network runs as `mail_user`: commands switch before they open
//!   the spool, the daemon's workers switch right after fork, before they
//!   read a byte from a client. Root keeps only what needs it: binding
//!   port 25, and (with delivery) running a `pipe` as a given user.
//!   `run_as_user '1'` (test mode) keeps the caller's identity throughout.

use std::ffi::CString;

use nix::unistd::{self, User};

use crate::config::Config;
use crate::error::{Exit, Fail};

/// The mail user to become, or None when no switch is due (not root, or
/// test mode).
pub fn mail_user(cfg: &Config) -> Result<Option<User>, Fail> {
    if !unistd::geteuid().is_root() || cfg.main.run_as_user {
        return Ok(None);
    }
    let name = &cfg.main.mail_user;
    User::from_name(name)
        .ok()
        .flatten()
        .map(Some)
        .ok_or_else(|| Fail::new(Exit::Config, format!("mail_user '{name}' does not exist")))
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
        unistd::chown(spool, Some(user.uid), Some(user.gid))
            .map_err(|e| Fail::spool_io(&format!("cannot chown {}", spool.display()), &e.into()))?;
    }
    Ok(())
}

/// Become the mail user (no-op when not root or in test mode).
pub fn become_mail_user(cfg: &Config) -> Result<(), Fail> {
    let Some(user) = mail_user(cfg)? else {
        return Ok(());
    };
    let name = &cfg.main.mail_user;
    let cname = CString::new(name.as_str())
        .map_err(|_| Fail::new(Exit::Config, "mail_user has a NUL byte"))?;
    unistd::initgroups(&cname, user.gid)
        .and_then(|()| unistd::setgid(user.gid))
        .and_then(|()| unistd::setuid(user.uid))
        .map_err(|e| Fail::new(Exit::Software, format!("cannot become user {name}: {e}")))
}

/// For queue runs: act as the mail user, but keep root as the saved user
/// ID so that [`with_root`] can take it back for local deliveries (a
/// mailbox given to its user, an MDA run as the user). No-op when not root
/// or in test mode.
pub fn become_mail_user_keep_root(cfg: &Config) -> Result<(), Fail> {
    let Some(user) = mail_user(cfg)? else {
        return Ok(());
    };
    let name = &cfg.main.mail_user;
    let cname = CString::new(name.as_str())
        .map_err(|_| Fail::new(Exit::Config, "mail_user has a NUL byte"))?;
    let root = unistd::Uid::from_raw(0);
    unistd::initgroups(&cname, user.gid)
        .and_then(|()| unistd::setresgid(user.gid, user.gid, unistd::Gid::from_raw(0)))
        .and_then(|()| unistd::setresuid(user.uid, user.uid, root))
        .map_err(|e| Fail::new(Exit::Software, format!("cannot become user {name}: {e}")))
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
