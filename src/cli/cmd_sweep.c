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

#include "bafu/sweep.h"
#include "bafu/table.h"
#include "cli.h"
#include "progress.h"

#ifdef BAFU_HAVE_MPI
#include <mpi.h>
#define MPI_NOTE "This bafu is built with MPI: yes."
#else
#define MPI_NOTE "This bafu is built with MPI: no (rebuild with Open MPI installed to distribute points)."
#endif

void openblas_set_num_threads(int num_threads); /* OpenBLAS extension */

static const char usage[] =
    "Usage: bafu sweep FILE [--out PATH] [--threads T] [--resume] [--checkpoint PATH] [--quiet]\n"
    "       mpirun -n P bafu sweep FILE --out PATH\n"
    "\n"
    "Run a grid of networks described in FILE through `bafu mc` and `bafu theory`\n"
    "side by side and write one table with a row per grid point and layer. FILE has\n"
    "one 'key = value [value ...]' per line ('#' comments). Grid axes (defaults of\n"
    "bafu mc): arch (mlp resnet), width, depth, act, sigma_w2, branch_scale,\n"
    "branch_exponent, init (gaussian orthogonal); run settings (one value): seeds [8],\n"
    "seed [1], step [1e-5], sampler (stored conditional) [stored: the weights are\n"
    "drawn; conditional: bafu mc --conditional, exact and much faster at batch 1, Gaussian\n"
    "init only]. Points are the Cartesian product in that axis order, the\n"
    "last axis (init) varying fastest; every point uses the same seed, batch 1, the\n"
    "probe signal and unit learning rates; branch_* do not affect MLP points.\n"
    "Columns: point arch width depth act sigma_w2 branch_scale branch_exponent init\n"
    "layer, then cos_theta, feature_speed, loss_decay as _mc, _mc_se, _theory.\n"
    "BLAS runs on one thread; --threads runs each point's draws in parallel. Under\n"
    "mpirun, rank 0 distributes points dynamically to the other ranks and writes the\n"
    "table; it is byte-identical to the serial table except for the '#' date line.\n"
    "Checkpoint: the rows of every finished point are appended to PATH.ckpt (with\n"
    "--out PATH; or --checkpoint) and the file is removed once the table is written.\n"
    "After an interruption, the same command with --resume runs only the missing\n"
    "points; the table is byte-identical to an uninterrupted run's. A checkpoint of\n"
    "another grid or bafu version is refused.\n"
    MPI_NOTE "\n"
    "\n"
    "Example FILE:\n"
    "  arch = mlp resnet\n"
    "  width = 256 512\n"
    "  depth = 8 16\n"
    "  branch_scale = 0.5 1 2\n"
    "  act = relu tanh\n"
    "  seeds = 8";

enum { TAG_RESULT = 1, TAG_POINT = 2 };

/* Results of every point, in grid order, and the checkpoint they are
 * appended to as they arrive. */
typedef struct {
  char **rows;
  size_t n, done;
  FILE *ckpt; /* NULL: no checkpoint */
  cli_bar bar;
} results;

/* The checkpoint (theory: none; a cache of finished points). Text format:
 *   bafu sweep checkpoint 1 <version>\n
 *   grid <bafu_sweep_describe>\n
 *   point K LEN\n<LEN bytes: the point's rows>          (repeated)
 * Records are appended and flushed one at a time, so an interruption leaves
 * at most one incomplete record at the end: resume drops it. */
#define CKPT_MAGIC "bafu sweep checkpoint 1 " BAFU_VERSION

/* Store point k's rows (taken over), append them to the checkpoint, advance
 * the bar. A checkpoint that cannot be written is an error (a resume would
 * silently redo the work otherwise). */
static bafu_status record(results *r, size_t k, char *text) {
  r->rows[k] = text;
  ++r->done;
  if (r->ckpt) {
    const size_t len = strlen(text);
    if (fprintf(r->ckpt, "point %zu %zu\n", k, len) < 0 || fwrite(text, 1, len, r->ckpt) != len ||
        fflush(r->ckpt) != 0)
      return bafu_error(BAFU_EIO, "--checkpoint: cannot write: %s", strerror(errno));
  }
  char label[32];
  snprintf(label, sizeof label, "point %zu", k);
  cli_bar_update(&r->bar, r->done, label);
  return BAFU_OK;
}

/* Open the checkpoint at path for grid `grid`. resume: load the points it
 * holds into r (a missing file is an empty checkpoint), drop an incomplete
 * last record and append after the valid ones; otherwise start a new one. */
static bafu_status open_checkpoint(const char *path, const char *grid, int resume, results *r) {
  if (resume) {
    FILE *f = fopen(path, "r+");
    if (f) {
      char *line = NULL;
      size_t cap = 0;
      long valid = 0;
      bafu_status st = BAFU_OK;
      ssize_t n = getline(&line, &cap, f);
      if (n <= 0 || strncmp(line, CKPT_MAGIC "\n", (size_t)n) != 0 || strlen(CKPT_MAGIC) + 1 != (size_t)n)
        st = bafu_error(BAFU_EPARSE, "--resume: '%s' is not a checkpoint of this bafu (" CKPT_MAGIC ")", path);
      else if ((n = getline(&line, &cap, f)) <= 0 || strncmp(line, "grid ", 5) != 0 ||
               (size_t)n != strlen(grid) + 6 || strncmp(line + 5, grid, strlen(grid)) != 0)
        st = bafu_error(BAFU_EINVAL, "--resume: '%s' holds another grid (remove it or drop --resume)", path);
      valid = ftell(f);
      while (!st && (n = getline(&line, &cap, f)) > 0) {
        size_t k, len;
        char tail;
        if (sscanf(line, "point %zu %zu%c", &k, &len, &tail) != 3 || tail != '\n' || k >= r->n || r->rows[k] ||
            len > ((size_t)1 << 30))
          break; /* an incomplete or damaged record: the rest is redone */
        char *text = malloc(len + 1);
        if (!text) {
          st = bafu_error(BAFU_ENOMEM, "--resume: out of memory");
          break;
        }
        if (fread(text, 1, len, f) != len) {
          free(text);
          break;
        }
        text[len] = '\0';
        r->rows[k] = text;
        ++r->done;
        valid = ftell(f);
      }
      free(line);
      if (!st && (fflush(f) || ftruncate(fileno(f), valid) || fseek(f, valid, SEEK_SET)))
        st = bafu_error(BAFU_EIO, "--checkpoint: cannot truncate '%s': %s", path, strerror(errno));
      if (st) {
        fclose(f);
        return st;
      }
      r->ckpt = f;
      return BAFU_OK;
    }
    if (errno != ENOENT) return bafu_error(BAFU_EIO, "--resume: cannot open '%s': %s", path, strerror(errno));
  }
  r->ckpt = fopen(path, "w");
  if (!r->ckpt) return bafu_error(BAFU_EIO, "--checkpoint: cannot create '%s': %s", path, strerror(errno));
  if (fprintf(r->ckpt, CKPT_MAGIC "\ngrid %s\n", grid) < 0 || fflush(r->ckpt))
    return bafu_error(BAFU_EIO, "--checkpoint: cannot write '%s': %s", path, strerror(errno));
  return BAFU_OK;
}

static void results_free(results *r) {
  if (!r->rows) return;
  for (size_t k = 0; k < r->n; ++k) free(r->rows[k]);
  free(r->rows);
  r->rows = NULL;
}

/* Serial: every point not yet done, in order. Returns the status of the
 * first failure. */
static bafu_status run_serial(const bafu_sweep *s, int threads, results *r) {
  for (size_t k = 0; k < r->n; ++k) {
    if (r->rows[k]) continue; /* from the checkpoint */
    size_t len;
    char *text;
    bafu_status st = bafu_sweep_run_point(s, k, threads, &text, &len);
    if (st || (st = record(r, k, text))) return st;
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
    if (status && !first) {
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
  if (rank != 0) { /* only rank 0 reports usage errors */
    FILE *null = freopen("/dev/null", "w", stderr);
    (void)null;
  }
#endif
  const char *out = NULL, *ckpt_path = NULL;
  char *ckpt_own = NULL; /* the default checkpoint path, OUT.ckpt */
  int threads = 1, resume = 0, quiet = 0;
  cli_opt opts[] = {
      {"--out", OPT_STRING, &out, "PATH", "output table, written atomically [stdout]", NULL, 0},
      {"--checkpoint", OPT_STRING, &ckpt_path, "PATH", "finished points appended here [OUT.ckpt with --out; none]", NULL, 0},
      {"--resume", OPT_FLAG, &resume, NULL, "skip the points already in the checkpoint", NULL, 0},
      {"--quiet", OPT_FLAG, &quiet, NULL, "no progress bar (shown on a terminal for runs over 2 s)", NULL, 0},
      {"--threads", OPT_INT, &threads, "T", "draws of a point run in parallel (output does not depend on T) [1]",
       NULL, 0},
      {0},
  };
  const char *pos[1];
  int npos = 0;
  int rc = cli_parse(cmd, usage, opts, argc, argv, 1, pos, 1, &npos);
  const int help = rc == 1; /* --help printed: exit 0 after MPI_Finalize */
  if (rc == 0 && npos != 1) {
    fprintf(stderr, "bafu sweep: FILE: expected one grid file (see bafu sweep --help)\n");
    rc = 2;
  }
  bafu_sweep *s = NULL;
  bafu_table *t = NULL;
  results r = {0};
  if (rc == 0 && bafu_sweep_read(pos[0], &s)) {
    fprintf(stderr, "bafu sweep: %s\n", bafu_last_error());
    rc = 2;
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
  r.n = bafu_sweep_npoints(s);
  if (rank == 0 && !(r.rows = calloc(r.n, sizeof *r.rows))) {
    fprintf(stderr, "bafu sweep: out of memory\n");
    rc = 1;
  }
  if (rank == 0 && !rc) {
    if (cli_checkpoint_path(cmd, ckpt_path, out, &ckpt_path, &ckpt_own)) {
      rc = 1;
    } else if (resume && !ckpt_path) {
      fprintf(stderr, "bafu sweep: --resume: needs --out or --checkpoint\n");
      rc = 2;
    } else if (ckpt_path) {
      char *grid = malloc(1 << 16);
      bafu_status cs = grid ? BAFU_OK : bafu_error(BAFU_ENOMEM, "out of memory");
      if (grid) bafu_sweep_describe(s, grid, 1 << 16);
      if (!cs) cs = open_checkpoint(ckpt_path, grid, resume, &r);
      free(grid);
      if (cs) {
        cli_fail(cmd, NULL);
        rc = cs == BAFU_EIO ? 1 : 2;
      }
    }
    cli_bar_start(&r.bar, r.n, r.done, "points", quiet);
  }
  bafu_status st = BAFU_OK;
#ifdef BAFU_HAVE_MPI
  MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (rc) goto done;
  if (size > 1) {
    if (rank == 0) {
      fprintf(stderr, "bafu sweep: %zu points on %d worker ranks\n", r.n, size - 1);
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
      rc = st == BAFU_EINVAL || st == BAFU_ELIMIT ? 2 : 1;
    } else {
      char desc[2048];
      bafu_sweep_describe(s, desc, sizeof desc);
      bafu_table_meta(t, "bafu sweep: Monte Carlo and infinite-width theory over a grid (theory/engine.md, "
                         "theory/moments.md)");
      bafu_table_provenance(t, argc + 1, argv - 1);
      bafu_table_meta(t, "grid: %s", desc);
      bafu_table_meta(t, "points: Cartesian product, axis order arch width depth act sigma_w2 branch_scale "
                         "branch_exponent init (last fastest)");
      bafu_table_meta(t, "columns: <q>_mc = mean over draws, <q>_mc_se = its standard error, <q>_theory = "
                         "bafu theory's prediction (batch 1, probe)");
      FILE *f = bafu_table_stream(t);
      fprintf(f, "%s\n", bafu_sweep_header());
      for (size_t k = 0; k < r.n; ++k) fputs(r.rows[k] ? r.rows[k] : "", f);
      bafu_status cs = bafu_table_commit(t);
      t = NULL;
      if (cs) {
        cli_fail(cmd, "--out");
        rc = 1;
      } else if (r.ckpt) { /* the table is complete: the checkpoint has served */
        fclose(r.ckpt);
        r.ckpt = NULL;
        remove(ckpt_path);
      }
    }
  }
done:
  if (t) bafu_table_abort(t);
  if (r.ckpt) fclose(r.ckpt); /* kept: a later --resume continues from it */
  free(ckpt_own);
  results_free(&r);
  bafu_sweep_free(s);
#ifdef BAFU_HAVE_MPI
  MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Finalize();
#endif
  return help ? 0 : rc;
}
