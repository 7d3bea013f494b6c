/* cmd_figures.c: `bafu figures`, a generic driver over the figure files.
 *
 * Each figure is a pair of files in the scripts directory (the installed
 * share/bafu/plots, or the source tree's plots/): NAME.fig, the stages that
 * write its tables (bafu command lines) and how the tables are assembled
 * from their output, and NAME.gp, the gnuplot script that renders them. The
 * format is documented in doc/figures.md and in `bafu figures --help`; every
 * figure file is read and checked before any work, and a malformed one is
 * refused with one line naming the file and line.
 *
 * A figure runs its stages as child processes (this executable, so the
 * stages are the same build) writing into a scratch directory of this run
 * inside the data directory; its tables are written through the table layer
 * (temporary files, committed together when every stage of the figure has
 * succeeded) and the scratch directory is removed. A finished figure is
 * recorded in DATA/.bafu-figures.ckpt for --resume. */
#define _GNU_SOURCE /* strverscmp, prctl */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bafu/table.h"
#include "bafu/idx.h"
#include "bafu/version.h"
#include "ckpt.h"
#include "cli.h"
#include "progress.h"

extern char **environ;

typedef struct {
  int quick, quiet;
  int resume;          /* --resume: skip what an interrupted run of the same settings finished */
  cli_bar *bar;        /* figures done, drawn under the progress lines on a terminal */
  const size_t *stage; /* figures done so far */
  int threads;
  uint64_t seed;
  const char *data_dir, *plot_dir, *scripts;
  int argc;
  char **argv;
  double t0;
} fig_ctx;

static const char usage[] =
    "Usage: bafu figures [--quick] [--data-dir DIR] [--plot-dir DIR] [--threads T] [--resume] [--quiet]\n"
    "\n"
    "Regenerate the data tables of every figure into DIR (default data/) and\n"
    "render each with gnuplot as PNG and PDF into the plot directory (default\n"
    "plots/). --quick runs the same figures with smaller widths and fewer draws,\n"
    "into bafu-quick/data and bafu-quick/plots unless the directories are given,\n"
    "and marks every image as a quick run. Progress goes to stderr (a line per\n"
    "stage; on a terminal also a bar with the figures done and an ETA); --quiet\n"
    "silences it.\n"
    "\n"
    "Figures are files: each NAME.fig in the scripts directory (--scripts) is a\n"
    "figure, rendered by NAME.gp beside it, in natural order of the names\n"
    "(doc/figures.md). A figure file has one directive per line ('#': comment):\n"
    "  let NAME = VALUE          a value, used as {NAME}\n"
    "  for NAME in V1 V2 ...     repeat the lines up to the matching 'end'\n"
    "  needs fashion-mnist       the figure trains (skipped by --no-train)\n"
    "  progress TEXT             a progress line\n"
    "  parallel ... end          the run lines in between, --threads at a time\n"
    "  run CMD ARGS... --out {work}/FILE   a stage: `bafu CMD ARGS...`\n"
    "  table NAME.dat            a table of the figure, assembled by the lines:\n"
    "    title TEXT              its first '#' line (then the generator, command,\n"
    "                            date and 'mode: M  seed: S' lines)\n"
    "    note TEXT               a '#' line where it stands\n"
    "    series TEXT             a new series, named by a '# TEXT' line\n"
    "    columns A B ...         the series' header row\n"
    "    rows FILE [where COL=V,...] [last|row=K [per COL]] SRC...\n"
    "                            rows of a stage's table; a field per SRC: COL (as\n"
    "                            written), COL:FMT or COL*X:FMT (reformatted; FMT\n"
    "                            %d %g %.Ng %.Nf %.Ne), OTHER/COL..., =TEXT\n"
    "  scratch NAME.dat          the same, kept for later stages only\n"
    "  copy FILE NAME.dat        a stage's table as it is\n"
    "In any line {quick: A | full: B} is A or B by the mode; {data}, {work} (the\n"
    "scratch directory), {spec} (the figure files' directory), {seed}, {threads} and\n"
    "{mode} are given; a text may quote a table's number, [[FILE COL FMT]], and in\n"
    "double quotes keeps its blanks. A malformed figure file is refused before any\n"
    "work (one line FILE:LINE: message, exit 2). A failing stage stops the run\n"
    "(exit 1): none of its figure's tables is written.\n"
    "\n"
    "Resume: each finished figure is recorded in DIR/.bafu-figures.ckpt (with the\n"
    "mode and seed), each finished stage of the figure being run in\n"
    "DIR/.bafu-figures.work/.done; after an interruption or a failed stage the same\n"
    "command with --resume skips what is done (a stage whose command has --resume is\n"
    "given it) and runs the rest (the files are removed at the end).";

/* ---- progress ------------------------------------------------------------ */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fig_progress(const fig_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fig_progress(const fig_ctx *c, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (c->quiet) return;
  if (c->bar->shown) fputs("\r\033[K", stderr); /* clear the bar, print the line, redraw the bar */
  fprintf(stderr, "[%7.1f s] %s\n", now() - c->t0, line);
  cli_bar_update(c->bar, *c->stage, NULL);
}

/* ---- figure files ---------------------------------------------------------- */

typedef enum { D_RUN, D_PAR_BEGIN, D_PAR_END, D_PROGRESS, D_TABLE, D_SCRATCH, D_TITLE, D_NOTE, D_SERIES, D_COLUMNS, D_ROWS, D_COPY, D_NEEDS } dkind;

typedef struct {
  dkind kind;
  int line;
  char *text;  /* progress, title, note, series: the text */
  char **argv; /* the words (run: the bafu command line without "bafu"), NULL-terminated */
  int argc;
} item;

typedef struct {
  char *path, *name; /* DIR/NAME.fig, NAME */
  char *dir;         /* {spec} */
  item *it;
  size_t n, cap;
  int trains;        /* needs fashion-mnist */
} figure;

typedef struct {
  char *name, *value;
} var;

typedef struct {
  const fig_ctx *c;
  const char *work;  /* {work} */
  figure *f;
  var *v;
  size_t nv, capv;
  size_t nbuiltin;   /* v[0..nbuiltin): {data}, {work}, ... (never split into words) */
  char err[1200];    /* the first error: "FILE:LINE: message" */
} parser;

static int perr(parser *p, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(parser *p, int line, const char *fmt, ...) {
  if (p->err[0]) return 1;
  char msg[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(p->err, sizeof p->err, "%s:%d: %s", p->f->path, line, msg);
  return 1;
}

static char *xstrdup(const char *s) {
  char *d = strdup(s);
  if (!d) {
    cli_errorf("bafu figures: out of memory\n");
    exit(1);
  }
  return d;
}

static void *xrealloc(void *q, size_t size) {
  void *r = realloc(q, size ? size : 1);
  if (!r) {
    cli_errorf("bafu figures: out of memory\n");
    exit(1);
  }
  return r;
}

static const char *lookup(parser *p, const char *name) {
  for (size_t i = p->nv; i-- > 0;)
    if (strcmp(p->v[i].name, name) == 0) return p->v[i].value;
  return NULL;
}

static void set_var(parser *p, const char *name, const char *value) {
  if (p->nv == p->capv) p->v = xrealloc(p->v, (p->capv = p->capv ? 2 * p->capv : 16) * sizeof *p->v);
  p->v[p->nv++] = (var){xstrdup(name), xstrdup(value)};
}

static void pop_var(parser *p) {
  --p->nv;
  free(p->v[p->nv].name);
  free(p->v[p->nv].value);
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') ++s;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
  return s;
}

/* The text s with every {...} replaced: {quick: A | full: B} by A or B, {NAME}
 * by its value. NULL (error recorded) on an unknown name or a stray brace. */
static char *subst(parser *p, int line, const char *s) {
  size_t cap = strlen(s) + 64, n = 0;
  char *out = xrealloc(NULL, cap);
  for (const char *q = s; *q;) {
    const char *piece = q, *end = q + 1;
    size_t len = 1;
    char buf[512];
    if (*q == '}') {
      perr(p, line, "'}' without '{'");
      free(out);
      return NULL;
    }
    if (*q == '{') {
      const char *close = strchr(q, '}');
      const char *open2 = strchr(q + 1, '{');
      if (!close || (open2 && open2 < close)) {
        perr(p, line, "'{' without its '}'");
        free(out);
        return NULL;
      }
      snprintf(buf, sizeof buf, "%.*s", (int)(close - q - 1), q + 1);
      char *in = trim(buf);
      end = close + 1;
      if (strncmp(in, "quick:", 6) == 0 || strncmp(in, "full:", 5) == 0) {
        char *bar = strchr(in, '|');
        if (!bar || strchr(bar + 1, '|')) {
          perr(p, line, "{%s}: expected {quick: A | full: B}", in);
          free(out);
          return NULL;
        }
        *bar = '\0';
        char *a = trim(in), *b = trim(bar + 1);
        const int a_quick = strncmp(a, "quick:", 6) == 0;
        if ((a_quick ? strncmp(b, "full:", 5) : strncmp(b, "quick:", 6)) != 0) {
          perr(p, line, "{%s|%s}: expected {quick: A | full: B}", a, b);
          free(out);
          return NULL;
        }
        char *qv = trim((a_quick ? a : b) + 6), *fv = trim((a_quick ? b : a) + 5);
        piece = p->c->quick ? qv : fv;
      } else {
        piece = lookup(p, in);
        if (!piece) {
          perr(p, line, "unknown name {%s}", in);
          free(out);
          return NULL;
        }
      }
      len = strlen(piece);
    }
    if (n + len + 1 > cap) out = xrealloc(out, cap = 2 * (n + len + 1));
    memcpy(out + n, piece, len);
    n += len;
    q = end;
  }
  out[n] = '\0';
  return out;
}

/* Split a line into words at blanks; "..." quotes a word with blanks. Each
 * word is then substituted (so a {data} with blanks or quotes stays one word).
 * 0, or 1 with the error recorded. */
static int words(parser *p, int line, const char *s, char ***argv, int *argc) {
  *argv = NULL;
  *argc = 0;
  int cap = 0;
  for (const char *q = s;;) {
    while (*q == ' ' || *q == '\t') ++q;
    if (!*q) break;
    char w[4096];
    size_t n = 0;
    if (*q == '"') {
      const char *close = strchr(q + 1, '"');
      if (!close) return perr(p, line, "a '\"' without its closing '\"'");
      n = (size_t)(close - q - 1);
      if (n >= sizeof w) return perr(p, line, "a word longer than %zu bytes", sizeof w - 1);
      memcpy(w, q + 1, n);
      q = close + 1;
    } else {
      while (*q && *q != ' ' && *q != '\t') {
        if (*q == '"') return perr(p, line, "a '\"' inside a word");
        if (n + 1 >= sizeof w) return perr(p, line, "a word longer than %zu bytes", sizeof w - 1);
        w[n++] = *q++;
      }
    }
    w[n] = '\0';
    /* a word that is just {NAME} of a 'let' value is that value's words */
    const char *whole = NULL;
    if (n > 2 && w[0] == '{' && w[n - 1] == '}' && !strpbrk(w + 1, "{:") && strchr(w, '}') == w + n - 1) {
      w[n - 1] = '\0';
      for (size_t i = p->nv; i-- > p->nbuiltin && !whole;)
        if (strcmp(p->v[i].name, w + 1) == 0) whole = p->v[i].value;
      w[n - 1] = '}';
    }
    char *sw = whole ? xstrdup(whole) : subst(p, line, w);
    if (!sw) return 1;
    char *save = NULL;
    for (char *piece = whole ? strtok_r(sw, " \t", &save) : sw; piece;
         piece = whole ? strtok_r(NULL, " \t", &save) : NULL) {
      if (*argc + 2 > cap) *argv = xrealloc(*argv, (size_t)(cap = cap ? 2 * cap : 16) * sizeof **argv);
      (*argv)[(*argc)++] = whole ? xstrdup(piece) : piece;
      (*argv)[*argc] = NULL;
    }
    if (whole) free(sw);
  }
  return 0;
}

static item *add_item(figure *f, dkind k, int line) {
  if (f->n == f->cap) f->it = xrealloc(f->it, (f->cap = f->cap ? 2 * f->cap : 32) * sizeof *f->it);
  item *it = f->it + f->n++;
  memset(it, 0, sizeof *it);
  it->kind = k;
  it->line = line;
  return it;
}

typedef struct {
  char *text; /* the line after its keyword */
  char key[16];
  int line;
} rawline;

static const struct {
  const char *key;
  dkind kind;
  int words; /* 1: split into words; 0: one text */
} keys[] = {{"run", D_RUN, 1},         {"progress", D_PROGRESS, 0}, {"table", D_TABLE, 1},
            {"title", D_TITLE, 0},     {"note", D_NOTE, 0},       {"series", D_SERIES, 0},     {"columns", D_COLUMNS, 1},
            {"rows", D_ROWS, 1},       {"copy", D_COPY, 1},       {"needs", D_NEEDS, 1},     {"scratch", D_SCRATCH, 1}};

/* Expand lines [lo, hi): let, for ... end, and the directives. */
static int expand(parser *p, rawline *L, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi && !p->err[0]; ++i) {
    const char *key = L[i].key;
    if (strcmp(key, "let") == 0) {
      char *eq = strchr(L[i].text, '=');
      if (!eq) return perr(p, L[i].line, "expected 'let NAME = VALUE'");
      char name[64];
      snprintf(name, sizeof name, "%.*s", (int)(eq - L[i].text), L[i].text);
      char *nm = trim(name);
      if (!*nm || strspn(nm, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(nm))
        return perr(p, L[i].line, "'let %s': a name is letters, digits and '_'", nm);
      char *val = subst(p, L[i].line, trim(eq + 1));
      if (!val) return 1;
      set_var(p, nm, val);
      free(val);
    } else if (strcmp(key, "for") == 0) {
      size_t depth = 1, j = i + 1;
      for (; j < hi; ++j) {
        if (strcmp(L[j].key, "for") == 0 || strcmp(L[j].key, "parallel") == 0) ++depth;
        if (strcmp(L[j].key, "end") == 0 && --depth == 0) break;
      }
      if (j == hi) return perr(p, L[i].line, "'for' without its 'end'");
      char *text = subst(p, L[i].line, L[i].text);
      if (!text) return 1;
      char *save = NULL, *nm = strtok_r(text, " \t", &save), *in = strtok_r(NULL, " \t", &save);
      if (!nm || !in || strcmp(in, "in") != 0) {
        free(text);
        return perr(p, L[i].line, "expected 'for NAME in VALUE ...'");
      }
      char *name = xstrdup(nm);
      int count = 0;
      for (char *v = strtok_r(NULL, " \t", &save); v && !p->err[0]; v = strtok_r(NULL, " \t", &save), ++count) {
        set_var(p, name, v);
        expand(p, L, i + 1, j);
        pop_var(p);
      }
      free(name);
      free(text);
      if (!count) return perr(p, L[i].line, "'for' without values");
      i = j;
    } else if (strcmp(key, "parallel") == 0) {
      size_t depth = 1, j = i + 1;
      for (; j < hi; ++j) {
        if (strcmp(L[j].key, "for") == 0 || strcmp(L[j].key, "parallel") == 0) ++depth;
        if (strcmp(L[j].key, "end") == 0 && --depth == 0) break;
      }
      if (j == hi) return perr(p, L[i].line, "'parallel' without its 'end'");
      if (L[i].text[0]) return perr(p, L[i].line, "'parallel' takes nothing after it");
      add_item(p->f, D_PAR_BEGIN, L[i].line);
      if (expand(p, L, i + 1, j)) return 1;
      add_item(p->f, D_PAR_END, L[j].line);
      i = j;
    } else if (strcmp(key, "end") == 0) {
      return perr(p, L[i].line, "'end' without its 'for' or 'parallel'");
    } else {
      size_t k = 0;
      while (k < sizeof keys / sizeof keys[0] && strcmp(keys[k].key, key) != 0) ++k;
      if (k == sizeof keys / sizeof keys[0]) return perr(p, L[i].line, "unknown directive '%s'", key);
      item *it = add_item(p->f, keys[k].kind, L[i].line);
      if (keys[k].words) {
        if (words(p, L[i].line, L[i].text, &it->argv, &it->argc)) return 1;
      } else {
        /* a text in double quotes keeps its leading and trailing blanks */
        const char *t = L[i].text;
        const size_t tl = strlen(t);
        char *inner = tl >= 2 && t[0] == '"' && t[tl - 1] == '"' ? strndup(t + 1, tl - 2) : xstrdup(t);
        it->text = subst(p, L[i].line, inner);
        free(inner);
        if (!it->text) return 1;
      }
    }
  }
  return p->err[0] != 0;
}

/* Read and expand one figure file. 0, or 1 with the error in p->err. */
static int read_figure(parser *p, figure *f) {
  p->f = f;
  FILE *in = fopen(f->path, "r");
  if (!in) return perr(p, 0, "cannot read: %s", strerror(errno));
  rawline *L = NULL;
  size_t n = 0, cap = 0;
  char *buf = NULL;
  size_t bcap = 0;
  int line = 0;
  while (getline(&buf, &bcap, in) > 0) {
    ++line;
    buf[strcspn(buf, "\r\n")] = '\0';
    char *s = trim(buf);
    if (!*s || *s == '#') continue;
    if (n == cap) L = xrealloc(L, (cap = cap ? 2 * cap : 64) * sizeof *L);
    size_t kl = strcspn(s, " \t");
    if (kl >= sizeof L[n].key) kl = sizeof L[n].key - 1;
    snprintf(L[n].key, sizeof L[n].key, "%.*s", (int)kl, s);
    char *rest = s + strcspn(s, " \t");
    if (*rest) ++rest; /* the text is what follows the keyword and one blank (note, title: indentation is kept) */
    L[n].text = xstrdup(rest);
    L[n].line = line;
    ++n;
  }
  free(buf);
  fclose(in);
  const size_t nv0 = p->nv;
  const int rc = expand(p, L, 0, n);
  while (p->nv > nv0) pop_var(p);
  for (size_t i = 0; i < n; ++i) free(L[i].text);
  free(L);
  return rc;
}

/* ---- checks ------------------------------------------------------------------ */

/* A number format: %d, %g, %.Ng, %.Nf, %.Ne (N 0..17). */
static int good_format(const char *fmt) {
  if (strcmp(fmt, "%d") == 0 || strcmp(fmt, "%g") == 0) return 1;
  if (strncmp(fmt, "%.", 2) != 0) return 0;
  char *end;
  const long d = strtol(fmt + 2, &end, 10);
  return end != fmt + 2 && d >= 0 && d <= 17 && (end[0] == 'g' || end[0] == 'f' || end[0] == 'e') && !end[1];
}

static int plain_table_name(const char *s) {
  const size_t n = strlen(s);
  return n > 4 && strcmp(s + n - 4, ".dat") == 0 && !strchr(s, '/') && s[0] != '.';
}

/* The options of `bafu CMD` (--list-options of this executable), cached;
 * NULL if CMD is not a command. */
typedef struct {
  char cmd[32];
  char *opts; /* "\n--a\n--b\n" */
} optlist;
static optlist known[16];
static size_t nknown;
static const char *self_exe;

static const char *command_options(const char *cmd) {
  for (size_t i = 0; i < nknown; ++i)
    if (strcmp(known[i].cmd, cmd) == 0) return known[i].opts;
  if (nknown == sizeof known / sizeof known[0] || strlen(cmd) >= sizeof known[0].cmd || strcmp(cmd, "figures") == 0)
    return NULL;
  int fd[2];
  if (pipe(fd) != 0) return NULL;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addclose(&fa, fd[0]);
  char *args[] = {"bafu", (char *)cmd, "--list-options", NULL};
  pid_t pid;
  const int e = posix_spawn(&pid, self_exe, &fa, NULL, args, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fd[1]);
  char *text = NULL;
  size_t len = 0, cap = 0;
  char chunk[4096];
  ssize_t got;
  while (e == 0 && (got = read(fd[0], chunk, sizeof chunk)) > 0) {
    if (len + (size_t)got + 3 > cap) text = xrealloc(text, cap = 2 * (len + (size_t)got + 3));
    memcpy(text + len, chunk, (size_t)got);
    len += (size_t)got;
  }
  close(fd[0]);
  int status = 0;
  if (e != 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || !text) {
    free(text);
    return NULL;
  }
  /* keep the option names: "\n--a\n--b\n" */
  char *names = xrealloc(NULL, len + 3);
  size_t m = 0;
  names[m++] = '\n';
  text[len] = '\0';
  for (char *ln = text, *nl; ln && *ln; ln = nl ? nl + 1 : NULL) {
    nl = strchr(ln, '\n');
    if (nl) *nl = '\0';
    const size_t w = strcspn(ln, " \t");
    memcpy(names + m, ln, w);
    m += w;
    names[m++] = '\n';
  }
  names[m] = '\0';
  free(text);
  snprintf(known[nknown].cmd, sizeof known[0].cmd, "%s", cmd);
  known[nknown].opts = names;
  return known[nknown++].opts;
}

/* The output of a run: the word after --out, or NULL. */
static const char *run_out(const item *it) {
  for (int a = 0; a + 1 < it->argc; ++a)
    if (strcmp(it->argv[a], "--out") == 0) return it->argv[a + 1];
  return NULL;
}

/* Whether item i of f may read the scratch file `name`: an earlier stage
 * writes it (--out {work}/name) or an earlier table or scratch table is it. */
static int produced(const parser *p, const figure *f, size_t i, const char *name, size_t len) {
  char path[4400];
  snprintf(path, sizeof path, "%s/%.*s", p->work, (int)len, name);
  for (size_t k = 0; k < i; ++k) {
    const item *e = f->it + k;
    if (e->kind == D_RUN && strcmp(run_out(e), path) == 0) return 1;
    if ((e->kind == D_TABLE || e->kind == D_SCRATCH) && strlen(e->argv[0]) == len && !strncmp(e->argv[0], name, len))
      return 1;
  }
  return 0;
}

/* Check the quotes [[FILE COL FMT]] of a text. */
static int check_quotes(parser *p, const figure *f, size_t i, const char *text) {
  for (const char *q = strstr(text, "[["); q; q = strstr(q + 2, "[[")) {
    const char *end = strstr(q, "]]");
    char buf[512], *save = NULL;
    if (!end || (size_t)(end - q) >= sizeof buf) return perr(p, f->it[i].line, "'[[' without its ']]'");
    snprintf(buf, sizeof buf, "%.*s", (int)(end - q - 2), q + 2);
    char *file = strtok_r(buf, " \t", &save), *col = strtok_r(NULL, " \t", &save), *fmt = strtok_r(NULL, " \t", &save);
    if (!file || !col || !fmt || strtok_r(NULL, " \t", &save))
      return perr(p, f->it[i].line, "expected [[FILE COLUMN FORMAT]]");
    if (!produced(p, f, i, file, strlen(file))) return perr(p, f->it[i].line, "[[%s ...]]: no earlier stage or table writes it", file);
    if (!good_format(fmt)) return perr(p, f->it[i].line, "[[... %s]]: the format is one of %%d %%g %%.Ng %%.Nf %%.Ne", fmt);
  }
  return 0;
}

/* Check a figure after expansion: every run a bafu command with its known
 * options, writing into {work}; rows and copies read earlier runs' tables;
 * tables named plainly, once across every figure; sources match columns. */
static int check_figure(parser *p, figure *f, char ***names, size_t *nnames) {
  p->f = f;
  const size_t wl = strlen(p->work);
  int in_table = 0, have_columns = 0, ncols = 0;
  for (size_t i = 0; i < f->n; ++i) {
    item *it = f->it + i;
    const int ln = it->line;
    switch (it->kind) {
    case D_NEEDS:
      if (it->argc != 1 || strcmp(it->argv[0], "fashion-mnist") != 0)
        return perr(p, ln, "expected 'needs fashion-mnist'");
      f->trains = 1;
      break;
    case D_RUN: {
      if (it->argc < 1) return perr(p, ln, "'run' without a command");
      const char *opts = command_options(it->argv[0]);
      if (!opts) return perr(p, ln, "'%s' is not a bafu command", it->argv[0]);
      for (int a = 1; a < it->argc; ++a)
        if (strncmp(it->argv[a], "--", 2) == 0) {
          char key[256];
          snprintf(key, sizeof key, "\n%s\n", it->argv[a]);
          if (!strstr(opts, key)) return perr(p, ln, "bafu %s has no option %s", it->argv[0], it->argv[a]);
        }
      const char *out = run_out(it);
      if (!out || strncmp(out, p->work, wl) != 0 || out[wl] != '/' || strchr(out + wl + 1, '/') || !out[wl + 1])
        return perr(p, ln, "a stage writes its table into the scratch directory: --out {work}/FILE");
      for (size_t k = 0; k < i; ++k)
        if (f->it[k].kind == D_RUN && strcmp(run_out(f->it + k), out) == 0)
          return perr(p, ln, "%s is written by the stage of line %d too", out + wl + 1, f->it[k].line);
      in_table = 0;
      break;
    }
    case D_ROWS:
    case D_COPY: {
      const int copy = it->kind == D_COPY;
      if (copy ? it->argc != 2 : it->argc < 2)
        return perr(p, ln, copy ? "expected 'copy FILE NAME.dat'" : "expected 'rows FILE [last|row=K] SRC...'");
      if (!produced(p, f, i, it->argv[0], strlen(it->argv[0])))
        return perr(p, ln, "%s: no earlier stage (--out {work}/%s) or table writes it", it->argv[0], it->argv[0]);
      if (copy) {
        in_table = 0;
        break;
      }
      if (!in_table || !have_columns) return perr(p, ln, "'rows' before the table's 'columns'");
      int a = 1, nsrc = 0;
      if (strcmp(it->argv[a], "where") == 0) {
        if (a + 1 >= it->argc) return perr(p, ln, "expected 'where COL=VALUE[,COL=VALUE...]'");
        for (const char *c = it->argv[a + 1]; c; c = strchr(c, ',') ? strchr(c, ',') + 1 : NULL) {
          const char *eq = strchr(c, '='), *comma = strchr(c, ',');
          if (!eq || eq == c || (comma && comma < eq)) return perr(p, ln, "expected 'where COL=VALUE[,COL=VALUE...]'");
        }
        a += 2;
      }
      if (a < it->argc && (strcmp(it->argv[a], "last") == 0 || strncmp(it->argv[a], "row=", 4) == 0)) {
        if (it->argv[a][0] == 'r') {
          char *end;
          const long r = strtol(it->argv[a] + 4, &end, 10);
          if (end == it->argv[a] + 4 || *end || r == 0) return perr(p, ln, "%s: expected row=K, K = 1, 2, ... or -1, -2, ...", it->argv[a]);
        }
        ++a;
        if (a < it->argc && strcmp(it->argv[a], "per") == 0) {
          if (a + 1 >= it->argc) return perr(p, ln, "'per' without a column");
          a += 2;
        }
      }
      for (; a < it->argc; ++a, ++nsrc) {
        const char *s = it->argv[a];
        if (s[0] == '=') continue;
        const char *slash = strchr(s, '/');
        if (slash) {
          if (!produced(p, f, i, s, (size_t)(slash - s)))
            return perr(p, ln, "%s: no earlier stage or table writes %.*s", s, (int)(slash - s), s);
          s = slash + 1;
        }
        const char *colon = strchr(s, ':');
        if (colon && !good_format(colon + 1))
          return perr(p, ln, "%s: the format is one of %%d %%g %%.Ng %%.Nf %%.Ne", s);
        const char *star = strchr(s, '*');
        if (star && (!colon || star > colon)) return perr(p, ln, "%s: COL*X needs a format (COL*X:FMT)", s);
        if (star) {
          char *end;
          const double x = strtod(star + 1, &end);
          if (end == star + 1 || end != colon || !isfinite(x)) return perr(p, ln, "%s: X in COL*X:FMT is a number", s);
        }
      }
      if (nsrc != ncols) return perr(p, ln, "%d fields for the %d columns of the series", nsrc, ncols);
      break;
    }
    case D_TABLE:
    case D_SCRATCH:
      if (it->argc != 1 || !plain_table_name(it->argv[0]))
        return perr(p, ln, "expected '%s NAME.dat' (a file name)", it->kind == D_TABLE ? "table" : "scratch");
      if (i + 1 >= f->n || f->it[i + 1].kind != D_TITLE) return perr(p, ln, "a table's next line is its 'title'");
      if (produced(p, f, i, it->argv[0], strlen(it->argv[0])))
        return perr(p, ln, "%s: an earlier stage or table of the figure writes it", it->argv[0]);
      in_table = 1, have_columns = 0;
      break;
    case D_TITLE:
      if (i == 0 || (f->it[i - 1].kind != D_TABLE && f->it[i - 1].kind != D_SCRATCH))
        return perr(p, ln, "'title' is the line after 'table' or 'scratch'");
      if (check_quotes(p, f, i, it->text)) return 1;
      break;
    case D_NOTE:
    case D_SERIES:
      if (!in_table) return perr(p, ln, "'%s' outside a table", it->kind == D_NOTE ? "note" : "series");
      if (check_quotes(p, f, i, it->text)) return 1;
      if (it->kind == D_SERIES) have_columns = 0;
      break;
    case D_COLUMNS:
      if (!in_table) return perr(p, ln, "'columns' outside a table");
      if (it->argc < 1) return perr(p, ln, "'columns' without names");
      for (int a = 0; a < it->argc; ++a) {
        const char *s = it->argv[a];
        if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_') ||
            strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(s))
          return perr(p, ln, "'%s': a column name is a letter or '_', then letters, digits, '_'", s);
      }
      have_columns = 1, ncols = it->argc;
      break;
    case D_PAR_BEGIN:
      for (size_t k = i + 1; k < f->n && f->it[k].kind != D_PAR_END; ++k)
        if (f->it[k].kind != D_RUN && f->it[k].kind != D_PROGRESS)
          return perr(p, f->it[k].line, "a 'parallel' block holds 'run' and 'progress' lines only");
      in_table = 0;
      break;
    case D_PAR_END:
    case D_PROGRESS:
      break;
    }
    if (it->kind == D_TABLE || it->kind == D_COPY) {
      const char *nm = it->argv[it->kind == D_COPY];
      if (!plain_table_name(nm)) return perr(p, ln, "%s: a table is a plain file name ending in .dat", nm);
      for (size_t k = 0; k < *nnames; ++k)
        if (strcmp((*names)[k], nm) == 0) return perr(p, ln, "%s is written by another table line", nm);
      *names = xrealloc(*names, (*nnames + 1) * sizeof **names);
      (*names)[(*nnames)++] = it->argv[it->kind == D_COPY];
    }
  }
  /* every table has rows */
  for (size_t i = 0; i < f->n; ++i)
    if (f->it[i].kind == D_TABLE || f->it[i].kind == D_SCRATCH) {
      size_t k = i + 1;
      while (k < f->n && f->it[k].kind != D_ROWS && f->it[k].kind != D_TABLE && f->it[k].kind != D_SCRATCH &&
             f->it[k].kind != D_RUN && f->it[k].kind != D_COPY)
        ++k;
      if (k == f->n || f->it[k].kind != D_ROWS) return perr(p, f->it[i].line, "table %s has no 'rows'", f->it[i].argv[0]);
    }
  return 0;
}

/* ---- running a figure ----------------------------------------------------- */

/* For the signal handler: the stage running and the scratch files. */
#define MAX_CHILDREN 64
static volatile pid_t children[MAX_CHILDREN]; /* the stages running */
static char *scratch_files[4096];
static struct sigaction old_actions[3];
static const int stop_sigs[3] = {SIGINT, SIGTERM, SIGHUP};

static void on_stop(int sig) {
  for (int i = 0; i < MAX_CHILDREN; ++i)
    if (children[i] > 0) kill(children[i], SIGTERM); /* each stage removes its own temporary file */
  for (int i = 0; i < MAX_CHILDREN; ++i)
    if (children[i] > 0) waitpid(children[i], NULL, 0);
  /* the scratch directory stays: its finished stages are for --resume */
  for (int i = 0; i < 3; ++i)
    if (stop_sigs[i] == sig) {
      sigaction(sig, &old_actions[i], NULL); /* the tables' handler: their temporaries, then the default */
      raise(sig);
    }
}

static void catch_stop_signals(void) {
  bafu_table_catch_signals(); /* theirs first, so that ours runs before them */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigfillset(&sa.sa_mask);
  for (int i = 0; i < 3; ++i) {
    struct sigaction old;
    if (sigaction(stop_sigs[i], NULL, &old) != 0 || (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN))
      continue; /* an ignored signal (nohup) stays ignored */
    old_actions[i] = old;
    sigaction(stop_sigs[i], &sa, NULL);
  }
}

/* The figure is written: its scratch files, its record and the directory go. */
static void scratch_clear(const char *work) {
  for (size_t i = 0; i < sizeof scratch_files / sizeof scratch_files[0]; ++i) {
    char *f = scratch_files[i];
    if (!f) continue;
    scratch_files[i] = NULL;
    unlink(f);
    free(f);
  }
  char done[4500];
  snprintf(done, sizeof done, "%s/.done", work);
  unlink(done);
  rmdir(work);
}

/* Forget the scratch files without removing them (a failed figure keeps them for --resume). */
static void scratch_forget(void) {
  for (size_t i = 0; i < sizeof scratch_files / sizeof scratch_files[0]; ++i) {
    free(scratch_files[i]);
    scratch_files[i] = NULL;
  }
}

/* Start `bafu ARGS` (this executable) in child slot `slot`: its pid, or -1
 * with a message. */
static pid_t start_stage(const fig_ctx *c, const item *it, int slot) {
  char **args = xrealloc(NULL, (size_t)(it->argc + 4) * sizeof *args);
  int na = 0;
  args[na++] = "bafu";
  for (int a = 0; a < it->argc; ++a) args[na++] = it->argv[a];
  const char *opts = command_options(it->argv[0]);
  /* resumed: a stage whose command resumes (train, sweep) continues from its own checkpoint, if any */
  if (c->resume && opts && strstr(opts, "\n--resume\n")) args[na++] = "--resume";
  /* the driver's progress lines and bar are the run's: a stage draws no bar of its own */
  if (opts && strstr(opts, "\n--quiet\n")) args[na++] = "--quiet";
  args[na] = NULL;
  fflush(NULL);
  /* the stop signals wait until the child is in children[] (on_stop stops and
     waits for every stage it started) */
  sigset_t stops, old;
  sigemptyset(&stops);
  for (int i = 0; i < 3; ++i) sigaddset(&stops, stop_sigs[i]);
  sigprocmask(SIG_BLOCK, &stops, &old);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < 3; ++i) signal(stop_sigs[i], SIG_DFL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* the stage ends with the driver */
    if (getppid() != parent) _exit(1);
    execv(self_exe, args);
    cli_errorf("bafu figures: cannot run %s: %s\n", self_exe, strerror(errno));
    _exit(1);
  }
  const int saved = errno;
  if (pid > 0) children[slot] = pid;
  sigprocmask(SIG_SETMASK, &old, NULL);
  free(args);
  if (pid < 0) cli_errorf("bafu figures: cannot start a stage: %s\n", strerror(saved));
  return pid;
}

/* Wait for one of the running stages: its slot, *ok whether it succeeded. -1 if none runs. */
static int wait_stage(int *ok) {
  int status = 0;
  pid_t w;
  while ((w = waitpid(-1, &status, 0)) < 0 && errno == EINTR) {
  }
  if (w < 0) return -1;
  for (int i = 0; i < MAX_CHILDREN; ++i)
    if (children[i] == w) {
      children[i] = 0;
      *ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      return i;
    }
  return wait_stage(ok); /* not a stage (cannot happen: the driver has no other children then) */
}

/* A stage's table: its first series' header names and data rows, as words. */
typedef struct {
  char **head;
  int nhead;
  char ***rows;
  int *nf;
  size_t nrows;
  char *text;
} stable;

static void stable_free(stable *t) {
  for (size_t r = 0; r < t->nrows; ++r) free(t->rows[r]);
  free(t->rows);
  free(t->nf);
  free(t->head);
  free(t->text);
  memset(t, 0, sizeof *t);
}

static char **split_ws(char *s, int *n) {
  char **w = NULL;
  int cap = 0;
  *n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(s, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
    if (*n == cap) w = xrealloc(w, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *w);
    w[(*n)++] = tok;
  }
  return w;
}

static int stable_read(const char *path, stable *t) {
  memset(t, 0, sizeof *t);
  FILE *in = fopen(path, "rb");
  if (!in) return 1;
  size_t cap = 0, len = 0;
  char buf[65536];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, in)) > 0) {
    if (len + got + 1 > cap) t->text = xrealloc(t->text, cap = 2 * (len + got + 1));
    memcpy(t->text + len, buf, got);
    len += got;
  }
  fclose(in);
  if (!t->text) return 1;
  t->text[len] = '\0';
  int blanks = 0;
  size_t rcap = 0;
  for (char *ln = t->text, *nl; ln && *ln; ln = nl ? nl + 1 : NULL) {
    nl = strchr(ln, '\n');
    if (nl) *nl = '\0';
    if (!*ln) {
      if (++blanks >= 2 && t->head) break; /* the first series only */
      continue;
    }
    blanks = 0;
    if (*ln == '#') continue;
    int n;
    char **w = split_ws(ln, &n);
    if (!t->head) {
      t->head = w, t->nhead = n;
      continue;
    }
    if (t->nrows == rcap) {
      rcap = rcap ? 2 * rcap : 64;
      t->rows = xrealloc(t->rows, rcap * sizeof *t->rows);
      t->nf = xrealloc(t->nf, rcap * sizeof *t->nf);
    }
    t->rows[t->nrows] = w;
    t->nf[t->nrows++] = n;
  }
  return t->head ? 0 : 1;
}

/* The stage tables a rows line reads: its own (index 0) and those its
 * sources name (FILE/COL). */
typedef struct {
  char name[256];
  stable t;
} srcfile;

static stable *src_table(srcfile *fs, int *nfs, const figure *f, const item *it, const char *work, const char *name) {
  for (int i = 0; i < *nfs; ++i)
    if (strcmp(fs[i].name, name) == 0) return &fs[i].t;
  if (*nfs == 8) {
    cli_errorf("bafu figures: %s:%d: a rows line reads at most 8 tables\n", f->path, it->line);
    return NULL;
  }
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", work, name);
  srcfile *n = fs + (*nfs)++;
  snprintf(n->name, sizeof n->name, "%s", name);
  if (stable_read(path, &n->t) || !n->t.nrows) {
    cli_errorf("bafu figures: %s:%d: cannot read the stage's table %s (or it has no rows)\n", f->path, it->line,
            name);
    return NULL;
  }
  return &n->t;
}

/* Write one field of row r: a source word (=TEXT, or [FILE/]COL[*X][:FMT]). 0, or 1 with a message. */
static int put_field(FILE *o, const figure *f, const item *it, srcfile *fs, int *nfs, const char *work, size_t r,
                     const char *src) {
  if (src[0] == '=') {
    fputs(src + 1, o);
    return 0;
  }
  const stable *t = &fs[0].t;
  const char *slash = strchr(src, '/'), *fname = fs[0].name;
  char other[256];
  if (slash) {
    snprintf(other, sizeof other, "%.*s", (int)(slash - src), src);
    if (!(t = src_table(fs, nfs, f, it, work, other))) return 1;
    if (t->nrows != fs[0].t.nrows) {
      cli_errorf("bafu figures: %s:%d: %s has %zu rows, %s %zu: the rows are paired\n", f->path, it->line,
              fs[0].name, fs[0].t.nrows, other, t->nrows);
      return 1;
    }
    fname = other;
    src = slash + 1;
  }
  char col[256];
  const size_t cl = strcspn(src, ":*");
  snprintf(col, sizeof col, "%.*s", (int)cl, src);
  int k = 0;
  while (k < t->nhead && strcmp(t->head[k], col) != 0) ++k;
  if (k == t->nhead || k >= t->nf[r]) {
    cli_errorf("bafu figures: %s:%d: %s has no column '%s'\n", f->path, it->line, fname, col);
    return 1;
  }
  const char *word = t->rows[r][k];
  if (!src[cl]) {
    fputs(word, o);
    return 0;
  }
  char *end;
  double v = strtod(word, &end);
  if (end == word || *end || !isfinite(v)) {
    cli_errorf("bafu figures: %s:%d: %s: '%s' in column %s is not a number\n", f->path, it->line, fname, word, col);
    return 1;
  }
  if (src[cl] == '*') v *= strtod(src + cl + 1, NULL);
  const char *fmt = strchr(src, ':') + 1;
  if (strcmp(fmt, "%d") == 0) {
    if (v != floor(v) || fabs(v) > 9e15) {
      cli_errorf("bafu figures: %s:%d: %s: '%s' in column %s is not an integer\n", f->path, it->line, fname, word,
              col);
      return 1;
    }
    fprintf(o, "%lld", (long long)v);
  } else {
    fprintf(o, fmt, v);
  }
  return 0;
}

static int put_rows(FILE *o, const figure *f, const item *it, const char *work) {
  srcfile fs[8];
  int nfs = 0, rc = 0;
  memset(fs, 0, sizeof fs);
  if (!src_table(fs, &nfs, f, it, work, it->argv[0])) rc = 1;
  stable *t = &fs[0].t;
  int a = 1, per = -1;
  if (!rc && strcmp(it->argv[a], "where") == 0) { /* keep the rows whose columns COL are VALUE (as text) */
    for (const char *cond = it->argv[a + 1]; !rc && cond;) {
      const char *eq = strchr(cond, '='), *comma = strchr(eq, ',');
      const size_t nl = (size_t)(eq - cond), vl = comma ? (size_t)(comma - eq - 1) : strlen(eq + 1);
      int col = 0;
      while (col < t->nhead && (strlen(t->head[col]) != nl || strncmp(t->head[col], cond, nl) != 0)) ++col;
      if (col == t->nhead) {
        cli_errorf("bafu figures: %s:%d: %s has no column '%.*s'\n", f->path, it->line, it->argv[0], (int)nl, cond);
        rc = 1;
      }
      size_t kept = 0;
      for (size_t r = 0; !rc && r < t->nrows; ++r) {
        if (col < t->nf[r] && strlen(t->rows[r][col]) == vl && strncmp(t->rows[r][col], eq + 1, vl) == 0) {
          t->rows[kept] = t->rows[r], t->nf[kept++] = t->nf[r];
        } else {
          free(t->rows[r]);
        }
      }
      if (!rc) t->nrows = kept;
      cond = comma ? comma + 1 : NULL;
    }
    if (!rc && !t->nrows) {
      cli_errorf("bafu figures: %s:%d: %s has no row where %s\n", f->path, it->line, it->argv[0], it->argv[a + 1]);
      rc = 1;
    }
    a += 2;
  }
  long pick = 0; /* 0: every row; K > 0: the K-th of each group; K < 0: counted from its end */
  if (!rc && (strcmp(it->argv[a], "last") == 0 || strncmp(it->argv[a], "row=", 4) == 0)) {
    pick = it->argv[a][0] == 'l' ? -1 : strtol(it->argv[a] + 4, NULL, 10);
    ++a;
    if (a + 1 < it->argc && strcmp(it->argv[a], "per") == 0) {
      per = 0;
      while (per < t->nhead && strcmp(t->head[per], it->argv[a + 1]) != 0) ++per;
      if (per == t->nhead) {
        cli_errorf("bafu figures: %s:%d: %s has no column '%s'\n", f->path, it->line, it->argv[0], it->argv[a + 1]);
        rc = 1;
      }
      a += 2;
    }
  }
  /* groups of rows: consecutive rows with the same word in column `per` (one group without) */
  for (size_t g0 = 0, g1; !rc && g0 < t->nrows; g0 = g1) {
    g1 = g0 + 1;
    while (g1 < t->nrows && (per < 0 || (per < t->nf[g1] && per < t->nf[g0] &&
                                          strcmp(t->rows[g1][per], t->rows[g0][per]) == 0)))
      ++g1;
    size_t r0 = g0, r1 = g1;
    if (pick) {
      const long r = pick > 0 ? (long)g0 + pick - 1 : (long)g1 + pick;
      if (r < (long)g0 || r >= (long)g1) {
        cli_errorf("bafu figures: %s:%d: %s: a group of %zu rows has no row %s\n", f->path, it->line, it->argv[0],
                g1 - g0, it->argv[a - 1]);
        rc = 1;
        break;
      }
      r0 = (size_t)r, r1 = r0 + 1;
    }
    for (size_t r = r0; r < r1 && !rc; ++r) {
      for (int s = a; s < it->argc && !rc; ++s) {
        if (s > a) fputc(' ', o);
        rc = put_field(o, f, it, fs, &nfs, work, r, it->argv[s]);
      }
      fputc('\n', o);
    }
  }
  for (int i = 0; i < nfs; ++i) stable_free(&fs[i].t);
  return rc;
}

/* A scratch file of this run, removed at the figure's end (and by a signal). */
static int scratch_add(const figure *f, const item *it, const char *path) {
  size_t slot = 0;
  while (slot < sizeof scratch_files / sizeof scratch_files[0] && scratch_files[slot]) ++slot;
  if (slot == sizeof scratch_files / sizeof scratch_files[0]) {
    cli_errorf("bafu figures: %s:%d: more than %zu stages and tables in one figure\n", f->path, it->line,
            sizeof scratch_files / sizeof scratch_files[0]);
    return 1;
  }
  scratch_files[slot] = xstrdup(path);
  return 0;
}

/* The text with each [[FILE COL FMT]] replaced by the value in the first row of
 * the table FILE of the scratch directory. 0, or 1 with a message. */
static int quote_values(const figure *f, const item *it, const char *work, char *out, size_t size) {
  size_t n = 0;
  out[0] = '\0';
  for (const char *q = it->text; *q;) {
    const char *open = strstr(q, "[[");
    const size_t plain = open ? (size_t)(open - q) : strlen(q);
    n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%.*s", (int)plain, q);
    if (!open) break;
    const char *end = strstr(open, "]]");
    char buf[512], *save = NULL;
    snprintf(buf, sizeof buf, "%.*s", (int)(end - open - 2), open + 2);
    char *file = strtok_r(buf, " \t", &save), *col = strtok_r(NULL, " \t", &save), *fmt = strtok_r(NULL, " \t", &save);
    char path[8800], src[600];
    snprintf(path, sizeof path, "%s/%s", work, file);
    snprintf(src, sizeof src, "%s:%s", col, fmt);
    srcfile fs[1];
    int nfs = 0;
    memset(fs, 0, sizeof fs);
    if (!src_table(fs, &nfs, f, it, work, file)) {
      stable_free(&fs[0].t);
      return 1;
    }
    char *val = NULL;
    size_t vlen = 0;
    FILE *m = open_memstream(&val, &vlen);
    const int bad = !m || put_field(m, f, it, fs, &nfs, work, 0, src);
    if (m) fclose(m);
    stable_free(&fs[0].t);
    if (bad) {
      free(val);
      return 1;
    }
    n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s", val);
    free(val);
    q = end + 2;
  }
  if (n >= size) {
    cli_errorf("bafu figures: %s:%d: the text is too long\n", f->path, it->line);
    return 1;
  }
  return 0;
}

/* Run one figure: its stages in order, each table assembled into the scratch
 * directory, then every table published into the data directory together. 0,
 * or 1 (message printed, nothing of the figure written). */
static int run_figure(const fig_ctx *c, const figure *f, const char *work, const char *settings, const char *resumed) {
  bafu_table *cur = NULL;
  const char **pub_from = xrealloc(NULL, f->n * sizeof *pub_from), **pub_to = xrealloc(NULL, f->n * sizeof *pub_to);
  size_t npub = 0;
  int blocks = 0, rc = 0;
  if (mkdir(work, 0700) != 0 && !(errno == EEXIST && resumed)) {
    cli_errorf("bafu figures: --data-dir: cannot create '%s': %s\n", work, strerror(errno));
    free(pub_from), free(pub_to);
    return 1;
  }
  /* the record of the finished stages, WORK/.done (ckpt.h): the settings, the
     figure, then a stage's output per line; --resume skips those stages */
  char done_path[4500];
  snprintf(done_path, sizeof done_path, "%s/.done", work);
  size_t dcap = strlen(settings) + strlen(f->name) + 64, dlen;
  char *record = xrealloc(NULL, dcap);
  dlen = (size_t)sprintf(record, "%sfigure %s\n", settings, f->name);
  char text[8192];
  for (size_t i = 0; i <= f->n && !rc; ++i) {
    const item *it = i < f->n ? f->it + i : NULL;
    const dkind k = it ? it->kind : D_RUN;
    /* a table ends where a stage, another table or the figure's end begins */
    if (cur && (k == D_RUN || k == D_PAR_BEGIN || k == D_TABLE || k == D_SCRATCH || k == D_COPY)) {
      if (bafu_table_commit(cur)) {
        cli_fail("figures", NULL);
        rc = 1;
      }
      cur = NULL;
    }
    if (!it || rc) break;
    char path[8800];
    switch (it->kind) {
    case D_PROGRESS:
      fig_progress(c, "%s: %s", f->name, it->text);
      break;
    case D_RUN:
    case D_PAR_BEGIN: {
      /* a stage, or the stages of a parallel block, up to --threads at a time */
      size_t end = i + 1;
      if (it->kind == D_PAR_BEGIN)
        while (f->it[end].kind != D_PAR_END) ++end;
      const int width = it->kind == D_RUN ? 1 : c->threads < MAX_CHILDREN ? c->threads : MAX_CHILDREN;
      const item *slot_item[MAX_CHILDREN] = {0};
      int running = 0, failed = 0;
      for (size_t n = it->kind == D_RUN ? i : i + 1; n < end || running;) {
        const item *e = n < end ? f->it + n : NULL;
        if (e && !failed && e->kind == D_PROGRESS && running < width) { /* the line of the stage about to start */
          fig_progress(c, "%s: %s", f->name, e->text);
          ++n;
          continue;
        }
        const char *out = e && !failed && e->kind == D_RUN ? run_out(e) : NULL, *base = out ? out + strlen(work) + 1 : NULL;
        char line[4500];
        if (out) snprintf(line, sizeof line, "\n%s\n", base);
        if (out && resumed && strstr(resumed, line) && access(out, R_OK) == 0) {
          fig_progress(c, "%s: line %d (bafu %s): finished by the interrupted run (--resume)", f->name, e->line,
                       e->argv[0]);
          if (scratch_add(f, e, out)) failed = 1;
        } else if (out && running < width) { /* start it */
          int slot = 0;
          while (children[slot]) ++slot;
          if (scratch_add(f, e, out) || start_stage(c, e, slot) < 0) {
            failed = 1;
            continue;
          }
          slot_item[slot] = e;
          ++running;
          ++n;
          continue;
        } else if (running) { /* wait for one */
          int ok;
          const int slot = wait_stage(&ok);
          if (slot < 0) break;
          --running;
          e = slot_item[slot];
          if (!ok) {
            cli_errorf("bafu figures: %s:%d: the stage `bafu %s ...` failed\n", f->path, e->line, e->argv[0]);
            if (!failed)
              for (int q = 0; q < MAX_CHILDREN; ++q)
                if (children[q] > 0) kill(children[q], SIGTERM); /* the others stop; their finished work is recorded */
            failed = 1;
            continue;
          }
          out = run_out(e), base = out + strlen(work) + 1;
        } else {
          ++n; /* failed: nothing more starts */
          continue;
        }
        /* finished (now or by the interrupted run): recorded */
        if (dlen + strlen(base) + 2 > dcap) record = xrealloc(record, dcap = 2 * (dlen + strlen(base) + 2));
        dlen += (size_t)sprintf(record + dlen, "%s\n", base);
        if (ckpt_text_save(done_path, record, dlen)) {
          cli_errorf("bafu figures: --data-dir: cannot write '%s': %s\n", done_path, cli_error());
          failed = 1;
        }
        if (e == (n < end ? f->it + n : NULL)) ++n; /* a skipped stage: the next */
      }
      rc = failed;
      i = it->kind == D_RUN ? i : end;
      break;
    }
    case D_TABLE:
    case D_SCRATCH:
      snprintf(path, sizeof path, "%s/%s", work, it->argv[0]);
      if ((rc = scratch_add(f, it, path))) break;
      if (bafu_table_open(path, &cur)) {
        cli_fail("figures", "--data-dir");
        rc = 1;
        break;
      }
      blocks = 0;
      if (it->kind == D_TABLE) pub_from[npub] = it->argv[0], pub_to[npub++] = it->argv[0];
      break;
    case D_COPY:
      pub_from[npub] = it->argv[0], pub_to[npub++] = it->argv[1];
      break;
    case D_TITLE:
      if (!(rc = quote_values(f, it, work, text, sizeof text))) {
        bafu_table_meta(cur, "%s", text);
        bafu_table_provenance(cur, c->argc, c->argv);
        bafu_table_meta(cur, "mode: %s  seed: %llu", c->quick ? "quick" : "full", (unsigned long long)c->seed);
      }
      break;
    case D_NOTE:
      if (!(rc = quote_values(f, it, work, text, sizeof text))) bafu_table_meta(cur, "%s", text);
      break;
    case D_SERIES:
      if (!(rc = quote_values(f, it, work, text, sizeof text)))
        fprintf(bafu_table_stream(cur), "%s# %s\n", blocks++ ? "\n\n" : "", text);
      break;
    case D_COLUMNS: {
      FILE *o = bafu_table_stream(cur);
      if (i == 0 || f->it[i - 1].kind != D_SERIES) fputs(blocks++ ? "\n\n" : "", o);
      for (int a = 0; a < it->argc; ++a) fprintf(o, "%s%s", a ? " " : "", it->argv[a]);
      fputc('\n', o);
      break;
    }
    case D_ROWS:
      rc = put_rows(bafu_table_stream(cur), f, it, work);
      break;
    case D_NEEDS:
    case D_PAR_END:
      break;
    }
  }
  if (cur) bafu_table_abort(cur);
  /* publish: every table of the figure written, then all committed */
  bafu_table **out = xrealloc(NULL, (npub ? npub : 1) * sizeof *out);
  size_t nout = 0;
  for (size_t k = 0; k < npub && !rc; ++k) {
    char from[8800], to[8800];
    snprintf(from, sizeof from, "%s/%s", work, pub_from[k]);
    snprintf(to, sizeof to, "%s/%s", c->data_dir, pub_to[k]);
    FILE *in = fopen(from, "rb");
    if (!in) {
      cli_errorf("bafu figures: %s: cannot read '%s': %s\n", f->path, from, strerror(errno));
      rc = 1;
      break;
    }
    if (bafu_table_open(to, &out[nout])) {
      cli_fail("figures", "--data-dir");
      fclose(in);
      rc = 1;
      break;
    }
    char buf[65536];
    size_t got;
    FILE *o = bafu_table_stream(out[nout++]);
    while ((got = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, got, o);
    fclose(in);
  }
  for (size_t k = 0; k < nout; ++k) {
    if (!rc && bafu_table_commit(out[k])) {
      cli_fail("figures", "--data-dir");
      rc = 1;
    } else if (rc) {
      bafu_table_abort(out[k]);
    }
  }
  free(out);
  free(pub_from);
  free(pub_to);
  free(record);
  if (rc)
    scratch_forget(); /* kept, with the record, for --resume */
  else
    scratch_clear(work);
  return rc;
}

/* ---- rendering and the run ---------------------------------------------------- */

/* Render SCRIPTS/<name>.gp into <plot_dir>/<name>.{png,pdf} via temporary
 * names. gnuplot is run directly (no shell) with the directories as script
 * arguments (gnuplot -c), so any directory name works and none is read as a
 * command. */
static int render(const fig_ctx *c, const char *name) {
  char script[4096], tmpbase[4200];
  snprintf(script, sizeof script, "%s/%s.gp", c->scripts, name);
  snprintf(tmpbase, sizeof tmpbase, "%s/.%s.tmp.%ld", c->plot_dir, name, (long)getpid());
  char *args[] = {"gnuplot", "-c", script, (char *)c->data_dir, tmpbase, (char *)c->scripts,
                  c->quick ? "quick" : "full", NULL};
  pid_t pid;
  int status = 0;
  const int e = posix_spawnp(&pid, "gnuplot", NULL, NULL, args, environ);
  const int ran = e == 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  const char *exts[2] = {"png", "pdf"};
  char from[2][4300], to[2][4300];
  for (int i = 0; i < 2; ++i) {
    snprintf(from[i], sizeof from[i], "%s.%s", tmpbase, exts[i]);
    snprintf(to[i], sizeof to[i], "%s/%s.%s", c->plot_dir, name, exts[i]);
  }
  int rc = 0;
  if (e != 0) {
    cli_errorf("bafu figures: cannot run gnuplot: %s (./setup.sh deps installs it)\n", strerror(e));
    rc = 1;
  } else if (!ran) {
    cli_errorf("bafu figures: gnuplot failed on %s\n", script);
    rc = 1;
  }
  for (int i = 0; i < 2 && !rc; ++i)
    if (rename(from[i], to[i]) != 0) {
      cli_errorf("bafu figures: %s was not produced: %s\n", to[i], strerror(errno));
      rc = 1;
    }
  if (rc)
    for (int i = 0; i < 2; ++i) remove(from[i]); /* this run's temporaries, if gnuplot made them */
  if (!rc) fig_progress(c, "rendered %s/%s.png and .pdf", c->plot_dir, name);
  return rc;
}

/* Whether an executable `name` is on PATH. */
static int on_path(const char *name) {
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/bin:/bin";
  char buf[4096];
  for (const char *p = path;;) {
    const char *colon = strchr(p, ':');
    const size_t len = colon ? (size_t)(colon - p) : strlen(p);
    snprintf(buf, sizeof buf, "%.*s/%s", (int)len, len ? p : ".", name);
    if (access(buf, X_OK) == 0) return 1;
    if (!colon) return 0;
    p = colon + 1;
  }
}

/* mkdir -p */
static int mkdir_p(const char *dir) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", dir);
  for (char *q = buf + 1; *q; ++q)
    if (*q == '/') {
      *q = '\0';
      if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
      *q = '/';
    }
  return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int ensure_dir(const char *opt, const char *dir) {
  struct stat sb;
  if (stat(dir, &sb) == 0) {
    if (!S_ISDIR(sb.st_mode)) {
      cli_errorf("bafu figures: %s: '%s' is not a directory\n", opt, dir);
      return 2;
    }
  } else if (mkdir_p(dir) != 0) {
    cli_errorf("bafu figures: %s: cannot create '%s': %s\n", opt, dir, strerror(errno));
    return 2;
  }
  if (access(dir, W_OK) != 0) {
    cli_errorf("bafu figures: %s: '%s' is not writable\n", opt, dir);
    return 2;
  }
  return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strverscmp((*a)->d_name, (*b)->d_name); }

static int is_figure_file(const struct dirent *d) {
  const size_t n = strlen(d->d_name);
  return n > 4 && d->d_name[0] != '.' && strcmp(d->d_name + n - 4, ".fig") == 0;
}

/* Free what the run allocated and return rc. */
static int figures_end(int rc, figure *figs, size_t nfig, parser *p, int *done) {
  for (size_t i = 0; i < nfig; ++i) {
    for (size_t k = 0; k < figs[i].n; ++k) {
      free(figs[i].it[k].text);
      for (int a = 0; a < figs[i].it[k].argc; ++a) free(figs[i].it[k].argv[a]);
      free(figs[i].it[k].argv);
    }
    free(figs[i].it);
    free(figs[i].path);
    free(figs[i].name);
    free(figs[i].dir);
  }
  free(figs);
  while (p->nv) pop_var(p);
  free(p->v);
  for (size_t i = 0; i < nknown; ++i) free(known[i].opts);
  nknown = 0;
  free(done);
  return rc;
}

int cmd_figures(int argc, char **argv) {
  cli_bar bar = {0};
  size_t stage = 0;
  fig_ctx c = {.quick = 0, .quiet = 0, .bar = &bar, .stage = &stage, .threads = 2, .seed = 1, .data_dir = "data", .plot_dir = "plots",
               .scripts = NULL, .argc = argc + 1, .argv = argv - 1, .t0 = now()};
  int no_render = 0, no_train = 0, list = 0;
  cli_opt opts[] = {
      {"--quick", OPT_FLAG, &c.quick, NULL, "reduced widths and draws (same figures), a few minutes", NULL, 0},
      {"--data-dir", OPT_STRING, &c.data_dir, "DIR", "where the data tables go [data; quick: bafu-quick/data]", NULL, 0},
      {"--plot-dir", OPT_STRING, &c.plot_dir, "DIR", "where the PNG and PDF images go [plots; quick: bafu-quick/plots]",
       NULL, 0},
      {"--scripts", OPT_STRING, &c.scripts, "DIR", "directory of the figure files and gnuplot scripts [the installed share/bafu/plots, or the source tree's plots/]",
       NULL, 0},
      {"--threads", OPT_INT, &c.threads, "T", "Monte Carlo draws in parallel, {threads} (results do not depend on T) [2]", NULL,
       0},
      {"--seed", OPT_U64, &c.seed, "X", "Monte Carlo stream seed, {seed} [1]", NULL, 0},
      {"--no-render", OPT_FLAG, &no_render, NULL, "write the data tables only", NULL, 0},
      {"--no-train", OPT_FLAG, &no_train, NULL, "skip the figures that train ('needs fashion-mnist': figure 8, ~10 minutes in full)", NULL, 0},
      {"--resume", OPT_FLAG, &c.resume, NULL, "skip the figures and stages an interrupted run of the same settings finished", NULL, 0},
      {"--quiet", OPT_FLAG, &c.quiet, NULL, "no progress on stderr", NULL, 0},
      {"--list", OPT_FLAG, &list, NULL, "print a line per figure, its name and its tables, and exit (nothing run)", NULL, 0},
      {0},
  };
  const char *const default_data = c.data_dir, *const default_plots = c.plot_dir;
  int r = cli_parse("figures", usage, opts, argc, argv, 1, NULL, 0, NULL);
  if (r) return r == 1 ? 0 : 2;
  if (!c.scripts) c.scripts = cli_share_dir("plots");
  /* a quick run never writes over the full run's tables and images: unless told
     otherwise it writes into bafu-quick/ */
  if (c.quick && c.data_dir == default_data) c.data_dir = "bafu-quick/data";
  if (c.quick && c.plot_dir == default_plots) c.plot_dir = "bafu-quick/plots";
  self_exe = cli_bafu_exe();
  if (!self_exe) {
    cli_errorf("bafu figures: cannot find the bafu executable to run the stages with (next to this process or "
               "to libbafu.so)\n");
    return 2;
  }

  /* the figure files, read and checked before any work */
  struct dirent **ents = NULL;
  const int nent = scandir(c.scripts, &ents, is_figure_file, by_name);
  if (nent <= 0) {
    cli_errorf("bafu figures: --scripts: no figure file (*.fig) in '%s'%s%s\n", c.scripts, nent < 0 ? ": " : "",
            nent < 0 ? strerror(errno) : "");
    free(ents);
    return 2;
  }
  char work[4400];
  snprintf(work, sizeof work, "%s/.bafu-figures.work", c.data_dir);
  figure *figs = calloc((size_t)nent, sizeof *figs);
  int *done = NULL;
  size_t nfig = 0;
  parser p = {.c = &c, .work = work};
  char seed[32], threads[32];
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)c.seed);
  snprintf(threads, sizeof threads, "%d", c.threads);
  set_var(&p, "data", c.data_dir);
  set_var(&p, "work", work);
  set_var(&p, "seed", seed);
  set_var(&p, "threads", threads);
  set_var(&p, "mode", c.quick ? "quick" : "full");
  set_var(&p, "spec", c.scripts);
  p.nbuiltin = p.nv;
  char **tnames = NULL;
  size_t ntnames = 0;
  for (int i = 0; i < nent && !p.err[0]; ++i) {
    figure *f = figs + nfig++;
    const size_t nl = strlen(ents[i]->d_name);
    f->name = xstrdup(ents[i]->d_name);
    f->name[nl - 4] = '\0';
    f->path = xrealloc(NULL, strlen(c.scripts) + nl + 2);
    sprintf(f->path, "%s/%s", c.scripts, ents[i]->d_name);
    f->dir = xstrdup(c.scripts);
    if (!read_figure(&p, f)) check_figure(&p, f, &tnames, &ntnames);
  }
  for (int i = 0; i < nent; ++i) free(ents[i]);
  free(ents);
  free(tnames);
  if (p.err[0]) {
    cli_errorf("bafu figures: %s\n", p.err);
    return figures_end(2, figs, nfig, &p, done);
  }
  if (list) {
    for (size_t i = 0; i < nfig; ++i) {
      if (no_train && figs[i].trains) continue;
      printf("%s", figs[i].name);
      for (size_t k = 0; k < figs[i].n; ++k)
        if (figs[i].it[k].kind == D_TABLE || figs[i].it[k].kind == D_COPY)
          printf(" %s", figs[i].it[k].argv[figs[i].it[k].kind == D_COPY]);
      putchar('\n');
    }
    return figures_end(0, figs, nfig, &p, done);
  }
  size_t nrun = 0; /* the figures this run makes */
  for (size_t i = 0; i < nfig; ++i) nrun += !(no_train && figs[i].trains);

  /* the resume file: its first line is the settings it applies to, then a
     finished figure per line (ckpt.h: replaced atomically, with a checksum) */
  char state_path[4400], settings[256];
  snprintf(state_path, sizeof state_path, "%s/.bafu-figures.ckpt", c.data_dir);
  snprintf(settings, sizeof settings, "bafu figures %s mode=%s seed=%llu\n", BAFU_VERSION_STRING, c.quick ? "quick" : "full",
           (unsigned long long)c.seed);
  done = calloc(nfig, sizeof *done);
  size_t ndone = 0;
  /* the scratch directory of an interrupted figure: its record names the
     figure and the stages it finished (resumed: "\nOUT\nOUT\n..."), reused
     with --resume; anything else there is refused and kept */
  char *resumed = NULL, resumed_fig[256] = "";
  if (!c.resume) {
    if (cli_checkpoint_free("figures", "--data-dir", state_path) || cli_checkpoint_free("figures", "--data-dir", work))
      return figures_end(2, figs, nfig, &p, done);
  } else {
    char dpath[4500], *text = NULL;
    size_t len;
    snprintf(dpath, sizeof dpath, "%s/.done", work);
    struct stat sb;
    if (lstat(work, &sb) == 0 && (!S_ISDIR(sb.st_mode) || ckpt_text_load(dpath, &text, &len) || !text ||
                                  strncmp(text, settings, strlen(settings)) != 0 ||
                                  sscanf(text + strlen(settings), "figure %255s", resumed_fig) != 1)) {
      cli_errorf("bafu figures: --resume: '%s' is not the scratch directory of an interrupted run of these "
                      "settings (its .done record is missing, damaged or of other settings); it is kept\n", work);
      free(text);
      return figures_end(2, figs, nfig, &p, done);
    }
    if (text) {
      const char *rest = strchr(text + strlen(settings), '\n');
      resumed = xrealloc(NULL, strlen(rest) + 2);
      sprintf(resumed, "%s", rest); /* "\nOUT\n..." */
      free(text);
    }
  }
  if (c.resume) {
    char *text;
    size_t len;
    if (ckpt_text_load(state_path, &text, &len)) {
      cli_fail("figures", NULL);
      return figures_end(2, figs, nfig, &p, done);
    }
    if (text && strncmp(text, settings, strlen(settings)) != 0) {
      cli_errorf("bafu figures: --resume: '%s' is of other settings (mode, seed or version); remove it or "
                      "resume with those\n", state_path);
      free(text);
      return figures_end(2, figs, nfig, &p, done);
    }
    for (char *line = text ? text + strlen(settings) : NULL, *nl; line && *line; line = nl + 1) {
      nl = strchr(line, '\n');
      *nl = '\0'; /* ckpt_text_load: the text ends in a newline */
      size_t i = 0;
      while (i < nfig && strcmp(line, figs[i].name) != 0) ++i;
      if (i == nfig || done[i]) {
        cli_errorf("bafu figures: --resume: '%s' is damaged (an unknown or repeated figure); it is kept\n",
                state_path);
        free(text);
        return figures_end(2, figs, nfig, &p, done);
      }
      done[i] = 1;
      if (!(no_train && figs[i].trains)) ++ndone;
    }
    free(text);
  }
  /* what the rest of the run needs is checked now, not after the work */
  if (!no_render) {
    if (!on_path("gnuplot")) {
      cli_errorf("bafu figures: gnuplot is not on PATH (./setup.sh deps installs it; --no-render writes the "
                      "tables only)\n");
      return figures_end(2, figs, nfig, &p, done);
    }
    for (size_t i = 0; i < nfig; ++i) {
      if (no_train && figs[i].trains) continue;
      char script[4400];
      snprintf(script, sizeof script, "%s/%s.gp", c.scripts, figs[i].name);
      if (access(script, R_OK) != 0) {
        cli_errorf("bafu figures: --scripts: cannot read '%s': %s\n", script, strerror(errno));
        return figures_end(2, figs, nfig, &p, done);
      }
    }
  }
  for (size_t i = 0; i < nfig; ++i) {
    if (no_train || !figs[i].trains || done[i]) continue;
    for (int k = 0; k < 4; ++k) {
      char file[4200];
      bafu_fashion_mnist_file(NULL, k / 2, k % 2, file, sizeof file);
      if (access(file, R_OK) != 0) {
        cli_errorf("bafu figures: %s needs Fashion-MNIST: cannot read '%s' (./setup.sh deps installs "
                        "dataset-fashion-mnist, or set BAFU_FASHION_MNIST_DIR; --no-train skips it)\n", figs[i].name, file);
        return figures_end(2, figs, nfig, &p, done);
      }
    }
    break;
  }
  if ((r = ensure_dir("--data-dir", c.data_dir)) || (!no_render && (r = ensure_dir("--plot-dir", c.plot_dir))))
    return figures_end(r, figs, nfig, &p, done);
  catch_stop_signals();
  size_t rlen = strlen(settings) + 1;
  for (size_t i = 0; i < nfig; ++i) rlen += strlen(figs[i].name) + 1;
  char *record = xrealloc(NULL, rlen);
  strcpy(record, settings);
  for (size_t i = 0; i < nfig; ++i)
    if (done[i]) sprintf(record + strlen(record), "%s\n", figs[i].name);
  stage = ndone;
  cli_bar_start(&bar, nrun, ndone, "figures", c.quiet);
  fig_progress(&c, "bafu figures (%s): data in %s, images in %s", c.quick ? "quick" : "full", c.data_dir, c.plot_dir);
  for (size_t i = 0; i < nfig; ++i) {
    if (no_train && figs[i].trains) continue;
    if (done[i]) {
      fig_progress(&c, "%s: written by the interrupted run (--resume)", figs[i].name);
      continue;
    }
    const int r_here = resumed && strcmp(resumed_fig, figs[i].name) == 0;
    const int failed = run_figure(&c, figs + i, work, settings, r_here ? resumed : NULL);
    if (r_here) free(resumed), resumed = NULL;
    if (failed) {
      free(resumed);
      free(record);
      return figures_end(1, figs, nfig, &p, done);
    }
    sprintf(record + strlen(record), "%s\n", figs[i].name);
    if (ckpt_text_save(state_path, record, strlen(record))) {
      cli_errorf("bafu figures: --data-dir: cannot write '%s': %s\n", state_path, cli_error());
      free(record);
      return figures_end(1, figs, nfig, &p, done);
    }
    ++stage;
    fig_progress(&c, "%s: done", figs[i].name);
  }
  free(record);
  free(resumed);
  if (!no_render)
    for (size_t i = 0; i < nfig; ++i)
      if (!(no_train && figs[i].trains) && render(&c, figs[i].name)) return figures_end(1, figs, nfig, &p, done);
  remove(state_path); /* every table and image is written: nothing to resume */
  fig_progress(&c, "done");
  return figures_end(0, figs, nfig, &p, done);
}
