/* spectrum.c: finite-width spectra of the backward-to-feature kernel and of
 * J J^T for one input: the dense method (BLAS-3 + dsyevd) and the matrix-free
 * kernel polynomial method (see include/bafu/spectrum.h, theory/spectrum.md
 * sections 2 and 3). Reads the engine's weights, features and inputs through
 * its public accessors only. */
#include "bafu/spectrum.h"

#include "planner.h"

#include <gsl/gsl_math.h>

#include <cblas.h>
#include <fftw3.h>
#include <gsl/gsl_rng.h>
#include <lapacke.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/layout.h"
#include "bafu/rng.h"

const char *bafu_spec_object_name(bafu_spec_object o) { return o == BAFU_SPEC_JACOBIAN ? "jacobian" : "bfk"; }

/* ------------------------------------------------- unit description --- */

/* Unit u: one weight matrix (theory/spectrum.md 2.1). A dense layer is one
 * unit; a residual block of K layers is K units, h_k = s_k W_k g_k + s_k c_k
 * with g_1 = phi(u_{l-1}) (u = f or f / |f|_rms), g_k = phi(h_{k-1}), scale 1
 * for k < K and beta for the last, which adds the stream: f_l = f_{l-1} + h_K. */
typedef struct {
  int residual; /* the block's last unit: adds the stream before the block */
  int first;    /* the block's first unit: reads the stream (backward: plus the identity path of `close`) */
  size_t close; /* first: the block's last unit (itself when K = 1) */
  size_t row;   /* the layer (row) the unit belongs to */
  double scale; /* s_u */
  size_t fan_in, fan_out;
  int norm;     /* normalised branch: the first unit reads phi(u), u = f_{l-1} / r (theory/engine.md 1.4) */
  double r;     /* norm: |f_{l-1}|_rms */
} layer_info;

/* The vector unit u reads: x for u = 0, the previous unit's features
 * otherwise (for a row's first unit: the previous row's features; batch 1). */
static const double *stream_of(const bafu_net *net, size_t u) {
  return u == 0 ? bafu_net_inputs(net) : bafu_net_unit_feature(net, u - 1);
}

/* first[j] = the first unit of row j, first[J] = the number of units. */
static void row_units(const bafu_net *net, size_t *first) {
  const size_t J = bafu_net_nlayers(net), U = bafu_net_nunits(net);
  size_t u = 0;
  for (size_t j = 0; j < J; ++j) {
    first[j] = u;
    while (u < U && bafu_net_unit_layer(net, u) == j) ++u;
  }
  first[J] = U;
}

/* Unit u, the k-th of row j whose units start at u0. */
static layer_info info_of(const bafu_net *net, size_t j, size_t u0, size_t u) {
  const bafu_stage *s;
  bafu_layout_entry(bafu_net_layout(net), j, &s, NULL);
  const int block = s->kind == BAFU_STAGE_BLOCK;
  const size_t K = block ? s->depth : 1, k = u - u0;
  layer_info L;
  L.residual = block && k + 1 == K;
  L.first = block && k == 0;
  L.close = u0 + K - 1;
  L.row = j;
  L.scale = block && !L.residual ? 1.0 : s->scale;
  L.fan_in = s->fan_in;
  L.fan_out = s->fan_out;
  L.norm = L.first && s->norm;
  L.r = L.norm ? cblas_dnrm2((int)L.fan_in, stream_of(net, u), 1) / sqrt((double)L.fan_in) : 1.0;
  return L;
}

/* v <- P v = (v - u (u.v) / n) / r with u = f / r, f the stream of a
 * normalised layer (P symmetric: the normalisation's Jacobian). */
static void apply_norm_jacobian(const layer_info *L, const double *f, double *v) {
  const double dot = cblas_ddot((int)L->fan_in, f, 1, v, 1) / (L->r * L->r * (double)L->fan_in);
  for (size_t i = 0; i < L->fan_in; ++i) v[i] = (v[i] - f[i] * dot) / L->r;
}

/* Mask d = phi'(input of unit u) into dmask and c_u = lr s^2 |g|^2 (+ lr_b s^2
 * with biases; theory/engine.md 3.2, spectrum.md 2.1); gbuf is fan_in scratch. */
static double layer_mask_c(const bafu_net *net, const layer_info *L, size_t u, size_t u0, double *gbuf,
                           double *dmask) {
  const bafu_layout *lay = bafu_net_layout(net);
  const bafu_stage *stg;
  bafu_layout_entry(lay, L->row, &stg, NULL);
  const double *s = stream_of(net, u);
  double g2;
  if (u == u0 && !bafu_layout_activates(lay, L->row)) {
    g2 = cblas_ddot((int)L->fan_in, s, 1, s, 1);
    for (size_t i = 0; i < L->fan_in; ++i) dmask[i] = 1.0;
  } else if (L->norm) { /* g = phi(u), d = phi'(u), u = f / r */
    for (size_t i = 0; i < L->fan_in; ++i) {
      const double x = s[i] / L->r;
      bafu_act_apply(stg->act, 1, &x, gbuf + i, dmask + i);
    }
    g2 = cblas_ddot((int)L->fan_in, gbuf, 1, gbuf, 1);
  } else {
    bafu_act_apply(stg->act, L->fan_in, s, gbuf, dmask);
    g2 = cblas_ddot((int)L->fan_in, gbuf, 1, gbuf, 1);
  }
  /* the bias, if any, adds lr_b s^2 (theory/engine.md 1.3): d f / d c = s I */
  return bafu_net_layer_lr(net, L->row) * L->scale * L->scale * g2 +
         bafu_net_layer_bias_lr(net, L->row) * L->scale * L->scale;
}

static size_t max_dim(const bafu_net *net) {
  size_t m = 0;
  for (size_t j = 0; j < bafu_net_nlayers(net); ++j) {
    if (bafu_net_layer_fan_in(net, j) > m) m = bafu_net_layer_fan_in(net, j);
    if (bafu_net_layer_fan_out(net, j) > m) m = bafu_net_layer_fan_out(net, j);
  }
  return m;
}

static bafu_status check_batch(const bafu_net *net) {
  const size_t m = bafu_net_layout(net)->batch;
  if (m != 1) return bafu_error(BAFU_EINVAL, "batch: spectra are for one input (batch 1), got %zu", m);
  return BAFU_OK;
}

/* ------------------------------------------------------------- dense --- */

struct bafu_spec_dense {
  size_t nmax;
  int vectors;
  double *K, *A, *T; /* nmax x nmax each */
  double *S;         /* nmax x nmax: a block's own kernel (block_depth > 1 only, else NULL) */
  size_t *first;     /* J + 1: the first unit of each row */
  double *g, *d, *Kb;
  double *work;
  lapack_int *iwork;
  lapack_int lwork, liwork;
  size_t n_last;
  size_t clamped; /* rounding-size negative eigenvalues set to 0 by the last run */
  bafu_spec_progress_fn progress;
  void *progress_ctx;
};

void bafu_spec_dense_set_progress(bafu_spec_dense *ws, bafu_spec_progress_fn fn, void *ctx) {
  ws->progress = fn, ws->progress_ctx = ctx;
}

bafu_status bafu_spec_dense_alloc(const bafu_net *net, int vectors, bafu_spec_dense **out) {
  *out = NULL;
  bafu_status st = check_batch(net);
  if (st) return st;
  if (!bafu_net_has_weights(net)) return bafu_error(BAFU_EINVAL, "conditional: spectra need the weight matrices themselves");
  const size_t n = max_dim(net), J = bafu_net_nlayers(net);
  const int deep = bafu_net_nunits(net) != J; /* branches of K > 1 layers: the block kernel S too */
  const double bytes = (deep ? 4.0 : 3.0) * (double)n * (double)n * 8.0 +
                       (double)bafu_net_memory_bytes(bafu_net_get_params(net));
  if ((st = bafu_memory_check(bytes, deep ? "width: the dense method (4 n^2 doubles beyond the network with "
                                            "block_depth > 1; the kpm method does not)"
                                          : "width: the dense method (3 n^2 doubles beyond the network; the kpm "
                                            "method does not)")))
    return st;
  bafu_spec_dense *ws = calloc(1, sizeof *ws);
  if (!ws) return bafu_error(BAFU_ENOMEM, "out of memory");
  ws->nmax = n;
  ws->vectors = vectors;
  ws->K = malloc(n * n * sizeof(double));
  ws->A = malloc(n * n * sizeof(double));
  ws->T = malloc(n * n * sizeof(double));
  if (deep) ws->S = malloc(n * n * sizeof(double));
  ws->first = malloc((J + 1) * sizeof(size_t));
  ws->g = malloc(n * sizeof(double));
  ws->d = malloc(n * sizeof(double));
  ws->Kb = malloc(n * sizeof(double));
  if (!ws->K || !ws->A || !ws->T || (deep && !ws->S) || !ws->first || !ws->g || !ws->d || !ws->Kb) {
    bafu_spec_dense_free(ws);
    return bafu_error(BAFU_ENOMEM, "width: out of memory for the dense BFK (%zu x %zu)", n, n);
  }
  row_units(net, ws->first);
  /* workspace query, once, for the largest size */
  double wq;
  lapack_int iq;
  lapack_int info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, vectors ? 'V' : 'N', 'L', (lapack_int)n, ws->T,
                                        (lapack_int)n, ws->Kb, &wq, -1, &iq, -1);
  if (info) {
    bafu_spec_dense_free(ws);
    return bafu_error(BAFU_ELAPACK, "dsyevd workspace query failed (info %d)", (int)info);
  }
  ws->lwork = (lapack_int)wq + 1;
  ws->liwork = iq + 1;
  ws->work = malloc((size_t)ws->lwork * sizeof(double));
  ws->iwork = malloc((size_t)ws->liwork * sizeof(lapack_int));
  if (!ws->work || !ws->iwork) {
    bafu_spec_dense_free(ws);
    return bafu_error(BAFU_ENOMEM, "out of memory for the dsyevd workspace");
  }
  *out = ws;
  return BAFU_OK;
}

void bafu_spec_dense_free(bafu_spec_dense *ws) {
  if (!ws) return;
  free(ws->K);
  free(ws->A);
  free(ws->T);
  free(ws->S);
  free(ws->first);
  free(ws->g);
  free(ws->d);
  free(ws->Kb);
  free(ws->work);
  free(ws->iwork);
  free(ws);
}

const double *bafu_spec_dense_matrix(const bafu_spec_dense *ws) { return ws->K; }
const double *bafu_spec_dense_vectors(const bafu_spec_dense *ws) { return ws->vectors ? ws->T : NULL; }

/* m1, m2 and the angle with the layer's backward vector. */
static void dense_moments(bafu_spec_dense *ws, const bafu_net *net, size_t j, size_t n, bafu_spec_moments *o) {
  double tr = 0;
  for (size_t i = 0; i < n; ++i) tr += ws->K[i + i * n];
  const double fro2 = cblas_ddot((int)(n * n), ws->K, 1, ws->K, 1);
  const double *b = bafu_net_backward_signal(net, j);
  cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)n, 1.0, ws->K, (int)n, b, 1, 0.0, ws->Kb, 1);
  const double bkb = cblas_ddot((int)n, b, 1, ws->Kb, 1);
  const double nb = cblas_dnrm2((int)n, b, 1), nkb = cblas_dnrm2((int)n, ws->Kb, 1);
  o->label = bafu_net_layer_label(net, j);
  o->m1 = tr / (double)n;
  o->m2 = fro2 / (double)n;
  o->defined = tr > 0 && nb > 0 && nkb > 0;
  o->cos_theta = o->defined ? bkb / (nb * nkb) : 0.0;
  o->cos_spectral = o->m2 > 0 ? o->m1 / sqrt(o->m2) : 0.0;
}

/* Exact symmetry of an n x n matrix (rounding of the two products). */
static void symmetrise(double *K, size_t n) {
  for (size_t a = 0; a < n; ++a)
    for (size_t b2 = a + 1; b2 < n; ++b2) {
      const double s = 0.5 * (K[a + b2 * n] + K[b2 + a * n]);
      K[a + b2 * n] = K[b2 + a * n] = s;
    }
}

/* ws->A = s W_u D (P): column i of s W_u scaled by d_i, then each row a^T
 * replaced by (P a)^T for a normalised branch (P symmetric). ws->d holds the
 * mask; ws->g is scratch. */
static void form_branch_jacobian(bafu_spec_dense *ws, bafu_net *net, const layer_info *L, size_t u) {
  const double *W = bafu_net_weight(net, u);
  const size_t n = L->fan_out, m = L->fan_in;
  for (size_t col = 0; col < m; ++col) {
    const double f = L->scale * ws->d[col];
    for (size_t r = 0; r < n; ++r) ws->A[r + col * n] = f * W[r + col * n];
  }
  if (L->norm) { /* A = s W D P: each row a^T of s W D becomes (P a)^T (P symmetric) */
    const double *fs = stream_of(net, u);
    for (size_t r = 0; r < n; ++r) {
      cblas_dcopy((int)m, ws->A + r, (int)n, ws->g, 1);
      apply_norm_jacobian(L, fs, ws->g);
      cblas_dcopy((int)m, ws->g, 1, ws->A + r, (int)n);
    }
  }
}

/* Row j, a block of K > 1 units u0..u1 on a stream of width n (theory/spectrum.md
 * 2.1): A = I + T_K with T_1 = s_1 W_1 D_0 (P), T_k = s_k W_k D_{k-1} T_{k-1}, and
 * the block's own kernel S_1 = c_1 I, S_k = s_k^2 W_k D_{k-1} S_{k-1} D_{k-1} W_k^T
 * + c_k I; then K_j = A K_{j-1} A^T + S_K (K_{-1} = 0: the stream x is not
 * trained). The Jacobian object has no S. */
static void dense_deep_block(bafu_spec_dense *ws, bafu_net *net, bafu_spec_object obj, size_t j, size_t u0,
                             size_t u1) {
  const int bfk = obj != BAFU_SPEC_JACOBIAN;
  layer_info L = info_of(net, j, u0, u0);
  const size_t n = L.fan_out;
  double c = layer_mask_c(net, &L, u0, u0, ws->g, ws->d);
  form_branch_jacobian(ws, net, &L, u0);
  if (bfk) {
    memset(ws->S, 0, n * n * sizeof(double));
    for (size_t i = 0; i < n; ++i) ws->S[i + i * n] = c;
  }
  for (size_t u = u0 + 1; u <= u1; ++u) {
    L = info_of(net, j, u0, u);
    c = layer_mask_c(net, &L, u, u0, ws->g, ws->d);
    const double *W = bafu_net_weight(net, u), *d = ws->d;
    if (bfk) { /* S <- s^2 W (D S D) W^T + c I, through T = s W (D S D) */
      for (size_t b2 = 0; b2 < n; ++b2)
        for (size_t a = 0; a < n; ++a) ws->S[a + b2 * n] *= d[a] * d[b2];
      cblas_dsymm(CblasColMajor, CblasRight, CblasLower, (int)n, (int)n, L.scale, ws->S, (int)n, W, (int)n, 0.0,
                  ws->T, (int)n);
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)n, L.scale, ws->T, (int)n, W,
                  (int)n, 0.0, ws->S, (int)n);
      for (size_t i = 0; i < n; ++i) ws->S[i + i * n] += c;
      symmetrise(ws->S, n);
    }
    /* T_k = s W (D T_{k-1}) */
    for (size_t b2 = 0; b2 < n; ++b2)
      for (size_t a = 0; a < n; ++a) ws->A[a + b2 * n] *= d[a];
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, L.scale, W, (int)n, ws->A,
                (int)n, 0.0, ws->T, (int)n);
    double *tmp = ws->A;
    ws->A = ws->T;
    ws->T = tmp;
  }
  if (j == 0) { /* the block reads x: K_0 = S_K (BFK), I (Jacobian) */
    if (bfk)
      memcpy(ws->K, ws->S, n * n * sizeof(double));
    else {
      memset(ws->K, 0, n * n * sizeof(double));
      for (size_t i = 0; i < n; ++i) ws->K[i + i * n] = 1.0;
    }
    return;
  }
  for (size_t i = 0; i < n; ++i) ws->A[i + i * n] += 1.0;
  cblas_dsymm(CblasColMajor, CblasRight, CblasLower, (int)n, (int)n, 1.0, ws->K, (int)n, ws->A, (int)n, 0.0, ws->T,
              (int)n);
  if (bfk) memcpy(ws->K, ws->S, n * n * sizeof(double));
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)n, 1.0, ws->T, (int)n, ws->A, (int)n,
              bfk ? 1.0 : 0.0, ws->K, (int)n);
  symmetrise(ws->K, n);
}

bafu_status bafu_spec_dense_run(bafu_spec_dense *ws, bafu_net *net, bafu_spec_object obj, size_t layer,
                                bafu_spec_moments *mom, double *eval) {
  if (layer >= bafu_net_nlayers(net))
    return bafu_error(BAFU_EINVAL, "layer: index %zu beyond the network's %zu layers", layer,
                      bafu_net_nlayers(net));
  size_t nprev = 0;
  for (size_t j = 0; j <= layer; ++j) {
    const size_t u0 = ws->first[j], u1 = ws->first[j + 1] - 1;
    const layer_info L = info_of(net, j, u0, u0);
    const size_t n = L.fan_out;
    if (u1 > u0) {
      dense_deep_block(ws, net, obj, j, u0, u1);
    } else {
      const double c = layer_mask_c(net, &L, u0, u0, ws->g, ws->d);
      if (j == 0) {
        memset(ws->K, 0, n * n * sizeof(double));
        const double diag = obj == BAFU_SPEC_JACOBIAN ? 1.0 : c;
        for (size_t i = 0; i < n; ++i) ws->K[i + i * n] = diag;
      } else {
        /* A = W D (column j of W scaled by d_j), or I + beta W D */
        const size_t m = L.fan_in; /* = nprev */
        form_branch_jacobian(ws, net, &L, u0);
        if (L.residual)
          for (size_t i = 0; i < n; ++i) ws->A[i + i * n] += 1.0;
        /* T = A K (K symmetric, nprev x nprev), then K = c I + T A^T */
        cblas_dsymm(CblasColMajor, CblasRight, CblasLower, (int)n, (int)m, 1.0, ws->K, (int)nprev, ws->A, (int)n,
                    0.0, ws->T, (int)n);
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)m, 1.0, ws->T, (int)n, ws->A,
                    (int)n, 0.0, ws->K, (int)n);
        const double cj = obj == BAFU_SPEC_JACOBIAN ? 0.0 : c;
        for (size_t i = 0; i < n; ++i) ws->K[i + i * n] += cj;
        symmetrise(ws->K, n);
      }
    }
    for (size_t i = 0; i < n * n; ++i)
      if (!isfinite(ws->K[i])) return bafu_error(BAFU_ENUMERIC, "the BFK overflowed at layer %zu", j);
    if (mom) dense_moments(ws, net, j, n, &mom[j]);
    nprev = n;
    if (ws->progress) ws->progress(j + 1, layer + 1 + (eval != NULL), ws->progress_ctx); /* the eigensolver: 1 more */
  }
  ws->n_last = nprev;
  if (eval) {
    const size_t n = nprev;
    memcpy(ws->T, ws->K, n * n * sizeof(double));
    lapack_int info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, ws->vectors ? 'V' : 'N', 'L', (lapack_int)n, ws->T,
                                          (lapack_int)n, eval, ws->work, ws->lwork, ws->iwork, ws->liwork);
    if (info) return bafu_error(BAFU_ELAPACK, "dsyevd failed (info %d)", (int)info);
    /* M is positive semi-definite; dsyevd's eigenvalues are exact for a matrix
       within about n eps |M| of it (theory/spectrum.md 2), so a negative one of
       that size is rounding: set to 0 and counted; a larger one is an error */
    const double tol = 16.0 * (double)n * DBL_EPSILON * fmax(fabs(eval[0]), fabs(eval[n - 1]));
    ws->clamped = 0;
    for (size_t i = 0; i < n && eval[i] < 0; ++i) {
      if (eval[i] < -tol)
        return bafu_error(BAFU_ENUMERIC, "eigenvalue %.3g of layer %zu is negative beyond rounding (%.3g)", eval[i],
                          layer, -tol);
      eval[i] = 0;
      ++ws->clamped;
    }
    if (ws->progress) ws->progress(layer + 2, layer + 2, ws->progress_ctx);
  }
  return BAFU_OK;
}

size_t bafu_spec_dense_clamped(const bafu_spec_dense *ws) { return ws->clamped; }

/* --------------------------------------------------------------- kpm --- */

bafu_kpm_params bafu_kpm_params_default(void) {
  return (bafu_kpm_params){.moments = 256, .vectors = 16, .lanczos = 40, .points = 0, .seed = 1};
}

struct bafu_spec_kpm {
  bafu_kpm_params kp;
  size_t J, U_, nmax, layer, top, npts;
  bafu_spec_object obj;
  size_t *first; /* J + 1: the first unit of each row */
  double *masks; /* units x nmax */
  double *c;     /* units */
  layer_info *L; /* units */
  double *U;     /* units x nmax x R: backward vectors */
  double *w1, *w2, *w3, *w4, *t0, *t1, *t2, *r; /* nmax x R */
  double *mu;    /* Chebyshev moments, damped (g_k mu_k) */
  double *dct_in, *dct_out;
  fftw_plan plan;
  double a, b;   /* lambda = a + b x */
  double m1, m2;
  gsl_rng *rng;
  bafu_spec_progress_fn progress;
  void *progress_ctx;
  size_t done, total; /* operator applications of the current run, for progress */
};

void bafu_spec_kpm_set_progress(bafu_spec_kpm *ws, bafu_spec_progress_fn fn, void *ctx) {
  ws->progress = fn, ws->progress_ctx = ctx;
}

/* One operator application done (progress; the last tick is the run's end). */
static void kpm_tick(bafu_spec_kpm *ws) {
  ++ws->done;
  if (ws->progress && ws->done < ws->total) ws->progress(ws->done, ws->total, ws->progress_ctx);
}

void bafu_spec_kpm_free(bafu_spec_kpm *ws) {
  if (!ws) return;
  if (ws->plan) {
    planner_lock();
    fftw_destroy_plan(ws->plan);
    planner_unlock();
  }
  fftw_free(ws->dct_in);
  fftw_free(ws->dct_out);
  free(ws->first);
  free(ws->masks);
  free(ws->c);
  free(ws->L);
  free(ws->U);
  free(ws->w1);
  free(ws->w2);
  free(ws->w3);
  free(ws->w4);
  free(ws->t0);
  free(ws->t1);
  free(ws->t2);
  free(ws->r);
  free(ws->mu);
  if (ws->rng) gsl_rng_free(ws->rng);
  free(ws);
}

bafu_status bafu_spec_kpm_alloc(const bafu_net *net, const bafu_kpm_params *kp, bafu_spec_kpm **out) {
  *out = NULL;
  bafu_status st = check_batch(net);
  if (st) return st;
  if (!bafu_net_has_weights(net)) return bafu_error(BAFU_EINVAL, "conditional: spectra need the weight matrices themselves");
  if (kp->moments < 4 || kp->moments > 100000)
    return bafu_error(BAFU_EINVAL, "kpm_moments: must be in [4, 100000], got %zu", kp->moments);
  if (kp->vectors < 1 || kp->vectors > 4096)
    return bafu_error(BAFU_EINVAL, "kpm_vectors: must be in [1, 4096], got %zu", kp->vectors);
  if (kp->lanczos < 2 || kp->lanczos > 1000)
    return bafu_error(BAFU_EINVAL, "kpm_lanczos: must be in [2, 1000], got %zu", kp->lanczos);
  const size_t npts = kp->points ? kp->points : 2 * kp->moments;
  if (npts < kp->moments) return bafu_error(BAFU_EINVAL, "kpm_points: must be >= the number of moments");
  bafu_spec_kpm *ws = calloc(1, sizeof *ws);
  if (!ws) return bafu_error(BAFU_ENOMEM, "out of memory");
  ws->kp = *kp;
  ws->npts = npts;
  ws->J = bafu_net_nlayers(net);
  ws->U_ = bafu_net_nunits(net);
  ws->nmax = max_dim(net);
  const size_t n = ws->nmax, R = kp->vectors, J = ws->J, NU = ws->U_;
  ws->first = malloc((J + 1) * sizeof(size_t));
  ws->masks = malloc(NU * n * sizeof(double));
  ws->c = malloc(NU * sizeof(double));
  ws->L = malloc(NU * sizeof(layer_info));
  ws->U = malloc(NU * n * R * sizeof(double));
  ws->w1 = malloc(n * R * sizeof(double));
  ws->w2 = malloc(n * R * sizeof(double));
  ws->w3 = malloc(n * R * sizeof(double));
  ws->w4 = malloc(n * R * sizeof(double));
  ws->t0 = malloc(n * R * sizeof(double));
  ws->t1 = malloc(n * R * sizeof(double));
  ws->t2 = malloc(n * R * sizeof(double));
  ws->r = malloc(n * R * sizeof(double));
  ws->mu = malloc(kp->moments * sizeof(double));
  ws->dct_in = fftw_malloc(npts * sizeof(double));
  ws->dct_out = fftw_malloc(npts * sizeof(double));
  ws->rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!ws->first || !ws->masks || !ws->c || !ws->L || !ws->U || !ws->w1 || !ws->w2 || !ws->w3 || !ws->w4 ||
      !ws->t0 || !ws->t1 || !ws->t2 || !ws->r || !ws->mu || !ws->dct_in || !ws->dct_out || !ws->rng) {
    bafu_spec_kpm_free(ws);
    return bafu_error(BAFU_ENOMEM, "kpm_vectors: out of memory for the KPM workspace");
  }
  row_units(net, ws->first);
  /* plan once (FFTW_ESTIMATE does not touch the arrays); DCT-III = REDFT01 */
  planner_lock();
  ws->plan = fftw_plan_r2r_1d((int)npts, ws->dct_in, ws->dct_out, FFTW_REDFT01, FFTW_ESTIMATE);
  planner_unlock();
  if (!ws->plan) {
    bafu_spec_kpm_free(ws);
    return bafu_error(BAFU_ENUMERIC, "FFTW could not plan a DCT of size %zu", npts);
  }
  *out = ws;
  return BAFU_OK;
}

bafu_status bafu_spec_kpm_prepare(bafu_spec_kpm *ws, bafu_net *net, bafu_spec_object obj, size_t layer) {
  if (layer >= ws->J)
    return bafu_error(BAFU_EINVAL, "layer: index %zu beyond the network's %zu layers", layer, ws->J);
  ws->layer = layer;
  ws->top = ws->first[layer + 1] - 1;
  ws->obj = obj;
  const size_t src = ws->first[1] - 1; /* the Jacobian's source: row 0's features (M_0 = I) */
  for (size_t j = 0; j <= layer; ++j)
    for (size_t u = ws->first[j]; u < ws->first[j + 1]; ++u) {
      ws->L[u] = info_of(net, j, ws->first[j], u);
      const double c = layer_mask_c(net, &ws->L[u], u, ws->first[j], ws->w1, ws->masks + u * ws->nmax);
      ws->c[u] = obj == BAFU_SPEC_JACOBIAN ? (u == src ? 1.0 : 0.0) : c;
    }
  return BAFU_OK;
}

/* Matrix-free M v over the units (theory/spectrum.md 3.1): u_top = v,
 * u_{i-1} = s_i (P) D_i W_i^T u_i [+ u_close(i) if unit i opens a block];
 * w_0 = c_0 u_0, w_i = s_i W_i D_i (P) w_{i-1} [+ w_stream if unit i closes a
 * block] + c_i u_i, w_stream the stream's tangent where the block opened
 * (0 for a block reading x); M v = w_top. */
void bafu_spec_kpm_apply(bafu_spec_kpm *ws, bafu_net *net, size_t k, const double *v, double *out) {
  const size_t nmax = ws->nmax, top = ws->top;
  double *U = ws->U;
  memcpy(U + top * nmax * k, v, ws->L[top].fan_out * k * sizeof(double));
  for (size_t j = top; j >= 1; --j) {
    const layer_info *L = &ws->L[j];
    const double *W = bafu_net_weight(net, j), *d = ws->masks + j * nmax;
    double *uj = U + j * nmax * k, *um = U + (j - 1) * nmax * k;
    const double *uc = U + L->close * nmax * k; /* opens a block: the identity path of its last unit */
    /* um = s D (W^T uj) [+ uc] */
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)L->fan_in, (int)k, (int)L->fan_out, 1.0, W,
                (int)L->fan_out, uj, (int)L->fan_out, 0.0, um, (int)L->fan_in);
    for (size_t col = 0; col < k; ++col) {
      double *c = um + col * L->fan_in;
      if (L->norm) { /* A^T = P D s W^T (+ I) */
        for (size_t i = 0; i < L->fan_in; ++i) c[i] *= L->scale * d[i];
        apply_norm_jacobian(L, stream_of(net, j), c);
        for (size_t i = 0; i < L->fan_in; ++i) c[i] += uc[i + col * L->fan_in];
        continue;
      }
      for (size_t i = 0; i < L->fan_in; ++i) {
        double val = L->scale * d[i] * c[i];
        if (L->first) val += uc[i + col * L->fan_in];
        c[i] = val;
      }
    }
  }
  /* w: the previous unit's tangent; stream: the tangent of the stream a block
     opened on (NULL: x, or no open block); the output goes to a third buffer */
  double *w = ws->w1, *t = ws->w3, *stream = NULL;
  const size_t n0 = ws->L[0].fan_out;
  for (size_t i = 0; i < n0 * k; ++i) w[i] = ws->c[0] * U[i];
  for (size_t j = 1; j <= top; ++j) {
    const layer_info *L = &ws->L[j];
    const double *W = bafu_net_weight(net, j), *d = ws->masks + j * nmax;
    const double *uj = U + j * nmax * k;
    if (L->first) stream = w;
    double *w2 = ws->w2 != w && ws->w2 != stream ? ws->w2 : ws->w1 != w && ws->w1 != stream ? ws->w1 : ws->w4;
    /* w2 = c uj [+ stream] + s W (D w) */
    for (size_t col = 0; col < k; ++col) {
      double *c = t + col * L->fan_in;
      memcpy(c, w + col * L->fan_in, L->fan_in * sizeof(double));
      if (L->norm) apply_norm_jacobian(L, stream_of(net, j), c); /* D P w */
      for (size_t i = 0; i < L->fan_in; ++i) c[i] *= d[i];
    }
    for (size_t col = 0; col < k; ++col)
      for (size_t i = 0; i < L->fan_out; ++i) {
        double val = ws->c[j] * uj[i + col * L->fan_out];
        if (L->residual && stream) val += stream[i + col * L->fan_out];
        w2[i + col * L->fan_out] = val;
      }
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)L->fan_out, (int)k, (int)L->fan_in, L->scale, W,
                (int)L->fan_out, t, (int)L->fan_in, 1.0, w2, (int)L->fan_out);
    if (L->residual) stream = NULL;
    w = w2;
  }
  memcpy(out, w, ws->L[top].fan_out * k * sizeof(double));
}

/* Largest Ritz value and its residual after `steps` Lanczos steps from a
 * Rademacher start (full reorthogonalisation is not needed for a bound with
 * margin; theory/spectrum.md 3.2). Uses t0, t1, t2 (one column each). */
static bafu_status lanczos_top(bafu_spec_kpm *ws, bafu_net *net, double *top) {
  const size_t n = ws->L[ws->top].fan_out, m = ws->kp.lanczos;
  double *alpha = calloc(m, sizeof(double)), *beta = calloc(m, sizeof(double));
  double *z = malloc(m * m * sizeof(double)), *e = malloc(m * sizeof(double));
  if (!alpha || !beta || !z || !e) {
    free(alpha), free(beta), free(z), free(e);
    return bafu_error(BAFU_ENOMEM, "out of memory (Lanczos)");
  }
  double *q = ws->t0, *qm = ws->t1, *w = ws->t2;
  for (size_t i = 0; i < n; ++i) q[i] = gsl_rng_uniform_int(ws->rng, 2) ? 1.0 : -1.0;
  cblas_dscal((int)n, 1.0 / sqrt((double)n), q, 1);
  memset(qm, 0, n * sizeof(double));
  size_t k = 0;
  double bprev = 0;
  for (; k < m; ++k) {
    bafu_spec_kpm_apply(ws, net, 1, q, w);
    kpm_tick(ws);
    cblas_daxpy((int)n, -bprev, qm, 1, w, 1);
    alpha[k] = cblas_ddot((int)n, q, 1, w, 1);
    cblas_daxpy((int)n, -alpha[k], q, 1, w, 1);
    beta[k] = cblas_dnrm2((int)n, w, 1);
    if (!isfinite(beta[k])) {
      free(alpha), free(beta), free(z), free(e);
      return bafu_error(BAFU_ENUMERIC, "Lanczos: non-finite value (the kernel overflowed)");
    }
    if (beta[k] <= 1e-14 * fabs(alpha[k]) || k + 1 == m) {
      ++k;
      break;
    }
    memcpy(qm, q, n * sizeof(double));
    for (size_t i = 0; i < n; ++i) q[i] = w[i] / beta[k];
    bprev = beta[k];
  }
  for (size_t i = 0; i + 1 < k; ++i) e[i] = beta[i];
  lapack_int info = LAPACKE_dstev(LAPACK_COL_MAJOR, 'V', (lapack_int)k, alpha, e, z, (lapack_int)k);
  if (info) {
    free(alpha), free(beta), free(z), free(e);
    return bafu_error(BAFU_ELAPACK, "dstev failed (info %d)", (int)info);
  }
  /* ascending: the top Ritz value is alpha[k-1]; residual |beta_k s_k| */
  *top = alpha[k - 1] + fabs(beta[k - 1] * z[(k - 1) + (k - 1) * k]);
  free(alpha), free(beta), free(z), free(e);
  return BAFU_OK;
}

static double jackson(size_t k, size_t N) {
  const double a = M_PI / (double)(N + 1);
  return ((double)(N - k + 1) * cos(a * (double)k) + sin(a * (double)k) / tan(a)) / (double)(N + 1);
}

bafu_status bafu_spec_kpm_run(bafu_spec_kpm *ws, bafu_net *net, double *x, double *density, double *lo,
                              double *hi) {
  const size_t n = ws->L[ws->top].fan_out, R = ws->kp.vectors, N = ws->kp.moments, P = ws->npts;
  bafu_rng_seed(ws->rng, ws->kp.seed, 0x5bec7ULL);
  ws->done = 0, ws->total = ws->kp.lanczos + N / 2 + 1; /* Lanczos steps, then about N/2 applications */
  double top = 0;
  bafu_status st = lanczos_top(ws, net, &top);
  if (st) return st;
  /* K >= c I for the BFK (A K A^T is positive semi-definite), J J^T >= 0 */
  const double bottom = ws->obj == BAFU_SPEC_JACOBIAN ? 0.0 : ws->c[ws->top];
  double up = top + 0.01 * (top - bottom);
  if (!(up > bottom)) up = bottom + fmax(1e-12, 1e-8 * fabs(bottom)); /* M = c I: a single atom */
  const double eps = 0.01; /* keep the spectrum inside [-1 + eps, 1 - eps] */
  ws->a = 0.5 * (up + bottom);
  ws->b = 0.5 * (up - bottom) / (1.0 - eps);
  /* Chebyshev moments by Hutchinson, doubling trick:
   * mu_{2k} = 2 <t_k, t_k> - mu_0, mu_{2k+1} = 2 <t_{k+1}, t_k> - mu_1. */
  double *mu = ws->mu;
  memset(mu, 0, N * sizeof(double));
  double *r = ws->r, *t0 = ws->t0, *t1 = ws->t1, *t2 = ws->t2;
  const size_t nk = n * R;
  for (size_t i = 0; i < nk; ++i) r[i] = gsl_rng_uniform_int(ws->rng, 2) ? 1.0 : -1.0;
  const double ia = ws->a, ib = 1.0 / ws->b;
  memcpy(t0, r, nk * sizeof(double));
  bafu_spec_kpm_apply(ws, net, R, t0, t1);
  kpm_tick(ws);
  for (size_t i = 0; i < nk; ++i) t1[i] = (t1[i] - ia * t0[i]) * ib;
  double s00 = cblas_ddot((int)nk, t0, 1, t0, 1), s10 = cblas_ddot((int)nk, t1, 1, t0, 1);
  const double norm = 1.0 / (double)nk;
  mu[0] = s00 * norm;
  mu[1] = s10 * norm;
  /* t0 = T_{k-1} r, t1 = T_k r with k = 1 */
  for (size_t k = 1; 2 * k < N; ++k) {
    const double skk = cblas_ddot((int)nk, t1, 1, t1, 1) * norm;
    mu[2 * k] = 2 * skk - mu[0];
    if (2 * k + 1 >= N) break;
    bafu_spec_kpm_apply(ws, net, R, t1, t2);
    kpm_tick(ws);
    for (size_t i = 0; i < nk; ++i) t2[i] = 2.0 * (t2[i] - ia * t1[i]) * ib - t0[i];
    if (!isfinite(t2[0]) || !isfinite(cblas_dnrm2((int)nk, t2, 1)))
      return bafu_error(BAFU_ENUMERIC, "KPM: non-finite Chebyshev vector (spectral bound exceeded?)");
    const double s21 = cblas_ddot((int)nk, t2, 1, t1, 1) * norm;
    mu[2 * k + 1] = 2 * s21 - mu[1];
    double *tmp = t0;
    t0 = t1;
    t1 = t2;
    t2 = tmp;
  }
  /* moments of M from mu_1, mu_2 (before damping) */
  ws->m1 = ws->a + ws->b * mu[1];
  ws->m2 = ws->a * ws->a + 2 * ws->a * ws->b * mu[1] + ws->b * ws->b * 0.5 * (mu[2] + mu[0]);
  for (size_t k = 0; k < N; ++k) mu[k] *= jackson(k, N);
  /* reconstruction on the Chebyshev nodes x_j = cos(pi (j + 1/2) / P) by DCT-III:
   * Y_j = mu_0 + 2 sum_k mu_k cos(pi k (j + 1/2) / P)  (FFTW REDFT01). */
  memset(ws->dct_in, 0, P * sizeof(double));
  memcpy(ws->dct_in, mu, N * sizeof(double));
  fftw_execute(ws->plan);
  for (size_t j = 0; j < P; ++j) {
    const size_t jj = P - 1 - j; /* ascending x */
    const double xc = cos(M_PI * ((double)jj + 0.5) / (double)P);
    const double rho = ws->dct_out[jj] / (M_PI * sqrt(1.0 - xc * xc));
    x[j] = ws->a + ws->b * xc;
    density[j] = rho / ws->b;
  }
  *lo = bottom;
  *hi = up;
  if (ws->progress) ws->progress(ws->total, ws->total, ws->progress_ctx);
  return BAFU_OK;
}

double bafu_spec_kpm_cdf(const bafu_spec_kpm *ws, double lambda) {
  double xc = (lambda - ws->a) / ws->b;
  if (xc <= -1) return 0.0;
  if (xc >= 1) return 1.0;
  const double th = acos(xc);
  double s = ws->mu[0] * (1.0 - th / M_PI);
  for (size_t k = 1; k < ws->kp.moments; ++k) s -= 2.0 / M_PI * ws->mu[k] * sin((double)k * th) / (double)k;
  return s < 0 ? 0 : s > 1 ? 1 : s;
}

void bafu_spec_kpm_moments(const bafu_spec_kpm *ws, double *m1, double *m2) {
  *m1 = ws->m1;
  *m2 = ws->m2;
}

double bafu_spec_w1(double (*cdf)(const void *ctx, double x), const void *ctx, const double *ev, size_t n,
                    double lo, double hi, size_t grid) {
  if (lo > ev[0]) lo = ev[0];
  if (hi < ev[n - 1]) hi = ev[n - 1];
  const double h = (hi - lo) / (double)grid;
  size_t cnt = 0;
  double w = 0;
  for (size_t i = 0; i < grid; ++i) {
    const double x = lo + ((double)i + 0.5) * h;
    while (cnt < n && ev[cnt] <= x) ++cnt;
    w += fabs(cdf(ctx, x) - (double)cnt / (double)n) * h;
  }
  return w;
}

double bafu_spec_kantorovich(double lo, double hi) {
  if (!(lo > 0 && hi >= lo && isfinite(hi))) return NAN;
  return 2 * sqrt(lo * hi) / (lo + hi);
}

bafu_status bafu_spec_histogram(const double *ev, size_t n, size_t bins, int log_bins, double *x, double *density,
                                double *width, size_t *zeros) {
  if (!n || !bins) return bafu_error(BAFU_EINVAL, "histogram: no eigenvalues or no bins");
  /* geometric bins need x > 0: zero eigenvalues are an atom at 0 */
  size_t z = 0;
  while (log_bins && z < n && ev[z] == 0) ++z;
  *zeros = z;
  if (log_bins && z == n) return bafu_error(BAFU_ENUMERIC, "log_bins: every eigenvalue is 0 (nothing to bin on a log axis)");
  double lo = ev[z], hi = ev[n - 1];
  const double min_span = 1e-9 * fmax(fabs(lo), fabs(hi));
  if (hi != 0 && !(min_span / (double)bins >= DBL_MIN))
    return bafu_error(BAFU_ENUMERIC, "the eigenvalues (largest %g) are too close to 0 to bin: underflow; increase "
                                     "sigma_w2 or reduce the depth", hi);
  if (!(hi - lo >= min_span)) hi = hi == 0 ? 1e-12 : lo + min_span;
  size_t i = z;
  for (size_t b = 0; b < bins; ++b) { /* bin b = [e0, e1); the last one closed */
    const double t0 = (double)b / (double)bins, t1 = (double)(b + 1) / (double)bins;
    const double e0 = log_bins ? lo * pow(hi / lo, t0) : lo + t0 * (hi - lo);
    const double e1 = b + 1 == bins ? hi : log_bins ? lo * pow(hi / lo, t1) : lo + t1 * (hi - lo);
    size_t c = 0;
    while (i < n && (ev[i] < e1 || b + 1 == bins)) ++i, ++c;
    x[b] = 0.5 * (e0 + e1);
    density[b] = (double)c / ((double)n * (e1 - e0));
    width[b] = e1 - e0;
  }
  return BAFU_OK;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

bafu_status bafu_spec_w1_limit(const bafu_net_params *p, size_t layer, uint64_t seed, size_t draws, double *w1,
                               double *w1_shape) {
  if (draws < 1) return bafu_error(BAFU_EINVAL, "draws: at least 1");
  const size_t n = p->width, d_in = p->input_dim ? p->input_dim : p->width;
  bafu_free_params fp = bafu_free_params_default();
  bafu_free *fw = NULL;
  bafu_net *nt = NULL;
  bafu_spec_dense *ws = NULL;
  bafu_free_layer *L = malloc((layer + 1) * sizeof *L);
  double *ev = malloc(draws * n * sizeof *ev), *shape = malloc(draws * n * sizeof *shape),
         *ones = malloc(d_in * sizeof *ones);
  bafu_status st = !L || !ev || !shape || !ones ? bafu_error(BAFU_ENOMEM, "out of memory") : BAFU_OK;
  if (!st) st = bafu_free_alloc(&fp, &fw);
  if (!st) st = bafu_free_run(fw, p, 0, BAFU_SPEC_BFK, layer, L);
  if (!st) st = bafu_net_alloc(p, &nt);
  if (!st) st = bafu_spec_dense_alloc(nt, 0, &ws);
  for (size_t k = 0; !st && k < d_in; ++k) ones[k] = 1.0;
  if (!st) bafu_net_set_inputs(nt, ones);
  const double m1 = st ? 0 : L[layer].m1;
  for (uint64_t d = 0; !st && d < draws; ++d) {
    if (!(st = bafu_net_draw(nt, seed, d)) && !(st = bafu_net_run(nt)))
      st = bafu_spec_dense_run(ws, nt, BAFU_SPEC_BFK, layer, NULL, ev + d * n);
    double mean = 0;
    for (size_t k = 0; !st && k < n; ++k) mean += ev[d * n + k] / (double)n;
    for (size_t k = 0; !st && k < n; ++k) shape[d * n + k] = ev[d * n + k] * m1 / mean;
  }
  if (!st) {
    qsort(ev, draws * n, sizeof *ev, cmp_double);
    qsort(shape, draws * n, sizeof *shape, cmp_double);
    const bafu_free_layer *l = L + layer;
    const double lo = (l->natoms ? l->atom[0].x : l->lo) * 0.9, hi = l->hi * 1.1;
    *w1 = bafu_spec_w1(bafu_free_cdf, fw, ev, draws * n, lo, hi, 20000) / m1;
    *w1_shape = bafu_spec_w1(bafu_free_cdf, fw, shape, draws * n, lo, hi, 20000) / m1;
  }
  bafu_spec_dense_free(ws);
  bafu_net_free(nt);
  bafu_free_free(fw);
  free(L);
  free(ev);
  free(shape);
  free(ones);
  return st;
}
