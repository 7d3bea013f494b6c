#!/usr/bin/env bash
# cli_errors.sh: every option's error path of the bafu executable.
# Each bad invocation must print one line on stderr naming the option, exit
# non-zero (2 for usage errors), print nothing on stdout and leave no file.
set -u
BAFU=${1:?usage: cli_errors.sh path/to/bafu}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0

expect_error() { # option-name-in-message, then the arguments
  local want=$1; shift
  local out="$dir/out.dat"
  rm -f "$out"
  timeout 60 "$BAFU" "$@" --out "$out" >"$dir/stdout" 2>"$dir/stderr"
  local rc=$?
  local lines
  lines=$(wc -l <"$dir/stderr")
  if [[ $rc -eq 0 || $rc -ge 124 ]]; then
    echo "FAIL: bafu $* exited $rc"; fails=$((fails + 1)); return
  fi
  if [[ $lines -ne 1 ]] || ! grep -q -- "$want" "$dir/stderr"; then
    echo "FAIL: bafu $*: stderr should be one line naming $want, got:"; cat "$dir/stderr"
    fails=$((fails + 1)); return
  fi
  if [[ -s "$dir/stdout" ]] || ls "$dir" | grep -q '^out\.dat'; then
    echo "FAIL: bafu $*: left output behind"; ls "$dir"; fails=$((fails + 1)); return
  fi
  passes=$((passes + 1))
}

expect_error --width mc --width abc
expect_error --width mc --width 0
expect_error --width mc --width -5
expect_error --width mc --width 12x
expect_error --width mc --width 99999999999999999999999
expect_error --depth mc --depth 0
expect_error --depth mc --depth 2.5
expect_error --batch mc --batch -1
expect_error --input-dim mc --input-dim ""
expect_error --seeds mc --seeds 1
expect_error --seeds mc --seeds many
expect_error --seed mc --seed -3
expect_error --threads mc --threads 0
expect_error --sigma-w2 mc --sigma-w2 nan
expect_error --sigma-w2 mc --sigma-w2 inf
expect_error --sigma-w2 mc --sigma-w2 -1
expect_error --sigma-w2 mc --sigma-w2 0
expect_error --sigma-w2 mc --sigma-w2 1e400
expect_error --lr-hidden mc --lr-hidden -0.5
expect_error --lr-input mc --lr-input NaN
expect_error --lr-output mc --lr-output x
expect_error --branch-scale mc --arch resnet --branch-scale -1
expect_error --branch-exponent mc --arch resnet --branch-exponent abc
expect_error --rng mc --rng mersenne
expect_error --step mc --step nan
expect_error --act mc --act sigmoid
expect_error --arch mc --arch transformer
expect_error --init mc --init xavier
expect_error --loss mc --loss hinge
expect_error --probe mc --probe --loss mse
expect_error --outputs mc --outputs 3
expect_error --embed mc --embed
expect_error --input-dim mc --arch resnet --input-dim 10
expect_error "unknown option" mc --widht 10
expect_error "missing value" mc --seed
expect_error "given twice" mc --width 8 --width 9
expect_error "GiB" mc --width 100000000 --depth 4
expect_error "GiB" mc --width 4096 --depth 100000
expect_error --input mc --input "$dir/missing.txt"
printf '1 2 3\n4 5\n' >"$dir/bad.txt"
expect_error --input mc --input "$dir/bad.txt"
printf '1 2 3\n4 5 6\n' >"$dir/good.txt"
expect_error --batch mc --input "$dir/good.txt" --batch 3

expect_error --branch-scale mc --arch resnet --branch-scale 0 --width 16 --depth 3
expect_error --branch-scale theory --arch resnet --branch-scale 0

# frozen layers: rows without a defined angle are left out, never printed as nan
for cmd in mc theory; do
  out=$("$BAFU" $cmd --lr-input 0 --width 16 --depth 3 --seeds 2 2>/dev/null || "$BAFU" $cmd --lr-input 0 --width 16 --depth 3)
  if grep -qi nan <<<"$out" || ! grep -q "left out" <<<"$out"; then echo "FAIL: $cmd --lr-input 0"; fails=$((fails + 1)); else passes=$((passes + 1)); fi
done

# theory and kernel options
expect_error --limit theory --limit
expect_error --sweep-branch theory --arch resnet --limit --sweep-branch 1:0:1
expect_error --sweep-branch theory --arch resnet --limit --sweep-branch 0:1
expect_error --sweep-branch theory --arch resnet --limit --sweep-branch 0:1:0
expect_error --sweep-branch theory --sweep-branch 0:1:0.5
expect_error --act theory --arch resnet --limit --act tanh
expect_error --batch theory --batch 4
expect_error --points theory --arch resnet --limit --points 0
expect_error --corr kernel --corr 1.5
expect_error --corr kernel --corr nan
expect_error --every kernel --every 0
expect_error --width theory --width 0
expect_error --mode spectrum --mode bogus
expect_error --object spectrum --object bogus
expect_error --batch spectrum --batch 4
expect_error --bins spectrum --mode limit --bins 10
expect_error --bins spectrum --mode kpm --bins 3
expect_error --kpm-vectors spectrum --mode kpm --kpm-vectors 5000
expect_error --layer spectrum --depth 4 --layer 99
expect_error --log-bins spectrum --mode kpm --log-bins
expect_error --log-bins spectrum --moments --log-bins
expect_error --act spectrum --mode limit --arch resnet --act tanh

# figures: directories that cannot be used
touch "$dir/afile"
"$BAFU" figures --data-dir "$dir/afile" >/dev/null 2>"$dir/stderr"; rc=$?
if [[ $rc -eq 2 ]] && grep -q -- --data-dir "$dir/stderr"; then passes=$((passes + 1)); else echo "FAIL: figures --data-dir file"; fails=$((fails + 1)); fi
"$BAFU" figures --threads 0 >/dev/null 2>"$dir/stderr"; rc=$?
if [[ $rc -eq 2 ]] && grep -q -- --threads "$dir/stderr"; then passes=$((passes + 1)); else echo "FAIL: figures --threads 0"; fails=$((fails + 1)); fi

# unwritable output paths: a missing directory, a directory, a read-only dir
# presets and training (bafu train; the data set errors use a corrupted copy)
expect_error --preset mc --preset xyz
expect_error --lr-hidden mc --preset fsc --lr-hidden 2
expect_error --sigma2-output mc --sigma2-output -1
expect_error --inputs mc --inputs sparse
expect_error --embed theory --presets --arch resnet --inputs onehot --preset mup
expect_error --loss theory --loss xent
expect_error --data train --data mnist
expect_error --epochs train --epochs 0
expect_error --lr train --control --lr 0.1
expect_error --lr train --lr nan
expect_error --control-rate train --control-rate 0.7
expect_error --control-speed train --control-speed -1
expect_error --forward-norm train --forward-norm inf
expect_error --backward-norm train --backward-norm -0.5
expect_error --input-dim train --input-dim 100
expect_error --loss train --data teacher --loss xent
expect_error --probe train --probe
expect_error --regenerate train --regenerate
expect_error "dataset-fashion-mnist" train --data-dir "$dir/no-such-dir"
mkdir -p "$dir/bad"
if [[ -r /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz ]]; then
  for f in train-labels-idx1-ubyte.gz t10k-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz; do
    cp /usr/share/datasets/fashion-mnist/$f "$dir/bad/"
  done
  head -c 100000 /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz >"$dir/bad/train-images-idx3-ubyte.gz"
  expect_error "train-images" train --data-dir "$dir/bad"
fi

for target in "$dir/no/such/dir/out.dat" "$dir"; do
  timeout 60 "$BAFU" mc --width 8 --depth 2 --seeds 2 --out "$target" >/dev/null 2>"$dir/stderr"
  rc=$?
  if [[ $rc -ne 0 ]] && grep -q -- --out "$dir/stderr" && [[ $(wc -l <"$dir/stderr") -eq 1 ]]; then
    passes=$((passes + 1))
  else
    echo "FAIL: --out $target: rc=$rc"; cat "$dir/stderr"; fails=$((fails + 1))
  fi
done
if [[ $(id -u) -ne 0 ]]; then
  mkdir "$dir/ro" && chmod 555 "$dir/ro"
  timeout 60 "$BAFU" mc --width 8 --depth 2 --seeds 2 --out "$dir/ro/out.dat" >/dev/null 2>"$dir/stderr"
  if [[ $? -ne 0 ]] && [[ -z $(ls "$dir/ro") ]]; then passes=$((passes + 1)); else echo "FAIL: read-only dir"; fails=$((fails + 1)); fi
fi

# unknown command and bare invocation
"$BAFU" frobnicate >/dev/null 2>&1; [[ $? -eq 2 ]] && passes=$((passes + 1)) || { echo "FAIL: unknown command"; fails=$((fails + 1)); }
"$BAFU" >/dev/null 2>&1; [[ $? -eq 2 ]] && passes=$((passes + 1)) || { echo "FAIL: bare bafu"; fails=$((fails + 1)); }

# a good run writes a complete table atomically, and --help exits 0
if "$BAFU" mc --width 16 --depth 3 --seeds 2 --out "$dir/ok.dat" 2>"$dir/stderr" &&
   [[ $(grep -vc '^#' "$dir/ok.dat") -eq 4 ]] && ! ls "$dir" | grep -q 'tmp'; then
  passes=$((passes + 1))
else
  echo "FAIL: good run"; cat "$dir/stderr"; fails=$((fails + 1))
fi
"$BAFU" mc --help | grep -q -- --width && passes=$((passes + 1)) || { echo "FAIL: --help"; fails=$((fails + 1)); }

echo "cli_errors: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
