/* cli.c: strict option parsing and the shared network options. */
#define _GNU_SOURCE /* strndup, realpath, lstat, dladdr */
#include "bafu/cli.h"
#include "bafu/layout.h"
#include "bafu/params.h"
#include "bafu/preset.h"
#include "bafu/text.h"
#include "cli.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bafu/table.h"

static const char *const loss_names[] = {"mse", "xent", NULL};
static const char *const preset_names[] = {"sp", "ntk", "mup", "fsc", NULL};

int cli_checkpoint_path(const char *cmd, const char *given, const char *out, const char **path, char **own) {
  *own = NULL;
  *path = given;
  if (given || !out || strcmp(out, "-") == 0) return 0;
  /* an output that is no regular file (/dev/null, a FIFO) has no OUT.ckpt */
  char *target;
  struct stat sb;
  if (bafu_path_resolve(out, &target) == BAFU_OK) {
    const int special = stat(target, &sb) == 0 && !S_ISREG(sb.st_mode);
    free(target);
    if (special) return 0;
  }
  if (!(*own = malloc(strlen(out) + 6))) {
    cli_errorf("bafu %s: out of memory\n", cmd);
    return 1;
  }
  sprintf(*own, "%s.ckpt", out);
  *path = *own;
  return 0;
}

int cli_exit_status(bafu_status st) {
  return st == BAFU_EINVAL || st == BAFU_ELIMIT || st == BAFU_EPARSE ? 2 : 1;
}

/* The canonical name of a file that may not exist yet: symbolic links
 * followed, the directory made absolute by realpath. malloc'd. */
static char *canonical(const char *path) {
  char *target;
  if (bafu_path_resolve(path, &target)) return NULL;
  const char *slash = strrchr(target, '/');
  const char *base = slash ? slash + 1 : target;
  char *dir = slash ? strndup(target, slash == target ? 1 : (size_t)(slash - target)) : strdup(".");
  char *rdir = dir ? realpath(dir, NULL) : NULL;
  char *out = malloc(strlen(rdir ? rdir : (dir ? dir : "")) + strlen(base) + 2);
  if (out) sprintf(out, "%s/%s", rdir ? rdir : (dir ? dir : ""), base);
  free(rdir);
  free(dir);
  free(target);
  return out;
}

int cli_distinct_files(const char *cmd, const cli_file *files, size_t n) {
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) {
      const char *a = files[i].path, *b = files[j].path;
      if (!a || !b || strcmp(a, "-") == 0 || strcmp(b, "-") == 0) continue;
      struct stat sa, sb;
      int same;
      if (stat(a, &sa) == 0 && stat(b, &sb) == 0) {
        same = sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
      } else {
        char *ca = canonical(a), *cb = canonical(b);
        same = ca && cb ? strcmp(ca, cb) == 0 : strcmp(a, b) == 0;
        free(ca);
        free(cb);
      }
      if (same) {
        cli_errorf("bafu %s: %s and %s name the same file ('%s'): give each its own\n", cmd, files[i].opt,
                files[j].opt, b);
        return 2;
      }
    }
  return 0;
}

int cli_checkpoint_free(const char *cmd, const char *opt, const char *path) {
  struct stat sb;
  if (!path || lstat(path, &sb) != 0) return 0;
  cli_errorf("bafu %s: %s: '%s' already exists (an interrupted run's checkpoint? add --resume to continue it, "
                  "or remove it)\n", cmd, opt, path);
  return 2;
}

/* The options of the command being run (set by cli_parse), for cli_error. */
static const cli_opt *current_opts;

/* The option of parameter `name` (len bytes): "--" name with '_' as '-', if
 * the command has it; "signal" is the CLI's --loss. */
static const char *flag_of(const char *name, size_t len) {
  if (len == 6 && strncmp(name, "signal", 6) == 0) return "--loss";
  for (const cli_opt *o = current_opts; o && o->name; ++o) {
    size_t i = 0;
    if (strlen(o->name) != len + 2) continue;
    while (i < len && (o->name[2 + i] == name[i] || (o->name[2 + i] == '-' && name[i] == '_'))) ++i;
    if (i == len) return o->name;
  }
  return NULL;
}

/* Whether the command's option `flag` is a flag (no value). */
static int flag_takes_no_value(const char *flag) {
  for (const cli_opt *o = current_opts; o && o->name; ++o)
    if (strcmp(o->name, flag) == 0) return o->type == OPT_FLAG;
  return 0;
}

static int name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

const char *cli_error(void) {
  static char out[1024];
  const char *m = bafu_last_error();
  size_t w = 0;
  /* the leading names, "a: ", "a and b: ", "a/b: ", when every one is an option */
  const char *colon = strstr(m, ": ");
  int lead = colon != NULL;
  for (const char *c = m; lead && c < colon;) {
    const char *e = c;
    while (e < colon && name_char(*e)) ++e;
    if (e == c || !flag_of(c, (size_t)(e - c))) lead = 0;
    if (e < colon && *e == '/') ++e;
    else if (e < colon && strncmp(e, " and ", 5) == 0) e += 5;
    else if (e < colon) lead = 0;
    c = e;
  }
  const char *c = m;
  while (*c && w + 64 < sizeof out) {
    const int start = c == m || !name_char(c[-1]);
    const char *e = c;
    while (start && name_char(*e)) ++e;
    const char *flag = e > c ? flag_of(c, (size_t)(e - c)) : NULL;
    /* a name in the leading list, or "name = value" in the text */
    if (flag && ((lead && c < colon) || strncmp(e, " = ", 3) == 0)) {
      w += (size_t)snprintf(out + w, sizeof out - w, "%s", flag);
      c = lead && c < colon ? e : e + 2; /* "--rng fast" for "rng = fast" */
      if (!(lead && c < colon) && flag_takes_no_value(flag) && strncmp(c, " 1", 2) == 0 && !name_char(c[2]))
        c += 2; /* "--embed" for "embed = 1" */
      continue;
    }
    if (e > c) {
      const size_t n = (size_t)(e - c) < sizeof out - 1 - w ? (size_t)(e - c) : sizeof out - 1 - w;
      memcpy(out + w, c, n);
      w += n;
      c = e;
      continue;
    }
    out[w++] = *c++;
  }
  const size_t rest = strlen(c);
  const size_t n = rest < sizeof out - 1 - w ? rest : sizeof out - 1 - w;
  memcpy(out + w, c, n);
  out[w + n] = '\0';
  return out;
}

/* The message lines of the running command (bafu_cli_message): the text of
 * the cli_errorf calls since the last line that started with "bafu " or
 * "bafu:". */
static char message[4096];
static int message_open; /* the last call did not end its line */

void cli_errorf(const char *fmt, ...) {
  char text[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  fputs(text, stderr);
  const size_t len = strlen(message);
  if (!message_open && (strncmp(text, "bafu ", 5) == 0 || strncmp(text, "bafu:", 5) == 0))
    snprintf(message, sizeof message, "%s", text);
  else if (message_open && len < sizeof message - 1)
    snprintf(message + len, sizeof message - len, "%s", text);
  const size_t n = strlen(text);
  message_open = n > 0 && text[n - 1] != '\n';
}

const char *bafu_cli_message(void) {
  static char line[sizeof message];
  snprintf(line, sizeof line, "%s", message);
  line[strcspn(line, "\n")] = '\0';
  return line;
}

void cli_fail(const char *cmd, const char *context) {
  if (context)
    cli_errorf("bafu %s: %s: %s\n", cmd, context, cli_error());
  else
    cli_errorf("bafu %s: %s\n", cmd, cli_error());
}

/* Largest size accepted for any count; memory estimates refuse far earlier. */
#define CLI_SIZE_MAX ((unsigned long long)1 << 40)

static int parse_unsigned(const char *s, unsigned long long max, unsigned long long *out) {
  if (!*s) return 0;
  for (const char *c = s; *c; ++c)
    if (*c < '0' || *c > '9') return 0;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno == ERANGE || *end || v > max) return -1;
  *out = v;
  return 1;
}

static void print_help(const char *cmd, const char *usage, const cli_opt *opts) {
  printf("%s\n\nOptions:\n", usage);
  for (const cli_opt *o = opts; o->name; ++o) {
    char left[64];
    if (o->type == OPT_FLAG)
      snprintf(left, sizeof left, "%s", o->name);
    else
      snprintf(left, sizeof left, "%s %s", o->name, o->arg ? o->arg : "X");
    printf("  %-26s %s\n", left, o->help);
  }
  printf("  %-26s %s\n", "-h, --help", "print this help and exit");
  printf("  %-26s %s\n", "--list-options", "print each option and its value type, one per line, and exit");
}

/* `--list-options`: "name type" per line (type: size, u64, int, double,
 * string, flag, or choice:a|b|c), for shell completion and for the
 * catalogue test that tries bad values on every numeric option. */
static void print_options(const cli_opt *opts) {
  static const char *const names[] = {"size", "u64", "int", "double", "string", "flag", "choice"};
  for (const cli_opt *o = opts; o->name; ++o) {
    printf("%s %s", o->name, names[o->type]);
    for (int i = 0; o->type == OPT_CHOICE && o->choices[i]; ++i) printf("%c%s", i ? '|' : ':', o->choices[i]);
    printf("\n");
  }
}

static int set_value(const char *cmd, cli_opt *o, const char *v) {
  unsigned long long u;
  int r;
  switch (o->type) {
  case OPT_SIZE:
  case OPT_INT:
    r = parse_unsigned(v, o->type == OPT_INT ? 1000000ULL : CLI_SIZE_MAX, &u);
    if (r == 0 || (r == 1 && u == 0)) {
      cli_errorf("bafu %s: %s: expected a positive integer, got '%s'\n", cmd, o->name, v);
      return 2;
    }
    if (r < 0) {
      cli_errorf("bafu %s: %s: '%s' is too large\n", cmd, o->name, v);
      return 2;
    }
    if (o->type == OPT_INT)
      *(int *)o->dest = (int)u;
    else
      *(size_t *)o->dest = (size_t)u;
    return 0;
  case OPT_U64:
    r = parse_unsigned(v, UINT64_MAX, &u);
    if (r <= 0) {
      cli_errorf("bafu %s: %s: expected a non-negative integer, got '%s'\n", cmd, o->name, v);
      return 2;
    }
    *(uint64_t *)o->dest = (uint64_t)u;
    return 0;
  case OPT_DOUBLE: {
    double d;
    if (bafu_parse_double(v, &d)) {
      *(double *)o->dest = d;
      return 0;
    }
    char *end;
    strtod(v, &end); /* the whole of v a number, but not a finite one? */
    cli_errorf("bafu %s: %s: expected a %snumber, got '%s'\n", cmd, o->name,
            *v && end != v && !*end ? "finite " : "", v);
    return 2;
  }
  case OPT_STRING:
    if (!*v) {
      cli_errorf("bafu %s: %s: expected a non-empty value\n", cmd, o->name);
      return 2;
    }
    *(const char **)o->dest = v;
    return 0;
  case OPT_CHOICE:
    for (int i = 0; o->choices[i]; ++i)
      if (strcmp(o->choices[i], v) == 0) {
        *(int *)o->dest = i;
        return 0;
      }
    cli_errorf("bafu %s: %s: unknown value '%s' (expected", cmd, o->name, v);
    for (int i = 0; o->choices[i]; ++i) cli_errorf("%s%s", i ? ", " : " ", o->choices[i]);
    cli_errorf(")\n");
    return 2;
  case OPT_FLAG:
    *(int *)o->dest = 1;
    return 0;
  }
  return 2;
}

int cli_parse(const char *cmd, const char *usage, cli_opt *opts, int argc, char **argv, int first,
              const char **positional, int max_positional, int *npositional) {
  int npos = 0;
  current_opts = opts;
  for (int i = first; i < argc; ++i) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      print_help(cmd, usage, opts);
      return 1;
    }
    if (strcmp(a, "--list-options") == 0) {
      print_options(opts);
      return 1;
    }
    if (strncmp(a, "--", 2) != 0 || strcmp(a, "--") == 0) {
      if (npos >= max_positional) {
        cli_errorf("bafu %s: unexpected argument '%s' (see bafu %s --help)\n", cmd, a, cmd);
        return 2;
      }
      positional[npos++] = a;
      continue;
    }
    const char *eq = strchr(a, '=');
    const size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
    cli_opt *o = NULL;
    for (cli_opt *c = opts; c->name; ++c)
      if (strlen(c->name) == nlen && strncmp(c->name, a, nlen) == 0) o = c;
    if (!o) {
      cli_errorf("bafu %s: unknown option '%.*s' (see bafu %s --help)\n", cmd, (int)nlen, a, cmd);
      return 2;
    }
    if (o->set && o->type != OPT_FLAG) {
      cli_errorf("bafu %s: %s: given twice\n", cmd, o->name);
      return 2;
    }
    const char *v = NULL;
    if (o->type == OPT_FLAG) {
      if (eq) {
        cli_errorf("bafu %s: %s: takes no value\n", cmd, o->name);
        return 2;
      }
    } else if (eq) {
      v = eq + 1;
    } else {
      if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
        cli_errorf("bafu %s: %s: missing value\n", cmd, o->name);
        return 2;
      }
      v = argv[++i];
    }
    if (set_value(cmd, o, v)) return 2;
    o->set = 1;
  }
  if (npositional) *npositional = npos;
  return 0;
}

static cli_opt *find_opt(cli_opt *opts, const char *name) {
  for (cli_opt *o = opts; o->name; ++o)
    if (strcmp(o->name, name) == 0) return o;
  return NULL;
}

/* Help lines made from the parameter table live until the next command
 * starts (cli_start). */
static char help_arena[16384];
static size_t help_used;

static const char *keep(const char *text) {
  const size_t n = strlen(text) + 1;
  if (help_used + n > sizeof help_arena) return "";
  char *k = memcpy(help_arena + help_used, text, n);
  help_used += n;
  return k;
}

void cli_start(void) {
  message[0] = '\0';
  message_open = 0;
  help_used = 0; /* the previous command's option texts are done with */
}

/* "--sigma-w2" for "sigma_w2". */
static void flag_name(const char *name, char *buf, size_t size) {
  snprintf(buf, size, "--%s", name);
  for (char *c = buf + 2; *c; ++c)
    if (*c == '_') *c = '-';
}

cli_opt cli_param_option(const char *name, void *base) {
  const bafu_param *q = bafu_param_find(name);
  static const cli_opt_type types[] = {[BAFU_PARAM_SIZE] = OPT_SIZE, [BAFU_PARAM_U64] = OPT_U64,
                                       [BAFU_PARAM_DOUBLE] = OPT_DOUBLE, [BAFU_PARAM_CHOICE] = OPT_CHOICE,
                                       [BAFU_PARAM_FLAG] = OPT_FLAG, [BAFU_PARAM_STRING] = OPT_STRING};
  char flag[64], help[512], def[96] = "";
  flag_name(q->name, flag, sizeof flag);
  /* the default: what 0 means, or the value in base now (the command's own default) */
  if (q->zero && (q->type == BAFU_PARAM_STRING || bafu_param_get(q, base) == 0))
    snprintf(def, sizeof def, " [%s]", q->zero);
  else if (q->type != BAFU_PARAM_FLAG && q->type != BAFU_PARAM_STRING) {
    char v[64];
    if (q->type == BAFU_PARAM_U64)
      snprintf(v, sizeof v, "%llu", (unsigned long long)*(const uint64_t *)bafu_param_cfield(q, base));
    else
      bafu_param_format(q, bafu_param_get(q, base), 0, v, sizeof v);
    if (q->zero && q->type == BAFU_PARAM_DOUBLE)
      snprintf(def, sizeof def, " [%s; 0: %s]", v, q->zero);
    else
      snprintf(def, sizeof def, " [%s]", v);
  }
  size_t used = 0;
  help[0] = '\0';
  for (size_t i = 0; q->choices && q->choices[i]; ++i)
    used += (size_t)snprintf(help + used, sizeof help - used, "%s%s", i ? " | " : "", q->choices[i]);
  snprintf(help + used, sizeof help - used, "%s%s%s", used ? ": " : "", q->help, def);
  return (cli_opt){keep(flag), types[q->type], bafu_param_field(q, base), q->arg, keep(help), q->choices, 0};
}

void cli_net_options(cli_net *net, cli_opt *opts, size_t *count, size_t cap, const bafu_net_params *defaults,
                     unsigned what) {
  net->p = defaults ? *defaults : bafu_net_params_default();
  net->loss = -1;
  net->probe = 0;
  net->input_file = NULL;
  net->x = NULL;
  net->preset = -1;
  size_t n;
  const bafu_param *table = bafu_params(&n);
  for (size_t i = 0; i < n && *count < cap - 1; ++i) {
    const bafu_param *q = &table[i];
    if (q->group != BAFU_PARAMS_NET || (q->flags & BAFU_PARAM_NO_CLI)) continue;
    if (!(what & CLI_NET_SAMPLING) && (q->flags & BAFU_PARAM_SAMPLING)) continue;
    opts[(*count)++] = cli_param_option(q->name, &net->p);
    if (strcmp(q->name, "sigma2_output") == 0 && *count < cap - 1) /* the rules that set variances and rates */
      opts[(*count)++] = (cli_opt){"--preset", OPT_CHOICE, &net->preset, "P",
                                   "sp | ntk | mup | fsc: init and learning rates by scaling rule (bafu theory --presets) [none]",
                                   preset_names, 0};
  }
  const cli_opt signal[] = {
      {"--probe", OPT_FLAG, &net->probe, NULL, "backward signal: Gaussian probe b_L, N(0,1/n) entries [default]", NULL, 0},
      {"--loss", OPT_CHOICE, &net->loss, "mse|xent", "readout y = V phi(f_L) with squared loss on N(0,1) targets (mse) or softmax cross-entropy on uniform classes (xent) [none: the --probe signal]", loss_names, 0},
      {"--input", OPT_STRING, &net->input_file, "FILE", "read the batch from a table (one sample per row) [N(0,I)]", NULL, 0},
  };
  for (size_t i = 0; i < 3 && *count < cap - 1; ++i)
    if ((what & CLI_NET_SAMPLING) || i == 1) opts[(*count)++] = signal[i];
  if (!(what & CLI_NET_SAMPLING)) /* training: a loss is required, its default follows the data */
    opts[*count - 1].help = "readout y = V phi(f_L) with squared loss (mse) or softmax cross-entropy (xent) "
                            "[mse for teacher, xent for fashion-mnist]";
  opts[*count] = (cli_opt){0};
}

static int net_finish(const char *cmd, cli_net *net, cli_opt *opts, const char *out) {
  bafu_net_params *p = &net->p;
  const cli_file files[] = {{"--input", net->input_file}, {"--out", out}};
  if (cli_distinct_files(cmd, files, 2)) return 2;
  if (net->probe && net->loss >= 0) {
    cli_errorf("bafu %s: --probe and --loss: choose one backward signal\n", cmd);
    return 2;
  }
  p->signal = net->loss < 0 ? BAFU_SIGNAL_PROBE : net->loss == 1 ? BAFU_SIGNAL_XENT : BAFU_SIGNAL_MSE;
  if (find_opt(opts, "--outputs")->set && p->signal == BAFU_SIGNAL_PROBE) {
    cli_errorf("bafu %s: --outputs: only meaningful with --loss\n", cmd);
    return 2;
  }
  if (p->signal == BAFU_SIGNAL_XENT && !find_opt(opts, "--outputs")->set) p->outputs = 10;
  if (net->input_file) {
    size_t d, m;
    if (bafu_read_inputs(net->input_file, &net->x, &d, &m)) {
      cli_fail(cmd, "--input");
      return 2;
    }
    if (find_opt(opts, "--input-dim")->set && p->input_dim != d) {
      cli_errorf("bafu %s: --input-dim: %zu, but '%s' has %zu columns\n", cmd, p->input_dim, net->input_file, d);
      return 2;
    }
    if (find_opt(opts, "--batch")->set && p->batch != m) {
      cli_errorf("bafu %s: --batch: %zu, but '%s' has %zu rows\n", cmd, p->batch, net->input_file, m);
      return 2;
    }
    p->input_dim = d;
    p->batch = m;
    size_t nz = 0;
    while (nz < d * m && net->x[nz] == 0) ++nz;
    if (nz == d * m) { /* phi(0) = 0 for every activation: nothing would move, in any subcommand */
      cli_errorf("bafu %s: --input: every sample in '%s' is zero (the features and gradients vanish)\n", cmd,
              net->input_file);
      return 2;
    }
  }
  if (net->input_file && find_opt(opts, "--inputs")->set) {
    cli_errorf("bafu %s: --inputs and --input: choose drawn or given inputs\n", cmd);
    return 2;
  }
  if (net->preset >= 0) {
    static const char *const fixed[] = {"--lr-input", "--lr-hidden",     "--lr-output",      "--sigma2-input",
                                        "--sigma2-output", "--lr-bias", "--lr-bias-input", "--lr-bias-output"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; ++i)
      if (find_opt(opts, fixed[i])->set) {
        cli_errorf("bafu %s: %s: set by --preset %s (drop one of them)\n", cmd, fixed[i], preset_names[net->preset]);
        return 2;
      }
    if (bafu_preset_apply(p, (bafu_preset)net->preset)) {
      cli_fail(cmd, NULL);
      return 2;
    }
  }
  static const char *const bias_rates[] = {"--lr-bias", "--lr-bias-input", "--lr-bias-output"};
  for (size_t i = 0; i < 3; ++i)
    if (find_opt(opts, bias_rates[i])->set && !(p->bias_var > 0)) {
      cli_errorf("bafu %s: %s: only meaningful with --bias-var V > 0\n", cmd, bias_rates[i]);
      return 2;
    }
  if (bafu_net_params_check(p)) {
    cli_fail(cmd, NULL);
    return 2;
  }
  return 0;
}

/* On error the inputs read from --input are released here: the callers
 * return at once. */
int cli_net_finish(const char *cmd, cli_net *net, cli_opt *opts, const char *out) {
  const int r = net_finish(cmd, net, opts, out);
  if (r) cli_net_release(net);
  return r;
}

void cli_net_release(cli_net *net) {
  free(net->x);
  net->x = NULL;
}

int cli_net_refuse_sampling(const char *cmd, cli_net *net) {
  if (!net->p.conditional && !net->p.regenerate) return 0;
  cli_errorf("bafu %s: %s: a Monte Carlo option (bafu mc, sweep); the %s draws no weights\n", cmd,
          net->p.conditional ? "--conditional" : "--regenerate", cmd);
  cli_net_release(net);
  return 2;
}

int cli_first_trained(const bafu_net_params *p) {
  bafu_layout lay;
  if (bafu_layout_build(p, &lay)) return INT_MAX;
  const size_t j = bafu_layout_first_trained(&lay);
  return j < lay.J ? bafu_layout_entry(&lay, j, NULL, NULL) : INT_MAX;
}

void cli_net_describe(const bafu_net_params *p, char *buf, size_t size) { bafu_net_params_describe(p, buf, size); }

#ifndef BAFU_SOURCE_DIR
#define BAFU_SOURCE_DIR "."
#endif

const char *cli_share_dir(const char *sub) {
  static char found[2][4200];
  const int doc = strcmp(sub, "doc") == 0;
  char *out = found[doc];
  if (out[0]) return out;
  char exe[4000];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len > 0) {
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = '\0';
      struct stat sb;
      snprintf(out, sizeof found[0], "%s/../share/%s", exe, doc ? "doc/bafu/theory" : "bafu/plots");
      if (stat(out, &sb) == 0 && S_ISDIR(sb.st_mode)) return out;
    }
  }
#ifdef BAFU_LIB_UP /* in libbafu.so: next to the installed library, LIBDIR/BAFU_LIB_UP/share */
  Dl_info info;
  if (dladdr((void *)cli_share_dir, &info) && info.dli_fname) {
    char lib[4000];
    snprintf(lib, sizeof lib, "%s", info.dli_fname);
    char *slash = strrchr(lib, '/');
    if (slash) {
      *slash = '\0';
      struct stat sb;
      snprintf(out, sizeof found[0], "%s/%s/share/%s", lib, BAFU_LIB_UP, doc ? "doc/bafu/theory" : "bafu/plots");
      if (stat(out, &sb) == 0 && S_ISDIR(sb.st_mode)) return out;
    }
  }
#endif
  snprintf(out, sizeof found[0], "%s/%s", BAFU_SOURCE_DIR, doc ? "theory" : "plots");
  return out;
}

const char *cli_bafu_exe(void) {
  static char exe[4200];
  if (exe[0]) return exe;
#ifdef BAFU_LIB_UP /* in libbafu.so, loaded by another program: the bafu beside the library (a build
                      tree) or in the prefix's bin/ (an installation) */
  Dl_info info;
  if (dladdr((void *)cli_bafu_exe, &info) && info.dli_fname) {
    char lib[4000];
    snprintf(lib, sizeof lib, "%s", info.dli_fname);
    char *slash = strrchr(lib, '/');
    if (slash) {
      *slash = '\0';
      const char *const rel[] = {"", "/" BAFU_LIB_UP "/bin"};
      for (int i = 0; i < 2; ++i) {
        snprintf(exe, sizeof exe, "%s%s/bafu", lib, rel[i]);
        if (access(exe, X_OK) == 0) return exe;
      }
    }
  }
  exe[0] = '\0';
  return NULL;
#else
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) {
    exe[0] = '\0';
    return NULL;
  }
  exe[len] = '\0';
  return exe;
#endif
}
