/* fuzz_cli.c: the option parser with the network options (cli_parse,
 * cli_net_finish): the input is a NUL-separated argument list. Parsing only;
 * nothing is run. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  char *argv[66];
  int argc = 0;
  argv[argc++] = "mc";
  for (size_t i = 0; i <= size && argc < 64;) {
    argv[argc++] = buf + i;
    i += strlen(buf + i) + 1;
  }
  argv[argc] = NULL;
  cli_net net;
  cli_opt opts[48];
  size_t n = 0;
  cli_net_options(&net, opts, &n, 48, NULL, CLI_NET_SAMPLING);
  size_t seeds = 8;
  opts[n++] = (cli_opt){"--seeds", OPT_SIZE, &seeds, "S", "draws", NULL, 0};
  opts[n] = (cli_opt){0};
  if (cli_parse("mc", "usage", opts, argc, argv, 1, NULL, 0, NULL) == 0 && cli_net_finish("mc", &net, opts, NULL) == 0) {
    if (bafu_net_params_check(&net.p) != BAFU_OK) abort(); /* accepted options give a valid network */
  }
  cli_net_release(&net);
  free(buf);
  return 0;
}
