#!/usr/bin/env bash
# run_fuzz.sh [SECONDS] [HARNESS...]: build each harness with clang's libFuzzer,
# AddressSanitizer and UBSan (the library sources compiled into it with the same
# flags) and fuzz it for SECONDS (default 600) from its seed corpus. New inputs
# that raise coverage go to a scratch corpus; a crash, leak, hang (> 10 s) or
# sanitizer report stops the run and leaves the input in tests/fuzz/crashes/
# (add it to corpus/<harness>/ once fixed, so the ctest replay keeps it).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-600}; shift || true
harnesses=("${@:-inputs sweep idx idxpair ckpt cli}")
read -r -a harnesses <<<"${harnesses[*]}"
out=build-fuzz; mkdir -p "$out" tests/fuzz/crashes
srcs=$(ls src/*.c | grep -v 'src/main.c')
mkdir -p "$out/include/bafu" # the generated version header, version "fuzz"
sed -e 's/@PROJECT_VERSION_MAJOR@/0/; s/@PROJECT_VERSION_MINOR@/0/; s/@PROJECT_VERSION_PATCH@/0/' \
    -e 's/@PROJECT_VERSION@/fuzz/' src/version.h.in >"$out/include/bafu/version.h"
for h in "${harnesses[@]}"; do
  extra=""; [[ $h == cli ]] && extra=src/cli/cli.c; [[ $h == ckpt ]] && extra=src/cli/ckpt.c
  clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Iinclude -I"$out/include" -Isrc/cli -Itests/fuzz $(pkg-config --cflags gsl) \
    tests/fuzz/fuzz_$h.c $srcs $extra -o "$out/fuzz_$h" \
    -lgsl $(pkg-config --libs lapacke openblas fftw3 zlib) -lm 2>"$out/build_$h.log" ||
    { echo "run_fuzz: build of $h failed (see $out/build_$h.log)"; exit 1; }
  mkdir -p "$out/corpus_$h"
  echo "run_fuzz: $h for $secs s"
  if ! "$out/fuzz_$h" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -close_fd_mask=3 \
       -artifact_prefix=tests/fuzz/crashes/"$h"- "$out/corpus_$h" tests/fuzz/corpus/"$h" 2>"$out/fuzz_$h.log"; then
    echo "run_fuzz: $h FAILED: $(grep -m1 -E 'ERROR|SUMMARY|runtime error' "$out/fuzz_$h.log")"; exit 1
  fi
  grep -E '^#[0-9]+.*DONE|Done [0-9]+ runs' "$out/fuzz_$h.log" | tail -1
done
