#!/usr/bin/env python3
"""Relay throughput: N queued messages flushed to an SMTP sink on loopback,
masqmail and Postfix side by side in one run.

Both MTAs get the same N messages (1 KiB each, one recipient) queued first,
without delivery; then the clock starts and the queue is flushed to the same
sink (Postfix's `smtp-sink`) through a smarthost route / relayhost. Reported
per MTA: wall time from the flush until the queue is empty, messages per
second, and CPU (user + system) per message of every process of the MTA
during the flush (this script makes itself a child subreaper, so even the
Postfix daemons that outlive their parent are counted when they exit).

    bench/relay.py [-n 2000] [--bin target/release/masqmail] [--runs 1]

Needs: the release binary (cargo build --release), python3, and the
postfix package (`smtp-sink` and Postfix itself; run as root, as CI does).
Without Postfix only masqmail is measured, against a small Python sink.
"""
import argparse
import ctypes
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MSG = ("Subject: relay benchmark\n\n" + ("x" * 71 + "\n") * 13).encode()
SENDER = "bench@bench.example"
RCPT = "sink@example.org"
POSTFIX_SBIN = "/usr/lib/postfix/sbin"


def subreaper():
    """Orphaned descendants become our children, so their rusage is ours."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("warning: prctl(PR_SET_CHILD_SUBREAPER) failed; CPU may be undercounted")


KEEP = set()  # children that live through the whole run (the sink)


def children():
    """PIDs whose parent is this process (orphans adopted included)."""
    me, out = os.getpid(), set()
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as f:
                st = f.read()
        except OSError:
            continue
        if int(st.rsplit(")", 1)[1].split()[1]) == me:
            out.add(int(e))
    return out


def reap_all(secs=60):
    """Wait for every child but the sink (and the orphans they leave)."""
    t = time.monotonic()
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            return
        if not (children() - KEEP):
            return
        if time.monotonic() - t > secs:
            sys.exit(f"children did not exit: {children() - KEEP}")
        time.sleep(0.01)


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class PySink:
    """A minimal SMTP sink, used only when smtp-sink is missing."""

    def __init__(self, port):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", port))
        self.ls.listen(64)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.ls.accept()
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        f = c.makefile("rb")
        c.sendall(b"220 sink\r\n")
        data = False
        for line in f:
            if data:
                if line == b".\r\n":
                    data = False
                    c.sendall(b"250 ok\r\n")
                continue
            cmd = line[:4].upper()
            if cmd == b"EHLO":
                c.sendall(b"250-sink\r\n250 PIPELINING\r\n")
            elif cmd == b"DATA":
                data = True
                c.sendall(b"354 go\r\n")
            elif cmd == b"QUIT":
                c.sendall(b"221 bye\r\n")
                return
            else:
                c.sendall(b"250 ok\r\n")

    def stop(self):
        self.ls.close()


def start_sink(port):
    if shutil.which("smtp-sink"):
        args = ["smtp-sink"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        p = subprocess.Popen(args + [f"127.0.0.1:{port}", "256"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        KEEP.add(p.pid)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                def stop():
                    p.kill()
                    p.wait()
                    KEEP.discard(p.pid)
                return "smtp-sink", stop
            except OSError:
                time.sleep(0.05)
        sys.exit("smtp-sink did not start")
    s = PySink(port)
    return "python sink", s.stop


def submit_all(argv, n, env=None):
    def one(_):
        r = subprocess.run(argv, input=MSG, env=env)
        if r.returncode != 0:
            sys.exit(f"{argv[0]} exited {r.returncode}")
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(one, range(n)))


# --- masqmail ---------------------------------------------------------------

def masqmail(d, binary, n, port):
    spool = os.path.join(d, "spool")
    conf = os.path.join(d, "masqmail.conf")
    with open(conf, "w") as f:
        f.write(
            "config masqmail 'main'\n"
            "\toption run_as_user '1'\n"
            "\toption host_name 'bench.example'\n"
            f"\toption spool_dir '{spool}'\n"
            "\toption log_level '3'\n"
            f"\toption resolv_conf '{d}/resolv.conf'\n"
            "\nconfig route 'sink'\n"
            "\toption permanent '1'\n"
            f"\toption mail_host '127.0.0.1:{port}'\n"
            "\toption tls 'none'\n"
        )
    with open(os.path.join(d, "resolv.conf"), "w") as f:
        f.write("nameserver 127.0.0.1:9\n")
    for name in ("sendmail", "runq"):
        os.symlink(os.path.abspath(binary), os.path.join(d, name))
    submit_all([os.path.join(d, "sendmail"), "-C", conf, "-odq", "-f", SENDER, RCPT], n)
    out = os.path.join(spool, "outgoing")
    if len(os.listdir(out)) != n:
        sys.exit(f"masqmail: {len(os.listdir(out))} queued, wanted {n}")
    cpu0, t0 = children_cpu(), time.monotonic()
    r = subprocess.run([os.path.join(d, "runq"), "-C", conf])
    wall = time.monotonic() - t0
    reap_all()
    cpu = children_cpu() - cpu0
    left = len(os.listdir(out))
    if r.returncode != 0 or left:
        sys.exit(f"masqmail: runq exited {r.returncode}, {left} messages left")
    return wall, cpu


# --- Postfix ----------------------------------------------------------------

def postfix_version():
    r = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True)
    return r.stdout.strip() or "?"


def postfix_setup(d, port, defer):
    conf = os.path.join(d, "etc")
    for sub in ("etc", "queue", "data"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    shutil.chown(os.path.join(d, "data"), "postfix")
    main = f"""compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
myhostname = bench.example
mydomain = bench.example
myorigin = bench.example
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
relayhost = [127.0.0.1]:{port}
smtp_host_lookup = native
smtp_tls_security_level = none
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
defer_transports = {'smtp' if defer else ''}
"""
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write(main)
    lines = []
    with open("/etc/postfix/master.cf") as f:
        for line in f:
            w = line.split()
            if len(w) >= 8 and not line[0].isspace() and not line.startswith("#"):
                if w[1] == "inet":
                    continue  # no smtpd: messages come in by sendmail
                w[4] = "n"  # no chroot
                line = "  ".join(w) + "\n"
            lines.append(line)
    with open(os.path.join(conf, "master.cf"), "w") as f:
        f.writelines(lines)
    return conf


def postfix_queue_count(d, sub):
    total = 0
    for dirpath, _, files in os.walk(os.path.join(d, "queue", sub)):
        total += len(files)
    return total


def wait_until(pred, what, secs=600):
    t = time.monotonic()
    while not pred():
        if time.monotonic() - t > secs:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.01)


def master(conf):
    return subprocess.Popen([os.path.join(POSTFIX_SBIN, "master"), "-c", conf, "-d"],
                            start_new_session=True)


def stop_master(p):
    p.send_signal(signal.SIGTERM)
    p.wait()
    reap_all()


def postfix(d, n, port):
    conf = postfix_setup(d, port, defer=True)
    env = dict(os.environ, MAIL_CONFIG=conf)
    r = subprocess.run(["postfix", "-c", conf, "check"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"postfix check: {r.stderr}")
    # Queue the messages with delivery deferred: they end in deferred/.
    m = master(conf)
    try:
        submit_all(["/usr/sbin/sendmail", "-C", conf, "-f", SENDER, RCPT], n, env)
        wait_until(lambda: postfix_queue_count(d, "deferred") == n
                   and postfix_queue_count(d, "maildrop") == 0
                   and postfix_queue_count(d, "incoming") == 0
                   and postfix_queue_count(d, "active") == 0, "Postfix to queue")
    finally:
        stop_master(m)
    postfix_setup(d, port, defer=False)
    cpu0, t0 = children_cpu(), time.monotonic()
    m = master(conf)
    try:
        # postqueue -f fails until the master has its sockets up
        wait_until(lambda: subprocess.run(["postqueue", "-c", conf, "-f"], env=env,
                                          stderr=subprocess.DEVNULL).returncode == 0,
                   "Postfix to start", 30)
        empty = lambda: all(postfix_queue_count(d, q) == 0
                            for q in ("deferred", "active", "incoming", "maildrop"))
        wait_until(empty, "Postfix to flush")
        wall = time.monotonic() - t0
    finally:
        stop_master(m)
    cpu = children_cpu() - cpu0
    return wall, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--bin", default="target/release/masqmail")
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    subreaper()
    have_postfix = shutil.which("postqueue") and os.path.exists(os.path.join(POSTFIX_SBIN, "master"))
    if have_postfix and os.geteuid() != 0:
        print("Postfix needs root here; measuring masqmail only")
        have_postfix = False
    rows = []
    for run in range(a.runs):
        d = tempfile.mkdtemp(prefix="masqmail-relay-")
        os.chmod(d, 0o755)
        port = free_port()
        sink_name, stop_sink = start_sink(port)
        try:
            md = os.path.join(d, "masqmail")
            os.makedirs(md)
            w, c = masqmail(md, a.bin, a.n, port)
            rows.append(("masqmail", run, w, c))
            if have_postfix:
                pd = os.path.join(d, "postfix")
                os.makedirs(pd)
                w, c = postfix(pd, a.n, port)
                rows.append((f"Postfix {postfix_version()}", run, w, c))
        finally:
            stop_sink()
            reap_all()
            shutil.rmtree(d, ignore_errors=True)
    print(f"relay: {a.n} queued messages of {len(MSG)} bytes to {sink_name} on loopback, "
          f"{os.cpu_count()} CPUs")
    print("| MTA | run | wall s | msg/s | CPU ms/msg |")
    print("|---|---|---|---|---|")
    for name, run, w, c in rows:
        print(f"| {name} | {run + 1} | {w:.2f} | {a.n / w:.0f} | {c / a.n * 1e3:.3f} |")
    if have_postfix:
        mm = [r for r in rows if r[0] == "masqmail"]
        pf = [r for r in rows if r[0] != "masqmail"]
        best = lambda rs, i: min(r[i] for r in rs)
        print(f"masqmail / Postfix (best of {a.runs}): wall {best(mm, 2) / best(pf, 2):.2f}x, "
              f"CPU per message {best(mm, 3) / best(pf, 3):.2f}x")


if __name__ == "__main__":
    main()
