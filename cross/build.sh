#!/usr/bin/env bash
# cross/build.sh [--notls|--both] [TARGET…|all]
#
# Builds the static, stripped, size-optimised release binary of masqmail for
# router targets (default: all five), installing the toolchain first when it
# is missing (as root; idempotent):
#   mips-unknown-linux-musl mipsel-unknown-linux-musl
#   armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl
#   x86_64-unknown-linux-musl
#
# Output: target/cross/TARGET/masqmail (all features) and
#         target/cross/TARGET-notls/masqmail (--no-default-features).
#
# Features: FEATURES=default (all features, the default), FEATURES=none
# (without tls; same as --notls) or FEATURES=both (same as --both).
# CARGO_TARGET_DIR moves target/ (e.g. a cache outside the checkout);
# CROSS_OPT_LEVEL=s|z overrides the per-target opt-level and CROSS_RUSTFLAGS
# adds rustc flags (measurements: use another CARGO_TARGET_DIR);
# CROSS_LOCKED=0 drops --locked (Cargo.lock being edited).
set -euo pipefail
# shellcheck source=cross/lib.sh
. "$(dirname "$0")/lib.sh"

features=${FEATURES:-default}
args=()
for a in "$@"; do
  case "$a" in
    --notls | --no-default-features) features=none ;;
    --both) features=both ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0 ;;
    -*) echo "build.sh: unknown option $a" >&2; exit 64 ;;
    *) args+=("$a") ;;
  esac
done
case "$features" in
  default) variants=(tls) ;;
  none) variants=(notls) ;;
  both) variants=(tls notls) ;;
  *) echo "build.sh: FEATURES must be default, none or both" >&2; exit 64 ;;
esac
parse_targets "${args[@]+"${args[@]}"}"

cross_install

# The std and crates built by another rustc or zig are dead weight: start
# the cross target dir afresh when the toolchain changed.
toolchain="$(/usr/bin/rustc -vV | tr '\n' ' ')zig $ZIG_VERSION"
if [ -f "$CROSS_CARGO_DIR/toolchain" ] && [ "$(cat "$CROSS_CARGO_DIR/toolchain")" != "$toolchain" ]; then
  echo "cross: toolchain changed, removing $CROSS_CARGO_DIR" >&2
  rm -rf "${CROSS_CARGO_DIR:?}"
fi
mkdir -p "$CROSS_CARGO_DIR"
echo "$toolchain" >"$CROSS_CARGO_DIR/toolchain"

export CARGO_TARGET_DIR=$CROSS_CARGO_DIR
locked=(--locked)
[ "${CROSS_LOCKED:-1}" = 0 ] && locked=()

build_one() {
  local t=$1 variant=$2 out bin start feat=()
  target_info "$t"
  [ "$variant" = notls ] && feat=(--no-default-features)
  out=$(out_dir "$t" "$variant")
  echo "== build $t ($variant, opt-level $OPT_LEVEL, relocation-model $RELOC)" >&2
  start=$SECONDS
  # ZIG_TARGET/ZIG_CPU are not in cargo's fingerprints: start this target
  # afresh when they (or zig) changed.
  local stamp=$CROSS_CARGO_DIR/$t/zig-stamp
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$ZIG_VERSION $ZIG_TARGET $ZIG_CPU" ]; then
    rm -rf "${CROSS_CARGO_DIR:?}/$t"
  fi
  mkdir -p "$CROSS_CARGO_DIR/$t"
  echo "$ZIG_VERSION $ZIG_TARGET $ZIG_CPU" >"$stamp"
  (
    cross_env "$t"
    /usr/bin/cargo build --release "${locked[@]+"${locked[@]}"}" -q \
      --manifest-path "$CROSS_REPO/Cargo.toml" "${CROSS_STD_ARGS[@]}" \
      --target "$t" "${feat[@]+"${feat[@]}"}"
  )
  bin=$CROSS_CARGO_DIR/$t/release/masqmail
  mkdir -p "$out"
  cp "$bin" "$out/masqmail.tmp"
  # .comment names the compilers (linker and rustc versions, ~110 bytes);
  # the non-loaded .pdr section is ~10 % of a MIPS binary. strip keeps both.
  llvm-objcopy --remove-section=.comment "$out/masqmail.tmp"
  case "$t" in
    mips*) llvm-objcopy --remove-section=.pdr "$out/masqmail.tmp" ;;
  esac
  mv "$out/masqmail.tmp" "$out/masqmail"
  echo "   $out/masqmail: $(stat -c %s "$out/masqmail") bytes, $((SECONDS - start)) s" >&2
}

for t in "${TARGETS[@]}"; do
  for v in "${variants[@]}"; do
    build_one "$t" "$v"
  done
done
