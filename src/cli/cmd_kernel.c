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
    "Usage: bafu kernel [network options] [--corr C | --input FILE] [--every K] [--per-decade N]\n"
    "                   [--method auto|direct] [--out PATH]\n"
    "\n"
    "Infinite-width kernel recursions for the networks of `bafu mc` (same options,\n"
    "layers and learning rates; theory/kernel.md): per layer the NNGP covariance\n"
    "Sigma_l, the derivative kernel Sigma'_l, the learning-rate weighted NTK Theta_l\n"
    "(the backward-to-feature kernel per coordinate, in the units of bafu mc) and\n"
    "the backward factor P_l.\n"
    "\n"
    "Two-input mode (default): two inputs with |x|^2/d = 1 and x_a.x_b/d = C; the\n"
    "correlation is carried as an angle for relu, so depth 10^7 is fine; the rows\n"
    "are streamed (memory grows like sqrt(depth)). Thin them with --every and\n"
    "--per-decade. tanh, gelu and swish read their Gaussian expectations from a\n"
    "table built once for the variances a long run visits (theory/kernel.md 10;\n"
    "--method direct: a quadrature at every layer, as before the table).\n"
    "Batch mode (--input FILE, one sample per row): every pair a <= b of samples.\n"
    "\n"
    "Examples: bafu kernel --depth 10000000 --per-decade 10 --corr 0.5\n"
    "          bafu kernel --act tanh --sigma-w2 1 --depth 1000000 --every 1000\n"
    "          bafu kernel --input batch.txt --depth 20 --out kernel.dat";

/* Which layers are printed: the first, the last, labels divisible by every
 * (0: none) and the labels round(10^(i/per_decade)), i = 0, 1, ... (0: none).
 * The labels are asked for in increasing order; next is the next log-spaced
 * one (of index i). */
typedef struct {
  size_t every, per_decade, J;
  size_t next, i;
} row_filter;

static int want_layer(row_filter *f, size_t j, int label) {
  if (f->per_decade && label > 0)
    while (f->next < (size_t)label) f->next = (size_t)nearbyint(pow(10, (double)++f->i / (double)f->per_decade));
  if (j == 0 || j + 1 == f->J) return 1;
  if (label < 0) return 0;
  return (f->every && (size_t)label % f->every == 0) || (f->per_decade && f->next == (size_t)label);
}

/* What the header needs: written when the first row is (two-input mode), so
 * that a recursion that fails leaves neither output nor file. */
typedef struct {
  const char *out;
  int argc;
  char **argv;
  const bafu_net_params *p;
  row_filter rows;
  double corr;
  const char *method;
} header_info;

static bafu_status open_table(const header_info *h, bafu_table **t) {
  bafu_status st = bafu_table_open(h->out, t);
  if (st) return st;
  const bafu_net_params *p = h->p;
  char desc[1024];
  cli_net_describe(p, desc, sizeof desc);
  bafu_table_meta(*t, "bafu kernel: infinite-width NNGP / NTK / backward-factor recursions (theory/kernel.md)");
  bafu_table_provenance(*t, h->argc + 1, h->argv - 1);
  bafu_table_meta(*t, "network: %s", desc);
  bafu_layout lay;
  if (h->rows.per_decade)
    bafu_table_meta(*t, "layers: %zu; printed: labels divisible by %zu, the labels round(10^(i/%zu)), the first and the "
                        "last", h->rows.J, h->rows.every, h->rows.per_decade);
  else
    bafu_table_meta(*t, "layers: %zu; printed: labels divisible by %zu, plus the first and the last", h->rows.J,
                    h->rows.every);
  bafu_table_meta(*t, "units: Theta is the BFK per coordinate in the units of bafu mc (tr(K_l)/n for one input);");
  bafu_table_meta(*t, "  sigma_prime = s E[phi'(u)phi'(v)] of the activation the layer reads (0 for the layer reading x);");
  bafu_table_meta(*t, "  own = the layer's own term lr_l s_l^2 E[g^T g]; bwd = P_l, with E<b_l(a),b_l(b)> = P_l(a,b) "
                      "E<b_top(a),b_top(b)>");
  bafu_table_meta(*t, "  (probe: E D_l = sum_a ntk(a,a) bwd(a,a), E C_l = sum_a own(a,a) bwd(a,a), "
                      "E|b_l|^2 = sum_a bwd(a,a)).");
  if (h->method)
    bafu_table_meta(*t, "expectations: %s", h->method);
  if (p->block_depth > 1)
    bafu_table_meta(*t, "branches of %zu layers (theory/kernel.md 2.7): a block's sigma_prime is the product of its %zu "
                        "layers' derivative kernels, its own term the sum of their own terms, each carried through the "
                        "later layers of the branch", p->block_depth, p->block_depth);
  if (bafu_layout_build(p, &lay) == BAFU_OK && lay.stage[0].kind == BAFU_STAGE_BLOCK)
    bafu_table_meta(*t, "assumption: no embedding, so the coordinates of x enter the blocks directly; they are treated "
                        "as Gaussian with covariance X^T X/d (exact for N(0,I) inputs)");
  return BAFU_OK;
}

typedef struct {
  const header_info *h;
  row_filter rows;
  bafu_table *t;
  FILE *f;
  int open_failed;
  int bad; /* a non-finite value was met (never printed) */
  int bad_label;
} pair_ctx;

static int write_pair(const bafu_kernel_pair *l, void *vctx) {
  pair_ctx *c = vctx;
  if (!c->t) { /* the first row: the library has checked the whole recursion */
    if (open_table(c->h, &c->t)) {
      c->t = NULL;
      c->open_failed = 1;
      return 1;
    }
    c->f = bafu_table_stream(c->t);
    bafu_table_meta(c->t, "mode: two inputs, |x_a|^2/d = |x_b|^2/d = 1, x_a.x_b/d = corr = %.17g", c->h->corr);
    bafu_table_meta(c->t, "columns: q = Sigma_l(a,a); corr = Sigma_l(a,b)/q; ntk = Theta_l(a,b);");
    bafu_table_meta(c->t, "  one_minus_corr = 1 - corr and angle = acos(corr), accurate to full relative precision for "
                          "relu, linear, erf;");
    bafu_table_meta(c->t, "  ntk_diag = Theta_l(a,a); ntk_corr = ntk/ntk_diag (0 if ntk_diag = 0); sigma_prime_diag, "
                          "sigma_prime = Sigma'_l(a,a), (a,b);");
    bafu_table_meta(c->t, "  own_diag, own = Gamma_l(a,a), (a,b); bwd_diag, bwd = P_l(a,a), (a,b)");
    fprintf(c->f, "layer q corr ntk one_minus_corr angle ntk_diag ntk_corr sigma_prime_diag sigma_prime own_diag own "
                  "bwd_diag bwd\n");
  }
  if (!want_layer(&c->rows, l->index, l->label)) return 0;
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

int cmd_kernel(int argc, char **argv) {
  const char *cmd = "kernel";
  cli_net net;
  cli_opt opts[48];
  size_t n = 0;
  cli_net_options(&net, opts, &n, 48, NULL, CLI_NET_SAMPLING);
  double corr = 0.5;
  size_t every = 1, per_decade = 0;
  int quiet = 0, method = 0;
  const char *out = NULL;
  static const char *const method_names[] = {"auto", "direct", NULL};
  const cli_opt extra[] = {
      {"--corr", OPT_DOUBLE, &corr, "C", "two-input mode: x_a.x_b/d = C, -1 <= C <= 1 [0.5]", NULL, 0},
      {"--every", OPT_SIZE, &every, "K",
       "print layers whose label is a multiple of K, and the first and last [1; none with --per-decade]", NULL, 0},
      {"--per-decade", OPT_SIZE, &per_decade, "N",
       "print the layers round(10^(i/N)), i = 0, 1, ...: N per decade of depth (with --every: both) [none]", NULL, 0},
      {"--method", OPT_CHOICE, &method, "auto|direct",
       "tanh, gelu, swish: expectations from a table built once (auto) or a quadrature per layer (direct) [auto]",
       method_names, 0},
      {"--out", OPT_STRING, &out, "PATH", "output table, written atomically [stdout]", NULL, 0},
      {"--quiet", OPT_FLAG, &quiet, NULL, "no progress bar (shown on a terminal for runs over 2 s)", NULL, 0},
  };
  for (size_t i = 0; i < sizeof extra / sizeof extra[0]; ++i) opts[n++] = extra[i];
  opts[n] = (cli_opt){0};
  int r = cli_parse(cmd, usage, opts, argc, argv, 1, NULL, 0, NULL);
  if (r) return r == 1 ? 0 : 2;
  const cli_opt *corr_opt = NULL, *batch_opt = NULL, *every_opt = NULL;
  for (size_t i = 0; i < n; ++i) {
    if (strcmp(opts[i].name, "--batch") == 0) batch_opt = &opts[i];
    if (strcmp(opts[i].name, "--corr") == 0) corr_opt = &opts[i];
    if (strcmp(opts[i].name, "--every") == 0) every_opt = &opts[i];
  }
  if (per_decade && !every_opt->set) every = 0; /* --per-decade alone: only the log-spaced layers */
  /* two-input mode: the batch is the pair; check before reading --input */
  if (!net.input_file && batch_opt && batch_opt->set) {
    cli_errorf("bafu kernel: --batch: the two-input mode uses exactly two inputs (give a batch with --input)\n");
    return 2;
  }
  if (net.input_file && corr_opt && corr_opt->set) {
    cli_errorf("bafu kernel: --corr: only in the two-input mode (not with --input)\n");
    return 2;
  }
  if (!(corr >= -1 && corr <= 1)) {
    cli_errorf("bafu kernel: --corr: must be in [-1, 1], got %g\n", corr);
    return 2;
  }
  if ((r = cli_net_finish(cmd, &net, opts, out))) return r;
  bafu_net_params *p = &net.p;
  if ((r = cli_net_refuse_sampling(cmd, &net))) return r;
  int rc = 2;
  bafu_kernel *k = NULL;
  bafu_table *t = NULL;
  const size_t J = bafu_kernel_count_layers(p);
  const bafu_kernel_method meth = method ? BAFU_KERNEL_DIRECT : BAFU_KERNEL_AUTO;
  const int tabulated = p->act == BAFU_ACT_TANH || p->act == BAFU_ACT_GELU || p->act == BAFU_ACT_SWISH;
  const header_info h = {out, argc, argv, p, {every, per_decade, J, 1, 0}, corr,
                         tabulated && meth == BAFU_KERNEL_DIRECT ? "--method direct: a quadrature at every layer" : NULL};
  cli_lazy_bar kb = {.unit = "layers", .quiet = quiet};
  if (net.x) { /* batch: compute everything before opening the output */
    bafu_status st;
    if (!(st = bafu_kernel_alloc(p, &k))) {
      bafu_kernel_set_progress(k, cli_lazy_bar_fn, &kb);
      st = bafu_kernel_set_method(k, meth);
    }
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
            cli_errorf("bafu kernel: --depth/--sigma-w2: non-finite kernel value at layer %d\n",
                    bafu_kernel_label(k, j));
            rc = 1;
            goto done;
          }
    }
    if (open_table(&h, &t)) {
      cli_fail(cmd, "--out");
      t = NULL;
      goto done;
    }
    FILE *f = bafu_table_stream(t);
    bafu_table_meta(t, "mode: batch of %zu inputs from %s (input_dim %zu)", m, net.input_file, p->input_dim);
    bafu_table_meta(t, "columns: a, b = sample indices (1-based rows of the input file), a <= b; sigma = Sigma_l(a,b);");
    bafu_table_meta(t, "  sigma_prime = Sigma'_l(a,b); ntk = Theta_l(a,b); bwd = P_l(a,b); own = Gamma_l(a,b)");
    fprintf(f, "layer a b sigma sigma_prime ntk bwd own\n");
    row_filter rows = h.rows;
    for (size_t j = 0; j < J; ++j) {
      const int label = bafu_kernel_label(k, j);
      if (!want_layer(&rows, j, label)) continue;
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
    /* two inputs: the library computes and checks the whole recursion before its first callback,
       which opens the output, so a failed recursion leaves neither output nor file */
    pair_ctx c = {&h, h.rows, NULL, NULL, 0, 0, 0};
    bafu_status st = bafu_kernel_two_inputs_method(p, corr, meth, write_pair, &c, cli_lazy_bar_fn, &kb);
    t = c.t;
    if (c.open_failed) {
      cli_fail(cmd, "--out");
      goto done;
    }
    if (st || c.bad) {
      if (c.bad)
        cli_errorf("bafu kernel: --depth/--sigma-w2: non-finite kernel value at layer %d\n", c.bad_label);
      else
        cli_fail(cmd, NULL);
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
