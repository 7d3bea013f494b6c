/* rng.c: seeded random streams (bafu/rng.h). Kept apart from BLAS users:
 * gsl_randist.h pulls in GSL's own CBLAS declarations. */
#include "bafu/rng.h"

#include <gsl/gsl_randist.h>
#include <math.h>

#if defined(__STDC_NO_THREADS__)
#include <pthread.h>
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;
#define ZIG_ONCE(fn) pthread_once(&zig_once, fn)
#else
#include <threads.h>
static once_flag zig_once = ONCE_FLAG_INIT;
#define ZIG_ONCE(fn) call_once(&zig_once, fn)
#endif

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

/* ------------------------------------------------------------------------
 * Fast generator: xoshiro256** and a 128-layer ziggurat. */

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t bafu_fastrng_next(bafu_fastrng *r) {
  uint64_t *s = r->s;
  const uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

void bafu_fastrng_seed(bafu_fastrng *r, uint64_t seed, uint64_t draw) {
  uint64_t x = splitmix64(seed) ^ splitmix64(draw + 0x632BE59BD9B4E019ULL);
  for (int i = 0; i < 4; ++i) {
    x += 0x9E3779B97F4A7C15ULL;
    r->s[i] = splitmix64(x);
  }
}

void bafu_fastrng_seed_stream(bafu_fastrng *r, uint64_t seed, uint64_t draw, uint64_t stream) {
  uint64_t x = splitmix64(seed) ^ splitmix64(draw + 0x632BE59BD9B4E019ULL) ^
               splitmix64(splitmix64(stream ^ 0xD1B54A32D192ED03ULL));
  for (int i = 0; i < 4; ++i) {
    x += 0x9E3779B97F4A7C15ULL;
    r->s[i] = splitmix64(x);
  }
}

double bafu_fastrng_uniform(bafu_fastrng *r) {
  return ((double)(bafu_fastrng_next(r) >> 11) + 0.5) * 0x1.0p-53; /* in (0, 1) */
}

/* Ziggurat tables (Marsaglia and Tsang 2000), 128 layers, values scaled by
 * 2^52 (the magnitude of the 53-bit signed integer drawn). */
#define ZIG_R 3.442619855899
#define ZIG_V 9.91256303526217e-3
static double zig_k[128], zig_w[128], zig_f[128];

static void zig_init(void) {
  const double m = 4503599627370496.0; /* 2^52 */
  double dn = ZIG_R, tn = dn;
  const double q = ZIG_V / exp(-0.5 * dn * dn);
  zig_k[0] = (dn / q) * m;
  zig_k[1] = 0;
  zig_w[0] = q / m;
  zig_w[127] = dn / m;
  zig_f[0] = 1.0;
  zig_f[127] = exp(-0.5 * dn * dn);
  for (int i = 126; i >= 1; --i) {
    dn = sqrt(-2.0 * log(ZIG_V / dn + exp(-0.5 * dn * dn)));
    zig_k[i + 1] = (dn / tn) * m;
    tn = dn;
    zig_f[i] = exp(-0.5 * dn * dn);
    zig_w[i] = dn / m;
  }
}

static double zig_normal(bafu_fastrng *r) {
  for (;;) {
    const uint64_t u = bafu_fastrng_next(r);
    const int64_t j = (int64_t)u >> 11; /* signed, |j| < 2^52, bits 11..63 */
    const int i = (int)(u & 127);       /* layer, bits 0..6 */
    const double aj = (double)(j < 0 ? -j : j);
    if (aj < zig_k[i]) return (double)j * zig_w[i]; /* inside the layer's rectangle */
    if (i == 0) {                                    /* the tail beyond R */
      double x, y;
      do {
        x = -log(bafu_fastrng_uniform(r)) / ZIG_R;
        y = -log(bafu_fastrng_uniform(r));
      } while (y + y < x * x);
      return j > 0 ? ZIG_R + x : -(ZIG_R + x);
    }
    const double x = (double)j * zig_w[i];
    if (zig_f[i] + bafu_fastrng_uniform(r) * (zig_f[i - 1] - zig_f[i]) < exp(-0.5 * x * x)) return x;
  }
}

void bafu_fastrng_fill_gaussian(bafu_fastrng *r, double sd, size_t count, double *out) {
  ZIG_ONCE(zig_init);
  for (size_t i = 0; i < count; ++i) out[i] = sd * zig_normal(r);
}
