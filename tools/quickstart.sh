#!/usr/bin/env bash
# Build masqmail and run its daemon on loopback with examples/test.conf:
# SMTP on 127.0.0.1:2525, spool and mailboxes under /tmp/masqmail-test,
# log lines on the terminal. Needs no root once Rust is there. Stop it
# with Ctrl-C.
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
mkdir -p /tmp/masqmail-test/spool /tmp/masqmail-test/mail

echo "== masqmail config check"
"$bin" -C "$conf" config check

cat <<MSG
== masqmail daemon (examples/test.conf), listening on 127.0.0.1:2525
   Send it mail with any SMTP client, for example:
     python3 -c "import smtplib; smtplib.SMTP('127.0.0.1', 2525).sendmail('me@test.example', ['root@test.example', 'you@example.org'], 'Subject: hi\r\n\r\nhello\r\n')"
   or queue it with sendmail:
     printf 'To: you@example.org\nSubject: hi\n\nhello\n' | $bin -C $conf -t -i
   Then: $bin -C $conf -bp            (the queue)
         cat /tmp/masqmail-test/mail/\$USER  (local mail)
   Remote mail waits for the route 'sink' (127.0.0.1:2526) until
   'sink' is written to /tmp/masqmail-test/online.
MSG
exec "$bin" -C "$conf" daemon -v
