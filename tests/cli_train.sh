#!/usr/bin/env bash
# cli_train.sh: the table of bafu train (columns, one row per layer and logged
# step, the final rows last with test_acc, the identity at every row) and the
# preset table of bafu theory --presets.
set -u
BAFU=${1:?usage: cli_train.sh path/to/bafu}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# teacher-student: 2 epochs of 512/32 = 16 steps, logged every 5 steps (0 5 10 15
# 20 25 30 and the last, 31) plus the final rows: 9 x J rows, J = 4 hidden + readout
if "$BAFU" train --data teacher --width 32 --depth 4 --train-size 512 --test-size 128 --batch 32 --epochs 2 \
     --log-every 5 --preset fsc --control --out "$dir/t.dat" 2>"$dir/err"; then
  header=$(grep -v '^#' "$dir/t.dat" | head -1)
  [[ $header == "step epoch final layer loss test_loss step_size lr cos_theta feature_speed feature_speed_rms contribution loss_decay identity_residual sensitivity" ]] && ok || bad "teacher header: $header"
  rows=$(grep -v '^#' "$dir/t.dat" | tail -n +2 | wc -l)
  [[ $rows -eq 45 ]] && ok || bad "teacher: $rows rows, expected 45"
  awk '!/^#/ && NR > 1 && $1 != "step" { if ($14 > 1e-9) exit 1 }' "$dir/t.dat" && ok || bad "teacher: identity residual"
  last=$(tail -1 "$dir/t.dat")
  [[ $(awk '{print $1, $3, $4}' <<<"$last") == "32 1 5" ]] && ok || bad "teacher: last row $last"
  # the closing line on stderr: 32 steps, the loss of the last logged interval (steps
  # 31: the row of step 31 follows the one of step 30), the final test loss and step
  want=$(grep -v '^#' "$dir/t.dat" | awk '$1 == 31 && $3 == 0 { l = $5 } $3 == 1 { t = $6; s = $7 }
    END { printf "training loss %.4g (mean of the last 1 step), test loss %.4g, step size %.3g", l, t, s }')
  if [[ $(wc -l <"$dir/err") -eq 1 ]] && grep -q "^bafu train: 32 steps in [0-9.]* s: $want\$" "$dir/err"; then ok
  else bad "teacher: summary line '$(cat "$dir/err")', expected '... $want'"; fi
  "$BAFU" train --data teacher --width 32 --depth 4 --train-size 512 --test-size 128 --batch 32 --epochs 1 --quiet \
    --out "$dir/quiet.dat" 2>"$dir/err" && [[ ! -s $dir/err ]] && ok || bad "--quiet: stderr '$(cat "$dir/err")'"
else
  bad "teacher run"; cat "$dir/err"
fi

# Fashion-MNIST (if installed): the very last row is the final one and holds test_acc
if [[ -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]]; then
  if "$BAFU" train --width 32 --depth 3 --train-size 1024 --test-size 500 --epochs 1 --log-every 8 \
       --out "$dir/f.dat" 2>"$dir/err"; then
    header=$(grep -v '^#' "$dir/f.dat" | head -1)
    [[ $(awk '{print $6, $8}' <<<"$header") == "train_acc test_acc" ]] && ok || bad "fashion header: $header"
    acc=$(tail -1 "$dir/f.dat" | awk '{print ($3 == 1 && $8 > 0.2 && $8 <= 1) ? "yes" : $8}') # chance is 0.1
    [[ $acc == yes ]] && ok || bad "fashion: final test_acc $acc"
    want=$(tail -1 "$dir/f.dat" | awk '{ printf "test loss %.4g, accuracy %.4f", $7, $8 }')
    grep -q "^bafu train: 16 steps in .*, accuracy [0-9.]* (mean of the last 7 steps), $want, step size" "$dir/err" &&
      ok || bad "fashion: summary line '$(cat "$dir/err")'"
  else
    bad "fashion run"; cat "$dir/err"
  fi
else
  echo "note: Fashion-MNIST not installed, its table check skipped"
fi

# the preset table: 4 presets x 3 groups x 2 input kinds, FSC hidden rate 1/L^2
if "$BAFU" theory --presets --width 256 --depth 16 --out "$dir/p.dat"; then
  [[ $(grep -v '^#' "$dir/p.dat" | tail -n +2 | wc -l) -eq 24 ]] && ok || bad "presets: row count"
  awk '$1 == "fsc" && $2 == "dense" && $3 == "hidden" { exit !($5 == "1/L^2" && $7 == 0.00390625) }' "$dir/p.dat" && ok || bad "presets: fsc hidden row"
else
  bad "theory --presets"
fi

# checkpoint and resume: a run stopped by SIGTERM after its first checkpoint,
# resumed with --resume, writes the table of the uninterrupted run (rows bit
# for bit) and removes its checkpoint; mismatched or damaged checkpoints are
# refused (exit 2, nothing written); with no checkpoint, --resume starts afresh
A=(train --data teacher --width 192 --depth 8 --epochs 4 --log-every 10 --quiet --checkpoint-every 60)
"$BAFU" "${A[@]}" --out "$dir/full.dat" || bad "resume: reference run"
"$BAFU" "${A[@]}" --out "$dir/r.dat" &
pid=$!
for _ in $(seq 1 1000); do [[ -e $dir/r.dat.ckpt ]] && break; sleep 0.01; done
kill -TERM $pid 2>/dev/null
wait $pid
if [[ -e $dir/r.dat.ckpt && ! -e $dir/r.dat ]]; then ok; else bad "resume: the interrupted run left no checkpoint (or a table)"; fi
cp "$dir/r.dat.ckpt" "$dir/saved.ckpt"
"$BAFU" "${A[@]}" --out "$dir/r.dat" --resume 2>"$dir/err"
if [[ $? -eq 0 ]] && diff <(grep -v '^#' "$dir/full.dat") <(grep -v '^#' "$dir/r.dat") >/dev/null && [[ ! -e $dir/r.dat.ckpt ]]; then ok
else bad "resume: table differs from the uninterrupted run's or checkpoint kept: $(cat "$dir/err")"; fi
"$BAFU" "${A[@]}" --seed 2 --out "$dir/q.dat" --checkpoint "$dir/saved.ckpt" --resume 2>"$dir/err"
if [[ $? -eq 2 ]] && grep -q "another configuration" "$dir/err" && [[ ! -e $dir/q.dat ]]; then ok; else bad "resume with another seed: $(cat "$dir/err")"; fi
head -c 1000 "$dir/saved.ckpt" >"$dir/cut.ckpt"
"$BAFU" "${A[@]}" --out "$dir/q.dat" --checkpoint "$dir/cut.ckpt" --resume 2>"$dir/err"
if [[ $? -eq 2 ]] && grep -q "is damaged" "$dir/err" && [[ ! -e $dir/q.dat && -s $dir/cut.ckpt ]]; then ok; else bad "resume from a truncated checkpoint: $(cat "$dir/err")"; fi
"$BAFU" "${A[@]}" --out "$dir/q.dat" --resume 2>"$dir/err" # nothing to resume: a fresh run
if [[ $? -eq 0 ]] && diff <(grep -v '^#' "$dir/full.dat") <(grep -v '^#' "$dir/q.dat") >/dev/null; then ok; else bad "resume without a checkpoint: $(cat "$dir/err")"; fi
"$BAFU" "${A[@]}" --control-split even --out "$dir/q2.dat" --checkpoint "$dir/saved.ckpt" --resume 2>"$dir/err"
if [[ $? -eq 2 ]] && grep -q "another configuration" "$dir/err" && [[ ! -e $dir/q2.dat ]]; then ok; else bad "resume with another split: $(cat "$dir/err")"; fi
"$BAFU" "${A[@]}" --resume >/dev/null 2>"$dir/err"
if [[ $? -eq 2 ]] && grep -q -- "--resume: needs --out or --checkpoint" "$dir/err"; then ok; else bad "--resume to stdout"; fi

echo "cli_train: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
