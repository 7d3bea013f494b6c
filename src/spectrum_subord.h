/* spectrum_subord.h (internal): the infinite-width law of K_l or J J^T for
 * MLPs and linear ResNets, exact to rounding (for MLPs other than ReLU and
 * linear: of the Gauss-Hermite mask law), by solving the subordination
 * equations at each real point (theory/spectrum.md 4.7-4.8). */
#ifndef BAFU_SPECTRUM_SUBORD_H
#define BAFU_SPECTRUM_SUBORD_H

#include <complex.h>
#include <stddef.h>

#include "bafu/act.h"

/* One layer's factor law(P) = law(A^T A):
 *   SUB_RELU    MP(1) [x] {0, s} with masses 1/2   Sigma(u) = 2 (1 - u) / (s (1 + u))
 *   SUB_LINEAR  MP(1) [x] {s}                      Sigma(u) = (1 - u) / s
 *   SUB_RESNET  (I + T)^T (I + T), T circular with phi(T T^T) = s (the root of a quadratic)
 *   SUB_MASK    MP(1) [x] D, D the law of nt atoms t[i] with masses w[i] (the
 *               Gauss-Hermite mask law of s phi'(u)^2): Sigma(u) = (1 - u) v / u with
 *               psi_D(v) = u / (1 - u), v by Newton (theory/spectrum.md 4.8) */
typedef enum { SUB_RELU, SUB_LINEAR, SUB_RESNET, SUB_MASK } sub_kind;

typedef struct {
  sub_kind kind;
  double s;      /* gain s (dense) or s2 = beta^2 s (/ q for a normalised block) */
  double cbelow; /* the shift c of the kernel this factor multiplies (layer below); unused for the first */
  const double *t, *w; /* SUB_MASK: the atoms and their masses (sum 1), nt of them, all t > 0 */
  size_t nt;
  double m1, m2; /* SUB_MASK: the atoms' first two moments */
} sub_factor;

/* K_L = cL + K_b [x] P_{b+1} ... with the shifts: K_l = c_l + K_{l-1} [x] P_l,
 * l = b+1..L, K_b = a I (a > 0); f[0..n-1] are the factors of layers b+1..L. */
typedef struct {
  size_t n;
  const sub_factor *f;
  double a, cL;
  double scale;  /* a size of K_L - cL (its m1), for tolerances */
  double span;   /* hi - cL once known (sub_edges sets it; 0 before), for the homotopy's start */
  double complex *rs; /* 4 n entries: branch state (SUB_RESNET square roots, SUB_MASK the last
                         Sigma_D = v/u, Newton's start) and scratch, caller's */
} sub_chain;

/* The mask law of a dense layer, law(s phi'(sqrt(q) h)^2) with h ~ N(0, 1),
 * as atoms t[i] with masses w[i] (sum 1): the trapezoid rule in h with step
 * `step` on |h| <= 9.5 (spectrally accurate: phi'^2 is analytic in a strip).
 * Returns the number of atoms, 0 if more than cap would be needed. */
size_t sub_mask_law_step(bafu_act act, double s, double q, double step, double *t, double *w, size_t cap);

/* The same with the step halved from 1/2 until the law's first two moments
 * equal m1 = s E[phi'^2] and m2 = s^2 E[phi'^4] (accurate Gaussian moments) to
 * 1e-13 relative, and then once more (the rule's error squares at each
 * halving once it is small; theory/spectrum.md 4.8).
 * Returns the number of atoms, 0 if no step up to cap atoms reaches it. */
size_t sub_mask_law(bafu_act act, double s, double q, double m1, double m2, double *t, double *w, size_t cap);

/* Density of the continuous part of K_L at real x (0 outside the support);
 * *t (may be NULL) receives the bottom variable. Returns 0 on success, -1 if
 * the continuation failed. */
int sub_density(const sub_chain *ch, double x, double *rho, double complex *t);

/* The same by Newton at x from *t (and the branch state left by the previous
 * call): continuation along a grid inside the support. -1 if Newton fails or
 * finds a real root (the branch state is then left as it was); the caller
 * checks the result against sub_density. */
int sub_density_warm(const sub_chain *ch, double x, double *rho, double complex *t);

/* Ends of the support of the continuous part: hi by a scan of the real
 * bottom variable from 0 to the first critical point (Brent on Z'), lo by
 * bisection on the density from below and Brent on Z' (or cL, a hard edge).
 * Returns 0, or -1 if an end was not found. */
int sub_edges(sub_chain *ch, double *lo, double *hi);

#endif
