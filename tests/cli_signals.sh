#!/usr/bin/env bash
# cli_signals.sh: SIGTERM or SIGHUP during a long run leaves no temporary file
# and keeps an earlier complete table under the same name byte for byte.
set -u
BAFU=${1:?usage: cli_signals.sh path/to/bafu}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
"$BAFU" mc --width 16 --depth 3 --seeds 2 --out "$dir/t.dat" 2>/dev/null || { echo "FAIL: first run"; exit 1; }
before=$(cksum <"$dir/t.dat")
for sig in TERM HUP; do
  # a run of many seconds (4000 draws of a 512 x 64 network), interrupted after 1 s
  "$BAFU" mc --width 512 --depth 64 --seeds 4000 --out "$dir/t.dat" 2>/dev/null &
  pid=$!
  sleep 1
  # the run is under way: its table is open as a temporary file
  if ls "$dir" | grep -q 'tmp'; then passes=$((passes + 1)); else echo "FAIL: SIG$sig: no temporary file mid-run"; fails=$((fails + 1)); fi
  kill -s "$sig" "$pid"
  wait "$pid"
  rc=$?
  if [[ $rc -eq $((128 + $(kill -l "$sig"))) ]]; then passes=$((passes + 1)); else echo "FAIL: SIG$sig: exit $rc"; fails=$((fails + 1)); fi
  if [[ -z $(ls "$dir" | grep tmp) ]]; then passes=$((passes + 1)); else echo "FAIL: SIG$sig left $(ls "$dir")"; fails=$((fails + 1)); fi
  if [[ $(cksum <"$dir/t.dat") == "$before" ]]; then passes=$((passes + 1)); else echo "FAIL: SIG$sig changed the earlier table"; fails=$((fails + 1)); fi
done
echo "cli_signals: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
