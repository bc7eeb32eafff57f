//! Local delivery end to end: mbox (From_ line, `>From ` quoting, the
//! fcntl lock and the dot lock another program may hold), maildir, an MDA
//! and its exit codes, `|command` aliases. The mailbox owner is the user
//! running the tests (test mode: `run_as_user`).

mod common;
#[path = "common/sink.rs"]
mod sink;

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use sink::{Behaviour, Sink};

fn mta(tag: &str, extra: &str, sections: &str) -> Mta {
    Mta::with_dir_config(tag, extra, sections)
}

fn send(m: &Mta, to: &str, msg: &str) {
    expect_code(&m.sendmail(&["-f", "bob@remote.example", to], msg), 0);
}

fn runq(m: &Mta) -> Duration {
    let t = Instant::now();
    let out = m.run("runq", &[], b"");
    expect_code(&out, 0);
    t.elapsed()
}

fn mbox(m: &Mta) -> String {
    fs::read_to_string(m.dir.path().join("mail").join(user())).unwrap_or_default()
}

#[test]
fn mbox_from_lines_and_quoting() {
    let m = mta("mbox", "", "");
    let rcpt = format!("{}@{HOST}", user());
    send(
        &m,
        &rcpt,
        "Subject: one\n\nFrom me\n>From you\n>>From them\nFromage\n From indented\n",
    );
    send(&m, &rcpt, "Subject: two\n\nsecond\n");
    runq(&m);
    let b = mbox(&m);
    let msgs: Vec<&str> = b.split("\nFrom bob@remote.example ").collect();
    assert_eq!(msgs.len(), 2, "{b}");
    assert!(b.starts_with("From bob@remote.example "), "{b}");
    assert!(b.contains("\nReturn-Path: <bob@remote.example>\n"), "{b}");
    // the split ate the newline of the empty line between the messages
    assert!(
        msgs[0].ends_with("\n\n>From me\n>>From you\n>>>From them\nFromage\n From indented\n"),
        "{b}"
    );
    assert!(
        b.contains(" From indented\n\nFrom bob@remote.example "),
        "{b}"
    );
    assert!(msgs[1].contains("Subject: two\n"), "{b}");
    assert!(b.ends_with("\n\nsecond\n\n"), "{b}");
    assert_eq!(m.mailq(), "Mail queue is empty\n");
    // no lock file left behind
    assert!(!m
        .dir
        .path()
        .join("mail")
        .join(format!("{}.lock", user()))
        .exists());
}

/// Hold an fcntl write lock on `f` (in this process) until dropped.
struct FcntlLock {
    _file: File,
}

impl FcntlLock {
    fn take(f: File) -> FcntlLock {
        // SAFETY: an all-zero flock is valid; fd is open.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as _;
        fl.l_whence = libc::SEEK_SET as _;
        let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) };
        assert_eq!(r, 0, "fcntl lock: {}", std::io::Error::last_os_error());
        FcntlLock { _file: f }
    }
}

#[test]
fn mbox_waits_for_a_reader_holding_the_fcntl_lock() {
    let m = mta("fcntl", "", "");
    let rcpt = format!("{}@{HOST}", user());
    let path = m.dir.path().join("mail").join(user());
    fs::write(&path, "").unwrap();
    let lock = FcntlLock::take(
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap(),
    );
    send(&m, &rcpt, "Subject: locked\n\nwait for it\n");
    let took = runq(&m);
    assert!(took >= Duration::from_secs(4), "gave up after {took:?}");
    assert_eq!(mbox(&m), "", "written under the lock");
    let q = m.mailq();
    assert!(
        q.contains("last error: mailbox") && q.contains("is locked"),
        "{q}"
    );
    drop(lock);
    runq(&m);
    assert!(mbox(&m).contains("\n\nwait for it\n\n"));
    assert_eq!(m.mailq(), "Mail queue is empty\n");
}

#[test]
fn mbox_waits_for_a_dot_lock_and_breaks_a_stale_one() {
    let m = mta("dotlock", "", "");
    let rcpt = format!("{}@{HOST}", user());
    let lockf = m.dir.path().join("mail").join(format!("{}.lock", user()));
    fs::write(&lockf, "").unwrap();
    send(&m, &rcpt, "Subject: dot\n\nfirst\n");
    runq(&m);
    assert_eq!(mbox(&m), "");
    assert!(m.mailq().contains("is locked"));
    assert!(lockf.exists(), "someone else's lock was removed");
    // The holder died long ago: a lock older than 5 minutes is stale.
    let old = SystemTime::now() - Duration::from_secs(600);
    File::options()
        .write(true)
        .open(&lockf)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let took = runq(&m);
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert!(mbox(&m).contains("\n\nfirst\n\n"));
    assert!(!lockf.exists());
}

#[test]
fn maildir_delivery() {
    let m = mta("maildir", "\toption local_delivery 'maildir'\n", "");
    let rcpt = format!("{}@{HOST}", user());
    send(&m, &rcpt, "Subject: md\n\nFrom here\n");
    send(&m, &rcpt, "Subject: md2\n\nsecond\n");
    runq(&m);
    let root = m.dir.path().join("mail").join(user());
    let new: Vec<_> = fs::read_dir(root.join("new")).unwrap().flatten().collect();
    assert_eq!(new.len(), 2);
    assert!(fs::read_dir(root.join("tmp")).unwrap().next().is_none());
    assert!(root.join("cur").is_dir());
    let all: String = new
        .iter()
        .map(|e| fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(all.contains("Return-Path: <bob@remote.example>\n"), "{all}");
    // no From_ line, no quoting in a maildir
    assert!(all.contains("\n\nFrom here\n"), "{all}");
    assert!(!all.starts_with("From "), "{all}");
    assert_eq!(m.mailq(), "Mail queue is empty\n");
}

#[test]
fn mda_substitutions_and_exit_codes() {
    let sink = Sink::start(Behaviour::default());
    let m = mta(
        "mda",
        "\toption local_delivery 'mda'\n\
         \toption mda '/bin/sh @DIR@/mda.sh %{rcpt} %{user} %{sender} %{id}'\n",
        &format!(
            "config route 'out'\n\toption permanent '1'\n\toption tls 'none'\n\
             \toption mail_host '127.0.0.1:{}'\n",
            sink.port
        ),
    );
    let dir = m.dir.path();
    fs::write(
        dir.join("mda.sh"),
        format!(
            "printf '%s|' \"$@\" > {d}/mda.args\ncat > {d}/mda.msg\nexit $(cat {d}/mda.exit)\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let rcpt = format!("{}@{HOST}", user());
    // 75: try again later
    fs::write(dir.join("mda.exit"), "75").unwrap();
    send(&m, &rcpt, "Subject: mda\n\nvia the MDA\n");
    runq(&m);
    let id = m.queued_ids().pop().expect("still queued");
    let q = m.mailq();
    assert!(q.contains("exited 75"), "{q}");
    assert!(sink.messages().is_empty());
    // 0: delivered, with every substitution a whole argument
    fs::write(dir.join("mda.exit"), "0").unwrap();
    runq(&m);
    assert_eq!(m.mailq(), "Mail queue is empty\n");
    assert_eq!(
        fs::read_to_string(dir.join("mda.args")).unwrap(),
        format!("{rcpt}|{}|bob@remote.example|{id}|", user())
    );
    let msg = fs::read_to_string(dir.join("mda.msg")).unwrap();
    assert!(
        msg.starts_with("Return-Path: <bob@remote.example>\n"),
        "{msg}"
    );
    assert!(msg.ends_with("\n\nvia the MDA\n"), "{msg}");
    // 67 (no such user): bounced to the sender, through the route
    fs::write(dir.join("mda.exit"), "67").unwrap();
    send(&m, &rcpt, "Subject: mda 2\n\nagain\n");
    runq(&m);
    assert_eq!(m.mailq(), "Mail queue is empty\n");
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpts, ["bob@remote.example"]);
    assert!(got[0].data.contains("exited 67"), "{}", got[0].data);
}

#[test]
fn unknown_local_user_bounces() {
    let sink = Sink::start(Behaviour::default());
    let m = mta(
        "nouser",
        "",
        &format!(
            "config route 'out'\n\toption permanent '1'\n\toption tls 'none'\n\
             \toption mail_host '127.0.0.1:{}'\n",
            sink.port
        ),
    );
    // -odq: queue only, so the unknown user is found by the queue run
    expect_code(
        &m.sendmail(
            &[
                "-odq",
                "-f",
                "bob@remote.example",
                &format!("no-such-user-xyz@{HOST}"),
            ],
            "Subject: nobody\n\nx\n",
        ),
        0,
    );
    runq(&m);
    let got = sink.messages();
    assert_eq!(got.len(), 1, "{}", m.mailq());
    assert!(got[0].data.contains("Status: 5.1.1"), "{}", got[0].data);
}

#[test]
fn command_alias_gets_the_message() {
    let m = mta(
        "cmdalias",
        "",
        "config alias\n\toption name 'archive'\n\
         \tlist to '|/bin/sh -c \"cat > @DIR@/archive.out\"'\n",
    );
    send(&m, &format!("archive@{HOST}"), "Subject: keep\n\nkeep me\n");
    runq(&m);
    let out = fs::read_to_string(m.dir.path().join("archive.out")).expect("archive");
    assert!(
        out.starts_with("Return-Path: <bob@remote.example>\n"),
        "{out}"
    );
    assert!(out.ends_with("\n\nkeep me\n"), "{out}");
    assert_eq!(m.mailq(), "Mail queue is empty\n");
}

/// Unmounts a directory when dropped (also when the test panics).
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A full disk in the middle of an mbox append: the mailbox is cut back
/// to where it was (no half message for the reader), the recipient is
/// deferred, and it is delivered once there is room.
#[test]
fn full_disk_leaves_the_mbox_as_it_was() {
    if !is_root() {
        eprintln!("SKIP: mounting a small tmpfs as mail_dir needs root (CI is root)");
        return;
    }
    let m = mta("mboxfull", "", "");
    let mail = m.dir.path().join("mail");
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mail)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP: cannot mount a tmpfs here");
        return;
    }
    let _guard = Mounted(mail.clone());
    let rcpt = format!("{}@{HOST}", user());
    send(&m, &rcpt, "Subject: small\n\nfits\n");
    runq(&m);
    let before = mbox(&m);
    assert!(before.contains("\n\nfits\n\n"));
    let filler = mail.join("filler");
    let _ = fs::write(&filler, vec![0u8; 40 * 1024]);
    let big = format!("Subject: big\n\n{}", ("y".repeat(99) + "\n").repeat(300));
    send(&m, &rcpt, &big);
    runq(&m);
    assert_eq!(mbox(&m), before, "a partial message was left in the mbox");
    let q = m.mailq();
    assert!(q.contains("disk full"), "{q}");
    fs::remove_file(&filler).unwrap();
    runq(&m);
    assert_eq!(m.mailq(), "Mail queue is empty\n");
    let after = mbox(&m);
    assert!(after.starts_with(&before) && after.ends_with(&format!("{}\n\n", "y".repeat(99))));
}
