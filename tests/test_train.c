#define _DEFAULT_SOURCE /* mkdtemp */
/* test_train.c: bafu_train_run on the teacher-student task and on a slice of
 * Fashion-MNIST: it learns, the feature speed identity holds at every logged
 * step, the control hits its targets (theory/engine.md 6, presets.md 5). */
#include <gsl/gsl_math.h> /* M_PI in strict C11 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "bafu/preset.h"
#include "bafu/train.h"
#include "testutil.h"

typedef struct {
  size_t rows;
  double first_test_loss, last_test_loss, last_test_acc, worst_idres;
  double control_speed, control_rate;
  int control;
  bafu_control_split split; /* control: the body's shares (MLP: layer 0 has lr_input, the others lr_hidden) */
  double lr_input, lr_hidden;
  bafu_schedule schedule; /* the targets (control) or rates (otherwise) are scaled by a(step) */
  size_t total;           /* steps of the run, for a(step) */
  double lr0[64];         /* without control: the rates of step 0 */
  double step0; /* the global step (control: the targets' factor) at step 0 */
  int bad;      /* a row missed its targets, or the global step left 2^k step0 (or rose above 1 under control) */
  char why[256];
} stats;

/* Every row: the identity residual; the global step (the targets' factor
 * under control, at most 1) is step 0's times 2^k for an integer k (the ratio
 * test halves and doubles it); under control, the readout's
 * contribution is gamma F times that factor (F computed by the loss,
 * independently of the gradient) and the last hidden layer moves at exactly
 * control_speed |f_L|_rms times it (the tangent pass, independently of the
 * contributions), rows logged at
 * every step so that the row's loss is the step's F. The even split of the
 * body's contributions is checked against explicit gradients in
 * test_net.c:test_control_targets. */
/* The expectations check_row holds a run of configuration c to. */
static stats stats_for(const bafu_train_config *c) {
  return (stats){.control = c->control, .control_speed = c->control_speed, .control_rate = c->control_rate,
                 .split = c->control_split, .lr_input = c->net.lr_input, .lr_hidden = c->net.lr_hidden,
                 .schedule = c->schedule};
}

static int check_row(const bafu_train_row *r, void *ctx) {
  stats *s = ctx;
  if (s->rows == 0) s->first_test_loss = r->test_loss;
  s->last_test_loss = r->test_loss;
  s->last_test_acc = r->test_acc;
  ++s->rows;
  const size_t J = r->J, Q = BAFU_Q_COUNT;
  for (size_t j = 0; j < J; ++j) s->worst_idres = fmax(s->worst_idres, r->q[j * Q + BAFU_Q_IDRES]);
  const double a = bafu_schedule_factor(s->schedule, r->step, s->total);
  if (r->step == 0 && !r->final) s->step0 = r->step_size;
  int k;
  const double f = frexp(r->step_size / s->step0, &k); /* 2^k step0 exactly: f = 1/2 */
  if (!s->bad && (f != 0.5 || (s->control && r->step_size > 1))) {
    snprintf(s->why, sizeof s->why, "step %zu: global step %.17g (step 0: %.17g)", r->step, r->step_size, s->step0);
    s->bad = 1;
  }
  if (!s->control && s->schedule != BAFU_SCHEDULE_CONSTANT && !s->bad) { /* rates a(t) times those of step 0 */
    const double g = a * r->step_size / s->step0;                          /* (and the halvings since) */
    for (size_t j = 0; j < J && j < 64; ++j) {
      if (r->step == 0) s->lr0[j] = r->lr[j];
      if (fabs(r->lr[j] - g * s->lr0[j]) > 1e-14 * s->lr0[j]) {
        snprintf(s->why, sizeof s->why, "step %zu layer %zu: lr %.17g, want %.17g", r->step, j, r->lr[j], g * s->lr0[j]);
        s->bad = 1;
      }
    }
  }
  if (!s->control || s->bad) return 0;
  const double g = a * r->step_size; /* the schedule and the ratio test's halvings */
  const double Cout = r->q[(J - 1) * Q + BAFU_Q_CONTRIB], want_out = g * s->control_rate * r->loss;
  if (fabs(Cout - want_out) > 1e-8 * want_out) {
    snprintf(s->why, sizeof s->why, "step %zu readout: C = %.17g, target %.17g", r->step, Cout, want_out);
    s->bad = 1;
  }
  /* the split: preset, every body rate lr0_j times one factor (lr_j / lr0_j equal);
     even, every body contribution equal */
  for (size_t j = 1; j + 1 < J && !s->bad; ++j) {
    const double a0 = s->split == BAFU_SPLIT_EVEN ? r->q[BAFU_Q_CONTRIB] : r->lr[0] / s->lr_input,
                 aj = s->split == BAFU_SPLIT_EVEN ? r->q[j * Q + BAFU_Q_CONTRIB] : r->lr[j] / s->lr_hidden;
    if (fabs(aj - a0) > 1e-10 * a0) {
      snprintf(s->why, sizeof s->why, "step %zu, %s split, layer %zu: %.17g against layer 0's %.17g", r->step,
               s->split == BAFU_SPLIT_EVEN ? "even" : "preset", j, aj, a0);
      s->bad = 1;
    }
  }
  const double speed = r->q[(J - 2) * Q + BAFU_Q_SPEED_RMS],
               want = g * s->control_speed * r->q[(J - 2) * Q + BAFU_Q_FRMS];
  if (fabs(speed - want) > 1e-8 * want) {
    snprintf(s->why, sizeof s->why, "step %zu: |df_L|_rms = %.17g, target %.17g", r->step, speed, want);
    s->bad = 1;
  }
  return 0;
}

static bafu_train_config teacher_config(void) {
  bafu_train_config c = bafu_train_config_default();
  c.data = BAFU_DATA_TEACHER;
  c.net.signal = BAFU_SIGNAL_MSE;
  c.net.outputs = 2;
  c.net.width = 96;
  c.net.depth = 6;
  c.net.input_dim = 16;
  c.net.batch = 32;
  c.train_size = 2048;
  c.test_size = 512;
  c.teacher_width = 64;
  c.epochs = 4;
  c.log_every = 1;
  return c;
}

/* Teacher-student with each preset (automatic step) and with the control:
 * the test loss falls (by 2x at least), the identity holds to 1e-9 at every
 * step, and the control meets every target to 1e-8. */
START_TEST(test_teacher) {
  for (int mode = 0; mode <= BAFU_PRESET_COUNT; ++mode) {
    bafu_train_config c = teacher_config();
    const int control = mode == BAFU_PRESET_COUNT;
    ck_assert_ok(bafu_preset_apply(&c.net, control ? BAFU_PRESET_FSC : (bafu_preset)mode));
    c.control = control;
    if (control) c.forward_norm = 1.0, c.backward_norm = 0.5; /* every switch on at once */
    stats s = stats_for(&c);
    ck_assert_ok(bafu_train_run(&c, check_row, &s));
    printf("  teacher %s: test loss %.4g -> %.4g, worst identity residual %.2g\n",
           control ? "fsc + control + norms" : bafu_preset_name((bafu_preset)mode), s.first_test_loss,
           s.last_test_loss, s.worst_idres);
    ck_assert_uint_eq(s.rows, 4 * (2048 / 32) + 1);
    ck_assert_msg(s.last_test_loss < 0.5 * s.first_test_loss, "mode %d: test loss %g -> %g", mode, s.first_test_loss,
                  s.last_test_loss);
    ck_assert_msg(s.worst_idres < 1e-9, "mode %d: identity residual %g", mode, s.worst_idres);
    ck_assert_msg(!s.bad, "%s", s.why);
  }
}
END_TEST

/* The ratio test (theory/presets.md 5.1) on full-batch training: the batch
 * is the whole training set, so the next row's loss is F(step) of this row's
 * batch (up to the order of the sum). Every step of the automatic step (muP)
 * and of the control (FSC) lowers the loss; the test lowered the step below its start (a F_0 / D_0, or 1 under
 * control) on the way (else this checks nothing), and never raised it above; and
 * the muP run with its step-0 step given as lr (not tested) raises the loss
 * at some step: a step of a F_0 / D_0 from the first batch alone is too long. */
typedef struct {
  size_t n;
  double F[64], P[64], step_size[64];
} ratio_trace;

static int ratio_row(const bafu_train_row *r, void *ctx) {
  ratio_trace *t = ctx;
  if (t->n >= 64) return 1;
  t->F[t->n] = r->loss, t->P[t->n] = r->q[(r->J - 1) * BAFU_Q_COUNT + BAFU_Q_DECAY], t->step_size[t->n] = r->step_size;
  ++t->n;
  return 0;
}

START_TEST(test_ratio) {
  for (int control = 0; control <= 1; ++control) {
    bafu_train_config c = teacher_config();
    c.train_size = c.net.batch; /* one batch: the full-batch loss at every step */
    c.epochs = 40;
    ck_assert_ok(bafu_preset_apply(&c.net, control ? BAFU_PRESET_FSC : BAFU_PRESET_MUP));
    c.control = control;
    ratio_trace t = {0};
    ck_assert_ok(bafu_train_run(&c, ratio_row, &t));
    ck_assert_uint_eq(t.n, 41); /* steps 0..39 and the final row after the 40th update */
    double worst = INFINITY;
    for (size_t i = 0; i + 1 < t.n; ++i) {
      const double rho = (t.F[i] - t.F[i + 1]) / t.P[i];
      worst = fmin(worst, rho);
      ck_assert_msg(t.F[i + 1] < t.F[i] * (1 + 1e-12),
                    "%s, step %zu: F %.17g -> %.17g, predicted decrease %.17g (ratio %.4f)", control ? "control" : "muP",
                    i, t.F[i], t.F[i + 1], t.P[i], rho);
    }
    /* the start: 1 under control; a F_0 / D_0 otherwise, D_0 = P_0 / step_size_0 (the decay per unit step) */
    const double start = control ? 1 : c.auto_decay * t.F[0] * t.step_size[0] / t.P[0];
    double lowest = INFINITY, highest = 0;
    for (size_t i = 0; i < t.n; ++i) lowest = fmin(lowest, t.step_size[i]), highest = fmax(highest, t.step_size[i]);
    printf("  ratio test, full batch, %s: loss %.4g -> %.4g, step from %.4g down to %.4g, last %.4g, worst ratio %.3f\n",
           control ? "FSC control" : "muP automatic step", t.F[0], t.F[t.n - 1], start, lowest, t.step_size[t.n - 1],
           worst);
    ck_assert_msg(lowest < 0.75 * start, "%s: the ratio test never lowered the step", control ? "control" : "muP");
    ck_assert_msg(highest <= start * (1 + 1e-14), "%s: step %g above its start %g", control ? "control" : "muP",
                  highest, start);
    ck_assert_msg(t.F[t.n - 1] < 0.2 * t.F[0], "%s: loss %g -> %g", control ? "control" : "muP", t.F[0], t.F[t.n - 1]);
    if (control) continue;
    c.lr = t.step_size[0]; /* the same first step, given: no ratio test */
    ratio_trace u = {0};
    ck_assert_ok(bafu_train_run(&c, ratio_row, &u));
    int rises = 0;
    for (size_t i = 0; i + 1 < u.n; ++i) rises += u.F[i + 1] > u.F[i];
    ck_assert_msg(rises > 0, "muP with lr %g given: the loss never rose", c.lr);
  }
}
END_TEST

/* The annealing factor's values, and runs that follow it: the control's
 * targets (cosine) and the automatic step's rates (linear) scaled by a(t) at
 * every step, the identity still holding; the schedule still trains. */
START_TEST(test_schedule) {
  ck_assert_double_eq(bafu_schedule_factor(BAFU_SCHEDULE_CONSTANT, 7, 10), 1);
  ck_assert_double_eq(bafu_schedule_factor(BAFU_SCHEDULE_LINEAR, 0, 10), 1);
  ck_assert_double_eq_tol(bafu_schedule_factor(BAFU_SCHEDULE_LINEAR, 5, 10), 0.5, 1e-15);
  ck_assert_double_eq_tol(bafu_schedule_factor(BAFU_SCHEDULE_LINEAR, 10, 10), 0.1, 1e-15); /* clamped to step 9 */
  ck_assert_double_eq_tol(bafu_schedule_factor(BAFU_SCHEDULE_COSINE, 5, 10), 0.5, 1e-15);
  ck_assert_double_eq_tol(bafu_schedule_factor(BAFU_SCHEDULE_COSINE, 1, 4), 0.5 + 0.25 * sqrt(2.0), 1e-15);
  ck_assert_double_eq_tol(bafu_schedule_factor(BAFU_SCHEDULE_COSINE, 9, 10), 0.5 * (1 + cos(0.9 * M_PI)), 1e-15);
  for (int control = 0; control <= 1; ++control) {
    bafu_train_config c = teacher_config();
    c.epochs = 2;
    ck_assert_ok(bafu_preset_apply(&c.net, BAFU_PRESET_FSC));
    c.control = control;
    c.schedule = control ? BAFU_SCHEDULE_COSINE : BAFU_SCHEDULE_LINEAR;
    c.control_split = BAFU_SPLIT_EVEN; /* the other split (test_teacher has the default) */
    stats s = stats_for(&c);
    s.total = 2 * (2048 / 32);
    ck_assert_ok(bafu_train_run(&c, check_row, &s));
    ck_assert_uint_eq(s.rows, s.total + 1);
    ck_assert_msg(!s.bad, "%s", s.why);
    ck_assert_msg(s.worst_idres < 1e-9, "identity residual %g", s.worst_idres);
    ck_assert_msg(s.last_test_loss < 0.5 * s.first_test_loss, "test loss %g -> %g", s.first_test_loss, s.last_test_loss);
  }
  bafu_train_config e = teacher_config();
  e.schedule = (bafu_schedule)7;
  ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
  ck_assert(strstr(bafu_last_error(), "schedule: ") != NULL);
}
END_TEST

/* Checkpoints: a run resumed from the state saved at step k (mid-epoch, and
 * at an epoch boundary, where the next shuffle happens after the restore)
 * logs exactly the rows of the uninterrupted run from step k on, bit for bit,
 * with every stateful feature on (control, forward normalisation, schedule).
 * States of another configuration, truncated or foreign ones are refused. */
typedef struct {
  size_t n;
  size_t step[400];
  double v[400][4]; /* loss, test_loss, sum of every measurement, sum of the rates */
  void *saved[2];
  size_t saved_len[2], saved_step[2];
} trace;

static int trace_row(const bafu_train_row *r, void *ctx) {
  trace *t = ctx;
  if (t->n >= 400) return 1;
  double sq = 0, sl = 0;
  for (size_t i = 0; i < r->J * BAFU_Q_COUNT; ++i) sq += r->q[i];
  for (size_t j = 0; j < r->J; ++j) sl += r->lr[j];
  t->step[t->n] = r->step + r->final; /* the final row after the last logged one */
  t->v[t->n][0] = r->loss, t->v[t->n][1] = r->test_loss, t->v[t->n][2] = sq, t->v[t->n][3] = sl;
  ++t->n;
  return 0;
}

static int trace_save(const void *state, size_t len, size_t step, void *ctx) {
  trace *t = ctx;
  const int i = step == 64 ? 0 : step == 100 ? 1 : -1;
  if (i < 0) return 0;
  t->saved[i] = malloc(len);
  if (!t->saved[i]) return 1;
  memcpy(t->saved[i], state, len);
  t->saved_len[i] = len, t->saved_step[i] = step;
  return 0;
}

START_TEST(test_resume) {
  for (int variant = 0; variant < 2; ++variant) {
    /* 0: control, forward normalisation, cosine schedule; 1: no control (the
       automatic step, fixed at step 0), backward normalisation, linear schedule */
    bafu_train_config c = teacher_config();
    c.epochs = 2; /* 64 steps per epoch */
    ck_assert_ok(bafu_preset_apply(&c.net, BAFU_PRESET_FSC));
    if (variant == 0)
      c.control = 1, c.forward_norm = 1.0, c.schedule = BAFU_SCHEDULE_COSINE;
    else
      c.backward_norm = 0.5, c.schedule = BAFU_SCHEDULE_LINEAR;
    c.checkpoint_every = 4;
    c.save = trace_save;
    trace *full = calloc(1, sizeof *full), *part = calloc(1, sizeof *part);
    ck_assert_ok(bafu_train_run(&c, trace_row, full));
    ck_assert_uint_eq(full->n, 129);
    for (int i = 0; i < 2; ++i) {
      ck_assert_ptr_nonnull(full->saved[i]);
      bafu_train_config r = c;
      r.save = NULL;
      r.resume = full->saved[i], r.resume_len = full->saved_len[i];
      memset(part, 0, sizeof *part);
      ck_assert_ok(bafu_train_run(&r, trace_row, part));
      const size_t k = full->saved_step[i];
      ck_assert_uint_eq(part->n, full->n - k);
      for (size_t a = 0; a < part->n; ++a) {
        ck_assert_uint_eq(part->step[a], full->step[k + a]);
        for (int q = 0; q < 4; ++q)
          ck_assert_msg(part->v[a][q] == full->v[k + a][q], "variant %d resumed at %zu: row %zu value %d: %.17g vs %.17g",
                        variant, k, part->step[a], q, part->v[a][q], full->v[k + a][q]);
      }
    }
    /* refusals: another configuration (seed, split), a truncated state, a
       foreign one, a sample order that is not a permutation */
    bafu_train_config e = c;
    e.save = NULL;
    e.seed = 2;
    e.resume = full->saved[1], e.resume_len = full->saved_len[1];
    ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
    ck_assert(strstr(bafu_last_error(), "another configuration") != NULL);
    e.seed = c.seed;
    e.control_split = BAFU_SPLIT_EVEN;
    ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
    ck_assert(strstr(bafu_last_error(), "another configuration") != NULL);
    e.control_split = c.control_split;
    e.resume_len = full->saved_len[1] - 8;
    ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
    ck_assert(strstr(bafu_last_error(), "damaged") != NULL);
    e.resume = "not a state", e.resume_len = 12;
    ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
    ck_assert(strstr(bafu_last_error(), "not a training state") != NULL);
    /* the sample order sits 7 words after the two strings: duplicate its first entry */
    char *bad = malloc(full->saved_len[1]);
    memcpy(bad, full->saved[1], full->saved_len[1]);
    const size_t off = strlen(bad) + 1 + strlen(bad + strlen(bad) + 1) + 1 + 7 * 8;
    memcpy(bad + off + 8, bad + off, 8);
    e.resume = bad, e.resume_len = full->saved_len[1];
    ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
    ck_assert(strstr(bafu_last_error(), "sample order") != NULL);
    /* values no run can hold: a running sum (the third word after the
       strings: step, step_size, F0, loss_sum) or the last weight not finite */
    const size_t strings = strlen(full->saved[1]) + 1 + strlen((char *)full->saved[1] + strlen(full->saved[1]) + 1) + 1;
    memcpy(bad, full->saved[1], full->saved_len[1]);
    const double nan = NAN;
    memcpy(bad + strings + 3 * 8, &nan, 8);
    ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
    ck_assert(strstr(bafu_last_error(), "damaged") != NULL);
    memcpy(bad, full->saved[1], full->saved_len[1]);
    memcpy(bad + full->saved_len[1] - 8, &nan, 8);
    ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
    ck_assert(strstr(bafu_last_error(), "weight is not finite") != NULL);
    /* the generator's state (after the sample order): its index out of 0..624
       (GSL would read outside its array) or a word of 2^32 or more */
    const size_t gen = off + c.train_size * 8;
    const int mti[] = {-50000000, 625};
    for (int i = 0; i < 2; ++i) {
      memcpy(bad, full->saved[1], full->saved_len[1]);
      memcpy(bad + gen + 624 * sizeof(unsigned long), &mti[i], sizeof(int));
      ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
      ck_assert(strstr(bafu_last_error(), "generator") != NULL);
    }
    memcpy(bad, full->saved[1], full->saved_len[1]);
    const unsigned long big = 0x100000000UL;
    memcpy(bad + gen + 5 * sizeof big, &big, sizeof big);
    ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
    ck_assert(strstr(bafu_last_error(), "generator") != NULL);
    free(bad);
    for (int i = 0; i < 2; ++i) free(full->saved[i]);
    free(full);
    free(part);
  }
}
END_TEST

/* The same seed gives the same run; errors are reported, not crashed on. */
START_TEST(test_reproducible_and_errors) {
  bafu_train_config c = teacher_config();
  c.epochs = 1;
  stats a = {0}, b = {0};
  ck_assert_ok(bafu_train_run(&c, check_row, &a));
  ck_assert_ok(bafu_train_run(&c, check_row, &b));
  ck_assert(a.last_test_loss == b.last_test_loss);
  bafu_train_config e = c;
  e.control = 1;
  e.lr = 0.1;
  ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
  ck_assert(strstr(bafu_last_error(), "lr: ") != NULL);
  e = c;
  e.net.signal = BAFU_SIGNAL_XENT;
  ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
  e = c;
  e.net.regenerate = 1;
  ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
  e = c;
  e.train_size = 16; /* fewer than one batch */
  ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EINVAL);
  e = c;
  e.lr = 1e6; /* diverges: reported as such */
  ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_ENUMERIC);
  ck_assert(strstr(bafu_last_error(), "diverged") != NULL);
  e = bafu_train_config_default();
  e.data_dir = "/nonexistent/fashion";
  e.net.input_dim = 784;
  ck_assert_int_eq(bafu_train_run(&e, NULL, NULL), BAFU_EIO);
  ck_assert(strstr(bafu_last_error(), "dataset-fashion-mnist") != NULL);
}
END_TEST

/* A run of c with checkpoints every 4 steps, resumed from its first
 * checkpoint, logs the uninterrupted run's rows from there on bit for bit;
 * with other_depth, the same checkpoint offered to a network of block_depth 1
 * is refused as another configuration. */
static void check_resume(const bafu_train_config *c0, int other_depth) {
  bafu_train_config c = *c0;
  c.checkpoint_every = 4;
  c.save = trace_save;
  trace *full = calloc(1, sizeof *full), *part = calloc(1, sizeof *part);
  ck_assert_ok(bafu_train_run(&c, trace_row, full));
  ck_assert_ptr_nonnull(full->saved[0]);
  bafu_train_config r = c;
  r.save = NULL;
  r.resume = full->saved[0], r.resume_len = full->saved_len[0];
  ck_assert_ok(bafu_train_run(&r, trace_row, part));
  const size_t k = full->saved_step[0];
  ck_assert_uint_eq(part->n, full->n - k);
  for (size_t a = 0; a < part->n; ++a)
    for (int q = 0; q < 4; ++q) ck_assert(part->v[a][q] == full->v[k + a][q]);
  if (other_depth) {
    bafu_train_config o = r;
    o.net.block_depth = 1;
    ck_assert_int_eq(bafu_train_run(&o, trace_row, part), BAFU_EINVAL);
  }
  for (int i = 0; i < 2; ++i) free(full->saved[i]);
  free(full);
  free(part);
}

/* Biases (theory/engine.md 1.3): a network with biases learns under the
 * automatic step and under the control (its control rows hit their targets,
 * weights and biases scaled together), the identity holds at every step, the
 * table reports the bias rates, and a resumed run logs the uninterrupted
 * run's rows bit for bit. */
static int bias_rows(const bafu_train_row *r, void *ctx) {
  stats *s = ctx;
  if (!r->lr_bias) s->bad = 1, snprintf(s->why, sizeof s->why, "no bias rates in the row");
  for (size_t j = 0; j < r->J && r->lr_bias; ++j)
    if (!(r->lr_bias[j] > 0)) s->bad = 1, snprintf(s->why, sizeof s->why, "bias rate %g", r->lr_bias[j]);
  return check_row(r, ctx);
}

START_TEST(test_biases) {
  for (int control = 0; control < 2; ++control) {
    bafu_train_config c = teacher_config();
    c.epochs = 2;
    ck_assert_ok(bafu_preset_apply(&c.net, BAFU_PRESET_FSC));
    c.net.bias_var = 0.3;
    c.net.lr_bias = 0.05;
    c.control = control;
    stats s = stats_for(&c);
    ck_assert_ok(bafu_train_run(&c, bias_rows, &s));
    printf("  teacher with biases%s: test loss %.4g -> %.4g, worst identity residual %.2g\n",
           control ? " and control" : "", s.first_test_loss, s.last_test_loss, s.worst_idres);
    ck_assert_msg(s.last_test_loss < 0.5 * s.first_test_loss, "test loss %g -> %g", s.first_test_loss,
                  s.last_test_loss);
    ck_assert_msg(s.worst_idres < 1e-9, "identity residual %g", s.worst_idres);
    ck_assert_msg(!s.bad, "%s", s.why);
    check_resume(&c, 0); /* checkpoint and resume: the rows from the checkpoint on are bit-identical */
  }
}
END_TEST

/* Normalised branches (theory/engine.md 1.4): a ResNet whose blocks read
 * phi(f / |f|_rms) learns under the automatic step and under the control (every
 * control target met), and the identity holds at every step. */
START_TEST(test_branch_norm) {
  for (int control = 0; control < 2; ++control) {
    bafu_train_config c = teacher_config();
    c.epochs = 2;
    c.net.arch = BAFU_ARCH_RESNET;
    c.net.embed = 1;
    c.net.branch_norm = BAFU_BRANCH_NORM_RMS;
    ck_assert_ok(bafu_preset_apply(&c.net, BAFU_PRESET_FSC));
    c.control = control;
    stats s = stats_for(&c);
    ck_assert_ok(bafu_train_run(&c, check_row, &s));
    printf("  teacher, ResNet with normalised branches%s: test loss %.4g -> %.4g, worst identity residual %.2g\n",
           control ? " and control" : "", s.first_test_loss, s.last_test_loss, s.worst_idres);
    ck_assert_msg(s.last_test_loss < 0.5 * s.first_test_loss, "test loss %g -> %g", s.first_test_loss,
                  s.last_test_loss);
    ck_assert_msg(s.worst_idres < 1e-9, "identity residual %g", s.worst_idres);
    ck_assert_msg(!s.bad, "%s", s.why);
  }
}
END_TEST

/* Branches of K layers (theory/engine.md 1.5): a ResNet with two-layer and
 * three-layer branches (with biases) learns under the automatic step and
 * under the control (every target met: a block's K rates scaled together),
 * the identity holds at every step, and a run resumed from a checkpoint
 * (every unit's weights and biases) logs the uninterrupted run's rows bit for
 * bit. */
START_TEST(test_block_depth) {
  for (int control = 0; control < 2; ++control) {
    bafu_train_config c = teacher_config();
    c.epochs = 2;
    c.net.arch = BAFU_ARCH_RESNET;
    c.net.embed = 1;
    c.net.block_depth = 2 + (size_t)control;
    c.net.bias_var = 0.2;
    ck_assert_ok(bafu_preset_apply(&c.net, BAFU_PRESET_FSC));
    c.control = control;
    stats s = stats_for(&c);
    ck_assert_ok(bafu_train_run(&c, check_row, &s));
    printf("  teacher, ResNet with %zu-layer branches%s: test loss %.4g -> %.4g, worst identity residual %.2g\n",
           c.net.block_depth, control ? " and control" : "", s.first_test_loss, s.last_test_loss, s.worst_idres);
    ck_assert_msg(s.last_test_loss < 0.5 * s.first_test_loss, "test loss %g -> %g", s.first_test_loss,
                  s.last_test_loss);
    ck_assert_msg(s.worst_idres < 1e-9, "identity residual %g", s.worst_idres);
    ck_assert_msg(!s.bad, "%s", s.why);
    check_resume(&c, 1); /* and a checkpoint of another branch depth is another configuration */
  }
}
END_TEST

/* IDX pairs: the image size comes from the files; training and test images
 * must agree with each other and with the input dimension, or the run is
 * refused before it starts, naming the file (a 1 x 1 set once overflowed a
 * buffer, a 14 x 14 test set was read as 28 x 28). Synthetic sets, 2 x 2
 * training images train a 4-input network. */
static void write_idx(const char *dir, const char *name, uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  gzFile f = gzopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  unsigned char h[16];
  const uint32_t v[4] = {magic, count, rows, cols};
  const int nh = magic == 0x801 ? 2 : 4;
  for (int i = 0; i < nh; ++i) h[4 * i] = v[i] >> 24, h[4 * i + 1] = v[i] >> 16 & 255, h[4 * i + 2] = v[i] >> 8 & 255, h[4 * i + 3] = v[i] & 255;
  ck_assert_int_eq(gzwrite(f, h, 4 * nh), 4 * nh);
  const size_t n = magic == 0x801 ? count : (size_t)count * rows * cols;
  for (size_t i = 0; i < n; ++i) ck_assert_int_eq(gzputc(f, magic == 0x801 ? (int)(i % 10) : (int)((i * 37) % 256)), magic == 0x801 ? (int)(i % 10) : (int)((i * 37) % 256));
  ck_assert_int_eq(gzclose(f), Z_OK);
}

static void write_pair(const char *dir, uint32_t tr_side, uint32_t te_side) {
  write_idx(dir, "train-images-idx3-ubyte.gz", 0x803, 96, tr_side, tr_side);
  write_idx(dir, "train-labels-idx1-ubyte.gz", 0x801, 96, 0, 0);
  write_idx(dir, "t10k-images-idx3-ubyte.gz", 0x803, 40, te_side, te_side);
  write_idx(dir, "t10k-labels-idx1-ubyte.gz", 0x801, 40, 0, 0);
}

START_TEST(test_idx_pairs) {
  char dir[] = "/tmp/bafu_test_pairs.XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  bafu_train_config c = bafu_train_config_default();
  c.data_dir = dir;
  c.net.width = 8;
  c.net.depth = 2;
  c.net.batch = 16;
  c.epochs = 1;
  c.net.input_dim = 784;
  write_pair(dir, 1, 1); /* 1 x 1 images for a 784-input network */
  ck_assert_int_eq(bafu_train_run(&c, NULL, NULL), BAFU_EINVAL);
  ck_assert(strncmp(bafu_last_error(), "input_dim: ", 11) == 0 && strstr(bafu_last_error(), "train-images") &&
            strstr(bafu_last_error(), "1 x 1"));
  write_pair(dir, 28, 14); /* test images of another size */
  ck_assert_int_eq(bafu_train_run(&c, NULL, NULL), BAFU_EPARSE);
  ck_assert(strstr(bafu_last_error(), "t10k-images") && strstr(bafu_last_error(), "14 x 14"));
  write_pair(dir, 14, 28);
  ck_assert_int_eq(bafu_train_run(&c, NULL, NULL), BAFU_EPARSE);
  write_pair(dir, 32, 32); /* 1024 pixels, not 784 */
  ck_assert_int_eq(bafu_train_run(&c, NULL, NULL), BAFU_EINVAL);
  ck_assert(strstr(bafu_last_error(), "32 x 32 = 1024"));
  write_pair(dir, 2, 2); /* a consistent pair trains */
  c.net.input_dim = 4;
  stats s = stats_for(&c);
  ck_assert_ok(bafu_train_run(&c, check_row, &s));
  ck_assert_uint_gt(s.rows, 1);
  ck_assert(isfinite(s.last_test_loss));
  const char *names[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                         "t10k-labels-idx1-ubyte.gz"};
  for (int i = 0; i < 4; ++i) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    unlink(p);
  }
  rmdir(dir);
}
END_TEST

/* A small slice of Fashion-MNIST (if installed): an 8-layer FSC MLP with the
 * control learns to > 70% test accuracy in one epoch of 16384 images (chance
 * is 10%; measured 0.76, so rounding differences between BLAS builds, which
 * change the trajectory, leave a margin). */
START_TEST(test_fashion_slice) {
  bafu_train_config c = bafu_train_config_default();
  c.net.input_dim = 784;
  c.net.width = 128;
  c.net.depth = 8;
  c.train_size = 16384;
  c.test_size = 2000;
  c.epochs = 1;
  c.log_every = 1;
  c.control = 1;
  ck_assert_ok(bafu_preset_apply(&c.net, BAFU_PRESET_FSC));
  stats s = stats_for(&c);
  ck_assert_ok(bafu_train_run(&c, check_row, &s));
  printf("  Fashion-MNIST slice: test loss %.4g -> %.4g, test accuracy %.4g\n", s.first_test_loss, s.last_test_loss,
         s.last_test_acc);
  ck_assert_msg(s.last_test_acc > 0.70, "test accuracy %g", s.last_test_acc);
  ck_assert(s.worst_idres < 1e-9);
  ck_assert_msg(!s.bad, "%s", s.why);
}
END_TEST

static Suite *suite(int fashion) {
  Suite *s = suite_create("train");
  TCase *tc = tcase_create("train");
  tcase_set_timeout(tc, 300);
  if (fashion) {
    tcase_add_test(tc, test_fashion_slice);
  } else {
    tcase_add_test(tc, test_teacher);
    tcase_add_test(tc, test_ratio);
    tcase_add_test(tc, test_reproducible_and_errors);
    tcase_add_test(tc, test_schedule);
    tcase_add_test(tc, test_resume);
    tcase_add_test(tc, test_idx_pairs);
    tcase_add_test(tc, test_biases);
  tcase_add_test(tc, test_branch_norm);
  tcase_add_test(tc, test_block_depth);
  }
  suite_add_tcase(s, tc);
  return s;
}

/* test_train: everything but the real data; test_train fashion: the
 * Fashion-MNIST slice, which reports SKIP (77) without the data set. */
int main(int argc, char **argv) {
  const int fashion = argc > 1 && strcmp(argv[1], "fashion") == 0;
  if (fashion && access("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", R_OK) != 0 &&
      !getenv("BAFU_FASHION_MNIST_DIR")) {
    printf("test_train: Fashion-MNIST not installed (Debian package dataset-fashion-mnist): SKIP\n");
    return 77;
  }
  return bafu_run_suite(suite(fashion));
}
