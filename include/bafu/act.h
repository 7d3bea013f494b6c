/* bafu/act.h: activation functions, their derivatives, and Gaussian expectations.
 *
 * Derivations: theory/activations.md. Expectations are over u ~ N(0, q) (or a
 * centred bivariate Gaussian), computed in closed form where one is known
 * (relu, linear, erf) and by Gauss-Hermite quadrature (GSL) otherwise.
 *
 * Note on the quadrature (src/act.c, theory/activations.md section 4): plain
 * Gauss-Hermite turned out to be inaccurate beyond q ~ 1 (tanh: 7e-9 at q = 1 and
 * O(1) at q = 100 with 128 nodes), so the "Gauss-Hermite" rule below is realised
 * as a composite Gauss-Legendre rule in z = u / sqrt(q), graded at both the
 * Gaussian and the activation scale: relative error <= 3e-15 for q in [1e-6, 1e6],
 * exact to rounding for relu. The bivariate functions accept either output NULL.
 *
 * Errors of the bafu_status functions: BAFU_EINVAL for an activation code
 * outside the enum, a variance that is negative or not finite, or (bivariate)
 * |c12| > sqrt(q1 q2) by more than a relative 1e-12 (smaller excesses are
 * clamped); BAFU_ENUMERIC if a result is not finite; BAFU_ENOMEM if the
 * quadrature nodes cannot be set up (quadrature paths only). Outputs are
 * written only once the arguments are valid; on BAFU_ENUMERIC they hold the
 * non-finite values. No function allocates memory the caller must free.
 *
 * Thread safety: all functions are thread-safe (no mutable state: the
 * quadrature nodes are computed once under call_once). */
#ifndef BAFU_ACT_H
#define BAFU_ACT_H

#include <stddef.h>

#include "bafu/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  BAFU_ACT_RELU,
  BAFU_ACT_LINEAR,
  BAFU_ACT_TANH,
  BAFU_ACT_ERF,   /* phi(u) = erf(u) */
  BAFU_ACT_GELU,  /* phi(u) = u Phi(u), Phi the standard normal cdf */
  BAFU_ACT_SWISH, /* phi(u) = u / (1 + exp(-u)) */
  BAFU_ACT_COUNT
} bafu_act;

/* Name <-> enum ("relu", "linear", "tanh", "erf", "gelu", "swish").
 * bafu_act_from_name: BAFU_EINVAL for an unknown or NULL name (*out unchanged).
 * bafu_act_name: a static string, "unknown" for a code outside the enum; never
 * NULL, cannot fail. */
bafu_status bafu_act_from_name(const char *name, bafu_act *out);
const char *bafu_act_name(bafu_act a);
/* The names by value, NULL-terminated. */
extern const char *const bafu_act_names[BAFU_ACT_COUNT + 1];

/* Pointwise phi and phi'. For relu, phi'(0) = 0. Accurate in both tails, no
 * overflow for any finite u. Return NAN for a code outside the enum (no
 * status). */
double bafu_act_phi(bafu_act a, double u);
double bafu_act_dphi(bafu_act a, double u);

/* Vectorised: phi[i] = phi(u[i]), dphi[i] = phi'(u[i]) for i < n (caller's
 * arrays of n doubles). Either output may be NULL. Outputs may not alias u.
 * A code outside the enum fills the outputs with NAN (no status). */
void bafu_act_apply(bafu_act a, size_t n, const double *u, double *phi, double *dphi);

/* Single-variable Gaussian moments for u ~ N(0, q), q >= 0. */
typedef struct {
  double phi2;  /* E[phi(u)^2] */
  double dphi2; /* E[phi'(u)^2] */
  double dphi4; /* E[phi'(u)^4] */
} bafu_act_moments;

/* Closed form where known (relu, linear, erf), Gauss-Hermite otherwise. q must
 * be finite, >= 0; q = 0 gives the moments of u = 0 (all 0 for relu). Errors as
 * above. */
bafu_status bafu_act_moments_eval(bafu_act a, double q, bafu_act_moments *out);

/* Same quantities by Gauss-Hermite quadrature for every activation (used to test
 * the closed forms, and as the fallback). */
bafu_status bafu_act_moments_quad(bafu_act a, double q, bafu_act_moments *out);

/* Bivariate: (u, v) centred Gaussian with Var u = q1, Var v = q2, Cov = c12
 * (|c12| <= sqrt(q1 q2)). Stores E[phi(u) phi(v)] in *e_phiphi and
 * E[phi'(u) phi'(v)] in *e_dphidphi (either may be NULL). Closed forms for
 * relu, linear, erf (the _quad variant: quadrature for every activation).
 * Errors as above. */
bafu_status bafu_act_bivariate(bafu_act a, double q1, double q2, double c12,
                               double *e_phiphi, double *e_dphidphi);
bafu_status bafu_act_bivariate_quad(bafu_act a, double q1, double q2, double c12,
                                    double *e_phiphi, double *e_dphidphi);

/* Mask correlation: E[phi'(u)^2 phi'(v)^2] for the same centred bivariate
 * Gaussian into *out (not NULL), closed forms for relu, linear, erf;
 * quadrature otherwise (the _quad variant: always). Errors as above. It is
 * the trace phi(D_j^2 D_k^2) of two layers' masks in a ResNet, whose residual
 * stream makes the masks of different layers correlated (theory/moments.md 2.4). */
bafu_status bafu_act_mask_corr(bafu_act a, double q1, double q2, double c12, double *out);
bafu_status bafu_act_mask_corr_quad(bafu_act a, double q1, double q2, double c12, double *out);

/* Hermite coefficients: with h_k the orthonormal Hermite polynomials of
 * N(0, 1) (h_0 = 1, h_1 = z, sqrt(k+1) h_{k+1} = z h_k - sqrt(k) h_{k-1}) and
 * z ~ N(0, 1), for k = 0..K:
 *   ah[k] = E[phi(sqrt(q) z) h_k(z)] / sqrt(q),   bh[k] = E[phi'(sqrt(q) z) h_k(z)],
 * so that (Mehler) for (u, v) centred Gaussian with Var u = Var v = q and
 * correlation rho, E[phi(u) phi(v)] = q sum_k ah[k]^2 rho^k and
 * E[phi'(u) phi'(v)] = sum_k bh[k]^2 rho^k (theory/activations.md 6). A folded
 * composite Gauss-Legendre rule (AM 6.2); the absolute error of each
 * coefficient is a few 1e-16 times sqrt(E phi^2 / q) (resp. sqrt(E phi'^2)).
 * q must be finite and > 0, K <= BAFU_ACT_HERMITE_MAX; ah and bh are the
 * caller's arrays of K + 1 doubles (not NULL). Errors as above (BAFU_EINVAL
 * also for q = 0, K too large or a NULL array). Cost: about
 * 4000 (1 + K/60) evaluations of phi and phi' and 12 K of them flops. */
#define BAFU_ACT_HERMITE_MAX 4096
bafu_status bafu_act_hermite(bafu_act a, double q, size_t K, double *ah, double *bh);

#ifdef __cplusplus
}
#endif

#endif
