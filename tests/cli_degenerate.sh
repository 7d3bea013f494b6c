#!/usr/bin/env bash
# cli_degenerate.sh: degenerate but legal requests in every subcommand get a
# defined answer: either a table without a single nan or inf value (exit 0, or
# exit 1 for a run that stopped and kept its rows), or a one-line message and
# exit 1 (a valid request that failed: the cause named) or 2 (an invalid
# request). Never a crash, never nan with exit 0 (theory/engine.md 3.4-3.5).
set -u
BAFU=${1:?usage: cli_degenerate.sh path/to/bafu}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
ulimit -c 0
printf '1 1 1 1\n' >"$dir/ones.txt"
printf '1 1 1 1\n1 1 1 1\n1 1 1 1\n' >"$dir/same.txt"
printf '0 0 0 0\n' >"$dir/zeros.txt"
printf '1e-320 0 0 0\n' >"$dir/tiny.txt"

check() { # what is allowed ("0", "0 1", "1 2", ...), message fragment ('' for none), then the arguments
  local allowed=$1 want=$2; shift 2
  rm -f "$dir/out.dat"
  timeout 300 "$BAFU" "$@" --out "$dir/out.dat" </dev/null >"$dir/stdout" 2>"$dir/stderr"
  local rc=$? what="bafu $*"
  if [[ " $allowed " != *" $rc "* ]]; then echo "FAIL: $what: exit $rc (allowed: $allowed): $(head -3 "$dir/stderr")"; fails=$((fails + 1)); return; fi
  if [[ -e $dir/out.dat ]] && grep -v '^#' "$dir/out.dat" | grep -Eiq '(^|[ ,])[-+]?(nan|inf)'; then
    echo "FAIL: $what: the table holds nan or inf"; fails=$((fails + 1)); return; fi
  if [[ $rc -eq 0 && ! -s $dir/out.dat ]]; then echo "FAIL: $what: exit 0 without a table"; fails=$((fails + 1)); return; fi
  if [[ $rc -ne 0 && $(grep -vc '^\[' "$dir/stderr") -ne 1 ]]; then
    echo "FAIL: $what: exit $rc with $(wc -l <"$dir/stderr") lines on stderr:"; cat "$dir/stderr"; fails=$((fails + 1)); return; fi
  if [[ -n $want ]] && ! grep -q -- "$want" "$dir/stderr" "$dir/out.dat" 2>/dev/null; then
    echo "FAIL: $what: '$want' not said: $(cat "$dir/stderr")"; fails=$((fails + 1)); return; fi
  if [[ -s $dir/stdout ]]; then echo "FAIL: $what: wrote to stdout with --out"; fails=$((fails + 1)); return; fi
  passes=$((passes + 1))
}

# mc: dead ReLU layers at small widths are excluded and counted
for w in 1 2 3 4 8; do check "0 1" "" mc --width $w --depth 8 --seeds 16; done
check 0 "degenerate draws" mc --width 8 --depth 8 --seeds 64
for w in 1 2; do
  check "0 1" "" mc --arch resnet --width $w --depth 6 --seeds 16
  check "0 1" "" mc --width $w --depth 4 --seeds 16 --conditional
  check "0 1" "" mc --width $w --depth 4 --seeds 16 --loss mse --batch 3
  check "0 1" "" mc --width $w --depth 4 --seeds 16 --loss xent --inputs onehot
  check "0 1" "" mc --width $w --depth 4 --seeds 16 --act tanh
done
check 0 "" mc --width 16 --depth 4 --seeds 8 --input "$dir/ones.txt"
check 0 "" mc --width 16 --depth 4 --seeds 8 --input "$dir/same.txt"
check "0 1" "" mc --width 16 --depth 4 --seeds 8 --input "$dir/tiny.txt"
check 2 "every sample" mc --width 16 --depth 4 --seeds 8 --input "$dir/zeros.txt"
check 1 "below rounding" mc --width 16 --depth 4 --seeds 8 --step 1e-17
check 1 "vanish" mc --width 16 --depth 4 --seeds 8 --sigma-w2 1e-300
check 1 "vanish" mc --width 16 --depth 4 --seeds 8 --sigma-w2 1e-320
check 0 "left out" mc --width 16 --depth 4 --seeds 8 --lr-input 0
check 2 "" mc --arch resnet --width 16 --depth 4 --seeds 8 --branch-scale 0
check 1 "" mc --arch resnet --width 16 --depth 64 --seeds 2 --branch-scale 1e150 --branch-exponent 0

# theory and kernel
check 2 "every sample" theory --width 16 --depth 4 --input "$dir/zeros.txt"
check 0 "" theory --width 16 --depth 4 --input "$dir/tiny.txt"
check 1 "underflow" theory --width 16 --depth 4 --sigma-w2 1e-300
check 0 "left out" theory --depth 4 --lr-input 0
check 2 "" theory --arch resnet --depth 4 --branch-scale 0
check 1 "failed" theory --arch resnet --limit --sweep-branch 0:20:4
check "0 1" "" kernel --depth 100 --sigma-w2 1e-300
check 0 "" kernel --depth 100 --corr 1
check 0 "" kernel --depth 100 --corr -1
check 1 "overflow" kernel --depth 2000 --sigma-w2 4 --act linear
check 0 "" kernel --depth 10 --input "$dir/same.txt"
check 0 "" kernel --arch resnet --depth 10 --branch-scale 0

# spectra
check 0 "atom: x 0" spectrum --mode dense --object jacobian --width 64 --depth 3 --log-bins
check 0 "" spectrum --mode dense --width 2 --depth 3
check 0 "" spectrum --mode kpm --width 8 --depth 2
check 2 "no trained parameter" spectrum --mode dense --width 16 --depth 3 --lr-input 0 --layer 1
check 2 "no trained parameter" spectrum --moments --arch resnet --width 16 --depth 3 --branch-scale 0
check 1 "overflow" spectrum --mode limit --depth 300 --sigma-w2 40 --act linear

# sweep: a failing point is marked, the others written
printf 'width = 1 16\ndepth = 8\nseeds = 4\n' >"$dir/grid.txt"
check 1 "points failed" sweep "$dir/grid.txt"
grep -q '^# point 0 failed' "$dir/out.dat" && grep -q '^1 mlp 16 ' "$dir/out.dat" && passes=$((passes + 1)) ||
  { echo "FAIL: sweep: the failed point is not marked, or the good one is missing"; fails=$((fails + 1)); }
# --failed-ok: a learning-rate grid whose largest rate diverges is a result (exit 0), the point marked
printf 'task = train\ndata = teacher\nwidth = 16\ndepth = 3\ntrain_size = 256\ntest_size = 64\nbatch = 16\nepochs = 1\nlr = 0.01 100\nrows = final\n' >"$dir/lrgrid.txt"
check 0 "1 of 2 points failed" sweep "$dir/lrgrid.txt" --failed-ok
grep -q '^# point 1 failed: .*diverged' "$dir/out.dat" && [[ $(grep -v '^#' "$dir/out.dat" | awk '$1 == 0' | wc -l) -gt 0 ]] &&
  passes=$((passes + 1)) || { echo "FAIL: sweep --failed-ok: the diverged point is not marked, or the other is missing"; fails=$((fails + 1)); }

# train: a run that cannot go on stops with exit 1 and keeps its rows
T=(train --data teacher --train-size 256 --test-size 64 --batch 16 --epochs 2 --log-every 2 --quiet)
check 1 "underflow" "${T[@]}" --width 16 --depth 3 --backward-norm 1e-200
check "0 1" "" "${T[@]}" --width 2 --depth 3
check "0 1" "" "${T[@]}" --width 16 --depth 3 --forward-norm 1e-300 --lr 1
check 1 "diverged" "${T[@]}" --width 16 --depth 3 --lr 100
if [[ -s $dir/out.dat ]] && grep -q '^# stopped after the rows of step' "$dir/out.dat" && [[ $(grep -vc '^#' "$dir/out.dat") -gt 1 ]]; then
  passes=$((passes + 1)); else echo "FAIL: train: a diverged run did not keep its rows"; fails=$((fails + 1)); fi
check 0 "left out" "${T[@]}" --width 16 --depth 3 --lr-input 0

echo "cli_degenerate: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
