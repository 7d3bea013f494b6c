/* test_spectrum.c: spectra of the BFK and of J J^T (bafu/spectrum.h,
 * theory/spectrum.md): dense eigendecomposition residuals, the angle against
 * the engine's per-draw measurement, matrix-free products against the dense
 * matrix, KPM against the dense spectrum, the free-probability limit against
 * the moment recursion, Fuss-Catalan laws, and convergence in width. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_poly.h>

#include "bafu/moments.h"
#include "bafu/spectrum.h"
#include "spectrum_dyson.h"  /* the Dyson equation of nonlinear ResNets */
#include "spectrum_subord.h" /* the pointwise chain, for the mask-law checks */
#include "testutil.h"

static bafu_net *make_net(const bafu_net_params *p, uint64_t seed, uint64_t draw) {
  bafu_net *net;
  ck_assert_ok(bafu_net_alloc(p, &net));
  ck_assert_ok(bafu_net_draw(net, seed, draw));
  ck_assert_ok(bafu_net_run(net));
  return net;
}

static bafu_net_params base(bafu_arch arch, bafu_act act, size_t n, size_t depth) {
  bafu_net_params p = bafu_net_params_default();
  p.arch = arch;
  p.act = act;
  p.width = n;
  p.depth = depth;
  p.step = 0;
  if (act != BAFU_ACT_RELU) p.sigma_w2 = 1.3;
  return p;
}

/* The dense angle equals bafu mc's per-draw cos_theta (the engine's tangent
 * and backward passes) for every layer, to 1e-10. */
START_TEST(test_dense_cos_matches_engine) {
  bafu_net_params ps[10];
  ps[0] = base(BAFU_ARCH_MLP, BAFU_ACT_RELU, 96, 5);
  ps[1] = base(BAFU_ARCH_RESNET, BAFU_ACT_TANH, 80, 6);
  ps[1].embed = 1;
  ps[1].input_dim = 37;
  ps[1].lr_input = 0.7;
  ps[2] = base(BAFU_ARCH_RESNET, BAFU_ACT_RELU, 64, 4);
  ps[2].branch_scale = 1.7;
  ps[3] = base(BAFU_ARCH_MLP, BAFU_ACT_GELU, 72, 4);
  ps[3].signal = BAFU_SIGNAL_MSE;
  ps[3].outputs = 3;
  ps[3].lr_hidden = 0.385;
  ps[4] = base(BAFU_ARCH_MLP, BAFU_ACT_ERF, 50, 3);
  ps[4].init = BAFU_INIT_ORTHOGONAL;
  ps[4].input_dim = 71;
  ps[5] = base(BAFU_ARCH_MLP, BAFU_ACT_TANH, 60, 4); /* biases: c_j gains lr_b s^2 (theory/engine.md 1.3) */
  ps[5].bias_var = 0.4;
  ps[5].lr_bias = 40;
  ps[6] = base(BAFU_ARCH_RESNET, BAFU_ACT_RELU, 48, 3);
  ps[6].embed = 1;
  ps[6].input_dim = 20;
  ps[6].bias_var = 0.6;
  ps[6].lr_bias = 25;
  /* normalised branches: the block Jacobian I + beta W D P (theory/engine.md 1.4) */
  ps[7] = base(BAFU_ARCH_RESNET, BAFU_ACT_RELU, 64, 4);
  ps[7].branch_norm = BAFU_BRANCH_NORM_RMS;
  ps[7].branch_scale = 1.7;
  ps[8] = base(BAFU_ARCH_RESNET, BAFU_ACT_TANH, 56, 5);
  ps[8].branch_norm = BAFU_BRANCH_NORM_RMS;
  ps[8].embed = 1;
  ps[8].input_dim = 30;
  ps[8].bias_var = 0.3;
  ps[8].lr_bias = 20;
  ps[9] = base(BAFU_ARCH_RESNET, BAFU_ACT_GELU, 40, 3);
  ps[9].branch_norm = BAFU_BRANCH_NORM_RMS;
  ps[9].init = BAFU_INIT_ORTHOGONAL;
  for (size_t c = 0; c < 10; ++c) {
    bafu_net *net = make_net(&ps[c], 17 + c, 3);
    const size_t J = bafu_net_nlayers(net);
    double *q = malloc(J * BAFU_Q_COUNT * sizeof(double));
    bafu_net_measure(net, q);
    bafu_spec_dense *ws;
    ck_assert_ok(bafu_spec_dense_alloc(net, 0, &ws));
    bafu_spec_moments mom[16];
    ck_assert_ok(bafu_spec_dense_run(ws, net, BAFU_SPEC_BFK, J - 1, mom, NULL));
    for (size_t j = 0; j < J; ++j) {
      ck_assert(mom[j].defined);
      ck_assert_int_eq(mom[j].label, bafu_net_layer_label(net, j));
      ck_assert_close(mom[j].cos_theta, q[j * BAFU_Q_COUNT + BAFU_Q_COS], 1e-10, 0);
      /* D_l = <b, K b> */
      const double *b = bafu_net_backward_signal(net, j);
      (void)b;
    }
    bafu_spec_dense_free(ws);
    free(q);
    bafu_net_free(net);
  }
}
END_TEST

/* Residual branches of K > 1 layers (theory/spectrum.md 2.1): the networks of
 * the tests below. Every unit trained (weights at lr_hidden, biases at
 * lr_bias), ReLU and tanh, with and without an embedding (without one the
 * first block reads x), with normalised branches and a readout. */
static size_t deep_cases(bafu_net_params *ps) {
  ps[0] = base(BAFU_ARCH_RESNET, BAFU_ACT_RELU, 48, 3);
  ps[0].block_depth = 2;
  ps[0].embed = 1;
  ps[0].input_dim = 21;
  ps[0].bias_var = 0.5;
  ps[0].lr_bias = 23;
  ps[0].branch_scale = 1.6;
  ps[1] = base(BAFU_ARCH_RESNET, BAFU_ACT_TANH, 40, 3);
  ps[1].block_depth = 3;
  ps[1].branch_norm = BAFU_BRANCH_NORM_RMS;
  ps[1].bias_var = 0.3;
  ps[1].lr_bias = 17;
  ps[1].branch_scale = 2.385;
  ps[2] = base(BAFU_ARCH_RESNET, BAFU_ACT_RELU, 44, 3); /* no embedding: block 1 reads x */
  ps[2].block_depth = 3;
  ps[2].branch_norm = BAFU_BRANCH_NORM_RMS;
  ps[2].branch_scale = 1.7;
  ps[3] = base(BAFU_ARCH_RESNET, BAFU_ACT_TANH, 36, 4);
  ps[3].block_depth = 2;
  ps[3].embed = 1;
  ps[3].input_dim = 29;
  ps[3].bias_var = 0.4;
  ps[3].lr_bias = 31;
  ps[3].signal = BAFU_SIGNAL_MSE; /* a plain readout above the blocks */
  ps[3].outputs = 3;
  ps[3].lr_hidden = 0.385;
  return 4;
}

/* The dense BFK applied to the engine's backward vector is the engine's
 * tangent, df_l = -K_l b_l (the tangent pass is exact first order), to 1e-10
 * relative at every layer; <b_l, K_l b_l> is the engine's D_l = sum_{k <= l}
 * C_k. The inner units' share of D at the top layer (from their gradients,
 * bafu_net_weight_grad and bafu_net_bias_grad) is far above the tolerance, so
 * a BFK without their terms fails. For the tanh cases the engine's tangent is
 * also checked against central differences of its finite step. */
START_TEST(test_dense_deep_blocks_match_engine) {
  bafu_net_params ps[4];
  const size_t ncases = deep_cases(ps);
  double worst = 0, worst_d = 0;
  for (size_t c = 0; c < ncases; ++c) {
    bafu_net *net = make_net(&ps[c], 41 + c, 2);
    const size_t J = bafu_net_nlayers(net), U = bafu_net_nunits(net), K = ps[c].block_depth;
    ck_assert_int_eq(U, J + (K - 1) * ps[c].depth);
    double *q = malloc(J * BAFU_Q_COUNT * sizeof(double));
    bafu_net_measure(net, q);
    bafu_spec_dense *ws;
    ck_assert_ok(bafu_spec_dense_alloc(net, 0, &ws));
    const size_t nmax = 64;
    double Kb[64], gw[64 * 64];
    for (size_t l = 0; l < J; ++l) {
      const size_t n = bafu_net_layer_fan_out(net, l);
      bafu_spec_moments mom[8];
      ck_assert_ok(bafu_spec_dense_run(ws, net, BAFU_SPEC_BFK, l, mom, NULL));
      const double *b = bafu_net_backward_signal(net, l), *df = bafu_net_feature_tangent(net, l);
      cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)n, 1.0, bafu_spec_dense_matrix(ws), (int)n, b, 1, 0.0,
                  Kb, 1);
      double e = 0, s = 0;
      for (size_t i = 0; i < n; ++i) e += (Kb[i] + df[i]) * (Kb[i] + df[i]), s += df[i] * df[i];
      const double rel = sqrt(e / s);
      worst = fmax(worst, rel);
      ck_assert_msg(rel < 1e-10, "case %zu layer %zu: |K b + df| / |df| = %g", c, l, rel);
      const double bkb = cblas_ddot((int)n, b, 1, Kb, 1), D = q[l * BAFU_Q_COUNT + BAFU_Q_DECAY];
      worst_d = fmax(worst_d, fabs(bkb - D) / D);
      ck_assert_close(bkb, D, 1e-10, 0);
      ck_assert_close(mom[l].cos_theta, q[l * BAFU_Q_COUNT + BAFU_Q_COS], 1e-10, 0);
    }
    /* the inner units' share of D at the top layer */
    double inner = 0;
    for (size_t u = 0; u < U; ++u) {
      const size_t j = bafu_net_unit_layer(net, u), fo = bafu_net_unit_fan_out(net, u);
      const size_t fi = bafu_net_unit_fan_in(net, u);
      if (u + 1 < U && bafu_net_unit_layer(net, u + 1) == j) { /* not its row's last unit */
        ck_assert(fo <= nmax && fi <= nmax);
        bafu_net_weight_grad(net, u, gw);
        inner += bafu_net_layer_lr(net, j) * cblas_ddot((int)(fo * fi), gw, 1, gw, 1);
        if (bafu_net_bias(net, u)) {
          bafu_net_bias_grad(net, u, gw);
          inner += bafu_net_layer_bias_lr(net, j) * cblas_ddot((int)fo, gw, 1, gw, 1);
        }
      }
    }
    const double share = inner / q[(J - 1) * BAFU_Q_COUNT + BAFU_Q_DECAY];
    ck_assert_msg(share > 1e-2, "case %zu: inner units' share of D %g", c, share);
    if (ps[c].act == BAFU_ACT_TANH) {
      /* the reference: tangent = central difference of the step, whose error
         is O(h^2) (case 1: 1.7e-5 at h = 1e-4, 1.6e-6 at 3e-5) */
      const size_t n = bafu_net_layer_fan_out(net, J - 1);
      const double h = 1e-5;
      double fp[64], e = 0, s = 0;
      ck_assert_ok(bafu_net_step(net, h));
      memcpy(fp, bafu_net_feature_stepped(net, J - 1), n * sizeof(double));
      ck_assert_ok(bafu_net_step(net, -h));
      const double *fm = bafu_net_feature_stepped(net, J - 1), *df = bafu_net_feature_tangent(net, J - 1);
      for (size_t i = 0; i < n; ++i) {
        const double fd = (fp[i] - fm[i]) / (2 * h);
        e += (fd - df[i]) * (fd - df[i]), s += df[i] * df[i];
      }
      printf("test_dense_deep_blocks_match_engine: case %zu: central difference vs tangent %.3g\n", c, sqrt(e / s));
      ck_assert_msg(sqrt(e / s) < 1e-6, "case %zu: central difference vs tangent %g", c, sqrt(e / s));
    }
    printf("test_dense_deep_blocks_match_engine: case %zu (K = %zu): inner share of D %.3g\n", c, K, share);
    bafu_spec_dense_free(ws);
    free(q);
    bafu_net_free(net);
  }
  printf("test_dense_deep_blocks_match_engine: max |K b + df| / |df| %.3g, max |<b, K b> - D| / D %.3g\n", worst,
         worst_d);
}
END_TEST

/* Scaled residual |K - U S U^T|_F / (n |K|_F eps) of the eigendecomposition. */
START_TEST(test_dense_residual) {
  bafu_net_params p = base(BAFU_ARCH_MLP, BAFU_ACT_RELU, 200, 4);
  bafu_net *net = make_net(&p, 5, 0);
  bafu_spec_dense *ws;
  ck_assert_ok(bafu_spec_dense_alloc(net, 1, &ws));
  const size_t n = 200;
  double *ev = malloc(n * sizeof(double)), *US = malloc(n * n * sizeof(double)), *R = malloc(n * n * sizeof(double));
  ck_assert_ok(bafu_spec_dense_run(ws, net, BAFU_SPEC_BFK, 3, NULL, ev));
  const double *K = bafu_spec_dense_matrix(ws), *U = bafu_spec_dense_vectors(ws);
  ck_assert_ptr_nonnull(U);
  for (size_t j = 0; j < n; ++j)
    for (size_t i = 0; i < n; ++i) US[i + j * n] = U[i + j * n] * ev[j];
  memcpy(R, K, n * n * sizeof(double));
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)n, -1.0, US, (int)n, U, (int)n, 1.0, R,
              (int)n);
  const double res = cblas_dnrm2((int)(n * n), R, 1) / ((double)n * cblas_dnrm2((int)(n * n), K, 1) * DBL_EPSILON);
  ck_assert_msg(res < 10.0, "scaled residual %g", res);
  /* ascending, and bounded below by c_L (K >= c I) */
  for (size_t i = 1; i < n; ++i) ck_assert(ev[i] >= ev[i - 1]);
  ck_assert(ev[0] > 0);
  free(ev), free(US), free(R);
  bafu_spec_dense_free(ws);
  bafu_net_free(net);
  /* a conditional network has no weight matrices: both spectra refuse it
   * (the check is on the network, whatever p says) */
  p.conditional = 1;
  ck_assert_ok(bafu_net_alloc(&p, &net));
  p.conditional = 0;
  ck_assert_int_eq(bafu_spec_dense_alloc(net, 0, &ws), BAFU_EINVAL);
  bafu_kpm_params kp = bafu_kpm_params_default();
  bafu_spec_kpm *kw;
  ck_assert_int_eq(bafu_spec_kpm_alloc(net, &kp, &kw), BAFU_EINVAL);
  ck_assert(strncmp(bafu_last_error(), "conditional: ", 13) == 0);
  bafu_net_free(net);
}
END_TEST

/* Matrix-free M v equals the dense M v (both objects, MLP and ResNet, and
 * residual branches of K = 2 and 3 layers: deep_cases). */
START_TEST(test_kpm_apply_matches_dense) {
  bafu_net_params ps[8];
  ps[0] = base(BAFU_ARCH_MLP, BAFU_ACT_RELU, 64, 5);
  ps[1] = base(BAFU_ARCH_RESNET, BAFU_ACT_SWISH, 48, 5);
  ps[2] = base(BAFU_ARCH_RESNET, BAFU_ACT_RELU, 40, 3);
  ps[2].embed = 1;
  ps[2].input_dim = 23;
  ps[3] = base(BAFU_ARCH_RESNET, BAFU_ACT_TANH, 44, 4); /* normalised branches */
  ps[3].branch_norm = BAFU_BRANCH_NORM_RMS;
  const size_t ncases = 4 + deep_cases(ps + 4);
  for (size_t c = 0; c < ncases; ++c)
    for (int obj = 0; obj < 2; ++obj) {
      bafu_net *net = make_net(&ps[c], 9, 1);
      const size_t J = bafu_net_nlayers(net), n = ps[c].width;
      bafu_spec_dense *ws;
      ck_assert_ok(bafu_spec_dense_alloc(net, 0, &ws));
      bafu_kpm_params kp = bafu_kpm_params_default();
      kp.vectors = 2;
      bafu_spec_kpm *kw;
      ck_assert_ok(bafu_spec_kpm_alloc(net, &kp, &kw));
      double *v = malloc(2 * n * sizeof(double)), *o = malloc(2 * n * sizeof(double)), *d = malloc(n * sizeof(double));
      for (size_t i = 0; i < 2 * n; ++i) v[i] = sin(2.385 * (double)i + 0.3);
      for (size_t l = 0; l < J; ++l) {
        ck_assert_ok(bafu_spec_dense_run(ws, net, (bafu_spec_object)obj, l, NULL, NULL));
        ck_assert_ok(bafu_spec_kpm_prepare(kw, net, (bafu_spec_object)obj, l));
        bafu_spec_kpm_apply(kw, net, 2, v, o);
        const size_t nl = bafu_net_layer_fan_out(net, l); /* n, or the readout's outputs */
        for (size_t col = 0; col < 2; ++col) {
          cblas_dgemv(CblasColMajor, CblasNoTrans, (int)nl, (int)nl, 1.0, bafu_spec_dense_matrix(ws), (int)nl,
                      v + col * nl, 1, 0.0, d, 1);
          double e = 0, s = 0;
          for (size_t i = 0; i < nl; ++i) e += (d[i] - o[i + col * nl]) * (d[i] - o[i + col * nl]), s += d[i] * d[i];
          ck_assert_msg(sqrt(e / s) < 1e-12, "case %zu obj %d layer %zu: rel err %g", c, obj, l, sqrt(e / s));
        }
      }
      free(v), free(o), free(d);
      bafu_spec_kpm_free(kw);
      bafu_spec_dense_free(ws);
      bafu_net_free(net);
    }
}
END_TEST

/* FFTW's planner is global and not thread-safe: the KPM's DCT plans and the
 * moment theory's convolution grid (theory/moments.md 2.9) make and destroy
 * plans under one lock. Two threads doing both at once, many times, with plans
 * of varying sizes; without the shared lock this corrupts FFTW's planner
 * (crashes, or sanitizer reports in the ASan build). */
static void *planner_worker(void *arg) {
  const int id = *(const int *)arg;
  bafu_net_params p = base(BAFU_ARCH_MLP, BAFU_ACT_RELU, 16, 2);
  bafu_net *net = make_net(&p, 3 + (uint64_t)id, 1);
  bafu_net_params r = base(BAFU_ARCH_RESNET, BAFU_ACT_TANH, 64, 6); /* the convolution grid's plans */
  r.sigma_w2 = 1;
  bafu_moments_layer o[8];
  intptr_t bad = 0;
  for (int it = 0; it < 150 && !bad; ++it) {
    bafu_kpm_params kp = bafu_kpm_params_default();
    kp.moments = 16 + (size_t)(it % 7);
    kp.points = 2 * kp.moments + (size_t)id;
    kp.vectors = 1;
    bafu_spec_kpm *kw;
    if (bafu_spec_kpm_alloc(net, &kp, &kw)) bad = 1;
    else bafu_spec_kpm_free(kw);
    if (it % 10 == id && bafu_moments_run(&r, 0, o)) bad = 2;
  }
  bafu_net_free(net);
  return (void *)bad;
}

START_TEST(test_planner_threads) {
  pthread_t th[2];
  int ids[2] = {0, 1};
  for (int i = 0; i < 2; ++i) ck_assert_int_eq(pthread_create(&th[i], NULL, planner_worker, &ids[i]), 0);
  for (int i = 0; i < 2; ++i) {
    void *ret;
    ck_assert_int_eq(pthread_join(th[i], &ret), 0);
    ck_assert_msg(ret == NULL, "thread %d failed (%ld): %s", i, (long)(intptr_t)ret, bafu_last_error());
  }
}
END_TEST

static double kpm_cdf(const void *ctx, double x) { return bafu_spec_kpm_cdf(ctx, x); }

/* KPM against the dense spectrum of the same draw: Wasserstein-1 distance
 * between the KPM distribution function and the empirical one, relative to
 * the spectral width, below 1%; the density integrates to 1. The stochastic
 * m1, m2 (Hutchinson) within 2% and 5% (MLP, ResNet), and for the branches of
 * K = 2 and 3 layers within 4 of their standard errors, computed from the
 * dense matrix (printed for every case). */
START_TEST(test_kpm_matches_dense) {
  bafu_net_params ps[4];
  ps[0] = base(BAFU_ARCH_MLP, BAFU_ACT_RELU, 512, 4);
  ps[1] = base(BAFU_ARCH_RESNET, BAFU_ACT_TANH, 512, 6);
  ps[2] = base(BAFU_ARCH_RESNET, BAFU_ACT_RELU, 512, 3); /* branches of 2 layers, biases, normalised */
  ps[2].block_depth = 2;
  ps[2].branch_norm = BAFU_BRANCH_NORM_RMS;
  ps[2].bias_var = 0.5;
  ps[2].lr_bias = 23;
  ps[2].branch_scale = 1.6;
  ps[3] = base(BAFU_ARCH_RESNET, BAFU_ACT_TANH, 512, 2); /* branches of 3 layers, embedding */
  ps[3].block_depth = 3;
  ps[3].embed = 1;
  ps[3].input_dim = 37;
  ps[3].branch_scale = 2.385;
  for (size_t c = 0; c < 4; ++c) {
    const size_t n = ps[c].width;
    bafu_net *net = make_net(&ps[c], 3, 2);
    const size_t J = bafu_net_nlayers(net);
    bafu_spec_dense *ws;
    ck_assert_ok(bafu_spec_dense_alloc(net, 0, &ws));
    double *ev = malloc(n * sizeof(double));
    ck_assert_ok(bafu_spec_dense_run(ws, net, BAFU_SPEC_BFK, J - 1, NULL, ev));
    bafu_kpm_params kp = bafu_kpm_params_default();
    bafu_spec_kpm *kw;
    ck_assert_ok(bafu_spec_kpm_alloc(net, &kp, &kw));
    ck_assert_ok(bafu_spec_kpm_prepare(kw, net, BAFU_SPEC_BFK, J - 1));
    const size_t P = 2 * kp.moments;
    double *x = malloc(P * sizeof(double)), *rho = malloc(P * sizeof(double)), lo, hi;
    ck_assert_ok(bafu_spec_kpm_run(kw, net, x, rho, &lo, &hi));
    ck_assert(lo <= ev[0] * (1 + 1e-12) && hi >= ev[n - 1]);
    const double w1 = bafu_spec_w1(kpm_cdf, kw, ev, n, lo, hi, 4000);
    ck_assert_msg(w1 / (ev[n - 1] - ev[0]) < 0.01, "case %zu: W1 %g, width %g", c, w1, ev[n - 1] - ev[0]);
    double m1 = 0, m2 = 0, k1, k2;
    for (size_t i = 0; i < n; ++i) m1 += ev[i] / n, m2 += ev[i] * ev[i] / n;
    bafu_spec_kpm_moments(kw, &k1, &k2);
    /* Hutchinson's standard errors with R Rademacher vectors: the estimate of
       tr(M^p)/n has variance 2 sum_{i != j} (M^p)_ij^2 / (R n^2) */
    const double *Km = bafu_spec_dense_matrix(ws);
    double *K2 = malloc(n * n * sizeof(double)), se[3];
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0, Km, (int)n, Km, (int)n, 0.0,
                K2, (int)n);
    for (int p = 1; p <= 2; ++p) {
      const double *Mp = p == 1 ? Km : K2;
      double off = cblas_ddot((int)(n * n), Mp, 1, Mp, 1);
      for (size_t i = 0; i < n; ++i) off -= Mp[i + i * n] * Mp[i + i * n];
      se[p] = sqrt(2 * off / (double)kp.vectors) / (double)n;
    }
    free(K2);
    printf("test_kpm_matches_dense: case %zu: W1 / width %.3g; m1, m2 off by %.3g, %.3g relative (%.2f, %.2f "
           "standard errors)\n", c, w1 / (ev[n - 1] - ev[0]), fabs(k1 - m1) / m1, fabs(k2 - m2) / m2,
           fabs(k1 - m1) / se[1], fabs(k2 - m2) / se[2]);
    /* within 4 of Hutchinson's standard errors (a fixed relative tolerance would be
       below one standard error for the ReLU MLP's m1) */
    ck_assert_msg(fabs(k1 - m1) < 4 * se[1], "case %zu: m1 %g vs %g, standard error %g", c, k1, m1, se[1]);
    ck_assert_msg(fabs(k2 - m2) < 4 * se[2], "case %zu: m2 %g vs %g, standard error %g", c, k2, m2, se[2]);
    free(x), free(rho), free(ev);
    bafu_spec_kpm_free(kw);
    bafu_spec_dense_free(ws);
    bafu_net_free(net);
  }
}
END_TEST

static double binom(double a, double k) { return exp(lgamma(a + 1) - lgamma(k + 1) - lgamma(a - k + 1)); }
static double fuss_catalan(int p, int k) { return binom((double)((p + 1) * k), k) / (double)(p * k + 1); }

/* Product of p Gaussian matrices (linear MLP, sigma_w2 = 1, Jacobian object):
 * the dense finite-width moments of J J^T against the Fuss-Catalan moments
 * C((p+1)k, k)/(pk+1), averaged over 4 draws at n = 300, within 3% (m2) and
 * 6% (m3) (finite-n corrections are O(p k^2 / n)). */
START_TEST(test_fuss_catalan_dense) {
  const int p = 2;
  bafu_net_params pr = base(BAFU_ARCH_MLP, BAFU_ACT_LINEAR, 300, (size_t)p + 1);
  pr.sigma_w2 = 1.0;
  double m[4] = {0};
  const size_t n = pr.width;
  double *ev = malloc(n * sizeof(double));
  for (uint64_t draw = 0; draw < 4; ++draw) {
    bafu_net *net = make_net(&pr, 11, draw);
    bafu_spec_dense *ws;
    ck_assert_ok(bafu_spec_dense_alloc(net, 0, &ws));
    ck_assert_ok(bafu_spec_dense_run(ws, net, BAFU_SPEC_JACOBIAN, (size_t)p, NULL, ev));
    for (size_t i = 0; i < n; ++i)
      for (int k = 1; k <= 3; ++k) m[k] += pow(ev[i], k) / (4.0 * (double)n);
    bafu_spec_dense_free(ws);
    bafu_net_free(net);
  }
  ck_assert_close(m[1], fuss_catalan(p, 1), 0.02, 0);
  ck_assert_close(m[2], fuss_catalan(p, 2), 0.03, 0);
  ck_assert_close(m[3], fuss_catalan(p, 3), 0.06, 0);
  free(ev);
}
END_TEST


/* Limit: the carried moments equal the moment recursion (bafu_moments_run) to
 * 1e-10; the grid density plus atoms integrates to 1 and its raw first two
 * moments agree within 3e-3 (ReLU), 1e-2 (linear ResNet), 2e-2 (tanh) (ReLU:
 * atom 1/2 at c_l after layer 1). */
/* A kernel law too narrow for its size (ReLU with bias variance 100: K_3 sits
 * far from 0 with a small spread) defeats the subordination solver at most grid
 * points; the limit refuses it (it used to run for an hour) instead of
 * returning an unconverged density. */
START_TEST(test_limit_refuses_unconverged) {
  bafu_net_params p = base(BAFU_ARCH_MLP, BAFU_ACT_RELU, 16, 3);
  p.bias_var = 100;
  /* the discretised method (the pointwise one solves this case, test_limit_exact) */
  bafu_free_params fp = {.atoms = 1500, .grid = 400, .method = BAFU_FREE_DISCRETE}; /* refused in about 4 s */
  bafu_free *ws;
  ck_assert_ok(bafu_free_alloc(&fp, &ws));
  bafu_free_layer L[4];
  ck_assert_int_eq(bafu_free_run(ws, &p, 0, BAFU_SPEC_BFK, 2, L), BAFU_ENUMERIC);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "did not converge"));
  bafu_free_free(ws);
}
END_TEST

START_TEST(test_limit_moments) {
  bafu_net_params ps[4];
  ps[0] = base(BAFU_ARCH_MLP, BAFU_ACT_RELU, 256, 4);
  ps[1] = base(BAFU_ARCH_MLP, BAFU_ACT_TANH, 256, 3);
  ps[2] = base(BAFU_ARCH_RESNET, BAFU_ACT_LINEAR, 256, 4);
  ps[2].branch_scale = 1.3;
  ps[3] = ps[2]; /* normalised branches: beta / sqrt(q) per block */
  ps[3].branch_norm = BAFU_BRANCH_NORM_RMS;
  ps[3].branch_scale = 2.1;
  bafu_free_params fp = {.atoms = 800, .grid = 800};
  for (size_t c = 0; c < 4; ++c) {
    bafu_free *ws;
    ck_assert_ok(bafu_free_alloc(&fp, &ws));
    const size_t J = bafu_moments_nlayers(&ps[c]);
    bafu_free_layer L[8];
    bafu_moments_layer o[8];
    ck_assert_ok(bafu_moments_run(&ps[c], 0, o));
    ck_assert_ok(bafu_free_run(ws, &ps[c], 0, BAFU_SPEC_BFK, J - 1, L));
    for (size_t j = 0; j < J; ++j) {
      ck_assert_close(L[j].m1, o[j].m1, 1e-10, 0);
      ck_assert_close(L[j].m2, o[j].m2, 1e-10, 0);
      const double tol[4] = {3e-3, 2e-2, 1e-2, 1e-2}; /* relu, tanh (64-node mask law), linear resnets */
      ck_assert_msg(fabs(L[j].raw[0] - 1) < tol[c], "case %zu layer %zu: mass %g", c, j, L[j].raw[0]);
      ck_assert_close(L[j].raw[1], o[j].m1, tol[c], 0);
      ck_assert_close(L[j].raw[2], o[j].m2, tol[c], 0);
      if (c == 0 && j > 0) {
        ck_assert_int_eq(L[j].natoms, 1);
        ck_assert_close(L[j].atom[0].x, o[j].c, 1e-12, 0);
        ck_assert_close(L[j].atom[0].mass, 0.5, 1e-12, 0);
      }
    }
    bafu_free_free(ws);
  }
  /* an untrained first layer (lr_input = 0): K_1 = 0 (an atom at 0), K_2 =
     c_2 I (an atom at c_2) and K_3 the law of the trained network's K_2
     (same c, same mask law): finite, and no hang (it used to divide by K_1 = 0) */
  {
    bafu_net_params q = base(BAFU_ARCH_MLP, BAFU_ACT_RELU, 64, 3), q1 = q;
    q.lr_input = 0;
    bafu_free *ws;
    bafu_free_layer L[4], R[4];
    ck_assert_ok(bafu_free_alloc(&fp, &ws));
    ck_assert_ok(bafu_free_run(ws, &q1, 0, BAFU_SPEC_BFK, 1, R));
    ck_assert_ok(bafu_free_run(ws, &q, 0, BAFU_SPEC_BFK, 2, L));
    bafu_moments_layer o[3];
    ck_assert_ok(bafu_moments_run(&q, 0, o));
    ck_assert_double_eq(L[0].m1, 0);
    ck_assert_int_eq(L[0].natoms, 1);
    ck_assert_double_eq(L[0].atom[0].x, 0);
    ck_assert_int_eq(L[1].natoms, 1);
    ck_assert_close(L[1].atom[0].x, o[1].c, 1e-12, 0);
    ck_assert_close(L[1].atom[0].mass, 1, 1e-12, 0);
    ck_assert_close(L[1].raw[0], 1, 1e-12, 0); /* no density besides the atom */
    for (int k = 1; k <= 2; ++k) ck_assert_close(L[2].raw[k], R[1].raw[k], 1e-12, 0);
    ck_assert_close(L[2].m1, o[2].m1, 1e-10, 0);
    ck_assert_close(L[2].m2, o[2].m2, 1e-10, 0);
    bafu_free_free(ws);
  }
  /* branches of K > 1 layers are refused, even linear ones, naming the parameter */
  bafu_net_params r = base(BAFU_ARCH_RESNET, BAFU_ACT_RELU, 64, 3);
  bafu_free *ws;
  bafu_free_layer L[4];
  ck_assert_ok(bafu_free_alloc(&fp, &ws));
  r.act = BAFU_ACT_LINEAR;
  r.block_depth = 2;
  ck_assert_int_eq(bafu_free_run(ws, &r, 0, BAFU_SPEC_BFK, 2, L), BAFU_EINVAL);
  ck_assert(strncmp(bafu_last_error(), "block_depth: ", 13) == 0);
  bafu_free_free(ws);
}
END_TEST


/* ------------------------------------ limit, nonlinear ResNets (4.9) --- */

/* The chain of a ResNet (embedding, L one-layer blocks) as the Dyson solver
 * sees it: s2, c (BFK), stream variances q and the exact mask statistics. */
typedef struct {
  size_t L;
  double s2[16], c[17], q[16], m[16], m4[16], M[256];
  bafu_moments_layer o[17];
} dy_case;

static void dy_case_make(const bafu_net_params *p, dy_case *k) {
  k->L = p->depth;
  ck_assert_ok(bafu_moments_run(p, 0, k->o));
  const double beta = p->branch_scale / sqrt((double)p->depth);
  for (size_t l = 0; l <= k->L; ++l) k->c[l] = k->o[l].c;
  for (size_t l = 0; l < k->L; ++l) {
    k->s2[l] = beta * beta * p->sigma_w2;
    k->q[l] = k->o[l + 1].q_in;
    bafu_act_moments am;
    ck_assert_ok(bafu_act_moments_eval(p->act, k->q[l], &am));
    k->m[l] = am.dphi2, k->m4[l] = am.dphi4;
    for (size_t j = 0; j < l; ++j) ck_assert_ok(bafu_act_mask_corr(p->act, k->q[j], k->q[l], k->q[j], &k->M[l * k->L + j]));
  }
}

/* g at z (any half plane: g(conj z) = conj g(z)) by walking down from
 * Re z + i E to the point. */
static double complex dy_g(const dy_chain *ch, double complex z, double E, double complex *scr, double complex *th) {
  const int lower = cimag(z) < 0;
  const double x = creal(z), e = fabs(cimag(z));
  memset(th, 0, 2 * ch->L * sizeof *th);
  double complex g = 0;
  for (double f = fmax(E, e);; f = fmax(0.25 * f, e)) {
    const int rc = dy_solve(ch, x + I * f, 1e-12, th, &g, scr);
    ck_assert_msg(rc == 0, "the Dyson equation did not converge at %.17g%+.17gi", x, f);
    if (f == e) break;
  }
  return lower ? conj(g) : g;
}

/* (a) dy_moments with the exact mask statistics is the library's two-moment
 * theory (bafu_moments_run) to 1e-12; (b) the moments of the Dyson law of a
 * sample of paths, by the Cauchy integral on a circle around the support
 * (trapezoid rule: exponentially accurate), equal dy_moments with that
 * sample's statistics to 1e-9: the linearisation, the self-energy and the
 * solver; (d) after dy_calibrate, the same moments equal bafu_moments_run's
 * to 1e-9; (c) one path of unit masks (a linear ResNet) gives the exact
 * pointwise density of 4.7 to 1e-7 (at distance 1e-9 E from the axis). */
START_TEST(test_limit_dyson) {
  const struct {
    bafu_act act;
    double B;
    size_t L;
  } cs[4] = {{BAFU_ACT_RELU, 1, 4}, {BAFU_ACT_RELU, 2, 8}, {BAFU_ACT_TANH, 1, 6}, {BAFU_ACT_TANH, 2, 4}};
  for (size_t ci = 0; ci < 4; ++ci) {
    bafu_net_params p = base(BAFU_ARCH_RESNET, cs[ci].act, 64, cs[ci].L);
    p.embed = 1;
    p.branch_scale = cs[ci].B;
    dy_case k;
    dy_case_make(&p, &k);
    const size_t L = k.L;
    double zk[16], m1[17], m2[17];
    dy_moments(L, k.s2, k.c, k.m, k.m4, k.M, zk, m1, m2);
    for (size_t l = 0; l <= L; ++l) {
      ck_assert_close(m1[l], k.o[l].m1, 1e-12, 0);
      ck_assert_close(m2[l], k.o[l].m2, 1e-12, 0);
    }
    /* (b) 512 paths */
    enum { P = 512 };
    static double d2[P * 16], w[P], scr0[16];
    int norm[16] = {0};
    const size_t np = dy_paths(p.act, k.q, norm, L, P, 7, d2, w, scr0);
    ck_assert(np >= 1 && np <= P);
    if (p.act == BAFU_ACT_TANH) ck_assert_int_eq(np, P); /* continuous masks: no two paths equal */
    double wsum = 0;
    for (size_t i = 0; i < np; ++i) wsum += w[i];
    ck_assert_close(wsum, 1, 1e-14, 0);
    dy_chain ch = {.L = L, .s2 = k.s2, .c = k.c, .P = np, .d2 = d2, .w = w};
    double em[16], em4[16], eM[256], e1[17], e2[17];
    dy_path_stats(&ch, em, em4, eM);
    dy_moments(L, k.s2, k.c, em, em4, eM, zk, e1, e2);
    double complex *scr = malloc(dy_scratch_size(L, np) * sizeof *scr), th[32];
    /* the support lies in [c_L, hi]: hi from the largest eigenvalue bound
       m1 + sqrt(m2 - m1^2) sqrt(n)-free: the law's m4 is unknown, so take a
       circle of radius 4 e2 / e1 (>= 4 sqrt(m2)) centred at e1 */
    const double C = e1[L], R = 4 * e2[L] / e1[L], E = sqrt(e2[L]);
    enum { N = 256 };
    double complex mom[3] = {0, 0, 0};
    for (int j = 0; j < N; ++j) {
      const double complex u = cexp(I * 2 * M_PI * (j + 0.5) / N), z = C + R * u;
      const double complex g = dy_g(&ch, z, E, scr, th);
      for (int q = 0; q < 3; ++q) mom[q] += g * cpow(z, q) * R * u / N;
    }
    ck_assert_msg(cabs(mom[0] - 1) < 1e-9, "case %zu: mass %g%+gi", ci, creal(mom[0]), cimag(mom[0]));
    ck_assert_msg(cabs(mom[1] - e1[L]) < 1e-9 * e1[L], "case %zu: m1 %.12g vs %.12g", ci, creal(mom[1]), e1[L]);
    ck_assert_msg(cabs(mom[2] - e2[L]) < 1e-9 * e2[L], "case %zu: m2 %.12g vs %.12g", ci, creal(mom[2]), e2[L]);
    /* (d) calibrated to the exact statistics, the law's moments are the
       two-moment theory's (bafu_moments_run) to 1e-9; the statistics before
       calibration were off by the sampling error (checked: not to 1e-6) */
    double res;
    ck_assert(!(fabs(e2[L] - k.o[L].m2) < 1e-6 * k.o[L].m2));
    ck_assert_int_eq(dy_calibrate(&ch, w, k.m, k.m4, k.M, &res), 0);
    ck_assert_msg(res < 1e-12, "case %zu: calibration residual %g", ci, res);
    ck_assert(L <= 8); /* the arrays of (e) below */
    for (int q = 0; q < 3; ++q) mom[q] = 0;
    for (int j = 0; j < N; ++j) {
      const double complex u = cexp(I * 2 * M_PI * (j + 0.5) / N), z = C + R * u;
      const double complex g = dy_g(&ch, z, E, scr, th);
      for (int q = 0; q < 3; ++q) mom[q] += g * cpow(z, q) * R * u / N;
    }
    ck_assert_msg(cabs(mom[0] - 1) < 1e-9, "case %zu: calibrated mass %g", ci, creal(mom[0]));
    /* (e) Newton's Jacobian against central differences of Phi, at a
       converged self-energy (z off the axis): to 1e-6 of the largest entry */
    {
      const size_t n = 2 * L;
      const double complex z = C + 0.3 * R * I;
      (void)dy_g(&ch, z, E, scr, th);
      double complex J[256], Jp[256], ph[16], pp[16], pm[16], gg;
      dy_newton_system(&ch, z, th, ph, &gg, J, scr);
      double big = 0, err = 0;
      for (size_t v = 0; v < n; ++v) {
        double complex t1[16], t2[16];
        memcpy(t1, th, n * sizeof *th);
        memcpy(t2, th, n * sizeof *th);
        const double h = 1e-5 * (cabs(th[v]) + 1e-300);
        t1[v] += h, t2[v] -= h;
        dy_newton_system(&ch, z, t1, pp, &gg, Jp, scr);
        dy_newton_system(&ch, z, t2, pm, &gg, Jp, scr);
        for (size_t u = 0; u < n; ++u) {
          const double complex fd = (u == v) - (pp[u] - pm[u]) / (2 * h);
          big = fmax(big, cabs(J[u * n + v]));
          err = fmax(err, cabs(fd - J[u * n + v]));
        }
      }
      ck_assert_msg(err < 1e-6 * big, "case %zu: Jacobian off its differences by %g of %g", ci, err, big);
    }
    ck_assert_msg(cabs(mom[1] - k.o[L].m1) < 1e-9 * k.o[L].m1, "case %zu: calibrated m1 %.12g vs %.12g", ci,
                  creal(mom[1]), k.o[L].m1);
    ck_assert_msg(cabs(mom[2] - k.o[L].m2) < 1e-9 * k.o[L].m2, "case %zu: calibrated m2 %.12g vs %.12g", ci,
                  creal(mom[2]), k.o[L].m2);
    free(scr);
  }
  /* (f) the driver (bafu_free_run: edge search, trimmed coarse passes,
     continuation with cold checks, the extrapolation to the axis) on a ReLU
     ResNet of depth 4 (calibrated): the density integrates to 1 and its m1,
     m2 equal the two-moment theory's within the grid's quadrature error
     (measured at 1500 points: 9.5e-6, 2.6e-7, 4.3e-6; bounds ten times
     that; reading the density at x + i dx/4 alone fails them); a branch scale of 0
     gives the atom K = m1 I */
  {
    bafu_net_params p = base(BAFU_ARCH_RESNET, BAFU_ACT_RELU, 64, 4);
    p.embed = 1;
    bafu_free_params fp = bafu_free_params_default();
    bafu_free *ws;
    bafu_free_layer info[5];
    bafu_moments_layer o[5];
    ck_assert_ok(bafu_moments_run(&p, 0, o));
    ck_assert_ok(bafu_free_alloc(&fp, &ws));
    ck_assert_ok(bafu_free_run(ws, &p, 0, BAFU_SPEC_BFK, 4, info));
    double res;
    ck_assert_int_eq(bafu_free_calibrated(ws, &res), 1);
    ck_assert(bafu_free_paths(ws) > 0 && bafu_free_sampled(ws) == 16384);
    ck_assert_double_eq_tol(info[4].m1, o[4].m1, 1e-12 * o[4].m1);
    printf("test_limit_dyson (f): mass - 1 %.2g, raw m1 %.2g, m2 %.2g (relative)\n", info[4].raw[0] - 1,
           info[4].raw[1] / o[4].m1 - 1, info[4].raw[2] / o[4].m2 - 1);
    ck_assert_msg(fabs(info[4].raw[0] - 1) < 1e-4, "mass %g", info[4].raw[0]);
    ck_assert_msg(fabs(info[4].raw[1] / o[4].m1 - 1) < 3e-6, "m1 %g vs %g", info[4].raw[1], o[4].m1);
    ck_assert_msg(fabs(info[4].raw[2] / o[4].m2 - 1) < 5e-5, "m2 %g vs %g", info[4].raw[2], o[4].m2);
    p.branch_scale = 0;
    ck_assert_ok(bafu_moments_run(&p, 0, o));
    ck_assert_ok(bafu_free_run(ws, &p, 0, BAFU_SPEC_BFK, 4, info));
    ck_assert_int_eq(info[4].natoms, 1);
    ck_assert_double_eq_tol(info[4].atom[0].x, o[4].m1, 1e-12 * o[4].m1);
    ck_assert_double_eq(info[4].atom[0].mass, 1);
    ck_assert_int_eq(bafu_free_paths(ws), 0);
    bafu_free_free(ws);
  }
  /* (c) a linear ResNet: one path of unit masks */
  {
    bafu_net_params p = base(BAFU_ARCH_RESNET, BAFU_ACT_LINEAR, 64, 5);
    p.embed = 1;
    p.branch_scale = 1.5;
    dy_case k;
    dy_case_make(&p, &k);
    const double one[5] = {1, 1, 1, 1, 1}, w1 = 1;
    dy_chain ch = {.L = 5, .s2 = k.s2, .c = k.c, .P = 1, .d2 = one, .w = &w1};
    bafu_free_params fp = bafu_free_params_default();
    bafu_free *ws;
    bafu_free_layer info[6];
    ck_assert_ok(bafu_free_alloc(&fp, &ws));
    ck_assert_ok(bafu_free_run(ws, &p, 0, BAFU_SPEC_BFK, 5, info));
    ck_assert(bafu_free_exact(ws));
    double complex *scr = malloc(dy_scratch_size(5, 1) * sizeof *scr), th[10];
    ck_assert_ptr_nonnull(scr);
    const double E = sqrt(k.o[5].m2), lo = info[5].lo, hi = info[5].hi;
    for (int j = 1; j < 20; ++j) {
      const double x = lo + (hi - lo) * j / 20.0, exact = bafu_free_density_at(ws, x);
      const double rho = -cimag(dy_g(&ch, x + I * 1e-9 * E, E, scr, th)) / M_PI;
      ck_assert_msg(fabs(rho - exact) < 1e-7 * exact, "x %g: %.12g vs %.12g", x, rho, exact);
    }
    free(scr);
    bafu_free_free(ws);
  }
}
END_TEST

/* --------------------------------------- limit, pointwise subordination --- */

typedef struct {
  const bafu_free *ws;
  int p;
} dens_q;

static double dens_q_f(double x, void *vp) {
  const dens_q *q = vp;
  return bafu_free_density_at(q->ws, x) * gsl_pow_int(x, q->p);
}

/* int x^p rho over [lo, hi] by adaptive quadrature (qags: the edge
 * singularities, square-root or power-law, are integrable) */
static double dens_moment(const bafu_free *ws, double lo, double hi, int p) {
  gsl_integration_workspace *w = gsl_integration_workspace_alloc(1000);
  dens_q q = {ws, p};
  gsl_function F = {dens_q_f, &q};
  double r, err;
  gsl_integration_qags(&F, lo, hi, 0, 1e-12, 1000, w, &r, &err);
  gsl_integration_workspace_free(w);
  return r;
}

/* The independent oracle: He-ReLU MLP (s = 2), J J^T after L layers is the
 * free product of L factors MP [x] {0, 2} with Sigma(u) = (1 - u)/(1 + u)
 * (Pennington, Schoenholz, Ganguli 2018: S_{JJ^T} = prod S_{W^T W} S_{D^2}),
 * so eta(1/x) = u solves x u (1 - u)^L - (1 + u)^L = 0, a polynomial of degree
 * L + 1 solved here by gsl_poly_complex_solve (companion matrix), and
 * G(x) = 1/(x (1 - u)). Near the right edge exactly one root has Im G < 0
 * and the factors' points in the upper half plane;
 * below it (where a second pair appears near the atom) the oracle follows
 * the root nearest the previous one along descending x (*u, *started). */
static double oracle_relu_jacobian(int L, double x, double complex *up, int *started) {
  double c[16] = {0}, z[32];
  for (int k = 0; k <= L; ++k) {
    const double b = binom(L, k);
    c[k + 1] += x * b * ((k % 2) ? -1.0 : 1.0);
    c[k] -= b;
  }
  gsl_poly_complex_workspace *w = gsl_poly_complex_workspace_alloc((size_t)L + 2);
  gsl_poly_complex_solve(c, (size_t)L + 2, w, z);
  gsl_poly_complex_workspace_free(w);
  int n = 0;
  double complex best = 0;
  double dist = INFINITY;
  for (int i = 0; i <= L; ++i) {
    const double complex u = z[2 * i] + I * z[2 * i + 1];
    if (fabs(cimag(u)) < 1e-12) continue;
    if (cimag(1.0 / (x * (1.0 - u))) >= 0) continue;
    /* the factors' subordination points 1/(u (1 - u)) (MP) and (1 + u)/u (mask) in C+ */
    if (cimag(1.0 / (u * (1.0 - u))) < 0 || cimag((1.0 + u) / u) < 0) continue;
    ++n;
    const double d = *started ? cabs(u - *up) : 0;
    if (d < dist) dist = d, best = u;
  }
  if (!*started && n != 1) return NAN; /* must start where the root is unique */
  if (n == 0) return NAN;
  *started = 1;
  *up = best;
  return -cimag(1.0 / (x * (1.0 - best))) / M_PI;
}

/* The pointwise limit (theory/spectrum.md 4.7): against the independent
 * oracle to 1e-8 relative at every 7th grid point; m1 = 1, m2 = 9 and the
 * atom 1/2 at 0; mass, m1 and m2 by adaptive quadrature of the density plus
 * the atoms against 1 and the moment recursion (1e-9); closed-form edges:
 * Marchenko-Pastur 2 (1 -+ sqrt(1/2))^2 (one ReLU layer, s = 2: the atom 1/2
 * and MP of ratio 1/2), (1 + 1)^2 = 4 (linear, ratio 1), Fuss-Catalan
 * (p+1)^(p+1)/p^p for products of p = 2, 3, 8 Wisharts, to 1e-10. */
START_TEST(test_limit_exact) {
  gsl_set_error_handler_off();
  bafu_free_params fp = {.atoms = 100, .grid = 600};
  bafu_free *ws;
  ck_assert_ok(bafu_free_alloc(&fp, &ws));
  bafu_free_layer L[10];
  /* 1. He-ReLU Jacobian, depth 5, layer 5 (index 4: four factors) */
  bafu_net_params p = base(BAFU_ARCH_MLP, BAFU_ACT_RELU, 64, 5);
  ck_assert_ok(bafu_free_run(ws, &p, 0, BAFU_SPEC_JACOBIAN, 4, L));
  ck_assert(bafu_free_exact(ws));
  ck_assert_close(L[4].m1, 1, 1e-14, 0);
  ck_assert_close(L[4].m2, 9, 1e-14, 0);
  ck_assert_int_eq(L[4].natoms, 1);
  ck_assert_double_eq(L[4].atom[0].x, 0);
  ck_assert_close(L[4].atom[0].mass, 0.5, 1e-15, 0);
  const double *gx = bafu_free_x(ws), *gd = bafu_free_density(ws);
  double worst = 0;
  double complex u = 0;
  int started = 0;
  for (size_t k = bafu_free_npoints(ws); k-- > 0;) { /* descending: the oracle follows its root */
    const double o = oracle_relu_jacobian(4, gx[k], &u, &started);
    ck_assert_msg(isfinite(o), "oracle: no unique root at x = %g", gx[k]);
    worst = fmax(worst, fabs(gd[k] - o) / o);
  }
  printf("limit exact: relu jacobian depth 5 against the polynomial oracle: largest relative difference %.2e\n", worst);
  ck_assert_msg(worst < 1e-8, "density against the oracle: %g", worst);
  /* off the grid, down to x = 1e-4 (below, the two disagree by up to 3e-8 at x = 1e-6, and
     which is off is not settled: near u = -1 the oracle's roots cluster) */
  started = 0;
  for (double x = 21.8; x > 1e-4; x /= 1.02) {
    const double o = oracle_relu_jacobian(4, x, &u, &started), d = bafu_free_density_at(ws, x);
    ck_assert_msg(fabs(d - o) <= 1e-8 * o, "x = %g: %.15g against %.15g", x, d, o);
  }
  /* 2. normalisation and moments by quadrature: this Jacobian, a ReLU BFK
        (gapped above its atom at c_l) and a linear ResNet BFK */
  bafu_net_params q[3] = {p, base(BAFU_ARCH_MLP, BAFU_ACT_RELU, 64, 4), base(BAFU_ARCH_RESNET, BAFU_ACT_LINEAR, 64, 4)};
  q[2].branch_scale = 1.3;
  const bafu_spec_object obj[3] = {BAFU_SPEC_JACOBIAN, BAFU_SPEC_BFK, BAFU_SPEC_BFK};
  const size_t lay[3] = {4, 3, 3};
  for (int c = 0; c < 3; ++c) {
    ck_assert_ok(bafu_free_run(ws, &q[c], 0, obj[c], lay[c], L));
    const bafu_free_layer *F = &L[lay[c]];
    double mom[3];
    for (int k = 0; k < 3; ++k) {
      mom[k] = dens_moment(ws, F->lo, F->hi, k);
      for (size_t a = 0; a < F->natoms; ++a) mom[k] += F->atom[a].mass * pow(F->atom[a].x, k);
    }
    printf("limit exact: case %d: mass - 1 = %.1e, m1 %.1e, m2 %.1e (relative)\n", c, mom[0] - 1, mom[1] / F->m1 - 1,
           mom[2] / F->m2 - 1);
    ck_assert_close(mom[0], 1, 1e-9, 0);
    ck_assert_close(mom[1], F->m1, 1e-9, 0);
    ck_assert_close(mom[2], F->m2, 1e-9, 0);
    if (obj[c] == BAFU_SPEC_BFK) {
      bafu_moments_layer o[8];
      ck_assert_ok(bafu_moments_run(&q[c], 0, o));
      ck_assert_close(F->m1, o[lay[c]].m1, 1e-12, 0);
      ck_assert_close(F->m2, o[lay[c]].m2, 1e-12, 0);
    }
  }
  /* 3. edges */
  ck_assert_ok(bafu_free_run(ws, &p, 0, BAFU_SPEC_JACOBIAN, 1, L));
  ck_assert_close(L[1].lo, 2 * pow(1 - sqrt(0.5), 2), 1e-10, 0);
  ck_assert_close(L[1].hi, 2 * pow(1 + sqrt(0.5), 2), 1e-10, 0);
  bafu_net_params lin = base(BAFU_ARCH_MLP, BAFU_ACT_LINEAR, 64, 9);
  lin.sigma_w2 = 1;
  ck_assert_ok(bafu_free_run(ws, &lin, 0, BAFU_SPEC_JACOBIAN, 8, L));
  ck_assert_double_eq(L[1].lo, 0);
  ck_assert_close(L[1].hi, 4, 1e-10, 0);
  const int ps[3] = {2, 3, 8};
  for (int i = 0; i < 3; ++i) {
    const double pp = ps[i];
    ck_assert_close(L[ps[i]].hi, pow(pp + 1, pp + 1) / pow(pp, pp), 1e-10, 0);
    ck_assert_double_eq(L[ps[i]].lo, 0);
  }
  bafu_free_free(ws);
  /* 4. the library's own moment integrals (L->raw, adaptive on the selected
        layer) of deep Jacobians, whose hard edge at 0 squeezes the law into
        v near 1 (x = span v^L) and whose ReLU densities lose digits there
        (noise ~ 1e-15/v^2, theory/spectrum.md 4.7), and of a deep linear BFK
        (its law near c_L on a scale far below the span): mass 1, m1 and m2
        of the recursion, to 2e-10 */
  fp.last_only = 1;
  ck_assert_ok(bafu_free_alloc(&fp, &ws));
  bafu_free_layer *D = malloc(65 * sizeof *D);
  ck_assert_ptr_nonnull(D);
  const bafu_act deep_act[4] = {BAFU_ACT_RELU, BAFU_ACT_RELU, BAFU_ACT_LINEAR, BAFU_ACT_LINEAR};
  const size_t deep_l[4] = {32, 64, 40, 32};
  for (int c = 0; c < 4; ++c) { /* the last: a BFK (hard edge at c_L > 0) */
    bafu_net_params d = base(BAFU_ARCH_MLP, deep_act[c], 64, deep_l[c]);
    if (c == 2) d.sigma_w2 = 1;
    ck_assert_ok(bafu_free_run(ws, &d, 0, c == 3 ? BAFU_SPEC_BFK : BAFU_SPEC_JACOBIAN, deep_l[c] - 1, D));
    ck_assert(bafu_free_exact(ws));
    const bafu_free_layer *F = &D[deep_l[c] - 1];
    printf("limit exact: %s %s at depth %zu: mass - 1 = %.1e, m1 %.1e, m2 %.1e (relative)\n",
           c < 2 ? "relu" : "linear", c == 3 ? "BFK" : "J J^T", deep_l[c], F->raw[0] - 1, F->raw[1] / F->m1 - 1,
           F->raw[2] / F->m2 - 1);
    ck_assert_close(F->raw[0], 1, 2e-10, 0);
    ck_assert_close(F->raw[1], F->m1, 2e-10, 0);
    ck_assert_close(F->raw[2], F->m2, 2e-10, 0);
  }
  /* a critical linear ResNet's J J^T (beta^2 sigma_w2 = 1): x^(-1/3) at 0, not
     a series in v; a quadratic head left 6.8e-6 of the mass wrong */
  bafu_net_params r = base(BAFU_ARCH_RESNET, BAFU_ACT_LINEAR, 64, 2);
  r.sigma_w2 = 2;
  ck_assert_ok(bafu_free_run(ws, &r, 0, BAFU_SPEC_JACOBIAN, 1, D));
  ck_assert(bafu_free_exact(ws));
  printf("limit exact: critical linear ResNet J J^T at depth 2: mass - 1 = %.1e\n", D[1].raw[0] - 1);
  ck_assert_close(D[1].raw[0], 1, 2e-10, 0);
  free(D);
  bafu_free_free(ws);
}
END_TEST

/* The mass of the density on [lo, hi] with a hard edge at lo (x - lo ~
 * (hi - lo) e^{-y}): qags in y on [0, Y], the tail beyond Y below 1e-12 for a
 * density ~ (x - lo)^(-m/(m+1)) (an independent route from the library's
 * x = lo + span v^(m+1) and its fitted head). */
typedef struct {
  const bafu_free *ws;
  double lo, span;
} logq;

static double logq_f(double y, void *vp) {
  const logq *q = vp;
  const double e = q->span * exp(-y);
  return bafu_free_density_at(q->ws, q->lo + e) * e;
}

/* int x^p rho over [lo, hi] in v, x = lo + (hi - lo) v^2: bounded at a hard
 * edge at lo > 0 where rho ~ (x - lo)^(-1/2) (a BFK). Below x - lo = 1e-10 lo
 * the digits of x - lo are lost to lo, so there the integrand is taken as its
 * value at that point (a square-root edge: constant in v to first order). */
typedef struct {
  const bafu_free *ws;
  double lo, span;
  int p;
} sqq;

static double sqq_f(double v, void *vp) {
  const sqq *q = vp;
  const double x = q->lo + q->span * v * v;
  return bafu_free_density_at(q->ws, x) * gsl_pow_int(x, q->p) * 2 * q->span * v;
}

static double dens_moment_sq(const bafu_free *ws, double lo, double hi, int p) {
  gsl_integration_workspace *w = gsl_integration_workspace_alloc(1000);
  sqq q = {ws, lo, hi - lo, p};
  gsl_function F = {sqq_f, &q};
  double r, err;
  const double v1 = sqrt(1e-10 * lo / (hi - lo));
  gsl_integration_qags(&F, v1, 1, 0, 1e-12, 1000, w, &r, &err);
  gsl_integration_workspace_free(w);
  return r + v1 * sqq_f(v1, &q);
}

static double dens_mass_log(const bafu_free *ws, double lo, double hi, int m) {
  gsl_integration_workspace *w = gsl_integration_workspace_alloc(1000);
  logq q = {ws, lo, hi - lo};
  gsl_function F = {logq_f, &q};
  double r, err;
  gsl_integration_qags(&F, 0, 40.0 * (m + 1), 0, 1e-12, 1000, w, &r, &err);
  gsl_integration_workspace_free(w);
  return r;
}

/* The first trapezoid step, from 1/2 halving, whose mask law has the
 * accurate first two moments to 1e-13 (the library then halves it once more). */
static double mask_step(bafu_act act, double s, double q, double *t, double *w, size_t cap) {
  bafu_act_moments am;
  ck_assert_ok(bafu_act_moments_eval(act, q, &am));
  for (double step = 0.5; step > 1e-3; step *= 0.5) {
    const size_t n = sub_mask_law_step(act, s, q, step, t, w, cap);
    ck_assert_uint_gt(n, 0);
    double a1 = 0, a2 = 0;
    for (size_t i = 0; i < n; ++i) a1 += w[i] * t[i], a2 += w[i] * t[i] * t[i];
    if (fabs(a1 / (s * am.dphi2) - 1) <= 1e-13 && fabs(a2 / (s * s * am.dphi4) - 1) <= 1e-13) return step;
  }
  ck_abort_msg("no trapezoid step reaches the moments");
  return 0;
}

/* Two chains of the first nl dense layers of p (J J^T, as exact_run builds
 * them): c[0] with each mask law at the step at which its moments agree
 * divided by div (the library's: 2), c[1] at half of that. */
enum { MP_CAP = 8192, MP_LAYERS = 4 };
typedef struct {
  double t[2][MP_LAYERS][MP_CAP], w[2][MP_LAYERS][MP_CAP];
  sub_factor f[2][MP_LAYERS];
  double complex rs[2][4 * MP_LAYERS];
  sub_chain c[2];
} mask_pair;

static void mask_pair_build(mask_pair *mp, const bafu_net_params *p, size_t nl, double div) {
  ck_assert_uint_le(nl, MP_LAYERS);
  ck_assert_uint_le(p->depth + 1, MP_LAYERS + 2);
  bafu_moments_layer o[MP_LAYERS + 2];
  ck_assert_ok(bafu_moments_run(p, 0, o));
  for (size_t l = 0; l < nl; ++l) {
    const double s = p->sigma_w2, q = o[l + 1].q_in, step = mask_step(p->act, s, q, mp->t[0][l], mp->w[0][l], MP_CAP) / div;
    size_t n[2];
    for (int k = 0; k < 2; ++k) n[k] = sub_mask_law_step(p->act, s, q, k ? step / 2 : step, mp->t[k][l], mp->w[k][l], MP_CAP);
    ck_assert(n[0] > 0 && n[1] > n[0]);
    double m1 = 0, m2 = 0;
    for (size_t i = 0; i < n[0]; ++i) m1 += mp->w[0][l][i] * mp->t[0][l][i], m2 += mp->w[0][l][i] * mp->t[0][l][i] * mp->t[0][l][i];
    for (int k = 0; k < 2; ++k)
      mp->f[k][l] = (sub_factor){.kind = SUB_MASK, .s = s, .t = mp->t[k][l], .w = mp->w[k][l], .nt = n[k], .m1 = m1, .m2 = m2};
  }
  for (int k = 0; k < 2; ++k) mp->c[k] = (sub_chain){.n = nl, .f = mp->f[k], .a = 1, .scale = 1, .rs = mp->rs[k]};
}

/* The largest relative difference of the two chains' densities from 0.95 of
 * the upper edge hi down to frac of it (x / 1.2 per point); *lo, *hi: the
 * first chain's support. */
static double mask_pair_change(mask_pair *mp, double frac, double *lo, double *hi) {
  double worst = 0;
  ck_assert_int_eq(sub_edges(&mp->c[0], lo, hi), 0);
  for (double x = 0.95 * *hi; x > frac * *hi; x /= 1.2) {
    double r1, r2;
    ck_assert_int_eq(sub_density(&mp->c[0], x, &r1, NULL), 0);
    ck_assert_int_eq(sub_density(&mp->c[1], x, &r2, NULL), 0);
    worst = fmax(worst, fabs(r1 - r2) / r2);
  }
  return worst;
}

/* The pointwise limit of tanh MLPs (theory/spectrum.md 4.8): (1) the
 * mask-law factor (Sigma_D by Newton) reproduces the closed forms of ReLU
 * ({0, s}) and linear ({s}) chains to 1e-11; (2) J J^T and the BFK of a tanh
 * MLP: solved pointwise, mass by an independent adaptive quadrature of the
 * density plus atoms 1 and m1, m2 equal to the moment recursion, 1e-9 (and the
 * library's own raw moments); (3) the mask law is converged: the density with
 * the library's trapezoid step and with half of it agree to 2e-9 relative from
 * 0.95 of the upper edge (where the density vanishes) down to 1e-8 of it (with
 * the step at which the law's moments first agree, the change is up to 3e-7
 * near 0, hence the library's extra halving); (4) a tanh law the rule cannot
 * resolve goes to the discretised method; (5) gelu and swish stay on the
 * discretised method; (9) erf is pointwise too. */
START_TEST(test_limit_exact_tanh) {
  gsl_set_error_handler_off();
  /* 1. closed forms through the mask-law factor */
  {
    double tr[2] = {0, 2}, wr[2] = {0.5, 0.5}, tl[1] = {1.3}, wl[1] = {1};
    sub_factor fm[4], fr[4], flm[4], fll[4];
    for (int l = 0; l < 4; ++l) {
      fm[l] = (sub_factor){.kind = SUB_MASK, .s = 2, .t = tr, .w = wr, .nt = 2, .m1 = 1, .m2 = 2};
      fr[l] = (sub_factor){.kind = SUB_RELU, .s = 2};
      flm[l] = (sub_factor){.kind = SUB_MASK, .s = 1.3, .t = tl, .w = wl, .nt = 1, .m1 = 1.3, .m2 = 1.69};
      fll[l] = (sub_factor){.kind = SUB_LINEAR, .s = 1.3};
    }
    double complex rs1[16], rs2[16];
    const sub_chain c[4] = {{.n = 4, .f = fm, .a = 1, .scale = 1, .rs = rs1}, {.n = 4, .f = fr, .a = 1, .scale = 1, .rs = rs2},
                            {.n = 4, .f = flm, .a = 1, .scale = 1, .rs = rs1}, {.n = 4, .f = fll, .a = 1, .scale = 1, .rs = rs2}};
    const double top[2] = {21.8, 21.85};
    for (int k = 0; k < 2; ++k)
      for (double x = top[k]; x > 1e-6; x /= 1.1) {
        double a, b;
        ck_assert_int_eq(sub_density(&c[2 * k], x, &a, NULL), 0);
        ck_assert_int_eq(sub_density(&c[2 * k + 1], x, &b, NULL), 0);
        ck_assert_msg(fabs(a - b) <= 1e-11 * b, "%s at x = %g: %.15g against %.15g", k ? "linear" : "relu", x, a, b);
      }
  }
  /* 2. normalisation and moments */
  bafu_free_params fp = {.atoms = 100, .grid = 50};
  bafu_free *ws;
  ck_assert_ok(bafu_free_alloc(&fp, &ws));
  bafu_free_layer L[8], L8[8];
  for (int ob = 0; ob < 2; ++ob) {
    const bafu_spec_object obj = ob ? BAFU_SPEC_BFK : BAFU_SPEC_JACOBIAN;
    bafu_net_params p = base(BAFU_ARCH_MLP, BAFU_ACT_TANH, 64, 4);
    ck_assert_ok(bafu_free_run(ws, &p, 0, obj, 3, L));
    ck_assert(bafu_free_exact(ws));
    const bafu_free_layer *F = &L[3];
    double mom[3];
    for (int k = 0; k < 3; ++k) {
      mom[k] = ob ? dens_moment_sq(ws, F->lo, F->hi, k) : k ? dens_moment(ws, F->lo, F->hi, k) : dens_mass_log(ws, F->lo, F->hi, 3);
      for (size_t i = 0; i < F->natoms; ++i) mom[k] += F->atom[i].mass * pow(F->atom[i].x, k);
    }
    printf("limit exact tanh %s: mass - 1 = %.1e, m1 %.1e, m2 %.1e (relative; library %.1e, %.1e, %.1e)\n",
           ob ? "bfk" : "jacobian", mom[0] - 1, mom[1] / F->m1 - 1, mom[2] / F->m2 - 1, F->raw[0] - 1,
           F->raw[1] / F->m1 - 1, F->raw[2] / F->m2 - 1);
    ck_assert_close(mom[0], 1, 1e-9, 0);
    ck_assert_close(mom[1], F->m1, 1e-9, 0);
    ck_assert_close(mom[2], F->m2, 1e-9, 0);
    for (int k = 0; k < 3; ++k) ck_assert_close(F->raw[k], k ? k == 1 ? F->m1 : F->m2 : 1.0, 1e-9, 0);
    if (ob) {
      bafu_moments_layer o[5];
      ck_assert_ok(bafu_moments_run(&p, 0, o));
      ck_assert_close(F->m1, o[3].m1, 1e-12, 0);
      ck_assert_close(F->m2, o[3].m2, 1e-12, 0);
    }
  }
  /* 3. the mask law's step: halving it changes nothing */
  {
    bafu_net_params p = base(BAFU_ARCH_MLP, BAFU_ACT_TANH, 64, 4);
    p.sigma_w2 = 2.5; /* larger q: a finer step */
    static mask_pair mp;
    mask_pair_build(&mp, &p, 3, 2);
    double lo, hi;
    const double worst = mask_pair_change(&mp, 1e-8, &lo, &hi);
    ck_assert_double_eq(lo, 0);
    printf("limit exact tanh: the mask law's step halved: largest relative change %.1e\n", worst);
    ck_assert_msg(worst < 2e-9, "%g", worst);
  }
  /* 6. the output grid, continued from point to point with checks every 16th
        point (theory/spectrum.md 4.7), against the full continuation at every
        point: the two agree to 1e-10, or near an edge to the conditioning of the
        root there (Newton's stopping rule, steps of 1e-13 |t|, moves the density
        by about 1e-13 span / distance to the edge), with a factor 10 */
  {
    bafu_free_params fg = {.atoms = 100, .grid = 800};
    bafu_free *wg;
    ck_assert_ok(bafu_free_alloc(&fg, &wg));
    bafu_net_params p = base(BAFU_ARCH_MLP, BAFU_ACT_TANH, 64, 8);
    for (int ob = 0; ob < 2; ++ob) {
      ck_assert_ok(bafu_free_run(wg, &p, 0, ob ? BAFU_SPEC_BFK : BAFU_SPEC_JACOBIAN, 7, L8));
      ck_assert(bafu_free_exact(wg));
      const double *x = bafu_free_x(wg), *d = bafu_free_density(wg), lo = L8[7].lo, hi = L8[7].hi;
      const size_t n = bafu_free_npoints(wg);
      double worst = 0;
      for (size_t k = 0; k < n; ++k) {
        const double cold = bafu_free_density_at(wg, x[k]), dist = fmin(x[k] - lo, hi - x[k]);
        const double tol = 1e-10 + 1e-12 * (hi - lo) / dist, dev = fabs(d[k] - cold) / cold;
        ck_assert_msg(dev <= tol, "%s grid point %zu, x = %.12g: %.15g, from x + iE %.15g", ob ? "bfk" : "jacobian", k,
                      x[k], d[k], cold);
        worst = fmax(worst, dev / tol);
      }
      printf("limit exact tanh %s: %zu grid points against the full continuation: at most %.2g of the bound\n",
             ob ? "bfk" : "jacobian", n, worst);
    }
    bafu_free_free(wg);
  }
  /* 7. a saturating tanh with biases (sigma_w2 = 1, bias variance 1), BFK at layer
        10 (of depth 10): its mask laws' inner sums cancel, and Newton's steps wander at 3e-13 |t|
        near the axis, above the 1e-13 |t| of the step test. The noise-floor test
        accepts them; without it the continuation failed at interior points (x -
        c_L = 56 at width 512) and the run fell back to the discretised method
        (there: integral 1.03, upper edge 2221 instead of 1417). The mass is 1 + 3.1e-6
        (the mass of the mask law near 0 is not resolved at the lower edge, 4.8). */
  {
    bafu_free_params fb = {.atoms = 100, .grid = 50};
    bafu_free *wb;
    ck_assert_ok(bafu_free_alloc(&fb, &wb));
    bafu_net_params p = base(BAFU_ARCH_MLP, BAFU_ACT_TANH, 64, 10);
    p.sigma_w2 = p.sigma2_input = p.sigma2_output = 1, p.bias_var = 1;
    bafu_free_layer L10[10];
    ck_assert_ok(bafu_free_run(wb, &p, 0, BAFU_SPEC_BFK, 9, L10)); /* label 10 */
    ck_assert(bafu_free_exact(wb));
    const bafu_free_layer *F = &L10[9];
    printf("limit exact tanh with biases, layer %d: mass - 1 = %.1e, m1 %.1e (relative), support [%.10g, %.10g]\n",
           F->label, F->raw[0] - 1, F->raw[1] / F->m1 - 1, F->lo, F->hi);
    ck_assert_close(F->raw[0], 1, 1e-5, 0);
    ck_assert_close(F->raw[1], F->m1, 1e-5, 0);
    /* 8. the same at sigma_w2 = 0.5, width 512: the scan for the upper edge
          moves u_l from 0 to 0.956 in its first step, where the mask's inner
          Newton, started from the previous Sigma_D, lands beyond psi_D's first
          pole (real u now brackets the root); and the outer Newton's steps
          stall at 2.4e-11 |t| (the noise floor at 1e-10 |t|). Before, the edge
          failed and the run fell back to the discretised method (integral 1.03,
          upper edge 740.5 instead of 584.4). Either change alone fails this. */
    p.sigma_w2 = p.sigma2_input = p.sigma2_output = 0.5, p.width = 512; /* at width 64 the edge is found */
    ck_assert_ok(bafu_free_run(wb, &p, 0, BAFU_SPEC_BFK, 9, L10));
    ck_assert(bafu_free_exact(wb));
    printf("limit exact tanh with biases, sigma_w2 0.5, layer %d: mass - 1 = %.1e, m1 %.1e (relative), support [%.10g, "
           "%.10g]\n",
           F->label, F->raw[0] - 1, F->raw[1] / F->m1 - 1, F->lo, F->hi);
    ck_assert_close(F->raw[0], 1, 1e-5, 0);
    ck_assert_close(F->raw[1], F->m1, 1e-5, 0);
    bafu_free_free(wb);
  }
  /* 10. tanh at depth 40 with sigma_w2 = 0.1 and biases (variance 1): Z'(0) ~ 1e49,
         the edge scan's first step passes the true edge and Brent finds a false
         one (2.3e16); the pointwise law then integrates to 0. Refused (a law off 1
         by over 0.1): the discretised method serves it, as before */
  {
    bafu_free_params fb = {.atoms = 1500, .grid = 50, .last_only = 1}; /* as the command */
    bafu_free *wb;
    ck_assert_ok(bafu_free_alloc(&fb, &wb));
    bafu_net_params p = base(BAFU_ARCH_MLP, BAFU_ACT_TANH, 512, 40);
    p.sigma_w2 = p.sigma2_input = p.sigma2_output = 0.1, p.bias_var = 1;
    static bafu_free_layer L40[40];
    ck_assert_ok(bafu_free_run(wb, &p, 0, BAFU_SPEC_BFK, 39, L40));
    ck_assert(!bafu_free_exact(wb));
    printf("limit tanh, depth 40, sigma_w2 0.1, biases: discretised, integral %.4f, support [%.6g, %.6g]\n",
           L40[39].raw[0], L40[39].lo, L40[39].hi);
    ck_assert_close(L40[39].raw[0], 1, 0.1, 0);
    ck_assert(L40[39].hi < 1e3);
    bafu_free_free(wb);
  }
  /* 4. a tanh law the trapezoid rule cannot resolve (sigma_w2 = 200: q of order 100,
        the moments not reached by step 2^-6): the discretised method, no error */
  {
    bafu_net_params pt = base(BAFU_ARCH_MLP, BAFU_ACT_TANH, 64, 3);
    pt.sigma_w2 = 200;
    ck_assert_ok(bafu_free_run(ws, &pt, 0, BAFU_SPEC_BFK, 2, L));
    ck_assert(!bafu_free_exact(ws));
  }
  /* 5. gelu and swish (phi' with a zero): the discretised method */
  const bafu_act others[2] = {BAFU_ACT_GELU, BAFU_ACT_SWISH};
  for (int a = 0; a < 2; ++a) {
    bafu_net_params pe = base(BAFU_ARCH_MLP, others[a], 64, 3);
    ck_assert_ok(bafu_free_run(ws, &pe, 0, BAFU_SPEC_BFK, 2, L));
    ck_assert(!bafu_free_exact(ws));
  }
  /* 9. erf: pointwise, its mask law on the trapezoid rule as tanh's (4.8). Halving
        the rule's step moves the density of a J J^T chain (depth 4, sigma_w2 = 1.5)
        by at most 1e-10 above 1e-4 of the upper edge (measured 5e-14; near x = 0
        the atoms do not resolve the law: 3.8e-8 at 1e-12 of the edge). The law's
        integral and m1 against 1 and the moment recursion, J J^T and BFK, within
        1e-4 (measured 9.7e-6 and 1.2e-6: the mass near the lower edge) */
  {
    bafu_net_params pe = base(BAFU_ARCH_MLP, BAFU_ACT_ERF, 64, 5);
    pe.sigma_w2 = 1.5;
    for (int ob = 0; ob < 2; ++ob) {
      ck_assert_ok(bafu_free_run(ws, &pe, 0, ob ? BAFU_SPEC_BFK : BAFU_SPEC_JACOBIAN, 4, L));
      ck_assert(bafu_free_exact(ws));
      printf("limit exact erf %s: mass - 1 = %.1e, m1 %.1e (relative)\n", ob ? "bfk" : "jacobian", L[4].raw[0] - 1,
             L[4].raw[1] / L[4].m1 - 1);
      ck_assert_close(L[4].raw[0], 1, 1e-4, 0);
      ck_assert_close(L[4].raw[1], L[4].m1, 1e-4, 0);
    }
    static mask_pair mp;
    mask_pair_build(&mp, &pe, 4, 2);
    double lo, hi;
    const double worst = mask_pair_change(&mp, 1e-4, &lo, &hi);
    printf("limit exact erf: the mask law's step halved: largest relative change above 1e-4 of the edge %.1e\n", worst);
    ck_assert_msg(worst < 1e-10, "%g", worst);
  }
  bafu_free_free(ws);
}
END_TEST

/* Limit, Jacobian of a product of p = 2 Gaussian matrices: Fuss-Catalan
 * moments m2 = 3, m3 = 12 (raw grid moments, not carried: 1e-3) and right edge
 * 27/4 (within 1%). */
START_TEST(test_fuss_catalan_limit) {
  bafu_net_params pr = base(BAFU_ARCH_MLP, BAFU_ACT_LINEAR, 256, 3);
  pr.sigma_w2 = 1.0;
  bafu_free_params fp = {.atoms = 800, .grid = 800};
  bafu_free *ws;
  ck_assert_ok(bafu_free_alloc(&fp, &ws));
  bafu_free_layer L[4];
  ck_assert_ok(bafu_free_run(ws, &pr, 0, BAFU_SPEC_JACOBIAN, 2, L));
  ck_assert_close(L[1].raw[2], fuss_catalan(1, 2), 1e-3, 0);
  ck_assert_close(L[1].raw[3], fuss_catalan(1, 3), 1e-3, 0);
  ck_assert_close(L[2].raw[1], fuss_catalan(2, 1), 1e-3, 0);
  ck_assert_close(L[2].raw[2], fuss_catalan(2, 2), 1e-3, 0);
  ck_assert_close(L[2].raw[3], fuss_catalan(2, 3), 1e-3, 0);
  ck_assert_close(L[2].hi, 27.0 / 4.0, 1e-2, 0);
  ck_assert_close(L[1].hi, 4.0, 1e-2, 0);
  bafu_free_free(ws);
}
END_TEST

static double free_cdf(const void *ctx, double x) { return bafu_free_cdf(ctx, x); }

/* Finite width approaches the limit (ReLU MLP, depth 3, BFK of layer 2, inputs
 * fixed to ones so |x|^2 = d as in the limit), W1 distance relative to m1.
 * Each draw's spectrum has a random overall scale (its trace fluctuates by
 * O(n^-1/2)); pooling draws mixes these scales, so the pooled raw W1 does not
 * shrink with more draws and varies by 50% between independent pools (0.034
 * +- 0.018 at n = 512 over 10 pools of 16 draws). The test therefore measures
 * the shape: each draw is rescaled to the limit's m1 (m1 itself is checked
 * against the moment recursion above), 32 draws pooled. Over 10 pools of 16
 * draws this statistic was 0.031 +- 0.005 at n = 128, 0.026 +- 0.006 at 256 and
 * 0.015 +- 0.004 at 512: require W1(512) < W1(128) and W1(512) < 0.025 (more
 * than 4 standard deviations of a 32-draw pool from failing by chance). */
START_TEST(test_width_convergence) {
  bafu_free_params fp = {.atoms = 800, .grid = 800};
  bafu_free *fw;
  ck_assert_ok(bafu_free_alloc(&fp, &fw));
  const size_t widths[2] = {128, 512}, draws = 32;
  double w1[2], w1_raw[2];
  double *ones = malloc(512 * sizeof(double));
  for (size_t i = 0; i < 512; ++i) ones[i] = 1.0; /* |x|^2 = d exactly, as in the limit */
  for (size_t c = 0; c < 2; ++c) {
    bafu_net_params p = base(BAFU_ARCH_MLP, BAFU_ACT_RELU, widths[c], 3);
    bafu_free_layer L[4];
    ck_assert_ok(bafu_free_run(fw, &p, 0, BAFU_SPEC_BFK, 2, L));
    const size_t n = widths[c], N = draws * n;
    double *ev = malloc(N * sizeof(double)), *raw = malloc(N * sizeof(double));
    bafu_net *net;
    ck_assert_ok(bafu_net_alloc(&p, &net));
    bafu_net_set_inputs(net, ones);
    bafu_spec_dense *ws;
    ck_assert_ok(bafu_spec_dense_alloc(net, 0, &ws));
    for (uint64_t d = 0; d < draws; ++d) {
      ck_assert_ok(bafu_net_draw(net, 21, d));
      ck_assert_ok(bafu_net_run(net));
      double *e = ev + d * n, mean = 0;
      ck_assert_ok(bafu_spec_dense_run(ws, net, BAFU_SPEC_BFK, 2, NULL, e));
      memcpy(raw + d * n, e, n * sizeof(double));
      for (size_t i = 0; i < n; ++i) mean += e[i] / (double)n;
      for (size_t i = 0; i < n; ++i) e[i] *= L[2].m1 / mean;
    }
    bafu_spec_dense_free(ws);
    bafu_net_free(net);
    qsort(ev, N, sizeof(double), cmp_double);
    qsort(raw, N, sizeof(double), cmp_double);
    w1[c] = bafu_spec_w1(free_cdf, fw, ev, N, L[2].atom[0].x * 0.9, L[2].hi * 1.1, 20000) / L[2].m1;
    w1_raw[c] = bafu_spec_w1(free_cdf, fw, raw, N, L[2].atom[0].x * 0.9, L[2].hi * 1.1, 20000) / L[2].m1;
    free(ev);
    free(raw);
  }
  printf("test_width_convergence: W1/m1 (draws rescaled to m1) %.4g %.4g, raw %.4g %.4g at n = 128, 512\n", w1[0],
         w1[1], w1_raw[0], w1_raw[1]);
  ck_assert_msg(w1[1] < w1[0], "W1/m1: %g at 128, %g at 512", w1[0], w1[1]);
  ck_assert_msg(w1[1] < 0.025, "W1/m1 at 512: %g", w1[1]);
  free(ones);
  bafu_free_free(fw);
}
END_TEST

/* The same for a nonlinear ResNet (ReLU, embedding, depth 4, B = 1; the
 * Dyson law of 4.9): the shape distance W1/m1 of 16 pooled draws falls from
 * n = 128 to n = 512 and is below 0.01 at 512. Measured over 16-draw pools
 * (--w1-draws, seeds 1-10, 21, 22): at 512 from 0.0015 to 0.0060 (mean
 * 0.0037), at 128 (8 seeds) from 0.0053 to 0.0145 (mean 0.0110), as the
 * model W1^2 ~ a^2/(n D) + (b/n)^2 of theory/spectrum.md 4.9 predicts
 * (0.0105, 0.0032). The distance is heavy-tailed (the BFK's upper tail): a
 * 32-draw pool of seed 21 gave 0.0074 at 512 from draws 16-31, hence the
 * bound. */
START_TEST(test_width_convergence_resnet) {
  const size_t widths[2] = {128, 512}, draws = 16;
  double w1[2], raw[2];
  for (size_t c = 0; c < 2; ++c) {
    bafu_net_params p = base(BAFU_ARCH_RESNET, BAFU_ACT_RELU, widths[c], 4);
    p.embed = 1;
    /* the library's own comparison (bafu spectrum --w1-draws): inputs of
       ones, draws 0..15 of stream 21, each rescaled to the limit's m1 */
    ck_assert_ok(bafu_spec_w1_limit(&p, 4, 21, draws, &raw[c], &w1[c]));
  }
  printf("test_width_convergence_resnet: W1/m1 (draws rescaled to m1) %.4g %.4g, raw %.4g %.4g at n = 128, 512\n",
         w1[0], w1[1], raw[0], raw[1]);
  ck_assert_msg(w1[1] < w1[0], "W1/m1: %g at 128, %g at 512", w1[0], w1[1]);
  ck_assert_msg(w1[1] < 0.01, "W1/m1 at 512: %g", w1[1]);
}
END_TEST

/* The histogram: equal bins count every eigenvalue once (the last bin closed),
 * densities integrate to 1; geometric bins put the exact zeros in an atom and
 * cover the rest; the Kantorovich bound holds for a spectrum of two values
 * (where it is attained) and is NAN outside its domain. */
START_TEST(test_histogram_and_kantorovich) {
  const double ev[] = {1, 1, 2, 3, 3.5, 4};
  double x[3], d[3], w[3];
  size_t zeros = 9;
  ck_assert_int_eq(bafu_spec_histogram(ev, 6, 3, 0, x, d, w, &zeros), BAFU_OK);
  ck_assert_uint_eq(zeros, 0);
  /* bins [1, 2), [2, 3), [3, 4]: counts 2, 1, 3 */
  const double counts[] = {2, 1, 3};
  double integral = 0;
  for (int b = 0; b < 3; ++b) {
    ck_assert_double_eq_tol(w[b], 1.0, 1e-15);
    ck_assert_double_eq_tol(x[b], 1.5 + b, 1e-15);
    ck_assert_double_eq_tol(d[b], counts[b] / 6.0, 1e-15);
    integral += d[b] * w[b];
  }
  ck_assert_double_eq_tol(integral, 1.0, 1e-15);
  const double evz[] = {0, 0, 1, 10, 100};
  ck_assert_int_eq(bafu_spec_histogram(evz, 5, 2, 1, x, d, w, &zeros), BAFU_OK);
  ck_assert_uint_eq(zeros, 2);
  /* geometric bins [1, 10), [10, 100]: counts 1, 2 */
  ck_assert_double_eq_tol(w[0], 9.0, 1e-13);
  ck_assert_double_eq_tol(w[1], 90.0, 1e-12);
  ck_assert_double_eq_tol(d[0] * w[0], 1.0 / 5, 1e-15);
  ck_assert_double_eq_tol(d[1] * w[1], 2.0 / 5, 1e-15);
  const double allzero[] = {0, 0};
  ck_assert_int_eq(bafu_spec_histogram(allzero, 2, 4, 1, x, d, w, &zeros), BAFU_ENUMERIC);
  ck_assert_int_eq(bafu_spec_histogram(ev, 0, 3, 0, x, d, w, &zeros), BAFU_EINVAL);
  /* M = diag(1, 9), b = (3, 1): <b, M b> / (|b| |M b|) = 18 / (sqrt(10) sqrt(90)) = 0.6 = 2 sqrt(9) / 10 */
  ck_assert_double_eq_tol(bafu_spec_kantorovich(1, 9), 0.6, 1e-15);
  ck_assert(isnan(bafu_spec_kantorovich(0, 1)) && isnan(bafu_spec_kantorovich(2, 1)));
}
END_TEST

static Suite *spectrum_suite(void) {
  Suite *s = suite_create("spectrum");
  TCase *tc = tcase_create("dense");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_dense_cos_matches_engine);
  tcase_add_test(tc, test_dense_deep_blocks_match_engine);
  tcase_add_test(tc, test_dense_residual);
  tcase_add_test(tc, test_fuss_catalan_dense);
  tcase_add_test(tc, test_histogram_and_kantorovich);
  suite_add_tcase(s, tc);
  TCase *tk = tcase_create("kpm");
  tcase_set_timeout(tk, 60);
  tcase_add_test(tk, test_kpm_apply_matches_dense);
  tcase_add_test(tk, test_kpm_matches_dense);
  tcase_add_test(tk, test_planner_threads);
  suite_add_tcase(s, tk);
  TCase *tl = tcase_create("limit");
  tcase_set_timeout(tl, 60);
  tcase_add_test(tl, test_limit_moments);
  tcase_add_test(tl, test_limit_refuses_unconverged);
  tcase_add_test(tl, test_fuss_catalan_limit);
  tcase_add_test(tl, test_limit_exact);
  tcase_add_test(tl, test_limit_dyson);
  tcase_add_test(tl, test_width_convergence);
  tcase_add_test(tl, test_width_convergence_resnet);
  suite_add_tcase(s, tl);
  TCase *tt = tcase_create("limit_tanh"); /* about 7 s of CPU */
  tcase_set_timeout(tt, 300);
  tcase_add_test(tt, test_limit_exact_tanh);
  suite_add_tcase(s, tt);
  return s;
}

int main(void) { return bafu_run_suite(spectrum_suite()); }
