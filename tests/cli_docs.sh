#!/usr/bin/env bash
# cli_docs.sh: the documentation stays true to the program.
#  - every relative link of README.md and doc/*.md names a file that exists;
#  - every `bafu CMD --option` in the README's and doc/*.md's example lines is an
#    option CMD accepts (from `bafu CMD --list-options`), and CMD is a command;
#  - the documents speak of the project only (no words of a work tracker).
set -u
BAFU=${1:?usage: cli_docs.sh path/to/bafu}
SRC=${BAFU_SOURCE_DIR:?set BAFU_SOURCE_DIR}
cd "$SRC" || exit 1
fails=0 passes=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
docs=(README.md doc/*.md)

# Relative links: [text](path) and ![alt](path), without a scheme or an anchor alone.
for f in "${docs[@]}"; do
  dir=$(dirname "$f")
  while IFS= read -r target; do
    target=${target%%#*}
    [[ -z $target || $target == *://* || $target == mailto:* ]] && continue
    if [[ -e $dir/$target ]]; then passes=$((passes + 1)); else fail "$f links to $target, which does not exist"; fi
  done < <(grep -o '](\([^)]*\))' "$f" | sed 's/^](\(.*\))$/\1/')
done

# Options of the example lines: indented lines that run bafu (build/bafu or bafu)
# and inline code `bafu CMD ...`.
commands=" $("$BAFU" --help | awk '/^Commands:/ {on = 1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on = 0}' | tr '\n' ' ') "
[[ $commands == *" mc "* && $commands == *" train "* ]] || fail "cannot read the command list from bafu --help: '$commands'"
declare -A opts
for f in "${docs[@]}"; do
  while IFS= read -r line; do
    line=${line%%#*}                                   # drop the trailing comment
    cmd=$(sed -E 's/.*(build\/bafu|[^a-z_/]bafu|^bafu) +([a-z]+).*/\2/' <<<" $line")
    [[ $cmd == help ]] && continue                      # `bafu help CMD`
    [[ $commands == *" $cmd "* ]] || { fail "$f: '$cmd' is not a bafu command in: $line"; continue; }
    if [[ -z ${opts[$cmd]+x} ]]; then
      opts[$cmd]=" $("$BAFU" "$cmd" --list-options | awk '{print $1}' | tr '\n' ' ') --help --list-options --version "
    fi
    for o in $(grep -oE '(^| )--[a-z0-9-]+' <<<"${line#*bafu $cmd}"); do
      if [[ ${opts[$cmd]} == *" $o "* ]]; then passes=$((passes + 1)); else fail "$f: bafu $cmd has no option $o: $line"; fi
    done
  done < <(grep -E '^ {4,}.*(build/bafu|mpirun.* bafu|^ +bafu) +[a-z]+' "$f" | grep -v '^ *[|>]'
           grep -oE '`(build/)?bafu [a-z]+( [^`]*)?`' "$f" | tr -d '`')
done

# Words of a work tracker (whole words, any case) in the documents.
for f in "${docs[@]}" theory/*.md tests/bench/README.md; do
  if grep -qiwE 'issues?|tracker|tickets?' "$f"; then
    fail "$f mentions a tracker: $(grep -niwE 'issues?|tracker|tickets?' "$f" | head -1)"
  else
    passes=$((passes + 1))
  fi
done

echo "cli_docs: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
