# Figure 3: L -> infinity output angle against sqrt(L) beta.
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
ct = datadir."/fig3_continuum.dat"; ft = datadir."/fig3_finite.dat"; mc = datadir."/fig3_mc.dat"
set xlabel "{/Symbol \326}L {/Symbol b}"; set ylabel "cos({/Symbol q}_L)"
set yrange [0:1.02]; set xrange [0:8.2]
set title "ReLU ResNet output angle against {/Symbol \326}L {/Symbol b}: continuum limit, finite L, Monte Carlo (L = 16)"
cmd = "plot ct u 1:2 w l lc rgb 'black' lw 3 title 'L {/Symbol \256} {/Symbol \245} (continuum)', ft index 0 u 1:2 w l ls 2 dt 2 title 'theory L = 4', ft index 1 u 1:2 w l ls 1 dt 3 title 'theory L = 16', ft index 2 u 1:2 w l ls 3 dt 4 title 'theory L = 64', mc u 1:2:3 w yerrorbars ls 1 pt 7 ps 1 title 'Monte Carlo L = 16'"
eval render(cmd)
