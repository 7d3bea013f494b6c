#!/usr/bin/env bash
# cli_fig9.sh: figure 9 (learning-rate transfer across depth) end to end in its
# quick variant: `bafu figures --quick` over a scripts directory holding only
# plots/fig9_lr_transfer.{fig,gp}, its grids and common.gp, so the five
# training sweeps (teacher-student, seconds) and the bafu reduce stages run as
# the figure file lists them. Checks the tables' shapes (a series per network
# and depth, per-seed optima, their means, one fitted exponent per network),
# the optima against a direct bafu reduce of the same sweep, and the images.
# SKIP (77) without the generic figure driver (figure files), gnuplot, or the
# data set the figure declares it needs.
set -u
BAFU=${1:?usage: cli_fig9.sh path/to/bafu}
SRC=${BAFU_SOURCE_DIR:?set BAFU_SOURCE_DIR}
if ! "$BAFU" figures --help | grep -q 'Figures are files'; then echo "SKIP: bafu figures has no figure files"; exit 77; fi
command -v gnuplot >/dev/null || { echo "SKIP: no gnuplot"; exit 77; }
ddir=${BAFU_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
[[ -e $ddir/train-images-idx3-ubyte.gz || -e $ddir/train-images-idx3-ubyte ]] ||
  { echo "SKIP: no Fashion-MNIST (the figure declares it needs it)"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

mkdir "$dir/scripts"
cp "$SRC"/plots/common.gp "$SRC"/plots/fig9_lr_transfer.fig "$SRC"/plots/fig9_lr_transfer.gp \
   "$SRC"/plots/fig9_lr_transfer_*.grid "$dir/scripts/"
start=$(date +%s)
if ! "$BAFU" figures --quick --scripts "$dir/scripts" --data-dir "$dir/data" --plot-dir "$dir/plots" --threads 2 \
     --quiet 2>"$dir/err"; then
  bad "bafu figures --quick: $(cat "$dir/err")"
  echo "cli_fig9: $passes passed, $fails failed"; exit 1
fi
echo "quick figure 9: $(( $(date +%s) - start )) s"
d=$dir/data
body() { grep -v '^#' "$1"; }
# curves: 5 networks x 2 depths, each series a header and 4 rates at most
[[ $(grep -c '^depth arch preset lr n loss_mean loss_se test_loss_mean test_loss_se$' "$d/fig9_curves.dat") -eq 10 ]] &&
  ok || bad "fig9_curves.dat: not 10 series"
[[ $(grep -c '^arch preset depth seed n lr_argmin loss_min lr_grid refined edge$' "$d/fig9_opt_seeds.dat") -eq 5 ]] &&
  [[ $(body "$d/fig9_opt_seeds.dat" | grep -c '^\(mlp\|resnet\) ') -eq 20 ]] && ok ||
  bad "fig9_opt_seeds.dat: not 20 per-seed optima in 5 series"
[[ $(body "$d/fig9_opt.dat" | awk '$1 ~ /^(mlp|resnet)$/ && $4 == 2' | wc -l) -eq 10 ]] && ok || bad "fig9_opt.dat: not 10 means of 2 seeds"
[[ $(body "$d/fig9_drift.dat" | awk '$1 ~ /^(mlp|resnet)$/ && $3 == 4' | wc -l) -eq 5 ]] && ok ||
  bad "fig9_drift.dat: not 5 fits of 4 per-seed optima"
# the per-seed optima are those of a direct reduce of the same sweep (the sweep of the MLP under muP, again)
"$BAFU" sweep "$SRC/plots/fig9_lr_transfer_mlp_mup.quick.grid" --failed-ok --quiet --out "$dir/mup.dat" 2>/dev/null &&
  "$BAFU" reduce argmin "$dir/mup.dat" --x lr --y loss --by arch,preset,depth,seed --log-x --refine --where layer=1 \
    --out "$dir/mup_opt.dat" 2>/dev/null
if diff <(body "$dir/mup_opt.dat" | grep '^mlp mup ') <(body "$d/fig9_opt_seeds.dat" | grep '^mlp mup ') >/dev/null; then ok
else bad "per-seed optima of the MLP under muP differ from a direct reduce"; fi
for ext in png pdf; do [[ -s $dir/plots/fig9_lr_transfer.$ext ]] && ok || bad "no fig9_lr_transfer.$ext"; done

echo "cli_fig9: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
