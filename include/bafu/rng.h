/* bafu/rng.h: random streams. Every random number of bafu comes from a GSL
 * generator seeded by bafu_rng_seed(seed, draw), so a draw depends only on the
 * pair (seed, draw), whatever thread runs it. */
#ifndef BAFU_RNG_H
#define BAFU_RNG_H

#include <gsl/gsl_rng.h>
#include <stddef.h>
#include <stdint.h>

/* Seed r (mt19937) for draw `draw` of stream `seed` (splitmix64 mixing). */
void bafu_rng_seed(gsl_rng *r, uint64_t seed, uint64_t draw);

/* out[i] ~ N(0, sd^2), i < count (GSL ziggurat). */
void bafu_fill_gaussian(gsl_rng *r, double sd, size_t count, double *out);

#endif
