//! `masqmail setup PRESET …` and `masqmail testmail` through the built
//! binary: every preset writes a config that passes `config check`, every
//! bad argument is refused with exit 64 and nothing written, an existing
//! file needs --force, and a `setup smarthost` config makes the daemon
//! deliver through a local smarthost with STARTTLS (checked against a test
//! CA made with openssl) and AUTH PLAIN.

mod common;
#[allow(unused_imports)] // sink.rs is shared; not every user needs all it imports
#[rustfmt::skip] // sink.rs keeps its own formatting
#[path = "common/sink.rs"]
mod sink;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
#[cfg(feature = "tls")]
use std::path::PathBuf;
#[cfg(feature = "tls")]
use std::process::{Command, Stdio};

use common::*;

/// `masqmail -C conf setup ARGS…`, with `stdin`.
fn setup(m: &Mta, conf: &Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut full = vec!["-C", conf.to_str().expect("utf-8 path"), "setup"];
    full.extend_from_slice(args);
    m.run_raw("masqmail", &full, stdin)
}

fn check(m: &Mta, conf: &Path) -> std::process::Output {
    m.run_raw(
        "masqmail",
        &["-C", conf.to_str().expect("utf-8 path"), "config", "check"],
        b"",
    )
}

#[test]
fn every_preset_writes_a_valid_config() {
    let m = Mta::new("setup-presets");
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "gmail",
            &[
                "smarthost",
                "gmail",
                "--user",
                "me@gmail.com",
                "--password",
                "app-pw",
            ],
            &[
                "option mail_host 'smtp.gmail.com:587'",
                "option tls 'starttls'",
                "option auth_login 'me@gmail.com'",
                "list map_return_path_addresses '*: me@gmail.com'",
                "list to 'me@gmail.com'",
            ],
        ),
        (
            "fastmail",
            &[
                "smarthost",
                "FastMail",
                "--user",
                "me@fastmail.com",
                "--password",
                "x",
            ],
            &[
                "option mail_host 'smtp.fastmail.com:465'",
                "option tls 'tls'",
            ],
        ),
        (
            "outlook",
            &[
                "smarthost",
                "outlook",
                "--user",
                "me@outlook.com",
                "--password",
                "x",
                "--to",
                "you@example.org",
            ],
            &[
                "option mail_host 'smtp-mail.outlook.com:587'",
                "list to 'you@example.org'",
            ],
        ),
        (
            "host",
            &[
                "smarthost",
                "smtp.example.net",
                "--port",
                "2525",
                "--tls",
                "none",
            ],
            &[
                "option mail_host 'smtp.example.net:2525'",
                "option tls 'none'",
                "list to '\\root'",
            ],
        ),
        (
            "port465",
            &[
                "smarthost",
                "smtp.example.net:465",
                "--user",
                "u",
                "--password",
                "p",
                "--from",
                "me@example.net",
            ],
            &[
                "option tls 'tls'",
                "list map_h_from_addresses '*: me@example.net'",
            ],
        ),
        (
            "lan",
            &[
                "lan-relay",
                "smtp.example.net",
                "--user",
                "u",
                "--password",
                "p",
                "--lan",
                "192.168.7.1/24",
                "--host-name",
                "router.lan",
            ],
            &[
                "list listen_addresses '127.0.0.1:25'",
                "list listen_addresses '192.168.7.1:25'",
                "list local_nets '192.168.7.0/24'",
                "list local_nets '127.0.0.0/8'",
                "option host_name 'router.lan'",
            ],
        ),
        (
            "direct",
            &[
                "direct",
                "--host-name",
                "mail.example.org",
                "--to",
                "me@example.org",
            ],
            &[
                "config route 'mx'",
                "option helo_name 'mail.example.org'",
                "list resolve_list 'dns_mx'",
            ],
        ),
        (
            "local",
            &["local", "--spool", "/srv/mq"],
            &["option spool_dir '/srv/mq'", "list to '\\root'"],
        ),
    ];
    for (tag, args, want) in cases {
        let conf = m.dir.path().join(format!("{tag}.conf"));
        let out = setup(&m, &conf, args, b"");
        expect_code(&out, 0);
        let text = fs::read_to_string(&conf).expect("written");
        for w in *want {
            assert!(text.contains(w), "{tag}: no {w:?} in\n{text}");
        }
        let mode = fs::metadata(&conf).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{tag}: the file holds a password");
        expect_code(&check(&m, &conf), 0);
        let said = stdout(&out);
        assert!(
            said.contains(": OK") && said.contains("Next:"),
            "{tag}: {said}"
        );
        assert!(said.contains("testmail"), "{tag}: {said}");
        // The password is never shown.
        assert!(!said.contains("app-pw"), "{tag}: {said}");
        assert!(
            fs::read_dir(m.dir.path()).expect("dir").all(|e| !e
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .ends_with(".setup")),
            "{tag}: temporary file left"
        );
    }
}

#[test]
fn bad_arguments_are_refused_and_nothing_is_written() {
    let m = Mta::new("setup-bad");
    let conf = m.dir.path().join("c.conf");
    let cases: &[(&[&str], i32, &str)] = &[
        (&[], 64, "preset"),
        (&["bogus"], 64, "preset 'bogus': unknown"),
        (&["smarthost"], 64, "needs a SERVER"),
        (&["smarthost", "nosuch"], 64, "unknown provider 'nosuch'"),
        (
            &["smarthost", "gmail"],
            64,
            "gmail needs --user and --password",
        ),
        (
            &["smarthost", "h.example", "--user", "u"],
            64,
            "--user needs --password",
        ),
        (
            &["smarthost", "h.example", "--password", "p"],
            64,
            "--password needs --user",
        ),
        (
            &["smarthost", "h.example", "--tls", "ssl"],
            64,
            "use starttls, tls or none",
        ),
        (
            &[
                "smarthost",
                "h.example",
                "--tls",
                "none",
                "--user",
                "u",
                "--password",
                "p",
            ],
            64,
            "clear text",
        ),
        (
            &["smarthost", "h.example:25", "--port", "26"],
            64,
            "port is given twice",
        ),
        (&["smarthost", "h.example:x"], 64, "not host, host:port"),
        (&["smarthost", "h.example", "--port", "0"], 64, "not a port"),
        (&["smarthost", "h.example", "--port", "70000"], 64, "port"),
        (
            &["smarthost", "h.example", "--from", "nobody"],
            64,
            "--from 'nobody': not an address",
        ),
        (
            &["smarthost", "h.example", "--to", "a@"],
            64,
            "--to 'a@': not an address",
        ),
        (
            &["smarthost", "h.example", "--host-name", "a b"],
            64,
            "not a host name",
        ),
        (
            &["smarthost", "h.example", "--spool", "relative"],
            64,
            "not an absolute path",
        ),
        (
            &["smarthost", "h.example", "--lan", "192.168.1.1/24"],
            64,
            "--lan does not apply",
        ),
        (
            &[
                "smarthost",
                "h.example",
                "--fingerprint",
                "ab",
                "--tls",
                "none",
            ],
            64,
            "needs TLS",
        ),
        (
            &["lan-relay", "h.example", "--lan", "192.168.1.0/24"],
            64,
            "the network itself",
        ),
        (
            &["lan-relay", "h.example", "--lan", "192.168.1.1"],
            64,
            "with the prefix length",
        ),
        (
            &["lan-relay", "h.example", "--lan", "192.168.1.1/40"],
            64,
            "bad prefix length",
        ),
        (&["direct"], 64, "needs --host-name"),
        (
            &["direct", "h.example", "--host-name", "m.example"],
            64,
            "SERVER does not apply",
        ),
        (
            &["direct", "--host-name", "m.example", "--user", "u"],
            64,
            "--user does not apply",
        ),
        (
            &["direct", "--host-name", "m.example", "--tls", "tls"],
            64,
            "STARTTLS on port 25",
        ),
        (&["local", "--to", "me@example.org"], 64, "a local user"),
        (&["local", "--tls", "tls"], 64, "--tls does not apply"),
        (
            &[
                "smarthost",
                "h.example",
                "--user",
                "a\nb",
                "--password",
                "p",
            ],
            64,
            "control character",
        ),
        // Passes the argument checks, fails the config check: exit 78.
        (
            &["smarthost", "h.example", "--listen", "127.0.0.1"],
            78,
            "listen_addresses",
        ),
        (
            &["smarthost", "h.example", "--fingerprint", "abcd"],
            78,
            "tls_fingerprint",
        ),
    ];
    for (args, code, msg) in cases {
        let out = setup(&m, &conf, args, b"");
        assert_eq!(
            code_of(&out),
            *code,
            "{args:?}: stdout {} stderr {}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stderr(&out).contains(msg), "{args:?}: {}", stderr(&out));
        assert!(!conf.exists(), "{args:?} wrote the file");
        let leftovers: Vec<_> = fs::read_dir(m.dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("setup"))
            .collect();
        assert!(leftovers.is_empty(), "{args:?} left {leftovers:?}");
    }
    // A config error names the target file and line, not the temporary file.
    let out = setup(
        &m,
        &conf,
        &["smarthost", "h.example", "--listen", "1.2.3.4"],
        b"",
    );
    assert!(
        stderr(&out).contains(&format!("{}:", conf.display())),
        "{}",
        stderr(&out)
    );
}

fn code_of(o: &std::process::Output) -> i32 {
    code(o)
}

#[test]
fn existing_file_needs_force_and_print_writes_nothing() {
    let m = Mta::new("setup-force");
    let conf = m.dir.path().join("c.conf");
    fs::write(&conf, "# mine\n").expect("write");
    let out = setup(&m, &conf, &["local"], b"");
    expect_code(&out, 73);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&conf).expect("read"), "# mine\n");

    let out = setup(
        &m,
        &conf,
        &[
            "smarthost",
            "h.example",
            "--user",
            "u",
            "--password",
            "hunter2",
            "--print",
        ],
        b"",
    );
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("option auth_secret '********'"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("hunter2"));
    assert_eq!(fs::read_to_string(&conf).expect("read"), "# mine\n");

    let out = setup(&m, &conf, &["local", "--force"], b"");
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains(": OK (local preset)"),
        "{}",
        stdout(&out)
    );
    assert!(fs::read_to_string(&conf)
        .expect("read")
        .contains("config alias 'root'"));
}

#[test]
fn password_from_stdin() {
    let m = Mta::new("setup-stdin");
    let conf = m.dir.path().join("c.conf");
    let out = setup(
        &m,
        &conf,
        &["smarthost", "h.example", "--user", "u", "--password", "-"],
        b"it's secret\n",
    );
    expect_code(&out, 0);
    let text = fs::read_to_string(&conf).expect("read");
    assert!(
        text.contains("option auth_secret 'it'\\''s secret'"),
        "{text}"
    );
    expect_code(&check(&m, &conf), 0);
    let out = setup(
        &m,
        &conf,
        &[
            "smarthost",
            "h.example",
            "--user",
            "u",
            "--password",
            "-",
            "--force",
        ],
        b"",
    );
    expect_code(&out, 64);
}

#[test]
fn testmail_queues_a_message_for_root() {
    let m = Mta::with_config(
        "testmail",
        "",
        "config alias 'root'\n\toption name 'root'\n\tlist to 'you@example.org'\n",
    );
    let out = m.run("masqmail", &["testmail"], b"");
    expect_code(&out, 0);
    let said = stdout(&out);
    assert!(
        said.contains("Test message to root@test.example queued."),
        "{said}"
    );
    assert!(said.contains("No daemon is running"), "{said}");
    let q = m.mailq();
    assert!(q.contains("you@example.org (root@test.example)"), "{q}");
    let ids = m.queued_ids();
    assert_eq!(ids.len(), 1);
    let hf = m.outgoing(&ids[0]);
    assert!(
        hf.contains("Subject: masqmail test message from test.example"),
        "{hf}"
    );

    let out = m.run("masqmail", &["testmail", "someone@example.net"], b"");
    expect_code(&out, 0);
    let out = m.run("masqmail", &["testmail", "a@@b"], b"");
    expect_code(&out, 64);
    let out = m.run("masqmail", &["testmail", "a", "b"], b"");
    expect_code(&out, 64);
}

// ---- setup smarthost, then the daemon delivers with STARTTLS and AUTH ----

/// A test CA and a certificate for 127.0.0.1, made with openssl; None
/// (and a SKIP line) without a working openssl.
#[cfg(feature = "tls")]
fn make_pki(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let run = |args: &[&str]| -> bool {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !run(&["version"]) {
        println!("SKIP: no openssl command (apt-get install openssl)");
        return None;
    }
    fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let ok = run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=masqmail test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    ]
    .concat())
        && run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "srv.key",
                "-out",
                "srv.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat())
        && run(&[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ]);
    if !ok {
        println!("SKIP: openssl could not make the test certificates");
        return None;
    }
    Some((dir.join("ca.pem"), dir.join("srv.pem"), dir.join("srv.key")))
}

#[cfg(feature = "tls")]
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[cfg(feature = "tls")]
#[test]
fn setup_smarthost_then_daemon_delivers_with_starttls_and_auth() {
    let m = Mta::new("setup-e2e");
    let dir = m.dir.path();
    let pki = dir.join("pki");
    fs::create_dir_all(&pki).expect("pki dir");
    let Some((ca, cert, key)) = make_pki(&pki) else {
        return;
    };
    let server = masqmail::tls::server_config(&cert, &key).expect("server config");
    let smarthost = sink::Sink::start(sink::Behaviour {
        tls: Some(server),
        auth: Some(("router@example.net".into(), "s3cret pw".into())),
        ..sink::Behaviour::default()
    });

    let conf = dir.join("setup.conf");
    let spool = dir.join("spool");
    let listen = format!("127.0.0.1:{}", free_port());
    let out = setup(
        &m,
        &conf,
        &[
            "smarthost",
            &format!("127.0.0.1:{}", smarthost.port),
            "--tls",
            "starttls",
            "--user",
            "router@example.net",
            "--password",
            "-",
            "--ca-file",
            ca.to_str().expect("utf-8"),
            "--to",
            "owner@example.org",
            "--host-name",
            "router.test",
            "--spool",
            spool.to_str().expect("utf-8"),
            "--listen",
            &listen,
        ],
        b"s3cret pw\n",
    );
    expect_code(&out, 0);

    // Test mode (no root, no mail user) and a file-detected route, added to
    // what setup wrote; the rest is setup's.
    let online = dir.join("online");
    fs::write(&online, "smarthost\n").expect("online file");
    let text = fs::read_to_string(&conf).expect("read").replace(
        "config masqmail 'main'\n",
        &format!(
            "config masqmail 'main'\n\toption run_as_user '1'\n\toption online_detect 'file'\n\
             \toption online_file '{}'\n\toption log_level '7'\n",
            online.display()
        ),
    );
    fs::write(&conf, text).expect("write");
    expect_code(&check(&m, &conf), 0);

    let _daemon = DaemonGuard::start(&conf, &spool);
    // cron's mail to root: aliased to the owner, sender rewritten to the login.
    let out = m.run_raw(
        "sendmail",
        &["-C", conf.to_str().expect("utf-8"), "-t"],
        b"To: root\nSubject: backup done\n\nall fine\n",
    );
    expect_code(&out, 0);
    let got = smarthost.wait_for(1, 20);
    let g = &got[0];
    assert!(g.tls, "delivered without TLS");
    assert_eq!(g.auth.as_deref(), Some("router@example.net"));
    assert_eq!(g.rcpts, vec!["owner@example.org".to_string()]);
    assert_eq!(g.from, "router@example.net");
    assert!(g.data.contains("Subject: backup done"), "{}", g.data);
    assert!(
        g.data.contains("From: router@example.net") || g.data.contains("<router@example.net>"),
        "{}",
        g.data
    );

    // The test mail of `masqmail testmail` takes the same way.
    let out = m.run_raw(
        "masqmail",
        &["-C", conf.to_str().expect("utf-8"), "testmail"],
        b"",
    );
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("The daemon sends it"),
        "{}",
        stdout(&out)
    );
    let got = smarthost.wait_for(2, 20);
    assert!(got[1]
        .data
        .contains("Subject: masqmail test message from router.test"));
}
