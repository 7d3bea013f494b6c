# Figure 6: predicted eta |df_l| against the measured |Delta f_l| of an actual step.
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
t = datadir."/fig6_speed.dat"
set logscale xy
set xlabel "predicted {/Symbol h} |df_l| (feature speed formula, infinite-width theory)"
set ylabel "measured |{/Symbol D}f_l| after one gradient step"
set key top left
set title "Feature speed: theory against actual steps (ReLU MLP, all 16 layers, four step sizes)"
cmd = "plot x w l lc rgb 'black' dt 2 title 'identity', t index 0 u 2:3 w p ls 1 pt 7 title '{/Symbol h} = 1e-6', t index 1 u 2:3 w p ls 2 pt 5 title '{/Symbol h} = 1e-5', t index 2 u 2:3 w p ls 3 pt 9 title '{/Symbol h} = 1e-4', t index 3 u 2:3 w p ls 4 pt 11 title '{/Symbol h} = 1e-3'"
eval render(cmd)
