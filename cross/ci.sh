#!/usr/bin/env bash
# cross/ci.sh: what CI runs for the router builds. As root on a fresh
# Debian 12 it installs the toolchain (cross/build.sh); on a warm machine it
# reuses the caches and rebuilds only what changed.
#
#   1. cross/build.sh --both  mipsel (the budget target), armv7 (ARM, no
#      NEON), mips (big-endian): with and without the tls feature
#   2. cross/test.sh --both   the same, under qemu-user
#   3. cross/size.sh          the size table; fails over the mipsel budget
#
# Environment:
#   CROSS_CI_TARGETS  the targets (space-separated; default above)
#   CARGO_TARGET_DIR  default: ~/.cache/masqmail/cross-target, a cache
#                     outside the checkout (a cold one works, just slower)
#   CROSS_XFAIL       test steps known to fail for a feature not written yet
#                     (see cross/test.sh)
#   CROSS_SIZE_WARN_ONLY=1  an over-budget size is printed as FAIL but does
#                     not fail this script (while a known overshoot is fixed)
# The zig cache is ~/.cache/zig (ZIG_GLOBAL_CACHE_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

read -r -a targets <<<"${CROSS_CI_TARGETS:-mipsel-unknown-linux-musl armv7-unknown-linux-musleabihf mips-unknown-linux-musl}"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/masqmail/cross-target}

start=$SECONDS
phase() {
  echo "== cross: $* ($((SECONDS - start)) s)"
}

# The scripts themselves stay shellcheck-clean.
if ! command -v shellcheck >/dev/null && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null 2>&1 ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; }
fi
if command -v shellcheck >/dev/null; then
  phase "shellcheck cross/*.sh"
  shellcheck -x cross/*.sh
fi

phase "build ${targets[*]} (target dir $CARGO_TARGET_DIR)"
cross/build.sh --both "${targets[@]}"

phase "test"
test_rc=0
cross/test.sh --both "${targets[@]}" || test_rc=$?

phase "size"
size_rc=0
cross/size.sh "${targets[@]}" || size_rc=$?

if [ "$size_rc" != 0 ] && [ "${CROSS_SIZE_WARN_ONLY:-0}" = 1 ]; then
  echo "cross: OVER THE SIZE BUDGET, not failing because CROSS_SIZE_WARN_ONLY=1"
  size_rc=0
fi
phase "done: test exit $test_rc, size exit $size_rc"
[ "$test_rc" = 0 ] && [ "$size_rc" = 0 ]
