/* replay.c: run a fuzz harness's entry point over corpus files or directories
 * (the regression run of the test suite; libFuzzer builds use their own main). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return 1;
  unsigned char *buf = NULL;
  size_t n = 0, cap = 0, got;
  unsigned char chunk[65536];
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (n + got > cap) {
      cap = 2 * (n + got);
      unsigned char *nb = realloc(buf, cap);
      if (!nb) return 1;
      buf = nb;
    }
    memcpy(buf + n, chunk, got);
    n += got;
  }
  fclose(f);
  LLVMFuzzerTestOneInput(buf ? buf : (const unsigned char *)"", n);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  size_t count = 0;
  for (int a = 1; a < argc; ++a) {
    struct stat sb;
    if (stat(argv[a], &sb) != 0) {
      fprintf(stderr, "replay: cannot read %s\n", argv[a]);
      return 1;
    }
    if (!S_ISDIR(sb.st_mode)) {
      if (run_file(argv[a])) return 1;
      ++count;
      continue;
    }
    DIR *d = opendir(argv[a]);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[a], e->d_name);
      if (run_file(path)) return 1;
      ++count;
    }
    if (d) closedir(d);
  }
  fprintf(stderr, "replay: %zu inputs, no crash\n", count);
  return count ? 0 : 1;
}
