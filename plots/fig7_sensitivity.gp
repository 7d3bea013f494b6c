# Figure 7: sensitivity of the last hidden layer against depth, per preset.
# SP and NTK coincide here (their rates are proportional when d = n): SP is drawn on
# top, dashed, with open markers, so that both stay visible.
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
th = datadir."/fig7_theory.dat"; mc = datadir."/fig7_mc.dat"
set logscale xy
set xlabel "depth L"; set ylabel "|df_L|_{rms} / D  (per unit loss decrease)"
set xrange [1.8:280]; set yrange [1e-3:30]
set key top left font ",10" spacing 1.0 maxrows 3 width -2
set style line 5 lc rgb "#ff7f0e" lw 2
set style line 6 lc rgb "#8c564b" lw 2
set title "Sensitivity against depth (width 1024; lines: theory, points: Monte Carlo {/Symbol \261}1 s.e.)\nSP = NTK {/Symbol \265} (L/n)^{1/2}, muP grows like L^{1/2}, FSC and the ResNets stay flat"
cmd = "plot th index 1 u 1:2 w l ls 1 notitle, mc index 1 u 1:2:3 w yerrorbars ls 1 pt 7 ps 0.8 title 'MLP NTK', \
 th index 0 u 1:2 w l lc rgb '#9467bd' lw 3 dt 2 notitle, mc index 0 u 1:2:3 w yerrorbars lc rgb '#9467bd' lw 1.5 pt 6 ps 1.6 title 'MLP SP (= NTK)', \
 th index 2 u 1:2 w l ls 2 notitle, mc index 2 u 1:2:3 w yerrorbars ls 2 pt 5 ps 0.8 title 'MLP muP', \
 th index 3 u 1:2 w l ls 3 notitle, mc index 3 u 1:2:3 w yerrorbars ls 3 pt 9 ps 0.9 title 'MLP FSC', \
 th index 4 u 1:2 w l ls 5 notitle, mc index 4 u 1:2:3 w yerrorbars ls 5 pt 11 ps 0.9 title 'ResNet muP', \
 th index 5 u 1:2 w l ls 6 notitle, mc index 5 u 1:2:3 w yerrorbars ls 6 pt 13 ps 0.9 title 'ResNet FSC'"
eval render(cmd)
