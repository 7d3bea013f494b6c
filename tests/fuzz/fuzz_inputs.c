/* fuzz_inputs.c: the batch-table reader of --input (bafu_read_inputs). */
#include <stdlib.h>

#include "bafu/net.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file("inputs", data, size);
  if (!path) return 0;
  double *x = NULL;
  size_t d = 0, m = 0;
  if (bafu_read_inputs(path, &x, &d, &m) == BAFU_OK) {
    if (!x || d == 0 || m == 0) abort(); /* success must deliver a batch */
    free(x);
  } else if (x) {
    abort(); /* failure must not hand out memory */
  }
  unlink(path);
  return 0;
}
