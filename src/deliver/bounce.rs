//! Bounces and delay warnings: RFC 3464 delivery status notifications.
//!
//! DESCRIPTION
//!   A notice is a `multipart/report; report-type=delivery-status` message
//!   (RFC 6522) with a human-readable part, a `message/delivery-status`
//!   part (RFC 3464 §2) per failed recipient and the original header
//!   section as `text/rfc822-headers`. It is sent with the null sender and
//!   goes through queue-in and scanning like any message.
//!
//!   A notice about a message that itself had the null sender (a bounce of
//!   a bounce) is never sent back: it goes to `postmaster` once, marked as
//!   a double bounce; if that fails too, it is logged and dropped.

use std::fmt::Write as _;
use std::io;

use log::{error, info};

use crate::addr::{Address, Sender};
use crate::config::Config;
use crate::message::Header;
use crate::queue::queue_in::Incoming;
use crate::queue::{Envelope, HeaderFile, MsgId, Rcpt, Spool};
use crate::util::time;

/// The ident of notices, so a notice about a notice is recognised.
pub const BOUNCE_IDENT: &str = "masqmail (delivery notice)";
pub const DOUBLE_BOUNCE_IDENT: &str = "masqmail (double bounce)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Delivery failed for good.
    Failure,
    /// Delivery is delayed (delay_warning).
    Delay,
}

/// The status code (RFC 3463) found in an error text, or a fitting default.
fn status_of(error: &str, kind: Kind) -> &str {
    for w in error.split_whitespace() {
        if is_status(w.as_bytes()) {
            return w;
        }
    }
    match kind {
        Kind::Failure => "5.0.0",
        Kind::Delay => "4.0.0",
    }
}

/// `CLASS.SUBJECT.DETAIL`: class 2, 4 or 5, then two numbers of 1 to 3
/// digits.
fn is_status(w: &[u8]) -> bool {
    let (Some(b'2' | b'4' | b'5'), Some(b'.')) = (w.first(), w.get(1)) else {
        return false;
    };
    let (mut dots, mut run) = (0, 0);
    for &b in &w[2..] {
        if b == b'.' && run > 0 && dots == 0 {
            dots = 1;
            run = 0;
        } else if b.is_ascii_digit() && run < 3 {
            run += 1;
        } else {
            return false;
        }
    }
    dots == 1 && run > 0
}

fn is_smtp_reply(error: &str) -> bool {
    let b = error.as_bytes();
    b.len() >= 3 && b[..3].iter().all(u8::is_ascii_digit)
}

/// The Diagnostic-Code field's value (RFC 3464 §2.3.6), as its type and
/// text: `smtp; REPLY` with the remote server's reply exactly as it came
/// (without the `(in reply to COMMAND)` the queue's error text adds), or
/// `X-masqmail; TEXT` for a failure found here (a lost connection, a
/// refused connect, a TLS or DNS problem, an MDA's exit code).
fn diagnostic_code(error: &str) -> Option<(&'static str, &str)> {
    if error.is_empty() {
        return None;
    }
    if is_smtp_reply(error) {
        // The last " (in reply to " of a text ending in ')'.
        const IRT: &[u8] = b" (in reply to ";
        let b = error.as_bytes();
        if b.ends_with(b")") {
            let mut i = b.len() - 1;
            while i > 0 {
                i -= 1;
                if b[i..b.len() - 1].starts_with(IRT) {
                    return Some(("smtp", error.get(..i).unwrap_or(error)));
                }
            }
        }
    }
    Some(("X-masqmail", error))
}

/// The start of a MIME part of the notice.
fn part(b: &mut String, boundary: &str, desc: &str, ctype: &str) {
    let _ = write!(
        b,
        "\n--{boundary}\nContent-Description: {desc}\nContent-Type: {ctype}\n\n"
    );
}

/// A recipient as the notice names it: the address, or `|command`.
fn put_target(b: &mut String, r: &Rcpt) {
    b.push_str(&r.target.text());
}

/// Queue a notice about `rcpts` of message `id`. Returns the notice's ID,
/// or None when none is sent (a double bounce that failed again).
#[inline(never)]
pub fn queue_notice(
    cfg: &Config,
    spool: &Spool,
    id: &MsgId,
    hf: &HeaderFile,
    rcpts: &[&Rcpt],
    kind: Kind,
) -> io::Result<Option<MsgId>> {
    let host = &cfg.main.host_name;
    let (to, ident) = match &hf.env.sender {
        Sender::Addr(a) => (a.clone(), BOUNCE_IDENT),
        Sender::Null if hf.env.ident == DOUBLE_BOUNCE_IDENT => {
            error!("{id}: double bounce to postmaster failed too; dropped");
            return Ok(None);
        }
        Sender::Null if kind == Kind::Delay => return Ok(None),
        Sender::Null => match Address::new("postmaster", host) {
            Ok(a) => (a, DOUBLE_BOUNCE_IDENT),
            Err(_) => return Ok(None),
        },
    };
    let now = time::now();
    let date = time::rfc5322(&time::local(now));
    let boundary = format!("{id}/{host}");
    let subject = match kind {
        Kind::Failure => "Undelivered Mail Returned to Sender",
        Kind::Delay => "Delayed Mail (still being retried)",
    };
    let from = format!("Mail Delivery System <MAILER-DAEMON@{host}>");
    let to_field = format!("<{to}>");
    let ctype =
        format!("multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"");
    let fields: [(&str, &str); 7] = [
        ("From", &from),
        ("To", &to_field),
        ("Subject", subject),
        ("Date", &date),
        ("Auto-Submitted", "auto-replied"),
        ("MIME-Version", "1.0"),
        ("Content-Type", &ctype),
    ];
    let mut headers = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        headers.push(Header::new(name, value));
    }
    let mut body = String::from("This is a MIME-encapsulated message.\n");
    part(
        &mut body,
        &boundary,
        "Notification",
        "text/plain; charset=us-ascii",
    );
    let _ = write!(
        body,
        "This is the mail system at host {host}.\n\n{}",
        match kind {
            Kind::Failure => {
                "Your message could not be delivered to one or more recipients.\n\
                 It is attached below.\n\n"
            }
            Kind::Delay => {
                "Your message could not be delivered yet. It is still queued and\n\
                 delivery will be retried; you do not need to send it again.\n\n"
            }
        }
    );
    for r in rcpts {
        let name = r
            .orig
            .as_ref()
            .map_or_else(|| r.target.text(), |o| o.to_string());
        let _ = writeln!(
            body,
            "<{name}>: {}",
            crate::queue::spoolfile::clean(&r.error)
        );
    }
    part(
        &mut body,
        &boundary,
        "Delivery report",
        "message/delivery-status",
    );
    let _ = writeln!(
        body,
        "Reporting-MTA: dns; {host}\nX-Masqmail-Queue-ID: {id}\nArrival-Date: {}",
        time::rfc5322(&time::local(hf.env.received))
    );
    let action = match kind {
        Kind::Failure => "failed",
        Kind::Delay => "delayed",
    };
    for r in rcpts {
        body.push('\n');
        if let Some(o) = &r.orig {
            let _ = writeln!(body, "Original-Recipient: rfc822; {o}");
        }
        let error = crate::queue::spoolfile::clean(&r.error);
        body.push_str("Final-Recipient: rfc822; ");
        put_target(&mut body, r);
        let _ = writeln!(
            body,
            "\nAction: {action}\nStatus: {}",
            status_of(&error, kind)
        );
        if let Some((kind, text)) = diagnostic_code(&error) {
            let _ = writeln!(body, "Diagnostic-Code: {kind}; {text}");
        }
        let _ = writeln!(body, "Last-Attempt-Date: {date}");
    }
    part(
        &mut body,
        &boundary,
        "Undelivered Message Headers",
        "text/rfc822-headers",
    );
    let mut bytes = body.into_bytes();
    for h in &hf.headers {
        bytes.extend_from_slice(h.raw());
    }
    bytes.extend_from_slice(b"\n--");
    bytes.extend_from_slice(boundary.as_bytes());
    bytes.extend_from_slice(b"--\n");

    let mut incoming = Incoming::create(spool)?;
    incoming.write_body(&bytes)?;
    let env = Envelope {
        sender: Sender::Null,
        full_name: None,
        protocol: "local".into(),
        ident: ident.into(),
        helo: None,
        received: now,
        body_size: 0,
        rcpts: vec![Rcpt::new(to.clone())],
        warned: false,
        tls: None,
    };
    let nid = incoming.commit(env, headers)?;
    info!(
        "{id}: {} notice {nid} queued for <{to}>",
        if kind == Kind::Failure {
            "bounce"
        } else {
            "delay"
        }
    );
    Ok(Some(nid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(
            status_of("550 5.1.1 <x>: no such user", Kind::Failure),
            "5.1.1"
        );
        assert_eq!(status_of("connection refused", Kind::Failure), "5.0.0");
        assert_eq!(status_of("451 4.7.1 try later", Kind::Delay), "4.7.1");
        assert_eq!(status_of("version 1.2.3", Kind::Delay), "4.0.0");
        for (w, ok) in [
            ("5.1.1", true),
            ("4.123.999", true),
            ("2.0.0", true),
            ("3.1.1", false),
            ("5.1", false),
            ("5.1.1.1", false),
            ("5..1", false),
            ("5.1.", false),
            ("5.1234.1", false),
            ("55.1.1", false),
            ("5.a.1", false),
        ] {
            assert_eq!(is_status(w.as_bytes()), ok, "{w}");
        }
        assert!(is_smtp_reply("550 x") && !is_smtp_reply("no"));
    }

    #[test]
    fn diagnostic_codes() {
        assert_eq!(
            diagnostic_code("550 5.1.1 <x@y>: no such user (in reply to RCPT TO)"),
            Some(("smtp", "550 5.1.1 <x@y>: no such user"))
        );
        assert_eq!(
            diagnostic_code("554 5.7.1 (spam) rejected (in reply to end of DATA)"),
            Some(("smtp", "554 5.7.1 (spam) rejected"))
        );
        // made up here, not by a server
        assert_eq!(
            diagnostic_code("451 4.4.2 connection lost (at end of DATA)"),
            Some(("X-masqmail", "451 4.4.2 connection lost (at end of DATA)"))
        );
        assert_eq!(
            diagnostic_code("/usr/bin/procmail exited 67"),
            Some(("X-masqmail", "/usr/bin/procmail exited 67"))
        );
        assert_eq!(diagnostic_code(""), None);
    }
}
