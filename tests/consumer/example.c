/* example.c: a program built against an installed libbafu (tests/install_test.sh).
 * It predicts the angle of a ReLU MLP with the moment recursion and checks the
 * closed form cos_L = L / sqrt(L^2 + (L-1) L (2L-1)/3) (theory/moments.md 2.2), then
 * runs one finite network and checks the feature speed identity. */
#include <bafu/bafu.h> /* the umbrella header: the whole API */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  /* no initialisation call: the library needs none */
  if (strcmp(bafu_version(), BAFU_VERSION_STRING) != 0 || bafu_version_number() != BAFU_VERSION_NUMBER) {
    fprintf(stderr, "example: compiled against bafu %s, running with %s\n", BAFU_VERSION_STRING, bafu_version());
    return 1;
  }
  bafu_net_params p = bafu_net_params_default();
  p.width = 256;
  p.depth = 5;
  bafu_moments_layer o[5];
  if (bafu_moments_run(&p, 0, o)) {
    fprintf(stderr, "example: %s\n", bafu_last_error());
    return 1;
  }
  const double L = 5, closed = L / sqrt(L * L + (L - 1) * L * (2 * L - 1) / 3);
  bafu_net *net;
  double q[5 * BAFU_Q_COUNT];
  if (bafu_net_alloc(&p, &net) || bafu_net_draw(net, 1, 0) || bafu_net_run(net)) {
    fprintf(stderr, "example: %s\n", bafu_last_error());
    return 1;
  }
  bafu_net_measure(net, q);
  bafu_net_free(net);
  const double idres = q[4 * BAFU_Q_COUNT + BAFU_Q_IDRES];
  printf("cos_5 theory %.12f closed form %.12f, identity residual %.2g\n", o[4].cos_theta, closed, idres);
  return fabs(o[4].cos_theta - closed) < 1e-12 && idres < 1e-10 ? 0 : 1;
}
