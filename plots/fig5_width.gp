# Figure 5: |MC - theory| against width, log-log, with the fitted slope.
if (ARGC >= 3) { datadir = ARG1; outbase = ARG2; scriptdir = ARG3 }; if (ARGC >= 4) { mode = ARG4 }
load scriptdir."/common.gp"
t = datadir."/fig5_width.dat"; f = datadir."/fig5_fit.dat"
set logscale xy
set xlabel "width n"; set ylabel "rms of cos({/Symbol q}_L)_{network} - cos({/Symbol q}_L)_{theory}"
set title "Convergence with width of the output angle (depth 8): one network's deviation from the theory"
stats f index 0 u 3 nooutput
s0 = sprintf("%.2f", STATS_mean)
stats f index 1 u 3 nooutput
s1 = sprintf("%.2f", STATS_mean)
set xrange [*:*]; set offsets graph 0.1, graph 0.1, 0, 0
cmd = "plot t index 0 u 1:2:3 w yerrorbars ls 1 pt 7 title 'ReLU MLP', f index 0 u 1:2 w l ls 1 title sprintf('fit, slope %s', s0), t index 1 u 1:2:3 w yerrorbars ls 3 pt 9 title 'ReLU ResNet {/Symbol b} = 1/{/Symbol \326}L', f index 1 u 1:2 w l ls 3 title sprintf('fit, slope %s', s1)"
eval render(cmd)
