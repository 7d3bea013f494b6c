/* rng_hash.c: prints an FNV-1a hash of 10^7 draws of the fast generator.
 * Built twice (tests/CMakeLists.txt): against the library, whose bulk kernels
 * have AVX-512, AVX2 and baseline versions chosen at load time, and with src/rng.c
 * compiled for the baseline instruction set only; the test rng_isa requires
 * the two hashes to be equal (the numbers do not depend on the instruction set). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/rng.h"

int main(void) {
  const size_t N = 10000000;
  double *x = malloc(N * sizeof *x);
  if (!x) return 1;
  bafu_fastrng r;
  bafu_fastrng_seed_stream(&r, 5, 7, 3);
  bafu_fastrng_fill_gaussian(&r, 1.3, N - 100, x);
  bafu_fastrng_fill_gaussian(&r, 0.7, 100, x + N - 100); /* a partial last block */
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < N; ++i) {
    uint64_t b;
    memcpy(&b, x + i, sizeof b);
    h = (h ^ b) * 1099511628211ULL;
  }
  printf("%016llx\n", (unsigned long long)h);
  free(x);
  return 0;
}
