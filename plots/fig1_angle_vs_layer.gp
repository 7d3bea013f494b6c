# Figure 1: backward-feature angle cos(theta_l) against the layer index l, on linear
# axes (left) and on log-log axes (right) with a guide of slope -1/2: the MLPs follow
# the 1/sqrt(l) law (ReLU: cos -> sqrt(3/(2l)), theory/moments.md).
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
th = datadir."/fig1_theory.dat"; mc = datadir."/fig1_mc.dat"
ref(x) = x >= 2 ? 0.8 / sqrt(x) : 1/0
left = "set multiplot layout 1,2 title 'Backward-feature angle per layer, depth 64: theory (lines), Monte Carlo (points, {/Symbol \261}1 s.e.)'; " . \
  "set xlabel 'layer l'; set ylabel 'cos({/Symbol q}_l)'; set yrange [0:1.02]; set xrange [0:65]; " . \
  "set key at graph 0.98, graph 0.75 right spacing 1.1 font ',10'; " . \
  "plot th index 0 u 1:2 w l ls 1 title 'ReLU MLP', mc index 0 u 1:2:3 w yerrorbars ls 1 pt 7 ps 0.5 notitle, " . \
  "th index 1 u 1:2 w l ls 2 title 'tanh MLP', mc index 1 u 1:2:3 w yerrorbars ls 2 pt 5 ps 0.5 notitle, " . \
  "th index 2 u 1:2 w l ls 3 title 'ReLU ResNet, {/Symbol b} = 1/{/Symbol \326}L', mc index 2 u 1:2:3 w yerrorbars ls 3 pt 9 ps 0.6 notitle; "
right = "set logscale xy; set xrange [1:70]; set yrange [0.1:1.1]; set ytics (0.1, 0.2, 0.3, 0.5, 0.7, 1); " . \
  "set xlabel 'layer l (log scale)'; set ylabel 'cos({/Symbol q}_l) (log scale)'; set key default; set key bottom left font ',10' spacing 1.1; " . \
  "plot ref(x) w l dt 2 lc rgb 'black' lw 1.5 title 'slope -1/2 (guide)', th index 0 u 1:2 w l ls 1 notitle, mc index 0 u 1:2:3 w yerrorbars ls 1 pt 7 ps 0.5 notitle, " . \
  "th index 1 u 1:2 w l ls 2 notitle, mc index 1 u 1:2:3 w yerrorbars ls 2 pt 5 ps 0.5 notitle, " . \
  "th index 2 u 1:2 w l ls 3 notitle, mc index 2 u 1:2:3 w yerrorbars ls 3 pt 9 ps 0.6 notitle; " . \
  "unset multiplot; unset logscale; unset ytics; set ytics autofreq"
eval render(left . right)
