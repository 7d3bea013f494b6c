/* fig_builtin.c: the figure stages still computed in-process by `bafu figures`
 * (a "builtin NAME" line of a figure file, doc/figures.md). */
#define _DEFAULT_SOURCE /* mkdir, stat */
#include <errno.h>
#include "bafu/version.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#include <gsl/gsl_fit.h>

#include "bafu/idx.h"
#include "bafu/mc.h"
#include "bafu/moments.h"
#include "bafu/preset.h"
#include "bafu/train.h"
#include <zlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void openblas_set_num_threads(int num_threads); /* OpenBLAS extension */
#include "bafu/spectrum.h"
#include "bafu/table.h"
#include "ckpt.h"
#include "cli.h"
#include "progress.h"
#include "figures.h"


/* Tables opened and not yet committed: aborted (temporary files removed) if a
 * figure fails, so a failed run leaves no partial table behind. */
static bafu_table *open_tables[16];
static size_t n_open;

static void abort_open_tables(void) {
  for (size_t i = 0; i < n_open; ++i) bafu_table_abort(open_tables[i]);
  n_open = 0;
}

/* Open data/<name> with the provenance lines and a description. */
static bafu_table *open_table(const fig_ctx *c, const char *name, const char *what) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", c->data_dir, name);
  bafu_table *t;
  if (bafu_table_open(path, &t)) {
    cli_fail("figures", "--data-dir");
    return NULL;
  }
  if (n_open < sizeof open_tables / sizeof open_tables[0]) open_tables[n_open++] = t;
  bafu_table_meta(t, "%s", what);
  bafu_table_provenance(t, c->argc, c->argv);
  bafu_table_meta(t, "mode: %s  seed: %llu", c->quick ? "quick" : "full", (unsigned long long)c->seed);
  return t;
}

static int finish(bafu_table *t) {
  for (size_t i = 0; i < n_open; ++i)
    if (open_tables[i] == t) {
      open_tables[i] = open_tables[--n_open];
      break;
    }
  if (bafu_table_commit(t)) {
    cli_fail("figures", "--data-dir");
    return 1;
  }
  return 0;
}

static int fail(const char *what) {
  fprintf(stderr, "bafu figures: %s: %s\n", what, cli_error());
  return 1;
}

/* Figure 8: training deep ReLU MLPs on Fashion-MNIST with SP, muP, FSC (the
 * automatic global step) and FSC with the control, the same budget for all. */
typedef struct {
  size_t cap, n;
  double *v;         /* rows of 6: step test_loss test_acc train_loss cos_L speed_rms_L */
  size_t stop_after; /* pilot runs: stop at this step (0: run to the end) */
} curve;

static int collect(const bafu_train_row *r, void *ctx) {
  curve *c = ctx;
  if (c->stop_after && r->step >= c->stop_after) return 1;
  if (c->n == c->cap) {
    const size_t cap = c->cap ? 2 * c->cap : 64;
    double *v = realloc(c->v, cap * 6 * sizeof *v);
    if (!v) return 1;
    c->v = v, c->cap = cap;
  }
  const double *q = r->q + (r->J - 2) * BAFU_Q_COUNT; /* the last hidden layer */
  double *row = c->v + 6 * c->n++;
  row[0] = (double)r->step, row[1] = r->test_loss, row[2] = r->test_acc, row[3] = r->loss;
  row[4] = q[BAFU_Q_COS], row[5] = q[BAFU_Q_SPEED_RMS];
  return 0;
}

/* Pilot: the step-size parameter (auto_decay, or control_speed under control)
 * from a grid, by the mean training loss of the rows logged at steps 20, 40,
 * 60, 80 (each the mean over the 20 steps before it; the test set is not
 * used: 100 samples only, ignored). A diverging candidate (BAFU_ENUMERIC) is
 * skipped; any other error is returned. *best is 0 if all diverge. */
static bafu_status pilot(const bafu_train_config *base, const double *grid, size_t ng, double *best) {
  double best_loss = INFINITY;
  *best = 0;
  for (size_t i = 0; i < ng; ++i) {
    bafu_train_config cfg = *base;
    if (cfg.control) cfg.control_speed = grid[i]; else cfg.auto_decay = grid[i];
    cfg.epochs = 1;
    cfg.log_every = 20;
    cfg.test_size = 100;
    curve cv = {.stop_after = 100};
    const bafu_status st = bafu_train_run(&cfg, collect, &cv);
    double mean = 0;
    for (size_t k = 1; k < cv.n; ++k) mean += cv.v[6 * k + 3] / (double)(cv.n - 1); /* rows after step 0 */
    free(cv.v);
    if (st && st != BAFU_ENUMERIC) return st;
    if (!st && cv.n > 1 && isfinite(mean) && mean < best_loss) best_loss = mean, *best = grid[i];
  }
  return BAFU_OK;
}

/* Figure 8's per-run checkpoint, DIR/.bafu-fig8-run<r>.ckpt: a settings line
 * (version, mode, seed), then "status param n", the message line, and n rows
 * of 6 hex floats (exact). Written when a run finishes, read by --resume,
 * removed when the figure is written. */
static void run_ckpt_path(const fig_ctx *c, size_t r, char *buf, size_t size) {
  snprintf(buf, size, "%s/.bafu-fig8-run%zu.ckpt", c->data_dir, r);
}

static void run_ckpt_settings(const fig_ctx *c, char *buf, size_t size) {
  snprintf(buf, size, "bafu figure 8 run %s mode=%s seed=%llu\n", BAFU_VERSION_STRING, c->quick ? "quick" : "full",
           (unsigned long long)c->seed);
}

static void run_ckpt_write(const fig_ctx *c, size_t r, bafu_status st, double param, const char *msg, const curve *cv) {
  char path[4096], settings[256];
  run_ckpt_path(c, r, path, sizeof path);
  run_ckpt_settings(c, settings, sizeof settings);
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return; /* a missing checkpoint only costs a rerun */
  fprintf(f, "%s%d %a %zu\n", settings, (int)st, param, cv->n);
  for (const char *m = msg; *m; ++m) fputc(*m == '\n' || *m == '\r' ? ' ' : *m, f); /* one line */
  fputc('\n', f);
  for (size_t i = 0; i < cv->n; ++i) {
    const double *v = cv->v + 6 * i;
    fprintf(f, "%a %a %a %a %a %a\n", v[0], v[1], v[2], v[3], v[4], v[5]);
  }
  if (fclose(f) == 0) {
#ifdef _OPENMP
#pragma omp critical(figures_tables) /* the table layer's list of temporary files is not locked */
#endif
    ckpt_text_save(path, text, len); /* atomic, with its checksum */
  }
  free(text);
}

/* Read run r's checkpoint: 1 if read (status, param, message, curve), 0 if
 * there is none, -1 (message recorded) if it is damaged or of other settings:
 * then it is refused and kept. */
static int run_ckpt_read(const fig_ctx *c, size_t r, bafu_status *st, double *param, char *msg, size_t msize,
                         curve *cv) {
  char path[4096], settings[256];
  run_ckpt_path(c, r, path, sizeof path);
  run_ckpt_settings(c, settings, sizeof settings);
  char *text;
  size_t len;
  if (ckpt_text_load(path, &text, &len)) return -1;
  if (!text) return 0;
  memset(cv, 0, sizeof *cv);
  const size_t slen = strlen(settings);
  int code = 0, ok = 0;
  size_t n = 0, used = 0;
  char *p = text + slen, *nl;
  if (len < slen || memcmp(text, settings, slen) != 0) {
    bafu_error(BAFU_EINVAL, "--resume: '%s' is of other settings (mode, seed or version); remove it or resume with those",
               path);
    free(text);
    return -1;
  }
  if (sscanf(p, "%d %la %zu%zn", &code, param, &n, &used) == 3 && p[used] == '\n' && isfinite(*param) &&
      (code == BAFU_OK || code == BAFU_ENUMERIC) && n < 1000000 && (nl = strchr(p + used + 1, '\n')) &&
      (cv->v = malloc((n ? n : 1) * 6 * sizeof *cv->v))) {
    snprintf(msg, msize, "%.*s", (int)(nl - (p + used + 1)), p + used + 1);
    char *q = nl + 1;
    ok = 1;
    for (size_t i = 0; i < 6 * n && ok; ++i) {
      char *end;
      cv->v[i] = strtod(q, &end);
      ok = end != q && isfinite(cv->v[i]) && *end == (i % 6 == 5 ? '\n' : ' ');
      q = end + 1;
    }
    ok = ok && (n ? q : nl + 1) == text + len; /* nothing after the rows */
    cv->n = cv->cap = n;
    *st = (bafu_status)code;
  }
  free(text);
  if (!ok) {
    free(cv->v);
    memset(cv, 0, sizeof *cv);
    *param = 0, *st = BAFU_OK, msg[0] = '\0';
    bafu_error(BAFU_EPARSE, "--resume: '%s' is damaged (its rows do not match its count); it is kept", path);
    return -1;
  }
  return 1;
}

/* The benchmark rows quoted beside the results, read from the data set's README. */
static void quote_benchmarks(bafu_table *t) {
  const char *path = "/usr/share/doc/dataset-fashion-mnist/README.md.gz";
  gzFile f = gzopen(path, "rb");
  if (!f) {
    bafu_table_meta(t, "published accuracies: %s not found", path);
    return;
  }
  char line[2048];
  while (gzgets(f, line, sizeof line)) {
    if (strstr(line, "MLP 256-128-100") || strstr(line, "Human Performance")) {
      line[strcspn(line, "\r\n")] = '\0';
      char *cells[8];
      int nc = 0;
      for (char *tok = strtok(line, "|"); tok && nc < 8; tok = strtok(NULL, "|")) cells[nc++] = tok;
      if (nc >= 3) bafu_table_meta(t, "published (%s): test accuracy%s", cells[0], nc >= 4 ? cells[2] : cells[1]);
    }
  }
  gzclose(f);
}

static int fig8(const fig_ctx *c) {
  static const char *const method[] = {"SP", "muP", "FSC", "FSC + control"};
  const size_t depths_full[] = {64, 32, 8}, depths_quick[] = {8, 4};
  const size_t *depths = c->quick ? depths_quick : depths_full, nd = c->quick ? 2 : 3, nruns = 4 * nd;
  bafu_table *cv = open_table(c, "fig8_curves.dat", "Figure 8: training on Fashion-MNIST, test curves");
  bafu_table *sm = open_table(c, "fig8_summary.dat", "Figure 8: training on Fashion-MNIST, final test accuracy");
  if (!cv || !sm) return 1;
  bafu_train_config base = bafu_train_config_default();
  base.net.input_dim = 784;
  base.net.width = c->quick ? 64 : 256;
  base.epochs = c->quick ? 1 : 2;
  base.train_size = c->quick ? 4096 : 0;
  base.test_size = c->quick ? 1000 : 0;
  base.log_every = c->quick ? 8 : 100;
  base.seed = c->seed;
  char desc[1024];
  cli_net_describe(&base.net, desc, sizeof desc);
  for (bafu_table *t = cv; t; t = t == cv ? sm : NULL) {
    bafu_table_meta(t, "ReLU MLP, width %zu, batch %zu, %zu epochs, %s training images, %s test images, seed %llu",
                    base.net.width, base.net.batch, base.epochs, c->quick ? "4096" : "all 60000",
                    c->quick ? "1000" : "all 10000", (unsigned long long)c->seed);
    bafu_table_meta(t, "SP, muP, FSC: the preset's group rates times the automatic global step (first-order decrease");
    bafu_table_meta(t, "  a F at step 0, a from the pilot grid 0.01 0.03 0.1 0.3); FSC + control: per-layer rates from");
    bafu_table_meta(t, "  target contributions at every step (|df_L|_rms = s |f_L|_rms per step, s from the pilot grid");
    bafu_table_meta(t, "  0.1 0.2 0.35 0.6,");
    bafu_table_meta(t, "  readout %g F; theory/presets.md 5). Pilot: 100 steps per candidate, the lowest mean training", base.control_rate);
    bafu_table_meta(t, "  loss wins (no test data used); column 'param' is the chosen a or s");
  }
  quote_benchmarks(sm);
  curve *cur = calloc(nruns, sizeof *cur);
  bafu_status *st = calloc(nruns, sizeof *st);
  double *param = calloc(nruns, sizeof *param);
  char(*msg)[256] = calloc(nruns, sizeof *msg);
  if (!cur || !st || !msg || !param) {
    free(cur), free(st), free(msg), free(param);
    return fail("figure 8");
  }
  fig_progress(c, "figure 8: %zu training runs on %d threads", nruns, c->threads);
  openblas_set_num_threads(1);
#pragma omp parallel for schedule(dynamic, 1) num_threads(c->threads)
  for (size_t r = 0; r < nruns; ++r) {
    bafu_train_config cfg = base;
    cfg.net.depth = depths[r / 4];
    const int m = (int)(r % 4);
    if (c->resume && run_ckpt_read(c, r, &st[r], &param[r], msg[r], sizeof msg[r], &cur[r]) == 1) {
      fig_progress(c, "figure 8: depth %zu, %s: finished by the interrupted run (--resume)", cfg.net.depth, method[m]);
      continue;
    }
    const bafu_preset pr = m == 0 ? BAFU_PRESET_SP : m == 1 ? BAFU_PRESET_MUP : BAFU_PRESET_FSC;
    cfg.control = m == 3;
    static const double decays[] = {0.01, 0.03, 0.1, 0.3}, speeds[] = {0.1, 0.2, 0.35, 0.6};
    st[r] = bafu_preset_apply(&cfg.net, pr);
    if (!st[r]) st[r] = cfg.control ? pilot(&cfg, speeds, 4, &param[r]) : pilot(&cfg, decays, 4, &param[r]);
    if (!st[r]) {
      if (param[r] == 0) {
        st[r] = bafu_error(BAFU_ENUMERIC, "every pilot candidate diverged");
      } else {
        if (cfg.control) cfg.control_speed = param[r]; else cfg.auto_decay = param[r];
        st[r] = bafu_train_run(&cfg, collect, &cur[r]);
      }
    }
    if (st[r]) snprintf(msg[r], sizeof msg[r], "%s", bafu_last_error());
    if (!st[r] || st[r] == BAFU_ENUMERIC) run_ckpt_write(c, r, st[r], param[r], msg[r], &cur[r]); /* results */
    fig_progress(c, "figure 8: depth %zu, %s: %s", cfg.net.depth, method[m], st[r] ? msg[r] : "done");
  }
  FILE *f = bafu_table_stream(cv), *g = bafu_table_stream(sm);
  bafu_table_meta(sm, "method: 0 SP, 1 muP, 2 FSC, 3 FSC + control; param: the pilot's choice; diverged: 1 if the");
  bafu_table_meta(sm, "  run stopped (its accuracy and loss columns are then 0; the reason is in fig8_curves.dat)");
  fprintf(g, "depth method param final_test_acc final_test_loss steps diverged\n");
  int rc = 0;
  for (size_t r = 0; r < nruns; ++r) {
    const int m = (int)(r % 4);
    fprintf(f, "%s# depth %zu, %s%s%s\nstep test_loss test_acc train_loss cos_theta_L feature_speed_rms_L\n",
            r ? "\n\n" : "", depths[r / 4], method[m], st[r] ? ": " : "", st[r] ? msg[r] : "");
    for (size_t i = 0; i < cur[r].n; ++i) {
      const double *v = cur[r].v + 6 * i;
      fprintf(f, "%.0f %.6g %.6g %.6g %.6g %.6g\n", v[0], v[1], v[2], v[3], v[4], v[5]);
    }
    if (st[r] && st[r] != BAFU_ENUMERIC) rc = 1; /* divergence is a result; other errors are failures */
    const double *last = cur[r].n ? cur[r].v + 6 * (cur[r].n - 1) : NULL;
    fprintf(g, "%zu %d %g %.4f %.4f %.0f %d\n", depths[r / 4], m, param[r], !st[r] && last ? last[2] : 0.0,
            !st[r] && last ? last[1] : 0.0, last ? last[0] : 0.0, st[r] != 0);
    free(cur[r].v);
  }
  for (size_t r = 0; r < nruns && rc; ++r)
    if (st[r] && st[r] != BAFU_ENUMERIC) fprintf(stderr, "bafu figures: figure 8: %s\n", msg[r]);
  free(cur), free(st), free(msg), free(param);
  if (rc) return 1;
  if (finish(cv) || finish(sm)) return 1;
  for (size_t r = 0; r < nruns; ++r) { /* the figure is written: its runs' checkpoints have served */
    char path[4096];
    run_ckpt_path(c, r, path, sizeof path);
    remove(path);
  }
  return 0;
}


static const struct {
  const char *name;
  int (*run)(const fig_ctx *);
} builtins[] = {{"fig8", fig8}};

int fig_builtin_known(const char *name) {
  for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; ++i)
    if (strcmp(name, builtins[i].name) == 0) return 1;
  return 0;
}

int fig_builtin_run(const char *name, const fig_ctx *c) {
  for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; ++i)
    if (strcmp(name, builtins[i].name) == 0) {
      if (builtins[i].run(c)) {
        abort_open_tables();
        return 1;
      }
      return 0;
    }
  return 1;
}

int fig_builtin_check(const fig_ctx *c) {
  enum { MAX_RUNS = 12 };
  for (size_t rr = 0; rr < MAX_RUNS; ++rr) {
    char path[4096];
    run_ckpt_path(c, rr, path, sizeof path);
    if (!c->resume) {
      if (cli_checkpoint_free("figures", "--data-dir", path)) return 2;
      continue;
    }
    bafu_status rs;
    double param;
    char msg[256];
    curve cv = {0};
    const int got = run_ckpt_read(c, rr, &rs, &param, msg, sizeof msg, &cv);
    free(cv.v);
    if (got < 0) {
      cli_fail("figures", NULL);
      return 2;
    }
  }
  return 0;
}
