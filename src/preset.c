/* preset.c: the hyper-parameter scalings of bafu/preset.h. Every row is
 * derived in theory/presets.md (section numbers below refer to it). */
#include "bafu/preset.h"

#include "bafu/layout.h"

#include <gsl/gsl_sf_gamma.h>
#include <math.h>

static const char *const names[BAFU_PRESET_COUNT] = {"sp", "ntk", "mup", "fsc"};

const char *bafu_preset_name(bafu_preset preset) { return preset < BAFU_PRESET_COUNT ? names[preset] : "?"; }

bafu_status bafu_preset_rows(const bafu_net_params *p, bafu_preset preset, bafu_preset_row rows[3]) {
  if (preset >= BAFU_PRESET_COUNT) return bafu_error(BAFU_EINVAL, "preset: unknown preset");
  bafu_layout lay;
  bafu_status st = bafu_layout_build(p, &lay);
  if (st) return st;
  /* the groups' rules depend on whether the hidden entries are residual blocks,
     and on whether x is read by a dense layer (an MLP's first, an embedding) */
  const int sparse = p->inputs == BAFU_INPUTS_ONEHOT, resnet = bafu_layout_has_blocks(&lay);
  if (resnet && sparse && lay.stage[0].kind == BAFU_STAGE_BLOCK)
    return bafu_error(BAFU_EINVAL, "embed: a ResNet with inputs = onehot needs an embedding (its residual stream "
                                   "would start at a one-hot x)");
  const double n = (double)lay.width, L = (double)p->depth, s = p->sigma_w2;
  const double d = (double)lay.input_dim;
  const double x2 = sparse ? 1.0 : d; /* |x|^2 */
  const double beta = bafu_net_beta(p), b2 = beta * beta;
  const double K = (double)p->block_depth; /* a block's weight matrices (4.4) */
  rows[0] = (bafu_preset_row){.group = "input", .var = s / d, .var_formula = "s/d"};
  rows[1] = (bafu_preset_row){.group = "hidden", .var = s / n, .var_formula = "s/n"};
  rows[2] = (bafu_preset_row){.group = "output", .var = s / n, .var_formula = "s/n"};
  switch (preset) {
    case BAFU_PRESET_SP: /* section 3.1 */
      rows[0].lr = rows[1].lr = rows[2].lr = 1;
      rows[0].lr_formula = rows[1].lr_formula = rows[2].lr_formula = "1";
      break;
    case BAFU_PRESET_NTK: /* section 3.2: W = w / sqrt(fan_in), one rate on w */
      rows[0].lr = 1 / d, rows[0].lr_formula = "1/d";
      rows[1].lr = 1 / n, rows[1].lr_formula = "1/n";
      rows[2].lr = 1 / n, rows[2].lr_formula = "1/n";
      break;
    case BAFU_PRESET_MUP: /* section 3.3: C_in, C_hidden, C_out all Theta(1) */
      if (sparse) rows[0].var = s, rows[0].var_formula = "s";
      rows[0].lr = n / x2, rows[0].lr_formula = sparse ? "n" : "n/d";
      rows[1].lr = 1, rows[1].lr_formula = "1";
      rows[2].var = 1 / (n * n), rows[2].var_formula = "1/n^2";
      rows[2].lr = 1 / n, rows[2].lr_formula = "1/n";
      break;
    case BAFU_PRESET_FSC: /* section 4: |df_L|_rms ~ 1 and D ~ 1 at every depth */
      if (sparse) rows[0].var = s, rows[0].var_formula = "s";
      rows[2].lr = 1 / n, rows[2].lr_formula = "1/n";
      if (!resnet) { /* 4.1: cos ~ 1/sqrt(L) forces |b|^2 ~ L/n */
        rows[0].lr = n / (L * L * x2), rows[0].lr_formula = sparse ? "n/L^2" : "n/(d*L^2)";
        rows[1].lr = 1 / (L * L), rows[1].lr_formula = "1/L^2";
        rows[2].var = L / (n * n), rows[2].var_formula = "L/n^2";
      } else { /* 4.2: cos ~ 1, |b|^2 ~ 1/n, blocks share D ~ 1 */
        rows[0].lr = n / (L * x2), rows[0].lr_formula = sparse ? "n/L" : "n/(d*L)";
        rows[1].lr = 1 / (K * L * b2), rows[1].lr_formula = K > 1 ? "1/(K*L*beta^2)" : "1/(L*beta^2)";
        rows[2].var = 1 / (n * n), rows[2].var_formula = "1/n^2";
      }
      break;
    default:
      break;
  }
  /* section 6: a bias's contribution is lr_b s_j^2 |b_j|^2, its weights' lr s_j^2 |b_j|^2 |g_j|^2 */
  const double V = p->bias_var;
  switch (preset) {
    case BAFU_PRESET_SP: /* 6.1: the one rate of every parameter */
      for (int i = 0; i < 3; ++i) rows[i].lr_bias = 1, rows[i].lr_bias_formula = "1";
      break;
    case BAFU_PRESET_NTK: /* 6.1: c = sqrt(V) u with one rate on u */
      for (int i = 0; i < 3; ++i) rows[i].lr_bias = V, rows[i].lr_bias_formula = "V";
      break;
    case BAFU_PRESET_MUP: /* 6.2 */
      rows[0].lr_bias = rows[1].lr_bias = n, rows[0].lr_bias_formula = rows[1].lr_bias_formula = "n";
      rows[2].lr_bias = 1, rows[2].lr_bias_formula = "1";
      break;
    case BAFU_PRESET_FSC: /* 6.3 */
      rows[2].lr_bias = 1, rows[2].lr_bias_formula = "1";
      if (!resnet) {
        rows[0].lr_bias = rows[1].lr_bias = n / (L * L), rows[0].lr_bias_formula = rows[1].lr_bias_formula = "n/L^2";
      } else {
        rows[0].lr_bias = n / L, rows[0].lr_bias_formula = "n/L";
        rows[1].lr_bias = n / (K * L * b2), rows[1].lr_bias_formula = K > 1 ? "n/(K*L*beta^2)" : "n/(L*beta^2)";
      }
      break;
    default:
      break;
  }
  for (int i = 0; i < 3; ++i)
    if (!(isfinite(rows[i].lr) && isfinite(rows[i].lr_bias) && isfinite(rows[i].var) && rows[i].var > 0))
      return bafu_error(BAFU_EINVAL, "preset: the %s scaling is not finite for these options (branch scale 0?)",
                        names[preset]);
  return BAFU_OK;
}

bafu_status bafu_preset_apply(bafu_net_params *p, bafu_preset preset) {
  bafu_preset_row rows[3];
  bafu_status st = bafu_preset_rows(p, preset, rows);
  if (st) return st;
  const double d = (double)(p->input_dim ? p->input_dim : p->width);
  p->sigma2_input = rows[0].var * d;
  p->sigma2_output = rows[2].var * (double)p->width;
  p->lr_input = rows[0].lr;
  p->lr_hidden = rows[1].lr;
  p->lr_output = rows[2].lr;
  p->lr_bias_input = rows[0].lr_bias;
  p->lr_bias = rows[1].lr_bias;
  p->lr_bias_output = rows[2].lr_bias;
  return BAFU_OK;
}

/* kappa_k = sqrt(k) E[1/chi_k] = sqrt(k/2) Gamma((k-1)/2) / Gamma(k/2)
 * (theory/presets.md 2.2); infinite for k = 1. */
double bafu_sensitivity_kappa(size_t k) {
  if (k < 2) return INFINITY;
  const double kk = (double)k;
  return sqrt(kk / 2) * exp(gsl_sf_lngamma((kk - 1) / 2) - gsl_sf_lngamma(kk / 2));
}
