/* bafu/text.h: the one strict reader of bafu's text files (batch tables,
 * grid files, checkpoints), and the one number parser of the library and
 * the command line.
 *
 * Lines end in LF, CRLF or CR (a file may mix them); the last line needs no
 * end. A NUL byte anywhere is an error (the file is not text). A line may be
 * as long as the memory limit allows (bafu_memory_check): reading
 * /dev/zero or an endless line is refused, never an unbounded allocation.
 *
 * Numbers: any finite double in C syntax (decimal or hexadecimal, with or
 * without exponent, subnormals, and values that round to zero); refused:
 * empty tokens, leading or trailing characters (spaces included), inf, nan,
 * and values beyond the double range.
 *
 * Thread safety: a reader is used by one thread; distinct readers are
 * independent. */
#ifndef BAFU_TEXT_H
#define BAFU_TEXT_H

#include <stddef.h>

#include "bafu/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if the whole of `s` is a finite double (stored in *v), 0 otherwise (*v
 * unspecified). Cannot fail. */
int bafu_parse_double(const char *s, double *v);

typedef struct bafu_text bafu_text;

/* Open `path` for reading lines. `what` names the file's role in messages
 * (e.g. "grid file"; "" for none, the messages then start with their own
 * words; not retained past the reader's life: it is copied).
 * BAFU_EIO (cannot open: the message names what and path), BAFU_ENOMEM.
 * *out is NULL on error; free with bafu_text_close (NULL-safe). */
bafu_status bafu_text_open(const char *path, const char *what, bafu_text **out);

/* The next line, without its end, NUL-terminated, in *line (owned by the
 * reader, valid until the next call), its length in *len. At the end of the
 * file: BAFU_OK with *line = NULL. Errors (the message is
 * "WHAT: 'PATH' line N: ...", without "WHAT: " for an empty what):
 * BAFU_EPARSE for a NUL byte, BAFU_EIO for a read error, BAFU_ELIMIT when
 * the line would exceed the memory limit, BAFU_ENOMEM. */
bafu_status bafu_text_line(bafu_text *t, char **line, size_t *len);

/* Number of the line last returned (1-based; 0 before the first). */
size_t bafu_text_lineno(const bafu_text *t);

void bafu_text_close(bafu_text *t);

#ifdef __cplusplus
}
#endif

#endif
