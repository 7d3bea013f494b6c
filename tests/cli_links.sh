#!/usr/bin/env bash
# cli_links.sh: bafu must use OpenBLAS's CBLAS, not GSL's reference gslcblas.
# Debian's libgsl.so itself lists libgslcblas as a dependency, so ldd shows it
# transitively; what matters is that bafu links OpenBLAS directly (and not
# gslcblas), and that its CBLAS calls bind to OpenBLAS at run time.
set -u
BAFU=${1:?usage: cli_links.sh path/to/bafu}
fails=0 passes=0
check() { if eval "$2"; then passes=$((passes + 1)); else echo "FAIL: $1"; fails=$((fails + 1)); fi; }
needed=$(readelf -d "$BAFU" | grep NEEDED)
echo "$needed"
check "libopenblas is a direct dependency" 'grep -q libopenblas <<<"$needed"'
check "libgslcblas is not a direct dependency" '! grep -q libgslcblas <<<"$needed"'
check "ldd resolves libopenblas" 'ldd "$BAFU" | grep -q "libopenblas.*=> /"'
bind=$(LD_DEBUG=bindings "$BAFU" mc --width 8 --depth 2 --seeds 2 2>&1 >/dev/null | grep -E "symbol .cblas_")
echo "$bind" | sed 's/^ *[0-9]*: *//' | sort -u | head
check "cblas_dgemv binds to OpenBLAS" 'grep "cblas_dgemv" <<<"$bind" | grep -q libopenblas'
check "cblas_ddot binds to OpenBLAS" 'grep "cblas_ddot" <<<"$bind" | grep -q libopenblas'
check "no CBLAS symbol binds to gslcblas" '! grep -q libgslcblas <<<"$bind"'
echo "cli_links: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
