#!/usr/bin/env bash
# Load: Postfix's smtp-source against the daemon (release build).
#   bench/load.sh [MESSAGES] [SESSIONS] [MAX_CONNECTIONS]
# Defaults: 5000 messages, 50 parallel sessions, max_connections 20.
# smtp-source sends one message per connection. Past max_connections the
# daemon answers 421 and closes; smtp-source (-A) notes the refusal, but
# then writes HELO into the closed connection and stops with "lost
# connection" (its limit, not the server's), taking its other sessions
# down with it. So the 50 sessions are 50 client loops, each running
# `smtp-source -s 1 -m 1` until its share of the messages was accepted
# (exit 0), like an MTA that retries after a 421. The daemon relays
# everything to a sink on loopback. Checks: every connection got a 250
# for its message or a 421, every accepted message was delivered to the
# sink exactly once, the spool is empty at the end, no worker or zombie
# is left, the daemon lives; prints the supervisor's memory (RSS/PSS,
# sampled every 0.2 s) and the timings.
# Installs postfix (for smtp-source) when it is missing: needs root.
set -eu
cd "$(dirname "$0")/.."
msgs=${1:-5000}
sessions=${2:-50}
maxconn=${3:-20}

if ! command -v smtp-source >/dev/null 2>&1; then
  echo "load: installing postfix for smtp-source" >&2
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi
cargo build --release --locked -q
bin=$PWD/target/release/masqmail
[ -n "${CARGO_TARGET_DIR:-}" ] && bin=$CARGO_TARGET_DIR/release/masqmail

dir=$(mktemp -d /tmp/masqmail-load.XXXXXX)
pids=()
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "kept $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
sink_port=$(free_port)

# The sink: accepts everything, one line per message: the queue ID that
# masqmail's Received: field names, then the recipients.
cat >"$dir/sink.py" <<'PY'
import socket, sys, threading
port, out = int(sys.argv[1]), open(sys.argv[2], "a", buffering=1)
lock = threading.Lock()
def serve(c):
    try:
        session(c)
    except OSError:
        pass
    finally:
        c.close()
def session(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = c.makefile("rb")
    c.sendall(b"220 sink ESMTP\r\n")
    rcpts = []
    while True:
        l = f.readline()
        if not l:
            return
        u = l.upper()
        if u.startswith(b"EHLO") or u.startswith(b"HELO"):
            c.sendall(b"250-sink\r\n250 PIPELINING\r\n")
        elif u.startswith(b"RCPT"):
            rcpts.append(l[8:].strip().decode(errors="replace"))
            c.sendall(b"250 ok\r\n")
        elif u.startswith(b"DATA"):
            c.sendall(b"354 go\r\n")
            qid = "?"
            while True:
                d = f.readline()
                if d in (b".\r\n", b""):
                    break
                w = d.split()
                if qid == "?" and len(w) == 2 and w[0] == b"id" and d[:1] in (b" ", b"\t"):
                    qid = w[1].decode(errors="replace")
            with lock:
                out.write(qid + " " + " ".join(rcpts) + "\n")
            rcpts = []
            c.sendall(b"250 queued\r\n")
        elif u.startswith(b"QUIT"):
            c.sendall(b"221 bye\r\n")
            return
        else:
            c.sendall(b"250 ok\r\n")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(128)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
python3 "$dir/sink.py" "$sink_port" "$dir/delivered" &
pids+=($!)
# The sink listens before the first message can be relayed to it.
for _ in $(seq 100); do
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
    "$sink_port" 2>/dev/null && break
  sleep 0.1
done

cat >"$dir/masqmail.conf" <<CONF
config masqmail 'main'
	option run_as_user '1'
	option host_name 'load.example'
	option spool_dir '$dir/spool'
	option log_level '6'
	list listen_addresses '127.0.0.1:$port'
	list local_nets '127.0.0.0/8'
	option max_connections '$maxconn'
	option max_connections_per_ip '$maxconn'

config route 'sink'
	option permanent '1'
	option tls 'none'
	option mail_host '127.0.0.1:$sink_port'
CONF
"$bin" daemon -v -C "$dir/masqmail.conf" 2>"$dir/daemon.log" &
daemon=$!
pids+=("$daemon")
for _ in $(seq 100); do [ -S "$dir/spool/control" ] && break; sleep 0.1; done

# The sampler: supervisor RSS and PSS, its children, zombies among them.
(
  while kill -0 "$daemon" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$daemon/status" 2>/dev/null || echo 0)
    pss=$(awk '/^Pss:/{print $2}' "/proc/$daemon/smaps_rollup" 2>/dev/null || echo 0)
    kids=$( (grep -l "^PPid:[[:space:]]*$daemon\$" /proc/[0-9]*/status 2>/dev/null || true) | wc -l)
    zombies=$( (grep -l "^PPid:[[:space:]]*$daemon\$" /proc/[0-9]*/status 2>/dev/null || true) \
      | (xargs -r grep -l '^State:[[:space:]]*Z' 2>/dev/null || true) | wc -l)
    echo "$rss $pss $kids $zombies"
    sleep 0.2
  done
) >"$dir/samples" &
pids+=($!)

start=$(date +%s.%N)
# One client loop per session, each sending its share of the messages.
client() {
  local share=$1 out=$2 ok=0 tries=0
  while [ "$ok" -lt "$share" ] && [ "$tries" -lt $((share * 200)) ]; do
    tries=$((tries + 1))
    if smtp-source -A -s 1 -m 1 -l 1024 -M client.example \
        -f load@client.example -t rcpt@remote.example -N "127.0.0.1:$port" >>"$out" 2>&1; then
      ok=$((ok + 1))
    fi
  done
  echo "$tries" >"$out.tries"
}
cpids=()
for i in $(seq 0 $((sessions - 1))); do
  share=$(( msgs / sessions + (i < msgs % sessions ? 1 : 0) ))
  client "$share" "$dir/source.$i" &
  cpids+=($!)
done
wait "${cpids[@]}"
rounds=0
: >"$dir/source.out"
for i in $(seq 0 $((sessions - 1))); do
  cat "$dir/source.$i" >>"$dir/source.out" 2>/dev/null || true
  rounds=$((rounds + $(cat "$dir/source.$i.tries")))
done
sent=$(date +%s.%N)
spool_left() { find "$dir/spool/pool" "$dir/spool/incoming" "$dir/spool/outgoing" -type f | wc -l; }
for _ in $(seq 1200); do
  left=$(spool_left)
  [ "$left" -eq 0 ] && break
  sleep 0.1
done
done_at=$(date +%s.%N)
flushed=0
if [ "$left" -ne 0 ]; then
  # Deferred mail waits for its retry time; flush it (and say so).
  flushed=1
  "$bin" flush -C "$dir/masqmail.conf" || true
  for _ in $(seq 600); do
    left=$(spool_left)
    [ "$left" -eq 0 ] && break
    sleep 0.1
  done
fi
sleep 0.5

accepted=$(grep -c ': received from=' "$dir/daemon.log" || true)
refused=$(grep -c 'refused connection from' "$dir/daemon.log" || true)
delivered=$(wc -l <"$dir/delivered")
unique=$(cut -d' ' -f1 "$dir/delivered" | sort -u | wc -l)
# The accepted IDs and the delivered ones must be the same set.
grep ': received from=' "$dir/daemon.log" | sed 's/^masqmail: \([^:]*\):.*/\1/' | sort -u >"$dir/ids.accepted"
cut -d' ' -f1 "$dir/delivered" | sort -u >"$dir/ids.delivered"
mismatch=$(comm -3 "$dir/ids.accepted" "$dir/ids.delivered" | wc -l)
kids_left=$( (grep -l "^PPid:[[:space:]]*$daemon\$" /proc/[0-9]*/status 2>/dev/null || true) | wc -l)
read -r max_rss max_pss max_kids max_zombies < <(awk '
  {if($1>r)r=$1; if($2>p)p=$2; if($3>k)k=$3; if($4>z)z=$4}
  END{print r+0, p+0, k+0, z+0}' "$dir/samples")
idle_pss=$(awk '/^Pss:/{print $2}' "/proc/$daemon/smaps_rollup")
refusals_seen=$(grep -c 'rejected at server banner: 421' "$dir/source.out" || true)
other=$(grep -c -v -E '^$|rejected at server banner: 421|fatal: lost connection' "$dir/source.out" || true)

printf 'load: %d messages, %d sessions, max_connections %d\n' "$msgs" "$sessions" "$maxconn"
printf '  accepted %d; connections refused with 421: %d (smtp-source saw %d); smtp-source runs %d (one message each); other client errors %d\n' \
  "$accepted" "$refused" "$refusals_seen" "$rounds" "$other"
deferred=$(grep -c 'status=deferred' "$dir/daemon.log" || true)
printf '  delivered %d (%d distinct), deferred attempts %d, flush needed %d, spool left %d, workers left %d\n' \
  "$delivered" "$unique" "$deferred" "$flushed" "$left" "$kids_left"
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", a - b}'; }
printf '  accept phase %s s, all delivered after %s s\n' \
  "$(secs "$sent" "$start")" "$(secs "$done_at" "$start")"
printf '  supervisor: max RSS %d KiB, max PSS %d KiB, idle PSS %d KiB; max %d children, max %d zombies in a sample\n' \
  "$max_rss" "$max_pss" "$idle_pss" "$max_kids" "$max_zombies"
grep -v -E '^$' "$dir/source.out" | sed 's/[0-9]\+/N/g' | sort | uniq -c | sort -rn | head -5 | sed 's/^/  smtp-source: /' || true

fail=0
[ "$accepted" -ge "$msgs" ] || { echo "FAIL: only $accepted accepted"; fail=1; }
[ "$other" -eq 0 ] || { echo "FAIL: smtp-source saw other errors than 421"; fail=1; }
[ "$delivered" -eq "$accepted" ] || { echo "FAIL: delivered $delivered != accepted $accepted"; fail=1; }
[ "$mismatch" -eq 0 ] || { echo "FAIL: $mismatch IDs accepted but not delivered or the other way"; fail=1; }
[ "$unique" -eq "$delivered" ] || { echo "FAIL: duplicates at the sink"; fail=1; }
[ "$left" -eq 0 ] || { echo "FAIL: $left files left in the spool"; fail=1; }
[ "$flushed" -eq 0 ] || [ "$deferred" -gt 0 ] || { echo "FAIL: mail waited with no deferral (a missed wake-up)"; fail=1; }
[ "$kids_left" -eq 0 ] || { echo "FAIL: $kids_left workers left"; fail=1; }
kill -0 "$daemon" || { echo "FAIL: the daemon died"; fail=1; }
exit "$fail"
