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
echo "cli_spectrum: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
