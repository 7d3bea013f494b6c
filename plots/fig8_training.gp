# Figure 8: test accuracy against training step on Fashion-MNIST, one panel per depth.
load scriptdir."/common.gp"
cv = datadir."/fig8_curves.dat"
stats cv u 1 nooutput
nb = STATS_blocks
np = nb / 4
depths = (nb == 12) ? "64 32 8" : "8 4"
set style line 5 lc rgb "#ff7f0e" lw 2
set xlabel "step"; set ylabel "test accuracy"
set yrange [0:1]
set key bottom right
cmd = sprintf("set multiplot layout 1,%d title 'ReLU MLPs on Fashion-MNIST, same budget (dashed: published MLP 256-128-100, 0.883)'; ", np)
do for [p = 0:np-1] {
  cmd = cmd.sprintf("set title 'depth %s'; plot cv index %d u 1:3 w lp ls 4 pt 4 ps 0.4 title 'SP', cv index %d u 1:3 w lp ls 2 pt 5 ps 0.4 title 'muP', cv index %d u 1:3 w lp ls 3 pt 9 ps 0.4 title 'FSC', cv index %d u 1:3 w lp ls 1 pt 7 ps 0.4 title 'FSC + control', 0.8833 w l lc rgb '#888888' dt 2 notitle; ", word(depths, p+1), 4*p, 4*p+1, 4*p+2, 4*p+3)
}
cmd = cmd."unset multiplot"
eval sprintf("set terminal pngcairo size 1400,500 font ',12'; set output '%s.png'; %s; set terminal pdfcairo size 10in,3.6in font ',10'; set output '%s.pdf'; %s; set output", outbase, cmd, outbase, cmd)
