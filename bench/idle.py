#!/usr/bin/env python3
"""Idle wakeups and route-up latency of the masqmail daemon, with Postfix and
the original masqmail's `-q` timer for comparison. Needs root (network
namespaces); every address used lives in namespaces made here.

    bench/idle.py [--seconds 60] [--samples 20] [--bin target/release/masqmail]
                  [--no-postfix] [--postfix-settle 110]
                  [--orig PATH --orig-interval 60]

1. Idle: the daemon runs in a network namespace with online_detect netlink,
   3 messages queued for its one route, and no default route (the route is
   offline). Over --seconds, the daemon's context switches (voluntary +
   involuntary, /proc/PID/status) are counted: every wakeup of the process
   is one. Budget: 0. Its PSS (/proc/PID/smaps_rollup) is shown too.
2. Route up -> first SMTP connect: --samples times, a message waits, then
   `route add default` is written to an `ip -batch` already running in the
   namespace (so no process start-up is timed) and the sink, in a second
   namespace reachable only through that default route, notes the time of
   the accept (CLOCK_MONOTONIC, shared by both). Median, min, max. Budget:
   50 ms.
3. Postfix (Debian's package, installed with apt when missing), configured
   the way its DIALUP_README says for an intermittent link: defer_transports
   = smtp, 3 messages deferred, its own config directory in a namespace.
   After --postfix-settle seconds (the SMTP-spawned processes exit after
   max_idle = 100 s) the context switches of the master and all its
   children are summed over --seconds; processes born or gone meanwhile are
   counted (their own switches are not visible).
4. The original masqmail's habit: `masqmail -bd -qINTERVAL`, which wakes
   every INTERVAL and forks a queue run (which runs online_query) whether
   or not anything can go out. With --orig PATH (a masqmail 1.0 binary you
   built; this script does not fetch or build it) the daemon's own
   switches over --seconds are measured with --orig-interval (default 60 s,
   so a run falls in the window), and the cost of one queue run
   (`masqmail -q`, switches of the process and its children from
   getrusage) is measured 5 times; the per-minute cost for a 5 and a 30
   minute interval is then (runs per minute) x (cost per run).
"""
import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from smtp_accept import pss_kib

SINK = r"""
import socket, sys, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(16)
print("READY", flush=True)
while True:
    c, _ = l.accept()
    print("C %d" % time.monotonic_ns(), flush=True)
    f = c.makefile("rb")
    c.sendall(b"220 sink\r\n")
    data = False
    for line in f:
        if data:
            if line == b".\r\n":
                data = False
                c.sendall(b"250 ok\r\n")
                print("D", flush=True)
            continue
        cmd = line.strip().upper()
        if cmd.startswith(b"EHLO") or cmd.startswith(b"HELO"):
            c.sendall(b"250 sink\r\n")
        elif cmd == b"DATA":
            data = True
            c.sendall(b"354 go\r\n")
        elif cmd == b"QUIT":
            c.sendall(b"221 bye\r\n")
            break
        else:
            c.sendall(b"250 ok\r\n")
    c.close()
"""

MSG = b"To: bench@example.org\nSubject: idle bench\n\nhello\n"


def sh(*args, **kw):
    subprocess.run(args, check=True, **kw)


def ctx(pid):
    n = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                n += int(line.split()[1])
    return n


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(p))
    return out


class Net:
    """Namespace `d` (the MTA) joined by veth to `s` (the sink, on an
    address reachable only through a default route via s)."""

    def __init__(self, tag, n):
        self.d, self.s = f"mmb-{tag}-d", f"mmb-{tag}-s"
        self.dev, self.peer = f"mmb{n}d", f"mmb{n}s"
        self.gw, self.sink_ip = f"10.211.{n}.1", f"10.212.{n}.1"
        for ns in (self.d, self.s):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
            sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", self.dev, "netns", self.d, "type", "veth",
           "peer", "name", self.peer, "netns", self.s)
        for args in (["lo", "up"], [self.peer, "up"]):
            sh("ip", "-n", self.s, "link", "set", *args)
        sh("ip", "-n", self.s, "addr", "add", f"{self.gw}/24", "dev", self.peer)
        sh("ip", "-n", self.s, "addr", "add", f"{self.sink_ip}/32", "dev", "lo")
        for args in (["lo", "up"], [self.dev, "up"]):
            sh("ip", "-n", self.d, "link", "set", *args)
        sh("ip", "-n", self.d, "addr", "add", f"10.211.{n}.2/24", "dev", self.dev)
        self.sink = None

    def start_sink(self, port=2525):
        self.sink = subprocess.Popen(
            ["ip", "netns", "exec", self.s, sys.executable, "-c", SINK, self.sink_ip, str(port)],
            stdout=subprocess.PIPE, text=True)
        assert self.sink.stdout.readline().strip() == "READY"

    def close(self):
        if self.sink:
            self.sink.kill()
            self.sink.wait()
        for ns in (self.d, self.s):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


class Masqmail:
    def __init__(self, binary, d, net):
        self.bin, self.d = binary, d
        os.makedirs(d)
        self.spool = os.path.join(d, "spool")
        self.conf = os.path.join(d, "masqmail.conf")
        with open(self.conf, "w") as f:
            f.write(
                "config masqmail 'main'\n"
                "\toption run_as_user '1'\n"
                "\toption host_name 'bench.example'\n"
                f"\toption spool_dir '{self.spool}'\n"
                "\toption log_level '5'\n"
                "\tlist listen_addresses '127.0.0.1:2525'\n"
                "\toption online_detect 'netlink'\n"
                "config route 'wan'\n"
                f"\toption mail_host '{net.sink_ip}:2525'\n"
                "\toption tls 'none'\n")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", net.d, binary, "-C", self.conf, "daemon"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(d, "daemon.log"), "w"))
        self.pid = self.proc.pid
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(self.spool, "control")):
            if time.monotonic() > deadline:
                sys.exit("masqmail daemon did not start")
            time.sleep(0.05)

    def submit(self):
        sh(self.bin, "-C", self.conf, "-t", "-i", input=MSG)

    def routes(self):
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.path.join(self.spool, "control"))
        s.sendall(b"routes\n")
        out = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            out += b
        return out.decode()

    def wait_route(self, state):
        deadline = time.monotonic() + 10
        while not self.routes().startswith(f"wan {state}"):
            if time.monotonic() > deadline:
                sys.exit(f"route never became {state}: {self.routes()}")
            time.sleep(0.02)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)


def bench_masqmail(args, tmp):
    net = Net("mm", 1)
    try:
        net.start_sink()
        m = Masqmail(args.bin, os.path.join(tmp, "masqmail"), net)
        for _ in range(3):
            m.submit()
        time.sleep(2)
        c0, t0 = ctx(m.pid), time.monotonic()
        time.sleep(args.seconds)
        c1, t1 = ctx(m.pid), time.monotonic()
        kids = children(m.pid)
        idle = {"switches": c1 - c0, "seconds": t1 - t0, "pss_kib": pss_kib(m.pid),
                "children": len(kids)}
        print(f"masqmail idle: {c1 - c0} context switches in {t1 - t0:.0f} s "
              f"(3 messages queued, route offline), PSS {idle['pss_kib']} KiB, "
              f"{len(kids)} children", flush=True)

        # Route up -> first connect.
        batch = subprocess.Popen(["ip", "-n", net.d, "-force", "-batch", "-"],
                                 stdin=subprocess.PIPE, text=True)
        # The 3 queued messages go out with the first route up.
        lat = []
        for i in range(args.samples + 1):
            if i > 0:
                m.submit()
                time.sleep(0.3)  # scanned, queue run found no route
            start = time.monotonic_ns()
            batch.stdin.write(f"route add default via {net.gw}\n")
            batch.stdin.flush()
            line = net.sink.stdout.readline().split()
            assert line[0] == "C", line
            if i > 0:
                lat.append((int(line[1]) - start) / 1e6)
            # Wait for the deliveries to finish, then take the route away.
            want = 3 if i == 0 else 1
            done = 0
            while done < want:
                line = net.sink.stdout.readline().split()
                if line and line[0] == "D":
                    done += 1
            time.sleep(0.1)
            batch.stdin.write("route del default\n")
            batch.stdin.flush()
            m.wait_route("offline")
        batch.stdin.close()
        batch.wait()
        print(f"route up -> first SMTP connect, {len(lat)} samples: median "
              f"{statistics.median(lat):.1f} ms, min {min(lat):.1f}, max {max(lat):.1f}",
              flush=True)
        m.stop()
        return idle, lat
    finally:
        net.close()


# --- Postfix -------------------------------------------------------------------

POSTFIX = "/usr/sbin/postfix"


def ensure_postfix():
    if os.path.exists(POSTFIX):
        return
    print("installing postfix with apt", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sh("sh", "-c", "echo 'postfix postfix/main_mailer_type select No configuration'"
       " | debconf-set-selections")
    sh("apt-get", "update", "-qq", env=env)
    sh("apt-get", "install", "-y", "-qq", "postfix", env=env, stdout=subprocess.DEVNULL)


POSTFIX_MAIN = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.example
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:1
defer_transports = smtp
smtp_dns_support_level = disabled
biff = no
"""


def bench_postfix(args, tmp):
    ensure_postfix()
    d = os.path.join(tmp, "postfix")
    conf = os.path.join(d, "etc")
    for sub in ("etc", "data", "queue"):
        os.makedirs(os.path.join(d, sub))
    shutil.chown(os.path.join(d, "data"), "postfix", "postfix")
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write(POSTFIX_MAIN.format(d=d))
    # Debian's own master.cf (pickup and qmgr with their wakeup timers),
    # without chroot (a private queue directory has no chroot files).
    out = []
    with open("/usr/share/postfix/master.cf.dist") as f:
        for line in f:
            w = line.split()
            if w and not line[0].isspace() and not line.startswith("#") and len(w) >= 8:
                w[4] = "n"
                line = "  ".join(w) + "\n"
            out.append(line)
    with open(os.path.join(conf, "master.cf"), "w") as f:
        f.writelines(out)
    ns = "mmb-postfix"
    subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh(POSTFIX, "-c", conf, "check")  # makes the queue's directories
        sh("ip", "netns", "exec", ns, POSTFIX, "-c", conf, "start")
        with open(os.path.join(d, "queue/pid/master.pid")) as f:
            master = int(f.read().strip())
        inject = ("import smtplib\n"
                  "s = smtplib.SMTP('127.0.0.1', 25)\n"
                  "for _ in range(3):\n"
                  "    s.sendmail('bench@postfix.bench.example', ['bench@example.org'],\n"
                  "               b'Subject: idle bench\\r\\n\\r\\nhello\\r\\n')\n"
                  "s.quit()\n")
        sh("ip", "netns", "exec", ns, sys.executable, "-c", inject)
        print(f"postfix: 3 messages deferred; waiting {args.postfix_settle} s for the "
              "SMTP-spawned processes to exit (max_idle)", flush=True)
        time.sleep(args.postfix_settle)
        procs = [master] + children(master)
        names = {}
        for p in procs:
            try:
                with open(f"/proc/{p}/comm") as f:
                    names[p] = f.read().strip()
            except OSError:
                pass
        start = {p: ctx(p) for p in procs}
        seen = set(procs)
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.seconds:
            time.sleep(1)
            seen.update(children(master))
        t1 = time.monotonic()
        now = [master] + children(master)
        total, per = 0, []
        for p in procs:
            if p in now:
                delta = ctx(p) - start[p]
                total += delta
                per.append(f"{names.get(p, p)} {delta}")
        born = len(seen - set(procs))
        gone = len(set(procs) - set(now))
        print(f"postfix idle: {total} context switches in {t1 - t0:.0f} s "
              f"({', '.join(per)}); {born} process(es) started, {gone} ended meanwhile",
              flush=True)
        subprocess.run([POSTFIX, "-c", conf, "stop"], stderr=subprocess.DEVNULL)
        return {"switches": total, "seconds": t1 - t0, "born": born, "gone": gone,
                "per": per}
    finally:
        subprocess.run([POSTFIX, "-c", conf, "stop"], stderr=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


# --- the original masqmail's -q timer ---------------------------------------------

def bench_orig(args, tmp):
    d = os.path.join(tmp, "orig")
    os.makedirs(os.path.join(d, "spool"))
    src = os.path.dirname(os.path.dirname(os.path.abspath(args.orig)))
    route = os.path.join(d, "isp.route")
    with open(route, "w") as f:
        f.write('mail_host = "127.0.0.1:1"\n')
    conf = os.path.join(d, "masqmail.conf")
    with open(conf, "w") as f:
        f.write(f"""run_as_user = true
use_syslog = false
debug_level = 0
log_dir = "{d}"
spool_dir = "{d}/spool"
lock_dir = "{d}/locks"
pid_dir = "{d}"
host_name = "orig.bench.example"
listen_addresses = 127.0.0.1:2525
errmsg_file = "{src}/tpl/failmsg.tpl"
warnmsg_file = "{src}/tpl/warnmsg.tpl"
query_routes.isp = "{route}"
online_query = "/bin/cat {d}/online"
do_queue = false
""")
    for _ in range(3):
        sh(args.orig, "-C", conf, "-odq", "bench@example.org", input=MSG)
    # One queue run, as the daemon's timer forks it: switches of the
    # process and everything it waited for.
    costs = []
    for _ in range(5):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        sh(args.orig, "-C", conf, "-q")
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        costs.append((r1.ru_nvcsw + r1.ru_nivcsw) - (r0.ru_nvcsw + r0.ru_nivcsw))
    per_run = statistics.median(costs)
    ns = "mmb-orig"
    subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", ns, args.orig, "-C", conf, "-bd",
           f"-q{args.orig_interval}s")
        time.sleep(1)
        with open(os.path.join(d, "masqmail.pid")) as f:
            pid = int(f.read().strip())
        log = os.path.join(d, "masqmail.log")

        def started():
            try:
                with open(log) as f:
                    return f.read().count("Starting queue run.")
            except OSError:
                return 0
        r0, c0, t0 = started(), ctx(pid), time.monotonic()
        time.sleep(args.seconds)
        r1, c1, t1 = started(), ctx(pid), time.monotonic()
        runs = r1 - r0
        os.kill(pid, 15)
    finally:
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    daemon = c1 - c0
    total = daemon + runs * per_run
    print(f"original masqmail -bd -q{args.orig_interval}s: daemon {daemon} context "
          f"switches in {t1 - t0:.0f} s, {runs} queue run(s) forked (from its log); one "
          f"queue run (with its online_query) costs {per_run:.0f} switches (median of 5: "
          f"{costs}); in all about {total:.0f} in {t1 - t0:.0f} s", flush=True)
    per_wake = daemon / runs + per_run if runs else per_run
    for minutes in (1, 5, 30):
        print(f"  -q{minutes}m: {1 / minutes:.2f} timer wakeups/min, about "
              f"{per_wake / minutes:.1f} switches/min", flush=True)
    return {"daemon": c1 - c0, "seconds": t1 - t0, "runs": runs, "per_run": per_run}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--bin", default="target/release/masqmail")
    ap.add_argument("--no-postfix", action="store_true")
    ap.add_argument("--no-masqmail", action="store_true",
                    help="only the comparisons")
    ap.add_argument("--postfix-settle", type=int, default=110)
    ap.add_argument("--orig", help="a masqmail 1.0 binary built from its sources")
    ap.add_argument("--orig-interval", type=int, default=60)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    args.bin = os.path.abspath(args.bin)
    if not os.path.exists(args.bin):
        sys.exit(f"{args.bin}: build it first (cargo build --release)")
    tmp = tempfile.mkdtemp(prefix="masqmail-idle-")
    os.chmod(tmp, 0o755)  # Postfix's own users must reach their queue
    try:
        if not args.no_masqmail:
            bench_masqmail(args, tmp)
        if not args.no_postfix:
            bench_postfix(args, tmp)
        if args.orig:
            bench_orig(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
