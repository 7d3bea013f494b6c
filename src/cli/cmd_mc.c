/* cmd_mc.c: `bafu mc`, finite-width Monte Carlo of the per-layer measurements. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bafu/mc.h"
#include "bafu/moments.h"
#include <stdlib.h>
#include "bafu/table.h"
#include "cli.h"
#include "progress.h"

static const char usage[] =
    "Usage: bafu mc [options]\n"
    "\n"
    "Monte Carlo over independent finite-width networks: forward, backward and\n"
    "tangent passes and one actual gradient step per draw; per layer, the mean and\n"
    "standard error over draws of the backward-feature angle cos(theta_l), the\n"
    "feature speed |df_l|, |b_l|, the loss decay D_l, BAFU_l = D_l/|b_l|, the\n"
    "residual of the identity <-b_l, df_l> = D_l, and the actual step's change.\n"
    "Quantities are defined in theory/engine.md.\n"
    "\n"
    "Example: bafu mc --width 1024 --depth 20 --seeds 16 --out relu.dat";

/* Columns: the quantity, then its standard error; identity_residual is the
 * maximum over draws (a check, not an estimate). */
static const bafu_quantity columns[] = {BAFU_Q_COS,     BAFU_Q_SPEED,    BAFU_Q_BNORM,   BAFU_Q_DECAY,
                                        BAFU_Q_BAFU,    BAFU_Q_CONTRIB,  BAFU_Q_FRMS,    BAFU_Q_SPEED_RMS,
                                        BAFU_Q_STEP,    BAFU_Q_STEP_COS, BAFU_Q_STEP_DEV, BAFU_Q_SENS};

/* The library's progress callback drives the CLI bar. */
static void show_bar(size_t done, size_t total, void *ctx) {
  (void)total;
  cli_bar_update(ctx, done, NULL);
}

int cmd_mc(int argc, char **argv) {
  const char *cmd = "mc";
  cli_net net;
  cli_opt opts[48];
  size_t n = 0;
  cli_net_options(&net, opts, &n, 48, NULL, CLI_NET_SAMPLING);
  size_t seeds = 8;
  uint64_t seed = 1;
  int threads = 1, quiet = 0, exact = 0, vs_theory = 0;
  const char *out = NULL;
  const cli_opt extra[] = {
      cli_param_option("step", &net.p),
      {"--seeds", OPT_SIZE, &seeds, "S", "independent draws, at least 2 [8]", NULL, 0},
      {"--seed", OPT_U64, &seed, "X", "stream seed; same seed, same output [1]", NULL, 0},
      {"--threads", OPT_INT, &threads, "T", "draws run in parallel (output does not depend on T) [1]", NULL, 0},
      {"--out", OPT_STRING, &out, "PATH", "output table, written atomically [stdout]", NULL, 0},
      {"--vs-theory", OPT_FLAG, &vs_theory, NULL, "also the deviation of each draw's cos_theta from bafu theory's: columns cos_theta_theory rms_dev rms_dev_se bias bias_se (theory/engine.md 3.6)", NULL, 0},
      {"--exact", OPT_FLAG, &exact, NULL, "numbers with 17 significant digits: they read back as the same doubles (bafu figures reformats them) [means 10, errors 4]", NULL, 0},
      {"--quiet", OPT_FLAG, &quiet, NULL, "no progress bar (shown on a terminal for runs over 2 s)", NULL, 0},
  };
  for (size_t i = 0; i < sizeof extra / sizeof extra[0]; ++i) opts[n++] = extra[i];
  opts[n] = (cli_opt){0};
  int r = cli_parse(cmd, usage, opts, argc, argv, 1, NULL, 0, NULL);
  if (r) return r == 1 ? 0 : 2;
  if ((r = cli_net_finish(cmd, &net, opts, out))) return r;
  if (seeds < 2) {
    cli_errorf("bafu mc: --seeds: need at least 2 draws for a standard error\n");
    cli_net_release(&net);
    return 2;
  }

  /* Open the output first so an unwritable path fails before the work; the
   * table is only renamed into place once complete. */
  bafu_table *t;
  if (bafu_table_open(out, &t)) {
    cli_fail(cmd, "--out");
    cli_net_release(&net);
    return 2;
  }
  bafu_mc_result res;
  cli_bar b;
  cli_bar_start(&b, seeds, 0, "draws", quiet);
  bafu_status st = bafu_mc_run_progress(&net.p, seeds, seed, net.x, threads, b.enabled ? show_bar : NULL, &b, &res);
  if (st) {
    bafu_table_abort(t);
    cli_fail(cmd, NULL);
    cli_net_release(&net);
    return cli_exit_status(st);
  }
  /* Layers with no trained parameter at or below them (D_l = 0 in every draw,
   * e.g. --lr-input 0) have no defined angle: they are left out, and any other
   * non-finite value is an error rather than a NaN in the table. */
  size_t first = 0;
  while (first < res.J && res.max[first * BAFU_Q_COUNT + BAFU_Q_DECAY] == 0) ++first;
  if (first == res.J) {
    cli_errorf("bafu mc: --lr-input/--lr-hidden/--branch-scale: no layer has a trained parameter\n");
    bafu_table_abort(t);
    bafu_mc_result_free(&res);
    cli_net_release(&net);
    return 2;
  }
  for (size_t j = first; j < res.J; ++j)
    for (size_t c = 0; c < BAFU_Q_COUNT; ++c)
      if (!isfinite(res.mean[j * BAFU_Q_COUNT + c]) || !isfinite(res.se[j * BAFU_Q_COUNT + c])) {
        cli_errorf("bafu mc: %s is not finite at layer %d\n", bafu_quantity_name((bafu_quantity)c),
                res.labels[j]);
        bafu_table_abort(t);
        bafu_mc_result_free(&res);
        cli_net_release(&net);
        return 1;
      }
  /* --vs-theory: the theory's angle of every layer, matched by label */
  bafu_moments_layer *th = NULL;
  if (vs_theory) {
    const size_t J = bafu_moments_nlayers(&net.p);
    th = J == res.J ? malloc(J * sizeof *th) : NULL;
    bafu_status ts = !th ? bafu_error(J == res.J ? BAFU_ENOMEM : BAFU_EINVAL, "--vs-theory: the theory has other layers")
                         : bafu_moments_run(&net.p, bafu_moments_input_x2(net.x, net.p.input_dim), th);
    for (size_t j = 0; !ts && j < J; ++j)
      if (th[j].label != res.labels[j]) ts = bafu_error(BAFU_EINVAL, "--vs-theory: the theory has other layers");
    if (ts) {
      cli_fail(cmd, NULL);
      free(th);
      bafu_table_abort(t);
      bafu_mc_result_free(&res);
      cli_net_release(&net);
      return cli_exit_status(ts);
    }
  }
  char desc[1024];
  cli_net_describe(&net.p, desc, sizeof desc);
  bafu_table_meta(t, "bafu mc: finite-width Monte Carlo, per-layer measurements (theory/engine.md)");
  bafu_table_provenance(t, argc + 1, argv - 1);
  bafu_table_meta(t, "seed: %llu  seeds: %zu  threads: %d  step: %g", (unsigned long long)seed, seeds,
                  threads, net.p.step);
  bafu_table_meta(t, "network: %s", desc);
  if (net.input_file) bafu_table_meta(t, "inputs: %s", net.input_file);
  bafu_table_meta(t, "columns: mean over draws; <name>_se is the standard error of the mean (sd/sqrt(seeds));");
  bafu_table_meta(t, "  identity_residual is the maximum over draws of |<-b_l,df_l> - D_l| / D_l;");
  bafu_table_meta(t, "  sensitivity = |df_l|_rms / D_top: feature speed per unit first-order loss decrease of the step.");
  if (vs_theory) {
    bafu_table_meta(t, "--vs-theory: cos_theta_theory = bafu theory's; rms_dev = sqrt(mean over draws (cos_draw - cos_theory)^2)");
    bafu_table_meta(t, "  with its standard error (delta method); bias = cos_theta - cos_theta_theory, bias_se = cos_theta_se");
  }
  if (first > 0)
    bafu_table_meta(t, "layers up to %d are left out: no trained parameter at or below them (D_l = 0, angle undefined)",
                    res.labels[first - 1]);
  if (res.excluded)
    bafu_table_meta(t, "degenerate draws: %s; means and standard errors are over the other %zu (theory/engine.md 3.5)",
                    res.note, res.seeds);
  FILE *f = bafu_table_stream(t);
  fprintf(f, "layer");
  for (size_t c = 0; c < sizeof columns / sizeof columns[0]; ++c) {
    const char *name = bafu_quantity_name(columns[c]);
    fprintf(f, " %s %s_se", name, name);
    if (columns[c] == BAFU_Q_BAFU) fprintf(f, " identity_residual");
  }
  if (vs_theory) fprintf(f, " cos_theta_theory rms_dev rms_dev_se bias bias_se");
  fputc('\n', f);
  for (size_t j = first; j < res.J; ++j) {
    fprintf(f, "%d", res.labels[j]);
    for (size_t c = 0; c < sizeof columns / sizeof columns[0]; ++c) {
      const size_t k = j * BAFU_Q_COUNT + columns[c];
      fprintf(f, " %.*g %.*g", exact ? 17 : 10, res.mean[k], exact ? 17 : 4, res.se[k]);
      if (columns[c] == BAFU_Q_BAFU) fprintf(f, " %.*g", exact ? 17 : 3, res.max[j * BAFU_Q_COUNT + BAFU_Q_IDRES]);
    }
    if (vs_theory) {
      double rms, rms_se;
      bafu_mc_deviation(&res, j, BAFU_Q_COS, th[j].cos_theta, &rms, &rms_se);
      const size_t k = j * BAFU_Q_COUNT + BAFU_Q_COS;
      if (!(rms > 0)) rms_se = 0; /* every draw on the theory (layer 1): no deviation, none to estimate */
      fprintf(f, " %.*g %.*g %.*g %.*g %.*g", exact ? 17 : 10, th[j].cos_theta, exact ? 17 : 6, rms, exact ? 17 : 3,
              rms_se, exact ? 17 : 6, res.mean[k] - th[j].cos_theta, exact ? 17 : 3, res.se[k]);
    }
    fputc('\n', f);
  }
  free(th);
  bafu_mc_result_free(&res);
  cli_net_release(&net);
  if (bafu_table_commit(t)) {
    cli_fail(cmd, "--out");
    return 1;
  }
  return 0;
}
