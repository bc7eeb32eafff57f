//! The SMTP transport: the I/O loop around `smtp::client::Client`, and the
//! connections a queue run keeps open between messages.
//!
//! DESCRIPTION
//!   [`Smtp`] delivers one message to some recipients through one route:
//!   to the route's `mail_host`, or by MX (RFC 5321 §5.1: MX records by
//!   preference, else the domain's own address), or through the route's
//!   `wrapper` command (its stdin and stdout are the connection, as in
//!   masqmail: a tunnel such as `ssh gw nc smtp.example.net 25`). Hosts are
//!   resolved as `resolve_list` says (`dns_a`: our DNS client; `byname`:
//!   /etc/hosts, then DNS; no getaddrinfo). Each host's addresses are
//!   tried in order (IPv4 first with `prefer_ipv4`); a host that cannot be
//!   reached or that fails the session before MAIL FROM makes the next one
//!   be tried. TLS: `tls 'tls'` handshakes at connect, `tls 'starttls'`
//!   requires STARTTLS; certificates are checked against `tls_ca_file`,
//!   or pinned with `tls_fingerprint`, or not at all with `tls_verify '0'`.
//!
//!   Connection reuse: after a message, the session stays open (idle,
//!   between transactions) for the next message of the same queue run to
//!   the same route and destination (the smarthost, or the recipient
//!   domain for MX delivery): one greeting, EHLO, TLS handshake and AUTH
//!   for many messages, then MAIL FROM, RCPT TO, DATA (pipelined) per
//!   message. At most `MAX_IDLE` sessions wait at a time, none longer than
//!   `MAX_SESSION_AGE` nor for more than `MAX_MESSAGES` messages; the run's
//!   end says QUIT to all of them. A kept session that the server closed
//!   meanwhile (no reply to MAIL FROM at all, or 421 to it) is dropped and
//!   the message is sent on a new connection, so an idle timeout on the
//!   server never defers mail.
//!
//! SECURITY
//!   Everything the server (or the wrapper) sends is parsed by the bounded
//!   reply parser; credentials are written only where the client state
//!   machine says so and never logged. Reads and writes time out (RFC 5321
//!   §4.5.3.2), on sockets and on a wrapper's pipes alike. A wrapper comes
//!   from the configuration only and never runs through a shell
//!   (deliver::command's splitting); its environment is cleared but for
//!   PATH, and it is killed when the session ends.
//!
//! DIAGNOSTICS
//!   The relay in log lines is `host[ip]:port`, or `wrapper[command]`. A
//!   failure to connect anywhere defers (bounces with
//!   `connect_error_fail`); a certificate that is not yet valid (router
//!   clock before NTP) always defers. A wrapper's stderr goes to the log
//!   at debug level (its first 64 KiB, line by line): it is read whenever
//!   a read or write on its stdin or stdout waits (one poll(2) on both
//!   pipes), and what is left when the session ends. No thread: a
//!   wrapper that writes stderr while we wait for it cannot block.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use log::{debug, warn};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::addr::Address;
use crate::config::{Config, ResolveMethod, Route, TlsMode};
use crate::deliver::{Failure, Outgoing, Transport};
use crate::dns::{self, Resolver};
use crate::smtp::client::{self, Action, Client, Kind, Mail, Outcome, Params};
use crate::smtp::reply::ReplyParser;
use crate::util::spawn::{self, Child, Drain, Spawn, Stdio};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle sessions kept open at once.
pub const MAX_IDLE: usize = 4;
/// A session is not reused once this old (Postfix's
/// smtp_connection_reuse_time_limit).
pub const MAX_SESSION_AGE: Duration = Duration::from_secs(300);
/// Messages sent over one connection at most.
pub const MAX_MESSAGES: u32 = 1000;
/// How long to wait for the reply to QUIT.
const QUIT_WAIT: Duration = Duration::from_secs(5);

/// What a session runs over: a TCP connection, or a wrapper command's
/// stdin and stdout. Reads and writes wait at most the timeout set last.
pub enum Wire {
    /// A socket, and the timeout it has now (set again only on change).
    Tcp(TcpStream, Cell<Option<Duration>>),
    Cmd(Box<Piped>),
    /// Nothing: what is left while a connection is handed to TLS.
    Closed,
}

/// A wrapper command and its pipes.
pub struct Piped {
    child: Child,
    /// Non-blocking: a write takes what fits and never waits past the
    /// timeout.
    stdin: File,
    stdout: File,
    /// Its stderr: lines for the log.
    stderr: Drain,
    /// Its program, for the log.
    name: String,
    timeout: Cell<Duration>,
}

impl Wire {
    /// The timeout for every following read and write.
    pub fn set_timeout(&self, d: Duration) {
        match self {
            Wire::Tcp(s, now) => {
                if now.get() != Some(d) {
                    let _ = s.set_read_timeout(Some(d));
                    let _ = s.set_write_timeout(Some(d));
                    now.set(Some(d));
                }
            }
            Wire::Cmd(p) => p.timeout.set(d),
            Wire::Closed => {}
        }
    }

    /// Can an idle session on this wire be used? Not when the peer said
    /// something unasked (a 421, a TLS alert) or closed: then the wire is
    /// readable while nothing is expected.
    fn quiet(&self) -> bool {
        let fd = match self {
            Wire::Tcp(s, _) => s.as_fd(),
            Wire::Cmd(p) => p.stdout.as_fd(),
            Wire::Closed => return false,
        };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
    }
}

impl Read for Wire {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Tcp(s, _) => s.read(b),
            Wire::Cmd(p) => {
                p.ready(false)?;
                p.stdout.read(b)
            }
            Wire::Closed => Ok(0),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Tcp(s, _) => s.write(b),
            Wire::Cmd(p) => loop {
                p.ready(true)?;
                match p.stdin.write(b) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    r => break r,
                }
            },
            Wire::Closed => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Tcp(s, _) => s.flush(),
            Wire::Cmd(p) => p.stdin.flush(),
            Wire::Closed => Ok(()),
        }
    }
}

impl Piped {
    /// Wait until the wrapper's stdin takes data (`write`) or its stdout
    /// has some, at most the timeout; what it writes to stderr meanwhile
    /// is read, then logged.
    fn ready(&mut self, write: bool) -> io::Result<()> {
        let deadline = Instant::now() + self.timeout.get();
        let (fd, flags) = if write {
            (self.stdin.as_fd(), PollFlags::POLLOUT)
        } else {
            (self.stdout.as_fd(), PollFlags::POLLIN)
        };
        let r = self.stderr.wait_for(fd, flags, deadline);
        self.log_stderr(false);
        r
    }

    /// Log the lines the wrapper wrote to stderr; `all`: the last one
    /// too, if it has no newline.
    fn log_stderr(&mut self, all: bool) {
        self.stderr.read_ready();
        let text = &mut self.stderr.data;
        loop {
            let (end, used) = match text.iter().position(|&c| c == b'\n') {
                Some(i) => (i, i + 1),
                None if !text.is_empty() && (all || text.len() >= 1024) => (text.len(), text.len()),
                None => break,
            };
            let line = text.get(..end).unwrap_or_default();
            let line = if used > end {
                line.strip_suffix(b"\r").unwrap_or(line)
            } else {
                line
            };
            debug!("wrapper {}: {}", self.name, String::from_utf8_lossy(line));
            text.drain(..used);
        }
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        // Its stdin closes with us; a tunnel that does not end on EOF is
        // ended here. Then its last words.
        self.child.kill();
        self.log_stderr(true);
    }
}

/// Start the route's wrapper command.
fn spawn_wrapper(line: &str) -> Result<Wire, String> {
    let argv = crate::deliver::command::split(line)?;
    let Some((prog, args)) = argv.split_first() else {
        return Err("empty wrapper command".into());
    };
    let mut child = Spawn::new(prog)
        .args(args)
        .env("PATH", spawn::DEFAULT_PATH)
        .stdin(Stdio::Piped)
        .stdout(Stdio::Piped)
        .stderr(Stdio::Piped)
        .spawn()
        .map_err(|e| format!("cannot run wrapper {prog}: {e}"))?;
    let stderr = Drain::new(child.stderr.take(), 64 * 1024);
    match (child.stdin.take(), child.stdout.take()) {
        (Some(stdin), Some(stdout)) => {
            spawn::nonblocking(&stdin).map_err(|e| format!("wrapper {prog}: {e}"))?;
            Ok(Wire::Cmd(Box::new(Piped {
                child,
                stdin,
                stdout,
                stderr,
                name: prog.clone(),
                timeout: Cell::new(client::TIMEOUT_OTHER),
            })))
        }
        // Not with Stdio::Piped; the child is killed as it is dropped.
        _ => Err("wrapper pipes missing".into()),
    }
}

#[cfg(feature = "tls")]
type Conn = crate::tls::MaybeTls<Wire>;

#[cfg(not(feature = "tls"))]
struct Conn(Wire);

#[cfg(not(feature = "tls"))]
impl Conn {
    fn new(s: Wire) -> Conn {
        Conn(s)
    }
    fn get_ref(&self) -> &Wire {
        &self.0
    }
}

#[cfg(not(feature = "tls"))]
impl Read for Conn {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        self.0.read(b)
    }
}

#[cfg(not(feature = "tls"))]
impl Write for Conn {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The hosts for a delivery, best first (their names are for TLS and
/// logs; the preference is not used), and the port.
fn targets(
    route: &Route,
    domain: &str,
    resolver: Option<&Resolver>,
) -> Result<(Vec<dns::Mx>, u16), Failure> {
    let (mut host, mut port) = (domain, if route.tls == TlsMode::Tls { 465 } else { 25 });
    if let Some(hp) = &route.mail_host {
        (host, port) = (&hp.host, hp.port);
    } else if let (true, Some(r)) = (route.resolve_list.contains(&ResolveMethod::DnsMx), resolver) {
        match r.mx(domain) {
            Ok(mx) => return Ok((mx, port)),
            // The error names the domain.
            Err(e) => {
                let text = e.to_string();
                if !e.is_temporary() {
                    return Err(Failure::Permanent(text));
                }
                debug!("MX of {text}");
                if !route
                    .resolve_list
                    .iter()
                    .any(|m| *m != ResolveMethod::DnsMx)
                {
                    return Err(Failure::Temporary(["MX lookup for ", &text].concat()));
                }
            }
        }
    }
    let only = dns::Mx {
        preference: 0,
        exchange: host.to_string(),
    };
    Ok((vec![only], port))
}

/// The addresses of a host, by the route's resolve_list (MX excluded).
fn addresses(
    route: &Route,
    host: &str,
    resolver: Option<&Resolver>,
) -> Result<Vec<IpAddr>, Failure> {
    if let Some(ip) = dns::literal(host) {
        return Ok(vec![ip]);
    }
    let mut last = String::from("no resolve method for a host in resolve_list");
    let mut permanent = false;
    for m in &route.resolve_list {
        let r = match (m, resolver) {
            (ResolveMethod::DnsA, Some(res)) => res.addrs(host, route.prefer_ipv4),
            (ResolveMethod::Byname, res) => dns::byname(host, route.prefer_ipv4, res),
            _ => continue,
        };
        match r {
            Ok(a) if !a.is_empty() => return Ok(a),
            Ok(_) => last = format!("{host}: no address"),
            // The error names the host.
            Err(e) => {
                permanent = !e.is_temporary();
                last = e.to_string();
            }
        }
    }
    if permanent {
        Err(Failure::Permanent(last))
    } else {
        Err(Failure::Temporary(last))
    }
}

/// Bytes over 127 anywhere in the message?
fn is_eight_bit(out: &Outgoing<'_>) -> bool {
    if out.headers.iter().any(|h| h.raw().iter().any(|&b| b > 127)) {
        return true;
    }
    let Ok(f) = File::open(&out.pool) else {
        return false;
    };
    let mut r = BufReader::with_capacity(32 * 1024, f);
    loop {
        let buf = match r.fill_buf() {
            Ok([]) => return false,
            Ok(b) => b,
            Err(_) => return false,
        };
        if buf.iter().any(|&b| b > 127) {
            return true;
        }
        let n = buf.len();
        r.consume(n);
    }
}

/// One result per recipient from the session's outcome (which has them
/// in recipient order), or the failure for all.
fn map_outcome(n: usize, r: Result<Outcome, Failure>) -> Vec<Result<String, Failure>> {
    let mut results = Vec::with_capacity(n);
    let (per_rcpt, missing) = match r {
        Ok(o) => {
            let text = "no result from the SMTP session".to_string();
            (o.per_rcpt, Failure::Temporary(text))
        }
        Err(f) => (Vec::new(), f),
    };
    for (i, r) in per_rcpt {
        if i != results.len() || i >= n {
            continue;
        }
        results.push(match r {
            Ok(reply) => Ok(reply.to_string()),
            Err(f) => {
                let text = f.to_string();
                Err(match f.kind {
                    Kind::Temporary => Failure::Temporary(text),
                    Kind::Permanent => Failure::Permanent(text),
                })
            }
        });
    }
    while results.len() < n {
        results.push(Err(missing.clone()));
    }
    results
}

/// Write the message for DATA: header fields, the empty line, the body,
/// dot-stuffed with CRLF, then `.`.
fn write_message(conn: &mut Conn, out: &Outgoing<'_>) -> io::Result<()> {
    let mut stuffer = client::DotStuffer::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    for h in &out.headers {
        stuffer.push(h.raw(), &mut buf);
    }
    stuffer.push(b"\n", &mut buf);
    let mut body = File::open(&out.pool)?;
    let mut chunk = vec![0u8; 32 * 1024];
    loop {
        let n = body.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        stuffer.push(&chunk[..n], &mut buf);
        if buf.len() >= 32 * 1024 {
            conn.write_all(&buf)?;
            buf.clear();
        }
    }
    stuffer.finish(&mut buf);
    conn.write_all(&buf)?;
    conn.flush()
}

/// How one message went on a session.
struct Driven {
    outcome: Outcome,
    /// The session is idle and may carry another message.
    reusable: bool,
    /// The code of the first reply read for this message, if any.
    first_reply: Option<u16>,
}

/// Why a session broke off.
enum Broke {
    Text(&'static str),
    /// What failed, and why.
    Io(&'static str, io::Error),
    Reply(crate::smtp::reply::ReplyError),
    #[cfg(feature = "tls")]
    Owned(String),
}

impl Broke {
    fn text(self) -> String {
        match self {
            Broke::Text(t) => t.to_string(),
            Broke::Io(what, e) => format!("{what}: {e}"),
            Broke::Reply(e) => format!("bad reply: {e}"),
            #[cfg(feature = "tls")]
            Broke::Owned(t) => t,
        }
    }
}

/// One SMTP session with one server.
struct Session {
    conn: Conn,
    client: Client,
    parser: ReplyParser,
    /// The name the certificate must hold (and SNI).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    host: String,
    relay: String,
    opened: Instant,
    messages: u32,
    #[cfg(feature = "tls")]
    tls_cfg: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Session {
    /// Start a session on `wire` that will deliver `mail` first; for
    /// implicit TLS the handshake is done here. Err: the outcome of a
    /// session that failed before it began.
    fn open(
        cfg: &Config,
        route: &Route,
        host: &str,
        relay: String,
        wire: Wire,
        mail: Mail,
    ) -> Result<Box<Session>, Outcome> {
        let params = Params::for_route(route, &cfg.main.host_name);
        let mut client = Client::new(params, mail);
        #[allow(unused_mut)]
        let mut conn = Conn::new(wire);
        #[cfg(feature = "tls")]
        let tls_cfg = if route.tls == TlsMode::None {
            None
        } else {
            match crate::tls::client_config(crate::tls::Verify::for_route(route)) {
                Ok(c) => Some(c),
                Err(e) => return Err(client.abort(&format!("TLS setup: {e}"))),
            }
        };
        if route.tls == TlsMode::Tls {
            #[cfg(feature = "tls")]
            {
                let Some(tc) = tls_cfg.clone() else {
                    return Err(client.abort("TLS setup failed"));
                };
                conn.get_ref().set_timeout(client::TIMEOUT_GREETING);
                conn = match conn.upgrade_client(tc, host) {
                    Ok(c) => c,
                    Err(e) => return Err(client.abort(&crate::tls::classify_io(&e).to_string())),
                };
            }
            #[cfg(not(feature = "tls"))]
            return Err(client.abort("implicit TLS needs the tls feature"));
        }
        Ok(Box::new(Session {
            conn,
            client,
            parser: ReplyParser::new(),
            host: host.to_string(),
            relay,
            opened: Instant::now(),
            messages: 0,
            #[cfg(feature = "tls")]
            tls_cfg,
        }))
    }

    /// May this idle session carry another message now?
    fn usable(&self) -> bool {
        self.client.is_idle()
            && self.opened.elapsed() < MAX_SESSION_AGE
            && self.messages < MAX_MESSAGES
            && self.parser.is_empty()
            && self.conn.get_ref().quiet()
    }

    /// Carry out `first` and then the client's actions for each reply,
    /// until the outcome of the current message is known.
    fn drive(&mut self, out: &Outgoing<'_>, first: Vec<Action>) -> Driven {
        let mut outcome = None;
        let mut first_reply = None;
        let (reusable, broke) = match self.run(out, first, &mut outcome, &mut first_reply) {
            Ok(r) => (r, None),
            Err(b) => (false, Some(b)),
        };
        // The session broke: the outcome already known, or the client's
        // verdict on what was pending.
        let outcome = match outcome {
            Some(o) => o,
            None => self
                .client
                .abort(&broke.map(Broke::text).unwrap_or_default()),
        };
        Driven {
            outcome,
            reusable,
            first_reply,
        }
    }

    /// The work of `drive`: Ok once the outcome is known (whether the
    /// session may carry another message), Err when the session broke.
    fn run(
        &mut self,
        out: &Outgoing<'_>,
        first: Vec<Action>,
        outcome: &mut Option<Outcome>,
        first_reply: &mut Option<u16>,
    ) -> Result<bool, Broke> {
        let mut pending = first;
        let mut closed = false;
        let mut buf = [0u8; 8192];
        loop {
            while !pending.is_empty() {
                #[allow(unused_mut)] // only STARTTLS adds to it
                let mut next = Vec::new();
                for a in std::mem::take(&mut pending) {
                    match a {
                        Action::Send(b) | Action::SendSecret(b) => {
                            self.conn.get_ref().set_timeout(self.client.timeout());
                            self.conn
                                .write_all(&b)
                                .and_then(|()| self.conn.flush())
                                .map_err(|e| Broke::Io("write", e))?;
                        }
                        Action::SendMessage => {
                            self.conn.get_ref().set_timeout(self.client.timeout());
                            write_message(&mut self.conn, out)
                                .map_err(|e| Broke::Io("sending the message", e))?;
                            self.client.message_sent();
                        }
                        Action::StartTls => {
                            if !self.parser.is_empty() {
                                return Err(Broke::Text(
                                    "data after the STARTTLS reply (response injection)",
                                ));
                            }
                            #[cfg(feature = "tls")]
                            {
                                let Some(tc) = self.tls_cfg.clone() else {
                                    return Err(Broke::Text(
                                        "STARTTLS without a TLS configuration",
                                    ));
                                };
                                self.conn.get_ref().set_timeout(client::TIMEOUT_OTHER);
                                let plain =
                                    std::mem::replace(&mut self.conn, Conn::new(Wire::Closed));
                                match plain.upgrade_client(tc, &self.host) {
                                    Ok(c) => self.conn = c,
                                    Err(e) => {
                                        let why = crate::tls::classify_io(&e).to_string();
                                        return Err(Broke::Owned(why));
                                    }
                                }
                                self.parser = ReplyParser::new();
                                next.extend(self.client.tls_started());
                            }
                            #[cfg(not(feature = "tls"))]
                            return Err(Broke::Text("STARTTLS needs the tls feature"));
                        }
                        Action::Done(o) => *outcome = Some(o),
                        Action::Close => {
                            self.close_conn();
                            closed = true;
                        }
                    }
                }
                pending = next;
            }
            if outcome.is_some() {
                return Ok(!closed && self.client.is_idle());
            }
            if closed {
                return Err(Broke::Text("connection closed"));
            }
            self.conn.get_ref().set_timeout(self.client.timeout());
            let n = match self.conn.read(&mut buf) {
                Ok(0) => return Err(Broke::Text("connection lost")),
                Ok(n) => n,
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        return Err(Broke::Text("timed out waiting for the server"))
                    }
                    _ => return Err(Broke::Io("read", e)),
                },
            };
            let replies = self
                .parser
                .feed(buf.get(..n).unwrap_or_default())
                .map_err(Broke::Reply)?;
            for r in replies {
                first_reply.get_or_insert(r.code);
                pending.extend(self.client.on_reply(r));
            }
        }
    }

    fn close_conn(&mut self) {
        #[cfg(feature = "tls")]
        let _ = self.conn.close();
    }

    /// End the session: QUIT when idle, wait a little for the reply (one
    /// read), close.
    fn quit(mut self: Box<Self>) {
        let acts = self.client.quit();
        self.conn.get_ref().set_timeout(QUIT_WAIT);
        let mut close = false;
        for a in &acts {
            match a {
                Action::Send(b)
                    if self
                        .conn
                        .write_all(b)
                        .and_then(|()| self.conn.flush())
                        .is_err() =>
                {
                    return
                }
                Action::Close => close = true,
                _ => {}
            }
        }
        if !close {
            let mut buf = [0u8; 1024];
            let n = match self.conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // The 221, or whatever came: the session ends either way.
            if self.parser.feed(buf.get(..n).unwrap_or_default()).is_err() {
                return;
            }
        }
        self.close_conn();
    }
}

/// The key of a kept session: route and destination.
type Key = (String, String);

/// The SMTP transport of one queue run, with the sessions it keeps open.
#[derive(Default)]
pub struct Smtp {
    /// Read once per run, when first needed: None until then.
    resolver: Option<Option<Resolver>>,
    idle: Vec<(Key, Box<Session>)>,
}

impl Smtp {
    pub fn new() -> Smtp {
        Smtp::default()
    }

    fn resolver(&mut self, cfg: &Config) -> Option<&Resolver> {
        self.resolver
            .get_or_insert_with(|| match Resolver::from_resolv_conf(&cfg.main.resolv_conf) {
                Ok(r) => Some(r),
                Err(e) => {
                    warn!(
                        "{}: {e}; DNS lookups disabled",
                        cfg.main.resolv_conf.display()
                    );
                    None
                }
            })
            .as_ref()
    }

    fn take_idle(&mut self, key: &Key) -> Option<Box<Session>> {
        let i = self.idle.iter().position(|(k, _)| k == key)?;
        Some(self.idle.remove(i).1)
    }

    fn keep(&mut self, key: Key, s: Box<Session>) {
        if self.idle.len() >= MAX_IDLE {
            let (_, oldest) = self.idle.remove(0);
            oldest.quit();
        }
        self.idle.push((key, s));
    }

    /// After a message on `s`: keep it for the next one, or end it.
    fn settle(&mut self, key: Key, mut s: Box<Session>, reusable: bool) {
        s.messages += 1;
        if reusable && s.messages < MAX_MESSAGES {
            self.keep(key, s);
        } else {
            s.quit();
        }
    }

    /// Deliver `out` to `rcpts` through `route`: one result per recipient,
    /// and the relay for the log.
    pub fn deliver(
        &mut self,
        cfg: &Config,
        route: &Route,
        out: &Outgoing<'_>,
        rcpts: &[Address],
    ) -> (String, Vec<Result<String, Failure>>) {
        let n = rcpts.len();
        let (relay, r) = self.attempt(cfg, route, out, rcpts);
        (relay, map_outcome(n, r))
    }

    /// Run a new session (or the outcome of one that failed to open) for
    /// the message; then keep it or end it. A session failure on `tcp`
    /// ends it (another host is tried).
    fn first(
        &mut self,
        key: &Key,
        opened: Result<Box<Session>, Outcome>,
        out: &Outgoing<'_>,
        tcp: bool,
    ) -> Outcome {
        match opened {
            Ok(mut s) => {
                let d = s.drive(out, Vec::new());
                if tcp && d.outcome.session_failure {
                    s.quit();
                } else {
                    self.settle(key.clone(), s, d.reusable);
                }
                d.outcome
            }
            Err(o) => o,
        }
    }

    /// The work of `deliver`: the relay, and the session's outcome or one
    /// failure for every recipient.
    fn attempt(
        &mut self,
        cfg: &Config,
        route: &Route,
        out: &Outgoing<'_>,
        rcpts: &[Address],
    ) -> (String, Result<Outcome, Failure>) {
        let domain = rcpts
            .first()
            .map(|a| a.domain().to_ascii_lowercase())
            .unwrap_or_default();
        let dest = if route.mail_host.is_some() || route.wrapper.is_some() {
            String::new()
        } else {
            domain.clone()
        };
        let key: Key = (route.name.clone(), dest);
        let headers_len: u64 = out.headers.iter().map(|h| h.len() as u64).sum();
        let mail = Mail {
            sender: out.sender.clone(),
            rcpts: rcpts.to_vec(),
            size: headers_len + 2 + out.body_size + out.body_size / 40,
            eight_bit: is_eight_bit(out),
        };

        // A session kept from an earlier message of this run.
        if let Some(mut s) = self.take_idle(&key) {
            if s.usable() {
                let actions = s.client.next_message(mail.clone());
                let d = s.drive(out, actions);
                // No reply at all, or 421: the server had closed the
                // session meanwhile. Nothing was sent: a new one does it.
                let stale = matches!(d.first_reply, None | Some(421));
                if !stale {
                    let relay = s.relay.clone();
                    self.settle(key, s, d.reusable);
                    return (relay, Ok(d.outcome));
                }
                debug!("{}: kept session gone; connecting again", s.relay);
            } else {
                s.quit();
            }
        }

        if let Some(w) = &route.wrapper {
            let relay = format!("wrapper[{w}]");
            let host = route
                .mail_host
                .as_ref()
                .map_or_else(|| domain.clone(), |h| h.host.clone());
            return match spawn_wrapper(w) {
                Ok(wire) => {
                    let opened = Session::open(cfg, route, &host, relay.clone(), wire, mail);
                    (relay, Ok(self.first(&key, opened, out, false)))
                }
                Err(e) if route.connect_error_fail => (relay, Err(Failure::Permanent(e))),
                Err(e) => (relay, Err(Failure::Temporary(e))),
            };
        }

        let (hosts, port) = match targets(route, &domain, self.resolver(cfg)) {
            Ok(h) => h,
            Err(f) => return ("none".into(), Err(f)),
        };
        let mut last_relay = String::from("none");
        let mut last_err = String::from("no host to deliver to");
        let mut connected_once = false;
        for t in &hosts {
            let host = &t.exchange;
            let ips = match addresses(route, host, self.resolver(cfg)) {
                Ok(a) => a,
                Err(f @ Failure::Permanent(_)) if hosts.len() == 1 => {
                    return (host.clone(), Err(f))
                }
                Err(f) => {
                    last_err = f.text().to_string();
                    continue;
                }
            };
            for ip in ips {
                let sa = SocketAddr::new(ip, port);
                let relay = format!("{host}[{ip}]:{port}");
                last_relay = relay.clone();
                let stream =
                    match crate::util::net::connect(sa, true, Instant::now() + CONNECT_TIMEOUT) {
                        Ok(s) => TcpStream::from(s),
                        Err(e) => {
                            last_err = format!("connect to {relay}: {e}");
                            debug!("{last_err}");
                            continue;
                        }
                    };
                connected_once = true;
                let _ = stream.set_nodelay(true);
                let wire = Wire::Tcp(stream, Cell::new(None));
                let opened = Session::open(cfg, route, host, relay, wire, mail.clone());
                let outcome = self.first(&key, opened, out, true);
                if outcome.session_failure {
                    // Another host may do better; keep the reason.
                    if let Some((_, Err(f))) = outcome.per_rcpt.first() {
                        last_err = f.to_string();
                    }
                    continue;
                }
                return (last_relay, Ok(outcome));
            }
        }
        let failure = if !connected_once && route.connect_error_fail {
            Failure::Permanent(last_err)
        } else {
            Failure::Temporary(last_err)
        };
        (last_relay, Err(failure))
    }

    /// QUIT every kept session.
    pub fn close_all(&mut self) {
        for (_, s) in self.idle.drain(..) {
            s.quit();
        }
    }
}

impl Transport for Smtp {
    fn send(
        &mut self,
        cfg: &Config,
        route: &Route,
        out: &Outgoing<'_>,
        rcpts: &[Address],
    ) -> (String, Vec<Result<String, Failure>>) {
        self.deliver(cfg, route, out, rcpts)
    }

    fn finish(&mut self) {
        self.close_all();
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.close_all();
    }
}

/// Deliver one message on a connection of its own (no reuse).
pub fn send(
    cfg: &Config,
    route: &Route,
    out: &Outgoing<'_>,
    rcpts: &[Address],
) -> (String, Vec<Result<String, Failure>>) {
    let mut t = Smtp::new();
    t.deliver(cfg, route, out, rcpts)
}
