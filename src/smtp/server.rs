//! server — the SMTP server session as a state machine with no I/O inside.
//!
//! DESCRIPTION
//!   A [`Session`] is fed the bytes a client sent and answers with
//!   [`Event`]s that the caller (the daemon's worker, or `-bs` on stdin)
//!   carries out in order: write a reply, start TLS, open/write/drop/commit
//!   a message, close. It never touches a socket, a file or the clock.
//!
//!   The caller's loop:
//!     1. `Session::new(params, peer)`, write the events of `greeting()`.
//!     2. Read bytes, `feed(bytes, policy)`, carry out every event in order:
//!        - `Reply(text)`: write it (complete lines with CRLF). Flush before
//!          waiting for input (RFC 2920 §3.1: the server may buffer replies
//!          only while more commands are pending).
//!        - `StartTls`: flush the replies, do the TLS handshake on the
//!          socket, then call `tls_started(info)`. Nothing read before the
//!          handshake reaches the session any more (see SECURITY).
//!        - `MessageBegin(txn)`: start a message (queue-in) for `txn`.
//!        - `DataLine(line)`: append one line of the message (dot-unstuffed,
//!          no line end). An error writing it is remembered and reported
//!          at the end.
//!        - `DataAbort(reason)`: drop the message being written. The session
//!          keeps reading the data until its end and then replies itself.
//!        - `DataEnd`: commit the message (fsync), then call
//!          `data_committed(Ok(id))` or `data_committed(Err(..))`, and carry
//!          out the events it returns. The `250 … queued as ID` is only ever
//!          produced by that call, so a client never sees 250 for a message
//!          that is not durable.
//!        - `Close`: flush and close the connection.
//!     3. On the session timeout, carry out `timeout()` (421, Close); when
//!        the server stops, `shutdown()` (421 4.3.2, Close).
//!
//!   States ([`State`], every transition goes through `Machine::advance`,
//!   which logs old → new at debug level):
//!     Greeted ─HELO/EHLO→ Ready ─MAIL→ Mail ─RCPT→ Rcpt ─DATA→ Data
//!     Data ─`.`→ Commit ─data_committed→ Ready;  Data ─`.` after abort→ Ready
//!     Ready ─AUTH→ Auth ─(exchange)→ Ready;  Ready ─STARTTLS→ TlsHandshake
//!     TlsHandshake ─tls_started→ Greeted;  any ─QUIT / too many errors→ Closed
//!   HELO, EHLO and RSET end a transaction (RFC 5321 §4.1.1.1, §4.1.1.5).
//!
//!   Implements RFC 5321 (§3.3 transactions, §4.1.1 commands, §4.5.2
//!   transparency, §4.5.3.1 limits), RFC 2920 PIPELINING (every complete
//!   line in the input is processed in order, replies in the same order),
//!   RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 2034/RFC 3463 enhanced status
//!   codes (on every reply except the greeting, replies to HELO/EHLO and 3xx
//!   replies, RFC 2034 §3), RFC 3207 STARTTLS, RFC 4954 AUTH with PLAIN
//!   (RFC 4616) and LOGIN, and RFC 3848 protocol names (SMTP, ESMTP,
//!   ESMTPS, ESMTPA, ESMTPSA) for the Received header.
//!
//! SECURITY
//!   All input is untrusted; nothing here panics on it and memory is
//!   bounded: between calls the session keeps at most one partial line
//!   (`max_cmd_line` in command mode, `max_line` in DATA); a longer line is
//!   dropped as it arrives and answered when it ends. The only exception is
//!   input that follows a `DataEnd` in the same feed (pipelined commands
//!   after the message): it waits, as complete lines, for
//!   `data_committed`, which the caller calls before reading again.
//!
//!   End of DATA is recognised only as `<CRLF>.<CRLF>`: a line holding a
//!   single `.`, ended by CRLF, after a line (or the DATA command) ended by
//!   CRLF. A bare CR is data and never ends a line. A bare LF ends a line
//!   (`smtp_bare_lf normalize`, the default) but a `.` line next to a bare
//!   LF is never the end of data: it is kept as data (un-stuffed like any
//!   line starting with a dot, so it becomes an empty line). With
//!   `smtp_bare_lf reject` a bare LF in a message makes the session drop the
//!   message (`DataAbort`) and refuse it at its end with `550 5.6.0`; a
//!   command line ended by a bare LF is refused with `500 5.5.2`. So no
//!   sequence of bytes ends the data here when a CRLF-only receiver would
//!   keep reading, or the other way round (SMTP smuggling).
//!
//!   STARTTLS (RFC 3207 §4.2, §6): after the `220` the session emits
//!   `StartTls` and throws away every byte received after the STARTTLS line
//!   (in the same read or later, until `tls_started`): plaintext injected
//!   before the handshake is never executed. After the handshake the
//!   session forgets HELO/EHLO and any AUTH; the client must EHLO again.
//!
//!   AUTH (RFC 4954) is offered only when users are configured and the
//!   connection is TLS-protected, or the client is on a loopback address
//!   (127.0.0.0/8, ::1: local programs, and tests, need no TLS to talk to
//!   themselves). Elsewhere AUTH is refused with `538 5.7.11` and not
//!   listed in EHLO, so a password never crosses the network in clear.
//!   Passwords are handed to `Policy::authenticate` and never logged.
//!   Failed attempts count as errors, so guessing ends at `max_errors`.
//!
//!   Every 5xx reply counts as an error; at `max_errors` the session
//!   answers `421 4.7.0` and closes. A `452 4.5.3` for too many recipients
//!   is not an error (RFC 5321 §4.5.3.1.10: the client sends the rest
//!   later). A web browser's `GET`/`POST`/`CONNECT` ends the session.
//!
//! DIAGNOSTICS
//!   Replies follow RFC 5321 §4.2 and RFC 3463. Limits: command line longer
//!   than `max_cmd_line` (RFC 5321 §4.5.3.1.4, with CRLF) → `500 5.5.2 Line
//!   too long`; AUTH response line too long → `500 5.5.6` (RFC 4954 §6);
//!   more than `max_recipients` → `452 4.5.3`; `SIZE=` over `max_size` at
//!   MAIL → `552 5.3.4` (RFC 1870 §6.1); a message over `max_size` (counted
//!   on un-stuffed lines plus one byte per line end) → `552 5.3.4` at its
//!   end; a data line longer than `max_line` bytes (without line end, as
//!   received) → `500 5.5.2 Line too long` at the end of the data (RFC 5321
//!   §4.5.3.1: "500 Line too long"); bare LF with `reject` → `550 5.6.0`.
//!   Commit failures: `451 4.3.0` (I/O error), `452 4.3.1` (no space).
//!   State changes are logged at debug level, refused recipients and
//!   failed AUTH at info level, always with the client's IP.
//!
//! CONFIGURATION PARAMETERS
//!   [`ServerParams::from_config`]: `host_name`, `max_size`,
//!   `max_line_length`, `max_recipients`, `smtp_bare_lf`; AUTH is offered
//!   when `user` sections exist; STARTTLS when the daemon loaded
//!   `tls_cert`/`tls_key`. Fixed: `max_cmd_line` 1000 ([`MAX_CMD_LINE`]),
//!   `max_errors` 10 ([`MAX_ERRORS`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

use log::{debug, info};

use crate::addr::{Address, Sender};
use crate::config::{BareLf, Config};
use crate::util::base64;

use super::command::{self, Body, Command, ForwardPath, Mechanism, SmtpPath};
use super::policy::{Policy, RcptInfo, SessionInfo, Verdict};

/// Longest command line accepted, CRLF included (RFC 5321 §4.5.3.1.4 asks
/// for at least 512; AUTH PLAIN with long passwords needs more).
pub const MAX_CMD_LINE: usize = 1000;
/// Errors (5xx replies) before the session is closed with 421.
pub const MAX_ERRORS: u32 = 10;

/// One reply: code, RFC 3463 enhanced status (absent for the greeting,
/// HELO/EHLO and 3xx replies), text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub status: Option<&'static str>,
    pub text: Cow<'static, str>,
}

impl Response {
    #[inline(never)]
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
        render(self.code, self.status.unwrap_or(""), &self.text)
    }
}

/// What the session needs to know about the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerParams {
    /// Our name, in the greeting and replies.
    pub host_name: String,
    /// Longest command line, CRLF included.
    pub max_cmd_line: usize,
    /// Longest message line, without its line end.
    pub max_line: usize,
    /// Largest message, in bytes.
    pub max_size: u64,
    pub max_recipients: usize,
    pub max_errors: u32,
    pub bare_lf: BareLf,
    /// A certificate is loaded: STARTTLS can be offered.
    pub starttls_available: bool,
    /// SMTP AUTH accounts exist.
    pub auth_available: bool,
}

impl ServerParams {
    pub fn from_config(cfg: &Config, starttls_available: bool) -> ServerParams {
        ServerParams {
            host_name: cfg.main.host_name.clone(),
            max_cmd_line: MAX_CMD_LINE,
            max_line: cfg.main.max_line_length,
            max_size: cfg.main.max_size,
            max_recipients: cfg.main.max_recipients,
            max_errors: MAX_ERRORS,
            bare_lf: cfg.main.smtp_bare_lf,
            starttls_available,
            auth_available: !cfg.users.is_empty(),
        }
    }
}

/// The negotiated TLS parameters, for the Received header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
}

/// The client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub ip: IpAddr,
    /// The client's name from reverse DNS, when the caller verified one.
    pub name: Option<String>,
    /// Set when the connection is TLS from the start (implicit TLS, port
    /// 465 style); STARTTLS sets it later.
    pub tls: Option<TlsInfo>,
}

/// Everything the queue needs to start a message received over SMTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub sender: Sender,
    /// At least one.
    pub recipients: Vec<Address>,
    pub body: Option<Body>,
    /// The HELO/EHLO argument.
    pub helo: String,
    /// RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPA or ESMTPSA.
    pub protocol: &'static str,
    pub auth_user: Option<String>,
    /// The client, with the TLS in use now.
    pub peer: PeerInfo,
}

/// Why a message is being dropped; the reply comes at the end of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortReason {
    /// Over `max_size`: `552 5.3.4`.
    TooBig,
    /// A line over `max_line`: `500 5.5.2`.
    LineTooLong,
    /// A bare LF with `smtp_bare_lf reject`: `550 5.6.0`.
    BareLf,
}

impl AbortReason {
    /// For the log.
    pub fn as_str(self) -> &'static str {
        match self {
            AbortReason::TooBig => "too big",
            AbortReason::LineTooLong => "a line too long",
            AbortReason::BareLf => "a bare LF",
        }
    }
}

/// Why the caller could not commit a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitError {
    /// An I/O error: `451 4.3.0`.
    Io,
    /// The disk or quota is full: `452 4.3.1`.
    NoSpace,
    /// The message was refused by a later check (the header reader's
    /// limits, for instance) with this reply.
    Refused(Response),
}

/// What the caller must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Write this reply (one or more complete lines with CRLF).
    Reply(String),
    /// Flush, do the TLS handshake, then call [`Session::tls_started`].
    StartTls,
    /// A message starts: open it in the queue.
    MessageBegin(Box<Transaction>),
    /// One line of the message, dot-unstuffed, without line end.
    DataLine(Vec<u8>),
    /// Drop the message being written.
    DataAbort(AbortReason),
    /// The message is complete: commit it, then call
    /// [`Session::data_committed`].
    DataEnd,
    /// Close the connection (after writing the replies before this).
    Close,
}

/// The message being received.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Sink {
    /// The previous line (or the DATA command) ended with CRLF: a `.` line
    /// may end the data.
    prev_crlf: bool,
    size: u64,
    aborted: Option<AbortReason>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuthStep {
    /// PLAIN without initial response: waiting for it.
    Plain,
    /// LOGIN: waiting for the user name.
    LoginUser,
    /// LOGIN: waiting for the password (the user name is in
    /// `Machine::login_user`).
    LoginPass,
}

/// The session's protocol state. The data of a state lives in [`Machine`]
/// (valid while the state says so), so a transition never moves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Greeting sent (or TLS just started): HELO/EHLO expected.
    Greeted,
    /// HELO/EHLO done (`helo`), no transaction.
    Ready,
    /// MAIL accepted (`sender`, `body`), no recipient yet.
    Mail,
    /// MAIL and at least one RCPT accepted (`rcpts` is never empty).
    Rcpt,
    /// Between 354 and the end of data (`sink`).
    Data,
    /// DataEnd emitted; waiting for `data_committed`.
    Commit,
    /// In an AUTH exchange (334 sent; `step`).
    Auth,
    /// STARTTLS accepted; waiting for `tls_started`.
    TlsHandshake,
    Closed,
}

const STATE_NAMES: [&str; 9] = [
    "greeted",
    "ready",
    "mail",
    "rcpt",
    "data",
    "commit",
    "auth",
    "tls-handshake",
    "closed",
];

impl State {
    fn name(self) -> &'static str {
        STATE_NAMES[self as usize]
    }
}

/// One complete input line, borrowed from the line reader.
struct Line<'a> {
    /// Without line end.
    text: &'a [u8],
    /// Ended by CRLF (not a bare LF).
    crlf: bool,
    /// Longer than the limit; `text` is empty.
    overlong: bool,
}

/// What moves the state machine.
enum Input<'a> {
    Line(Line<'a>, &'a dyn Policy),
    Committed(Result<String, CommitError>),
    TlsStarted(TlsInfo),
    Timeout,
    Shutdown,
}

/// Splits the input into lines at LF, keeping at most one partial line.
#[derive(Debug, Default)]
struct LineReader {
    buf: Vec<u8>,
    /// Start of the bytes not yet returned.
    pos: usize,
    /// Bytes after `pos` already searched for LF without success.
    searched: usize,
    /// The current line is over the limit and being dropped; the value
    /// tells whether the last dropped byte was a CR.
    dropping: Option<bool>,
}

/// A line found by [`LineReader::next`].
#[derive(Clone, Copy, Debug)]
struct Frame {
    start: usize,
    end: usize,
    crlf: bool,
    overlong: bool,
}

impl LineReader {
    fn push(&mut self, input: &[u8]) {
        self.buf.extend_from_slice(input);
    }

    /// The next complete line whose content (without CRLF or LF) is at
    /// most `limit` bytes, or an overlong marker for a longer one. The
    /// result depends only on the bytes, never on how they were split
    /// between calls.
    fn next(&mut self, limit: usize) -> Option<Frame> {
        let avail = self.buf.get(self.pos..).unwrap_or(&[]);
        let from = self.searched.min(avail.len());
        let found = avail
            .get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'));
        let Some(i) = found else {
            // No line end yet. A partial line longer than limit + 1 (a
            // final CR may still be the CR of CRLF) can only be overlong:
            // drop it now, so the buffer stays bounded.
            if self.dropping.is_some() || avail.len() > limit.saturating_add(1) {
                let last_cr = match avail.last() {
                    Some(&b) => b == b'\r',
                    None => self.dropping == Some(true),
                };
                self.dropping = Some(last_cr);
                self.pos = self.buf.len();
                self.searched = 0;
            } else {
                self.searched = avail.len();
            }
            return None;
        };
        let lf = from + i;
        let crlf = match lf.checked_sub(1) {
            Some(j) => avail.get(j) == Some(&b'\r'),
            None => self.dropping == Some(true),
        };
        let start = self.pos;
        let end = (start + lf).saturating_sub(usize::from(crlf)).max(start);
        self.pos = start + lf + 1;
        self.searched = 0;
        let overlong = self.dropping.take().is_some() || end - start > limit;
        Some(Frame {
            start,
            end: if overlong { start } else { end },
            crlf,
            overlong,
        })
    }

    fn text(&self, f: &Frame) -> &[u8] {
        self.buf.get(f.start..f.end).unwrap_or(&[])
    }

    /// Forget the bytes already returned; give back memory after a big
    /// read.
    fn compact(&mut self, bound: usize) {
        if self.pos > 0 {
            self.buf.drain(..self.pos.min(self.buf.len()));
            self.pos = 0;
        }
        let keep = bound.saturating_mul(2).saturating_add(64 * 1024);
        if self.buf.capacity() > keep {
            self.buf.shrink_to(keep);
        }
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.searched = 0;
        self.dropping = None;
    }

    fn len(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

/// A reply of fixed text: code, enhanced status (`""`: none), text.
type Rep = (u16, &'static str, &'static str);

const OK_200: Rep = (250, "2.0.0", "Ok");
const LINE_TOO_LONG: Rep = (500, "5.5.2", "Line too long");
const BARE_LF_CMD: Rep = (500, "5.5.2", "Bare LF received: lines must end with CRLF");
const SEND_HELO: Rep = (503, "5.5.1", "Send HELO/EHLO first");
const NESTED_MAIL: Rep = (503, "5.5.1", "Nested MAIL command");
const NEED_MAIL: Rep = (503, "5.5.1", "Need MAIL command");
const NO_VALID_RCPT: Rep = (554, "5.5.1", "No valid recipients");
const NEED_MAIL_RCPT: Rep = (503, "5.5.1", "Need MAIL and RCPT commands");
const VRFY: Rep = (
    252,
    "2.5.0",
    "Cannot VRFY user, but will accept message and attempt delivery",
);
const EXPN: Rep = (502, "5.5.1", "EXPN not available");
const HELP: Rep = (
    214,
    "2.0.0",
    "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
);
const BDAT: Rep = (502, "5.5.1", "BDAT not supported (no CHUNKING)");
const HTTP: Rep = (221, "2.7.0", "This is an SMTP server, closing");
const TOO_BIG: Rep = (
    552,
    "5.3.4",
    "Message size exceeds fixed maximum message size",
);
const TOO_MANY_RCPTS: Rep = (452, "4.5.3", "Too many recipients");
const NO_POSTMASTER: Rep = (550, "5.1.1", "No postmaster here");
const BARE_LF_DATA: Rep = (
    550,
    "5.6.0",
    "Message refused: bare LF line ending, CRLF required (RFC 5321 2.3.8)",
);
const WRITE_ERROR: Rep = (451, "4.3.0", "Error: queue file write error");
const NO_SPACE: Rep = (452, "4.3.1", "Insufficient system storage");
const TLS_ACTIVE: Rep = (503, "5.5.1", "TLS already active");
const NO_STARTTLS: Rep = (502, "5.5.1", "STARTTLS not available");
const TLS_READY: Rep = (220, "2.0.0", "Ready to start TLS");
const SEND_EHLO: Rep = (503, "5.5.1", "Send EHLO first");
const IN_TRANSACTION: Rep = (503, "5.5.1", "MAIL transaction in progress");
const ALREADY_AUTH: Rep = (503, "5.5.1", "Already authenticated");
const NO_AUTH: Rep = (502, "5.5.1", "AUTH not available");
const ENCRYPTION_REQUIRED: Rep = (
    538,
    "5.7.11",
    "Encryption required for requested authentication mechanism",
);
const UNKNOWN_MECH: Rep = (504, "5.5.4", "Unrecognized authentication type");
const AUTH_LINE_TOO_LONG: Rep = (500, "5.5.6", "Authentication Exchange line is too long");
const AUTH_CANCELLED: Rep = (501, "5.0.0", "Authentication cancelled");
const BAD_PLAIN: Rep = (501, "5.5.2", "Malformed AUTH PLAIN response");
const AUTH_OK: Rep = (235, "2.7.0", "Authentication successful");
const AUTH_INVALID: Rep = (535, "5.7.8", "Authentication credentials invalid");
const CANNOT_DECODE: Rep = (501, "5.5.2", "Cannot decode AUTH response");
const NOT_UTF8: Rep = (501, "5.5.2", "AUTH response is not UTF-8");
/// `334` with base64 of `Username:` and `Password:` (RFC 4954 §4, LOGIN).
const ASK_USER: &str = "334 VXNlcm5hbWU6\r\n";
const ASK_PASS: &str = "334 UGFzc3dvcmQ6\r\n";

/// The reply line(s) with CRLF; see [`Response::render`].
fn render(code: u16, status: &str, text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 16);
    let _ = write!(s, "{code} ");
    if !status.is_empty() {
        s.push_str(status);
        s.push(' ');
    }
    for c in text.chars().take(400) {
        s.push(if c.is_ascii() && !c.is_ascii_control() {
            c
        } else {
            '?'
        });
    }
    s.push_str("\r\n");
    s
}

/// The protocol state and the facts about the connection; `advance` is
/// the only place the state changes.
#[derive(Debug)]
struct Machine {
    params: ServerParams,
    peer: PeerInfo,
    /// The authenticated user (RFC 4954), forgotten by STARTTLS.
    auth: Option<String>,
    /// 5xx replies so far.
    errors: u32,
    state: State,
    /// The HELO/EHLO argument (from Ready on).
    helo: String,
    /// EHLO (extended SMTP) rather than HELO.
    esmtp: bool,
    /// MAIL FROM (in Mail and Rcpt).
    sender: Sender,
    body: Option<Body>,
    /// The accepted recipients (in Rcpt).
    rcpts: Vec<Address>,
    /// The message being received (in Data).
    sink: Sink,
    /// The AUTH exchange (in Auth).
    step: AuthStep,
    /// The LOGIN user name, while its password is awaited.
    login_user: String,
    /// The events for the caller, handed over by every `Session` call.
    out: Vec<Event>,
}

/// One SMTP server session. See the module documentation for the
/// caller's loop.
#[derive(Debug)]
pub struct Session {
    machine: Machine,
    reader: LineReader,
}

/// Whether `ip` is a loopback address (an IPv4-mapped IPv6 one included).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|m| m.is_loopback()),
    }
}

impl Session {
    pub fn new(params: ServerParams, peer: PeerInfo) -> Session {
        Session {
            machine: Machine {
                params,
                peer,
                auth: None,
                errors: 0,
                state: State::Greeted,
                helo: String::new(),
                esmtp: false,
                sender: Sender::Null,
                body: None,
                rcpts: Vec::new(),
                sink: Sink::default(),
                step: AuthStep::Plain,
                login_user: String::new(),
                out: Vec::new(),
            },
            reader: LineReader::default(),
        }
    }

    /// The 220 greeting; call once, first.
    pub fn greeting(&mut self) -> Vec<Event> {
        self.machine.say_host(220, "", " ESMTP masqmail");
        std::mem::take(&mut self.machine.out)
    }

    /// Take bytes from the client; process every complete line.
    pub fn feed(&mut self, input: &[u8], policy: &dyn Policy) -> Vec<Event> {
        match self.machine.state {
            // Plaintext after STARTTLS, or anything after the end: dropped.
            State::TlsHandshake | State::Closed => return Vec::new(),
            _ => {}
        }
        self.reader.push(input);
        self.run(policy);
        std::mem::take(&mut self.machine.out)
    }

    /// The caller committed the message of the last `DataEnd` (Ok with its
    /// queue ID) or failed to. Gives the reply and processes the commands
    /// that were pipelined after the message.
    pub fn data_committed(
        &mut self,
        result: Result<String, CommitError>,
        policy: &dyn Policy,
    ) -> Vec<Event> {
        if self.machine.state == State::Commit {
            self.machine.advance(Input::Committed(result));
            self.run(policy);
        }
        std::mem::take(&mut self.machine.out)
    }

    /// The TLS handshake after `StartTls` succeeded. The client must send
    /// EHLO again.
    pub fn tls_started(&mut self, info: TlsInfo) -> Vec<Event> {
        if self.machine.state == State::TlsHandshake {
            self.reader.clear();
            self.machine.advance(Input::TlsStarted(info));
        }
        std::mem::take(&mut self.machine.out)
    }

    /// The client was silent too long: 421 and Close.
    pub fn timeout(&mut self) -> Vec<Event> {
        self.end(Input::Timeout)
    }

    /// The server is stopping (the daemon got SIGTERM): 421 and Close. A
    /// message being received is dropped, never acknowledged.
    pub fn shutdown(&mut self) -> Vec<Event> {
        self.end(Input::Shutdown)
    }

    fn end(&mut self, input: Input<'_>) -> Vec<Event> {
        if !self.is_closed() {
            self.machine.advance(input);
            self.reader.clear();
        }
        std::mem::take(&mut self.machine.out)
    }

    pub fn is_closed(&self) -> bool {
        self.machine.state == State::Closed
    }

    /// Bytes held between calls (for tests and the daemon's accounting).
    pub fn buffered(&self) -> usize {
        self.reader.len()
    }

    /// The name of the current state, for logs.
    pub fn state_name(&self) -> &'static str {
        self.machine.state.name()
    }

    /// The most a session holds between calls, except input pipelined
    /// after a `DataEnd`.
    pub fn buffer_bound(&self) -> usize {
        let p = &self.machine.params;
        p.max_cmd_line.max(p.max_line.saturating_add(1))
    }

    /// Process complete lines until the input runs out or the state waits
    /// for the caller.
    fn run(&mut self, policy: &dyn Policy) {
        loop {
            let p = &self.machine.params;
            let limit = match self.machine.state {
                State::Data => p.max_line,
                State::Commit | State::TlsHandshake | State::Closed => break,
                _ => p.max_cmd_line.saturating_sub(2),
            };
            let Some(frame) = self.reader.next(limit) else {
                break;
            };
            let line = Line {
                text: self.reader.text(&frame),
                crlf: frame.crlf,
                overlong: frame.overlong,
            };
            self.machine.advance(Input::Line(line, policy));
        }
        if matches!(self.machine.state, State::TlsHandshake | State::Closed) {
            // RFC 3207 §4.2 / after close: whatever follows is not ours.
            self.reader.clear();
        }
        let bound = self.buffer_bound();
        self.reader.compact(bound);
    }
}

impl Machine {
    /// The one place the state changes.
    fn advance(&mut self, input: Input<'_>) {
        let from = self.state;
        self.step(input);
        if self.errors >= self.params.max_errors && self.state != State::Closed {
            self.close(421, "4.7.0", " Error: too many errors");
            self.note(format_args!("too many errors, closing"));
        }
        if self.state != from {
            debug!(
                "smtp {}: {} -> {}",
                self.peer.ip,
                from.name(),
                self.state.name()
            );
        }
    }

    /// An info line about this client.
    #[inline(never)]
    fn note(&self, what: std::fmt::Arguments<'_>) {
        info!("smtp {}: {what}", self.peer.ip);
    }

    /// Write a reply; a 5xx counts as an error.
    #[inline(never)]
    fn say_text(&mut self, code: u16, status: &str, text: &str) {
        if code >= 500 {
            self.errors = self.errors.saturating_add(1);
        }
        self.out.push(Event::Reply(render(code, status, text)));
    }

    #[inline(never)]
    fn say(&mut self, r: &Rep) {
        self.say_text(r.0, r.1, r.2);
    }

    fn reply(&mut self, r: Response) {
        self.say_text(r.code, r.status.unwrap_or(""), &r.text);
    }

    /// A reply whose text is our host name and `rest`.
    #[inline(never)]
    fn say_host(&mut self, code: u16, status: &str, rest: &str) {
        let text = [self.params.host_name.as_str(), rest].concat();
        self.say_text(code, status, &text);
    }

    /// A last reply, then Close.
    #[inline(never)]
    fn close(&mut self, code: u16, status: &str, rest: &str) {
        self.say_host(code, status, rest);
        self.out.push(Event::Close);
        self.state = State::Closed;
    }

    fn auth_offered(&self) -> bool {
        self.params.auth_available && (self.peer.tls.is_some() || is_loopback(self.peer.ip))
    }

    fn starttls_offered(&self) -> bool {
        self.params.starttls_available && self.peer.tls.is_none()
    }

    fn protocol(&self) -> &'static str {
        match (self.esmtp, self.peer.tls.is_some(), self.auth.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        }
    }

    /// The transition table: what `input` does in the current state.
    fn step(&mut self, input: Input<'_>) {
        // Calls out of order (the caller's mistake) change nothing.
        match input {
            Input::Timeout => self.close(421, "4.4.2", " Error: timeout exceeded"),
            Input::Shutdown => self.close(421, "4.3.2", " Service shutting down"),
            Input::Line(line, policy) => match self.state {
                State::Data => self.data_line(line),
                State::Auth => self.auth_line(line, policy),
                State::Greeted | State::Ready | State::Mail | State::Rcpt => {
                    self.command_line(line, policy)
                }
                _ => {}
            },
            Input::Committed(result) if self.state == State::Commit => {
                self.state = State::Ready;
                match result {
                    Ok(id) => {
                        let text = ["Ok: queued as ", id.as_str()].concat();
                        self.say_text(250, "2.0.0", &text);
                    }
                    Err(CommitError::Io) => self.say(&WRITE_ERROR),
                    Err(CommitError::NoSpace) => self.say(&NO_SPACE),
                    Err(CommitError::Refused(r)) => self.reply(r),
                }
            }
            Input::TlsStarted(info) if self.state == State::TlsHandshake => {
                self.note(format_args!("TLS {} {}", info.version, info.cipher));
                self.peer.tls = Some(info);
                self.auth = None;
                self.state = State::Greeted;
            }
            _ => {}
        }
    }

    fn command_line(&mut self, line: Line<'_>, policy: &dyn Policy) {
        if line.overlong {
            return self.say(&LINE_TOO_LONG);
        }
        if !line.crlf && self.params.bare_lf == BareLf::Reject {
            return self.say(&BARE_LF_CMD);
        }
        match command::parse(line.text) {
            Ok(cmd) => self.command(cmd, line.crlf, policy),
            Err(r) => self.reply(r),
        }
    }

    /// Start a new session state after HELO/EHLO or RSET: no transaction.
    fn ready(&mut self) {
        self.state = State::Ready;
        self.rcpts = Vec::new();
        self.sender = Sender::Null;
    }

    /// One command in Greeted, Ready, Mail or Rcpt: check, then proceed.
    fn command(&mut self, cmd: Command, crlf: bool, policy: &dyn Policy) {
        let s = self.state;
        let r: &Rep = match cmd {
            Command::Helo(name) => {
                self.say_host(250, "", "");
                self.helo = name;
                self.esmtp = false;
                return self.ready();
            }
            Command::Ehlo(name) => {
                self.out.push(Event::Reply(self.ehlo_reply()));
                self.helo = name;
                self.esmtp = true;
                return self.ready();
            }
            Command::Mail { from, size, body } => match s {
                State::Ready => {
                    if size.is_some_and(|n| n > self.params.max_size) {
                        &TOO_BIG
                    } else {
                        self.sender = from.sender();
                        self.body = body;
                        self.rcpts.clear();
                        self.state = State::Mail;
                        &(250, "2.1.0", "Ok")
                    }
                }
                State::Greeted => &SEND_HELO,
                _ => &NESTED_MAIL,
            },
            Command::Rcpt { to } => match s {
                State::Mail | State::Rcpt => return self.rcpt(to, policy),
                _ => &NEED_MAIL,
            },
            Command::Data => match s {
                State::Rcpt => return self.data(crlf),
                State::Mail => &NO_VALID_RCPT,
                _ => &NEED_MAIL_RCPT,
            },
            Command::Rset => {
                if s != State::Greeted {
                    self.ready();
                }
                &OK_200
            }
            Command::Noop => &OK_200,
            Command::Quit => return self.close(221, "2.0.0", " closing connection"),
            // RFC 5321 §3.5.3: 252 when the server will not verify.
            Command::Vrfy => &VRFY,
            Command::Expn => &EXPN,
            Command::Help => &HELP,
            Command::Bdat => &BDAT,
            Command::Http => {
                self.say(&HTTP);
                self.out.push(Event::Close);
                self.state = State::Closed;
                self.note(format_args!("HTTP request on the SMTP port, closed"));
                return;
            }
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => return self.auth(mechanism, initial, policy),
        };
        self.say(r);
        if self.state == State::TlsHandshake {
            self.out.push(Event::StartTls);
        }
    }

    fn ehlo_reply(&self) -> String {
        let p = &self.params;
        let mut s = format!(
            "250-{}\r\n250-PIPELINING\r\n250-SIZE {}\r\n",
            p.host_name, p.max_size
        );
        if self.starttls_offered() {
            s.push_str("250-STARTTLS\r\n");
        }
        if self.auth_offered() {
            s.push_str("250-AUTH PLAIN LOGIN\r\n");
        }
        s.push_str("250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n");
        s
    }

    fn rcpt(&mut self, to: ForwardPath, policy: &dyn Policy) {
        if self.rcpts.len() >= self.params.max_recipients {
            return self.say(&TOO_MANY_RCPTS);
        }
        let path = match to {
            ForwardPath::Path(p) => p,
            ForwardPath::Postmaster => match Address::new("postmaster", &self.params.host_name) {
                Ok(addr) => SmtpPath {
                    addr,
                    route: Vec::new(),
                    quoted: false,
                },
                Err(_) => return self.say(&NO_POSTMASTER),
            },
        };
        let session = SessionInfo {
            ip: self.peer.ip,
            helo: &self.helo,
            sender: &self.sender,
            auth_user: self.auth.as_deref(),
            tls: self.peer.tls.is_some(),
        };
        match policy.rcpt(&RcptInfo { path: &path }, &session) {
            Verdict::Accept => {
                self.say(&(250, "2.1.5", "Ok"));
                self.rcpts.push(path.addr);
                self.state = State::Rcpt;
            }
            Verdict::Reject(r) => {
                self.note(format_args!(
                    "reject RCPT <{}> from <{}>: {} {}",
                    path.addr, self.sender, r.code, r.text
                ));
                self.reply(r);
            }
        }
    }

    fn data(&mut self, crlf: bool) {
        let txn = Transaction {
            sender: std::mem::replace(&mut self.sender, Sender::Null),
            recipients: std::mem::take(&mut self.rcpts),
            body: self.body,
            helo: self.helo.clone(),
            protocol: self.protocol(),
            auth_user: self.auth.clone(),
            peer: self.peer.clone(),
        };
        self.out.push(Event::MessageBegin(Box::new(txn)));
        self.say_text(354, "", "End data with <CR><LF>.<CR><LF>");
        self.sink = Sink {
            prev_crlf: crlf,
            size: 0,
            aborted: None,
        };
        self.state = State::Data;
    }

    /// One line between 354 and the end of data (RFC 5321 §4.1.1.4,
    /// §4.5.2).
    fn data_line(&mut self, line: Line<'_>) {
        let sink = &mut self.sink;
        if line.text == b"." && line.crlf && sink.prev_crlf && !line.overlong {
            return self.data_end();
        }
        let mut abort = |sink: &mut Sink, why: AbortReason| {
            if sink.aborted.is_none() {
                sink.aborted = Some(why);
                self.out.push(Event::DataAbort(why));
            }
        };
        if line.overlong {
            abort(sink, AbortReason::LineTooLong);
        } else if !line.crlf && self.params.bare_lf == BareLf::Reject {
            abort(sink, AbortReason::BareLf);
        }
        let text = line.text.strip_prefix(b".").unwrap_or(line.text);
        sink.size = sink.size.saturating_add(text.len() as u64 + 1);
        if sink.size > self.params.max_size {
            abort(sink, AbortReason::TooBig);
        }
        if sink.aborted.is_none() {
            self.out.push(Event::DataLine(text.to_vec()));
        }
        sink.prev_crlf = line.crlf;
    }

    fn data_end(&mut self) {
        let long;
        let (code, status, text) = match self.sink.aborted {
            None => {
                self.out.push(Event::DataEnd);
                self.state = State::Commit;
                return;
            }
            Some(AbortReason::TooBig) => TOO_BIG,
            Some(AbortReason::LineTooLong) => {
                long = format!("Line too long (limit {} bytes)", self.params.max_line);
                (500, "5.5.2", long.as_str())
            }
            Some(AbortReason::BareLf) => BARE_LF_DATA,
        };
        self.note(format_args!("message refused: {} {}", code, text));
        self.say_text(code, status, text);
        self.state = State::Ready;
    }

    /// STARTTLS: its reply; the state is TlsHandshake when accepted.
    fn starttls(&mut self) -> &'static Rep {
        if self.peer.tls.is_some() {
            &TLS_ACTIVE
        } else if !self.params.starttls_available {
            &NO_STARTTLS
        } else {
            match self.state {
                State::Ready => {
                    self.state = State::TlsHandshake;
                    &TLS_READY
                }
                State::Greeted => &SEND_EHLO,
                _ => &IN_TRANSACTION,
            }
        }
    }

    fn auth(&mut self, mechanism: Mechanism, initial: Option<String>, policy: &dyn Policy) {
        let refusal = match self.state {
            State::Ready if self.esmtp => {
                if self.auth.is_some() {
                    Some(&ALREADY_AUTH)
                } else if !self.params.auth_available {
                    Some(&NO_AUTH)
                } else if !self.auth_offered() {
                    // RFC 4954 §6: not without TLS (loopback excepted).
                    Some(&ENCRYPTION_REQUIRED)
                } else {
                    None
                }
            }
            State::Mail | State::Rcpt => Some(&IN_TRANSACTION),
            _ => Some(&SEND_EHLO),
        };
        if let Some(r) = refusal {
            return self.say(r);
        }
        let step = match mechanism {
            Mechanism::Plain => AuthStep::Plain,
            Mechanism::Login => AuthStep::LoginUser,
            Mechanism::Other => return self.say(&UNKNOWN_MECH),
        };
        match initial {
            Some(resp) => match decode(resp.as_bytes()) {
                Some(bytes) => self.auth_response(step, bytes, policy),
                None => self.say(&CANNOT_DECODE),
            },
            None => {
                self.out.push(Event::Reply(
                    if step == AuthStep::Plain {
                        "334 \r\n"
                    } else {
                        ASK_USER
                    }
                    .into(),
                ));
                self.step = step;
                self.state = State::Auth;
            }
        }
    }

    /// A client response line in an AUTH exchange (RFC 4954 §4).
    fn auth_line(&mut self, line: Line<'_>, policy: &dyn Policy) {
        self.state = State::Ready;
        let bytes = if line.overlong {
            Err(&AUTH_LINE_TOO_LONG)
        } else if line.text == b"*" {
            Err(&AUTH_CANCELLED)
        } else {
            decode(line.text).ok_or(&CANNOT_DECODE)
        };
        match bytes {
            Ok(b) => self.auth_response(self.step, b, policy),
            Err(r) => self.say(r),
        }
    }

    /// The decoded response for `step`; the state is Ready unless the
    /// exchange goes on.
    fn auth_response(&mut self, step: AuthStep, bytes: Vec<u8>, policy: &dyn Policy) {
        match step {
            AuthStep::Plain => self.auth_plain(&bytes, policy),
            AuthStep::LoginUser => match String::from_utf8(bytes) {
                Ok(user) => {
                    self.out.push(Event::Reply(ASK_PASS.into()));
                    self.login_user = user;
                    self.step = AuthStep::LoginPass;
                    self.state = State::Auth;
                }
                Err(_) => self.say(&NOT_UTF8),
            },
            AuthStep::LoginPass => {
                let user = std::mem::take(&mut self.login_user);
                self.auth_check(user.as_bytes(), &bytes, policy);
            }
        }
    }

    /// RFC 4616: `[authzid] NUL authcid NUL passwd`. An authzid other than
    /// the authcid is refused (no proxy authorization).
    fn auth_plain(&mut self, bytes: &[u8], policy: &dyn Policy) {
        let mut parts = bytes.split(|&b| b == 0);
        let (Some(authz), Some(user), Some(pass), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.say(&BAD_PLAIN);
        };
        if !authz.is_empty() && authz != user {
            return self.auth_failed(user);
        }
        self.auth_check(user, pass, policy);
    }

    /// Ask the policy. User names and passwords are UTF-8 (RFC 4616 §2);
    /// a user name with control characters never reaches the policy.
    fn auth_check(&mut self, user: &[u8], pass: &[u8], policy: &dyn Policy) {
        let creds = std::str::from_utf8(user)
            .ok()
            .filter(|u| !u.is_empty() && u.len() <= 256 && !u.chars().any(char::is_control))
            .zip(std::str::from_utf8(pass).ok());
        match creds {
            Some((u, p)) if policy.authenticate(u, p) => {
                self.note(format_args!("AUTH as {u}"));
                self.say(&AUTH_OK);
                self.auth = Some(u.to_string());
            }
            _ => self.auth_failed(user),
        }
    }

    fn auth_failed(&mut self, user: &[u8]) {
        let user = String::from_utf8_lossy(user);
        let shown: String = user.chars().filter(|c| !c.is_control()).take(64).collect();
        self.note(format_args!("AUTH failed for '{shown}'"));
        self.say(&AUTH_INVALID);
    }
}

/// Base64 of an AUTH response; `=` is the empty response (RFC 4954 §4).
fn decode(text: &[u8]) -> Option<Vec<u8>> {
    if text == b"=" {
        return Some(Vec::new());
    }
    base64::decode(std::str::from_utf8(text).ok()?.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::policy::tests::example;
    use crate::smtp::policy::RelayPolicy;

    const LAN: &str = "192.168.1.20";
    const OUTSIDE: &str = "203.0.113.9";
    const LOOPBACK: &str = "127.0.0.1";

    fn params() -> ServerParams {
        ServerParams {
            host_name: "mx.here.test".into(),
            max_cmd_line: MAX_CMD_LINE,
            max_line: 1000,
            max_size: 10_000,
            max_recipients: 100,
            max_errors: MAX_ERRORS,
            bare_lf: BareLf::Normalize,
            starttls_available: true,
            auth_available: true,
        }
    }

    fn peer(ip: &str) -> PeerInfo {
        PeerInfo {
            ip: ip.parse().unwrap(),
            name: None,
            tls: None,
        }
    }

    fn tls() -> TlsInfo {
        TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
        }
    }

    /// One event as a transcript line: replies as sent, the rest in
    /// brackets.
    fn show(e: &Event) -> String {
        match e {
            Event::Reply(r) => r.clone(),
            Event::StartTls => "[starttls]\n".into(),
            Event::MessageBegin(t) => {
                let to: Vec<String> = t.recipients.iter().map(|a| a.to_string()).collect();
                let auth = t.auth_user.as_deref().map(|u| format!(" auth={u}"));
                format!(
                    "[begin <{}> -> {} {}{}]\n",
                    t.sender,
                    to.join(","),
                    t.protocol,
                    auth.unwrap_or_default()
                )
            }
            Event::DataLine(l) => format!("[line {}]\n", String::from_utf8_lossy(l)),
            Event::DataAbort(r) => format!("[abort {r:?}]\n"),
            Event::DataEnd => "[end]\n".into(),
            Event::Close => "[close]\n".into(),
        }
    }

    /// Drives a session the way the daemon does: every message is
    /// committed as Q1, Q2, … right after its DataEnd.
    struct Driver {
        s: Session,
        policy: RelayPolicy<'static>,
        out: String,
        queued: u32,
    }

    impl Driver {
        fn new(p: ServerParams, ip: &str) -> Driver {
            let mut s = Session::new(p, peer(ip));
            let out = s.greeting().iter().map(show).collect();
            Driver {
                s,
                policy: example(),
                out,
                queued: 0,
            }
        }

        fn take(&mut self, events: Vec<Event>) {
            for e in events {
                self.out.push_str(&show(&e));
                if e == Event::DataEnd {
                    self.queued += 1;
                    let id = format!("Q{}", self.queued);
                    let more = self.s.data_committed(Ok(id), &self.policy);
                    self.take(more);
                }
            }
        }

        fn feed(&mut self, bytes: &[u8]) -> &mut Driver {
            let events = self.s.feed(bytes, &self.policy);
            self.take(events);
            assert!(
                self.s.buffered() <= self.s.buffer_bound(),
                "{} buffered",
                self.s.buffered()
            );
            self
        }

        fn feed_in(&mut self, bytes: &[u8], chunk: usize) -> &mut Driver {
            for c in bytes.chunks(chunk.max(1)) {
                self.feed(c);
            }
            self
        }

        fn tls_started(&mut self) -> &mut Driver {
            let events = self.s.tls_started(tls());
            self.take(events);
            self
        }

        /// The transcript so far, and start a new one.
        fn said(&mut self) -> String {
            std::mem::take(&mut self.out)
        }
    }

    /// Whole session in one feed, one byte at a time, in odd chunks and
    /// split in two at every byte: the transcripts must be identical.
    fn session(p: ServerParams, ip: &str, input: &[u8]) -> String {
        let whole = Driver::new(p.clone(), ip).feed(input).said();
        for chunk in [1, 2, 3, 7, 64] {
            let split = Driver::new(p.clone(), ip).feed_in(input, chunk).said();
            assert_eq!(split, whole, "chunks of {chunk}");
        }
        if input.len() <= 4096 {
            for at in 0..=input.len() {
                let (a, b) = input.split_at(at);
                let split = Driver::new(p.clone(), ip).feed(a).feed(b).said();
                assert_eq!(split, whole, "split at {at}");
            }
        }
        whole
    }

    const GREETING: &str = "220 mx.here.test ESMTP masqmail\r\n";
    const EHLO_PLAIN: &str = "250-mx.here.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n\
        250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n";

    fn b64(s: &str) -> String {
        base64::encode(s.as_bytes())
    }

    /// A transcript from its lines: replies get CRLF, `[events]` LF.
    fn transcript(lines: &[&str]) -> String {
        let end = |l: &str| if l.starts_with('[') { "\n" } else { "\r\n" };
        lines.iter().map(|l| format!("{l}{}", end(l))).collect()
    }

    #[test]
    fn ehlo_advertises_what_is_offered() {
        let mut d = Driver::new(params(), OUTSIDE);
        d.feed(b"EHLO client.example\r\n");
        assert_eq!(d.said(), format!("{GREETING}{EHLO_PLAIN}"));

        // Loopback: AUTH without TLS.
        let mut d = Driver::new(params(), LOOPBACK);
        d.feed(b"EHLO localhost\r\n").said();
        d.feed(b"EHLO localhost\r\n");
        assert_eq!(
            d.said(),
            "250-mx.here.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-STARTTLS\r\n\
             250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n"
        );

        // Implicit TLS: AUTH, no STARTTLS.
        let mut p = PeerInfo {
            tls: Some(tls()),
            ..peer(OUTSIDE)
        };
        let mut s = Session::new(params(), p.clone());
        let ev = s.feed(b"EHLO c\r\n", &example());
        assert_eq!(
            ev.iter().map(show).collect::<String>(),
            "250-mx.here.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n\
             250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n"
        );

        // Neither certificate nor users: neither extension.
        p.tls = None;
        let bare = ServerParams {
            starttls_available: false,
            auth_available: false,
            ..params()
        };
        let mut s = Session::new(bare, p);
        let ev = s.feed(b"HELO c\r\nEHLO c\r\n", &example());
        assert_eq!(
            ev.iter().map(show).collect::<String>(),
            "250 mx.here.test\r\n250-mx.here.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n\
             250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n"
        );
    }

    #[test]
    fn a_pipelined_message() {
        let got = session(
            params(),
            LAN,
            b"EHLO client\r\nMAIL FROM:<a@b.test> BODY=8BITMIME\r\nRCPT TO:<alice@here.test>\r\n\
              RCPT TO:<x@remote.test>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
        );
        let want = format!(
            "{GREETING}{EHLO_PLAIN}\
             250 2.1.0 Ok\r\n\
             250 2.1.5 Ok\r\n\
             250 2.1.5 Ok\r\n\
             [begin <a@b.test> -> alice@here.test,x@remote.test ESMTP]\n\
             354 End data with <CR><LF>.<CR><LF>\r\n\
             [line Subject: hi]\n\
             [line ]\n\
             [line .dot]\n\
             [end]\n\
             250 2.0.0 Ok: queued as Q1\r\n\
             221 2.0.0 mx.here.test closing connection\r\n\
             [close]\n"
        );
        assert_eq!(got, want);
    }

    #[test]
    fn no_250_before_the_message_is_committed() {
        let policy = example();
        let mut s = Session::new(params(), peer(LAN));
        let ev = s.feed(
            b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@here.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
            &policy,
        );
        assert_eq!(ev.last(), Some(&Event::DataEnd));
        assert!(!ev
            .iter()
            .any(|e| matches!(e, Event::Reply(r) if r.starts_with("250 2.0.0"))));
        // Input keeps waiting while the caller commits.
        assert!(s.feed(b"NOOP\r\n", &policy).is_empty());
        let ev = s.data_committed(Err(CommitError::NoSpace), &policy);
        let text: String = ev.iter().map(show).collect();
        assert_eq!(
            text,
            "452 4.3.1 Insufficient system storage\r\n\
             221 2.0.0 mx.here.test closing connection\r\n[close]\n"
        );
        // Only once.
        assert!(s.data_committed(Ok("X".into()), &policy).is_empty());

        let mut s = Session::new(params(), peer(LAN));
        s.feed(
            b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@here.test>\r\nDATA\r\n.\r\n",
            &policy,
        );
        let ev = s.data_committed(Err(CommitError::Io), &policy);
        assert_eq!(
            ev,
            vec![Event::Reply(
                "451 4.3.0 Error: queue file write error\r\n".into()
            )]
        );
        s.feed(
            b"MAIL FROM:<>\r\nRCPT TO:<bob@here.test>\r\nDATA\r\n.\r\n",
            &policy,
        );
        let refused = Response::new(552, "5.3.4", "Header section too large");
        let ev = s.data_committed(Err(CommitError::Refused(refused)), &policy);
        assert_eq!(
            ev,
            vec![Event::Reply(
                "552 5.3.4 Header section too large\r\n".into()
            )]
        );
    }

    /// SMTP smuggling: none of these ends the data; the text after them,
    /// a whole second transaction, is part of the one message.
    const SMUGGLE: &[&[u8]] = &[
        b"\n.\r\n",
        b"\r.\r\n",
        b"\n.\n",
        b"\r\n.\n",
        b"\r\n.\r",
        b"\r\n.\r\r\n",
        b"\r\n\n.\r\n",
    ];

    fn smuggling_input(seq: &[u8]) -> Vec<u8> {
        let mut v =
            b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@here.test>\r\nDATA\r\nbody".to_vec();
        v.extend_from_slice(seq);
        v.extend_from_slice(
            b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<bob@here.test>\r\nDATA\r\nevil\r\n.\r\nQUIT\r\n",
        );
        v
    }

    #[test]
    fn smuggling_sequences_never_end_the_data() {
        for seq in SMUGGLE {
            let got = session(params(), LAN, &smuggling_input(seq));
            let ctx = format!("{seq:?}:\n{got}");
            assert_eq!(got.matches("[begin").count(), 1, "{ctx}");
            assert_eq!(got.matches("[end]").count(), 1, "{ctx}");
            assert_eq!(got.matches("250 2.1.0").count(), 1, "{ctx}");
            assert!(got.contains("MAIL FROM:<evil@x.test>]\n"), "{ctx}");
            assert!(got.contains("[line evil]\n"), "{ctx}");
            let tail = transcript(&[
                "250 2.0.0 Ok: queued as Q1",
                "221 2.0.0 mx.here.test closing connection",
                "[close]",
            ]);
            assert!(got.ends_with(&tail), "{ctx}");
        }
        // A bare LF ends a line; the `.` line after it is data, un-stuffed.
        let got = session(params(), LAN, &smuggling_input(b"\n.\n"));
        assert!(
            got.contains("[line body]\n[line ]\n[line MAIL FROM:<evil@x.test>]\n"),
            "{got}"
        );
        // A bare CR is data.
        let got = session(params(), LAN, &smuggling_input(b"\r.\r\n"));
        assert!(got.contains("[line body\r.]\n"), "{got}");
    }

    #[test]
    fn bare_lf_reject_refuses_the_message() {
        let p = ServerParams {
            bare_lf: BareLf::Reject,
            ..params()
        };
        for seq in SMUGGLE {
            let got = session(p.clone(), LAN, &smuggling_input(seq));
            let ctx = format!("{seq:?}:\n{got}");
            assert_eq!(got.matches("[begin").count(), 1, "{ctx}");
            if seq.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') || seq.starts_with(b"\n") {
                assert!(got.contains("[abort BareLf]\n"), "{ctx}");
                assert!(!got.contains("[end]"), "{ctx}");
                assert!(got.contains("550 5.6.0 "), "{ctx}");
            } else {
                assert!(
                    got.contains("[end]\n250 2.0.0 Ok: queued as Q1\r\n"),
                    "{ctx}"
                );
            }
            assert!(
                got.ends_with("221 2.0.0 mx.here.test closing connection\r\n[close]\n"),
                "{ctx}"
            );
        }
        let got = session(p, LAN, b"HELO c\nNOOP\r\n");
        assert_eq!(
            got,
            transcript(&[
                "220 mx.here.test ESMTP masqmail",
                "500 5.5.2 Bare LF received: lines must end with CRLF",
                "250 2.0.0 Ok",
            ])
        );
        // Normalize: a bare LF ends a command line.
        let got = session(params(), LAN, b"HELO c\nNOOP\n");
        assert_eq!(
            got,
            format!("{GREETING}250 mx.here.test\r\n250 2.0.0 Ok\r\n")
        );
    }

    #[test]
    fn data_after_a_bare_lf_data_command_needs_crlf_twice() {
        // DATA ended by a bare LF: a `.` right after it is not the end.
        let got = session(
            params(),
            LAN,
            b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@here.test>\r\nDATA\n.\r\nx\r\n.\r\n",
        );
        assert!(got.contains("[line ]\n[line x]\n[end]\n"), "{got}");
    }

    #[test]
    fn starttls_discards_pipelined_plaintext() {
        let mut d = Driver::new(params(), OUTSIDE);
        d.feed(b"EHLO c\r\n").said();
        d.feed(b"STARTTLS\r\nRSET\r\nMAIL FROM:<a@b.test>\r\n");
        assert_eq!(d.said(), "220 2.0.0 Ready to start TLS\r\n[starttls]\n");
        assert_eq!(d.s.buffered(), 0);
        // Plaintext arriving before the handshake is dropped too.
        d.feed(b"RCPT TO:<x@remote.test>\r\n");
        assert_eq!(d.said(), "");
        d.tls_started();
        assert_eq!(d.said(), "");
        // The EHLO state is forgotten.
        d.feed(b"MAIL FROM:<a@b.test>\r\n");
        assert_eq!(d.said(), "503 5.5.1 Send HELO/EHLO first\r\n");
        d.feed(b"EHLO c\r\n");
        assert_eq!(
            d.said(),
            "250-mx.here.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n\
             250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n"
        );
        d.feed(b"STARTTLS\r\n");
        assert_eq!(d.said(), "503 5.5.1 TLS already active\r\n");
        let auth = format!("AUTH PLAIN {}\r\n", b64("\0carol\0secret"));
        d.feed(auth.as_bytes());
        assert_eq!(d.said(), "235 2.7.0 Authentication successful\r\n");
        d.feed(b"MAIL FROM:<carol@here.test>\r\nRCPT TO:<x@remote.test>\r\nDATA\r\nhi\r\n.\r\n");
        assert!(d
            .said()
            .contains("[begin <carol@here.test> -> x@remote.test ESMTPSA auth=carol]"),);
    }

    #[test]
    fn starttls_refusals() {
        let no_cert = ServerParams {
            starttls_available: false,
            ..params()
        };
        let got = session(no_cert, LAN, b"EHLO c\r\nSTARTTLS\r\n");
        assert!(
            got.ends_with("502 5.5.1 STARTTLS not available\r\n"),
            "{got}"
        );
        let got = session(
            params(),
            LAN,
            b"STARTTLS\r\nEHLO c\r\nMAIL FROM:<>\r\nSTARTTLS\r\n",
        );
        assert!(
            got.starts_with(&format!("{GREETING}503 5.5.1 Send EHLO first\r\n")),
            "{got}"
        );
        assert!(
            got.ends_with("503 5.5.1 MAIL transaction in progress\r\n"),
            "{got}"
        );
        // AUTH on loopback before STARTTLS is forgotten by it.
        let mut d = Driver::new(params(), LOOPBACK);
        let auth = format!(
            "EHLO c\r\nAUTH PLAIN {}\r\nSTARTTLS\r\n",
            b64("\0carol\0secret")
        );
        d.feed(auth.as_bytes());
        assert!(d.said().ends_with(
            "235 2.7.0 Authentication successful\r\n220 2.0.0 Ready to start TLS\r\n[starttls]\n"
        ));
        d.tls_started();
        d.feed(b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@remote.test>\r\n");
        assert!(d.said().ends_with("554 5.7.1 Relay access denied\r\n"));
    }

    #[test]
    fn auth_exchanges() {
        let plain = b64("\0carol\0secret");
        let table: Vec<(&str, &str, String, &str)> = vec![
            (
                "not offered in clear",
                OUTSIDE,
                format!("EHLO c\r\nAUTH PLAIN {plain}\r\n"),
                "538 5.7.11 Encryption required for requested authentication mechanism\r\n",
            ),
            (
                "before EHLO",
                LOOPBACK,
                format!("AUTH PLAIN {plain}\r\n"),
                "503 5.5.1 Send EHLO first\r\n",
            ),
            (
                "after HELO",
                LOOPBACK,
                format!("HELO c\r\nAUTH PLAIN {plain}\r\n"),
                "250 mx.here.test\r\n503 5.5.1 Send EHLO first\r\n",
            ),
            (
                "plain",
                LOOPBACK,
                format!("EHLO c\r\nAUTH PLAIN {plain}\r\n"),
                "235 2.7.0 Authentication successful\r\n",
            ),
            (
                "plain, authzid",
                LOOPBACK,
                format!("EHLO c\r\nAUTH PLAIN {}\r\n", b64("carol\0carol\0secret")),
                "235 2.7.0 Authentication successful\r\n",
            ),
            (
                "plain, other authzid",
                LOOPBACK,
                format!("EHLO c\r\nAUTH PLAIN {}\r\n", b64("root\0carol\0secret")),
                "535 5.7.8 Authentication credentials invalid\r\n",
            ),
            (
                "plain, challenge",
                LOOPBACK,
                format!("EHLO c\r\nAUTH PLAIN\r\n{plain}\r\n"),
                "334 \r\n235 2.7.0 Authentication successful\r\n",
            ),
            (
                "login",
                LOOPBACK,
                format!(
                    "EHLO c\r\nAUTH LOGIN\r\n{}\r\n{}\r\n",
                    b64("carol"),
                    b64("secret")
                ),
                "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n",
            ),
            (
                "login, initial",
                LOOPBACK,
                format!(
                    "EHLO c\r\nAUTH LOGIN {}\r\n{}\r\n",
                    b64("carol"),
                    b64("secret")
                ),
                "334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n",
            ),
            (
                "wrong password",
                LOOPBACK,
                format!("EHLO c\r\nAUTH PLAIN {}\r\n", b64("\0carol\0guess")),
                "535 5.7.8 Authentication credentials invalid\r\n",
            ),
            (
                "password not UTF-8",
                LOOPBACK,
                format!(
                    "EHLO c\r\nAUTH PLAIN {}\r\n",
                    base64::encode(b"\0carol\0\xff")
                ),
                "535 5.7.8 Authentication credentials invalid\r\n",
            ),
            (
                "user with control characters",
                LOOPBACK,
                format!(
                    "EHLO c\r\nAUTH LOGIN {}\r\n{}\r\n",
                    b64("car\nol"),
                    b64("secret")
                ),
                "334 UGFzc3dvcmQ6\r\n535 5.7.8 Authentication credentials invalid\r\n",
            ),
            (
                "bad base64",
                LOOPBACK,
                "EHLO c\r\nAUTH PLAIN !!!!\r\n".into(),
                "501 5.5.2 Cannot decode AUTH response\r\n",
            ),
            (
                "bad base64 in exchange",
                LOOPBACK,
                "EHLO c\r\nAUTH LOGIN\r\nY2Fyb2w\r\n".into(),
                "334 VXNlcm5hbWU6\r\n501 5.5.2 Cannot decode AUTH response\r\n",
            ),
            (
                "not three fields",
                LOOPBACK,
                format!("EHLO c\r\nAUTH PLAIN {}\r\n", b64("carol")),
                "501 5.5.2 Malformed AUTH PLAIN response\r\n",
            ),
            (
                "cancelled",
                LOOPBACK,
                "EHLO c\r\nAUTH LOGIN\r\n*\r\n".into(),
                "334 VXNlcm5hbWU6\r\n501 5.0.0 Authentication cancelled\r\n",
            ),
            (
                "empty response",
                LOOPBACK,
                "EHLO c\r\nAUTH PLAIN =\r\n".into(),
                "501 5.5.2 Malformed AUTH PLAIN response\r\n",
            ),
            (
                "unknown mechanism",
                LOOPBACK,
                "EHLO c\r\nAUTH CRAM-MD5\r\n".into(),
                "504 5.5.4 Unrecognized authentication type\r\n",
            ),
            (
                "twice",
                LOOPBACK,
                format!("EHLO c\r\nAUTH PLAIN {plain}\r\nAUTH PLAIN {plain}\r\n"),
                "235 2.7.0 Authentication successful\r\n503 5.5.1 Already authenticated\r\n",
            ),
            (
                "in a transaction",
                LOOPBACK,
                format!("EHLO c\r\nMAIL FROM:<>\r\nAUTH PLAIN {plain}\r\n"),
                "250 2.1.0 Ok\r\n503 5.5.1 MAIL transaction in progress\r\n",
            ),
            (
                "long line",
                LOOPBACK,
                format!("EHLO c\r\nAUTH PLAIN\r\n{}\r\nNOOP\r\n", "A".repeat(2000)),
                "334 \r\n500 5.5.6 Authentication Exchange line is too long\r\n250 2.0.0 Ok\r\n",
            ),
        ];
        for (name, ip, input, want) in table {
            let got = session(params(), ip, input.as_bytes());
            let ehlo_end = got
                .find("250 8BITMIME\r\n")
                .map_or(GREETING.len(), |i| i + 14);
            assert_eq!(&got[ehlo_end..], want, "{name}");
        }
        let no_users = ServerParams {
            auth_available: false,
            ..params()
        };
        let got = session(
            no_users,
            LOOPBACK,
            format!("EHLO c\r\nAUTH PLAIN {plain}\r\n").as_bytes(),
        );
        assert!(got.ends_with("502 5.5.1 AUTH not available\r\n"), "{got}");
    }

    #[test]
    fn relaying() {
        let input = |pre: &str| {
            format!(
                "EHLO c\r\n{pre}MAIL FROM:<a@b.test>\r\nRCPT TO:<x@remote.test>\r\n\
                 RCPT TO:<nobody@here.test>\r\nRCPT TO:<Postmaster>\r\n"
            )
        };
        let got = session(params(), OUTSIDE, input("").as_bytes());
        let want = transcript(&[
            "250 2.1.0 Ok",
            "554 5.7.1 Relay access denied",
            "550 5.1.1 User unknown in local recipient table",
            "250 2.1.5 Ok",
        ]);
        assert!(got.ends_with(&want), "{got}");
        let got = session(params(), LAN, input("").as_bytes());
        let want = transcript(&[
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "550 5.1.1 User unknown in local recipient table",
            "250 2.1.5 Ok",
        ]);
        assert!(got.ends_with(&want), "{got}");
        // Loopback is not in local_nets here: AUTH makes the difference.
        let got = session(params(), LOOPBACK, input("").as_bytes());
        assert!(got.contains("554 5.7.1 Relay access denied\r\n"), "{got}");
        let auth = format!("AUTH PLAIN {}\r\n", b64("\0carol\0secret"));
        let got = session(params(), LOOPBACK, input(&auth).as_bytes());
        let want = transcript(&[
            "235 2.7.0 Authentication successful",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "550 5.1.1 User unknown in local recipient table",
            "250 2.1.5 Ok",
        ]);
        assert!(got.ends_with(&want), "{got}");
        let got = session(
            params(),
            OUTSIDE,
            b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<x%remote.test@here.test>\r\n\
              RCPT TO:<@here.test:alice@here.test>\r\n",
        );
        let want = transcript(&[
            "550 5.7.1 Relay access denied: '%' in local part",
            "550 5.7.1 Relay access denied: source route",
        ]);
        assert!(got.ends_with(&want), "{got}");
        // <Postmaster> means the postmaster of host_name.
        let mut d = Driver::new(params(), OUTSIDE);
        d.feed(b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nDATA\r\n.\r\n");
        assert!(d
            .said()
            .contains("[begin <> -> postmaster@mx.here.test SMTP]"));
    }

    #[test]
    fn two_thousand_recipients() {
        let mut input = b"EHLO c\r\nMAIL FROM:<a@b.test>\r\n".to_vec();
        for _ in 0..2000 {
            input.extend_from_slice(b"RCPT TO:<alice@here.test>\r\n");
        }
        input.extend_from_slice(b"DATA\r\nx\r\n.\r\nQUIT\r\n");
        let got = Driver::new(params(), OUTSIDE).feed(&input).said();
        assert_eq!(got.matches("250 2.1.5 Ok\r\n").count(), 100);
        assert_eq!(
            got.matches("452 4.5.3 Too many recipients\r\n").count(),
            1900
        );
        assert!(!got.contains("421"));
        let begin = got.lines().find(|l| l.starts_with("[begin")).unwrap();
        assert_eq!(begin.matches("alice@here.test").count(), 100);
        assert!(got.ends_with(
            "250 2.0.0 Ok: queued as Q1\r\n221 2.0.0 mx.here.test closing connection\r\n[close]\n"
        ));
    }

    #[test]
    fn a_100_kb_command_line() {
        let mut input = b"EHLO c\r\nNOOP ".to_vec();
        input.extend(std::iter::repeat(b'x').take(100 * 1024));
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let want = format!("{GREETING}{EHLO_PLAIN}500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n");
        for chunk in [1, 999, 1000, 1001, 4096, input.len()] {
            let got = Driver::new(params(), OUTSIDE).feed_in(&input, chunk).said();
            assert_eq!(got, want, "chunks of {chunk}");
        }
        // The limit is exact: 998 bytes plus CRLF pass, 999 do not.
        for (len, want) in [
            (998, "250 2.0.0 Ok\r\n"),
            (999, "500 5.5.2 Line too long\r\n"),
        ] {
            let line = format!("NOOP {}\r\n", "y".repeat(len - 5));
            let got = session(params(), LAN, line.as_bytes());
            assert_eq!(got, format!("{GREETING}{want}"), "{len}");
        }
    }

    #[test]
    fn too_many_errors_close_the_session() {
        let mut d = Driver::new(params(), OUTSIDE);
        d.said();
        d.feed(&b"FOO\r\n".repeat(12));
        let want = format!(
            "{}421 4.7.0 mx.here.test Error: too many errors\r\n[close]\n",
            "500 5.5.2 Command unrecognized\r\n".repeat(10)
        );
        assert_eq!(d.said(), want);
        assert!(d.s.is_closed());
        d.feed(b"HELO c\r\n");
        assert_eq!(d.said(), "");
        // Failed AUTH attempts count.
        let mut d = Driver::new(params(), LOOPBACK);
        d.feed(b"EHLO c\r\n");
        d.said();
        let guess = format!("AUTH PLAIN {}\r\n", b64("\0carol\0guess"));
        d.feed(guess.repeat(10).as_bytes());
        assert!(d.said().ends_with(&transcript(&[
            "535 5.7.8 Authentication credentials invalid",
            "421 4.7.0 mx.here.test Error: too many errors",
            "[close]",
        ])));
    }

    #[test]
    fn data_limits() {
        let head = b"EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@here.test>\r\nDATA\r\n";
        // Over max_size: dropped, consumed to the end, then 552.
        let mut input = head.to_vec();
        for _ in 0..200 {
            input.extend_from_slice(&[b'z'; 99]);
            input.extend_from_slice(b"\r\n");
        }
        input.extend_from_slice(b".\r\nRSET\r\n");
        let got = session(params(), LAN, &input);
        assert_eq!(got.matches("[line ").count(), 100, "{got}");
        let tail = transcript(&[
            "[abort TooBig]",
            "552 5.3.4 Message size exceeds fixed maximum message size",
            "250 2.0.0 Ok",
        ]);
        assert!(got.ends_with(&tail), "{got}");
        // Exactly max_size passes (99 bytes + LF per line).
        let mut input = head.to_vec();
        for _ in 0..100 {
            input.extend_from_slice(&[b'z'; 99]);
            input.extend_from_slice(b"\r\n");
        }
        input.extend_from_slice(b".\r\n");
        let got = session(params(), LAN, &input);
        assert!(
            got.ends_with("[end]\n250 2.0.0 Ok: queued as Q1\r\n"),
            "{got}"
        );
        // A long line: dropped, consumed to the end, then 500.
        let mut input = head.to_vec();
        input.extend_from_slice(b"first\r\n");
        input.extend_from_slice(&[b'w'; 5000]);
        input.extend_from_slice(b"\r\nlast\r\n.\r\nNOOP\r\n");
        let got = session(params(), LAN, &input);
        let tail = transcript(&[
            "[line first]",
            "[abort LineTooLong]",
            "500 5.5.2 Line too long (limit 1000 bytes)",
            "250 2.0.0 Ok",
        ]);
        assert!(got.ends_with(&tail), "{got}");
        // A long line ended by CRLF does let the next `.` end the data;
        // one ended by a bare LF does not.
        let mut input = head.to_vec();
        input.extend_from_slice(&[b'w'; 5000]);
        input.extend_from_slice(b"\n.\r\nstill data\r\n.\r\n");
        let got = session(params(), LAN, &input);
        assert_eq!(got.matches("500 5.5.2 Line too long").count(), 1, "{got}");
        // SIZE= at MAIL.
        let got = session(
            params(),
            LAN,
            b"EHLO c\r\nMAIL FROM:<a@b.test> SIZE=10001\r\nMAIL FROM:<a@b.test> SIZE=10000\r\n",
        );
        assert!(
            got.ends_with(
                "552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.1.0 Ok\r\n"
            ),
            "{got}"
        );
    }

    #[test]
    fn commands_in_and_out_of_sequence() {
        let table: Vec<(&[u8], String)> = vec![
            (
                b"MAIL FROM:<a@b.test>\r\n",
                "503 5.5.1 Send HELO/EHLO first\r\n".into(),
            ),
            (
                b"RCPT TO:<alice@here.test>\r\n",
                "503 5.5.1 Need MAIL command\r\n".into(),
            ),
            (
                b"DATA\r\n",
                "503 5.5.1 Need MAIL and RCPT commands\r\n".into(),
            ),
            (
                b"HELO c\r\nMAIL FROM:<>\r\nDATA\r\n",
                "250 mx.here.test\r\n250 2.1.0 Ok\r\n554 5.5.1 No valid recipients\r\n".into(),
            ),
            (
                b"HELO c\r\nMAIL FROM:<>\r\nMAIL FROM:<>\r\n",
                "250 mx.here.test\r\n250 2.1.0 Ok\r\n503 5.5.1 Nested MAIL command\r\n".into(),
            ),
            (
                b"HELO c\r\nMAIL FROM:<>\r\nRSET\r\nRCPT TO:<bob@here.test>\r\n",
                transcript(&[
                    "250 mx.here.test",
                    "250 2.1.0 Ok",
                    "250 2.0.0 Ok",
                    "503 5.5.1 Need MAIL command",
                ]),
            ),
            (
                b"HELO c\r\nMAIL FROM:<>\r\nEHLO d\r\nRCPT TO:<bob@here.test>\r\n",
                format!(
                    "{}{EHLO_PLAIN}{}",
                    transcript(&["250 mx.here.test", "250 2.1.0 Ok"]),
                    transcript(&["503 5.5.1 Need MAIL command"])
                ),
            ),
            (
                b"RSET\r\nNOOP\r\n",
                "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n".into(),
            ),
            (
                b"VRFY root\r\n",
                "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
                    .into(),
            ),
            (b"EXPN staff\r\n", "502 5.5.1 EXPN not available\r\n".into()),
            (
                b"HELP\r\n",
                "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP \
                 STARTTLS AUTH\r\n"
                    .into(),
            ),
            (
                b"BDAT 10 LAST\r\n",
                "502 5.5.1 BDAT not supported (no CHUNKING)\r\n".into(),
            ),
            (b"bogus\r\n", "500 5.5.2 Command unrecognized\r\n".into()),
            (b"HELO\r\n", "501 Syntax: HELO hostname\r\n".into()),
            (
                b"GET / HTTP/1.1\r\nHost: x\r\n",
                "221 2.7.0 This is an SMTP server, closing\r\n[close]\n".into(),
            ),
            (
                b"QUIT\r\nNOOP\r\n",
                "221 2.0.0 mx.here.test closing connection\r\n[close]\n".into(),
            ),
        ];
        for (input, want) in table {
            let got = session(params(), LAN, input);
            let ctx = String::from_utf8_lossy(input);
            assert_eq!(got.strip_prefix(GREETING), Some(want.as_str()), "{ctx}");
        }
    }

    #[test]
    fn timeout_closes() {
        let mut s = Session::new(params(), peer(LAN));
        let ev = s.timeout();
        assert_eq!(
            ev.iter().map(show).collect::<String>(),
            "421 4.4.2 mx.here.test Error: timeout exceeded\r\n[close]\n"
        );
        assert!(s.timeout().is_empty());
        assert!(s.feed(b"HELO c\r\n", &example()).is_empty());
    }

    #[test]
    fn shutdown_closes_even_in_data() {
        let mut s = Session::new(params(), peer(LAN));
        let p = example();
        s.feed(b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@here.test>\r\nDATA\r\nSubject: x\r\n", &p);
        let ev = s.shutdown();
        assert_eq!(
            ev.iter().map(show).collect::<String>(),
            "421 4.3.2 mx.here.test Service shutting down\r\n[close]\n"
        );
        assert!(s.is_closed());
        assert!(s.shutdown().is_empty());
        assert!(s.feed(b".\r\n", &p).is_empty());
    }

    #[test]
    fn replies_never_carry_control_characters() {
        let r = Response::new(250, "2.0.0", "Ok: queued as A\r\nB\u{e9}");
        assert_eq!(r.render(), "250 2.0.0 Ok: queued as A??B?\r\n");
        assert!(Response::new(500, "5.5.2", "x".repeat(1000)).render().len() < 512);
    }

    /// xorshift64: a reproducible stream of pseudo-random numbers.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    const TOKENS: &[&[u8]] = &[
        b"EHLO x\r\n",
        b"HELO y\r\n",
        b"MAIL FROM:<a@b.test>\r\n",
        b"MAIL FROM:<> SIZE=99999\r\n",
        b"RCPT TO:<alice@here.test>\r\n",
        b"RCPT TO:<x@remote.test>\r\n",
        b"RCPT TO:<x%y@here.test>\r\n",
        b"DATA\r\n",
        b".\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b".",
        b"..",
        b"AUTH PLAIN ",
        b"AUTH LOGIN\r\n",
        b"*\r\n",
        b"AGNhcm9sAHNlY3JldA==",
        b"AUTH PLAIN AGNhcm9sAHNlY3JldA==\r\n",
        b"RSET\r\n",
        b"NOOP\r\n",
        b"QUIT\r\n",
        b"BDAT 1\r\n",
        b"\0",
        b"\xff\xfe",
        b"<",
        b">",
        b"\"",
        b"@",
        b" ",
        b"SIZE=",
        b"VRFY a\r\n",
        b"STARTTLS\r\n",
        b"GET / HTTP/1.0\r\n",
    ];

    fn random_input(rng: &mut Rng, with_starttls: bool) -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..rng.below(60) {
            let t = TOKENS[rng.below(TOKENS.len())];
            if !with_starttls && (t.starts_with(b"STARTTLS") || t.starts_with(b"GET")) {
                continue;
            }
            match rng.below(20) {
                0 => v.extend(std::iter::repeat(b'x').take(rng.below(300))),
                1 => v.push(rng.next() as u8),
                _ => v.extend_from_slice(t),
            }
        }
        v
    }

    fn small_params(rng: &mut Rng) -> ServerParams {
        ServerParams {
            max_cmd_line: 40 + rng.below(60),
            max_line: 16 + rng.below(100),
            max_size: 50 + rng.below(500) as u64,
            max_recipients: 1 + rng.below(4),
            max_errors: 1 + rng.below(30) as u32,
            bare_lf: if rng.below(2) == 0 {
                BareLf::Normalize
            } else {
                BareLf::Reject
            },
            starttls_available: rng.below(2) == 0,
            ..params()
        }
    }

    #[test]
    fn fuzz_random_sessions() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let ips = [LAN, OUTSIDE, LOOPBACK, "::1", "::ffff:127.0.0.1"];
        for round in 0..3000 {
            let p = small_params(&mut rng);
            let ip = ips[rng.below(ips.len())];
            let input = random_input(&mut rng, true);
            // Random chunks; StartTls answered at once, like the daemon.
            let mut d = Driver::new(p.clone(), ip);
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = 1 + rng.below(40).min(rest.len() - 1);
                let (now, later) = rest.split_at(n);
                d.feed(now);
                if d.out.ends_with("[starttls]\n") {
                    d.tls_started();
                }
                rest = later;
            }
            let t = d.said();
            // Every reply line is `ddd[ -]text`.
            for line in t.lines().filter(|l| !l.starts_with('[')) {
                let b = line.as_bytes();
                assert!(
                    b.len() >= 4
                        && b[..3].iter().all(u8::is_ascii_digit)
                        && (b[3] == b' ' || b[3] == b'-'),
                    "round {round}: {line:?}"
                );
            }
            assert!(
                t.matches("[end]").count() <= t.matches("[begin").count(),
                "round {round}"
            );
            if let Some(i) = t.find("[close]") {
                assert_eq!(&t[i..], "[close]\n", "round {round}: events after close");
            }
            // Without STARTTLS, the split never matters.
            let input = random_input(&mut rng, false);
            let whole = Driver::new(p.clone(), ip).feed(&input).said();
            let bytes = Driver::new(p.clone(), ip).feed_in(&input, 1).said();
            assert_eq!(
                whole,
                bytes,
                "round {round}: {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}
