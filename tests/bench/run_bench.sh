#!/usr/bin/env bash
# run_bench.sh: bafu against a PyTorch float64 reference, one thread each, and the
# floors of this machine (dgemm/dgemv GFLOP/s, Gaussian RNG rate). Not part of ctest.
#
#   tests/bench/run_bench.sh [workloads]     default: floors a b c d; e, f, g, h: bafu only
#
# g times the command itself: `bafu kernel --act A --depth 10000000` for every
# activation (and two ResNets), floor 5 s each, and beside it the per-layer
# quadrature (--method direct, the path before the tabulated maps) at depth
# F_OLD_DEPTH [10000], extrapolated to 10^7, with the largest difference of the
# two at that depth. OLD_BAFU=path/to/bafu also times an older executable (a
# build of an earlier commit): at depth 10^7 for relu, linear, erf (closed forms),
# at F_OLD_DEPTH (extrapolated) for the others.
#
# Needs build/libbafu.a (cmake --build build) and, for the reference side,
# PyTorch (Debian: apt-get install -y python3-torch). Set PYTHON to choose the
# interpreter; by default the first of python3, /usr/bin/python3 that imports torch.
# Output: the raw "key value unit" lines of both sides, then a summary with ratios.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
lib="$root/build/libbafu.a"
out="$root/build/bench"
workloads=("$@")
((${#workloads[@]})) || workloads=(floors a b c d)

export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

[[ -f "$lib" ]] || { echo "run_bench.sh: $lib not found: build first (cmake -S . -B build && cmake --build build)" >&2; exit 2; }

py=""
for cand in ${PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import torch' >/dev/null 2>&1; then py="$cand"; break; fi
done
if [[ -z "$py" ]]; then
  echo "run_bench.sh: PyTorch not found for python3 or /usr/bin/python3." >&2
  echo "  Install it with: apt-get install -y python3-torch   (Debian package, large)" >&2
  echo "  or point PYTHON at an interpreter that has torch. Running the bafu side only." >&2
fi

mkdir -p "$out"
# Workload f compares the continuum solver with the one it replaced (the Euler scheme with
# Richardson extrapolation of revision $euler_rev, theory/moments.md 3.3): that revision's
# src/moments.c is compiled here with its public names prefixed euler_, so the old path lives
# only in the benchmark. Without git or when it does not compile, f runs the new solver alone.
euler_rev=002949e
euler=()
if git -C "$root" show "$euler_rev:src/moments.c" >"$out/moments_euler.c" 2>/dev/null; then
  ren=()
  for f in moments_nlayers moments_memory_bytes moments_run moments_run_progress moments_run_free \
    moments_run_pairwise continuum_run continuum_cos_closed moments_regime; do ren+=("-Dbafu_$f=euler_bafu_$f"); done
  # shellcheck disable=SC2046
  if cc -std=c11 -O2 -c -I"$root/include" -I"$root/build/include" -I"$root/src" $(pkg-config --cflags gsl) "${ren[@]}" \
    "$out/moments_euler.c" -o "$out/moments_euler.o" 2>"$out/moments_euler.err"; then
    euler=(-DBENCH_EULER "$out/moments_euler.o")
  else
    echo "run_bench.sh: the Euler solver of $euler_rev did not compile (see $out/moments_euler.err); f runs the new solver alone" >&2
  fi
fi
# The driver is built here (not by CMake) so it never enters the default build or ctest.
# shellcheck disable=SC2046
cc -std=c11 -O2 -Wall -Wextra -fopenmp -I"$root/include" $(pkg-config --cflags gsl) "${euler[@]:0:1}" \
  "$here/bench_bafu.c" "${euler[@]:1}" "$lib" -lgsl $(pkg-config --libs lapacke openblas fftw3) -lm -o "$out/bench_bafu"

log="$out/bench.log"
: >"$log"
{
  echo "# date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(getconf _NPROCESSORS_ONLN) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "# bafu $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), torch $([[ -n $py ]] && $py -c 'import torch; print(torch.__version__)' || echo none)"
} | tee -a "$log"
# Workload g: the kernel command to depth 10^7 (see the header).
bafu_exe="$root/build/bafu"
f_configs=(
  "relu|"
  "linear|--sigma-w2 1"
  "tanh|--sigma-w2 1"
  "erf|--sigma-w2 0.7853981633974483"
  "tanh_resnet|--act tanh --arch resnet"
  "gelu_resnet_norm|--act gelu --arch resnet --embed --branch-norm rms"
  "swish_resnet_norm|--act swish --arch resnet --embed --branch-norm rms"
)
# (gelu and swish MLPs are left out: below or above their edge of chaos q leaves the
# doubles long before depth 10^7, and bafu kernel refuses the layers beyond)
# wall and user seconds of one run: "wall user"
f_time() { /usr/bin/time -f "%e %U" -o "$out/f.time" "$@" >/dev/null 2>"$out/f.err" || { echo "FAILED: $*: $(head -2 "$out/f.err")" >&2; echo "nan nan"; return; }; cat "$out/f.time"; }
# the largest relative difference of two kernel tables (data rows; |a - b| / max(|a|, |b|), values above 1e-280)
f_diff() { paste <(grep -v '^#' "$1" | awk 'NR > 1') <(grep -v '^#' "$2" | awk 'NR > 1') | awk '
  { n = NF / 2; if ($2 + 0 < 1e-280 || $(2 + n) + 0 < 1e-280) next   # (+ 0: subnormal fields are strings to mawk)
    for (i = 2; i <= n; ++i) { a = $i + 0; b = $(i + n) + 0; s = (a < 0 ? -a : a); t = (b < 0 ? -b : b); if (t > s) s = t
      d = a - b; if (d < 0) d = -d; if (s > 1e-280 && d / s > w) w = d / s } }
  END { printf "%.3g", w + 0 }'; }
workload_g() {
  local old_depth=${F_OLD_DEPTH:-10000} entry name args t1 t2 best
  [[ -x $bafu_exe ]] || { echo "run_bench.sh: $bafu_exe not found" >&2; return; }
  for entry in "${f_configs[@]}"; do
    name=${entry%%|*}
    args=${entry#*|}
    [[ $name == *_* ]] || args="--act $name $args"
    # new path, depth 10^7, best of two (wall clock), one row per 10^6 layers
    t1=$(f_time "$bafu_exe" kernel $args --depth 10000000 --every 1000000 --quiet --out "$out/f_$name.dat")
    t2=$(f_time "$bafu_exe" kernel $args --depth 10000000 --every 1000000 --quiet --out "$out/f_$name.dat")
    best=$(printf '%s\n%s\n' "$t1" "$t2" | sort -g | head -1)
    echo "kernel_1e7_$name ${best% *} s user=${best#* } floor=5 args=$args"
    # the direct path and the new one side by side at old_depth
    t1=$(f_time "$bafu_exe" kernel $args --depth "$old_depth" --every 10 --quiet --method direct --out "$out/f_${name}_direct.dat")
    t2=$(f_time "$bafu_exe" kernel $args --depth "$old_depth" --every 10 --quiet --out "$out/f_${name}_auto.dat")
    echo "kernel_direct_$name ${t1% *} s user=${t1#* } depth=$old_depth extrapolated_1e7=$(awk -v t="${t1% *}" -v d="$old_depth" 'BEGIN { printf "%.0f", t * 1e7 / d }') s"
    echo "kernel_auto_$name ${t2% *} s user=${t2#* } depth=$old_depth"
    echo "kernel_maxdiff_$name $(f_diff "$out/f_${name}_auto.dat" "$out/f_${name}_direct.dat") rel depth=$old_depth"
    if [[ -n ${OLD_BAFU:-} ]]; then
      local tt
      if [[ $name == relu || $name == linear || $name == erf ]]; then
        tt=$(f_time "$OLD_BAFU" kernel $args --depth 10000000 --every 1000000 --quiet --out "$out/f_${name}_old.dat")
        echo "kernel_old_$name ${tt% *} s user=${tt#* } depth=10000000 maxdiff=$(f_diff "$out/f_$name.dat" "$out/f_${name}_old.dat")"
      else
        tt=$(f_time "$OLD_BAFU" kernel $args --depth "$old_depth" --every 10 --quiet --out "$out/f_${name}_old.dat")
        echo "kernel_old_$name ${tt% *} s user=${tt#* } depth=$old_depth extrapolated_1e7=$(awk -v t="${tt% *}" -v d="$old_depth" 'BEGIN { printf "%.0f", t * 1e7 / d }') s maxdiff=$(f_diff "$out/f_${name}_auto.dat" "$out/f_${name}_old.dat")"
      fi
    fi
  done
}

for w in "${workloads[@]}"; do
  if [[ $w == g ]]; then workload_g | sed "s/^/$w./" | tee -a "$log"; continue; fi
  "$out/bench_bafu" "$w" | sed "s/^/$w./" | tee -a "$log"
  if [[ -n "$py" && "$w" != floors && "$w" != e && "$w" != f && "$w" != g && "$w" != h ]]; then "$py" "$here/reference_torch.py" "$w" | sed "s/^/$w./" | tee -a "$log"; fi
done

# Summary: ratios and floors (flop and normal counts in README.md).
awk '
  function val(k) { return (k in v) ? v[k] : -1 }
  $1 !~ /^#/ { v[$1] = $2 }
  $1 ~ /^g\.kernel_direct_/ { for (i = 3; i <= NF; ++i) if ($i ~ /^extrapolated_1e7=/) ex[substr($1, 17)] = substr($i, 18) }
  END {
    n = 512; L = 64; S = 16
    gemv = val("floors.dgemv_512_64mats") * 1e9; gemm = val("floors.dgemm_512x512x64") * 1e9
    rng = val("floors.rng_fast_gaussian") * 1e6; rng_gsl = val("floors.rng_gaussian") * 1e6
    print "\n== summary (seconds, fastest of the runs; ratio = torch / bafu) =="
    if (gemv > 0) {
      fa = S * (3 * L - 2) * 2 * n * n; na = S * (L * n * n + 2 * n)
      fb = S * ((3 * L - 2) * 2 * n * n * 64 + 3 * L * 2 * n * 64 * 64); nb = S * (L * n * n + 2 * n * 64)
      # the forward products read weights just generated (in cache); backward and tangent read them from memory
      ff = S * L * 2 * n * n; fbt = fa - ff; cached = val("floors.dgemv_512_cached") * 1e9
      printf "floor a: %.3g flop (backward, tangent) at %.3g GFLOP/s = %.3f s + %.3g (forward) at %.3g GFLOP/s (cached) = %.3f s + %.3g normals at %.0f M/s (fast) = %.3f s -> %.3f s\n", fbt, gemv / 1e9, fbt / gemv, ff, cached / 1e9, ff / cached, na, rng / 1e6, na / rng, fbt / gemv + ff / cached + na / rng
      printf "floor b: %.3g flop at %.3g GFLOP/s = %.3f s + %.3g normals at %.0f M/s (fast) = %.3f s -> %.3f s\n", fb, gemm / 1e9, fb / gemm, nb, rng / 1e6, nb / rng, fb / gemm + nb / rng
    }
    for (i = 1; i <= 2; ++i) { w = i == 1 ? "a" : "b"
      if (val(w ".mc") > 0) {
        printf "%s: bafu %.3f s (fast rng, default)  %.3f s (--rng gsl)  torch %.3f s  ratio %.2f (fast)  %.2f (gsl)\n", w, val(w ".mc"), val(w ".mc_gsl"), val(w ".torch_mc"), val(w ".torch_mc") / val(w ".mc"), val(w ".torch_mc") / val(w ".mc_gsl")
        printf "%s with the actual step: bafu %.3f s (fast)  %.3f s (gsl)\n", w, val(w ".mc_with_step"), val(w ".mc_with_step_gsl")
        if (val(w ".mc_cond") > 0) printf "%s conditional sampler (--conditional, no weight matrices): bafu %.4f s  ratio %.1f;  with the step %.4f s\n", w, val(w ".mc_cond"), val(w ".torch_mc") / val(w ".mc_cond"), val(w ".mc_with_step_cond")
      }
    }
    if (val("b.gemm_path") > 0) printf "b GEMM-bound path (forward, backward, tangent): %.1f GFLOP/s = %.0f%% of dgemm on the same shapes (%.1f GFLOP/s)\n", val("b.gemm_path"), 100 * val("b.gemm_path_fraction"), val("b.gemm_path_dgemm")
    if (val("d.moments_1e6") > 0) {
      printf "d moments 1e6: bafu %.4f s  python floats %.4f s (x%.1f)  torch tensors %.2f s (x%.0f)\n", val("d.moments_1e6"), val("d.py_moments_1e6"), val("d.py_moments_1e6") / val("d.moments_1e6"), val("d.torch_moments_1e6"), val("d.torch_moments_1e6") / val("d.moments_1e6")
      printf "d kernel 1e6:  bafu %.4f s  python floats %.4f s (x%.1f)\n", val("d.kernel2_1e6"), val("d.py_kernel2_1e6"), val("d.py_kernel2_1e6") / val("d.kernel2_1e6")
    }
    if (val("c.spectrum_dense") > 0) printf "c spectrum: bafu %.3f s  torch %.3f s  ratio %.2f\n", val("c.spectrum_dense"), val("c.torch_spectrum_dense"), val("c.torch_spectrum_dense") / val("c.spectrum_dense")
    for (k in v) if (k ~ /^g\.kernel_1e7_/) {
      name = substr(k, 14)
      printf "g kernel depth 1e7, %s: %.2f s (floor 5 s: %s); direct path %s s extrapolated; largest difference %s\n", name, v[k], v[k] <= 5 ? "met" : "NOT met", ex[name], v["g.kernel_maxdiff_" name]
    }
  }' "$log" | tee -a "$log"
echo "run_bench.sh: log in $log" >&2
