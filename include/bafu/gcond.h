/* bafu/gcond.h: a Gaussian matrix sampled lazily through its products.
 *
 * W is rows x cols with i.i.d. N(0, sd^2) entries, never drawn. Each product
 * W v or W^T u is drawn from its exact conditional law given the products
 * already answered, so the answers have exactly the law they would have with
 * W drawn first (theory/engine.md 7). The network engine uses one per layer
 * with `--conditional`.
 *
 * Usage: bafu_gcond_doubles() gives the memory to provide; bafu_gcond_init()
 * lays the object out in it; bafu_gcond_reset() starts a new matrix (a new
 * draw); bafu_gcond_apply() answers one query, bafu_gcond_apply_block() a
 * block of queries with matrix-matrix products. The object does not allocate.
 *
 * Thread safety: no global state; one object must not be used from two
 * threads at once. */
#ifndef BAFU_GCOND_H
#define BAFU_GCOND_H

#include <stddef.h>

#include "bafu/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fills out[0..count) with independent N(0, sd^2) numbers. */
typedef void (*bafu_normal_fn)(void *ctx, double sd, size_t count, double *out);

typedef struct {
  size_t rows, cols;         /* W is rows x cols */
  size_t cap_right, cap_left; /* directions kept: at most cols and rows */
  size_t nright, nleft;      /* directions answered in this draw */
  double sd;                 /* entries N(0, sd^2) */
  double *Q, *A;             /* cols x cap_right orthonormal q_i; rows x cap_right: W q_i */
  double *P, *C;             /* rows x cap_left orthonormal p_i; cols x cap_left: W^T p_i */
  double *work;              /* max(rows, cols) + 2 (cap_right + cap_left) scratch */
} bafu_gcond;

/* Doubles needed for a rows x cols matrix answering up to cap_right right
 * and cap_left left queries with new directions per draw (the caps are
 * clipped to cols and rows: beyond them W is determined). Cannot fail. */
size_t bafu_gcond_doubles(size_t rows, size_t cols, size_t cap_right, size_t cap_left);

/* Lay out g in mem (bafu_gcond_doubles() doubles, caller-owned, not freed
 * here) and reset it with entries N(0, sd^2). Sizes must be positive (not
 * checked). Cannot fail. */
void bafu_gcond_init(bafu_gcond *g, size_t rows, size_t cols, size_t cap_right, size_t cap_left, double sd,
                     double *mem);

/* Forget every answer: the next query starts a new, independent matrix with
 * entries N(0, sd^2). Cannot fail. */
void bafu_gcond_reset(bafu_gcond *g, double sd);

/* out = W v (trans = 0; v has cols entries, out rows) or out = W^T v
 * (trans != 0; v has rows entries, out cols). v and out must not overlap.
 * New randomness comes from normal(ctx, ...), only when v has a component
 * (relative size above 1e-11) outside the directions already answered on its
 * side and the other side's directions do not yet span the output space (then
 * W is determined and nothing is stored). Components below 1e-11 |v| are
 * treated as zero, so query differences (W (v' - v) rather than W v' for v'
 * close to an answered v) when such small components matter.
 * Errors: BAFU_ELIMIT (message names the capacity) when such a component
 * arrives with the capacity of that side used up; BAFU_ENUMERIC if v is not
 * finite. out is unspecified on error. */
bafu_status bafu_gcond_apply(bafu_gcond *g, int trans, const double *v, double *out, bafu_normal_fn normal,
                             void *ctx);

/* Doubles of workspace for bafu_gcond_apply_block() with blocks of up to m
 * columns on a rows x cols matrix with these caps (clipped as in
 * bafu_gcond_doubles()). One workspace serves any number of objects used one
 * after the other. Cannot fail. */
size_t bafu_gcond_block_doubles(size_t rows, size_t cols, size_t cap_right, size_t cap_left, size_t m);

/* A block of m queries at once: Out = alpha W V + beta Out (trans = 0; V is
 * cols x m, Out rows x m) or Out = alpha W^T V + beta Out (trans != 0; V is
 * rows x m, Out cols x m), both column-major with leading dimension their
 * row count; beta = 0 ignores Out on entry. The answers are those of m calls
 * of bafu_gcond_apply() with the columns in order (same law, same rule for
 * new directions: column a gives one when its residual against the answered
 * directions and those of columns 0..a-1 exceeds 1e-11 |v_a|, so a column in
 * the span of earlier columns gives none, and the same random numbers in the
 * same order), computed with matrix-matrix products (theory/engine.md 7.3);
 * they agree with the column-by-column answers to rounding. m = 1 is
 * bafu_gcond_apply() itself. work holds bafu_gcond_block_doubles() doubles
 * (caller-owned, scratch); V, Out and work must not overlap.
 * Errors: BAFU_ENUMERIC if a column of V is not finite; BAFU_ELIMIT (message
 * names the capacity) when the block's new directions exceed the capacity of
 * that side. On error nothing of the block is kept and no random number is
 * drawn; Out is unspecified. */
bafu_status bafu_gcond_apply_block(bafu_gcond *g, int trans, size_t m, double alpha, const double *V, double beta,
                                   double *work, double *Out, bafu_normal_fn normal, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
