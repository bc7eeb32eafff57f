"""nullmailer for the side-by-side benchmarks (bench/report.py): Debian's
package, unpacked privately, each instance in a directory of its own.

Debian's nullmailer conflicts with postfix (both provide
mail-transport-agent) and Postfix must stay installed, so nullmailer is not
installed: `apt-get download` fetches the package and `dpkg -x` unpacks it.
Its paths (/etc/nullmailer, /var/spool/nullmailer, /usr/sbin,
/usr/lib/nullmailer) are compiled in, but each of its programs takes them
from NULLMAILER_TEST_PREFIX instead when that is set and the program is not
setuid: PREFIX/conf, PREFIX/queue/{queue,tmp,failed,trigger}, PREFIX/bin,
PREFIX/sbin and PREFIX/protocols. So an instance copies the programs into
its own directory (nullmailer-queue without its setuid bit; everything runs
as root) and nothing outside that directory is touched.

nullmailer has no SMTP listener of its own: nullmailer-smtpd speaks SMTP on
its standard input and output, one process per connection, as from inetd.
Here a small Python accept loop (INETD) stands in for inetd; its own CPU
time and memory are not counted as nullmailer's, the processes it starts
are.

nullmailer-send is the queue runner: it tries every queued message on each
trigger (nullmailer-queue writes one per new message) and when its pause
timer runs out (60 s, doubled after each timed-out wait). It has no notion
of an uplink: "uplink down" here is a remote on a loopback port where
nothing listens, so each try is a refused connection.
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import relay
import smtp_accept
from smtp_accept import cpu_seconds, free_port, tree, wait_port

PROGRAMS = {  # where each program goes in an instance: package path -> prefix path
    "usr/sbin/sendmail": "sbin/sendmail",
    "usr/sbin/nullmailer-queue": "sbin/nullmailer-queue",
    "usr/sbin/nullmailer-send": "sbin/nullmailer-send",
    "usr/bin/nullmailer-inject": "bin/nullmailer-inject",
    "usr/bin/nullmailer-smtpd": "bin/nullmailer-smtpd",
    "usr/bin/nullmailer-dsn": "bin/nullmailer-dsn",
    "usr/lib/nullmailer/smtp": "protocols/smtp",
}

INETD = r"""
import os, signal, socket, sys
def reap(*_):
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
signal.signal(signal.SIGCHLD, reap)
l = socket.socket()
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen(128)
prog = sys.argv[2:]
while True:
    c, _ = l.accept()
    os.posix_spawn(prog[0], prog, os.environ, file_actions=[
        (os.POSIX_SPAWN_DUP2, c.fileno(), 0), (os.POSIX_SPAWN_DUP2, c.fileno(), 1)])
    c.close()
"""


class Unavailable(Exception):
    """nullmailer cannot be had or run here; the message says why."""


def unpack(dest):
    """Download and unpack Debian's nullmailer into dest: (root, version)."""
    os.makedirs(dest, exist_ok=True)
    r = subprocess.run(["apt-get", "download", "nullmailer"], cwd=dest,
                       capture_output=True, text=True)
    debs = glob.glob(os.path.join(dest, "nullmailer_*.deb"))
    if r.returncode != 0 or not debs:
        raise Unavailable(f"apt-get download nullmailer failed: {r.stderr.strip()[-200:]}")
    root = os.path.join(dest, "root")
    subprocess.run(["dpkg", "-x", debs[0], root], check=True)
    version = subprocess.run(["dpkg-deb", "-f", debs[0], "Version"], check=True,
                             capture_output=True, text=True).stdout.strip()
    for path in PROGRAMS:
        out = subprocess.run(["ldd", os.path.join(root, path)], capture_output=True,
                             text=True).stdout
        if "not found" in out:
            raise Unavailable(f"{path} needs libraries that are not installed:\n{out}")
    return root, version


class Nullmailer(smtp_accept.Mta):
    name = "nullmailer"

    def __init__(self, d, root, remote_port, smtp=True, runner=True):
        """An instance in d/nullmailer with its remote on remote_port;
        smtp: start the accept loop; runner: start nullmailer-send."""
        self.d = os.path.join(d, "nullmailer")
        self.spool = os.path.join(self.d, "queue")
        for sub in ("conf", "bin", "sbin", "protocols", "queue/queue", "queue/tmp",
                    "queue/failed"):
            os.makedirs(os.path.join(self.d, sub))
        os.mkfifo(os.path.join(self.spool, "trigger"))
        self.exes = []
        for src, dst in PROGRAMS.items():
            dst = os.path.join(self.d, dst)
            shutil.copy(os.path.join(root, src), dst)
            os.chmod(dst, 0o755)  # no setuid: it would ignore the prefix
            self.exes.append(dst)
        self.remote(remote_port)
        for name, value in (("defaulthost", "nullmailer.bench.example"),
                            ("defaultdomain", "bench.example")):
            with open(os.path.join(self.d, "conf", name), "w") as f:
                f.write(value + "\n")
        self.env = dict(os.environ, NULLMAILER_TEST_PREFIX=self.d)
        self.sendmail = [os.path.join(self.d, "sbin/sendmail")]
        self.log = os.path.join(self.d, "send.log")
        self.runner = self.inetd = None
        self._still = None
        if runner:
            self.start_runner()
        if smtp:
            self.port = free_port()
            self.inetd = subprocess.Popen(
                [sys.executable, "-c", INETD, str(self.port),
                 os.path.join(self.d, "bin/nullmailer-smtpd")],
                env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            wait_port(self.port)

    def remote(self, port):
        with open(os.path.join(self.d, "conf", "remotes"), "w") as f:
            f.write(f"127.0.0.1 smtp --port={port}\n")

    def start_runner(self):
        with open(self.log, "w") as log:
            self.runner = subprocess.Popen(
                [os.path.join(self.d, "sbin/nullmailer-send")], env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def stop_runner(self):
        if self.runner:
            self.runner.terminate()
            self.runner.wait(20)
            self.runner = None

    def empty(self):
        """Stop the runner, remove every queued message, start it again."""
        self.stop_runner()
        for f in os.listdir(os.path.join(self.spool, "queue")):
            os.unlink(os.path.join(self.spool, "queue", f))
        self.start_runner()

    def roots(self):
        return [p.pid for p in (self.inetd, self.runner) if p]

    def procs(self):
        """Its processes: not the accept loop, which stands in for inetd."""
        out = tree(self.runner.pid) if self.runner else []
        return out + (tree(self.inetd.pid)[1:] if self.inetd else [])

    def cpu(self):
        return ((cpu_seconds(self.inetd.pid, own=False) if self.inetd else 0)
                + self.runner_cpu())

    def runner_cpu(self):
        return cpu_seconds(self.runner.pid) if self.runner else 0

    def inetd_own_cpu(self):
        st = smtp_accept.stat(self.inetd.pid) if self.inetd else None
        return st[1] / smtp_accept.CLK_TCK if st else 0

    def queued(self):
        return len(os.listdir(os.path.join(self.spool, "queue")))

    def last_pass(self):
        """Messages left after nullmailer-send's last finished pass, or None
        when its log does not end with one."""
        try:
            with open(self.log, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log) - 200))
                tail = f.read().decode(errors="replace")
        except OSError:
            return None
        m = re.search(r"Delivery complete, (\d+) message\(s\) remain\.\n$", tail)
        return int(m.group(1)) if m else None

    def settled(self, expect):
        """All messages queued, no smtpd left, and nullmailer-send done: its
        last pass saw every message, and it has had no child and used no CPU
        for half a second (a trigger that came during a pass starts another)."""
        q = self.queued()
        busy = q < expect or (self.inetd and len(tree(self.inetd.pid)) > 1)
        if not busy and self.runner:
            busy = self.last_pass() != q or len(tree(self.runner.pid)) > 1
        if busy:
            self._still = None
            return False
        if not self.runner:
            return True
        cpu, now = self.runner_cpu(), time.monotonic()
        if self._still is None or self._still[0] != cpu:
            self._still = (cpu, now)
            return False
        return now - self._still[1] >= 0.5

    def stop(self):
        if self.inetd:
            self.inetd.send_signal(signal.SIGTERM)
            self.inetd.wait(20)
            self.inetd = None
        self.stop_runner()


def flush(d, root, n, port):
    """bench/relay.py's measurement for nullmailer: n messages queued while
    no nullmailer-send runs, then nullmailer-send started with its remote on
    the sink; (wall seconds until the queue is empty, CPU seconds)."""
    nm = Nullmailer(d, root, port, smtp=False, runner=False)
    relay.submit_all(nm.sendmail + ["-f", relay.SENDER, relay.RCPT], n, nm.env)
    if nm.queued() != n:
        sys.exit(f"nullmailer: {nm.queued()} queued, wanted {n}")
    cpu0, t0 = relay.children_cpu(), time.monotonic()
    nm.start_runner()
    try:
        relay.wait_until(lambda: nm.queued() == 0, "nullmailer to flush")
        wall = time.monotonic() - t0
    finally:
        nm.stop()
    relay.reap_all()
    return wall, relay.children_cpu() - cpu0
