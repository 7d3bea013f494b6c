/* gcond.c: a Gaussian matrix sampled through its products (bafu/gcond.h,
 * theory/engine.md 7): one query at a time (7.2) or a block of queries with
 * matrix-matrix products (7.3). */
#include "bafu/gcond.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Residuals below this fraction of |v| count as "v in the answered span". */
#define GCOND_RTOL 1e-11
/* Blocked queries: a projection that keeps less than this fraction of a
 * column's norm is repeated (Daniel, Gragg, Kaufman and Stewart's criterion
 * for classical Gram-Schmidt), and runs of at most this many columns are
 * orthonormalised column by column (theory/engine.md 7.3). */
#define GCOND_DGKS 0.70710678118654752
#define GCOND_LEAF 8

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

size_t bafu_gcond_doubles(size_t rows, size_t cols, size_t cap_right, size_t cap_left) {
  cap_right = min_size(cap_right, cols);
  cap_left = min_size(cap_left, rows);
  const size_t big = rows > cols ? rows : cols;
  return (rows + cols) * (cap_right + cap_left) + big + 2 * (cap_right + cap_left);
}

size_t bafu_gcond_block_doubles(size_t rows, size_t cols, size_t cap_right, size_t cap_left, size_t m) {
  const size_t cap = min_size(cap_right, cols) > min_size(cap_left, rows) ? min_size(cap_right, cols)
                                                                            : min_size(cap_left, rows);
  const size_t big = rows > cols ? rows : cols;
  return big * (m ? m : 1) + (2 * cap + m) * m + 2 * m; /* R, M, T, |v|, norms before a projection */
}

void bafu_gcond_init(bafu_gcond *g, size_t rows, size_t cols, size_t cap_right, size_t cap_left, double sd,
                     double *mem) {
  g->rows = rows;
  g->cols = cols;
  g->cap_right = min_size(cap_right, cols);
  g->cap_left = min_size(cap_left, rows);
  g->Q = mem;
  g->A = g->Q + cols * g->cap_right;
  g->P = g->A + rows * g->cap_right;
  g->C = g->P + rows * g->cap_left;
  g->work = g->C + cols * g->cap_left;
  bafu_gcond_reset(g, sd);
}

void bafu_gcond_reset(bafu_gcond *g, double sd) {
  g->nright = g->nleft = 0;
  g->sd = sd;
}

/* One side of the matrix as seen by a query: the query's own directions
 * (Q: din x cap orthonormal, A = W Q: dout x cap, n of them) and the other
 * side's (P: dout x ocap, C: din x ocap, no of them). For a left query the
 * roles of W and W^T exchange (theory/engine.md 7.1). */
typedef struct {
  size_t din, dout, cap, n, no;
  double *Q, *A;
  const double *P, *C;
} side;

bafu_status bafu_gcond_apply(bafu_gcond *g, int trans, const double *v, double *out, bafu_normal_fn normal,
                             void *ctx) {
  side s = trans ? (side){g->rows, g->cols, g->cap_left, g->nleft, g->nright, g->P, g->C, g->Q, g->A}
                 : (side){g->cols, g->rows, g->cap_right, g->nright, g->nleft, g->Q, g->A, g->P, g->C};
  const int din = (int)s.din, dout = (int)s.dout, n = (int)s.n, no = (int)s.no;
  double *r = g->work, *c = r + s.din, *t = c + s.cap;
  const double vn = cblas_dnrm2(din, v, 1);
  if (!isfinite(vn))
    return bafu_error(BAFU_ENUMERIC,
                      "conditional sampler: a product with a non-finite vector (overflow: reduce depth, sigma-w2 or step)");
  if (s.no == s.dout) { /* the other side spans the output space: W = P C^T (or its transpose), determined */
    cblas_dgemv(CblasColMajor, CblasTrans, din, no, 1.0, s.C, din, v, 1, 0.0, t, 1);
    cblas_dgemv(CblasColMajor, CblasNoTrans, dout, no, 1.0, s.P, dout, t, 1, 0.0, out, 1);
    return BAFU_OK;
  }
  /* v = Q c + r, r orthogonal to Q: classical Gram-Schmidt twice */
  cblas_dcopy(din, v, 1, r, 1);
  if (n > 0) {
    cblas_dgemv(CblasColMajor, CblasTrans, din, n, 1.0, s.Q, din, r, 1, 0.0, c, 1);
    cblas_dgemv(CblasColMajor, CblasNoTrans, din, n, -1.0, s.Q, din, c, 1, 1.0, r, 1);
    cblas_dgemv(CblasColMajor, CblasTrans, din, n, 1.0, s.Q, din, r, 1, 0.0, t, 1);
    cblas_dgemv(CblasColMajor, CblasNoTrans, din, n, -1.0, s.Q, din, t, 1, 1.0, r, 1);
    cblas_daxpy(n, 1.0, t, 1, c, 1);
    cblas_dgemv(CblasColMajor, CblasNoTrans, dout, n, 1.0, s.A, dout, c, 1, 0.0, out, 1); /* A c */
  } else {
    for (int i = 0; i < dout; ++i) out[i] = 0;
  }
  const double rho = cblas_dnrm2(din, r, 1);
  if (!(rho > GCOND_RTOL * vn)) return BAFU_OK; /* v in span Q up to rounding (or v = 0) */
  if (s.n == s.cap)
    return bafu_error(BAFU_ELIMIT,
                      "conditional sampler: a %zu x %zu layer got more than %zu new %s directions in one draw",
                      g->rows, g->cols, s.cap, trans ? "left" : "right");
  /* the new direction q = r / rho (a division: rho may be subnormal) and its
   * image a = W q = P (C^T q - sd P^T z) + sd z */
  double *q = s.Q + s.n * s.din, *a = s.A + s.n * s.dout;
  for (int i = 0; i < din; ++i) q[i] = r[i] / rho;
  normal(ctx, g->sd, s.dout, a); /* a = sd z */
  if (no > 0) {
    cblas_dgemv(CblasColMajor, CblasTrans, dout, no, -1.0, s.P, dout, a, 1, 0.0, t, 1);   /* -sd P^T z */
    cblas_dgemv(CblasColMajor, CblasTrans, din, no, 1.0, s.C, din, q, 1, 1.0, t, 1);      /* + C^T q */
    cblas_dgemv(CblasColMajor, CblasNoTrans, dout, no, 1.0, s.P, dout, t, 1, 1.0, a, 1); /* a += P t */
  }
  cblas_daxpy(dout, rho, a, 1, out, 1); /* W v = A c + rho W q */
  if (trans)
    ++g->nleft;
  else
    ++g->nright;
  return BAFU_OK;
}

/* A blocked query in progress (theory/engine.md 7.3): the residual block R
 * (din x m), the coefficients M ((n + m) x m, leading dimension ldm: column
 * a of the block is Q[:, 0..n + k) M[0..n + k, a] plus a dropped residual),
 * k new directions so far, stored in Q from column n on. */
typedef struct {
  side s;
  const bafu_gcond *g;
  int trans;
  size_t m, k, ldm;
  double *R, *M, *T, *rn; /* rn: the norm of each residual column */
  const double *vn;       /* the norm of each query */
} block;

/* |x|: the dot product of x with itself (fast), or dnrm2 (scaled, slower)
 * when that could have lost range. */
static double norm2(int n, const double *x) {
  const double s = cblas_ddot(n, x, 1, x, 1);
  return s > 0x1p-960 && s < 0x1p960 ? sqrt(s) : cblas_dnrm2(n, x, 1);
}

/* R[:, 0..c) -= Qb Qb^T R[:, 0..c) with Qb = din x nq orthonormal columns,
 * adding the coefficients Qb^T R to Mc (nq x c, leading dimension ldm, zero
 * on entry): classical Gram-Schmidt, repeated (on the range of columns
 * concerned) when a column keeps less than GCOND_DGKS of the norm it had, unless it is already far inside the span
 * (below GCOND_RTOL / 8 of its query's norm vn[a]: no second pass can lift it
 * to the threshold, theory/engine.md 7.3). rn[0..c): the columns' norms,
 * updated. */
static void project(const double *Qb, int din, int nq, double *R, int c, double *Mc, int ldm, double *T, double *rn,
                    const double *vn) {
  int lo = 0, hi = c; /* the columns of this pass: all, then the range of those that need a second */
  for (int pass = 0; pass < 2 && lo < hi; ++pass) {
    const int w = hi - lo;
    double *Rp = R + (size_t)lo * din;
    if (w == 1) {
      cblas_dgemv(CblasColMajor, CblasTrans, din, nq, 1.0, Qb, din, Rp, 1, 0.0, T, 1);
      cblas_dgemv(CblasColMajor, CblasNoTrans, din, nq, -1.0, Qb, din, T, 1, 1.0, Rp, 1);
    } else {
      cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, nq, w, din, 1.0, Qb, din, Rp, din, 0.0, T, nq);
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, din, w, nq, -1.0, Qb, din, T, nq, 1.0, Rp, din);
    }
    int first = hi, last = lo - 1;
    for (int a = lo; a < hi; ++a) {
      for (int i = 0; i < nq; ++i) Mc[i + (size_t)a * ldm] += T[i + (size_t)(a - lo) * nq];
      const double after = norm2(din, R + (size_t)a * din);
      if (after < GCOND_DGKS * rn[a] && after > GCOND_RTOL / 8 * vn[a]) {
        first = a < first ? a : first;
        last = a;
      }
      rn[a] = after;
    }
    lo = first;
    hi = last + 1;
  }
}

/* Orthonormalise columns [lo, hi) of the residual block, in order, against
 * each other: each has already been projected on Q[:, 0..n + k). A column
 * whose remaining residual exceeds GCOND_RTOL of its query's norm gives a new
 * direction; others add nothing. */
static bafu_status orthonormalise(block *b, size_t lo, size_t hi) {
  const size_t din = b->s.din, n = b->s.n;
  const size_t k0 = b->k;
  if (hi - lo > GCOND_LEAF) {
    const size_t mid = lo + (hi - lo) / 2;
    bafu_status st = orthonormalise(b, lo, mid);
    if (st) return st;
    if (b->k > k0)
      project(b->s.Q + (n + k0) * din, (int)din, (int)(b->k - k0), b->R + mid * din, (int)(hi - mid),
              b->M + (n + k0) + mid * b->ldm, (int)b->ldm, b->T, b->rn + mid, b->vn + mid);
    return orthonormalise(b, mid, hi);
  }
  for (size_t a = lo; a < hi; ++a) {
    double *r = b->R + a * din;
    if (b->k > k0)
      project(b->s.Q + (n + k0) * din, (int)din, (int)(b->k - k0), r, 1, b->M + (n + k0) + a * b->ldm, (int)b->ldm,
              b->T, b->rn + a, b->vn + a);
    const double rho = b->rn[a];
    if (!(rho > GCOND_RTOL * b->vn[a])) continue; /* in the span up to rounding (or zero) */
    if (n + b->k == b->s.cap)
      return bafu_error(BAFU_ELIMIT,
                        "conditional sampler: a %zu x %zu layer got more than %zu new %s directions in one draw",
                        b->g->rows, b->g->cols, b->s.cap, b->trans ? "left" : "right");
    double *q = b->s.Q + (n + b->k) * din;
    if (rho > 0x1p-960) { /* 1 / rho is finite */
      const double inv = 1 / rho;
      for (size_t i = 0; i < din; ++i) q[i] = r[i] * inv;
    } else {
      for (size_t i = 0; i < din; ++i) q[i] = r[i] / rho;
    }
    b->M[(n + b->k) + a * b->ldm] = rho;
    ++b->k;
  }
  return BAFU_OK;
}

bafu_status bafu_gcond_apply_block(bafu_gcond *g, int trans, size_t m, double alpha, const double *V, double beta,
                                   double *work, double *Out, bafu_normal_fn normal, void *ctx) {
  if (m == 0) return BAFU_OK;
  const size_t din0 = trans ? g->rows : g->cols, dout0 = trans ? g->cols : g->rows;
  if (m == 1) { /* the one-column path (theory/engine.md 7.2) */
    bafu_status st = bafu_gcond_apply(g, trans, V, work, normal, ctx);
    if (st) return st;
    for (size_t i = 0; i < dout0; ++i) Out[i] = alpha * work[i] + (beta == 0 ? 0.0 : beta * Out[i]);
    return BAFU_OK;
  }
  side s = trans ? (side){g->rows, g->cols, g->cap_left, g->nleft, g->nright, g->P, g->C, g->Q, g->A}
                 : (side){g->cols, g->rows, g->cap_right, g->nright, g->nleft, g->Q, g->A, g->P, g->C};
  const size_t cap = g->cap_right > g->cap_left ? g->cap_right : g->cap_left, big = din0 > dout0 ? din0 : dout0;
  const int din = (int)din0, dout = (int)dout0, no = (int)s.no, mi = (int)m;
  block b = {.s = s, .g = g, .trans = trans, .m = m, .k = 0, .ldm = s.n + m};
  b.R = work;
  b.M = b.R + big * m;
  b.T = b.M + (cap + m) * m;
  b.rn = b.T + cap * m;
  double *vn = b.rn + m;
  b.vn = vn;
  for (size_t a = 0; a < m; ++a) {
    vn[a] = b.rn[a] = norm2(din, V + a * din0);
    if (!isfinite(vn[a]))
      return bafu_error(BAFU_ENUMERIC,
                        "conditional sampler: a product with a non-finite vector (overflow: reduce depth, sigma-w2 or step)");
  }
  if (s.no == s.dout) { /* W = P C^T (or its transpose), determined */
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, no, mi, din, 1.0, s.C, din, V, din, 0.0, b.T, no);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, dout, mi, no, alpha, s.P, dout, b.T, no, beta, Out, dout);
    return BAFU_OK;
  }
  /* V = Q K + R, R orthogonal to Q (blocked classical Gram-Schmidt) */
  memcpy(b.R, V, din0 * m * sizeof(double));
  memset(b.M, 0, b.ldm * m * sizeof(double));
  if (s.n > 0) project(s.Q, din, (int)s.n, b.R, mi, b.M, (int)b.ldm, b.T, b.rn, vn);
  /* R = Qnew H: new directions in column order, with rank detection */
  bafu_status st = orthonormalise(&b, 0, m);
  if (st) return st; /* nothing committed: n is unchanged */
  const size_t k = b.k, n = s.n;
  if (k > 0) { /* images A_new = W Q_new = P (C^T Q_new - sd P^T Z) + sd Z */
    double *An = s.A + n * dout0;
    const double *Qn = s.Q + n * din0;
    normal(ctx, g->sd, dout0 * k, An); /* sd Z, one column per new direction, in order */
    if (no > 0) {
      const int ki = (int)k;
      cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, no, ki, dout, -1.0, s.P, dout, An, dout, 0.0, b.T, no);
      cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, no, ki, din, 1.0, s.C, din, Qn, din, 1.0, b.T, no);
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, dout, ki, no, 1.0, s.P, dout, b.T, no, 1.0, An, dout);
    }
  }
  /* W V = A K + A_new H = A[:, 0..n + k) M; when every column gave a
   * direction, H is upper triangular and A_new H a triangular product */
  if (k == m) {
    double *Y = b.R; /* free now; big x m */
    memcpy(Y, s.A + n * dout0, dout0 * m * sizeof(double));
    cblas_dtrmm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, dout, mi, alpha, b.M + n,
                (int)b.ldm, Y, dout);
    if (n > 0)
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, dout, mi, (int)n, alpha, s.A, dout, b.M, (int)b.ldm,
                  beta, Out, dout);
    if (n > 0 || beta != 0) {
      if (n == 0) cblas_dscal(dout * mi, beta, Out, 1);
      cblas_daxpy(dout * mi, 1.0, Y, 1, Out, 1);
    } else {
      memcpy(Out, Y, dout0 * m * sizeof(double));
    }
  } else if (n + k > 0) {
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, dout, mi, (int)(n + k), alpha, s.A, dout, b.M,
                (int)b.ldm, beta, Out, dout);
  } else {
    for (size_t i = 0; i < dout0 * m; ++i) Out[i] = beta == 0 ? 0.0 : beta * Out[i];
  }
  if (trans)
    g->nleft += k;
  else
    g->nright += k;
  return BAFU_OK;
}
