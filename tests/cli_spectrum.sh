#!/usr/bin/env bash
# cli_spectrum.sh: the dense histogram of `bafu spectrum` (equal and geometric
# bins) has --bins rows whose bins tile [lambda_min, lambda_max] without gaps,
# and each bin's count (density x width x n) equals the number of eigenvalues of
# series 0 inside it (the last bin closed); geometric bins have a constant ratio.
set -u
BAFU=${1:?usage: cli_spectrum.sh path/to/bafu}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
for flag in "" --log-bins; do
  if ! "$BAFU" spectrum --width 96 --depth 4 --layer 3 --bins 17 $flag --out "$dir/s.dat" 2>"$dir/err"; then
    echo "FAIL: bafu spectrum $flag exited non-zero"; cat "$dir/err"; fails=$((fails + 1)); continue
  fi
  # series 0: index eigenvalue; series 1 (after "x density width"): centre density width
  if awk -v n=96 -v bins=17 -v geo=$([[ -n $flag ]] && echo 1 || echo 0) '
    /^#/ { next }
    /^index eigenvalue/ { s = 0; next }
    /^x density width/ { s = 1; next }
    NF == 0 { next }
    s == 0 { ev[cnt++] = $2; next }
    s == 1 { rows++; lo[rows] = $1 - $3 / 2; hi[rows] = $1 + $3 / 2; c[rows] = $2 * $3 * n
             if (rows == 1) first = lo[1]; else if ((lo[rows] - prev) ^ 2 > 1e-18 * prev ^ 2) gap = 1
             prev = hi[rows] }
    END {
      ok = cnt == n && rows == bins && !gap
      for (b = 1; b <= rows; ++b) { # recount from the eigenvalues, edges to 1e-9 relative
        k = 0
        for (e = 0; e < cnt; ++e)
          if (ev[e] >= lo[b] * (1 - 1e-9) && (ev[e] < hi[b] * (1 - 1e-9) || (b == rows && ev[e] <= hi[b] * (1 + 1e-9)))) ++k
        if ((k - c[b]) ^ 2 > 1e-12) { bad = b; ok = 0 }
        if (geo && b > 1 && ((hi[b] / lo[b]) / (hi[1] / lo[1]) - 1) ^ 2 > 1e-18) { ratio = b; ok = 0 }
      }
      ok = ok && (first - ev[0]) ^ 2 < 1e-18 * ev[0] ^ 2 && (prev - ev[n - 1]) ^ 2 < 1e-18 * ev[n - 1] ^ 2
      if (!ok) printf "eigenvalues %d rows %d gap %d bad count in bin %d, ratio bin %d, first %g/%g last %g/%g\n", cnt, rows, gap, bad, ratio, first, ev[0], prev, ev[n - 1]
      exit !ok
    }' "$dir/s.dat"; then
    passes=$((passes + 1))
  else
    echo "FAIL: histogram ${flag:-equal bins}"; fails=$((fails + 1))
  fi
done
# J J^T of a ReLU MLP has zero eigenvalues (its masks): rounding puts some of
# them below 0; they are clamped to 0 and counted, and with --log-bins they are
# an atom at 0 whose mass and the histogram integrate to 1
if "$BAFU" spectrum --mode dense --object jacobian --width 64 --depth 3 --log-bins --out "$dir/j.dat" 2>"$dir/err"; then
  if awk '
    /^# [0-9]+ eigenvalues within rounding of 0/ { clamped = $2 }
    /^# atom: x 0 mass/ { mass = $6 }
    /^#/ { next }
    /^index eigenvalue/ { s = 0; next }
    /^x density width/ { s = 1; next }
    NF == 0 { next }
    s == 0 && $2 < 0 { neg = 1 }
    s == 0 && $2 == 0 { zeros++ }
    s == 1 { integral += $2 * $3 }
    END { ok = clamped > 0 && !neg && zeros >= clamped && (mass - zeros / 64) ^ 2 < 1e-20 && (integral + mass - 1) ^ 2 < 1e-18
          if (!ok) printf "clamped %d negative %d zeros %d mass %g integral %g\n", clamped, neg, zeros, mass, integral
          exit !ok }' "$dir/j.dat"; then passes=$((passes + 1)); else echo "FAIL: jacobian --log-bins: clamp and atom"; fails=$((fails + 1)); fi
else
  echo "FAIL: jacobian --log-bins exited non-zero: $(cat "$dir/err")"; fails=$((fails + 1))
fi
# nothing trained at or below the layer: K = 0, refused (no empty histogram, no angle 0)
for args in "--arch resnet --act linear --sigma-w2 1 --branch-scale 0" "--lr-input 0 --layer 1" "--arch resnet --act linear --embed --lr-input 0 --lr-hidden 0"; do
  for mode in dense kpm limit; do
    "$BAFU" spectrum --mode $mode --width 32 --depth 3 $args --out "$dir/u.dat" >/dev/null 2>"$dir/err"
    if [[ $? -eq 2 && ! -e $dir/u.dat ]] && grep -q "no trained parameter" "$dir/err"; then passes=$((passes + 1)); else
      echo "FAIL: spectrum --mode $mode $args: $(cat "$dir/err")"; fails=$((fails + 1)); fi
  done
done
echo "cli_spectrum: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
