/* test_gcond.c: the lazily sampled Gaussian matrix (bafu/gcond.h,
 * theory/engine.md 7): exact consistency of the answers, and their law. */
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <string.h>

#include "bafu/gcond.h"
#include "testutil.h"

typedef struct {
  gsl_rng *r;
  size_t calls;
} normals;

static void draw_normals(void *ctx, double sd, size_t count, double *out) {
  normals *nm = ctx;
  ++nm->calls;
  for (size_t i = 0; i < count; ++i) out[i] = gsl_ran_gaussian_ziggurat(nm->r, sd);
}

static double dot(const double *a, const double *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

static void randn(gsl_rng *r, double *v, size_t n) {
  for (size_t i = 0; i < n; ++i) v[i] = gsl_ran_gaussian(r, 1.0);
}

/* Interleaved right and left queries on a 7 x 5 matrix: every answered pair
 * satisfies <u, W v> = <W^T u, v>; a combination of answered vectors costs no
 * new direction and is answered linearly; a repeated query gives the same
 * answer. Without the P C^T term of a right answer (or the Q A^T term of a
 * left one) the duality fails at order 1. */
START_TEST(test_identities) {
  enum { R = 7, C = 5, NV = 3, NU = 3 };
  double mem[4096];
  ck_assert_uint_le(bafu_gcond_doubles(R, C, 4, 3), sizeof mem / sizeof mem[0]);
  bafu_gcond g;
  bafu_gcond_init(&g, R, C, 4, 3, 0.8, mem);
  normals nm = {gsl_rng_alloc(gsl_rng_mt19937), 0};
  gsl_rng_set(nm.r, 11);
  double v[NV][C], Wv[NV][R], u[NU][R], Wtu[NU][C];
  for (int t = 0; t < NV; ++t) { /* right, left, right, left, ... */
    randn(nm.r, v[t], C);
    ck_assert_ok(bafu_gcond_apply(&g, 0, v[t], Wv[t], draw_normals, &nm));
    randn(nm.r, u[t], R);
    ck_assert_ok(bafu_gcond_apply(&g, 1, u[t], Wtu[t], draw_normals, &nm));
  }
  ck_assert_uint_eq(g.nright, NV);
  ck_assert_uint_eq(g.nleft, NU);
  for (int a = 0; a < NU; ++a)
    for (int b = 0; b < NV; ++b) {
      const double scale = sqrt(dot(u[a], u[a], R) * dot(v[b], v[b], C));
      ck_assert_close(dot(u[a], Wv[b], R), dot(Wtu[a], v[b], C), 0, 1e-13 * scale);
    }
  /* a combination of v0 and v2: no new direction, no new random numbers */
  double w[C], Ww[R], Wv0again[R];
  for (int i = 0; i < C; ++i) w[i] = 0.3 * v[0][i] - 1.7 * v[2][i];
  const size_t calls = nm.calls;
  ck_assert_ok(bafu_gcond_apply(&g, 0, w, Ww, draw_normals, &nm));
  ck_assert_ok(bafu_gcond_apply(&g, 0, v[0], Wv0again, draw_normals, &nm));
  ck_assert_uint_eq(nm.calls, calls);
  ck_assert_uint_eq(g.nright, NV);
  for (int i = 0; i < R; ++i) {
    ck_assert_close(Ww[i], 0.3 * Wv[0][i] - 1.7 * Wv[2][i], 0, 1e-13);
    ck_assert_close(Wv0again[i], Wv[0][i], 0, 1e-13);
  }
  /* the right side holds 4 directions: the 4th new one fits, the 5th does not */
  double x[C], Wx[R];
  randn(nm.r, x, C);
  ck_assert_ok(bafu_gcond_apply(&g, 0, x, Wx, draw_normals, &nm));
  randn(nm.r, x, C);
  ck_assert_int_eq(bafu_gcond_apply(&g, 0, x, Wx, draw_normals, &nm), BAFU_ELIMIT);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "4"));
  x[2] = NAN;
  ck_assert_int_eq(bafu_gcond_apply(&g, 1, x, Wx, draw_normals, &nm), BAFU_ENUMERIC);
  /* a subnormal query: the new direction is v / |v| computed by division, so
   * it and every later answer stay finite */
  bafu_gcond_reset(&g, 0.8);
  const double tiny[C] = {1e-310, 2e-310, 0, 0, 0};
  double Wt[R], Wx2[R], Wu[C];
  ck_assert_ok(bafu_gcond_apply(&g, 0, tiny, Wt, draw_normals, &nm));
  randn(nm.r, x, C);
  ck_assert_ok(bafu_gcond_apply(&g, 0, x, Wx2, draw_normals, &nm));
  randn(nm.r, u[0], R);
  ck_assert_ok(bafu_gcond_apply(&g, 1, u[0], Wu, draw_normals, &nm));
  for (int i = 0; i < R; ++i) ck_assert(isfinite(Wt[i]) && isfinite(Wx2[i]));
  for (int i = 0; i < C; ++i) ck_assert(isfinite(Wu[i]));
  ck_assert_close(dot(u[0], Wx2, R), dot(Wu, x, C), 0, 1e-13 * sqrt(dot(u[0], u[0], R) * dot(x, x, C)));
  /* reset: a new matrix, nothing answered */
  bafu_gcond_reset(&g, 0.8);
  ck_assert_uint_eq(g.nright + g.nleft, 0);
  gsl_rng_free(nm.r);
}
END_TEST

/* Recovering a 4 x 3 matrix column by column after two left queries: its
 * transpose reproduces the earlier left answers, and once it is determined
 * (full right rank) later queries of either side use no random numbers and
 * agree with the recovered matrix. */
START_TEST(test_full_rank) {
  enum { R = 4, C = 3 };
  double mem[1024];
  bafu_gcond g;
  bafu_gcond_init(&g, R, C, 8, 8, 1.3, mem); /* caps clipped to 3 and 4 */
  ck_assert_uint_eq(g.cap_right, C);
  ck_assert_uint_eq(g.cap_left, R);
  normals nm = {gsl_rng_alloc(gsl_rng_mt19937), 0};
  gsl_rng_set(nm.r, 5);
  double u[2][R], Wtu[2][C], W[C][R]; /* W[i] = column i */
  for (int a = 0; a < 2; ++a) {
    randn(nm.r, u[a], R);
    ck_assert_ok(bafu_gcond_apply(&g, 1, u[a], Wtu[a], draw_normals, &nm));
  }
  for (int i = 0; i < C; ++i) {
    double e[C] = {0};
    e[i] = 1;
    ck_assert_ok(bafu_gcond_apply(&g, 0, e, W[i], draw_normals, &nm));
  }
  for (int a = 0; a < 2; ++a)
    for (int i = 0; i < C; ++i) ck_assert_close(dot(W[i], u[a], R), Wtu[a][i], 0, 1e-13 * sqrt(dot(u[a], u[a], R)));
  const size_t calls = nm.calls;
  double v[C], Wv[R], z[R], Wtz[C];
  randn(nm.r, v, C);
  randn(nm.r, z, R);
  ck_assert_ok(bafu_gcond_apply(&g, 0, v, Wv, draw_normals, &nm));
  ck_assert_ok(bafu_gcond_apply(&g, 1, z, Wtz, draw_normals, &nm));
  ck_assert_uint_eq(nm.calls, calls);
  for (int r = 0; r < R; ++r) {
    double s = 0;
    for (int i = 0; i < C; ++i) s += W[i][r] * v[i];
    ck_assert_close(Wv[r], s, 0, 1e-12);
  }
  for (int i = 0; i < C; ++i) ck_assert_close(Wtz[i], dot(W[i], z, R), 0, 1e-12);
  gsl_rng_free(nm.r);
}
END_TEST

/* The law: a 3 x 2 matrix, sd 0.7, probed adaptively (u1 random, v1 random,
 * then the left query u2 = W v1 and the right query v2 = W^T u1: queries
 * chosen from earlier answers), then recovered column by column. Over N =
 * 20000 draws each of the 6 entries has mean 0 (se sd/sqrt N) and second
 * moment sd^2 (se sd^2 sqrt(2/N)), and each pair is uncorrelated (se
 * sd^2/sqrt N): all within 4 standard errors (exact law, no allowance).
 * Noise not projected off P, or scaled by sd^2, fails the second moments. */
START_TEST(test_law) {
  enum { R = 3, C = 2, N = 20000 };
  const double sd = 0.7;
  double mem[512];
  bafu_gcond g;
  bafu_gcond_init(&g, R, C, C, R, sd, mem);
  normals nm = {gsl_rng_alloc(gsl_rng_mt19937), 0};
  gsl_rng_set(nm.r, 17);
  double m1[R * C] = {0}, m2[R * C][R * C];
  memset(m2, 0, sizeof m2);
  for (int t = 0; t < N; ++t) {
    bafu_gcond_reset(&g, sd);
    double u1[R], v1[C], Wv1[R], Wtu1[C], Wtu2[C], Wv2[R], W[R * C];
    randn(nm.r, u1, R);
    randn(nm.r, v1, C);
    ck_assert_ok(bafu_gcond_apply(&g, 1, u1, Wtu1, draw_normals, &nm));
    ck_assert_ok(bafu_gcond_apply(&g, 0, v1, Wv1, draw_normals, &nm));
    ck_assert_ok(bafu_gcond_apply(&g, 1, Wv1, Wtu2, draw_normals, &nm));
    ck_assert_ok(bafu_gcond_apply(&g, 0, Wtu1, Wv2, draw_normals, &nm));
    for (int i = 0; i < C; ++i) {
      double e[C] = {0};
      e[i] = 1;
      ck_assert_ok(bafu_gcond_apply(&g, 0, e, W + i * R, draw_normals, &nm));
    }
    for (int a = 0; a < R * C; ++a) {
      m1[a] += W[a];
      for (int b = 0; b < R * C; ++b) m2[a][b] += W[a] * W[b];
    }
  }
  const double s2 = sd * sd;
  for (int a = 0; a < R * C; ++a) {
    ck_assert_msg(fabs(m1[a] / N) < 4 * sd / sqrt(N), "entry %d: mean %g", a, m1[a] / N);
    ck_assert_msg(fabs(m2[a][a] / N - s2) < 4 * s2 * sqrt(2.0 / N), "entry %d: E w^2 = %g, want %g", a, m2[a][a] / N,
                  s2);
    for (int b = 0; b < a; ++b)
      ck_assert_msg(fabs(m2[a][b] / N) < 4 * s2 / sqrt(N), "entries %d, %d: E w w' = %g", a, b, m2[a][b] / N);
  }
  gsl_rng_free(nm.r);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("gcond");
  TCase *tc = tcase_create("gcond");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_identities);
  tcase_add_test(tc, test_full_rank);
  tcase_add_test(tc, test_law);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return bafu_run_suite(suite()); }
