# Figure 2: output-layer angle against depth for three branch scalings.
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
th = datadir."/fig2_theory.dat"; mc = datadir."/fig2_mc.dat"
set logscale x 2
set xlabel "depth L"; set ylabel "cos({/Symbol q}_L)"
set yrange [0:1.02]; set xrange [1.8:280]
set key bottom left
set title "ReLU ResNet output angle against depth: only {/Symbol b} = 1/{/Symbol \326}L has a non-trivial limit"
cmd = "plot th index 2 u 1:2 w l ls 1 title '{/Symbol b} = 1/L: theory', mc index 2 u 1:2:3 w yerrorbars ls 1 pt 7 title 'Monte Carlo', th index 1 u 1:2 w l ls 3 title '{/Symbol b} = 1/{/Symbol \326}L: theory', mc index 1 u 1:2:3 w yerrorbars ls 3 pt 9 title 'Monte Carlo', th index 0 u 1:2 w l ls 2 title '{/Symbol b} = 1: theory', mc index 0 u 1:2:3 w yerrorbars ls 2 pt 5 title 'Monte Carlo'"
eval render(cmd)
