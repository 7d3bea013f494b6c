/* maskgrid.c: mask correlations of a residual stream by Gaussian convolutions
 * on a grid (maskgrid.h, theory/moments.md 2.9). */
#include "maskgrid.h"

#include <fftw3.h>
#include <gsl/gsl_math.h> /* M_PI in strict C11 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/net.h"
#include "planner.h"

/* The largest grid tried; a wider range of variances falls back to quadrature. */
#define MG_MAX_POINTS ((size_t)1 << 20)

struct mask_grid {
  bafu_act act;
  int norm;
  size_t L, G;
  double h;
  const double *q;      /* q[0..L], the caller's */
  double *x;            /* G nodes */
  double *nu[2], *tmp, *C;
  double *decay;        /* G/2 + 1: |omega_k|^2 / 2 */
  fftw_complex *F;
  fftw_plan fwd, bwd;
};

/* g_l at the grid nodes into out: phi'(x / c_l)^2 (block l = 1..L), or the
 * readout's phi'(x)^2 (l = L + 1). */
static void mask_values(const mask_grid *g, size_t l, double *out) {
  const double c = g->norm && l <= g->L ? sqrt(g->q[l - 1]) : 1.0;
  for (size_t i = 0; i < g->G; ++i) {
    const double d = bafu_act_dphi(g->act, g->x[i] / c);
    out[i] = d * d;
  }
}

/* The density of N(0, v) at x. */
static double gauss(double x, double v) { return exp(-0.5 * x * x / v) / sqrt(2 * M_PI * v); }

/* v <- K_D * v, the convolution with N(0, D), exact for the band-limited
 * interpolant of the samples (periodic on the grid's box). */
static void convolve(mask_grid *g, double *v, double D) {
  memcpy(g->tmp, v, g->G * sizeof *v);
  fftw_execute(g->fwd);
  const double norm = 1.0 / (double)g->G;
  for (size_t k = 0; k <= g->G / 2; ++k) {
    const double f = exp(-D * g->decay[k]) * norm;
    g->F[k][0] *= f;
    g->F[k][1] *= f;
  }
  fftw_execute(g->bwd);
  memcpy(v, g->tmp, g->G * sizeof *v);
}

bafu_status mg_alloc(bafu_act act, const double *q, size_t L, int norm, mask_grid **out) {
  *out = NULL;
  double qmin = q[0], qmax = q[0];
  for (size_t l = 0; l <= L; ++l) {
    if (!(q[l] > 0 && isfinite(q[l]))) return bafu_error(BAFU_EINVAL, "mask grid: variance %g", q[l]);
    qmin = fmin(qmin, q[l]);
    qmax = fmax(qmax, q[l]);
  }
  /* box: +-12 sqrt(q_max) (the densities there are below e^-72 of their peak;
     a bounded function wrapping around the box is smoothed by at most
     sqrt(q_max) of the path, far from where the densities live). Spacing: the
     narrowest density, N(0, q_min), sampled at h <= 0.7 sqrt(q_min) has
     aliasing error exp(-2 pi^2 q_min / h^2) < 1e-17; the masks are analytic in
     a strip of half-width >= pi/2 (tanh; swish pi, gelu entire) in units of
     c_l >= 1 (or sqrt(q_min) normalised), so h <= 0.25 of that gives
     exp(-2 pi (pi/2) / h) < 1e-17. */
  const double X = 12 * sqrt(qmax);
  const double h0 = fmin(0.7 * sqrt(qmin), 0.25 * (norm ? sqrt(qmin) : 1.0));
  size_t G = 64;
  while (G < MG_MAX_POINTS && 2 * X / (double)G > h0) G *= 2;
  if (2 * X / (double)G > h0) return bafu_error(BAFU_EINVAL, "mask grid: variances from %g to %g need more than %zu points", qmin, qmax, MG_MAX_POINTS);
  const double bytes = (double)G * 6 * sizeof(double) + (double)(G / 2 + 1) * (sizeof(fftw_complex) + sizeof(double));
  bafu_status st = bafu_memory_check(bytes, "depth: the mask correlation grid");
  if (st) return st;
  mask_grid *g = calloc(1, sizeof *g);
  if (!g) return bafu_error(BAFU_ENOMEM, "out of memory for the mask correlation grid");
  g->act = act, g->norm = norm, g->L = L, g->G = G, g->q = q, g->h = 2 * X / (double)G;
  g->x = malloc(G * sizeof(double));
  g->nu[0] = calloc(G, sizeof(double));
  g->nu[1] = calloc(G, sizeof(double));
  g->C = malloc(G * sizeof(double));
  g->tmp = fftw_malloc(G * sizeof(double));
  g->F = fftw_malloc((G / 2 + 1) * sizeof(fftw_complex));
  g->decay = malloc((G / 2 + 1) * sizeof(double));
  if (!g->x || !g->nu[0] || !g->nu[1] || !g->C || !g->tmp || !g->F || !g->decay) {
    mg_free(g);
    return bafu_error(BAFU_ENOMEM, "out of memory for the mask correlation grid");
  }
  for (size_t i = 0; i < G; ++i) g->x[i] = -X + (double)i * g->h;
  for (size_t k = 0; k <= G / 2; ++k) {
    const double w = 2 * M_PI * (double)k / (2 * X);
    g->decay[k] = 0.5 * w * w;
  }
  planner_lock();
  g->fwd = fftw_plan_dft_r2c_1d((int)G, g->tmp, g->F, FFTW_ESTIMATE);
  g->bwd = fftw_plan_dft_c2r_1d((int)G, g->F, g->tmp, FFTW_ESTIMATE);
  planner_unlock();
  if (!g->fwd || !g->bwd) {
    mg_free(g);
    return bafu_error(BAFU_ENOMEM, "FFTW could not plan a transform of %zu points", G);
  }
  *out = g;
  return BAFU_OK;
}

void mg_free(mask_grid *g) {
  if (!g) return;
  planner_lock();
  if (g->fwd) fftw_destroy_plan(g->fwd);
  if (g->bwd) fftw_destroy_plan(g->bwd);
  planner_unlock();
  fftw_free(g->tmp);
  fftw_free(g->F);
  free(g->x);
  free(g->nu[0]);
  free(g->nu[1]);
  free(g->C);
  free(g->decay);
  free(g);
}

void mg_reset(mask_grid *g, int a) { memset(g->nu[a], 0, g->G * sizeof(double)); }

double mg_cross(mask_grid *g, int a, size_t l) {
  mask_values(g, l, g->C);
  double s = 0;
  for (size_t i = 0; i < g->G; ++i) s += g->C[i] * g->nu[a][i];
  return s * g->h;
}

void mg_push(mask_grid *g, int a, size_t l, double gamma, double w) {
  double *nu = g->nu[a];
  mask_values(g, l, g->C);
  const double v = g->q[l - 1];
  for (size_t i = 0; i < g->G; ++i) nu[i] = gamma * nu[i] + w * g->C[i] * gauss(g->x[i], v);
  convolve(g, nu, g->q[l] - g->q[l - 1]);
}

void mg_backward(mask_grid *g, const double *y, double *T) {
  /* C_k(x) = E[sum_{j>k} y_j g_j(X_{j-1}) | X_k = x]: C_L = y_{L+1} g_top,
     D_k = K * C_k (conditioned on X_{k-1}), T_k = int g_k rho_{k-1} D_k,
     C_{k-1} = y_k g_k + D_k. Uses nu[1] as C and C as scratch. */
  const size_t L = g->L, G = g->G;
  double *Ck = g->nu[1], *gk = g->C;
  mask_values(g, L + 1, gk);
  for (size_t i = 0; i < G; ++i) Ck[i] = y[L + 1] * gk[i];
  for (size_t k = L; k >= 1; --k) {
    convolve(g, Ck, g->q[k] - g->q[k - 1]);
    mask_values(g, k, gk);
    const double v = g->q[k - 1];
    double s = 0;
    for (size_t i = 0; i < G; ++i) s += gk[i] * gauss(g->x[i], v) * Ck[i];
    T[k - 1] = s * g->h;
    for (size_t i = 0; i < G; ++i) Ck[i] += y[k] * gk[i];
  }
}
