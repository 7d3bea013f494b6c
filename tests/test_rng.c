/* test_rng.c: the fast Gaussian generator (xoshiro256** + ziggurat) against
 * the normal law and against GSL's generator, in units of standard errors. */
#include <gsl/gsl_cdf.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/rng.h"
#include "testutil.h"

static int cmp(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Moments of N = 4e6 draws: mean 0 (se 1/sqrt N), variance 1 (se sqrt(2/N)),
 * fourth moment 3 (se sqrt(96/N)), P(|x| > 3.4426) (the ziggurat's tail) within
 * 5 standard errors; the same statistics for GSL's generator pass the same test. */
START_TEST(test_moments) {
  const size_t N = 4000000;
  double *x = malloc(N * sizeof *x);
  for (int which = 0; which < 2; ++which) {
    if (which == 0) {
      bafu_fastrng r;
      bafu_fastrng_seed(&r, 3, 0);
      bafu_fastrng_fill_gaussian(&r, 1.0, N, x);
    } else {
      gsl_rng *g = gsl_rng_alloc(gsl_rng_mt19937);
      bafu_rng_seed(g, 3, 0);
      bafu_fill_gaussian(g, 1.0, N, x);
      gsl_rng_free(g);
    }
    double m1 = 0, m2 = 0, m4 = 0, tail = 0;
    for (size_t i = 0; i < N; ++i) {
      m1 += x[i];
      m2 += x[i] * x[i];
      m4 += x[i] * x[i] * x[i] * x[i];
      tail += fabs(x[i]) > 3.442619855899;
    }
    m1 /= N, m2 /= N, m4 /= N, tail /= N;
    const double pt = 2 * gsl_cdf_ugaussian_Q(3.442619855899);
    ck_assert_msg(fabs(m1) < 5 / sqrt(N), "gen %d mean %g", which, m1);
    ck_assert_msg(fabs(m2 - 1) < 5 * sqrt(2.0 / N), "gen %d var %g", which, m2);
    ck_assert_msg(fabs(m4 - 3) < 5 * sqrt(96.0 / N), "gen %d m4 %g", which, m4);
    ck_assert_msg(fabs(tail - pt) < 5 * sqrt(pt / N), "gen %d tail %g vs %g", which, tail, pt);
  }
  free(x);
}
END_TEST

/* Kolmogorov-Smirnov against the normal cdf (N = 1e6: the 1e-3 critical value of
 * sqrt(N) D is 1.95), and the same seed gives the same numbers. */
START_TEST(test_ks_and_repeat) {
  const size_t N = 1000000;
  double *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
  bafu_fastrng r;
  bafu_fastrng_seed(&r, 17, 4);
  bafu_fastrng_fill_gaussian(&r, 2.5, N, x);
  bafu_fastrng_seed(&r, 17, 4);
  bafu_fastrng_fill_gaussian(&r, 2.5, N, y);
  ck_assert_int_eq(memcmp(x, y, N * sizeof *x), 0);
  bafu_fastrng_seed(&r, 17, 5);
  bafu_fastrng_fill_gaussian(&r, 2.5, 16, y);
  ck_assert(memcmp(x, y, 16 * sizeof *x) != 0);
  qsort(x, N, sizeof *x, cmp);
  double D = 0;
  for (size_t i = 0; i < N; ++i) {
    const double F = gsl_cdf_gaussian_P(x[i], 2.5);
    D = fmax(D, fmax(fabs(F - (double)i / N), fabs(F - (double)(i + 1) / N)));
  }
  ck_assert_msg(sqrt((double)N) * D < 1.95, "KS statistic sqrt(N) D = %g", sqrt((double)N) * D);
  free(x);
  free(y);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("rng");
  TCase *tc = tcase_create("rng");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_moments);
  tcase_add_test(tc, test_ks_and_repeat);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return bafu_run_suite(suite()); }
