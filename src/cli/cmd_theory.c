/* cmd_theory.c: `bafu theory`, the infinite-width prediction of the per-layer
 * angle (moment recursion) and the ResNet continuum limit. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/moments.h"
#include "bafu/layout.h"
#include "bafu/outangle.h"
#include "bafu/preset.h"
#include "bafu/table.h"
#include "bafu/text.h"
#include "cli.h"
#include "progress.h"

static const char usage[] =
    "Usage: bafu theory [network options] [--limit [--sweep-branch LO:HI:STEP]]\n"
    "\n"
    "Infinite-width prediction of the backward-feature angle of every layer for one\n"
    "input, from the recursion of the first two spectral moments m1, m2 of the\n"
    "backward-to-feature kernel K_l (free probability; theory/moments.md):\n"
    "cos(theta_l) = m1 / sqrt(m2). The network options are those of `bafu mc`, so\n"
    "the same command line with `theory` in place of `mc` predicts the same network.\n"
    "\n"
    "--limit (ResNets): the L -> infinity limit with beta = b/sqrt(L), b = --branch-scale,\n"
    "as a function of t = l/L (columns t cos_theta), from the continuum ODE; with\n"
    "--sweep-branch, the output angle (t = 1) against sqrt(L)*beta (columns\n"
    "sqrtL_beta cos_theta).\n"
    "\n"
    "--presets: the table of the hyper-parameter scalings sp, ntk, mup, fsc (init\n"
    "variance and learning rate of the input, hidden and output layers, as formulas\n"
    "and as numbers for the given --width, --depth, --input-dim, --arch, branch\n"
    "scaling), for dense and one-hot inputs (theory/presets.md).\n"
    "\n"
    "Examples: bafu theory --width 1024 --depth 20\n"
    "          bafu theory --presets --width 1024 --depth 64\n"
    "          bafu theory --arch resnet --limit --branch-scale 2\n"
    "          bafu theory --arch resnet --limit --sweep-branch 0:8:0.25";

/* --limit: successive refinements of the continuum solver agree to this (theory/moments.md 3.3) */
#define LIMIT_RTOL 1e-10

/* Parse "LO:HI:STEP" strictly: finite, 0 <= LO <= HI, STEP > 0, at most 1e6 points. */
static int parse_sweep(const char *s, double *lo, double *hi, double *step, size_t *count) {
  double v[3];
  char part[3][64];
  const char *cur = s;
  for (int i = 0; i < 3; ++i) {
    const size_t n = i < 2 ? strcspn(cur, ":") : strlen(cur);
    if (n >= sizeof part[i] || (i < 2 && cur[n] != ':')) return 0;
    memcpy(part[i], cur, n);
    part[i][n] = '\0';
    if (!bafu_parse_double(part[i], &v[i])) return 0;
    cur += n + 1;
  }
  if (v[0] < 0 || v[1] < v[0] || !(v[2] > 0)) return 0;
  const double n = floor((v[1] - v[0]) / v[2] * (1 + 1e-12)) + 1;
  if (!(n <= 1e6)) return 0;
  *lo = v[0];
  *hi = v[1];
  *step = v[2];
  *count = (size_t)n;
  return 1;
}

/* `bafu theory --presets`: every preset, for dense and one-hot inputs. */
static int print_presets(const bafu_net_params *p0, const char *out, int argc, char **argv) {
  bafu_table *t;
  if (bafu_table_open(out, &t)) {
    cli_fail("theory", "--out");
    return 2;
  }
  char desc[1024];
  cli_net_describe(p0, desc, sizeof desc);
  bafu_table_meta(t, "bafu theory --presets: hyper-parameter scalings from the feature speed formula (theory/presets.md)");
  bafu_table_provenance(t, argc + 1, argv - 1);
  bafu_table_meta(t, "network: %s", desc);
  bafu_table_meta(t, "n = width, L = depth, d = input dim, s = sigma_w2, beta = branch scale B L^-A; init_var = variance");
  bafu_table_meta(t, "of one weight entry; lr multiplies the global step (bafu mc --step, bafu train --lr)");
  bafu_layout lay;
  const int blocks_read_x = bafu_layout_build(p0, &lay) == BAFU_OK && lay.stage[0].kind == BAFU_STAGE_BLOCK;
  if (blocks_read_x)
    bafu_table_meta(t, "onehot rows left out: a ResNet without --embed cannot read one-hot inputs");
  FILE *f = bafu_table_stream(t);
  const int biased = p0->bias_var > 0; /* the bias rates' columns (V = bias_var) */
  if (biased) bafu_table_meta(t, "lr_bias: learning rate of the group's biases, V = bias_var (theory/presets.md 6)");
  fprintf(f, "preset inputs group init_var_formula lr_formula init_var lr%s\n", biased ? " lr_bias_formula lr_bias" : "");
  for (int kind = 0; kind < 2; ++kind) {
    bafu_net_params p = *p0;
    p.inputs = kind ? BAFU_INPUTS_ONEHOT : BAFU_INPUTS_GAUSSIAN;
    if (kind && blocks_read_x) continue;
    for (int k = 0; k < BAFU_PRESET_COUNT; ++k) {
      bafu_preset_row rows[3];
      if (bafu_preset_rows(&p, (bafu_preset)k, rows)) {
        cli_fail("theory", "--presets");
        bafu_table_abort(t);
        return 1;
      }
      for (int g = 0; g < 3; ++g) {
        fprintf(f, "%s %s %s %s %s %.10g %.10g", bafu_preset_name((bafu_preset)k), kind ? "onehot" : "dense",
                rows[g].group, rows[g].var_formula, rows[g].lr_formula, rows[g].var, rows[g].lr);
        if (biased) fprintf(f, " %s %.10g", rows[g].lr_bias_formula, rows[g].lr_bias);
        fputc('\n', f);
      }
    }
  }
  if (bafu_table_commit(t)) {
    cli_fail("theory", "--out");
    return 1;
  }
  return 0;
}

int cmd_theory(int argc, char **argv) {
  const char *cmd = "theory";
  cli_net net;
  cli_opt opts[48];
  size_t n = 0;
  cli_net_options(&net, opts, &n, 48, NULL, CLI_NET_SAMPLING);
  int limit = 0, presets = 0, quiet = 0, exact = 0, dg = 12; /* dg: significant digits of the numbers (--exact: 17) */
  size_t points = 100;
  const char *sweep = NULL, *out = NULL, *depths = NULL;
  int sens_mean = 0;
  const cli_opt extra[] = {
      {"--depths", OPT_STRING, &depths, "L1,L2,...", "the recursion at each depth of the list, every layer, a column depth first (the preset applied at each depth) [--depth]", NULL, 0},
      {"--sensitivity-mean", OPT_FLAG, &sens_mean, NULL, "--loss mse: the sensitivity column times kappa_k, the mean of the per-draw ratio that bafu mc averages (theory/presets.md 2.2)", NULL, 0},
      {"--limit", OPT_FLAG, &limit, NULL, "ResNet continuum limit L -> inf with beta = b/sqrt(L)", NULL, 0},
      {"--presets", OPT_FLAG, &presets, NULL, "print the table of the scaling presets sp, ntk, mup, fsc", NULL, 0},
      {"--points", OPT_SIZE, &points, "N", "--limit: intervals in t = l/L [100]", NULL, 0},
      {"--sweep-branch", OPT_STRING, &sweep, "LO:HI:STEP", "--limit: output angle against sqrt(L)*beta over LO..HI [off]", NULL, 0},
      {"--out", OPT_STRING, &out, "PATH", "output table, written atomically [stdout]", NULL, 0},
      {"--exact", OPT_FLAG, &exact, NULL, "numbers with 17 significant digits: they read back as the same doubles (bafu figures reformats them) [12]", NULL, 0},
      {"--quiet", OPT_FLAG, &quiet, NULL, "no progress bar (shown on a terminal for runs over 2 s)", NULL, 0},
  };
  for (size_t i = 0; i < sizeof extra / sizeof extra[0]; ++i) opts[n++] = extra[i];
  opts[n] = (cli_opt){0};
  int r = cli_parse(cmd, usage, opts, argc, argv, 1, NULL, 0, NULL);
  if (r) return r == 1 ? 0 : 2;
  if (exact) dg = 17;
  if ((r = cli_net_finish(cmd, &net, opts, out))) return r;
  bafu_net_params *p = &net.p;
  if ((r = cli_net_refuse_sampling(cmd, &net))) return r;
  int rc = 2;
  double lo = 0, hi = 0, step = 1;
  size_t count = 0;
  if ((depths || sens_mean) && (presets || limit || p->batch != 1)) {
    cli_errorf("bafu theory: --%s: only for the moment recursion (not with --presets, --limit or --batch)\n",
            depths ? "depths" : "sensitivity-mean");
    goto done;
  }
  if (presets) {
    rc = print_presets(p, out, argc, argv);
    goto done;
  }
  if (p->signal == BAFU_SIGNAL_XENT) {
    cli_errorf("bafu theory: --loss xent: the theory covers the probe and mse signals\n");
    goto done;
  }
  if (p->batch != 1 && (p->signal != BAFU_SIGNAL_MSE || limit)) {
    cli_errorf("bafu theory: --batch: the moment theory is for one input; for a batch, use --loss mse "
                    "(output-layer angle from the NTK) or bafu kernel\n");
    goto done;
  }
  if (p->batch != 1 && net.x) {
    cli_errorf("bafu theory: --input: the batch output angle assumes N(0, I) inputs (orthogonal in the "
                    "limit); drop --input\n");
    goto done;
  }
  if (sweep && !limit) {
    cli_errorf("bafu theory: --sweep-branch: only with --limit\n");
    goto done;
  }
  bafu_layout lay;
  if (bafu_layout_build(p, &lay)) { /* checked by cli_net_finish: cannot fail here */
    cli_fail(cmd, NULL);
    goto done;
  }
  if (limit && !bafu_layout_has_blocks(&lay)) {
    cli_errorf("bafu theory: --limit: only for --arch resnet (an MLP has no non-trivial limit; see the "
                    "regime line of bafu theory)\n");
    goto done;
  }
  if (limit && p->signal == BAFU_SIGNAL_MSE) {
    cli_errorf("bafu theory: --limit: uses the probe signal (drop --loss)\n");
    goto done;
  }
  if (sweep && !parse_sweep(sweep, &lo, &hi, &step, &count)) {
    cli_errorf("bafu theory: --sweep-branch: expected LO:HI:STEP with 0 <= LO <= HI, STEP > 0 and at most "
                    "1e6 points, got '%s'\n",
            sweep);
    goto done;
  }
  bafu_table *t;
  if (bafu_table_open(out, &t)) {
    cli_fail(cmd, "--out");
    goto done;
  }
  char desc[1024], regime[512];
  cli_net_describe(p, desc, sizeof desc);
  rc = 1;
  if (p->batch > 1) {
    double mean, se;
    const bafu_status st = bafu_output_angle(p, 20000, 1, &mean, &se);
    if (st) {
      cli_fail(cmd, NULL);
      bafu_table_abort(t);
      rc = cli_exit_status(st);
      goto done;
    }
    bafu_table_meta(t, "bafu theory, batch: output-layer angle from the limiting NTK and the residual (theory/kernel.md)");
    bafu_table_provenance(t, argc + 1, argv - 1);
    bafu_table_meta(t, "network: %s", desc);
    bafu_table_meta(t, "cos_theta = E <r, Theta r>/(|r| |Theta r|) over r = y - t, y ~ N(0, Sigma_out), t ~ N(0, I),");
    bafu_table_meta(t, "  estimated with 20000 draws of r (cos_theta_se); compare with the last row of bafu mc --loss mse");
    FILE *f = bafu_table_stream(t);
    fprintf(f, "layer cos_theta cos_theta_se\n%d %.10g %.3g\n", bafu_layout_last_label(&lay), mean, se);
  } else if (!limit) {
    /* one depth, or with --depths each of the list (the preset applied at each) */
    size_t nd = 1;
    for (const char *q = depths; q && *q; ++q) nd += *q == ',';
    size_t *dl = malloc(nd * sizeof *dl);
    if (!dl) {
      cli_errorf("bafu theory: out of memory\n");
      bafu_table_abort(t);
      goto done;
    }
    dl[0] = p->depth;
    for (size_t i = 0, at = 0; depths && i < nd; ++i) {
      char word[32];
      const size_t len = strcspn(depths + at, ",");
      snprintf(word, sizeof word, "%.*s", (int)(len < 31 ? len : 31), depths + at);
      char *end;
      const unsigned long long v = strtoull(word, &end, 10);
      if (len == 0 || len > 30 || *end || word[0] == '-' || v < 1 || v > 100000) {
        cli_errorf("bafu theory: --depths: expected depths 1..100000 separated by commas, got '%s'\n", depths);
        free(dl);
        bafu_table_abort(t);
        rc = 2;
        goto done;
      }
      dl[i] = (size_t)v;
      at += len + 1;
    }
    const double kappa = bafu_sensitivity_kappa(p->outputs);
    if (sens_mean && !(p->signal == BAFU_SIGNAL_MSE && isfinite(kappa))) {
      cli_errorf("bafu theory: --sensitivity-mean: needs --loss mse with --outputs 2 or more\n");
      free(dl);
      bafu_table_abort(t);
      rc = 2;
      goto done;
    }
    for (size_t di = 0; di < nd; ++di) {
      bafu_net_params pd = *p;
      pd.depth = dl[di];
      if (net.preset >= 0 && bafu_preset_apply(&pd, (bafu_preset)net.preset)) {
        cli_fail(cmd, "--depths");
        free(dl);
        bafu_table_abort(t);
        rc = cli_exit_status(BAFU_EINVAL);
        goto done;
      }
      const size_t J = bafu_moments_nlayers(&pd);
      bafu_status st = bafu_memory_check((double)J * sizeof(bafu_moments_layer), "--depth: the per-layer results");
      bafu_moments_layer *o = st ? NULL : malloc(J * sizeof *o);
      const double x2 = bafu_moments_input_x2(net.x, pd.input_dim);
      cli_lazy_bar bar = {.unit = "blocks (two sweeps)", .quiet = quiet};
      if (!st) st = o ? bafu_moments_run_progress(&pd, x2, cli_lazy_bar_fn, &bar, o) : bafu_error(BAFU_ENOMEM, "out of memory");
      if (!st) st = bafu_moments_regime(&pd, regime, sizeof regime);
      if (st) {
        cli_fail(cmd, NULL);
        free(o);
        free(dl);
        bafu_table_abort(t);
        rc = cli_exit_status(st);
        goto done;
      }
      size_t first = 0;
      while (first < J && o[first].m1 == 0) ++first;
      if (first == J) {
        cli_errorf("bafu theory: --lr-input/--lr-hidden/--branch-scale: no layer has a trained parameter\n");
        free(o);
        free(dl);
        bafu_table_abort(t);
        rc = 2;
        goto done;
      }
      FILE *f = bafu_table_stream(t);
      if (di == 0) {
        bafu_table_meta(t, "bafu theory: infinite-width BFK moment recursion, one input (theory/moments.md)");
        if (first > 0)
          bafu_table_meta(t, "layers up to %d are left out: no trained parameter at or below them (K_l = 0)",
                          o[first - 1].label);
        bafu_table_provenance(t, argc + 1, argv - 1);
        bafu_table_meta(t, "network: %s", desc);
        if (depths)
          bafu_table_meta(t, "depths: %s (column depth; every layer of each; the network line is that of --depth)",
                          depths);
        bafu_table_meta(t, "input: %s", net.x ? net.input_file : "|x|^2 = d (expectation for N(0, I_d))");
        bafu_table_meta(t, "regime: %s", regime);
        bafu_table_meta(t, "columns: cos_theta = predicted angle for the network's own backward vector (MLP: m1/sqrt(m2);");
        bafu_table_meta(t, "  ResNet blocks: with the residual stream's mask correlations, theory/moments.md 2.5);");
        bafu_table_meta(t, "  cos_spectral = m1/sqrt(m2), the angle for a direction independent of K_l;");
        bafu_table_meta(t, "  m1, m2 = tr(K_l)/n, tr(K_l^2)/n in the units of bafu mc;");
        bafu_table_meta(t, "  q = variance of f_l entries; c = the layer's own term c_l; p1, p2 = phi(A^T A), "
                           "phi((A^T A)^2);");
        bafu_table_meta(t, "  back = E|b_l|^2 / E|b_top|^2; with the probe (E|b_top|^2 = 1) backward_norm = sqrt(back),");
        bafu_table_meta(t, "  loss_decay = m1 back and feature_speed = sqrt(m2 back) predict the bafu mc columns.");
        bafu_table_meta(t, "  sensitivity = |df_l|_rms / D_top, predicted for the probe or mse signal (theory/presets.md 2),");
        if (sens_mean)
          bafu_table_meta(t, "  times kappa_k = %.6f (--sensitivity-mean: the mean of the per-draw ratio, theory/presets.md 2.2),",
                          kappa);
        bafu_table_meta(t, "  compares with the bafu mc column of the same name.");
        fprintf(f, "%slayer cos_theta m1 m2 cos_spectral q c p1 p2 back backward_norm loss_decay feature_speed sensitivity\n",
                depths ? "depth " : "");
      }
      for (size_t j = first; j < J; ++j) {
        if (depths) fprintf(f, "%zu ", pd.depth);
        fprintf(f, "%d %.*g %.*g %.*g %.*g %.*g %.*g %.*g %.*g %.*g %.*g %.*g %.*g %.*g\n", o[j].label, dg,
                o[j].cos_theta, dg, o[j].m1, dg, o[j].m2, dg, o[j].cos_spectral, dg, o[j].q, dg, o[j].c, dg, o[j].p1, dg,
                o[j].p2, dg, o[j].back, dg, o[j].backward_norm, dg, o[j].loss_decay, dg, o[j].feature_speed, dg,
                sens_mean ? o[j].sensitivity * kappa : o[j].sensitivity);
      }
      free(o);
    }
    free(dl);
  } else if (!sweep) {
    bafu_status st = bafu_memory_check(((double)points + 1) * sizeof(bafu_continuum_point), "--points: the grid");
    bafu_continuum_point *pts = st ? NULL : malloc((points + 1) * sizeof *pts);
    if (!st)
      st = pts ? bafu_continuum_run(p, p->branch_scale, LIMIT_RTOL, points, pts) : bafu_error(BAFU_ENOMEM, "out of memory");
    if (st) {
      cli_fail(cmd, NULL);
      free(pts);
      bafu_table_abort(t);
      rc = cli_exit_status(st);
      goto done;
    }
    bafu_table_meta(t, "bafu theory --limit: ResNet continuum limit, beta = b/sqrt(L), L -> inf (theory/moments.md 3)");
    bafu_table_provenance(t, argc + 1, argv - 1);
    bafu_table_meta(t, "network: %s", desc);
    bafu_table_meta(t, "b = sqrt(L) beta = %g; continuum equations by spectral quadrature in sqrt(t) "
                       "(theory/moments.md 3.3); estimated error of cos_theta %.2g", p->branch_scale, pts[0].error);
    const double closed = bafu_continuum_cos_closed(p, p->branch_scale, 1.0);
    if (isfinite(closed)) bafu_table_meta(t, "closed form at t = 1: %.12g", closed);
    bafu_table_meta(t, "columns: t = l/L; cos_theta; q = forward variance; mu = m1/n; r = (m2 - m1^2)/n^2");
    FILE *f = bafu_table_stream(t);
    fprintf(f, "t cos_theta q mu r\n");
    for (size_t k = 0; k <= points; ++k)
      fprintf(f, "%.*g %.*g %.*g %.*g %.*g\n", exact ? 17 : 10, pts[k].t, dg, pts[k].cos_theta, dg, pts[k].q, dg, pts[k].mu,
              dg, pts[k].r);
    free(pts);
  } else {
    /* every value is computed; one that fails is reported in its place and
       the others are kept (exit 1 if any failed) */
    double *c = malloc(count * sizeof *c), err = 0;
    char(*why)[256] = calloc(count, sizeof *why);
    size_t failed = 0;
    cli_bar bar;
    cli_bar_start(&bar, count, 0, "values", quiet);
    for (size_t k = 0; c && why && k < count; ++k) {
      bafu_continuum_point pts[2];
      if (bafu_continuum_run(p, lo + (double)k * step, LIMIT_RTOL, 1, pts)) {
        snprintf(why[k], sizeof why[k], "%s", bafu_last_error());
        c[k] = NAN;
        ++failed;
      } else {
        c[k] = pts[1].cos_theta;
        err = fmax(err, pts[1].error);
      }
      cli_bar_update(&bar, k + 1, NULL);
    }
    if (!c || !why) {
      cli_errorf("bafu theory: out of memory\n");
      free(c);
      free(why);
      bafu_table_abort(t);
      goto done;
    }
    if (failed == count) {
      cli_errorf("bafu theory: --sweep-branch: every value failed; the first: %s\n", why[0]);
      free(c);
      free(why);
      bafu_table_abort(t);
      goto done;
    }
    bafu_table_meta(t, "bafu theory --limit --sweep-branch: L -> inf output angle against sqrt(L) beta "
                       "(theory/moments.md 3)");
    bafu_table_provenance(t, argc + 1, argv - 1);
    bafu_table_meta(t, "network: %s", desc);
    bafu_table_meta(t, "estimated discretisation error of cos_theta: %.2g (max over the sweep)", err);
    if (failed)
      bafu_table_meta(t, "failed values: %zu of %zu (each marked by a '# sqrtL_beta = B failed' line in its place)",
                      failed, count);
    FILE *f = bafu_table_stream(t);
    fprintf(f, "sqrtL_beta cos_theta\n");
    size_t first = count;
    for (size_t k = 0; k < count; ++k) {
      if (isnan(c[k])) {
        bafu_table_meta(t, "sqrtL_beta = %.10g failed: %s", lo + (double)k * step, why[k]);
        if (first == count) first = k;
      } else {
        fprintf(f, "%.*g %.*g\n", exact ? 17 : 10, lo + (double)k * step, dg, c[k]);
      }
    }
    rc = 0;
    if (failed) {
      cli_errorf("bafu theory: --sweep-branch: %zu of %zu values failed (marked in the table); the first, "
                      "sqrtL_beta = %g: %s\n", failed, count, lo + (double)first * step, why[first]);
      rc = 1;
    }
    free(c);
    free(why);
    if (bafu_table_commit(t)) {
      cli_fail(cmd, "--out");
      rc = 1;
    }
    goto done;
  }
  if (bafu_table_commit(t)) {
    cli_fail(cmd, "--out");
    goto done;
  }
  rc = 0;
done:
  cli_net_release(&net);
  return rc;
}
