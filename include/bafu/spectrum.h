/* bafu/spectrum.h: spectra of the backward-to-feature kernel (BFK) K_l and of
 * the end-to-end Jacobian product J J^T, for one input (batch 1), three ways:
 *
 *   dense  finite width, K_l formed with BLAS-3 and diagonalised (LAPACK dsyevd);
 *   kpm    finite width, matrix-free K_l v and the kernel polynomial method;
 *   limit  infinite width, free multiplicative convolution layer by layer.
 *
 * Derivations, numerics and the tests that check them: theory/spectrum.md.
 * Definitions (theory/engine.md 3.2): K_j = c_j I + A_j K_{j-1} A_j^T with
 * c_j = lr_j s_j^2 |g_j|^2 and A_j = W_j D_j (plain) or I + beta W_j D_j
 * (residual block), D_j = diag(phi'(input stream of layer j)); the layer that
 * reads x has K = lr |x|^2 I (with a residual block reading x: beta^2 lr |phi(x)|^2 I).
 * The Jacobian object M_j = J J^T, J = A_j ... A_1 (layer indices 0-based, the
 * first layer's M_0 = I): the same recursion with c_0 = 1 and c_j = 0 after.
 * A residual branch of K > 1 layers (block_depth) is one layer of K weight
 * matrices (units): K_j = A_j K_{j-1} A_j^T + S_j with A_j the block's
 * Jacobian and S_j the sum over its units of their c_k-weighted kernels
 * (theory/spectrum.md 2.1).
 * Layer indices j below are the engine's 0-based indices (bafu_net_layer_label
 * gives the user-facing label). Moments are m_p = tr(K^p)/n_j (n_j = fan_out).
 *
 * Ownership: workspaces come from *_alloc (*out NULL on error) and are released
 * with *_free (NULL-safe); arrays passed in are the caller's and not retained;
 * pointers returned by the getters are owned by the workspace, valid until its
 * free, their contents replaced by the next run. A workspace reads the network
 * passed to each call (bafu_net_weight may generate its weights), so that
 * network must not be used elsewhere meanwhile.
 *
 * Thread safety: distinct workspaces (with distinct networks) may be used
 * concurrently. bafu_spec_kpm_alloc and bafu_spec_kpm_free call the FFTW
 * planner, which is not thread-safe, under a lock that every FFTW plan of the
 * library is made and destroyed under; a program that also plans with FFTW
 * itself must not do so while they run. One workspace must not be used from
 * two threads at once. */
#ifndef BAFU_SPECTRUM_H
#define BAFU_SPECTRUM_H

#include <stddef.h>
#include <stdint.h>

#include "bafu/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { BAFU_SPEC_BFK, BAFU_SPEC_JACOBIAN } bafu_spec_object;

/* Enum -> name: "jacobian" for BAFU_SPEC_JACOBIAN, "bfk" for any other value
 * (static strings; cannot fail). */
const char *bafu_spec_object_name(bafu_spec_object o);

/* Per-layer summary. cos_theta = <b, M b> / (|b| |M b|) with b = the layer's
 * backward vector of the same draw (dense) or m1/sqrt(m2) (limit). A layer
 * with M = 0 (nothing trained at or below it) has m1 = 0 and cos_theta = 0;
 * callers must skip it (defined = 0). */
typedef struct {
  int label;
  int defined;
  double m1, m2, cos_theta;
  double cos_spectral; /* m1 / sqrt(m2): the angle for a direction independent of M (0 if m2 = 0) */
} bafu_spec_moments;

/* Kantorovich's bound (theory/spectrum.md): for every vector b,
 * <b, M b> / (|b| |M b|) >= 2 sqrt(lo hi) / (lo + hi) when the spectrum of M
 * lies in [lo, hi], 0 < lo <= hi. NAN for other arguments; cannot fail. */
double bafu_spec_kantorovich(double lo, double hi);

/* Histogram of n eigenvalues ev[0..n) in ascending order, in `bins` bins
 * from the smallest to the largest: equal widths, or geometric (log_bins;
 * the exact zeros at the start are then an atom at 0, counted in *zeros, and
 * the bins cover the others; *zeros = 0 otherwise). Bin b = [e0, e1), the
 * last one closed: x[b] = (e0 + e1) / 2, density[b] = count / (n (e1 - e0))
 * (per unit x: the bins integrate to 1 - zeros/n), width[b] = e1 - e0. The
 * bins span at least 1e-9 of the largest |eigenvalue|, so that each width is
 * resolved in double precision. Errors: BAFU_EINVAL for n = 0 or bins = 0;
 * BAFU_ENUMERIC if log_bins and every eigenvalue is 0, or if the eigenvalues
 * are too close to 0 to bin (that span underflows). */
bafu_status bafu_spec_histogram(const double *ev, size_t n, size_t bins, int log_bins, double *x, double *density,
                                double *width, size_t *zeros);

/* ---------------------------------------------------------------- dense --- */

/* Progress of a long spectrum run: done of total units (dense: layers, plus
 * one for the eigensolver; kpm: operator applications), called from the
 * calling thread; the last call has done == total. */
typedef void (*bafu_spec_progress_fn)(size_t done, size_t total, void *ctx);

typedef struct bafu_spec_dense bafu_spec_dense;

/* Workspace for every layer of `net` (its layers, kinds and scales come from
 * the network's own description, bafu/layout.h): 3 n^2 doubles (4 n^2 with
 * branches of K > 1 layers) + the dsyevd workspace, queried once for n = the
 * largest fan_in or fan_out. vectors != 0 keeps eigenvectors. Errors:
 * BAFU_EINVAL if the network's batch is not 1 or it is conditional (no weight
 * matrices); BAFU_ELIMIT if those n^2 doubles plus the network's memory
 * exceed the memory limit, BAFU_ENOMEM if an allocation fails; BAFU_ELAPACK
 * if the workspace query fails. */
bafu_status bafu_spec_dense_alloc(const bafu_net *net, int vectors, bafu_spec_dense **out);
void bafu_spec_dense_free(bafu_spec_dense *ws);
/* Report progress of later bafu_spec_dense_run calls to fn (NULL: none). */
void bafu_spec_dense_set_progress(bafu_spec_dense *ws, bafu_spec_progress_fn fn, void *ctx);

/* For the current draw of `net` (after bafu_net_run): build M_j for
 * j = 0..layer in one sweep (A K A^T as (A K) A^T, two dgemm per layer), fill
 * mom[0..layer] (NULL: skip) and, if eval != NULL, the eigenvalues of M_layer in
 * ascending order (fan_out entries). The matrix itself stays available.
 * net must be the network the workspace was allocated for. M is positive
 * semi-definite: eigenvalues in [-16 n eps |lambda|_max, 0) are rounding and
 * are set to 0 (counted: bafu_spec_dense_clamped). Errors: BAFU_EINVAL if
 * layer >= J; BAFU_ENUMERIC if M overflows (naming the layer) or has an
 * eigenvalue below that bound; BAFU_ELAPACK if dsyevd fails. */
bafu_status bafu_spec_dense_run(bafu_spec_dense *ws, bafu_net *net, bafu_spec_object obj, size_t layer,
                                bafu_spec_moments *mom, double *eval);
/* Eigenvalues the last run with eval set to 0 (rounding-size negatives).
 * Cannot fail. */
size_t bafu_spec_dense_clamped(const bafu_spec_dense *ws);
/* M_layer (n x n column-major, full, n = fan_out of the layer) of the last
 * run, and its eigenvectors (columns; NULL unless vectors != 0, and meaningful
 * only if the last run computed eigenvalues: otherwise the buffer holds
 * scratch). Undefined before the first run; cannot fail. */
const double *bafu_spec_dense_matrix(const bafu_spec_dense *ws);
const double *bafu_spec_dense_vectors(const bafu_spec_dense *ws);

/* ------------------------------------------------------------------ kpm --- */

typedef struct {
  size_t moments;  /* Chebyshev moments N [256] */
  size_t vectors;  /* Hutchinson probe vectors R (Rademacher) [16] */
  size_t lanczos;  /* Lanczos steps for the upper spectral bound [40] */
  size_t points;   /* reconstruction points (Chebyshev nodes, DCT size) [2N] */
  uint64_t seed;   /* stream of the probe vectors */
} bafu_kpm_params;

/* The defaults in brackets above (points 0: 2N; seed 1). Cannot fail. */
bafu_kpm_params bafu_kpm_params_default(void);

typedef struct bafu_spec_kpm bafu_spec_kpm;

/* Workspace: per unit (weight matrix) masks, scalars and n R vectors, O(U n R)
 * doubles for U units; no n^2 storage beyond the engine's weights. kp is copied. Errors: BAFU_EINVAL if the network's batch is not 1,
 * net conditional (no weight matrices),
 * or kp out of range (moments 4..100000, vectors 1..4096, lanczos 2..1000,
 * points 0 or >= moments); BAFU_ENOMEM; BAFU_ENUMERIC if FFTW cannot plan the
 * DCT. See the thread-safety note above. */
bafu_status bafu_spec_kpm_alloc(const bafu_net *net, const bafu_kpm_params *kp, bafu_spec_kpm **out);
void bafu_spec_kpm_free(bafu_spec_kpm *ws);
/* Report progress of later bafu_spec_kpm_run calls to fn (NULL: none). */
void bafu_spec_kpm_set_progress(bafu_spec_kpm *ws, bafu_spec_progress_fn fn, void *ctx);

/* Prepare layer `layer` of the current draw (masks, c_j) for apply/run; needs
 * the forward pass of net. BAFU_EINVAL if layer >= J. obj is not checked (any
 * value but BAFU_SPEC_JACOBIAN means the BFK). Must precede apply and run. */
bafu_status bafu_spec_kpm_prepare(bafu_spec_kpm *ws, bafu_net *net, bafu_spec_object obj, size_t layer);

/* out = M_layer v for k <= kp->vectors columns (fan_out x k, column-major)
 * without forming M: one backward (vector-Jacobian) and one tangent pass over
 * the stored weights, BLAS-3 over the k columns. v and out may not alias.
 * After bafu_spec_kpm_prepare; cannot fail (no finiteness check). */
void bafu_spec_kpm_apply(bafu_spec_kpm *ws, bafu_net *net, size_t k, const double *v, double *out);

/* The density on the reconstruction nodes into the caller's x and density
 * (ascending x; kp->points entries, or 2 kp->moments if points = 0), and the
 * spectral interval [lo, hi] used (lo = c of the layer's last unit for the BFK, since K >= c I;
 * hi from Lanczos plus a margin). The probe vectors are redrawn from kp->seed
 * at every run (deterministic). After bafu_spec_kpm_prepare. Errors:
 * BAFU_ENOMEM; BAFU_ENUMERIC for a non-finite Lanczos or Chebyshev vector;
 * BAFU_ELAPACK if dstev fails. */
bafu_status bafu_spec_kpm_run(bafu_spec_kpm *ws, bafu_net *net, double *x, double *density, double *lo,
                              double *hi);
/* Cumulative distribution of the last run's damped Chebyshev series at lambda
 * (exact integral of the series, clamped to [0, 1]). Undefined before a
 * successful run; cannot fail. */
double bafu_spec_kpm_cdf(const bafu_spec_kpm *ws, double lambda);
/* Stochastic estimates of m1 = tr(M)/n and m2 = tr(M^2)/n from the last run
 * (undefined before a successful run); cannot fail. */
void bafu_spec_kpm_moments(const bafu_spec_kpm *ws, double *m1, double *m2);

/* Wasserstein-1 distance between the distribution function cdf(.) and the
 * empirical distribution of the n >= 1 values ev (ascending), integrated over
 * [lo, hi] (widened to contain ev) by the midpoint rule on `grid` >= 1 cells.
 * No status: the arguments are not checked (n = 0 reads out of bounds;
 * grid = 0 gives 0). */
double bafu_spec_w1(double (*cdf)(const void *ctx, double x), const void *ctx, const double *ev, size_t n,
                    double lo, double hi, size_t grid);

/* ---------------------------------------------------------------- limit --- */

/* How the limit is computed (theory/spectrum.md 4.3, 4.7, 4.8): AUTO solves the
 * subordination equations at each point (exact to rounding) for ReLU, linear
 * and tanh MLPs and linear ResNets and discretises the laws otherwise;
 * DISCRETE always discretises (the older, first-order method). */
typedef enum { BAFU_FREE_AUTO, BAFU_FREE_DISCRETE } bafu_free_method;

typedef struct {
  size_t atoms; /* quantile points representing each layer's law [1500] (discretised method) */
  size_t grid;  /* density evaluation points of the last layer (and per layer when discretised) [1500] */
  bafu_free_method method; /* [BAFU_FREE_AUTO] */
  size_t paths;  /* nonlinear ResNets: mask paths sampled for the Dyson equation (theory/spectrum.md 4.9)
                    [0: 16384 for relu, 4096 otherwise] */
  int no_calibration; /* nonlinear ResNets: keep the sampled paths' equal weights (theory/spectrum.md 4.9) [0] */
  int moments_only; /* nonlinear ResNets: every layer's m1, m2 only (lo = hi = 0, raw[] = 0, no grid) [0] */
  int last_only; /* exact method: layers before the last get m1, m2 and atoms only (lo = hi = 0,
                    raw[] = 0), skipping their edges and quadratures [0] */
} bafu_free_params;

/* The defaults in brackets above. Cannot fail. */
bafu_free_params bafu_free_params_default(void);

typedef struct {
  double x, mass;
} bafu_spec_atom;

typedef struct {
  int label;
  double m1, m2;        /* moments of the represented law (carried exactly, see theory) */
  double raw[5];        /* raw[p] = integral of x^p over the density + atoms (p = 0..4): by adaptive
                           quadrature of the exact density (last layer of an exact run), a 128-point
                           Gauss-Legendre rule (its earlier layers), the grid (discretised method) */
  double lo, hi;        /* support of the continuous part (exact edges, or the grid interval) */
  size_t natoms;
  bafu_spec_atom atom[2];
} bafu_free_layer;

typedef struct bafu_free bafu_free;

/* Workspace for fp (copied). Errors: BAFU_EINVAL if fp->atoms is not in
 * 50..100000 or fp->grid not in 50..1000000; BAFU_ENOMEM. */
bafu_status bafu_free_alloc(const bafu_free_params *fp, bafu_free **out);
void bafu_free_free(bafu_free *ws);
/* Limit of layer `layer` (0-based) of the network p (probe signal, batch 1,
 * Gaussian init; MLPs with any activation, ResNets with one-layer blocks:
 * linear exactly, nonlinear by the Dyson equation over fp->paths sampled mask
 * paths, theory/spectrum.md 4.9) for one input with |x|^2 = x2 (as bafu_moments_run: <= 0 means d, or 1
 * for one-hot inputs). Fills the caller's info[0..layer] (layer + 1 entries).
 * Errors: BAFU_EINVAL for p outside that scope or layer >= J; BAFU_ENOMEM;
 * BAFU_ELIMIT (the mask paths over the memory limit); BAFU_ENUMERIC (a solver
 * that did not converge); errors of bafu_moments_run and of the activation
 * moments. After an error
 * the workspace's last layer is unspecified. */
bafu_status bafu_free_run(bafu_free *ws, const bafu_net_params *p, double x2, bafu_spec_object obj, size_t layer,
                          bafu_free_layer *info);
/* The summary of layers 0..count-1 of a limit (bafu_free_run's info):
 * defined = m1 > 0, cos_theta = cos_spectral = m1/sqrt(m2) (0 when not
 * defined). Cannot fail. */
void bafu_free_moments(const bafu_free_layer *info, size_t count, bafu_spec_moments *out);
/* Grid density of the continuous part of the last layer computed (grid
 * points, ascending x; bafu_free_npoints = fp->grid entries). Undefined before
 * a successful bafu_free_run; cannot fail. */
const double *bafu_free_x(const bafu_free *ws);
const double *bafu_free_density(const bafu_free *ws);
size_t bafu_free_npoints(const bafu_free *ws);
/* 1 if the last successful bafu_free_run solved the subordination equations
 * pointwise (exact to rounding), 0 if it discretised the laws. */
int bafu_free_exact(const bafu_free *ws);
/* After a run on a nonlinear ResNet (the Dyson equation over sampled mask
 * paths, theory/spectrum.md 4.9): the number of distinct paths and of paths
 * sampled; 0 after any other run. Cannot fail. */
size_t bafu_free_paths(const bafu_free *ws);
size_t bafu_free_sampled(const bafu_free *ws);
/* After such a run: 1 if the path weights were calibrated to the exact mask
 * statistics (*resid: the largest relative error left), -1 if the
 * calibration did not reach them (equal weights kept), 0 if not tried
 * (no_calibration, or over the memory limit). Cannot fail. */
int bafu_free_calibrated(const bafu_free *ws, double *resid);
/* The density of the continuous part of the last layer computed, at any x
 * (0 outside its support), exact to rounding; NaN after a discretised run or
 * if the solver fails at x. Undefined before a successful run. */
double bafu_free_density_at(const bafu_free *ws, double x);
/* Distribution function of the last layer computed (density integrated
 * piecewise linearly plus atoms). ws = the bafu_free workspace (void * so it
 * fits bafu_spec_w1). Undefined before a successful run; cannot fail. */
double bafu_free_cdf(const void *ws, double x);

/* The approach of finite-width BFK spectra to the limit (theory/spectrum.md):
 * the Wasserstein-1 distance between the law of the limit at layer index
 * `layer` (bafu_free_run, x2 = d) and the eigenvalues of K at that layer of
 * draws 0..draws-1 of stream `seed` pooled, the inputs all ones (|x|^2 = d, as
 * in the limit), integrated from 0.9 times the lowest atom (or the support's
 * start) to 1.1 times the support's end on 20000 cells, divided by the
 * limit's m1: *w1 as drawn, *w1_shape with each draw's eigenvalues rescaled to
 * mean m1 (the shape alone: the random overall scale of a draw, O(n^-1/2),
 * broadens a pool of draws however many are pooled). p->batch = 1, draws >= 1.
 * Errors: those of bafu_free_run, bafu_net_alloc, bafu_net_draw,
 * bafu_net_run, bafu_spec_dense_run; BAFU_ENOMEM. */
bafu_status bafu_spec_w1_limit(const bafu_net_params *p, size_t layer, uint64_t seed, size_t draws, double *w1,
                               double *w1_shape);

#ifdef __cplusplus
}
#endif

#endif
