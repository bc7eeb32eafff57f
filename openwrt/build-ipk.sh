#!/usr/bin/env bash
# openwrt/build-ipk.sh [--out DIR] [TARGET…]
# openwrt/build-ipk.sh --bin FILE --arch ARCH [--out DIR]
#
# Builds OpenWrt .ipk packages without the SDK: masqmail for each TARGET
# from the cross-built binary target/cross/TARGET/masqmail (cross/build.sh
# TARGET makes it), and luci-app-masqmail (arch "all"). Default targets:
# mipsel-unknown-linux-musl (mipsel_24kc) and aarch64-unknown-linux-musl
# (aarch64_cortex-a53); also known: mips-unknown-linux-musl (mips_24kc),
# armv7-unknown-linux-musleabihf (arm_cortex-a7_neon-vfpv4),
# x86_64-unknown-linux-musl (x86_64). --bin/--arch package any binary.
#
# The package contents come from running the real package Makefiles
# (openwrt/masqmail/Makefile, openwrt/luci-app-masqmail/Makefile) with GNU
# make against the stand-ins in openwrt/sdk-stub/: the same files, modes,
# links and control fields as a feed build. The format is what OpenWrt's
# ipkg-build writes and opkg (up to 24.10) reads: a gzip'd GNU tar of
# ./debian-binary, ./data.tar.gz and ./control.tar.gz, owner root, with
# the generated postinst/prerm that call default_postinst/default_prerm.
#
# Output: DIR (default target/openwrt, or $CARGO_TARGET_DIR/openwrt)/
#   masqmail_VERSION_ARCH.ipk, luci-app-masqmail_VERSION_all.ipk
# Needs: GNU make >= 4, GNU tar, gzip.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
base=${CARGO_TARGET_DIR:-$repo/target}
out=$base/openwrt
bin='' arch=''
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --arch) arch=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build-ipk.sh: unknown option $1" >&2; exit 64 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ -n "$bin" ] || [ -n "$arch" ]; then
  if [ -z "$bin" ] || [ -z "$arch" ]; then
    echo "build-ipk.sh: --bin and --arch go together" >&2
    exit 64
  fi
  [ "${#targets[@]}" -eq 0 ] || { echo "build-ipk.sh: --bin excludes TARGETs" >&2; exit 64; }
fi
[ -n "$bin" ] || [ "${#targets[@]}" -gt 0 ] ||
  targets=(mipsel-unknown-linux-musl aarch64-unknown-linux-musl)

ipk_arch() {
  case "$1" in
    mipsel-unknown-linux-musl) echo mipsel_24kc ;;
    mips-unknown-linux-musl) echo mips_24kc ;;
    aarch64-unknown-linux-musl) echo aarch64_cortex-a53 ;;
    armv7-unknown-linux-musleabihf) echo arm_cortex-a7_neon-vfpv4 ;;
    x86_64-unknown-linux-musl) echo x86_64 ;;
    *) echo "build-ipk.sh: unknown target $1" >&2; return 64 ;;
  esac
}

command -v make >/dev/null || { echo "build-ipk.sh: GNU make is needed (apt-get install make)" >&2; exit 69; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
stub=$repo/openwrt/sdk-stub
T=(tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0)

# A feed-like tree, so that the Makefiles' relative includes resolve.
mkdir -p "$work/packages/mail/masqmail" "$work/packages/lang/rust" "$work/luci/applications"
cp "$repo/openwrt/masqmail/Makefile" "$work/packages/mail/masqmail/"
cp "$stub/lang/rust/rust-package.mk" "$work/packages/lang/rust/"
cp -pR "$repo/openwrt/luci-app-masqmail" "$work/luci/applications/"
cp "$stub/luci.mk" "$work/luci/"

# run_make DIR FEED PKGARCH STAGE [INSTALL]: the package Makefile in DIR
# installs into STAGE/NAME/{data,control}.
run_make() {
  make -s -C "$1" TOPDIR="$stub" INCLUDE_DIR="$stub" STUB_SRC="$repo" \
    STUB_FEED="$2" PKGARCH="$3" STUB_OUT="$4" STUB_INSTALL="${5:-$work/none}" stub-pack
}

# pack STAGE/NAME: write the .ipk into $out, print its path.
pack() {
  local d=$1 c size name version parch file
  c=$d/control
  size=$(find "$d/data" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
  {
    echo "Installed-Size: $size"
    # The description's first line follows "Description:", the others are
    # continuation lines (one leading space), as package-pack.mk writes them.
    sed -e 's/^[[:space:]]*//' "$c/description" | sed -e '/^$/d' -e '1s/^/Description: /' -e '2,$s/^/ /'
  } >>"$c/control"
  rm "$c/description"
  # The scripts package-pack.mk generates for every package; they run the
  # package's postinst-pkg/prerm-pkg from default_postinst/default_prerm.
  cat >"$c/postinst" <<'SCRIPT'
#!/bin/sh
[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
SCRIPT
  cat >"$c/prerm" <<'SCRIPT'
#!/bin/sh
[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
SCRIPT
  chmod 0644 "$c/control" "$c"/conffiles 2>/dev/null || true
  chmod 0755 "$c/postinst" "$c/prerm" "$c"/*-pkg 2>/dev/null || true
  name=$(sed -n 's/^Package: //p' "$c/control")
  version=$(sed -n 's/^Version: //p' "$c/control")
  parch=$(sed -n 's/^Architecture: //p' "$c/control")
  file=$out/${name}_${version}_${parch}.ipk
  echo 2.0 >"$d/debian-binary"
  (cd "$c" && "${T[@]}" -cf - . | gzip -n9 >"$d/control.tar.gz")
  (cd "$d/data" && "${T[@]}" -cf - . | gzip -n9 >"$d/data.tar.gz")
  (cd "$d" && "${T[@]}" -cf - ./debian-binary ./data.tar.gz ./control.tar.gz | gzip -n9 >"$file.tmp")
  mv "$file.tmp" "$file"
  echo "$file"
}

build_masqmail() { # BINARY ARCH
  local inst=$work/install-$2
  mkdir -p "$inst/bin"
  cp "$1" "$inst/bin/masqmail"
  run_make "$work/packages/mail/masqmail" "$work/packages" "$2" "$work/stage-$2" "$inst"
  pack "$work/stage-$2/masqmail"
}

if [ -n "$bin" ]; then
  [ -f "$bin" ] || { echo "build-ipk.sh: no binary $bin" >&2; exit 66; }
  build_masqmail "$bin" "$arch"
else
  for t in "${targets[@]}"; do
    a=$(ipk_arch "$t") || exit 64
    b=$base/cross/$t/masqmail
    [ -f "$b" ] || { echo "build-ipk.sh: $b is missing; run cross/build.sh $t first" >&2; exit 66; }
    build_masqmail "$b" "$a"
  done
fi
run_make "$work/luci/applications/luci-app-masqmail" "$work/luci" all "$work/stage-luci"
pack "$work/stage-luci/luci-app-masqmail"
