/* rng.c: seeded random streams (bafu/rng.h). Kept apart from BLAS users:
 * gsl_randist.h pulls in GSL's own CBLAS declarations. */
#include "bafu/rng.h"

#include <gsl/gsl_randist.h>
#include <math.h>
#include <string.h>

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
 * Fast generator: xoshiro256** (scalar stream) and xoshiro256++ lanes
 * feeding a 256-layer ziggurat (theory/engine.md 4). */

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

/* The scalar state from x, then each lane's state from the same splitmix64
 * sequence: every word of the generator is a bijective function of x. */
static void seed_from(bafu_fastrng *r, uint64_t x) {
  for (int i = 0; i < 4; ++i) {
    x += 0x9E3779B97F4A7C15ULL;
    r->s[i] = splitmix64(x);
  }
  for (int i = 0; i < 4; ++i)
    for (int l = 0; l < BAFU_FASTRNG_LANES; ++l) {
      x += 0x9E3779B97F4A7C15ULL;
      r->lane[i][l] = splitmix64(x);
    }
}

void bafu_fastrng_seed(bafu_fastrng *r, uint64_t seed, uint64_t draw) {
  seed_from(r, splitmix64(seed) ^ splitmix64(draw + 0x632BE59BD9B4E019ULL));
}

void bafu_fastrng_seed_stream(bafu_fastrng *r, uint64_t seed, uint64_t draw, uint64_t stream) {
  seed_from(r, splitmix64(seed) ^ splitmix64(draw + 0x632BE59BD9B4E019ULL) ^
                   splitmix64(splitmix64(stream ^ 0xD1B54A32D192ED03ULL)));
}

double bafu_fastrng_uniform(bafu_fastrng *r) {
  return ((double)(bafu_fastrng_next(r) >> 11) + 0.5) * 0x1.0p-53; /* in (0, 1) */
}

/* Ziggurat tables (Marsaglia and Tsang 2000), 256 layers; zig_k and zig_w are
 * scaled by 2^52, the range of the 52-bit magnitude drawn. */
#define ZIG_N 256
#define ZIG_R 3.6541528853610088
#define ZIG_V 4.92867323399e-3
static double zig_w[ZIG_N], zig_f[ZIG_N];
static uint64_t zig_k[ZIG_N];

static void zig_init(void) {
  const double m = 4503599627370496.0; /* 2^52 */
  double dn = ZIG_R, tn = dn;
  const double q = ZIG_V / exp(-0.5 * dn * dn);
  zig_k[0] = (uint64_t)((dn / q) * m);
  zig_k[1] = 0; /* layer 1 always takes the wedge test, as in the original */
  zig_w[0] = q / m;
  zig_w[ZIG_N - 1] = dn / m;
  zig_f[0] = 1.0;
  zig_f[ZIG_N - 1] = exp(-0.5 * dn * dn);
  for (int i = ZIG_N - 2; i >= 1; --i) {
    dn = sqrt(-2.0 * log(ZIG_V / dn + exp(-0.5 * dn * dn)));
    zig_k[i + 1] = (uint64_t)((dn / tn) * m);
    tn = dn;
    zig_f[i] = exp(-0.5 * dn * dn);
    zig_w[i] = dn / m;
  }
}

/* One 64-bit word u gives a candidate: layer i = bits 0..7, sign = bit 8,
 * magnitude m = bits 12..63 (52 bits), x = +-m w_i, accepted at once when
 * m < k_i. The rest of the ziggurat (wedge and tail tests, and new attempts
 * after a rejection) draws from the scalar stream. */
static double zig_slow(bafu_fastrng *r, uint64_t u) {
  for (;;) {
    const int i = (int)(u & (ZIG_N - 1));
    const uint64_t m = u >> 12;
    const double sign = (u & ZIG_N) ? -1.0 : 1.0;
    if (m < zig_k[i]) return sign * ((double)m * zig_w[i]);
    if (i == 0) { /* the tail beyond R */
      double x, y;
      do {
        x = -log(bafu_fastrng_uniform(r)) / ZIG_R;
        y = -log(bafu_fastrng_uniform(r));
      } while (y + y < x * x);
      return sign * (ZIG_R + x);
    }
    const double x = (double)m * zig_w[i];
    if (zig_f[i] + bafu_fastrng_uniform(r) * (zig_f[i - 1] - zig_f[i]) < exp(-0.5 * x * x)) return sign * x;
    u = bafu_fastrng_next(r);
  }
}

/* The bulk path is written so the compiler vectorises it (integer operations
 * and exact conversions only, so every instruction set gives the same numbers);
 * GCC builds AVX2 and baseline versions and picks one at load time. */
#define ZIG_BLOCK 256
#ifndef BAFU_CLONES /* -DBAFU_CLONES= builds one version (used to check the claim above) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define BAFU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#endif
#ifndef BAFU_CLONES
#define BAFU_CLONES
#endif

/* ZIG_BLOCK words from the lanes, lane l filling positions l, l + LANES, ... */
BAFU_CLONES static void lane_words(bafu_fastrng *r, uint64_t *buf) {
  enum { NL = BAFU_FASTRNG_LANES };
  uint64_t a[NL], b[NL], c[NL], d[NL];
  memcpy(a, r->lane[0], sizeof a);
  memcpy(b, r->lane[1], sizeof b);
  memcpy(c, r->lane[2], sizeof c);
  memcpy(d, r->lane[3], sizeof d);
  for (size_t k = 0; k < ZIG_BLOCK; k += NL)
    for (int l = 0; l < NL; ++l) { /* xoshiro256++ */
      buf[k + l] = rotl(a[l] + d[l], 23) + a[l];
      const uint64_t t = b[l] << 17;
      c[l] ^= a[l];
      d[l] ^= b[l];
      b[l] ^= c[l];
      a[l] ^= d[l];
      c[l] ^= t;
      d[l] = rotl(d[l], 45);
    }
  memcpy(r->lane[0], a, sizeof a);
  memcpy(r->lane[1], b, sizeof b);
  memcpy(r->lane[2], c, sizeof c);
  memcpy(r->lane[3], d, sizeof d);
}

/* out[k] = sd x(buf[k]) for the fast path; reject[k] marks the others. The
 * 52-bit magnitude becomes a double exactly through the 2^52 exponent trick. */
BAFU_CLONES static void zig_fast(const uint64_t *restrict buf, size_t n, double sd, double *restrict out,
                                 uint64_t *restrict reject) {
  for (size_t k = 0; k < n; ++k) {
    const uint64_t u = buf[k], m = u >> 12;
    const uint64_t i = u & (ZIG_N - 1);
    union {
      uint64_t u;
      double d;
    } md = {m | 0x4330000000000000ULL}, x;
    x.d = (md.d - 4503599627370496.0) * zig_w[i] * sd;
    x.u ^= (u & ZIG_N) << 55; /* bit 8 becomes the sign bit */
    out[k] = x.d;
    reject[k] = m >= zig_k[i];
  }
}

void bafu_fastrng_fill_gaussian(bafu_fastrng *r, double sd, size_t count, double *out) {
  ZIG_ONCE(zig_init);
  uint64_t buf[ZIG_BLOCK];
  uint64_t reject[ZIG_BLOCK];
  double tail[ZIG_BLOCK];
  for (size_t o = 0; o < count; o += ZIG_BLOCK) {
    const size_t n = count - o < ZIG_BLOCK ? count - o : ZIG_BLOCK;
    double *dst = n == ZIG_BLOCK ? out + o : tail; /* a partial last block uses its first n words */
    lane_words(r, buf);
    zig_fast(buf, ZIG_BLOCK, sd, dst, reject);
    for (size_t c = 0; c < n; c += 8) /* rejections are rare: test 8 flags at once */
      if (reject[c] | reject[c + 1] | reject[c + 2] | reject[c + 3] | reject[c + 4] | reject[c + 5] |
          reject[c + 6] | reject[c + 7])
        for (size_t k = c; k < c + 8 && k < n; ++k)
          if (reject[k]) dst[k] = sd * zig_slow(r, buf[k]);
    if (dst == tail) memcpy(out + o, tail, n * sizeof *out);
  }
}
