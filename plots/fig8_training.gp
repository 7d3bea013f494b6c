# Figure 8: training ReLU MLPs on Fashion-MNIST, one column per depth in increasing
# order: test accuracy (top) and mean training loss since the previous logged step
# (bottom), each the mean over seeds with a band of +- one standard error. The table
# holds the depths in increasing order, four methods per depth (a series each).
# The last row of each run follows the last update and averages a single mini-batch,
# so the loss panels leave it out (rows one step after the previous one).
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
cv = datadir."/fig8_curves.dat"
sm = datadir."/fig8_summary.dat"
stats cv u 1 nooutput
nb = STATS_blocks; smax = STATS_max
np = nb / 4
stats sm u 3 nooutput
nseeds = int(STATS_max)
array depth[np]
do for [p = 1:np] {   # the p-th depth: the p-th row of method 0
  k = 0; stats sm u (k = k + ($2 == 0), ($2 == 0 && k == p) ? $1 : NaN) nooutput; depth[p] = int(STATS_max)
}
prev = -10
keep(s, y) = (d = s - prev, prev = s, d == 1 ? NaN : y)
tic = 10 ** floor(log10(smax / 3)); tic = (smax / tic > 12) ? 5 * tic : (smax / tic > 6) ? 2 * tic : tic
set xtics tic; set mxtics 5
set xrange [0:smax]
set bmargin 4   # room for the quick-run label below the bottom panels
set style fill transparent solid 0.2 noborder
lsof(m) = m == 0 ? 4 : m == 1 ? 2 : m == 2 ? 3 : 1
ptof(m) = m == 0 ? 4 : m == 1 ? 5 : m == 2 ? 9 : 7
name(m) = m == 0 ? "SP" : m == 1 ? "muP" : m == 2 ? "FSC" : "FSC + control"
# column col of block b: the mean (col) with its band (col + 1 = se)
band(b, m, col, loss) = sprintf("cv index %d u 1:%s w filledcurves ls %d notitle", b, \
  loss ? sprintf("(keep($1, $%d - $%d)):(($%d) + $%d)", col, col + 1, col, col + 1) : sprintf("($%d - $%d):($%d + $%d)", col, col + 1, col, col + 1), lsof(m))
curve(b, m, col, loss, title) = sprintf("cv index %d u 1:%s w lp ls %d pt %d ps 0.5 %s", b, \
  loss ? sprintf("(keep($1, $%d))", col) : sprintf("%d", col), lsof(m), ptof(m), title ? sprintf("title '%s'", name(m)) : "notitle")
what = (mode eq "quick") ? "quick settings: width 64, 1 epoch of 4096 images" : "width 256, 2 epochs"
cmd = sprintf("set multiplot layout 2,%d title 'ReLU MLPs on Fashion-MNIST, %s: mean of %d seeds, band +- 1 se (dashed: published MLP 256-128-100, 0.883)'; ", np, what, nseeds)
do for [p = 0:np-1] {
  leg = (p == 0)
  cmd = cmd . sprintf("set title 'depth %d'; set xlabel 'step'; set ylabel 'test accuracy'; set yrange [0:1]; unset logscale y; ", depth[p + 1])
  cmd = cmd . (leg ? "set key bottom right; " : "unset key; ")
  cmd = cmd . "plot "
  do for [m = 0:3] { cmd = cmd . band(4 * p + m, m, 5, 0) . ", " }
  do for [m = 0:3] { cmd = cmd . curve(4 * p + m, m, 5, 0, leg) . ", " }
  cmd = cmd . "0.8833 w l lc rgb '#888888' dt 2 notitle; "
}
do for [p = 0:np-1] {
  cmd = cmd . "set title ''; set ylabel 'training loss'; set yrange [*:*]; set logscale y; unset key; prev = -10; "
  cmd = cmd . "plot "
  do for [m = 0:3] { cmd = cmd . band(4 * p + m, m, 7, 1) . ", " }
  do for [m = 0:3] { cmd = cmd . curve(4 * p + m, m, 7, 1, 0) . (m < 3 ? ", " : "; ") }
}
cmd = cmd . "unset multiplot"
eval "set terminal pngcairo size 1400,900 font ',12'; set output outbase.'.png'; " . cmd . "; set terminal pdfcairo size 10in,6.5in font ',10'; set output outbase.'.pdf'; " . cmd . "; set output"
