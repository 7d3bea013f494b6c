/* cmd_reduce.c: `bafu reduce OP FILE`, a table reduced by groups of rows
 * (bafu/reduce.h): a least-squares line, the position of a minimum or
 * maximum, a mean with its standard error. */
#include <stdio.h>
#include <string.h>

#include "bafu/reduce.h"
#include "bafu/table.h"
#include "bafu/tabread.h"
#include "cli.h"

static const char usage[] =
    "Usage: bafu reduce fit|argmin|argmax|mean FILE --y COL [--x COL] [options]\n"
    "\n"
    "Reduce the bafu table FILE (any command's, any number of series; rows with\n"
    "--where only) by groups of rows: the rows of each series with equal values of\n"
    "the --by and --series columns (compared as text) form a group, in order of\n"
    "first appearance; each group gives one row of the output, a bafu table with\n"
    "the key columns first:\n"
    "  fit     least-squares line y = intercept + slope x (--log-x, --log-y, --loglog:\n"
    "          natural logs); columns n intercept intercept_se slope slope_se; the\n"
    "          standard errors from the residuals (3 rows at least), or with --se COL\n"
    "          a weighted fit (weights 1/se^2, errors from them); --fitted: one row per\n"
    "          input row instead, X fit slope slope_se (fit in y's units).\n"
    "  argmin  the X where Y is smallest (argmax: largest); columns n X_argmin Y_min\n"
    "          X_grid refined edge; --refine: the vertex of the parabola through the\n"
    "          best point and its two neighbours in x (in log x with --log-x), within\n"
    "          half a grid step of it; refined 0 when the best point is at an edge\n"
    "          (edge 1: the extremum may lie outside the grid).\n"
    "  mean    for each --y column Y (several allowed): n Y_mean Y_se, the standard\n"
    "          error s/sqrt(n) (2 rows at least), e.g. over seeds: --by all but seed.\n"
    "Output series: one per input series (--index N: only series N) and value of the\n"
    "--series columns (a '# series: ...' line names it), two blank lines apart,\n"
    "for gnuplot's `index`. A missing column, a value that is no finite number, a\n"
    "value <= 0 under a log, a group too small, no rows: one line on stderr, exit 2,\n"
    "no output. Derivations: theory/reduce.md.\n"
    "\n"
    "Examples: bafu reduce argmin sweep.dat --x lr --y loss --by preset,depth,seed --log-x --refine\n"
    "          bafu reduce mean opt.dat --y lr_argmin --by preset,depth\n"
    "          bafu reduce fit opt.dat --x depth --y lr_argmin --by preset --loglog";

static const char *const op_names[] = {"fit", "argmin", "argmax", "mean"};

int cmd_reduce(int argc, char **argv) {
  const char *cmd = "reduce";
  bafu_reduce_spec sp = {.index = -1};
  const char *out = NULL;
  int loglog = 0;
  uint64_t index = 0;
  cli_opt opts[] = {
      {"--x", OPT_STRING, &sp.x, "COL", "fit, argmin, argmax: the axis column", NULL, 0},
      {"--y", OPT_STRING, &sp.y, "COLS", "the value column (mean: one or more, comma-separated)", NULL, 0},
      {"--by", OPT_STRING, &sp.by, "COLS", "key columns: one result per group of equal values [one per series]", NULL, 0},
      {"--series", OPT_STRING, &sp.series, "COLS", "key columns that also start a new output series [none]", NULL, 0},
      {"--where", OPT_STRING, &sp.where, "COL=V,...", "only the rows where each column equals its value (text, or equal numbers) [all]", NULL, 0},
      {"--index", OPT_U64, &index, "N", "only series N of FILE (0-based) [all]", NULL, 0},
      {"--log-x", OPT_FLAG, &sp.log_x, NULL, "fit: against log x; argmin/argmax: refine in log x", NULL, 0},
      {"--log-y", OPT_FLAG, &sp.log_y, NULL, "fit: log y against x", NULL, 0},
      {"--loglog", OPT_FLAG, &loglog, NULL, "fit: --log-x and --log-y", NULL, 0},
      {"--se", OPT_STRING, &sp.se, "COL", "fit: standard error column of y: weighted least squares [ordinary]", NULL, 0},
      {"--fitted", OPT_FLAG, &sp.fitted, NULL, "fit: one row per input row (X fit slope slope_se)", NULL, 0},
      {"--refine", OPT_FLAG, &sp.refine, NULL, "argmin/argmax: refine by the parabola through the best three points", NULL, 0},
      {"--out", OPT_STRING, &out, "PATH", "output table, written atomically [stdout]", NULL, 0},
      {NULL, 0, NULL, NULL, NULL, NULL, 0},
  };
  const char *pos[2];
  int npos = 0;
  int r = cli_parse(cmd, usage, opts, argc, argv, 1, pos, 2, &npos);
  if (r) return r == 1 ? 0 : 2;
  if (npos != 2) {
    fprintf(stderr, "bafu reduce: expected an operation (fit, argmin, argmax, mean) and a table FILE (see bafu "
                    "reduce --help)\n");
    return 2;
  }
  size_t op = 0;
  while (op < 4 && strcmp(pos[0], op_names[op]) != 0) ++op;
  if (op == 4) {
    fprintf(stderr, "bafu reduce: '%s' is not an operation: fit, argmin, argmax or mean\n", pos[0]);
    return 2;
  }
  sp.op = (bafu_reduce_op)op;
  if (loglog) sp.log_x = sp.log_y = 1;
  if (opts[5].set) {
    if (index > 1000000000) {
      fprintf(stderr, "bafu reduce: --index: %llu is beyond any table's series\n", (unsigned long long)index);
      return 2;
    }
    sp.index = (long)index;
  }
  const cli_file files[] = {{"FILE", pos[1]}, {"--out", out}};
  if ((r = cli_distinct_files(cmd, files, 2))) return r;

  bafu_tabdata *in = NULL;
  bafu_reduce_result *res = NULL;
  bafu_status st = bafu_tabdata_read(pos[1], &in);
  if (!st) st = bafu_reduce_table(&sp, in, &res);
  if (st) { /* the input or the request is bad: nothing was written */
    cli_fail(cmd, NULL);
    bafu_tabdata_free(in);
    return st == BAFU_ENOMEM ? 1 : 2;
  }
  bafu_table *t;
  if (bafu_table_open(out, &t)) {
    cli_fail(cmd, "--out");
    bafu_reduce_result_free(res);
    bafu_tabdata_free(in);
    return 2;
  }
  char desc[1024];
  bafu_reduce_describe(&sp, desc, sizeof desc);
  bafu_table_meta(t, "bafu reduce: %s", desc);
  bafu_table_provenance(t, argc + 1, argv - 1);
  bafu_table_meta(t, "input: %s (%zu series)", pos[1], in->nseries);
  if (in->series[0].ncomments) bafu_table_meta(t, "input description: %s", in->series[0].comments[0]);
  bafu_table_meta(t, "rows: %zu in %zu series; values %%.10g, standard errors %%.4g", bafu_reduce_result_nrows(res),
                  bafu_reduce_result_nseries(res));
  bafu_reduce_result_write(res, bafu_table_stream(t));
  bafu_reduce_result_free(res);
  bafu_tabdata_free(in);
  if (bafu_table_commit(t)) {
    cli_fail(cmd, "--out");
    return 1;
  }
  return 0;
}
