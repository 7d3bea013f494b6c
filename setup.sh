#!/usr/bin/env bash
# setup.sh: one-command set-up for bafu on a fresh Debian machine.
#
#   ./setup.sh run    install packages, build, and regenerate every figure
#   ./setup.sh test   install packages, build, and run the test suite, then the
#                     unit and command-line tests again in an AddressSanitizer +
#                     UBSan build (build-asan/)
#   ./setup.sh deps   only install the Debian packages
#   ./setup.sh build  install packages and build
#
# Packages are installed with apt-get (needs root, or sudo).
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential cmake pkg-config libgsl-dev liblapacke-dev libopenblas-dev
          libfftw3-dev check gnuplot-nox libopenmpi-dev openmpi-bin valgrind strace
          zlib1g-dev dataset-fashion-mnist python3-numpy python3-pytest python3-matplotlib
          python3-pandas)

deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    local SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO=sudo
    echo "setup.sh: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

build() {
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)"
}

case "${1:-run}" in
  deps) deps ;;
  build) deps; build ;;
  test)
    deps; build
    ctest --test-dir build --output-on-failure -j"$(nproc)"
    # sanitizers: the same tests but the long Monte Carlo validation, the
    # figures run, the progress-bar test (a terminal UI check, minutes under
    # ASan), the install test (it builds against the release copy) and
    # valgrind (which cannot run sanitized binaries). The build generates the
    # manual pages by running bafu: Open MPI's own allocations in `sweep
    # --help` are not ours, so leak checks are off for the build step.
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Asan >/dev/null
    ASAN_OPTIONS=detect_leaks=0 cmake --build build-asan -j"$(nproc)"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp":print_suppressions=0 \
      ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -E 'test_validation|cli_figures|cli_progress|install_consumers|cli_valgrind'
    ;;
  run)
    deps; build
    # figure 8's unstable runs depend on the BLAS kernels' rounding: the committed
    # tables were made with OpenBLAS's Haswell kernels (any x86-64 CPU with AVX2)
    if [[ -z ${OPENBLAS_CORETYPE:-} && $(uname -m) == x86_64 ]] && grep -qw avx2 /proc/cpuinfo; then
      export OPENBLAS_CORETYPE=Haswell
    fi
    ./build/bafu figures --threads "$(nproc)" --resume # continues an interrupted run; a fresh one otherwise
    echo "setup.sh: tables in data/, figures in plots/" >&2
    ;;
  *) echo "usage: ./setup.sh [run|test|deps|build]" >&2; exit 2 ;;
esac
