/* bafu/idx.h: labelled image sets in the IDX format (MNIST, Fashion-MNIST).
 *
 * An IDX image file is a big-endian header (magic 0x00000803, count, rows,
 * cols) followed by count*rows*cols unsigned bytes, one image after the other,
 * each row-major; a label file is (magic 0x00000801, count) followed by count
 * bytes. Files are read through zlib, so they may be gzipped or plain.
 *
 * Thread safety: the functions keep no global state (bafu_fashion_mnist_load
 * reads the environment), so loads into distinct datasets may run
 * concurrently. */
#ifndef BAFU_IDX_H
#define BAFU_IDX_H

#include <stddef.h>

#include "bafu/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A labelled image set: count samples of dim = rows*cols pixels, stored as doubles. */
typedef struct {
  size_t count, rows, cols;
  double *x;            /* dim x count column-major (sample i is x[i*dim .. i*dim+dim-1],
                           pixels row-major within it), pixel/255 in [0,1] */
  unsigned char *label; /* count labels in 0..9 */
} bafu_dataset;

/* Read an image file and its label file into *out (which then owns x and
 * label, malloc'd; release with bafu_dataset_free). *out is overwritten
 * without being freed. max_count > 0 keeps only the first max_count samples
 * (only those are read and checked; the trailing-bytes check is then
 * skipped); 0 reads all. Validation is strict, and each failure names the file:
 *   BAFU_EIO    a file cannot be opened or read;
 *   BAFU_EPARSE wrong magic number, zero or oversized dimensions (rows, cols
 *               <= 4096, count <= 10^8), image and label counts differ, a label
 *               outside 0..9, fewer bytes than the header declares, trailing
 *               bytes after the data, corrupt gzip data (zlib's message);
 *   BAFU_ELIMIT the declared images exceed the memory limit (bafu_memory_check,
 *               checked before anything is allocated);
 *   BAFU_ENOMEM the arrays cannot be allocated (or zlib runs out of memory).
 * On error *out is zeroed and nothing is leaked. */
bafu_status bafu_idx_load(const char *images_gz, const char *labels_gz, size_t max_count, bafu_dataset *out);

/* Free the arrays of d and zero it; NULL-safe, and safe on a zeroed dataset. */
void bafu_dataset_free(bafu_dataset *d);

/* Fashion-MNIST from DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz:
 * test = 0 the 60000 training images, 1 the 10000 test images (28 x 28).
 * dir NULL means $BAFU_FASHION_MNIST_DIR if set and non-empty, else (and for
 * dir = "") /usr/share/datasets/fashion-mnist.
 * Missing files give BAFU_EIO with "Fashion-MNIST not found in DIR (install the
 * Debian package dataset-fashion-mnist, or set BAFU_FASHION_MNIST_DIR)";
 * BAFU_EINVAL if a file name would exceed 4095 characters; other errors, and
 * ownership, as bafu_idx_load (*out is zeroed on every error). */
bafu_status bafu_fashion_mnist_load(const char *dir, int test, size_t max_count, bafu_dataset *out);

/* The path of one Fashion-MNIST file, DIR/{train,t10k}-{images-idx3,
 * labels-idx1}-ubyte.gz (test: t10k; labels: the label file), with DIR chosen
 * as in bafu_fashion_mnist_load, into buf (truncated to fit, always
 * NUL-terminated). Returns 0, or 1 if it did not fit. Cannot fail otherwise. */
int bafu_fashion_mnist_file(const char *dir, int test, int labels, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
