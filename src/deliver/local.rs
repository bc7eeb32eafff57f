//! Local delivery: mail for users of this machine, and `|command`
//! aliases.
//!
//! DESCRIPTION
//!   `local_delivery 'mbox'` (default) appends to `mail_dir/USER`: a `From `
//!   line, `Return-Path:`, the message with mboxrd `>From ` quoting and an
//!   empty line, under a dot lock (`USER.lock`) and an fcntl write lock,
//!   fsynced; a failed write truncates the mailbox back to where it was.
//!   `maildir` writes `mail_dir/USER/tmp/NAME`, fsyncs and renames it into
//!   `new/`. `mda` pipes the message to the `mda` command with `%{rcpt}`,
//!   `%{user}`, `%{sender}` and `%{id}` substituted, as the user when root.
//!   `|command` aliases run like the MDA, as the mail user.
//!
//! SECURITY
//!   A mailbox is opened without following a symlink, and must be a regular
//!   file; a new one is created 0600 and, when root, given to its user.
//!   Commands never go through a shell (command.rs).
//!
//! DIAGNOSTICS
//!   A lock that stays taken for LOCK_WAIT, a full disk or an MDA exit 75
//!   defer the recipient; an MDA's other sysexits codes bounce it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::unistd::{Gid, Uid};

use super::command::{self, RunAs};
use super::output::{self, Format};
use super::Failure;
use crate::addr::Sender;
use crate::config::{Config, LocalDelivery};
use crate::message::Header;
use crate::passwd::{self, Account};
use crate::queue::MsgId;

/// How long to wait for a mailbox lock before deferring.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);
/// A dot lock older than this is stale (its holder died).
const STALE_LOCK: Duration = Duration::from_secs(300);
const MDA_TIMEOUT: Duration = Duration::from_secs(600);

/// A message on its way to a local destination.
pub struct LocalMsg<'a> {
    pub id: &'a MsgId,
    pub sender: &'a Sender,
    pub received: u64,
    pub headers: &'a [Header],
    pub pool: &'a Path,
}

/// A temporary failure `WHAT PATH: ERROR` (`WHAT: ERROR` without a
/// path); with `full`, a full disk says so: `…: disk full (ERROR)`.
#[inline(never)]
fn io_fail(what: &str, path: Option<&Path>, e: &io::Error, full: bool) -> Failure {
    let full = full && matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT));
    let (sp, p) = match path {
        Some(p) => (" ", p.display()),
        None => ("", Path::new("").display()),
    };
    let (open, close) = if full { ("disk full (", ")") } else { ("", "") };
    Failure::Temporary(format!("{what}{sp}{p}: {open}{e}{close}"))
}

fn temp(what: &str, e: &io::Error) -> Failure {
    io_fail(what, None, e, false)
}

/// A temporary failure about a mailbox: `PRE PATH POST TAIL`.
#[inline(never)]
fn mailbox_fail(pre: &str, path: &Path, post: &str, tail: &str) -> Failure {
    Failure::Temporary(format!("{pre}{} {post}{tail}", path.display()))
}

fn return_path(sender: &Sender) -> String {
    format!("Return-Path: <{sender}>\n")
}

/// The account a local recipient belongs to.
fn account(name: &str) -> Result<Account, Failure> {
    match passwd::by_name(name) {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(Failure::Permanent(format!(
            "550 5.1.1 no such user '{name}'"
        ))),
        Err(e) => Err(Failure::Temporary(format!("looking up user '{name}': {e}"))),
    }
}

fn run_as_for(cfg: &Config, user: &Account) -> Option<RunAs> {
    (nix::unistd::geteuid().is_root() && !cfg.main.run_as_user).then(|| RunAs {
        uid: user.uid,
        gid: user.gid,
        home: user.home.clone(),
        name: user.name.clone(),
    })
}

/// Deliver to local user `name` (the local part of a recipient address).
pub fn deliver_user(
    cfg: &Config,
    name: &str,
    rcpt: &str,
    msg: &LocalMsg<'_>,
) -> Result<(), Failure> {
    let user = account(name)?;
    match cfg.main.local_delivery {
        LocalDelivery::Mbox => deliver_mbox(cfg, &user, msg),
        LocalDelivery::Maildir => deliver_maildir(cfg, &user, msg),
        LocalDelivery::Mda => {
            let line = cfg.main.mda.as_deref().ok_or_else(|| {
                Failure::Temporary("local_delivery 'mda' without an mda command".into())
            })?;
            let fmt = Format {
                from_line: cfg.main.mda_fromline,
                from_quote: cfg.main.mda_fromhack,
                trailing_blank: false,
            };
            run_command(
                line,
                rcpt,
                &user.name,
                msg,
                run_as_for(cfg, &user).as_ref(),
                fmt,
            )
        }
    }
}

/// Run a command (MDA, `|command` alias, `pipe` route) with the message on
/// its stdin.
pub fn run_command(
    line: &str,
    rcpt: &str,
    user: &str,
    msg: &LocalMsg<'_>,
    run_as: Option<&RunAs>,
    fmt: Format,
) -> Result<(), Failure> {
    let words = command::split(line).map_err(Failure::Permanent)?;
    let sender = msg.sender.to_string();
    let id = msg.id.as_str();
    let argv = command::substitute(
        &words,
        &[
            ("rcpt", rcpt),
            ("user", user),
            ("sender", &sender),
            ("id", id),
        ],
    );
    let from = fmt
        .from_line
        .then(|| output::from_line(msg.sender, msg.received));
    let rp = return_path(msg.sender);
    let mut first = from.unwrap_or_default();
    first.push_str(&rp);
    command::run(
        &argv,
        &[("SENDER", &sender), ("RECIPIENT", rcpt)],
        run_as,
        MDA_TIMEOUT,
        &mut |w| write_buffered(&mut |b| w.write(b), &first, msg, fmt),
    )
}

/// Write the message (after `first`) through a buffer to `w`, the
/// `write` of a file or a command's stdin (one adapter for both, not a
/// `dyn Write` each).
fn write_buffered(
    w: &mut dyn FnMut(&[u8]) -> io::Result<usize>,
    first: &str,
    msg: &LocalMsg<'_>,
    fmt: Format,
) -> io::Result<()> {
    let mut out = Out {
        w,
        buf: Vec::with_capacity(OUT_BUF),
    };
    output::write_message(&mut out, Some(first), msg.headers, msg.pool, fmt)?;
    out.flush()
}

const OUT_BUF: usize = 32 * 1024;

/// A buffer in front of a `write` function: a plain vector, emptied when
/// full and at the end (less code than `BufWriter`).
struct Out<'a> {
    w: &'a mut dyn FnMut(&[u8]) -> io::Result<usize>,
    buf: Vec<u8>,
}

/// Write all of `b` with `w`.
fn put_all(w: &mut dyn FnMut(&[u8]) -> io::Result<usize>, mut b: &[u8]) -> io::Result<()> {
    while !b.is_empty() {
        match w(b) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => b = b.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Write for Out<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.buf.len() + b.len() > OUT_BUF {
            self.flush()?;
            if b.len() >= OUT_BUF {
                put_all(self.w, b)?;
                return Ok(b.len());
            }
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = put_all(self.w, &self.buf);
        self.buf.clear();
        r
    }
}

/// A dot lock: `PATH.lock`, made with O_EXCL, removed on drop.
struct DotLock(PathBuf);

impl DotLock {
    fn take(mbox: &Path, deadline: Instant) -> Result<DotLock, Failure> {
        let mut name = mbox.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(_) => return Ok(DotLock(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(&path).is_ok_and(|m| {
                        let mtime = u64::try_from(m.mtime()).unwrap_or(u64::MAX);
                        crate::util::time::now().saturating_sub(mtime) > STALE_LOCK.as_secs()
                    });
                    if stale {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                }
                // No permission to make a lock file in mail_dir: rely on
                // the fcntl lock alone, as many MTAs do.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    return Ok(DotLock(PathBuf::new()));
                }
                Err(e) => return Err(io_fail("lock", Some(&path), &e, false)),
            }
            if crate::util::time::left(deadline).is_zero() {
                return Err(mailbox_fail("mailbox ", mbox, "is locked", ""));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.0);
        }
    }
}

/// Take an fcntl write lock on the whole file, waiting until `deadline`.
fn fcntl_lock(f: &File, mbox: &Path, deadline: Instant) -> Result<(), Failure> {
    // SAFETY: an all-zero flock is valid; we fill the fields we need.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    loop {
        // SAFETY: fd is open for the duration; fl is a valid flock.
        let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EAGAIN)
                if !crate::util::time::left(deadline).is_zero() =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            Some(libc::EACCES) | Some(libc::EAGAIN) => {
                return Err(mailbox_fail("mailbox ", mbox, "is locked", ""));
            }
            _ => return Err(io_fail("lock", Some(mbox), &e, false)),
        }
    }
}

fn deliver_mbox(cfg: &Config, user: &Account, msg: &LocalMsg<'_>) -> Result<(), Failure> {
    let path = cfg.main.mail_dir.join(&user.name);
    let deadline = Instant::now() + LOCK_WAIT;
    let _dot = DotLock::take(&path, deadline)?;
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| io_fail("open", Some(&path), &e, true))?;
    let meta = f.metadata().map_err(|e| temp("stat mailbox", &e))?;
    if !meta.is_file() {
        return Err(mailbox_fail("", &path, "is not a regular file", ""));
    }
    if nix::unistd::geteuid().is_root() && !cfg.main.run_as_user && meta.uid() != user.uid {
        if meta.len() == 0 {
            let _ = nix::unistd::fchown(
                &f,
                Some(Uid::from_raw(user.uid)),
                Some(Gid::from_raw(user.gid)),
            );
        } else {
            return Err(mailbox_fail("", &path, "does not belong to ", &user.name));
        }
    }
    fcntl_lock(&f, &path, deadline)?;
    let start = f
        .seek(SeekFrom::End(0))
        .map_err(|e| temp("seek mailbox", &e))?;
    let mut first = output::from_line(msg.sender, msg.received);
    first.push_str(&return_path(msg.sender));
    let written =
        write_buffered(&mut |b| f.write(b), &first, msg, output::MBOX).and_then(|()| f.sync_all());
    if let Err(e) = written {
        // Leave the mailbox as it was: no half message for the reader.
        // SAFETY: f is open; ftruncate only shortens it back to `start`.
        unsafe { libc::ftruncate(f.as_raw_fd(), start as libc::off_t) };
        let _ = f.sync_all();
        return Err(io_fail("write", Some(&path), &e, true));
    }
    Ok(())
}

fn deliver_maildir(cfg: &Config, user: &Account, msg: &LocalMsg<'_>) -> Result<(), Failure> {
    let root = cfg.main.mail_dir.join(&user.name);
    let owned = nix::unistd::geteuid().is_root() && !cfg.main.run_as_user;
    for &sub in &["", "tmp", "new", "cur"] {
        let d = root.join(sub);
        if !d.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&d)
                .map_err(|e| io_fail("mkdir", Some(&d), &e, true))?;
            if owned {
                let _ = nix::unistd::chown(
                    &d,
                    Some(Uid::from_raw(user.uid)),
                    Some(Gid::from_raw(user.gid)),
                );
            }
        }
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().replace(['/', ':'], "_"))
        .unwrap_or_else(|_| "localhost".into());
    let name = format!(
        "{}.M{}P{}Q{}.{host}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        msg.id
    );
    let tmp = root.join("tmp").join(&name);
    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        if owned {
            let _ = nix::unistd::fchown(
                &f,
                Some(Uid::from_raw(user.uid)),
                Some(Gid::from_raw(user.gid)),
            );
        }
        write_buffered(
            &mut |b| f.write(b),
            &return_path(msg.sender),
            msg,
            output::PLAIN,
        )?;
        f.sync_all()?;
        fs::rename(&tmp, root.join("new").join(&name))?;
        crate::queue::sync_dir(&root.join("new"))
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_fail("maildir", Some(&root), &e, true));
    }
    Ok(())
}
