/* fuzz_sweep.c: the grid-file reader of bafu sweep (bafu_sweep_read), and the
 * description, fingerprint, header and parameters of every point it accepts
 * (Monte Carlo and training grids). */
#include <stdlib.h>

#include "bafu/sweep.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file("sweep", data, size);
  if (!path) return 0;
  bafu_sweep *s = NULL;
  if (bafu_sweep_read(path, &s) == BAFU_OK) {
    char buf[4096];
    bafu_sweep_describe(s, buf, sizeof buf);
    free(bafu_sweep_fingerprint(s));
    if (!bafu_sweep_header(s)[0]) abort();
    for (size_t k = 0; k < bafu_sweep_npoints(s) && k < 4096; ++k) { /* accepted points are valid */
      if (bafu_sweep_task(s)) {
        const bafu_train_config c = bafu_sweep_train_config(s, k);
        if (bafu_train_config_check(&c) != BAFU_OK) abort();
      } else {
        bafu_net_params p = bafu_sweep_params(s, k);
        if (bafu_net_params_check(&p) != BAFU_OK) abort();
      }
    }
    bafu_sweep_free(s);
  } else if (s) {
    abort();
  }
  unlink(path);
  return 0;
}
