#!/usr/bin/env bash
# cross/test.sh [--notls|--both] [TARGET…|all]
#
# Runs the binaries that cross/build.sh made (target/cross/TARGET/masqmail;
# TARGET-notls with --notls; both with --both) through a smoke suite, each under
# qemu-<arch>-static with the CPU of a typical router (x86_64 natively):
#   file: statically linked, right architecture (and byte order)
#   masqmail version
#   masqmail config check -C FILE, for every examples/*.conf and the test one
#   sendmail -t -i < message          (a link named sendmail)
#   mailq                             (a link named mailq) lists it
#   the spool lists the same with another build (x86_64, else another
#   target's): byte order and word size must not matter
#   an SMTP session over masqmail -bs (EHLO MAIL RCPT DATA QUIT)
#   masqmail -Mrm ID…, then mailq says "Mail queue is empty"
#   a message to root through `masqmail -q` to the MDA, a shell command
#   (fork, exec, pipes and poll under emulation: qemu-user runs the
#   host's /bin/sh natively), then the queue is empty again
# in a temporary directory with its own config (run_as_user '1', the spool
# in that directory). Prints PASS/FAIL per step and exits 1 when any failed.
# The temporary directory of a target with a failed step is kept (its log
# holds every command, its output and the SMTP dialogue); KEEP=1 keeps all.
#
# CROSS_XFAIL='DESC|DESC…' names steps (substrings of their descriptions)
# known to fail for a feature not written yet: they print XFAIL and do not
# fail the run; one that passes prints XPASS (take it off the list).
set -euo pipefail
# shellcheck source=cross/lib.sh
. "$(dirname "$0")/lib.sh"

variants=(tls)
args=()
for a in "$@"; do
  case "$a" in
    --notls | --no-default-features) variants=(notls) ;;
    --both) variants=(tls notls) ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0 ;;
    -*) echo "test.sh: unknown option $a" >&2; exit 64 ;;
    *) args+=("$a") ;;
  esac
done
parse_targets "${args[@]+"${args[@]}"}"

for t in "${TARGETS[@]}"; do
  target_info "$t"
  if [ -n "$QEMU" ] && ! command -v "$QEMU" >/dev/null; then
    echo "test.sh: $QEMU is missing (cross/build.sh installs it)" >&2
    exit 69
  fi
done

TIMEOUT=${TEST_TIMEOUT:-60}
total_pass=0 total_fail=0 total_skip=0 total_xfail=0
tmpdirs=()
cleanup() {
  local d
  for d in "${tmpdirs[@]+"${tmpdirs[@]}"}"; do rm -rf "$d"; done
}
trap cleanup EXIT

# run NAME ARG…: runs $dir/NAME (a link to the binary under test) the way a
# user would, under qemu for foreign targets; stdout to $dir/out, stderr to
# $dir/err. Returns the exit code. qemu-user gives the program the path it
# was started with as argv[0], so the multi-call names work.
run() {
  local name=$1
  shift
  local cmd=("$dir/$name")
  [ -n "$QEMU" ] && cmd=("$QEMU" -cpu "$QEMU_CPU" "$dir/$name")
  local rc=0
  timeout "$TIMEOUT" "${cmd[@]}" "$@" >"$dir/out" 2>"$dir/err" || rc=$?
  {
    echo "\$ $name $*  (exit $rc)"
    cat "$dir/out" "$dir/err"
  } >>"$dir/log"
  return "$rc"
}

# Result of a check: why=... then return 1.
why=''
# xfail DESCRIPTION: true when CROSS_XFAIL lists the step.
xfail() {
  local x
  local -a list
  IFS='|' read -r -a list <<<"${CROSS_XFAIL:-}"
  for x in "${list[@]+"${list[@]}"}"; do
    [ -n "$x" ] && [[ "$1" == *"$x"* ]] && return 0
  done
  return 1
}

# step DESCRIPTION FUNCTION ARG…: runs a check, prints PASS/FAIL/SKIP.
step() {
  local desc=$1 rc=0
  shift
  why=''
  "$@" || rc=$?
  if [ "$rc" != 2 ] && xfail "$desc"; then
    if [ "$rc" = 0 ]; then
      printf 'XPASS %-32s %s (listed in CROSS_XFAIL: take it off)\n' "$label" "$desc"
      pass=$((pass + 1))
    else
      printf 'XFAIL %-32s %s: %s (listed in CROSS_XFAIL)\n' "$label" "$desc" "${why:-failed}"
      xfailed=$((xfailed + 1))
    fi
    return 0
  fi
  case "$rc" in
    0) printf 'PASS  %-32s %s\n' "$label" "$desc"; pass=$((pass + 1)) ;;
    2) printf 'SKIP  %-32s %s: %s\n' "$label" "$desc" "$why"; skip=$((skip + 1)) ;;
    *)
      printf 'FAIL  %-32s %s: %s\n' "$label" "$desc" "${why:-failed}"
      fail=$((fail + 1))
      # The program's own words, briefly.
      if [ -s "$dir/err" ] || [ -s "$dir/out" ]; then
        tail -n 4 "$dir/err" "$dir/out" 2>/dev/null | grep -v '^==> \|^$' | sed 's/^/        | /' || true
      fi ;;
  esac
  return 0
}

# exited RC: fails with the exit code and the first stderr line.
exited() {
  why="exit $1${2:+, $2}"
  [ -s "$dir/err" ] && why="$why: $(head -n 1 "$dir/err")"
  return 1
}

check_file() {
  local f
  f=$(file -b "$bin")
  echo "file: $f" >>"$dir/log"
  [[ "$f" == *"statically linked"* ]] || { why="not statically linked: $f"; return 1; }
  [[ "$f" =~ $FILE_RE ]] || { why="expected '$FILE_RE', got: $f"; return 1; }
  return 0
}

# ELF header byte 5 (EI_DATA): 1 little-endian, 2 big-endian.
check_endian() {
  local want=1 got
  case "$t" in mips-*) want=2 ;; esac
  got=$(od -An -tu1 -j5 -N1 "$bin" | tr -d ' ')
  [ "$got" = "$want" ] || { why="ELF EI_DATA $got, expected $want"; return 1; }
  return 0
}

check_version() {
  run masqmail version || { exited $?; return 1; }
  grep -q '^masqmail [0-9]' "$dir/out" || { why="no 'masqmail VERSION' line"; return 1; }
  local want='+tls'
  [ "$variant" = notls ] && want='-tls'
  grep -qF -- "$want" "$dir/out" || { why="version does not say $want"; return 1; }
  return 0
}

check_config() {
  run masqmail config check -C "$1" || { exited $?; return 1; }
  return 0
}

check_sendmail() {
  local rc=0
  run sendmail -C "$dir/test.conf" -t -i <"$dir/message" || rc=$?
  [ "$rc" = 0 ] || { exited "$rc"; return 1; }
  accepted=$((accepted + 1))
  return 0
}

# mailq: the first line of a block starts with the message ID and holds
# <sender>; each pending recipient follows on an indented line.
check_mailq_lists() {
  local want_n=$accepted rc=0
  [ "$want_n" -gt 0 ] || { why="no message was accepted to list"; return 1; }
  run mailq -C "$dir/test.conf" || rc=$?
  [ "$rc" = 0 ] || { exited "$rc"; return 1; }
  mapfile -t ids < <(grep -E '^[^[:space:]]' "$dir/out" | awk '{print $1}')
  if [ "${#ids[@]}" -ne "$want_n" ]; then
    why="expected $want_n message(s), mailq shows ${#ids[@]}"
    return 1
  fi
  grep -E '^[^[:space:]]+ .*<[^>]*>' "$dir/out" >/dev/null ||
    { why="no 'ID size time <sender>' line"; return 1; }
  grep -E '^[[:space:]]+.*someone@example\.org' "$dir/out" >/dev/null ||
    { why="recipient someone@example.org not listed on an indented line"; return 1; }
  cp "$dir/out" "$dir/mailq.out"
  return 0
}

# The spool written by this build, listed by another one (the x86_64 build,
# else the first other target built): the same output unless something in
# the spool depends on byte order or word size.
check_cross_read() {
  local other='' o v ref='' qemu=() rc=0 mine
  for v in "$variant" tls notls; do
    for o in x86_64-unknown-linux-musl "${CROSS_ALL_TARGETS[@]}"; do
      ref=$(out_dir "$o" "$v")/masqmail
      [ "$o" != "$t" ] && [ -x "$ref" ] && { other=$o; break 2; }
    done
  done
  [ -n "$other" ] || { why="no build of another target to compare with"; return 2; }
  [ -s "$dir/mailq.out" ] || { why="mailq listed nothing to compare"; return 1; }
  mine=$t
  target_info "$other"
  [ -n "$QEMU" ] && qemu=("$QEMU" -cpu "$QEMU_CPU")
  target_info "$mine"
  echo "\$ ($other build) masqmail -C test.conf -bp" >>"$dir/log"
  timeout "$TIMEOUT" "${qemu[@]+"${qemu[@]}"}" "$ref" -C "$dir/test.conf" -bp \
    >"$dir/out" 2>"$dir/err" || rc=$?
  cat "$dir/out" "$dir/err" >>"$dir/log"
  [ "$rc" = 0 ] || { exited "$rc" "$other build"; return 1; }
  cmp -s "$dir/out" "$dir/mailq.out" || {
    why="the $other build lists it differently: $(diff "$dir/mailq.out" "$dir/out" | grep '^[<>]' | head -n 2 | tr '\n' ' ')"
    return 1
  }
  return 0
}

# An SMTP client that waits for each reply, like a real one.
smtp_reply() {
  local line
  code=''
  while IFS= read -r -t "$TIMEOUT" line <&"$smtp_in"; do
    line=${line%$'\r'}
    echo "S: $line" >>"$dir/log"
    if [ "${line:3:1}" != "-" ]; then
      code=${line:0:3}
      return 0
    fi
  done
  code=none
  return 1
}
smtp_send() {
  echo "C: $1" >>"$dir/log"
  printf '%s\r\n' "$1" >&"$smtp_out"
}
check_smtp() {
  local cmd=("$dir/masqmail" -C "$dir/test.conf" -bs) step_name want line
  [ -n "$QEMU" ] && cmd=("$QEMU" -cpu "$QEMU_CPU" "${cmd[@]}")
  echo "\$ masqmail -C test.conf -bs" >>"$dir/log"
  : >"$dir/out"
  rm -f "$dir/smtp.in" "$dir/smtp.out"
  mkfifo "$dir/smtp.in" "$dir/smtp.out"
  timeout "$TIMEOUT" "${cmd[@]}" <"$dir/smtp.in" >"$dir/smtp.out" 2>"$dir/err" &
  local pid=$! ok=1
  exec {smtp_out}>"$dir/smtp.in" {smtp_in}<"$dir/smtp.out"
  # A write after the server died must fail, not kill this script.
  trap '' PIPE
  # step_name:expected first digit:line to send (none for the greeting).
  local -a dialogue=(
    "greeting:2:"
    "EHLO:2:EHLO client.test.example"
    "MAIL:2:MAIL FROM:<tester@test.example>"
    "RCPT:2:RCPT TO:<someone@example.org>"
    "DATA:3:DATA"
  )
  local d
  for d in "${dialogue[@]}"; do
    step_name=${d%%:*}
    want=${d#*:}
    want=${want%%:*}
    [ "$step_name" = greeting ] || smtp_send "${d#*:*:}"
    if ! smtp_reply || [ "${code:0:1}" != "$want" ]; then
      why="$step_name: reply '$code', expected ${want}xx"
      ok=0
      break
    fi
  done
  if [ "$ok" = 1 ]; then
    while IFS= read -r line; do
      [ "${line:0:1}" = . ] && line=".$line"
      printf '%s\r\n' "$line" >&"$smtp_out"
    done <"$dir/message"
    smtp_send "."
    if ! smtp_reply || [ "${code:0:1}" != 2 ]; then
      why="end of data: reply '$code', expected 2xx"
      ok=0
    else
      smtp_send "QUIT"
      if ! smtp_reply || [ "${code:0:1}" != 2 ]; then
        why="QUIT: reply '$code', expected 2xx"
        ok=0
      fi
    fi
  fi
  exec {smtp_out}>&- {smtp_in}<&-
  trap - PIPE
  local rc=0
  wait "$pid" || rc=$?
  cat "$dir/err" >>"$dir/log"
  [ "$ok" = 1 ] || { [ "$rc" != 0 ] && why="$why (exit $rc)"; return 1; }
  [ "$rc" = 0 ] || { exited "$rc"; return 1; }
  accepted=$((accepted + 1))
  return 0
}

check_rm() {
  [ "${#ids[@]}" -gt 0 ] || { why="no message ID from mailq to remove"; return 1; }
  local rc=0
  run masqmail -C "$dir/test.conf" -Mrm "${ids[@]}" || rc=$?
  [ "$rc" = 0 ] || { exited "$rc"; return 1; }
  return 0
}

# A local message delivered by a queue run to the MDA of test.conf, which
# appends it to $dir/mda.out.
check_mda() {
  local rc=0
  printf 'To: root@test.example\nSubject: through the MDA\n\nhello\n' >"$dir/local"
  run sendmail -C "$dir/test.conf" -t -i <"$dir/local" || rc=$?
  [ "$rc" = 0 ] || { exited "$rc" sendmail; return 1; }
  run masqmail -C "$dir/test.conf" -q || rc=$?
  [ "$rc" = 0 ] || { exited "$rc" 'masqmail -q'; return 1; }
  [ -s "$dir/mda.out" ] || { why="the MDA wrote nothing to mda.out"; return 1; }
  grep -qx 'Subject: through the MDA' "$dir/mda.out" ||
    { why="mda.out lacks the message: $(head -n 1 "$dir/mda.out")"; return 1; }
  return 0
}

check_empty() {
  local rc=0
  run mailq -C "$dir/test.conf" || rc=$?
  [ "$rc" = 0 ] || { exited "$rc"; return 1; }
  grep -qx 'Mail queue is empty' "$dir/out" ||
    { why="expected 'Mail queue is empty', got: $(head -n 1 "$dir/out")"; return 1; }
  return 0
}

test_one() {
  target_info "$t"
  label=$t
  [ "$variant" = notls ] && label="$t-notls"
  bin=$(out_dir "$t" "$variant")/masqmail
  pass=0 fail=0 skip=0 xfailed=0 accepted=0 ids=()
  echo "== test $label${QEMU:+ ($QEMU -cpu $QEMU_CPU)}"
  if [ ! -f "$bin" ]; then
    printf 'FAIL  %-32s %s\n' "$label" "no binary at $bin (run cross/build.sh $t)"
    total_fail=$((total_fail + 1))
    return 0
  fi
  dir=$(mktemp -d "${TMPDIR:-/tmp}/masqmail-cross.XXXXXX")
  local binabs n c
  binabs=$(cd "$(dirname "$bin")" && pwd)/masqmail
  for n in masqmail sendmail mailq; do ln -s "$binabs" "$dir/$n"; done
  mkdir -p "$dir/spool" "$dir/mail"
  : >"$dir/online"
  cat >"$dir/test.conf" <<EOF
# cross/test.sh: local only, test mode, nothing online.
config masqmail 'main'
	option host_name 'test.example'
	option run_as_user '1'
	option spool_dir '$dir/spool'
	option mail_dir '$dir/mail'
	list local_hosts 'localhost'
	list local_hosts 'test.example'
	option online_detect 'file'
	option online_file '$dir/online'
	option local_delivery 'mda'
	option mda "/bin/sh -c 'cat >> $dir/mda.out'"
EOF
  cat >"$dir/message" <<EOF
From: Cross Test <tester@test.example>
To: Someone <someone@example.org>
Subject: smoke test of the $label build

Hello from the $label smoke test.
.a line that starts with a dot
EOF
  step "file: static, $FILE_RE" check_file
  step "ELF byte order ($([ "${t%%-*}" = mips ] && echo big || echo little)-endian)" check_endian
  step "masqmail version" check_version
  for c in "$CROSS_REPO"/examples/*.conf; do
    step "config check -C examples/${c##*/}" check_config "$c"
  done
  step "config check -C test.conf" check_config "$dir/test.conf"
  step "sendmail -t -i < message" check_sendmail
  step "mailq lists it" check_mailq_lists
  step "another build lists the spool the same" check_cross_read
  step "SMTP session over -bs" check_smtp
  step "mailq lists every accepted message" check_mailq_lists
  step "masqmail -Mrm ID…" check_rm
  step "mailq: Mail queue is empty" check_empty
  step "masqmail -q delivers to root through the MDA (fork, exec, pipes)" check_mda
  step "mailq: Mail queue is empty after the run" check_empty
  local summary="$pass passed, $fail failed, $skip skipped"
  [ "$xfailed" -gt 0 ] && summary="$summary, $xfailed failed as expected"
  if [ "$fail" -gt 0 ] || [ "$xfailed" -gt 0 ] || [ "${KEEP:-0}" = 1 ]; then
    echo "   $label: $summary (kept: $dir/log)"
  else
    echo "   $label: $summary"
    tmpdirs+=("$dir")
  fi
  total_pass=$((total_pass + pass)) total_fail=$((total_fail + fail))
  total_skip=$((total_skip + skip)) total_xfail=$((total_xfail + xfailed))
}

for t in "${TARGETS[@]}"; do
  for variant in "${variants[@]}"; do
    test_one
  done
done

[ "$total_xfail" -gt 0 ] &&
  echo "cross: $total_xfail step(s) failed as expected (CROSS_XFAIL='${CROSS_XFAIL:-}')"
echo "cross: $total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" = 0 ]
