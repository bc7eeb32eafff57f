//! The local receiver: `sendmail` and `rmail`, a message on stdin.
//!
//! DESCRIPTION
//!   Reads the header section into memory and streams the body into
//!   queue-in, with explicit limits (`max_size`, `max_line_length`,
//!   `max_headers`, `max_header_size`). Line ends become `\n`; 8-bit data
//!   passes unchanged; NUL is refused. Without `-i` a line holding a single
//!   `.` ends the input. With `-t` the recipients come from To:, Cc: and
//!   Bcc:, and recipients given as arguments are added to them (like
//!   Postfix; nothing a caller named is dropped silently). `rmail` takes
//!   the sender from the leading `From ` line.
//!
//! SECURITY
//!   Input is untrusted: every limit is checked before anything is kept,
//!   and a message is acknowledged (exit 0) only after queue-in committed it.
//!
//! DIAGNOSTICS
//!   One line on stderr and a sysexits code: 64 usage (no recipients,
//!   bad address argument), 65 bad data (NUL, overlong line or header
//!   section, bad address in a header with -t), 69 message too large, 73/74/75
//!   for spool trouble (75: try again, nothing was lost).

use std::io::BufRead;

use log::{debug, info};

use crate::addr::{self, Address, Sender};
use crate::config::Config;
use crate::error::{Exit, Fail};
use crate::message::{Header, HeaderReader, Limits, LineKind};
use crate::queue::queue_in::Incoming;
use crate::queue::{Envelope, MsgId, Rcpt, Spool};

use super::{read_line, LineError};

/// What the command line says about the message.
#[derive(Clone, Debug)]
pub struct Submission {
    pub sender: Sender,
    pub full_name: Option<String>,
    pub recipients: Vec<Address>,
    /// `-t`: take recipients from the header.
    pub extract: bool,
    /// Without `-i`: a lone `.` line ends the input.
    pub dot_ends: bool,
    /// `rmail`: the `From ` line names the sender.
    pub rmail: bool,
    /// Who submitted it, for Received: and the log.
    pub ident: String,
}

fn line_fail(e: LineError) -> Fail {
    match e {
        LineError::Io(e) => Fail::new(Exit::IoErr, format!("reading the message: {e}")),
        other => Fail::new(Exit::DataErr, format!("message refused: {other}")),
    }
}

fn too_large(max: u64) -> Fail {
    Fail::new(
        Exit::Unavailable,
        format!("message refused: larger than the limit of {max} bytes (max_size)"),
    )
}

/// The sender of an rmail `From ` line: `From user date…` or a bang path
/// `From host!user date…` (the last hop's user at its host).
fn rmail_sender(line: &str, host: &str) -> Option<Sender> {
    let tok = line.strip_prefix("From ")?.split_whitespace().next()?;
    if tok == "<>" || tok == "MAILER-DAEMON" {
        return Some(Sender::Null);
    }
    if !tok.contains('@') {
        if let Some((hops, user)) = tok.rsplit_once('!') {
            let last_host = hops.rsplit('!').next().unwrap_or(hops);
            return Address::new(user, last_host).ok().map(Sender::Addr);
        }
    }
    Address::parse(tok, Some(host)).ok().map(Sender::Addr)
}

/// Recipients of the To:, Cc: and Bcc: fields.
fn header_recipients(headers: &[Header], host: &str) -> Result<Vec<Address>, Fail> {
    let mut out = Vec::new();
    for h in headers
        .iter()
        .filter(|h| h.is("To") || h.is("Cc") || h.is("Bcc"))
    {
        let (good, bad) = addr::parse_header_list(&h.value(), Some(host));
        if let Some((text, e)) = bad.first() {
            return Err(Fail::new(
                Exit::DataErr,
                format!("message refused: bad address '{text}' in {}: {e}", h.name()),
            ));
        }
        out.extend(good.into_iter().map(|m| m.addr));
    }
    Ok(out)
}

/// Read a message from `input` and queue it. Returns its ID once it is on
/// disk.
pub fn receive(
    input: &mut impl BufRead,
    mut sub: Submission,
    cfg: &Config,
    spool: &Spool,
) -> Result<MsgId, Fail> {
    let m = &cfg.main;
    let limits = Limits {
        max_line: m.max_line_length,
        max_header_size: m.max_header_size,
        max_headers: m.max_headers,
    };
    let mut reader = HeaderReader::new(limits);
    let mut line = Vec::with_capacity(256);
    let mut size: u64 = 0;
    let mut first = true;
    let mut body_first: Option<Vec<u8>> = None;
    let mut ended = false;

    // The header section.
    loop {
        if !read_line(input, &mut line, limits.max_line).map_err(line_fail)? {
            ended = true;
            break;
        }
        if sub.dot_ends && line == b"." {
            ended = true;
            break;
        }
        if first && line.starts_with(b"From ") {
            first = false;
            if sub.rmail {
                let text = String::from_utf8_lossy(&line);
                sub.sender = rmail_sender(&text, &m.host_name).ok_or_else(|| {
                    Fail::new(Exit::DataErr, format!("rmail: no sender in '{text}'"))
                })?;
            } else {
                debug!("leading 'From ' line dropped");
            }
            continue;
        }
        first = false;
        size += line.len() as u64 + 1;
        if size > m.max_size {
            return Err(too_large(m.max_size));
        }
        match reader.feed(&line) {
            Ok(LineKind::Header) => {}
            Ok(LineKind::EndOfHeaders) => break,
            Ok(LineKind::BodyStart) => {
                body_first = Some(std::mem::take(&mut line));
                break;
            }
            Err(e) => return Err(Fail::new(Exit::DataErr, format!("message refused: {e}"))),
        }
    }
    let headers = reader.finish();

    let mut rcpts = std::mem::take(&mut sub.recipients);
    if sub.extract {
        rcpts.extend(header_recipients(&headers, &m.host_name)?);
    }
    let mut uniq: Vec<Address> = Vec::with_capacity(rcpts.len());
    for r in rcpts {
        if !uniq.contains(&r) {
            uniq.push(r);
        }
    }
    if uniq.is_empty() {
        return Err(Fail::usage(if sub.extract {
            "no recipients: none given and none in To:, Cc: or Bcc:"
        } else {
            "no recipients given (use -t to take them from the header)"
        }));
    }
    if uniq.len() > m.max_recipients {
        return Err(Fail::new(
            Exit::DataErr,
            format!(
                "too many recipients: {} (max_recipients {})",
                uniq.len(),
                m.max_recipients
            ),
        ));
    }

    // The body, streamed into queue-in.
    let spool_err = |e: std::io::Error| Fail::spool_io("cannot queue the message", &e);
    let mut incoming = Incoming::create(spool).map_err(spool_err)?;
    if let Some(l) = body_first {
        incoming.write_body(&l).map_err(spool_err)?;
        incoming.write_body(b"\n").map_err(spool_err)?;
    }
    while !ended {
        if !read_line(input, &mut line, limits.max_line).map_err(line_fail)? {
            ended = true;
            continue;
        }
        if sub.dot_ends && line == b"." {
            ended = true;
            continue;
        }
        size += line.len() as u64 + 1;
        if size > m.max_size {
            return Err(too_large(m.max_size));
        }
        incoming.write_body(&line).map_err(spool_err)?;
        incoming.write_body(b"\n").map_err(spool_err)?;
    }

    let env = Envelope {
        sender: sub.sender,
        full_name: sub.full_name,
        protocol: "local".into(),
        ident: sub.ident,
        helo: None,
        received: crate::util::time::now(),
        body_size: 0,
        rcpts: uniq.into_iter().map(Rcpt::new).collect(),
        warned: false,
        tls: None,
    };
    let sender = env.sender.to_string();
    let ident = env.ident.clone();
    let id = incoming.commit(env, headers).map_err(spool_err)?;
    info!("{id}: received from=<{sender}> user={ident} size={size} protocol=local");
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmail_from_lines() {
        let s = |l: &str| rmail_sender(l, "h.test").map(|s| s.to_string());
        assert_eq!(
            s("From bob Mon Jan 1 00:00:00 2024").as_deref(),
            Some("bob@h.test")
        );
        assert_eq!(s("From a@b.org Mon").as_deref(), Some("a@b.org"));
        assert_eq!(
            s("From uucp!relay!carol Mon").as_deref(),
            Some("carol@relay")
        );
        assert_eq!(s("From <> x").as_deref(), Some(""));
        assert_eq!(s("From "), None);
        assert_eq!(s("From \"bad x"), None);
    }
}
