#!/usr/bin/env bash
# cli_signal_race.sh: a signal that arrives just after a table's temporary file
# is created (before the run has done anything else with it) still removes it.
# strace holds the run inside the flock(2) that follows the file's creation for
# a second, and the run gets SIGTERM meanwhile. SKIP without strace (Debian
# package strace) or where the kernel refuses to trace.
set -u
BAFU=${1:?usage: cli_signal_race.sh path/to/bafu}
command -v strace >/dev/null || { echo "SKIP: strace not installed"; exit 77; }
strace -o /dev/null true 2>/dev/null || { echo "SKIP: strace cannot trace here"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
for cmd in "theory --depth 2" "mc --depth 2 --width 8 --seeds 2"; do
  rm -f "$dir"/*
  strace -f -o /dev/null -e trace=flock -e inject=flock:delay_enter=1000000 "$BAFU" $cmd --out "$dir/t.dat" 2>/dev/null &
  pid=$!
  for _ in $(seq 1 1000); do compgen -G "$dir/t.dat.tmp*" >/dev/null && break; sleep 0.01; done
  if ! compgen -G "$dir/t.dat.tmp*" >/dev/null; then
    echo "FAIL: $cmd: no temporary file appeared"; fails=$((fails + 1)); kill $pid; wait $pid; continue
  fi
  kill -TERM "$(pgrep -P $pid)"
  wait $pid
  rc=$?
  left=$(ls -A "$dir")
  if [[ $rc -eq 143 && -z $left ]]; then passes=$((passes + 1))
  else echo "FAIL: $cmd: SIGTERM inside the creation of its temporary: exit $rc, left: $left"; fails=$((fails + 1)); fi
done
echo "cli_signal_race: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
