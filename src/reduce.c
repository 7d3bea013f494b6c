/* reduce.c: lines, extrema and means, of arrays and of grouped table rows
 * (bafu/reduce.h; derivations in theory/reduce.md). */
#include "bafu/reduce.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_fit.h>

#include "bafu/text.h"

/* ---- Arrays ---- */

bafu_status bafu_fit_line(size_t n, const double *x, const double *y, const double *se, bafu_line_fit *out) {
  memset(out, 0, sizeof *out);
  const size_t need = se ? 2 : 3;
  if (n < need)
    return bafu_error(BAFU_EINVAL, "%zu points: a %s fit with standard errors needs %zu", n,
                      se ? "weighted" : "least-squares", need);
  int distinct = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!isfinite(x[i]) || !isfinite(y[i]) || (se && !isfinite(se[i])))
      return bafu_error(BAFU_EINVAL, "point %zu is not finite", i);
    if (se && !(se[i] > 0)) return bafu_error(BAFU_EINVAL, "point %zu: standard error %g, not > 0", i, se[i]);
    if (x[i] != x[0]) distinct = 1;
  }
  if (!distinct) return bafu_error(BAFU_EINVAL, "every x is %g: no line through a single abscissa", x[0]);
  double a, b, c00, c01, c11, rss;
  int rc;
  if (se) {
    double *w = malloc(n * sizeof *w);
    if (!w) return bafu_error(BAFU_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; ++i) w[i] = 1 / (se[i] * se[i]);
    rc = gsl_fit_wlinear(x, 1, w, 1, y, 1, n, &a, &b, &c00, &c01, &c11, &rss);
    free(w);
  } else {
    rc = gsl_fit_linear(x, 1, y, 1, n, &a, &b, &c00, &c01, &c11, &rss);
  }
  if (rc || !isfinite(a) || !isfinite(b) || !isfinite(c00) || !isfinite(c11) || c00 < 0 || c11 < 0)
    return bafu_error(BAFU_ENUMERIC, "the least-squares fit failed (collinear or overflowing data)");
  *out = (bafu_line_fit){.n = n, .intercept = a, .slope = b, .intercept_se = sqrt(c00), .slope_se = sqrt(c11),
                         .cov = c01, .rss = rss};
  return BAFU_OK;
}

bafu_status bafu_parabola_vertex(const double u[3], const double y[3], double *u_star, double *y_star) {
  for (int i = 0; i < 3; ++i)
    if (!isfinite(u[i]) || !isfinite(y[i])) return bafu_error(BAFU_EINVAL, "parabola: a point is not finite");
  if (!(u[0] < u[1] && u[1] < u[2])) return bafu_error(BAFU_EINVAL, "parabola: the abscissae are not increasing");
  if (!(y[1] <= y[0] && y[1] <= y[2])) return bafu_error(BAFU_EINVAL, "parabola: the middle point is not lowest");
  /* divided differences (theory/reduce.md 2): d0 <= 0 <= d1, c >= 0 */
  const double h0 = u[1] - u[0], h1 = u[2] - u[1];
  const double d0 = (y[1] - y[0]) / h0, d1 = (y[2] - y[1]) / h1;
  if (d1 - d0 == 0) return bafu_error(BAFU_ENUMERIC, "parabola: the three points lie on a horizontal line");
  const double c = (d1 - d0) / (h0 + h1);      /* half the second derivative */
  const double b = (h1 * d0 + h0 * d1) / (h0 + h1); /* the slope at u1 */
  double t = -b / (2 * c);
  /* |t| <= h/2 in exact arithmetic; rounding may not push it out */
  t = fmin(fmax(t, -h0 / 2), h1 / 2);
  *u_star = u[1] + t;
  *y_star = y[1] + b * t + c * t * t;
  if (*y_star > y[1]) *y_star = y[1]; /* the vertex is the lowest point: rounding only */
  return BAFU_OK;
}

typedef struct {
  double x, y;
  size_t i;
} xyi;

static int by_x(const void *a, const void *b) {
  const double p = ((const xyi *)a)->x, q = ((const xyi *)b)->x;
  return (p > q) - (p < q);
}

bafu_status bafu_extremum_find(size_t n, const double *x, const double *y, unsigned flags, bafu_extremum *out) {
  memset(out, 0, sizeof *out);
  if (n == 0) return bafu_error(BAFU_EINVAL, "no points");
  const int logx = (flags & BAFU_EXT_LOG_X) != 0;
  const double sign = flags & BAFU_EXT_MAX ? -1 : 1; /* a maximum of y is a minimum of -y */
  for (size_t i = 0; i < n; ++i) {
    if (!isfinite(x[i]) || !isfinite(y[i])) return bafu_error(BAFU_EINVAL, "point %zu is not finite", i);
    if (logx && !(x[i] > 0)) return bafu_error(BAFU_EINVAL, "abscissa %g: the log needs positive values", x[i]);
  }
  xyi *p = malloc(n * sizeof *p);
  if (!p) return bafu_error(BAFU_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; ++i) p[i] = (xyi){x[i], sign * y[i], i};
  qsort(p, n, sizeof *p, by_x);
  size_t best = 0;
  for (size_t i = 0; i < n; ++i) {
    if (i && p[i].x == p[i - 1].x) {
      const double rx = p[i].x;
      free(p);
      return bafu_error(BAFU_EINVAL, "the abscissa %g appears twice", rx);
    }
    if (p[i].y < p[best].y) best = i;
  }
  *out = (bafu_extremum){.x = p[best].x, .y = sign * p[best].y, .x_grid = p[best].x, .index = p[best].i,
                         .edge = best == 0 || best == n - 1};
  if ((flags & BAFU_EXT_REFINE) && !out->edge) {
    double u[3], v[3], us, vs;
    for (int k = 0; k < 3; ++k) {
      u[k] = logx ? log(p[best - 1 + k].x) : p[best - 1 + k].x;
      v[k] = p[best - 1 + k].y;
    }
    /* ties go to the smaller x, so v[0] > v[1] <= v[2]: the vertex exists */
    bafu_status st = bafu_parabola_vertex(u, v, &us, &vs);
    if (st) {
      free(p);
      return st;
    }
    out->x = logx ? exp(us) : us;
    out->y = sign * vs;
    out->refined = 1;
  }
  free(p);
  return BAFU_OK;
}

bafu_status bafu_mean_se(size_t n, const double *y, double *mean, double *se) {
  if (n < 2) return bafu_error(BAFU_EINVAL, "%zu value%s: a standard error needs 2", n, n == 1 ? "" : "s");
  double m = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!isfinite(y[i])) return bafu_error(BAFU_EINVAL, "value %zu is not finite", i);
    m += y[i];
  }
  m /= (double)n;
  double s2 = 0;
  for (size_t i = 0; i < n; ++i) s2 += (y[i] - m) * (y[i] - m); /* two passes: no cancellation */
  s2 /= (double)(n - 1);
  *mean = m;
  *se = sqrt(s2 / (double)n);
  if (!isfinite(*mean) || !isfinite(*se)) return bafu_error(BAFU_EINVAL, "the mean overflows");
  return BAFU_OK;
}

/* ---- Tables ---- */

/* A list of column names, split from a string (names in one buffer). */
typedef struct {
  char *buf;
  char **name;
  size_t n;
} names;

static void names_free(names *l) {
  free(l->buf);
  free(l->name);
  memset(l, 0, sizeof *l);
}

/* Split `text` (NULL: none) at commas and spaces; a repeated name is refused
 * (field: the spec's field, for the message). */
static bafu_status names_parse(const char *field, const char *text, names *l) {
  memset(l, 0, sizeof *l);
  if (!text) return BAFU_OK;
  const size_t len = strlen(text);
  if (!(l->buf = malloc(len + 1)) || !(l->name = malloc((len / 2 + 1) * sizeof *l->name))) {
    names_free(l);
    return bafu_error(BAFU_ENOMEM, "out of memory");
  }
  memcpy(l->buf, text, len + 1);
  for (char *s = l->buf;;) {
    while (*s == ',' || *s == ' ') *s++ = '\0';
    if (!*s) break;
    l->name[l->n++] = s;
    while (*s && *s != ',' && *s != ' ') ++s;
  }
  for (size_t i = 0; i < l->n; ++i)
    for (size_t j = 0; j < i; ++j)
      if (strcmp(l->name[i], l->name[j]) == 0) {
        bafu_status st = bafu_error(BAFU_EINVAL, "%s: column '%s' named twice", field, l->name[i]);
        names_free(l);
        return st;
      }
  return BAFU_OK;
}

/* An output series: its header, its note line, its rows (text). */
typedef struct {
  char *header, *note, *from;
  char *text;
  size_t len, cap, nrows;
} oseries;

struct bafu_reduce_result {
  oseries *s;
  size_t n, cap;
};

void bafu_reduce_result_free(bafu_reduce_result *r) {
  if (!r) return;
  for (size_t k = 0; k < r->n; ++k) {
    free(r->s[k].header);
    free(r->s[k].note);
    free(r->s[k].from);
    free(r->s[k].text);
  }
  free(r->s);
  free(r);
}

size_t bafu_reduce_result_nseries(const bafu_reduce_result *r) { return r->n; }

size_t bafu_reduce_result_nrows(const bafu_reduce_result *r) {
  size_t n = 0;
  for (size_t k = 0; k < r->n; ++k) n += r->s[k].nrows;
  return n;
}

void bafu_reduce_result_write(const bafu_reduce_result *r, FILE *f) {
  for (size_t k = 0; k < r->n; ++k) {
    fprintf(f, "%s%s\n", k ? "\n\n" : "", r->s[k].header);
    if (r->s[k].from) fprintf(f, "# %s\n", r->s[k].from);
    if (r->s[k].note) fprintf(f, "# %s\n", r->s[k].note);
    fwrite(r->s[k].text, 1, r->s[k].len, f);
  }
}

/* Append printf-style text to a growing buffer. 0, or 1 if out of memory. */
static int appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int appendf(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const int need = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (need < 0) return 1;
  if (*len + (size_t)need + 1 > *cap) {
    size_t c = *cap ? *cap : 256;
    while (c < *len + (size_t)need + 1) c *= 2;
    char *q = realloc(*buf, c);
    if (!q) return 1;
    *buf = q;
    *cap = c;
  }
  va_start(ap, fmt);
  vsnprintf(*buf + *len, *cap - *len, fmt, ap);
  va_end(ap);
  *len += (size_t)need;
  return 0;
}

#define ROW(o, ...) appendf(&(o)->text, &(o)->len, &(o)->cap, __VA_ARGS__)

/* A group of rows of one input series. */
typedef struct {
  size_t out;   /* output series */
  size_t first; /* its first row: the keys' text */
  size_t *rows, n, cap;
} group;

/* The state of one reduction. */
typedef struct {
  const bafu_reduce_spec *spec;
  const bafu_tabdata *in;
  names ys, by, ser, where;
  const char *sename;
  bafu_reduce_result *res;
  /* the current input series: */
  size_t k;
  const bafu_tabseries *s;
  int xc, sec, *yc, *byc, *serc, *wc;
  char **wval;
  size_t nkeys;
  int *keyc; /* the output's key columns: series, then by (each once) */
  group *g;
  size_t ng, capg;
  double *xa, *ya, *sa; /* scratch arrays of a group's values */
} reducer;

/* Column `name` of the current series, for field `field`; -1 and the error
 * recorded if absent. */
static int need_column(reducer *R, const char *field, const char *name) {
  const int c = bafu_tabseries_column(R->s, name);
  if (c >= 0) return c;
  char cols[400];
  size_t w = 0;
  cols[0] = '\0';
  for (size_t i = 0; i < R->s->ncols && w + 1 < sizeof cols; ++i)
    w += (size_t)snprintf(cols + w, sizeof cols - w, "%s%s", i ? " " : "", R->s->names[i]);
  if (R->in->nseries > 1)
    bafu_error(BAFU_EINVAL, "%s: no column '%s' in series %zu of %s (columns: %s)", field, name, R->k, R->in->path,
               cols);
  else
    bafu_error(BAFU_EINVAL, "%s: no column '%s' in %s (columns: %s)", field, name, R->in->path, cols);
  return -1;
}

/* The text of a group's keys, "a=1 b=x", into buf. */
static void group_label(const reducer *R, const group *g, char *buf, size_t size) {
  size_t w = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < R->nkeys && w + 1 < size; ++i)
    w += (size_t)snprintf(buf + w, size - w, "%s%s=%s", i ? " " : "", R->s->names[R->keyc[i]],
                          R->s->cells[g->first * R->s->ncols + (size_t)R->keyc[i]]);
  if (R->nkeys == 0) snprintf(buf, size, "(all rows)");
}

/* Re-raise the last error with the group and series in front. */
static bafu_status group_error(const reducer *R, const group *g, bafu_status st) {
  char msg[512], label[256];
  snprintf(msg, sizeof msg, "%s", bafu_last_error());
  group_label(R, g, label, sizeof label);
  if (R->in->nseries > 1)
    return bafu_error(st, "%s series %zu, group %s: %s", R->in->path, R->k, label, msg);
  return bafu_error(st, "%s, group %s: %s", R->in->path, label, msg);
}

static int keys_equal(const reducer *R, size_t a, size_t b, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) {
    const size_t c = (size_t)R->keyc[i];
    if (strcmp(R->s->cells[a * R->s->ncols + c], R->s->cells[b * R->s->ncols + c]) != 0) return 0;
  }
  return 1;
}

/* Whether row r passes the where clauses. */
static int row_kept(const reducer *R, size_t r) {
  for (size_t i = 0; i < R->where.n; ++i) {
    const char *cell = R->s->cells[r * R->s->ncols + (size_t)R->wc[i]];
    double a, b;
    if (strcmp(cell, R->wval[i]) == 0) continue;
    if (bafu_parse_double(cell, &a) && bafu_parse_double(R->wval[i], &b) && a == b) continue;
    return 0;
  }
  return 1;
}

static bafu_status nomem(void) { return bafu_error(BAFU_ENOMEM, "out of memory"); }

/* The value of (row r, column c), with the log taken when `log` (the
 * message names the file's line otherwise). */
static bafu_status value(const reducer *R, size_t r, int c, int log_it, double *v) {
  bafu_status st = bafu_tabseries_number(R->in, R->s, r, (size_t)c, v);
  if (st) return st;
  if (log_it) {
    if (!(*v > 0))
      return bafu_error(BAFU_EINVAL, "%s:%zu: column %s: %s: a log axis needs positive values", R->in->path,
                        R->s->line[r], R->s->names[c], R->s->cells[r * R->s->ncols + (size_t)c]);
    *v = log(*v);
  }
  return BAFU_OK;
}

/* Start output series for the group of row r (a new one if its series keys
 * are new). */
static bafu_status output_series(reducer *R, size_t r, size_t *out, size_t first_out) {
  const size_t nser = R->ser.n;
  for (size_t k = first_out; k < R->res->n; ++k) {
    /* groups of this input series already in output series k: compare with any of them */
    for (size_t j = 0; j < R->ng; ++j)
      if (R->g[j].out == k && keys_equal(R, R->g[j].first, r, 0, nser)) {
        *out = k;
        return BAFU_OK;
      }
  }
  bafu_reduce_result *res = R->res;
  if (res->n == res->cap) {
    const size_t c = res->cap ? 2 * res->cap : 8;
    oseries *q = realloc(res->s, c * sizeof *q);
    if (!q) return nomem();
    res->s = q;
    res->cap = c;
  }
  oseries *o = &res->s[res->n];
  memset(o, 0, sizeof *o);
  ++res->n;
  size_t hl = 0, hc = 0;
  for (size_t i = 0; i < R->nkeys; ++i)
    if (appendf(&o->header, &hl, &hc, "%s%s", i ? " " : "", R->s->names[R->keyc[i]])) return nomem();
  const char *sep = R->nkeys ? " " : "";
  const bafu_reduce_spec *sp = R->spec;
  int e = 0;
  switch (sp->op) {
  case BAFU_REDUCE_FIT:
    if (sp->fitted)
      e = appendf(&o->header, &hl, &hc, "%s%s fit slope slope_se", sep, sp->x);
    else
      e = appendf(&o->header, &hl, &hc, "%sn intercept intercept_se slope slope_se", sep);
    break;
  case BAFU_REDUCE_ARGMIN:
  case BAFU_REDUCE_ARGMAX: {
    const int mx = sp->op == BAFU_REDUCE_ARGMAX;
    e = appendf(&o->header, &hl, &hc, "%sn %s_%s %s_%s %s_grid refined edge", sep, sp->x, mx ? "argmax" : "argmin",
                R->ys.name[0], mx ? "max" : "min", sp->x);
    break;
  }
  case BAFU_REDUCE_MEAN:
    e = appendf(&o->header, &hl, &hc, "%sn", sep);
    for (size_t i = 0; i < R->ys.n && !e; ++i)
      e = appendf(&o->header, &hl, &hc, " %s_mean %s_se", R->ys.name[i], R->ys.name[i]);
    break;
  }
  if (e) return nomem();
  if (R->in->nseries > 1 && R->s->ncomments) {
    size_t nl = 0, nc = 0;
    if (appendf(&o->from, &nl, &nc, "input series %zu: %s", R->k, R->s->comments[0])) return nomem();
  }
  if (nser) {
    size_t nl = 0, nc = 0;
    if (appendf(&o->note, &nl, &nc, "series:")) return nomem();
    for (size_t i = 0; i < nser; ++i)
      if (appendf(&o->note, &nl, &nc, " %s=%s", R->s->names[R->keyc[i]],
                  R->s->cells[r * R->s->ncols + (size_t)R->keyc[i]]))
        return nomem();
  }
  *out = res->n - 1;
  return BAFU_OK;
}

/* Group the kept rows of the current series. */
static bafu_status make_groups(reducer *R, size_t first_out) {
  R->ng = 0;
  for (size_t r = 0; r < R->s->nrows; ++r) {
    if (!row_kept(R, r)) continue;
    size_t j = 0;
    while (j < R->ng && !keys_equal(R, R->g[j].first, r, 0, R->nkeys)) ++j;
    if (j == R->ng) {
      if (R->ng == R->capg) {
        const size_t c = R->capg ? 2 * R->capg : 16;
        group *q = realloc(R->g, c * sizeof *q);
        if (!q) return nomem();
        memset(q + R->capg, 0, (c - R->capg) * sizeof *q);
        R->g = q;
        R->capg = c;
      }
      group *g = &R->g[R->ng];
      g->n = 0;
      g->first = r;
      bafu_status st = output_series(R, r, &g->out, first_out);
      if (st) return st;
      ++R->ng;
    }
    group *g = &R->g[j];
    if (g->n == g->cap) {
      const size_t c = g->cap ? 2 * g->cap : 16;
      size_t *q = realloc(g->rows, c * sizeof *q);
      if (!q) return nomem();
      g->rows = q;
      g->cap = c;
    }
    g->rows[g->n++] = r;
  }
  return BAFU_OK;
}

/* The keys' text of a group's row r, into o. */
static int put_keys(const reducer *R, oseries *o, size_t r) {
  for (size_t i = 0; i < R->nkeys; ++i)
    if (ROW(o, "%s%s", i ? " " : "", R->s->cells[r * R->s->ncols + (size_t)R->keyc[i]])) return 1;
  return 0;
}

/* Reduce one group into its output series. */
static bafu_status reduce_group(reducer *R, const group *g) {
  const bafu_reduce_spec *sp = R->spec;
  oseries *o = &R->res->s[g->out];
  const char *sep = R->nkeys ? " " : "";
  bafu_status st = BAFU_OK;
  const int logx_values = sp->op == BAFU_REDUCE_FIT && sp->log_x;
  if (sp->op != BAFU_REDUCE_MEAN)
    for (size_t i = 0; i < g->n; ++i) {
      if ((st = value(R, g->rows[i], R->xc, logx_values, &R->xa[i]))) return st;
      if ((st = value(R, g->rows[i], R->yc[0], sp->op == BAFU_REDUCE_FIT && sp->log_y, &R->ya[i]))) return st;
      if (R->sec >= 0) {
        if ((st = value(R, g->rows[i], R->sec, 0, &R->sa[i]))) return st;
        if (sp->log_y) R->sa[i] /= exp(R->ya[i]); /* se of log y = se(y) / y to first order */
      }
    }
  switch (sp->op) {
  case BAFU_REDUCE_FIT: {
    bafu_line_fit f;
    if ((st = bafu_fit_line(g->n, R->xa, R->ya, R->sec >= 0 ? R->sa : NULL, &f))) return group_error(R, g, st);
    if (!sp->fitted) {
      if (put_keys(R, o, g->first) ||
          ROW(o, "%s%zu %.10g %.4g %.10g %.4g\n", sep, f.n, f.intercept, f.intercept_se, f.slope, f.slope_se))
        return nomem();
      ++o->nrows;
      break;
    }
    for (size_t i = 0; i < g->n; ++i) {
      const double line = f.intercept + f.slope * R->xa[i];
      const double fit = sp->log_y ? exp(line) : line;
      if (!isfinite(fit)) return group_error(R, g, bafu_error(BAFU_ENUMERIC, "the fitted value overflows"));
      if (put_keys(R, o, g->rows[i]) ||
          ROW(o, "%s%s %.10g %.10g %.4g\n", sep, R->s->cells[g->rows[i] * R->s->ncols + (size_t)R->xc], fit, f.slope,
              f.slope_se))
        return nomem();
      ++o->nrows;
    }
    break;
  }
  case BAFU_REDUCE_ARGMIN:
  case BAFU_REDUCE_ARGMAX: {
    const unsigned flags = (sp->op == BAFU_REDUCE_ARGMAX ? BAFU_EXT_MAX : 0u) | (sp->refine ? BAFU_EXT_REFINE : 0u) |
                           (sp->log_x ? BAFU_EXT_LOG_X : 0u);
    bafu_extremum e;
    if ((st = bafu_extremum_find(g->n, R->xa, R->ya, flags, &e))) return group_error(R, g, st);
    if (put_keys(R, o, g->first) ||
        ROW(o, "%s%zu %.10g %.10g %.10g %d %d\n", sep, g->n, e.x, e.y, e.x_grid, e.refined, e.edge))
      return nomem();
    ++o->nrows;
    break;
  }
  case BAFU_REDUCE_MEAN:
    if (put_keys(R, o, g->first) || ROW(o, "%s%zu", sep, g->n)) return nomem();
    for (size_t j = 0; j < R->ys.n; ++j) {
      for (size_t i = 0; i < g->n; ++i)
        if ((st = value(R, g->rows[i], R->yc[j], 0, &R->ya[i]))) return st;
      double m, se;
      if ((st = bafu_mean_se(g->n, R->ya, &m, &se))) return group_error(R, g, st);
      if (ROW(o, " %.10g %.4g", m, se)) return nomem();
    }
    if (ROW(o, "\n")) return nomem();
    ++o->nrows;
    break;
  }
  return BAFU_OK;
}

/* Resolve the columns of the current series. */
static bafu_status resolve(reducer *R) {
  const bafu_reduce_spec *sp = R->spec;
  R->xc = R->sec = -1;
  if (sp->op != BAFU_REDUCE_MEAN && (R->xc = need_column(R, "x", sp->x)) < 0) return BAFU_EINVAL;
  for (size_t i = 0; i < R->ys.n; ++i)
    if ((R->yc[i] = need_column(R, "y", R->ys.name[i])) < 0) return BAFU_EINVAL;
  if (R->sename && (R->sec = need_column(R, "se", R->sename)) < 0) return BAFU_EINVAL;
  for (size_t i = 0; i < R->where.n; ++i)
    if ((R->wc[i] = need_column(R, "where", R->where.name[i])) < 0) return BAFU_EINVAL;
  R->nkeys = 0;
  for (size_t i = 0; i < R->ser.n; ++i) {
    if ((R->serc[i] = need_column(R, "series", R->ser.name[i])) < 0) return BAFU_EINVAL;
    R->keyc[R->nkeys++] = R->serc[i];
  }
  for (size_t i = 0; i < R->by.n; ++i) {
    if ((R->byc[i] = need_column(R, "by", R->by.name[i])) < 0) return BAFU_EINVAL;
    size_t j = 0;
    while (j < R->nkeys && R->keyc[j] != R->byc[i]) ++j;
    if (j == R->nkeys) R->keyc[R->nkeys++] = R->byc[i];
  }
  /* a value column that is also a key would be reduced over a group where it is constant */
  for (size_t i = 0; i < R->nkeys; ++i) {
    const int c = R->keyc[i];
    if (c == R->xc || c == R->sec) return bafu_error(BAFU_EINVAL, "by: '%s' is the axis, not a key", R->s->names[c]);
    for (size_t j = 0; j < R->ys.n; ++j)
      if (c == R->yc[j]) return bafu_error(BAFU_EINVAL, "by: '%s' is a value column, not a key", R->s->names[c]);
  }
  return BAFU_OK;
}

static bafu_status check_spec(const bafu_reduce_spec *sp, const reducer *R) {
  if (sp->op != BAFU_REDUCE_MEAN && (!sp->x || !*sp->x)) return bafu_error(BAFU_EINVAL, "x: the axis column is needed");
  if (R->ys.n == 0) return bafu_error(BAFU_EINVAL, "y: a value column is needed");
  if (sp->op != BAFU_REDUCE_MEAN && R->ys.n > 1) return bafu_error(BAFU_EINVAL, "y: one value column only here");
  if (sp->se && sp->op != BAFU_REDUCE_FIT) return bafu_error(BAFU_EINVAL, "se: only for fit");
  if (sp->fitted && sp->op != BAFU_REDUCE_FIT) return bafu_error(BAFU_EINVAL, "fitted: only for fit");
  if (sp->refine && sp->op != BAFU_REDUCE_ARGMIN && sp->op != BAFU_REDUCE_ARGMAX)
    return bafu_error(BAFU_EINVAL, "refine: only for argmin and argmax");
  if (sp->log_y && sp->op != BAFU_REDUCE_FIT) return bafu_error(BAFU_EINVAL, "log_y: only for fit");
  if (sp->log_x && sp->op == BAFU_REDUCE_MEAN) return bafu_error(BAFU_EINVAL, "log_x: not for mean");
  if (sp->index >= 0 && (size_t)sp->index >= R->in->nseries)
    return bafu_error(BAFU_EINVAL, "index: %ld, but %s has %zu series (0 to %zu)", sp->index, R->in->path,
                      R->in->nseries, R->in->nseries - 1);
  return BAFU_OK;
}

bafu_status bafu_reduce_table(const bafu_reduce_spec *spec, const bafu_tabdata *in, bafu_reduce_result **out) {
  *out = NULL;
  reducer R = {.spec = spec, .in = in, .sename = spec->se};
  bafu_status st;
  if ((st = names_parse("y", spec->y, &R.ys)) || (st = names_parse("by", spec->by, &R.by)) ||
      (st = names_parse("series", spec->series, &R.ser)) || (st = names_parse("where", spec->where, &R.where)))
    goto done;
  if ((st = check_spec(spec, &R))) goto done;
  size_t maxrows = 0, maxcols = 0;
  for (size_t k = 0; k < in->nseries; ++k) {
    if (in->series[k].nrows > maxrows) maxrows = in->series[k].nrows;
    if (in->series[k].ncols > maxcols) maxcols = in->series[k].ncols;
  }
  const size_t nk = R.by.n + R.ser.n;
  R.res = calloc(1, sizeof *R.res);
  R.yc = malloc((R.ys.n + 1) * sizeof *R.yc);
  R.byc = malloc((R.by.n + 1) * sizeof *R.byc);
  R.serc = malloc((R.ser.n + 1) * sizeof *R.serc);
  R.wc = malloc((R.where.n + 1) * sizeof *R.wc);
  R.wval = malloc((R.where.n + 1) * sizeof *R.wval);
  R.keyc = malloc((nk + 1) * sizeof *R.keyc);
  R.xa = malloc((maxrows + 1) * sizeof *R.xa);
  R.ya = malloc((maxrows + 1) * sizeof *R.ya);
  R.sa = malloc((maxrows + 1) * sizeof *R.sa);
  if (!R.res || !R.yc || !R.byc || !R.serc || !R.wc || !R.wval || !R.keyc || !R.xa || !R.ya || !R.sa) {
    st = nomem();
    goto done;
  }
  for (size_t i = 0; i < R.where.n; ++i) { /* "col=value": the names list holds "col=value" words */
    char *eq = strchr(R.where.name[i], '=');
    if (!eq || eq == R.where.name[i]) {
      st = bafu_error(BAFU_EINVAL, "where: '%s' is not col=value", R.where.name[i]);
      goto done;
    }
    *eq = '\0';
    R.wval[i] = eq + 1;
  }
  size_t kept = 0;
  for (size_t k = 0; k < in->nseries; ++k) {
    if (spec->index >= 0 && (size_t)spec->index != k) continue;
    R.k = k;
    R.s = &in->series[k];
    const size_t first_out = R.res->n;
    if ((st = resolve(&R)) || (st = make_groups(&R, first_out))) goto done;
    for (size_t j = 0; j < R.ng; ++j) {
      kept += R.g[j].n;
      if ((st = reduce_group(&R, &R.g[j]))) goto done;
    }
  }
  if (kept == 0) {
    st = bafu_error(BAFU_EINVAL, "%s: no rows to reduce%s", in->path, spec->where ? " (none passes where)" : "");
    goto done;
  }
  *out = R.res;
  R.res = NULL;
done:
  bafu_reduce_result_free(R.res);
  for (size_t j = 0; j < R.capg; ++j) free(R.g[j].rows);
  free(R.g);
  free(R.yc);
  free(R.byc);
  free(R.serc);
  free(R.wc);
  free(R.wval);
  free(R.keyc);
  free(R.xa);
  free(R.ya);
  free(R.sa);
  names_free(&R.ys);
  names_free(&R.by);
  names_free(&R.ser);
  names_free(&R.where);
  return st;
}

void bafu_reduce_describe(const bafu_reduce_spec *sp, char *buf, size_t size) {
  const char *y = sp->y ? sp->y : "";
  int w = 0;
  switch (sp->op) {
  case BAFU_REDUCE_FIT:
    w = snprintf(buf, size, "fit: %s%s%s = intercept + slope %s%s%s by %s least squares%s%s (theory/reduce.md 1)",
                 sp->log_y ? "log(" : "", y, sp->log_y ? ")" : "", sp->log_x ? "log(" : "", sp->x ? sp->x : "",
                 sp->log_x ? ")" : "", sp->se ? "weighted" : "ordinary", sp->se ? ", weights 1/se^2 of column " : "",
                 sp->se ? sp->se : "");
    break;
  case BAFU_REDUCE_ARGMIN:
  case BAFU_REDUCE_ARGMAX:
    w = snprintf(buf, size, "%s: the %s where %s is %s%s%s%s", sp->op == BAFU_REDUCE_ARGMAX ? "argmax" : "argmin",
                 sp->x ? sp->x : "", y, sp->op == BAFU_REDUCE_ARGMAX ? "largest" : "smallest",
                 sp->refine ? ", refined by the parabola through the best point and its two neighbours in " : " (grid point",
                 sp->refine ? (sp->log_x ? "log " : "") : "", sp->refine ? (sp->x ? sp->x : "") : ")");
    if (sp->refine && w >= 0 && (size_t)w < size)
      w += snprintf(buf + w, size - (size_t)w, " (theory/reduce.md 2; refined 0: the grid point, at an edge of the grid)");
    break;
  case BAFU_REDUCE_MEAN:
    w = snprintf(buf, size, "mean: the mean of %s and its standard error s/sqrt(n) (theory/reduce.md 3)", y);
    break;
  }
  if (w >= 0 && (size_t)w < size)
    w += snprintf(buf + w, size - (size_t)w, "; groups: %s%s%s%s%s", sp->by ? "by " : "",
                  sp->by ? sp->by : (sp->series ? "" : "one per series"), sp->series && sp->by ? ", " : "",
                  sp->series ? "a series per " : "", sp->series ? sp->series : "");
  if (w >= 0 && (size_t)w < size && sp->where) w += snprintf(buf + w, size - (size_t)w, "; rows where %s", sp->where);
  if (w >= 0 && (size_t)w < size && sp->index >= 0) snprintf(buf + w, size - (size_t)w, "; series %ld only", sp->index);
}
