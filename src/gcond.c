/* gcond.c: a Gaussian matrix sampled through its products (bafu/gcond.h,
 * theory/engine.md 7). */
#include "bafu/gcond.h"

#include <cblas.h>
#include <math.h>

/* Residuals below this fraction of |v| count as "v in the answered span". */
#define GCOND_RTOL 1e-11

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

size_t bafu_gcond_doubles(size_t rows, size_t cols, size_t cap_right, size_t cap_left) {
  cap_right = min_size(cap_right, cols);
  cap_left = min_size(cap_left, rows);
  const size_t big = rows > cols ? rows : cols;
  return (rows + cols) * (cap_right + cap_left) + big + 2 * (cap_right + cap_left);
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
