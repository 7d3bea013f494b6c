#!/usr/bin/env bash
# cli_progress.sh: bafu mc shows a progress bar (draws, rate, ETA) on stderr when
# it is a terminal and the run is longer than 2 s; nothing with --quiet, and
# nothing when stderr is a file; the table is the same in all three cases.
# sweep (points), train (steps), spectrum (products), figures (figures), theory
# (blocks of the ResNet moment sweeps, values of a branch sweep) and kernel
# (layers) show theirs on a terminal and are silent with --quiet.
set -u
BAFU=${1:?usage: cli_progress.sh path/to/bafu}
if ! command -v script >/dev/null; then echo "cli_progress: script(1) not installed (Debian package bsdutils): SKIP"; exit 77; fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
args=(mc --width 512 --depth 64 --seeds 64) # about 3 s on one core
script -qec "'$BAFU' ${args[*]} --out '$dir/a.dat'" /dev/null >"$dir/tty" 2>&1
grep -q "64/64 draws" "$dir/tty" && grep -q "ETA" "$dir/tty" && passes=$((passes + 1)) || { echo "FAIL: no bar on a terminal"; cat "$dir/tty"; fails=$((fails + 1)); }
script -qec "'$BAFU' ${args[*]} --quiet --out '$dir/b.dat'" /dev/null >"$dir/quiet" 2>&1
[[ ! -s $dir/quiet ]] && passes=$((passes + 1)) || { echo "FAIL: --quiet printed"; cat "$dir/quiet"; fails=$((fails + 1)); }
"$BAFU" "${args[@]}" --out "$dir/c.dat" 2>"$dir/err"
[[ ! -s $dir/err ]] && passes=$((passes + 1)) || { echo "FAIL: progress on a non-terminal stderr"; fails=$((fails + 1)); }
# the tables differ only in their provenance lines (command, date)
if diff <(grep -v '^#' "$dir/a.dat") <(grep -v '^#' "$dir/b.dat") >/dev/null &&
   diff <(grep -v '^#' "$dir/a.dat") <(grep -v '^#' "$dir/c.dat") >/dev/null; then passes=$((passes + 1)); else echo "FAIL: tables differ"; fails=$((fails + 1)); fi
# the other long runs, each several seconds on one core
printf 'width = 512 1024\ndepth = 16 32\nseeds = 16\n' >"$dir/grid.txt"
check_bar() { # unit, then the command
  local unit=$1; shift
  script -qec "$*" /dev/null >"$dir/tty" 2>&1
  if grep -q "$unit" "$dir/tty" && grep -q "ETA" "$dir/tty"; then passes=$((passes + 1)); else echo "FAIL: no $unit bar: $*"; cat "$dir/tty"; fails=$((fails + 1)); fi
  script -qec "$* --quiet" /dev/null >"$dir/tty" 2>&1
  if [[ ! -s $dir/tty ]]; then passes=$((passes + 1)); else echo "FAIL: --quiet printed: $*"; cat "$dir/tty"; fails=$((fails + 1)); fi
}
check_bar "4/4 points" "'$BAFU' sweep '$dir/grid.txt' --out '$dir/s.dat'"
check_bar "steps" "'$BAFU' train --data teacher --width 256 --depth 8 --epochs 3 --out '$dir/t.dat'"
check_bar "products" "'$BAFU' spectrum --mode kpm --width 2048 --depth 3 --out '$dir/k.dat'"
check_bar "figures" "'$BAFU' figures --quick --no-render --no-train --data-dir '$dir/fig'"
check_bar "blocks" "'$BAFU' theory --arch resnet --depth 20000 --out '$dir/th.dat'" # the ReLU pairs, O(L^2): a few seconds
check_bar "values" "'$BAFU' theory --arch resnet --limit --act swish --sweep-branch 0:8:0.25 --out '$dir/tb.dat'" # swish's grid: several seconds
check_bar "layers" "'$BAFU' kernel --act tanh --sigma-w2 1 --method direct --depth 3000 --every 1000 --out '$dir/ke.dat'" # the quadrature at every layer: several seconds
echo "cli_progress: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
