/* spectrum.c: finite-width spectra of the backward-to-feature kernel and of
 * J J^T for one input: the dense method (BLAS-3 + dsyevd) and the matrix-free
 * kernel polynomial method (see include/bafu/spectrum.h, theory/spectrum.md
 * sections 2 and 3). Reads the engine's weights, features and inputs through
 * its public accessors only. */
#include "bafu/spectrum.h"

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

/* ------------------------------------------------- layer description --- */

/* Kind of layer j (theory/engine.md 1.1): residual iff a ResNet block. */
typedef struct {
  int residual;
  double scale; /* s_j */
  size_t fan_in, fan_out;
  int norm;     /* normalised branch: the block reads phi(u), u = f_{j-1} / r (theory/engine.md 1.4) */
  double r;     /* norm: |f_{j-1}|_rms */
} layer_info;

/* The stream layer j reads: x for j = 0, f_{j-1} otherwise (batch 1). */
static const double *stream_of(const bafu_net *net, size_t j) {
  return j == 0 ? bafu_net_inputs(net) : bafu_net_feature(net, j - 1);
}

static layer_info info_of(const bafu_net *net, size_t j) {
  const bafu_stage *s;
  bafu_layout_entry(bafu_net_layout(net), j, &s, NULL);
  layer_info L;
  L.residual = s->kind == BAFU_STAGE_BLOCK;
  L.scale = s->scale;
  L.fan_in = s->fan_in;
  L.fan_out = s->fan_out;
  L.norm = s->kind == BAFU_STAGE_BLOCK && s->norm;
  L.r = L.norm ? cblas_dnrm2((int)L.fan_in, stream_of(net, j), 1) / sqrt((double)L.fan_in) : 1.0;
  return L;
}

/* v <- P v = (v - u (u.v) / n) / r with u = f / r, f the stream of a
 * normalised layer (P symmetric: the normalisation's Jacobian). */
static void apply_norm_jacobian(const layer_info *L, const double *f, double *v) {
  const double dot = cblas_ddot((int)L->fan_in, f, 1, v, 1) / (L->r * L->r * (double)L->fan_in);
  for (size_t i = 0; i < L->fan_in; ++i) v[i] = (v[i] - f[i] * dot) / L->r;
}

/* Mask d = phi'(stream) into dmask and c_j = lr s^2 |g|^2 (theory/engine.md 3.2);
 * gbuf is fan_in scratch. */
static double layer_mask_c(const bafu_net *net, size_t j, double *gbuf, double *dmask) {
  const layer_info L = info_of(net, j);
  const bafu_layout *lay = bafu_net_layout(net);
  const bafu_stage *stg;
  bafu_layout_entry(lay, j, &stg, NULL);
  const double *s = stream_of(net, j);
  double g2;
  if (!bafu_layout_activates(lay, j)) {
    g2 = cblas_ddot((int)L.fan_in, s, 1, s, 1);
    for (size_t i = 0; i < L.fan_in; ++i) dmask[i] = 1.0;
  } else if (L.norm) { /* g = phi(u), d = phi'(u), u = f / r */
    for (size_t i = 0; i < L.fan_in; ++i) {
      const double u = s[i] / L.r;
      bafu_act_apply(stg->act, 1, &u, gbuf + i, dmask + i);
    }
    g2 = cblas_ddot((int)L.fan_in, gbuf, 1, gbuf, 1);
  } else {
    bafu_act_apply(stg->act, L.fan_in, s, gbuf, dmask);
    g2 = cblas_ddot((int)L.fan_in, gbuf, 1, gbuf, 1);
  }
  /* the bias, if any, adds lr_b s^2 (theory/engine.md 1.3): d f / d c = s I */
  return bafu_net_layer_lr(net, j) * L.scale * L.scale * g2 + bafu_net_layer_bias_lr(net, j) * L.scale * L.scale;
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
  if (bafu_net_nunits(net) != bafu_net_nlayers(net))
    return bafu_error(BAFU_EINVAL, "block_depth: the spectra cover residual branches of one layer (block_depth = 1)");
  const size_t n = max_dim(net);
  const double bytes = 3.0 * (double)n * (double)n * 8.0 + (double)bafu_net_memory_bytes(bafu_net_get_params(net));
  if ((st = bafu_memory_check(bytes, "width: the dense method (3 n^2 doubles beyond the network; the kpm method does not)")))
    return st;
  bafu_spec_dense *ws = calloc(1, sizeof *ws);
  if (!ws) return bafu_error(BAFU_ENOMEM, "out of memory");
  ws->nmax = n;
  ws->vectors = vectors;
  ws->K = malloc(n * n * sizeof(double));
  ws->A = malloc(n * n * sizeof(double));
  ws->T = malloc(n * n * sizeof(double));
  ws->g = malloc(n * sizeof(double));
  ws->d = malloc(n * sizeof(double));
  ws->Kb = malloc(n * sizeof(double));
  if (!ws->K || !ws->A || !ws->T || !ws->g || !ws->d || !ws->Kb) {
    bafu_spec_dense_free(ws);
    return bafu_error(BAFU_ENOMEM, "width: out of memory for the dense BFK (%zu x %zu)", n, n);
  }
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
}

bafu_status bafu_spec_dense_run(bafu_spec_dense *ws, bafu_net *net, bafu_spec_object obj, size_t layer,
                                bafu_spec_moments *mom, double *eval) {
  if (layer >= bafu_net_nlayers(net))
    return bafu_error(BAFU_EINVAL, "layer: index %zu beyond the network's %zu layers", layer,
                      bafu_net_nlayers(net));
  size_t nprev = 0;
  for (size_t j = 0; j <= layer; ++j) {
    const layer_info L = info_of(net, j);
    const size_t n = L.fan_out;
    const double c = layer_mask_c(net, j, ws->g, ws->d);
    if (j == 0) {
      memset(ws->K, 0, n * n * sizeof(double));
      const double diag = obj == BAFU_SPEC_JACOBIAN ? 1.0 : c;
      for (size_t i = 0; i < n; ++i) ws->K[i + i * n] = diag;
    } else {
      /* A = W D (column j of W scaled by d_j), or I + beta W D */
      const double *W = bafu_net_weight(net, j);
      const size_t m = L.fan_in; /* = nprev */
      for (size_t col = 0; col < m; ++col) {
        const double f = L.scale * ws->d[col];
        for (size_t r = 0; r < n; ++r) ws->A[r + col * n] = f * W[r + col * n];
      }
      if (L.norm) { /* A = s W D P: each row a^T of s W D becomes (P a)^T (P symmetric) */
        const double *fs = stream_of(net, j);
        for (size_t r = 0; r < n; ++r) {
          cblas_dcopy((int)m, ws->A + r, (int)n, ws->g, 1);
          apply_norm_jacobian(&L, fs, ws->g);
          cblas_dcopy((int)m, ws->g, 1, ws->A + r, (int)n);
        }
      }
      if (L.residual)
        for (size_t i = 0; i < n; ++i) ws->A[i + i * n] += 1.0;
      /* T = A K (K symmetric, nprev x nprev), then K = c I + T A^T */
      cblas_dsymm(CblasColMajor, CblasRight, CblasLower, (int)n, (int)m, 1.0, ws->K, (int)nprev, ws->A, (int)n,
                  0.0, ws->T, (int)n);
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)n, (int)n, (int)m, 1.0, ws->T, (int)n, ws->A,
                  (int)n, 0.0, ws->K, (int)n);
      const double cj = obj == BAFU_SPEC_JACOBIAN ? 0.0 : c;
      for (size_t i = 0; i < n; ++i) ws->K[i + i * n] += cj;
      /* exact symmetry (rounding of the two products) */
      for (size_t a = 0; a < n; ++a)
        for (size_t b2 = a + 1; b2 < n; ++b2) {
          const double s = 0.5 * (ws->K[a + b2 * n] + ws->K[b2 + a * n]);
          ws->K[a + b2 * n] = ws->K[b2 + a * n] = s;
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
  size_t J, nmax, layer, npts;
  bafu_spec_object obj;
  double *masks; /* J x nmax */
  double *c;     /* J */
  layer_info *L; /* J */
  double *U;     /* J x nmax x R: backward vectors */
  double *w1, *w2, *w3, *t0, *t1, *t2, *r; /* nmax x R */
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
  if (ws->plan) fftw_destroy_plan(ws->plan);
  fftw_free(ws->dct_in);
  fftw_free(ws->dct_out);
  free(ws->masks);
  free(ws->c);
  free(ws->L);
  free(ws->U);
  free(ws->w1);
  free(ws->w2);
  free(ws->w3);
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
  if (bafu_net_nunits(net) != bafu_net_nlayers(net))
    return bafu_error(BAFU_EINVAL, "block_depth: the spectra cover residual branches of one layer (block_depth = 1)");
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
  ws->nmax = max_dim(net);
  const size_t n = ws->nmax, R = kp->vectors, J = ws->J;
  ws->masks = malloc(J * n * sizeof(double));
  ws->c = malloc(J * sizeof(double));
  ws->L = malloc(J * sizeof(layer_info));
  ws->U = malloc(J * n * R * sizeof(double));
  ws->w1 = malloc(n * R * sizeof(double));
  ws->w2 = malloc(n * R * sizeof(double));
  ws->w3 = malloc(n * R * sizeof(double));
  ws->t0 = malloc(n * R * sizeof(double));
  ws->t1 = malloc(n * R * sizeof(double));
  ws->t2 = malloc(n * R * sizeof(double));
  ws->r = malloc(n * R * sizeof(double));
  ws->mu = malloc(kp->moments * sizeof(double));
  ws->dct_in = fftw_malloc(npts * sizeof(double));
  ws->dct_out = fftw_malloc(npts * sizeof(double));
  ws->rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!ws->masks || !ws->c || !ws->L || !ws->U || !ws->w1 || !ws->w2 || !ws->w3 || !ws->t0 || !ws->t1 || !ws->t2 ||
      !ws->r || !ws->mu || !ws->dct_in || !ws->dct_out || !ws->rng) {
    bafu_spec_kpm_free(ws);
    return bafu_error(BAFU_ENOMEM, "kpm_vectors: out of memory for the KPM workspace");
  }
  /* plan once (FFTW_ESTIMATE does not touch the arrays); DCT-III = REDFT01 */
  ws->plan = fftw_plan_r2r_1d((int)npts, ws->dct_in, ws->dct_out, FFTW_REDFT01, FFTW_ESTIMATE);
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
  ws->obj = obj;
  for (size_t j = 0; j <= layer; ++j) {
    ws->L[j] = info_of(net, j);
    const double c = layer_mask_c(net, j, ws->w1, ws->masks + j * ws->nmax);
    ws->c[j] = obj == BAFU_SPEC_JACOBIAN ? (j == 0 ? 1.0 : 0.0) : c;
  }
  return BAFU_OK;
}

/* Matrix-free M v (theory/spectrum.md 3.1): u_layer = v, u_{j-1} = A_j^T u_j;
 * w_0 = c_0 u_0, w_j = A_j w_{j-1} + c_j u_j; M v = w_layer. */
void bafu_spec_kpm_apply(bafu_spec_kpm *ws, bafu_net *net, size_t k, const double *v, double *out) {
  const size_t nmax = ws->nmax, top = ws->layer;
  double *U = ws->U;
  memcpy(U + top * nmax * k, v, ws->L[top].fan_out * k * sizeof(double));
  for (size_t j = top; j >= 1; --j) {
    const layer_info *L = &ws->L[j];
    const double *W = bafu_net_weight(net, j), *d = ws->masks + j * nmax;
    double *uj = U + j * nmax * k, *um = U + (j - 1) * nmax * k;
    /* um = s D (W^T uj) [+ uj] */
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)L->fan_in, (int)k, (int)L->fan_out, 1.0, W,
                (int)L->fan_out, uj, (int)L->fan_out, 0.0, um, (int)L->fan_in);
    for (size_t col = 0; col < k; ++col) {
      double *c = um + col * L->fan_in;
      if (L->norm) { /* A^T = P D s W^T (+ I) */
        for (size_t i = 0; i < L->fan_in; ++i) c[i] *= L->scale * d[i];
        apply_norm_jacobian(L, stream_of(net, j), c);
        for (size_t i = 0; i < L->fan_in; ++i) c[i] += uj[i + col * L->fan_in];
        continue;
      }
      for (size_t i = 0; i < L->fan_in; ++i) {
        double val = L->scale * d[i] * c[i];
        if (L->residual) val += uj[i + col * L->fan_in];
        c[i] = val;
      }
    }
  }
  double *w = ws->w1, *w2 = ws->w2, *t = ws->w3;
  const size_t n0 = ws->L[0].fan_out;
  for (size_t i = 0; i < n0 * k; ++i) w[i] = ws->c[0] * U[i];
  for (size_t j = 1; j <= top; ++j) {
    const layer_info *L = &ws->L[j];
    const double *W = bafu_net_weight(net, j), *d = ws->masks + j * nmax;
    const double *uj = U + j * nmax * k;
    /* w2 = c uj [+ w] + s W (D w) */
    for (size_t col = 0; col < k; ++col) {
      double *c = t + col * L->fan_in;
      memcpy(c, w + col * L->fan_in, L->fan_in * sizeof(double));
      if (L->norm) apply_norm_jacobian(L, stream_of(net, j), c); /* D P w */
      for (size_t i = 0; i < L->fan_in; ++i) c[i] *= d[i];
    }
    for (size_t col = 0; col < k; ++col)
      for (size_t i = 0; i < L->fan_out; ++i) {
        double val = ws->c[j] * uj[i + col * L->fan_out];
        if (L->residual) val += w[i + col * L->fan_out];
        w2[i + col * L->fan_out] = val;
      }
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)L->fan_out, (int)k, (int)L->fan_in, L->scale, W,
                (int)L->fan_out, t, (int)L->fan_in, 1.0, w2, (int)L->fan_out);
    double *tmp = w;
    w = w2;
    w2 = tmp;
  }
  memcpy(out, w, ws->L[top].fan_out * k * sizeof(double));
}

/* Largest Ritz value and its residual after `steps` Lanczos steps from a
 * Rademacher start (full reorthogonalisation is not needed for a bound with
 * margin; theory/spectrum.md 3.2). Uses t0, t1, t2 (one column each). */
static bafu_status lanczos_top(bafu_spec_kpm *ws, bafu_net *net, double *top) {
  const size_t n = ws->L[ws->layer].fan_out, m = ws->kp.lanczos;
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
  const size_t n = ws->L[ws->layer].fan_out, R = ws->kp.vectors, N = ws->kp.moments, P = ws->npts;
  bafu_rng_seed(ws->rng, ws->kp.seed, 0x5bec7ULL);
  ws->done = 0, ws->total = ws->kp.lanczos + N / 2 + 1; /* Lanczos steps, then about N/2 applications */
  double top = 0;
  bafu_status st = lanczos_top(ws, net, &top);
  if (st) return st;
  /* K >= c I for the BFK (A K A^T is positive semi-definite), J J^T >= 0 */
  const double bottom = ws->obj == BAFU_SPEC_JACOBIAN ? 0.0 : ws->c[ws->layer];
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
