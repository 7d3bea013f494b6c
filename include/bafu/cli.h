/* bafu/cli.h: the command line as a library call.
 *
 * bafu_cli_run(argc, argv) does what the executable does with the same
 * arguments (argv[0] is the program name, argv[1] the command: "mc",
 * "theory", ...): it writes the command's table (to --out or stdout), its
 * progress and messages to stderr, and returns the executable's exit status
 * (0 done, 1 failed, 2 refused: a bad option, value or input, before any
 * work); bafu_last_status() (bafu/status.h) is then the status of the
 * library error behind the failure, BAFU_OK if the command line refused it
 * itself. It is what bindings call (the Python package), so that every command
 * has one implementation. Not thread-safe: one call at a time per process.
 * Available in the shared library libbafu.so (the static library holds the
 * API functions only); built there without MPI (`bafu sweep` runs serially).
 */
#ifndef BAFU_PUBLIC_CLI_H
#define BAFU_PUBLIC_CLI_H

int bafu_cli_run(int argc, char **argv);

/* The last message line the last bafu_cli_run printed to stderr that starts
 * with "bafu " or "bafu:" (its error when it returned non-zero), without the
 * newline; "" if none. Valid until the next bafu_cli_run. */
const char *bafu_cli_message(void);

#endif
