//! The SMTP receiver: the I/O loop around `smtp::server::Session`.
//!
//! DESCRIPTION
//!   One worker process per connection (forked by the daemon), or `-bs`
//!   on stdin/stdout (inetd, `smtpd`, `in.smtpd`). It feeds the bytes it
//!   reads to the session, writes the replies, does the TLS handshake when
//!   the session asks for it, and turns a message's events into queue-in
//!   calls: `MessageBegin` creates the body file, `DataLine`s are read as
//!   header section then body (with the same limits as sendmail), and
//!   `DataEnd` commits the message to disk before the session is told, so
//!   that `250` is only ever sent for a message that is durable.
//!   After the reply is out, the worker scans the message itself.
//!
//! SECURITY
//!   The worker becomes the mail user before it reads a byte. Reads time
//!   out after five minutes (RFC 5321 §4.5.3.2). AUTH is checked against
//!   the `user` sections' SHA-crypt hashes.
//!
//! DIAGNOSTICS
//!   One log line per accepted message:
//!   `ID: received from=<sender> client=NAME[IP] helo=H protocol=P size=N`.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use log::{debug, error, info, warn};

use crate::addr::Address;
use crate::config::Config;
use crate::error::{CmdResult, Exit, Fail};
use crate::message::{HeaderReader, Limits, LineKind};
use crate::queue::queue_in::Incoming;
use crate::queue::{Envelope, MsgId, Rcpt, Spool};
use crate::scan::Scanner;
use crate::smtp::policy::{Policy, RcptInfo, RelayPolicy, SessionInfo, Verdict};
use crate::smtp::server::{
    CommitError, Event, PeerInfo, Response, ServerParams, Session, Transaction,
};
use crate::util::os_error;

/// RFC 5321 §4.5.3.2: the server waits at least five minutes.
pub const READ_TIMEOUT: Duration = Duration::from_secs(300);

#[cfg(feature = "tls")]
type Conn<S> = crate::tls::MaybeTls<S>;

/// Without TLS support, a connection is just the stream.
#[cfg(not(feature = "tls"))]
struct Conn<S: Read + Write>(S);

#[cfg(not(feature = "tls"))]
impl<S: Read + Write> Conn<S> {
    fn new(s: S) -> Self {
        Conn(s)
    }
}

#[cfg(not(feature = "tls"))]
impl<S: Read + Write> Read for Conn<S> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        self.0.read(b)
    }
}

#[cfg(not(feature = "tls"))]
impl<S: Read + Write> Write for Conn<S> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// stdin and stdout as one stream, for `-bs`, read and written straight
/// on descriptors 0 and 1: the session writes whole replies and nothing
/// else uses stdout, so no buffer is needed (and none on input: what
/// arrives is seen by `input_within` on descriptor 0).
pub struct Stdio;

impl Read for Stdio {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        // A closed stdin reads as the end, as std's stdin does.
        match nix::unistd::read(io::stdin(), b) {
            Err(nix::errno::Errno::EBADF) => Ok(0),
            r => Ok(r?),
        }
    }
}

impl Write for Stdio {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        // A closed stdout swallows the bytes, as std's stdout does.
        match nix::unistd::write(io::stdout(), b) {
            Err(nix::errno::Errno::EBADF) => Ok(b.len()),
            r => Ok(r?),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The stream of a session: the daemon worker's socket or `-bs`'s stdin
/// and stdout (one type, so that the session loop is built once).
enum Stream {
    Tcp(TcpStream),
    Stdio(Stdio),
}

impl Read for Stream {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(b),
            Stream::Stdio(s) => s.read(b),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(b),
            Stream::Stdio(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Stdio(s) => s.flush(),
        }
    }
}

/// The scanner of a session, loaded once per connection for the relay
/// policy and for scanning what was accepted, and whether it has the
/// aliases. When the alias file cannot be read, the policy knows users
/// only and accepted messages are left for the daemon's scan run.
fn session_scanner(cfg: &Config) -> Option<(Scanner<'_>, bool)> {
    match Scanner::new(cfg) {
        Ok(s) => Some((s, true)),
        Err(e) => {
            warn!("aliases unavailable ({e}); local recipients are checked against users only");
            Scanner::with_alias_file(cfg, None).ok().map(|s| (s, false))
        }
    }
}

/// The relay policy of the config: local domains and recipients through
/// scanning's alias resolution, passwords through SHA-crypt.
fn policy<'a>(cfg: &'a Config, scanner: Option<&'a Scanner<'a>>) -> RelayPolicy<'a> {
    let Some(scanner) = scanner else {
        return deny_all(cfg);
    };
    RelayPolicy {
        local_nets: cfg.main.local_nets.clone(),
        is_local_domain: Box::new(move |a: &Address| scanner.is_local(a)),
        local_recipient_exists: Box::new(move |a: &Address| scanner.resolve(a).is_ok()),
        verify_password: Box::new(move |user: &str, pass: &str| {
            cfg.users.iter().find(|u| u.name == user).is_some_and(|u| {
                crate::util::shacrypt::verify(pass.as_bytes(), u.password_hash.expose())
            })
        }),
    }
}

/// The session's policy: the relay policy, and whether the alias file
/// could be read. Without it, a local recipient that is no user may well
/// be an alias, so "unknown" is only a temporary answer (`451 4.3.0`, the
/// client tries again) and never the permanent `550 5.1.1`.
struct SessionPolicy<'a> {
    relay: RelayPolicy<'a>,
    aliases: bool,
}

impl Policy for SessionPolicy<'_> {
    fn rcpt(&self, rcpt: &RcptInfo, session: &SessionInfo) -> Verdict {
        match self.relay.rcpt(rcpt, session) {
            Verdict::Reject(r) if !self.aliases && r.status == Some("5.1.1") => {
                Verdict::Reject(Response::new(
                    451,
                    "4.3.0",
                    "Temporary lookup failure (the alias file cannot be read)",
                ))
            }
            v => v,
        }
    }

    fn authenticate(&self, user: &str, pass: &str) -> bool {
        self.relay.authenticate(user, pass)
    }
}

fn deny_all(cfg: &Config) -> RelayPolicy<'_> {
    RelayPolicy {
        local_nets: cfg.main.local_nets.clone(),
        is_local_domain: Box::new(|_| false),
        local_recipient_exists: Box::new(|_| false),
        verify_password: Box::new(|_, _| false),
    }
}

/// A message being received.
struct Sink<'a> {
    tx: Box<Transaction>,
    incoming: Option<Incoming<'a>>,
    headers: HeaderReader,
    in_body: bool,
    size: u64,
    failed: Option<CommitError>,
}

fn io_commit_error(e: &io::Error) -> CommitError {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => CommitError::NoSpace,
        _ => CommitError::Io,
    }
}

impl<'a> Sink<'a> {
    fn new(spool: &'a Spool, tx: Box<Transaction>, cfg: &Config) -> Sink<'a> {
        let limits = Limits {
            max_line: cfg.main.max_line_length,
            max_header_size: cfg.main.max_header_size,
            max_headers: cfg.main.max_headers,
        };
        let (incoming, failed) = match Incoming::create(spool) {
            Ok(i) => (Some(i), None),
            Err(e) => {
                error!("cannot create a message in the spool: {e}");
                (None, Some(io_commit_error(&e)))
            }
        };
        Sink {
            tx,
            incoming,
            headers: HeaderReader::new(limits),
            in_body: false,
            size: 0,
            failed,
        }
    }

    fn body(&mut self, line: &[u8]) {
        if let Some(inc) = self.incoming.as_mut() {
            let r = inc.write_body(line).and_then(|()| inc.write_body(b"\n"));
            if let Err(e) = r {
                error!("writing a message body: {e}");
                self.failed = Some(io_commit_error(&e));
                self.incoming = None;
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.size += line.len() as u64 + 1;
        if self.in_body {
            self.body(line);
            return;
        }
        match self.headers.feed(line) {
            Ok(LineKind::Header) => {}
            Ok(LineKind::EndOfHeaders) => self.in_body = true,
            Ok(LineKind::BodyStart) => {
                self.in_body = true;
                self.body(line);
            }
            Err(e) => {
                self.failed = Some(CommitError::Refused(Response::new(
                    552,
                    "5.3.4",
                    format!("Message refused: {e}"),
                )));
                self.incoming = None;
            }
        }
    }

    /// Make the message durable; the ID for the 250 reply.
    fn commit(self, ident: &str) -> Result<MsgId, CommitError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let Some(inc) = self.incoming else {
            return Err(CommitError::Io);
        };
        let mut tx = self.tx;
        let nrcpt = tx.recipients.len();
        let env = Envelope {
            sender: tx.sender.clone(),
            full_name: None,
            protocol: tx.protocol.to_ascii_lowercase(),
            ident: ident.to_string(),
            helo: Some(tx.helo.clone()),
            received: crate::util::time::now(),
            body_size: 0,
            rcpts: std::mem::take(&mut tx.recipients)
                .into_iter()
                .map(Rcpt::new)
                .collect(),
            warned: false,
            // Without the tls feature no session ever has TLS.
            #[cfg(feature = "tls")]
            tls: tx
                .peer
                .tls
                .as_ref()
                .map(|t| format!("{} with cipher {}", t.version, t.cipher)),
            #[cfg(not(feature = "tls"))]
            tls: None,
        };
        let headers = self.headers.finish();
        match inc.commit(env, headers) {
            Ok(id) => {
                info!(
                    "{id}: received from=<{}> client={ident} helo={} protocol={}{}{} size={} nrcpt={nrcpt}",
                    tx.sender,
                    tx.helo,
                    tx.protocol,
                    if tx.auth_user.is_some() { " auth=" } else { "" },
                    tx.auth_user.as_deref().unwrap_or(""),
                    self.size,
                );
                Ok(id)
            }
            Err(e) => {
                error!("cannot commit a message: {e}");
                Err(io_commit_error(&e))
            }
        }
    }
}

/// The server's TLS configuration: loaded while still root, so the key
/// file can stay readable by root only.
#[cfg(feature = "tls")]
pub type ServerTls = Option<std::sync::Arc<rustls::ServerConfig>>;
#[cfg(not(feature = "tls"))]
pub type ServerTls = Option<()>;

/// The client's address as RFC 5321 §4.1.3 writes it: `[192.0.2.1]`,
/// `[IPv6:2001:db8::1]` (in the Received header and the logs).
fn address_literal(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let tag = if ip.is_ipv6() { "IPv6:" } else { "" };
    format!("[{tag}{ip}]")
}

/// Set by SIGTERM in a worker: the daemon is stopping.
static STOPPING: AtomicBool = AtomicBool::new(false);
/// The worker's socket, for the SIGTERM handler.
static SOCKET_FD: AtomicI32 = AtomicI32::new(-1);

/// SIGTERM in a worker: end the read side of the socket, so that a read
/// waiting for the client returns at once (no race with a flag checked
/// before blocking); the session loop then says `421` and closes. A
/// message being committed is finished first: the loop only looks at the
/// flag when a read returns.
extern "C" fn on_sigterm(_: libc::c_int) {
    STOPPING.store(true, Ordering::SeqCst);
    let fd = SOCKET_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: shutdown(2) is async-signal-safe; the fd is the worker's
        // socket, open for the worker's whole life.
        unsafe { libc::shutdown(fd, libc::SHUT_RD) };
    }
}

fn catch_sigterm(fd: i32) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    SOCKET_FD.store(fd, Ordering::SeqCst);
    let act = SigAction::new(
        SigHandler::Handler(on_sigterm),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only stores atomics and calls shutdown(2).
    if let Err(e) = unsafe { sigaction(Signal::SIGTERM, &act) } {
        warn!("sigaction: {}", os_error(e));
    }
}

/// A worker's exit code when messages it accepted are left in incoming/.
pub const EXIT_UNSCANNED: i32 = 3;

/// Serve one SMTP connection (a daemon worker). Returns the exit code:
/// 0, or [`EXIT_UNSCANNED`].
pub fn serve(cfg: &Config, stream: TcpStream, peer: SocketAddr, implicit_tls: bool) -> i32 {
    catch_sigterm(stream.as_raw_fd());
    let tls = server_tls(cfg);
    if let Err(f) = crate::privs::become_mail_user(cfg) {
        error!("{f}");
        return 1;
    }
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let client = Client {
        ip: peer.ip(),
        ident: address_literal(peer.ip()),
        implicit_tls,
        input_fd: Some(stream.as_raw_fd()),
    };
    let mut unscanned = Vec::new();
    let r = session(
        cfg,
        Conn::new(Stream::Tcp(stream)),
        &client,
        tls,
        &mut unscanned,
    );
    if let Err(e) = r {
        debug!("connection from {}: {e}", client.ident);
    }
    // The daemon runs a scan when a worker did not scan everything it
    // accepted; exit 0 tells it there is nothing to do.
    if unscanned.is_empty() {
        0
    } else {
        EXIT_UNSCANNED
    }
}

/// `-bs`: SMTP on stdin/stdout. A socket on stdin (inetd) gives the
/// client's address; a pipe counts as a local client.
pub fn serve_stdio(cfg: &Config) -> CmdResult {
    crate::privs::prepare_spool(cfg)?;
    let tls = server_tls(cfg);
    crate::privs::become_mail_user(cfg)?;
    // The spool's directories, when no daemon or sendmail made them yet.
    Spool::open(&cfg.main.spool_dir)
        .map_err(|e| Fail::spool_io(&format!("spool {}", cfg.main.spool_dir.display()), &e))?;
    let peer = nix::sys::socket::getpeername::<nix::sys::socket::SockaddrStorage>(0)
        .ok()
        .and_then(|sa| {
            sa.as_sockaddr_in()
                .map(|a| IpAddr::V4(a.ip()))
                .or_else(|| sa.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
        });
    let (ip, ident) = match peer {
        Some(ip) => (ip, address_literal(ip)),
        None => {
            let user = crate::passwd::by_uid(nix::unistd::getuid().as_raw())
                .ok()
                .flatten()
                .map_or_else(|| format!("uid{}", nix::unistd::getuid()), |u| u.name);
            (IpAddr::V4(Ipv4Addr::LOCALHOST), user)
        }
    };
    let mut unscanned = Vec::new();
    let client = Client {
        ip,
        ident,
        implicit_tls: false,
        input_fd: Some(0),
    };
    session(
        cfg,
        Conn::new(Stream::Stdio(Stdio)),
        &client,
        tls,
        &mut unscanned,
    )
    .map_err(|e| Fail::new(Exit::IoErr, e))
}

#[cfg(not(feature = "tls"))]
pub fn server_tls(_cfg: &Config) -> ServerTls {
    None
}

#[cfg(feature = "tls")]
pub fn server_tls(cfg: &Config) -> ServerTls {
    let (cert, key) = (cfg.main.tls_cert.as_ref()?, cfg.main.tls_key.as_ref()?);
    match crate::tls::server_config(cert, key) {
        Ok(c) => Some(c),
        Err(e) => {
            error!("TLS disabled: {e}");
            None
        }
    }
}

fn write_all(conn: &mut Conn<Stream>, out: &mut Vec<u8>) -> Result<(), String> {
    if out.is_empty() {
        return Ok(());
    }
    let r = conn.write_all(out).and_then(|()| conn.flush());
    out.clear();
    r.map_err(|e| format!("write: {e}"))
}

/// Accepted messages are scanned when the client has sent nothing for
/// this long (or at the end of the session)…
const SCAN_PAUSE_MS: u16 = 10;
/// …or when this many wait.
const SCAN_BATCH: usize = 16;

/// Does input arrive on `fd` within `ms` milliseconds? (False on errors
/// and without a descriptor: then the caller scans at once.)
fn input_within(fd: Option<RawFd>, ms: u16) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::BorrowedFd;
    let Some(fd) = fd else {
        return false;
    };
    // SAFETY: the descriptor stays open for the whole session.
    let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(bfd, PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0)
}

/// Scan messages whose 250 is out; those that could not be scanned stay
/// in `ids` (and in `incoming/`, for the daemon's scan run).
fn scan_accepted(scanner: Option<&Scanner<'_>>, spool: &Spool, ids: &mut Vec<MsgId>) {
    let Some(s) = scanner else {
        return;
    };
    let mut i = 0;
    while let Some(id) = ids.get(i) {
        match s.scan(spool, id) {
            Ok(_) => {
                ids.remove(i);
            }
            Err(e) => {
                warn!("{id}: left for the daemon to scan: {e}");
                i += 1;
            }
        }
    }
}

/// The other end of a session.
struct Client {
    ip: IpAddr,
    /// `[IP]`, or the local user for `-bs` on a pipe.
    ident: String,
    /// TLS from the first byte (a listener in `smtps_addresses`).
    implicit_tls: bool,
    /// The descriptor input arrives on, to see whether the client pauses.
    input_fd: Option<RawFd>,
}

/// The session loop.
fn session(
    cfg: &Config,
    conn: Conn<Stream>,
    client: &Client,
    tls_cfg: ServerTls,
    unscanned: &mut Vec<MsgId>,
) -> Result<(), String> {
    let Client {
        ip,
        ref ident,
        implicit_tls,
        input_fd,
    } = *client;
    let ident = ident.as_str();
    let spool = Spool::existing(&cfg.main.spool_dir);
    let scanned = session_scanner(cfg);
    let scanner = scanned.as_ref().map(|(s, _)| s);
    let policy = &SessionPolicy {
        relay: policy(cfg, scanner),
        aliases: matches!(scanned, Some((_, true))),
    };
    // Only a scanner with the aliases scans here; otherwise the daemon does.
    let scanner = scanned.as_ref().and_then(|(s, full)| full.then_some(s));
    let starttls = tls_cfg.is_some();
    let mut conn = Some(conn);
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut peer = PeerInfo {
        ip,
        name: None,
        tls: None,
    };
    if implicit_tls {
        #[cfg(feature = "tls")]
        {
            let Some(tc) = tls_cfg.clone() else {
                return Err("implicit TLS without a certificate".into());
            };
            let c = conn.take().ok_or("no connection")?;
            let c = c
                .upgrade_server(tc)
                .map_err(|e| format!("TLS handshake: {e}"))?;
            peer.tls = c.info();
            conn = Some(c);
        }
        #[cfg(not(feature = "tls"))]
        return Err("implicit TLS needs the tls feature".into());
    }
    let params = ServerParams::from_config(cfg, starttls && !implicit_tls);
    let mut session = Session::new(params, peer);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut sink: Option<Sink<'_>> = None;
    let mut pending = session.greeting();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Carry out the events; some produce more.
        while !pending.is_empty() {
            let events = std::mem::take(&mut pending);
            for ev in events {
                match ev {
                    Event::Reply(r) => out.extend_from_slice(r.as_bytes()),
                    Event::MessageBegin(tx) => sink = Some(Sink::new(&spool, tx, cfg)),
                    Event::DataLine(l) => {
                        if let Some(s) = sink.as_mut() {
                            s.line(&l);
                        }
                    }
                    Event::DataAbort(reason) => {
                        debug!("message dropped: {}", reason.as_str());
                        sink = None;
                    }
                    Event::DataEnd => {
                        let result = match sink.take() {
                            Some(s) => s.commit(ident),
                            None => Err(CommitError::Io),
                        };
                        let reply = result.map(|id| {
                            unscanned.push(id);
                            id.as_str().to_owned()
                        });
                        pending.extend(session.data_committed(reply, policy));
                    }
                    Event::StartTls => {
                        let c = conn.as_mut().ok_or("no connection")?;
                        write_all(c, &mut out)?;
                        #[cfg(feature = "tls")]
                        {
                            let tc = tls_cfg.clone().ok_or("STARTTLS without a certificate")?;
                            let c = conn.take().ok_or("no connection")?;
                            let c = c
                                .upgrade_server(tc)
                                .map_err(|e| format!("TLS handshake: {e}"))?;
                            let info = c.info();
                            conn = Some(c);
                            if let Some(i) = info {
                                pending.extend(session.tls_started(i));
                            }
                        }
                    }
                    Event::Close => {
                        if let Some(c) = conn.as_mut() {
                            write_all(c, &mut out)?;
                            #[cfg(feature = "tls")]
                            let _ = c.close();
                        }
                        // A message whose 250 came with the QUIT's 221.
                        scan_accepted(scanner, &spool, unscanned);
                        return Ok(());
                    }
                }
            }
        }
        let c = conn.as_mut().ok_or("no connection")?;
        write_all(c, &mut out)?;
        // The 250 is out. Scan what was accepted once the client pauses:
        // its next command (QUIT, usually, sent the moment the 250
        // arrives) is answered first, and the scan runs after the 221.
        if !unscanned.is_empty()
            && (unscanned.len() >= SCAN_BATCH || !input_within(input_fd, SCAN_PAUSE_MS))
        {
            scan_accepted(scanner, &spool, unscanned);
        }
        let got = c.read(&mut buf);
        if STOPPING.load(Ordering::SeqCst) {
            // The daemon is stopping (SIGTERM): whatever the read gave.
            if session.is_closed() {
                return Ok(());
            }
            pending = session.shutdown();
            continue;
        }
        match got {
            Ok(0) => {
                debug!("{ident} closed the connection");
                return Ok(());
            }
            Ok(n) => pending = session.feed(&buf[..n], policy),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                pending = session.timeout();
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_literals() {
        for (ip, want) in [
            ("192.0.2.1", "[192.0.2.1]"),
            ("::1", "[IPv6:::1]"),
            ("2001:db8::25", "[IPv6:2001:db8::25]"),
            ("::ffff:192.0.2.9", "[192.0.2.9]"),
        ] {
            assert_eq!(address_literal(ip.parse().unwrap()), want);
        }
    }
}
