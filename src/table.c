/* table.c: data tables and other output files, written safely (bafu/table.h).
 *
 * The rules (README "Robustness"):
 *  - the path is resolved first: a symbolic link is followed (to any depth)
 *    and its target is what gets written;
 *  - a regular file (or a new one) is written to a temporary file in the
 *    target's directory and renamed over it when complete, so a reader sees
 *    the old file or the new one, never a half; the new file keeps the old
 *    one's mode (and, best effort, owner), a new file gets 0666 minus the umask;
 *  - anything else (a device such as /dev/null, a FIFO) is written through,
 *    never replaced; a directory is refused;
 *  - the temporary name is short, "PREFIX.tmp.PID.XXXXXX" with PREFIX the
 *    target's name cut to 64 bytes, so every name the file system accepts
 *    works; it is created with O_EXCL (never over an existing file) and locked
 *    (flock) while its run lives; a temporary left by a run killed outright
 *    (SIGKILL, power loss) is never deleted by a later run, since bafu cannot
 *    prove that a file of that name is its own;
 *  - a read-only file is refused (also for root), and so is a name longer
 *    than its directory allows, when the table is opened, before any work;
 *  - a kernel's magic link (/dev/stdout to a pipe) is written through;
 *  - every catchable signal whose default action ends the process removes the
 *    temporaries not yet committed, then takes its default course;
 *  - a table's header row is its first line (doc/tables.md): the gate below
 *    moves the '#' lines written before it to just after it. */
#define _GNU_SOURCE /* fopencookie; fsync, fileno, flock, lstat, readlink, fchown */
#include "bafu/table.h"
#include "bafu/version.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The gate between the rows and the file. It watches the data lines (not the
 * '#' lines) for a non-finite number, the last defence of "no table holds nan
 * or inf" behind the checks of each command: a table that held one fails at
 * commit and, as a file, is not renamed into place. And it puts each series'
 * header row first: the '#' and blank lines that come before the first
 * non-comment line of the file, or of a series (after two blank lines), are
 * held back and written right after that line, in their order; every other
 * byte passes through in order. Held lines that no header follows are written
 * when the gate closes. */
typedef struct {
  FILE *to;          /* the file or stdout */
  int line_start, comment, blank;
  int off;           /* not a table (bafu_file_open): pass the bytes, check nothing */
  int hold;          /* before a series' header row: '#' and blank lines are held */
  int kept;          /* the current line is held */
  int header;        /* the current line is the header row that ends a hold */
  int blanks;        /* consecutive blank lines just written */
  int nomem;         /* the held lines could not be stored */
  char *held;        /* the held lines */
  size_t held_len, held_cap, held_lines;
  char tok[16];      /* the current token, lower-cased, cut to 15 bytes */
  size_t toklen, line, bad_line;
} gate;

struct bafu_table {
  FILE *f;      /* the file (or stdout) */
  FILE *g;      /* the gate: the stream handed out */
  gate gt;
  char *path;   /* the file written (symbolic links resolved); NULL for stdout */
  char *tmp;    /* the temporary file; NULL when writing through */
  int replace;  /* 1: an existing regular file is replaced: give the new one its mode and owner */
  struct stat old;
};

/* ---- temporaries and signals ------------------------------------------ */

#define PENDING_MAX 64
static char *volatile pending[PENDING_MAX];
/* 1 while a thread creates a temporary and records it (create_tmp, signals
 * held in that thread); a handler running meanwhile in another thread (one of
 * OpenBLAS's) waits for it, at most 2 s, so that it knows the new file. */
static _Atomic int creating;

static void unlink_pending(void) {
  for (int i = 0; i < 20000 && atomic_load(&creating); ++i) {
    const struct timespec ns = {0, 100000};
    nanosleep(&ns, NULL);
  }
  for (int i = 0; i < PENDING_MAX; ++i)
    if (pending[i]) unlink(pending[i]);
}

static void on_signal(int sig) {
  const int saved = errno;
  unlink_pending();
  signal(sig, SIG_DFL);
  raise(sig); /* delivered, with its default action, once the handler returns */
  errno = saved;
}

/* Every signal whose default action terminates the process (with or without a
 * core), except the uncatchable SIGKILL. Signals the process ignores or
 * handles already (nohup, MPI, sanitizers) are left alone. */
static void install_handlers(void) {
  static const int sigs[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGILL,    SIGTRAP, SIGABRT, SIGBUS,  SIGFPE,
                             SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE,   SIGALRM, SIGTERM, SIGXCPU, SIGXFSZ,
                             SIGVTALRM, SIGPROF, SIGSYS,
#ifdef SIGSTKFLT
                             SIGSTKFLT,
#endif
#ifdef SIGPOLL
                             SIGPOLL,
#endif
#ifdef SIGPWR
                             SIGPWR,
#endif
  };
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigfillset(&sa.sa_mask); /* one handler at a time */
  const size_t n = sizeof sigs / sizeof sigs[0];
  for (size_t i = 0; i < n + 64; ++i) {
    int s = i < n ? sigs[i] : 0;
#ifdef SIGRTMIN
    if (i >= n) s = SIGRTMIN + (int)(i - n);
    if (i >= n && s > SIGRTMAX) break;
#else
    if (i >= n) break;
#endif
    struct sigaction old;
    if (sigaction(s, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL)
      sigaction(s, &sa, NULL);
  }
}

/* Crash signals whose handlers a runtime (MPI) installed before any table:
 * bafu's cleanup runs first, then the runtime's own handler, then the default
 * action. */
static const int crash_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
#define N_CRASH (sizeof crash_sigs / sizeof crash_sigs[0])
static struct sigaction crash_old[N_CRASH];

static void on_crash(int sig, siginfo_t *info, void *ctx) {
  unlink_pending();
  for (size_t i = 0; i < N_CRASH; ++i)
    if (crash_sigs[i] == sig) {
      const struct sigaction *o = &crash_old[i];
      if (o->sa_flags & SA_SIGINFO)
        o->sa_sigaction(sig, info, ctx);
      else if (o->sa_handler != SIG_DFL && o->sa_handler != SIG_IGN)
        o->sa_handler(sig);
    }
  signal(sig, SIG_DFL);
  raise(sig);
}

void bafu_table_catch_crash_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_crash;
  sa.sa_flags = SA_SIGINFO;
  sigfillset(&sa.sa_mask);
  for (size_t i = 0; i < N_CRASH; ++i) {
    struct sigaction old;
    if (sigaction(crash_sigs[i], NULL, &old) != 0 || (old.sa_flags & SA_SIGINFO && old.sa_sigaction == on_crash))
      continue; /* already ours */
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN) continue;
    crash_old[i] = old;
    sigaction(crash_sigs[i], &sa, NULL);
  }
}

void bafu_table_catch_signals(void) {
  static int installed;
  if (!installed) {
    install_handlers();
    installed = 1;
  }
}

static void pending_add(char *tmp) {
  for (int i = 0; i < PENDING_MAX; ++i)
    if (!pending[i]) {
      pending[i] = tmp;
      return;
    }
}

static void pending_remove(const char *tmp) {
  for (int i = 0; i < PENDING_MAX; ++i)
    if (pending[i] == tmp) pending[i] = NULL;
}

/* ---- paths -------------------------------------------------------------- */

static char *dup_str(const char *s) {
  const size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* The directory part of path ("." if none), malloc'd. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return dup_str(".");
  const size_t n = slash == path ? 1 : (size_t)(slash - path);
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, path, n);
    d[n] = '\0';
  }
  return d;
}

bafu_status bafu_path_resolve(const char *path, char **out) {
  *out = NULL;
  char *cur = dup_str(path);
  if (!cur) return bafu_error(BAFU_ENOMEM, "out of memory");
  for (int hops = 0;; ++hops) {
    struct stat sb;
    if (lstat(cur, &sb) != 0 || !S_ISLNK(sb.st_mode)) break; /* not a link (or not there): the target */
    if (hops == 40) {
      bafu_status st = bafu_error(BAFU_EIO, "cannot write '%s': too many levels of symbolic links", path);
      free(cur);
      return st;
    }
    char link[PATH_MAX];
    const ssize_t n = readlink(cur, link, sizeof link - 1);
    if (n < 0) {
      bafu_status st = bafu_error(BAFU_EIO, "cannot read the link '%s': %s", cur, strerror(errno));
      free(cur);
      return st;
    }
    link[n] = '\0';
    char *next;
    if (link[0] == '/') {
      next = dup_str(link);
    } else { /* relative to the link's own directory */
      char *d = dir_of(cur);
      next = d ? malloc(strlen(d) + strlen(link) + 2) : NULL;
      if (next) sprintf(next, "%s/%s", d, link);
      free(d);
    }
    if (!next) {
      free(cur);
      return bafu_error(BAFU_ENOMEM, "out of memory");
    }
    /* A kernel's "magic" link (/proc/self/fd/1 -> "pipe:[123]") names no
     * path, yet opens: the link itself is the file. A link whose target is
     * simply missing (dangling) does not open and is followed. */
    struct stat tb;
    if (lstat(next, &tb) != 0 && stat(cur, &tb) == 0) {
      free(next);
      break;
    }
    free(cur);
    cur = next;
  }
  *out = cur;
  return BAFU_OK;
}

/* The name part of path. */
static const char *base_of(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

#define PREFIX_MAX 64

/* "DIR/" + the target's name cut to PREFIX_MAX bytes + ".tmp.", malloc'd. */
static char *tmp_stem(const char *target) {
  const char *slash = strrchr(target, '/');
  const size_t dlen = slash ? (size_t)(slash - target) + 1 : 0;
  const char *base = base_of(target);
  size_t blen = strlen(base);
  if (blen > PREFIX_MAX) blen = PREFIX_MAX;
  char *s = malloc(dlen + blen + 8);
  if (!s) return NULL;
  memcpy(s, target, dlen);
  memcpy(s + dlen, base, blen);
  memcpy(s + dlen + blen, ".tmp.", 6);
  return s;
}

/* Whether the name part of path is longer than its directory allows. */
static int name_too_long(const char *path) {
  char *dir = dir_of(path);
  if (!dir) return 0;
  errno = 0;
  const long max = pathconf(dir, _PC_NAME_MAX);
  free(dir);
  return max > 0 && strlen(base_of(path)) > (size_t)max;
}

/* Create STEM.PID.XXXXXX (O_EXCL), locked; mode 0600 when it will replace a
 * file (given the old mode at commit), else 0666 and the umask. */
static int create_tmp(const char *stem, int replace, char **out) {
  static unsigned counter;
  bafu_table_catch_signals(); /* the handlers are in place before any temporary exists */
  const size_t len = strlen(stem) + 32;
  char *name = malloc(len);
  if (!name) {
    errno = ENOMEM;
    return -1;
  }
  static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid() << 32 ^ (uint64_t)ts.tv_sec;
  for (int attempt = 0; attempt < 100; ++attempt) {
    x += 0x9e3779b97f4a7c15ULL * ++counter;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    char suffix[7];
    for (int i = 0; i < 6; ++i, z >>= 6) suffix[i] = digits[z % 62];
    suffix[6] = '\0';
    snprintf(name, len, "%s%ld.%s", stem, (long)getpid(), suffix);
    /* the file and its entry among the temporaries come into being together:
       no signal between them can leave the file behind (held in this thread;
       a handler in another thread waits for `creating`) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    atomic_store(&creating, 1);
    const int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, replace ? 0600 : 0666);
    if (fd >= 0) pending_add(name);
    const int saved = errno;
    atomic_store(&creating, 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    if (fd >= 0) {
      flock(fd, LOCK_EX | LOCK_NB); /* held while this process lives: marks the file as in use */
      *out = name;
      return fd;
    }
    if (errno != EEXIST) break;
  }
  const int saved = errno;
  free(name);
  errno = saved;
  return -1;
}

bafu_status bafu_path_writable(const char *path) {
  if (!path || !*path) return bafu_error(BAFU_EIO, "empty output path");
  char *target;
  bafu_status st = bafu_path_resolve(path, &target);
  if (st) return st;
  struct stat sb;
  if (stat(target, &sb) == 0) {
    if (S_ISDIR(sb.st_mode))
      st = bafu_error(BAFU_EIO, "cannot write '%s': it is a directory", path);
    else if (S_ISREG(sb.st_mode) && (sb.st_mode & 0222) == 0)
      st = bafu_error(BAFU_EIO, "cannot write '%s': the file is read-only", path);
    else if (access(target, W_OK) != 0)
      st = bafu_error(BAFU_EIO, "cannot write '%s': %s", path, strerror(errno));
  } else if (errno != ENOENT) {
    st = bafu_error(BAFU_EIO, "cannot write '%s': %s", path, strerror(errno));
  } else {
    char *dir = dir_of(target);
    struct stat db;
    if (!dir)
      st = bafu_error(BAFU_ENOMEM, "out of memory");
    else if (stat(dir, &db) != 0 || !S_ISDIR(db.st_mode))
      st = bafu_error(BAFU_EIO, "cannot write '%s': no directory '%s'", path, dir);
    else if (access(dir, W_OK | X_OK) != 0)
      st = bafu_error(BAFU_EIO, "cannot write '%s': %s", path, strerror(errno));
    else if (name_too_long(target))
      st = bafu_error(BAFU_EIO, "cannot write '%s': %s", path, strerror(ENAMETOOLONG));
    free(dir);
  }
  free(target);
  return st;
}

/* ---- the gate ----------------------------------------------------------- */

static int non_finite_token(const char *t, size_t n) {
  if (n > 0 && (t[0] == '+' || t[0] == '-')) ++t, --n;
  return (n == 3 && memcmp(t, "nan", 3) == 0) || (n >= 4 && memcmp(t, "nan(", 4) == 0) ||
         (n == 3 && memcmp(t, "inf", 3) == 0) || (n == 8 && memcmp(t, "infinity", 8) == 0);
}

/* The line number, in the file as written, of the current line (a non-held
 * one): a header row that ends a hold goes before the lines held. */
static size_t out_line(const gate *g) { return g->line + 1 - (g->header ? g->held_lines : 0); }

/* Bytes of the current line to where the line goes: the held lines, or the
 * file. 0, or -1 on a write error. */
static int gate_emit(gate *g, const char *p, size_t n) {
  if (!n) return 0;
  if (!g->kept) return fwrite(p, 1, n, g->to) == n ? 0 : -1;
  if (g->held_len + n > g->held_cap) {
    size_t cap = g->held_cap ? 2 * g->held_cap : 4096;
    while (cap < g->held_len + n) cap *= 2;
    char *m = realloc(g->held, cap);
    if (!m) {
      g->nomem = 1;
      return -1;
    }
    g->held = m, g->held_cap = cap;
  }
  memcpy(g->held + g->held_len, p, n);
  g->held_len += n;
  return 0;
}

/* The held lines to the file (after a header row, or at the close). */
static int gate_release(gate *g) {
  const int ok = g->held_len == 0 || fwrite(g->held, 1, g->held_len, g->to) == g->held_len;
  g->held_len = g->held_lines = 0;
  return ok ? 0 : -1;
}

/* A line ended: a header row lets the held lines out after it; two blank
 * lines end a series, and the next one's header is awaited. */
static int gate_end_line(gate *g) {
  int rc = 0;
  if (g->kept) {
    ++g->held_lines;
  } else if (g->header) {
    rc = gate_release(g);
    g->hold = g->header = 0;
  }
  if (!g->hold) {
    g->blanks = g->blank ? g->blanks + 1 : 0;
    if (g->blanks == 2) g->hold = 1, g->blanks = 0;
  }
  ++g->line, g->line_start = 1, g->comment = g->blank = g->kept = 0;
  return rc;
}

static ssize_t gate_write(void *cookie, const char *buf, size_t size) {
  gate *g = cookie;
  if (g->off) return fwrite(buf, 1, size, g->to) == size && fflush(g->to) == 0 ? (ssize_t)size : -1;
  size_t from = 0; /* the start of the current line's bytes not yet emitted */
  for (size_t i = 0; i < size; ++i) {
    const char c = buf[i];
    if (g->line_start) {
      g->line_start = 0;
      g->comment = c == '#', g->blank = c == '\n';
      g->kept = g->hold && (g->comment || g->blank);
      g->header = g->hold && !g->kept;
    }
    const int sep = c == ' ' || c == '\t' || c == '\n';
    if (!g->comment && !sep && g->toklen < sizeof g->tok - 1)
      g->tok[g->toklen++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    else if (!g->comment && !sep)
      g->toklen = sizeof g->tok; /* too long to be one: stays marked long until the separator */
    if (sep) {
      if (!g->comment && !g->bad_line && g->toklen < sizeof g->tok && non_finite_token(g->tok, g->toklen))
        g->bad_line = out_line(g);
      g->toklen = 0;
    }
    if (c == '\n') {
      if (gate_emit(g, buf + from, i + 1 - from) || gate_end_line(g)) return -1;
      from = i + 1;
    }
  }
  /* the gate's own buffer holds the text; a flush of the gate (a row streamed
     to a terminal) flushes the file too */
  return gate_emit(g, buf + from, size - from) == 0 && fflush(g->to) == 0 ? (ssize_t)size : -1;
}

static int gate_close(void *cookie) {
  gate *g = cookie;
  if (g->toklen && !g->comment && !g->bad_line && g->toklen < sizeof g->tok && non_finite_token(g->tok, g->toklen))
    g->bad_line = out_line(g); /* a last token without a newline */
  /* held lines that no header row followed, in their order; after a header
     row cut short (no newline), on a line of their own */
  const int cut = g->header && !g->line_start && g->held_len && fputc('\n', g->to) == EOF;
  const int failed = cut || gate_release(g) != 0 || fflush(g->to) != 0;
  free(g->held);
  g->held = NULL;
  return failed ? -1 : 0;
}

static int gate_open(bafu_table *t, int checked) {
  t->gt = (gate){.to = t->f, .line_start = 1, .off = !checked, .hold = checked};
  static const cookie_io_functions_t io = {.write = gate_write, .close = gate_close};
  return (t->g = fopencookie(&t->gt, "w", io)) != NULL;
}

/* Close the gate (its bytes reach t->f): BAFU_OK, or the reason the table
 * cannot stand: a write error, or a non-finite number. */
static bafu_status gate_shut(bafu_table *t) {
  const int failed = fclose(t->g) != 0;
  const int e = errno;
  t->g = NULL;
  if (t->gt.nomem) return bafu_error(BAFU_ENOMEM, "out of memory");
  if (t->gt.bad_line && t->path)
    return bafu_error(BAFU_ENUMERIC, "'%s' would hold a non-finite number (nan or inf) at line %zu; it is not written",
                      t->path, t->gt.bad_line);
  if (t->gt.bad_line)
    return bafu_error(BAFU_ENUMERIC, "line %zu of the table on stdout holds a non-finite number (nan or inf)",
                      t->gt.bad_line);
  if (failed && t->path) return bafu_error(BAFU_EIO, "error writing '%s': %s", t->path, strerror(e));
  if (failed) return bafu_error(BAFU_EIO, "error writing to stdout: %s", strerror(e));
  return BAFU_OK;
}

/* ---- tables ------------------------------------------------------------- */

static void table_release(bafu_table *t) {
  if (t->tmp) pending_remove(t->tmp);
  free(t->path);
  free(t->tmp);
  free(t);
}

static bafu_status table_open(const char *path, int checked, bafu_table **out);

bafu_status bafu_table_open(const char *path, bafu_table **out) { return table_open(path, 1, out); }

bafu_status bafu_file_open(const char *path, bafu_table **out) { return table_open(path, 0, out); }

static bafu_status table_open(const char *path, int checked, bafu_table **out) {
  *out = NULL;
  bafu_table *t = calloc(1, sizeof *t);
  if (!t) return bafu_error(BAFU_ENOMEM, "out of memory");
  if (!path || strcmp(path, "-") == 0) {
    t->f = stdout;
    if (!gate_open(t, checked)) {
      free(t);
      return bafu_error(BAFU_ENOMEM, "out of memory");
    }
    *out = t;
    return BAFU_OK;
  }
  if (!*path) {
    free(t);
    return bafu_error(BAFU_EIO, "empty output path");
  }
  bafu_status st = bafu_path_resolve(path, &t->path);
  if (st) {
    free(t);
    return st;
  }
  struct stat sb;
  const int exists = stat(t->path, &sb) == 0;
  if (exists && S_ISDIR(sb.st_mode)) {
    st = bafu_error(BAFU_EIO, "cannot write '%s': it is a directory", path);
  } else if (exists && !S_ISREG(sb.st_mode)) { /* a device or FIFO: written through, never replaced */
    const int fd = open(t->path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || !(t->f = fdopen(fd, "w"))) {
      st = bafu_error(BAFU_EIO, "cannot write '%s': %s", path, strerror(errno));
      if (fd >= 0) close(fd);
    }
  } else if (exists && ((sb.st_mode & 0222) == 0 || access(t->path, W_OK) != 0)) {
    /* a read-only file is not ours to replace, even for root */
    st = bafu_error(BAFU_EIO, "cannot write '%s': %s", path,
                    (sb.st_mode & 0222) == 0 ? "the file is read-only" : strerror(errno));
  } else if (!exists && name_too_long(t->path)) { /* known now, not at the rename after the work */
    st = bafu_error(BAFU_EIO, "cannot write '%s': %s", path, strerror(ENAMETOOLONG));
  } else {
    t->replace = exists;
    t->old = sb;
    char *stem = tmp_stem(t->path);
    if (!stem) {
      st = bafu_error(BAFU_ENOMEM, "out of memory");
    } else {
      const int fd = create_tmp(stem, exists, &t->tmp);
      free(stem);
      if (fd < 0) {
        st = bafu_error(BAFU_EIO, "cannot write '%s': %s", path, strerror(errno));
      } else { /* t->tmp is among the temporaries (create_tmp) */
        if (!(t->f = fdopen(fd, "w"))) {
          st = bafu_error(BAFU_EIO, "cannot write '%s': %s", path, strerror(errno));
          close(fd);
          unlink(t->tmp);
        }
      }
    }
  }
  if (!st && !gate_open(t, checked)) {
    st = bafu_error(BAFU_ENOMEM, "out of memory");
    fclose(t->f);
    if (t->tmp) unlink(t->tmp);
  }
  if (st) {
    table_release(t);
    return st;
  }
  *out = t;
  return BAFU_OK;
}

FILE *bafu_table_stream(bafu_table *t) { return t->g; }

/* Text of a '#' line: control characters (a newline in a file name, say)
 * are written as \n, \r, \t or \xHH, so that the line stays one line. */
static void put_escaped(FILE *f, const char *s) {
  for (; *s; ++s) {
    const unsigned char c = (unsigned char)*s;
    if (c == '\n') fputs("\\n", f);
    else if (c == '\r') fputs("\\r", f);
    else if (c < 0x20 && c != '\t') fprintf(f, "\\x%02x", c);
    else if (c == 0x7f) fputs("\\x7f", f);
    else fputc(c, f);
  }
}

void bafu_table_meta(bafu_table *t, const char *fmt, ...) {
  char small[1024], *buf = small;
  va_list ap, aq;
  va_start(ap, fmt);
  va_copy(aq, ap);
  const int n = vsnprintf(small, sizeof small, fmt, ap);
  if (n >= (int)sizeof small && (buf = malloc((size_t)n + 1))) vsnprintf(buf, (size_t)n + 1, fmt, aq);
  va_end(aq);
  va_end(ap);
  if (!buf) buf = small; /* out of memory: the truncated line */
  fputs("# ", t->g);
  put_escaped(t->g, n < 0 ? "" : buf);
  fputc('\n', t->g);
  if (buf != small) free(buf);
}

void bafu_table_provenance(bafu_table *t, int argc, char **argv) {
  fprintf(t->g, "# generator: bafu %s\n# command:", bafu_version_full());
  for (int i = 0; i < argc; ++i) {
    fputc(' ', t->g);
    put_escaped(t->g, argv[i]);
  }
  fputc('\n', t->g);
  time_t now = time(NULL);
  struct tm tmv;
  char buf[64] = "unknown";
  if (gmtime_r(&now, &tmv)) strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  fprintf(t->g, "# date: %s\n", buf);
}

bafu_status bafu_table_commit(bafu_table *t) {
  if (!t->path) {
    bafu_status st = gate_shut(t);
    if (!st && (fflush(t->f) != 0 || ferror(t->f))) st = bafu_error(BAFU_EIO, "error writing to stdout");
    table_release(t);
    return st;
  }
  bafu_status st = gate_shut(t);
  const int through = t->tmp == NULL;
  if (!st && (fflush(t->f) != 0 || ferror(t->f) || (!through && fsync(fileno(t->f)) != 0)))
    st = bafu_error(BAFU_EIO, "error writing '%s': %s", t->path, strerror(errno));
  if (!st && !through && t->replace) {
    if (fchown(fileno(t->f), t->old.st_uid, t->old.st_gid) != 0) { /* best effort: only root may give it away */
    }
    if (fchmod(fileno(t->f), t->old.st_mode & 07777) != 0)
      st = bafu_error(BAFU_EIO, "cannot set the mode of '%s': %s", t->path, strerror(errno));
  }
  if (fclose(t->f) != 0 && !st) st = bafu_error(BAFU_EIO, "error closing '%s': %s", t->path, strerror(errno));
  if (!st && !through && rename(t->tmp, t->path) != 0)
    st = bafu_error(BAFU_EIO, "cannot rename into '%s': %s", t->path, strerror(errno));
  if (!through && !st) { /* the new name itself reaches the disk */
    char *dir = dir_of(t->path);
    const int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    free(dir);
  }
  if (st && !through) unlink(t->tmp);
  table_release(t);
  return st;
}

void bafu_table_abort(bafu_table *t) {
  if (!t) return;
  if (t->g) fclose(t->g);
  if (t->path) {
    fclose(t->f);
    if (t->tmp) unlink(t->tmp);
  } else {
    fflush(t->f);
  }
  table_release(t);
}
