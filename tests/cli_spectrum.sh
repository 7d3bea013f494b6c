#!/usr/bin/env bash
# cli_spectrum.sh: the dense histogram of `bafu spectrum` (equal and geometric
# bins) has --bins rows whose density x width sums to 1, whose bins tile
# [lambda_min, lambda_max] without gaps, and whose counts add up to n.
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
  if awk -v n=96 -v bins=17 '
    /^#/ { next }
    /^index eigenvalue/ { s = 0; next }
    /^x density width/ { s = 1; next }
    NF == 0 { next }
    s == 0 { ev[cnt++] = $2; next }
    s == 1 { rows++; lo = $1 - $3 / 2; hi = $1 + $3 / 2
             if (rows == 1) first = lo; else if (lo - prev > 1e-9 * hi || prev - lo > 1e-9 * hi) gap = 1
             prev = hi; integral += $2 * $3; count += $2 * $3 * n }
    END {
      ok = cnt == n && rows == bins && !gap
      ok = ok && (integral - 1) ^ 2 < 1e-18 && (count - n) ^ 2 < 1e-12
      ok = ok && (first - ev[0]) ^ 2 < 1e-18 * ev[0] ^ 2 && (prev - ev[n - 1]) ^ 2 < 1e-18 * ev[n - 1] ^ 2
      if (!ok) printf "eigenvalues %d rows %d gap %d integral %.15g first %g/%g last %g/%g\n", cnt, rows, gap, integral, first, ev[0], prev, ev[n - 1]
      exit !ok
    }' "$dir/s.dat"; then
    passes=$((passes + 1))
  else
    echo "FAIL: histogram ${flag:-equal bins}"; fails=$((fails + 1))
  fi
done
echo "cli_spectrum: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
