# Figure 5: |MC - theory| against width, log-log, with the fitted slopes (and their
# standard errors) and a guide of slope -1/2.
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
t = datadir."/fig5_width.dat"; f = datadir."/fig5_fit.dat"
set logscale xy
set xlabel "width n"; set ylabel "rms of cos({/Symbol q}_L)_{network} - cos({/Symbol q}_L)_{theory}"
set title "Convergence with width of the output angle (depth 8): one network's deviation from the theory"
stats f index 0 u 3:4 nooutput
s0 = sprintf("%.2f {/Symbol \261} %.2f", STATS_mean_x, STATS_mean_y)
stats f index 1 u 3:4 nooutput
s1 = sprintf("%.2f {/Symbol \261} %.2f", STATS_mean_x, STATS_mean_y)
stats t u 1:2 nooutput
nlo = STATS_min_x; nhi = STATS_max_x; ylo = STATS_min_y; yhi = STATS_max_y
set yrange [ylo / 2.5 : yhi * 1.6]
set xrange [nlo / 1.3 : nhi * 1.3]
set ytics (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
set xtics (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
guide(x) = sqrt(ylo * yhi) * sqrt(sqrt(nlo * nhi) / x)
set key bottom left
cmd = "plot t index 0 u 1:2:3 w yerrorbars ls 1 pt 7 title 'ReLU MLP', f index 0 u 1:2 w l ls 1 title sprintf('fit, slope %s', s0), t index 1 u 1:2:3 w yerrorbars ls 3 pt 9 title 'ReLU ResNet {/Symbol b} = 1/{/Symbol \326}L', f index 1 u 1:2 w l ls 3 title sprintf('fit, slope %s', s1), guide(x) w l dt 2 lc rgb 'black' lw 1.5 title 'n^{-1/2} (guide)'"
eval render(cmd)
