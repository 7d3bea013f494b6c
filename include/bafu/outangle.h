/* bafu/outangle.h: the output-layer angle for a batch with the squared loss,
 * predicted from the limiting NTK and the residual vector (theory/kernel.md,
 * section "output angle").
 *
 * Thread safety: no global state; calls may run concurrently. */
#ifndef BAFU_OUTANGLE_H
#define BAFU_OUTANGLE_H

#include <stdint.h>

#include "bafu/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* For p with signal mse, batch m >= 1 and input dim d >= m: the inputs are
 * taken orthogonal with |x|^2 = d (the d -> infinity limit of N(0, I_d)
 * draws); the readout's NTK
 * Theta (m x m) and output covariance Sigma come from bafu_kernel_run. The
 * residual r = y - t has independent columns per output with
 * y ~ N(0, Sigma), t ~ N(0, I), and the output BFK is Theta (x) I_k, so
 *   cos = <r, Theta r> / (|r| |Theta r|).
 * Its expectation over r is estimated with `samples` >= 2 draws of r (stream
 * `seed`): *mean and its standard error *se (the sample sd / sqrt(samples)).
 * Errors: BAFU_EINVAL for another signal, samples < 2, d < m or invalid p;
 * errors of bafu_kernel_alloc and bafu_kernel_run; BAFU_ENOMEM; BAFU_ELAPACK
 * if the Cholesky factorisation of Sigma fails; BAFU_ENUMERIC if the mean is
 * not finite. *mean and *se are written only once the samples are done. */
bafu_status bafu_output_angle(const bafu_net_params *p, size_t samples, uint64_t seed, double *mean, double *se);

#ifdef __cplusplus
}
#endif

#endif
