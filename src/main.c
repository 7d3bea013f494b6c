/* main.c: the `bafu` executable: bafu_cli_run (src/cli/run.c) between the
 * checks of the standard descriptors. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bafu/cli.h"

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
  int rc = bafu_cli_run(argc, argv);
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
