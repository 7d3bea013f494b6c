/* bafu/preset.h: hyper-parameter scalings (parametrisations) of the engine's
 * networks: initialisation variance and learning rate of the input, hidden
 * and output layers as functions of width n, depth L, input dimension d and
 * the input kind (dense |x|_rms ~ 1, or one-hot), derived from the feature
 * speed formula in theory/presets.md.
 *
 *   sp   standard: fan-in init everywhere, one learning rate for all layers
 *   ntk  NTK parametrisation: fan-in init, learning rates 1/fan_in
 *   mup  maximal update (muP, SGD): readout variance 1/n^2, every layer's
 *        contribution Theta(1) at any width
 *   fsc  feature speed control: the last hidden feature moves by Theta(1)
 *        (|df_L|_rms ~ 1) and the loss decreases by Theta(1) per step, at
 *        every width and depth
 *
 * The hidden-layer gain sigma_w2 (2 for ReLU) and the bias variance are kept;
 * a preset sets sigma2_input, sigma2_output, the three weight learning rates
 * and the three bias learning rates of the params (theory/presets.md 6).
 *
 * Thread safety: no global state; every function may run concurrently. */
#ifndef BAFU_PRESET_H
#define BAFU_PRESET_H

#include "bafu/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { BAFU_PRESET_SP, BAFU_PRESET_NTK, BAFU_PRESET_MUP, BAFU_PRESET_FSC, BAFU_PRESET_COUNT } bafu_preset;

/* "sp", "ntk", "mup", "fsc": a static string, "?" outside the enum; cannot
 * fail. */
const char *bafu_preset_name(bafu_preset preset);

/* One layer group of a preset: the init variance of an entry and the
 * learning rate, as numbers for p and as formulas. */
typedef struct {
  const char *group;   /* "input", "hidden", "output" */
  double var;          /* variance of one weight entry */
  double lr;           /* learning rate (multiplies the global step) */
  const char *var_formula;
  const char *lr_formula;
  double lr_bias;      /* learning rate of the group's biases (used with bias_var > 0) */
  const char *lr_bias_formula;
} bafu_preset_row;

/* The three rows (input, hidden, output) of `preset` into the caller's
 * rows[3], for the shape of p (arch, width, depth, input_dim, inputs, branch
 * scale and exponent, sigma_w2); the formula strings are static. Errors
 * (BAFU_EINVAL): an unknown preset, p failing bafu_net_params_check, a ResNet
 * with one-hot inputs and no embedding (its stream would start at a one-hot
 * x), or a scaling that is not finite (e.g. fsc with branch scale 0). */
bafu_status bafu_preset_rows(const bafu_net_params *p, bafu_preset preset, bafu_preset_row rows[3]);

/* Apply the rows to p: sigma2_input = var_in d, sigma2_output = var_out n,
 * lr_input, lr_hidden, lr_output, lr_bias_input, lr_bias, lr_bias_output.
 * Errors as bafu_preset_rows; p is changed
 * only on success. */
bafu_status bafu_preset_apply(bafu_net_params *p, bafu_preset preset);

/* kappa_k = sqrt(k) E[1/chi_k]: the Monte Carlo mean of the per-draw
 * sensitivity with k Gaussian-target outputs is the theory's value times
 * kappa_k (theory/presets.md 2.2). INFINITY for k < 2 (no mean); cannot
 * fail. */
double bafu_sensitivity_kappa(size_t k);

#ifdef __cplusplus
}
#endif

#endif
