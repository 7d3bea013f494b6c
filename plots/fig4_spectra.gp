# Figure 4: BFK spectral densities, infinite-width law against finite-width eigenvalues.
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
f(tag, kind) = sprintf("%s/fig4_%s_%s.dat", datadir, tag, kind)
set style fill transparent solid 0.35 noborder
set xlabel "eigenvalue of K_l"; set ylabel "density"
set key top right
# y is the density ("2") or, on a log x axis, x times the density ("($1*$2)", the
# density per unit ln x, so that areas stay probabilities); the dense histogram's
# third column is the bin width (geometric bins for the log panel: --log-bins).
panel(tag, title, setup, y) = sprintf("%s; set title '%s'; plot f('%s', 'dense') index 1 u 1:%s:3 w boxes lc rgb '#1f77b4' title 'finite width: eigenvalue histogram', f('%s', 'limit') index 0 u 1:%s w l lc rgb 'black' lw 2 title 'infinite width: free convolution'", setup, title, tag, y, tag, y)
lin = "unset logscale x; set ylabel 'density'"
body = "set multiplot layout 2,2; " . panel("mlp_l2", "ReLU MLP, layer 2 (atom of mass 1/2 at c_l, clipped)", lin . "; set yrange [0:0.0025]", "2") . "; " . panel("mlp_l6", "ReLU MLP, layer 6 (log x; atom of mass 1/2 at c_l, clipped)", "set logscale x; set ylabel 'x {/Symbol \\264} density'; set yrange [0:0.3]", "($1*$2)") . "; " . panel("resnet_l4", "linear ResNet, {/Symbol b} = 1/{/Symbol \\326}L, block 4 of 8", lin . "; set yrange [0:*]", "2") . "; " . panel("resnet_l8", "linear ResNet, block 8 of 8", lin . "; set yrange [0:*]", "2") . "; unset multiplot"
set terminal pngcairo size 1200,900 font ',11'; set output outbase.'.png'
eval body
set terminal pdfcairo size 8in,6in font ',9'; set output outbase.'.pdf'
eval body
set output
