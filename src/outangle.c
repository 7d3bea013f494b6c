/* outangle.c: output-layer angle for a batch from the limiting NTK (bafu/outangle.h). */
#include "bafu/outangle.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/kernel.h"
#include "bafu/rng.h"

bafu_status bafu_output_angle(const bafu_net_params *p, size_t samples, uint64_t seed, double *mean, double *se) {
  if (p->signal != BAFU_SIGNAL_MSE)
    return bafu_error(BAFU_EINVAL, "signal: the output angle for a batch needs signal = mse");
  if (samples < 2) return bafu_error(BAFU_EINVAL, "output angle: need at least 2 samples");
  const size_t m = p->batch, k = p->outputs, d = p->input_dim ? p->input_dim : p->width;
  if (d < m) return bafu_error(BAFU_EINVAL, "input_dim: need input dim >= batch for orthogonal inputs");
  bafu_kernel *ker;
  bafu_status st = bafu_kernel_alloc(p, &ker);
  if (st) return st;
  double *X = calloc(d * m, sizeof *X), *L = malloc(m * m * sizeof *L), *r = malloc(m * k * sizeof *r);
  double *Tr = malloc(m * k * sizeof *Tr);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!X || !L || !r || !Tr || !rng) {
    st = bafu_error(BAFU_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t a = 0; a < m; ++a) X[a + a * d] = sqrt((double)d); /* orthogonal, |x|^2 = d */
  if ((st = bafu_kernel_run(ker, X))) goto done;
  const size_t top = bafu_kernel_nlayers(ker) - 1;
  const double *Theta = bafu_kernel_theta(ker, top), *Sigma = bafu_kernel_sigma(ker, top);
  /* Cholesky factor of Sigma (+ tiny jitter for a singular covariance) */
  memcpy(L, Sigma, m * m * sizeof *L);
  double tr = 0;
  for (size_t a = 0; a < m; ++a) tr += Sigma[a + a * m];
  for (size_t a = 0; a < m; ++a) L[a + a * m] += 1e-14 * tr / (double)m;
  lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', (lapack_int)m, L, (lapack_int)m);
  if (info) {
    st = bafu_error(BAFU_ELAPACK, "output angle: Cholesky of the output covariance failed (info %d)", (int)info);
    goto done;
  }
  for (size_t a = 0; a < m; ++a)
    for (size_t b = a + 1; b < m; ++b) L[a + b * m] = 0;
  double s1 = 0, s2 = 0;
  for (size_t i = 0; i < samples; ++i) {
    bafu_rng_seed(rng, seed, i);
    /* r = L z - t, one column per output */
    bafu_fill_gaussian(rng, 1.0, m * k, Tr);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)k, (int)m, 1.0, L, (int)m, Tr, (int)m, 0.0, r,
                (int)m);
    bafu_fill_gaussian(rng, 1.0, m * k, Tr);
    for (size_t e = 0; e < m * k; ++e) r[e] -= Tr[e];
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)k, (int)m, 1.0, Theta, (int)m, r, (int)m, 0.0,
                Tr, (int)m);
    const double c = cblas_ddot((int)(m * k), r, 1, Tr, 1) /
                     (cblas_dnrm2((int)(m * k), r, 1) * cblas_dnrm2((int)(m * k), Tr, 1));
    s1 += c;
    s2 += c * c;
  }
  *mean = s1 / (double)samples;
  *se = sqrt(fmax(s2 / (double)samples - *mean * *mean, 0) / (double)(samples - 1));
  if (!isfinite(*mean)) st = bafu_error(BAFU_ENUMERIC, "output angle is not finite");
done:
  bafu_kernel_free(ker);
  free(X);
  free(L);
  free(r);
  free(Tr);
  if (rng) gsl_rng_free(rng);
  return st;
}
