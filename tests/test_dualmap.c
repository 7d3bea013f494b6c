/* test_dualmap.c: the tabulated dual maps (src/dualmap.h, theory/kernel.md 10,
 * "KR x") against the quadrature of bafu/act.h at random (q, rho), against the
 * closed forms of erf, with a deliberately too coarse table that must fail the
 * same check, and the rules that decide when the table serves.
 *
 * Tolerances. The table states an absolute bound per cell and map (KR 10.3),
 * used only if below TOL = 3e-14 of the map's scale; the reference quadrature
 * has its own error, 2.5e-15 relative (theory/activations.md 4.3), allowed for
 * as QERR = 4e-15 of E[phi^2] or E[phi'^2]. For E[phi phi] = q (a - (1 - rho)
 * dhat) the bound is q (b_a + (1 - rho) b_dhat). */
#include <gsl/gsl_errno.h>
#include <gsl/gsl_math.h>
#include <stdio.h>

#include "../src/dualmap.h"
#include "bafu/act.h"
#include "testutil.h"

#define TOL 3e-14
#define QERR 4e-15

/* A deterministic stream in [0, 1) (xorshift64*). */
static double uniform(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return (double)((*s * 2685821657736338717ULL) >> 11) * 0x1p-53;
}

/* A random point: q log-uniform in [qlo, qhi]; 1 - rho uniform in [0, 2], or
 * 10^-u, u in [0, 12], at either end (rho -> 1 and rho -> -1). */
static void random_point(uint64_t *s, double qlo, double qhi, double *q, double *omc) {
  *q = exp(log(qlo) + (log(qhi) - log(qlo)) * uniform(s));
  const double u = uniform(s);
  switch ((int)(3 * uniform(s))) {
  case 0: *omc = 2 * u; break;
  case 1: *omc = pow(10, -12 * u); break;
  default: *omc = 2 - pow(10, -12 * u); break;
  }
}

typedef struct {
  double worst_bound;  /* largest |error| / (stated bound + quadrature allowance) */
  double worst_scaled; /* largest |error| / scale of the map (E phi^2 or E phi'^2) */
  int served;
} check_result;

/* Evaluate the table at n random points against the quadrature (or, for erf,
 * the closed forms of theory/activations.md 3.2, with no allowance). */
static check_result check_table(dm_table *t, bafu_act act, double qlo, double qhi, int n, uint64_t seed) {
  check_result r = {0, 0, 0};
  uint64_t s = seed;
  for (int i = 0; i < n; ++i) {
    double q, omc, b[4];
    random_point(&s, qlo, qhi, &q, &omc);
    dm_val v;
    if (!dm_eval_now(t, q, omc, &v, b)) continue;
    ++r.served;
    double A, B, F, G;
    const double rho = 1 - omc, allow = act == BAFU_ACT_ERF ? 0 : QERR;
    if (act == BAFU_ACT_ERF) {
      A = M_2_PI * atan(2 * q / sqrt(1 + 4 * q));
      B = (4 / M_PI) / sqrt(1 + 4 * q);
      F = M_2_PI * asin(2 * q * rho / (1 + 2 * q));
      G = (4 / M_PI) / sqrt((1 + 2 * q) * (1 + 2 * q) - 4 * q * q * rho * rho);
    } else {
      bafu_act_moments m;
      ck_assert_ok(bafu_act_moments_quad(act, q, &m));
      ck_assert_ok(bafu_act_bivariate_quad(act, q, q, q * rho, &F, &G));
      A = m.phi2;
      B = m.dphi2;
    }
    const double eF = fabs(q * (v.a - omc * v.dhat) - F), eG = fabs(v.g - G), eA = fabs(q * v.a - A),
                 eB = fabs(v.b - B);
    const double bF = q * (b[0] + omc * b[2]) + allow * A, bG = b[3] + allow * B, bA = q * b[0] + allow * A,
                 bB = b[1] + allow * B;
    r.worst_bound = fmax(r.worst_bound, fmax(fmax(eF / bF, eG / bG), fmax(eA / bA, eB / bB)));
    r.worst_scaled = fmax(r.worst_scaled, fmax(fmax(eF / A, eG / B), fmax(eA / A, eB / B)));
  }
  return r;
}

/* tanh, gelu, swish against the quadrature at random points, q from 1e-9 to 16
 * (and the stated bounds within the tolerance). */
START_TEST(test_table_vs_quadrature) {
  const bafu_act acts[] = {BAFU_ACT_TANH, BAFU_ACT_GELU, BAFU_ACT_SWISH};
  const bafu_act act = acts[_i];
  dm_table *t;
  ck_assert_ok(dm_alloc(act, NULL, &t));
  const check_result r = check_table(t, act, 1e-9, 16, 40, 0x9e3779b97f4a7c15ULL + (uint64_t)_i);
  printf("%s: %d of 40 points served, worst error / bound %.3g, worst error / scale %.3g, largest bound %.3g\n",
         bafu_act_name(act), r.served, r.worst_bound, r.worst_scaled, dm_max_bound(t));
  ck_assert_int_ge(r.served, 36); /* (a few points near rho = +-1 at large q may be left direct) */
  ck_assert_msg(r.worst_bound <= 1, "%s: an error exceeds its stated bound by %.3g", bafu_act_name(act),
                r.worst_bound);
  ck_assert_msg(dm_max_bound(t) <= TOL, "%s: a usable cell states %.3g", bafu_act_name(act), dm_max_bound(t));
  dm_free(t);
}
END_TEST

/* The table is built from the activation alone: for erf it must match the
 * closed forms within its stated bounds, with no allowance. */
START_TEST(test_table_erf_closed_form) {
  dm_table *t;
  ck_assert_ok(dm_alloc(BAFU_ACT_ERF, NULL, &t));
  const check_result r = check_table(t, BAFU_ACT_ERF, 1e-12, 40, 60, 2385);
  printf("erf: %d of 60 served, worst error / bound %.3g, worst error / scale %.3g\n", r.served, r.worst_bound,
         r.worst_scaled);
  ck_assert_int_ge(r.served, 55);
  ck_assert_msg(r.worst_bound <= 1, "erf: an error exceeds its stated bound by %.3g", r.worst_bound);
  ck_assert_msg(r.worst_scaled <= 3 * TOL, "erf: error %.3g of the scale", r.worst_scaled);
  dm_free(t);
}
END_TEST

/* A table of degree 4 in both variables that accepts every cell is far too
 * coarse: the check above must catch it (errors beyond the tolerance), while
 * its own stated bounds, computed the same way, still cover its errors. */
START_TEST(test_coarse_table_fails) {
  dm_opts o = dm_default_opts();
  o.degree_q = o.degree_rho = 4;
  o.accept_all = 1;
  dm_table *t;
  ck_assert_ok(dm_alloc(BAFU_ACT_TANH, &o, &t));
  const check_result r = check_table(t, BAFU_ACT_TANH, 0.05, 4, 12, 7);
  printf("tanh, degree 4: worst error / scale %.3g, worst error / its bound %.3g\n", r.worst_scaled, r.worst_bound);
  ck_assert_int_eq(r.served, 12);
  ck_assert_msg(r.worst_scaled > 100 * TOL, "a degree-4 table passed the tolerance check (%.3g)", r.worst_scaled);
  ck_assert_msg(r.worst_bound <= 1, "the coarse table's own bound is exceeded (%.3g)", r.worst_bound);
  dm_free(t);
  /* the same degrees with the tolerance enforced: the cells are bisected, and where that does not
     bring them within it they are not used; what is served meets the tolerance */
  o.accept_all = 0;
  ck_assert_ok(dm_alloc(BAFU_ACT_TANH, &o, &t));
  const check_result r2 = check_table(t, BAFU_ACT_TANH, 0.05, 4, 12, 7);
  ck_assert_msg(r2.worst_scaled <= 3 * TOL && r2.worst_bound <= 1, "served %d, error %.3g of the scale",
                r2.served, r2.worst_scaled);
  dm_free(t);
}
END_TEST

/* 1 - c_phi = (1 - rho) dhat / a keeps full relative precision as rho -> 1
 * (KR 10.1), where E[phi^2] - E[phi phi] cancels: at 1 - rho = 1e-12 against
 * the first-order law dhat(q, 1) = E[phi'^2] (Price), whose correction is
 * O(1 - rho) relative. */
START_TEST(test_one_minus_corr_relative) {
  const bafu_act acts[] = {BAFU_ACT_TANH, BAFU_ACT_GELU, BAFU_ACT_SWISH};
  const double qs[] = {1e-5, 0.37, 2.385};
  for (size_t a = 0; a < 3; ++a) {
    dm_table *t;
    ck_assert_ok(dm_alloc(acts[a], NULL, &t));
    for (size_t i = 0; i < 3; ++i) {
      dm_val v;
      ck_assert(dm_eval_now(t, qs[i], 1e-12, &v, NULL));
      bafu_act_moments m;
      ck_assert_ok(bafu_act_moments_quad(acts[a], qs[i], &m));
      const double omc_phi = 1e-12 * v.dhat / v.a, law = 1e-12 * m.dphi2 / (m.phi2 / qs[i]);
      ck_assert_close(omc_phi, law, 1e-9, 0);
    }
    dm_free(t);
  }
}
END_TEST

/* When the table serves (KR 10.4): a row is tabulated at its build_cost-th
 * direct request and serves the later stamps; frozen, the same requests get the
 * same answers; a restart serves as a fresh table; q = 0, subnormal q, q above
 * DM_QMAX are never served. */
START_TEST(test_policy) {
  dm_table *t;
  ck_assert_ok(dm_alloc(BAFU_ACT_GELU, NULL, &t));
  dm_val v, w;
  const double q = 0.413;
  for (size_t s = 0; s < 4; ++s) ck_assert_int_eq(dm_pair(t, q * (1 + 1e-3 * (double)s), 0.3, s, &v), 0);
  ck_assert_int_eq(dm_pair(t, q, 0.3, 3, &v), 0); /* built at stamp 3: serves from stamp 4 */
  ck_assert_int_eq(dm_pair(t, q, 0.3, 4, &v), 1);
  ck_assert_int_eq(dm_pair(t, q * 1.01, 1.7, 9, &w), 1);
  ck_assert_int_eq(dm_pair(t, 4 * q, 0.3, 9, &w), 0); /* another row */
  double a, b;
  ck_assert_int_eq(dm_diag(t, q, 5, &a, &b), 1);
  ck_assert(a == v.a && b == v.b);
  dm_freeze(t, 1);
  for (int k = 0; k < 10; ++k) ck_assert_int_eq(dm_pair(t, 4 * q, 0.3, 100, &w), 0); /* frozen: never built */
  ck_assert_int_eq(dm_pair(t, q, 0.3, 4, &w), 1);
  ck_assert(w.a == v.a && w.b == v.b && w.dhat == v.dhat && w.g == v.g);
  dm_freeze(t, 0);
  dm_restart(t);
  for (size_t s = 0; s < 4; ++s) ck_assert_int_eq(dm_pair(t, q, 0.3, s, &w), 0);
  ck_assert_int_eq(dm_pair(t, q, 0.3, 4, &w), 1);
  ck_assert(w.dhat == v.dhat && w.g == v.g);
  const double never[] = {0, 1e-310, DM_QMAX * 1.001, NAN};
  for (size_t k = 0; k < 4; ++k)
    for (size_t s = 0; s < 8; ++s) ck_assert_int_eq(dm_pair(t, never[k], 0.3, s, &w), 0);
  ck_assert_int_eq(dm_pair(t, q, -1e-3, 50, &w), 0); /* omc outside [0, 2] */
  ck_assert_int_eq(dm_eval_now(t, 0.0, 0.3, &w, NULL), 0);
  dm_free(t);
  /* errors of dm_alloc */
  dm_opts o = dm_default_opts();
  o.degree_q = 1;
  ck_assert_int_eq(dm_alloc(BAFU_ACT_TANH, &o, &t), BAFU_EINVAL);
  ck_assert_int_eq(dm_alloc(BAFU_ACT_COUNT, NULL, &t), BAFU_EINVAL);
}
END_TEST

int main(void) {
  gsl_set_error_handler_off();
  Suite *s = suite_create("dualmap");
  TCase *tc = tcase_create("table");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_table_vs_quadrature, 0, 3);
  tcase_add_test(tc, test_table_erf_closed_form);
  tcase_add_test(tc, test_coarse_table_fails);
  tcase_add_test(tc, test_one_minus_corr_relative);
  tcase_add_test(tc, test_policy);
  suite_add_tcase(s, tc);
  return bafu_run_suite(s);
}
