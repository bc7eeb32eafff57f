//! The daemon and its SMTP server over real TCP on 127.0.0.1, the way
//! clients, other MTAs and attackers see it: `masqmail daemon` started on
//! a free port, sessions written byte for byte (or by Python's smtplib and
//! swaks), the spool and the daemon's processes looked at from outside.

mod common;
#[path = "common/daemon.rs"]
mod daemon;

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use daemon::*;
use nix::sys::signal::Signal;

const OTHER_LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// An installation for the SMTP tests: mailboxes in the temp dir, online
/// detection by a file that does not exist (so remote mail stays queued
/// and can be looked at), the daemon on a free port.
fn mta(tag: &str, extra: &str, sections: &str) -> (Mta, u16) {
    let (m, port) = smtp_mta(tag, extra, sections);
    let d = m.dir.path();
    let text = fs::read_to_string(&m.conf).unwrap();
    let main = format!(
        "config masqmail 'main'\n\
         \toption mail_dir '{}'\n\
         \toption online_detect 'file'\n\
         \toption online_file '{}'\n",
        d.join("mail").display(),
        d.join("online").display()
    );
    let text = text.replacen("config masqmail 'main'\n", &main, 1);
    fs::write(&m.conf, text).unwrap();
    fs::create_dir_all(d.join("mail")).unwrap();
    (m, port)
}

/// The ready header file of `id` in outgoing/ (waits for the scan).
fn outgoing(m: &Mta, id: &str) -> String {
    let p = m.spool.join("outgoing").join(id);
    let t0 = Instant::now();
    loop {
        use std::os::unix::fs::PermissionsExt;
        if fs::metadata(&p).is_ok_and(|md| md.permissions().mode() & 0o100 != 0) {
            return m.outgoing(id);
        }
        assert!(t0.elapsed() < WAIT, "{id} never reached outgoing/");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn body(m: &Mta, id: &str) -> String {
    String::from_utf8_lossy(&fs::read(m.spool.join("pool").join(id)).unwrap()).into_owned()
}

/// Recipients (`RT:` lines) of a header file.
fn rcpts(header_file: &str) -> Vec<String> {
    header_file
        .lines()
        .filter_map(|l| l.strip_prefix("RT:"))
        .filter_map(|l| l.split('\t').nth(1))
        .map(str::to_string)
        .collect()
}

/// The `Received:` field of a header file, continuation lines joined.
fn received(header_file: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in header_file.lines() {
        if let Some(h) = l.strip_prefix("HD:") {
            inside = h.starts_with("Received:");
            if inside {
                out.push_str(h);
            }
        } else if inside && (l.starts_with(' ') || l.starts_with('\t')) {
            out.push(' ');
            out.push_str(l.trim());
        } else {
            inside = false;
        }
    }
    out
}

fn b64(s: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in s.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const MSG: &str = "Subject: test\r\n\r\nHello.\r\n";

// ---------------------------------------------------------------------------
// Clients

#[test]
fn python_smtplib_session() {
    if !have("python3", "python smtplib session") {
        return;
    }
    let (m, port) = mta("py", "", "");
    let d = Daemon::start(&m);
    let script = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="py.example", timeout=20)
code, _ = s.ehlo()
print("ehlo", code, *sorted(s.esmtp_features))
msg = "From: <alice@example.org>\r\nSubject: from python\r\n\r\nHello from smtplib.\r\n"
print("refused", s.sendmail("alice@example.org", ["bob@example.org", "root@test.example"], msg))
try:
    s.sendmail("alice@example.org", ["nosuch@test.example"], msg)
except smtplib.SMTPRecipientsRefused as e:
    print("unknown", e.recipients["nosuch@test.example"][0])
print("vrfy", s.verify("root")[0])
print("quit", s.quit()[0])
"#;
    let out = Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}\n{}",
        stderr(&out),
        d.log()
    );
    assert!(
        text.contains("ehlo 250 8bitmime enhancedstatuscodes pipelining size"),
        "{text}"
    );
    assert!(text.contains("refused {}"), "{text}");
    assert!(text.contains("unknown 550"), "{text}");
    assert!(text.contains("quit 221"), "{text}");
    let ids = m.queued_ids();
    assert_eq!(ids.len(), 1, "{}", m.mailq());
    let hf = outgoing(&m, &ids[0]);
    assert!(
        rcpts(&hf).contains(&"<bob@example.org>".to_string()),
        "{hf}"
    );
    let r = received(&hf);
    assert!(
        r.starts_with("Received: from py.example ([127.0.0.1])"),
        "{r}"
    );
    assert!(r.contains("by test.example with ESMTP (masqmail"), "{r}");
    assert!(r.contains(&format!("id {}", ids[0])), "{r}");
    // The local recipient is delivered to its mailbox at once.
    let mbox = m.dir.path().join("mail/root");
    let t0 = Instant::now();
    while !fs::read_to_string(&mbox).is_ok_and(|s| s.contains("Hello from smtplib.")) {
        assert!(t0.elapsed() < WAIT, "no local delivery:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(d.stop().success());
}

#[test]
fn raw_session_pipelines() {
    let (m, port) = mta("pipe", "", "");
    let d = Daemon::start(&m);
    let mut c = Client::connect(port);
    let e = c.ehlo("pipe.example");
    assert!(e.lines.iter().any(|l| l == "PIPELINING"), "{e:?}");
    // RFC 2920: MAIL and RCPT in one group, DATA last.
    c.send(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n\
          RCPT TO:<nosuch@test.example>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n",
    );
    let codes: Vec<u16> = (0..5).map(|_| c.reply().code).collect();
    assert_eq!(codes, [250, 250, 550, 250, 354]);
    // The end of the data, the next transaction and its DATA in one write.
    c.send(b"Subject: one\r\n\r\nfirst\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<d@example.org>\r\nDATA\r\n");
    let first = c.reply();
    let codes: Vec<u16> = (0..3).map(|_| c.reply().code).collect();
    assert_eq!(codes, [250, 250, 354]);
    c.send(b"Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n");
    let second = c.reply();
    assert_eq!(c.reply().code, 221);
    assert!(c.closed());
    let (id1, id2) = (queued_id(&first), queued_id(&second));
    assert_eq!(
        rcpts(&outgoing(&m, &id1)),
        ["<b@example.org>", "<c@example.org>"]
    );
    assert_eq!(rcpts(&outgoing(&m, &id2)), ["<d@example.org>"]);
    assert!(body(&m, &id2).contains("second"));

    // A client that does not wait at all: everything after the greeting
    // in one write. Every reply comes, in order.
    let mut c = Client::connect(port);
    assert_eq!(c.reply().code, 220);
    c.send(
        b"EHLO burst.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<e@example.org>\r\n\
          DATA\r\nSubject: burst\r\n\r\n..dot-stuffed\r\n.\r\nNOOP\r\nRSET\r\nQUIT\r\n",
    );
    let replies: Vec<Reply> = std::iter::from_fn(|| c.try_reply()).collect();
    let codes: Vec<u16> = replies.iter().map(|r| r.code).collect();
    assert_eq!(
        codes,
        [250, 250, 250, 354, 250, 250, 250, 221],
        "{replies:?}"
    );
    let id = queued_id(&replies[4]);
    assert_eq!(body(&m, &id), ".dot-stuffed\n");
    assert_eq!(m.queued_ids().len(), 3);
    assert!(d.stop().success());
}

// ---------------------------------------------------------------------------
// SMTP smuggling: no bare-LF or bare-CR sequence ends the data.

const SMUGGLE: [(&str, &str); 3] = [
    ("LF.CRLF", "\n.\r\n"),
    ("CR.CRLF", "\r.\r\n"),
    ("LF.LF", "\n.\n"),
];

/// The smuggling payload: after `seq`, a second transaction that a
/// receiver fooled by `seq` would run (its data is ended by the
/// `<CRLF>.<CRLF>` that ends the real message).
fn smuggle(seq: &str) -> String {
    format!(
        "Subject: smuggle\r\n\r\nfirst part{seq}MAIL FROM:<evil@example.org>\r\n\
         RCPT TO:<victim@example.org>\r\nDATA\r\nsmuggled part\r\n"
    )
}

#[test]
fn smuggling_sequences_stay_in_the_body() {
    let (m, port) = mta("smuggle", "", "");
    let d = Daemon::start(&m);
    let mut ids = Vec::new();
    for (name, seq) in SMUGGLE {
        let mut c = Client::connect(port);
        c.ehlo("smuggler.example");
        let r = c.mail("a@example.org", &["b@example.org"], &smuggle(seq));
        let id = queued_id(&r);
        // Nothing else was run: the next reply is QUIT's.
        assert_eq!(c.cmd("QUIT").code, 221, "{name}");
        assert!(c.closed(), "{name}");
        let hf = outgoing(&m, &id);
        assert_eq!(rcpts(&hf), ["<b@example.org>"], "{name}: {hf}");
        let b = body(&m, &id);
        assert!(
            b.contains(
                "MAIL FROM:<evil@example.org>\nRCPT TO:<victim@example.org>\nDATA\nsmuggled part\n"
            ),
            "{name}: {b:?}"
        );
        ids.push(id);
    }
    // One message per attempt, each with the smuggled text as data.
    assert_eq!(m.queued_ids(), ids, "{}", m.mailq());
    assert!(d.stop().success());
}

#[test]
fn smuggling_with_bare_lf_reject() {
    let (m, port) = mta("smuggle-rej", "\toption smtp_bare_lf 'reject'\n", "");
    let d = Daemon::start(&m);
    for (name, seq) in SMUGGLE {
        let mut c = Client::connect(port);
        c.ehlo("smuggler.example");
        let r = c.mail("a@example.org", &["b@example.org"], &smuggle(seq));
        if seq.contains('\n') && !seq.starts_with('\r') {
            assert_eq!((r.code, r.text().get(..5)), (550, Some("5.6.0")), "{name}");
        } else {
            queued_id(&r);
        }
        assert_eq!(c.cmd("NOOP").code, 250, "{name}: the session goes on");
        // A command line ended by a bare LF is refused.
        c.send(b"NOOP\n");
        assert_eq!(c.reply().code, 500, "{name}");
        assert_eq!(c.cmd("QUIT").code, 221);
    }
    // Only the CR variant (no bare LF) was accepted.
    assert_eq!(m.queued_ids().len(), 1, "{}", m.mailq());
    assert!(d.stop().success());
}

// ---------------------------------------------------------------------------
// TLS

/// A self-signed certificate for localhost made by `openssl`, or None
/// (SKIP printed) when the command is missing.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
fn test_cert(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    if !have("openssl", "TLS test") {
        return None;
    }
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt"])
        .args([
            "ec_paramgen_curve:P-256",
            "-days",
            "3650",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {}", stderr(&out));
    Some((cert, key))
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use masqmail::tls::{client_config, MaybeTls, Verify};
    use std::net::TcpStream;

    pub type TlsClient = Client<MaybeTls<TcpStream>>;

    /// An installation with a certificate; None when openssl is missing.
    /// The second port is an implicit-TLS listener.
    pub fn tls_mta(tag: &str, extra: &str, sections: &str) -> Option<(Mta, u16, u16)> {
        let dir = TempDir::new(&format!("{tag}-pki"));
        let (cert, key) = test_cert(dir.path())?;
        let smtps = free_port();
        let extra = format!(
            "\toption tls_cert '{}'\n\toption tls_key '{}'\n\
             \tlist smtps_addresses '127.0.0.1:{smtps}'\n{extra}",
            cert.display(),
            key.display()
        );
        let (m, port) = mta(tag, &extra, sections);
        // The certificate outlives `dir`: copy it into the installation.
        for f in [&cert, &key] {
            fs::copy(f, m.dir.path().join(f.file_name().unwrap())).unwrap();
        }
        let text = fs::read_to_string(&m.conf)
            .unwrap()
            .replace(dir.path().to_str().unwrap(), m.dir.path().to_str().unwrap());
        fs::write(&m.conf, text).unwrap();
        Some((m, port, smtps))
    }

    /// Take a plain client over to TLS; nothing may have been read ahead.
    pub fn upgrade(c: Client<TcpStream>) -> TlsClient {
        let (s, ahead) = c.into_parts();
        assert!(
            ahead.is_empty(),
            "plaintext after the 220: {:?}",
            String::from_utf8_lossy(&ahead)
        );
        let cfg = client_config(Verify::None).unwrap();
        let s = MaybeTls::new(s)
            .upgrade_client(cfg, "localhost")
            .expect("TLS handshake");
        Client::new(s)
    }

    pub fn implicit(from: IpAddr, port: u16) -> TlsClient {
        let c = Client::connect_from(from, port);
        let (s, _) = c.into_parts();
        let cfg = client_config(Verify::None).unwrap();
        Client::new(
            MaybeTls::new(s)
                .upgrade_client(cfg, "localhost")
                .expect("TLS handshake"),
        )
    }
}

#[cfg(feature = "tls")]
#[test]
fn starttls_discards_injected_plaintext() {
    let Some((m, port, _)) = tls::tls_mta("starttls", "", "") else {
        return;
    };
    let d = Daemon::start(&m);
    let mut c = Client::connect(port);
    let e = c.ehlo("before.example");
    assert!(e.lines.iter().any(|l| l == "STARTTLS"), "{e:?}");
    // The injection: a command after STARTTLS in the same packet.
    c.send(b"STARTTLS\r\nRSET\r\n");
    let r = c.reply();
    assert_eq!(r.code, 220, "{r:?}");
    let mut t = tls::upgrade(c);
    // The first reply under TLS is the EHLO's, not the injected RSET's.
    t.send(b"EHLO after.example\r\n");
    let e = t.reply();
    assert_eq!(e.code, 250);
    assert!(e.lines.len() > 1, "an RSET reply came through: {e:?}");
    assert!(e.lines.iter().all(|l| l != "STARTTLS"), "{e:?}");
    assert_eq!(t.cmd("NOOP").lines, ["2.0.0 Ok"]);
    // The Received header names the TLS of the session.
    let r = t.mail("a@example.org", &["b@example.org"], MSG);
    let id = queued_id(&r);
    assert_eq!(t.cmd("QUIT").code, 221);
    let rcv = received(&outgoing(&m, &id));
    assert!(
        rcv.starts_with("Received: from after.example ([127.0.0.1])"),
        "{rcv}"
    );
    assert!(
        rcv.contains("by test.example with ESMTPS (TLSv1.3 with cipher TLS_"),
        "{rcv}"
    );
    assert!(rcv.contains(&format!("id {id}")), "{rcv}");

    // Plaintext sent after the 220 but before the handshake breaks the
    // handshake; the daemon goes on serving.
    let mut c = Client::connect(port);
    c.ehlo("before.example");
    c.send(b"STARTTLS\r\n");
    assert_eq!(c.reply().code, 220);
    c.send(b"RSET\r\n");
    assert!(c.closed() || c.try_reply().is_none());
    let mut c = Client::connect(port);
    c.ehlo("again.example");
    assert_eq!(c.cmd("QUIT").code, 221);
    assert_eq!(m.queued_ids(), [id]);
    assert!(d.stop().success());
}

// ---------------------------------------------------------------------------
// AUTH

/// `masqmail passwd USER` with the password on stdin: the hash line and
/// the section to paste.
fn passwd(m: &Mta, user: &str, password: &str) -> (String, String) {
    let out = m.run_raw(
        "masqmail",
        &["passwd", user],
        format!("{password}\n").as_bytes(),
    );
    expect_code(&out, 0);
    let text = stdout(&out);
    let hash = text.lines().next().unwrap().to_string();
    assert!(hash.starts_with("$6$"), "{text}");
    (hash, text)
}

#[test]
fn passwd_helper() {
    let m = Mta::new("passwd");
    let (hash, text) = passwd(&m, "alice", "wonder land");
    assert_eq!(
        text,
        format!("{hash}\n\nconfig user\n\toption name 'alice'\n\toption password_hash '{hash}'\n")
    );
    // Two runs, two salts.
    assert_ne!(passwd(&m, "alice", "wonder land").0, hash);
    // Checked by an independent implementation where there is one.
    if have("openssl", "passwd hash check") {
        let salt = hash.split('$').nth(2).unwrap();
        let o = Command::new("openssl")
            .args(["passwd", "-6", "-salt", salt, "wonder land"])
            .output()
            .unwrap();
        assert_eq!(stdout(&o).trim(), hash);
    }
    // The section loads: config check accepts the pasted text.
    let conf = m.dir.path().join("auth.conf");
    let base = fs::read_to_string(&m.conf).unwrap();
    fs::write(
        &conf,
        format!("{base}\n{}", text.split_once("\n\n").unwrap().1),
    )
    .unwrap();
    let o = m.run_raw(
        "masqmail",
        &["-C", conf.to_str().unwrap(), "config", "check"],
        b"",
    );
    expect_code(&o, 0);
    // Failures: no password, an empty one, a bad name.
    for (args, input, want, msg) in [
        (&["passwd", "bob"][..], &b""[..], 65, "no password on stdin"),
        (&["passwd"], b"\n", 65, "empty password"),
        (&["passwd", "o'neil"], b"pw\n", 64, "bad user name"),
        (&["passwd", "a", "b"], b"pw\n", 64, ""),
    ] {
        let o = m.run_raw("masqmail", args, input);
        expect_code(&o, want);
        assert!(stderr(&o).contains(msg), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty());
    }
    // Without a name the section has a placeholder.
    let o = m.run_raw("masqmail", &["passwd"], b"pw");
    expect_code(&o, 0);
    assert!(stdout(&o).contains("\toption name 'NAME'\n"));
}

fn auth_mta(tag: &str, extra: &str) -> (Mta, u16) {
    let m0 = Mta::new(&format!("{tag}-pw"));
    let (_, section) = passwd(&m0, "alice", "wonderland");
    let section = section.split_once("\n\n").unwrap().1.to_string();
    // Relay only by AUTH: no local_nets at all.
    let extra = format!("\tlist local_nets '10.255.255.255/32'\n{extra}");
    mta(tag, &extra, &section)
}

#[test]
fn auth_plain_and_login() {
    let (m, port) = auth_mta("auth", "");
    let d = Daemon::start(&m);
    let plain = |u: &str, p: &str| b64(format!("\0{u}\0{p}").as_bytes());

    // Loopback clients get AUTH without TLS (documented).
    let mut c = Client::connect(port);
    let e = c.ehlo("c.example");
    assert!(e.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{e:?}");
    // Not trusted yet: no relay.
    c.expect("MAIL FROM:<a@example.org>", 250);
    c.expect("RCPT TO:<x@example.org>", 554);
    c.expect("RSET", 250);
    let r = c.expect(&format!("AUTH PLAIN {}", plain("alice", "wonderland")), 235);
    assert_eq!(r.lines, ["2.7.0 Authentication successful"]);
    c.expect("AUTH PLAIN xyz", 503);
    let r = c.mail("a@example.org", &["x@example.org"], MSG);
    let id = queued_id(&r);
    assert!(received(&outgoing(&m, &id)).contains("with ESMTPA"));

    // LOGIN, and PLAIN without an initial response.
    let mut c = Client::connect(port);
    c.ehlo("c.example");
    assert_eq!(c.expect("AUTH LOGIN", 334).lines, ["VXNlcm5hbWU6"]);
    assert_eq!(c.expect(&b64(b"alice"), 334).lines, ["UGFzc3dvcmQ6"]);
    c.expect(&b64(b"wonderland"), 235);
    let mut c = Client::connect(port);
    c.ehlo("c.example");
    c.expect("AUTH PLAIN", 334);
    c.expect(&plain("alice", "wonderland"), 235);
    let mut c = Client::connect(port);
    c.ehlo("c.example");
    c.expect(&format!("AUTH LOGIN {}", b64(b"alice")), 334);
    c.expect(&b64(b"wonderland"), 235);

    // Wrong passwords, unknown users, bad base64, cancel.
    let mut c = Client::connect(port);
    c.ehlo("c.example");
    let r = c.expect(&format!("AUTH PLAIN {}", plain("alice", "wonderlan")), 535);
    assert_eq!(r.lines, ["5.7.8 Authentication credentials invalid"]);
    c.expect(&format!("AUTH PLAIN {}", plain("alice", "Wonderland")), 535);
    c.expect(
        &format!("AUTH PLAIN {}", plain("mallory", "wonderland")),
        535,
    );
    c.expect(&format!("AUTH PLAIN {}", b64(b"alice\0wonderland")), 501);
    c.expect("AUTH PLAIN !!!!", 501);
    c.expect("AUTH PLAIN =", 501);
    c.expect("AUTH LOGIN", 334);
    c.expect("*not base64*", 501);
    c.expect("AUTH LOGIN", 334);
    c.expect("*", 501);
    c.expect("AUTH CRAM-MD5", 504);
    // Ten errors end the session: no endless guessing.
    c.expect(&format!("AUTH PLAIN {}", plain("alice", "guess")), 535);
    let r = c.reply();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(c.closed());
    let log = d.log();
    assert!(!log.contains("wonderlan"), "a password in the log:\n{log}");
    assert!(!log.contains(&plain("alice", "wonderlan")), "{log}");

    // Authenticated from an address outside local_nets: relay allowed.
    let mut c = Client::connect_from(OTHER_LOOPBACK, port);
    c.ehlo("c.example");
    c.expect("MAIL FROM:<a@example.org>", 250);
    c.expect("RCPT TO:<x@example.org>", 554);
    c.expect("RSET", 250);
    c.expect(&format!("AUTH PLAIN {}", plain("alice", "wonderland")), 235);
    queued_id(&c.mail("a@example.org", &["y@example.org"], MSG));
    assert_eq!(m.queued_ids().len(), 2);
    assert!(d.stop().success());
}

/// AUTH is refused in clear from a client that is not on loopback; the
/// same client may AUTH after STARTTLS or on the implicit-TLS port.
#[test]
fn auth_needs_tls_off_loopback() {
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!(
            "SKIP auth_needs_tls_off_loopback: this machine has no non-loopback IPv4 address"
        );
        return;
    };
    #[cfg(feature = "tls")]
    let (m, port, smtps) = match tls::tls_mta("auth-tls", "", "") {
        Some(x) => x,
        None => return,
    };
    #[cfg(not(feature = "tls"))]
    let (m, port) = mta("auth-tls", "", "");
    let m0 = Mta::new("auth-tls-pw");
    let (_, section) = passwd(&m0, "alice", "wonderland");
    let mut conf = fs::read_to_string(&m.conf).unwrap();
    conf.push_str(section.split_once("\n\n").unwrap().1);
    fs::write(&m.conf, conf).unwrap();
    let d = Daemon::start(&m);
    let creds = format!("AUTH PLAIN {}", b64(b"\0alice\0wonderland"));

    let mut c = Client::connect_from(IpAddr::V4(ip), port);
    let e = c.ehlo("far.example");
    assert!(!e.lines.iter().any(|l| l.starts_with("AUTH")), "{e:?}");
    let r = c.expect(&creds, 538);
    assert!(r.text().starts_with("5.7.11"), "{r:?}");
    // Not in local_nets: no relay either.
    c.expect("MAIL FROM:<a@example.org>", 250);
    c.expect("RCPT TO:<x@example.org>", 554);
    c.expect("RCPT TO:<root@test.example>", 250);
    #[cfg(feature = "tls")]
    {
        c.expect("RSET", 250);
        c.expect("STARTTLS", 220);
        let mut t = tls::upgrade(c);
        let e = t.expect("EHLO far.example", 250);
        assert!(e.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{e:?}");
        t.expect(&creds, 235);
        let id = queued_id(&t.mail("a@example.org", &["x@example.org"], MSG));
        let rcv = received(&outgoing(&m, &id));
        assert!(rcv.contains(&format!("([{ip}])")), "{rcv}");
        assert!(rcv.contains("with ESMTPSA (TLSv1.3 with cipher"), "{rcv}");

        // Implicit TLS (port 465 style).
        let mut t = tls::implicit(IpAddr::V4(ip), smtps);
        let e = t.ehlo("far.example");
        assert!(e.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{e:?}");
        assert!(!e.lines.iter().any(|l| l == "STARTTLS"), "{e:?}");
        t.expect(&creds, 235);
        t.expect("QUIT", 221);
    }
    assert!(d.stop().success());
}

// ---------------------------------------------------------------------------
// Relay

#[test]
fn no_relay_from_outside_local_nets() {
    let (m, port) = mta("relay", "\tlist local_nets '127.0.0.1/32'\n", "");
    let d = Daemon::start(&m);
    // 127.0.0.2 is not in local_nets.
    let mut c = Client::connect_from(OTHER_LOOPBACK, port);
    c.ehlo("outside.example");
    c.expect("MAIL FROM:<spammer@example.com>", 250);
    let r = c.expect("RCPT TO:<victim@example.org>", 554);
    assert_eq!(r.lines, ["5.7.1 Relay access denied"]);
    c.expect("RCPT TO:<Victim@EXAMPLE.ORG>", 554);
    c.expect("RCPT TO:<root@test.example>", 250);
    c.expect("RCPT TO:<Postmaster>", 250);
    c.expect("RCPT TO:<nosuch@test.example>", 550);
    // Relay tricks: never relayed, whatever the domain.
    for trick in [
        "<victim%example.org@test.example>",
        "<example.org!victim@test.example>",
        "<\"victim@example.org\"@test.example>",
        "<@test.example:victim@example.org>",
        "<@test.example,@example.org:victim@example.org>",
        "<victim%example.org@localhost>",
    ] {
        let r = c.cmd(&format!("RCPT TO:{trick}"));
        assert!(r.code == 550 || r.code == 554, "{trick}: {r:?}");
        assert!(r.text().starts_with("5.7.1"), "{trick}: {r:?}");
    }
    c.expect("QUIT", 221);
    // From 127.0.0.1, in local_nets: relayed.
    let mut c = Client::connect(port);
    c.ehlo("inside.example");
    let id = queued_id(&c.mail("a@example.org", &["x@example.org"], MSG));
    c.expect("QUIT", 221);
    assert_eq!(m.queued_ids(), std::slice::from_ref(&id));
    assert_eq!(rcpts(&outgoing(&m, &id)), ["<x@example.org>"]);
    let log = d.log();
    assert!(log.contains("127.0.0.2"), "refusals are logged:\n{log}");
    assert!(d.stop().success());
}

/// While the alias file cannot be read, a local name that is no user may
/// be an alias: the server answers 451 (try later), never 550.
#[test]
fn unreadable_alias_file_is_a_temporary_failure() {
    let dir = TempDir::new("aliasfile");
    let aliases = dir.path().join("aliases");
    let (m, port) = mta(
        "aliasfile",
        &format!("\toption alias_file '{}'\n", aliases.display()),
        "",
    );
    let d = Daemon::start(&m);
    let mut c = Client::connect_from(OTHER_LOOPBACK, port);
    c.ehlo("lan.example");
    c.expect("MAIL FROM:<a@example.org>", 250);
    let r = c.expect("RCPT TO:<staff@test.example>", 451);
    assert!(r.text().starts_with("4.3.0"), "{r:?}");
    c.expect("RCPT TO:<root@test.example>", 250);
    let id = queued_id(&c.mail_data(MSG));
    c.expect("QUIT", 221);
    // Accepted, and waiting to be scanned with the aliases.
    assert_eq!(m.queued_ids(), std::slice::from_ref(&id));
    assert!(m.mailq().contains("not yet scanned"), "{}", m.mailq());
    // With the file back, the alias is known and an unknown name is 550.
    fs::write(&aliases, "staff: root\n").unwrap();
    let mut c = Client::connect_from(OTHER_LOOPBACK, port);
    c.ehlo("lan.example");
    c.expect("MAIL FROM:<a@example.org>", 250);
    c.expect("RCPT TO:<staff@test.example>", 250);
    c.expect("RCPT TO:<nosuch@test.example>", 550);
    c.expect("QUIT", 221);
    assert!(d.stop().success());
}

// ---------------------------------------------------------------------------
// Limits

#[test]
fn two_thousand_recipients() {
    let (m, port) = mta("rcpts", "", "");
    let d = Daemon::start(&m);
    let mut c = Client::connect(port);
    c.ehlo("many.example");
    c.expect("MAIL FROM:<a@example.org>", 250);
    // Written by another thread: the replies are read while it writes.
    let mut w = c.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut all = String::new();
        for i in 0..2000 {
            all.push_str(&format!("RCPT TO:<r{i}@example.org>\r\n"));
        }
        w.write_all(all.as_bytes()).unwrap();
    });
    let codes: Vec<u16> = (0..2000).map(|_| c.reply().code).collect();
    writer.join().unwrap();
    assert!(codes[..1000].iter().all(|&c| c == 250));
    assert!(
        codes[1000..].iter().all(|&c| c == 452),
        "{:?}",
        &codes[995..1005]
    );
    let r = c.mail_data(MSG);
    let id = queued_id(&r);
    c.expect("QUIT", 221);
    let hf = outgoing(&m, &id);
    assert_eq!(rcpts(&hf).len(), 1000);
    assert!(d.stop().success());
}

trait MailData {
    fn mail_data(&mut self, body: &str) -> Reply;
}

impl<S: Wire> MailData for Client<S> {
    fn mail_data(&mut self, body: &str) -> Reply {
        self.expect("DATA", 354);
        self.send(body.as_bytes());
        self.cmd(".")
    }
}

#[test]
fn long_lines() {
    let (m, port) = mta("longline", "", "");
    let d = Daemon::start(&m);
    let mut c = Client::connect(port);
    c.ehlo("long.example");
    // A 100 KB command line.
    let long = format!("MAIL FROM:<{}@example.org>\r\n", "a".repeat(100_000));
    c.send(long.as_bytes());
    let r = c.reply();
    assert_eq!((r.code, r.text()), (500, "5.5.2 Line too long".into()));
    c.expect("NOOP", 250);
    // A 100 KB line in a message (max_line_length is 64 KiB): refused at
    // the end of the data, nothing queued, the session goes on.
    c.expect("MAIL FROM:<a@example.org>", 250);
    c.expect("RCPT TO:<b@example.org>", 250);
    let r = c.mail_data(&format!("Subject: x\r\n\r\n{}\r\n", "b".repeat(100_000)));
    assert_eq!(r.code, 500, "{r:?}");
    c.expect("RSET", 250);
    // A 60 KB line is fine.
    let r = c.mail(
        "a@example.org",
        &["b@example.org"],
        &format!("Subject: x\r\n\r\n{}\r\n", "c".repeat(60_000)),
    );
    let id = queued_id(&r);
    assert_eq!(m.queued_ids(), [id]);

    // Megabytes without a line end: the worker's memory stays bounded.
    let mut c = Client::connect(port);
    c.ehlo("flood.example");
    let worker = worker_for(d.pid, &c.s).expect("the worker of the connection");
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..16 {
        c.send(&chunk);
    }
    c.send(b"\r\n");
    assert_eq!(c.reply().code, 500);
    let hwm = proc_status(worker, "VmHWM").unwrap_or(0);
    assert!(
        hwm < 12 * 1024,
        "worker peak RSS {hwm} kB after 16 MB of one line"
    );
    c.expect("QUIT", 221);
    assert!(d.stop().success());
}

#[test]
fn size_limits_and_protocol_abuse() {
    let (m, port) = mta("size", "\toption max_size '20K'\n", "");
    let d = Daemon::start(&m);
    let mut c = Client::connect(port);
    let e = c.ehlo("size.example");
    assert!(e.lines.iter().any(|l| l == "SIZE 20480"), "{e:?}");
    // Declared too big at MAIL (RFC 1870).
    let r = c.expect("MAIL FROM:<a@example.org> SIZE=20481", 552);
    assert!(r.text().starts_with("5.3.4"), "{r:?}");
    c.expect("MAIL FROM:<a@example.org> SIZE=18446744073709551615", 552);
    c.expect(
        "MAIL FROM:<a@example.org> SIZE=99999999999999999999999",
        501,
    );
    // Undeclared and too big: refused at the end of the data.
    c.expect("MAIL FROM:<a@example.org> SIZE=100", 250);
    c.expect("RCPT TO:<b@example.org>", 250);
    let big = format!(
        "Subject: big\r\n\r\n{}",
        "0123456789abcdef\r\n".repeat(1500)
    );
    let r = c.mail_data(&big);
    assert_eq!(r.code, 552, "{r:?}");
    c.expect("QUIT", 221);
    // Commands out of order, unknown commands, junk bytes.
    let mut c = Client::connect(port);
    c.ehlo("junk.example");
    c.expect("RCPT TO:<b@example.org>", 503);
    c.expect("DATA", 503);
    c.expect("BDAT 10 LAST", 502);
    c.expect("XYZZY", 500);
    c.send(b"MAIL FROM:<a@exa\0mple.org>\r\n");
    assert_eq!(c.reply().code / 100, 5);
    c.send(b"\xff\xfe\r\n");
    assert_eq!(c.reply().code, 500);
    c.expect("RSET", 250);
    let id = queued_id(&c.mail("a@example.org", &["b@example.org"], MSG));
    c.expect("QUIT", 221);
    assert_eq!(m.queued_ids(), std::slice::from_ref(&id));
    assert!(m.files("pool").len() == 1, "{:?}", m.files("pool"));
    // A web browser (or a cross-protocol attack) is sent away.
    let mut c = Client::connect(port);
    assert_eq!(c.reply().code, 220);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.reply().code, 221);
    assert!(c.closed());
    assert!(d.stop().success());
}

#[test]
fn ipv6_listener() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIP ipv6_listener: no IPv6 loopback on this machine");
        return;
    }
    let port6 = std::net::TcpListener::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (m, port) = mta(
        "ipv6",
        &format!("\tlist listen_addresses '[::1]:{port6}'\n"),
        "",
    );
    let d = Daemon::start(&m);
    let s = std::net::TcpStream::connect(("::1", port6)).unwrap();
    let mut c = Client::on(s);
    c.ehlo("v6.example");
    let id = queued_id(&c.mail("a@example.org", &["b@example.org"], MSG));
    c.expect("QUIT", 221);
    let rcv = received(&outgoing(&m, &id));
    assert!(
        rcv.starts_with("Received: from v6.example ([IPv6:::1])"),
        "{rcv}"
    );
    // The IPv4 listener serves as well.
    let mut c = Client::connect(port);
    c.ehlo("v4.example");
    c.expect("QUIT", 221);
    assert!(d.stop().success());
}

// ---------------------------------------------------------------------------
// Connections

#[test]
fn twenty_parallel_connections() {
    let (m, port) = mta("parallel", "\toption max_connections_per_ip '20'\n", "");
    let d = Daemon::start(&m);
    let all = Arc::new(Barrier::new(20));
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let all = all.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                c.ehlo(&format!("c{i}.example"));
                let r = c.mail("a@example.org", &[&format!("r{i}@example.org")], MSG);
                // Every connection is open at once before any ends.
                all.wait();
                c.expect("QUIT", 221);
                queued_id(&r)
            })
        })
        .collect();
    let mut ids: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    ids.sort();
    assert_eq!(m.queued_ids(), ids);
    d.wait_no_children();
    assert!(d.stop().success());
}

#[test]
fn connection_limits() {
    let (m, port) = mta(
        "limits",
        "\toption max_connections '3'\n\toption max_connections_per_ip '2'\n",
        "",
    );
    let d = Daemon::start(&m);
    let greet = |c: &mut Client<_>| c.reply();
    // Two from 127.0.0.1, the third from there is refused.
    let mut a = Client::connect(port);
    let mut b = Client::connect(port);
    assert_eq!(greet(&mut a).code, 220);
    assert_eq!(greet(&mut b).code, 220);
    let mut refused = Client::connect(port);
    let r = greet(&mut refused);
    assert_eq!(r.code, 421, "{r:?}");
    assert!(r.text().starts_with("4.7.0"), "{r:?}");
    assert!(refused.closed());
    // A third address is served, then max_connections is reached.
    let mut c3 = Client::connect_from(OTHER_LOOPBACK, port);
    assert_eq!(greet(&mut c3).code, 220);
    let extra: Vec<Reply> = (3..6)
        .map(|i| {
            let mut c = Client::connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)), port);
            let r = greet(&mut c);
            assert!(c.closed());
            r
        })
        .collect();
    assert!(extra.iter().all(|r| r.code == 421), "{extra:?}");
    // The workers serve on; when they are done they are reaped (no
    // zombies) and their slots are free again.
    queued_id(&{
        a.expect("EHLO a.example", 250);
        a.mail("x@example.org", &["y@example.org"], MSG)
    });
    for c in [&mut a, &mut b, &mut c3] {
        c.expect("QUIT", 221);
    }
    d.wait_no_children();
    for _ in 0..3 {
        let mut c = Client::connect(port);
        assert_eq!(greet(&mut c).code, 220);
        c.expect("QUIT", 221);
        d.wait_no_children();
    }
    assert!(d.stop().success());
}

#[test]
fn silent_client_does_not_block_others() {
    let (m, port) = mta("silent", "", "");
    let d = Daemon::start(&m);
    // One connects and says nothing, not even reading the greeting.
    let silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut mute = Client::connect(port);
    assert_eq!(mute.reply().code, 220);
    for i in 0..3 {
        let mut c = Client::connect(port);
        c.ehlo("busy.example");
        queued_id(&c.mail("a@example.org", &[&format!("r{i}@example.org")], MSG));
        c.expect("QUIT", 221);
    }
    assert_eq!(m.queued_ids().len(), 3);
    // Both silent workers still wait for their clients.
    assert!(worker_for(d.pid, &silent).is_some());
    assert!(worker_for(d.pid, &mute.s).is_some());
    let status = m.run_raw("masqmail", &["-C", m.conf.to_str().unwrap(), "status"], b"");
    assert!(
        stdout(&status).contains("connections: 2"),
        "{}",
        stdout(&status)
    );
    drop(silent);
    drop(mute);
    d.wait_no_children();
    assert!(d.stop().success());
}

// ---------------------------------------------------------------------------
// The daemon's life

#[test]
fn reload_with_broken_and_good_config() {
    let (m, port) = mta("reload", "", "");
    let d = Daemon::start(&m);
    let good = fs::read_to_string(&m.conf).unwrap();
    // A broken file: the daemon logs every error and keeps the old config.
    fs::write(
        &m.conf,
        good.replace(
            "config masqmail 'main'\n",
            "config masqmail 'main'\n\toption bogus_option '1'\n\toption max_size 'lots'\n",
        ),
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_log("keeping the running configuration");
    let log = d.log();
    assert!(log.contains("bogus_option"), "{log}");
    assert!(log.contains("max_size"), "{log}");
    let mut c = Client::connect(port);
    c.ehlo("still.example");
    queued_id(&c.mail("a@example.org", &["b@example.org"], MSG));
    c.expect("QUIT", 221);

    // A good file with a new listen address and host name.
    let port2 = free_port();
    fs::write(
        &m.conf,
        good.replace(&format!("127.0.0.1:{port}"), &format!("127.0.0.1:{port2}"))
            .replace("'test.example'", "'new.example'"),
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    d.wait_log("configuration reloaded");
    let mut c = Client::connect(port2);
    let g = c.reply();
    assert_eq!(g.text(), "new.example ESMTP masqmail");
    c.expect("QUIT", 221);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the old address still listens"
    );
    assert!(d.stop().success());
}

/// SIGTERM with clients connected: each gets 421 at once (not after the
/// 5-minute timeout), the message in progress is dropped, the daemon exits.
#[test]
fn sigterm_with_clients_connected() {
    let (m, port) = mta("term", "", "");
    let d = Daemon::start(&m);
    let mut idle = Client::connect(port);
    idle.ehlo("idle.example");
    let mut mid = Client::connect(port);
    mid.ehlo("mid.example");
    mid.expect("MAIL FROM:<a@example.org>", 250);
    mid.expect("RCPT TO:<b@example.org>", 250);
    mid.expect("DATA", 354);
    mid.send(b"Subject: cut\r\n\r\nnever finished\r\n");
    let mut mute = Client::connect(port);
    // Its worker runs (the connect returned before the daemon accepted).
    let t0 = Instant::now();
    while worker_for(d.pid, &mute.s).is_none() {
        assert!(t0.elapsed() < WAIT, "{:?}", d.children());
        std::thread::sleep(Duration::from_millis(10));
    }
    let t0 = Instant::now();
    assert!(d.stop().success());
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    for c in [&mut idle, &mut mid] {
        let r = c.reply();
        assert_eq!(
            (r.code, r.text()),
            (421, "4.3.2 test.example Service shutting down".into())
        );
        assert!(c.closed());
    }
    assert_eq!(mute.reply().code, 220);
    assert_eq!(mute.reply().code, 421);
    assert_eq!(m.mailq().trim(), "Mail queue is empty");
    assert!(m.files("pool").is_empty(), "{:?}", m.files("pool"));
}

#[test]
fn kill_9_of_a_worker_mid_data() {
    let (m, port) = mta("kill9", "", "");
    let d = Daemon::start(&m);
    let mut c = Client::connect(port);
    c.ehlo("victim.example");
    c.expect("MAIL FROM:<a@example.org>", 250);
    c.expect("RCPT TO:<b@example.org>", 250);
    c.expect("DATA", 354);
    c.send(b"Subject: half\r\n\r\n");
    for _ in 0..2000 {
        c.send(b"a line of a message that will never be finished\r\n");
    }
    // The body is on its way to the spool.
    let t0 = Instant::now();
    while !fs::read_dir(m.spool.join("pool"))
        .unwrap()
        .flatten()
        .any(|e| e.metadata().is_ok_and(|md| md.len() > 0))
    {
        assert!(t0.elapsed() < WAIT, "no body in pool/:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let worker = worker_for(d.pid, &c.s).expect("the worker of the connection");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker), Signal::SIGKILL).unwrap();
    assert!(c.closed());
    d.wait_log("killed by SIGKILL");
    d.wait_no_children();
    // Nothing was acknowledged, nothing is queued.
    assert_eq!(m.mailq().trim(), "Mail queue is empty");
    // The daemon keeps serving.
    let mut c = Client::connect(port);
    c.ehlo("next.example");
    let id = queued_id(&c.mail("a@example.org", &["b@example.org"], MSG));
    c.expect("QUIT", 221);
    assert_eq!(m.queued_ids(), std::slice::from_ref(&id));
    outgoing(&m, &id);
    assert!(d.stop().success());
    // The half-written body is removed by the recovery at the next start.
    let d = Daemon::start(&m);
    d.wait_no_children();
    assert_eq!(m.files("pool"), std::slice::from_ref(&id));
    assert_eq!(m.queued_ids(), [id]);
    assert!(d.stop().success());
}

/// A worker killed after its 250 but before it scanned the message: the
/// daemon scans it (the worker's exit status tells it to), so the message
/// does not wait in incoming/ for the next event.
#[test]
fn kill_9_of_a_worker_after_its_250() {
    let (m, port) = mta("kill9-after", "", "");
    let d = Daemon::start(&m);
    let mut c = Client::connect(port);
    c.ehlo("victim.example");
    c.expect("MAIL FROM:<a@example.org>", 250);
    c.expect("RCPT TO:<b@example.org>", 250);
    c.expect("DATA", 354);
    // The end of the data and a stream of NOOPs: the worker answers them
    // before it scans (it scans when the client pauses).
    c.send(b"Subject: acked\r\n\r\nbody\r\n.\r\nNOOP\r\n");
    let id = queued_id(&c.reply());
    let worker = worker_for(d.pid, &c.s).expect("the worker of the connection");
    let mut w = c.s.try_clone().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let noops = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
            if w.write_all(b"NOOP\r\n").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker), Signal::SIGKILL).unwrap();
    d.wait_log("killed by SIGKILL");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    noops.join().unwrap();
    // Acknowledged, so queued, and scanned (by the worker or the daemon).
    outgoing(&m, &id);
    let t0 = Instant::now();
    while !m.files("incoming").is_empty() {
        assert!(
            t0.elapsed() < WAIT,
            "left in incoming/: {:?}",
            m.files("incoming")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(m.queued_ids(), [id]);
    assert!(d.stop().success());
}

#[test]
fn smtp_on_stdin() {
    let (m, _) = mta("bs", "", "");
    let session = "EHLO pipe.example\r\nMAIL FROM:<a@example.org>\r\n\
                   RCPT TO:<b@example.org>\r\nDATA\r\nSubject: bs\r\n\r\nvia stdin\r\n.\r\nQUIT\r\n";
    for (name, args) in [
        ("masqmail", &["-bs"][..]),
        ("smtpd", &[][..]),
        ("in.smtpd", &[][..]),
    ] {
        let out = m.run(name, args, session.as_bytes());
        expect_code(&out, 0);
        let text = stdout(&out);
        let codes: Vec<&str> = text
            .lines()
            .filter(|l| l.as_bytes().get(3) == Some(&b' '))
            .map(|l| &l[..3])
            .collect();
        assert_eq!(
            codes,
            ["220", "250", "250", "250", "354", "250", "221"],
            "{name}: {text}"
        );
        assert!(text.contains("queued as"), "{text}");
    }
    let ids = m.queued_ids();
    assert_eq!(ids.len(), 3, "{}", m.mailq());
    let hf = outgoing(&m, &ids[0]);
    assert!(hf.contains("PR:esmtp\n"), "{hf}");
    // A client that stops in the middle: nothing is queued, exit 0.
    let out = m.run("masqmail", &["-bs"], b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: cut\r\n");
    expect_code(&out, 0);
    assert_eq!(m.queued_ids().len(), 3);
}

/// A detached daemon, stopped (SIGTERM) when the test ends, even a failed
/// one.
struct Detached {
    pid: i32,
    pid_file: PathBuf,
}

impl Detached {
    /// `masqmail -bd`: returns at once, the pid file already written.
    fn start(m: &Mta, pid_file: &Path) -> Detached {
        let t0 = Instant::now();
        let out = m.run("masqmail", &["-bd"], b"");
        expect_code(&out, 0);
        assert!(t0.elapsed() < Duration::from_secs(10), "-bd did not return");
        let pid = fs::read_to_string(pid_file)
            .expect("the pid file, when -bd returns")
            .trim()
            .parse()
            .expect("a pid in the pid file");
        Detached {
            pid,
            pid_file: pid_file.to_path_buf(),
        }
    }

    fn stop(&self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), Signal::SIGTERM);
        let t0 = Instant::now();
        while self.pid_file.exists() {
            assert!(t0.elapsed() < WAIT, "the pid file stays after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if self.pid_file.exists() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }
}

#[test]
fn bd_detaches_and_writes_its_pid_file() {
    let pid_dir = TempDir::new("bd-run");
    let pid_file = pid_dir.path().join("run/masqmail.pid");
    let (m, port) = mta(
        "bd",
        &format!("\toption pid_file '{}'\n", pid_file.display()),
        "",
    );
    let d = Detached::start(&m, &pid_file);
    let stat = fs::read_to_string(format!("/proc/{}/stat", d.pid)).expect("the daemon runs");
    // Its own session (setsid): the session id is its pid.
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_eq!(f[3], d.pid.to_string(), "session id: {stat}");
    let mut c = Client::connect(port);
    c.ehlo("bd.example");
    queued_id(&c.mail("a@example.org", &["b@example.org"], MSG));
    c.expect("QUIT", 221);
    // A second -bd while one runs fails with one line; the first keeps
    // its pid file.
    let again = m.run("masqmail", &["-bd"], b"");
    assert_eq!(code(&again), 69, "{}", stderr(&again));
    // One line, and nothing done to the spool (no recovery beside the
    // running daemon's workers).
    assert_eq!(stderr(&again).lines().count(), 1, "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already running"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap().trim(),
        d.pid.to_string()
    );
    d.stop();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    // A pid file that cannot be written: -bd says so and exits 73, and
    // no daemon is left behind.
    let conf = fs::read_to_string(&m.conf).unwrap().replace(
        pid_file.to_str().unwrap(),
        "/proc/masqmail-test/masqmail.pid",
    );
    fs::write(&m.conf, conf).unwrap();
    let out = m.run("masqmail", &["-bd"], b"");
    assert_eq!(code(&out), 73, "{}", stderr(&out));
    assert!(stderr(&out).contains("pid file"), "{}", stderr(&out));
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(t0.elapsed() < WAIT, "a daemon without a pid file runs on");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// With mail queued and its route offline the daemon sleeps: no timer, no
/// wakeup, not one context switch.
#[test]
fn idle_daemon_does_not_wake_up() {
    let (m, port) = mta(
        "idle",
        "",
        "config route 'isp'\n\toption mail_host '127.0.0.1:1'\n\toption tls 'none'\n",
    );
    let d = Daemon::start(&m);
    let mut c = Client::connect(port);
    c.ehlo("idle.example");
    let id = queued_id(&c.mail("a@example.org", &["b@example.org"], MSG));
    c.expect("QUIT", 221);
    drop(c);
    outgoing(&m, &id);
    d.wait_no_children();
    // Settled: the last SIGCHLD has been handled.
    let switches = || {
        (
            proc_status(d.pid, "voluntary_ctxt_switches").unwrap(),
            proc_status(d.pid, "nonvoluntary_ctxt_switches").unwrap(),
        )
    };
    let mut before = switches();
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = switches();
        if now == before {
            break;
        }
        before = now;
        assert!(t0.elapsed() < WAIT, "the daemon never settles");
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(switches(), before, "the idle daemon woke up:\n{}", d.log());
    let status = m.run_raw("masqmail", &["-C", m.conf.to_str().unwrap(), "status"], b"");
    assert!(
        stdout(&status).contains("next retry: none"),
        "{}",
        stdout(&status)
    );
    assert_eq!(m.queued_ids(), [id]);
    assert!(d.stop().success());
}

/// swaks, a well-known SMTP test client, where it is installed: plain
/// and pipelined, a refused relay, STARTTLS and implicit TLS with AUTH.
#[test]
fn swaks_sessions() {
    if !have("swaks", "swaks sessions (apt install swaks)") {
        return;
    }
    let nets = "\tlist local_nets '127.0.0.1/32'\n";
    #[cfg(feature = "tls")]
    let (m, port, smtps) = match tls::tls_mta("swaks", nets, "") {
        Some((m, p, s)) => (m, p, Some(s)),
        None => {
            let (m, p) = mta("swaks", nets, "");
            (m, p, None)
        }
    };
    #[cfg(not(feature = "tls"))]
    let (m, port, smtps) = {
        let (m, p) = mta("swaks", nets, "");
        (m, p, None::<u16>)
    };
    let (_, section) = passwd(&Mta::new("swaks-pw"), "alice", "wonderland");
    let mut conf = fs::read_to_string(&m.conf).unwrap();
    conf.push_str(section.split_once("\n\n").unwrap().1);
    fs::write(&m.conf, conf).unwrap();
    let d = Daemon::start(&m);
    let swaks = |args: &[&str]| {
        let o = Command::new("swaks")
            .args([
                "--server",
                "127.0.0.1",
                "--timeout",
                "20",
                "--from",
                "a@example.org",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (code(&o), stdout(&o))
    };
    let p = port.to_string();
    let (rc, out) = swaks(&[
        "--port",
        &p,
        "--to",
        "b@example.org,root@test.example",
        "--pipeline",
    ]);
    assert_eq!(rc, 0, "{out}\n{}", d.log());
    assert!(out.contains("queued as"), "{out}");
    // 127.0.0.2 is outside local_nets: swaks reports the refused RCPT (24).
    let (rc, out) = swaks(&[
        "--port",
        &p,
        "--local-interface",
        "127.0.0.2",
        "--to",
        "victim@example.org",
    ]);
    assert_eq!(rc, 24, "{out}");
    assert!(out.contains("554 5.7.1 Relay access denied"), "{out}");
    let mut queued = 1;
    if let Some(smtps) = smtps {
        let auth = ["--auth", "PLAIN", "--auth-user", "alice", "--auth-password"];
        let (rc, out) = swaks(
            &[
                &[
                    "--port",
                    &p,
                    "--local-interface",
                    "127.0.0.2",
                    "--to",
                    "x@example.org",
                    "--tls",
                ][..],
                &auth,
                &["wonderland"],
            ]
            .concat(),
        );
        assert_eq!(rc, 0, "{out}");
        assert!(out.contains("235 2.7.0"), "{out}");
        let (rc, out) = swaks(
            &[
                &["--port", &p, "--to", "x@example.org", "--tls"][..],
                &auth,
                &["wrong"],
            ]
            .concat(),
        );
        assert_eq!(rc, 28, "{out}");
        let s = smtps.to_string();
        let (rc, out) = swaks(
            &[
                &["--port", &s, "--to", "x@example.org", "--tlsc"][..],
                &auth,
                &["wonderland"],
            ]
            .concat(),
        );
        assert_eq!(rc, 0, "{out}");
        queued += 2;
    }
    assert_eq!(m.queued_ids().len(), queued, "{}", m.mailq());
    assert!(d.stop().success());
}
