//! Real handshakes over loopback TCP, with a test CA and certificates made
//! by the `openssl` command line. Without it the tests print SKIP and pass.

use std::collections::BTreeMap;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use super::*;
use crate::config::format_fingerprint;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("masqmail-tls-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temp dir");
        Dir(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, data).expect("write test file");
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The openssl configuration for the test CA (`openssl ca` needs one to
/// set arbitrary validity dates).
const OPENSSL_CNF: &str = include_str!("../../tests/common/openssl-test.cnf");

const EC: &[&str] = &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
const RSA: &[&str] = &["-newkey", "rsa:2048"];
const PAST: (&str, &str) = ("20200101000000Z", "20210101000000Z");
const FUTURE: (&str, &str) = ("20900101000000Z", "20910101000000Z");
const NOW: (&str, &str) = ("", "");

/// Every file the tests use, by name, kept in memory so that no directory
/// outlives the test run.
type Files = BTreeMap<String, Vec<u8>>;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A leaf certificate `name.pem` with key `name.key`, issued by `ca` (or
/// self-signed when `ca` is empty) with extension section `ext`.
fn leaf(dir: &Path, name: &str, ca: &str, ext: &str, key: &[&str], dates: (&str, &str)) {
    let (keyf, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    let subj = format!("/CN={name}");
    let mut req = vec!["req", "-new", "-config", "openssl.cnf", "-nodes"];
    req.extend_from_slice(key);
    req.extend_from_slice(&["-keyout", &keyf, "-out", &csr, "-subj", &subj]);
    openssl(dir, &req);
    let (ca_cert, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    let mut sign = vec!["ca", "-batch", "-config", "openssl.cnf", "-notext"];
    if ca.is_empty() {
        sign.extend_from_slice(&["-selfsign", "-keyfile", &keyf]);
    } else {
        sign.extend_from_slice(&["-cert", &ca_cert, "-keyfile", &ca_key]);
    }
    sign.extend_from_slice(&["-extensions", ext, "-in", &csr, "-out", &pem]);
    if dates.0.is_empty() {
        sign.extend_from_slice(&["-days", "3650"]);
    } else {
        sign.extend_from_slice(&["-startdate", dates.0, "-enddate", dates.1]);
    }
    openssl(dir, &sign);
}

fn make_pki() -> Result<Files, String> {
    match Command::new("openssl").arg("version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("no working openssl command (install the openssl package)".into()),
    }
    let tmp = Dir::new("pki");
    let d = tmp.0.as_path();
    tmp.write("openssl.cnf", OPENSSL_CNF.as_bytes());
    tmp.write("index.txt", b"");
    tmp.write("serial", b"1000\n");
    fs::create_dir_all(tmp.path("newcerts")).expect("mkdir newcerts");
    for (ca, cn) in [("ca", "/CN=masqmail test CA"), ("ca2", "/CN=another CA")] {
        let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
        let mut req = vec!["req", "-x509", "-new", "-config", "openssl.cnf", "-nodes"];
        req.extend_from_slice(EC);
        req.extend_from_slice(&["-extensions", "v3_ca", "-days", "3650"]);
        req.extend_from_slice(&["-keyout", &key, "-out", &pem, "-subj", cn]);
        openssl(d, &req);
    }
    leaf(d, "good", "ca", "localhost", EC, NOW);
    leaf(d, "expired", "ca", "localhost", EC, PAST);
    leaf(d, "future", "ca", "localhost", EC, FUTURE);
    leaf(d, "other", "ca", "other", EC, NOW);
    leaf(d, "rsa", "ca", "localhost", RSA, NOW);
    // Self-signed, expired and for another name: only a pin accepts it.
    leaf(d, "self", "", "other", EC, PAST);
    openssl(
        d,
        &[
            "pkey",
            "-in",
            "good.key",
            "-traditional",
            "-out",
            "good.sec1.key",
        ],
    );
    openssl(
        d,
        &[
            "pkey",
            "-in",
            "rsa.key",
            "-traditional",
            "-out",
            "rsa.pkcs1.key",
        ],
    );
    openssl(
        d,
        &[
            "pkey", "-in", "good.key", "-aes256", "-passout", "pass:x", "-out", "enc.key",
        ],
    );
    let out = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            "self.pem",
        ])
        .current_dir(d)
        .output()
        .expect("openssl x509");
    fs::write(tmp.path("self.fp"), &out.stdout).expect("write fingerprint");

    let mut files = Files::new();
    for e in fs::read_dir(d).expect("read pki dir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".pem") || name.ends_with(".key") || name.ends_with(".fp") {
            files.insert(name, fs::read(e.path()).expect("read pki file"));
        }
    }
    Ok(files)
}

/// A fresh directory holding the test PKI, or None (SKIP) without openssl.
fn pki(tag: &str) -> Option<Dir> {
    static PKI: OnceLock<Result<Files, String>> = OnceLock::new();
    match PKI.get_or_init(make_pki) {
        Ok(files) => {
            let dir = Dir::new(tag);
            for (name, data) in files {
                dir.write(name, data);
            }
            Some(dir)
        }
        Err(why) => {
            eprintln!("SKIP: TLS test {tag}: {why}");
            None
        }
    }
}

/// The SHA-256 that `openssl x509 -fingerprint -sha256` printed.
fn openssl_fingerprint(dir: &Dir, name: &str) -> [u8; 32] {
    let text = fs::read_to_string(dir.path(name)).expect("fingerprint file");
    let hex: Vec<u8> = text
        .split('=')
        .nth(1)
        .expect("Fingerprint=")
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .collect();
    let mut fp = [0u8; 32];
    assert_eq!(hex.len(), 64, "{text}");
    for (o, pair) in fp.iter_mut().zip(hex.chunks(2)) {
        let s = std::str::from_utf8(pair).expect("hex");
        *o = u8::from_str_radix(s, 16).expect("hex");
    }
    fp
}

const TIMEOUT: Option<Duration> = Some(Duration::from_secs(10));

fn read_line<R: Read>(r: &mut R) -> io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < 1000 {
        if r.read(&mut b)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        line.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// What the server side of a session saw.
#[derive(Debug)]
struct ServerSaw {
    info: Option<TlsInfo>,
    peer_sha256: Option<[u8; 32]>,
    sni: Option<String>,
    line: String,
}

/// What the client side of a session saw.
#[derive(Debug)]
struct ClientSaw {
    info: Option<TlsInfo>,
    peer_sha256: Option<[u8; 32]>,
    reply: String,
}

/// One SMTP-shaped session over loopback: with `starttls` a plain greeting
/// and STARTTLS exchange first, then the handshake, then one command and
/// its reply through TLS.
fn session(
    server_cfg: Arc<ServerConfig>,
    client_cfg: Arc<ClientConfig>,
    host: &str,
    starttls: bool,
) -> (io::Result<ClientSaw>, io::Result<ServerSaw>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let server = thread::spawn(move || -> io::Result<ServerSaw> {
        let (sock, _) = listener.accept()?;
        sock.set_read_timeout(TIMEOUT)?;
        sock.set_write_timeout(TIMEOUT)?;
        let mut s = MaybeTls::new(sock);
        if starttls {
            s.write_all(b"220 test ESMTP\r\n")?;
            assert_eq!(read_line(&mut s)?, "STARTTLS\r\n");
            s.write_all(b"220 2.0.0 Ready to start TLS\r\n")?;
        }
        let mut s = s.upgrade_server(server_cfg)?;
        let line = read_line(&mut s)?;
        s.write_all(b"250 hello\r\n")?;
        let sni = match &s {
            MaybeTls::Server(t) => t.conn.server_name().map(String::from),
            _ => None,
        };
        let (info, peer_sha256) = (s.info(), s.peer_cert_sha256());
        s.close()?;
        Ok(ServerSaw {
            info,
            peer_sha256,
            sni,
            line,
        })
    });
    let client = (|| -> io::Result<ClientSaw> {
        let sock = TcpStream::connect(addr)?;
        sock.set_read_timeout(TIMEOUT)?;
        sock.set_write_timeout(TIMEOUT)?;
        let mut c = MaybeTls::new(sock);
        if starttls {
            assert_eq!(read_line(&mut c)?, "220 test ESMTP\r\n");
            assert!(c.info().is_none() && !c.is_tls());
            c.write_all(b"STARTTLS\r\n")?;
            assert!(read_line(&mut c)?.starts_with("220 2.0.0"));
        }
        let mut c = c.upgrade_client(client_cfg, host)?;
        assert!(c.is_tls());
        c.write_all(b"EHLO client.example\r\n")?;
        let reply = read_line(&mut c)?;
        let (info, peer_sha256) = (c.info(), c.peer_cert_sha256());
        c.close()?;
        Ok(ClientSaw {
            info,
            peer_sha256,
            reply,
        })
    })();
    let server = server.join().expect("server thread");
    (client, server)
}

fn server_cfg(dir: &Dir, name: &str) -> Arc<ServerConfig> {
    server_config(
        &dir.path(&format!("{name}.pem")),
        &dir.path(&format!("{name}.key")),
    )
    .expect("server config")
}

fn ca_client(dir: &Dir, ca: &str) -> Arc<ClientConfig> {
    client_config(Verify::CaFile(dir.path(&format!("{ca}.pem")))).expect("client config")
}

/// A session that must fail on the client; returns the classified reason
/// and checks that the server saw the handshake fail too.
fn failing(server: Arc<ServerConfig>, client: Arc<ClientConfig>, host: &str) -> String {
    let (c, s) = session(server, client, host, true);
    let err = c.expect_err("the client must refuse");
    assert!(s.is_err(), "the server must see the failure: {s:?}");
    assert!(tls_error(&err).is_some(), "a rustls error inside: {err}");
    match classify_io(&err) {
        TlsFailure::Temporary(why) => why,
        f => panic!("TLS failures defer: {f:?}"),
    }
}

#[test]
fn ca_verified_starttls_session() {
    let Some(d) = pki("ca_ok") else { return };
    let (c, s) = session(
        server_cfg(&d, "good"),
        ca_client(&d, "ca"),
        "localhost",
        true,
    );
    let (c, s) = (c.expect("client"), s.expect("server"));
    assert_eq!(c.reply, "250 hello\r\n");
    assert_eq!(s.line, "EHLO client.example\r\n");
    assert_eq!(s.sni.as_deref(), Some("localhost"), "SNI is the mail host");
    let leaf = CertificateDer::from_pem_file(d.path("good.pem")).expect("leaf");
    assert_eq!(c.peer_sha256, Some(sha256(leaf.as_ref())));
    assert_eq!(s.peer_sha256, None, "no client certificate asked for");
    let ci = c.info.expect("client info");
    assert_eq!(ci.version, "TLSv1.3");
    assert!(
        [
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256"
        ]
        .contains(&ci.cipher.as_str()),
        "{ci:?}"
    );
    assert_eq!(s.info, Some(ci), "both ends agree");
}

#[test]
fn implicit_tls_by_ip_address() {
    let Some(d) = pki("ip") else { return };
    let (c, s) = session(
        server_cfg(&d, "good"),
        ca_client(&d, "ca"),
        "127.0.0.1",
        false,
    );
    assert_eq!(c.expect("client").reply, "250 hello\r\n");
    assert_eq!(s.expect("server").sni, None, "no SNI for an address");
}

#[test]
fn tls12_rsa_pkcs1_key() {
    let Some(d) = pki("tls12") else { return };
    let server = server_config_versions(
        &d.path("rsa.pem"),
        &d.path("rsa.pkcs1.key"),
        &[&rustls::version::TLS12],
    )
    .expect("RSA key in PKCS#1 form");
    let (c, s) = session(server, ca_client(&d, "ca"), "localhost", true);
    let ci = c.expect("client").info.expect("info");
    assert_eq!(ci.version, "TLSv1.2");
    assert!(
        ci.cipher.starts_with("TLS_ECDHE_RSA_WITH_"),
        "IANA name: {ci:?}"
    );
    assert_eq!(
        s.expect("server").info.expect("server info").cipher,
        ci.cipher
    );
}

#[test]
fn sec1_ec_key_loads() {
    let Some(d) = pki("sec1") else { return };
    let server = server_config(&d.path("good.pem"), &d.path("good.sec1.key")).expect("SEC1 key");
    let (c, _) = session(server, ca_client(&d, "ca"), "localhost", false);
    assert!(c.is_ok(), "{c:?}");
}

#[test]
fn wrong_ca_is_refused_and_deferred() {
    let Some(d) = pki("wrong_ca") else { return };
    let why = failing(server_cfg(&d, "good"), ca_client(&d, "ca2"), "localhost");
    assert!(why.contains("not issued by a CA of tls_ca_file"), "{why}");
}

#[test]
fn expired_certificate_is_refused_and_deferred() {
    let Some(d) = pki("expired") else { return };
    let why = failing(server_cfg(&d, "expired"), ca_client(&d, "ca"), "localhost");
    assert!(why.contains("expired 2021-01-01 00:00:00 UTC"), "{why}");
}

#[test]
fn not_yet_valid_certificate_is_temporary() {
    let Some(d) = pki("future") else { return };
    let why = failing(server_cfg(&d, "future"), ca_client(&d, "ca"), "localhost");
    assert!(
        why.contains("not valid before 2090-01-01 00:00:00 UTC"),
        "{why}"
    );
    assert!(why.contains("is the clock set (NTP)?"), "{why}");
}

#[test]
fn wrong_name_is_refused_and_deferred() {
    let Some(d) = pki("name") else { return };
    let why = failing(server_cfg(&d, "other"), ca_client(&d, "ca"), "localhost");
    assert!(why.contains("is for other.example, not localhost"), "{why}");
}

#[test]
fn pinned_fingerprint_accepts_self_signed_expired_other_name() {
    let Some(d) = pki("pin_ok") else { return };
    let fp = openssl_fingerprint(&d, "self.fp");
    let client = client_config(Verify::Fingerprint(fp)).expect("client config");
    let (c, s) = session(server_cfg(&d, "self"), client, "localhost", true);
    assert_eq!(
        c.expect("client").peer_sha256,
        Some(fp),
        "ring and openssl agree"
    );
    assert!(s.is_ok(), "{s:?}");
}

#[test]
fn pinned_fingerprint_over_tls12() {
    // TLS 1.2 takes the other signature check (verify_tls12_signature).
    let Some(d) = pki("pin12") else { return };
    let leaf = CertificateDer::from_pem_file(d.path("rsa.pem")).expect("leaf");
    let server = server_config_versions(
        &d.path("rsa.pem"),
        &d.path("rsa.key"),
        &[&rustls::version::TLS12],
    )
    .expect("server config");
    let client = client_config(Verify::Fingerprint(sha256(leaf.as_ref()))).expect("client");
    let (c, _) = session(server, client, "localhost", false);
    assert_eq!(c.expect("client").info.expect("info").version, "TLSv1.2");
}

#[test]
fn fingerprint_mismatch_names_both() {
    let Some(d) = pki("pin_bad") else { return };
    let pinned = openssl_fingerprint(&d, "self.fp");
    let client = client_config(Verify::Fingerprint(pinned)).expect("client config");
    let why = failing(server_cfg(&d, "good"), client, "localhost");
    let leaf = CertificateDer::from_pem_file(d.path("good.pem")).expect("leaf");
    let got = format_fingerprint(&sha256(leaf.as_ref()));
    assert!(why.contains(&format!("has SHA-256 {got}")), "{why}");
    assert!(
        why.contains(&format!(
            "tls_fingerprint pins {}",
            format_fingerprint(&pinned)
        )),
        "{why}"
    );
}

#[test]
fn verify_none_accepts_anything() {
    let Some(d) = pki("none") else { return };
    let client = client_config(Verify::None).expect("client config");
    let (c, s) = session(server_cfg(&d, "self"), client, "mail.example", true);
    assert_eq!(c.expect("client").reply, "250 hello\r\n");
    assert!(s.is_ok(), "{s:?}");
}

#[test]
fn client_gives_up_when_server_is_not_tls() {
    // A server that answers the ClientHello with plain text.
    let Some(d) = pki("plain") else { return };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let t = thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.write_all(b"500 what?\r\n");
        }
    });
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(TIMEOUT).expect("timeout");
    let err = MaybeTls::new(sock)
        .upgrade_client(ca_client(&d, "ca"), "localhost")
        .err()
        .expect("not TLS");
    assert!(classify_io(&err).is_temporary());
    let _ = t.join();
}

#[test]
fn upgrade_twice_is_an_error() {
    let Some(d) = pki("twice") else { return };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cfg = server_cfg(&d, "good");
    let t = thread::spawn(move || {
        let (s, _) = listener.accept().expect("accept");
        s.set_read_timeout(TIMEOUT).expect("timeout");
        let s = MaybeTls::new(s)
            .upgrade_server(cfg.clone())
            .expect("first upgrade");
        let again = s.upgrade_server(cfg).err().expect("second upgrade");
        assert_eq!(again.to_string(), "TLS is already on");
    });
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(TIMEOUT).expect("timeout");
    let c = MaybeTls::new(sock)
        .upgrade_client(ca_client(&d, "ca"), "localhost")
        .expect("client");
    t.join().expect("server thread");
    drop(c);
}

/// Every way a certificate, key or CA file can be wrong gives an error
/// naming the option and the file, never a panic.
#[test]
fn bad_files_give_clear_errors() {
    let Some(d) = pki("bad_files") else { return };
    let good_pem = d.path("good.pem");
    let good_key = d.path("good.key");
    let bad: &[(&str, &[u8], &str)] = &[
        (
            "garbage",
            b"this is not PEM\n",
            "no -----BEGIN CERTIFICATE-----",
        ),
        ("empty", b"", "no -----BEGIN CERTIFICATE-----"),
        (
            "binary",
            &[0, 159, 146, 150, 255, 254, 10, 13, 0],
            "no -----BEGIN",
        ),
        (
            "bad64",
            b"-----BEGIN CERTIFICATE-----\nnot*base64!\n-----END CERTIFICATE-----\n",
            "bad base64",
        ),
        (
            "truncated",
            b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIC\n",
            "no -----END line",
        ),
    ];
    for (name, data, want) in bad {
        let p = d.write(&format!("{name}.bad"), data);
        let shown = p.display().to_string();
        let e = server_config(&p, &good_key).expect_err(name);
        assert!(
            e.starts_with(&format!("tls_cert {shown}: ")) && e.contains(want),
            "{name}: {e}"
        );
        let e = client_config(Verify::CaFile(p.clone())).expect_err(name);
        assert!(
            e.starts_with(&format!("tls_ca_file {shown}: ")) && e.contains(want),
            "{name}: {e}"
        );
        let e = server_config(&good_pem, &p).expect_err(name);
        assert!(e.starts_with(&format!("tls_key {shown}: ")), "{name}: {e}");
    }

    // Well-formed PEM around a DER that is no certificate.
    let junk_der = d.write(
        "junk.pem",
        b"-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n",
    );
    let e = client_config(Verify::CaFile(junk_der.clone())).expect_err("junk CA");
    assert!(e.contains("no usable CA certificate"), "{e}");
    let e = server_config(&junk_der, &good_key).expect_err("junk cert");
    assert!(e.contains(&junk_der.display().to_string()), "{e}");

    let missing = d.path("missing.pem");
    let e = server_config(&missing, &good_key).expect_err("missing");
    assert!(
        e.starts_with(&format!("tls_cert {}: ", missing.display())) && e.contains("No such file"),
        "{e}"
    );
    let e = server_config(&d.0, &good_key).expect_err("a directory");
    assert!(e.starts_with("tls_cert "), "{e}");

    let e = server_config(&good_pem, &good_pem).expect_err("certificate as key");
    assert!(e.contains("no private key found"), "{e}");
    let e = server_config(&good_pem, &d.path("enc.key")).expect_err("encrypted key");
    assert!(e.contains("the key is encrypted"), "{e}");
    let e = server_config(&good_pem, &d.path("other.key")).expect_err("other key");
    assert!(
        e.contains("does not belong to the certificate in tls_cert"),
        "{e}"
    );
}

#[test]
fn classification_is_always_temporary() {
    use rustls::{AlertDescription, PeerIncompatible};
    let cases = [
        (
            Error::InvalidCertificate(CertificateError::NotValidYet),
            "is the clock set (NTP)?",
        ),
        (
            Error::InvalidCertificate(CertificateError::Expired),
            "expired",
        ),
        (
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
            "tls_ca_file",
        ),
        (
            Error::InvalidCertificate(CertificateError::NotValidForName),
            "mail_host",
        ),
        (
            Error::InvalidCertificate(CertificateError::BadSignature),
            "refused",
        ),
        (
            Error::AlertReceived(AlertDescription::HandshakeFailure),
            "HandshakeFailure",
        ),
        (
            Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon),
            "in common",
        ),
        (Error::DecryptError, "TLS: "),
    ];
    for (err, want) in cases {
        let f = classify(&err);
        assert!(
            f.is_temporary() && f.reason().contains(want),
            "{err:?}: {f}"
        );
    }
    // Names from the peer's certificate cannot break the log line.
    let name = Error::InvalidCertificate(CertificateError::NotValidForNameContext {
        expected: server_name("localhost").expect("name"),
        presented: vec![
            "DnsName(\"evil\nname\")".into(),
            "IpAddress(192.0.2.1)".into(),
        ],
    });
    assert_eq!(
        classify(&name).reason(),
        "TLS: server certificate is for evil?name, 192.0.2.1, not localhost \
         (set mail_host to a name it holds)"
    );
    let long = Error::General("x".repeat(5000));
    assert_eq!(classify(&long).reason().chars().count(), 401);

    let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
    assert_eq!(
        classify_io(&eof),
        TlsFailure::Temporary("TLS: the connection closed during the TLS handshake".into())
    );
    assert!(classify_io(&io::Error::from(io::ErrorKind::WouldBlock))
        .reason()
        .contains("timed out"));
}

#[test]
fn verify_for_route() {
    let text = "config route 'a'\n\
                config route 'b'\n\toption tls_verify '0'\n\toption tls_ca_file '/ca.pem'\n\
                config route 'c'\n\toption tls_verify '0'\n\toption tls_fingerprint '0101010101010101010101010101010101010101010101010101010101010101'\n";
    let Ok(cfg) = crate::config::from_bytes(Path::new("t.conf"), text.as_bytes()) else {
        panic!("config does not load")
    };
    let got: Vec<Verify> = cfg.routes.iter().map(Verify::for_route).collect();
    assert_eq!(
        got,
        [
            Verify::CaFile(PathBuf::from("/etc/ssl/certs/ca-certificates.crt")),
            Verify::None,
            Verify::Fingerprint([1; 32]),
        ]
    );
}

#[test]
fn server_names() {
    assert!(server_name("mail.example.org").is_ok());
    assert_eq!(
        server_name("mail.example.org.").map(|n| n.to_str().into_owned()),
        Ok("mail.example.org".to_string())
    );
    assert_eq!(
        server_name("[::1]").map(|n| n.to_str().into_owned()),
        Ok("::1".to_string())
    );
    assert!(server_name("192.0.2.1").is_ok());
    for bad in ["", "bad name", "[", "a..b", "-\u{0}-"] {
        assert!(server_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn sha256_known_answer() {
    // FIPS 180-2 test vector "abc".
    assert_eq!(
        format_fingerprint(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
