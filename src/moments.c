/* moments.c: the BFK moment recursion and its continuum limit (bafu/moments.h).
 * Every formula is derived in theory/moments.md; section numbers refer to it. */
#include "bafu/moments.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

size_t bafu_moments_nlayers(const bafu_net_params *p) {
  size_t J = p->depth;
  if (p->arch == BAFU_ARCH_RESNET && p->embed) ++J;
  if (p->signal == BAFU_SIGNAL_MSE) ++J;
  return J;
}

/* The mask moments of a layer: t1 = phi(W^T W D^2) = s E[phi'^2] and
 * t2 = phi((W D^2 W^T)^2) = s^2 (E[phi'^2]^2 + E[phi'^4]) for Gaussian W,
 * s^2 E[phi'^4] for scaled orthogonal W (section 2.2). */
static void mask_moments(const bafu_net_params *p, const bafu_act_moments *am, double *t1, double *t2) {
  const double s = p->sigma_w2;
  *t1 = s * am->dphi2;
  if (p->init == BAFU_INIT_ORTHOGONAL)
    *t2 = s * s * am->dphi4;
  else
    *t2 = s * s * (am->dphi2 * am->dphi2 + am->dphi4);
}

/* One step of the two-moment rule (section 2.1): K' = c I + A K A^T with
 * A^T A free of K, phi(A^T A) = p1, phi((A^T A)^2) = p2. */
static void moment_step(double c, double p1, double p2, double *m1, double *m2) {
  const double a = *m1, b = *m2;
  *m1 = c + p1 * a;
  *m2 = c * c + 2 * c * p1 * a + p2 * a * a + p1 * p1 * (b - a * a);
}

bafu_status bafu_moments_run(const bafu_net_params *p, double x2, bafu_moments_layer *out) {
  bafu_status st = bafu_net_params_check(p);
  if (st) return st;
  const double n = (double)p->width, s = p->sigma_w2;
  const double d = (double)(p->input_dim ? p->input_dim : p->width);
  if (!(x2 > 0)) x2 = d;
  if (!isfinite(x2)) return bafu_error(BAFU_EINVAL, "input squared norm must be finite");
  const double beta = bafu_net_beta(p);
  const size_t J = bafu_moments_nlayers(p);
  double m1 = 0, m2 = 0;
  double q = x2 / d; /* variance of the entries of the current stream */
  size_t j = 0;
  /* the layer reading x: K = lr_in |x|^2 I (section 2.3) */
  if (p->arch == BAFU_ARCH_MLP || p->embed) {
    const double c = p->lr_input * x2;
    out[j] = (bafu_moments_layer){.label = p->arch == BAFU_ARCH_MLP ? 1 : 0, .q_in = q, .q = s * q, .c = c,
                                  .p1 = 0, .p2 = 0, .m1 = c, .m2 = c * c};
    m1 = c;
    m2 = c * c;
    q = s * q;
    ++j;
  }
  const size_t first_label = p->arch == BAFU_ARCH_MLP ? 2 : 1;
  for (size_t l = first_label; l <= p->depth; ++l, ++j) {
    bafu_act_moments am;
    if ((st = bafu_act_moments_eval(p->act, q, &am))) return st;
    double t1, t2, c, p1, p2, qn;
    mask_moments(p, &am, &t1, &t2);
    if (p->arch == BAFU_ARCH_MLP) { /* section 2.2 */
      c = p->lr_hidden * n * am.phi2;
      p1 = t1;
      p2 = t2;
      qn = s * am.phi2;
    } else { /* section 2.4 */
      const double b2 = beta * beta;
      c = p->lr_hidden * b2 * n * am.phi2;
      p1 = 1 + b2 * t1;
      p2 = 1 + 4 * b2 * t1 + b2 * b2 * t2;
      qn = q + b2 * s * am.phi2;
    }
    moment_step(c, p1, p2, &m1, &m2);
    if (!isfinite(qn) || !isfinite(m2))
      return bafu_error(BAFU_ENUMERIC, "moments overflowed at layer %zu: reduce depth, sigma-w2 or branch scale", l);
    out[j] = (bafu_moments_layer){.label = (int)l, .q_in = q, .q = qn, .c = c, .p1 = p1, .p2 = p2, .m1 = m1, .m2 = m2};
    q = qn;
  }
  if (p->signal == BAFU_SIGNAL_MSE) { /* readout: k/n -> 0, no spread (section 2.5) */
    bafu_act_moments am;
    if ((st = bafu_act_moments_eval(p->act, q, &am))) return st;
    const double c = p->lr_output * n * am.phi2, p1 = s * am.dphi2;
    moment_step(c, p1, p1 * p1, &m1, &m2);
    out[j] = (bafu_moments_layer){.label = (int)p->depth + 1, .q_in = q, .q = s * am.phi2, .c = c, .p1 = p1,
                                  .p2 = p1 * p1, .m1 = m1, .m2 = m2};
    ++j;
  }
  if (j != J) return bafu_error(BAFU_ENUMERIC, "internal error: layer count %zu != %zu", j, J);
  /* backward factors, from the top: E|b_{l-1}|^2 = p1_l E|b_l|^2 (section 2.6) */
  double back = 1;
  for (size_t i = J; i-- > 0;) {
    out[i].back = back;
    out[i].cos_theta = out[i].m1 / sqrt(out[i].m2);
    if (!isfinite(out[i].m1) || !isfinite(out[i].m2) || !isfinite(out[i].cos_theta) || !isfinite(back))
      return bafu_error(BAFU_ENUMERIC, "moments overflowed at layer %d: reduce depth, sigma-w2 or branch scale",
                        out[i].label);
    if (out[i].cos_theta > 1) out[i].cos_theta = 1; /* rounding when m2 = m1^2 exactly */
    back *= out[i].p1;
  }
  return BAFU_OK;
}

/* Continuum ODE (section 3): with kappa(q) = s E[phi'^2](q),
 *   dq/dt  = b^2 s E[phi^2](q)
 *   dmu/dt = b^2 (lr E[phi^2](q) + kappa mu)
 *   dr/dt  = 2 b^2 kappa (r + mu^2) */
typedef struct {
  const bafu_net_params *p;
  double b2;
  bafu_status st;
} ode_ctx;

static int ode_rhs(double t, const double y[], double dydt[], void *params) {
  ode_ctx *ctx = params;
  bafu_act_moments am;
  const double q = y[0] > 0 ? y[0] : 0;
  bafu_status st = bafu_act_moments_eval(ctx->p->act, q, &am);
  if (st) {
    ctx->st = st;
    return GSL_EBADFUNC;
  }
  const double s = ctx->p->sigma_w2, kappa = s * am.dphi2;
  dydt[0] = ctx->b2 * s * am.phi2;
  dydt[1] = ctx->b2 * (ctx->p->lr_hidden * am.phi2 + kappa * y[1]);
  dydt[2] = 2 * ctx->b2 * kappa * (y[2] + y[1] * y[1]);
  return GSL_SUCCESS;
}

bafu_status bafu_continuum_run(const bafu_net_params *p, double b, double rtol, size_t npoints,
                               bafu_continuum_point *out) {
  if (!(isfinite(b) && b >= 0)) return bafu_error(BAFU_EINVAL, "--branch-scale: must be a finite number >= 0");
  if (!(rtol > 0 && rtol < 1)) return bafu_error(BAFU_EINVAL, "continuum: tolerance must be in (0, 1)");
  if (npoints < 1) return bafu_error(BAFU_EINVAL, "continuum: need at least one interval");
  bafu_net_params pc = *p;
  pc.arch = BAFU_ARCH_RESNET;
  pc.signal = BAFU_SIGNAL_PROBE;
  bafu_status st = bafu_net_params_check(&pc);
  if (st) return st;
  const double n = (double)pc.width, s = pc.sigma_w2;
  const double d = (double)(pc.input_dim ? pc.input_dim : pc.width);
  /* initial state: f_0 = x (q = 1, K_0 = 0) or the embedding (q = s, K_0 = lr_in d I) */
  double y[3] = {1.0, 0.0, 0.0};
  if (pc.embed) {
    y[0] = s;
    y[1] = pc.lr_input * d / n;
  }
  ode_ctx ctx = {.p = &pc, .b2 = b * b, .st = BAFU_OK};
  gsl_odeiv2_system sys = {ode_rhs, NULL, 3, &ctx};
  gsl_odeiv2_driver *drv = gsl_odeiv2_driver_alloc_y_new(&sys, gsl_odeiv2_step_rk8pd, 1e-3, rtol * 1e-3, rtol);
  if (!drv) return bafu_error(BAFU_ENOMEM, "out of memory for the ODE driver");
  double t = 0;
  for (size_t k = 0; k <= npoints; ++k) {
    const double tk = (double)k / (double)npoints;
    if (k > 0) {
      int rc = gsl_odeiv2_driver_apply(drv, &t, tk, y);
      if (rc != GSL_SUCCESS) {
        gsl_odeiv2_driver_free(drv);
        if (ctx.st) return ctx.st;
        return bafu_error(BAFU_ENUMERIC, "continuum ODE failed at t = %g (%s)", t, gsl_strerror(rc));
      }
    }
    double c = y[1] > 0 ? y[1] / sqrt(y[1] * y[1] + y[2]) : 1.0; /* t -> 0+ limit */
    out[k] = (bafu_continuum_point){.t = tk, .q = y[0], .mu = y[1], .r = y[2], .cos_theta = c};
    if (!isfinite(c) || !isfinite(y[0])) {
      gsl_odeiv2_driver_free(drv);
      return bafu_error(BAFU_ENUMERIC, "continuum ODE overflowed at t = %g", tk);
    }
  }
  gsl_odeiv2_driver_free(drv);
  return BAFU_OK;
}

double bafu_continuum_cos_closed(const bafu_net_params *p, double b, double t) {
  if (p->embed) return NAN;
  double kappa;
  if (p->act == BAFU_ACT_RELU)
    kappa = p->sigma_w2 / 3.0;
  else if (p->act == BAFU_ACT_LINEAR)
    kappa = 2.0 * p->sigma_w2 / 3.0;
  else
    return NAN;
  return 1.0 / sqrt(1.0 + kappa * b * b * t);
}

/* Fixed point of the MLP forward variance map q -> s E[phi^2](q), by
 * iteration from q0 (section 4.2); returns the last iterate. */
static bafu_status mlp_fixed_point(const bafu_net_params *p, double q0, double *qstar, int *converged) {
  double q = q0;
  *converged = 0;
  for (int it = 0; it < 100000; ++it) {
    bafu_act_moments am;
    bafu_status st = bafu_act_moments_eval(p->act, q, &am);
    if (st) return st;
    const double qn = p->sigma_w2 * am.phi2;
    if (!isfinite(qn) || qn > 1e12) {
      *qstar = qn;
      return BAFU_OK;
    }
    if (fabs(qn - q) <= 1e-13 * fmax(q, 1e-300)) {
      *qstar = qn;
      *converged = 1;
      return BAFU_OK;
    }
    q = qn;
  }
  *qstar = q;
  return BAFU_OK;
}

bafu_status bafu_moments_regime(const bafu_net_params *p, char *buf, size_t size) {
  bafu_status st = bafu_net_params_check(p);
  if (st) return st;
  const double s = p->sigma_w2;
  const int orth = p->init == BAFU_INIT_ORTHOGONAL;
  if (p->arch == BAFU_ARCH_RESNET) {
    const double A = p->branch_exponent, B = p->branch_scale;
    const double q0 = p->embed ? s : 1.0;
    bafu_act_moments am;
    if ((st = bafu_act_moments_eval(p->act, q0, &am))) return st;
    const double a0 = s * am.dphi2;
    if (B == 0) {
      snprintf(buf, size, "beta = 0: blocks are the identity, K_l = 0 (no feature learning in the blocks)");
    } else if (A > 0.5) {
      snprintf(buf, size,
               "branch exponent A = %g > 1/2: cos_L -> 1 as L -> inf, 1 - cos_L ~ (1/3) s E[phi'^2](q_0) B^2 "
               "L^(1-2A) = %.6g L^(%g)%s",
               A, a0 * B * B / 3.0, 1 - 2 * A, p->embed ? " (an upper bound with the embedding)" : "");
    } else if (A == 0.5) {
      bafu_continuum_point pts[2];
      if ((st = bafu_continuum_run(p, B, 1e-10, 1, pts))) return st;
      snprintf(buf, size,
               "branch exponent A = 1/2: non-trivial limit, cos_L -> %.10g as L -> inf (continuum ODE at "
               "sqrt(L) beta = %g; bafu theory --limit)",
               pts[1].cos_theta, B);
    } else if (A > 0 && (p->act == BAFU_ACT_RELU || p->act == BAFU_ACT_LINEAR)) {
      const double kappa = p->act == BAFU_ACT_RELU ? s / 3.0 : 2.0 * s / 3.0;
      snprintf(buf, size,
               "branch exponent A = %g < 1/2: cos_L -> 0 as L -> inf, cos_L ~ (kappa B^2)^(-1/2) L^(A-1/2) = "
               "%.6g L^(%g), kappa = %s",
               A, 1.0 / sqrt(kappa * B * B), A - 0.5, p->act == BAFU_ACT_RELU ? "s/3" : "2s/3");
    } else {
      snprintf(buf, size,
               "branch exponent A = %g < 1/2: cos_L -> 0 as L -> inf (rate set by the activation at large "
               "forward variance; see theory/moments.md 4.1)",
               A);
    }
    return BAFU_OK;
  }
  /* MLP (section 4.2) */
  if (p->act == BAFU_ACT_LINEAR && orth) {
    snprintf(buf, size, "linear MLP, orthogonal init: dynamical isometry, cos_l = 1 at every depth");
    return BAFU_OK;
  }
  if (p->act == BAFU_ACT_RELU || p->act == BAFU_ACT_LINEAR) {
    /* homogeneous: (p2 - p1^2)/p1^2 is constant, m1 ~ l chi^l */
    const double ratio = p->act == BAFU_ACT_RELU ? (orth ? 1.0 : 2.0) : 1.0;
    snprintf(buf, size, "%s MLP, %s init: cos_l -> 0 as l -> inf, cos_l ~ sqrt(3/(%g l)) = %.6g l^(-1/2)",
             bafu_act_name(p->act), orth ? "orthogonal" : "Gaussian", ratio, sqrt(3.0 / ratio));
    return BAFU_OK;
  }
  double qstar;
  int conv;
  const double q1 = s; /* |x|^2 = d */
  if ((st = mlp_fixed_point(p, q1, &qstar, &conv))) return st;
  if (!conv) {
    snprintf(buf, size, "%s MLP: the forward variance has no reachable fixed point; cos_l -> 0 (section 4.2)",
             bafu_act_name(p->act));
    return BAFU_OK;
  }
  bafu_act_moments am;
  if ((st = bafu_act_moments_eval(p->act, qstar, &am))) return st;
  double t1, t2;
  mask_moments(p, &am, &t1, &t2);
  const double chi = t1, spread = t2 - t1 * t1;
  if (fabs(chi - 1) < 1e-3) {
    snprintf(buf, size, "%s MLP at the edge of chaos (chi = %.6g at q* = %.6g): cos_l -> 0, about l^(-1/2)",
             bafu_act_name(p->act), chi, qstar);
  } else if (chi < 1) {
    snprintf(buf, size,
             "%s MLP, ordered phase (chi = %.6g < 1 at q* = %.6g): cos_l -> %.10g = (1 + (p2-chi^2)/(1-chi^2))^(-1/2)"
             " as l -> inf, geometrically",
             bafu_act_name(p->act), chi, qstar, 1.0 / sqrt(1.0 + spread / (1.0 - chi * chi)));
  } else {
    snprintf(buf, size,
             "%s MLP, chaotic phase (chi = %.6g > 1 at q* = %.6g): cos_l -> 0, cos_l ~ (chi^2/((p2-chi^2) l))^(1/2) "
             "= %.6g l^(-1/2)",
             bafu_act_name(p->act), chi, qstar, sqrt(chi * chi / spread));
  }
  return BAFU_OK;
}
