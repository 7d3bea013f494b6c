/* bafu/sweep.h: a grid of networks described in a small text file, each grid
 * point a run of `bafu mc` (with `bafu theory` beside it) or of `bafu train`,
 * one table row per point and layer (and, training, per logged step).
 *
 * Grid file format (one setting per line; '#' starts a comment; blank lines
 * are ignored; each key at most once):
 *
 *   key = value [value ...]
 *
 * Keys come from the parameter table (bafu/params.h): every parameter with an
 * axis position is a grid axis, with its range, and a bad value is refused
 * with its range in the message. The task sets which:
 *
 *   task = mc (default): each point is `bafu mc` with those options. Axes:
 *     every network parameter (the options of bafu mc; `signal` = probe, mse,
 *     xent is its --probe/--loss), and `preset` (none sp ntk mup fsc) [none].
 *     Run settings (one value): seeds (draws, 2..1e8) [8], seed (stream seed,
 *     integer in [0, 2^53]) [1], step (actual gradient step, > 0) [1e-5],
 *     sampler (stored conditional: conditional = 1 for every point) [stored].
 *   task = train: each point is `bafu train` with those options. Axes: the
 *     network parameters but those of the Monte Carlo's sampling (regenerate,
 *     conditional), `preset`, and every training setting (data, epochs, lr,
 *     control, ..., seed: several seeds are an axis here). Run settings:
 *     rows (all: every logged row; final: the rows after the last update)
 *     [all], data_dir (one path) [bafu train's].
 *   Both: columns (the value columns, names separated by spaces or commas,
 *     in the table's order given) [see bafu_sweep_header].
 *
 * Defaults: those of the task's command (bafu mc; bafu train for the data
 * set, bafu_train_config_command), per point as the command applies them:
 * signal = xent without outputs gives 10 outputs, a preset rewrites the
 * point's variances and rates (bafu_preset_apply: a grid that sets a preset
 * other than none may not set sigma2_input, sigma2_output or any lr_* of the
 * network). Lenient where the command refuses a value it would ignore:
 * branch_* on MLP points, outputs on probe points, bias rates on points
 * without biases (such points repeat). `data` takes one value (the two data
 * sets' tables have different columns). `input` (bafu mc --input FILE) is not
 * a key: a grid's inputs are drawn (`inputs` = dense or onehot).
 *
 * Grid order: the Cartesian product in the axis order (the parameter table's
 * positions; preset after the network's axes, the training settings last),
 * the last axis varying fastest; point k = 0..npoints-1. Every Monte Carlo
 * point uses the same seed. Results depend only on the file (and the
 * columns): not on threads or ranks.
 *
 * Thread safety: a bafu_sweep is read-only after bafu_sweep_read, so its
 * getters and bafu_sweep_run_point may be called from several threads; each
 * run point is a bafu_mc_run, with its process-wide OpenBLAS setting when
 * threads > 1 (bafu/mc.h), or a bafu_train_run (BLAS threads: the caller's). */
#ifndef BAFU_SWEEP_H
#define BAFU_SWEEP_H

#include <stddef.h>
#include <stdint.h>

#include "bafu/net.h"
#include "bafu/status.h"
#include "bafu/train.h"

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
 * too many values, several values for a run setting, a key of the other
 * task, a preset and a rate it sets, an unknown or repeated column; also
 * "PATH:LINE: line longer than 4094 characters") or "PATH: the grid has N
 * points, more than BAFU_SWEEP_MAX_POINTS", BAFU_EINVAL "PATH: point K
 * (...): reason" if a grid point fails its command's checks
 * (bafu_net_params_check, bafu_train_config_check, the preset) or asks a
 * _theory column where bafu theory has no per-layer prediction (batch > 1,
 * signal = xent), BAFU_ELIMIT if a point exceeds the memory limit,
 * BAFU_ENOMEM. *out is NULL on error; the caller owns *out and frees it with
 * bafu_sweep_free (NULL-safe). */
bafu_status bafu_sweep_read(const char *path, bafu_sweep **out);

/* The same with the value columns `columns` (names separated by spaces or
 * commas, as the grid's columns key) in place of the file's; NULL: the
 * file's. An unknown or repeated name: BAFU_EPARSE "columns: ..." listing the
 * valid names. */
bafu_status bafu_sweep_read_columns(const char *path, const char *columns, bafu_sweep **out);
void bafu_sweep_free(bafu_sweep *s);

/* The valid column names of task 0 (mc) or 1 (train), as one line, into buf
 * (size >= 1; truncated to fit). Cannot fail. */
void bafu_sweep_columns_text(int task, char *buf, size_t size);

/* 0: a grid of bafu mc points; 1: of bafu train points. Cannot fail. */
int bafu_sweep_task(const bafu_sweep *s);

/* Number of grid points, draws per point, stream seed. Cannot fail. */
size_t bafu_sweep_npoints(const bafu_sweep *s);
size_t bafu_sweep_seeds(const bafu_sweep *s);
uint64_t bafu_sweep_seed(const bafu_sweep *s);

/* The network parameters of point k < npoints, as its command would run
 * them (the grid's values, the task's defaults, the preset applied; Monte
 * Carlo points: step and sampler from the file). k is not checked (it wraps
 * around the grid); cannot fail. */
bafu_net_params bafu_sweep_params(const bafu_sweep *s, size_t k);

/* The training configuration of point k of a training grid (net as
 * bafu_sweep_params; data_dir points into s). Cannot fail. */
bafu_train_config bafu_sweep_train_config(const bafu_sweep *s, size_t k);

/* One line describing the grid: every axis of the table's columns as
 * name=v1,v2,..., then (mc) "seeds=8 seed=1 step=1e-05 points=24" and
 * " sampler=conditional" when set, or (train) "task=train rows=all
 * points=N" and " data_dir=PATH" when set; " columns=a,b,..." when the
 * columns were chosen. Into buf (size >= 1; truncated to fit, always
 * NUL-terminated). Cannot fail. */
void bafu_sweep_describe(const bafu_sweep *s, char *buf, size_t size);

/* The same line with every number exact (hex floats) and nothing cut: two
 * grids have the same fingerprint only if they are the same grid with the
 * same columns. malloc'd (caller frees); NULL if out of memory. */
char *bafu_sweep_fingerprint(const bafu_sweep *s);

/* The header row of the table (no newline): point, arch width depth act
 * sigma_w2 branch_scale branch_exponent init, then each further axis the grid
 * sets (in axis order), then "layer" (mc) or "step epoch final layer"
 * (train), then the value columns. Default value columns: mc cos_theta_mc
 * cos_theta_mc_se cos_theta_theory feature_speed_mc feature_speed_mc_se
 * feature_speed_theory loss_decay_mc loss_decay_mc_se loss_decay_theory;
 * train: those of bafu train's table (train_acc and test_acc with
 * fashion-mnist, lr_bias when a point has biases: 0 for a point without).
 * Owned by s; cannot fail. */
const char *bafu_sweep_header(const bafu_sweep *s);

/* 0 if `text` has the form of point k's rows as bafu_sweep_run_point writes
 * them, else 1. Monte Carlo: one row per layer from the first trained one to
 * the top, in order, each the point's own columns, the layer's label and one
 * finite number per value column; at most one printable '# point k: ' note
 * line, before the rows. Training: one or more rows, each the point's own
 * columns and 4 + (value columns) finite numbers. For checking a checkpoint;
 * cannot fail. */
int bafu_sweep_check_rows(const bafu_sweep *s, size_t k, const char *text);

/* Run point k and format its rows, each ending in '\n', into *text
 * (malloc'd, NUL-terminated, caller frees; *len = strlen). Monte Carlo:
 * bafu_mc_run (seeds, seed, `threads` OpenMP workers) and, with a _theory
 * column, bafu_moments_run (|x|^2 = d) on the same network; one row per
 * layer with a trained parameter at or below it, each value printed as bafu
 * mc (mean %.10g, se %.4g, identity_residual %.3g) or bafu theory (%.12g)
 * prints it (preceded by a line "# point K: ..." when degenerate draws were
 * excluded, bafu/mc.h). Training: bafu_train_run; one row per layer and
 * logged step (rows = final: the final rows only), printed as bafu train
 * prints them. The text depends only on (file, columns, k). Errors:
 * BAFU_EINVAL if k >= npoints; those of the runs; BAFU_ENOMEM; BAFU_ENUMERIC
 * if any value is not finite (never a NaN row); the message names the point.
 * *text is NULL and *len 0 on error. */
bafu_status bafu_sweep_run_point(const bafu_sweep *s, size_t k, int threads, char **text, size_t *len);

/* The grid axes of Monte Carlo grids as one line of text, from the parameter
 * table: the names in grid order, choices in parentheses, the axes that are
 * columns only when set after "and, as columns after init only when set,".
 * Cannot fail (truncated to size). */
void bafu_sweep_axes_text(char *buf, size_t size);

/* The axes only training grids have (the training settings), likewise. */
void bafu_sweep_train_axes_text(char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
