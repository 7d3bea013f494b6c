/* bafu/outangle.h: the output-layer angle for a batch with the squared loss,
 * predicted from the limiting NTK and the residual vector (theory/kernel.md,
 * section "output angle"). */
#ifndef BAFU_OUTANGLE_H
#define BAFU_OUTANGLE_H

#include <stdint.h>

#include "bafu/net.h"

/* For p with signal mse and batch m >= 1: the inputs are taken orthogonal with
 * |x|^2 = d (the d -> infinity limit of N(0, I_d) draws); the readout's NTK
 * Theta (m x m) and output covariance Sigma come from bafu_kernel_run. The
 * residual r = y - t has independent columns per output with
 * y ~ N(0, Sigma), t ~ N(0, I), and the output BFK is Theta (x) I_k, so
 *   cos = <r, Theta r> / (|r| |Theta r|).
 * Its expectation over r is estimated with `samples` draws of r (stream
 * `seed`): *mean and its standard error *se. */
bafu_status bafu_output_angle(const bafu_net_params *p, size_t samples, uint64_t seed, double *mean, double *se);

#endif
