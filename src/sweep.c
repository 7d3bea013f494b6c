/* sweep.c: grid files and per-point runs of `bafu sweep` (bafu/sweep.h). */
#define _POSIX_C_SOURCE 200809L /* open_memstream, strdup */
#include "bafu/sweep.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/layout.h"
#include "bafu/mc.h"
#include "bafu/moments.h"
#include "bafu/params.h"
#include "bafu/preset.h"
#include "bafu/text.h"
#include "bafu/train.h"

/* ---- the keys ----------------------------------------------------------- */

/* The grid axes: the parameters of the table (bafu/params.h) with an axis
 * position, net group first, then the preset, then the training settings;
 * then the run settings, which take one value. */
#define MAX_AXES 64
#define FIXED_AXES 8 /* axes 1..8 are columns of every table; the others only when the grid sets them */
typedef enum { KEY_SEEDS, KEY_SEED, KEY_STEP, KEY_SAMPLER, KEY_TASK, KEY_ROWS, KEY_COLUMNS, KEY_DATA_DIR, RUN_COUNT } run_key;
static const char *const run_names[RUN_COUNT] = {"seeds", "seed", "step", "sampler", "task", "rows", "columns", "data_dir"};
static const char *const sampler_names[] = {"stored", "conditional", NULL};
static const char *const task_names[] = {"mc", "train", NULL};
static const char *const rows_names[] = {"all", "final", NULL};
/* the run settings of each task (1: mc, 2: train) */
static const unsigned run_tasks[RUN_COUNT] = {1, 3, 1, 1, 3, 2, 3, 2};

/* The preset: not a field of the parameters but a rule that rewrites the
 * variances and rates of each point (bafu_preset_apply), as bafu mc --preset. */
static const char *const preset_names[] = {"none", "sp", "ntk", "mup", "fsc", NULL};
static const bafu_param preset_axis = {"preset", BAFU_PARAM_CHOICE, BAFU_PARAMS_NET, 0, 0, 0, 0, 0, 0, preset_names,
                                       NULL, "P", "the scaling rule of variances and rates (bafu theory --presets)", 0,
                                       0};
/* What a preset sets: a grid gives either the preset or these. */
static const char *const preset_sets[] = {"sigma2_input", "sigma2_output", "lr_input", "lr_hidden",
                                          "lr_output",    "lr_bias_input", "lr_bias",  "lr_bias_output"};

static const bafu_param *axis_list[MAX_AXES];
static size_t axis_count;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_axes(void) {
  size_t total;
  const bafu_param *t = bafu_params(&total);
  for (int g = 0; g < 2; ++g) {
    for (int rank = 1; rank <= 2 * MAX_AXES; ++rank)
      for (size_t i = 0; i < total; ++i)
        if (t[i].axis == rank && (int)t[i].group == g && t[i].type != BAFU_PARAM_STRING && axis_count < MAX_AXES)
          axis_list[axis_count++] = &t[i];
    if (g == 0 && axis_count < MAX_AXES) axis_list[axis_count++] = &preset_axis;
  }
}

/* The axes in order; *count of them. */
static const bafu_param *const *axes(size_t *count) {
  pthread_once(&once, init_axes);
  *count = axis_count;
  return axis_list;
}

/* Whether axis q is a key of task t (0 mc, 1 train). */
static int axis_of_task(const bafu_param *q, int t) {
  if (q->group == BAFU_PARAMS_TRAIN) return t == 1;
  return t == 0 || !(q->flags & BAFU_PARAM_SAMPLING);
}

/* ---- the columns -------------------------------------------------------- */

/* Monte Carlo grids: every column of bafu mc (its quantities in its order),
 * as _mc (mean) and _mc_se (standard error), identity_residual_mc (the
 * maximum over draws, as bafu mc's identity_residual), and _theory for the
 * quantities bafu theory predicts, with its formulas. */
static const bafu_quantity mc_quantities[] = {BAFU_Q_COS,     BAFU_Q_SPEED,     BAFU_Q_BNORM,    BAFU_Q_DECAY,
                                              BAFU_Q_BAFU,    BAFU_Q_IDRES,     BAFU_Q_CONTRIB,  BAFU_Q_FRMS,
                                              BAFU_Q_SPEED_RMS, BAFU_Q_STEP,    BAFU_Q_STEP_COS, BAFU_Q_STEP_DEV,
                                              BAFU_Q_SENS};
#define MC_NQ (sizeof mc_quantities / sizeof mc_quantities[0])
enum { COL_MC, COL_SE, COL_THEORY };
static const char *const col_suffix[] = {"_mc", "_mc_se", "_theory"};

static int has_theory(bafu_quantity q) {
  return q == BAFU_Q_COS || q == BAFU_Q_SPEED || q == BAFU_Q_BNORM || q == BAFU_Q_DECAY || q == BAFU_Q_SENS;
}
static int has_kind(bafu_quantity q, int kind) {
  return kind == COL_MC || (kind == COL_SE && q != BAFU_Q_IDRES) || (kind == COL_THEORY && has_theory(q));
}

/* Training grids: the value columns of bafu train's table, its formats. */
enum { T_LOSS, T_TRAIN_ACC, T_TEST_LOSS, T_TEST_ACC, T_STEP_SIZE, T_LR, T_LR_BIAS, T_COS, T_SPEED, T_SPEED_RMS,
       T_CONTRIB, T_DECAY, T_IDRES, T_SENS, T_COUNT };
static const struct {
  const char *name, *fmt;
} train_cols[T_COUNT] = {{"loss", "%.8g"},         {"train_acc", "%.6g"},         {"test_loss", "%.8g"},
                         {"test_acc", "%.6g"},     {"step_size", "%.6g"},         {"lr", "%.6g"},
                         {"lr_bias", "%.6g"},      {"cos_theta", "%.8g"},         {"feature_speed", "%.6g"},
                         {"feature_speed_rms", "%.6g"}, {"contribution", "%.6g"}, {"loss_decay", "%.6g"},
                         {"identity_residual", "%.3g"}, {"sensitivity", "%.6g"}};

#define MAX_COLS 64

/* ---- the grid ----------------------------------------------------------- */

/* Every axis value is stored as a double: enum index, integer or number. */
struct bafu_sweep {
  int task;            /* 0: bafu mc points, 1: bafu train points */
  int shown[MAX_AXES]; /* a column of the table: the fixed axes, and those the grid sets */
  size_t nval[MAX_AXES];
  double val[MAX_AXES][BAFU_SWEEP_MAX_VALUES];
  size_t npoints, seeds;
  uint64_t seed;
  double step;
  int sampler;   /* sampler = conditional given (mc): bafu_net_params.conditional = 1 */
  int outputs_set; /* the grid sets outputs (else 10 with xent, as bafu mc --loss xent) */
  int final_only;  /* rows = final */
  char *data_dir;  /* data_dir (train), or NULL */
  size_t ncol;
  int col[MAX_COLS];   /* mc: quantity index * 3 + kind; train: T_* */
  int default_cols;    /* the columns were not chosen */
  int theory;          /* some column is a _theory one */
  char header[4096];
};

void bafu_sweep_free(bafu_sweep *s) {
  if (!s) return;
  free(s->data_dir);
  free(s);
}
size_t bafu_sweep_npoints(const bafu_sweep *s) { return s->npoints; }
size_t bafu_sweep_seeds(const bafu_sweep *s) { return s->seeds; }
uint64_t bafu_sweep_seed(const bafu_sweep *s) { return s->seed; }
int bafu_sweep_task(const bafu_sweep *s) { return s->task; }
const char *bafu_sweep_header(const bafu_sweep *s) { return s->header; }

/* The name of column c of s (static storage per call site: buf). */
static const char *col_name(const bafu_sweep *s, int c, char *buf, size_t size) {
  if (s->task) return train_cols[c].name;
  snprintf(buf, size, "%s%s", bafu_quantity_name(mc_quantities[c / 3]), col_suffix[c % 3]);
  return buf;
}

/* ---- values of axes ----------------------------------------------------- */

/* The field of axis q: in the network (p) or the training settings (c). */
static void *axis_base(const bafu_param *q, bafu_train_config *c) {
  return q->group == BAFU_PARAMS_TRAIN ? (void *)c : (void *)&c->net;
}

/* Parse one value token of axis q: a value in its range (bafu/params.h); on
 * failure write the reason. */
static int parse_axis(const bafu_param *q, const char *t, double *v, char *why, size_t wsize) {
  bafu_train_config c = bafu_train_config_default();
  if (bafu_param_parse(q, t, v)) {
    if (q == &preset_axis) return 1;
    bafu_param_set(q, axis_base(q, &c), *v);
    if (bafu_param_check(q, axis_base(q, &c)) == BAFU_OK) return 1;
  }
  char range[160];
  bafu_param_range_text(q, range, sizeof range);
  snprintf(why, wsize, "expected %s, got '%s'", range, t);
  return 0;
}

/* Parse the value token of run setting k; on failure write the reason. */
static int choice(const char *const *names, const char *t, double *v) {
  for (int i = 0; names[i]; ++i)
    if (strcmp(t, names[i]) == 0) {
      *v = i;
      return 1;
    }
  return 0;
}

static int parse_run(int k, const char *t, double *v, char *why, size_t wsize) {
  unsigned long long u;
  char *end;
  switch (k) {
  case KEY_SAMPLER:
    if (choice(sampler_names, t, v)) return 1;
    snprintf(why, wsize, "expected stored or conditional, got '%s'", t);
    return 0;
  case KEY_TASK:
    if (choice(task_names, t, v)) return 1;
    snprintf(why, wsize, "expected mc or train, got '%s'", t);
    return 0;
  case KEY_ROWS:
    if (choice(rows_names, t, v)) return 1;
    snprintf(why, wsize, "expected all or final, got '%s'", t);
    return 0;
  case KEY_SEEDS:
  case KEY_SEED:
    errno = 0;
    u = isdigit((unsigned char)t[0]) ? strtoull(t, &end, 10) : 0;
    if (isdigit((unsigned char)t[0]) && *end == '\0' && errno != ERANGE &&
        (k == KEY_SEEDS ? u >= 2 && u <= 100000000ULL : u <= (1ULL << 53))) {
      *v = (double)u;
      return 1;
    }
    snprintf(why, wsize, k == KEY_SEEDS ? "expected an integer in [2, 1e8] (two draws for a standard error), got '%s'"
                                        : "expected an integer in [0, 2^53], got '%s'",
             t);
    return 0;
  case KEY_STEP:
    if (bafu_parse_double(t, v) && *v > 0) return 1;
    snprintf(why, wsize, "expected a finite number > 0, got '%s'", t);
    return 0;
  default: /* columns, data_dir: kept as text */
    *v = 0;
    return 1;
  }
}

/* The network (and training settings) of point k, and whether its preset
 * applies (an error only when it does not, with the message set). */
static bafu_status point_config(const bafu_sweep *s, size_t k, bafu_train_config *c) {
  size_t na;
  const bafu_param *const *ax = axes(&na);
  double preset = 0;
  *c = bafu_train_config_default(); /* every axis is set below: the grid's values or its task's defaults */
  if (s->task) {
    c->data_dir = s->data_dir;
  } else {
    c->net = bafu_net_params_default();
    c->net.step = s->step;
  }
  for (size_t a = na; a-- > 0;) { /* last axis fastest */
    const double v = s->val[a][k % s->nval[a]];
    k /= s->nval[a];
    if (ax[a] == &preset_axis)
      preset = v;
    else
      bafu_param_set(ax[a], axis_base(ax[a], c), v);
  }
  bafu_net_params *p = &c->net;
  if (s->task) p->step = 0;
  if (!s->task && s->sampler) p->conditional = 1;
  if (p->signal == BAFU_SIGNAL_XENT && !s->outputs_set) p->outputs = 10; /* as bafu mc --loss xent */
  if (preset > 0) return bafu_preset_apply(p, (bafu_preset)(preset - 1));
  return BAFU_OK;
}

bafu_net_params bafu_sweep_params(const bafu_sweep *s, size_t k) {
  bafu_train_config c;
  point_config(s, k % (s->npoints ? s->npoints : 1), &c);
  return c.net;
}

bafu_train_config bafu_sweep_train_config(const bafu_sweep *s, size_t k) {
  bafu_train_config c;
  point_config(s, k % (s->npoints ? s->npoints : 1), &c);
  return c;
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

/* The point's own columns (point, then each shown axis's value at point k),
 * shared by rows and messages. */
static void point_columns(const bafu_sweep *s, size_t k, char *buf, size_t size) {
  size_t na, used, kk = k;
  const bafu_param *const *ax = axes(&na);
  size_t idx[MAX_AXES];
  for (size_t a = na; a-- > 0;) {
    idx[a] = kk % s->nval[a];
    kk /= s->nval[a];
  }
  snprintf(buf, size, "%zu", k);
  for (size_t a = 0; a < na && (used = strlen(buf)) < size; ++a) {
    if (!s->shown[a]) continue;
    char v[64];
    axis_value(ax[a], s->val[a][idx[a]], 0, v, sizeof v);
    snprintf(buf + used, size - used, " %s", v);
  }
}

/* ---- columns ------------------------------------------------------------ */

/* Add column c; 0 if it is there already. */
static int add_col(bafu_sweep *s, int c) {
  for (size_t i = 0; i < s->ncol; ++i)
    if (s->col[i] == c) return 0;
  if (s->ncol < MAX_COLS) s->col[s->ncol++] = c;
  return 1;
}

void bafu_sweep_columns_text(int task, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
#define PUT(...)                                                                              \
  do {                                                                                        \
    const int m_ = snprintf(used < size ? buf + used : NULL, used < size ? size - used : 0, __VA_ARGS__); \
    if (m_ > 0) used += (size_t)m_;                                                           \
  } while (0)
  if (task) {
    for (int c = 0; c < T_COUNT; ++c) PUT("%s%s", c ? " " : "", train_cols[c].name);
  } else {
    for (size_t q = 0; q < MC_NQ; ++q) PUT("%s%s", q ? " " : "", bafu_quantity_name(mc_quantities[q]));
    PUT(", each as NAME_mc and NAME_mc_se (identity_residual_mc only: the largest over draws) and, for");
    for (size_t q = 0; q < MC_NQ; ++q)
      if (has_theory(mc_quantities[q])) PUT(" %s", bafu_quantity_name(mc_quantities[q]));
    PUT(", NAME_theory; NAME alone: all of its columns");
  }
#undef PUT
}

/* Parse a list of column names (separated by spaces or commas) into s;
 * on failure write the reason. */
static int parse_columns(bafu_sweep *s, const char *list, char *why, size_t wsize) {
  s->ncol = 0;
  char *copy = strdup(list);
  if (!copy) {
    snprintf(why, wsize, "out of memory");
    return 0;
  }
  char *save, *t;
  int ok = 1;
  for (t = strtok_r(copy, " \t,", &save); t && ok; t = strtok_r(NULL, " \t,", &save)) {
    int found = 0, fresh = 1;
    if (s->task) {
      for (int c = 0; c < T_COUNT && !found; ++c)
        if (strcmp(t, train_cols[c].name) == 0) found = 1, fresh = add_col(s, c);
    } else {
      for (size_t q = 0; q < MC_NQ && !found; ++q) {
        const char *name = bafu_quantity_name(mc_quantities[q]);
        const size_t n = strlen(name);
        if (strncmp(t, name, n) != 0) continue;
        if (t[n] == '\0') { /* the quantity: all of its columns */
          found = 1;
          for (int kind = 0; kind < 3; ++kind)
            if (has_kind(mc_quantities[q], kind)) fresh = add_col(s, (int)q * 3 + kind) && fresh;
        }
        for (int kind = 0; kind < 3 && !found; ++kind)
          if (strcmp(t + n, col_suffix[kind]) == 0 && has_kind(mc_quantities[q], kind))
            found = 1, fresh = add_col(s, (int)q * 3 + kind);
      }
    }
    if (!found) {
      char valid[1024];
      bafu_sweep_columns_text(s->task, valid, sizeof valid);
      snprintf(why, wsize, "unknown column '%.64s' (valid: %s)", t, valid);
      ok = 0;
    } else if (!fresh) {
      snprintf(why, wsize, "'%.64s' repeats a column", t);
      ok = 0;
    } else if (s->ncol >= MAX_COLS) {
      snprintf(why, wsize, "more than %d columns", MAX_COLS);
      ok = 0;
    }
  }
  free(copy);
  if (ok && s->ncol == 0) {
    snprintf(why, wsize, "no column");
    ok = 0;
  }
  return ok;
}

/* The default columns: bafu mc's cos_theta, feature_speed, loss_decay with
 * their theory; bafu train's every column (the accuracies with
 * classification, lr_bias when a point has biases). */
static void default_columns(bafu_sweep *s, int classify, int biases) {
  s->ncol = 0;
  if (s->task) {
    for (int c = 0; c < T_COUNT; ++c)
      if ((classify || (c != T_TRAIN_ACC && c != T_TEST_ACC)) && (biases || c != T_LR_BIAS)) add_col(s, c);
    return;
  }
  static const bafu_quantity q3[] = {BAFU_Q_COS, BAFU_Q_SPEED, BAFU_Q_DECAY};
  for (size_t i = 0; i < 3; ++i)
    for (size_t q = 0; q < MC_NQ; ++q)
      if (mc_quantities[q] == q3[i])
        for (int kind = 0; kind < 3; ++kind) add_col(s, (int)q * 3 + kind);
}

/* ---- the help ----------------------------------------------------------- */

static void axes_text(int task, int from, char *buf, size_t size) {
  size_t na, used = 0;
  const bafu_param *const *ax = axes(&na);
  buf[0] = '\0';
  int first = 1;
#define PUT(...)                                                                              \
  do {                                                                                        \
    const int m_ = snprintf(used < size ? buf + used : NULL, used < size ? size - used : 0, __VA_ARGS__); \
    if (m_ > 0) used += (size_t)m_;                                                           \
  } while (0)
  for (size_t a = 0; a < na; ++a) {
    const bafu_param *q = ax[a];
    /* task 0: the mc axes (from = 0: all); task 1: the training-only ones */
    if (task == 0 ? !axis_of_task(q, 0) : !(q->group == BAFU_PARAMS_TRAIN)) continue;
    if (task == 0 && (int)a < from) continue;
    const char *sep = first ? "" : (task == 0 && from == 0 && a == FIXED_AXES) ? ", and, as columns after init only when set, " : ", ";
    PUT("%s%s", sep, q->name);
    first = 0;
    for (size_t c = 0; q->choices && q->choices[c]; ++c) PUT("%s%s%s", c ? " " : " (", q->choices[c], q->choices[c + 1] ? "" : ")");
    if (q->type == BAFU_PARAM_FLAG) PUT(" (0 1)");
  }
#undef PUT
}

void bafu_sweep_axes_text(char *buf, size_t size) { axes_text(0, 0, buf, size); }
void bafu_sweep_train_axes_text(char *buf, size_t size) { axes_text(1, 0, buf, size); }

/* ---- reading ------------------------------------------------------------ */

/* What the reader keeps of each key: its line and values. */
typedef struct {
  int line;
  size_t nv;
  double v[BAFU_SWEEP_MAX_VALUES];
  char *text; /* columns, data_dir: the values as given */
} setting;

static int find_key(const char *key) {
  size_t na;
  const bafu_param *const *ax = axes(&na);
  for (int i = 0; i < RUN_COUNT; ++i) /* first: seed is a run setting of mc grids */
    if (strcmp(key, run_names[i]) == 0) return (int)na + i;
  for (size_t i = 0; i < na; ++i)
    if (strcmp(key, ax[i]->name) == 0) return (int)i;
  return -1;
}

/* Append the tokens of a line (after '=') to *text, space-separated. */
static int keep_text(char **text, const char *t) {
  const size_t old = *text ? strlen(*text) : 0, n = strlen(t);
  char *b = realloc(*text, old + n + 2);
  if (!b) return 0;
  if (old) b[old] = ' ';
  memcpy(b + (old ? old + 1 : 0), t, n + 1);
  *text = b;
  return 1;
}

static bafu_status read_settings(const char *path, setting *set, int *nsettings) {
  bafu_text *f;
  bafu_status st = bafu_text_open(path, "grid file", &f);
  if (st) return st;
  size_t na;
  const bafu_param *const *ax = axes(&na);
  char *line, why[2048];
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
    const int k = find_key(key);
    if (k < 0) {
      char hint[160], alt[64];
      snprintf(alt, sizeof alt, "%s", key);
      for (char *c = alt; *c; ++c)
        if (*c == '-') *c = '_';
      if (strcmp(alt, key) != 0 && find_key(alt) >= 0)
        snprintf(hint, sizeof hint, "did you mean %s? keys are named as in the parameter table", alt);
      else if (strcmp(key, "loss") == 0 || strcmp(key, "probe") == 0)
        snprintf(hint, sizeof hint, "the backward signal is the key signal: probe mse xent");
      else if (strcmp(key, "input") == 0)
        snprintf(hint, sizeof hint, "a grid draws its inputs, inputs = dense onehot; a batch from a file is bafu mc "
                                    "--input");
      else
        snprintf(hint, sizeof hint, "bafu sweep --help lists the keys");
      st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: unknown key (%s)", path, lineno, key[0] ? key : "=", hint);
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
    setting *e = &set[k];
    if (e->line) {
      st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: given twice (first on line %d)", path, lineno, key, e->line);
      break;
    }
    e->line = (int)lineno;
    ++*nsettings;
    const int run = k >= (int)na ? k - (int)na : -1;
    const char *t = rest && *rest ? rest : strtok_r(NULL, " \t", &save);
    for (; t && !st; t = strtok_r(NULL, " \t", &save)) {
      if (run == KEY_COLUMNS || run == KEY_DATA_DIR) {
        if (!keep_text(&e->text, t)) st = bafu_error(BAFU_ENOMEM, "%s: out of memory", path);
        ++e->nv;
        continue;
      }
      if (e->nv == BAFU_SWEEP_MAX_VALUES) {
        st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: more than %d values", path, lineno, key, BAFU_SWEEP_MAX_VALUES);
        break;
      }
      if (!(run < 0 ? parse_axis(ax[k], t, &e->v[e->nv], why, sizeof why)
                    : parse_run(run, t, &e->v[e->nv], why, sizeof why))) {
        st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: %s", path, lineno, key, why);
        break;
      }
      ++e->nv;
    }
    if (st) break;
    if (e->nv == 0) {
      st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: no value", path, lineno, key);
      break;
    }
    if (run >= 0 && run != KEY_SEED && run != KEY_COLUMNS && e->nv > 1) {
      st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: takes exactly one value, got %zu", path, lineno, key, e->nv);
      break;
    }
    for (size_t i = 0; run != KEY_COLUMNS && run != KEY_DATA_DIR && i < e->nv; ++i)
      for (size_t j = 0; j < i; ++j)
        if (e->v[i] == e->v[j] && !st)
          st = bafu_error(BAFU_EPARSE, "%s:%zu: %s: value %zu repeats value %zu", path, lineno, key, i + 1, j + 1);
  }
  bafu_text_close(f);
  return st;
}

/* Check the settings against the task and fill s. */
static bafu_status resolve(const char *path, setting *set, const char *columns, bafu_sweep *s) {
  size_t na;
  const bafu_param *const *ax = axes(&na);
  const setting *run = set + na;
  s->task = run[KEY_TASK].line ? (int)run[KEY_TASK].v[0] : 0;
  const unsigned bit = s->task ? 2u : 1u;
  /* the keys of the other task */
  for (size_t k = 0; k < na + RUN_COUNT; ++k) {
    if (!set[k].line) continue;
    const char *name = k < na ? ax[k]->name : run_names[k - na];
    const int ok = k < na ? axis_of_task(ax[k], s->task) : (run_tasks[k - na] & bit) != 0;
    if (ok) continue;
    if (s->task)
      return bafu_error(BAFU_EPARSE, "%s:%d: %s: not a key of training grids (task = train; bafu train has no such "
                                     "option)", path, set[k].line, name);
    return bafu_error(BAFU_EPARSE, "%s:%d: %s: a training setting (give task = train for a grid of bafu train runs)",
                      path, set[k].line, name);
  }
  if (!s->task && run[KEY_SEED].nv > 1)
    return bafu_error(BAFU_EPARSE, "%s:%d: seed: takes exactly one value, got %zu", path, run[KEY_SEED].line,
                      run[KEY_SEED].nv);
  /* a preset sets the variances and rates: a grid gives one or the other */
  int preset_line = 0;
  for (size_t a = 0; a < na; ++a)
    if (ax[a] == &preset_axis && set[a].line)
      for (size_t i = 0; i < set[a].nv; ++i)
        if (set[a].v[i] > 0) preset_line = set[a].line;
  for (size_t a = 0; preset_line && a < na; ++a)
    for (size_t i = 0; i < sizeof preset_sets / sizeof preset_sets[0]; ++i)
      if (set[a].line && strcmp(ax[a]->name, preset_sets[i]) == 0)
        return bafu_error(BAFU_EPARSE, "%s:%d: %s: set by preset (line %d; drop one of them)", path, set[a].line,
                          ax[a]->name, preset_line);
  /* the values: given, or the default of the task's command */
  int classify = 0;
  for (size_t a = 0; a < na; ++a) {
    const bafu_param *q = ax[a];
    s->shown[a] = a < FIXED_AXES || set[a].line;
    if (strcmp(q->name, "conditional") == 0 && set[a].line && run[KEY_SAMPLER].line)
      return bafu_error(BAFU_EPARSE, "%s:%d: conditional: also set by sampler (line %d; give one of them)", path,
                        set[a].line, run[KEY_SAMPLER].line);
    if (strcmp(q->name, "data") == 0 && set[a].nv > 1)
      return bafu_error(BAFU_EPARSE, "%s:%d: data: one value per grid (the tables of the two data sets have "
                                     "different columns)", path, set[a].line);
    if (strcmp(q->name, "outputs") == 0) s->outputs_set = set[a].line != 0;
    if (set[a].line) {
      s->nval[a] = set[a].nv;
      memcpy(s->val[a], set[a].v, set[a].nv * sizeof(double));
    } else {
      s->nval[a] = 1;
      s->val[a][0] = 0;
      if (q != &preset_axis) {
        bafu_train_config c = bafu_train_config_default(); /* mc: bafu_net_params_default */
        if (!s->task) c.net = bafu_net_params_default();
        s->val[a][0] = bafu_param_get(q, axis_base(q, &c));
      }
    }
    if (strcmp(q->name, "data") == 0 && s->task) classify = s->val[a][0] == BAFU_DATA_FASHION_MNIST;
  }
  if (s->task) /* the unset axes: bafu train's defaults for the data set */
    for (size_t a = 0; a < na; ++a)
      if (!set[a].line && ax[a] != &preset_axis) {
        bafu_train_config c = bafu_train_config_command(classify ? BAFU_DATA_FASHION_MNIST : BAFU_DATA_TEACHER);
        s->val[a][0] = bafu_param_get(ax[a], axis_base(ax[a], &c));
      }
  if (s->task && run[KEY_SEED].line) { /* training: seed is an axis (weights, teacher, data order) */
    for (size_t a = 0; a < na; ++a)
      if (strcmp(ax[a]->name, "seed") == 0) {
        s->shown[a] = 1;
        s->nval[a] = run[KEY_SEED].nv;
        memcpy(s->val[a], run[KEY_SEED].v, run[KEY_SEED].nv * sizeof(double));
      }
  }
  s->seeds = run[KEY_SEEDS].line ? (size_t)run[KEY_SEEDS].v[0] : 8;
  s->seed = !s->task && run[KEY_SEED].line ? (uint64_t)run[KEY_SEED].v[0] : 1;
  s->step = run[KEY_STEP].line ? run[KEY_STEP].v[0] : bafu_net_params_default().step;
  s->sampler = run[KEY_SAMPLER].line && run[KEY_SAMPLER].v[0] != 0;
  s->final_only = run[KEY_ROWS].line && run[KEY_ROWS].v[0] != 0;
  if (run[KEY_DATA_DIR].line && !(s->data_dir = strdup(run[KEY_DATA_DIR].text)))
    return bafu_error(BAFU_ENOMEM, "%s: out of memory", path);
  double n = 1;
  for (size_t a = 0; a < na; ++a) n *= (double)s->nval[a];
  if (n > BAFU_SWEEP_MAX_POINTS)
    return bafu_error(BAFU_EPARSE, "%s: the grid has %.0f points, more than %d", path, n, BAFU_SWEEP_MAX_POINTS);
  s->npoints = (size_t)n;
  /* the columns: --columns, the file's, or the defaults */
  int biases = 0;
  for (size_t a = 0; a < na; ++a)
    if (strcmp(ax[a]->name, "bias_var") == 0)
      for (size_t i = 0; i < s->nval[a]; ++i) biases |= s->val[a][i] > 0;
  char why[2048];
  s->default_cols = !columns && !run[KEY_COLUMNS].line;
  if (columns) {
    if (!parse_columns(s, columns, why, sizeof why)) return bafu_error(BAFU_EPARSE, "columns: %s", why);
  } else if (run[KEY_COLUMNS].line) {
    if (!parse_columns(s, run[KEY_COLUMNS].text, why, sizeof why))
      return bafu_error(BAFU_EPARSE, "%s:%d: columns: %s", path, run[KEY_COLUMNS].line, why);
  } else {
    default_columns(s, classify, biases);
  }
  for (size_t i = 0; i < s->ncol; ++i) {
    if (!s->task && s->col[i] % 3 == COL_THEORY) s->theory = 1;
    if (s->task && !classify && (s->col[i] == T_TRAIN_ACC || s->col[i] == T_TEST_ACC))
      return bafu_error(BAFU_EPARSE, "%s: columns: %s: the teacher task has no accuracy", path, train_cols[s->col[i]].name);
  }
  return BAFU_OK;
}

/* Point k as its command would check it: the options, the theory's reach
 * (a _theory column), the memory. */
static bafu_status check_point(const bafu_sweep *s, size_t k) {
  bafu_train_config c;
  bafu_status st = point_config(s, k, &c);
  const bafu_net_params *p = &c.net;
  if (!st) st = s->task ? bafu_train_config_check(&c) : bafu_net_params_check(p);
  if (!st && s->theory && (p->batch != 1 || p->signal == BAFU_SIGNAL_XENT))
    st = bafu_error(BAFU_EINVAL, "bafu theory has no per-layer prediction for %s (select columns without _theory, "
                                 "e.g. columns = cos_theta_mc,cos_theta_mc_se)",
                    p->batch != 1 ? "batch > 1" : "signal = xent");
  if (!st) {
    const double bytes = s->task ? (double)bafu_net_memory_bytes(p)
                                 : bafu_mc_memory_bytes(p, s->seeds) + (s->theory ? bafu_moments_memory_bytes(p) : 0);
    st = bafu_memory_check(bytes, "width/depth/seeds");
  }
  return st;
}

bafu_status bafu_sweep_read_columns(const char *path, const char *columns, bafu_sweep **out) {
  *out = NULL;
  size_t na;
  axes(&na);
  setting *set = calloc(na + RUN_COUNT, sizeof *set);
  bafu_sweep *s = calloc(1, sizeof *s);
  if (!set || !s) {
    free(set);
    free(s);
    return bafu_error(BAFU_ENOMEM, "%s: out of memory", path);
  }
  int nsettings = 0;
  bafu_status st = read_settings(path, set, &nsettings);
  if (!st && nsettings == 0)
    st = bafu_error(BAFU_EPARSE, "%s: no settings (an empty grid file; see the help of bafu sweep for the format)", path);
  if (!st) st = resolve(path, set, columns, s);
  for (size_t k = 0; k < na + RUN_COUNT; ++k) free(set[k].text);
  free(set);
  for (size_t k = 0; !st && k < s->npoints; ++k) {
    const bafu_status ps = check_point(s, k);
    if (ps) {
      char cols[2048], msg[1024];
      point_columns(s, k, cols, sizeof cols);
      snprintf(msg, sizeof msg, "%s", bafu_last_error());
      st = bafu_error(ps, "%s: point %s: %s", path, cols, msg);
    }
  }
  if (st) {
    bafu_sweep_free(s);
    return st;
  }
  const bafu_param *const *ax = axes(&na);
  size_t used = (size_t)snprintf(s->header, sizeof s->header, "point");
  for (size_t a = 0; a < na && used < sizeof s->header; ++a)
    if (s->shown[a]) used += (size_t)snprintf(s->header + used, sizeof s->header - used, " %s", ax[a]->name);
  if (used < sizeof s->header)
    used += (size_t)snprintf(s->header + used, sizeof s->header - used, s->task ? " step epoch final layer" : " layer");
  for (size_t i = 0; i < s->ncol && used < sizeof s->header; ++i) {
    char b[64];
    used += (size_t)snprintf(s->header + used, sizeof s->header - used, " %s", col_name(s, s->col[i], b, sizeof b));
  }
  *out = s;
  return BAFU_OK;
}

bafu_status bafu_sweep_read(const char *path, bafu_sweep **out) { return bafu_sweep_read_columns(path, NULL, out); }

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
  if (s->task) {
    PUT(" task=train rows=%s points=%zu", rows_names[s->final_only], s->npoints);
    if (s->data_dir) PUT(" data_dir=%s", s->data_dir);
  } else {
    if (exact)
      PUT(" seeds=%zu seed=%llu step=%a points=%zu", s->seeds, (unsigned long long)s->seed, s->step, s->npoints);
    else
      PUT(" seeds=%zu seed=%llu step=%g points=%zu", s->seeds, (unsigned long long)s->seed, s->step, s->npoints);
    if (s->sampler) PUT(" sampler=conditional"); /* only when set */
  }
  if (!s->default_cols) { /* only when chosen */
    PUT(" columns=");
    for (size_t i = 0; i < s->ncol; ++i) {
      char b[64];
      PUT("%s%s", i ? "," : "", col_name(s, s->col[i], b, sizeof b));
    }
  }
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

/* ---- rows --------------------------------------------------------------- */

/* The fields of one row after the point's columns (nl: its end): 1 if there
 * are exactly `want` finite numbers, the first (mc: the layer label) equal to
 * `label` unless label is NULL. */
static int row_fields(const char *c, const char *nl, size_t want, const char *label) {
  size_t nf = 0;
  while (c < nl) {
    const char *e = c;
    while (e < nl && *e != ' ') ++e;
    char tok[64];
    double v;
    if (e - c <= 0 || e - c >= (long)sizeof tok) return 0;
    memcpy(tok, c, (size_t)(e - c));
    tok[e - c] = '\0';
    if (nf == 0 && label ? strcmp(tok, label) != 0 : !bafu_parse_double(tok, &v)) return 0;
    ++nf;
    c = e < nl ? e + 1 : e;
  }
  return nf == want;
}

int bafu_sweep_check_rows(const bafu_sweep *s, size_t k, const char *text) {
  if (k >= s->npoints) return 1;
  const bafu_net_params p = bafu_sweep_params(s, k);
  bafu_layout lay;
  if (bafu_layout_build(&p, &lay)) return 1;
  /* mc: one row per layer from the first trained one up, in order, as
     run_point writes them; train: rows of 4 + ncol numbers */
  const size_t first = bafu_layout_first_trained(&lay);
  char cols[2048], note[64];
  point_columns(s, k, cols, sizeof cols);
  snprintf(note, sizeof note, "# point %zu: ", k);
  const size_t clen = strlen(cols), nlen = strlen(note);
  size_t rows = 0, notes = 0;
  for (const char *line = text; *line;) {
    const char *nl = strchr(line, '\n');
    if (!nl) return 1; /* every row ends in a newline */
    if (*line == '#' && !s->task) { /* the one note on the point's draws: printable text */
      if (rows || notes++ || strncmp(line, note, nlen) != 0) return 1;
      for (const char *c = line; c < nl; ++c)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) return 1;
      line = nl + 1;
      continue;
    }
    if ((size_t)(nl - line) <= clen || strncmp(line, cols, clen) != 0 || line[clen] != ' ') return 1;
    if (s->task) {
      if (!row_fields(line + clen + 1, nl, 4 + s->ncol, NULL)) return 1;
    } else {
      if (first + rows >= lay.J) return 1; /* more rows than layers */
      char want[32]; /* the label of layer first + rows, exactly as %d prints it */
      snprintf(want, sizeof want, "%d", bafu_layout_entry(&lay, first + rows, NULL, NULL));
      if (!row_fields(line + clen + 1, nl, 1 + s->ncol, want)) return 1;
    }
    ++rows;
    line = nl + 1;
  }
  return rows == 0 || (!s->task && first + rows != lay.J);
}

/* Copy the library's last error into msg and raise it again for the point. */
static bafu_status point_error(bafu_status st, const char *cols, const char *what) {
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", bafu_last_error());
  return bafu_error(st, "point %s: %s%s", cols, what, msg);
}

static bafu_status run_mc_point(const bafu_sweep *s, size_t k, int threads, const char *cols, FILE *f) {
  const bafu_net_params p = bafu_sweep_params(s, k);
  const size_t J = bafu_moments_nlayers(&p);
  bafu_moments_layer *th = NULL;
  bafu_status st = BAFU_OK;
  if (s->theory) {
    if (!(th = malloc(J * sizeof *th))) return bafu_error(BAFU_ENOMEM, "point %s: out of memory", cols);
    if ((st = bafu_moments_run(&p, 0, th))) {
      st = point_error(st, cols, "theory: ");
      free(th);
      return st;
    }
  }
  bafu_mc_result mc;
  if ((st = bafu_mc_run(&p, s->seeds, s->seed, NULL, threads, &mc))) {
    free(th);
    return point_error(st, cols, "mc: ");
  }
  if (mc.J != J) st = bafu_error(BAFU_ENUMERIC, "point %s: mc has %zu layers, theory %zu", cols, mc.J, J);
  if (!st && mc.excluded) fprintf(f, "# point %zu: %s\n", k, mc.note);
  int ncols = 1; /* the point's own columns, then the layer's */
  for (const char *c = cols; *c; ++c) ncols += *c == ' ';
  for (size_t j = 0; !st && j < J; ++j) {
    const double *mean = mc.mean + j * BAFU_Q_COUNT, *se = mc.se + j * BAFU_Q_COUNT, *mx = mc.max + j * BAFU_Q_COUNT;
    /* no trained parameter at or below the layer: angle undefined, row left out */
    if (mx[BAFU_Q_DECAY] == 0 || (th && th[j].m1 == 0)) continue;
    if (th && mc.labels[j] != th[j].label) {
      st = bafu_error(BAFU_ENUMERIC, "point %s: layer labels differ (%d, %d)", cols, mc.labels[j], th[j].label);
      break;
    }
    double v[MAX_COLS];
    for (size_t i = 0; i < s->ncol; ++i) {
      const bafu_quantity q = mc_quantities[s->col[i] / 3];
      const int kind = s->col[i] % 3;
      if (kind == COL_MC) v[i] = q == BAFU_Q_IDRES ? mx[q] : mean[q];
      else if (kind == COL_SE) v[i] = se[q];
      else if (q == BAFU_Q_COS) v[i] = th[j].cos_theta; /* bafu theory's columns (bafu/moments.h) */
      else if (q == BAFU_Q_SPEED) v[i] = th[j].feature_speed;
      else if (q == BAFU_Q_BNORM) v[i] = th[j].backward_norm;
      else if (q == BAFU_Q_DECAY) v[i] = th[j].loss_decay;
      else v[i] = th[j].sensitivity;
      if (!isfinite(v[i])) {
        char b[64];
        st = bafu_error(BAFU_ENUMERIC, "point %s: column %d (%s) of layer %d is not finite (overflow: reduce depth, "
                                       "sigma_w2 or branch_scale)",
                        cols, ncols + 2 + (int)i, col_name(s, s->col[i], b, sizeof b), mc.labels[j]);
        break;
      }
    }
    if (st) break;
    fprintf(f, "%s %d", cols, mc.labels[j]);
    for (size_t i = 0; i < s->ncol; ++i) { /* bafu mc's and bafu theory's formats */
      const int kind = s->col[i] % 3;
      const bafu_quantity q = mc_quantities[s->col[i] / 3];
      fprintf(f, kind == COL_THEORY ? " %.12g" : kind == COL_SE ? " %.4g" : q == BAFU_Q_IDRES ? " %.3g" : " %.10g", v[i]);
    }
    fputc('\n', f);
  }
  free(th);
  bafu_mc_result_free(&mc);
  return st;
}

/* A training point's rows, as bafu train logs them (the selected columns). */
typedef struct {
  const bafu_sweep *s;
  const char *cols;
  FILE *f;
} train_sink;

static int train_row(const bafu_train_row *r, void *ctx) {
  const train_sink *t = ctx;
  const bafu_sweep *s = t->s;
  if (s->final_only && !r->final) return 0;
  for (size_t j = 0; j < r->J; ++j) {
    const double *q = r->q + j * BAFU_Q_COUNT;
    fprintf(t->f, "%s %zu %zu %d %d", t->cols, r->step, r->epoch, r->final, r->labels[j]);
    for (size_t i = 0; i < s->ncol; ++i) {
      double v = 0;
      switch (s->col[i]) {
      case T_LOSS: v = r->loss; break;
      case T_TRAIN_ACC: v = r->train_acc; break;
      case T_TEST_LOSS: v = r->test_loss; break;
      case T_TEST_ACC: v = r->test_acc; break;
      case T_STEP_SIZE: v = r->step_size; break;
      case T_LR: v = r->lr[j]; break;
      case T_LR_BIAS: v = r->lr_bias ? r->lr_bias[j] : 0; break; /* no biases: no bias rate */
      case T_COS: v = q[BAFU_Q_COS]; break;
      case T_SPEED: v = q[BAFU_Q_SPEED]; break;
      case T_SPEED_RMS: v = q[BAFU_Q_SPEED_RMS]; break;
      case T_CONTRIB: v = q[BAFU_Q_CONTRIB]; break;
      case T_DECAY: v = q[BAFU_Q_DECAY]; break;
      case T_IDRES: v = q[BAFU_Q_IDRES]; break;
      default: v = q[BAFU_Q_SENS]; break;
      }
      fputc(' ', t->f);
      fprintf(t->f, train_cols[s->col[i]].fmt, v);
    }
    fputc('\n', t->f);
  }
  return 0;
}

static bafu_status run_train_point(const bafu_sweep *s, size_t k, const char *cols, FILE *f) {
  const bafu_train_config c = bafu_sweep_train_config(s, k);
  train_sink t = {s, cols, f};
  const bafu_status st = bafu_train_run(&c, train_row, &t);
  return st ? point_error(st, cols, "train: ") : BAFU_OK;
}

bafu_status bafu_sweep_run_point(const bafu_sweep *s, size_t k, int threads, char **text, size_t *len) {
  *text = NULL;
  *len = 0;
  if (k >= s->npoints) return bafu_error(BAFU_EINVAL, "sweep: point %zu out of range (%zu points)", k, s->npoints);
  char cols[2048];
  point_columns(s, k, cols, sizeof cols);
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&buf, &size);
  if (!f) return bafu_error(BAFU_ENOMEM, "point %s: out of memory", cols);
  bafu_status st = s->task ? run_train_point(s, k, cols, f) : run_mc_point(s, k, threads, cols, f);
  if (fclose(f) && !st) st = bafu_error(BAFU_ENOMEM, "point %s: out of memory formatting rows", cols);
  if (st) {
    free(buf);
    return st;
  }
  *text = buf;
  *len = size;
  return BAFU_OK;
}
