#!/usr/bin/env bash
# cli_errors.sh: every option's error path of the bafu executable.
# Each bad invocation must print one line on stderr naming the option, exit
# non-zero (2 for usage errors), print nothing on stdout and leave no file.
set -u
BAFU=${1:?usage: cli_errors.sh path/to/bafu}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0

expect_error() { # expected exit status, message fragment, then the arguments
  local want_rc=$1 want=$2; shift 2
  local out="$dir/out.dat"
  rm -f "$out"
  ulimit -c 0
  timeout 60 "$BAFU" "$@" --out "$out" </dev/null >"$dir/stdout" 2>"$dir/stderr"
  local rc=$?
  local lines
  lines=$(wc -l <"$dir/stderr")
  if [[ $rc -ne $want_rc ]]; then
    echo "FAIL: bafu $* exited $rc, expected $want_rc"; fails=$((fails + 1)); return
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

printf '1 2 3\n4 5\n' >"$dir/bad.txt"
printf '1 2\0 3\n' >"$dir/nul.txt"
printf '0 0 0\n0 0 0\n' >"$dir/zeros.txt"
: >"$dir/empty.txt"
printf 'width = 8\ndepth = 2\nseeds = 2\n' >"$dir/good_grid.txt"
# grid files of bafu sweep, each refused (tests/bad_inputs.txt)
printf 'preset = mup\nlr_hidden = 2\n' >"$dir/g_preset.txt"
printf 'epochs = 2\n' >"$dir/g_epochs.txt"
printf 'task = train\nseeds = 4\n' >"$dir/g_seeds.txt"
printf 'task = train\nregenerate = 1\n' >"$dir/g_regen.txt"
printf 'columns = cos_theta_mcc\n' >"$dir/g_col.txt"
printf 'columns = cos_theta cos_theta_mc\n' >"$dir/g_col2.txt"
printf 'columns = identity_residual_mc_se\n' >"$dir/g_col3.txt"
printf 'width = 8\ndepth = 2\nbatch = 2\n' >"$dir/g_batch.txt"
printf 'width = 8\ndepth = 2\nsignal = xent\n' >"$dir/g_xent.txt"
printf 'task = train\ndata = teacher fashion-mnist\n' >"$dir/g_data.txt"
printf 'sampler = conditional\nconditional = 1\n' >"$dir/g_sampler.txt"
printf 'batch = 0\n' >"$dir/g_batch0.txt"
printf 'signal = hinge\n' >"$dir/g_signal.txt"
printf 'preset = mup sgd\n' >"$dir/g_preset2.txt"
printf 'task = train\ndata = teacher\nsignal = probe\n' >"$dir/g_probe.txt"
printf 'task = train\nrows = some\n' >"$dir/g_rows.txt"
printf 'rows = final\n' >"$dir/g_rowsmc.txt"
printf 'task = trian\n' >"$dir/g_task.txt"
printf 'input = x.txt\n' >"$dir/g_input.txt"
printf 'sigma-w2 = 2\n' >"$dir/g_dash.txt"
printf 'task = train\ndata = teacher\ncolumns = test_acc\n' >"$dir/g_acc.txt"
printf 'seed = 1 2\n' >"$dir/g_seed.txt"
printf 'task = train\ndata = teacher\nauto_decay = 0 0.5\n' >"$dir/g_decay.txt"
printf 'task = train\ndata = teacher\ncontrol = 1\nlr = 0.1\n' >"$dir/g_control.txt"
printf 'arch = resnet\nwidth = 8\nbranch_scale = 0\npreset = fsc\n' >"$dir/g_fsc.txt"
printf '1 2 3\n4 5 6\n' >"$dir/good.txt"
mkdir -p "$dir/adir" "$dir/idx/train-images-idx3-ubyte.gz" "$dir/idx/train-labels-idx1-ubyte.gz"


# the catalogue: tests/bad_inputs.txt, one refused invocation per line
while IFS=$'\t' read -r rc frag args; do
  [[ -z $rc || $rc == \#* ]] && continue
  eval "set -- ${args//@DIR@/$dir}"
  expect_error "$rc" "$frag" "$@"
done <"$(dirname "$0")/bad_inputs.txt"

# frozen layers: rows without a defined angle are left out, never printed as nan
for cmd in mc theory; do
  out=$("$BAFU" $cmd --lr-input 0 --width 16 --depth 3 --seeds 2 2>/dev/null || "$BAFU" $cmd --lr-input 0 --width 16 --depth 3)
  if grep -qi nan <<<"$out" || ! grep -q "left out" <<<"$out"; then echo "FAIL: $cmd --lr-input 0"; fails=$((fails + 1)); else passes=$((passes + 1)); fi
done

# theory and kernel options

# figures: directories that cannot be used
touch "$dir/afile"
"$BAFU" figures --data-dir "$dir/afile" >/dev/null 2>"$dir/stderr"; rc=$?
if [[ $rc -eq 2 ]] && grep -q -- --data-dir "$dir/stderr"; then passes=$((passes + 1)); else echo "FAIL: figures --data-dir file"; fails=$((fails + 1)); fi
"$BAFU" figures --threads 0 >/dev/null 2>"$dir/stderr"; rc=$?
if [[ $rc -eq 2 ]] && grep -q -- --threads "$dir/stderr"; then passes=$((passes + 1)); else echo "FAIL: figures --threads 0"; fails=$((fails + 1)); fi

# unwritable output paths: a missing directory, a directory, a read-only dir
# a synthetic Fashion-MNIST directory (IDX files: big-endian headers, then
# bytes), made unusable in turn: a truncated image file, test images of
# another size, images of another size than --input-dim
mkdir -p "$dir/bad"
be32() { printf '%08x' "$1" | sed 's/../\\x&/g'; }
idx() { # file magic count [rows cols]: a gzipped IDX file with that header and its data (labels 0..9)
  local f=$1 magic=$2 count=$3 rows=${4:-} cols=${5:-} hdr
  hdr="\\x00\\x00\\x08\\x$magic$(be32 "$count")"
  if [[ -n $rows ]]; then
    { printf "$hdr$(be32 "$rows")$(be32 "$cols")"; head -c $((count * rows * cols)) /dev/urandom; } | gzip >"$dir/bad/$f"
  else
    { printf "$hdr"; for ((i = 0; i < count; ++i)); do printf "\\x0$((i % 10))"; done; } | gzip >"$dir/bad/$f"
  fi
}
pair() { # training side, test side
  idx train-images-idx3-ubyte.gz 03 96 "$1" "$1"; idx train-labels-idx1-ubyte.gz 01 96
  idx t10k-images-idx3-ubyte.gz 03 32 "$2" "$2"; idx t10k-labels-idx1-ubyte.gz 01 32
}
pair 28 28
head -c 1000 "$dir/bad/train-images-idx3-ubyte.gz" >"$dir/bad/cut.gz" && mv "$dir/bad/cut.gz" "$dir/bad/train-images-idx3-ubyte.gz"
expect_error 2 "train-images" train --data-dir "$dir/bad" --batch 16
pair 28 14
expect_error 2 "t10k-images-idx3-ubyte.gz' holds 14 x 14 images" train --data-dir "$dir/bad" --batch 16
pair 1 1
expect_error 2 "--input-dim: 784, but the images of" train --data-dir "$dir/bad" --batch 16
pair 32 32
expect_error 2 "32 x 32 = 1024 pixels" train --data-dir "$dir/bad" --batch 16
pair 2 2
if "$BAFU" train --data-dir "$dir/bad" --batch 16 --input-dim 4 --width 8 --depth 2 --epochs 1 --quiet >"$dir/p.dat" 2>"$dir/stderr" &&
   [[ $(grep -vc '^#' "$dir/p.dat") -gt 2 ]]; then passes=$((passes + 1)); else echo "FAIL: a consistent 2 x 2 pair"; cat "$dir/stderr"; fails=$((fails + 1)); fi

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
# bafu help CMD is CMD --help; CMD --version is bafu --version; train's help shows train's defaults
for c in mc theory kernel spectrum sweep train figures reduce; do
  if cmp -s <("$BAFU" help $c) <("$BAFU" $c --help) && [[ "$("$BAFU" $c --version)" == "$("$BAFU" --version)" ]]; then
    passes=$((passes + 1))
  else
    echo "FAIL: bafu help $c / bafu $c --version"; fails=$((fails + 1))
  fi
done
# built from a git checkout, the version and every table's generator line name the commit
if head=$(git -C "${BAFU_SOURCE_DIR:-.}" rev-parse --short=12 HEAD 2>/dev/null); then
  "$BAFU" mc --width 4 --depth 1 --seeds 2 --out "$dir/v.dat" 2>/dev/null
  if "$BAFU" --version | grep -q "^bafu [0-9.]* (commit .*$head" && grep -q "^# generator: bafu [0-9.]* (commit .*$head" "$dir/v.dat"; then
    passes=$((passes + 1))
  else echo "FAIL: version '$("$BAFU" --version)' or generator line without the commit $head"; fails=$((fails + 1)); fi
fi
"$BAFU" help frobnicate >/dev/null 2>&1; [[ $? -eq 2 ]] && passes=$((passes + 1)) || { echo "FAIL: help of an unknown command"; fails=$((fails + 1)); }
if "$BAFU" train --help | grep -q -- '--width N .*\[256\]' && "$BAFU" train --help | grep -q -- '--batch M .*\[64\]' &&
   ! "$BAFU" train --help | grep -q -- '--conditional\|--probe\|--regenerate\|--input FILE'; then
  passes=$((passes + 1))
else
  echo "FAIL: train --help defaults or options"; fails=$((fails + 1))
fi

echo "cli_errors: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
