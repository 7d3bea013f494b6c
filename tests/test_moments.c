/* test_moments.c: the BFK moment recursion and its continuum limit against
 * closed forms, free-probability moments of explicit random matrices, and
 * the known depth asymptotics (theory/moments.md section 5). */
#include <cblas.h>
#include <gsl/gsl_cdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/moments.h"
#include "bafu/rng.h"
#include "maskgrid.h"
#include "testutil.h"

static bafu_moments_layer *run(const bafu_net_params *p) {
  bafu_moments_layer *out = malloc(bafu_moments_nlayers(p) * sizeof *out);
  ck_assert_ok(bafu_moments_run(p, 0, out));
  return out;
}

/* ReLU MLP, Gaussian init, s = 2, all lr = 1, |x|^2 = d = n: c_l = n for every
 * layer, m1_l = l n and the variance v_l = m2 - m1^2 = n^2 (l-1) l (2l-1) / 3
 * (theory/moments.md 5.1). */
START_TEST(test_relu_mlp_closed_form) {
  bafu_net_params p = bafu_net_params_default();
  p.width = 300;
  p.depth = 37;
  bafu_moments_layer *o = run(&p);
  const double n = 300;
  for (size_t j = 0; j < p.depth; ++j) {
    const double l = (double)(j + 1);
    ck_assert_int_eq(o[j].label, (int)l);
    ck_assert_close(o[j].m1, l * n, 1e-14, 0);
    const double v = n * n * (l - 1) * l * (2 * l - 1) / 3;
    ck_assert_close(o[j].m2, l * l * n * n + v, 1e-13, 0);
    ck_assert_close(o[j].cos_theta, l / sqrt(l * l + (l - 1) * l * (2 * l - 1) / 3), 1e-13, 0);
    ck_assert_close(o[j].q, 2.0, 1e-14, 0);
  }
  free(o);
  /* deep: cos_l sqrt(l) -> sqrt(3/2) */
  p.depth = 100000;
  o = run(&p);
  const double l = 100000;
  ck_assert_close(o[p.depth - 1].cos_theta * sqrt(l), sqrt(1.5), 2e-5, 0);
  free(o);
}
END_TEST

/* Learning-rate weights and the input norm: the layer-1 term is lr_in |x|^2,
 * hidden terms lr_hid n E[phi^2]. Changing lr_hidden by a factor changes m1 of
 * layer l by exactly the hand-computed amount (linear MLP, s = 1.37). */
START_TEST(test_linear_mlp_lr) {
  bafu_net_params p = bafu_net_params_default();
  p.act = BAFU_ACT_LINEAR;
  p.width = 100;
  p.input_dim = 70;
  p.depth = 5;
  p.sigma_w2 = 1.37;
  p.lr_input = 0.3;
  p.lr_hidden = 2.1;
  bafu_moments_layer *o = malloc(5 * sizeof *o);
  const double x2 = 81.5;
  ck_assert_ok(bafu_moments_run(&p, x2, o));
  /* q_1 = s x2/d; layer l >= 2: q_l = s q_{l-1}; c_l = lr n q_{l-1}; m1_l = c_l + s m1_{l-1} */
  double q = 1.37 * x2 / 70, m1 = 0.3 * x2, v = 0;
  ck_assert_close(o[0].m1, m1, 1e-15, 0);
  for (int l = 2; l <= 5; ++l) {
    const double c = 2.1 * 100 * q;
    /* Gaussian linear: p1 = s, p2 = 2 s^2, so v' = s^2 v + s^2 m1^2 */
    v = 1.37 * 1.37 * v + 1.37 * 1.37 * m1 * m1;
    m1 = c + 1.37 * m1;
    q *= 1.37;
    ck_assert_close(o[l - 1].m1, m1, 1e-14, 0);
    ck_assert_close(o[l - 1].m2 - o[l - 1].m1 * o[l - 1].m1, v, 1e-12, 0);
    ck_assert_close(o[l - 1].q, q, 1e-14, 0);
  }
  free(o);
}
END_TEST

/* Dynamical isometry: a linear MLP with orthogonal weights has K_l a multiple
 * of I, so cos = 1 at every depth; ReLU with orthogonal weights still
 * degenerates (cos_l -> 0). */
START_TEST(test_orthogonal_isometry) {
  bafu_net_params p = bafu_net_params_default();
  p.act = BAFU_ACT_LINEAR;
  p.init = BAFU_INIT_ORTHOGONAL;
  p.sigma_w2 = 1.0;
  p.depth = 500;
  bafu_moments_layer *o = run(&p);
  for (size_t j = 0; j < p.depth; ++j) ck_assert_close(o[j].cos_theta, 1.0, 1e-12, 0);
  free(o);
  p.act = BAFU_ACT_RELU;
  p.sigma_w2 = 2.0;
  o = run(&p);
  ck_assert_msg(o[p.depth - 1].cos_theta < 0.1, "orthogonal relu cos at depth 500 = %g",
                o[p.depth - 1].cos_theta);
  /* orthogonal ReLU: p1 = 1, p2 - p1^2 = s^2 (E d^4 - (E d^2)^2) = 1, half the Gaussian spread:
   * v_l = sum_k m1_k^2, so cos_l -> sqrt(3 / l) */
  ck_assert_close(o[p.depth - 1].cos_theta * sqrt(500.0), sqrt(3.0), 5e-3, 0);
  free(o);
  /* Gaussian linear network degenerates too */
  p.act = BAFU_ACT_LINEAR;
  p.init = BAFU_INIT_GAUSSIAN;
  p.sigma_w2 = 1.0;
  o = run(&p);
  ck_assert(o[p.depth - 1].cos_theta < 0.1);
  free(o);
}
END_TEST

/* The free-probability inputs p1 = phi(A^T A), p2 = phi((A^T A)^2) for an MLP
 * layer A = W D against an explicit large random matrix: relative error of
 * normalised traces is O(1/n); with n = 1500 we allow 3%, several times the
 * fluctuation of a single draw (sd of tr/n is about 1/n here). */
START_TEST(test_layer_moments_matrix) {
  const int n = 1500;
  const double s = 1.7;
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  bafu_rng_seed(r, 5, 0);
  double *W = malloc((size_t)n * n * sizeof *W), *P = malloc((size_t)n * n * sizeof *P);
  double *d = malloc(n * sizeof *d);
  bafu_fill_gaussian(r, sqrt(s / n), (size_t)n * n, W);
  /* tanh masks at q = 0.8: d_i = tanh'(u_i), u_i ~ N(0, 0.8) */
  bafu_fill_gaussian(r, sqrt(0.8), (size_t)n, d);
  for (int i = 0; i < n; ++i) {
    const double t = tanh(d[i]);
    d[i] = 1 - t * t;
  }
  /* A^T A = D W^T W D; P = W D, then P^T P */
  for (int c = 0; c < n; ++c)
    for (int i = 0; i < n; ++i) P[i + (size_t)c * n] = W[i + (size_t)c * n] * d[c];
  double *M = W; /* reuse */
  cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, n, n, 1.0, P, n, 0.0, M, n);
  double tr = 0, tr2 = 0;
  for (int c = 0; c < n; ++c) {
    tr += M[c + (size_t)c * n];
    for (int i = 0; i <= c; ++i) tr2 += (i == c ? 1 : 2) * M[i + (size_t)c * n] * M[i + (size_t)c * n];
  }
  bafu_net_params p = bafu_net_params_default();
  p.act = BAFU_ACT_TANH;
  p.sigma_w2 = s;
  p.depth = 2;
  p.width = 10;
  p.input_dim = 10;
  bafu_moments_layer o[2];
  ck_assert_ok(bafu_moments_run(&p, 0.8 * 10 / s, o)); /* q_1 = s x2/d = 0.8 */
  ck_assert_close(o[1].q_in, 0.8, 1e-14, 0);
  ck_assert_close(tr / n, o[1].p1, 0.03, 0);
  ck_assert_close(tr2 / n, o[1].p2, 0.03, 0);
  free(W);
  free(P);
  free(d);
  gsl_rng_free(r);
}
END_TEST

/* A residual branch of K layers (theory/moments.md 2.10) against explicit
 * matrices: one block after an embedding, K_1 = C + A (c0 I) A^T with
 * A = I + beta W_K D_{K-1} ... W_1 D_0 and C = sum_k c_k J_k J_k^T,
 * c_k = lr beta^2 |phi(h_{k-1})|^2, at n = 1000, tanh, s = 1.3, beta = 0.9. The
 * masks are the theory's: d_k = tanh'(h_k) with h_k at the quantiles of
 * N(0, q_k), in independent random orders (so their moments are the Gaussian
 * ones to O(1/n) and the test checks the pairings, not the integrals). The
 * normalised traces of one draw have relative fluctuations O(1/n); we allow 1%
 * on m1 and on v = m2 - m1^2. Treating the branch as one layer with its own
 * term c I and the Jacobian's mean (no spread of the own term, a one-layer
 * spread for the product) misses v by 42% (K = 2) and 65% (K = 3). */
static void quantile_masks(gsl_rng *r, double q, int n, double *g, double *d) {
  for (int i = 0; i < n; ++i) {
    const double h = sqrt(q) * gsl_cdf_ugaussian_Pinv((i + 0.5) / n), t = tanh(h);
    g[i] = t;
    d[i] = 1 - t * t;
  }
  /* the same random order for g and d: shuffle indices */
  for (int i = n - 1; i > 0; --i) {
    const int j = (int)gsl_rng_uniform_int(r, (unsigned long)i + 1);
    double x = g[i];
    g[i] = g[j], g[j] = x;
    x = d[i];
    d[i] = d[j], d[j] = x;
  }
}

START_TEST(test_branch_matrix) {
  const int n = 1000, K = _i ? 3 : 2;
  const double s = 1.3, beta = 0.9, q0 = 0.8, lr = 1.0;
  bafu_net_params p = bafu_net_params_default();
  p.arch = BAFU_ARCH_RESNET;
  p.embed = 1;
  p.act = BAFU_ACT_TANH;
  p.sigma_w2 = s;
  p.branch_scale = beta; /* L = 1: beta = B */
  p.depth = 1;
  p.block_depth = (size_t)K;
  p.width = (size_t)n;
  p.input_dim = (size_t)n;
  bafu_moments_layer o[2];
  const double x2 = q0 * n / s; /* the embedding's output variance s x2 / d = q0 */
  ck_assert_ok(bafu_moments_run(&p, x2, o));
  const double c0 = p.lr_input * x2;
  ck_assert_close(o[0].m1, c0, 1e-15, 0);
  ck_assert_close(o[1].q_in, q0, 1e-14, 0);

  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  bafu_rng_seed(r, 17, (uint64_t)K);
  const size_t nn = (size_t)n * n;
  double *W = malloc(nn * sizeof *W), *P = malloc(nn * sizeof *P), *T = malloc(nn * sizeof *T);
  double *J = malloc(nn * sizeof *J), *Kl = malloc(nn * sizeof *Kl), *Wm = K == 3 ? malloc(nn * sizeof *Wm) : NULL;
  double *g = malloc((size_t)n * K * sizeof *g), *d = malloc((size_t)n * K * sizeof *d), c[3];
  /* masks and features: level 0 reads the stream (variance q0), level k the inner h_k */
  double q = q0;
  for (int k = 0; k < K; ++k) {
    quantile_masks(r, q, n, g + (size_t)k * n, d + (size_t)k * n);
    double g2 = 0;
    for (int i = 0; i < n; ++i) g2 += g[(size_t)k * n + i] * g[(size_t)k * n + i];
    c[k] = lr * beta * beta * g2; /* c_{k+1} = lr beta^2 |phi(h_k)|^2 */
    q = s * g2 / n;
  }
  /* P = W_K D_{K-1} ... W_1 D_0 and, from the top, J = J_k; C into Kl */
  memset(Kl, 0, nn * sizeof *Kl);
  for (int i = 0; i < n; ++i) Kl[i + (size_t)i * n] = c[K - 1]; /* J_K = I */
  for (int k = 0; k < K; ++k) {
    bafu_fill_gaussian(r, sqrt(s / n), nn, W); /* W_{k+1} */
    const double *dk = d + (size_t)k * n;
    if (k == 0) {
      for (int col = 0; col < n; ++col)
        for (int i = 0; i < n; ++i) P[i + (size_t)col * n] = W[i + (size_t)col * n] * dk[col];
    } else {
      for (int col = 0; col < n; ++col)
        for (int i = 0; i < n; ++i) T[i + (size_t)col * n] = dk[i] * P[i + (size_t)col * n];
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, W, n, T, n, 0.0, P, n);
    }
    /* J_k for k = K-1 .. 1 needs W_K first: kept for a second pass below */
    if (k == K - 1) memcpy(J, W, nn * sizeof *J);
    else if (k == K - 2 && Wm) memcpy(Wm, W, nn * sizeof *Wm); /* W_{K-1} (K = 3) */
  }
  /* J_{K-1} = W_K D_{K-1}; J_{K-2} = J_{K-1} W_{K-1} D_{K-2} (K = 3) */
  for (int col = 0; col < n; ++col)
    for (int i = 0; i < n; ++i) J[i + (size_t)col * n] *= d[(size_t)(K - 1) * n + col];
  cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, n, n, c[K - 2], J, n, 1.0, Kl, n);
  if (K == 3) {
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, J, n, Wm, n, 0.0, W, n);
    for (int col = 0; col < n; ++col)
      for (int i = 0; i < n; ++i) W[i + (size_t)col * n] *= d[n + col];
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, n, n, c[0], W, n, 1.0, Kl, n);
  }
  /* + c0 A A^T, A = I + beta P */
  for (size_t i = 0; i < nn; ++i) P[i] *= beta;
  for (int i = 0; i < n; ++i) P[i + (size_t)i * n] += 1;
  cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, n, n, c0, P, n, 1.0, Kl, n);
  double tr = 0, tr2 = 0;
  for (int col = 0; col < n; ++col) {
    tr += Kl[col + (size_t)col * n];
    for (int i = 0; i <= col; ++i) tr2 += (i == col ? 1 : 2) * Kl[i + (size_t)col * n] * Kl[i + (size_t)col * n];
  }
  const double m1 = tr / n, m2 = tr2 / n, v = m2 - m1 * m1, vt = o[1].m2 - o[1].m1 * o[1].m1;
  printf("branch of K = %d layers, n = %d: m1 %.6g (theory %.6g), v %.6g (theory %.6g), cos %.5f (theory %.5f)\n", K,
         n, m1, o[1].m1, v, vt, m1 / sqrt(m2), o[1].cos_spectral);
  ck_assert_close(m1, o[1].m1, 0.01, 0);
  ck_assert_close(v, vt, 0.01, 0);
  /* the one-layer model: K_1 = cbar I + A (c0 I) A^T with T = beta sqrt(pie) W D_0,
     phi(T^T T) = p1 - 1, phi((T^T T)^2) = (p1 - 1)^2 (1 + E[d^4] / E[d^2]^2) */
  bafu_act_moments am;
  ck_assert_ok(bafu_act_moments_eval(BAFU_ACT_TANH, q0, &am));
  const double t = o[1].p1 - 1, p2_one = 1 + 4 * t + t * t * (1 + am.dphi4 / (am.dphi2 * am.dphi2));
  const double v_one = c0 * c0 * (p2_one - o[1].p1 * o[1].p1);
  printf("  one-layer model: v %.6g (%.0f%% off)\n", v_one, 100 * fabs(v_one / v - 1));
  ck_assert(fabs(v_one - v) > 0.1 * v);
  free(W);
  free(P);
  free(T);
  free(J);
  free(Kl);
  free(Wm);
  free(g);
  free(d);
  gsl_rng_free(r);
}
END_TEST

/* Linear branches of K layers, the first block (no embedding, K_0 = 0): the
 * BFK is the own term C = sum_k c_k J_k J_k^T with J_k a product of K - k
 * Gaussian matrices, c_k nu_k = lr beta^2 n s^(K-1) for every k (|x|^2 = d = n).
 * With U_j = Q_j Q_j^T / s^j (Q_j a product of j of them), phi(U_i U_j) =
 * phi((Q_i^T Q_i)^2) phi(U_{j-i}) = min(i, j) + 1 (the Fuss-Catalan second
 * moment), so m2 / m1^2 = sum_{i,j<K} (min(i,j) + 1) / K^2 = (K+1)(2K+1)/(6K) and
 * cos_1 = sqrt(6K / ((K+1)(2K+1))) (theory/moments.md 2.10). */
START_TEST(test_branch_linear_closed_form) {
  for (size_t K = 1; K <= 5; ++K) {
    bafu_net_params p = bafu_net_params_default();
    p.arch = BAFU_ARCH_RESNET;
    p.act = BAFU_ACT_LINEAR;
    p.sigma_w2 = 1.37;
    p.lr_hidden = 2.1;
    p.branch_scale = 1.3;
    p.depth = 4; /* beta = 1.3 / 2 */
    p.width = 300;
    p.block_depth = K;
    bafu_moments_layer *o = run(&p);
    const double beta2 = 0.65 * 0.65, k = (double)K;
    ck_assert_close(o[0].m1, k * 2.1 * beta2 * 300 * pow(1.37, k - 1), 1e-13, 0);
    ck_assert_close(o[0].cos_spectral, sqrt(6 * k / ((k + 1) * (2 * k + 1))), 1e-13, 0);
    ck_assert_close(o[0].q, 1 + beta2 * pow(1.37, k), 1e-14, 0);
    ck_assert_close(o[0].p1, 1 + beta2 * pow(1.37, k), 1e-14, 0);
    ck_assert_close(o[0].p2, 1 + 4 * beta2 * pow(1.37, k) + beta2 * beta2 * pow(1.37, 2 * k) * (k + 1), 1e-13, 0);
    free(o);
  }
}
END_TEST

/* Continuum limit against the closed forms of the linear ResNet (masks are the
 * identity, so the free recursion is exact; theory/moments.md 3, 3.1, 3.2):
 * plain cos(t) = (1 + 2 a b^2 t/3)^(-1/2), q = e^(a b^2 t), mu = lr K s^(K-1) b^2 t q;
 * normalised cos(t) = (1 + (2/3) ln(1 + a b^2 t))^(-1/2), q = 1 + a b^2 t,
 * mu = (lr K s^(K-1) / a) q ln q; r = mu^2 (cos^-2 - 1); a = s^K. Gaussian and
 * orthogonal init (they share the leading order), K = 1, 2, 3, at b = 0.37,
 * 1.9 and 8, 40 points: the angle to 1e-12 absolute (the solver is asked for
 * 1e-10), q and mu to 1e-12 relative, r to 1e-10, and the reported error
 * estimate is below the tolerance. */
START_TEST(test_continuum_closed_form) {
  const bafu_init inits[] = {BAFU_INIT_GAUSSIAN, BAFU_INIT_ORTHOGONAL};
  const double bs[] = {0.37, 1.9, 8.0};
  double worst = 0;
  for (int i = 0; i < 8; ++i) { /* plain, normalised (3.1), then K = 2, 3 plain and normalised (3.2) */
    bafu_net_params p = bafu_net_params_default();
    p.arch = BAFU_ARCH_RESNET;
    p.act = BAFU_ACT_LINEAR;
    p.init = inits[i % 2];
    p.branch_norm = (i >= 2 && i < 4) || i >= 6 ? BAFU_BRANCH_NORM_RMS : BAFU_BRANCH_NORM_NONE;
    p.block_depth = i >= 4 ? 2 + (size_t)(i % 2) : 1;
    p.sigma_w2 = 0.7;
    p.lr_hidden = 3.3;
    const double K = (double)p.block_depth, a = pow(p.sigma_w2, K), lrK = p.lr_hidden * K * pow(p.sigma_w2, K - 1);
    for (int j = 0; j < 3; ++j) {
      const double b = bs[j];
      bafu_continuum_point pts[41];
      ck_assert_ok(bafu_continuum_run(&p, b, 1e-10, 40, pts));
      ck_assert_close(pts[0].cos_theta, 1.0, 0, 0);
      ck_assert_msg(pts[0].error <= 1e-10, "case %d, b = %g: estimated error %g", i, b, pts[0].error);
      for (int k = 1; k <= 40; ++k) {
        const double t = pts[k].t, x = a * b * b * t, c = bafu_continuum_cos_closed(&p, b, t);
        const double q = p.branch_norm ? 1 + x : exp(x);
        const double mu = p.branch_norm ? lrK / a * q * log(q) : lrK * b * b * t * q;
        ck_assert_msg(fabs(pts[k].cos_theta - c) <= 1e-12, "case %d, b = %g, t = %g: cos %.17g vs %.17g", i, b, t,
                      pts[k].cos_theta, c);
        ck_assert_close(pts[k].q, q, 1e-12, 0);
        ck_assert_close(pts[k].mu, mu, 1e-12, 0);
        ck_assert_close(pts[k].r, mu * mu * (1 / (c * c) - 1), 1e-10, 0);
        worst = fmax(worst, fabs(pts[k].cos_theta - c));
      }
    }
  }
  printf("  continuum against the linear closed forms: worst |cos - closed| = %.2g\n", worst);
}
END_TEST

/* The finite-depth recursion (bafu_moments_run, beta = b/sqrt(L)) extrapolated
 * in L agrees with the continuum limit to 1e-9: an independent check of the
 * continuum solver for nonlinear activations (theory/moments.md 3.4). The
 * recursion's error has an expansion in powers of 1/L: integer powers where
 * the masks are smooth, and also half-integer ones for relu, whose mask
 * correlations carry sqrt(t - t') (the sum over blocks of a sqrt-singular
 * function: generalised Euler-Maclaurin). Depths L = 125 2^k, k = 0..5; the
 * values at the last n + 1 depths fit c_0 + sum_i c_i L^-e_i exactly (n
 * exponents: 1, 3/2, 2, 5/2, 3 for relu; 1, 2, 3, 4 otherwise), and c_0 is
 * the extrapolation. Cases: relu and tanh (the brief's two), then the other
 * paths of the mask correlations: gelu and swish (the Fourier product with the
 * Gaussian cdf split off), tanh and gelu with normalised branches (the
 * Hermite series; gelu also with an embedding), erf and tanh with branches of
 * K = 2 and 3 layers, relu normalised, and tanh with an embedding and biases. */
static double extrapolate(const double *L, const double *c, size_t m, const double *e, size_t n) {
  /* solve sum_j A_ij x_j = c_i, A_i0 = 1, A_ij = L_i^-e_j, over the last n + 1 rows (Gauss, partial pivoting) */
  double A[8][9];
  const size_t r0 = m - (n + 1);
  for (size_t i = 0; i <= n; ++i) {
    A[i][0] = 1;
    for (size_t j = 1; j <= n; ++j) A[i][j] = pow(L[r0 + i], -e[j - 1]);
    A[i][n + 1] = c[r0 + i];
  }
  for (size_t k = 0; k <= n; ++k) {
    size_t piv = k;
    for (size_t i = k + 1; i <= n; ++i)
      if (fabs(A[i][k]) > fabs(A[piv][k])) piv = i;
    for (size_t j = 0; j <= n + 1; ++j) {
      const double tmp = A[k][j];
      A[k][j] = A[piv][j];
      A[piv][j] = tmp;
    }
    for (size_t i = 0; i <= n; ++i) {
      if (i == k) continue;
      const double f = A[i][k] / A[k][k];
      for (size_t j = k; j <= n + 1; ++j) A[i][j] -= f * A[k][j];
    }
  }
  return A[0][n + 1] / A[0][0];
}

START_TEST(test_continuum_limit_of_discrete) {
  struct {
    bafu_act act;
    double s, b;
    int norm, embed;
    size_t K;
    double V;
  } cs[] = {
      {BAFU_ACT_RELU, 2.0, 2.0, 0, 0, 1, 0},   {BAFU_ACT_TANH, 1.0, 2.0, 0, 0, 1, 0},
      {BAFU_ACT_GELU, 2.0, 1.6, 0, 0, 1, 0},   {BAFU_ACT_SWISH, 2.0, 1.6, 0, 0, 1, 0},
      {BAFU_ACT_TANH, 1.3, 1.6, 1, 0, 1, 0},   {BAFU_ACT_GELU, 1.7, 1.6, 1, 1, 1, 0},
      {BAFU_ACT_ERF, 1.3, 1.6, 0, 0, 2, 0},    {BAFU_ACT_TANH, 1.3, 1.6, 0, 0, 3, 0},
      {BAFU_ACT_RELU, 2.0, 1.6, 1, 0, 1, 0},   {BAFU_ACT_TANH, 1.2, 2.5, 0, 1, 1, 0.3},
  };
  const double e_relu[] = {1, 1.5, 2, 2.5, 3}, e_smooth[] = {1, 2, 3, 4};
  for (size_t c = 0; c < sizeof cs / sizeof cs[0]; ++c) {
    bafu_net_params p = bafu_net_params_default();
    p.arch = BAFU_ARCH_RESNET;
    p.act = cs[c].act;
    p.sigma_w2 = cs[c].s;
    p.branch_scale = cs[c].b;
    p.branch_exponent = 0.5;
    p.branch_norm = cs[c].norm ? BAFU_BRANCH_NORM_RMS : BAFU_BRANCH_NORM_NONE;
    p.embed = cs[c].embed;
    p.block_depth = cs[c].K;
    p.bias_var = cs[c].V;
    p.lr_bias = p.lr_bias_input = 0; /* the biases' own terms are O(1/n): none at infinite width (section 2.7) */
    bafu_continuum_point pts[2];
    ck_assert_ok(bafu_continuum_run(&p, p.branch_scale, 1e-12, 1, pts));
    double L[6], cosL[6];
    for (size_t k = 0; k < 6; ++k) {
      p.depth = (size_t)125 << k;
      L[k] = (double)p.depth;
      bafu_moments_layer *o = run(&p);
      cosL[k] = o[bafu_moments_nlayers(&p) - 1].cos_theta;
      free(o);
    }
    const int relu = cs[c].act == BAFU_ACT_RELU;
    const double x = extrapolate(L, cosL, 6, relu ? e_relu : e_smooth, relu ? 5 : 4);
    printf("  continuum case %zu: %.15f, extrapolated %.15f (L = 4000: %.6f), difference %.2g\n", c,
           pts[1].cos_theta, x, cosL[5], x - pts[1].cos_theta);
    ck_assert_msg(fabs(x - pts[1].cos_theta) < 1e-9, "case %zu: continuum %.15f, extrapolated %.15f", c,
                  pts[1].cos_theta, x);
    ck_assert_msg(fabs(cosL[5] - pts[1].cos_theta) > 1e-6, "case %zu: the test needs the finite-L error", c);
  }
}
END_TEST

/* Branch scalings: the output angle for beta = 1/sqrt(L) has a non-trivial
 * limit (the continuum value); beta = 1/L gives cos -> 1 and beta = 1 gives
 * cos -> 0. */
START_TEST(test_branch_scalings) {
  bafu_net_params p = bafu_net_params_default();
  p.arch = BAFU_ARCH_RESNET;
  p.depth = 2048;
  p.branch_exponent = 1.0;
  bafu_moments_layer *o = run(&p);
  ck_assert(1 - o[p.depth - 1].cos_theta < 1e-3);
  free(o);
  p.branch_exponent = 0.0;
  p.depth = 200; /* beta = 1: the forward variance grows like 2^L, keep it finite */
  o = run(&p);
  ck_assert(o[p.depth - 1].cos_theta < 0.15);
  free(o);
  p.branch_exponent = 0.5;
  p.depth = 2048;
  o = run(&p);
  bafu_continuum_point pts[2];
  ck_assert_ok(bafu_continuum_run(&p, 1.0, 1e-7, 1, pts));
  ck_assert_close(o[p.depth - 1].cos_theta, pts[1].cos_theta, 1e-3, 0);
  ck_assert(pts[1].cos_theta > 0.5 && pts[1].cos_theta < 0.95);
  free(o);
}
END_TEST

/* The convolution grid for the masks of a residual stream (theory/moments.md
 * 2.9) against one two-dimensional quadrature per pair of blocks: every
 * column of every block to 1e-10 (relative for the moments, absolute for the
 * angle), for tanh, gelu and swish, probe and mse, with an embedding, with
 * orthogonal init, with biases and with normalised branches. */
START_TEST(test_mask_grid) {
  struct {
    bafu_act act;
    double s, B;
    int embed, mse, norm;
    bafu_init init;
    double V;
  } cs[] = {
      {BAFU_ACT_TANH, 1.0, 2.0, 0, 0, 0, BAFU_INIT_GAUSSIAN, 0},
      {BAFU_ACT_GELU, 1.7, 1.0, 1, 1, 0, BAFU_INIT_GAUSSIAN, 0},
      {BAFU_ACT_SWISH, 2.0, 1.5, 0, 0, 0, BAFU_INIT_ORTHOGONAL, 0},
      {BAFU_ACT_TANH, 1.3, 2.0, 1, 1, 1, BAFU_INIT_GAUSSIAN, 0.4},
      {BAFU_ACT_GELU, 1.0, 3.0, 0, 0, 1, BAFU_INIT_GAUSSIAN, 0},
  };
  for (size_t c = 0; c < sizeof cs / sizeof cs[0]; ++c) {
    bafu_net_params p = bafu_net_params_default();
    p.arch = BAFU_ARCH_RESNET;
    p.act = cs[c].act;
    p.sigma_w2 = cs[c].s;
    p.branch_scale = cs[c].B;
    p.depth = 12;
    p.embed = cs[c].embed;
    p.signal = cs[c].mse ? BAFU_SIGNAL_MSE : BAFU_SIGNAL_PROBE;
    p.branch_norm = cs[c].norm ? BAFU_BRANCH_NORM_RMS : BAFU_BRANCH_NORM_NONE;
    p.init = cs[c].init;
    p.bias_var = cs[c].V;
    const size_t J = bafu_moments_nlayers(&p);
    bafu_moments_layer *g = run(&p), *q = malloc(J * sizeof *q);
    ck_assert_ok(bafu_moments_run_pairwise(&p, 0, q));
    double worst = 0;
    for (size_t j = 0; j < J; ++j) {
      ck_assert_close(g[j].m1, q[j].m1, 1e-10, 0);
      ck_assert_close(g[j].m2, q[j].m2, 1e-10, 0);
      ck_assert_close(g[j].back, q[j].back, 1e-10, 0);
      ck_assert_msg(fabs(g[j].cos_theta - q[j].cos_theta) < 1e-10, "case %zu layer %zu: cos %.17g vs %.17g", c, j,
                    g[j].cos_theta, q[j].cos_theta);
      worst = fmax(worst, fabs(g[j].cos_theta - q[j].cos_theta));
    }
    printf("  mask grid, case %zu: worst |cos_grid - cos_pairwise| = %.2g\n", c, worst);
    free(g);
    free(q);
  }
}
END_TEST

/* The mask correlations of single pairs used by the continuum solver
 * (src/maskgrid.h, theory/moments.md 3.3) against the two-dimensional
 * quadrature of bafu_act_mask_corr_quad, to 1e-12 relative: tanh, gelu and
 * swish, plain (the Fourier product on the grid, with both kernels: the
 * Gaussian multiplier and, for 9 sqrt(d) > 2R, the sampled kernel) and
 * normalised (the Hermite series), at pairs from the diagonal (d = 1e-7) to
 * far apart; the diagonal of the series is E[phi'^4] at unit variance; relu,
 * erf and linear against their closed forms; and with a smallest variance so
 * small that the grid would exceed 2^16 points, the pairwise quadrature. */
START_TEST(test_mask_pairs) {
  const bafu_act acts[] = {BAFU_ACT_TANH, BAFU_ACT_GELU, BAFU_ACT_SWISH, BAFU_ACT_RELU, BAFU_ACT_ERF, BAFU_ACT_LINEAR};
  const double pairs[][2] = {{0.021, 0.0213}, {0.037, 0.8}, {0.37, 0.37 + 1e-7}, {0.91, 1.33}, {2.385, 2.4},
                             {1.7, 19.3},     {3.1, 412.0}, {57.0, 61.0},       {250.0, 3.1e4}};
  for (int a = 0; a < 6; ++a)
    for (int c = 0; c < 4; ++c) {
      const int norm = c % 2;
      const double qmin = c < 2 ? 0.3 : 0.02; /* the grid's spacing follows the smallest variance */
      mask_pairs *m;
      ck_assert_ok(mp_alloc(acts[a], norm, qmin, &m));
      double worst = 0;
      for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; ++k) {
        const double q1 = pairs[k][0], q2 = pairs[k][1], d = q2 - q1;
        if (q1 < qmin) continue;
        const double M = mp_eval(m, q1, q2, d);
        double ref;
        if (norm) ck_assert_ok(bafu_act_mask_corr_quad(acts[a], 1, 1, sqrt(q1 / q2), &ref));
        else ck_assert_ok(bafu_act_mask_corr_quad(acts[a], q1, q2, q1, &ref));
        ck_assert_msg(fabs(M - ref) <= 1e-12 * ref, "%s, norm %d, q = %g, %g: %.17g vs %.17g", bafu_act_name(acts[a]),
                      norm, q1, q2, M, ref);
        worst = fmax(worst, fabs(M - ref) / ref);
      }
      if (norm) { /* the series at rho = 1 */
        bafu_act_moments am;
        ck_assert_ok(bafu_act_moments_eval(acts[a], 1.0, &am));
        ck_assert_close(mp_eval(m, 2.2, 2.2, 0.0), am.dphi4, 1e-13, 0);
      }
      printf("  mask pairs, %s%s, variances from %g: worst relative difference %.2g\n", bafu_act_name(acts[a]),
             norm ? " normalised" : "", qmin, worst);
      mp_free(m);
    }
  /* a tiny smallest variance: pair by pair (the same numbers as the quadrature) */
  mask_pairs *m;
  ck_assert_ok(mp_alloc(BAFU_ACT_TANH, 0, 1e-9, &m));
  double ref;
  ck_assert_ok(bafu_act_mask_corr_quad(BAFU_ACT_TANH, 2e-9, 0.7, 2e-9, &ref));
  ck_assert_close(mp_eval(m, 2e-9, 0.7, 0.7 - 2e-9), ref, 1e-15, 0);
  mp_free(m);
  ck_assert_int_eq(mp_alloc(BAFU_ACT_TANH, 0, 0.0, &m), BAFU_EINVAL);
}
END_TEST

/* Mask correlations E[phi'(u)^2 phi'(v)^2]: closed forms (relu: Sheppard's
 * formula; erf; linear) against the quadrature rule, at odd covariances. */
START_TEST(test_mask_corr) {
  const bafu_act acts[] = {BAFU_ACT_RELU, BAFU_ACT_ERF, BAFU_ACT_LINEAR};
  const double qs[][3] = {{0.37, 1.9, 0.37}, {2.385, 2.4, 2.1}, {1.0, 7.9, -0.8}, {0.5, 0.5, 0.5}};
  for (int a = 0; a < 3; ++a)
    for (int k = 0; k < 4; ++k) {
      double c, qd;
      ck_assert_ok(bafu_act_mask_corr(acts[a], qs[k][0], qs[k][1], qs[k][2], &c));
      ck_assert_ok(bafu_act_mask_corr_quad(acts[a], qs[k][0], qs[k][1], qs[k][2], &qd));
      ck_assert_close(c, qd, 1e-12, 1e-15);
    }
  /* equal arguments: E[phi'^4] */
  bafu_act_moments am;
  double c;
  ck_assert_ok(bafu_act_moments_eval(BAFU_ACT_TANH, 0.83, &am));
  ck_assert_ok(bafu_act_mask_corr(BAFU_ACT_TANH, 0.83, 0.83, 0.83, &c));
  ck_assert_close(c, am.dphi4, 1e-12, 0);
}
END_TEST

/* The mask-correlated ResNet recursion reduces to the free one where the masks
 * are trivial (linear) and for MLPs, and differs for a ReLU ResNet, where it is
 * the one that matches Monte Carlo (theory/moments.md 2.4-2.5; test_validation). */
START_TEST(test_mask_correlation_matters) {
  bafu_net_params p = bafu_net_params_default();
  p.arch = BAFU_ARCH_RESNET;
  p.depth = 24;
  p.branch_scale = 1.7;
  bafu_moments_layer a[24], b[24];
  p.act = BAFU_ACT_LINEAR;
  p.sigma_w2 = 1.1;
  ck_assert_ok(bafu_moments_run(&p, 0, a));
  ck_assert_ok(bafu_moments_run_free(&p, 0, b));
  for (int j = 0; j < 24; ++j) {
    ck_assert_close(a[j].m2, b[j].m2, 1e-12, 0);
    ck_assert_close(a[j].cos_theta, b[j].cos_theta, 1e-12, 0);
    ck_assert_close(a[j].cos_theta, a[j].cos_spectral, 1e-12, 0);
  }
  p.act = BAFU_ACT_RELU;
  p.sigma_w2 = 2;
  ck_assert_ok(bafu_moments_run(&p, 0, a));
  ck_assert_ok(bafu_moments_run_free(&p, 0, b));
  ck_assert_close(a[0].m2, b[0].m2, 1e-13, 0);   /* one block: nothing to correlate */
  ck_assert(a[23].m2 > b[23].m2 * 1.01);          /* positively correlated masks spread K */
  ck_assert(a[11].cos_theta < a[11].cos_spectral); /* the backward vector sees the spread */
  ck_assert_close(a[23].cos_theta, a[23].cos_spectral, 1e-12, 0); /* top: independent probe */
}
END_TEST

/* Errors: invalid parameters and overflow are reported, not returned as NaN. */
START_TEST(test_errors) {
  bafu_net_params p = bafu_net_params_default();
  bafu_moments_layer o[64];
  p.width = 0;
  ck_assert_int_eq(bafu_moments_run(&p, 0, o), BAFU_EINVAL);
  p = bafu_net_params_default();
  p.arch = BAFU_ARCH_RESNET;
  p.branch_exponent = -3; /* beta = 16^3: overflow within 64 layers */
  p.depth = 64;
  ck_assert_int_eq(bafu_moments_run(&p, 0, o), BAFU_ENUMERIC);
  bafu_continuum_point pts[3];
  ck_assert_int_eq(bafu_continuum_run(&p, NAN, 1e-8, 2, pts), BAFU_EINVAL);
  ck_assert_int_eq(bafu_continuum_run(&p, 1, 1e-8, 0, pts), BAFU_EINVAL);
  ck_assert_int_eq(bafu_continuum_run(&p, 1, 0, 2, pts), BAFU_EINVAL);
  /* relu, b = 20: mu^2 ~ e^(2 b^2) leaves the floating-point range (b = 16 does not) */
  p.branch_exponent = 0.5;
  ck_assert_int_eq(bafu_continuum_run(&p, 20, 1e-8, 2, pts), BAFU_ENUMERIC);
  ck_assert_ok(bafu_continuum_run(&p, 16, 1e-8, 2, pts));
  /* nothing trained: no embedding and lr_hidden = 0 */
  p.lr_hidden = 0;
  ck_assert_int_eq(bafu_continuum_run(&p, 1, 1e-8, 2, pts), BAFU_EINVAL);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("moments");
  TCase *tc = tcase_create("moments");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_relu_mlp_closed_form);
  tcase_add_test(tc, test_linear_mlp_lr);
  tcase_add_test(tc, test_orthogonal_isometry);
  tcase_add_test(tc, test_layer_moments_matrix);
  tcase_add_loop_test(tc, test_branch_matrix, 0, 2);
  tcase_add_test(tc, test_branch_linear_closed_form);
  tcase_add_test(tc, test_continuum_closed_form);
  tcase_add_test(tc, test_continuum_limit_of_discrete);
  tcase_add_test(tc, test_branch_scalings);
  tcase_add_test(tc, test_mask_pairs);
  tcase_add_test(tc, test_mask_corr);
  tcase_add_test(tc, test_mask_grid);
  tcase_add_test(tc, test_mask_correlation_matters);
  tcase_add_test(tc, test_errors);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return bafu_run_suite(suite()); }
