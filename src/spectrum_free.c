/* spectrum_free.c: infinite-width laws of the BFK K_l and of J J^T, layer by
 * layer, by free multiplicative convolution (theory/spectrum.md section 4).
 *
 * Each layer's law is carried as a discrete measure: N quantile points of the
 * continuous part plus its atoms. One layer:
 *   law(P) = law(A^T A): MLP: law(W D^2 W^T) (Silverstein's equation with the
 *            exact discrete law of s phi'(u)^2 from Gauss-Hermite nodes);
 *            linear ResNet: law((I + T)^T (I + T)) from the symmetrised
 *            singular law Bernoulli(+-1) [+] semicircle(beta^2 s);
 *   law(K_l) = c_l + law(K_{l-1}) [x] law(P), by Belinschi-Bercovici
 *            subordination (fixed point / Newton on omega in C \ R+),
 * each evaluated on a grid at x - i eps, then re-discretised by quantiles. */
#include <complex.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_math.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/moments.h"
#include "bafu/spectrum.h"

#include "bafu/layout.h"
#include "spectrum_dyson.h"
#include "spectrum_subord.h"

bafu_free_params bafu_free_params_default(void) { return (bafu_free_params){.atoms = 1500, .grid = 1500}; }

typedef double complex cplx;

/* A discrete law: n points t with weights w (atoms included as points),
 * plus up to 2 distinguished atoms (reported, and subtracted from transforms). */
typedef struct {
  size_t n;
  double *t, *w;
  size_t natoms;
  bafu_spec_atom atom[2];
  double m1, m2; /* carried exactly */
} law;

struct bafu_free {
  bafu_free_params fp;
  law K, P, H;      /* current kernel law, layer law, mask law */
  double *gx, *gd;  /* grid and density (grid points) */
  double *cdf;      /* cumulative (grid points) */
  cplx *om;         /* subordination values per grid point */
  size_t G;
  double lo, hi;
  double glo, ghi;  /* the interval the grid's nodes lie in */
  size_t natoms;
  bafu_spec_atom atom[2];
  double dmass;     /* integral of the density on the grid */
  size_t failed;    /* grid points where the subordination did not converge */
  int exact;        /* the last run solved the subordination pointwise (theory 4.7) */
  int mask_used;    /* exact_run met a tanh or erf layer (a mask-law factor, theory 4.8): on failure, discretise instead */
  sub_factor *fac;  /* its chain of factors (exact runs), capacity ncap */
  double *mt;       /* their mask laws (SUB_MASK): per layer MASK_CAP atoms, then their masses (only
                       for networks with a tanh layer), capacity ntcap layers */
  size_t ntcap;
  cplx *rs;
  size_t ncap;
  sub_chain chain;  /* the last layer's chain */
  /* nonlinear ResNets (theory/spectrum.md 4.9): the Dyson equation over sampled mask paths */
  size_t paths;     /* distinct paths of the last Dyson run (0: not a Dyson run) */
  size_t sampled;   /* paths sampled */
  double *pd2, *pw, *ps2, *pc; /* paths' squared masks and weights; blocks' s2; c_0..c_L */
  cplx *theta, *dscr;
  dy_chain dchain;
  int calib;        /* 1: path weights calibrated; -1: the calibration did not converge; 0: not tried */
  double calib_resid; /* the largest relative error of a calibrated statistic */
};

static int law_alloc(law *L, size_t n) {
  L->t = malloc(n * sizeof(double));
  L->w = malloc(n * sizeof(double));
  L->n = 0;
  L->natoms = 0;
  return L->t && L->w;
}

bafu_status bafu_free_alloc(const bafu_free_params *fp, bafu_free **out) {
  *out = NULL;
  if (fp->atoms < 50 || fp->atoms > 100000) return bafu_error(BAFU_EINVAL, "atoms: must be in [50, 100000]");
  if (fp->grid < 50 || fp->grid > 1000000) return bafu_error(BAFU_EINVAL, "grid: the limit grid must be in [50, 1000000]");
  bafu_free *ws = calloc(1, sizeof *ws);
  if (!ws) return bafu_error(BAFU_ENOMEM, "out of memory");
  ws->fp = *fp;
  ws->G = fp->grid;
  const size_t na = fp->atoms + 4;
  int ok = law_alloc(&ws->K, na) && law_alloc(&ws->P, na) && law_alloc(&ws->H, 256);
  ws->gx = malloc(ws->G * sizeof(double));
  ws->gd = malloc(ws->G * sizeof(double));
  ws->cdf = malloc(ws->G * sizeof(double));
  ws->om = malloc(ws->G * sizeof(cplx));
  if (!ok || !ws->gx || !ws->gd || !ws->cdf || !ws->om) {
    bafu_free_free(ws);
    return bafu_error(BAFU_ENOMEM, "out of memory for the limit workspace");
  }
  *out = ws;
  return BAFU_OK;
}

void bafu_free_free(bafu_free *ws) {
  if (!ws) return;
  law *ls[3] = {&ws->K, &ws->P, &ws->H};
  for (int i = 0; i < 3; ++i) free(ls[i]->t), free(ls[i]->w);
  free(ws->gx), free(ws->gd), free(ws->cdf), free(ws->om);
  free(ws->fac), free(ws->rs), free(ws->mt);
  free(ws->pd2), free(ws->pw), free(ws->ps2), free(ws->pc), free(ws->theta), free(ws->dscr);
  free(ws);
}

const double *bafu_free_x(const bafu_free *ws) { return ws->gx; }
const double *bafu_free_density(const bafu_free *ws) { return ws->gd; }
size_t bafu_free_npoints(const bafu_free *ws) { return ws->G; }
int bafu_free_exact(const bafu_free *ws) { return ws->exact; }
size_t bafu_free_paths(const bafu_free *ws) { return ws->paths; }
size_t bafu_free_sampled(const bafu_free *ws) { return ws->paths ? ws->sampled : 0; }
int bafu_free_calibrated(const bafu_free *ws, double *resid) {
  if (resid) *resid = ws->calib_resid;
  return ws->paths ? ws->calib : 0;
}

double bafu_free_density_at(const bafu_free *ws, double x) {
  if (!ws->exact) return NAN;
  if (ws->chain.n == 0 || !(x > ws->glo && x < ws->ghi)) return 0.0;
  double rho;
  return sub_density(&ws->chain, x, &rho, NULL) ? NAN : rho;
}

double bafu_free_cdf(const void *vws, double x) {
  const bafu_free *ws = vws;
  double a = 0;
  for (size_t k = 0; k < ws->natoms; ++k)
    if (ws->atom[k].x <= x) a += ws->atom[k].mass;
  double cont = 0;
  const size_t G = ws->G;
  if (x >= ws->gx[G - 1])
    cont = ws->cdf[G - 1];
  else if (x > ws->gx[0]) {
    size_t lo = 0, hi = G - 1;
    while (hi - lo > 1) {
      size_t mid = (lo + hi) / 2;
      if (ws->gx[mid] <= x) lo = mid; else hi = mid;
    }
    const double h = ws->gx[hi] - ws->gx[lo], u = x - ws->gx[lo];
    const double slope = (ws->gd[hi] - ws->gd[lo]) / h;
    cont = ws->cdf[lo] + ws->gd[lo] * u + 0.5 * slope * u * u;
  }
  return a + cont;
}

/* Grid on [lo, hi], Chebyshev-clustered at both ends (edge singularities). */
static void make_grid(double *x, size_t G, double lo, double hi) {
  for (size_t k = 0; k < G; ++k) x[k] = lo + (hi - lo) * 0.5 * (1.0 - cos(M_PI * ((double)k + 0.5) / (double)G));
}

/* Trapezoid cumulative integral, raw moments, support trim helpers. */
static void integrate(bafu_free *ws) {
  /* end intervals [glo, x_0] and [x_G-1, ghi]: a power law rho ~ (x - glo)^-alpha
   * fitted to the first two nodes (integrable edge singularity, e.g. J J^T at 0) */
  double first = 0;
  const double *x = ws->gx, *d = ws->gd;
  if (d[0] > 0 && d[1] > 0 && x[0] > ws->glo) {
    double al = -log(d[1] / d[0]) / log((x[1] - ws->glo) / (x[0] - ws->glo));
    al = fmin(fmax(al, -1.0), 0.95);
    first = d[0] * (x[0] - ws->glo) / (1.0 - al);
  }
  ws->cdf[0] = first;
  for (size_t k = 1; k < ws->G; ++k)
    ws->cdf[k] = ws->cdf[k - 1] + 0.5 * (ws->gd[k] + ws->gd[k - 1]) * (ws->gx[k] - ws->gx[k - 1]);
  ws->dmass = ws->cdf[ws->G - 1] + 0.5 * d[ws->G - 1] * (ws->ghi - x[ws->G - 1]);
}

/* Quantile points of the grid density (continuous mass V = 1 - atoms), then
 * the atoms, then an affine correction of the continuous points so that the
 * law has exactly the moments M1, M2 (theory/spectrum.md 4.3). */
static void discretise(bafu_free *ws, law *L, size_t N, double M1, double M2) {
  double am = 0, a1 = 0, a2 = 0;
  for (size_t k = 0; k < ws->natoms; ++k) {
    am += ws->atom[k].mass;
    a1 += ws->atom[k].mass * ws->atom[k].x;
    a2 += ws->atom[k].mass * ws->atom[k].x * ws->atom[k].x;
  }
  const double V = 1.0 - am, Z = ws->dmass;
  size_t k = 0;
  double ybar = 0, y2 = 0;
  for (size_t i = 0; i < N; ++i) {
    const double target = ((double)i + 0.5) / (double)N * Z;
    while (k + 1 < ws->G && ws->cdf[k + 1] < target) ++k;
    double y;
    if (k + 1 >= ws->G) y = ws->gx[ws->G - 1];
    else {
      const double dc = ws->cdf[k + 1] - ws->cdf[k];
      y = ws->gx[k] + (dc > 0 ? (target - ws->cdf[k]) / dc : 0.5) * (ws->gx[k + 1] - ws->gx[k]);
    }
    L->t[i] = y;
    L->w[i] = V / (double)N;
    ybar += y / (double)N;
    y2 += y * y / (double)N;
  }
  const double var = y2 - ybar * ybar;
  const double mc = (M1 - a1) / V, vc = (M2 - a2) / V - mc * mc;
  const double f = var > 0 && vc > 0 ? sqrt(vc / var) : 1.0;
  for (size_t i = 0; i < N; ++i) L->t[i] = mc + (L->t[i] - ybar) * f;
  L->n = N;
  for (size_t a = 0; a < ws->natoms; ++a) {
    L->t[L->n] = ws->atom[a].x;
    L->w[L->n++] = ws->atom[a].mass;
    L->atom[a] = ws->atom[a];
  }
  L->natoms = ws->natoms;
  L->m1 = M1;
  L->m2 = M2;
}

/* ------------------------------------------ Silverstein: law(W X W^T) --- */

/* m(z) = -1 / (z - sum_i p_i t_i / (1 + t_i m)), Stieltjes m = int dF/(lambda - z).
 * Newton from the warm start, fixed point iteration as fallback. */
static cplx silverstein(const law *H, cplx z, cplx m0) {
  cplx m = m0;
  for (int pass = 0; pass < 2; ++pass) {
    int ok = 1;
    for (int it = 0; it < 100; ++it) {
      cplx S = 0, dS = 0;
      for (size_t i = 0; i < H->n; ++i) {
        const cplx den = 1.0 + H->t[i] * m;
        S += H->w[i] * H->t[i] / den;
        dS -= H->w[i] * H->t[i] * H->t[i] / (den * den);
      }
      const cplx F = m * (z - S) + 1.0, dF = z - S - m * dS;
      const cplx step = F / dF;
      m -= step;
      if (!isfinite(creal(m)) || !isfinite(cimag(m))) {
        ok = 0;
        break;
      }
      if (cabs(step) <= 1e-14 * cabs(m)) break;
      if (it == 99) ok = 0;
    }
    if (ok && cimag(m) > 0) return m;
    /* fallback: fixed point from -1/z */
    m = -1.0 / z;
    for (int it = 0; it < 20000; ++it) {
      cplx S = 0;
      for (size_t i = 0; i < H->n; ++i) S += H->w[i] * H->t[i] / (1.0 + H->t[i] * m);
      const cplx mn = -1.0 / (z - S);
      if (cabs(mn - m) <= 1e-12 * cabs(mn)) {
        m = mn;
        break;
      }
      m = mn;
    }
  }
  return m;
}

/* ----------------------------------------- Belinschi-Bercovici [x] --- */

static void psi_eval(const law *L, cplx w, cplx *psi, cplx *dpsi) {
  cplx s = 0, ds = 0;
  for (size_t i = 0; i < L->n; ++i) {
    const cplx den = 1.0 - w * L->t[i];
    s += L->w[i] * w * L->t[i] / den;
    ds += L->w[i] * L->t[i] / (den * den);
  }
  *psi = s;
  *dpsi = ds;
}

/* h(w) = eta(w)/w, eta = psi/(1+psi), and h'(w). */
static void h_eval(const law *L, cplx w, cplx *h, cplx *dh) {
  cplx psi, dpsi;
  psi_eval(L, w, &psi, &dpsi);
  const cplx eta = psi / (1.0 + psi), deta = dpsi / ((1.0 + psi) * (1.0 + psi));
  *h = eta / w;
  *dh = deta / w - eta / (w * w);
}

/* omega_1(z) for z in C+: the fixed point of w -> z h2(z h1(w)); Newton from
 * the warm start, the (convergent) iteration from w = z as fallback. *conv = 0
 * when neither reached its tolerance (the value is then not the solution). */
static cplx bb_omega(const law *A, const law *B, cplx z, cplx w0, int *conv) {
  cplx w = w0, wfp = w0;
  *conv = 0;
  for (int pass = 0; pass < 2; ++pass) {
    int ok = 1;
    for (int it = 0; it < 60; ++it) {
      cplx h1, dh1, h2, dh2;
      h_eval(A, w, &h1, &dh1);
      const cplx u = z * h1;
      h_eval(B, u, &h2, &dh2);
      const cplx F = w - z * h2, dF = 1.0 - z * dh2 * z * dh1;
      const cplx step = F / dF;
      w -= step;
      if (!isfinite(creal(w)) || !isfinite(cimag(w))) {
        ok = 0;
        break;
      }
      if (cabs(step) <= 1e-14 * cabs(w)) break;
      if (it == 59) ok = 0;
    }
    if (ok && cimag(w) > 0 && carg(w) >= carg(z) - 1e-12) {
      *conv = 1;
      return w;
    }
    if (pass == 1 && !*conv) return wfp; /* the iteration from z would repeat the first pass's exactly */
    w = z;
    *conv = 0;
    for (int it = 0; it < 20000; ++it) {
      cplx h1, dh1, h2, dh2;
      h_eval(A, w, &h1, &dh1);
      h_eval(B, z * h1, &h2, &dh2);
      const cplx wn = z * h2;
      if (cabs(wn - w) <= 1e-13 * cabs(wn)) {
        w = wn;
        *conv = 1;
        break;
      }
      w = wn;
    }
    wfp = w;
  }
  return w;
}

/* G(x - i eps) of A [x] B (the atom at 0 removed), via eta(z) = eta_A(omega(z)),
 * z = 1/(x - i eps): G(1/z) = z / (1 - eta). */
static double bb_density(const law *A, const law *B, double x, double eps, double atom0, cplx *wstart, int *conv) {
  const cplx zeta = x - I * eps, z = 1.0 / zeta;
  const cplx w = bb_omega(A, B, z, *wstart, conv);
  *wstart = w;
  cplx psi, dpsi;
  psi_eval(A, w, &psi, &dpsi);
  const cplx eta = psi / (1.0 + psi);
  cplx G = z / (1.0 - eta);
  G -= atom0 / zeta;
  const double d = cimag(G) / M_PI;
  return d > 0 && isfinite(d) ? d : 0.0;
}

/* Evaluate a density function on [lo, hi], trim to its support, and
 * re-evaluate on the trimmed interval. kind: 0 Silverstein (law H), 1 BB
 * (laws A, B), 2 ResNet singular law (sigma2). */
typedef struct {
  int kind;
  const law *A, *B;
  double sigma2, atom0, scale;
} dens_ctx;

/* symmetrised singular law of I + T: G = G_b(zeta - s2 G), G_b(w) = w/(w^2 - 1) */
static cplx resnet_G(double s2, cplx zeta, cplx G0) {
  cplx G = G0;
  for (int pass = 0; pass < 2; ++pass) {
    int ok = 1;
    for (int it = 0; it < 100; ++it) {
      const cplx w = zeta - s2 * G, gb = w / (w * w - 1.0), dgb = -(w * w + 1.0) / ((w * w - 1.0) * (w * w - 1.0));
      const cplx F = G - gb, dF = 1.0 + s2 * dgb;
      const cplx step = F / dF;
      G -= step;
      if (!isfinite(creal(G)) || !isfinite(cimag(G))) {
        ok = 0;
        break;
      }
      if (cabs(step) <= 1e-14 * cabs(G)) break;
      if (it == 99) ok = 0;
    }
    if (ok && cimag(G) < 0) return G;
    G = 1.0 / zeta;
    for (int it = 0; it < 20000; ++it) {
      const cplx w = zeta - s2 * G, Gn = w / (w * w - 1.0);
      if (cabs(Gn - G) <= 1e-13 * cabs(Gn)) {
        G = Gn;
        break;
      }
      G = 0.5 * (G + Gn);
    }
  }
  return G;
}

static void eval_grid(bafu_free *ws, const dens_ctx *c, double lo, double hi) {
  make_grid(ws->gx, ws->G, lo, hi);
  ws->glo = lo, ws->ghi = hi;
  cplx start = 0;
  int first = 1;
  for (size_t k = 0; k < ws->G; ++k) {
    const double x = ws->gx[k];
    const double dx = k + 1 < ws->G ? ws->gx[k + 1] - x : x - ws->gx[k - 1];
    double d = 0;
    if (c->kind == 0) {
      const double eps = 1e-9 * (hi - lo) + 0.02 * dx;
      const cplx z = x + I * eps;
      start = silverstein(c->A, z, first ? -1.0 / z : start);
      cplx m = start + c->atom0 / z;
      d = cimag(m) / M_PI;
    } else if (c->kind == 1) {
      const double eps = 0.02 * dx;
      if (first) start = 1.0 / (x - I * eps);
      int conv;
      d = bb_density(c->A, c->B, x, eps, c->atom0, &start, &conv);
      /* a few isolated points may miss the tolerance (their value is kept, as
         accurate tests of the moments show); more than 1% of the grid means the
         solver is lost, and each failure costs 4e4 iterations: stop */
      if (!conv && ++ws->failed > ws->G / 100 + 1) return;
    } else {
      /* y = x^2 of the symmetrised law nu: rho_P(y) = rho_nu(sqrt y)/sqrt y */
      const double r = sqrt(fmax(x, 0)), eps = 1e-9 + 1e-3 * dx / fmax(2 * r, 1e-3);
      const cplx zeta = r + I * eps;
      start = resnet_G(c->sigma2, zeta, first ? 1.0 / zeta : start);
      d = -cimag(start) / M_PI / fmax(r, 1e-300);
    }
    ws->gd[k] = d > 0 && isfinite(d) ? d : 0.0;
    first = 0;
  }
}

static void eval_trimmed(bafu_free *ws, const dens_ctx *c, double lo, double hi) {
  for (int pass = 0; pass < 2; ++pass) {
  eval_grid(ws, c, lo, hi);
  if (ws->failed > ws->G / 100 + 1) return;
  ws->failed = 0; /* the next grid is counted afresh */
  double mx = 0;
  for (size_t k = 0; k < ws->G; ++k) mx = fmax(mx, ws->gd[k]);
  size_t a = 0, b = ws->G - 1;
  while (a < ws->G && ws->gd[a] <= 1e-7 * mx) ++a;
  while (b > a && ws->gd[b] <= 1e-7 * mx) --b;
  if (a >= b) break;
  const double nlo = a > 0 ? ws->gx[a - 1] : lo, nhi = b + 1 < ws->G ? ws->gx[b + 1] : hi;
  const double m = 0.002 * (nhi - nlo);
  lo = fmax(lo, nlo - m), hi = fmin(hi, nhi + m);
  }
  eval_grid(ws, c, lo, hi);
}

/* ------------------------------------------------------------ driver --- */

/* The law of a I alone: the atom (a, 1) and an empty density on a grid
 * around it (the representation of a layer whose K is a multiple of I). */
static void atom_only(bafu_free *ws, double a) {
  make_grid(ws->gx, ws->G, a - 0.5 * fabs(a) - 1e-12, a + 0.5 * fabs(a) + 1e-12);
  ws->glo = ws->gx[0], ws->ghi = ws->gx[ws->G - 1];
  memset(ws->gd, 0, ws->G * sizeof(double));
  integrate(ws);
  ws->natoms = 1;
  ws->atom[0] = (bafu_spec_atom){a, 1.0};
}

/* law(s phi'(u)^2), u ~ N(0, q): exact for relu/linear, 64-point
 * Gauss-Hermite otherwise (in H). Returns the atom at 0. */
static bafu_status mask_law(bafu_free *ws, const bafu_stage *sg, double q) {
  law *H = &ws->H;
  const double s = sg->gain;
  if (sg->act == BAFU_ACT_LINEAR) {
    H->n = 1, H->t[0] = s, H->w[0] = 1;
    return BAFU_OK;
  }
  if (sg->act == BAFU_ACT_RELU) {
    H->n = 2, H->t[0] = 0, H->w[0] = 0.5, H->t[1] = s, H->w[1] = 0.5;
    return BAFU_OK;
  }
  gsl_integration_fixed_workspace *w = gsl_integration_fixed_alloc(gsl_integration_fixed_hermite, 64, 0, 0.5, 0, 0);
  if (!w) return bafu_error(BAFU_ENOMEM, "out of memory (quadrature)");
  const double *xn = gsl_integration_fixed_nodes(w), *wn = gsl_integration_fixed_weights(w);
  /* weight exp(-x^2/2) (b = 0.5): nodes are standard normal points * 1, weights sum to sqrt(2 pi) */
  double tot = 0;
  for (size_t i = 0; i < 64; ++i) tot += wn[i];
  for (size_t i = 0; i < 64; ++i) {
    const double d = bafu_act_dphi(sg->act, sqrt(q) * xn[i]);
    H->t[i] = s * d * d;
    H->w[i] = wn[i] / tot;
  }
  H->n = 64;
  gsl_integration_fixed_free(w);
  return BAFU_OK;
}

static void set_moments_exact(law *L) {
  double m1 = 0, m2 = 0;
  for (size_t i = 0; i < L->n; ++i) m1 += L->w[i] * L->t[i], m2 += L->w[i] * L->t[i] * L->t[i];
  L->m1 = m1, L->m2 = m2;
}

static void raw_moments(const bafu_free *ws, double *raw) {
  for (int p = 0; p < 5; ++p) raw[p] = 0;
  for (size_t k = 0; k + 1 < ws->G; ++k) {
    const double h = ws->gx[k + 1] - ws->gx[k];
    double xp0 = 1, xp1 = 1;
    for (int p = 0; p < 5; ++p) {
      raw[p] += 0.5 * h * (ws->gd[k] * xp0 + ws->gd[k + 1] * xp1);
      xp0 *= ws->gx[k], xp1 *= ws->gx[k + 1];
    }
  }
  for (size_t a = 0; a < ws->natoms; ++a)
    for (int p = 0; p < 5; ++p) raw[p] += ws->atom[a].mass * pow(ws->atom[a].x, p);
}

/* ---------------------------------------- exact (pointwise) method --- */

/* Every factor up to `layer` has a Sigma-transform the chain can evaluate:
 * dense layers (relu and linear masks explicitly; tanh and erf through their
 * mask laws on a converged trapezoid rule, theory/spectrum.md 4.8; not gelu
 * and swish, whose phi' vanishes at a point, so that their mask laws have a
 * density ~ t^(-1/2) near 0 that atoms do not resolve), linear blocks of one
 * layer (4.7). */
static int exact_applies(const bafu_layout *lay, size_t layer) {
  for (size_t j = 1; j <= layer; ++j) {
    const bafu_stage *sg;
    bafu_layout_entry(lay, j, &sg, NULL);
    if (sg->kind == BAFU_STAGE_DENSE && sg->act != BAFU_ACT_RELU && sg->act != BAFU_ACT_LINEAR && sg->act != BAFU_ACT_TANH &&
        sg->act != BAFU_ACT_ERF)
      return 0;
    if (sg->kind == BAFU_STAGE_BLOCK && (sg->act != BAFU_ACT_LINEAR || sg->depth != 1)) return 0;
  }
  return 1;
}

#define MASK_CAP 4096 /* atoms of a mask law at most: its moments must agree by step 2^-6 (then the
                         law at 2^-7 has 2433 atoms before the merge; at 2^-8, 4865: refused) */

/* The densities at the increasing points x[0..n-1], by continuation along
 * them (Newton from the neighbour's root), checked at every 16th point and
 * the last against the continuation from x + iE. A block (the points since
 * the previous check) whose check fails (Newton from the neighbour fails
 * there, or differs by over 1e-10) is computed again from x + iE, and so is
 * a point where Newton from the neighbour fails; the continuation goes on
 * from there. (Near a square-root edge Newton's stopping rule, steps of
 * 1e-13 |t|, alone moves the density by about 1e-13 span / distance to the
 * edge: the blocks next to an edge are the ones computed again.) Returns n,
 * or the first point where the subordination did not converge. */
static size_t density_sorted(const sub_chain *ch, const double *x, size_t n, int predict, double *rho) {
  size_t from = 0; /* the block's first point */
  cplx t = 0, tp = 0; /* the roots at x[k-1] and x[k-2] */
  for (size_t k = 0; k < n; ++k) {
    size_t bad = n; /* a point that did not converge */
    /* predict: Newton from the power law in x - c_L through the previous two
       roots (nodes of a quadrature spanning decades next to a hard edge,
       where t is close to a power of x - c_L), then from the previous root */
    cplx guess = t;
    if (predict && k >= 2 && tp != 0 && t != 0 && x[k - 2] > ch->cL && x[k - 1] > x[k - 2] && x[k] > x[k - 1]) {
      const double w2 = x[k - 2] - ch->cL, w1 = x[k - 1] - ch->cL, w = x[k] - ch->cL;
      const cplx g = t * cexp(clog(t / tp) * (log(w / w1) / log(w1 / w2)));
      if (isfinite(creal(g)) && isfinite(cimag(g))) guess = g;
    }
    tp = t;
    if (k % 16 == 0 || k + 1 == n) {
      /* the continuation's own step first (its t and branch state), then the
         full one, which leaves t and the branch state at this point */
      double warm = NAN, r;
      int wfail = k > 0;
      if (k > 0) {
        cplx tw = guess;
        wfail = sub_density_warm(ch, x[k], &warm, &tw);
        if (wfail && guess != t) tw = t, wfail = sub_density_warm(ch, x[k], &warm, &tw);
      }
      if (sub_density(ch, x[k], &r, &t)) {
        bad = k;
      } else if (k > 0 && (wfail || !(fabs(warm - r) <= 1e-10 * r))) {
        for (size_t i = from; i < k && bad == n; ++i)
          if (sub_density(ch, x[i], &rho[i], NULL)) bad = i;
        if (bad == n && sub_density(ch, x[k], &r, &t)) bad = k; /* back to this point */
        tp = 0; /* no history across a recomputed block */
      }
      rho[k] = r;
      from = k + 1;
    } else {
      cplx tw = guess;
      if (sub_density_warm(ch, x[k], &rho[k], &tw) && (guess == t || (tw = t, sub_density_warm(ch, x[k], &rho[k], &tw)))) {
        tw = t;
        if (sub_density(ch, x[k], &rho[k], &tw)) bad = k;
      }
      t = tw;
    }
    if (bad < n) return bad;
  }
  return n;
}

/* The moment integrals of exact_raw in v: x^p rho(x) dx/dv with
 * x = lo + span g(v), g(v) = v^k (1 + k v (1 - v)) (theory/spectrum.md 4.7).
 * g ~ v^k at 0: at a hard edge at 0 (J J^T, x^(-m/(m+1)) near 0 with m
 * singular factors) k = m + 1 makes the integrand bounded; at a hard edge at
 * c_L > 0 (the BFK: only the top factor's MP edge, (x - c_L)^(-1/2)) k = 2
 * (a larger k would sample x - c_L where it has lost digits to c_L). At 1,
 * g'(1) = 0: the square-root upper edge's integrand vanishes like (1 - v)^2. */
typedef struct {
  double lo, span, k;
} quad_map;

static double quad_x(const quad_map *m, double v) {
  return m->lo + m->span * pow(v, m->k - 1) * v * (1 + m->k * v * (1 - v));
}

static double quad_integrand(const quad_map *m, double v, double rho, int p) {
  const double vk1 = pow(v, m->k - 1), x = m->lo + m->span * vk1 * v * (1 + m->k * v * (1 - v));
  return rho * gsl_pow_int(x, p) * m->span * m->k * vk1 * (1 - v) * (1 + (m->k + 2) * v);
}

/* GSL's 21-point Gauss-Kronrod rule (gsl_integration_qk21) on a panel whose
 * densities are already known: a first call records the rule's nodes, a
 * second one reads the densities back in the same order. */
enum { QK = 21, QPANELS = 400 };
typedef struct {
  double a, b;
  double v[QK], rho[QK]; /* the rule's nodes and their densities */
  double res[5], err[5];
  double pe;  /* the error of the panel it was bisected from (relative, as e below) */
  int frozen; /* bisecting it (error below 1e-7) left the error where it was (within 4x): noise */
} quad_panel;

typedef struct {
  const quad_map *m;
  quad_panel *pan;
  int p;
  size_t i;
  int mismatch;
} quad_rule;

static double quad_record(double v, void *vp) {
  quad_rule *r = vp;
  if (r->i < QK) r->pan->v[r->i] = v;
  r->i++;
  return 0;
}

static double quad_read(double v, void *vp) {
  quad_rule *r = vp;
  if (r->i >= QK || v != r->pan->v[r->i]) { /* not the recorded rule */
    r->mismatch = 1;
    return 0;
  }
  return quad_integrand(r->m, v, r->pan->rho[r->i++], r->p);
}

typedef struct {
  double x;
  size_t i; /* panel * QK + node, or QPANELS * QK + h for the head's points */
} quad_node;

static int quad_node_cmp(const void *a, const void *b) {
  const double x = ((const quad_node *)a)->x, y = ((const quad_node *)b)->x;
  return (x > y) - (x < y);
}

/* raw[p] = int x^p rho + atoms over [lo, hi], in v (above): adaptive, or a
 * 128-point Gauss-Legendre rule in theta, v = (1 - cos theta)/2.
 *
 * Adaptive (theory/spectrum.md 4.7): panels of GSL's 21-point Gauss-Kronrod
 * rule on [vh, 1], the five moments on the same nodes, bisected until every
 * moment's estimated error is at most 1e-11 of it (or QPANELS panels). Each
 * round's new nodes are evaluated together in increasing x by density_sorted
 * (a continuation from x + iE costs a tanh chain about 18 times a step of the
 * continuation along the nodes). The panels bisected are the largest errors
 * (relative to their moment) whose sum leaves at most half the tolerance. */
static int exact_raw(const sub_chain *ch, double lo, double hi, int adaptive, double *raw) {
  const size_t NG = 128;
  /* k: a hard edge at 0 of J J^T goes as x^(-m/(m+1)) with m the number of
     factors singular at 0: all for linear (Fuss-Catalan), all but the first for
     ReLU (its {0, s} mask makes W D^2 W^T of ratio 1/2, gapped) */
  const double m = (double)ch->n - (ch->f[0].kind == SUB_RELU ? 1 : 0);
  const quad_map map = {.lo = lo, .span = hi - lo, .k = lo != ch->cL ? 1.0 : ch->cL == 0 ? m + 1 : 2.0};
  /* The Gauss-Legendre rule: nodes below v0 = 1e-6 (x - lo below 1e-6^k of
     the span) are moved to v0. There a ReLU network's bottom variable t -> -1
     with 1 + t ~ v, whose digits are lost further down, and a linear
     network's t ~ 1/v grows. */
  int mask = 0;
  for (size_t l = 0; l < ch->n; ++l) mask |= ch->f[l].kind == SUB_MASK;
  /* chains of smooth masks (4.8) at a hard edge at 0: down to 1e-12 in v (the
     mass near 0 of a mask law whose phi' has a zero decays slowly), or to x
     ~ 1e-280 of the span for a deep chain (large k) */
  const double v0 = map.k > 1 ? (mask && ch->cL == 0 ? fmax(1e-12, pow(1e-280, 1.0 / map.k)) : 1e-6) : 0;
  /* The adaptive rule: the head [0, vh] separately.
     - J J^T of ReLU factors (a hard edge at 0): the
       density is a series in x^(1/k), so the integrand is a series in v, but
       with coefficients growing like k^j (the law sits at v ~ 1 - O(1/k));
       and a ReLU chain's density has a rounding noise of about 1e-15/v^2
       (depth 32: 2e-3 at v = 1e-6, 2e-5 at 1e-5). So vh = 1e-3/k, and the
       head is the quadratic through vh, 2 vh and 3 vh integrated over [0, vh]
       (weights 23/12, -16/12, 5/12): error O((k vh)^3 vh).
     - Otherwise (chains of masks; the BFK's hard edge at c_L > 0, whose law
       near c_L can have a scale far below the span: a linear BFK at depth 64
       lost 1.6e-8 of its mass with the quadratic head; a critical linear
       ResNet's J J^T, x^(-1/3) at 0: 6.8e-6): vh = v0, and the
       integrand is taken as a power law f ~ v^b fitted at v0 and 2 v0 and
       integrated exactly: v0 f(v0)/(1 + b). */
  int relu = 1; /* a ReLU J J^T: its hard edge at 0 is x^(-m/(m+1)) (a critical linear ResNet's is not) */
  for (size_t l = 0; l < ch->n; ++l) relu &= ch->f[l].kind == SUB_RELU;
  const int quad_head = relu && map.k > 1 && ch->cL == 0;
  const double vh = quad_head ? 1e-3 / map.k : v0;
  const size_t nh = vh > 0 ? quad_head ? 3 : 2 : 0;
  if (!adaptive) {
    gsl_integration_glfixed_table *tb = gsl_integration_glfixed_table_alloc(NG);
    if (!tb) return -1;
    double v[128], x[128], rho[128];
    for (size_t i = 0; i < NG; ++i) {
      double th, wt;
      gsl_integration_glfixed_point(0, M_PI, i, &th, &wt, tb);
      v[i] = fmax(0.5 * (1 - cos(th)), v0), x[i] = quad_x(&map, v[i]);
    }
    const int bad = density_sorted(ch, x, NG, 1, rho) < NG;
    for (int p = 0; p < 5; ++p) raw[p] = 0;
    for (size_t i = 0; i < NG && !bad; ++i) {
      double th, wt;
      gsl_integration_glfixed_point(0, M_PI, i, &th, &wt, tb);
      const double xi = quad_x(&map, v[i]);
      const double r = quad_integrand(&map, v[i], rho[i], 0) * 0.5 * sin(th) * wt;
      double xp = 1;
      for (int p = 0; p < 5; ++p) raw[p] += r * xp, xp *= xi;
    }
    gsl_integration_glfixed_table_free(tb);
    return bad ? -1 : 0;
  }
  quad_panel *pan = malloc(QPANELS * sizeof *pan);
  quad_node *nd = malloc((QPANELS * QK + 3) * sizeof *nd);
  double *xs = malloc((QPANELS * QK + 3) * sizeof *xs), *rs = malloc((QPANELS * QK + 3) * sizeof *rs);
  size_t *todo = malloc(QPANELS * sizeof *todo);
  int st = pan && nd && xs && rs && todo ? 0 : -1;
  size_t np = 1, nnew = 1;
  double head[3] = {0, 0, 0}; /* the densities at vh, 2 vh, 3 vh */
  double best = INFINITY;  /* the least error estimate so far (relative) */
  int stale = 0;           /* rounds since */
  if (!st) {
    pan[0] = (quad_panel){.a = vh, .b = 1, .pe = INFINITY};
    todo[0] = 0;
  }
  for (int round = 0; !st && nnew > 0; ++round) {
    /* the new panels' nodes, then their densities in increasing x */
    size_t nn = 0;
    for (size_t j = 0; j < nnew; ++j) {
      quad_panel *P = &pan[todo[j]];
      quad_rule r = {.m = &map, .pan = P};
      gsl_function F = {quad_record, &r};
      double res, err, ra, rb;
      gsl_integration_qk21(&F, P->a, P->b, &res, &err, &ra, &rb);
      if (r.i != QK) {
        st = -1;
        break;
      }
      for (size_t i = 0; i < QK; ++i) nd[nn++] = (quad_node){quad_x(&map, P->v[i]), todo[j] * QK + i};
    }
    if (round == 0)
      for (size_t h = 0; h < nh; ++h) nd[nn++] = (quad_node){quad_x(&map, (double)(h + 1) * vh), QPANELS * QK + h};
    if (st) break;
    qsort(nd, nn, sizeof *nd, quad_node_cmp);
    for (size_t i = 0; i < nn; ++i) xs[i] = nd[i].x;
    if (density_sorted(ch, xs, nn, 1, rs) < nn) {
      st = -1;
      break;
    }
    for (size_t i = 0; i < nn; ++i) {
      const size_t id = nd[i].i;
      if (id >= QPANELS * QK) head[id - QPANELS * QK] = rs[i];
      else pan[id / QK].rho[id % QK] = rs[i];
    }
    for (size_t j = 0; j < nnew; ++j) {
      quad_panel *P = &pan[todo[j]];
      for (int p = 0; p < 5; ++p) {
        quad_rule r = {.m = &map, .pan = P, .p = p};
        gsl_function F = {quad_read, &r};
        double ra, rb;
        gsl_integration_qk21(&F, P->a, P->b, &P->res[p], &P->err[p], &ra, &rb);
        if (r.mismatch || r.i != QK) st = -1;
      }
    }
    /* the totals; each panel's error e relative to them (the largest over p);
       a bisection that did not lower it freezes both halves; the error of the
       others */
    double tot[5] = {0}, terr[5] = {0};
    for (size_t j = 0; j < np; ++j)
      for (int p = 0; p < 5; ++p) tot[p] += pan[j].res[p];
    for (size_t j = 0; j < np; ++j) {
      double e = 0;
      for (int p = 0; p < 5; ++p) e = fmax(e, pan[j].err[p] / fabs(tot[p]));
      rs[j] = e;
    }
    for (size_t j = 0; j + 1 < nnew; j += 2) {
      const double pe = pan[todo[j]].pe; /* small already: no improvement is noise, not a feature unresolved */
      const double e2 = rs[todo[j]] + rs[todo[j + 1]]; /* noise stays put; a jump is a feature found */
      if (pe <= 1e-7 && e2 >= pe && e2 <= 4 * pe) pan[todo[j]].frozen = pan[todo[j + 1]].frozen = 1;
    }
    for (size_t j = 0; j < np; ++j)
      for (int p = 0; p < 5 && !pan[j].frozen; ++p) terr[p] += pan[j].err[p];
    int done = 1;
    double erel = 0;
    for (int p = 0; p < 5; ++p) done &= terr[p] <= 1e-11 * fabs(tot[p]), erel = fmax(erel, terr[p] / fabs(tot[p]));
    /* the density's own noise (a tanh with biases: 1e-10 of the mass; a deep
       ReLU J J^T next to its hard edge, x ~ 1e-170 of the span: 1e-9) stops
       the error from falling: once below 1e-7, three rounds that do not halve
       it end it */
    if (erel < 0.5 * best) best = erel, stale = 0;
    else if (best <= 1e-7 && ++stale == 3) done = 1;
    for (int p = 0; p < 5; ++p) raw[p] = tot[p];
    nnew = 0;
    if (done || st || np == QPANELS) break;
    /* bisect the largest errors until the rest sums to half the tolerance */
    double rest = 0;
    size_t na = 0;
    for (size_t j = 0; j < np; ++j)
      if (!pan[j].frozen) rest += rs[j], nd[na++] = (quad_node){-rs[j], j};
    qsort(nd, na, sizeof *nd, quad_node_cmp);
    for (size_t i = 0; i < na && rest > 0.5e-11 && np < QPANELS; ++i) {
      const size_t j = nd[i].i;
      const double mid = pan[j].a + (pan[j].a == vh ? 0.15 : 0.5) * (pan[j].b - pan[j].a);
      rest -= rs[j];
      pan[np] = (quad_panel){.a = mid, .b = pan[j].b, .pe = rs[j]};
      pan[j].b = mid, pan[j].pe = rs[j];
      todo[nnew++] = j, todo[nnew++] = np++;
    }
  }
  for (int p = 0; p < 5 && !st && nh > 0; ++p) { /* the head [0, vh] */
    double f[3];
    for (size_t h = 0; h < nh; ++h) f[h] = quad_integrand(&map, (double)(h + 1) * vh, head[h], p);
    if (nh == 3) {
      raw[p] += vh * (23 * f[0] - 16 * f[1] + 5 * f[2]) / 12;
    } else {
      const double b = f[0] > 0 && f[1] > 0 ? log2(f[1] / f[0]) : 0;
      raw[p] += vh * f[0] / (1 + fmax(b, -0.5));
    }
  }
  free(pan), free(nd), free(xs), free(rs), free(todo);
  return st;
}

static bafu_status exact_run(bafu_free *ws, const bafu_layout *lay, const bafu_moments_layer *o, bafu_spec_object obj,
                             size_t layer, bafu_free_layer *info) {
  if (ws->ncap < layer + 1) {
    sub_factor *f = realloc(ws->fac, (layer + 1) * sizeof *f);
    if (f) ws->fac = f;
    cplx *r = realloc(ws->rs, 4 * (layer + 1) * sizeof *r);
    if (r) ws->rs = r;
    if (!f || !r) return bafu_error(BAFU_ENOMEM, "out of memory for the limit workspace");
    ws->ncap = layer + 1;
  }
  int tanh_layer = 0; /* 64 KB of mask law per layer, only where a layer needs one (tanh, erf) */
  for (size_t j = 1; j <= layer; ++j) {
    const bafu_stage *sg;
    bafu_layout_entry(lay, j, &sg, NULL);
    tanh_layer |= sg->kind == BAFU_STAGE_DENSE && (sg->act == BAFU_ACT_TANH || sg->act == BAFU_ACT_ERF);
  }
  if (tanh_layer && ws->ntcap < layer + 1) {
    double *mt = realloc(ws->mt, 2 * MASK_CAP * (layer + 1) * sizeof *mt);
    if (!mt) return bafu_error(BAFU_ENOMEM, "out of memory for the limit workspace");
    ws->mt = mt, ws->ntcap = layer + 1;
  }
  ws->exact = 1;
  ws->chain = (sub_chain){.n = 0, .f = ws->fac, .rs = ws->rs};
  double a = obj == BAFU_SPEC_JACOBIAN ? 1.0 : o[0].c; /* K_b = a I while degenerate */
  size_t b = 0;
  double m1 = a, m2 = a * a, atom0 = 0; /* carried moments; X_j's atom at 0 */
  gsl_error_handler_t *old = gsl_set_error_handler_off();
  bafu_status st = BAFU_OK;
  for (size_t j = 0; j <= layer; ++j) {
    const double c = obj == BAFU_SPEC_JACOBIAN ? 0.0 : o[j].c;
    bafu_free_layer *L = &info[j];
    memset(L, 0, sizeof *L);
    L->label = o[j].label;
    if (j > 0) {
      const bafu_stage *sg;
      bafu_layout_entry(lay, j, &sg, NULL);
      double p1, p2, q0 = 0;
      sub_factor *f = &ws->fac[j];
      if (sg->kind == BAFU_STAGE_DENSE) {
        bafu_act_moments am;
        if ((st = bafu_act_moments_eval(sg->act, o[j].q_in, &am))) break;
        const double s = sg->gain;
        p1 = s * am.dphi2, p2 = s * s * (am.dphi2 * am.dphi2 + am.dphi4);
        if (sg->act == BAFU_ACT_RELU || sg->act == BAFU_ACT_LINEAR) {
          *f = (sub_factor){.kind = sg->act == BAFU_ACT_RELU ? SUB_RELU : SUB_LINEAR, .s = s};
        } else {
          /* tanh, erf. No atom of P at 0: an atom t = 0 only where sech^2 underflows (|u| over
             about 350) may carry a mass below rounding. A law the rule cannot resolve,
             or atoms at 0 of more mass: the discretised method serves it (bafu_free_run) */
          ws->mask_used = 1;
          double *t = ws->mt + 2 * MASK_CAP * j, *w = t + MASK_CAP, zero = 0;
          const double mm1 = s * am.dphi2, mm2 = s * s * am.dphi4;
          const size_t nt = sub_mask_law(sg->act, s, o[j].q_in, mm1, mm2, t, w, MASK_CAP);
          for (size_t i = 0; i < nt; ++i)
            if (!(t[i] > 0)) zero += w[i];
          if (!nt || zero > 1e-15) {
            st = BAFU_ENUMERIC;
            break;
          }
          *f = (sub_factor){.kind = SUB_MASK, .s = s, .t = t, .w = w, .nt = nt, .m1 = mm1, .m2 = mm2};
        }
        if (sg->act == BAFU_ACT_RELU) q0 = 0.5;
      } else {
        const double s2 = sg->scale * sg->scale * sg->gain / (sg->norm ? o[j].q_in : 1.0);
        p1 = 1 + s2, p2 = 1 + 4 * s2 + 2 * s2 * s2;
        *f = (sub_factor){.kind = SUB_RESNET, .s = s2};
      }
      f->cbelow = obj == BAFU_SPEC_JACOBIAN ? 0.0 : o[j - 1].c;
      if (a == 0 && b == j - 1) {
        /* K_{j-1} = 0: K_j = c I, still a multiple of I */
        a = c, b = j, m1 = c, m2 = c * c;
      } else {
        /* the atom of X_j at 0: P's, or K_{j-1}'s when K_{j-1} = X_{j-1} (no shift) */
        const double k0 = j - 1 > b && f->cbelow == 0 ? atom0 : 0.0;
        atom0 = fmax(k0, q0);
        const double M1 = m1 * p1, M2 = m2 * p1 * p1 + m1 * m1 * p2 - m1 * m1 * p1 * p1;
        m2 = c * c + 2 * c * M1 + M2;
        m1 = c + M1;
      }
    }
    L->m1 = m1, L->m2 = m2;
    if (j <= b) { /* a multiple of I */
      L->natoms = 1;
      L->atom[0] = (bafu_spec_atom){m1, 1.0};
      for (int p = 0; p < 5; ++p) L->raw[p] = pow(m1, p);
      L->lo = L->hi = m1;
      continue;
    }
    if (atom0 > 0) {
      L->natoms = 1;
      L->atom[0] = (bafu_spec_atom){c, atom0};
    }
    ws->chain = (sub_chain){.n = j - b, .f = ws->fac + b + 1, .a = a, .cL = c, .scale = m1 - c, .rs = ws->rs};
    if (ws->fp.last_only && j < layer) continue;
    double lo, hi;
    int e1 = sub_edges(&ws->chain, &lo, &hi), e2 = e1 ? 0 : exact_raw(&ws->chain, lo, hi, j == layer, L->raw);
    if (e1 || e2) {
      st = bafu_error(BAFU_ENUMERIC, "layer %d: the subordination equations of the limit did not converge", o[j].label);
      break;
    }
    L->lo = lo, L->hi = hi;
    for (size_t a0 = 0; a0 < L->natoms; ++a0)
      for (int p = 0; p < 5; ++p) L->raw[p] += L->atom[a0].mass * pow(L->atom[a0].x, p);
    /* a law that has lost a tenth of its mass is no result: an edge scan that
       stepped over the true edge (a tanh or erf with tiny sigma_w2 and biases at
       depth 40: Z'(0) ~ 1e49, a false edge at 2e16 and a density of 0) */
    if (!(fabs(L->raw[0] - 1) <= 0.1)) {
      st = bafu_error(BAFU_ENUMERIC, "layer %d: the limit's density integrates to %g, not 1", o[j].label, L->raw[0]);
      break;
    }
  }
  gsl_set_error_handler(old);
  if (st) return st;
  const bafu_free_layer *L = &info[layer];
  ws->natoms = L->natoms;
  for (size_t k = 0; k < L->natoms; ++k) ws->atom[k] = L->atom[k];
  if (layer <= b) {
    ws->chain.n = 0;
    atom_only(ws, L->atom[0].x);
    return BAFU_OK;
  }
  make_grid(ws->gx, ws->G, L->lo, L->hi);
  ws->glo = L->lo, ws->ghi = L->hi;
  /* continuation along the grid (density_sorted) */
  const size_t bad = density_sorted(&ws->chain, ws->gx, ws->G, 0, ws->gd);
  if (bad < ws->G)
    return bafu_error(BAFU_ENUMERIC, "layer %d: the subordination equations of the limit did not converge at x = %g",
                      L->label, ws->gx[bad]);
  integrate(ws);
  return BAFU_OK;
}

/* ------------------------------- nonlinear ResNets: the Dyson equation --- */

/* default paths: ReLU masks take two values (paths merge, and calibration
   gains less: 2% at 4096 against 0.03% at 16384, depth 16); continuous masks
   never merge, and calibrated 2048 are within 0.12% of 8192 at depth 16
   (theory/spectrum.md 4.9) */
enum { DY_PATHS_RELU = 16384, DY_PATHS_SMOOTH = 4096, DY_COARSE = 64 };
#define DY_TOL 1e-10
#define DY_SEED 0x44797365ULL /* the paths' stream (fixed: the limit is deterministic) */

/* -Im g(x + i e) / pi from the self-energy th (the neighbour's, updated) if
 * given and it converges, else walked down from x + i E (E the law's spread)
 * in steps of 4. Returns -1 if that fails too. */
static int dy_smoothed(bafu_free *ws, double x, double e, double E, double *rho, cplx *th) {
  const size_t n = 2 * ws->dchain.L;
  cplx g;
  if (th && dy_solve(&ws->dchain, x + I * e, DY_TOL, th, &g, ws->dscr) == 0) {
    *rho = -cimag(g) / M_PI;
    return 0;
  }
  cplx *t = ws->theta + 2 * n;
  memset(t, 0, n * sizeof *t);
  for (double f = fmax(E, e);; f = fmax(0.25 * f, e)) {
    if (dy_solve(&ws->dchain, x + I * f, DY_TOL, t, &g, ws->dscr)) return -1;
    if (f == e) break;
  }
  if (th) memcpy(th, t, n * sizeof *t);
  *rho = -cimag(g) / M_PI;
  return 0;
}

/* rho at x: -Im g at x + i dx/4 and x + i dx/8 extrapolated linearly,
 * rho = 2 rho(dx/8) - rho(dx/4) (theory/spectrum.md 4.9); warm from
 * theta[0..2n) (the two self-energies, updated), or cold (walked down) with
 * warm = 0, which leaves theta at this point's solutions. */
static int dy_point(bafu_free *ws, double x, double dx, double E, int warm, double *rho) {
  const size_t n = 2 * ws->dchain.L;
  double r1, r2;
  if (warm) {
    if (dy_smoothed(ws, x, 0.25 * dx, E, &r1, ws->theta) || dy_smoothed(ws, x, 0.125 * dx, E, &r2, ws->theta + n))
      return -1;
  } else {
    if (dy_smoothed(ws, x, 0.25 * dx, E, &r1, NULL)) return -1;
    memcpy(ws->theta, ws->theta + 2 * n, n * sizeof(cplx));
    if (dy_smoothed(ws, x, 0.125 * dx, E, &r2, NULL)) return -1;
    memcpy(ws->theta + n, ws->theta + 2 * n, n * sizeof(cplx));
  }
  *rho = fmax(2 * r2 - r1, 0.0);
  return 0;
}

/* G points on [lo, hi] (make_grid), continued from the left end. The
 * continuation can step onto a spurious solution (density 0 inside the
 * support), so every 16th point and the last are also solved cold; a block
 * whose check differs by over 1e-6 is solved cold point by point. */
static int dy_grid(bafu_free *ws, size_t G, double lo, double hi, double E) {
  make_grid(ws->gx, G, lo, hi);
  ws->glo = lo, ws->ghi = hi;
  size_t from = 0;
  for (size_t k = 0; k < G; ++k) {
    const double x = ws->gx[k], dx = k + 1 < G ? ws->gx[k + 1] - x : x - ws->gx[k - 1];
    if (dy_point(ws, x, dx, E, k > 0, &ws->gd[k])) return -1;
    if (k > 0 && (k % 16 == 0 || k + 1 == G)) {
      double cold;
      if (dy_point(ws, x, dx, E, 0, &cold)) return -1;
      if (!(fabs(cold - ws->gd[k]) <= 1e-6 * fmax(cold, ws->gd[k]) + 1e-12 / E)) {
        for (size_t i = from; i < k; ++i) {
          const double xi = ws->gx[i], dxi = ws->gx[i + 1] - xi;
          if (dy_point(ws, xi, dxi, E, 0, &ws->gd[i])) return -1;
        }
        if (dy_point(ws, x, dx, E, 0, &cold)) return -1;
      }
      ws->gd[k] = cold;
      from = k + 1;
    }
  }
  return 0;
}

static int norm_of(const bafu_layout *lay, size_t j) {
  const bafu_stage *sg;
  bafu_layout_entry(lay, j, &sg, NULL);
  return sg->norm;
}

static bafu_status dyson_run(bafu_free *ws, const bafu_layout *lay, const bafu_moments_layer *o, bafu_spec_object obj,
                             size_t layer, bafu_free_layer *info) {
  const bafu_stage *sg1;
  bafu_layout_entry(lay, 1, &sg1, NULL);
  const size_t L = layer, P = ws->fp.paths ? ws->fp.paths : sg1->act == BAFU_ACT_RELU ? DY_PATHS_RELU : DY_PATHS_SMOOTH;
  for (size_t j = 1; j <= L; ++j) {
    const bafu_stage *sg;
    bafu_layout_entry(lay, j, &sg, NULL);
    if (sg->kind != BAFU_STAGE_BLOCK || sg->depth != 1)
      return bafu_error(BAFU_EINVAL, "layer %d: the limit of a nonlinear ResNet covers chains of one-layer blocks",
                        o[j].label);
  }
  /* the paths and their sorted copy (dy_paths), the statistics, the scratch */
  bafu_status mst = bafu_memory_check(((double)P * (2.0 * L + 3) + (double)L * L + 12.0 * L + 8) * sizeof(double) +
                                          (6.0 * L + dy_scratch_size(L, P)) * sizeof(cplx),
                                      "the mask paths of the limit (--paths)");
  if (mst) return mst;
  free(ws->pd2), free(ws->pw), free(ws->ps2), free(ws->pc), free(ws->theta), free(ws->dscr);
  ws->pd2 = malloc(P * L * sizeof(double));
  ws->pw = malloc(P * sizeof(double));
  ws->ps2 = malloc(3 * L * sizeof(double)); /* s2, then q and the scratch of dy_paths */
  ws->pc = malloc((L + 1) * sizeof(double));
  ws->theta = calloc(6 * L, sizeof(cplx));
  ws->dscr = malloc(dy_scratch_size(L, P) * sizeof(cplx));
  int *norm = malloc(L * sizeof *norm);
  if (!ws->pd2 || !ws->pw || !ws->ps2 || !ws->pc || !ws->theta || !ws->dscr || !norm) {
    free(norm);
    return bafu_error(BAFU_ENOMEM, "out of memory for the mask paths of the limit");
  }
  double *q = ws->ps2 + L;
  bafu_act act = BAFU_ACT_RELU;
  for (size_t j = 1; j <= L; ++j) {
    const bafu_stage *sg;
    bafu_layout_entry(lay, j, &sg, NULL);
    act = sg->act;
    q[j - 1] = o[j].q_in;
    norm[j - 1] = sg->norm;
    ws->ps2[j - 1] = sg->scale * sg->scale * sg->gain / (sg->norm ? o[j].q_in : 1.0);
  }
  for (size_t j = 0; j <= L; ++j) ws->pc[j] = obj == BAFU_SPEC_JACOBIAN ? (j == 0 ? 1.0 : 0.0) : o[j].c;
  ws->sampled = P;
  ws->paths = dy_paths(act, q, norm, L, P, DY_SEED, ws->pd2, ws->pw, q + L);
  free(norm);
  ws->dchain = (dy_chain){.L = L, .s2 = ws->ps2, .c = ws->pc, .P = ws->paths, .d2 = ws->pd2, .w = ws->pw};
  ws->exact = 0;
  ws->natoms = 0;
  for (size_t j = 0; j <= L; ++j) {
    bafu_free_layer *Lj = &info[j];
    memset(Lj, 0, sizeof *Lj);
    Lj->label = o[j].label;
    Lj->m1 = o[j].m1, Lj->m2 = o[j].m2; /* the two-moment theory (J J^T: below) */
  }
  /* the exact mask statistics: the two-moment theory of J J^T (c_0 = 1,
     c_l = 0), and the calibration of the path weights */
  double *buf = malloc((5.0 * L + (double)L * L + 2) * sizeof *buf);
  if (!buf) return bafu_error(BAFU_ENOMEM, "out of memory for the mask statistics");
  double *mm = buf, *m4 = mm + L, *zk = m4 + L, *mu1 = zk + L, *mu2 = mu1 + L + 1, *M = mu2 + L + 1;
  bafu_status sst = BAFU_OK;
  for (size_t l = 0; l < L && !sst; ++l) {
    bafu_act_moments am;
    const double vl = norm_of(lay, l + 1) ? 1.0 : q[l];
    sst = bafu_act_moments_eval(act, vl, &am);
    mm[l] = am.dphi2, m4[l] = am.dphi4;
    for (size_t k = 0; k < l && !sst; ++k) {
      const int nk = norm_of(lay, k + 1), nl = norm_of(lay, l + 1);
      const double vk = nk ? 1.0 : q[k], cov = q[k] / ((nk ? sqrt(q[k]) : 1.0) * (nl ? sqrt(q[l]) : 1.0));
      sst = bafu_act_mask_corr(act, vk, vl, cov, &M[l * L + k]);
    }
  }
  if (sst) {
    free(buf);
    return sst;
  }
  if (obj == BAFU_SPEC_JACOBIAN) {
    dy_moments(L, ws->ps2, ws->pc, mm, m4, M, zk, mu1, mu2);
    for (size_t j = 0; j <= L; ++j) info[j].m1 = mu1[j], info[j].m2 = mu2[j];
  }
  ws->calib = 0;
  ws->calib_resid = NAN;
  if (ws->fp.moments_only) {
    free(buf);
    return BAFU_OK;
  }
  /* X and its scaled copy, the Gram matrix and dsyevd's workspace (about 2 r^2) */
  const double rows = (double)dy_calib_rows(L);
  if (!ws->fp.no_calibration &&
      ((double)ws->paths * (2 * rows + 1) + 3 * rows * rows + 16 * rows) * sizeof(double) <=
          (double)bafu_memory_limit_bytes()) {
    const int c = dy_calibrate(&ws->dchain, ws->pw, mm, m4, M, &ws->calib_resid);
    if (c < 0) {
      free(buf);
      return bafu_error(BAFU_ENOMEM, "out of memory for the calibration of the mask paths");
    }
    ws->calib = c == 0 ? 1 : -1;
  }
  free(buf);
  bafu_free_layer *Lt = &info[L];
  const double m1 = Lt->m1, m2 = Lt->m2;
  int still = 1; /* every block's Jacobian is I (branch scale 0): K_L = m1 I */
  for (size_t l = 0; l < L; ++l) still &= ws->ps2[l] == 0;
  if (still) {
    ws->paths = 0, ws->exact = 1, ws->chain.n = 0;
    Lt->natoms = 1;
    Lt->atom[0] = (bafu_spec_atom){m1, 1.0};
    for (int p = 0; p < 5; ++p) Lt->raw[p] = pow(m1, p);
    Lt->lo = Lt->hi = m1;
    atom_only(ws, m1);
    return BAFU_OK;
  }
  const double sd = isfinite(m2) ? sqrt(fmax(m2 - m1 * m1, 0.0)) : 1.0, mid = isfinite(m1) ? m1 : 1.0;
  const double E = fmax(sd, 1e-3 * fabs(mid));
  gsl_error_handler_t *old = gsl_set_error_handler_off();
  bafu_status st = BAFU_OK;
  /* the upper edge: doubled until the density vanishes there */
  double lo = ws->pc[L] > 0 && obj == BAFU_SPEC_BFK ? ws->pc[L] : 0.0, hi = mid + 4 * E, r = 0;
  int found = 0;
  for (int k = 0; k < 60 && !st && !found; ++k) {
    if (dy_smoothed(ws, hi, 1e-6 * E, E, &r, NULL)) st = BAFU_ENUMERIC;
    else if (!(r * E > 1e-8)) found = 1;
    else hi = mid + 2 * (hi - mid);
  }
  if (!found) st = BAFU_ENUMERIC;
  const size_t Gc = ws->G < DY_COARSE ? ws->G : DY_COARSE;
  for (int pass = 0; pass < 2 && !st; ++pass) {
    if (dy_grid(ws, Gc, lo, hi, E)) {
      st = BAFU_ENUMERIC;
      break;
    }
    double mx = 0;
    for (size_t k = 0; k < Gc; ++k) mx = fmax(mx, ws->gd[k]);
    size_t a = 0, b = Gc - 1;
    while (a < Gc && ws->gd[a] <= 1e-7 * mx) ++a;
    while (b > a && ws->gd[b] <= 1e-7 * mx) --b;
    if (a >= b) break;
    const double nlo = a > 0 ? ws->gx[a - 1] : lo, nhi = b + 1 < Gc ? ws->gx[b + 1] : hi;
    const double m = 0.002 * (nhi - nlo);
    lo = fmax(lo, nlo - m), hi = fmin(hi, nhi + m);
  }
  if (!st && dy_grid(ws, ws->G, lo, hi, E)) st = BAFU_ENUMERIC;
  gsl_set_error_handler(old);
  if (st) {
    ws->paths = 0;
    return bafu_error(BAFU_ENUMERIC, "layer %d: the Dyson equation of the limit did not converge", Lt->label);
  }
  integrate(ws);
  raw_moments(ws, Lt->raw);
  Lt->lo = ws->gx[0], Lt->hi = ws->gx[ws->G - 1];
  return BAFU_OK;
}

bafu_status bafu_free_run(bafu_free *ws, const bafu_net_params *p, double x2, bafu_spec_object obj, size_t layer,
                          bafu_free_layer *info) {
  if (p->batch != 1) return bafu_error(BAFU_EINVAL, "batch: the limit is for one input (batch 1)");
  if (p->signal != BAFU_SIGNAL_PROBE) return bafu_error(BAFU_EINVAL, "signal: the limit uses the probe signal");
  if (p->block_depth > 1)
    return bafu_error(BAFU_EINVAL, "block_depth: the infinite-width limit covers residual branches of one layer (block_depth = 1), "
                      "not %zu; the finite-width dense and kpm spectra cover any block_depth", p->block_depth);
  bafu_layout lay;
  bafu_status st = bafu_layout_build(p, &lay);
  if (st) return st;
  if (p->init == BAFU_INIT_ORTHOGONAL)
    return bafu_error(BAFU_EINVAL, "init: the limit is implemented for Gaussian weights only");
  const size_t J = bafu_moments_nlayers(p);
  if (layer >= J) return bafu_error(BAFU_EINVAL, "layer: index %zu beyond %zu layers", layer, J);
  bafu_moments_layer *o = malloc(J * sizeof *o);
  if (!o) return bafu_error(BAFU_ENOMEM, "out of memory");
  st = bafu_moments_run(p, x2, o);
  if (st) {
    free(o);
    return st;
  }
  ws->paths = 0;
  if (bafu_layout_has_blocks(&lay) && p->act != BAFU_ACT_LINEAR && layer > 0) {
    st = dyson_run(ws, &lay, o, obj, layer, info);
    free(o);
    return st;
  }
  if (ws->fp.method == BAFU_FREE_AUTO && exact_applies(&lay, layer)) {
    ws->mask_used = 0;
    st = exact_run(ws, &lay, o, obj, layer, info);
    if (!(st && ws->mask_used)) {
      free(o);
      return st;
    }
    /* a tanh mask law the trapezoid rule does not resolve (very large q, or
       phi' rounding to 0 on a set of mass over 1e-15), or a tanh chain whose
       edges, normalisation or grid failed: the discretised method, as before 4.8 */
  }
  ws->exact = 0;
  const size_t N = ws->fp.atoms;
  /* layer 0: a multiple of I */
  law *K = &ws->K;
  double a0 = obj == BAFU_SPEC_JACOBIAN ? 1.0 : o[0].c;
  K->n = 1, K->t[0] = a0, K->w[0] = 1, K->m1 = a0, K->m2 = a0 * a0;
  int degenerate = 1;
  ws->natoms = 1;
  ws->atom[0] = (bafu_spec_atom){a0, 1.0};
  for (size_t j = 0; j <= layer; ++j) {
    const double c = obj == BAFU_SPEC_JACOBIAN ? 0.0 : o[j].c;
    if (j > 0) {
      /* law of P = A^T A */
      law *P = &ws->P;
      double lo, hi, p1, p2, atom0 = 0;
      dens_ctx dc = {0};
      const bafu_stage *sg;
      bafu_layout_entry(&lay, j, &sg, NULL);
      if (sg->kind == BAFU_STAGE_DENSE) {
        if ((st = mask_law(ws, sg, o[j].q_in))) break;
        set_moments_exact(&ws->H);
        double tmax = 0;
        for (size_t i = 0; i < ws->H.n; ++i) {
          tmax = fmax(tmax, ws->H.t[i]);
          if (ws->H.t[i] == 0 && sg->act == BAFU_ACT_RELU) atom0 += ws->H.w[i];
        }
        /* targets from the accurate Gaussian moments (theory/activations.md), not the nodes */
        bafu_act_moments am;
        if ((st = bafu_act_moments_eval(sg->act, o[j].q_in, &am))) break;
        const double s = sg->gain;
        p1 = s * am.dphi2, p2 = s * s * (am.dphi2 * am.dphi2 + am.dphi4);
        dc = (dens_ctx){.kind = 0, .A = &ws->H, .atom0 = atom0};
        lo = 0, hi = 4.05 * tmax;
      } else {
        /* a normalised branch: beta / sqrt(q_{l-1}) in the Jacobian (theory/moments.md 2.8) */
        const double s2 = sg->scale * sg->scale * sg->gain / (sg->norm ? o[j].q_in : 1.0);
        p1 = 1 + s2, p2 = 1 + 4 * s2 + 2 * s2 * s2;
        dc = (dens_ctx){.kind = 2, .sigma2 = s2};
        lo = 0, hi = pow(1 + 2 * sqrt(s2), 2) * 1.05;
      }
      ws->natoms = 0;
      if (atom0 > 0) ws->natoms = 1, ws->atom[0] = (bafu_spec_atom){0.0, atom0};
      eval_trimmed(ws, &dc, lo, hi);
      integrate(ws);
      discretise(ws, P, N, p1, p2);
      if (degenerate && K->t[0] == 0) {
        /* K = 0 (no trained parameter below, e.g. --lr-input 0): the layer's
           own term alone, K = c I, still a multiple of I */
        K->n = 1, K->t[0] = c, K->w[0] = 1, K->m1 = c, K->m2 = c * c;
        atom_only(ws, c);
        K->natoms = 1;
        K->atom[0] = ws->atom[0];
      } else if (degenerate) {
        /* K = a I (a > 0): law(a P) + c */
        const double a = K->t[0];
        for (size_t i = 0; i < P->n; ++i) K->t[i] = c + a * P->t[i], K->w[i] = P->w[i];
        K->n = P->n;
        K->m1 = c + a * P->m1;
        K->m2 = c * c + 2 * c * a * P->m1 + a * a * P->m2;
        /* grid and atoms of the result: scale the P grid (as computed) */
        for (size_t k = 0; k < ws->G; ++k) ws->gx[k] = c + a * ws->gx[k], ws->gd[k] /= a;
        ws->glo = c + a * ws->glo, ws->ghi = c + a * ws->ghi;
        for (size_t k = 0; k < ws->natoms; ++k) ws->atom[k].x = c + a * ws->atom[k].x;
        integrate(ws);
        degenerate = 0;
        K->natoms = ws->natoms;
        for (size_t k = 0; k < ws->natoms; ++k) K->atom[k] = ws->atom[k];
      } else {
        const double k1 = K->m1, k2 = K->m2;
        double kmax = 0, pmax = 0, k0 = 0;
        for (size_t i = 0; i < K->n; ++i) {
          kmax = fmax(kmax, K->t[i]);
          if (K->t[i] == 0) k0 += K->w[i];
        }
        for (size_t i = 0; i < P->n; ++i) pmax = fmax(pmax, P->t[i]);
        const double z0 = fmax(k0, atom0); /* atom of the product at 0 */
        dens_ctx bc = {.kind = 1, .A = K, .B = P, .atom0 = z0};
        /* the product's grid is built into ws->gx; K and P stay intact */
        ws->natoms = 0;
        if (z0 > 0) ws->natoms = 1, ws->atom[0] = (bafu_spec_atom){0.0, z0};
        ws->failed = 0;
        eval_trimmed(ws, &bc, 0.0, kmax * pmax * 1.02);
        if (ws->failed > ws->G / 100 + 1) {
          st = bafu_error(BAFU_ENUMERIC,
                          "layer %d: the free-probability limit did not converge (a kernel law this narrow for its "
                          "size, e.g. from a large bias variance, is beyond the limit method; use the dense or kpm method)",
                          o[j].label);
          break;
        }
        const double M1 = k1 * P->m1, M2 = k2 * P->m1 * P->m1 + k1 * k1 * P->m2 - k1 * k1 * P->m1 * P->m1;
        for (size_t k = 0; k < ws->G; ++k) ws->gx[k] += c;
        ws->glo += c, ws->ghi += c;
        for (size_t k = 0; k < ws->natoms; ++k) ws->atom[k].x += c;
        integrate(ws);
        discretise(ws, K, N, c + M1, c * c + 2 * c * M1 + M2);
      }
    }
    bafu_free_layer *L = &info[j];
    memset(L, 0, sizeof *L);
    L->label = o[j].label;
    L->m1 = K->m1;
    L->m2 = K->m2;
    if (j == 0) {
      L->natoms = 1;
      L->atom[0] = (bafu_spec_atom){K->t[0], 1.0};
      L->raw[0] = 1, L->raw[1] = K->m1, L->raw[2] = K->m2;
      L->lo = L->hi = K->t[0];
    } else {
      raw_moments(ws, L->raw);
      L->lo = ws->gx[0];
      L->hi = ws->gx[ws->G - 1];
      L->natoms = ws->natoms;
      for (size_t a = 0; a < ws->natoms; ++a) L->atom[a] = ws->atom[a];
    }
  }
  free(o);
  if (st) return st;
  if (layer == 0) atom_only(ws, K->t[0]);
  return BAFU_OK;
}

void bafu_free_moments(const bafu_free_layer *info, size_t count, bafu_spec_moments *out) {
  for (size_t j = 0; j < count; ++j) {
    out[j].label = info[j].label;
    out[j].m1 = info[j].m1;
    out[j].m2 = info[j].m2;
    out[j].defined = info[j].m1 > 0;
    out[j].cos_theta = out[j].cos_spectral = out[j].defined ? info[j].m1 / sqrt(info[j].m2) : 0;
  }
}
