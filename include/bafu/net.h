/* bafu/net.h: finite-width networks with forward, backward, tangent and
 * finite-step passes, and the per-layer measurements of the feature speed
 * formula.
 *
 * Derivations of every pass and quantity: theory/engine.md.
 *
 * A network is a chain of trained dense layers j = 0..J-1 with features
 * f_j (fan_out x m, column-major, one column per sample):
 *   plain layer    f_j = W_j g_j,                   g_j = x (first MLP layer) or phi(f_{j-1})
 *   residual block f_j = f_{j-1} + beta W_j phi(f_{j-1})   (f_{-1} = x without embedding)
 * MLP:    layers 1..L are plain (layer 1 reads x).
 * ResNet: optional plain embedding f_0 = W_0 x, then residual blocks 1..L,
 *         beta = B * L^(-A).
 * With the mse signal a plain readout y = V phi(f_L) (layer L+1) and the loss
 * F = |y - t|^2 / (2m) are appended (targets t N(0, 1), or fixed); with the
 * xent signal the same readout and the softmax cross-entropy
 * F = -(1/m) sum_a log softmax(y_a)_{c_a} over k = outputs classes (targets
 * one-hot columns, drawn uniformly or fixed); with the probe signal b_L is a
 * Gaussian vector with N(0, 1/n) entries and F = <b_L, f_L>.
 *
 * Learning-rate groups: "input" = the layer that reads x (MLP layer 1, ResNet
 * embedding); "output" = the mse readout; "hidden" = every other layer. One
 * gradient step of size eta changes W_j by -eta * lr_j * grad_{W_j} F.
 *
 * Usage: p = defaults, set fields; bafu_net_alloc(&p, &net) sizes every buffer
 * once; then per Monte Carlo draw bafu_net_draw() and bafu_net_run(), and
 * bafu_net_measure(). No allocation happens after bafu_net_alloc.
 *
 * Layers and units. A "layer" j < bafu_net_nlayers(net) is an entry of the
 * network's description: one row of the measurements (a dense layer, or a
 * residual block). A "unit" u < bafu_net_nunits(net) is one weight matrix: a
 * block with block_depth K has K units, every other layer one (so units and
 * layers coincide when K = 1). Weights, biases and their gradients are per
 * unit; features, signals, rates and contributions per layer (a block's K
 * matrices share its rates, and its contribution is theirs summed).
 *
 * Conventions: a layer index j must be < bafu_net_nlayers(net), a unit index
 * u < bafu_net_nunits(net) (neither is checked);
 * caller arrays are not retained (inputs and targets are copied); pointers
 * returned into a network are owned by it. The passes must run in order
 * (forward before backward, backward before tangent, step, update and the
 * measurements); out of order they compute on stale buffers (no error).
 *
 * Thread safety: no global state (bafu_memory_limit_bytes reads the
 * environment). Distinct networks may be used concurrently; one network must
 * not be used from two threads at once. The const functions only read it and
 * may run concurrently with each other, but not with any non-const call:
 * bafu_net_weight and every pass may generate weights into the network. */
#ifndef BAFU_NET_H
#define BAFU_NET_H

#include <stddef.h>
#include <stdint.h>

#include "bafu/act.h"
#include "bafu/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { BAFU_ARCH_MLP, BAFU_ARCH_RESNET } bafu_arch;
typedef enum { BAFU_INIT_GAUSSIAN, BAFU_INIT_ORTHOGONAL } bafu_init;
typedef enum { BAFU_SIGNAL_PROBE, BAFU_SIGNAL_MSE, BAFU_SIGNAL_XENT } bafu_signal;
typedef enum { BAFU_INPUTS_GAUSSIAN, BAFU_INPUTS_ONEHOT } bafu_inputs;
typedef enum { BAFU_RNG_GSL, BAFU_RNG_FAST } bafu_rng_kind; /* bafu/rng.h */
/* A residual block's branch input: phi(f_{l-1}) (none) or phi(f_{l-1} / |f_{l-1}|_rms),
 * the rms over each sample's n entries (rms, pre-LN style; theory/engine.md 1.4). */
typedef enum { BAFU_BRANCH_NORM_NONE, BAFU_BRANCH_NORM_RMS } bafu_branch_norm;

typedef struct {
  bafu_arch arch;
  size_t width;      /* n: width of every hidden feature */
  size_t depth;      /* L: number of hidden layers / residual blocks */
  size_t input_dim;  /* d: 0 means "= width" */
  size_t batch;      /* m: samples per forward pass */
  size_t outputs;    /* k: readout dimension (mse signal only) */
  bafu_act act;
  double sigma_w2;   /* weights have entries of variance sigma_w2 / fan_in */
  double sigma2_input;  /* the layer reading x: variance sigma2_input / d (0: = sigma_w2) */
  double sigma2_output; /* the readout: variance sigma2_output / n (0: = sigma_w2) */
  bafu_inputs inputs;   /* drawn inputs: N(0, 1) entries (|x|_rms ~ 1) or one-hot e_i, i uniform */
  bafu_init init;
  double branch_scale;    /* B */
  double branch_exponent; /* A: beta = B * L^(-A) */
  int embed;              /* ResNet: trained input embedding f_0 = W_0 x */
  bafu_branch_norm branch_norm; /* ResNet: normalised branch inputs (none) */
  size_t block_depth;     /* ResNet: K >= 1 layers per residual branch (1): block l is
                             f_l = f_{l-1} + beta W_{l,K} phi(... phi(W_{l,1} phi(f_{l-1}))),
                             each W_{l,k} trained at the hidden rate; rows stay one per block */
  double lr_input, lr_hidden, lr_output;
  double bias_var;        /* V >= 0: every layer (and every block's branch) gets a bias c with N(0, V)
                             entries, f = W g + c (blocks: f = f_prev + beta (W phi(f_prev) + c));
                             0: no biases (theory/engine.md 1.3) */
  double lr_bias;         /* learning rate of the hidden layers' and blocks' biases (with bias_var > 0) [1] */
  double lr_bias_input, lr_bias_output; /* the biases of the layer reading x and of the readout [1] */
  bafu_signal signal;
  double step;            /* eta >= 0 of the actual finite step; 0: no step (step columns 0) */
  bafu_rng_kind rng;      /* fast: xoshiro256++ lanes + ziggurat (default); gsl: mt19937 + ziggurat */
  int regenerate;         /* fast rng only: keep one weight matrix and regenerate each
                             layer's weights from its own substream when a pass needs
                             them (memory ~ 1 layer instead of L; 4 regenerations per draw) */
  int conditional;        /* Gaussian init only: never draw W; draw each product with W_j from
                             its exact conditional law given the earlier products with W_j in
                             this draw (theory/engine.md 7): the same law as stored weights,
                             O(n m) memory per layer. No bafu_net_weight (NULL), update, NTK.
                             Per layer and draw it answers 3m new right products (one
                             forward, tangent and step) and m left ones (backward); a pass
                             needing more (a second step with another eta) returns BAFU_ELIMIT. */
} bafu_net_params;

/* The defaults of `bafu mc` (see README): ReLU MLP, n = 512, L = 16, ...
 * Cannot fail. */
bafu_net_params bafu_net_params_default(void);

/* Check a parameter set: BAFU_EINVAL (the message names the offending option)
 * for zero sizes, non-finite or out-of-range numbers, an activation or input
 * kind outside its enum, and invalid combinations (xent with < 2 outputs,
 * regenerate without the fast rng, embed on an MLP, ResNet without embed and
 * d != n, non-finite beta, MLP with lr_input = lr_hidden = 0). The arch, init,
 * signal and rng enums are not range-checked. */
bafu_status bafu_net_params_check(const bafu_net_params *p);

/* The init variance gains of the layer reading x and of the readout
 * (sigma2_input / sigma2_output, or sigma_w2 where those are <= 0). p is not
 * checked; cannot fail. */
double bafu_net_gain_input(const bafu_net_params *p);
double bafu_net_gain_output(const bafu_net_params *p);

/* beta = B * L^(-A) for ResNets, 1 for MLPs. p is not checked (beta may be
 * infinite or NAN for invalid p); cannot fail. */
double bafu_net_beta(const bafu_net_params *p);

/* Estimate of the bytes bafu_net_alloc allocates, the number it compares with
 * the memory limit (generous: every layer sized as the largest, the LAPACK
 * workspace taken as 64 max(n, d) doubles); SIZE_MAX if it overflows. p is
 * not checked; cannot fail. */
size_t bafu_net_memory_bytes(const bafu_net_params *p);

/* The limit of bafu_memory_check (so of bafu_net_alloc and every other
 * allocation checked up front): 80% of physical memory (8 GiB if that
 * cannot be determined), or the value of the environment variable
 * BAFU_MEMORY_LIMIT_MB (MiB) if set to a positive whole number. An empty
 * value counts as unset; any other value (a sign, space, unit or exponent,
 * 0) is malformed: bafu_memory_limit_check and bafu_memory_check refuse it,
 * and this function then returns the physical-memory default.
 * Read at every call; cannot fail. */
size_t bafu_memory_limit_bytes(void);

/* BAFU_EINVAL, naming the variable and its value, if BAFU_MEMORY_LIMIT_MB is
 * set to a malformed value (see above); BAFU_OK otherwise. */
bafu_status bafu_memory_limit_check(void);

/* Refuse up front a request that would need `bytes` (an estimate, as a double
 * so that it cannot overflow) when that exceeds bafu_memory_limit_bytes():
 * BAFU_ELIMIT with the message "<what>: about X GiB needed, more than the
 * limit of Y GiB (...)", naming the options to reduce in `what` (not NULL,
 * not retained); a NAN estimate is refused too; BAFU_EINVAL for a malformed
 * BAFU_MEMORY_LIMIT_MB. BAFU_OK otherwise. */
bafu_status bafu_memory_check(double bytes, const char *what);

typedef struct bafu_net bafu_net;

/* Allocate every buffer for `p` (copied). Errors: BAFU_EINVAL for invalid p
 * (bafu_net_params_check); BAFU_ELIMIT (with the estimate in the message) if
 * the estimate exceeds bafu_memory_limit_bytes(); BAFU_ENOMEM if an allocation fails;
 * BAFU_ELAPACK if the QR workspace query fails (orthogonal init). *out is NULL
 * on error; the caller owns *out and releases it with bafu_net_free
 * (NULL-safe). */
bafu_status bafu_net_alloc(const bafu_net_params *p, bafu_net **out);
void bafu_net_free(bafu_net *net);

/* Number of measured layers J, and the user-facing index of layer j
 * (MLP: 1..L, ResNet: 0 for the embedding, 1..L, then L+1 for a readout),
 * its fan-in and fan-out, and its current learning rate. Cannot fail. */
size_t bafu_net_nlayers(const bafu_net *net);
/* Number of units (weight matrices), the layer unit u belongs to, and its
 * shape. Cannot fail. */
size_t bafu_net_nunits(const bafu_net *net);
size_t bafu_net_unit_layer(const bafu_net *net, size_t u);
size_t bafu_net_unit_fan_in(const bafu_net *net, size_t u);
size_t bafu_net_unit_fan_out(const bafu_net *net, size_t u);
/* The description the network was built from (bafu/layout.h), owned by the
 * network. Cannot fail. */
struct bafu_layout;
const struct bafu_layout *bafu_net_layout(const bafu_net *net);
/* The parameters the network was allocated with (a copy owned by the
 * network). Cannot fail. */
const bafu_net_params *bafu_net_get_params(const bafu_net *net);
int bafu_net_layer_label(const bafu_net *net, size_t j);
size_t bafu_net_layer_fan_in(const bafu_net *net, size_t j);
size_t bafu_net_layer_fan_out(const bafu_net *net, size_t j);
double bafu_net_layer_lr(const bafu_net *net, size_t j);

/* Fix the inputs (d x m column-major, copied; not checked for finiteness) for
 * every later draw; NULL goes back to drawing inputs (p.inputs) with each
 * draw. Cannot fail. */
void bafu_net_set_inputs(bafu_net *net, const double *x);

/* Fix the targets (k x m, copied; for xent one-hot columns, not checked) for
 * every later draw; NULL goes back to drawing them. Cannot fail. */
void bafu_net_set_targets(bafu_net *net, const double *t);

/* Draw number `draw` of the stream `seed`: inputs (unless fixed), weights in
 * layer order, then the probe or the readout and targets. The numbers depend
 * only on (seed, draw). With the fast generator and Gaussian init (or with
 * p.regenerate) weights are generated lazily, when a pass first needs them.
 * Errors: BAFU_ELAPACK if the QR of an orthogonal init fails (with
 * p.regenerate only layer 0 is checked here); cannot fail otherwise. */
bafu_status bafu_net_draw(bafu_net *net, uint64_t seed, uint64_t draw);

/* The passes. run = forward, backward, tangent, step(p->step) (skipped if 0;
 * the step columns of the measurements are then 0). Each pass returns
 * BAFU_ENUMERIC if its output at the far end is not finite (forward, tangent,
 * step: the top layer; backward: the bottom layer's signal); with
 * p.conditional a pass may also return BAFU_ELIMIT (more new products with a
 * layer than its capacity) or BAFU_ENUMERIC (a non-finite vector reached a
 * product); run returns the first error. */
bafu_status bafu_net_forward(bafu_net *net);
bafu_status bafu_net_backward(bafu_net *net);
bafu_status bafu_net_tangent(bafu_net *net);
/* Forward pass with every W_j replaced by W_j - eta lr_j grad_j F, into the
 * "stepped" features; the weights themselves are not modified. eta is not
 * checked (a non-finite eta gives BAFU_ENUMERIC). */
bafu_status bafu_net_step(bafu_net *net, double eta);
bafu_status bafu_net_run(bafu_net *net);

/* Training (theory/engine.md 6). bafu_net_update applies the step to the
 * weights in place, W_j -= eta lr_j s_j b_j g_j^T (a rank-m product, never a
 * stored gradient), after bafu_net_backward. Needs stored weights (not
 * p.regenerate). The layer learning rate can be overridden per layer
 * (bafu_net_set_layer_lr also rescales the stored contribution C_j, so a
 * measurement after it reports the new C_j; with biases C_j = (lr_j
 * |grad_W|^2 + lr_b,j |grad_c|^2) / R_j); bafu_net_layer_grad_sq is
 * |s_j b_j g_j^T|^2 for the stored signals of the last backward pass: the
 * squared gradient norm, or R_j^2 times it under backward normalisation
 * (the update direction's norm, theory/engine.md 6.5).
 * bafu_net_update: BAFU_EINVAL with p.regenerate, p.conditional or a non-finite eta; it does
 * not check the new weights (a non-finite weight shows as BAFU_ENUMERIC in
 * the next forward pass). bafu_net_set_layer_lr does not check lr (any double
 * is stored) and cannot fail; bafu_net_layer_grad_sq cannot fail. */
bafu_status bafu_net_update(bafu_net *net, double eta);
void bafu_net_set_layer_lr(bafu_net *net, size_t j, double lr);
/* Biases (p.bias_var > 0; theory/engine.md 1.3): layer j's bias rate, set it
 * (ignored for a network without biases; rescales C_j as above), and scale
 * both of layer j's rates from those the network was built with: lr_j = factor
 * lr0_j, lr_b,j = factor lr_b0,j (the automatic step and the control of
 * training). bafu_net_update moves the bias too: c_j -= eta lr_b,j s_j B_j 1.
 * Cannot fail. */
void bafu_net_set_layer_bias_lr(bafu_net *net, size_t j, double lrb);
double bafu_net_layer_bias_lr(const bafu_net *net, size_t j);
void bafu_net_scale_layer_rates(bafu_net *net, size_t j, double factor);
/* Unit u's bias (fan_out entries, owned by the network; editable like the
 * weights, redrawn by the next draw), NULL without biases; and grad_{c_u} F
 * = s_u B_u 1 / R_u of the last passes into the caller's out (fan_out
 * doubles). Cannot fail. */
double *bafu_net_bias(bafu_net *net, size_t u);
void bafu_net_bias_grad(const bafu_net *net, size_t u, double *out);
double bafu_net_layer_grad_sq(const bafu_net *net, size_t j);
/* C_j = lr_j |grad_j|^2 / R_j: layer j's contribution to the first-order loss
 * decrease at its current rate and the last backward pass (theory/engine.md
 * 6.3, 6.5). Cannot fail. */
double bafu_net_layer_contribution(const bafu_net *net, size_t j);
/* Set layer j's learning rate so that its first-order contribution C_j (the
 * loss decrease per unit step from updating layer j) equals `target` >= 0
 * (theory/engine.md 6.3, with backward normalisation 6.5), after
 * bafu_net_backward. With biases both rates are set, in the ratio the network
 * was built with (bafu_net_scale_layer_rates). BAFU_EINVAL if target is negative or not finite;
 * BAFU_ENUMERIC if the layer's gradient is zero and target > 0. target = 0
 * sets the rate to 0. */
bafu_status bafu_net_set_layer_contribution(bafu_net *net, size_t j, double target);
/* Forward normalisation (theory/engine.md 6.4): with target > 0 every plain
 * layer (MLP layers and the ResNet embedding, not the readout) gets a scale
 * a_j, reset in each forward pass so that |f_j|_rms = target on the batch and
 * held constant by the other passes; frozen = 1 keeps the last scales (for
 * evaluation). target = 0 switches it off (scales back to 1). BAFU_EINVAL if
 * target is negative or not finite, or target > 0 for a ResNet without
 * embedding (nothing is changed then). */
bafu_status bafu_net_set_forward_norm(bafu_net *net, double target, int frozen);
/* Backward normalisation (theory/engine.md 6.5): with target > 0 the backward
 * pass rescales every hidden signal b_j (not the top one) to |b_j| = target
 * before propagating it further; the forward pass is unchanged. The
 * measurements still report the true gradient quantities (|b_j|, C_j and D_j
 * of the true backward vector), so the identity holds with them. target = 0
 * switches it off. BAFU_EINVAL if target is negative or not finite. */
bafu_status bafu_net_set_backward_norm(bafu_net *net, double target);
/* The scale a_j of plain layer j (1 unless forward normalisation set it; for
 * a residual block: beta). Cannot fail. */
double bafu_net_layer_scale(const bafu_net *net, size_t j);
/* Set the forward-normalisation scale a_j of plain layer j (a restored
 * training state; the next unfrozen forward pass resets it). BAFU_EINVAL if j
 * is out of range, layer j is a residual block (its scale is beta) or a is not
 * finite and positive. */
bafu_status bafu_net_set_layer_scale(bafu_net *net, size_t j, double a);
/* Predicted classes (argmax of the readout, xent/mse with k > 1; the first
 * maximum on ties) for the m samples of the last forward pass, into the
 * caller's cls[m]. Cannot fail. */
void bafu_net_predict(const bafu_net *net, int *cls);

/* Loss F at the current weights (after forward) and after the step (after
 * bafu_net_step). Probe: F = <b_L, f_L> (summed over the batch); mse:
 * |y - t|^2 / (2m); xent: the mean cross-entropy. No status: a non-finite
 * value is returned as is. */
double bafu_net_loss(const bafu_net *net);
double bafu_net_step_loss(const bafu_net *net);

/* Views into the workspace (fan_out x m or fan_out x fan_in, column-major).
 * bafu_net_weight returns unit u's weights of the current draw, generating
 * them first if needed: with the fast generator and Gaussian init the weights
 * are generated on first use after bafu_net_draw, so edit them only through a
 * pointer fetched after the draw (an edit made before the draw, or before the
 * layer was generated, is overwritten). With p.regenerate it regenerates layer
 * j into the single weight buffer: the pointer is valid until the next call or
 * pass, and edits to it are lost. With p.conditional there are no weights:
 * it returns NULL. The other views (features, backward
 * signals, tangents, stepped features, inputs) stay valid until bafu_net_free;
 * their contents are overwritten by the next draw or pass. Cannot fail. */
double *bafu_net_weight(bafu_net *net, size_t u);
/* 1 if the network has weight matrices (bafu_net_weight is usable), 0 with
 * p.conditional. Cannot fail. */
int bafu_net_has_weights(const bafu_net *net);
const double *bafu_net_feature(const bafu_net *net, size_t j);
const double *bafu_net_backward_signal(const bafu_net *net, size_t j);
const double *bafu_net_feature_tangent(const bafu_net *net, size_t j);
const double *bafu_net_feature_stepped(const bafu_net *net, size_t j);
const double *bafu_net_inputs(const bafu_net *net);
/* Unit u's own features (fan_out x m, same validity as the views above): the
 * pre-activation h_{l,k} of an inner unit of a block (the next unit reads
 * phi of it), and for a row's last unit the row's features, the same array
 * as bafu_net_feature. Cannot fail. */
const double *bafu_net_unit_feature(const bafu_net *net, size_t u);

/* The full (true) gradient matrix grad_{W_u} F (fan_out x fan_in) of unit u, of the last
 * forward and backward passes into the caller's `out` (fan_out * fan_in
 * doubles). For tests and dense kernels; the passes never form it. Cannot
 * fail. */
void bafu_net_weight_grad(const bafu_net *net, size_t u, double *out);

/* The empirical learning-rate-weighted NTK of the readout for the current
 * draw (after bafu_net_forward; mse signal and one output only):
 * theta[a + b m] = sum_j lr_j <d y_a / d W_j, d y_b / d W_j>, m x m. It runs
 * one backward pass per sample and overwrites the stored backward signals
 * (run bafu_net_backward again before measuring). work: U n m doubles (U = bafu_net_nunits),
 * theta: m * m doubles, both the caller's. BAFU_EINVAL unless the signal is
 * mse with k = 1, with backward normalisation on, or with p.conditional (it
 * needs m backward passes per draw). */
bafu_status bafu_net_empirical_ntk(bafu_net *net, double *work, double *theta);

/* Per-layer measured quantities (theory/engine.md section 3). */
typedef enum {
  BAFU_Q_COS,        /* cos(theta_l) = <df_l, -b_l> / (|df_l| |b_l|) */
  BAFU_Q_SPEED,      /* |df_l| (first-order change per unit step) */
  BAFU_Q_BNORM,      /* |b_l| */
  BAFU_Q_DECAY,      /* D_l = sum_{k <= l} C_k */
  BAFU_Q_BAFU,       /* D_l / |b_l| */
  BAFU_Q_IDRES,      /* |<-b_l, df_l> - D_l| / D_l */
  BAFU_Q_CONTRIB,    /* C_l = lr_l |grad_l F|^2 */
  BAFU_Q_FRMS,       /* |f_l|_rms */
  BAFU_Q_SPEED_RMS,  /* |df_l|_rms */
  BAFU_Q_STEP,       /* |Delta f_l| after the actual step */
  BAFU_Q_STEP_COS,   /* cos(Delta f_l, -b_l) */
  BAFU_Q_STEP_DEV,   /* |Delta f_l - eta df_l| / |eta df_l| */
  BAFU_Q_SENS,       /* sensitivity |df_l|_rms / D_top: feature speed per unit first-order
                        loss decrease of the whole step (D_top = D of the last layer) */
  BAFU_Q_COUNT
} bafu_quantity;

/* Column name of a quantity ("cos_theta", "feature_speed", ...): a static
 * string, "?" outside the enum; cannot fail. */
const char *bafu_quantity_name(bafu_quantity q);

/* Fill the caller's out[j * BAFU_Q_COUNT + q] (J * BAFU_Q_COUNT doubles) for
 * every layer j (after bafu_net_run). No status: a quantity that is undefined
 * for the draw is NAN or infinite (e.g. cos and the identity residual when
 * |df_l|, |b_l| or D_l is 0, the sensitivity when D_top = 0). The step
 * columns refer to the last bafu_net_step (0 after a run with p.step = 0). */
void bafu_net_measure(const bafu_net *net, double *out);

/* Degenerate draws (theory/engine.md 3.5). A draw is degenerate when a
 * measured quantity of a layer with a trained parameter at or below it is
 * not finite, or its loss decay D_l is 0: the draw then has no defined angle
 * there. The cause, in the order checked: */
typedef enum {
  BAFU_DRAW_OK,
  BAFU_DRAW_DEAD,       /* a layer's activation is zero on every unit and sample (a dead ReLU layer,
                           likely at small widths): nothing above it moves */
  BAFU_DRAW_VANISHED,   /* the features (or the inputs) are zero: underflow, e.g. a tiny sigma-w2 */
  BAFU_DRAW_NO_SIGNAL,  /* a backward signal is zero (underflow, or a loss with zero gradient) */
  BAFU_DRAW_STEP,       /* the actual step changes no feature (a step below rounding) */
  BAFU_DRAW_UNDEFINED,  /* another quantity without a value (e.g. underflow inside a product) */
  BAFU_DRAW_COUNT
} bafu_draw_status;

/* Check a draw after bafu_net_run and bafu_net_measure (q: its J x
 * BAFU_Q_COUNT measurements): BAFU_DRAW_OK, or the cause, with *label the
 * user-facing index of the layer where it shows (may be NULL). Cannot fail. */
bafu_draw_status bafu_net_check_draw(const bafu_net *net, const double *q, int *label);

/* A short description of a cause ("a layer with no active unit", ...); a
 * static string, cannot fail. */
const char *bafu_draw_status_string(bafu_draw_status s);

/* Read a batch from a text table (bafu/text.h: LF, CRLF or CR line ends, no
 * NUL byte, any finite double): one sample per row, numbers separated by
 * spaces, tabs or commas, '#' starts a comment, blank lines are skipped.
 * Returns x as d x m column-major (malloc'd, caller frees). Errors: BAFU_EIO
 * (cannot open or read), BAFU_EPARSE (a NUL byte, a token that is not a
 * finite number, rows of different lengths, no samples), BAFU_ELIMIT (the
 * batch or a line exceeds the memory limit), BAFU_ENOMEM. On error *x = NULL
 * and *d = *m = 0. */
bafu_status bafu_read_inputs(const char *path, double **x, size_t *d, size_t *m);

#ifdef __cplusplus
}
#endif

#endif
