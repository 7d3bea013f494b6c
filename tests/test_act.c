/* test_act.c: activations and their Gaussian expectations (bafu/act.h) against
 * finite differences, the closed forms, GSL adaptive quadrature and exact
 * identities. Each formula is derived in theory/activations.md (AM x.y).
 *
 * Tolerances (relative unless stated):
 *   TOL_FD    1e-8   central differences, h = 1e-5: truncation ~ h^2 |phi'''| / 6
 *                    ~ 2e-11, rounding ~ eps / h ~ 1e-11.
 *   TOL_QUAD  1e-13  composite Gauss-Legendre vs closed forms / itself: observed
 *                    <= 2.5e-15 over q in [1e-6, 1e6] and |rho| <= 1 (AM 4.3).
 *   TOL_QAGI  1e-12  vs gsl_integration_qagi asked for epsrel 1e-13 (observed
 *                    agreement <= 2e-15; the margin is for qagi's own error). */
#include <gsl/gsl_errno.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_math.h>
#include <string.h>

#include "bafu/act.h"
#include "testutil.h"

#define TOL_FD 1e-8
#define TOL_QUAD 1e-13
#define TOL_QAGI 1e-12

static const double odd_q[] = {0.37, 1.0, 2.385, 7.9, 100.0};
#define N_ODD_Q (int)(sizeof odd_q / sizeof odd_q[0])

/* phi' against a central difference of phi (AM 1). */
START_TEST(test_dphi_fd) {
  const bafu_act a = (bafu_act)_i;
  const double us[] = {-1.37, -0.0, 0.413, 2.385, -6.1};
  for (size_t k = 0; k < sizeof us / sizeof us[0]; ++k) {
    const double u = us[k], h = 1e-5;
    if (a == BAFU_ACT_RELU && u == 0) continue; /* kink: relu'(0) = 0 by convention */
    const double fd = (bafu_act_phi(a, u + h) - bafu_act_phi(a, u - h)) / (2 * h);
    ck_assert_close(bafu_act_dphi(a, u), fd, TOL_FD, 1e-11);
  }
  if (a == BAFU_ACT_RELU) ck_assert(bafu_act_dphi(a, 0.0) == 0 && bafu_act_phi(a, 0.0) == 0);
}
END_TEST

/* bafu_act_apply equals the pointwise functions, with either output NULL. */
START_TEST(test_apply) {
  const bafu_act a = (bafu_act)_i;
  enum { N = 9 };
  const double u[N] = {-800, -30.5, -1.37, -1e-9, 0, 2e-9, 0.413, 2.385, 800};
  double f[N], d[N], f2[N], d2[N];
  bafu_act_apply(a, N, u, f, d);
  bafu_act_apply(a, N, u, f2, NULL);
  bafu_act_apply(a, N, u, NULL, d2);
  for (int i = 0; i < N; ++i) {
    ck_assert(isfinite(f[i]) && isfinite(d[i]));
    ck_assert(f[i] == bafu_act_phi(a, u[i]) && f2[i] == f[i]);
    ck_assert(d[i] == bafu_act_dphi(a, u[i]) && d2[i] == d[i]);
  }
}
END_TEST

/* Closed-form moments (AM 2) against the quadrature (AM 4.1), including q = 0. */
START_TEST(test_moments_closed_vs_quad) {
  const bafu_act acts[] = {BAFU_ACT_RELU, BAFU_ACT_LINEAR, BAFU_ACT_ERF};
  for (int k = 0; k < 3; ++k)
    for (int i = -1; i < N_ODD_Q; ++i) {
      const double q = i < 0 ? 0 : odd_q[i];
      bafu_act_moments c, m;
      ck_assert_ok(bafu_act_moments_eval(acts[k], q, &c));
      ck_assert_ok(bafu_act_moments_quad(acts[k], q, &m));
      ck_assert_close(m.phi2, c.phi2, TOL_QUAD, 0);
      ck_assert_close(m.dphi2, c.dphi2, TOL_QUAD, 0);
      ck_assert_close(m.dphi4, c.dphi4, TOL_QUAD, 0);
    }
  /* spot values of the closed forms themselves */
  bafu_act_moments c;
  ck_assert_ok(bafu_act_moments_eval(BAFU_ACT_ERF, 0.5, &c));
  ck_assert_close(c.phi2, 1.0 / 3.0, 1e-15, 0); /* (2/pi) asin(1/2) = 1/3 */
  ck_assert_close(c.dphi2, (4 / M_PI) / sqrt(3.0), 1e-15, 0);
  ck_assert_close(c.dphi4, (16 / (M_PI * M_PI)) / sqrt(5.0), 1e-15, 0);
  ck_assert_ok(bafu_act_moments_eval(BAFU_ACT_RELU, 0, &c));
  ck_assert(c.phi2 == 0 && c.dphi2 == 0 && c.dphi4 == 0);
}
END_TEST

/* An independent computation: E[g(u)] = int g(sqrt(q) z) pdf(z) dz by GSL's
 * adaptive qagi. */
typedef struct {
  bafu_act a;
  double s;
  int which; /* 0: phi^2, 1: phi'^2, 2: phi'^4 */
} qagi_ctx;

static double qagi_integrand(double z, void *p) {
  const qagi_ctx *c = p;
  const double u = c->s * z, w = exp(-0.5 * z * z) / sqrt(2 * M_PI);
  const double f = bafu_act_phi(c->a, u), d = bafu_act_dphi(c->a, u);
  return w * (c->which == 0 ? f * f : c->which == 1 ? d * d : d * d * d * d);
}

static double qagi_moment(bafu_act a, double q, int which) {
  qagi_ctx c = {a, sqrt(q), which};
  gsl_function F = {qagi_integrand, &c};
  gsl_integration_workspace *w = gsl_integration_workspace_alloc(2000);
  double r, err;
  int st = gsl_integration_qagi(&F, 0, 1e-13, 2000, w, &r, &err);
  gsl_integration_workspace_free(w);
  ck_assert_msg(st == 0 || st == GSL_EROUND, "qagi failed: %d", st);
  return r;
}

START_TEST(test_moments_quad_vs_qagi) {
  const bafu_act acts[] = {BAFU_ACT_TANH, BAFU_ACT_GELU, BAFU_ACT_SWISH};
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < N_ODD_Q; ++i) {
      bafu_act_moments m, e;
      ck_assert_ok(bafu_act_moments_quad(acts[k], odd_q[i], &m));
      ck_assert_ok(bafu_act_moments_eval(acts[k], odd_q[i], &e));
      ck_assert(m.phi2 == e.phi2 && m.dphi2 == e.dphi2 && m.dphi4 == e.dphi4);
      ck_assert_close(m.phi2, qagi_moment(acts[k], odd_q[i], 0), TOL_QAGI, 0);
      ck_assert_close(m.dphi2, qagi_moment(acts[k], odd_q[i], 1), TOL_QAGI, 0);
      ck_assert_close(m.dphi4, qagi_moment(acts[k], odd_q[i], 2), TOL_QAGI, 0);
    }
}
END_TEST

/* Bivariate closed forms (AM 3) against the product rule (AM 4.2). Absolute
 * tolerance TOL_QUAD * sqrt(q1 q2) (the scale of E[phi phi] for relu and linear)
 * or TOL_QUAD (erf) covers values that vanish at rho = 0. */
START_TEST(test_bivariate_closed_vs_quad) {
  const bafu_act acts[] = {BAFU_ACT_RELU, BAFU_ACT_LINEAR, BAFU_ACT_ERF};
  const double qq[][2] = {{0.37, 2.385}, {1.0, 1.0}, {7.9, 0.37}, {2.385, 100.0}, {0.0, 1.3}, {0.7, 0.0}};
  const double rhos[] = {-1, -0.9999, -0.5, 0, 0.3, 0.9, 0.9999, 1};
  for (int k = 0; k < 3; ++k)
    for (size_t i = 0; i < sizeof qq / sizeof qq[0]; ++i)
      for (size_t r = 0; r < sizeof rhos / sizeof rhos[0]; ++r) {
        const double q1 = qq[i][0], q2 = qq[i][1], c12 = rhos[r] * sqrt(q1) * sqrt(q2);
        double ec, dc, eq, dq;
        ck_assert_ok(bafu_act_bivariate(acts[k], q1, q2, c12, &ec, &dc));
        ck_assert_ok(bafu_act_bivariate_quad(acts[k], q1, q2, c12, &eq, &dq));
        const double scale = acts[k] == BAFU_ACT_ERF ? 1 : sqrt(q1 * q2);
        ck_assert_close(eq, ec, TOL_QUAD, TOL_QUAD * scale);
        ck_assert_close(dq, dc, TOL_QUAD, TOL_QUAD);
      }
  /* arc-cosine kernel spot values: rho = 0 and rho = 1/2 (theta = pi/3) */
  double e, d;
  ck_assert_ok(bafu_act_bivariate(BAFU_ACT_RELU, 2.0, 8.0, 0.0, &e, &d));
  ck_assert_close(e, 4.0 / (2 * M_PI), 1e-15, 0);
  ck_assert_close(d, 0.25, 1e-15, 0);
  ck_assert_ok(bafu_act_bivariate(BAFU_ACT_RELU, 1.0, 1.0, 0.5, &e, &d));
  ck_assert_close(e, (sqrt(3.0) / 2 + M_PI / 3) / (2 * M_PI), 1e-15, 0);
  ck_assert_close(d, 1.0 / 3.0, 1e-15, 0);
}
END_TEST

/* Quadrature-only activations: rho = +1 reduces to the single-variable moments,
 * rho = -1 for the odd tanh to minus them, rho = 0 for tanh to 0 (E tanh = 0),
 * and swapping (q1, q2) leaves the result unchanged although the Cholesky
 * coordinates differ. */
START_TEST(test_bivariate_quad_identities) {
  const bafu_act acts[] = {BAFU_ACT_TANH, BAFU_ACT_GELU, BAFU_ACT_SWISH};
  const double qs[] = {0.37, 2.385, 7.9};
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 3; ++i) {
      const double q = qs[i];
      bafu_act_moments m;
      double e, d;
      ck_assert_ok(bafu_act_moments_quad(acts[k], q, &m));
      ck_assert_ok(bafu_act_bivariate_quad(acts[k], q, q, q, &e, &d));
      ck_assert_close(e, m.phi2, TOL_QUAD, 0);
      ck_assert_close(d, m.dphi2, TOL_QUAD, 0);
      ck_assert_ok(bafu_act_bivariate(acts[k], q, q, q, &e, &d)); /* dispatches to the quadrature */
      ck_assert_close(e, m.phi2, TOL_QUAD, 0);
      ck_assert_close(d, m.dphi2, TOL_QUAD, 0);
      if (acts[k] == BAFU_ACT_TANH) {
        ck_assert_ok(bafu_act_bivariate_quad(acts[k], q, q, -q, &e, &d));
        ck_assert_close(e, -m.phi2, TOL_QUAD, 0);
        ck_assert_close(d, m.dphi2, TOL_QUAD, 0); /* tanh' is even */
        ck_assert_ok(bafu_act_bivariate_quad(acts[k], q, 1.3, 0, &e, &d));
        ck_assert_close(e, 0, 0, TOL_QUAD);
      }
      const double q2 = 0.61, c12 = -0.5 * sqrt(q * q2);
      double e1, d1, e2, d2;
      ck_assert_ok(bafu_act_bivariate_quad(acts[k], q, q2, c12, &e1, &d1));
      ck_assert_ok(bafu_act_bivariate_quad(acts[k], q2, q, c12, &e2, &d2));
      ck_assert_close(e1, e2, TOL_QUAD, TOL_QUAD * sqrt(q * q2));
      ck_assert_close(d1, d2, TOL_QUAD, 0);
    }
}
END_TEST

START_TEST(test_errors) {
  bafu_act a = BAFU_ACT_TANH;
  bafu_act_moments m;
  double e, d;
  ck_assert_int_eq(bafu_act_from_name("sigmoid", &a), BAFU_EINVAL);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "unknown activation 'sigmoid'"));
  ck_assert_int_eq(a, BAFU_ACT_TANH); /* untouched on error */
  ck_assert_int_eq(bafu_act_from_name("", &a), BAFU_EINVAL);
  ck_assert_int_eq(bafu_act_from_name("ReLU", &a), BAFU_EINVAL);
  for (int k = 0; k < BAFU_ACT_COUNT; ++k) {
    const double bad[] = {-1e-300, -2.0, NAN, INFINITY};
    for (int i = 0; i < 4; ++i) {
      ck_assert_int_eq(bafu_act_moments_eval((bafu_act)k, bad[i], &m), BAFU_EINVAL);
      ck_assert_int_eq(bafu_act_moments_quad((bafu_act)k, bad[i], &m), BAFU_EINVAL);
      ck_assert_int_eq(bafu_act_bivariate((bafu_act)k, bad[i], 1, 0, &e, &d), BAFU_EINVAL);
      ck_assert_int_eq(bafu_act_bivariate_quad((bafu_act)k, 1, bad[i], 0, &e, &d), BAFU_EINVAL);
    }
    /* |rho| > 1 */
    ck_assert_int_eq(bafu_act_bivariate((bafu_act)k, 2, 3, 1.01 * sqrt(6.0), &e, &d), BAFU_EINVAL);
    ck_assert_int_eq(bafu_act_bivariate_quad((bafu_act)k, 2, 3, -1.01 * sqrt(6.0), &e, &d), BAFU_EINVAL);
    ck_assert_int_eq(bafu_act_bivariate((bafu_act)k, 0, 3, 1e-3, &e, &d), BAFU_EINVAL);
    ck_assert_int_eq(bafu_act_bivariate((bafu_act)k, 2, 3, NAN, &e, &d), BAFU_EINVAL);
    /* |rho| = 1 up to rounding is accepted */
    ck_assert_ok(bafu_act_bivariate((bafu_act)k, 2, 3, sqrt(6.0) * (1 + 1e-14), &e, &d));
  }
  ck_assert_int_eq(bafu_act_moments_eval(BAFU_ACT_COUNT, 1, &m), BAFU_EINVAL);
  ck_assert_str_eq(bafu_act_name(BAFU_ACT_COUNT), "unknown");
}
END_TEST

/* Hermite coefficients (AM 6) of erf: the Mehler sums against the closed forms
 * of AM 3.2 at odd q and rho, rho = +-1 included (observed <= 3.5e-15 relative
 * to E[phi^2], E[phi'^2]; asserted 2e-14). */
START_TEST(test_hermite_erf_mehler) {
  static double ah[BAFU_ACT_HERMITE_MAX + 1], bh[BAFU_ACT_HERMITE_MAX + 1];
  const double qs[] = {0.0123, 0.37, 2.385, 7.9};
  const size_t Ks[] = {64, 256, 1024, 4096};
  const double rhos[] = {-1, -0.77, 0.2385, 0.9993, 1};
  for (size_t i = 0; i < 4; ++i) {
    const double q = qs[i];
    ck_assert_ok(bafu_act_hermite(BAFU_ACT_ERF, q, Ks[i], ah, bh));
    const double A = M_2_PI * atan(2 * q / sqrt(1 + 4 * q)), B = (4 / M_PI) / sqrt(1 + 4 * q);
    for (size_t r = 0; r < sizeof rhos / sizeof rhos[0]; ++r) {
      const double rho = rhos[r];
      double F = 0, G = 0, p = 1;
      for (size_t k = 0; k <= Ks[i]; ++k) {
        F += ah[k] * ah[k] * p;
        G += bh[k] * bh[k] * p;
        p *= rho;
      }
      const double Fx = M_2_PI * asin(2 * q * rho / (1 + 2 * q));
      const double Gx = (4 / M_PI) / sqrt((1 + 2 * q) * (1 + 2 * q) - 4 * q * q * rho * rho);
      ck_assert_close(q * F, Fx, 0, 2e-14 * A);
      ck_assert_close(G, Gx, 0, 2e-14 * B);
    }
    /* erf is odd: the even coefficients of phi, the odd ones of phi' vanish exactly (the fold) */
    for (size_t k = 0; k <= Ks[i]; k += 2) ck_assert(ah[k] == 0 && (k + 1 > Ks[i] || bh[k + 1] == 0));
  }
}
END_TEST

/* Exact identities of the Hermite coefficients (AM 6.1) for the activations
 * without closed forms: sum ah_k^2 = E[phi^2]/q, sum bh_k^2 = E[phi'^2] and
 * (Stein) sum k ah_k^2 = E[phi'^2], against the single-variable rule (observed
 * <= 3e-15; asserted 2e-14); bh_k = sqrt(k+1) ah_{k+1} coefficient by coefficient. */
START_TEST(test_hermite_identities) {
  static double ah[BAFU_ACT_HERMITE_MAX + 1], bh[BAFU_ACT_HERMITE_MAX + 1];
  const bafu_act acts[] = {BAFU_ACT_TANH, BAFU_ACT_GELU, BAFU_ACT_SWISH};
  const double qs[] = {1e-7, 0.37, 2.385, 7.9};
  const size_t Ks[] = {32, 512, 2048, 4096};
  for (size_t a = 0; a < 3; ++a)
    for (size_t i = 0; i < 4; ++i) {
      const double q = qs[i];
      bafu_act_moments m;
      ck_assert_ok(bafu_act_hermite(acts[a], q, Ks[i], ah, bh));
      ck_assert_ok(bafu_act_moments_quad(acts[a], q, &m));
      double sa = 0, sb = 0, sk = 0, dmax = 0;
      for (size_t k = Ks[i] + 1; k-- > 0;) {
        sa += ah[k] * ah[k];
        sb += bh[k] * bh[k];
        sk += (double)k * ah[k] * ah[k];
        if (k < Ks[i]) dmax = fmax(dmax, fabs(bh[k] - sqrt(k + 1.0) * ah[k + 1]));
      }
      ck_assert_close(sa, m.phi2 / q, 2e-14, 0);
      ck_assert_close(sb, m.dphi2, 2e-14, 0);
      ck_assert_close(sk, m.dphi2, 2e-14, 0);
      ck_assert_msg(dmax <= 2e-14 * sqrt(m.dphi2), "%s q = %g: bh_k - sqrt(k+1) ah_(k+1) up to %.3g",
                    bafu_act_name(acts[a]), q, dmax);
      if (acts[a] == BAFU_ACT_TANH)
        for (size_t k = 0; k <= Ks[i]; k += 2) ck_assert(ah[k] == 0);
    }
  /* errors: q <= 0 or not finite, K too large, no arrays, bad code */
  ck_assert_int_eq(bafu_act_hermite(BAFU_ACT_TANH, 0, 8, ah, bh), BAFU_EINVAL);
  ck_assert_int_eq(bafu_act_hermite(BAFU_ACT_TANH, -1, 8, ah, bh), BAFU_EINVAL);
  ck_assert_int_eq(bafu_act_hermite(BAFU_ACT_TANH, NAN, 8, ah, bh), BAFU_EINVAL);
  ck_assert_int_eq(bafu_act_hermite(BAFU_ACT_TANH, 1, BAFU_ACT_HERMITE_MAX + 1, ah, bh), BAFU_EINVAL);
  ck_assert_int_eq(bafu_act_hermite(BAFU_ACT_TANH, 1, 8, NULL, bh), BAFU_EINVAL);
  ck_assert_int_eq(bafu_act_hermite(BAFU_ACT_COUNT, 1, 8, ah, bh), BAFU_EINVAL);
}
END_TEST

START_TEST(test_names) {
  const char *names[] = {"relu", "linear", "tanh", "erf", "gelu", "swish"};
  ck_assert_int_eq(BAFU_ACT_COUNT, 6);
  for (int k = 0; k < BAFU_ACT_COUNT; ++k) {
    bafu_act a;
    ck_assert_str_eq(bafu_act_name((bafu_act)k), names[k]);
    ck_assert_ok(bafu_act_from_name(names[k], &a));
    ck_assert_int_eq(a, k);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("act");
  TCase *tp = tcase_create("pointwise");
  tcase_add_loop_test(tp, test_dphi_fd, 0, BAFU_ACT_COUNT);
  tcase_add_loop_test(tp, test_apply, 0, BAFU_ACT_COUNT);
  tcase_add_test(tp, test_names);
  tcase_add_test(tp, test_errors);
  suite_add_tcase(s, tp);
  TCase *tm = tcase_create("moments");
  tcase_set_timeout(tm, 120);
  tcase_add_test(tm, test_moments_closed_vs_quad);
  tcase_add_test(tm, test_moments_quad_vs_qagi);
  tcase_add_test(tm, test_bivariate_closed_vs_quad);
  tcase_add_test(tm, test_bivariate_quad_identities);
  tcase_add_test(tm, test_hermite_erf_mehler);
  tcase_add_test(tm, test_hermite_identities);
  suite_add_tcase(s, tm);
  return bafu_run_suite(s);
}
