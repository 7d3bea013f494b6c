/* params.c: the one table of parameters (bafu/params.h), and what is made
 * from it: defaults, range checks, the description line, the training
 * fingerprint. */
#include "bafu/params.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bafu/net.h"
#include "bafu/text.h"
#include "bafu/train.h"

static const char *const arch_names[] = {"mlp", "resnet", NULL};
static const char *const inputs_names[] = {"dense", "onehot", NULL};
static const char *const init_names[] = {"gaussian", "orthogonal", NULL};
static const char *const signal_names[] = {"probe", "mse", "xent", NULL};
static const char *const rng_names[] = {"gsl", "fast", NULL};
static const char *const data_names[] = {"teacher", "fashion-mnist", NULL};
static const char *const split_names[] = {"preset", "even", NULL};
static const char *const schedule_names[] = {"constant", "linear", "cosine", NULL};
static const char *const branch_norm_names[] = {"none", "rms", NULL};

#define D (BAFU_PARAM_DESCRIBE)
#define F (BAFU_PARAM_FINGERPRINT)
#define NET(field) BAFU_PARAMS_NET, offsetof(bafu_net_params, field)
#define TRAIN(field) BAFU_PARAMS_TRAIN, offsetof(bafu_train_config, field)
#define SZ BAFU_PARAM_SIZE
#define U6 BAFU_PARAM_U64
#define DB BAFU_PARAM_DOUBLE
#define CH BAFU_PARAM_CHOICE
#define FL BAFU_PARAM_FLAG
#define ST BAFU_PARAM_STRING
#define INF HUGE_VAL

/* Columns: name, type, group and offset, default, lo, hi, lo_open, hi_open,
 * choices, zero, arg, help, flags, grid axis. */
static const bafu_param table[] = {
    /* the network (bafu_net_params), in description-line order */
    {"arch", CH, NET(arch), BAFU_ARCH_MLP, 0, 0, 0, 0, arch_names, NULL, "A", "the network: an MLP or a ResNet", D | F, 1},
    {"width", SZ, NET(width), 512, 1, INF, 0, 0, NULL, NULL, "N", "width n of every hidden layer", D | F, 2},
    {"depth", SZ, NET(depth), 16, 1, INF, 0, 0, NULL, NULL, "L", "number of hidden layers / residual blocks", D | F, 3},
    {"input_dim", SZ, NET(input_dim), 0, 0, INF, 0, 0, NULL, "= width", "D", "input dimension d", D | F, 17},
    {"batch", SZ, NET(batch), 1, 1, INF, 0, 0, NULL, NULL, "M", "inputs per forward pass", D | F, 18},
    {"act", CH, NET(act), BAFU_ACT_RELU, 0, 0, 0, 0, bafu_act_names, NULL, "F", "activation", D | F, 4},
    {"sigma_w2", DB, NET(sigma_w2), 2, 0, INF, 1, 0, NULL, NULL, "S", "weight variance S/fan_in", D | F, 5},
    {"sigma2_input", DB, NET(sigma2_input), 0, 0, INF, 0, 0, NULL, "= sigma_w2", "S", "layer reading x: variance S/d", D | F, 15},
    {"sigma2_output", DB, NET(sigma2_output), 0, 0, INF, 0, 0, NULL, "= sigma_w2", "S", "readout: variance S/n", D | F, 19},
    {"inputs", CH, NET(inputs), BAFU_INPUTS_GAUSSIAN, 0, 0, 0, 0, inputs_names, NULL, "K",
     "drawn inputs: N(0,1) entries or one-hot", D | F, 20},
    {"init", CH, NET(init), BAFU_INIT_GAUSSIAN, 0, 0, 0, 0, init_names, NULL, "I", "Gaussian or scaled Haar (orthogonal)",
     D | F, 8},
    {"branch_scale", DB, NET(branch_scale), 1, 0, INF, 0, 0, NULL, NULL, "B", "ResNet: beta = B * L^(-A)", D | F, 6},
    {"branch_exponent", DB, NET(branch_exponent), 0.5, -INF, INF, 0, 0, NULL, NULL, "A", "ResNet: exponent A", D | F, 7},
    {"embed", FL, NET(embed), 0, 0, 1, 0, 0, NULL, NULL, NULL, "ResNet: add a trained input embedding f_0 = W_0 x", D | F, 9},
    {"branch_norm", CH, NET(branch_norm), BAFU_BRANCH_NORM_NONE, 0, 0, 0, 0, branch_norm_names, NULL, "N",
     "ResNet: branch input phi(f) or phi(f / |f|_rms), per sample", D | F | BAFU_PARAM_IF_SET, 10},
    {"block_depth", SZ, NET(block_depth), 1, 1, 64, 0, 0, NULL, NULL, "K",
     "ResNet: layers per residual branch, f_l = f_{l-1} + beta W_K phi(... phi(W_1 phi(f_{l-1})))", D | F | BAFU_PARAM_IF_SET,
     16},
    {"lr_input", DB, NET(lr_input), 1, 0, INF, 0, 0, NULL, NULL, "ETA", "learning rate of the layer reading x", D | F, 12},
    {"lr_hidden", DB, NET(lr_hidden), 1, 0, INF, 0, 0, NULL, NULL, "ETA", "learning rate of hidden layers/blocks", D | F, 13},
    {"lr_output", DB, NET(lr_output), 1, 0, INF, 0, 0, NULL, NULL, "ETA", "learning rate of the readout", D | F, 21},
    {"signal", CH, NET(signal), BAFU_SIGNAL_PROBE, 0, 0, 0, 0, signal_names, NULL, "G",
     "backward signal: a Gaussian probe, or a readout with a loss", D | F | BAFU_PARAM_NO_CLI, 28},
    {"outputs", SZ, NET(outputs), 1, 1, INF, 0, 0, NULL, NULL, "K", "readout dimension with a loss", D | F, 22},
    {"rng", CH, NET(rng), BAFU_RNG_FAST, 0, 0, 0, 0, rng_names, NULL, "R",
     "generator: xoshiro256++ lanes + ziggurat (fast) or mt19937 + ziggurat (gsl)", D | F, 23},
    {"regenerate", FL, NET(regenerate), 0, 0, 1, 0, 0, NULL, NULL, NULL,
     "with the fast generator: store one weight matrix, regenerate layers on demand", D | BAFU_PARAM_SAMPLING, 24},
    {"conditional", FL, NET(conditional), 0, 0, 1, 0, 0, NULL, NULL, NULL,
     "Gaussian init: never draw W, draw each product W v, W^T u from its exact conditional law (same law, O(n m) "
     "per layer; Monte Carlo only)",
     D | BAFU_PARAM_IF_SET | BAFU_PARAM_SAMPLING, 25},
    {"bias_var", DB, NET(bias_var), 0, 0, INF, 0, 0, NULL, "no biases", "V", "biases on every layer and branch, N(0, V) entries",
     D | F | BAFU_PARAM_IF_SET, 11},
    {"lr_bias_input", DB, NET(lr_bias_input), 1, 0, INF, 0, 0, NULL, NULL, "ETA", "learning rate of the bias of the layer reading x",
     D | F | BAFU_PARAM_IF_BIASES, 26},
    {"lr_bias", DB, NET(lr_bias), 1, 0, INF, 0, 0, NULL, NULL, "ETA", "learning rate of the hidden layers' and blocks' biases",
     D | F | BAFU_PARAM_IF_BIASES, 14},
    {"lr_bias_output", DB, NET(lr_bias_output), 1, 0, INF, 0, 0, NULL, NULL, "ETA", "learning rate of the readout's bias",
     D | F | BAFU_PARAM_IF_BIASES, 27},
    {"step", DB, NET(step), 1e-5, 0, INF, 0, 0, NULL, "no step", "ETA", "actual gradient step for the finite-step columns",
     BAFU_PARAM_NO_CLI, 0},
    /* training (bafu_train_config) */
    {"data", CH, TRAIN(data), BAFU_DATA_FASHION_MNIST, 0, 0, 0, 0, data_names, NULL, "D", "the task", F, 40},
    {"epochs", SZ, TRAIN(epochs), 2, 1, INF, 0, 0, NULL, NULL, "E", "passes over the training set", F, 41},
    {"lr", DB, TRAIN(lr), 0, 0, INF, 0, 0, NULL, "automatic", "ETA", "global step multiplying the group rates", F, 42},
    {"control", FL, TRAIN(control), 0, 0, 1, 0, 0, NULL, NULL, NULL, "per-layer rates from target contributions at every step", F, 43},
    {"auto_decay", DB, TRAIN(auto_decay), 0.5, 0, 1, 1, 1, NULL, NULL, "A",
     "automatic step: first-order decrease A F at step 0", F, 44},
    {"control_rate", DB, TRAIN(control_rate), 0.1, 0, 0.5, 1, 1, NULL, NULL, "G", "control: readout target contribution G F", F, 45},
    {"control_speed", DB, TRAIN(control_speed), 0.35, 0, INF, 1, 0, NULL, NULL, "S",
     "control: last hidden layer moves by S |f_L|_rms per step", F, 46},
    {"control_split", CH, TRAIN(control_split), BAFU_SPLIT_PRESET, 0, 0, 0, 0, split_names, NULL, "H",
     "control: the body shares in proportion to the preset's contributions, or evenly", F, 47},
    {"schedule", CH, TRAIN(schedule), BAFU_SCHEDULE_CONSTANT, 0, 0, 0, 0, schedule_names, NULL, "S",
     "annealing of the step or of the control targets", F, 48},
    {"forward_norm", DB, TRAIN(forward_norm), 0, 0, INF, 0, 0, NULL, "off", "RHO", "hold |f_l|_rms = RHO in plain layers", F, 49},
    {"backward_norm", DB, TRAIN(backward_norm), 0, 0, INF, 0, 0, NULL, "off", "R", "rescale hidden backward signals to norm R", F, 50},
    {"train_size", SZ, TRAIN(train_size), 0, 0, INF, 0, 0, NULL, "all; teacher 8192", "N", "training samples used", F, 51},
    {"test_size", SZ, TRAIN(test_size), 0, 0, INF, 0, 0, NULL, "all; teacher 2048", "N", "test samples used", F, 52},
    {"log_every", SZ, TRAIN(log_every), 100, 1, INF, 0, 0, NULL, NULL, "K", "a row every K steps", F, 53},
    {"teacher_width", SZ, TRAIN(teacher_width), 256, 1, INF, 0, 0, NULL, NULL, "N", "teacher MLP width", F, 54},
    {"teacher_depth", SZ, TRAIN(teacher_depth), 2, 1, INF, 0, 0, NULL, NULL, "L", "teacher MLP depth", F, 55},
    {"data_dir", ST, TRAIN(data_dir), 0, 0, 0, 0, 0, NULL, "$BAFU_FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist", "DIR",
     "Fashion-MNIST files", 0, 0},
    {"seed", U6, TRAIN(seed), 1, 0, 18446744073709551615.0, 0, 0, NULL, NULL, "X", "weights, teacher and data order", F, 56},
};
#undef D
#undef F
#undef NET
#undef TRAIN
#undef SZ
#undef U6
#undef DB
#undef CH
#undef FL
#undef ST
#undef INF

#define COUNT (sizeof table / sizeof table[0])

/* CHOICE fields are enums, set and read as int. */
_Static_assert(sizeof(bafu_arch) == sizeof(int) && sizeof(bafu_act) == sizeof(int) &&
                   sizeof(bafu_inputs) == sizeof(int) && sizeof(bafu_init) == sizeof(int) &&
                   sizeof(bafu_signal) == sizeof(int) && sizeof(bafu_rng_kind) == sizeof(int) &&
                   sizeof(bafu_data_kind) == sizeof(int) && sizeof(bafu_control_split) == sizeof(int) &&
                   sizeof(bafu_schedule) == sizeof(int) && sizeof(bafu_branch_norm) == sizeof(int),
               "enums are int-sized");

const bafu_param *bafu_params(size_t *count) {
  *count = COUNT;
  return table;
}

const bafu_param *bafu_param_find(const char *name) {
  for (size_t i = 0; name && i < COUNT; ++i)
    if (strcmp(table[i].name, name) == 0) return &table[i];
  return NULL;
}

void *bafu_param_field(const bafu_param *q, void *base) { return (char *)base + q->offset; }
const void *bafu_param_cfield(const bafu_param *q, const void *base) { return (const char *)base + q->offset; }

double bafu_param_get(const bafu_param *q, const void *base) {
  const void *f = bafu_param_cfield(q, base);
  switch (q->type) {
  case BAFU_PARAM_SIZE: return (double)*(const size_t *)f;
  case BAFU_PARAM_U64: return (double)*(const uint64_t *)f;
  case BAFU_PARAM_DOUBLE: return *(const double *)f;
  case BAFU_PARAM_CHOICE:
  case BAFU_PARAM_FLAG: return (double)*(const int *)f;
  case BAFU_PARAM_STRING: return *(const char *const *)f ? 1 : 0;
  }
  return 0;
}

void bafu_param_set(const bafu_param *q, void *base, double v) {
  void *f = bafu_param_field(q, base);
  switch (q->type) {
  case BAFU_PARAM_SIZE: *(size_t *)f = (size_t)v; break;
  case BAFU_PARAM_U64: *(uint64_t *)f = (uint64_t)v; break;
  case BAFU_PARAM_DOUBLE: *(double *)f = v; break;
  case BAFU_PARAM_CHOICE:
  case BAFU_PARAM_FLAG: *(int *)f = (int)v; break;
  case BAFU_PARAM_STRING: break; /* set by the caller */
  }
}

static size_t nchoices(const bafu_param *q) {
  size_t n = 0;
  while (q->choices[n]) ++n;
  return n;
}

void bafu_param_range_text(const bafu_param *q, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
#define PUT(...)                                                                              \
  do {                                                                                        \
    if (used < size) {                                                                        \
      const int m_ = snprintf(buf + used, size - used, __VA_ARGS__);                          \
      if (m_ > 0) used += (size_t)m_;                                                         \
    }                                                                                         \
  } while (0)
  switch (q->type) {
  case BAFU_PARAM_SIZE:
    if (isfinite(q->hi))
      PUT("an integer in [%g, %g]", q->lo, q->hi);
    else
      PUT("%s", q->lo >= 1 ? "a positive integer" : "an integer >= 0");
    break;
  case BAFU_PARAM_U64: PUT("an integer >= 0"); break;
  case BAFU_PARAM_FLAG: PUT("0 or 1"); break;
  case BAFU_PARAM_STRING: PUT("a path"); break;
  case BAFU_PARAM_CHOICE:
    PUT("one of");
    for (size_t i = 0; q->choices[i]; ++i) PUT("%s %s", i ? "," : "", q->choices[i]);
    break;
  case BAFU_PARAM_DOUBLE:
    if (isfinite(q->lo) && isfinite(q->hi))
      PUT("a number in %c%g, %g%c", q->lo_open ? '(' : '[', q->lo, q->hi, q->hi_open ? ')' : ']');
    else if (isfinite(q->lo))
      PUT("a finite number %s %g", q->lo_open ? ">" : ">=", q->lo);
    else
      PUT("a finite number");
    break;
  }
  if (q->zero) PUT(" (0: %s)", q->zero);
#undef PUT
}

bafu_status bafu_param_check(const bafu_param *q, const void *base) {
  const double v = bafu_param_get(q, base);
  int ok = 1;
  switch (q->type) {
  case BAFU_PARAM_SIZE: ok = v >= q->lo && v <= q->hi; break;
  case BAFU_PARAM_U64:
  case BAFU_PARAM_STRING: break;
  case BAFU_PARAM_FLAG: ok = v == 0 || v == 1; break;
  case BAFU_PARAM_CHOICE: ok = v >= 0 && v < (double)nchoices(q); break;
  case BAFU_PARAM_DOUBLE:
    ok = isfinite(v) && (q->lo_open ? v > q->lo : v >= q->lo) && (q->hi_open ? v < q->hi : v <= q->hi);
    break;
  }
  if (ok) return BAFU_OK;
  char range[160];
  bafu_param_range_text(q, range, sizeof range);
  return bafu_error(BAFU_EINVAL, "%s: must be %s", q->name, range);
}

int bafu_param_parse(const bafu_param *q, const char *text, double *v) {
  unsigned long long u;
  char *end;
  switch (q->type) {
  case BAFU_PARAM_SIZE:
  case BAFU_PARAM_U64:
  case BAFU_PARAM_FLAG:
    if (text[0] < '0' || text[0] > '9') return 0;
    errno = 0;
    u = strtoull(text, &end, 10);
    if (*end || errno == ERANGE || (double)u > 9007199254740992.0) return 0; /* exact as a double */
    *v = (double)u;
    return 1;
  case BAFU_PARAM_DOUBLE: return bafu_parse_double(text, v);
  case BAFU_PARAM_CHOICE:
    for (size_t i = 0; q->choices[i]; ++i)
      if (strcmp(text, q->choices[i]) == 0) {
        *v = (double)i;
        return 1;
      }
    return 0;
  case BAFU_PARAM_STRING: return 0;
  }
  return 0;
}

void bafu_param_format(const bafu_param *q, double v, int exact, char *buf, size_t size) {
  switch (q->type) {
  case BAFU_PARAM_SIZE:
  case BAFU_PARAM_U64: snprintf(buf, size, "%llu", (unsigned long long)v); break;
  case BAFU_PARAM_FLAG: snprintf(buf, size, "%d", (int)v); break;
  case BAFU_PARAM_CHOICE:
    snprintf(buf, size, "%s", v >= 0 && v < (double)nchoices(q) ? q->choices[(int)v] : "?");
    break;
  case BAFU_PARAM_DOUBLE: snprintf(buf, size, exact ? "%a" : "%g", v); break;
  case BAFU_PARAM_STRING: snprintf(buf, size, "%s", v != 0 ? "set" : "none"); break;
  }
}

/* Defaults: every entry of a group set from the table. */
static void set_defaults(bafu_param_group g, void *base) {
  for (size_t i = 0; i < COUNT; ++i)
    if (table[i].group == g && table[i].type != BAFU_PARAM_STRING) bafu_param_set(&table[i], base, table[i].def);
}

bafu_net_params bafu_net_params_default(void) {
  bafu_net_params p = {0};
  set_defaults(BAFU_PARAMS_NET, &p);
  return p;
}

bafu_train_config bafu_train_config_default(void) {
  bafu_train_config c = {0};
  set_defaults(BAFU_PARAMS_TRAIN, &c);
  c.net = bafu_net_params_default();
  c.net.batch = 64;
  c.net.signal = BAFU_SIGNAL_XENT;
  c.net.outputs = 10;
  c.net.step = 0;
  return c;
}

bafu_train_config bafu_train_config_command(bafu_data_kind data) {
  bafu_train_config c = bafu_train_config_default();
  c.data = data;
  c.net.width = 256;
  c.net.depth = 8;
  c.net.step = 0;
  const int teacher = data == BAFU_DATA_TEACHER;
  c.net.input_dim = teacher ? 32 : 784;
  c.net.signal = teacher ? BAFU_SIGNAL_MSE : BAFU_SIGNAL_XENT;
  c.net.outputs = teacher ? 1 : 10;
  return c;
}

bafu_status bafu_params_check_group(bafu_param_group g, const void *base) {
  for (size_t i = 0; i < COUNT; ++i) {
    if (table[i].group != g) continue;
    const bafu_status st = bafu_param_check(&table[i], base);
    if (st) return st;
  }
  return BAFU_OK;
}

/* Append "name=value" (a space before all but the first) to buf. */
static void put_pair(const char *name, const char *value, char *buf, size_t size, size_t *used) {
  if (*used >= size) return;
  const int m = snprintf(buf + *used, size - *used, "%s%s=%s", *used ? " " : "", name, value);
  if (m > 0) *used += (size_t)m;
}

void bafu_net_params_describe(const bafu_net_params *p, char *buf, size_t size) {
  bafu_net_params r = *p; /* the values in effect: input_dim and the gains resolved */
  r.input_dim = p->input_dim ? p->input_dim : p->width;
  r.sigma2_input = bafu_net_gain_input(p);
  r.sigma2_output = bafu_net_gain_output(p);
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < COUNT; ++i) {
    const bafu_param *q = &table[i];
    if (q->group != BAFU_PARAMS_NET || !(q->flags & BAFU_PARAM_DESCRIBE) || q->type == BAFU_PARAM_STRING) continue;
    const double v = bafu_param_get(q, &r);
    if ((q->flags & BAFU_PARAM_IF_SET) && v == q->def) continue;
    if ((q->flags & BAFU_PARAM_IF_BIASES) && !(p->bias_var > 0)) continue;
    char value[64];
    bafu_param_format(q, v, 0, value, sizeof value);
    put_pair(q->name, value, buf, size, &used);
    if (strcmp(q->name, "branch_exponent") == 0) { /* the derived branch multiplier */
      snprintf(value, sizeof value, "%.10g", bafu_net_beta(p));
      put_pair("beta", value, buf, size, &used);
    }
  }
}

void bafu_params_fingerprint(const bafu_train_config *c, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < COUNT; ++i) {
    const bafu_param *q = &table[i];
    if (!(q->flags & BAFU_PARAM_FINGERPRINT)) continue;
    const void *base = q->group == BAFU_PARAMS_NET ? (const void *)&c->net : (const void *)c;
    char value[64];
    if (q->type == BAFU_PARAM_U64) /* exact, beyond 2^53 too */
      snprintf(value, sizeof value, "%llu", (unsigned long long)*(const uint64_t *)bafu_param_cfield(q, base));
    else
      bafu_param_format(q, bafu_param_get(q, base), 1, value, sizeof value);
    put_pair(q->name, value, buf, size, &used);
  }
}
