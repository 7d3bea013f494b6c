#!/usr/bin/env bash
# cli_kernel.sh: the row selection of `bafu kernel` (--every, --per-decade), the
# expectation method (--method), streaming in bounded memory, and a failed
# recursion that writes nothing (theory/kernel.md 9, 10).
set -u
BAFU=${1:?usage: cli_kernel.sh path/to/bafu}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
labels() { grep -v '^#' "$1" | awk 'NR > 1 { print $1 }' | uniq | tr '\n' ' ' | sed 's/ $//'; }

# log-spaced rows: round(10^(i/N)) and the first and last layer
"$BAFU" kernel --depth 1000 --per-decade 3 --out "$dir/a.dat" || bad "--per-decade 3 failed"
got=$(labels "$dir/a.dat")
[[ $got == "1 2 5 10 22 46 100 215 464 1000" ]] && ok || bad "--per-decade 3: labels '$got'"
grep -q '^# layers: 1000; printed: labels divisible by 0, the labels round(10^(i/3)), the first and the last' \
  "$dir/a.dat" && ok || bad "--per-decade 3: the layers line"
# with --every: both
"$BAFU" kernel --depth 1000 --per-decade 4 --every 300 --out "$dir/b.dat" || bad "--per-decade 4 --every 300 failed"
got=$(labels "$dir/b.dat")
[[ $got == "1 2 3 6 10 18 32 56 100 178 300 316 562 600 900 1000" ]] && ok || bad "--per-decade 4 --every 300: '$got'"
# a ResNet with embedding starts at label 0, a readout ends at L + 1
"$BAFU" kernel --arch resnet --embed --loss mse --depth 100 --per-decade 2 --out "$dir/c.dat" || bad "resnet failed"
got=$(labels "$dir/c.dat")
[[ $got == "0 1 3 10 32 100 101" ]] && ok || bad "resnet --per-decade 2: '$got'"
# the selected rows are the rows of the full table
"$BAFU" kernel --depth 1000 --out "$dir/full.dat" || bad "full table failed"
sel=$(grep -v '^#' "$dir/a.dat" | awk 'NR > 1')
want=$(grep -v '^#' "$dir/full.dat" | awk 'NR > 1 && ($1 == 1 || $1 == 2 || $1 == 5 || $1 == 10 || $1 == 22 || $1 == 46 || $1 == 100 || $1 == 215 || $1 == 464 || $1 == 1000)')
[[ $sel == "$want" ]] && ok || bad "--per-decade rows differ from the full table's"
# batch mode
printf '1 0.3 -0.2\n0.1 1.2 0.4\n' >"$dir/x.txt"
"$BAFU" kernel --input "$dir/x.txt" --depth 100 --per-decade 1 --out "$dir/d.dat" || bad "batch --per-decade failed"
got=$(labels "$dir/d.dat")
[[ $got == "1 10 100" ]] && ok || bad "batch --per-decade 1: '$got'"

# --method: a short run is served directly either way (bit for bit); the direct run says so
"$BAFU" kernel --act gelu --depth 8 --out "$dir/ga.dat" && "$BAFU" kernel --act gelu --depth 8 --method direct \
  --out "$dir/gd.dat" || bad "--method runs failed"
cmp -s <(grep -v '^#' "$dir/ga.dat") <(grep -v '^#' "$dir/gd.dat") && ok || bad "--method auto/direct differ at depth 8"
grep -q '^# expectations: --method direct' "$dir/gd.dat" && ok || bad "--method direct not recorded"
grep -q '^# expectations' "$dir/ga.dat" && bad "an expectations line without --method direct" || ok
# a long run: the table serves, within 1e-10 of the direct path (theory/kernel.md 10)
"$BAFU" kernel --act tanh --sigma-w2 1 --depth 400 --every 50 --out "$dir/ta.dat" &&
  "$BAFU" kernel --act tanh --sigma-w2 1 --depth 400 --every 50 --method direct --out "$dir/td.dat" ||
  bad "tanh runs failed"
worst=$(paste <(grep -v '^#' "$dir/ta.dat" | awk 'NR > 1') <(grep -v '^#' "$dir/td.dat" | awk 'NR > 1') | awk '
  { n = NF / 2; for (i = 2; i <= n; ++i) { a = $i + 0; b = $(i + n) + 0; s = (a < 0 ? -a : a); t = (b < 0 ? -b : b); if (t > s) s = t
      d = a - b; if (d < 0) d = -d; if (s > 0 && d / s > w) w = d / s } }
  END { printf "%.3g", w + 0 }')
awk -v w="$worst" 'BEGIN { exit !(w > 0 && w <= 1e-10) }' && ok || bad "tanh depth 400: auto vs direct $worst"

# streaming: depth 2 x 10^6 within 1 MiB of workspace (O(sqrt(depth)): the per-layer factors alone
# would take 32 MB)
BAFU_MEMORY_LIMIT_MB=1 "$BAFU" kernel --depth 2000000 --every 1000000 --quiet --out "$dir/e.dat" ||
  bad "depth 2e6 within 1 MiB refused"
[[ $(labels "$dir/e.dat") == "1 1000000 2000000" ]] && ok || bad "depth 2e6: rows '$(labels "$dir/e.dat")'"

# a recursion that fails writes nothing, not even the header, to stdout
"$BAFU" kernel --depth 2000 --sigma-w2 4 --act linear >"$dir/stdout" 2>"$dir/stderr"
rc=$?
[[ $rc -eq 1 && ! -s $dir/stdout ]] && ok || bad "overflow: exit $rc, $(wc -c <"$dir/stdout") bytes on stdout"

echo "cli_kernel: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
