/* test_reduce.c: the reductions of bafu/reduce.h against closed forms (an
 * exact line, a small data set fitted by hand, parabolas with a known vertex,
 * the mean and standard error of known data), the table reader
 * (bafu/tabread.h) on both layouts, and the grouped reductions of a table,
 * with their error paths. */
#define _POSIX_C_SOURCE 200809L /* mkstemp, fdopen */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bafu/reduce.h"
#include "bafu/tabread.h"
#include "testutil.h"

/* A temporary file holding `text`; its path in buf. */
static void write_tmp(char *buf, const char *text) {
  strcpy(buf, "/tmp/bafu_test_reduce_XXXXXX");
  const int fd = mkstemp(buf);
  ck_assert_int_ge(fd, 0);
  FILE *f = fdopen(fd, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_line_exact) {
  /* y = -1.37 + 2.615 x at odd abscissae: the fit is the line, residuals 0 */
  const double x[5] = {0.31, 1.7, 2.05, 4.4, 7.9};
  double y[5];
  for (int i = 0; i < 5; ++i) y[i] = -1.37 + 2.615 * x[i];
  bafu_line_fit f;
  ck_assert_ok(bafu_fit_line(5, x, y, NULL, &f));
  ck_assert_close(f.slope, 2.615, 1e-14, 0);
  ck_assert_close(f.intercept, -1.37, 1e-14, 0);
  ck_assert(f.slope_se < 1e-13 && f.intercept_se < 1e-13 && f.rss < 1e-25);
  ck_assert_uint_eq(f.n, 5);
}
END_TEST

START_TEST(test_line_by_hand) {
  /* x = 0..3, y = 1 3 2 5: xbar 1.5, Sxx 5, Sxy 5.5, slope 1.1, intercept
     1.1, residuals -0.1 0.8 -1.3 0.6, RSS 2.7, s^2 = 1.35, se(slope)^2 =
     s^2/Sxx = 0.27, se(intercept)^2 = s^2 (1/n + xbar^2/Sxx) = 0.945,
     cov = -s^2 xbar / Sxx = -0.405 (theory/reduce.md 1) */
  const double x[4] = {0, 1, 2, 3}, y[4] = {1, 3, 2, 5};
  bafu_line_fit f;
  ck_assert_ok(bafu_fit_line(4, x, y, NULL, &f));
  ck_assert_close(f.slope, 1.1, 1e-14, 0);
  ck_assert_close(f.intercept, 1.1, 1e-14, 0);
  ck_assert_close(f.rss, 2.7, 1e-13, 0);
  ck_assert_close(f.slope_se, sqrt(0.27), 1e-13, 0);
  ck_assert_close(f.intercept_se, sqrt(0.945), 1e-13, 0);
  ck_assert_close(f.cov, -0.405, 1e-13, 0);
  /* weighted with equal errors sigma: same line, se^2(slope) = sigma^2/Sxx */
  const double se[4] = {0.7, 0.7, 0.7, 0.7};
  ck_assert_ok(bafu_fit_line(4, x, y, se, &f));
  ck_assert_close(f.slope, 1.1, 1e-14, 0);
  ck_assert_close(f.slope_se, 0.7 / sqrt(5.0), 1e-13, 0);
  ck_assert_close(f.rss, 2.7 / 0.49, 1e-13, 0);
  /* weights: a point with a huge error barely counts; the other three fix
     the line through (0,1), (1,3), (3,5): slope 9/7... by hand: xbar 4/3,
     ybar 3, Sxx 14/3, Sxy 6, slope 9/7 */
  const double se2[4] = {1, 1, 1e8, 1};
  ck_assert_ok(bafu_fit_line(4, x, y, se2, &f));
  ck_assert_close(f.slope, 9.0 / 7.0, 1e-12, 0);
  ck_assert_close(f.slope_se, sqrt(3.0 / 14.0), 1e-10, 0);
}
END_TEST

START_TEST(test_line_errors) {
  const double x[3] = {1, 2, 3}, y[3] = {1, 2, 4}, xs[3] = {2, 2, 2}, bad[3] = {1, NAN, 3}, se0[3] = {1, 0, 1};
  bafu_line_fit f;
  ck_assert_int_eq(bafu_fit_line(2, x, y, NULL, &f), BAFU_EINVAL); /* no residual degree of freedom */
  ck_assert_int_eq(bafu_fit_line(3, xs, y, NULL, &f), BAFU_EINVAL);
  ck_assert_int_eq(bafu_fit_line(3, x, bad, NULL, &f), BAFU_EINVAL);
  ck_assert_int_eq(bafu_fit_line(3, x, y, se0, &f), BAFU_EINVAL);
  ck_assert_ok(bafu_fit_line(2, x, y, x, &f)); /* weighted: two points suffice */
  ck_assert_close(f.slope, 1, 1e-14, 0);
}
END_TEST

START_TEST(test_parabola) {
  /* y = 3.7 (u - 1.234)^2 + 0.42 through unequally spaced points */
  const double u[3] = {0.9, 1.3, 2.45};
  double y[3], us, ys;
  for (int i = 0; i < 3; ++i) y[i] = 3.7 * (u[i] - 1.234) * (u[i] - 1.234) + 0.42;
  ck_assert_ok(bafu_parabola_vertex(u, y, &us, &ys));
  ck_assert_close(us, 1.234, 1e-14, 0);
  ck_assert_close(ys, 0.42, 1e-14, 0);
  /* uniform spacing h: u* = u1 - h (y2 - y0) / (2 (y0 - 2 y1 + y2)) */
  const double v[3] = {-0.5, 0.25, 1.0}, w[3] = {2.9, 1.1, 1.6};
  ck_assert_ok(bafu_parabola_vertex(v, w, &us, &ys));
  ck_assert_close(us, 0.25 - 0.75 * (1.6 - 2.9) / (2 * (2.9 - 2.2 + 1.6)), 1e-14, 0);
  /* the vertex stays within half a step of the middle point: |u* - u1| <= h/2 */
  ck_assert(fabs(us - 0.25) <= 0.375);
  const double flat[3] = {1, 1, 1}, notlow[3] = {1, 2, 3}, down[3] = {2.0, 0.4, 0.3}, back[3] = {2, 1, 3};
  ck_assert_int_eq(bafu_parabola_vertex(u, flat, &us, &ys), BAFU_ENUMERIC);
  ck_assert_int_eq(bafu_parabola_vertex(u, notlow, &us, &ys), BAFU_EINVAL);
  ck_assert_int_eq(bafu_parabola_vertex(u, down, &us, &ys), BAFU_EINVAL);
  ck_assert_int_eq(bafu_parabola_vertex(back, y, &us, &ys), BAFU_EINVAL);
  /* the middle equal to one neighbour: the vertex is halfway, at the edge of the range */
  const double tie[3] = {1.5, 0.5, 0.5};
  ck_assert_ok(bafu_parabola_vertex(v, tie, &us, &ys));
  ck_assert_close(us, 0.625, 1e-14, 0);
}
END_TEST

START_TEST(test_extremum) {
  /* loss = 0.8 (log x - log 0.0137)^2 + 0.31 on a log grid (unordered): the
     refined argmin in log x is 0.0137 exactly, the grid point the nearest */
  const double x[8] = {0.1, 0.001, 0.03, 0.003, 0.3, 0.01, 0.0003, 1};
  double y[8];
  for (int i = 0; i < 8; ++i) y[i] = 0.8 * pow(log(x[i]) - log(0.0137), 2) + 0.31;
  bafu_extremum e;
  ck_assert_ok(bafu_extremum_find(8, x, y, BAFU_EXT_REFINE | BAFU_EXT_LOG_X, &e));
  ck_assert_close(e.x, 0.0137, 1e-12, 0);
  ck_assert_close(e.y, 0.31, 1e-12, 0);
  ck_assert_close(e.x_grid, 0.01, 0, 0);
  ck_assert_uint_eq(e.index, 5);
  ck_assert(e.refined && !e.edge);
  /* without refinement: the grid point */
  ck_assert_ok(bafu_extremum_find(8, x, y, 0, &e));
  ck_assert(e.x == 0.01 && e.y == y[5] && !e.refined);
  /* the maximum of -y is the same point */
  double m[8];
  for (int i = 0; i < 8; ++i) m[i] = -y[i];
  ck_assert_ok(bafu_extremum_find(8, x, m, BAFU_EXT_MAX | BAFU_EXT_REFINE | BAFU_EXT_LOG_X, &e));
  ck_assert_close(e.x, 0.0137, 1e-12, 0);
  ck_assert_close(e.y, -0.31, 1e-12, 0);
  /* in x (not log x): a parabola in x is found exactly */
  const double xl[4] = {1, 2, 3, 4};
  double yl[4];
  for (int i = 0; i < 4; ++i) yl[i] = 1.9 * (xl[i] - 2.71) * (xl[i] - 2.71) - 5;
  ck_assert_ok(bafu_extremum_find(4, xl, yl, BAFU_EXT_REFINE, &e));
  ck_assert_close(e.x, 2.71, 1e-13, 0);
  ck_assert_close(e.y, -5, 1e-13, 0);
  /* at an edge: the grid point, flagged */
  const double ye[4] = {4, 3, 2, 1};
  ck_assert_ok(bafu_extremum_find(4, xl, ye, BAFU_EXT_REFINE, &e));
  ck_assert(e.x == 4 && e.y == 1 && e.edge && !e.refined);
  /* a tie goes to the smaller x; the parabola through 2 1 1 (h = 1) has
     c = 1/2, slope -1/2 at the middle: vertex half a step on, value 7/8 */
  const double yf[4] = {2, 1, 1, 1};
  ck_assert_ok(bafu_extremum_find(4, xl, yf, 0, &e));
  ck_assert(e.x == 2 && e.index == 1);
  ck_assert_ok(bafu_extremum_find(4, xl, yf, BAFU_EXT_REFINE, &e));
  ck_assert(e.refined && !e.edge && e.x_grid == 2);
  ck_assert_close(e.x, 2.5, 1e-15, 0);
  ck_assert_close(e.y, 0.875, 1e-15, 0);
  /* errors */
  const double xr[3] = {1, 2, 1}, xn[3] = {1, -2, 3}, yn[3] = {1, NAN, 2};
  ck_assert_int_eq(bafu_extremum_find(3, xr, yl, 0, &e), BAFU_EINVAL);
  ck_assert_int_eq(bafu_extremum_find(3, xn, yl, BAFU_EXT_LOG_X, &e), BAFU_EINVAL);
  ck_assert_int_eq(bafu_extremum_find(3, xl, yn, 0, &e), BAFU_EINVAL);
  ck_assert_int_eq(bafu_extremum_find(0, xl, yl, 0, &e), BAFU_EINVAL);
}
END_TEST

START_TEST(test_mean_se) {
  /* 2.5 3.5 4 6: mean 4, squared deviations 6.5, s^2 = 6.5/3, se^2 = 6.5/12 */
  const double y[4] = {2.5, 3.5, 4.0, 6.0};
  double m, se;
  ck_assert_ok(bafu_mean_se(4, y, &m, &se));
  ck_assert_close(m, 4, 1e-15, 0);
  ck_assert_close(se, sqrt(6.5 / 12), 1e-15, 0);
  /* a large offset does not lose the spread (two passes) */
  const double z[3] = {1e9 + 0.25, 1e9 + 0.5, 1e9 + 1.25};
  ck_assert_ok(bafu_mean_se(3, z, &m, &se));
  ck_assert_close(se, sqrt((0.1736111111111111 + 0.0277777777777778 + 0.3402777777777778) / 6), 1e-6, 0);
  ck_assert_int_eq(bafu_mean_se(1, y, &m, &se), BAFU_EINVAL);
  const double n[2] = {1, INFINITY};
  ck_assert_int_eq(bafu_mean_se(2, n, &m, &se), BAFU_EINVAL);
}
END_TEST

START_TEST(test_read_layouts) {
  char p[64], q[64];
  /* header first, '#' lines, a single blank line inside a series, two series */
  write_tmp(p, "a b word\n# first table\n# key: 1\n1 2.5 x\n\n3 4 y\n# after\n\n\nc d\n# second\n5 6\n");
  /* the older layout: '#' lines before each header, CRLF ends */
  write_tmp(q, "# first table\r\na b word\r\n1 2.5 x\r\n3 4 y\r\n\r\n\r\n# second\r\nc d\r\n5 6\r\n");
  const char *paths[2] = {p, q};
  for (int k = 0; k < 2; ++k) {
    bafu_tabdata *t;
    ck_assert_ok(bafu_tabdata_read(paths[k], &t));
    ck_assert_uint_eq(t->nseries, 2);
    const bafu_tabseries *s = &t->series[0];
    ck_assert_uint_eq(s->ncols, 3);
    ck_assert_uint_eq(s->nrows, 2);
    ck_assert_str_eq(s->names[2], "word");
    ck_assert_str_eq(s->cells[1 * 3 + 2], "y");
    ck_assert_str_eq(s->comments[0], "first table");
    ck_assert_int_eq(bafu_tabseries_column(s, "b"), 1);
    ck_assert_int_eq(bafu_tabseries_column(s, "zz"), -1);
    double v;
    ck_assert_ok(bafu_tabseries_number(t, s, 0, 1, &v));
    ck_assert(v == 2.5);
    ck_assert_int_eq(bafu_tabseries_number(t, s, 0, 2, &v), BAFU_EPARSE); /* a word */
    ck_assert_uint_eq(t->series[1].nrows, 1);
    ck_assert_str_eq(t->series[1].comments[0], "second");
    ck_assert_uint_eq(s->line[1], k == 0 ? 6 : 4);
    bafu_tabdata_free(t);
    unlink(paths[k]);
  }
  /* malformed: a ragged row, a column named twice, no header, nan where a number is asked */
  const char *bad[3] = {"a b\n1 2\n3\n", "a a\n1 2\n", "# only comments\n\n"};
  for (int i = 0; i < 3; ++i) {
    bafu_tabdata *t;
    write_tmp(p, bad[i]);
    ck_assert_int_eq(bafu_tabdata_read(p, &t), BAFU_EPARSE);
    ck_assert_ptr_null(t);
    unlink(p);
  }
  bafu_tabdata *t;
  ck_assert_int_eq(bafu_tabdata_read("/nonexistent/t.dat", &t), BAFU_EIO);
  write_tmp(p, "a b\n1 nan\n");
  ck_assert_ok(bafu_tabdata_read(p, &t));
  double v;
  ck_assert_int_eq(bafu_tabseries_number(t, &t->series[0], 0, 1, &v), BAFU_EPARSE);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), ":2: column b: 'nan'"));
  bafu_tabdata_free(t);
  unlink(p);
}
END_TEST

/* Reduce `table` with spec; the written result in buf (NUL-terminated), or the status. */
static bafu_status reduce_text(const char *table, const bafu_reduce_spec *sp, char *buf, size_t size) {
  char p[64];
  write_tmp(p, table);
  bafu_tabdata *t;
  bafu_status st = bafu_tabdata_read(p, &t);
  unlink(p);
  if (st) return st;
  bafu_reduce_result *r;
  st = bafu_reduce_table(sp, t, &r);
  bafu_tabdata_free(t);
  if (st) return st;
  FILE *f = fmemopen(buf, size, "w");
  ck_assert_ptr_nonnull(f);
  bafu_reduce_result_write(r, f);
  fclose(f);
  bafu_reduce_result_free(r);
  return BAFU_OK;
}

/* A grid of losses 0.5 (log lr - log opt)^2 + base, opt = 0.02 * depth^-0.5
 * per seed (shifted by the seed), words for the preset. */
static void lr_grid(char *buf, size_t size) {
  size_t w = (size_t)snprintf(buf, size, "preset depth seed lr loss\n# a grid\n");
  const char *pre[2] = {"mup", "fsc"};
  const double lrs[6] = {0.001, 0.003, 0.01, 0.03, 0.1, 0.3};
  for (int p = 0; p < 2; ++p)
    for (int d = 8; d <= 32; d *= 2)
      for (int s = 1; s <= 3; ++s)
        for (int i = 0; i < 6; ++i) {
          const double opt = (p ? 0.05 : 0.02) * pow(d, p ? 0.0 : -0.5) * (1 + 0.1 * (s - 2));
          w += (size_t)snprintf(buf + w, size - w, "%s %d %d %g %.17g\n", pre[p], d, s, lrs[i],
                                0.5 * pow(log(lrs[i]) - log(opt), 2) + 0.1 * s);
        }
}

START_TEST(test_table_argmin_mean_fit) {
  static char grid[65536], out[65536], out2[65536];
  lr_grid(grid, sizeof grid);
  bafu_reduce_spec sp = {.op = BAFU_REDUCE_ARGMIN, .x = "lr", .y = "loss", .by = "preset,depth,seed", .log_x = 1,
                         .refine = 1, .index = -1};
  ck_assert_ok(reduce_text(grid, &sp, out, sizeof out));
  /* header, then one row per (preset, depth, seed) with the exact optimum */
  ck_assert_ptr_nonnull(strstr(out, "preset depth seed n lr_argmin loss_min lr_grid refined edge\n"));
  char p[64];
  write_tmp(p, out);
  bafu_tabdata *t;
  ck_assert_ok(bafu_tabdata_read(p, &t));
  unlink(p);
  ck_assert_uint_eq(t->nseries, 1);
  ck_assert_uint_eq(t->series[0].nrows, 18);
  for (size_t r = 0; r < 18; ++r) {
    const bafu_tabseries *s = &t->series[0];
    double d, seed, lr, lmin, refined;
    ck_assert_ok(bafu_tabseries_number(t, s, r, 1, &d));
    ck_assert_ok(bafu_tabseries_number(t, s, r, 2, &seed));
    ck_assert_ok(bafu_tabseries_number(t, s, r, 4, &lr));
    ck_assert_ok(bafu_tabseries_number(t, s, r, 5, &lmin));
    ck_assert_ok(bafu_tabseries_number(t, s, r, 7, &refined));
    const int mup = strcmp(s->cells[r * s->ncols], "mup") == 0;
    const double opt = (mup ? 0.02 : 0.05) * pow(d, mup ? -0.5 : 0.0) * (1 + 0.1 * (seed - 2));
    ck_assert_close(lr, opt, 1e-9, 0); /* printed with 10 digits */
    ck_assert_close(lmin, 0.1 * seed, 1e-9, 0);
    ck_assert(refined == 1);
  }
  bafu_tabdata_free(t);
  /* mean over seeds of the optimum: the seeds' factors 0.9, 1, 1.1 average to 1, se = 0.1 opt/sqrt(3) */
  bafu_reduce_spec ms = {.op = BAFU_REDUCE_MEAN, .y = "lr_argmin,loss_min", .by = "preset,depth", .series = "preset",
                         .index = -1};
  ck_assert_ok(reduce_text(out, &ms, out2, sizeof out2));
  ck_assert_ptr_nonnull(strstr(out2, "preset depth n lr_argmin_mean lr_argmin_se loss_min_mean loss_min_se\n"
                                     "# series: preset=mup\nmup 8 3 0.007071067812 0.0004082 0.2 0.05774\n"));
  ck_assert_ptr_nonnull(strstr(out2, "\n\n\npreset depth n"));
  ck_assert_ptr_nonnull(strstr(out2, "# series: preset=fsc\nfsc 8 3 0.05 0.002887 0.2 0.05774\n"));
  /* the drift exponent: log lr_argmin against log depth, -0.5 for mup, 0 for fsc */
  bafu_reduce_spec fs = {.op = BAFU_REDUCE_FIT, .x = "depth", .y = "lr_argmin", .by = "preset", .log_x = 1,
                         .log_y = 1, .index = -1};
  ck_assert_ok(reduce_text(out, &fs, out2, sizeof out2));
  double n, a, ase, b, bse;
  char pre[8];
  const char *row = strstr(out2, "\nmup ");
  ck_assert_ptr_nonnull(row);
  ck_assert_int_eq(sscanf(row, " %7s %lf %lf %lf %lf %lf", pre, &n, &a, &ase, &b, &bse), 6);
  ck_assert(n == 9);
  ck_assert_close(b, -0.5, 1e-8, 0);
  row = strstr(out2, "\nfsc ");
  ck_assert_int_eq(sscanf(row, " %7s %lf %lf %lf %lf %lf", pre, &n, &a, &ase, &b, &bse), 6);
  ck_assert(fabs(b) < 1e-8);
}
END_TEST

START_TEST(test_table_errors) {
  static char grid[65536], out[4096];
  lr_grid(grid, sizeof grid);
  bafu_reduce_spec sp = {.op = BAFU_REDUCE_ARGMIN, .x = "lr", .y = "loss", .by = "preset,depth,seed", .index = -1};
  sp.x = "rate"; /* missing column */
  ck_assert_int_eq(reduce_text(grid, &sp, out, sizeof out), BAFU_EINVAL);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "x: no column 'rate'"));
  sp.x = "lr";
  sp.by = "preset,depth"; /* repeated lr in a group (the seeds) */
  ck_assert_int_eq(reduce_text(grid, &sp, out, sizeof out), BAFU_EINVAL);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "group preset=mup depth=8"));
  sp.by = "preset,depth,seed";
  sp.where = "depth=12"; /* no rows left */
  ck_assert_int_eq(reduce_text(grid, &sp, out, sizeof out), BAFU_EINVAL);
  sp.where = "depth"; /* not col=value */
  ck_assert_int_eq(reduce_text(grid, &sp, out, sizeof out), BAFU_EINVAL);
  sp.where = "depth=8.0,seed=1"; /* numbers compare as numbers */
  ck_assert_ok(reduce_text(grid, &sp, out, sizeof out));
  ck_assert_ptr_nonnull(strstr(out, "\nmup 8 1 6 0.01 "));
  ck_assert_ptr_null(strstr(out, "\nmup 8 2 "));
  sp.where = NULL;
  /* a group of one row: no standard error */
  bafu_reduce_spec ms = {.op = BAFU_REDUCE_MEAN, .y = "loss", .by = "preset,depth,seed,lr", .index = -1};
  ck_assert_int_eq(reduce_text(grid, &ms, out, sizeof out), BAFU_EINVAL);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "a standard error needs 2"));
  /* non-positive values under a log, nan, a word */
  const char *bad[3] = {"x y\n1 2\n0 3\n2 5\n", "x y\n1 2\n2 nan\n3 5\n", "x y\n1 2\n2 three\n3 5\n"};
  const bafu_status want[3] = {BAFU_EINVAL, BAFU_EPARSE, BAFU_EPARSE};
  const char *msg[3] = {":3: column x: 0: a log axis", ":3: column y: 'nan' is not", ":3: column y: 'three' is not"};
  bafu_reduce_spec fs = {.op = BAFU_REDUCE_FIT, .x = "x", .y = "y", .log_x = 1, .index = -1};
  for (int i = 0; i < 3; ++i) {
    ck_assert_int_eq(reduce_text(bad[i], &fs, out, sizeof out), want[i]);
    ck_assert_msg(strstr(bafu_last_error(), msg[i]), "%s", bafu_last_error());
  }
  /* a key that is the axis, options of another operation, an index beyond the series */
  bafu_reduce_spec k = {.op = BAFU_REDUCE_FIT, .x = "x", .y = "y", .by = "x", .index = -1};
  ck_assert_int_eq(reduce_text(bad[0], &k, out, sizeof out), BAFU_EINVAL);
  bafu_reduce_spec o = {.op = BAFU_REDUCE_MEAN, .y = "y", .refine = 1, .index = -1};
  ck_assert_int_eq(reduce_text(bad[0], &o, out, sizeof out), BAFU_EINVAL);
  bafu_reduce_spec ix = {.op = BAFU_REDUCE_MEAN, .y = "y", .index = 1};
  ck_assert_int_eq(reduce_text(bad[0], &ix, out, sizeof out), BAFU_EINVAL);
  /* an empty table */
  bafu_reduce_spec e = {.op = BAFU_REDUCE_MEAN, .y = "y", .index = -1};
  ck_assert_int_eq(reduce_text("x y\n# no rows\n", &e, out, sizeof out), BAFU_EINVAL);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "no rows"));
}
END_TEST

START_TEST(test_table_series) {
  /* fit per input series, fitted values, the series' first '#' line carried over */
  static char out[4096];
  const char *two = "n v\n# first\n1 2\n2 4\n4 8\n\n\nn v\n# second\n1 3\n2 6\n4 12.0000001\n";
  bafu_reduce_spec fs = {.op = BAFU_REDUCE_FIT, .x = "n", .y = "v", .log_x = 1, .log_y = 1, .fitted = 1, .index = -1};
  ck_assert_ok(reduce_text(two, &fs, out, sizeof out));
  ck_assert_ptr_nonnull(strstr(out, "n fit slope slope_se\n# input series 0: first\n1 2 1 "));
  ck_assert_ptr_nonnull(strstr(out, "\n\n\nn fit slope slope_se\n# input series 1: second\n1 2.99999999"));
  fs.index = 1;
  fs.fitted = 0;
  ck_assert_ok(reduce_text(two, &fs, out, sizeof out));
  ck_assert_ptr_null(strstr(out, "\n\n\n"));
  ck_assert_ptr_nonnull(strstr(out, "n intercept intercept_se slope slope_se\n# input series 1: second\n3 1.0986"));
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("reduce");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_line_exact);
  tcase_add_test(tc, test_line_by_hand);
  tcase_add_test(tc, test_line_errors);
  tcase_add_test(tc, test_parabola);
  tcase_add_test(tc, test_extremum);
  tcase_add_test(tc, test_mean_se);
  tcase_add_test(tc, test_read_layouts);
  tcase_add_test(tc, test_table_argmin_mean_fit);
  tcase_add_test(tc, test_table_errors);
  tcase_add_test(tc, test_table_series);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return bafu_run_suite(suite()); }
