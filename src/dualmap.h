/* dualmap.h (internal): the Gaussian dual maps of an activation, tabulated once
 * and evaluated in O(1) per layer (theory/kernel.md 10; "KR x" below).
 *
 * For (u, v) centred Gaussian with Var u = Var v = q and correlation rho the
 * kernel recursions need, per layer,
 *   a(q)        = E[phi(u)^2] / q,
 *   b(q)        = E[phi'(u)^2],
 *   dhat(q,rho) = (E[phi(u)^2] - E[phi(u) phi(v)]) / (q (1 - rho)),
 *   g(q,rho)    = E[phi'(u) phi'(v)],
 * so that E[phi(u) phi(v)] = q (a - (1 - rho) dhat) and 1 - c_phi = (1 - rho) dhat / a
 * with full relative precision as rho -> 1 (KR 10.1). The table covers
 * DBL_MIN <= q <= DM_QMAX in rows ([0, 2^-45), octaves up to DM_Q0, quarter
 * octaves above), each row a set of cells in rho (on each side of 0, in
 * d = 1 - |rho|, bisected until the cell meets the tolerance), each cell a tensor
 * Chebyshev interpolant built from the Mehler series of the Hermite coefficients
 * at its nodes (KR 10.2). Each cell carries a stated error bound (KR 10.3); cells
 * and rows that do not meet the tolerance are never used.
 *
 * Use: a row is tabulated at its build_cost-th direct request, about when its
 * direct evaluations have cost as much as building it, and from then on serves
 * the requests with a later stamp (layer index). The decision for a request
 * depends only on (q, stamp) and the requests before it, so a recursion replayed
 * with the same requests (dm_freeze) gets bit-identical answers (KR 10.4).
 *
 * Not thread-safe: one table per recursion. Sized once by dm_alloc. */
#ifndef BAFU_DUALMAP_H
#define BAFU_DUALMAP_H

#include <stddef.h>

#include "bafu/act.h"

#define DM_Q0 0.03125 /* row 0 is [0, DM_Q0] */
#define DM_QMAX 64.0  /* rows of a quarter octave up to DM_QMAX */

typedef struct dm_table dm_table;

typedef struct {
  double a, b;    /* E phi^2 / q, E phi'^2 */
  double dhat, g; /* (E phi^2 - E phi phi) / (q (1 - rho)), E phi' phi' */
} dm_val;

typedef struct {
  size_t degree_q;   /* Chebyshev degree in q [12] */
  size_t degree_rho; /* and in rho [13] */
  double tol;        /* a cell is used if its bound is below tol times the map's scale [3e-14] */
  double build_cost; /* direct pair requests in a row before it is tabulated [4] */
  int accept_all;    /* tests only: use every cell, whatever its bound */
} dm_opts;

/* The defaults above. */
dm_opts dm_default_opts(void);

/* A table for activation act (BAFU_EINVAL for a code outside the enum or
 * degrees outside 2..24; BAFU_ENOMEM). opts NULL: the defaults. */
bafu_status dm_alloc(bafu_act act, const dm_opts *opts, dm_table **out);
void dm_free(dm_table *t);

/* Pair request at variance q (both samples) and omc = 1 - rho in [0, 2] for the
 * layer `stamp`: 1 and *out if a tabulated cell serves it, 0 if the caller must
 * evaluate directly (the request is then counted towards tabulating its row). */
int dm_pair(dm_table *t, double q, double omc, size_t stamp, dm_val *out);

/* Diagonal request: 1 and a(q), b(q) if the row of q serves the stamp, else 0
 * (counted as 1/256 of a pair request). */
int dm_diag(dm_table *t, double q, size_t stamp, double *a, double *b);

/* frozen != 0: no row is built any more (requests are answered as before). */
void dm_freeze(dm_table *t, int frozen);

/* Forget the counts and which rows serve (their tables are kept): the
 * following requests are answered exactly as by a fresh table. */
void dm_restart(dm_table *t);

/* Tests: tabulate the row of q now and evaluate; 1 and *out, and the stated
 * bounds (absolute, for a, b, dhat, g; bound may be NULL) if a usable cell
 * covers (q, omc); 0 otherwise (q out of range, row or cell not tabulable). */
int dm_eval_now(dm_table *t, double q, double omc, dm_val *out, double bound[4]);

/* Largest stated bound of the usable cells built so far, relative to the maps'
 * scales (0 if none). */
double dm_max_bound(const dm_table *t);

#endif
