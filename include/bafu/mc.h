/* bafu/mc.h: Monte Carlo over independent draws of a finite-width network.
 *
 * Draw i of stream `seed` (i = 0..seeds-1) redraws weights, inputs (unless
 * fixed) and the probe or targets, runs every pass, and measures every
 * per-layer quantity of bafu/net.h. The result holds, per layer and quantity,
 * the mean, the standard error of the mean (sample sd / sqrt(seeds)) and the
 * maximum over draws. Results depend only on (params, seeds, seed, inputs),
 * not on the number of threads: each draw writes its own slot. A layer with
 * nothing trained at or below it has no angle in any draw (NAN in the mean,
 * se and max; D_l = 0). A degenerate draw (bafu_net_check_draw: a dead ReLU
 * layer at a small width, underflow, a step below rounding) is left out of
 * every statistic and counted (excluded, excluded_by, note): the estimates
 * are then conditional on a non-degenerate draw (theory/engine.md 3.5).
 *
 * Thread safety: a run starts its own OpenMP team and, when threads > 1, sets
 * OpenBLAS's process-wide thread count to 1 for the run and restores it
 * afterwards, so concurrent runs with threads > 1, or BLAS calls elsewhere in
 * the process during such a run, see that setting. Otherwise runs into
 * distinct results may be made concurrently. */
#ifndef BAFU_MC_H
#define BAFU_MC_H

#include <stdint.h>

#include "bafu/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  size_t J;        /* layers */
  size_t seeds;    /* draws in the statistics: those run, less the degenerate ones */
  int *labels;     /* J user-facing layer indices */
  double *mean;    /* J x BAFU_Q_COUNT, row-major by layer */
  double *se;
  double *max;
  double *raw;     /* seeds x J x BAFU_Q_COUNT: every kept draw's values, in draw order */
  size_t excluded; /* degenerate draws left out (bafu_net_check_draw) */
  size_t excluded_by[BAFU_DRAW_COUNT]; /* ... by cause */
  char note[256];  /* "" if none were excluded, else e.g. "3 of 64 draws excluded: ..." */
} bafu_mc_result;

/* Bytes a run with one worker needs: one network (bafu_net_memory_bytes) and
 * the per-draw results (an estimate, compared with the memory limit before
 * anything is allocated). p is not checked; cannot fail. */
double bafu_mc_memory_bytes(const bafu_net_params *p, size_t seeds);

/* Run `seeds` >= 2 draws with up to `threads` >= 1 OpenMP workers (each with
 * its own workspace; BLAS runs single-threaded inside a worker when threads > 1).
 * The workers are capped at `seeds`, and at bafu_memory_limit_bytes() /
 * bafu_net_memory_bytes(p) (at least 1). `x` (d x m, copied, not retained)
 * fixes the inputs, or NULL for fresh draws of p->inputs per draw.
 * *out is zeroed on entry; on success it owns malloc'd arrays (release with
 * bafu_mc_result_free). Errors: BAFU_EINVAL for seeds < 2, threads < 1 or
 * invalid p; errors of bafu_net_alloc, bafu_net_draw and bafu_net_run (the
 * first one met, its message re-raised in the calling thread); BAFU_ENOMEM for
 * the result arrays; BAFU_ENUMERIC when fewer than 2 draws are not
 * degenerate (the message names the cause and the layer). On error *out is
 * zeroed and nothing is leaked. */
bafu_status bafu_mc_run(const bafu_net_params *p, size_t seeds, uint64_t seed, const double *x,
                        int threads, bafu_mc_result *out);

/* The same, calling progress(done, seeds, ctx) after each finished draw (one
 * call at a time, from whichever worker finished; done counts up to seeds,
 * fewer after an error; progress may be NULL). The results do not depend
 * on it. */
typedef void (*bafu_mc_progress_fn)(size_t done, size_t total, void *ctx);
bafu_status bafu_mc_run_progress(const bafu_net_params *p, size_t seeds, uint64_t seed, const double *x,
                                 int threads, bafu_mc_progress_fn progress, void *ctx, bafu_mc_result *out);
/* Free the arrays of r and zero it; NULL-safe, and safe on a zeroed result. */
void bafu_mc_result_free(bafu_mc_result *r);

/* The deviation of quantity q at layer j from a reference value (the
 * theory's), over the r->seeds kept draws x_d (theory/engine.md 3.6): the rms
 * deviation of one network, rms = sqrt(m), m = mean_d (x_d - ref)^2, and its
 * standard error by the delta method, sqrt(max(mean_d (x_d - ref)^4 - m^2, 0)
 * / seeds) / (2 rms). (The bias of the mean is r->mean - ref, its standard
 * error r->se.) Cannot fail; rms_se is NaN if rms = 0. */
void bafu_mc_deviation(const bafu_mc_result *r, size_t j, bafu_quantity q, double ref, double *rms, double *rms_se);

#ifdef __cplusplus
}
#endif

#endif
