/* idx.c: gzipped IDX image and label files (bafu/idx.h). */
#define _DEFAULT_SOURCE /* access */
#include "bafu/idx.h"

#include "bafu/net.h" /* bafu_memory_check */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_IMAGES 0x00000803u
#define IDX_LABELS 0x00000801u
#define MAX_SIDE 4096
#define MAX_COUNT 100000000
#define CHUNK (1 << 15)            /* bytes converted per pixel read */
#define MAX_READ (1u << 30)        /* gzread takes an unsigned and returns an int */

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Report a short or failed gzread: zlib's reason if the stream is unreadable
 * or corrupt, else the file ended early. */
static bafu_status read_fail(gzFile f, const char *path, const char *what) {
  int err;
  const char *msg = gzerror(f, &err);
  const size_t n = strlen(path); /* zlib prefixes its messages with "path: " */
  if (strncmp(msg, path, n) == 0 && strncmp(msg + n, ": ", 2) == 0) msg += n + 2;
  if (err == Z_ERRNO) return bafu_error(BAFU_EIO, "cannot read '%s': %s", path, msg);
  if (err == Z_MEM_ERROR) return bafu_error(BAFU_ENOMEM, "out of memory reading '%s'", path);
  if (err != Z_OK) return bafu_error(BAFU_EPARSE, "'%s': corrupt gzip data (%s)", path, msg);
  return bafu_error(BAFU_EPARSE, "'%s' is truncated: it ends inside the %s", path, what);
}

/* Read exactly n bytes. */
static bafu_status read_all(gzFile f, const char *path, const char *what, void *buf, size_t n) {
  unsigned char *p = buf;
  while (n > 0) {
    const int got = gzread(f, p, n < MAX_READ ? (unsigned)n : MAX_READ);
    if (got <= 0) return read_fail(f, path, what);
    p += got;
    n -= (size_t)got;
  }
  return BAFU_OK;
}

/* The data must end where the header says: drain the rest (which also makes
 * zlib verify the gzip checksum) and reject any extra byte. */
static bafu_status check_end(gzFile f, const char *path) {
  unsigned char buf[4096];
  size_t extra = 0;
  int got, err;
  while ((got = gzread(f, buf, sizeof buf)) > 0) extra += (size_t)got;
  gzerror(f, &err);
  if (got < 0 || err != Z_OK) return read_fail(f, path, "data");
  if (extra) return bafu_error(BAFU_EPARSE, "'%s': %zu bytes of trailing data after the declared end", path, extra);
  return BAFU_OK;
}

/* Open an IDX file and read its header: magic, then ndims sizes. */
static bafu_status open_idx(const char *path, uint32_t magic, int ndims, size_t *dims, gzFile *out) {
  *out = NULL;
  errno = 0;
  gzFile f = gzopen(path, "rb");
  if (!f) return bafu_error(BAFU_EIO, "cannot open '%s': %s", path, errno ? strerror(errno) : "out of memory");
  gzbuffer(f, 1 << 17);
  unsigned char h[16];
  bafu_status st = read_all(f, path, "header", h, 4 * (size_t)(ndims + 1));
  if (st == BAFU_OK && be32(h) != magic)
    st = bafu_error(BAFU_EPARSE, "'%s': magic number 0x%08x, expected 0x%08x (IDX %s file)", path,
                    (unsigned)be32(h), (unsigned)magic, magic == IDX_IMAGES ? "image" : "label");
  if (st != BAFU_OK) {
    gzclose(f);
    return st;
  }
  for (int i = 0; i < ndims; ++i) dims[i] = be32(h + 4 + 4 * i);
  *out = f;
  return BAFU_OK;
}

static bafu_status check_dim(const char *path, const char *name, size_t value, size_t max) {
  if (value == 0 || value > max)
    return bafu_error(BAFU_EPARSE, "'%s': %s %zu in the header is outside 1..%zu", path, name, value, max);
  return BAFU_OK;
}

/* n pixel bytes to doubles in [0, 1], a chunk at a time. */
static bafu_status read_pixels(gzFile f, const char *path, size_t n, double *x) {
  unsigned char buf[CHUNK];
  for (size_t done = 0; done < n;) {
    const size_t m = n - done < CHUNK ? n - done : CHUNK;
    bafu_status st = read_all(f, path, "pixel data the header declares", buf, m);
    if (st != BAFU_OK) return st;
    for (size_t k = 0; k < m; ++k) x[done + k] = buf[k] / 255.0;
    done += m;
  }
  return BAFU_OK;
}

bafu_status bafu_idx_load(const char *images_gz, const char *labels_gz, size_t max_count, bafu_dataset *out) {
  memset(out, 0, sizeof *out);
  size_t idim[3] = {0}, nlabels = 0; /* count, rows, cols; count */
  gzFile fi = NULL, fl = NULL;
  bafu_status st = open_idx(images_gz, IDX_IMAGES, 3, idim, &fi);
  if (st == BAFU_OK) st = open_idx(labels_gz, IDX_LABELS, 1, &nlabels, &fl);
  if (st == BAFU_OK) st = check_dim(images_gz, "image count", idim[0], MAX_COUNT);
  if (st == BAFU_OK) st = check_dim(images_gz, "rows", idim[1], MAX_SIDE);
  if (st == BAFU_OK) st = check_dim(images_gz, "columns", idim[2], MAX_SIDE);
  if (st == BAFU_OK) st = check_dim(labels_gz, "label count", nlabels, MAX_COUNT);
  if (st == BAFU_OK && nlabels != idim[0])
    st = bafu_error(BAFU_EPARSE, "'%s' has %zu images but '%s' has %zu labels", images_gz, idim[0], labels_gz,
                    nlabels);
  if (st != BAFU_OK) goto done;

  const size_t count = max_count && max_count < idim[0] ? max_count : idim[0];
  const size_t dim = idim[1] * idim[2];
  /* the header's sizes are checked against the memory limit before anything
     is allocated (a short file would otherwise reserve what it declares) */
  char what[600];
  snprintf(what, sizeof what, "'%.500s': %zu images of %zu x %zu", images_gz, count, idim[1], idim[2]);
  if ((st = bafu_memory_check((double)count * ((double)dim * sizeof(double) + 1), what))) goto done;
  if (count > SIZE_MAX / sizeof(double) / dim ||
      !(out->x = malloc(count * dim * sizeof(double))) || !(out->label = malloc(count))) {
    st = bafu_error(BAFU_ENOMEM, "out of memory for %zu images of %zu x %zu from '%s'", count, idim[1], idim[2],
                    images_gz);
    goto done;
  }
  out->count = count;
  out->rows = idim[1];
  out->cols = idim[2];
  st = read_pixels(fi, images_gz, count * dim, out->x);
  if (st == BAFU_OK) st = read_all(fl, labels_gz, "label data the header declares", out->label, count);
  for (size_t i = 0; st == BAFU_OK && i < count; ++i)
    if (out->label[i] > 9)
      st = bafu_error(BAFU_EPARSE, "'%s': label %u of sample %zu is outside 0..9", labels_gz, out->label[i], i);
  if (st == BAFU_OK && count == idim[0]) st = check_end(fi, images_gz);
  if (st == BAFU_OK && count == idim[0]) st = check_end(fl, labels_gz);
done:
  if (fi) gzclose(fi);
  if (fl) gzclose(fl);
  if (st != BAFU_OK) bafu_dataset_free(out);
  return st;
}

void bafu_dataset_free(bafu_dataset *d) {
  if (!d) return;
  free(d->x);
  free(d->label);
  memset(d, 0, sizeof *d);
}

static int missing(const char *path) { return access(path, F_OK) != 0 && (errno == ENOENT || errno == ENOTDIR); }

static const char *data_dir(const char *dir) {
  if (!dir) dir = getenv("BAFU_FASHION_MNIST_DIR");
  if (!dir || !*dir) dir = "/usr/share/datasets/fashion-mnist";
  return dir;
}

int bafu_fashion_mnist_file(const char *dir, int test, int labels, char *buf, size_t size) {
  return (size_t)snprintf(buf, size, "%s/%s-%s-ubyte.gz", data_dir(dir), test ? "t10k" : "train",
                          labels ? "labels-idx1" : "images-idx3") >= size;
}

bafu_status bafu_fashion_mnist_load(const char *dir, int test, size_t max_count, bafu_dataset *out) {
  memset(out, 0, sizeof *out);
  char images[4096], labels[4096];
  if (bafu_fashion_mnist_file(dir, test, 0, images, sizeof images) ||
      bafu_fashion_mnist_file(dir, test, 1, labels, sizeof labels))
    return bafu_error(BAFU_EINVAL, "Fashion-MNIST directory name too long: '%s'", data_dir(dir));
  if (missing(images) || missing(labels))
    return bafu_error(BAFU_EIO,
                      "Fashion-MNIST not found in %s (install the Debian package dataset-fashion-mnist, or set "
                      "BAFU_FASHION_MNIST_DIR)",
                      data_dir(dir));
  return bafu_idx_load(images, labels, max_count, out);
}
