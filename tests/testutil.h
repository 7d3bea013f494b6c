/* testutil.h: helpers shared by the Check test programs.
 *
 * Check's ck_assert_double_eq_tol is absolute; numerical tests here compare
 * relative errors, reported with both values so a failure explains itself. */
#ifndef BAFU_TESTUTIL_H
#define BAFU_TESTUTIL_H

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "bafu/status.h"

/* |a - b| <= rtol * max(|a|, |b|) + atol */
#define ck_assert_close(a, b, rtol, atol)                                              \
  do {                                                                                 \
    double ck_a_ = (a), ck_b_ = (b);                                                   \
    double ck_s_ = fmax(fabs(ck_a_), fabs(ck_b_));                                     \
    ck_assert_msg(isfinite(ck_a_) && isfinite(ck_b_) &&                                \
                      fabs(ck_a_ - ck_b_) <= (rtol) * ck_s_ + (atol),                  \
                  "%s = %.17g vs %s = %.17g: rel diff %.3g > rtol %.3g (atol %.3g)",   \
                  #a, ck_a_, #b, ck_b_, fabs(ck_a_ - ck_b_) / (ck_s_ > 0 ? ck_s_ : 1), \
                  (double)(rtol), (double)(atol));                                     \
  } while (0)

#define ck_assert_ok(expr)                                                             \
  do {                                                                                 \
    bafu_status ck_st_ = (expr);                                                       \
    ck_assert_msg(ck_st_ == BAFU_OK, "%s failed: %s (%s)", #expr,                      \
                  bafu_status_string(ck_st_), bafu_last_error());                      \
  } while (0)

/* Run a suite; returns the process exit status. */
static inline int bafu_run_suite(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* qsort comparator for doubles, ascending. */
static inline int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

#endif
