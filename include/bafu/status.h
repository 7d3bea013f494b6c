/* bafu/status.h: the one status enum of the library, and its messages.
 *
 * Every library function that can fail returns a bafu_status. Errors are raised
 * through bafu_error(), which records a message (thread-local) so that callers
 * and the CLI can report what failed; set a breakpoint on bafu_error to catch
 * every error at its source. */
#ifndef BAFU_STATUS_H
#define BAFU_STATUS_H

typedef enum {
  BAFU_OK = 0,
  BAFU_EINVAL,   /* invalid argument or parameter combination */
  BAFU_ENOMEM,   /* allocation failed or the memory estimate exceeds the limit */
  BAFU_EIO,      /* file could not be read or written */
  BAFU_EPARSE,   /* input file is malformed */
  BAFU_ENUMERIC, /* a numerical routine failed (non-convergence, non-finite result) */
  BAFU_ELAPACK   /* LAPACK returned a non-zero info */
} bafu_status;

/* A short, static description of a status code. */
const char *bafu_status_string(bafu_status s);

/* Record an error message (printf-style) and return `s`. Use as
 *   return bafu_error(BAFU_EINVAL, "width must be positive, got %zu", n); */
bafu_status bafu_error(bafu_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The message recorded by the last bafu_error() in this thread ("" if none). */
const char *bafu_last_error(void);

/* Switch off GSL's abort()ing error handler; call once from every main(). */
void bafu_init_gsl(void);

#endif
