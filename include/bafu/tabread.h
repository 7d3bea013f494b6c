/* bafu/tabread.h: reading a bafu table back (doc/tables.md), the inverse of
 * bafu/table.h.
 *
 * Any bafu table is read, in the header-first layout or the older one ('#'
 * lines before the header row): a series is a header row of column names,
 * its '#' lines (wherever they stand among its lines) and its rows; two or
 * more blank lines end a series, a single blank line (bafu sweep's break
 * between points) ends nothing. Fields are separated by spaces or tabs.
 * Cells are kept as text (word columns such as `preset` stay words); a
 * caller asks for a number where it needs one (bafu_tabseries_number),
 * which is where nan, inf and words are refused, naming the file's line.
 *
 * Thread safety: a bafu_tabdata is read-only once read. */
#ifndef BAFU_TABREAD_H
#define BAFU_TABREAD_H

#include <stddef.h>

#include "bafu/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One series: ncols names, nrows rows of ncols cells (row-major), the file's
 * line of each row, and its '#' lines (without the '#' and one space after
 * it), in file order. All owned by the bafu_tabdata. */
typedef struct {
  size_t ncols, nrows, ncomments;
  char **names;    /* [ncols] */
  char **cells;    /* [nrows * ncols]: cells[r * ncols + c] */
  size_t *line;    /* [nrows]: 1-based line numbers in the file */
  char **comments; /* [ncomments] */
} bafu_tabseries;

typedef struct {
  char *path;      /* as given to bafu_tabdata_read */
  size_t nseries;  /* >= 1 */
  bafu_tabseries *series;
  char **store;    /* private: the lines' storage the cells point into */
  size_t nstore;
} bafu_tabdata;

/* Read the table at `path`. Errors: BAFU_EIO (cannot open or read: the
 * message names the path), BAFU_EPARSE with "PATH:LINE: reason" for a row
 * whose number of fields differs from its header's, a header that names a
 * column twice, a NUL byte, or "PATH: ..." for a file without a header row
 * (empty, or only '#' lines) or a series of '#' lines without a header;
 * BAFU_ELIMIT (a line beyond the memory limit), BAFU_ENOMEM. *out is NULL on
 * error; the caller owns *out and frees it with bafu_tabdata_free
 * (NULL-safe). A series may have no rows. */
bafu_status bafu_tabdata_read(const char *path, bafu_tabdata **out);
void bafu_tabdata_free(bafu_tabdata *t);

/* The index of column `name` in s, or -1. Cannot fail. */
int bafu_tabseries_column(const bafu_tabseries *s, const char *name);

/* The number in row r, column c of s (r < nrows, c < ncols: not checked) in
 * *v. BAFU_EPARSE "PATH:LINE: column NAME: 'TEXT' is not a finite
 * number" for a
 * word, nan, inf or a value beyond the double range (path: t->path).
 * Cannot fail otherwise. */
bafu_status bafu_tabseries_number(const bafu_tabdata *t, const bafu_tabseries *s, size_t r, size_t c, double *v);

#ifdef __cplusplus
}
#endif

#endif
