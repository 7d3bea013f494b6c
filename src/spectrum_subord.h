/* spectrum_subord.h (internal): the infinite-width law of K_l or J J^T for
 * ReLU and linear MLPs and linear ResNets, exact to rounding, by solving the
 * subordination equations at each real point (theory/spectrum.md 4.7). */
#ifndef BAFU_SPECTRUM_SUBORD_H
#define BAFU_SPECTRUM_SUBORD_H

#include <complex.h>
#include <stddef.h>

/* One layer's factor law(P) = law(A^T A):
 *   SUB_RELU    MP(1) [x] {0, s} with masses 1/2   Sigma(u) = 2 (1 - u) / (s (1 + u))
 *   SUB_LINEAR  MP(1) [x] {s}                      Sigma(u) = (1 - u) / s
 *   SUB_RESNET  (I + T)^T (I + T), T circular with phi(T T^T) = s (the root of a quadratic) */
typedef enum { SUB_RELU, SUB_LINEAR, SUB_RESNET } sub_kind;

typedef struct {
  sub_kind kind;
  double s;      /* gain s (dense) or s2 = beta^2 s (/ q for a normalised block) */
  double cbelow; /* the shift c of the kernel this factor multiplies (layer below); unused for the first */
} sub_factor;

/* K_L = cL + K_b [x] P_{b+1} ... with the shifts: K_l = c_l + K_{l-1} [x] P_l,
 * l = b+1..L, K_b = a I (a > 0); f[0..n-1] are the factors of layers b+1..L. */
typedef struct {
  size_t n;
  const sub_factor *f;
  double a, cL;
  double scale;  /* a size of K_L - cL (its m1), for tolerances */
  double span;   /* hi - cL once known (sub_edges sets it; 0 before), for the homotopy's start */
  double complex *rs; /* 4 n entries: branch state (SUB_RESNET square roots) and scratch, caller's */
} sub_chain;

/* Density of the continuous part of K_L at real x (0 outside the support);
 * *t (may be NULL) receives the bottom variable. Returns 0 on success, -1 if
 * the continuation failed. */
int sub_density(const sub_chain *ch, double x, double *rho, double complex *t);

/* The same by Newton at x from *t (and the branch state left by the previous
 * call): continuation along a grid inside the support. -1 if Newton fails or
 * finds a real root; the caller checks the result against sub_density. */
int sub_density_warm(const sub_chain *ch, double x, double *rho, double complex *t);

/* Ends of the support of the continuous part: hi by a scan of the real
 * bottom variable from 0 to the first critical point (Brent on Z'), lo by
 * bisection on the density from below and Brent on Z' (or cL, a hard edge).
 * Returns 0, or -1 if an end was not found. */
int sub_edges(sub_chain *ch, double *lo, double *hi);

#endif
