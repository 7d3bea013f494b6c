/* figures.h: what `bafu figures` (cmd_figures.c) shares with the stages it
 * still runs in-process (fig_builtin.c). */
#ifndef BAFU_CLI_FIGURES_H
#define BAFU_CLI_FIGURES_H
#include <stddef.h>
#include <stdint.h>
#include "progress.h"

typedef struct {
  int quick, quiet;
  int resume;          /* --resume: figure 8 reuses the runs an interrupted run finished */
  cli_bar *bar;        /* stages done, drawn under the progress lines on a terminal */
  const size_t *stage; /* stages done so far */
  int threads;
  uint64_t seed;
  const char *data_dir, *plot_dir, *scripts;
  int argc;
  char **argv;
  double t0;
} fig_ctx;

/* A progress line "[  t s] text" on stderr (none with --quiet). */
void fig_progress(const fig_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The in-process stages ("builtin NAME" in a figure file): 0 if done, 1 on
 * failure (message printed, no table of the stage written). */
int fig_builtin_known(const char *name);
int fig_builtin_run(const char *name, const fig_ctx *c);
/* Before any work: the per-run checkpoints of figure 8 are free (no
 * --resume) or sound (--resume). 0, or 2 with the message printed. */
int fig_builtin_check(const fig_ctx *c);
#endif
