#!/usr/bin/env bash
# cli_numeric_options.sh: bad values on every numeric option of every
# subcommand (the table tests/numeric_options.txt says what zero and -1 mean
# for each). Refused values: exit 2, one line on stderr naming the option,
# nothing on stdout, no output file, no core dump, within 60 s. Values the
# table calls meaningful must run (exit 0). The table must list every numeric
# option that `bafu CMD --list-options` reports, and nothing else.
set -u
BAFU=${1:?usage: cli_numeric_options.sh path/to/bafu}
table="$(dirname "$0")/numeric_options.txt"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ulimit -c 0
fails=0 passes=0
printf 'width = 8\ndepth = 2\nseeds = 2\n' >"$dir/sweep.txt" # the sweep rows' grid (valid)
printf 'k v\n1 2.5\n1 3.5\n' >"$dir/t.dat" # the reduce rows' table (valid)
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# the options each subcommand reports, "cmd option type"
for cmd in mc figures kernel reduce spectrum sweep theory train; do
  "$BAFU" $cmd --list-options | awk -v c=$cmd '$2 ~ /^(size|u64|int|double)$/ {print c, $1, $2}'
done | sort >"$dir/listed"
grep -v '^#' "$table" | awk -F'\t' 'NF {print $1, $2}' | sort >"$dir/tabled"
if ! diff <(cut -d' ' -f1,2 "$dir/listed") "$dir/tabled" >"$dir/diff"; then
  fail "numeric_options.txt and --list-options disagree (< only listed, > only in the table):"; cat "$dir/diff"
fi
if [[ $(wc -l <"$dir/listed") -lt 90 ]]; then fail "only $(wc -l <"$dir/listed") numeric options listed"; fi

run() { # cmd, context words (one string), option, value; sets rc, out
  local cmd=$1 ctx=$2 opt=$3 val=$4
  rm -rf "$dir/out.dat" "$dir/fig"
  local outarg=()
  [[ $cmd != figures ]] && outarg=(--out "$dir/out.dat")
  eval "set -- ${ctx//@DIR@/$dir}"
  timeout 60 "$BAFU" "$cmd" "$@" "$opt" "$val" "${outarg[@]}" </dev/null >"$dir/stdout" 2>"$dir/stderr"
  rc=$?
}

refused() { # cmd ctx opt val
  run "$@"
  local what="bafu $1 $2 $3 '$4'"
  if [[ $rc -ne 2 ]]; then fail "$what exited $rc, expected 2"; return; fi
  if [[ $(wc -l <"$dir/stderr") -ne 1 ]] || ! grep -q -- "$3" "$dir/stderr"; then
    fail "$what: stderr should be one line naming $3, got:"; cat "$dir/stderr"; return
  fi
  if [[ -s "$dir/stdout" ]] || ls "$dir" | grep -q '^out\.dat' || [[ -e "$dir/fig" ]]; then
    fail "$what: left output behind"; return
  fi
  passes=$((passes + 1))
}

accepted() { # cmd ctx opt val
  run "$@"
  if [[ $rc -ne 0 ]]; then fail "bafu $1 $2 $3 '$4' exited $rc, expected a run:"; cat "$dir/stderr"; return; fi
  if [[ $1 != figures && ! -s "$dir/out.dat" ]]; then fail "bafu $1 $2 $3 '$4': no output"; return; fi
  passes=$((passes + 1))
}

while IFS=$'\t' read -r cmd opt zero neg ctx; do
  [[ -z $cmd || $cmd == \#* ]] && continue
  type=$(awk -v c="$cmd" -v o="$opt" '$1 == c && $2 == o {print $3}' "$dir/listed")
  [[ -z $type ]] && continue # reported by the comparison above
  for v in abc '' 12x nan NaN inf -inf 1e999 0x; do refused "$cmd" "$ctx" "$opt" "$v"; done
  if [[ $type != double ]]; then
    for v in 2.5 1e3 99999999999999999999999 ' 3'; do refused "$cmd" "$ctx" "$opt" "$v"; done
  fi
  case $zero in
    refused) refused "$cmd" "$ctx" "$opt" 0 ;;
    ok) accepted "$cmd" "$ctx" "$opt" 0 ;;
    ok-notrun) ;;
    *) fail "$cmd $opt: zero column '$zero'" ;;
  esac
  case $neg in
    refused) refused "$cmd" "$ctx" "$opt" -1 ;;
    ok) accepted "$cmd" "$ctx" "$opt" -1 ;;
    *) fail "$cmd $opt: negative column '$neg'" ;;
  esac
done <"$table"

echo "cli_numeric_options: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
