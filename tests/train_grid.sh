#!/usr/bin/env bash
# train_grid.sh: does `bafu train` with its automatic step train without
# divergence at the corners of its range? Runs every combination of the
# lists below for the first STEPS steps (batch 64) and prints one line per run:
#
#   data arch preset control width depth seed verdict step peak final
#
# F_0 = the initial loss: the test loss of the initial network (on 256 held-out
# samples, so that it is the loss at initialisation rather than one batch's);
# peak = the largest mean batch loss over a window of 10 steps, over F_0;
# final = the mean batch loss of the last 50 steps (151..199 of 200), over F_0;
# step = the step at which the run failed (- when it did not).
#
# "Without divergence" (the verdict ok) means all three of:
#   1. bafu train exits 0: no row holds a value that is not finite, and its
#      own stop (a batch loss over 100 times the first) did not fire;
#   2. the mean batch loss of every window of 10 steps stays below PEAK (3)
#      times F_0 (so no batch loss reaches 30 F_0);
#   3. the mean batch loss of the last 50 steps is below STALL (1.05) times
#      F_0: no drift upwards beyond the noise of a 50-batch mean.
# A run that meets 1-3 but whose last 50 steps' mean is not below F_0 did not
# diverge and did not learn either: verdict "stalled", counted apart (a pass).
# Rows are logged every 10 steps: each row's loss is the mean batch loss since
# the previous row, its test_loss (step 0) that of the initial network.
# Usage: train_grid.sh BAFU [NAME=VALUE ...] with the lists (space-separated)
#   DATA="fashion-mnist teacher" ARCH="mlp resnet" PRESET="sp ntk mup fsc"
#   CONTROL="0 1" CORNERS="32x1 32x64 512x1 512x64" (width x depth pairs)
#   SEED="1 2 3 4 5" STEPS=200
#   JOBS=2 PEAK=3 STALL=1.05 EXTRA="" (more options for every run)
# and QUIET=1 to print only the failing runs and the closing line. Exit 0 when
# every run is ok or stalled, 1 otherwise. A ResNet is run with its trained embedding
# (--embed): Fashion-MNIST's 784 inputs do not match the width otherwise.
# Fashion-MNIST runs need the Debian package dataset-fashion-mnist (or
# $BAFU_FASHION_MNIST_DIR): without it they are left out (and a grid of them
# only reports SKIP, exit 77). They read a copy of its first 64 STEPS
# training and first 256 test images, made here (standardised with that
# slice's pixel mean and sd): reading all 60000 images would cost 2 s a run.
set -u
BAFU=${1:?usage: train_grid.sh path/to/bafu [NAME=VALUE ...]}
shift
DATA="fashion-mnist teacher" ARCH="mlp resnet" PRESET="sp ntk mup fsc" CONTROL="0 1"
CORNERS="32x1 32x64 512x1 512x64" SEED="1 2 3 4 5" STEPS=200 JOBS=2 PEAK=3 STALL=1.05 EXTRA="" QUIET=0
for kv in "$@"; do
  case $kv in
    DATA=* | ARCH=* | PRESET=* | CONTROL=* | CORNERS=* | SEED=* | STEPS=* | JOBS=* | PEAK=* | STALL=* | EXTRA=* | QUIET=*)
      declare "$kv" ;;
    *) echo "train_grid.sh: unknown setting '$kv'" >&2; exit 2 ;;
  esac
done
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
src=${BAFU_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
fmnist=$src/t10k-images-idx3-ubyte.gz

# the first N samples of an IDX file pair: images (magic 0x803, 28 x 28) and labels (0x801)
be32() { printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"; }
slice() { # set (train or t10k), N
  { printf '\000\000\010\003'; be32 "$2"; be32 28; be32 28
    gzip -dc "$src/$1-images-idx3-ubyte.gz" | tail -c +17 | head -c $(($2 * 784)); } | gzip -1 >"$dir/fm/$1-images-idx3-ubyte.gz"
  { printf '\000\000\010\001'; be32 "$2"
    gzip -dc "$src/$1-labels-idx1-ubyte.gz" | tail -c +9 | head -c "$2"; } | gzip -1 >"$dir/fm/$1-labels-idx1-ubyte.gz"
}

# one run: its verdict line on stdout
one() {
  local data=$1 arch=$2 preset=$3 control=$4 width=$5 depth=$6 seed=$7
  local tag="$data $arch $preset $control $width $depth $seed"
  local f=$dir/${tag// /_}
  local args=(train --data "$data" --arch "$arch" --preset "$preset" --width "$width" --depth "$depth" --seed "$seed"
    --batch 64 --train-size $((64 * STEPS)) --epochs 1 --test-size 256 --log-every 10 --quiet)
  [[ $arch == resnet ]] && args+=(--embed)
  [[ $data == fashion-mnist ]] && args+=(--data-dir "$dir/fm")
  [[ $control == 1 ]] && args+=(--control)
  # shellcheck disable=SC2206
  args+=($EXTRA)
  "$BAFU" "${args[@]}" >"$f.dat" 2>"$f.err"
  local rc=$?
  # column 7 is test_loss with accuracies (Fashion-MNIST), 6 without
  awk -v rc="$rc" -v peak="$PEAK" -v stall="$STALL" -v tag="$tag" -v steps="$STEPS" -v err="$(tr '\n' ' ' <"$f.err")" '
    BEGIN { last = -1; n = 0 }
    /^#/ { next }
    $1 == "step" { tl = $6 == "train_acc" ? 7 : 6; next }
    $3 != 0 || $1 == last { next }
    { if (n == 0) F0 = $tl; w = n == 0 ? 1 : $1 - last; last = $1; S[n] = $1; F[n] = $5; W[n++] = w }
    END {
      if (n == 0) { printf "%s fail 0 - - %s\n", tag, err; exit }
      mx = 0; bad = -1; s = 0; k = 0
      for (i = 0; i < n; ++i) {
        if (F[i] / F0 > mx) mx = F[i] / F0
        if (bad < 0 && !(F[i] < peak * F0)) bad = S[i]
        if (S[i] > steps - 50) { s += W[i] * F[i]; k += W[i] }
      }
      fin = k > 0 ? s / k / F0 : 1e300
      if (rc != 0) { if (match(err, /batch loss [0-9.e+-]+/)) { x = substr(err, RSTART + 11, RLENGTH - 11) / F0; if (x > mx) mx = x }
                     m = n; if (match(err, /at step [0-9]+/)) m = substr(err, RSTART + 8, RLENGTH - 8)
                     else if (match(err, /step [0-9]+:/)) m = substr(err, RSTART + 5, RLENGTH - 6)
                     printf "%s diverged %s %.3g - %s\n", tag, m, mx, err; exit }
      if (bad >= 0) { printf "%s diverged %d %.3g %.3g peak\n", tag, bad, mx, fin; exit }
      if (!(fin < stall)) { printf "%s diverged - %.3g %.3g final\n", tag, mx, fin; exit }
      if (!(fin < 1)) { printf "%s stalled - %.3g %.3g\n", tag, mx, fin; exit }
      printf "%s ok - %.3g %.3g\n", tag, mx, fin
    }' "$f.dat"
  rm -f "$f.dat" "$f.err"
}
export -f one
export BAFU STEPS PEAK STALL EXTRA dir

for data in $DATA; do
  if [[ $data == fashion-mnist && ! -r $fmnist ]]; then
    echo "note: Fashion-MNIST not installed (dataset-fashion-mnist): its runs are left out" >&2
    continue
  fi
  for arch in $ARCH; do for preset in $PRESET; do for control in $CONTROL; do
    for corner in $CORNERS; do for seed in $SEED; do
      echo "$data $arch $preset $control ${corner%x*} ${corner#*x} $seed"
    done; done
  done; done; done
done >"$dir/jobs"
if grep -q '^fashion-mnist' "$dir/jobs"; then
  mkdir "$dir/fm" && slice train $((64 * STEPS)) && slice t10k 256 || { echo "train_grid: cannot copy Fashion-MNIST" >&2; exit 2; }
fi
if [[ ! -s $dir/jobs ]]; then
  echo "train_grid: no run (SKIP)"
  exit 77
fi
echo "# data arch preset control width depth seed verdict step peak final"
xargs -P "$JOBS" -L 1 bash -c 'one "$@"' _ <"$dir/jobs" >"$dir/out"
sort -k1,1 -k2,2 -k3,3 -k4,4n -k5,5n -k6,6n -k7,7n "$dir/out" >"$dir/sorted"
if [[ $QUIET == 1 ]]; then awk '$8 != "ok"' "$dir/sorted"; else cat "$dir/sorted"; fi
good=$(awk '$8 == "ok" || $8 == "stalled"' "$dir/sorted" | wc -l)
stalled=$(awk '$8 == "stalled"' "$dir/sorted" | wc -l)
total=$(wc -l <"$dir/sorted")
echo "train_grid: $stalled of the passed runs stalled (no divergence, no learning)"
echo "train_grid: $good passed, $((total - good)) failed"
[[ $good -eq $total ]]
