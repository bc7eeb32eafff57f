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

/// allow/deny over a set of candidates: denied if any candidate matches a
/// deny pattern; allowed if the allow list is empty or any candidate
/// matches it.
fn passes<T>(allow: &[String], deny: &[String], items: &[T], m: impl Fn(&str, &T) -> bool) -> bool {
    if deny.iter().any(|p| items.iter().any(|i| m(p, i))) {
        return false;
    }
    allow.is_empty() || allow.iter().any(|p| items.iter().any(|i| m(p, i)))
}

/// The From: addresses of a header section.
pub fn from_addresses(headers: &[Header]) -> Vec<Address> {
    headers
        .iter()
        .filter(|h| h.is("From"))
        .flat_map(|h| addr::parse_header_list(&h.value(), None).0)
        .map(|m| m.addr)
        .collect()
}

/// May `route` carry mail from `sender` (with these From: addresses) to
/// `rcpt`?
pub fn accepts(route: &Route, sender: &Sender, from_hdrs: &[Address], rcpt: &Address) -> bool {
    passes(
        &route.allowed_senders,
        &route.denied_senders,
        std::slice::from_ref(sender),
        sender_matches,
    ) && passes(
        &route.allowed_recipients,
        &route.denied_recipients,
        std::slice::from_ref(rcpt),
        |p, r: &Address| glob_match(p, &r.to_string()),
    ) && passes(
        &route.allowed_from_hdrs,
        &route.denied_from_hdrs,
        from_hdrs,
        matches_sender_pat,
    )
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
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        let mut name = m.name.clone();
        let mut a = m.addr.clone();
        if is_local(&m.addr) {
            if let Some((new_name, new_addr)) = map_address(maps, &m.addr) {
                // A display name already given by the writer wins.
                if name.is_none() {
                    name = new_name;
                }
                a = new_addr;
                changed = true;
            } else if let Some(d) = set_domain {
                if let Ok(n) = Address::new(m.addr.local(), d) {
                    a = n;
                    changed = true;
                }
            }
        }
        out.push(match name {
            Some(n) => format!("{} <{a}>", crate::scan::headers::display_name(&n)),
            None => a.to_string(),
        });
    }
    changed.then(|| out.join(", "))
}

/// The header section as sent through `route`.
pub fn rewrite_headers(
    route: &Route,
    headers: &[Header],
    sender: &Sender,
    is_local: &dyn Fn(&Address) -> bool,
) -> Vec<Header> {
    headers
        .iter()
        .map(|h| {
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
            match new {
                Some(v) => Header::new(h.name(), &v),
                None => h.clone(),
            }
        })
        .collect()
}
