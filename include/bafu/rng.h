/* bafu/rng.h: random streams. Every random number of bafu comes from one of
 * two generators (the fast one below, the default, or GSL's mt19937) seeded
 * from (seed, draw[, substream]), so a draw depends only on the pair
 * (seed, draw), whatever thread runs it.
 *
 * None of these functions can fail or allocate: a bafu_fastrng is plain data
 * owned by the caller (no free needed, copying it copies the stream), a
 * gsl_rng is the caller's (gsl_rng_alloc / gsl_rng_free). Output arrays are
 * the caller's. Thread safety: no global mutable state (the ziggurat tables
 * are constant); distinct generator states may be used concurrently, one
 * state must not be used from two threads at once. */
#ifndef BAFU_RNG_H
#define BAFU_RNG_H

#include <gsl/gsl_rng.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Seed r (mt19937) for draw `draw` of stream `seed` (splitmix64 mixing to a
 * non-zero 32-bit seed). */
void bafu_rng_seed(gsl_rng *r, uint64_t seed, uint64_t draw);

/* out[i] ~ N(0, sd^2), i < count (GSL ziggurat). */
void bafu_fill_gaussian(gsl_rng *r, double sd, size_t count, double *out);

/* The fast generator (`--rng fast`): 16 interleaved xoshiro256++ lanes
 * (Blackman and Vigna) feeding a 1024-layer ziggurat (Marsaglia and Tsang): one
 * 64-bit word per candidate, 10 bits for the layer, 1 for the sign, 52 for the
 * magnitude; the rare wedge and tail tests draw from a scalar xoshiro256**
 * stream. All states are seeded by splitmix64 from (seed, draw[, stream]).
 * Several times faster than GSL's mt19937 + ziggurat, which stays the
 * reference in tests (tests/test_rng.c compares the two distributions).
 * The numbers do not depend on the instruction set, and the ziggurat tables
 * are compiled in (src/zig_tables.h), not computed with the machine's libm.
 * theory/engine.md 4. */
#define BAFU_FASTRNG_LANES 16
#define BAFU_FASTRNG_BLOCK 256
typedef struct {
  uint64_t s[4];                          /* scalar xoshiro256** */
  uint64_t lane[4][BAFU_FASTRNG_LANES]; /* xoshiro256++ lanes, state word i of lane l */
  double spare[BAFU_FASTRNG_BLOCK];      /* standard normals left from a partial block */
  unsigned nspare;                        /* how many are left (the last nspare) */
} bafu_fastrng;

/* Seed every word of r from (seed, draw) (splitmix64); discards spare
 * normals. */
void bafu_fastrng_seed(bafu_fastrng *r, uint64_t seed, uint64_t draw);
/* Substream `stream` of draw `draw`: a keyed (counter-like) stream, so any
 * part of a draw (one layer's weights) can be regenerated on its own. */
void bafu_fastrng_seed_stream(bafu_fastrng *r, uint64_t seed, uint64_t draw, uint64_t stream);
/* The next 64-bit word of the scalar xoshiro256** stream (not the lanes). */
uint64_t bafu_fastrng_next(bafu_fastrng *r);
/* Uniform on the open interval (0, 1), 53-bit resolution (scalar stream). */
double bafu_fastrng_uniform(bafu_fastrng *r);
/* out[i] ~ N(0, sd^2), i < count (lanes, scalar stream for rejections). A
 * stream: filling n1 then n2 numbers gives the numbers of one fill of n1 + n2
 * (up to the different sd factors). */
void bafu_fastrng_fill_gaussian(bafu_fastrng *r, double sd, size_t count, double *out);

/* Largest violation of the ziggurat table's invariants (each layer's area V,
 * the base strip plus the tail, the inner rectangles x_{i-1}/x_i, f_i =
 * exp(-x_i^2/2)), relative; about 1e-12 for a correct table. Tested, because
 * errors of mass 1e-4 in one layer are beyond the reach of the statistical
 * tests. Pure; thread-safe. */
double bafu_fastrng_ziggurat_residual(void);

/* The ziggurat's decision for one candidate word u (layer = bits 0-9, sign =
 * bit 10, magnitude = bits 12-63): the fast test, else the wedge or tail test,
 * and after a rejection new attempts from r's scalar stream. Returns a
 * standard normal (sd 1). Exposed so tests can force a layer and check the
 * conditional law of each path. */
double bafu_fastrng_normal_from_word(bafu_fastrng *r, uint64_t u);

#ifdef __cplusplus
}
#endif

#endif
