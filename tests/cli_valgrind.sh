#!/usr/bin/env bash
# cli_valgrind.sh: a small run of every subcommand under valgrind memcheck: no
# memory error and no definite or indirect leak (libgomp's and OpenBLAS's
# thread pools stay "still reachable" at exit, which is not a leak; Open MPI's
# own reports are suppressed with the file Debian ships). Skipped without valgrind.
set -u
BAFU=${1:?usage: cli_valgrind.sh path/to/bafu}
if ! command -v valgrind >/dev/null; then echo "cli_valgrind: valgrind not installed: SKIP"; exit 77; fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
supp=(--suppressions="$(dirname "$0")/valgrind.supp")
[[ -r /usr/share/openmpi/openmpi-valgrind.supp ]] && supp+=(--suppressions=/usr/share/openmpi/openmpi-valgrind.supp)
printf 'arch = mlp resnet\nwidth = 8\ndepth = 2\nseeds = 2\n' >"$dir/grid.txt"
run() { # name, expected exit status, then the arguments
  local name=$1 want=$2; shift 2
  OPENBLAS_NUM_THREADS=1 timeout 600 valgrind -q --num-callers=60 --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect "${supp[@]}" \
    "$BAFU" "$@" >"$dir/out" 2>"$dir/vg"
  local rc=$?
  if [[ $rc -eq $want ]]; then
    passes=$((passes + 1))
  else
    echo "FAIL: valgrind $name (exit $rc, expected $want):"; head -40 "$dir/vg"; fails=$((fails + 1))
  fi
}
run mc 0 mc --width 12 --depth 3 --seeds 2 --loss xent --inputs onehot --preset fsc
run mc-conditional 0 mc --width 12 --depth 3 --seeds 2 --batch 2 --loss mse --arch resnet --embed --conditional
run theory 0 theory --width 16 --depth 4 --preset mup --loss mse
run theory-limit 0 theory --arch resnet --limit --points 10
run kernel 0 kernel --depth 6 --corr 0.3
run spectrum 0 spectrum --width 24 --depth 3 --mode dense
run sweep 0 sweep "$dir/grid.txt"
run train 0 train --data teacher --width 12 --depth 3 --train-size 128 --test-size 64 --batch 16 --epochs 1 --log-every 4 --preset fsc --control --forward-norm 1 --backward-norm 1
if [[ -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]]; then
  run train-fashion 0 train --width 8 --depth 2 --train-size 256 --test-size 64 --epochs 1 --log-every 4
fi
# checkpoints: a sweep that writes one; a training run under valgrind stopped by
# SIGTERM after its first checkpoint (valgrind hands the signal to bafu), then
# resumed under valgrind (both sides under valgrind: the same BLAS kernels)
run sweep-ckpt 0 sweep "$dir/grid.txt" --out "$dir/s.dat"
T=(train --data teacher --width 48 --depth 3 --train-size 4096 --test-size 64 --batch 32 --epochs 2 --log-every 20 --preset fsc --control --checkpoint-every 40)
OPENBLAS_NUM_THREADS=1 valgrind -q "${supp[@]}" "$BAFU" "${T[@]}" --out "$dir/t.dat" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 6000); do [[ -e $dir/t.dat.ckpt ]] && break; sleep 0.05; done
kill -TERM $pid 2>/dev/null
wait $pid
if [[ -e $dir/t.dat.ckpt && ! -e $dir/t.dat ]]; then run train-resume 0 "${T[@]}" --out "$dir/t.dat" --resume
else echo "FAIL: no training checkpoint to resume (or the run finished first)"; fails=$((fails + 1)); fi
run bad-option 2 mc --width 0
printf '1 2\n3 4\n' >"$dir/x.txt"
run bad-input 2 mc --input "$dir/x.txt" --batch 3   # the inputs were read, then refused (leaked before)
echo "cli_valgrind: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
