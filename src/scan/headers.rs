//! Header fixing: what scanning adds to and removes from every message.
//!
//! Added when missing: `Message-ID: <ID@host_name>`, `Date:` (local zone,
//! the time the message was received), `From:` (full name and the sender,
//! or `MAILER-DAEMON@host_name` for the null sender). Always added, on top:
//! `Received:` with the message ID. Always removed: `Bcc:`, `Resent-Bcc:`
//! and `Return-Path:` (the delivering MTA adds the latter).

use crate::addr::Sender;
use crate::message::Header;
use crate::queue::{Envelope, MsgId};
use crate::util::{base64, time};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn is_removed(h: &Header) -> bool {
    h.is("Bcc") || h.is("Resent-Bcc") || h.is("Return-Path")
}

/// A display name as an RFC 5322 phrase: atoms as they are, a quoted string
/// when it has specials, an RFC 2047 encoded word when it is not ASCII.
pub fn display_name(name: &str) -> String {
    let name = name.trim();
    if !name.is_ascii() {
        return format!("=?UTF-8?B?{}?=", base64::encode(name.as_bytes()));
    }
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c));
    if plain {
        return name.to_string();
    }
    let mut q = String::with_capacity(name.len() + 2);
    q.push('"');
    for c in name.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// The `Received:` field for this message (RFC 5321 §4.4).
pub fn received(env: &Envelope, id: &MsgId, host_name: &str) -> Header {
    use std::fmt::Write as _;
    let mut v = String::with_capacity(160);
    v.push_str("from ");
    match &env.helo {
        Some(helo) => {
            v.push_str(helo);
            v.push_str(" (");
            v.push_str(&env.ident);
            v.push(')');
        }
        None => v.push_str(&env.ident),
    }
    v.push_str("\n\tby ");
    v.push_str(host_name);
    v.push_str(" with ");
    let start = v.len();
    v.push_str(&env.protocol);
    if env.protocol.contains("smtp") {
        v[start..].make_ascii_uppercase();
    }
    if let Some(t) = &env.tls {
        v.push_str(" (");
        v.push_str(t);
        v.push(')');
    }
    v.push_str(" (masqmail ");
    v.push_str(VERSION);
    v.push_str(")\n\tid ");
    v.push_str(id.as_str());
    if let [one] = env.rcpts.as_slice() {
        let _ = write!(v, "\n\tfor {}", one.target);
    }
    v.push_str("; ");
    v.push_str(&time::rfc5322(&time::local(env.received)));
    Header::new("Received", &v)
}

/// Fix the header section of a message with envelope `env` and ID `id`.
pub fn fix(headers: Vec<Header>, env: &Envelope, id: &MsgId, host_name: &str) -> Vec<Header> {
    // Received goes first (a trace field); the others after the original
    // fields.
    let mut out = Vec::with_capacity(headers.len() + 4);
    out.push(received(env, id, host_name));
    // Present: Message-ID, Date, From.
    let mut has = [false; 3];
    for h in headers {
        for (k, &name) in ["Message-ID", "Date", "From"].iter().enumerate() {
            has[k] |= h.is(name);
        }
        if !is_removed(&h) {
            out.push(h);
        }
    }
    if !has[0] {
        let mut v = String::from("<");
        v.push_str(id.as_str());
        v.push('@');
        v.push_str(host_name);
        v.push('>');
        out.push(Header::new("Message-ID", &v));
    }
    if !has[1] {
        out.push(Header::new(
            "Date",
            &time::rfc5322(&time::local(env.received)),
        ));
    }
    if !has[2] {
        let addr = match &env.sender {
            Sender::Addr(a) => a.to_string(),
            Sender::Null => format!("MAILER-DAEMON@{host_name}"),
        };
        let value = match env.full_name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => format!("{} <{addr}>", display_name(name)),
            _ => addr,
        };
        out.push(Header::new("From", &value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Address;
    use crate::queue::Rcpt;

    fn env(sender: Sender, name: Option<&str>) -> Envelope {
        Envelope {
            sender,
            full_name: name.map(str::to_string),
            protocol: "local".into(),
            ident: "alice".into(),
            helo: None,
            received: 1_764_103_659,
            body_size: 0,
            rcpts: vec![Rcpt::new(Address::parse("a@x.org", None).unwrap())],
            warned: false,
            tls: None,
        }
    }

    fn names(h: &[Header]) -> Vec<&str> {
        h.iter().map(|h| h.name()).collect()
    }

    #[test]
    fn adds_missing_and_removes_bcc() {
        let id = MsgId::parse("0ABCDEFghi-0001").unwrap();
        let input = vec![
            Header::from_line(b"To: a@x.org").unwrap(),
            Header::from_line(b"Bcc: b@x.org").unwrap(),
            Header::from_line(b"Return-Path: <x@y>").unwrap(),
            Header::from_line(b"Subject: s").unwrap(),
        ];
        let sender = Sender::Addr(Address::parse("alice@h.test", None).unwrap());
        let out = fix(input, &env(sender, Some("Alice, Queen")), &id, "h.test");
        assert_eq!(
            names(&out),
            ["Received", "To", "Subject", "Message-ID", "Date", "From"]
        );
        assert_eq!(out[3].value(), "<0ABCDEFghi-0001@h.test>");
        assert_eq!(out[5].value(), "\"Alice, Queen\" <alice@h.test>");
        let rcv = out[0].value();
        assert!(
            rcv.starts_with("from alice\tby h.test with local (masqmail "),
            "{rcv}"
        );
        assert!(rcv.contains("id 0ABCDEFghi-0001\tfor <a@x.org>;"), "{rcv}");
    }

    #[test]
    fn keeps_present_fields_and_null_sender() {
        let id = MsgId::parse("0ABCDEFghi-0001").unwrap();
        let input = vec![
            Header::from_line(b"Message-ID: <m@x>").unwrap(),
            Header::from_line(b"Date: Mon, 1 Jan 2024 00:00:00 +0000").unwrap(),
        ];
        let out = fix(input, &env(Sender::Null, None), &id, "h.test");
        assert_eq!(names(&out), ["Received", "Message-ID", "Date", "From"]);
        assert_eq!(out[3].value(), "MAILER-DAEMON@h.test");
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("Alice Liddell"), "Alice Liddell");
        assert_eq!(display_name("Dr. Who"), "\"Dr. Who\"");
        assert_eq!(display_name("a\"b"), "\"a\\\"b\"");
        assert_eq!(display_name("Jürgen"), "=?UTF-8?B?SsO8cmdlbg==?=");
    }
}
