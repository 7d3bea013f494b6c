/* test_net.c: the finite-width engine against finite differences, exact
 * identities and independent re-computations (theory/engine.md section 4). */
#define _DEFAULT_SOURCE /* setenv */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bafu/layout.h"
#include "bafu/mc.h"
#include "bafu/net.h"
#include "testutil.h"

/* A small network configuration per test case. */
typedef struct {
  bafu_arch arch;
  bafu_act act;
  size_t batch;
  bafu_signal signal;
  int embed;
  bafu_init init;
  double fnorm; /* forward-normalisation target (0: off); scales frozen after the first forward */
  double bias_var; /* biases with N(0, bias_var) entries (0: none) */
  bafu_branch_norm norm; /* ResNet: normalised branch inputs */
  size_t K;              /* ResNet: layers per branch */
} config;

static const config configs[] = {
    {BAFU_ARCH_MLP, BAFU_ACT_TANH, 1, BAFU_SIGNAL_PROBE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1},
    {BAFU_ARCH_MLP, BAFU_ACT_RELU, 3, BAFU_SIGNAL_MSE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1},
    {BAFU_ARCH_MLP, BAFU_ACT_ERF, 2, BAFU_SIGNAL_PROBE, 0, BAFU_INIT_ORTHOGONAL, 0, 0, 0, 1},
    {BAFU_ARCH_MLP, BAFU_ACT_LINEAR, 1, BAFU_SIGNAL_MSE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1},
    {BAFU_ARCH_MLP, BAFU_ACT_GELU, 2, BAFU_SIGNAL_MSE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1},
    {BAFU_ARCH_RESNET, BAFU_ACT_TANH, 1, BAFU_SIGNAL_PROBE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1},
    {BAFU_ARCH_RESNET, BAFU_ACT_RELU, 2, BAFU_SIGNAL_MSE, 1, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1},
    {BAFU_ARCH_RESNET, BAFU_ACT_SWISH, 3, BAFU_SIGNAL_PROBE, 1, BAFU_INIT_ORTHOGONAL, 0, 0, 0, 1},
    {BAFU_ARCH_RESNET, BAFU_ACT_ERF, 1, BAFU_SIGNAL_MSE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1},
    {BAFU_ARCH_MLP, BAFU_ACT_RELU, 3, BAFU_SIGNAL_XENT, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1},
    {BAFU_ARCH_MLP, BAFU_ACT_TANH, 2, BAFU_SIGNAL_XENT, 0, BAFU_INIT_GAUSSIAN, 0.7, 0, 0, 1},
    {BAFU_ARCH_RESNET, BAFU_ACT_GELU, 2, BAFU_SIGNAL_XENT, 1, BAFU_INIT_GAUSSIAN, 1.3, 0, 0, 1},
    {BAFU_ARCH_MLP, BAFU_ACT_SWISH, 1, BAFU_SIGNAL_PROBE, 0, BAFU_INIT_ORTHOGONAL, 0.45, 0, 0, 1},
    /* biases (theory/engine.md 1.3): MLP and ResNet, with and without embedding, every signal */
    {BAFU_ARCH_MLP, BAFU_ACT_TANH, 2, BAFU_SIGNAL_MSE, 0, BAFU_INIT_GAUSSIAN, 0, 0.3, 0, 1},
    {BAFU_ARCH_RESNET, BAFU_ACT_RELU, 1, BAFU_SIGNAL_PROBE, 1, BAFU_INIT_GAUSSIAN, 0, 0.5, 0, 1},
    {BAFU_ARCH_RESNET, BAFU_ACT_TANH, 3, BAFU_SIGNAL_XENT, 0, BAFU_INIT_GAUSSIAN, 0, 0.2, 0, 1},
    {BAFU_ARCH_MLP, BAFU_ACT_ERF, 1, BAFU_SIGNAL_PROBE, 0, BAFU_INIT_ORTHOGONAL, 0, 0.8, 0, 1},
    {BAFU_ARCH_RESNET, BAFU_ACT_GELU, 2, BAFU_SIGNAL_MSE, 0, BAFU_INIT_GAUSSIAN, 0, 0.4, 0, 1},
    /* normalised branches (theory/engine.md 1.4): every signal, with and without embedding and biases */
    {BAFU_ARCH_RESNET, BAFU_ACT_RELU, 2, BAFU_SIGNAL_PROBE, 0, BAFU_INIT_GAUSSIAN, 0, 0, BAFU_BRANCH_NORM_RMS, 1},
    {BAFU_ARCH_RESNET, BAFU_ACT_TANH, 3, BAFU_SIGNAL_MSE, 1, BAFU_INIT_GAUSSIAN, 0, 0, BAFU_BRANCH_NORM_RMS, 1},
    {BAFU_ARCH_RESNET, BAFU_ACT_GELU, 2, BAFU_SIGNAL_XENT, 1, BAFU_INIT_GAUSSIAN, 0, 0.3, BAFU_BRANCH_NORM_RMS, 1},
    {BAFU_ARCH_RESNET, BAFU_ACT_SWISH, 1, BAFU_SIGNAL_MSE, 0, BAFU_INIT_ORTHOGONAL, 0, 0, BAFU_BRANCH_NORM_RMS, 1},
    /* branches of K layers (theory/engine.md 1.5): every signal, with embedding, biases, normalised
       branches, orthogonal init and a forward-normalised embedding */
    {BAFU_ARCH_RESNET, BAFU_ACT_TANH, 2, BAFU_SIGNAL_MSE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 2},
    {BAFU_ARCH_RESNET, BAFU_ACT_RELU, 1, BAFU_SIGNAL_PROBE, 1, BAFU_INIT_GAUSSIAN, 0, 0.4, 0, 3},
    {BAFU_ARCH_RESNET, BAFU_ACT_GELU, 3, BAFU_SIGNAL_XENT, 1, BAFU_INIT_GAUSSIAN, 0, 0, BAFU_BRANCH_NORM_RMS, 2},
    {BAFU_ARCH_RESNET, BAFU_ACT_ERF, 2, BAFU_SIGNAL_PROBE, 0, BAFU_INIT_ORTHOGONAL, 0, 0.3, BAFU_BRANCH_NORM_RMS, 2},
    {BAFU_ARCH_RESNET, BAFU_ACT_SWISH, 2, BAFU_SIGNAL_XENT, 1, BAFU_INIT_GAUSSIAN, 0.9, 0, 0, 3},
};
#define NCONFIGS (int)(sizeof configs / sizeof configs[0])

/* Odd sizes and learning rates, distinct per group, so that a wrong
 * learning-rate weight or a transposed shape changes the numbers. */
static bafu_net_params small_params(const config *c, size_t width, size_t depth) {
  bafu_net_params p = bafu_net_params_default();
  p.arch = c->arch;
  p.act = c->act;
  p.batch = c->batch;
  p.signal = c->signal;
  p.embed = c->embed;
  p.init = c->init;
  p.width = width;
  p.depth = depth;
  p.input_dim = (c->arch == BAFU_ARCH_RESNET && !c->embed) ? width : width - 2;
  p.outputs = c->signal == BAFU_SIGNAL_XENT ? 3 : 2;
  p.sigma_w2 = 1.7;
  p.sigma2_input = 1.1; /* distinct gains per group: a mixed-up gain changes the numbers */
  p.sigma2_output = 0.6;
  p.branch_scale = 0.9;
  p.lr_input = 0.63;
  p.lr_hidden = 1.37;
  p.lr_output = 0.41;
  p.bias_var = c->bias_var;
  p.branch_norm = c->norm;
  p.block_depth = c->K;
  p.lr_bias = 0.77;
  p.lr_bias_input = 0.52; /* distinct per group too */
  p.lr_bias_output = 1.23;
  p.step = 1e-4;
  return p;
}

static bafu_net *make_net(const config *c, const bafu_net_params *p, uint64_t draw) {
  bafu_net *net;
  ck_assert_ok(bafu_net_alloc(p, &net));
  ck_assert_ok(bafu_net_draw(net, 12345, draw));
  if (c->fnorm > 0) { /* scales set by one forward pass, then held: the network is fixed */
    ck_assert_ok(bafu_net_set_forward_norm(net, c->fnorm, 0));
    ck_assert_ok(bafu_net_forward(net));
    ck_assert_ok(bafu_net_set_forward_norm(net, c->fnorm, 1));
  }
  ck_assert_ok(bafu_net_run(net));
  return net;
}

static double rel_diff(size_t count, const double *a, const double *b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < count; ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return sqrt(num / den);
}

/* The first-order loss decrease per unit step, -(F(h) - F(-h)) / 2h, from two
 * actual steps of size +-h (error O(h^2)). */
static double fd_decrease(bafu_net *net, double h) {
  ck_assert_ok(bafu_net_step(net, h));
  const double Fp = bafu_net_step_loss(net);
  ck_assert_ok(bafu_net_step(net, -h));
  const double Fm = bafu_net_step_loss(net);
  return -(Fp - Fm) / (2 * h);
}

/* max_e |(F(x_e + h) - F(x_e - h)) / 2h - g_e| over the n parameters x (each
 * restored), and *scale = max |g_e|. */
static double fd_grad_err(bafu_net *net, double *x, size_t n, const double *g, double h, double *scale) {
  double err = 0;
  *scale = 0;
  for (size_t e = 0; e < n; ++e) {
    const double x0 = x[e];
    x[e] = x0 + h;
    ck_assert_ok(bafu_net_forward(net));
    const double fp = bafu_net_loss(net);
    x[e] = x0 - h;
    ck_assert_ok(bafu_net_forward(net));
    const double fm = bafu_net_loss(net);
    x[e] = x0;
    err = fmax(err, fabs((fp - fm) / (2 * h) - g[e]));
    *scale = fmax(*scale, fabs(g[e]));
  }
  return err;
}

/* Gradients: every weight entry checked against a central difference of F,
 * h = 1e-6: truncation O(h^2 |F'''|) ~ 1e-12 and rounding ~ eps|F|/h ~ 1e-10
 * relative; tolerance 1e-6 leaves margin but catches any wrong factor. */
START_TEST(test_gradient_fd) {
  const config *c = &configs[_i];
  bafu_net_params p = small_params(c, 6, 3);
  bafu_net *net = make_net(c, &p, 1);
  const double h = 1e-6;
  for (size_t j = 0; j < bafu_net_nunits(net); ++j) { /* every unit (weight matrix) */
    const size_t rows = bafu_net_unit_fan_out(net, j), cols = bafu_net_unit_fan_in(net, j);
    double *g = malloc(rows * cols * sizeof *g);
    ck_assert_ok(bafu_net_forward(net)); /* undo the last perturbation's g_j */
    bafu_net_weight_grad(net, j, g);
    double scale, err = fd_grad_err(net, bafu_net_weight(net, j), rows * cols, g, h, &scale);
    ck_assert_msg(err <= 1e-6 * scale, "config %d layer %zu: max |fd - grad| = %g, max |grad| = %g", _i, j,
                  err, scale);
    double *cb = bafu_net_bias(net, j);
    ck_assert((cb != NULL) == (c->bias_var > 0));
    if (cb) { /* the bias gradient, entry by entry */
      ck_assert_ok(bafu_net_forward(net));
      bafu_net_bias_grad(net, j, g);
      err = fd_grad_err(net, cb, rows, g, h, &scale);
      ck_assert_msg(scale > 0 && err <= 1e-6 * scale, "config %d layer %zu: bias: max |fd - grad| = %g, max |grad| = %g",
                    _i, j, err, scale);
    }
    free(g);
  }
  bafu_net_free(net);
}
END_TEST

/* Tangent pass against a central difference of the stepped features:
 * (f(+h) - f(-h)) / 2h = df + O(h^2). */
START_TEST(test_tangent_fd) {
  const config *c = &configs[_i];
  bafu_net_params p = small_params(c, 7, 4);
  bafu_net *net = make_net(c, &p, 2);
  const size_t J = bafu_net_nlayers(net), m = p.batch;
  const double h = 1e-6;
  for (size_t j = 0; j < J; ++j) {
    const size_t cnt = bafu_net_layer_fan_out(net, j) * m;
    double *plus = malloc(cnt * sizeof *plus), *fd = malloc(cnt * sizeof *fd);
    ck_assert_ok(bafu_net_step(net, h));
    memcpy(plus, bafu_net_feature_stepped(net, j), cnt * sizeof *plus);
    ck_assert_ok(bafu_net_step(net, -h));
    const double *minus = bafu_net_feature_stepped(net, j);
    for (size_t i = 0; i < cnt; ++i) fd[i] = (plus[i] - minus[i]) / (2 * h);
    const double r = rel_diff(cnt, fd, bafu_net_feature_tangent(net, j));
    ck_assert_msg(r < 1e-6, "config %d layer %zu: |fd - df| / |df| = %g", _i, j, r);
    free(plus);
    free(fd);
  }
  bafu_net_free(net);
}
END_TEST

/* The actual step, computed without forming W', against an explicit update
 * W_j -= eta lr_j grad_j followed by a plain forward pass. */
START_TEST(test_step_explicit) {
  const config *c = &configs[_i];
  bafu_net_params p = small_params(c, 6, 3);
  bafu_net *net = make_net(c, &p, 3);
  const size_t J = bafu_net_nlayers(net), m = p.batch;
  const double eta = 0.037;
  ck_assert_ok(bafu_net_step(net, eta));
  size_t total = 0;
  for (size_t j = 0; j < J; ++j) total += bafu_net_layer_fan_out(net, j) * m;
  double *stepped = malloc(total * sizeof *stepped);
  size_t off = 0;
  for (size_t j = 0; j < J; ++j) {
    const size_t cnt = bafu_net_layer_fan_out(net, j) * m;
    memcpy(stepped + off, bafu_net_feature_stepped(net, j), cnt * sizeof(double));
    off += cnt;
  }
  /* gradients first (they use the unmodified backward pass), then update, unit by unit */
  const size_t U = bafu_net_nunits(net);
  double **grads = malloc(U * sizeof *grads);
  for (size_t j = 0; j < U; ++j) {
    const size_t sz = bafu_net_unit_fan_out(net, j) * bafu_net_unit_fan_in(net, j);
    grads[j] = malloc(sz * sizeof(double));
    bafu_net_weight_grad(net, j, grads[j]);
  }
  double **bgrads = calloc(U, sizeof *bgrads);
  for (size_t j = 0; j < U && c->bias_var > 0; ++j) {
    bgrads[j] = malloc(bafu_net_unit_fan_out(net, j) * sizeof(double));
    bafu_net_bias_grad(net, j, bgrads[j]);
  }
  for (size_t j = 0; j < U; ++j) {
    const size_t sz = bafu_net_unit_fan_out(net, j) * bafu_net_unit_fan_in(net, j), row = bafu_net_unit_layer(net, j);
    double *W = bafu_net_weight(net, j);
    const double lr = bafu_net_layer_lr(net, row); /* a layer's units share its rates */
    /* a residual block's weights enter as beta W; its gradient already has the beta */
    for (size_t e = 0; e < sz; ++e) W[e] -= eta * lr * grads[j][e];
    double *cb = bafu_net_bias(net, j);
    for (size_t e = 0; cb && e < bafu_net_unit_fan_out(net, j); ++e)
      cb[e] -= eta * bafu_net_layer_bias_lr(net, row) * bgrads[j][e];
    free(grads[j]);
    free(bgrads[j]);
  }
  free(grads);
  free(bgrads);
  ck_assert_ok(bafu_net_forward(net));
  off = 0;
  for (size_t j = 0; j < J; ++j) {
    const size_t cnt = bafu_net_layer_fan_out(net, j) * m;
    const double r = rel_diff(cnt, stepped + off, bafu_net_feature(net, j));
    ck_assert_msg(r < 1e-12, "config %d layer %zu: stepped vs explicit update: %g", _i, j, r);
    off += cnt;
  }
  free(stepped);
  bafu_net_free(net);
}
END_TEST

/* Actual step minus first-order prediction is O(eta^2): halving eta divides
 * it by 4 (ratio in [3.4, 4.6] at eta small enough that O(eta^3) is small). */
START_TEST(test_step_second_order) {
  const config *c = &configs[_i];
  bafu_net_params p = small_params(c, 8, 4);
  bafu_net *net = make_net(c, &p, 4);
  const size_t J = bafu_net_nlayers(net), m = p.batch;
  const size_t cnt = bafu_net_layer_fan_out(net, J - 1) * m;
  double dev[2];
  /* eta relative to the tangent scale: |eta df| = 1e-3 |f| */
  const double *df = bafu_net_feature_tangent(net, J - 1), *f = bafu_net_feature(net, J - 1);
  const double eta0 = 1e-3 * cblas_dnrm2((int)cnt, f, 1) / cblas_dnrm2((int)cnt, df, 1);
  for (int k = 0; k < 2; ++k) {
    const double eta = eta0 / (1 << k);
    ck_assert_ok(bafu_net_step(net, eta));
    const double *fs = bafu_net_feature_stepped(net, J - 1);
    double s = 0;
    for (size_t i = 0; i < cnt; ++i) {
      const double e = fs[i] - f[i] - eta * df[i];
      s += e * e;
    }
    dev[k] = sqrt(s);
  }
  const double ratio = dev[0] / dev[1];
  ck_assert_msg(ratio > 3.4 && ratio < 4.6, "config %d: deviation ratio %g (expected 4)", _i, ratio);
  bafu_net_free(net);
}
END_TEST

/* First-order loss decrease: (F(eta) - F(0)) / eta -> -D_J, with D_J the sum
 * of the contributions lr_k |grad_k|^2 (checks the learning-rate weights). */
START_TEST(test_loss_decay) {
  const config *c = &configs[_i];
  bafu_net_params p = small_params(c, 7, 3);
  bafu_net *net = make_net(c, &p, 5);
  const size_t J = bafu_net_nlayers(net);
  double *q = malloc(J * BAFU_Q_COUNT * sizeof *q);
  bafu_net_measure(net, q);
  const double D = q[(J - 1) * BAFU_Q_COUNT + BAFU_Q_DECAY];
  const double F0 = bafu_net_loss(net);
  const double h = 1e-6 * fabs(F0) / D;
  ck_assert_close(fd_decrease(net, h), D, 1e-6, 0);
  /* and the contributions, recomputed from the explicit gradients */
  double Dsum = 0;
  size_t u = 0;
  for (size_t j = 0; j < J; ++j) {
    double C = 0; /* the layer's units: a block of K layers has K */
    for (; u < bafu_net_nunits(net) && bafu_net_unit_layer(net, u) == j; ++u) {
      const size_t sz = bafu_net_unit_fan_out(net, u) * bafu_net_unit_fan_in(net, u);
      double *g = malloc(sz * sizeof *g);
      bafu_net_weight_grad(net, u, g);
      C += bafu_net_layer_lr(net, j) * cblas_ddot((int)sz, g, 1, g, 1);
      if (bafu_net_bias(net, u)) { /* + lr_b |grad_c|^2 */
        const size_t rows = bafu_net_unit_fan_out(net, u);
        bafu_net_bias_grad(net, u, g);
        C += bafu_net_layer_bias_lr(net, j) * cblas_ddot((int)rows, g, 1, g, 1);
      }
      free(g);
    }
    ck_assert_close(q[j * BAFU_Q_COUNT + BAFU_Q_CONTRIB], C, 1e-12, 0);
    Dsum += C;
    ck_assert_close(q[j * BAFU_Q_COUNT + BAFU_Q_DECAY], Dsum, 1e-12, 0);
  }
  ck_assert_uint_eq(u, bafu_net_nunits(net));
  free(q);
  bafu_net_free(net);
}
END_TEST

/* The feature speed identity <-b_l, df_l> = D_l, to 1e-10 relative, at a
 * moderate width and depth, for every configuration. */
START_TEST(test_identity) {
  const config *c = &configs[_i];
  bafu_net_params p = small_params(c, 64, 12);
  bafu_net *net = make_net(c, &p, 6);
  const size_t J = bafu_net_nlayers(net);
  double *q = malloc(J * BAFU_Q_COUNT * sizeof *q);
  bafu_net_measure(net, q);
  for (size_t j = 0; j < J; ++j) {
    const double *r = q + j * BAFU_Q_COUNT;
    ck_assert_msg(r[BAFU_Q_IDRES] < 1e-10, "config %d layer %zu: identity residual %g", _i, j, r[BAFU_Q_IDRES]);
    /* the derived quantities are consistent with their definitions */
    ck_assert_close(r[BAFU_Q_BAFU], r[BAFU_Q_SPEED] * r[BAFU_Q_COS], 1e-10, 0);
    ck_assert(r[BAFU_Q_COS] > 0 && r[BAFU_Q_COS] <= 1 + 1e-12);
  }
  free(q);
  bafu_net_free(net);
}
END_TEST

/* Branches of K layers (net.h block_depth): the forward pass and the actual
 * step at eta = 0 against the block's definition recomputed from the stored
 * weights and biases, f_l = f_{l-1} + beta (W_K phi(h_{K-1}) + c_K),
 * h_1 = W_1 phi(u) + c_1, h_k = W_k phi(h_{k-1}) + c_k, u = f_{l-1} (or
 * f_{l-1} / |f_{l-1}|_rms), f_0 = x without an embedding: the first unit of
 * the first block reads phi(x) like every other block's first unit. ResNet
 * without embedding, K = 2 and 3, relu and tanh, width 7, batch 2, depth 2;
 * _i: bit 0 biases, bit 1 normalised branches, bit 2 K = 3 and tanh. */
START_TEST(test_block_forward_explicit) {
  bafu_net_params p = bafu_net_params_default();
  const size_t n = 7, m = 2, K = _i & 4 ? 3 : 2;
  p.arch = BAFU_ARCH_RESNET;
  p.act = _i & 4 ? BAFU_ACT_TANH : BAFU_ACT_RELU;
  p.block_depth = K;
  p.width = n;
  p.depth = 2;
  p.batch = m;
  p.branch_scale = 1.3;
  p.sigma_w2 = 1.7;
  if (_i & 1) p.bias_var = 0.3;
  if (_i & 2) p.branch_norm = BAFU_BRANCH_NORM_RMS;
  bafu_net *net;
  ck_assert_ok(bafu_net_alloc(&p, &net));
  ck_assert_ok(bafu_net_draw(net, 11, 3));
  ck_assert_ok(bafu_net_forward(net));
  ck_assert_ok(bafu_net_backward(net));
  ck_assert_ok(bafu_net_step(net, 0));
  ck_assert_uint_eq(bafu_net_nunits(net), 2 * K);
  const double beta = bafu_net_beta(&p);
  double f[14], z[14], h[14];
  memcpy(f, bafu_net_inputs(net), n * m * sizeof(double));
  for (size_t l = 0; l < 2; ++l) {
    for (size_t a = 0; a < m; ++a) {
      double r = 1;
      if (p.branch_norm) {
        r = 0;
        for (size_t i = 0; i < n; ++i) r += f[i + a * n] * f[i + a * n];
        r = sqrt(r / (double)n);
      }
      for (size_t i = 0; i < n; ++i) z[i + a * n] = f[i + a * n] / r;
    }
    for (size_t k = 0; k < K; ++k) {
      const size_t u = l * K + k;
      ck_assert_uint_eq(bafu_net_unit_layer(net, u), l);
      const double *W = bafu_net_weight(net, u), *c = bafu_net_bias(net, u);
      for (size_t a = 0; a < m; ++a)
        for (size_t i = 0; i < n; ++i) {
          double v = c ? c[i] : 0;
          for (size_t q = 0; q < n; ++q) {
            const double x = z[q + a * n];
            v += W[i + q * n] * (p.act == BAFU_ACT_RELU ? fmax(x, 0) : tanh(x));
          }
          h[i + a * n] = v;
        }
      memcpy(z, h, sizeof h);
    }
    for (size_t i = 0; i < n * m; ++i) f[i] += beta * z[i];
    ck_assert_msg(rel_diff(n * m, f, bafu_net_feature(net, l)) < 1e-13, "case %d block %zu: forward %g", _i, l + 1,
                  rel_diff(n * m, f, bafu_net_feature(net, l)));
    ck_assert_msg(rel_diff(n * m, f, bafu_net_feature_stepped(net, l)) < 1e-13, "case %d block %zu: step %g", _i,
                  l + 1, rel_diff(n * m, f, bafu_net_feature_stepped(net, l)));
  }
  bafu_net_free(net);
}
END_TEST

/* Orthogonal init: W^T W = s max(1, r/c) I (tall) or W W^T = s I (wide), as a
 * scaled residual; Gaussian init: entry variance s / fan_in within 5 sigma. */
START_TEST(test_init) {
  bafu_net_params p = bafu_net_params_default();
  p.width = 40;
  p.input_dim = 25;
  p.depth = 2;
  p.sigma_w2 = 1.3;
  p.init = BAFU_INIT_ORTHOGONAL;
  bafu_net *net;
  ck_assert_ok(bafu_net_alloc(&p, &net));
  ck_assert_ok(bafu_net_draw(net, 7, 0));
  for (size_t j = 0; j < 2; ++j) {
    const size_t r = bafu_net_layer_fan_out(net, j), c = bafu_net_layer_fan_in(net, j);
    const double *W = bafu_net_weight(net, j);
    const size_t k = r >= c ? c : r;
    double *G = malloc(k * k * sizeof *G);
    if (r >= c)
      cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)c, (int)c, (int)r, 1.0, W, (int)r, W, (int)r, 0.0, G,
                  (int)c);
    else
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)r, (int)r, (int)c, 1.0, W, (int)r, W, (int)r, 0.0, G,
                  (int)r);
    const double target = p.sigma_w2 * fmax(1.0, (double)r / (double)c);
    double res = 0;
    for (size_t a = 0; a < k; ++a)
      for (size_t b = 0; b < k; ++b) res = fmax(res, fabs(G[a + b * k] - (a == b ? target : 0)));
    ck_assert_msg(res / (k * target * DBL_EPSILON) < 100, "layer %zu: scaled residual %g", j,
                  res / (k * target * DBL_EPSILON));
    free(G);
  }
  bafu_net_free(net);
  p.init = BAFU_INIT_GAUSSIAN;
  p.width = 300;
  p.input_dim = 0;
  ck_assert_ok(bafu_net_alloc(&p, &net));
  ck_assert_ok(bafu_net_draw(net, 7, 0));
  const double *W = bafu_net_weight(net, 1);
  const size_t N = 300 * 300;
  double s2 = 0;
  for (size_t e = 0; e < N; ++e) s2 += W[e] * W[e];
  const double var = s2 / N, want = p.sigma_w2 / 300;
  /* sd of the sample variance of N Gaussians: want * sqrt(2/N) */
  ck_assert_msg(fabs(var - want) < 5 * want * sqrt(2.0 / N), "variance %g vs %g", var, want);
  bafu_net_free(net);
}
END_TEST

/* Same (seed, draw): identical numbers; different seeds or draws: different.
 * The MC result does not depend on the number of threads. */
START_TEST(test_reproducible) {
  config c = {BAFU_ARCH_RESNET, BAFU_ACT_RELU, 2, BAFU_SIGNAL_PROBE, 1, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1};
  bafu_net_params p = small_params(&c, 32, 5);
  bafu_mc_result a, b, d, e;
  ck_assert_ok(bafu_mc_run(&p, 5, 99, NULL, 1, &a));
  ck_assert_ok(bafu_mc_run(&p, 5, 99, NULL, 3, &b));
  ck_assert_ok(bafu_mc_run(&p, 5, 100, NULL, 1, &d));
  const size_t n = a.seeds * a.J * BAFU_Q_COUNT;
  ck_assert_int_eq(memcmp(a.raw, b.raw, n * sizeof(double)), 0);
  /* every random quantity differs (cos = 1 of the embedding layer and zero
   * identity residuals can coincide exactly, so those are not compared) */
  const bafu_quantity random_q[] = {BAFU_Q_BNORM, BAFU_Q_SPEED, BAFU_Q_DECAY, BAFU_Q_FRMS, BAFU_Q_STEP};
  size_t same = 0, compared = 0;
  for (size_t i = 0; i < n; i += BAFU_Q_COUNT)
    for (size_t k = 0; k < sizeof random_q / sizeof random_q[0]; ++k, ++compared)
      same += a.raw[i + random_q[k]] == d.raw[i + random_q[k]];
  ck_assert_msg(same == 0, "%zu of %zu values equal across seeds 99 and 100", same, compared);
  /* draws within a run differ too */
  ck_assert(a.raw[0] != a.raw[a.J * BAFU_Q_COUNT]);
  /* the standard error is the sample sd over sqrt(seeds) */
  double mean = 0, ss = 0;
  for (size_t i = 0; i < 5; ++i) mean += a.raw[i * a.J * BAFU_Q_COUNT + BAFU_Q_COS] / 5;
  for (size_t i = 0; i < 5; ++i) {
    const double v = a.raw[i * a.J * BAFU_Q_COUNT + BAFU_Q_COS] - mean;
    ss += v * v;
  }
  ck_assert_close(a.mean[BAFU_Q_COS], mean, 1e-13, 0);
  ck_assert_close(a.se[BAFU_Q_COS], sqrt(ss / 4) / sqrt(5.0), 1e-12, 0);
  ck_assert_ok(bafu_mc_run(&p, 2, 99, NULL, 1, &e)); /* a prefix of the same stream */
  ck_assert_int_eq(memcmp(a.raw, e.raw, 2 * a.J * BAFU_Q_COUNT * sizeof(double)), 0);
  bafu_mc_result_free(&a);
  bafu_mc_result_free(&b);
  bafu_mc_result_free(&d);
  bafu_mc_result_free(&e);
}
END_TEST

/* Regenerated weights (fast generator, one stored weight matrix) give results
 * bit-identical to stored weights, for Gaussian and orthogonal init, and need
 * far less memory: width 4096, depth 1024 fits (estimate) only when regenerated. */
START_TEST(test_regenerate) {
  for (int init = 0; init < 2; ++init) {
    config c = {BAFU_ARCH_RESNET, BAFU_ACT_TANH, 2, BAFU_SIGNAL_MSE, 1,
                init ? BAFU_INIT_ORTHOGONAL : BAFU_INIT_GAUSSIAN, 0, 0, 0, 1};
    bafu_net_params p = small_params(&c, 24, 6);
    p.rng = BAFU_RNG_FAST;
    bafu_mc_result a, b;
    ck_assert_ok(bafu_mc_run(&p, 3, 5, NULL, 1, &a));
    p.regenerate = 1;
    ck_assert_ok(bafu_mc_run(&p, 3, 5, NULL, 2, &b));
    ck_assert_int_eq(memcmp(a.raw, b.raw, 3 * a.J * BAFU_Q_COUNT * sizeof(double)), 0);
    for (size_t i = 0; i < 3 * a.J * BAFU_Q_COUNT; i += BAFU_Q_COUNT)
      ck_assert(a.raw[i + BAFU_Q_IDRES] < 1e-10);
    bafu_mc_result_free(&a);
    bafu_mc_result_free(&b);
  }
  bafu_net_params p = bafu_net_params_default();
  p.width = 4096;
  p.depth = 1024;
  const size_t stored = bafu_net_memory_bytes(&p);
  p.rng = BAFU_RNG_FAST;
  p.regenerate = 1;
  const size_t regen = bafu_net_memory_bytes(&p);
  ck_assert_msg(stored > ((size_t)100 << 30) && regen < ((size_t)1 << 30), "stored %zu regenerated %zu", stored, regen);
  p.rng = BAFU_RNG_GSL;
  ck_assert_int_eq(bafu_net_params_check(&p), BAFU_EINVAL);
}
END_TEST

/* A network of 64 MiB or more lives in mapped memory marked for huge pages
 * (net.c block_alloc), a smaller one in calloc'ed memory. Stored weights at
 * width 2100, depth 2 (two 34 MiB matrices) take the first path, regenerated
 * weights (one matrix) the second; their draws must agree bit for bit, as
 * in test_regenerate (a mapping shorter than the layout fails this). */
START_TEST(test_mapped_memory) {
  config c = {BAFU_ARCH_MLP, BAFU_ACT_RELU, 1, BAFU_SIGNAL_MSE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1};
  bafu_net_params p = small_params(&c, 2100, 2);
  p.rng = BAFU_RNG_FAST;
  p.bias_var = 0.3;
  ck_assert_uint_ge(bafu_net_memory_bytes(&p), (size_t)64 << 20);
  bafu_mc_result a, b;
  ck_assert_ok(bafu_mc_run(&p, 2, 5, NULL, 1, &a));
  p.regenerate = 1;
  ck_assert_uint_lt(bafu_net_memory_bytes(&p), (size_t)64 << 20);
  ck_assert_ok(bafu_mc_run(&p, 2, 5, NULL, 1, &b));
  ck_assert_int_eq(memcmp(a.raw, b.raw, 2 * a.J * BAFU_Q_COUNT * sizeof(double)), 0);
  for (size_t i = 0; i < 2 * a.J * BAFU_Q_COUNT; i += BAFU_Q_COUNT) ck_assert(a.raw[i + BAFU_Q_IDRES] < 1e-10);
  bafu_mc_result_free(&a);
  bafu_mc_result_free(&b);
}
END_TEST

/* With the fast generator and Gaussian init the weights are generated on
 * first use (W_of). Fetching them before the run changes nothing, bit for bit,
 * and a new draw must replace them (a stale-weight bug would keep the old
 * ones). That lazily generated weights equal per-layer substreams is checked
 * by test_regenerate. */
START_TEST(test_lazy_weights) {
  config c = {BAFU_ARCH_MLP, BAFU_ACT_RELU, 2, BAFU_SIGNAL_PROBE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1};
  bafu_net_params p = small_params(&c, 20, 5);
  p.rng = BAFU_RNG_FAST;
  bafu_net *a, *b;
  ck_assert_ok(bafu_net_alloc(&p, &a));
  ck_assert_ok(bafu_net_alloc(&p, &b));
  ck_assert_ok(bafu_net_draw(a, 9, 2));
  ck_assert_ok(bafu_net_run(a));
  ck_assert_ok(bafu_net_draw(b, 9, 2));
  const size_t J = bafu_net_nlayers(b);
  for (size_t j = J; j-- > 0;) (void)bafu_net_weight(b, j);
  ck_assert_ok(bafu_net_run(b));
  for (size_t j = 0; j < J; ++j) {
    const size_t cnt = bafu_net_layer_fan_out(a, j) * bafu_net_layer_fan_in(a, j);
    ck_assert_int_eq(memcmp(bafu_net_weight(a, j), bafu_net_weight(b, j), cnt * sizeof(double)), 0);
    ck_assert_int_eq(memcmp(bafu_net_feature_tangent(a, j), bafu_net_feature_tangent(b, j),
                            bafu_net_layer_fan_out(a, j) * 2 * sizeof(double)), 0);
  }
  /* a new draw replaces every layer's weights */
  double *w0 = malloc(bafu_net_layer_fan_out(a, J - 1) * bafu_net_layer_fan_in(a, J - 1) * sizeof(double));
  const size_t cnt = bafu_net_layer_fan_out(a, J - 1) * bafu_net_layer_fan_in(a, J - 1);
  memcpy(w0, bafu_net_weight(a, J - 1), cnt * sizeof(double));
  ck_assert_ok(bafu_net_draw(a, 9, 3));
  ck_assert(memcmp(w0, bafu_net_weight(a, J - 1), cnt * sizeof(double)) != 0);
  free(w0);
  bafu_net_free(a);
  bafu_net_free(b);
}
END_TEST

/* Error paths of the library: invalid parameters and the memory refusal. */
START_TEST(test_errors) {
  bafu_net *net = NULL;
  bafu_net_params p = bafu_net_params_default();
  p.width = 0;
  ck_assert_int_eq(bafu_net_alloc(&p, &net), BAFU_EINVAL);
  ck_assert_ptr_null(net);
  p = bafu_net_params_default();
  p.sigma_w2 = NAN;
  ck_assert_int_eq(bafu_net_alloc(&p, &net), BAFU_EINVAL);
  p = bafu_net_params_default();
  p.arch = BAFU_ARCH_RESNET;
  p.input_dim = 10;
  ck_assert_int_eq(bafu_net_alloc(&p, &net), BAFU_EINVAL);
  ck_assert(strstr(bafu_last_error(), "input_dim: ") != NULL);
  p = bafu_net_params_default();
  p.width = (size_t)1 << 30;
  ck_assert_int_eq(bafu_net_alloc(&p, &net), BAFU_ELIMIT);
  ck_assert(strstr(bafu_last_error(), "GiB") != NULL);
  ck_assert(strstr(bafu_last_error(), "80% of physical memory") != NULL);
  p.width = (size_t)1 << 62; /* the estimate saturates instead of overflowing */
  ck_assert_int_eq(bafu_net_alloc(&p, &net), BAFU_ELIMIT);
  setenv("BAFU_MEMORY_LIMIT_MB", "1", 1);
  p = bafu_net_params_default();
  ck_assert_int_eq(bafu_net_alloc(&p, &net), BAFU_ELIMIT);
  ck_assert(strstr(bafu_last_error(), "(BAFU_MEMORY_LIMIT_MB)") != NULL);
  /* below a GiB in MiB, the need printed with the digits that tell it from the limit */
  ck_assert_int_eq(bafu_memory_check(1048576.0 * 1.00002, "x"), BAFU_ELIMIT);
  ck_assert_msg(strstr(bafu_last_error(), "about 1.00002 MiB needed, more than the limit of 1 MiB") != NULL, "%s",
                bafu_last_error());
  /* malformed values are refused (naming the variable and the value), not ignored;
     the limit itself then falls back to the physical-memory default */
  static const char *const malformed[] = {"-1", "100MB", "1e2", " 100", "100 ", "0", "+5", "0x10",
                                          "99999999999999999999999"};
  for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; ++i) {
    setenv("BAFU_MEMORY_LIMIT_MB", malformed[i], 1);
    ck_assert_int_eq(bafu_memory_limit_check(), BAFU_EINVAL);
    ck_assert_int_eq(bafu_memory_check(1e6, "a small request"), BAFU_EINVAL);
    ck_assert(strstr(bafu_last_error(), "BAFU_MEMORY_LIMIT_MB") != NULL);
    ck_assert_uint_lt(bafu_memory_limit_bytes(), (size_t)1 << 50);
  }
  setenv("BAFU_MEMORY_LIMIT_MB", "", 1); /* empty: unset */
  ck_assert_ok(bafu_memory_limit_check());
  ck_assert_ok(bafu_memory_check(1e6, "a small request"));
  setenv("BAFU_MEMORY_LIMIT_MB", "100", 1);
  ck_assert_ok(bafu_memory_limit_check());
  ck_assert_uint_eq(bafu_memory_limit_bytes(), (size_t)100 << 20);
  ck_assert_int_eq(bafu_memory_check(NAN, "an undefined estimate"), BAFU_ELIMIT);
  unsetenv("BAFU_MEMORY_LIMIT_MB");
  ck_assert_str_eq(bafu_status_string(BAFU_ELIMIT), "over the memory limit");
  bafu_mc_result r;
  ck_assert_int_eq(bafu_mc_run(&p, 1, 1, NULL, 1, &r), BAFU_EINVAL);
}
END_TEST

/* The input table reader: layout, comments, and malformed files. */
START_TEST(test_read_inputs) {
  char path[] = "/tmp/bafu_inputs_XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  FILE *f = fdopen(fd, "w");
  fprintf(f, "# two samples of dimension 3\n1.5 -2 3e-1\n\n4 5 6 # trailing comment\n");
  fclose(f);
  double *x;
  size_t d, m;
  ck_assert_ok(bafu_read_inputs(path, &x, &d, &m));
  ck_assert_uint_eq(d, 3);
  ck_assert_uint_eq(m, 2);
  ck_assert(x[0] == 1.5 && x[1] == -2 && x[2] == 0.3 && x[3] == 4 && x[5] == 6);
  free(x);
  f = fopen(path, "w");
  fprintf(f, "1 2 3\n4 5\n");
  fclose(f);
  ck_assert_int_eq(bafu_read_inputs(path, &x, &d, &m), BAFU_EPARSE);
  /* a library function given a path: the message starts with it */
  char want[64];
  snprintf(want, sizeof want, "'%s' line 2: 2 numbers, expected 3", path);
  ck_assert_str_eq(bafu_last_error(), want);
  f = fopen(path, "w");
  fprintf(f, "1 2 nan\n");
  fclose(f);
  ck_assert_int_eq(bafu_read_inputs(path, &x, &d, &m), BAFU_EPARSE);
  f = fopen(path, "w");
  fprintf(f, "# nothing\n");
  fclose(f);
  ck_assert_int_eq(bafu_read_inputs(path, &x, &d, &m), BAFU_EPARSE);
  unlink(path);
  ck_assert_int_eq(bafu_read_inputs("/nonexistent/inputs.txt", &x, &d, &m), BAFU_EIO);
}
END_TEST


/* The in-place update (theory/engine.md 6.1): after W_j -= eta lr_j s_j b_j g_j^T
 * a plain forward pass gives the stepped features of the step pass. */
START_TEST(test_update_matches_step) {
  const config *c = &configs[_i];
  bafu_net_params p = small_params(c, 6, 3);
  bafu_net *net = make_net(c, &p, 7);
  const size_t J = bafu_net_nlayers(net), m = p.batch;
  const double eta = 0.053;
  ck_assert_ok(bafu_net_step(net, eta));
  double *want[16];
  for (size_t j = 0; j < J; ++j) {
    const size_t cnt = bafu_net_layer_fan_out(net, j) * m;
    want[j] = malloc(cnt * sizeof(double));
    memcpy(want[j], bafu_net_feature_stepped(net, j), cnt * sizeof(double));
  }
  ck_assert_ok(bafu_net_update(net, eta));
  ck_assert_ok(bafu_net_forward(net));
  for (size_t j = 0; j < J; ++j) {
    const size_t cnt = bafu_net_layer_fan_out(net, j) * m;
    const double r = rel_diff(cnt, bafu_net_feature(net, j), want[j]);
    ck_assert_msg(r < 1e-12, "config %d layer %zu: updated forward vs step pass: %g", _i, j, r);
    free(want[j]);
  }
  bafu_net_free(net);
}
END_TEST

/* Forward normalisation (6.4): |f_j|_rms = target for every plain layer but
 * the readout, in an unfrozen forward pass; frozen scales stay put. */
START_TEST(test_forward_norm) {
  config c = {BAFU_ARCH_MLP, BAFU_ACT_RELU, 3, BAFU_SIGNAL_XENT, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1};
  bafu_net_params p = small_params(&c, 20, 4);
  bafu_net *net;
  ck_assert_ok(bafu_net_alloc(&p, &net));
  ck_assert_ok(bafu_net_draw(net, 3, 0));
  ck_assert_ok(bafu_net_set_forward_norm(net, 0.8, 0));
  ck_assert_ok(bafu_net_forward(net));
  const size_t J = bafu_net_nlayers(net);
  for (size_t j = 0; j + 1 < J; ++j) {
    const size_t cnt = bafu_net_layer_fan_out(net, j) * p.batch;
    ck_assert_close(cblas_dnrm2((int)cnt, bafu_net_feature(net, j), 1) / sqrt((double)cnt), 0.8, 1e-12, 0);
  }
  ck_assert(bafu_net_layer_scale(net, J - 1) == 1.0); /* the readout is not normalised */
  const double a1 = bafu_net_layer_scale(net, 1);
  ck_assert(a1 != 1.0);
  ck_assert_ok(bafu_net_set_forward_norm(net, 0.8, 1));
  ck_assert_ok(bafu_net_run(net));
  ck_assert_ok(bafu_net_update(net, 0.5));
  ck_assert_ok(bafu_net_forward(net));
  ck_assert(bafu_net_layer_scale(net, 1) == a1); /* frozen */
  ck_assert_ok(bafu_net_set_forward_norm(net, 0, 0));
  ck_assert(bafu_net_layer_scale(net, 1) == 1.0);
  ck_assert_int_eq(bafu_net_set_forward_norm(net, -1, 0), BAFU_EINVAL);
  bafu_net_free(net);
}
END_TEST

/* Backward normalisation (6.5): the stored hidden signals have norm r; the
 * measurements use the true backward vectors, so the identity holds and |b_j|
 * is the unnormalised network's; each reported C_k is the first-order loss
 * decrease of updating layer k alone (central difference with the other
 * layers' rates at 0); the control of 6.3 reaches its targets through the
 * rescaling. */
START_TEST(test_backward_norm) {
  config c = {BAFU_ARCH_MLP, BAFU_ACT_TANH, 2, BAFU_SIGNAL_MSE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1};
  bafu_net_params p = small_params(&c, 24, 5);
  bafu_net *net;
  ck_assert_ok(bafu_net_alloc(&p, &net));
  ck_assert_ok(bafu_net_draw(net, 4, 0));
  ck_assert_ok(bafu_net_set_backward_norm(net, 0.37));
  ck_assert_ok(bafu_net_run(net));
  const size_t J = bafu_net_nlayers(net), m = p.batch;
  for (size_t j = 0; j + 1 < J; ++j) {
    const size_t cnt = bafu_net_layer_fan_out(net, j) * m;
    ck_assert_close(cblas_dnrm2((int)cnt, bafu_net_backward_signal(net, j), 1), 0.37, 1e-12, 0);
  }
  double *q = malloc(J * BAFU_Q_COUNT * sizeof *q);
  bafu_net_measure(net, q);
  for (size_t j = 0; j < J; ++j)
    ck_assert_msg(q[j * BAFU_Q_COUNT + BAFU_Q_IDRES] < 1e-10, "layer %zu: identity residual %g", j,
                  q[j * BAFU_Q_COUNT + BAFU_Q_IDRES]);
  bafu_net *ref;
  ck_assert_ok(bafu_net_alloc(&p, &ref));
  ck_assert_ok(bafu_net_draw(ref, 4, 0));
  ck_assert_ok(bafu_net_run(ref));
  double *qr = malloc(J * BAFU_Q_COUNT * sizeof *qr);
  bafu_net_measure(ref, qr);
  for (size_t j = 0; j < J; ++j)
    ck_assert_close(q[j * BAFU_Q_COUNT + BAFU_Q_BNORM], qr[j * BAFU_Q_COUNT + BAFU_Q_BNORM], 1e-12, 0);
  const double F0 = bafu_net_loss(net);
  for (size_t k = 0; k < J; ++k) {
    double lr[16];
    for (size_t j = 0; j < J; ++j) lr[j] = bafu_net_layer_lr(net, j);
    const double Ck = q[k * BAFU_Q_COUNT + BAFU_Q_CONTRIB];
    for (size_t j = 0; j < J; ++j)
      if (j != k) bafu_net_set_layer_lr(net, j, 0);
    const double h = 1e-6 * fabs(F0) / Ck;
    ck_assert_close(fd_decrease(net, h), Ck, 1e-6, 0);
    for (size_t j = 0; j < J; ++j) bafu_net_set_layer_lr(net, j, lr[j]);
  }
  double total = 0;
  for (size_t j = 0; j < J; ++j) {
    ck_assert_ok(bafu_net_set_layer_contribution(net, j, 0.01 * (double)(j + 1)));
    total += 0.01 * (double)(j + 1);
  }
  ck_assert_ok(bafu_net_tangent(net));
  bafu_net_measure(net, q);
  for (size_t j = 0; j < J; ++j)
    ck_assert_close(q[j * BAFU_Q_COUNT + BAFU_Q_CONTRIB], 0.01 * (double)(j + 1), 1e-8, 0);
  const double h = 1e-6 * fabs(F0) / total;
  ck_assert_close(fd_decrease(net, h), total, 1e-6, 0);
  free(q);
  free(qr);
  bafu_net_free(ref);
  bafu_net_free(net);
}
END_TEST

/* Control (6.3): lr_j = C*_j / |grad_j|^2 gives contributions C*_j, checked
 * against the explicitly formed gradients, and a first-order loss decrease of
 * sum_j C*_j (central difference of the actual step). */
START_TEST(test_control_targets) {
  const config *c = &configs[_i];
  bafu_net_params p = small_params(c, 9, 4);
  bafu_net *net = make_net(c, &p, 8);
  const size_t J = bafu_net_nlayers(net);
  double total = 0;
  for (size_t j = 0; j < J; ++j) {
    const double target = 0.003 * (double)(j + 2);
    ck_assert_ok(bafu_net_set_layer_contribution(net, j, target));
    double got = 0; /* over the layer's units, at the layer's rates */
    for (size_t u = 0; u < bafu_net_nunits(net); ++u) {
      if (bafu_net_unit_layer(net, u) != j) continue;
      const size_t sz = bafu_net_unit_fan_out(net, u) * bafu_net_unit_fan_in(net, u);
      double *g = malloc(sz * sizeof *g);
      bafu_net_weight_grad(net, u, g);
      got += bafu_net_layer_lr(net, j) * cblas_ddot((int)sz, g, 1, g, 1);
      if (bafu_net_bias(net, u)) { /* both rates, in the network's own ratio */
        const size_t rows = bafu_net_unit_fan_out(net, u);
        double *gb = malloc(rows * sizeof *gb);
        bafu_net_bias_grad(net, u, gb);
        got += bafu_net_layer_bias_lr(net, j) * cblas_ddot((int)rows, gb, 1, gb, 1);
        const bafu_stage *st;
        bafu_layout_entry(bafu_net_layout(net), j, &st, NULL);
        ck_assert_close(bafu_net_layer_bias_lr(net, j) / bafu_net_layer_lr(net, j), st->lr_bias / st->lr, 1e-14, 0);
        free(gb);
      }
      free(g);
    }
    ck_assert_close(got, target, 1e-8, 0);
    total += target;
  }
  ck_assert_ok(bafu_net_tangent(net));
  double *q = malloc(J * BAFU_Q_COUNT * sizeof *q);
  bafu_net_measure(net, q);
  ck_assert_close(q[(J - 1) * BAFU_Q_COUNT + BAFU_Q_DECAY], total, 1e-8, 0);
  for (size_t j = 0; j < J; ++j) ck_assert(q[j * BAFU_Q_COUNT + BAFU_Q_IDRES] < 1e-10);
  const double h = 1e-6 * fabs(bafu_net_loss(net)) / total;
  ck_assert_close(fd_decrease(net, h), total, 1e-6, 0);
  free(q);
  bafu_net_free(net);
}
END_TEST

/* Sensitivity (6.6): |df_l|_rms / D_top, with D_top the whole step's decay
 * (the last layer's, not layer l's). */
START_TEST(test_sensitivity) {
  const config *c = &configs[_i];
  bafu_net_params p = small_params(c, 10, 3);
  bafu_net *net = make_net(c, &p, 9);
  const size_t J = bafu_net_nlayers(net);
  double *q = malloc(J * BAFU_Q_COUNT * sizeof *q);
  bafu_net_measure(net, q);
  const double Dtop = q[(J - 1) * BAFU_Q_COUNT + BAFU_Q_DECAY];
  for (size_t j = 0; j < J; ++j) {
    const size_t cnt = bafu_net_layer_fan_out(net, j) * p.batch;
    const double speed = cblas_dnrm2((int)cnt, bafu_net_feature_tangent(net, j), 1);
    ck_assert_close(q[j * BAFU_Q_COUNT + BAFU_Q_SENS], speed / sqrt((double)cnt) / Dtop, 1e-12, 0);
  }
  free(q);
  bafu_net_free(net);
}
END_TEST

/* One-hot inputs and cross-entropy targets: exactly one 1 per column, the
 * rest 0, indices varying across samples; the top signal softmax(y) - t sums
 * to 0 with one negative entry (the target's). */
START_TEST(test_onehot_draws) {
  config c = {BAFU_ARCH_MLP, BAFU_ACT_RELU, 64, BAFU_SIGNAL_XENT, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1};
  for (int rng = 0; rng < 2; ++rng) {
    bafu_net_params p = small_params(&c, 16, 2);
    p.inputs = BAFU_INPUTS_ONEHOT;
    p.rng = rng ? BAFU_RNG_FAST : BAFU_RNG_GSL;
    bafu_net *net;
    ck_assert_ok(bafu_net_alloc(&p, &net));
    ck_assert_ok(bafu_net_draw(net, 5, 0));
    const size_t d = p.input_dim, m = p.batch;
    const double *x = bafu_net_inputs(net);
    int seen[64] = {0};
    for (size_t a = 0; a < m; ++a) {
      size_t ones = 0, at = 0;
      for (size_t i = 0; i < d; ++i) {
        ck_assert(x[a * d + i] == 0.0 || x[a * d + i] == 1.0);
        if (x[a * d + i] == 1.0) ++ones, at = i;
      }
      ck_assert_uint_eq(ones, 1);
      seen[at] = 1;
    }
    int distinct = 0;
    for (size_t i = 0; i < d; ++i) distinct += seen[i];
    ck_assert_int_ge(distinct, 8); /* 64 uniform draws over 14 indices miss > 6 with prob < 1e-10 */
    ck_assert_ok(bafu_net_forward(net));
    ck_assert_ok(bafu_net_backward(net));
    const double *b = bafu_net_backward_signal(net, bafu_net_nlayers(net) - 1);
    for (size_t a = 0; a < m; ++a) {
      double sum = 0;
      int neg = 0;
      for (size_t i = 0; i < p.outputs; ++i) sum += b[a * p.outputs + i], neg += b[a * p.outputs + i] < 0;
      ck_assert(fabs(sum) < 1e-15);
      ck_assert_int_eq(neg, 1);
    }
    bafu_net_free(net);
  }
}
END_TEST

/* A readout wider than the network (k > n): the workspace is sized for it
 * (this aborted before), and the identity holds. */
START_TEST(test_wide_readout) {
  config c = {BAFU_ARCH_MLP, BAFU_ACT_RELU, 2, BAFU_SIGNAL_XENT, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1};
  bafu_net_params p = small_params(&c, 4, 2);
  p.outputs = 13;
  bafu_net *net = make_net(&c, &p, 10);
  const size_t J = bafu_net_nlayers(net);
  double *q = malloc(J * BAFU_Q_COUNT * sizeof *q);
  bafu_net_measure(net, q);
  for (size_t j = 0; j < J; ++j) ck_assert(q[j * BAFU_Q_COUNT + BAFU_Q_IDRES] < 1e-10);
  ck_assert_ok(bafu_net_update(net, 0.1));
  free(q);
  bafu_net_free(net);
}
END_TEST

/* --conditional (theory/engine.md 7): the feature speed identity
 * <-b_l, df_l> = D_l needs <b, W u> = <W^T b, u> between the tangent's and the
 * backward pass's products, so it holds to rounding only if the sampled
 * answers are mutually consistent; every Gaussian-init configuration. */
START_TEST(test_conditional_identity) {
  const config *c = &configs[_i];
  if (c->init != BAFU_INIT_GAUSSIAN) return;
  for (int rng = 0; rng < 2; ++rng) {
    bafu_net_params p = small_params(c, 64, 12);
    p.conditional = 1;
    p.rng = rng ? BAFU_RNG_FAST : BAFU_RNG_GSL;
    bafu_net *net = make_net(c, &p, 6);
    ck_assert_ptr_null(bafu_net_weight(net, 0));
    const size_t J = bafu_net_nlayers(net);
    double *q = malloc(J * BAFU_Q_COUNT * sizeof *q);
    bafu_net_measure(net, q);
    for (size_t j = 0; j < J; ++j) {
      const double *r = q + j * BAFU_Q_COUNT;
      ck_assert_msg(r[BAFU_Q_IDRES] < 1e-10, "config %d rng %d layer %zu: identity residual %g", _i, rng, j,
                    r[BAFU_Q_IDRES]);
      ck_assert(r[BAFU_Q_COS] > 0 && r[BAFU_Q_COS] <= 1 + 1e-12);
    }
    free(q);
    bafu_net_free(net);
  }
}
END_TEST

/* --conditional with larger batches (each pass's products answered as one
 * block, theory/engine.md 7.3): the feature speed identity to 1e-10 at every
 * layer, for an MLP and a ResNet, both generators, at batch 8 (3m = width:
 * forward, tangent and step fill the right side) and 16 (the right side is
 * full after the forward pass and half the tangent's block, so the rest is
 * answered from its span), and the step's deviation from the tangent is of
 * the step's order (eta = 1e-4), as with stored weights. */
START_TEST(test_conditional_batch) {
  static const int which[] = {1, 5};
  const config *c = &configs[which[_i]];
  for (size_t batch = 8; batch <= 16; batch += 8)
    for (int rng = 0; rng < 2; ++rng) {
      config cb = *c;
      cb.batch = batch;
      bafu_net_params p = small_params(&cb, 24, 5);
      p.conditional = 1;
      p.rng = rng ? BAFU_RNG_FAST : BAFU_RNG_GSL;
      bafu_net *net = make_net(&cb, &p, 4);
      const size_t J = bafu_net_nlayers(net);
      double *q = malloc(J * BAFU_Q_COUNT * sizeof *q);
      bafu_net_measure(net, q);
      for (size_t j = 0; j < J; ++j) {
        const double *r = q + j * BAFU_Q_COUNT;
        ck_assert_msg(r[BAFU_Q_IDRES] < 1e-10, "config %d batch %zu rng %d layer %zu: identity residual %g",
                      which[_i], batch, rng, j, r[BAFU_Q_IDRES]);
        ck_assert_msg(r[BAFU_Q_STEP_DEV] < 1e-2, "config %d batch %zu rng %d layer %zu: step deviation %g",
                      which[_i], batch, rng, j, r[BAFU_Q_STEP_DEV]);
      }
      free(q);
      bafu_net_free(net);
    }
}
END_TEST

/* The actual step with --conditional (at batch > 1 it starts from the forward
 * pass's f, theory/engine.md 7.3): eta = 0 reproduces f at every layer to
 * rounding (biases, skips and scales counted once), and f' - f - eta df is
 * O(eta^2) (halving eta divides it by 4, ratio in [3.4, 4.6]; two nets with
 * the same draw, one step each, so the sampler's capacity holds); every
 * Gaussian-init configuration. */
START_TEST(test_conditional_step) {
  const config *c = &configs[_i];
  if (c->init != BAFU_INIT_GAUSSIAN) return;
  bafu_net_params p = small_params(c, 8, 4);
  p.conditional = 1;
  p.step = 0;
  double dev[2];
  bafu_net *net = make_net(c, &p, 4);
  ck_assert_ok(bafu_net_step(net, 0.0));
  for (size_t j = 0; j < bafu_net_nlayers(net); ++j) {
    const size_t cnt = bafu_net_layer_fan_out(net, j) * p.batch;
    const double *f = bafu_net_feature(net, j), *fs = bafu_net_feature_stepped(net, j);
    for (size_t i = 0; i < cnt; ++i)
      ck_assert_msg(fabs(fs[i] - f[i]) <= 1e-13 * (fabs(f[i]) + 1), "config %d layer %zu: f' %.17g, f %.17g", _i, j,
                    fs[i], f[i]);
  }
  bafu_net_free(net);
  for (int k = 0; k < 2; ++k) {
    net = make_net(c, &p, 4);
    const size_t J = bafu_net_nlayers(net), m = p.batch;
    const size_t cnt = bafu_net_layer_fan_out(net, J - 1) * m;
    const double *df = bafu_net_feature_tangent(net, J - 1), *f = bafu_net_feature(net, J - 1);
    const double eta = 1e-3 * cblas_dnrm2((int)cnt, f, 1) / cblas_dnrm2((int)cnt, df, 1) / (1 << k);
    ck_assert_ok(bafu_net_step(net, eta));
    const double *fs = bafu_net_feature_stepped(net, J - 1);
    double s = 0;
    for (size_t i = 0; i < cnt; ++i) s += (fs[i] - f[i] - eta * df[i]) * (fs[i] - f[i] - eta * df[i]);
    dev[k] = sqrt(s);
    bafu_net_free(net);
  }
  ck_assert_msg(dev[0] / dev[1] > 3.4 && dev[0] / dev[1] < 4.6, "config %d: deviation ratio %g (expected 4)", _i,
                dev[0] / dev[1]);
}
END_TEST

/* --conditional draws from the law of the stored-weight network: the Monte
 * Carlo means of both engines, 4000 draws each at width 10, depth 3 (so 3m
 * directions are a large part of every layer; with batch 3 and 2 or 3
 * outputs the backward pass fills the readout's left side, so its later
 * products take the determined path), agree within 4 combined standard errors for every layer and column.
 * Both are exact draws of one law, so there is no finite-width allowance.
 * Not compared: the identity residual and the step's relative deviation
 * from the tangent on the first layer, which are rounding (1e-12 to 1e-16),
 * and the step's deviation elsewhere (a second-order ratio with heavy
 * tails). */
START_TEST(test_conditional_law) {
  /* MLP relu mse m = 3, MLP gelu mse m = 2, ResNet tanh probe, ResNet relu embed mse, MLP relu xent m = 3 */
  static const int which[] = {1, 4, 5, 6, 9};
  const config *c = &configs[which[_i]];
  bafu_net_params p = small_params(c, 10, 3);
  bafu_mc_result a, b;
  ck_assert_ok(bafu_mc_run(&p, 4000, 77, NULL, 1, &a));
  p.conditional = 1;
  ck_assert_ok(bafu_mc_run(&p, 4000, 78, NULL, 2, &b));
  for (size_t j = 0; j < a.J; ++j)
    for (int k = 0; k < BAFU_Q_COUNT; ++k) {
      if (k == BAFU_Q_IDRES || k == BAFU_Q_STEP_DEV) continue;
      const size_t i = j * BAFU_Q_COUNT + (size_t)k;
      const double se = hypot(a.se[i], b.se[i]);
      ck_assert_msg(fabs(a.mean[i] - b.mean[i]) <= 4 * se + 1e-12 * fabs(a.mean[i]),
                    "config %d layer %zu %s: stored %.6g, conditional %.6g (combined se %.3g)", which[_i], j,
                    bafu_quantity_name((bafu_quantity)k), a.mean[i], b.mean[i], se);
    }
  bafu_mc_result_free(&a);
  bafu_mc_result_free(&b);
}
END_TEST

/* A small step with --conditional: the stepped features differ from the
 * answered directions (forward and tangent) only at O(eta^2), so the step's
 * deviation from the tangent (step_rel_dev, about 1e-7 here) is what a
 * dropped small component would bias (it did, by 10 se at eta = 1e-6, before
 * the step pass queried W (g' - g)). Stored against conditional, tanh MLP
 * width 32, depth 4, eta = 1e-7, 2000 draws each: the step columns of layers
 * 2-4 within 4 combined standard errors (layer 1's deviation is rounding). */
START_TEST(test_conditional_small_step) {
  config c = {BAFU_ARCH_MLP, BAFU_ACT_TANH, 1, BAFU_SIGNAL_PROBE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1};
  bafu_net_params p = small_params(&c, 32, 4);
  p.step = 1e-7;
  bafu_mc_result a, b;
  ck_assert_ok(bafu_mc_run(&p, 2000, 5, NULL, 2, &a));
  p.conditional = 1;
  ck_assert_ok(bafu_mc_run(&p, 2000, 6, NULL, 2, &b));
  static const bafu_quantity cols[] = {BAFU_Q_STEP, BAFU_Q_STEP_COS, BAFU_Q_STEP_DEV};
  for (size_t j = 1; j < a.J; ++j)
    for (size_t k = 0; k < 3; ++k) {
      const size_t i = j * BAFU_Q_COUNT + cols[k];
      const double se = hypot(a.se[i], b.se[i]);
      ck_assert_msg(fabs(a.mean[i] - b.mean[i]) <= 4 * se, "layer %zu %s: stored %.6g, conditional %.6g (se %.3g)", j,
                    bafu_quantity_name(cols[k]), a.mean[i], b.mean[i], se);
    }
  bafu_mc_result_free(&a);
  bafu_mc_result_free(&b);
}
END_TEST

/* The sampler's numbers are independent of the probe (their own stream): the
 * first layer's features f_1 = W_1 x are uncorrelated with the probe b_L, so
 * the mean of cos(f_1, b_L) over 4000 draws is 0 within 4 standard errors,
 * for both generators. (Drawing the sampler's noise from the probe's stream
 * makes f_1 parallel to the probe: cos = 1.) */
START_TEST(test_conditional_own_stream) {
  config c = {BAFU_ARCH_MLP, BAFU_ACT_TANH, 1, BAFU_SIGNAL_PROBE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1};
  for (int rng = 0; rng < 2; ++rng) {
    bafu_net_params p = small_params(&c, 10, 3);
    p.input_dim = 10;
    p.conditional = 1;
    p.rng = rng ? BAFU_RNG_FAST : BAFU_RNG_GSL;
    bafu_net *net;
    ck_assert_ok(bafu_net_alloc(&p, &net));
    const size_t N = 4000, n = 10, J = bafu_net_nlayers(net);
    double s1 = 0, s2 = 0;
    for (size_t d = 0; d < N; ++d) {
      ck_assert_ok(bafu_net_draw(net, 3, d));
      ck_assert_ok(bafu_net_run(net));
      const double *f = bafu_net_feature(net, 0), *b = bafu_net_backward_signal(net, J - 1);
      const double cs = cblas_ddot((int)n, f, 1, b, 1) / (cblas_dnrm2((int)n, f, 1) * cblas_dnrm2((int)n, b, 1));
      s1 += cs;
      s2 += cs * cs;
    }
    const double mean = s1 / N, se = sqrt((s2 / N - mean * mean) / (N - 1));
    ck_assert_msg(fabs(mean) <= 4 * se, "rng %d: mean cos(f_1, probe) = %g, se %g", rng, mean, se);
    bafu_net_free(net);
  }
}
END_TEST

/* What --conditional refuses, its memory, and its capacity per draw. */
/* Degenerate draws (theory/engine.md 3.5): each cause is provoked and named;
 * the excluded draws are exactly those bafu_net_check_draw flags, and the
 * statistics are those of the kept draws, recomputed here draw by draw. */
/* bafu_mc_deviation (theory/engine.md 3.6): on a constructed result whose
 * draws are known, rms and its standard error equal the formulas; on a run,
 * the rms of the last layer's angle equals a direct sum over the raw draws. */
START_TEST(test_mc_deviation) {
  const double xs[4] = {0.5, 0.7, 0.4, 0.8}, ref = 0.6; /* e = -0.1, 0.1, -0.2, 0.2 */
  double raw[4 * BAFU_Q_COUNT] = {0};
  for (int d = 0; d < 4; ++d) raw[d * BAFU_Q_COUNT + BAFU_Q_COS] = xs[d];
  bafu_mc_result fake = {.J = 1, .seeds = 4, .raw = raw};
  double rms, se;
  bafu_mc_deviation(&fake, 0, BAFU_Q_COS, ref, &rms, &se);
  const double m = (0.01 + 0.01 + 0.04 + 0.04) / 4, m4 = (1e-4 + 1e-4 + 16e-4 + 16e-4) / 4;
  ck_assert_double_eq_tol(rms, sqrt(m), 1e-15);
  ck_assert_double_eq_tol(se, sqrt((m4 - m * m) / 4) / (2 * sqrt(m)), 1e-15);
  bafu_net_params p = bafu_net_params_default();
  p.width = 32, p.depth = 4;
  bafu_mc_result r;
  ck_assert_ok(bafu_mc_run(&p, 6, 7, NULL, 1, &r));
  const size_t j = r.J - 1;
  double direct = 0;
  for (size_t d = 0; d < r.seeds; ++d) {
    const double e = r.raw[(d * r.J + j) * BAFU_Q_COUNT + BAFU_Q_COS] - 0.5;
    direct += e * e / (double)r.seeds;
  }
  bafu_mc_deviation(&r, j, BAFU_Q_COS, 0.5, &rms, &se);
  ck_assert_double_eq_tol(rms, sqrt(direct), 1e-14);
  ck_assert(se > 0 && isfinite(se));
  bafu_mc_result_free(&r);
}
END_TEST

START_TEST(test_degenerate_draws) {
  bafu_net_params p = bafu_net_params_default();
  p.width = 8;
  p.depth = 8;
  const size_t S = 64, J = 8, Q = BAFU_Q_COUNT;
  bafu_mc_result r;
  ck_assert_ok(bafu_mc_run(&p, S, 1, NULL, 2, &r));
  ck_assert_uint_ge(r.excluded, 1); /* about L 2^-n = 3% of draws have a dead layer */
  ck_assert_uint_eq(r.excluded_by[BAFU_DRAW_DEAD], r.excluded);
  ck_assert_uint_eq(r.seeds + r.excluded, S);
  ck_assert(strstr(r.note, "no active unit") != NULL);
  /* the same draws one by one */
  bafu_net *net;
  ck_assert_ok(bafu_net_alloc(&p, &net));
  double *q = malloc(J * Q * sizeof *q), sum = 0, sum2 = 0;
  size_t kept = 0, dead = 0;
  for (size_t i = 0; i < S; ++i) {
    ck_assert_ok(bafu_net_draw(net, 1, i));
    ck_assert_ok(bafu_net_run(net));
    bafu_net_measure(net, q);
    int label = -1;
    const bafu_draw_status c = bafu_net_check_draw(net, q, &label);
    if (c != BAFU_DRAW_OK) {
      ck_assert_int_eq(c, BAFU_DRAW_DEAD);
      ck_assert(label >= 1 && label <= 8);
      ++dead;
      continue;
    }
    for (size_t j = 0; j < J; ++j)
      for (size_t k = 0; k < Q; ++k) ck_assert_msg(isfinite(q[j * Q + k]), "draw %zu kept with a non-finite value", i);
    const double v = q[(J - 1) * Q + BAFU_Q_COS];
    sum += v, sum2 += v * v, ++kept;
  }
  ck_assert_uint_eq(dead, r.excluded);
  const double mean = sum / (double)kept, se = sqrt((sum2 - kept * mean * mean) / (double)(kept - 1) / (double)kept);
  ck_assert_close(r.mean[(J - 1) * Q + BAFU_Q_COS], mean, 1e-12, 0);
  ck_assert_close(r.se[(J - 1) * Q + BAFU_Q_COS], se, 1e-9, 0);
  free(q);
  bafu_net_free(net);
  bafu_mc_result_free(&r);
  /* width 1: most draws die; conditional sampler too */
  p.width = 1;
  p.depth = 3;
  ck_assert_ok(bafu_mc_run(&p, 40, 1, NULL, 1, &r));
  ck_assert_uint_gt(r.excluded, 10);
  ck_assert_uint_eq(r.excluded_by[BAFU_DRAW_DEAD], r.excluded);
  bafu_mc_result_free(&r);
  p.width = 2;
  p.depth = 6;
  p.conditional = 1;
  ck_assert_ok(bafu_mc_run(&p, 64, 1, NULL, 1, &r));
  ck_assert_uint_gt(r.excluded, 0);
  for (size_t k = 0; k < r.J * Q; ++k) ck_assert(isfinite(r.mean[k]) && isfinite(r.se[k]));
  bafu_mc_result_free(&r);
  /* every draw degenerate: an error naming the cause */
  p = bafu_net_params_default();
  p.width = 16;
  p.depth = 4;
  p.sigma_w2 = 1e-300;
  ck_assert_int_eq(bafu_mc_run(&p, 8, 1, NULL, 1, &r), BAFU_ENUMERIC);
  ck_assert(strstr(bafu_last_error(), "vanish") && strstr(bafu_last_error(), "8 of 8"));
  p.sigma_w2 = 2;
  p.step = 1e-17;
  ck_assert_int_eq(bafu_mc_run(&p, 8, 1, NULL, 1, &r), BAFU_ENUMERIC);
  ck_assert(strstr(bafu_last_error(), "below rounding") != NULL);
  /* a healthy network: nothing excluded, no note */
  p.step = 1e-5;
  p.width = 64;
  ck_assert_ok(bafu_mc_run(&p, 8, 1, NULL, 1, &r));
  ck_assert_uint_eq(r.excluded, 0);
  ck_assert_str_eq(r.note, "");
  bafu_mc_result_free(&r);
}
END_TEST

START_TEST(test_conditional_limits) {
  bafu_net_params p = bafu_net_params_default();
  bafu_net *net = NULL;
  p.conditional = 1;
  p.init = BAFU_INIT_ORTHOGONAL;
  ck_assert_int_eq(bafu_net_alloc(&p, &net), BAFU_EINVAL);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "conditional: "));
  p.init = BAFU_INIT_GAUSSIAN;
  p.regenerate = 1;
  ck_assert_int_eq(bafu_net_alloc(&p, &net), BAFU_EINVAL);
  p.regenerate = 0;
  p.width = 4096;
  p.depth = 1024;
  ck_assert_uint_lt(bafu_net_memory_bytes(&p), (size_t)1 << 30); /* 137 GiB stored */
  /* batch 1: forward, tangent and step use the 3 right directions; a second
   * step with another eta needs a 4th and is refused, not answered wrongly
   * (tanh: with ReLU the stepped features are polynomial in eta for small
   * steps, and a second step can stay in the span answered) */
  config c = {BAFU_ARCH_MLP, BAFU_ACT_TANH, 1, BAFU_SIGNAL_PROBE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1};
  p = small_params(&c, 16, 3);
  p.conditional = 1;
  net = make_net(&c, &p, 1);
  ck_assert_int_eq(bafu_net_update(net, 0.1), BAFU_EINVAL);
  ck_assert_int_eq(bafu_net_step(net, 2e-4), BAFU_ELIMIT);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "conditional sampler"));
  ck_assert_ok(bafu_net_step(net, 1e-4)); /* the same step again: no new direction */
  bafu_net_free(net);
  /* a readout wider than width x batch (its answers have more rows than the
   * hidden layers): the identity still holds */
  config w = {BAFU_ARCH_MLP, BAFU_ACT_RELU, 1, BAFU_SIGNAL_MSE, 0, BAFU_INIT_GAUSSIAN, 0, 0, 0, 1};
  p = small_params(&w, 4, 2);
  p.outputs = 10;
  p.conditional = 1;
  net = make_net(&w, &p, 2);
  double q[8 * BAFU_Q_COUNT];
  ck_assert_uint_le(bafu_net_nlayers(net), 8);
  bafu_net_measure(net, q);
  for (size_t j = 0; j < bafu_net_nlayers(net); ++j)
    ck_assert_msg(q[j * BAFU_Q_COUNT + BAFU_Q_IDRES] < 1e-10, "layer %zu: identity residual %g", j,
                  q[j * BAFU_Q_COUNT + BAFU_Q_IDRES]);
  bafu_net_free(net);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("net");
  TCase *tc = tcase_create("passes");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_gradient_fd, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_tangent_fd, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_step_explicit, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_step_second_order, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_loss_decay, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_identity, 0, NCONFIGS);
  tcase_add_test(tc, test_mapped_memory);
  tcase_add_loop_test(tc, test_update_matches_step, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_control_targets, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_sensitivity, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_conditional_identity, 0, NCONFIGS);
  tcase_add_loop_test(tc, test_conditional_law, 0, 5);
  tcase_add_loop_test(tc, test_conditional_batch, 0, 2);
  tcase_add_loop_test(tc, test_conditional_step, 0, NCONFIGS);
  suite_add_tcase(s, tc);
  TCase *tm = tcase_create("misc");
  tcase_set_timeout(tm, 120);
  tcase_add_test(tm, test_init);
  tcase_add_test(tm, test_mc_deviation);
  tcase_add_loop_test(tm, test_block_forward_explicit, 0, 8);
  tcase_add_test(tm, test_reproducible);
  tcase_add_test(tm, test_errors);
  tcase_add_test(tm, test_regenerate);
  tcase_add_test(tm, test_lazy_weights);
  tcase_add_test(tm, test_read_inputs);
  tcase_add_test(tm, test_forward_norm);
  tcase_add_test(tm, test_backward_norm);
  tcase_add_test(tm, test_onehot_draws);
  tcase_add_test(tm, test_wide_readout);
  tcase_add_test(tm, test_conditional_limits);
  tcase_add_test(tm, test_degenerate_draws);
  tcase_add_test(tm, test_conditional_small_step);
  tcase_add_test(tm, test_conditional_own_stream);
  suite_add_tcase(s, tm);
  return s;
}

int main(void) { return bafu_run_suite(suite()); }
