/* main.c: the `bafu` executable, a thin dispatcher over the subcommands. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include "bafu/version.h"
#include <stdio.h>
#include <string.h>

#include "bafu/net.h"
#include "bafu/status.h"
#include "cli.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} command;

static const command commands[] = {
    {"mc", cmd_mc, "finite-width Monte Carlo: per-layer angle, feature speed, identity check"},
    {"figures", cmd_figures, "regenerate every data table and figure (theory against Monte Carlo)"},
    {"kernel", cmd_kernel, "infinite-width NNGP / NTK / backward kernels for two inputs or a batch"},
    {"reduce", cmd_reduce, "a table reduced by groups of rows: least-squares line, argmin/argmax, mean with standard error"},
    {"spectrum", cmd_spectrum, "spectra of the BFK / J J^T for one input: dense, matrix-free KPM, free-probability limit"},
    {"sweep", cmd_sweep, "a grid of networks: Monte Carlo and theory side by side in one table (MPI optional)"},
    {"theory", cmd_theory, "infinite-width prediction: BFK moments, angle per layer, ResNet limit"},
    {"train", cmd_train, "mini-batch SGD (Fashion-MNIST or teacher-student) with presets, feature speed control and per-layer logs"},
};

static void usage(FILE *f) {
  fprintf(f,
          "bafu %s: backward aligned feature updates and the feature speed formula\n"
          "(theory of feature learning in deep networks, arXiv 2311.18718)\n\n"
          "Usage: bafu <command> [options]     bafu <command> --help\n\nCommands:\n",
          BAFU_VERSION_STRING);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; ++i)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\nShared files: the derivations the help texts cite (theory/*.md) are in %s,\n"
             "the gnuplot scripts of bafu figures in %s.\n", cli_share_dir("doc"), cli_share_dir("plots"));
}

static int dispatch(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "bafu: no command given (see bafu --help)\n");
    return 2;
  }
  if (strcmp(argv[1], "help") == 0 && argc > 2) { /* bafu help CMD: the command's own help */
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; ++i)
      if (strcmp(argv[2], commands[i].name) == 0) {
        char *help_argv[] = {argv[2], "--help", NULL};
        return commands[i].run(2, help_argv);
      }
    fprintf(stderr, "bafu: unknown command '%s' (see bafu --help)\n", argv[2]);
    return 2;
  }
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("bafu %s\n", bafu_version_full());
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; ++i)
    if (strcmp(argv[1], commands[i].name) == 0) {
      /* a malformed memory limit is refused before any work, in every command */
      if (bafu_memory_limit_check()) {
        fprintf(stderr, "bafu %s: %s\n", argv[1], bafu_last_error());
        return 2;
      }
      for (int k = 2; k < argc && strcmp(argv[k], "--") != 0; ++k)
        if (strcmp(argv[k], "--version") == 0) { /* bafu CMD --version */
          printf("bafu %s\n", bafu_version_full());
          return 0;
        }
      return commands[i].run(argc - 1, argv + 1);
    }
  fprintf(stderr, "bafu: unknown command '%s' (see bafu --help)\n", argv[1]);
  return 2;
}

/* A standard descriptor closed at the start (2>&-) would be taken by the
 * first file bafu opens, and messages meant for stderr would land in a
 * table. Each closed one is occupied by /dev/null opened read-only: reads
 * see end of file and writes fail (EBADF), so output due on a closed stdout
 * is still an error, and messages to a closed stderr go nowhere. */
static int occupy_closed_std_fds(void) {
  for (int fd = 0; fd <= 2; ++fd)
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      const int got = open("/dev/null", O_RDONLY);
      if (got != fd) return -1; /* cannot happen: the lowest free descriptor is fd */
    }
  return 0;
}

int main(int argc, char **argv) {
  if (occupy_closed_std_fds()) return 2;
  int rc = dispatch(argc, argv);
  /* Everything written to stdout must have reached it: a full disk or a
   * closed pipe is an error (exit 1), not a silent loss. A stdout that was
   * closed before the start (>&-) and never written is no error. */
  const int failed = fflush(stdout) != 0 || ferror(stdout);
  const int e = errno;
  if ((fclose(stdout) != 0 && errno != EBADF) || failed) {
    if (rc == 0) { /* otherwise the command has reported its failure already */
      fprintf(stderr, "bafu: error writing to stdout: %s\n", strerror(failed ? e : errno));
      rc = 1;
    }
  }
  return rc;
}
