//! Startup recovery: bring the spool back to a clean state after a crash.
//!
//! Idempotent and safe to run while other processes write the spool: a
//! file whose writer still lives is locked (pool/ID by queue-in,
//! incoming/ID by a scanner) and is left alone. What it does, by state
//! (doc/INTERNALS.md has the full table):
//!
//!   incoming/ID not ready, writer gone   → never acknowledged: remove it
//!                                          and pool/ID
//!   incoming/ID ready but not whole      → the same (made ready, then the
//!     (Spool::seal), writer gone           system went down before its
//!                                          fsync: never acknowledged)
//!   incoming/ID ready, outgoing/ID ready → scanning finished: remove
//!     and whole                            incoming/ID
//!   incoming/ID ready, outgoing/ID ready → remove outgoing/ID, scan again
//!     but not whole, scanner gone
//!   incoming/ID ready, no outgoing/ID    → to be scanned (returned)
//!   outgoing/ID not ready, scanner gone  → remove it; incoming/ID stays
//!                                          and is scanned again
//!   outgoing/ID.new, queue run gone      → remove it (outgoing/ID stands)
//!   pool/ID with no header file          → never acknowledged, or already
//!                                          delivered: remove it
//!   a name that is no message ID         → moved aside to corrupt/

use std::fs::{self, File};
use std::io;

use super::{is_ready, try_lock, Dir, Entry, MsgId, Seal, Spool};

const NOT_MSG: &str = "not a message file";

#[derive(Debug, Default)]
pub struct Report {
    /// What was done, as log lines in the order it was done: files
    /// removed as leftovers of a crash, files moved aside (with the
    /// reason), ready header files that were not whole (cut short by a
    /// crash before their fsync; removed too).
    lines: Vec<(log::Level, String)>,
    /// How many files were removed.
    removed: usize,
    /// Ready incoming messages that still need scanning.
    pub to_scan: Vec<MsgId>,
}

impl Report {
    /// Log what recovery did (`-q` and the daemon's start log the same lines).
    pub fn log(&self) {
        for (level, line) in &self.lines {
            log::log!(*level, "{line}");
        }
    }

    /// A ready header file `DIR/ID` that was not whole.
    fn incomplete(&mut self, dir: &str, id: &MsgId, why: &str) {
        self.lines.push((
            log::Level::Warn,
            format!(
                "recovery: {dir}/{id} was ready but not whole ({why}): \
                 cut short by a crash before its fsync"
            ),
        ));
    }
}

impl Report {
    /// Add `id` to `to_scan`, which stays sorted and without duplicates.
    fn scan(&mut self, id: MsgId) {
        if let Err(at) = self.to_scan.binary_search(&id) {
            self.to_scan.insert(at, id);
        }
    }
}

/// Can the lock of `path` be taken (its holder is gone)? A file that does
/// not exist counts as free.
fn holder_gone(path: &std::path::Path) -> bool {
    match File::open(path) {
        Ok(f) => try_lock(f).is_some(),
        Err(_) => true,
    }
}

/// The lock of `path` when nobody holds it, kept by the caller across its
/// last look and the removal: a writer that locks the file after that sees
/// it unlinked and starts again (queue-in checks `nlink` after its lock).
/// None: held by someone, or gone.
fn lock_if_free(path: &std::path::Path) -> Option<nix::fcntl::Flock<File>> {
    File::open(path).ok().and_then(try_lock)
}

/// Remove `DIR/ID` (`DIR/ID.new` with `new`) of the spool when it is
/// there and report it by that name.
fn remove_if_exists(
    spool: &Spool,
    dir: &str,
    id: &MsgId,
    new: bool,
    report: &mut Report,
) -> io::Result<()> {
    let name = format!("{dir}/{id}{}", if new { ".new" } else { "" });
    match fs::remove_file(spool.root.join(&name)) {
        Ok(()) => {
            report.removed += 1;
            report.lines.push((
                log::Level::Info,
                format!("recovery: removed {name} (left by a crash, never acknowledged)"),
            ));
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Move `name` of `d` (None: pool/) aside to corrupt/ and report it.
fn aside(
    spool: &Spool,
    d: Option<Dir>,
    name: &str,
    why: &str,
    report: &mut Report,
) -> io::Result<()> {
    spool.set_aside(d, name)?;
    let dir = d.map_or("pool", Dir::name);
    report.lines.push((
        log::Level::Warn,
        format!("recovery: moved {dir}/{name} to corrupt/: {why}"),
    ));
    Ok(())
}

/// Does the header file of `id` in `d` read and decode, whole? None: it
/// is gone.
fn whole(spool: &Spool, d: Dir, id: &MsgId) -> io::Result<Option<bool>> {
    match spool.read_header(d, id) {
        Ok(r) => Ok(Some(r.is_ok())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn recover(spool: &Spool) -> io::Result<Report> {
    let mut report = Report::default();

    for entry in &spool.list(Dir::Incoming)? {
        match *entry {
            Entry::Temp(id) => {
                let name = format!("{id}.new");
                aside(spool, Some(Dir::Incoming), &name, NOT_MSG, &mut report)?;
            }
            Entry::Foreign(ref name) => {
                aside(spool, Some(Dir::Incoming), name, NOT_MSG, &mut report)?;
            }
            Entry::NotReady(id) => {
                // S1/S2 of queue-in: the writer holds pool/ID's lock. It
                // may have finished since the listing, and a scanner may
                // have taken the message on to outgoing/ and removed
                // incoming/ID: only a file that is still there and still
                // not ready is a leftover (a missing one is not).
                let hp = spool.header_path(Dir::Incoming, &id);
                if holder_gone(&spool.pool_path(&id))
                    && fs::metadata(&hp).is_ok_and(|m| !is_ready(&m))
                {
                    remove_if_exists(spool, "incoming", &id, false, &mut report)?;
                    remove_if_exists(spool, "pool", &id, false, &mut report)?;
                }
            }
            Entry::Ready(id) => {
                let hp = spool.header_path(Dir::Incoming, &id);
                if spool.has_ready(Dir::Outgoing, &id) {
                    // S5: scanning is done when outgoing/ID is whole; a
                    // ready one that is not (S4: made ready, the system
                    // went down before its fsync) goes, and the message
                    // is scanned again from incoming/ID.
                    match whole(spool, Dir::Outgoing, &id)? {
                        // (Gone since: delivered, or set aside.)
                        Some(true) | None => {
                            remove_if_exists(spool, "incoming", &id, false, &mut report)?;
                            continue;
                        }
                        // With the scanner's lock held across the removal,
                        // as below.
                        Some(false) => match lock_if_free(&hp) {
                            Some(_lock) => {
                                report.incomplete("outgoing", &id, "not whole");
                                remove_if_exists(spool, "outgoing", &id, false, &mut report)?;
                            }
                            // A scanner at work on it removes it itself.
                            None => continue,
                        },
                    }
                }
                match spool.seal(Dir::Incoming, &id)? {
                    // S2: made ready, then the system went down before the
                    // fsync: never acknowledged, like a file without the
                    // bit. Its writer (the lock of pool/ID) must be gone.
                    Some(Seal::Broken(why)) if holder_gone(&spool.pool_path(&id)) => {
                        report.incomplete("incoming", &id, &why);
                        remove_if_exists(spool, "incoming", &id, false, &mut report)?;
                        remove_if_exists(spool, "pool", &id, false, &mut report)?;
                    }
                    None => {}
                    Some(_) => report.scan(id),
                }
            }
        }
    }

    for entry in &spool.list(Dir::Outgoing)? {
        match *entry {
            Entry::Foreign(ref name) => {
                aside(spool, Some(Dir::Outgoing), name, NOT_MSG, &mut report)?;
            }
            Entry::NotReady(id) => {
                let incoming = spool.header_path(Dir::Incoming, &id);
                if !incoming.exists() {
                    // A scanner that finished since the listing set the
                    // ready bit before it removed incoming/ID: a file
                    // that is ready (or gone) now is no leftover.
                    if spool.has_ready(Dir::Outgoing, &id)
                        || !spool.header_path(Dir::Outgoing, &id).exists()
                    {
                        continue;
                    }
                    aside(
                        spool,
                        Some(Dir::Outgoing),
                        id.as_str(),
                        "incomplete and without its incoming file",
                        &mut report,
                    )?;
                } else if let Some(_lock) = lock_if_free(&incoming) {
                    // A scanner's lock, held across the look and the
                    // removal: a scanner that locks after us finds no
                    // stale file, and one that locked first makes us skip
                    // (it could be writing a new outgoing/ID right now).
                    if !spool.has_ready(Dir::Outgoing, &id) {
                        remove_if_exists(spool, "outgoing", &id, false, &mut report)?;
                        report.scan(id);
                    }
                }
            }
            Entry::Ready(_) => {}
            Entry::Temp(id) => {
                // A rewrite by a queue run that died: the old header file
                // is still in place. The delivery lock is held while the
                // file goes, so a run that starts now cannot lose its own.
                if let Some(_lock) = lock_if_free(&spool.pool_path(&id)) {
                    remove_if_exists(spool, "outgoing", &id, true, &mut report)?;
                }
            }
        }
    }

    for entry in &spool.list_pool()? {
        match *entry {
            Entry::Foreign(ref name) => {
                aside(spool, None, name, NOT_MSG, &mut report)?;
            }
            Entry::NotReady(_) | Entry::Temp(_) => {}
            Entry::Ready(id) => {
                let has_header = |s: &Spool| {
                    s.header_path(Dir::Incoming, &id).exists()
                        || s.header_path(Dir::Outgoing, &id).exists()
                };
                if has_header(spool) {
                    continue;
                }
                // A body without a header file: a crash's leftover, or a
                // queue-in that has created the file and not yet locked
                // it. Holding the lock across the second look and the
                // unlink settles that race: queue-in locks before us (we
                // skip), or after the unlink (it sees nlink 0 and takes
                // another ID). Checking the lock and letting it go before
                // the unlink left a window in which a writer locked,
                // found its file linked and wrote an acknowledged message
                // into a body that was then removed.
                let pool = spool.pool_path(&id);
                if let Some(_lock) = lock_if_free(&pool) {
                    if !has_header(spool) {
                        remove_if_exists(spool, "pool", &id, false, &mut report)?;
                    }
                }
            }
        }
    }
    if report.removed > 0 {
        for &d in &[Dir::Incoming, Dir::Outgoing] {
            super::sync_dir(&spool.dir(d))?;
        }
        super::sync_dir(&spool.pool_dir())?;
    }
    Ok(report)
}
