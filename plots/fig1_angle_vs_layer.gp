# Figure 1: backward-feature angle cos(theta_l) against the layer index l.
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
th = datadir."/fig1_theory.dat"; mc = datadir."/fig1_mc.dat"
set xlabel "layer l"; set ylabel "cos({/Symbol q}_l)"
set yrange [0:1.02]; set xrange [0:65]
set title "Backward-feature angle per layer (depth 64): theory (lines) and Monte Carlo (points, +-1 s.e.)"
set key at graph 0.98, graph 0.72 right
cmd = "plot th index 0 u 1:2 w l ls 1 title 'ReLU MLP: theory', mc index 0 u 1:2:3 w yerrorbars ls 1 pt 7 ps 0.6 title 'ReLU MLP: Monte Carlo', th index 1 u 1:2 w l ls 2 title 'tanh MLP: theory', mc index 1 u 1:2:3 w yerrorbars ls 2 pt 5 ps 0.6 title 'tanh MLP: Monte Carlo', th index 2 u 1:2 w l ls 3 title 'ReLU ResNet {/Symbol b} = 1/{/Symbol \326}L: theory', mc index 2 u 1:2:3 w yerrorbars ls 3 pt 9 ps 0.7 title 'ReLU ResNet: Monte Carlo'"
eval render(cmd)
