/* bafu/moments.h: width-then-depth theory of the backward-to-feature kernel
 * (BFK) for one input: the layer recursion of its first two normalised
 * spectral moments and the predicted backward-feature angle, and the
 * continuum (L -> infinity) limit of ResNets with beta = b / sqrt(L).
 *
 * Derivations: theory/moments.md. The layers are those of the engine
 * (bafu/net.h): same indexing, labels and learning-rate groups, and the
 * moments are in the engine's units, m_p = tr(K_l^p) / n_l, so that
 * m1 = E[D_l] / E|b_l|^2 for an independent backward vector.
 *
 * Output arrays are the caller's; nothing is retained. After an error they
 * are partly written (unspecified). Thread safety: no global state; every
 * function may run concurrently with any other on distinct outputs. */
#ifndef BAFU_MOMENTS_H
#define BAFU_MOMENTS_H

#include <stddef.h>

#include "bafu/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int label;     /* user-facing layer index, as in bafu mc */
  double q_in;   /* variance of the entries of the layer's input stream */
  double q;      /* variance of the entries of f_l (NNGP diagonal) */
  double c;      /* c_l = lr_l s_l^2 E|g_l|^2: the layer's own term (its mean for a branch of K layers) */
  double p1;     /* phi(A^T A) */
  double p2;     /* phi((A^T A)^2) */
  double m1;     /* tr(K_l) / n */
  double m2;     /* tr(K_l^2) / n */
  double cos_theta; /* predicted angle for the network's own backward vector */
  double cos_spectral; /* m1 / sqrt(m2): the angle for an independent direction */
  double back;   /* E|b_l|^2 / E|b_top|^2, the backward norm factor */
  double decay;  /* E D_l = sum_{k <= l} c_k E|b_k|^2 (probe: E|b_top|^2 = 1; mse: k (Var y + 1)) */
  double sensitivity; /* |df_l|_rms / D_top = decay_l / (|b_l| cos_theta sqrt(n_l)) / decay_top */
  /* Predictions of the bafu mc columns of the same name for the probe signal
   * (E|b_top|^2 = 1): |b_l| = sqrt(back), D_l = m1 back, |df_l| = sqrt(m2 back)
   * (theory/moments.md 2.6). */
  double backward_norm, loss_decay, feature_speed;
} bafu_moments_layer;

/* Number of layers of p (as bafu_net_nlayers). p is not checked; cannot fail. */
size_t bafu_moments_nlayers(const bafu_net_params *p);

/* |x|^2 of an input x[0..d), summed in order: the x2 of bafu_moments_run for
 * that input (x = NULL or d = 0: 0, which means the drawn input's
 * expectation). Cannot fail. */
double bafu_moments_input_x2(const double *x, size_t d);

/* Bytes a moment run needs: the caller's output array and the recursion's
 * workspace (an estimate, for bafu_memory_check before allocating). p is not
 * checked; cannot fail. */
double bafu_moments_memory_bytes(const bafu_net_params *p);

/* Run the moment recursion for one input with |x|^2 = x2 (x2 <= 0 or NAN: the
 * expectation of a drawn input, d for N(0, I_d) and 1 for one-hot inputs).
 * out has bafu_moments_nlayers(p) entries. A layer with nothing trained at or
 * below it (m1 = 0, e.g. lr_input = 0) gets cos_theta = cos_spectral = NAN:
 * the angle is undefined (its sensitivity is then NAN too).
 * Errors: BAFU_EINVAL for invalid p (bafu_net_params_check), the xent signal,
 * x2 = +inf, or a ResNet without embedding whose blocks are not trained
 * (branch_scale or lr_hidden 0); BAFU_ENUMERIC for non-finite moments
 * (overflow, naming the layer); BAFU_ENOMEM; errors of the activation
 * moments (bafu/act.h). */
bafu_status bafu_moments_run(const bafu_net_params *p, double x2, bafu_moments_layer *out);

/* The same, reporting progress to fn (ResNets: 2L units, the two sweeps over
 * pairs of blocks; otherwise one unit at the end). The results do not depend
 * on fn. */
bafu_status bafu_moments_run_progress(const bafu_net_params *p, double x2, bafu_progress_fn fn, void *ctx,
                                      bafu_moments_layer *out);

/* The same under the freeness approximation for ResNet masks (masks of
 * different blocks independent): exact for MLPs and linear ResNets, biased for
 * nonlinear ResNets (theory/moments.md 2.4); kept for comparison and tests.
 * Arguments and errors as bafu_moments_run. */
bafu_status bafu_moments_run_free(const bafu_net_params *p, double x2, bafu_moments_layer *out);

/* The same as bafu_moments_run with every mask correlation of a ResNet's
 * blocks by its own two-dimensional quadrature, O(L^2) of them (the method the
 * convolution grid of theory/moments.md 2.9 replaces for tanh, gelu and swish;
 * identical for relu, linear and erf, whose correlations are closed forms).
 * Kept for comparison and tests. Arguments and errors as bafu_moments_run. */
bafu_status bafu_moments_run_pairwise(const bafu_net_params *p, double x2, bafu_moments_layer *out);

/* Continuum limit of a ResNet with beta = b / sqrt(L), L -> infinity, at
 * t = l / L in [0, 1]. State: q(t), mu(t) = m1/n, r(t) = (m2 - m1^2)/n^2. */
typedef struct {
  double t, q, mu, r, cos_theta;
  double error; /* estimated discretisation error of cos_theta (max over t) */
} bafu_continuum_point;

/* The continuum equations (theory/moments.md section 3; 3.1 normalised
 * branches, 3.2 branches of K layers) for the network options of p
 * (activation, sigma_w2, init, embedding, biases, learning rates, branch_norm,
 * block_depth; depth and branch exponent are ignored) with branch constant b,
 * solved by the spectral method of theory/moments.md 3.3 on n = 8, 16, 32, ...
 * nodes in sqrt(t) until two successive solves, the finer on at least 32
 * nodes, agree to rtol at every output point; out[].error is that difference (the error of the coarser solve; the
 * returned finer one is much more accurate). At n = 512 the solver stops even
 * if the difference still exceeds rtol, and the call succeeds. The cost does
 * not depend on npoints. Writes the state at t = k/npoints, k = 0..npoints
 * (npoints+1 entries of out). At t = 0 without embedding cos = 1 (the limit
 * t -> 0+); b = 0 gives the initial state at every t (error 0).
 * Errors: BAFU_EINVAL for b < 0 or not finite, rtol not in (0, 1), npoints not
 * in 1..100000, p failing bafu_net_params_check as a ResNet, or nothing
 * trained (no embedding and lr_hidden = 0); BAFU_ENOMEM; BAFU_ENUMERIC (q, mu
 * or r beyond the floating-point range; an activation moment that fails). */
bafu_status bafu_continuum_run(const bafu_net_params *p, double b, double rtol, size_t npoints,
                               bafu_continuum_point *out);

/* Closed form of the continuum angle where one is known: linear activation
 * without embedding, cos(t) = (1 + 2 s^K b^2 t / 3)^(-1/2), K = block_depth
 * (normalised branches: (1 + 2 ln(1 + s^K b^2 t) / 3)^(-1/2)). NAN otherwise
 * (no status; p is not checked). */
double bafu_continuum_cos_closed(const bafu_net_params *p, double b, double t);

/* One line describing the L -> infinity regime of the output angle for the
 * architecture, activation, init and branch exponent of p (limit 0 or 1, the
 * rate and its constant, or the non-trivial limit), derived in
 * theory/moments.md section 4. Written into buf (size > 0; truncated to fit,
 * always NUL-terminated; untouched on error). Errors: BAFU_EINVAL for invalid
 * p; errors of the activation moments and (A = 1/2) of bafu_continuum_run. */
bafu_status bafu_moments_regime(const bafu_net_params *p, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
