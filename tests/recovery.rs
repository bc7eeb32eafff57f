//! Startup recovery: every crash state of queue-in and scanning
//! (doc/INTERNALS.md) is brought back to a clean spool, idempotently, and
//! files whose writer is alive (locked) are left alone.

mod common;

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// `runq` recovers and scans; delivery is a later part, so only the spool
/// is checked here.
fn recover(m: &Mta) {
    let out = m.run("runq", &[], b"");
    assert!(out.status.code().is_some(), "runq died: {:?}", out.status);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

fn set_mode(p: &std::path::Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn every_crash_state_recovers() {
    let m = Mta::new("recover");
    for i in 0..5 {
        expect_code(
            &m.sendmail(
                &[&format!("r{i}@example.org")],
                &format!("Subject: {i}\n\n{i}\n"),
            ),
            0,
        );
    }
    let ids = m.queued_ids();
    let (inc, out) = (m.spool.join("incoming"), m.spool.join("outgoing"));
    // S1: a body without a header file (writer died): never acknowledged.
    fs::remove_file(out.join(&ids[0])).unwrap();
    // S2: incoming not ready: never acknowledged.
    fs::rename(out.join(&ids[1]), inc.join(&ids[1])).unwrap();
    set_mode(&inc.join(&ids[1]), 0o600);
    // S4: outgoing half written, incoming ready: scan again.
    fs::copy(out.join(&ids[2]), inc.join(&ids[2])).unwrap();
    set_mode(&out.join(&ids[2]), 0o600);
    // S5: both ready: incoming is the leftover.
    fs::copy(out.join(&ids[3]), inc.join(&ids[3])).unwrap();
    set_mode(&inc.join(&ids[3]), 0o700);
    // ids[4] is untouched.
    recover(&m);
    assert_eq!(m.files("pool"), ids[2..].to_vec());
    assert_eq!(m.files("outgoing"), ids[2..].to_vec());
    m.assert_clean_spool();
    assert_eq!(m.queued_ids(), ids[2..].to_vec());
    // Idempotent.
    recover(&m);
    assert_eq!(m.queued_ids(), ids[2..].to_vec());
    assert!(m.files("corrupt").is_empty());
}

#[test]
fn live_writers_are_left_alone() {
    let m = Mta::new("locked");
    expect_code(&m.sendmail(&["a@example.org"], "a\n"), 0);
    let id = m.queued_ids()[0].clone();
    // A message being written right now: its pool file is locked, and its
    // incoming file not ready yet.
    let out = m.spool.join("outgoing").join(&id);
    let inc = m.spool.join("incoming").join(&id);
    fs::rename(&out, &inc).unwrap();
    set_mode(&inc, 0o600);
    let pool = File::open(m.spool.join("pool").join(&id)).unwrap();
    let lock = nix::fcntl::Flock::lock(pool, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    recover(&m);
    assert_eq!(m.files("incoming"), std::slice::from_ref(&id));
    assert_eq!(m.files("pool"), std::slice::from_ref(&id));
    drop(lock);
    recover(&m);
    assert!(m.files("incoming").is_empty());
    assert!(m.files("pool").is_empty());
}

#[test]
fn killed_sendmail_leaves_nothing_ready() {
    let m = Mta::new("kill9");
    expect_code(&m.sendmail(&["keep@example.org"], "keep\n"), 0);
    let mut child = Command::new(m.bin.join("sendmail"))
        .args(["-C", m.conf.to_str().unwrap(), "-i", "x@example.org"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"Subject: half\n\n").unwrap();
    // 100 KB in lines: one 100 KB line is over max_line_length, and
    // sendmail could refuse it (and clean up) before the kill below.
    let body = format!("{}\n", "x".repeat(99)).repeat(1000);
    stdin.write_all(body.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // Wait until its body file exists, then kill it mid-message.
    for _ in 0..200 {
        if m.files("pool").len() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(m.files("pool").len(), 2, "sendmail never started writing");
    child.kill().unwrap();
    let _ = child.wait();
    drop(stdin);
    assert_eq!(m.queued_ids().len(), 1, "a killed submission is listed");
    recover(&m);
    assert_eq!(m.files("pool").len(), 1);
    assert_eq!(m.queued_ids().len(), 1);
}

#[test]
fn foreign_files_are_moved_aside() {
    let m = Mta::new("foreign");
    expect_code(&m.sendmail(&["a@example.org"], "a\n"), 0);
    fs::write(m.spool.join("incoming").join("core"), "x").unwrap();
    fs::write(m.spool.join("pool").join("notes.txt"), "x").unwrap();
    recover(&m);
    let c = m.files("corrupt");
    assert_eq!(c, ["incoming-core", "pool-notes.txt"]);
    assert_eq!(m.queued_ids().len(), 1);
}

/// The ready bit is set before the one fsync of a header file, so after a
/// power cut a ready file may be cut short, zeros, or blocks of an older
/// file. Such a file was never acknowledged (its writer did not get past
/// the fsync): recovery takes it for a file without the bit. Files of
/// earlier versions (a bare `EN:` end line) count as whole.
#[test]
fn ready_files_that_are_not_whole_count_as_not_ready() {
    let m = Mta::new("notwhole");
    for i in 0..7 {
        expect_code(
            &m.sendmail(
                &[&format!("w{i}@example.org")],
                &format!("Subject: {i}\n\n{i}\n"),
            ),
            0,
        );
    }
    let ids = m.queued_ids();
    let (inc, out) = (m.spool.join("incoming"), m.spool.join("outgoing"));
    let whole = |id: &str| fs::read(out.join(id)).unwrap();
    let put = |p: &std::path::Path, data: &[u8]| {
        fs::write(p, data).unwrap();
        set_mode(p, 0o700);
    };
    for id in &ids {
        let text = String::from_utf8(whole(id)).unwrap();
        let end = text.trim_end().rsplit('\n').next().unwrap();
        assert!(
            end.starts_with(&format!("EN:{id} ")),
            "outgoing/{id} is not sealed"
        );
    }
    // S2, cut short: incoming ready, half of it on disk.
    let data = whole(&ids[0]);
    fs::remove_file(out.join(&ids[0])).unwrap();
    put(&inc.join(&ids[0]), &data[..data.len() / 2]);
    // S2, zeros: the size reached the disk, the blocks did not.
    let data = whole(&ids[1]);
    fs::remove_file(out.join(&ids[1])).unwrap();
    put(&inc.join(&ids[1]), &vec![0u8; data.len()]);
    // S2, stale blocks: another message's whole file under this name.
    fs::remove_file(out.join(&ids[2])).unwrap();
    put(&inc.join(&ids[2]), &whole(&ids[6]));
    // S4: incoming whole, outgoing ready but cut short: scanned again.
    let data = whole(&ids[3]);
    put(&inc.join(&ids[3]), &data);
    fs::write(out.join(&ids[3]), &data[..data.len() - 5]).unwrap();
    // An earlier version's files: a bare end line, in both directories.
    let legacy = |data: Vec<u8>| {
        let s = String::from_utf8(data).unwrap();
        let cut = s.rfind("EN:").unwrap();
        format!("{}EN:\n", &s[..cut]).into_bytes()
    };
    put(&out.join(&ids[4]), &legacy(whole(&ids[4])));
    let data = legacy(whole(&ids[5]));
    fs::remove_file(out.join(&ids[5])).unwrap();
    put(&inc.join(&ids[5]), &data);
    recover(&m);
    assert_eq!(m.files("pool"), ids[3..].to_vec());
    assert_eq!(m.files("outgoing"), ids[3..].to_vec());
    m.assert_clean_spool();
    assert_eq!(m.queued_ids(), ids[3..].to_vec());
    assert!(m.files("corrupt").is_empty(), "{:?}", m.files("corrupt"));
    // Scanned again from incoming/: whole and sealed now.
    let again = String::from_utf8(whole(&ids[3])).unwrap();
    assert!(again.contains(&format!("\nEN:{} ", ids[3])), "{again}");
    assert!(String::from_utf8(whole(&ids[4]))
        .unwrap()
        .ends_with("\nEN:\n"));
    recover(&m);
    assert_eq!(m.queued_ids(), ids[3..].to_vec());
}
