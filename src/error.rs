//! error — sysexits(3) exit codes and the one error type a command returns.
//!
//! Every command ends in `Ok(())` (exit 0) or a [`Fail`]: an exit code and
//! the one line printed to stderr. Lower layers return their own error
//! types; the command layer classifies them here.

use std::fmt;
use std::io;

/// sysexits(3) codes, the contract of DESIGN §10.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Usage = 64,
    DataErr = 65,
    NoUser = 67,
    Unavailable = 69,
    Software = 70,
    CantCreate = 73,
    IoErr = 74,
    TempFail = 75,
    Config = 78,
}

/// A failed command: its exit code and its one line for stderr.
#[derive(Debug)]
pub struct Fail {
    pub code: Exit,
    pub msg: String,
}

impl Fail {
    pub fn new(code: Exit, msg: impl Into<String>) -> Fail {
        Fail {
            code,
            msg: msg.into(),
        }
    }

    pub fn usage(msg: impl Into<String>) -> Fail {
        Fail::new(Exit::Usage, msg)
    }

    /// Classify an I/O error met while writing the spool: a full disk or
    /// quota is temporary (75), a permission or missing-path problem is
    /// "cannot create" (73), anything else an I/O error (74).
    pub fn spool_io(context: &str, e: &io::Error) -> Fail {
        let code = match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EAGAIN) | Some(libc::EINTR)
            | Some(libc::ENOMEM) | Some(libc::EMFILE) | Some(libc::ENFILE) => Exit::TempFail,
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) | Some(libc::ENOENT)
            | Some(libc::ENOTDIR) => Exit::CantCreate,
            _ => Exit::IoErr,
        };
        Fail::new(code, format!("{context}: {e}"))
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

pub type CmdResult = Result<(), Fail>;
