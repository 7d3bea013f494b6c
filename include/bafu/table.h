/* bafu/table.h: self-describing data tables, written atomically.
 *
 * Format: '#' lines of metadata (command line, version, seed, ...), then one
 * header row of column names, then rows; series are separated by two blank
 * lines (gnuplot's `index`). A file is written to a temporary name in the same
 * directory and renamed into place by bafu_table_commit, so a reader never sees
 * a half-written table and a failed run leaves no file behind.
 *
 * Signals and thread safety: the temporary files not yet committed are kept in
 * a process-wide list (at most 64; later ones are not listed), and the first
 * table opened on a file installs handlers for SIGINT, SIGTERM and SIGHUP
 * (only where the signal's disposition is the default) that remove the listed
 * files and re-raise the signal. That list and the installation are not
 * locked: open, commit and abort tables from one thread. Writing rows to
 * distinct tables is otherwise independent. */
#ifndef BAFU_TABLE_H
#define BAFU_TABLE_H

#include <stdio.h>

#include "bafu/status.h"

typedef struct bafu_table bafu_table;

/* Open a table for `path`; NULL or "-" writes to stdout. The temporary file is
 * PATH.tmp.XXXXXX (mode 0644). *out is NULL on error; otherwise the caller owns
 * *out until bafu_table_commit or bafu_table_abort releases it. Fails
 * (BAFU_EIO, with the reason) for an empty path, a directory, or if the
 * temporary file cannot be created; BAFU_ENOMEM. */
bafu_status bafu_table_open(const char *path, bafu_table **out);

/* The stream to write rows to, owned by the table (do not fclose it), valid
 * until commit or abort. Write errors are reported by bafu_table_commit. */
FILE *bafu_table_stream(bafu_table *t);

/* One "# ..." metadata line (printf-style, no newline needed). No status:
 * write errors are reported by bafu_table_commit. */
void bafu_table_meta(bafu_table *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Standard provenance lines: tool and version, command line, date (UTC). No
 * status, as bafu_table_meta. */
void bafu_table_provenance(bafu_table *t, int argc, char **argv);

/* Flush, check for write errors, fsync and rename into place; frees t (not
 * NULL). For stdout: flush and check only (stdout stays open). BAFU_EIO on a
 * write, flush, fsync, close or rename error (the temporary file is then
 * removed and t freed all the same). */
bafu_status bafu_table_commit(bafu_table *t);

/* Discard: close and remove the temporary file; frees t. NULL-safe. For
 * stdout it only flushes (rows already written stay written). */
void bafu_table_abort(bafu_table *t);

#endif
