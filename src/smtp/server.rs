//! server — the SMTP server side: replies (the session follows).
//!
//! DESCRIPTION
//!   [`Response`] is one reply line: RFC 5321 §4.2 code, RFC 3463 enhanced
//!   status code, text.
//!
//! SECURITY
//!   Reply text may echo client input: rendering replaces control and
//!   non-ASCII characters and bounds the length.

use std::borrow::Cow;
use std::fmt::Write as _;

/// One reply: code, RFC 3463 enhanced status (absent for the greeting,
/// HELO/EHLO and 3xx replies), text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub status: Option<&'static str>,
    pub text: Cow<'static, str>,
}

impl Response {
    pub fn new(code: u16, status: &'static str, text: impl Into<Cow<'static, str>>) -> Response {
        Response {
            code,
            status: Some(status),
            text: text.into(),
        }
    }

    /// A reply without an enhanced status code.
    pub fn without_status(code: u16, text: impl Into<Cow<'static, str>>) -> Response {
        Response {
            code,
            status: None,
            text: text.into(),
        }
    }

    /// The reply line with CRLF. Control and non-ASCII characters of the
    /// text (which may echo client input) become `?`, and the text is cut
    /// to keep the line under RFC 5321's 512 octets.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(self.text.len() + 16);
        let _ = write!(s, "{}", self.code);
        if let Some(st) = self.status {
            let _ = write!(s, " {st}");
        }
        s.push(' ');
        for c in self.text.chars().take(400) {
            s.push(if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            });
        }
        s.push_str("\r\n");
        s
    }
}
