/* fuzz_idxpair.c: training on a Fashion-MNIST directory of four fuzzed IDX
 * files (bafu_trainer_create and, if it accepts them, a short run): the
 * training and test images must agree with each other and with the input
 * dimension (one byte of the input), else the run is refused; an accepted run
 * only ever logs finite rows. The first three bytes cut the rest into the four
 * files. Sizes are kept small by the memory limit (BAFU_MEMORY_LIMIT_MB). */
#include "fuzz_common.h" /* first: it sets _DEFAULT_SOURCE */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bafu/train.h"

static char dir[256];
static const char *const names[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                     "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};

static void cleanup(void) {
  for (int i = 0; i < 4; ++i) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
}

/* the columns a logged row holds (bafu train's table) */
static int row_finite(const bafu_train_row *r, void *ctx) {
  (void)ctx;
  static const bafu_quantity cols[] = {BAFU_Q_COS, BAFU_Q_SPEED, BAFU_Q_SPEED_RMS, BAFU_Q_CONTRIB,
                                       BAFU_Q_DECAY, BAFU_Q_IDRES, BAFU_Q_SENS};
  if (!isfinite(r->loss) || !isfinite(r->test_loss) || !isfinite(r->test_acc)) abort();
  for (size_t j = 0; j < r->J; ++j)
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; ++c)
      if (!isfinite(r->q[j * BAFU_Q_COUNT + cols[c]]) || !isfinite(r->lr[j])) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "%s/bafu_fuzz_pair_%ld", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
             (long)getpid());
    mkdir(dir, 0700);
    atexit(cleanup);
    setenv("BAFU_MEMORY_LIMIT_MB", "256", 1);
  }
  const size_t rest = size - 4;
  size_t cut[5] = {0, rest * data[0] / 255, 0, 0, rest};
  cut[2] = cut[1] + (rest - cut[1]) * data[1] / 255;
  cut[3] = cut[2] + (rest - cut[2]) * data[2] / 255;
  for (int i = 0; i < 4; ++i) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data + 4 + cut[i], 1, cut[i + 1] - cut[i], f);
    fclose(f);
  }
  bafu_train_config c = bafu_train_config_default();
  c.data_dir = dir;
  c.net.input_dim = 1 + data[3] % 16;
  c.net.width = 4;
  c.net.depth = 2;
  c.net.batch = 2;
  c.epochs = 1;
  c.train_size = 8;
  c.test_size = 8;
  c.log_every = 1;
  bafu_trainer *t;
  if (bafu_trainer_create(&c, &t) == BAFU_OK) {
    bafu_trainer_run(t, row_finite, NULL);
    bafu_trainer_free(t);
  } else if (t) {
    abort();
  }
  return 0;
}
