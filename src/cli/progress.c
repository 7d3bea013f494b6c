/* progress.c: the CLI progress bar (progress.h). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, isatty */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void cli_bar_start(cli_bar *b, size_t total, size_t already, const char *unit, int quiet) {
  *b = (cli_bar){.t0 = now(), .done0 = (double)already, .total = total, .unit = unit,
                 .enabled = !quiet && isatty(STDERR_FILENO), .shown = 0};
}

double cli_bar_elapsed(const cli_bar *b) { return now() - b->t0; }

void cli_bar_update(cli_bar *b, size_t done, const char *label) {
  if (!b->enabled || b->total == 0) return;
  const double el = cli_bar_elapsed(b);
  if (el < 2 && !b->shown) return;
  const double rate = ((double)done - b->done0) / el;
  enum { W = 30 };
  const int fill = (int)((double)W * (double)done / (double)b->total);
  char cells[W + 1];
  for (int i = 0; i < W; ++i) cells[i] = i < fill ? '#' : '.';
  cells[W] = '\0';
  char eta[32] = "ETA ?";
  if (rate > 0) snprintf(eta, sizeof eta, "ETA %.0f s", (double)(b->total - done) / rate);
  /* one write per redraw, cleared to the end of the line */
  fprintf(stderr, "\r[%s] %zu/%zu %s  %.3g %s/s  %s%s%.40s\033[K", cells, done, b->total, b->unit, rate, b->unit,
          eta, label ? "  " : "", label ? label : "");
  b->shown = 1;
  if (done == b->total) fputc('\n', stderr);
  fflush(stderr);
}

void cli_lazy_bar_fn(size_t done, size_t total, void *ctx) {
  cli_lazy_bar *b = ctx;
  if (b->bar.total == 0) cli_bar_start(&b->bar, b->total_override ? b->total_override : total, 0, b->unit, b->quiet);
  cli_bar_update(&b->bar, b->offset + done, NULL);
}
