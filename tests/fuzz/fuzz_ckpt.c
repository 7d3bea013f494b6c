/* fuzz_ckpt.c: the checkpoint readers of sweep, train and figures
 * (src/cli/ckpt.h). The first byte picks the reader (and, for train, the
 * logging interval); the rest is the file. Invariants: no crash; a refused
 * file is left exactly as it was; an accepted one is only ever cut back to a
 * prefix (the sweep journal's interrupted tail), and what was read is sound. */
#include <stdlib.h>
#include <string.h>

#include "bafu/text.h"
#include "ckpt.h"
#include "fuzz_common.h"

#define NPOINTS 8
static const char GRID[] = "width=8,16 depth=2,3,4,5 seeds=2 points=8";

static int rows_check(size_t k, const char *text, void *ctx) {
  (void)ctx;
  char *end;
  return strtoul(text, &end, 10) != k || end == text;
}

/* The file after the reader: equal to the input, or (allow_prefix) a prefix of it. */
static void check_file(const char *path, const uint8_t *data, size_t size, int allow_prefix) {
  FILE *f = fopen(path, "rb");
  if (!f) abort();
  unsigned char *b = malloc(size + 1);
  const size_t n = fread(b, 1, size + 1, f);
  fclose(f);
  if (n > size || (!allow_prefix && n != size) || memcmp(b, data, n) != 0) abort();
  free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const int which = data[0] % 3;
  const size_t log_every = 1 + data[0] / 3 % 16;
  const char *path = fuzz_file("ckpt", data + 1, size - 1);
  if (!path) return 0;
  if (which == 0) {
    char *rows[NPOINTS] = {0};
    size_t done = 0;
    ckpt_journal j;
    const bafu_status st = ckpt_sweep_load(path, GRID, NPOINTS, rows_check, NULL, rows, &done, &j);
    if (st) {
      for (size_t k = 0; k < NPOINTS; ++k)
        if (rows[k]) abort(); /* nothing handed out on error */
      check_file(path, data + 1, size - 1, 0);
    } else {
      size_t have = 0;
      for (size_t k = 0; k < NPOINTS; ++k)
        if (rows[k]) {
          ++have;
          if (rows_check(k, rows[k], NULL)) abort();
        }
      if (have != done || !j.f) abort();
      /* appending continues a sound journal: it loads again with one more point */
      size_t k = 0;
      while (k < NPOINTS && rows[k]) ++k;
      if (k < NPOINTS) {
        char text[32];
        snprintf(text, sizeof text, "%zu 1 2\n", k);
        if (ckpt_sweep_append(&j, k, text)) abort();
      }
      fclose(j.f);
      for (size_t i = 0; i < NPOINTS; ++i) free(rows[i]);
      if (k < NPOINTS) {
        char *again[NPOINTS] = {0};
        size_t done2 = 0;
        if (ckpt_sweep_load(path, GRID, NPOINTS, rows_check, NULL, again, &done2, &j) || done2 != done + 1) abort();
        fclose(j.f);
        for (size_t i = 0; i < NPOINTS; ++i) free(again[i]);
      }
    }
  } else if (which == 1) {
    size_t step, sl, rl;
    void *state;
    char *rows;
    const bafu_status st = ckpt_train_load(path, log_every, &step, &state, &sl, &rows, &rl);
    if (!st) {
      if (!state || step == 0 || strlen(rows) != rl) abort();
      free(state);
      free(rows);
    }
    check_file(path, data + 1, size - 1, 0); /* read, never changed */
  } else {
    char *text;
    size_t len;
    const bafu_status st = ckpt_text_load(path, &text, &len);
    if (!st) {
      if (!text || strlen(text) != len || len > size - 1 || memcmp(text, data + 1, len) != 0) abort();
      free(text);
    }
    check_file(path, data + 1, size - 1, 0);
  }
  unlink(path);
  return 0;
}
