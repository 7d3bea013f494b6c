/* test_layout.c: the network description (bafu/layout.h) and its use by every
 * module: the engine's layers, the kernel recursion, the moment theory and the
 * spectra see the same entries, labels, shapes, rates and kinds. */
#include <string.h>

#include "bafu/kernel.h"
#include "bafu/layout.h"
#include "bafu/moments.h"
#include "testutil.h"

static bafu_net_params mlp(size_t L) {
  bafu_net_params p = bafu_net_params_default();
  p.width = 12;
  p.depth = L;
  p.input_dim = 7;
  p.lr_input = 0.5;
  p.lr_hidden = 2;
  return p;
}

START_TEST(test_mlp) {
  bafu_net_params p = mlp(5);
  bafu_layout l;
  ck_assert_ok(bafu_layout_build(&p, &l));
  ck_assert_uint_eq(l.J, 5);
  ck_assert_uint_eq(l.nstages, 2);
  const bafu_stage *s;
  size_t k;
  ck_assert_int_eq(bafu_layout_entry(&l, 0, &s, &k), 1);
  ck_assert(s->kind == BAFU_STAGE_DENSE && s->reads_x && s->fan_in == 7 && s->fan_out == 12 && s->lr == 0.5);
  ck_assert(s->group == BAFU_GROUP_INPUT && k == 0);
  ck_assert_int_eq(bafu_layout_entry(&l, 4, &s, &k), 5);
  ck_assert(s->kind == BAFU_STAGE_DENSE && !s->reads_x && s->fan_in == 12 && s->lr == 2 && k == 3);
  ck_assert(!bafu_layout_activates(&l, 0) && bafu_layout_activates(&l, 1));
  ck_assert(!bafu_layout_has_blocks(&l));
  ck_assert_int_eq(bafu_layout_first_label(&l), 1);
  ck_assert_int_eq(bafu_layout_last_label(&l), 5);
  ck_assert_uint_eq(bafu_layout_first_trained(&l), 0);
  p.lr_input = 0;
  ck_assert_ok(bafu_layout_build(&p, &l));
  ck_assert_uint_eq(bafu_layout_first_trained(&l), 1);
  /* a readout: one more stage, label L + 1 */
  p = mlp(1);
  p.signal = BAFU_SIGNAL_MSE;
  p.outputs = 3;
  ck_assert_ok(bafu_layout_build(&p, &l));
  ck_assert_uint_eq(l.J, 2);
  ck_assert_int_eq(bafu_layout_entry(&l, 1, &s, NULL), 2);
  ck_assert(s->readout && s->fan_out == 3 && s->group == BAFU_GROUP_OUTPUT);
  /* biases: every stage gets its group's variance and bias rate */
  p = mlp(4);
  p.signal = BAFU_SIGNAL_MSE;
  p.bias_var = 0.3;
  p.lr_bias_input = 0.25, p.lr_bias = 4, p.lr_bias_output = 8;
  ck_assert_ok(bafu_layout_build(&p, &l));
  const double want[] = {0.25, 4, 4, 4, 8};
  for (size_t j = 0; j < 5; ++j) {
    bafu_layout_entry(&l, j, &s, NULL);
    ck_assert_msg(s->lr_bias == want[j] && s->bias_var == 0.3, "entry %zu: bias rate %g", j, s->lr_bias);
  }
  p.arch = BAFU_ARCH_RESNET, p.embed = 1; /* the embedding is the input group, the blocks hidden */
  ck_assert_ok(bafu_layout_build(&p, &l));
  for (size_t j = 0; j < 6; ++j) {
    bafu_layout_entry(&l, j, &s, NULL);
    ck_assert_msg(s->lr_bias == (j == 0 ? 0.25 : j == 5 ? 8 : 4), "resnet entry %zu: bias rate %g", j, s->lr_bias);
  }
}
END_TEST

START_TEST(test_resnet) {
  bafu_net_params p = bafu_net_params_default();
  p.arch = BAFU_ARCH_RESNET;
  p.width = 10;
  p.depth = 9;
  bafu_layout l;
  ck_assert_ok(bafu_layout_build(&p, &l));
  ck_assert_uint_eq(l.J, 9);
  const bafu_stage *s;
  ck_assert_int_eq(bafu_layout_entry(&l, 0, &s, NULL), 1);
  ck_assert(s->kind == BAFU_STAGE_BLOCK && s->reads_x && s->count == 9);
  ck_assert_close(s->scale, 1.0 / 3.0, 1e-15, 0);
  ck_assert(bafu_layout_activates(&l, 0)); /* a block applies phi to x */
  p.embed = 1;
  p.input_dim = 4;
  p.branch_scale = 0;
  ck_assert_ok(bafu_layout_build(&p, &l));
  ck_assert_uint_eq(l.J, 10);
  ck_assert_int_eq(bafu_layout_first_label(&l), 0);
  ck_assert_int_eq(bafu_layout_entry(&l, 1, &s, NULL), 1);
  ck_assert(!s->reads_x && s->scale == 0);
  ck_assert_uint_eq(bafu_layout_first_trained(&l), 0); /* the embedding */
  p.lr_input = 0;
  ck_assert_ok(bafu_layout_build(&p, &l));
  ck_assert_uint_eq(bafu_layout_first_trained(&l), l.J); /* beta = 0: nothing trained */
  /* any depth costs the same few stages */
  p.depth = 10000000;
  ck_assert_ok(bafu_layout_build(&p, &l));
  ck_assert_uint_eq(l.J, 10000001);
  ck_assert_uint_le(l.nstages, BAFU_LAYOUT_MAX_STAGES);
  ck_assert_int_eq(bafu_layout_entry(&l, 9999999, NULL, NULL), 9999999);
  p.width = 0;
  ck_assert_int_eq(bafu_layout_build(&p, &l), BAFU_EINVAL);
}
END_TEST

/* Every module sees the layout's entries: the engine's layers (labels,
 * shapes, rates), and the layer counts of the kernel and moment recursions. */
START_TEST(test_modules_agree) {
  bafu_net_params ps[4] = {mlp(4), bafu_net_params_default(), bafu_net_params_default(), mlp(3)};
  ps[1].arch = BAFU_ARCH_RESNET, ps[1].width = 8, ps[1].depth = 5;
  ps[2].arch = BAFU_ARCH_RESNET, ps[2].embed = 1, ps[2].input_dim = 6, ps[2].width = 8, ps[2].depth = 3;
  ps[2].signal = BAFU_SIGNAL_MSE, ps[2].outputs = 2, ps[2].lr_output = 0.25;
  ps[3].signal = BAFU_SIGNAL_XENT, ps[3].outputs = 4;
  for (int c = 0; c < 4; ++c) {
    bafu_layout l;
    ck_assert_ok(bafu_layout_build(&ps[c], &l));
    bafu_net *net;
    ck_assert_ok(bafu_net_alloc(&ps[c], &net));
    ck_assert_uint_eq(bafu_net_nlayers(net), l.J);
    ck_assert_uint_eq(bafu_kernel_count_layers(&ps[c]), l.J);
    ck_assert_uint_eq(bafu_moments_nlayers(&ps[c]), l.J);
    ck_assert(bafu_net_layout(net)->J == l.J && bafu_net_layout(net)->nstages == l.nstages);
    for (size_t j = 0; j < l.J; ++j) {
      const bafu_stage *s;
      const int label = bafu_layout_entry(&l, j, &s, NULL);
      ck_assert_int_eq(bafu_net_layer_label(net, j), label);
      ck_assert_uint_eq(bafu_net_layer_fan_in(net, j), s->fan_in);
      ck_assert_uint_eq(bafu_net_layer_fan_out(net, j), s->fan_out);
      ck_assert(bafu_net_layer_lr(net, j) == s->lr);
      ck_assert(bafu_net_layer_scale(net, j) == s->scale);
    }
    bafu_net_free(net);
    if (ps[c].signal != BAFU_SIGNAL_XENT) {
      bafu_moments_layer o[16];
      ck_assert_ok(bafu_moments_run(&ps[c], 0, o));
      for (size_t j = 0; j < l.J; ++j) ck_assert_int_eq(o[j].label, bafu_layout_entry(&l, j, NULL, NULL));
    }
  }
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("layout");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_mlp);
  tcase_add_test(tc, test_resnet);
  tcase_add_test(tc, test_modules_agree);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return bafu_run_suite(suite()); }
