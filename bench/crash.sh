#!/usr/bin/env bash
# The long crash loop (tests/crash.rs with more kills), release build:
#   bench/crash.sh [KILLS] [MAX_LIFE_MS]
# KILLS (default 2000) SIGKILLs of the daemon, and as many of runq, while
# clients send over SMTP and sendmail; each killed process lives a random
# 0..MAX_LIFE_MS (default 150) ms. Prints one summary line per test:
# kills, messages acknowledged / in doubt / refused, deliveries,
# duplicates, lost (must be 0). Exit status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-2000}
life=${2:-150}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "crash loop: $kills kills per test, processes live 0..${life} ms" >&2
status=0
MASQMAIL_CRASH_KILLS=$kills MASQMAIL_CRASH_LIFE_MS=$life \
  cargo test --release --locked --test crash -- --nocapture --test-threads=1 \
  >"$log" 2>&1 || status=$?
grep -E '^(crash-|test result)' "$log" || true
if [ "$status" -ne 0 ]; then
  # The assertion's own message first (it names what was lost or left),
  # then the end of the output; the whole log is kept.
  echo "FAILED:" >&2
  grep -A12 "panicked at" "$log" >&2 || true
  echo "-- the end of the output:" >&2
  tail -40 "$log" >&2
  kept=$(mktemp "${TMPDIR:-/tmp}/masqmail-crash-failed.XXXXXX")
  cp "$log" "$kept"
  echo "-- the whole output: $kept" >&2
fi
exit "$status"
