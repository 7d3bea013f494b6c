/* bafu/train.h: mini-batch SGD of the engine's networks (bafu/net.h) on a
 * synthetic teacher-student regression or on Fashion-MNIST, with the feature
 * speed control of theory/engine.md 6 and theory/presets.md 5, logging the
 * per-layer measurements of the feature speed formula along the way.
 *
 * Each step: forward and backward on a mini-batch, then the layer rates
 * (control: those that give the target contributions), the ratio test of an
 * automatic or controlled step (one forward pass at the stepped weights: the
 * step must lower its batch's loss, else it is halved; theory/presets.md
 * 5.1), then the in-place update. At a
 * logged step the tangent pass runs first, so the row's measurements (angle,
 * feature speed, contributions, identity residual) are those of the step
 * actually taken.
 *
 * Thread safety: bafu_train_run keeps all its state in the call (its own
 * network, data and generator), so runs may proceed concurrently in different
 * threads (figure 8 does); the BLAS thread count is the caller's business. */
#ifndef BAFU_TRAIN_H
#define BAFU_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "bafu/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { BAFU_DATA_TEACHER, BAFU_DATA_FASHION_MNIST } bafu_data_kind;

/* The annealing factor a(t) of step t of T (theory/presets.md 5): it multiplies
 * the global step, or under control the speed and readout targets.
 * CONSTANT a = 1; LINEAR a = 1 - t/T; COSINE a = (1 + cos(pi t/T))/2. */
typedef enum { BAFU_SCHEDULE_CONSTANT, BAFU_SCHEDULE_LINEAR, BAFU_SCHEDULE_COSINE } bafu_schedule;

/* How the control shares the body's total contribution D_body among the body
 * layers (theory/presets.md 5): PRESET in proportion to the contributions the
 * preset's own rates would give on this batch (C*_j ~ lr0_j |grad_j|^2 / R_j,
 * so every body rate is lr0_j times one common factor); EVEN equally. */
typedef enum { BAFU_SPLIT_PRESET, BAFU_SPLIT_EVEN } bafu_control_split;

/* a(t) for step t (clamped to T - 1, so the last update and the final
 * measurement use the same positive factor) of T >= 1 steps. Returns 1 for
 * T = 0 or a value outside the enum (bafu_train_run refuses the latter).
 * Cannot fail. */
double bafu_schedule_factor(bafu_schedule s, size_t t, size_t T);

/* Receives the serialized training state at the start of a step (before
 * anything of that step is done): an opaque byte string, valid during the
 * call, from which bafu_train_run can continue (cfg.resume). Non-zero return:
 * training stops with BAFU_EIO. */
typedef int (*bafu_train_save_fn)(const void *state, size_t len, size_t step, void *ctx);

typedef struct {
  bafu_net_params net;  /* the student; net.batch is the mini-batch size, net.signal mse (teacher) or xent */
  bafu_data_kind data;
  size_t epochs;
  double lr;            /* global step multiplying the group rates; 0: automatic, starting at the value
                           that makes step 0's first-order loss decrease auto_decay F and then kept
                           by the ratio test at every step within a factor 2^-k of it
                           (theory/presets.md 5.1) */
  double auto_decay;    /* the automatic step's first-order decrease, as a fraction of F [0.5] */
  int control;          /* per-layer rates from target contributions at every step (then lr must be 0),
                           halved for a step by the ratio test while that step does not lower its
                           batch's loss */
  double control_rate;  /* gamma: the readout's target contribution gamma F */
  double control_speed; /* control: the body layers' contributions are scaled so that the last
                           hidden layer moves at |df_L|_rms = control_speed |f_L|_rms per step */
  bafu_control_split control_split; /* control: how the body shares D_body [preset] */
  bafu_schedule schedule; /* annealing of the global step or of the control targets [constant] */
  double forward_norm;  /* rho > 0: forward normalisation of every plain layer (0: off) */
  double backward_norm; /* r > 0: backward normalisation of every hidden signal (0: off) */
  size_t train_size;    /* samples used for training: 0 = all (Fashion-MNIST) or 8192 (teacher) */
  size_t test_size;     /* 0 = all (Fashion-MNIST, 10000) or 2048 (teacher) */
  size_t log_every;     /* a row every log_every steps (and at step 0 and the end) */
  uint64_t seed;        /* weights, data order, teacher */
  const char *data_dir; /* Fashion-MNIST directory, NULL for the default (bafu/idx.h) */
  size_t teacher_width, teacher_depth; /* the teacher MLP (ReLU, He init) */
  /* Checkpoints: with save != NULL and checkpoint_every > 0, save is called
   * with the run's ctx at the start of every step k > 0 that is a multiple of
   * checkpoint_every. resume (resume_len bytes, from save) continues such a
   * run: the rows from step k on, and the final result, are bit-identical to
   * those of the uninterrupted run (same BLAS and thread count). A state of
   * another configuration or bafu version, or a damaged one, is refused
   * (BAFU_EINVAL: the resume argument does not fit the run). */
  size_t checkpoint_every;
  bafu_train_save_fn save;
  const void *resume;
  size_t resume_len;
} bafu_train_config;

/* Defaults: Fashion-MNIST, 2 epochs, automatic lr (decrease 0.5 F), control
 * off (gamma 0.1, relative speed 0.35), log every 100 steps, seed 1, teacher 256 x 2;
 * net = bafu_net_params_default() with batch 64 and the xent signal. */
bafu_train_config bafu_train_config_default(void);

/* The defaults of `bafu train` and of the points of a training grid (bafu
 * sweep, task = train) for the data set `data`: bafu_train_config_default
 * with width 256, depth 8, net.step 0, and the data's own input dimension
 * and loss: 784 and xent with 10 outputs (fashion-mnist), 32 and mse with 1
 * output (teacher). Cannot fail. */
bafu_train_config bafu_train_config_command(bafu_data_kind data);

/* One logged row (per layer j < J). Test metrics are evaluated at every
 * logged step on the whole test set. */
typedef struct {
  size_t step;        /* updates done before this row's measurement */
  size_t total;       /* updates of the whole run (epochs x steps per epoch) */
  size_t epoch;       /* 1-based epoch of that step */
  int final;          /* the evaluation after the last update (no update follows) */
  int classify;       /* accuracies are meaningful (Fashion-MNIST) */
  double loss;        /* mean mini-batch loss over the steps since the previous row */
  double train_acc;   /* mean mini-batch accuracy over the same steps (classification) */
  double test_loss, test_acc;
  double step_size;   /* the global step (automatic or given; under control the step's targets' factor 2^-k) */
  size_t J;           /* layers in the row: from the first with a trained parameter at or below it */
  const int *labels;  /* J user-facing layer labels */
  const double *q;    /* J x BAFU_Q_COUNT measurements of this step (bafu_net_measure) */
  const double *lr;   /* J effective per-layer rates of this step (global step included) */
  const double *lr_bias; /* J effective bias rates (with biases; NULL without) */
} bafu_train_row;

/* Called for each logged row; a non-zero return stops training (BAFU_OK).
 * The row and the arrays it points to (labels, q, lr) are valid only during
 * the call: copy what is kept. */
typedef int (*bafu_train_fn)(const bafu_train_row *row, void *ctx);

/* Check a configuration without data: every field's range and combination
 * (bafu_net_params_check included). BAFU_EINVAL naming the option; BAFU_OK.
 * bafu_trainer_create calls it first. */
bafu_status bafu_train_config_check(const bafu_train_config *cfg);

/* A training run in two steps, so that everything that can be refused is
 * refused before anything is written: bafu_trainer_create checks the
 * configuration, loads or draws the data (the image size comes from the IDX
 * headers: training and test images must have the same size, equal to the
 * network's input dimension), checks the batch against the training set,
 * allocates the network (memory limit first) and restores cfg.resume;
 * bafu_trainer_run then trains (once). cfg is copied (its pointers, data_dir
 * and resume, must stay valid until the trainer is freed).
 * Errors of create: BAFU_EINVAL for an invalid configuration (naming the
 * option; also a batch larger than the training set, an input dimension that
 * is not the images' size, a resume state of another configuration or a
 * damaged one); BAFU_ELIMIT when a size exceeds the memory limit (refused up
 * front, bafu_memory_check); BAFU_ENOMEM; missing or corrupt data (bafu/idx.h:
 * BAFU_EIO, BAFU_EPARSE; also test images of another size than the training
 * images); BAFU_ELAPACK from an orthogonal initialisation. *out is NULL on
 * error; free with bafu_trainer_free (NULL-safe).
 * Errors of run: BAFU_ENUMERIC when the loss or the features stop being
 * finite or the batch loss exceeds 100 times the first ("training diverged:
 * ..."), when a logged row would hold a value that is not finite (naming the
 * quantity, the layer and the cause), when the control finds that the last
 * hidden layer does not move, or when the automatic step sees no loss
 * decrease at step 0; BAFU_EIO when cfg.save fails; BAFU_ENOMEM; BAFU_EINVAL
 * for a second run. The rows passed to fn before an error are valid rows
 * (finite); fn returning non-zero stops the run with BAFU_OK. */
typedef struct bafu_trainer bafu_trainer;
bafu_status bafu_trainer_create(const bafu_train_config *cfg, bafu_trainer **out);
bafu_status bafu_trainer_run(bafu_trainer *t, bafu_train_fn fn, void *ctx);
void bafu_trainer_free(bafu_trainer *t);

/* The label of the first layer the rows hold: the layers below it have no
 * trained parameter at or below them (no angle), and their rows are left out
 * (bafu_train_row's arrays start at this layer). Cannot fail. */
int bafu_trainer_first_label(const bafu_trainer *t);

/* The description of the trainer's network (bafu/layout.h). Cannot fail. */
struct bafu_layout;
const struct bafu_layout *bafu_trainer_layout(const bafu_trainer *t);

/* Create, run and free in one call; fn may be NULL (no rows). Errors: those
 * of bafu_trainer_create and bafu_trainer_run. */
bafu_status bafu_train_run(const bafu_train_config *cfg, bafu_train_fn fn, void *ctx);

/* A pilot for the step-size parameter (theory/presets.md 5): for each of the
 * ng candidates of grid, cfg->auto_decay (cfg->control_speed under control) is
 * set to it and the run cut to 1 epoch and 100 steps, a row every 20 steps,
 * 100 test samples; its score is the mean training loss of the rows after
 * step 0 (no test data used). *best is the candidate of the lowest finite
 * score, 0 if every candidate diverged (BAFU_ENUMERIC is a result here).
 * Errors: the first other error of a candidate's run; BAFU_ENOMEM. */
bafu_status bafu_train_pilot(const bafu_train_config *cfg, const double *grid, size_t ng, double *best);

#ifdef __cplusplus
}
#endif

#endif
