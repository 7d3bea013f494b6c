/* tabread.c: reading bafu tables back (bafu/tabread.h). */
#include "bafu/tabread.h"

#include <stdlib.h>
#include <string.h>

#include "bafu/text.h"

/* A series being read: its lines' copies (tokenised in place; the cells
 * point into them), grown by doubling. */
typedef struct {
  bafu_tabseries s;
  char **bufs;
  size_t nbufs, capbufs, caprows, capcom;
  int has_header;
} building;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q) return 1;
  *p = q;
  *cap = c;
  return 0;
}

/* Keep a copy of `line` in b; the copy in *out. */
static int keep(building *b, const char *line, size_t len, char **out) {
  if (grow((void **)&b->bufs, &b->capbufs, b->nbufs + 1, sizeof *b->bufs)) return 1;
  char *c = malloc(len + 1);
  if (!c) return 1;
  memcpy(c, line, len + 1);
  b->bufs[b->nbufs++] = c;
  *out = c;
  return 0;
}

/* Split s in place at spaces and tabs: the first `max` words in tok, the
 * number of words returned. */
static size_t split(char *s, char **tok, size_t max) {
  size_t n = 0;
  for (;;) {
    while (*s == ' ' || *s == '\t') *s++ = '\0';
    if (!*s) return n;
    if (n < max) tok[n] = s;
    ++n;
    while (*s && *s != ' ' && *s != '\t') ++s;
  }
}

static void building_free(building *b) {
  for (size_t i = 0; i < b->nbufs; ++i) free(b->bufs[i]);
  free(b->bufs);
  free(b->s.names);
  free(b->s.cells);
  free(b->s.line);
  free(b->s.comments);
  memset(b, 0, sizeof *b);
}

void bafu_tabdata_free(bafu_tabdata *t) {
  if (!t) return;
  for (size_t k = 0; k < t->nseries; ++k) {
    free(t->series[k].names);
    free(t->series[k].cells);
    free(t->series[k].line);
    free(t->series[k].comments);
  }
  for (size_t i = 0; i < t->nstore; ++i) free(t->store[i]);
  free(t->store);
  free(t->series);
  free(t->path);
  free(t);
}

/* Room for row r of b (its cells and line number). */
static int room_for_row(building *b, size_t r) {
  if (r < b->caprows) return 0;
  const size_t c = b->caprows ? 2 * b->caprows : 16;
  size_t *l = realloc(b->s.line, c * sizeof *l);
  if (!l) return 1;
  b->s.line = l;
  char **cells = realloc(b->s.cells, c * b->s.ncols * sizeof *cells);
  if (!cells) return 1;
  b->s.cells = cells;
  b->caprows = c;
  return 0;
}

/* Whether the line is blank (spaces and tabs only). */
static int blank(const char *s) {
  for (; *s; ++s)
    if (*s != ' ' && *s != '\t') return 0;
  return 1;
}

bafu_status bafu_tabdata_read(const char *path, bafu_tabdata **out) {
  *out = NULL;
  bafu_text *tx;
  bafu_status st = bafu_text_open(path, "", &tx);
  if (st) return st;
  building *all = NULL;
  size_t n = 0, cap = 0, blanks = 0;
  char *line;
  size_t len;
#define NOMEM                                            \
  do {                                                   \
    st = bafu_error(BAFU_ENOMEM, "out of memory");        \
    goto fail;                                           \
  } while (0)
  while (!(st = bafu_text_line(tx, &line, &len)) && line) {
    const size_t ln = bafu_text_lineno(tx);
    if (blank(line)) {
      ++blanks;
      continue;
    }
    /* a line after two blank lines starts a new series once the current one has its header */
    if (n == 0 || (blanks >= 2 && all[n - 1].has_header)) {
      if (grow((void **)&all, &cap, n + 1, sizeof *all)) NOMEM;
      memset(&all[n++], 0, sizeof *all);
    }
    blanks = 0;
    building *b = &all[n - 1];
    const char *l = line;
    while (*l == ' ' || *l == '\t') ++l;
    char *copy;
    if (*l == '#') {
      ++l;
      if (*l == ' ') ++l;
      if (keep(b, l, strlen(l), &copy) ||
          grow((void **)&b->s.comments, &b->capcom, b->s.ncomments + 1, sizeof *b->s.comments))
        NOMEM;
      b->s.comments[b->s.ncomments++] = copy;
      continue;
    }
    if (keep(b, line, len, &copy)) NOMEM;
    if (!b->has_header) {
      if (!(b->s.names = malloc((len / 2 + 1) * sizeof *b->s.names))) NOMEM; /* at most (len + 1) / 2 words */
      b->s.ncols = split(copy, b->s.names, len / 2 + 1);
      for (size_t i = 0; i < b->s.ncols; ++i)
        for (size_t j = 0; j < i; ++j)
          if (strcmp(b->s.names[i], b->s.names[j]) == 0) {
            st = bafu_error(BAFU_EPARSE, "%s:%zu: the header names column '%s' twice", path, ln, b->s.names[i]);
            goto fail;
          }
      b->has_header = 1;
      continue;
    }
    const size_t nc = b->s.ncols, r = b->s.nrows;
    if (room_for_row(b, r)) NOMEM;
    const size_t got = split(copy, b->s.cells + r * nc, nc);
    if (got != nc) {
      st = bafu_error(BAFU_EPARSE, "%s:%zu: %zu values, but the header has %zu columns", path, ln, got, nc);
      goto fail;
    }
    b->s.line[r] = ln;
    b->s.nrows = r + 1;
  }
  if (st) goto fail;
  if (n == 0 || !all[0].has_header) {
    st = bafu_error(BAFU_EPARSE, "%s: no header row (not a bafu table)", path);
    goto fail;
  }
  if (!all[n - 1].has_header) {
    st = bafu_error(BAFU_EPARSE, "%s: series %zu has '#' lines but no header row", path, n - 1);
    goto fail;
  }
  size_t nstore = 0;
  for (size_t k = 0; k < n; ++k) nstore += all[k].nbufs;
  bafu_tabdata *t = calloc(1, sizeof *t);
  if (!t || !(t->path = malloc(strlen(path) + 1)) || !(t->series = malloc(n * sizeof *t->series)) ||
      !(t->store = malloc(nstore * sizeof *t->store))) {
    if (t) {
      free(t->path);
      free(t->series);
    }
    free(t);
    NOMEM;
  }
  strcpy(t->path, path);
  t->nseries = n;
  for (size_t k = 0; k < n; ++k) {
    t->series[k] = all[k].s;
    memcpy(t->store + t->nstore, all[k].bufs, all[k].nbufs * sizeof *t->store);
    t->nstore += all[k].nbufs;
    free(all[k].bufs);
  }
  free(all);
  bafu_text_close(tx);
  *out = t;
  return BAFU_OK;
fail:
  for (size_t k = 0; k < n; ++k) building_free(&all[k]);
  free(all);
  bafu_text_close(tx);
  return st;
#undef NOMEM
}

int bafu_tabseries_column(const bafu_tabseries *s, const char *name) {
  for (size_t c = 0; c < s->ncols; ++c)
    if (strcmp(s->names[c], name) == 0) return (int)c;
  return -1;
}

bafu_status bafu_tabseries_number(const bafu_tabdata *t, const bafu_tabseries *s, size_t r, size_t c, double *v) {
  const char *text = s->cells[r * s->ncols + c];
  if (bafu_parse_double(text, v)) return BAFU_OK;
  return bafu_error(BAFU_EPARSE, "%s:%zu: column %s: '%.64s' is not a finite number", t->path, s->line[r], s->names[c],
                    text);
}
