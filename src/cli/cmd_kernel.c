/* cmd_kernel.c: `bafu kernel`, the infinite-width kernel recursions (NNGP,
 * derivative kernel, learning-rate weighted NTK / BFK, backward factor) for
 * two inputs at a given correlation or for a batch read from a file. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bafu/kernel.h"
#include "bafu/layout.h"
#include "bafu/table.h"
#include "cli.h"
#include "progress.h"

static const char usage[] =
    "Usage: bafu kernel [network options] [--corr C | --input FILE] [--every K] [--out PATH]\n"
    "\n"
    "Infinite-width kernel recursions for the networks of `bafu mc` (same options,\n"
    "layers and learning rates; theory/kernel.md): per layer the NNGP covariance\n"
    "Sigma_l, the derivative kernel Sigma'_l, the learning-rate weighted NTK Theta_l\n"
    "(the backward-to-feature kernel per coordinate, in the units of bafu mc) and\n"
    "the backward factor P_l.\n"
    "\n"
    "Two-input mode (default): two inputs with |x|^2/d = 1 and x_a.x_b/d = C; the\n"
    "correlation is carried as an angle for relu, so depth 10^6 is fine.\n"
    "Batch mode (--input FILE, one sample per row): every pair a <= b of samples.\n"
    "\n"
    "Examples: bafu kernel --depth 1000000 --every 1000 --corr 0.5\n"
    "          bafu kernel --input batch.txt --depth 20 --out kernel.dat";

typedef struct {
  FILE *f;
  size_t every, J;
  int bad; /* a non-finite value was met (never printed) */
  int bad_label;
} pair_ctx;

static int want_layer(size_t j, int label, size_t every, size_t J) {
  return j == 0 || j + 1 == J || (label >= 0 && (size_t)label % every == 0);
}

static int write_pair(const bafu_kernel_pair *l, void *vctx) {
  pair_ctx *c = vctx;
  if (!want_layer(l->index, l->label, c->every, c->J)) return 0;
  const double v[] = {l->q,           l->corr,        l->ntk,  l->one_minus_corr, l->angle,
                      l->ntk_diag,    l->ntk_corr,       l->sprime_diag,  l->sprime,
                      l->own_diag,    l->own,         l->bwd_diag,     l->bwd};
  const size_t nv = sizeof v / sizeof v[0];
  for (size_t i = 0; i < nv; ++i)
    if (!isfinite(v[i])) {
      c->bad = 1;
      c->bad_label = l->label;
      return 1;
    }
  fprintf(c->f, "%d", l->label);
  for (size_t i = 0; i < nv; ++i) fprintf(c->f, " %.15g", v[i]);
  fputc('\n', c->f);
  return 0;
}

static int stop_at_once(const bafu_kernel_pair *l, void *ctx) {
  (void)l;
  (void)ctx;
  return 1;
}


int cmd_kernel(int argc, char **argv) {
  const char *cmd = "kernel";
  cli_net net;
  cli_opt opts[48];
  size_t n = 0;
  cli_net_options(&net, opts, &n, 48, NULL, CLI_NET_SAMPLING);
  double corr = 0.5;
  size_t every = 1;
  int quiet = 0;
  const char *out = NULL;
  const cli_opt extra[] = {
      {"--corr", OPT_DOUBLE, &corr, "C", "two-input mode: x_a.x_b/d = C, -1 <= C <= 1 [0.5]", NULL, 0},
      {"--every", OPT_SIZE, &every, "K", "print layers whose label is a multiple of K, and the first and last [1]",
       NULL, 0},
      {"--out", OPT_STRING, &out, "PATH", "output table, written atomically [stdout]", NULL, 0},
      {"--quiet", OPT_FLAG, &quiet, NULL, "no progress bar (shown on a terminal for runs over 2 s)", NULL, 0},
  };
  for (size_t i = 0; i < sizeof extra / sizeof extra[0]; ++i) opts[n++] = extra[i];
  opts[n] = (cli_opt){0};
  int r = cli_parse(cmd, usage, opts, argc, argv, 1, NULL, 0, NULL);
  if (r) return r == 1 ? 0 : 2;
  const cli_opt *corr_opt = NULL, *batch_opt = NULL;
  for (size_t i = 0; i < n; ++i) {
    if (strcmp(opts[i].name, "--batch") == 0) batch_opt = &opts[i];
    if (strcmp(opts[i].name, "--corr") == 0) corr_opt = &opts[i];
  }
  /* two-input mode: the batch is the pair; check before reading --input */
  if (!net.input_file && batch_opt && batch_opt->set) {
    fprintf(stderr, "bafu kernel: --batch: the two-input mode uses exactly two inputs (give a batch with --input)\n");
    return 2;
  }
  if (net.input_file && corr_opt && corr_opt->set) {
    fprintf(stderr, "bafu kernel: --corr: only in the two-input mode (not with --input)\n");
    return 2;
  }
  if (!(corr >= -1 && corr <= 1)) {
    fprintf(stderr, "bafu kernel: --corr: must be in [-1, 1], got %g\n", corr);
    return 2;
  }
  if ((r = cli_net_finish(cmd, &net, opts, out))) return r;
  bafu_net_params *p = &net.p;
  if ((r = cli_net_refuse_sampling(cmd, &net))) return r;
  int rc = 2;
  bafu_kernel *k = NULL;
  bafu_table *t = NULL;
  const size_t J = bafu_kernel_count_layers(p);
  cli_lazy_bar kb = {.unit = "layers", .quiet = quiet};
  if (net.x) { /* batch: compute everything before opening the output */
    bafu_status st;
    if (!(st = bafu_kernel_alloc(p, &k))) bafu_kernel_set_progress(k, cli_lazy_bar_fn, &kb);
    if (st || (st = bafu_kernel_run(k, net.x))) {
      cli_fail(cmd, NULL);
      rc = cli_exit_status(st);
      goto done;
    }
    const size_t m = bafu_kernel_batch(k);
    for (size_t j = 0; j < J; ++j) {
      const double *M[] = {bafu_kernel_sigma(k, j), bafu_kernel_sprime(k, j), bafu_kernel_theta(k, j),
                           bafu_kernel_bwd(k, j), bafu_kernel_own(k, j)};
      for (size_t q = 0; q < 5; ++q)
        for (size_t i = 0; i < m * m; ++i)
          if (!isfinite(M[q][i])) {
            fprintf(stderr, "bafu kernel: --depth/--sigma-w2: non-finite kernel value at layer %d\n",
                    bafu_kernel_label(k, j));
            rc = 1;
            goto done;
          }
    }
  } else {
    /* two inputs: the library computes and checks the whole recursion before
     * its first callback, so a run stopped at once validates without output */
    kb.total_override = 3 * J; /* this checked pass, then the two of the run */
    bafu_status st = bafu_kernel_two_inputs_progress(p, corr, stop_at_once, NULL, cli_lazy_bar_fn, &kb);
    if (st) {
      cli_fail(cmd, NULL);
      rc = cli_exit_status(st);
      goto done;
    }
  }
  if (bafu_table_open(out, &t)) {
    cli_fail(cmd, "--out");
    t = NULL;
    goto done;
  }
  char desc[1024];
  cli_net_describe(p, desc, sizeof desc);
  bafu_table_meta(t, "bafu kernel: infinite-width NNGP / NTK / backward-factor recursions (theory/kernel.md)");
  bafu_table_provenance(t, argc + 1, argv - 1);
  bafu_table_meta(t, "network: %s", desc);
  bafu_layout lay;
  bafu_table_meta(t, "layers: %zu; printed: labels divisible by %zu, plus the first and the last", J, every);
  bafu_table_meta(t, "units: Theta is the BFK per coordinate in the units of bafu mc (tr(K_l)/n for one input);");
  bafu_table_meta(t, "  sigma_prime = s E[phi'(u)phi'(v)] of the activation the layer reads (0 for the layer reading x);");
  bafu_table_meta(t, "  own = the layer's own term lr_l s_l^2 E[g^T g]; bwd = P_l, with E<b_l(a),b_l(b)> = P_l(a,b) "
                     "E<b_top(a),b_top(b)>");
  bafu_table_meta(t, "  (probe: E D_l = sum_a ntk(a,a) bwd(a,a), E C_l = sum_a own(a,a) bwd(a,a), "
                     "E|b_l|^2 = sum_a bwd(a,a)).");
  if (p->block_depth > 1)
    bafu_table_meta(t, "branches of %zu layers (theory/kernel.md 2.7): a block's sigma_prime is the product of its %zu "
                       "layers' derivative kernels, its own term the sum of their own terms, each carried through the "
                       "later layers of the branch", p->block_depth, p->block_depth);
  if (bafu_layout_build(p, &lay) == BAFU_OK && lay.stage[0].kind == BAFU_STAGE_BLOCK)
    bafu_table_meta(t, "assumption: no embedding, so the coordinates of x enter the blocks directly; they are treated "
                       "as Gaussian with covariance X^T X/d (exact for N(0,I) inputs)");
  FILE *f = bafu_table_stream(t);
  if (net.x) {
    const size_t m = bafu_kernel_batch(k);
    bafu_table_meta(t, "mode: batch of %zu inputs from %s (input_dim %zu)", m, net.input_file, p->input_dim);
    bafu_table_meta(t, "columns: a, b = sample indices (1-based rows of the input file), a <= b; sigma = Sigma_l(a,b);");
    bafu_table_meta(t, "  sigma_prime = Sigma'_l(a,b); ntk = Theta_l(a,b); bwd = P_l(a,b); own = Gamma_l(a,b)");
    fprintf(f, "layer a b sigma sigma_prime ntk bwd own\n");
    for (size_t j = 0; j < J; ++j) {
      const int label = bafu_kernel_label(k, j);
      if (!want_layer(j, label, every, J)) continue;
      const double *S = bafu_kernel_sigma(k, j), *Sp = bafu_kernel_sprime(k, j), *T = bafu_kernel_theta(k, j),
                   *P = bafu_kernel_bwd(k, j), *G = bafu_kernel_own(k, j);
      for (size_t b = 0; b < m; ++b)
        for (size_t a = 0; a <= b; ++a) {
          const size_t i = a + b * m;
          fprintf(f, "%d %zu %zu %.15g %.15g %.15g %.15g %.15g\n", label, a + 1, b + 1, S[i], Sp[i], T[i], P[i],
                  G[i]);
        }
    }
  } else {
    bafu_table_meta(t, "mode: two inputs, |x_a|^2/d = |x_b|^2/d = 1, x_a.x_b/d = corr = %.17g", corr);
    bafu_table_meta(t, "columns: q = Sigma_l(a,a); corr = Sigma_l(a,b)/q; ntk = Theta_l(a,b);");
    bafu_table_meta(t, "  one_minus_corr = 1 - corr and angle = acos(corr), accurate to full relative precision for "
                       "relu, linear, erf;");
    bafu_table_meta(t, "  ntk_diag = Theta_l(a,a); ntk_corr = ntk/ntk_diag (0 if ntk_diag = 0); sigma_prime_diag, "
                       "sigma_prime = Sigma'_l(a,a), (a,b);");
    bafu_table_meta(t, "  own_diag, own = Gamma_l(a,a), (a,b); bwd_diag, bwd = P_l(a,a), (a,b)");
    fprintf(f, "layer q corr ntk one_minus_corr angle ntk_diag ntk_corr sigma_prime_diag sigma_prime own_diag own "
               "bwd_diag bwd\n");
    pair_ctx c = {f, every, J, 0, 0};
    kb.offset = J;
    bafu_status st = bafu_kernel_two_inputs_progress(p, corr, write_pair, &c, cli_lazy_bar_fn, &kb);
    if (st || c.bad) {
      if (c.bad)
        fprintf(stderr, "bafu kernel: --depth/--sigma-w2: non-finite kernel value at layer %d\n", c.bad_label);
      else
        cli_fail(cmd, NULL);
      bafu_table_abort(t);
      t = NULL;
      rc = cli_exit_status(st ? st : BAFU_ENUMERIC);
      goto done;
    }
  }
  bafu_status cs = bafu_table_commit(t);
  t = NULL;
  if (cs) {
    cli_fail(cmd, "--out");
    rc = 1;
    goto done;
  }
  rc = 0;
done:
  if (t) bafu_table_abort(t);
  bafu_kernel_free(k);
  cli_net_release(&net);
  return rc;
}
