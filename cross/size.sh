#!/usr/bin/env bash
# cross/size.sh [TARGET…|all]
#
# Prints, per target, the size in bytes of the stripped static binaries that
# `cross/build.sh --both` made: with all features (target/cross/TARGET) and
# without the tls feature (target/cross/TARGET-notls); a Markdown table, as
# in doc/SIZE.md. Then checks the budget of the mipsel build (DESIGN §9):
#   all features      ≤ 1.5 MiB (1572864 bytes)
#   without tls       ≤ 512 KiB (524288 bytes)
# and exits 1 when either is over, or when a mipsel binary is missing.
set -euo pipefail
# shellcheck source=cross/lib.sh
. "$(dirname "$0")/lib.sh"

case "${1:-}" in
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0 ;;
esac
parse_targets "$@"

BUDGET_TARGET=mipsel-unknown-linux-musl
BUDGET_ALL=1572864
BUDGET_NOTLS=524288

size_of() {
  local f
  f=$(out_dir "$1" "$2")/masqmail
  if [ -f "$f" ]; then stat -c %s "$f"; else echo ''; fi
}
# 1234567 -> "1,234,567 (1205.6 KiB)"; empty -> "–"
fmt() {
  if [ -z "$1" ]; then
    echo "–"
  else
    LC_ALL=C awk -v n="$1" 'BEGIN {
      s = sprintf("%d", n); o = ""
      while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
      printf "%s%s (%.1f KiB)", s, o, n / 1024 }'
  fi
}

echo "| target | all features | without tls | tls costs |"
echo "|---|---:|---:|---:|"
for t in "${TARGETS[@]}"; do
  all=$(size_of "$t" tls)
  notls=$(size_of "$t" notls)
  diff='–'
  [ -n "$all" ] && [ -n "$notls" ] && diff=$(fmt "$((all - notls))")
  echo "| $t | $(fmt "$all") | $(fmt "$notls") | $diff |"
done
echo

status=0
check() {
  local what=$1 size=$2 budget=$3
  if [ -z "$size" ]; then
    echo "FAIL  $BUDGET_TARGET $what: no binary (run cross/build.sh --both $BUDGET_TARGET)"
    status=1
  elif [ "$size" -gt "$budget" ]; then
    echo "FAIL  $BUDGET_TARGET $what: $size bytes, over the budget of $budget"
    status=1
  else
    echo "PASS  $BUDGET_TARGET $what: $size bytes ≤ $budget ($((size * 100 / budget)) % of the budget)"
  fi
}
check "all features" "$(size_of "$BUDGET_TARGET" tls)" "$BUDGET_ALL"
check "without tls" "$(size_of "$BUDGET_TARGET" notls)" "$BUDGET_NOTLS"
exit "$status"
