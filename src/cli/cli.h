/* cli.h: the command-line layer shared by every subcommand.
 *
 * Options are described by a table of cli_opt; cli_parse() parses argv
 * strictly (whole-string numbers, finite, in range) and reports the first
 * problem as one line "bafu <cmd>: --option: reason" on stderr. */
#ifndef BAFU_CLI_H
#define BAFU_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "bafu/net.h"

typedef enum {
  OPT_SIZE,   /* size_t, >= 1 */
  OPT_U64,    /* uint64_t, any non-negative integer */
  OPT_INT,    /* int >= 1 */
  OPT_DOUBLE, /* finite double */
  OPT_STRING, /* const char * */
  OPT_FLAG,   /* int set to 1, no argument */
  OPT_CHOICE  /* int index into choices (NULL-terminated) */
} cli_opt_type;

typedef struct {
  const char *name;            /* "--width" */
  cli_opt_type type;
  void *dest;
  const char *arg;             /* argument name in --help, e.g. "N" */
  const char *help;            /* one line, with the default in brackets */
  const char *const *choices;  /* OPT_CHOICE */
  int set;                     /* filled by cli_parse: given on the command line */
} cli_opt;

/* Parse argv[first..argc) against opts (terminated by a {NULL} entry).
 * Positional arguments are stored in positional[] (at most max_positional).
 * Returns 0 on success, 1 if --help or --list-options was printed, 2 on a usage error (message
 * already printed). */
int cli_parse(const char *cmd, const char *usage, cli_opt *opts, int argc, char **argv, int first,
              const char **positional, int max_positional, int *npositional);

/* The checkpoint path of a run writing to `out`: `given` if set, else
 * OUT.ckpt (malloc'd into *own, which the caller frees), none (NULL) for
 * stdout. Returns 0, or 1 with a message printed if out of memory. */
int cli_checkpoint_path(const char *cmd, const char *given, const char *out, const char **path, char **own);

/* The files of a run, by option: any two that name the same file (the same
 * device and inode, or the same path once symbolic links and the directory
 * are resolved) are refused with one line naming both options; NULL and "-"
 * (stdout) are skipped. Returns 0, or 2 with the message printed. */
typedef struct {
  const char *opt;  /* "--out", "FILE", ... */
  const char *path;
} cli_file;
int cli_distinct_files(const char *cmd, const cli_file *files, size_t n);

/* A run that starts a new checkpoint at `path` (not --resume): refused (2,
 * message printed) if anything exists there, since it is not this run's
 * checkpoint: an interrupted run's (resume it) or another file (kept).
 * opt names the option in the message. Returns 0 if the path is free. */
int cli_checkpoint_free(const char *cmd, const char *opt, const char *path);

/* Exit status of a failed library call (the README's "Exit status"): 2 when
 * the request was refused before any work (BAFU_EINVAL, BAFU_ELIMIT,
 * BAFU_EPARSE: bad parameters, over the memory limit, a malformed input
 * file), 1 when a valid request failed while running (I/O, memory, numerical
 * failure). A caller that knows a BAFU_EIO comes from reading an input file
 * before any work exits 2 for it. */
int cli_exit_status(bafu_status st);

/* The library's last error in the command line's words: library messages
 * name parameters ("sigma_w2: must be ...", "needs rng = fast"); the names
 * before the first ": " and each "name = value" become the options of the
 * command last given to cli_parse ("--sigma-w2: must be ...", "needs --rng
 * fast"). Names the command has no option for are kept. A static buffer. */
const char *cli_error(void);

/* Print "bafu <cmd>: <message>" with the library's last error (cli_error). */
void cli_fail(const char *cmd, const char *context);

/* fprintf(stderr, ...) for the messages of a command ("bafu <cmd>: ..."),
 * also kept for bafu_cli_message. */
void cli_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Before each command (bafu_cli_run): forget the last one's messages and
 * option texts. */
void cli_start(void);

/* The network options shared by `mc`, `theory`, `spectrum`, `kernel`. */
typedef struct {
  bafu_net_params p; /* the parameters' options write here directly */
  int loss, probe;   /* --loss (-1: none, 0 mse, 1 xent), --probe: p.signal */
  int preset; /* -1: none, else a bafu_preset */
  const char *input_file;
  double *x; /* inputs read from --input (d x m), or NULL */
} cli_net;

/* The option of a parameter of the table (bafu/params.h): "--" and its name
 * with '-' for '_', its type, its help with the default (what 0 means, or
 * the value in `base` now: the command's own default); it writes into the
 * field of `base` (a bafu_net_params or bafu_train_config, as the entry's
 * group says). name must be in the table. */
cli_opt cli_param_option(const char *name, void *base);

/* Append the network options to opts (at position *count, capacity cap):
 * one per parameter of the table's net group (but signal, step), --preset,
 * --loss, and with CLI_NET_SAMPLING --regenerate, --conditional, --probe and
 * --input. The defaults are `defaults` (NULL: bafu_net_params_default()). */
#define CLI_NET_SAMPLING 1u
void cli_net_options(cli_net *net, cli_opt *opts, size_t *count, size_t cap, const bafu_net_params *defaults,
                     unsigned what);
/* After parsing: refuse an --input that is the --out file (out: the run's
 * --out, or NULL), convert choices, read --input, check combinations.
 * Returns 0 or 2 (message printed). */
int cli_net_finish(const char *cmd, cli_net *net, cli_opt *opts, const char *out);
void cli_net_release(cli_net *net);
/* For commands that draw no weights (theory, kernel): --conditional and
 * --regenerate are refused rather than ignored. Prints the message, releases
 * net and returns 2; returns 0 if neither is set. */
int cli_net_refuse_sampling(const char *cmd, cli_net *net);

/* The label of the first layer with a trained parameter (a non-zero rate,
 * and for residual blocks a non-zero beta), INT_MAX if none: the BFK of
 * every layer below it is 0. */
int cli_first_trained(const bafu_net_params *p);

/* "arch=mlp width=512 ..." into buf. */
void cli_net_describe(const bafu_net_params *p, char *buf, size_t size);


/* Subcommands. */
int cmd_mc(int argc, char **argv);
int cmd_theory(int argc, char **argv);
int cmd_kernel(int argc, char **argv);
int cmd_spectrum(int argc, char **argv);
int cmd_figures(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_reduce(int argc, char **argv);

/* The directory of bafu's shared files `sub` ("plots": the gnuplot scripts;
 * "doc": the theory documents): next to an installed executable,
 * EXE/../share/bafu/plots or EXE/../share/doc/bafu/theory when it exists (in
 * libbafu.so also next to the installed library, LIBDIR/../share/...), else
 * the source tree's (plots/, theory/) it was built from. Static storage;
 * cannot fail. */
const char *cli_share_dir(const char *sub);

/* The bafu executable, to run stages as child processes: this process's own
 * (/proc/self/exe), or in libbafu.so the bafu beside the library or in the
 * prefix's bin/; NULL if none is found. Static storage. */
const char *cli_bafu_exe(void);

#endif
