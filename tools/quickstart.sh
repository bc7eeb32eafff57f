#!/usr/bin/env bash
# Build masqmail and show it working with examples/test.conf: a message
# through `sendmail -t`, then the queue. Needs no root once Rust is there.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "== no cargo: installing Debian's current Rust (rustc-web, cargo-web)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq rustc-web cargo-web || $sudo apt-get install -y -qq rustc cargo
fi

echo "== cargo build --release"
cargo build --release --locked
bin=$PWD/target/release/masqmail
conf=$PWD/examples/test.conf

echo "== sendmail -t -i (config: examples/test.conf, spool: /tmp/masqmail-test/spool)"
printf 'To: you@example.org\nSubject: hello from masqmail\n\nThe first message.\n' \
  | "$bin" -C "$conf" -t -i
echo "== mailq"
"$bin" -C "$conf" -bp
