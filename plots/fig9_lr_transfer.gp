# Figure 9: learning-rate transfer across depth. One column per network (ReLU MLP
# SP, muP, FSC; ReLU ResNet beta = 1/sqrt(L) muP, FSC): the final training loss
# (top) and test accuracy (bottom; quick run: test loss) after a fixed budget
# against the global rate lr, mean over seeds, one line per depth. Markers: the
# optimal rate per depth (per seed the parabola-refined argmin of the loss, then
# mean and standard error over seeds, theory/reduce.md), at the parabola's loss
# (top) and along the bottom edge (bottom). Right: the optima against depth with
# the least-squares lines log lr* = a + b log L of fig9_drift.dat.
# Tables (bafu reduce): fig9_curves.dat (a series per network and depth),
# fig9_opt.dat and fig9_drift.dat (a series per network).
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
if (mode eq "quick") { set label 99 at screen 0.01, screen 0.975 }   # above the panels' axis labels
# the depths' colours (line styles 1-4 of common.gp) also as line types, for 'lc variable'
set linetype 1 lc rgb "#1f77b4"; set linetype 2 lc rgb "#d62728"; set linetype 3 lc rgb "#2ca02c"
set linetype 4 lc rgb "#9467bd"; set linetype 5 lc rgb "#ff7f0e"
cv = datadir."/fig9_curves.dat"
op = datadir."/fig9_opt.dat"
dr = datadir."/fig9_drift.dat"
netname(p) = p == 0 ? "MLP, SP" : p == 1 ? "MLP, muP" : p == 2 ? "MLP, FSC" : p == 3 ? "ResNet, muP" : "ResNet, FSC"
stats cv u 4 nooutput
nb = STATS_blocks
nd = nb / 5                                   # depths per network (series per network)
stats op index 0 u 3 nooutput
dmin = STATS_min; dmax = STATS_max
# the fitted exponents, b +- se, of each network
array slope[5]; array slope_se[5]; array icpt[5]
do for [p = 0:4] {
  stats dr index p u 4 nooutput
  icpt[p + 1] = STATS_max
  stats dr index p u 6 nooutput
  slope[p + 1] = STATS_max
  stats dr index p u 7 nooutput
  slope_se[p + 1] = STATS_max
}
depthof(d) = int(dmin * 2 ** d)              # the grids' depths double
acc_label = (mode eq "quick") ? "test loss (teacher)" : "test accuracy"
ybot = (mode eq "quick") ? NaN : 0.04          # the bottom row's markers (none in a quick run)
what = (mode eq "quick") ? "quick: teacher-student, width 16, depths 2 and 4, 2 seeds" : \
  "Fashion-MNIST, width 256, 100 SGD steps of 64 (6400 images), mean of 2 seeds"
cmd = sprintf("set multiplot layout 2,6 title 'Learning-rate transfer across depth (%s); markers: optimal rate, mean +- se over seeds'; ", what)
cmd = cmd . "set logscale x; set format x '10^{%L}'; set mxtics 10; "
do for [p = 0:4] {
  leg = (p == 0)
  cmd = cmd . sprintf("set title '%s: b = %.2f +- %.2f'; set xlabel 'global rate lr'; set ylabel '%s'; set logscale y; set yrange [*:*]; ", \
    netname(p), slope[p + 1], slope_se[p + 1], p == 0 ? "final training loss" : "")
  cmd = cmd . (leg ? "set key top left samplen 1.5 font ',9'; " : "unset key; ")
  cmd = cmd . "plot "
  do for [d = 0:nd-1] {
    cmd = cmd . sprintf("cv index %d u 4:6:7 w yerrorlines ls %d pt 7 ps 0.5 %s, ", p * nd + d, d + 1, leg ? sprintf("title 'L = %d'", depthof(d)) : "notitle")
  }
  cmd = cmd . sprintf("op index %d u 5:7:6 w xerrorbars lc rgb 'black' pt 6 ps 1.4 lw 1.5 title (%d ? 'optimum' : ''), ", p, leg)
  cmd = cmd . sprintf("op index %d u 5:7:(column(3) == %d ? 1 : column(3) == %d ? 2 : column(3) == %d ? 3 : 4) w p pt 7 ps 0.8 lc variable notitle; ", p, depthof(0), depthof(1), depthof(2))
}
# the drift: optima against depth, the fitted lines
cmd = cmd . "set title 'optimum against depth'; set xlabel 'depth L'; set ylabel 'optimal lr'; set logscale xy; set format x '%g'; set xrange [dmin / 1.3:dmax * 1.3]; set xtics (2, 4, 8, 16, 32, 64); set key at graph 1, graph -0.35 right top font ',10' samplen 1.5 title 'dashed: fit lr* = e^a L^b'; set yrange [*:*]; plot "
do for [p = 0:4] {
  cmd = cmd . sprintf("op index %d u 3:5:6 w yerrorbars pt %d ps 1 lc %d title '%s', exp(%.10g) * x ** %.10g w l lc %d dt 2 notitle%s", \
    p, 4 + 2 * p, p + 1, netname(p), icpt[p + 1], slope[p + 1], p + 1, p < 4 ? ", " : "; ")
}
cmd = cmd . "unset xrange; set xtics autofreq; set format x '10^{%L}'; set logscale x; unset logscale y; "
do for [p = 0:4] {
  cmd = cmd . sprintf("set title ''; set xlabel 'global rate lr'; set ylabel '%s'; unset key; ", p == 0 ? acc_label : "")
  cmd = cmd . ((mode eq "quick") ? "set yrange [*:*]; " : "set yrange [0:1]; ")
  cmd = cmd . "plot "
  do for [d = 0:nd-1] {
    cmd = cmd . sprintf("cv index %d u 4:8:9 w yerrorlines ls %d pt 7 ps 0.5 notitle, ", p * nd + d, d + 1)
  }
  cmd = cmd . sprintf("op index %d u 5:(ybot):6:(column(3) == %d ? 1 : column(3) == %d ? 2 : column(3) == %d ? 3 : 4) w xerrorbars pt 7 ps 0.8 lc variable notitle; ", \
    p, depthof(0), depthof(1), depthof(2))
}
cmd = cmd . "unset multiplot"
eval "set terminal pngcairo size 2100,800 font ',11'; set output outbase.'.png'; " . cmd . "; set terminal pdfcairo size 15in,5.7in font ',9'; set output outbase.'.pdf'; " . cmd . "; set output"
