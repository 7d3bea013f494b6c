/* test_preset.c: the scaling presets and the sensitivity against depth and
 * width, by theory and Monte Carlo (theory/presets.md). */
#include <gsl/gsl_rng.h>
#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/mc.h"
#include "bafu/moments.h"
#include "bafu/preset.h"
#include "testutil.h"

static bafu_net_params shape(bafu_arch arch, size_t n, size_t L, size_t d, bafu_inputs inputs) {
  bafu_net_params p = bafu_net_params_default();
  p.arch = arch;
  p.width = n;
  p.depth = L;
  p.input_dim = d;
  p.inputs = inputs;
  p.signal = BAFU_SIGNAL_MSE;
  p.embed = arch == BAFU_ARCH_RESNET;
  return p;
}

/* Each preset's numbers against the formulas of theory/presets.md 3-4. */
START_TEST(test_rows) {
  const double s = 2.0;
  bafu_preset_row r[3];
  bafu_net_params p = shape(BAFU_ARCH_MLP, 256, 16, 100, BAFU_INPUTS_GAUSSIAN);
  ck_assert_ok(bafu_preset_rows(&p, BAFU_PRESET_FSC, r));
  ck_assert_close(r[0].var, s / 100, 1e-15, 0);
  ck_assert_close(r[0].lr, 256.0 / (100.0 * 256.0), 1e-15, 0);
  ck_assert_close(r[1].var, s / 256, 1e-15, 0);
  ck_assert_close(r[1].lr, 1.0 / 256, 1e-15, 0);
  ck_assert_close(r[2].var, 16.0 / 65536, 1e-15, 0);
  ck_assert_close(r[2].lr, 1.0 / 256, 1e-15, 0);
  ck_assert_ok(bafu_preset_rows(&p, BAFU_PRESET_NTK, r));
  ck_assert_close(r[0].lr, 1.0 / 100, 1e-15, 0);
  ck_assert_close(r[1].lr, 1.0 / 256, 1e-15, 0);
  ck_assert_close(r[2].var, s / 256, 1e-15, 0);
  ck_assert_ok(bafu_preset_rows(&p, BAFU_PRESET_MUP, r));
  ck_assert_close(r[0].lr, 2.56, 1e-15, 0);
  ck_assert_close(r[1].lr, 1.0, 1e-15, 0);
  ck_assert_close(r[2].var, 1.0 / 65536, 1e-15, 0);
  ck_assert_ok(bafu_preset_rows(&p, BAFU_PRESET_SP, r));
  ck_assert(r[0].lr == 1 && r[1].lr == 1 && r[2].lr == 1 && r[2].var == s / 256);
  /* one-hot: input variance s (|x| = 1), rates n / |x|^2 scaled */
  p.inputs = BAFU_INPUTS_ONEHOT;
  ck_assert_ok(bafu_preset_rows(&p, BAFU_PRESET_MUP, r));
  ck_assert_close(r[0].var, s, 1e-15, 0);
  ck_assert_close(r[0].lr, 256.0, 1e-15, 0);
  ck_assert_ok(bafu_preset_rows(&p, BAFU_PRESET_FSC, r));
  ck_assert_close(r[0].lr, 256.0 / 256.0, 1e-15, 0);
  /* ResNets: lr_h = 1/(L beta^2): 1 for beta = L^-1/2, L for beta = 1/L */
  p = shape(BAFU_ARCH_RESNET, 256, 16, 100, BAFU_INPUTS_GAUSSIAN);
  ck_assert_ok(bafu_preset_rows(&p, BAFU_PRESET_FSC, r));
  ck_assert_close(r[1].lr, 1.0, 1e-14, 0);
  ck_assert_close(r[2].var, 1.0 / 65536, 1e-15, 0);
  ck_assert_close(r[0].lr, 256.0 / (100.0 * 16), 1e-15, 0);
  p.branch_exponent = 1;
  ck_assert_ok(bafu_preset_rows(&p, BAFU_PRESET_FSC, r));
  ck_assert_close(r[1].lr, 16.0, 1e-14, 0);
  /* apply writes the gains and rates */
  ck_assert_ok(bafu_preset_apply(&p, BAFU_PRESET_FSC));
  ck_assert_close(p.sigma2_output, 256.0 / 65536, 1e-15, 0);
  ck_assert_close(p.sigma2_input, s, 1e-15, 0);
  ck_assert_close(p.lr_hidden, 16.0, 1e-14, 0);
  /* refusals */
  p.inputs = BAFU_INPUTS_ONEHOT;
  p.embed = 0;
  p.input_dim = 0;
  ck_assert_int_eq(bafu_preset_rows(&p, BAFU_PRESET_MUP, r), BAFU_EINVAL);
  ck_assert(strncmp(bafu_last_error(), "embed: ", 7) == 0);
  ck_assert_int_eq(bafu_preset_rows(&p, BAFU_PRESET_COUNT, r), BAFU_EINVAL);
}
END_TEST

/* The bias part of each layer's own term over its weight part (theory/presets.md
 * 6): the moment theory's c_l with the preset's bias rates minus c_l with bias
 * rates 0 (same biases at init), over the latter. share[0] the layer reading
 * x, share[1] the first hidden layer or block, share[2] the readout. */
static void bias_shares(bafu_arch arch, bafu_preset preset, size_t n, size_t L, double share[3]) {
  bafu_net_params p = shape(arch, n, L, 0, BAFU_INPUTS_GAUSSIAN);
  p.bias_var = 0.1;
  ck_assert_ok(bafu_preset_apply(&p, preset));
  bafu_net_params p0 = p;
  p0.lr_bias_input = p0.lr_bias = p0.lr_bias_output = 0;
  const size_t J = bafu_moments_nlayers(&p);
  bafu_moments_layer *o = malloc(J * sizeof *o), *o0 = malloc(J * sizeof *o0);
  ck_assert_ok(bafu_moments_run(&p, 0, o));
  ck_assert_ok(bafu_moments_run(&p0, 0, o0));
  const size_t at[3] = {0, 1, J - 1};
  for (int i = 0; i < 3; ++i) {
    ck_assert(o0[at[i]].c > 0 && o[at[i]].c > o0[at[i]].c);
    share[i] = (o[at[i]].c - o0[at[i]].c) / o0[at[i]].c;
  }
  free(o);
  free(o0);
}

/* The bias rates: the formulas' numbers, and the scaling they are for: under
 * ntk, mup and fsc a bias contributes in a fixed proportion to its weights at
 * every width (and, for fsc, every depth); under sp (one rate for all) its
 * share falls as 1/n in the hidden layers and the readout. */
START_TEST(test_bias_rates) {
  bafu_preset_row r[3];
  bafu_net_params p = shape(BAFU_ARCH_MLP, 256, 16, 100, BAFU_INPUTS_GAUSSIAN);
  p.bias_var = 0.25;
  ck_assert_ok(bafu_preset_rows(&p, BAFU_PRESET_SP, r));
  ck_assert(r[0].lr_bias == 1 && r[1].lr_bias == 1 && r[2].lr_bias == 1);
  ck_assert_ok(bafu_preset_rows(&p, BAFU_PRESET_NTK, r));
  ck_assert(r[0].lr_bias == 0.25 && r[1].lr_bias == 0.25 && r[2].lr_bias == 0.25);
  ck_assert_ok(bafu_preset_rows(&p, BAFU_PRESET_MUP, r));
  ck_assert(r[0].lr_bias == 256 && r[1].lr_bias == 256 && r[2].lr_bias == 1);
  ck_assert_ok(bafu_preset_rows(&p, BAFU_PRESET_FSC, r));
  ck_assert(r[0].lr_bias == 1 && r[1].lr_bias == 1 && r[2].lr_bias == 1); /* n/L^2 = 256/256 */
  p = shape(BAFU_ARCH_RESNET, 256, 16, 100, BAFU_INPUTS_GAUSSIAN);
  p.branch_exponent = 1; /* beta = 1/16 */
  ck_assert_ok(bafu_preset_apply(&p, BAFU_PRESET_FSC));
  ck_assert_close(p.lr_bias_input, 16.0, 1e-15, 0);
  ck_assert_close(p.lr_bias, 4096.0, 1e-13, 0); /* n/(L beta^2) = 256 / (16/256) */
  ck_assert(p.lr_bias_output == 1);

  const bafu_arch arch[2] = {BAFU_ARCH_MLP, BAFU_ARCH_RESNET};
  for (int a = 0; a < 2; ++a) {
    double s1[3], s4[3], sL[3];
    for (int k = BAFU_PRESET_NTK; k <= BAFU_PRESET_FSC; ++k) { /* width: 256 -> 1024 */
      bias_shares(arch[a], (bafu_preset)k, 256, 8, s1);
      bias_shares(arch[a], (bafu_preset)k, 1024, 8, s4);
      for (int i = 0; i < 3; ++i)
        ck_assert_msg(fabs(s4[i] / s1[i] - 1) < 1e-12, "%s arch %d group %d: bias share %g at n = 256, %g at 1024",
                      bafu_preset_name((bafu_preset)k), a, i, s1[i], s4[i]);
    }
    bias_shares(arch[a], BAFU_PRESET_FSC, 256, 32, sL); /* depth: 8 -> 32, the layers below the top */
    for (int i = 0; i < 2; ++i)
      ck_assert_msg(fabs(sL[i] / s1[i] - 1) < 1e-12, "fsc arch %d group %d: bias share %g at L = 8, %g at 32", a, i,
                    s1[i], sL[i]);
    bias_shares(arch[a], BAFU_PRESET_SP, 256, 8, s1);
    bias_shares(arch[a], BAFU_PRESET_SP, 1024, 8, s4);
    for (int i = 1; i < 3; ++i)
      ck_assert_msg(fabs(4 * s4[i] / s1[i] - 1) < 1e-12, "sp arch %d group %d: bias share %g at n = 256, %g at 1024",
                    a, i, s1[i], s4[i]);
  }
}
END_TEST

/* kappa_k = sqrt(k) E[1/chi_k] against 4e5 Gaussian vectors (4 se; k >= 5 so
 * that 1/chi_k has a finite fourth moment and the se estimate is reliable),
 * its value at k = 2 and its expansion 1 + 3/(4k). */
START_TEST(test_kappa) {
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, 11);
  const size_t ks[] = {5, 8, 32};
  for (size_t t = 0; t < 3; ++t) {
    const size_t k = ks[t], N = 400000;
    double sum = 0, sum2 = 0;
    for (size_t i = 0; i < N; ++i) {
      double z2 = 0;
      for (size_t a = 0; a < k; ++a) {
        const double z = gsl_ran_gaussian_ziggurat(r, 1.0);
        z2 += z * z;
      }
      const double v = sqrt((double)k / z2);
      sum += v;
      sum2 += v * v;
    }
    const double mean = sum / N, se = sqrt((sum2 / N - mean * mean) / N);
    ck_assert_msg(fabs(mean - bafu_sensitivity_kappa(k)) < 4 * se, "k = %zu: MC %g +- %g vs kappa %g", k, mean, se,
                  bafu_sensitivity_kappa(k));
  }
  ck_assert_close(bafu_sensitivity_kappa(2), sqrt(3.14159265358979323846), 1e-14, 0); /* Gamma(1/2)/Gamma(1) */
  ck_assert(fabs(bafu_sensitivity_kappa(1000) - (1 + 3.0 / 4000)) < 5e-6); /* 1 + 3/(4k) + O(1/k^2) */
  ck_assert(isinf(bafu_sensitivity_kappa(1)));
  gsl_rng_free(r);
}
END_TEST

/* Theory sensitivity of the last hidden layer for one preset. */
static double theory_sens(bafu_arch arch, double A, bafu_preset preset, size_t n, size_t L) {
  bafu_net_params p = shape(arch, n, L, 0, BAFU_INPUTS_GAUSSIAN);
  p.branch_exponent = A;
  ck_assert_ok(bafu_preset_apply(&p, preset));
  const size_t J = bafu_moments_nlayers(&p);
  bafu_moments_layer *o = malloc(J * sizeof *o);
  ck_assert_ok(bafu_moments_run(&p, 0, o));
  const double S = o[J - 2].sensitivity; /* J - 1 is the readout */
  free(o);
  return S;
}

/* The expected shapes (theory/presets.md 3-4), from the infinite-width
 * solver: FSC flat in depth (within 10% from L = 4 to 128) and in width (up
 * to its O(L/n) readout variance in |b_top|); muP
 * growing (more than 4x); NTK/SP vanishing as n^(-1/2) at fixed depth;
 * ResNets (beta = L^-1/2) flat under muP and FSC (within 20%). */
START_TEST(test_shapes) {
  double lo = INFINITY, hi = 0;
  for (size_t L = 4; L <= 128; L *= 2) {
    const double S = theory_sens(BAFU_ARCH_MLP, 0.5, BAFU_PRESET_FSC, 1024, L);
    lo = fmin(lo, S), hi = fmax(hi, S);
    /* width enters FSC only through Var y = O(L/n) in |b_top| */
    ck_assert_close(theory_sens(BAFU_ARCH_MLP, 0.5, BAFU_PRESET_FSC, 4096, L), S, (double)L / 1024, 0);
    ck_assert_close(theory_sens(BAFU_ARCH_MLP, 0.5, BAFU_PRESET_NTK, 4096, L),
                    0.5 * theory_sens(BAFU_ARCH_MLP, 0.5, BAFU_PRESET_NTK, 1024, L), 1e-9, 0);
  }
  ck_assert_msg(hi / lo < 1.1, "FSC sensitivity %g..%g over L = 4..128", lo, hi);
  ck_assert(theory_sens(BAFU_ARCH_MLP, 0.5, BAFU_PRESET_MUP, 1024, 128) >
            4 * theory_sens(BAFU_ARCH_MLP, 0.5, BAFU_PRESET_MUP, 1024, 4));
  for (int pr = BAFU_PRESET_MUP; pr <= BAFU_PRESET_FSC; ++pr) {
    const double a = theory_sens(BAFU_ARCH_RESNET, 0.5, (bafu_preset)pr, 1024, 4);
    const double b = theory_sens(BAFU_ARCH_RESNET, 0.5, (bafu_preset)pr, 1024, 128);
    ck_assert_msg(fmax(a, b) / fmin(a, b) < 1.2, "ResNet %s: %g vs %g", bafu_preset_name((bafu_preset)pr), a, b);
  }
}
END_TEST

/* Monte Carlo at width 1024 (the design target of theory/presets.md 7): the FSC sensitivity of
 * the last hidden layer stays within a factor 1.5 from depth 4 to 64, and at
 * every depth the MC mean agrees with theory * kappa_k (k = 32 Gaussian-target
 * outputs, theory/presets.md 2.2). Tolerance: 4 se for the draws plus a
 * finite-width allowance of (L/n + 2/sqrt(n)) relative (the angle's and the
 * norms' first corrections at width n, theory/moments.md 6). muP is checked
 * the same way at L = 4 and 16. */
START_TEST(test_sensitivity_mc) {
  const size_t n = 1024, k = 32, depths[] = {4, 16, 64};
  double lo = INFINITY, hi = 0;
  for (int pr = BAFU_PRESET_MUP; pr <= BAFU_PRESET_FSC; ++pr)
    for (size_t t = 0; t < 3; ++t) {
      const size_t L = depths[t];
      if (pr == BAFU_PRESET_MUP && L > 16) continue;
      bafu_net_params p = shape(BAFU_ARCH_MLP, n, L, 0, BAFU_INPUTS_GAUSSIAN);
      p.outputs = k;
      p.step = 0;
      ck_assert_ok(bafu_preset_apply(&p, (bafu_preset)pr));
      bafu_mc_result r;
      ck_assert_ok(bafu_mc_run(&p, 16, 77, NULL, 2, &r));
      const size_t j = (r.J - 2) * BAFU_Q_COUNT + BAFU_Q_SENS;
      const double mc = r.mean[j], se = r.se[j];
      bafu_mc_result_free(&r);
      const size_t J = bafu_moments_nlayers(&p);
      bafu_moments_layer *o = malloc(J * sizeof *o);
      ck_assert_ok(bafu_moments_run(&p, 0, o));
      const double th = o[J - 2].sensitivity * bafu_sensitivity_kappa(k);
      free(o);
      const double tol = 4 * se + ((double)L / n + 2 / sqrt((double)n)) * th;
      printf("  %s L = %zu: MC %.4g +- %.2g, theory*kappa %.4g (tolerance %.2g)\n", bafu_preset_name((bafu_preset)pr), L,
             mc, se, th, tol);
      ck_assert_msg(fabs(mc - th) < tol, "%s L = %zu: MC %g +- %g vs theory %g", bafu_preset_name((bafu_preset)pr), L,
                    mc, se, th);
      if (pr == BAFU_PRESET_FSC) lo = fmin(lo, mc), hi = fmax(hi, mc);
    }
  ck_assert_msg(hi / lo < 1.5, "FSC Monte Carlo sensitivity %g..%g from L = 4 to 64", lo, hi);
}
END_TEST

/* FSC with branches of K layers (theory/presets.md 4.4): the hidden rates are
 * 1/(K L beta^2) and n/(K L beta^2), the other rows those of K = 1. For ReLU
 * (s = 2) the K matrices of a block contribute K times a one-layer block's at
 * one rate (each inner layer keeps the stream's variance and the signal's
 * norm), so under FSC the blocks' total decay D_L - C_embedding (probe
 * signal) is the same in expectation for K = 1, 2, 3: the Monte Carlo ratio must be 1
 * within 4 combined se plus a finite-width allowance of 2 (K L / n) (the
 * first corrections of |b|^2 and |g|^2 at width n grow with the number of
 * matrices on the path). A rule without the 1/K makes the ratio K. */
START_TEST(test_fsc_block_depth) {
  const size_t n = 512, L = 8;
  double D[4], se[4];
  for (size_t K = 1; K <= 3; ++K) {
    bafu_net_params p = shape(BAFU_ARCH_RESNET, n, L, 0, BAFU_INPUTS_GAUSSIAN);
    p.block_depth = K;
    p.bias_var = 0.25;
    bafu_preset_row r[3];
    ck_assert_ok(bafu_preset_rows(&p, BAFU_PRESET_FSC, r));
    const double b2 = bafu_net_beta(&p) * bafu_net_beta(&p);
    ck_assert_close(r[1].lr, 1 / ((double)K * L * b2), 1e-15, 0);
    ck_assert_close(r[1].lr_bias, (double)n / ((double)K * L * b2), 1e-15, 0);
    ck_assert_str_eq(r[1].lr_formula, K == 1 ? "1/(L*beta^2)" : "1/(K*L*beta^2)");
    bafu_preset_row r1[3];
    bafu_net_params p1 = p;
    p1.block_depth = 1;
    ck_assert_ok(bafu_preset_rows(&p1, BAFU_PRESET_FSC, r1));
    for (int g = 0; g < 3; g += 2) ck_assert(r[g].lr == r1[g].lr && r[g].var == r1[g].var && r[g].lr_bias == r1[g].lr_bias);
    ck_assert_ok(bafu_preset_apply(&p, BAFU_PRESET_FSC));
    p.signal = BAFU_SIGNAL_PROBE; /* |b_L| = 1 up to O(n^-1/2): no spread from the targets */
    p.step = 0;
    bafu_mc_result res;
    ck_assert_ok(bafu_mc_run(&p, 24, 91, NULL, 2, &res));
    /* rows: embedding (0), blocks 1..L */
    const double *m = res.mean, *e = res.se;
    D[K] = m[L * BAFU_Q_COUNT + BAFU_Q_DECAY] - m[BAFU_Q_CONTRIB];
    se[K] = hypot(e[L * BAFU_Q_COUNT + BAFU_Q_DECAY], e[BAFU_Q_CONTRIB]);
    bafu_mc_result_free(&res);
  }
  for (size_t K = 2; K <= 3; ++K) {
    const double ratio = D[K] / D[1], sr = ratio * hypot(se[K] / D[K], se[1] / D[1]);
    const double tol = 4 * sr + 2.0 * (double)(K * L) / (double)n;
    printf("  FSC K = %zu: blocks' decay %.4g vs K = 1 %.4g, ratio %.4f +- %.2g (tolerance %.2g)\n", K, D[K], D[1],
           ratio, sr, tol);
    ck_assert_msg(fabs(ratio - 1) < tol, "K = %zu: ratio %g +- %g", K, ratio, sr);
  }
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("preset");
  TCase *tc = tcase_create("preset");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_rows);
  tcase_add_test(tc, test_kappa);
  tcase_add_test(tc, test_bias_rates);
  tcase_add_test(tc, test_shapes);
  tcase_add_test(tc, test_sensitivity_mc);
  tcase_add_test(tc, test_fsc_block_depth);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return bafu_run_suite(suite()); }
