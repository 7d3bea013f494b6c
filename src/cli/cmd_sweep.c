/* cmd_sweep.c: `bafu sweep FILE`, a grid of networks run through the Monte
 * Carlo and the moment theory side by side, one merged table (bafu/sweep.h).
 *
 * Built with MPI (BAFU_HAVE_MPI), under `mpirun -n P` (P >= 2) rank 0 hands
 * out grid points one at a time to ranks 1..P-1 (a worker asks for the next
 * point when it sends the rows of the last one), gathers the rows and writes
 * the table in grid order. Rank 0 only coordinates and sleeps between polls.
 * The table is byte-identical to the serial run's (nothing in it depends on
 * the number of ranks; the '#' date line differs between any two runs). */
#define _POSIX_C_SOURCE 200809L /* nanosleep, fileno, ftruncate */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "bafu/sweep.h"
#include "bafu/table.h"
#include "ckpt.h"
#include "cli.h"
#include "progress.h"

#ifdef BAFU_HAVE_MPI
#include <mpi.h>
#define MPI_NOTE "This bafu is built with MPI: yes."
#else
#define MPI_NOTE "This bafu is built with MPI: no (rebuild with Open MPI installed to distribute points)."
#endif

void openblas_set_num_threads(int num_threads); /* OpenBLAS extension */

static const char usage_head[] =
    "Usage: bafu sweep FILE [--out PATH] [--columns LIST] [--threads T] [--resume] [--checkpoint PATH] [--quiet]\n"
    "       mpirun -n P bafu sweep FILE --out PATH\n"
    "\n"
    "Run a grid of networks described in FILE, each point a `bafu mc` run with\n"
    "`bafu theory` beside it (task = mc, the default) or a `bafu train` run (task =\n"
    "train), and write one table: a row per point and layer (training: and logged\n"
    "step), one blank line between points. FILE has one 'key = value [value ...]'\n"
    "per line ('#' comments); every key is an option of the task's command, named\n"
    "as in the parameter table ('_' for '-'), its defaults and ranges. Grid axes of\n"
    "bafu mc:";
static const char usage_train[] =
    "; run settings (one value): seeds [8], seed [1], step [1e-5], sampler (stored "
    "conditional) [stored: the weights are drawn; conditional: bafu mc --conditional]. "
    "signal is bafu mc's --probe/--loss; preset is applied to "
    "each point as bafu mc --preset (a grid with a preset sets no sigma2_*, lr_*). "
    "task = train: the axes of bafu mc but regenerate, conditional (signal: mse xent), "
    "and the training settings:";
static const char usage_tail[] =
    " (seed: several values are an axis); run settings rows (all final) [all: a row per "
    "logged step; final: the rows after the last update], data_dir [bafu train's]. "
    "Points are the Cartesian product in that axis order, the last axis varying "
    "fastest; every point uses the defaults of the task's command for what the grid "
    "does not set. Columns: point, arch width depth act sigma_w2 branch_scale "
    "branch_exponent init, each further axis the grid sets, then layer (training: "
    "step epoch final layer) and the value columns: `columns = ...` in FILE or "
    "--columns a,b,c (which wins) chooses them among";
static const char usage_end[] =
    ".\nDefault: cos_theta, feature_speed, loss_decay (training: bafu train's columns).\n"
    "BLAS runs on one thread; --threads runs each Monte Carlo point's draws in\n"
    "parallel. Under mpirun, rank 0 distributes points dynamically to the other\n"
    "ranks and writes the table; it is byte-identical to the serial table except\n"
    "for the '#' date line. Checkpoint: the rows of every finished point are\n"
    "appended to PATH.ckpt (with --out PATH; or --checkpoint) and the file is\n"
    "removed once the table is written. After an interruption, the same command\n"
    "with --resume runs only the missing points (a training point cut short starts\n"
    "again); the table is byte-identical to an uninterrupted run's. A checkpoint\n"
    "of another grid, other columns or another bafu version is refused.\n"
    "A point that fails (a training run that diverges, a degenerate network) is\n"
    "marked in the table by a '# point K failed: reason' line in its place and the\n"
    "others go on; the exit status is then 1, or 0 with --failed-ok (a learning-rate\n"
    "grid whose largest rates diverge is a result, not a failure).\n"
    MPI_NOTE "\n"
    "\n"
    "Example FILE:\n"
    "  arch = mlp resnet\n"
    "  width = 256 512\n"
    "  depth = 8 16\n"
    "  preset = mup fsc\n"
    "  seeds = 8\n"
    "  columns = cos_theta sensitivity\n"
    "Training: task = train, data = teacher, depth = 4 8, preset = mup fsc,\n"
    "  seed = 1 2 3, epochs = 1, rows = final";

/* Append the words of `text` to usage, wrapped at 80 columns; *col is the
 * column the text starts at. */
static size_t wrap(char *usage, size_t used, size_t size, char *text, size_t *col) {
  for (char *w = strtok(text, " "); w && used < size; w = strtok(NULL, " ")) {
    const size_t len = strlen(w);
    const int br = *col + 1 + len > 79;
    used += (size_t)snprintf(usage + used, size - used, "%s%s", br ? "\n" : *col ? " " : "", w);
    *col = br ? len : *col + 1 + len;
  }
  return used;
}

enum { TAG_RESULT = 1, TAG_POINT = 2 };

/* Results of every point, in grid order, and the checkpoint journal they are
 * appended to as they arrive (ckpt.h). A point that fails is marked in the
 * table by a '#' line with the reason, and counted; the others go on. */
typedef struct {
  const bafu_sweep *s;
  char **rows;
  size_t n, done, failed;
  char first_failure[600];
  ckpt_journal ckpt; /* ckpt.f NULL: no checkpoint */
  cli_bar bar;
} results;

/* Store point k's rows (taken over), append them to the checkpoint, advance
 * the bar. A checkpoint that cannot be written is an error (a resume would
 * silently redo the work otherwise). */
static bafu_status record(results *r, size_t k, char *text) {
  r->rows[k] = text;
  ++r->done;
  if (r->ckpt.f) {
    bafu_status st = ckpt_sweep_append(&r->ckpt, k, text);
    if (st) return st;
  }
  char label[32];
  snprintf(label, sizeof label, "point %zu", k);
  cli_bar_update(&r->bar, r->done, label);
  return BAFU_OK;
}

/* Point k failed with `why`: its place in the table says so (not written to
 * the checkpoint: a resume tries it again). */
static bafu_status record_failure(results *r, size_t k, const char *why) {
  char line[800];
  for (size_t i = 0; why[i] && i < 600; ++i) /* one comment line, whatever the message holds */
    if (why[i] == '\n' || why[i] == '\r') ((char *)why)[i] = ' ';
  snprintf(line, sizeof line, "# point %zu failed: %.600s\n", k, why);
  char *text = strdup(line);
  if (!text) return bafu_error(BAFU_ENOMEM, "out of memory");
  if (!r->failed++) snprintf(r->first_failure, sizeof r->first_failure, "%s", why);
  r->rows[k] = text;
  ++r->done;
  char label[32];
  snprintf(label, sizeof label, "point %zu", k);
  cli_bar_update(&r->bar, r->done, label);
  return BAFU_OK;
}

static int rows_check(size_t k, const char *text, void *ctx) { return bafu_sweep_check_rows(ctx, k, text); }

static void results_free(results *r) {
  if (!r->rows) return;
  for (size_t k = 0; k < r->n; ++k) free(r->rows[k]);
  free(r->rows);
  r->rows = NULL;
}

/* Serial: every point not yet done, in order. Returns the status of the
 * first failure that stops the grid (I/O, memory). */
static bafu_status run_serial(const bafu_sweep *s, int threads, results *r) {
  for (size_t k = 0; k < r->n; ++k) {
    if (r->rows[k]) continue; /* from the checkpoint */
    size_t len;
    char *text;
    bafu_status st = bafu_sweep_run_point(s, k, threads, &text, &len);
    if (st == BAFU_ENOMEM) return st;
    st = st ? record_failure(r, k, bafu_last_error()) : record(r, k, text);
    if (st) return st;
  }
  return BAFU_OK;
}

#ifdef BAFU_HAVE_MPI
/* Message from a worker: int64 point (-1: none yet), int64 status, then the
 * rows (status 0) or the error message (status != 0), without the NUL. */
static int send_result(int64_t point, int64_t status, const char *text, size_t len) {
  char *msg = malloc(16 + len);
  if (!msg) return 1;
  memcpy(msg, &point, 8);
  memcpy(msg + 8, &status, 8);
  if (len) memcpy(msg + 16, text, len);
  const int rc = MPI_Send(msg, (int)(16 + len), MPI_CHAR, 0, TAG_RESULT, MPI_COMM_WORLD);
  free(msg);
  return rc != MPI_SUCCESS;
}

static void worker(const bafu_sweep *s, int threads) {
  int64_t point = -1, status = 0;
  char *text = NULL;
  size_t len = 0;
  for (;;) {
    if (send_result(point, status, text, len)) break;
    free(text);
    text = NULL;
    len = 0;
    int64_t next;
    MPI_Recv(&next, 1, MPI_INT64_T, 0, TAG_POINT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (next < 0) break;
    point = next;
    status = bafu_sweep_run_point(s, (size_t)next, threads, &text, &len);
    if (status) {
      text = strdup(bafu_last_error());
      len = text ? strlen(text) : 0;
    }
  }
  free(text);
}

/* Rank 0: hand out points to ranks 1..size-1 until done or an error. */
static bafu_status coordinate(int size, results *r) {
  size_t next = 0;
  int active = size - 1;
  bafu_status first = BAFU_OK;
  char message[1024] = "";
  const struct timespec nap = {0, 2000000}; /* 2 ms between polls: no busy wait */
  while (active > 0) {
    int flag = 0;
    MPI_Status ms;
    MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &flag, &ms);
    if (!flag) {
      nanosleep(&nap, NULL);
      continue;
    }
    int count;
    MPI_Get_count(&ms, MPI_CHAR, &count);
    char *msg = malloc((size_t)count + 1);
    if (!msg) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Recv(msg, count, MPI_CHAR, ms.MPI_SOURCE, TAG_RESULT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    int64_t point, status;
    memcpy(&point, msg, 8);
    memcpy(&status, msg + 8, 8);
    const size_t len = (size_t)count - 16;
    if (status && point >= 0 && (size_t)point < r->n && status != BAFU_ENOMEM) {
      char why[600];
      snprintf(why, sizeof why, "%.*s", (int)len, msg + 16);
      const bafu_status st = record_failure(r, (size_t)point, why);
      if (st && !first) {
        first = st;
        snprintf(message, sizeof message, "%s", bafu_last_error());
      }
    } else if (status && !first) {
      first = (bafu_status)status;
      snprintf(message, sizeof message, "%.*s", (int)len, msg + 16);
    } else if (!status && point >= 0 && (size_t)point < r->n) {
      memmove(msg, msg + 16, len);
      msg[len] = '\0';
      const bafu_status st = record(r, (size_t)point, msg);
      msg = NULL;
      if (st && !first) {
        first = st;
        snprintf(message, sizeof message, "%s", bafu_last_error());
      }
    }
    free(msg);
    int64_t give = -1;
    while (next < r->n && r->rows[next]) ++next; /* done before a resume */
    if (!first && next < r->n) give = (int64_t)next++;
    MPI_Send(&give, 1, MPI_INT64_T, ms.MPI_SOURCE, TAG_POINT, MPI_COMM_WORLD);
    if (give < 0) --active;
  }
  if (first) return bafu_error(first, "%s", message);
  return BAFU_OK;
}
#endif

int cmd_sweep(int argc, char **argv) {
  const char *cmd = "sweep";
  int rank = 0;
#ifdef BAFU_HAVE_MPI
  int size = 1;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  bafu_table_catch_crash_signals(); /* Open MPI took them: its handlers run after ours */
  if (rank != 0) { /* only rank 0 reports usage errors */
    FILE *null = freopen("/dev/null", "w", stderr);
    (void)null;
  }
#endif
  const char *out = NULL, *ckpt_path = NULL, *columns = NULL;
  char *ckpt_own = NULL; /* the default checkpoint path, OUT.ckpt */
  int threads = 1, resume = 0, quiet = 0, failed_ok = 0;
  cli_opt opts[] = {
      {"--out", OPT_STRING, &out, "PATH", "output table, written atomically [stdout]", NULL, 0},
      {"--checkpoint", OPT_STRING, &ckpt_path, "PATH", "finished points appended here [OUT.ckpt with --out; none]", NULL, 0},
      {"--resume", OPT_FLAG, &resume, NULL, "skip the points already in the checkpoint", NULL, 0},
      {"--quiet", OPT_FLAG, &quiet, NULL, "no progress bar (shown on a terminal for runs over 2 s)", NULL, 0},
      {"--threads", OPT_INT, &threads, "T", "draws of a point run in parallel (output does not depend on T) [1]",
       NULL, 0},
      {"--columns", OPT_STRING, &columns, "LIST", "value columns, comma-separated, in place of the grid's [the grid's]",
       NULL, 0},
      {"--failed-ok", OPT_FLAG, &failed_ok, NULL,
       "points that fail (a training run that diverges) are marked in the table as always, and the exit status is 0",
       NULL, 0},
      {0},
  };
  const char *pos[1];
  int npos = 0;
  /* the keys and columns from the parameter table, wrapped at 80 columns */
  char text[8192], usage[8192];
  size_t used = (size_t)snprintf(usage, sizeof usage, "%s", usage_head), col = strlen("bafu mc:"), tl = 0;
  bafu_sweep_axes_text(text, sizeof text);
  tl = strlen(text);
  tl += (size_t)snprintf(text + tl, sizeof text - tl, "%s ", usage_train);
  bafu_sweep_train_axes_text(text + tl, sizeof text - tl);
  tl = strlen(text);
  tl += (size_t)snprintf(text + tl, sizeof text - tl, "%s ", usage_tail);
  bafu_sweep_columns_text(0, text + tl, sizeof text - tl);
  tl = strlen(text);
  tl += (size_t)snprintf(text + tl, sizeof text - tl, "; training: ");
  bafu_sweep_columns_text(1, text + tl, sizeof text - tl);
  used = wrap(usage, used, sizeof usage, text, &col);
  if (used < sizeof usage) snprintf(usage + used, sizeof usage - used, "%s", usage_end);
  int rc = cli_parse(cmd, usage, opts, argc, argv, 1, pos, 1, &npos);
  const int help = rc == 1; /* --help printed: exit 0 after MPI_Finalize */
  if (rc == 0 && npos != 1) {
    fprintf(stderr, "bafu sweep: FILE: expected one grid file (see bafu sweep --help)\n");
    rc = 2;
  }
  bafu_sweep *s = NULL;
  bafu_table *t = NULL;
  results r = {0};
  /* rank 0: the files of the run must be distinct, and a checkpoint that is
     not this run's is never replaced */
  if (rc == 0 && rank == 0) {
    if (cli_checkpoint_path(cmd, ckpt_path, out, &ckpt_path, &ckpt_own)) {
      rc = 1;
    } else if (resume && !ckpt_path) {
      fprintf(stderr, "bafu sweep: --resume: needs --out or --checkpoint\n");
      rc = 2;
    } else {
      const cli_file files[] = {{"FILE", pos[0]}, {"--out", out}, {"--checkpoint", ckpt_path}};
      rc = cli_distinct_files(cmd, files, 3);
      if (!rc && !resume) rc = cli_checkpoint_free(cmd, ckpt_path == ckpt_own ? "--out" : "--checkpoint", ckpt_path);
      if (!rc && ckpt_path && bafu_path_writable(ckpt_path)) {
        cli_fail(cmd, "--checkpoint");
        rc = 2;
      }
    }
  }
#ifdef BAFU_HAVE_MPI
  MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
#endif
  bafu_status rs;
  if (rc == 0 && (rs = bafu_sweep_read_columns(pos[0], columns, &s))) {
    /* a grid file's messages speak its keys; only --columns is an option here */
    const char *m = bafu_last_error();
    fprintf(stderr, "bafu sweep: %s\n", strncmp(m, "columns: ", 9) == 0 ? cli_error() : m);
    rc = rs == BAFU_ENOMEM ? 1 : 2; /* an unreadable or bad grid file is a bad request */
  }
  /* rank 0 opens the output before any work so a bad path fails at once */
  if (rc == 0 && rank == 0 && bafu_table_open(out, &t)) {
    cli_fail(cmd, "--out");
    rc = 2;
  }
#ifdef BAFU_HAVE_MPI
  MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD); /* every rank read the same file */
#endif
  if (rc) goto done;
  openblas_set_num_threads(1); /* the same arithmetic in every process */
  r.s = s;
  r.n = bafu_sweep_npoints(s);
  if (rank == 0 && !(r.rows = calloc(r.n, sizeof *r.rows))) {
    fprintf(stderr, "bafu sweep: out of memory\n");
    rc = 1;
  }
  if (rank == 0 && !rc && ckpt_path) {
    char *grid = bafu_sweep_fingerprint(s); /* exact: a grid that differs anywhere is another grid */
    bafu_status cs = grid ? BAFU_OK : bafu_error(BAFU_ENOMEM, "out of memory");
    struct stat sb;
    if (!cs)
      cs = resume && lstat(ckpt_path, &sb) == 0
               ? ckpt_sweep_load(ckpt_path, grid, r.n, rows_check, (void *)s, r.rows, &r.done, &r.ckpt)
               : ckpt_sweep_create(ckpt_path, grid, &r.ckpt);
    free(grid);
    if (cs) {
      cli_fail(cmd, NULL);
      rc = cs == BAFU_ENOMEM ? 1 : 2; /* before any work */
      if (r.ckpt.f) fclose(r.ckpt.f);
      r.ckpt.f = NULL;
      ckpt_path = NULL; /* not ours to remove */
    }
  }
  if (rank == 0 && !rc) cli_bar_start(&r.bar, r.n, r.done, "points", quiet);
  bafu_status st = BAFU_OK;
#ifdef BAFU_HAVE_MPI
  MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (rc) goto done;
  if (size > 1) {
    if (rank == 0) {
      if (!quiet) fprintf(stderr, "bafu sweep: %zu points on %d worker ranks\n", r.n, size - 1);
      st = coordinate(size, &r);
    } else {
      worker(s, threads);
    }
  } else
#endif
  {
    if (!rc) st = run_serial(s, threads, &r);
  }
  if (rank == 0 && !rc) {
    if (st) {
      cli_fail(cmd, NULL);
      rc = cli_exit_status(st);
    } else {
      char desc[2048];
      bafu_sweep_describe(s, desc, sizeof desc);
      bafu_table_meta(t, "bafu sweep: Monte Carlo and infinite-width theory over a grid (theory/engine.md, "
                         "theory/moments.md)");
      bafu_table_provenance(t, argc + 1, argv - 1);
      bafu_table_meta(t, "grid: %s", desc);
      const char *hdr = bafu_sweep_header(s), *axes_end = strstr(hdr, bafu_sweep_task(s) ? " step epoch final layer " : " layer ");
      /* "point <axes> layer ..." */
      bafu_table_meta(t, "points: Cartesian product, axis order %.*s (last fastest)",
                      axes_end ? (int)(axes_end - hdr - 6) : 0, hdr + 6);
      if (bafu_sweep_task(s))
        bafu_table_meta(t, "columns: those of bafu train's table at each logged step (theory/engine.md 6); one blank "
                           "line between points");
      else if (!strstr(hdr, " signal ") && !strstr(hdr, "identity_residual_mc")) /* the words of earlier tables */
        bafu_table_meta(t, "columns: <q>_mc = mean over draws, <q>_mc_se = its standard error, <q>_theory = "
                           "bafu theory's prediction (batch 1, probe)");
      else
        bafu_table_meta(t, "columns: <q>_mc = mean over draws (bafu mc's <q>), <q>_mc_se = its standard error, "
                           "identity_residual_mc = the largest over draws, <q>_theory = bafu theory's prediction for "
                           "the point's network (one input)");
      FILE *f = bafu_table_stream(t);
      fprintf(f, "%s\n", bafu_sweep_header(s));
      for (size_t k = 0, any = 0; k < r.n; ++k) /* one blank line between points: gnuplot breaks its lines there */
        if (r.rows[k] && *r.rows[k]) {
          if (any++) fputc('\n', f);
          fputs(r.rows[k], f);
        }
      if (r.failed)
        bafu_table_meta(t, "failed points: %zu of %zu (each marked by a '# point K failed' line in its place)",
                        r.failed, r.n);
      bafu_status cs = bafu_table_commit(t);
      t = NULL;
      if (cs) {
        cli_fail(cmd, "--out");
        rc = 1;
      } else {
        if (r.ckpt.f) { /* the table is complete: this run's checkpoint has served */
          fclose(r.ckpt.f);
          r.ckpt.f = NULL;
          remove(ckpt_path);
        }
        if (r.failed) {
          if (!quiet || !failed_ok)
            fprintf(stderr, "bafu sweep: %zu of %zu points failed (marked in the table); the first: %s\n", r.failed,
                    r.n, r.first_failure);
          if (!failed_ok) rc = 1;
        }
      }
    }
  }
done:
  if (t) bafu_table_abort(t);
  if (r.ckpt.f) fclose(r.ckpt.f); /* kept: a later --resume continues from it */
  free(ckpt_own);
  results_free(&r);
  bafu_sweep_free(s);
#ifdef BAFU_HAVE_MPI
  MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Finalize();
#endif
  return help ? 0 : rc;
}
