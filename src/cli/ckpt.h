/* ckpt.h: the checkpoint files of `bafu sweep`, `bafu train` and `bafu
 * figures`, with integrity checks.
 *
 * Every checkpoint carries CRC-32 checksums (zlib) over all of its bytes and
 * is checked for sense when read (finite numbers, counts that match, point ids
 * of the grid without repeats); a damaged one is refused with a message naming
 * the file (BAFU_EPARSE) and is never deleted or rewritten. The only
 * tolerated defect is the one an interruption leaves: a sweep journal whose
 * last record is cut short (that point is redone).
 *
 *  sweep journal (appended one point at a time):
 *    "bafu sweep checkpoint 2 VERSION\n" "grid DESCRIPTION\n" "check C0\n"
 *    then per finished point "point K LEN CK HK\n" and LEN bytes of rows,
 *    where C0 = crc32 of the first two lines, CK = crc32 continued from the
 *    previous record's over "point K LEN" and the rows (the chain covers the
 *    whole file, so an edited, removed or reordered record is detected), and
 *    HK = crc32 of "point K LEN CK" (the line checks itself, so a record
 *    shorter than LEN after a sound line can only be an interruption).
 *  train checkpoint (replaced atomically):
 *    "bafu train checkpoint 2\n", u64 step, u64 n1, n1 bytes of training
 *    state (bafu/train.h), u64 n2, n2 bytes of table rows, u32 crc32 of all
 *    the bytes before it (little-endian numbers).
 *  figures: stage list and training runs, text replaced atomically, ending in
 *    "crc C\n" over the bytes before that line. */
#ifndef BAFU_CLI_CKPT_H
#define BAFU_CLI_CKPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bafu/status.h"

/* ---- sweep ---- */

/* The open journal: the stream (positioned at the end) and the chain value. */
typedef struct {
  FILE *f;
  uint32_t crc;
} ckpt_journal;

/* A point's rows are sound if check(k, text, ctx) returns 0 (called on every
 * loaded record; the text is NUL-terminated). */
typedef int (*ckpt_rows_check)(size_t k, const char *text, void *ctx);

/* Load a journal for the grid `grid` of npoints points: rows[k] (malloc'd, for
 * k < npoints, all NULL on entry) for every recorded point, *done their
 * count; then reopen it for appending after the last complete record (a
 * record cut short is truncated away). Errors: BAFU_EIO (cannot open or
 * truncate), BAFU_EINVAL (a checkpoint of another grid or bafu version, or
 * not a sweep checkpoint: "--resume: 'PATH' ..."), BAFU_EPARSE (damaged:
 * a checksum, a point id out of range or repeated, rows that fail check),
 * BAFU_ENOMEM. On error the file is untouched and rows[] is freed and
 * zeroed. */
bafu_status ckpt_sweep_load(const char *path, const char *grid, size_t npoints, ckpt_rows_check check, void *ctx,
                            char **rows, size_t *done, ckpt_journal *j);

/* Create a new journal at path (which must not exist: O_EXCL). BAFU_EIO. */
bafu_status ckpt_sweep_create(const char *path, const char *grid, ckpt_journal *j);

/* Append point k's rows and flush. BAFU_EIO. */
bafu_status ckpt_sweep_append(ckpt_journal *j, size_t k, const char *text);

/* ---- ownership of a checkpoint path during a run ---- */

/* The file this run last wrote (or adopted with --resume) at a checkpoint
 * path, by device and inode. A run replaces only that file, or creates one
 * where none is; finding another file there (a concurrent run given the same
 * path) stops it, and a finished run removes only its own file. */
typedef struct {
  uint64_t dev, ino;
  int have;
} ckpt_owner;

/* Lock the directory of path (flock, exclusive) for a check and a save that
 * other bafu runs must not interleave with; the descriptor to unlock, or -1
 * (no lock could be had: the check still runs). */
int ckpt_owner_lock(const char *path);
void ckpt_owner_unlock(int fd);

/* 1 if path holds this run's file (o->have) or nothing (!o->have), else 0. */
int ckpt_owner_check(const ckpt_owner *o, const char *path);

/* Record the file now at path as this run's (after a save, or an adopted
 * checkpoint); o->have = 0 if there is none. */
void ckpt_owner_record(ckpt_owner *o, const char *path);

/* ---- train ---- */

/* Replace path atomically (bafu/table.h) with a checkpoint. 0 on success. */
int ckpt_train_save(const char *path, size_t step, const void *state, size_t state_len, const char *rows,
                    size_t rows_len);

/* Read a train checkpoint: *state and *rows malloc'd (caller frees; rows
 * NUL-terminated), *step the step it continues from. The rows must be the
 * table rows of steps 0 .. step-1 logged every log_every steps: a header line
 * and then, for each logged step, the same number of rows of finite numbers,
 * as many fields as the header, final = 0. Errors: BAFU_EIO (cannot open:
 * not when the file is missing, see below), BAFU_EINVAL (not a train
 * checkpoint, or sound rows logged at another interval than log_every: another
 * configuration), BAFU_EPARSE (damaged: sizes, checksum, rows), BAFU_ENOMEM.
 * A missing file: BAFU_OK with *state = NULL (nothing to resume). */
bafu_status ckpt_train_load(const char *path, size_t log_every, size_t *step, void **state, size_t *state_len,
                            char **rows, size_t *rows_len);

/* ---- figures ---- */

/* Write `text` (lines) to path atomically, followed by its "crc C" line. */
int ckpt_text_save(const char *path, const char *text, size_t len);

/* Read a file written by ckpt_text_save: its text without the crc line
 * (malloc'd, NUL-terminated; *text NULL if the file is missing). BAFU_EPARSE
 * if the crc line is missing or does not match, or the text holds a NUL;
 * BAFU_EIO, BAFU_ENOMEM. */
bafu_status ckpt_text_load(const char *path, char **text, size_t *len);

#endif
