/* spectrum_subord.c: the infinite-width law of K_l (or J J^T) of ReLU and
 * linear MLPs and linear ResNets at each real point x, exact to rounding
 * (theory/spectrum.md 4.7).
 *
 * K_l = c_l + K_{l-1} [x] P_l. With eta(z) = 1 - z / G(1/z) and the
 * Sigma-transform Sigma(u) = eta^{-1}(u) / u (multiplicative under [x]),
 * the subordination equations of every layer chain into one explicit map
 * from the bottom variable t = eta_{K_b [x] P_{b+1}} to z_L = 1/(x - c_L):
 *
 *   u_{b+1} = t,  z_{b+1} = t Sigma_{b+1}(t) / a,
 *   u_l = 1 - (1 - u_{l-1}) / (1 + c_{l-1} z_{l-1}),
 *   z_l = z_{l-1} / (1 + c_{l-1} z_{l-1}) Sigma_l(u_l),
 *
 * and G_{K_L}(x) = z_L / (1 - u_L). Z(t) = z_L is solved for t by complex
 * Newton, continued from x + i E (E large, t ~ 1/(Z'(0)(x - c_L + iE))) down
 * to the real axis; edges are the critical points of Z on the real line. */
#include "spectrum_subord.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_math.h>
#include <gsl/gsl_roots.h>
#include <float.h>
#include <math.h>
#include <string.h>

typedef double complex cplx;

/* 1/z, scaled by max(|Re z|, |Im z|) so that |z|^2 cannot overflow, without
 * the special-value handling of C's complex division (__divdc3 took half
 * the time; z is finite and non-zero here, else the result is not finite and
 * Newton reports it). */
static inline double cmaxabs(cplx z) {
  const double a = fabs(creal(z)), b = fabs(cimag(z));
  return a > b ? a : b; /* fmax is a library call here */
}

static inline cplx crecip(cplx z) {
  const double m = cmaxabs(z);
  const double a = creal(z) / m, b = cimag(z) / m, d = (a * a + b * b) * m;
  return CMPLX(a / d, -b / d);
}

/* |z| scaled as in crecip: within an ulp or so of cabs (hypot, a tenth of a
 * tanh chain's time in the convergence tests), for the tests' thresholds */
static inline double cnorm(cplx z) {
  const double m = cmaxabs(z);
  if (m == 0 || !isfinite(m)) return m;
  const double a = creal(z) / m, b = cimag(z) / m;
  return m * sqrt(a * a + b * b);
}

/* The sums of mask_sigma over the atoms (t_i, w_i), at v = vr + i vi, with
 * a + i b = 1 - v t_i:
 *   out[0] + i out[1] = sum w_i / (1 - v t_i),
 *   out[2] + i out[3] = sum w_i t_i / (1 - v t_i)^2,
 *   out[4] = sum w_i (|a| + |b|) / |1 - v t_i|^2 (the rounding scale).
 * This loop is the whole cost of a nonlinear chain. Atom i goes to partial
 * sum i mod 4 and the four are added in a fixed order, so the lanes
 * vectorise and every instruction set gives the same numbers (ISO C mode:
 * no contraction into fused multiply-adds). */
#ifndef SUB_CLONES
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define SUB_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#endif
#ifndef SUB_CLONES
#define SUB_CLONES
#endif
typedef double sub_v4 __attribute__((vector_size(32)));
typedef long long sub_m4 __attribute__((vector_size(32)));
SUB_CLONES static void mask_sums(const double *restrict t, const double *restrict w, size_t n, double vr, double vi,
                                 double out[5]) {
  sub_v4 pr = {0}, pi = {0}, dr = {0}, di = {0}, sz = {0};
  const sub_v4 one = {1, 1, 1, 1}, two = {2, 2, 2, 2}, vr4 = {vr, vr, vr, vr}, vi4 = {vi, vi, vi, vi};
  const sub_m4 nosign = ~(sub_m4)(sub_v4){-0.0, -0.0, -0.0, -0.0};
  for (size_t i = 0; i < n; i += 4) {
    sub_v4 tt = {0}, ww = {0}; /* past n: atoms t = 0 of weight 0, which add 0 */
    if (i + 4 <= n) {
      memcpy(&tt, t + i, sizeof tt);
      memcpy(&ww, w + i, sizeof ww);
    } else {
      for (size_t j = 0; i + j < n; ++j) tt[j] = t[i + j], ww[j] = w[i + j];
    }
    const sub_v4 a = one - vr4 * tt, b = -(vi4 * tt), iden = one / (a * a + b * b), g = ww * iden;
    const sub_v4 h = g * iden * tt;
    const sub_v4 fa = (sub_v4)((sub_m4)a & nosign), fb = (sub_v4)((sub_m4)b & nosign); /* |a|, |b| */
    pr += a * g, pi -= b * g;
    dr += (a * a - b * b) * h, di -= two * a * b * h;
    sz += g * (fa + fb);
  }
  out[0] = (pr[0] + pr[1]) + (pr[2] + pr[3]);
  out[1] = (pi[0] + pi[1]) + (pi[2] + pi[3]);
  out[2] = (dr[0] + dr[1]) + (dr[2] + dr[3]);
  out[3] = (di[0] + di[1]) + (di[2] + di[3]);
  out[4] = (sz[0] + sz[1]) + (sz[2] + sz[3]);
}

/* SUB_MASK: Sigma_D(u) = v/u and its derivative, where psi_D(v) = u/(1 - u),
 * psi_D(v) = sum_i w_i v t_i / (1 - v t_i), solved as 1 + psi_D(v) = 1/(1 - u)
 * by Newton from v = u *r (the
 * previous Sigma_D: the branch continued from Sigma_D(0) = 1/m1); *r becomes
 * Sigma_D(u). NAN if Newton does not converge. Near u = 0, where v/u and its
 * derivative are 0/0, the series 1/m1 + (m1^2 - m2)/m1^3 u. */
static void mask_sigma(const sub_factor *f, cplx u, cplx *r, cplx *S, cplx *dS) {
  const double m1 = f->m1, m2 = f->m2;
  if (cnorm(u) < 1e-12) {
    *S = 1.0 / m1 + (m1 * m1 - m2) / (m1 * m1 * m1) * u, *dS = (m1 * m1 - m2) / (m1 * m1 * m1);
    *r = *S;
    return;
  }
  /* 1 + psi_D(v) = sum_i w_i / (1 - v t_i) = 1/(1 - u): no cancellation when u
     is large (near the hard edge at 0, where 1 + psi -> 0). For real u < 1 (the
     scan for the upper edge) the left side is increasing and convex in real v
     below its first pole 1/max t, the root lies there, and from the left of it
     Newton can overshoot past the pole (a tanh with biases, where u_l moves
     from 0 to 0.956 within a step of the scan): then the bracket [vlo, vhi] of
     the points evaluated is bisected. */
  const cplx iu = crecip(1.0 - u), target = iu;
  cplx v = u * *r, dpsi = 0;
  int polish = 0, done = 0;
  const int real = cimag(u) == 0 && cimag(*r) == 0 && creal(u) < 1; /* a real start */
  double vlo = -INFINITY, vhi = INFINITY;
  if (real) {
    double tmax = 0;
    for (size_t i = 0; i < f->nt; ++i) tmax = f->t[i] > tmax ? f->t[i] : tmax;
    vhi = 1.0 / tmax;
    if (!(creal(v) < vhi)) v = 0.5 * vhi;
  }
  for (int it = 0; it < 100 && !done; ++it) {
    /* 1 + psi_D(v) = sum w_i / (1 - v t_i) and psi_D'(v) = sum w_i t_i / (1 - v t_i)^2,
       in real arithmetic (the loop is the whole cost of a nonlinear chain) */
    double sum[5];
    mask_sums(f->t, f->w, f->nt, creal(v), cimag(v), sum);
    const double pr = sum[0], pi = sum[1], dr = sum[2], di = sum[3];
    const double size = fabs(creal(target)) + fabs(cimag(target)) + sum[4];
    const cplx psi1 = CMPLX(pr, pi); /* the residual's rounding scale: size */
    dpsi = CMPLX(dr, di);
    const cplx step = (psi1 - target) * crecip(dpsi);
    if (!isfinite(creal(step)) || !isfinite(cimag(step))) break;
    if (real) {
      if (pr < creal(target)) vlo = fmax(vlo, creal(v));
      else vhi = fmin(vhi, creal(v));
    }
    v -= step;
    if (real && isfinite(vlo) && (creal(v) - vhi > 1e-14 * fabs(vhi) || vlo - creal(v) > 1e-14 * fabs(vlo))) {
      /* overshot (beyond rounding): bisect; a bracket at rounding level is the root */
      v = 0.5 * (vlo + vhi);
      if (vhi - vlo <= 1e-14 * fabs(vhi)) done = 1;
      else polish = 0;
      continue;
    }
    done = polish;
    /* converged: a step at rounding level, or the residual (then one more step) */
    if (cnorm(step) <= 1e-14 * cnorm(v) || cnorm(psi1 - target) <= 16 * DBL_EPSILON * size) polish = 1;
  }
  if (!done) {
    *S = *dS = NAN;
    return;
  }
  const cplx iu0 = crecip(u);
  *S = v * iu0;
  *dS = (iu * iu * crecip(dpsi) - *S) * iu0; /* (dv/du - v/u)/u, dv/du = (1 - u)^-2 / psi_D'(v) */
  *r = *S;
}

/* Sigma_P(u) and its derivative. SUB_RESNET: Sigma = 1/T with
 * a^2 T^2 + B T + u s^2 = 0, a = 1 - u, B = a^2 (s - 1) - 2 a s (s = beta^2 s),
 * on the branch continued from T(0) = 1 + s: the square root of the
 * discriminant nearest the previous one (*r). */
static void sigma_eval(const sub_factor *f, cplx u, cplx *r, cplx *S, cplx *dS) {
  const double s = f->s;
  switch (f->kind) {
  case SUB_LINEAR:
    *S = (1.0 - u) / s, *dS = -1.0 / s;
    return;
  case SUB_RELU: {
    const cplx ip = crecip(1.0 + u);
    *S = (2.0 / s) * (1.0 - u) * ip, *dS = (-4.0 / s) * ip * ip;
    return;
  }
  case SUB_MASK: {
    cplx SD, dSD;
    mask_sigma(f, u, r, &SD, &dSD);
    *S = (1.0 - u) * SD, *dS = (1.0 - u) * dSD - SD;
    return;
  }
  case SUB_RESNET: {
    const cplx a = 1.0 - u, B = a * a * (s - 1.0) - 2.0 * a * s;
    cplx sq = csqrt(B * B - 4.0 * a * a * u * s * s);
    if (creal(sq * conj(*r)) < 0) sq = -sq;
    *r = sq;
    const cplx T = (-B + sq) * crecip(2.0 * a * a);
    const cplx Bu = -2.0 * a * (s - 1.0) + 2.0 * s;
    const cplx Fu = -2.0 * a * T * T + Bu * T + s * s, FT = 2.0 * a * a * T + B;
    const cplx iT = crecip(T);
    *S = iT, *dS = Fu * crecip(FT) * iT * iT;
    return;
  }
  }
}

/* The branch state at u = 0 (square roots -B(0) = 1 + s). */
static void branch_reset(const sub_chain *ch) {
  for (size_t l = 0; l < ch->n; ++l) ch->rs[l] = ch->f[l].kind == SUB_MASK ? 1.0 / ch->f[l].m1 : 1.0 + ch->f[l].s;
}

/* Z(t) = z_L, Z'(t) and u_L (the chain of the header). With half != NULL,
 * *half = 1 if every layer's subordination points lie where they must for
 * zeta in the upper half plane: Im(1/z_l) >= 0 (X_l is evaluated at 1/z_l),
 * Im G_{X_l} = Im(z_l/(1 - u_l)) <= 0, and Im(1/w) >= 0 at P_l's point
 * w = u_l Sigma_l(u_l) (all to a relative 1e-10); 0 otherwise. */
static int upper(cplx v) { return cimag(v) >= -1e-10 * (fabs(creal(v)) + fabs(cimag(v))); }

/* SUB_MASK: P = MP [x] D is itself subordinated, and the points of its two
 * factors, u Sigma_MP(u) = u (1 - u) and v = u Sigma_D(u), obey the same rule
 * (v on the branch continued from 0, not another root of psi_D(v) = u/(1-u)). */
static int mask_upper(const sub_factor *f, cplx u, cplx SD) {
  return f->kind != SUB_MASK || (upper(crecip(u * SD)) && upper(crecip(u * (1.0 - u))));
}

static void chain_eval_check(const sub_chain *ch, cplx t, cplx *Z, cplx *dZ, cplx *uL, int *half) {
  cplx S, dS;
  sigma_eval(&ch->f[0], t, &ch->rs[0], &S, &dS);
  cplx u = t, du = 1.0, z = t * S / ch->a, dz = (S + t * dS) / ch->a;
  int ok = 1;
  if (half) ok = upper(crecip(t * S)) && upper(crecip(z)) && upper(-z * crecip(1.0 - u)) && mask_upper(&ch->f[0], t, ch->rs[0]);
  for (size_t l = 1; l < ch->n; ++l) {
    const double c = ch->f[l].cbelow;
    const cplx iden = crecip(1.0 + c * z), iden2 = iden * iden;
    const cplx w = z * iden, dw = dz * iden2;
    const cplx un = 1.0 - (1.0 - u) * iden, dun = du * iden + (1.0 - u) * c * dz * iden2;
    sigma_eval(&ch->f[l], un, &ch->rs[l], &S, &dS);
    dz = dw * S + w * dS * dun;
    z = w * S;
    u = un, du = dun;
    if (half) ok = ok && upper(crecip(u * S)) && upper(crecip(z)) && upper(-z * crecip(1.0 - u)) && mask_upper(&ch->f[l], u, ch->rs[l]);
  }
  *Z = z, *dZ = dz, *uL = u;
  if (half) *half = ok;
}

static void chain_eval(const sub_chain *ch, cplx t, cplx *Z, cplx *dZ, cplx *uL) {
  chain_eval_check(ch, t, Z, dZ, uL, NULL);
}

/* Newton on X(t) = 1/Z(t) = w (w = zeta - c_L) from *t. Returns 0 when the
 * step fell below 1e-13 |t| or the residual to rounding (then one more step
 * is taken), -1 otherwise. */
static int newton(const sub_chain *ch, cplx w, cplx *t, cplx *G, int maxit, int *its) {
  cplx x = *t;
  int polish = 0;
  double sprev = INFINITY; /* the previous step's size */
  for (int it = 0; it < maxit; ++it) {
    if (its) *its = it + 1;
    cplx Z, dZ, uL;
    chain_eval(ch, x, &Z, &dZ, &uL);
    const cplx iZ = crecip(Z), F = iZ - w;
    const cplx step = -F * crecip(dZ * iZ * iZ);
    if (!isfinite(creal(step)) || !isfinite(cimag(step))) return -1;
    x -= step;
    if (polish) {
      int half;
      chain_eval_check(ch, x, &Z, &dZ, &uL, &half);
      *t = x;
      *G = Z / (1.0 - uL);
      /* a root, but not the analytic continuation (checked away from the axis, where
         rounding cannot flip the signs) */
      if (cimag(w) > 1e-6 * cabs(w) && !half) return -1;
      return isfinite(creal(*G)) && isfinite(cimag(*G)) ? 0 : -1;
    }
    /* converged: a step at rounding level, or a residual at rounding level
       (near an edge X'(t) -> 0 and the step stalls above 1e-13 |t|), or steps
       below 1e-10 |t| that no longer shrink (ratio over 0.9): the evaluation's
       own noise, above the first two tests when a mask law's inner sums cancel
       (a tanh with biases: the steps then wander at 3e-13 to 2.4e-11 |t| for
       ever). A square-root edge's linear convergence halves the step: not
       caught. */
    const double sn = cnorm(step), xn = cnorm(x);
    if (sn <= 1e-13 * xn || cnorm(F) <= 16 * (double)(ch->n + 1) * DBL_EPSILON * (cnorm(w) + cnorm(iZ)) ||
        (sn <= 1e-10 * xn && sn >= 0.9 * sprev))
      polish = 1;
    sprev = sn;
  }
  return -1;
}

/* A shortcut of the continuation: Newton (at most 12 steps) at zeta = x
 * itself from the current t, accepted only for a non-real root (inside the
 * support) whose subordination points all lie in the closed upper half plane
 * (after taking the conjugate root if Im G > 0); t, rs unchanged otherwise. */
static int try_axis(const sub_chain *ch, double w0, cplx *t, cplx *G) {
  cplx *rsave = ch->rs + 2 * ch->n;
  memcpy(rsave, ch->rs, ch->n * sizeof(cplx));
  cplx tj = *t, Gj;
  if (newton(ch, w0, &tj, &Gj, 12, NULL) == 0 && fabs(cimag(tj)) > 1e-14 * cabs(tj)) {
    if (cimag(Gj) > 0) {
      tj = conj(tj);
      for (size_t l = 0; l < ch->n; ++l) ch->rs[l] = conj(ch->rs[l]);
    }
    cplx Z, dZ, uL;
    int half;
    chain_eval_check(ch, tj, &Z, &dZ, &uL, &half);
    Gj = Z / (1.0 - uL);
    if (half && cimag(Gj) < 0) {
      *t = tj, *G = Gj;
      return 0;
    }
  }
  memcpy(ch->rs, rsave, ch->n * sizeof(cplx));
  return -1;
}

int sub_density(const sub_chain *ch, double x, double *rho, cplx *tout) {
  /* start well outside the support: |zeta - c_L| >= 4 (hi - c_L), where
     t ~ 1/(Z'(0) (zeta - c_L)) is in Newton's basin of the physical root */
  const double w0 = x - ch->cL;
  double E = 4.0 * (fabs(w0) + (ch->span > 0 ? ch->span : 4.0 * (double)(ch->n + 1) * ch->scale));
  cplx t, G;
  for (int k = 0;; ++k, E *= 4) {
    if (k == 8) return -1;
    branch_reset(ch);
    cplx Z0, dZ0, u0;
    chain_eval(ch, 0.0, &Z0, &dZ0, &u0);
    t = 1.0 / (dZ0 * (w0 + I * E));
    branch_reset(ch);
    if (!newton(ch, w0 + I * E, &t, &G, 60, NULL)) break;
  }
  /* down to 1e-13 of the scale, or of x - c_L when that is smaller (near a hard edge) */
  double eps = E, floor = fmin(1e-13 * ch->scale, w0 != 0 ? 1e-6 * fabs(w0) : INFINITY);
  cplx *rsave = ch->rs + ch->n;
  const size_t nr = ch->n;
  int tries = 0;
  double ratio = 0.25; /* eps shrinks by this per step: squared (down to 1e-6) after an easy step */
  /* chains of mask laws (4.8): far below the support's scale t is close to a
     power of zeta, so Newton starts from the power law through the last two
     points (log-linear predictor), and easy steps may span 1e-30 */
  int mask = 0;
  for (size_t l = 0; l < nr; ++l) mask |= ch->f[l].kind == SUB_MASK;
  const double rmin = mask ? 1e-30 : 1e-6;
  const int easy = mask ? 5 : 4; /* Newton iterations of an easy step (the predictor's start is nearer) */
  cplx tprev = 0;
  double eprev = 0;
  for (int step = 0; eps > 0; ++step) {
    /* the shortcut at zeta = x: every 4th step, and every step near the axis (a
       mask chain far above it, eps > 1e4 |x - c_L|, is still on its power law: none) */
    if ((eps <= 4 * fabs(w0) || (step % 4 == 3 && (!mask || eps <= 1e4 * fabs(w0)))) && try_axis(ch, w0, &t, &G) == 0)
      break;
    double next = eps * ratio;
    if (mask && eps > 4 * fabs(w0)) next = fmax(next, fabs(w0)); /* to zeta = x + i |x - c_L| first */
    if (next < floor) next = 0;
    for (;;) {
      const cplx ts = t;
      memcpy(rsave, ch->rs, nr * sizeof(cplx));
      if (mask && eprev > 0 && next > 0 && tprev != 0 && t != 0) {
        const cplx alpha = clog(t / tprev) / log(eps / eprev);
        const cplx guess = t * cexp(alpha * log(next / eps));
        if (isfinite(creal(guess)) && isfinite(cimag(guess))) t = guess;
      }
      int its = 0, bad = newton(ch, w0 + I * next, &t, &G, 60, &its);
      if (!bad && next > 0 && cimag(G) > 1e-12 * cabs(G)) bad = 1; /* Im G < 0 in the upper half plane */
      if (!bad) {
        ratio = its <= easy ? fmax(ratio * ratio, rmin) : its <= 8 ? ratio : fmin(sqrt(ratio), 0.25);
        tprev = ts, eprev = eps;
        break;
      }
      ratio = fmin(sqrt(ratio), 0.25);
      t = ts;
      memcpy(ch->rs, rsave, nr * sizeof(cplx));
      if (++tries > 400) return -1;
      if (next == 0) {
        floor *= 1e-3;
        next = eps / 4 < floor ? 0 : eps / 4;
        if (floor < 1e-300) return -1;
      } else
        next = sqrt(eps * next); /* a shorter step */
    }
    eps = next;
  }
  if (eps == 0 && fabs(cimag(t)) <= 1e-14 * cabs(t)) { /* a real root (outside the support), up to rounding */
    *rho = 0;
    if (tout) *tout = creal(t);
    return 0;
  }
  if (cimag(G) > 0) { /* the real equation's conjugate root: the same law */
    G = conj(G), t = conj(t);
    for (size_t l = 0; l < nr; ++l) ch->rs[l] = conj(ch->rs[l]);
  }
  const double d = -cimag(G) / M_PI;
  *rho = d > 0 ? d : 0.0;
  if (tout) *tout = t;
  return 0;
}

int sub_density_warm(const sub_chain *ch, double x, double *rho, cplx *t) {
  cplx G, tt = *t, *rsave = ch->rs + 2 * ch->n; /* try_axis's scratch: not in use here */
  memcpy(rsave, ch->rs, ch->n * sizeof(cplx));
  if (newton(ch, x - ch->cL, &tt, &G, 60, NULL) || fabs(cimag(tt)) <= 1e-14 * cabs(tt)) {
    /* no root, or a real one (the grid lies inside the support): the branch state as it was */
    memcpy(ch->rs, rsave, ch->n * sizeof(cplx));
    return -1;
  }
  if (cimag(G) > 0) {
    G = conj(G), tt = conj(tt);
    for (size_t l = 0; l < ch->n; ++l) ch->rs[l] = conj(ch->rs[l]);
  }
  *rho = -cimag(G) / M_PI;
  *t = tt;
  return 0;
}

/* ------------------------------------------------------------ edges --- */

typedef struct {
  const sub_chain *ch;
  cplx *rs; /* a fixed branch state (the chain's third scratch block) */
} real_ctx;

/* Z'(t) at real t, from a fixed branch state (the scan's). */
static double dZ_real(double t, void *vp) {
  real_ctx *c = vp;
  memcpy(c->ch->rs, c->rs, c->ch->n * sizeof(cplx));
  cplx Z, dZ, uL;
  chain_eval(c->ch, t, &Z, &dZ, &uL);
  return creal(dZ);
}

static double X_real(const sub_chain *ch, const cplx *rs, double t) {
  memcpy(ch->rs, rs, ch->n * sizeof(cplx));
  cplx Z, dZ, uL;
  chain_eval(ch, t, &Z, &dZ, &uL);
  return ch->cL + 1.0 / creal(Z);
}

/* The zero of Z' in [t0, t1] (a sign change) by Brent to rounding. */
static int brent(real_ctx *c, double t0, double t1, double *root) {
  gsl_function F = {dZ_real, c};
  gsl_root_fsolver *s = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
  if (!s) return -1;
  if (t0 > t1) {
    const double tmp = t0;
    t0 = t1, t1 = tmp;
  }
  int st = gsl_root_fsolver_set(s, &F, t0, t1), it = 0;
  while (!st && it++ < 200) {
    st = gsl_root_fsolver_iterate(s);
    const double a = gsl_root_fsolver_x_lower(s), b = gsl_root_fsolver_x_upper(s);
    if (gsl_root_test_interval(a, b, 0, 4 * GSL_DBL_EPSILON) == GSL_SUCCESS) break;
  }
  *root = gsl_root_fsolver_root(s);
  gsl_root_fsolver_free(s);
  return st ? -1 : 0;
}

static int upper_edge(const sub_chain *ch, double *hi) {
  real_ctx c = {.ch = ch, .rs = ch->rs + 3 * ch->n};
  const size_t nr = ch->n;
  branch_reset(ch);
  cplx Z, dZ, uL;
  chain_eval(ch, 0.0, &Z, &dZ, &uL);
  const double s0 = creal(dZ);
  const int M = 4000;
  double tp = 0;
  for (int k = 1; k < M; ++k) {
    const double t = (double)k / M;
    memcpy(c.rs, ch->rs, nr * sizeof(cplx)); /* the state at the previous point */
    chain_eval(ch, t, &Z, &dZ, &uL);
    if (!isfinite(creal(dZ))) return -1;
    if (creal(dZ) * s0 <= 0) {
      double ts;
      if (brent(&c, tp, t, &ts)) return -1;
      *hi = X_real(ch, c.rs, ts);
      return isfinite(*hi) ? 0 : -1;
    }
    tp = t;
  }
  return -1;
}

int sub_edges(sub_chain *ch, double *lo, double *hi) {
  gsl_error_handler_t *old = gsl_set_error_handler_off();
  int rc = -1;
  if (upper_edge(ch, hi)) goto done;
  const double cL = ch->cL, span = *hi - cL;
  ch->span = span;
  if (ch->f[ch->n - 1].kind == SUB_MASK) { /* P_L = W D^2 W^T reaches 0 (theory/spectrum.md 4.8): so does X_L */
    *lo = cL;
    rc = 0;
    goto done;
  }
  /* the first of 64 points above c_L where the density is positive */
  double xo = cL, xi = *hi, rho;
  int k;
  for (k = 1; k < 64; ++k) {
    const double x = cL + span * k / 64.0;
    if (sub_density(ch, x, &rho, NULL)) goto done;
    if (rho > 0) {
      xi = x;
      break;
    }
    xo = x;
  }
  if (k == 64) goto done;
  if (xo == cL) { /* towards c_L geometrically: a gap above c_L, or a hard edge at c_L */
    int g;
    for (g = 1; g <= 40; ++g) {
      const double x = cL + (xi - cL) * 0.5;
      if (sub_density(ch, x, &rho, NULL)) goto done;
      if (rho == 0) {
        xo = x;
        break;
      }
      xi = x;
    }
    if (g > 40) { /* positive down to 1e-12 of the first point */
      *lo = cL;
      rc = 0;
      goto done;
    }
  }
  for (int it = 0; it < 60 && xi - xo > 1e-7 * span; ++it) {
    const double xm = 0.5 * (xo + xi);
    if (sub_density(ch, xm, &rho, NULL)) goto done;
    if (rho > 0) xi = xm; else xo = xm;
  }
  /* the real root at xo, then Z' changes sign between it and the critical point */
  cplx to;
  if (sub_density(ch, xo, &rho, &to)) goto done;
  real_ctx c = {.ch = ch, .rs = ch->rs + 3 * ch->n};
  memcpy(c.rs, ch->rs, ch->n * sizeof(cplx));
  const double t0 = creal(to);
  const double d0 = dZ_real(t0, &c);
  const double Z0 = 1.0 / (X_real(ch, c.rs, t0) - cL);
  const double dX = -d0 / (Z0 * Z0);
  double h = 2.0 * (xi - xo) / dX;
  for (int it = 0; it < 40; ++it, h *= 2) {
    const double d1 = dZ_real(t0 + h, &c);
    if (d1 * d0 <= 0) {
      double ts;
      if (brent(&c, t0, t0 + h, &ts)) goto done;
      const double x = X_real(ch, c.rs, ts);
      if (!(x >= xo - 1e-6 * span && x <= xi + 1e-6 * span)) goto done;
      *lo = x;
      rc = 0;
      goto done;
    }
  }
done:
  gsl_set_error_handler(old);
  return rc;
}

/* ----------------------------------------------------- mask laws --- */

#define MASK_HMAX 9.5 /* exp(-9.5^2/2) = 2e-20 */

size_t sub_mask_law_step(bafu_act act, double s, double q, double step, double *t, double *w, size_t cap) {
  const size_t half = (size_t)(MASK_HMAX / step), n = 2 * half + 1;
  if (n > cap) return 0;
  const double sq = sqrt(q);
  double tot = 0;
  for (size_t i = 0; i < n; ++i) {
    const double h = ((double)i - (double)half) * step;
    /* tanh' = sech^2 directly: 1 - tanh^2 rounds to 0 beyond |u| ~ 19 */
    const double d = act == BAFU_ACT_TANH ? 1.0 / (cosh(sq * h) * cosh(sq * h)) : bafu_act_dphi(act, sq * h);
    t[i] = s * d * d;
    w[i] = exp(-0.5 * h * h);
    tot += w[i];
  }
  for (size_t i = 0; i < n; ++i) w[i] /= tot;
  /* an even phi' (tanh, erf) gives each atom twice, at h and -h: merged */
  int even = 1;
  for (size_t i = 0; i < half && even; ++i) even = t[i] == t[n - 1 - i];
  if (!even) return n;
  for (size_t i = 0; i < half; ++i) w[i] *= 2;
  return half + 1;
}

size_t sub_mask_law(bafu_act act, double s, double q, double m1, double m2, double *t, double *w, size_t cap) {
  for (double step = 0.5; step > 1e-3; step *= 0.5) {
    const size_t n = sub_mask_law_step(act, s, q, step, t, w, cap);
    if (!n) return 0;
    double a1 = 0, a2 = 0;
    for (size_t i = 0; i < n; ++i) a1 += w[i] * t[i], a2 += w[i] * t[i] * t[i];
    /* then once more: the Cauchy integrand w t/(1 - v t) has poles nearer the
       real h axis than t's own, and converges later than the moments */
    if (fabs(a1 - m1) <= 1e-13 * m1 && fabs(a2 - m2) <= 1e-13 * m2) return sub_mask_law_step(act, s, q, step / 2, t, w, cap);
  }
  return 0;
}
