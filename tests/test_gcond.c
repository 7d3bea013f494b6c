/* test_gcond.c: the lazily sampled Gaussian matrix (bafu/gcond.h,
 * theory/engine.md 7): exact consistency of the answers, and their law. */
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <string.h>

#include "bafu/gcond.h"
#include "testutil.h"

typedef struct {
  gsl_rng *r;
  size_t calls, numbers;
} normals;

static void draw_normals(void *ctx, double sd, size_t count, double *out) {
  normals *nm = ctx;
  ++nm->calls;
  nm->numbers += count;
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
  normals nm = {gsl_rng_alloc(gsl_rng_mt19937), 0, 0};
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
  normals nm = {gsl_rng_alloc(gsl_rng_mt19937), 0, 0};
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
  normals nm = {gsl_rng_alloc(gsl_rng_mt19937), 0, 0};
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

/* ---- blocked queries (bafu_gcond_apply_block, theory/engine.md 7.3) ---- */

enum { BR = 11, BC = 9, BMAX = 6 };

/* One object answering blocks, one answering the same queries column by
 * column, each with its own generator from the same seed. */
typedef struct {
  bafu_gcond g[2];
  normals nm[2];
  double mem[2][2048], work[1024];
} twin;

static void twin_init(twin *t, size_t rows, size_t cols, size_t capr, size_t capl, double sd) {
  ck_assert_uint_le(bafu_gcond_doubles(rows, cols, capr, capl), 2048);
  ck_assert_uint_le(bafu_gcond_block_doubles(rows, cols, capr, capl, BMAX), 1024);
  for (int i = 0; i < 2; ++i) {
    bafu_gcond_init(&t->g[i], rows, cols, capr, capl, sd, t->mem[i]);
    t->nm[i] = (normals){gsl_rng_alloc(gsl_rng_mt19937), 0, 0};
    gsl_rng_set(t->nm[i].r, 23);
  }
}

/* Out = W V (m columns) by both objects; the block answer goes to Out, and
 * they agree column by column to rounding (1e-12 of the answer's norm), with
 * the same new directions and the same random numbers. */
static void twin_apply(twin *t, int trans, size_t m, const double *V, double *Out) {
  const size_t din = trans ? t->g[0].rows : t->g[0].cols, dout = trans ? t->g[0].cols : t->g[0].rows;
  double col[BR];
  ck_assert_ok(bafu_gcond_apply_block(&t->g[0], trans, m, 1.0, V, 0.0, t->work, Out, draw_normals, &t->nm[0]));
  for (size_t a = 0; a < m; ++a) {
    ck_assert_ok(bafu_gcond_apply(&t->g[1], trans, V + a * din, col, draw_normals, &t->nm[1]));
    double d = 0, s = 0;
    for (size_t i = 0; i < dout; ++i) {
      d += (col[i] - Out[a * dout + i]) * (col[i] - Out[a * dout + i]);
      s += col[i] * col[i];
    }
    ck_assert_msg(sqrt(d) <= 1e-12 * sqrt(s) + 1e-300, "column %zu: block and column answers differ by %g of %g", a,
                  sqrt(d), sqrt(s));
  }
  ck_assert_uint_eq(t->g[0].nright, t->g[1].nright);
  ck_assert_uint_eq(t->g[0].nleft, t->g[1].nleft);
  ck_assert_uint_eq(t->nm[0].numbers, t->nm[1].numbers);
}

static void twin_free(twin *t) {
  for (int i = 0; i < 2; ++i) gsl_rng_free(t->nm[i].r);
}

/* Interleaved blocks of right and left queries on an 11 x 9 matrix, queries
 * chosen from earlier answers, with repeated, dependent and zero columns:
 * (1) the block answers agree to rounding with the column-by-column answers
 * and use the same random numbers (twin_apply); (2) a column in the span of
 * earlier columns of its block gives no direction (the counts below), and its
 * answer is the same combination of their answers; (3) <u, W v> = <W^T u, v>
 * for every answered pair to 1e-13 |u| |v|; (4) once the right side spans
 * R^9 a left block is determined: no random numbers; (5) alpha and beta;
 * a block of one column is bafu_gcond_apply() bit for bit. */
START_TEST(test_block_identities) {
  twin t;
  twin_init(&t, BR, BC, BC, BR, 0.9);
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, 3);
  double V[3][BC * 5], WV[3][BR * 5], U[3][BR * 5], WtU[3][BC * 5];
  const size_t mv[3] = {3, 4, 5}, mu[3] = {4, 5, 3};
  /* right 1: three random columns */
  randn(r, V[0], BC * 3);
  twin_apply(&t, 0, 3, V[0], WV[0]);
  ck_assert_uint_eq(t.g[0].nright, 3);
  /* left 1: random, W v_0 (an answer), the first again, 2 u_0 - u_1 */
  randn(r, U[0], BR);
  memcpy(U[0] + BR, WV[0], BR * sizeof(double));
  memcpy(U[0] + 2 * BR, U[0], BR * sizeof(double));
  for (int i = 0; i < BR; ++i) U[0][3 * BR + i] = 2 * U[0][i] - U[0][BR + i];
  twin_apply(&t, 1, 4, U[0], WtU[0]);
  ck_assert_uint_eq(t.g[0].nleft, 2);
  /* right 2: W^T u_0 (an answer), random, zero, v_1 + 0.5 (random) */
  memcpy(V[1], WtU[0], BC * sizeof(double));
  randn(r, V[1] + BC, BC);
  for (int i = 0; i < BC; ++i) V[1][2 * BC + i] = 0, V[1][3 * BC + i] = V[0][BC + i] + 0.5 * V[1][BC + i];
  twin_apply(&t, 0, 4, V[1], WV[1]);
  ck_assert_uint_eq(t.g[0].nright, 5);
  /* left 2: five random; right 3: five random (the last one after the right
   * side spans R^9, so in its span) */
  randn(r, U[1], BR * 5);
  twin_apply(&t, 1, 5, U[1], WtU[1]);
  ck_assert_uint_eq(t.g[0].nleft, 7);
  randn(r, V[2], BC * 5);
  twin_apply(&t, 0, 5, V[2], WV[2]);
  ck_assert_uint_eq(t.g[0].nright, BC);
  /* left 3: determined, no random numbers */
  const size_t numbers = t.nm[0].numbers;
  randn(r, U[2], BR * 3);
  twin_apply(&t, 1, 3, U[2], WtU[2]);
  ck_assert_uint_eq(t.nm[0].numbers, numbers);
  ck_assert_uint_eq(t.g[0].nleft, 7);
  /* (2) dependent, repeated and zero columns */
  for (int i = 0; i < BC; ++i) {
    ck_assert_close(WtU[0][2 * BC + i], WtU[0][i], 1e-13, 1e-13);
    ck_assert_close(WtU[0][3 * BC + i], 2 * WtU[0][i] - WtU[0][BC + i], 0, 1e-13 * 4);
  }
  for (int i = 0; i < BR; ++i) {
    ck_assert(WV[1][2 * BR + i] == 0);
    ck_assert_close(WV[1][3 * BR + i], WV[0][BR + i] + 0.5 * WV[1][BR + i], 0, 1e-13 * 4);
  }
  /* (3) every answered pair */
  for (int bu = 0; bu < 3; ++bu)
    for (size_t a = 0; a < mu[bu]; ++a)
      for (int bv = 0; bv < 3; ++bv)
        for (size_t b = 0; b < mv[bv]; ++b) {
          const double *u = U[bu] + a * BR, *v = V[bv] + b * BC;
          const double scale = sqrt(dot(u, u, BR) * dot(v, v, BC));
          ck_assert_msg(fabs(dot(u, WV[bv] + b * BR, BR) - dot(WtU[bu] + a * BC, v, BC)) <= 1e-13 * scale,
                        "left %d:%zu, right %d:%zu: <u, W v> = %.17g, <W^T u, v> = %.17g", bu, a, bv, b,
                        dot(u, WV[bv] + b * BR, BR), dot(WtU[bu] + a * BC, v, BC));
        }
  /* (5) Out = 1.3 W V + (-0.4) Out for answered columns, and m = 1 */
  double O[BR * 3], O0[BR * 3], col[BR], one[BR];
  randn(r, O0, BR * 3);
  memcpy(O, O0, sizeof O);
  ck_assert_ok(bafu_gcond_apply_block(&t.g[0], 0, 3, 1.3, V[0], -0.4, t.work, O, draw_normals, &t.nm[0]));
  for (int i = 0; i < BR * 3; ++i) ck_assert_close(O[i], 1.3 * WV[0][i] - 0.4 * O0[i], 0, 1e-13 * 8);
  bafu_gcond_reset(&t.g[0], 0.9);
  bafu_gcond_reset(&t.g[1], 0.9);
  gsl_rng_set(t.nm[0].r, 8);
  gsl_rng_set(t.nm[1].r, 8);
  ck_assert_ok(bafu_gcond_apply_block(&t.g[0], 0, 1, 1.0, V[0], 0.0, t.work, one, draw_normals, &t.nm[0]));
  ck_assert_ok(bafu_gcond_apply(&t.g[1], 0, V[0], col, draw_normals, &t.nm[1]));
  ck_assert_mem_eq(one, col, sizeof one);
  gsl_rng_free(r);
  twin_free(&t);
}
END_TEST

/* Nearly parallel columns (v_a = x + 1e-7 y_a, and a second block against
 * them): one pass of classical Gram-Schmidt would leave directions
 * orthogonal only to about 1e-9; with the repeated pass the answered
 * directions of both sides are orthonormal to 1e-14, and <u, W v> =
 * <W^T u, v> holds to 1e-13 |u| |v| for every answered pair. */
START_TEST(test_block_ill_conditioned) {
  enum { R = 30, C = 40, M = 8 };
  static double mem[8192], work[4096];
  bafu_gcond g;
  ck_assert_uint_le(bafu_gcond_doubles(R, C, 2 * M, M), 8192);
  ck_assert_uint_le(bafu_gcond_block_doubles(R, C, 2 * M, M, M), 4096);
  bafu_gcond_init(&g, R, C, 2 * M, M, 0.3, mem);
  normals nm = {gsl_rng_alloc(gsl_rng_mt19937), 0, 0};
  gsl_rng_set(nm.r, 13);
  double V[2][C * M], WV[2][R * M], U[R * M], WtU[C * M], x[C];
  randn(nm.r, x, C);
  for (int blk = 0; blk < 2; ++blk) {
    randn(nm.r, V[blk], C * M);
    for (int i = 0; i < C * M; ++i) V[blk][i] = x[i % C] + (blk ? 1e-5 : 1e-7) * V[blk][i];
    ck_assert_ok(bafu_gcond_apply_block(&g, 0, M, 1.0, V[blk], 0.0, work, WV[blk], draw_normals, &nm));
  }
  ck_assert_uint_eq(g.nright, 2 * M);
  for (int a = 0; a < M; ++a)
    for (int i = 0; i < R; ++i) U[a * R + i] = WV[0][a * R + i] + 1e-6 * WV[1][a * R + i];
  ck_assert_ok(bafu_gcond_apply_block(&g, 1, M, 1.0, U, 0.0, work, WtU, draw_normals, &nm));
  ck_assert_uint_eq(g.nleft, M);
  for (size_t a = 0; a < g.nright; ++a)
    for (size_t b = 0; b <= a; ++b)
      ck_assert_close(dot(g.Q + a * C, g.Q + b * C, C), a == b, 0, 1e-14);
  for (size_t a = 0; a < g.nleft; ++a)
    for (size_t b = 0; b <= a; ++b)
      ck_assert_close(dot(g.P + a * R, g.P + b * R, R), a == b, 0, 1e-14);
  for (int a = 0; a < M; ++a)
    for (int blk = 0; blk < 2; ++blk)
      for (int b = 0; b < M; ++b) {
        const double *u = U + a * R, *v = V[blk] + b * C;
        const double scale = sqrt(dot(u, u, R) * dot(v, v, C));
        ck_assert_close(dot(u, WV[blk] + b * R, R), dot(WtU + a * C, v, C), 0, 1e-13 * scale);
      }
  gsl_rng_free(nm.r);
}
END_TEST

/* A block whose new directions exceed the capacity: BAFU_ELIMIT naming it,
 * nothing kept (no direction, no random number), and the object answers a
 * block that fits afterwards as if the refused one never came; a non-finite
 * column: BAFU_ENUMERIC, nothing kept. */
START_TEST(test_block_capacity) {
  enum { R = 7, C = 5 };
  double mem[1024], work[512];
  bafu_gcond g;
  bafu_gcond_init(&g, R, C, 4, 3, 0.8, mem);
  ck_assert_uint_le(bafu_gcond_doubles(R, C, 4, 3), 1024);
  ck_assert_uint_le(bafu_gcond_block_doubles(R, C, 4, 3, 4), 512);
  normals nm = {gsl_rng_alloc(gsl_rng_mt19937), 0, 0};
  gsl_rng_set(nm.r, 31);
  double V[C * 4], WV[R * 4], X[C * 4], WX[R * 4], u[R], Wtu[C];
  randn(nm.r, V, C * 3);
  ck_assert_ok(bafu_gcond_apply_block(&g, 0, 3, 1.0, V, 0.0, work, WV, draw_normals, &nm));
  ck_assert_uint_eq(g.nright, 3);
  const size_t numbers = nm.numbers;
  /* the first column answered, then two new ones: 5 > 4 directions */
  memcpy(X, V, C * sizeof(double));
  randn(nm.r, X + C, 2 * C);
  ck_assert_int_eq(bafu_gcond_apply_block(&g, 0, 3, 1.0, X, 0.0, work, WX, draw_normals, &nm), BAFU_ELIMIT);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "more than 4 new right directions"));
  ck_assert_uint_eq(g.nright, 3);
  ck_assert_uint_eq(nm.numbers, numbers);
  X[C + 1] = NAN;
  ck_assert_int_eq(bafu_gcond_apply_block(&g, 0, 3, 1.0, X, 0.0, work, WX, draw_normals, &nm), BAFU_ENUMERIC);
  ck_assert_uint_eq(g.nright, 3);
  /* one new direction with two answered ones: fits */
  randn(nm.r, X, C);
  memcpy(X + C, V + C, C * sizeof(double));
  memcpy(X + 2 * C, V + 2 * C, C * sizeof(double));
  ck_assert_ok(bafu_gcond_apply_block(&g, 0, 3, 1.0, X, 0.0, work, WX, draw_normals, &nm));
  ck_assert_uint_eq(g.nright, 4);
  for (int i = 0; i < R; ++i) ck_assert_close(WX[R + i], WV[R + i], 1e-13, 1e-14);
  randn(nm.r, u, R);
  ck_assert_ok(bafu_gcond_apply_block(&g, 1, 1, 1.0, u, 0.0, work, Wtu, draw_normals, &nm));
  for (int b = 0; b < 3; ++b) {
    const double scale = sqrt(dot(u, u, R) * dot(V + b * C, V + b * C, C));
    ck_assert_close(dot(u, WV + b * R, R), dot(Wtu, V + b * C, C), 0, 1e-13 * scale);
    ck_assert_close(dot(u, WX + b * R, R), dot(Wtu, X + b * C, C), 0, 1e-13 * scale);
  }
  gsl_rng_free(nm.r);
}
END_TEST

/* The joint law through blocks: a 3 x 4 matrix, sd 0.7, per draw a left
 * block (u1), a right block (v1, v2, v1 - 0.5 v2, v1: two directions), a left
 * block chosen from answers (W v2 + 0.5 u1, u1: one direction), then a right
 * block (W^T u1, e1, e2, e3, e4) that gives the last two directions and
 * recovers W column by column (e2, e3, e4 lie in the span by then, so they are
 * answered from it). Over N = 20000 draws each of the 12 entries has mean 0 (se
 * sd/sqrt N) and second moment sd^2 (se sd^2 sqrt(2/N)), and each of the 66
 * pairs is uncorrelated (se sd^2/sqrt N): all within 4 standard errors.
 * Without the P C^T term of a block's images (or with its noise not
 * projected off P) the second moments fail. */
START_TEST(test_block_law) {
  enum { R = 3, C = 4, N = 20000, E = R * C };
  const double sd = 0.7;
  double mem[512], work[512];
  bafu_gcond g;
  ck_assert_uint_le(bafu_gcond_doubles(R, C, C, R), 512);
  ck_assert_uint_le(bafu_gcond_block_doubles(R, C, C, R, 5), 512);
  bafu_gcond_init(&g, R, C, C, R, sd, mem);
  normals nm = {gsl_rng_alloc(gsl_rng_mt19937), 0, 0};
  gsl_rng_set(nm.r, 41);
  double m1[E] = {0}, m2[E][E];
  memset(m2, 0, sizeof m2);
  for (int t = 0; t < N; ++t) {
    bafu_gcond_reset(&g, sd);
    double u1[R], Wtu1[C], V[C * 4], WV[R * 4], U[R * 2], WtU[C * 2], X[C * 5], WX[R * 5];
    randn(nm.r, u1, R);
    ck_assert_ok(bafu_gcond_apply_block(&g, 1, 1, 1.0, u1, 0.0, work, Wtu1, draw_normals, &nm));
    randn(nm.r, V, 2 * C);
    for (int i = 0; i < C; ++i) V[2 * C + i] = V[i] - 0.5 * V[C + i], V[3 * C + i] = V[i];
    ck_assert_ok(bafu_gcond_apply_block(&g, 0, 4, 1.0, V, 0.0, work, WV, draw_normals, &nm));
    for (int i = 0; i < R; ++i) U[i] = WV[R + i] + 0.5 * u1[i], U[R + i] = u1[i];
    ck_assert_ok(bafu_gcond_apply_block(&g, 1, 2, 1.0, U, 0.0, work, WtU, draw_normals, &nm));
    memset(X, 0, sizeof X);
    memcpy(X, Wtu1, C * sizeof(double));
    for (int i = 0; i < C; ++i) X[(i + 1) * C + i] = 1;
    ck_assert_ok(bafu_gcond_apply_block(&g, 0, 5, 1.0, X, 0.0, work, WX, draw_normals, &nm));
    ck_assert_uint_eq(g.nleft, 2);
    ck_assert_uint_eq(g.nright, C);
    const double *W = WX + R; /* column i = W e_i */
    for (int a = 0; a < E; ++a) {
      m1[a] += W[a];
      for (int b = 0; b < E; ++b) m2[a][b] += W[a] * W[b];
    }
  }
  const double s2 = sd * sd;
  for (int a = 0; a < E; ++a) {
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
  tcase_add_test(tc, test_block_identities);
  tcase_add_test(tc, test_block_capacity);
  tcase_add_test(tc, test_block_ill_conditioned);
  tcase_add_test(tc, test_block_law);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return bafu_run_suite(suite()); }
