/* cmd_spectrum.c: `bafu spectrum`, spectra of the backward-to-feature kernel
 * K_l and of J J^T for one input: dense (finite width, eigenvalues), kpm
 * (finite width, matrix-free kernel polynomial method) and limit (infinite
 * width, free multiplicative convolution). theory/spectrum.md. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/layout.h"
#include "bafu/moments.h"
#include "bafu/spectrum.h"
#include "bafu/table.h"
#include "cli.h"
#include "progress.h"

static const char usage[] =
    "Usage: bafu spectrum [network options] [--mode dense|kpm|limit] [--object bfk|jacobian]\n"
    "                     [--layer L] [--seed X] [--draw I] [--moments] [--bins B] [--log-bins]\n"
    "                     [--out PATH]\n"
    "\n"
    "Spectrum of the backward-to-feature kernel K_l (df_l = -K_l b_l; theory/engine.md 3.2)\n"
    "or of J J^T for the end-to-end Jacobian J = A_l ... A_1 (--object jacobian), for one\n"
    "input (batch 1). theory/spectrum.md.\n"
    "  dense: draw --draw of stream --seed (as bafu mc), form K_l, all eigenvalues\n"
    "         (columns index eigenvalue), then a histogram series (x density width: bin\n"
    "         centre, density, bin width; --bins bins, geometric with --log-bins).\n"
    "  kpm:   the same draw, matrix-free (no n x n matrix beyond the weights): density by\n"
    "         the kernel polynomial method on --bins Chebyshev nodes (columns x density).\n"
    "  limit: infinite width (ResNets: --block-depth 1); columns x density, atoms in a\n"
    "         second series (x mass). MLPs and linear ResNets: free multiplicative\n"
    "         convolution layer by layer; ReLU, linear, tanh and erf: the subordination\n"
    "         equations solved at each of --bins points on the exact support (exact to\n"
    "         rounding; tanh, erf: their mask laws on a converged quadrature); gelu and\n"
    "         swish: discretised laws (first-order in --bins, and poor at depth). Nonlinear\n"
    "         ResNets (--block-depth 1): the Dyson equation over the mask algebra on\n"
    "         sampled mask paths calibrated to the exact mask statistics (--paths;\n"
    "         theory/spectrum.md 4.9): m1, m2 exact, the density to about 1e-3; slow\n"
    "         at depth (seconds per 100 points at depth 8, minutes at depth 32).\n"
    "--moments: instead, one row per layer: layer m1 m2 cos_theta (dense: from the matrix and\n"
    "the draw's own backward vector, equal to bafu mc's per-draw cos_theta; limit: m1/sqrt(m2)).\n"
    "\n"
    "Examples: bafu spectrum --width 1024 --depth 8\n"
    "          bafu spectrum --mode kpm --width 16384 --depth 3 --layer 3\n"
    "          bafu spectrum --mode limit --depth 8 --object jacobian";

static const char *const mode_names[] = {"dense", "kpm", "limit", NULL};
static const char *const object_names[] = {"bfk", "jacobian", NULL};

static int find_layer(const int *labels, size_t J, int label_set, uint64_t label, size_t *out) {
  if (!label_set) {
    *out = J - 1;
    return 1;
  }
  for (size_t j = 0; j < J; ++j)
    if (labels[j] >= 0 && (uint64_t)labels[j] == label) {
      *out = j;
      return 1;
    }
  return 0;
}

static void write_moments(FILE *f, const bafu_spec_moments *mom, size_t count) {
  fprintf(f, "layer m1 m2 cos_theta\n");
  for (size_t j = 0; j < count; ++j)
    if (mom[j].defined) fprintf(f, "%d %.12g %.12g %.12g\n", mom[j].label, mom[j].m1, mom[j].m2, mom[j].cos_theta);
}

static int all_finite(const double *v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!isfinite(v[i])) return 0;
  return 1;
}


int cmd_spectrum(int argc, char **argv) {
  const char *cmd = "spectrum";
  cli_net net;
  cli_opt opts[56];
  size_t n = 0;
  cli_net_options(&net, opts, &n, 56, NULL, CLI_NET_SAMPLING);
  int mode = 0, object = 0, moments = 0, log_bins = 0, quiet = 0, exact = 0;
  size_t w1_draws = 0;
  uint64_t seed = 1, draw = 0, layer_label = 0;
  size_t bins = 0;
  bafu_kpm_params kp = bafu_kpm_params_default();
  bafu_free_params fp = bafu_free_params_default();
  const char *out = NULL;
  const cli_opt extra[] = {
      {"--mode", OPT_CHOICE, &mode, "M", "dense | kpm | limit [dense]", mode_names, 0},
      {"--object", OPT_CHOICE, &object, "O", "bfk | jacobian [bfk]", object_names, 0},
      {"--layer", OPT_U64, &layer_label, "L", "layer label, as in bafu mc [the last layer]", NULL, 0},
      {"--seed", OPT_U64, &seed, "X", "dense/kpm: stream seed [1]", NULL, 0},
      {"--draw", OPT_U64, &draw, "I", "dense/kpm: draw number within the stream [0]", NULL, 0},
      {"--moments", OPT_FLAG, &moments, NULL, "print layer m1 m2 cos_theta for every layer instead", NULL, 0},
      {"--bins", OPT_SIZE, &bins, "B", "dense: histogram bins [50]; kpm: points [2 x moments]; limit: grid [1500]",
       NULL, 0},
      {"--log-bins", OPT_FLAG, &log_bins, NULL, "dense: geometric histogram bins (for a log x axis)", NULL, 0},
      {"--quiet", OPT_FLAG, &quiet, NULL, "no progress bar (dense, kpm: shown on a terminal for runs over 2 s)", NULL, 0},
      {"--w1-draws", OPT_SIZE, &w1_draws, "N", "dense, bfk: instead, one row draws w1_over_m1 w1_shape_over_m1: the Wasserstein-1 distance to the limit of draws 0..N-1 pooled, inputs all ones (theory/spectrum.md) [off]", NULL, 0},
      {"--exact", OPT_FLAG, &exact, NULL, "--w1-draws: 17 significant digits (they read back as the same doubles) [10]", NULL, 0},
      {"--paths", OPT_SIZE, &fp.paths, "P", "limit, nonlinear ResNets: mask paths sampled (theory/spectrum.md 4.9) [16384 for relu, 4096 otherwise]", NULL, 0},
      {"--kpm-moments", OPT_SIZE, &kp.moments, "N", "kpm: Chebyshev moments [256]", NULL, 0},
      {"--kpm-vectors", OPT_SIZE, &kp.vectors, "R", "kpm: Hutchinson probe vectors [16]", NULL, 0},
      {"--out", OPT_STRING, &out, "PATH", "output table, written atomically [stdout]", NULL, 0},
  };
  for (size_t i = 0; i < sizeof extra / sizeof extra[0]; ++i) opts[n++] = extra[i];
  opts[n] = (cli_opt){0};
  int r = cli_parse(cmd, usage, opts, argc, argv, 1, NULL, 0, NULL);
  if (r) return r == 1 ? 0 : 2;
  if ((r = cli_net_finish(cmd, &net, opts, out))) return r;
  int layer_set = 0, seed_set = 0;
  for (size_t i = 0; opts[i].name; ++i) {
    if (strcmp(opts[i].name, "--layer") == 0) layer_set = opts[i].set;
    if (strcmp(opts[i].name, "--seed") == 0 || strcmp(opts[i].name, "--draw") == 0) seed_set |= opts[i].set;
  }
  bafu_net_params *p = &net.p;
  p->step = 0;
  const bafu_spec_object obj = object ? BAFU_SPEC_JACOBIAN : BAFU_SPEC_BFK;
  int rc = 2;
  bafu_net *nw = NULL;
  bafu_spec_dense *dw = NULL;
  cli_lazy_bar sb = {.unit = "layers", .quiet = quiet};
  bafu_spec_kpm *kw = NULL;
  bafu_free *fw = NULL;
  bafu_table *t = NULL;
  double *ev = NULL, *xs = NULL, *rho = NULL, *hx = NULL;
  bafu_spec_moments *mom = NULL;
  bafu_free_layer *fl = NULL;
  bafu_status fst = BAFU_OK; /* the failed call's status: exit 2 if it refused the request */
  if (p->batch != 1) {
    cli_errorf("bafu spectrum: --batch: spectra are for one input (batch 1)\n");
    goto done;
  }
  if (p->conditional) {
    cli_errorf("bafu spectrum: --conditional: spectra need the weight matrices themselves (use it with bafu mc)\n");
    goto done;
  }
  if (mode == 2 && seed_set) {
    cli_errorf("bafu spectrum: --seed/--draw: only for --mode dense or kpm (the limit is deterministic)\n");
    goto done;
  }
  if (mode == 2 && p->signal == BAFU_SIGNAL_MSE) {
    cli_errorf("bafu spectrum: --loss: the limit uses the probe signal (drop --loss)\n");
    goto done;
  }
  bafu_layout lay;
  if (bafu_layout_build(p, &lay)) { /* checked by cli_net_finish: cannot fail here */
    cli_fail(cmd, NULL);
    goto done;
  }
  if (mode == 2 && p->block_depth > 1) {
    cli_errorf("bafu spectrum: --block-depth: the limit covers residual branches of one layer (--block-depth 1); "
                    "use --mode dense or kpm\n");
    goto done;
  }
  if (opts[n - 4].set && !(bafu_layout_has_blocks(&lay) && p->act != BAFU_ACT_LINEAR)) {
    cli_errorf("bafu spectrum: --paths: only for nonlinear ResNets (--arch resnet, --act other than linear)\n");
    goto done;
  }
  if (mode == 2 && p->init == BAFU_INIT_ORTHOGONAL) {
    cli_errorf("bafu spectrum: --init: the limit is implemented for Gaussian weights only\n");
    goto done;
  }
  if (mode != 1 && (opts[n - 3].set || opts[n - 2].set)) {
    cli_errorf("bafu spectrum: --kpm-moments/--kpm-vectors: only with --mode kpm\n");
    goto done;
  }
  if (opts[n - 4].set && (mode != 2 || fp.paths < 64 || fp.paths > 100000000)) {
    cli_errorf("bafu spectrum: --paths: %s\n", mode != 2 ? "only with --mode limit" : "must be in [64, 100000000]");
    goto done;
  }
  if (kp.moments < 4 || kp.moments > 100000) {
    cli_errorf("bafu spectrum: --kpm-moments: must be in [4, 100000]\n");
    goto done;
  }
  if (kp.vectors > 4096) {
    cli_errorf("bafu spectrum: --kpm-vectors: must be at most 4096\n");
    goto done;
  }
  if (mode == 2 && bins && (bins < 50 || bins > 1000000)) {
    cli_errorf("bafu spectrum: --bins: the limit grid must be in [50, 1000000]\n");
    goto done;
  }
  if (mode != 2 && bins > 1000000) { /* one output row per bin or point */
    cli_errorf("bafu spectrum: --bins: at most 1000000 %s\n", mode == 0 ? "histogram bins" : "kpm points");
    goto done;
  }
  if (log_bins && (mode != 0 || moments)) {
    cli_errorf("bafu spectrum: --log-bins: only for the dense histogram (--mode dense without --moments)\n");
    goto done;
  }
  if (mode == 0 && moments == 0 && bins == 0) bins = 50;
  if (mode == 1 && bins) {
    if (bins < kp.moments) {
      cli_errorf("bafu spectrum: --bins: kpm needs at least --kpm-moments (%zu) points\n", kp.moments);
      goto done;
    }
    kp.points = bins;
  }
  if (mode == 2 && bins) fp.grid = bins;
  kp.seed = seed;
  /* the BFK of a layer with nothing trained at or below it is 0: no spectrum,
     no angle (the Jacobian does not depend on the rates) */
  const int top = bafu_layout_last_label(&lay), bottom = bafu_layout_first_label(&lay);
  const int sel_label = moments || !layer_set ? top : (int)layer_label;
  const int valid = moments || !layer_set || (layer_label >= (uint64_t)bottom && layer_label <= (uint64_t)top);
  if (valid && obj == BAFU_SPEC_BFK && cli_first_trained(p) > sel_label) { /* (an invalid --layer is named below) */
    cli_errorf("bafu spectrum: --lr-input/--lr-hidden/--branch-scale: no trained parameter at or below layer %d "
                    "(K_l = 0)\n", sel_label);
    goto done;
  }
  char desc[1024];
  cli_net_describe(p, desc, sizeof desc);

  /* layers and labels */
  size_t J = mode == 2 ? bafu_moments_nlayers(p) : 0, jsel = 0;
  int *labels = NULL;
  if (mode != 2) {
    if (bafu_memory_check((double)bafu_net_memory_bytes(p), "--width/--depth: the network's weights")) {
      cli_fail(cmd, NULL);
      goto done;
    }
    const bafu_status st = bafu_net_alloc(p, &nw);
    if (st) {
      cli_fail(cmd, NULL);
      rc = cli_exit_status(st);
      goto done;
    }
    if (net.x) bafu_net_set_inputs(nw, net.x);
    J = bafu_net_nlayers(nw);
    labels = malloc(J * sizeof *labels);
    for (size_t j = 0; labels && j < J; ++j) labels[j] = bafu_net_layer_label(nw, j);
  } else {
    bafu_moments_layer *o = NULL;
    bafu_status st = bafu_memory_check((double)J * (sizeof *o + sizeof *labels), "--depth: the per-layer moments");
    if (!st) {
      o = malloc(J * sizeof *o);
      labels = malloc(J * sizeof *labels);
      st = o && labels ? bafu_moments_run(p, 0, o) : bafu_error(BAFU_ENOMEM, "out of memory");
    }
    if (st) {
      free(o);
      cli_fail(cmd, NULL);
      free(labels);
      rc = cli_exit_status(st);
      goto done;
    }
    for (size_t j = 0; j < J; ++j) labels[j] = o[j].label;
    free(o);
  }
  if (!labels) {
    cli_errorf("bafu spectrum: out of memory\n");
    goto done;
  }
  if (!find_layer(labels, J, layer_set, layer_label, &jsel)) {
    cli_errorf("bafu spectrum: --layer: no layer %llu (layers are %d..%d)\n", (unsigned long long)layer_label,
            labels[0], labels[J - 1]);
    free(labels);
    goto done;
  }
  free(labels);
  if (moments) jsel = J - 1;
  if (w1_draws) { /* the distance of the pooled finite-width spectrum to the limit */
    if (mode != 0 || obj != BAFU_SPEC_BFK || moments || net.x || draw) {
      cli_errorf("bafu spectrum: --w1-draws: only for --mode dense --object bfk, without --moments, --input, --draw\n");
      goto done;
    }
    if (bafu_table_open(out, &t)) {
      cli_fail(cmd, "--out");
      goto done;
    }
    double w1, w1s;
    if ((fst = bafu_spec_w1_limit(p, jsel, seed, w1_draws, &w1, &w1s))) {
      rc = 1;
      goto fail;
    }
    bafu_table_meta(t, "bafu spectrum --w1-draws: finite-width BFK spectrum against the infinite-width law (theory/spectrum.md)");
    bafu_table_provenance(t, argc + 1, argv - 1);
    bafu_table_meta(t, "network: %s", desc);
    bafu_table_meta(t, "layer index %zu; draws 0..%zu of stream seed %llu pooled, inputs of ones (|x|^2 = d);", jsel,
                    w1_draws - 1, (unsigned long long)seed);
    bafu_table_meta(t, "  w1_over_m1 = Wasserstein-1 distance between the empirical eigenvalue distribution and the");
    bafu_table_meta(t, "  free-convolution law (--mode limit), divided by m1; w1_shape_over_m1 = the same after");
    bafu_table_meta(t, "  rescaling each draw's eigenvalues to mean m1 (shape only)");
    fprintf(bafu_table_stream(t), "draws w1_over_m1 w1_shape_over_m1\n%zu %.*g %.*g\n", w1_draws, exact ? 17 : 10, w1,
            exact ? 17 : 10, w1s);
    rc = bafu_table_commit(t) ? 1 : 0;
    t = NULL;
    if (rc) cli_fail(cmd, "--out");
    goto done;
  }
  if (bafu_table_open(out, &t)) {
    cli_fail(cmd, "--out");
    goto done;
  }
  rc = 1;
  mom = calloc(J, sizeof *mom);
  if (!mom) goto oom;
  if (mode == 0 || mode == 1) {
    if ((fst = bafu_net_draw(nw, seed, draw)) || (fst = bafu_net_run(nw))) goto fail;
  }
  const size_t nl = mode == 2 ? p->width : bafu_net_layer_fan_out(nw, jsel);
  if (mode == 0) {
    if ((fst = bafu_spec_dense_alloc(nw, 0, &dw))) goto fail;
    bafu_spec_dense_set_progress(dw, cli_lazy_bar_fn, &sb);
    ev = malloc(nl * sizeof *ev);
    if (!ev) goto oom;
    if ((fst = bafu_spec_dense_run(dw, nw, obj, jsel, mom, ev))) goto fail;
    if (!all_finite(ev, nl)) {
      bafu_error(BAFU_ENUMERIC, "non-finite eigenvalue: overflow (reduce the learning rates, depth or sigma-w2)");
      goto fail;
    }
    /* a trained layer whose matrix is 0 in this draw: a degenerate draw (a
       dead ReLU layer, a vanished signal), which bafu mc leaves out */
    const int first = cli_first_trained(p);
    for (size_t j = moments ? 0 : jsel; j <= jsel; ++j)
      if (!mom[j].defined && mom[j].label >= first && obj == BAFU_SPEC_BFK) {
        bafu_error(BAFU_ENUMERIC, "draw %llu is degenerate at layer %d: %s (%s); try another --draw",
                   (unsigned long long)draw, mom[j].label,
                   mom[j].m1 > 0 ? "its backward vector is 0, so its angle has no value" : "its BFK is 0",
                   p->act == BAFU_ACT_RELU ? "a dead ReLU layer or a vanished signal" : "a vanished signal");
        goto fail;
      }
    for (size_t j = 0; j <= jsel; ++j)
      if (mom[j].defined && !(isfinite(mom[j].m1) && isfinite(mom[j].m2) && isfinite(mom[j].cos_theta))) {
        if (!(isfinite(mom[j].m1) && isfinite(mom[j].m2)))
          bafu_error(BAFU_ENUMERIC, "the moments of layer %d overflowed (m2 = %g): reduce the learning rates, depth "
                                    "or sigma-w2", mom[j].label, mom[j].m2);
        else
          bafu_error(BAFU_ENUMERIC, "the angle of layer %d has no value in draw %llu (its backward vector underflows: "
                                    "raise sigma-w2 or the learning rates)", mom[j].label, (unsigned long long)draw);
        goto fail;
      }
    const bafu_spec_moments *mj = &mom[jsel];
    bafu_table_meta(t, "bafu spectrum --mode dense: eigenvalues of %s at layer %d (theory/spectrum.md 2)",
                    obj == BAFU_SPEC_BFK ? "the BFK K_l" : "J J^T", mj->label);
    bafu_table_provenance(t, argc + 1, argv - 1);
    bafu_table_meta(t, "network: %s", desc);
    bafu_table_meta(t, "seed: %llu draw: %llu (the draw of bafu mc --seed %llu)", (unsigned long long)seed,
                    (unsigned long long)draw, (unsigned long long)seed);
    if (moments) {
      bafu_table_meta(t, "columns: m1 = tr(M)/n, m2 = tr(M^2)/n, cos_theta = <b,Mb>/(|b||Mb|) with the draw's b_l");
      write_moments(bafu_table_stream(t), mom, jsel + 1);
    } else {
      const double cond = ev[0] > 0 ? ev[nl - 1] / ev[0] : INFINITY;
      bafu_table_meta(t, "n: %zu m1: %.12g m2: %.12g cos_theta: %.12g (own backward vector) m1/sqrt(m2): %.12g", nl,
                      mj->m1, mj->m2, mj->cos_theta, mj->cos_spectral);
      if (isfinite(cond)) {
        bafu_table_meta(t, "lambda_min: %.12g lambda_max: %.12g condition: %.12g", ev[0], ev[nl - 1], cond);
        bafu_table_meta(t, "kantorovich: %.12g (lower bound on cos_theta for every backward vector)",
                        bafu_spec_kantorovich(ev[0], ev[nl - 1]));
      } else
        bafu_table_meta(t, "lambda_min: %.12g lambda_max: %.12g condition: infinite (lambda_min <= 0)", ev[0],
                        ev[nl - 1]);
      const size_t clamped = bafu_spec_dense_clamped(dw);
      if (clamped)
        bafu_table_meta(t, "%zu eigenvalues within rounding of 0 (down to -16 n eps lambda_max) were negative and are "
                           "set to 0 (theory/spectrum.md 2)", clamped);
      hx = malloc(3 * bins * sizeof *hx);
      if (!hx) goto oom;
      size_t zeros;
      if ((fst = bafu_spec_histogram(ev, nl, bins, log_bins, hx, hx + bins, hx + 2 * bins, &zeros))) goto fail;
      if (zeros)
        bafu_table_meta(t, "atom: x 0 mass %.12g (%zu zero eigenvalues; the geometric bins cover the others, so the "
                           "histogram integrates to 1 - mass)", (double)zeros / (double)nl, zeros);
      bafu_table_meta(t, "series 0: index eigenvalue (ascending); series 1: histogram x density width (%zu %s bins, "
                         "density per unit x, integrates to 1%s)", bins, log_bins ? "geometric" : "equal",
                      zeros ? " minus the atom at 0" : "");
      FILE *f = bafu_table_stream(t);
      fprintf(f, "index eigenvalue\n");
      for (size_t i = 0; i < nl; ++i) fprintf(f, "%zu %.15g\n", i, ev[i]);
      fprintf(f, "\n\nx density width\n");
      for (size_t b = 0; b < bins; ++b) fprintf(f, "%.12g %.12g %.12g\n", hx[b], hx[bins + b], hx[2 * bins + b]);
    }
  } else if (mode == 1) {
    if (moments) {
      cli_errorf("bafu spectrum: --moments: use --mode dense or limit\n");
      rc = 2;
      goto abort;
    }
    if ((fst = bafu_spec_kpm_alloc(nw, &kp, &kw)) || (fst = bafu_spec_kpm_prepare(kw, nw, obj, jsel))) goto fail;
    sb.unit = "products";
    bafu_spec_kpm_set_progress(kw, cli_lazy_bar_fn, &sb);
    const size_t P = kp.points ? kp.points : 2 * kp.moments;
    xs = malloc(P * sizeof *xs);
    rho = malloc(P * sizeof *rho);
    if (!xs || !rho) goto oom;
    double lo, hi, m1, m2;
    if ((fst = bafu_spec_kpm_run(kw, nw, xs, rho, &lo, &hi))) goto fail;
    if (!all_finite(rho, P)) {
      bafu_error(BAFU_ENUMERIC, "non-finite KPM density");
      goto fail;
    }
    bafu_spec_kpm_moments(kw, &m1, &m2);
    if (!(isfinite(m1) && isfinite(m2) && isfinite(lo) && isfinite(hi))) {
      bafu_error(BAFU_ENUMERIC, "the KPM estimates overflowed (m2 = %g): reduce the learning rates, depth or sigma-w2",
                 m2);
      goto fail;
    }
    bafu_table_meta(t, "bafu spectrum --mode kpm: density of %s at layer %d, kernel polynomial method "
                       "(theory/spectrum.md 3)",
                    obj == BAFU_SPEC_BFK ? "the BFK K_l" : "J J^T", bafu_net_layer_label(nw, jsel));
    bafu_table_provenance(t, argc + 1, argv - 1);
    bafu_table_meta(t, "network: %s", desc);
    bafu_table_meta(t, "seed: %llu draw: %llu; probe vectors from stream seed %llu", (unsigned long long)seed,
                    (unsigned long long)draw, (unsigned long long)seed);
    bafu_table_meta(t, "n: %zu moments: %zu probe vectors: %zu (Rademacher) Jackson damping; interval [%.10g, %.10g]",
                    nl, kp.moments, kp.vectors, lo, hi);
    bafu_table_meta(t, "stochastic estimates: m1: %.10g m2: %.10g", m1, m2);
    bafu_table_meta(t, "columns: x = eigenvalue (Chebyshev nodes), density (integrates to 1; atoms appear as "
                       "peaks of width ~ pi (hi-lo)/(2 N))");
    FILE *f = bafu_table_stream(t);
    fprintf(f, "x density\n");
    for (size_t i = 0; i < P; ++i) fprintf(f, "%.12g %.12g\n", xs[i], rho[i]);
  } else {
    fl = calloc(J, sizeof *fl);
    if (!fl) goto oom;
    fp.last_only = 1; /* only the selected layer's law is written (and every layer's m1, m2) */
    fp.moments_only = moments; /* nonlinear ResNets: m1, m2 without the density */
    if ((fst = bafu_free_alloc(&fp, &fw)) || (fst = bafu_free_run(fw, p, 0, obj, jsel, fl))) goto fail;
    bafu_free_moments(fl, jsel + 1, mom);
    const bafu_free_layer *L = &fl[jsel];
    bafu_table_meta(t, "bafu spectrum --mode limit: infinite-width law of %s at layer %d, free multiplicative "
                       "convolution (theory/spectrum.md 4)",
                    obj == BAFU_SPEC_BFK ? "the BFK K_l" : "J J^T", L->label);
    bafu_table_provenance(t, argc + 1, argv - 1);
    bafu_table_meta(t, "network: %s", desc);
    if (bafu_free_paths(fw))
      bafu_table_meta(t, "input: |x|^2 = d; Dyson equation over the mask algebra on %zu distinct of %zu sampled "
                         "mask paths, density at x + i dx/8 and x + i dx/4 extrapolated (theory/spectrum.md 4.9)",
                      bafu_free_paths(fw), bafu_free_sampled(fw));
    if (bafu_free_paths(fw)) {
      double res;
      const int c = bafu_free_calibrated(fw, &res);
      if (c > 0)
        bafu_table_meta(t, "paths: weights calibrated to the exact mask statistics (largest relative error %.2g), so the "
                           "law's m1 and m2 are the two-moment theory's", res);
      else
        bafu_table_meta(t, "paths: equal weights (%s): the law's m1 and m2 differ from the two-moment theory's by the "
                           "paths' sampling error", c < 0 ? "the calibration did not reach the exact statistics" : "not calibrated");
    }
    else if (bafu_free_exact(fw))
      bafu_table_meta(t, "input: |x|^2 = d; subordination equations solved at each of %zu points (exact to rounding, "
                         "theory/spectrum.md 4.7)", fp.grid);
    else
      bafu_table_meta(t, "input: |x|^2 = d; representation: %zu quantile atoms, %zu grid points per layer", fp.atoms,
                      fp.grid);
    if (moments) {
      bafu_table_meta(t, "columns: m1 = tr(K)/n, m2 = tr(K^2)/n of the limiting law, cos_theta = m1/sqrt(m2)");
      write_moments(bafu_table_stream(t), mom, jsel + 1);
    } else {
      bafu_table_meta(t, "m1: %.12g m2: %.12g; density integral + atoms: %.10g; support of the density [%.10g, %.10g]",
                      L->m1, L->m2, L->raw[0], L->lo, L->hi);
      if (bafu_free_exact(fw) && !(fabs(L->raw[0] - 1) <= 1e-8))
        bafu_table_meta(t, "warning: the density integral is %.3g from 1: the mask law's mass near 0 (tanh or erf with a "
                           "large sigma_w2 or biases) is not resolved there (theory/spectrum.md 4.8)", L->raw[0] - 1);
      else if (bafu_free_paths(fw) && !(fabs(L->raw[0] - 1) <= 1e-2))
        bafu_table_meta(t, "warning: the density integral is %.3g from 1: the grid does not resolve the law of the "
                           "sampled paths (try more --bins; theory/spectrum.md 4.9)", L->raw[0] - 1);
      else if (!bafu_free_exact(fw) && !bafu_free_paths(fw) && !(fabs(L->raw[0] - 1) <= 1e-3))
        bafu_table_meta(t, "warning: the density integral is %.3g from 1: the discretised laws lost that much of the law "
                           "(theory/spectrum.md 4.3, 4.8)", L->raw[0] - 1);
      double smin = L->lo, smax = L->hi;
      for (size_t a = 0; a < L->natoms; ++a) {
        bafu_table_meta(t, "atom: x %.12g mass %.12g", L->atom[a].x, L->atom[a].mass);
        smin = fmin(smin, L->atom[a].x);
        smax = fmax(smax, L->atom[a].x);
      }
      if (smin > 0)
        bafu_table_meta(t, "kantorovich: %.12g (lower bound on cos_theta for every b, from the support [%.10g, %.10g])",
                        bafu_spec_kantorovich(smin, smax), smin, smax);
      bafu_table_meta(t, "series 0: x density (continuous part); series 1: x mass (atoms)");
      FILE *f = bafu_table_stream(t);
      const double *gx = bafu_free_x(fw), *gd = bafu_free_density(fw);
      const size_t G = bafu_free_npoints(fw);
      fprintf(f, "x density\n");
      for (size_t i = 0; i < G; ++i) fprintf(f, "%.12g %.12g\n", gx[i], isfinite(gd[i]) ? gd[i] : 0.0);
      fprintf(f, "\n\nx mass\n");
      for (size_t a = 0; a < L->natoms; ++a) fprintf(f, "%.12g %.12g\n", L->atom[a].x, L->atom[a].mass);
    }
  }
  if (bafu_table_commit(t)) {
    t = NULL;
    cli_fail(cmd, "--out");
    goto done;
  }
  t = NULL;
  rc = 0;
  goto done;
oom:
  bafu_error(BAFU_ENOMEM, "out of memory");
fail:
  cli_fail(cmd, NULL);
  if (fst) rc = cli_exit_status(fst);
abort:
  if (t) bafu_table_abort(t);
  t = NULL;
done:
  free(ev), free(xs), free(rho), free(hx), free(mom), free(fl);
  bafu_spec_dense_free(dw);
  bafu_spec_kpm_free(kw);
  bafu_free_free(fw);
  bafu_net_free(nw);
  cli_net_release(&net);
  return rc;
}
