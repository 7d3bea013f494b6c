/* sweep.c: grid files and per-point runs of `bafu sweep` (bafu/sweep.h). */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include "bafu/sweep.h"

#include <ctype.h>
#include <pthread.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/layout.h"
#include "bafu/mc.h"
#include "bafu/moments.h"
#include "bafu/params.h"
#include "bafu/text.h"

/* The grid axes: the parameters of the table (bafu/params.h) with an axis
 * position, in that order; then the run settings. */
#define MAX_AXES 32
#define FIXED_AXES 8 /* axes 1..8 are columns of every table; the others only when the grid sets them */
typedef enum { KEY_SEEDS, KEY_SEED, KEY_STEP, KEY_SAMPLER, RUN_COUNT } run_key;
static const char *const run_names[RUN_COUNT] = {"seeds", "seed", "step", "sampler"};
static const char *const sampler_names[] = {"stored", "conditional"};

static const bafu_param *axis_list[MAX_AXES];
static size_t axis_count;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The axes in rank order, made once from the constant parameter table. */
static void init_axes(void) {
  size_t total;
  const bafu_param *t = bafu_params(&total);
  for (int rank = 1; rank <= MAX_AXES; ++rank)
    for (size_t i = 0; i < total; ++i)
      if (t[i].axis == rank && axis_count < MAX_AXES) axis_list[axis_count++] = &t[i];
}

/* The axes in order; *count of them. */
static const bafu_param *const *axes(size_t *count) {
  pthread_once(&once, init_axes);
  *count = axis_count;
  return axis_list;
}

void bafu_sweep_axes_text(char *buf, size_t size) {
  size_t na, used = 0;
  const bafu_param *const *ax = axes(&na);
  buf[0] = '\0';
  for (size_t a = 0; a < na; ++a) {
    const char *sep = a == 0 ? "" : a == FIXED_AXES ? ", and, as columns after init only when set, " : ", ";
    int m = snprintf(buf + used, used < size ? size - used : 0, "%s%s", sep, ax[a]->name);
    if (m > 0) used += (size_t)m;
    for (size_t c = 0; ax[a]->choices && ax[a]->choices[c]; ++c) {
      m = snprintf(buf + used, used < size ? size - used : 0, "%s%s%s", c ? " " : " (", ax[a]->choices[c],
                   ax[a]->choices[c + 1] ? "" : ")");
      if (m > 0) used += (size_t)m;
    }
    if (ax[a]->type == BAFU_PARAM_FLAG) {
      m = snprintf(buf + used, used < size ? size - used : 0, " (0 1)");
      if (m > 0) used += (size_t)m;
    }
  }
}

/* Every axis value is stored as a double: enum index, integer or number. */
struct bafu_sweep {
  int shown[MAX_AXES]; /* a column of the table: the fixed axes, and those the grid sets */
  char header[2048];
  size_t nval[MAX_AXES];
  double val[MAX_AXES][BAFU_SWEEP_MAX_VALUES];
  size_t npoints, seeds;
  uint64_t seed;
  double step;
  int conditional; /* sampler = conditional: bafu_net_params.conditional */
};

void bafu_sweep_free(bafu_sweep *s) { free(s); }
size_t bafu_sweep_npoints(const bafu_sweep *s) { return s->npoints; }
size_t bafu_sweep_seeds(const bafu_sweep *s) { return s->seeds; }
uint64_t bafu_sweep_seed(const bafu_sweep *s) { return s->seed; }

/* Whole-token parsers; return 1 on success. */
static int parse_u64(const char *t, unsigned long long *v) {
  if (!isdigit((unsigned char)t[0])) return 0;
  char *end;
  errno = 0;
  *v = strtoull(t, &end, 10);
  return *end == '\0' && errno != ERANGE;
}

/* Parse one value token of axis q: a value in its range (bafu/params.h); on
 * failure write the reason. */
static int parse_axis(const bafu_param *q, const char *t, double *v, char *why, size_t wsize) {
  bafu_net_params p = bafu_net_params_default();
  if (bafu_param_parse(q, t, v)) {
    bafu_param_set(q, &p, *v);
    if (bafu_param_check(q, &p) == BAFU_OK) return 1;
  }
  char range[160];
  bafu_param_range_text(q, range, sizeof range);
  snprintf(why, wsize, "expected %s, got '%s'", range, t);
  return 0;
}

/* Parse the value token of run setting k; on failure write the reason. */
static int parse_run(int k, const char *t, double *v, char *why, size_t wsize) {
  unsigned long long u;
  switch (k) {
  case KEY_SAMPLER:
    for (int i = 0; i < 2; ++i)
      if (strcmp(t, sampler_names[i]) == 0) {
        *v = i;
        return 1;
      }
    snprintf(why, wsize, "expected stored or conditional, got '%s'", t);
    return 0;
  case KEY_SEEDS:
    if (parse_u64(t, &u) && u >= 2 && u <= 100000000ULL) {
      *v = (double)u;
      return 1;
    }
    snprintf(why, wsize, "expected an integer in [2, 1e8] (two draws for a standard error), got '%s'", t);
    return 0;
  case KEY_SEED:
    if (parse_u64(t, &u) && u <= (1ULL << 53)) {
      *v = (double)u;
      return 1;
    }
    snprintf(why, wsize, "expected an integer in [0, 2^53], got '%s'", t);
    return 0;
  default: /* KEY_STEP */
    if (bafu_parse_double(t, v) && *v > 0) return 1;
    snprintf(why, wsize, "expected a finite number > 0, got '%s'", t);
    return 0;
  }
}

static void set_defaults(bafu_sweep *s) {
  const bafu_net_params d = bafu_net_params_default();
  size_t na;
  const bafu_param *const *ax = axes(&na);
  for (size_t a = 0; a < na; ++a) {
    s->nval[a] = 1;
    s->val[a][0] = bafu_param_get(ax[a], &d);
    s->shown[a] = a < FIXED_AXES;
  }
  s->seeds = 8;
  s->seed = 1;
  s->step = d.step;
}

bafu_net_params bafu_sweep_params(const bafu_sweep *s, size_t k) {
  size_t na;
  const bafu_param *const *ax = axes(&na);
  bafu_net_params p = bafu_net_params_default();
  for (size_t a = na; a-- > 0;) { /* last axis fastest */
    bafu_param_set(ax[a], &p, s->val[a][k % s->nval[a]]);
    k /= s->nval[a];
  }
  p.input_dim = 0;
  p.batch = 1;
  p.signal = BAFU_SIGNAL_PROBE;
  p.step = s->step;
  p.conditional = s->conditional;
  return p;
}

/* One axis value as the tables print it: choices by name, numbers with
 * %.10g (exact: %a). */
static void axis_value(const bafu_param *q, double v, int exact, char *buf, size_t size) {
  if (q->type == BAFU_PARAM_CHOICE)
    bafu_param_format(q, v, 0, buf, size);
  else if (q->type == BAFU_PARAM_DOUBLE || exact)
    snprintf(buf, size, exact ? "%a" : "%.10g", v);
  else /* integers */
    snprintf(buf, size, "%llu", (unsigned long long)v);
}

/* The point's own columns (point, then each shown axis), shared by rows and messages. */
static void point_columns(const bafu_sweep *s, const bafu_net_params *p, size_t k, char *buf, size_t size) {
  size_t na, used;
  const bafu_param *const *ax = axes(&na);
  snprintf(buf, size, "%zu", k);
  for (size_t a = 0; a < na && (used = strlen(buf)) < size; ++a) {
    if (!s->shown[a]) continue;
    char v[64];
    axis_value(ax[a], bafu_param_get(ax[a], p), 0, v, sizeof v);
    snprintf(buf + used, size - used, " %s", v);
  }
}

bafu_status bafu_sweep_read(const char *path, bafu_sweep **out) {
  *out = NULL;
  bafu_text *f;
  bafu_status st = bafu_text_open(path, "grid file", &f);
  if (st) return st;
  bafu_sweep *s = calloc(1, sizeof *s);
  if (!s) {
    bafu_text_close(f);
    return bafu_error(BAFU_ENOMEM, "%s: out of memory", path);
  }
  set_defaults(s);
  int seen[MAX_AXES + RUN_COUNT] = {0}, settings = 0;
  char *line, why[256];
  size_t lineno = 0, len;
  while (!st && !(st = bafu_text_line(f, &line, &len)) && line) {
    lineno = bafu_text_lineno(f);
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char *save, *tok = strtok_r(line, " \t", &save);
    if (!tok) continue; /* blank or comment */
    char key[64];
    char *eq = strchr(tok, '=');
    char *rest = NULL; /* text after '=' within tok, if any */
    if (eq) {
      *eq = '\0';
      rest = eq + 1;
    }
    snprintf(key, sizeof key, "%s", tok);
    size_t na;
    const bafu_param *const *ax = axes(&na);
    int k = -1; /* axes 0..na-1, then run settings na.. */
    for (size_t i = 0; i < na; ++i)
      if (strcmp(key, ax[i]->name) == 0) k = (int)i;
    for (int i = 0; i < RUN_COUNT; ++i)
      if (strcmp(key, run_names[i]) == 0) k = (int)na + i;
    if (k < 0) {
      char known[512] = "";
      for (size_t i = 0; i < na + RUN_COUNT; ++i)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? " " : "",
                 i < na ? ax[i]->name : run_names[i - na]);
      st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: unknown key (known: %s)", path, lineno, key[0] ? key : "=", known);
      break;
    }
    if (!eq) { /* '=' must be the next token or start it */
      tok = strtok_r(NULL, " \t", &save);
      if (!tok || tok[0] != '=') {
        st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: expected 'key = value ...'", path, lineno, key);
        break;
      }
      rest = tok + 1;
    }
    if (seen[k]) {
      st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: given twice (first on line %d)", path, lineno, key, seen[k]);
      break;
    }
    seen[k] = (int)lineno;
    ++settings;
    double vals[BAFU_SWEEP_MAX_VALUES];
    size_t nv = 0;
    const char *t = rest && *rest ? rest : strtok_r(NULL, " \t", &save);
    for (; t && !st; t = strtok_r(NULL, " \t", &save)) {
      if (nv == BAFU_SWEEP_MAX_VALUES) {
        st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: more than %d values", path, lineno, key, BAFU_SWEEP_MAX_VALUES);
        break;
      }
      if (!((size_t)k < na ? parse_axis(ax[k], t, &vals[nv], why, sizeof why)
                           : parse_run(k - (int)na, t, &vals[nv], why, sizeof why))) {
        st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: %s", path, lineno, key, why);
        break;
      }
      ++nv;
    }
    if (st) break;
    if (nv == 0) {
      st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: no value", path, lineno, key);
      break;
    }
    if ((size_t)k >= na && nv > 1) {
      st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: takes exactly one value, got %zu", path, lineno, key, nv);
      break;
    }
    for (size_t i = 0; i < nv; ++i)
      for (size_t j = 0; j < i; ++j)
        if (vals[i] == vals[j] && !st)
          st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: value %zu repeats value %zu", path, lineno, key, i + 1, j + 1);
    if (st) break;
    if ((size_t)k < na) {
      s->shown[k] = 1;
      s->nval[k] = nv;
      memcpy(s->val[k], vals, nv * sizeof(double));
    } else if (k - (int)na == KEY_SEEDS) {
      s->seeds = (size_t)vals[0];
    } else if (k - (int)na == KEY_SEED) {
      s->seed = (uint64_t)vals[0];
    } else if (k - (int)na == KEY_SAMPLER) {
      s->conditional = vals[0] != 0;
    } else {
      s->step = vals[0];
    }
  }
  bafu_text_close(f);
  if (!st && settings == 0)
    st = bafu_error(BAFU_EPARSE, "%s: no settings (an empty grid file; see the help of bafu sweep for the format)", path);
  if (!st) {
    double n = 1;
    size_t na;
    axes(&na);
    for (size_t a = 0; a < na; ++a) n *= (double)s->nval[a];
    if (n > BAFU_SWEEP_MAX_POINTS)
      st = bafu_error(BAFU_EPARSE, "%s: the grid has %.0f points, more than %d", path, n, BAFU_SWEEP_MAX_POINTS);
    else
      s->npoints = (size_t)n;
  }
  for (size_t k = 0; !st && k < s->npoints; ++k) {
    const bafu_net_params p = bafu_sweep_params(s, k);
    bafu_status ps = bafu_net_params_check(&p);
    /* every point within the memory limit, before any runs: its Monte Carlo
       (one worker) and its theory */
    if (!ps) ps = bafu_memory_check(bafu_mc_memory_bytes(&p, s->seeds) + bafu_moments_memory_bytes(&p), "width/depth/seeds");
    if (ps) {
      char cols[512], msg[512];
      point_columns(s, &p, k, cols, sizeof cols);
      snprintf(msg, sizeof msg, "%s", bafu_last_error());
      st = bafu_error(ps, "%s: point %s: %s", path, cols, msg);
    }
  }
  if (st) {
    free(s);
    return st;
  }
  size_t na, used = (size_t)snprintf(s->header, sizeof s->header, "point");
  const bafu_param *const *ax = axes(&na);
  for (size_t a = 0; a < na; ++a)
    if (s->shown[a]) used += (size_t)snprintf(s->header + used, sizeof s->header - used, " %s", ax[a]->name);
  snprintf(s->header + used, sizeof s->header - used,
           " layer cos_theta_mc cos_theta_mc_se cos_theta_theory feature_speed_mc feature_speed_mc_se "
           "feature_speed_theory loss_decay_mc loss_decay_mc_se loss_decay_theory");
  *out = s;
  return BAFU_OK;
}

/* The grid line, snprintf-style: writes what fits (always NUL-terminated when
 * size > 0) and returns the full length. exact: numbers as hex floats. */
static size_t describe(const bafu_sweep *s, int exact, char *buf, size_t size) {
  size_t used = 0;
#define PUT(...)                                                                       \
  do {                                                                                 \
    const int m_ = snprintf(used < size ? buf + used : NULL, used < size ? size - used : 0, __VA_ARGS__); \
    if (m_ > 0) used += (size_t)m_;                                                    \
  } while (0)
  if (size > 0) buf[0] = '\0';
  size_t na;
  const bafu_param *const *ax = axes(&na);
  for (size_t a = 0; a < na; ++a) {
    if (!s->shown[a]) continue;
    PUT("%s%s=", a ? " " : "", ax[a]->name);
    for (size_t i = 0; i < s->nval[a]; ++i) {
      char v[64];
      axis_value(ax[a], s->val[a][i], exact, v, sizeof v);
      PUT("%s%s", i ? "," : "", v);
    }
  }
  if (exact)
    PUT(" seeds=%zu seed=%llu step=%a points=%zu", s->seeds, (unsigned long long)s->seed, s->step, s->npoints);
  else
    PUT(" seeds=%zu seed=%llu step=%g points=%zu", s->seeds, (unsigned long long)s->seed, s->step, s->npoints);
  if (s->conditional) PUT(" sampler=conditional"); /* only when set */
#undef PUT
  return used;
}

void bafu_sweep_describe(const bafu_sweep *s, char *buf, size_t size) { describe(s, 0, buf, size); }

char *bafu_sweep_fingerprint(const bafu_sweep *s) {
  const size_t n = describe(s, 1, NULL, 0);
  char *buf = malloc(n + 1);
  if (buf) describe(s, 1, buf, n + 1);
  return buf;
}

int bafu_sweep_check_rows(const bafu_sweep *s, size_t k, const char *text) {
  if (k >= s->npoints) return 1;
  const bafu_net_params p = bafu_sweep_params(s, k);
  bafu_layout lay;
  if (bafu_layout_build(&p, &lay)) return 1;
  /* one row per layer from the first trained one up, in order, as run_point writes them */
  const size_t first = bafu_layout_first_trained(&lay);
  char cols[512], note[64];
  point_columns(s, &p, k, cols, sizeof cols);
  snprintf(note, sizeof note, "# point %zu: ", k);
  const size_t clen = strlen(cols), nlen = strlen(note);
  size_t rows = 0, notes = 0;
  for (const char *line = text; *line;) {
    const char *nl = strchr(line, '\n');
    if (!nl) return 1; /* every row ends in a newline */
    if (*line == '#') { /* the one note on the point's draws: printable text */
      if (rows || notes++ || strncmp(line, note, nlen) != 0) return 1;
      for (const char *c = line; c < nl; ++c)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) return 1;
      line = nl + 1;
      continue;
    }
    if ((size_t)(nl - line) <= clen || strncmp(line, cols, clen) != 0 || line[clen] != ' ') return 1;
    if (first + rows >= lay.J) return 1; /* more rows than layers */
    /* the layer label, then 9 finite numbers */
    size_t nf = 0;
    for (const char *c = line + clen + 1; c < nl;) {
      const char *e = c;
      while (e < nl && *e != ' ') ++e;
      char tok[64];
      double v;
      if (e - c <= 0 || e - c >= (long)sizeof tok) return 1;
      memcpy(tok, c, (size_t)(e - c));
      tok[e - c] = '\0';
      if (nf == 0) { /* the label of layer first + rows, exactly as %d prints it */
        char want[32];
        snprintf(want, sizeof want, "%d", bafu_layout_entry(&lay, first + rows, NULL, NULL));
        if (strcmp(tok, want) != 0) return 1;
      } else if (!bafu_parse_double(tok, &v)) {
        return 1;
      }
      ++nf;
      c = e < nl ? e + 1 : e;
    }
    if (nf != 10) return 1;
    ++rows;
    line = nl + 1;
  }
  return rows == 0 || first + rows != lay.J;
}

const char *bafu_sweep_header(const bafu_sweep *s) { return s->header; }

bafu_status bafu_sweep_run_point(const bafu_sweep *s, size_t k, int threads, char **text, size_t *len) {
  *text = NULL;
  *len = 0;
  if (k >= s->npoints) return bafu_error(BAFU_EINVAL, "sweep: point %zu out of range (%zu points)", k, s->npoints);
  const bafu_net_params p = bafu_sweep_params(s, k);
  char cols[512];
  point_columns(s, &p, k, cols, sizeof cols);
  const size_t J = bafu_moments_nlayers(&p);
  bafu_moments_layer *th = malloc(J * sizeof *th);
  if (!th) return bafu_error(BAFU_ENOMEM, "point %s: out of memory", cols);
  bafu_status st = bafu_moments_run(&p, 0, th);
  if (st) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", bafu_last_error());
    free(th);
    return bafu_error(st, "point %s: theory: %s", cols, msg);
  }
  bafu_mc_result mc;
  if ((st = bafu_mc_run(&p, s->seeds, s->seed, NULL, threads, &mc))) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", bafu_last_error());
    free(th);
    return bafu_error(st, "point %s: mc: %s", cols, msg);
  }
  char *buf = NULL;
  size_t size = 0;
  FILE *f = mc.J == J ? open_memstream(&buf, &size) : NULL;
  if (!f) {
    st = mc.J == J ? bafu_error(BAFU_ENOMEM, "point %s: out of memory", cols)
                   : bafu_error(BAFU_ENUMERIC, "point %s: mc has %zu layers, theory %zu", cols, mc.J, J);
  }
  if (f && mc.excluded) fprintf(f, "# point %zu: %s\n", k, mc.note);
  for (size_t j = 0; !st && j < J; ++j) {
    const double *mean = mc.mean + j * BAFU_Q_COUNT, *se = mc.se + j * BAFU_Q_COUNT;
    /* no trained parameter at or below the layer: angle undefined, row left out */
    if (th[j].m1 == 0 || mc.max[j * BAFU_Q_COUNT + BAFU_Q_DECAY] == 0) continue;
    const double v[9] = {mean[BAFU_Q_COS],   se[BAFU_Q_COS],   th[j].cos_theta,
                         mean[BAFU_Q_SPEED], se[BAFU_Q_SPEED], th[j].feature_speed,
                         mean[BAFU_Q_DECAY], se[BAFU_Q_DECAY], th[j].loss_decay};
    int ncols = 1; /* the point's own columns, then the layer's */
    for (const char *c = cols; *c; ++c) ncols += *c == ' ';
    for (int i = 0; i < 9 && !st; ++i)
      if (!isfinite(v[i]))
        st = bafu_error(BAFU_ENUMERIC, "point %s: column %d of layer %d is not finite (overflow: reduce depth, "
                                       "sigma_w2 or branch_scale)",
                        cols, ncols + 2 + i, mc.labels[j]);
    if (st) break;
    if (mc.labels[j] != th[j].label) {
      st = bafu_error(BAFU_ENUMERIC, "point %s: layer labels differ (%d, %d)", cols, mc.labels[j], th[j].label);
      break;
    }
    fprintf(f, "%s %d %.10g %.4g %.12g %.10g %.4g %.12g %.10g %.4g %.12g\n", cols, mc.labels[j], v[0], v[1], v[2],
            v[3], v[4], v[5], v[6], v[7], v[8]);
  }
  if (f && fclose(f) && !st) st = bafu_error(BAFU_ENOMEM, "point %s: out of memory formatting rows", cols);
  free(th);
  bafu_mc_result_free(&mc);
  if (st) {
    free(buf);
    return st;
  }
  *text = buf;
  *len = size;
  return BAFU_OK;
}
