/* test_cli_run.c: the command line as a library call (bafu/cli.h), as the
 * Python package uses it: many commands in one process, each giving the
 * table the executable gives (a second identical call writes the identical
 * table: no state carried over), refusals with exit status 2, the message
 * and the library status behind it. Linked against libbafu.so. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bafu/cli.h"
#include "bafu/status.h"
#include "testutil.h"

static char dir[] = "/tmp/bafu_test_cli_run.XXXXXX";

/* Run "bafu ARGS... --out DIR/NAME --quiet" (NULL-terminated args). */
static int run(const char *name, ...) {
  char *argv[64], out[300];
  int argc = 0;
  argv[argc++] = "bafu";
  va_list ap;
  va_start(ap, name);
  for (char *a; (a = va_arg(ap, char *));) argv[argc++] = a;
  va_end(ap);
  if (name) {
    snprintf(out, sizeof out, "%s/%s", dir, name);
    argv[argc++] = "--out";
    argv[argc++] = out;
    argv[argc++] = "--quiet";
  }
  argv[argc] = NULL;
  return bafu_cli_run(argc, argv);
}

/* The table without its date and command lines (they name the file). */
static char *table(const char *name) {
  char path[300];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "r");
  ck_assert_ptr_nonnull(f);
  char *text = calloc(1 << 20, 1), line[8192];
  ck_assert_ptr_nonnull(text);
  size_t n = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "# date:", 7) != 0 && strncmp(line, "# command:", 10) != 0) {
      const size_t k = strlen(line);
      ck_assert_uint_lt(n + k, 1 << 20);
      memcpy(text + n, line, k);
      n += k;
    }
  fclose(f);
  return text;
}

START_TEST(test_repeatable) {
  /* every command twice, a refusal between: the same tables */
  for (int pass = 0; pass < 2; ++pass) {
    char a[8][32];
    for (int k = 0; k < 8; ++k) snprintf(a[k], sizeof a[k], "t%d_%d.dat", k, pass);
    ck_assert_int_eq(run(a[0], "theory", "--depth", "5", "--act", "tanh", "--sigma-w2", "1.5", NULL), 0);
    ck_assert_int_eq(run(a[1], "mc", "--width", "16", "--depth", "3", "--seeds", "3", "--preset", "mup", NULL), 0);
    ck_assert_int_eq(run(a[2], "kernel", "--depth", "4", "--corr", "0.2", NULL), 0);
    ck_assert_int_eq(run(a[3], "spectrum", "--mode", "limit", "--depth", "3", "--bins", "50", NULL), 0);
    ck_assert_int_eq(run(a[4], "theory", "--presets", "--arch", "resnet", "--depth", "8", NULL), 0);
    ck_assert_int_eq(run(NULL, "mc", "--sigma-w2", "-1", NULL), 2);
    ck_assert_int_eq(run(a[5], "train", "--data", "teacher", "--width", "16", "--depth", "2", "--epochs", "1",
                         "--train-size", "64", "--test-size", "32", NULL),
                     0);
  }
  for (int k = 0; k < 6; ++k) {
    char n0[32], n1[32];
    snprintf(n0, sizeof n0, "t%d_0.dat", k);
    snprintf(n1, sizeof n1, "t%d_1.dat", k);
    char *x = table(n0), *y = table(n1);
    ck_assert_msg(strcmp(x, y) == 0, "%s and %s differ", n0, n1);
    ck_assert_msg(strstr(x, "# generator: bafu ") != NULL, "%s: no provenance", n0);
    free(x), free(y);
  }
}
END_TEST

START_TEST(test_messages) {
  ck_assert_int_eq(run(NULL, "mc", "--width", "8", "--sigma-w2", "-1", NULL), 2);
  ck_assert_str_eq(bafu_cli_message(), "bafu mc: --sigma-w2: must be a finite number > 0");
  ck_assert_int_eq(run(NULL, "mc", "--widht", "8", NULL), 2);
  ck_assert_ptr_nonnull(strstr(bafu_cli_message(), "unknown option '--widht'"));
  ck_assert_int_eq(bafu_last_status(), BAFU_OK); /* refused by the command line itself */
  ck_assert_int_eq(run(NULL, "frobnicate", NULL), 2);
  ck_assert_str_eq(bafu_cli_message(), "bafu: unknown command 'frobnicate' (see bafu --help)");
  /* a malformed input file: the library's status is kept */
  char bad[300];
  snprintf(bad, sizeof bad, "%s/bad.txt", dir);
  FILE *f = fopen(bad, "w");
  ck_assert_ptr_nonnull(f);
  fputs("1 2\n3\n", f);
  fclose(f);
  ck_assert_int_eq(run("never.dat", "theory", "--depth", "2", "--input", bad, NULL), 2);
  ck_assert_int_eq(bafu_last_status(), BAFU_EPARSE);
  char never[300];
  snprintf(never, sizeof never, "%s/never.dat", dir);
  ck_assert_int_ne(access(never, F_OK), 0); /* nothing written */
  /* a numerical failure: exit status 1 and BAFU_ENUMERIC */
  ck_assert_int_eq(run("never.dat", "mc", "--width", "4", "--depth", "3", "--seeds", "2", "--sigma-w2", "1e-300",
                       "--act", "linear", NULL),
                   1);
  ck_assert_int_eq(bafu_last_status(), BAFU_ENUMERIC);
  ck_assert_ptr_nonnull(strstr(bafu_cli_message(), "bafu mc: "));
  /* a success clears both */
  ck_assert_int_eq(run("ok.dat", "theory", "--depth", "2", NULL), 0);
  ck_assert_str_eq(bafu_cli_message(), "");
  ck_assert_int_eq(bafu_last_status(), BAFU_OK);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("cli_run");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_repeatable);
  tcase_add_test(tc, test_messages);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  if (!mkdtemp(dir)) return EXIT_FAILURE;
  const int rc = bafu_run_suite(suite());
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "test_cli_run: could not remove %s\n", dir);
  return rc;
}
