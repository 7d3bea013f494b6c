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

/* ---------------------------------------------------------------------------
 * Single pairs (maskgrid.h; theory/moments.md 3.3). */

#define MP_MAX_POINTS ((size_t)1 << 16)
#define MP_HERMITE 512 /* terms of the Hermite series at most */

struct mask_pairs {
  bafu_act act;
  int norm, quad; /* quad: the grid would be too fine; bafu_act_mask_corr_quad pair by pair */
  /* normalised tanh, gelu, swish: F(rho) = sum_{n < nc} c[n] rho^n */
  size_t nc;
  double *c;
  /* plain tanh, gelu, swish: g (tanh) or r = g - Phi (gelu, swish: split) on the grid
     x_i = (i - G/2) h of the box [-2R, 2R), zero outside [-R, R] = nodes i0..i1 */
  int split;
  size_t G, i0, i1;
  double h, R;
  double *x, *r, *f, *kern, *e; /* e: exp(-a k^2) table, G/2 + 1 */
  fftw_complex *rhat, *F, *K;
  fftw_plan pf, pk;
};

static double std_cdf(double x) { return 0.5 * erfc(-x * M_SQRT1_2); }

/* g = phi'^2 */
static double mask_g(bafu_act act, double x) {
  const double d = bafu_act_dphi(act, x);
  return d * d;
}

/* The Hermite coefficients of g at unit variance: a_n = E[g(Z) h_n(Z)] with the
 * orthonormal h_n = He_n / sqrt(n!), by the trapezoid rule on [-13, 13] (the
 * integrand sqrt(pdf) g psi_n, psi_n the Hermite functions, is below e^-42
 * beyond; psi_n oscillates with wavenumber at most sqrt(n + 1/2) = 23 for
 * n < 512, far below the rule's pi / 0.05 = 63), and c_n = a_n^2, kept while
 * above 1e-22 of their sum (tanh: 441 terms; gelu, swish: 125). */
static bafu_status hermite_series(mask_pairs *m) {
  const double Z = 13.0, hz = 0.05;
  const size_t nz = (size_t)(2 * Z / hz + 0.5) + 1, N = MP_HERMITE;
  double *a = calloc(N, sizeof *a), *sq = malloc((N + 1) * sizeof *sq);
  m->c = malloc(N * sizeof *m->c);
  if (!a || !sq || !m->c) {
    free(a);
    free(sq);
    return bafu_error(BAFU_ENOMEM, "out of memory for the mask correlation series");
  }
  for (size_t n = 0; n <= N; ++n) sq[n] = sqrt((double)n);
  for (size_t i = 0; i < nz; ++i) {
    const double z = -Z + (double)i * hz;
    const double w = hz * exp(-0.5 * z * z) / sqrt(2 * M_PI) * mask_g(m->act, z);
    double hp = 1.0, hc = z; /* h_0, h_1 */
    a[0] += w;
    a[1] += w * z;
    for (size_t n = 1; n + 1 < N; ++n) {
      const double hn = (z * hc - sq[n] * hp) / sq[n + 1];
      hp = hc;
      hc = hn;
      a[n + 1] += w * hc;
    }
  }
  double total = 0;
  for (size_t n = 0; n < N; ++n) total += m->c[n] = a[n] * a[n];
  m->nc = N;
  while (m->nc > 1 && m->c[m->nc - 1] < 1e-22 * total) --m->nc;
  free(a);
  free(sq);
  return BAFU_OK;
}

/* The grid of a plain smooth activation: r is bounded by 1e-17 beyond R (tanh:
 * sech^4 x < 16 e^-4|x|; gelu: r ~ 2 x pdf(x); swish: r ~ 2 x e^-x), the box
 * [-2R, 2R) holds every lag between two points of [-R, R], and the spacing h
 * resolves the products of r with the densities, the narrowest being
 * N(0, qmin), and (gelu, swish) with Phi(c x), c <= 1: the trapezoid error of
 * a function analytic in the strip |Im x| < a is about
 * 2 int |f(x + i a)| dx e^(-2 pi a / h); on that line |r| <= B, pdf_qmin
 * integrates to e^(a^2 / (2 qmin)) and |Phi(c x)| grows like e^(a^2 / 2), so h
 * is the largest with ln B + a^2 / (2 qmin) [+ a^2 / 2] - 2 pi a / h < -39.2
 * (1e-17), at a = min(a_act, 2 pi qmin / h) (the second: the density's own
 * optimum, the aliasing bound exp(-2 pi^2 qmin / h^2)). a_act and ln B = ln
 * max |r| on Im x = a_act (computed once): tanh 1.4 (below its poles at
 * i pi/2), 7.1; gelu 3, 9.7; swish 2.8 (poles at i pi), 6.7. */
static bafu_status box_alloc(mask_pairs *m, double qmin) {
  m->split = m->act != BAFU_ACT_TANH;
  m->R = m->act == BAFU_ACT_TANH ? 10.5 : m->act == BAFU_ACT_GELU ? 9.5 : 45.0;
  const double aact = m->act == BAFU_ACT_TANH ? 1.4 : m->act == BAFU_ACT_GELU ? 3.0 : 2.8;
  const double lnB = m->act == BAFU_ACT_TANH ? 7.1 : m->act == BAFU_ACT_GELU ? 9.7 : 6.7;
  size_t G = 64;
  for (; G <= MP_MAX_POINTS; G *= 2) {
    const double h = 4 * m->R / (double)G, a = fmin(aact, 2 * M_PI * qmin / h);
    if (lnB + a * a / (2 * qmin) + (m->split ? a * a / 2 : 0.0) - 2 * M_PI * a / h < -39.2) break;
  }
  if (G > MP_MAX_POINTS) {
    m->quad = 1;
    return BAFU_OK;
  }
  bafu_status st = bafu_memory_check((double)G * 9 * sizeof(double), "the mask correlation grid");
  if (st) return st;
  m->G = G;
  m->h = 4 * m->R / (double)G;
  m->x = malloc(G * sizeof(double));
  m->r = malloc(G * sizeof(double));
  m->e = malloc((G / 2 + 1) * sizeof(double));
  m->f = fftw_malloc(G * sizeof(double));
  m->kern = fftw_malloc(G * sizeof(double));
  m->rhat = fftw_malloc((G / 2 + 1) * sizeof(fftw_complex));
  m->F = fftw_malloc((G / 2 + 1) * sizeof(fftw_complex));
  m->K = fftw_malloc((G / 2 + 1) * sizeof(fftw_complex));
  if (!m->x || !m->r || !m->e || !m->f || !m->kern || !m->rhat || !m->F || !m->K)
    return bafu_error(BAFU_ENOMEM, "out of memory for the mask correlation grid");
  planner_lock();
  m->pf = fftw_plan_dft_r2c_1d((int)G, m->f, m->F, FFTW_ESTIMATE);
  m->pk = fftw_plan_dft_r2c_1d((int)G, m->kern, m->K, FFTW_ESTIMATE);
  planner_unlock();
  if (!m->pf || !m->pk) return bafu_error(BAFU_ENOMEM, "FFTW could not plan a transform of %zu points", G);
  m->i0 = G;
  m->i1 = 0;
  for (size_t i = 0; i < G; ++i) {
    const double x = ((double)i - (double)(G / 2)) * m->h;
    m->x[i] = x;
    m->r[i] = 0;
    if (fabs(x) <= m->R) {
      m->r[i] = mask_g(m->act, x) - (m->split ? std_cdf(x) : 0.0);
      if (i < m->i0) m->i0 = i;
      m->i1 = i;
    }
    m->f[i] = m->r[i];
  }
  fftw_execute(m->pf);
  memcpy(m->rhat, m->F, (G / 2 + 1) * sizeof(fftw_complex));
  memset(m->f, 0, G * sizeof(double));
  return BAFU_OK;
}

/* e[k] = exp(-a k^2), k = 0..n-1, with one exp pair per 8 values: inside a
 * run e[k+1] = e[k] rho_k, rho_{k+1} = rho_k exp(-2a) (relative rounding below
 * 8^2 eps / 2 = 7e-15 before the next exact restart). */
static void gauss_table(double a, size_t n, double *e) {
  const double step = exp(-2 * a);
  for (size_t k0 = 0; k0 < n; k0 += 8) {
    const double kk = (double)k0;
    double v = exp(-a * kk * kk), rho = exp(-a * (2 * kk + 1));
    const size_t k1 = k0 + 8 < n ? k0 + 8 : n;
    for (size_t k = k0; k < k1; ++k) {
      e[k] = v;
      v *= rho;
      rho *= step;
    }
    if (v == 0) { /* underflow: the rest is 0 too */
      for (size_t k = k1; k < n; ++k) e[k] = 0;
      return;
    }
  }
}

bafu_status mp_alloc(bafu_act act, int norm, double qmin, mask_pairs **out) {
  *out = NULL;
  if (!(qmin > 0 && isfinite(qmin))) return bafu_error(BAFU_EINVAL, "mask correlations: variance %g", qmin);
  mask_pairs *m = calloc(1, sizeof *m);
  if (!m) return bafu_error(BAFU_ENOMEM, "out of memory for the mask correlations");
  m->act = act;
  m->norm = norm;
  bafu_status st = BAFU_OK;
  if (act == BAFU_ACT_TANH || act == BAFU_ACT_GELU || act == BAFU_ACT_SWISH)
    st = norm ? hermite_series(m) : box_alloc(m, qmin);
  if (st) {
    mp_free(m);
    return st;
  }
  *out = m;
  return BAFU_OK;
}

void mp_free(mask_pairs *m) {
  if (!m) return;
  planner_lock();
  if (m->pf) fftw_destroy_plan(m->pf);
  if (m->pk) fftw_destroy_plan(m->pk);
  planner_unlock();
  free(m->c);
  free(m->x);
  free(m->r);
  free(m->e);
  fftw_free(m->f);
  fftw_free(m->kern);
  fftw_free(m->rhat);
  fftw_free(m->F);
  fftw_free(m->K);
  free(m);
}

/* E[r(X) (K_d * r)(X)] weighted by the N(0, q1) density, by Parseval on the
 * grid: (h / G) sum_k Re(conj(F_k) rhat_k) m_k with F the transform of
 * pdf_q1 r and m_k = exp(-d w_k^2 / 2) (the convolution of the band-limited
 * interpolant; its periodic images are below e^-40 while 9 sqrt(d) <= 2R) or,
 * for wider kernels, the transform of the sampled kernel h pdf_d(lag) cut at
 * |lag| = 2R, which every lag inside [-R, R] stays below. Leaves pdf_q1 r in f. */
static double box_rr(mask_pairs *m, double q1, double d) {
  const size_t G = m->G, c = G / 2, half = c - m->i0;
  const double h = m->h, c1 = 1 / sqrt(2 * M_PI * q1);
  gauss_table(0.5 * h * h / q1, half + 1, m->e);
  for (size_t k = 0; k <= half; ++k) {
    m->f[c + k] = c1 * m->e[k] * m->r[c + k];
    m->f[c - k] = c1 * m->e[k] * m->r[c - k];
  }
  fftw_execute(m->pf);
  const int wide = 9 * sqrt(d) > 2 * m->R;
  if (wide) {
    gauss_table(0.5 * h * h / d, c, m->e);
    const double cd = h / sqrt(2 * M_PI * d);
    m->kern[0] = cd;
    m->kern[c] = 0;
    for (size_t k = 1; k < c; ++k) m->kern[k] = m->kern[G - k] = cd * m->e[k];
    fftw_execute(m->pk);
  } else {
    const double w1 = 2 * M_PI / ((double)G * h);
    gauss_table(0.5 * d * w1 * w1, c + 1, m->e);
  }
  double s = 0;
  for (size_t k = 0; k <= c; ++k) {
    const double mult = wide ? m->K[k][0] : m->e[k];
    const double term = (m->F[k][0] * m->rhat[k][0] + m->F[k][1] * m->rhat[k][1]) * mult;
    s += (k == 0 || k == c) ? term : 2 * term;
  }
  return s * h / (double)G;
}

double mp_eval(mask_pairs *m, double q1, double q2, double d) {
  switch (m->act) {
  case BAFU_ACT_LINEAR: return 1.0;
  case BAFU_ACT_RELU: { /* Sheppard: 1/4 + asin(rho)/(2 pi), rho^2 = q1/q2 = 1 - d/q2 (also normalised) */
    const double x = d / q2;
    return 0.5 - asin(sqrt(x < 1 ? x : 1.0)) / (2 * M_PI);
  }
  case BAFU_ACT_ERF: /* (16/pi^2) det(I + 4 Sigma)^(-1/2), the determinant without cancellation */
    return (16 / (M_PI * M_PI)) / sqrt(m->norm ? 9 + 16 * d / q2 : 1 + 4 * q1 + 4 * q2 + 16 * q1 * d);
  default: break;
  }
  if (m->quad) {
    double M;
    const double v1 = m->norm ? 1.0 : q1, v2 = m->norm ? 1.0 : q2, cov = m->norm ? sqrt(q1 / q2) : q1;
    return bafu_act_mask_corr_quad(m->act, v1, v2, cov, &M) ? NAN : M;
  }
  if (m->norm) { /* Mehler: E[g(U) g(V)] = sum_n a_n^2 rho^n for unit variances */
    const double rho = sqrt(q1 / q2);
    double F = m->c[m->nc - 1];
    for (size_t n = m->nc - 1; n-- > 0;) F = F * rho + m->c[n];
    return F;
  }
  double M = box_rr(m, q1, d);
  if (m->split) { /* g = Phi + r: E[Phi Phi] + E[Phi(X) r(Y)] + E[r(X) Phi(Y)] */
    M += 0.25 + atan2(q1, sqrt(1 + q1 + q2 + q1 * d)) / (2 * M_PI);
    const double beta = q1 / q2, cy = beta / sqrt(1 + q1 * d / q2), cx = 1 / sqrt(1 + d);
    const size_t c = m->G / 2;
    const double c2 = 1 / sqrt(2 * M_PI * q2);
    gauss_table(0.5 * m->h * m->h / q2, c - m->i0 + 1, m->e);
    double s = 0;
    for (size_t i = m->i0; i <= m->i1; ++i) {
      const double x = m->x[i], e2 = m->e[i < c ? c - i : i - c];
      s += m->f[i] * std_cdf(x * cx) + c2 * e2 * m->r[i] * std_cdf(cy * x);
    }
    M += s * m->h;
  }
  return M;
}
