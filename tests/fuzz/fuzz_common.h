/* fuzz_common.h: shared by the fuzz harnesses (libFuzzer entry point
 * LLVMFuzzerTestOneInput; replay.c runs the same entry point over a corpus in
 * ordinary builds). The file readers take paths, so the input is written to a
 * per-process file first. */
#ifndef BAFU_FUZZ_COMMON_H
#define BAFU_FUZZ_COMMON_H

#define _DEFAULT_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "bafu/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write data to a file named after the process and `tag`; returns its path
 * (static buffer per tag slot) or NULL. */
static inline const char *fuzz_file(const char *tag, const uint8_t *data, size_t size) {
  static char paths[2][256];
  static int slot;
  char *path = paths[slot++ & 1];
  const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(path, 256, "%s/bafu_fuzz_%ld_%s", dir, (long)getpid(), tag);
  FILE *f = fopen(path, "wb");
  if (!f) return NULL;
  if (size && fwrite(data, 1, size, f) != size) {
    fclose(f);
    return NULL;
  }
  fclose(f);
  return path;
}

#endif
