/* maskgrid.h (internal): the mask correlations of a residual stream without
 * per-pair quadrature (theory/moments.md 2.9).
 *
 * The stream coordinate is a Gaussian martingale X_0, X_1, ..., X_L with
 * Var X_l = q[l]; block l's mask reads X_{l-1} through g_l(x) = phi'(x / c_l)^2
 * (c_l = 1, or sqrt(q[l-1]) for a normalised branch); the readout's mask reads
 * X_L through phi'(x)^2. Sums over pairs of blocks of E[g_k(X_{k-1}) g_l(X_{l-1})]
 * become one Gaussian convolution per block of a function sampled on a uniform
 * grid, done exactly for the grid's band-limited interpolant by FFT (FFTW):
 * O(L G log G) instead of O(L^2) two-dimensional quadratures. */
#ifndef BAFU_MASKGRID_H
#define BAFU_MASKGRID_H

#include <stddef.h>

#include "bafu/act.h"
#include "bafu/status.h"

typedef struct mask_grid mask_grid;

/* A grid for the stream variances q[0..L] (q[l]: after block l; q[0] > 0),
 * activation act, normalised branches or not. Returns BAFU_OK, BAFU_ENOMEM,
 * BAFU_ELIMIT (the memory check), or BAFU_EINVAL when the variances span too
 * wide a range for a grid (*out NULL: the caller uses the pairwise quadrature). */
bafu_status mg_alloc(bafu_act act, const double *q, size_t L, int norm, mask_grid **out);
void mg_free(mask_grid *g);

/* Forward accumulator nu over X_{l-1}: nu = sum_{k<l} w_k E[g_k(X_{k-1}) | X_{l-1} = x] rho_{l-1}(x).
 * mg_reset empties it (before block 1). mg_cross(l) = sum_k w_k E[g_k g_l]
 * = int g_l nu. mg_push(l, gamma, w) multiplies every weight by gamma, adds
 * block l's mask with weight w and moves the accumulator to X_l. Two
 * independent accumulators (a = 0, 1). */
void mg_reset(mask_grid *g, int a);
double mg_cross(mask_grid *g, int a, size_t l);
void mg_push(mask_grid *g, int a, size_t l, double gamma, double w);

/* T_k = sum_{j>k} y_j E[g_k(X_{k-1}) g_j(X_{j-1})] for k = 1..L into T[k-1], with
 * y[1..L] the blocks' weights and y[L+1] the readout mask's (0: none). */
void mg_backward(mask_grid *g, const double *y, double *T);

/* One pair at a time (theory/moments.md 3.3): M = E[g(X) g(Y)] for the
 * stream coordinates X = X_s, Y = X_t (s < t) with Var X = q1, Var Y = q2 =
 * q1 + d and Cov = q1, g = phi'(. / c)^2 (c = 1, or the coordinate's own
 * sqrt(variance) with normalised branches). d is passed apart so that the
 * caller can supply it without cancellation. Closed forms for relu, linear
 * and erf; for tanh, gelu and swish a Hermite series in the correlation
 * (normalised) or a Fourier product on a fixed grid (plain), both built once
 * by mp_alloc for variances >= qmin > 0 (when qmin is so small that the grid
 * would exceed 2^16 points, the two-dimensional quadrature of
 * bafu_act_mask_corr_quad, pair by pair). mp_eval returns NAN if that fails.
 * Errors of mp_alloc: BAFU_EINVAL (qmin), BAFU_ENOMEM. */
typedef struct mask_pairs mask_pairs;
bafu_status mp_alloc(bafu_act act, int norm, double qmin, mask_pairs **out);
double mp_eval(mask_pairs *m, double q1, double q2, double d);
void mp_free(mask_pairs *m);

#endif
