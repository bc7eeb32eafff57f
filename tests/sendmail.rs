//! The sendmail command, end to end: a message on stdin, the spool on
//! disk, mailq's listing.

mod common;

use std::fs;
use std::process::Command;

use common::*;

const MSG: &str = "To: a@example.org\nBcc: b@example.org\nSubject: t\n\nhi\n";

#[test]
fn queues_with_fixed_headers_and_both_recipients() {
    let m = Mta::new("basic");
    let out = m.run("masqmail", &["-t", "-i"], MSG.as_bytes());
    expect_code(&out, 0);
    assert!(out.stderr.is_empty(), "sendmail printed: {}", stderr(&out));
    let ids = m.queued_ids();
    assert_eq!(ids.len(), 1);
    let q = m.mailq();
    assert!(q.contains("\n        a@example.org\n"), "{q}");
    assert!(q.contains("\n        b@example.org\n"), "{q}");
    let first = q.lines().next().unwrap();
    assert!(
        first.starts_with(&ids[0]) && first.contains(&format!("@{HOST}>")),
        "{first}"
    );
    let hf = m.outgoing(&ids[0]);
    for field in [
        "HD:Message-ID: <",
        "HD:Date: ",
        "HD:From: ",
        "HD:Received: from ",
    ] {
        assert!(hf.contains(field), "{field} missing in\n{hf}");
    }
    assert!(
        !hf.to_ascii_lowercase().contains("hd:bcc"),
        "Bcc kept:\n{hf}"
    );
    assert!(
        hf.contains(&format!("id {}", ids[0])),
        "Received lacks the ID:\n{hf}"
    );
    assert_eq!(m.body(&ids[0]), b"hi\n");
    m.assert_clean_spool();
}

/// The Date: header in the zone of `TZ`: a POSIX rule, or a zone file
/// (here one with no transitions and the rule "<-03>3" in its footer).
#[test]
fn date_header_in_the_zone_of_tz() {
    let m = Mta::new("tz");
    let mut zone = b"TZif2".to_vec();
    zone.extend([0; 15]);
    zone.extend(
        [0, 0, 0, 0, 0, 1]
            .iter()
            .flat_map(|c: &u32| c.to_be_bytes()),
    );
    zone.push(0);
    zone.extend(b"TZif2");
    zone.extend([0; 15]);
    zone.extend(
        [0, 0, 0, 0, 1, 4]
            .iter()
            .flat_map(|c: &u32| c.to_be_bytes()),
    );
    zone.extend((-3 * 3600i32).to_be_bytes());
    zone.extend(b"\0\0-03\0\n<-03>3\n");
    let file = m.dir.path().join("zone");
    fs::write(&file, zone).unwrap();
    for (tz, offset) in [
        ("<+0530>-5:30".to_string(), " +0530"),
        (format!(":{}", file.display()), " -0300"),
        ("".to_string(), " +0000"),
    ] {
        let out = Command::new(m.bin.join("sendmail"))
            .args(["-C", m.conf.to_str().unwrap(), "-t"])
            .env("TZ", &tz)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(MSG.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        expect_code(&out, 0);
        let ids = m.queued_ids();
        let hf = m.outgoing(ids.last().unwrap());
        let date = hf.lines().find(|l| l.starts_with("HD:Date: ")).unwrap();
        assert!(date.ends_with(offset), "TZ={tz}: {date}");
        expect_code(&m.run("masqmail", &["-Mrm", ids.last().unwrap()], b""), 0);
    }
}

/// Started with stdout and stderr closed, the program has /dev/null on
/// descriptors 1 and 2 (as std's start-up would give it), so nothing it
/// prints (here -v's log lines) can land in a file it opened.
#[test]
fn closed_stdout_and_stderr() {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let m = Mta::new("closedfds");
    let mut cmd = Command::new(m.bin.join("sendmail"));
    cmd.args(["-C", m.conf.to_str().unwrap(), "-t", "-v"])
        .stdin(std::process::Stdio::piped());
    // SAFETY: close(2) only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(1);
            libc::close(2);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Half a message: the program is running and reading.
    stdin.write_all(b"To: a@example.org\n").unwrap();
    let fd = |n: u32| fs::read_link(format!("/proc/{}/fd/{n}", child.id())).ok();
    let dev_null = Some(std::path::PathBuf::from("/dev/null"));
    let mut seen = (None, None);
    for _ in 0..500 {
        seen = (fd(1), fd(2));
        if seen == (dev_null.clone(), dev_null.clone()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(seen, (dev_null.clone(), dev_null), "descriptors 1 and 2");
    stdin.write_all(b"Subject: t\n\nhi\n").unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let ids = m.queued_ids();
    assert_eq!(ids.len(), 1);
    assert_eq!(m.body(&ids[0]), b"hi\n");
    m.assert_clean_spool();
}

/// A closed pipe on stdout is an error the program reports, not a SIGPIPE
/// that kills it (std's start-up ignored SIGPIPE; main.rs does it now).
#[test]
fn stdout_into_a_closed_pipe() {
    use std::os::unix::process::ExitStatusExt;
    let m = Mta::new("epipe");
    for _ in 0..3 {
        expect_code(&m.sendmail(&["-t"], MSG), 0);
    }
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let status = Command::new(m.bin.join("mailq"))
        .args(["-C", m.conf.to_str().unwrap()])
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.signal(), None, "{status}");
    assert_ne!(status.code(), Some(0), "mailq wrote into a closed pipe");
}

#[test]
fn spool_modes_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let m = Mta::new("modes");
    expect_code(&m.sendmail(&["-t"], MSG), 0);
    let id = &m.queued_ids()[0];
    for (p, want) in [
        (m.spool.join("pool"), 0o700),
        (m.spool.join("outgoing"), 0o700),
        (m.spool.join("pool").join(id), 0o600),
        (m.spool.join("outgoing").join(id), 0o700),
    ] {
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, want, "{}", p.display());
    }
}

/// DESIGN §9: bytes written to the spool ≤ message + 1 KiB, counted from
/// the write system calls on files in the spool.
#[test]
fn spool_bytes_within_budget() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("SKIP: strace is not installed (CI installs it)");
        return;
    }
    let m = Mta::new("bytes");
    let trace = m.dir.path().join("trace");
    let out = Command::new("strace")
        .args(["-f", "-y", "-qq", "-e", "trace=write,writev,pwrite64", "-o"])
        .arg(&trace)
        .arg(m.bin.join("sendmail"))
        .args(["-C", m.conf.to_str().unwrap(), "-t", "-i"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(MSG.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    expect_code(&out, 0);
    let spool = m.spool.to_str().unwrap().to_string();
    let mut written = 0usize;
    for line in fs::read_to_string(&trace).unwrap().lines() {
        if line.contains(&format!("<{spool}/")) {
            let n: usize = line
                .rsplit("= ")
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap_or(0);
            written += n;
        }
    }
    assert!(written > 0, "no spool writes seen in the trace");
    eprintln!(
        "{written} bytes written to the spool for a {}-byte message",
        MSG.len()
    );
    assert!(
        written <= MSG.len() + 1024,
        "{written} bytes written for a {}-byte message",
        MSG.len()
    );
}

#[test]
fn dot_line_ends_input_without_i() {
    let m = Mta::new("dot");
    let msg = "Subject: dots\n\n.leading dot kept\n..two\n.\nnot part of the message\n";
    expect_code(&m.sendmail(&["bob@example.org"], msg), 0);
    let id = &m.queued_ids()[0];
    assert_eq!(
        fs::read_to_string(m.spool.join("pool").join(id)).unwrap(),
        ".leading dot kept\n..two\n"
    );
    // With -i the dot is data.
    expect_code(&m.sendmail(&["-oi", "bob@example.org"], msg), 0);
    let id = &m.queued_ids()[1];
    assert_eq!(
        fs::read_to_string(m.spool.join("pool").join(id)).unwrap(),
        ".leading dot kept\n..two\n.\nnot part of the message\n"
    );
}

#[test]
fn crlf_and_eight_bit_are_kept_consistently() {
    let m = Mta::new("crlf");
    let msg = b"Subject: Gr\xfc\xdfe\r\n\r\nline one\r\nbare\rcr\r\n\xe4\xf6\xfc";
    expect_code(&m.run("sendmail", &["-i", "x@example.org"], msg), 0);
    let id = &m.queued_ids()[0];
    assert_eq!(m.body(id), b"line one\nbare\rcr\n\xe4\xf6\xfc\n");
    let hf = fs::read(m.spool.join("outgoing").join(id)).unwrap();
    assert!(hf.windows(17).any(|w| w == b"HD:Subject: Gr\xfc\xdfe"));
}

#[test]
fn combined_flags_and_from_name() {
    let m = Mta::new("flags");
    let out = m.sendmail(
        &[
            "-ti",
            "-F",
            "Cron Daemon",
            "-f",
            "cron@router.lan",
            "-odq",
            "-oem",
        ],
        "To: r@example.org\n\nx\n",
    );
    expect_code(&out, 0);
    let id = &m.queued_ids()[0];
    let hf = m.outgoing(id);
    assert!(hf.contains("MF:<cron@router.lan>"), "{hf}");
    assert!(
        hf.contains("HD:From: Cron Daemon <cron@router.lan>"),
        "{hf}"
    );
}

#[test]
fn argument_recipients_are_added_to_header_ones_with_t() {
    let m = Mta::new("targs");
    expect_code(
        &m.sendmail(
            &["-t", "extra@example.org"],
            "To: a@example.org\nCc: C <c@example.org>, a@example.org\n\nx\n",
        ),
        0,
    );
    let q = m.mailq();
    for r in ["extra@example.org", "a@example.org", "c@example.org"] {
        assert_eq!(
            q.matches(&format!("        {r}\n")).count(),
            1,
            "{r} in {q}"
        );
    }
}

#[test]
fn null_sender_only_with_angle_brackets() {
    let m = Mta::new("null");
    let out = m.sendmail(&["-f", "", "x@example.org"], "x\n");
    expect_code(&out, 64);
    assert!(stderr(&out).contains("-f '<>'"), "{}", stderr(&out));
    expect_code(&m.sendmail(&["-f", "<>", "x@example.org"], "x\n"), 0);
    let id = &m.queued_ids()[0];
    let hf = m.outgoing(id);
    assert!(hf.contains("MF:<>\n"), "{hf}");
    assert!(
        hf.lines()
            .any(|l| l.starts_with("HD:From: ") && l.contains("MAILER-DAEMON@test.example")),
        "{hf}"
    );
}

#[test]
fn rmail_takes_sender_from_from_line() {
    let m = Mta::new("rmail");
    let out = m.run(
        "rmail",
        &["-C", m.conf.to_str().unwrap(), "r@example.org"],
        b"From uucp!far!carol Mon Jan  1 00:00:00 2024\nSubject: s\n\nbody\n.\nmore\n",
    );
    expect_code(&out, 0);
    let id = &m.queued_ids()[0];
    assert!(m.outgoing(id).contains("MF:<carol@far>"));
    assert_eq!(
        fs::read_to_string(m.spool.join("pool").join(id)).unwrap(),
        "body\n.\nmore\n"
    );
}

#[test]
fn parallel_submissions_get_unique_ids() {
    let m = Mta::new("parallel");
    let children: Vec<_> = (0..20)
        .map(|i| {
            let mut c = Command::new(m.bin.join("sendmail"))
                .args(["-C", m.conf.to_str().unwrap(), "-i", "p@example.org"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("Subject: {i}\n\n{i}\n").as_bytes())
                .unwrap();
            c
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let ids = m.queued_ids();
    assert_eq!(ids.len(), 20);
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 20);
    m.assert_clean_spool();
}

#[test]
fn mailrm_and_queue_rm_remove_messages() {
    let m = Mta::new("rm");
    for _ in 0..3 {
        expect_code(&m.sendmail(&["x@example.org"], "x\n"), 0);
    }
    let ids = m.queued_ids();
    let out = m.run("sendmail", &["-Mrm", &ids[0]], b"");
    expect_code(&out, 0);
    assert_eq!(stdout(&out), format!("{}: removed\n", ids[0]));
    expect_code(&m.run("mailrm", &[&ids[1]], b""), 0);
    expect_code(&m.run("masqmail", &["queue", "rm", &ids[2]], b""), 0);
    assert_eq!(m.mailq(), "Mail queue is empty\n");
    assert!(m.files("pool").is_empty());
    // Unknown and malformed IDs.
    let out = m.run("mailrm", &[&ids[0]], b"");
    expect_code(&out, 69);
    expect_code(&m.run("mailrm", &["../../etc/passwd"], b""), 64);
}

#[test]
fn queue_json_lists_messages() {
    let m = Mta::new("json");
    expect_code(&m.sendmail(&["-t"], MSG), 0);
    let out = m.run("masqmail", &["queue", "--json"], b"");
    expect_code(&out, 0);
    let j = stdout(&out);
    assert!(j.starts_with("{\"messages\":[{\"id\":\""), "{j}");
    assert!(
        j.contains("\"address\":\"b@example.org\",\"original\":null,\"state\":\"pending\""),
        "{j}"
    );
    let out = Mta::new("json-empty").run("masqmail", &["queue", "--json"], b"");
    assert_eq!(
        stdout(&out),
        "{\"messages\":[],\"problems\":[],\"corrupt\":[],\"routes\":[],\"unroutable\":0,\"daemon\":false}\n"
    );
}

#[test]
fn version_and_help() {
    let m = Mta::new("help");
    let out = m.run_raw("masqmail", &["version"], b"");
    expect_code(&out, 0);
    assert!(stdout(&out).starts_with("masqmail "));
    let out = m.run_raw("sendmail", &["-bV"], b"");
    expect_code(&out, 0);
    for args in [&["--help"][..], &["help"][..]] {
        let out = m.run_raw("masqmail", args, b"");
        expect_code(&out, 0);
        let h = stdout(&out);
        for word in [
            "queue", "config", "version", "-bp", "-Mrm", "mailq", "runq", "sysexits",
        ] {
            assert!(h.contains(word), "help lacks {word}:\n{h}");
        }
    }
    expect_code(&m.run_raw("masqmail", &["-Z"], b""), 64);
}
