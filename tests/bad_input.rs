//! Bad input gets a clear error and loses nothing: every case of the core
//! issue, on the built binary. After each, mailq still lists the messages
//! queued before.

mod common;

use std::fs;
use std::process::Command;

use common::*;

/// Queue two good messages, run `bad`, and check that they are still
/// listed and nothing else was queued (unless `bad` was accepted).
fn survives(tag: &str, bad: impl FnOnce(&Mta)) -> Mta {
    let m = Mta::new(tag);
    expect_code(&m.sendmail(&["one@example.org"], "Subject: 1\n\none\n"), 0);
    expect_code(&m.sendmail(&["two@example.org"], "Subject: 2\n\ntwo\n"), 0);
    let before = m.queued_ids();
    assert_eq!(before.len(), 2);
    bad(&m);
    let after = m.queued_ids();
    for id in &before {
        assert!(after.contains(id), "{id} lost after {tag}: {after:?}");
    }
    m
}

/// The refused command printed one line and queued nothing.
#[track_caller]
fn refused(m: &Mta, out: &std::process::Output, code: i32, says: &str) {
    expect_code(out, code);
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "want one error line, got:\n{err}");
    assert!(err.starts_with("sendmail: "), "{err}");
    assert!(err.contains(says), "stderr {err:?} lacks {says:?}");
    assert_eq!(m.queued_ids().len(), 2, "something was queued");
    assert!(m.files("incoming").is_empty());
    assert_eq!(m.files("pool").len(), 2, "pool: {:?}", m.files("pool"));
}

#[test]
fn bad_sender_addresses() {
    survives("bad-sender", |m| {
        refused(
            m,
            &m.sendmail(&["-f", "\"unterminated", "x@example.org"], "x\n"),
            64,
            "unterminated quoted string",
        );
        refused(
            m,
            &m.sendmail(&["-f", "a@b@<>c", "x@example.org"], "x\n"),
            64,
            "bad sender address",
        );
        refused(
            m,
            &m.sendmail(&["-f", "", "x@example.org"], "x\n"),
            64,
            "null sender",
        );
        let long = format!("{}@example.org", "a".repeat(300));
        refused(
            m,
            &m.sendmail(&["-f", &long, "x@example.org"], "x\n"),
            64,
            "longer than",
        );
        refused(m, &m.sendmail(&[&long], "x\n"), 64, "bad recipient address");
    });
}

#[test]
fn header_line_without_colon_starts_the_body() {
    let m = survives("nocolon", |m| {
        expect_code(
            &m.sendmail(
                &["-i", "x@example.org"],
                "Subject: s\nthis line has no colon\nnor this\n",
            ),
            0,
        );
    });
    let id = m.queued_ids()[2].clone();
    assert_eq!(
        fs::read_to_string(m.spool.join("pool").join(&id)).unwrap(),
        "this line has no colon\nnor this\n"
    );
    assert!(m.outgoing(&id).contains("HD:Subject: s\n"));
}

#[test]
fn nul_bytes_are_refused() {
    survives("nul", |m| {
        let out = m.run(
            "sendmail",
            &["-i", "x@example.org"],
            b"Subject: a\n\nbody\0with nul\n",
        );
        refused(m, &out, 65, "NUL");
        let out = m.run(
            "sendmail",
            &["-i", "x@example.org"],
            b"Subj\0ect: a\n\nbody\n",
        );
        refused(m, &out, 65, "NUL");
    });
}

#[test]
fn two_megabyte_line_is_refused() {
    survives("longline", |m| {
        let mut msg = b"Subject: long\n\n".to_vec();
        msg.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
        msg.push(b'\n');
        let out = m.run("sendmail", &["-i", "x@example.org"], &msg);
        refused(m, &out, 65, "line longer than");
    });
}

#[test]
fn message_over_max_size_is_refused() {
    let m = Mta::with_config("maxsize", "\toption max_size '10K'", "");
    expect_code(&m.sendmail(&["one@example.org"], "one\n"), 0);
    expect_code(&m.sendmail(&["two@example.org"], "two\n"), 0);
    let big = format!("Subject: big\n\n{}", "0123456789abcdef\n".repeat(1000));
    let out = m.sendmail(&["-i", "x@example.org"], &big);
    refused(&m, &out, 69, "max_size");
    // Just under the limit is fine.
    let fits = format!("Subject: ok\n\n{}", "x".repeat(9000));
    expect_code(&m.sendmail(&["-i", "x@example.org"], &fits), 0);
}

#[test]
fn too_many_headers_are_refused() {
    let m = Mta::with_config("headers", "\toption max_headers '50'", "");
    expect_code(&m.sendmail(&["one@example.org"], "one\n"), 0);
    expect_code(&m.sendmail(&["two@example.org"], "two\n"), 0);
    let msg: String = (0..60).map(|i| format!("X-H{i}: v\n")).collect::<String>() + "\nbody\n";
    refused(
        &m,
        &m.sendmail(&["-i", "x@example.org"], &msg),
        65,
        "more than 50 header fields",
    );
}

#[test]
fn extract_without_recipients() {
    survives("norcpt", |m| {
        refused(
            m,
            &m.sendmail(&["-t", "-i"], "Subject: nobody\n\nx\n"),
            64,
            "no recipients",
        );
        refused(
            m,
            &m.sendmail(&["-i"], "Subject: nobody\n\nx\n"),
            64,
            "no recipients",
        );
        refused(
            m,
            &m.sendmail(&["-t"], "To: bad@@x\n\nx\n"),
            65,
            "bad address 'bad@@x' in To",
        );
    });
}

#[test]
fn config_with_five_errors_reports_all() {
    let m = Mta::new("conf5");
    let bad = m.dir.path().join("bad.conf");
    fs::write(
        &bad,
        "config masqmail\n\
         \toption max_sise '10M'\n\
         \toption run_as_user 'perhaps'\n\
         \toption listen_addresses 'nowhere'\n\
         config route 'isp'\n\
         \toption tls 'sometimes'\n\
         config bogus\n",
    )
    .unwrap();
    let out = m.run_raw(
        "masqmail",
        &["config", "check", "-C", bad.to_str().unwrap()],
        b"",
    );
    expect_code(&out, 78);
    let err = stderr(&out);
    for (line, what) in [
        (2, "max_sise"),
        (3, "run_as_user"),
        (4, "listen_addresses"),
        (6, "tls"),
        (7, "bogus"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("bad.conf:{line}:")) && l.contains(what)),
            "line {line} ({what}) not reported:\n{err}"
        );
    }
    assert!(err.contains("max_size"), "no hint for max_sise:\n{err}");
    // The short commands stop with one line and exit 78.
    let out = m.run_raw(
        "sendmail",
        &["-C", bad.to_str().unwrap(), "x@example.org"],
        b"x\n",
    );
    expect_code(&out, 78);
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    // Missing config file.
    let out = m.run_raw(
        "sendmail",
        &["-C", "/nonexistent/masqmail.conf", "x@example.org"],
        b"x\n",
    );
    expect_code(&out, 78);
}

#[test]
fn spool_path_that_cannot_be_created() {
    let m = Mta::new("nospool");
    let blocker = m.dir.path().join("file");
    fs::write(&blocker, "not a directory").unwrap();
    let conf = m.dir.path().join("c.conf");
    fs::write(
        &conf,
        format!(
            "config masqmail\n\toption run_as_user 1\n\toption spool_dir '{}/spool'\n",
            blocker.display()
        ),
    )
    .unwrap();
    let out = m.run_raw(
        "sendmail",
        &["-C", conf.to_str().unwrap(), "x@example.org"],
        b"x\n",
    );
    expect_code(&out, 73);
    assert!(stderr(&out).contains("spool"), "{}", stderr(&out));
}

#[test]
fn missing_spool_dir_is_created() {
    let m = Mta::new("mkspool");
    assert!(!m.spool.exists());
    expect_code(&m.sendmail(&["x@example.org"], "x\n"), 0);
    assert_eq!(m.queued_ids().len(), 1);
}

#[test]
fn unwritable_spool_dir() {
    let m = survives("rospool", |m| {
        if is_root() {
            // Root ignores permissions: make the spool a read-only mount.
            let ok = Command::new("mount")
                .args(["--bind", "-o", "ro"])
                .arg(&m.spool)
                .arg(&m.spool)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                eprintln!("SKIP: cannot make a read-only bind mount here");
                return;
            }
            let out = m.sendmail(&["x@example.org"], "x\n");
            let _ = Command::new("umount").arg(&m.spool).status();
            let code = code(&out);
            assert!(code == 73 || code == 75, "exit {code}: {}", stderr(&out));
        } else {
            use std::os::unix::fs::PermissionsExt;
            let pool = m.spool.join("pool");
            fs::set_permissions(&pool, fs::Permissions::from_mode(0o500)).unwrap();
            let out = m.sendmail(&["x@example.org"], "x\n");
            fs::set_permissions(&pool, fs::Permissions::from_mode(0o700)).unwrap();
            expect_code(&out, 73);
        }
    });
    assert_eq!(m.queued_ids().len(), 2);
}

#[test]
fn full_disk_is_a_temporary_failure() {
    if !is_root() {
        eprintln!("SKIP: mounting a small tmpfs as the spool needs root (CI is root)");
        return;
    }
    let m = Mta::new("fulldisk");
    fs::create_dir_all(&m.spool).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"])
        .arg(&m.spool)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP: cannot mount a tmpfs here");
        return;
    }
    expect_code(&m.sendmail(&["one@example.org"], "Subject: 1\n\none\n"), 0);
    expect_code(&m.sendmail(&["two@example.org"], "Subject: 2\n\ntwo\n"), 0);
    let before = m.queued_ids();
    // Bigger than the free space: the body write fails.
    let big = format!("Subject: big\n\n{}", ("z".repeat(1023) + "\n").repeat(200));
    let out = m.sendmail(&["-i", "x@example.org"], &big);
    expect_code(&out, 75);
    assert_eq!(stderr(&out).lines().count(), 1);
    assert_eq!(m.queued_ids(), before);
    assert!(m.files("incoming").is_empty());
    assert_eq!(m.files("pool").len(), 2, "{:?}", m.files("pool"));
    // Fill the disk completely, then try a tiny message: the header file
    // or the body cannot be written; nothing half-written stays ready.
    let filler = m.spool.join("pool").join("filler");
    let _ = fs::write(&filler, vec![0u8; 128 * 1024]);
    let out = m.sendmail(&["x@example.org"], "tiny\n");
    expect_code(&out, 75);
    fs::remove_file(&filler).unwrap();
    assert_eq!(m.queued_ids(), before);
    m.assert_clean_spool();
    // Space is back: mail flows again.
    expect_code(&m.sendmail(&["x@example.org"], "after\n"), 0);
    assert_eq!(m.queued_ids().len(), 3);
}

#[test]
fn corrupt_spool_files_are_set_aside() {
    let m = survives("corrupt", |m| {
        expect_code(&m.sendmail(&["three@example.org"], "three\n"), 0);
        expect_code(&m.sendmail(&["four@example.org"], "four\n"), 0);
    });
    let ids = m.queued_ids();
    assert_eq!(ids.len(), 4);
    // Truncate one header file, garble another, drop a foreign file in.
    let out2 = m.spool.join("outgoing").join(&ids[2]);
    let text = fs::read(&out2).unwrap();
    fs::write(&out2, &text[..text.len() / 2]).unwrap();
    let out3 = m.spool.join("outgoing").join(&ids[3]);
    fs::write(&out3, b"\x00\x01garbage\xff\n").unwrap();
    fs::write(m.spool.join("outgoing").join("README"), "hello").unwrap();
    let q = m.mailq();
    assert!(q.contains(&format!("{}  corrupt (", ids[2])), "{q}");
    assert!(q.contains(&format!("{}  corrupt (", ids[3])), "{q}");
    assert!(q.contains("README  corrupt (not a message file)"), "{q}");
    assert_eq!(m.queued_ids()[..2], ids[..2]);
    let corrupt = m.files("corrupt");
    assert!(
        corrupt.contains(&format!("outgoing-{}", ids[2])),
        "{corrupt:?}"
    );
    assert!(corrupt.contains(&format!("pool-{}", ids[3])), "{corrupt:?}");
    assert!(
        corrupt.contains(&"outgoing-README".to_string()),
        "{corrupt:?}"
    );
    // Reported again, not listed as messages; the good ones stay.
    let q = m.mailq();
    assert!(q.contains("5 file(s) set aside in corrupt/"), "{q}");
    assert_eq!(m.queued_ids(), ids[..2]);
    // A body that went missing is caught as well.
    fs::remove_file(m.spool.join("pool").join(&ids[1])).unwrap();
    let q = m.mailq();
    assert!(
        q.contains(&format!(
            "{}  corrupt (body (pool file) is missing)",
            ids[1]
        )),
        "{q}"
    );
    assert_eq!(m.queued_ids(), ids[..1]);
}
