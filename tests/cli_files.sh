#!/usr/bin/env bash
# cli_files.sh: the numeric files every subcommand reads follow one strict
# reader (bafu/text.h): LF, CRLF and CR line ends alike, any finite double
# (subnormals too), a NUL byte refused, an all-zero batch refused everywhere,
# memory bounded up front (/dev/zero, an endless line, a sweep point too large);
# a malformed BAFU_MEMORY_LIMIT_MB is refused by every subcommand.
set -u
BAFU=${1:?usage: cli_files.sh path/to/bafu}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
ulimit -c 0
body() { grep -v '^#' "$1"; }

refused() { # status, fragment, then the command (env assignments allowed first)
  local want=$1 frag=$2; shift 2
  timeout 60 env "$@" </dev/null >"$dir/stdout" 2>"$dir/stderr"
  local rc=$?
  if [[ $rc -eq $want && $(wc -l <"$dir/stderr") -eq 1 && ! -s $dir/stdout ]] && grep -q -- "$frag" "$dir/stderr"; then ok
  else bad "$* exited $rc (want $want, '$frag'): $(head -2 "$dir/stderr")"; fi
}

# one batch, three line-end conventions, the same table
printf '0.5 -1 2 0.25\n1 1e-3 -0.5 3\n' >"$dir/lf.txt"
printf '0.5 -1 2 0.25\r\n1 1e-3 -0.5 3\r\n' >"$dir/crlf.txt"
printf '0.5 -1 2 0.25\r1 1e-3 -0.5 3\r' >"$dir/cr.txt"
printf '0.5 -1 2 0.25\n1 1e-3 -0.5 3' >"$dir/noend.txt"
for cmd in "mc --width 8 --depth 2 --seeds 2" "kernel --depth 3" "theory --depth 3 --loss mse --width 8" "spectrum --width 8 --depth 2"; do
  for f in lf crlf cr noend; do
    in="$dir/$f.txt"
    [[ $cmd == theory* || $cmd == spectrum* ]] && { head -c 14 "$dir/$f.txt" >"$dir/one_$f.txt"; in="$dir/one_$f.txt"; }
    if ! $BAFU $cmd --input "$in" --out "$dir/$f.dat" 2>"$dir/stderr"; then bad "$cmd --input $f: $(cat "$dir/stderr")"; continue; fi
  done
  for f in crlf cr noend; do
    if diff <(body "$dir/lf.dat") <(body "$dir/$f.dat") >/dev/null; then ok; else bad "$cmd: $f line ends give another table"; fi
  done
done

# numbers: subnormals and underflow are numbers; inf, nan, overflow are not
printf '1e-320 2 3 4\n' >"$dir/sub.txt"
for cmd in "mc --seeds 2" theory kernel spectrum; do
  if "$BAFU" $cmd --width 8 --depth 2 --input "$dir/sub.txt" --out "$dir/s.dat" 2>"$dir/stderr"; then ok
  else bad "$cmd: a subnormal input refused: $(cat "$dir/stderr")"; fi
done
"$BAFU" mc --width 8 --depth 2 --seeds 2 --lr-hidden 1e-320 --out "$dir/s.dat" 2>/dev/null && ok || bad "--lr-hidden 1e-320 refused"
for v in 1e400 inf nan 0x; do
  printf "1 2 $v 4\n" >"$dir/v.txt"
  refused 2 "not a finite number" "$BAFU" mc --width 8 --depth 2 --seeds 2 --input "$dir/v.txt"
done

# commas separate numbers; an empty field (a missing value of a CSV) is refused
printf '1, 2 ,3,4\n5,6, 7 ,8\n' >"$dir/csv.txt"
"$BAFU" mc --width 8 --depth 2 --seeds 2 --input "$dir/csv.txt" --out "$dir/c.dat" 2>/dev/null && ok || bad "commas refused"
for t in '1,,2,3' ',1,2,3' '1,2,3,' '1, ,2,3'; do
  printf '%s\n' "$t" >"$dir/empty.txt"
  refused 2 "an empty field" "$BAFU" mc --width 8 --depth 2 --seeds 2 --input "$dir/empty.txt"
done

# a NUL byte, /dev/zero, an all-zero batch: refused by every subcommand that reads --input
printf '1 2\0 3 4\n' >"$dir/nul.txt"
printf '0 0 0 0\n0 0 0 0\n' >"$dir/zeros.txt"
for cmd in mc theory kernel spectrum; do
  refused 2 "NUL byte" "$BAFU" $cmd --width 8 --depth 2 --input "$dir/nul.txt"
  refused 2 "NUL byte" "$BAFU" $cmd --width 8 --depth 2 --input /dev/zero
  refused 2 "every sample" "$BAFU" $cmd --width 8 --depth 2 --input "$dir/zeros.txt"
done
# an endless line is refused at the memory limit, not read to the end of memory
mkfifo "$dir/fifo"
(head -c 400000000 /dev/zero | tr '\0' '7' >"$dir/fifo" 2>/dev/null &)
refused 2 "BAFU_MEMORY_LIMIT_MB" BAFU_MEMORY_LIMIT_MB=64 "$BAFU" mc --width 8 --depth 2 --input "$dir/fifo"
pkill -f "head -c 400000000" 2>/dev/null

# grid files: the same reader
printf 'width = 8\0\ndepth = 2\n' >"$dir/gnul.txt"
refused 2 "NUL byte" "$BAFU" sweep "$dir/gnul.txt"
: >"$dir/empty.txt"
refused 2 "no settings" "$BAFU" sweep "$dir/empty.txt"
printf '# only a comment\n\n' >"$dir/comment.txt"
refused 2 "no settings" "$BAFU" sweep "$dir/comment.txt"
printf 'width = 8\rdepth = 2\rseeds = 2\r' >"$dir/gcr.txt"
printf 'width = 8\ndepth = 2\nseeds = 2\n' >"$dir/glf.txt"
"$BAFU" sweep "$dir/gcr.txt" --out "$dir/gcr.dat" && "$BAFU" sweep "$dir/glf.txt" --out "$dir/glf.dat" &&
  diff <(body "$dir/gcr.dat") <(body "$dir/glf.dat") >/dev/null && ok || bad "grid with CR line ends"
# every point within the memory limit before anything runs (width 8, depth 10^7: ~20 GiB)
printf 'width = 8\ndepth = 4 10000000\n' >"$dir/huge.txt"
start=$(date +%s)
refused 2 "point 1 " BAFU_MEMORY_LIMIT_MB=4096 "$BAFU" sweep "$dir/huge.txt"
(( $(date +%s) - start < 10 )) && ok || bad "sweep: the oversized point was refused only after $(( $(date +%s) - start )) s"

# the memory limit's own syntax, in every subcommand
for v in 100MB 1e2 " 100" "100 " -1 0 +5; do
  for cmd in mc theory kernel spectrum sweep train figures reduce; do
    refused 2 "BAFU_MEMORY_LIMIT_MB" "BAFU_MEMORY_LIMIT_MB=$v" "$BAFU" $cmd --help-is-not-reached
  done
done
BAFU_MEMORY_LIMIT_MB= "$BAFU" mc --width 8 --depth 2 --seeds 2 --out "$dir/e.dat" && ok || bad "an empty BAFU_MEMORY_LIMIT_MB is unset"

echo "cli_files: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
