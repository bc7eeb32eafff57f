//! Test harness: runs the built binary the way users do, under its
//! multi-call names, against a spool and config in a fresh directory.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const BIN: &str = env!("CARGO_BIN_EXE_masqmail");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p =
            std::env::temp_dir().join(format!("masqmail-test-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.0.join("spool"))
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// One test installation: a config, a spool, and links named like the
/// commands masqmail stands in for.
pub struct Mta {
    pub dir: TempDir,
    pub conf: PathBuf,
    pub spool: PathBuf,
    pub bin: PathBuf,
}

pub const HOST: &str = "test.example";

impl Mta {
    /// A test config: run_as_user, spool in the temp dir, plus `extra`
    /// lines in the main section and `sections` after it.
    /// An installation whose config may use `@DIR@` for its own
    /// directory; local mail goes to `@DIR@/mail`, and DNS to
    /// `@DIR@/resolv.conf`, which names a port where nothing answers until
    /// a test writes its own.
    pub fn with_dir_config(tag: &str, extra: &str, sections: &str) -> Mta {
        let extra = format!(
            "\toption resolv_conf '@DIR@/resolv.conf'\n\toption mail_dir '@DIR@/mail'\n{extra}"
        );
        let m = Mta::with_config(tag, &extra, sections);
        let dir = m.dir.path().to_str().expect("utf-8 temp dir").to_string();
        let text = fs::read_to_string(&m.conf)
            .expect("config")
            .replace("@DIR@", &dir);
        fs::write(&m.conf, text).expect("write config");
        fs::create_dir_all(m.dir.path().join("mail")).expect("mail dir");
        fs::write(
            m.dir.path().join("resolv.conf"),
            "nameserver 127.0.0.1:9\noptions timeout:1 attempts:1\n",
        )
        .expect("resolv.conf");
        m
    }

    pub fn with_config(tag: &str, extra: &str, sections: &str) -> Mta {
        let dir = TempDir::new(tag);
        let spool = dir.path().join("spool");
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        for name in [
            "sendmail",
            "mailq",
            "runq",
            "rmail",
            "newaliases",
            "mailrm",
            "smtpd",
            "in.smtpd",
            "masqmail",
        ] {
            std::os::unix::fs::symlink(BIN, bin.join(name)).unwrap();
        }
        let conf = dir.path().join("masqmail.conf");
        let text = format!(
            "config masqmail 'main'\n\
             \toption run_as_user '1'\n\
             \toption host_name '{HOST}'\n\
             \toption spool_dir '{}'\n\
             \toption log_level '6'\n\
             {extra}\n{sections}\n",
            spool.display()
        );
        fs::write(&conf, text).unwrap();
        Mta {
            dir,
            conf,
            spool,
            bin,
        }
    }

    pub fn new(tag: &str) -> Mta {
        Mta::with_config(tag, "", "")
    }

    /// Run `name` (a multi-call link) with `-C conf` and `args`, feeding
    /// `stdin`.
    pub fn run(&self, name: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut full: Vec<&str> = vec!["-C", self.conf.to_str().unwrap()];
        full.extend_from_slice(args);
        self.run_raw(name, &full, stdin)
    }

    /// Run without adding `-C`.
    pub fn run_raw(&self, name: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(self.bin.join(name))
            .args(args)
            .env_remove("TZ")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn masqmail");
        {
            let mut si = child.stdin.take().unwrap();
            // The program may stop reading early (refused input): ignore EPIPE.
            let _ = si.write_all(stdin);
        }
        child.wait_with_output().expect("wait")
    }

    pub fn sendmail(&self, args: &[&str], msg: &str) -> Output {
        self.run("sendmail", args, msg.as_bytes())
    }

    pub fn mailq(&self) -> String {
        let out = self.run("mailq", &[], b"");
        assert_eq!(code(&out), 0, "mailq failed: {}", stderr(&out));
        stdout(&out)
    }

    /// IDs listed by mailq, in order.
    pub fn queued_ids(&self) -> Vec<String> {
        self.mailq()
            .lines()
            .filter(|l| !l.starts_with(' ') && l.len() > 15 && l.as_bytes()[10] == b'-')
            .filter(|l| !l[15..].starts_with("  corrupt"))
            .map(|l| l[..15].to_string())
            .collect()
    }

    pub fn files(&self, sub: &str) -> Vec<String> {
        dir_names(&self.spool.join(sub))
    }

    /// The body file of message `id` (pool/).
    pub fn body(&self, id: &str) -> Vec<u8> {
        fs::read(self.spool.join("pool").join(id)).unwrap()
    }

    pub fn outgoing(&self, id: &str) -> String {
        String::from_utf8_lossy(&fs::read(self.spool.join("outgoing").join(id)).unwrap())
            .into_owned()
    }

    /// Every header file in outgoing/ has its ready bit, and nothing is
    /// left in incoming/.
    pub fn assert_clean_spool(&self) {
        for f in self.files("outgoing") {
            let m = fs::metadata(self.spool.join("outgoing").join(&f)).unwrap();
            assert!(
                m.permissions().mode() & 0o100 != 0,
                "outgoing/{f} not ready"
            );
        }
        assert!(
            self.files("incoming").is_empty(),
            "incoming not empty: {:?}",
            self.files("incoming")
        );
    }
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert the exit code, showing stderr when it differs.
#[track_caller]
pub fn expect_code(o: &Output, want: i32) {
    assert_eq!(
        code(o),
        want,
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// The login name of the user the tests run as (looked up with the C
/// library, not with the program's own reader of /etc/passwd).
pub fn user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .expect("the test user has a passwd entry")
        .name
}

/// The names in a directory, sorted (none when it cannot be read).
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Child processes of `pid` with their state letter (`Z`: zombie).
pub fn children_of(pid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …; comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: i32 = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == pid {
            out.push((p, state));
        }
    }
    out
}

/// `masqmail daemon` with a config, quiet, started once its control
/// socket exists; stopped with SIGTERM (then SIGKILL after 5 s) when
/// dropped.
pub struct DaemonGuard(Child);

impl DaemonGuard {
    pub fn start(conf: &Path, spool: &Path) -> DaemonGuard {
        let child = Command::new(BIN)
            .args(["-C", conf.to_str().expect("utf-8"), "daemon"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start daemon");
        let d = DaemonGuard(child);
        let t = std::time::Instant::now();
        while !spool.join("control").exists() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "daemon did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        d
    }
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
