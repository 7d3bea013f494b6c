/* spectrum_dyson.c: the operator-valued Dyson equation of a ResNet's BFK (or
 * J J^T) over the mask algebra (theory/spectrum.md 4.9).
 *
 * For each path p the linearisation is the symmetric tridiagonal matrix T_p of
 * order k = 2L + 3 in the order (0, alpha_L, gamma_L, alpha_{L-1}, ...,
 * alpha_0, gamma_0), off-diagonal entries +-1 (squares 1), diagonal
 *
 *   T[0] = z,  T[alpha_m] = -tau_{m+1} d_{m+1}^2 (m < L), 0 (m = L),
 *   T[gamma_m] = -c_m - sigma_m (sigma_0 = 0),
 *
 * and the self-energy solves sigma_l = s2_l E_p[d_l^2 (T_p^{-1})_{alpha_{l-1}}],
 * tau_l = s2_l E_p[(T_p^{-1})_{gamma_l}]; phi((z - K)^{-1}) = E_p[(T_p^{-1})_0].
 * The diagonal of T_p^{-1} comes from the two continued fractions
 * F_i = T_i - 1/F_{i-1}, B_i = T_i - 1/B_{i+1}: (T^{-1})_ii = 1/(F_i + B_i - T_i).
 * The fixed point is found by Anderson-accelerated iteration. */
#include "spectrum_dyson.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>

#include "bafu/rng.h"

typedef double complex cplx;

enum { AA_M = 6, AA_MAXIT = 1000, PLAIN_MAXIT = 50000, DY_NEWTON_MAX_L = 32 };

size_t dy_scratch_size(size_t L, size_t P) {
  (void)P;
  const size_t n = 2 * L, k = 2 * L + 3;
  const size_t anderson = 3 * k + 5 * n + 2 * n * AA_M, newton = 6 * k + 2 * n * n + 4 * n;
  return (anderson > newton ? anderson : newton) + n; /* the last n: dy_solve's start */
}

/* 1/z without the special-value handling of C's complex division */
static inline cplx crecip(cplx z) {
  const double m = fmax(fabs(creal(z)), fabs(cimag(z)));
  const double a = creal(z) / m, b = cimag(z) / m, d = (a * a + b * b) * m;
  return CMPLX(a / d, -b / d);
}

/* out = Phi(theta), *g = E_p[(T_p^{-1})_0] */
static void dy_map(const dy_chain *ch, cplx z, const cplx *th, cplx *out, cplx *g, cplx *T, cplx *F, cplx *B) {
  const size_t L = ch->L, k = 2 * L + 3;
  memset(out, 0, 2 * L * sizeof *out);
  cplx gs = 0;
  T[0] = z;
  for (size_t m = 0; m <= L; ++m) T[2 + 2 * (L - m)] = -ch->c[m] - (m > 0 ? th[m - 1] : 0);
  T[1] = 0; /* alpha_L */
  for (size_t p = 0; p < ch->P; ++p) {
    const double *d = ch->d2 + p * L;
    for (size_t m = 0; m < L; ++m) T[1 + 2 * (L - m)] = -th[L + m] * d[m];
    F[0] = T[0];
    for (size_t i = 1; i < k; ++i) F[i] = T[i] - crecip(F[i - 1]);
    B[k - 1] = T[k - 1];
    for (size_t i = k - 1; i-- > 0;) B[i] = T[i] - crecip(B[i + 1]);
    const double wp = ch->w[p];
    gs += wp * crecip(F[0] + B[0] - T[0]);
    for (size_t m = 0; m < L; ++m) {
      const size_t ia = 1 + 2 * (L - m), jg = ia - 1; /* alpha_m; gamma_{m+1} just before it */
      out[m] += wp * d[m] * crecip(F[ia] + B[ia] - T[ia]); /* sigma_{m+1} */
      out[L + m] += wp * crecip(F[jg] + B[jg] - T[jg]);    /* tau_{m+1} */
    }
  }
  for (size_t l = 0; l < L; ++l) out[l] *= ch->s2[l], out[L + l] *= ch->s2[l];
  *g = gs;
}

static double norm1(const cplx *v, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += cabs(v[i]);
  return s;
}

/* Solve the m x m complex system A x = b (Gaussian elimination, partial
 * pivoting; A and b overwritten). Returns -1 if singular. */
static int csolve(cplx *A, cplx *b, size_t m) {
  for (size_t j = 0; j < m; ++j) {
    size_t piv = j;
    for (size_t i = j + 1; i < m; ++i)
      if (cabs(A[i * m + j]) > cabs(A[piv * m + j])) piv = i;
    if (!(cabs(A[piv * m + j]) > 0)) return -1;
    if (piv != j) {
      for (size_t c = 0; c < m; ++c) {
        cplx t = A[j * m + c];
        A[j * m + c] = A[piv * m + c], A[piv * m + c] = t;
      }
      cplx t = b[j];
      b[j] = b[piv], b[piv] = t;
    }
    for (size_t i = j + 1; i < m; ++i) {
      const cplx f = A[i * m + j] / A[j * m + j];
      for (size_t c = j; c < m; ++c) A[i * m + c] -= f * A[j * m + c];
      b[i] -= f * b[j];
    }
  }
  for (size_t j = m; j-- > 0;) {
    cplx s = b[j];
    for (size_t c = j + 1; c < m; ++c) s -= A[j * m + c] * b[c];
    b[j] = s / A[j * m + j];
  }
  return 0;
}

static int solve(const dy_chain *ch, cplx z, double tol, cplx *theta, cplx *g, cplx *scratch, int anderson,
                 int maxit) {
  const size_t L = ch->L, k = 2 * L + 3, n = 2 * L;
  cplx *T = scratch, *F = T + k, *B = F + k;
  cplx *phi = B + k, *f = phi + n, *fold = f + n, *xold = fold + n;
  cplx *dF = xold + n, *dX = dF + n * AA_M; /* columns of the history, ring buffer */
  size_t hist = 0, head = 0;
  double rprev = INFINITY;
  const double beta = 0.5; /* mixing: the bare map overshoots near the support */
  for (int it = 0; it < maxit; ++it) {
    dy_map(ch, z, theta, phi, g, T, F, B);
    for (size_t i = 0; i < n; ++i) f[i] = phi[i] - theta[i];
    const double r = norm1(f, n), s = norm1(phi, n);
    if (!isfinite(r)) return -1;
    if (r <= tol * s) return 0;
    /* Anderson's extrapolation can leave the basin: a step that raised the
       residual restarts the history (a plain damped step next) */
    if (it > 0 && r > rprev) hist = 0, head = 0;
    rprev = r;
    if (it > 0) {
      for (size_t i = 0; i < n; ++i) dF[head * n + i] = f[i] - fold[i], dX[head * n + i] = theta[i] - xold[i];
      head = (head + 1) % AA_M;
      if (hist < AA_M) ++hist;
    }
    memcpy(fold, f, n * sizeof *f);
    memcpy(xold, theta, n * sizeof *theta);
    /* gamma = argmin |f - dF gamma| by the normal equations (m <= 6) */
    cplx A[AA_M * AA_M], b[AA_M];
    int ok = anderson && hist > 0;
    if (ok) {
      double tr = 0;
      for (size_t a = 0; a < hist; ++a) {
        for (size_t c = 0; c < hist; ++c) {
          cplx sum = 0;
          for (size_t i = 0; i < n; ++i) sum += conj(dF[a * n + i]) * dF[c * n + i];
          A[a * hist + c] = sum;
        }
        tr += creal(A[a * hist + a]);
        cplx sb = 0;
        for (size_t i = 0; i < n; ++i) sb += conj(dF[a * n + i]) * f[i];
        b[a] = sb;
      }
      for (size_t a = 0; a < hist; ++a) A[a * hist + a] += 1e-13 * tr;
      ok = csolve(A, b, hist) == 0;
      for (size_t a = 0; ok && a < hist; ++a) ok = isfinite(creal(b[a])) && isfinite(cimag(b[a]));
    }
    for (size_t i = 0; i < n; ++i) {
      cplx x = theta[i] + beta * f[i];
      if (ok)
        for (size_t a = 0; a < hist; ++a) x -= (dX[a * n + i] + beta * dF[a * n + i]) * b[a];
      theta[i] = x;
    }
  }
  return -1;
}

typedef struct {
  const double *row;
  size_t L;
} path_ref;

static int row_cmp(const void *a, const void *b) {
  const path_ref *x = a, *y = b;
  for (size_t l = 0; l < x->L; ++l)
    if (x->row[l] != y->row[l]) return x->row[l] < y->row[l] ? -1 : 1;
  return 0;
}

size_t dy_paths(bafu_act act, const double *q, const int *norm, size_t L, size_t P, uint64_t seed, double *d2,
                double *w, double *scratch) {
  bafu_fastrng r;
  bafu_fastrng_seed(&r, seed, 0);
  double *z = scratch; /* L normals */
  for (size_t p = 0; p < P; ++p) {
    bafu_fastrng_fill_gaussian(&r, 1.0, L, z);
    double f = sqrt(q[0]) * z[0];
    for (size_t l = 0; l < L; ++l) {
      if (l > 0) f += sqrt(fmax(q[l] - q[l - 1], 0.0)) * z[l];
      const double dp = bafu_act_dphi(act, norm[l] ? f / sqrt(q[l]) : f);
      d2[p * L + l] = dp * dp;
    }
  }
  /* identical paths (ReLU masks take two values) merged, weights = counts / P */
  path_ref *ref = malloc(P * sizeof *ref);
  if (!ref) {
    for (size_t p = 0; p < P; ++p) w[p] = 1.0 / (double)P;
    return P;
  }
  for (size_t p = 0; p < P; ++p) ref[p] = (path_ref){d2 + p * L, L};
  qsort(ref, P, sizeof *ref, row_cmp);
  /* rows are compacted into the front of d2 in sorted order: copy first (the
     sorted order refers to the original rows) */
  double *tmp = malloc(P * L * sizeof *tmp);
  if (!tmp) {
    free(ref);
    for (size_t p = 0; p < P; ++p) w[p] = 1.0 / (double)P;
    return P;
  }
  size_t n = 0;
  for (size_t p = 0; p < P; ++p) {
    if (n > 0 && row_cmp(&ref[p], &(path_ref){tmp + (n - 1) * L, L}) == 0) {
      w[n - 1] += 1.0;
      continue;
    }
    memcpy(tmp + n * L, ref[p].row, L * sizeof *tmp);
    w[n++] = 1.0;
  }
  memcpy(d2, tmp, n * L * sizeof *d2);
  for (size_t p = 0; p < n; ++p) w[p] /= (double)P;
  free(tmp);
  free(ref);
  return n;
}

void dy_moments(size_t L, const double *s2, const double *c, const double *m, const double *m4, const double *M,
                double *zk, double *m1, double *m2) {
  double mu = c[0], zI = 0, eta = 0, sum_zm = 0;
  m1[0] = mu, m2[0] = mu * mu;
  for (size_t l = 1; l <= L; ++l) {
    const double ml = m[l - 1], s = s2[l - 1], g = 1 + s * ml, lam = mu * mu;
    double cross = 0;
    for (size_t k = 1; k < l; ++k) cross += zk[k - 1] * M[(l - 1) * L + k - 1];
    const double pz = zI * ml + cross, hw = eta * ml + cross;
    const double psi = s * s * (lam * m4[l - 1] + ml * pz + hw * ml);
    for (size_t k = 1; k < l; ++k) zk[k - 1] *= g;
    zk[l - 1] = s * lam;
    sum_zm = g * sum_zm + s * lam * ml;
    const double zI_new = g * zI + s * hw + psi, eta_new = g * eta + s * pz;
    zI = zI_new, eta = eta_new;
    mu = c[l] + g * mu;
    m1[l] = mu;
    m2[l] = mu * mu + zI + eta + 2 * sum_zm;
  }
}

void dy_path_stats(const dy_chain *ch, double *m, double *m4, double *M) {
  const size_t L = ch->L;
  memset(m, 0, L * sizeof *m);
  memset(m4, 0, L * sizeof *m4);
  memset(M, 0, L * L * sizeof *M);
  for (size_t p = 0; p < ch->P; ++p) {
    const double *d = ch->d2 + p * L, w = ch->w[p];
    for (size_t l = 0; l < L; ++l) {
      m[l] += w * d[l], m4[l] += w * d[l] * d[l];
      for (size_t k = 0; k < l; ++k) M[l * L + k] += w * d[l] * d[k];
    }
  }
}


/* Phi(theta), g and J = I - dPhi/dtheta (theory/spectrum.md 4.9). The chain
 * positions 2..2L+1 (gamma_L, alpha_{L-1}, ..., gamma_1, alpha_0) hold every
 * unknown's entry, dG_ii/da_jj = -G_ij^2, and for i < j
 * G_ij = G_jj prod_{m=i}^{j-1} (-b_m / F_m) (b_m the off-diagonal entry
 * between m and m+1, F the forward continued fraction). Scratch: 6k + n^2. */
void dy_newton_system(const dy_chain *ch, cplx z, const cplx *theta, cplx *phi, cplx *g, cplx *J, cplx *scratch) {
  const size_t L = ch->L, k = 2 * L + 3, n = 2 * L;
  cplx *T = scratch, *F = T + k, *B = F + k, *Gd = B + k, *Q = Gd + k, *rF = Q + n * n;
  double *fw = (double *)(rF + k);
  memset(phi, 0, n * sizeof *phi);
  memset(Q, 0, n * n * sizeof *Q);
  cplx gs = 0;
  T[0] = z, T[1] = 0;
  for (size_t m = 0; m <= L; ++m) T[2 + 2 * (L - m)] = -ch->c[m] - (m > 0 ? theta[m - 1] : 0);
  for (size_t p = 0; p < ch->P; ++p) {
    const double *d = ch->d2 + p * L, wp = ch->w[p];
    for (size_t m = 0; m < L; ++m) T[1 + 2 * (L - m)] = -theta[L + m] * d[m];
    F[0] = T[0];
    for (size_t i = 1; i < k; ++i) F[i] = T[i] - crecip(F[i - 1]);
    B[k - 1] = T[k - 1];
    for (size_t i = k - 1; i-- > 0;) B[i] = T[i] - crecip(B[i + 1]);
    for (size_t i = 0; i < k; ++i) Gd[i] = crecip(F[i] + B[i] - T[i]);
    gs += wp * Gd[0];
    for (size_t m = 0; m < L; ++m) {
      const size_t ia = 1 + 2 * (L - m);
      phi[m] += wp * d[m] * Gd[ia], phi[L + m] += wp * Gd[ia - 1];
    }
    /* Q[a][b] += w f_a f_b G_ab^2 over positions a <= b in 2..2L+1 (index
       a - 2; the lower triangle is mirrored after the sum), f = d_{m+1} at
       alpha_m (odd position 1 + 2(L - m)), 1 at gamma; rF[i] = -b_i / F_i
       with b_i = +1 (alpha_m -> gamma_m, odd i) or -1 (gamma_m -> alpha_{m-1}) */
    for (size_t i = 2; i < k - 1; ++i) {
      rF[i] = (i % 2 ? -1.0 : 1.0) * crecip(F[i]);
      fw[i] = i % 2 ? d[L - (i - 1) / 2] : 1.0;
    }
    for (size_t j = 2; j < k - 1; ++j) { /* gamma_0 (position 2L+2) is no unknown's */
      const double wj = wp * fw[j];
      cplx Gij = Gd[j], *Qj = Q + (j - 2);
      Qj[(j - 2) * n] += wj * fw[j] * Gij * Gij;
      for (size_t i = j; i-- > 2;) {
        Gij *= rF[i];
        Qj[(i - 2) * n] += (wj * fw[i]) * (Gij * Gij);
      }
    }
  }
  for (size_t a = 0; a < n; ++a)
    for (size_t b = 0; b < a; ++b) Q[a * n + b] = Q[b * n + a];
  for (size_t l = 0; l < L; ++l) phi[l] *= ch->s2[l], phi[L + l] *= ch->s2[l];
  *g = gs;
  /* unknown u's position: sigma_l (u = l - 1) reads alpha_{l-1}, tau_l
     (u = L + l - 1) gamma_l; alpha_m sits at 1 + 2(L - m), gamma_m at
     2 + 2(L - m). Column v differentiates through gamma_m (sigma_m, v = m - 1)
     or alpha_{m-1} (tau_m, v = L + m - 1). */
  for (size_t u = 0; u < n; ++u) {
    const size_t pu = u < L ? 1 + 2 * (L - u) : 2 + 2 * (L - (u - L + 1));
    const double su = ch->s2[u % L];
    for (size_t v = 0; v < n; ++v) {
      const size_t pv = v < L ? 2 + 2 * (L - (v + 1)) : 1 + 2 * (L - (v - L));
      J[u * n + v] = (u == v) - su * Q[(pu - 2) * n + (pv - 2)];
    }
  }
}

/* Newton's method on theta - Phi(theta) = 0 (theory/spectrum.md 4.9). With
 * the chain positions 2..2L+1 holding every unknown's entry, dG_ii/da_jj =
 * -G_ij^2, and for i < j G_ij = G_jj prod_{m=i}^{j-1} (-b_m / F_m) (b_m the
 * off-diagonal entry between m and m+1, F the forward continued fraction).
 * Returns 0 on convergence, -1 if a step fails to halve the residual (or
 * after 30). */
static int newton(const dy_chain *ch, cplx z, double tol, cplx *theta, cplx *g, cplx *scratch) {
  const size_t L = ch->L, k = 2 * L + 3, n = 2 * L;
  cplx *J = scratch + 6 * k + n * n, *phi = J + n * n, *rhs = phi + n;
  double rprev = INFINITY;
  for (int it = 0; it < 30; ++it) {
    dy_newton_system(ch, z, theta, phi, g, J, scratch);
    double r = 0, s = 0;
    for (size_t i = 0; i < n; ++i) rhs[i] = phi[i] - theta[i], r += cabs(rhs[i]), s += cabs(phi[i]);
    if (!isfinite(r)) return -1;
    if (r <= tol * s) return 0;
    if (!(r < 0.5 * rprev)) return -1;
    rprev = r;
    /* n <= 64: the small elimination (zgesv's threads cost more than the solve) */
    if (csolve(J, rhs, n)) return -1;
    for (size_t i = 0; i < n; ++i) theta[i] += rhs[i];
  }
  return -1;
}

int dy_solve(const dy_chain *ch, cplx z, double tol, cplx *theta, cplx *g, cplx *scratch) {
  /* Newton first (depth up to DY_NEWTON_MAX_L, where a step costs a few maps);
     where it fails, Anderson, then the plain damped iteration, each from the
     same start */
  const size_t n = 2 * ch->L;
  cplx *start = scratch + dy_scratch_size(ch->L, ch->P) - n;
  memcpy(start, theta, n * sizeof *theta);
  if (ch->L <= DY_NEWTON_MAX_L) {
    if (newton(ch, z, tol, theta, g, scratch) == 0) return 0;
    memcpy(theta, start, n * sizeof *theta);
  }
  if (solve(ch, z, tol, theta, g, scratch, 1, AA_MAXIT) == 0) return 0;
  memcpy(theta, start, n * sizeof *theta);
  return solve(ch, z, tol, theta, g, scratch, 0, PLAIN_MAXIT);
}

size_t dy_calib_rows(size_t L) { return 1 + 2 * L + L * (L - 1) / 2; }

/* the statistics of path p as the row x[0..r): 1, d_l^2, d_l^4, d_l^2 d_k^2 (k < l) */
static void calib_row(const double *d, size_t L, double *x) {
  size_t i = 0;
  x[i++] = 1;
  for (size_t l = 0; l < L; ++l) x[i++] = d[l];
  for (size_t l = 0; l < L; ++l) x[i++] = d[l] * d[l];
  for (size_t l = 0; l < L; ++l)
    for (size_t k = 0; k < l; ++k) x[i++] = d[l] * d[k];
}

int dy_calibrate(dy_chain *ch, double *w, const double *m, const double *m4, const double *M, double *resid) {
  const size_t L = ch->L, P = ch->P, r = dy_calib_rows(L);
  double *X = malloc(P * r * sizeof *X), *Y = malloc(P * r * sizeof *Y), *Gm = malloc(r * r * sizeof *Gm);
  double *ev = malloc(r * sizeof *ev), *b = malloc(r * sizeof *b), *res = malloc(r * sizeof *res);
  double *lam = malloc(r * sizeof *lam), *dl = malloc(r * sizeof *dl), *wn = malloc(P * sizeof *wn);
  double *t = malloc(r * sizeof *t), *lt = malloc(r * sizeof *lt);
  int rc = -1;
  *resid = NAN;
  if (!X || !Y || !Gm || !ev || !b || !res || !lam || !dl || !wn || !t || !lt) goto done;
  for (size_t p = 0; p < P; ++p) calib_row(ch->d2 + p * L, L, X + p * r);
  {
    size_t i = 0;
    b[i++] = 1;
    for (size_t l = 0; l < L; ++l) b[i++] = m[l];
    for (size_t l = 0; l < L; ++l) b[i++] = m4[l];
    for (size_t l = 0; l < L; ++l)
      for (size_t k = 0; k < l; ++k) b[i++] = M[l * L + k];
  }
  /* exponential tilting: w'_p = w_p exp(x_p . lam), the weights of least
     relative entropy with the exact statistics (positive by construction),
     by Newton on lam from 0: X^T W' X dl = b - X^T w', the Gram matrix
     inverted on its range (eigenvalues above 1e-13 of the largest: it is
     rank-deficient for ReLU, whose d^4 = d^2); a step that does not reduce
     the residual is halved */
  memset(lam, 0, r * sizeof *lam);
  memcpy(wn, ch->w, P * sizeof *wn);
  double e = INFINITY;
  rc = 1;
  for (int it = 0; it < 40; ++it) {
    memcpy(res, b, r * sizeof *res);
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)P, (int)r, -1.0, X, (int)r, wn, 1, 1.0, res, 1);
    double en = 0;
    for (size_t i = 0; i < r; ++i) en = fmax(en, fabs(res[i]) / fmax(fabs(b[i]), 1e-300));
    if (!(en < e) && it > 0) { /* halve the last step */
      for (size_t i = 0; i < r; ++i) dl[i] *= 0.5, lam[i] = lt[i] + dl[i];
      cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)P, (int)r, 1.0, X, (int)r, lam, 1, 0.0, wn, 1);
      int ok = 1;
      for (size_t p = 0; p < P; ++p) wn[p] = ch->w[p] * exp(wn[p]), ok &= isfinite(wn[p]);
      if (!ok || cblas_dnrm2((int)r, dl, 1) < 1e-15 * (cblas_dnrm2((int)r, lam, 1) + 1e-300)) break;
      continue;
    }
    e = en;
    if (e < 1e-13) {
      rc = 0;
      break;
    }
    for (size_t p = 0; p < P; ++p) {
      const double sw = sqrt(wn[p]);
      for (size_t i = 0; i < r; ++i) Y[p * r + i] = sw * X[p * r + i];
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)r, (int)P, 1.0, Y, (int)r, 0.0, Gm, (int)r);
    if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (int)r, Gm, (int)r, ev)) break; /* rc = 1: not reached */
    const double cut = 1e-13 * ev[r - 1];
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)r, (int)r, 1.0, Gm, (int)r, res, 1, 0.0, t, 1);
    for (size_t i = 0; i < r; ++i) t[i] = ev[i] > cut ? t[i] / ev[i] : 0.0;
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)r, (int)r, 1.0, Gm, (int)r, t, 1, 0.0, dl, 1);
    memcpy(lt, lam, r * sizeof *lam);
    for (size_t i = 0; i < r; ++i) lam[i] += dl[i];
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)P, (int)r, 1.0, X, (int)r, lam, 1, 0.0, wn, 1);
    for (size_t p = 0; p < P; ++p) wn[p] = ch->w[p] * exp(wn[p]);
  }
  *resid = e;
  if (rc == 0) memcpy(w, wn, P * sizeof *w);
done:
  free(X), free(Y), free(Gm), free(ev), free(b), free(res), free(lam), free(dl), free(wn), free(t), free(lt);
  return rc;
}
