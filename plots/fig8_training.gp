# Figure 8: training ReLU MLPs on Fashion-MNIST, one column per depth: test accuracy
# (top) and mean training loss since the previous logged step (bottom).
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
cv = datadir."/fig8_curves.dat"
stats cv u 1 nooutput
nb = STATS_blocks
np = nb / 4
depths = (nb == 12) ? "64 32 8" : "8 4"
set key bottom right
curves(col) = sprintf("u 1:%d w lp ls 4 pt 4 ps 0.4 title 'SP', cv index %%d u 1:%d w lp ls 2 pt 5 ps 0.4 title 'muP', cv index %%d u 1:%d w lp ls 3 pt 9 ps 0.4 title 'FSC', cv index %%d u 1:%d w lp ls 1 pt 7 ps 0.4 title 'FSC + control'", col, col, col, col)
cmd = sprintf("set multiplot layout 2,%d title 'ReLU MLPs on Fashion-MNIST, same budget (dashed: published MLP 256-128-100, 0.883)'; ", np)
do for [p = 0:np-1] {
  cmd = cmd.sprintf("set title 'depth %s'; set xlabel 'step'; set ylabel 'test accuracy'; set yrange [0:1]; unset logscale y; plot cv index %d ".curves(3)." , 0.8833 w l lc rgb '#888888' dt 2 notitle; ", word(depths, p+1), 4*p, 4*p+1, 4*p+2, 4*p+3)
}
do for [p = 0:np-1] {
  cmd = cmd.sprintf("set title ''; set ylabel 'training loss'; set yrange [*:*]; set logscale y; plot cv index %d ".curves(4)."; ", 4*p, 4*p+1, 4*p+2, 4*p+3)
}
cmd = cmd."unset multiplot"
eval "set terminal pngcairo size 1400,900 font ',12'; set output outbase.'.png'; " . cmd . "; set terminal pdfcairo size 10in,6.5in font ',10'; set output outbase.'.pdf'; " . cmd . "; set output"
