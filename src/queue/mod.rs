//! queue — the spool on disk: the only module that knows its paths.
//!
//! DESCRIPTION
//!   `spool_dir/pool/ID` holds a message body, written once.
//!   `spool_dir/incoming/ID` holds envelope + headers as received,
//!   `spool_dir/outgoing/ID` the same after scanning. The owner-execute bit
//!   of a header file marks it complete ("ready"); readers ignore files
//!   without it. `spool_dir/corrupt/` receives files that cannot be read.
//!   doc/INTERNALS.md has the state table; the crash points are named in
//!   the code beside each step (`S1` … `S6`).
//!
//! SECURITY
//!   Directories are 0700, files 0600 (0700 once ready): only the mail user
//!   reads the spool. File names are only ever made from a [`MsgId`], which
//!   is only had by parsing, so no name from outside reaches a path.
//!
//! DIAGNOSTICS
//!   A file that cannot be parsed is logged with its ID and moved aside to
//!   `corrupt/`; it never stops the others.

pub mod id;
pub mod queue_in;
pub mod recover;
pub mod spoolfile;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

pub use id::MsgId;
pub use spoolfile::{Envelope, HeaderFile, Rcpt, RcptState, Seal, Target};

/// The header-file directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Incoming,
    Outgoing,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::Incoming => "incoming",
            Dir::Outgoing => "outgoing",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Spool {
    root: PathBuf,
}

/// One file found in a header directory.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    Ready(MsgId),
    NotReady(MsgId),
    /// `ID.new`: a header file being rewritten by a queue run.
    Temp(MsgId),
    /// A name that is no message ID (left by someone else).
    Foreign(String),
}

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
const READY_MODE: u32 = 0o700;

/// fsync a directory, so that the entries made in it are on disk.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

pub fn is_ready(meta: &fs::Metadata) -> bool {
    meta.permissions().mode() & 0o100 != 0
}

/// Try to take the exclusive lock of an open file without waiting: the
/// writer of a message holds it on `pool/ID` until the message is ready, a
/// scanner holds it on `incoming/ID`, a queue run on `outgoing/ID`. Locks
/// die with their process, so a lock that can be taken means its holder is
/// gone.
pub fn try_lock(file: File) -> Option<Flock<File>> {
    Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()
}

impl Spool {
    /// The spool at `root`, creating missing directories (0700).
    pub fn open(root: &Path) -> io::Result<Spool> {
        let spool = Spool {
            root: root.to_path_buf(),
        };
        let mut b = fs::DirBuilder::new();
        b.recursive(true).mode(DIR_MODE);
        for &sub in &["pool", "incoming", "outgoing", "corrupt"] {
            let p = root.join(sub);
            if !p.is_dir() {
                b.create(&p)?;
            }
        }
        Ok(spool)
    }

    /// The spool at `root` for reading only; nothing is created.
    pub fn existing(root: &Path) -> Spool {
        Spool {
            root: root.to_path_buf(),
        }
    }

    pub fn dir(&self, d: Dir) -> PathBuf {
        self.root.join(d.name())
    }

    pub fn pool_dir(&self) -> PathBuf {
        self.root.join("pool")
    }

    pub fn corrupt_dir(&self) -> PathBuf {
        self.root.join("corrupt")
    }

    pub fn pool_path(&self, id: &MsgId) -> PathBuf {
        self.pool_dir().join(id.as_str())
    }

    pub fn header_path(&self, d: Dir, id: &MsgId) -> PathBuf {
        self.dir(d).join(id.as_str())
    }

    /// The files of a header directory, sorted by ID (= arrival time).
    pub fn list(&self, d: Dir) -> io::Result<Vec<Entry>> {
        self.entries(self.dir(d), true)
    }

    /// The files of `pool/`, sorted: a message ID is `Ready` (bodies have
    /// no ready bit), any other name `Foreign`.
    pub fn list_pool(&self) -> io::Result<Vec<Entry>> {
        self.entries(self.pool_dir(), false)
    }

    /// The messages with a ready header file in `d`, oldest first.
    pub fn ready(&self, d: Dir) -> io::Result<Vec<MsgId>> {
        let mut out = Vec::new();
        for e in &self.list(d)? {
            if let Entry::Ready(id) = *e {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// The files of `dir`; `headers`: a header directory (a missing one
    /// is empty, `ID.new` is a rewrite, the mode says ready).
    fn entries(&self, dir: PathBuf, headers: bool) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if headers && e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for ent in rd {
            let ent = ent?;
            let name = ent.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name
                .strip_suffix(".new")
                .filter(|_| headers)
                .and_then(MsgId::parse)
            {
                out.push(Entry::Temp(id));
                continue;
            }
            match MsgId::parse(&name) {
                Some(id) => {
                    let ready = !headers
                        || match ent.metadata() {
                            Ok(m) => is_ready(&m),
                            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(e),
                        };
                    out.push(if ready {
                        Entry::Ready(id)
                    } else {
                        Entry::NotReady(id)
                    });
                }
                None => out.push(Entry::Foreign(name.into_owned())),
            }
        }
        // Keys are equal only for `ID` and its `ID.new`, which no reader
        // takes in a given order: an unstable sort (less code) does.
        out.sort_unstable_by(|a, b| entry_key(a).cmp(entry_key(b)));
        Ok(out)
    }

    /// Is there a ready header file for `id` in `d`?
    pub fn has_ready(&self, d: Dir, id: &MsgId) -> bool {
        fs::metadata(self.header_path(d, id)).is_ok_and(|m| is_ready(&m))
    }

    /// Read and decode a header file. One that is not whole (its end line
    /// does not seal it for this message: `spoolfile::check_seal`) is an
    /// error like one that does not parse.
    pub fn read_header(&self, d: Dir, id: &MsgId) -> io::Result<Result<HeaderFile, String>> {
        let data = fs::read(self.header_path(d, id))?;
        if let Seal::Broken(why) = spoolfile::check_seal(&data, id.as_str()) {
            return Ok(Err(format!("incomplete: {why}")));
        }
        Ok(HeaderFile::decode(&data))
    }

    /// Is the ready header file of `id` in `d` whole? None: it is gone.
    /// A ready file that is not whole was made ready before its one fsync
    /// and the system went down before that fsync was done: its writer
    /// never reported success, so it counts as not ready (doc/INTERNALS.md).
    pub fn seal(&self, d: Dir, id: &MsgId) -> io::Result<Option<Seal>> {
        match fs::read(self.header_path(d, id)) {
            Ok(data) => Ok(Some(spoolfile::check_seal(&data, id.as_str()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Read a ready header file and check it against its pool file: a
    /// missing body or a size mismatch makes it corrupt too.
    pub fn load(&self, d: Dir, id: &MsgId) -> io::Result<Result<HeaderFile, String>> {
        let hf = match self.read_header(d, id)? {
            Ok(hf) => hf,
            Err(e) => return Ok(Err(e)),
        };
        match fs::metadata(self.pool_path(id)) {
            Ok(m) if m.len() == hf.env.body_size => Ok(Ok(hf)),
            Ok(m) => Ok(Err(format!(
                "body is {} bytes, header file says {}",
                m.len(),
                hf.env.body_size
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Ok(Err("body (pool file) is missing".into()))
            }
            Err(e) => Err(e),
        }
    }

    /// Write a header file and mark it ready, durably: create 0600 with
    /// O_EXCL, write it sealed (its end line names the message and hashes
    /// the rest), chmod u+x, fsync, fsync the directory. On any error the
    /// file is removed again and the error returned.
    pub fn write_header(&self, d: Dir, id: &MsgId, hf: &HeaderFile) -> io::Result<()> {
        let path = self.header_path(d, id);
        let res = write_ready_file(&path, id, hf).and_then(|()| sync_dir(&self.dir(d)));
        if res.is_err() {
            let _ = fs::remove_file(&path);
        }
        res
    }

    /// Replace a ready header file with a new version, atomically: write
    /// `ID.new` (ready), rename it over `ID`, fsync the directory. The
    /// caller holds the message's delivery lock (its pool file).
    pub fn replace_header(&self, d: Dir, id: &MsgId, hf: &HeaderFile) -> io::Result<()> {
        let tmp = self.dir(d).join(format!("{id}.new"));
        let _ = fs::remove_file(&tmp);
        let res = write_ready_file(&tmp, id, hf)
            .and_then(|()| fs::rename(&tmp, self.header_path(d, id)))
            .and_then(|()| sync_dir(&self.dir(d)));
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    /// Take a message's delivery lock (the lock of its pool file, which
    /// never changes while the message lives). `wait`: block until free.
    pub fn lock_message(&self, id: &MsgId, wait: bool) -> io::Result<Option<Flock<File>>> {
        let f = match File::open(self.pool_path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let arg = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        match Flock::lock(f, arg) {
            Ok(l) => Ok(Some(l)),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(io::Error::from(e)),
        }
    }

    /// Move a file that cannot be used aside to `corrupt/`, named after the
    /// directory it came from; its pool file goes with it when no other
    /// header file refers to it.
    pub fn set_aside(&self, d: Option<Dir>, name: &str) -> io::Result<PathBuf> {
        let (from, prefix) = match d {
            Some(d) => (self.dir(d).join(name), d.name()),
            None => (self.pool_dir().join(name), "pool"),
        };
        let corrupt = self.corrupt_dir();
        let to = corrupt.join(format!("{prefix}-{name}"));
        fs::rename(&from, &to)?;
        if let (Some(d), Some(id)) = (d, MsgId::parse(name)) {
            let other = match d {
                Dir::Incoming => Dir::Outgoing,
                Dir::Outgoing => Dir::Incoming,
            };
            if !self.header_path(other, &id).exists() {
                let pool = self.pool_path(&id);
                if pool.exists() {
                    fs::rename(&pool, corrupt.join(format!("pool-{name}")))?;
                }
            }
        }
        sync_dir(&corrupt)?;
        Ok(to)
    }

    /// Files set aside in `corrupt/`.
    pub fn list_corrupt(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        if let Ok(rd) = fs::read_dir(self.corrupt_dir()) {
            for e in rd.flatten() {
                v.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        // File names are unique: an unstable sort (less code) is the same.
        v.sort_unstable();
        v
    }

    /// Remove a message entirely: header files first (the commit point: the
    /// message is gone), then the body.
    pub fn remove(&self, id: &MsgId) -> io::Result<bool> {
        let mut found = false;
        for &d in &[Dir::Outgoing, Dir::Incoming] {
            match fs::remove_file(self.header_path(d, id)) {
                Ok(()) => {
                    found = true;
                    sync_dir(&self.dir(d))?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        match fs::remove_file(self.pool_path(id)) {
            Ok(()) => found = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(found)
    }
}

fn entry_key(e: &Entry) -> &str {
    match e {
        Entry::Ready(id) | Entry::NotReady(id) | Entry::Temp(id) => id.as_str(),
        Entry::Foreign(n) => n,
    }
}

/// Create `path` (must not exist), write the sealed header file, set the
/// ready bit, fsync once (the mode is metadata: fsync, not fdatasync).
/// Setting the bit before the fsync is safe because a ready file counts
/// only when it is whole (`Spool::seal`): a crash before the fsync is done
/// leaves a file that is not ready or not whole, and never acknowledged.
fn write_ready_file(path: &Path, id: &MsgId, hf: &HeaderFile) -> io::Result<()> {
    let mut data = hf.encode();
    spoolfile::seal(&mut data, id.as_str());
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    f.write_all(&data)?;
    f.set_permissions(fs::Permissions::from_mode(READY_MODE))?;
    f.sync_all()
}

/// Create a new, exclusive, 0600 file.
pub fn create_exclusive(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}
