/* gen_zig_tables.c: writes src/zig_tables.h, the 1024-layer ziggurat tables of
 * the fast generator (theory/engine.md 4.1), as exact hexadecimal literals.
 *
 *   build/tests/gen_zig_tables > src/zig_tables.h
 *
 * The recursion is Marsaglia and Tsang's (2000) in double precision: x_{N-1} = R,
 * f(x_{i-1}) = V/x_i + f(x_i), w_i = x_i / 2^52, k_i = 2^52 x_{i-1}/x_i, base layer
 * w_0 = V/(f(R) 2^52), k_0 = 2^52 R f(R)/V. The committed header was produced
 * once with glibc 2.36's exp and log; committing it (instead of computing the
 * tables at start-up, as bafu did before) makes the numbers independent of the
 * machine's libm. tests/test_rng.c checks the tables' identities
 * (bafu_fastrng_ziggurat_residual). Not part of the build of libbafu. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#define N 1024
#define R 4.0388498461095045
#define V 1.2263246463530881e-3

int main(void) {
  static double w[N], f[N];
  static uint64_t k[N];
  const double m = 4503599627370496.0; /* 2^52 */
  double dn = R, tn = dn;
  const double q = V / exp(-0.5 * dn * dn);
  k[0] = (uint64_t)((dn / q) * m);
  k[1] = 0; /* layer 1 (x_0 = 0) always takes the wedge test */
  w[0] = q / m;
  w[N - 1] = dn / m;
  f[0] = 1.0;
  f[N - 1] = exp(-0.5 * dn * dn);
  for (int i = N - 2; i >= 1; --i) {
    dn = sqrt(-2.0 * log(V / dn + exp(-0.5 * dn * dn)));
    k[i + 1] = (uint64_t)((dn / tn) * m);
    tn = dn;
    f[i] = exp(-0.5 * dn * dn);
    w[i] = dn / m;
  }
  printf("/* zig_tables.h: written by tests/gen_zig_tables.c (do not edit). 1024-layer\n"
         " * ziggurat, R = %a, V = %a; theory/engine.md 4.1. */\n", R, V);
  printf("static const double zig_w[%d] = {\n", N);
  for (int i = 0; i < N; ++i) printf("%s%a,%s", i % 4 ? " " : "    ", w[i], i % 4 == 3 ? "\n" : "");
  printf("};\nstatic const double zig_f[%d] = {\n", N);
  for (int i = 0; i < N; ++i) printf("%s%a,%s", i % 4 ? " " : "    ", f[i], i % 4 == 3 ? "\n" : "");
  printf("};\nstatic const uint64_t zig_k[%d] = {\n", N);
  for (int i = 0; i < N; ++i) printf("%s0x%016" PRIx64 "u,%s", i % 4 ? " " : "    ", k[i], i % 4 == 3 ? "\n" : "");
  printf("};\n");
  return 0;
}
