# Figure 4: BFK spectral densities, infinite-width law against finite-width eigenvalues.
# Eigenvalues are shown divided by the width n (K_l grows like n; m1 = tr(K_l)/n is of
# order l n), so the axes read the same at every width; n is the number of eigenvalues
# of the dense table's first series. Densities are per unit of x/n.
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
f(tag, kind) = sprintf("%s/fig4_%s_%s.dat", datadir, tag, kind)
# Per panel: n, the range of the eigenvalues, and the largest value of the limit's
# continuous density (the atoms are series 1 of the limit table), which set the axes.
array N[6]; array LO[6]; array HI[6]; array TOP[6]; array TOPLOG[6]
array TAGS[6] = ["mlp_l2", "mlp_l6", "resnet_l4", "resnet_l8", "relu_resnet_l8", "tanh_resnet_l8"]
do for [k = 1:6] {
  stats f(TAGS[k], 'dense') index 0 u 2 nooutput
  N[k] = STATS_records; LO[k] = STATS_min / N[k]; HI[k] = STATS_max / N[k]
  stats f(TAGS[k], 'limit') index 0 u 2 nooutput
  TOP[k] = STATS_max * N[k]
  stats f(TAGS[k], 'limit') index 0 u ($1*$2) nooutput
  TOPLOG[k] = STATS_max
}
set style fill transparent solid 0.35 noborder
set key top right
# y is the density per unit x/n ("($2*n)") or, on a log x axis, x times the density
# ("($1*$2)", the density per unit ln x, the same for x and x/n, so that areas stay
# probabilities); the dense histogram's third column is the bin width (geometric bins
# for the log panel: --log-bins).
panel(k, title, setup, y) = sprintf("%s; set title \"%s\"; set xlabel 'eigenvalue of K_l / n   (n = %d)'; plot f('%s', 'dense') index 1 u ($1/%d):%s:($3/%d) w boxes lc rgb '#1f77b4' title 'finite width: eigenvalue histogram', f('%s', 'limit') index 0 u ($1/%d):%s w l lc rgb 'black' lw 2 title 'infinite width: free convolution / Dyson equation'", setup, title, N[k], TAGS[k], N[k], y, N[k], TAGS[k], N[k], y)
lin(k) = sprintf("unset logscale x; set ylabel 'density'; set xrange [0:%g]; set yrange [0:%g]", 1.15 * HI[k], 1.3 * TOP[k])
ydens(k) = sprintf("($2*%d)", N[k])
body = "set multiplot layout 3,2; " . \
  panel(1, "ReLU MLP, layer 2 of 8 (and an atom of mass 1/2 at c_l/n, clipped)", lin(1), ydens(1)) . "; " . \
  panel(2, "ReLU MLP, layer 6 of 8, log x (and an atom of mass 1/2 at c_l/n, clipped)", sprintf("set logscale x; set xrange [%g:%g]; set ylabel 'x {/Symbol \\264} density'; set yrange [0:%g]", 0.8 * LO[2], 1.4 * HI[2], 1.3 * TOPLOG[2]), "($1*$2)") . "; " . \
  panel(3, "linear ResNet, {/Symbol b} = 1/{/Symbol \\326}L, block 4 of 8", lin(3), ydens(3)) . "; " . \
  panel(4, "linear ResNet, {/Symbol b} = 1/{/Symbol \\326}L, block 8 of 8", lin(4), ydens(4)) . "; " . \
  panel(5, "ReLU ResNet, {/Symbol b} = 1/{/Symbol \\326}L, block 8 of 8 (correlated masks)", lin(5), ydens(5)) . "; " . \
  panel(6, "tanh ResNet, {/Symbol b} = 1/{/Symbol \\326}L, block 8 of 8 (correlated masks)", lin(6), ydens(6)) . "; unset multiplot"
set terminal pngcairo size 1200,1350 font ',11'; set output outbase.'.png'
eval body
set terminal pdfcairo size 8in,9in font ',9'; set output outbase.'.pdf'
eval body
set output
