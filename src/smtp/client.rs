//! client — the SMTP client session, as a state machine without I/O.
//!
//! DESCRIPTION
//!   [`Client`] speaks SMTP (RFC 5321) to one server for the delivery
//!   stage. It never touches a socket: the I/O loop feeds it each reply
//!   ([`Client::on_reply`], replies parsed by `reply::ReplyParser`) and
//!   carries out the [`Action`]s it returns, in order:
//!
//!   - `Send` / `SendSecret`: write these bytes (SendSecret carries
//!     credentials: never log them);
//!   - `StartTls`: first give `on_reply` every other reply of the same
//!     read (there must be none), then do the TLS handshake with a fresh
//!     reply parser and call [`Client::tls_started`] (the client says EHLO
//!     again, RFC 3207 §4.2);
//!   - `SendMessage`: write the message, dot-stuffed with CRLF line ends
//!     ([`DotStuffer`] or [`dot_stuff_line`]) and then [`DATA_END`], and call
//!     [`Client::message_sent`];
//!   - `Done(outcome)`: the results of the current message, one per
//!     recipient; then call [`Client::next_message`] to send another
//!     message on the same connection, or [`Client::quit`];
//!   - `Close`: close the connection.
//!
//!   When the connection fails, times out or the TLS handshake fails, the
//!   I/O loop calls [`Client::connection_lost`] or [`Client::abort`] and
//!   gets the outcome of the current message. [`Client::timeout`] says how
//!   long to wait for the current reply (RFC 5321 §4.5.3.2).
//!
//!   The session: greeting 220; EHLO, or HELO when EHLO gets a 5xx; STARTTLS
//!   when wanted and offered (RFC 3207); AUTH when credentials are set (RFC
//!   4954: PLAIN with an initial response, RFC 4616; LOGIN; CRAM-MD5, RFC
//!   2195); then per message MAIL FROM (with SIZE=, RFC 1870, when the server
//!   has SIZE; BODY=8BITMIME, RFC 6152, for 8-bit messages when it has
//!   8BITMIME), RCPT TO per recipient, DATA, the message, and QUIT at the
//!   end. With PIPELINING (RFC 2920) offered and allowed, MAIL, the RCPTs
//!   and DATA go out in one write (up to [`PIPELINE_WINDOW`] commands, then
//!   more as replies arrive); otherwise one command at a time.
//!
//! DECISIONS
//!   - One result per recipient. 2xx to RCPT and then 2xx to the end of
//!     DATA: delivered. 4xx: deferred. 5xx: failed, except 552 to RCPT,
//!     which RFC 5321 §4.5.3.1.10 says to treat as 452 ("too many
//!     recipients"). A refused MAIL FROM gives every recipient its reply.
//!     The reply to DATA and to the end of DATA applies to every recipient
//!     accepted at RCPT. When no RCPT is accepted no DATA is sent (when
//!     pipelined, a 354 is answered with a lone "." as RFC 2920 §3.1 says),
//!     and the next message starts with RSET.
//!   - A recipient counts as delivered only after the final 2xx to the end
//!     of DATA: a connection lost before it defers everything not yet
//!     confirmed (the message may then arrive twice, RFC 1047; never lost).
//!   - Everything that fails before MAIL FROM (greeting, EHLO/HELO,
//!     STARTTLS, AUTH, a lost connection) is temporary, with
//!     `session_failure` set: it concerns this server or the route's
//!     settings, not the message, and another MX may do better.
//!   - AUTH failures (535 included) defer, they never bounce: credentials
//!     can be fixed, and `max_defer_time` bounds the wait.
//!   - TLS: a route with `tls 'starttls'` never sends mail in plaintext:
//!     no STARTTLS offered, or STARTTLS refused, defers every recipient.
//!     [`StartTls::IfOffered`] (opportunistic) falls back to plaintext.
//!   - AUTH only when credentials are set; never over plaintext unless
//!     `allow_plaintext_auth`; credentials set but no usable mechanism
//!     offered defers (sending without AUTH would only earn relay denials).
//!     With `auth_mechanism` unset the best offered one is used: over TLS
//!     PLAIN, LOGIN, CRAM-MD5 (the password is protected by TLS, and the
//!     server may store it hashed); without TLS CRAM-MD5 first, as it never
//!     shows the password on the wire.
//!   - An 8-bit message to a server without 8BITMIME is sent anyway,
//!     without BODY= (as masqmail did; servers accept it in practice).
//!   - A message larger than the server's SIZE fails permanently for every
//!     recipient with 552 5.3.4, without MAIL FROM.
//!   - 421 at any point: the server is closing; everything pending is
//!     deferred and the connection closed without QUIT.
//!
//! SECURITY
//!   Replies are untrusted: they arrive parsed and bounded, and nothing
//!   here panics on any sequence of them. Credentials go out only in
//!   `SendSecret` and only under the rules above; the secret never appears
//!   in Debug output. A reply that arrives while the TLS handshake is due is
//!   a STARTTLS response injection: the connection is dropped. The I/O loop
//!   must also check `ReplyParser::is_empty` after the 220 to STARTTLS and
//!   use a fresh parser on the TLS stream.
//!
//! DIAGNOSTICS
//!   A [`Failure`] prints as the reply and the command it answered, e.g.
//!   `550 5.1.1 no such user (in reply to RCPT TO)`; failures made up here
//!   (lost connection, TLS not offered, SIZE exceeded) are marked `local`
//!   and print the stage instead: `451 4.4.2 connection lost (at end of
//!   DATA)`.
//!
//! CONFIGURATION PARAMETERS
//!   Route options (masqmail.route(5)): `helo_name`, `tls`, `auth_name`,
//!   `auth_login`, `auth_secret`, `auth_allow_plaintext`, `do_pipelining`;
//!   see [`Params::for_route`].

use std::fmt::{self, Write as _};
use std::time::Duration;

use super::reply::{Class, Enhanced, Reply};
use crate::addr::{Address, Sender};
use crate::config::{Route, TlsMode};
use crate::util::hex_digit;
use crate::util::{base64, hmac};

/// Most commands outstanding at once when pipelining: enough for a whole
/// ordinary transaction in one write, few enough that the replies fit in
/// the socket buffers (so neither side blocks writing, RFC 2920 §3.1).
pub const PIPELINE_WINDOW: usize = 200;

/// The end of the message: the caller writes it after the dot-stuffed
/// body, which always ends with CRLF.
pub const DATA_END: &[u8] = b".\r\n";

/// Reply timeouts, RFC 5321 §4.5.3.2.
pub const TIMEOUT_GREETING: Duration = Duration::from_secs(5 * 60);
pub const TIMEOUT_MAIL: Duration = Duration::from_secs(5 * 60);
pub const TIMEOUT_RCPT: Duration = Duration::from_secs(5 * 60);
pub const TIMEOUT_DATA_INIT: Duration = Duration::from_secs(2 * 60);
/// For each write of the message body (the data block timeout).
pub const TIMEOUT_DATA_BLOCK: Duration = Duration::from_secs(3 * 60);
pub const TIMEOUT_DATA_END: Duration = Duration::from_secs(10 * 60);
/// Everything else (EHLO, STARTTLS, AUTH, RSET, QUIT): the server's own
/// idle timeout is 5 minutes.
pub const TIMEOUT_OTHER: Duration = Duration::from_secs(5 * 60);

/// A SASL mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mech {
    Plain,
    Login,
    CramMd5,
}

impl Mech {
    /// `plain`, `login`, `cram-md5` in any case (the config's `auth_name`
    /// and the EHLO AUTH keyword's values).
    pub fn from_name(s: &str) -> Option<Mech> {
        if s.eq_ignore_ascii_case("plain") {
            Some(Mech::Plain)
        } else if s.eq_ignore_ascii_case("login") {
            Some(Mech::Login)
        } else if s.eq_ignore_ascii_case("cram-md5") {
            Some(Mech::CramMd5)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mech::Plain => "PLAIN",
            Mech::Login => "LOGIN",
            Mech::CramMd5 => "CRAM-MD5",
        }
    }
}

/// User name and password for AUTH.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub login: String,
    pub secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials {{ login: {:?}, secret: ******** }}",
            self.login
        )
    }
}

/// When to say STARTTLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartTls {
    Never,
    /// When offered; go on in plaintext when not (opportunistic TLS).
    IfOffered,
    /// Always; no STARTTLS, no mail.
    Required,
}

/// How to run the session: from the route.
#[derive(Clone, Debug)]
pub struct Params {
    pub helo_name: String,
    pub starttls: StartTls,
    /// The connection is TLS from the start (implicit TLS, port 465).
    pub tls_active: bool,
    pub credentials: Option<Credentials>,
    /// None: the best mechanism offered (see DECISIONS).
    pub auth_mechanism: Option<Mech>,
    pub allow_plaintext_auth: bool,
    pub pipelining: bool,
}

impl Params {
    /// The session a route asks for. `host_name` is the HELO name when
    /// the route sets no `helo_name`. `tls 'none'` never says STARTTLS,
    /// `tls 'starttls'` requires it, `tls 'tls'` is TLS from the start.
    pub fn for_route(route: &Route, host_name: &str) -> Params {
        let credentials = match (&route.auth_login, &route.auth_secret) {
            (Some(login), Some(secret)) => Some(Credentials {
                login: login.clone(),
                secret: secret.expose().to_string(),
            }),
            _ => None,
        };
        Params {
            helo_name: route
                .helo_name
                .clone()
                .unwrap_or_else(|| host_name.to_string()),
            starttls: match route.tls {
                TlsMode::StartTls => StartTls::Required,
                TlsMode::None | TlsMode::Tls => StartTls::Never,
            },
            tls_active: route.tls == TlsMode::Tls,
            credentials,
            auth_mechanism: route.auth_name.as_deref().and_then(Mech::from_name),
            allow_plaintext_auth: route.auth_allow_plaintext,
            pipelining: route.do_pipelining,
        }
    }
}

/// One message to send: its envelope and what the server needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub sender: Sender,
    pub rcpts: Vec<Address>,
    /// The size as transmitted (headers and body, CRLF line ends); an
    /// estimate is fine (RFC 1870 §5).
    pub size: u64,
    /// The message has bytes over 127.
    pub eight_bit: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Try again later.
    Temporary,
    /// Bounce.
    Permanent,
}

/// The step of the session a failure belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    TlsHandshake,
    Auth,
    Rset,
    Mail,
    Rcpt,
    Data,
    Message,
    DataEnd,
    Quit,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::TlsHandshake => "TLS handshake",
            Stage::Auth => "AUTH",
            Stage::Rset => "RSET",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "message transfer",
            Stage::DataEnd => "end of DATA",
            Stage::Quit => "QUIT",
        }
    }
}

/// Why a recipient was not delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    pub stage: Stage,
    /// The server's reply, or one made up here when `local`.
    pub reply: Reply,
    pub local: bool,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.local { "at" } else { "in reply to" };
        write!(f, "{} ({at} {})", self.reply, self.stage.name())
    }
}

/// Delivered (with the server's final reply), or not.
pub type RcptResult = Result<Reply, Failure>;

/// The results of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// One entry per recipient: its index in [`Mail::rcpts`] and result.
    pub per_rcpt: Vec<(usize, RcptResult)>,
    /// The failure came before MAIL FROM: it concerns the server or the
    /// session, not the message; another host may do better.
    pub session_failure: bool,
    /// The session was encrypted.
    pub tls: bool,
    /// The mechanism that authenticated the session.
    pub auth: Option<Mech>,
}

/// What the I/O loop must do next.
#[derive(Clone, PartialEq, Eq)]
pub enum Action {
    Send(Vec<u8>),
    /// Like Send, but the bytes carry credentials: never log them.
    SendSecret(Vec<u8>),
    StartTls,
    SendMessage,
    Done(Outcome),
    Close,
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Send(b) => write!(f, "Send({:?})", String::from_utf8_lossy(b)),
            Action::SendSecret(b) => write!(f, "SendSecret(<{} bytes>)", b.len()),
            Action::StartTls => f.write_str("StartTls"),
            Action::SendMessage => f.write_str("SendMessage"),
            Action::Done(o) => write!(f, "Done({o:?})"),
            Action::Close => f.write_str("Close"),
        }
    }
}

/// What the server said it supports in its EHLO reply (RFC 5321 §4.1.1.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// The domain the server names in the first line.
    pub domain: String,
    /// The server answered EHLO (not just HELO).
    pub esmtp: bool,
    pub pipelining: bool,
    /// `SIZE n`: Some(n); `SIZE` or `SIZE 0`: Some(0), no fixed limit.
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub starttls: bool,
    /// The AUTH keyword was there (with mechanisms we may not know).
    pub auth_offered: bool,
    /// The mechanisms offered that we know, in the server's order.
    pub auth: Vec<Mech>,
    pub enhanced_status_codes: bool,
}

impl Extensions {
    pub fn from_ehlo(r: &Reply) -> Extensions {
        Extensions::from_reply(r, true)
    }

    /// From a positive reply to EHLO (`esmtp`) or HELO (the domain only).
    fn from_reply(r: &Reply, esmtp: bool) -> Extensions {
        let mut e = Extensions {
            domain: r
                .first_line()
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string(),
            esmtp,
            ..Extensions::default()
        };
        let lines = if esmtp { r.lines.get(1..) } else { None };
        for line in lines.unwrap_or_default() {
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or("");
            // Old servers write `AUTH=LOGIN PLAIN` (before RFC 2554 was
            // final); accept both.
            let (keyword, inline) = match first.split_once('=') {
                Some((k, v)) if k.eq_ignore_ascii_case("AUTH") => (k, Some(v)),
                _ => (first, None),
            };
            const KEYWORDS: [&str; 6] = [
                "PIPELINING",
                "SIZE",
                "8BITMIME",
                "STARTTLS",
                "ENHANCEDSTATUSCODES",
                "AUTH",
            ];
            match KEYWORDS
                .iter()
                .position(|k| k.eq_ignore_ascii_case(keyword))
            {
                Some(0) => e.pipelining = true,
                Some(1) => {
                    e.size = Some(words.next().and_then(|w| w.parse().ok()).unwrap_or(0));
                }
                Some(2) => e.eight_bit_mime = true,
                Some(3) => e.starttls = true,
                Some(4) => e.enhanced_status_codes = true,
                Some(_) => {
                    e.auth_offered = true;
                    for m in inline.into_iter().chain(words).filter_map(Mech::from_name) {
                        if !e.auth.contains(&m) {
                            e.auth.push(m);
                        }
                    }
                }
                None => {}
            }
        }
        e
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuthStep {
    /// AUTH LOGIN sent; the user name is asked for next.
    LoginUser,
    /// The user name sent; the password is asked for next.
    LoginSecret,
    /// AUTH CRAM-MD5 sent; the challenge comes next.
    CramChallenge,
    /// Everything sent; 235 or a failure comes next.
    Result,
}

/// A reply the transaction waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Mail,
    Rcpt(usize),
    Data,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    /// The caller does the TLS handshake.
    Handshake,
    Auth(Mech, AuthStep),
    /// RSET before the next MAIL.
    Rset,
    /// MAIL, RCPT and DATA replies expected (`Tx::expect`).
    Transaction,
    /// 354 received; the caller sends the message.
    Message,
    /// The message sent; the final reply is expected.
    DataEnd,
    /// 354 with no recipient accepted; "." sent, its reply expected.
    DiscardData,
    /// Between messages.
    Idle,
    Quit,
    Closed,
}

/// The current message.
#[derive(Debug)]
struct Tx {
    mail: Mail,
    /// Final results; accepted recipients stay None until the end of DATA.
    results: Vec<Option<RcptResult>>,
    accepted: Vec<usize>,
    mail_sent: bool,
    mail_failed: bool,
    next_rcpt: usize,
    data_sent: bool,
    expect: Queue,
}

/// The replies a transaction waits for, oldest first: what was sent, and
/// how many of it got their reply (a transaction's list only grows).
#[derive(Debug, Default)]
struct Queue {
    sent: Vec<Expect>,
    done: usize,
}

impl Queue {
    fn waiting(&self) -> &[Expect] {
        self.sent.get(self.done..).unwrap_or_default()
    }
    fn len(&self) -> usize {
        self.waiting().len()
    }
    fn is_empty(&self) -> bool {
        self.waiting().is_empty()
    }
    fn front(&self) -> Option<&Expect> {
        self.waiting().first()
    }
    fn pop_front(&mut self) -> Option<Expect> {
        let e = self.front().copied()?;
        self.done += 1;
        Some(e)
    }
    fn push_back(&mut self, e: Expect) {
        self.sent.push(e);
    }
}

impl Tx {
    fn new(mail: Mail) -> Box<Tx> {
        Box::new(Tx {
            results: mail.rcpts.iter().map(|_| None).collect(),
            mail,
            accepted: Vec::new(),
            mail_sent: false,
            mail_failed: false,
            next_rcpt: 0,
            data_sent: false,
            expect: Queue::default(),
        })
    }
}

/// A reply we make up ourselves.
fn local_reply(code: u16, enhanced: Enhanced, text: &str) -> Reply {
    Reply::new(code, Some(enhanced), text)
}

/// Temporary for 4xx (and anything unexpected), permanent for 5xx.
fn kind_of(r: &Reply) -> Kind {
    match r.class() {
        Class::PermanentNegative => Kind::Permanent,
        _ => Kind::Temporary,
    }
}

fn line(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 2);
    v.extend_from_slice(s.as_bytes());
    v.extend_from_slice(b"\r\n");
    v
}

/// Append `b` in lower-case hex.
fn push_hex(out: &mut Vec<u8>, b: &[u8]) {
    for &x in b {
        out.push(hex_digit(x >> 4));
        out.push(hex_digit(x));
    }
}

/// The SMTP client session.
#[derive(Debug)]
pub struct Client {
    params: Params,
    state: State,
    ext: Extensions,
    tls: bool,
    starttls_tried: bool,
    auth: Option<Mech>,
    tx: Option<Box<Tx>>,
    /// A MAIL was accepted but its transaction not finished: RSET first.
    need_rset: bool,
    /// The actions of the call in progress.
    acts: Vec<Action>,
}

impl Client {
    /// A session that will deliver `mail` first. It waits for the greeting.
    pub fn new(params: Params, mail: Mail) -> Client {
        Client {
            tls: params.tls_active,
            params,
            state: State::Greeting,
            ext: Extensions::default(),
            starttls_tried: false,
            auth: None,
            tx: Some(Tx::new(mail)),
            need_rset: false,
            acts: Vec::new(),
        }
    }

    /// What the server offered in its last EHLO reply.
    pub fn extensions(&self) -> &Extensions {
        &self.ext
    }

    /// Between messages: [`Client::next_message`] or [`Client::quit`] may
    /// be called.
    pub fn is_idle(&self) -> bool {
        self.state == State::Idle
    }

    /// The state's name, for debug logs.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Greeting => "greeting",
            State::Ehlo => "ehlo",
            State::Helo => "helo",
            State::StartTls => "starttls",
            State::Handshake => "tls-handshake",
            State::Auth(..) => "auth",
            State::Rset => "rset",
            State::Transaction => "transaction",
            State::Message => "message",
            State::DataEnd => "data-end",
            State::DiscardData => "discard-data",
            State::Idle => "idle",
            State::Quit => "quit",
            State::Closed => "closed",
        }
    }

    /// Every state change goes through here.
    fn goto(&mut self, s: State) {
        self.state = s;
    }

    /// How long to wait for the reply expected now (RFC 5321 §4.5.3.2).
    /// While the message is being sent: the limit for each write.
    pub fn timeout(&self) -> Duration {
        match self.state {
            State::Greeting => TIMEOUT_GREETING,
            State::Transaction => match self.tx.as_ref().and_then(|t| t.expect.front()) {
                Some(Expect::Rcpt(_)) => TIMEOUT_RCPT,
                Some(Expect::Data) => TIMEOUT_DATA_INIT,
                _ => TIMEOUT_MAIL,
            },
            State::Message => TIMEOUT_DATA_BLOCK,
            State::DataEnd | State::DiscardData => TIMEOUT_DATA_END,
            _ => TIMEOUT_OTHER,
        }
    }

    fn stage(&self) -> Stage {
        match self.state {
            State::Greeting => Stage::Greeting,
            State::Ehlo => Stage::Ehlo,
            State::Helo => Stage::Helo,
            State::StartTls => Stage::StartTls,
            State::Handshake => Stage::TlsHandshake,
            State::Auth(..) => Stage::Auth,
            State::Rset => Stage::Rset,
            State::Transaction => match self.tx.as_ref().and_then(|t| t.expect.front()) {
                Some(Expect::Rcpt(_)) => Stage::Rcpt,
                Some(Expect::Data) => Stage::Data,
                _ => Stage::Mail,
            },
            State::Message => Stage::Message,
            State::DataEnd | State::DiscardData => Stage::DataEnd,
            State::Idle | State::Quit | State::Closed => Stage::Quit,
        }
    }

    fn window(&self) -> usize {
        if self.params.pipelining && self.ext.pipelining {
            PIPELINE_WINDOW
        } else {
            1
        }
    }

    /// The outcome of the current message: the results known, `default`
    /// for every recipient without one. Ends the message.
    fn take_outcome(&mut self, default: Option<&Failure>, session_failure: bool) -> Outcome {
        let per_rcpt = match self.tx.take() {
            Some(tx) => tx
                .results
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    let r = r.unwrap_or_else(|| {
                        Err(default.cloned().unwrap_or_else(|| Failure {
                            kind: Kind::Temporary,
                            stage: Stage::Quit,
                            reply: local_reply(451, (4, 3, 0), "no result for this recipient"),
                            local: true,
                        }))
                    });
                    (i, r)
                })
                .collect(),
            None => Vec::new(),
        };
        Outcome {
            per_rcpt,
            session_failure,
            tls: self.tls,
            auth: self.auth,
        }
    }

    fn mail_started(&self) -> bool {
        self.tx.as_ref().is_some_and(|t| t.mail_sent)
    }

    /// The session cannot go on: defer the message; QUIT politely, or
    /// close at once when the server is gone or misbehaving.
    fn session_fail(&mut self, f: Failure, close: bool) {
        let session = !self.mail_started();
        let o = self.take_outcome(Some(&f), session);
        if close {
            self.close(Some(o))
        } else {
            self.goto(State::Quit);
            {
                self.act(Action::Send(line("QUIT")));
                self.act(Action::Done(o))
            }
        }
    }

    fn server_fail(&mut self, r: Reply) {
        self.server_fail_close(r, false)
    }

    /// The server's reply `r` ends the session; `close` at once.
    fn server_fail_close(&mut self, r: Reply, close: bool) {
        let f = Failure {
            kind: Kind::Temporary,
            stage: self.stage(),
            reply: r,
            local: false,
        };
        self.session_fail(f, close)
    }

    fn local_fail(&mut self, enhanced: Enhanced, text: &str, close: bool) {
        let f = Failure {
            kind: Kind::Temporary,
            stage: self.stage(),
            reply: local_reply(451, enhanced, text),
            local: true,
        };
        self.session_fail(f, close)
    }

    /// The server broke the protocol: defer and drop the connection.
    fn violation(&mut self, text: &str) {
        self.local_fail((4, 5, 0), &["protocol error: ", text].concat(), true)
    }

    /// Feed one reply from the server.
    pub fn on_reply(&mut self, r: Reply) -> Vec<Action> {
        self.reply(r);
        std::mem::take(&mut self.acts)
    }

    fn act(&mut self, a: Action) {
        self.acts.push(a);
    }

    /// Close the connection, after the outcome `o` if any.
    fn close(&mut self, o: Option<Outcome>) {
        self.goto(State::Closed);
        if let Some(o) = o {
            self.act(Action::Done(o));
        }
        self.act(Action::Close)
    }

    fn reply(&mut self, r: Reply) {
        if r.code == 421 && !matches!(self.state, State::Quit | State::Closed) {
            // RFC 5321 §3.8: the server is shutting the connection.
            if self.tx.is_none() {
                return self.close(None);
            }
            return self.server_fail_close(r, true);
        }
        match self.state {
            State::Greeting => match r.code {
                220 => self.hello(State::Ehlo, "EHLO "),
                _ => self.server_fail(r),
            },
            State::Ehlo | State::Helo => {
                let esmtp = self.state == State::Ehlo;
                match r.class() {
                    Class::Positive => {
                        self.ext = Extensions::from_reply(&r, esmtp);
                        self.after_hello()
                    }
                    // EHLO refused: HELO
                    Class::PermanentNegative if esmtp => self.hello(State::Helo, "HELO "),
                    _ => self.server_fail(r),
                }
            }
            State::StartTls => {
                if r.code == 220 {
                    self.goto(State::Handshake);
                    self.act(Action::StartTls)
                } else if self.params.starttls == StartTls::Required {
                    self.server_fail(r)
                } else {
                    self.starttls_tried = true;
                    self.after_tls()
                }
            }
            State::Handshake => {
                self.violation("reply before the TLS handshake (STARTTLS response injection?)")
            }
            State::Auth(mech, step) => self.auth_reply(mech, step, r),
            State::Rset => match r.class() {
                Class::Positive => {
                    self.need_rset = false;
                    self.start_tx()
                }
                _ => self.server_fail(r),
            },
            State::Transaction => self.tx_reply(r),
            State::Message => {
                // An early reply, before the end of the message: the server
                // gave up on it. A 2xx now cannot be trusted.
                if r.is_positive() {
                    self.violation("reply to DATA before the end of the message")
                } else {
                    self.data_result(&r, Stage::Message);
                    let o = self.take_outcome(None, false);
                    self.close(Some(o))
                }
            }
            State::DataEnd => {
                self.data_result(&r, Stage::DataEnd);
                self.need_rset = false;
                self.finish_tx()
            }
            State::DiscardData => {
                self.need_rset = true;
                self.finish_tx()
            }
            State::Idle | State::Quit => self.close(None),
            State::Closed => {}
        }
    }

    /// EHLO (`state` Ehlo) or HELO (Helo) with our name.
    fn hello(&mut self, state: State, verb: &str) {
        self.goto(state);
        // The name as an argument: no spaces or control characters.
        let mut cmd = String::from(verb);
        for c in self.params.helo_name.chars() {
            if !c.is_whitespace() && !c.is_control() {
                cmd.push(c);
            }
        }
        cmd.push_str("\r\n");
        self.act(Action::Send(cmd.into_bytes()))
    }

    /// After a positive EHLO or HELO: STARTTLS, AUTH or the message.
    fn after_hello(&mut self) {
        if !self.tls
            && !self.starttls_tried
            && self.params.starttls != StartTls::Never
            && self.ext.starttls
        {
            self.goto(State::StartTls);
            return self.act(Action::Send(line("STARTTLS")));
        }
        self.after_tls()
    }

    fn after_tls(&mut self) {
        if !self.tls && self.params.starttls == StartTls::Required {
            return self.local_fail(
                (4, 7, 4),
                "TLS is required for this route, but the server does not offer STARTTLS",
                false,
            );
        }
        if self.params.credentials.is_none() {
            return self.start_tx();
        }
        if !self.tls && !self.params.allow_plaintext_auth {
            return self.local_fail(
                (4, 7, 4),
                "not sending the password without TLS (auth_allow_plaintext is off)",
                false,
            );
        }
        let offered = &self.ext.auth;
        let auth_offered = self.ext.auth_offered;
        let mech = match self.params.auth_mechanism {
            Some(m) => offered.contains(&m).then_some(m),
            None => {
                let order: [Mech; 3] = if self.tls {
                    [Mech::Plain, Mech::Login, Mech::CramMd5]
                } else {
                    [Mech::CramMd5, Mech::Plain, Mech::Login]
                };
                order.into_iter().find(|m| offered.contains(m))
            }
        };
        let Some(mech) = mech else {
            let text = match (self.params.auth_mechanism, auth_offered) {
                (_, false) => "credentials are set, but the server does not offer AUTH",
                (Some(m), true) => &["the server does not offer AUTH ", m.name()].concat(),
                (None, true) => "the server offers no AUTH mechanism we know",
            };
            return self.local_fail((4, 7, 0), text, false);
        };
        match mech {
            Mech::Plain => {
                let Some(cred) = &self.params.credentials else {
                    return self.start_tx();
                };
                // RFC 4616: authzid NUL authcid NUL passwd; empty authzid.
                let mut ir = Vec::with_capacity(cred.login.len() + cred.secret.len() + 2);
                ir.push(0);
                ir.extend_from_slice(cred.login.as_bytes());
                ir.push(0);
                ir.extend_from_slice(cred.secret.as_bytes());
                let cmd = line(&["AUTH PLAIN ", &base64::encode(&ir)].concat());
                self.goto(State::Auth(mech, AuthStep::Result));
                self.act(Action::SendSecret(cmd))
            }
            Mech::Login => {
                self.goto(State::Auth(mech, AuthStep::LoginUser));
                self.act(Action::Send(line("AUTH LOGIN")))
            }
            Mech::CramMd5 => {
                self.goto(State::Auth(mech, AuthStep::CramChallenge));
                self.act(Action::Send(line("AUTH CRAM-MD5")))
            }
        }
    }

    fn auth_reply(&mut self, mech: Mech, step: AuthStep, r: Reply) {
        if r.is_positive() {
            self.auth = Some(mech);
            return self.start_tx();
        }
        if r.code != 334 {
            return self.server_fail(r);
        }
        let Some(cred) = &self.params.credentials else {
            return self.violation("AUTH without credentials");
        };
        let (next, response) = match step {
            AuthStep::LoginUser => (AuthStep::LoginSecret, cred.login.as_bytes().to_vec()),
            AuthStep::LoginSecret => (AuthStep::Result, cred.secret.as_bytes().to_vec()),
            AuthStep::CramChallenge => {
                let Some(challenge) = base64::decode(r.first_line().trim()) else {
                    return self.violation("CRAM-MD5 challenge is not base64");
                };
                // RFC 2195 §2: user name, space, hex HMAC-MD5 of the
                // challenge keyed with the password.
                let digest = hmac::hmac_md5(cred.secret.as_bytes(), &challenge);
                let mut resp = Vec::with_capacity(cred.login.len() + 33);
                resp.extend_from_slice(cred.login.as_bytes());
                resp.push(b' ');
                push_hex(&mut resp, &digest);
                (AuthStep::Result, resp)
            }
            AuthStep::Result => return self.violation("unexpected 334 during AUTH"),
        };
        self.goto(State::Auth(mech, next));
        self.act(Action::SendSecret(line(&base64::encode(&response))))
    }

    /// Begin the current message: RSET when needed, the SIZE check, then
    /// the first group of MAIL/RCPT/DATA.
    fn start_tx(&mut self) {
        let Some(tx) = self.tx.as_ref() else {
            self.goto(State::Idle);
            return;
        };
        if tx.mail.rcpts.is_empty() {
            return self.finish_tx();
        }
        if self.need_rset {
            self.goto(State::Rset);
            return self.act(Action::Send(line("RSET")));
        }
        let size = tx.mail.size;
        if let Some(max) = self.ext.size.filter(|&m| m > 0 && size > m) {
            let f = Failure {
                kind: Kind::Permanent,
                stage: Stage::Mail,
                reply: local_reply(
                    552,
                    (5, 3, 4),
                    &format!("message size {size} exceeds the server's limit of {max} bytes"),
                ),
                local: true,
            };
            let o = self.take_outcome(Some(&f), false);
            self.goto(State::Idle);
            return self.act(Action::Done(o));
        }
        self.goto(State::Transaction);
        let cmds = self.fill();
        self.act(Action::Send(cmds))
    }

    /// The next commands of the transaction, up to the window.
    fn fill(&mut self) -> Vec<u8> {
        let window = self.window();
        let pipelined = window > 1;
        let size_param = self.ext.size.is_some();
        let body_param = self.ext.eight_bit_mime;
        let mut out = String::new();
        let Some(tx) = self.tx.as_mut() else {
            return Vec::new();
        };
        while tx.expect.len() < window && !tx.mail_failed {
            if !tx.mail_sent {
                let _ = write!(out, "MAIL FROM:<{}>", tx.mail.sender);
                if size_param {
                    let _ = write!(out, " SIZE={}", tx.mail.size);
                }
                if tx.mail.eight_bit && body_param {
                    out.push_str(" BODY=8BITMIME");
                }
                out.push_str("\r\n");
                tx.expect.push_back(Expect::Mail);
                tx.mail_sent = true;
            } else if let Some(rcpt) = tx.mail.rcpts.get(tx.next_rcpt) {
                let _ = write!(out, "RCPT TO:<{rcpt}>\r\n");
                tx.expect.push_back(Expect::Rcpt(tx.next_rcpt));
                tx.next_rcpt += 1;
            } else {
                let rcpt_pending = tx
                    .expect
                    .waiting()
                    .iter()
                    .any(|e| matches!(e, Expect::Rcpt(_)));
                if !tx.data_sent && (!tx.accepted.is_empty() || (pipelined && rcpt_pending)) {
                    out.push_str("DATA\r\n");
                    tx.expect.push_back(Expect::Data);
                    tx.data_sent = true;
                }
                break;
            }
        }
        out.into_bytes()
    }

    /// A reply to MAIL, RCPT or DATA.
    fn tx_reply(&mut self, r: Reply) {
        let window = self.window();
        let Some(tx) = self.tx.as_mut() else {
            return self.violation("reply outside a transaction");
        };
        let Some(expect) = tx.expect.pop_front() else {
            return self.violation("unexpected reply");
        };
        match expect {
            Expect::Mail => {
                if !r.is_positive() {
                    let f = Failure {
                        kind: kind_of(&r),
                        stage: Stage::Mail,
                        reply: r,
                        local: false,
                    };
                    for res in tx.results.iter_mut() {
                        *res = Some(Err(f.clone()));
                    }
                    tx.mail_failed = true;
                }
            }
            Expect::Rcpt(i) => {
                // After a refused MAIL the pipelined RCPTs get 503s: the
                // recipients keep MAIL's reply.
                if !tx.mail_failed {
                    let kind = match r.class() {
                        Class::Positive => None,
                        // RFC 5321 §4.5.3.1.10: 552 here means 452.
                        Class::PermanentNegative if r.code != 552 => Some(Kind::Permanent),
                        _ => Some(Kind::Temporary),
                    };
                    match kind {
                        None => tx.accepted.push(i),
                        Some(kind) => {
                            if let Some(res) = tx.results.get_mut(i) {
                                *res = Some(Err(Failure {
                                    kind,
                                    stage: Stage::Rcpt,
                                    reply: r,
                                    local: false,
                                }));
                            }
                        }
                    }
                }
            }
            Expect::Data => {
                if r.code == 354 {
                    if tx.accepted.is_empty() {
                        // RFC 2920 §3.1: DATA accepted though no RCPT was:
                        // send an empty message, which goes nowhere.
                        self.goto(State::DiscardData);
                        return self.act(Action::Send(DATA_END.to_vec()));
                    }
                    self.goto(State::Message);
                    return self.act(Action::SendMessage);
                }
                // Refused; a 2xx here is no 354 and confirms nothing.
                let f = Failure {
                    kind: kind_of(&r),
                    stage: Stage::Data,
                    reply: r,
                    local: false,
                };
                self.settle_accepted(Err(f));
                let open = self.tx.as_ref().is_some_and(|t| !t.mail_failed);
                self.need_rset = open;
                return self.finish_tx();
            }
        }
        if tx.expect.len() <= window / 2 {
            let cmds = self.fill();
            if !cmds.is_empty() {
                return self.act(Action::Send(cmds));
            }
        }
        match self.tx.as_ref() {
            Some(tx) if tx.expect.is_empty() => {
                // Nothing outstanding, nothing to send: MAIL refused, or
                // every RCPT refused (no DATA).
                self.need_rset = !tx.mail_failed;
                self.finish_tx()
            }
            _ => {}
        }
    }

    /// The reply to the end of the message (or an early one), for every
    /// recipient accepted at RCPT.
    fn data_result(&mut self, r: &Reply, stage: Stage) {
        let res: RcptResult = if r.is_positive() {
            Ok(r.clone())
        } else {
            Err(Failure {
                kind: kind_of(r),
                stage,
                reply: r.clone(),
                local: false,
            })
        };
        self.settle_accepted(res);
    }

    fn settle_accepted(&mut self, res: RcptResult) {
        let Some(tx) = self.tx.as_mut() else {
            return;
        };
        for &i in &tx.accepted {
            if let Some(slot) = tx.results.get_mut(i) {
                *slot = Some(res.clone());
            }
        }
    }

    fn finish_tx(&mut self) {
        let o = self.take_outcome(None, false);
        self.goto(State::Idle);
        self.act(Action::Done(o))
    }

    /// The TLS handshake after STARTTLS succeeded: forget what the server
    /// said in plaintext and say EHLO again (RFC 3207 §4.2).
    pub fn tls_started(&mut self) -> Vec<Action> {
        self.tls_started_();
        std::mem::take(&mut self.acts)
    }

    fn tls_started_(&mut self) {
        if self.state != State::Handshake {
            return;
        }
        self.tls = true;
        self.ext = Extensions::default();
        self.hello(State::Ehlo, "EHLO ")
    }

    /// The message and [`DATA_END`] are written; wait for the final reply.
    pub fn message_sent(&mut self) {
        if self.state == State::Message {
            self.goto(State::DataEnd);
        }
    }

    /// Send another message on this connection; only when idle (after a
    /// `Done`). Otherwise the message is deferred at once.
    pub fn next_message(&mut self, mail: Mail) -> Vec<Action> {
        self.next_message_(mail);
        std::mem::take(&mut self.acts)
    }

    fn next_message_(&mut self, mail: Mail) {
        if self.state != State::Idle || self.tx.is_some() {
            let f = Failure {
                kind: Kind::Temporary,
                stage: self.stage(),
                reply: local_reply(451, (4, 4, 2), "the SMTP session is not ready"),
                local: true,
            };
            let per_rcpt = (0..mail.rcpts.len()).map(|i| (i, Err(f.clone()))).collect();
            return self.act(Action::Done(Outcome {
                per_rcpt,
                session_failure: true,
                tls: self.tls,
                auth: self.auth,
            }));
        }
        self.tx = Some(Tx::new(mail));
        self.start_tx()
    }

    /// End the session: QUIT when idle. Anywhere else it is an abort: the
    /// current message is deferred and the connection closed.
    pub fn quit(&mut self) -> Vec<Action> {
        self.quit_();
        std::mem::take(&mut self.acts)
    }

    fn quit_(&mut self) {
        match self.state {
            State::Idle => {
                self.goto(State::Quit);
                self.act(Action::Send(line("QUIT")))
            }
            State::Quit => {}
            State::Closed => self.close(None),
            _ => {
                let o = self.abort("delivery stopped");
                self.close(Some(o))
            }
        }
    }

    /// The connection broke (EOF, reset, timeout): everything not yet
    /// confirmed is deferred.
    pub fn connection_lost(&mut self) -> Outcome {
        self.abort("connection lost")
    }

    /// Give up on the session for `reason` (a timeout, a failed TLS
    /// handshake, an unreadable reply): everything not yet confirmed is
    /// deferred with `451 4.4.2 reason`. The outcome is empty when no
    /// message was pending.
    pub fn abort(&mut self, reason: &str) -> Outcome {
        let f = Failure {
            kind: Kind::Temporary,
            stage: self.stage(),
            reply: local_reply(451, (4, 4, 2), reason),
            local: true,
        };
        let session = self.tx.is_some() && !self.mail_started();
        let o = self.take_outcome(Some(&f), session);
        self.goto(State::Closed);
        o
    }
}

/// Writes a message for DATA: line ends become CRLF (a bare LF or bare CR
/// too, so no receiver can read a line end where we wrote none — the
/// "SMTP smuggling" ambiguity), a `.` at the start of a line is doubled
/// (RFC 5321 §4.5.2). Feed it the message in chunks of any size.
#[derive(Clone, Copy, Debug)]
pub struct DotStuffer {
    at_line_start: bool,
    pending_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer::new()
    }
}

impl DotStuffer {
    pub fn new() -> DotStuffer {
        DotStuffer {
            at_line_start: true,
            pending_cr: false,
        }
    }

    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        out.reserve(data.len() + data.len() / 32 + 2);
        for &b in data {
            if self.pending_cr {
                self.pending_cr = false;
                out.extend_from_slice(b"\r\n");
                self.at_line_start = true;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                }
                _ => {
                    if self.at_line_start && b == b'.' {
                        out.push(b'.');
                    }
                    out.push(b);
                    self.at_line_start = false;
                }
            }
        }
    }

    /// Finish the last line (CRLF when it had no line end).
    pub fn end_line(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr || !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        self.pending_cr = false;
        self.at_line_start = true;
    }

    /// Finish the message: the last line, then [`DATA_END`].
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.end_line(out);
        out.extend_from_slice(DATA_END);
    }
}

/// One line of the message (with or without its LF or CRLF) as it goes
/// out in DATA: dot-stuffed, ending in CRLF.
pub fn dot_stuff_line(line: &[u8], out: &mut Vec<u8>) {
    let mut d = DotStuffer::new();
    d.push(line, out);
    d.end_line(out);
}

#[cfg(test)]
mod tests;
