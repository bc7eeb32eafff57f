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
