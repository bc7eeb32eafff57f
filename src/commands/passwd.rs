//! `masqmail passwd [USER]` — make the password hash of an SMTP AUTH
//! account.
//!
//! DESCRIPTION
//!   Reads one password: from a terminal it asks twice without echo, from
//!   anything else it reads the first line of stdin (the line end is not
//!   part of the password). Prints the SHA-512 crypt hash (`$6$…`) on the
//!   first line, then a `config user` section with that hash to paste into
//!   the config file (or to append with `>>`).
//!
//! SECURITY
//!   Needs no config and no privileges; touches nothing but the terminal.
//!   The password is never printed or logged; the salt comes from
//!   /dev/urandom (src/util/shacrypt.rs).

use std::io::{self, BufRead, Write};

use crate::error::{CmdResult, Exit, Fail};
use crate::receive::LineError;
use crate::util::shacrypt::{self, Alg, MAX_PASSWORD};

/// The name written when none was given.
const NAME_PLACEHOLDER: &str = "NAME";

/// An AUTH user name that can stand in a UCI value and an AUTH exchange:
/// letters, digits and `.`, `_`, `-`, `+`, `@`.
fn check_name(name: &str) -> CmdResult {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Fail::usage(format!(
            "bad user name '{}': use letters, digits and . _ - + @",
            name.escape_default()
        )))
    }
}

/// The password: the first line of `r`, without its line end (`\n` or
/// `\r\n`); empty, over MAX_PASSWORD bytes or with a NUL is refused.
fn password_from(r: &mut impl BufRead) -> Result<Vec<u8>, Fail> {
    let mut line = Vec::new();
    let why = match crate::receive::read_line(r, &mut line, MAX_PASSWORD) {
        Ok(true) if !line.is_empty() => return Ok(line),
        Ok(true) => "empty password",
        Ok(false) => "no password on stdin",
        Err(LineError::Nul) => "NUL byte in the password",
        Err(LineError::TooLong(_)) => {
            return Err(Fail::new(
                Exit::DataErr,
                format!("password longer than {MAX_PASSWORD} bytes"),
            ))
        }
        Err(LineError::Io(e)) => {
            return Err(Fail::new(Exit::IoErr, format!("reading the password: {e}")))
        }
    };
    Err(Fail::new(Exit::DataErr, why))
}

/// Terminal echo off while reading; restored when dropped.
struct NoEcho {
    saved: libc::termios,
}

impl NoEcho {
    fn new() -> Option<NoEcho> {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed termios buffer.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            t.c_lflag |= libc::ECHONL;
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(NoEcho { saved })
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in new().
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}

/// Read one password from stdin, after `prompt` on stderr if any.
fn ask(prompt: &str) -> Result<Vec<u8>, Fail> {
    if !prompt.is_empty() {
        let _ = io::stderr().write_all(prompt.as_bytes());
    }
    password_from(&mut io::stdin().lock())
}

fn read_password() -> Result<Vec<u8>, Fail> {
    // SAFETY: isatty only inspects the descriptor.
    let tty = unsafe { libc::isatty(0) } == 1;
    let _echo = if tty { NoEcho::new() } else { None };
    let first = ask(if tty { "New password: " } else { "" })?;
    if tty && ask("Again: ")? != first {
        return Err(Fail::new(Exit::DataErr, "the passwords do not match"));
    }
    Ok(first)
}

/// The output: the hash line, then the UCI section.
fn render(name: &str, hash: &str) -> String {
    format!("{hash}\n\nconfig user\n\toption name '{name}'\n\toption password_hash '{hash}'\n")
}

pub fn run(user: Option<&str>) -> CmdResult {
    if let Some(u) = user {
        check_name(u)?;
    }
    let password = read_password()?;
    let hash = shacrypt::make(Alg::Sha512, &password)
        .map_err(|e| Fail::new(Exit::Software, format!("cannot make a salt: {e}")))?;
    super::print_out(&render(user.unwrap_or(NAME_PLACEHOLDER), &hash), "stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["alice", "printer-1", "ups@lan.example", "a.b_c+d"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "o'neil", "x\ny", "tab\t", "é"] {
            assert_eq!(check_name(bad).unwrap_err().code, Exit::Usage, "{bad:?}");
        }
    }

    #[test]
    fn lines() {
        let pw = |b: &[u8]| password_from(&mut io::Cursor::new(b.to_vec()));
        assert_eq!(pw(b"s3cret\n").unwrap(), b"s3cret");
        assert_eq!(pw(b"s3cret\r\n").unwrap(), b"s3cret");
        assert_eq!(pw(b"no end").unwrap(), b"no end");
        assert_eq!(pw(b" spaces kept \nnext\n").unwrap(), b" spaces kept ");
        for bad in [&b"\n"[..], b"\r\n", b"a\0b\n", b""] {
            assert_eq!(pw(bad).unwrap_err().code, Exit::DataErr);
        }
        let long = vec![b'x'; MAX_PASSWORD + 1];
        assert_eq!(pw(&long).unwrap_err().code, Exit::DataErr);
        assert_eq!(pw(&long[1..]).unwrap().len(), MAX_PASSWORD);
        assert!(pw(&[b'y'; 10_000]).is_err());
    }

    #[test]
    fn output_verifies() {
        let hash = shacrypt::make(Alg::Sha512, b"pw").unwrap();
        let out = render("bob", &hash);
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(hash.as_str()));
        assert!(out.contains("config user\n\toption name 'bob'\n"));
        assert!(out.contains(&format!("\toption password_hash '{hash}'\n")));
        assert!(shacrypt::verify(b"pw", &hash));
    }
}
