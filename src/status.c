/* status.c: error reporting (see include/bafu/status.h). */
#include "bafu/status.h"

#include <gsl/gsl_errno.h>
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_message[512];

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
  return s;
}

const char *bafu_last_error(void) { return last_message; }

void bafu_init_gsl(void) { gsl_set_error_handler_off(); }
