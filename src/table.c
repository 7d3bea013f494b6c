/* table.c: atomically written data tables (bafu/table.h). */
#define _DEFAULT_SOURCE /* mkstemp, fsync, fileno */
#include "bafu/table.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

struct bafu_table {
  FILE *f;
  char *path; /* final path, NULL for stdout */
  char *tmp;  /* temporary path */
};

/* Interrupted runs: the temporary files of the tables not yet committed are
 * registered here, and SIGINT, SIGTERM and SIGHUP remove them (unlink is
 * async-signal-safe) before the signal takes its default course. The final
 * path is only ever written by rename(), so an earlier complete table under
 * that name stays as it was. */
#define PENDING_MAX 64
static char *volatile pending[PENDING_MAX];

static void on_signal(int sig) {
  for (int i = 0; i < PENDING_MAX; ++i)
    if (pending[i]) unlink(pending[i]);
  signal(sig, SIG_DFL);
  raise(sig);
}

static void pending_add(char *tmp) {
  static int installed;
  if (!installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; ++i) {
      struct sigaction old;
      /* leave a signal alone if the caller ignores it (nohup) or handles it */
      if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) sigaction(sigs[i], &sa, NULL);
    }
    installed = 1;
  }
  for (int i = 0; i < PENDING_MAX; ++i)
    if (!pending[i]) {
      pending[i] = tmp;
      return;
    }
}

static void pending_remove(const char *tmp) {
  for (int i = 0; i < PENDING_MAX; ++i)
    if (pending[i] == tmp) pending[i] = NULL;
}

bafu_status bafu_table_open(const char *path, bafu_table **out) {
  *out = NULL;
  bafu_table *t = calloc(1, sizeof *t);
  if (!t) return bafu_error(BAFU_ENOMEM, "out of memory");
  if (!path || strcmp(path, "-") == 0) {
    t->f = stdout;
    *out = t;
    return BAFU_OK;
  }
  if (!*path) {
    free(t);
    return bafu_error(BAFU_EIO, "empty output path");
  }
  struct stat sb;
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    free(t);
    return bafu_error(BAFU_EIO, "cannot write '%s': it is a directory", path);
  }
  const size_t len = strlen(path);
  t->path = malloc(len + 1);
  t->tmp = malloc(len + 16);
  if (!t->path || !t->tmp) {
    free(t->path);
    free(t->tmp);
    free(t);
    return bafu_error(BAFU_ENOMEM, "out of memory");
  }
  memcpy(t->path, path, len + 1);
  snprintf(t->tmp, len + 16, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(t->tmp);
  if (fd < 0) {
    bafu_status st = bafu_error(BAFU_EIO, "cannot write '%s': %s", path, strerror(errno));
    free(t->path);
    free(t->tmp);
    free(t);
    return st;
  }
  pending_add(t->tmp);
  fchmod(fd, 0644);
  t->f = fdopen(fd, "w");
  if (!t->f) {
    bafu_status st = bafu_error(BAFU_EIO, "cannot write '%s': %s", path, strerror(errno));
    close(fd);
    pending_remove(t->tmp);
    unlink(t->tmp);
    free(t->path);
    free(t->tmp);
    free(t);
    return st;
  }
  *out = t;
  return BAFU_OK;
}

FILE *bafu_table_stream(bafu_table *t) { return t->f; }

void bafu_table_meta(bafu_table *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("# ", t->f);
  vfprintf(t->f, fmt, ap);
  fputc('\n', t->f);
  va_end(ap);
}

void bafu_table_provenance(bafu_table *t, int argc, char **argv) {
  fprintf(t->f, "# generator: bafu %s\n# command:", BAFU_VERSION);
  for (int i = 0; i < argc; ++i) fprintf(t->f, " %s", argv[i]);
  fputc('\n', t->f);
  time_t now = time(NULL);
  struct tm tmv;
  char buf[64] = "unknown";
  if (gmtime_r(&now, &tmv)) strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  fprintf(t->f, "# date: %s\n", buf);
}

static void table_release(bafu_table *t) {
  if (t->tmp) pending_remove(t->tmp);
  free(t->path);
  free(t->tmp);
  free(t);
}

bafu_status bafu_table_commit(bafu_table *t) {
  if (!t->path) {
    bafu_status st = (fflush(t->f) == 0 && !ferror(t->f)) ? BAFU_OK
                                                           : bafu_error(BAFU_EIO, "error writing to stdout");
    table_release(t);
    return st;
  }
  bafu_status st = BAFU_OK;
  if (fflush(t->f) != 0 || ferror(t->f) || fsync(fileno(t->f)) != 0)
    st = bafu_error(BAFU_EIO, "error writing '%s': %s", t->path, strerror(errno));
  if (fclose(t->f) != 0 && !st) st = bafu_error(BAFU_EIO, "error closing '%s': %s", t->path, strerror(errno));
  if (!st && rename(t->tmp, t->path) != 0)
    st = bafu_error(BAFU_EIO, "cannot rename into '%s': %s", t->path, strerror(errno));
  if (st) unlink(t->tmp);
  table_release(t);
  return st;
}

void bafu_table_abort(bafu_table *t) {
  if (!t) return;
  if (t->path) {
    fclose(t->f);
    unlink(t->tmp);
  } else {
    fflush(t->f);
  }
  table_release(t);
}
