#!/usr/bin/env bash
# cli_reduce.sh: bafu reduce end to end. A learning-rate grid whose losses
# are parabolas in log lr with known optima is reduced to the optima per seed
# (argmin, refined), their mean over seeds and their drift with depth (fit),
# each output read back; a table of another command (bafu theory) is fitted;
# bad requests and bad tables are refused with one line, exit 2, no output.
set -u
BAFU=${1:?usage: cli_reduce.sh path/to/bafu}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# loss = 0.5 (log lr - log opt)^2 + 0.1 seed, opt = 0.3 depth^-1 (1 + 0.1 (seed - 2));
# rows in sweep order (seed fastest), one blank line between points as bafu sweep writes
awk 'BEGIN {
  print "arch preset depth lr seed loss"; print "# a learning-rate grid with known optima"
  split("0.001 0.002 0.005 0.01 0.02 0.05 0.1 0.2", lr, " ")
  for (d = 8; d <= 64; d *= 2) for (i = 1; i <= 8; ++i) for (s = 1; s <= 3; ++s) {
    opt = 0.3 / d * (1 + 0.1 * (s - 2)); l = log(lr[i]) - log(opt)
    printf "mlp mup %d %s %d %.17g\n\n", d, lr[i], s, 0.5 * l * l + 0.1 * s } }' >"$dir/grid.dat"

if "$BAFU" reduce argmin "$dir/grid.dat" --x lr --y loss --by arch,preset,depth,seed --log-x --refine \
     --out "$dir/opt.dat" 2>"$dir/err" &&
   [[ $(head -1 "$dir/opt.dat") == "arch preset depth seed n lr_argmin loss_min lr_grid refined edge" ]] &&
   awk 'NR > 1 && !/^#/ && NF { opt = 0.3 / $3 * (1 + 0.1 * ($4 - 2)); r = $6 / opt - 1
        if (r > 1e-8 || r < -1e-8 || $5 != 8 || $9 != 1 || $10 != 0) exit 1; ++n } END { exit n != 12 }' "$dir/opt.dat"; then
  ok
else bad "argmin: $(cat "$dir/err"; cat "$dir/opt.dat")"; fi
grep -q '^# command: .*bafu reduce argmin' "$dir/opt.dat" && grep -q '^# generator: bafu' "$dir/opt.dat" &&
  grep -q "^# input: $dir/grid.dat (1 series)" "$dir/opt.dat" && ok || bad "provenance lines"

# mean over seeds: the factors 0.9 1 1.1 average to 1 (se 0.1 opt / sqrt 3); one series per depth,
# the series column first
if "$BAFU" reduce mean "$dir/opt.dat" --y lr_argmin,loss_min --by arch,preset,depth --series depth \
     --out "$dir/mean.dat" 2>"$dir/err" &&
   [[ $(grep -c '^depth arch preset n lr_argmin_mean lr_argmin_se loss_min_mean loss_min_se$' "$dir/mean.dat") -eq 4 ]] &&
   [[ $(grep -c '^# series: depth=' "$dir/mean.dat") -eq 4 ]] &&
   awk '!/^#/ && NF && $2 == "mlp" { opt = 0.3 / $1; if ((($5 / opt - 1) ^ 2) > 1e-16 ||
        (($6 / (0.1 * opt / sqrt(3)) - 1) ^ 2) > 1e-6 || $4 != 3) exit 1; ++n } END { exit n != 4 }' "$dir/mean.dat"; then
  ok
else bad "mean: $(cat "$dir/err"; cat "$dir/mean.dat")"; fi

# the drift exponent: log lr_argmin against log depth, slope -1 (12 points)
if "$BAFU" reduce fit "$dir/opt.dat" --x depth --y lr_argmin --by arch,preset --loglog --out "$dir/fit.dat" 2>"$dir/err" &&
   awk '!/^#/ && $1 == "mlp" { if ($3 != 12 || ($6 + 1) ^ 2 > 1e-16) exit 1; ++n } END { exit n != 1 }' "$dir/fit.dat"; then
  ok
else bad "fit: $(cat "$dir/err"; cat "$dir/fit.dat")"; fi

# any command's table: bafu theory's cos_theta against layer, fitted values per row
if "$BAFU" theory --depth 6 --out "$dir/th.dat" 2>/dev/null &&
   "$BAFU" reduce fit "$dir/th.dat" --x layer --y cos_theta --fitted --out "$dir/thfit.dat" 2>"$dir/err" &&
   [[ $(head -1 "$dir/thfit.dat") == "layer fit slope slope_se" ]] && [[ $(grep -vc '^#' "$dir/thfit.dat") -eq 7 ]]; then
  ok
else bad "fit of a theory table: $(cat "$dir/err")"; fi
# stdout, and help
"$BAFU" reduce mean "$dir/opt.dat" --y loss_min | grep -q '^12 ' && ok || bad "mean to stdout"
"$BAFU" reduce --help | grep -q -- '--refine' && ok || bad "reduce --help"

# refused: one line on stderr, exit 2, nothing on stdout, no output file nor temporary
printf 'x y\n1 2\n0 3\n2 5\n' >"$dir/zero.dat"
printf 'x y\n1 2\n2 nan\n3 5\n' >"$dir/nan.dat"
printf 'x y\n1 2\n2 3 4\n' >"$dir/ragged.dat"
printf 'x y\n# no rows\n' >"$dir/norows.dat"
refused() { # message fragment, arguments
  local want=$1; shift
  rm -f "$dir/out.dat"
  timeout 60 "$BAFU" reduce "$@" --out "$dir/out.dat" </dev/null >"$dir/stdout" 2>"$dir/stderr"
  local rc=$?
  if [[ $rc -ne 2 || $(wc -l <"$dir/stderr") -ne 1 ]] || ! grep -q -- "$want" "$dir/stderr" || [[ -s $dir/stdout ]] ||
     ls "$dir" | grep -q '^out\.dat'; then
    bad "bafu reduce $*: exit $rc, stderr: $(cat "$dir/stderr")"
  else ok; fi
}
refused "--x: no column 'rate'" argmin "$dir/grid.dat" --x rate --y loss --by arch,preset,depth,seed
refused "--y: no column 'los'" mean "$dir/grid.dat" --y los --by depth
refused "--by: no column 'width'" mean "$dir/grid.dat" --y loss --by width
refused "a standard error needs 2" mean "$dir/grid.dat" --y loss --by depth,lr,seed
refused "group depth=8: the abscissa 0.001 appears twice" argmin "$dir/grid.dat" --x lr --y loss --by depth
refused "zero.dat:3: column x: 0: a log axis needs positive values" fit "$dir/zero.dat" --x x --y y --log-x
refused "nan.dat:3: column y: 'nan' is not a finite number" fit "$dir/nan.dat" --x x --y y
refused "ragged.dat:3: 3 values, but the header has 2" mean "$dir/ragged.dat" --y y
refused "no rows to reduce" mean "$dir/norows.dat" --y y
refused "no rows to reduce (none passes where)" mean "$dir/grid.dat" --y loss --where depth=12
refused "--where: 'depth' is not col=value" mean "$dir/grid.dat" --y loss --where depth
refused "--index: 1, but" mean "$dir/grid.dat" --y loss --index 1
refused "--refine: only for argmin and argmax" mean "$dir/grid.dat" --y loss --refine
refused "--y: one value column only" argmin "$dir/grid.dat" --x lr --y loss,seed
refused "--x: the axis column is needed" fit "$dir/grid.dat" --y loss
refused "not an operation" median "$dir/grid.dat" --y loss
refused "cannot open" mean "$dir/missing.dat" --y loss
refused "no header row" mean /dev/null --y loss
cp "$dir/grid.dat" "$dir/out.dat"
"$BAFU" reduce mean "$dir/out.dat" --y loss --out "$dir/out.dat" 2>"$dir/stderr"
[[ $? -eq 2 ]] && grep -q "name the same file" "$dir/stderr" && cmp -s "$dir/grid.dat" "$dir/out.dat" && ok ||
  bad "input and output the same file: $(cat "$dir/stderr")"
refused "expected an operation" mean
ls "$dir" | grep -q '\.tmp\.' && bad "a temporary file was left: $(ls "$dir")" || ok

echo "cli_reduce: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
