//! spawn — run another program: fork and exec, its pipes read and
//! written with poll(2), a wait with a deadline. What this program used
//! std::process::Command and a thread per pipe for, without either (they
//! cost the router binary some 25 KB).
//!
//! DESCRIPTION
//!   [`Spawn`] says what to run: the program (a path, or a name looked up
//!   in the child's PATH as execvp(3) does), its arguments, its
//!   environment (ours, or only what [`Spawn::env`] gives), its directory
//!   and user, and what its stdin, stdout and stderr are ([`Stdio`]).
//!   [`Spawn::spawn`] starts it and returns a [`Child`] holding our ends
//!   of its pipes. A child dropped before it was waited for is killed and
//!   reaped: no zombies, no strays.
//!
//!   [`Drain`] reads one of the child's output pipes without blocking,
//!   keeps the first bytes and reads and drops the rest, so that the child
//!   never stops on a full pipe; [`Drain::finish`] reads it to its end and
//!   waits for the child, both before a deadline. [`Feed`] writes the
//!   child's stdin and drains its output in the same poll(2), so a child
//!   that writes much to stderr before it reads cannot deadlock with us.
//!
//!   [`Child::wait_until`] waits with a deadline: poll(2) on a pidfd
//!   (Linux 5.3 and later), else naps of 20 ms between waitpid(WNOHANG).
//!
//! SECURITY
//!   Nothing runs through a shell. Everything the child needs (argv,
//!   envp, the paths a PATH search tries) is made before fork(2) (an
//!   inherited environment is the C library's `environ`); between
//!   fork and exec the child makes only async-signal-safe calls
//!   (sigprocmask, signal, dup2, fcntl, chdir, setgroups, setgid, setuid,
//!   execve, write, _exit) and allocates nothing: the test harness forks
//!   from one of several threads. The child starts with an empty signal
//!   mask (the daemon blocks SIGCHLD, SIGTERM, SIGHUP, … for its
//!   signalfd) and SIGPIPE at its default (Rust's runtime ignores it
//!   here); exec itself resets the handlers. It gets descriptors 0, 1 and
//!   2 only: everything else this program opens is close-on-exec (std
//!   opens all its files, pipes and sockets so; our nix calls pass
//!   O_CLOEXEC or SOCK_CLOEXEC). Descriptors 0–2 are always open (std's
//!   start-up opens /dev/null on any that is closed), so a pipe never
//!   lands on them. With a user, the child drops its supplementary groups
//!   (when root) and takes the gid, then the uid; a failure of either is
//!   an error, never a child that runs as root.
//!
//! DIAGNOSTICS
//!   A child that cannot be started (no such program, not executable, a
//!   failed setuid) writes the errno to a close-on-exec pipe and exits
//!   127; spawn reaps it and returns a [`SpawnError`] that prints as
//!   strerror(3) does: "No such file or directory".

use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::raw::{c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::ptr;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::SigSet;
use nix::unistd::{fork, pipe2, ForkResult};

extern "C" {
    /// The process's environment (POSIX), what execvp(3) passes on.
    static environ: *const *const c_char;
}

/// The PATH of commands run with a cleared environment, and of a PATH
/// search when the environment has none.
pub const DEFAULT_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Between two waitpid(WNOHANG) when there is no pidfd to poll.
const NAP: Duration = Duration::from_millis(20);

/// What one of the child's stdin, stdout and stderr is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdio {
    /// Ours.
    Inherit,
    /// /dev/null.
    Null,
    /// A pipe; our end is in the [`Child`].
    Piped,
}

/// Why a program could not be started: the errno of the step that failed
/// (exec, setuid, chdir in the child; pipe, fork here). EINVAL: a NUL
/// byte in an argument or variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpawnError(pub Errno);

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&super::errno_text(self.0))
    }
}

impl From<Errno> for SpawnError {
    fn from(e: Errno) -> SpawnError {
        SpawnError(e)
    }
}

impl From<io::Error> for SpawnError {
    fn from(e: io::Error) -> SpawnError {
        SpawnError(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
    }
}

/// A program to run, and how.
pub struct Spawn {
    prog: CString,
    argv: Vec<CString>,
    /// `NAME=value`; None: ours.
    env: Option<Vec<CString>>,
    cwd: Option<CString>,
    user: Option<(u32, u32)>,
    stdio: [Stdio; 3],
    /// An argument or variable had a NUL byte.
    nul: bool,
}

fn c_string(s: &[u8], nul: &mut bool) -> CString {
    CString::new(s).unwrap_or_else(|_| {
        *nul = true;
        CString::default()
    })
}

/// The pointer array of execve(2): the strings, then NULL.
fn pointers(v: &[CString]) -> Vec<*const c_char> {
    let mut p = Vec::with_capacity(v.len() + 1);
    p.extend(v.iter().map(|c| c.as_ptr()));
    p.push(ptr::null());
    p
}

impl Spawn {
    /// Run `prog` (argv[0] as well), with our environment, directory and
    /// user and our stdin, stdout and stderr unless said otherwise.
    pub fn new(prog: impl AsRef<OsStr>) -> Spawn {
        let mut nul = false;
        let prog = c_string(prog.as_ref().as_bytes(), &mut nul);
        Spawn {
            argv: vec![prog.clone()],
            prog,
            env: None,
            cwd: None,
            user: None,
            stdio: [Stdio::Inherit; 3],
            nul,
        }
    }

    /// argv[0], when it is not the program (a multi-call binary).
    pub fn arg0(&mut self, a: impl AsRef<OsStr>) -> &mut Spawn {
        self.argv[0] = c_string(a.as_ref().as_bytes(), &mut self.nul);
        self
    }

    pub fn arg(&mut self, a: impl AsRef<OsStr>) -> &mut Spawn {
        let a = c_string(a.as_ref().as_bytes(), &mut self.nul);
        self.argv.push(a);
        self
    }

    pub fn args<S: AsRef<OsStr>>(&mut self, args: impl IntoIterator<Item = S>) -> &mut Spawn {
        for a in args {
            self.arg(a);
        }
        self
    }

    /// Set a variable (again: the last value counts). The child's
    /// environment is then only what `env` sets.
    pub fn env(&mut self, name: &str, value: &str) -> &mut Spawn {
        let mut kv = Vec::with_capacity(name.len() + 1 + value.len());
        kv.extend_from_slice(name.as_bytes());
        kv.push(b'=');
        let prefix = kv.len();
        kv.extend_from_slice(value.as_bytes());
        let c = c_string(&kv, &mut self.nul);
        let env = self.env.get_or_insert_with(Vec::new);
        // Set before: replaced where it is (there is at most one).
        match env
            .iter()
            .position(|e| e.as_bytes().starts_with(&kv[..prefix]))
        {
            Some(i) => env[i] = c,
            None => env.push(c),
        }
        self
    }

    /// The child's working directory.
    pub fn cwd(&mut self, dir: impl AsRef<OsStr>) -> &mut Spawn {
        self.cwd = Some(c_string(dir.as_ref().as_bytes(), &mut self.nul));
        self
    }

    /// Run as this uid and gid, with no supplementary groups (root only).
    pub fn user(&mut self, uid: u32, gid: u32) -> &mut Spawn {
        self.user = Some((uid, gid));
        self
    }

    pub fn stdin(&mut self, s: Stdio) -> &mut Spawn {
        self.stdio[0] = s;
        self
    }

    pub fn stdout(&mut self, s: Stdio) -> &mut Spawn {
        self.stdio[1] = s;
        self
    }

    pub fn stderr(&mut self, s: Stdio) -> &mut Spawn {
        self.stdio[2] = s;
        self
    }

    /// The paths execve is tried on, in order: the program itself when it
    /// has a '/', else the program in each directory of the child's PATH.
    fn candidates(&self) -> Vec<CString> {
        let prog = self.prog.as_bytes();
        if prog.is_empty() || prog.contains(&b'/') {
            return vec![self.prog.clone()];
        }
        let ours;
        let path = match &self.env {
            Some(env) => env.iter().find_map(|e| e.as_bytes().strip_prefix(b"PATH=")),
            None => {
                ours = std::env::var_os("PATH");
                ours.as_deref().map(OsStrExt::as_bytes)
            }
        };
        let mut out = Vec::new();
        for dir in path
            .unwrap_or(DEFAULT_PATH.as_bytes())
            .split(|&c| c == b':')
        {
            let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
            let mut p = Vec::with_capacity(dir.len() + 1 + prog.len());
            p.extend_from_slice(dir);
            p.push(b'/');
            p.extend_from_slice(prog);
            out.push(CString::new(p).unwrap_or_default());
        }
        out
    }

    /// Start the program. Returns once it runs (its exec succeeded), or
    /// with the reason it could not be started.
    pub fn spawn(&self) -> Result<Child, SpawnError> {
        if self.nul {
            return Err(SpawnError(Errno::EINVAL));
        }
        // Everything the child uses, made now.
        let paths = self.candidates();
        let argv = pointers(&self.argv);
        // Without env calls, the child gets our environment as it is
        // (the C library's array, read in the child before its exec).
        let envp = self.env.as_deref().map(pointers);
        let null = if self.stdio.contains(&Stdio::Null) {
            Some(File::options().read(true).write(true).open("/dev/null")?)
        } else {
            None
        };
        let mut ours: [Option<File>; 3] = [None, None, None];
        // The child's ends, closed here once it is forked.
        let mut theirs: [Option<OwnedFd>; 3] = [None, None, None];
        let mut child_fds: [c_int; 3] = [-1; 3];
        for (i, s) in self.stdio.iter().enumerate() {
            match s {
                Stdio::Inherit => {}
                Stdio::Null => child_fds[i] = null.as_ref().map_or(-1, |f| f.as_raw_fd()),
                Stdio::Piped => {
                    let (rd, wr) = pipe2(OFlag::O_CLOEXEC)?;
                    let (mine, child) = if i == 0 { (wr, rd) } else { (rd, wr) };
                    child_fds[i] = child.as_raw_fd();
                    theirs[i] = Some(child);
                    ours[i] = Some(File::from(mine));
                }
            }
        }
        let (err_rd, err_wr) = pipe2(OFlag::O_CLOEXEC)?;
        let mask = SigSet::empty();
        let exec = Exec {
            stdio: child_fds,
            cwd: self.cwd.as_deref(),
            user: self.user,
            paths: &paths,
            argv: &argv,
            envp: envp.as_deref(),
            mask: mask.as_ref(),
        };
        // SAFETY: the child runs only `Exec::run` (async-signal-safe calls
        // on memory made above), then write and _exit; it never returns
        // into Rust code that could allocate, lock or unwind.
        let pid = match unsafe { fork() }? {
            ForkResult::Child => unsafe {
                let e = exec.run().to_ne_bytes();
                libc::write(err_wr.as_raw_fd(), e.as_ptr().cast(), e.len());
                libc::_exit(127)
            },
            ForkResult::Parent { child } => child.as_raw(),
        };
        drop((theirs, null, err_wr));
        let mut child = Child {
            pid,
            exited: pidfd_open(pid),
            status: None,
            stdin: ours[0].take(),
            stdout: ours[1].take(),
            stderr: ours[2].take(),
        };
        // The error pipe closes at a successful exec; else it carries the
        // errno.
        let (mut err, mut got) = ([0u8; 4], 0);
        while let Some(rest) = err.get_mut(got..).filter(|r| !r.is_empty()) {
            match nix::unistd::read(err_rd.as_fd(), rest) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        drop(err_rd);
        if got == err.len() {
            let _ = child.wait();
            return Err(SpawnError(Errno::from_raw(i32::from_ne_bytes(err))));
        }
        Ok(child)
    }
}

/// What the child does between fork and exec.
struct Exec<'a> {
    stdio: [c_int; 3],
    cwd: Option<&'a CStr>,
    user: Option<(u32, u32)>,
    paths: &'a [CString],
    argv: &'a [*const c_char],
    /// None: our own environment.
    envp: Option<&'a [*const c_char]>,
    mask: &'a libc::sigset_t,
}

impl Exec<'_> {
    /// Set the child up and exec; returns only with the errno of the step
    /// that failed. In the child after fork: async-signal-safe calls only,
    /// no allocation.
    unsafe fn run(&self) -> c_int {
        if libc::sigprocmask(libc::SIG_SETMASK, self.mask, ptr::null_mut()) != 0
            || libc::signal(libc::SIGPIPE, libc::SIG_DFL) == libc::SIG_ERR
        {
            return Errno::last_raw();
        }
        for (target, &fd) in (0..).zip(self.stdio.iter()) {
            // dup2 clears close-on-exec on the copy; a pipe that is
            // already there (not with 0–2 open) keeps its own.
            let r = match fd {
                -1 => 0,
                fd if fd == target => libc::fcntl(fd, libc::F_SETFD, 0),
                fd => libc::dup2(fd, target),
            };
            if r < 0 {
                return Errno::last_raw();
            }
        }
        if let Some(dir) = self.cwd {
            if libc::chdir(dir.as_ptr()) != 0 {
                return Errno::last_raw();
            }
        }
        if let Some((uid, gid)) = self.user {
            if libc::getuid() == 0 {
                libc::setgroups(0, ptr::null());
            }
            if libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                return Errno::last_raw();
            }
        }
        // execvp's rules (musl's): a path that is not there, or not a
        // directory, lets the next be tried; EACCES too, but it is what is
        // reported if nothing runs; any other error ends the search.
        let envp = match self.envp {
            Some(e) => e.as_ptr(),
            None => environ,
        };
        let mut err = libc::ENOENT;
        for p in self.paths {
            libc::execve(p.as_ptr(), self.argv.as_ptr(), envp);
            match Errno::last_raw() {
                libc::EACCES => err = libc::EACCES,
                e @ (libc::ENOENT | libc::ENOTDIR) if err != libc::EACCES => err = e,
                libc::ENOENT | libc::ENOTDIR => {}
                e => return e,
            }
        }
        err
    }
}

/// A pidfd for `pid` (readable once it has ended), if the kernel has them.
fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new
    // descriptor (close-on-exec) or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = c_int::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: a descriptor we just got and own.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It exited with this code.
    Exited(i32),
    /// This signal killed it.
    Signaled(i32),
}

impl Status {
    fn from_raw(st: c_int) -> Status {
        // waitpid without WUNTRACED or WCONTINUED reports nothing else.
        if libc::WIFEXITED(st) {
            Status::Exited(libc::WEXITSTATUS(st))
        } else {
            Status::Signaled(libc::WTERMSIG(st))
        }
    }

    pub fn success(self) -> bool {
        self == Status::Exited(0)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Exited(c) => write!(f, "exit status: {c}"),
            Status::Signaled(s) => write!(f, "signal: {s}"),
        }
    }
}

/// A started program. Killed and reaped when dropped before it ended.
pub struct Child {
    pid: libc::pid_t,
    /// Its pidfd, until it was reaped.
    exited: Option<OwnedFd>,
    status: Option<Status>,
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

impl Child {
    pub fn id(&self) -> i32 {
        self.pid
    }

    fn reap(&mut self, flags: c_int) -> io::Result<Option<Status>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        let mut st = 0;
        loop {
            // SAFETY: waitpid on our own child, into a local.
            match unsafe { libc::waitpid(self.pid, &mut st, flags) } {
                0 => return Ok(None),
                -1 if Errno::last() == Errno::EINTR => {}
                -1 => return Err(io::Error::last_os_error()),
                _ => {
                    self.status = Some(Status::from_raw(st));
                    self.exited = None;
                    return Ok(self.status);
                }
            }
        }
    }

    /// How it ended, if it has.
    pub fn try_wait(&mut self) -> io::Result<Option<Status>> {
        self.reap(libc::WNOHANG)
    }

    /// Wait for it to end.
    pub fn wait(&mut self) -> io::Result<Status> {
        loop {
            if let Some(s) = self.reap(0)? {
                return Ok(s);
            }
        }
    }

    /// Wait for it to end, until `deadline`. None: it still runs.
    pub fn wait_until(&mut self, deadline: Instant) -> io::Result<Option<Status>> {
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            let left = crate::util::time::left(deadline);
            if left.is_zero() {
                return Ok(None);
            }
            match &self.exited {
                Some(fd) => {
                    poll_for(&mut [PollFd::new(fd.as_fd(), PollFlags::POLLIN)], left)?;
                }
                None => std::thread::sleep(left.min(NAP)),
            }
        }
    }

    /// SIGKILL, then reap. Nothing for a child that was reaped.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            // SAFETY: kill(2) on our own child, which is not reaped yet
            // (so its pid is not reused).
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.wait();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// poll(2) for at most `d` (whole milliseconds, rounded up). False:
/// nothing became ready. An interrupted poll counts as ready: the caller
/// looks, and polls again.
fn poll_for(fds: &mut [PollFd], d: Duration) -> io::Result<bool> {
    // secs * 1000 + the microseconds rounded up: as_micros().div_ceil(1000)
    // without 128-bit division (its runtime routine costs 2 KB on MIPS).
    let ms = d
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_micros().div_ceil(1000)));
    let ms = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    match poll(fds, ms) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Make our end of a pipe non-blocking (the child's end, another open
/// file, stays as it is).
pub fn nonblocking(f: &File) -> io::Result<()> {
    fcntl(f, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok(())
}

/// One of the child's output pipes, read without blocking: the first
/// bytes are kept (as many as the room given), the rest read and dropped,
/// so the child never stops on a full pipe.
pub struct Drain {
    pipe: Option<File>,
    /// What was kept (a reader may take it out: the room stays spent).
    pub data: Vec<u8>,
    room: usize,
}

impl Drain {
    /// `pipe` (made non-blocking), keeping at most `room` bytes of it.
    pub fn new(pipe: Option<File>, room: usize) -> Drain {
        if let Some(p) = &pipe {
            let _ = nonblocking(p);
        }
        Drain {
            pipe,
            data: Vec::new(),
            room,
        }
    }

    /// The pipe, until its end was read.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.pipe.as_ref().map(|p| p.as_fd())
    }

    /// Read what the pipe holds now. At its end (or an error) it is
    /// closed.
    pub fn read_ready(&mut self) {
        let Some(p) = self.pipe.as_ref() else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match nix::unistd::read(p.as_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let keep = n.min(self.room);
                    self.data.extend_from_slice(&buf[..keep]);
                    self.room -= keep;
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => break,
            }
        }
        self.pipe = None;
    }

    /// Wait until `fd` is ready for `flags`, reading this pipe meanwhile
    /// (so that the child cannot stop on it while we wait); TimedOut at
    /// `deadline`.
    pub fn wait_for(
        &mut self,
        fd: BorrowedFd<'_>,
        flags: PollFlags,
        deadline: Instant,
    ) -> io::Result<()> {
        loop {
            let left = crate::util::time::left(deadline);
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let ready = {
                let out = self.fd();
                let mut fds = [
                    PollFd::new(fd, flags),
                    PollFd::new(out.unwrap_or(fd), PollFlags::POLLIN),
                ];
                let n = if out.is_some() { 2 } else { 1 };
                poll_for(&mut fds[..n], left)? && fds[0].any().unwrap_or(true)
            };
            self.read_ready();
            if ready {
                return Ok(());
            }
        }
    }

    /// Read the pipe until its end or until `child` ended, and wait for
    /// `child`, all before `deadline`. None: it still ran at the deadline
    /// (the caller kills it). What a program the child left running
    /// writes to the pipe after the child ended is not waited for.
    pub fn finish(&mut self, child: &mut Child, deadline: Instant) -> io::Result<Option<Status>> {
        loop {
            if let Some(s) = child.try_wait()? {
                self.read_ready();
                return Ok(Some(s));
            }
            let Some(pipe) = self.fd() else {
                return child.wait_until(deadline);
            };
            let left = crate::util::time::left(deadline);
            if left.is_zero() {
                return Ok(None);
            }
            let exited = child.exited.as_ref().map(|fd| fd.as_fd());
            let mut fds = [
                PollFd::new(pipe, PollFlags::POLLIN),
                PollFd::new(exited.unwrap_or(pipe), PollFlags::POLLIN),
            ];
            match exited {
                Some(_) => poll_for(&mut fds, left)?,
                None => poll_for(&mut fds[..1], left.min(NAP))?,
            };
            self.read_ready();
        }
    }
}

/// The child's stdin, written until a deadline while its output is
/// drained: a child that writes much before it reads its input can
/// block neither us nor itself. Dropping it closes the pipe.
pub struct Feed<'a> {
    stdin: File,
    out: &'a mut Drain,
    deadline: Instant,
}

impl<'a> Feed<'a> {
    pub fn new(stdin: File, out: &'a mut Drain, deadline: Instant) -> Feed<'a> {
        let _ = nonblocking(&stdin);
        Feed {
            stdin,
            out,
            deadline,
        }
    }
}

impl Write for Feed<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        loop {
            match self.stdin.write(b) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            self.out
                .wait_for(self.stdin.as_fd(), PollFlags::POLLOUT, self.deadline)?;
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sh(script: &str) -> Spawn {
        let mut s = Spawn::new("/bin/sh");
        s.args(["-c", script]);
        s
    }

    /// Run to the end; its stdout, and how it ended.
    fn output(s: &mut Spawn) -> (String, Status) {
        let mut child = s.stdout(Stdio::Piped).spawn().unwrap();
        let mut out = Drain::new(child.stdout.take(), 1 << 20);
        let deadline = Instant::now() + Duration::from_secs(10);
        let st = out.finish(&mut child, deadline).unwrap().unwrap();
        (String::from_utf8(out.data).unwrap(), st)
    }

    #[test]
    fn cannot_start() {
        let e = Spawn::new("/nonexistent/prog").spawn().err().unwrap();
        assert_eq!(e, SpawnError(Errno::ENOENT));
        assert_eq!(e.to_string(), "No such file or directory");
        let e = Spawn::new("no-such-program-here")
            .env("PATH", "/nonexistent:/bin")
            .spawn()
            .err();
        assert_eq!(e, Some(SpawnError(Errno::ENOENT)));
        // Not executable (for root too: no x bit at all).
        let e = Spawn::new("/etc/passwd").spawn().err().unwrap();
        assert_eq!(e.to_string(), "Permission denied");
        let e = Spawn::new("/").spawn().err();
        assert_eq!(e, Some(SpawnError(Errno::EACCES)));
        let e = Spawn::new("/bin/sh").arg("a\0b").spawn().err();
        assert_eq!(e, Some(SpawnError(Errno::EINVAL)));
        let e = Spawn::new("/bin/true").cwd("/nonexistent").spawn().err();
        assert_eq!(e, Some(SpawnError(Errno::ENOENT)));
    }

    #[test]
    fn exit_codes_and_signals() {
        assert_eq!(output(&mut sh("exit 0")).1, Status::Exited(0));
        let (_, st) = output(&mut sh("exit 75"));
        assert_eq!(st, Status::Exited(75));
        assert_eq!(st.to_string(), "exit status: 75");
        assert!(!st.success());
        let (_, st) = output(&mut sh("kill -9 $$"));
        assert_eq!(st, Status::Signaled(9));
        assert_eq!(st.to_string(), "signal: 9");
        let (_, st) = output(&mut sh("kill -TERM $$"));
        assert_eq!(st, Status::Signaled(libc::SIGTERM));
    }

    #[test]
    fn argv_env_and_cwd() {
        // A name found in the child's PATH; argv[0] as given.
        let (out, st) = output(
            Spawn::new("cat")
                .arg0("kitty")
                .arg("/proc/self/cmdline")
                .env("PATH", "/nonexistent::/bin:/usr/bin"),
        );
        assert!(st.success());
        assert_eq!(out, "kitty\0/proc/self/cmdline\0");
        // Only the variables given, the last value of one; the directory.
        let (out, _) = output(
            sh("echo \"$A|$B|${HOME-unset}|$PWD\"")
                .env("A", "1")
                .env("B", "x y")
                .env("A", "2")
                .cwd("/"),
        );
        assert_eq!(out, "2|x y|unset|/\n");
        // Ours, when none is given.
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(output(&mut sh("echo \"$PATH\"")).0, format!("{path}\n"));
    }

    #[test]
    fn child_starts_clean() {
        // A signal blocked here (the daemon blocks several) is not blocked
        // in the child, and SIGPIPE (ignored here) is at its default.
        let mut block = SigSet::empty();
        block.add(nix::sys::signal::Signal::SIGUSR2);
        let old = block.thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK);
        let r = output(Spawn::new("/bin/cat").arg("/proc/self/status"));
        if let Ok(old) = old {
            let _ = old.thread_set_mask();
        }
        let (status, st) = r;
        assert!(st.success());
        let field = |name: &str| {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
        };
        assert_eq!(field("SigBlk:"), 0, "{status}");
        assert_eq!(field("SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "{status}");
    }

    /// Our descriptors that are not close-on-exec (what the harness left
    /// open to us, if anything).
    fn inheritable() -> Vec<String> {
        let fds = std::fs::read_dir("/proc/self/fd").unwrap();
        fds.filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| {
                let fd = n.parse().unwrap_or(-1);
                // SAFETY: F_GETFD only reads a descriptor's flags.
                let fl = unsafe { libc::fcntl(fd, libc::F_GETFD) };
                fl >= 0 && fl & libc::FD_CLOEXEC == 0
            })
            .collect()
    }

    #[test]
    fn child_gets_only_stdio() {
        let before = inheritable();
        let mut child = sh("ls /proc/$$/fd")
            .stdin(Stdio::Piped)
            .stdout(Stdio::Piped)
            .stderr(Stdio::Null)
            .spawn()
            .unwrap();
        let ours = inheritable();
        drop(child.stdin.take());
        let mut fds = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut fds)
            .unwrap();
        assert!(child.wait().unwrap().success());
        for fd in fds.split_whitespace() {
            assert!(
                ["0", "1", "2"].contains(&fd) || before.iter().chain(&ours).any(|o| o == fd),
                "{fds}"
            );
        }
    }

    #[test]
    fn runs_as_user() {
        if !nix::unistd::getuid().is_root() {
            return;
        }
        let (out, st) = output(sh("id -u; id -g; id -G").user(65534, 65534));
        assert!(st.success());
        assert_eq!(out, "65534\n65534\n65534\n");
    }

    #[test]
    fn drop_kills_and_reaps() {
        let child = Spawn::new("/bin/sleep").arg("30").spawn().unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id());
        drop(child);
        assert_eq!(nix::sys::signal::kill(pid, None), Err(Errno::ESRCH));
    }

    #[test]
    fn waits_until_deadline() {
        let mut child = Spawn::new("/bin/sleep").arg("30").spawn().unwrap();
        let start = Instant::now();
        let r = child.wait_until(start + Duration::from_millis(200));
        assert_eq!(r.unwrap(), None);
        assert!(start.elapsed() >= Duration::from_millis(200));
        child.kill();
        assert_eq!(child.wait().unwrap(), Status::Signaled(libc::SIGKILL));
        let mut child = sh("sleep 0.1; exit 3").spawn().unwrap();
        let r = child.wait_until(Instant::now() + Duration::from_secs(10));
        assert_eq!(r.unwrap(), Some(Status::Exited(3)));
    }

    #[test]
    fn drain_keeps_the_first_bytes() {
        let (out, st) = output(&mut sh("head -c 100000 /dev/zero | tr '\\0' a"));
        assert!(st.success());
        assert_eq!(out.len(), 100_000);
        let mut child = sh("head -c 100000 /dev/zero | tr '\\0' a; exit 4")
            .stdout(Stdio::Piped)
            .spawn()
            .unwrap();
        let mut out = Drain::new(child.stdout.take(), 1000);
        let st = out.finish(&mut child, Instant::now() + Duration::from_secs(10));
        assert_eq!(st.unwrap(), Some(Status::Exited(4)));
        assert_eq!(out.data, [b'a'; 1000]);
    }

    #[test]
    fn drain_ends_with_the_child() {
        // Something the child left running holds the pipe: the child's
        // end is the end.
        let start = Instant::now();
        let (out, st) = output(&mut sh("sleep 3 & echo hi"));
        assert!(st.success());
        assert_eq!(out, "hi\n");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn feed_drains_meanwhile() {
        // 200 KB to stderr before it reads: more than a pipe holds.
        let mut child = sh("head -c 200000 /dev/zero >&2; wc -c")
            .stdin(Stdio::Piped)
            .stdout(Stdio::Piped)
            .stderr(Stdio::Piped)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut err = Drain::new(child.stderr.take(), 10);
        Feed::new(child.stdin.take().unwrap(), &mut err, deadline)
            .write_all(&[b'x'; 300_000])
            .unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out.trim(), "300000");
        assert_eq!(
            err.finish(&mut child, deadline).unwrap(),
            Some(Status::Exited(0))
        );
        assert_eq!(err.data, [0; 10]);
    }

    #[test]
    fn feed_times_out() {
        let mut child = Spawn::new("/bin/sleep")
            .arg("30")
            .stdin(Stdio::Piped)
            .stderr(Stdio::Piped)
            .spawn()
            .unwrap();
        let start = Instant::now();
        let deadline = start + Duration::from_millis(300);
        let mut err = Drain::new(child.stderr.take(), 10);
        let r = Feed::new(child.stdin.take().unwrap(), &mut err, deadline).write_all(&[0; 1 << 20]);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.finish(&mut child, deadline).unwrap(), None);
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
