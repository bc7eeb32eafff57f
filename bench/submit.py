#!/usr/bin/env python3
"""Durable submissions per second of `sendmail`, and its CPU time per message.

Runs the release binary (build it first: cargo build --release) N times as
`sendmail -t -i` with a 1 KiB message into a fresh spool on this machine,
sequentially and with P parallel submitters, and reports messages per second
and user+system CPU per message (from the children's rusage). Every
submission is durable (fsync of files and directories) before it exits 0.

    bench/submit.py [-n 500] [-p 4] [--bin target/release/masqmail]
"""
import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

MSG = ("To: bench@example.org\nSubject: benchmark\n\n" + ("x" * 71 + "\n") * 13).encode()


def config(d):
    spool = os.path.join(d, "spool")
    conf = os.path.join(d, "bench.conf")
    with open(conf, "w") as f:
        f.write(
            "config masqmail 'main'\n"
            "\toption run_as_user '1'\n"
            "\toption host_name 'bench.example'\n"
            f"\toption spool_dir '{spool}'\n"
            "\toption log_level '3'\n"
        )
    return conf, spool


def submit(sendmail, env=None):
    """One `sendmail -t -i` (sendmail: the command and its first
    arguments, e.g. -C CONF) of MSG."""
    r = subprocess.run(sendmail + ["-t", "-i"], input=MSG, env=env)
    if r.returncode != 0:
        sys.exit(f"{sendmail[0]} exited {r.returncode}")


def run(sendmail, n, parallel, env=None):
    """n submissions by `parallel` submitters: (messages/s, CPU ms per
    message of the sendmail processes and their children)."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    if parallel == 1:
        for _ in range(n):
            submit(sendmail, env)
    else:
        with ThreadPoolExecutor(parallel) as ex:
            list(ex.map(lambda _: submit(sendmail, env), range(n)))
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return n / wall, cpu / n * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("-p", type=int, default=4)
    ap.add_argument("--bin", default="target/release/masqmail")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="masqmail-bench-")
    try:
        sendmail = os.path.join(d, "sendmail")
        os.symlink(os.path.abspath(a.bin), sendmail)
        conf, spool = config(d)
        print(f"sendmail submissions, {len(MSG)}-byte message, spool on {d}")
        for p in (1, a.p):
            rate, cpu_ms = run([sendmail, "-C", conf], a.n, p)
            print(f"  {p} submitter(s): {rate:8.1f} msg/s  {cpu_ms:6.2f} ms CPU/msg  (n={a.n})")
        queued = len(os.listdir(os.path.join(spool, "outgoing")))
        if queued != 2 * a.n:
            sys.exit(f"expected {2 * a.n} queued messages, found {queued}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
