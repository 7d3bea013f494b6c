/* bafu/layout.h: the one description of a network's layers, built once from
 * its parameters and read by every module: the engine's passes (bafu/net.h),
 * the kernel recursions (bafu/kernel.h), the moment theory (bafu/moments.h),
 * the spectra (bafu/spectrum.h), the presets (bafu/preset.h) and training.
 * No module works out which layers exist, their labels, shapes, rates or kinds
 * on its own (doc/design.md).
 *
 * A network is an ordered list of entries j = 0..J-1, one per measured layer
 * (one row of `bafu mc`), grouped into stages: runs of entries of one kind and
 * one shape. A stage is
 *   dense: f_j = a W_j g_j + c_j,  g_j = x (the first entry of a stage that
 *          reads the inputs) or phi(f_{j-1});
 *   block: f_j = f_{j-1} + beta (W_j phi(u_{j-1}) + c_j), f_{-1} = x, with
 *          u = f (plain) or f / |f|_rms per sample (norm); with depth K > 1
 *          the branch has K layers, f_j = f_{j-1} + beta h_K with
 *          h_1 = W_{j,1} phi(u_{j-1}) + c_{j,1}, h_k = W_{j,k} phi(h_{k-1}) + c_{j,k}:
 *          one entry (one row), K weight matrices ("units");
 * the biases c_j exist when bias_var > 0.
 * The MLP is [dense reading x] [dense x (L-1)] ([readout]); the ResNet is
 * ([dense embedding reading x]) [block x L] ([readout]). A description has at
 * most BAFU_LAYOUT_MAX_STAGES stages whatever the depth, so depth 10^7 costs
 * nothing to describe.
 *
 * Thread safety: a layout is a plain value; every function only reads it. */
#ifndef BAFU_LAYOUT_H
#define BAFU_LAYOUT_H

#include <stddef.h>

#include "bafu/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { BAFU_STAGE_DENSE, BAFU_STAGE_BLOCK } bafu_stage_kind;

/* The learning-rate group of an entry (bafu/net.h): the layer reading x,
 * the hidden layers and blocks, the readout. */
typedef enum { BAFU_GROUP_INPUT, BAFU_GROUP_HIDDEN, BAFU_GROUP_OUTPUT } bafu_lr_group;

typedef struct {
  bafu_stage_kind kind;
  size_t count;        /* entries in the run (>= 1) */
  int first_label;     /* the user-facing label of its first entry; labels count up by one */
  size_t fan_in;       /* rows of the vector the entry's weights multiply */
  size_t fan_out;      /* rows of its features */
  int reads_x;         /* the first entry's input stream is x (dense: g = x itself, no activation) */
  bafu_act act;        /* the activation applied to the input stream (not to x in a dense stage) */
  double gain;         /* weights: N(0, gain / fan_in) entries (scaled Haar with orthogonal init) */
  double scale;        /* the forward factor: beta for blocks, 1 for dense layers */
  bafu_lr_group group;
  double lr;           /* the group's learning rate */
  int readout;         /* the readout y = V phi(f_L) of the mse and xent signals */
  double bias_var;     /* biases with N(0, bias_var) entries, added to W g (in a block, before beta); 0: none */
  double lr_bias;      /* the biases' learning rate, the group's (meaningful with bias_var > 0) */
  int norm;            /* block: the branch reads phi(f_{j-1} / |f_{j-1}|_rms), per sample (branch_norm rms) */
  size_t depth;        /* weight matrices per entry: a block's K (block_depth), 1 for a dense entry; every
                          inner matrix is n x n with the stage's gain, rates and biases, forward factor 1 */
} bafu_stage;

#define BAFU_LAYOUT_MAX_STAGES 8

typedef struct bafu_layout {
  size_t nstages;
  size_t J;            /* entries: the sum of the stages' counts */
  size_t units;        /* weight matrices: the sum of count * depth */
  bafu_stage stage[BAFU_LAYOUT_MAX_STAGES];
  size_t width, input_dim, batch, outputs;
  bafu_init init;
  bafu_signal signal;
} bafu_layout;

/* Describe the network of p (which must pass bafu_net_params_check). Errors:
 * those of bafu_net_params_check. */
bafu_status bafu_layout_build(const bafu_net_params *p, bafu_layout *out);

/* Entry j < J: its stage (*stage, index within the stage in *k) and label.
 * j is not checked. Cannot fail. */
int bafu_layout_entry(const bafu_layout *l, size_t j, const bafu_stage **stage, size_t *k);

/* Whether entry j applies the activation to its input stream (all but a dense
 * entry reading x). j is not checked. Cannot fail. */
int bafu_layout_activates(const bafu_layout *l, size_t j);

/* 1 if the network has residual blocks. Cannot fail. */
int bafu_layout_has_blocks(const bafu_layout *l);

/* The index of the first entry with a trained parameter (a non-zero weight
 * rate, or bias rate when it has biases, and a non-zero scale): the BFK of
 * every entry below it is 0 (no angle); J if nothing is trained. Cannot
 * fail. */
size_t bafu_layout_first_trained(const bafu_layout *l);

/* The labels of the first and the last entry. Cannot fail. */
int bafu_layout_first_label(const bafu_layout *l);
int bafu_layout_last_label(const bafu_layout *l);

#ifdef __cplusplus
}
#endif

#endif
