//! smtp — the SMTP protocol, both sides, as state machines with no I/O inside.
//!
//! DESCRIPTION
//!   `command` parses one command line into a typed command (RFC 5321
//!   §4.1); `server` is the receiving session (RFC 5321 with PIPELINING,
//!   SIZE, 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS and AUTH), fed bytes by
//!   the daemon's worker or by `-bs`, answering with events to carry out;
//!   `policy` decides which recipients and which AUTH credentials a session
//!   accepts (never an open relay, DESIGN §7). `reply` reads and writes
//!   reply lines (RFC 5321 §4.2, RFC 3463 enhanced codes); `client` is the
//!   sending session the delivery stage drives, with one result per
//!   recipient.
//!
//! SECURITY
//!   Everything here reads untrusted network input: no panics, bounded
//!   buffers, and no I/O — the caller owns the socket, the TLS handshake
//!   and the queue, and a message is acknowledged only after the caller
//!   reports it committed.

pub mod client;
pub mod command;
pub mod policy;
pub mod reply;
pub mod server;
