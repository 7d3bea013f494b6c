/* fuzz_idx.c: the IDX reader (bafu_idx_load). The input is split in two
 * files: the first byte says where (as a fraction of the rest), the second
 * gives max_count (0 = all). */
#include <stdlib.h>

#include "bafu/idx.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  const size_t rest = size - 2, cut = rest * data[0] / 255, max_count = data[1];
  const char *images = fuzz_file("images", data + 2, cut);
  const char *labels = fuzz_file("labels", data + 2 + cut, rest - cut);
  if (!images || !labels) return 0;
  bafu_dataset ds;
  if (bafu_idx_load(images, labels, max_count, &ds) == BAFU_OK) {
    const size_t dim = ds.rows * ds.cols;
    for (size_t i = 0; i < ds.count; ++i) {
      if (ds.label[i] > 9) abort();
      for (size_t j = 0; j < dim; ++j)
        if (!(ds.x[i * dim + j] >= 0 && ds.x[i * dim + j] <= 1)) abort();
    }
    bafu_dataset_free(&ds);
  } else if (ds.x || ds.label || ds.count) {
    abort(); /* on error the dataset is zeroed */
  }
  unlink(images);
  unlink(labels);
  return 0;
}
