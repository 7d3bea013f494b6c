/* test_kernel.c: the infinite-width kernel recursions (theory/kernel.md)
 * against closed forms at odd parameters, a long-double reference, the depth
 * asymptotics of ReLU networks, the quadrature path, the one-input moment
 * recursion of bafu/moments.h and Monte Carlo of the finite-width engine. */
#define _DEFAULT_SOURCE /* setenv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/kernel.h"
#include "bafu/mc.h"
#include "bafu/moments.h"
#include "testutil.h"

static const double PI = 3.14159265358979323846;
#define EPS DBL_EPSILON

/* ---------------------------------------------------------------------------
 * Helpers */

/* Collect every layer of the two-input recursion. */
typedef struct {
  size_t n, cap;
  bafu_kernel_pair *v;
} pair_list;

static int collect(const bafu_kernel_pair *l, void *ctx) {
  pair_list *pl = ctx;
  ck_assert_uint_eq(l->index, pl->n);
  ck_assert_uint_lt(pl->n, pl->cap);
  pl->v[pl->n++] = *l;
  return 0;
}

static pair_list run_pairs(const bafu_net_params *p, double corr) {
  pair_list pl = {0, bafu_kernel_count_layers(p), NULL};
  pl.v = malloc(pl.cap * sizeof *pl.v);
  ck_assert_ptr_nonnull(pl.v);
  ck_assert_ok(bafu_kernel_two_inputs(p, corr, collect, &pl));
  ck_assert_uint_eq(pl.n, pl.cap);
  return pl;
}

static bafu_kernel *run_batch(const bafu_net_params *p, const double *X, bafu_kernel_method meth) {
  bafu_kernel *k;
  ck_assert_ok(bafu_kernel_alloc(p, &k));
  ck_assert_ok(bafu_kernel_set_method(k, meth));
  ck_assert_ok(bafu_kernel_run(k, X));
  return k;
}

/* Deterministic odd inputs: d x m, entries in (-1.5, 1.5), not parallel. */
static double *odd_inputs(size_t d, size_t m) {
  double *X = malloc(d * m * sizeof *X);
  for (size_t b = 0; b < m; ++b)
    for (size_t i = 0; i < d; ++i) X[i + b * d] = 1.5 * sin(2.385 * (double)(i + 1) + 1.17 * (double)(b * b + 1));
  return X;
}

/* Scale column b of X (d x m) by 0.4 + 0.8 b: samples whose variances differ
 * by up to a factor 25, so that normalising each sample by its own rms
 * (KR 2.6) changes the kernel far from a common rescaling. */
static void spread_inputs(double *X, size_t d, size_t m) {
  for (size_t b = 0; b < m; ++b)
    for (size_t i = 0; i < d; ++i) X[i + b * d] *= 0.4 + 0.8 * (double)b;
}

static double gram(const double *X, size_t d, size_t a, size_t b) {
  double g = 0;
  for (size_t i = 0; i < d; ++i) g += X[i + a * d] * X[i + b * d];
  return g;
}

/* Compare two m x m matrices entrywise: |a - b| <= rtol * max|b| (a scale
 * for the whole matrix, so that near-zero off-diagonals are judged fairly). */
static void assert_mat_close(const double *A, const double *B, size_t m, double rtol, const char *what, int label) {
  double scale = 0;
  for (size_t i = 0; i < m * m; ++i) scale = fmax(scale, fabs(B[i]));
  for (size_t i = 0; i < m * m; ++i)
    ck_assert_msg(isfinite(A[i]) && fabs(A[i] - B[i]) <= rtol * scale,
                  "%s at layer %d entry %zu: %.17g vs %.17g (rel %.3g > %.3g)", what, label, i, A[i], B[i],
                  fabs(A[i] - B[i]) / (scale > 0 ? scale : 1), rtol);
}

/* ---------------------------------------------------------------------------
 * 1. The ReLU map in angle form (theory/kernel.md 3.1). */

/* Reference 1 - c' in long double: the series for small th (KR 3.1, terms to
 * th^9: truncation th^10/(10!) relative), the direct formula otherwise (its
 * cancellation costs a factor 2/th^2 of the long double epsilon). */
static long double relu_omc_ref(long double th) {
  const long double pi = acosl(-1.0L);
  if (th < 1e-2L) {
    const long double t2 = th * th;
    const long double one_m_cos = t2 / 2 - t2 * t2 / 24 + t2 * t2 * t2 / 720 - t2 * t2 * t2 * t2 / 40320;
    const long double g = th * t2 * (1.0L / 3 - t2 / 30 + t2 * t2 / 840 - t2 * t2 * t2 / 45360);
    return one_m_cos - g / pi;
  }
  return 1 - (sinl(th) + (pi - th) * cosl(th)) / pi;
}

START_TEST(test_relu_map) {
  /* c' = (sqrt(1 - c^2) + (pi - acos c) c) / pi at odd c, to a few ulps */
  const double cs[] = {0.3, -0.77, 0.2385, 0.9993, -0.999, 0.0};
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; ++i) {
    const double c = cs[i];
    const double ref = (sqrt(1 - c * c) + (PI - acos(c)) * c) / PI;
    ck_assert_close(1 - bafu_kernel_relu_one_minus_corr(acos(c)), ref, 8 * EPS, 4 * EPS);
    /* and the library's bivariate closed form at q1 != q2 */
    const double q1 = 1.37, q2 = 0.61;
    double ee, dd;
    ck_assert_ok(bafu_act_bivariate(BAFU_ACT_RELU, q1, q2, c * sqrt(q1 * q2), &ee, &dd));
    ck_assert_close(ee / (0.5 * sqrt(q1 * q2)), 1 - bafu_kernel_relu_one_minus_corr(acos(c)), 16 * EPS, 8 * EPS);
  }
  ck_assert_close(1 - bafu_kernel_relu_one_minus_corr(PI), 0.0, 0, 4 * EPS);
  ck_assert_close(bafu_kernel_relu_one_minus_corr(0.0), 0.0, 0, 0);
  /* 1 - c' to full relative precision, down to tiny angles */
  const double ths[] = {1e-9, 3.7e-7, 2.385e-4, 9.1e-3, 0.1, 0.71, 0.999, 1.0, 1.23, 2.385, 3.1};
  for (size_t i = 0; i < sizeof ths / sizeof ths[0]; ++i) {
    const double th = ths[i];
    ck_assert_close(bafu_kernel_relu_one_minus_corr(th), (double)relu_omc_ref(th), 8 * EPS, 0);
    /* the angle round trip: acos(1 - omc) with omc = 2 sin^2(th/2) */
    const double h = sin(th / 2);
    ck_assert_close(bafu_kernel_angle_from_omc(2 * h * h), th, 6 * EPS, 0);
  }
  ck_assert_close(bafu_kernel_angle_from_omc(2.0), PI, EPS, 0);
}
END_TEST

/* ---------------------------------------------------------------------------
 * 2. Angle recursion against the naive recursion in long double (KR 3.4). */

START_TEST(test_relu_long_double) {
  const long double pi = acosl(-1.0L);
  /* MLP, depth 200, s = 2, distinct learning rates */
  bafu_net_params p = bafu_net_params_default();
  p.depth = 200;
  p.width = 100;
  p.input_dim = 50;
  p.lr_input = 0.63;
  p.lr_hidden = 1.37;
  const double corrs[] = {0.5, -0.6, 0.99991};
  for (size_t ic = 0; ic < 3; ++ic) {
    const double corr = corrs[ic];
    pair_list pl = run_pairs(&p, corr);
    long double c = corr, q = 2, td = 0.63L * 50, to = 0.63L * 50 * corr;
    ck_assert_close(pl.v[0].ntk, (double)to, 1e-15, 0);
    for (size_t j = 1; j < 200; ++j) {
      const long double th = acosl(c);
      const long double cn = (sqrtl(1 - c * c) + (pi - th) * c) / pi;
      td = 1.37L * 100 * q / 2 + td;
      to = 1.37L * 100 * q / 2 * cn + (pi - th) / pi * to;
      c = cn;
      const bafu_kernel_pair *l = &pl.v[j];
      ck_assert_int_eq(l->label, (int)j + 1);
      ck_assert_close(l->one_minus_corr, (double)(1 - c), 1e-12, 0);
      ck_assert_close(l->angle, (double)acosl(c), 1e-12, 0);
      ck_assert_close(l->ntk_diag, (double)td, 1e-13, 0);
      ck_assert_close(l->ntk, (double)to, 1e-12, 0);
      ck_assert_close(l->q, 2.0, 1e-15, 0);
    }
    ck_assert_msg(pl.v[199].one_minus_corr < 2e-3, "1 - c_200 = %g", pl.v[199].one_minus_corr);
    free(pl.v);
  }
  /* ResNet without embedding, relu, beta = 1.7/sqrt(200): Sigma' = Sigma + beta^2 s E[phi phi] */
  p.arch = BAFU_ARCH_RESNET;
  p.input_dim = 100;
  p.branch_scale = 1.7;
  p.sigma_w2 = 1.9;
  const long double b2 = 1.7L * 1.7L / 200, s = 1.9L;
  pair_list pl = run_pairs(&p, 0.5);
  long double q = 1, cov = 0.5;
  for (size_t j = 0; j < 200; ++j) {
    const long double c = cov / q, th = acosl(c);
    const long double ephi = q / (2 * pi) * (sqrtl(1 - c * c) + (pi - th) * c);
    cov += b2 * s * ephi;
    q += b2 * s * q / 2;
    ck_assert_close(pl.v[j].q, (double)q, 1e-13, 0);
    ck_assert_close(pl.v[j].one_minus_corr, (double)(1 - cov / q), 1e-12, 0);
  }
  free(pl.v);
}
END_TEST

/* ---------------------------------------------------------------------------
 * 3. Depth 10^6: 1 - c_l ~ 9 pi^2 / (2 l^2) (1 - 3 ln l / l - K / l) and
 * Theta(a,b)/Theta(a,a) = 1/4 + (3/8) ln l / l + K'/l (theory/kernel.md 3.5). */

typedef struct {
  double omc[7], ntkr[7], bwd[7];
  size_t count, nonfinite;
} deep_rec;

static int deep_cb(const bafu_kernel_pair *l, void *ctx) {
  deep_rec *r = ctx;
  const double v[] = {l->q, l->corr, l->one_minus_corr, l->angle, l->sprime_diag, l->sprime, l->ntk_diag,
                      l->ntk, l->own_diag, l->own, l->bwd_diag, l->bwd};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; ++i)
    if (!isfinite(v[i])) ++r->nonfinite;
  ++r->count;
  for (int e = 2, L = 100; e <= 6; ++e, L *= 10)
    if (l->label == L) {
      r->omc[e] = l->one_minus_corr;
      r->ntkr[e] = l->ntk / l->ntk_diag;
      r->bwd[e] = l->bwd;
    }
  return 0;
}

START_TEST(test_relu_deep_asymptotics) {
  bafu_net_params p = bafu_net_params_default(); /* relu MLP, s = 2 */
  p.depth = 1000000;
  deep_rec r = {{0}, {0}, {0}, 0, 0};
  ck_assert_ok(bafu_kernel_two_inputs(&p, 0.5, deep_cb, &r));
  ck_assert_uint_eq(r.count, 1000000);
  ck_assert_uint_eq(r.nonfinite, 0);
  const double A = 9 * PI * PI / 2;
  double K[7], K2[7];
  for (int e = 4; e <= 6; ++e) {
    const double l = pow(10, e);
    const double ratio = r.omc[e] * l * l / A;
    K[e] = l * (1 - ratio) - 3 * log(l);
    K2[e] = l * (r.ntkr[e] - 0.25) - 0.375 * log(l);
  }
  /* the leading law at l = 10^6: |1 - ratio| <= (3 ln l + |K| + 10)/l ~ 6.5e-5
   * with |K| ~ 11 measured; a missing or wrong log term moves K by 2.3 per
   * decade of l, so K(10^5) and K(10^6) must agree to the next order
   * O(ln^2 l / l) ~ 1e-3 (measured 0.013 between 10^5 and 10^6) */
  const double l6 = 1e6;
  ck_assert_msg(fabs(r.omc[6] * l6 * l6 / A - 1) < (3 * log(l6) + 25) / l6, "ratio at 1e6: %.10g",
                r.omc[6] * l6 * l6 / A);
  ck_assert_msg(fabs(K[6] - K[5]) < 0.05 && fabs(K[5] - K[4]) < 0.3, "K: %.6g %.6g %.6g", K[4], K[5], K[6]);
  /* NTK correlation -> 1/4 with the (3/8) ln l / l correction */
  ck_assert_msg(fabs(r.ntkr[6] - 0.25) < 2 * log(l6) / l6, "ntk ratio %.12g", r.ntkr[6]);
  ck_assert_msg(fabs(K2[6] - K2[5]) < 0.02 && fabs(K2[5] - K2[4]) < 0.05, "K2: %.6g %.6g %.6g", K2[4], K2[5], K2[6]);
  /* backward factor P_l(a,b) = prod_{k>l} (1 - th_{k-1}/pi)
   *   = (l/L)^3 (1 + 4.5 (ln l / l - ln L / L) + O(1/l)), measured O(1/l) term ~ 14/l */
  for (int e = 4; e <= 5; ++e) {
    const double l = pow(10, e), lead = pow(l / l6, 3) * (1 + 4.5 * (log(l) / l - log(l6) / l6));
    ck_assert_msg(fabs(r.bwd[e] / lead - 1) < 30 / l, "P at l = %g: %.12g vs %.12g", l, r.bwd[e], lead);
  }
}
END_TEST

/* ---------------------------------------------------------------------------
 * 4. Linear MLP closed forms (KR 2.2): Sigma_l = s^l G/d, Sprime = s,
 * Theta_l = s^(l-1) G (lr_in + (l-1) lr_h n/d), readout adds lr_out n s^L G/d,
 * P_j = s^(J-1-j). */

START_TEST(test_linear_closed_form) {
  const size_t d = 4, m = 3, L = 5, n = 100;
  const double s = 1.37, lin = 0.3, lh = 2.1, lout = 0.55;
  bafu_net_params p = bafu_net_params_default();
  p.act = BAFU_ACT_LINEAR;
  p.width = n;
  p.input_dim = d;
  p.batch = m;
  p.depth = L;
  p.sigma_w2 = s;
  p.lr_input = lin;
  p.lr_hidden = lh;
  p.lr_output = lout;
  for (int mse = 0; mse <= 1; ++mse) {
    p.signal = mse ? BAFU_SIGNAL_MSE : BAFU_SIGNAL_PROBE;
    double *X = odd_inputs(d, m);
    bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
    const size_t J = bafu_kernel_nlayers(k);
    ck_assert_uint_eq(J, L + (size_t)mse);
    double Sig[9], Sp[9], Th[9], Own[9], P[9];
    for (size_t j = 0; j < J; ++j) {
      const double l = (double)(j + 1);
      ck_assert_int_eq(bafu_kernel_label(k, j), (int)l);
      double coef = lin + (fmin(l, (double)L) - 1) * lh * (double)n / (double)d;
      if (j == L) coef += lout * (double)n / (double)d;
      const double lr = j == 0 ? lin : j < L ? lh : lout;
      for (size_t b = 0; b < m; ++b)
        for (size_t a = 0; a < m; ++a) {
          const double G = gram(X, d, a, b);
          Sig[a + b * m] = pow(s, l) * G / (double)d;
          Sp[a + b * m] = j == 0 ? 0 : s;
          Th[a + b * m] = pow(s, l - 1) * G * coef;
          Own[a + b * m] = j == 0 ? lin * G : lr * (double)n * pow(s, l - 1) * G / (double)d;
          P[a + b * m] = pow(s, (double)(J - 1 - j));
        }
      const int lab = (int)l;
      assert_mat_close(bafu_kernel_sigma(k, j), Sig, m, 1e-14, "Sigma", lab);
      assert_mat_close(bafu_kernel_sprime(k, j), Sp, m, 1e-15, "Sprime", lab);
      assert_mat_close(bafu_kernel_theta(k, j), Th, m, 1e-14, "Theta", lab);
      assert_mat_close(bafu_kernel_own(k, j), Own, m, 1e-14, "Gamma", lab);
      assert_mat_close(bafu_kernel_bwd(k, j), P, m, 1e-14, "P", lab);
    }
    bafu_kernel_free(k);
    free(X);
  }
}
END_TEST

/* ---------------------------------------------------------------------------
 * 5. ReLU ResNet with embedding, one block and the mse readout, by hand
 * (KR 2.3): every matrix of layers 0, 1, 2 from acos-based formulas. */

static void relu_exp(double qa, double qb, double cab, double *ee, double *dd) {
  const double c = cab / sqrt(qa * qb), th = acos(fmin(1, fmax(-1, c)));
  *ee = sqrt(qa * qb) / (2 * PI) * (sin(th) + (PI - th) * c);
  *dd = (PI - th) / (2 * PI);
}

START_TEST(test_resnet_hand) {
  const double s = 1.7, B = 0.83, lin = 0.63, lh = 1.37, lout = 0.41, n = 64;
  const size_t d = 3, m = 2;
  bafu_net_params p = bafu_net_params_default();
  p.arch = BAFU_ARCH_RESNET;
  p.embed = 1;
  p.depth = 1;
  p.width = 64;
  p.input_dim = d;
  p.batch = m;
  p.sigma_w2 = s;
  p.branch_scale = B; /* beta = B * 1^(-A) = B */
  p.lr_input = lin;
  p.lr_hidden = lh;
  p.lr_output = lout;
  p.signal = BAFU_SIGNAL_MSE;
  const double X[6] = {1.3, -0.4, 0.7, 0.2, 0.9, -1.1};
  bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
  ck_assert_uint_eq(bafu_kernel_nlayers(k), 3);
  ck_assert_int_eq(bafu_kernel_label(k, 0), 0);
  ck_assert_int_eq(bafu_kernel_label(k, 1), 1);
  ck_assert_int_eq(bafu_kernel_label(k, 2), 2);
  double S0[4], T0[4], S1[4], T1[4], Sp1[4], O1[4], S2[4], T2[4], Sp2[4], O2[4], P0[4], P1[4], P2[4], Z[4];
  for (size_t i = 0; i < 4; ++i) {
    const double G = gram(X, d, i % 2, i / 2);
    S0[i] = s * G / (double)d;
    T0[i] = lin * G;
    Z[i] = 0;
  }
  const double b2 = B * B;
  for (size_t i = 0; i < 4; ++i) {
    double ee, dd;
    relu_exp(S0[3 * (i % 2)], S0[3 * (i / 2)], S0[i], &ee, &dd);
    if (i == 0 || i == 3) dd = 0.5; /* diagonal: th = 0 */
    S1[i] = S0[i] + b2 * s * ee;
    Sp1[i] = s * dd;
    O1[i] = lh * b2 * n * ee;
    T1[i] = O1[i] + (1 + b2 * s * dd) * T0[i];
  }
  for (size_t i = 0; i < 4; ++i) {
    double ee, dd;
    relu_exp(S1[3 * (i % 2)], S1[3 * (i / 2)], S1[i], &ee, &dd);
    if (i == 0 || i == 3) dd = 0.5;
    S2[i] = s * ee;
    Sp2[i] = s * dd;
    O2[i] = lout * n * ee;
    T2[i] = O2[i] + s * dd * T1[i];
    P2[i] = 1;
    P1[i] = s * dd;
    P0[i] = (1 + b2 * Sp1[i]) * P1[i];
  }
  assert_mat_close(bafu_kernel_sigma(k, 0), S0, m, 1e-15, "Sigma", 0);
  assert_mat_close(bafu_kernel_theta(k, 0), T0, m, 1e-15, "Theta", 0);
  assert_mat_close(bafu_kernel_own(k, 0), T0, m, 1e-15, "Gamma", 0);
  assert_mat_close(bafu_kernel_sprime(k, 0), Z, m, 0, "Sprime", 0);
  assert_mat_close(bafu_kernel_sigma(k, 1), S1, m, 1e-14, "Sigma", 1);
  assert_mat_close(bafu_kernel_sprime(k, 1), Sp1, m, 1e-14, "Sprime", 1);
  assert_mat_close(bafu_kernel_own(k, 1), O1, m, 1e-14, "Gamma", 1);
  assert_mat_close(bafu_kernel_theta(k, 1), T1, m, 1e-14, "Theta", 1);
  assert_mat_close(bafu_kernel_sigma(k, 2), S2, m, 1e-14, "Sigma", 2);
  assert_mat_close(bafu_kernel_sprime(k, 2), Sp2, m, 1e-14, "Sprime", 2);
  assert_mat_close(bafu_kernel_own(k, 2), O2, m, 1e-14, "Gamma", 2);
  assert_mat_close(bafu_kernel_theta(k, 2), T2, m, 1e-14, "Theta", 2);
  assert_mat_close(bafu_kernel_bwd(k, 2), P2, m, 0, "P", 2);
  assert_mat_close(bafu_kernel_bwd(k, 1), P1, m, 1e-14, "P", 1);
  assert_mat_close(bafu_kernel_bwd(k, 0), P0, m, 1e-14, "P", 0);
  bafu_kernel_free(k);
}
END_TEST

/* The same with a normalised branch (KR 2.6): embedding, one ReLU block that
 * reads f_0 / r_a, mse readout; samples with variances 2.3 and 0.5 (so the
 * readout reads the angle carried through the block with the gap term).
 * Block 1 evaluates the arc-cosine formulas at the unit-diagonal Sigma~_0 and
 * its Jacobian factor is 1 + beta^2 Sprime / sqrt(Sigma_0(a,a) Sigma_0(b,b)). */

START_TEST(test_norm_hand) {
  const double s = 1.7, B = 0.83, lin = 0.63, lh = 1.37, lout = 0.41, n = 64;
  const size_t d = 3, m = 2;
  bafu_net_params p = bafu_net_params_default();
  p.arch = BAFU_ARCH_RESNET;
  p.embed = 1;
  p.branch_norm = BAFU_BRANCH_NORM_RMS;
  p.depth = 1;
  p.width = 64;
  p.input_dim = d;
  p.batch = m;
  p.sigma_w2 = s;
  p.branch_scale = B;
  p.lr_input = lin;
  p.lr_hidden = lh;
  p.lr_output = lout;
  p.signal = BAFU_SIGNAL_MSE;
  const double X[6] = {1.3, -0.4, 0.7, 0.1, 0.45, -0.55};
  bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
  ck_assert_uint_eq(bafu_kernel_nlayers(k), 3);
  double S0[4], T0[4], N0[4], S1[4], T1[4], Sp1[4], O1[4], S2[4], T2[4], Sp2[4], O2[4], P0[4], P1[4], P2[4];
  for (size_t i = 0; i < 4; ++i) {
    const double G = gram(X, d, i % 2, i / 2);
    S0[i] = s * G / (double)d;
    T0[i] = lin * G;
  }
  const double b2 = B * B;
  for (size_t i = 0; i < 4; ++i) {
    const double rr = sqrt(S0[3 * (i % 2)] * S0[3 * (i / 2)]); /* r_a r_b */
    N0[i] = S0[i] / rr;
  }
  for (size_t i = 0; i < 4; ++i) {
    double ee, dd;
    relu_exp(1, 1, N0[i], &ee, &dd);
    if (i == 0 || i == 3) dd = 0.5;
    const double rr = sqrt(S0[3 * (i % 2)] * S0[3 * (i / 2)]);
    S1[i] = S0[i] + b2 * s * ee;
    Sp1[i] = s * dd;
    O1[i] = lh * b2 * n * ee;
    T1[i] = O1[i] + (1 + b2 * s * dd / rr) * T0[i];
  }
  for (size_t i = 0; i < 4; ++i) {
    double ee, dd;
    relu_exp(S1[3 * (i % 2)], S1[3 * (i / 2)], S1[i], &ee, &dd);
    if (i == 0 || i == 3) dd = 0.5;
    const double rr = sqrt(S0[3 * (i % 2)] * S0[3 * (i / 2)]);
    S2[i] = s * ee;
    Sp2[i] = s * dd;
    O2[i] = lout * n * ee;
    T2[i] = O2[i] + s * dd * T1[i];
    P2[i] = 1;
    P1[i] = s * dd;
    P0[i] = (1 + b2 * Sp1[i] / rr) * P1[i];
  }
  ck_assert_msg(S0[0] / S0[3] > 4, "the samples' variances should differ: %g, %g", S0[0], S0[3]);
  assert_mat_close(bafu_kernel_sigma(k, 0), S0, m, 1e-15, "Sigma", 0);
  assert_mat_close(bafu_kernel_theta(k, 0), T0, m, 1e-15, "Theta", 0);
  assert_mat_close(bafu_kernel_sigma(k, 1), S1, m, 1e-14, "Sigma", 1);
  assert_mat_close(bafu_kernel_sprime(k, 1), Sp1, m, 1e-14, "Sprime", 1);
  assert_mat_close(bafu_kernel_own(k, 1), O1, m, 1e-14, "Gamma", 1);
  assert_mat_close(bafu_kernel_theta(k, 1), T1, m, 1e-14, "Theta", 1);
  assert_mat_close(bafu_kernel_sigma(k, 2), S2, m, 1e-14, "Sigma", 2);
  assert_mat_close(bafu_kernel_sprime(k, 2), Sp2, m, 1e-14, "Sprime", 2);
  assert_mat_close(bafu_kernel_own(k, 2), O2, m, 1e-14, "Gamma", 2);
  assert_mat_close(bafu_kernel_theta(k, 2), T2, m, 1e-14, "Theta", 2);
  assert_mat_close(bafu_kernel_bwd(k, 2), P2, m, 0, "P", 2);
  assert_mat_close(bafu_kernel_bwd(k, 1), P1, m, 1e-14, "P", 1);
  assert_mat_close(bafu_kernel_bwd(k, 0), P0, m, 1e-14, "P", 0);
  bafu_kernel_free(k);
}
END_TEST

/* ---------------------------------------------------------------------------
 * 6. ResNet at small beta (KR 2.3): identity dominated, first order in
 * beta^2: Sigma_L - Sigma_0 = L beta^2 S(Sigma_0), Theta_L = L beta^2 lr n
 * E[phi phi](Sigma_0), P_1 - 1 = (L-1) beta^2 Sprime(Sigma_0), each up to a
 * relative O(L beta^2 s) = 2e-5. */

START_TEST(test_resnet_small_beta) {
  const bafu_act acts[] = {BAFU_ACT_RELU, BAFU_ACT_ERF};
  const size_t n = 40, m = 3, L = 10;
  const double s = 1.7, beta = 1e-3, lh = 1.37;
  for (size_t ia = 0; ia < 2; ++ia) {
    bafu_net_params p = bafu_net_params_default();
    p.arch = BAFU_ARCH_RESNET;
    p.act = acts[ia];
    p.width = n;
    p.input_dim = n;
    p.batch = m;
    p.depth = L;
    p.sigma_w2 = s;
    p.branch_scale = beta;
    p.branch_exponent = 0;
    p.lr_hidden = lh;
    double *X = odd_inputs(n, m);
    bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
    ck_assert_uint_eq(bafu_kernel_nlayers(k), L);
    double S0[9], dS[9], E0[9], Th[9], D0[9], dP[9];
    for (size_t i = 0; i < m * m; ++i) S0[i] = gram(X, n, i % m, i / m) / (double)n;
    for (size_t b = 0; b < m; ++b)
      for (size_t a = 0; a < m; ++a) {
        const size_t i = a + b * m;
        if (a == b) {
          bafu_act_moments am;
          ck_assert_ok(bafu_act_moments_eval(p.act, S0[i], &am));
          E0[i] = am.phi2;
          D0[i] = am.dphi2;
        } else {
          ck_assert_ok(bafu_act_bivariate(p.act, S0[a + a * m], S0[b + b * m], S0[i], &E0[i], &D0[i]));
        }
      }
    const double *SL = bafu_kernel_sigma(k, L - 1), *P1 = bafu_kernel_bwd(k, 0);
    for (size_t i = 0; i < m * m; ++i) {
      dS[i] = (SL[i] - S0[i]) / (beta * beta * (double)L);
      E0[i] *= s;
      Th[i] = bafu_kernel_theta(k, L - 1)[i] / (beta * beta * (double)L * lh * (double)n / s);
      dP[i] = (P1[i] - 1) / (beta * beta * (double)(L - 1));
      D0[i] *= s;
    }
    assert_mat_close(dS, E0, m, 1e-4, "(Sigma_L - Sigma_0)/(L beta^2)", (int)L);
    assert_mat_close(Th, E0, m, 1e-4, "Theta_L / (L beta^2 lr n / s)", (int)L);
    assert_mat_close(dP, D0, m, 1e-4, "(P_1 - 1)/((L-1) beta^2)", 1);
    bafu_kernel_free(k);
    free(X);
  }
}
END_TEST

/* ---------------------------------------------------------------------------
 * 7. The quadrature path: relu, erf and linear with every expectation by
 * bafu_act_bivariate_quad / bafu_act_moments_quad (no angle path) against the
 * closed forms, whole recursion, MLP and ResNet. The quadrature is accurate
 * to ~3e-15 per expectation (theory/activations.md); over 6 layers with
 * factors of order 1 we allow 1e-12 relative to each matrix's scale.
 * arch 2, 3: ResNets with normalised branches (KR 2.6), without and with
 * the embedding: the relu path carries the angles through blocks whose
 * samples have different variances (the gap term), the quadrature path
 * evaluates the normalised covariance directly. */

START_TEST(test_quadrature_path) {
  const bafu_act acts[] = {BAFU_ACT_RELU, BAFU_ACT_ERF, BAFU_ACT_LINEAR};
  const size_t m = 3, n = 24;
  for (size_t ia = 0; ia < 3; ++ia)
    for (int arch = 0; arch < 4; ++arch) {
      bafu_net_params p = bafu_net_params_default();
      p.arch = arch ? BAFU_ARCH_RESNET : BAFU_ARCH_MLP;
      p.act = acts[ia];
      p.width = n;
      p.input_dim = arch == 1 || arch == 2 ? n : 5;
      p.embed = arch == 3;
      if (arch >= 2) p.branch_norm = BAFU_BRANCH_NORM_RMS;
      p.batch = m;
      p.depth = 6;
      p.sigma_w2 = 1.7;
      p.branch_scale = 1.3;
      p.lr_input = 0.63;
      p.lr_hidden = 1.37;
      p.lr_output = 0.41;
      p.signal = BAFU_SIGNAL_MSE;
      double *X = odd_inputs(p.input_dim, m);
      if (arch >= 2) spread_inputs(X, p.input_dim, m);
      bafu_kernel *ka = run_batch(&p, X, BAFU_KERNEL_AUTO);
      bafu_kernel *kq = run_batch(&p, X, BAFU_KERNEL_QUADRATURE);
      for (size_t j = 0; j < bafu_kernel_nlayers(ka); ++j) {
        const int lab = bafu_kernel_label(ka, j);
        assert_mat_close(bafu_kernel_sigma(kq, j), bafu_kernel_sigma(ka, j), m, 1e-12, "Sigma quad", lab);
        assert_mat_close(bafu_kernel_sprime(kq, j), bafu_kernel_sprime(ka, j), m, 1e-12, "Sprime quad", lab);
        assert_mat_close(bafu_kernel_theta(kq, j), bafu_kernel_theta(ka, j), m, 1e-12, "Theta quad", lab);
        assert_mat_close(bafu_kernel_own(kq, j), bafu_kernel_own(ka, j), m, 1e-12, "Gamma quad", lab);
        assert_mat_close(bafu_kernel_bwd(kq, j), bafu_kernel_bwd(ka, j), m, 1e-12, "P quad", lab);
      }
      bafu_kernel_free(ka);
      bafu_kernel_free(kq);
      free(X);
    }
}
END_TEST

/* ---------------------------------------------------------------------------
 * 8. One input against the independent moment recursion of bafu/moments.h:
 * q = Sigma(a,a), c = Gamma(a,a), m1 = Theta(a,a), back = P(a,a), for every
 * activation (tanh, gelu, swish through the quadrature) and architecture;
 * then ResNets with normalised branches (KR 2.6, moments 2.8: unit-variance
 * expectations, beta^2 / q_{l-1} in the Jacobian), without and with the
 * embedding and mse readout, without and with biases. */

#define MOMENT_CASES (2 * 4 * BAFU_ACT_COUNT)
#define MOMENT_NORM_CASES (2 * 2 * BAFU_ACT_COUNT)

START_TEST(test_against_moments) {
  const int normed = _i >= MOMENT_CASES, i = normed ? _i - MOMENT_CASES : _i;
  const int arch = normed ? 1 + i % 2 : i % 4; /* normalised: ResNet (1) or ResNet + embedding + readout (2) */
  const bafu_act act = (bafu_act)(i / (normed ? 2 : 4) % BAFU_ACT_COUNT);
  const int biased = i >= (normed ? 2 : 4) * BAFU_ACT_COUNT; /* the same with biases (KR 2.5, moments 2.7) */
  bafu_net_params p = bafu_net_params_default();
  p.act = act;
  p.width = 30;
  p.depth = 7;
  p.sigma_w2 = 1.7;
  p.branch_scale = 1.3;
  p.lr_input = 0.63;
  p.lr_hidden = 1.37;
  p.lr_output = 0.41;
  p.arch = arch == 0 || arch == 3 ? BAFU_ARCH_MLP : BAFU_ARCH_RESNET;
  p.embed = arch == 2;
  p.signal = arch >= 2 ? BAFU_SIGNAL_MSE : BAFU_SIGNAL_PROBE;
  p.input_dim = arch == 1 ? 30 : 7;
  if (biased) p.bias_var = 0.37, p.lr_bias = 2.1, p.lr_bias_input = 0.8, p.lr_bias_output = 1.6;
  if (normed) p.branch_norm = BAFU_BRANCH_NORM_RMS;
  double *X = odd_inputs(p.input_dim, 1);
  bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
  const size_t J = bafu_kernel_nlayers(k);
  ck_assert_uint_eq(J, bafu_moments_nlayers(&p));
  bafu_moments_layer *o = malloc(J * sizeof *o);
  ck_assert_ok(bafu_moments_run(&p, gram(X, p.input_dim, 0, 0), o));
  for (size_t j = 0; j < J; ++j) {
    ck_assert_int_eq(bafu_kernel_label(k, j), o[j].label);
    ck_assert_close(bafu_kernel_sigma(k, j)[0], o[j].q, 1e-13, 0);
    ck_assert_close(bafu_kernel_own(k, j)[0], o[j].c, 1e-13, 0);
    ck_assert_close(bafu_kernel_theta(k, j)[0], o[j].m1, 1e-13, 0);
    ck_assert_close(bafu_kernel_bwd(k, j)[0], o[j].back, 1e-13, 0);
  }
  free(o);
  bafu_kernel_free(k);
  free(X);
}
END_TEST

/* ---------------------------------------------------------------------------
 * 9. Two-input path against the batch path with x_a.x_b/d = corr exactly
 * (two independent implementations of the same recursion), every activation
 * and architecture; and the exact duality identity of KR 5:
 * <Theta_j, Pi_j> = sum_{k<=j} <Gamma_k, Pi_k> with Pi = P .* I. */

#define PAIR_CASES (2 * 3 * BAFU_ACT_COUNT)
#define PAIR_NORM_CASES (2 * 2 * BAFU_ACT_COUNT)
#define PAIR_BLOCK_CASES (2 * 4 * BAFU_ACT_COUNT)

START_TEST(test_pair_vs_batch) {
  /* cases: plain, then normalised branches (KR 2.6), then branches of K = 2 or 3 layers (KR 2.7):
     ResNet, ResNet with embedding and readout, each plain or normalised */
  const int block = _i >= PAIR_CASES + PAIR_NORM_CASES;
  const int normed = !block && _i >= PAIR_CASES;
  const int i = block ? _i - PAIR_CASES - PAIR_NORM_CASES : normed ? _i - PAIR_CASES : _i;
  const int per = block ? 4 : normed ? 2 : 3; /* architectures per activation */
  const int arch = block ? 1 + i % 2 : normed ? 1 + i % 2 : i % 3;
  const bafu_act act = (bafu_act)(i / per % BAFU_ACT_COUNT);
  const int biased = i >= per * BAFU_ACT_COUNT; /* the same with biases (KR 2.5) */
  const double corr = 0.37;
  bafu_net_params p = bafu_net_params_default();
  p.act = act;
  p.width = 20;
  p.depth = 6;
  p.sigma_w2 = 1.7;
  p.branch_scale = 1.3;
  p.lr_input = 0.63;
  p.lr_hidden = 1.37;
  p.lr_output = 0.41;
  p.arch = arch == 0 ? BAFU_ARCH_MLP : BAFU_ARCH_RESNET;
  p.embed = arch == 2;
  p.signal = arch == 2 ? BAFU_SIGNAL_MSE : BAFU_SIGNAL_PROBE;
  p.input_dim = arch == 1 ? 20 : 9;
  p.batch = 2;
  if (biased) p.bias_var = 0.37, p.lr_bias = 2.1, p.lr_bias_input = 0.8, p.lr_bias_output = 1.6;
  if (normed || (block && i % 4 >= 2)) p.branch_norm = BAFU_BRANCH_NORM_RMS;
  if (block) p.block_depth = 2 + (size_t)(i / 2 % 2);
  const size_t d = p.input_dim;
  double *X = calloc(2 * d, sizeof *X);
  X[0] = sqrt((double)d);
  X[d] = sqrt((double)d) * corr;
  X[d + 1] = sqrt((double)d) * sqrt(1 - corr * corr);
  bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
  pair_list pl = run_pairs(&p, corr);
  ck_assert_uint_eq(pl.n, bafu_kernel_nlayers(k));
  double dual = 0;
  for (size_t j = 0; j < pl.n; ++j) {
    const bafu_kernel_pair *l = &pl.v[j];
    const double *S = bafu_kernel_sigma(k, j), *Sp = bafu_kernel_sprime(k, j), *T = bafu_kernel_theta(k, j),
                 *G = bafu_kernel_own(k, j), *P = bafu_kernel_bwd(k, j);
    const double tol = 1e-13;
    ck_assert_int_eq(l->label, bafu_kernel_label(k, j));
    ck_assert_close(l->q, S[0], tol, 0);
    ck_assert_close(l->q, S[3], tol, 0);
    ck_assert_close(l->corr, S[2] / S[0], tol, tol);
    ck_assert_close(l->corr, cos(l->angle), tol, tol);
    ck_assert_close(l->sprime_diag, Sp[0], tol, 0);
    ck_assert_close(l->sprime, Sp[2], tol, tol * Sp[0]);
    ck_assert_close(l->ntk_diag, T[0], tol, 0);
    ck_assert_close(l->ntk, T[2], tol, tol * T[0]);
    ck_assert_close(l->own_diag, G[0], tol, 0);
    ck_assert_close(l->own, G[2], tol, tol * G[0]);
    ck_assert_close(l->bwd_diag, P[0], tol, 0);
    ck_assert_close(l->bwd, P[2], tol, tol * P[0]);
    /* duality: E D_j = <Theta_j, Pi_j> equals the sum of E C_k */
    dual += G[0] * P[0] + G[3] * P[3];
    ck_assert_close(T[0] * P[0] + T[3] * P[3], dual, 1e-13, 0);
  }
  free(pl.v);
  bafu_kernel_free(k);
  free(X);
}
END_TEST

/* ---------------------------------------------------------------------------
 * 10. erf: 1 - c carried without cancellation (KR 4.2). One erf layer after
 * the input layer: 1 - c' against a long double reference at 1 - c = 1e-6
 * (reference good to ~1e-13), and against the first-order law
 * 1 - c' = chi (1 - c), chi = q E[phi'^2] / E[phi^2], at 1 - c = 2^-40
 * (second order relative O(1 - c) ~ 1e-12; the naive difference would be
 * wrong by ~1e-4 relative there). */

START_TEST(test_erf_stable) {
  bafu_net_params p = bafu_net_params_default();
  p.act = BAFU_ACT_ERF;
  p.depth = 2;
  p.sigma_w2 = 1.7;
  const double omcs[] = {1e-6, 0x1p-40};
  for (int i = 0; i < 2; ++i) {
    const double corr = 1 - omcs[i]; /* exact: omc is a power-of-two multiple or rounds once */
    const double omc = 1 - corr;
    pair_list pl = run_pairs(&p, corr);
    ck_assert_close(pl.v[0].one_minus_corr, omc, 4 * EPS, 0);
    const long double q = 1.7L, c = corr;
    const long double det = (1 + 2 * q) * (1 + 2 * q) - 4 * q * q * c * c;
    const long double ref = 1 - atanl(2 * q * c / sqrtl(det)) / atanl(2 * q / sqrtl(1 + 4 * q));
    if (i == 0) {
      ck_assert_close(pl.v[1].one_minus_corr, (double)ref, 1e-11, 0);
    } else {
      const double qd = 1.7;
      const double chi = qd * (4 / PI) / sqrt(1 + 4 * qd) / ((2 / PI) * atan(2 * qd / sqrt(1 + 4 * qd)));
      ck_assert_close(pl.v[1].one_minus_corr, chi * omc, 1e-10, 0);
    }
    free(pl.v);
  }
}
END_TEST

/* ---------------------------------------------------------------------------
 * 11. The finite-width engine. (a) NNGP: for a ReLU MLP at n = 2048, depth 3,
 * two fixed inputs, the empirical f_l^T f_l / n averaged over 16 draws
 * matches Sigma_l within 5 standard errors plus a finite-width allowance
 * (l - 1)/n sqrt(Sigma_aa Sigma_bb): layer 1 is exact in expectation, the
 * relu diagonal is exact at every width (E[relu(u)^2] is linear in Var u),
 * and each later layer adds a bias of half the curvature of the correlation
 * map times Var(c_hat) ~ 2/n, below 1/n for the correlations used here. */

START_TEST(test_engine_nngp) {
  bafu_net_params p = bafu_net_params_default();
  p.width = 2048;
  p.depth = 3;
  p.input_dim = 5;
  p.batch = 2;
  const size_t n = p.width, m = 2, d = 5, S = 16;
  double *X = odd_inputs(d, m);
  bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
  bafu_net *net;
  ck_assert_ok(bafu_net_alloc(&p, &net));
  bafu_net_set_inputs(net, X);
  double sum[3][4] = {{0}}, sum2[3][4] = {{0}};
  for (size_t draw = 0; draw < S; ++draw) {
    ck_assert_ok(bafu_net_draw(net, 2385, draw));
    ck_assert_ok(bafu_net_forward(net));
    for (size_t j = 0; j < 3; ++j) {
      const double *F = bafu_net_feature(net, j);
      for (size_t i = 0; i < 4; ++i) {
        const size_t a = i % 2, b = i / 2;
        double g = 0;
        for (size_t r = 0; r < n; ++r) g += F[r + a * n] * F[r + b * n];
        g /= (double)n;
        sum[j][i] += g;
        sum2[j][i] += g * g;
      }
    }
  }
  for (size_t j = 0; j < 3; ++j) {
    const double *Sig = bafu_kernel_sigma(k, j);
    for (size_t i = 0; i < 4; ++i) {
      const double mean = sum[j][i] / S, var = (sum2[j][i] - S * mean * mean) / (S - 1);
      const double se = sqrt(fmax(var, 0) / S);
      const double allow = (double)j / (double)n * sqrt(Sig[0] * Sig[3]);
      ck_assert_msg(fabs(mean - Sig[i]) <= 5 * se + allow,
                    "layer %zu entry %zu: empirical %.6g +- %.2g vs Sigma %.6g (%.2f se)", j + 1, i, mean, se,
                    Sig[i], (mean - Sig[i]) / se);
    }
  }
  bafu_net_free(net);
  bafu_kernel_free(k);
  free(X);
}
END_TEST

/* (a') NNGP with normalised branches (KR 2.6): ResNet with embedding, three
 * blocks reading f / r_a, n = 2048, three fixed inputs whose variances
 * differ by a factor 25 (spread_inputs), 32 draws; relu (_i = 0) and tanh
 * (_i = 1, with biases). Every entry of f_l^T f_l / n within 5 standard
 * errors plus the allowance l / n sqrt(Sigma_aa Sigma_bb): the embedding is
 * exact; each block reads u = f / r, a point of the sphere |u|^2 = n instead
 * of a Gaussian vector, and its expectations differ from the Gaussian ones at
 * O(1/n) (for relu the diagonal is exact at every width: f -> -f is a symmetry
 * of the law, and relu(f)^2 + relu(-f)^2 = f^2 gives E|relu(u)|^2 / n = 1/2). */

START_TEST(test_engine_norm_nngp) {
  bafu_net_params p = bafu_net_params_default();
  p.arch = BAFU_ARCH_RESNET;
  p.embed = 1;
  p.branch_norm = BAFU_BRANCH_NORM_RMS;
  p.act = _i ? BAFU_ACT_TANH : BAFU_ACT_RELU;
  p.width = 2048;
  p.depth = 3;
  p.input_dim = 5;
  p.batch = 3;
  p.sigma_w2 = 1.9;
  p.branch_scale = 1.5; /* beta^2 = 0.75: each block adds 0.7 - 1.4 to a variance */
  if (_i) p.bias_var = 0.45;
  const size_t n = p.width, m = 3, d = 5, S = 32, J = 4, mm = 9;
  double *X = odd_inputs(d, m);
  spread_inputs(X, d, m);
  bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
  ck_assert_uint_eq(bafu_kernel_nlayers(k), J);
  bafu_net *net;
  ck_assert_ok(bafu_net_alloc(&p, &net));
  bafu_net_set_inputs(net, X);
  double sum[4][9] = {{0}}, sum2[4][9] = {{0}};
  for (size_t draw = 0; draw < S; ++draw) {
    ck_assert_ok(bafu_net_draw(net, 2385, draw));
    ck_assert_ok(bafu_net_forward(net));
    for (size_t j = 0; j < J; ++j) {
      const double *F = bafu_net_feature(net, j);
      for (size_t i = 0; i < mm; ++i) {
        const size_t a = i % m, b = i / m;
        double g = 0;
        for (size_t r = 0; r < n; ++r) g += F[r + a * n] * F[r + b * n];
        g /= (double)n;
        sum[j][i] += g;
        sum2[j][i] += g * g;
      }
    }
  }
  double worst = 0;
  for (size_t j = 0; j < J; ++j) {
    const double *Sig = bafu_kernel_sigma(k, j);
    for (size_t i = 0; i < mm; ++i) {
      const size_t a = i % m, b = i / m;
      const double mean = sum[j][i] / S, var = (sum2[j][i] - S * mean * mean) / (S - 1);
      const double se = sqrt(fmax(var, 0) / S);
      const double allow = (double)j / (double)n * sqrt(Sig[a + a * m] * Sig[b + b * m]);
      worst = fmax(worst, fabs(mean - Sig[i]) / se);
      ck_assert_msg(fabs(mean - Sig[i]) <= 5 * se + allow,
                    "%s layer %zu entry %zu: empirical %.6g +- %.2g vs Sigma %.6g (%.2f se)", _i ? "tanh" : "relu", j,
                    i, mean, se, Sig[i], (mean - Sig[i]) / se);
    }
  }
  printf("normalised NNGP, %s: worst entry %.2f se\n", _i ? "tanh" : "relu", worst);
  fflush(stdout);
  bafu_net_free(net);
  bafu_kernel_free(k);
  free(X);
}
END_TEST

/* (b) Probe signal, bafu_mc_run, 32 draws, two fixed inputs: per layer
 *   E C_j  = sum_a Gamma_j(a,a) P_j(a,a)   (contribution: tests each lr weight)
 *   E D_j  = sum_a Theta_j(a,a) P_j(a,a)   (loss_decay; = tr Theta_L at the top)
 *   E|b_j|^2 = sum_a P_j(a,a)              (backward_norm^2 from the raw draws)
 * within 4 standard errors plus a finite-width allowance of 5 L / n relative:
 * at the top layer E C_L and E|b_L|^2 are exact at any width; below, the
 * masks correlate b_j with W_{j+1} and f_j at order 1/n per layer (gradient
 * independence fails at O(L/n); Hanin & Nica 2019 give corrections
 * exp(O(L/n)) - 1 with constants of a few). Configurations: ReLU MLP
 * (n = 2048), ReLU ResNet with embedding (n = 1024, beta = 1/sqrt 3), tanh
 * ResNet without embedding (n = 1024, fresh N(0, I) inputs per draw, kernel
 * at X^T X / d = I). Learning rates distinct per group;
 * inputs scaled so that lr_input's term is visible in C_1.
 * Configurations 5-7: normalised branches (KR 2.6), beta = 1.5/sqrt 3 so that
 * the Jacobian factor beta^2 Sprime / Sigma_{l-1}(a,a) is of order one:
 * ReLU with embedding and two fixed inputs of variances differing by a
 * factor 9 (spread_inputs; lr_input = 60 to keep C_0 visible), tanh without
 * embedding (fresh N(0, I) inputs), gelu with embedding and biases. */

START_TEST(test_engine_mc) {
  bafu_net_params p = bafu_net_params_default();
  p.depth = 3;
  p.batch = 2;
  p.lr_input = 0.63;
  p.lr_hidden = 1.37;
  p.sigma_w2 = 1.9;
  if (_i == 0) {
    p.width = 2048;
    p.input_dim = 5;
  } else if (_i == 1) {
    p.arch = BAFU_ARCH_RESNET;
    p.embed = 1;
    p.width = 1024;
    p.input_dim = 5;
  } else if (_i == 2) {
    p.arch = BAFU_ARCH_RESNET;
    p.act = BAFU_ACT_TANH;
    p.width = 1024;
    p.input_dim = 1024;
  } else if (_i <= 4) { /* biases (KR 2.5): a rate lr_b ~ n makes the bias's own term count */
    p.arch = _i == 3 ? BAFU_ARCH_MLP : BAFU_ARCH_RESNET;
    p.embed = _i == 4;
    p.width = _i == 3 ? 2048 : 1024;
    p.input_dim = 5;
    p.bias_var = 0.45;
    p.lr_bias = 700;
  } else { /* normalised branches (KR 2.6) */
    p.arch = BAFU_ARCH_RESNET;
    p.branch_norm = BAFU_BRANCH_NORM_RMS;
    p.branch_scale = 1.5;
    p.width = 1024;
    p.act = _i == 5 ? BAFU_ACT_RELU : _i == 6 ? BAFU_ACT_TANH : BAFU_ACT_GELU;
    p.embed = _i != 6;
    p.input_dim = _i == 6 ? 1024 : 5;
    if (_i == 5) p.lr_input = 60;
    if (_i == 7) p.bias_var = 0.45, p.lr_bias = 700;
  }
  const size_t m = 2, S = 32, d = p.input_dim;
  double *X = odd_inputs(d, m);
  int fresh = 0;
  if (_i == 5) {
    spread_inputs(X, d, m);
  } else if (d == 5) {
    for (size_t i = 0; i < d * m; ++i) X[i] *= 10; /* |x|^2 ~ 500: lr_input's term is a sizeable part of C_1 */
  } else {
    /* ResNet without embedding: the recursion treats the coordinates of x as
     * Gaussian (KR 2.3), exact in expectation for inputs drawn N(0, I) with
     * each draw (the engine's default) up to O(1/d); the kernel is then
     * evaluated at X^T X / d = I. */
    memset(X, 0, d * m * sizeof *X);
    X[0] = X[d + 1] = sqrt((double)d);
    fresh = 1;
  }
  bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
  bafu_mc_result res;
  ck_assert_ok(bafu_mc_run(&p, S, 4242, fresh ? NULL : X, 1, &res));
  const size_t J = res.J, Q = BAFU_Q_COUNT;
  ck_assert_uint_eq(J, bafu_kernel_nlayers(k));
  const double allow = 5.0 * (double)p.depth / (double)p.width;
  double worst = 0;
  for (size_t j = 0; j < J; ++j) {
    const double *T = bafu_kernel_theta(k, j), *G = bafu_kernel_own(k, j), *P = bafu_kernel_bwd(k, j);
    const double eC = G[0] * P[0] + G[3] * P[3], eD = T[0] * P[0] + T[3] * P[3], eB = P[0] + P[3];
    const double mC = res.mean[j * Q + BAFU_Q_CONTRIB], sC = res.se[j * Q + BAFU_Q_CONTRIB];
    const double mD = res.mean[j * Q + BAFU_Q_DECAY], sD = res.se[j * Q + BAFU_Q_DECAY];
    double b1 = 0, b2 = 0;
    for (size_t i = 0; i < S; ++i) {
      const double b = res.raw[i * J * Q + j * Q + BAFU_Q_BNORM];
      b1 += b * b;
      b2 += b * b * b * b;
    }
    const double mB = b1 / S, sB = sqrt(fmax(b2 / S - mB * mB, 0) / (S - 1));
    ck_assert_msg(fabs(mC - eC) <= 4 * sC + allow * eC, "config %d layer %d: C %.6g +- %.2g vs %.6g (%.2f se)", _i,
                  res.labels[j], mC, sC, eC, (mC - eC) / sC);
    ck_assert_msg(fabs(mD - eD) <= 4 * sD + allow * eD, "config %d layer %d: D %.6g +- %.2g vs %.6g (%.2f se)", _i,
                  res.labels[j], mD, sD, eD, (mD - eD) / sD);
    ck_assert_msg(fabs(mB - eB) <= 4 * sB + allow * eB, "config %d layer %d: |b|^2 %.6g +- %.2g vs %.6g (%.2f se)",
                  _i, res.labels[j], mB, sB, eB, (mB - eB) / sB);
    worst = fmax(worst, fmax(fabs(mC - eC) / sC, fmax(fabs(mD - eD) / sD, fabs(mB - eB) / sB)));
  }
  if (_i >= 5) printf("engine mc, normalised config %d: worst deviation %.2f se\n", _i, worst);
  fflush(stdout);
  bafu_mc_result_free(&res);
  bafu_kernel_free(k);
  free(X);
}
END_TEST

/* (c) The off-diagonal entries with normalised branches: the empirical NTK of
 * the readout (mse, one output; bafu_net_empirical_ntk, the engine's exact
 * sum_j lr_j <dy_a/dW_j, dy_b/dW_j> with the projection of the normalisation
 * in every backward pass) against Theta_{L+1}(a,b), m = 3 fixed inputs with
 * variances differing by a factor 25, ResNet with embedding and three
 * normalised blocks, beta = 1.5/sqrt 3, n = 2048, 24 draws; relu (_i = 0),
 * tanh with biases (_i = 1), and relu with only the embedding trained
 * (_i = 2: lr_hidden = lr_output = 0, so Theta_{L+1} = Gamma_0 .* P_0 and the
 * test sees the product of the blocks' Jacobian factors M_l(a,b) alone).
 * Every entry of the mean of theta_emp - Theta within 4 standard errors plus
 * the finite-width allowance (L/n) |Theta| of
 * test_validation.c:test_empirical_ntk (O(L/n) bias; KR 2.6 bounds the
 * projection's share by the same order). This checks the factor
 * 1/(r_a r_b) of the branch Jacobian for a != b, which the probe quantities
 * of test_engine_mc (diagonal only) cannot see: replacing it by 1/r_a^2
 * fails all three, by 2/(r_a^2 + r_b^2) fails _i = 2 (19% in entry (0,1)). */

START_TEST(test_engine_norm_ntk) {
  bafu_net_params p = bafu_net_params_default();
  p.arch = BAFU_ARCH_RESNET;
  p.embed = 1;
  p.branch_norm = BAFU_BRANCH_NORM_RMS;
  p.act = _i == 1 ? BAFU_ACT_TANH : BAFU_ACT_RELU;
  p.signal = BAFU_SIGNAL_MSE;
  p.outputs = 1;
  p.width = 2048;
  p.depth = 3;
  p.input_dim = 5;
  p.batch = 3;
  p.sigma_w2 = 1.9;
  p.branch_scale = 1.5;
  p.lr_input = 60; /* lr_input |x|^2 comparable to a block's lr beta^2 n E[phi^2] */
  p.lr_hidden = 1.37;
  p.lr_output = 0.41;
  if (_i == 1) p.bias_var = 0.45, p.lr_bias = 700, p.lr_bias_input = 300, p.lr_bias_output = 200;
  if (_i == 2) p.lr_input = 1, p.lr_hidden = 0, p.lr_output = 0;
  const size_t m = 3, mm = 9, draws = 24, n = p.width;
  const char *name = _i == 0 ? "relu" : _i == 1 ? "tanh" : "relu, embedding only";
  double *X = odd_inputs(p.input_dim, m);
  spread_inputs(X, p.input_dim, m);
  bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
  const size_t J = bafu_kernel_nlayers(k);
  const double *lim = bafu_kernel_theta(k, J - 1);
  bafu_net *net;
  ck_assert_ok(bafu_net_alloc(&p, &net));
  bafu_net_set_inputs(net, X);
  double *work = malloc(J * n * m * sizeof *work), theta[9], sum[9] = {0}, sum2[9] = {0};
  ck_assert_ptr_nonnull(work);
  for (uint64_t dr = 0; dr < draws; ++dr) {
    ck_assert_ok(bafu_net_draw(net, 77, dr));
    ck_assert_ok(bafu_net_forward(net));
    ck_assert_ok(bafu_net_empirical_ntk(net, work, theta));
    for (size_t i = 0; i < mm; ++i) {
      sum[i] += theta[i] - lim[i];
      sum2[i] += (theta[i] - lim[i]) * (theta[i] - lim[i]);
    }
  }
  const double allow = (double)p.depth / (double)n;
  double worst = 0, worst_rel = 0, scale = 0;
  for (size_t i = 0; i < mm; ++i) scale = fmax(scale, fabs(lim[i]));
  for (size_t i = 0; i < mm; ++i) {
    const double mean = sum[i] / draws, var = (sum2[i] - draws * mean * mean) / (draws - 1);
    const double se = sqrt(fmax(var, 0) / draws);
    worst = fmax(worst, fabs(mean) / se);
    worst_rel = fmax(worst_rel, fabs(mean) / scale);
    ck_assert_msg(fabs(mean) <= 4 * se + allow * fabs(lim[i]),
                  "%s entry (%zu,%zu): mean theta_emp - Theta = %.4g +- %.2g, Theta %.6g (%.2f se)", name, i % m,
                  i / m, mean, se, lim[i], mean / se);
  }
  printf("normalised NTK, %s: worst entry %.2f se, %.4f of max|Theta|\n", name, worst, worst_rel);
  fflush(stdout);
  free(work);
  bafu_net_free(net);
  bafu_kernel_free(k);
  free(X);
}
END_TEST

/* ---------------------------------------------------------------------------
 * 12. Residual branches of K layers (KR 2.7).
 *
 * (a) Linear activation, closed form: every inner layer multiplies the
 * covariance by s, so a block maps Sigma -> gamma Sigma with
 * gamma = 1 + beta^2 s^K, its Jacobian factor is gamma, and its own term is
 * beta^2 K lr n s^(K-1) Sigma_{l-1} (the K layers' own terms lr n s^(k-1)
 * Sigma_{l-1}, each carried through the K - k later layers by s^(K-k)).
 * With the embedding (Sigma_0 = s G/d, Theta_0 = lr_in G), probe:
 *   Sigma_l = gamma^l Sigma_0,   Gamma_l = c gamma^(l-1) Sigma_0,  c = beta^2 K lr_h n s^(K-1),
 *   Theta_l = gamma^l Theta_0 + l c gamma^(l-1) Sigma_0,  Sprime_l = s^K,  P_l = gamma^(L-l).
 * With biases (V, lr_b) the inner covariances are H_k = s H_{k-1} + V (H_0 =
 * Sigma_{l-1}), Sigma_l = Sigma_{l-1} + beta^2 H_K and
 * Gamma_l = beta^2 sum_k (lr n H_{k-1} + lr_b) s^(K-k): checked by this
 * explicit sum at every layer, fed with the code's own Sigma_{l-1}. Treating
 * the branch as one layer of variance s^K (the same Sigma and Jacobian
 * factor) would give Gamma_l smaller by the factor K. */

START_TEST(test_block_linear_closed_form) {
  const size_t d = 4, m = 3, L = 4, n = 100;
  const double s = 1.37, B = 0.83, lin = 0.3, lh = 2.1, V = 0.29, lb = 3.3;
  for (size_t K = 2; K <= 3; ++K)
    for (int biased = 0; biased <= 1; ++biased) {
      bafu_net_params p = bafu_net_params_default();
      p.arch = BAFU_ARCH_RESNET;
      p.embed = 1;
      p.block_depth = K;
      p.act = BAFU_ACT_LINEAR;
      p.width = n;
      p.input_dim = d;
      p.batch = m;
      p.depth = L;
      p.sigma_w2 = s;
      p.branch_scale = B;
      p.lr_input = lin;
      p.lr_hidden = lh;
      if (biased) p.bias_var = V, p.lr_bias = lb, p.lr_bias_input = 0.7;
      const double beta = bafu_net_beta(&p), b2 = beta * beta, sK = pow(s, (double)K);
      const double gam = 1 + b2 * sK, c = b2 * (double)K * lh * (double)n * pow(s, (double)K - 1);
      double *X = odd_inputs(d, m);
      bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
      ck_assert_uint_eq(bafu_kernel_nlayers(k), L + 1);
      double S0[9], T0[9], Sig[9], Sp[9], Th[9], Own[9], P[9], H[9];
      for (size_t i = 0; i < m * m; ++i) {
        const double G = gram(X, d, i % m, i / m);
        S0[i] = s * G / (double)d + (biased ? V : 0);
        T0[i] = lin * G + (biased ? 0.7 : 0);
      }
      for (size_t l = 1; l <= L; ++l) {
        const double *Sprev = bafu_kernel_sigma(k, l - 1), *Tprev = bafu_kernel_theta(k, l - 1);
        const double fl = (double)l;
        for (size_t i = 0; i < m * m; ++i) {
          Sp[i] = sK;
          P[i] = pow(gam, (double)(L - l));
          if (!biased) {
            Sig[i] = pow(gam, fl) * S0[i];
            Own[i] = c * pow(gam, fl - 1) * S0[i];
            Th[i] = pow(gam, fl) * T0[i] + fl * c * pow(gam, fl - 1) * S0[i];
          } else { /* the explicit sum over the branch's layers */
            H[i] = Sprev[i];
            Own[i] = 0;
            for (size_t h = 1; h <= K; ++h) {
              Own[i] += b2 * (lh * (double)n * H[i] + lb) * pow(s, (double)(K - h));
              H[i] = s * H[i] + V;
            }
            Sig[i] = Sprev[i] + b2 * H[i];
            Th[i] = Own[i] + gam * Tprev[i];
          }
        }
        const int lab = (int)l;
        ck_assert_int_eq(bafu_kernel_label(k, l), lab);
        assert_mat_close(bafu_kernel_sigma(k, l), Sig, m, 1e-14, "Sigma", lab);
        assert_mat_close(bafu_kernel_sprime(k, l), Sp, m, 1e-15, "Sprime", lab);
        assert_mat_close(bafu_kernel_own(k, l), Own, m, 1e-14, "Gamma", lab);
        assert_mat_close(bafu_kernel_theta(k, l), Th, m, 1e-14, "Theta", lab);
        assert_mat_close(bafu_kernel_bwd(k, l), P, m, 1e-14, "P", lab);
      }
      bafu_kernel_free(k);
      free(X);
    }
}
END_TEST

/* (b) ReLU by hand: embedding, one block of K = 2 layers, mse readout, every
 * matrix from the acos-based formulas (relu_exp) of each inner layer:
 * u ~ N(0, Sigma_0), h_1 = W_1 relu(u): H_1 = s E[relu relu](Sigma_0),
 * D_1 = s E[relu' relu'](Sigma_0); h_2: H_2 = s E[relu relu](H_1), D_2 likewise;
 * Sigma_1 = Sigma_0 + beta^2 H_2, Sprime_1 = D_1 D_2,
 * Gamma_1 = beta^2 lr_h n (E[relu relu](H_1) + D_2 .* E[relu relu](Sigma_0)),
 * Theta_1 = Gamma_1 + (1 + beta^2 D_1 D_2) .* Theta_0, P_0 = (1 + beta^2 D_1 D_2) .* P_1.
 * Also the normalised branch (the first inner layer reads Sigma~_0, and the
 * Jacobian factor is 1 + beta^2 D_1 D_2 / sqrt(Sigma_0(a,a) Sigma_0(b,b))). */

START_TEST(test_block_relu_hand) {
  const double s = 1.7, B = 0.83, lin = 0.63, lh = 1.37, lout = 0.41, n = 64;
  const size_t d = 3, m = 2;
  for (int normed = 0; normed <= 1; ++normed) {
    bafu_net_params p = bafu_net_params_default();
    p.arch = BAFU_ARCH_RESNET;
    p.embed = 1;
    p.block_depth = 2;
    if (normed) p.branch_norm = BAFU_BRANCH_NORM_RMS;
    p.depth = 1;
    p.width = 64;
    p.input_dim = d;
    p.batch = m;
    p.sigma_w2 = s;
    p.branch_scale = B;
    p.lr_input = lin;
    p.lr_hidden = lh;
    p.lr_output = lout;
    p.signal = BAFU_SIGNAL_MSE;
    const double X[6] = {1.3, -0.4, 0.7, 0.1, 0.45, -0.55};
    bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
    ck_assert_uint_eq(bafu_kernel_nlayers(k), 3);
    double S0[4], T0[4], U[4], H1[4], E1[4], D1[4], E2[4], D2[4], S1[4], Sp1[4], O1[4], T1[4];
    double S2[4], Sp2[4], O2[4], T2[4], P0[4], P1[4], P2[4], RR[4];
    for (size_t i = 0; i < 4; ++i) {
      const double G = gram(X, d, i % 2, i / 2);
      S0[i] = s * G / (double)d;
      T0[i] = lin * G;
    }
    for (size_t i = 0; i < 4; ++i) {
      RR[i] = normed ? sqrt(S0[3 * (i % 2)] * S0[3 * (i / 2)]) : 1; /* r_a r_b */
      U[i] = S0[i] / RR[i];
    }
    const double b2 = B * B;
    for (size_t i = 0; i < 4; ++i) {
      relu_exp(U[3 * (i % 2)], U[3 * (i / 2)], U[i], &E1[i], &D1[i]);
      if (i == 0 || i == 3) D1[i] = 0.5;
      D1[i] *= s;
      H1[i] = s * E1[i];
    }
    for (size_t i = 0; i < 4; ++i) {
      relu_exp(H1[3 * (i % 2)], H1[3 * (i / 2)], H1[i], &E2[i], &D2[i]);
      if (i == 0 || i == 3) D2[i] = 0.5;
      D2[i] *= s;
      S1[i] = S0[i] + b2 * s * E2[i];
      Sp1[i] = D1[i] * D2[i];
      O1[i] = b2 * lh * n * (E2[i] + D2[i] * E1[i]);
      T1[i] = O1[i] + (1 + b2 * Sp1[i] / RR[i]) * T0[i];
    }
    for (size_t i = 0; i < 4; ++i) {
      double ee, dd;
      relu_exp(S1[3 * (i % 2)], S1[3 * (i / 2)], S1[i], &ee, &dd);
      if (i == 0 || i == 3) dd = 0.5;
      S2[i] = s * ee;
      Sp2[i] = s * dd;
      O2[i] = lout * n * ee;
      T2[i] = O2[i] + s * dd * T1[i];
      P2[i] = 1;
      P1[i] = s * dd;
      P0[i] = (1 + b2 * Sp1[i] / RR[i]) * P1[i];
    }
    const int lab[3] = {0, 1, 2};
    const double *want[3][5] = {{S0, NULL, T0, T0, P0}, {S1, Sp1, T1, O1, P1}, {S2, Sp2, T2, O2, P2}};
    for (size_t j = 0; j < 3; ++j) {
      assert_mat_close(bafu_kernel_sigma(k, j), want[j][0], m, 1e-14, normed ? "Sigma (norm)" : "Sigma", lab[j]);
      if (want[j][1]) assert_mat_close(bafu_kernel_sprime(k, j), want[j][1], m, 1e-14, "Sprime", lab[j]);
      assert_mat_close(bafu_kernel_theta(k, j), want[j][2], m, 1e-14, normed ? "Theta (norm)" : "Theta", lab[j]);
      assert_mat_close(bafu_kernel_own(k, j), want[j][3], m, 1e-14, "Gamma", lab[j]);
      assert_mat_close(bafu_kernel_bwd(k, j), want[j][4], m, 1e-14, "P", lab[j]);
    }
    bafu_kernel_free(k);
  }
}
END_TEST

/* (c) The quadrature path for branches of K = 3 layers: relu (the inner
 * layers' angles), erf and linear, ResNet with embedding and readout, plain
 * and normalised, with and without biases (the inner angles then follow the
 * inner covariances), m = 3 samples of spread variances, 1e-12 as in 7. */

START_TEST(test_block_quadrature) {
  const bafu_act acts[] = {BAFU_ACT_RELU, BAFU_ACT_ERF, BAFU_ACT_LINEAR};
  const size_t m = 3;
  for (size_t ia = 0; ia < 3; ++ia)
    for (int v = 0; v < 4; ++v) {
      bafu_net_params p = bafu_net_params_default();
      p.arch = BAFU_ARCH_RESNET;
      p.embed = 1;
      p.block_depth = 3;
      p.act = acts[ia];
      p.width = 24;
      p.input_dim = 5;
      p.batch = m;
      p.depth = 4;
      p.sigma_w2 = 1.7;
      p.branch_scale = 1.3;
      p.lr_input = 0.63;
      p.lr_hidden = 1.37;
      p.lr_output = 0.41;
      p.signal = BAFU_SIGNAL_MSE;
      if (v & 1) p.branch_norm = BAFU_BRANCH_NORM_RMS;
      if (v & 2) p.bias_var = 0.37, p.lr_bias = 2.1;
      double *X = odd_inputs(p.input_dim, m);
      spread_inputs(X, p.input_dim, m);
      bafu_kernel *ka = run_batch(&p, X, BAFU_KERNEL_AUTO);
      bafu_kernel *kq = run_batch(&p, X, BAFU_KERNEL_QUADRATURE);
      for (size_t j = 0; j < bafu_kernel_nlayers(ka); ++j) {
        const int lab = bafu_kernel_label(ka, j);
        assert_mat_close(bafu_kernel_sigma(kq, j), bafu_kernel_sigma(ka, j), m, 1e-12, "Sigma quad", lab);
        assert_mat_close(bafu_kernel_sprime(kq, j), bafu_kernel_sprime(ka, j), m, 1e-12, "Sprime quad", lab);
        assert_mat_close(bafu_kernel_theta(kq, j), bafu_kernel_theta(ka, j), m, 1e-12, "Theta quad", lab);
        assert_mat_close(bafu_kernel_own(kq, j), bafu_kernel_own(ka, j), m, 1e-12, "Gamma quad", lab);
        assert_mat_close(bafu_kernel_bwd(kq, j), bafu_kernel_bwd(ka, j), m, 1e-12, "P quad", lab);
      }
      bafu_kernel_free(ka);
      bafu_kernel_free(kq);
      free(X);
    }
}
END_TEST

/* The K = 1 network that treats a branch of K layers as one layer of
 * variance s^K (the same for the embedding and the readout): for linear
 * activations it has the right Sigma and Jacobian factor but K times too
 * small an own term; for relu the branch variance is s^K q/2 instead of
 * (s/2)^K q. The engine tests below check that the Monte Carlo rejects it. */
static bafu_kernel *one_layer_variant(const bafu_net_params *p, const double *X) {
  bafu_net_params w = *p;
  w.sigma2_input = bafu_net_gain_input(p);
  w.sigma2_output = bafu_net_gain_output(p);
  w.sigma_w2 = pow(p->sigma_w2, (double)p->block_depth);
  w.block_depth = 1;
  return run_batch(&w, X, BAFU_KERNEL_AUTO);
}

/* (d) The finite-width engine with branches of K layers, probe, bafu_mc_run,
 * m = 2, depth 3, n = 1024, s = 1.6 (derivative kernels well below 1, so that
 * the products over the inner layers matter), beta = 1.5 / sqrt 3, 32 draws:
 * per layer the means of contribution, loss_decay and backward_norm^2
 * against sum_a Gamma P, sum_a Theta P and sum_a P (KR 5), within 4 standard
 * errors plus 5 U / n relative, U = 3 K + 1 the number of weight matrices (the
 * allowance of test_engine_mc per weight matrix: gradient independence fails
 * at O(1/n) per matrix the backward signal crosses). Configurations:
 *   0: relu, K = 3, normalised branches, embedding, spread inputs, biases
 *      V = 0.45, lr_b = 700;
 *   1: tanh, K = 2, no embedding (fresh N(0, I) inputs; the first block reads
 *      phi(x)), no biases.
 * The one-layer variant (one_layer_variant) must be off by more than 10
 * standard errors plus a quarter of the allowance in some quantity of some
 * layer. */

START_TEST(test_engine_block) {
  bafu_net_params p = bafu_net_params_default();
  p.arch = BAFU_ARCH_RESNET;
  p.depth = 3;
  p.batch = 2;
  p.sigma_w2 = 1.6;
  p.branch_scale = 1.5;
  p.lr_input = 0.63;
  p.lr_hidden = 1.37;
  p.width = 1024;
  p.block_depth = _i == 0 ? 3 : 2;
  p.act = _i == 0 ? BAFU_ACT_RELU : BAFU_ACT_TANH;
  p.embed = _i == 0;
  p.input_dim = _i == 0 ? 5 : p.width;
  if (_i == 0) p.bias_var = 0.45, p.lr_bias = 700, p.branch_norm = BAFU_BRANCH_NORM_RMS, p.lr_input = 60;
  const size_t m = 2, S = 32, d = p.input_dim;
  double *X = odd_inputs(d, m);
  int fresh = 0;
  if (_i == 1) { /* kernel at X^T X / d = I (A3), the engine draws N(0, I) inputs */
    memset(X, 0, d * m * sizeof *X);
    X[0] = X[d + 1] = sqrt((double)d);
    fresh = 1;
  } else {
    spread_inputs(X, d, m);
  }
  bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
  bafu_kernel *kw = one_layer_variant(&p, X);
  bafu_mc_result res;
  ck_assert_ok(bafu_mc_run(&p, S, 4242, fresh ? NULL : X, 1, &res));
  const size_t J = res.J, Q = BAFU_Q_COUNT;
  ck_assert_uint_eq(J, bafu_kernel_nlayers(k));
  const double allow = 5.0 * (double)(3 * p.block_depth + 1) / (double)p.width;
  double worst = 0, wrong = 0;
  for (size_t j = 0; j < J; ++j) {
    double mB = 0, b2 = 0;
    for (size_t i = 0; i < S; ++i) {
      const double b = res.raw[i * J * Q + j * Q + BAFU_Q_BNORM];
      mB += b * b / S;
      b2 += b * b * b * b / S;
    }
    const double mq[3] = {res.mean[j * Q + BAFU_Q_CONTRIB], res.mean[j * Q + BAFU_Q_DECAY], mB};
    const double sq[3] = {res.se[j * Q + BAFU_Q_CONTRIB], res.se[j * Q + BAFU_Q_DECAY],
                          sqrt(fmax(b2 - mB * mB, 0) / (S - 1))};
    const char *name[3] = {"C", "D", "|b|^2"};
    for (int v = 0; v < 2; ++v) {
      const bafu_kernel *kk = v ? kw : k;
      const double *T = bafu_kernel_theta(kk, j), *G = bafu_kernel_own(kk, j), *P = bafu_kernel_bwd(kk, j);
      const double e[3] = {G[0] * P[0] + G[3] * P[3], T[0] * P[0] + T[3] * P[3], P[0] + P[3]};
      for (int q = 0; q < 3; ++q) {
        const double dev = fabs(mq[q] - e[q]) / (4 * sq[q] + allow * e[q]);
        if (v) {
          wrong = fmax(wrong, fabs(mq[q] - e[q]) / (sq[q] + allow * e[q] / 4));
          continue;
        }
        worst = fmax(worst, fabs(mq[q] - e[q]) / sq[q]);
        ck_assert_msg(dev <= 1, "config %d layer %d: %s %.6g +- %.2g vs %.6g (%.2f se, allowance %.3g)", _i,
                      res.labels[j], name[q], mq[q], sq[q], e[q], (mq[q] - e[q]) / sq[q], allow * e[q]);
      }
    }
  }
  printf("engine mc, branches of %zu layers, config %d: worst deviation %.2f se; one-layer variant %.1f "
         "(se + allowance/4)\n",
         p.block_depth, _i, worst, wrong);
  fflush(stdout);
  ck_assert_msg(wrong > 10, "config %d: the one-layer variant is only %.2f se off", _i, wrong);
  bafu_mc_result_free(&res);
  bafu_kernel_free(k);
  bafu_kernel_free(kw);
  free(X);
}
END_TEST

/* (e) The off-diagonal entries with branches of K layers: the engine's
 * empirical NTK of the readout (mse, one output) against Theta_{L+1}(a,b),
 * m = 3 fixed inputs, ResNet with embedding, three blocks, s = 1.6,
 * beta = 1.5/sqrt 3, n = 1024, 32 draws, every entry of the mean of
 * theta_emp - Theta within 4 se plus (U/n) |Theta| (U = 3 K + 2 weight
 * matrices; test_engine_norm_ntk allows L/n for L + 2 matrices). _i = 0:
 * relu, K = 2, normalised branches, spread inputs; _i = 1: tanh, K = 3,
 * biases. The one-layer variant must be off by more than 10 se (plus a
 * quarter of the allowance) in some entry. */

START_TEST(test_engine_block_ntk) {
  bafu_net_params p = bafu_net_params_default();
  p.arch = BAFU_ARCH_RESNET;
  p.embed = 1;
  p.block_depth = _i == 0 ? 2 : 3;
  p.act = _i == 1 ? BAFU_ACT_TANH : BAFU_ACT_RELU;
  if (_i == 0) p.branch_norm = BAFU_BRANCH_NORM_RMS;
  p.signal = BAFU_SIGNAL_MSE;
  p.outputs = 1;
  p.width = 1024;
  p.depth = 3;
  p.input_dim = 5;
  p.batch = 3;
  p.sigma_w2 = 1.6;
  p.branch_scale = 1.5;
  p.lr_input = 60;
  p.lr_hidden = 1.37;
  p.lr_output = 0.41;
  if (_i == 1) p.bias_var = 0.45, p.lr_bias = 700, p.lr_bias_input = 300, p.lr_bias_output = 200;
  const size_t m = 3, mm = 9, draws = 32, n = p.width;
  const char *name = _i == 0 ? "relu, K = 2, normalised" : "tanh, K = 3, biases";
  double *X = odd_inputs(p.input_dim, m);
  if (_i == 0) spread_inputs(X, p.input_dim, m);
  bafu_kernel *k = run_batch(&p, X, BAFU_KERNEL_AUTO);
  bafu_kernel *kw = one_layer_variant(&p, X);
  const size_t J = bafu_kernel_nlayers(k);
  const double *lim = bafu_kernel_theta(k, J - 1), *wlim = bafu_kernel_theta(kw, J - 1);
  bafu_net *net;
  ck_assert_ok(bafu_net_alloc(&p, &net));
  bafu_net_set_inputs(net, X);
  const size_t U = bafu_net_nunits(net);
  ck_assert_uint_eq(U, 3 * p.block_depth + 2);
  double *work = malloc(U * n * m * sizeof *work), theta[9], sum[9] = {0}, sum2[9] = {0};
  ck_assert_ptr_nonnull(work);
  for (uint64_t dr = 0; dr < draws; ++dr) {
    ck_assert_ok(bafu_net_draw(net, 77, dr));
    ck_assert_ok(bafu_net_forward(net));
    ck_assert_ok(bafu_net_empirical_ntk(net, work, theta));
    for (size_t i = 0; i < mm; ++i) {
      sum[i] += theta[i] - lim[i];
      sum2[i] += (theta[i] - lim[i]) * (theta[i] - lim[i]);
    }
  }
  const double allow = (double)U / (double)n;
  double worst = 0, worst_rel = 0, scale = 0, wrong = 0;
  for (size_t i = 0; i < mm; ++i) scale = fmax(scale, fabs(lim[i]));
  for (size_t i = 0; i < mm; ++i) {
    const double mean = sum[i] / draws, var = (sum2[i] - draws * mean * mean) / (draws - 1);
    const double se = sqrt(fmax(var, 0) / draws);
    worst = fmax(worst, fabs(mean) / se);
    worst_rel = fmax(worst_rel, fabs(mean) / scale);
    wrong = fmax(wrong, fabs(mean + lim[i] - wlim[i]) / (se + allow * fabs(wlim[i]) / 4));
    ck_assert_msg(fabs(mean) <= 4 * se + allow * fabs(lim[i]),
                  "%s entry (%zu,%zu): mean theta_emp - Theta = %.4g +- %.2g, Theta %.6g (%.2f se)", name, i % m,
                  i / m, mean, se, lim[i], mean / se);
  }
  printf("NTK, branches of K layers, %s: worst entry %.2f se, %.4f of max|Theta|; one-layer variant %.1f\n", name,
         worst, worst_rel, wrong);
  fflush(stdout);
  ck_assert_msg(wrong > 10, "%s: the one-layer variant is only %.2f se off", name, wrong);
  free(work);
  bafu_net_free(net);
  bafu_kernel_free(k);
  bafu_kernel_free(kw);
  free(X);
}
END_TEST

/* ---------------------------------------------------------------------------
 * 13. Error paths. */

static int count_cb(const bafu_kernel_pair *l, void *ctx) {
  ++*(size_t *)ctx;
  return 0;
}

static int stop_cb(const bafu_kernel_pair *l, void *ctx) {
  ++*(size_t *)ctx;
  return l->index == 2;
}

/* ---------------------------------------------------------------------------
 * 12. Tabulated dual maps (KR 10): whole recursions served by the table against
 * the direct per-layer quadrature (the path before the table), two inputs and
 * batches; the checkpointed two-input sweep (KR 5). */

static pair_list run_pairs_method(const bafu_net_params *p, double corr, bafu_kernel_method meth) {
  pair_list pl = {0, bafu_kernel_count_layers(p), NULL};
  pl.v = malloc(pl.cap * sizeof *pl.v);
  ck_assert_ptr_nonnull(pl.v);
  ck_assert_ok(bafu_kernel_two_inputs_method(p, corr, meth, collect, &pl, NULL, NULL));
  ck_assert_uint_eq(pl.n, pl.cap);
  return pl;
}

/* The largest difference of the fields of two runs, each relative to its
 * scale: the value (the larger of the two), or for an off-diagonal entry the
 * diagonal one (sigma_prime to sigma_prime_diag, ntk to ntk_diag, own to
 * own_diag, bwd to bwd_diag; corr to 1). one_minus_corr and angle get an
 * absolute allowance of 1e-14 and 2e-7: the direct path forms 1 - c_phi as
 * (E phi^2 - E phi phi) / E phi^2, exact to about 1e-16 absolute only (KR 4.3),
 * so its angle sqrt(2 (1 - c)) is good to sqrt(2e-16) absolute as c -> 1; the
 * table keeps both to full relative precision (KR 10.1). Rows where q < 1e-280
 * are skipped: the recursion has underflowed into subnormal numbers, where
 * neither path keeps relative precision. *same: every field bit-identical. */
static double pair_max_diff(const pair_list *a, const pair_list *b, int *same, size_t *where) {
  double worst = 0;
  *same = 1;
  for (size_t j = 0; j < a->n; ++j) {
    const bafu_kernel_pair *x = &a->v[j], *y = &b->v[j];
    if (memcmp(x, y, sizeof *x) != 0) *same = 0;
    if (!(x->q >= 1e-280 && y->q >= 1e-280)) continue;
    const double u[] = {x->q, x->corr, x->one_minus_corr, x->angle, x->sprime_diag, x->sprime, x->ntk_diag, x->ntk,
                        x->own_diag, x->own, x->bwd_diag, x->bwd};
    const double v[] = {y->q, y->corr, y->one_minus_corr, y->angle, y->sprime_diag, y->sprime, y->ntk_diag, y->ntk,
                        y->own_diag, y->own, y->bwd_diag, y->bwd};
    const double atol[] = {0, 0, 1e-14, 2e-7, 0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < sizeof u / sizeof u[0]; ++i) {
      double sc = fmax(fabs(u[i]), fabs(v[i]));
      if (i == 1) sc = 1;
      if (i >= 5 && i % 2 == 1) sc = fmax(fabs(u[i - 1]), fabs(v[i - 1])); /* off-diagonal: its diagonal */
      const double d = fabs(u[i] - v[i]) - atol[i];
      if (sc > 0 && d > 0 && d / sc > worst) {
        worst = d / sc;
        *where = j;
      }
    }
  }
  return worst;
}

/* Configurations for the comparison: MLPs at criticality (tanh, s = 1, q ~ 1/(2l)),
 * with q collapsing to 0 (gelu, swish at s = 2), at an ordered fixed point
 * (gelu with biases, negative correlation), ResNets whose variance drifts (tanh,
 * swish with embedding and readout) and a normalised ResNet with branches of
 * two layers and biases (tanh). */
#define TABLE_CASES 7
static bafu_net_params table_case(int i, double *corr) {
  bafu_net_params p = bafu_net_params_default();
  *corr = 0.5;
  p.lr_input = 0.63;
  p.lr_hidden = 1.37;
  switch (i) {
  case 0: p.act = BAFU_ACT_TANH, p.sigma_w2 = 1; break;
  case 1: p.act = BAFU_ACT_GELU; break;
  case 2: p.act = BAFU_ACT_SWISH; break;
  case 3: p.act = BAFU_ACT_GELU, p.sigma_w2 = 1.7, p.bias_var = 0.1, p.lr_bias = 2.1, *corr = -0.6; break;
  case 4: p.act = BAFU_ACT_TANH, p.arch = BAFU_ARCH_RESNET; break;
  case 5:
    p.act = BAFU_ACT_SWISH, p.arch = BAFU_ARCH_RESNET, p.embed = 1, p.signal = BAFU_SIGNAL_MSE, p.lr_output = 0.41;
    break;
  default:
    p.act = BAFU_ACT_TANH, p.arch = BAFU_ARCH_RESNET, p.branch_norm = BAFU_BRANCH_NORM_RMS, p.block_depth = 2,
    p.bias_var = 0.3, p.lr_bias = 0.7, *corr = 0.9;
    break;
  }
  return p;
}

/* Depth 10 and 1000 for every case (the collapsing MLPs, gelu and swish at
 * s = 2, are refused at depth 10^5 by both paths: q underflows near layer
 * 1030, test_forward_underflow): every field within 1e-10 (observed at most 3e-12 at depth 1000, where
 * the differences accumulate: a relative error in q carries over one to one
 * in a collapsing or critical MLP, about 3e-15 per layer). At depth 1000 the
 * table must have served (the runs differ); at depth 10 in the MLPs it cannot
 * have (no row is met four times): bit-identical. */
START_TEST(test_table_recursions) {
  double corr;
  bafu_net_params p = table_case(_i, &corr);
  const size_t depths[] = {10, 1000, 100000};
  for (size_t di = 0; di < 3; ++di) {
    if (depths[di] == 100000 && _i != 1 && _i != 2) continue;
    p.depth = depths[di];
    if (p.depth == 100000) { /* q has left the normal doubles near layer 1030: both methods refuse */
      for (int meth = 0; meth < 2; ++meth) {
        size_t calls = 0;
        ck_assert_int_eq(bafu_kernel_two_inputs_method(&p, corr, meth ? BAFU_KERNEL_DIRECT : BAFU_KERNEL_AUTO,
                                                       count_cb, &calls, NULL, NULL),
                         BAFU_ENUMERIC);
        ck_assert_uint_eq(calls, 0);
        ck_assert_msg(strstr(bafu_last_error(), "q underflows at layer 10") != NULL, "message: %s",
                      bafu_last_error());
      }
      continue;
    }
    pair_list a = run_pairs_method(&p, corr, BAFU_KERNEL_AUTO), d = run_pairs_method(&p, corr, BAFU_KERNEL_DIRECT);
    int same;
    size_t where = 0;
    const double diff = pair_max_diff(&a, &d, &same, &where);
    printf("table case %d (%s), depth %zu: largest relative difference %.3g (layer %zu)%s\n", _i,
           bafu_act_name(p.act), p.depth, diff, where, same ? ", bit-identical" : "");
    ck_assert_msg(diff <= 1e-10, "case %d depth %zu: %.3g at layer %zu", _i, p.depth, diff, where);
    if (p.depth >= 1000) ck_assert_msg(!same, "case %d depth %zu: the table did not serve", _i, p.depth);
    if (p.depth == 10 && p.arch == BAFU_ARCH_MLP) ck_assert(same);
    if (_i == 3 && p.depth == 1000) {
      /* ordered phase, c -> 1: the table's 1 - c follows the first-order law of a plain layer with
         biases, 1 - c_(l+1) = Sigma'_(l+1)(a,a) q_l (1 - c_l) / q_(l+1) (1 + O(1 - c); KR 10.1),
         down to 1 - c ~ 1e-19 where the direct path has lost it (it is 0 there) */
      size_t checked = 0;
      for (size_t j = 100; j + 1 < a.n; ++j) {
        const bafu_kernel_pair *x = &a.v[j], *y = &a.v[j + 1];
        ck_assert_close(y->one_minus_corr, y->sprime_diag * x->q * x->one_minus_corr / y->q, 1e-12, 0);
        checked += x->one_minus_corr < 1e-16;
      }
      ck_assert_uint_gt(checked, 100);
    }
    free(a.v);
    free(d.v);
  }
}
END_TEST

/* Batch mode (KR 10.5): three inputs of equal norm (their variances agree to
 * rounding, within the 2^-40 of the rule) through a tanh MLP with biases at an
 * ordered fixed point; spread inputs through a normalised gelu ResNet (the
 * branches read unit variances); spread inputs through the tanh MLP (the
 * variances differ, then converge to the fixed point): AUTO within 1e-10 of
 * DIRECT (relative to each matrix's largest entry), and different (served). */
START_TEST(test_table_batch) {
  for (int c = 0; c < 3; ++c) {
    bafu_net_params p = bafu_net_params_default();
    p.batch = 3;
    p.input_dim = 5;
    p.lr_input = 0.63;
    p.lr_hidden = 1.37;
    p.depth = c == 1 ? 200 : 300;
    double *X = odd_inputs(p.input_dim, p.batch);
    if (c == 0) {
      p.act = BAFU_ACT_TANH, p.sigma_w2 = 1.6, p.bias_var = 0.05, p.lr_bias = 0.9;
      for (size_t b = 0; b < p.batch; ++b) { /* equal norms sqrt(d) */
        const double r = sqrt((double)p.input_dim / gram(X, p.input_dim, b, b));
        for (size_t i = 0; i < p.input_dim; ++i) X[i + b * p.input_dim] *= r;
      }
    } else if (c == 1) {
      p.act = BAFU_ACT_GELU, p.arch = BAFU_ARCH_RESNET, p.embed = 1, p.branch_norm = BAFU_BRANCH_NORM_RMS;
      spread_inputs(X, p.input_dim, p.batch);
    } else { /* unequal variances that converge to the common fixed point: served once within 2^-40 */
      p.act = BAFU_ACT_TANH, p.sigma_w2 = 1.6, p.bias_var = 0.05, p.lr_bias = 0.9;
      spread_inputs(X, p.input_dim, p.batch);
    }
    bafu_kernel *ka = run_batch(&p, X, BAFU_KERNEL_AUTO), *kd = run_batch(&p, X, BAFU_KERNEL_DIRECT);
    const size_t m = p.batch, J = bafu_kernel_nlayers(ka);
    double worst = 0;
    int same = 1;
    for (size_t j = 0; j < J; ++j) {
      const double *A[] = {bafu_kernel_sigma(ka, j), bafu_kernel_sprime(ka, j), bafu_kernel_theta(ka, j),
                           bafu_kernel_own(ka, j), bafu_kernel_bwd(ka, j)};
      const double *D[] = {bafu_kernel_sigma(kd, j), bafu_kernel_sprime(kd, j), bafu_kernel_theta(kd, j),
                           bafu_kernel_own(kd, j), bafu_kernel_bwd(kd, j)};
      for (int w = 0; w < 5; ++w) {
        double sc = 0;
        for (size_t i = 0; i < m * m; ++i) sc = fmax(sc, fabs(D[w][i]));
        for (size_t i = 0; i < m * m; ++i) {
          if (A[w][i] != D[w][i]) same = 0;
          if (sc > 1e-280) worst = fmax(worst, fabs(A[w][i] - D[w][i]) / sc);
        }
      }
    }
    printf("batch case %d (%s): largest difference %.3g of the matrix scale%s\n", c, bafu_act_name(p.act), worst,
           same ? ", bit-identical" : "");
    ck_assert_msg(worst <= 1e-10, "batch case %d: %.3g", c, worst);
    ck_assert_msg(!same, "batch case %d: the table did not serve", c);
    /* a second run of the same workspace is served exactly as the first (KR 10.4) */
    double *S0 = malloc(m * m * sizeof *S0);
    memcpy(S0, bafu_kernel_theta(ka, J - 1), m * m * sizeof *S0);
    ck_assert_ok(bafu_kernel_run(ka, X));
    ck_assert(memcmp(S0, bafu_kernel_theta(ka, J - 1), m * m * sizeof *S0) == 0);
    free(S0);
    bafu_kernel_free(ka);
    bafu_kernel_free(kd);
    free(X);
  }
}
END_TEST

/* The checkpointed sweep (KR 5): the backward factors of a ReLU MLP (M_j =
 * Sigma'_j) over several blocks of B = 4096 layers against the layer-by-layer
 * product of the emitted sigma_prime, computed here (equal to rounding: 1e-13;
 * bit-identical within a single block); a stop inside a block; and the memory:
 * depth 10^6 within 1 MiB (the per-layer factors alone would take 16 MB), depth
 * 2^40 refused before any callback. */
static int stop_at_5000(const bafu_kernel_pair *l, void *ctx) {
  ++*(size_t *)ctx;
  return l->index == 5000;
}

START_TEST(test_two_inputs_blocks) {
  bafu_net_params p = bafu_net_params_default();
  p.lr_input = 0.63;
  p.lr_hidden = 1.37;
  const size_t depths[] = {4000, 20000};
  for (size_t di = 0; di < 2; ++di) {
    p.depth = depths[di];
    pair_list pl = run_pairs(&p, 0.3);
    double pd = 1, po = 1, worst = 0;
    int same = 1;
    for (size_t j = pl.n; j-- > 0;) {
      if (pl.v[j].bwd_diag != pd || pl.v[j].bwd != po) same = 0;
      worst = fmax(worst, fmax(fabs(pl.v[j].bwd_diag - pd) / pd, fabs(pl.v[j].bwd - po) / po));
      pd *= pl.v[j].sprime_diag;
      po *= pl.v[j].sprime;
    }
    printf("blocks: depth %zu, backward factor against the layer-by-layer product: %.3g\n", p.depth, worst);
    ck_assert_msg(worst <= 1e-13, "depth %zu: %.3g", p.depth, worst);
    if (p.depth <= 4096) ck_assert(same);
    free(pl.v);
  }
  size_t calls = 0;
  ck_assert_ok(bafu_kernel_two_inputs(&p, 0.3, stop_at_5000, &calls));
  ck_assert_uint_eq(calls, 5001);
  p.depth = 1000000;
  calls = 0;
  setenv("BAFU_MEMORY_LIMIT_MB", "1", 1);
  ck_assert_ok(bafu_kernel_two_inputs(&p, 0.3, count_cb, &calls));
  ck_assert_uint_eq(calls, p.depth);
  p.depth = (size_t)1 << 40;
  calls = 0;
  ck_assert_int_eq(bafu_kernel_two_inputs(&p, 0.3, count_cb, &calls), BAFU_ELIMIT);
  ck_assert_uint_eq(calls, 0);
  unsetenv("BAFU_MEMORY_LIMIT_MB");
  /* the method argument */
  p.depth = 5;
  ck_assert_int_eq(bafu_kernel_two_inputs_method(&p, 0.3, BAFU_KERNEL_QUADRATURE, count_cb, &calls, NULL, NULL),
                   BAFU_EINVAL);
  ck_assert_int_eq(bafu_kernel_two_inputs_method(&p, 0.3, (bafu_kernel_method)7, count_cb, &calls, NULL, NULL),
                   BAFU_EINVAL);
  ck_assert_uint_eq(calls, 0);
}
END_TEST

/* The backward factor overflowing below the top block (KR 5): a tanh MLP in the
 * chaotic phase with no trained layer below the readout (Theta = 0 stays finite)
 * has P_j = prod of M_k > 1 growing downwards; the overflow is reported, naming
 * the layer where the layer-by-layer product first leaves the doubles, and
 * nothing is emitted. That layer is found from the factors of a run deep enough
 * to cover it from the top but short enough not to overflow. */
START_TEST(test_backward_overflow_blocks) {
  bafu_net_params p = bafu_net_params_default();
  p.act = BAFU_ACT_TANH; /* chaotic at s = 4: M = s E[phi'^2] > 1 at the fixed point */
  p.sigma_w2 = 4;
  p.bias_var = 0.2;
  p.lr_input = p.lr_hidden = p.lr_bias = p.lr_bias_input = 0;
  p.depth = 200;
  pair_list pl = run_pairs(&p, 0.3);
  const double M = pl.v[pl.n - 1].sprime_diag; /* at the fixed point */
  free(pl.v);
  ck_assert_msg(M > 1.05, "not chaotic: M = %g", M);
  p.depth = 9000; /* three blocks; the overflow lies about 709 / log(M) layers below the top */
  size_t calls = 0;
  ck_assert_int_eq(bafu_kernel_two_inputs(&p, 0.3, count_cb, &calls), BAFU_ENUMERIC);
  ck_assert_uint_eq(calls, 0);
  int label = -1;
  ck_assert_msg(sscanf(bafu_last_error(), "depth/sigma_w2: the backward factor overflowed at layer %d", &label) == 1,
                "message: %s", bafu_last_error());
  const double expect = (double)p.depth - log(DBL_MAX) / log(M);
  printf("backward overflow at layer %d (M = %.6g, expected about %.1f)\n", label, M, expect);
  ck_assert_msg(fabs(label - expect) <= 2, "label %d, expected about %.1f", label, expect);
}
END_TEST

/* Below the edge of chaos the forward variance decays geometrically (gelu at
 * sigma_w2 = 2: q_{l+1}/q_l -> s E[gelu(sqrt(q) z)^2]/q -> s/4 = 1/2 as q -> 0);
 * once it leaves the normal doubles the kernels lose their precision and the
 * correlation becomes 0/0, so the recursion is refused at that layer, in the
 * two-input and the batch mode, and no row is emitted. The layer is predicted
 * from a shallower run: l0 + log(q_l0 / DBL_MIN) / log(q_l0-1 / q_l0). */
START_TEST(test_forward_underflow) {
  bafu_net_params p = bafu_net_params_default();
  p.act = BAFU_ACT_GELU;
  p.sigma_w2 = 2;
  p.depth = 400;
  pair_list pl = run_pairs(&p, 0.3);
  const double q0 = pl.v[pl.n - 1].q, ratio = pl.v[pl.n - 2].q / q0;
  const int l0 = pl.v[pl.n - 1].label;
  free(pl.v);
  ck_assert_msg(fabs(ratio - 2) < 1e-3, "decay ratio %g, expected 2 (s/4 = 1/2 per layer)", ratio);
  const double expect = l0 + log(q0 / DBL_MIN) / log(ratio);
  p.depth = 3000;
  size_t calls = 0;
  ck_assert_int_eq(bafu_kernel_two_inputs(&p, 0.3, count_cb, &calls), BAFU_ENUMERIC);
  ck_assert_uint_eq(calls, 0);
  int label = -1;
  ck_assert_msg(sscanf(bafu_last_error(), "depth/sigma_w2: the forward variance q underflows at layer %d", &label) == 1,
                "message: %s", bafu_last_error());
  ck_assert_msg(fabs(label - expect) <= 2, "two inputs: label %d, expected about %.1f", label, expect);
  /* the batch mode: its own prediction from a shallower run of the same inputs */
  p.batch = 2;
  double X[2 * 512];
  for (size_t i = 0; i < 2 * 512; ++i) X[i] = (i % 3 == 0) ? 1.0 : (i % 3 == 1 ? -0.5 : 0.25);
  p.depth = 400;
  bafu_kernel *k;
  ck_assert_ok(bafu_kernel_alloc(&p, &k));
  ck_assert_ok(bafu_kernel_run(k, X));
  const size_t J = bafu_kernel_count_layers(&p);
  const double b0 = bafu_kernel_sigma(k, J - 2)[0], b1 = bafu_kernel_sigma(k, J - 1)[0]; /* Sigma(1, 1) */
  const double bexpect = (double)(J - 1) + log(b1 / DBL_MIN) / log(b0 / b1);
  bafu_kernel_free(k);
  p.depth = 3000;
  ck_assert_ok(bafu_kernel_alloc(&p, &k));
  ck_assert_int_eq(bafu_kernel_run(k, X), BAFU_ENUMERIC);
  label = -1;
  ck_assert_msg(sscanf(bafu_last_error(), "depth/sigma_w2: the forward variance q underflows at layer %d", &label) == 1,
                "message: %s", bafu_last_error());
  ck_assert_msg(fabs(label - bexpect) <= 2, "batch: label %d, expected about %.1f", label, bexpect);
  bafu_kernel_free(k);
}
END_TEST

START_TEST(test_errors) {
  bafu_net_params p = bafu_net_params_default();
  size_t calls = 0;
  const double bad[] = {1.5, -1.0000001, NAN, INFINITY, -INFINITY};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    ck_assert_int_eq(bafu_kernel_two_inputs(&p, bad[i], count_cb, &calls), BAFU_EINVAL);
    ck_assert_msg(strncmp(bafu_last_error(), "corr: ", 6) == 0, "message: %s", bafu_last_error());
  }
  ck_assert_ok(bafu_kernel_two_inputs(&p, 1.0, count_cb, &calls));
  ck_assert_ok(bafu_kernel_two_inputs(&p, -1.0, count_cb, &calls));
  ck_assert_uint_eq(calls, 2 * p.depth);
  ck_assert_int_eq(bafu_kernel_two_inputs(&p, 0.5, NULL, NULL), BAFU_EINVAL);
  /* early stop */
  calls = 0;
  ck_assert_ok(bafu_kernel_two_inputs(&p, 0.5, stop_cb, &calls));
  ck_assert_uint_eq(calls, 3);
  /* invalid parameters, for both entry points */
  bafu_kernel *k = (bafu_kernel *)&p;
  bafu_net_params b = p;
  b.width = 0;
  ck_assert_int_eq(bafu_kernel_two_inputs(&b, 0.5, count_cb, &calls), BAFU_EINVAL);
  ck_assert_int_eq(bafu_kernel_alloc(&b, &k), BAFU_EINVAL);
  ck_assert_ptr_null(k);
  b = p;
  b.sigma_w2 = -1;
  ck_assert_int_eq(bafu_kernel_alloc(&b, &k), BAFU_EINVAL);
  ck_assert_msg(strncmp(bafu_last_error(), "sigma_w2: ", 10) == 0, "message: %s", bafu_last_error());
  b = p;
  b.arch = BAFU_ARCH_RESNET;
  b.input_dim = 7; /* no embedding needs d = n */
  ck_assert_int_eq(bafu_kernel_two_inputs(&b, 0.5, count_cb, &calls), BAFU_EINVAL);
  /* overflow: relu MLP with s = 4 doubles q per layer; 2000 layers overflow,
   * and the callback is never called */
  b = p;
  b.sigma_w2 = 4;
  b.depth = 2000;
  calls = 0;
  ck_assert_int_eq(bafu_kernel_two_inputs(&b, 0.5, count_cb, &calls), BAFU_ENUMERIC);
  ck_assert_uint_eq(calls, 0);
  ck_assert_msg(strncmp(bafu_last_error(), "depth/", 6) == 0, "message: %s", bafu_last_error());
  b.batch = 2;
  b.input_dim = 3;
  ck_assert_ok(bafu_kernel_alloc(&b, &k));
  const double X[6] = {1, 2, 3, 4, 5, 6};
  ck_assert_int_eq(bafu_kernel_run(k, X), BAFU_ENUMERIC);
  const double Xn[6] = {1, 2, NAN, 4, 5, 6};
  ck_assert_int_eq(bafu_kernel_run(k, Xn), BAFU_EINVAL);
  ck_assert_int_eq(bafu_kernel_set_method(k, (bafu_kernel_method)7), BAFU_EINVAL);
  bafu_kernel_free(k);
  bafu_kernel_free(NULL);
  /* a normalised branch cannot read a zero stream (KR 2.6): a zero input
   * through an embedding without biases */
  b = p;
  b.arch = BAFU_ARCH_RESNET;
  b.embed = 1;
  b.branch_norm = BAFU_BRANCH_NORM_RMS;
  b.batch = 2;
  b.input_dim = 3;
  ck_assert_ok(bafu_kernel_alloc(&b, &k));
  const double X0[6] = {1, 2, 3, 0, 0, 0};
  ck_assert_int_eq(bafu_kernel_run(k, X0), BAFU_ENUMERIC);
  ck_assert_msg(strncmp(bafu_last_error(), "branch_norm: ", 13) == 0, "message: %s", bafu_last_error());
  bafu_kernel_free(k);
  /* memory limit */
  b = p;
  b.batch = 1000;
  b.depth = 100;
  setenv("BAFU_MEMORY_LIMIT_MB", "10", 1);
  ck_assert_int_eq(bafu_kernel_alloc(&b, &k), BAFU_ELIMIT);
  ck_assert_ptr_null(k);
  unsetenv("BAFU_MEMORY_LIMIT_MB");
}
END_TEST

int main(void) {
  Suite *s = suite_create("kernel");
  TCase *tc = tcase_create("recursions");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_relu_map);
  tcase_add_test(tc, test_relu_long_double);
  tcase_add_test(tc, test_relu_deep_asymptotics);
  tcase_add_test(tc, test_linear_closed_form);
  tcase_add_test(tc, test_resnet_hand);
  tcase_add_test(tc, test_norm_hand);
  tcase_add_test(tc, test_resnet_small_beta);
  tcase_add_test(tc, test_quadrature_path);
  tcase_add_loop_test(tc, test_against_moments, 0, MOMENT_CASES + MOMENT_NORM_CASES);
  tcase_add_loop_test(tc, test_pair_vs_batch, 0, PAIR_CASES + PAIR_NORM_CASES + PAIR_BLOCK_CASES);
  tcase_add_test(tc, test_erf_stable);
  tcase_add_test(tc, test_block_linear_closed_form);
  tcase_add_test(tc, test_block_relu_hand);
  tcase_add_test(tc, test_block_quadrature);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_two_inputs_blocks);
  tcase_add_test(tc, test_backward_overflow_blocks);
  tcase_add_test(tc, test_forward_underflow);
  suite_add_tcase(s, tc);
  TCase *tt = tcase_create("table");
  tcase_set_timeout(tt, 300);
  tcase_add_loop_test(tt, test_table_recursions, 0, TABLE_CASES);
  tcase_add_test(tt, test_table_batch);
  suite_add_tcase(s, tt);
  TCase *te = tcase_create("engine");
  tcase_set_timeout(te, 300);
  tcase_add_test(te, test_engine_nngp);
  tcase_add_loop_test(te, test_engine_norm_nngp, 0, 2);
  tcase_add_loop_test(te, test_engine_mc, 0, 8);
  tcase_add_loop_test(te, test_engine_norm_ntk, 0, 3);
  tcase_add_loop_test(te, test_engine_block, 0, 2);
  tcase_add_loop_test(te, test_engine_block_ntk, 0, 2);
  suite_add_tcase(s, te);
  return bafu_run_suite(s);
}
