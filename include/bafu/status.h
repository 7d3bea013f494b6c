/* bafu/status.h: the one status enum of the library, and its messages.
 *
 * Library functions that can fail return a bafu_status (BAFU_OK = 0, so
 * `if (st) ...` tests for an error); the few value-returning functions that
 * signal bad input by NAN or a sentinel instead say so in their comments.
 * Errors are raised through bafu_error(), which records a message so that
 * callers and the CLI can report what failed; set a breakpoint on bafu_error
 * to catch every error at its source. Output arguments are unspecified after
 * an error unless a function's comment says otherwise.
 *
 * Thread safety: the message is kept per thread (a _Thread_local buffer in
 * src/status.c), so bafu_error and bafu_last_error may be used from any number
 * of threads; an error raised inside a library call is read back in the thread
 * that made the call (bafu_mc_run re-raises its workers' errors in the caller's
 * thread). bafu_init_gsl changes process-wide state (see below). */
#ifndef BAFU_STATUS_H
#define BAFU_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  BAFU_OK = 0,
  BAFU_EINVAL,   /* invalid argument or parameter combination */
  BAFU_ENOMEM,   /* an allocation failed */
  BAFU_EIO,      /* file could not be read or written */
  BAFU_EPARSE,   /* input file is malformed */
  BAFU_ENUMERIC, /* a numerical routine failed (non-convergence, non-finite result) */
  BAFU_ELAPACK,  /* LAPACK returned a non-zero info */
  BAFU_ELIMIT    /* refused up front: the memory estimate exceeds the limit (bafu_memory_check) */
} bafu_status;

/* Progress of a long library computation: done of total units, called from
 * the calling thread, done increasing, the last call with done == total (on
 * success). May be NULL where a function takes one. */
typedef void (*bafu_progress_fn)(size_t done, size_t total, void *ctx);

/* A short, static description of a status code ("unknown status" for a value
 * outside the enum); never NULL, cannot fail. */
const char *bafu_status_string(bafu_status s);

/* Record an error message (printf-style, truncated to 511 bytes) in the
 * calling thread's buffer and return `s` unchanged. Cannot fail. Use as
 *   return bafu_error(BAFU_EINVAL, "width must be positive, got %zu", n);
 * The arguments may point into bafu_last_error()'s buffer only if copied
 * first (the buffer is overwritten). */
bafu_status bafu_error(bafu_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The message recorded by the last bafu_error() in this thread ("" if none).
 * Successful calls do not clear it, so read it only after a call returned an
 * error. The pointer refers to the calling thread's buffer: owned by the
 * library, valid until that thread's next bafu_error() (which overwrites it)
 * or its exit. Cannot fail. */
const char *bafu_last_error(void);

/* The status of that last bafu_error() (BAFU_OK if none, or after
 * bafu_error(BAFU_OK, ...)), same thread and lifetime rules. */
bafu_status bafu_last_status(void);

/* Switch off GSL's abort()ing error handler (gsl_set_error_handler_off), so
 * that GSL failures come back as bafu_status errors instead of aborting. The
 * library does this itself when it is loaded (leaving a handler the program
 * installed in place), so calling it is never needed; it remains for programs
 * that install a handler and want the library's choice back. It sets
 * process-wide GSL state: call it before starting threads. Cannot fail. */
void bafu_init_gsl(void);

#ifdef __cplusplus
}
#endif

#endif
