//! policy — who may send mail to whom through the SMTP server.
//!
//! DESCRIPTION
//!   The server session asks a [`Policy`] about each recipient (RCPT TO)
//!   and about each AUTH attempt; it decides nothing itself. [`RelayPolicy`]
//!   is the policy of DESIGN §7, built from plain data and closures so that
//!   it can be tested without a configuration, an alias file or a password
//!   database:
//!
//!   1. A client is *trusted* when its IP is in `local_nets` or it has
//!      authenticated (RFC 4954).
//!   2. Relay tricks — a source route (`<@a,@b:u@c>`, RFC 5321 Appendix
//!      C), `%` or `!` in the local part, a quoted local part holding `@` —
//!      from an untrusted client are refused with `550 5.7.1`, whatever the
//!      domain. From a trusted client they are plain local parts: the route
//!      is dropped and the local part is never re-parsed as an address, so
//!      `u%other.org@here` is the (most likely unknown) local user
//!      `u%other.org`, and `u%other.org@remote.org` goes to remote.org as
//!      it is.
//!   3. A recipient in a local domain (`is_local_domain`) is accepted when
//!      it exists (`local_recipient_exists`: alias or user) or its local
//!      part is `postmaster` (any case, RFC 5321 §4.5.1); otherwise
//!      `550 5.1.1`.
//!   4. Any other recipient is relayed for a trusted client and refused
//!      with `554 5.7.1 Relay access denied` for everyone else.
//!
//! SECURITY
//!   This is the open-relay guard: nothing reaches a remote domain unless
//!   rule 4 says so, and no address trick can turn a local recipient into
//!   a remote one. `verify_password` sees the password; neither it nor
//!   this module logs it.
//!
//! DIAGNOSTICS
//!   Refusals are [`Verdict::Reject`] with their reply: `550 5.7.1` (relay
//!   trick), `550 5.1.1` (unknown local user), `554 5.7.1` (relay denied).
//!   The session logs them with the client's IP.
//!
//! CONFIGURATION PARAMETERS
//!   `local_nets`, `local_hosts` (through `is_local_domain`), the alias
//!   file and `user` sections (through the closures the daemon passes).

use std::fmt;
use std::net::IpAddr;

use crate::addr::{Address, Sender};
use crate::config::IpNet;

use super::command::SmtpPath;
use super::server::Response;

/// The recipient being asked about.
#[derive(Clone, Copy, Debug)]
pub struct RcptInfo<'a> {
    /// `<Postmaster>` arrives here as `postmaster@host_name`.
    pub path: &'a SmtpPath,
}

/// What the session knows about the client at RCPT time.
#[derive(Clone, Copy, Debug)]
pub struct SessionInfo<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    pub sender: &'a Sender,
    pub auth_user: Option<&'a str>,
    pub tls: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject(Response),
}

pub trait Policy {
    /// May this recipient be accepted in this session?
    fn rcpt(&self, rcpt: &RcptInfo, session: &SessionInfo) -> Verdict;
    /// Are these AUTH credentials valid?
    fn authenticate(&self, user: &str, pass: &str) -> bool;
}

/// A question about one address.
pub type AddrTest<'a> = Box<dyn Fn(&Address) -> bool + 'a>;
/// A check of a user name and password.
pub type PasswordCheck<'a> = Box<dyn Fn(&str, &str) -> bool + 'a>;

/// The relay rules of DESIGN §7 (see the module documentation).
pub struct RelayPolicy<'a> {
    /// Clients in these networks may relay.
    pub local_nets: Vec<IpNet>,
    /// Mail for this address is delivered here (`local_hosts`, …).
    pub is_local_domain: AddrTest<'a>,
    /// This local address is an alias or a user.
    pub local_recipient_exists: AddrTest<'a>,
    /// AUTH: user name and password are valid.
    pub verify_password: PasswordCheck<'a>,
}

impl fmt::Debug for RelayPolicy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayPolicy")
            .field("local_nets", &self.local_nets)
            .finish_non_exhaustive()
    }
}

impl RelayPolicy<'_> {
    fn trusted(&self, session: &SessionInfo) -> bool {
        session.auth_user.is_some() || self.local_nets.iter().any(|n| n.contains(session.ip))
    }
}

impl Policy for RelayPolicy<'_> {
    fn rcpt(&self, rcpt: &RcptInfo, session: &SessionInfo) -> Verdict {
        let addr = &rcpt.path.addr;
        let trusted = self.trusted(session);
        if let Some(trick) = rcpt.path.relay_trick() {
            if !trusted {
                return Verdict::Reject(Response::new(
                    550,
                    "5.7.1",
                    ["Relay access denied: ", trick].concat(),
                ));
            }
        }
        if (self.is_local_domain)(addr) {
            if addr.local().eq_ignore_ascii_case("postmaster")
                || (self.local_recipient_exists)(addr)
            {
                Verdict::Accept
            } else {
                Verdict::Reject(Response::new(
                    550,
                    "5.1.1",
                    "User unknown in local recipient table",
                ))
            }
        } else if trusted {
            Verdict::Accept
        } else {
            Verdict::Reject(Response::new(554, "5.7.1", "Relay access denied"))
        }
    }

    fn authenticate(&self, user: &str, pass: &str) -> bool {
        (self.verify_password)(user, pass)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::smtp::command::{self, Command, ForwardPath};

    /// The policy the server tests use: LAN 192.168.1.0/24 and ::1, local
    /// domains `here.test` and `mx.here.test` (the test host_name) with
    /// users `alice` and `bob`, AUTH user `carol` with password `secret`.
    pub fn example() -> RelayPolicy<'static> {
        RelayPolicy {
            local_nets: vec!["192.168.1.0/24".parse().unwrap(), "::1".parse().unwrap()],
            is_local_domain: Box::new(|a| ["here.test", "mx.here.test"].contains(&a.domain())),
            local_recipient_exists: Box::new(|a| ["alice", "bob"].contains(&a.local())),
            verify_password: Box::new(|u, p| u == "carol" && p == "secret"),
        }
    }

    fn path(arg: &str) -> SmtpPath {
        match command::parse(format!("RCPT TO:{arg}").as_bytes()) {
            Ok(Command::Rcpt {
                to: ForwardPath::Path(p),
            }) => p,
            other => panic!("{arg}: {other:?}"),
        }
    }

    fn verdict(ip: &str, auth: Option<&str>, arg: &str) -> String {
        let sender = Sender::Null;
        let session = SessionInfo {
            ip: ip.parse().unwrap(),
            helo: "client",
            sender: &sender,
            auth_user: auth,
            tls: false,
        };
        let p = path(arg);
        match example().rcpt(&RcptInfo { path: &p }, &session) {
            Verdict::Accept => "250".into(),
            Verdict::Reject(r) => format!("{} {}", r.code, r.status.unwrap_or("")),
        }
    }

    #[test]
    fn relay_rules() {
        let out = "203.0.113.9";
        let lan = "192.168.1.20";
        let table: &[(&str, Option<&str>, &str, &str)] = &[
            // local recipients, from anywhere
            (out, None, "<alice@here.test>", "250"),
            (out, None, "<Postmaster@HERE.test>", "250"),
            (out, None, "<mallory@here.test>", "550 5.1.1"),
            (lan, None, "<mallory@here.test>", "550 5.1.1"),
            // relaying
            (out, None, "<x@remote.test>", "554 5.7.1"),
            (lan, None, "<x@remote.test>", "250"),
            ("::ffff:192.168.1.7", None, "<x@remote.test>", "250"),
            ("::1", None, "<x@remote.test>", "250"),
            (out, Some("carol"), "<x@remote.test>", "250"),
            // relay tricks from outside: refused, even for a local domain
            (out, None, "<x%remote.test@here.test>", "550 5.7.1"),
            (out, None, "<remote.test!x@here.test>", "550 5.7.1"),
            (out, None, "<\"x@remote.test\"@here.test>", "550 5.7.1"),
            (out, None, "<@here.test:alice@here.test>", "550 5.7.1"),
            (out, None, "<@here.test:x@remote.test>", "550 5.7.1"),
            // from trusted clients they are plain local parts
            (lan, None, "<x%remote.test@here.test>", "550 5.1.1"),
            (lan, None, "<@relay.test:alice@here.test>", "250"),
            (out, Some("carol"), "<x%y@remote.test>", "250"),
        ];
        for (ip, auth, arg, want) in table {
            assert_eq!(verdict(ip, *auth, arg), *want, "{ip} {auth:?} {arg}");
        }
    }

    #[test]
    fn passwords() {
        let p = example();
        assert!(p.authenticate("carol", "secret"));
        assert!(!p.authenticate("carol", "Secret"));
        assert!(!p.authenticate("", ""));
    }
}
