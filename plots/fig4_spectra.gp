# Figure 4: BFK spectral densities, infinite-width law against finite-width eigenvalues.
load scriptdir."/common.gp"
f(tag, kind) = sprintf("%s/fig4_%s_%s.dat", datadir, tag, kind)
set style fill transparent solid 0.35 noborder
set xlabel "eigenvalue of K_l"; set ylabel "density"
set key top right
panel(tag, title, setup) = sprintf("%s; set title '%s'; plot '%s' index 1 u 1:2 w boxes lc rgb '#1f77b4' title 'finite width: eigenvalue histogram', '%s' index 0 u 1:2 w l lc rgb 'black' lw 2 title 'infinite width: free convolution'", setup, title, f(tag, "dense"), f(tag, "limit"))
body = "set multiplot layout 2,2; " . panel("mlp_l2", "ReLU MLP, layer 2 (atom of mass 1/2 at c_l, clipped)", "unset logscale x; set yrange [0:0.0025]") . "; " . panel("mlp_l6", "ReLU MLP, layer 6 (log x; atom of mass 1/2 at c_l, clipped)", "set logscale x; set yrange [0:*]") . "; " . panel("resnet_l4", "linear ResNet, {/Symbol b} = 1/{/Symbol \\326}L, block 4 of 8", "unset logscale x; set yrange [0:*]") . "; " . panel("resnet_l8", "linear ResNet, block 8 of 8", "unset logscale x; set yrange [0:*]") . "; unset multiplot"
set terminal pngcairo size 1200,900 font ',11'; set output outbase.'.png'
eval body
set terminal pdfcairo size 8in,6in font ',9'; set output outbase.'.pdf'
eval body
set output
