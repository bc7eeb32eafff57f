# shellcheck shell=bash
# The variables set here are used by the scripts that source this file.
# shellcheck disable=SC2034
# Shared by cross/build.sh, test.sh, size.sh and ci.sh: the target table,
# the paths, and the toolchain install. Sourced, not run.
#
# Toolchain (see doc/SIZE.md and the project's cross-build notes): Debian's
# rustc-web with std sources (-Zbuild-std), zig from PyPI as the musl C
# compiler and linker, qemu-user-static to run the binaries.
#
# Environment:
#   CARGO_TARGET_DIR      base target dir (default: <checkout>/target)
#   ZIG_HOME              the zig venv (default: /opt/zig as root,
#                         else ~/.local/zig)
#   ZIG_GLOBAL_CACHE_DIR  zig's cache of musl/libunwind builds (default:
#                         ~/.cache/zig, zig's own default)

CROSS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Unset HOME (a bare CI environment): the home directory from the passwd file.
: "${HOME:=$(cd ~ && pwd)}"
CROSS_ALL_TARGETS=(
  mips-unknown-linux-musl
  mipsel-unknown-linux-musl
  armv7-unknown-linux-musleabihf
  aarch64-unknown-linux-musl
  x86_64-unknown-linux-musl
)
CROSS_BASE=${CARGO_TARGET_DIR:-$CROSS_REPO/target}
# Outputs: $CROSS_OUT/TARGET/masqmail and $CROSS_OUT/TARGET-notls/masqmail.
CROSS_OUT=$CROSS_BASE/cross
# Cargo's own target dir for the cross builds: separate from the host
# builds (other rustc, no lock contention with `cargo build`/`cargo test`).
CROSS_CARGO_DIR=$CROSS_OUT/cargo

ZIG_VERSION=0.17.1
# Where cargo unpacks crates.io's crates (under $CARGO_HOME/registry/src).
CRATES_IO_SRC=index.crates.io-1949cf8c6b5b557f
if [ -z "${ZIG_HOME:-}" ]; then
  if [ "$(id -u)" = 0 ]; then ZIG_HOME=/opt/zig; else ZIG_HOME=$HOME/.local/zig; fi
fi
export ZIG_GLOBAL_CACHE_DIR=${ZIG_GLOBAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/zig}

# target_info TARGET: sets ZIG_TARGET ZIG_CPU QEMU QEMU_CPU FILE_RE OPT_LEVEL
# RELOC. OPT_LEVEL (s|z) and RELOC (static, or pic: rustc's default) are
# what measured smaller for masqmail (doc/SIZE.md); the environment
# variables CROSS_OPT_LEVEL and CROSS_RELOC override them for a measurement.
target_info() {
  local opt reloc=static
  case "$1" in
    mips-unknown-linux-musl)
      ZIG_TARGET=mips-linux-musleabi ZIG_CPU=mips32r2
      QEMU=qemu-mips-static QEMU_CPU=24Kc
      FILE_RE='ELF 32-bit MSB executable, MIPS, MIPS32 rel2'
      opt=z ;;
    mipsel-unknown-linux-musl)
      ZIG_TARGET=mipsel-linux-musleabi ZIG_CPU=mips32r2
      QEMU=qemu-mipsel-static QEMU_CPU=24Kc
      FILE_RE='ELF 32-bit LSB executable, MIPS, MIPS32 rel2'
      opt=z ;;
    armv7-unknown-linux-musleabihf)
      ZIG_TARGET=arm-linux-musleabihf ZIG_CPU=generic+v7a+vfp3d16-neon-d32
      QEMU=qemu-arm-static QEMU_CPU=cortex-r5f
      FILE_RE='ELF 32-bit LSB executable, ARM, EABI5'
      opt=z ;;
    aarch64-unknown-linux-musl)
      ZIG_TARGET=aarch64-linux-musl ZIG_CPU=generic
      QEMU=qemu-aarch64-static QEMU_CPU=cortex-a53
      FILE_RE='ELF 64-bit LSB executable, ARM aarch64'
      opt=z reloc=pic ;;
    x86_64-unknown-linux-musl)
      ZIG_TARGET=x86_64-linux-musl ZIG_CPU=x86_64
      QEMU='' QEMU_CPU=''
      FILE_RE='ELF 64-bit LSB executable, x86-64'
      opt=z ;;
    *)
      echo "unknown target: $1 (known: ${CROSS_ALL_TARGETS[*]} all)" >&2
      return 64 ;;
  esac
  OPT_LEVEL=${CROSS_OPT_LEVEL:-$opt}
  RELOC=${CROSS_RELOC:-$reloc}
}

# parse_targets ARG…: fills TARGETS from the arguments ("all" or none = all).
parse_targets() {
  TARGETS=()
  local a
  for a in "$@"; do
    if [ "$a" = all ]; then
      TARGETS+=("${CROSS_ALL_TARGETS[@]}")
    else
      target_info "$a" || exit 64
      TARGETS+=("$a")
    fi
  done
  [ "${#TARGETS[@]}" -gt 0 ] || TARGETS=("${CROSS_ALL_TARGETS[@]}")
}

# The zig binary inside the venv's ziglang package.
zig_bin() {
  "$ZIG_HOME/bin/python" -c \
    'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))'
}

# write_if_changed FILE: stdin to FILE (mode 755) unless it already holds it.
write_if_changed() {
  local tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then
    rm -f "$tmp"
  else
    chmod 755 "$tmp"
    mv "$tmp" "$1"
  fi
}

# cross_install: installs whatever of the toolchain is missing; idempotent,
# quick (no network) when everything is there.
cross_install() {
  local pkgs=() q
  if [ ! -x /usr/bin/rustc ] || [ ! -x /usr/bin/cargo ] ||
    [ ! -f /usr/lib/rustlib/src/rust/library/Cargo.lock ]; then
    pkgs+=(rustc-web cargo-web rust-web-src libstd-rust-web-dev)
  fi
  command -v file >/dev/null || pkgs+=(file)
  command -v llvm-objcopy >/dev/null || pkgs+=(llvm)
  for q in mips mipsel arm aarch64; do
    command -v "qemu-$q-static" >/dev/null || { pkgs+=(qemu-user-static); break; }
  done
  if [ ! -x "$ZIG_HOME/bin/python" ] && ! python3 -c 'import ensurepip' 2>/dev/null; then
    pkgs+=(python3-venv)
  fi
  if [ "${#pkgs[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "cross: missing packages, install as root: apt-get install ${pkgs[*]}" >&2
      return 69
    fi
    echo "cross: apt-get install ${pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  fi

  if [ ! -x "$ZIG_HOME/bin/python" ]; then
    echo "cross: python3 -m venv $ZIG_HOME" >&2
    mkdir -p "$(dirname "$ZIG_HOME")"
    python3 -m venv "$ZIG_HOME"
  fi
  if [ "$("$ZIG_HOME/bin/python" -m ziglang version 2>/dev/null)" != "$ZIG_VERSION" ]; then
    echo "cross: pip install ziglang==$ZIG_VERSION" >&2
    "$ZIG_HOME/bin/python" -m pip install -q --disable-pip-version-check \
      "ziglang==$ZIG_VERSION"
  fi
  local zig
  zig=$(zig_bin)
  [ -x "$zig" ] || { echo "cross: no zig binary at $zig" >&2; return 69; }

  # zigcc: C compiler for cc-rs and linker for rustc. ZIG_TARGET/ZIG_CPU come
  # from the environment. cc-rs passes --target=<rust triple>, which zig
  # would take as its own target and reject: drop it.
  write_if_changed "$ZIG_HOME/bin/zigcc" <<EOF
#!/bin/sh
# Generated by masqmail's cross/lib.sh.
for a in "\$@"; do
  shift
  case "\$a" in
    --target=*) ;;
    *) set -- "\$@" "\$a" ;;
  esac
done
exec '$zig' cc -target "\$ZIG_TARGET" -mcpu="\$ZIG_CPU" "\$@"
EOF
  write_if_changed "$ZIG_HOME/bin/zigar" <<EOF
#!/bin/sh
# Generated by masqmail's cross/lib.sh.
exec '$zig' ar "\$@"
EOF
}

# -Zbuild-std: std built from source with the size options: panic=abort
# std, and optimize_for_size instead of std's default features (backtrace
# symbolisation among them, of no use in a stripped binary).
CROSS_STD_ARGS=('-Zbuild-std=std,panic_abort' -Zbuild-std-features=optimize_for_size)

# cross_env TARGET: exports what cargo needs to build for TARGET with
# Debian's rustc and zig (run it in a subshell). Nothing from the caller's
# environment may change how std or the crate is built behind our back.
cross_env() {
  local u l
  target_info "$1"
  u=$(echo "$1" | tr 'a-z-' 'A-Z_')
  l=$(echo "$1" | tr '-' '_')
  unset CARGO_BUILD_RUSTFLAGS RUSTC_WRAPPER \
    CARGO_BUILD_RUSTC_WRAPPER CARGO_BUILD_TARGET CARGO_PROFILE_RELEASE_STRIP \
    CARGO_PROFILE_RELEASE_DEBUG
  # rustup's cargo and rustc come first on PATH: they have no std sources.
  export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
  # No unwind tables (panic = abort anyway); zig supplies crt1.o, musl and
  # libunwind (link-self-contained=no: Debian's rustc has no crt1.o for
  # these targets). relocation-model=static: the binary is a non-PIE static
  # executable anyway; without PIC code MIPS saves its GOT loads (-10 %).
  # Panic messages name the source file: std's and the crates' by their
  # path on this machine unless remapped (masqmail's own are relative).
  # The remapped names are shorter and the same on every machine; nothing
  # here depends on the checkout's path, so a cached std stays valid.
  # -Cpanic=immediate-abort: a panic kills the process at once, without a
  # message (SIGILL/SIGTRAP): 110 KB less on mipsel (doc/SIZE.md). The
  # program does not panic on input; the daemon logs a worker's death by
  # signal; host builds (cargo build) keep the messages for debugging.
  # The link arguments reach zig, which builds the C library parts it links
  # in (musl, its own libc functions, compiler-rt) to match: -Os makes them
  # optimised for size (memcpy and friends were built for speed), the two
  # -fno-*unwind-tables leave out the unwind tables that only they still
  # had (.eh_frame and .eh_frame_hdr, 8 KB on mipsel).
  local flags=(
    -Zunstable-options -Cpanic=immediate-abort
    -Clink-arg=-Os
    -Clink-arg=-fno-unwind-tables -Clink-arg=-fno-asynchronous-unwind-tables
    -Ctarget-feature=+crt-static -Clink-self-contained=no -Cforce-unwind-tables=no
    "-Crelocation-model=$RELOC"
    "--remap-path-prefix=/usr/lib/rustlib/src/rust/library="
    "--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}/registry/src/$CRATES_IO_SRC="
  )
  # CROSS_RUSTFLAGS: more flags, space-separated, for measurements.
  local extra=()
  read -r -a extra <<<"${CROSS_RUSTFLAGS:-}"
  flags+=("${extra[@]+"${extra[@]}"}")
  unset RUSTFLAGS
  # Fields separated by \x1f: a path may hold spaces.
  CARGO_ENCODED_RUSTFLAGS=$(IFS=$'\x1f'; echo "${flags[*]}")
  export CARGO_ENCODED_RUSTFLAGS
  export ZIG_TARGET ZIG_CPU CARGO_PROFILE_RELEASE_OPT_LEVEL=$OPT_LEVEL
  export "CARGO_TARGET_${u}_LINKER=$ZIG_HOME/bin/zigcc" \
    "CC_${l}=$ZIG_HOME/bin/zigcc" "AR_${l}=$ZIG_HOME/bin/zigar"
}

# out_dir TARGET VARIANT: where build.sh puts the binary (VARIANT tls|notls).
out_dir() {
  if [ "$2" = notls ]; then echo "$CROSS_OUT/$1-notls"; else echo "$CROSS_OUT/$1"; fi
}
