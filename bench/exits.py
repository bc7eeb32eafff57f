"""The context switches of processes as they end, from the kernel's
taskstats exit records (generic netlink; needs root and CONFIG_TASKSTATS).

Reading /proc now and then misses a process that starts and ends between
two readings (nullmailer-send's delivery attempts live a few
milliseconds); the kernel sends a record for every task that exits, with
its pid, its parent's pid and its voluntary and involuntary context
switches, to every socket registered for the CPUs it ran on.

    with Exits() as ex:     # raises OSError where taskstats is missing
        ...
        ex.records()        # [(pid, ppid, switches)], in order of exit
"""
import os
import socket
import struct
import threading

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 3, 1, 2
TASKSTATS_CMD_GET = 1
TASKSTATS_CMD_ATTR_REGISTER_CPUMASK = 3
TASKSTATS_TYPE_STATS, TASKSTATS_TYPE_AGGR_PID = 3, 4
# struct taskstats (linux/taskstats.h), offsets on every architecture:
# ac_pid, ac_ppid (u32) and nvcsw, nivcsw (u64, since version 2).
OFF_PID, OFF_PPID, OFF_NVCSW = 128, 132, 272


def attr(kind, payload):
    a = struct.pack("HH", 4 + len(payload), kind) + payload
    return a + b"\0" * (-len(a) % 4)


def parts(data, fmt, head):
    """(type, payload) of each length-type-value part of data: netlink
    messages (fmt "IH", head 16) or attributes (fmt "HH", head 4)."""
    off = 0
    while off + head <= len(data):
        n, kind = struct.unpack_from(fmt, data, off)
        if n < head:
            return
        yield kind, data[off + head:off + n]
        off += (n + 3) & ~3


def attrs(data):
    return ((kind & 0x3FFF, value) for kind, value in parts(data, "HH", 4))


def messages(data):
    return parts(data, "IH", 16)


class Exits:
    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
            self.sock.bind((0, 0))
            self.family = self.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY,
                                       attr(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0"))
            with open("/sys/devices/system/cpu/online") as f:
                cpus = f.read().strip()
            self.request(self.family, TASKSTATS_CMD_GET,
                         attr(TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, cpus.encode() + b"\0"))
        except OSError:
            self.sock.close()
            raise
        self.lost = False  # the socket's buffer ran over: some records are missing
        self._records, self._lock = [], threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def request(self, family, cmd, payload):
        """Send one generic netlink request and wait for its answer: the
        family id for CTRL_CMD_GETFAMILY, else None; OSError on an error."""
        body = struct.pack("BBH", cmd, 1, 0) + payload
        self.sock.send(struct.pack("IHHII", 16 + len(body), family,
                                   NLM_F_REQUEST | NLM_F_ACK, 1, 0) + body)
        found = None
        while True:
            for kind, msg in messages(self.sock.recv(65536)):
                if kind == NLMSG_ERROR:
                    err = struct.unpack_from("i", msg)[0]
                    if err:
                        raise OSError(-err, os.strerror(-err))
                    return found
                for a, value in attrs(msg[4:]):
                    if a == CTRL_ATTR_FAMILY_ID:
                        found = struct.unpack_from("H", value)[0]

    def _read(self):
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except OSError as e:
                if e.errno == 105:  # ENOBUFS
                    self.lost = True
                    continue
                return  # closed
            for kind, msg in messages(data):
                if kind != self.family:
                    continue
                for a, nested in attrs(msg[4:]):
                    if a != TASKSTATS_TYPE_AGGR_PID:
                        continue
                    for b, st in attrs(nested):
                        if b == TASKSTATS_TYPE_STATS and len(st) >= OFF_NVCSW + 16:
                            pid, ppid = struct.unpack_from("II", st, OFF_PID)
                            vol, invol = struct.unpack_from("QQ", st, OFF_NVCSW)
                            with self._lock:
                                self._records.append((pid, ppid, vol + invol))

    def records(self):
        with self._lock:
            return list(self._records)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()
