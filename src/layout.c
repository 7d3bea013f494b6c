/* layout.c: the network description (bafu/layout.h). This is the only place
 * that turns the parameters into layers: their kinds, labels, shapes, gains
 * and rates (theory/engine.md 1.1). */
#include "bafu/layout.h"

static void add(bafu_layout *l, const bafu_net_params *p, bafu_stage s) {
  s.bias_var = p->bias_var; /* every layer, and every block's branch, gets the biases, at its group's rate */
  s.lr_bias = s.group == BAFU_GROUP_INPUT ? p->lr_bias_input : s.group == BAFU_GROUP_OUTPUT ? p->lr_bias_output : p->lr_bias;
  if (!s.depth) s.depth = 1;
  l->stage[l->nstages++] = s;
  l->J += s.count;
  l->units += s.count * s.depth;
}

static void layout_stages(const bafu_net_params *p, bafu_layout *out) {
  const size_t n = p->width, d = p->input_dim ? p->input_dim : p->width, L = p->depth;
  *out = (bafu_layout){.width = n, .input_dim = d, .batch = p->batch, .outputs = p->outputs, .init = p->init,
                       .signal = p->signal};
  const double gin = bafu_net_gain_input(p);
  if (p->arch == BAFU_ARCH_MLP) {
    add(out, p, (bafu_stage){.kind = BAFU_STAGE_DENSE, .count = 1, .first_label = 1, .fan_in = d, .fan_out = n,
                          .reads_x = 1, .act = p->act, .gain = gin, .scale = 1.0, .group = BAFU_GROUP_INPUT,
                          .lr = p->lr_input});
    if (L > 1)
      add(out, p, (bafu_stage){.kind = BAFU_STAGE_DENSE, .count = L - 1, .first_label = 2, .fan_in = n, .fan_out = n,
                            .act = p->act, .gain = p->sigma_w2, .scale = 1.0, .group = BAFU_GROUP_HIDDEN,
                            .lr = p->lr_hidden});
  } else {
    if (p->embed)
      add(out, p, (bafu_stage){.kind = BAFU_STAGE_DENSE, .count = 1, .first_label = 0, .fan_in = d, .fan_out = n,
                            .reads_x = 1, .act = p->act, .gain = gin, .scale = 1.0, .group = BAFU_GROUP_INPUT,
                            .lr = p->lr_input});
    add(out, p, (bafu_stage){.kind = BAFU_STAGE_BLOCK, .count = L, .first_label = 1, .fan_in = n, .fan_out = n,
                          .reads_x = !p->embed, .act = p->act, .gain = p->sigma_w2, .scale = bafu_net_beta(p),
                          .group = BAFU_GROUP_HIDDEN, .lr = p->lr_hidden,
                          .norm = p->branch_norm == BAFU_BRANCH_NORM_RMS, .depth = p->block_depth});
  }
  if (p->signal != BAFU_SIGNAL_PROBE)
    add(out, p, (bafu_stage){.kind = BAFU_STAGE_DENSE, .count = 1, .first_label = (int)L + 1, .fan_in = n,
                          .fan_out = p->outputs, .act = p->act, .gain = bafu_net_gain_output(p), .scale = 1.0,
                          .group = BAFU_GROUP_OUTPUT, .lr = p->lr_output, .readout = 1});
}

bafu_status bafu_layout_build(const bafu_net_params *p, bafu_layout *out) {
  bafu_status st = bafu_net_params_check(p);
  if (!st) layout_stages(p, out);
  return st;
}

int bafu_layout_entry(const bafu_layout *l, size_t j, const bafu_stage **stage, size_t *k) {
  size_t i = 0;
  while (i + 1 < l->nstages && j >= l->stage[i].count) j -= l->stage[i++].count;
  if (stage) *stage = &l->stage[i];
  if (k) *k = j;
  return l->stage[i].first_label + (int)j;
}

int bafu_layout_activates(const bafu_layout *l, size_t j) {
  const bafu_stage *s;
  size_t k;
  bafu_layout_entry(l, j, &s, &k);
  return !(s->kind == BAFU_STAGE_DENSE && s->reads_x && k == 0);
}

int bafu_layout_has_blocks(const bafu_layout *l) {
  for (size_t i = 0; i < l->nstages; ++i)
    if (l->stage[i].kind == BAFU_STAGE_BLOCK) return 1;
  return 0;
}

size_t bafu_layout_first_trained(const bafu_layout *l) {
  size_t j = 0;
  for (size_t i = 0; i < l->nstages; j += l->stage[i++].count) {
    const bafu_stage *s = &l->stage[i];
    if ((s->lr != 0 || (s->bias_var > 0 && s->lr_bias != 0)) && s->scale != 0) return j;
  }
  return l->J;
}

int bafu_layout_first_label(const bafu_layout *l) { return l->stage[0].first_label; }

int bafu_layout_last_label(const bafu_layout *l) {
  const bafu_stage *s = &l->stage[l->nstages - 1];
  return s->first_label + (int)s->count - 1;
}
