# Figure 8: training ReLU MLPs on Fashion-MNIST, one column per depth in increasing
# order: test accuracy (top) and mean training loss since the previous logged step
# (bottom). The table holds the depths in decreasing order, four methods per depth.
# The last row of each run follows the last update and averages a single mini-batch,
# so the loss panels leave it out (rows one step after the previous one).
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
cv = datadir."/fig8_curves.dat"
stats cv u 1 nooutput
nb = STATS_blocks; smax = STATS_max
np = nb / 4
depths = (nb == 12) ? "8 32 64" : "4 8"
blk(p) = 4 * (np - 1 - p)                    # first block of the p-th panel (depths ascending)
prev = -10
keep(s, y) = (d = s - prev, prev = s, d == 1 ? NaN : y)
tic = 10 ** floor(log10(smax / 3)); tic = (smax / tic > 12) ? 5 * tic : (smax / tic > 6) ? 2 * tic : tic
set xtics tic; set mxtics 5
set xrange [0:smax]
curve(b, m, col, loss, title) = sprintf("cv index %d u 1:%s w lp %s ps 0.5 %s", b + m, loss ? sprintf("(keep($1, $%d))", col) : sprintf("%d", col), \
  (m == 0 ? "ls 4 pt 4" : m == 1 ? "ls 2 pt 5" : m == 2 ? "ls 3 pt 9" : "ls 1 pt 7"), \
  title ? sprintf("title '%s'", m == 0 ? "SP" : m == 1 ? "muP" : m == 2 ? "FSC" : "FSC + control") : "notitle")
what = (mode eq "quick") ? "quick settings (fig8_summary.dat)" : "width 256, 2 epochs"
cmd = sprintf("set multiplot layout 2,%d title 'ReLU MLPs on Fashion-MNIST, %s, one seed (dashed: published MLP 256-128-100, 0.883)'; ", np, what)
do for [p = 0:np-1] {
  leg = (p == 0)
  cmd = cmd . sprintf("set title 'depth %s'; set xlabel 'step'; set ylabel 'test accuracy'; set yrange [0:1]; unset logscale y; ", word(depths, p+1))
  cmd = cmd . (leg ? "set key bottom right; " : "unset key; ")
  cmd = cmd . "plot " . curve(blk(p), 0, 3, 0, leg) . ", " . curve(blk(p), 1, 3, 0, leg) . ", " . curve(blk(p), 2, 3, 0, leg) . ", " . curve(blk(p), 3, 3, 0, leg) . ", 0.8833 w l lc rgb '#888888' dt 2 notitle; "
}
do for [p = 0:np-1] {
  cmd = cmd . "set title ''; set ylabel 'training loss'; set yrange [*:*]; set logscale y; unset key; prev = -10; "
  cmd = cmd . "plot " . curve(blk(p), 0, 4, 1, 0) . ", " . curve(blk(p), 1, 4, 1, 0) . ", " . curve(blk(p), 2, 4, 1, 0) . ", " . curve(blk(p), 3, 4, 1, 0) . "; "
}
cmd = cmd . "unset multiplot"
eval "set terminal pngcairo size 1400,900 font ',12'; set output outbase.'.png'; " . cmd . "; set terminal pdfcairo size 10in,6.5in font ',10'; set output outbase.'.pdf'; " . cmd . "; set output"
