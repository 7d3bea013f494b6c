/* cmd_train.c: `bafu train`, mini-batch SGD with feature speed control and
 * the per-layer measurements of the feature speed formula at logged steps. */
#define _POSIX_C_SOURCE 200809L /* isatty, open_memstream */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bafu/idx.h"
#include "bafu/layout.h"
#include "bafu/params.h"
#include "bafu/table.h"
#include "bafu/train.h"
#include "ckpt.h"
#include "cli.h"
#include "progress.h"

void openblas_set_num_threads(int num_threads); /* OpenBLAS extension */

static const char usage[] =
    "Usage: bafu train [--data fashion-mnist|teacher] [options]\n"
    "\n"
    "Train a network by mini-batch SGD and log, every --log-every steps, the batch\n"
    "loss and accuracy, the test loss and accuracy, and per layer the angle\n"
    "cos(theta_l), the feature speed, the contribution C_l, the loss decay D_l and the\n"
    "residual of the identity <-b_l, df_l> = D_l for the step actually taken. One row\n"
    "per layer and logged step; the last rows (final = 1) follow the last update, and\n"
    "the very last row holds the final test_acc.\n"
    "\n"
    "Data: fashion-mnist (Debian package dataset-fashion-mnist; pixels standardised;\n"
    "needs --input-dim 784, the default here; --loss xent, 10 classes) or teacher (a\n"
    "regression on N(0, I) inputs with targets from a random ReLU MLP; --loss mse).\n"
    "Rates: the network's group rates (--lr-input/--lr-hidden/--lr-output or\n"
    "--preset) times the global step --lr; --lr 0 (default) starts the global step at\n"
    "the value that makes step 0's first-order loss decrease A F (A = --auto-decay),\n"
    "and a ratio test at every step halves it while the step does not lower its own\n"
    "batch's loss, and doubles it back (up to the start) where the step achieves 3/4\n"
    "of its first-order predicted decrease (theory/presets.md 5.1). --control\n"
    "instead sets every layer's rate at every step from target contributions: the body\n"
    "layers share D_body in proportion to the contributions their preset rates would\n"
    "give on the batch (--control-split preset) or evenly (even), D_body chosen so that\n"
    "the last hidden layer moves by\n"
    "|df_L|_rms = S |f_L|_rms (S = --control-speed), and the readout's target is gamma F (gamma =\n"
    "--control-rate; theory/presets.md 5), both halved for a step that does not lower\n"
    "its own batch's loss.\n"
    "--forward-norm RHO holds |f_l|_rms = RHO in every plain\n"
    "layer; --backward-norm R rescales every hidden backward signal to norm R\n"
    "(theory/engine.md 6).\n"
    "\n"
    "At the end a summary line on stderr (not with --quiet): steps, wall time,\n"
    "training loss (and accuracy) over the last logged interval, test loss (and\n"
    "accuracy), and the final step size.\n"
    "\n"
    "Checkpoints: with --out PATH the training state and the rows so far are saved\n"
    "to PATH.ckpt (or --checkpoint) every --checkpoint-every steps, atomically, and\n"
    "removed once the table is written. After an interruption the same command\n"
    "with --resume continues from the last checkpoint (or starts afresh if there is\n"
    "none); the table equals the uninterrupted run's bit for bit (same machine and BLAS).\n"
    "\n"
    "Defaults here: --width 256 --depth 8 --batch 64 --input-dim 784 (teacher: 32).\n"
    "\n"
    "Examples: bafu train --depth 32 --preset fsc --control --out fsc32.dat\n"
    "          bafu train --data teacher --depth 8 --preset mup --epochs 5";


typedef struct {
  FILE *f;      /* the rows so far (a memory stream, for the checkpoints) */
  FILE *out;    /* the table's stream: each row block goes there too as it is logged */
  char *rows;   /* its buffer */
  size_t len;
  size_t sent;  /* bytes of rows already written to out */
  size_t last_step; /* the step of the last row block */
  int header;
  int show;     /* not --quiet (the bar needs a terminal too) */
  cli_bar bar;  /* steps done, with the last logged loss (a terminal only) */
  const char *ckpt; /* checkpoint path (NULL: none) */
  ckpt_owner own;   /* the file this run keeps there */
  int taken;        /* another file appeared at the checkpoint path */
  size_t log_every;
  bafu_train_row last, final; /* the last row before the final one, and the final one (scalars only) */
  size_t last_steps;          /* the steps the last row's loss and train_acc average */
  int exact;                  /* --exact: 17 significant digits */
  int pilot;                  /* --pilot: a last column with the chosen value */
  double pilot_value;
} sink;

/* The checkpoint (ckpt.h): the library's training state and the table rows
 * written so far, replaced atomically. */
static int save_checkpoint(const void *state, size_t len, size_t step, void *ctx) {
  sink *s = ctx;
  if (fflush(s->f)) return 1;
  /* the check and the replacement under the directory's lock: another bafu
     run cannot slip its file in between */
  const int lock = ckpt_owner_lock(s->ckpt);
  int failed = 1;
  if (!ckpt_owner_check(&s->own, s->ckpt))
    s->taken = 1;
  else if (!ckpt_train_save(s->ckpt, step, state, len, s->rows, s->len))
    ckpt_owner_record(&s->own, s->ckpt), failed = 0;
  ckpt_owner_unlock(lock);
  return failed;
}

static int write_row(const bafu_train_row *r, void *ctx) {
  sink *s = ctx;
  if (!s->header) {
    fprintf(s->f, "step epoch final layer loss%s test_loss%s step_size lr%s cos_theta feature_speed feature_speed_rms "
                  "contribution loss_decay identity_residual sensitivity%s\n",
            r->classify ? " train_acc" : "", r->classify ? " test_acc" : "", r->lr_bias ? " lr_bias" : "",
            s->pilot ? " pilot" : "");
    s->header = 1;
  }
  s->last_step = r->step;
  if (r->final) {
    s->final = *r;
  } else { /* rows at the multiples of log_every and at the last step: the mean since the previous one */
    s->last = *r;
    s->last_steps = r->step == 0 ? 1 : r->step - s->log_every * ((r->step - 1) / s->log_every);
  }
  for (size_t j = 0; j < r->J; ++j) {
    const double *q = r->q + j * BAFU_Q_COUNT;
    const int d8 = s->exact ? 17 : 8, d6 = s->exact ? 17 : 6, d3 = s->exact ? 17 : 3;
    fprintf(s->f, "%zu %zu %d %d %.*g", r->step, r->epoch, r->final, r->labels[j], d8, r->loss);
    if (r->classify) fprintf(s->f, " %.*g", d6, r->train_acc);
    fprintf(s->f, " %.*g", d8, r->test_loss);
    if (r->classify) fprintf(s->f, " %.*g", d6, r->test_acc);
    fprintf(s->f, " %.*g %.*g", d6, r->step_size, d6, r->lr[j]);
    if (r->lr_bias) fprintf(s->f, " %.*g", d6, r->lr_bias[j]);
    fprintf(s->f, " %.*g %.*g %.*g %.*g %.*g %.*g %.*g", d8, q[BAFU_Q_COS], d6, q[BAFU_Q_SPEED], d6,
            q[BAFU_Q_SPEED_RMS], d6, q[BAFU_Q_CONTRIB], d6, q[BAFU_Q_DECAY], d3, q[BAFU_Q_IDRES], d6, q[BAFU_Q_SENS]);
    if (s->pilot) fprintf(s->f, " %.*g", s->exact ? 17 : 6, s->pilot_value);
    fputc('\n', s->f);
  }
  if (s->bar.total == 0) cli_bar_start(&s->bar, r->total, r->step, "steps", !s->show);
  char label[64];
  snprintf(label, sizeof label, "loss %.4g  test %.4g", r->loss, r->test_loss);
  cli_bar_update(&s->bar, r->step, label);
  /* the new rows, streamed to the table as well (stdout sees them as they come) */
  const size_t before = s->sent;
  if (fflush(s->f) || fwrite(s->rows + before, 1, s->len - before, s->out) != s->len - before) return 1;
  s->sent = s->len;
  return 0;
}

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The closing line on stderr (not with --quiet): steps, wall time, the
 * training loss (and accuracy) averaged over the last logged interval, the
 * final test loss (and accuracy) and the global step the run ended with. */
static void summary(const sink *s, size_t resumed_at, double t0) {
  const bafu_train_row *l = &s->last, *f = &s->final;
  char resumed[64] = "", acc[64] = "", test_acc[64] = "";
  if (resumed_at) snprintf(resumed, sizeof resumed, " (resumed at step %zu)", resumed_at);
  if (f->classify) {
    snprintf(acc, sizeof acc, ", accuracy %.4f", l->train_acc);
    snprintf(test_acc, sizeof test_acc, ", accuracy %.4f", f->test_acc);
  }
  cli_errorf(
          "bafu train: %zu steps%s in %.1f s: training loss %.4g%s (mean of the last %zu step%s), test loss %.4g%s, "
          "step size %.3g\n",
          f->total, resumed, seconds() - t0, l->loss, acc, s->last_steps, s->last_steps == 1 ? "" : "s", f->test_loss,
          test_acc, f->step_size);
}

int cmd_train(int argc, char **argv) {
  const double t0 = seconds();
  const char *cmd = "train";
  cli_net net;
  cli_opt opts[64];
  size_t n = 0;
  bafu_train_config cfg = bafu_train_config_command(BAFU_DATA_FASHION_MNIST); /* this command's defaults */
  cfg.net.outputs = 1; /* mse; xent sets 10 (cli_net_finish) */
  cli_net_options(&net, opts, &n, 64, &cfg.net, 0);
  int threads = 1, quiet = 0, resume = 0, exact = 0;
  const char *out = NULL, *ckpt = NULL, *pilot = NULL;
  size_t ckpt_every = 500;
  size_t nparams;
  const bafu_param *table = bafu_params(&nparams);
  for (size_t i = 0; i < nparams; ++i) /* the training settings of the parameter table */
    if (table[i].group == BAFU_PARAMS_TRAIN) opts[n++] = cli_param_option(table[i].name, &cfg);
  const cli_opt extra[] = {
      {"--threads", OPT_INT, &threads, "T", "BLAS threads [1]", NULL, 0},
      {"--out", OPT_STRING, &out, "PATH", "output table, written atomically [stdout]", NULL, 0},
      {"--checkpoint", OPT_STRING, &ckpt, "PATH", "training state saved here [OUT.ckpt with --out; none]", NULL, 0},
      {"--checkpoint-every", OPT_SIZE, &ckpt_every, "K", "steps between checkpoints [500]", NULL, 0},
      {"--resume", OPT_FLAG, &resume, NULL, "continue from the checkpoint of an interrupted run", NULL, 0},
      {"--pilot", OPT_STRING, &pilot, "A1,A2,...", "automatic step: choose --auto-decay (--control: --control-speed) among these by a 100-step pilot on the training loss; a column pilot holds the choice (theory/presets.md 5) [off]", NULL, 0},
      {"--exact", OPT_FLAG, &exact, NULL, "numbers with 17 significant digits: they read back as the same doubles (bafu figures reformats them)", NULL, 0},
      {"--quiet", OPT_FLAG, &quiet, NULL, "no progress bar (shown on a terminal for runs over 2 s)", NULL, 0},
  };
  for (size_t i = 0; i < sizeof extra / sizeof extra[0]; ++i) opts[n++] = extra[i];
  opts[n] = (cli_opt){0};
  int r = cli_parse(cmd, usage, opts, argc, argv, 1, NULL, 0, NULL);
  if (r) return r == 1 ? 0 : 2;
  int loss_set = 0, dim_set = 0;
  for (cli_opt *o = opts; o->name; ++o) {
    if (strcmp(o->name, "--loss") == 0) loss_set = o->set;
    if (strcmp(o->name, "--input-dim") == 0) dim_set = o->set;
  }
  if (!loss_set) net.loss = cfg.data == BAFU_DATA_TEACHER ? 0 : 1;
  if (!dim_set) net.p.input_dim = bafu_train_config_command(cfg.data).net.input_dim;
  if ((r = cli_net_finish(cmd, &net, opts, out))) return r;
  int rc = 2;
  sink s = {.show = !quiet, .log_every = cfg.log_every};
  size_t resumed_at = 0;
  char *ckpt_own = NULL, *rows = NULL;
  void *state = NULL;
  bafu_table *t = NULL;
  bafu_trainer *tr = NULL;
  cfg.net = net.p;
  cfg.net.step = 0;
  if (cli_checkpoint_path(cmd, ckpt, out, &ckpt, &ckpt_own)) goto done;
  if (resume && !ckpt) {
    cli_errorf("bafu train: --resume: needs --out or --checkpoint\n");
    goto done;
  }
  /* no two files of the run may be one: the table, the checkpoint, the data */
  char data_files[4][4200];
  cli_file files[6] = {{"--out", out}, {"--checkpoint", ckpt}};
  size_t nfiles = 2;
  if (cfg.data == BAFU_DATA_FASHION_MNIST)
    for (int k = 0; k < 4; ++k) {
      bafu_fashion_mnist_file(cfg.data_dir, k / 2, k % 2, data_files[k], sizeof data_files[k]);
      files[nfiles++] = (cli_file){"--data-dir", data_files[k]};
    }
  if (cli_distinct_files(cmd, files, nfiles)) goto done;
  if (!resume && cli_checkpoint_free(cmd, out && ckpt == ckpt_own ? "--out" : "--checkpoint", ckpt)) goto done;
  if (ckpt && bafu_path_writable(ckpt)) {
    cli_fail(cmd, "--checkpoint");
    goto done;
  }
  s.ckpt = ckpt;
  if (!(s.f = open_memstream(&s.rows, &s.len))) {
    cli_errorf("bafu train: out of memory\n");
    goto done;
  }
  if (resume) {
    size_t step, rows_len;
    const bafu_status cs = ckpt_train_load(ckpt, cfg.log_every, &step, &state, &cfg.resume_len, &rows, &rows_len);
    if (cs) {
      cli_fail(cmd, NULL);
      rc = cli_exit_status(cs);
      goto done;
    }
    if (state && fwrite(rows, 1, rows_len, s.f) != rows_len) {
      cli_errorf("bafu train: out of memory\n");
      goto done;
    }
    s.header = rows_len > 0;
    if (state) resumed_at = step;
    ckpt_owner_record(&s.own, ckpt); /* adopted: this run's to replace */
  }
  s.exact = exact;
  if (pilot) { /* the step-size parameter from the candidates, before the run (and its checkpoint) */
    double grid[64];
    size_t ng = 0;
    int ok = cfg.lr == 0;
    for (const char *q = pilot; ok && *q; ++ng) {
      char *end;
      ok = ng < 64 && (grid[ng] = strtod(q, &end), end != q) && isfinite(grid[ng]) && grid[ng] > 0 && (*end == ',' || !*end);
      q = ok && *end ? end + 1 : end;
      if (ok && !*q && *end) ok = 0; /* a trailing comma */
    }
    if (!ok || !ng) {
      cli_errorf("bafu train: --pilot: expected up to 64 positive numbers separated by commas, with the automatic "
                      "step (no --lr), got '%s'\n", pilot);
      goto done;
    }
    bafu_status ps = bafu_train_pilot(&cfg, grid, ng, &s.pilot_value);
    if (!ps && s.pilot_value == 0) ps = bafu_error(BAFU_ENUMERIC, "--pilot: every candidate diverged");
    if (ps) {
      cli_fail(cmd, NULL);
      rc = cli_exit_status(ps);
      goto done;
    }
    s.pilot = 1;
    if (cfg.control) cfg.control_speed = s.pilot_value; else cfg.auto_decay = s.pilot_value;
  }
  cfg.resume = state;
  if (ckpt) cfg.save = save_checkpoint, cfg.checkpoint_every = ckpt_every;
  if (threads > 0) openblas_set_num_threads(threads);
  /* everything that can be refused is refused here, before any output */
  bafu_status st = bafu_trainer_create(&cfg, &tr);
  if (st) { /* refused before any work (2): options, data files, sizes; 1 only for a failure of resources */
    if (state && strncmp(bafu_last_error(), "resume:", 7) == 0) /* the checkpoint's state: name the file */
      cli_errorf("bafu train: --resume: '%s':%s\n", ckpt, bafu_last_error() + 7);
    else
      cli_fail(cmd, NULL);
    rc = st == BAFU_ENOMEM || st == BAFU_ELAPACK ? 1 : 2;
    goto done;
  }
  if (bafu_table_open(out, &t)) {
    cli_fail(cmd, "--out");
    goto done;
  }
  s.out = bafu_table_stream(t);
  char desc[1024];
  cli_net_describe(&cfg.net, desc, sizeof desc);
  bafu_table_meta(t, "bafu train: mini-batch SGD with the feature speed measurements (theory/engine.md 6)");
  bafu_table_provenance(t, argc + 1, argv - 1);
  bafu_table_meta(t, "network: %s", desc);
  bafu_table_meta(t, "data: %s  epochs: %zu  seed: %llu  lr: %s (auto_decay %g)  control: %s (gamma %g, speed %g, split %s)  "
                     "schedule: %s  forward_norm: %g  backward_norm: %g",
                  bafu_param_find("data")->choices[cfg.data], cfg.epochs, (unsigned long long)cfg.seed, cfg.lr > 0 ? "given" : "automatic",
                  cfg.auto_decay, cfg.control ? "on" : "off", cfg.control_rate, cfg.control_speed, bafu_param_find("control_split")->choices[cfg.control_split], bafu_param_find("schedule")->choices[cfg.schedule], cfg.forward_norm,
                  cfg.backward_norm);
  if (s.pilot)
    bafu_table_meta(t, "pilot: %s = %g chosen among %s (100 steps each, the lowest mean training loss after step 0; "
                       "column pilot)", cfg.control ? "control_speed" : "auto_decay", s.pilot_value, pilot);
  bafu_table_meta(t, "columns: loss (train_acc) = mean over the mini-batches since the previous row; test_loss (test_acc)");
  bafu_table_meta(t, "  over the test set before the row's update; step_size = global step; lr = the layer's effective rate;");
  bafu_table_meta(t, "  the other columns as bafu mc, for the step taken at that row (theory/engine.md 3, 6); final = 1:");
  bafu_table_meta(t, "  after the last update (measurements on one more training batch, no update).");
  const int first = bafu_trainer_first_label(tr);
  if (first > bafu_layout_first_label(bafu_trainer_layout(tr)))
    bafu_table_meta(t, "layers below %d are left out: no trained parameter at or below them (D_l = 0, angle undefined)",
                    first);
  /* the rows of a resumed run's first part, from the checkpoint */
  rc = 1;
  if (fflush(s.f) || fwrite(s.rows, 1, s.len, s.out) != s.len) {
    cli_fail(cmd, "--out");
    goto done;
  }
  s.sent = s.len;
  st = bafu_trainer_run(tr, write_row, &s);
  if (!st && s.sent != s.len) { /* a row block could not be written: write_row stopped the run */
    bafu_error(BAFU_EIO, "cannot write the table");
    cli_fail(cmd, "--out");
    goto done;
  }
  if (st) {
    /* the run cannot go on: its rows so far are a result, kept with the reason
       (and the checkpoint, for a look or a resume); nothing at all: no table */
    if (s.taken)
      bafu_error(BAFU_EIO, "--checkpoint: '%s' is no longer this run's checkpoint (another run writes the same path?); "
                           "it is left as it is", ckpt);
    cli_fail(cmd, NULL);
    if (s.len > 0) {
      char why[512];
      snprintf(why, sizeof why, "%s", bafu_last_error());
      bafu_table_meta(t, "stopped after the rows of step %zu: %s", s.last_step, why);
      bafu_status cs = bafu_table_commit(t);
      t = NULL;
      if (cs) cli_fail(cmd, "--out");
    }
    goto done;
  }
  const bafu_status cs = bafu_table_commit(t);
  t = NULL;
  if (cs) {
    cli_fail(cmd, "--out");
    goto done;
  }
  if (ckpt && s.own.have) { /* the table is complete: the checkpoint of this run has served */
    const int lock = ckpt_owner_lock(ckpt);
    if (ckpt_owner_check(&s.own, ckpt)) remove(ckpt);
    ckpt_owner_unlock(lock);
  }
  if (!quiet) summary(&s, resumed_at, t0);
  rc = 0;
done:
  if (t) bafu_table_abort(t);
  bafu_trainer_free(tr);
  if (s.f) fclose(s.f);
  free(s.rows);
  free(rows);
  free(state);
  free(ckpt_own);
  cli_net_release(&net);
  return rc;
}
