/* test_ckpt.c: the checkpoint files (src/cli/ckpt.h) and the strict text
 * reader (bafu/text.h). A checkpoint that is damaged anywhere (a flipped bit,
 * an edited, removed, repeated or reordered record, rows that make no sense
 * even under a recomputed checksum) is refused with BAFU_EPARSE and left as it
 * was; the cut-short tail an interruption leaves is the one defect tolerated. */
#define _POSIX_C_SOURCE 200809L
#include <gsl/gsl_errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bafu/table.h"
#include "bafu/text.h"
#include "ckpt.h"
#include "testutil.h"

static char dir[] = "/tmp/bafu_test_ckpt.XXXXXX";

static void path_of(char *buf, const char *name) { snprintf(buf, 256, "%s/%s", dir, name); }

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc(*n + 1);
  ck_assert_uint_eq(fread(b, 1, *n, f), *n);
  b[*n] = '\0';
  fclose(f);
  return b;
}

static void spit(const char *path, const char *b, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(b, 1, n, f), n);
  fclose(f);
}

/* ---- sweep journal ---- */

#define NPTS 6
static const char *const GRID = "width=8,16 depth=2,3,4 seeds=2 points=6";

/* rows of point k: "k ..." lines; the check accepts rows whose first field is k */
static int rows_ok(size_t k, const char *text, void *ctx) {
  (void)ctx;
  return strtoul(text, NULL, 10) != k;
}

static void write_journal(const char *path, const size_t *order, size_t n) {
  ckpt_journal j;
  unlink(path);
  ck_assert_ok(ckpt_sweep_create(path, GRID, &j));
  for (size_t i = 0; i < n; ++i) {
    char rows[64];
    snprintf(rows, sizeof rows, "%zu 1 0.5\n%zu 2 0.25\n", order[i], order[i]);
    ck_assert_ok(ckpt_sweep_append(&j, order[i], rows));
  }
  fclose(j.f);
}

static bafu_status load(const char *path, char **rows, size_t *done) {
  ckpt_journal j;
  memset(rows, 0, NPTS * sizeof *rows);
  bafu_status st = ckpt_sweep_load(path, GRID, NPTS, rows_ok, NULL, rows, done, &j);
  if (j.f) fclose(j.f);
  return st;
}

static void free_all(char **rows) {
  for (size_t k = 0; k < NPTS; ++k) free(rows[k]);
}

START_TEST(test_sweep_roundtrip) {
  char p[256], *rows[NPTS];
  size_t done;
  path_of(p, "j1");
  const size_t order[] = {3, 0, 5};
  write_journal(p, order, 3);
  ck_assert_ok(load(p, rows, &done));
  ck_assert_uint_eq(done, 3);
  ck_assert_str_eq(rows[3], "3 1 0.5\n3 2 0.25\n");
  ck_assert_ptr_null(rows[1]);
  free_all(rows);
  /* appending after a load continues the chain: a second load sees 4 points */
  ckpt_journal j;
  memset(rows, 0, sizeof rows);
  ck_assert_ok(ckpt_sweep_load(p, GRID, NPTS, rows_ok, NULL, rows, &done, &j));
  ck_assert_ok(ckpt_sweep_append(&j, 1, "1 7 7\n"));
  fclose(j.f);
  free_all(rows);
  ck_assert_ok(load(p, rows, &done));
  ck_assert_uint_eq(done, 4);
  ck_assert_str_eq(rows[1], "1 7 7\n");
  free_all(rows);
  /* an existing path is never overwritten by a new journal */
  ck_assert_int_eq(ckpt_sweep_create(p, GRID, &j), BAFU_EIO);
}
END_TEST

START_TEST(test_sweep_cut_tail) {
  /* an interruption mid-record: the partial record is dropped, the rest kept */
  char p[256], *rows[NPTS];
  size_t n, done;
  path_of(p, "j2");
  const size_t order[] = {0, 1, 2};
  write_journal(p, order, 3);
  char *b = slurp(p, &n);
  const char *last = strstr(b, "\npoint 2 ") + 1;
  for (size_t cut = (size_t)(last - b) + 1; cut < n; cut += 3) { /* inside the last record */
    spit(p, b, cut);
    ck_assert_ok(load(p, rows, &done));
    ck_assert_uint_eq(done, 2);
    ck_assert_ptr_null(rows[2]);
    free_all(rows);
  }
  free(b);
}
END_TEST

/* Any single flipped bit after the first line is refused, and the file kept. */
START_TEST(test_sweep_damage) {
  char p[256], *rows[NPTS];
  size_t n, done;
  path_of(p, "j3");
  const size_t order[] = {4, 2};
  write_journal(p, order, 2);
  char *good = slurp(p, &n);
  const size_t first_line = (size_t)(strchr(good, '\n') - good) + 1;
  size_t refused = 0, tried = 0;
  for (size_t i = first_line; i < n; ++i)
    for (int bit = 0; bit < 8; bit += 3) {
      char *b = malloc(n);
      memcpy(b, good, n);
      b[i] ^= (char)(1 << bit);
      if (b[i] == '\n' || good[i] == '\n') { /* a line end moved: still refused, or a cut tail */
        free(b);
        continue;
      }
      spit(p, b, n);
      ++tried;
      const bafu_status st = load(p, rows, &done);
      free_all(rows);
      refused += st == BAFU_EPARSE || st == BAFU_EINVAL;
      size_t m;
      char *after = slurp(p, &m);
      ck_assert_msg(m == n && memcmp(after, b, n) == 0, "byte %zu: the damaged file was changed", i);
      free(after);
      free(b);
    }
  ck_assert_uint_eq(refused, tried);
  /* a record removed from the middle, or two swapped: the chain breaks */
  const char *r4 = strstr(good, "\npoint 4 ") + 1, *r2 = strstr(good, "\npoint 2 ") + 1;
  char *b = malloc(n);
  const size_t head = (size_t)(r4 - good), len4 = (size_t)(r2 - r4), len2 = n - (size_t)(r2 - good);
  memcpy(b, good, head);
  memcpy(b + head, r2, len2);
  spit(p, b, head + len2);
  ck_assert_int_eq(load(p, rows, &done), BAFU_EPARSE);
  free_all(rows);
  memcpy(b + head + len2, r4, len4);
  spit(p, b, n);
  ck_assert_int_eq(load(p, rows, &done), BAFU_EPARSE);
  ck_assert(strstr(bafu_last_error(), "damaged") && strstr(bafu_last_error(), p));
  free_all(rows);
  /* a long line without an end before the last record: damage, not a cut tail */
  char *c = malloc(n + 400);
  memcpy(c, good, head);
  memset(c + head, 'x', 300);
  memcpy(c + head + 300, r4, n - head);
  spit(p, c, n + 300);
  ck_assert_int_eq(load(p, rows, &done), BAFU_EPARSE);
  free_all(rows);
  free(c);
  free(b);
  free(good);
}
END_TEST

/* Records sound under their checksums but not as a grid's points: a point
 * twice (a renamed point), an id outside the grid, rows the check rejects. */
START_TEST(test_sweep_semantics) {
  char p[256], *rows[NPTS];
  size_t done;
  path_of(p, "j4");
  const size_t twice[] = {1, 3, 1};
  write_journal(p, twice, 3);
  ck_assert_int_eq(load(p, rows, &done), BAFU_EPARSE);
  ck_assert(strstr(bafu_last_error(), "repeats a point"));
  free_all(rows);
  const size_t outside[] = {0, NPTS};
  write_journal(p, outside, 2);
  ck_assert_int_eq(load(p, rows, &done), BAFU_EPARSE);
  ck_assert(strstr(bafu_last_error(), "outside the grid"));
  free_all(rows);
  ckpt_journal j;
  unlink(p);
  ck_assert_ok(ckpt_sweep_create(p, GRID, &j));
  ck_assert_ok(ckpt_sweep_append(&j, 2, "5 1 0.5\n")); /* point 2 holding point 5's rows */
  fclose(j.f);
  ck_assert_int_eq(load(p, rows, &done), BAFU_EPARSE);
  ck_assert(strstr(bafu_last_error(), "malformed rows"));
  free_all(rows);
  /* another grid, or not a checkpoint at all: BAFU_EINVAL (a request for
     another run), the file kept */
  const size_t order[] = {0};
  write_journal(p, order, 1);
  memset(rows, 0, sizeof rows);
  ck_assert_int_eq(ckpt_sweep_load(p, "width=8 points=1", 1, rows_ok, NULL, rows, &done, &j), BAFU_EINVAL);
  ck_assert(strstr(bafu_last_error(), "another grid"));
  spit(p, "hello\n", 6);
  ck_assert_int_eq(load(p, rows, &done), BAFU_EINVAL);
}
END_TEST

/* ---- train checkpoint ---- */

static const char TRAIN_ROWS[] = "step epoch final layer loss test_loss cos_theta\n"
                                 "0 1 0 1 2.5 2.4 0.9\n0 1 0 2 2.5 2.4 0.8\n"
                                 "10 1 0 1 2.1 2.0 0.9\n10 1 0 2 2.1 2.0 0.7\n";

START_TEST(test_train_roundtrip) {
  char p[256];
  path_of(p, "t1");
  const unsigned char state[] = {1, 2, 3, 4, 5, 0, 255};
  ck_assert_int_eq(ckpt_train_save(p, 20, state, sizeof state, TRAIN_ROWS, strlen(TRAIN_ROWS)), 0);
  size_t step, sl, rl;
  void *s;
  char *rows;
  ck_assert_ok(ckpt_train_load(p, 10, &step, &s, &sl, &rows, &rl));
  ck_assert_uint_eq(step, 20);
  ck_assert_uint_eq(sl, sizeof state);
  ck_assert_int_eq(memcmp(s, state, sl), 0);
  ck_assert_str_eq(rows, TRAIN_ROWS);
  free(s);
  free(rows);
  /* a missing file: nothing to resume */
  char q[256];
  path_of(q, "none");
  ck_assert_ok(ckpt_train_load(q, 10, &step, &s, &sl, &rows, &rl));
  ck_assert_ptr_null(s);
  /* every flipped byte is refused, and the file kept */
  size_t n;
  char *good = slurp(p, &n);
  for (size_t i = strlen("bafu train checkpoint 2\n"); i < n; ++i) {
    char *b = malloc(n);
    memcpy(b, good, n);
    b[i] ^= 0x10;
    spit(p, b, n);
    ck_assert_int_eq(ckpt_train_load(p, 10, &step, &s, &sl, &rows, &rl), BAFU_EPARSE);
    size_t m;
    char *after = slurp(p, &m);
    ck_assert(m == n && memcmp(after, b, n) == 0);
    free(after);
    free(b);
  }
  for (size_t cut = 0; cut < n; cut += 7) { /* and every truncation (the file is replaced whole) */
    spit(p, good, cut);
    ck_assert_int_ne(ckpt_train_load(p, 10, &step, &s, &sl, &rows, &rl), BAFU_OK);
  }
  free(good);
}
END_TEST

/* Rows that a recomputed checksum does not make sound. */
START_TEST(test_train_semantics) {
  char p[256];
  path_of(p, "t2");
  const char *bad[] = {
      "",                                                                          /* emptied */
      "step epoch final layer loss test_loss cos_theta\n",                          /* header only */
      "step epoch final layer loss test_loss cos_theta\n0 1 0 1 nan 2.4 0.9\n10 1 0 1 2 2 0.9\n", /* a NaN */
      "step epoch final layer loss test_loss cos_theta\n0 1 0 1 2.5 2.4\n10 1 0 1 2 2 0.9\n", /* a short row */
      "step epoch final layer loss test_loss cos_theta\n0 1 0 1 2 2 1\n0 1 0 2 2 2 1\n10 1 0 1 2 2 1\n", /* groups differ */
      "step epoch final layer loss test_loss cos_theta\n0 1 0 1 2 2 1\n20 1 0 1 2 2 1\n", /* a step not logged */
      "step epoch final layer loss test_loss cos_theta\n0 1 1 1 2 2 1\n10 1 0 1 2 2 1\n", /* a final row */
      "loss step\n0 1\n10 1\n",                                                     /* another header */
      "step epoch final layer loss test_loss cos_theta\n0 1 0 1 2 2 1\n10 1 0 1 2 2 1", /* no newline */
  };
  const unsigned char state[] = {9};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    ck_assert_int_eq(ckpt_train_save(p, 20, state, 1, bad[i], strlen(bad[i])), 0);
    size_t step, sl, rl;
    void *s;
    char *rows;
    ck_assert_msg(ckpt_train_load(p, 10, &step, &s, &sl, &rows, &rl) == BAFU_EPARSE, "case %zu accepted", i);
  }
  /* the same good rows read at another step or logging interval are refused too */
  ck_assert_int_eq(ckpt_train_save(p, 30, state, 1, TRAIN_ROWS, strlen(TRAIN_ROWS)), 0);
  size_t step, sl, rl;
  void *s;
  char *rows;
  ck_assert_int_eq(ckpt_train_load(p, 10, &step, &s, &sl, &rows, &rl), BAFU_EPARSE);
  /* only step 0 logged, at step 20: rows of an interval of 20 or more steps,
     so another configuration, not damage */
  const char *one = "step epoch final layer loss test_loss cos_theta\n0 1 0 1 2.5 2.4 0.9\n";
  ck_assert_int_eq(ckpt_train_save(p, 20, state, 1, one, strlen(one)), 0);
  ck_assert_int_eq(ckpt_train_load(p, 10, &step, &s, &sl, &rows, &rl), BAFU_EINVAL);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "another interval than 10 steps"));
  /* good rows read at another logging interval: another configuration, named so */
  ck_assert_int_eq(ckpt_train_save(p, 20, state, 1, TRAIN_ROWS, strlen(TRAIN_ROWS)), 0);
  ck_assert_int_eq(ckpt_train_load(p, 5, &step, &s, &sl, &rows, &rl), BAFU_EINVAL);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "logged every 10 steps, not 5"));
  spit(p, "bafu train checkpoint 1\n", 24);
  ck_assert_int_eq(ckpt_train_load(p, 10, &step, &s, &sl, &rows, &rl), BAFU_EINVAL);
}
END_TEST

/* ---- text checkpoints ---- */

/* ---- the tables' gate: no table holds nan or inf ---- */

static bafu_status write_table(const char *p, int table, const char *text) {
  bafu_table *t;
  bafu_status st = table ? bafu_table_open(p, &t) : bafu_file_open(p, &t);
  ck_assert_int_eq(st, BAFU_OK);
  bafu_table_meta(t, "a '#' line may say nan and inf");
  fputs(text, bafu_table_stream(t));
  return bafu_table_commit(t);
}

START_TEST(test_table_gate) {
  char p[256];
  path_of(p, "g.dat");
  const char *bad[] = {"x y\n1 nan\n", "x y\n-nan 1\n", "x y\n1 inf\n", "x y\n1 -inf\n", "x y\nNaN 2\n",
                       "x y\n1 -nan(0x8000)\n", "x y\n1 Infinity\n", "x y\n1 2\n\n\n3 +INF\n", "x y\n1 nan"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
    unlink(p);
    ck_assert_msg(write_table(p, 1, bad[i]) == BAFU_ENUMERIC, "case %zu accepted", i);
    ck_assert_msg(access(p, F_OK) != 0, "case %zu: the table was written", i);
  }
  /* an existing table is kept when the new one is refused */
  ck_assert_int_eq(write_table(p, 1, "x y\n1 2\n"), BAFU_OK);
  size_t n0, n1;
  char *before = slurp(p, &n0);
  ck_assert_int_eq(write_table(p, 1, "x y\n1 nan\n"), BAFU_ENUMERIC);
  char *after = slurp(p, &n1);
  ck_assert(n0 == n1 && memcmp(before, after, n0) == 0);
  free(before);
  free(after);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "line 3"));
  /* words and numbers that merely contain the letters pass */
  ck_assert_int_eq(write_table(p, 1, "act info nano\nrelu 1e5 0x1p-3\ninference nanny -0\n"), BAFU_OK);
  /* a file that is not a table is not checked */
  ck_assert_int_eq(write_table(p, 0, "state nan inf\n"), BAFU_OK);
  unlink(p);
}
END_TEST

/* ---- the tables' gate: each series' header row comes first ---- */

/* `in` written to a table (`table` 1) or a plain file (0), in pieces of
 * `chunk` bytes each flushed through the gate (0: at once), equals `want`. */
static void check_order(int table, const char *in, size_t chunk, const char *want) {
  char p[256];
  path_of(p, "order.dat");
  bafu_table *t;
  ck_assert_int_eq(table ? bafu_table_open(p, &t) : bafu_file_open(p, &t), BAFU_OK);
  FILE *f = bafu_table_stream(t);
  const size_t n = strlen(in);
  for (size_t i = 0; i < n; i += chunk ? chunk : n) {
    const size_t k = chunk && n - i > chunk ? chunk : n - i;
    ck_assert_uint_eq(fwrite(in + i, 1, k, f), k);
    if (chunk) fflush(f);
  }
  ck_assert_int_eq(bafu_table_commit(t), BAFU_OK);
  size_t len;
  char *got = slurp(p, &len);
  ck_assert_msg(strcmp(got, want) == 0, "chunk %zu: wrote\n%s\nwanted\n%s", chunk, got, want);
  free(got);
  unlink(p);
}

START_TEST(test_table_header_first) {
  static const struct {
    int table;
    const char *in, *want;
  } cases[] = {
      /* the metadata of a command, then its header: the header goes first */
      {1, "# what\n# seed: 1\nlayer a\n1 2\n2 3\n", "layer a\n# what\n# seed: 1\n1 2\n2 3\n"},
      /* already first: unchanged; '#' lines between and after the rows stay in place */
      {1, "x y\n# a\n1 2\n# between\n3 4\n# after\n", "x y\n# a\n1 2\n# between\n3 4\n# after\n"},
      /* every series: the lines after two blank lines, up to its header, follow the header */
      {1, "# file\n# s0\nx y\n1 2\n\n\n# s1\nx z\n3 4\n\n\nx w\n# s2\n5 6\n",
       "x y\n# file\n# s0\n1 2\n\n\nx z\n# s1\n3 4\n\n\nx w\n# s2\n5 6\n"},
      /* one blank line does not end a series */
      {1, "x y\n1 2\n\n# c\n3 4\n", "x y\n1 2\n\n# c\n3 4\n"},
      /* blank lines before a header are held with the '#' lines, in their order */
      {1, "# a\n\n# b\nx y\n1 2\n", "x y\n# a\n\n# b\n1 2\n"},
      /* no header at all: everything as it came, at the commit */
      {1, "# only\n# comments\n", "# only\n# comments\n"},
      {1, "x y\n1 2\n\n\n# trailing\n", "x y\n1 2\n\n\n# trailing\n"},
      /* a header cut short (no newline) still ends on a line of its own */
      {1, "# a\nx y", "x y\n# a\n"},
      /* not a table: every byte in order */
      {0, "# state\nx y\n", "# state\nx y\n"},
  };
  const size_t chunks[] = {0, 1, 2, 3, 7};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i)
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; ++c) check_order(cases[i].table, cases[i].in, chunks[c], cases[i].want);
  /* through bafu_table_meta and bafu_table_provenance, as every command writes */
  char p[256];
  path_of(p, "order.dat");
  bafu_table *t;
  ck_assert_int_eq(bafu_table_open(p, &t), BAFU_OK);
  bafu_table_meta(t, "bafu test: a table");
  char *argv[] = {"bafu", "test"};
  bafu_table_provenance(t, 2, argv);
  fputs("layer a\n1 2\n", bafu_table_stream(t));
  ck_assert_int_eq(bafu_table_commit(t), BAFU_OK);
  size_t len;
  char *got = slurp(p, &len);
  static const char head[] = "layer a\n# bafu test: a table\n# generator: bafu ";
  ck_assert_msg(strncmp(got, head, sizeof head - 1) == 0, "%s", got);
  ck_assert_ptr_nonnull(strstr(got, "\n# command: bafu test\n# date: "));
  ck_assert_msg(len > 4 && strcmp(got + len - 4, "1 2\n") == 0, "%s", got);
  free(got);
  /* a non-finite number is reported at its line in the file as written: the
     header of series 1 (line 7 as written to the stream) is line 6 of the file */
  ck_assert_int_eq(write_table(p, 1, "x y\n1 2\n\n\n# c\nnan y\n"), BAFU_ENUMERIC);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "line 6"));
  ck_assert_int_eq(write_table(p, 1, "# b\nx y\n1 inf\n"), BAFU_ENUMERIC);
  ck_assert_ptr_nonnull(strstr(bafu_last_error(), "line 4"));
  unlink(p);
}
END_TEST

/* ---- a runtime's crash handler (MPI's) runs after the temporaries are removed ---- */

static const char *marker_path;
static void runtime_handler(int sig, siginfo_t *info, void *ctx) {
  (void)info, (void)ctx;
  int fd = open(marker_path, O_WRONLY | O_CREAT, 0600);
  if (fd >= 0) close(fd);
  signal(sig, SIG_DFL);
  raise(sig);
}

START_TEST(test_crash_chain) {
  char p[256], marker[256];
  path_of(p, "crash.dat");
  path_of(marker, "runtime_ran");
  marker_path = marker;
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = runtime_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGFPE, &sa, NULL); /* as MPI_Init does */
    bafu_table *t;
    if (bafu_table_open(p, &t) != BAFU_OK) _exit(3);
    bafu_table_catch_crash_signals();
    bafu_table_catch_crash_signals(); /* idempotent: the runtime's handler is still the one chained */
    fputs("x\n1\n", bafu_table_stream(t));
    raise(SIGFPE);
    _exit(4);
  }
  int ws;
  ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
  ck_assert_msg(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGFPE, "status %d", ws);
  ck_assert_msg(access(marker, F_OK) == 0, "the runtime's handler did not run");
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  for (struct dirent *e; (e = readdir(d));)
    ck_assert_msg(strncmp(e->d_name, ".crash.dat", 10) != 0 && strncmp(e->d_name, "crash.dat", 9) != 0,
                  "left behind: %s", e->d_name);
  closedir(d);
  unlink(marker);
}
END_TEST

START_TEST(test_text) {
  char p[256];
  path_of(p, "x1");
  const char *text = "bafu figures 0 mode=quick seed=1\nfig1\nfig2\n";
  ck_assert_int_eq(ckpt_text_save(p, text, strlen(text)), 0);
  char *got;
  size_t len, n;
  ck_assert_ok(ckpt_text_load(p, &got, &len));
  ck_assert_str_eq(got, text);
  free(got);
  char *good = slurp(p, &n);
  for (size_t i = 0; i < n; ++i) {
    char *b = malloc(n);
    memcpy(b, good, n);
    b[i] ^= 0x04;
    spit(p, b, n);
    ck_assert_msg(ckpt_text_load(p, &got, &len) == BAFU_EPARSE, "flipped byte %zu accepted", i);
    free(b);
  }
  spit(p, good, n - 14); /* the crc line removed */
  ck_assert_int_eq(ckpt_text_load(p, &got, &len), BAFU_EPARSE);
  /* the checksum in upper case (bafu writes lower case): refused */
  char *up = malloc(n);
  memcpy(up, good, n);
  int changed = 0;
  for (size_t i = n - 9; i < n - 1; ++i)
    if (up[i] >= 'a' && up[i] <= 'f') up[i] = (char)(up[i] - 'a' + 'A'), changed = 1;
  if (!changed) up[n - 2] = 'G'; /* all digits: any letter breaks it */
  spit(p, up, n);
  ck_assert_int_eq(ckpt_text_load(p, &got, &len), BAFU_EPARSE);
  free(up);
  /* a FIFO at the path: refused at once, not waited on */
  unlink(p);
  ck_assert_int_eq(mkfifo(p, 0600), 0);
  ck_assert_int_eq(ckpt_text_load(p, &got, &len), BAFU_EINVAL);
  unlink(p);
  free(good);
}
END_TEST

/* ---- the text reader ---- */

START_TEST(test_text_reader) {
  char p[256];
  path_of(p, "r1");
  spit(p, "a\nbb\r\nccc\rdd\r\r\ne", 16); /* LF, CRLF, CR, an empty CR line, CRLF, no end */
  bafu_text *t;
  ck_assert_ok(bafu_text_open(p, "test", &t));
  const char *want[] = {"a", "bb", "ccc", "dd", "", "e"};
  char *line;
  size_t len;
  for (size_t i = 0; i < 6; ++i) {
    ck_assert_ok(bafu_text_line(t, &line, &len));
    ck_assert_ptr_nonnull(line);
    ck_assert_str_eq(line, want[i]);
    ck_assert_uint_eq(len, strlen(want[i]));
    ck_assert_uint_eq(bafu_text_lineno(t), i + 1);
  }
  ck_assert_ok(bafu_text_line(t, &line, &len));
  ck_assert_ptr_null(line);
  bafu_text_close(t);
  spit(p, "1 2\n3\0 4\n", 9);
  ck_assert_ok(bafu_text_open(p, "", &t)); /* no role: the message starts with the path */
  ck_assert_ok(bafu_text_line(t, &line, &len));
  ck_assert_int_eq(bafu_text_line(t, &line, &len), BAFU_EPARSE);
  ck_assert(strstr(bafu_last_error(), "line 2") && strstr(bafu_last_error(), "NUL"));
  ck_assert(bafu_last_error()[0] == '\'' && strncmp(bafu_last_error() + 1, p, strlen(p)) == 0);
  bafu_text_close(t);
  /* a line over the memory limit is refused, not allocated */
  setenv("BAFU_MEMORY_LIMIT_MB", "1", 1);
  FILE *f = fopen(p, "wb");
  for (int i = 0; i < (3 << 20); ++i) fputc('7', f);
  fclose(f);
  ck_assert_ok(bafu_text_open(p, "batch table", &t));
  ck_assert_int_eq(bafu_text_line(t, &line, &len), BAFU_ELIMIT);
  bafu_text_close(t);
  unsetenv("BAFU_MEMORY_LIMIT_MB");
}
END_TEST

START_TEST(test_parse_double) {
  double v;
  const char *ok[] = {"1", "-2.5", "1e-320", "4.9e-324", "1e-400", "0x1p-3", "1E+300", "-0"};
  const double want[] = {1, -2.5, 1e-320, 4.9e-324, 0, 0.125, 1e300, 0};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; ++i) {
    ck_assert_msg(bafu_parse_double(ok[i], &v), "'%s' refused", ok[i]);
    ck_assert(v == want[i]);
  }
  const char *bad[] = {"", " 1", "1 ", "1x", "inf", "-inf", "nan", "NaN", "1e400", "-1e309", "infinity", "--1", "0x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) ck_assert_msg(!bafu_parse_double(bad[i], &v), "'%s' accepted", bad[i]);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("ckpt");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_sweep_roundtrip);
  tcase_add_test(tc, test_sweep_cut_tail);
  tcase_add_test(tc, test_sweep_damage);
  tcase_add_test(tc, test_sweep_semantics);
  tcase_add_test(tc, test_train_roundtrip);
  tcase_add_test(tc, test_train_semantics);
  tcase_add_test(tc, test_text);
  tcase_add_test(tc, test_table_gate);
  tcase_add_test(tc, test_table_header_first);
  tcase_add_test(tc, test_crash_chain);
  tcase_add_test(tc, test_text_reader);
  tcase_add_test(tc, test_parse_double);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  /* the library needs no initialisation call: GSL's abort()ing default handler
     is already off when main starts (bafu_run_suite would switch it off too) */
  gsl_error_handler_t *h = gsl_set_error_handler(NULL);
  if (!h) {
    fprintf(stderr, "test_ckpt: GSL's default (abort) error handler is still on at start\n");
    return EXIT_FAILURE;
  }
  gsl_set_error_handler(h);
  if (!mkdtemp(dir)) return EXIT_FAILURE;
  const int rc = bafu_run_suite(suite());
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "test_ckpt: could not remove %s\n", dir);
  return rc;
}
