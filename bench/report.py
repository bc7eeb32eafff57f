#!/usr/bin/env python3
"""Side-by-side performance report: masqmail, Postfix and nullmailer in one
run, written to doc/PERFORMANCE.md.

All three MTAs run on this machine, each in its own directory under one
temporary directory, on loopback only, durable (each fsyncs a message
before it says yes), with their uplink down: masqmail's one route offline
(online_detect file, no file), Postfix with `defer_transports = smtp` (its
DIALUP_README's setting), nullmailer's remote on a loopback port where
nothing listens. The phases, in this order:

  1. idle: QUEUED messages queued in each, then IDLE seconds of nothing:
     the context switches of all of each MTA's processes (those started
     meanwhile included) and their PSS;
  2. spool bytes: STRACE messages submitted with each one's sendmail while
     strace follows the MTA's processes: bytes written to its queue;
  3. local submission: SUBMISSIONS messages with each one's sendmail
     command, 1 and P submitters at once (bench/submit.py);
  4. SMTP accept: N messages of 1 KiB from Postfix's smtp-source, one
     connection per message, 1 and P sessions (bench/smtp_accept.py);
  5. relay: N messages queued with the uplink down, then flushed to one
     smtp-sink on loopback (bench/relay.py);
  6. size: the executables that ran and the shared libraries they load,
     and masqmail's mipsel cross build if cross/build.sh left one.

Phases 3 to 5 run ROUNDS times (the MTAs' order rotating) and the median
is reported. Postfix comes from the distribution (installed with apt when
missing); nullmailer is unpacked privately (bench/nullmailer.py); masqmail
is the release build (built here with cargo unless --bin is given).

Needs root (Postfix starts as root, masqmail drops to the mail user).

    bench/report.py [-n 1000] [--submissions 500] [-p 4] [--rounds 3]
                    [--idle 60] [--queued 10] [--strace 20] [--bin PATH]
                    [--dir /var/tmp] [--out doc/PERFORMANCE.md]
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import nullmailer
import relay
import smtp_accept
import submit
from smtp_accept import pss_kib, wait_settled, watch_switches

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROSS_TARGET = "mipsel-unknown-linux-musl"
KIB, MIB = 1024, 1024 * 1024
# Postfix's programs on the paths this benchmark takes (sendmail, SMTP,
# deferral, flush, delivery); any other that is seen running is added.
POSTFIX_PROGRAMS = ["sendmail", "postdrop", "postqueue"]
POSTFIX_DAEMONS = ["master", "pickup", "cleanup", "trivial-rewrite", "qmgr", "smtpd",
                   "anvil", "bounce", "flush", "smtp"]
STRACE = ["strace", "-f", "-qq", "-y", "-e", "trace=write,writev,pwrite64,pwritev,pwritev2"]


def out(*args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw).stdout.strip()


# --- the machine and the programs ---------------------------------------------

def mount_of(path):
    """(mount point, file system type, mount options) holding path."""
    path, best = os.path.realpath(path), ("/", "?", "")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            mnt, opts = left.split()[4], left.split()[5]
            inside = path == mnt or path.startswith(mnt.rstrip("/") + "/")
            if inside and len(mnt) >= len(best[0]):
                best = (mnt, right.split()[0], opts)
    return best


def machine(tmp):
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) * KIB
    mnt, fs, opts = mount_of(tmp)
    return (f"{os.cpu_count()} cores ({model}), {mem / 2**30:.0f} GiB, "
            f"Linux {platform.release()} {platform.machine()}; temporary directories under "
            f"`{os.path.dirname(tmp)}` on {fs} ({opts}, mounted on `{mnt}`)")


def build():
    """The release binary, built with cargo."""
    subprocess.run(["cargo", "build", "--release", "--locked"], cwd=REPO, check=True)
    meta = json.loads(out("cargo", "metadata", "--format-version", "1", "--no-deps", cwd=REPO))
    return os.path.join(meta["target_directory"], "release", "masqmail"), meta["target_directory"]


def masqmail_version():
    rev = out("git", "rev-parse", "--short", "HEAD", cwd=REPO) or "?"
    dirty = out("git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                ":!doc/PERFORMANCE.md", cwd=REPO)
    return rev + (" with uncommitted changes" if dirty else "")


def footprint(exes):
    """(executables' bytes, shared libraries' bytes, library names)."""
    exes = {os.path.realpath(e) for e in exes}
    libs = set()
    for e in exes:
        for m in re.finditer(r"(/\S+) \(0x", out("ldd", e)):
            libs.add(os.path.realpath(m.group(1)))
    libs -= exes
    size = lambda files: sum(os.path.getsize(f) for f in files)
    return size(exes), size(libs), sorted(os.path.basename(lib) for lib in libs)


def cross_sizes(target_dir):
    """{'all features': bytes, 'without tls': bytes} of the mipsel build
    cross/build.sh left in target_dir/cross (cross/size.sh reads them);
    a missing one is absent."""
    env = dict(os.environ, CARGO_TARGET_DIR=target_dir)
    table = out("bash", os.path.join(REPO, "cross/size.sh"), CROSS_TARGET, env=env)
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == CROSS_TARGET:
            got = {}
            for what, cell in zip(("all features", "without tls"), cells[1:3]):
                m = re.match(r"([\d,]+) ", cell)
                if m:
                    got[what] = int(m.group(1).replace(",", ""))
            return got
    return {}


# --- measurements -----------------------------------------------------------------

def note_exes(mta, seen):
    for p in mta.procs():
        try:
            seen.setdefault(mta.name, set()).add(os.readlink(f"/proc/{p}/exe"))
        except OSError:
            pass


def spool_bytes(mta, k, tmp):
    """Bytes written per message by write system calls to files in the
    MTA's queue: k `sendmail -t -i` submissions, each under strace -f,
    while another strace follows all of the MTA's running processes."""
    trace = os.path.join(tmp, f"strace-{mta.name}")
    pids = [x for p in mta.procs() for x in ("-p", str(p))]
    follow = subprocess.Popen(STRACE + ["-o", trace + "-daemons"] + pids,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)  # strace attaches
        before = mta.queued()
        for i in range(k):
            submit.submit(STRACE + ["-o", f"{trace}-{i}"] + mta.sendmail, mta.env)
        wait_settled(mta, before + k)
        time.sleep(0.5)
    finally:
        follow.send_signal(signal.SIGINT)
        follow.wait(20)
    spool = os.path.realpath(mta.spool) + "/"
    line_re = re.compile(r"^(?:(\d+) +)?(?:\w+\(\d+<([^>]*)>.*?(?:\) += (\d+)|<unfinished \.\.\.>)"
                         r"|<\.\.\. \w+ resumed>.*\) += (\d+))$")
    total = 0
    for name in glob.glob(trace + "-*"):
        pending = {}
        with open(name, errors="replace") as f:
            for line in f:
                m = line_re.match(line.rstrip("\n"))
                if not m:
                    continue
                pid, path, done, resumed = m.groups()
                if path is not None and done is None:
                    pending[pid] = path  # unfinished: the size comes later
                    continue
                if resumed is not None:
                    path, done = pending.pop(pid, ""), resumed
                if path.startswith(spool):
                    total += int(done)
    return total / k


def rounds_of(mtas, rounds, run):
    """run(mta, round) for each round, the MTAs' order rotating."""
    for r in range(rounds):
        for m in mtas[r % len(mtas):] + mtas[:r % len(mtas)]:
            run(m, r)


class Report:
    def __init__(self, a, binary, target_dir):
        self.a, self.binary, self.target_dir = a, binary, target_dir
        self.res = {}  # (phase, sessions, MTA) -> [(msg/s, CPU ms/msg, extras)]
        self.idle, self.bytes, self.sizes, self.seen = {}, {}, {}, {}
        self.idle_exact = False
        self.na = {}  # MTA -> why it was not measured
        self.nm_root = self.nm_version = None

    def add(self, key, rate, cpu, **extra):
        self.res.setdefault(key, []).append((rate, cpu, extra))
        print(f"  {key[0]:<7} {key[1]:>2}  {key[2]:<10} {rate:8.0f} msg/s  {cpu:7.2f} ms CPU/msg"
              + "".join(f"  {k} {v:.2f}" for k, v in extra.items()), flush=True)

    def run(self, tmp):
        a = self.a
        try:
            self.nm_root, self.nm_version = nullmailer.unpack(os.path.join(tmp, "nullmailer-deb"))
        except nullmailer.Unavailable as e:
            self.na["nullmailer"] = str(e)
        mtas = []
        try:
            down = smtp_accept.free_port()  # nothing listens: nullmailer's uplink is down
            mtas.append(smtp_accept.Masqmail(tmp, self.binary))
            mtas.append(smtp_accept.Postfix(tmp))
            if self.nm_root:
                mtas.append(nullmailer.Nullmailer(tmp, self.nm_root, down))
            self.idle_phase(mtas)
            if shutil.which("strace"):
                print("spool bytes per message (strace)", flush=True)
                for m in mtas:
                    self.bytes[m.name] = spool_bytes(m, a.strace, tmp)
                    print(f"  {m.name:<10} {self.bytes[m.name]:.0f} bytes", flush=True)
            print("local submission (sendmail)", flush=True)
            k = a.submissions
            self.load_phase(mtas, "submit", k, lambda m, p: smtp_accept.measure(
                m, k, lambda: submit.run(m.sendmail, k, p, m.env)[1] * k / 1e3))
            print("SMTP accept (smtp-source)", flush=True)
            self.load_phase(mtas, "smtp", a.n, lambda m, p: smtp_accept.load(m, a.n, p, 1024))
        finally:
            for m in mtas:
                m.stop()
            relay.reap_all()
        print("relay", flush=True)
        rounds_of(["masqmail", "Postfix", "nullmailer"], a.rounds,
                  lambda name, r: self.relay_one(name, os.path.join(tmp, f"relay-{r}")))
        self.size_phase()

    def idle_phase(self, mtas):
        a = self.a
        for m in mtas:
            for _ in range(a.queued):
                submit.submit(m.sendmail, m.env)
        for m in mtas:
            wait_settled(m, a.queued)
        time.sleep(2)
        print(f"idle {a.idle} s, {a.queued} messages queued, uplink down", flush=True)
        for m in mtas:
            note_exes(m, self.seen)
        switches, self.idle_exact = watch_switches(mtas, a.idle)
        for m in mtas:
            n, procs, born, born_n = switches[m.name]
            pss = sum(pss_kib(p) for p in m.procs())
            self.idle[m.name] = (n, procs, born, born_n, pss)
            print(f"  {m.name:<10} {n} context switches, {procs} processes + {born} started "
                  f"({born_n} of the switches), PSS {pss} KiB", flush=True)

    def load_phase(self, mtas, phase, n, one):
        """one(mta, sessions) -> (msg/s, CPU ms/msg) for n messages."""
        def run(m, _):
            for p in (1, self.a.p):
                if m.name == "nullmailer":
                    m.empty()  # see the report: its runner retries the whole queue
                    r0, i0 = m.runner_cpu(), m.inetd_own_cpu()
                rate, cpu = one(m, p)
                note_exes(m, self.seen)
                extra = {}
                if m.name == "nullmailer":
                    extra = {"runner": (m.runner_cpu() - r0) / n * 1e3,
                             "inetd": (m.inetd_own_cpu() - i0) / n * 1e3}
                self.add((phase, p, m.name), rate, cpu, **extra)
        rounds_of(mtas, self.a.rounds, run)

    def relay_one(self, name, d):
        if name in self.na:
            return
        os.makedirs(d, mode=0o755, exist_ok=True)
        port = smtp_accept.free_port()
        _, stop_sink = relay.start_sink(port)
        try:
            sub = os.path.join(d, name)
            if name == "masqmail":
                os.makedirs(sub)
                wall, cpu = relay.masqmail(sub, self.binary, self.a.n, port)
            elif name == "Postfix":
                os.makedirs(sub)
                wall, cpu = relay.postfix(sub, self.a.n, port)
            else:
                wall, cpu = nullmailer.flush(d, self.nm_root, self.a.n, port)
        finally:
            stop_sink()
            relay.reap_all()
        self.add(("relay", 1, name), self.a.n / wall, cpu / self.a.n * 1e3, wall=wall)

    def size_phase(self):
        exes = {"masqmail": [self.binary],
                "Postfix": [shutil.which(p) or p for p in POSTFIX_PROGRAMS]
                + [os.path.join(out("postconf", "-h", "daemon_directory"), p)
                   for p in POSTFIX_DAEMONS]}
        if self.nm_root:
            exes["nullmailer"] = [os.path.join(self.nm_root, p) for p in nullmailer.PROGRAMS]
        for name, seen in self.seen.items():
            if name != "nullmailer":  # its programs ran from copies of the same files
                exes[name] = sorted(set(exes[name]) | seen)
        for name, files in exes.items():
            files = {os.path.realpath(f) for f in files}
            self.sizes[name] = (sorted(os.path.basename(f) for f in files),) + footprint(files)
        self.cross = cross_sizes(self.target_dir)


# --- the document --------------------------------------------------------------------

def ms(x):
    return f"{x:.2f} ms"


def spread(xs, digits, unit=""):
    """The median, and the range when there is more than one round."""
    xs = sorted(xs)
    f = lambda x: f"{x:.{digits}f}"
    return f(statistics.median(xs)) + unit + (f" ({f(xs[0])}–{f(xs[-1])})" if len(xs) > 1 else "")


def verdict(ok):
    return "met" if ok else "**NOT met**"


def write(rep, path, header):
    a, res = rep.a, rep.res
    names = ["masqmail", "Postfix", "nullmailer"]
    med = lambda key, i: statistics.median(r[i] for r in res[key]) if key in res else None
    L = list(header)

    def na(name, why="n/a"):
        return f"n/a: {rep.na[name]}" if name in rep.na else why

    def table(head, data, cells, pre=(), why="n/a", header=True):
        """A row per MTA: pre, its name, then cells(data[name]), or n/a."""
        if header:
            L.extend(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)])
        for name in names:
            row = list(pre) + [name]
            row += cells(data[name]) if name in data else [na(name, why)]
            row += [""] * (len(head) - len(row))
            L.append("| " + " | ".join(row) + " |")

    def rounds(rows):
        return [spread([r[0] for r in rows], 0), spread([r[1] for r in rows], 2, " ms")]

    def load_table(phase, clients):
        for p in (1, a.p):
            head = [clients, "MTA", "messages/s", "CPU per message"]
            data = {k[2]: rows for k, rows in res.items() if k[:2] == (phase, p)}
            table(head, data, rounds, pre=[str(p)], header=p == 1)
        L.append("")

    def nullmailer_note(phase):
        rows = [r for p in (1, a.p) for r in res.get((phase, p, "nullmailer"), [])]
        if rows:
            runner = statistics.median(r[2]["runner"] for r in rows)
            inetd = statistics.median(r[2]["inetd"] for r in rows)
            L.append(f"Of nullmailer's CPU per message, nullmailer-send's retries of the queue "
                     f"took {ms(runner)} (median of all its runs of this table)"
                     + (f"; the accept loop standing in for inetd used {ms(inetd)} more, "
                        "not counted" if phase == "smtp" else "") + ".")
            L.append("")

    # Budgets
    L += ["## DESIGN budgets (§9), masqmail", "",
          "Computed from this run's figures below.", "",
          "| budget | measured | |", "|---|---|---|"]
    for p in (1, a.p):
        mm, pf = med(("smtp", p, "masqmail"), 0), med(("smtp", p, "Postfix"), 0)
        if mm and pf:
            L.append(f"| SMTP accept faster than Postfix ({p} session{'s' if p > 1 else ''}) | "
                     f"{mm:.0f} vs {pf:.0f} msg/s: {mm / pf:.2f}x | {verdict(mm > pf)} |")
        mm, pf = med(("smtp", p, "masqmail"), 1), med(("smtp", p, "Postfix"), 1)
        if mm and pf:
            L.append(f"| CPU per accepted message ≤ ½ of Postfix's ({p} session{'s' if p > 1 else ''}) | "
                     f"{ms(mm)} vs {ms(pf)}: {mm / pf:.2f}x | {verdict(mm <= pf / 2)} |")
    if "masqmail" in rep.idle:
        n, _, _, _, pss = rep.idle["masqmail"]
        L.append(f"| idle wakeups 0 per minute | {n * 60 / a.idle:.1f} per minute ({n} in {a.idle} s) "
                 f"| {verdict(n == 0)} |")
        L.append(f"| idle PSS ≤ 1 MiB | {pss} KiB | {verdict(pss * KIB <= MIB)} |")
    if "masqmail" in rep.bytes:
        b, limit = rep.bytes["masqmail"], len(submit.MSG) + KIB
        L.append(f"| bytes written per message ≤ message + 1 KiB | {b:.0f} for a {len(submit.MSG)}-byte "
                 f"message (limit {limit}) | {verdict(b <= limit)} |")
    else:
        L.append("| bytes written per message ≤ message + 1 KiB | n/a: strace is not installed | |")
    L.append("| route up → first SMTP connect ≤ 50 ms | n/a: not measured here (bench/idle.py, "
             "in network namespaces) | |")
    for what, limit, shown in (("all features", 1.5 * MIB, "1.5 MiB"),
                               ("without tls", 512 * KIB, "512 KiB")):
        budget = f"| mipsel static binary, {what}, ≤ {shown} |"
        if what in rep.cross:
            L.append(f"{budget} {rep.cross[what]:,} bytes | {verdict(rep.cross[what] <= limit)} |")
        else:
            L.append(f"{budget} not built in this run | |")
    L.append("")

    L += ["## SMTP accept", "",
          f"Client: Postfix's `smtp-source`, {a.n} messages of 1 KiB per run to one remote "
          "recipient, one connection per message, 1 and "
          f"{a.p} parallel sessions; messages/s as the client sees them (its wall time). "
          "Server side: masqmail's `daemon` (a worker process per connection); Postfix's "
          "`smtpd` under its `master`; nullmailer's `nullmailer-smtpd`, one per connection, "
          "started by a small Python accept loop standing in for inetd (nullmailer has no "
          "listener). CPU per message: user + system time of every process of the MTA "
          "(reaped ones included) from the client's start until the MTA has settled "
          "(masqmail: every worker and queue run reaped; Postfix: every message deferred; "
          "nullmailer: nullmailer-send's retry pass over all of them done). "
          f"Median of {a.rounds} round(s), range in parentheses.", ""]
    load_table("smtp", "sessions")
    nullmailer_note("smtp")

    L += ["## Local submission", "",
          f"Client: each MTA's own `sendmail -t -i` command, {a.submissions} submissions of a "
          f"{len(submit.MSG)}-byte message per run, one after the other (1) and from {a.p} "
          "threads at once, each submission a new process: masqmail's `sendmail` (the one "
          "binary) writes the queue itself; Postfix's `sendmail` hands the message to "
          "`postdrop` and its `pickup`, `cleanup` and `qmgr` take it from there; nullmailer's "
          "`sendmail` runs `nullmailer-inject`, which runs `nullmailer-queue`. messages/s as "
          "the submitting loop sees them; CPU per message: the sendmail processes and their "
          "children, plus every process of the MTA's running daemon until it has settled "
          f"(as above). Median of {a.rounds} round(s).", ""]
    load_table("submit", "submitters")
    nullmailer_note("submit")
    if "nullmailer" not in rep.na:
        L += ["nullmailer's queue is emptied before each of its runs (above and here): "
              "nullmailer-send has no notion of an uplink and, with each new message, tries "
              "every queued message again (a fork of its `smtp` module and a refused "
              "connection each), so with the queue of the earlier runs kept each run would "
              "cost more than the one before. masqmail's and Postfix's queues are kept "
              "from run to run.", ""]

    L += ["## Relay", "",
          f"{a.n} messages of {len(relay.MSG)} bytes queued while the uplink is down, then "
          "flushed to one Postfix `smtp-sink` on loopback; wall time from the start of the "
          "flush until the queue is empty. masqmail: `sendmail -odq`, then `runq` with a "
          "permanent smarthost route (one SMTP session, messages pipelined one after the "
          "other); Postfix: messages deferred (`defer_transports = smtp`), then `master` "
          "restarted without it and `postqueue -f` (relayhost, up to 20 parallel "
          "sessions); nullmailer: messages queued with no `nullmailer-send` running, then "
          "`nullmailer-send` started with its remote on the sink (one `smtp` process and "
          "connection per message). CPU per message: every process of the MTA during the "
          f"flush (this script is their subreaper). Median of {a.rounds} round(s).", ""]
    table(["MTA", "wall", "messages/s", "CPU per message"],
          {k[2]: rows for k, rows in res.items() if k[0] == "relay"},
          lambda rows: [spread([r[2]["wall"] for r in rows], 2, " s")] + rounds(rows))
    L.append("")

    L += ["## Idle", "",
          f"First phase of the run: {a.queued} messages queued in each MTA with its "
          f"`sendmail`, uplink down, then {a.idle} s of nothing (all three at once, 2 s after "
          "each had settled). Context switches: voluntary + involuntary "
          "(/proc/PID/status) of all the MTA's processes, read every 0.5 s: those running "
          "at the start count from then, those started meanwhile from their birth; "
          + ("a process that ends counts up to its exit, from the kernel's exit record "
             "(taskstats), so one that starts and ends between two readings counts too. "
             if rep.idle_exact else
             "a process that ends counts up to its last reading (the kernel's exit records "
             "could not be had), so one that starts and ends between two readings is "
             "missed. ") + "PSS: the sum of "
          "/proc/PID/smaps_rollup Pss of its processes at the end of the window "
          "(nullmailer: `nullmailer-send` only; the Python accept loop standing in for "
          "inetd is not counted). A single window: the figures of processes that start "
          "vary from run to run with the machine's load (involuntary switches, page-ins).", ""]
    table(["MTA", "processes", "started meanwhile (their switches)",
           f"context switches in {a.idle} s", "per minute", "PSS"], rep.idle,
          lambda i: [str(i[1]), f"{i[2]} ({i[3]})", str(i[0]), f"{i[0] * 60 / a.idle:.1f}",
                     f"{i[4]:,} KiB"])
    L.append("")
    if rep.idle.get("nullmailer", (0, 0, 0))[2]:
        L += ["nullmailer-send wakes when its pause timer runs out (`pausetime`, 60 s by "
              "default, counted from its last pass over the queue and doubled after each "
              "wait that ends with nothing new) and then tries every queued message again: "
              "the processes it started in the window are those tries, each a fork of its "
              "`smtp` module and a refused connection. Over a longer window its rate falls "
              "as the pause doubles.", ""]

    L += ["## Spool bytes per message", "",
          f"{a.strace} submissions of the {len(submit.MSG)}-byte message with each MTA's "
          "`sendmail -t -i`, each under `strace -f`, while another strace follows all of "
          "the MTA's running processes (and the ones they start): the bytes that write, "
          "writev, pwrite64 and pwritev calls wrote to files under the MTA's queue "
          "directory, per message (masqmail: its spool; Postfix: its queue directory, "
          "defer logs included; nullmailer: its queue, tmp and failed directories).", ""]
    table(["MTA", "bytes written per message"], rep.bytes, lambda b: [f"{b:.0f}"],
          why="n/a: strace is not installed")
    L.append("")

    L += ["## Size", "",
          "The executables each MTA ran in this benchmark (Postfix: its programs on these "
          "paths, and any other seen running) and the shared libraries they load (`ldd`), "
          "in bytes as installed (files counted once).", ""]
    table(["MTA", "executables", "bytes", "shared libraries", "bytes", "total"], rep.sizes,
          lambda s: [", ".join(s[0]), f"{s[1]:,}", ", ".join(s[3]), f"{s[2]:,}", f"{s[1] + s[2]:,}"])
    L.append("")
    if rep.cross:
        L.append(f"masqmail's static {CROSS_TARGET} build (stripped, no shared libraries; as "
                 "`cross/build.sh --both` left it in the cross target directory, reported by "
                 "`cross/size.sh`): "
                 + ", ".join(f"{what} {b:,} bytes" for what, b in rep.cross.items()) + ".")
    else:
        L.append(f"masqmail's static {CROSS_TARGET} build: not built in this run "
                 "(`cross/build.sh --both` puts it where `cross/size.sh` finds it).")
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=1000,
                    help="messages per run of the SMTP accept and the relay (default 1000)")
    ap.add_argument("--submissions", type=int, default=500,
                    help="messages per run of the local submission (default 500)")
    ap.add_argument("-p", type=int, default=4, help="parallel sessions/submitters (default 4)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (default 3)")
    ap.add_argument("--idle", type=int, default=60, help="idle seconds measured (default 60)")
    ap.add_argument("--queued", type=int, default=10, help="messages queued while idle (default 10)")
    ap.add_argument("--strace", type=int, default=20,
                    help="messages traced for the spool bytes (default 20)")
    ap.add_argument("--bin", help="masqmail binary (default: cargo build --release --locked)")
    ap.add_argument("--dir", default="/var/tmp", help="where the queues live (default /var/tmp)")
    ap.add_argument("--out", default=os.path.join(REPO, "doc", "PERFORMANCE.md"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: Postfix starts as root, masqmail drops to the mail user")
    command = " ".join(shlex.quote(x) for x in
                       [os.path.relpath(os.path.abspath(sys.argv[0]), REPO)] + sys.argv[1:])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t0, load0 = time.monotonic(), os.getloadavg()
    if a.bin:
        binary = os.path.abspath(a.bin)
        target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    else:
        binary, target_dir = build()
    smtp_accept.ensure_postfix()
    relay.subreaper()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    tmp = tempfile.mkdtemp(prefix="masqmail-report-", dir=a.dir)
    os.chmod(tmp, 0o755)  # Postfix's own users must reach their queue
    rep = Report(a, binary, target_dir)
    try:
        rep.run(tmp)
        host = machine(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load1, secs = os.getloadavg(), time.monotonic() - t0
    fmt_load = lambda la: " ".join(f"{x:.2f}" for x in la)
    header = [
        "# Performance: masqmail, Postfix and nullmailer side by side", "",
        f"Generated by `bench/report.py`; do not edit, run it again. {date}, "
        f"`{command}` (as root), {secs / 60:.1f} minutes.", "",
        f"- machine: {host}",
        f"- load average (1, 5, 15 min): {fmt_load(load0)} at the start, {fmt_load(load1)} at "
        "the end (the machine may have been shared with other work)",
        f"- masqmail: commit {masqmail_version()}, release build (`cargo build --release --locked`)",
        f"- Postfix {out('postconf', '-d', '-h', 'mail_version')} (the distribution's package)",
        "- nullmailer " + (f"{rep.nm_version} (Debian's package, unpacked privately by "
                           "bench/nullmailer.py, run from each instance's own directory with "
                           "NULLMAILER_TEST_PREFIX; nothing is installed or created outside it)"
                           if rep.nm_version else f"n/a: {rep.na.get('nullmailer')}"),
        "- all on loopback, each MTA in its own temporary directory, all durable (fsync "
        "before the reply), uplink down: masqmail's route offline, Postfix with "
        "`defer_transports = smtp`, nullmailer's remote a loopback port where nothing listens",
        "",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    write(rep, a.out, header)
    print(f"wrote {a.out} ({secs / 60:.1f} minutes)")


if __name__ == "__main__":
    main()
