/* bafu/kernel.h: infinite-width kernel recursions for a batch of inputs: the
 * NNGP covariance Sigma_l, the derivative kernel Sigma'_l, the learning-rate
 * weighted NTK / backward-to-feature kernel Theta_l and the backward factor
 * P_l, for the networks of the finite-width engine (bafu/net.h).
 *
 * Derivations: theory/kernel.md (section numbers "KR x" below refer to it).
 *
 * Layers, labels and learning-rate groups are exactly those of the engine:
 * layer j = 0..J-1 with label 1..L (MLP), 0 (ResNet embedding) and 1..L
 * (ResNet blocks), L+1 (mse readout). For a batch X (d x m, one sample per
 * column) every layer carries four m x m matrices (column-major, symmetric):
 *
 *   Sigma_j(a,b)  = E[f_j,i(a) f_j,i(b)], the covariance of one coordinate of
 *                   f_j across samples (the NNGP kernel);
 *   Sprime_j(a,b) = s E[phi'(u_a) phi'(u_b)], u ~ N(0, Sigma_{j-1}): the
 *                   derivative kernel of the activation that layer j reads
 *                   (0 for the plain layer that reads x: it has none; a
 *                   block with a normalised branch reads u ~ N(0, Sigma~),
 *                   Sigma~(a,b) = Sigma_{j-1}(a,b) / sqrt(Sigma_{j-1}(a,a)
 *                   Sigma_{j-1}(b,b)), KR 2.6); for a block whose
 *                   branch has K layers (block_depth), the product
 *                   D_1 .* ... .* D_K of its layers' derivative kernels
 *                   D_k = s E[phi'(v_a) phi'(v_b)], v the pre-activation
 *                   layer k of the branch reads (KR 2.7);
 *   Theta_j       = the BFK in the engine's units: for the finite-width
 *                   K_j = sum_{k<=j} lr_k (df_j/dW_k)(df_j/dW_k)^T,
 *                   (1/n) sum_i K_j[(i,a),(i,b)] -> Theta_j(a,b) and the
 *                   blocks i != j vanish: K_j ~ Theta_j (x) I_n in normalised
 *                   trace (first moment) only - its spectrum spreads, see
 *                   bafu/moments.h. For one input Theta_j = tr(K_j)/n = m1;
 *   P_j           = the backward factor: with Pi_j(a,b) = E<b_j(a), b_j(b)>
 *                   (summed over the coordinates of f_j), Pi_j = P_j .* Pi_top,
 *                   P_top = all ones (Pi_top = I for the probe).
 * and the layer's own term Gamma_j = lr_j s_j^2 E[g_j^T g_j] (the m x m
 * expected Gram of the vector the layer multiplies, weighted as in the
 * engine's c_l; for a branch of K layers beta^2 times the sum of its layers'
 * own terms, each multiplied by the D of the later layers of the branch,
 * KR 2.7), so that Theta_j = Gamma_j + M_j .* Theta_{j-1} with the
 * Jacobian factor M_j = Sprime_j (plain layer) or 1 + beta^2 Sprime_j
 * (residual block; 1 + beta^2 Sprime_j(a,b) / sqrt(Sigma_{j-1}(a,a)
 * Sigma_{j-1}(b,b)) when it normalises its branch, KR 2.6), and
 * P_{j-1} = M_j .* P_j. Consequences used by tests:
 * for the probe, E D_j = <Theta_j, Pi_j> = sum_a Theta_j(a,a) P_j(a,a),
 * E C_j = sum_a Gamma_j(a,a) P_j(a,a) and E|b_j|^2 = sum_a P_j(a,a) (KR 5).
 *
 * Assumptions (KR 1): infinite width; the backward pass uses weights
 * independent of the forward pass (gradient independence, exact for the
 * probe at the top layer, O(L/n) otherwise). ResNet without embedding: the
 * coordinates of x enter the blocks' activations directly and are treated as
 * centred Gaussian with covariance X^T X / d - exact for inputs with Gaussian
 * coordinates (N(0, I_d) draws, the engine's default), an approximation for
 * other fixed inputs (use the embedding). Weight init (Gaussian or scaled
 * orthogonal) does not change these first moments; step and seed are
 * irrelevant.
 *
 * Thread safety: no global state; distinct workspaces (and calls of
 * bafu_kernel_two_inputs) may be used concurrently, one workspace must not be
 * used from two threads at once (the const getters may run concurrently
 * with each other, not with bafu_kernel_run). */
#ifndef BAFU_KERNEL_H
#define BAFU_KERNEL_H

#include <stddef.h>

#include "bafu/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the Gaussian expectations are computed. DIRECT: ReLU by its closed
 * forms carried as per-pair angles (stable at any depth, KR 3), every other
 * activation by bafu_act_bivariate / bafu_act_moments_eval at every layer
 * (closed forms for linear and erf, quadrature otherwise: tanh, gelu, swish).
 * AUTO (the default): as DIRECT, except that for tanh, gelu and swish a range
 * of variances met often enough is tabulated once (Chebyshev interpolants
 * built from the activation's Hermite coefficients, KR 10) and served from
 * the table, each value within a stated bound of 3e-14 relative to
 * E[phi^2], E[phi'^2]; pairs of samples whose variances differ by more than
 * a relative 2^-40, q = 0, subnormal q and q > 64 stay direct. Runs too short
 * to pay for a table give exactly the DIRECT results. QUADRATURE:
 * bafu_act_bivariate_quad / bafu_act_moments_quad for every activation, no
 * angle path (for tests; batch mode only). */
typedef enum { BAFU_KERNEL_AUTO, BAFU_KERNEL_QUADRATURE, BAFU_KERNEL_DIRECT } bafu_kernel_method;

/* Number of layers J of p (as bafu_net_nlayers of a network with p). p is not
 * checked; cannot fail. */
size_t bafu_kernel_count_layers(const bafu_net_params *p);

/* ---------------------------------------------------------------------------
 * Batch recursion: a workspace sized once for p (m = p->batch samples of
 * dimension d = p->input_dim, 0 meaning = width). */

typedef struct bafu_kernel bafu_kernel;

/* Check p (bafu_net_params_check: BAFU_EINVAL) and allocate J x 5 (+ 4, or 8 with block_depth > 1,
 * scratch) matrices of m x m doubles, and for tanh, gelu, swish the 13 MB
 * table of KR 10 (its pages touched only where used). Refuses (BAFU_ELIMIT,
 * message with the estimate of the matrices) beyond bafu_memory_limit_bytes();
 * BAFU_ENOMEM if an allocation fails. p is copied. *out is NULL on error; the caller owns *out and
 * releases it with bafu_kernel_free (NULL-safe). */
bafu_status bafu_kernel_alloc(const bafu_net_params *p, bafu_kernel **out);
void bafu_kernel_free(bafu_kernel *k);

/* Choose how expectations are computed (default AUTO). BAFU_EINVAL for a
 * value outside the enum (the method is then unchanged). */
bafu_status bafu_kernel_set_method(bafu_kernel *k, bafu_kernel_method method);

/* Run every layer for the inputs X (d x m, column-major, not retained).
 * Errors: BAFU_EINVAL for X NULL or non-finite inputs; BAFU_ENUMERIC (naming
 * the layer) if the input Gram matrix, Sigma, Theta or P is not finite
 * (overflow), or if a sample's stream entering a normalised branch has zero
 * variance (no rms to divide by; "branch_norm: ..."); errors of the
 * activation expectations (bafu/act.h). After an error the stored matrices are
 * unspecified. */
bafu_status bafu_kernel_run(bafu_kernel *k, const double *X);

/* Report the progress of later bafu_kernel_run calls (one unit per layer) to
 * fn (NULL: none). Cannot fail. */
void bafu_kernel_set_progress(bafu_kernel *k, bafu_progress_fn fn, void *ctx);

/* J and m of the workspace; cannot fail. */
size_t bafu_kernel_nlayers(const bafu_kernel *k);
size_t bafu_kernel_batch(const bafu_kernel *k);

/* Per-layer results (j < J, not checked) after a successful run: user-facing
 * label, and pointers to m x m column-major matrices owned by the workspace
 * (Sigma_j, Sprime_j, Theta_j, Gamma_j, P_j), valid until bafu_kernel_free;
 * their contents change with the next run. Cannot fail. */
int bafu_kernel_label(const bafu_kernel *k, size_t j);
const double *bafu_kernel_sigma(const bafu_kernel *k, size_t j);
const double *bafu_kernel_sprime(const bafu_kernel *k, size_t j);
const double *bafu_kernel_theta(const bafu_kernel *k, size_t j);
const double *bafu_kernel_own(const bafu_kernel *k, size_t j);
const double *bafu_kernel_bwd(const bafu_kernel *k, size_t j);

/* ---------------------------------------------------------------------------
 * Two inputs with |x_a|^2/d = |x_b|^2/d = 1 and x_a.x_b/d = corr: the scalar
 * recursion with the correlation carried stably (the angle for ReLU, KR 3;
 * 1 - c in closed form for erf and linear, KR 4), O(J) memory of 2 doubles
 * per layer for the backward factor. Diagonal entries are equal for both
 * inputs, so each matrix is given by its diagonal and off-diagonal entry. */
typedef struct {
  size_t index;          /* j = 0..J-1 */
  int label;             /* as in bafu mc */
  double q;              /* Sigma_j(a,a) */
  double corr;           /* c_j = Sigma_j(a,b) / Sigma_j(a,a) */
  double one_minus_corr; /* 1 - c_j, to full relative precision for relu, linear, erf */
  double angle;          /* acos(c_j) in [0, pi], likewise */
  double sprime_diag;    /* Sprime_j(a,a) */
  double sprime;         /* Sprime_j(a,b) */
  double ntk_diag;       /* Theta_j(a,a) */
  double ntk;            /* Theta_j(a,b) */
  double own_diag;       /* Gamma_j(a,a) */
  double own;            /* Gamma_j(a,b) */
  double bwd_diag;       /* P_j(a,a) */
  double bwd;            /* P_j(a,b) */
  double ntk_corr;       /* ntk / ntk_diag (0 if ntk_diag = 0) */
} bafu_kernel_pair;

/* Called once per layer in order (layer points to a temporary, valid during
 * the call only); a non-zero return stops the sweep (the function then
 * returns BAFU_OK: the caller knows why it stopped). */
typedef int (*bafu_kernel_pair_fn)(const bafu_kernel_pair *layer, void *ctx);

/* Run the two-input recursion for p (p->batch and p->init are ignored, but p
 * must pass bafu_net_params_check) and call fn for every layer. The whole
 * recursion is computed and checked first (the backward factor needs the
 * layers above), so on error (BAFU_EINVAL: invalid p, corr not in [-1, 1] or
 * fn NULL; BAFU_ELIMIT: the workspace beyond the memory limit; BAFU_ENOMEM:
 * not allocatable; BAFU_ENUMERIC: overflow, naming the layer, or a
 * zero-variance stream entering a normalised branch; errors of the
 * activation expectations) fn is never called. Memory: O(sqrt J) (the
 * recursion is replayed from checkpoints every B = max(4096, sqrt J) layers,
 * KR 5), plus for tanh, gelu and swish a 13 MB table and a 3 MB tape of direct
 * evaluations (KR 10.4; the table's pages are touched only where
 * used). For J > B the backward factor is a product over blocks of layers,
 * equal to the layer-by-layer product up to rounding. Deterministic: the same
 * p and corr give bit-identical layers. */
bafu_status bafu_kernel_two_inputs(const bafu_net_params *p, double corr, bafu_kernel_pair_fn fn, void *ctx);

/* The same, reporting progress to `progress` (2 J units: the checked pass,
 * then the emitting one). The rows do not depend on it. */
bafu_status bafu_kernel_two_inputs_progress(const bafu_net_params *p, double corr, bafu_kernel_pair_fn fn, void *ctx,
                                            bafu_progress_fn progress, void *pctx);

/* The same with the expectations computed by `method` (AUTO, as above, or
 * DIRECT; BAFU_EINVAL for QUADRATURE or a value outside the enum). */
bafu_status bafu_kernel_two_inputs_method(const bafu_net_params *p, double corr, bafu_kernel_method method,
                                          bafu_kernel_pair_fn fn, void *ctx, bafu_progress_fn progress, void *pctx);

/* ---------------------------------------------------------------------------
 * The ReLU correlation map in angle form (KR 3), exposed for tests: for inputs
 * at angle th in [0, pi], the correlation of relu(u), relu(v) is
 * c' = (sin th + (pi - th) cos th) / pi; returns 1 - c' with full relative
 * precision (also for th -> 0). th > pi is treated as pi; th < 0 or NAN gives
 * NAN (no status). */
double bafu_kernel_relu_one_minus_corr(double th);

/* The angle 2 asin(sqrt(omc / 2)) = acos(1 - omc) for omc in [0, 2], with full
 * relative precision as omc -> 0. Out of range it clamps: omc < 0 gives 0,
 * omc > 2 gives pi; NAN gives NAN (no status). */
double bafu_kernel_angle_from_omc(double omc);

#ifdef __cplusplus
}
#endif

#endif
