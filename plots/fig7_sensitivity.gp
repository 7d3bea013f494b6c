# Figure 7: sensitivity of the last hidden layer against depth, per preset.
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
th = datadir."/fig7_theory.dat"; mc = datadir."/fig7_mc.dat"
set logscale xy
set xlabel "depth L"; set ylabel "|df_L|_{rms} / D  (per unit loss decrease)"
set xrange [1.8:280]; set yrange [1e-3:30]
set key outside right
set style line 5 lc rgb "#ff7f0e" lw 2
set style line 6 lc rgb "#8c564b" lw 2
set title "Sensitivity against depth: SP = NTK ~ (L/n)^{1/2}, muP grows, FSC and ResNets stay flat"
cmd = "plot th index 0 u 1:2 w l ls 4 dt 2 title 'MLP SP: theory', mc index 0 u 1:2:3 w yerrorbars ls 4 pt 4 title 'MC', \
 th index 1 u 1:2 w l ls 1 title 'MLP NTK: theory', mc index 1 u 1:2:3 w yerrorbars ls 1 pt 7 title 'MC', \
 th index 2 u 1:2 w l ls 2 title 'MLP muP: theory', mc index 2 u 1:2:3 w yerrorbars ls 2 pt 5 title 'MC', \
 th index 3 u 1:2 w l ls 3 title 'MLP FSC: theory', mc index 3 u 1:2:3 w yerrorbars ls 3 pt 9 title 'MC', \
 th index 4 u 1:2 w l ls 5 title 'ResNet muP: theory', mc index 4 u 1:2:3 w yerrorbars ls 5 pt 11 title 'MC', \
 th index 5 u 1:2 w l ls 6 title 'ResNet FSC: theory', mc index 5 u 1:2:3 w yerrorbars ls 6 pt 13 title 'MC'"
eval render(cmd)
