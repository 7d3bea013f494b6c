/* rng.c: seeded random streams (bafu/rng.h). Kept apart from BLAS users:
 * gsl_randist.h pulls in GSL's own CBLAS declarations. */
#include "bafu/rng.h"

#include <gsl/gsl_randist.h>
#include <math.h>
#include <string.h>


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
 * feeding a 1024-layer ziggurat (theory/engine.md 4). */

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
  r->nspare = 0;
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

/* Ziggurat tables (Marsaglia and Tsang 2000), 1024 layers; zig_k and zig_w are
 * scaled by 2^52, the range of the 52-bit magnitude drawn. The tables are
 * compiled in (exact hexadecimal literals written by tests/gen_zig_tables.c),
 * so they do not depend on the machine's libm. */
#define ZIG_BITS 10
#define ZIG_N (1 << ZIG_BITS)
#define ZIG_R 4.0388498461095045   /* theory/engine.md 4.1 */
#define ZIG_V 1.2263246463530881e-3
#include "zig_tables.h" /* zig_w, zig_f, zig_k: tests/gen_zig_tables.c */

double bafu_fastrng_ziggurat_residual(void) {
  const double m = 4503599627370496.0, R = ZIG_R, V = ZIG_V;
  const double fR = exp(-0.5 * R * R), q = V / fR;
  /* the base layer: rectangle [0, R] x [0, f(R)] plus the tail has area V */
  double worst = fabs(R * fR + 1.2533141373155003 * erfc(R / sqrt(2.0)) /* sqrt(pi/2) */ - V) / V;
  worst = fmax(worst, fabs(zig_w[0] * m - q) / q);
  worst = fmax(worst, fabs((double)zig_k[0] / m - R / q));
  for (int i = 1; i < ZIG_N; ++i) {
    const double x = zig_w[i] * m, xprev = i > 1 ? zig_w[i - 1] * m : 0.0;
    worst = fmax(worst, fabs(zig_f[i] - exp(-0.5 * x * x)));
    worst = fmax(worst, fabs(x * (zig_f[i - 1] - zig_f[i]) - V) / V); /* layer i has area V */
    worst = fmax(worst, fabs((double)zig_k[i] / m - xprev / x));       /* its inner rectangle */
  }
  return worst;
}

/* One 64-bit word u gives a candidate: layer i = bits 0..9, sign = bit 10,
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

double bafu_fastrng_normal_from_word(bafu_fastrng *r, uint64_t u) {
  return zig_slow(r, u);
}

/* The bulk path is written so the compiler vectorises it (integer operations
 * and exact conversions only, so every instruction set gives the same numbers);
 * GCC builds AVX-512, AVX2 and baseline versions and picks one at load time. */
#define ZIG_BLOCK BAFU_FASTRNG_BLOCK
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
    x.u ^= (u & ZIG_N) << (63 - ZIG_BITS); /* bit 10 becomes the sign bit */
    out[k] = x.d;
    reject[k] = m >= zig_k[i];
  }
}

/* One block of ZIG_BLOCK normals times sd into dst: the fast path, then the
 * rare rejections in order. sd * z with z the standard normal, in both paths. */
static void zig_block(bafu_fastrng *r, double sd, double *dst) {
  uint64_t buf[ZIG_BLOCK], reject[ZIG_BLOCK];
  lane_words(r, buf);
  zig_fast(buf, ZIG_BLOCK, sd, dst, reject);
  for (size_t c = 0; c < ZIG_BLOCK; c += 8) /* rejections are rare: test 8 flags at once */
    if (reject[c] | reject[c + 1] | reject[c + 2] | reject[c + 3] | reject[c + 4] | reject[c + 5] |
        reject[c + 6] | reject[c + 7])
      for (size_t k = c; k < c + 8; ++k)
        if (reject[k]) dst[k] = sd * zig_slow(r, buf[k]);
}

/* Whole blocks go straight to out; a partial block is generated into r->spare
 * (standard normals) and used up by later calls, so the numbers do not depend
 * on how a fill is split into calls ((z w_i) sd = sd (z w_i) exactly). */
void bafu_fastrng_fill_gaussian(bafu_fastrng *r, double sd, size_t count, double *out) {
  size_t o = 0;
  while (o < count && r->nspare) out[o++] = sd * r->spare[ZIG_BLOCK - r->nspare--];
  for (; count - o >= ZIG_BLOCK; o += ZIG_BLOCK) zig_block(r, sd, out + o);
  if (o < count) {
    zig_block(r, 1.0, r->spare);
    r->nspare = ZIG_BLOCK;
    while (o < count) out[o++] = sd * r->spare[ZIG_BLOCK - r->nspare--];
  }
}
