//! A well-known server as the smarthost: Postfix from Debian, started as
//! a private instance in the test's directory, requiring STARTTLS and SASL
//! AUTH (Cyrus sasldb) before it relays; it relays to the test sink, so
//! what arrives there is what masqmail sent through Postfix.
//!
//! Needs root and the packages postfix, sasl2-bin and libsasl2-modules
//! (CI installs them), and openssl for the certificate; otherwise SKIP.
#![cfg(feature = "tls")]

mod common;
#[path = "common/pki.rs"]
mod pki;
#[path = "common/sink.rs"]
mod sink;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sink::{Behaviour, Sink};

const MASTER: &str = "/usr/lib/postfix/sbin/master";
const USER: &str = "relay@pf.example";
const PASSWORD: &str = "p4ss w0rd";

fn skip(why: &str) {
    eprintln!("SKIP: Postfix smarthost test: {why}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A private Postfix: config in `dir/etc`, queue in `dir/queue`.
struct Postfix {
    master: Child,
    dir: PathBuf,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.master.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.master.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn start_postfix(dir: &Path, pki: &Path, port: u16, sink_port: u16) -> Result<Postfix, String> {
    let etc = dir.join("etc");
    // Debian's Postfix reads $config_directory/sasl/smtpd.conf
    let sasl = etc.join("sasl");
    for d in [&etc, &dir.join("queue"), &dir.join("data"), &sasl] {
        fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    let d = dir.display();
    let main = format!(
        "compatibility_level = 3.6\n\
         queue_directory = {d}/queue\n\
         data_directory = {d}/data\n\
         myhostname = pf.example\n\
         mydomain = pf.example\n\
         mydestination =\n\
         inet_interfaces = loopback-only\n\
         inet_protocols = ipv4\n\
         relayhost = [127.0.0.1]:{sink_port}\n\
         smtp_host_lookup = native\n\
         smtp_tls_security_level = none\n\
         maillog_file = {d}/maillog\n\
         maillog_file_prefixes = {d}\n\
         smtpd_tls_cert_file = {pki}/good.pem\n\
         smtpd_tls_key_file = {pki}/good.key\n\
         smtpd_tls_security_level = encrypt\n\
         smtpd_tls_auth_only = yes\n\
         smtpd_sasl_auth_enable = yes\n\
         smtpd_sasl_type = cyrus\n\
         smtpd_sasl_path = smtpd\n\
         cyrus_sasl_config_path = {d}/etc/sasl\n\
         smtpd_relay_restrictions = permit_sasl_authenticated, reject\n\
         smtpd_recipient_restrictions = permit_sasl_authenticated, reject\n",
        pki = pki.display()
    );
    fs::write(etc.join("main.cf"), main).map_err(|e| e.to_string())?;
    // Debian's master.cf, without chroot, smtpd on our port only.
    let stock = fs::read_to_string("/etc/postfix/master.cf").map_err(|e| e.to_string())?;
    let mut master = String::new();
    for line in stock.lines() {
        let mut w: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if w.len() >= 8 && !line.starts_with([' ', '\t', '#']) {
            if w[1] == "inet" {
                if w[0] != "smtp" {
                    continue;
                }
                w[0] = format!("127.0.0.1:{port}");
            }
            w[4] = "n".into();
            master.push_str(&w.join("  "));
        } else {
            master.push_str(line);
        }
        master.push('\n');
    }
    fs::write(etc.join("master.cf"), master).map_err(|e| e.to_string())?;
    fs::write(
        sasl.join("smtpd.conf"),
        format!(
            "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\n\
             sasldb_path: {d}/etc/sasl/sasldb2\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let (user, realm) = USER.split_once('@').unwrap_or((USER, ""));
    let mut child = Command::new("saslpasswd2")
        .args([
            "-f",
            &format!("{d}/etc/sasl/sasldb2"),
            "-c",
            "-p",
            "-u",
            realm,
            user,
        ])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("saslpasswd2: {e}"))?;
    {
        use std::io::Write;
        let mut si = child.stdin.take().ok_or("saslpasswd2 stdin")?;
        si.write_all(PASSWORD.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    if !child.wait().map_err(|e| e.to_string())?.success() {
        return Err("saslpasswd2 failed".into());
    }
    run(Command::new("chown").args([
        "-R",
        "postfix",
        &format!("{d}/etc/sasl"),
        &format!("{d}/data"),
    ]))?;
    run(Command::new("chmod").arg("755").arg(dir))?;
    run(Command::new("postfix").arg("-c").arg(&etc).arg("check"))?;
    let master = Command::new(MASTER)
        .arg("-c")
        .arg(&etc)
        .arg("-d")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{MASTER}: {e}"))?;
    let pf = Postfix {
        master,
        dir: dir.to_path_buf(),
    };
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(20) {
            let log = fs::read_to_string(dir.join("maillog")).unwrap_or_default();
            return Err(format!("Postfix did not listen on {port}:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(pf)
}

#[test]
fn postfix_smarthost_with_starttls_and_sasl() {
    if !is_root() {
        return skip("needs root (Postfix's master and postdrop)");
    }
    if !Path::new(MASTER).exists() || Command::new("saslpasswd2").arg("-v").output().is_err() {
        return skip("install postfix, sasl2-bin and libsasl2-modules");
    }
    let tmp = TempDir::new("postfix");
    let Some(pki) = pki::install(tmp.path(), "postfix smarthost") else {
        return;
    };
    // Postfix runs as the postfix user: it must read the key.
    let _ = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&pki)
        .status();
    let sink = Sink::start(Behaviour::default());
    let port = free_port();
    let pf = match start_postfix(&tmp.path().join("pf"), &pki, port, sink.port) {
        Ok(p) => p,
        Err(e) => panic!("starting Postfix: {e}"),
    };
    let route = |secret: &str| {
        format!(
            "config route 'smarthost'\n\toption permanent '1'\n\
             \toption mail_host '127.0.0.1:{port}'\n\toption tls 'starttls'\n\
             \toption tls_ca_file '{}'\n\toption auth_login '{USER}'\n\
             \toption auth_secret '{secret}'\n",
            pki.join("ca.pem").display()
        )
    };
    let m = Mta::with_config("pf-ok", "", &route(PASSWORD));
    for i in 0..3 {
        expect_code(
            &m.sendmail(
                &["-f", "bob@remote.example", "carol@example.org"],
                &format!("Subject: via postfix {i}\n\nrelayed\n"),
            ),
            0,
        );
    }
    expect_code(&m.run("runq", &[], b""), 0);
    let log = || fs::read_to_string(pf.dir.join("maillog")).unwrap_or_default();
    assert_eq!(
        m.mailq(),
        "Mail queue is empty\n",
        "Postfix's log:\n{}",
        log()
    );
    // Postfix relays on its own time.
    let got = sink.wait_for(3, 30);
    for g in &got {
        assert_eq!(g.from, "bob@remote.example");
        assert_eq!(g.rcpts, ["carol@example.org"]);
        let d = g.data.replace("\r\n", "\n");
        // Postfix's Received: says how masqmail came in
        assert!(
            d.contains("by pf.example (Postfix) with ESMTPSA"),
            "not authenticated over TLS:\n{d}"
        );
        assert!(d.contains("\n\nrelayed\n"), "{d}");
    }

    // A wrong password: Postfix says 535, the message waits.
    let m = Mta::with_config("pf-bad", "", &route("wrong"));
    expect_code(
        &m.sendmail(&["-f", "bob@remote.example", "carol@example.org"], "x\n"),
        0,
    );
    expect_code(&m.run("runq", &[], b""), 0);
    let q = m.mailq();
    assert!(q.contains("last error: 535"), "{q}");
    drop(pf);
}
