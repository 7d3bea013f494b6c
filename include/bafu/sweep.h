/* bafu/sweep.h: a grid of networks described in a small text file, each grid
 * point run through the Monte Carlo (bafu/mc.h) and the moment theory
 * (bafu/moments.h) side by side, one table row per point and layer.
 *
 * Grid file format (one setting per line; '#' starts a comment; blank lines
 * are ignored; each key at most once):
 *
 *   key = value [value ...]
 *
 * Grid axes (one or more values; the default is that of `bafu mc`; each is
 * the parameter of that name in bafu/params.h, its values in its range):
 *   arch            mlp | resnet                          [mlp]
 *   width           positive integers                     [512]
 *   depth           positive integers                     [16]
 *   act             relu linear tanh erf gelu swish       [relu]
 *   sigma_w2        finite numbers > 0                    [2]
 *   branch_scale    finite numbers >= 0 (ResNet B)        [1]
 *   branch_exponent finite numbers (ResNet A)             [0.5]
 *   init            gaussian | orthogonal                 [gaussian]
 * Further axes, columns of the table only when the grid sets them (after init):
 *   embed (0 1), branch_norm (none rms), bias_var, lr_input, lr_hidden, lr_bias,
 *   sigma2_input, block_depth, each in its parameter's range [its bafu mc default]
 *   (bafu_sweep_axes_text lists them from the parameter table).
 * Run settings (exactly one value):
 *   seeds           Monte Carlo draws per point, 2..1e8   [8]
 *   seed            stream seed, integer in [0, 2^53]     [1]
 *   step            actual gradient step, > 0             [1e-5]
 *
 * Grid order: the Cartesian product in the axis order above, the last axis
 * (init, or the last further axis the grid sets) varying fastest; point k = 0..npoints-1. Every point uses the same
 * seed and one input of N(0, I) entries per draw (probe signal, batch 1, unit
 * learning rates). branch_scale and branch_exponent do not affect MLPs (their
 * points repeat). Results depend only on the file: not on threads or ranks.
 *
 * Thread safety: a bafu_sweep is read-only after bafu_sweep_read, so its
 * getters and bafu_sweep_run_point may be called from several threads; each
 * run point is a bafu_mc_run, with its process-wide OpenBLAS setting when
 * threads > 1 (bafu/mc.h). */
#ifndef BAFU_SWEEP_H
#define BAFU_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "bafu/net.h"
#include "bafu/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* At most this many values per axis, and at most this many grid points. */
#define BAFU_SWEEP_MAX_VALUES 64
#define BAFU_SWEEP_MAX_POINTS 1000000

typedef struct bafu_sweep bafu_sweep;

/* Read and check a grid file. Errors: BAFU_EIO (cannot open or read),
 * BAFU_EPARSE with the one-line message "PATH:LINE: KEY: reason" (unknown or
 * repeated key, missing '=', no value, bad, out-of-range or repeated value,
 * too many values, several values for a run setting; also "PATH:LINE: line
 * longer than 4094 characters") or "PATH: the grid has N points, more than
 * BAFU_SWEEP_MAX_POINTS", BAFU_EINVAL "PATH: point K (...): reason" if a grid
 * point fails bafu_net_params_check, BAFU_ENOMEM. *out is NULL on error; the
 * caller owns *out and frees it with bafu_sweep_free (NULL-safe). */
bafu_status bafu_sweep_read(const char *path, bafu_sweep **out);
void bafu_sweep_free(bafu_sweep *s);

/* Number of grid points, draws per point, stream seed. Cannot fail. */
size_t bafu_sweep_npoints(const bafu_sweep *s);
size_t bafu_sweep_seeds(const bafu_sweep *s);
uint64_t bafu_sweep_seed(const bafu_sweep *s);

/* The network parameters of point k < npoints (probe signal, batch 1; other
 * fields at the defaults of bafu_net_params_default, step and sampler from the file).
 * k is not checked (it wraps around the grid); cannot fail. */
bafu_net_params bafu_sweep_params(const bafu_sweep *s, size_t k);

/* One line describing the grid: "arch=mlp,resnet width=16,32 ... seeds=8 seed=1
 * step=1e-05 points=24", into buf (size >= 1; truncated to fit, always
 * NUL-terminated). Cannot fail. */
void bafu_sweep_describe(const bafu_sweep *s, char *buf, size_t size);

/* The same line with every number exact (hex floats) and nothing cut: two
 * grids have the same fingerprint only if they are the same grid. malloc'd
 * (caller frees); NULL if out of memory. */
char *bafu_sweep_fingerprint(const bafu_sweep *s);

/* The header row of the table (no newline): point arch width depth act
 * sigma_w2 branch_scale branch_exponent init, then each further axis the grid
 * sets, then layer cos_theta_mc cos_theta_mc_se cos_theta_theory
 * feature_speed_mc feature_speed_mc_se feature_speed_theory loss_decay_mc
 * loss_decay_mc_se loss_decay_theory. Owned by s; cannot fail. */
const char *bafu_sweep_header(const bafu_sweep *s);

/* 0 if `text` has the form of point k's rows as bafu_sweep_run_point writes
 * them (one row per layer from the first trained one to the top, in order,
 * each: the point's own columns, the layer's label and 9 finite numbers; at
 * most one printable '# point k: ' note line, before the rows), else 1. For checking a
 * checkpoint; cannot fail. */
int bafu_sweep_check_rows(const bafu_sweep *s, size_t k, const char *text);

/* Run point k: bafu_mc_run (seeds, seed, `threads` OpenMP workers) and
 * bafu_moments_run (|x|^2 = d) on the same network, and format its rows, one
 * per layer with a trained parameter at or below it, each ending in '\n'
 * (preceded by a line "# point K: ..." when degenerate draws were excluded,
 * bafu/mc.h), into *text (malloc'd, NUL-terminated, caller frees; *len = strlen). The
 * text depends only on (file, k). Errors: BAFU_EINVAL if k >= npoints; those
 * of the two runs; BAFU_ENOMEM; BAFU_ENUMERIC if any value is not finite
 * (never a NaN row); the message names the point. *text is NULL and *len 0 on
 * error. */
bafu_status bafu_sweep_run_point(const bafu_sweep *s, size_t k, int threads, char **text, size_t *len);

/* The grid axes as one line of text, from the parameter table: the names in
 * grid order, choices in parentheses, the axes that are columns only when set
 * after "and, as columns after init only when set,". Cannot fail (truncated
 * to size). */
void bafu_sweep_axes_text(char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
