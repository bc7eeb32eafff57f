//! queue-in: the only code that creates messages in the spool.
//!
//! Every receiver (the sendmail command, the SMTP server, POP3 fetch)
//! streams a body into an [`Incoming`] and commits it with its envelope and
//! headers. `commit` returns only when the message is on disk; the caller
//! acknowledges after that and never before. Dropping an `Incoming` that
//! was not committed removes what it wrote.
//!
//! The steps and their crash states (doc/INTERNALS.md):
//!   S0 nothing                      → crash: nothing to clean
//!   S1 pool/ID being written (lock) → crash: recovery removes it
//!   S2 + incoming/ID written whole, → crash: recovery removes both
//!      made ready, not yet fsynced    (not ready, or ready but not whole)
//!   S3 incoming/ID fsynced          → acknowledged; scanning takes over

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;

use nix::fcntl::Flock;

use super::{create_exclusive, sync_dir, Dir, Envelope, HeaderFile, MsgId, Spool};
use crate::message::Header;

const BUF_SIZE: usize = 32 * 1024;

pub struct Incoming<'a> {
    spool: &'a Spool,
    id: MsgId,
    pool: Flock<File>,
    buf: Vec<u8>,
    size: u64,
    committed: bool,
}

impl<'a> Incoming<'a> {
    /// S0 → S1: pick a fresh ID and create its pool file, locked.
    pub fn create(spool: &'a Spool) -> io::Result<Incoming<'a>> {
        let mut id = MsgId::generate();
        let mut tries = 0;
        let pool = loop {
            // Why this name will not do: then the next one is tried, up
            // to 1000 times.
            let taken = match create_exclusive(&spool.pool_path(&id)) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => e,
                Err(e) => return Err(e),
                Ok(file) => match Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                    // Between the create and the lock, recovery may have
                    // taken the unlocked file without a header for a
                    // crash's leftover and removed it: the body would go
                    // to an unlinked file. Start again under a new name
                    // then.
                    Ok(l) if l.metadata()?.nlink() > 0 => break l,
                    Ok(_) => io::Error::other("pool file removed while being created"),
                    // Recovery holds it: it took the new file for a
                    // crash's leftover and removes it. Start again under
                    // a new name.
                    Err((_, errno)) => {
                        if errno != nix::errno::Errno::EWOULDBLOCK || tries >= 1000 {
                            let _ = std::fs::remove_file(spool.pool_path(&id));
                            return Err(io::Error::from(errno));
                        }
                        io::Error::from(errno)
                    }
                },
            };
            if tries >= 1000 {
                return Err(taken);
            }
            tries += 1;
            id = id.successor();
        };
        Ok(Incoming {
            spool,
            id,
            pool,
            buf: Vec::with_capacity(BUF_SIZE),
            size: 0,
            committed: false,
        })
    }

    pub fn write_body(&mut self, data: &[u8]) -> io::Result<()> {
        self.size += data.len() as u64;
        if self.buf.len() + data.len() > BUF_SIZE {
            self.flush()?;
            if data.len() >= BUF_SIZE {
                return (&*self.pool).write_all(data);
            }
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            (&*self.pool).write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// S1 → S3: make the body durable, write the ready header file, fsync
    /// both directories. Returns the ID; the message may be acknowledged.
    pub fn commit(mut self, mut env: Envelope, headers: Vec<Header>) -> io::Result<MsgId> {
        self.flush()?;
        self.pool.sync_all()?;
        env.body_size = self.size;
        let hf = HeaderFile { env, headers };
        // S2: write_header removes its own partial file on error.
        self.spool.write_header(Dir::Incoming, &self.id, &hf)?;
        if let Err(e) = sync_dir(&self.spool.pool_dir()) {
            let _ = std::fs::remove_file(self.spool.header_path(Dir::Incoming, &self.id));
            return Err(e);
        }
        // S3: on disk. The lock is released when self drops.
        self.committed = true;
        Ok(self.id)
    }
}

impl Drop for Incoming<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(self.spool.pool_path(&self.id));
        }
    }
}
