//! route — which route may carry a recipient, and how the copy sent
//! through it is rewritten (masqmail.route(5) semantics).
//!
//! DESCRIPTION
//!   A route accepts a recipient when every condition passes: the envelope
//!   sender against `allowed_senders`/`denied_senders`, the recipient
//!   against `allowed_recipients`/`denied_recipients`, the From: addresses
//!   against `allowed_from_hdrs`/`denied_from_hdrs`. A deny match beats an
//!   allow match; an empty allow list allows everything. Patterns are globs
//!   (`*`, `?`, case ignored); a sender or From: pattern without `@` is a
//!   pattern for the local part only; `<>` matches the null sender.
//!
//!   Rewriting applies to the copy sent through the route only, and only
//!   to local addresses (masqmail 1.0): `set_return_path_domain` and
//!   `map_return_path_addresses` for the envelope sender,
//!   `set_h_from_domain`, `set_h_reply_to_domain` and the `map_h_*`
//!   lists for headers, and `expand_h_sender_address` for Sender:.
//!
//! SECURITY
//!   Route conditions are not a security boundary: SMTP clients choose
//!   their envelope sender and From: freely.

use std::fmt::Write;

use crate::addr::{self, glob_match, Address, Sender};
use crate::config::{AddressMap, Route};
use crate::message::Header;

/// Does `pat` match `a` (sender/From: semantics: no `@` = local part)?
fn matches_sender_pat(pat: &str, a: &Address) -> bool {
    if pat.contains('@') {
        glob_match(pat, &a.to_string())
    } else {
        glob_match(pat, a.local())
    }
}

fn sender_matches(pat: &str, s: &Sender) -> bool {
    match s {
        Sender::Null => pat == "<>",
        Sender::Addr(a) => matches_sender_pat(pat, a),
    }
}

/// allow/deny: denied if a deny pattern matches; allowed if the allow
/// list is empty or a pattern in it matches. `m` says whether a pattern
/// matches (any of the candidates, for a set of them).
fn passes(allow: &[String], deny: &[String], m: &dyn Fn(&str) -> bool) -> bool {
    if deny.iter().any(|p| m(p)) {
        return false;
    }
    allow.is_empty() || allow.iter().any(|p| m(p))
}

/// The From: addresses of a header section.
pub fn from_addresses(headers: &[Header]) -> Vec<Address> {
    let mut out = Vec::new();
    for h in headers {
        if h.is("From") {
            for m in addr::parse_header_list(&h.value(), None).0 {
                out.push(m.addr);
            }
        }
    }
    out
}

/// May `route` carry mail from `sender` (with these From: addresses) to
/// `rcpt`?
pub fn accepts(route: &Route, sender: &Sender, from_hdrs: &[Address], rcpt: &Address) -> bool {
    let rcpt = rcpt.to_string();
    passes(&route.allowed_senders, &route.denied_senders, &|p| {
        sender_matches(p, sender)
    }) && passes(&route.allowed_recipients, &route.denied_recipients, &|p| {
        glob_match(p, &rcpt)
    }) && passes(&route.allowed_from_hdrs, &route.denied_from_hdrs, &|p| {
        from_hdrs.iter().any(|a| matches_sender_pat(p, a))
    })
}

/// Apply an address map to one local address; None when no rule matches.
/// A replacement `*@domain` keeps the local part.
fn map_address(maps: &[AddressMap], a: &Address) -> Option<(Option<String>, Address)> {
    let rule = maps.iter().find(|m| glob_match(&m.local, a.local()))?;
    let to = rule.to.trim();
    if let Some(domain) = to.strip_prefix("*@") {
        return Address::new(a.local(), domain).ok().map(|n| (None, n));
    }
    let (good, _) = addr::parse_header_list(to, None);
    let m = good.into_iter().next()?;
    Some((m.name, m.addr))
}

/// The envelope sender as sent through `route`.
pub fn rewrite_sender(
    route: &Route,
    sender: &Sender,
    is_local: &dyn Fn(&Address) -> bool,
) -> Sender {
    let Sender::Addr(a) = sender else {
        return Sender::Null;
    };
    if !is_local(a) {
        return sender.clone();
    }
    if let Some((_, n)) = map_address(&route.map_return_path_addresses, a) {
        return Sender::Addr(n);
    }
    if let Some(d) = &route.set_return_path_domain {
        if let Ok(n) = Address::new(a.local(), d) {
            return Sender::Addr(n);
        }
    }
    sender.clone()
}

/// Rewrite one address-list header value; returns the new value when
/// something changed.
fn rewrite_list(
    value: &str,
    maps: &[AddressMap],
    set_domain: Option<&str>,
    is_local: &dyn Fn(&Address) -> bool,
) -> Option<String> {
    let (list, bad) = addr::parse_header_list(value, None);
    if !bad.is_empty() || list.is_empty() {
        return None;
    }
    let mut changed = false;
    let mut out = String::new();
    for m in list {
        let mut name = m.name;
        let mut a = m.addr;
        if is_local(&a) {
            if let Some((new_name, new_addr)) = map_address(maps, &a) {
                // A display name already given by the writer wins.
                if name.is_none() {
                    name = new_name;
                }
                a = new_addr;
                changed = true;
            } else if let Some(d) = set_domain {
                if let Ok(n) = Address::new(a.local(), d) {
                    a = n;
                    changed = true;
                }
            }
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = match name {
            Some(n) => write!(out, "{} <{a}>", crate::scan::headers::display_name(&n)),
            None => write!(out, "{a}"),
        };
    }
    changed.then_some(out)
}

/// The header section as sent through `route`.
pub fn rewrite_headers(
    route: &Route,
    headers: &[Header],
    sender: &Sender,
    is_local: &dyn Fn(&Address) -> bool,
) -> Vec<Header> {
    let mut out = Vec::with_capacity(headers.len());
    for h in headers {
        let new = if h.is("From") {
            rewrite_list(
                &h.value(),
                &route.map_h_from_addresses,
                route.set_h_from_domain.as_deref(),
                is_local,
            )
        } else if h.is("Reply-To") {
            rewrite_list(
                &h.value(),
                &route.map_h_reply_to_addresses,
                route.set_h_reply_to_domain.as_deref(),
                is_local,
            )
        } else if h.is("Mail-Followup-To") {
            rewrite_list(
                &h.value(),
                &route.map_h_mail_followup_to_addresses,
                None,
                is_local,
            )
        } else if h.is("Sender") && route.expand_h_sender_address {
            // The Sender: follows the rewritten return path.
            let rewritten = rewrite_sender(route, sender, is_local);
            (rewritten != *sender && rewritten != Sender::Null).then(|| rewritten.to_string())
        } else {
            None
        };
        out.push(match new {
            Some(v) => Header::new(h.name(), &v),
            None => h.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The first route of a config made of `route` lines.
    fn route(lines: &str) -> Route {
        let text = format!(
            "config masqmail 'main'\n\toption host_name 'home.lan'\n\nconfig route 'r'\n{lines}"
        );
        let cfg = crate::config::from_bytes(Path::new("/test.conf"), text.as_bytes())
            .unwrap_or_else(|e| panic!("config: {e:?}"));
        cfg.routes.into_iter().next().expect("one route")
    }

    fn a(s: &str) -> Address {
        Address::parse(s, None).expect("test address")
    }

    fn s(x: &str) -> Sender {
        if x.is_empty() {
            Sender::Null
        } else {
            Sender::Addr(a(x))
        }
    }

    fn hdrs(lines: &[&str]) -> Vec<Header> {
        lines
            .iter()
            .map(|l| Header::from_line(l.as_bytes()).expect("header line"))
            .collect()
    }

    /// Local domains of these tests: home.lan and *.home.lan.
    fn local(x: &Address) -> bool {
        let d = x.domain().to_ascii_lowercase();
        d == "home.lan" || d.ends_with(".home.lan")
    }

    fn ok(r: &Route, sender: &str, from: &[&str], rcpt: &str) -> bool {
        let from: Vec<Address> = from.iter().map(|f| a(f)).collect();
        accepts(r, &s(sender), &from, &a(rcpt))
    }

    #[test]
    fn no_conditions_accept_everything() {
        let r = route("");
        assert!(ok(
            &r,
            "alice@home.lan",
            &["alice@home.lan"],
            "bob@example.org"
        ));
        assert!(ok(&r, "", &[], "bob@example.org"));
    }

    #[test]
    fn sender_globs_and_local_part_patterns() {
        let r = route(
            "\tlist allowed_senders '*@home.lan'\n\tlist allowed_senders 'web*@example.com'\n\
             \tlist allowed_senders 'meillo'\n",
        );
        assert!(ok(&r, "alice@home.lan", &[], "x@example.org"));
        assert!(
            ok(&r, "ALICE@Home.LAN", &[], "x@example.org"),
            "case ignored"
        );
        assert!(ok(&r, "webmaster@example.com", &[], "x@example.org"));
        assert!(!ok(&r, "master@example.com", &[], "x@example.org"));
        // no @ in the pattern: the local part, any domain
        assert!(ok(&r, "meillo@anywhere.example", &[], "x@example.org"));
        assert!(!ok(&r, "meillo2@anywhere.example", &[], "x@example.org"));
        // a local-part pattern never matches the domain
        let r = route("\tlist allowed_senders 'home*'\n");
        assert!(!ok(&r, "alice@home.lan", &[], "x@example.org"));
        assert!(ok(&r, "homer@example.org", &[], "x@example.org"));
        // ? is one character
        let r = route("\tlist allowed_senders 'b?b@*'\n");
        assert!(ok(&r, "bob@x.example", &[], "x@example.org"));
        assert!(!ok(&r, "boob@x.example", &[], "x@example.org"));
    }

    #[test]
    fn null_sender_only_by_angle_brackets() {
        let r = route("\tlist allowed_senders '<>'\n");
        assert!(ok(&r, "", &[], "x@example.org"));
        assert!(!ok(&r, "alice@home.lan", &[], "x@example.org"));
        // a glob does not match the null sender
        let r = route("\tlist allowed_senders '*'\n");
        assert!(!ok(&r, "", &[], "x@example.org"));
        assert!(ok(&r, "alice@home.lan", &[], "x@example.org"));
        let r = route("\tlist denied_senders '<>'\n");
        assert!(!ok(&r, "", &[], "x@example.org"));
        assert!(ok(&r, "alice@home.lan", &[], "x@example.org"));
    }

    #[test]
    fn deny_beats_allow() {
        let r = route(
            "\tlist allowed_senders '*@home.lan'\n\tlist denied_senders 'guest@home.lan'\n\
             \tlist allowed_recipients '*@example.org'\n\tlist allowed_recipients '*@*.example.net'\n\
             \tlist denied_recipients 'spamtrap@*'\n",
        );
        assert!(ok(&r, "alice@home.lan", &[], "bob@example.org"));
        assert!(!ok(&r, "guest@home.lan", &[], "bob@example.org"));
        assert!(ok(&r, "alice@home.lan", &[], "bob@mx.example.net"));
        assert!(!ok(&r, "alice@home.lan", &[], "bob@example.net"));
        assert!(!ok(&r, "alice@home.lan", &[], "spamtrap@example.org"));
        // recipient patterns are whole addresses: no local-part shorthand
        let r = route("\tlist allowed_recipients 'bob'\n");
        assert!(!ok(&r, "alice@home.lan", &[], "bob@example.org"));
    }

    #[test]
    fn from_headers() {
        let r =
            route("\tlist allowed_from_hdrs 'alice'\n\tlist denied_from_hdrs '*@spam.example'\n");
        assert!(ok(
            &r,
            "x@y.example",
            &["alice@home.lan"],
            "bob@example.org"
        ));
        assert!(!ok(
            &r,
            "alice@home.lan",
            &["bob@home.lan"],
            "bob@example.org"
        ));
        // several From: addresses: one denied denies, one allowed allows
        assert!(ok(
            &r,
            "",
            &["bob@home.lan", "alice@home.lan"],
            "b@example.org"
        ));
        assert!(!ok(
            &r,
            "",
            &["alice@home.lan", "x@spam.example"],
            "b@example.org"
        ));
        // an allow list needs a From: address to match
        assert!(!ok(&r, "alice@home.lan", &[], "bob@example.org"));
        // the addresses come from every From: field, display names and all
        let h = hdrs(&[
            "Subject: x",
            "From: \"Alice L.\" <alice@home.lan>, bob@home.lan",
            "from: (comment) carol@home.lan",
            "Sender: dave@home.lan",
        ]);
        assert_eq!(
            from_addresses(&h),
            vec![a("alice@home.lan"), a("bob@home.lan"), a("carol@home.lan")]
        );
        assert!(from_addresses(&hdrs(&["To: x@y.example"])).is_empty());
    }

    #[test]
    fn return_path_set_domain_and_map() {
        let r = route("\toption set_return_path_domain 'example.org'\n");
        assert_eq!(
            rewrite_sender(&r, &s("alice@home.lan"), &local),
            s("alice@example.org")
        );
        // only local addresses are rewritten; the null sender stays null
        assert_eq!(
            rewrite_sender(&r, &s("alice@elsewhere.example"), &local),
            s("alice@elsewhere.example")
        );
        assert_eq!(rewrite_sender(&r, &Sender::Null, &local), Sender::Null);
        // a map wins over the domain; `*@domain` keeps the local part
        let r = route(
            "\toption set_return_path_domain 'example.org'\n\
             \tlist map_return_path_addresses 'john: jsmith@mail.academic.edu'\n\
             \tlist map_return_path_addresses 'c*: *@commercial.example'\n",
        );
        assert_eq!(
            rewrite_sender(&r, &s("john@home.lan"), &local),
            s("jsmith@mail.academic.edu")
        );
        assert_eq!(
            rewrite_sender(&r, &s("charlie@pc.home.lan"), &local),
            s("charlie@commercial.example")
        );
        assert_eq!(
            rewrite_sender(&r, &s("dave@home.lan"), &local),
            s("dave@example.org")
        );
        assert_eq!(
            rewrite_sender(&r, &s("john@example.net"), &local),
            s("john@example.net")
        );
    }

    fn value_of(h: &[Header], name: &str) -> Vec<String> {
        h.iter().filter(|x| x.is(name)).map(|x| x.value()).collect()
    }

    #[test]
    fn header_set_domain() {
        let r = route(
            "\toption set_h_from_domain 'example.org'\n\toption set_h_reply_to_domain 'reply.example'\n",
        );
        let h = hdrs(&[
            "From: Alice <alice@home.lan>, bob@elsewhere.example",
            "Reply-To: alice@pc.home.lan",
            "To: carol@home.lan",
            "Subject: alice@home.lan",
        ]);
        let out = rewrite_headers(&r, &h, &s("alice@home.lan"), &local);
        assert_eq!(
            value_of(&out, "From"),
            ["Alice <alice@example.org>, bob@elsewhere.example"]
        );
        assert_eq!(value_of(&out, "Reply-To"), ["alice@reply.example"]);
        // other fields are left alone
        assert_eq!(value_of(&out, "To"), ["carol@home.lan"]);
        assert_eq!(value_of(&out, "Subject"), ["alice@home.lan"]);
        // nothing local: the fields are kept byte for byte
        let h = hdrs(&["From: (me)  x@elsewhere.example"]);
        let out = rewrite_headers(&r, &h, &s("x@elsewhere.example"), &local);
        assert_eq!(out[0].raw(), h[0].raw());
    }

    #[test]
    fn header_maps_with_names_and_domains() {
        let r = route(
            "\tlist map_h_from_addresses 'john: John Smith <jsmith@mail.academic.edu>'\n\
             \tlist map_h_from_addresses 'char*: *@commercial.example'\n\
             \tlist map_h_reply_to_addresses 'john: replies@academic.edu'\n\
             \tlist map_h_mail_followup_to_addresses 'john: list@academic.edu'\n",
        );
        let h = hdrs(&[
            "From: john@home.lan",
            "Reply-To: john@home.lan",
            "Mail-Followup-To: john@home.lan",
        ]);
        let out = rewrite_headers(&r, &h, &s("john@home.lan"), &local);
        assert_eq!(
            value_of(&out, "From"),
            ["John Smith <jsmith@mail.academic.edu>"]
        );
        assert_eq!(value_of(&out, "Reply-To"), ["replies@academic.edu"]);
        assert_eq!(value_of(&out, "Mail-Followup-To"), ["list@academic.edu"]);
        // the writer's display name wins; `*@domain` keeps the local part
        let h = hdrs(&["From: Johnny <john@home.lan>, \"C. M.\" <charlie@home.lan>"]);
        let out = rewrite_headers(&r, &h, &s("john@home.lan"), &local);
        assert_eq!(
            value_of(&out, "From"),
            ["Johnny <jsmith@mail.academic.edu>, \"C. M.\" <charlie@commercial.example>"]
        );
        // a remote john is not mapped
        let h = hdrs(&["From: john@example.net"]);
        let out = rewrite_headers(&r, &h, &s("john@example.net"), &local);
        assert_eq!(value_of(&out, "From"), ["john@example.net"]);
    }

    #[test]
    fn sender_header_follows_the_return_path() {
        let lines = "\toption set_return_path_domain 'example.org'\n";
        let h = hdrs(&["From: boss@home.lan", "Sender: alice@home.lan"]);
        let r = route(lines);
        let out = rewrite_headers(&r, &h, &s("alice@home.lan"), &local);
        assert_eq!(value_of(&out, "Sender"), ["alice@example.org"]);
        assert_eq!(value_of(&out, "From"), ["boss@home.lan"]);
        // off: Sender: stays
        let r = route(&format!("{lines}\toption expand_h_sender_address '0'\n"));
        let out = rewrite_headers(&r, &h, &s("alice@home.lan"), &local);
        assert_eq!(value_of(&out, "Sender"), ["alice@home.lan"]);
        // a remote return path is not rewritten, so neither is Sender:
        let r = route(lines);
        let out = rewrite_headers(&r, &h, &s("alice@example.net"), &local);
        assert_eq!(value_of(&out, "Sender"), ["alice@home.lan"]);
    }
}
