#!/usr/bin/env bash
# cli_figures.sh: `bafu figures --quick` into a temporary directory (--train, as
# cli_figures_train.sh: the figures that train only; without: the others): every data
# table parses (metadata, one header row, numeric rows with as many fields as
# the header) and equals tests/golden/figures, and every image of every figure
# file (plots/*.fig) is produced and non-empty, also for directory names with
# quotes and shell syntax; a missing gnuplot, script or data set, and a
# malformed figure file, are refused before any work (one line naming the file
# and line); a failing stage leaves none of its figure's tables; an
# interrupted run resumed with --resume gives the same tables. Nothing here
# counts the figures: they are the figure files.
set -u
BAFU=${1:?usage: cli_figures.sh path/to/bafu [--train]}
mode=${2:-}
if [[ -z ${OPENBLAS_CORETYPE:-} && $(uname -m) == x86_64 ]] && grep -qw avx2 /proc/cpuinfo; then
  export OPENBLAS_CORETYPE=Haswell
fi
SRC=${BAFU_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
if [[ $mode != --train ]]; then # the checks that run no figure, once
# what a run needs is checked before any work: exit 2, one line, no directory made

refused() { # $1 = what, then the command
  local what=$1; shift
  "$@" 2>"$dir/err"; local rc=$?
  if [[ $rc -eq 2 && $(wc -l <"$dir/err") -eq 1 && ! -e $dir/none ]]; then passes=$((passes + 1))
  else echo "FAIL: $what: exit $rc, $(cat "$dir/err")"; fails=$((fails + 1)); fi
}
refused "--scripts missing" "$BAFU" figures --quick --no-train --data-dir "$dir/none" --plot-dir "$dir/none" --scripts "$dir/nowhere"
refused "gnuplot missing" env PATH=/nonexistent "$BAFU" figures --quick --no-train --data-dir "$dir/none" --plot-dir "$dir/none"
refused "Fashion-MNIST missing" env BAFU_FASHION_MNIST_DIR="$dir/nowhere" "$BAFU" figures --quick --no-render --data-dir "$dir/none"
# a malformed figure file: one line naming the file and line, exit 2, nothing made
mkdir "$dir/bad" && cp "$SRC"/plots/*.gp "$SRC"/plots/*.fig "$dir/bad/"
badfig() { # $1 = what, $2 = the figure file's text, $3 = the line the message names
  printf '%s\n' "$2" >"$dir/bad/fig_bad.fig"
  "$BAFU" figures --quick --no-render --scripts "$dir/bad" --data-dir "$dir/none" 2>"$dir/err"; local rc=$?
  if [[ $rc -eq 2 && $(wc -l <"$dir/err") -eq 1 && ! -e $dir/none ]] && grep -qF "fig_bad.fig:$3: " "$dir/err"; then
    passes=$((passes + 1))
  else echo "FAIL: malformed figure file ($1): exit $rc, $(cat "$dir/err")"; fails=$((fails + 1)); fi
}
ok_run='run theory --depth 2 --exact --out {work}/s.dat'
ok_table=$'table t.dat\ntitle T\ncolumns layer cos_theta\nrows s.dat layer cos_theta:%.6g'
badfig "unknown directive" $'# a comment\nrun theory --depth 2 --out {work}/t.dat\nfrobnicate' 3
badfig "unknown command" 'run nosuch --out {work}/t.dat' 1
badfig "unknown option" 'run theory --dept 2 --out {work}/t.dat' 1
badfig "output outside the scratch directory" 'run theory --depth 2 --out t.dat' 1
badfig "unknown name" 'run theory --depth {L} --out {work}/t.dat' 1
badfig "quick without full" 'let n = {quick: 4}' 1
badfig "for without end" $'for L in 2 4\n'"$ok_run" 1
badfig "rows of no stage" $'table t.dat\ntitle T\ncolumns layer\nrows u.dat layer' 4
badfig "bad format" "$ok_run"$'\ntable t.dat\ntitle T\ncolumns layer\nrows s.dat layer:%s' 5
badfig "fields against columns" "$ok_run"$'\ntable t.dat\ntitle T\ncolumns layer cos_theta\nrows s.dat layer' 5
badfig "table without title" "$ok_run"$'\ntable t.dat\ncolumns layer' 2
badfig "a table of another figure" "$ok_run"$'\ntable fig1_mc.dat\ntitle T\ncolumns layer\nrows s.dat layer' 2
# a stage that fails: its figure writes no table (the figure before it does), exit 1, and its
# finished stages are kept for --resume (the scratch directory with its record)
mkdir "$dir/fail" && cp "$SRC"/plots/common.gp "$dir/fail/"
printf '%s\n' "$ok_run" "$ok_table" >"$dir/fail/a.fig"
printf '%s\n' "$ok_run" "$ok_table" 'run mc --depth 2 --seeds 1 --out {work}/m.dat' | sed 's/t\.dat/u.dat/' >"$dir/fail/b.fig"
"$BAFU" figures --quick --no-render --scripts "$dir/fail" --data-dir "$dir/failed" 2>"$dir/err"; rc=$?
if [[ $rc -eq 1 && -s $dir/failed/t.dat && ! -e $dir/failed/u.dat && -e $dir/failed/.bafu-figures.ckpt ]] &&
   [[ -e $dir/failed/.bafu-figures.work/.done && -z $(find "$dir/failed" -name "*.tmp*") ]] && grep -q "b.fig:6: the stage" "$dir/err"; then
  passes=$((passes + 1))
else echo "FAIL: a failing stage: exit $rc, $(ls -A "$dir/failed"), $(cat "$dir/err")"; fails=$((fails + 1)); fi
# the stage options the figure files rely on: bafu theory --depths gives each
# depth's own table; bafu mc --vs-theory's bias is the mean less the theory's angle
a=$("$BAFU" theory --depths 3,5 --width 64 | grep -v '^#' | awk 'NR > 1 {$1 = ""; print}')
b=$( { "$BAFU" theory --depth 3 --width 64; "$BAFU" theory --depth 5 --width 64; } | grep -v '^#' | grep -v '^layer' | awk '{$0 = " " $0; print}')
[[ -n $a && $a == "$b" ]] && passes=$((passes + 1)) || { echo "FAIL: theory --depths differs from single depths"; fails=$((fails + 1)); }
"$BAFU" mc --depth 4 --width 64 --seeds 6 --vs-theory --exact | grep -v '^#' | awk '
  NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  { d = $c["cos_theta"] - $c["cos_theta_theory"] - $c["bias"]; if (d > 1e-15 || d < -1e-15 || $c["rms_dev"] < 0 || $c["bias_se"] != $c["cos_theta_se"]) bad = 1; n++ }
  END { exit !(n == 4 && !bad) }' && passes=$((passes + 1)) || { echo "FAIL: mc --vs-theory columns"; fails=$((fails + 1)); }
mkdir "$dir/fifo" && mkfifo "$dir/fifo/.bafu-figures.ckpt"
timeout 20 "$BAFU" figures --quick --no-render --no-train --data-dir "$dir/fifo" --resume 2>"$dir/err"
[[ $? -eq 2 ]] && grep -q "not a regular file" "$dir/err" && passes=$((passes + 1)) || { echo "FAIL: FIFO checkpoint: $(cat "$dir/err")"; fails=$((fails + 1)); }
# a quick run without directories writes into ./bafu-quick, never ./data or ./plots
mkdir "$dir/cwd" && (cd "$dir/cwd" && timeout -s INT 4 "$BAFU" figures --quick --no-train --no-render 2>"$dir/qlog")
if grep -q "data in bafu-quick/data, images in bafu-quick/plots" "$dir/qlog" && [[ -d $dir/cwd/bafu-quick/data && ! -e $dir/cwd/data && ! -e $dir/cwd/plots ]]; then
  passes=$((passes + 1))
else echo "FAIL: quick run's default directories: $(head -2 "$dir/qlog")"; ls "$dir/cwd"; fails=$((fails + 1)); fi
fi
# The figures of this run: those that do not train (--no-train) or, with
# --train (cli_figures_train.sh), those that do, from a scripts directory of
# their files alone; their tables as bafu figures --list names them.
if [[ $mode == --train ]]; then
  [[ -r ${BAFU_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}/train-images-idx3-ubyte.gz ]] ||
    { echo "SKIP: Fashion-MNIST not installed"; exit 77; }
  sel=$(grep -l '^needs fashion-mnist' "$SRC"/plots/*.fig)
  scripts=$dir/scripts && mkdir "$scripts" && cp "$SRC"/plots/common.gp "$scripts/"
  for f in $sel; do cp "$f" "${f%.fig}".gp "$scripts/"; cp "${f%.fig}"_*.grid "$scripts/" 2>/dev/null; done
  flags=()
else
  scripts=$SRC/plots flags=(--no-train)
fi
figures=() expected=()
while read -r name tabs; do figures+=("$name"); expected+=($tabs); done < <("$BAFU" figures --quick --list "${flags[@]}" --scripts "$scripts")
[[ ${#figures[@]} -ge 1 && ${#expected[@]} -ge 1 ]] || { echo "FAIL: no figure or table found"; exit 1; }
# interrupted and resumed, into directories whose names hold quotes and a
# $(...), which are passed to gnuplot as data, never as commands: SIGTERM once
# a stage has finished (and, without --train, a figure: SIGINT is ignored by
# background jobs of a script); --resume skips what is done, runs the rest
# and renders; its tables are then checked below
data="$dir/da'ta\$(touch $dir/PWNED)" plots="$dir/pl\"ots'"
"$BAFU" figures --quick "${flags[@]}" --scripts "$scripts" --data-dir "$data" --plot-dir "$plots" 2>/dev/null &
pid=$!
for _ in $(seq 1 6000); do
  [[ ($mode == --train || -e $data/.bafu-figures.ckpt) ]] &&
    [[ $(grep -sc '\.dat$' "$data/.bafu-figures.work/.done") -ge 1 ]] && break
  sleep 0.02
done
kill -TERM $pid 2>/dev/null
wait $pid
if [[ -n $(find "$dir" -name "*.tmp*") ]]; then echo "FAIL: the interrupted run left temporary files"; fails=$((fails + 1)); else passes=$((passes + 1)); fi
if ! "$BAFU" figures --quick "${flags[@]}" --scripts "$scripts" --data-dir "$data" --plot-dir "$plots" --resume 2>"$dir/rlog"; then
  echo "FAIL: bafu figures --quick --resume exited non-zero"; cat "$dir/rlog"; exit 1
fi
stages=$(grep -c "finished by the interrupted run" "$dir/rlog")
figs=$(grep -c "written by the interrupted run" "$dir/rlog")
if [[ $stages -ge 1 && ($mode == --train || $figs -ge 1) && -z $(find "$data" -name ".bafu-*") ]]; then passes=$((passes + 1))
else echo "FAIL: --resume: $figs figures and $stages stages skipped"; cat "$dir/rlog"; fails=$((fails + 1)); fi
[[ ! -e $dir/PWNED ]] && passes=$((passes + 1)) || { echo "FAIL: a directory name ran as a command"; fails=$((fails + 1)); }
mv "$data" "$dir/data" && mv "$plots" "$dir/plots"
tables=("$dir"/data/*.dat)
for t in "${tables[@]}"; do
  # doc/tables.md: the first line of the file, and the first after the two
  # blank lines that end a series, is a header row of names (no '#' line
  # before it); every other non-comment, non-blank line is numbers (or the
  # words of a key column: arch, preset), as many as its header has names
  if awk '
    BEGIN { expect_header = 1 }
    NF == 0 { if (++blanks >= 2) expect_header = 1; next }
    { blanks = 0 }
    /^#/ { if (expect_header) bad = 1; next }
    expect_header { nf = NF; expect_header = 0; headers++; for (i = 1; i <= NF; i++) if ($i !~ /^[A-Za-z_][A-Za-z0-9_]*$/) bad = 1; next }
    { if (NF != nf) bad = 1; for (i = 1; i <= NF; i++) if ($i !~ /^[-+]?[0-9.]+([eE][-+]?[0-9]+)?$/ && $i !~ /^[a-z][a-z0-9_]*$/) bad = 1; rows++ }
    END { exit !(headers >= 1 && rows >= 3 && !bad) }' "$t" && grep -q '^# command:' "$t"; then
    passes=$((passes + 1))
  else
    echo "FAIL: table $t does not parse"; fails=$((fails + 1))
  fi
done
for f in "${figures[@]}"; do
  for ext in png pdf; do
    if [[ -s "$dir/plots/$f.$ext" ]]; then passes=$((passes + 1)); else echo "FAIL: $f.$ext missing"; fails=$((fails + 1)); fi
  done
done
# the quick tables equal those of tests/golden/figures byte for byte, apart from
# the three lines that name the run: '# date:', '# command:' and '# generator:'
# (doc/figures.md); the tables of the figure files, none missing, none added.
# Figure 8's numbers depend on OpenBLAS's kernels (doc/figures.md): the golden
# tables were made with OPENBLAS_CORETYPE=Haswell, which this test sets (as
# ./setup.sh run) on CPUs with AVX2.
golden=$(cd "$(dirname "$0")/golden/figures" && pwd)
strip() { grep -v '^# \(date\|command\|generator\):' "$1"; }
if diff <(printf '%s\n' "${expected[@]}" | sort) <(cd "$dir/data" && ls -- *.dat | sort) >"$dir/diff"; then passes=$((passes + 1))
else echo "FAIL: the tables made are not those of the figure files:"; cat "$dir/diff"; fails=$((fails + 1)); fi
for name in "${expected[@]}"; do
  g=$golden/$name t=$dir/data/$name
  if [[ ! -e $g ]]; then echo "FAIL: $name is not in tests/golden/figures"; fails=$((fails + 1)); continue; fi
  [[ -e $t ]] || continue
  if diff <(strip "$g") <(strip "$t") >"$dir/diff"; then passes=$((passes + 1))
  else echo "FAIL: $name differs from tests/golden/figures:"; head -8 "$dir/diff"; fails=$((fails + 1)); fi
done
if [[ -n $(find "$dir/plots" "$dir/data" -name "*.tmp*") ]]; then echo "FAIL: temporary files left"; fails=$((fails + 1)); else passes=$((passes + 1)); fi
echo "cli_figures${mode:+ $mode}: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
