/* kernel.c: infinite-width NNGP / derivative kernel / BFK / backward factor
 * recursions for a batch of inputs (bafu/kernel.h). Every formula is derived
 * in theory/kernel.md; "KR x" refers to its sections. */
#include "bafu/kernel.h"

#include "bafu/layout.h"
#include "dualmap.h"

#include <float.h>
#include <math.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const double PI = 3.14159265358979323846;

/* ---------------------------------------------------------------------------
 * Layer plan (KR 1): the engine's layers, generated on the fly so that depth
 * 10^6 needs no per-layer description. */

typedef enum { LAYER_INPUT, LAYER_PLAIN, LAYER_RESID } layer_kind;

typedef struct {
  layer_kind kind;
  int label;
  double lr;
  double scale2; /* s_j^2: beta^2 for a residual block, 1 otherwise */
  double gain;   /* weight variance gain / fan_in (sigma_w2, or the input/readout gain) */
  double bvar;   /* bias variance V (0: no biases) */
  double lrb;    /* the biases' rate (0 without biases) */
  int norm;      /* residual block whose branch reads f_{j-1} / |f_{j-1}|_rms per sample (KR 2.6) */
  size_t depth;  /* layers K of a residual block's branch (KR 2.7); 1 otherwise */
} layer_info;

size_t bafu_kernel_count_layers(const bafu_net_params *p) {
  bafu_layout lay;
  return bafu_layout_build(p, &lay) ? 0 : lay.J;
}

/* Entry j of the network's description (bafu/layout.h), as the recursion
 * sees it: a dense entry reading x is an input layer (KR 2.1). */
static layer_info layer_at(const bafu_layout *lay, size_t j) {
  const bafu_stage *s;
  size_t k;
  const int label = bafu_layout_entry(lay, j, &s, &k);
  const layer_kind kind = s->kind == BAFU_STAGE_BLOCK ? LAYER_RESID : s->reads_x && k == 0 ? LAYER_INPUT : LAYER_PLAIN;
  const int biased = s->bias_var > 0;
  return (layer_info){kind, label, s->lr, kind == LAYER_RESID ? s->scale * s->scale : 1.0, s->gain,
                      biased ? s->bias_var : 0.0, biased ? s->lr_bias : 0.0, kind == LAYER_RESID && s->norm,
                      kind == LAYER_RESID ? s->depth : 1};
}

/* The Jacobian factor M_j(a,b) of layer j (KR 2.2, 2.3, 2.6, 2.7) from its
 * derivative kernel spr = Sprime_j(a,b) (for a branch of K layers the product
 * of its K layers' derivative kernels): spr for a plain layer, 1 + beta^2 spr
 * for a residual block, and 1 + beta^2 spr / (r_a r_b) when the block
 * normalises its branch, r_a^2 = Sigma_{j-1}(a,a) (PS, m x m). The tangent and
 * the backward recursion both call it, so that they use the same factors. */
static double jacobian_factor(const layer_info *li, double spr, const double *PS, size_t m, size_t a, size_t b) {
  if (li->kind != LAYER_RESID) return spr;
  if (!li->norm) return 1 + li->scale2 * spr;
  return 1 + li->scale2 * (spr / (sqrt(PS[a + a * m]) * sqrt(PS[b + b * m])));
}

static size_t input_dim(const bafu_net_params *p) { return p->input_dim ? p->input_dim : p->width; }

/* ---------------------------------------------------------------------------
 * ReLU in angle form (KR 3). */

/* g(th) = sin th - th cos th = sum_{k>=1} (-1)^{k+1} 2k th^{2k+1} / (2k+1)!,
 * by the series for th < 1 (terms fall by th^2 / ((2k+2)(2k+3)); 12 terms
 * reach 1e-19 relative at th = 1), directly otherwise (cancellation at most a
 * factor 3 for th >= 1). */
static double sin_minus_th_cos(double th) {
  if (th >= 1) return sin(th) - th * cos(th);
  const double t2 = th * th;
  double term = th, sum = 0; /* term = th^{2k+1} / (2k+1)! */
  for (int k = 1; k <= 12; ++k) {
    term *= t2 / ((2.0 * k) * (2.0 * k + 1));
    sum += (k & 1 ? 2.0 * k : -2.0 * k) * term;
  }
  return sum;
}

double bafu_kernel_relu_one_minus_corr(double th) {
  if (!(th > 0)) return th == 0 ? 0 : NAN;
  if (th > PI) th = PI;
  const double h = sin(0.5 * th);
  /* (1 - cos th) - g/pi; g/pi <= (1 - cos th)/2, so at most one bit is lost */
  return 2 * h * h - sin_minus_th_cos(th) / PI;
}

double bafu_kernel_angle_from_omc(double omc) {
  if (!(omc > 0)) return omc == 0 ? 0 : (isnan(omc) ? NAN : 0);
  if (omc >= 2) return PI;
  return 2 * asin(sqrt(0.5 * omc));
}

/* Stable angle between two vectors of length d (Kahan): with unit vectors u, v,
 * th = 2 atan2(|u - v|, |u + v|). Returns pi/2 if either is zero. */
static double vector_angle(const double *x, const double *y, size_t d) {
  double nx = 0, ny = 0;
  for (size_t i = 0; i < d; ++i) {
    nx += x[i] * x[i];
    ny += y[i] * y[i];
  }
  if (!(nx > 0) || !(ny > 0)) return 0.5 * PI;
  nx = sqrt(nx);
  ny = sqrt(ny);
  double dm = 0, dp = 0;
  for (size_t i = 0; i < d; ++i) {
    const double u = x[i] / nx, v = y[i] / ny;
    dm += (u - v) * (u - v);
    dp += (u + v) * (u + v);
  }
  return 2 * atan2(sqrt(dm), sqrt(dp));
}

/* The angle between (u x, v) and (u y, v): the pre-activations of a layer that
 * reads x with gain u^2 = gain/d and a bias of variance v^2 (KR 2.5), by the
 * same stable formula. */
static double augmented_angle(const double *x, const double *y, size_t d, double u, double v) {
  double nx = v * v, ny = v * v;
  for (size_t i = 0; i < d; ++i) {
    nx += u * x[i] * u * x[i];
    ny += u * y[i] * u * y[i];
  }
  if (!(nx > 0) || !(ny > 0)) return 0.5 * PI;
  nx = sqrt(nx);
  ny = sqrt(ny);
  double dm = (v / nx - v / ny) * (v / nx - v / ny), dp = (v / nx + v / ny) * (v / nx + v / ny);
  for (size_t i = 0; i < d; ++i) {
    const double a = u * x[i] / nx, b = u * y[i] / ny;
    dm += (a - b) * (a - b);
    dp += (a + b) * (a + b);
  }
  return 2 * atan2(sqrt(dm), sqrt(dp));
}

/* ---------------------------------------------------------------------------
 * Gaussian expectations for one pair of samples. */

typedef struct {
  double ee_d1, ee_d2; /* E phi(u)^2, E phi(v)^2 */
  double ee;           /* E phi(u) phi(v) */
  double dd_d1, dd_d2; /* E phi'(u)^2, E phi'(v)^2 */
  double dd;           /* E phi'(u) phi'(v) */
} pair_exp;

static bafu_status diag_exp(bafu_act act, bafu_kernel_method meth, double q, double *ee, double *dd) {
  bafu_act_moments am;
  bafu_status st = meth == BAFU_KERNEL_QUADRATURE ? bafu_act_moments_quad(act, q, &am)
                                                   : bafu_act_moments_eval(act, q, &am);
  if (st) return st;
  *ee = am.phi2;
  *dd = am.dphi2;
  return BAFU_OK;
}

/* Off-diagonal expectation with the covariance clamped to |c12| <= sqrt(q1 q2)
 * (rounding in the recursion may step over the bound by an ulp). */
static bafu_status offdiag_exp(bafu_act act, bafu_kernel_method meth, double q1, double q2, double c12,
                               double *ee, double *dd) {
  const double bound = sqrt(q1) * sqrt(q2);
  if (c12 > bound) c12 = bound;
  if (c12 < -bound) c12 = -bound;
  return meth == BAFU_KERNEL_QUADRATURE ? bafu_act_bivariate_quad(act, q1, q2, c12, ee, dd)
                                        : bafu_act_bivariate(act, q1, q2, c12, ee, dd);
}

/* 1 - E phi(u)phi(v) / E phi(u)^2 for erf with Var u = Var v = q, correlation
 * c = 1 - omc >= 0, without cancellation (KR 4.2):
 *   E phi phi = (2/pi) atan(y), y = 2qc / B,  E phi^2 = (2/pi) atan(x), x = 2q / A,
 *   A^2 = 1 + 4q, B^2 = A^2 + 4q^2 (1 - c^2),
 *   x - y = 2q (1 - c^2)(1 + 2q)^2 / (A B (B + cA)),
 *   atan x - atan y = atan((x - y) / (1 + x y)). */
static double erf_one_minus_corr(double q, double omc) {
  const double c = 1 - omc, one_m_c2 = omc * (2 - omc);
  const double A = sqrt(1 + 4 * q), B = sqrt(1 + 4 * q + 4 * q * q * one_m_c2);
  const double x = 2 * q / A, y = 2 * q * c / B;
  const double xmy = 2 * q * one_m_c2 * (1 + 2 * q) * (1 + 2 * q) / (A * B * (B + c * A));
  return atan(xmy / (1 + x * y)) / atan(x);
}

/* ---------------------------------------------------------------------------
 * Tabulated dual maps (KR 10). */

/* The activations whose expectations have no closed form here, served by the
 * table in AUTO mode. */
static int act_tabulated(bafu_act a) { return a == BAFU_ACT_TANH || a == BAFU_ACT_GELU || a == BAFU_ACT_SWISH; }

/* Two variances close enough to use the equal-variance table at their
 * geometric mean: the error is second order in the relative gap, here below 2^-40 (KR 10.5). */
static int close_variances(double qa, double qb) { return fabs(qa - qb) <= 0x1p-40 * fmax(qa, qb); }

/* ---------------------------------------------------------------------------
 * The batch workspace. */

enum { MAT_SIGMA, MAT_SPRIME, MAT_THETA, MAT_OWN, MAT_BWD, MAT_COUNT };

struct bafu_kernel {
  bafu_net_params p;
  bafu_kernel_method method;
  size_t J, m, d;
  bafu_layout lay;
  int *labels;
  double *store;   /* J * MAT_COUNT * m * m */
  double *gram;    /* X^T X */
  double *th;      /* m x m pair angles (relu, AUTO) */
  double *ee, *dd; /* m x m expectations of the current layer */
  /* branches of K > 1 layers (KR 2.7), NULL otherwise: the covariance and the
     ReLU pair angles of the current inner layer h_k, the product of the inner
     layers' derivative kernels and their accumulated own terms */
  double *hs, *thh, *dprod, *acc;
  dm_table *dm; /* tanh, gelu, swish: the dual-map table (KR 10), used in AUTO mode */
  bafu_progress_fn progress;
  void *progress_ctx;
};

void bafu_kernel_set_progress(bafu_kernel *k, bafu_progress_fn fn, void *ctx) {
  k->progress = fn;
  k->progress_ctx = ctx;
}

static double *mat(const bafu_kernel *k, size_t j, int which) {
  return k->store + (j * MAT_COUNT + (size_t)which) * k->m * k->m;
}

static size_t sat_mul(size_t a, size_t b) { return (a && b > SIZE_MAX / a) ? SIZE_MAX : a * b; }

bafu_status bafu_kernel_alloc(const bafu_net_params *p, bafu_kernel **out) {
  *out = NULL;
  bafu_status st = bafu_net_params_check(p);
  if (st) return st;
  const size_t J = bafu_kernel_count_layers(p), m = p->batch;
  const size_t mm = sat_mul(m, m);
  const size_t scratch = p->block_depth > 1 ? 8 : 4; /* gram, th, ee, dd (+ hs, thh, dprod, acc) */
  const size_t doubles = sat_mul(sat_mul(J, MAT_COUNT) + scratch, mm);
  const size_t bytes = sat_mul(doubles, sizeof(double));
  if ((st = bafu_memory_check((double)bytes, "depth/batch: the kernel recursion"))) return st;
  bafu_kernel *k = calloc(1, sizeof *k);
  if (!k) return bafu_error(BAFU_ENOMEM, "out of memory allocating the kernel workspace");
  k->p = *p;
  k->method = BAFU_KERNEL_AUTO;
  k->J = J;
  k->m = m;
  k->d = input_dim(p);
  bafu_layout_build(p, &k->lay); /* p was checked above */
  k->labels = malloc(J * sizeof *k->labels);
  k->store = malloc(doubles * sizeof(double));
  if (!k->labels || !k->store) {
    bafu_kernel_free(k);
    return bafu_error(BAFU_ENOMEM, "out of memory: the kernel recursion needs %.3g GiB",
                      (double)bytes / 1073741824.0);
  }
  k->gram = k->store + J * MAT_COUNT * mm;
  k->th = k->gram + mm;
  k->ee = k->th + mm;
  k->dd = k->ee + mm;
  if (p->block_depth > 1) {
    k->hs = k->dd + mm;
    k->thh = k->hs + mm;
    k->dprod = k->thh + mm;
    k->acc = k->dprod + mm;
  }
  for (size_t j = 0; j < J; ++j) k->labels[j] = layer_at(&k->lay, j).label;
  if (act_tabulated(p->act) && (st = dm_alloc(p->act, NULL, &k->dm))) {
    bafu_kernel_free(k);
    return st;
  }
  *out = k;
  return BAFU_OK;
}

void bafu_kernel_free(bafu_kernel *k) {
  if (!k) return;
  dm_free(k->dm);
  free(k->labels);
  free(k->store);
  free(k);
}

bafu_status bafu_kernel_set_method(bafu_kernel *k, bafu_kernel_method method) {
  if (method != BAFU_KERNEL_AUTO && method != BAFU_KERNEL_QUADRATURE && method != BAFU_KERNEL_DIRECT)
    return bafu_error(BAFU_EINVAL, "kernel: unknown expectation method %d", (int)method);
  k->method = method;
  return BAFU_OK;
}

size_t bafu_kernel_nlayers(const bafu_kernel *k) { return k->J; }
size_t bafu_kernel_batch(const bafu_kernel *k) { return k->m; }
int bafu_kernel_label(const bafu_kernel *k, size_t j) { return k->labels[j]; }
const double *bafu_kernel_sigma(const bafu_kernel *k, size_t j) { return mat(k, j, MAT_SIGMA); }
const double *bafu_kernel_sprime(const bafu_kernel *k, size_t j) { return mat(k, j, MAT_SPRIME); }
const double *bafu_kernel_theta(const bafu_kernel *k, size_t j) { return mat(k, j, MAT_THETA); }
const double *bafu_kernel_own(const bafu_kernel *k, size_t j) { return mat(k, j, MAT_OWN); }
const double *bafu_kernel_bwd(const bafu_kernel *k, size_t j) { return mat(k, j, MAT_BWD); }

/* Expectations E phi phi (k->ee) and E phi' phi' (k->dd) for u ~ N(0, Sig),
 * and, for relu outside QUADRATURE mode, 1 - c_phi of every pair (into omc_phi)
 * from the pair angles th of u (m x m; KR 3.1). In AUTO mode the table answers
 * for layer `stamp` where it serves (KR 10.5). */
static bafu_status batch_expect(bafu_kernel *k, const double *Sig, const double *th_u, double *omc_phi,
                                size_t stamp) {
  const size_t m = k->m;
  const bafu_act act = k->p.act;
  const int relu = act == BAFU_ACT_RELU && k->method != BAFU_KERNEL_QUADRATURE;
  dm_table *dm = k->method == BAFU_KERNEL_AUTO ? k->dm : NULL;
  bafu_status st;
  for (size_t b = 0; b < m; ++b)
    for (size_t a = 0; a <= b; ++a) {
      const double qa = Sig[a + a * m], qb = Sig[b + b * m];
      double ee, dd;
      if (relu) {
        if (!(qa > 0 && qb > 0)) {
          ee = dd = 0; /* relu(0) = relu'(0) = 0 */
          omc_phi[a + b * m] = omc_phi[b + a * m] = 1;
        } else if (a == b) {
          ee = 0.5 * qa;
          dd = 0.5;
          omc_phi[a + a * m] = 0;
        } else {
          const double th = th_u[a + b * m];
          const double omc = bafu_kernel_relu_one_minus_corr(th);
          ee = 0.5 * sqrt(qa) * sqrt(qb) * (1 - omc);
          dd = (PI - th) / (2 * PI);
          omc_phi[a + b * m] = omc_phi[b + a * m] = omc;
        }
      } else if (a == b) {
        double va, vb;
        if (dm && dm_diag(dm, qa, stamp, &va, &vb)) {
          ee = qa * va;
          dd = vb;
        } else if ((st = diag_exp(act, k->method, qa, &ee, &dd))) {
          return st;
        }
      } else {
        int served = 0;
        if (dm && close_variances(qa, qb)) { /* KR 10.5: the table at the geometric mean */
          const double qm = qa == qb ? qa : sqrt(qa) * sqrt(qb), bound = sqrt(qa) * sqrt(qb);
          double rho = bound > 0 ? Sig[a + b * m] / bound : 0;
          rho = rho > 1 ? 1 : rho < -1 ? -1 : rho;
          dm_val v;
          if ((served = dm_pair(dm, qm, 1 - rho, stamp, &v))) {
            ee = qm * (v.a - (1 - rho) * v.dhat);
            dd = v.g;
          }
        }
        if (!served && (st = offdiag_exp(act, k->method, qa, qb, Sig[a + b * m], &ee, &dd))) return st;
      }
      k->ee[a + b * m] = k->ee[b + a * m] = ee;
      k->dd[a + b * m] = k->dd[b + a * m] = dd;
    }
  return BAFU_OK;
}

/* A forward variance that falls below the smallest normal double: the
 * recursion has lost its relative precision (subnormals, then 0, where the
 * correlation is 0/0), so it is refused rather than printed (the variance
 * decays geometrically below the edge of chaos, e.g. gelu at sigma_w2 = 2).
 * An exact 0 carried from an exact 0 (a zero input without biases) is no
 * underflow. */
static bafu_status check_underflow(double q, double q_prev, int label) {
  if (q >= DBL_MIN || (q == 0 && q_prev == 0)) return BAFU_OK;
  return bafu_error(BAFU_ENUMERIC,
                    "depth/sigma_w2: the forward variance q underflows at layer %d (%.3g, below the smallest normal "
                    "double %.3g): the kernels lose their precision there and the correlation becomes 0/0; use a "
                    "smaller depth",
                    label, q, DBL_MIN);
}

static bafu_status check_finite(const double *A, size_t mm, int label, const char *what) {
  for (size_t i = 0; i < mm; ++i)
    if (!isfinite(A[i]))
      return bafu_error(BAFU_ENUMERIC,
                        "depth/sigma_w2/branch_scale: the kernel %s overflowed at layer %d", what, label);
  return BAFU_OK;
}

bafu_status bafu_kernel_run(bafu_kernel *k, const double *X) {
  const bafu_net_params *p = &k->p;
  const size_t m = k->m, mm = m * m, d = k->d, J = k->J;
  const double n = (double)p->width;
  const int relu = p->act == BAFU_ACT_RELU && k->method != BAFU_KERNEL_QUADRATURE;
  bafu_status st;
  if (!X) return bafu_error(BAFU_EINVAL, "kernel: no inputs given");
  if (k->dm) dm_restart(k->dm); /* every run is served as by a fresh table (KR 10.4) */
  for (size_t i = 0; i < d * m; ++i)
    if (!isfinite(X[i])) return bafu_error(BAFU_EINVAL, "X: the inputs must be finite numbers");
  /* Gram matrix and pair angles of the inputs (KR 2.1, 3.3) */
  for (size_t b = 0; b < m; ++b)
    for (size_t a = 0; a <= b; ++a) {
      double g = 0;
      for (size_t i = 0; i < d; ++i) g += X[i + a * d] * X[i + b * d];
      k->gram[a + b * m] = k->gram[b + a * m] = g;
      if (relu) k->th[a + b * m] = k->th[b + a * m] = a == b ? 0 : vector_angle(X + a * d, X + b * d, d);
    }
  if ((st = check_finite(k->gram, mm, 0, "input Gram matrix"))) return st;
  for (size_t j = 0; j < J; ++j) {
    const layer_info li = layer_at(&k->lay, j);
    double *Sig = mat(k, j, MAT_SIGMA), *Sp = mat(k, j, MAT_SPRIME), *Th = mat(k, j, MAT_THETA),
           *Own = mat(k, j, MAT_OWN);
    if (li.kind == LAYER_INPUT) { /* KR 2.1: f = W x (+ c, KR 2.5) */
      for (size_t i = 0; i < mm; ++i) {
        Sig[i] = li.gain * k->gram[i] / (double)d + li.bvar;
        Sp[i] = 0;
        Own[i] = Th[i] = li.lr * k->gram[i] + li.lrb;
      }
      if (relu && li.bvar > 0) /* the angles of f = W x + c: those of (sqrt(gain/d) x, sqrt(V)) */
        for (size_t b = 0; b < m; ++b)
          for (size_t a = 0; a < b; ++a)
            k->th[a + b * m] = k->th[b + a * m] =
                augmented_angle(X + a * d, X + b * d, d, sqrt(li.gain / (double)d), sqrt(li.bvar));
    } else {
      const double *PS, *PT;
      if (j == 0) { /* ResNet without embedding: Sigma = X^T X / d, Theta = 0 before block 1 (KR 2.3) */
        double *S0 = mat(k, j, MAT_BWD); /* unused until the backward sweep */
        for (size_t i = 0; i < mm; ++i) S0[i] = k->gram[i] / (double)d;
        PS = S0;
        PT = NULL;
      } else {
        PS = mat(k, j - 1, MAT_SIGMA);
        PT = mat(k, j - 1, MAT_THETA);
      }
      double *omc_phi = Sp; /* scratch until Sp is written below */
      const double *EX = PS; /* the covariance of the activation's argument */
      if (li.norm) { /* KR 2.6: the branch reads f / r_a, covariance Sigma~ (unit diagonal) */
        double *Nt = Own;    /* scratch until Own is written below */
        for (size_t a = 0; a < m; ++a)
          if (!(PS[a + a * m] > 0))
            return bafu_error(BAFU_ENUMERIC,
                              "branch_norm: the stream of sample %zu entering block %d has zero variance (its rms "
                              "has no inverse)",
                              a + 1, li.label);
        for (size_t b = 0; b < m; ++b)
          for (size_t a = 0; a < m; ++a)
            Nt[a + b * m] = a == b ? 1 : PS[a + b * m] / (sqrt(PS[a + a * m]) * sqrt(PS[b + b * m]));
        EX = Nt;
      }
      const double *th_u = k->th; /* relu: the pair angles of the activation's argument (those of f_{j-1}) */
      for (size_t h = 1; h < li.depth; ++h) {
        /* KR 2.7: the branch's inner layer h_h = W phi(z) + c, z = u (h = 1) or h_{h-1}: its covariance
           s E[phi phi] + V, the product of the derivative kernels s E[phi' phi'] so far, and the own
           terms lr n E[phi phi] + lr_b carried through the later inner layers' derivative kernels */
        if ((st = batch_expect(k, EX, th_u, omc_phi, j))) return st;
        for (size_t i = 0; i < mm; ++i) {
          const double D = li.gain * k->dd[i], g = li.lr * n * k->ee[i] + li.lrb;
          k->acc[i] = h == 1 ? g : D * k->acc[i] + g;
          k->dprod[i] = h == 1 ? D : k->dprod[i] * D;
          k->hs[i] = li.gain * k->ee[i] + li.bvar;
        }
        if (relu) /* the pair angles of h_h: from omc_phi, or from its covariance with biases (KR 2.5) */
          for (size_t b = 0; b < m; ++b)
            for (size_t a = 0; a < b; ++a) {
              const double A = k->hs[a + a * m], B = k->hs[b + b * m];
              double omc = omc_phi[a + b * m];
              if (li.bvar > 0) omc = A > 0 && B > 0 ? 1 - k->hs[a + b * m] / (sqrt(A) * sqrt(B)) : 1;
              if (omc < 0) omc = 0;
              k->thh[a + b * m] = k->thh[b + a * m] = bafu_kernel_angle_from_omc(omc);
            }
        EX = k->hs;
        th_u = k->thh;
      }
      if ((st = batch_expect(k, EX, th_u, omc_phi, j))) return st;
      if (relu && li.bvar == 0) { /* carry the pair angles to f_j (KR 3.1, 3.2) */
        double w = li.kind == LAYER_RESID ? li.scale2 * li.gain / 2 : 0;
        for (size_t h = 1; h < li.depth; ++h) w *= li.gain / 2; /* KR 2.7: the branch adds beta^2 (s/2)^K q_a */
        for (size_t b = 0; b < m; ++b)
          for (size_t a = 0; a < b; ++a) {
            double omc = omc_phi[a + b * m];
            if (li.kind == LAYER_RESID && li.norm) {
              /* KR 2.6: Sigma_j(a,a) = q_a + w, Sigma_j(a,b) = sqrt(q_a q_b) c + w c', so
                 1 - c_j = [sqrt(q_a q_b)(1 - c) + w (1 - c') + gap] / sqrt((q_a + w)(q_b + w)),
                 gap = w (sqrt q_a - sqrt q_b)^2 / (sqrt((q_a + w)(q_b + w)) + sqrt(q_a q_b) + w) */
              const double h = sin(0.5 * k->th[a + b * m]);
              const double ra = sqrt(PS[a + a * m]), rb = sqrt(PS[b + b * m]);
              const double rn = sqrt(PS[a + a * m] + w) * sqrt(PS[b + b * m] + w);
              const double gap = w * (ra - rb) * (ra - rb) / (rn + ra * rb + w);
              omc = (ra * rb * 2 * h * h + w * omc + gap) / rn;
            } else if (li.kind == LAYER_RESID) {
              const double h = sin(0.5 * k->th[a + b * m]);
              omc = (2 * h * h + w * omc) / (1 + w);
            }
            k->th[a + b * m] = k->th[b + a * m] = bafu_kernel_angle_from_omc(omc);
          }
      }
      for (size_t i = 0; i < mm; ++i) {
        const double S = li.gain * k->ee[i], Sk = li.gain * k->dd[i];
        const double Spr = li.depth > 1 ? k->dprod[i] * Sk : Sk; /* the branch's derivative kernel (KR 2.7) */
        const double M = jacobian_factor(&li, Spr, PS, m, i % m, i / m);
        Own[i] = li.lr * li.scale2 * n * k->ee[i] + li.lrb * li.scale2; /* the bias: lr_b s^2 1 1^T (KR 2.5) */
        if (li.depth > 1) Own[i] += li.scale2 * (Sk * k->acc[i]);    /* the inner layers' own terms (KR 2.7) */
        Sig[i] = li.kind == LAYER_RESID ? PS[i] + li.scale2 * S + li.scale2 * li.bvar : S + li.bvar;
        Th[i] = Own[i] + (PT ? M * PT[i] : 0);
        Sp[i] = Spr;
      }
      if (relu && li.bvar > 0) /* with biases the angles follow Sigma itself (absolute precision, KR 2.5) */
        for (size_t b = 0; b < m; ++b)
          for (size_t a = 0; a < b; ++a) {
            const double A = Sig[a + a * m], B = Sig[b + b * m];
            double omc = A > 0 && B > 0 ? 1 - Sig[a + b * m] / (sqrt(A) * sqrt(B)) : 1;
            if (omc < 0) omc = 0;
            k->th[a + b * m] = k->th[b + a * m] = bafu_kernel_angle_from_omc(omc);
          }
    }
    if ((st = check_finite(Sig, mm, li.label, "covariance Sigma")) ||
        (st = check_finite(Th, mm, li.label, "NTK Theta")))
      return st;
    for (size_t a = 0; a < m; ++a) {
      const double prev = j == 0 ? k->gram[a + a * m] / (double)d : mat(k, j - 1, MAT_SIGMA)[a + a * m];
      if ((st = check_underflow(Sig[a + a * m], prev, li.label))) return st;
    }
    if (k->progress && (j % 64 == 63 || j + 1 == J)) k->progress(j + 1, J, k->progress_ctx);
  }
  /* Backward factor (KR 5): P_{J-1} = 1, P_{j-1} = M_j .* P_j */
  double *P = mat(k, J - 1, MAT_BWD);
  for (size_t i = 0; i < mm; ++i) P[i] = 1;
  for (size_t j = J - 1; j > 0; --j) {
    const layer_info li = layer_at(&k->lay, j);
    const double *Sp = mat(k, j, MAT_SPRIME), *Pj = mat(k, j, MAT_BWD), *PS = mat(k, j - 1, MAT_SIGMA);
    double *Pm = mat(k, j - 1, MAT_BWD);
    for (size_t i = 0; i < mm; ++i) Pm[i] = jacobian_factor(&li, Sp[i], PS, m, i % m, i / m) * Pj[i];
    if ((st = check_finite(Pm, mm, k->labels[j - 1], "backward factor P"))) return st;
  }
  return BAFU_OK;
}

/* ---------------------------------------------------------------------------
 * Two inputs (KR 6). State: q = Sigma(a,a), omc = 1 - c, and for relu the
 * angle th (the primary variable; omc = 2 sin^2(th/2)). */

typedef struct {
  double q, omc, th;
  double theta_d, theta_o; /* Theta(a,a), Theta(a,b) */
} pair_state;

typedef struct {
  double sp_d, sp_o;   /* Sprime */
  double own_d, own_o; /* Gamma */
  double m_d, m_o;     /* Jacobian factor M */
} pair_out;

/* How a pair sweep computes its expectations: the activation, the table
 * (AUTO and a tabulated activation; NULL otherwise), the layer being computed
 * (the table's stamp), the last direct evaluation, reused when the same
 * arguments recur (q = 0, or a fixed point reached exactly), and a tape of
 * the first TAPE_MAX direct evaluations of pass 1, which pass 2 (the same
 * requests in the same order) reads back instead of recomputing (KR 10.4). */
#define TAPE_MAX 65536
typedef struct {
  bafu_act act;
  dm_table *dm;
  size_t stamp;
  int memo_ok;
  double memo_q, memo_omc, memo[4];
  int tape_mode; /* 0: off, 1: record, 2: read */
  size_t tape_n, tape_at;
  double *tape; /* TAPE_MAX x (q, omc, 4 expectations) */
} pair_expect_ctx;

/* Expectations for the pair at (q, omc, th): E phi^2, E phi phi, E phi'^2,
 * E phi'phi', and the post-activation 1 - c_phi = 1 - E phi phi / E phi^2. */
static bafu_status pair_expect(pair_expect_ctx *ec, const pair_state *x, double *e_d, double *e_o, double *d_d,
                               double *d_o, double *omc_phi) {
  bafu_status st;
  const bafu_act act = ec->act;
  const double q = x->q;
  dm_val v;
  switch (act) {
  case BAFU_ACT_RELU: /* KR 3.1 */
    if (q > 0) {
      *omc_phi = bafu_kernel_relu_one_minus_corr(x->th);
      *e_d = 0.5 * q;
      *e_o = 0.5 * q * (1 - *omc_phi);
      *d_d = 0.5;
      *d_o = (PI - x->th) / (2 * PI);
    } else {
      *e_d = *e_o = *d_d = *d_o = 0;
      *omc_phi = x->omc;
    }
    return BAFU_OK;
  case BAFU_ACT_LINEAR:
    *e_d = q;
    *e_o = q * (1 - x->omc);
    *d_d = *d_o = 1;
    *omc_phi = x->omc;
    return BAFU_OK;
  default:
    if (ec->dm && dm_pair(ec->dm, q, x->omc, ec->stamp, &v)) { /* KR 10.1: 1 - c_phi without cancellation */
      *e_d = q * v.a;
      *e_o = q * (v.a - x->omc * v.dhat);
      *d_d = v.b;
      *d_o = v.g;
      *omc_phi = x->omc * v.dhat / v.a;
      if (!(*omc_phi >= 0)) *omc_phi = 0;
      if (*omc_phi > 2) *omc_phi = 2;
      return BAFU_OK;
    }
    if (!(ec->memo_ok && q == ec->memo_q && x->omc == ec->memo_omc)) {
      const double *tp = ec->tape_mode == 2 && ec->tape_at < ec->tape_n ? ec->tape + 6 * ec->tape_at : NULL;
      if (tp && tp[0] == q && tp[1] == x->omc) {
        memcpy(ec->memo, tp + 2, 4 * sizeof *tp);
        ec->tape_at++;
      } else {
        if ((st = diag_exp(act, BAFU_KERNEL_AUTO, q, &ec->memo[0], &ec->memo[2]))) return st;
        if ((st = offdiag_exp(act, BAFU_KERNEL_AUTO, q, q, q * (1 - x->omc), &ec->memo[1], &ec->memo[3])))
          return st;
        if (ec->tape_mode == 1 && ec->tape_n < TAPE_MAX) {
          double *w = ec->tape + 6 * ec->tape_n++;
          w[0] = q;
          w[1] = x->omc;
          memcpy(w + 2, ec->memo, 4 * sizeof *w);
        }
      }
      ec->memo_ok = 1;
      ec->memo_q = q;
      ec->memo_omc = x->omc;
    }
    *e_d = ec->memo[0];
    *e_o = ec->memo[1];
    *d_d = ec->memo[2];
    *d_o = ec->memo[3];
    if (!(*e_d > 0))
      *omc_phi = x->omc; /* q = 0: phi is linear at 0 to leading order */
    else if (act == BAFU_ACT_ERF && x->omc <= 1 && q > 0)
      *omc_phi = erf_one_minus_corr(q, x->omc); /* KR 4.2 */
    else
      *omc_phi = (*e_d - *e_o) / *e_d; /* KR 4.3: absolute precision only */
    if (*omc_phi < 0) *omc_phi = 0;
    if (*omc_phi > 2) *omc_phi = 2;
    return BAFU_OK;
  }
}

/* The correlation state of a plain layer's output s E[phi phi] + V from the
 * expectations at its input (KR 2.2, 2.5): x->q, x->omc, x->th. */
static void plain_state(bafu_act act, double s, double V, double e_d, double omc_phi, pair_state *x) {
  x->q = s * e_d + V;
  /* 1 - corr of s E[phi phi] + V: the bias cancels in the numerator (KR 2.5) */
  double omc = V > 0 ? (x->q > 0 ? s * e_d * omc_phi / x->q : omc_phi) : omc_phi;
  x->th = bafu_kernel_angle_from_omc(omc);
  if (act == BAFU_ACT_RELU) { /* th is primary: omc from it */
    const double h = sin(0.5 * x->th);
    omc = 2 * h * h;
  }
  x->omc = omc;
}

/* One layer of the pair recursion: x (state after layer j-1) -> x (after j). */
static bafu_status pair_step(const bafu_net_params *p, const layer_info *li, double n, pair_expect_ctx *ec,
                             pair_state *x, pair_out *o) {
  const double s = li->gain;
  double e_d, e_o, d_d, d_o, omc_phi;
  pair_state xe = *x; /* the activation's argument: the stream, or f / r at unit variance (KR 2.6) */
  if (li->norm) {
    if (!(x->q > 0)) {
      bafu_error(BAFU_ENUMERIC, "branch_norm: the stream entering block %d has zero variance (its rms has no inverse)",
                 li->label);
      return BAFU_ENUMERIC; /* (spelt out: the caller's outputs are then provably unread) */
    }
    xe.q = 1;
  }
  bafu_status st;
  /* KR 2.7: the inner layers of a branch of K layers, h_h = W phi(z) + c, z = u (h = 1) or h_{h-1}:
     the product of their derivative kernels (dp) and their own terms carried through the later
     inner layers (acc) */
  double dp_d = 1, dp_o = 1, acc_d = 0, acc_o = 0;
  for (size_t h = 1; h < li->depth; ++h) {
    if ((st = pair_expect(ec, &xe, &e_d, &e_o, &d_d, &d_o, &omc_phi))) return st;
    const double D_d = s * d_d, D_o = s * d_o;
    acc_d = D_d * acc_d + (li->lr * n * e_d + li->lrb);
    acc_o = D_o * acc_o + (li->lr * n * e_o + li->lrb);
    dp_d *= D_d;
    dp_o *= D_o;
    plain_state(p->act, s, li->bvar, e_d, omc_phi, &xe);
  }
  if ((st = pair_expect(ec, &xe, &e_d, &e_o, &d_d, &d_o, &omc_phi))) return st;
  o->sp_d = s * d_d;
  o->sp_o = s * d_o;
  o->own_d = li->lr * li->scale2 * n * e_d + li->lrb * li->scale2; /* + the bias's lr_b s^2 (KR 2.5) */
  o->own_o = li->lr * li->scale2 * n * e_o + li->lrb * li->scale2;
  if (li->depth > 1) { /* KR 2.7 */
    o->own_d += li->scale2 * (o->sp_d * acc_d);
    o->own_o += li->scale2 * (o->sp_o * acc_o);
    o->sp_d *= dp_d;
    o->sp_o *= dp_o;
  }
  double omc;
  if (li->kind == LAYER_RESID) { /* KR 3.2, 6; the bias adds s^2 V to both variance and covariance */
    if (li->norm) { /* KR 2.6: the branch's Jacobian (beta / r) W D, r^2 = q for both samples */
      o->m_d = 1 + li->scale2 * (o->sp_d / x->q);
      o->m_o = 1 + li->scale2 * (o->sp_o / x->q);
    } else {
      o->m_d = 1 + li->scale2 * o->sp_d;
      o->m_o = 1 + li->scale2 * o->sp_o;
    }
    const double qn = x->q + li->scale2 * s * e_d + li->scale2 * li->bvar;
    omc = qn > 0 ? (x->q * x->omc + li->scale2 * s * e_d * omc_phi) / qn : x->omc;
    x->q = qn;
  } else {
    o->m_d = o->sp_d;
    o->m_o = o->sp_o;
    plain_state(p->act, s, li->bvar, e_d, omc_phi, x);
    x->theta_d = o->own_d + o->m_d * x->theta_d;
    x->theta_o = o->own_o + o->m_o * x->theta_o;
    return BAFU_OK;
  }
  x->th = bafu_kernel_angle_from_omc(omc);
  if (p->act == BAFU_ACT_RELU) { /* th is primary: omc from it */
    const double h = sin(0.5 * x->th);
    omc = 2 * h * h;
  }
  x->omc = omc;
  x->theta_d = o->own_d + o->m_d * x->theta_d;
  x->theta_o = o->own_o + o->m_o * x->theta_o;
  return BAFU_OK;
}

/* The initial state and layer 0's outputs when layer 0 reads x (KR 2.1, 6). */
static void pair_input_layer(const bafu_net_params *p, const layer_info *li, double corr, pair_state *x,
                             pair_out *o) {
  const double d = (double)input_dim(p);
  x->q = li->gain + li->bvar;
  x->theta_d = o->own_d = li->lr * d + li->lrb;
  x->theta_o = o->own_o = li->lr * d * corr + li->lrb;
  o->sp_d = o->sp_o = o->m_d = o->m_o = 0;
  if (li->bvar > 0) { /* corr of f = W x + c: (gain corr + V) / (gain + V) (KR 2.5) */
    x->omc = li->gain * x->omc / (li->gain + li->bvar);
    x->th = bafu_kernel_angle_from_omc(x->omc);
    if (p->act == BAFU_ACT_RELU) {
      const double h = sin(0.5 * x->th);
      x->omc = 2 * h * h;
    }
  }
}

/* ---------------------------------------------------------------------------
 * The two-input sweep (KR 5, 6): pass 1 runs the recursion, checks it and keeps
 * the state at the start of every block of B layers and each block's product of
 * Jacobian factors; pass 2 replays each block from its checkpoint (the same
 * requests, so the same numbers bit for bit), forms the backward factors of the
 * block from the top down and emits its rows. */

typedef struct { /* |prod M| = mant 2^exp (mant = 0 after a zero factor) */
  double mant;
  int exp;
} scaled;

static void scaled_mul(scaled *s, double f) {
  int e;
  s->mant = frexp(s->mant * f, &e);
  s->exp += e;
}

typedef struct {
  const bafu_net_params *p;
  const bafu_layout *lay;
  double corr, n;
  pair_expect_ctx ec;
} pair_run;

/* Layer j from state x (the state before layer j); its outputs into o. */
static bafu_status pair_layer(pair_run *r, size_t j, layer_info *li, pair_state *x, pair_out *o) {
  *li = layer_at(r->lay, j);
  r->ec.stamp = j;
  if (li->kind == LAYER_INPUT) {
    pair_input_layer(r->p, li, r->corr, x, o);
    return BAFU_OK;
  }
  return pair_step(r->p, li, r->n, &r->ec, x, o);
}

static pair_state pair_initial(const bafu_net_params *p, double corr) {
  pair_state x = {.q = 1, .omc = 1 - corr, .th = acos(corr), .theta_d = 0, .theta_o = 0};
  if (p->act == BAFU_ACT_RELU) {
    const double h = sin(0.5 * x.th);
    x.omc = 2 * h * h;
  }
  return x;
}

/* Per block b of the sweep: the state before its first layer s, the product
 * M_s ... M_e of its Jacobian factors (diagonal, off-diagonal) and, for the
 * overflow check of the backward factors inside the block, an exponent E with
 * |M_{j+1} ... M_e| < 2^E for every layer j of the block (KR 5). */
typedef struct {
  pair_state x;
  scaled prod[2];
  int suffix_exp[2];
} pair_block;

/* Pass 1 over layers [0, J): fills blk (blocks of B layers). */
static bafu_status pair_pass1(pair_run *r, size_t J, size_t B, pair_block *blk, bafu_progress_fn progress,
                              void *pctx) {
  pair_state x = pair_initial(r->p, r->corr);
  scaled seg[2] = {{0.5, 1}, {0.5, 1}}; /* M_{z+1} ... M_j, z the last zero factor of the block (or s - 1) */
  int lo[2] = {INT_MAX, INT_MAX};       /* the smallest exponent of seg over the layers of the block since z */
  for (size_t j = 0; j < J; ++j) {
    pair_block *b = &blk[j / B];
    if (j % B == 0) {
      b->x = x;
      for (int m = 0; m < 2; ++m) {
        b->prod[m] = seg[m] = (scaled){0.5, 1}; /* 1 */
        lo[m] = INT_MAX;
      }
    }
    layer_info li;
    pair_out o;
    const double q_prev = x.q;
    bafu_status st = pair_layer(r, j, &li, &x, &o);
    if (st) return st;
    if (progress && (j % 64 == 63 || j + 1 == J)) progress(j + 1, 2 * J, pctx);
    if (!(isfinite(x.q) && isfinite(x.theta_d) && isfinite(x.theta_o) && isfinite(o.m_d) && isfinite(o.m_o) &&
          isfinite(o.own_d) && isfinite(o.own_o) && isfinite(x.omc) && isfinite(x.th)))
      return bafu_error(BAFU_ENUMERIC, "depth/sigma_w2/branch_scale: the kernel recursion overflowed at layer %d",
                        li.label);
    if ((st = check_underflow(x.q, q_prev, li.label))) return st;
    const double f[2] = {o.m_d, o.m_o};
    for (int m = 0; m < 2; ++m) {
      if (f[m] == 0) { /* the partial products reaching back past layer j vanish */
        b->prod[m] = (scaled){0, 0};
        seg[m] = (scaled){0.5, 1};
        lo[m] = 1;
      } else {
        if (b->prod[m].mant != 0) scaled_mul(&b->prod[m], f[m]);
        scaled_mul(&seg[m], f[m]);
        if (seg[m].exp < lo[m]) lo[m] = seg[m].exp;
      }
      /* |seg_j| in [2^(exp_j - 1), 2^exp_j): M_{i+1} ... M_j = seg_j / seg_i < 2^(exp_j - lo + 1) */
      b->suffix_exp[m] = seg[m].exp - lo[m] + 1;
    }
  }
  return BAFU_OK;
}

/* Replay block [s, e] from its checkpoint: the rows (without the backward
 * factor) into rows[0 .. e - s], the Jacobian factors into fac (2 per layer). */
static bafu_status pair_replay(pair_run *r, const pair_block *b, size_t s, size_t e, bafu_kernel_pair *rows,
                               double *fac) {
  pair_state x = b->x;
  for (size_t j = s; j <= e; ++j) {
    layer_info li;
    pair_out o;
    bafu_status st = pair_layer(r, j, &li, &x, &o);
    if (st) return st; /* cannot happen: pass 1 ran the same layers */
    rows[j - s] = (bafu_kernel_pair){.index = j,
                                     .label = li.label,
                                     .q = x.q,
                                     .corr = 1 - x.omc,
                                     .one_minus_corr = x.omc,
                                     .angle = x.th,
                                     .sprime_diag = o.sp_d,
                                     .sprime = o.sp_o,
                                     .ntk_diag = x.theta_d,
                                     .ntk = x.theta_o,
                                     .own_diag = o.own_d,
                                     .own = o.own_o,
                                     .ntk_corr = x.theta_d != 0 ? x.theta_o / x.theta_d : 0};
    fac[2 * (j - s)] = o.m_d;
    fac[2 * (j - s) + 1] = o.m_o;
  }
  return BAFU_OK;
}

/* The backward factors of block [s, e] from the top down, P_e = top (KR 5):
 * P_{j-1} = M_j P_j, the order of the layer-by-layer product. Returns the
 * first layer (from the top) whose factor is not finite, or SIZE_MAX. */
static size_t pair_backward(size_t s, size_t e, const double top[2], const double *fac, bafu_kernel_pair *rows) {
  double pd = top[0], po = top[1];
  for (size_t j = e + 1; j-- > s;) {
    rows[j - s].bwd_diag = pd;
    rows[j - s].bwd = po;
    if (!(isfinite(pd) && isfinite(po))) return j;
    pd *= fac[2 * (j - s)];
    po *= fac[2 * (j - s) + 1];
  }
  return SIZE_MAX;
}

bafu_status bafu_kernel_two_inputs(const bafu_net_params *p, double corr, bafu_kernel_pair_fn fn, void *ctx) {
  return bafu_kernel_two_inputs_method(p, corr, BAFU_KERNEL_AUTO, fn, ctx, NULL, NULL);
}

bafu_status bafu_kernel_two_inputs_progress(const bafu_net_params *p, double corr, bafu_kernel_pair_fn fn, void *ctx,
                                            bafu_progress_fn progress, void *pctx) {
  return bafu_kernel_two_inputs_method(p, corr, BAFU_KERNEL_AUTO, fn, ctx, progress, pctx);
}

bafu_status bafu_kernel_two_inputs_method(const bafu_net_params *p, double corr, bafu_kernel_method method,
                                          bafu_kernel_pair_fn fn, void *ctx, bafu_progress_fn progress, void *pctx) {
  bafu_status st = bafu_net_params_check(p);
  if (st) return st;
  if (!(isfinite(corr) && corr >= -1 && corr <= 1))
    return bafu_error(BAFU_EINVAL, "corr: must be a number in [-1, 1], got %g", corr);
  if (!fn) return bafu_error(BAFU_EINVAL, "kernel: no callback given");
  if (method != BAFU_KERNEL_AUTO && method != BAFU_KERNEL_DIRECT)
    return bafu_error(BAFU_EINVAL, "kernel: expectation method %d is not available for two inputs", (int)method);
  bafu_layout lay;
  bafu_layout_build(p, &lay); /* p was checked above */
  const size_t J = lay.J;
  size_t B = (size_t)ceil(sqrt((double)J));
  if (B < 4096) B = 4096;
  if (B > J) B = J;
  const size_t nb = (J + B - 1) / B;
  const double bytes = (double)nb * (double)sizeof(pair_block) + (double)B * (sizeof(bafu_kernel_pair) + 2 * sizeof(double));
  if ((st = bafu_memory_check(bytes, "depth: the kernel recursion"))) return st;
  pair_block *blk = malloc(nb * sizeof *blk);
  bafu_kernel_pair *rows = malloc(B * sizeof *rows);
  double *fac = malloc(2 * B * sizeof *fac);
  pair_run r = {p, &lay, corr, (double)p->width, {.act = p->act}};
  if (!blk || !rows || !fac) {
    st = bafu_error(BAFU_ENOMEM, "depth: out of memory (%.3g GiB)", bytes / 1073741824.0);
    goto done;
  }
  if (act_tabulated(p->act)) {
    if (method == BAFU_KERNEL_AUTO && (st = dm_alloc(p->act, NULL, &r.ec.dm))) goto done;
    r.ec.tape = malloc(6 * TAPE_MAX * sizeof *r.ec.tape);
    r.ec.tape_mode = r.ec.tape ? 1 : 0; /* without it, pass 2 recomputes */
  }
  /* pass 1: the whole recursion, checked; checkpoints and block products */
  if ((st = pair_pass1(&r, J, B, blk, progress, pctx))) goto done;
  if (r.ec.dm) dm_freeze(r.ec.dm, 1); /* the replays make the same requests: the same answers */
  r.ec.tape_mode = 0; /* (the overflow checks below replay single blocks: no tape) */
  /* the backward factor at the top of every block, P_{e_b} = prod of the later blocks' products,
     kept as mantissa and exponent; checked for overflow from the top down before anything is emitted */
  scaled top[2] = {{0.5, 1}, {0.5, 1}};
  for (size_t b = nb; b-- > 0;) {
    const size_t s = b * B, e = s + B < J ? s + B - 1 : J - 1;
    const double t[2] = {ldexp(top[0].mant, top[0].exp), ldexp(top[1].mant, top[1].exp)};
    int safe = 1;
    for (int m = 0; m < 2; ++m) {
      if (!isfinite(t[m]) || (top[m].mant != 0 && top[m].exp + blk[b].suffix_exp[m] > 1022)) safe = 0;
    }
    if (!safe) { /* near or past overflow: the exact factors of this block decide */
      if ((st = pair_replay(&r, &blk[b], s, e, rows, fac))) goto done;
      const size_t bad = pair_backward(s, e, t, fac, rows);
      if (bad != SIZE_MAX) {
        st = bafu_error(BAFU_ENUMERIC, "depth/sigma_w2: the backward factor overflowed at layer %d",
                        layer_at(&lay, bad).label);
        goto done;
      }
    }
    /* store P_{e_b} for pass 2 in the block's product slot, then move below the block */
    const scaled pb[2] = {blk[b].prod[0], blk[b].prod[1]};
    for (int m = 0; m < 2; ++m) {
      blk[b].prod[m] = top[m];
      if (pb[m].mant == 0 || top[m].mant == 0) {
        top[m] = (scaled){0, 0};
      } else {
        top[m].mant *= pb[m].mant; /* in [1/4, 1) */
        top[m].exp += pb[m].exp;
        scaled_mul(&top[m], 1);
      }
    }
  }
  /* pass 2: replay every block, form its backward factors, emit its rows */
  if (r.ec.tape) {
    r.ec.tape_mode = 2;
    r.ec.tape_at = 0;
  }
  for (size_t b = 0; b < nb; ++b) {
    const size_t s = b * B, e = s + B < J ? s + B - 1 : J - 1;
    if ((st = pair_replay(&r, &blk[b], s, e, rows, fac))) goto done;
    const double t[2] = {ldexp(blk[b].prod[0].mant, blk[b].prod[0].exp), ldexp(blk[b].prod[1].mant, blk[b].prod[1].exp)};
    if (pair_backward(s, e, t, fac, rows) != SIZE_MAX) { /* cannot happen: checked above */
      st = bafu_error(BAFU_ENUMERIC, "depth/sigma_w2: the backward factor overflowed");
      goto done;
    }
    for (size_t j = s; j <= e; ++j) {
      if (progress && (j % 64 == 63 || j + 1 == J)) progress(J + j + 1, 2 * J, pctx);
      if (fn(&rows[j - s], ctx)) goto done; /* the caller stopped the sweep: not an error */
    }
  }
done:
  dm_free(r.ec.dm);
  free(r.ec.tape);
  free(blk);
  free(rows);
  free(fac);
  return st;
}
