#!/usr/bin/env python3
"""SMTP accept benchmark: masqmail's daemon against Postfix, same run, same client.

Both MTAs run side by side on loopback ports of this machine, each with its
own configuration and queue in a fresh temporary directory on the same file
system, both durable (a message is on disk, fsynced, before the 250):

  - Postfix from the distribution (installed with apt when missing), with its
    own config directory and queue, relaying for 127.0.0.0/8 and holding mail
    for remote domains with `defer_transports = smtp` (Postfix's setting for
    sites whose uplink is down);
  - masqmail (`masqmail daemon`, the release build) with one route that is
    offline, so remote mail waits in the queue the same way.

The client is Postfix's smtp-source: N messages of SIZE bytes to a remote
recipient, one connection per message, with 1 and P parallel sessions. For
each MTA it prints messages per second (as the client sees them) and CPU
time per message: user + system time of every process of that MTA (the
master process and all its children, living or reaped) from when the
client starts until the MTA has finished with the messages (Postfix: all
deferred; masqmail: every worker reaped). Then both idle for IDLE seconds:
the context switches of each MTA's processes in that time, and the masqmail
daemon's proportional set size (PSS, /proc/PID/smaps_rollup).

Needs root (Postfix starts as root; masqmail drops to the mail user as in
production) and a release build (cargo build --release).

    bench/smtp_accept.py [-n 2000] [-p 4] [--size 1024] [--idle 60] [--rounds 3]
                         [--bin target/release/masqmail] [--dir /var/tmp]
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import exits

CLK_TCK = os.sysconf("SC_CLK_TCK")
POSTFIX = "/usr/sbin/postfix"
SMTP_SOURCE = "/usr/sbin/smtp-source"


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(100)
                s.sendall(b"QUIT\r\n")
                s.recv(100)
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing answers on port {port}")


# --- /proc ------------------------------------------------------------------

def stat(pid):
    """(ppid, utime+stime, cutime+cstime) in ticks, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()
    # fields after comm: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
    return int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14])


def tree(root):
    """root and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat(int(d))
            if st:
                kids.setdefault(st[0], []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(root, own=True):
    """CPU of root's process tree, reaped children included; without
    root's own time when own is False (root only starts the MTA's
    processes, like inetd)."""
    ticks = 0
    for p in tree(root):
        st = stat(p)
        if st:
            ticks += st[2] + (st[1] if own or p != root else 0)
    return ticks / CLK_TCK


def status_field(pid, name):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def switches(pid):
    return (status_field(pid, "voluntary_ctxt_switches")
            + status_field(pid, "nonvoluntary_ctxt_switches"))


def watch_switches(mtas, seconds, every=0.5):
    """Context switches of each MTA's processes over `seconds`: the
    processes there at the start count from then, the ones started
    meanwhile from their birth; all are read every `every` seconds. Where
    the kernel's exit records can be had (exits.py: root, taskstats), a
    process that ends counts up to its exit, even one that started and
    ended between two readings; else up to its last reading. Returns
    ({name: (switches, processes at the start, processes started
    meanwhile, their switches)}, whether every exit was counted)."""
    try:
        ex = exits.Exits()
    except OSError:
        ex = None
    try:
        first, last = {}, {}
        for m in mtas:
            first[m.name] = {p: switches(p) for p in m.procs()}
            last[m.name] = dict(first[m.name])
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            time.sleep(min(every, max(0.0, seconds - (time.monotonic() - t0))))
            for m in mtas:
                for p in m.procs():
                    n = switches(p)
                    if n:
                        last[m.name][p] = n
        records = ex.records() if ex else []
    finally:
        if ex:
            ex.close()
    out = {}
    for m in mtas:
        f, l = first[m.name], last[m.name]
        ours, ended, grown = set(l), {}, True
        while grown:  # a child's record may come before its parent's
            grown = False
            for pid, ppid, n in records:
                if pid not in ended and (pid in ours or ppid in ours):
                    ended[pid] = n
                    ours.add(pid)
                    grown = True
        l.update(ended)
        born = set(l) - set(f)
        out[m.name] = (sum(n - f.get(p, 0) for p, n in l.items()), len(f), len(born),
                       sum(l[p] for p in born))
    return out, ex is not None and not ex.lost


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# --- Postfix ------------------------------------------------------------------

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.example
mydomain = bench.example
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost =
defer_transports = smtp
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
biff = no
"""


def ensure_postfix():
    if os.path.exists(POSTFIX) and os.path.exists(SMTP_SOURCE):
        return
    print("installing postfix (for smtp-source and the comparison) with apt")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sh("sh", "-c", "echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections")
    sh("apt-get", "update", "-qq", env=env)
    sh("apt-get", "install", "-y", "-qq", "postfix", env=env, stdout=subprocess.DEVNULL)


class Mta:
    """What the benchmarks ask of a running MTA. `pid` is the process that
    all of its processes descend from."""

    def procs(self):
        return tree(self.pid)

    def cpu(self):
        """User + system seconds of all its processes, reaped ones included."""
        return cpu_seconds(self.pid)


class Postfix(Mta):
    name = "Postfix"

    def __init__(self, d):
        self.d = os.path.join(d, "postfix")
        self.conf = os.path.join(self.d, "etc")
        self.spool = os.path.join(self.d, "queue")
        self.sendmail = ["/usr/sbin/sendmail", "-C", self.conf]
        self.env = dict(os.environ, MAIL_CONFIG=self.conf)
        os.makedirs(self.conf)
        os.makedirs(os.path.join(self.d, "data"))
        os.makedirs(os.path.join(self.d, "queue"))
        self.port = free_port()
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(d=self.d))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
        shutil.chown(os.path.join(self.d, "data"), "postfix", "postfix")
        sh(POSTFIX, "-c", self.conf, "check")
        sh(POSTFIX, "-c", self.conf, "start", stderr=subprocess.DEVNULL)
        wait_port(self.port)
        with open(os.path.join(self.d, "queue/pid/master.pid")) as f:
            self.pid = int(f.read().strip())

    def queued(self):
        n = 0
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(self.d, "queue", sub)):
                n += len(files)
        return n

    def settled(self, expect):
        """Every message has gone through qmgr to the deferred queue."""
        busy = 0
        for sub in ("maildrop", "incoming", "active"):
            for _, _, files in os.walk(os.path.join(self.d, "queue", sub)):
                busy += len(files)
        return busy == 0 and self.queued() >= expect

    def stop(self):
        subprocess.run([POSTFIX, "-c", self.conf, "stop"], stderr=subprocess.DEVNULL)


# --- masqmail -----------------------------------------------------------------

class Masqmail(Mta):
    name = "masqmail"

    def __init__(self, d, binary):
        self.d = os.path.join(d, "masqmail")
        os.makedirs(self.d)
        self.port = free_port()
        self.spool = os.path.join(self.d, "spool")
        conf = os.path.join(self.d, "masqmail.conf")
        os.symlink(binary, os.path.join(self.d, "sendmail"))
        self.sendmail = [os.path.join(self.d, "sendmail"), "-C", conf]
        self.env = None
        with open(conf, "w") as f:
            f.write(
                "config masqmail 'main'\n"
                "\toption host_name 'masqmail.bench.example'\n"
                f"\toption spool_dir '{self.spool}'\n"
                f"\toption mail_dir '{self.d}/mail'\n"
                f"\toption pid_file '{self.d}/masqmail.pid'\n"
                f"\tlist listen_addresses '127.0.0.1:{self.port}'\n"
                "\toption max_connections '50'\n"
                "\toption max_connections_per_ip '50'\n"
                "\toption online_detect 'file'\n"
                f"\toption online_file '{self.d}/online'\n"
                "config route 'isp'\n"
                "\toption mail_host '127.0.0.1:1'\n"
                "\toption tls 'none'\n"
            )
        self.proc = subprocess.Popen(
            [binary, "daemon", "-C", conf],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.d, "daemon.log"), "w"),
        )
        self.pid = self.proc.pid
        wait_port(self.port)

    def queued(self):
        out = os.path.join(self.spool, "outgoing")
        return sum(1 for n in os.listdir(out) if os.stat(os.path.join(out, n)).st_mode & 0o100)

    def settled(self, expect):
        """Every message scanned, every worker and queue run reaped."""
        return len(tree(self.pid)) == 1 and self.queued() >= expect

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)


# --- the runs -----------------------------------------------------------------

def wait_settled(mta, expect, secs=300):
    t1 = time.monotonic()
    while not mta.settled(expect):
        if time.monotonic() - t1 > secs:
            sys.exit(f"{mta.name} did not settle with {expect} messages (has {mta.queued()})")
        time.sleep(0.1)


def ratio(a, b):
    return a / b if b else float("nan")


def measure(mta, n, send):
    """send() hands mta n messages and returns the CPU seconds of its own
    child processes that belong to the MTA (or None). Returns (messages/s
    as send saw them, CPU ms per message of all the MTA's processes until
    it has settled)."""
    before_q = mta.queued()
    cpu0 = mta.cpu()
    t0 = time.monotonic()
    extra = send() or 0
    wall = time.monotonic() - t0
    wait_settled(mta, before_q + n)
    cpu = mta.cpu() - cpu0 + extra
    got = mta.queued() - before_q
    if got != n:
        sys.exit(f"{mta.name}: {got} messages queued, {n} sent")
    return n / wall, cpu / n * 1e3


def load(mta, n, sessions, size):
    """Send n messages with smtp-source; returns (messages/s, CPU ms per message)."""
    def send():
        sh(SMTP_SOURCE, "-s", str(sessions), "-m", str(n), "-l", str(size),
           "-f", "sender@client.example", "-t", "rcpt@remote.example",
           "-M", "client.example", f"127.0.0.1:{mta.port}")
    return measure(mta, n, send)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=2000, help="messages per run (default 2000)")
    ap.add_argument("-p", type=int, default=4, help="parallel sessions of the second run (default 4)")
    ap.add_argument("--size", type=int, default=1024, help="message size in bytes (default 1024)")
    ap.add_argument("--idle", type=int, default=60, help="idle seconds measured (default 60)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (default 3)")
    ap.add_argument("--bin", default="target/release/masqmail")
    ap.add_argument("--dir", default="/var/tmp", help="where the queues live (default /var/tmp)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: Postfix starts as root, masqmail drops to the mail user")
    binary = os.path.abspath(a.bin)
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary}: build it first (cargo build --release)")
    ensure_postfix()
    d = tempfile.mkdtemp(prefix="masqmail-smtp-bench-", dir=a.dir)
    os.chmod(d, 0o755)
    mtas = []
    try:
        mtas = [Postfix(d), Masqmail(d, binary)]
        pf, mm = mtas
        print(f"SMTP accept, {a.n} messages of {a.size} bytes per run, one connection per message,")
        print(f"client smtp-source; queues in {d}; {os.cpu_count()} CPUs")
        print(f"{'round':>5} {'sessions':>8}  {'MTA':<9} {'msg/s':>8}  {'CPU/msg':>9}")
        results = {}
        for rnd in range(1, a.rounds + 1):
            for sessions in (1, a.p):
                # Alternate who goes first, so neither always meets the
                # other's leftover disk writeback.
                order = (pf, mm) if (sessions == 1) == (rnd % 2 == 1) else (mm, pf)
                for mta in order:
                    rate, cpu = load(mta, a.n, sessions, a.size)
                    results.setdefault((sessions, mta.name), []).append((rate, cpu))
                    print(f"{rnd:>5} {sessions:>8}  {mta.name:<9} {rate:8.0f}  {cpu:6.2f} ms",
                          flush=True)

        def median(xs):
            xs = sorted(xs)
            return xs[len(xs) // 2]

        print(f"\nmedian of {a.rounds} round(s), {a.n} messages each:\n")
        print("| sessions | MTA | messages/s | CPU per message |")
        print("|---|---|---|---|")
        for sessions in (1, a.p):
            for mta in (pf, mm):
                r = results[(sessions, mta.name)]
                rate, cpu = median(x[0] for x in r), median(x[1] for x in r)
                print(f"| {sessions} | {mta.name} | {rate:.0f} | {cpu:.2f} ms |")
        print()
        for sessions in (1, a.p):
            p_, m_ = results[(sessions, pf.name)], results[(sessions, mm.name)]
            # A tiny -n can measure 0 CPU ticks: no ratio then (nan).
            speed = median(ratio(m[0], p[0]) for m, p in zip(m_, p_))
            cpu = median(ratio(m[1], p[1]) for m, p in zip(m_, p_))
            print(f"{sessions} session(s): masqmail/Postfix  speed {speed:4.2f}x  "
                  f"CPU per message {cpu:4.2f}x  (budget: > 1x, <= 0.5x)")
        # Idle: both at once, nothing to do, mail queued.
        time.sleep(2)
        idle, _ = watch_switches(mtas, a.idle)
        print(f"\nidle {a.idle} s, {mm.queued()} messages queued, routes offline:")
        for m in mtas:
            n, procs, born, _ = idle[m.name]
            print(f"  {m.name:<9} context switches: {n}  ({procs} processes, {born} started)")
        print(f"  masqmail daemon PSS: {pss_kib(mm.pid)} KiB (budget: <= 1024)")
        print(f"  Postfix PSS, all processes: {sum(pss_kib(p) for p in tree(pf.pid))} KiB")
    finally:
        for m in mtas:
            m.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
