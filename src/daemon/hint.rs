//! hint — what a scanner tells the supervisor about a message it is about
//! to make ready in `outgoing/`: can anything deliver it now?
//!
//! DESCRIPTION
//!   The supervisor starts a queue run for every message that arrives in
//!   `outgoing/` (inotify). For a message whose recipients all wait for
//!   routes that are offline that run only finds there is nothing to do —
//!   a fork, a lock, a read of the header file and an exit per message, on
//!   a router whose uplink is down. The scanner knows the recipients and
//!   which routes accept them; the supervisor knows which routes are
//!   online. So a scanner forked by the daemon (an SMTP worker, a scan
//!   run) sends one datagram per message on a socket the supervisor made:
//!   `ID *` (deliver now: a local or `|command` recipient, a bounce owed,
//!   a permanent route) or `ID ROUTE…` (the routes that accept at least one
//!   of its pending recipients; none: no route takes them). It is sent
//!   before the ready bit of `outgoing/ID` is set, so when the supervisor
//!   reads the inotify event it has only to read the socket after it to
//!   find the hint. A message without a hint (sendmail's own scan, a lost
//!   datagram, a full socket) gets its run as before: a hint can only save
//!   a run, never lose one. When a route comes up, its forced run takes
//!   the whole queue, as it always did.
//!
//! SECURITY
//!   Workers run as the mail user and may have read hostile input; a false
//!   hint can only delay that worker's own messages until the next route
//!   event or flush (the worker can write the spool anyway). Datagrams are
//!   parsed strictly and bounded.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::queue::MsgId;

/// What a message needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wants {
    /// A queue run now, whatever the routes.
    Now,
    /// A run only when one of these routes is usable.
    Routes(Vec<String>),
}

/// The longest datagram; a hint that would be longer says `*`.
pub const MAX: usize = 512;

/// The descriptor a worker sends hints on; -1: not a daemon's worker.
static SINK: AtomicI32 = AtomicI32::new(-1);

/// In a worker: send hints on `fd` (the supervisor's socket).
pub fn set_sink(fd: RawFd) {
    SINK.store(fd, Ordering::Relaxed);
}

/// Is anyone listening? (Scanners compute a hint only then.)
pub fn active() -> bool {
    SINK.load(Ordering::Relaxed) >= 0
}

pub fn encode(id: &MsgId, wants: &Wants) -> Vec<u8> {
    let mut s = id.as_str().to_owned();
    match wants {
        Wants::Now => s.push_str(" *"),
        Wants::Routes(rs) => {
            for r in rs {
                s.push(' ');
                s.push_str(r);
            }
        }
    }
    if s.len() > MAX {
        s = format!("{id} *");
    }
    s.into_bytes()
}

/// Check a datagram: its message and the rest, `*` ([`Wants::Now`]) or
/// the route names separated by single spaces (none: an empty rest).
pub fn decode(d: &[u8]) -> Option<(MsgId, &str)> {
    let s = std::str::from_utf8(d).ok()?;
    let (id, rest) = match s.split_once(' ') {
        None => (s, ""),
        Some((_, rest))
            if rest != "*" && rest.split(' ').any(|w| w.is_empty() || w.contains('*')) =>
        {
            return None
        }
        Some(x) => x,
    };
    Some((MsgId::parse(id)?, rest))
}

/// Tell the supervisor (if this is one of its workers). Never blocks; a
/// hint that cannot be sent is simply missing.
pub fn send(id: &MsgId, wants: &Wants) {
    let fd = SINK.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let msg = encode(id, wants);
    // SAFETY: send(2) on a descriptor this process holds for its whole
    // life (inherited from the supervisor), with a valid buffer.
    unsafe {
        libc::send(
            fd,
            msg.as_ptr().cast(),
            msg.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let id = MsgId::parse("1xWN7m166R-00vI").unwrap();
        for (w, rest) in [
            (Wants::Now, "*"),
            (Wants::Routes(vec![]), ""),
            (
                Wants::Routes(vec!["isp".into(), "lan_b".into()]),
                "isp lan_b",
            ),
        ] {
            assert_eq!(decode(&encode(&id, &w)), Some((id, rest)));
        }
        let long = Wants::Routes(vec!["r".repeat(300), "s".repeat(300)]);
        assert_eq!(decode(&encode(&id, &long)), Some((id, "*")));
        for bad in [
            &b""[..],
            b"nonsense",
            b"1xWN7m166R-00vI  isp",
            b"1xWN7m166R-00vI isp *",
            b"1xWN7m166R-00vI ",
            b"1xWN7m166R-00vI * isp",
            b"1xWN7m166R-00vI isp ",
            b"1xWN7m166R-00vI \xff",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
