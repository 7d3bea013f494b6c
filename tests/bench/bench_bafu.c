/* bench_bafu.c: timing driver for tests/bench/run_bench.sh (not part of ctest).
 *
 * Usage: bench_bafu floors | a | b | c | d [seeds [reps]]
 *   floors  dgemm / dgemv throughput (GFLOP/s, OpenBLAS CBLAS) and Gaussian RNG
 *           throughput of both generators (normals/s)
 *   a       bafu_mc_run, ReLU MLP width 512, depth 64, batch 1, 16 seeds, step 0
 *           (forward, backward, tangent: the same computation as reference_torch.py),
 *           then the same with the default actual step 1e-5 (one more forward);
 *           for the fast generator (the default), GSL's, and the conditional
 *           sampler (--conditional: products drawn from their conditional law,
 *           no weight matrices; theory/engine.md 7)
 *   b       the same with batch 64, plus the rate of the GEMM-bound path (draw
 *           and run timed apart) against dgemm of the same shapes, measured in
 *           the same process just before
 *   c       dense BFK spectrum of the last layer (bafu_spec_dense_run + dsyevd),
 *           ReLU MLP width 1024, depth 32, one draw
 *   d       bafu_moments_run on a ReLU MLP of depth 1e6, and bafu_kernel_two_inputs
 *           (corr 0.5) to depth 1e6
 *   e       the tanh ResNet's mask-correlated theory: the convolution grid against
 *           the pairwise quadrature (depth 64), and the grid to depth 1024
 *   f       the ResNet continuum limit, 33 values of b = sqrt(L) beta = 0, 0.25, .., 8
 *           (bafu theory --limit --sweep-branch 0:8:0.25) for relu (s = 2), tanh and
 *           linear (s = 1): bafu_continuum_run at the command line's tolerance, and,
 *           when run_bench.sh could build it (BENCH_EULER), the Euler scheme with
 *           Richardson extrapolation it replaced, side by side; the error of both
 *           against the linear closed form, and their difference for relu and tanh
 * (a, b Monte Carlo, c spectrum, d, e and f theory)
 * Output: one line per measurement, "key value unit [note]", for run_bench.sh.
 * Times are wall clock (CLOCK_MONOTONIC), single thread; a and b report the
 * fastest of `reps` runs [3] (these machines are shared: the minimum is the
 * least noisy estimate of the cost; reference_torch.py does the same). */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bafu/kernel.h"
#include "bafu/mc.h"
#include "bafu/moments.h"
#include "bafu/net.h"
#include "bafu/rng.h"
#include "bafu/spectrum.h"
#include "bafu/status.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "bench_bafu: %s: %s\n", what, bafu_last_error());
  exit(1);
}

/* Fill with uniform(-1, 1) numbers (cheap, deterministic). */
static void fill(double *v, size_t count, unsigned seed) {
  unsigned long x = seed * 2654435761UL + 1;
  for (size_t i = 0; i < count; ++i) {
    x = x * 6364136223846793005UL + 1442695040888963407UL;
    v[i] = (double)(x >> 11) / 4503599627370496.0 - 1.0;
  }
}

/* One pass of dgemm W_j X (n x n times n x m) over the L distinct matrices of W:
 * the products of workload b's forward pass, out of cache. */
static void dgemm_cycle(const double *W, const double *X, double *Y, size_t n, size_t m, size_t L) {
  for (size_t j = 0; j < L; ++j)
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)m, (int)n, 1.0, W + j * n * n, (int)n, X,
                (int)n, 0.0, Y, (int)n);
}

static int floors(void) {
  const size_t n = 512, m = 64, L = 64;
  double *W = malloc(L * n * n * sizeof *W), *X = malloc(n * m * sizeof *X), *Y = malloc(n * m * sizeof *Y);
  if (!W || !X || !Y) return 1;
  fill(W, L * n * n, 1);
  fill(X, n * m, 2);
  /* dgemm 512x512 times 512x64, weights cycling through 64 distinct matrices
   * (128 MiB: the memory traffic of workload b) */
  double t0 = now(), t;
  size_t reps = 0;
  do {
    dgemm_cycle(W, X, Y, n, m, L);
    reps += L;
  } while ((t = now() - t0) < 2.0);
  printf("dgemm_512x512x64 %.3f GFLOP/s\n", 2.0 * n * n * m * reps / t * 1e-9);
  /* square dgemm 1024^3 (compute-bound peak) */
  {
    const size_t N = 1024;
    double *A = malloc(N * N * sizeof *A), *B = malloc(N * N * sizeof *B), *C = malloc(N * N * sizeof *C);
    if (!A || !B || !C) return 1;
    fill(A, N * N, 3);
    fill(B, N * N, 4);
    t0 = now();
    reps = 0;
    do {
      cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)N, (int)N, 1.0, A, (int)N, B, (int)N, 0.0,
                  C, (int)N);
      ++reps;
    } while ((t = now() - t0) < 2.0);
    printf("dgemm_1024_square %.3f GFLOP/s\n", 2.0 * N * N * N * reps / t * 1e-9);
    free(A);
    free(B);
    free(C);
  }
  /* dgemv 512x512, 64 distinct matrices (out of cache, as in workload a) */
  t0 = now();
  reps = 0;
  do {
    for (size_t j = 0; j < L; ++j)
      cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)n, 1.0, W + j * n * n, (int)n, X, 1, 0.0, Y, 1);
    reps += L;
  } while ((t = now() - t0) < 2.0);
  printf("dgemv_512_64mats %.3f GFLOP/s\n", 2.0 * n * n * reps / t * 1e-9);
  printf("dgemv_512_64mats_bandwidth %.3f GB/s\n", 8.0 * n * n * reps / t * 1e-9);
  t0 = now();
  reps = 0;
  do {
    for (size_t j = 0; j < L; ++j)
      cblas_dgemv(CblasColMajor, CblasTrans, (int)n, (int)n, 1.0, W + j * n * n, (int)n, X, 1, 0.0, Y, 1);
    reps += L;
  } while ((t = now() - t0) < 2.0);
  printf("dgemv_T_512_64mats %.3f GFLOP/s\n", 2.0 * n * n * reps / t * 1e-9);
  /* dgemv on one cached matrix */
  t0 = now();
  reps = 0;
  do {
    for (size_t j = 0; j < L; ++j)
      cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)n, 1.0, W, (int)n, X, 1, 0.0, Y, 1);
    reps += L;
  } while ((t = now() - t0) < 2.0);
  printf("dgemv_512_cached %.3f GFLOP/s\n", 2.0 * n * n * reps / t * 1e-9);
  /* Gaussian RNG as the engine draws weights */
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  if (!r) return 1;
  bafu_rng_seed(r, 1, 0);
  t0 = now();
  reps = 0;
  do {
    bafu_fill_gaussian(r, 0.0625, L * n * n, W);
    reps += L * n * n;
  } while ((t = now() - t0) < 2.0);
  printf("rng_gaussian %.3f Mnormals/s\n", (double)reps / t * 1e-6);
  /* mt19937 alone (uniform 32-bit words) */
  t0 = now();
  reps = 0;
  unsigned long acc = 0;
  do {
    for (size_t i = 0; i < 1u << 22; ++i) acc += gsl_rng_get(r);
    reps += 1u << 22;
  } while ((t = now() - t0) < 1.0);
  printf("rng_mt19937_uniform %.3f Mwords/s %lu\n", (double)reps / t * 1e-6, acc & 1);
  gsl_rng_free(r);
  /* the fast generator (--rng fast, the default), same fill */
  bafu_fastrng fr;
  bafu_fastrng_seed(&fr, 1, 0);
  t0 = now();
  reps = 0;
  do {
    bafu_fastrng_fill_gaussian(&fr, 0.0625, L * n * n, W);
    reps += L * n * n;
  } while ((t = now() - t0) < 2.0);
  printf("rng_fast_gaussian %.3f Mnormals/s\n", (double)reps / t * 1e-6);
  free(W);
  free(X);
  free(Y);
  return 0;
}

static bafu_net_params mlp(size_t width, size_t depth, size_t batch) {
  bafu_net_params p = bafu_net_params_default();
  p.arch = BAFU_ARCH_MLP;
  p.width = width;
  p.depth = depth;
  p.batch = batch;
  p.act = BAFU_ACT_RELU;
  p.sigma_w2 = 2;
  return p;
}

/* The fastest of reps runs of bafu_mc_run. */
static double time_mc(const bafu_net_params *p, size_t seeds, int reps, bafu_mc_result *res) {
  double best = INFINITY;
  for (int r = 0; r < reps; ++r) {
    if (r) bafu_mc_result_free(res);
    const double t0 = now();
    if (bafu_mc_run(p, seeds, 1, NULL, 1, res)) die("bafu_mc_run");
    best = fmin(best, now() - t0);
  }
  return best;
}

/* The GEMM-bound path of workload b: GSL generator (weights drawn at draw
 * time), so bafu_net_run times forward + backward + tangent alone; its flops
 * (README.md) against dgemm of the same shapes in this process. */
static void gemm_path(bafu_net_params p, size_t seeds, int reps) {
  const size_t n = p.width, m = p.batch, L = p.depth;
  double *W = malloc(L * n * n * sizeof *W), *X = malloc(n * m * sizeof *X), *Y = malloc(n * m * sizeof *Y);
  if (!W || !X || !Y) die("malloc");
  fill(W, L * n * n, 1);
  fill(X, n * m, 2);
  double best_gemm = INFINITY;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now();
    dgemm_cycle(W, X, Y, n, m, L);
    best_gemm = fmin(best_gemm, now() - t0);
  }
  free(W);
  free(X);
  free(Y);
  const double gemm_rate = 2.0 * n * n * m * L / best_gemm;
  p.rng = BAFU_RNG_GSL;
  p.step = 0;
  bafu_net *net;
  if (bafu_net_alloc(&p, &net)) die("bafu_net_alloc");
  double best_run = INFINITY;
  for (int r = 0; r < reps; ++r) {
    double t_run = 0;
    for (size_t i = 0; i < seeds; ++i) {
      if (bafu_net_draw(net, 1, i)) die("bafu_net_draw");
      const double t0 = now();
      if (bafu_net_run(net)) die("bafu_net_run");
      t_run += now() - t0;
    }
    best_run = fmin(best_run, t_run);
  }
  bafu_net_free(net);
  /* forward L, backward L - 1, tangent L - 1 products of 2 n^2 m flops, three
   * m x m Gram products of 2 n m^2 flops per layer */
  const double flops = (double)seeds * ((3.0 * L - 2) * 2.0 * n * n * m + 3.0 * L * 2.0 * n * m * m);
  printf("gemm_path %.3f GFLOP/s run=%.4f s\n", flops / best_run * 1e-9, best_run);
  printf("gemm_path_dgemm %.3f GFLOP/s (dgemm 512x512 by 512x64 over %zu distinct matrices)\n", gemm_rate * 1e-9, L);
  printf("gemm_path_fraction %.3f\n", flops / best_run / gemm_rate);
}

static int mc(size_t batch, size_t seeds, int reps) {
  bafu_net_params p = mlp(512, 64, batch);
  for (int gen = 0; gen < 3; ++gen) { /* fast generator, GSL's, and the conditional sampler */
    p.rng = gen == 1 ? BAFU_RNG_GSL : BAFU_RNG_FAST;
    p.conditional = gen == 2;
    const char *tag = gen == 1 ? "_gsl" : gen == 2 ? "_cond" : "";
    for (int with_step = 0; with_step < 2; ++with_step) {
      p.step = with_step ? 1e-5 : 0;
      bafu_mc_result res;
      const double t = time_mc(&p, seeds, reps, &res);
      const size_t J = res.J;
      printf("%s%s %.4f s seeds=%zu best_of=%d cos_theta[1]=%.6f cos_theta[%d]=%.6f(se %.2g) idres_max=%.2g\n",
             with_step ? "mc_with_step" : "mc", tag, t, seeds, reps, res.mean[0 * BAFU_Q_COUNT + BAFU_Q_COS],
             res.labels[J - 1], res.mean[(J - 1) * BAFU_Q_COUNT + BAFU_Q_COS],
             res.se[(J - 1) * BAFU_Q_COUNT + BAFU_Q_COS], res.max[(J - 1) * BAFU_Q_COUNT + BAFU_Q_IDRES]);
      if (!with_step) { /* per-layer means for the cross-check against torch */
        printf("mc_cos_layers%s", tag);
        for (size_t j = 0; j < J; j += 9)
          printf(" %d:%.5f:%.2g", res.labels[j], res.mean[j * BAFU_Q_COUNT + BAFU_Q_COS],
                 res.se[j * BAFU_Q_COUNT + BAFU_Q_COS]);
        printf("\n");
      }
      bafu_mc_result_free(&res);
    }
  }
  p.conditional = 0;
  if (batch > 1) gemm_path(p, seeds, reps);
  return 0;
}

static int count_layers(const bafu_kernel_pair *layer, void *ctx) {
  double *last = ctx;
  last[0] = layer->one_minus_corr;
  last[1] = layer->ntk;
  last[2] = layer->ntk_diag;
  return 0;
}

static int theory(void) {
  const size_t L = 1000000;
  bafu_net_params p = mlp(512, L, 1);
  bafu_moments_layer *o = malloc(L * sizeof *o);
  if (!o) return 1;
  double t0 = now();
  if (bafu_moments_run(&p, 0, o)) die("bafu_moments_run");
  double t = now() - t0;
  printf("moments_1e6 %.4f s cos_theta[L]=%.10g m1=%.10g\n", t, o[L - 1].cos_theta, o[L - 1].m1);
  free(o);
  double last[3] = {0, 0, 0};
  t0 = now();
  if (bafu_kernel_two_inputs(&p, 0.5, count_layers, last)) die("bafu_kernel_two_inputs");
  t = now() - t0;
  printf("kernel2_1e6 %.4f s one_minus_corr[L]=%.10g ntk_corr[L]=%.10g\n", t, last[0], last[1] / last[2]);
  return 0;
}

static int spectrum(void) {
  bafu_net_params p = mlp(1024, 32, 1);
  bafu_net *net;
  if (bafu_net_alloc(&p, &net)) die("bafu_net_alloc");
  double t0 = now();
  if (bafu_net_draw(net, 1, 0) || bafu_net_run(net)) die("draw/run");
  const double t_run = now() - t0;
  const size_t J = bafu_net_nlayers(net);
  bafu_spec_dense *ws;
  if (bafu_spec_dense_alloc(net, 0, &ws)) die("bafu_spec_dense_alloc");
  bafu_spec_moments *mom = malloc(J * sizeof *mom);
  double *ev = malloc(1024 * sizeof *ev);
  if (!mom || !ev) return 1;
  t0 = now();
  if (bafu_spec_dense_run(ws, net, BAFU_SPEC_BFK, J - 1, mom, ev)) die("bafu_spec_dense_run");
  const double t = now() - t0;
  printf("spectrum_dense %.4f s draw+run=%.4f s cos_theta[L]=%.6f ev_max=%.6g\n", t, t_run, mom[J - 1].cos_theta,
         ev[1023]);
  free(mom);
  free(ev);
  bafu_spec_dense_free(ws);
  bafu_net_free(net);
  return 0;
}

/* Workload e: the mask-correlated theory of a tanh ResNet (s = 1, beta =
 * 1/sqrt(L)): the convolution grid (theory/moments.md 2.9, bafu_moments_run)
 * against one quadrature per pair of blocks (bafu_moments_run_pairwise), side
 * by side at depth 64, and the grid alone at depth 1024 (floor: under 1 s). */
static int masks(void) {
  const size_t Ls[3] = {64, 256, 1024};
  for (int i = 0; i < 3; ++i) {
    bafu_net_params p = bafu_net_params_default();
    p.arch = BAFU_ARCH_RESNET;
    p.act = BAFU_ACT_TANH;
    p.sigma_w2 = 1;
    p.depth = Ls[i];
    bafu_moments_layer *a = malloc(Ls[i] * sizeof *a), *b = malloc(Ls[i] * sizeof *b);
    if (!a || !b) return 1;
    double t0 = now();
    if (bafu_moments_run(&p, 0, a)) die("bafu_moments_run");
    const double tg = now() - t0;
    printf("masks_grid_%zu %.4f s cos_theta[L]=%.12g\n", Ls[i], tg, a[Ls[i] - 1].cos_theta);
    if (i == 0) {
      t0 = now();
      if (bafu_moments_run_pairwise(&p, 0, b)) die("bafu_moments_run_pairwise");
      const double tp = now() - t0;
      double e = 0;
      for (size_t j = 0; j < Ls[i]; ++j) e = fmax(e, fabs(a[j].cos_theta - b[j].cos_theta));
      printf("masks_pairwise_%zu %.4f s max_abs_dcos=%.3g ratio=%.0f\n", Ls[i], tp, e, tp / tg);
    }
    free(a);
    free(b);
  }
  return 0;
}

#ifdef BENCH_EULER
/* The solver before theory/moments.md 3.3 (Euler scheme at N and 2N steps,
 * Richardson extrapolation, N doubling until successive extrapolations agree
 * to rtol), built by run_bench.sh from the source of that revision with its
 * public names prefixed euler_. */
bafu_status euler_bafu_continuum_run(const bafu_net_params *p, double b, double rtol, size_t npoints,
                                     bafu_continuum_point *out);
#endif

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One sweep of 33 values of b: wall time (returned) and CPU time (*cpu; the
 * process's, less sensitive to other jobs on a shared machine), the angles at
 * t = 1 into c. */
typedef bafu_status (*continuum_fn)(const bafu_net_params *, double, double, size_t, bafu_continuum_point *);
static double sweep(continuum_fn fn, const bafu_net_params *p, double rtol, double *c, double *est, double *cpu) {
  const double t0 = now(), c0 = cpu_now();
  *est = 0;
  for (int k = 0; k <= 32; ++k) {
    bafu_continuum_point pts[2];
    if (fn(p, 0.25 * k, rtol, 1, pts)) die("continuum run");
    c[k] = pts[1].cos_theta;
    *est = fmax(*est, pts[1].error);
  }
  *cpu = cpu_now() - c0;
  return now() - t0;
}

static int continuum(void) {
  const struct {
    const char *name;
    bafu_act act;
    double s;
  } cs[] = {{"relu", BAFU_ACT_RELU, 2.0}, {"tanh", BAFU_ACT_TANH, 1.0}, {"linear", BAFU_ACT_LINEAR, 1.0}};
  for (int i = 0; i < 3; ++i) {
    bafu_net_params p = bafu_net_params_default();
    p.arch = BAFU_ARCH_RESNET;
    p.act = cs[i].act;
    p.sigma_w2 = cs[i].s;
    double cn[33], est, closed = 0, cpun;
    const double tn = sweep(bafu_continuum_run, &p, 1e-10, cn, &est, &cpun);
    if (cs[i].act == BAFU_ACT_LINEAR)
      for (int k = 0; k <= 32; ++k) closed = fmax(closed, fabs(cn[k] - bafu_continuum_cos_closed(&p, 0.25 * k, 1.0)));
    printf("continuum_%s %.4f s cpu=%.4f estimate=%.2g", cs[i].name, tn, cpun, est);
    if (cs[i].act == BAFU_ACT_LINEAR) printf(" max_err_closed=%.2g", closed);
    printf("\n");
#ifdef BENCH_EULER
    double co[33], esto, cpuo;
    const double to = sweep(euler_bafu_continuum_run, &p, 1e-7, co, &esto, &cpuo);
    double d = 0, closed_o = 0, d8 = fabs(co[32] - cn[32]);
    for (int k = 0; k <= 32; ++k) {
      d = fmax(d, fabs(co[k] - cn[k]));
      if (cs[i].act == BAFU_ACT_LINEAR) closed_o = fmax(closed_o, fabs(co[k] - bafu_continuum_cos_closed(&p, 0.25 * k, 1.0)));
    }
    printf("continuum_%s_euler %.4f s cpu=%.4f estimate=%.2g max_abs_dcos=%.2g dcos_b8=%.2g ratio=%.0f cpu_ratio=%.0f",
           cs[i].name, to, cpuo, esto, d, d8, to / tn, cpuo / cpun);
    if (cs[i].act == BAFU_ACT_LINEAR) printf(" max_err_closed=%.2g", closed_o);
    printf("\n");
#endif
  }
  return 0;
}

/* Workload h: the infinite-width spectrum on a figure's grid (2000 points) at
 * layer 32 of a depth-33 He-ReLU MLP (BFK and J J^T), of a depth-32 linear
 * ResNet (BFK) and of a depth-33 tanh MLP (J J^T, sigma_w2 = 1.3), by the
 * pointwise subordination solver (theory/spectrum.md 4.7-4.8) and by the discretised method it replaced for these networks (4.3,
 * 1500 quantile atoms), one after the other in one process. Also the largest
 * relative difference of the discretised density from the exact one at the
 * exact grid's points (linear interpolation in the discretised grid), over
 * the points where the exact density exceeds 1e-3 of its maximum. */
static double limit_one(const bafu_net_params *p, bafu_spec_object obj, size_t layer, bafu_free_method m, double *cpu,
                        double **x, double **d, size_t *G, double *mass) {
  bafu_free_params fp = bafu_free_params_default();
  fp.grid = 2000;
  fp.method = m;
  fp.last_only = 1; /* as bafu spectrum does: the last layer's law, every layer's m1 and m2 */
  bafu_free *ws;
  bafu_free_layer *L = calloc(layer + 1, sizeof *L);
  const double c0 = cpu_now(), t0 = now();
  if (bafu_free_alloc(&fp, &ws) || bafu_free_run(ws, p, 0, obj, layer, L)) {
    fprintf(stderr, "bench_bafu: limit failed: %s\n", bafu_last_error());
    exit(1);
  }
  const double t = now() - t0;
  *cpu = cpu_now() - c0;
  *G = bafu_free_npoints(ws);
  *x = malloc(*G * sizeof **x), *d = malloc(*G * sizeof **d);
  memcpy(*x, bafu_free_x(ws), *G * sizeof **x);
  memcpy(*d, bafu_free_density(ws), *G * sizeof **d);
  *mass = L[layer].raw[0];
  bafu_free_free(ws);
  free(L);
  return t;
}

static int limit_bench(void) {
  bafu_net_params mlp = bafu_net_params_default(), res = bafu_net_params_default(), th = bafu_net_params_default();
  mlp.depth = 33;
  res.arch = BAFU_ARCH_RESNET, res.act = BAFU_ACT_LINEAR, res.sigma_w2 = 1, res.depth = 32;
  th.act = BAFU_ACT_TANH, th.sigma_w2 = 1.3, th.depth = 33; /* the mask law by Newton (4.8) */
  const struct {
    const char *name;
    const bafu_net_params *p;
    bafu_spec_object obj;
    size_t layer;
  } cs[] = {{"relu_bfk", &mlp, BAFU_SPEC_BFK, 32}, {"relu_jacobian", &mlp, BAFU_SPEC_JACOBIAN, 32},
            {"resnet_bfk", &res, BAFU_SPEC_BFK, 31}, {"tanh_jacobian", &th, BAFU_SPEC_JACOBIAN, 32}};
  for (int i = 0; i < 4; ++i) {
    double cn, co, *xn, *dn, *xo, *dOld, mn, mo;
    size_t Gn, Go;
    const double tn = limit_one(cs[i].p, cs[i].obj, cs[i].layer, BAFU_FREE_AUTO, &cn, &xn, &dn, &Gn, &mn);
    const double to = limit_one(cs[i].p, cs[i].obj, cs[i].layer, BAFU_FREE_DISCRETE, &co, &xo, &dOld, &Go, &mo);
    double mx = 0, worst = 0, wx = 0;
    for (size_t k = 0; k < Gn; ++k) mx = fmax(mx, dn[k]);
    size_t j = 0;
    for (size_t k = 0; k < Gn; ++k) {
      if (dn[k] < 1e-3 * mx || xn[k] < xo[0] || xn[k] > xo[Go - 1]) continue;
      while (j + 2 < Go && xo[j + 1] < xn[k]) ++j;
      const double f = (xn[k] - xo[j]) / (xo[j + 1] - xo[j]), dv = dOld[j] + f * (dOld[j + 1] - dOld[j]);
      const double r = fabs(dv - dn[k]) / dn[k];
      if (r > worst) worst = r, wx = xn[k];
    }
    printf("limit_%s %.4f s cpu=%.4f mass=%.12f\n", cs[i].name, tn, cn, mn);
    printf("limit_%s_discrete %.4f s cpu=%.4f mass=%.12f ratio=%.1f cpu_ratio=%.1f max_rel_ddensity=%.3g at_x=%.6g\n",
           cs[i].name, to, co, mo, to / tn, co / cn, worst, wx);
    free(xn), free(dn), free(xo), free(dOld);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_bafu floors|a|b|c|d|e|f|h [seeds [reps]]\n");
    return 2;
  }
  const size_t seeds = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 16;
  const int reps = argc > 3 && atoi(argv[3]) > 0 ? atoi(argv[3]) : 3;
  if (!strcmp(argv[1], "floors")) return floors();
  if (!strcmp(argv[1], "a")) return mc(1, seeds, reps);
  if (!strcmp(argv[1], "b")) return mc(64, seeds, reps);
  if (!strcmp(argv[1], "c")) return spectrum();
  if (!strcmp(argv[1], "d")) return theory();
  if (!strcmp(argv[1], "e")) return masks();
  if (!strcmp(argv[1], "f")) return continuum();
  if (!strcmp(argv[1], "h")) return limit_bench();
  fprintf(stderr, "bench_bafu: unknown workload '%s'\n", argv[1]);
  return 2;
}
