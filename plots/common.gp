# common.gp: shared settings; every figure script reads only files in datadir.
# bafu figures runs each script as: gnuplot -c plots/<figure>.gp DATADIR OUTBASE SCRIPTDIR MODE
if (!exists("datadir")) datadir = "data"
if (!exists("outbase")) outbase = "plots/figure"
set datafile commentschars "#"
set key top right spacing 1.2
set grid lc rgb "#dddddd"
set style line 1 lc rgb "#1f77b4" lw 2
set style line 2 lc rgb "#d62728" lw 2
set style line 3 lc rgb "#2ca02c" lw 2
set style line 4 lc rgb "#9467bd" lw 2
# The output names are expressions (outbase.'.png'), never text pasted into a command,
# so any directory name works.
render(s) = "set terminal pngcairo size 900,600 font ',12'; set output outbase.'.png'; " . s . "; set terminal pdfcairo size 6in,4in font ',10'; set output outbase.'.pdf'; " . s . "; set output"
# A quick run (reduced widths and draws) says so on every image.
if (!exists("mode")) mode = "full"
if (mode eq "quick") { set label 99 "quick run: reduced widths and draws, not the published figure" at screen 0.01, screen 0.015 left font ",9" tc rgb "#b00000" front }
