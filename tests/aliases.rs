//! Scanning's alias expansion, seen through -bv, newaliases and mailq.

mod common;

use std::fs;

use common::*;

/// root is a user on every test machine; "nosuchuser4711" on none.
fn mta_with_aliases(tag: &str) -> Mta {
    let m = Mta::new(tag);
    let alias_file = m.dir.path().join("aliases");
    fs::write(
        &alias_file,
        "# test aliases\n\
         staff: root, admin@example.org,\n\
         \tops@example.net\n\
         archive: \"|/bin/cat -u\"\n\
         loop1: loop2\n\
         loop2: loop1\n\
         ghost: nosuchuser4711\n",
    )
    .unwrap();
    let conf = fs::read_to_string(&m.conf).unwrap();
    let conf = conf.replace(
        "\toption log_level",
        &format!("\toption alias_file '{}'\n\toption log_level", alias_file.display()),
    ) + "config alias\n\toption name 'webmaster'\n\tlist to 'staff'\n\tlist to 'web@example.com'\n";
    fs::write(&m.conf, conf).unwrap();
    m
}

#[test]
fn bv_shows_where_addresses_go() {
    let m = mta_with_aliases("bv");
    let out = m.run(
        "sendmail",
        &[
            "-bv",
            "staff",
            "webmaster@test.example",
            "someone@example.org",
            "archive",
        ],
        b"",
    );
    expect_code(&out, 0);
    let o = stdout(&out);
    for want in [
        "staff@test.example -> root@test.example (local user root)",
        "staff@test.example -> admin@example.org (remote)",
        "staff@test.example -> ops@example.net (remote)",
        "webmaster@test.example -> web@example.com (remote)",
        "someone@example.org -> someone@example.org (remote)",
        "archive@test.example -> |/bin/cat -u (command)",
    ] {
        assert!(o.lines().any(|l| l == want), "missing {want:?} in\n{o}");
    }
    let out = m.run("sendmail", &["-bv", "nosuchuser4711"], b"");
    expect_code(&out, 67);
    assert!(
        stdout(&out).contains("no such user here"),
        "{}",
        stdout(&out)
    );
    let out = m.run("sendmail", &["-bv", "loop1"], b"");
    assert_ne!(code(&out), 0);
    assert!(
        stdout(&out).contains("alias loop: loop1 -> loop2 -> loop1"),
        "{}",
        stdout(&out)
    );
    let out = m.run("sendmail", &["-bv", "postmaster"], b"");
    expect_code(&out, 0);
    assert_eq!(
        stdout(&out),
        "postmaster@test.example -> root@test.example (local user root)\n"
    );
}

#[test]
fn scanning_expands_and_mailq_shows_the_original() {
    let m = mta_with_aliases("expand");
    expect_code(&m.sendmail(&["-t"], "To: staff, ghost, archive\n\nx\n"), 0);
    let q = m.mailq();
    for want in [
        "        root@test.example (staff@test.example)\n",
        "        admin@example.org (staff@test.example)\n",
        "        ops@example.net (staff@test.example)\n",
        "        |/bin/cat -u (archive@test.example)\n",
    ] {
        assert!(q.contains(want), "missing {want:?} in\n{q}");
    }
    assert!(
        q.lines().any(|l| l.starts_with(
            "        ghost@test.example  failed: 550 5.1.1 <nosuchuser4711@test.example>"
        )),
        "{q}"
    );
}

#[test]
fn command_recipients_never_come_from_the_envelope() {
    let m = Mta::new("pipe-envelope");
    // A local part that looks like a command is just an address.
    expect_code(&m.sendmail(&["|touch /tmp/pwned@example.org"], "x\n"), 64);
    expect_code(&m.sendmail(&["\"|touch x\"@example.org"], "x\n"), 0);
    let id = &m.queued_ids()[0];
    assert!(
        m.outgoing(id).contains("RT:P\t<\"|touch x\"@example.org>"),
        "{}",
        m.outgoing(id)
    );
}

#[test]
fn newaliases_checks_the_alias_file() {
    let m = mta_with_aliases("newaliases");
    let out = m.run("newaliases", &[], b"");
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("5 alias(es), 0 error(s); 1 alias(es) in the config"),
        "{}",
        stdout(&out)
    );
    let alias_file = m.dir.path().join("aliases");
    fs::write(
        &alias_file,
        "ok: root\nbroken line\nfile: /var/spool/mbox\n",
    )
    .unwrap();
    let out = m.run("newaliases", &[], b"");
    expect_code(&out, 78);
    let err = stderr(&out);
    assert!(
        err.contains("aliases:line 2: expected 'name: target"),
        "{err}"
    );
    assert!(
        err.contains("aliases:line 3: delivery to a file is not supported"),
        "{err}"
    );
}

#[test]
fn unreadable_alias_file_leaves_mail_in_incoming() {
    let m = Mta::new("noaliasfile");
    let conf = fs::read_to_string(&m.conf).unwrap().replace(
        "\toption log_level",
        "\toption alias_file '/nonexistent/aliases'\n\toption log_level",
    );
    fs::write(&m.conf, conf).unwrap();
    // Accepted (it is on disk), but not scanned: it waits in incoming/.
    expect_code(&m.sendmail(&["root"], "x\n"), 0);
    assert_eq!(m.files("incoming").len(), 1);
    let q = m.mailq();
    assert!(q.contains("(not yet scanned)"), "{q}");
    assert!(q.contains("        root@test.example\n"), "{q}");
}
