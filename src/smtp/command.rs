//! command — one SMTP command line, parsed into a typed [`Command`].
//!
//! DESCRIPTION
//!   [`parse`] takes one command line as received (bytes, line end already
//!   removed) and returns a [`Command`] or the [`Response`] that refuses it.
//!   It implements the command syntax of RFC 5321 §4.1.1 and §4.1.2, the
//!   ESMTP parameters of RFC 1870 (SIZE) and RFC 6152 (BODY=8BITMIME), and
//!   the AUTH command of RFC 4954 §4. Paths are typed: [`ReversePath`]
//!   (`<>` or an address) for MAIL, [`ForwardPath`] (`<Postmaster>` or an
//!   address) for RCPT, both built on [`Address`].
//!
//!   Tolerated, because real clients send them: verbs in any case, a space
//!   after the colon (`MAIL FROM: <a@b>`), a path without angle brackets
//!   (`MAIL FROM:a@b`), spaces around the whole line. Not tolerated: an
//!   address without a domain (except `<Postmaster>` at RCPT, RFC 5321
//!   §4.5.1), 8-bit addresses (SMTPUTF8 is not offered, RFC 6531 §3.5).
//!
//! SECURITY
//!   The line is untrusted. Nothing here panics or allocates more than the
//!   line's size; text from the line is echoed in replies only through
//!   [`Response`], which removes control characters. Paths keep what old
//!   mailers read as routing so that policy can refuse it: the obsolete
//!   source route `<@a,@b:user@c>` is parsed into [`SmtpPath::route`]
//!   (RFC 5321 §4.1.2 and Appendix C), the local part stays as received
//!   (unquoted) with `%`, `!` or a quoted `@` in it, and
//!   [`SmtpPath::relay_trick`] names what was found. Nothing here ever
//!   re-parses a local part as an address.
//!
//! DIAGNOSTICS
//!   Errors carry the RFC 5321 §4.2 reply code and an RFC 3463 enhanced
//!   status code: 500 5.5.2 unknown command, 501 5.5.4 bad arguments,
//!   501 5.1.7 / 501 5.1.3 bad sender / recipient syntax, 553 5.6.7 8-bit
//!   address, 555 5.5.4 unknown MAIL or RCPT parameter (RFC 5321 §4.1.1.11).
//!   Replies to HELO and EHLO carry no enhanced code (RFC 2034 §3).

use std::borrow::Cow;

use crate::addr::{check_domain, AddrError, Address, Sender};

use super::server::Response;

/// The longest HELO/EHLO argument kept (a domain, RFC 5321 §4.5.3.1.2).
pub const MAX_HELO: usize = 255;

/// One parsed command (RFC 5321 §4.1.1, RFC 3207, RFC 4954).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `HELO name`: the argument as sent, visible ASCII.
    Helo(String),
    /// `EHLO name`.
    Ehlo(String),
    /// `MAIL FROM:<path> [SIZE=n] [BODY=7BIT|8BITMIME]`.
    Mail {
        from: ReversePath,
        /// The declared size (RFC 1870); `u64::MAX` when the number does
        /// not fit.
        size: Option<u64>,
        body: Option<Body>,
    },
    /// `RCPT TO:<path>`; no RCPT parameters are offered.
    Rcpt {
        to: ForwardPath,
    },
    Data,
    Rset,
    Noop,
    Quit,
    /// `VRFY string` (the string is not kept: VRFY is answered 252).
    Vrfy,
    /// `EXPN string` (refused).
    Expn,
    Help,
    /// RFC 3207.
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 §4).
    Auth {
        mechanism: Mechanism,
        initial: Option<String>,
    },
    /// RFC 3030 chunking, which is not offered.
    Bdat,
    /// A web browser or proxy talking to the SMTP port (`GET`, `POST`,
    /// `CONNECT`, …): the session is ended, as Postfix does, so that a web
    /// page cannot use a browser to speak SMTP (cross-protocol attack).
    Http,
}

/// The BODY parameter of MAIL (RFC 6152).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

/// SASL mechanisms named in AUTH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616.
    Plain,
    /// The widely deployed LOGIN mechanism (draft-murchison-sasl-login).
    Login,
    /// Anything else (refused with 504).
    Other,
}

/// An address as given in MAIL or RCPT, with what policy must see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpPath {
    /// `local@domain`; the local part unquoted, exactly as sent.
    pub addr: Address,
    /// The domains of an obsolete source route (`<@a,@b:u@c>` gives
    /// `["a", "b"]`), lower-cased; empty when there was none.
    pub route: Vec<String>,
    /// The local part was sent as a quoted string.
    pub quoted: bool,
}

/// The argument of MAIL FROM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReversePath {
    /// `<>`, the sender of bounces.
    Null,
    Path(SmtpPath),
}

/// The argument of RCPT TO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForwardPath {
    /// `<Postmaster>` without a domain (RFC 5321 §4.1.1.3, §4.5.1): the
    /// server's own postmaster.
    Postmaster,
    Path(SmtpPath),
}

impl SmtpPath {
    /// What in this path old mailers treat as routing, if anything: a
    /// source route, or `%`, `!` or `@` in the local part (the "percent
    /// hack", UUCP bang paths, a quoted address inside an address).
    pub fn relay_trick(&self) -> Option<&'static str> {
        if !self.route.is_empty() {
            return Some("source route");
        }
        let local = self.addr.local().as_bytes();
        [
            "'@' in local part",
            "'%' in local part",
            "'!' in local part",
        ]
        .into_iter()
        .find(|t| t.as_bytes().get(1).is_some_and(|c| local.contains(c)))
    }
}

impl ReversePath {
    /// The envelope sender; a source route is dropped (RFC 5321 Appendix C:
    /// servers may ignore it).
    pub fn sender(&self) -> Sender {
        match self {
            ReversePath::Null => Sender::Null,
            ReversePath::Path(p) => Sender::Addr(p.addr.clone()),
        }
    }
}

/// Which path a parse is for; decides the enhanced codes (X.1.7 sender,
/// X.1.3 recipient) and what is allowed (`<>` at MAIL, `<Postmaster>` at
/// RCPT).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Sender,
    Recipient,
}

#[inline(never)]
fn syntax(text: &'static str) -> Response {
    Response::new(501, "5.5.4", text)
}

/// The verbs [`parse`] knows, in the order of its match; the last six
/// are HTTP methods.
const VERBS: [&str; 20] = [
    "HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "QUIT", "STARTTLS", "NOOP", "HELP", "VRFY",
    "EXPN", "AUTH", "BDAT", "GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS",
];

/// Parse one command line (without its line end).
#[inline(never)]
pub fn parse(line: &[u8]) -> Result<Command, Response> {
    let line = trim(line);
    let (verb, args) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (
            line.get(..i).unwrap_or(b""),
            trim(line.get(i..).unwrap_or(b"")),
        ),
        None => (line, &b""[..]),
    };
    let Some(i) = VERBS
        .iter()
        .position(|v| verb.eq_ignore_ascii_case(v.as_bytes()))
    else {
        return Err(Response::new(500, "5.5.2", "Command unrecognized"));
    };
    Ok(match i {
        0 | 1 => {
            let name = helo_arg(args, i)?;
            if i == 0 {
                Command::Helo(name)
            } else {
                Command::Ehlo(name)
            }
        }
        2 => return mail(args),
        3 => return rcpt(args),
        4..=7 => {
            if !args.is_empty() {
                const USAGE: [&str; 4] = [
                    "Syntax: DATA",
                    "Syntax: RSET",
                    "Syntax: QUIT",
                    "Syntax: STARTTLS",
                ];
                return Err(syntax(USAGE[i - 4]));
            }
            match i {
                4 => Command::Data,
                5 => Command::Rset,
                6 => Command::Quit,
                _ => Command::StartTls,
            }
        }
        8 => Command::Noop,
        9 => Command::Help,
        10 if args.is_empty() => return Err(syntax("Syntax: VRFY address")),
        10 => Command::Vrfy,
        11 => Command::Expn,
        12 => return auth(args),
        13 => Command::Bdat,
        _ => Command::Http,
    })
}

fn trim(b: &[u8]) -> &[u8] {
    let is_ws = |c: &u8| *c == b' ' || *c == b'\t';
    let start = b.iter().position(|c| !is_ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !is_ws(c)).map_or(start, |i| i + 1);
    b.get(start..end).unwrap_or(b"")
}

/// HELO/EHLO: one or more words of visible ASCII (RFC 5321 wants a domain
/// or address literal; printers and cameras send all sorts of names, so
/// any visible ASCII is kept — it only ever reaches the Received header).
fn helo_arg(args: &[u8], verb: usize) -> Result<String, Response> {
    let ok = !args.is_empty()
        && args.len() <= MAX_HELO
        && args.iter().all(|&b| b == b' ' || b.is_ascii_graphic());
    if !ok {
        let usage = ["Syntax: HELO hostname", "Syntax: EHLO hostname"];
        return Err(Response::without_status(501, usage[verb & 1]));
    }
    // Visible ASCII: always UTF-8.
    Ok(std::str::from_utf8(args).unwrap_or_default().to_string())
}

/// The next word of `s` (words are separated by spaces); `s` keeps the
/// rest after it.
fn word<'a>(s: &mut &'a [u8]) -> Option<&'a [u8]> {
    let rest = s.get(s.iter().position(|&b| b != b' ')?..).unwrap_or(b"");
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    *s = rest.get(end..).unwrap_or(b"");
    rest.get(..end)
}

/// Strip a `FROM:` / `TO:` keyword (any case), and the spaces after it.
fn keyword<'a>(args: &'a [u8], kw: &[u8]) -> Option<&'a [u8]> {
    let head = args.get(..kw.len())?;
    if !head.eq_ignore_ascii_case(kw) {
        return None;
    }
    Some(trim(args.get(kw.len()..).unwrap_or(b"")))
}

fn mail(args: &[u8]) -> Result<Command, Response> {
    let rest = keyword(args, b"FROM:")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| syntax("Syntax: MAIL FROM:<address>"))?;
    let (path, params) = split_path(rest, Role::Sender)?;
    let from = if path.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Path(parse_path(path, Role::Sender)?)
    };
    let mut size = None;
    let mut body = None;
    let mut params = params;
    while let Some(p) = word(&mut params) {
        let (key, value) = match p.iter().position(|&b| b == b'=') {
            Some(i) => (p.get(..i).unwrap_or(b""), p.get(i + 1..)),
            None => (p, None),
        };
        let is = |k: &[u8]| key.eq_ignore_ascii_case(k);
        if is(b"SIZE") {
            match value {
                Some(v) if size.is_none() => size = Some(size_value(v)?),
                _ => return Err(syntax("Bad SIZE parameter")),
            }
        } else if is(b"BODY") {
            body = Some(match value {
                Some(v) if body.is_none() && v.eq_ignore_ascii_case(b"7BIT") => Body::SevenBit,
                Some(v) if body.is_none() && v.eq_ignore_ascii_case(b"8BITMIME") => {
                    Body::EightBitMime
                }
                Some(_) if body.is_none() => {
                    return Err(syntax("Bad BODY parameter (7BIT or 8BITMIME)"))
                }
                _ => return Err(syntax("Bad BODY parameter")),
            });
        } else if is(b"SMTPUTF8") {
            return Err(Response::new(555, "5.5.4", "SMTPUTF8 is not offered"));
        } else {
            return Err(unknown_param(key));
        }
    }
    Ok(Command::Mail { from, size, body })
}

/// RFC 1870 §3: `SIZE=` 1*20DIGIT.
fn size_value(v: &[u8]) -> Result<u64, Response> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return Err(syntax("Bad SIZE parameter"));
    }
    Ok(v.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// `key` is shown upper-cased.
fn unknown_param(key: &[u8]) -> Response {
    let mut text = String::from("Unsupported parameter ");
    for c in String::from_utf8_lossy(key).chars().take(32) {
        text.push(c.to_ascii_uppercase());
    }
    Response::new(555, "5.5.4", text)
}

fn rcpt(args: &[u8]) -> Result<Command, Response> {
    let rest = keyword(args, b"TO:").ok_or_else(|| syntax("Syntax: RCPT TO:<address>"))?;
    let (path, params) = split_path(rest, Role::Recipient)?;
    let mut params = params;
    if let Some(p) = word(&mut params) {
        let key = p
            .iter()
            .position(|&b| b == b'=')
            .map_or(p, |i| p.get(..i).unwrap_or(b""));
        return Err(unknown_param(key));
    }
    if path.eq_ignore_ascii_case(b"postmaster") {
        return Ok(Command::Rcpt {
            to: ForwardPath::Postmaster,
        });
    }
    if path.is_empty() {
        return Err(bad_path(Role::Recipient, &"empty recipient address"));
    }
    Ok(Command::Rcpt {
        to: ForwardPath::Path(parse_path(path, Role::Recipient)?),
    })
}

fn bad_path(role: Role, why: &dyn std::fmt::Display) -> Response {
    let (status, what) = match role {
        Role::Sender => ("5.1.7", "sender"),
        Role::Recipient => ("5.1.3", "recipient"),
    };
    Response::new(501, status, format!("Bad {what} address syntax: {why}"))
}

/// Split `<path> params` into the path's inside and the parameters. A `>`
/// inside a quoted string does not close the path. Without `<`, the first
/// word is the path (a tolerated client error).
fn split_path(s: &[u8], role: Role) -> Result<(&[u8], &[u8]), Response> {
    let Some(inner) = s.strip_prefix(b"<") else {
        return Ok(match s.iter().position(|&b| b == b' ') {
            Some(i) => (s.get(..i).unwrap_or(b""), s.get(i..).unwrap_or(b"")),
            None => (s, &b""[..]),
        });
    };
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in inner.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == b'>' && !quoted {
            let rest = inner.get(i + 1..).unwrap_or(b"");
            if !rest.is_empty() && !rest.starts_with(b" ") {
                return Err(bad_path(role, &"text after '>'"));
            }
            return Ok((inner.get(..i).unwrap_or(b""), rest));
        }
    }
    Err(bad_path(role, &"missing '>'"))
}

/// Parse the inside of `<…>`: `[@a,@b:]local@domain` (RFC 5321 §4.1.2).
fn parse_path(path: &[u8], role: Role) -> Result<SmtpPath, Response> {
    let s = match std::str::from_utf8(path) {
        Ok(s) if s.is_ascii() => s,
        _ => {
            return Err(Response::new(
                553,
                "5.6.7",
                "Non-ASCII addresses need SMTPUTF8, which is not offered",
            ))
        }
    };
    let (route, mailbox, addr) = source_route(s)
        .and_then(|(route, mailbox)| Ok((route, mailbox, Address::parse(mailbox, None)?)))
        .map_err(|e| bad_path(role, &e))?;
    Ok(SmtpPath {
        addr,
        route,
        quoted: mailbox.starts_with('"'),
    })
}

/// Split off an obsolete source route: `@a,@b:` followed by the mailbox.
/// Domains may be address literals, which contain `:`.
fn source_route(s: &str) -> Result<(Vec<String>, &str), AddrError> {
    let mut route = Vec::new();
    let mut rest = s;
    while let Some(after_at) = rest.strip_prefix('@') {
        let end = if after_at.starts_with('[') {
            after_at
                .find(']')
                .map(|i| i + 1)
                .ok_or(AddrError::Unterminated("address literal"))?
        } else {
            after_at.find([',', ':']).unwrap_or(after_at.len())
        };
        let (domain, tail) = after_at.split_at(end);
        check_domain(domain)?;
        route.push(domain.to_ascii_lowercase());
        if route.len() > 16 {
            return Err(AddrError::TooLong);
        }
        rest = if let Some(t) = tail.strip_prefix(',') {
            t
        } else if let Some(t) = tail.strip_prefix(':') {
            return Ok((route, t));
        } else {
            return Err(AddrError::Unterminated("source route"));
        };
    }
    if route.is_empty() {
        Ok((route, s))
    } else {
        Err(AddrError::Unterminated("source route"))
    }
}

/// `AUTH mechanism [initial-response]` (RFC 4954 §4).
fn auth(args: &[u8]) -> Result<Command, Response> {
    let mut args = args;
    let mech = word(&mut args).ok_or_else(|| syntax("Syntax: AUTH mechanism"))?;
    let initial = word(&mut args);
    if word(&mut args).is_some() {
        return Err(syntax("Syntax: AUTH mechanism [initial-response]"));
    }
    let mechanism = if mech.eq_ignore_ascii_case(b"PLAIN") {
        Mechanism::Plain
    } else if mech.eq_ignore_ascii_case(b"LOGIN") {
        Mechanism::Login
    } else {
        Mechanism::Other
    };
    let initial = match initial.map(std::str::from_utf8) {
        None => None,
        Some(Ok(w)) if w.is_ascii() => Some(w.to_string()),
        Some(_) => {
            return Err(Response::new(
                501,
                "5.5.2",
                Cow::Borrowed("Cannot decode AUTH response"),
            ))
        }
    };
    Ok(Command::Auth { mechanism, initial })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> SmtpPath {
        SmtpPath {
            addr: Address::parse(s, None).unwrap(),
            route: Vec::new(),
            quoted: false,
        }
    }

    fn mail_from(s: &str) -> Command {
        Command::Mail {
            from: ReversePath::Path(path(s)),
            size: None,
            body: None,
        }
    }

    fn rcpt_to(s: &str) -> Command {
        Command::Rcpt {
            to: ForwardPath::Path(path(s)),
        }
    }

    #[test]
    fn commands_that_parse() {
        let table: Vec<(&str, Command)> = vec![
            ("HELO printer", Command::Helo("printer".into())),
            ("ehlo [192.168.1.5]", Command::Ehlo("[192.168.1.5]".into())),
            ("EHLO  nas_01.lan ", Command::Ehlo("nas_01.lan".into())),
            ("MAIL FROM:<a@b.org>", mail_from("a@b.org")),
            ("mail from:<a@b.org>", mail_from("a@b.org")),
            ("MAIL FROM: <a@b.org>", mail_from("a@b.org")),
            ("MAIL FROM:a@b.org", mail_from("a@b.org")),
            (
                "MAIL FROM:<> SIZE=1000 BODY=8bitmime",
                Command::Mail {
                    from: ReversePath::Null,
                    size: Some(1000),
                    body: Some(Body::EightBitMime),
                },
            ),
            (
                "MAIL FROM:<a@b.org> body=7BIT",
                Command::Mail {
                    from: ReversePath::Path(path("a@b.org")),
                    size: None,
                    body: Some(Body::SevenBit),
                },
            ),
            (
                "MAIL FROM:<> SIZE=99999999999999999999",
                Command::Mail {
                    from: ReversePath::Null,
                    size: Some(u64::MAX),
                    body: None,
                },
            ),
            ("RCPT TO:<c@d.org>", rcpt_to("c@d.org")),
            ("Rcpt To: <c@D.ORG>", rcpt_to("c@d.org")),
            (
                "RCPT TO:<Postmaster>",
                Command::Rcpt {
                    to: ForwardPath::Postmaster,
                },
            ),
            ("DATA", Command::Data),
            ("rset", Command::Rset),
            ("NOOP anything", Command::Noop),
            ("QUIT", Command::Quit),
            ("VRFY root", Command::Vrfy),
            ("EXPN staff", Command::Expn),
            ("HELP", Command::Help),
            ("STARTTLS", Command::StartTls),
            ("BDAT 100 LAST", Command::Bdat),
            ("GET / HTTP/1.1", Command::Http),
            (
                "AUTH plain AGEAYg==",
                Command::Auth {
                    mechanism: Mechanism::Plain,
                    initial: Some("AGEAYg==".into()),
                },
            ),
            (
                "AUTH LOGIN",
                Command::Auth {
                    mechanism: Mechanism::Login,
                    initial: None,
                },
            ),
            (
                "AUTH cram-md5",
                Command::Auth {
                    mechanism: Mechanism::Other,
                    initial: None,
                },
            ),
        ];
        for (line, want) in table {
            assert_eq!(parse(line.as_bytes()), Ok(want), "{line}");
        }
    }

    #[test]
    fn commands_that_fail() {
        let long_helo = format!("HELO {}", "a".repeat(300));
        let table: Vec<(&str, &str)> = vec![
            ("", "500 5.5.2"),
            ("FOO", "500 5.5.2"),
            ("MAILFROM:<a@b.org>", "500 5.5.2"),
            ("HELO", "501 Syntax"),
            ("EHLO a\x01b", "501 Syntax"),
            (&long_helo, "501 Syntax"),
            ("MAIL TO:<a@b.org>", "501 5.5.4"),
            ("MAIL FROM:", "501 5.5.4"),
            ("MAIL FROM: ", "501 5.5.4"),
            ("MAIL FROM:<a@b.org", "501 5.1.7"),
            ("MAIL FROM:<a@b.org>x", "501 5.1.7"),
            ("MAIL FROM:<root>", "501 5.1.7"),
            ("MAIL FROM:<a@b@c>", "501 5.1.7"),
            ("MAIL FROM:<a@b.org> SIZE=x", "501 5.5.4"),
            ("MAIL FROM:<a@b.org> SIZE=", "501 5.5.4"),
            ("MAIL FROM:<a@b.org> SIZE=1 SIZE=2", "501 5.5.4"),
            ("MAIL FROM:<a@b.org> BODY=BINARYMIME", "501 5.5.4"),
            ("MAIL FROM:<a@b.org> SMTPUTF8", "555 5.5.4"),
            ("MAIL FROM:<a@b.org> RET=HDRS", "555 5.5.4"),
            ("MAIL FROM:<j\u{f6}rg@b.org>", "553 5.6.7"),
            ("RCPT TO:<>", "501 5.1.3"),
            ("RCPT TO:<root>", "501 5.1.3"),
            ("RCPT TO:<c@d.org> NOTIFY=NEVER", "555 5.5.4"),
            ("RCPT TO:<@a.org:>", "501 5.1.3"),
            ("RCPT TO:<@a.org,c@d.org>", "501 5.1.3"),
            ("RCPT TO:<@a.org>", "501 5.1.3"),
            ("DATA now", "501 5.5.4"),
            ("QUIT please", "501 5.5.4"),
            ("STARTTLS x", "501 5.5.4"),
            ("VRFY", "501 5.5.4"),
            ("AUTH", "501 5.5.4"),
            ("AUTH PLAIN a b", "501 5.5.4"),
        ];
        for (line, want) in table {
            let got = parse(line.as_bytes()).expect_err(line).render();
            assert!(got.starts_with(want), "{line:?}: {got:?}");
        }
        assert!(parse(b"MAIL FROM:<a@b.org> \xff").is_err());
        assert!(parse(b"\xff\xfe").is_err());
    }

    #[test]
    fn paths_keep_what_policy_must_see() {
        let table: &[(&str, &str, &[&str], Option<&str>)] = &[
            ("<u@c.org>", "u@c.org", &[], None),
            (
                "<@a.org,@b.org:u@c.org>",
                "u@c.org",
                &["a.org", "b.org"],
                Some("source route"),
            ),
            (
                "<@[IPv6:::1]:u@c.org>",
                "u@c.org",
                &["[ipv6:::1]"],
                Some("source route"),
            ),
            (
                "<u%other.org@c.org>",
                "u%other.org@c.org",
                &[],
                Some("'%' in local part"),
            ),
            (
                "<host!u@c.org>",
                "host!u@c.org",
                &[],
                Some("'!' in local part"),
            ),
            (
                "<\"u@other.org\"@c.org>",
                "\"u@other.org\"@c.org",
                &[],
                Some("'@' in local part"),
            ),
            ("<\"a>b\"@c.org>", "\"a>b\"@c.org", &[], None),
        ];
        for (arg, addr, route, trick) in table {
            let line = format!("RCPT TO:{arg}");
            let Ok(Command::Rcpt {
                to: ForwardPath::Path(p),
            }) = parse(line.as_bytes())
            else {
                panic!("{line}");
            };
            assert_eq!(p.addr.to_string(), *addr, "{line}");
            assert_eq!(p.route, *route, "{line}");
            assert_eq!(p.relay_trick(), *trick, "{line}");
        }
        let Ok(Command::Rcpt {
            to: ForwardPath::Path(p),
        }) = parse(b"RCPT TO:<\"u@o\"@c.org>")
        else {
            panic!()
        };
        assert!(p.quoted);
        assert_eq!(p.addr.local(), "u@o");
    }

    #[test]
    fn garbage_never_panics() {
        let tokens: &[&[u8]] = &[
            b"MAIL", b"RCPT", b"FROM:", b"TO:", b"<", b">", b"@", b"\"", b"\\", b" ", b"a",
            b"SIZE=", b"9", b"BODY=", b":", b",", b"[", b"]", b"\xff", b"\0", b"AUTH", b"=",
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20000 {
            let mut line = Vec::new();
            for _ in 0..(x % 12) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                line.extend_from_slice(tokens[(x % tokens.len() as u64) as usize]);
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if let Err(r) = parse(&line) {
                let text = r.render();
                assert!(text.ends_with("\r\n") && !text[..text.len() - 2].contains(['\r', '\n']));
            }
        }
    }
}
