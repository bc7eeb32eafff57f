#!/usr/bin/env bash
# Run every fuzz target (or the ones named) for SECONDS each; the CI step.
#   fuzz/run.sh [SECONDS] [TARGET...]        (default 30 s per target)
# Installs cargo-fuzz when it is missing (nightly Rust is needed). Each
# target starts from its committed seeds (fuzz/seeds/TARGET, read only)
# and its own growing corpus (fuzz/corpus/TARGET, not committed). Prints
# one line per target: executions, seconds, corpus size. A crash stops
# the run with exit 1 and names the input in fuzz/artifacts/TARGET/;
# turn it into a unit test beside the parser, then fix the parser.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
shift || true

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain; trying rustup toolchain install nightly" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo +nightly install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build >/dev/null

log=$(mktemp)
trap 'rm -f "$log"' EXIT
total=0
printf '%-12s %12s %8s %8s\n' target executions seconds corpus
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  if ! cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    echo "fuzz: $t FAILED:" >&2
    grep -E 'panicked|ERROR|SUMMARY|Test unit written|artifact' "$log" | head -20 >&2 || tail -30 "$log" >&2
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  files=$(find "corpus/$t" -type f | wc -l)
  printf '%-12s %12s %8s %8s\n' "$t" "${execs:-?}" "${took:-$secs}" "$files"
  total=$((total + ${execs:-0}))
done
echo "fuzz: ${#targets[@]} targets, $total executions, no crash"
