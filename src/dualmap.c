/* dualmap.c: tabulated Gaussian dual maps (dualmap.h; theory/kernel.md 10,
 * "KR x"). */
#include "dualmap.h"

#include <gsl/gsl_math.h> /* M_PI in strict C11 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Rows (KR 10.2): row 0 = [0, 2^-45), rows r = 1..40 the octaves [2^(r-46), 2^(r-45)) up
 * to DM_Q0 = 2^-5, then quarter octaves up to DM_QMAX = DM_Q0 2^11. */
#define LOW_ROWS 40
#define ROWS_PER_OCTAVE 4
#define NROWS (1 + LOW_ROWS + ROWS_PER_OCTAVE * 11)
#define MAXDEG 24
#define POOL_CELLS 4096   /* cells of all rows together */
#define MAX_SIDE_CELLS 96 /* per side of a row */
#define MIN_WIDTH 0x1p-30 /* narrowest cell in d */
#define NOISE (4 * DBL_EPSILON) /* coefficients below NOISE times the scale are rounding noise (KR 10.3) */
#define DROP (0.5 * DBL_EPSILON) /* coefficients below DROP times the scale are not stored (KR 10.4) */
#define TSIZE 32          /* arrays of T_k: room for the doubling of cheb_t to overshoot n */
#define K_FIRST 32        /* first Hermite order tried; doubled up to BAFU_ACT_HERMITE_MAX */
#define DIAG_COST (1.0 / 256)
#define QUAD_ERR 2.5e-15 /* relative accuracy of bafu_act_moments_quad (theory/activations.md 4.3) */

typedef struct {
  double lo, hi;        /* the cell covers lo <= d <= hi */
  double bd, bg;        /* stated absolute bounds for dhat and g (KR 10.3) */
  int usable;           /* the bounds are within the tolerance (or accept_all) */
  size_t ni, nj;        /* the degrees i < ni in q, j < nj in rho are used (the others are 0) */
  unsigned char len[MAXDEG + 1]; /* and in degree i of q, the degrees j < len[i] in rho */
  double *coef;         /* nq x nr pairs (dhat, g): coef[2 (nr i + j) + m], i in q, j in rho */
} dm_cell;

typedef struct {
  double qlo, qhi; /* the row covers [qlo, qhi) (the last one [qlo, qhi]) */
  int state;       /* 0: not built, 1: built, -1: not tabulable */
  size_t ready;    /* first stamp the row serves (SIZE_MAX: none yet) */
  double cost;     /* direct requests counted so far */
  double ca[MAXDEG + 1], cb[MAXDEG + 1]; /* Chebyshev coefficients of a(q), b(q) */
  double norm_d, norm_g;                  /* min over the nodes of a and of b: the maps' scales */
  double ba, bb;                          /* stated absolute bounds for a(q), b(q) */
  double bound;                           /* largest relative bound of the usable cells */
  size_t ncell[2];                        /* side 0: rho >= 0, d = 1 - rho; side 1: rho < 0, d = 1 + rho */
  dm_cell *cell[2];
} dm_row;

struct dm_table {
  bafu_act act;
  dm_opts o;
  size_t nq, nr; /* nodes per direction: degree + 1 */
  int frozen;
  dm_row row[NROWS];
  dm_cell *cells;  /* POOL_CELLS, handed out to the rows as they are built */
  size_t used;
  double *pool;    /* their coefficients */
  double cq[(MAXDEG + 1) * (MAXDEG + 1)], cr[(MAXDEG + 1) * (MAXDEG + 1)]; /* cos(l pi (i + 1/2) / n) */
  /* build scratch: Hermite coefficients per q node, node values, one cell's coefficients */
  double *ha, *hb;
  size_t hk[MAXDEG + 1];
  double qn[MAXDEG + 1], an[MAXDEG + 1], bn[MAXDEG + 1];
  double node_err_d, node_err_g, row_norm_d, row_norm_g; /* of the row being built */
  double *vals, *tmp, *ccoef;
  size_t cni, cnj; /* the used part of ccoef */
  unsigned char clen[MAXDEG + 1];
  int pool_full;
  /* evaluation cache: the row and cell of the last request, their contraction with T_i(x) */
  const dm_cell *last_cell;
  int last_row;
  double last_q, last_a, last_b;
  double tx[TSIZE], w[2 * (MAXDEG + 1)];
};

dm_opts dm_default_opts(void) { return (dm_opts){12, 13, 3e-14, 4, 0}; }

static size_t cell_doubles(const dm_table *t) { return 2 * t->nq * t->nr; }

bafu_status dm_alloc(bafu_act act, const dm_opts *opts, dm_table **out) {
  *out = NULL;
  const dm_opts o = opts ? *opts : dm_default_opts();
  if ((unsigned)act >= BAFU_ACT_COUNT) return bafu_error(BAFU_EINVAL, "dual-map table: invalid activation %d", (int)act);
  if (o.degree_q < 2 || o.degree_q > MAXDEG || o.degree_rho < 2 || o.degree_rho > MAXDEG)
    return bafu_error(BAFU_EINVAL, "dual-map table: degrees must be in 2..%d", MAXDEG);
  dm_table *t = calloc(1, sizeof *t);
  if (!t) return bafu_error(BAFU_ENOMEM, "out of memory allocating the dual-map table");
  t->act = act;
  t->o = o;
  t->nq = o.degree_q + 1;
  t->nr = o.degree_rho + 1;
  const size_t ncells = POOL_CELLS;
  t->cells = calloc(ncells, sizeof *t->cells);
  t->pool = calloc(ncells * cell_doubles(t), sizeof(double)); /* pages are touched only when a row is built */
  t->ha = malloc(t->nq * (BAFU_ACT_HERMITE_MAX + 1) * sizeof(double));
  t->hb = malloc(t->nq * (BAFU_ACT_HERMITE_MAX + 1) * sizeof(double));
  t->vals = malloc(cell_doubles(t) * sizeof(double));
  t->tmp = malloc(cell_doubles(t) * sizeof(double));
  t->ccoef = malloc(cell_doubles(t) * sizeof(double));
  if (!t->cells || !t->pool || !t->ha || !t->hb || !t->vals || !t->tmp || !t->ccoef) {
    dm_free(t);
    return bafu_error(BAFU_ENOMEM, "out of memory allocating the dual-map table");
  }
  for (size_t c = 0; c < ncells; ++c) t->cells[c].coef = t->pool + c * cell_doubles(t);
  for (int r = 0; r < NROWS; ++r) {
    dm_row *w = &t->row[r];
    if (r <= LOW_ROWS) {
      w->qlo = r ? ldexp(1, r - 46) : 0;
      w->qhi = ldexp(1, r - 45);
    } else {
      w->qlo = DM_Q0 * exp2((double)(r - LOW_ROWS - 1) / ROWS_PER_OCTAVE);
      w->qhi = DM_Q0 * exp2((double)(r - LOW_ROWS) / ROWS_PER_OCTAVE);
    }
  }
  t->row[NROWS - 1].qhi = DM_QMAX;
  for (size_t l = 0; l < t->nq; ++l)
    for (size_t i = 0; i < t->nq; ++i) t->cq[l * t->nq + i] = cos(M_PI * (double)l * ((double)i + 0.5) / (double)t->nq);
  for (size_t l = 0; l < t->nr; ++l)
    for (size_t i = 0; i < t->nr; ++i) t->cr[l * t->nr + i] = cos(M_PI * (double)l * ((double)i + 0.5) / (double)t->nr);
  dm_restart(t);
  *out = t;
  return BAFU_OK;
}

void dm_free(dm_table *t) {
  if (!t) return;
  free(t->cells);
  free(t->pool);
  free(t->ha);
  free(t->hb);
  free(t->vals);
  free(t->tmp);
  free(t->ccoef);
  free(t);
}

void dm_freeze(dm_table *t, int frozen) { t->frozen = frozen; }

void dm_restart(dm_table *t) {
  for (int r = 0; r < NROWS; ++r) {
    t->row[r].ready = SIZE_MAX;
    t->row[r].cost = 0;
  }
  t->last_cell = NULL;
  t->last_row = -1;
  t->last_q = NAN;
}

double dm_max_bound(const dm_table *t) {
  double b = 0;
  for (int r = 0; r < NROWS; ++r)
    if (t->row[r].state == 1 && t->row[r].bound > b) b = t->row[r].bound;
  return b;
}

/* The row of q, or -1 outside [DBL_MIN, DM_QMAX] (KR 10.2: q = 0 and subnormal q
 * are left to the direct evaluation). Rows are [qlo, qhi), the last one closed. */
static int row_of(const dm_table *t, double q) {
  if (!(q >= DBL_MIN && q <= DM_QMAX)) return -1;
  if (q < DM_Q0) {
    int e;
    frexp(q, &e); /* q in [2^(e-1), 2^e) */
    return e <= -45 ? 0 : e + 45;
  }
  int r = LOW_ROWS + 1 + (int)floor(ROWS_PER_OCTAVE * log2(q / DM_Q0));
  if (r < LOW_ROWS + 1) r = LOW_ROWS + 1;
  if (r > NROWS - 1) r = NROWS - 1;
  while (r > LOW_ROWS + 1 && q < t->row[r].qlo) --r;
  while (r < NROWS - 1 && q >= t->row[r].qhi) ++r;
  return r;
}

/* ---------------------------------------------------------------------------
 * Building a row (KR 10.2, 10.3). */

/* Chebyshev coefficients (first kind nodes x_i = cos(pi (i + 1/2) / n)) of n
 * values v[i * stride], into c[l * stride], with the cosine table cs (n x n). */
static void cheb_coefs(size_t n, const double *cs, const double *v, size_t stride, double *c) {
  for (size_t l = 0; l < n; ++l) {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += v[i * stride] * cs[l * n + i];
    c[l * stride] = s * (l ? 2.0 : 1.0) / (double)n;
  }
}

/* Hermite coefficients at the q node i, to the order where the upper half of the
 * tail terms is negligible (KR 10.2); 0 on success, -1 if BAFU_ACT_HERMITE_MAX
 * does not reach it or the quadrature fails. */
static int node_hermite(dm_table *t, size_t i) {
  double *ha = t->ha + i * (BAFU_ACT_HERMITE_MAX + 1), *hb = t->hb + i * (BAFU_ACT_HERMITE_MAX + 1);
  const double scale = t->an[i] + t->bn[i];
  for (size_t K = K_FIRST; K <= BAFU_ACT_HERMITE_MAX; K *= 2) {
    if (bafu_act_hermite(t->act, t->qn[i], K, ha, hb)) return -1;
    double upper = 0; /* sum over K/2 < k <= K of the terms of sum k ah_k^2 and sum bh_k^2 */
    for (size_t k = K / 2 + 1; k <= K; ++k) upper += (double)k * ha[k] * ha[k] + hb[k] * hb[k];
    if (upper <= 1e-16 * scale) {
      /* the node error (KR 10.3): the Mehler sums at rho = 1 against the single-variable rule */
      double sa = 0, sk = 0, sb = 0;
      for (size_t k = K + 1; k-- > 0;) {
        sa += ha[k] * ha[k];
        sk += (double)k * ha[k] * ha[k];
        sb += hb[k] * hb[k];
      }
      const double ed = fmax(fabs(sa - t->an[i]), fabs(sk - t->bn[i])) + upper, eg = fabs(sb - t->bn[i]) + upper;
      if (ed > t->node_err_d) t->node_err_d = ed;
      if (eg > t->node_err_g) t->node_err_g = eg;
      t->hk[i] = K;
      return 0;
    }
  }
  return -1;
}

/* Values of dhat and g at the nodes of the cell [lo, hi] of a side, by the
 * Mehler series (KR 10.1), into t->vals, then the tensor Chebyshev
 * coefficients into t->ccoef; the stated bounds (KR 10.3) into b[0] (dhat) and
 * b[1] (g). */
static void build_cell(dm_table *t, int side, double lo, double hi, double b[2]) {
  const size_t nq = t->nq, nr = t->nr;
  for (size_t j = 0; j < nr; ++j) {
    const double y = cos(M_PI * ((double)j + 0.5) / (double)nr);
    const double d = 0.5 * (lo + hi) + 0.5 * (hi - lo) * y;
    const double rho = side ? d - 1 : 1 - d;
    for (size_t i = 0; i < nq; ++i) {
      const double *ha = t->ha + i * (BAFU_ACT_HERMITE_MAX + 1), *hb = t->hb + i * (BAFU_ACT_HERMITE_MAX + 1);
      double p = 1, S = 0, dh = 0, g = 0; /* p = rho^k, S = S_k = 1 + rho + ... + rho^(k-1) */
      for (size_t k = 0; k <= t->hk[i]; ++k) {
        dh += ha[k] * ha[k] * S;
        g += hb[k] * hb[k] * p;
        S += p;
        p *= rho;
      }
      t->vals[2 * (nr * i + j)] = dh;
      t->vals[2 * (nr * i + j) + 1] = g;
    }
  }
  for (int m = 0; m < 2; ++m) {
    for (size_t i = 0; i < nq; ++i) cheb_coefs(nr, t->cr, t->vals + 2 * nr * i + m, 2, t->tmp + 2 * nr * i + m);
    for (size_t j = 0; j < nr; ++j) cheb_coefs(nq, t->cq, t->tmp + 2 * j + m, 2 * nr, t->ccoef + 2 * j + m);
  }
  for (int m = 0; m < 2; ++m) {
    const double scale = m ? t->row_norm_g : t->row_norm_d, noise = NOISE * scale;
    double tail = 0, all = 0; /* coefficients of the last two degrees in q or rho (above the noise) */
    for (size_t i = 0; i < nq; ++i)
      for (size_t j = 0; j < nr; ++j) {
        const double c = fabs(t->ccoef[2 * (nr * i + j) + m]);
        all += c;
        if ((i + 2 >= nq || j + 2 >= nr) && c > noise) tail += c - noise;
      }
    b[m] = tail + 2 * (m ? t->node_err_g : t->node_err_d) + (double)(nq + nr) * (0.5 * DBL_EPSILON) * all;
  }
  /* the coefficients kept for evaluation (KR 10.4): in each degree i, those beyond the last one above
     DROP times the scale are set to 0 and added to the bounds */
  t->cni = t->cnj = 0;
  for (size_t i = 0; i < nq; ++i) {
    double *c = t->ccoef + 2 * nr * i;
    size_t len = 0;
    for (size_t j = 0; j < nr; ++j)
      if (fabs(c[2 * j]) > DROP * t->row_norm_d || fabs(c[2 * j + 1]) > DROP * t->row_norm_g) len = j + 1;
    for (size_t j = len; j < nr; ++j) {
      b[0] += fabs(c[2 * j]);
      b[1] += fabs(c[2 * j + 1]);
      c[2 * j] = c[2 * j + 1] = 0;
    }
    if (len) t->cni = i + 1;
    if (len > t->cnj) t->cnj = len;
    t->clen[i] = (unsigned char)len;
  }
}

/* Cells of [lo, hi] on a side, bisected while that brings them closer to the
 * tolerance (KR 10.2): a cell whose relative bound is not 10% below its
 * parent's (parent: that of the enclosing cell, INFINITY for [0, 1]) is at the
 * floor set by the q direction and the node values, and is kept as it is. */
static void build_side(dm_table *t, dm_row *w, int side, double lo, double hi, double parent) {
  double b[2];
  build_cell(t, side, lo, hi, b);
  const double rel = fmax(b[0] / w->norm_d, b[1] / w->norm_g);
  const int ok = rel <= t->o.tol;
  const size_t n = w->ncell[side];
  if (!ok && rel < 0.9 * parent && !t->o.accept_all && hi - lo >= 2 * MIN_WIDTH && n + 2 <= MAX_SIDE_CELLS &&
      t->used + 2 <= POOL_CELLS) {
    const double mid = 0.5 * (lo + hi);
    build_side(t, w, side, lo, mid, rel);
    build_side(t, w, side, mid, hi, rel);
    return;
  }
  if (t->used >= POOL_CELLS) { /* the pool is full: the row cannot be completed */
    t->pool_full = 1;
    return;
  }
  dm_cell *c = &t->cells[t->used++];
  c->lo = lo;
  c->hi = hi;
  c->bd = b[0];
  c->bg = b[1];
  c->usable = ok || t->o.accept_all;
  c->ni = t->cni;
  c->nj = t->cnj;
  memcpy(c->len, t->clen, sizeof c->len);
  memcpy(c->coef, t->ccoef, cell_doubles(t) * sizeof(double));
  w->ncell[side] = n + 1;
  if (c->usable && rel > w->bound) w->bound = rel;
}

/* Tabulate row r: state 1, or -1 if it cannot be (a q node's Hermite series does
 * not converge within BAFU_ACT_HERMITE_MAX, a quadrature fails, or a(q), b(q)
 * miss the tolerance). */
static void build_row(dm_table *t, int r) {
  dm_row *w = &t->row[r];
  const size_t nq = t->nq;
  const double mid = 0.5 * (w->qlo + w->qhi), half = 0.5 * (w->qhi - w->qlo);
  w->state = -1;
  t->node_err_d = t->node_err_g = 0;
  w->norm_d = w->norm_g = INFINITY;
  for (size_t i = 0; i < nq; ++i) {
    t->qn[i] = mid + half * cos(M_PI * ((double)i + 0.5) / (double)nq);
    bafu_act_moments am;
    if (bafu_act_moments_quad(t->act, t->qn[i], &am) || !(am.phi2 > 0) || !(am.dphi2 > 0)) return;
    t->an[i] = am.phi2 / t->qn[i];
    t->bn[i] = am.dphi2;
    w->norm_d = fmin(w->norm_d, t->an[i]);
    w->norm_g = fmin(w->norm_g, t->bn[i]);
    if (node_hermite(t, i)) return;
  }
  cheb_coefs(nq, t->cq, t->an, 1, w->ca);
  cheb_coefs(nq, t->cq, t->bn, 1, w->cb);
  /* the bounds of a(q), b(q) (KR 10.3): the last two coefficients, the rounding of the evaluation and
     the accuracy of the single-variable rule at the nodes (theory/activations.md 4.3) */
  double sa = 0, sb = 0;
  for (size_t i = 0; i < nq; ++i) {
    sa += fabs(w->ca[i]);
    sb += fabs(w->cb[i]);
  }
  w->ba = fabs(w->ca[nq - 1]) + fabs(w->ca[nq - 2]) + (double)nq * (0.5 * DBL_EPSILON) * sa + QUAD_ERR * sa;
  w->bb = fabs(w->cb[nq - 1]) + fabs(w->cb[nq - 2]) + (double)nq * (0.5 * DBL_EPSILON) * sb + QUAD_ERR * sb;
  if (!t->o.accept_all && (w->ba > t->o.tol * w->norm_d || w->bb > t->o.tol * w->norm_g)) return;
  w->bound = fmax(w->ba / w->norm_d, w->bb / w->norm_g);
  t->row_norm_d = w->norm_d;
  t->row_norm_g = w->norm_g;
  const size_t used0 = t->used;
  t->pool_full = 0;
  for (int side = 0; side < 2; ++side) {
    w->ncell[side] = 0;
    w->cell[side] = t->cells + t->used;
    build_side(t, w, side, 0, 1, INFINITY);
  }
  if (t->pool_full) { /* give the cells back */
    t->used = used0;
    return;
  }
  w->state = 1;
}

/* ---------------------------------------------------------------------------
 * Evaluation (KR 10.4). */

/* T_0(x) .. T_{n-1}(x), n <= MAXDEG + 1, by T_{m+k} = 2 T_m T_k - T_{m-k} with m = 2, 4, 8,
 * 16: the same operations as the three-term recurrence (errors of a few ulp,
 * |T| <= 1) in a chain of 5 steps instead of n. */
static void cheb_t(size_t n, double x, double *T) {
  T[0] = 1;
  T[1] = x;
  T[2] = 2 * x * x - 1;
  for (size_t m = 2; m < n; m *= 2) {
    const double tm2 = 2 * T[m];
    for (size_t k = 1; k <= m; ++k) T[m + k] = tm2 * T[k] - T[m - k];
  }
}

/* w[j] = sum_{i < ni} coef[stride i + j] tx[i] for j < nw (KR 10.4). The
 * loop over j vectorises; every lane does the scalar operations in the same
 * order (no contraction into fused multiply-adds in ISO C mode), so every
 * instruction set gives the same numbers. */
#ifndef DM_CLONES
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define DM_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#endif
#ifndef DM_CLONES
#define DM_CLONES
#endif
DM_CLONES static void contract(size_t ni, const unsigned char *len, const double *restrict coef, size_t stride,
                               const double *restrict tx, double *restrict w, size_t nw) {
  for (size_t j = 0; j < nw; ++j) w[j] = coef[j] * tx[0]; /* tx[0] = 1 (beyond 2 len[0], coef is 0) */
  for (size_t i = 1; i < ni; ++i) {
    const double ti = tx[i], *restrict cf = coef + stride * i;
    const size_t n = 2 * (size_t)len[i];
    for (size_t j = 0; j < n; ++j) w[j] += cf[j] * ti;
  }
}

/* The usable cell of row w covering omc (NULL if none), and d. */
static const dm_cell *find_cell(const dm_row *w, double omc, double *d) {
  const int side = omc > 1;
  const double dd = side ? 2 - omc : omc; /* exact for omc in [1, 2] */
  const dm_cell *c = w->cell[side];
  size_t lo = 0, hi = w->ncell[side]; /* the last cell with c.lo <= dd */
  while (hi - lo > 1) {
    const size_t m = (lo + hi) / 2;
    if (c[m].lo <= dd) lo = m;
    else hi = m;
  }
  *d = dd;
  return c[lo].usable ? &c[lo] : NULL;
}

/* a(q), b(q) of row r and the T_i(x) of q, cached for the last q. */
static void row_diag(dm_table *t, int r, double q) {
  if (r == t->last_row && q == t->last_q) return;
  const dm_row *w = &t->row[r];
  const double x = (2 * q - (w->qlo + w->qhi)) / (w->qhi - w->qlo);
  cheb_t(t->nq, x, t->tx);
  double a = 0, b = 0, a2 = 0, b2 = 0; /* two partial sums each: shorter chains */
  size_t i = 0;
  for (; i + 1 < t->nq; i += 2) {
    a += w->ca[i] * t->tx[i];
    b += w->cb[i] * t->tx[i];
    a2 += w->ca[i + 1] * t->tx[i + 1];
    b2 += w->cb[i + 1] * t->tx[i + 1];
  }
  if (i < t->nq) {
    a += w->ca[i] * t->tx[i];
    b += w->cb[i] * t->tx[i];
  }
  a += a2;
  b += b2;
  t->last_row = r;
  t->last_q = q;
  t->last_a = a;
  t->last_b = b;
  t->last_cell = NULL;
}

static int eval_pair(dm_table *t, int r, double q, double omc, dm_val *out, double bound[4]) {
  double d;
  const dm_cell *c = find_cell(&t->row[r], omc, &d);
  if (!c) return 0;
  row_diag(t, r, q);
  const size_t nj = c->nj;
  if (c != t->last_cell) { /* contract the coefficients with T_i(x) */
    contract(c->ni, c->len, c->coef, 2 * t->nr, t->tx, t->w, 2 * nj);
    t->last_cell = c;
  }
  double ty[TSIZE];
  cheb_t(nj, (2 * d - (c->lo + c->hi)) / (c->hi - c->lo), ty);
  double dh = 0, g = 0, dh2 = 0, g2 = 0;
  size_t j = 0;
  for (; j + 1 < nj; j += 2) {
    dh += t->w[2 * j] * ty[j];
    g += t->w[2 * j + 1] * ty[j];
    dh2 += t->w[2 * j + 2] * ty[j + 1];
    g2 += t->w[2 * j + 3] * ty[j + 1];
  }
  if (j < nj) {
    dh += t->w[2 * j] * ty[j];
    g += t->w[2 * j + 1] * ty[j];
  }
  dh += dh2;
  g += g2;
  *out = (dm_val){t->last_a, t->last_b, dh, g};
  if (bound) {
    bound[0] = t->row[r].ba;
    bound[1] = t->row[r].bb;
    bound[2] = c->bd;
    bound[3] = c->bg;
  }
  return 1;
}

/* Count a direct request of the given cost; tabulate the row when due. */
static void count(dm_table *t, int r, double cost, size_t stamp) {
  dm_row *w = &t->row[r];
  if (t->frozen || w->state < 0) return;
  w->cost += cost;
  if (w->cost < t->o.build_cost) return;
  if (w->state == 0) {
    build_row(t, r);
    t->last_row = -1; /* the cache may describe a row being rebuilt: drop it */
    t->last_cell = NULL;
  }
  if (w->state == 1 && stamp != SIZE_MAX) w->ready = stamp + 1;
}

/* row_of, first trying the row of the last request (the recursions move slowly in q). */
static int row_cached(const dm_table *t, double q) {
  const int r = t->last_row;
  if (r >= 0 && q >= DBL_MIN && q >= t->row[r].qlo && q < t->row[r].qhi) return r;
  return row_of(t, q);
}

int dm_pair(dm_table *t, double q, double omc, size_t stamp, dm_val *out) {
  const int r = row_cached(t, q);
  if (r < 0 || !(omc >= 0 && omc <= 2)) return 0;
  if (stamp >= t->row[r].ready) return eval_pair(t, r, q, omc, out, NULL);
  count(t, r, 1, stamp);
  return 0;
}

int dm_diag(dm_table *t, double q, size_t stamp, double *a, double *b) {
  const int r = row_cached(t, q);
  if (r < 0) return 0;
  if (stamp >= t->row[r].ready) {
    row_diag(t, r, q);
    *a = t->last_a;
    *b = t->last_b;
    return 1;
  }
  count(t, r, DIAG_COST, stamp);
  return 0;
}

int dm_eval_now(dm_table *t, double q, double omc, dm_val *out, double bound[4]) {
  const int r = row_of(t, q);
  if (r < 0 || !(omc >= 0 && omc <= 2)) return 0;
  if (t->row[r].state == 0) {
    build_row(t, r);
    t->last_row = -1;
    t->last_cell = NULL;
  }
  if (t->row[r].state != 1) return 0;
  return eval_pair(t, r, q, omc, out, bound);
}
