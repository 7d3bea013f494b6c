/* spectrum_dyson.h (internal): the infinite-width law of K_L (or J J^T) of a
 * ResNet whose masks are correlated across blocks, by the operator-valued
 * Dyson equation over the mask algebra (theory/spectrum.md 4.9).
 *
 * The weights are circular over the masks with E_D[W X W^T] = s phi(X) I, so
 * the self-energy of the linearisation is diagonal with 2L scalars
 * (sigma_l, tau_l), and for each coordinate's mask path the resolvent is the
 * inverse of a symmetric tridiagonal matrix of order 2L + 3. The expectation
 * over paths is a weighted sum over a sample of paths. */
#ifndef BAFU_SPECTRUM_DYSON_H
#define BAFU_SPECTRUM_DYSON_H

#include <complex.h>
#include <stddef.h>
#include <stdint.h>

#include "bafu/act.h"

typedef struct {
  size_t L;         /* blocks */
  const double *s2; /* s2[l-1] = beta^2 s of block l (/ q_{l-1} for a normalised block), l = 1..L */
  const double *c;  /* c[0..L]: the layers' own terms (Jacobian: c[0] = 1, the rest 0) */
  size_t P;         /* paths */
  const double *d2; /* d2[p L + l - 1] = phi'(stream of block l)^2 on path p */
  const double *w;  /* w[p]: path weights, sum 1 */
} dy_chain;

/* Scratch of dy_solve and dy_newton_system, in complex entries (independent
 * of the number of paths: the paths are visited one at a time). */
size_t dy_scratch_size(size_t L, size_t P);

/* Solve the Dyson equation at z (Im z > 0, or z outside the support) for
 * the self-energy theta[0..2L) = (sigma_1..sigma_L, tau_1..tau_L), starting
 * from theta (in/out; all zero is a valid start far from the support).
 * *g receives phi((z - K)^{-1}). Returns 0 on convergence (relative change
 * below tol), -1 otherwise. */
int dy_solve(const dy_chain *ch, double complex z, double tol, double complex *theta, double complex *g,
             double complex *scratch);

/* Phi(theta) (phi[0..2L)), g and the Jacobian J = I - dPhi/dtheta of the
 * fixed-point residual (row-major 2L x 2L), as Newton's method uses them
 * (theory/spectrum.md 4.9). scratch: dy_scratch_size entries. */
void dy_newton_system(const dy_chain *ch, double complex z, const double complex *theta, double complex *phi,
                      double complex *g, double complex *J, double complex *scratch);

/* Sample P mask paths of a chain of L blocks: the stream is a Gaussian
 * martingale, f_0 ~ N(0, q[0]), f_l = f_{l-1} + N(0, q[l] - q[l-1]); block
 * l + 1 reads f_l (f_l / sqrt(q[l]) where norm[l]), d2[p L + l] = phi'(.)^2.
 * Identical paths are merged: returns the number n of distinct paths, rows
 * d2[0 .. n L), weights w[0..n) = counts / P. scratch: L doubles. d2 holds
 * P L and w P entries. */
size_t dy_paths(bafu_act act, const double *q, const int *norm, size_t L, size_t P, uint64_t seed, double *d2,
                double *w, double *scratch);

/* The two-moment theory of the same chain (theory/moments.md 2.4, one-layer
 * Gaussian blocks) from the mask statistics m[l] = E d_{l+1}^2,
 * m4[l] = E d_{l+1}^4, M[l L + k] = E d_{l+1}^2 d_{k+1}^2 (k < l): m1[0..L],
 * m2[0..L] of K_0..K_L. zk: L doubles of scratch. */
void dy_moments(size_t L, const double *s2, const double *c, const double *m, const double *m4, const double *M,
                double *zk, double *m1, double *m2);

/* The statistics of dy_moments of the chain's path sample. */
void dy_path_stats(const dy_chain *ch, double *m, double *m4, double *M);

/* Calibration (theory/spectrum.md 4.9): the path weights of least relative
 * entropy, w'_p = w_p exp(x_p . lam), whose mask statistics (total weight,
 * m, m4 and M as dy_moments takes them) are the exact ones, so that the law's
 * first two moments are the two-moment theory's. Writes them to w (P entries;
 * may be ch->w) and returns 0 when every statistic is within 1e-13; returns
 * 1 (w untouched) if Newton on lam does not get there (the exact statistics
 * outside what the sample can reach), -1 if out of memory. *resid: the
 * largest relative error of a statistic reached. Memory: 2 P r + r^2 + 8 r
 * doubles, r = dy_calib_rows(L). */
size_t dy_calib_rows(size_t L);
int dy_calibrate(dy_chain *ch, double *w, const double *m, const double *m4, const double *M, double *resid);

#endif
