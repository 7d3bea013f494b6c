/* bafu/reduce.h: reductions of tables: a least-squares line, the position of
 * a minimum or maximum (refined by a parabola), a mean with its standard
 * error; first as functions of arrays, then over the rows of a bafu table
 * grouped by key columns (bafu reduce).
 *
 * Derivations: theory/reduce.md (1: the line and its standard errors; 2: the
 * parabola through three points; 3: the mean and its standard error). */
#ifndef BAFU_REDUCE_H
#define BAFU_REDUCE_H

#include <stddef.h>
#include <stdio.h>

#include "bafu/status.h"
#include "bafu/tabread.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Arrays ---- */

/* A least-squares line y = intercept + slope x. */
typedef struct {
  size_t n;                   /* points */
  double intercept, slope;
  double intercept_se, slope_se; /* standard errors (theory/reduce.md 1) */
  double cov;                 /* covariance of intercept and slope */
  double rss;                 /* sum of squared residuals (weighted: chi^2) */
} bafu_line_fit;

/* Fit y = a + b x to n points (x, y), by ordinary least squares (se NULL):
 * the standard errors from the residual variance rss / (n - 2), so n >= 3;
 * or, with se (the standard error of each y, all > 0), by weighted least
 * squares with weights 1/se^2 (gsl_fit_wlinear): the standard errors from
 * the given ones, n >= 2. Errors (BAFU_EINVAL): too few points, fewer than
 * two distinct x, a non-finite input, se <= 0. */
bafu_status bafu_fit_line(size_t n, const double *x, const double *y, const double *se, bafu_line_fit *out);

/* The vertex of the parabola through (u[i], y[i]), i = 0, 1, 2, with u0 < u1
 * < u2 and the middle point lowest (y1 <= y0 and y1 <= y2), in *u_star (it
 * lies in [u0, u2]) and the parabola's value there in *y_star
 * (theory/reduce.md 2). BAFU_EINVAL if the u are not increasing or the
 * middle point is not lowest; BAFU_ENUMERIC if the three points lie on a
 * line (no vertex: y0 = y1 = y2). */
bafu_status bafu_parabola_vertex(const double u[3], const double y[3], double *u_star, double *y_star);

/* Where y is smallest (BAFU_EXT_MAX: largest) over n points (x, y) (any
 * order, distinct x). */
#define BAFU_EXT_MAX 1u    /* the maximum, not the minimum */
#define BAFU_EXT_REFINE 2u /* refine by the parabola through the best point and its neighbours in x */
#define BAFU_EXT_LOG_X 4u  /* ... in log x (every x > 0) */
typedef struct {
  double x, y;    /* the extremum: the grid point's, or the parabola's vertex */
  double x_grid;  /* x of the best point */
  size_t index;   /* its index in the input */
  int refined;    /* 1: (x, y) is the vertex of the parabola; 0: the grid point (not asked, or at an edge) */
  int edge;       /* 1: the best point has the smallest or largest x (not refined) */
} bafu_extremum;

/* Ties go to the smaller x. With BAFU_EXT_REFINE and the best point inside
 * the grid, (x, y) is the vertex of the parabola through it and its two
 * neighbours in x (in u = log x with BAFU_EXT_LOG_X, then x = exp(u)); the
 * left neighbour is then strictly higher (ties go left), so the parabola
 * always has its vertex, within half a step of the best point. Errors
 * (BAFU_EINVAL): n = 0, a non-finite value, a repeated x, x <= 0 with
 * BAFU_EXT_LOG_X. */
bafu_status bafu_extremum_find(size_t n, const double *x, const double *y, unsigned flags, bafu_extremum *out);

/* The mean of n >= 2 values and its standard error s / sqrt(n), s^2 the
 * sample variance (divisor n - 1). BAFU_EINVAL for n < 2 or a non-finite
 * value. */
bafu_status bafu_mean_se(size_t n, const double *y, double *mean, double *se);

/* ---- Tables ---- */

typedef enum { BAFU_REDUCE_FIT, BAFU_REDUCE_ARGMIN, BAFU_REDUCE_ARGMAX, BAFU_REDUCE_MEAN } bafu_reduce_op;

/* What to reduce. Column lists are names separated by commas or spaces. */
typedef struct {
  bafu_reduce_op op;
  const char *x;      /* fit, argmin, argmax: the axis column */
  const char *y;      /* the value column (mean: one or more) */
  const char *by;     /* key columns: one result per group of equal keys (NULL: one group per series) */
  const char *series; /* key columns that also start a new output series for each value (NULL: none) */
  const char *where;  /* "col=value,..." keeps only the rows where each column's text equals the value, or
                         both are numbers and equal (NULL: every row) */
  const char *se;     /* fit: the standard error column of y (weighted fit; NULL: ordinary least squares) */
  int log_x, log_y;   /* fit: logs of x and/or y (natural); argmin/argmax: log_x refines in log x */
  int refine;         /* argmin, argmax: refine by a parabola */
  int fitted;         /* fit: one row per input row (x, fit, slope, slope_se) instead of one per group */
  long index;         /* only this series of the input (0-based); -1: every series */
} bafu_reduce_spec;

typedef struct bafu_reduce_result bafu_reduce_result;

/* Reduce the table `in`: the rows of each input series (or only series
 * `index`) that pass `where` are grouped by the values (as text) of the
 * `series` and `by` columns, groups in order of first appearance; each group
 * gives one row (fitted: one per row of the group). Output series: one per
 * input series and value of the `series` columns. Columns: the `series` and
 * `by` columns, then
 *   fit:     n intercept intercept_se slope slope_se
 *            (fitted: X fit slope slope_se, fit the line's value at X, in
 *            y's units: exp of the line with log_y)
 *   argmin:  n X_argmin Y_min X_grid refined edge (argmax: X_argmax Y_max)
 *   mean:    n, then Y_mean Y_se for each value column Y.
 * Every reduced number is computed first; errors (the message names the
 * option's field and, for a value, the file's line): BAFU_EINVAL for a
 * missing column ("x: ..."), a where clause without '=', an index beyond
 * the series, no rows left, a group too small for its operation (fit: 3
 * rows, weighted 2; mean: 2), a repeated x in a group, a value <= 0 under a
 * log, a column that is no number (BAFU_EPARSE: nan, inf, a word); those of
 * the array functions above; BAFU_ENOMEM. *out NULL on error; free with
 * bafu_reduce_result_free (NULL-safe). */
bafu_status bafu_reduce_table(const bafu_reduce_spec *spec, const bafu_tabdata *in, bafu_reduce_result **out);
void bafu_reduce_result_free(bafu_reduce_result *r);

/* Write the result to f in the table layout: each output series' header row,
 * '# input series K: ...' (the first '#' line of the input series the rows
 * come from) when the input has several, '# series: col=value ...' when
 * `series` is set, its rows; two blank
 * lines between series. Values %.10g, standard errors %.4g, keys as read.
 * Cannot fail (write errors are f's). */
void bafu_reduce_result_write(const bafu_reduce_result *r, FILE *f);

/* Number of output series and rows (all series). Cannot fail. */
size_t bafu_reduce_result_nseries(const bafu_reduce_result *r);
size_t bafu_reduce_result_nrows(const bafu_reduce_result *r);

/* One line describing the reduction (the metadata line of bafu reduce):
 * the operation, columns, logs, refinement, grouping. Into buf (truncated;
 * size >= 1). Cannot fail. */
void bafu_reduce_describe(const bafu_reduce_spec *spec, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
