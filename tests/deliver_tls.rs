//! TLS and AUTH on SMTP routes, end to end: a test CA and certificates
//! made with openssl (tests/common/pki.rs), the sink speaking STARTTLS or
//! implicit TLS with rustls, `runq` delivering. Without openssl every test
//! prints SKIP and passes.
#![cfg(feature = "tls")]

mod common;
#[path = "common/pki.rs"]
mod pki;
#[path = "common/sink.rs"]
mod sink;

use std::fs;
use std::path::PathBuf;

use common::*;
use sink::{Behaviour, Sink};

fn mta(tag: &str, sections: &str) -> Mta {
    let extra = "\toption resolv_conf '@DIR@/resolv.conf'\n";
    let m = Mta::with_config(tag, extra, sections);
    let dir = m.dir.path().to_str().expect("utf-8 temp dir").to_string();
    let text = fs::read_to_string(&m.conf)
        .expect("config")
        .replace("@DIR@", &dir);
    fs::write(&m.conf, text).expect("write config");
    fs::write(
        m.dir.path().join("resolv.conf"),
        "nameserver 127.0.0.1:9\noptions timeout:1 attempts:1\n",
    )
    .expect("resolv.conf");
    m
}

/// A sink offering STARTTLS (or implicit TLS) with certificate `cert`.
fn tls_sink(pki: &std::path::Path, cert: &str, implicit: bool) -> Sink {
    Sink::start(Behaviour {
        tls: Some(pki::server_config(pki, cert)),
        implicit_tls: implicit,
        ..Behaviour::default()
    })
}

/// The PKI in a scratch directory of its own, or None: SKIP.
fn pki_dir(test: &str) -> Option<(TempDir, PathBuf)> {
    let d = TempDir::new(&format!("pki-{test}"));
    let p = pki::install(d.path(), test)?;
    Some((d, p))
}

fn route(sink: &Sink, host: &str, more: &str) -> String {
    format!(
        "config route 'tls'\n\toption permanent '1'\n\toption mail_host '{host}:{}'\n{more}\n",
        sink.port
    )
}

fn send_one(m: &Mta) {
    expect_code(
        &m.sendmail(
            &["-f", "bob@remote.example", "x@example.org"],
            "Subject: secret\n\nover TLS\n",
        ),
        0,
    );
}

fn runq(m: &Mta) {
    let out = m.run("runq", &[], b"");
    expect_code(&out, 0);
}

#[test]
fn starttls_with_a_ca_verified_certificate() {
    let Some((_d, pki)) = pki_dir("starttls") else {
        return;
    };
    let sink = tls_sink(&pki, "good", false);
    let ca = pki.join("ca.pem");
    // `localhost` is found in /etc/hosts (byname); the certificate names it.
    let m = mta(
        "starttls",
        &route(
            &sink,
            "localhost",
            &format!(
                "\toption tls 'starttls'\n\toption tls_ca_file '{}'\n",
                ca.display()
            ),
        ),
    );
    for _ in 0..3 {
        send_one(&m);
    }
    runq(&m);
    let got = sink.messages();
    assert_eq!(got.len(), 3, "{}", m.mailq());
    assert!(got.iter().all(|g| g.tls), "delivered in plaintext");
    // one handshake for the three
    assert_eq!(
        sink.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert_eq!(m.mailq(), "Mail queue is empty\n");
}

#[test]
fn implicit_tls() {
    let Some((_d, pki)) = pki_dir("implicit") else {
        return;
    };
    let sink = tls_sink(&pki, "good", true);
    let ca = pki.join("ca.pem");
    let m = mta(
        "implicit",
        &route(
            &sink,
            "127.0.0.1",
            &format!(
                "\toption tls 'tls'\n\toption tls_ca_file '{}'\n",
                ca.display()
            ),
        ),
    );
    send_one(&m);
    runq(&m);
    let got = sink.messages();
    assert_eq!(got.len(), 1, "{}", m.mailq());
    assert!(got[0].tls);
}

#[test]
fn starttls_required_but_not_offered_defers() {
    let sink = Sink::start(Behaviour::default());
    let m = mta(
        "notoffered",
        &route(&sink, "127.0.0.1", "\toption tls 'starttls'\n"),
    );
    send_one(&m);
    runq(&m);
    assert!(sink.messages().is_empty(), "sent in plaintext");
    let q = m.mailq();
    assert!(
        q.contains("x@example.org  last error: ") && q.contains("STARTTLS"),
        "{q}"
    );
}

/// Each bad certificate defers with a reason that says what to fix, and
/// nothing is ever bounced for it.
#[test]
fn bad_certificates_defer_and_never_bounce() {
    let Some((_d, pki)) = pki_dir("badcerts") else {
        return;
    };
    let ca = pki.join("ca.pem");
    for (cert, want) in [
        ("expired", "expired"),
        ("other", "127.0.0.1"),
        ("future", "not valid before"),
        ("self", "certificate"),
    ] {
        let sink = tls_sink(&pki, cert, false);
        let m = mta(
            &format!("bad-{cert}"),
            &route(
                &sink,
                "127.0.0.1",
                &format!(
                    "\toption tls 'starttls'\n\toption tls_ca_file '{}'\n",
                    ca.display()
                ),
            ),
        );
        send_one(&m);
        runq(&m);
        runq(&m);
        assert!(sink.messages().is_empty(), "{cert}: delivered");
        let q = m.mailq();
        assert!(q.contains("x@example.org  last error: "), "{cert}: {q}");
        assert!(
            q.to_lowercase().contains(&want.to_lowercase()),
            "{cert}: want '{want}' in {q}"
        );
        assert!(!q.contains("failed:"), "{cert}: {q}");
        assert_eq!(m.queued_ids().len(), 1, "{cert}: a bounce was queued: {q}");
    }
}

#[test]
fn pinned_self_signed_certificate_is_accepted() {
    let Some((_d, pki)) = pki_dir("pinned") else {
        return;
    };
    let fp = fs::read_to_string(pki.join("self.fp")).expect("fingerprint");
    let sink = tls_sink(&pki, "self", false);
    let m = mta(
        "pinned",
        &route(
            &sink,
            "127.0.0.1",
            &format!(
                "\toption tls 'starttls'\n\toption tls_fingerprint '{}'\n",
                fp.trim()
            ),
        ),
    );
    send_one(&m);
    runq(&m);
    let got = sink.messages();
    assert_eq!(got.len(), 1, "{}", m.mailq());
    assert!(got[0].tls);

    // Another certificate under the same pin: deferred.
    let other = tls_sink(&pki, "good", false);
    let m = mta(
        "pinned-other",
        &route(
            &other,
            "127.0.0.1",
            &format!(
                "\toption tls 'starttls'\n\toption tls_fingerprint '{}'\n",
                fp.trim()
            ),
        ),
    );
    send_one(&m);
    runq(&m);
    assert!(other.messages().is_empty());
    assert_eq!(m.queued_ids().len(), 1);
}

#[test]
fn auth_plain_and_login_after_starttls() {
    let Some((_d, pki)) = pki_dir("auth") else {
        return;
    };
    let ca = pki.join("ca.pem");
    for (mech, secret, delivered) in [
        ("plain", "s3cret", true),
        ("login", "s3cret", true),
        ("plain", "wrong", false),
    ] {
        let sink = Sink::start(Behaviour {
            tls: Some(pki::server_config(&pki, "good")),
            auth: Some(("me@isp.example".into(), "s3cret".into())),
            ..Behaviour::default()
        });
        let m = mta(
            &format!("auth-{mech}-{delivered}"),
            &route(
                &sink,
                "127.0.0.1",
                &format!(
                    "\toption tls 'starttls'\n\toption tls_ca_file '{}'\n\
                     \toption auth_name '{mech}'\n\toption auth_login 'me@isp.example'\n\
                     \toption auth_secret '{secret}'\n",
                    ca.display()
                ),
            ),
        );
        send_one(&m);
        runq(&m);
        let got = sink.messages();
        if delivered {
            assert_eq!(got.len(), 1, "{mech}: {}", m.mailq());
            assert_eq!(got[0].auth.as_deref(), Some("me@isp.example"));
            assert!(got[0].tls);
        } else {
            assert!(got.is_empty());
            let q = m.mailq();
            // a refused login defers: credentials can be fixed
            assert!(q.contains("last error: 535 5.7.8"), "{q}");
            assert!(!q.contains(secret), "the secret leaked: {q}");
        }
    }
}
