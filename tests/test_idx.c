/* test_idx.c: the IDX reader on small synthetic files (a round trip, max_count
 * and every error path) and on the installed Fashion-MNIST test set. */
#define _DEFAULT_SOURCE /* mkdtemp, setenv */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "bafu/idx.h"
#include "testutil.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* One temporary directory per test case (unchecked fixture: created and
 * removed in the parent process, so a failing test still cleans up). */
static char dir[64];
static char img[128], lab[128];

static void make_dir(void) {
  strcpy(dir, "/tmp/bafu_test_idx_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(img, sizeof img, "%s/images.gz", dir);
  snprintf(lab, sizeof lab, "%s/labels.gz", dir);
}

static void remove_dir(void) {
  DIR *d = opendir(dir);
  if (!d) return;
  char p[512];
  for (struct dirent *e; (e = readdir(d));) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(dir);
}

static void write_file(const char *path, int gz, const unsigned char *b, size_t n) {
  if (gz) {
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, b, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(f), Z_OK);
  } else {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
  }
}

static void put32(unsigned char *p, uint32_t v) {
  p[0] = v >> 24, p[1] = v >> 16 & 255, p[2] = v >> 8 & 255, p[3] = v & 255;
}

/* A synthetic set: the headers as declared, then `pixels` pixel bytes (15k mod
 * 256, or pseudo-random) and `labels` label bytes ((7 + 3i) mod 10), then
 * `extra` trailing bytes on the image file. */
typedef struct {
  uint32_t imagic, count, rows, cols, lmagic, nlabels;
  size_t pixels, labels, extra, header; /* header: bytes of the image header written */
  int random, gz;
} spec;

static spec base(void) {
  return (spec){0x803, 3, 2, 3, 0x801, 3, 18, 3, 0, 16, 0, 1};
}

static unsigned char pixel(const spec *s, size_t k) {
  if (!s->random) return (unsigned char)(15 * k);
  uint64_t z = (k + 1) * 0x9E3779B97F4A7C15u; /* splitmix64 finaliser: incompressible bytes */
  z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9u;
  z = (z ^ z >> 27) * 0x94D049BB133111EBu;
  return (unsigned char)(z ^ z >> 31);
}

static void write_set(const spec *s) {
  unsigned char *b = malloc(16 + s->pixels + s->extra);
  put32(b, s->imagic), put32(b + 4, s->count), put32(b + 8, s->rows), put32(b + 12, s->cols);
  for (size_t k = 0; k < s->pixels + s->extra; ++k) b[16 + k] = pixel(s, k);
  write_file(img, s->gz, b, s->header < 16 ? s->header : 16 + s->pixels + s->extra);
  free(b);
  b = malloc(8 + s->labels);
  put32(b, s->lmagic), put32(b + 4, s->nlabels);
  for (size_t i = 0; i < s->labels; ++i) b[8 + i] = (unsigned char)((7 + 3 * i) % 10);
  write_file(lab, 1, b, 8 + s->labels);
  free(b);
}

static void check_set(const bafu_dataset *d, const spec *s, size_t count) {
  ck_assert_uint_eq(d->count, count);
  ck_assert_uint_eq(d->rows, s->rows);
  ck_assert_uint_eq(d->cols, s->cols);
  const size_t dim = s->rows * s->cols;
  for (size_t i = 0; i < count; ++i) {
    ck_assert_uint_eq(d->label[i], (7 + 3 * i) % 10);
    for (size_t j = 0; j < dim; ++j) ck_assert_double_eq(d->x[i * dim + j], pixel(s, i * dim + j) / 255.0);
  }
}

/* 3 images of 2 x 3, gzipped and plain: exact values, sample i at x[i*6 .. i*6+5]. */
START_TEST(test_roundtrip) {
  spec s = base();
  s.gz = _i;
  write_set(&s);
  bafu_dataset d;
  ck_assert_ok(bafu_idx_load(img, lab, 0, &d));
  check_set(&d, &s, 3);
  ck_assert_double_eq(d.x[0], 0.0);
  ck_assert_double_eq(d.x[7], 105 / 255.0); /* sample 1, row 0, column 1 */
  ck_assert_double_eq(d.x[17], 1.0);
  ck_assert_uint_eq(d.label[2], 3);
  bafu_dataset_free(&d);
  ck_assert_ptr_null(d.x);
  bafu_dataset_free(&d); /* safe twice */
  bafu_dataset_free(NULL);
}
END_TEST

START_TEST(test_max_count) {
  spec s = base();
  write_set(&s);
  const size_t max[] = {1, 2, 3, 4, 1000}, expect[] = {1, 2, 3, 3, 3};
  for (int k = 0; k < 5; ++k) {
    bafu_dataset d;
    ck_assert_ok(bafu_idx_load(img, lab, max[k], &d));
    check_set(&d, &s, expect[k]);
    bafu_dataset_free(&d);
  }
}
END_TEST

/* Malformed sets: each rejected with its status and a message naming the file. */
enum { IMG, LAB };
static const struct {
  const char *what;
  bafu_status st;
  int file;
  const char *fragment;
} bad[] = {
    {"image magic", BAFU_EPARSE, IMG, "magic number 0x00000801, expected 0x00000803 (IDX image file)"},
    {"label magic", BAFU_EPARSE, LAB, "magic number 0x00000803, expected 0x00000801 (IDX label file)"},
    {"count mismatch", BAFU_EPARSE, LAB, "has 3 images but"},
    {"label 10", BAFU_EPARSE, LAB, "label 10 of sample 1 is outside 0..9"},
    {"truncated pixels", BAFU_EPARSE, IMG, "is truncated: it ends inside the pixel data"},
    {"truncated labels", BAFU_EPARSE, LAB, "is truncated: it ends inside the label data"},
    {"truncated header", BAFU_EPARSE, IMG, "is truncated: it ends inside the header"},
    {"trailing byte", BAFU_EPARSE, IMG, ": 1 bytes of trailing data"},
    {"zero rows", BAFU_EPARSE, IMG, "rows 0 in the header is outside 1..4096"},
    {"huge cols", BAFU_EPARSE, IMG, "columns 4097 in the header is outside 1..4096"},
    {"huge count", BAFU_EPARSE, IMG, "image count 100000001 in the header is outside 1..100000000"},
    {"corrupt gzip", BAFU_EPARSE, IMG, "corrupt gzip data ("},
    {"cut gzip", BAFU_EPARSE, IMG, "corrupt gzip data (unexpected end of file)"},
    {"missing images", BAFU_EIO, IMG, "cannot open"},
    {"missing labels", BAFU_EIO, LAB, "cannot open"},
};
#define NBAD (int)(sizeof bad / sizeof bad[0])

/* Flip the middle byte of a file, or cut the file there. */
static void damage(const char *path, int cut) {
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  unsigned char b[1 << 16];
  const size_t n = fread(b, 1, sizeof b, f);
  fclose(f);
  ck_assert_uint_gt(n, 1000);
  ck_assert_uint_lt(n, sizeof b);
  b[n / 2] ^= 0x5a;
  write_file(path, 0, b, cut ? n / 2 : n);
}

START_TEST(test_errors) {
  spec s = base();
  const char *what = bad[_i].what;
  if (!strcmp(what, "image magic")) s.imagic = 0x801;
  if (!strcmp(what, "label magic")) s.lmagic = 0x803;
  if (!strcmp(what, "count mismatch")) s.nlabels = s.labels = 4;
  if (!strcmp(what, "truncated pixels")) s.pixels = 17;
  if (!strcmp(what, "truncated labels")) s.labels = 2;
  if (!strcmp(what, "truncated header")) s.header = 11;
  if (!strcmp(what, "trailing byte")) s.extra = 1;
  if (!strcmp(what, "zero rows")) s.rows = 0, s.pixels = 0;
  if (!strcmp(what, "huge cols")) s.cols = 4097;
  if (!strcmp(what, "huge count")) s.count = 100000001;
  if (!strcmp(what, "corrupt gzip") || !strcmp(what, "cut gzip")) /* 8 random 28 x 28 images */
    s.count = s.nlabels = s.labels = 8, s.rows = s.cols = 28, s.pixels = 8 * 784, s.random = 1;
  write_set(&s);
  if (!strcmp(what, "label 10")) { /* a label byte one past the range */
    unsigned char b[11] = {0, 0, 8, 1, 0, 0, 0, 3, 9, 10, 0};
    write_file(lab, 1, b, sizeof b);
  }
  if (!strcmp(what, "corrupt gzip")) damage(img, 0);
  if (!strcmp(what, "cut gzip")) damage(img, 1);
  const char *ipath = !strcmp(what, "missing images") ? "/nonexistent/images.gz" : img;
  const char *lpath = !strcmp(what, "missing labels") ? "/nonexistent/labels.gz" : lab;

  bafu_dataset d = {.count = 99, .x = (double *)&d};
  const bafu_status st = bafu_idx_load(ipath, lpath, 0, &d);
  const char *msg = bafu_last_error();
  ck_assert_msg(st == bad[_i].st, "%s: status %s, expected %s (%s)", what, bafu_status_string(st),
                bafu_status_string(bad[_i].st), msg);
  ck_assert_msg(strstr(msg, bad[_i].fragment), "%s: message '%s' lacks '%s'", what, msg, bad[_i].fragment);
  ck_assert_msg(strstr(msg, bad[_i].file == IMG ? ipath : lpath), "%s: message '%s' does not name the file", what,
                msg);
  ck_assert(d.count == 0 && d.rows == 0 && d.cols == 0 && !d.x && !d.label);
}
END_TEST

/* The directory argument, the environment variable and the not-found message. */
START_TEST(test_fashion_mnist_dir) {
  char sub[128], expect[512];
  snprintf(sub, sizeof sub, "%s/empty", dir);
  bafu_dataset d;
  ck_assert_int_eq(bafu_fashion_mnist_load(sub, 1, 0, &d), BAFU_EIO);
  snprintf(expect, sizeof expect,
           "Fashion-MNIST not found in %s (install the Debian package dataset-fashion-mnist, or set "
           "BAFU_FASHION_MNIST_DIR)",
           sub);
  ck_assert_str_eq(bafu_last_error(), expect);

  spec s = base();
  snprintf(img, sizeof img, "%s/t10k-images-idx3-ubyte.gz", dir);
  snprintf(lab, sizeof lab, "%s/t10k-labels-idx1-ubyte.gz", dir);
  write_set(&s);
  const char *old = getenv("BAFU_FASHION_MNIST_DIR");
  char *saved = old ? strdup(old) : NULL;
  setenv("BAFU_FASHION_MNIST_DIR", dir, 1);
  ck_assert_ok(bafu_fashion_mnist_load(NULL, 1, 2, &d));
  check_set(&d, &s, 2);
  bafu_dataset_free(&d);
  ck_assert_int_eq(bafu_fashion_mnist_load(NULL, 0, 0, &d), BAFU_EIO); /* no train files */
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), dir));
  if (saved) setenv("BAFU_FASHION_MNIST_DIR", saved, 1);
  else unsetenv("BAFU_FASHION_MNIST_DIR");
  free(saved);
  ck_assert_ptr_null(d.x);
  snprintf(img, sizeof img, "%s/images.gz", dir); /* back to the fixture's names */
  snprintf(lab, sizeof lab, "%s/labels.gz", dir);
}
END_TEST

/* The real test set: 10000 images of 28 x 28, 1000 per class, mean pixel ~0.29. */
START_TEST(test_fashion_mnist_t10k) {
  bafu_dataset d;
  ck_assert_ok(bafu_fashion_mnist_load(FMNIST_DIR, 1, 0, &d));
  ck_assert_uint_eq(d.count, 10000);
  ck_assert_uint_eq(d.rows, 28);
  ck_assert_uint_eq(d.cols, 28);
  /* No ck_assert inside the loops: each one writes a checkpoint (a system call). */
  size_t per_class[11] = {0}, outside = 0;
  for (size_t i = 0; i < d.count; ++i) per_class[d.label[i] < 10 ? d.label[i] : 10]++;
  ck_assert_uint_eq(per_class[10], 0);
  for (int c = 0; c < 10; ++c) ck_assert_uint_eq(per_class[c], 1000);
  double sum = 0;
  const size_t n = d.count * d.rows * d.cols;
  for (size_t k = 0; k < n; ++k) {
    outside += !(d.x[k] >= 0 && d.x[k] <= 1);
    sum += d.x[k];
  }
  ck_assert_uint_eq(outside, 0);
  const double mean = sum / (double)n;
  ck_assert_msg(mean > 0.2 && mean < 0.4, "mean pixel %g outside (0.2, 0.4)", mean);
  bafu_dataset_free(&d);
}
END_TEST

static Suite *suite(int fashion) {
  Suite *s = suite_create("idx");
  if (!fashion) {
    TCase *tc = tcase_create("synthetic");
    tcase_set_timeout(tc, 60);
    tcase_add_unchecked_fixture(tc, make_dir, remove_dir);
    tcase_add_loop_test(tc, test_roundtrip, 0, 2);
    tcase_add_test(tc, test_max_count);
    tcase_add_loop_test(tc, test_errors, 0, NBAD);
    tcase_add_test(tc, test_fashion_mnist_dir);
    suite_add_tcase(s, tc);
  } else {
    TCase *tr = tcase_create("real");
    tcase_set_timeout(tr, 300);
    tcase_add_test(tr, test_fashion_mnist_t10k);
    suite_add_tcase(s, tr);
  }
  return s;
}

/* test_idx: synthetic files; test_idx fashion: the real test set, which
 * reports SKIP (77) when the data set is not installed. */
int main(int argc, char **argv) {
  const int fashion = argc > 1 && strcmp(argv[1], "fashion") == 0;
  if (fashion && (access(FMNIST_DIR "/t10k-images-idx3-ubyte.gz", R_OK) != 0 ||
                  access(FMNIST_DIR "/t10k-labels-idx1-ubyte.gz", R_OK) != 0)) {
    printf("test_idx: Fashion-MNIST not installed in " FMNIST_DIR " (Debian package dataset-fashion-mnist): SKIP\n");
    return 77;
  }
  return bafu_run_suite(suite(fashion));
}
