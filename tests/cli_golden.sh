#!/usr/bin/env bash
# cli_golden.sh: every table of tests/golden/commands.txt, made by this build,
# equals the committed one byte for byte, apart from the lines that name the
# moment, the command line and the version ('# date:', '# command:',
# '# generator:'). The committed tables were made before the network
# description replaced the hard-wired architectures, so this is the check that
# nothing changed for existing configurations. Every table made is also
# checked for its layout (doc/tables.md): the header row of each series first
# (the file's first line, and the first line after two blank lines), then its
# '#' lines and rows, each row as many fields as its header has names.
#   cli_golden.sh BAFU              compare
#   cli_golden.sh BAFU --update     rewrite tests/golden/tables/ (only when a change is meant)
set -u
BAFU=$(realpath "${1:?usage: cli_golden.sh path/to/bafu [--update]}")
update=${2:-}
here=$(cd "$(dirname "$0")/golden" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0 passes=0
strip() { grep -v '^# \(date\|command\|generator\):' "$1"; }
layout() {
  awk '
    BEGIN { expect_header = 1 }
    NF == 0 { if (++blanks >= 2) expect_header = 1; next }
    { blanks = 0 }
    /^#/ { if (expect_header) { print "line " NR ": a \"#\" line before the header row"; bad = 1 }; next }
    expect_header { nf = NF; expect_header = 0; headers++
                    for (i = 1; i <= NF; i++) if ($i !~ /^[A-Za-z_][A-Za-z0-9_]*$/) { print "line " NR ": not a header row"; bad = 1; break }
                    next }
    NF != nf { print "line " NR ": " NF " fields, the header has " nf; bad = 1 }
    END { if (!headers) print "no header row"; exit !(headers && !bad) }' "$1"
}
mkdir -p "$here/tables"
while IFS=$'\t' read -r name args; do
  [[ -z $name || $name == \#* ]] && continue
  args=${args//@IN@/batch.txt}
  args=${args//@IN1@/sample.txt}
  args=${args//@GRID@/grid.txt}
  args=${args//@DATA@/idx}
  # from the golden directory, so that the file names in the '#' lines are the same everywhere
  # shellcheck disable=SC2086
  if ! (cd "$here" && OPENBLAS_NUM_THREADS=1 timeout 300 "$BAFU" $args --out "$dir/$name.dat" 2>"$dir/err" </dev/null); then
    echo "FAIL: $name: bafu $args: $(head -2 "$dir/err")"; fails=$((fails + 1)); continue
  fi
  if ! layout "$dir/$name.dat" >"$dir/why"; then
    echo "FAIL: $name: layout: $(head -2 "$dir/why")"; fails=$((fails + 1)); continue
  fi
  if [[ $update == --update ]]; then
    cp "$dir/$name.dat" "$here/tables/$name.dat"; passes=$((passes + 1)); continue
  fi
  if [[ ! -e $here/tables/$name.dat ]]; then echo "FAIL: $name: no committed table"; fails=$((fails + 1)); continue; fi
  if diff <(strip "$here/tables/$name.dat") <(strip "$dir/$name.dat") >"$dir/diff"; then passes=$((passes + 1))
  else echo "FAIL: $name differs from the committed table (bafu $args):"; head -6 "$dir/diff"; fails=$((fails + 1)); fi
done <"$here/commands.txt"
echo "cli_golden: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
