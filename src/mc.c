/* mc.c: Monte Carlo driver over independent network draws (bafu/mc.h). */
#include "bafu/mc.h"

#include "bafu/layout.h"

#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void openblas_set_num_threads(int num_threads); /* OpenBLAS extension */
int openblas_get_num_threads(void);

void bafu_mc_result_free(bafu_mc_result *r) {
  if (!r) return;
  free(r->labels);
  free(r->mean);
  free(r->se);
  free(r->max);
  free(r->raw);
  memset(r, 0, sizeof *r);
}

void bafu_mc_deviation(const bafu_mc_result *r, size_t j, bafu_quantity q, double ref, double *rms, double *rms_se) {
  double s2 = 0, s4 = 0;
  for (size_t d = 0; d < r->seeds; ++d) {
    const double e = r->raw[(d * r->J + j) * BAFU_Q_COUNT + q] - ref;
    s2 += e * e;
    s4 += e * e * e * e;
  }
  const double n = (double)r->seeds, ms = s2 / n, var_ms = (s4 / n - ms * ms) / n;
  *rms = sqrt(ms);
  *rms_se = sqrt(fmax(var_ms, 0)) / (2 * *rms);
}

double bafu_mc_memory_bytes(const bafu_net_params *p, size_t seeds) {
  const size_t net = bafu_net_memory_bytes(p);
  bafu_layout lay;
  const double J = bafu_layout_build(p, &lay) ? (double)p->depth + 2 : (double)lay.J;
  return (net == SIZE_MAX ? INFINITY : (double)net) + ((double)seeds + 3) * J * BAFU_Q_COUNT * sizeof(double);
}

bafu_status bafu_mc_run(const bafu_net_params *p, size_t seeds, uint64_t seed, const double *x,
                        int threads, bafu_mc_result *out) {
  return bafu_mc_run_progress(p, seeds, seed, x, threads, NULL, NULL, out);
}

bafu_status bafu_mc_run_progress(const bafu_net_params *p, size_t seeds, uint64_t seed, const double *x,
                                 int threads, bafu_mc_progress_fn progress, void *ctx, bafu_mc_result *out) {
  memset(out, 0, sizeof *out);
  if (seeds < 2) return bafu_error(BAFU_EINVAL, "seeds: need at least 2 draws for a standard error");
  if (threads < 1) return bafu_error(BAFU_EINVAL, "threads: must be a positive integer");
  if ((size_t)threads > seeds) threads = (int)seeds;
  bafu_status st = bafu_net_params_check(p);
  if (st) return st;
  const size_t bytes = bafu_net_memory_bytes(p);
  if (bytes != SIZE_MAX && (double)bytes * threads > (double)bafu_memory_limit_bytes() && threads > 1)
    threads = (int)(bafu_memory_limit_bytes() / bytes) > 0 ? (int)(bafu_memory_limit_bytes() / bytes) : 1;

  /* one network and the per-draw results, checked together up front */
  const double total = bafu_mc_memory_bytes(p, seeds), results = total - bafu_mc_memory_bytes(p, 0);
  if ((st = bafu_memory_check(total, results > total / 2 ? "seeds: the per-draw results"
                                                         : "width/depth/batch: this network")))
    return st;
  bafu_net *probe_net;
  if ((st = bafu_net_alloc(p, &probe_net))) return st;
  const size_t J = bafu_net_nlayers(probe_net), Q = BAFU_Q_COUNT;
  out->J = J;
  out->seeds = seeds;
  out->labels = malloc(J * sizeof *out->labels);
  out->mean = malloc(J * Q * sizeof(double));
  out->se = malloc(J * Q * sizeof(double));
  out->max = malloc(J * Q * sizeof(double));
  out->raw = malloc(seeds * J * Q * sizeof(double));
  if (!out->labels || !out->mean || !out->se || !out->max || !out->raw) {
    bafu_net_free(probe_net);
    bafu_mc_result_free(out);
    return bafu_error(BAFU_ENOMEM, "out of memory for Monte Carlo results");
  }
  for (size_t j = 0; j < J; ++j) out->labels[j] = bafu_net_layer_label(probe_net, j);

  unsigned char *cause = calloc(seeds, 1);
  int *where = calloc(seeds, sizeof *where);
  if (!cause || !where) {
    free(cause);
    free(where);
    bafu_net_free(probe_net);
    bafu_mc_result_free(out);
    return bafu_error(BAFU_ENOMEM, "out of memory for Monte Carlo results");
  }
  bafu_status first_error = BAFU_OK;
  size_t done = 0;
  char message[512] = "";
  const int blas_threads = openblas_get_num_threads();
  if (threads > 1) openblas_set_num_threads(1);
#pragma omp parallel num_threads(threads)
  {
    bafu_net *net = NULL;
    bafu_status my = BAFU_OK;
#ifdef _OPENMP
    if (omp_get_thread_num() == 0)
      net = probe_net;
    else
#endif
      my = bafu_net_alloc(p, &net);
    if (!my && x) bafu_net_set_inputs(net, x);
#pragma omp for schedule(dynamic, 1)
    for (size_t i = 0; i < seeds; ++i) {
      if (my) continue;
      my = bafu_net_draw(net, seed, i);
      if (!my) my = bafu_net_run(net);
      if (!my) {
        bafu_net_measure(net, out->raw + i * J * Q);
        cause[i] = (unsigned char)bafu_net_check_draw(net, out->raw + i * J * Q, &where[i]);
      }
      if (progress) {
#pragma omp critical(bafu_mc_progress)
        progress(++done, seeds, ctx);
      }
    }
    if (my) {
#pragma omp critical
      if (!first_error) {
        first_error = my;
        strncpy(message, bafu_last_error(), sizeof message - 1);
      }
    }
    if (net != probe_net) bafu_net_free(net);
  }
  if (threads > 1) openblas_set_num_threads(blas_threads);
  bafu_net_free(probe_net);
  if (first_error) {
    free(cause);
    free(where);
    bafu_mc_result_free(out);
    return bafu_error(first_error, "%s", message);
  }
  /* degenerate draws: counted, and left out (the kept ones move up, in order) */
  size_t kept = 0, first_bad = seeds;
  for (size_t i = 0; i < seeds; ++i) {
    if (cause[i] != BAFU_DRAW_OK) {
      ++out->excluded_by[cause[i]];
      if (first_bad == seeds) first_bad = i;
      continue;
    }
    if (kept != i) memcpy(out->raw + kept * J * Q, out->raw + i * J * Q, J * Q * sizeof(double));
    ++kept;
  }
  out->excluded = seeds - kept;
  if (out->excluded) {
    int worst = 1;
    for (int c = 2; c < BAFU_DRAW_COUNT; ++c)
      if (out->excluded_by[c] > out->excluded_by[worst]) worst = c;
    snprintf(out->note, sizeof out->note, "%zu of %zu draws degenerate and excluded; %zu: %s (the first: draw %zu, "
             "layer %d)", out->excluded, seeds, out->excluded_by[worst], bafu_draw_status_string((bafu_draw_status)worst),
             first_bad, where[first_bad]);
  }
  free(cause);
  free(where);
  if (kept < 2) {
    char note[256];
    snprintf(note, sizeof note, "%s", out->note);
    bafu_mc_result_free(out);
    return bafu_error(BAFU_ENUMERIC, "no estimate: %s", note);
  }
  seeds = kept;
  out->seeds = kept;
  for (size_t c = 0; c < J * Q; ++c) {
    const double *col = out->raw + c;
    const size_t stride = J * Q;
    out->mean[c] = gsl_stats_mean(col, stride, seeds);
    out->se[c] = gsl_stats_sd_m(col, stride, seeds, out->mean[c]) / sqrt((double)seeds);
    out->max[c] = gsl_stats_max(col, stride, seeds);
  }
  return BAFU_OK;
}
