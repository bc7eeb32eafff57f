//! The SMTP transport: the I/O loop around `smtp::client::Client`.
//!
//! DESCRIPTION
//!   Delivers one message to some recipients through one route: to the
//!   route's `mail_host` (resolved by `byname`/`dns_a` as `resolve_list`
//!   says), or by MX (RFC 5321 §5.1: MX records by preference, else the
//!   domain's own address). Each host's addresses are tried in order (IPv4
//!   first with `prefer_ipv4`); a host that cannot be reached or that
//!   fails the session before MAIL FROM makes the next one be tried. TLS:
//!   `tls 'tls'` handshakes at connect, `tls 'starttls'` requires STARTTLS;
//!   certificates are checked against `tls_ca_file`, or pinned with
//!   `tls_fingerprint`, or not at all with `tls_verify '0'`.
//!
//! SECURITY
//!   Everything the server sends is parsed by the bounded reply parser;
//!   credentials are written only where the client state machine says so
//!   and never logged. Reads and writes time out (RFC 5321 §4.5.3.2).
//!
//! DIAGNOSTICS
//!   The relay in log lines is `host[ip]:port`. A failure to connect
//!   anywhere defers (bounces with `connect_error_fail`); a certificate
//!   that is not yet valid (router clock before NTP) always defers.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use log::{debug, warn};

use crate::addr::Address;
use crate::config::{Config, ResolveMethod, Route, TlsMode};
use crate::deliver::{Failure, Outgoing};
use crate::dns::{self, Resolver};
use crate::smtp::client::{self, Action, Client, Kind, Mail, Outcome, Params};
use crate::smtp::reply::ReplyParser;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(feature = "tls")]
type Conn = crate::tls::MaybeTls<TcpStream>;

#[cfg(not(feature = "tls"))]
struct Conn(TcpStream);

#[cfg(not(feature = "tls"))]
impl Conn {
    fn new(s: TcpStream) -> Conn {
        Conn(s)
    }
    fn get_ref(&self) -> &TcpStream {
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

/// A host to try: its name (for TLS and logs) and port.
#[derive(Clone, Debug)]
struct Target {
    host: String,
    port: u16,
}

fn temp_all(n: usize, why: &str) -> Vec<Result<String, Failure>> {
    (0..n)
        .map(|_| Err(Failure::Temporary(why.to_string())))
        .collect()
}

/// The hosts for a delivery, best first.
fn targets(
    route: &Route,
    domain: &str,
    resolver: Option<&Resolver>,
) -> Result<Vec<Target>, Failure> {
    if let Some(hp) = &route.mail_host {
        return Ok(vec![Target {
            host: hp.host.clone(),
            port: hp.port,
        }]);
    }
    let port = if route.tls == TlsMode::Tls { 465 } else { 25 };
    if route.resolve_list.contains(&ResolveMethod::DnsMx) {
        if let Some(r) = resolver {
            match r.mx(domain) {
                Ok(mx) => {
                    return Ok(mx
                        .into_iter()
                        .map(|m| Target {
                            host: m.exchange,
                            port,
                        })
                        .collect())
                }
                Err(e) if !e.is_temporary() => {
                    return Err(Failure::Permanent(format!("{domain}: {e}")))
                }
                Err(e) => {
                    debug!("MX of {domain}: {e}");
                    if !route
                        .resolve_list
                        .iter()
                        .any(|m| *m != ResolveMethod::DnsMx)
                    {
                        return Err(Failure::Temporary(format!("MX lookup for {domain}: {e}")));
                    }
                }
            }
        }
    }
    Ok(vec![Target {
        host: domain.to_string(),
        port,
    }])
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
    let mut last = String::from("no resolve method");
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
            Err(e) => {
                permanent = !e.is_temporary();
                last = format!("{host}: {e}");
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

/// Deliver `out` to `rcpts` through `route` (the queue runner's remote
/// transport). One result per recipient, and the relay for the log.
pub fn send(
    cfg: &Config,
    route: &Route,
    out: &Outgoing<'_>,
    rcpts: &[Address],
) -> (String, Vec<Result<String, Failure>>) {
    let resolver = match Resolver::from_resolv_conf(&cfg.main.resolv_conf) {
        Ok(r) => Some(r),
        Err(e) => {
            warn!(
                "{}: {e}; DNS lookups disabled",
                cfg.main.resolv_conf.display()
            );
            None
        }
    };
    let domain = rcpts
        .first()
        .map(|a| a.domain().to_string())
        .unwrap_or_default();
    let hosts = match targets(route, &domain, resolver.as_ref()) {
        Ok(h) => h,
        Err(f) => {
            return (
                "none".into(),
                rcpts.iter().map(|_| Err(f.clone())).collect(),
            )
        }
    };
    let headers_len: u64 = out.headers.iter().map(|h| h.len() as u64).sum();
    let mail = Mail {
        sender: out.sender.clone(),
        rcpts: rcpts.to_vec(),
        size: headers_len + 2 + out.body_size + out.body_size / 40,
        eight_bit: is_eight_bit(out),
    };
    let mut last_relay = String::from("none");
    let mut last_err = String::from("no host to deliver to");
    let mut connected_once = false;
    for t in &hosts {
        let ips = match addresses(route, &t.host, resolver.as_ref()) {
            Ok(a) => a,
            Err(Failure::Permanent(e)) if hosts.len() == 1 => {
                return (
                    t.host.clone(),
                    rcpts
                        .iter()
                        .map(|_| Err(Failure::Permanent(e.clone())))
                        .collect(),
                )
            }
            Err(f) => {
                last_err = f.text().to_string();
                continue;
            }
        };
        for ip in ips {
            let sa = SocketAddr::new(ip, t.port);
            let relay = format!("{}[{ip}]:{}", t.host, t.port);
            let stream = match TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT) {
                Ok(s) => s,
                Err(e) => {
                    debug!("connect {relay}: {e}");
                    last_err = format!("connect to {relay}: {e}");
                    last_relay = relay;
                    continue;
                }
            };
            connected_once = true;
            let outcome = session(cfg, route, &t.host, stream, out, mail.clone());
            last_relay = relay;
            if outcome.session_failure {
                // Another host may do better; keep the reason.
                if let Some((_, Err(f))) = outcome.per_rcpt.first() {
                    last_err = f.to_string();
                }
                continue;
            }
            return (last_relay, map_outcome(rcpts.len(), outcome));
        }
    }
    let failure = if !connected_once && route.connect_error_fail {
        Failure::Permanent(last_err)
    } else {
        Failure::Temporary(last_err)
    };
    (
        last_relay,
        rcpts.iter().map(|_| Err(failure.clone())).collect(),
    )
}

fn map_outcome(n: usize, o: Outcome) -> Vec<Result<String, Failure>> {
    let mut results = temp_all(n, "no result from the SMTP session");
    for (i, r) in o.per_rcpt {
        if let Some(slot) = results.get_mut(i) {
            *slot = match r {
                Ok(reply) => Ok(reply.first_line().to_string()),
                Err(f) => match f.kind {
                    Kind::Temporary => Err(Failure::Temporary(f.to_string())),
                    Kind::Permanent => Err(Failure::Permanent(f.to_string())),
                },
            };
        }
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

/// One SMTP session with one server.
fn session(
    cfg: &Config,
    route: &Route,
    host: &str,
    stream: TcpStream,
    out: &Outgoing<'_>,
    mail: Mail,
) -> Outcome {
    let params = Params::for_route(route, &cfg.main.host_name);
    let mut client = Client::new(params, mail);
    let _ = stream.set_nodelay(true);
    #[allow(unused_mut)]
    let mut conn = Conn::new(stream);
    #[cfg(feature = "tls")]
    let tls_cfg = if route.tls == TlsMode::None {
        None
    } else {
        match crate::tls::client_config(crate::tls::Verify::for_route(route)) {
            Ok(c) => Some(c),
            Err(e) => return client.abort(&format!("TLS setup: {e}")),
        }
    };
    if route.tls == TlsMode::Tls {
        #[cfg(feature = "tls")]
        {
            let Some(tc) = tls_cfg.clone() else {
                return client.abort("TLS setup failed");
            };
            let _ = conn
                .get_ref()
                .set_read_timeout(Some(client::TIMEOUT_GREETING));
            conn = match conn.upgrade_client(tc, host) {
                Ok(c) => c,
                Err(e) => return client.abort(&crate::tls::classify_io(&e).to_string()),
            };
        }
        #[cfg(not(feature = "tls"))]
        return client.abort("implicit TLS needs the tls feature");
    }
    let mut parser = ReplyParser::new();
    let mut buf = vec![0u8; 8192];
    let mut outcome: Option<Outcome> = None;
    loop {
        let _ = conn.get_ref().set_read_timeout(Some(client.timeout()));
        let _ = conn.get_ref().set_write_timeout(Some(client.timeout()));
        let n = match conn.read(&mut buf) {
            Ok(0) => return outcome.unwrap_or_else(|| client.connection_lost()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let why = if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    "timed out waiting for the server".to_string()
                } else {
                    format!("read: {e}")
                };
                return outcome.unwrap_or_else(|| client.abort(&why));
            }
        };
        let replies = match parser.feed(&buf[..n]) {
            Ok(r) => r,
            Err(e) => return outcome.unwrap_or_else(|| client.abort(&format!("bad reply: {e}"))),
        };
        let mut actions: Vec<Action> = Vec::new();
        for r in replies {
            actions.extend(client.on_reply(r));
        }
        while !actions.is_empty() {
            let mut next = Vec::new();
            for a in actions {
                match a {
                    Action::Send(b) | Action::SendSecret(b) => {
                        if let Err(e) = conn.write_all(&b).and_then(|()| conn.flush()) {
                            return outcome.unwrap_or_else(|| client.abort(&format!("write: {e}")));
                        }
                    }
                    Action::SendMessage => {
                        if let Err(e) = write_message(&mut conn, out) {
                            return outcome.unwrap_or_else(|| {
                                client.abort(&format!("sending the message: {e}"))
                            });
                        }
                        client.message_sent();
                    }
                    Action::StartTls => {
                        if !parser.is_empty() {
                            return client
                                .abort("data after the STARTTLS reply (response injection)");
                        }
                        #[cfg(feature = "tls")]
                        {
                            let Some(tc) = tls_cfg.clone() else {
                                return client.abort("STARTTLS without a TLS configuration");
                            };
                            conn = match conn.upgrade_client(tc, host) {
                                Ok(c) => c,
                                Err(e) => {
                                    return client.abort(&crate::tls::classify_io(&e).to_string())
                                }
                            };
                            parser = ReplyParser::new();
                            next.extend(client.tls_started());
                        }
                        #[cfg(not(feature = "tls"))]
                        return client.abort("STARTTLS needs the tls feature");
                    }
                    Action::Done(o) => {
                        outcome = Some(o);
                        next.extend(client.quit());
                    }
                    Action::Close => {
                        #[cfg(feature = "tls")]
                        let _ = conn.close();
                        return outcome.unwrap_or_else(|| client.connection_lost());
                    }
                }
            }
            actions = next;
        }
    }
}
