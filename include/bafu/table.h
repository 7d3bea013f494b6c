/* bafu/table.h: self-describing data tables, written atomically.
 *
 * Format: '#' lines of metadata (command line, version, seed, ...), then one
 * header row of column names, then rows; series are separated by two blank
 * lines (gnuplot's `index`). A file is written to a temporary name in the same
 * directory and renamed into place by bafu_table_commit, so a reader never sees
 * a half-written table and a failed run leaves no file behind. */
#ifndef BAFU_TABLE_H
#define BAFU_TABLE_H

#include <stdio.h>

#include "bafu/status.h"

typedef struct bafu_table bafu_table;

/* Open a table for `path`; NULL or "-" writes to stdout. Fails (BAFU_EIO, with
 * the reason) if the temporary file cannot be created. */
bafu_status bafu_table_open(const char *path, bafu_table **out);

/* The stream to write rows to. */
FILE *bafu_table_stream(bafu_table *t);

/* One "# ..." metadata line (printf-style, no newline needed). */
void bafu_table_meta(bafu_table *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Standard provenance lines: tool and version, command line, date (UTC). */
void bafu_table_provenance(bafu_table *t, int argc, char **argv);

/* Flush, check for write errors, fsync and rename into place; frees t.
 * On error the temporary file is removed. */
bafu_status bafu_table_commit(bafu_table *t);

/* Discard: remove the temporary file; frees t. */
void bafu_table_abort(bafu_table *t);

#endif
