//! addr — mail addresses as typed values.
//!
//! DESCRIPTION
//!   An [`Address`] is only had by parsing: a local part (RFC 5321 §4.1.2
//!   dot-string or quoted string) and a domain (dot-separated labels or an
//!   address literal `[…]`). [`Sender`] adds the null reverse-path `<>`.
//!   [`parse_header_list`] reads the address lists of `To:`, `Cc:`, `Bcc:`
//!   and `From:` (RFC 5322 §3.4: display names, comments, groups).
//!
//! SECURITY
//!   Every input is untrusted: lengths are bounded (local part 64, domain
//!   255, whole address 254, RFC 5321 §4.5.3.1), control characters and
//!   NUL are refused, nothing panics. The rendering for the spool and for
//!   SMTP is [`Address::fmt`] (`local@domain`, local part re-quoted when it
//!   needs quotes).

use std::fmt;

pub const MAX_LOCAL: usize = 64;
pub const MAX_DOMAIN: usize = 255;
pub const MAX_ADDRESS: usize = 254;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    local: String,
    domain: String,
}

/// The envelope sender: an address, or the null sender `<>` of bounces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sender {
    Null,
    Addr(Address),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddrError {
    Empty,
    TooLong,
    LocalTooLong,
    DomainTooLong,
    Unterminated(&'static str),
    BadChar(char),
    BadDomain,
    MissingDomain,
    TrailingGarbage,
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrError::Empty => f.write_str("empty address"),
            // MAX_ADDRESS, MAX_LOCAL and MAX_DOMAIN, written out: static
            // texts need no formatting code (a test checks them).
            AddrError::TooLong => f.write_str("address longer than 254 characters"),
            AddrError::LocalTooLong => f.write_str("local part longer than 64 characters"),
            AddrError::DomainTooLong => f.write_str("domain longer than 255 characters"),
            AddrError::Unterminated(what) => write!(f, "unterminated {what}"),
            AddrError::BadChar(c) if c.is_control() => {
                write!(f, "control character {:#04x} in address", *c as u32)
            }
            AddrError::BadChar(c) => write!(f, "unexpected character '{c}' in address"),
            AddrError::BadDomain => f.write_str("malformed domain"),
            AddrError::MissingDomain => f.write_str("address has no domain"),
            AddrError::TrailingGarbage => f.write_str("unexpected text after the address"),
        }
    }
}

/// RFC 5322 `atext`.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Check a domain: labels of letters, digits, `-` and `_`, 1–63 characters,
/// or an address literal `[…]`.
pub fn check_domain(d: &str) -> Result<(), AddrError> {
    if d.is_empty() {
        return Err(AddrError::MissingDomain);
    }
    if d.len() > MAX_DOMAIN {
        return Err(AddrError::DomainTooLong);
    }
    if let Some(lit) = d.strip_prefix('[') {
        let inner = lit
            .strip_suffix(']')
            .ok_or(AddrError::Unterminated("address literal"))?;
        let ok = !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:-".contains(c));
        return if ok {
            Ok(())
        } else {
            Err(AddrError::BadDomain)
        };
    }
    let d = d.strip_suffix('.').unwrap_or(d);
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 || !label.chars().all(is_label_char) {
            return Err(AddrError::BadDomain);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(AddrError::BadDomain);
        }
    }
    Ok(())
}

/// A cursor over an address string.
struct Scan<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos..).and_then(|r| r.chars().next())
    }
    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    /// RFC 5321 Local-part: Dot-string / Quoted-string. Returns the local
    /// part unquoted.
    fn local_part(&mut self) -> Result<String, AddrError> {
        let mut out = String::new();
        if self.peek() == Some('"') {
            self.bump();
            loop {
                match self.bump() {
                    None => return Err(AddrError::Unterminated("quoted string")),
                    Some('"') => break,
                    Some('\\') => match self.bump() {
                        None => return Err(AddrError::Unterminated("quoted string")),
                        Some(c) if c.is_control() && c != '\t' => {
                            return Err(AddrError::BadChar(c))
                        }
                        Some(c) => out.push(c),
                    },
                    Some(c) if c.is_control() && c != '\t' => return Err(AddrError::BadChar(c)),
                    Some(c) if !c.is_ascii() => return Err(AddrError::BadChar(c)),
                    Some(c) => out.push(c),
                }
                if out.len() > MAX_LOCAL {
                    return Err(AddrError::LocalTooLong);
                }
            }
            return Ok(out);
        }
        let mut prev_dot = true;
        while let Some(c) = self.peek() {
            if is_atext(c) {
                prev_dot = false;
            } else if c == '.' {
                if prev_dot {
                    return Err(AddrError::BadChar('.'));
                }
                prev_dot = true;
            } else {
                break;
            }
            out.push(c);
            self.bump();
            if out.len() > MAX_LOCAL {
                return Err(AddrError::LocalTooLong);
            }
        }
        if out.is_empty() {
            return match self.peek() {
                None => Err(AddrError::Empty),
                Some(c) => Err(AddrError::BadChar(c)),
            };
        }
        if prev_dot {
            return Err(AddrError::BadChar('.'));
        }
        Ok(out)
    }

    fn domain(&mut self) -> Result<String, AddrError> {
        let start = self.pos;
        if self.peek() == Some('[') {
            while let Some(c) = self.bump() {
                if c == ']' {
                    break;
                }
            }
        } else {
            while matches!(self.peek(), Some(c) if is_label_char(c) || c == '.') {
                self.bump();
            }
        }
        let d = self.s.get(start..self.pos).unwrap_or("");
        if d.is_empty() {
            return match self.peek() {
                None => Err(AddrError::MissingDomain),
                Some(c) => Err(AddrError::BadChar(c)),
            };
        }
        check_domain(d)?;
        Ok(d.to_ascii_lowercase())
    }
}

impl Address {
    /// Build from parts that are already checked (used by parsers here and
    /// by alias expansion with a local user name).
    pub fn new(local: &str, domain: &str) -> Result<Address, AddrError> {
        if local.is_empty() {
            return Err(AddrError::Empty);
        }
        if local.len() > MAX_LOCAL {
            return Err(AddrError::LocalTooLong);
        }
        if let Some(c) = local.chars().find(|c| c.is_control() || !c.is_ascii()) {
            return Err(AddrError::BadChar(c));
        }
        check_domain(domain)?;
        let a = Address {
            local: local.to_string(),
            domain: domain.to_ascii_lowercase(),
        };
        if a.to_string().len() > MAX_ADDRESS {
            return Err(AddrError::TooLong);
        }
        Ok(a)
    }

    /// Parse `local@domain`, optionally in angle brackets; an address with
    /// no domain is qualified with `default_domain` when one is given.
    pub fn parse(s: &str, default_domain: Option<&str>) -> Result<Address, AddrError> {
        let t = s.trim();
        if t.len() > MAX_ADDRESS + 2 {
            return Err(AddrError::TooLong);
        }
        let t = match t.strip_prefix('<') {
            Some(inner) => inner
                .strip_suffix('>')
                .ok_or(AddrError::Unterminated("<"))?,
            None => t,
        };
        let mut sc = Scan { s: t, pos: 0 };
        let local = sc.local_part()?;
        let domain = match sc.peek() {
            Some('@') => {
                sc.bump();
                sc.domain()?
            }
            None => match default_domain {
                Some(d) => d.to_ascii_lowercase(),
                None => return Err(AddrError::MissingDomain),
            },
            Some(c) => return Err(AddrError::BadChar(c)),
        };
        if !sc.rest().is_empty() {
            return Err(AddrError::TrailingGarbage);
        }
        Address::new(&local, &domain)
    }

    pub fn local(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    fn local_needs_quotes(&self) -> bool {
        self.local.starts_with('.')
            || self.local.ends_with('.')
            || self.local.contains("..")
            || !self.local.chars().all(|c| is_atext(c) || c == '.')
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.local_needs_quotes() {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        } else {
            f.write_str(&self.local)?;
        }
        write!(f, "@{}", self.domain)
    }
}

impl Sender {
    /// Parse a sender: `<>` is the null sender; anything else an address.
    pub fn parse(s: &str, default_domain: Option<&str>) -> Result<Sender, AddrError> {
        if s.trim() == "<>" {
            return Ok(Sender::Null);
        }
        Address::parse(s, default_domain).map(Sender::Addr)
    }
}

impl fmt::Display for Sender {
    /// The form inside `<…>`: empty for the null sender.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sender::Null => Ok(()),
            Sender::Addr(a) => a.fmt(f),
        }
    }
}

/// One mailbox found in a header address list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub addr: Address,
}

/// Split an RFC 5322 address list (the value of To:, Cc:, Bcc:, From:) into
/// mailboxes. Display names, comments and groups are understood; each
/// element that is not a valid address is returned as an error with its
/// text, the others are still returned.
pub fn parse_header_list(
    value: &str,
    default_domain: Option<&str>,
) -> (Vec<Mailbox>, Vec<(String, AddrError)>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for elem in split_list(value) {
        let elem = elem.trim();
        if elem.is_empty() {
            continue;
        }
        match parse_mailbox(elem, default_domain) {
            Ok(Some(m)) => good.push(m),
            Ok(None) => {}
            Err(e) => bad.push((elem.to_string(), e)),
        }
    }
    (good, bad)
}

/// Split on commas and group delimiters outside quotes, comments and angle
/// brackets. A group `name: a, b;` yields its members.
fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize; // comment nesting
    let mut in_quote = false;
    let mut in_angle = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if in_quote {
            cur.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        if depth > 0 {
            if c == '\\' {
                chars.next();
            } else if c == '(' {
                depth += 1;
            } else if c == ')' {
                depth -= 1;
            }
            continue;
        }
        match c {
            '"' => {
                in_quote = true;
                cur.push(c);
            }
            '(' => depth = 1,
            '<' => {
                in_angle = true;
                cur.push(c);
            }
            '>' => {
                in_angle = false;
                cur.push(c);
            }
            ',' | ';' if !in_angle => out.push(std::mem::take(&mut cur)),
            ':' if !in_angle => cur.clear(), // group display name
            '\r' | '\n' => cur.push(' '),
            _ => cur.push(c),
        }
    }
    if in_quote {
        // Keep the unterminated text: parse_mailbox reports it.
        out.push(cur);
    } else if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// `Name <addr>` or `addr`; comments are already stripped by split_list.
fn parse_mailbox(elem: &str, default_domain: Option<&str>) -> Result<Option<Mailbox>, AddrError> {
    if let Some(open) = elem.rfind('<') {
        let close = elem[open..].find('>').ok_or(AddrError::Unterminated("<"))? + open;
        if !elem[close + 1..].trim().is_empty() {
            return Err(AddrError::TrailingGarbage);
        }
        let inner = &elem[open + 1..close];
        // "<>" in a header carries no mailbox.
        if inner.trim().is_empty() {
            return Ok(None);
        }
        // Obsolete source route "<@a,@b:user@c>": keep the final address.
        let inner = match inner.rfind(':') {
            Some(i) if inner.starts_with('@') => &inner[i + 1..],
            _ => inner,
        };
        let addr = Address::parse(inner, default_domain)?;
        let name = elem[..open].trim().trim_matches('"').trim();
        let name = (!name.is_empty()).then(|| name.to_string());
        return Ok(Some(Mailbox { name, addr }));
    }
    let addr = Address::parse(elem, default_domain)?;
    Ok(Some(Mailbox { name: None, addr }))
}

/// Does `s` match the shell-style glob `pat` (`*`, `?`), ASCII case
/// ignored? Used by route criteria and address maps. Compared byte by
/// byte: `s` is an address or a local part, which are ASCII (a byte of a
/// non-ASCII pattern character matches no ASCII byte, as the character
/// matched none).
pub fn glob_match(pat: &str, s: &str) -> bool {
    let (p, t) = (pat.as_bytes(), s.as_bytes());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&b) = t.get(ti) {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&b) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_errors_name_the_limits() {
        assert_eq!(
            AddrError::TooLong.to_string(),
            format!("address longer than {MAX_ADDRESS} characters")
        );
        assert_eq!(
            AddrError::LocalTooLong.to_string(),
            format!("local part longer than {MAX_LOCAL} characters")
        );
        assert_eq!(
            AddrError::DomainTooLong.to_string(),
            format!("domain longer than {MAX_DOMAIN} characters")
        );
    }

    #[test]
    fn parses_valid_addresses() {
        let table = [
            ("a@example.org", "a@example.org"),
            ("<a@Example.ORG>", "a@example.org"),
            (
                "  first.last@sub.example.org ",
                "first.last@sub.example.org",
            ),
            ("\"john doe\"@example.org", "\"john doe\"@example.org"),
            ("\"a\\\"b\"@x.org", "\"a\\\"b\"@x.org"),
            ("user+tag@[192.0.2.1]", "user+tag@[192.0.2.1]"),
            ("root", "root@host.test"),
            ("o'neil@example.org", "o'neil@example.org"),
        ];
        for (input, want) in table {
            let a = Address::parse(input, Some("host.test")).unwrap();
            assert_eq!(a.to_string(), want, "{input}");
        }
    }

    #[test]
    fn rejects_bad_addresses() {
        let long = format!("{}@example.org", "a".repeat(300));
        let long_domain = format!("a@{}.org", "b".repeat(250));
        let table: &[(&str, AddrError)] = &[
            ("", AddrError::Empty),
            ("\"unterminated", AddrError::Unterminated("quoted string")),
            ("a@b@<>c", AddrError::TrailingGarbage),
            ("<a@b", AddrError::Unterminated("<")),
            (&long, AddrError::TooLong),
            (&long_domain, AddrError::BadDomain),
            ("a..b@x.org", AddrError::BadChar('.')),
            (".a@x.org", AddrError::BadChar('.')),
            ("a.@x.org", AddrError::BadChar('.')),
            ("a@", AddrError::MissingDomain),
            ("a@-x.org", AddrError::BadDomain),
            ("a@x..org", AddrError::BadDomain),
            ("a b@x.org", AddrError::BadChar(' ')),
            ("a\0b@x.org", AddrError::BadChar('\0')),
            ("ä@x.org", AddrError::BadChar('ä')),
            ("a@[1.2.3.4", AddrError::Unterminated("address literal")),
        ];
        for (input, want) in table {
            assert_eq!(
                Address::parse(input, None).as_ref().err(),
                Some(want),
                "{input:?}"
            );
        }
        assert_eq!(Address::parse("root", None), Err(AddrError::MissingDomain));
        let labels = vec!["b".repeat(60); 5].join(".");
        assert_eq!(check_domain(&labels), Err(AddrError::DomainTooLong));
        assert_eq!(check_domain(&"c".repeat(64)), Err(AddrError::BadDomain));
        let local65 = format!("{}@x.org", "a".repeat(65));
        assert_eq!(Address::parse(&local65, None), Err(AddrError::LocalTooLong));
    }

    #[test]
    fn sender_null_and_address() {
        assert_eq!(Sender::parse("<>", None), Ok(Sender::Null));
        assert_eq!(Sender::parse(" <> ", None), Ok(Sender::Null));
        assert!(Sender::parse("", None).is_err());
        assert_eq!(
            Sender::parse("bob", Some("h.test")).unwrap().to_string(),
            "bob@h.test"
        );
    }

    #[test]
    fn header_lists() {
        let (good, bad) = parse_header_list(
            "Alice <a@x.org>, \"Smith, Bob\" <b@y.org>, c@z.org (Carl, comment), \
             team: d@x.org, e@x.org;, undisclosed-recipients:;, bad@@x",
            None,
        );
        let got: Vec<String> = good.iter().map(|m| m.addr.to_string()).collect();
        assert_eq!(got, ["a@x.org", "b@y.org", "c@z.org", "d@x.org", "e@x.org"]);
        assert_eq!(good[0].name.as_deref(), Some("Alice"));
        assert_eq!(good[1].name.as_deref(), Some("Smith, Bob"));
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, "bad@@x");
    }

    #[test]
    fn header_list_edge_cases() {
        for input in [
            "",
            ",,,",
            "(only a comment)",
            "<>",
            "a:;",
            "\"open",
            "<a@b",
            "(((",
            "\\",
        ] {
            let _ = parse_header_list(input, None);
        }
        let (good, _) = parse_header_list("<@relay.org:u@x.org>", None);
        assert_eq!(good[0].addr.to_string(), "u@x.org");
        let (good, bad) = parse_header_list("root", Some("h.test"));
        assert_eq!(good[0].addr.to_string(), "root@h.test");
        assert!(bad.is_empty());
    }

    #[test]
    fn globs() {
        assert!(glob_match("*@example.org", "bob@Example.org"));
        assert!(glob_match("*", ""));
        assert!(glob_match("b?b@*", "bob@x"));
        assert!(!glob_match("*@example.org", "bob@example.net"));
        assert!(glob_match("*a*b*c", "xxaxxbxxc"));
        assert!(!glob_match("*a*b*c", "xxaxxbxx"));
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let alphabet: Vec<char> = "a@<>\"\\().,:;[] \t\r\n\0é-_!|%".chars().collect();
        for _ in 0..20000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((x >> (i % 50)) as usize + i) % alphabet.len()])
                .collect();
            let _ = Address::parse(&s, Some("h.test"));
            let _ = Sender::parse(&s, None);
            let _ = parse_header_list(&s, None);
            let _ = glob_match(&s, "abc@x");
        }
    }
}
