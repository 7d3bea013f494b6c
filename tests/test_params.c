/* test_params.c: the one table of parameters (bafu/params.h) against the
 * structs it describes and the things made from it. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bafu/params.h"
#include "testutil.h"

static size_t type_size(bafu_param_type t) {
  switch (t) {
  case BAFU_PARAM_SIZE: return sizeof(size_t);
  case BAFU_PARAM_U64: return sizeof(uint64_t);
  case BAFU_PARAM_DOUBLE: return sizeof(double);
  case BAFU_PARAM_CHOICE:
  case BAFU_PARAM_FLAG: return sizeof(int);
  case BAFU_PARAM_STRING: return sizeof(const char *);
  }
  return 0;
}

/* Mark the bytes of every entry of group g in a map of the struct; the
 * entries must not overlap. */
static void mark(bafu_param_group g, unsigned char *map, size_t size) {
  size_t n;
  const bafu_param *t = bafu_params(&n);
  for (size_t i = 0; i < n; ++i) {
    if (t[i].group != g) continue;
    const size_t w = type_size(t[i].type);
    ck_assert_msg(t[i].offset + w <= size, "%s outside its struct", t[i].name);
    for (size_t b = t[i].offset; b < t[i].offset + w; ++b) {
      ck_assert_msg(!map[b], "%s overlaps another entry", t[i].name);
      map[b] = 1;
    }
  }
}

/* Every byte not covered must be padding before an aligned field: a run of
 * uncovered bytes shorter than the alignment (at most 8), ending at a
 * multiple of 8 or at the end. A field missing from the table (every field
 * here is at least 4 bytes) leaves a longer run or a misaligned one. */
static void assert_only_padding(const unsigned char *map, size_t size, const char *what) {
  for (size_t b = 0; b < size;) {
    if (map[b]) {
      ++b;
      continue;
    }
    size_t e = b;
    while (e < size && !map[e]) ++e;
    ck_assert_msg(e - b < 8 && (e % 8 == 0 || e == size), "%s: bytes %zu..%zu are in no table entry", what, b, e);
    b = e;
  }
}

/* Every field of bafu_net_params and bafu_train_config is in the table
 * (but the training config's net and checkpoint plumbing). */
START_TEST(test_covers_structs) {
  unsigned char net[sizeof(bafu_net_params)] = {0};
  mark(BAFU_PARAMS_NET, net, sizeof net);
  assert_only_padding(net, sizeof net, "bafu_net_params");
  unsigned char train[sizeof(bafu_train_config)] = {0};
  /* not parameters: the network (its own group) and the checkpoint callbacks */
  memset(train + offsetof(bafu_train_config, net), 1, sizeof(bafu_net_params));
  memset(train + offsetof(bafu_train_config, checkpoint_every), 1, sizeof(size_t));
  memset(train + offsetof(bafu_train_config, save), 1, sizeof(bafu_train_save_fn));
  memset(train + offsetof(bafu_train_config, resume), 1, sizeof(const void *));
  memset(train + offsetof(bafu_train_config, resume_len), 1, sizeof(size_t));
  mark(BAFU_PARAMS_TRAIN, train, sizeof train);
  assert_only_padding(train, sizeof train, "bafu_train_config");
}
END_TEST

/* The defaults come from the table, pass the checks, and are what the
 * documentation says (bafu/net.h, README). */
START_TEST(test_defaults) {
  const bafu_net_params p = bafu_net_params_default();
  ck_assert_ok(bafu_net_params_check(&p));
  ck_assert_uint_eq(p.width, 512);
  ck_assert_uint_eq(p.depth, 16);
  ck_assert_uint_eq(p.batch, 1);
  ck_assert(p.sigma_w2 == 2 && p.step == 1e-5 && p.branch_exponent == 0.5 && p.lr_bias == 1);
  ck_assert(p.act == BAFU_ACT_RELU && p.rng == BAFU_RNG_FAST && p.signal == BAFU_SIGNAL_PROBE);
  const bafu_train_config c = bafu_train_config_default();
  ck_assert_ok(bafu_params_check_group(BAFU_PARAMS_TRAIN, &c));
  ck_assert(c.data == BAFU_DATA_FASHION_MNIST && c.epochs == 2 && c.log_every == 100 && c.seed == 1);
  ck_assert(c.control_rate == 0.1 && c.control_speed == 0.35 && c.auto_decay == 0.5);
  ck_assert(c.net.batch == 64 && c.net.signal == BAFU_SIGNAL_XENT && c.net.outputs == 10 && c.net.step == 0);
  ck_assert(c.data_dir == NULL && c.save == NULL && c.resume == NULL);
}
END_TEST

/* The description line of the defaults, as every table since the first has
 * printed it. */
START_TEST(test_describe) {
  bafu_net_params p = bafu_net_params_default();
  char buf[1024];
  bafu_net_params_describe(&p, buf, sizeof buf);
  ck_assert_str_eq(buf, "arch=mlp width=512 depth=16 input_dim=512 batch=1 act=relu sigma_w2=2 sigma2_input=2 "
                        "sigma2_output=2 inputs=dense init=gaussian branch_scale=1 branch_exponent=0.5 beta=1 embed=0 "
                        "lr_input=1 lr_hidden=1 lr_output=1 signal=probe outputs=1 rng=fast regenerate=0");
  p.arch = BAFU_ARCH_RESNET;
  p.depth = 3;
  p.conditional = 1;
  p.bias_var = 0.5;
  p.lr_bias = 2;
  bafu_net_params_describe(&p, buf, sizeof buf);
  ck_assert_str_eq(buf, "arch=resnet width=512 depth=3 input_dim=512 batch=1 act=relu sigma_w2=2 sigma2_input=2 "
                        "sigma2_output=2 inputs=dense init=gaussian branch_scale=1 branch_exponent=0.5 "
                        "beta=0.5773502692 embed=0 lr_input=1 lr_hidden=1 lr_output=1 signal=probe outputs=1 rng=fast "
                        "regenerate=0 conditional=1 bias_var=0.5 lr_bias_input=1 lr_bias=2 lr_bias_output=1");
  char small[16];
  bafu_net_params_describe(&p, small, sizeof small); /* truncated, terminated */
  ck_assert_uint_eq(strlen(small), sizeof small - 1);
}
END_TEST

/* Another valid value of q (different from the current one). */
static void change(const bafu_param *q, void *base) {
  if (q->type == BAFU_PARAM_STRING) {
    *(const char **)bafu_param_field(q, base) = "/elsewhere";
    return;
  }
  const double v = bafu_param_get(q, base);
  double w;
  if (q->type == BAFU_PARAM_CHOICE || q->type == BAFU_PARAM_FLAG)
    w = v == 0 ? 1 : 0;
  else if (isfinite(q->hi))
    w = q->lo + (q->hi - q->lo) * (v == q->lo + (q->hi - q->lo) / 3 ? 0.25 : 1.0 / 3);
  else
    w = v + 1;
  bafu_param_set(q, base, w);
  ck_assert_msg(bafu_param_get(q, base) != v, "%s: no other value", q->name);
}

/* The training fingerprint changes with every parameter marked for it (a
 * resumed run must be the same run), and only with those. */
START_TEST(test_fingerprint) {
  size_t n;
  const bafu_param *t = bafu_params(&n);
  const bafu_train_config c0 = bafu_train_config_default();
  char f0[4096], f1[4096];
  bafu_params_fingerprint(&c0, f0, sizeof f0);
  ck_assert_uint_lt(strlen(f0), sizeof f0 - 1); /* not truncated */
  /* the only parameters a training run does not depend on: regenerate and
     conditional are refused by training, the finite step is not taken
     (training steps itself), and the data directory may move (the data's
     size is fingerprinted) */
  static const char *const free_[] = {"regenerate", "conditional", "step", "data_dir"};
  size_t marked = 0;
  for (size_t i = 0; i < n; ++i) {
    int is_free = 0;
    for (size_t k = 0; k < sizeof free_ / sizeof *free_; ++k) is_free |= strcmp(t[i].name, free_[k]) == 0;
    ck_assert_msg(is_free == !(t[i].flags & BAFU_PARAM_FINGERPRINT), "%s: %s the training fingerprint", t[i].name,
                  is_free ? "in" : "not in");
    bafu_train_config c = c0;
    change(&t[i], t[i].group == BAFU_PARAMS_NET ? (void *)&c.net : (void *)&c);
    bafu_params_fingerprint(&c, f1, sizeof f1);
    const int differs = strcmp(f0, f1) != 0;
    ck_assert_msg(differs == !!(t[i].flags & BAFU_PARAM_FINGERPRINT), "%s: fingerprint %s", t[i].name,
                  differs ? "changes but it is not marked" : "unchanged");
    marked += differs;
  }
  ck_assert_uint_ge(marked, 40);
  /* a seed beyond 2^53 is kept exactly */
  bafu_train_config c = c0;
  c.seed = UINT64_MAX;
  bafu_params_fingerprint(&c, f1, sizeof f1);
  ck_assert_ptr_nonnull(strstr(f1, "seed=18446744073709551615"));
}
END_TEST

/* Each range refuses a value outside it, naming the parameter. */
START_TEST(test_check) {
  size_t n;
  const bafu_param *t = bafu_params(&n);
  size_t tried = 0;
  for (size_t i = 0; i < n; ++i) {
    bafu_train_config c = bafu_train_config_default();
    void *base = t[i].group == BAFU_PARAMS_NET ? (void *)&c.net : (void *)&c;
    double bad;
    switch (t[i].type) {
    case BAFU_PARAM_SIZE:
      if (t[i].lo < 1) continue; /* 0 has a meaning */
      bad = 0;
      break;
    case BAFU_PARAM_CHOICE: {
      size_t k = 0;
      while (t[i].choices[k]) ++k;
      bad = (double)k;
      break;
    }
    case BAFU_PARAM_FLAG: bad = 2; break;
    case BAFU_PARAM_DOUBLE: bad = isfinite(t[i].lo) ? (t[i].lo_open ? t[i].lo : t[i].lo - 1) : NAN; break;
    default: continue;
    }
    ck_assert_ok(bafu_param_check(&t[i], base));
    bafu_param_set(&t[i], base, bad);
    ck_assert_int_eq(bafu_param_check(&t[i], base), BAFU_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "%s: must be ", t[i].name);
    ck_assert_msg(strncmp(bafu_last_error(), want, strlen(want)) == 0, "%s: message '%s'", t[i].name,
                  bafu_last_error());
    /* and the struct's own check says the same */
    const bafu_status st = t[i].group == BAFU_PARAMS_NET ? bafu_net_params_check(&c.net) : bafu_train_config_check(&c);
    ck_assert_int_eq(st, BAFU_EINVAL);
    ck_assert_msg(strncmp(bafu_last_error(), want, strlen(want)) == 0, "%s: check says '%s'", t[i].name,
                  bafu_last_error());
    ++tried;
  }
  ck_assert_uint_ge(tried, 35);
  /* upper bounds and infinities */
  bafu_train_config c = bafu_train_config_default();
  c.control_rate = 0.5;
  ck_assert_int_eq(bafu_train_config_check(&c), BAFU_EINVAL);
  ck_assert_str_eq(bafu_last_error(), "control_rate: must be a number in (0, 0.5)");
  c = bafu_train_config_default(); /* an integer with an upper bound */
  c.net.arch = BAFU_ARCH_RESNET;
  c.net.block_depth = 64;
  ck_assert_ok(bafu_net_params_check(&c.net));
  c.net.block_depth = 65;
  ck_assert_int_eq(bafu_net_params_check(&c.net), BAFU_EINVAL);
  ck_assert_str_eq(bafu_last_error(), "block_depth: must be an integer in [1, 64]");
  c = bafu_train_config_default();
  c.net.sigma_w2 = INFINITY;
  ck_assert_int_eq(bafu_train_config_check(&c), BAFU_EINVAL);
  ck_assert_str_eq(bafu_last_error(), "sigma_w2: must be a finite number > 0");
  c = bafu_train_config_default();
  c.net.sigma2_input = -1;
  ck_assert_int_eq(bafu_net_params_check(&c.net), BAFU_EINVAL);
  ck_assert_str_eq(bafu_last_error(), "sigma2_input: must be a finite number >= 0 (0: = sigma_w2)");
}
END_TEST

/* Parsing and formatting agree; names find their entries. */
START_TEST(test_parse_format) {
  const bafu_param *q = bafu_param_find("act");
  ck_assert_ptr_nonnull(q);
  double v;
  ck_assert(bafu_param_parse(q, "tanh", &v) && v == BAFU_ACT_TANH);
  ck_assert(!bafu_param_parse(q, "TANH", &v));
  char buf[64];
  bafu_param_format(q, BAFU_ACT_GELU, 0, buf, sizeof buf);
  ck_assert_str_eq(buf, "gelu");
  q = bafu_param_find("width");
  ck_assert(bafu_param_parse(q, "4096", &v) && v == 4096);
  ck_assert(!bafu_param_parse(q, "-1", &v) && !bafu_param_parse(q, "1e3", &v) && !bafu_param_parse(q, "", &v));
  ck_assert(!bafu_param_parse(q, "99999999999999999999", &v));
  q = bafu_param_find("sigma_w2");
  ck_assert(bafu_param_parse(q, "0.1", &v) && v == 0.1);
  ck_assert(!bafu_param_parse(q, "nan", &v) && !bafu_param_parse(q, "inf", &v));
  bafu_param_format(q, 0.1, 1, buf, sizeof buf);
  ck_assert(bafu_param_parse(q, buf, &v) && v == 0.1); /* exact: hex floats */
  ck_assert_ptr_null(bafu_param_find("no_such"));
  ck_assert_ptr_null(bafu_param_find(NULL));
  /* names are unique */
  size_t n;
  const bafu_param *t = bafu_params(&n);
  for (size_t i = 0; i < n; ++i) ck_assert_ptr_eq(bafu_param_find(t[i].name), &t[i]);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("params");
  TCase *tc = tcase_create("params");
  tcase_add_test(tc, test_covers_structs);
  tcase_add_test(tc, test_defaults);
  tcase_add_test(tc, test_describe);
  tcase_add_test(tc, test_fingerprint);
  tcase_add_test(tc, test_check);
  tcase_add_test(tc, test_parse_format);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return bafu_run_suite(suite()); }
