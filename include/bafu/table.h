/* bafu/table.h: self-describing data tables and other output files, written
 * safely.
 *
 * Format (doc/tables.md): the first line of the file is the header row of
 * column names, then '#' lines of metadata (command line, version, seed, ...),
 * then rows; series are separated by two blank lines (gnuplot's `index`) and
 * each starts with its own header row. So numpy.genfromtxt(path, names=True)
 * and pandas.read_csv(path, sep=r"\s+", comment="#") read a table of one
 * series as it is.
 *
 * Header first: a command writes its metadata (bafu_table_meta,
 * bafu_table_provenance, or '#' lines of its own) and then the header row,
 * in whatever order it finds natural; the stream holds back the '#' and
 * blank lines written before the first non-comment line of the file, and of
 * each series (the first after two blank lines), and writes them right
 * after that line, in their order. Every other line keeps its place ('#'
 * lines between rows, after the rows). Lines held when no header follows
 * are written at commit (or abort) as they came.
 *
 * Rows: no table holds nan or inf. The stream handed out watches every data
 * line (not the '#' lines) for a number printed as nan or inf (any case,
 * any sign); a table that got one fails at bafu_table_commit (BAFU_ENUMERIC,
 * naming the line of the file as written) and, as a file, is not renamed
 * into place. This is the
 * last defence behind the checks of each computation.
 *
 * Writing: the path is resolved first (symbolic links followed to their
 * target). A regular file, or a new one, is written to a temporary file
 * "NAME.tmp.PID.XXXXXX" (NAME: the target's name cut to 64 bytes) in the
 * target's directory and renamed over the target by bafu_table_commit, so a
 * reader never sees a half-written file and a failed run leaves the old one as
 * it was. The new file keeps the old one's mode (and owner, where allowed); a
 * new file gets mode 0666 minus the umask. A read-only file (no write bit,
 * also for root) and a name too long for its directory are refused. A
 * device or FIFO (/dev/null, /dev/stdout, also a pipe reached through
 * /dev/stdout or /dev/fd/N) is written through, never replaced; a directory
 * is refused. The temporary file is created with O_EXCL and locked (flock)
 * while its process lives; one left by a process killed outright (SIGKILL,
 * power loss) stays for the user to delete: bafu never deletes a file it did
 * not create in the same run.
 *
 * Signals and thread safety: the temporary files not yet committed are kept in
 * a process-wide list (at most 64; later ones are not listed), and the first
 * table opened on a file installs handlers for every signal whose default
 * action ends the process (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2,
 * SIGALRM, SIGXCPU, SIGPIPE, ..., the real-time signals; only where the
 * signal's disposition is the default) that remove the listed files and
 * re-raise the signal. That list and the installation are not locked: open,
 * commit and abort tables from one thread. Writing rows to distinct tables is
 * otherwise independent. */
#ifndef BAFU_TABLE_H
#define BAFU_TABLE_H

#include <stdio.h>

#include "bafu/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bafu_table bafu_table;

/* Open a table for `path`; NULL or "-" writes to stdout. *out is NULL on
 * error; otherwise the caller owns *out until bafu_table_commit or
 * bafu_table_abort releases it. Fails (BAFU_EIO, with the reason) for an
 * empty path, a directory, a read-only file, a link loop, a device that
 * cannot be opened, or if the temporary file cannot be created; BAFU_ENOMEM. */
bafu_status bafu_table_open(const char *path, bafu_table **out);

/* As bafu_table_open for a file that is not a table (a checkpoint, binary
 * data): the same safe replacement, without the check of the rows for
 * non-finite numbers. */
bafu_status bafu_file_open(const char *path, bafu_table **out);

/* The stream to write rows to, owned by the table (do not fclose it), valid
 * until commit or abort. Write errors are reported by bafu_table_commit.
 * '#' and blank lines before a series' header row reach the file after it
 * (see the format above); bafu_file_open's stream passes every byte in
 * order. */
FILE *bafu_table_stream(bafu_table *t);

/* One "# ..." metadata line (printf-style, no newline needed). Control
 * characters in the text (a newline in a file name) are written as \n, \r
 * or \xHH, so the line stays one comment line. No status: write errors are
 * reported by bafu_table_commit. */
void bafu_table_meta(bafu_table *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Standard provenance lines: tool and version, command line (escaped as in
 * bafu_table_meta), date (UTC). No status, as bafu_table_meta. */
void bafu_table_provenance(bafu_table *t, int argc, char **argv);

/* Flush (lines still held are written as they came), check for write
 * errors, fsync, give the old file's mode and rename into place; frees t (not
 * NULL). Written through (a device): flush and close. For stdout: flush and
 * check only (stdout stays open). BAFU_EIO on a write, flush, fsync, chmod,
 * close or rename error (the temporary file is then removed and t freed all
 * the same); BAFU_ENOMEM if the held lines could not be stored. */
bafu_status bafu_table_commit(bafu_table *t);

/* Discard: close and remove the temporary file; frees t. NULL-safe. For
 * stdout, or a file written through, it only flushes and closes (what was
 * written stays written). */
void bafu_table_abort(bafu_table *t);

/* For programs whose runtime handles the crash signals itself (Open MPI
 * installs handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, ... at
 * MPI_Init, so the tables' own handlers are not installed there): call it
 * after that initialisation; on those signals the listed temporary files are
 * removed first, then the runtime's handler runs, then the default action.
 * Ignored signals stay ignored. Idempotent. */
void bafu_table_catch_crash_signals(void);

/* Install now the handlers that remove the temporary files on a terminating
 * signal (otherwise installed when the first table is opened), so that a
 * program may install its own handler over them and call the previous one
 * from it (bafu figures: its stages' scratch files first, then the tables').
 * Idempotent. */
void bafu_table_catch_signals(void);

/* The file `path` names: symbolic links followed (to any depth, relative
 * links from their own directory) until a name that is not a link, or does
 * not exist, or a kernel's magic link (/proc/self/fd/1 to "pipe:[N]"), which
 * is kept as the file. *out is malloc'd (caller frees), NULL on error. BAFU_EIO for a
 * link loop (40 levels) or an unreadable link, BAFU_ENOMEM. */
bafu_status bafu_path_resolve(const char *path, char **out);

/* Whether a file can be written at `path` (links followed as above), checked
 * without creating or opening anything: an existing file must not be a
 * directory or read-only; a new one needs an existing, writable directory
 * and a name the directory allows. BAFU_OK, or BAFU_EIO naming the reason;
 * BAFU_ENOMEM. For options checked before the work (a checkpoint path). */
bafu_status bafu_path_writable(const char *path);

#ifdef __cplusplus
}
#endif

#endif
