/* bafu/params.h: the one table of parameters.
 *
 * Every field of bafu_net_params (bafu/net.h) and every setting of
 * bafu_train_config (bafu/train.h) is described once here: its name (the
 * struct field's, used in messages, sweep keys, description lines and
 * fingerprints; the command line's option is "--" and the name with '-' for
 * '_'), its type, default, range, help text, whether the training checkpoint's
 * fingerprint includes it, and its place among the axes of bafu sweep's grids. From this table
 * come the defaults (bafu_net_params_default, bafu_train_config_default), the
 * range checks of bafu_net_params_check and bafu_train_config_check, the
 * description line of every table (bafu_net_params_describe), the training
 * fingerprint, and on the command line the options, --help and
 * --list-options (so also the numeric-option catalogue test, which holds
 * tests/numeric_options.txt to --list-options). Adding a parameter means one
 * entry here plus its use.
 *
 * Thread safety: the table is constant; every function here is reentrant.
 * None can fail except where a status is returned. */
#ifndef BAFU_PARAMS_H
#define BAFU_PARAMS_H

#include <stddef.h>

#include "bafu/net.h"
#include "bafu/status.h"
#include "bafu/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  BAFU_PARAM_SIZE,   /* size_t */
  BAFU_PARAM_U64,    /* uint64_t */
  BAFU_PARAM_DOUBLE, /* double, always finite */
  BAFU_PARAM_CHOICE, /* an enum: index into choices[] (the names by value) */
  BAFU_PARAM_FLAG,   /* int, 0 or 1 */
  BAFU_PARAM_STRING  /* const char *, NULL for the default */
} bafu_param_type;

/* Which struct a parameter's offset refers to. */
typedef enum { BAFU_PARAMS_NET, BAFU_PARAMS_TRAIN } bafu_param_group;

/* flags */
#define BAFU_PARAM_FINGERPRINT 1u /* part of the training fingerprint (the trajectory depends on it) */
#define BAFU_PARAM_DESCRIBE 4u    /* in the description line of every table */
#define BAFU_PARAM_IF_SET 8u      /* ... only when not the default */
#define BAFU_PARAM_IF_BIASES 16u  /* ... only when bias_var > 0 */
#define BAFU_PARAM_NO_CLI 32u     /* no command-line option of its own (signal: --probe, --loss) */
#define BAFU_PARAM_SAMPLING 64u   /* how the Monte Carlo draws, not the network: bafu mc only, not training */

typedef struct {
  const char *name;   /* "sigma_w2" */
  bafu_param_type type;
  bafu_param_group group;
  size_t offset;      /* offsetof the field in bafu_net_params or bafu_train_config */
  double def;         /* default (SIZE, U64, DOUBLE, CHOICE, FLAG) */
  double lo, hi;      /* range of numbers: lo <= v <= hi (lo_open, hi_open: strict) */
  int lo_open, hi_open;
  const char *const *choices; /* CHOICE: names by value, NULL-terminated */
  const char *zero;   /* what 0 means where it is special ("= sigma_w2", "no biases"), or NULL */
  const char *arg;    /* the value's name in --help ("S") */
  const char *help;   /* one line, without the default */
  unsigned flags;
  int axis;           /* > 0: a grid axis of bafu sweep, at this position (the last varies fastest): the net
                         parameters in Monte Carlo grids (task = mc), those without BAFU_PARAM_SAMPLING and
                         the training settings in training grids (task = train); axes 1..8 are columns of
                         every grid's table, the others when the grid sets them (bafu/sweep.h) */
} bafu_param;

/* The table, in description-line order (net parameters, then training
 * settings); *count entries. */
const bafu_param *bafu_params(size_t *count);

/* The entry named `name` (NULL if none). */
const bafu_param *bafu_param_find(const char *name);

/* The field of q in a struct of q's group. */
void *bafu_param_field(const bafu_param *q, void *base);
const void *bafu_param_cfield(const bafu_param *q, const void *base);

/* The value as a double (CHOICE and FLAG: the integer), and set from one. */
double bafu_param_get(const bafu_param *q, const void *base);
void bafu_param_set(const bafu_param *q, void *base, double v);

/* Check the value of q in base against its range: BAFU_EINVAL with the
 * message "NAME: must be ..." (naming the parameter), or BAFU_OK. */
bafu_status bafu_param_check(const bafu_param *q, const void *base);

/* Parse `text` as a value of q (a number, or a choice's name) into *v:
 * 1 on success (range not checked), 0 if it is not one. */
int bafu_param_parse(const bafu_param *q, const char *text, double *v);

/* The value v of q as text into buf: sizes as integers, choices by name,
 * doubles with %g (exact: %a). Truncated to size (>= 1). */
void bafu_param_format(const bafu_param *q, double v, int exact, char *buf, size_t size);

/* The range as words, "a finite number > 0", "a positive integer",
 * "relu, linear, ...", into buf (size >= 1). */
void bafu_param_range_text(const bafu_param *q, char *buf, size_t size);

/* Every parameter of group g in base (a bafu_net_params or a
 * bafu_train_config, without its net) checked against its range, in table
 * order: the first failure's bafu_param_check status, or BAFU_OK. */
bafu_status bafu_params_check_group(bafu_param_group g, const void *base);

/* The description line of a network, "arch=mlp width=512 ...": every
 * described parameter as name=value in table order, the values in effect
 * (input_dim and the variances of the first and last layer resolved), beta
 * after branch_exponent, conditional only when set, the bias rates only with
 * biases. Truncated to size (>= 1). */
void bafu_net_params_describe(const bafu_net_params *p, char *buf, size_t size);

/* The training fingerprint: every fingerprinted parameter of c and c->net
 * as name=value, numbers exact (hex floats). Truncated to size (>= 1). */
void bafu_params_fingerprint(const bafu_train_config *c, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
