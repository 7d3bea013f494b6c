/* status.c: error reporting (see include/bafu/status.h). */
#include "bafu/build_id.h"
#include "bafu/status.h"
#include "bafu/version.h"

#include <gsl/gsl_errno.h>
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_message[512];
static _Thread_local bafu_status last_status;

const char *bafu_status_string(bafu_status s) {
  switch (s) {
  case BAFU_OK: return "success";
  case BAFU_EINVAL: return "invalid argument";
  case BAFU_ENOMEM: return "out of memory";
  case BAFU_EIO: return "input/output error";
  case BAFU_EPARSE: return "malformed input";
  case BAFU_ENUMERIC: return "numerical failure";
  case BAFU_ELAPACK: return "LAPACK failure";
  case BAFU_ELIMIT: return "over the memory limit";
  }
  return "unknown status";
}

bafu_status bafu_error(bafu_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_message, sizeof last_message, fmt, ap);
  va_end(ap);
  last_status = s;
  return s;
}

const char *bafu_last_error(void) { return last_message; }
bafu_status bafu_last_status(void) { return last_status; }

void bafu_init_gsl(void) { gsl_set_error_handler_off(); }

const char *bafu_version(void) { return BAFU_VERSION_STRING; }
int bafu_version_number(void) { return BAFU_VERSION_NUMBER; }
const char *bafu_version_full(void) {
  return BAFU_BUILD_ID[0] ? BAFU_VERSION_STRING " (commit " BAFU_BUILD_ID ")" : BAFU_VERSION_STRING;
}

/* No initialisation duty for callers: when the library is loaded (or, linked
 * statically, when the program starts), GSL's default handler, which calls
 * abort(), is switched off, so that GSL failures come back as statuses. A
 * handler the program has installed itself is left in place. */
#if defined(__GNUC__)
__attribute__((constructor)) static void gsl_handler_off_at_load(void) {
  gsl_error_handler_t *old = gsl_set_error_handler_off();
  if (old) gsl_set_error_handler(old); /* the program's own */
}
#endif
