/* train.c: mini-batch SGD with feature speed control (bafu/train.h).
 * The update, the control and the normalisations are derived in
 * theory/engine.md 6; the control targets in theory/presets.md 5. */
#include "bafu/train.h"
#include "bafu/params.h"
#include "bafu/version.h"

#include <gsl/gsl_math.h> /* M_PI in strict C11 */
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/idx.h"
#include "bafu/layout.h"
#include "bafu/rng.h"

double bafu_schedule_factor(bafu_schedule s, size_t t, size_t T) {
  if (T == 0) return 1;
  const double u = (double)(t < T ? t : T - 1) / (double)T;
  switch (s) {
  case BAFU_SCHEDULE_LINEAR: return 1 - u;
  case BAFU_SCHEDULE_COSINE: return 0.5 * (1 + cos(M_PI * u));
  default: return 1;
  }
}

/* A data set in the network's layout: x is d x count, y is k x count
 * (one-hot columns for classification, teacher outputs for regression). */
typedef struct {
  size_t d, k, count;
  double *x, *y;
  unsigned char *label; /* classification only */
} data;

static void data_free(data *s) {
  free(s->x);
  free(s->y);
  free(s->label);
  memset(s, 0, sizeof *s);
}

/* A loaded Fashion-MNIST set (taken over, its first `keep` samples, 0 = all)
 * standardised with the training set's pixel mean and sd (so |x|_rms ~ 1:
 * dense inputs), labels as one-hot columns. */
static bafu_status fashion_data(bafu_dataset ds, size_t keep, double mu, double sd, data *out) {
  if (keep && keep < ds.count) ds.count = keep;
  const size_t d = ds.rows * ds.cols, k = 10;
  out->d = d, out->k = k, out->count = ds.count;
  out->x = ds.x;
  out->label = ds.label;
  out->y = calloc(k * ds.count, sizeof *out->y);
  if (!out->y) {
    bafu_dataset_free(&ds);
    memset(out, 0, sizeof *out);
    return bafu_error(BAFU_ENOMEM, "out of memory for the Fashion-MNIST labels");
  }
  for (size_t i = 0; i < d * ds.count; ++i) out->x[i] = (out->x[i] - mu) / sd;
  for (size_t i = 0; i < ds.count; ++i) out->y[i * k + out->label[i]] = 1.0;
  return BAFU_OK;
}

/* Teacher-student regression: inputs N(0, I_d), targets y = teacher(x), a ReLU
 * MLP (He init, readout variance 1/n_t so that Var y ~ 1) drawn from the seed. */
static bafu_status make_teacher_data(const bafu_train_config *c, size_t count, uint64_t stream, data *out) {
  const bafu_net_params *sp = &c->net;
  const size_t d = sp->input_dim ? sp->input_dim : sp->width, k = sp->outputs, m = sp->batch;
  bafu_net_params tp = bafu_net_params_default();
  tp.width = c->teacher_width;
  tp.depth = c->teacher_depth;
  tp.input_dim = d;
  tp.batch = m;
  tp.outputs = k;
  tp.signal = BAFU_SIGNAL_MSE;
  tp.sigma2_output = 1.0;
  bafu_status st = bafu_memory_check((double)bafu_net_memory_bytes(&tp), "teacher_width/teacher_depth: the teacher");
  if (st) return st;
  if ((st = bafu_memory_check((double)(d + k) * (double)count * sizeof(double),
                              stream == 1 ? "train_size: the training set" : "test_size: the test set")))
    return st;
  bafu_net *teacher;
  if ((st = bafu_net_alloc(&tp, &teacher))) return st;
  out->d = d, out->k = k, out->count = count;
  out->x = malloc(d * count * sizeof *out->x);
  out->y = malloc(k * count * sizeof *out->y);
  double *xb = malloc(d * m * sizeof *xb);
  if (!out->x || !out->y || !xb) {
    free(xb);
    bafu_net_free(teacher);
    data_free(out);
    return bafu_error(BAFU_ENOMEM, "out of memory for the teacher data");
  }
  bafu_fastrng r;
  bafu_fastrng_seed_stream(&r, c->seed, 0x7e4c4e5ULL, stream);
  bafu_fastrng_fill_gaussian(&r, 1.0, d * count, out->x);
  if ((st = bafu_net_draw(teacher, c->seed, 0x7e4c4e5ULL))) goto fail; /* the same teacher for both sets */
  for (size_t s0 = 0; s0 < count; s0 += m) {
    const size_t take = count - s0 < m ? count - s0 : m;
    memset(xb, 0, d * m * sizeof *xb);
    memcpy(xb, out->x + s0 * d, d * take * sizeof *xb);
    bafu_net_set_inputs(teacher, xb);
    if ((st = bafu_net_forward(teacher))) goto fail;
    memcpy(out->y + s0 * k, bafu_net_feature(teacher, bafu_net_nlayers(teacher) - 1), k * take * sizeof(double));
  }
  free(xb);
  bafu_net_free(teacher);
  return BAFU_OK;
fail:
  free(xb);
  bafu_net_free(teacher);
  data_free(out);
  return st;
}

/* Per-sample loss of column a of the top features y (k rows) against t. */
static double sample_loss(bafu_signal sig, const double *y, const double *t, size_t k) {
  if (sig == BAFU_SIGNAL_XENT) {
    double mx = y[0], s = 0, ty = 0;
    for (size_t i = 1; i < k; ++i) mx = fmax(mx, y[i]);
    for (size_t i = 0; i < k; ++i) s += exp(y[i] - mx), ty += t[i] * y[i];
    return mx + log(s) - ty;
  }
  double s = 0;
  for (size_t i = 0; i < k; ++i) s += (y[i] - t[i]) * (y[i] - t[i]);
  return s / 2;
}

/* Mean loss and accuracy over a data set, in batches of m (the last one padded
 * with zeros, its padding ignored); forward-normalisation scales frozen. */
static bafu_status evaluate(bafu_net *net, const bafu_train_config *c, const data *s, double *xb, int *cls,
                            double *loss, double *acc) {
  const size_t m = c->net.batch, d = s->d, k = s->k, J = bafu_net_nlayers(net);
  bafu_status st;
  if (c->forward_norm > 0 && (st = bafu_net_set_forward_norm(net, c->forward_norm, 1))) return st;
  double L = 0;
  size_t right = 0;
  for (size_t s0 = 0; s0 < s->count; s0 += m) {
    const size_t take = s->count - s0 < m ? s->count - s0 : m;
    memset(xb, 0, d * m * sizeof *xb);
    memcpy(xb, s->x + s0 * d, d * take * sizeof *xb);
    bafu_net_set_inputs(net, xb);
    if ((st = bafu_net_forward(net))) return st;
    const double *y = bafu_net_feature(net, J - 1);
    for (size_t a = 0; a < take; ++a) L += sample_loss(c->net.signal, y + a * k, s->y + (s0 + a) * k, k);
    if (s->label) {
      bafu_net_predict(net, cls);
      for (size_t a = 0; a < take; ++a) right += cls[a] == s->label[s0 + a];
    }
  }
  *loss = L / (double)s->count;
  *acc = s->label ? (double)right / (double)s->count : 0;
  if (c->forward_norm > 0) return bafu_net_set_forward_norm(net, c->forward_norm, 0);
  return BAFU_OK;
}

bafu_status bafu_train_config_check(const bafu_train_config *c) {
  const bafu_net_params *p = &c->net;
  bafu_status st = bafu_net_params_check(p);
  if (st) return st;
  if ((st = bafu_params_check_group(BAFU_PARAMS_TRAIN, c))) return st;
  if (c->control && c->lr > 0) return bafu_error(BAFU_EINVAL, "lr: the control sets every layer's rate (leave lr = 0)");
  if (p->regenerate) return bafu_error(BAFU_EINVAL, "regenerate: training needs stored weights");
  if (p->conditional) return bafu_error(BAFU_EINVAL, "conditional: training needs stored weights");
  if (p->signal == BAFU_SIGNAL_PROBE) return bafu_error(BAFU_EINVAL, "signal: training needs a loss (mse or xent), not the probe");
  if (c->data == BAFU_DATA_FASHION_MNIST) {
    if (p->signal != BAFU_SIGNAL_XENT) return bafu_error(BAFU_EINVAL, "signal: Fashion-MNIST is trained with signal = xent");
    if (p->outputs != 10) return bafu_error(BAFU_EINVAL, "outputs: Fashion-MNIST has 10 classes");
    if (p->inputs != BAFU_INPUTS_GAUSSIAN) return bafu_error(BAFU_EINVAL, "inputs: Fashion-MNIST inputs are dense");
  } else {
    if (p->signal != BAFU_SIGNAL_MSE) return bafu_error(BAFU_EINVAL, "signal: the teacher-student task is a regression (signal = mse)");
    if (p->inputs != BAFU_INPUTS_GAUSSIAN) return bafu_error(BAFU_EINVAL, "inputs: the teacher's inputs are dense N(0, I)");
  }
  return BAFU_OK;
}

/* Forward and backward on the samples idx[0..m) of s; returns the batch loss
 * and adds the batch accuracy to *acc_sum (classification). */
static double batch_pass(bafu_net *net, const data *s, const size_t *idx, size_t m, double *xb, double *tb, int *cls,
                         double *acc_sum, bafu_status *st) {
  const size_t d = s->d, k = s->k;
  for (size_t a = 0; a < m; ++a) {
    memcpy(xb + a * d, s->x + idx[a] * d, d * sizeof *xb);
    memcpy(tb + a * k, s->y + idx[a] * k, k * sizeof *tb);
  }
  bafu_net_set_inputs(net, xb);
  bafu_net_set_targets(net, tb);
  if ((*st = bafu_net_forward(net)) || (*st = bafu_net_backward(net))) {
    char why[512]; /* bafu_error writes the buffer bafu_last_error reads */
    snprintf(why, sizeof why, "%s", bafu_last_error());
    *st = bafu_error(BAFU_ENUMERIC, "training diverged: %s", why);
    return NAN;
  }
  if (s->label) {
    bafu_net_predict(net, cls);
    size_t right = 0;
    for (size_t a = 0; a < m; ++a) right += cls[a] == s->label[idx[a]];
    *acc_sum += (double)right / (double)m;
  }
  return bafu_net_loss(net);
}

/* The ratio test of an automatic or controlled step (theory/presets.md 5.1),
 * after the step's rates are set: on its own batch the step must lower the
 * loss, rho = (F - F(step)) / P > RATIO_MIN = 0 with P = sum_j C_j (the
 * first-order decrease of the rates as set): a step with rho <= 0 is past
 * the edge of stability along its own direction. While it is not, every rate
 * is halved, and *step_size with it. A step that passes with rho > RATIO_GROW
 * (the first-order model is accurate there), halved at no point of this
 * step, is tried at twice its size, up to step_max, and the doubled one is
 * taken if it passes. A predicted decrease below RATIO_FLOOR F is not
 * tested: F - F(step) would be rounding (this also ends the halving). A
 * stepped pass that overflows fails. */
#define RATIO_MIN 0.0
#define RATIO_GROW 0.75
#define RATIO_FLOOR 1e-10
static void scale_rates(bafu_net *net, double f, double *step_size) {
  *step_size *= f;
  for (size_t j = 0; j < bafu_net_nlayers(net); ++j) { /* exact: the rates stay lr0_j a(t) step_size */
    bafu_net_set_layer_lr(net, j, f * bafu_net_layer_lr(net, j));
    bafu_net_set_layer_bias_lr(net, j, f * bafu_net_layer_bias_lr(net, j));
  }
}

static bafu_status ratio_test(bafu_net *net, double F, double *step_size, double step_max) {
  const size_t J = bafu_net_nlayers(net);
  int halved = 0, grown = 0;
  for (;;) {
    double P = 0;
    for (size_t j = 0; j < J; ++j) P += bafu_net_layer_contribution(net, j);
    if (!(P > RATIO_FLOOR * F)) return BAFU_OK;
    const bafu_status st = bafu_net_step(net, 1.0); /* the rates as set: the update takes eta = 1 */
    if (st && st != BAFU_ENUMERIC) return st;
    const double rho = st ? -INFINITY : (F - bafu_net_step_loss(net)) / P;
    if (rho > RATIO_MIN) {
      if (halved || !(rho > RATIO_GROW) || !(2 * *step_size <= step_max)) return BAFU_OK;
      scale_rates(net, 2.0, step_size), grown = 1; /* try the doubled step */
    } else if (grown) {
      scale_rates(net, 0.5, step_size); /* the doubled step failed: the last one passed */
      return BAFU_OK;
    } else {
      scale_rates(net, 0.5, step_size), halved = 1;
    }
  }
}

/* The layer rates of a step, after its backward pass (w: J scratch doubles).
 * Control (theory/presets.md 5): the body layers (all but the readout) share
 * their total contribution D_body in the shares w_j (control_split: in
 * proportion to the contributions of the preset's rates lr0_j on this batch,
 * or evenly), with D_body chosen so that the last
 * hidden layer moves at |df_L|_rms = control_speed |f_L|_rms (the tangent is
 * linear in the body's rates: one tangent pass at D_body = 1 gives the
 * factor); the readout's target is gamma F; both targets times a(t) and
 * *step_size, 1 unless the ratio test halves it for this step. Otherwise: the group
 * rates times a(t) and the global step, which if 0 is set at the first call
 * so that the first-order decrease is auto_decay F (and *step_max with it).
 * An automatic or controlled step then passes the ratio test, which moves
 * *step_size by factors of 2, up to *step_max (1 under control). */
static bafu_status set_rates(bafu_net *net, const bafu_train_config *c, double F, double a, double *step_size,
                             double *step_max, double *q, double *w) {
  const size_t J = bafu_net_nlayers(net);
  bafu_status st;
  if (c->control) {
    /* shares w_j of D_body (sum 1): the preset's contributions on this batch, or even */
    double wsum = 0;
    for (size_t j = 0; j + 1 < J; ++j) {
      bafu_net_scale_layer_rates(net, j, 1.0); /* the preset's rates (weights and biases) */
      w[j] = c->control_split == BAFU_SPLIT_EVEN ? 1.0 : bafu_net_layer_contribution(net, j);
      wsum += w[j];
    }
    if (!(wsum > 0 && isfinite(wsum))) return bafu_error(BAFU_ENUMERIC, "control: the body has no gradient");
    for (size_t j = 0; j + 1 < J; ++j) w[j] /= wsum;
    for (size_t j = 0; j + 1 < J; ++j)
      if ((st = bafu_net_set_layer_contribution(net, j, w[j]))) return st;
    bafu_net_scale_layer_rates(net, J - 1, 0);
    if ((st = bafu_net_tangent(net))) return st;
    bafu_net_measure(net, q);
    const double unit = q[(J - 2) * BAFU_Q_COUNT + BAFU_Q_SPEED_RMS];
    if (!(unit > 0 && isfinite(unit))) return bafu_error(BAFU_ENUMERIC, "control: the last hidden layer does not move");
    *step_size = 1; /* the targets in full: the ratio test may halve them for this step only */
    const double g = a * *step_size;
    const double target = g * c->control_speed * q[(J - 2) * BAFU_Q_COUNT + BAFU_Q_FRMS]; /* relative speed */
    for (size_t j = 0; j + 1 < J; ++j)
      if ((st = bafu_net_set_layer_contribution(net, j, w[j] * target / unit))) return st;
    if ((st = bafu_net_set_layer_contribution(net, J - 1, g * c->control_rate * F))) return st;
    return ratio_test(net, F, step_size, 1.0);
  }
  if (*step_size == 0) {
    for (size_t j = 0; j < J; ++j) bafu_net_scale_layer_rates(net, j, 1.0);
    bafu_net_measure(net, q); /* only the decay column is used: it needs no tangent pass */
    const double D = q[(J - 1) * BAFU_Q_COUNT + BAFU_Q_DECAY];
    if (!(D > 0 && isfinite(D))) return bafu_error(BAFU_ENUMERIC, "lr: no loss decrease at step 0 (zero gradient)");
    *step_size = *step_max = c->auto_decay * F / D;
  }
  for (size_t j = 0; j < J; ++j) bafu_net_scale_layer_rates(net, j, a * *step_size);
  return c->lr > 0 ? BAFU_OK : ratio_test(net, F, step_size, *step_max);
}

/* The training state (bafu/train.h checkpoints): everything a step reads
 * that earlier steps wrote. Layout (native byte order: a state is read back by
 * the same build on the same machine):
 *   STATE_MAGIC '\0', fingerprint '\0',
 *   u64 step, f64 step_size, F0, loss_sum, acc_sum, u64 since, f64 step_max,
 *   u64 perm[count], the generator's state (gsl_rng_size bytes),
 *   per layer: f64 scale, f64 W[fan_out * fan_in]. */
#define STATE_MAGIC "bafu-train-state 2 " BAFU_VERSION_STRING

typedef struct {
  size_t step, since;
  double step_size, F0, loss_sum, acc_sum;
  double step_max; /* the largest global step the ratio test may return to (0 before step 0) */
} progress_state;

/* Every setting the trajectory depends on, exactly (hex floats). */
static void fingerprint(const bafu_train_config *c, size_t count, char *buf, size_t size) {
  bafu_params_fingerprint(c, buf, size); /* every parameter marked in bafu/params.h */
  const size_t used = strlen(buf);
  if (used < size) snprintf(buf + used, size - used, " count=%zu", count);
}

static size_t state_size(const bafu_net *net, const gsl_rng *rng, size_t count, const char *fp) {
  size_t n = sizeof STATE_MAGIC + strlen(fp) + 1 + 2 * 8 + 5 * 8 + count * 8 + gsl_rng_size(rng);
  n += 8 * bafu_net_nlayers(net); /* each layer's forward scale */
  for (size_t u = 0; u < bafu_net_nunits(net); ++u)
    n += 8 * (bafu_net_unit_fan_out(net, u) * bafu_net_unit_fan_in(net, u) +
              (bafu_net_bias((bafu_net *)net, u) ? bafu_net_unit_fan_out(net, u) : 0));
  return n;
}

/* Whether unit u is the first of its layer (the layer's scale is stored before it). */
static int opens_layer(const bafu_net *net, size_t u) {
  return u == 0 || bafu_net_unit_layer(net, u - 1) != bafu_net_unit_layer(net, u);
}

static char *put(char *w, const void *v, size_t n) {
  memcpy(w, v, n);
  return w + n;
}

/* Serialise into buf (state_size bytes). */
static void state_write(char *w, bafu_net *net, const gsl_rng *rng, const size_t *perm, size_t count, const char *fp,
                        const progress_state *ps) {
  const uint64_t step = ps->step, since = ps->since;
  w = put(w, STATE_MAGIC, sizeof STATE_MAGIC);
  w = put(w, fp, strlen(fp) + 1);
  w = put(w, &step, 8);
  w = put(w, &ps->step_size, 8);
  w = put(w, &ps->F0, 8);
  w = put(w, &ps->loss_sum, 8);
  w = put(w, &ps->acc_sum, 8);
  w = put(w, &since, 8);
  w = put(w, &ps->step_max, 8);
  for (size_t i = 0; i < count; ++i) {
    const uint64_t v = perm[i];
    w = put(w, &v, 8);
  }
  w = put(w, gsl_rng_state(rng), gsl_rng_size(rng));
  for (size_t u = 0; u < bafu_net_nunits(net); ++u) {
    if (opens_layer(net, u)) {
      const double a = bafu_net_layer_scale(net, bafu_net_unit_layer(net, u));
      w = put(w, &a, 8);
    }
    w = put(w, bafu_net_weight(net, u), 8 * bafu_net_unit_fan_out(net, u) * bafu_net_unit_fan_in(net, u));
    if (bafu_net_bias(net, u)) w = put(w, bafu_net_bias(net, u), 8 * bafu_net_unit_fan_out(net, u));
  }
}

/* Restore a state into a drawn network. On error the network, perm and rng
 * may be partly overwritten: the caller abandons the run. */
static bafu_status state_read(const char *r, size_t len, bafu_net *net, gsl_rng *rng, size_t *perm, size_t count,
                              size_t total, const char *fp, progress_state *ps) {
  if (len < sizeof STATE_MAGIC || memcmp(r, STATE_MAGIC, sizeof STATE_MAGIC) != 0)
    return bafu_error(BAFU_EINVAL, "resume: not a training state of this bafu version (" STATE_MAGIC ")");
  r += sizeof STATE_MAGIC;
  if (!memchr(r, '\0', len - sizeof STATE_MAGIC) || strcmp(r, fp) != 0)
    return bafu_error(BAFU_EINVAL, "resume: the checkpoint is of another configuration (options or data)");
  if (len != state_size(net, rng, count, fp))
    return bafu_error(BAFU_EINVAL, "resume: damaged training state (%zu bytes, expected %zu)", len,
                      state_size(net, rng, count, fp));
  r += strlen(fp) + 1;
  uint64_t step, since;
  memcpy(&step, r, 8), r += 8;
  memcpy(&ps->step_size, r, 8), r += 8;
  memcpy(&ps->F0, r, 8), r += 8;
  memcpy(&ps->loss_sum, r, 8), r += 8;
  memcpy(&ps->acc_sum, r, 8), r += 8;
  memcpy(&since, r, 8), r += 8;
  memcpy(&ps->step_max, r, 8), r += 8;
  if (step == 0 || step >= total || since > step || !isfinite(ps->step_size) || !isfinite(ps->F0) ||
      !isfinite(ps->step_max) ||
      !isfinite(ps->loss_sum) || !isfinite(ps->acc_sum))
    return bafu_error(BAFU_EINVAL, "resume: damaged training state (step %llu of %zu)", (unsigned long long)step,
                      total);
  ps->step = (size_t)step, ps->since = (size_t)since;
  /* the sample order must be a permutation: perm first serves as the marks */
  for (size_t i = 0; i < count; ++i) perm[i] = 0;
  for (size_t i = 0; i < count; ++i) {
    uint64_t v;
    memcpy(&v, r + 8 * i, 8);
    if (v >= count || perm[v]) return bafu_error(BAFU_EINVAL, "resume: damaged training state (sample order)");
    perm[v] = 1;
  }
  for (size_t i = 0; i < count; ++i) {
    uint64_t v;
    memcpy(&v, r, 8), r += 8;
    perm[i] = (size_t)v;
  }
  /* GSL's mt19937 state (gsl/rng/mt.c): 624 words below 2^32 and an index in
     0..624, which GSL uses unchecked; anything else is a damaged file */
  struct {
    unsigned long mt[624];
    int mti;
  } mt;
  if (gsl_rng_size(rng) != sizeof mt)
    return bafu_error(BAFU_EINVAL, "resume: this GSL's generator state has another layout");
  memcpy(&mt, r, sizeof mt);
  int mt_ok = mt.mti >= 0 && mt.mti <= 624;
  for (size_t i = 0; i < 624; ++i) mt_ok &= mt.mt[i] <= 0xffffffffUL;
  if (!mt_ok) return bafu_error(BAFU_EINVAL, "resume: damaged training state (generator)");
  memcpy(gsl_rng_state(rng), r, gsl_rng_size(rng));
  r += gsl_rng_size(rng);
  for (size_t u = 0; u < bafu_net_nunits(net); ++u) {
    const size_t j = bafu_net_unit_layer(net, u);
    if (opens_layer(net, u)) {
      double a;
      memcpy(&a, r, 8), r += 8;
      if (a != bafu_net_layer_scale(net, j)) {
        bafu_status st = bafu_net_set_layer_scale(net, j, a);
        if (st) return bafu_error(BAFU_EINVAL, "resume: damaged training state (layer scale)");
      }
    }
    const size_t n = bafu_net_unit_fan_out(net, u) * bafu_net_unit_fan_in(net, u);
    double *W = bafu_net_weight(net, u);
    memcpy(W, r, 8 * n), r += 8 * n;
    for (size_t i = 0; i < n; ++i)
      if (!isfinite(W[i])) return bafu_error(BAFU_EINVAL, "resume: damaged training state (a weight is not finite)");
    double *cb = bafu_net_bias(net, u);
    if (cb) {
      const size_t nb = bafu_net_unit_fan_out(net, u);
      memcpy(cb, r, 8 * nb), r += 8 * nb;
      for (size_t i = 0; i < nb; ++i)
        if (!isfinite(cb[i])) return bafu_error(BAFU_EINVAL, "resume: damaged training state (a bias is not finite)");
    }
  }
  return BAFU_OK;
}

struct bafu_trainer {
  bafu_train_config c;
  data tr, te;
  bafu_net *net;
  double *xb, *xe, *tb, *q, *lr, *lrb, *w;
  int *cls, *labels;
  size_t *perm;
  gsl_rng *rng;
  size_t J, per_epoch, total;
  size_t first; /* rows start here: layers below have no trained parameter at or below them */
  char fp[4096];
  progress_state ps;
  int ran;
};

void bafu_trainer_free(bafu_trainer *t) {
  if (!t) return;
  gsl_rng_free(t->rng);
  free(t->perm);
  free(t->labels);
  free(t->cls);
  free(t->lr);
  free(t->lrb);
  free(t->w);
  free(t->q);
  free(t->tb);
  free(t->xe);
  free(t->xb);
  bafu_net_free(t->net);
  data_free(&t->tr);
  data_free(&t->te);
  free(t);
}

/* The Fashion-MNIST sets, standardised with the pixel mean and sd of the
 * whole training set (whatever train_size), so that a slice sees the same
 * inputs as the full run; the set is read once and then cut to train_size.
 * The image size comes from the files: both sets must have the network's
 * input dimension. */
static bafu_status load_fashion(const bafu_train_config *c, data *tr, data *te) {
  bafu_dataset all, test;
  char ftr[4200], fte[4200];
  bafu_fashion_mnist_file(c->data_dir, 0, 0, ftr, sizeof ftr);
  bafu_fashion_mnist_file(c->data_dir, 1, 0, fte, sizeof fte);
  bafu_status st;
  if ((st = bafu_fashion_mnist_load(c->data_dir, 0, 0, &all))) return st;
  if ((st = bafu_fashion_mnist_load(c->data_dir, 1, c->test_size, &test))) {
    bafu_dataset_free(&all);
    return st;
  }
  const size_t d = c->net.input_dim ? c->net.input_dim : c->net.width;
  if (test.rows != all.rows || test.cols != all.cols)
    st = bafu_error(BAFU_EPARSE, "'%s' holds %zu x %zu images, but the training images '%s' are %zu x %zu", fte,
                    test.rows, test.cols, ftr, all.rows, all.cols);
  else if (all.rows * all.cols != d)
    st = bafu_error(BAFU_EINVAL, "input_dim: %zu, but the images of '%s' have %zu x %zu = %zu pixels", d, ftr,
                    all.rows, all.cols, all.rows * all.cols);
  if (st) {
    bafu_dataset_free(&all);
    bafu_dataset_free(&test);
    return st;
  }
  const size_t n = all.rows * all.cols * all.count;
  double mu = 0, ss = 0;
  for (size_t i = 0; i < n; ++i) mu += all.x[i];
  mu /= (double)n;
  for (size_t i = 0; i < n; ++i) ss += (all.x[i] - mu) * (all.x[i] - mu);
  const double sd = ss > 0 ? sqrt(ss / (double)n) : 1.0; /* constant images: centred, not scaled */
  st = fashion_data(all, c->train_size, mu, sd, tr);
  if (st) bafu_dataset_free(&test);
  if (!st) st = fashion_data(test, 0, mu, sd, te);
  return st;
}

bafu_status bafu_trainer_create(const bafu_train_config *c, bafu_trainer **out) {
  *out = NULL;
  bafu_status st = bafu_train_config_check(c);
  if (st) return st;
  bafu_trainer *t = calloc(1, sizeof *t);
  if (!t) return bafu_error(BAFU_ENOMEM, "out of memory for training");
  t->c = *c;
  const size_t m = c->net.batch;
  if (c->data == BAFU_DATA_FASHION_MNIST) {
    st = load_fashion(c, &t->tr, &t->te);
  } else {
    const size_t ntr = c->train_size ? c->train_size : 8192, nte = c->test_size ? c->test_size : 2048;
    if (ntr < m)
      st = bafu_error(BAFU_EINVAL, "batch: %zu is more than the %zu training samples%s", m, ntr,
                      c->train_size ? "" : " (train_size)");
    if (!st) st = make_teacher_data(c, ntr, 1, &t->tr);
    if (!st) st = make_teacher_data(c, nte, 2, &t->te);
  }
  if (!st && t->tr.count < m)
    st = bafu_error(BAFU_EINVAL, "batch: %zu is more than the %zu training samples", m, t->tr.count);
  if (!st) st = bafu_net_alloc(&c->net, &t->net);
  if (st) {
    bafu_trainer_free(t);
    return st;
  }
  const size_t d = t->tr.d, k = t->tr.k, J = bafu_net_nlayers(t->net);
  t->J = J;
  t->xb = malloc(d * m * sizeof *t->xb);
  t->xe = malloc(d * m * sizeof *t->xe);
  t->tb = malloc(k * m * sizeof *t->tb);
  t->q = malloc(J * BAFU_Q_COUNT * sizeof *t->q);
  t->w = malloc(J * sizeof *t->w);
  t->lr = malloc(J * sizeof *t->lr);
  t->lrb = malloc(J * sizeof *t->lrb);
  t->cls = malloc(m * sizeof *t->cls);
  t->labels = malloc(J * sizeof *t->labels);
  t->perm = malloc(t->tr.count * sizeof *t->perm);
  t->rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!t->xb || !t->xe || !t->tb || !t->q || !t->w || !t->lr || !t->lrb || !t->cls || !t->labels || !t->perm ||
      !t->rng) {
    bafu_trainer_free(t);
    return bafu_error(BAFU_ENOMEM, "out of memory for training");
  }
  bafu_rng_seed(t->rng, c->seed, 0x5eed0dde5ULL); /* the data order */
  for (size_t i = 0; i < t->tr.count; ++i) t->perm[i] = i;
  for (size_t j = 0; j < J; ++j) t->labels[j] = bafu_net_layer_label(t->net, j);
  if ((st = bafu_net_draw(t->net, c->seed, 0)) || (st = bafu_net_set_forward_norm(t->net, c->forward_norm, 0)) ||
      (st = bafu_net_set_backward_norm(t->net, c->backward_norm))) {
    bafu_trainer_free(t);
    return st;
  }
  /* a layer with no rate and no rate below it (--lr-input 0, a ResNet with
     beta = 0 and no embedding...) has no angle: its rows are left out */
  t->first = bafu_layout_first_trained(bafu_net_layout(t->net));
  if (t->first >= J || (c->control && t->first + 1 >= J)) { /* nothing trains, or the control has nothing to steer */
    const int none = t->first >= J;
    bafu_trainer_free(t);
    return bafu_error(BAFU_EINVAL, "lr_input/lr_hidden/branch_scale: no %s has a trained parameter%s",
                      none ? "layer" : "hidden layer", none ? "" : " (the control steers the hidden layers)");
  }
  t->per_epoch = t->tr.count / m;
  t->total = t->per_epoch * c->epochs;
  fingerprint(c, t->tr.count, t->fp, sizeof t->fp);
  t->ps = (progress_state){.step = 0, .since = 0, .step_size = c->control ? 1.0 : c->lr, .step_max = c->control ? 1.0 : c->lr};
  if (c->resume) {
    st = state_read(c->resume, c->resume_len, t->net, t->rng, t->perm, t->tr.count, t->total, t->fp, &t->ps);
  } else if (c->forward_norm > 0) { /* the scales of the first training batch, for the step-0 evaluation */
    double unused = 0;
    gsl_ran_shuffle(t->rng, t->perm, t->tr.count, sizeof *t->perm);
    batch_pass(t->net, &t->tr, t->perm, m, t->xb, t->tb, t->cls, &unused, &st);
  }
  if (st) {
    bafu_trainer_free(t);
    return st;
  }
  *out = t;
  return BAFU_OK;
}

/* A logged row must hold finite numbers only: else the run stops, naming the
 * quantity, the layer and the likely cause. */
static bafu_status check_row(const bafu_trainer *t, const bafu_train_row *row) {
  static const bafu_quantity cols[] = {BAFU_Q_COS, BAFU_Q_SPEED, BAFU_Q_SPEED_RMS, BAFU_Q_CONTRIB,
                                       BAFU_Q_DECAY, BAFU_Q_IDRES, BAFU_Q_SENS};
  const double scalars[] = {row->loss, row->train_acc, row->test_loss, row->test_acc, row->step_size};
  for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; ++i)
    if (!isfinite(scalars[i]))
      return bafu_error(BAFU_ENUMERIC, "training diverged: the loss is not finite at step %zu", row->step);
  for (size_t j = 0; j < row->J; ++j) {
    if (!isfinite(row->lr[j]))
      return bafu_error(BAFU_ENUMERIC, "step %zu: the learning rate of layer %d is not finite", row->step,
                        row->labels[j]);
    if (row->lr_bias && !isfinite(row->lr_bias[j]))
      return bafu_error(BAFU_ENUMERIC, "step %zu: the bias rate of layer %d is not finite", row->step, row->labels[j]);
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; ++c) {
      const double v = row->q[j * BAFU_Q_COUNT + cols[c]];
      if (isfinite(v)) continue;
      const double bn = row->q[j * BAFU_Q_COUNT + BAFU_Q_BNORM], D = row->q[j * BAFU_Q_COUNT + BAFU_Q_DECAY];
      const char *cause = t->c.backward_norm > 0 && t->c.backward_norm < 1e-100
                              ? " (backward_norm is so small that the normalised signals underflow)"
                          : !(bn > 0) ? " (the backward signal vanishes at this layer)"
                          : !(D > 0)  ? " (no loss decrease reaches this layer)"
                                      : "";
      return bafu_error(BAFU_ENUMERIC, "step %zu: %s is not finite at layer %d%s", row->step,
                        bafu_quantity_name(cols[c]), row->labels[j], cause);
    }
    /* every layer from the first trained one up moves; a speed or decay below
       the normal doubles has underflowed, and its angle and residual are noise */
    const double sp = row->q[j * BAFU_Q_COUNT + BAFU_Q_SPEED], D = row->q[j * BAFU_Q_COUNT + BAFU_Q_DECAY];
    if (!(sp >= DBL_MIN && D >= DBL_MIN))
      return bafu_error(BAFU_ENUMERIC,
                        "step %zu: the feature speed underflows at layer %d (step size %.3g: too small for double "
                        "precision; raise lr)",
                        row->step, row->labels[j], row->step_size);
  }
  return BAFU_OK;
}

int bafu_trainer_first_label(const bafu_trainer *t) { return bafu_net_layer_label(t->net, t->first); }
const struct bafu_layout *bafu_trainer_layout(const bafu_trainer *t) { return bafu_net_layout(t->net); }

/* An overflow in the engine's passes during training: the rates are what
 * grew, so name them (the engine's own message speaks of mc's step). */
static bafu_status overflow_in_training(bafu_status st, size_t step, double step_size) {
  if (st != BAFU_ENUMERIC) return st;
  return bafu_error(st, "training diverged: the passes overflowed at step %zu with step size %.3g (reduce lr, "
                        "auto_decay or control_speed)", step, step_size);
}

bafu_status bafu_trainer_run(bafu_trainer *t, bafu_train_fn fn, void *ctx) {
  if (t->ran) return bafu_error(BAFU_EINVAL, "a trainer runs once (create another)");
  t->ran = 1;
  const bafu_train_config *c = &t->c;
  bafu_net *net = t->net;
  const data *tr = &t->tr, *te = &t->te;
  const size_t m = c->net.batch, J = t->J, per_epoch = t->per_epoch, total = t->total;
  double *xb = t->xb, *xe = t->xe, *tb = t->tb, *q = t->q, *lr = t->lr, *lrb = t->lrb, *w = t->w;
  int *cls = t->cls, *labels = t->labels;
  size_t *perm = t->perm;
  gsl_rng *rng = t->rng;
  bafu_status st = BAFU_OK;
  double step_size = t->ps.step_size, step_max = t->ps.step_max, loss_sum = t->ps.loss_sum, acc_sum = t->ps.acc_sum,
         F0 = t->ps.F0;
  size_t since = t->ps.since, step = t->ps.step;
  const size_t first_step = step;
  for (; step < total; ++step) {
    const size_t epoch = step / per_epoch + 1, b = step % per_epoch;
    if (c->save && c->checkpoint_every && step > first_step && step % c->checkpoint_every == 0) {
      /* the state at the start of this step, before its epoch's shuffle */
      const progress_state now = {.step = step, .since = since, .step_size = step_size, .step_max = step_max, .F0 = F0,
                                  .loss_sum = loss_sum, .acc_sum = acc_sum};
      const size_t len = state_size(net, rng, tr->count, t->fp);
      char *buf = malloc(len);
      if (!buf) return bafu_error(BAFU_ENOMEM, "checkpoint: out of memory for the training state");
      state_write(buf, net, rng, perm, tr->count, t->fp, &now);
      const int failed = c->save(buf, len, step, ctx);
      free(buf);
      if (failed) return bafu_error(BAFU_EIO, "checkpoint: the training state could not be saved at step %zu", step);
    }
    if (b == 0) gsl_ran_shuffle(rng, perm, tr->count, sizeof *perm);
    const int logged = step % c->log_every == 0 || step + 1 == total;
    double test_loss = 0, test_acc = 0;
    /* after an update, an overflow is the rates' doing */
    if (logged && (st = evaluate(net, c, te, xe, cls, &test_loss, &test_acc)))
      return step > 0 ? overflow_in_training(st, step, step_size) : st;
    const double F = batch_pass(net, tr, perm + b * m, m, xb, tb, cls, &acc_sum, &st);
    if (st) return step > 0 ? overflow_in_training(st, step, step_size) : st;
    if (step == 0) F0 = F;
    if (F > 100 * F0) /* finite but runaway: report it rather than train on */
      return bafu_error(BAFU_ENUMERIC, "training diverged: batch loss %.3g at step %zu is over 100 times the initial "
                                       "%.3g (reduce lr, auto_decay or control_speed)", F, step, F0);
    loss_sum += F;
    ++since;
    if ((st = set_rates(net, c, F, bafu_schedule_factor(c->schedule, step, total), &step_size, &step_max, q, w))) return st;
    if (logged) {
      if ((st = bafu_net_tangent(net))) return overflow_in_training(st, step, step_size);
      bafu_net_measure(net, q);
      for (size_t j = 0; j < J; ++j) lr[j] = bafu_net_layer_lr(net, j), lrb[j] = bafu_net_layer_bias_lr(net, j);
      const size_t f0 = t->first;
      const bafu_train_row row = {.step = step, .total = total, .epoch = epoch, .final = 0, .classify = tr->label != NULL,
                                  .loss = loss_sum / (double)since, .train_acc = acc_sum / (double)since,
                                  .test_loss = test_loss, .test_acc = test_acc, .step_size = step_size,
                                  .J = J - f0, .labels = labels + f0, .q = q + f0 * BAFU_Q_COUNT, .lr = lr + f0,
                                  .lr_bias = c->net.bias_var > 0 ? lrb + f0 : NULL};
      if ((st = check_row(t, &row))) return st;
      loss_sum = acc_sum = 0;
      since = 0;
      if (fn && fn(&row, ctx)) return BAFU_OK;
    }
    if ((st = bafu_net_update(net, 1.0))) return overflow_in_training(st, step, step_size);
  }
  /* after the last update: test metrics, and the measurements on one more
     training batch (no update follows) */
  double test_loss, test_acc, acc = 0;
  if ((st = evaluate(net, c, te, xe, cls, &test_loss, &test_acc))) return overflow_in_training(st, total, step_size);
  const double F = batch_pass(net, tr, perm, m, xb, tb, cls, &acc, &st);
  if (st) return overflow_in_training(st, total, step_size);
  if ((st = set_rates(net, c, F, bafu_schedule_factor(c->schedule, total, total), &step_size, &step_max, q, w))) return st;
  if ((st = bafu_net_tangent(net))) return overflow_in_training(st, total, step_size);
  bafu_net_measure(net, q);
  for (size_t j = 0; j < J; ++j) lr[j] = bafu_net_layer_lr(net, j), lrb[j] = bafu_net_layer_bias_lr(net, j);
  const size_t f0 = t->first;
  const bafu_train_row row = {.step = total, .total = total, .epoch = c->epochs, .final = 1, .classify = tr->label != NULL,
                              .loss = F, .train_acc = acc, .test_loss = test_loss, .test_acc = test_acc,
                              .step_size = step_size, .J = J - f0, .labels = labels + f0, .q = q + f0 * BAFU_Q_COUNT,
                              .lr = lr + f0, .lr_bias = c->net.bias_var > 0 ? lrb + f0 : NULL};
  if ((st = check_row(t, &row))) return st;
  if (fn) fn(&row, ctx);
  return BAFU_OK;
}

bafu_status bafu_train_run(const bafu_train_config *c, bafu_train_fn fn, void *ctx) {
  bafu_trainer *t;
  bafu_status st = bafu_trainer_create(c, &t);
  if (st) return st;
  st = bafu_trainer_run(t, fn, ctx);
  bafu_trainer_free(t);
  return st;
}

/* The pilot's rows: the training loss of each row before step `stop`. */
typedef struct {
  size_t n, cap, stop;
  double *loss;
  int nomem;
} pilot_rows;

static int pilot_row(const bafu_train_row *r, void *ctx) {
  pilot_rows *c = ctx;
  if (r->step >= c->stop) return 1;
  if (c->n == c->cap) {
    const size_t cap = c->cap ? 2 * c->cap : 64;
    double *v = realloc(c->loss, cap * sizeof *v);
    if (!v) {
      c->nomem = 1;
      return 1;
    }
    c->loss = v, c->cap = cap;
  }
  c->loss[c->n++] = r->loss;
  return 0;
}

bafu_status bafu_train_pilot(const bafu_train_config *base, const double *grid, size_t ng, double *best) {
  double best_loss = INFINITY;
  *best = 0;
  for (size_t i = 0; i < ng; ++i) {
    bafu_train_config cfg = *base;
    if (cfg.control) cfg.control_speed = grid[i]; else cfg.auto_decay = grid[i];
    cfg.epochs = 1;
    cfg.log_every = 20;
    cfg.test_size = 100;
    cfg.save = NULL;
    cfg.resume = NULL;
    pilot_rows rows = {.stop = 100};
    const bafu_status st = bafu_train_run(&cfg, pilot_row, &rows);
    double mean = 0;
    for (size_t k = 1; k < rows.n; ++k) mean += rows.loss[k] / (double)(rows.n - 1); /* rows after step 0 */
    free(rows.loss);
    if (rows.nomem) return bafu_error(BAFU_ENOMEM, "out of memory");
    if (st && st != BAFU_ENUMERIC) return st;
    if (!st && rows.n > 1 && isfinite(mean) && mean < best_loss) best_loss = mean, *best = grid[i];
  }
  return BAFU_OK;
}
