//! Writing a spooled message out: to a mailbox, a command, or SMTP.
//!
//! The spool keeps `\n` line ends; each output adds what its format
//! needs: a `From ` line and mboxrd `>From ` quoting for mailboxes and
//! (when asked) pipes. SMTP's CRLF and dot-stuffing are the SMTP
//! client's `DotStuffer`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use crate::addr::Sender;
use crate::message::Header;
use crate::util::time;

/// How to write the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// Start with an mbox `From SENDER DATE` line.
    pub from_line: bool,
    /// mboxrd quoting: a line matching `^>*From ` gets one more `>`.
    pub from_quote: bool,
    /// End with an empty line (mbox: messages are separated by one).
    pub trailing_blank: bool,
}

pub const MBOX: Format = Format {
    from_line: true,
    from_quote: true,
    trailing_blank: true,
};

pub const PLAIN: Format = Format {
    from_line: false,
    from_quote: false,
    trailing_blank: false,
};

/// The `From ` line of an mbox: `From SENDER Wed Nov 25 20:47:39 2026`.
pub fn from_line(sender: &Sender, received: u64) -> String {
    let s: &dyn std::fmt::Display = match sender {
        Sender::Null => &"MAILER-DAEMON",
        Sender::Addr(a) => a,
    };
    let tm = time::local(received);
    // ctime layout: the weekday of the RFC 5322 date ("Wed, 25 Nov …"),
    // then the syslog stamp ("Nov 25 20:47:39", day padded), the year.
    let date = time::rfc5322(&tm);
    let wd = date.get(..3).unwrap_or_default();
    format!("From {s} {wd} {} {}\n", time::syslog_stamp(&tm), tm.year)
}

fn needs_from_quote(line: &[u8]) -> bool {
    let rest = &line[line.iter().take_while(|&&b| b == b'>').count()..];
    rest.starts_with(b"From ")
}

/// Write one line (without line end) in `fmt`.
pub fn write_line(w: &mut dyn Write, line: &[u8], fmt: Format) -> io::Result<()> {
    if fmt.from_quote && needs_from_quote(line) {
        w.write_all(b">")?;
    }
    w.write_all(line)?;
    w.write_all(b"\n")
}

/// Write `prefix` lines (e.g. Return-Path), the header fields, the empty
/// line and the body from `pool`.
pub fn write_message(
    w: &mut dyn Write,
    first: Option<&str>,
    headers: &[Header],
    pool: &Path,
    fmt: Format,
) -> io::Result<()> {
    if let Some(f) = first {
        w.write_all(f.as_bytes())?;
    }
    for h in headers {
        for line in h.raw().split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            // Header lines are written as they are: quoting applies to the
            // body only (a header line cannot start with "From ").
            w.write_all(line)?;
            w.write_all(b"\n")?;
        }
    }
    w.write_all(b"\n")?;
    let mut body = BufReader::with_capacity(32 * 1024, File::open(pool)?);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if body.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        write_line(w, &line, fmt)?;
    }
    if fmt.trailing_blank {
        w.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(body: &[u8], fmt: Format) -> Vec<u8> {
        let dir = std::env::temp_dir().join(format!(
            "masqmail-output-{}-{}",
            std::process::id(),
            body.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("{}", body.len()));
        std::fs::write(&p, body).unwrap();
        let mut out = Vec::new();
        let h = vec![Header::from_line(b"Subject: x").unwrap()];
        write_message(
            &mut out,
            Some("From a@b Thu Jan  1 00:00:00 1970\n"),
            &h,
            &p,
            fmt,
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        out
    }

    #[test]
    fn mbox_quotes_from_lines() {
        let out = render(b"From me\n>From you\nFromage\n.\n", MBOX);
        assert_eq!(
            out,
            b"From a@b Thu Jan  1 00:00:00 1970\nSubject: x\n\n>From me\n>>From you\nFromage\n.\n\n"
        );
    }

    /// The layout as it was first made: from the parts of the RFC 5322
    /// date.
    fn from_line_by_parts(sender: &Sender, received: u64) -> String {
        let s = match sender {
            Sender::Null => "MAILER-DAEMON".to_string(),
            Sender::Addr(a) => a.to_string(),
        };
        let date = time::rfc5322(&time::local(received));
        let p: Vec<&str> = date.split([' ', ',']).filter(|x| !x.is_empty()).collect();
        match p.as_slice() {
            [wd, day, mon, year, hms, _] => format!("From {s} {wd} {mon} {day:>2} {hms} {year}\n"),
            _ => format!("From {s} {date}\n"),
        }
    }

    #[test]
    fn from_line_as_by_parts() {
        let a = Sender::Addr(crate::addr::Address::parse("a@b.test", None).unwrap());
        for t in [0, 200_000, 1_764_103_659, 1_767_225_599, 4_102_444_800] {
            assert_eq!(from_line(&a, t), from_line_by_parts(&a, t));
            assert_eq!(
                from_line(&Sender::Null, t),
                from_line_by_parts(&Sender::Null, t)
            );
        }
    }

    #[test]
    fn from_line_layout() {
        let l = from_line(&Sender::Null, 200_000);
        assert!(
            l.starts_with("From MAILER-DAEMON ") && l.ends_with(" 1970\n"),
            "{l}"
        );
    }
}
