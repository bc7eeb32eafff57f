#!/usr/bin/env bash
# cross/bloat.sh [--notls] [TARGET] [CARGO-BLOAT OPTION…]
#
# What each crate (default: --crates -n 30) or function costs in the
# router binary: cargo bloat on a build of TARGET (default
# x86_64-unknown-linux-musl) with cross/build.sh's options but symbols kept.
# Installs cargo-bloat from crates.io when it is missing. Its own target dir
# (target/cross/bloat), so the release binaries are left alone. Sizes are of
# .text; with LTO a crate's generic code may be counted where it was used.
set -euo pipefail
# shellcheck source=cross/lib.sh
. "$(dirname "$0")/lib.sh"

feat=()
t=x86_64-unknown-linux-musl
opts=()
for a in "$@"; do
  case "$a" in
    --notls | --no-default-features) feat=(--no-default-features) ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0 ;;
    *-linux-*) t=$a ;;
    *) opts+=("$a") ;;
  esac
done
[ "${#opts[@]}" -gt 0 ] || opts=(--crates -n 30)
target_info "$t"

cross_install
bloat=$(command -v cargo-bloat || true)
[ -n "$bloat" ] || bloat=${CARGO_HOME:-$HOME/.cargo}/bin/cargo-bloat
if [ ! -x "$bloat" ]; then
  echo "cross: cargo install cargo-bloat" >&2
  RUSTC=/usr/bin/rustc /usr/bin/cargo install -q --locked cargo-bloat
fi

# cargo-bloat runs `cargo` from PATH: make that Debian's (std sources).
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
ln -s /usr/bin/cargo "$shim/cargo"

cross_env "$t"
export PATH="$shim:$PATH" CARGO_TARGET_DIR=$CROSS_OUT/bloat
export CARGO_PROFILE_RELEASE_STRIP=false
# zig strips the symbols of a binary it links with -Os unless told -g.
CARGO_ENCODED_RUSTFLAGS+=$'\x1f-Clink-arg=-g'
cd "$CROSS_REPO"
"$bloat" bloat --release --target "$t" \
  -Z build-std=std,panic_abort -Z build-std-features=optimize_for_size \
  "${feat[@]+"${feat[@]}"}" "${opts[@]}"
