#!/usr/bin/env bash
# cli_checkpoints.sh: the files of a run never clash and a checkpoint that is
# not this run's is never replaced or removed. Any two of the output,
# checkpoint, grid, batch and data files that are one file are refused up front
# (exit 2, naming both options), whether by the same name, another name for it
# (a symbolic link, a hard link) or a path through another directory; a file
# at the checkpoint path is kept unless --resume adopts it; a damaged
# checkpoint (sweep, train, figures) is refused with its name and kept byte for
# byte.
set -u
BAFU=$(realpath "${1:?usage: cli_checkpoints.sh path/to/bafu}")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
cd "$dir" || exit 1
refused() { # fragment, then the command; the run must exit 2 with one line naming it and change no file
  local frag=$1; shift
  local before after
  before=$(find . -type f -exec cksum {} + | sort)
  timeout 120 "$BAFU" "$@" </dev/null >stdout 2>stderr
  local rc=$?
  after=$(find . -type f ! -name stdout ! -name stderr -exec cksum {} + | sort)
  before=$(grep -v ' ./std\(out\|err\)$' <<<"$before")
  if [[ $rc -eq 2 && $(wc -l <stderr) -eq 1 && ! -s stdout ]] && grep -q -- "$frag" stderr && [[ $before == "$after" ]]; then ok
  else bad "bafu $* exited $rc ('$frag'): $(head -2 stderr)$([[ $before != "$after" ]] && echo ' [files changed]')"; fi
}
printf 'width = 8 16\ndepth = 2\nseeds = 2\n' >grid.txt
printf '1 2 3 4\n' >x.txt
echo "my notes" >notes.txt
mkdir sub && ln -s ../grid.txt sub/link.txt && ln grid.txt hard.txt
T=(train --data teacher --width 8 --depth 2 --train-size 256 --test-size 32 --batch 16 --log-every 2 --quiet)

# clashes, by name, by link and by path
refused "--out and --checkpoint name the same file" sweep grid.txt --out o.dat --checkpoint o.dat
refused "FILE and --checkpoint name the same file" sweep grid.txt --out o.dat --checkpoint grid.txt
refused "FILE and --checkpoint name the same file" sweep grid.txt --out o.dat --checkpoint sub/link.txt
refused "FILE and --checkpoint name the same file" sweep grid.txt --out o.dat --checkpoint hard.txt
refused "FILE and --out name the same file" sweep grid.txt --out ./sub/../grid.txt
refused "FILE and --checkpoint name the same file" sweep grid.txt --out grid.txt.x --checkpoint "$dir/grid.txt"
refused "--out and --checkpoint name the same file" "${T[@]}" --out t.dat --checkpoint t.dat
refused "--input and --out name the same file" mc --input x.txt --out x.txt
refused "--input and --out name the same file" kernel --input x.txt --out sub/../x.txt
mkdir -p data
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do echo x >data/$f; done
refused "--out and --data-dir name the same file" train --data-dir data --out data/t10k-images-idx3-ubyte.gz
refused "--checkpoint and --data-dir name the same file" train --data-dir data --out t.dat --checkpoint data/train-labels-idx1-ubyte.gz

# a file at the checkpoint path is not this run's checkpoint: kept, and the run refused
refused "already exists" sweep grid.txt --out o.dat --checkpoint notes.txt
refused "already exists" "${T[@]}" --out t.dat --checkpoint notes.txt
echo "an interrupted run's?" >o.dat.ckpt
refused "already exists" sweep grid.txt --out o.dat
refused "already exists" "${T[@]}" --out o.dat
# with --resume it must be a sound checkpoint of this run: junk is refused, and kept
refused "not a checkpoint" sweep grid.txt --out o.dat --checkpoint notes.txt --resume
refused "not a bafu train checkpoint" "${T[@]}" --out t.dat --checkpoint notes.txt --resume
[[ $(cat notes.txt) == "my notes" ]] && ok || bad "notes.txt changed"
rm o.dat.ckpt

# damaged checkpoints: one flipped byte anywhere past the first line, an
# emptied file, a cut file: refused with the file's name, kept byte for byte
flip() { # file offset: xor the byte at offset with 0x01
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# a sweep journal with a point or more (the run killed after them)
printf 'width = 256 512\ndepth = 16 32\nseeds = 16\n' >slow.txt
"$BAFU" sweep slow.txt --out s.dat --quiet &
pid=$!
for _ in $(seq 1000); do [[ -e s.dat.ckpt ]] && grep -aq '^point ' s.dat.ckpt && break; sleep 0.01; done
kill -STOP $pid 2>/dev/null; cp s.dat.ckpt good.ckpt 2>/dev/null; kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null
rm -f s.dat.ckpt s.dat.tmp.*
if [[ -s good.ckpt ]] && grep -aq '^point ' good.ckpt; then
  n=$(stat -c %s good.ckpt)
  first=$(head -1 good.ckpt | wc -c)
  for off in $first $((first + 7)) $((n / 2)) $((n - 20)) $((n - 2)); do
    cp good.ckpt d.ckpt && flip d.ckpt $off
    refused "is damaged" sweep slow.txt --out s.dat --checkpoint d.ckpt --resume
  done
  # a renamed point: point 0 relabelled as point 1 (its checksums no longer hold)
  sed 's/^point 0 /point 1 /' good.ckpt >d.ckpt
  refused "is damaged" sweep slow.txt --out s.dat --checkpoint d.ckpt --resume
  # the sound one resumes, and its table equals an uninterrupted run's
  cp good.ckpt r.ckpt
  "$BAFU" sweep slow.txt --out r.dat --checkpoint r.ckpt --resume --quiet && "$BAFU" sweep slow.txt --out u.dat --quiet &&
    diff <(grep -v '^# \(date\|command\)' r.dat) <(grep -v '^# \(date\|command\)' u.dat) >/dev/null && [[ ! -e r.ckpt ]] && ok ||
    bad "resume from a sound journal"
else
  bad "no sweep journal to damage"
fi
# a training checkpoint (the run killed after its first checkpoint)
"${BAFU}" "${T[@]}" --epochs 40 --checkpoint-every 4 --out t.dat &
pid=$!
for _ in $(seq 600); do [[ -e t.dat.ckpt ]] && break; sleep 0.02; done
kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null
if [[ -s t.dat.ckpt ]]; then
  cp t.dat.ckpt good_t.ckpt
  n=$(stat -c %s good_t.ckpt)
  for off in 30 $((n / 3)) $((n / 2)) $((n - 60)) $((n - 1)); do
    cp good_t.ckpt t.dat.ckpt && flip t.dat.ckpt $off
    refused "is damaged" "${T[@]}" --epochs 40 --checkpoint-every 4 --out t.dat --resume
  done
  head -c $((n - 100)) good_t.ckpt >t.dat.ckpt
  refused "is damaged" "${T[@]}" --epochs 40 --checkpoint-every 4 --out t.dat --resume
  : >t.dat.ckpt
  refused "not a bafu train checkpoint" "${T[@]}" --epochs 40 --checkpoint-every 4 --out t.dat --resume
  rm -f t.dat.ckpt t.dat.tmp.*
else
  bad "no training checkpoint to damage"
fi
# figures: the stage list
mkdir -p fig
printf 'bafu figures %s mode=quick seed=1\nfig1\n' "$("$BAFU" --version | awk '{print $2}')" >fig/body
{ cat fig/body; printf 'crc %s\n' "$(gzip -c fig/body | tail -c8 | head -c4 | od -An -tx4 | tr -d ' \n')"; } >fig/.bafu-figures.ckpt
rm fig/body
refused "already exists" figures --quick --no-render --data-dir fig
cp fig/.bafu-figures.ckpt fig.good
flip fig/.bafu-figures.ckpt 40
refused "is damaged" figures --quick --no-render --data-dir fig --resume
cp fig.good fig/.bafu-figures.ckpt
sed -i 's/seed=1/seed=2/' fig/.bafu-figures.ckpt
refused "is damaged" figures --quick --no-render --data-dir fig --resume

# a FIFO or a device at a checkpoint path is refused (not waited on, not read
# without end); a checkpoint in a directory that is not there is refused
# before any work; the figures' state file is read within the memory limit
mkfifo ff.ckpt
T=(train --data teacher --width 8 --depth 2 --epochs 1 --train-size 128 --test-size 64 --batch 16 --quiet)
refused "not a regular file" "${T[@]}" --checkpoint ff.ckpt --resume
refused "not a regular file" "${T[@]}" --checkpoint /dev/zero --resume
refused "nodir" "${T[@]}" --checkpoint nodir/ck --checkpoint-every 3
mkdir zf && ln -s /dev/zero zf/.bafu-figures.ckpt
BAFU_MEMORY_LIMIT_MB=64 refused "not a regular file" figures --quick --no-render --no-train --data-dir zf --resume
# an output that is no regular file has no default checkpoint (OUT.ckpt)
"$BAFU" "${T[@]}" --out /dev/null --checkpoint-every 3 2>stderr && ok || bad "train --out /dev/null: $(cat stderr)"
# a checkpoint of other --log-every is named as such, not as damaged
L=(train --data teacher --width 8 --depth 2 --epochs 4000 --train-size 128 --test-size 64 --batch 16 --quiet)
"$BAFU" "${L[@]}" --log-every 10 --out le.dat --checkpoint-every 25 &
pid=$!
for _ in $(seq 200); do [[ -s le.dat.ckpt ]] && break; sleep 0.05; done
kill -TERM $pid; wait $pid
refused "logged every 10 steps, not 3" "${L[@]}" --out le.dat --checkpoint-every 25 --resume --log-every 3

# another process puts its own file at a running training's checkpoint path (two
# runs given one --out): the run stops at its next save (exit 1, rows kept), the
# other file is neither replaced nor removed. bafu checks and saves under a lock
# on the directory (flock), so the swap takes that lock as another run would.
"$BAFU" "${L[@]}" --out race.dat --checkpoint-every 25 2>race.err &
pid=$!
for _ in $(seq 200); do [[ -s race.dat.ckpt ]] && break; sleep 0.05; done
printf 'another run\n' >race.other && flock . mv race.other race.dat.ckpt # as another bafu run: under the directory's lock
wait $pid
rc=$?
if [[ $rc -eq 1 && $(cat race.dat.ckpt) == "another run" ]] && grep -q "no longer this run's checkpoint" race.err &&
  grep -q "^# stopped after" race.dat; then ok
else bad "checkpoint taken by another process: exit $rc, $(head -c 300 race.err), ckpt '$(head -c 40 race.dat.ckpt)'"; fi

echo "cli_checkpoints: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
