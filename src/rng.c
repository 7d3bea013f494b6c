/* rng.c: seeded random streams (bafu/rng.h). Kept apart from BLAS users:
 * gsl_randist.h pulls in GSL's own CBLAS declarations. */
#include "bafu/rng.h"

#include <gsl/gsl_randist.h>

/* splitmix64: a bijective mixer, so distinct (seed, draw) give distinct states. */
static uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

void bafu_rng_seed(gsl_rng *r, uint64_t seed, uint64_t draw) {
  const uint64_t state = splitmix64(splitmix64(seed) ^ splitmix64(draw + 0x632BE59BD9B4E019ULL));
  /* mt19937 takes a 32-bit seed; 0 is mapped by GSL to its default, so avoid it */
  unsigned long s = (unsigned long)((state ^ (state >> 32)) & 0xFFFFFFFFULL);
  gsl_rng_set(r, s ? s : 0x9E3779B9UL);
}

void bafu_fill_gaussian(gsl_rng *r, double sd, size_t count, double *out) {
  for (size_t i = 0; i < count; ++i) out[i] = gsl_ran_gaussian_ziggurat(r, sd);
}
