/* text.c: strict line reader and number parser (bafu/text.h). */
#include "bafu/text.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/net.h" /* bafu_memory_check */

int bafu_parse_double(const char *s, double *v) {
  if (!*s || *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\f' || *s == '\v') return 0;
  char *end;
  errno = 0;
  *v = strtod(s, &end);
  if (end == s || *end) return 0;
  if (!isfinite(*v)) return 0;                      /* inf, nan */
  if (errno == ERANGE && fabs(*v) >= DBL_MIN) return 0; /* overflow (strtod returns HUGE_VAL; guarded anyway) */
  return 1;                                         /* underflow to a subnormal or to zero is a rounding */
}

/* Messages start "WHAT: ", or with no prefix for an empty `what`. */
#define SEP(what) (*(what) ? ": " : "")

struct bafu_text {
  FILE *f;
  char *path, *what;
  char *line;
  size_t cap, lineno;
  int pending_cr; /* the last line ended in CR: a following LF belongs to it */
};

bafu_status bafu_text_open(const char *path, const char *what, bafu_text **out) {
  *out = NULL;
  bafu_text *t = calloc(1, sizeof *t);
  if (!t || !(t->path = malloc(strlen(path) + 1)) || !(t->what = malloc(strlen(what) + 1))) {
    if (t) free(t->path);
    free(t);
    return bafu_error(BAFU_ENOMEM, "%s%sout of memory", what, SEP(what));
  }
  strcpy(t->path, path);
  strcpy(t->what, what);
  if (!(t->f = fopen(path, "rb"))) {
    bafu_status st = bafu_error(BAFU_EIO, "%s%scannot open '%s': %s", what, SEP(what), path, strerror(errno));
    bafu_text_close(t);
    return st;
  }
  *out = t;
  return BAFU_OK;
}

size_t bafu_text_lineno(const bafu_text *t) { return t->lineno; }

void bafu_text_close(bafu_text *t) {
  if (!t) return;
  if (t->f) fclose(t->f);
  free(t->line);
  free(t->path);
  free(t->what);
  free(t);
}

bafu_status bafu_text_line(bafu_text *t, char **line, size_t *len) {
  *line = NULL;
  *len = 0;
  size_t n = 0;
  int c, any = 0;
  if (t->pending_cr) { /* CRLF: the LF after a CR ends nothing new */
    t->pending_cr = 0;
    c = getc(t->f);
    if (c != '\n' && c != EOF) ungetc(c, t->f);
  }
  for (;;) {
    c = getc(t->f);
    if (c == EOF) break;
    any = 1;
    if (c == '\n') break;
    if (c == '\r') {
      t->pending_cr = 1;
      break;
    }
    if (c == '\0')
      return bafu_error(BAFU_EPARSE, "%s%s'%s' line %zu: a NUL byte (not a text file)", t->what, SEP(t->what),
                        t->path, t->lineno + 1);
    if (n + 1 >= t->cap) {
      const size_t cap = t->cap ? 2 * t->cap : 256;
      char what[64];
      snprintf(what, sizeof what, "%s%sline %zu", t->what, SEP(t->what), t->lineno + 1);
      bafu_status st = bafu_memory_check((double)cap, what);
      if (st) return st;
      char *nl = realloc(t->line, cap);
      if (!nl) return bafu_error(BAFU_ENOMEM, "%s%sout of memory reading '%s'", t->what, SEP(t->what), t->path);
      t->line = nl;
      t->cap = cap;
    }
    t->line[n++] = (char)c;
  }
  if (ferror(t->f))
    return bafu_error(BAFU_EIO, "%s%serror reading '%s': %s", t->what, SEP(t->what), t->path, strerror(errno));
  if (!any) return BAFU_OK; /* end of file */
  if (!t->line && !(t->line = malloc(t->cap = 256)))
    return bafu_error(BAFU_ENOMEM, "%s%sout of memory reading '%s'", t->what, SEP(t->what), t->path);
  t->line[n] = '\0';
  ++t->lineno;
  *line = t->line;
  *len = n;
  return BAFU_OK;
}
