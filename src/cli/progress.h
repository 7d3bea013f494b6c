/* progress.h: the progress bar of the long-running subcommands on stderr. Shown only when stderr is a terminal, the run is not
 * --quiet and it has lasted 2 s; nothing is ever written to stdout. */
#ifndef BAFU_CLI_PROGRESS_H
#define BAFU_CLI_PROGRESS_H

#include <stddef.h>

typedef struct {
  double t0;        /* CLOCK_MONOTONIC at cli_bar_start */
  double done0;     /* work already done at the start (resumed runs): not in the rate */
  size_t total;
  const char *unit; /* "draws", "points", ... */
  int enabled, shown;
} cli_bar;

/* Start a bar over `total` units of work, `already` of them done before
 * (a resumed run). Enabled iff !quiet and stderr is a terminal. */
void cli_bar_start(cli_bar *b, size_t total, size_t already, const char *unit, int quiet);

/* Redraw: "[####....] done/total unit  rate unit/s  ETA s  label" (label may
 * be NULL). Nothing before 2 s have passed; a newline once done == total. */
void cli_bar_update(cli_bar *b, size_t done, const char *label);

/* Seconds since cli_bar_start. */
double cli_bar_elapsed(const cli_bar *b);

/* A bar driven by a library's progress callback (bafu_progress_fn): started
 * at the first call with that call's total. `offset` and `scale` place the
 * library's units within a larger run: shown = offset + done, out of
 * total_override if set (else the library's total). */
typedef struct {
  cli_bar bar;
  const char *unit;
  int quiet;
  size_t offset, total_override;
} cli_lazy_bar;
void cli_lazy_bar_fn(size_t done, size_t total, void *ctx);

#endif
