/* test_validation.c: the infinite-width theory (bafu theory) against finite-width
 * Monte Carlo (bafu mc), layer by layer, at width 1024 and depth 32.
 *
 * Criterion, for every layer l:  |cos_mc - cos_theory| <= 3 se + A l / n.
 * se is the Monte Carlo standard error of the mean over the draws. The
 * finite-width allowance A l / n accounts for the bias of a finite network:
 * the corrections to the infinite-width moments are of relative order l/n
 * (theory/moments.md 6), with a constant that the theory does not give. We use
 * A = 0.25, so the allowance is at most 0.008 at l = 32, n = 1024; measured
 * biases at width 2048 are below 0.003 (README, "Validation"). A wrong factor 2
 * in a learning rate, a missing mask or the free-mask approximation for
 * ResNets moves the prediction by 0.01 to 0.1 and fails this test. The seed is
 * fixed, so the test is deterministic. */
#include <gsl/gsl_statistics_double.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/mc.h"
#include "bafu/kernel.h"
#include "bafu/moments.h"
#include "bafu/outangle.h"
#include "testutil.h"

typedef struct {
  const char *name;
  bafu_arch arch;
  bafu_act act;
  double sigma_w2;
  double branch_scale;
  int embed;
  double bias_var, lr_bias; /* biases (theory/moments.md 2.7); 0: none */
  bafu_branch_norm norm;    /* normalised branches (theory/moments.md 2.8) */
  size_t block_depth;       /* layers per residual branch (theory/moments.md 2.10); 0: 1 */
} vcase;

static const vcase cases[] = {
    {"relu MLP", BAFU_ARCH_MLP, BAFU_ACT_RELU, 2.0, 1.0, 0, 0, 0, 0, 0},
    {"tanh MLP", BAFU_ARCH_MLP, BAFU_ACT_TANH, 1.5, 1.0, 0, 0, 0, 0, 0},
    {"relu ResNet beta = 1/sqrt(L)", BAFU_ARCH_RESNET, BAFU_ACT_RELU, 2.0, 1.0, 0, 0, 0, 0, 0},
    {"tanh ResNet beta = 2/sqrt(L), embedding", BAFU_ARCH_RESNET, BAFU_ACT_TANH, 1.0, 2.0, 1, 0, 0, 0, 0},
};

/* The same networks with biases (--bias-var, --lr-bias). A bias's own term
 * lr_b s^2 is O(1/n) of a layer's weights' lr s^2 |g|^2 ~ lr n q, so a rate
 * lr_b ~ n (as muP scales it) is what makes it count: at lr_b = 1024 it is
 * half a ReLU layer's own term, and dropping it from the theory fails this
 * test, as does dropping V from the variances. */
static const vcase bias_cases[] = {
    {"relu MLP, biases V = 0.5, lr_b = 1024", BAFU_ARCH_MLP, BAFU_ACT_RELU, 2.0, 1.0, 0, 0.5, 1024.0, 0, 0},
    {"tanh MLP, biases V = 0.2, lr_b = 300", BAFU_ARCH_MLP, BAFU_ACT_TANH, 1.5, 1.0, 0, 0.2, 300.0, 0, 0},
    {"relu ResNet beta = 1/sqrt(L), biases V = 0.5, lr_b = 1024", BAFU_ARCH_RESNET, BAFU_ACT_RELU, 2.0, 1.0, 0, 0.5,
     1024.0, 0, 0},
    {"tanh ResNet beta = 2/sqrt(L), embedding, biases V = 0.3, lr_b = 2", BAFU_ARCH_RESNET, BAFU_ACT_TANH, 1.0, 2.0, 1,
     0.3, 2.0, 0, 0},
};

/* Normalised branches (--branch-norm rms): the branch reads phi(f / |f|_rms).
 * The theory replaces beta by beta / sqrt(q_{l-1}) in the block's Jacobian and
 * evaluates the branch's masks at unit variance; ignoring the normalisation
 * (the plain ResNet's theory) fails these, as does evaluating the masks at q. */
static const vcase norm_cases[] = {
    {"relu ResNet beta = 1/sqrt(L), normalised branches", BAFU_ARCH_RESNET, BAFU_ACT_RELU, 2.0, 1.0, 0, 0, 0,
     BAFU_BRANCH_NORM_RMS, 0},
    {"relu ResNet beta = 2/sqrt(L), normalised branches", BAFU_ARCH_RESNET, BAFU_ACT_RELU, 2.0, 2.0, 0, 0, 0,
     BAFU_BRANCH_NORM_RMS, 0},
    {"tanh ResNet beta = 1/sqrt(L), embedding, normalised branches", BAFU_ARCH_RESNET, BAFU_ACT_TANH, 1.0, 1.0, 1, 0,
     0, BAFU_BRANCH_NORM_RMS, 0},
    {"tanh ResNet beta = 2/sqrt(L), embedding, biases V = 0.3, normalised branches", BAFU_ARCH_RESNET, BAFU_ACT_TANH,
     1.0, 2.0, 1, 0.3, 2.0, BAFU_BRANCH_NORM_RMS, 0},
};

/* Residual branches of K layers (--block-depth K), depth 32: the theory's
 * own term is a sum over the branch's layers, with a spread, and its Jacobian
 * terms carry the product of the inner layers (theory/moments.md 2.10). The
 * one-layer model with the same first moments (for ReLU with s = 2: block
 * depth 1 and lr_hidden K times larger) fails these (test_theory_vs_mc_blocks),
 * as does dropping the spread of the own term. Without an embedding the first
 * block reads phi(x): a branch that fed x itself to its first layer would
 * double the ReLU block's own term at layer 1 and fail here too. */
static const vcase block_cases[] = {
    {"relu ResNet beta = 1/sqrt(L), K = 2", BAFU_ARCH_RESNET, BAFU_ACT_RELU, 2.0, 1.0, 0, 0, 0, 0, 2},
    {"relu ResNet beta = 2/sqrt(L), K = 2", BAFU_ARCH_RESNET, BAFU_ACT_RELU, 2.0, 2.0, 0, 0, 0, 0, 2},
    {"relu ResNet beta = 2/sqrt(L), K = 3", BAFU_ARCH_RESNET, BAFU_ACT_RELU, 2.0, 2.0, 0, 0, 0, 0, 3},
    {"tanh ResNet beta = 1/sqrt(L), embedding, K = 2", BAFU_ARCH_RESNET, BAFU_ACT_TANH, 1.0, 1.0, 1, 0, 0, 0, 2},
    {"tanh ResNet beta = 2/sqrt(L), K = 2", BAFU_ARCH_RESNET, BAFU_ACT_TANH, 1.5, 2.0, 0, 0, 0, 0, 2},
    {"tanh ResNet beta = 2/sqrt(L), embedding, biases V = 0.3, lr_b = 300, normalised branches, K = 2",
     BAFU_ARCH_RESNET, BAFU_ACT_TANH, 1.0, 2.0, 1, 0.3, 300.0, BAFU_BRANCH_NORM_RMS, 2},
};

static const double A_WIDTH = 0.25;

/* The criterion above for case c at width n and depth L over `seeds` draws,
 * with stored weights or the conditional sampler. model_K = 0: the theory of
 * c itself, asserted layer by layer; model_K >= 1: the theory of a model to
 * be rejected, blocks of model_K layers trained at lr_hidden = model_lr, not
 * asserted. Returns the worst |mc - theory| / tolerance. */
static double theory_vs_mc_of(const vcase *c, size_t n, size_t L, size_t seeds, int conditional, size_t model_K,
                              double model_lr) {
  bafu_net_params p = bafu_net_params_default();
  p.arch = c->arch;
  p.act = c->act;
  p.sigma_w2 = c->sigma_w2;
  p.branch_scale = c->branch_scale;
  p.embed = c->embed;
  p.bias_var = c->bias_var;
  p.branch_norm = c->norm;
  if (c->bias_var > 0) p.lr_bias = c->lr_bias;
  p.block_depth = c->block_depth ? c->block_depth : 1;
  p.width = n;
  p.depth = L;
  p.conditional = conditional;
  bafu_mc_result r;
  ck_assert_ok(bafu_mc_run(&p, seeds, 2026, NULL, 2, &r));
  bafu_moments_layer *o = malloc(r.J * sizeof *o);
  bafu_net_params pt = p;
  if (model_K) {
    pt.block_depth = model_K;
    pt.lr_hidden = model_lr;
  }
  ck_assert_uint_eq(bafu_moments_nlayers(&pt), r.J);
  ck_assert_ok(bafu_moments_run(&pt, 0, o));
  double worst = 0;
  for (size_t j = 0; j < r.J; ++j) {
    ck_assert_int_eq(o[j].label, r.labels[j]);
    const double mc = r.mean[j * BAFU_Q_COUNT + BAFU_Q_COS], se = r.se[j * BAFU_Q_COUNT + BAFU_Q_COS];
    const double l = (double)(o[j].label > 0 ? o[j].label : 1);
    const double tol = 3 * se + A_WIDTH * l / (double)p.width;
    const double dev = fabs(mc - o[j].cos_theta);
    worst = fmax(worst, dev / tol);
    if (!model_K)
      ck_assert_msg(dev <= tol, "%s, layer %d: mc %.5f +- %.5f, theory %.5f, |diff| %.5f > %.5f", c->name,
                    o[j].label, mc, se, o[j].cos_theta, dev, tol);
  }
  printf("%s, width %zu, depth %zu%s%s: worst |mc - theory| / tolerance = %.2f\n", c->name, n, L,
         conditional ? " (conditional sampler)" : "", model_K ? ", theory of the one-layer model" : "", worst);
  free(o);
  bafu_mc_result_free(&r);
  return worst;
}

static void theory_vs_mc(const vcase *c, size_t n, size_t L, size_t seeds, int conditional) {
  theory_vs_mc_of(c, n, L, seeds, conditional, 0, 0);
}

START_TEST(test_theory_vs_mc) { theory_vs_mc(&cases[_i], 1024, 32, 24, 0); }
END_TEST

/* With biases, the same criterion (48 draws). */
START_TEST(test_theory_vs_mc_bias) { theory_vs_mc(&bias_cases[_i], 1024, 32, 48, 0); }
END_TEST

/* The same criterion deeper and wider with the conditional sampler
 * (theory/engine.md 7: exact draws of the same networks without weight
 * matrices, about 5 ms per draw here): width 4096, depth 128, 400 draws, so
 * se is about 5e-4 and the allowance 0.25 l/n at most 0.0078. Measured worst
 * ratios 0.72, 0.72, 0.10, 0.39. */
/* Normalised branches, the same criterion (48 draws of the conditional
 * sampler, the same law as stored weights). */
START_TEST(test_theory_vs_mc_norm) { theory_vs_mc(&norm_cases[_i], 1024, 32, 48, 1); }
END_TEST

/* Branches of K layers, the same criterion (48 draws of the conditional
 * sampler); for the ReLU cases (s = 2, where a one-layer block with K times
 * the hidden rate has the same forward variances, Jacobian mean and own-term
 * mean) the one-layer model must fail it: the spreads of the own term and of
 * the K-fold product are what it misses. */
START_TEST(test_theory_vs_mc_blocks) {
  const vcase *c = &block_cases[_i];
  theory_vs_mc(c, 1024, 32, 48, 1);
  if (c->act == BAFU_ACT_RELU) {
    const double worst = theory_vs_mc_of(c, 1024, 32, 48, 1, 1, (double)c->block_depth);
    ck_assert_msg(worst > 1, "%s: the one-layer model passes (worst ratio %.2f)", c->name, worst);
  }
}
END_TEST

START_TEST(test_theory_vs_mc_deep) { theory_vs_mc(&cases[_i], 4096, 128, 400, 1); }
END_TEST

/* The output-layer angle for a batch of 8 with the squared loss, from the
 * limiting NTK and the residual (bafu_output_angle), against the last row of
 * the Monte Carlo: within 3 combined standard errors plus 0.25 L/n. */
START_TEST(test_output_angle_batch) {
  bafu_net_params p = bafu_net_params_default();
  p.arch = _i ? BAFU_ARCH_RESNET : BAFU_ARCH_MLP;
  p.signal = BAFU_SIGNAL_MSE;
  p.batch = 8;
  p.width = 1024;
  p.depth = 8;
  double th, th_se;
  ck_assert_ok(bafu_output_angle(&p, 20000, 1, &th, &th_se));
  bafu_mc_result r;
  ck_assert_ok(bafu_mc_run(&p, 64, 7, NULL, 2, &r));
  const size_t j = (r.J - 1) * BAFU_Q_COUNT + BAFU_Q_COS;
  const double tol = 3 * sqrt(r.se[j] * r.se[j] + th_se * th_se) + A_WIDTH * 8.0 / 1024.0;
  printf("batch output angle, %s: mc %.4f +- %.4f, theory %.4f +- %.4f\n", _i ? "ResNet" : "MLP", r.mean[j], r.se[j],
         th, th_se);
  ck_assert_msg(fabs(r.mean[j] - th) <= tol, "mc %g theory %g tol %g", r.mean[j], th, tol);
  /* a wrong readout learning-rate weight changes the prediction by more than that */
  p.lr_output = 3;
  double th3, se3;
  ck_assert_ok(bafu_output_angle(&p, 20000, 1, &th3, &se3));
  ck_assert_msg(fabs(th3 - th) > tol, "lr_output changes the angle by only %g", fabs(th3 - th));
  bafu_mc_result_free(&r);
}
END_TEST

/* Empirical NTK of the readout: (i) exact identity D_top = <b_y, Theta_emp b_y>
 * with b_y = (y - t)/m, to 1e-12; (ii) relative Frobenius distance e to the
 * limiting NTK (bafu_kernel_run on the same inputs) at widths 256..2048, 16
 * draws each: NTK fluctuations are O(sqrt(L/n)) (Hanin and Nica), so the
 * least-squares slope of log(mean e) against log n is -1/2. Tolerance: 3
 * standard errors of the slope (from the per-width sample variances, delta
 * method) plus 0.1 for finite-width corrections (O(1/n) bias terms bend the
 * curve at n = 256). With 4 draws per width the ratio e(256)/e(2048) has a
 * standard deviation of 0.6 to 1.0 over seeds (100 seeds, both generators),
 * too noisy for a test; 16 draws give a slope standard error near 0.06.
 * (iii) The slope cannot see a systematic error of the limit, so the mean of
 * theta_emp - theta_lim over the 16 draws must also be within 4 standard errors
 * plus (L/n) |theta_lim| (the O(L/n) finite-width bias) in every entry at every
 * width; measured worst entries 1.2-3.2 se, and a 10% error of the limit would
 * exceed the bound at n = 2048 (4 se there is about 9% of an entry). */
START_TEST(test_empirical_ntk) {
  const size_t widths[4] = {256, 512, 1024, 2048}, m = 6, L = 6, draws = 16;
  double logn[4], loge[4], var_loge[4];
  static double dsum[4][36], dsq[4][36], lsum[4][36];
  memset(dsum, 0, sizeof dsum), memset(dsq, 0, sizeof dsq), memset(lsum, 0, sizeof lsum);
  for (int w = 0; w < 4; ++w) {
    bafu_net_params p = bafu_net_params_default();
    p.arch = _i ? BAFU_ARCH_RESNET : BAFU_ARCH_MLP;
    p.signal = BAFU_SIGNAL_MSE;
    p.batch = m;
    p.width = widths[w];
    p.depth = L;
    p.lr_input = 0.7;
    p.lr_output = 1.9;
    bafu_net *net;
    bafu_kernel *ker;
    ck_assert_ok(bafu_net_alloc(&p, &net));
    ck_assert_ok(bafu_kernel_alloc(&p, &ker));
    const size_t J = bafu_net_nlayers(net);
    double *work = malloc(J * p.width * m * sizeof *work), theta[36], q[64 * BAFU_Q_COUNT], e[16];
    for (uint64_t d = 0; d < draws; ++d) {
      ck_assert_ok(bafu_net_draw(net, 11, d));
      ck_assert_ok(bafu_net_run(net));
      bafu_net_measure(net, q);
      const double D = q[(J - 1) * BAFU_Q_COUNT + BAFU_Q_DECAY];
      ck_assert_ok(bafu_net_empirical_ntk(net, work, theta));
      /* b_y = (y - t)/m: recover it from the features after a fresh backward pass */
      ck_assert_ok(bafu_net_backward(net));
      const double *by = bafu_net_backward_signal(net, J - 1);
      double quad = 0;
      for (size_t a = 0; a < m; ++a)
        for (size_t b = 0; b < m; ++b) quad += by[a] * theta[a + b * m] * by[b];
      ck_assert_close(quad, D, 1e-12, 0);
      ck_assert_ok(bafu_kernel_run(ker, bafu_net_inputs(net)));
      const double *lim = bafu_kernel_theta(ker, bafu_kernel_nlayers(ker) - 1);
      double num = 0, den = 0;
      for (size_t k = 0; k < m * m; ++k) {
        num += (theta[k] - lim[k]) * (theta[k] - lim[k]);
        den += lim[k] * lim[k];
      }
      e[d] = sqrt(num / den);
      for (size_t k = 0; k < m * m; ++k) { /* entrywise theta - limit, for the bias check */
        dsum[w][k] += theta[k] - lim[k];
        dsq[w][k] += (theta[k] - lim[k]) * (theta[k] - lim[k]);
        lsum[w][k] += fabs(lim[k]);
      }
    }
    const double mean = gsl_stats_mean(e, 1, draws), sd = gsl_stats_sd_m(e, 1, draws, mean);
    logn[w] = log((double)widths[w]);
    loge[w] = log(mean);
    var_loge[w] = sd * sd / (double)draws / (mean * mean); /* delta method */
    free(work);
    bafu_kernel_free(ker);
    bafu_net_free(net);
  }
  double xbar = 0, sxx = 0, slope = 0, var_slope = 0;
  for (int w = 0; w < 4; ++w) xbar += logn[w] / 4;
  for (int w = 0; w < 4; ++w) sxx += (logn[w] - xbar) * (logn[w] - xbar);
  for (int w = 0; w < 4; ++w) {
    slope += (logn[w] - xbar) * loge[w] / sxx;
    var_slope += (logn[w] - xbar) * (logn[w] - xbar) * var_loge[w] / (sxx * sxx);
  }
  const double se = sqrt(var_slope);
  printf("empirical NTK, %s: relative Frobenius error %.4f %.4f %.4f %.4f at n = 256 512 1024 2048, slope %.3f (se %.3f)\n",
         _i ? "ResNet" : "MLP", exp(loge[0]), exp(loge[1]), exp(loge[2]), exp(loge[3]), slope, se);
  fflush(stdout);
  ck_assert_msg(fabs(slope + 0.5) < 3 * se + 0.1, "slope %g (se %g), expected -0.5", slope, se);
  for (int w = 0; w < 4; ++w) {
    double worst = 0, worst_rel = 0;
    for (size_t k = 0; k < m * m; ++k) {
      const double mean = dsum[w][k] / draws, var = (dsq[w][k] - draws * mean * mean) / (draws - 1);
      const double se_k = sqrt(fmax(var, 0) / draws), scale = lsum[w][k] / draws;
      worst = fmax(worst, fabs(mean) / se_k);
      worst_rel = fmax(worst_rel, fabs(mean) / scale);
      ck_assert_msg(fabs(mean) <= 4 * se_k + (double)L / (double)widths[w] * scale,
                    "n = %zu, entry %zu: mean theta - limit = %g, se %g, scale %g", widths[w], k, mean, se_k, scale);
    }
    printf("  n = %zu: bias of the mean empirical NTK, worst entry %.2f se, %.4f relative\n", widths[w], worst, worst_rel);
  }
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("validation");
  TCase *tc = tcase_create("theory_vs_mc");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_theory_vs_mc, 0, (int)(sizeof cases / sizeof cases[0]));
  tcase_add_loop_test(tc, test_theory_vs_mc_deep, 0, (int)(sizeof cases / sizeof cases[0]));
  tcase_add_loop_test(tc, test_theory_vs_mc_bias, 0, (int)(sizeof bias_cases / sizeof bias_cases[0]));
  tcase_add_loop_test(tc, test_theory_vs_mc_norm, 0, (int)(sizeof norm_cases / sizeof norm_cases[0]));
  tcase_add_loop_test(tc, test_output_angle_batch, 0, 2);
  tcase_add_loop_test(tc, test_empirical_ntk, 0, 2);
  suite_add_tcase(s, tc);
  TCase *tb = tcase_create("branches"); /* CK_RUN_CASE=branches runs these alone */
  tcase_set_timeout(tb, 300);
  tcase_add_loop_test(tb, test_theory_vs_mc_blocks, 0, (int)(sizeof block_cases / sizeof block_cases[0]));
  suite_add_tcase(s, tb);
  return s;
}

int main(void) { return bafu_run_suite(suite()); }
