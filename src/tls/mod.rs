//! tls — TLS for the SMTP server and the SMTP client (rustls with ring),
//! built only with the `tls` cargo feature.
//!
//! DESCRIPTION
//!   [`server_config`] loads `tls_cert` (the PEM chain, leaf first) and
//!   `tls_key` (PKCS#8, RSA or SEC1 EC, unencrypted) for STARTTLS and the
//!   implicit-TLS listeners; TLS 1.2 and 1.3.
//!   [`client_config`] builds the client side of a route from [`Verify`]:
//!   WebPKI against the CA bundle in `tls_ca_file` (read at run time; the
//!   default is OpenWrt's and Debian's `/etc/ssl/certs/ca-certificates.crt`,
//!   no roots are built in), a pinned SHA-256 of the server certificate
//!   (`tls_fingerprint`), or no check at all (`tls_verify '0'`).
//!   [`MaybeTls`] is the stream the SMTP server worker and the SMTP client
//!   both read and write: plain until `upgrade_server` / `upgrade_client`,
//!   which finish the handshake before they return, so a failure shows at
//!   STARTTLS (or connect) time, not at the next command. [`MaybeTls::info`]
//!   gives the version and cipher for the Received header (the SMTP
//!   session's own `TlsInfo`), [`MaybeTls::peer_cert_sha256`] the server
//!   certificate's SHA-256 for the client's logs.
//!   [`classify`] / [`classify_io`] tell the transports what a failure means.
//!
//! SECURITY
//!   Trusts the files the configuration names (certificate, key, CA
//!   bundle) and only reads them, each at most 8 MiB. The key is handed to
//!   rustls and never printed; the daemon loads it before its workers drop
//!   privileges, so `tls_key` can stay mode 0600 root. The CA bundle is read
//!   at each `client_config`, so an updated bundle counts without a restart.
//!   Everything from the peer goes to rustls first; names quoted from its
//!   certificate reach the logs only through `classify` (one line, no
//!   control characters). The three client checks:
//!     CA file      chain to a CA of the bundle, name = the mail host
//!                  (sent as SNI), validity dates: the WebPKI rules.
//!     fingerprint  SHA-256 of the leaf certificate (DER) must equal the pin;
//!                  chain, name and dates are ignored, like a DANE-EE record
//!                  (RFC 7672 §3.1.1), so a self-signed or expired pinned
//!                  certificate works and a router without a clock or CA
//!                  bundle can still be sure. The handshake signature is
//!                  still checked with the pinned certificate's key, so only
//!                  the holder of that key can answer.
//!     none         encrypts, checks nothing: stops a passive listener, not
//!                  an active attacker. Only for `tls_verify '0'`.
//!   MaybeTls never buffers plaintext: a caller that read ahead (pipelined
//!   commands after STARTTLS, RFC 3207 §4.2, CVE-2011-0411) must throw its
//!   read buffer away before it upgrades.
//!
//! DIAGNOSTICS
//!   Configuration errors are one line naming the option and the file:
//!   `tls_key /etc/masqmail/key.pem: no private key found (…)`.
//!   Handshake failures come back as `io::Error` carrying the rustls error;
//!   [`classify_io`] turns them into one line with a hint, e.g.
//!   `TLS: server certificate not valid before 2026-11-25 20:00:00 UTC, and
//!   the clock says 1970-01-01 00:00:07 UTC: is the clock set (NTP)?`.
//!   Every TLS failure is temporary: the message is deferred, never bounced
//!   for it (it bounces only at `max_defer_time`, like any deferral). Each
//!   cause can be fixed without the sender — the clock (NTP), the CA bundle,
//!   the pin, the route's `mail_host`, the server's certificate — and a
//!   router whose mail bounces because its clock was not yet set would lose
//!   exactly the mail it exists to keep.
//!
//! CONFIGURATION PARAMETERS
//!   `tls_cert`, `tls_key` (section masqmail); `tls`, `tls_verify`,
//!   `tls_ca_file`, `tls_fingerprint` (section route). A pin decides alone:
//!   with `tls_fingerprint` set, `tls_verify` and `tls_ca_file` are not
//!   looked at ([`Verify::for_route`]).

mod verify;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, CommonState, Error, ProtocolVersion,
    RootCertStore, ServerConfig, ServerConnection, StreamOwned, SupportedProtocolVersion,
};

pub use crate::smtp::server::TlsInfo;

use crate::config::Route;
use crate::util::time;

/// Bigger certificate, key or CA files are refused (a CA bundle is about
/// 200 KiB).
const MAX_PEM_FILE: u64 = 8 << 20;

const VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// How the SMTP client checks the server (route options `tls_verify`,
/// `tls_ca_file`, `tls_fingerprint`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verify {
    /// WebPKI verification against the CA certificates in this PEM file.
    CaFile(PathBuf),
    /// Accept exactly the leaf certificate whose DER has this SHA-256.
    Fingerprint([u8; 32]),
    /// Accept any certificate (`tls_verify '0'`). Insecure against an
    /// active attacker; it only keeps passive listeners out.
    None,
}

impl Verify {
    /// The check a route asks for. A pin wins: with `tls_fingerprint` set,
    /// `tls_verify` and `tls_ca_file` are not looked at.
    pub fn for_route(r: &Route) -> Verify {
        match (r.tls_fingerprint, r.tls_verify) {
            (Some(pin), _) => Verify::Fingerprint(pin),
            (None, true) => Verify::CaFile(r.tls_ca_file.clone()),
            (None, false) => Verify::None,
        }
    }
}

/// What a TLS failure means for the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// Defer and retry later; the reason names what to fix.
    Temporary(String),
    /// Never produced by [`classify`]: masqmail defers on every TLS failure
    /// (module header, DIAGNOSTICS). The variant keeps the transports' match
    /// on TLS and SMTP failures the same shape.
    Permanent(String),
}

impl TlsFailure {
    pub fn reason(&self) -> &str {
        match self {
            TlsFailure::Temporary(r) | TlsFailure::Permanent(r) => r,
        }
    }

    pub fn is_temporary(&self) -> bool {
        matches!(self, TlsFailure::Temporary(_))
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// The server side of STARTTLS and implicit TLS: `tls_cert` (chain, leaf
/// first) and `tls_key`.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    server_config_versions(cert, key, VERSIONS)
}

fn server_config_versions(
    cert: &Path,
    key: &Path,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<ServerConfig>, String> {
    let chain = load_certs("tls_cert", cert)?;
    let key_der = load_key(key)?;
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| match e {
            Error::InconsistentKeys(_) => format!(
                "tls_key {} does not belong to the certificate in tls_cert {}",
                key.display(),
                cert.display()
            ),
            e => format!(
                "tls_cert {} / tls_key {}: {e}",
                cert.display(),
                key.display()
            ),
        })?;
    // One worker process per connection: a session cache or tickets could
    // never be used again, so keep neither.
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    Ok(Arc::new(cfg))
}

/// The client side for one route.
pub fn client_config(verify: Verify) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(provider::default_provider());
    let algs = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .map_err(|e| format!("TLS setup: {e}"))?;
    let cfg = match verify {
        Verify::CaFile(path) => builder
            .with_root_certificates(load_roots(&path)?)
            .with_no_client_auth(),
        Verify::Fingerprint(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verify::PinVerifier::new(Some(pin), algs)))
            .with_no_client_auth(),
        Verify::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verify::PinVerifier::new(None, algs)))
            .with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// SHA-256 of a certificate's DER, as pinned by `tls_fingerprint`.
pub fn sha256(der: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    for (o, b) in out.iter_mut().zip(d.as_ref()) {
        *o = *b;
    }
    out
}

fn read_pem_file(option: &str, path: &Path) -> Result<Vec<u8>, String> {
    let what = || format!("{option} {}", path.display());
    let f = File::open(path).map_err(|e| format!("{}: {e}", what()))?;
    let mut buf = Vec::new();
    f.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{}: {e}", what()))?;
    if buf.len() as u64 > MAX_PEM_FILE {
        return Err(format!(
            "{}: larger than {} MiB, not a PEM file",
            what(),
            MAX_PEM_FILE >> 20
        ));
    }
    Ok(buf)
}

fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no -----END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a malformed -----BEGIN line".into(),
        pem::Error::Base64Decode(_) => "bad base64 inside a PEM section".into(),
        e => e.to_string(),
    }
}

fn load_certs(option: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let buf = read_pem_file(option, path)?;
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(&buf) {
        certs.push(c.map_err(|e| format!("{option} {}: {}", path.display(), pem_error(&e)))?);
    }
    if certs.is_empty() {
        return Err(format!(
            "{option} {}: no -----BEGIN CERTIFICATE----- found (a PEM file is needed)",
            path.display()
        ));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let buf = read_pem_file("tls_key", path)?;
    PrivateKeyDer::from_pem_slice(&buf).map_err(|e| {
        let why = match e {
            pem::Error::NoItemsFound if contains(&buf, b"ENCRYPTED") => {
                "the key is encrypted; store it without a passphrase \
                 (openssl pkey -in KEY -out KEY.new), mode 0600"
                    .to_string()
            }
            pem::Error::NoItemsFound => {
                "no private key found (PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
                    .to_string()
            }
            e => pem_error(&e),
        };
        format!("tls_key {}: {why}", path.display())
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let certs = load_certs("tls_ca_file", path)?;
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if ignored > 0 {
        log::debug!(
            "tls_ca_file {}: {ignored} certificates not usable as trust anchors, skipped",
            path.display()
        );
    }
    if added == 0 {
        return Err(format!(
            "tls_ca_file {}: no usable CA certificate in it",
            path.display()
        ));
    }
    Ok(roots)
}

/// A host name or address literal as rustls wants it: `[::1]` and a
/// trailing dot are accepted.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let h = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let h = h.unwrap_or(host);
    let h = h.strip_suffix('.').unwrap_or(h);
    ServerName::try_from(h.to_owned())
        .map_err(|_| format!("'{host}' is not a valid TLS server name"))
}

/// Version (`TLSv1.2`, `TLSv1.3`) and IANA cipher name
/// (`TLS_AES_256_GCM_SHA384`, `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`) of a
/// finished handshake, as the SMTP session puts them in the Received header.
fn tls_info(c: &CommonState) -> Option<TlsInfo> {
    let version = match c.protocol_version()? {
        ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
        ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
        v => format!("{v:?}"),
    };
    let suite = c.negotiated_cipher_suite()?.suite();
    let cipher = match suite.as_str() {
        // rustls says TLS13_AES_128_GCM_SHA256 where IANA says TLS_….
        Some(n) => match n.strip_prefix("TLS13_") {
            Some(rest) => format!("TLS_{rest}"),
            None => n.to_string(),
        },
        None => format!("0x{:04X}", u16::from(suite)),
    };
    Some(TlsInfo { version, cipher })
}

fn peer_cert_sha256(c: &CommonState) -> Option<[u8; 32]> {
    let leaf = c.peer_certificates()?.first()?;
    Some(sha256(leaf.as_ref()))
}

/// A connection that is plain until STARTTLS (or from the start, for
/// implicit TLS) and encrypted after it. Reads and writes go through
/// rustls once upgraded.
pub enum MaybeTls<S: Read + Write> {
    Plain(S),
    Client(Box<StreamOwned<ClientConnection, S>>),
    Server(Box<StreamOwned<ServerConnection, S>>),
}

impl<S: Read + Write> MaybeTls<S> {
    pub fn new(sock: S) -> MaybeTls<S> {
        MaybeTls::Plain(sock)
    }

    pub fn is_tls(&self) -> bool {
        !matches!(self, MaybeTls::Plain(_))
    }

    /// The socket underneath (for timeouts and addresses). Writing to it
    /// directly would corrupt a TLS stream.
    pub fn get_ref(&self) -> &S {
        match self {
            MaybeTls::Plain(s) => s,
            MaybeTls::Client(t) => t.get_ref(),
            MaybeTls::Server(t) => t.get_ref(),
        }
    }

    /// Take the server role of a handshake and finish it. The caller has
    /// already sent `220 Ready to start TLS` (or nothing, for implicit TLS)
    /// and thrown away anything it read ahead.
    pub fn upgrade_server(self, cfg: Arc<ServerConfig>) -> io::Result<MaybeTls<S>> {
        let sock = self.into_plain()?;
        let conn = ServerConnection::new(cfg).map_err(io_error)?;
        let mut stream = StreamOwned::new(conn, sock);
        handshake(&mut stream.conn, &mut stream.sock)?;
        Ok(MaybeTls::Server(Box::new(stream)))
    }

    /// Take the client role of a handshake with `host` (the mail host as
    /// configured or found by MX: the name checked and sent as SNI) and
    /// finish it, so a certificate problem shows here.
    pub fn upgrade_client(self, cfg: Arc<ClientConfig>, host: &str) -> io::Result<MaybeTls<S>> {
        let name = server_name(host).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let sock = self.into_plain()?;
        let conn = ClientConnection::new(cfg, name).map_err(io_error)?;
        let mut stream = StreamOwned::new(conn, sock);
        handshake(&mut stream.conn, &mut stream.sock)?;
        Ok(MaybeTls::Client(Box::new(stream)))
    }

    fn into_plain(self) -> io::Result<S> {
        match self {
            MaybeTls::Plain(s) => Ok(s),
            _ => Err(io::Error::other("TLS is already on")),
        }
    }

    /// Version and cipher, once TLS is on.
    pub fn info(&self) -> Option<TlsInfo> {
        match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Client(t) => tls_info(&t.conn),
            MaybeTls::Server(t) => tls_info(&t.conn),
        }
    }

    /// SHA-256 of the peer's certificate, for the logs (print it with
    /// `config::format_fingerprint`, the form `tls_fingerprint` takes). None on the
    /// server side: SMTP clients are not asked for a certificate.
    pub fn peer_cert_sha256(&self) -> Option<[u8; 32]> {
        match self {
            MaybeTls::Plain(_) => None,
            MaybeTls::Client(t) => peer_cert_sha256(&t.conn),
            MaybeTls::Server(t) => peer_cert_sha256(&t.conn),
        }
    }

    /// Send close_notify (after QUIT); a no-op on a plain connection.
    pub fn close(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.flush(),
            MaybeTls::Client(t) => {
                t.conn.send_close_notify();
                flush_tls(&mut t.conn, &mut t.sock)
            }
            MaybeTls::Server(t) => {
                t.conn.send_close_notify();
                flush_tls(&mut t.conn, &mut t.sock)
            }
        }
    }
}

fn handshake<D, S: Read + Write>(
    conn: &mut rustls::ConnectionCommon<D>,
    sock: &mut S,
) -> io::Result<()> {
    // complete_io returns once the handshake is done, or with its error
    // (after sending the alert) or UnexpectedEof.
    while conn.is_handshaking() {
        if conn.complete_io(sock)? == (0, 0) {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    flush_tls(conn, sock)
}

fn flush_tls<D, S: Read + Write>(
    conn: &mut rustls::ConnectionCommon<D>,
    sock: &mut S,
) -> io::Result<()> {
    while conn.wants_write() {
        if conn.write_tls(sock)? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    sock.flush()
}

fn io_error(e: Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<S: Read + Write> Read for MaybeTls<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(s) => s.read(buf),
            MaybeTls::Client(t) => t.read(buf),
            MaybeTls::Server(t) => t.read(buf),
        }
    }
}

impl<S: Read + Write> Write for MaybeTls<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(s) => s.write(buf),
            MaybeTls::Client(t) => t.write(buf),
            MaybeTls::Server(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.flush(),
            MaybeTls::Client(t) => t.flush(),
            MaybeTls::Server(t) => t.flush(),
        }
    }
}

/// The rustls error inside an I/O error from [`MaybeTls`], if any.
pub fn tls_error(e: &io::Error) -> Option<&Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
}

/// What an error from `upgrade_*` (or a later read or write) means.
pub fn classify_io(e: &io::Error) -> TlsFailure {
    if let Some(t) = tls_error(e) {
        return classify(t);
    }
    let why = match e.kind() {
        io::ErrorKind::UnexpectedEof => "the connection closed during the TLS handshake".into(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "TLS handshake timed out".into(),
        _ => format!("TLS handshake: {e}"),
    };
    TlsFailure::Temporary(format!("TLS: {why}"))
}

/// What a TLS failure means for the message: always temporary (see
/// DIAGNOSTICS in the header), with a reason that says what to fix. The
/// reason is one line: it may quote the peer's certificate, so control
/// characters are replaced and the length is bounded.
pub fn classify(err: &Error) -> TlsFailure {
    let why = match err {
        Error::InvalidCertificate(c) => certificate_problem(c),
        Error::PeerIncompatible(p) => {
            format!("no TLS version or cipher in common with the peer ({p:?})")
        }
        Error::AlertReceived(a) => format!("the peer refused the TLS handshake ({a:?})"),
        e => e.to_string(),
    };
    TlsFailure::Temporary(one_line(&format!("TLS: {why}")))
}

/// At most 400 characters, no control characters: safe for a log line and
/// the queue's last-error field.
fn one_line(s: &str) -> String {
    const MAX: usize = 400;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

/// The names webpki found in the certificate, which it shows as
/// `DnsName("a.example")` and `IpAddress(192.0.2.1)`.
fn presented_names(presented: &[String]) -> String {
    let names: Vec<&str> = presented
        .iter()
        .take(8)
        .map(|p| {
            p.strip_prefix("DnsName(\"")
                .and_then(|n| n.strip_suffix("\")"))
                .or_else(|| {
                    p.strip_prefix("IpAddress(")
                        .and_then(|n| n.strip_suffix(')'))
                })
                .unwrap_or(p)
        })
        .collect();
    match names.len() {
        0 => "no host name".into(),
        n if n < presented.len() => format!("{}, …", names.join(", ")),
        _ => names.join(", "),
    }
}

fn when(t: &rustls::pki_types::UnixTime) -> String {
    format!("{} UTC", time::short(&time::utc(t.as_secs())))
}

fn certificate_problem(c: &CertificateError) -> String {
    match c {
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "server certificate not valid before {}, and the clock says {}: \
             is the clock set (NTP)?",
            when(not_before),
            when(time)
        ),
        CertificateError::NotValidYet => {
            "server certificate not valid yet: is the clock set (NTP)?".into()
        }
        CertificateError::ExpiredContext { time, not_after } => format!(
            "server certificate expired {} (the clock says {})",
            when(not_after),
            when(time)
        ),
        CertificateError::Expired => "server certificate expired".into(),
        CertificateError::UnknownIssuer => "server certificate not issued by a CA of \
             tls_ca_file (install the CA bundle, or pin the certificate with tls_fingerprint)"
            .into(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "server certificate is for {}, not {} (set mail_host to a name it holds)",
            presented_names(presented),
            expected.to_str()
        ),
        CertificateError::NotValidForName => {
            "server certificate is not for this host name (check mail_host)".into()
        }
        CertificateError::Other(other) => match other.0.downcast_ref::<verify::PinMismatch>() {
            Some(m) => m.to_string(),
            None => format!("server certificate refused: {}", other.0),
        },
        c => format!("server certificate refused: {c}"),
    }
}
