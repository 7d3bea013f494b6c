#define _DEFAULT_SOURCE /* getline, sysconf(_SC_PHYS_PAGES) */
/* net.c: finite-width networks and their passes (see include/bafu/net.h).
 *
 * Every formula here is derived in theory/engine.md; the section numbers below
 * refer to it. Storage is column-major; a feature is fan_out x m. */
#include "bafu/net.h"
#include "bafu/params.h"

#include "bafu/gcond.h"
#include "bafu/layout.h"

#include <cblas.h>
#include <errno.h>
#include <float.h>
#include "bafu/rng.h"
#include "bafu/text.h"
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef enum { LAYER_PLAIN, LAYER_RESIDUAL } layer_kind;

typedef struct {
  layer_kind kind;
  int label;       /* user-facing layer index */
  size_t fan_in;   /* rows of g_j */
  size_t fan_out;  /* rows of f_j */
  int reads_x;     /* g_j = x (plain first layer) or the residual stream starts at x */
  double scale;    /* plain: 1 (or the forward-normalisation scale a_j); residual: beta */
  double gain;     /* init variance = gain / fan_in */
  double lr;       /* learning rate (its group's, unless set per layer) */
  double gsq;      /* |grad_{W_j} F|^2 of the signals of the last backward pass */
  double gsq_b;    /* |grad_{c_j} F|^2 (biases; 0 without) */
  double lrb;      /* the biases' learning rate (0 without biases) */
  double lr0, lrb0;/* the rates the network was built with (bafu_net_scale_layer_rates) */
  double *c;       /* fan_out: the bias (NULL without biases) */
  double bscale;   /* R_j: stored B = R_j * (true backward vector); 1 without backward norm */
  int norm;        /* a block's first unit: it reads phi(f_{j-1} / r), r = |f_{j-1}|_rms per sample */
  long skip;       /* residual (a block's last unit): the unit whose features the branch adds to, -1: x */
  long close;      /* a block's first unit: the block's last unit (itself when K = 1); -1 otherwise */
  int inner;       /* a unit inside a branch of K > 1 layers that is not its last: plain, scale 1, no row */
  size_t row;      /* the entry (row of the measurements) the unit belongs to */
  double *rn;      /* norm: r of each sample in the forward pass (m), then of the actual step (m) */
  double *W;       /* fan_out x fan_in */
  double *F;       /* fan_out x m: features */
  double *G;       /* fan_in x m: the vector the layer multiplies */
  double *Dp;      /* fan_in x m: phi'(f_{j-1}) (unused when g_j = x) */
  double *B;       /* fan_out x m: backward signal dF/df_j */
  double *dF;      /* fan_out x m: first-order feature change (tangent) */
  double *Fs;      /* fan_out x m: features after the actual step */
  double *GG;      /* m x m: g_j^T g_j */
  double *BB;      /* m x m: b_j^T b_j */
  double contrib;  /* C_j */
  bafu_gcond gc;   /* --conditional: W sampled through its products */
} layer;

struct bafu_net {
  bafu_net_params p;
  bafu_layout lay;  /* the description the layers are built from */
  size_t J, n, d, m, k;  /* J entries (rows) */
  size_t U;         /* units (weight matrices): J, plus K - 1 per block of K layers */
  size_t *out;      /* J: the unit whose features are entry j's */
  double beta;
  layer *layers;
  double *X;        /* d x m inputs */
  int inputs_fixed;
  double *T;        /* k x m targets (mse, xent) */
  int targets_fixed;
  double fnorm;     /* forward-normalisation target (0: off) */
  int fnorm_frozen;
  double bnorm;     /* backward-normalisation target (0: off) */
  double *probe;    /* n x m probe (probe signal): the last layer's B is a copy */
  double *tmp;      /* max_dim x m scratch */
  double *tmp2;     /* max_dim x m scratch */
  double *gwork;    /* --conditional: w_apply's block workspace (gcond_work_doubles) */
  double *H;        /* m x m scratch */
  double *bsum;     /* biases: the column sum B 1 of a layer's backward signal (max(max_dim, k)) */
  double *qr;       /* max_dim x max_dim scratch for orthogonal init */
  double *tau;
  double *qrwork;
  lapack_int lqrwork;
  size_t max_dim;
  gsl_rng *rng;
  bafu_fastrng fast;
  uint64_t seed, draw;  /* of the current draw (regeneration) */
  long wcur;            /* layer whose weights are in the shared buffer, -1: none */
  size_t wready;        /* stored weights: layers [0, wready) hold this draw's */
  double eta_step;  /* eta of the last bafu_net_step */
  void *block;      /* the single allocation backing every array */
  size_t block_bytes; /* its size; mapped (not malloc'ed) when at least BIG_BLOCK */
};

static const double *W_of(bafu_net *net, size_t j);

static size_t input_dim(const bafu_net_params *p) { return p->input_dim ? p->input_dim : p->width; }

double bafu_net_gain_input(const bafu_net_params *p) { return p->sigma2_input > 0 ? p->sigma2_input : p->sigma_w2; }
double bafu_net_gain_output(const bafu_net_params *p) { return p->sigma2_output > 0 ? p->sigma2_output : p->sigma_w2; }

double bafu_net_beta(const bafu_net_params *p) {
  if (p->arch != BAFU_ARCH_RESNET) return 1.0;
  return p->branch_scale * pow((double)p->depth, -p->branch_exponent);
}

bafu_status bafu_net_params_check(const bafu_net_params *p) {
  /* each parameter in its range (bafu/params.h), then the combinations */
  const bafu_status st = bafu_params_check_group(BAFU_PARAMS_NET, p);
  if (st) return st;
  if (p->signal == BAFU_SIGNAL_XENT && p->outputs < 2)
    return bafu_error(BAFU_EINVAL, "outputs: cross-entropy needs at least 2 classes");
  if (p->regenerate && p->rng != BAFU_RNG_FAST)
    return bafu_error(BAFU_EINVAL, "regenerate: needs rng = fast (weights regenerated from keyed substreams)");
  if (p->conditional && p->init != BAFU_INIT_GAUSSIAN)
    return bafu_error(BAFU_EINVAL, "conditional: needs init = gaussian (the conditional law of theory/engine.md 7)");
  if (p->conditional && p->regenerate)
    return bafu_error(BAFU_EINVAL, "conditional and regenerate: choose one (neither stores the weights)");
  if (p->arch == BAFU_ARCH_MLP && p->branch_norm != BAFU_BRANCH_NORM_NONE)
    return bafu_error(BAFU_EINVAL, "branch_norm: only for arch = resnet (an MLP has no branches)");
  if (p->arch == BAFU_ARCH_MLP && p->block_depth != 1)
    return bafu_error(BAFU_EINVAL, "block_depth: only for arch = resnet (an MLP has no branches)");
  if (p->arch == BAFU_ARCH_MLP && p->embed)
    return bafu_error(BAFU_EINVAL, "embed: only for arch = resnet (an MLP's first layer is already trained)");
  if (p->arch == BAFU_ARCH_RESNET && !p->embed && input_dim(p) != p->width)
    return bafu_error(BAFU_EINVAL,
                      "input_dim: a ResNet without an embedding needs the input dimension to equal the width (%zu != %zu)",
                      input_dim(p), p->width);
  if (p->arch == BAFU_ARCH_RESNET && !isfinite(bafu_net_beta(p)))
    return bafu_error(BAFU_EINVAL, "branch_scale/branch_exponent: beta is not finite");
  return BAFU_OK;
}

/* The units, in order, from the network's description (bafu/layout.h): one per
 * dense entry, K per block (theory/engine.md 1.5); out[j] = entry j's last. */
static void layer_shapes(const bafu_layout *lay, layer *L, size_t *out) {
  size_t u = 0;
  for (size_t j = 0; j < lay->J; ++j) {
    const bafu_stage *s;
    size_t k;
    const int label = bafu_layout_entry(lay, j, &s, &k);
    const double lrb = s->bias_var > 0 ? s->lr_bias : 0.0;
    const int block = s->kind == BAFU_STAGE_BLOCK, reads_x = s->reads_x && k == 0;
    const size_t K = block ? s->depth : 1, first = u;
    for (size_t i = 0; i < K; ++i, ++u) {
      const int last = i + 1 == K;
      L[u] = (layer){.kind = block && last ? LAYER_RESIDUAL : LAYER_PLAIN, .label = label, .row = j,
                     .fan_in = s->fan_in, .fan_out = s->fan_out, .reads_x = reads_x && i == 0,
                     .scale = last ? s->scale : 1.0, .gain = s->gain, .lr = s->lr, .lrb = lrb, .lr0 = s->lr,
                     .lrb0 = lrb, .norm = block && i == 0 && s->norm, .inner = !last,
                     .skip = block && last && !reads_x ? (long)first - 1 : -1,
                     .close = block && i == 0 ? (long)(first + K - 1) : -1};
    }
    out[j] = u - 1;
  }
}

/* Saturating arithmetic for the memory estimate. */
static size_t sat_mul(size_t a, size_t b) { return (a && b > SIZE_MAX / a) ? SIZE_MAX : a * b; }
static size_t sat_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

/* --conditional: the block workspace shared by every layer's sampler. */
static size_t gcond_work_doubles(const bafu_layout *lay) {
  size_t most = 0;
  for (size_t i = 0; i < lay->nstages; ++i) {
    const bafu_stage *s = &lay->stage[i];
    const size_t w = bafu_gcond_block_doubles(s->fan_out, s->fan_in, sat_mul(3, lay->batch), lay->batch, lay->batch);
    most = w > most ? w : most;
  }
  return most;
}

/* Number of doubles for everything, stage by stage (each entry: W, or the
 * conditional sampler's memory; F, B, dF, Fs, G, Dp, GG, BB); lqrwork is the
 * QR workspace size. */
static size_t doubles_needed(const bafu_layout *lay, const bafu_net_params *p, size_t lqrwork) {
  const size_t n = lay->width, d = lay->input_dim, m = lay->batch, k = lay->outputs;
  const size_t max_dim = n > d ? n : d;
  size_t total = 0;
  for (size_t i = 0; i < lay->nstages; ++i) {
    const bafu_stage *s = &lay->stage[i];
    size_t per = sat_add(sat_mul(4, sat_mul(s->fan_out, m)), sat_mul(2, sat_mul(s->fan_in, m)));
    per = sat_add(per, sat_mul(2, sat_mul(m, m)));
    if (s->bias_var > 0) per = sat_add(per, s->fan_out); /* the bias */
    if (s->kind == BAFU_STAGE_BLOCK && s->norm) per = sat_add(per, sat_mul(2, m)); /* r per sample */
    if (p->conditional) /* right products: forward, tangent, step; left: backward */
      per = sat_add(per, bafu_gcond_doubles(s->fan_out, s->fan_in, sat_mul(3, m), m));
    else if (!p->regenerate)
      per = sat_add(per, sat_mul(s->fan_out, s->fan_in));
    total = sat_add(total, sat_mul(sat_mul(s->count, s->depth), per));
  }
  if (p->regenerate) total = sat_add(total, sat_mul(n, max_dim)); /* the one shared weight buffer */
  total = sat_add(total, sat_mul(d, m));                 /* X */
  total = sat_add(total, sat_mul(k, m));                 /* T */
  total = sat_add(total, sat_mul(n, m));                 /* probe */
  total = sat_add(total, sat_mul(2, sat_mul(max_dim, m))); /* tmp, tmp2 */
  if (p->conditional) total = sat_add(total, gcond_work_doubles(lay)); /* gwork */
  total = sat_add(total, sat_mul(m, m));                 /* H */
  if (p->bias_var > 0) total = sat_add(total, max_dim > k ? max_dim : k); /* bsum */
  if (p->init == BAFU_INIT_ORTHOGONAL) {
    total = sat_add(total, sat_mul(max_dim, max_dim));   /* qr */
    total = sat_add(total, max_dim);                     /* tau */
    total = sat_add(total, lqrwork);
  }
  return total;
}

size_t bafu_net_memory_bytes(const bafu_net_params *p) {
  bafu_layout lay;
  if (bafu_layout_build(p, &lay)) return SIZE_MAX;
  const size_t max_dim = lay.width > lay.input_dim ? lay.width : lay.input_dim;
  /* the QR workspace is at most 64 * max_dim doubles (block size) plus slack */
  return sat_mul(sizeof(double), doubles_needed(&lay, p, sat_mul(64, max_dim)));
}

/* BAFU_MEMORY_LIMIT_MB: 0 if unset or empty, else the limit in bytes if the
 * value is a positive decimal integer (digits only: no sign, space, unit or
 * exponent), else SIZE_MAX as the mark of a malformed value. */
static size_t memory_limit_from_env(const char **value) {
  const char *env = getenv("BAFU_MEMORY_LIMIT_MB");
  if (value) *value = env;
  if (!env || !*env) return 0;
  for (const char *c = env; *c; ++c)
    if (*c < '0' || *c > '9') return SIZE_MAX;
  errno = 0;
  const unsigned long long mb = strtoull(env, NULL, 10);
  if (errno || mb == 0 || mb > SIZE_MAX / (1024u * 1024u)) return SIZE_MAX;
  return (size_t)mb * 1024u * 1024u;
}

bafu_status bafu_memory_limit_check(void) {
  const char *v;
  if (memory_limit_from_env(&v) != SIZE_MAX) return BAFU_OK;
  return bafu_error(BAFU_EINVAL, "BAFU_MEMORY_LIMIT_MB: expected a positive whole number of MiB, got '%.40s'", v);
}

size_t bafu_memory_limit_bytes(void) {
  const size_t env = memory_limit_from_env(NULL);
  if (env && env != SIZE_MAX) return env;
  long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || psize <= 0) return (size_t)8 << 30;
  return (size_t)((double)pages * (double)psize * 0.8);
}

bafu_status bafu_memory_check(double bytes, const char *what) {
  bafu_status st = bafu_memory_limit_check();
  if (st) return st;
  const double limit = (double)bafu_memory_limit_bytes();
  if (bytes <= limit) return BAFU_OK;
  /* in MiB below a GiB, with as many digits as it takes for the two to differ */
  const double unit = limit < 1073741824.0 ? 1048576.0 : 1073741824.0;
  const char *uname = unit < 1073741824.0 ? "MiB" : "GiB";
  char need[64] = "an impossible amount", lim[32], a[32]; /* an estimate past SIZE_MAX saturates */
  const int finite = isfinite(bytes) && bytes < (double)SIZE_MAX;
  int digits = 3;
  do {
    snprintf(lim, sizeof lim, "%.*g %s", digits, limit / unit, uname);
    snprintf(a, sizeof a, "%.*g %s", digits, bytes / unit, uname);
  } while (finite && strcmp(a, lim) == 0 && ++digits <= 17);
  if (finite) snprintf(need, sizeof need, "about %s", a);
  return bafu_error(BAFU_ELIMIT,
                    "%s: %s needed, more than the limit of %s (%s)", what, need, lim,
                    memory_limit_from_env(NULL) ? "BAFU_MEMORY_LIMIT_MB"
                                                : "80% of physical memory; set BAFU_MEMORY_LIMIT_MB to change it");
}

/* The network's memory, zeroed. A block of BIG_BLOCK bytes or more is mapped
 * directly and marked for transparent huge pages: a wide conditional network
 * touches gigabytes once per process, and with 4 KiB pages the kernel's page
 * faults cost as much time as the draws themselves (theory/engine.md 7.2). */
#define BIG_BLOCK ((size_t)64 << 20)
static void *block_alloc(size_t bytes, size_t *kept) {
  *kept = bytes;
#if defined(MADV_HUGEPAGE) && defined(MAP_ANONYMOUS)
  if (bytes >= BIG_BLOCK) {
    void *ptr = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ptr == MAP_FAILED) return NULL;
    (void)madvise(ptr, bytes, MADV_HUGEPAGE); /* advice only: without it the pages are small */
    return ptr;
  }
#endif
  return calloc(bytes / sizeof(double), sizeof(double));
}

static void block_free(void *ptr, size_t bytes) {
  if (!ptr) return;
#if defined(MADV_HUGEPAGE) && defined(MAP_ANONYMOUS)
  if (bytes >= BIG_BLOCK) {
    munmap(ptr, bytes);
    return;
  }
#endif
  free(ptr);
}

bafu_status bafu_net_alloc(const bafu_net_params *p, bafu_net **out) {
  *out = NULL;
  bafu_status st = bafu_net_params_check(p);
  if (st) return st;
  if ((st = bafu_memory_check((double)bafu_net_memory_bytes(p), "width/depth/batch: this network")))
    return st;
  bafu_net *net = calloc(1, sizeof *net);
  if (!net) return bafu_error(BAFU_ENOMEM, "out of memory allocating the network");
  net->p = *p;
  net->n = p->width;
  net->d = input_dim(p);
  net->m = p->batch;
  net->k = p->outputs;
  net->beta = bafu_net_beta(p);
  net->max_dim = net->n > net->d ? net->n : net->d;
  if ((st = bafu_layout_build(p, &net->lay))) {
    bafu_net_free(net);
    return st;
  }
  net->J = net->lay.J;
  net->U = net->lay.units;
  net->layers = calloc(net->U, sizeof *net->layers);
  net->out = calloc(net->J, sizeof *net->out);
  net->rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!net->layers || !net->out || !net->rng) {
    bafu_net_free(net);
    return bafu_error(BAFU_ENOMEM, "out of memory allocating the network");
  }
  layer_shapes(&net->lay, net->layers, net->out);
  for (size_t j = 0; j < net->U; ++j) net->layers[j].bscale = 1.0;

  lapack_int lwork = 0;
  if (p->init == BAFU_INIT_ORTHOGONAL) {
    /* one workspace query for the largest shape, for dgeqrf and dorgqr */
    double q1 = 0, q2 = 0, dummy = 0;
    lapack_int M = (lapack_int)net->max_dim, N = (lapack_int)net->max_dim;
    lapack_int i1 = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, M, N, &dummy, M, &dummy, &q1, -1);
    lapack_int i2 = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, M, N, N, &dummy, M, &dummy, &q2, -1);
    if (i1 || i2) {
      bafu_net_free(net);
      return bafu_error(BAFU_ELAPACK, "LAPACK workspace query failed (info %d, %d)", (int)i1, (int)i2);
    }
    lwork = (lapack_int)fmax(q1, q2) + 1;
  }
  net->lqrwork = lwork;
  const size_t total = doubles_needed(&net->lay, p, (size_t)lwork);
  net->block = total <= SIZE_MAX / sizeof(double) ? block_alloc(total * sizeof(double), &net->block_bytes) : NULL;
  if (!net->block) {
    bafu_net_free(net);
    return bafu_error(BAFU_ENOMEM, "out of memory: the network needs %.3g GiB",
                      (double)total * 8 / 1073741824.0);
  }
  double *cur = net->block;
#define TAKE(ptr, count) (ptr = cur, cur += (count))
  const size_t m = net->m;
  double *shared_w = NULL;
  if (p->regenerate) TAKE(shared_w, net->n * net->max_dim);
  net->wcur = -1;
  for (size_t j = 0; j < net->U; ++j) {
    layer *Ly = &net->layers[j];
    if (p->conditional) {
      double *mem;
      TAKE(mem, bafu_gcond_doubles(Ly->fan_out, Ly->fan_in, 3 * m, m));
      bafu_gcond_init(&Ly->gc, Ly->fan_out, Ly->fan_in, 3 * m, m, sqrt(Ly->gain / (double)Ly->fan_in), mem);
    } else if (p->regenerate) {
      Ly->W = shared_w;
    } else {
      TAKE(Ly->W, Ly->fan_out * Ly->fan_in);
    }
    TAKE(Ly->F, Ly->fan_out * m);
    TAKE(Ly->B, Ly->fan_out * m);
    TAKE(Ly->dF, Ly->fan_out * m);
    TAKE(Ly->Fs, Ly->fan_out * m);
    TAKE(Ly->G, Ly->fan_in * m);
    TAKE(Ly->Dp, Ly->fan_in * m);
    TAKE(Ly->GG, m * m);
    TAKE(Ly->BB, m * m);
    if (p->bias_var > 0) TAKE(Ly->c, Ly->fan_out);
    if (Ly->norm) TAKE(Ly->rn, 2 * m);
  }
  TAKE(net->X, net->d * m);
  TAKE(net->T, net->k * m);
  TAKE(net->probe, net->n * m);
  TAKE(net->tmp, net->max_dim * m);
  TAKE(net->tmp2, net->max_dim * m);
  if (p->conditional) TAKE(net->gwork, gcond_work_doubles(&net->lay));
  TAKE(net->H, m * m);
  if (p->bias_var > 0) TAKE(net->bsum, net->max_dim > net->k ? net->max_dim : net->k);
  if (p->init == BAFU_INIT_ORTHOGONAL) {
    TAKE(net->qr, net->max_dim * net->max_dim);
    TAKE(net->tau, net->max_dim);
    TAKE(net->qrwork, (size_t)lwork);
  }
#undef TAKE
  if ((size_t)(cur - (double *)net->block) > total) abort(); /* layout bug: fail loudly */
  *out = net;
  return BAFU_OK;
}

void bafu_net_free(bafu_net *net) {
  if (!net) return;
  block_free(net->block, net->block_bytes);
  free(net->layers);
  free(net->out);
  if (net->rng) gsl_rng_free(net->rng);
  free(net);
}

size_t bafu_net_nlayers(const bafu_net *net) { return net->J; }
size_t bafu_net_nunits(const bafu_net *net) { return net->U; }
size_t bafu_net_unit_layer(const bafu_net *net, size_t u) { return net->layers[u].row; }
size_t bafu_net_unit_fan_in(const bafu_net *net, size_t u) { return net->layers[u].fan_in; }
size_t bafu_net_unit_fan_out(const bafu_net *net, size_t u) { return net->layers[u].fan_out; }
const bafu_layout *bafu_net_layout(const bafu_net *net) { return &net->lay; }
const bafu_net_params *bafu_net_get_params(const bafu_net *net) { return &net->p; }
/* entry j's last unit: the one that makes its features */
static const layer *row_unit(const bafu_net *net, size_t j) { return &net->layers[net->out[j]]; }
/* the units of entry j: [row_begin, out[j]] */
static size_t row_begin(const bafu_net *net, size_t j) { return j ? net->out[j - 1] + 1 : 0; }
int bafu_net_layer_label(const bafu_net *net, size_t j) { return row_unit(net, j)->label; }
size_t bafu_net_layer_fan_in(const bafu_net *net, size_t j) { return net->layers[row_begin(net, j)].fan_in; }
size_t bafu_net_layer_fan_out(const bafu_net *net, size_t j) { return row_unit(net, j)->fan_out; }
double bafu_net_layer_lr(const bafu_net *net, size_t j) { return row_unit(net, j)->lr; }
double *bafu_net_weight(bafu_net *net, size_t u) { return net->p.conditional ? NULL : (double *)W_of(net, u); }
int bafu_net_has_weights(const bafu_net *net) { return !net->p.conditional; }
const double *bafu_net_feature(const bafu_net *net, size_t j) { return row_unit(net, j)->F; }
const double *bafu_net_backward_signal(const bafu_net *net, size_t j) { return row_unit(net, j)->B; }
const double *bafu_net_feature_tangent(const bafu_net *net, size_t j) { return row_unit(net, j)->dF; }
const double *bafu_net_feature_stepped(const bafu_net *net, size_t j) { return row_unit(net, j)->Fs; }
const double *bafu_net_inputs(const bafu_net *net) { return net->X; }
const double *bafu_net_unit_feature(const bafu_net *net, size_t u) { return net->layers[u].F; }

void bafu_net_set_targets(bafu_net *net, const double *t) {
  if (t) {
    memcpy(net->T, t, net->k * net->m * sizeof(double));
    net->targets_fixed = 1;
  } else {
    net->targets_fixed = 0;
  }
}

void bafu_net_set_inputs(bafu_net *net, const double *x) {
  if (x) {
    memcpy(net->X, x, net->d * net->m * sizeof(double));
    net->inputs_fixed = 1;
  } else {
    net->inputs_fixed = 0;
  }
}

/* Uniform integer in [0, count) from the draw's stream. */
static size_t uniform_index(bafu_net *net, size_t count) {
  if (net->p.rng == BAFU_RNG_FAST) {
    const size_t i = (size_t)(bafu_fastrng_uniform(&net->fast) * (double)count);
    return i < count ? i : count - 1;
  }
  return (size_t)gsl_rng_uniform_int(net->rng, (unsigned long)count);
}

static void fill_gaussian(bafu_net *net, double sd, size_t count, double *out) {
  if (net->p.rng == BAFU_RNG_FAST)
    bafu_fastrng_fill_gaussian(&net->fast, sd, count, out);
  else
    bafu_fill_gaussian(net->rng, sd, count, out);
}

/* W (rows x cols) = sqrt(s * max(1, rows/cols)) * Q, Q Haar-distributed with
 * orthonormal columns (rows >= cols) or rows (rows < cols); theory/engine.md 1.2. */
static bafu_status draw_orthogonal(bafu_net *net, size_t rows, size_t cols, double s, double *W) {
  const size_t tall = rows >= cols ? rows : cols, wide = rows >= cols ? cols : rows;
  double *A = net->qr;
  fill_gaussian(net, 1.0, tall * wide, A);
  lapack_int info = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, (lapack_int)tall, (lapack_int)wide, A,
                                        (lapack_int)tall, net->tau, net->qrwork, net->lqrwork);
  if (info) return bafu_error(BAFU_ELAPACK, "dgeqrf failed (info %d)", (int)info);
  /* sign correction: Q -> Q diag(sign(R_ii)) makes Q Haar distributed */
  double *sgn = net->tmp2; /* wide <= max_dim entries; tmp2 has max_dim * m >= wide */
  for (size_t i = 0; i < wide; ++i) sgn[i] = A[i + i * tall] < 0 ? -1.0 : 1.0;
  info = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, (lapack_int)tall, (lapack_int)wide, (lapack_int)wide, A,
                             (lapack_int)tall, net->tau, net->qrwork, net->lqrwork);
  if (info) return bafu_error(BAFU_ELAPACK, "dorgqr failed (info %d)", (int)info);
  const double c = sqrt(s * fmax(1.0, (double)rows / (double)cols));
  if (rows >= cols) {
    for (size_t jc = 0; jc < cols; ++jc)
      for (size_t i = 0; i < rows; ++i) W[i + jc * rows] = c * sgn[jc] * A[i + jc * tall];
  } else { /* W = (Q diag(sgn))^T: rows x cols with orthonormal rows */
    for (size_t jc = 0; jc < cols; ++jc)
      for (size_t i = 0; i < rows; ++i) W[i + jc * rows] = c * sgn[i] * A[jc + i * tall];
  }
  return BAFU_OK;
}

/* Generate layer j's weights into Ly->W. With the fast generator each layer
 * has its own substream (2 + j), so a layer can be regenerated alone. */
static bafu_status gen_weights(bafu_net *net, size_t j) {
  layer *Ly = &net->layers[j];
  if (net->p.rng == BAFU_RNG_FAST) bafu_fastrng_seed_stream(&net->fast, net->seed, net->draw, 2 + j);
  if (net->p.init == BAFU_INIT_ORTHOGONAL) return draw_orthogonal(net, Ly->fan_out, Ly->fan_in, Ly->gain, Ly->W);
  fill_gaussian(net, sqrt(Ly->gain / (double)Ly->fan_in), Ly->fan_out * Ly->fan_in, Ly->W);
  return BAFU_OK;
}

/* The weights of layer j: regenerated into the shared buffer (--regenerate),
 * or generated on first use (fast generator, Gaussian init: the forward pass
 * then reads each matrix while it is still in cache). Neither path can fail:
 * Gaussian draws have no failure mode, and orthogonal init is generated (or,
 * when regenerated, checked on layer 0) at draw time. */
static const double *W_of(bafu_net *net, size_t j) {
  if (net->p.regenerate) {
    if (net->wcur != (long)j) {
      gen_weights(net, j);
      net->wcur = (long)j;
    }
  } else {
    while (net->wready <= j) gen_weights(net, net->wready++);
  }
  return net->layers[j].W;
}

bafu_status bafu_net_draw(bafu_net *net, uint64_t seed, uint64_t draw) {
  net->seed = seed;
  net->draw = draw;
  net->wcur = -1;
  const size_t m = net->m;
  const int fast = net->p.rng == BAFU_RNG_FAST;
  if (fast)
    bafu_fastrng_seed_stream(&net->fast, seed, draw, 0);
  else
    bafu_rng_seed(net->rng, seed, draw);
  if (!net->inputs_fixed) {
    if (net->p.inputs == BAFU_INPUTS_ONEHOT) {
      memset(net->X, 0, net->d * m * sizeof(double));
      for (size_t a = 0; a < m; ++a) net->X[a * net->d + uniform_index(net, net->d)] = 1.0;
    } else {
      fill_gaussian(net, 1.0, net->d * m, net->X);
    }
  }
  /* Weights: with the fast generator each layer has its own substream, so
   * when they are generated does not change them (W_of). */
  const int lazy = fast && net->p.init == BAFU_INIT_GAUSSIAN;
  net->wready = 0;
  if (net->p.conditional) /* no weights: each layer's sampler starts a new matrix */
    for (size_t j = 0; j < net->U; ++j) bafu_gcond_reset(&net->layers[j].gc, net->layers[j].gc.sd);
  for (size_t j = 0; j < net->U && !net->p.conditional; ++j) {
    if (net->p.regenerate ? j > 0 : lazy) break; /* generated on demand; layer 0 checks the init */
    bafu_status st = gen_weights(net, j);
    if (st) return st;
    if (net->p.regenerate) net->wcur = 0;
    net->wready = j + 1;
  }
  if (fast) bafu_fastrng_seed_stream(&net->fast, seed, draw, 1);
  if (net->p.signal == BAFU_SIGNAL_PROBE) {
    fill_gaussian(net, 1.0 / sqrt((double)net->n), net->n * m, net->probe);
  } else if (!net->targets_fixed) {
    if (net->p.signal == BAFU_SIGNAL_XENT) {
      memset(net->T, 0, net->k * m * sizeof(double));
      for (size_t a = 0; a < m; ++a) net->T[a * net->k + uniform_index(net, net->k)] = 1.0;
    } else {
      fill_gaussian(net, 1.0, net->k * m, net->T);
    }
  }
  /* biases: layer j's from its own substream 3 + J + j (fast), or the GSL stream */
  for (size_t j = 0; j < net->U && net->p.bias_var > 0; ++j) {
    if (fast) bafu_fastrng_seed_stream(&net->fast, seed, draw, 3 + net->U + j);
    fill_gaussian(net, sqrt(net->p.bias_var), net->layers[j].fan_out, net->layers[j].c);
  }
  /* the conditional sampler's numbers: stream 2 + J (the layers use 2 .. J + 1),
   * or the GSL stream from here on */
  if (fast && net->p.conditional) bafu_fastrng_seed_stream(&net->fast, seed, draw, 2 + net->U);
  return BAFU_OK;
}

static void net_normals(void *ctx, double sd, size_t count, double *out) { fill_gaussian(ctx, sd, count, out); }

/* C = alpha op(A) B + beta C with B, C having m columns; A is rows_a x cols_a
 * (column-major, untransposed shape). Uses dgemv for one column. */
static void mat_apply(int trans, size_t rows_a, size_t cols_a, double alpha, const double *A,
                      const double *Bm, double beta, double *C, size_t m) {
  const size_t out_rows = trans ? cols_a : rows_a, in_rows = trans ? rows_a : cols_a;
  if (m == 1)
    cblas_dgemv(CblasColMajor, trans ? CblasTrans : CblasNoTrans, (int)rows_a, (int)cols_a, alpha, A,
                (int)rows_a, Bm, 1, beta, C, 1);
  else
    cblas_dgemm(CblasColMajor, trans ? CblasTrans : CblasNoTrans, CblasNoTrans, (int)out_rows, (int)m,
                (int)in_rows, alpha, A, (int)rows_a, Bm, (int)in_rows, beta, C, (int)out_rows);
}

/* C = alpha op(W_j) Bm + beta C (m columns): the stored (or generated)
 * weights, or with --conditional the block's conditional draw
 * (theory/engine.md 7.3; Bm and C must not overlap). */
static bafu_status w_apply(bafu_net *net, size_t j, int trans, double alpha, const double *Bm, double beta,
                           double *C) {
  layer *Ly = &net->layers[j];
  const size_t m = net->m;
  if (!net->p.conditional) {
    mat_apply(trans, Ly->fan_out, Ly->fan_in, alpha, W_of(net, j), Bm, beta, C, m);
    return BAFU_OK;
  }
  bafu_status st = bafu_gcond_apply_block(&Ly->gc, trans, m, alpha, Bm, beta, net->gwork, C, net_normals, net);
  if (st) {
    char why[400];
    snprintf(why, sizeof why, "%s", bafu_last_error());
    return bafu_error(st, "layer %d: %s", Ly->label, why);
  }
  return BAFU_OK;
}

/* m x m Gram A^T B of two rows x m matrices. */
static void gram(size_t rows, size_t m, const double *A, const double *Bm, double *out) {
  if (m == 1)
    out[0] = cblas_ddot((int)rows, A, 1, Bm, 1);
  else
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)m, (int)m, (int)rows, 1.0, A, (int)rows, Bm,
                (int)rows, 0.0, out, (int)m);
}

/* Biases (theory/engine.md 1.3): Fcols(:, a) += alpha c for every column. */
static void add_columns(size_t rows, size_t m, double alpha, const double *c, double *Fcols) {
  for (size_t a = 0; a < m; ++a) cblas_daxpy((int)rows, alpha, c, 1, Fcols + a * rows, 1);
}

/* bsum = B 1, the sum of the m columns of a rows x m signal. */
static void column_sum(size_t rows, size_t m, const double *B, double *bsum) {
  memcpy(bsum, B, rows * sizeof *bsum);
  for (size_t a = 1; a < m; ++a) cblas_daxpy((int)rows, 1.0, B + a * rows, 1, bsum, 1);
}

/* The stream a layer reads: x or the previous layer's features. */
static const double *prev_features(const bafu_net *net, size_t j, const double *(*pick)(const layer *)) {
  return net->layers[j].reads_x ? net->X : pick(&net->layers[j - 1]);
}
/* The stream a residual unit adds its branch to: x or the features before the block. */
static const double *skip_features(const bafu_net *net, size_t j, const double *(*pick)(const layer *)) {
  return net->layers[j].skip < 0 ? net->X : pick(&net->layers[net->layers[j].skip]);
}
static const double *pick_F(const layer *Ly) { return Ly->F; }
static const double *pick_Fs(const layer *Ly) { return Ly->Fs; }

static bafu_status check_finite(const double *v, size_t count, const char *what) {
  for (size_t i = 0; i < count; ++i)
    if (!isfinite(v[i]))
      return bafu_error(BAFU_ENUMERIC, "%s overflowed (non-finite value): reduce depth, sigma-w2 or step", what);
  return BAFU_OK;
}

static int is_readout(const bafu_net *net, size_t j) {
  return net->p.signal != BAFU_SIGNAL_PROBE && j + 1 == net->U;
}

/* Normalised branch input (theory/engine.md 1.4): u = f / r per sample,
 * r = |f(:, a)|_rms, into U; r into rn. A zero column has no direction. */
static bafu_status normalise(const double *F, size_t n, size_t m, double *rn, double *U, int label) {
  for (size_t a = 0; a < m; ++a) {
    const double r = cblas_dnrm2((int)n, F + a * n, 1) / sqrt((double)n);
    if (!(r > 0))
      return bafu_error(BAFU_ENUMERIC, "branch_norm: the residual stream of sample %zu entering block %d is zero "
                                       "(its rms has no inverse)", a + 1, label);
    rn[a] = r;
    for (size_t i = 0; i < n; ++i) U[a * n + i] = F[a * n + i] / r;
  }
  return BAFU_OK;
}

/* The transpose of the normalisation's Jacobian P = (I - u u^T / n) / r,
 * u = f / r, applied per sample to V in place: V <- (V - f (f.V) / (r^2 n)) / r. */
static void normalise_jacobian(const double *F, size_t n, size_t m, const double *rn, double *V) {
  for (size_t a = 0; a < m; ++a) {
    const double r = rn[a], *f = F + a * n;
    double *v = V + a * n;
    const double dot = cblas_ddot((int)n, f, 1, v, 1) / (r * r * (double)n);
    for (size_t i = 0; i < n; ++i) v[i] = (v[i] - f[i] * dot) / r;
  }
}

/* b_{j-1} of unit j > 0 from tmp = W_j^T b_j (theory/engine.md 2.2, 1.4, 1.5):
 * the unit that opens a block adds the identity path of the block's last
 * unit (close), whose signal is the stream's after the block. */
static void backward_step(bafu_net *net, const layer *Ly, layer *Pv) {
  const size_t nin = Ly->fan_in * net->m;
  if (Ly->close < 0) {
    for (size_t i = 0; i < nin; ++i) Pv->B[i] = Ly->scale * Ly->Dp[i] * net->tmp[i];
    return;
  }
  const double *Bc = net->layers[Ly->close].B;
  if (Ly->norm) {
    for (size_t i = 0; i < nin; ++i) net->tmp[i] *= Ly->scale * Ly->Dp[i];
    normalise_jacobian(Pv->F, Ly->fan_in, net->m, Ly->rn, net->tmp);
    for (size_t i = 0; i < nin; ++i) Pv->B[i] = Bc[i] + net->tmp[i];
  } else {
    for (size_t i = 0; i < nin; ++i) Pv->B[i] = Bc[i] + Ly->scale * Ly->Dp[i] * net->tmp[i];
  }
}

/* Forward pass (theory/engine.md 2.1). */
bafu_status bafu_net_forward(bafu_net *net) {
  const size_t m = net->m;
  const bafu_act act = net->p.act;
  bafu_status st;
  for (size_t j = 0; j < net->U; ++j) {
    layer *Ly = &net->layers[j];
    const double *prev = prev_features(net, j, pick_F);
    const size_t nin = Ly->fan_in * m;
    if (Ly->kind == LAYER_PLAIN && Ly->reads_x && Ly->close < 0) { /* dense, reads x: g = x (a block: phi(x)) */
      memcpy(Ly->G, net->X, nin * sizeof(double));
    } else if (Ly->norm) {
      if ((st = normalise(prev, Ly->fan_in, m, Ly->rn, net->tmp, Ly->label))) return st;
      bafu_act_apply(act, nin, net->tmp, Ly->G, Ly->Dp);
    } else {
      bafu_act_apply(act, nin, prev, Ly->G, Ly->Dp);
    }
    if (Ly->kind == LAYER_RESIDUAL) {
      memcpy(Ly->F, skip_features(net, j, pick_F), Ly->fan_out * m * sizeof(double));
      if ((st = w_apply(net, j, 0, Ly->scale, Ly->G, 1.0, Ly->F))) return st;
    } else if (net->fnorm > 0 && !net->fnorm_frozen && !is_readout(net, j) && !Ly->inner) {
      /* forward normalisation (theory/engine.md 6.4): a_j = target / |W g|_rms */
      const size_t cnt = Ly->fan_out * m;
      if ((st = w_apply(net, j, 0, 1.0, Ly->G, 0.0, Ly->F))) return st;
      const double rms = cblas_dnrm2((int)cnt, Ly->F, 1) / sqrt((double)cnt);
      Ly->scale = rms > 0 ? net->fnorm / rms : 1.0;
      cblas_dscal((int)cnt, Ly->scale, Ly->F, 1);
    } else {
      if ((st = w_apply(net, j, 0, Ly->scale, Ly->G, 0.0, Ly->F))) return st;
    }
    if (Ly->c) add_columns(Ly->fan_out, m, Ly->scale, Ly->c, Ly->F); /* f += s c */
    gram(Ly->fan_in, m, Ly->G, Ly->G, Ly->GG);
  }
  const layer *last = &net->layers[net->U - 1];
  return check_finite(last->F, last->fan_out * m, "the forward pass");
}

/* log sum_i exp(y_i) over k logits, without overflow. */
static double log_sum_exp(const double *y, size_t k) {
  double mx = y[0];
  for (size_t i = 1; i < k; ++i) mx = fmax(mx, y[i]);
  double s = 0;
  for (size_t i = 0; i < k; ++i) s += exp(y[i] - mx);
  return mx + log(s);
}

/* The loss of the top features Y (fan_out x m). */
static double loss_of(const bafu_net *net, const double *Y) {
  const size_t k = net->layers[net->U - 1].fan_out, m = net->m, count = k * m;
  if (net->p.signal == BAFU_SIGNAL_PROBE) return cblas_ddot((int)count, net->probe, 1, Y, 1);
  double s = 0;
  if (net->p.signal == BAFU_SIGNAL_XENT) { /* -log softmax(y)_c = lse(y) - <t, y> */
    for (size_t a = 0; a < m; ++a)
      s += log_sum_exp(Y + a * k, k) - cblas_ddot((int)k, net->T + a * k, 1, Y + a * k, 1);
    return s / (double)m;
  }
  for (size_t i = 0; i < count; ++i) s += (Y[i] - net->T[i]) * (Y[i] - net->T[i]);
  return s / (2.0 * (double)m);
}

double bafu_net_loss(const bafu_net *net) { return loss_of(net, net->layers[net->U - 1].F); }
double bafu_net_step_loss(const bafu_net *net) { return loss_of(net, net->layers[net->U - 1].Fs); }

void bafu_net_predict(const bafu_net *net, int *cls) {
  const layer *last = &net->layers[net->U - 1];
  const size_t k = last->fan_out;
  for (size_t a = 0; a < net->m; ++a) {
    const double *y = last->F + a * k;
    size_t best = 0;
    for (size_t i = 1; i < k; ++i)
      if (y[i] > y[best]) best = i;
    cls[a] = (int)best;
  }
}

/* Backward pass and contributions (theory/engine.md 2.2). */
bafu_status bafu_net_backward(bafu_net *net) {
  const size_t m = net->m, J = net->U;
  layer *last = &net->layers[J - 1];
  const size_t nlast = last->fan_out * m;
  if (net->p.signal == BAFU_SIGNAL_PROBE) {
    memcpy(last->B, net->probe, nlast * sizeof(double));
  } else if (net->p.signal == BAFU_SIGNAL_XENT) { /* (softmax(y) - t) / m */
    const size_t k = last->fan_out;
    for (size_t a = 0; a < m; ++a) {
      const double lse = log_sum_exp(last->F + a * k, k);
      for (size_t i = 0; i < k; ++i)
        last->B[a * k + i] = (exp(last->F[a * k + i] - lse) - net->T[a * k + i]) / (double)m;
    }
  } else {
    for (size_t i = 0; i < nlast; ++i) last->B[i] = (last->F[i] - net->T[i]) / (double)m;
  }
  last->bscale = 1.0;
  for (size_t j = J; j-- > 0;) {
    layer *Ly = &net->layers[j];
    gram(Ly->fan_out, m, Ly->B, Ly->B, Ly->BB);
    /* |grad|^2 = s^2 |B G^T|_F^2 = s^2 sum_ab (B^T B)_ab (G^T G)_ab for the
     * stored B; C_j = lr <true grad, update> = lr |grad|^2 / R_j (theory/engine.md 6.5) */
    double c = 0;
    for (size_t a = 0; a < m * m; ++a) c += Ly->BB[a] * Ly->GG[a];
    Ly->gsq = Ly->scale * Ly->scale * c;
    if (Ly->c) { /* |grad_c|^2 = s^2 |B 1|^2 = s^2 sum_ab (B^T B)_ab */
      double cb = 0;
      for (size_t a = 0; a < m * m; ++a) cb += Ly->BB[a];
      Ly->gsq_b = Ly->scale * Ly->scale * cb;
      Ly->contrib = (Ly->lr * Ly->gsq + Ly->lrb * Ly->gsq_b) / Ly->bscale;
    } else {
      Ly->contrib = Ly->lr * Ly->gsq / Ly->bscale;
    }
    if (j == 0 || Ly->reads_x) continue;
    layer *Pv = &net->layers[j - 1];
    const size_t nin = Ly->fan_in * m;
    bafu_status st = w_apply(net, j, 1, 1.0, Ly->B, 0.0, net->tmp); /* W^T b */
    if (st) return st;
    backward_step(net, Ly, Pv);
    Pv->bscale = Ly->bscale;
    if (net->bnorm > 0 && !Pv->inner) { /* backward normalisation: |b_{j-1}| = target (an entry's signal) */
      const double bn = cblas_dnrm2((int)nin, Pv->B, 1);
      if (bn > 0) {
        cblas_dscal((int)nin, net->bnorm / bn, Pv->B, 1);
        Pv->bscale *= net->bnorm / bn;
      }
    }
  }
  return check_finite(net->layers[0].B, net->layers[0].fan_out * m, "the backward pass");
}

/* Tangent (forward-mode) pass along dW_j = -lr_j grad_j (theory/engine.md 2.3):
 *   df_j = [df_{j-1}] + s W_j (phi'(f_{j-1}) .* df_{j-1}) - lr_j s^2 b_j (g_j^T g_j). */
bafu_status bafu_net_tangent(bafu_net *net) {
  const size_t m = net->m;
  for (size_t j = 0; j < net->U; ++j) {
    layer *Ly = &net->layers[j];
    const size_t nout = Ly->fan_out * m, nin = Ly->fan_in * m;
    const double *dprev = Ly->reads_x ? NULL : net->layers[j - 1].dF;
    if (Ly->kind == LAYER_RESIDUAL && Ly->skip >= 0)
      memcpy(Ly->dF, net->layers[Ly->skip].dF, nout * sizeof(double));
    else
      memset(Ly->dF, 0, nout * sizeof(double));
    if (dprev && Ly->norm) { /* phi'(u) .* P df_{j-1} */
      memcpy(net->tmp, dprev, nin * sizeof(double));
      normalise_jacobian(net->layers[j - 1].F, Ly->fan_in, m, Ly->rn, net->tmp);
      for (size_t i = 0; i < nin; ++i) net->tmp[i] *= Ly->Dp[i];
    } else if (dprev) {
      for (size_t i = 0; i < nin; ++i) net->tmp[i] = Ly->Dp[i] * dprev[i];
    }
    if (dprev) {
      bafu_status st = w_apply(net, j, 0, Ly->scale, net->tmp, 1.0, Ly->dF);
      if (st) return st;
    }
    const double c = -Ly->lr * Ly->scale * Ly->scale;
    if (m == 1)
      cblas_daxpy((int)nout, c * Ly->GG[0], Ly->B, 1, Ly->dF, 1);
    else
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)Ly->fan_out, (int)m, (int)m, c, Ly->B,
                  (int)Ly->fan_out, Ly->GG, (int)m, 1.0, Ly->dF, (int)Ly->fan_out);
    if (Ly->c && Ly->lrb != 0) { /* dc = -lrb s B 1: every column moves by -lrb s^2 B 1 */
      column_sum(Ly->fan_out, m, Ly->B, net->bsum);
      add_columns(Ly->fan_out, m, -Ly->lrb * Ly->scale * Ly->scale, net->bsum, Ly->dF);
    }
  }
  const layer *last = &net->layers[net->U - 1];
  return check_finite(last->dF, last->fan_out * m, "the tangent pass");
}

/* Forward pass with W'_j = W_j - eta lr_j s_j b_j g_j^T, never formed
 * (theory/engine.md 2.4):  f'_j = [f'_{j-1}] + s W_j g'_j - eta lr_j s^2 b_j (g_j^T g'_j). */
bafu_status bafu_net_step(bafu_net *net, double eta) {
  const size_t m = net->m;
  const bafu_act act = net->p.act;
  net->eta_step = eta;
  for (size_t j = 0; j < net->U; ++j) {
    layer *Ly = &net->layers[j];
    const double *prev = prev_features(net, j, pick_Fs);
    const size_t nin = Ly->fan_in * m, nout = Ly->fan_out * m;
    double *Gs = net->tmp;
    bafu_status st;
    if (Ly->kind == LAYER_PLAIN && Ly->reads_x && Ly->close < 0) { /* dense, reads x: g = x (a block: phi(x)) */
      memcpy(Gs, net->X, nin * sizeof(double));
    } else if (Ly->norm) { /* the step's own r: the branch reads phi(f' / |f'|_rms) */
      if ((st = normalise(prev, Ly->fan_in, m, Ly->rn + m, net->tmp2, Ly->label))) return st;
      bafu_act_apply(act, nin, net->tmp2, Gs, NULL);
    } else {
      bafu_act_apply(act, nin, prev, Gs, NULL);
    }
    /* conditional, batch > 1: the forward pass's s W g (and s c) are in f, so
     * f' starts from f - skip + skip' and only W (g' - g) is asked (batch 1
     * asks for both parts, as before; theory/engine.md 7.2) */
    const int from_f = net->p.conditional && m > 1;
    if (from_f && Ly->kind == LAYER_RESIDUAL) {
      const double *sk = skip_features(net, j, pick_F), *sks = skip_features(net, j, pick_Fs);
      for (size_t i = 0; i < nout; ++i) Ly->Fs[i] = Ly->F[i] + (sks[i] - sk[i]);
    } else if (from_f) {
      memcpy(Ly->Fs, Ly->F, nout * sizeof(double));
    } else if (Ly->kind == LAYER_RESIDUAL) {
      memcpy(Ly->Fs, skip_features(net, j, pick_Fs), nout * sizeof(double));
    } else {
      memset(Ly->Fs, 0, nout * sizeof(double));
    }
    if (net->p.conditional) {
      /* W g' = W g + W (g' - g): the part of g' outside the answered directions
       * is O(eta^2) |g'| and would fall under the sampler's 1e-11 relative
       * threshold for small steps; relative to |g' - g| it does not
       * (theory/engine.md 7.2) */
      for (size_t i = 0; i < nin; ++i) net->tmp2[i] = Gs[i] - Ly->G[i];
      if ((!from_f && (st = w_apply(net, j, 0, Ly->scale, Ly->G, 1.0, Ly->Fs))) ||
          (st = w_apply(net, j, 0, Ly->scale, net->tmp2, 1.0, Ly->Fs)))
        return st;
    } else if ((st = w_apply(net, j, 0, Ly->scale, Gs, 1.0, Ly->Fs))) {
      return st;
    }
    gram(Ly->fan_in, m, Ly->G, Gs, net->H); /* g_j^T g'_j */
    const double c = -eta * Ly->lr * Ly->scale * Ly->scale;
    if (m == 1)
      cblas_daxpy((int)nout, c * net->H[0], Ly->B, 1, Ly->Fs, 1);
    else
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)Ly->fan_out, (int)m, (int)m, c, Ly->B,
                  (int)Ly->fan_out, net->H, (int)m, 1.0, Ly->Fs, (int)Ly->fan_out);
    if (Ly->c) { /* f' += s c' with c' = c - eta lrb s B 1 */
      if (!from_f) add_columns(Ly->fan_out, m, Ly->scale, Ly->c, Ly->Fs);
      if (Ly->lrb != 0) {
        column_sum(Ly->fan_out, m, Ly->B, net->bsum);
        add_columns(Ly->fan_out, m, -eta * Ly->lrb * Ly->scale * Ly->scale, net->bsum, Ly->Fs);
      }
    }
  }
  const layer *last = &net->layers[net->U - 1];
  return check_finite(last->Fs, last->fan_out * m, "the finite step");
}

/* Backward pass from the stored top signal, without contributions. */
static void backward_from_top(bafu_net *net) {
  const size_t m = net->m;
  for (size_t j = net->U; j-- > 1;) {
    layer *Ly = &net->layers[j];
    if (Ly->reads_x) continue;
    layer *Pv = &net->layers[j - 1];
    mat_apply(1, Ly->fan_out, Ly->fan_in, 1.0, W_of(net, j), Ly->B, 0.0, net->tmp, m);
    backward_step(net, Ly, Pv);
  }
}

/* theory/engine.md 3.3: y_a depends on W_j only through sample a's column, so
 * d y_a / d W_j = s_j b_j^a g_j(a)^T with b_j^a the backward signal of e_a, and
 * Theta_ab = sum_j lr_j s_j^2 <b_j^a, b_j^b> <g_j(a), g_j(b)>. */
bafu_status bafu_net_empirical_ntk(bafu_net *net, double *work, double *theta) {
  const size_t m = net->m, J = net->U, n = net->n;
  if (net->p.signal != BAFU_SIGNAL_MSE || net->k != 1)
    return bafu_error(BAFU_EINVAL, "empirical NTK: needs signal = mse with one output");
  if (net->bnorm > 0) return bafu_error(BAFU_EINVAL, "empirical NTK: not with backward normalisation");
  if (net->p.conditional) return bafu_error(BAFU_EINVAL, "empirical NTK: not with conditional set (m backward passes per draw)");
  layer *top = &net->layers[J - 1];
  for (size_t a = 0; a < m; ++a) {
    memset(top->B, 0, m * sizeof(double));
    top->B[a] = 1.0;
    backward_from_top(net);
    for (size_t j = 0; j + 1 < J; ++j) memcpy(work + (j * m + a) * n, net->layers[j].B + a * n, n * sizeof(double));
  }
  for (size_t a = 0; a < m; ++a)
    for (size_t b = 0; b <= a; ++b) {
      /* readout: the column of b_top^a is the scalar 1 for every a */
      double t = top->lr * top->GG[a + b * m] + top->lrb; /* the readout's bias: d y_a / d c = 1 */
      for (size_t j = 0; j + 1 < J; ++j) {
        const layer *Ly = &net->layers[j];
        const double bb = cblas_ddot((int)n, work + (j * m + a) * n, 1, work + (j * m + b) * n, 1);
        t += Ly->lr * Ly->scale * Ly->scale * bb * Ly->GG[a + b * m] + Ly->lrb * Ly->scale * Ly->scale * bb;
      }
      theta[a + b * m] = theta[b + a * m] = t;
    }
  return BAFU_OK;
}

/* In-place step W_j -= eta lr_j s_j B_j G_j^T (theory/engine.md 6.1): one
 * rank-m dger/dgemm per layer, no stored gradient. */
bafu_status bafu_net_update(bafu_net *net, double eta) {
  if (net->p.regenerate) return bafu_error(BAFU_EINVAL, "regenerate: weights are not stored, so they cannot be trained");
  if (net->p.conditional) return bafu_error(BAFU_EINVAL, "conditional: weights are not stored, so they cannot be trained");
  if (!isfinite(eta)) return bafu_error(BAFU_EINVAL, "update: step size must be finite");
  const size_t m = net->m;
  for (size_t j = 0; j < net->U; ++j) {
    layer *Ly = &net->layers[j];
    double *W = (double *)W_of(net, j);
    if (Ly->c && Ly->lrb != 0) { /* c -= eta lrb s B 1 */
      column_sum(Ly->fan_out, m, Ly->B, net->bsum);
      cblas_daxpy((int)Ly->fan_out, -eta * Ly->lrb * Ly->scale, net->bsum, 1, Ly->c, 1);
    }
    const double c = -eta * Ly->lr * Ly->scale;
    if (c == 0) continue;
    if (m == 1)
      cblas_dger(CblasColMajor, (int)Ly->fan_out, (int)Ly->fan_in, c, Ly->B, 1, Ly->G, 1, W, (int)Ly->fan_out);
    else
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)Ly->fan_out, (int)Ly->fan_in, (int)m, c, Ly->B,
                  (int)Ly->fan_out, Ly->G, (int)Ly->fan_in, 1.0, W, (int)Ly->fan_out);
  }
  return BAFU_OK; /* a non-finite weight shows in the next forward pass */
}

/* Row functions: entry j's units [row_begin(j), out[j]] share their rates
 * (a block's K matrices are trained at one rate); its contribution is theirs
 * summed. */
static void unit_set_rates(layer *Ly, double lr, double lrb) {
  Ly->lr = lr;
  if (Ly->c) Ly->lrb = lrb;
  Ly->contrib = Ly->c ? (Ly->lr * Ly->gsq + Ly->lrb * Ly->gsq_b) / Ly->bscale : Ly->lr * Ly->gsq / Ly->bscale;
}

void bafu_net_set_layer_lr(bafu_net *net, size_t j, double lr) {
  for (size_t u = row_begin(net, j); u <= net->out[j]; ++u) unit_set_rates(&net->layers[u], lr, net->layers[u].lrb);
}

void bafu_net_set_layer_bias_lr(bafu_net *net, size_t j, double lrb) {
  for (size_t u = row_begin(net, j); u <= net->out[j]; ++u) unit_set_rates(&net->layers[u], net->layers[u].lr, lrb);
}

double bafu_net_layer_bias_lr(const bafu_net *net, size_t j) { return row_unit(net, j)->lrb; }

void bafu_net_scale_layer_rates(bafu_net *net, size_t j, double factor) {
  for (size_t u = row_begin(net, j); u <= net->out[j]; ++u) {
    layer *Ly = &net->layers[u];
    unit_set_rates(Ly, factor * Ly->lr0, factor * Ly->lrb0);
  }
}

double *bafu_net_bias(bafu_net *net, size_t u) { return net->layers[u].c; }

void bafu_net_bias_grad(const bafu_net *net, size_t u, double *out) {
  const layer *Ly = &net->layers[u];
  column_sum(Ly->fan_out, net->m, Ly->B, out);
  cblas_dscal((int)Ly->fan_out, Ly->scale / Ly->bscale, out, 1);
}

double bafu_net_layer_grad_sq(const bafu_net *net, size_t j) {
  double g = 0;
  for (size_t u = row_begin(net, j); u <= net->out[j]; ++u) g += net->layers[u].gsq;
  return g;
}

double bafu_net_layer_contribution(const bafu_net *net, size_t j) {
  double c = 0;
  for (size_t u = row_begin(net, j); u <= net->out[j]; ++u) c += net->layers[u].contrib;
  return c;
}

bafu_status bafu_net_set_layer_contribution(bafu_net *net, size_t j, double target) {
  if (!(isfinite(target) && target >= 0)) return bafu_error(BAFU_EINVAL, "target contribution must be finite and >= 0");
  /* C_j = sum_u (lr_u |grad_u~|^2 + lrb_u |grad_c,u~|^2) / R_j over the entry's units, which
   * share R_j (theory/engine.md 6.3, 6.5) */
  const layer *top = row_unit(net, j);
  double g = 0, c1 = 0;
  for (size_t u = row_begin(net, j); u <= net->out[j]; ++u) {
    const layer *Ly = &net->layers[u];
    g += Ly->gsq;
    if (Ly->c) c1 += (Ly->lr0 * Ly->gsq + Ly->lrb0 * Ly->gsq_b) / Ly->bscale;
  }
  if (top->c) { /* weights and biases together: both rates scaled from the network's own */
    if (target > 0 && !(c1 > 0))
      return bafu_error(BAFU_ENUMERIC, "layer %d has a zero gradient: no learning rate reaches the target contribution",
                        top->label);
    bafu_net_scale_layer_rates(net, j, target > 0 ? target / c1 : 0.0);
    return BAFU_OK;
  }
  if (target > 0 && !(g > 0))
    return bafu_error(BAFU_ENUMERIC, "layer %d has a zero gradient: no learning rate reaches the target contribution",
                      top->label);
  bafu_net_set_layer_lr(net, j, target > 0 ? target * top->bscale / g : 0.0);
  return BAFU_OK;
}
double bafu_net_layer_scale(const bafu_net *net, size_t j) { return row_unit(net, j)->scale; }

bafu_status bafu_net_set_layer_scale(bafu_net *net, size_t j, double a) {
  if (j >= net->J || row_unit(net, j)->kind != LAYER_PLAIN || !(isfinite(a) && a > 0))
    return bafu_error(BAFU_EINVAL, "layer scale: layer %zu is not a plain layer or %g is not a positive number", j, a);
  net->layers[net->out[j]].scale = a;
  return BAFU_OK;
}

bafu_status bafu_net_set_forward_norm(bafu_net *net, double target, int frozen) {
  if (!(isfinite(target) && target >= 0)) return bafu_error(BAFU_EINVAL, "forward_norm: must be a finite number >= 0");
  int plain = 0; /* a dense layer that is not the readout: something to normalise */
  for (size_t i = 0; i < net->lay.nstages; ++i)
    plain |= net->lay.stage[i].kind == BAFU_STAGE_DENSE && !net->lay.stage[i].readout;
  if (target > 0 && net->p.bias_var > 0)
    return bafu_error(BAFU_EINVAL, "forward_norm and bias_var: choose one (the scale would act on the bias too)");
  if (target > 0 && !plain)
    return bafu_error(BAFU_EINVAL, "forward_norm: a ResNet normalises only its embedding (needs embed = 1)");
  net->fnorm = target;
  net->fnorm_frozen = frozen;
  if (target == 0)
    for (size_t j = 0; j < net->U; ++j)
      if (net->layers[j].kind == LAYER_PLAIN) net->layers[j].scale = 1.0;
  return BAFU_OK;
}

bafu_status bafu_net_set_backward_norm(bafu_net *net, double target) {
  if (!(isfinite(target) && target >= 0)) return bafu_error(BAFU_EINVAL, "backward_norm: must be a finite number >= 0");
  net->bnorm = target;
  return BAFU_OK;
}

bafu_status bafu_net_run(bafu_net *net) {
  bafu_status st;
  if ((st = bafu_net_forward(net))) return st;
  if ((st = bafu_net_backward(net))) return st;
  if ((st = bafu_net_tangent(net))) return st;
  if (net->p.step == 0) { /* no actual step: the step columns are reported as 0 */
    net->eta_step = 0;
    return BAFU_OK;
  }
  return bafu_net_step(net, net->p.step);
}

void bafu_net_weight_grad(const bafu_net *net, size_t j, double *out) {
  const layer *Ly = &net->layers[j];
  /* grad = s * B G^T / R_j (fan_out x fan_in; R_j = 1 without backward normalisation) */
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)Ly->fan_out, (int)Ly->fan_in, (int)net->m,
              Ly->scale / Ly->bscale, Ly->B, (int)Ly->fan_out, Ly->G, (int)Ly->fan_in, 0.0, out, (int)Ly->fan_out);
}

static const char *const quantity_names[BAFU_Q_COUNT] = {
    [BAFU_Q_COS] = "cos_theta",          [BAFU_Q_SPEED] = "feature_speed",
    [BAFU_Q_BNORM] = "backward_norm",    [BAFU_Q_DECAY] = "loss_decay",
    [BAFU_Q_BAFU] = "bafu",              [BAFU_Q_IDRES] = "identity_residual",
    [BAFU_Q_CONTRIB] = "contribution",   [BAFU_Q_FRMS] = "f_rms",
    [BAFU_Q_SPEED_RMS] = "feature_speed_rms", [BAFU_Q_STEP] = "step_change",
    [BAFU_Q_STEP_COS] = "step_cos_theta", [BAFU_Q_STEP_DEV] = "step_rel_dev",
    [BAFU_Q_SENS] = "sensitivity"};

const char *bafu_quantity_name(bafu_quantity q) { return q < BAFU_Q_COUNT ? quantity_names[q] : "?"; }

/* Quantities of theory/engine.md section 3. */
void bafu_net_measure(const bafu_net *net, double *out) {
  const size_t m = net->m;
  const double eta = net->eta_step;
  double D = 0;
  for (size_t j = 0; j < net->J; ++j) { /* one row per entry: its last unit's features */
    const layer *Ly = row_unit(net, j);
    const size_t cnt = Ly->fan_out * m;
    double *q = out + j * BAFU_Q_COUNT;
    const double Cj = bafu_net_layer_contribution(net, j);
    D += Cj;
    /* the true backward vector is B / R_j (R_j = 1 without backward normalisation) */
    const double bn = cblas_dnrm2((int)cnt, Ly->B, 1) / Ly->bscale;
    const double dn = cblas_dnrm2((int)cnt, Ly->dF, 1);
    const double ip = -cblas_ddot((int)cnt, Ly->B, 1, Ly->dF, 1) / Ly->bscale; /* <-b, df> */
    double sn2 = 0, sip = 0, dev2 = 0;
    for (size_t i = 0; i < cnt; ++i) {
      const double delta = Ly->Fs[i] - Ly->F[i];
      sn2 += delta * delta;
      sip -= delta * Ly->B[i] / Ly->bscale;
      const double e = delta - eta * Ly->dF[i];
      dev2 += e * e;
    }
    q[BAFU_Q_COS] = ip / (dn * bn);
    q[BAFU_Q_SPEED] = dn;
    q[BAFU_Q_BNORM] = bn;
    q[BAFU_Q_DECAY] = D;
    q[BAFU_Q_BAFU] = D / bn;
    q[BAFU_Q_IDRES] = fabs(ip - D) / D;
    q[BAFU_Q_CONTRIB] = Cj;
    q[BAFU_Q_FRMS] = cblas_dnrm2((int)cnt, Ly->F, 1) / sqrt((double)cnt);
    q[BAFU_Q_SPEED_RMS] = dn / sqrt((double)cnt);
    if (eta != 0) {
      q[BAFU_Q_STEP] = sqrt(sn2);
      q[BAFU_Q_STEP_COS] = sip / (sqrt(sn2) * bn);
      q[BAFU_Q_STEP_DEV] = sqrt(dev2) / (fabs(eta) * dn);
    } else {
      q[BAFU_Q_STEP] = q[BAFU_Q_STEP_COS] = q[BAFU_Q_STEP_DEV] = 0;
    }
  }
  /* sensitivity: per unit first-order decrease of the whole step, D_top = D */
  for (size_t j = 0; j < net->J; ++j) out[j * BAFU_Q_COUNT + BAFU_Q_SENS] = out[j * BAFU_Q_COUNT + BAFU_Q_SPEED_RMS] / D;
}

static int all_zero(const double *v, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (v[i] != 0) return 0;
  return 1;
}

const char *bafu_draw_status_string(bafu_draw_status s) {
  switch (s) {
  case BAFU_DRAW_OK: return "no defect";
  case BAFU_DRAW_DEAD: return "a layer with no active unit (all activations zero: a dead ReLU layer)";
  case BAFU_DRAW_VANISHED: return "the features vanish (underflow to zero)";
  case BAFU_DRAW_NO_SIGNAL: return "the backward signal vanishes (underflow, or a loss with zero gradient)";
  case BAFU_DRAW_STEP: return "the actual step changes no feature (a step below rounding)";
  case BAFU_DRAW_UNDEFINED: return "a measurement without a value (underflow in a product)";
  default: return "unknown";
  }
}

bafu_draw_status bafu_net_check_draw(const bafu_net *net, const double *q, int *label) {
  const size_t m = net->m;
  int trained = 0, bad = -1, step_only = 1;
  for (size_t j = 0; j < net->J && bad < 0; ++j) {
    const layer *Ly = row_unit(net, j); /* the entry's units share its rates */
    trained |= (Ly->lr != 0 || Ly->lrb != 0) && Ly->scale != 0;
    if (!trained) continue;
    const double *r = q + j * BAFU_Q_COUNT;
    for (int c = 0; c < BAFU_Q_COUNT; ++c)
      if (!isfinite(r[c])) {
        bad = (int)j;
        if (c != BAFU_Q_STEP_COS && c != BAFU_Q_STEP_DEV && c != BAFU_Q_STEP) step_only = 0;
      }
    if (!(r[BAFU_Q_DECAY] > 0)) bad = (int)j, step_only = 0;
    /* a step whose first-order change is below the rounding of the features
       measures nothing but rounding (theory/engine.md 3.5) */
    const double fn = r[BAFU_Q_FRMS] * sqrt((double)(Ly->fan_out * m));
    if (bad < 0 && net->eta_step != 0 && fabs(net->eta_step) * r[BAFU_Q_SPEED] < 64 * DBL_EPSILON * fn) bad = (int)j;
  }
  if (bad < 0) return BAFU_DRAW_OK;
  if (label) *label = row_unit(net, (size_t)bad)->label;
  /* the first layer, from the input up, where the stream dies */
  if (all_zero(net->X, net->d * m)) {
    if (label) *label = net->layers[0].label;
    return BAFU_DRAW_VANISHED;
  }
  for (size_t j = 0; j < net->U; ++j) {
    const layer *Ly = &net->layers[j];
    if (!Ly->reads_x && all_zero(Ly->G, Ly->fan_in * m)) {
      const layer *Pv = &net->layers[j - 1];
      if (label) *label = Pv->label;
      return all_zero(Pv->F, Pv->fan_out * m) ? BAFU_DRAW_VANISHED : BAFU_DRAW_DEAD;
    }
    if (all_zero(Ly->F, Ly->fan_out * m)) {
      if (label) *label = Ly->label;
      return BAFU_DRAW_VANISHED;
    }
  }
  for (size_t j = net->U; j-- > 0;)
    if (all_zero(net->layers[j].B, net->layers[j].fan_out * m)) {
      if (label) *label = net->layers[j].label;
      return BAFU_DRAW_NO_SIGNAL;
    }
  return step_only ? BAFU_DRAW_STEP : BAFU_DRAW_UNDEFINED;
}

bafu_status bafu_read_inputs(const char *path, double **x, size_t *d, size_t *m) {
  *x = NULL;
  *d = *m = 0;
  bafu_text *f;
  bafu_status st = bafu_text_open(path, "", &f);
  if (st) return st;
  size_t cap = 0, count = 0, rows = 0, cols = 0, len;
  double *buf = NULL;
  char *line;
  while (!(st = bafu_text_line(f, &line, &len)) && line) {
    const size_t lineno = bafu_text_lineno(f);
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    size_t c = 0;
    int comma = 0; /* a comma was read: a number must follow before the next comma or the end */
    for (char *s = line;;) {
      while (*s == ' ' || *s == '\t') ++s;
      if (*s == ',' ? c == 0 || comma : !*s && comma) {
        st = bafu_error(BAFU_EPARSE, "'%s' line %zu: an empty field (a comma with no number before or after it)",
                        path, lineno);
        goto done;
      }
      if (*s == ',') {
        comma = 1, ++s;
        continue;
      }
      if (!*s) break;
      comma = 0;
      const size_t tok = strcspn(s, " \t,");
      const char save = s[tok];
      s[tok] = '\0';
      double v;
      if (!bafu_parse_double(s, &v)) {
        st = bafu_error(BAFU_EPARSE, "'%s' line %zu: not a finite number: '%.*s'", path, lineno,
                        (int)(tok > 40 ? 40 : tok), s);
        goto done;
      }
      s[tok] = save;
      if (count == cap) {
        cap = cap ? 2 * cap : 1024;
        if ((st = bafu_memory_check((double)cap * sizeof(double) + (double)len, "the batch table"))) goto done;
        double *nb = realloc(buf, cap * sizeof *nb);
        if (!nb) {
          st = bafu_error(BAFU_ENOMEM, "out of memory reading '%s'", path);
          goto done;
        }
        buf = nb;
      }
      buf[count++] = v;
      ++c;
      s += tok;
    }
    if (c == 0) continue;
    if (rows == 0) cols = c;
    else if (c != cols) {
      st = bafu_error(BAFU_EPARSE, "'%s' line %zu: %zu numbers, expected %zu", path, lineno, c, cols);
      goto done;
    }
    ++rows;
  }
  if (!st && rows == 0) st = bafu_error(BAFU_EPARSE, "'%s' holds no samples", path);
done:
  bafu_text_close(f);
  if (st) {
    free(buf);
    return st;
  }
  /* rows are samples: the row-major rows x cols buffer is already d x m column-major */
  *x = buf;
  *d = cols;
  *m = rows;
  return BAFU_OK;
}
